//! Rectified linear unit, applied in place.
use super::float::Float;

/// r[cnn.relu.forward] `y = max(x, 0)`, in place.
///
/// # Shapes
/// Any; elementwise. PyTorch equivalent: `torch.relu_(x)`.
pub fn relu_forward<T: Float>(x: &mut [T]) {
    for v in x {
        // `max` would turn NaN into 0 and hide a diverged run; keep NaN visible.
        if *v < T::zero() {
            *v = T::zero();
        }
    }
}

/// r[cnn.relu.backward] `∂L/∂x = ∂L/∂y · [y > 0]`, in place on `dy`, using the forward output.
///
/// The derivative at exactly 0 is taken as 0 (PyTorch's convention: `threshold_backward`).
pub fn relu_backward<T: Float>(y: &[T], dy: &mut [T]) {
    assert_eq!(y.len(), dy.len(), "relu_backward: lengths differ");
    for (g, &v) in dy.iter_mut().zip(y) {
        if v <= T::zero() {
            *g = T::zero();
        }
    }
}
