//! The shape the two pools share, [`super::maxpool`] and [`super::avgpool`]: a 2×2 window at
//! stride 2, from `[n, C, H, W]` to `[n, C, H/2, W/2]`.
use super::tensor::{Data, DataMut, View, ViewMut};

/// The shape of one 2×2, stride-2 pooling layer on `[n, C, H, W]` batches, giving
/// `[n, C, OH, OW]`: the one shape parameter of every pooling function.
///
/// Implemented by [`Pool`]. As with [`super::conv::ConvShape`], the views, whose sizes are
/// const generics, are associated types that [`Pool`] defines from its own const parameters.
pub trait PoolShape: 'static {
    /// Channels.
    const C: usize;
    /// Input height.
    const H: usize;
    /// Input width.
    const W: usize;
    /// Output height, `H/2`.
    const OH: usize;
    /// Output width, `W/2`.
    const OW: usize;
    /// The input batch, `[n, C, H, W]`.
    type In<'a, T: 'a>: Data<'a, T>;
    /// The input batch, writable (its gradient).
    type InMut<'a, T: 'a>: DataMut<'a, T>;
    /// The output batch, `[n, C, OH, OW]`.
    type Out<'a, T: 'a>: Data<'a, T>;
    /// The output batch, writable.
    type OutMut<'a, T: 'a>: DataMut<'a, T>;
}

/// The [`PoolShape`] with the given sizes. `OH` and `OW` are spelled out because a type cannot
/// compute them on stable Rust; [`unpack`] (called by every pooling function) proves
/// `OH = H/2` and `OW = W/2` at compile time.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Pool<const C: usize, const H: usize, const W: usize, const OH: usize, const OW: usize>;

impl<const C: usize, const H: usize, const W: usize, const OH: usize, const OW: usize> PoolShape
    for Pool<C, H, W, OH, OW>
{
    const C: usize = C;
    const H: usize = H;
    const W: usize = W;
    const OH: usize = OH;
    const OW: usize = OW;
    type In<'a, T: 'a> = View<'a, T, C, H, W>;
    type InMut<'a, T: 'a> = ViewMut<'a, T, C, H, W>;
    type Out<'a, T: 'a> = View<'a, T, C, OH, OW>;
    type OutMut<'a, T: 'a> = ViewMut<'a, T, C, OH, OW>;
}

/// The elements of a pooling function's two views, its source `src` and its destination `dst`
/// (the input and output forward, the output's and input's gradients backward), and
/// `[H, W, OH, OW]` of `S`; fails to compile unless the output is exactly half the input in
/// each direction.
pub fn unpack<'s, 'd, T: 's + 'd, S: PoolShape>(
    src: impl Data<'s, T>,
    dst: impl DataMut<'d, T>,
) -> (&'s [T], &'d mut [T], [usize; 4]) {
    const { assert!(S::OH * 2 == S::H && S::OW * 2 == S::W) }
    (src.data(), dst.data_mut(), [S::H, S::W, S::OH, S::OW])
}
