//! Shared by the CNN gradient checks: the central-difference checker and its tolerance
//! presets. The presets and their justification are also in spec/cnn.md, "Tolerance presets".
#![allow(dead_code)]

/// A finite-difference step and a mixed tolerance: an analytic derivative `a` agrees with
/// the central difference `n` when `|a − n| ≤ atol + rtol·max(|a|, |n|)`.
#[derive(Clone, Copy, Debug)]
pub struct Tol {
    pub h: f64,
    pub atol: f64,
    pub rtol: f64,
}

/// Single layers in f64, O(1) inputs, loss `Σ g⊙y` of at most a few hundred terms.
/// Truncation `h²·|f‴|/6 ≈ 2·10⁻¹¹·|f‴|` (zero for the linear layers); rounding
/// `≈ ε·Σ|g⊙y|/h ≈ 2·10⁻¹⁶·10²/10⁻⁵ ≈ 2·10⁻⁹`. Observed worst case is 2·10⁻⁹ (0.6% of the
/// allowance), while a wrong gradient (error O(10⁻¹)) exceeds it by 10⁵.
pub const LAYER: Tol = Tol {
    h: 1e-5,
    atol: 1e-7,
    rtol: 1e-6,
};

/// The whole network in f64, batch of 4 to 10, loss ≈ 2.3, for single entries and for
/// directional derivatives along unit vectors. Rounding of a loss that sums ~10⁵ products is
/// ≈ 10⁻¹⁴ absolute, divided by 2h = 2·10⁻⁶ gives ≈ 10⁻⁸, whatever the (unit) direction of the
/// step; truncation `h²·|f‴|/6` is ≈ 10⁻¹², far below. Observed worst case 5·10⁻¹⁰ (0.45% of
/// the allowance) over 1,719 entries and 64 directions.
pub const NET: Tol = Tol {
    h: 1e-6,
    atol: 1e-7,
    rtol: 1e-5,
};

/// The worst disagreement found by [`check`].
#[derive(Debug, Clone, Copy, Default)]
pub struct Report {
    /// Largest `|a − n|`.
    pub max_abs: f64,
    /// Largest `|a − n| / (atol + rtol·max(|a|,|n|))`; ≤ 1 means pass.
    pub max_ratio: f64,
    pub checked: usize,
}

/// Compares `analytic[i]` with `(L(+h) − L(−h)) / 2h` for every `i` in `entries`, where
/// `loss_at(i, d)` evaluates the loss with entry `i` shifted by `d` (and must leave the input
/// as it found it). Returns the worst case, or a message naming the first failing entry.
pub fn check(
    what: &str,
    analytic: &[f64],
    entries: impl IntoIterator<Item = usize>,
    tol: Tol,
    mut loss_at: impl FnMut(usize, f64) -> f64,
) -> Result<Report, String> {
    let mut r = Report::default();
    for i in entries {
        let n = (loss_at(i, tol.h) - loss_at(i, -tol.h)) / (2.0 * tol.h);
        let a = analytic[i];
        let err = (a - n).abs();
        let allowed = tol.atol + tol.rtol * a.abs().max(n.abs());
        let ratio = err / allowed;
        if ratio.is_nan() || ratio > 1.0 {
            return Err(format!(
                "{what}[{i}]: analytic {a:.12e} vs numeric {n:.12e} (|diff| {err:.3e} > {allowed:.3e})"
            ));
        }
        r.max_abs = r.max_abs.max(err);
        r.max_ratio = r.max_ratio.max(ratio);
        r.checked += 1;
    }
    Ok(r)
}

/// `loss(x with x[i] += d)`, for checks over a plain input vector.
pub fn shifted(x: &[f64], i: usize, d: f64, loss: impl Fn(&[f64]) -> f64) -> f64 {
    let mut y = x.to_vec();
    y[i] += d;
    loss(&y)
}

/// `Σ g⊙y`: the loss every layer check uses, so that the upstream gradient is `g`, random,
/// never the all-ones vector of a plain sum (which hides transposed or permuted gradients).
pub fn dot(g: &[f64], y: &[f64]) -> f64 {
    assert_eq!(g.len(), y.len());
    g.iter().zip(y).map(|(a, b)| a * b).sum()
}
