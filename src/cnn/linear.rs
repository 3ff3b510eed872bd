//! Fully connected layer (PyTorch `nn.Linear(IN, OUT)`): `y = x·Wᵀ + b`.
use super::float::Float;
use super::tensor::{View, ViewMut};
use nalgebra::{SMatrix, SVector};

/// Parameters of a linear layer. `weight` is the `IN×OUT` column-major matrix `Wᵀ`, whose
/// memory is PyTorch's row-major `[OUT, IN]` weight.
#[derive(Clone, Debug, PartialEq)]
pub struct Linear<T: Float, const IN: usize, const OUT: usize> {
    /// `Wᵀ`, `IN×OUT` column-major: PyTorch's `[OUT, IN]`.
    pub weight: SMatrix<T, IN, OUT>,
    /// `[OUT]`.
    pub bias: SVector<T, OUT>,
}

impl<T: Float, const IN: usize, const OUT: usize> Linear<T, IN, OUT> {
    /// Trainable parameter count: `IN·OUT + OUT`.
    pub const PARAMS: usize = IN * OUT + OUT;
    /// All zeros.
    pub fn zeros() -> Self {
        Linear {
            weight: SMatrix::zeros(),
            bias: SVector::zeros(),
        }
    }
}

/// r[cnn.linear.forward] `y[n,o] = b[o] + Σ_i W[o,i]·x[n,i]`.
///
/// # Shapes
/// `x: [n, IN]` → `y: [n, OUT]`. PyTorch equivalent: `F.linear(x, weight, bias)`.
#[inline(never)]
pub fn linear_forward<T: Float, const IN: usize, const OUT: usize>(
    p: &Linear<T, IN, OUT>,
    x: View<'_, T, IN, 1, 1>,
    y: ViewMut<'_, T, OUT, 1, 1>,
) {
    let n = x.n();
    assert_eq!(n, y.n(), "linear_forward: batch sizes differ");
    for row in y.0.chunks_exact_mut(OUT) {
        row.copy_from_slice(p.bias.as_slice());
    }
    // y[n, o] += Σ_i x[n, i]·W[o, i]; W[o, i] sits at o·IN + i.
    T::gemm(
        n,
        IN,
        OUT,
        T::one(),
        x.0,
        (IN, 1),
        p.weight.as_slice(),
        (1, IN),
        T::one(),
        y.0,
        (OUT, 1),
    );
}

/// r[cnn.linear.backward_input] `∂L/∂x[n,i] = Σ_o W[o,i]·∂L/∂y[n,o]`. Overwrites `dx`.
#[inline(never)]
pub fn linear_backward_input<T: Float, const IN: usize, const OUT: usize>(
    p: &Linear<T, IN, OUT>,
    dy: View<'_, T, OUT, 1, 1>,
    dx: ViewMut<'_, T, IN, 1, 1>,
) {
    let n = dy.n();
    T::gemm(
        n,
        OUT,
        IN,
        T::one(),
        dy.0,
        (OUT, 1),
        p.weight.as_slice(),
        (IN, 1),
        T::zero(),
        dx.0,
        (IN, 1),
    );
}

/// r[cnn.linear.backward_weight] `∂L/∂W[o,i] = Σ_n ∂L/∂y[n,o]·x[n,i]`. Accumulates.
#[inline(never)]
pub fn linear_backward_weight<T: Float, const IN: usize, const OUT: usize>(
    dy: View<'_, T, OUT, 1, 1>,
    x: View<'_, T, IN, 1, 1>,
    dw: &mut SMatrix<T, IN, OUT>,
) {
    let n = dy.n();
    T::gemm(
        OUT,
        n,
        IN,
        T::one(),
        dy.0,
        (1, OUT),
        x.0,
        (IN, 1),
        T::one(),
        dw.as_mut_slice(),
        (IN, 1),
    );
}

/// r[cnn.linear.backward_bias] `∂L/∂b[o] = Σ_n ∂L/∂y[n,o]`. Accumulates.
#[inline(never)]
pub fn linear_backward_bias<T: Float, const OUT: usize>(
    dy: View<'_, T, OUT, 1, 1>,
    db: &mut SVector<T, OUT>,
) {
    for row in dy.0.chunks_exact(OUT) {
        for (o, &g) in row.iter().enumerate() {
            db[o] += g;
        }
    }
}
