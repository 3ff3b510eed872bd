//! Training loop, evaluation, checkpoints and the files a run leaves behind.
//!
//! A run is a pure function of `(recipe, epochs, seed)` and the data: the shuffle, the
//! augmentation and the dropout masks are keyed by the seed and the position in the run, and
//! every reduction has a fixed order (see `cnn::net`). Same seed, same bits — with 1 thread or
//! 2, uninterrupted or resumed.
pub mod artifacts;
#[cfg(not(target_arch = "wasm32"))]
pub mod bench;
pub mod checkpoint;
pub mod observe;
pub mod recipe;
pub mod sgd;
mod trainer;

pub use crate::error::{RunFailed, Stopped};
pub use observe::{Control, Observer, Observers, RunFolder, StopFlag};
pub use trainer::{BatchReport, EpochReport, NonFiniteLoss, RunOptions, Trainer, train_step};

use crate::cnn::{Mode, Net, Workspace};
use crate::data::{self, Dataset};
use crate::error::Result;
use std::path::{Path, PathBuf};

/// One row of metrics.csv.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct EpochMetrics {
    /// 1-based epoch.
    pub epoch: usize,
    /// Learning rate of the epoch's last step.
    pub lr: f64,
    /// Mean training loss over the epoch's batches (train mode: dropout, batch statistics).
    pub train_loss: f64,
    /// Training accuracy (%) over the epoch's batches, before each batch's update.
    pub train_acc: f64,
    /// Mean test loss after the epoch (eval mode).
    pub test_loss: f64,
    /// Test accuracy (%) after the epoch.
    pub test_acc: f64,
    /// Wall-clock seconds of the epoch, evaluation included.
    pub seconds: f64,
}

/// What to train, and where: the options of [`run`].
#[derive(Clone, Debug)]
pub struct TrainConfig {
    /// The options that change the run's numbers. A resumed run takes the checkpoint's.
    pub options: RunOptions,
    /// The run folder (metrics, checkpoints, weights).
    pub out: PathBuf,
    /// Stop after this many epochs of this invocation (simulates an interruption in tests).
    pub stop_after: Option<usize>,
}

/// Loss, accuracy and per-image predictions over a dataset.
#[derive(Clone, Debug)]
pub struct Evaluation {
    /// Mean negative log-likelihood.
    pub loss: f64,
    /// Images whose arg-max class is the label.
    pub correct: usize,
    /// Images evaluated.
    pub n: usize,
    /// The predicted class of every image, in dataset order.
    pub predictions: Vec<u8>,
}

impl Evaluation {
    /// Accuracy in percent.
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
    /// The run folder.
    pub dir: PathBuf,
}

impl RunFiles {
    /// `checkpoint.safetensors`: model, momentum and run state, for `--resume`.
    pub fn checkpoint(&self) -> PathBuf {
        self.dir.join("checkpoint.safetensors")
    }
    /// `best.safetensors`: the weights of the epoch with the best test accuracy.
    pub fn best(&self) -> PathBuf {
        self.dir.join("best.safetensors")
    }
    /// `last.safetensors`: the weights after the last completed epoch.
    pub fn last(&self) -> PathBuf {
        self.dir.join("last.safetensors")
    }
    /// `metrics.csv`: one [`EpochMetrics`] row per epoch.
    pub fn metrics(&self) -> PathBuf {
        self.dir.join("metrics.csv")
    }
}

/// Result of a finished (or stopped) run.
pub struct TrainOutcome {
    /// The model after the last completed epoch.
    pub net: Net<f32>,
    /// The run's state (metrics, best epoch, step counter).
    pub state: checkpoint::RunState,
    /// The test-set evaluation of the last epoch run by this invocation, if any.
    pub last_eval: Option<Evaluation>,
}

/// The first epoch whose test accuracy is at least `target` (%), and the wall-clock seconds of
/// the run up to the end of it (the sum of the epochs' `seconds`: training and evaluation, not
/// loading the data).
pub fn time_to_accuracy(metrics: &[EpochMetrics], target: f64) -> Option<(usize, f64)> {
    let mut seconds = 0.0;
    for m in metrics {
        seconds += m.seconds;
        if m.test_acc >= target {
            return Some((m.epoch, seconds));
        }
    }
    None
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

/// Trains from scratch (`resume = false`) or from `cfg.out/checkpoint.safetensors` (with the
/// checkpoint's options, not `cfg.options`), in the run
/// folder `cfg.out`: a [`RunFolder`] observer locks the folder and writes the checkpoint,
/// `best`/`last` weights and `metrics.csv` after every epoch; `observer` sees every batch and
/// epoch after it (progress bars, Ctrl-C, charts). Nothing is printed.
pub fn run(
    cfg: &TrainConfig,
    train: &Dataset,
    test: &Dataset,
    resume: bool,
    observer: &mut dyn Observer,
) -> Result<TrainOutcome> {
    let mut folder = RunFolder::open(&cfg.out)?;
    let mut trainer = if resume {
        let (net, velocity, state) = checkpoint::load(&folder.checkpoint())?;
        Trainer::resume(net, velocity, state, train)
    } else {
        Trainer::new(cfg.options, train)
    };
    let mut last_eval = None;
    let mut ran = 0;
    while !trainer.is_finished() && cfg.stop_after.is_none_or(|s| ran < s) {
        let mut both = Observers(vec![&mut folder, &mut *observer]);
        let report = trainer
            .run_epoch(test, &mut both)
            .map_err(|e| folder.explain(e))?;
        last_eval = Some(report.eval);
        ran += 1;
    }
    let (net, _, state) = trainer.into_parts();
    Ok(TrainOutcome {
        net,
        state,
        last_eval,
    })
}
