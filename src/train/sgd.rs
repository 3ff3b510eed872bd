//! Stochastic gradient descent with momentum, PyTorch's `torch.optim.SGD(momentum=μ)`
//! (dampening 0, no Nesterov, no weight decay).
use crate::cnn::{Float, Params};

/// r[cnn.sgd.momentum] `v ← μ·v + ∂L/∂θ`, then `θ ← θ − η·v`, for every parameter.
///
/// PyTorch starts the buffer at the first gradient; starting it at zero gives the same first
/// step (`μ·0 + g = g`), so one code path serves both.
pub fn sgd_momentum<T: Float>(
    params: &mut Params<T>,
    velocity: &mut Params<T>,
    grads: &Params<T>,
    lr: T,
    mu: T,
) {
    for ((p, v), g) in params
        .slices_mut()
        .into_iter()
        .zip(velocity.slices_mut())
        .zip(grads.slices())
    {
        for ((w, m), &d) in p.iter_mut().zip(v.iter_mut()).zip(g) {
            *m = mu * *m + d;
            *w -= lr * *m;
        }
    }
}
