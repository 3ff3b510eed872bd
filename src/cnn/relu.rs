//! Rectified linear unit, applied in place.
use super::float::Float;

/// r[cnn.relu.forward] `y = max(x, 0)`, in place.
///
/// # Shapes
/// Any; elementwise. PyTorch equivalent: `torch.relu_(x)`.
#[inline(never)]
pub fn relu_forward<T: Float>(x: &mut [T]) {
    for v in x {
        // An unconditional store of a select vectorises; `max` would turn NaN into 0 and hide
        // a diverged run, so NaN is kept visible.
        *v = if *v < T::zero() { T::zero() } else { *v };
    }
}

/// r[cnn.relu.backward] `∂L/∂x = ∂L/∂y · [y > 0]`, in place on `dy`, using the forward output.
///
/// The derivative at exactly 0 is taken as 0 (PyTorch's convention: `threshold_backward`).
#[inline(never)]
pub fn relu_backward<T: Float>(y: &[T], dy: &mut [T]) {
    assert_eq!(y.len(), dy.len(), "relu_backward: lengths differ");
    for (g, &v) in dy.iter_mut().zip(y) {
        *g = if v > T::zero() { *g } else { T::zero() };
    }
}
