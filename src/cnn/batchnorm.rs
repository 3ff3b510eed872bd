//! Batch normalisation over the channels of a `[n, C, H, W]` batch (PyTorch
//! `nn.BatchNorm2d(C)`, eps = 1e-5, momentum = 0.1, affine, tracking running statistics).
//!
//! Conventions (also in spec/cnn.md):
//! * training normalises with the batch mean and the **biased** variance (divide by m);
//! * `running_var` is updated with the **unbiased** variance (divide by m − 1);
//! * evaluation normalises with the running statistics;
//! * m = n·H·W, the number of values per channel in the batch.
//!
//! The batch reductions are split from the elementwise passes so that a caller can compute
//! them over chunks of images in parallel and add the partial sums in a fixed order.
use super::float::Float;
use super::reduce;
use super::tensor::{View, ViewMut};
use nalgebra::SVector;

/// PyTorch's default eps.
pub const EPS: f64 = 1e-5;
/// PyTorch's default momentum for the running statistics.
pub const MOMENTUM: f64 = 0.1;

/// The affine parameters γ (`weight`) and β (`bias`).
#[derive(Clone, Debug, PartialEq)]
pub struct BatchNorm<T: Float, const C: usize> {
    /// γ, one scale per channel.
    pub weight: SVector<T, C>,
    /// β, one shift per channel.
    pub bias: SVector<T, C>,
}

/// The running statistics (buffers, not trained).
#[derive(Clone, Debug, PartialEq)]
pub struct Running<T: Float, const C: usize> {
    /// Running mean per channel.
    pub mean: SVector<T, C>,
    /// Running (unbiased) variance per channel.
    pub var: SVector<T, C>,
    /// Number of train-mode batches seen, as PyTorch counts them.
    pub num_batches_tracked: i64,
}

impl<T: Float, const C: usize> BatchNorm<T, C> {
    /// Trainable parameter count: `2·C`.
    pub const PARAMS: usize = 2 * C;
    /// PyTorch's initial values: γ = 1, β = 0.
    pub fn new() -> Self {
        BatchNorm {
            weight: SVector::repeat(T::one()),
            bias: SVector::zeros(),
        }
    }
    /// All zeros (gradient accumulators).
    pub fn zeros() -> Self {
        BatchNorm {
            weight: SVector::zeros(),
            bias: SVector::zeros(),
        }
    }
}

impl<T: Float, const C: usize> Default for BatchNorm<T, C> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T: Float, const C: usize> Running<T, C> {
    /// PyTorch's initial values: mean 0, var 1, no batches.
    pub fn new() -> Self {
        Running {
            mean: SVector::zeros(),
            var: SVector::repeat(T::one()),
            num_batches_tracked: 0,
        }
    }
}

impl<T: Float, const C: usize> Default for Running<T, C> {
    fn default() -> Self {
        Self::new()
    }
}

/// Adds per-channel `Σx` and `Σx²` of a batch (or chunk) to `s1`, `s2` (accumulated in f64,
/// each image's plane summed in the order of [`super::reduce`]).
#[inline(never)]
pub fn bn_partial_sums<T: Float, const C: usize, const H: usize, const W: usize>(
    x: View<'_, T, C, H, W>,
    s1: &mut [f64; C],
    s2: &mut [f64; C],
) {
    for i in 0..x.n() {
        let xi = x.image(i);
        for c in 0..C {
            // f64 throughout: the one-pass form E[x²] − μ² would cancel catastrophically in
            // f32 when a channel's mean is large against its spread.
            let (a, b) = reduce::sum_sq_f64(&xi[c * H * W..(c + 1) * H * W]);
            s1[c] += a;
            s2[c] += b;
        }
    }
}

/// r[cnn.bn.batch_stats] `μ_c = (1/m)Σx`, `σ²_c = (1/m)Σx² − μ_c²` (biased), over m values.
///
/// Returns `(μ, σ²)` from the sums of [`bn_partial_sums`]. The variance is clamped at 0
/// against rounding.
#[inline(never)]
pub fn bn_batch_stats<T: Float, const C: usize>(
    s1: &[f64; C],
    s2: &[f64; C],
    m: usize,
) -> (SVector<T, C>, SVector<T, C>) {
    let mf = m as f64;
    let mut mean = SVector::<T, C>::zeros();
    let mut var = SVector::<T, C>::zeros();
    for c in 0..C {
        let mu = s1[c] / mf;
        mean[c] = T::c(mu);
        var[c] = T::c((s2[c] / mf - mu * mu).max(0.0));
    }
    (mean, var)
}

/// `1/√(σ² + ε)`, computed the one way every pass (fused or not) computes it.
#[inline(always)]
pub fn inv_std<T: Float>(var: T) -> T {
    T::one() / (var + T::c(EPS)).sqrt()
}

/// r[cnn.bn.forward_train] `x̂ = (x − μ_c)/√(σ²_c + ε)`, `y = γ_c·x̂ + β_c`, with batch statistics.
///
/// Writes `xhat` (kept for the backward pass) and `y`.
///
/// # Shapes
/// `x`, `xhat`, `y`: `[n, C, H, W]`.
#[inline(never)]
pub fn bn_forward_train<T: Float, const C: usize, const H: usize, const W: usize>(
    p: &BatchNorm<T, C>,
    mean: &SVector<T, C>,
    var: &SVector<T, C>,
    x: View<'_, T, C, H, W>,
    xhat: &mut [T],
    y: ViewMut<'_, T, C, H, W>,
) {
    for (k, ((xp, hp), yp)) in
        x.0.chunks_exact(H * W)
            .zip(xhat.chunks_exact_mut(H * W))
            .zip(y.0.chunks_exact_mut(H * W))
            .enumerate()
    {
        let c = k % C;
        let inv = inv_std(var[c]);
        let (g, b, mu) = (p.weight[c], p.bias[c], mean[c]);
        for ((&v, h), o) in xp.iter().zip(hp.iter_mut()).zip(yp.iter_mut()) {
            let xh = (v - mu) * inv;
            *h = xh;
            *o = g * xh + b;
        }
    }
}

/// r[cnn.bn.running_update] `r_μ ← (1−m)·r_μ + m·μ`, `r_σ² ← (1−m)·r_σ² + m·σ²·M/(M−1)`.
///
/// `m` is the momentum (0.1), `M` the count per channel; the factor `M/(M−1)` turns the biased
/// batch variance into the unbiased one, as PyTorch does. Also counts the batch.
///
/// # Panics
/// If `count < 2`: the unbiased variance is undefined there, and PyTorch raises "Expected more
/// than 1 value per channel when training". The network never gets there (its smallest
/// BatchNorm plane is 8×8, so `count ≥ 64`).
#[inline(never)]
pub fn bn_running_update<T: Float, const C: usize>(
    r: &mut Running<T, C>,
    mean: &SVector<T, C>,
    var: &SVector<T, C>,
    count: usize,
) {
    assert!(
        count > 1,
        "bn_running_update: the unbiased variance needs more than 1 value per channel (got {count})"
    );
    let mom = T::c(MOMENTUM);
    let unbias = T::c(count as f64 / (count as f64 - 1.0));
    for c in 0..C {
        r.mean[c] = (T::one() - mom) * r.mean[c] + mom * mean[c];
        r.var[c] = (T::one() - mom) * r.var[c] + mom * var[c] * unbias;
    }
    r.num_batches_tracked += 1;
}

/// r[cnn.bn.forward_eval] `y = γ_c·(x − r_μ)/√(r_σ² + ε) + β_c`, with the running statistics.
#[inline(never)]
pub fn bn_forward_eval<T: Float, const C: usize, const H: usize, const W: usize>(
    p: &BatchNorm<T, C>,
    r: &Running<T, C>,
    x: ViewMut<'_, T, C, H, W>,
) {
    let eps = T::c(EPS);
    for (k, xp) in x.0.chunks_exact_mut(H * W).enumerate() {
        let c = k % C;
        let scale = p.weight[c] / (r.var[c] + eps).sqrt();
        let shift = p.bias[c] - r.mean[c] * scale;
        for v in xp {
            *v = *v * scale + shift;
        }
    }
}

/// r[cnn.bn.backward_params] `∂L/∂γ_c = Σ ∂L/∂y·x̂`, `∂L/∂β_c = Σ ∂L/∂y`. Accumulates.
///
/// Each image's plane is summed in the order of [`super::reduce`].
#[inline(never)]
pub fn bn_backward_params<T: Float, const C: usize, const H: usize, const W: usize>(
    dy: View<'_, T, C, H, W>,
    xhat: &[T],
    dgamma: &mut SVector<T, C>,
    dbeta: &mut SVector<T, C>,
) {
    for (k, (gp, hp)) in
        dy.0.chunks_exact(H * W)
            .zip(xhat.chunks_exact(H * W))
            .enumerate()
    {
        let c = k % C;
        let (a, b) = reduce::dot_sum(gp, hp);
        dgamma[c] += a;
        dbeta[c] += b;
    }
}

/// r[cnn.bn.backward_input] `∂L/∂x = γ_c/√(σ²_c+ε) · (∂L/∂y − (1/m)·∂L/∂β_c − x̂·(1/m)·∂L/∂γ_c)`.
///
/// `dgamma`, `dbeta` are the whole batch's sums from [`bn_backward_params`]; `m = n·H·W` of the
/// whole batch. Overwrites `dy` with `∂L/∂x`.
#[allow(clippy::too_many_arguments)]
#[inline(never)]
pub fn bn_backward_input<T: Float, const C: usize, const H: usize, const W: usize>(
    p: &BatchNorm<T, C>,
    var: &SVector<T, C>,
    dgamma: &SVector<T, C>,
    dbeta: &SVector<T, C>,
    m: usize,
    xhat: &[T],
    dy: ViewMut<'_, T, C, H, W>,
) {
    let inv_m = T::one() / T::c(m as f64);
    for (k, (gp, hp)) in
        dy.0.chunks_exact_mut(H * W)
            .zip(xhat.chunks_exact(H * W))
            .enumerate()
    {
        let c = k % C;
        let scale = p.weight[c] * inv_std(var[c]);
        let mb = dbeta[c] * inv_m;
        let mg = dgamma[c] * inv_m;
        for (g, &h) in gp.iter_mut().zip(hp) {
            *g = scale * (*g - mb - h * mg);
        }
    }
}
