//! Unit tests of Part 1 that are not gradient checks: the forward pass at the spreadsheet's
//! numbers, the sigmoid's edges, the update rule, the trainer's row numbering, f32 training,
//! and `explain`'s coverage of every labelled equation.
use gradspec::backprop::explain::{equations, explain, explain_spec, substitute, symbols};
use gradspec::backprop::forward::fwd_sigmoid;
use gradspec::backprop::grad::update;
use gradspec::backprop::sweep::{column_name, sig, validate_lrs};
use gradspec::backprop::train::{Row, loss_curve, train};
use gradspec::backprop::{Forward, State};

fn close(a: f64, b: f64, tol: f64) -> bool {
    (a - b).abs() <= tol * b.abs().max(1e-300)
}

/// Every forward quantity at the spreadsheet's numbers, each computed here independently of
/// the crate from the previous one.
/// Verifies r[bp.fwd.sigmoid] r[bp.fwd.h1] r[bp.fwd.h2] r[bp.fwd.a_h1] r[bp.fwd.a_h2]
/// Verifies r[bp.fwd.o1] r[bp.fwd.o2] r[bp.fwd.a_o1] r[bp.fwd.a_o2]
/// Verifies r[bp.loss.e1] r[bp.loss.e2] r[bp.loss.total]
#[test]
fn forward_pass_at_the_spreadsheet_state_matches_hand_computation() {
    let f = Forward::compute(&State::<f64>::spreadsheet());
    let sigma = |x: f64| 1.0 / (1.0 + (-x).exp());
    // By hand: h1 = 0.15·0.05 + 0.2·0.1 = 0.0275, h2 = 0.25·0.05 + 0.3·0.1 = 0.0425.
    assert!(close(f.h1, 0.0275, 1e-15));
    assert!(close(f.h2, 0.0425, 1e-15));
    // σ(0.0275) = 1/(1 + e^−0.0275), evaluated independently of the crate.
    assert!(close(f.a_h1, sigma(0.0275), 1e-15));
    assert!(close(f.a_h2, sigma(0.0425), 1e-15));
    let o1 = 0.4 * f.a_h1 + 0.45 * f.a_h2;
    let o2 = 0.5 * f.a_h1 + 0.55 * f.a_h2;
    assert!(close(f.o1, o1, 1e-15));
    assert!(close(f.o2, o2, 1e-15));
    assert!(close(f.a_o1, sigma(o1), 1e-15));
    assert!(close(f.a_o2, sigma(o2), 1e-15));
    let e1 = 0.5 * (0.5 - f.a_o1) * (0.5 - f.a_o1);
    let e2 = 0.5 * (0.5 - f.a_o2) * (0.5 - f.a_o2);
    assert!(close(f.e1, e1, 1e-15));
    assert!(close(f.e2, e2, 1e-15));
    assert!(close(f.e_total, e1 + e2, 1e-15));
    assert!(close(f.e_total, 0.014181377937891659, 1e-14));
}

/// Verifies r[bp.fwd.sigmoid] at 0, its symmetry and both saturated ends.
#[test]
fn sigmoid_is_symmetric_and_saturates_without_nan() {
    assert_eq!(fwd_sigmoid(0.0f64), 0.5);
    for x in [-30.0, -2.5, -0.1, 0.7, 4.0, 30.0f64] {
        assert!((fwd_sigmoid(x) + fwd_sigmoid(-x) - 1.0).abs() < 1e-15);
    }
    assert_eq!(fwd_sigmoid(-1000.0f64), 0.0);
    assert_eq!(fwd_sigmoid(1000.0f64), 1.0);
    assert_eq!(fwd_sigmoid(-1000.0f32), 0.0);
}

/// Verifies r[bp.update] for one weight and for all eight at once.
#[test]
fn update_moves_against_the_gradient_and_step_uses_the_old_weights() {
    assert_eq!(update(1.0, 0.25, 2.0), 0.5);
    let s = State::<f64>::spreadsheet();
    let g = s.gradient();
    let next = s.step(&g, 0.5);
    for (k, (w, (gk, w_next))) in
        s.w.to_array()
            .iter()
            .zip(g.to_array().iter().zip(next.w.to_array()))
            .enumerate()
    {
        assert_eq!(w_next, w - 0.5 * gk, "w{}", k + 1);
    }
    assert_eq!(
        (next.i1, next.i2, next.t1, next.t2),
        (s.i1, s.i2, s.t1, s.t2)
    );
}

#[test]
fn row_k_is_the_state_before_update_k_plus_1() {
    let s = State::<f64>::spreadsheet();
    let rows = train(s, 0.5, 3);
    assert_eq!(rows.len(), 3);
    assert_eq!(rows[0].state, s, "row 0 holds the initial weights");
    assert_eq!(rows[1].state, s.step(&s.gradient(), 0.5));
    assert_eq!(
        rows.iter().map(|r| r.iteration).collect::<Vec<_>>(),
        [0, 1, 2]
    );
    let curve = loss_curve(s, 0.5, 3);
    assert_eq!(
        curve,
        rows.iter().map(|r| r.fwd.e_total).collect::<Vec<_>>()
    );
}

#[test]
fn training_in_f32_tracks_f64() {
    let c64 = loss_curve(State::<f64>::spreadsheet(), 0.5, 100);
    let c32 = loss_curve(State::<f32>::spreadsheet(), 0.5, 100);
    for (a, b) in c32.iter().zip(&c64) {
        assert!(close(f64::from(*a), *b, 1e-4), "{a} vs {b}");
    }
    assert!(c64[99] < c64[0] / 10.0, "training lowers the loss");
}

#[test]
fn explain_fills_in_every_labelled_equation() {
    let row = Row::of(0, State::<f64>::spreadsheet());
    let text = explain(&row, 0.5).expect("every equation can be filled in");
    let eqs = equations(gradspec::backprop::explain::SPEC);
    assert!(eqs.len() >= 40);
    for (label, lines) in &eqs {
        assert!(!lines.is_empty(), "r[{label}] has no equation");
        assert!(text.contains(&format!("[{label}]")), "{label} missing");
    }
    // Every non-special equation has all its symbols known.
    let syms = symbols(&row);
    for (label, lines) in &eqs {
        if matches!(label.as_str(), "bp.fwd.sigmoid" | "bp.update") {
            continue;
        }
        for (k, l) in lines.iter().enumerate() {
            let rhs = if k == 0 {
                l.split_once(" = ").expect("an equation").1
            } else {
                l.trim_start_matches('=').trim()
            };
            let (_, unknown) = substitute(rhs, &syms);
            let allowed = ["σ"];
            assert!(
                unknown.iter().all(|u| allowed.contains(&u.as_str())),
                "r[{label}]: unknown {unknown:?}"
            );
        }
    }
    assert!(text.contains("= 0.0141813779"), "E_total at row 0");
    assert!(!text.contains("## Conventions"));
}

#[test]
fn explain_refuses_an_equation_it_cannot_fill_in() {
    let row = Row::of(0, State::<f64>::spreadsheet());
    let bad = "r[bp.grad.w5]\n\n    ∂E_total/∂w5 = a_o1 · mystery\n";
    let err = explain_spec(bad, &row, 0.5).unwrap_err().to_string();
    assert!(err.contains("mystery"), "{err}");
    let bad_lhs = "r[bp.grad.w5]\n\n    ∂E_total/∂w9 = a_o1\n";
    assert!(explain_spec(bad_lhs, &row, 0.5).is_err());
}

#[test]
fn number_formatting_and_rate_names() {
    assert_eq!(sig(0.014181377937891659, 9), "0.0141813779");
    assert_eq!(sig(0.5, 9), "0.5");
    assert_eq!(sig(-2.0, 9), "-2");
    assert_eq!(sig(2.91081437e-8, 9), "2.91081437e-8");
    assert_eq!(sig(2.0203251e-6, 9), "2.0203251e-6");
    assert_eq!(sig(-3e-7, 9), "-3e-7");
    assert_eq!(column_name(1.0), "lr_1.0");
    assert_eq!(column_name(0.1), "lr_0.1");
    assert!(validate_lrs(&[0.1, 0.1]).is_err());
    assert!(validate_lrs(&[]).is_err());
    assert!(validate_lrs(&[f64::NAN]).is_err());
    assert!(validate_lrs(&[0.1, 2.0]).is_ok());
}

/// `Row::check_finite` names the first quantity that is not finite, in the spec's order, and
/// `train_checked` stops at the first such row; finite rows pass.
#[test]
fn divergence_is_reported_at_the_first_non_finite_quantity() {
    use gradspec::backprop::train::{Diverged, Row, train, train_checked};
    let s = State::<f64>::spreadsheet();
    let rows = train(s, 0.5, 20);
    assert_eq!(
        train_checked(s, 0.5, 20).unwrap(),
        rows,
        "finite rows pass unchanged"
    );
    for r in &rows {
        assert_eq!(r.check_finite(0.5), Ok(()));
        assert_eq!(r.quantities().len(), 43);
        assert!(r.quantities().iter().all(|(_, v)| v.is_finite()));
    }
    // Every quantity in turn: poison it, and it is the one named.
    let names: Vec<&str> = rows[3].quantities().iter().map(|q| q.0).collect();
    assert_eq!(names[0], "t1");
    assert_eq!(names[22], "E_total");
    assert_eq!(names[42], "dE_total/dw8");
    let mut uniq = names.clone();
    uniq.sort();
    uniq.dedup();
    assert_eq!(uniq.len(), 43, "names are distinct");
    // NaN in the inputs propagates: the first name is the input itself.
    let bad = State { i2: f64::NAN, ..s };
    let e = Row::of(7, bad).check_finite(0.25).unwrap_err();
    assert_eq!(e.iteration, 7);
    assert_eq!(e.quantity, "i2");
    assert!(e.value.is_nan());
    assert_eq!(e.lr, 0.25);
    // An infinite weight: named at its own position, before anything computed from it.
    let mut w = s.w;
    w.w6 = f64::INFINITY;
    let e = Row::of(0, State { w, ..s }).check_finite(1.0).unwrap_err();
    assert_eq!((e.quantity, e.value), ("w6", f64::INFINITY));
    // Overflow in the update (t1 = 100, lr = 1e308): row 0 is finite, row 1 is not.
    let big = State { t1: 100.0, ..s };
    let err: Diverged = train_checked(big, 1e308, 10).unwrap_err();
    assert_eq!((err.iteration, err.quantity), (1, "w5"));
    assert_eq!(err.value, f64::INFINITY);
    assert!(
        train_checked(big, 1e308, 1).is_ok(),
        "row 0 alone is finite"
    );
}
