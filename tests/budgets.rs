//! The budget check shared by `mnist bench --check` and `cargo bench --bench budgets`: a ratio
//! below its minimum fails, an impossible minimum always fails, an unknown name is an error.
//! (.ci/run also runs the criterion target against an impossible budget file and requires its
//! exit status 1.)
use gradspec::train::bench::{BenchReport, check_budgets, parse_budgets};
use std::path::Path;

fn report() -> BenchReport {
    BenchReport {
        threads: 2,
        gemm_gflops: 200.0,
        end_to_end: 6000.0,
        train_step: 6400.0,
        inference: 24000.0,
    }
}

#[test]
fn an_impossible_minimum_fails_and_a_reachable_one_passes() {
    let b = parse_budgets(
        Path::new("b.toml"),
        "train_step = 1e9  # impossible\ninference = 120\nend_to_end = 30.0\n",
    )
    .unwrap();
    let lines = check_budgets(&report(), &b).unwrap();
    let verdicts: Vec<(&str, bool)> = lines.iter().map(|l| (l.name.as_str(), l.pass)).collect();
    assert_eq!(
        verdicts,
        [
            ("train_step", false),
            ("inference", true),
            ("end_to_end", true)
        ]
    );
    // 6000 / 200 = 30.0 exactly: a ratio equal to its minimum passes.
    assert_eq!(lines[2].ratio, 30.0);
    assert_eq!(
        lines[0].to_string(),
        "budget train_step: 32.00 img/s per GFLOP/s (minimum 1000000000.00) … FAIL"
    );
    assert!(lines[1].to_string().ends_with("… PASS"));
}

#[test]
fn a_ratio_just_below_its_minimum_fails() {
    let lines = check_budgets(&report(), &[("inference".into(), 120.000_001)]).unwrap();
    assert!(!lines[0].pass);
}

#[test]
fn an_unknown_budget_is_an_error_naming_it() {
    let e = check_budgets(&report(), &[("warp_speed".into(), 1.0)]).unwrap_err();
    assert!(e.to_string().contains("unknown budget 'warp_speed'"), "{e}");
}

fn run(before: f64, after: f64, e2e: Vec<f64>) -> gradspec::train::bench::ThreadRun {
    gradspec::train::bench::ThreadRun {
        threads: 2,
        calibration_before: before,
        calibration_after: after,
        end_to_end: e2e,
        train_step: vec![6000.0, 6100.0, 6050.0],
        inference: vec![24000.0],
    }
}

#[test]
fn a_busy_machine_is_reported_and_a_quiet_one_is_not() {
    let quiet = run(200.0, 195.0, vec![6000.0, 6200.0, 6100.0]);
    assert!(quiet.warnings().is_empty(), "{:?}", quiet.warnings());
    // The medians, against the mean calibration.
    let r = quiet.report();
    assert_eq!(
        (r.end_to_end, r.train_step, r.gemm_gflops),
        (6100.0, 6050.0, 197.5)
    );

    let moved = run(200.0, 150.0, vec![6000.0, 6100.0, 6050.0]);
    let w = moved.warnings();
    assert_eq!(w.len(), 1, "{w:?}");
    assert!(
        w[0].contains("calibration moved from 200.0 to 150.0 GFLOP/s (-25%)"),
        "{}",
        w[0]
    );

    let jittery = run(200.0, 200.0, vec![4000.0, 6100.0, 6050.0]);
    let w = jittery.warnings();
    assert_eq!(w.len(), 1, "{w:?}");
    assert!(w[0].contains("end_to_end varied by 35%"), "{}", w[0]);
}
