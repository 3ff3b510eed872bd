//! Golden output of Part 1: the full training tables of the six swept rates, the sweep
//! summary and the `explain` walk-through.
//!
//! # Tables: compared number by number, not byte by byte
//!
//! `golden/backprop/table_lr_<rate>.csv` were written by
//! `gradspec backprop table --lr <rate> --iterations 100`. Each number must match with
//! `|new − golden| ≤ 1e-12·|golden| + 1e-15`. Bit-for-bit equality would be too strict: a
//! different libm (or a fused multiply-add) may round `exp` differently in the last ulp
//! (1.1e-16 relative), and gradient descent carries that through 100 contracting steps with
//! only a small gain. The absolute 1e-15 absorbs the cancellation in `a_o − t` once the
//! outputs sit within ~1e-4 of their targets (lr 2.0 reaches E_total ≈ 3e-8), where one ulp of
//! a_o ≈ 0.5 is a relative error of ~1e-12 in E and in the gradients. Anything else — a changed
//! formula, an off-by-one row, a different update order — moves numbers by far more.
//!
//! To regenerate after an intended change, rerun the command above for each rate and review
//! the diff.
//!
//! # Snapshots
//!
//! The summary and `explain` texts round to 9 significant digits, so the last-ulp differences
//! above cannot change them. They live in `golden/backprop/*.snap` (insta).
use gradspec::backprop::State;
use gradspec::backprop::explain::explain;
use gradspec::backprop::sweep::{DEFAULT_ITERATIONS, DEFAULT_LRS, summary_table, sweep_curves};
use gradspec::backprop::table::{HEADER, table_csv};
use gradspec::backprop::train::Trainer;
use std::path::Path;

fn golden_dir() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("golden/backprop")
}

fn same_number(new: f64, golden: f64) -> bool {
    (new - golden).abs() <= 1e-12 * golden.abs() + 1e-15
}

/// Compares two tables; returns the first difference, if any.
fn compare_tables(new: &str, golden: &str) -> Result<(), String> {
    let (new_lines, golden_lines): (Vec<&str>, Vec<&str>) =
        (new.lines().collect(), golden.lines().collect());
    if new_lines.len() != golden_lines.len() {
        return Err(format!(
            "{} lines instead of {}",
            new_lines.len(),
            golden_lines.len()
        ));
    }
    if new_lines[0] != golden_lines[0] {
        return Err(format!(
            "header differs:\n  {}\n  {}",
            new_lines[0], golden_lines[0]
        ));
    }
    let columns: Vec<&str> = golden_lines[0].split(',').collect();
    for (row, (n, g)) in new_lines.iter().zip(&golden_lines).enumerate().skip(1) {
        let (nf, gf): (Vec<&str>, Vec<&str>) = (n.split(',').collect(), g.split(',').collect());
        if nf.len() != gf.len() {
            return Err(format!(
                "line {}: {} fields instead of {}",
                row + 1,
                nf.len(),
                gf.len()
            ));
        }
        for (c, (a, b)) in nf.iter().zip(&gf).enumerate() {
            let (a, b): (f64, f64) = (
                a.parse()
                    .map_err(|_| format!("line {}: '{a}' is not a number", row + 1))?,
                b.parse()
                    .map_err(|_| format!("golden line {}: '{b}'", row + 1))?,
            );
            if !same_number(a, b) {
                return Err(format!(
                    "line {} column {}: {a:e} vs golden {b:e}",
                    row + 1,
                    columns[c]
                ));
            }
        }
    }
    Ok(())
}

#[test]
fn tables_of_the_six_rates_match_the_golden_files() {
    for lr in DEFAULT_LRS {
        let path = golden_dir().join(format!("table_lr_{lr:?}.csv"));
        let golden =
            std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let new = table_csv(State::spreadsheet(), lr, DEFAULT_ITERATIONS).unwrap();
        assert_eq!(new.lines().next(), Some(HEADER));
        if let Err(e) = compare_tables(&new, &golden) {
            panic!(
                "{} drifted: {e}\nregenerate with `gradspec backprop table --lr {lr:?} \
                 --iterations 100` if the change is intended",
                path.display()
            );
        }
    }
}

#[test]
fn the_comparison_catches_drift_but_not_last_ulp_noise() {
    let golden = table_csv(State::spreadsheet(), 0.5, 5).unwrap();
    assert!(compare_tables(&golden, &golden).is_ok());
    // One ulp in every number passes.
    let ulp: String = golden
        .lines()
        .enumerate()
        .map(|(i, l)| {
            if i == 0 {
                return l.to_string();
            }
            l.split(',')
                .map(|x| {
                    let v: f64 = x.parse().unwrap();
                    if v == 0.0 || x.chars().all(|c| c.is_ascii_digit()) {
                        x.to_string()
                    } else {
                        f64::from_bits(v.to_bits() + 1).to_string()
                    }
                })
                .collect::<Vec<_>>()
                .join(",")
        })
        .collect::<Vec<_>>()
        .join("\n");
    assert!(compare_tables(&ulp, &golden).is_ok());
    // A different rate, a missing row, a shifted row all fail.
    assert!(
        compare_tables(
            &table_csv(State::spreadsheet(), 0.5000001, 5).unwrap(),
            &golden
        )
        .is_err()
    );
    assert!(compare_tables(&table_csv(State::spreadsheet(), 0.5, 4).unwrap(), &golden).is_err());
    let shifted: String = golden
        .lines()
        .take(1)
        .chain(golden.lines().skip(2))
        .chain(golden.lines().last())
        .collect::<Vec<_>>()
        .join("\n");
    assert!(compare_tables(&shifted, &golden).is_err());
}

macro_rules! golden_snapshot {
    ($name:expr, $value:expr) => {
        insta::with_settings!({
            snapshot_path => "../golden/backprop",
            prepend_module_to_snapshot => false,
        }, {
            insta::assert_snapshot!($name, $value);
        })
    };
}

#[test]
fn sweep_summary_snapshot() {
    let curves = sweep_curves(State::spreadsheet(), &DEFAULT_LRS, DEFAULT_ITERATIONS).unwrap();
    golden_snapshot!(
        "sweep_summary",
        summary_table(&curves.summarise(), DEFAULT_ITERATIONS)
    );
}

#[test]
fn explain_snapshot_first_row_at_lr_0_5() {
    let row = Trainer::new(State::spreadsheet(), 0.5).next().unwrap();
    golden_snapshot!("explain_lr_0.5_iteration_0", explain(&row, 0.5).unwrap());
}

#[test]
fn explain_snapshot_last_row_at_lr_2_0() {
    let row = Trainer::new(State::spreadsheet(), 2.0).nth(99).unwrap();
    golden_snapshot!("explain_lr_2.0_iteration_99", explain(&row, 2.0).unwrap());
}
