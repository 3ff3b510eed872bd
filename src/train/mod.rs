//! Training loop, evaluation, checkpoints and the files a run leaves behind.
//!
//! A run is a pure function of `(recipe, epochs, seed)` and the data: the shuffle, the
//! augmentation and the dropout masks are keyed by the seed and the position in the run, and
//! every reduction has a fixed order (see `cnn::net`). Same seed, same bits — with 1 thread or
//! 2, uninterrupted or resumed.
pub mod artifacts;
pub mod checkpoint;
pub mod recipe;
pub mod sgd;

use crate::cnn::net::DropoutKey;
use crate::cnn::{Mode, Net, Params, Workspace};
use crate::data::{self, Dataset};
use anyhow::Result;
use recipe::{BATCH, Recipe};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

/// A run that failed on its own (its loss stopped being finite), as opposed to bad input.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct RunFailed(pub String);

/// A run stopped by its [`TrainConfig::stop`] flag (Ctrl-C), after a complete batch. The
/// checkpoint of the last completed epoch (if any) is untouched, so the run resumes from it.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error(
    "interrupted during epoch {epoch} after batch {batch}; {}",
    match completed_epochs {
        0 => "no epoch was complete, so there is no checkpoint".to_string(),
        n => format!("the checkpoint of epoch {n} is kept in '{}'", checkpoint.display()),
    }
)]
pub struct Interrupted {
    pub epoch: usize,
    pub batch: usize,
    /// Epochs the kept checkpoint holds (0: none).
    pub completed_epochs: usize,
    pub checkpoint: PathBuf,
}

/// One row of metrics.csv.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct EpochMetrics {
    pub epoch: usize,
    pub lr: f64,
    pub train_loss: f64,
    pub train_acc: f64,
    pub test_loss: f64,
    pub test_acc: f64,
    pub seconds: f64,
}

/// What to train.
#[derive(Clone, Debug)]
pub struct TrainConfig {
    pub recipe: Recipe,
    pub epochs: usize,
    pub seed: u64,
    pub out: PathBuf,
    /// Show progress bars (off in tests).
    pub progress: bool,
    /// Stop after this many epochs of this invocation (simulates an interruption in tests).
    pub stop_after: Option<usize>,
    /// Training on the first N training images only; recorded in the checkpoint so that a
    /// resumed run uses the same images. The caller passes the data already cut to it.
    pub train_limit: Option<usize>,
    /// When set (by a Ctrl-C handler, say), the run ends after the current batch with
    /// [`Interrupted`].
    pub stop: Option<Arc<AtomicBool>>,
}

/// Loss, accuracy and per-image predictions over a dataset.
#[derive(Clone, Debug)]
pub struct Evaluation {
    pub loss: f64,
    pub correct: usize,
    pub n: usize,
    pub predictions: Vec<u8>,
}

impl Evaluation {
    pub fn accuracy(&self) -> f64 {
        100.0 * self.correct as f64 / self.n.max(1) as f64
    }

    /// The source notebook's line.
    pub fn line(&self) -> String {
        format!(
            "Test set: Average loss: {:.4}, Accuracy: {}/{} ({:.3}%)",
            self.loss,
            self.correct,
            self.n,
            self.accuracy()
        )
    }
}

/// Evaluates `net` (eval mode: running statistics, no dropout) on all of `ds`.
pub fn evaluate(net: &mut Net<f32>, ds: &Dataset, ws: &mut Workspace<f32>) -> Evaluation {
    let b = ws.capacity();
    let mut x = vec![0f32; b * data::PIXELS];
    let mut y = vec![0u8; b];
    let (mut loss_sum, mut correct) = (0.0, 0);
    let mut predictions = Vec::with_capacity(ds.len());
    let idx: Vec<u32> = (0..ds.len() as u32).collect();
    for chunk in idx.chunks(b) {
        let m = chunk.len();
        data::fill_batch_par(ds, chunk, None, &mut x[..m * data::PIXELS], &mut y[..m]);
        ws.load(&x[..m * data::PIXELS], &y[..m]);
        let out = net.forward(ws, Mode::Eval);
        loss_sum += out.loss * m as f64;
        correct += out.correct;
        predictions.extend(ws.predictions());
    }
    Evaluation {
        loss: loss_sum / ds.len().max(1) as f64,
        correct,
        n: ds.len(),
        predictions,
    }
}

/// Paths of a run's files.
pub struct RunFiles {
    pub dir: PathBuf,
}

impl RunFiles {
    pub fn checkpoint(&self) -> PathBuf {
        self.dir.join("checkpoint.safetensors")
    }
    pub fn best(&self) -> PathBuf {
        self.dir.join("best.safetensors")
    }
    pub fn last(&self) -> PathBuf {
        self.dir.join("last.safetensors")
    }
    pub fn metrics(&self) -> PathBuf {
        self.dir.join("metrics.csv")
    }
}

/// Result of a finished (or stopped) run.
pub struct TrainOutcome {
    pub net: Net<f32>,
    pub state: checkpoint::RunState,
    pub last_eval: Option<Evaluation>,
}

/// Writes metrics.csv atomically.
pub fn write_metrics(path: &Path, rows: &[EpochMetrics]) -> Result<()> {
    crate::fsutil::write_atomic(path, |w| {
        let mut csv = csv::Writer::from_writer(w);
        for r in rows {
            csv.serialize(r)?;
        }
        csv.flush()?;
        Ok(())
    })
}

/// Trains from scratch (`resume = false`) or from `cfg.out/checkpoint.safetensors`.
pub fn run(
    cfg: &TrainConfig,
    train: &Dataset,
    test: &Dataset,
    resume: bool,
) -> Result<TrainOutcome> {
    let files = RunFiles {
        dir: cfg.out.clone(),
    };
    // One run per folder at a time; released when this function returns.
    let _lock = crate::fsutil::DirLock::acquire(&files.dir, "run folder")?;
    let (mut net, mut velocity, mut state) = if resume {
        let (net, vel, st) = checkpoint::load(&files.checkpoint())?;
        (net, vel, st)
    } else {
        let st = checkpoint::RunState {
            recipe: cfg.recipe,
            epochs: cfg.epochs,
            seed: cfg.seed,
            train_limit: cfg.train_limit,
            completed_epochs: 0,
            step: 0,
            best_acc: -1.0,
            best_epoch: 0,
            metrics: Vec::new(),
        };
        (Net::<f32>::new(cfg.seed), Params::<f32>::zeros(), st)
    };
    let recipe = state.recipe;
    let batches_per_epoch = train.len().div_ceil(BATCH);
    let total_steps = batches_per_epoch * state.epochs;
    let mut ws = Workspace::<f32>::new(BATCH);
    let mut grads = Params::<f32>::zeros();
    let mut x = vec![0f32; BATCH * data::PIXELS];
    let mut y = [0u8; BATCH];
    let mut last_eval = None;
    let mut ran = 0;
    while state.completed_epochs < state.epochs {
        if cfg.stop_after.is_some_and(|s| ran >= s) {
            break;
        }
        let epoch = state.completed_epochs + 1;
        let t0 = Instant::now();
        let order = data::epoch_order(train.len(), state.seed, epoch as u64);
        let pb = if cfg.progress {
            crate::progress::bar(
                batches_per_epoch as u64,
                &format!("epoch {epoch}/{}", state.epochs),
            )
        } else {
            indicatif::ProgressBar::hidden()
        };
        let (mut loss_sum, mut correct, mut seen) = (0.0, 0usize, 0usize);
        let mut lr = 0.0;
        for (b, idx) in data::batches(&order, BATCH).enumerate() {
            let m = idx.len();
            data::fill_batch_par(
                train,
                idx,
                Some((state.seed, epoch as u64)),
                &mut x[..m * data::PIXELS],
                &mut y[..m],
            );
            ws.load(&x[..m * data::PIXELS], &y[..m]);
            let key = DropoutKey {
                seed: state.seed,
                step: state.step,
            };
            let out = net.forward(&mut ws, Mode::Train { dropout: Some(key) });
            if !out.loss.is_finite() {
                pb.abandon();
                return Err(RunFailed(format!(
                    "training loss became {} at epoch {epoch}, batch {} (step {}); the last good checkpoint is kept at '{}'",
                    out.loss,
                    b + 1,
                    state.step,
                    files.checkpoint().display()
                ))
                .into());
            }
            net.backward(&mut ws, &mut grads);
            lr = recipe.lr(state.step as usize, total_steps);
            sgd::sgd_momentum(
                &mut net.params,
                &mut velocity,
                &grads,
                lr as f32,
                recipe.momentum() as f32,
            );
            state.step += 1;
            loss_sum += out.loss * m as f64;
            correct += out.correct;
            seen += m;
            pb.inc(1);
            if cfg.stop.as_ref().is_some_and(|f| f.load(Ordering::Relaxed)) {
                pb.abandon();
                return Err(Interrupted {
                    epoch,
                    batch: b + 1,
                    completed_epochs: state.completed_epochs,
                    checkpoint: files.checkpoint(),
                }
                .into());
            }
            if b % 8 == 0 {
                let rate = seen as f64 / t0.elapsed().as_secs_f64().max(1e-9);
                pb.set_message(format!(
                    "loss {:.4} acc {:.2}% {:.0} img/s",
                    loss_sum / seen as f64,
                    100.0 * correct as f64 / seen as f64,
                    rate
                ));
            }
        }
        pb.finish_and_clear();
        let ev = evaluate(&mut net, test, &mut ws);
        println!("Epoch {epoch}: {}", ev.line());
        let row = EpochMetrics {
            epoch,
            lr,
            train_loss: loss_sum / seen.max(1) as f64,
            train_acc: 100.0 * correct as f64 / seen.max(1) as f64,
            test_loss: ev.loss,
            test_acc: ev.accuracy(),
            seconds: t0.elapsed().as_secs_f64(),
        };
        state.metrics.push(row);
        state.completed_epochs = epoch;
        if ev.accuracy() > state.best_acc {
            state.best_acc = ev.accuracy();
            state.best_epoch = epoch;
            crate::cnn::safetensors_io::save(&net, &files.best())?;
        }
        crate::cnn::safetensors_io::save(&net, &files.last())?;
        write_metrics(&files.metrics(), &state.metrics)?;
        checkpoint::save(&files.checkpoint(), &net, &velocity, &state)?;
        last_eval = Some(ev);
        ran += 1;
    }
    Ok(TrainOutcome {
        net,
        state,
        last_eval,
    })
}
