//! Every layer's backward, for its inputs and its parameters, against central differences in
//! f64 (spec/cnn.md, "Gradient verification"). Each check uses the loss `L = Σ g⊙y` with a
//! random upstream gradient `g`, tiny const-generic shapes, and inputs kept away from kinks by
//! construction: ReLU inputs are `±(0.1 + |u|)`, max-pool inputs are distinct values 0.1 apart.
mod cnn_common;
mod proptest_cases;

use cnn_common::{LAYER, Report, Tol, check, dot, shifted};
use gradspec::cnn::avgpool::{avgpool_backward, avgpool_forward};
use gradspec::cnn::batchnorm::{
    BatchNorm, bn_backward_input, bn_backward_params, bn_batch_stats, bn_forward_train,
    bn_partial_sums,
};
use gradspec::cnn::conv::{
    Conv, ConvParams, ConvShape, Shape, conv_backward_bias, conv_backward_input,
    conv_backward_weight, conv_forward,
};
use gradspec::cnn::dropout::{dropout_backward, dropout_forward, dropout_mask};
use gradspec::cnn::linear::{
    Linear, linear_backward_bias, linear_backward_input, linear_backward_weight, linear_forward,
};
use gradspec::cnn::loss::{logsoftmax_backward, logsoftmax_forward, nll_backward, nll_forward};
use gradspec::cnn::maxpool::{maxpool_backward, maxpool_forward};
use gradspec::cnn::pool::Pool;
use gradspec::cnn::relu::{relu_backward, relu_forward};
use gradspec::cnn::tensor::{View, ViewMut};
use proptest::prelude::*;
use proptest_cases::fixed_cases;
use rand::{Rng, SeedableRng};

fn all(n: usize) -> std::ops::Range<usize> {
    0..n
}

fn vals(n: usize) -> impl Strategy<Value = Vec<f64>> {
    proptest::collection::vec(-2.0..2.0f64, n)
}

fn config() -> ProptestConfig {
    ProptestConfig {
        // Integration tests have no lib.rs beside them; persist failures explicitly.
        failure_persistence: Some(Box::new(
            proptest::test_runner::FileFailurePersistence::Direct(
                "proptest-regressions/cnn_gradcheck_layers.txt",
            ),
        )),
        ..fixed_cases(24)
    }
}

// ---------------------------------------------------------------- convolution

/// Inputs of one convolution check.
#[derive(Debug)]
struct ConvCase {
    n: usize,
    x: Vec<f64>,
    w: Vec<f64>,
    b: Vec<f64>,
    g: Vec<f64>,
}

/// The 3×3 convolution of the checks and twins: 2 → 3 channels, 6×6 → 4×4.
type Conv3x3 = Shape<2, 3, 3, 18, 6, 6, 4, 4>;
/// The 1×1 convolution of the checks: 3 → 2 channels on 4×5.
type Conv1x1 = Shape<3, 2, 1, 3, 4, 5, 4, 5>;

fn conv_of<S: ConvShape>(w: &[f64], b: &[f64]) -> S::Params<f64> {
    let mut p = S::Params::<f64>::zeros();
    p.weight_mut().copy_from_slice(w);
    p.bias_mut().copy_from_slice(b);
    p
}

fn conv_y<S: ConvShape>(c: &ConvCase, x: &[f64], w: &[f64], b: &[f64]) -> Vec<f64> {
    let p = conv_of::<S>(w, b);
    let mut y = vec![0.0; c.n * S::COUT * S::OH * S::OW];
    let mut col = vec![0.0; S::KK * S::OH * S::OW];
    conv_forward::<f64, S>(&p, x.into(), (&mut y[..]).into(), &mut col);
    y
}

/// A deliberate mistake in one of the convolution's gradients, for the twins.
#[derive(Clone, Copy, PartialEq)]
enum ConvWrong {
    None,
    /// dW with the kernel flipped, `dW[o,c,ki,kj] ← dW[o,c,K−1−ki,K−1−kj]`.
    FlipDw,
    /// dX computed with the unflipped-vs-flipped slip: the backward input pass run with the
    /// spatially flipped kernel.
    FlipDx,
    /// db of the last image only (`=` where `+=` belongs).
    DbLastImage,
}

/// Checks dX, dW and db of one convolution. `wrong` deliberately corrupts one of them so that
/// a test can show the checker rejects it.
fn conv_check<S: ConvShape>(c: &ConvCase, tol: Tol, wrong: ConvWrong) -> Result<Report, String> {
    let (cin, cout, k) = (S::CIN, S::COUT, S::K);
    let flipped = |w: &[f64]| -> Vec<f64> {
        let mut f = w.to_vec();
        for o in 0..cout {
            for ci in 0..cin {
                for ki in 0..k {
                    for kj in 0..k {
                        let at = |a: usize, b: usize| ((o * cin + ci) * k + a) * k + b;
                        f[at(ki, kj)] = w[at(k - 1 - ki, k - 1 - kj)];
                    }
                }
            }
        }
        f
    };
    let p = if wrong == ConvWrong::FlipDx {
        conv_of::<S>(&flipped(&c.w), &c.b)
    } else {
        conv_of::<S>(&c.w, &c.b)
    };
    let mut col = vec![0.0; S::KK * S::OH * S::OW];
    let mut dx = vec![0.0; c.x.len()];
    conv_backward_input::<f64, S>(&p, (&c.g[..]).into(), (&mut dx[..]).into(), &mut col);
    let mut dw = S::Params::<f64>::zeros();
    conv_backward_weight::<f64, S>((&c.g[..]).into(), (&c.x[..]).into(), &mut dw, &mut col);
    if wrong == ConvWrong::DbLastImage {
        let last = &c.g[(c.n - 1) * cout * S::OH * S::OW..];
        conv_backward_bias::<f64, S>(last.into(), &mut dw);
    } else {
        conv_backward_bias::<f64, S>((&c.g[..]).into(), &mut dw);
    }
    let mut dwv = dw.weight().to_vec();
    if wrong == ConvWrong::FlipDw {
        // The classic convolution-vs-correlation slip.
        dwv = flipped(&dwv);
    }
    let y = |x: &[f64], w: &[f64], b: &[f64]| conv_y::<S>(c, x, w, b);
    let r1 = check("conv dX", &dx, all(dx.len()), tol, |i, d| {
        shifted(&c.x, i, d, |x| dot(&c.g, &y(x, &c.w, &c.b)))
    })?;
    let r2 = check("conv dW", &dwv, all(dwv.len()), tol, |i, d| {
        shifted(&c.w, i, d, |w| dot(&c.g, &y(&c.x, w, &c.b)))
    })?;
    let db = dw.bias().to_vec();
    let r3 = check("conv db", &db, all(db.len()), tol, |i, d| {
        shifted(&c.b, i, d, |b| dot(&c.g, &y(&c.x, &c.w, b)))
    })?;
    Ok(worst(&[r1, r2, r3]))
}

fn worst(rs: &[Report]) -> Report {
    rs.iter().fold(Report::default(), |a, r| Report {
        max_abs: a.max_abs.max(r.max_abs),
        max_ratio: a.max_ratio.max(r.max_ratio),
        checked: a.checked + r.checked,
    })
}

fn conv_case(
    n: usize,
    xl: usize,
    wl: usize,
    bl: usize,
    gl: usize,
) -> impl Strategy<Value = ConvCase> {
    (vals(n * xl), vals(wl), vals(bl), vals(n * gl)).prop_map(move |(x, w, b, g)| ConvCase {
        n,
        x,
        w,
        b,
        g,
    })
}

proptest! {
    #![proptest_config(config())]

    /// Verifies r[cnn.conv.backward_input] r[cnn.conv.backward_weight] r[cnn.conv.backward_bias] r[cnn.conv.forward].
    /// Checks `cnn.conv.backward_input` `cnn.conv.backward_weight` `cnn.conv.backward_bias` (with
    /// `cnn.conv.forward`) against central differences, 3×3 kernel (the im2col path): Conv(2→3,
    /// 3×3) on a batch of 2 images of 2×6×6.
    #[test]
    fn conv3x3_gradients_match_central_differences(
        c in conv_case(2, 2 * 36, 18 * 3, 3, 3 * 16)
    ) {
        let r = conv_check::<Conv3x3>(&c, LAYER, ConvWrong::None);
        prop_assert!(r.is_ok(), "{}", r.unwrap_err());
    }

    /// Verifies r[cnn.conv.backward_input] r[cnn.conv.backward_weight] r[cnn.conv.backward_bias] r[cnn.conv.forward].
    /// Checks `cnn.conv.backward_input` `cnn.conv.backward_weight` `cnn.conv.backward_bias` (with
    /// `cnn.conv.forward`) against central differences, 1×1 kernel (the no-copy path): Conv(3→2,
    /// 1×1) on a batch of 2 images of 3×4×5.
    #[test]
    fn conv1x1_gradients_match_central_differences(
        c in conv_case(2, 3 * 20, 3 * 2, 2, 2 * 20)
    ) {
        let r = conv_check::<Conv1x1>(&c, LAYER, ConvWrong::None);
        prop_assert!(r.is_ok(), "{}", r.unwrap_err());
    }
}

#[test]
fn conv_checker_rejects_a_flipped_kernel_gradient() {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(11);
    let mut v = |k: usize| -> Vec<f64> { (0..k).map(|_| rng.random_range(-2.0..2.0)).collect() };
    let c = ConvCase {
        n: 2,
        x: v(2 * 2 * 36),
        w: v(18 * 3),
        b: v(3),
        g: v(2 * 3 * 16),
    };
    conv_check::<Conv3x3>(&c, LAYER, ConvWrong::None).expect("the true gradient passes");
    let e = conv_check::<Conv3x3>(&c, LAYER, ConvWrong::FlipDw).unwrap_err();
    assert!(e.starts_with("conv dW"), "{e}");
}

fn conv_twin_case() -> ConvCase {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(12);
    let mut v = |k: usize| -> Vec<f64> { (0..k).map(|_| rng.random_range(-2.0..2.0)).collect() };
    ConvCase {
        n: 2,
        x: v(2 * 2 * 36),
        w: v(18 * 3),
        b: v(3),
        g: v(2 * 3 * 16),
    }
}

#[test]
fn conv_checker_rejects_an_input_gradient_with_the_unflipped_kernel() {
    let c = conv_twin_case();
    conv_check::<Conv3x3>(&c, LAYER, ConvWrong::None).expect("the true gradient passes");
    let e = conv_check::<Conv3x3>(&c, LAYER, ConvWrong::FlipDx).unwrap_err();
    assert!(e.starts_with("conv dX"), "{e}");
}

#[test]
fn conv_checker_rejects_a_bias_gradient_of_the_last_image_only() {
    let c = conv_twin_case();
    conv_check::<Conv3x3>(&c, LAYER, ConvWrong::None).expect("the true gradient passes");
    let e = conv_check::<Conv3x3>(&c, LAYER, ConvWrong::DbLastImage).unwrap_err();
    assert!(e.starts_with("conv db"), "{e}");
}

/// Verifies r[cnn.conv.backward_weight] r[cnn.conv.backward_bias].
/// Checks that `cnn.conv.backward_weight` and `cnn.conv.backward_bias` accumulate (`+=`).
#[test]
fn conv_weight_and_bias_gradients_accumulate() {
    let x: Vec<f64> = (0..2 * 36).map(|i| (i as f64 * 0.37).sin()).collect();
    let g: Vec<f64> = (0..3 * 16).map(|i| (i as f64 * 0.11).cos()).collect();
    let mut col = vec![0.0; 18 * 16];
    let mut once = Conv::<f64, 2, 3, 3, 18>::zeros();
    conv_backward_weight::<f64, Conv3x3>(View(&g), View(&x), &mut once, &mut col);
    conv_backward_bias::<f64, Conv3x3>(View(&g), &mut once);
    let mut twice = once.clone();
    conv_backward_weight::<f64, Conv3x3>(View(&g), View(&x), &mut twice, &mut col);
    conv_backward_bias::<f64, Conv3x3>(View(&g), &mut twice);
    assert_eq!(twice.weight, once.weight * 2.0);
    assert_eq!(twice.bias, once.bias * 2.0);
}

// ---------------------------------------------------------------- linear

fn linear_of<const IN: usize, const OUT: usize>(w: &[f64], b: &[f64]) -> Linear<f64, IN, OUT> {
    let mut p = Linear::<f64, IN, OUT>::zeros();
    p.weight.as_mut_slice().copy_from_slice(w);
    p.bias.as_mut_slice().copy_from_slice(b);
    p
}

fn linear_y<const IN: usize, const OUT: usize>(x: &[f64], w: &[f64], b: &[f64]) -> Vec<f64> {
    let p = linear_of::<IN, OUT>(w, b);
    let mut y = vec![0.0; x.len() / IN * OUT];
    linear_forward::<f64, IN, OUT>(&p, View(x), ViewMut(&mut y));
    y
}

fn linear_check<const IN: usize, const OUT: usize>(
    x: &[f64],
    w: &[f64],
    b: &[f64],
    g: &[f64],
    transpose_dw: bool,
) -> Result<Report, String> {
    let p = linear_of::<IN, OUT>(w, b);
    let mut dx = vec![0.0; x.len()];
    linear_backward_input::<f64, IN, OUT>(&p, View(g), ViewMut(&mut dx));
    let mut dw = nalgebra::SMatrix::<f64, IN, OUT>::zeros();
    linear_backward_weight::<f64, IN, OUT>(View(g), View(x), &mut dw);
    let mut db = nalgebra::SVector::<f64, OUT>::zeros();
    linear_backward_bias::<f64, OUT>(View(g), &mut db);
    let mut dwv = dw.as_slice().to_vec();
    if transpose_dw {
        // Reads the [OUT, IN] gradient as if it were [IN, OUT] (IN = OUT here).
        let orig = dwv.clone();
        for o in 0..OUT {
            for i in 0..IN {
                dwv[o * IN + i] = orig[i * OUT + o];
            }
        }
    }
    let r1 = check("linear dx", &dx, all(dx.len()), LAYER, |i, d| {
        shifted(x, i, d, |x| dot(g, &linear_y::<IN, OUT>(x, w, b)))
    })?;
    let r2 = check("linear dW", &dwv, all(dwv.len()), LAYER, |i, d| {
        shifted(w, i, d, |w| dot(g, &linear_y::<IN, OUT>(x, w, b)))
    })?;
    let r3 = check("linear db", db.as_slice(), all(OUT), LAYER, |i, d| {
        shifted(b, i, d, |b| dot(g, &linear_y::<IN, OUT>(x, w, b)))
    })?;
    Ok(worst(&[r1, r2, r3]))
}

proptest! {
    #![proptest_config(config())]

    /// Verifies r[cnn.linear.backward_input] r[cnn.linear.backward_weight] r[cnn.linear.backward_bias] r[cnn.linear.forward].
    /// Checks `cnn.linear.backward_input` `cnn.linear.backward_weight` `cnn.linear.backward_bias` (with
    /// `cnn.linear.forward`) against central differences: Linear(5→3) on a batch of 3.
    #[test]
    fn linear_gradients_match_central_differences(
        x in vals(3 * 5), w in vals(15), b in vals(3), g in vals(3 * 3)
    ) {
        let r = linear_check::<5, 3>(&x, &w, &b, &g, false);
        prop_assert!(r.is_ok(), "{}", r.unwrap_err());
    }
}

#[test]
fn linear_checker_rejects_a_transposed_weight_gradient() {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(5);
    let mut v = |k: usize| -> Vec<f64> { (0..k).map(|_| rng.random_range(-2.0..2.0)).collect() };
    let (x, w, b, g) = (v(3 * 4), v(16), v(4), v(3 * 4));
    linear_check::<4, 4>(&x, &w, &b, &g, false).expect("the true gradient passes");
    let e = linear_check::<4, 4>(&x, &w, &b, &g, true).unwrap_err();
    assert!(e.starts_with("linear dW"), "{e}");
}

// ---------------------------------------------------------------- ReLU

/// `±(0.1 + |u|)`: every input is at least 0.1 ≫ h away from the kink at 0.
fn away_from_zero(n: usize) -> impl Strategy<Value = Vec<f64>> {
    proptest::collection::vec((any::<bool>(), 0.0..2.0f64), n).prop_map(|v| {
        v.into_iter()
            .map(|(neg, u)| if neg { -(0.1 + u) } else { 0.1 + u })
            .collect()
    })
}

fn relu_y(x: &[f64]) -> Vec<f64> {
    let mut y = x.to_vec();
    relu_forward(&mut y);
    y
}

proptest! {
    #![proptest_config(config())]

    /// Verifies r[cnn.relu.backward] r[cnn.relu.forward].
    /// Checks `cnn.relu.backward` (with `cnn.relu.forward`) against central differences, inputs at least
    /// 0.1 from the kink.
    #[test]
    fn relu_gradient_matches_central_differences(x in away_from_zero(40), g in vals(40)) {
        let y = relu_y(&x);
        let mut dx = g.clone();
        relu_backward(&y, &mut dx);
        let r = check("relu dx", &dx, all(40), LAYER, |i, d| shifted(&x, i, d, |x| dot(&g, &relu_y(x))));
        prop_assert!(r.is_ok(), "{}", r.unwrap_err());
    }
}

#[test]
fn relu_checker_rejects_a_derivative_of_one_everywhere() {
    let x: Vec<f64> = (0..20usize)
        .map(|i| {
            if i.is_multiple_of(3) {
                -0.5
            } else {
                0.7 + i as f64 * 0.1
            }
        })
        .collect();
    let g: Vec<f64> = (0..20).map(|i| (i as f64).cos()).collect();
    let r = check("relu dx", &g, all(20), LAYER, |i, d| {
        shifted(&x, i, d, |x| dot(&g, &relu_y(x)))
    });
    assert!(r.unwrap_err().starts_with("relu dx[0]"));
}

/// Verifies r[cnn.relu.backward].
/// Checks the convention of `cnn.relu.backward` at the kink: the derivative at 0 is 0.
#[test]
fn relu_derivative_at_zero_is_zero() {
    let y = relu_y(&[0.0, -0.0, 1e-300, -1.0]);
    let mut g = vec![1.0; 4];
    relu_backward(&y, &mut g);
    assert_eq!(g, [0.0, 0.0, 1.0, 0.0]);
}

// ---------------------------------------------------------------- dropout

/// A mask drawn with `p = 0.3` (so a 30-element tensor has zeros) from `seed`.
fn mask_of(seed: u64) -> Vec<f64> {
    let mut mask = vec![0.0f64; 30];
    dropout_mask(
        &mut rand_chacha::ChaCha8Rng::seed_from_u64(seed),
        0.3,
        &mut mask,
    );
    mask
}

/// Checks dropout's dx with the forward mask `mask`; the backward pass uses `backward_mask`
/// (`None`: no mask at all, `dx = g`), which is `Some(mask)` unless a twin says otherwise.
fn dropout_check(
    x: &[f64],
    g: &[f64],
    mask: &[f64],
    backward_mask: Option<&[f64]>,
) -> Result<Report, String> {
    let y = |x: &[f64]| {
        let mut y = x.to_vec();
        dropout_forward(&mut y, mask);
        y
    };
    let mut dx = g.to_vec();
    if let Some(m) = backward_mask {
        dropout_backward(&mut dx, m);
    }
    check("dropout dx", &dx, all(x.len()), LAYER, |i, d| {
        shifted(x, i, d, |x| dot(g, &y(x)))
    })
}

proptest! {
    #![proptest_config(config())]

    /// Verifies r[cnn.dropout.backward] r[cnn.dropout.forward].
    /// Checks `cnn.dropout.backward` (with `cnn.dropout.forward`) against central differences. The mask is
    /// drawn once (p = 0.3, so a 30-element tensor has zeros) and held fixed.
    #[test]
    fn dropout_gradient_matches_central_differences(x in vals(30), g in vals(30), seed in any::<u64>()) {
        let mask = mask_of(seed);
        let r = dropout_check(&x, &g, &mask, Some(&mask));
        prop_assert!(r.is_ok(), "{}", r.unwrap_err());
    }
}

#[test]
fn dropout_checker_rejects_a_backward_pass_without_the_mask_or_with_another_mask() {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(21);
    let mut v = |k: usize| -> Vec<f64> { (0..k).map(|_| rng.random_range(-2.0..2.0)).collect() };
    let (x, g) = (v(30), v(30));
    let (mask, other) = (mask_of(1), mask_of(2));
    assert!(mask.contains(&0.0) && mask != other);
    dropout_check(&x, &g, &mask, Some(&mask)).expect("the true gradient passes");
    let e = dropout_check(&x, &g, &mask, None).unwrap_err();
    assert!(e.starts_with("dropout dx"), "{e}");
    let e = dropout_check(&x, &g, &mask, Some(&other)).unwrap_err();
    assert!(e.starts_with("dropout dx"), "{e}");
}

// ---------------------------------------------------------------- pooling

/// `2·4·4·2 = 64` distinct values: a shuffled permutation of `k·0.1 − 3.2` plus noise in
/// `[0, 0.01)`. Neighbours differ by ≥ 0.09 ≫ h, so no window has a tie or swaps its winner
/// under a ±h step.
fn distinct_values() -> impl Strategy<Value = Vec<f64>> {
    (
        Just((0..64).collect::<Vec<usize>>()).prop_shuffle(),
        proptest::collection::vec(0.0..0.01f64, 64),
    )
        .prop_map(|(perm, noise)| {
            perm.iter()
                .zip(noise)
                .map(|(&k, e)| k as f64 * 0.1 - 3.2 + e)
                .collect()
        })
}

fn maxpool_y(x: &[f64]) -> (Vec<f64>, Vec<u8>) {
    let mut y = vec![0.0; x.len() / 4];
    let mut a = vec![0u8; y.len()];
    maxpool_forward::<f64, Pool<2, 4, 4, 2, 2>>(View(x), ViewMut(&mut y), &mut a);
    (y, a)
}

fn avgpool_y(x: &[f64]) -> Vec<f64> {
    let mut y = vec![0.0; x.len() / 4];
    avgpool_forward::<f64, Pool<2, 4, 4, 2, 2>>(View(x), ViewMut(&mut y));
    y
}

/// Checks max-pool's dx. `wrong_element` deliberately routes each window's gradient to the
/// next element of the window (`argmax + 1 mod 4`) instead of the winner.
fn maxpool_check(x: &[f64], g: &[f64], wrong_element: bool) -> Result<Report, String> {
    let (_, mut a) = maxpool_y(x);
    if wrong_element {
        a.iter_mut().for_each(|v| *v = (*v + 1) % 4);
    }
    let mut dx = vec![f64::NAN; 64];
    maxpool_backward::<f64, Pool<2, 4, 4, 2, 2>>(View(g), &a, ViewMut(&mut dx));
    check("maxpool dx", &dx, all(64), LAYER, |i, d| {
        shifted(x, i, d, |x| dot(g, &maxpool_y(x).0))
    })
}

/// A deliberate mistake in the average-pool gradient, for the twins.
#[derive(Clone, Copy, PartialEq)]
enum AvgWrong {
    None,
    /// Factor 1 instead of ¼.
    FactorOne,
    /// Each input takes the gradient of the transposed window, `dY[⌊q/2⌋, ⌊p/2⌋]`.
    TransposedWindow,
}

/// Checks average-pool's dx, possibly corrupted by `wrong`.
fn avgpool_check(x: &[f64], g: &[f64], wrong: AvgWrong) -> Result<Report, String> {
    let mut dx = vec![f64::NAN; 64];
    avgpool_backward::<f64, Pool<2, 4, 4, 2, 2>>(View(g), ViewMut(&mut dx));
    match wrong {
        AvgWrong::None => {}
        AvgWrong::FactorOne => dx.iter_mut().for_each(|v| *v *= 4.0),
        AvgWrong::TransposedWindow => {
            for plane in 0..4 {
                for p in 0..4 {
                    for q in 0..4 {
                        dx[plane * 16 + p * 4 + q] = 0.25 * g[plane * 4 + (q / 2) * 2 + p / 2];
                    }
                }
            }
        }
    }
    check("avgpool dx", &dx, all(64), LAYER, |i, d| {
        shifted(x, i, d, |x| dot(g, &avgpool_y(x)))
    })
}

proptest! {
    #![proptest_config(config())]

    /// Verifies r[cnn.maxpool.backward] r[cnn.maxpool.forward].
    /// Checks `cnn.maxpool.backward` (with `cnn.maxpool.forward`) against central differences:
    /// MaxPool(2,2) on a batch of 2 images of 2×4×4.
    #[test]
    fn maxpool_gradient_matches_central_differences(x in distinct_values(), g in vals(16)) {
        let r = maxpool_check(&x, &g, false);
        prop_assert!(r.is_ok(), "{}", r.unwrap_err());
    }

    /// Verifies r[cnn.avgpool.backward] r[cnn.avgpool.forward].
    /// Checks `cnn.avgpool.backward` (with `cnn.avgpool.forward`) against central differences:
    /// AvgPool(2,2) on a batch of 2 images of 2×4×4.
    #[test]
    fn avgpool_gradient_matches_central_differences(x in vals(64), g in vals(16)) {
        let r = avgpool_check(&x, &g, AvgWrong::None);
        prop_assert!(r.is_ok(), "{}", r.unwrap_err());
    }
}

/// Fixed distinct values for the pooling twins, built as [`distinct_values`] builds them.
fn pool_twin_case() -> (Vec<f64>, Vec<f64>) {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(31);
    let mut perm: Vec<usize> = (0..64).collect();
    for i in (1..64).rev() {
        perm.swap(i, rng.random_range(0..=i));
    }
    let x = perm
        .iter()
        .map(|&k| k as f64 * 0.1 - 3.2 + rng.random_range(0.0..0.01))
        .collect();
    let g = (0..16).map(|_| rng.random_range(-2.0..2.0)).collect();
    (x, g)
}

#[test]
fn maxpool_checker_rejects_a_gradient_sent_to_the_wrong_window_element() {
    let (x, g) = pool_twin_case();
    maxpool_check(&x, &g, false).expect("the true gradient passes");
    let e = maxpool_check(&x, &g, true).unwrap_err();
    assert!(e.starts_with("maxpool dx"), "{e}");
}

#[test]
fn avgpool_checker_rejects_factor_one_and_the_transposed_window() {
    let (x, g) = pool_twin_case();
    avgpool_check(&x, &g, AvgWrong::None).expect("the true gradient passes");
    for wrong in [AvgWrong::FactorOne, AvgWrong::TransposedWindow] {
        let e = avgpool_check(&x, &g, wrong).unwrap_err();
        assert!(e.starts_with("avgpool dx"), "{e}");
    }
}

// ---------------------------------------------------------------- BatchNorm

const BC: usize = 2;
const BH: usize = 3;
const BW: usize = 3;

fn bn_of(gamma: &[f64], beta: &[f64]) -> BatchNorm<f64, BC> {
    let mut p = BatchNorm::<f64, BC>::new();
    p.weight.as_mut_slice().copy_from_slice(gamma);
    p.bias.as_mut_slice().copy_from_slice(beta);
    p
}

/// Train-mode BatchNorm2d(2) over a batch: returns `(y, x̂, σ²)`.
#[allow(clippy::type_complexity)]
fn bn_y(
    x: &[f64],
    gamma: &[f64],
    beta: &[f64],
) -> (Vec<f64>, Vec<f64>, nalgebra::SVector<f64, BC>) {
    let p = bn_of(gamma, beta);
    let (mut s1, mut s2) = ([0.0; BC], [0.0; BC]);
    bn_partial_sums::<f64, BC, BH, BW>(View(x), &mut s1, &mut s2);
    let m = x.len() / BC;
    let (mean, var) = bn_batch_stats::<f64, BC>(&s1, &s2, m);
    let mut xhat = vec![0.0; x.len()];
    let mut y = vec![0.0; x.len()];
    bn_forward_train::<f64, BC, BH, BW>(&p, &mean, &var, View(x), &mut xhat, ViewMut(&mut y));
    (y, xhat, var)
}

/// A deliberate mistake in one of BatchNorm's gradients, for the twins.
#[derive(Clone, Copy, PartialEq)]
enum BnWrong {
    None,
    /// dx = `γ/σ·g` alone, forgetting that μ and σ² depend on every x.
    IgnoreBatchStats,
    /// dγ = `Σ g·x` (the raw input instead of x̂); dx still uses the true dγ.
    DgammaFromX,
    /// dβ = `Σ g / m` (a mean instead of a sum); dx still uses the true dβ.
    DbetaMean,
}

/// Checks dx, dγ, dβ, one of them possibly corrupted by `wrong`.
fn bn_check(
    x: &[f64],
    gamma: &[f64],
    beta: &[f64],
    g: &[f64],
    wrong: BnWrong,
) -> Result<Report, String> {
    let p = bn_of(gamma, beta);
    let (_, xhat, var) = bn_y(x, gamma, beta);
    let mut dgamma = nalgebra::SVector::<f64, BC>::zeros();
    let mut dbeta = nalgebra::SVector::<f64, BC>::zeros();
    bn_backward_params::<f64, BC, BH, BW>(View(g), &xhat, &mut dgamma, &mut dbeta);
    let mut dx = g.to_vec();
    let m = x.len() / BC;
    let (zg, zb) = (nalgebra::SVector::zeros(), nalgebra::SVector::zeros());
    let (ug, ub) = if wrong == BnWrong::IgnoreBatchStats {
        (&zg, &zb)
    } else {
        (&dgamma, &dbeta)
    };
    bn_backward_input::<f64, BC, BH, BW>(&p, &var, ug, ub, m, &xhat, ViewMut(&mut dx));
    match wrong {
        BnWrong::DgammaFromX => {
            let mut unused = nalgebra::SVector::<f64, BC>::zeros();
            dgamma = nalgebra::SVector::zeros();
            bn_backward_params::<f64, BC, BH, BW>(View(g), x, &mut dgamma, &mut unused);
        }
        BnWrong::DbetaMean => dbeta /= m as f64,
        BnWrong::None | BnWrong::IgnoreBatchStats => {}
    }
    let l = |x: &[f64], gm: &[f64], bt: &[f64]| dot(g, &bn_y(x, gm, bt).0);
    let r1 = check("bn dx", &dx, all(dx.len()), LAYER, |i, d| {
        shifted(x, i, d, |x| l(x, gamma, beta))
    })?;
    let r2 = check("bn dgamma", dgamma.as_slice(), all(BC), LAYER, |i, d| {
        shifted(gamma, i, d, |gm| l(x, gm, beta))
    })?;
    let r3 = check("bn dbeta", dbeta.as_slice(), all(BC), LAYER, |i, d| {
        shifted(beta, i, d, |bt| l(x, gamma, bt))
    })?;
    Ok(worst(&[r1, r2, r3]))
}

fn bn_case() -> impl Strategy<Value = (Vec<f64>, Vec<f64>, Vec<f64>, Vec<f64>)> {
    (2usize..=4).prop_flat_map(|n| {
        let len = n * BC * BH * BW;
        (vals(len), vals(BC), vals(BC), vals(len))
    })
}

proptest! {
    #![proptest_config(config())]

    /// Verifies r[cnn.bn.backward_input] r[cnn.bn.backward_params] r[cnn.bn.batch_stats] r[cnn.bn.forward_train].
    /// Checks `cnn.bn.backward_input` `cnn.bn.backward_params` (with `cnn.bn.batch_stats`
    /// `cnn.bn.forward_train`) against central differences: BatchNorm2d(2), train mode, over a
    /// batch of 2 to 4 images of 2×3×3 (m = 18 to 36).
    #[test]
    fn batchnorm_gradients_match_central_differences((x, gamma, beta, g) in bn_case()) {
        let r = bn_check(&x, &gamma, &beta, &g, BnWrong::None);
        prop_assert!(r.is_ok(), "{}", r.unwrap_err());
    }
}

#[test]
fn batchnorm_checker_rejects_a_gradient_that_ignores_the_batch_statistics() {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
    let mut v = |k: usize| -> Vec<f64> { (0..k).map(|_| rng.random_range(-2.0..2.0)).collect() };
    let (x, gm, bt, g) = (v(36), v(2), v(2), v(36));
    bn_check(&x, &gm, &bt, &g, BnWrong::None).expect("the true gradient passes");
    let e = bn_check(&x, &gm, &bt, &g, BnWrong::IgnoreBatchStats).unwrap_err();
    assert!(e.starts_with("bn dx"), "{e}");
}

#[test]
fn batchnorm_checker_rejects_dgamma_from_x_and_dbeta_off_by_a_factor() {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(4);
    let mut v = |k: usize| -> Vec<f64> { (0..k).map(|_| rng.random_range(-2.0..2.0)).collect() };
    let (x, gm, bt, g) = (v(36), v(2), v(2), v(36));
    bn_check(&x, &gm, &bt, &g, BnWrong::None).expect("the true gradient passes");
    let e = bn_check(&x, &gm, &bt, &g, BnWrong::DgammaFromX).unwrap_err();
    assert!(e.starts_with("bn dgamma"), "{e}");
    let e = bn_check(&x, &gm, &bt, &g, BnWrong::DbetaMean).unwrap_err();
    assert!(e.starts_with("bn dbeta"), "{e}");
}

// ---------------------------------------------------------------- log-softmax and NLL

const K: usize = 4;

fn logsoftmax_y(z: &[f64]) -> Vec<f64> {
    let mut l = vec![0.0; z.len()];
    logsoftmax_forward::<f64, K>(z, &mut l);
    l
}

/// Checks log-softmax's dz. `drop_p_term` deliberately returns `dz = g`, forgetting the
/// `−p·Σg` term that comes from the normaliser.
fn logsoftmax_check(z: &[f64], g: &[f64], drop_p_term: bool) -> Result<Report, String> {
    let l = logsoftmax_y(z);
    let mut dz = vec![0.0; z.len()];
    logsoftmax_backward::<f64, K>(&l, g, &mut dz);
    if drop_p_term {
        dz.copy_from_slice(g);
    }
    check("logsoftmax dz", &dz, all(z.len()), LAYER, |i, d| {
        shifted(z, i, d, |z| dot(g, &logsoftmax_y(z)))
    })
}

/// A deliberate mistake in the NLL gradient, for the twins.
#[derive(Clone, Copy, PartialEq)]
enum NllWrong {
    None,
    /// `−[j = t]` without the `1/N`.
    NoMean,
    /// `+[j = t]/N`.
    WrongSign,
}

/// Checks the NLL's gradient with respect to the log-probabilities `l`.
fn nll_check(l: &[f64], labels: &[u8], wrong: NllWrong) -> Result<Report, String> {
    let n = labels.len();
    let mut dl = vec![0.0; l.len()];
    nll_backward::<f64, K>(
        labels,
        if wrong == NllWrong::NoMean { 1 } else { n },
        &mut dl,
    );
    if wrong == NllWrong::WrongSign {
        dl.iter_mut().for_each(|v| *v = -*v);
    }
    check("nll dlogp", &dl, all(l.len()), LAYER, |i, d| {
        shifted(l, i, d, |l| nll_forward::<f64, K>(l, labels))
    })
}

proptest! {
    #![proptest_config(config())]

    /// Verifies r[cnn.logsoftmax.backward] r[cnn.logsoftmax.forward].
    /// Checks `cnn.logsoftmax.backward` (with `cnn.logsoftmax.forward`) against central differences:
    /// log_softmax over 4 classes, batch of 3, random upstream gradient.
    #[test]
    fn logsoftmax_gradient_matches_central_differences(z in vals(12), g in vals(12)) {
        let r = logsoftmax_check(&z, &g, false);
        prop_assert!(r.is_ok(), "{}", r.unwrap_err());
    }

    /// Verifies r[cnn.nll.backward] r[cnn.nll.forward] r[cnn.logsoftmax.backward].
    /// Checks `cnn.nll.backward` (with `cnn.nll.forward`) and its composition with
    /// `cnn.logsoftmax.backward` against central differences: the NLL is linear in logp, and
    /// log_softmax followed by NLL gives `softmax − onehot/N`.
    #[test]
    fn nll_gradient_matches_central_differences(
        z in vals(12), labels in proptest::collection::vec(0u8..K as u8, 3)
    ) {
        let l = logsoftmax_y(&z);
        let r = nll_check(&l, &labels, NllWrong::None);
        prop_assert!(r.is_ok(), "{}", r.unwrap_err());
        let mut dl = vec![0.0; 12];
        nll_backward::<f64, K>(&labels, 3, &mut dl);
        let mut dz = vec![0.0; 12];
        logsoftmax_backward::<f64, K>(&l, &dl, &mut dz);
        let r = check("logsoftmax+nll dz", &dz, all(12), LAYER, |i, d| {
            shifted(&z, i, d, |z| nll_forward::<f64, K>(&logsoftmax_y(z), &labels))
        });
        prop_assert!(r.is_ok(), "{}", r.unwrap_err());
    }
}

#[test]
fn logsoftmax_checker_rejects_a_gradient_without_the_normaliser_term() {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(41);
    let mut v = |k: usize| -> Vec<f64> { (0..k).map(|_| rng.random_range(-2.0..2.0)).collect() };
    let (z, g) = (v(12), v(12));
    logsoftmax_check(&z, &g, false).expect("the true gradient passes");
    let e = logsoftmax_check(&z, &g, true).unwrap_err();
    assert!(e.starts_with("logsoftmax dz"), "{e}");
}

#[test]
fn nll_checker_rejects_a_gradient_without_the_mean_or_with_the_wrong_sign() {
    let z: Vec<f64> = (0..12).map(|i| (i as f64 * 0.7).sin()).collect();
    let l = logsoftmax_y(&z);
    let labels = [2u8, 0, 3];
    nll_check(&l, &labels, NllWrong::None).expect("the true gradient passes");
    for wrong in [NllWrong::NoMean, NllWrong::WrongSign] {
        let e = nll_check(&l, &labels, wrong).unwrap_err();
        assert!(e.starts_with("nll dlogp"), "{e}");
    }
}

/// Verifies r[cnn.logsoftmax.forward].
/// Checks `cnn.logsoftmax.forward` on logits whose exponentials would overflow without the subtracted
/// maximum.
#[test]
fn logsoftmax_does_not_overflow_on_large_logits() {
    let l = logsoftmax_y(&[1000.0, 0.0, -1000.0, 999.0]);
    assert!(l.iter().all(|v| v.is_finite()), "{l:?}");
    assert!((l[0] - -(1.0 + (-1.0f64).exp()).ln()).abs() < 1e-12);
}

/// Verifies r[cnn.conv.backward_input] r[cnn.conv.backward_weight] r[cnn.conv.backward_bias] r[cnn.bn.backward_input] r[cnn.bn.backward_params] r[cnn.linear.backward_input] r[cnn.linear.backward_weight] r[cnn.linear.backward_bias].
/// Checks `cnn.conv.backward_input` `cnn.conv.backward_weight` `cnn.conv.backward_bias`
/// `cnn.bn.backward_input` `cnn.bn.backward_params` `cnn.linear.backward_input`
/// `cnn.linear.backward_weight` `cnn.linear.backward_bias` with a margin of at least 10 on fixed
/// cases. The worst agreement is printed for spec/cnn.md (`cargo test --release --test
/// cnn_gradcheck_layers -- --nocapture observed`).
#[test]
fn observed_layer_errors_are_far_below_the_tolerance() {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(2024);
    let mut v = |k: usize| -> Vec<f64> { (0..k).map(|_| rng.random_range(-2.0..2.0)).collect() };
    let c = ConvCase {
        n: 2,
        x: v(2 * 2 * 36),
        w: v(18 * 3),
        b: v(3),
        g: v(2 * 3 * 16),
    };
    let conv = conv_check::<Conv3x3>(&c, LAYER, ConvWrong::None).unwrap();
    let (x, gm, bt, g) = (v(36), v(2), v(2), v(36));
    let bn = bn_check(&x, &gm, &bt, &g, BnWrong::None).unwrap();
    let (x, w, b, g) = (v(15), v(15), v(3), v(9));
    let lin = linear_check::<5, 3>(&x, &w, &b, &g, false).unwrap();
    for (name, r) in [("conv", conv), ("batchnorm", bn), ("linear", lin)] {
        println!(
            "observed {name}: max |a−n| = {:.2e}, max ratio to tolerance = {:.2e} over {} entries",
            r.max_abs, r.max_ratio, r.checked
        );
        assert!(r.max_ratio < 0.1, "{name}: margin below 10x: {r:?}");
    }
}
