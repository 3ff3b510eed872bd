//! 2-D convolution, stride 1, no padding, with bias (PyTorch `nn.Conv2d(CIN, COUT, K)`).
//!
//! Computed per image as one matrix product over an im2col matrix:
//! `Y[COUT, OH·OW] = Wmat[COUT, CIN·K·K] · col[CIN·K·K, OH·OW] + b`, where
//! `col[(c·K + ki)·K + kj, oy·OW + ox] = X[c, oy + ki, ox + kj]`. For `K = 1` the input is
//! already its own col matrix and no copy is made.
//!
//! Generics: one shape `S: ConvShape` (see [`ConvShape`] and [`Shape`]): `CIN`, `COUT`
//! channels; `K` kernel size; `KK = CIN·K·K`; `H×W` input and `OH×OW = (H−K+1)×(W−K+1)`
//! output, all checked at compile time.
use super::float::Float;
use super::reduce;
use super::tensor::{Data, DataMut, View, ViewMut};
use nalgebra::{SMatrix, SVector};

/// The shape of one convolution layer, `nn.Conv2d(CIN, COUT, K)` (stride 1, no padding) on
/// `[n, CIN, H, W]` batches, giving `[n, COUT, OH, OW]`: the one type parameter of every
/// convolution function (here and in [`crate::kernels::conv`]).
///
/// Implemented by [`Shape`]; the network names one per layer (`net::Conv1` …). Stable Rust
/// cannot use an associated const of a generic parameter as a const generic argument, so the
/// types whose sizes are const generics (the parameters, the views, `K`-element arrays) are
/// associated types, which [`Shape`] defines from its own const parameters.
pub trait ConvShape: 'static {
    /// Input channels.
    const CIN: usize;
    /// Output channels.
    const COUT: usize;
    /// Kernel size (`K×K`).
    const K: usize;
    /// `CIN·K·K`: the length of one output channel's weights.
    const KK: usize;
    /// Input height.
    const H: usize;
    /// Input width.
    const W: usize;
    /// Output height, `H − K + 1`.
    const OH: usize;
    /// Output width, `W − K + 1`.
    const OW: usize;
    /// The layer's parameters, [`Conv<T, CIN, COUT, K, KK>`](Conv).
    type Params<T: Float>: ConvParams<T>;
    /// A batch of inputs, [`View<'a, T, CIN, H, W>`](View).
    type In<'a, T: 'a>: Data<'a, T> + From<&'a [T]> + Copy;
    /// A mutable batch of inputs (an input gradient), [`ViewMut<'a, T, CIN, H, W>`](ViewMut).
    type InMut<'a, T: 'a>: DataMut<'a, T> + From<&'a mut [T]>;
    /// A batch of outputs, [`View<'a, T, COUT, OH, OW>`](View).
    type Out<'a, T: 'a>: Data<'a, T> + From<&'a [T]> + Copy;
    /// A mutable batch of outputs, [`ViewMut<'a, T, COUT, OH, OW>`](ViewMut).
    type OutMut<'a, T: 'a>: DataMut<'a, T> + From<&'a mut [T]>;
    /// `[X; K]`, for the kernels that keep one accumulator per kernel column in registers.
    type Taps<X: Copy>: Copy + AsRef<[X]> + AsMut<[X]>;
    /// `[x; K]`.
    fn taps<X: Copy>(x: X) -> Self::Taps<X>;
}

/// The [`ConvShape`] with the given sizes. `KK`, `OH` and `OW` are spelled out because a type
/// cannot compute them on stable Rust; [`check_shapes`] (run by every convolution function) proves
/// `KK = CIN·K·K`, `OH = H−K+1`, `OW = W−K+1` at compile time.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Shape<
    const CIN: usize,
    const COUT: usize,
    const K: usize,
    const KK: usize,
    const H: usize,
    const W: usize,
    const OH: usize,
    const OW: usize,
>;

impl<
    const CIN: usize,
    const COUT: usize,
    const K: usize,
    const KK: usize,
    const H: usize,
    const W: usize,
    const OH: usize,
    const OW: usize,
> ConvShape for Shape<CIN, COUT, K, KK, H, W, OH, OW>
{
    const CIN: usize = CIN;
    const COUT: usize = COUT;
    const K: usize = K;
    const KK: usize = KK;
    const H: usize = H;
    const W: usize = W;
    const OH: usize = OH;
    const OW: usize = OW;
    type Params<T: Float> = Conv<T, CIN, COUT, K, KK>;
    type In<'a, T: 'a> = View<'a, T, CIN, H, W>;
    type InMut<'a, T: 'a> = ViewMut<'a, T, CIN, H, W>;
    type Out<'a, T: 'a> = View<'a, T, COUT, OH, OW>;
    type OutMut<'a, T: 'a> = ViewMut<'a, T, COUT, OH, OW>;
    type Taps<X: Copy> = [X; K];
    #[inline(always)]
    fn taps<X: Copy>(x: X) -> [X; K] {
        [x; K]
    }
}

/// The compile-time checks of a convolution shape: `KK = CIN·K·K`, `OH = H−K+1`,
/// `OW = W−K+1`.
pub fn check_shapes<S: ConvShape>() {
    const {
        assert!(
            S::KK == S::CIN * S::K * S::K && S::OH + S::K == S::H + 1 && S::OW + S::K == S::W + 1
        )
    }
}

/// Access to a convolution's parameters as slices, for code generic over [`ConvShape`].
pub trait ConvParams<T> {
    /// The weights, PyTorch's row-major `[COUT, CIN, K, K]`.
    fn weight(&self) -> &[T];
    /// The weights, mutable.
    fn weight_mut(&mut self) -> &mut [T];
    /// The bias, `[COUT]`.
    fn bias(&self) -> &[T];
    /// The bias, mutable.
    fn bias_mut(&mut self) -> &mut [T];
    /// All zeros.
    fn zeros() -> Self;
}

/// Mutable access to a convolution's bias as a vector, for code generic over [`ConvShape`]
/// that knows `COUT` (the fused passes take the bias gradient as a vector).
pub trait ConvBias<T: Float, const COUT: usize> {
    /// The bias, `[COUT]`, mutable.
    fn bias_vector_mut(&mut self) -> &mut SVector<T, COUT>;
}

impl<T: Float, const CIN: usize, const COUT: usize, const K: usize, const KK: usize>
    ConvBias<T, COUT> for Conv<T, CIN, COUT, K, KK>
{
    fn bias_vector_mut(&mut self) -> &mut SVector<T, COUT> {
        &mut self.bias
    }
}

impl<T: Float, const CIN: usize, const COUT: usize, const K: usize, const KK: usize> ConvParams<T>
    for Conv<T, CIN, COUT, K, KK>
{
    fn weight(&self) -> &[T] {
        self.weight.as_slice()
    }
    fn weight_mut(&mut self) -> &mut [T] {
        self.weight.as_mut_slice()
    }
    fn bias(&self) -> &[T] {
        self.bias.as_slice()
    }
    fn bias_mut(&mut self) -> &mut [T] {
        self.bias.as_mut_slice()
    }
    fn zeros() -> Self {
        Conv::zeros()
    }
}

/// The parameters of one convolution.
///
/// `weight` is stored as the `KK×COUT` column-major matrix `Wmatᵀ`, whose memory is exactly
/// PyTorch's row-major `[COUT, CIN, K, K]` weight, so safetensors I/O is a plain copy.
#[derive(Clone, Debug, PartialEq)]
pub struct Conv<T: Float, const CIN: usize, const COUT: usize, const K: usize, const KK: usize> {
    /// `Wmatᵀ`, `KK×COUT` column-major: PyTorch's `[COUT, CIN, K, K]`.
    pub weight: SMatrix<T, KK, COUT>,
    /// `[COUT]`.
    pub bias: SVector<T, COUT>,
}

impl<T: Float, const CIN: usize, const COUT: usize, const K: usize, const KK: usize>
    Conv<T, CIN, COUT, K, KK>
{
    const CHECK: () = assert!(KK == CIN * K * K, "KK must equal CIN·K·K");
    /// Trainable parameter count: `COUT·CIN·K·K + COUT`.
    pub const PARAMS: usize = KK * COUT + COUT;

    /// All zeros.
    pub fn zeros() -> Self {
        let () = Self::CHECK;
        Conv {
            weight: SMatrix::zeros(),
            bias: SVector::zeros(),
        }
    }
}

/// Scratch length needed by the im2col matrix of one image.
pub const fn col_len(kk: usize, oh: usize, ow: usize) -> usize {
    kk * oh * ow
}

/// [`col_len`] of the shape `S`.
pub const fn col_len_of<S: ConvShape>() -> usize {
    col_len(S::KK, S::OH, S::OW)
}

/// Writes the im2col matrix of one image `x: [CIN, H, W]` into `col: [KK, OH·OW]`.
fn im2col<T: Copy, S: ConvShape>(x: &[T], col: &mut [T]) {
    let (cin, k, h, w, oh, ow) = (S::CIN, S::K, S::H, S::W, S::OH, S::OW);
    let mut r = 0;
    for c in 0..cin {
        for ki in 0..k {
            for kj in 0..k {
                let dst = &mut col[r * oh * ow..(r + 1) * oh * ow];
                for oy in 0..oh {
                    let src = &x[(c * h + oy + ki) * w + kj..][..ow];
                    dst[oy * ow..(oy + 1) * ow].copy_from_slice(src);
                }
                r += 1;
            }
        }
    }
}

/// One image's im2col matrix `[KK, OH·OW]`: the image itself for a 1×1 convolution (whose
/// im2col is the identity), else [`im2col`] written into `col`.
fn col_matrix<'a, T: Copy, S: ConvShape>(x: &'a [T], col: &'a mut [T]) -> &'a [T] {
    if S::K == 1 {
        x
    } else {
        im2col::<T, S>(x, col);
        &col[..S::KK * S::OH * S::OW]
    }
}

/// Adds the im2col-shaped gradient `dcol: [KK, oh·ow]` back onto `dx: [cin, h, w]`.
fn col2im_add<T: Float, S: ConvShape>(dcol: &[T], dx: &mut [T]) {
    let (cin, k, h, w, oh, ow) = (S::CIN, S::K, S::H, S::W, S::OH, S::OW);
    let mut r = 0;
    for c in 0..cin {
        for ki in 0..k {
            for kj in 0..k {
                let src = &dcol[r * oh * ow..(r + 1) * oh * ow];
                for oy in 0..oh {
                    let dst = &mut dx[(c * h + oy + ki) * w + kj..][..ow];
                    for (d, s) in dst.iter_mut().zip(&src[oy * ow..(oy + 1) * ow]) {
                        *d += *s;
                    }
                }
                r += 1;
            }
        }
    }
}

/// r[cnn.conv.forward] `Y[n,o,y,x] = b[o] + Σ_{c,ki,kj} W[o,c,ki,kj]·X[n,c,y+ki,x+kj]`.
///
/// # Shapes
/// `x: [n, CIN, H, W]` → `y: [n, COUT, OH, OW]`; `col` scratch of at least `KK·OH·OW`
/// (unused when `K = 1`).
///
/// PyTorch equivalent: `torch.nn.functional.conv2d(x, weight, bias)`.
#[inline(never)]
pub fn conv_forward<T: Float, S: ConvShape>(
    p: &S::Params<T>,
    x: S::In<'_, T>,
    y: S::OutMut<'_, T>,
    col: &mut [T],
) {
    check_shapes::<S>();
    let (x, y) = (x.data(), y.data_mut());
    let (xl, yl) = (S::CIN * S::H * S::W, S::COUT * S::OH * S::OW);
    assert_eq!(
        x.len() / xl,
        y.len() / yl,
        "conv_forward: batch sizes differ"
    );
    let (cout, kk, ohw) = (S::COUT, S::KK, S::OH * S::OW);
    for (xi, yi) in x.chunks_exact(xl).zip(y.chunks_exact_mut(yl)) {
        for o in 0..cout {
            yi[o * ohw..(o + 1) * ohw].fill(p.bias()[o]);
        }
        let colm = col_matrix::<T, S>(xi, col);
        // y[o, j] += Σ_k W[o, k]·col[k, j]; W[o,k] sits at o·KK + k.
        T::gemm(
            cout,
            kk,
            ohw,
            T::one(),
            p.weight(),
            (kk, 1),
            colm,
            (ohw, 1),
            T::one(),
            yi,
            (ohw, 1),
        );
    }
}

/// r[cnn.conv.backward_input] `∂L/∂X[n,c,y,x] = Σ_{o,ki,kj} W[o,c,ki,kj]·∂L/∂Y[n,o,y−ki,x−kj]`.
///
/// Computed as `dcol = Wmatᵀ·dY` followed by col2im (the transpose of im2col). `dx` is
/// overwritten.
///
/// # Shapes
/// `dy: [n, COUT, OH, OW]` → `dx: [n, CIN, H, W]`; `dcol` scratch of at least `KK·OH·OW`.
///
/// PyTorch equivalent: `torch.nn.grad.conv2d_input`.
#[inline(never)]
pub fn conv_backward_input<T: Float, S: ConvShape>(
    p: &S::Params<T>,
    dy: S::Out<'_, T>,
    dx: S::InMut<'_, T>,
    dcol: &mut [T],
) {
    check_shapes::<S>();
    let (dy, dx) = (dy.data(), dx.data_mut());
    let (xl, yl) = (S::CIN * S::H * S::W, S::COUT * S::OH * S::OW);
    assert_eq!(
        dx.len() / xl,
        dy.len() / yl,
        "conv_backward_input: batch sizes differ"
    );
    let (cout, kk, ohw) = (S::COUT, S::KK, S::OH * S::OW);
    for (dyi, dxi) in dy.chunks_exact(yl).zip(dx.chunks_exact_mut(xl)) {
        // dcol[k, j] = Σ_o W[o, k]·dy[o, j]; a 1×1 convolution's dcol is dx itself (k = c).
        let dc: &mut [T] = if S::K == 1 {
            dxi
        } else {
            &mut dcol[..kk * ohw]
        };
        T::gemm(
            kk,
            cout,
            ohw,
            T::one(),
            p.weight(),
            (1, kk),
            dyi,
            (ohw, 1),
            T::zero(),
            dc,
            (ohw, 1),
        );
        if S::K != 1 {
            dxi.fill(T::zero());
            col2im_add::<T, S>(&dcol[..kk * ohw], dxi);
        }
    }
}

/// r[cnn.conv.backward_weight] `∂L/∂W[o,c,ki,kj] = Σ_{n,y,x} ∂L/∂Y[n,o,y,x]·X[n,c,y+ki,x+kj]`.
///
/// Computed per image as `dWmat += dY·colᵀ`; **accumulates** into `dw.weight` (so a caller can sum
/// images, and chunks of images, in a fixed order).
///
/// # Shapes
/// `dy: [n, COUT, OH, OW]`, `x: [n, CIN, H, W]`, `dw` like `weight`; `col` scratch as in
/// [`conv_forward`].
#[inline(never)]
pub fn conv_backward_weight<T: Float, S: ConvShape>(
    dy: S::Out<'_, T>,
    x: S::In<'_, T>,
    dw: &mut S::Params<T>,
    col: &mut [T],
) {
    check_shapes::<S>();
    let (dy, x) = (dy.data(), x.data());
    let (xl, yl) = (S::CIN * S::H * S::W, S::COUT * S::OH * S::OW);
    assert_eq!(
        x.len() / xl,
        dy.len() / yl,
        "conv_backward_weight: batch sizes differ"
    );
    let (cout, kk, ohw) = (S::COUT, S::KK, S::OH * S::OW);
    for (dyi, xi) in dy.chunks_exact(yl).zip(x.chunks_exact(xl)) {
        let colm = col_matrix::<T, S>(xi, col);
        // dw[o, k] += Σ_j dy[o, j]·col[k, j]
        T::gemm(
            cout,
            ohw,
            kk,
            T::one(),
            dyi,
            (ohw, 1),
            colm,
            (1, ohw),
            T::one(),
            dw.weight_mut(),
            (kk, 1),
        );
    }
}

/// r[cnn.conv.backward_bias] `∂L/∂b[o] = Σ_{n,y,x} ∂L/∂Y[n,o,y,x]`. Accumulates into `db.bias`
/// (the weights are left alone).
///
/// Each image's plane is summed in the order of [`super::reduce`].
///
/// # Shapes
/// `dy: [n, COUT, OH, OW]`, `db` like the layer's parameters.
#[inline(never)]
pub fn conv_backward_bias<T: Float, S: ConvShape>(dy: S::Out<'_, T>, db: &mut S::Params<T>) {
    let (dy, db) = (dy.data(), db.bias_mut());
    let (cout, ohw) = (S::COUT, S::OH * S::OW);
    for dyi in dy.chunks_exact(cout * ohw) {
        for o in 0..cout {
            db[o] += reduce::sum(&dyi[o * ohw..(o + 1) * ohw]);
        }
    }
}
