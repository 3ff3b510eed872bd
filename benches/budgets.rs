//! `cargo bench --bench budgets`: the performance budgets, measured by criterion.
//!
//! Criterion measures four things on real MNIST images (`$MNIST_DIR` or `data/mnist`; fetch
//! them with `cargo run --release -- mnist fetch`):
//! * `calibration_sgemm_512` — one 512³ single-precision product per worker thread
//!   (matrixmultiply, the kernel the model's GEMMs use);
//! * `end_to_end_b128`, `train_step_b128`, `inference_b128` — the [`Workload`] that
//!   `mnist bench` measures too (both from `gradspec::train::bench`): a trainer step (augmentation, batching, the training step), the
//!   bare training step on a loaded batch of 128, and the eval-mode forward pass of it.
//!
//! Each throughput is divided by the calibration's GFLOP/s from the same run and compared with
//! the minimum in `benches/budgets.toml` (or the file named by `$GRADSPEC_BUDGETS`): one line per
//! budget, `PASS` or `FAIL`, and the process exits with status 1 on any `FAIL`, 2 on a bad
//! budget file or missing data. Criterion's options work as usual
//! (`cargo bench --bench budgets -- --measurement-time 2`); a filter that skips a measurement
//! skips the budget check.
use criterion::{Criterion, Throughput};
use gradspec::data::{self, Split};
use gradspec::train::bench::{BenchReport, Calibration, Workload, check_budgets, parse_budgets};
use gradspec::train::recipe::BATCH;
use std::cell::Cell;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

/// Units done and time taken over every iteration criterion timed (warm-up included).
#[derive(Default)]
struct Tally {
    units: Cell<f64>,
    seconds: Cell<f64>,
}

impl Tally {
    /// Units per second, or `None` when criterion did not run the bench (a filter).
    fn rate(&self) -> Option<f64> {
        (self.seconds.get() > 0.0).then(|| self.units.get() / self.seconds.get())
    }
}

/// Times `iters` calls of `f` (which returns its units) for criterion, and adds them to `tally`.
fn timed(tally: &Tally, iters: u64, mut f: impl FnMut() -> f64) -> Duration {
    let t0 = Instant::now();
    let mut units = 0.0;
    for _ in 0..iters {
        units += f();
    }
    let dt = t0.elapsed();
    tally.units.set(tally.units.get() + units);
    tally.seconds.set(tally.seconds.get() + dt.as_secs_f64());
    dt
}

fn fail(msg: String) -> ExitCode {
    eprintln!("error: {msg}");
    ExitCode::from(2)
}

fn main() -> ExitCode {
    gradspec::plot::init_fonts();
    let budgets_path = std::env::var_os("GRADSPEC_BUDGETS")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("benches/budgets.toml"));
    let budgets = match std::fs::read_to_string(&budgets_path) {
        Ok(text) => match parse_budgets(&budgets_path, &text) {
            Ok(b) => b,
            Err(e) => return fail(format!("{e:#}")),
        },
        Err(e) => return fail(format!("'{}': cannot read: {e}", budgets_path.display())),
    };
    let dir = data::resolve_dir(None);
    let train = match data::load_split(&dir, Split::Train) {
        Ok(t) => t,
        Err(e) => {
            return fail(format!(
                "{}; fetch MNIST with `cargo run --release -- mnist fetch`",
                e.chain()
            ));
        }
    };

    let mut c = Criterion::default()
        .sample_size(20)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4))
        .configure_from_args();
    let (gemm, e2e, step, infer) = (
        Tally::default(),
        Tally::default(),
        Tally::default(),
        Tally::default(),
    );
    // Each rate is units over seconds summed over every batch of iterations criterion timed,
    // its warm-up included (the warm-up runs the same routine at growing iteration counts).
    let mut g = c.benchmark_group("budgets");

    let threads = gradspec::par::threads();
    let mut cal = Calibration::new();
    g.throughput(Throughput::Elements((cal.gflop() * 1e9) as u64));
    g.bench_function("calibration_sgemm_512", |b| {
        b.iter_custom(|iters| timed(&gemm, iters, || cal.gemm()))
    });

    g.throughput(Throughput::Elements(BATCH as u64));
    let mut w = Workload::new(&train);
    g.bench_function("end_to_end_b128", |b| {
        b.iter_custom(|iters| timed(&e2e, iters, || w.end_to_end()))
    });
    g.bench_function("train_step_b128", |b| {
        b.iter_custom(|iters| timed(&step, iters, || w.train_step()))
    });
    g.bench_function("inference_b128", |b| {
        b.iter_custom(|iters| timed(&infer, iters, || w.inference()))
    });
    g.finish();
    c.final_summary();

    let (Some(gemm_gflops), Some(end_to_end), Some(train_step), Some(inference)) =
        (gemm.rate(), e2e.rate(), step.rate(), infer.rate())
    else {
        println!("budgets: not checked (a filter skipped a measurement)");
        return ExitCode::SUCCESS;
    };
    let report = BenchReport {
        threads,
        gemm_gflops,
        end_to_end,
        train_step,
        inference,
    };
    println!(
        "threads {threads}: calibration {gemm_gflops:.1} GFLOP/s; end-to-end {end_to_end:.0}, train step {train_step:.0}, inference {inference:.0} images/s"
    );
    match check_budgets(&report, &budgets) {
        Ok(lines) => {
            let mut failed = 0;
            for l in &lines {
                println!("{l}");
                failed += usize::from(!l.pass);
            }
            if failed > 0 {
                println!("{failed} budget(s) failed ('{}')", budgets_path.display());
                ExitCode::from(1)
            } else {
                ExitCode::SUCCESS
            }
        }
        Err(e) => fail(format!("{e:#}")),
    }
}
