//! Every derivative of `spec/backprop.md` against a central difference of the forward
//! functions it differentiates, in f64, over wide random states.
//!
//! # Step size
//!
//! `f′(x) ≈ (f(x + h) − f(x − h)) / 2h` with `h = 1e-6 · max(1, |x|)` ([`STEP`]).
//! Its truncation error is about `h²·|f‴|/6` and its rounding error about `ε·|f|/h`
//! (ε = 2.2e-16). Relative to the scale of `x`, h = 1e-6 sits near the optimum ε^(1/3) ≈ 6e-6
//! while keeping truncation small where third derivatives are large (inputs up to 5 and
//! weights up to 10 multiply the sigmoid's curvature): rounding ≈ 2e-10·|f|, truncation
//! ≈ 2e-13·|f‴|·max(1, |x|)².
//!
//! # Tolerance
//!
//! A derivative passes when `|analytic − numeric| ≤ RTOL·max(|analytic|, |numeric|) + ATOL`
//! with `RTOL = 1e-6` and `ATOL = 1e-7`. The relative part is far looser than the error
//! model for any well-conditioned difference, yet a wrong factor (a missing `a(1 − a)`, a
//! swapped weight, a sign, a forgotten path) is off by O(1) relative and fails at once. The
//! absolute part covers the rounding of large |f| (net inputs reach |h1| = 100 here) and
//! matters in saturated regions: there a sigmoid's slope is 1e-9 or less, the true gradient
//! is smaller than any finite difference can resolve, and the check can only confirm that the
//! gradient is tiny. The same values are stated in the spec's "Conventions" section.
//!
//! Measured when these values were chosen: over 200,000 random states × 40 checks the largest
//! error was 3% of the tolerance (∂h1/∂w2, pure rounding of a net input near 100), so the
//! tolerance has a ~35× margin; and each deliberately wrong derivative below is rejected in
//! 240–256 of 256 random states (the rest are saturated, where every candidate is ≈ 0).
//!
//! # Ranges
//!
//! Weights in [−10, 10], inputs in [−5, 5], targets in [0, 1]: net inputs up to ±100, so
//! both healthy and fully saturated sigmoids are drawn. No kinks exist (σ is smooth), so
//! nothing needs to be kept away from any point.
//!
//! The tests at the bottom feed deliberately wrong derivatives to the same checker and
//! require it to reject them.
mod proptest_cases;
use gradspec::backprop::chain::*;
use gradspec::backprop::forward::*;
use gradspec::backprop::grad::*;
use gradspec::backprop::{Backward, Forward, State, Weights};
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::TestRunner;
use proptest_cases::fixed_cases;

/// Relative tolerance (see the module doc).
const RTOL: f64 = 1e-6;
/// Absolute tolerance (see the module doc).
const ATOL: f64 = 1e-7;
/// Relative step of the central difference.
const STEP: f64 = 1e-6;

/// Central difference of `f` at `x` with step `STEP · max(1, |x|)`.
fn central(f: impl Fn(f64) -> f64, x: f64) -> f64 {
    let h = STEP * x.abs().max(1.0);
    (f(x + h) - f(x - h)) / (2.0 * h)
}

/// The mixed absolute + relative comparison.
fn agrees(analytic: f64, numeric: f64) -> bool {
    (analytic - numeric).abs() <= RTOL * analytic.abs().max(numeric.abs()) + ATOL
}

/// One named comparison: `analytic` against the central difference of `f` at `x`.
struct Check {
    name: &'static str,
    analytic: f64,
    numeric: f64,
}

fn check(name: &'static str, analytic: f64, f: impl Fn(f64) -> f64, x: f64) -> Check {
    Check {
        name,
        analytic,
        numeric: central(f, x),
    }
}

fn verify(checks: &[Check], s: &State<f64>) -> Result<(), TestCaseError> {
    for c in checks {
        prop_assert!(
            agrees(c.analytic, c.numeric),
            "{}: analytic {:e} vs numeric {:e} (diff {:e}) at {:?}",
            c.name,
            c.analytic,
            c.numeric,
            (c.analytic - c.numeric).abs(),
            s
        );
    }
    Ok(())
}

fn state_strategy() -> impl Strategy<Value = State<f64>> {
    (
        prop::array::uniform2(-5.0..=5.0f64),
        prop::array::uniform2(0.0..=1.0f64),
        prop::array::uniform8(-10.0..=10.0f64),
    )
        .prop_map(|([i1, i2], [t1, t2], w)| State {
            i1,
            i2,
            t1,
            t2,
            w: Weights::from_array(w),
        })
}

/// E_total as a function of the eight weights (everything else from `s`).
fn e_total_at(s: &State<f64>, w: [f64; 8]) -> f64 {
    Forward::compute(&State {
        w: Weights::from_array(w),
        ..*s
    })
    .e_total
}

/// E_total with weight `k` (0-based) replaced by `x`.
fn e_total_with_weight(s: &State<f64>, k: usize, x: f64) -> f64 {
    let mut w = s.w.to_array();
    w[k] = x;
    e_total_at(s, w)
}

/// E1, E2 and E_total with the hidden activations replaced by (a_h1, a_h2).
fn errors_from_hidden(s: &State<f64>, a_h1: f64, a_h2: f64) -> (f64, f64, f64) {
    let w = &s.w;
    let e1 = loss_e1(s.t1, fwd_a_o1(fwd_o1(w.w5, w.w6, a_h1, a_h2)));
    let e2 = loss_e2(s.t2, fwd_a_o2(fwd_o2(w.w7, w.w8, a_h1, a_h2)));
    (e1, e2, loss_total(e1, e2))
}

/// Every local chain-rule piece of `r[bp.chain.*]`, each against the forward function whose
/// derivative it is.
fn chain_checks(s: &State<f64>) -> Vec<Check> {
    let f = Forward::compute(s);
    let w = s.w;
    vec![
        check(
            "bp.chain.de1_dao1",
            chain_de1_dao1(f.a_o1, s.t1),
            |a| loss_e1(s.t1, a),
            f.a_o1,
        ),
        check(
            "bp.chain.de2_dao2",
            chain_de2_dao2(f.a_o2, s.t2),
            |a| loss_e2(s.t2, a),
            f.a_o2,
        ),
        check("bp.chain.dao1_do1", chain_dao1_do1(f.a_o1), fwd_a_o1, f.o1),
        check("bp.chain.dao2_do2", chain_dao2_do2(f.a_o2), fwd_a_o2, f.o2),
        check(
            "bp.chain.do1_dw5",
            chain_do1_dw5(f.a_h1),
            |x| fwd_o1(x, w.w6, f.a_h1, f.a_h2),
            w.w5,
        ),
        check(
            "bp.chain.do1_dw6",
            chain_do1_dw6(f.a_h2),
            |x| fwd_o1(w.w5, x, f.a_h1, f.a_h2),
            w.w6,
        ),
        check(
            "bp.chain.do2_dw7",
            chain_do2_dw7(f.a_h1),
            |x| fwd_o2(x, w.w8, f.a_h1, f.a_h2),
            w.w7,
        ),
        check(
            "bp.chain.do2_dw8",
            chain_do2_dw8(f.a_h2),
            |x| fwd_o2(w.w7, x, f.a_h1, f.a_h2),
            w.w8,
        ),
        check(
            "bp.chain.do1_dah1",
            chain_do1_dah1(w.w5),
            |a| fwd_o1(w.w5, w.w6, a, f.a_h2),
            f.a_h1,
        ),
        check(
            "bp.chain.do1_dah2",
            chain_do1_dah2(w.w6),
            |a| fwd_o1(w.w5, w.w6, f.a_h1, a),
            f.a_h2,
        ),
        check(
            "bp.chain.do2_dah1",
            chain_do2_dah1(w.w7),
            |a| fwd_o2(w.w7, w.w8, a, f.a_h2),
            f.a_h1,
        ),
        check(
            "bp.chain.do2_dah2",
            chain_do2_dah2(w.w8),
            |a| fwd_o2(w.w7, w.w8, f.a_h1, a),
            f.a_h2,
        ),
        check("bp.chain.dah1_dh1", chain_dah1_dh1(f.a_h1), fwd_a_h1, f.h1),
        check("bp.chain.dah2_dh2", chain_dah2_dh2(f.a_h2), fwd_a_h2, f.h2),
        check(
            "bp.chain.dh1_dw1",
            chain_dh1_dw1(s.i1),
            |x| fwd_h1(x, w.w2, s.i1, s.i2),
            w.w1,
        ),
        check(
            "bp.chain.dh1_dw2",
            chain_dh1_dw2(s.i2),
            |x| fwd_h1(w.w1, x, s.i1, s.i2),
            w.w2,
        ),
        check(
            "bp.chain.dh2_dw3",
            chain_dh2_dw3(s.i1),
            |x| fwd_h2(x, w.w4, s.i1, s.i2),
            w.w3,
        ),
        check(
            "bp.chain.dh2_dw4",
            chain_dh2_dw4(s.i2),
            |x| fwd_h2(w.w3, x, s.i1, s.i2),
            w.w4,
        ),
    ]
}

/// The hidden-activation gradients of `r[bp.hidden.*]`: each path separately (the other
/// error's value ignored), then both together.
fn hidden_checks(s: &State<f64>) -> Vec<Check> {
    let f = Forward::compute(s);
    let w = s.w;
    let de1_dah1 = hidden_de1_dah1(f.a_o1, s.t1, w.w5);
    let de2_dah1 = hidden_de2_dah1(f.a_o2, s.t2, w.w7);
    let de1_dah2 = hidden_de1_dah2(f.a_o1, s.t1, w.w6);
    let de2_dah2 = hidden_de2_dah2(f.a_o2, s.t2, w.w8);
    vec![
        check(
            "bp.hidden.de1_dah1",
            de1_dah1,
            |a| errors_from_hidden(s, a, f.a_h2).0,
            f.a_h1,
        ),
        check(
            "bp.hidden.de2_dah1",
            de2_dah1,
            |a| errors_from_hidden(s, a, f.a_h2).1,
            f.a_h1,
        ),
        check(
            "bp.hidden.de_dah1",
            hidden_de_dah1(de1_dah1, de2_dah1),
            |a| errors_from_hidden(s, a, f.a_h2).2,
            f.a_h1,
        ),
        check(
            "bp.hidden.de1_dah2",
            de1_dah2,
            |a| errors_from_hidden(s, f.a_h1, a).0,
            f.a_h2,
        ),
        check(
            "bp.hidden.de2_dah2",
            de2_dah2,
            |a| errors_from_hidden(s, f.a_h1, a).1,
            f.a_h2,
        ),
        check(
            "bp.hidden.de_dah2",
            hidden_de_dah2(de1_dah2, de2_dah2),
            |a| errors_from_hidden(s, f.a_h1, a).2,
            f.a_h2,
        ),
    ]
}

/// Each `r[bp.grad.w*]` function, called directly, against ∂E_total/∂w_k of the full
/// forward pass.
fn weight_checks(s: &State<f64>) -> Vec<Check> {
    let f = Forward::compute(s);
    let w = s.w.to_array();
    let de_dah1 = hidden_de_dah1(
        hidden_de1_dah1(f.a_o1, s.t1, s.w.w5),
        hidden_de2_dah1(f.a_o2, s.t2, s.w.w7),
    );
    let de_dah2 = hidden_de_dah2(
        hidden_de1_dah2(f.a_o1, s.t1, s.w.w6),
        hidden_de2_dah2(f.a_o2, s.t2, s.w.w8),
    );
    let analytic = [
        ("bp.grad.w1", grad_w1(de_dah1, f.a_h1, s.i1)),
        ("bp.grad.w2", grad_w2(de_dah1, f.a_h1, s.i2)),
        ("bp.grad.w3", grad_w3(de_dah2, f.a_h2, s.i1)),
        ("bp.grad.w4", grad_w4(de_dah2, f.a_h2, s.i2)),
        ("bp.grad.w5", grad_w5(f.a_o1, s.t1, f.a_h1)),
        ("bp.grad.w6", grad_w6(f.a_o1, s.t1, f.a_h2)),
        ("bp.grad.w7", grad_w7(f.a_o2, s.t2, f.a_h1)),
        ("bp.grad.w8", grad_w8(f.a_o2, s.t2, f.a_h2)),
    ];
    analytic
        .iter()
        .enumerate()
        .map(|(k, &(name, g))| check(name, g, |x| e_total_with_weight(s, k, x), w[k]))
        .collect()
}

/// The assembled gradient (what training uses) against the numerical gradient of E_total.
fn assembled_checks(s: &State<f64>) -> Vec<Check> {
    const NAMES: [&str; 8] = [
        "assembled dE/dw1",
        "assembled dE/dw2",
        "assembled dE/dw3",
        "assembled dE/dw4",
        "assembled dE/dw5",
        "assembled dE/dw6",
        "assembled dE/dw7",
        "assembled dE/dw8",
    ];
    let g = s.gradient().to_array();
    let w = s.w.to_array();
    (0..8)
        .map(|k| check(NAMES[k], g[k], |x| e_total_with_weight(s, k, x), w[k]))
        .collect()
}

proptest! {
    #![proptest_config(fixed_cases(256))]

    /// Each local derivative against a central difference of the forward function it
    /// differentiates.
    /// Verifies r[bp.chain.de1_dao1] r[bp.chain.de2_dao2] r[bp.chain.dao1_do1] r[bp.chain.dao2_do2]
    /// Verifies r[bp.chain.do1_dw5] r[bp.chain.do1_dw6] r[bp.chain.do2_dw7] r[bp.chain.do2_dw8]
    /// Verifies r[bp.chain.do1_dah1] r[bp.chain.do1_dah2] r[bp.chain.do2_dah1] r[bp.chain.do2_dah2]
    /// Verifies r[bp.chain.dah1_dh1] r[bp.chain.dah2_dh2] r[bp.chain.dh1_dw1] r[bp.chain.dh1_dw2]
    /// Verifies r[bp.chain.dh2_dw3] r[bp.chain.dh2_dw4]
    #[test]
    fn every_chain_rule_piece_matches_a_central_difference(s in state_strategy()) {
        verify(&chain_checks(&s), &s)?;
    }

    /// Each path to a hidden activation separately, then both summed.
    /// Verifies r[bp.hidden.de1_dah1] r[bp.hidden.de2_dah1] r[bp.hidden.de_dah1]
    /// Verifies r[bp.hidden.de1_dah2] r[bp.hidden.de2_dah2] r[bp.hidden.de_dah2]
    #[test]
    fn hidden_activation_gradients_match_central_differences(s in state_strategy()) {
        verify(&hidden_checks(&s), &s)?;
    }

    /// Each weight-gradient function against ∂E_total/∂w_k of the full forward pass.
    /// Verifies r[bp.grad.w1] r[bp.grad.w2] r[bp.grad.w3] r[bp.grad.w4] r[bp.grad.w5] r[bp.grad.w6]
    /// Verifies r[bp.grad.w7] r[bp.grad.w8]
    #[test]
    fn each_weight_gradient_function_matches_d_e_total_dw(s in state_strategy()) {
        verify(&weight_checks(&s), &s)?;
    }

    /// The gradient training uses, per weight and along a random direction.
    /// Verifies r[bp.grad.w1] r[bp.grad.w2] r[bp.grad.w3] r[bp.grad.w4] r[bp.grad.w5] r[bp.grad.w6]
    /// Verifies r[bp.grad.w7] r[bp.grad.w8]
    #[test]
    fn assembled_gradient_matches_numerical_gradient_of_e_total(s in state_strategy()) {
        verify(&assembled_checks(&s), &s)?;
        // And along a random direction v: d/dε E(w + ε·v) at 0 equals g·v, which also
        // catches gradient components stored in the wrong slot.
        let v = {
            let w = s.w.to_array();
            std::array::from_fn::<f64, 8, _>(|k| (w[(k + 3) % 8] * 0.37 + 0.5 * k as f64).sin())
        };
        let g = s.gradient().to_array();
        let gv: f64 = g.iter().zip(&v).map(|(a, b)| a * b).sum();
        let w = s.w.to_array();
        let scale = w.iter().fold(1.0f64, |m, x| m.max(x.abs()));
        let h = STEP * scale;
        let at = |e: f64| e_total_at(&s, std::array::from_fn(|k| w[k] + e * v[k]));
        let numeric = (at(h) - at(-h)) / (2.0 * h);
        prop_assert!(agrees(gv, numeric), "directional: {gv:e} vs {numeric:e}");
    }

    #[test]
    fn backward_struct_agrees_with_the_labelled_functions(s in state_strategy()) {
        // The struct training uses is the same numbers as the functions checked above.
        let f = Forward::compute(&s);
        let b = Backward::compute(&s, &f);
        let direct: Vec<f64> = weight_checks(&s).iter().map(|c| c.analytic).collect();
        prop_assert_eq!(b.grad.to_array().to_vec(), direct);
    }
}

// ---- The checker must be able to fail. -------------------------------------------------

/// Runs `checks` over 256 deterministic random states; returns how many states it rejects.
fn rejections(checks: impl Fn(&State<f64>) -> Vec<Check>) -> usize {
    let mut runner = TestRunner::deterministic();
    let strat = state_strategy();
    (0..256)
        .filter(|_| {
            let s = strat
                .new_tree(&mut runner)
                .expect("the strategy cannot reject")
                .current();
            checks(&s).iter().any(|c| !agrees(c.analytic, c.numeric))
        })
        .count()
}

#[test]
fn the_correct_derivatives_are_never_rejected() {
    assert_eq!(rejections(chain_checks), 0);
    assert_eq!(rejections(hidden_checks), 0);
    assert_eq!(rejections(weight_checks), 0);
    assert_eq!(rejections(assembled_checks), 0);
}

#[test]
fn a_sigmoid_slope_with_the_wrong_sign_is_caught() {
    // a(1 + a) instead of a(1 − a). Measured: caught in 240 of 256 states; the others have
    // an output saturated near 0, where both a(1 + a) and a(1 − a) are ≈ 0 to within ATOL.
    let n = rejections(|s| {
        let f = Forward::compute(s);
        vec![check(
            "wrong dao1_do1",
            f.a_o1 * (1.0 + f.a_o1),
            fwd_a_o1,
            f.o1,
        )]
    });
    assert!(n >= 230, "caught in only {n} of 256 states");
}

#[test]
fn a_hidden_gradient_that_forgets_the_second_path_is_caught() {
    // ∂E_total/∂a_h1 = ∂E1/∂a_h1 only (the classic mistake).
    let n = rejections(|s| {
        let f = Forward::compute(s);
        vec![check(
            "wrong de_dah1",
            hidden_de1_dah1(f.a_o1, s.t1, s.w.w5),
            |a| errors_from_hidden(s, a, f.a_h2).2,
            f.a_h1,
        )]
    });
    assert!(n >= 230, "caught in only {n} of 256 states");
}

#[test]
fn a_weight_gradient_without_the_hidden_sigmoid_slope_is_caught() {
    // ∂E_total/∂w1 = ∂E_total/∂a_h1 · i1, missing a_h1(1 − a_h1).
    let n = rejections(|s| {
        let b = Backward::compute(s, &Forward::compute(s));
        vec![check(
            "wrong grad_w1",
            b.de_dah1 * s.i1,
            |x| e_total_with_weight(s, 0, x),
            s.w.w1,
        )]
    });
    assert!(n >= 230, "caught in only {n} of 256 states");
}

#[test]
fn swapped_output_weights_in_a_hidden_gradient_are_caught() {
    // ∂E1/∂a_h1 with w6 where w5 belongs.
    let n = rejections(|s| {
        let f = Forward::compute(s);
        vec![check(
            "wrong de1_dah1",
            hidden_de1_dah1(f.a_o1, s.t1, s.w.w6),
            |a| errors_from_hidden(s, a, f.a_h2).0,
            f.a_h1,
        )]
    });
    assert!(n >= 230, "caught in only {n} of 256 states");
}

#[test]
fn the_checker_rejects_a_wrong_derivative_at_the_spreadsheet_state() {
    // A single, hand-checkable case: the update uses ∂E/∂w5 but forgets the ½ cancels the 2.
    let s = State::<f64>::spreadsheet();
    let f = Forward::compute(&s);
    let right = grad_w5(f.a_o1, s.t1, f.a_h1);
    let numeric = central(|x| e_total_with_weight(&s, 4, x), s.w.w5);
    assert!(agrees(right, numeric));
    assert!(!agrees(2.0 * right, numeric));
    assert!(!agrees(-right, numeric));
}
