//! The optimiser and the learning-rate schedules, entry by entry.
//!
//! SGD with momentum is checked against the spec's two-line recurrence evaluated on scalars,
//! for every entry of every one of the 24 parameter tensors (so a skipped tensor, a swapped
//! sign or a dropped momentum term all fail), with exact equality: both sides perform the very
//! same f64 operations in the same order. The schedules are checked against values worked out
//! by hand from the recipe's definition (spec-level numbers, not the code's own formula).
use gradspec::cnn::Params;
use gradspec::train::recipe::Recipe;
use gradspec::train::sgd::sgd_momentum;

/// Distinct, entry-dependent values for every parameter tensor.
fn filled(seed: f64) -> Params<f64> {
    let mut p = Params::<f64>::zeros();
    for (k, s) in p.slices_mut().into_iter().enumerate() {
        for (i, v) in s.iter_mut().enumerate() {
            *v = seed + (k as f64) * 0.37 - (i % 97) as f64 * 0.011 + (i % 13) as f64 * 0.003;
        }
    }
    p
}

/// Verifies r[cnn.sgd.momentum]: three steps, every entry of every tensor, against
/// `v ← μv + g; θ ← θ − ηv` on scalars (buffer starting at 0, as PyTorch's first step).
#[test]
fn sgd_momentum_follows_the_recurrence_for_every_entry() {
    let (lr, mu) = (0.05, 0.9);
    let mut params = filled(0.5);
    let mut velocity = Params::<f64>::zeros();
    let grads: Vec<Params<f64>> = (0..3).map(|s| filled(-0.2 + 0.3 * s as f64)).collect();

    let mut want_theta: Vec<Vec<f64>> = params.slices().iter().map(|s| s.to_vec()).collect();
    let mut want_v: Vec<Vec<f64>> = want_theta.iter().map(|s| vec![0.0; s.len()]).collect();
    for g in &grads {
        sgd_momentum(&mut params, &mut velocity, g, lr, mu);
        for (k, gs) in g.slices().iter().enumerate() {
            for (i, &d) in gs.iter().enumerate() {
                want_v[k][i] = mu * want_v[k][i] + d;
                want_theta[k][i] -= lr * want_v[k][i];
            }
        }
    }
    let names: Vec<&str> = params.tensors().iter().map(|t| t.name).collect();
    for (k, (got, want)) in params.slices().iter().zip(&want_theta).enumerate() {
        assert_eq!(*got, &want[..], "{}: weights", names[k]);
    }
    for (k, (got, want)) in velocity.slices().iter().zip(&want_v).enumerate() {
        assert_eq!(*got, &want[..], "{}: momentum buffer", names[k]);
    }
}

/// Verifies r[cnn.sgd.momentum] on numbers small enough to follow by hand (exact in binary):
/// η = 0.5, μ = 0.5, θ₀ = 1, gradients 1, 2, −4.
#[test]
fn sgd_momentum_by_hand() {
    let mut params = Params::<f64>::zeros();
    params.slices_mut()[0][0] = 1.0;
    let mut velocity = Params::<f64>::zeros();
    let mut steps = Vec::new();
    for g in [1.0, 2.0, -4.0] {
        let mut grads = Params::<f64>::zeros();
        grads.slices_mut()[0][0] = g;
        sgd_momentum(&mut params, &mut velocity, &grads, 0.5, 0.5);
        steps.push((params.slices()[0][0], velocity.slices()[0][0]));
    }
    // v: 1, 0.5·1 + 2 = 2.5, 0.5·2.5 − 4 = −2.75; θ: 1 − 0.5 = 0.5, 0.5 − 1.25 = −0.75,
    // −0.75 + 1.375 = 0.625.
    assert_eq!(steps, [(0.5, 1.0), (-0.75, 2.5), (0.625, -2.75)]);
    // Every other entry had a zero gradient and stays zero.
    assert!(
        params.slices()[1..]
            .iter()
            .all(|s| s.iter().all(|&v| v == 0.0))
    );
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-12 * b.abs().max(1e-300)
}

/// The one-cycle schedule: linear from 0.008 (max/10) to 0.08 over the first quarter of the
/// steps, then a half cosine down to 0.00008 (max/1000).
#[test]
fn onecycle_hits_its_worked_values() {
    let r = Recipe::Onecycle;
    let total = 1000;
    let cases = [
        (0, 0.008),
        (125, 0.008 + 0.072 * 0.5),     // halfway up
        (250, 0.08),                    // the peak, at 25% of the steps
        (625, 0.00008 + 0.07992 * 0.5), // halfway down the cosine: cos(π/2) = 0
        (1000, 0.00008),                // the end
        (5000, 0.00008),                // past the end it stays there
    ];
    for (step, want) in cases {
        let got = r.lr(step, total);
        assert!(close(got, want), "step {step}: {got} != {want}");
    }
    // At the peak both pieces give 0.08 to the last bit (so which piece owns step `warm` does
    // not matter; .cargo/mutants.toml lists that mutant as equivalent).
    assert_eq!(r.lr(250, total), 0.08);
    // A quarter of the way down the cosine, cos(π/4): with 4,000 steps the warm-up is 1,000
    // and the cosine's quarter point is step 1,000 + 3,000/4.
    let q = 0.00008 + 0.07992 * 0.5 * (1.0 + std::f64::consts::FRAC_1_SQRT_2);
    let got = r.lr(1750, 4000);
    assert!(close(got, q), "{got} != {q}");
}

/// Tiny runs: the warm-up lasts at least one step and the cosine never divides by zero.
#[test]
fn onecycle_on_tiny_runs() {
    let r = Recipe::Onecycle;
    // total 1: warm-up 1 step (not 0.25), then the peak.
    assert!(close(r.lr(0, 1), 0.008));
    assert!(close(r.lr(1, 1), 0.08));
    assert!(close(r.lr(2, 1), 0.00008));
    // total 4: warm-up 1 step, then 3 steps of cosine: t = 0, 1/3, 2/3.
    assert!(close(r.lr(0, 4), 0.008));
    assert!(close(r.lr(1, 4), 0.08));
    assert!(close(r.lr(2, 4), 0.00008 + 0.07992 * 0.75));
    assert!(close(r.lr(3, 4), 0.00008 + 0.07992 * 0.25));
    // total 0 is treated as 1.
    assert!(close(r.lr(0, 0), 0.008));
    assert!(r.lr(0, 0).is_finite() && r.lr(7, 0).is_finite());
}

/// `onecyclelr`, PyTorch's `OneCycleLR`: a half cosine from 0.008 up to 0.08 ending at step
/// `0.25·total − 1`, then a half cosine down to 0.00008 ending at step `total − 1`
/// (tests/cnn_torch_f32_oracle.rs holds it to PyTorch's own values at every step of a run).
#[test]
fn onecyclelr_hits_its_worked_values() {
    let r = Recipe::Onecyclelr;
    let cases = [
        // total 1000: the peak at step 249, the end at step 999.
        (0, 1000, 0.008),
        (249, 1000, 0.08),
        (249 + 375, 1000, 0.00008 + 0.07992 * 0.5), // halfway down: cos(π/2) = 0
        (999, 1000, 0.00008),
        (5000, 1000, 0.00008), // past the end it stays there (PyTorch raises)
        // total 1004: the warm-up ends at step 250, so step 125 is halfway up.
        (125, 1004, 0.008 + 0.072 * 0.5),
        (250, 1004, 0.08),
    ];
    for (step, total, want) in cases {
        let got = r.lr(step, total);
        assert!(close(got, want), "step {step} of {total}: {got} != {want}");
    }
    // The ends of each half cosine are exact: cos(0) = 1 and cos(π) = −1.
    assert_eq!(r.lr(249, 1000), 0.08);
    assert_eq!(r.lr(999, 1000), 0.08 / 10.0 / 100.0);
    // A quarter of the way up, cos(3π/4) (total 2004: the warm-up ends at step 500).
    let q = 0.08 + (0.008 - 0.08) * 0.5 * (1.0 - std::f64::consts::FRAC_1_SQRT_2);
    let got = r.lr(375, 2004);
    assert!(close(got, q), "{got} != {q}");
    // Everything but the schedule is the default recipe's.
    let d = Recipe::Onecycle;
    assert_eq!(r.name(), "onecyclelr");
    assert_eq!(Recipe::from_name("onecyclelr"), Some(r));
    assert_eq!(
        (r.default_epochs(), r.max_lr(), r.momentum(), r.strength()),
        (d.default_epochs(), d.max_lr(), d.momentum(), d.strength())
    );
}

/// Tiny runs stay finite where PyTorch would divide 0 by 0: a warm-up that ends at step 0 or
/// before is taken at its start.
#[test]
fn onecyclelr_on_tiny_runs() {
    let r = Recipe::Onecyclelr;
    // total 4: the warm-up ends at step 0 (length 0), then 3 steps of cosine.
    assert!(close(r.lr(0, 4), 0.008));
    assert!(close(r.lr(1, 4), 0.00008 + 0.07992 * 0.75)); // cos(π/3) = 1/2
    assert!(close(r.lr(2, 4), 0.00008 + 0.07992 * 0.25));
    assert!(close(r.lr(3, 4), 0.00008));
    // total 5: the warm-up ends at step 0.25, so step 0 is its start.
    assert!(close(r.lr(0, 5), 0.008));
    // total 1 (and 0, treated as 1): PyTorch's only step is the end of the cosine.
    assert!(close(r.lr(0, 1), 0.00008));
    assert!(close(r.lr(0, 0), 0.00008));
    for total in 0..12 {
        for step in 0..16 {
            let v = r.lr(step, total);
            assert!((0.00008 - 1e-18..=0.08).contains(&v), "{step}/{total}: {v}");
        }
    }
}

#[test]
fn the_seed_recipe_is_the_source_notebooks() {
    let r = Recipe::Seed;
    for (step, total) in [(0, 1), (5, 10), (10_000, 9_380)] {
        assert_eq!(r.lr(step, total), 0.01);
    }
    assert_eq!(r.momentum(), 0.9);
    assert_eq!(Recipe::Onecycle.momentum(), 0.9);
    assert_eq!((r.max_lr(), Recipe::Onecycle.max_lr()), (0.01, 0.08));
    assert_eq!(
        (r.default_epochs(), Recipe::Onecycle.default_epochs()),
        (20, 8)
    );
    // The seed recipe augments exactly as the source; the default only more lightly.
    assert_eq!(r.strength(), gradspec::data::Strength::SOURCE);
    let light = Recipe::Onecycle.strength();
    assert_eq!((light.crop_prob, light.max_angle_deg), (0.1, 8.0));
    assert_eq!((r.name(), Recipe::Onecycle.name()), ("seed", "onecycle"));
    assert_eq!(gradspec::train::recipe::BATCH, 128);
}
