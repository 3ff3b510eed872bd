//! Typed batch buffers. A batch of `n` images with `C` channels of `H×W` is stored NCHW,
//! row-major, exactly as PyTorch stores a contiguous tensor: element `(i, c, y, x)` sits at
//! `((i·C + c)·H + y)·W + x`. The shape lives in the type, so a layer whose input does not
//! match the previous layer's output does not compile.
use super::float::Float;

/// An owned batch buffer of shape `[n, C, H, W]`, with capacity for `max_n` images.
#[derive(Clone, Debug)]
pub struct Act<T, const C: usize, const H: usize, const W: usize> {
    data: Vec<T>,
    n: usize,
}

/// A read-only view of `[n, C, H, W]`.
#[derive(Debug)]
pub struct View<'a, T, const C: usize, const H: usize, const W: usize>(pub &'a [T]);

// By hand rather than derived: a shared view is `Copy` whatever `T` is.
impl<T, const C: usize, const H: usize, const W: usize> Clone for View<'_, T, C, H, W> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<T, const C: usize, const H: usize, const W: usize> Copy for View<'_, T, C, H, W> {}

/// A mutable view of `[n, C, H, W]`.
#[derive(Debug)]
pub struct ViewMut<'a, T, const C: usize, const H: usize, const W: usize>(pub &'a mut [T]);

/// A read-only batch view as its slice: what code generic over a shape trait (such as
/// [`super::conv::ConvShape`]) reads through.
pub trait Data<'a, T> {
    /// The whole batch, NCHW.
    fn data(self) -> &'a [T];
}

/// A mutable batch view as its slice.
pub trait DataMut<'a, T> {
    /// The whole batch, NCHW.
    fn data_mut(self) -> &'a mut [T];
}

impl<'a, T, const C: usize, const H: usize, const W: usize> Data<'a, T> for View<'a, T, C, H, W> {
    #[inline(always)]
    fn data(self) -> &'a [T] {
        self.0
    }
}

impl<'a, T, const C: usize, const H: usize, const W: usize> DataMut<'a, T>
    for ViewMut<'a, T, C, H, W>
{
    #[inline(always)]
    fn data_mut(self) -> &'a mut [T] {
        self.0
    }
}

impl<'a, T, const C: usize, const H: usize, const W: usize> From<&'a [T]> for View<'a, T, C, H, W> {
    fn from(s: &'a [T]) -> Self {
        View(s)
    }
}

impl<'a, T, const C: usize, const H: usize, const W: usize> From<&'a mut [T]>
    for ViewMut<'a, T, C, H, W>
{
    fn from(s: &'a mut [T]) -> Self {
        ViewMut(s)
    }
}

impl<T: Float, const C: usize, const H: usize, const W: usize> Act<T, C, H, W> {
    /// Elements per image.
    pub const IMAGE: usize = C * H * W;

    /// A zeroed buffer for up to `max_n` images, initially holding `max_n`.
    pub fn zeros(max_n: usize) -> Self {
        Act {
            data: vec![T::zero(); max_n * Self::IMAGE],
            n: max_n,
        }
    }

    /// Wraps a vector whose length is a whole number of images.
    pub fn from_vec(data: Vec<T>) -> Option<Self> {
        data.len().is_multiple_of(Self::IMAGE).then(|| Act {
            n: data.len() / Self::IMAGE,
            data,
        })
    }

    /// Sets the number of images in use (≤ capacity). Contents are left as they are.
    pub fn set_n(&mut self, n: usize) {
        assert!(
            n * Self::IMAGE <= self.data.len(),
            "batch larger than its buffer"
        );
        self.n = n;
    }

    /// Number of images in use.
    pub fn n(&self) -> usize {
        self.n
    }
    /// The images in use, NCHW.
    pub fn as_slice(&self) -> &[T] {
        &self.data[..self.n * Self::IMAGE]
    }
    /// The images in use, NCHW, mutable.
    pub fn as_mut_slice(&mut self) -> &mut [T] {
        let len = self.n * Self::IMAGE;
        &mut self.data[..len]
    }
    /// A read-only view of the images in use.
    pub fn view(&self) -> View<'_, T, C, H, W> {
        View(self.as_slice())
    }
    /// A mutable view of the images in use.
    pub fn view_mut(&mut self) -> ViewMut<'_, T, C, H, W> {
        ViewMut(self.as_mut_slice())
    }
}

impl<'a, T, const C: usize, const H: usize, const W: usize> View<'a, T, C, H, W> {
    /// Elements per image.
    pub const IMAGE: usize = C * H * W;
    /// Number of images in the view.
    pub fn n(&self) -> usize {
        self.0.len() / Self::IMAGE
    }
    /// Image `i` as `[C, H, W]`.
    pub fn image(&self, i: usize) -> &'a [T] {
        &self.0[i * Self::IMAGE..(i + 1) * Self::IMAGE]
    }
}

impl<T, const C: usize, const H: usize, const W: usize> ViewMut<'_, T, C, H, W> {
    /// Elements per image.
    pub const IMAGE: usize = C * H * W;
    /// Number of images in the view.
    pub fn n(&self) -> usize {
        self.0.len() / Self::IMAGE
    }
    /// Image `i` as `[C, H, W]`, mutable.
    pub fn image(&mut self, i: usize) -> &mut [T] {
        &mut self.0[i * Self::IMAGE..(i + 1) * Self::IMAGE]
    }
    /// Reborrows as a read-only view.
    pub fn as_view(&self) -> View<'_, T, C, H, W> {
        View(self.0)
    }
}
