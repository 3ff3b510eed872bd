//! `gradspec mnist bench`: throughput of training and inference, each divided by a
//! calibration GEMM measured in the same run, so that a budget holds on any machine. The
//! workload and the budget check are the library's ([`crate::train::bench`]); this file parses
//! the flags and prints.
use super::args::DataDirArg;
use crate::data::{self, Split};
use crate::error::RunFailed;
use crate::train::bench::{ThreadRun, check_budgets, parse_budgets};
use anyhow::{Context, Result, anyhow};
use clap::Args;
use std::path::PathBuf;

// No `///` doc here: clap would turn it into --help text.
#[allow(missing_docs)]
#[derive(Args, Debug)]
pub struct BenchArgs {
    /// Seconds spent on each measurement (at most 3600).
    #[arg(long, default_value_t = 2.0, value_parser = super::args::seconds_up_to::<3600>, allow_hyphen_values = true)]
    pub seconds: f64,
    /// Times each figure is measured, 1 to 20; the table shows the median and the range.
    #[arg(long, default_value_t = 3, value_parser = super::args::up_to::<20>, allow_negative_numbers = true)]
    pub repeats: usize,
    /// Budget file (`name = minimum ratio` lines); exits 1 when a ratio falls below it.
    #[arg(long)]
    pub check: Option<PathBuf>,
    /// Worker threads (default: 1 and then all cores, with the scaling between them).
    #[arg(long, value_parser = super::args::up_to::<{ super::args::MAX_THREADS }>, allow_negative_numbers = true)]
    pub threads: Option<usize>,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub data: DataDirArg,
}

/// PyTorch 2.x on this kind of machine with 2 threads, from the project brief (every table
/// compares with these, whatever its own thread count).
const PYTORCH: [(&str, f64); 3] = [
    ("end_to_end", 1300.0),
    ("train_step", 1700.0),
    ("inference", 5100.0),
];

/// `mnist bench`: each thread count's table, the scaling between them, warnings when the
/// machine was busy, and the budget check (on the run with the most threads).
pub fn bench(a: BenchArgs) -> Result<()> {
    let budgets = match &a.check {
        Some(p) => {
            let text = std::fs::read_to_string(p)
                .with_context(|| format!("--check '{}': cannot read", p.display()))?;
            Some(parse_budgets(p, &text)?)
        }
        None => None,
    };
    let dir = super::args::ensure_mnist(&a.data)?;
    let train = data::load_split(&dir, Split::Train)?;
    let all = std::thread::available_parallelism().map_or(1, |n| n.get());
    let counts = match a.threads {
        Some(t) => vec![t],
        None if all > 1 => vec![1, all],
        None => vec![1],
    };
    eprintln!(
        "benchmarking on {} thread(s): {} s per measurement, {} repeat(s) …",
        counts
            .iter()
            .map(|c| c.to_string())
            .collect::<Vec<_>>()
            .join(" and "),
        a.seconds,
        a.repeats
    );
    let mut runs = Vec::new();
    for &t in &counts {
        let run = crate::par::with_threads(t, || ThreadRun::measure(&train, a.seconds, a.repeats))
            .map_err(|e| anyhow!("--threads {t}: {e}"))?;
        runs.push(run);
    }
    let warnings: Vec<String> = runs.iter().flat_map(ThreadRun::warnings).collect();
    let scaling = match runs.as_slice() {
        [one, .., many] if runs.len() > 1 => {
            let (a1, an) = (one.report(), many.report());
            Some((
                many.threads,
                an.end_to_end / a1.end_to_end,
                an.train_step / a1.train_step,
                an.inference / a1.inference,
                an.gemm_gflops / a1.gemm_gflops,
            ))
        }
        _ => None,
    };
    if a.json {
        let j = serde_json::json!({
            "runs": runs.iter().map(|r| serde_json::json!({
                "measurements": r,
                "median": r.report(),
                "warnings": r.warnings(),
            })).collect::<Vec<_>>(),
            "scaling": scaling.map(|(t, e, s, i, g)| serde_json::json!({
                "threads": t, "end_to_end": e, "train_step": s, "inference": i, "calibration": g,
            })),
        });
        println!("{}", serde_json::to_string_pretty(&j)?);
    } else {
        for run in &runs {
            print_table(run);
        }
        if let Some((t, e, s, i, g)) = scaling {
            println!(
                "scaling 1 → {t} threads: end-to-end {e:.2}×, train step {s:.2}×, inference {i:.2}×, calibration GEMM {g:.2}×"
            );
        }
    }
    for w in &warnings {
        eprintln!("warning: {w}");
    }
    if let Some(budgets) = budgets {
        let r = runs
            .last()
            .map(ThreadRun::report)
            .ok_or_else(|| anyhow!("no measurement"))?;
        let lines = check_budgets(&r, &budgets).map_err(|e| anyhow!("--check: {e}"))?;
        let mut failed = 0;
        for l in &lines {
            println!("{l}");
            failed += usize::from(!l.pass);
        }
        if failed > 0 {
            let failed = RunFailed::new(format!("{failed} performance budget(s) failed"));
            return Err(crate::Error::from(failed).into());
        }
    }
    Ok(())
}

/// One thread count's table: median and range of each figure, per GEMM GFLOP/s, vs PyTorch.
fn print_table(run: &ThreadRun) {
    let r = run.report();
    println!(
        "threads: {} (calibration {:.1} before, {:.1} after)",
        r.threads, run.calibration_before, run.calibration_after
    );
    println!(
        "{:<34} {:>12} {:>17} {:>16} {:>12}",
        "measurement", "median", "range", "per GEMM GFLOP/s", "vs PyTorch 2T"
    );
    println!(
        "{:<34} {:>7.1} GF/s {:>17} {:>16} {:>12}",
        "calibration sgemm 512³ (all threads)", r.gemm_gflops, "", "1", "-"
    );
    for (name, label, v) in [
        (
            "end_to_end",
            "end-to-end train (augment+batch)",
            &run.end_to_end,
        ),
        (
            "train_step",
            "bare train step (fwd+bwd+SGD)",
            &run.train_step,
        ),
        ("inference", "inference (eval forward)", &run.inference),
    ] {
        let m = r.get(name).unwrap_or(f64::NAN);
        let lo = v.iter().copied().fold(f64::INFINITY, f64::min);
        let hi = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let pt = PYTORCH
            .iter()
            .find(|p| p.0 == name)
            .map_or(f64::NAN, |p| p.1);
        println!(
            "{:<34} {:>6.0} img/s {:>17} {:>16.2} {:>11.2}×",
            label,
            m,
            format!("{lo:.0}–{hi:.0}"),
            m / r.gemm_gflops,
            m / pt
        );
    }
}
