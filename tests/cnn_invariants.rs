//! Invariants of the backward passes that hold for every input, as properties (spec/cnn.md,
//! "Gradient verification", invariants):
//!
//! * BatchNorm's input gradient sums to zero per channel, and its inner product with `x̂` is
//!   `(γ/s)·(ε/(σ²+ε))·∂L/∂γ` per channel (so it is orthogonal to `x̂` exactly when `ε = 0`).
//! * The log-softmax gradient sums to zero over the classes of each row, for any upstream
//!   gradient `g`: `Σ_k dz_k = Σ_k g_k − (Σ_k p_k)·Σ_j g_j = (1 − Σ_k p_k)·Σ_j g_j = 0`; in
//!   particular for the NLL upstream, where `dz = (p − onehot)/N`.
//! * Convolution, at the seven real shapes of the network: the input gradient is the adjoint
//!   of the bias-free forward map, `⟨conv(x; W, 0), y⟩ = ⟨x, dX(W; y)⟩`; the weight and bias
//!   gradients are the adjoints of the forward map's linear dependence on `W` and `b`,
//!   `⟨dW(y, x), W'⟩ = ⟨conv(x; W', 0), y⟩` and `⟨db(y), b'⟩ = ⟨conv(0; 0, b'), y⟩` — in f64
//!   for the generic functions, and in f32 for the AVX-512 kernels of `kernels::conv` when
//!   the CPU has them.
//!
//! # Tolerances
//! Each side of an identity is the same set of products summed in some order. For any order,
//! with or without FMA, `|computed − exact| ≤ γ_N·Σ|terms|`, `γ_N = N·u/(1 − N·u)` (Higham,
//! *Accuracy and Stability of Numerical Algorithms*, §3.1), `N` the longest chain of roundings
//! and `u` the unit roundoff. `Σ|terms|` is computed by the same expression on absolute values.
//! The BatchNorm and log-softmax sums are short (≤ 100 terms, each formed with a handful of
//! roundings), so `γ_N` is below 10⁻¹³; they use `1e-12·Σ|terms|`. The convolution identities
//! use the rigorous `2·γ_N·Σ|terms|` with `N` the sum of all the summation lengths involved
//! (about 6·10⁴ at conv2 in f64, so ≈ 1.3·10⁻¹¹ relative), plus, for f32, `γ_N` of the f32
//! sums (`u = 2⁻²⁴`). Every property has a twin: a wrong backward pass fed to the same
//! predicate is rejected.
mod proptest_cases;
use gradspec::cnn::batchnorm::{
    BatchNorm, EPS, bn_backward_input, bn_backward_params, bn_batch_stats, bn_forward_train,
    bn_partial_sums,
};
use gradspec::cnn::conv::{
    ConvParams, ConvShape, conv_backward_bias, conv_backward_input, conv_backward_weight,
    conv_forward,
};
use gradspec::cnn::loss::{logsoftmax_backward, logsoftmax_forward, nll_backward};
use gradspec::cnn::net::{CLASSES, Conv1, Conv2, Conv3, Conv4, Conv5, Conv6, Conv7};
use gradspec::cnn::tensor::{View, ViewMut};
use gradspec::kernels::conv::{
    scratch_len_of, try_conv_backward_bias, try_conv_backward_input, try_conv_backward_weight,
    try_conv_forward,
};
use nalgebra::SVector;
use proptest::prelude::*;
use proptest_cases::fixed_cases;
use rand::{Rng, SeedableRng};

fn config(cases: u32) -> ProptestConfig {
    ProptestConfig {
        failure_persistence: Some(Box::new(
            proptest::test_runner::FileFailurePersistence::Direct(
                "proptest-regressions/cnn_invariants.txt",
            ),
        )),
        ..fixed_cases(cases)
    }
}

fn vals(n: usize, r: f64) -> impl Strategy<Value = Vec<f64>> {
    proptest::collection::vec(-r..r, n)
}

/// `|value| ≤ allowed`, or a message.
fn within(what: &str, value: f64, allowed: f64) -> Result<f64, String> {
    let ratio = value.abs() / allowed;
    if ratio.is_nan() || ratio > 1.0 {
        Err(format!("{what}: {value:.3e} exceeds {allowed:.3e}"))
    } else {
        Ok(ratio)
    }
}

/// `γ_N = N·u/(1 − N·u)`.
fn gamma(n: usize, u: f64) -> f64 {
    let nu = n as f64 * u;
    nu / (1.0 - nu)
}

const U64: f64 = f64::EPSILON / 2.0;
const U32: f64 = f32::EPSILON as f64 / 2.0;

fn dot(a: &[f64], b: &[f64]) -> f64 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

fn abs(v: &[f64]) -> Vec<f64> {
    v.iter().map(|a| a.abs()).collect()
}

// ---------------------------------------------------------------- BatchNorm

const C: usize = 3;
const H: usize = 4;
const W: usize = 5;

/// One train-mode BatchNorm2d(3) over images of 3×4×5, and its true backward pass.
struct BnCase {
    gamma: SVector<f64, C>,
    var: SVector<f64, C>,
    xhat: Vec<f64>,
    g: Vec<f64>,
    dgamma: SVector<f64, C>,
    dbeta: SVector<f64, C>,
    dx: Vec<f64>,
    m: usize,
}

fn bn_case(x: &[f64], gamma: &[f64], g: &[f64]) -> BnCase {
    let mut p = BatchNorm::<f64, C>::new();
    p.weight.as_mut_slice().copy_from_slice(gamma);
    let (mut s1, mut s2) = ([0.0; C], [0.0; C]);
    bn_partial_sums::<f64, C, H, W>(View(x), &mut s1, &mut s2);
    let m = x.len() / C;
    let (mean, var) = bn_batch_stats::<f64, C>(&s1, &s2, m);
    let mut xhat = vec![0.0; x.len()];
    let mut y = vec![0.0; x.len()];
    bn_forward_train::<f64, C, H, W>(&p, &mean, &var, View(x), &mut xhat, ViewMut(&mut y));
    let (mut dgamma, mut dbeta) = (SVector::zeros(), SVector::zeros());
    bn_backward_params::<f64, C, H, W>(View(g), &xhat, &mut dgamma, &mut dbeta);
    let mut dx = g.to_vec();
    bn_backward_input::<f64, C, H, W>(&p, &var, &dgamma, &dbeta, m, &xhat, ViewMut(&mut dx));
    BnCase {
        gamma: p.weight,
        var,
        xhat,
        g: g.to_vec(),
        dgamma,
        dbeta,
        dx,
        m,
    }
}

/// Per channel: `|Σ dx| ≤ 1e-12·S` and `|Σ dx·x̂ − (γ/s)·(ε/(σ²+ε))·dγ| ≤ 1e-12·S'`, where
/// `S = Σ |γ/s|·(|g| + |dβ|/m + |x̂|·|dγ|/m)` is the sum of the magnitudes of the terms of
/// `dx` and `S'` the same weighted by `|x̂|`. Returns the worst ratio.
fn bn_invariants(c: &BnCase, dx: &[f64]) -> Result<f64, String> {
    let mut worst = 0.0f64;
    for ch in 0..C {
        let (mut sum, mut ortho, mut s, mut s2) = (0.0, 0.0, 0.0, 0.0);
        let scale = c.gamma[ch] / (c.var[ch] + EPS).sqrt();
        let (mb, mg) = (c.dbeta[ch] / c.m as f64, c.dgamma[ch] / c.m as f64);
        for (k, plane) in dx.chunks_exact(H * W).enumerate() {
            if k % C != ch {
                continue;
            }
            for (j, &d) in plane.iter().enumerate() {
                let at = k * H * W + j;
                let xh = c.xhat[at];
                let t = scale.abs() * (c.g[at].abs() + mb.abs() + xh.abs() * mg.abs());
                sum += d;
                ortho += d * xh;
                s += t;
                s2 += t * xh.abs();
            }
        }
        let expected = scale * (EPS / (c.var[ch] + EPS)) * c.dgamma[ch];
        worst = worst.max(within(&format!("bn Σdx[{ch}]"), sum, 1e-12 * s)?);
        worst = worst.max(within(
            &format!("bn Σdx·x̂[{ch}] − (γ/s)(ε/(σ²+ε))dγ"),
            ortho - expected,
            1e-12 * s2 + 1e-12 * expected.abs(),
        )?);
    }
    Ok(worst)
}

fn bn_strategy() -> impl Strategy<Value = (Vec<f64>, Vec<f64>, Vec<f64>)> {
    (2usize..=4).prop_flat_map(|n| {
        let len = n * C * H * W;
        (vals(len, 2.0), vals(C, 2.0), vals(len, 2.0))
    })
}

proptest! {
    #![proptest_config(config(64))]

    /// Verifies r[cnn.bn.backward_input].
    /// Checks `cnn.bn.backward_input` through its invariants: per channel, `Σ dx = 0` and `Σ dx·x̂ =
    /// (γ/s)·(ε/(σ²+ε))·∂L/∂γ` (m = 40 to 80 values per channel).
    #[test]
    fn batchnorm_input_gradient_sums_to_zero_and_is_orthogonal_to_xhat((x, gamma, g) in bn_strategy()) {
        let c = bn_case(&x, &gamma, &g);
        let r = bn_invariants(&c, &c.dx);
        prop_assert!(r.is_ok(), "{}", r.unwrap_err());
    }
}

/// The invariants reject a dx that forgets the batch statistics (`(γ/s)·g`), and one that
/// keeps the mean term but drops the `x̂·dγ/m` term (its sum is still zero; its inner product
/// with x̂ is not).
#[test]
fn batchnorm_invariants_reject_wrong_input_gradients() {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(5);
    let mut v = |k: usize| -> Vec<f64> { (0..k).map(|_| rng.random_range(-2.0..2.0)).collect() };
    let (x, gamma, g) = (v(2 * C * H * W), v(C), v(2 * C * H * W));
    let c = bn_case(&x, &gamma, &g);
    println!(
        "observed bn invariants: worst ratio {:.2e}",
        bn_invariants(&c, &c.dx).unwrap()
    );
    let scale = |at: usize| {
        let ch = (at / (H * W)) % C;
        (ch, c.gamma[ch] / (c.var[ch] + EPS).sqrt())
    };
    let plain: Vec<f64> = (0..g.len()).map(|at| scale(at).1 * g[at]).collect();
    let e = bn_invariants(&c, &plain).unwrap_err();
    assert!(e.starts_with("bn Σdx["), "{e}");
    let no_gamma_term: Vec<f64> = (0..g.len())
        .map(|at| {
            let (ch, s) = scale(at);
            s * (g[at] - c.dbeta[ch] / c.m as f64)
        })
        .collect();
    let e = bn_invariants(&c, &no_gamma_term).unwrap_err();
    assert!(e.starts_with("bn Σdx·x̂["), "{e}");
}

// ---------------------------------------------------------------- log-softmax

/// Per row: `|Σ_k dz_k| ≤ 1e-12·Σ_k (|g_k| + p_k·|Σ_j g_j|)`. Returns the worst ratio.
fn logsoftmax_sums_to_zero(logp: &[f64], g: &[f64], dz: &[f64]) -> Result<f64, String> {
    let mut worst = 0.0f64;
    for (row, ((l, g), d)) in logp
        .chunks_exact(CLASSES)
        .zip(g.chunks_exact(CLASSES))
        .zip(dz.chunks_exact(CLASSES))
        .enumerate()
    {
        let sg: f64 = g.iter().sum();
        let scale: f64 = g
            .iter()
            .zip(l)
            .map(|(g, l)| g.abs() + l.exp() * sg.abs())
            .sum();
        let sum: f64 = d.iter().sum();
        worst = worst.max(within(&format!("Σ_k dz[{row}]"), sum, 1e-12 * scale)?);
    }
    Ok(worst)
}

fn logsoftmax(z: &[f64]) -> Vec<f64> {
    let mut l = vec![0.0; z.len()];
    logsoftmax_forward::<f64, CLASSES>(z, &mut l);
    l
}

proptest! {
    #![proptest_config(config(64))]

    /// Verifies r[cnn.logsoftmax.backward] r[cnn.nll.backward].
    /// Checks `cnn.logsoftmax.backward` through its invariant: over the 10 classes of each row, `Σ_k dz_k
    /// = (1 − Σ_k p_k)·Σ_j g_j = 0`, for a random upstream `g` and for the NLL upstream of
    /// `cnn.nll.backward` (logits in [−30, 30], so some rows are saturated).
    #[test]
    fn logsoftmax_gradient_sums_to_zero_over_classes(
        z in vals(4 * CLASSES, 30.0),
        g in vals(4 * CLASSES, 2.0),
        labels in proptest::collection::vec(0u8..CLASSES as u8, 4),
    ) {
        let l = logsoftmax(&z);
        let mut dz = vec![0.0; z.len()];
        logsoftmax_backward::<f64, CLASSES>(&l, &g, &mut dz);
        let r = logsoftmax_sums_to_zero(&l, &g, &dz);
        prop_assert!(r.is_ok(), "{}", r.unwrap_err());
        let mut gn = vec![0.0; z.len()];
        nll_backward::<f64, CLASSES>(&labels, 4, &mut gn);
        logsoftmax_backward::<f64, CLASSES>(&l, &gn, &mut dz);
        let r = logsoftmax_sums_to_zero(&l, &gn, &dz);
        prop_assert!(r.is_ok(), "{}", r.unwrap_err());
    }
}

/// The invariant rejects a log-softmax gradient without the `p·Σg` term (`dz = g`).
#[test]
fn logsoftmax_invariant_rejects_a_gradient_without_the_normaliser_term() {
    let z: Vec<f64> = (0..2 * CLASSES)
        .map(|i| (i as f64 * 1.3).sin() * 4.0)
        .collect();
    let g: Vec<f64> = (0..2 * CLASSES).map(|i| (i as f64 * 0.7).cos()).collect();
    let l = logsoftmax(&z);
    let mut dz = vec![0.0; z.len()];
    logsoftmax_backward::<f64, CLASSES>(&l, &g, &mut dz);
    let ok = logsoftmax_sums_to_zero(&l, &g, &dz).unwrap();
    println!("observed log-softmax invariant: worst ratio {ok:.2e}");
    let e = logsoftmax_sums_to_zero(&l, &g, &g).unwrap_err();
    assert!(e.starts_with("Σ_k dz["), "{e}");
}

// ---------------------------------------------------------------- convolution, f64

/// A deliberate mistake in one of the convolution's backward passes, for the twins.
#[derive(Clone, Copy, PartialEq, Debug)]
enum ConvWrong {
    None,
    /// dX from the spatially flipped kernel.
    FlipDx,
    /// dW with the kernel flipped.
    FlipDw,
    /// db of the last image only.
    DbLastImage,
}

fn seeded(n: usize, rng: &mut impl Rng) -> Vec<f64> {
    (0..n).map(|_| rng.random_range(-1.0..1.0)).collect()
}

fn flip<S: ConvShape>(w: &[f64]) -> Vec<f64> {
    let (cin, cout, k) = (S::CIN, S::COUT, S::K);
    let mut f = w.to_vec();
    for o in 0..cout {
        for c in 0..cin {
            for ki in 0..k {
                for kj in 0..k {
                    let at = |a: usize, b: usize| ((o * cin + c) * k + a) * k + b;
                    f[at(ki, kj)] = w[at(k - 1 - ki, k - 1 - kj)];
                }
            }
        }
    }
    f
}

fn conv_of<T: gradspec::cnn::Float, S: ConvShape>(w: &[T], b: &[T]) -> S::Params<T> {
    let mut p = S::Params::<T>::zeros();
    p.weight_mut().copy_from_slice(w);
    p.bias_mut().copy_from_slice(b);
    p
}

/// `conv(x; w, b)` in f64 by the generic function.
fn fwd<S: ConvShape>(x: &[f64], w: &[f64], b: &[f64]) -> Vec<f64> {
    let n = x.len() / (S::CIN * S::H * S::W);
    let mut y = vec![0.0; n * S::COUT * S::OH * S::OW];
    let mut col = vec![0.0; S::KK * S::OH * S::OW];
    conv_forward::<f64, S>(
        &conv_of::<_, S>(w, b),
        x.into(),
        (&mut y[..]).into(),
        &mut col,
    );
    y
}

/// The three adjoint identities of one convolution shape over `n` images drawn from `seed`,
/// in f64 by the generic functions of `cnn::conv`, with one backward pass possibly corrupted
/// by `wrong`. Returns the worst ratio to the tolerance `2·γ_N·Σ|terms|`.
fn conv_adjoints_f64<S: ConvShape>(n: usize, seed: u64, wrong: ConvWrong) -> Result<f64, String> {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let (xl, yl) = (n * S::CIN * S::H * S::W, n * S::COUT * S::OH * S::OW);
    let (x, y, w, w2, b2) = (
        seeded(xl, &mut rng),
        seeded(yl, &mut rng),
        seeded(S::KK * S::COUT, &mut rng),
        seeded(S::KK * S::COUT, &mut rng),
        seeded(S::COUT, &mut rng),
    );
    let zb = vec![0.0; S::COUT];
    let f = fwd::<S>;
    let tol = 2.0
        * gamma(
            yl + xl + S::KK + S::COUT * S::K * S::K + n * S::OH * S::OW + 4,
            U64,
        );
    let mut col = vec![0.0; S::KK * S::OH * S::OW];

    // ⟨conv(x; W, 0), y⟩ = ⟨x, dX(W; y)⟩
    let wb = if wrong == ConvWrong::FlipDx {
        flip::<S>(&w)
    } else {
        w.clone()
    };
    let mut dx = vec![0.0; xl];
    conv_backward_input::<f64, S>(
        &conv_of::<_, S>(&wb, &zb),
        (&y[..]).into(),
        (&mut dx[..]).into(),
        &mut col,
    );
    let lhs = dot(&f(&x, &w, &zb), &y);
    let scale = dot(&f(&abs(&x), &abs(&w), &zb), &abs(&y));
    let r1 = within(
        "conv ⟨conv(x), y⟩ − ⟨x, dX(y)⟩",
        lhs - dot(&x, &dx),
        tol * scale,
    )?;

    // ⟨dW(y, x), W'⟩ = ⟨conv(x; W', 0), y⟩ and ⟨db(y), b'⟩ = ⟨conv(0; 0, b'), y⟩
    let mut g = S::Params::<f64>::zeros();
    conv_backward_weight::<f64, S>((&y[..]).into(), (&x[..]).into(), &mut g, &mut col);
    let ylast = &y[(n - 1) * S::COUT * S::OH * S::OW..];
    conv_backward_bias::<f64, S>(
        if wrong == ConvWrong::DbLastImage {
            ylast.into()
        } else {
            (&y[..]).into()
        },
        &mut g,
    );
    let mut dw = g.weight().to_vec();
    if wrong == ConvWrong::FlipDw {
        dw = flip::<S>(&dw);
    }
    let rhs = dot(&f(&x, &w2, &zb), &y);
    let scale = dot(&f(&abs(&x), &abs(&w2), &zb), &abs(&y));
    let r2 = within(
        "conv ⟨dW(y, x), W'⟩ − ⟨conv(x; W'), y⟩",
        dot(&dw, &w2) - rhs,
        tol * scale,
    )?;
    let zx = vec![0.0; xl];
    let zw = vec![0.0; S::KK * S::COUT];
    let rhs = dot(&f(&zx, &zw, &b2), &y);
    let scale = dot(&f(&zx, &zw, &abs(&b2)), &abs(&y));
    let r3 = within(
        "conv ⟨db(y), b'⟩ − ⟨conv(0; 0, b'), y⟩",
        dot(g.bias(), &b2) - rhs,
        tol * scale,
    )?;
    Ok(r1.max(r2).max(r3))
}

/// Runs [`conv_adjoints_f64`] at the seven shapes of the network.
fn all_shapes_f64(n: usize, seed: u64) -> Result<Vec<(&'static str, f64)>, String> {
    let w = ConvWrong::None;
    Ok(vec![
        ("conv1", conv_adjoints_f64::<Conv1>(n, seed, w)?),
        ("conv2", conv_adjoints_f64::<Conv2>(n, seed, w)?),
        ("conv3", conv_adjoints_f64::<Conv3>(n, seed, w)?),
        ("conv4", conv_adjoints_f64::<Conv4>(n, seed, w)?),
        ("conv5", conv_adjoints_f64::<Conv5>(n, seed, w)?),
        ("conv6", conv_adjoints_f64::<Conv6>(n, seed, w)?),
        ("conv7", conv_adjoints_f64::<Conv7>(n, seed, w)?),
    ])
}

proptest! {
    #![proptest_config(config(6))]

    /// Verifies r[cnn.conv.backward_input] r[cnn.conv.backward_weight] r[cnn.conv.backward_bias] r[cnn.conv.forward].
    /// Checks `cnn.conv.backward_input` `cnn.conv.backward_weight` `cnn.conv.backward_bias` as the
    /// adjoints of `cnn.conv.forward`, in f64, at the seven real shapes of the network (conv1 1→16
    /// on 28×28, conv2 16→32 on 26×26, conv3 32→8 1×1 on 24×24, conv4, conv5, conv6, conv7 16→32 on
    /// 4×4), 2 images.
    #[test]
    fn conv_backward_passes_are_adjoints_of_the_forward_pass_at_real_shapes_f64(seed in any::<u64>()) {
        let r = all_shapes_f64(2, seed);
        prop_assert!(r.is_ok(), "{}", r.unwrap_err());
    }
}

/// The identities reject a dX from the flipped kernel, a flipped dW and a db of the last image
/// only, at conv2's shape.
#[test]
fn conv_adjoint_identities_reject_wrong_backward_passes() {
    for (name, r) in all_shapes_f64(2, 99).unwrap() {
        println!("observed conv adjoints f64 {name}: worst ratio {r:.2e}");
    }
    for (wrong, starts) in [
        (ConvWrong::FlipDx, "conv ⟨conv(x), y⟩"),
        (ConvWrong::FlipDw, "conv ⟨dW"),
        (ConvWrong::DbLastImage, "conv ⟨db"),
    ] {
        let e = conv_adjoints_f64::<Conv2>(2, 99, wrong).unwrap_err();
        assert!(e.starts_with(starts), "{wrong:?}: {e}");
    }
}

// ---------------------------------------------------------------- convolution, f32 SIMD

/// The input and weight identities with the AVX-512 kernels (`try_conv_*`, f32), the inner
/// products taken in f64 from the f32 results. Tolerance: the f32 sums' `γ_N` (the forward
/// sums have `KK + 1` terms, a dX entry `COUT·K² + 1`, a dW entry `n·OH·OW + 1`, a db entry
/// `n·OH·OW + 1`) plus the f64 `2·γ_N` of the inner products, times `Σ|terms|`. `flip_dx`
/// runs the backward input kernel with the flipped kernel, which must be rejected. Returns
/// `None` when the kernels are not available.
fn conv_adjoints_simd<S: ConvShape>(
    n: usize,
    seed: u64,
    flip_dx: bool,
) -> Option<Result<f64, String>> {
    // The kernels run whether or not GRADSPEC_NO_AVX512 switches the network off them; with
    // GRADSPEC_REQUIRE_AVX512 set, a CPU without AVX-512 fails here instead of skipping.
    let cpu = gradspec::kernels::cpu::require_avx512_if_asked()?;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let (xl, yl) = (n * S::CIN * S::H * S::W, n * S::COUT * S::OH * S::OW);
    let r32 = |v: Vec<f64>| -> Vec<f32> { v.into_iter().map(|a| a as f32).collect() };
    let (x, y, w, w2, b2) = (
        r32(seeded(xl, &mut rng)),
        r32(seeded(yl, &mut rng)),
        r32(seeded(S::KK * S::COUT, &mut rng)),
        r32(seeded(S::KK * S::COUT, &mut rng)),
        r32(seeded(S::COUT, &mut rng)),
    );
    let w64 = |v: &[f32]| -> Vec<f64> { v.iter().map(|&a| f64::from(a)).collect() };
    let zb = vec![0.0f32; S::COUT];
    let f = fwd::<S>;
    let inner = 2.0 * gamma(yl + xl + S::KK * S::COUT + 4, U64);
    let mut scratch = vec![0.0f32; scratch_len_of::<S>()];

    let mut yf = vec![0.0f32; yl];
    assert!(try_conv_forward::<f32, S>(
        cpu,
        &conv_of::<_, S>(&w, &zb),
        (&x[..]).into(),
        (&mut yf[..]).into(),
    ));
    let wb = if flip_dx {
        flip::<S>(&w64(&w)).iter().map(|&a| a as f32).collect()
    } else {
        w.clone()
    };
    let mut dx = vec![0.0f32; xl];
    assert!(try_conv_backward_input::<f32, S>(
        cpu,
        &conv_of::<_, S>(&wb, &zb),
        (&y[..]).into(),
        (&mut dx[..]).into(),
        &mut scratch,
    ));
    let (x64, y64) = (w64(&x), w64(&y));
    let scale = dot(
        &f(&abs(&x64), &abs(&w64(&w)), &vec![0.0; S::COUT]),
        &abs(&y64),
    );
    let tol = gamma(S::KK + 1, U32) + gamma(S::COUT * S::K * S::K + 1, U32) + inner;
    let r1 = within(
        "simd ⟨conv(x), y⟩ − ⟨x, dX(y)⟩",
        dot(&w64(&yf), &y64) - dot(&x64, &w64(&dx)),
        tol * scale,
    );
    let r1 = match r1 {
        Ok(r) => r,
        Err(e) => return Some(Err(e)),
    };

    let mut g = S::Params::<f32>::zeros();
    assert!(try_conv_backward_weight::<f32, S>(
        cpu,
        (&y[..]).into(),
        (&x[..]).into(),
        &mut g,
        &mut scratch,
    ));
    assert!(try_conv_backward_bias::<f32, S>(
        cpu,
        (&y[..]).into(),
        &mut g
    ));
    let tol = gamma(n * S::OH * S::OW + 1, U32) + inner;
    let rhs = dot(&f(&x64, &w64(&w2), &vec![0.0; S::COUT]), &y64);
    let scale = dot(
        &f(&abs(&x64), &abs(&w64(&w2)), &vec![0.0; S::COUT]),
        &abs(&y64),
    );
    let r2 = within(
        "simd ⟨dW(y, x), W'⟩ − ⟨conv(x; W'), y⟩",
        dot(&w64(g.weight()), &w64(&w2)) - rhs,
        tol * scale,
    );
    let (zx, zw) = (vec![0.0; xl], vec![0.0; S::KK * S::COUT]);
    let rhs = dot(&f(&zx, &zw, &w64(&b2)), &y64);
    let scale = dot(&f(&zx, &zw, &abs(&w64(&b2))), &abs(&y64));
    let r3 = within(
        "simd ⟨db(y), b'⟩ − ⟨conv(0; 0, b'), y⟩",
        dot(&w64(g.bias()), &w64(&b2)) - rhs,
        tol * scale,
    );
    Some(r2.and_then(|r2| r3.map(|r3| r1.max(r2).max(r3))))
}

/// Verifies r[cnn.conv.backward_input] r[cnn.conv.backward_weight] r[cnn.conv.backward_bias] r[cnn.conv.forward].
/// Checks the AVX-512 f32 fast paths of `cnn.conv.backward_input` `cnn.conv.backward_weight`
/// `cnn.conv.backward_bias` as adjoints of the fast `cnn.conv.forward`, at the seven real shapes, 3
/// images; prints `SKIPPED (no avx512f)` and passes on a CPU without AVX-512 (f64 never uses these
/// kernels), unless `GRADSPEC_REQUIRE_AVX512` is set.
#[test]
fn simd_conv_backward_passes_are_adjoints_of_the_forward_pass_at_real_shapes_f32() {
    let runs = [
        ("conv1", conv_adjoints_simd::<Conv1>(3, 7, false)),
        ("conv2", conv_adjoints_simd::<Conv2>(3, 7, false)),
        ("conv3", conv_adjoints_simd::<Conv3>(3, 7, false)),
        ("conv4", conv_adjoints_simd::<Conv4>(3, 7, false)),
        ("conv5", conv_adjoints_simd::<Conv5>(3, 7, false)),
        ("conv6", conv_adjoints_simd::<Conv6>(3, 7, false)),
        ("conv7", conv_adjoints_simd::<Conv7>(3, 7, false)),
    ];
    for (name, r) in runs {
        match r {
            None => {
                println!("SKIPPED (no avx512f)");
                return;
            }
            Some(r) => {
                let r = r.unwrap_or_else(|e| panic!("{name}: {e}"));
                println!("observed conv adjoints simd f32 {name}: worst ratio {r:.2e}");
            }
        }
    }
}

/// The f32 identity rejects the fast backward input pass run with the flipped kernel.
#[test]
fn simd_conv_adjoint_identity_rejects_the_flipped_kernel() {
    match conv_adjoints_simd::<Conv2>(3, 7, true) {
        None => println!("SKIPPED (no avx512f)"),
        Some(r) => {
            let e = r.unwrap_err();
            assert!(e.starts_with("simd ⟨conv(x), y⟩"), "{e}");
        }
    }
}
