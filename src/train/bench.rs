//! The workload of `mnist bench` and of the criterion `budgets` target, and the budget check:
//! throughput of training and inference, each divided by a calibration GEMM measured in the same
//! run, so that a budget holds on any machine. The command (`gradspec mnist bench`) only parses
//! its flags, calls these and prints.
use crate::cnn::net::{DropoutKey, PIXELS};
use crate::cnn::{Mode, Net, Params, Workspace};
use crate::data;
use crate::error::{Result, err};
use crate::train::recipe::{BATCH, Recipe};
use crate::train::{RunOptions, Trainer, train_step};
use rand::{Rng, SeedableRng};
use std::path::Path;
use std::time::Instant;

/// The epochs of the [`Workload`]'s trainer: more than a measurement ever reaches (the `seed`
/// recipe's learning rate does not depend on it).
const WORKLOAD_EPOCHS: usize = 1000;

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

/// The calibration: every worker thread multiplies its own 512³ single-precision product
/// (matrixmultiply, the kernel the model uses), the inputs seeded.
pub struct Calibration {
    a: Vec<f32>,
    cs: Vec<Vec<f32>>,
}

impl Calibration {
    /// The side of the product.
    pub const N: usize = 512;

    /// Seeded inputs and one output per worker thread of the current pool.
    pub fn new() -> Self {
        const N: usize = Calibration::N;
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
        let a: Vec<f32> = (0..N * N).map(|_| rng.random_range(-1.0..1.0)).collect();
        Calibration {
            a,
            cs: vec![vec![0f32; N * N]; crate::par::threads()],
        }
    }

    /// GFLOP one [`gemm`](Self::gemm) call does (`threads × 2N³ / 10⁹`).
    pub fn gflop(&self) -> f64 {
        (self.cs.len() * 2 * Self::N.pow(3)) as f64 / 1e9
    }

    /// Every thread multiplies its product once; returns the GFLOP done.
    pub fn gemm(&mut self) -> f64 {
        const N: usize = Calibration::N;
        let a = &self.a;
        crate::par::for_each_mut(&mut self.cs, 1, |c| {
            <f32 as crate::cnn::Float>::gemm(N, N, N, 1.0, a, (N, 1), a, (N, 1), 0.0, c, (N, 1));
        });
        self.gflop()
    }
}

impl Default for Calibration {
    fn default() -> Self {
        Self::new()
    }
}

/// Single-precision GEMM GFLOP/s of the [`Calibration`] for about `seconds`.
pub fn calibration_gflops(seconds: f64) -> f64 {
    let mut c = Calibration::new();
    rate(seconds, || c.gemm())
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
    /// The throughput called `name` (images per second).
    pub fn get(&self, name: &str) -> Option<f64> {
        match name {
            "end_to_end" => Some(self.end_to_end),
            "train_step" => Some(self.train_step),
            "inference" => Some(self.inference),
            _ => None,
        }
    }
}

/// What the benchmarks run, one unit at a time, each returning the images it processed: shared by
/// `mnist bench` and the criterion `budgets` target. Training uses the trainer's own step
/// ([`Trainer::step`], [`train_step`]) with the `seed` recipe's constant learning rate, so that
/// the figures are the ones a real run sees.
pub struct Workload<'a> {
    trainer: Trainer<'a>,
    empty: data::Dataset,
    net: Net<f32>,
    velocity: Params<f32>,
    grads: Params<f32>,
    ws: Workspace<f32>,
    step: u64,
}

impl<'a> Workload<'a> {
    /// A trainer over `train`, and a network with the first batch of epoch 1 loaded.
    pub fn new(train: &'a data::Dataset) -> Self {
        let options = RunOptions {
            recipe: Recipe::Seed,
            epochs: WORKLOAD_EPOCHS,
            seed: 1,
            train_limit: None,
        };
        let mut ws = Workspace::<f32>::new(BATCH);
        let mut x = vec![0f32; BATCH * PIXELS];
        let mut y = [0u8; BATCH];
        let idx: Vec<u32> = data::epoch_order(train.len(), 1, 1)
            .into_iter()
            .take(BATCH)
            .collect();
        let m = idx.len();
        data::fill_batch(
            train,
            &idx,
            Some(data::Augmentation {
                seed: 1,
                epoch: 1,
                strength: Recipe::Onecycle.strength(),
            }),
            &mut x[..m * PIXELS],
            &mut y[..m],
        );
        ws.load(&x[..m * PIXELS], &y[..m]);
        Workload {
            trainer: Trainer::new(options, train),
            empty: data::Dataset::default(),
            net: Net::new(1),
            velocity: Params::zeros(),
            grads: Params::zeros(),
            ws,
            step: 0,
        }
    }

    /// One batch end to end: augmentation, batching and the training step.
    pub fn end_to_end(&mut self) -> f64 {
        match self.trainer.step() {
            Ok(Some(b)) => b.images as f64,
            // The epoch is over (its evaluation on no images costs nothing), or the loss
            // diverged, which the lr of `seed` does not do on MNIST: count no images.
            Ok(None) => {
                self.trainer.end_epoch(&self.empty);
                0.0
            }
            Err(_) => 0.0,
        }
    }

    /// One bare training step on the loaded batch.
    pub fn train_step(&mut self) -> f64 {
        let key = DropoutKey {
            seed: 1,
            step: self.step,
        };
        train_step(
            &mut self.net,
            &mut self.velocity,
            &mut self.grads,
            &mut self.ws,
            key,
            0.01,
            0.9,
        );
        self.step += 1;
        self.ws.n() as f64
    }

    /// One eval-mode forward pass of the loaded batch.
    pub fn inference(&mut self) -> f64 {
        self.net.forward(&mut self.ws, Mode::Eval);
        self.ws.n() as f64
    }
}

/// The three throughputs (images per second) of a [`Workload`], measured once each for about
/// `seconds` each, on the current thread pool.
pub fn figures(train: &data::Dataset, seconds: f64) -> [f64; 3] {
    let mut w = Workload::new(train);
    [
        rate(seconds, || w.end_to_end()),
        rate(seconds, || w.train_step()),
        rate(seconds, || w.inference()),
    ]
}

/// How far apart two measurements of the same thing may be before the machine counts as busy.
pub const BUSY_SPREAD: f64 = 0.10;

/// One thread count's measurements: the calibration before and after, and every repeat of
/// every figure.
#[derive(Debug, serde::Serialize)]
pub struct ThreadRun {
    /// Worker threads.
    pub threads: usize,
    /// Calibration GEMM GFLOP/s before the figures.
    pub calibration_before: f64,
    /// Calibration GEMM GFLOP/s after them.
    pub calibration_after: f64,
    /// Every measurement of the end-to-end rate (images/s).
    pub end_to_end: Vec<f64>,
    /// Every measurement of the bare train step (images/s).
    pub train_step: Vec<f64>,
    /// Every measurement of inference (images/s).
    pub inference: Vec<f64>,
}

fn median(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    match s.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => s[n / 2],
        n => 0.5 * (s[n / 2 - 1] + s[n / 2]),
    }
}

/// `(max − min) / median` of `v`.
fn spread(v: &[f64]) -> f64 {
    let lo = v.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    (hi - lo) / median(v)
}

impl ThreadRun {
    /// Measures the calibration, then `repeats` rounds of the three figures, then the
    /// calibration again, on the current thread pool.
    pub fn measure(train: &data::Dataset, seconds: f64, repeats: usize) -> ThreadRun {
        let calibration_before = calibration_gflops(seconds);
        let mut r = ThreadRun {
            threads: crate::par::threads(),
            calibration_before,
            calibration_after: f64::NAN,
            end_to_end: Vec::new(),
            train_step: Vec::new(),
            inference: Vec::new(),
        };
        for _ in 0..repeats.max(1) {
            let [e, t, i] = figures(train, seconds);
            r.end_to_end.push(e);
            r.train_step.push(t);
            r.inference.push(i);
        }
        r.calibration_after = calibration_gflops(seconds);
        r
    }

    /// The medians, against the mean of the two calibrations.
    pub fn report(&self) -> BenchReport {
        BenchReport {
            threads: self.threads,
            gemm_gflops: 0.5 * (self.calibration_before + self.calibration_after),
            end_to_end: median(&self.end_to_end),
            train_step: median(&self.train_step),
            inference: median(&self.inference),
        }
    }

    /// Why these figures may not be trusted: the calibration moved, or a figure's repeats
    /// spread, by more than [`BUSY_SPREAD`].
    pub fn warnings(&self) -> Vec<String> {
        let mut w = Vec::new();
        let cal = [self.calibration_before, self.calibration_after];
        if spread(&cal) > BUSY_SPREAD {
            w.push(format!(
                "{} thread(s): the calibration moved from {:.1} to {:.1} GFLOP/s ({:+.0}%) during the run: the machine was busy, so these figures are unreliable",
                self.threads,
                cal[0],
                cal[1],
                100.0 * (cal[1] / cal[0] - 1.0)
            ));
        }
        for (name, v) in [
            ("end_to_end", &self.end_to_end),
            ("train_step", &self.train_step),
            ("inference", &self.inference),
        ] {
            if v.len() > 1 && spread(v) > BUSY_SPREAD {
                w.push(format!(
                    "{} thread(s): {name} varied by {:.0}% of its median across {} repeats: the machine was busy",
                    self.threads,
                    100.0 * spread(v),
                    v.len()
                ));
            }
        }
        w
    }
}

/// One budget's verdict: the measured ratio (images per second per GEMM GFLOP/s) against its
/// minimum.
#[derive(Clone, Debug, PartialEq)]
pub struct BudgetLine {
    /// `end_to_end`, `train_step` or `inference`.
    pub name: String,
    /// Measured images per second divided by the calibration's GFLOP/s.
    pub ratio: f64,
    /// The budget's minimum ratio.
    pub minimum: f64,
    /// Whether `ratio >= minimum`.
    pub pass: bool,
}

impl std::fmt::Display for BudgetLine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "budget {}: {:.2} img/s per GFLOP/s (minimum {:.2}) … {}",
            self.name,
            self.ratio,
            self.minimum,
            if self.pass { "PASS" } else { "FAIL" }
        )
    }
}

/// Compares `r` with every budget; an unknown budget name is an error.
pub fn check_budgets(r: &BenchReport, budgets: &[(String, f64)]) -> Result<Vec<BudgetLine>> {
    budgets
        .iter()
        .map(|(name, min)| {
            let Some(v) = r.get(name) else {
                return Err(err!(
                    "unknown budget '{name}' (known: end_to_end, train_step, inference)"
                ));
            };
            let ratio = v / r.gemm_gflops;
            Ok(BudgetLine {
                name: name.clone(),
                ratio,
                minimum: *min,
                pass: ratio >= *min,
            })
        })
        .collect()
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
            err!(
                "'{}' line {}: expected `name = number`",
                path.display(),
                i + 1
            )
        })?;
        let k = k.trim().to_string();
        let v: f64 = v.trim().parse().map_err(|_| {
            err!(
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
