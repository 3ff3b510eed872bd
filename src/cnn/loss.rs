//! `log_softmax` over the 10 classes, and the negative log-likelihood averaged over the batch
//! (PyTorch `F.log_softmax(z, dim=1)` followed by `F.nll_loss(logp, y)`, reduction `mean`).
use super::float::Float;

/// r[cnn.logsoftmax.forward] `logp[n,j] = z[n,j] − m_n − ln Σ_k exp(z[n,k] − m_n)`, `m_n = max_k z[n,k]`.
///
/// Subtracting the row maximum keeps every `exp` ≤ 1, so large logits cannot overflow.
///
/// # Shapes
/// `z: [n, K]` → `logp: [n, K]`.
#[inline(never)]
pub fn logsoftmax_forward<T: Float, const K: usize>(z: &[T], logp: &mut [T]) {
    assert_eq!(z.len(), logp.len(), "logsoftmax_forward: lengths differ");
    for (zr, lr) in z.chunks_exact(K).zip(logp.chunks_exact_mut(K)) {
        let m = zr.iter().copied().fold(T::neg_infinity(), T::max);
        let s: T = zr.iter().map(|&v| (v - m).exp()).sum();
        let lse = m + s.ln();
        for (l, &v) in lr.iter_mut().zip(zr) {
            *l = v - lse;
        }
    }
}

/// r[cnn.logsoftmax.backward] `∂L/∂z[n,j] = ∂L/∂logp[n,j] − softmax[n,j]·Σ_k ∂L/∂logp[n,k]`.
///
/// `softmax = exp(logp)`. Writes `dz`.
#[inline(never)]
pub fn logsoftmax_backward<T: Float, const K: usize>(logp: &[T], dlogp: &[T], dz: &mut [T]) {
    for ((lr, gr), dr) in logp
        .chunks_exact(K)
        .zip(dlogp.chunks_exact(K))
        .zip(dz.chunks_exact_mut(K))
    {
        let s: T = gr.iter().copied().sum();
        for ((d, &l), &g) in dr.iter_mut().zip(lr).zip(gr) {
            *d = g - l.exp() * s;
        }
    }
}

/// r[cnn.nll.forward] `L = −(1/N)·Σ_n logp[n, y_n]`.
#[inline(never)]
pub fn nll_forward<T: Float, const K: usize>(logp: &[T], labels: &[u8]) -> T {
    let n = labels.len();
    assert_eq!(logp.len(), n * K, "nll_forward: shapes differ");
    let mut s = T::zero();
    for (row, &y) in logp.chunks_exact(K).zip(labels) {
        s += row[y as usize];
    }
    -s / T::c(n as f64)
}

/// r[cnn.nll.backward] `∂L/∂logp[n,j] = −(1/N)·[j = y_n]`. Writes `dlogp`.
#[inline(never)]
pub fn nll_backward<T: Float, const K: usize>(labels: &[u8], n_total: usize, dlogp: &mut [T]) {
    dlogp.fill(T::zero());
    let g = -T::one() / T::c(n_total as f64);
    for (row, &y) in dlogp.chunks_exact_mut(K).zip(labels) {
        row[y as usize] = g;
    }
}
