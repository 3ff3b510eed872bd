//! `gradspec mnist bench`: throughput of training and inference, each divided by a
//! calibration GEMM measured in the same run, so that a budget holds on any machine.
use super::data::DataDirArg;
use crate::cnn::net::{DropoutKey, PIXELS};
use crate::cnn::{Mode, Params, Workspace};
use crate::data::{self, Split};
use crate::train::recipe::BATCH;
use crate::train::recipe::Recipe;
use crate::train::{RunOptions, Trainer, train_step};
use anyhow::{Context, Result, anyhow, bail};
use clap::Args;
use rand::{Rng, SeedableRng};
use std::path::{Path, PathBuf};
use std::time::Instant;

// No `///` doc here: clap would turn it into --help text.
#[allow(missing_docs)]
#[derive(Args, Debug)]
pub struct BenchArgs {
    /// Seconds spent on each measurement (at most 3600).
    #[arg(long, default_value_t = 4.0, value_parser = super::seconds_up_to::<3600>, allow_hyphen_values = true)]
    pub seconds: f64,
    /// Budget file (`name = minimum ratio` lines); exits 1 when a ratio falls below it.
    #[arg(long)]
    pub check: Option<PathBuf>,
    /// Worker threads (default: all cores).
    #[arg(long, value_parser = super::up_to::<{ super::MAX_THREADS }>, allow_negative_numbers = true)]
    pub threads: Option<usize>,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub data: DataDirArg,
}

/// PyTorch 2.x on this kind of machine (2 threads), from the project brief.
const PYTORCH: [(&str, f64); 3] = [
    ("end_to_end", 1300.0),
    ("train_step", 1700.0),
    ("inference", 5100.0),
];

/// Runs `f` repeatedly for about `seconds`; returns units per second (`f` returns its units).
fn rate(seconds: f64, mut f: impl FnMut() -> f64) -> f64 {
    f(); // warm-up: caches, page faults, thread pool
    let t0 = Instant::now();
    let mut units = 0.0;
    while t0.elapsed().as_secs_f64() < seconds {
        units += f();
    }
    units / t0.elapsed().as_secs_f64()
}

/// Single-precision GEMM GFLOP/s with every worker thread multiplying its own 512³ product
/// (matrixmultiply, the kernel the model uses).
pub fn calibration_gflops(seconds: f64) -> f64 {
    const N: usize = 512;
    let threads = crate::par::threads();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
    let a: Vec<f32> = (0..N * N).map(|_| rng.random_range(-1.0..1.0)).collect();
    let b = a.clone();
    let mut cs = vec![vec![0f32; N * N]; threads];
    rate(seconds, || {
        crate::par::for_each_mut(&mut cs, 1, |c| {
            <f32 as crate::cnn::Float>::gemm(N, N, N, 1.0, &a, (N, 1), &b, (N, 1), 0.0, c, (N, 1));
        });
        (threads * 2 * N * N * N) as f64 / 1e9
    })
}

/// Measured throughputs.
#[derive(Debug, serde::Serialize)]
pub struct BenchReport {
    /// Worker threads used for every measurement.
    pub threads: usize,
    /// Calibration: GFLOP/s of 512×512×512 f32 GEMMs on all threads.
    pub gemm_gflops: f64,
    /// Training images per second through the full trainer (augmentation, batching, step).
    pub end_to_end: f64,
    /// Training images per second of the bare train step (forward, backward, SGD update).
    pub train_step: f64,
    /// Images per second of the eval-mode forward pass.
    pub inference: f64,
}

impl BenchReport {
    fn get(&self, name: &str) -> Option<f64> {
        match name {
            "end_to_end" => Some(self.end_to_end),
            "train_step" => Some(self.train_step),
            "inference" => Some(self.inference),
            _ => None,
        }
    }
}

/// Measures all four numbers on `train` (real MNIST training images). Training uses the
/// trainer's own step ([`Trainer::step`], [`train_step`]) with the `seed` recipe's constant
/// learning rate, so that the figures are the ones a real run sees.
pub fn measure(train: &data::Dataset, seconds: f64) -> BenchReport {
    let gemm_gflops = calibration_gflops(seconds);
    let options = RunOptions {
        recipe: Recipe::Seed,
        epochs: super::MAX_EPOCHS,
        seed: 1,
        train_limit: None,
    };
    let empty = data::Dataset::default();
    let mut trainer = Trainer::new(options, train);
    let end_to_end = rate(seconds, || {
        match trainer.step() {
            Ok(Some(b)) => b.images as f64,
            // The epoch is over (its evaluation on no images costs nothing), or the loss
            // diverged, which the lr of `seed` does not do on MNIST: count no images.
            Ok(None) => {
                trainer.end_epoch(&empty);
                0.0
            }
            Err(_) => 0.0,
        }
    });
    let (mut net, mut vel, _) = trainer.into_parts();
    let mut ws = Workspace::<f32>::new(BATCH);
    let mut grads = Params::<f32>::zeros();
    let mut x = vec![0f32; BATCH * PIXELS];
    let mut y = vec![0u8; BATCH];
    let idx: Vec<u32> = data::epoch_order(train.len(), 1, 1)[..BATCH].to_vec();
    data::fill_batch(train, &idx, Some((1, 1)), &mut x, &mut y);
    ws.load(&x, &y);
    let mut step = 0u64;
    let train_step_rate = rate(seconds, || {
        let key = DropoutKey { seed: 1, step };
        train_step(&mut net, &mut vel, &mut grads, &mut ws, key, 0.01, 0.9);
        step += 1;
        BATCH as f64
    });
    let inference = rate(seconds, || {
        net.forward(&mut ws, Mode::Eval);
        BATCH as f64
    });
    BenchReport {
        threads: crate::par::threads(),
        gemm_gflops,
        end_to_end,
        train_step: train_step_rate,
        inference,
    }
}

/// Parses `name = value` lines (`#` starts a comment).
pub fn parse_budgets(path: &Path, text: &str) -> Result<Vec<(String, f64)>> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        let (k, v) = line.split_once('=').ok_or_else(|| {
            anyhow!(
                "'{}' line {}: expected `name = number`",
                path.display(),
                i + 1
            )
        })?;
        let k = k.trim().to_string();
        let v: f64 = v.trim().parse().map_err(|_| {
            anyhow!(
                "'{}' line {}: '{}' is not a number",
                path.display(),
                i + 1,
                v.trim()
            )
        })?;
        out.push((k, v));
    }
    Ok(out)
}

/// `gradspec mnist bench`: measures the throughputs, prints them (table or JSON) and checks
/// `--check` budgets.
pub fn bench(a: BenchArgs) -> Result<()> {
    super::set_threads(a.threads)?;
    let budgets = match &a.check {
        Some(p) => {
            let text = std::fs::read_to_string(p)
                .with_context(|| format!("--check '{}': cannot read", p.display()))?;
            Some(parse_budgets(p, &text)?)
        }
        None => None,
    };
    let dir = super::data::ensure_mnist(&a.data)?;
    let train = data::load_split(&dir, Split::Train)?;
    eprintln!(
        "benchmarking on {} threads, {:.0} s per measurement …",
        crate::par::threads(),
        a.seconds
    );
    let r = measure(&train, a.seconds);
    if a.json {
        println!("{}", serde_json::to_string_pretty(&r)?);
    } else {
        println!("threads: {}", r.threads);
        println!(
            "{:<34} {:>12} {:>16} {:>12}",
            "measurement", "rate", "per GEMM GFLOP/s", "vs PyTorch"
        );
        println!(
            "{:<34} {:>8.1} GF/s {:>16} {:>12}",
            "calibration sgemm 512³ (all threads)", r.gemm_gflops, "1", "-"
        );
        for (name, label) in [
            ("end_to_end", "end-to-end train (augment+batch)"),
            ("train_step", "bare train step (fwd+bwd+SGD)"),
            ("inference", "inference (eval forward)"),
        ] {
            let v = r.get(name).unwrap_or(0.0);
            let pt = PYTORCH
                .iter()
                .find(|p| p.0 == name)
                .map(|p| p.1)
                .unwrap_or(f64::NAN);
            println!(
                "{:<34} {:>7.0} img/s {:>16.2} {:>11.2}×",
                label,
                v,
                v / r.gemm_gflops,
                v / pt
            );
        }
    }
    if let Some(budgets) = budgets {
        let mut failed = 0;
        for (name, min) in &budgets {
            let Some(v) = r.get(name) else {
                bail!(
                    "--check: unknown budget '{name}' (known: end_to_end, train_step, inference)"
                );
            };
            let ratio = v / r.gemm_gflops;
            let ok = ratio >= *min;
            println!(
                "budget {name}: {ratio:.2} img/s per GFLOP/s (minimum {min:.2}) … {}",
                if ok { "PASS" } else { "FAIL" }
            );
            failed += usize::from(!ok);
        }
        if failed > 0 {
            return Err(super::RunFailed(format!("{failed} performance budget(s) failed")).into());
        }
    }
    Ok(())
}
