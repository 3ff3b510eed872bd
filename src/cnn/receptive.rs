//! The receptive field of every layer: how many input pixels one output pixel sees.
//!
//! A layer that slides a `k×k` window with stride `s` (a convolution, a pooling) widens the
//! field by `k − 1` of its input's steps and multiplies the step by `s`; element-wise layers
//! (ReLU, BatchNorm, dropout) are `k = s = 1`. The recurrence runs over any list of layers
//! that say their window ([`Window`]); the book's layer table runs it over
//! [`summary::rows`](super::summary::rows), the network's own layer list.

/// A layer's sliding window, as far as the receptive field is concerned.
pub trait Window {
    /// Side of the square window (`1` for an element-wise layer).
    fn kernel(&self) -> usize;
    /// Step between neighbouring windows (`1` for an element-wise layer).
    fn stride(&self) -> usize;
}

/// A receptive field, in input pixels.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Field {
    /// Side `r` of the square of input pixels one output pixel depends on.
    pub size: usize,
    /// Distance `j` between the fields of two neighbouring output pixels.
    pub jump: usize,
}

impl Field {
    /// The input itself: each pixel sees itself.
    pub const INPUT: Field = Field { size: 1, jump: 1 };
}

/// r[cnn.receptive_field] `r_out = r_in + (k − 1)·j_in`, `j_out = j_in·s`, from `r = j = 1`.
///
/// Returns the field after each layer of `layers`, in order.
///
/// # Shapes
/// `layers: [L]` → `[Field; L]`. Padding does not enter: it moves a field, not its size.
pub fn receptive_field<L: Window>(layers: &[L]) -> Vec<Field> {
    let mut f = Field::INPUT;
    layers
        .iter()
        .map(|l| {
            f = Field {
                size: f.size + (l.kernel() - 1) * f.jump,
                jump: f.jump * l.stride(),
            };
            f
        })
        .collect()
}

impl Window for (usize, usize) {
    fn kernel(&self) -> usize {
        self.0
    }
    fn stride(&self) -> usize {
        self.1
    }
}
