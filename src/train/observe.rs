//! Observers of a [`Trainer`]: whatever happens around training — the run folder's files,
//! progress bars, Ctrl-C, charts — sees each batch and epoch through [`Observer`], and the
//! trainer itself stays pure.
use super::trainer::{BatchReport, EpochReport, Trainer};
use super::{RunFiles, checkpoint, write_metrics};
use crate::cnn::safetensors_io;
use crate::error::{Error, Result};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// Whether training goes on after a batch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Control {
    /// Train the next batch.
    Continue,
    /// Stop the run after this batch ([`Error::Stopped`]).
    Stop,
}

/// Sees a [`Trainer`] at work. Every method has a default that does nothing.
pub trait Observer {
    /// Epoch `epoch` (1-based) of `epochs` starts; it has `batches` batches.
    fn epoch_start(&mut self, epoch: usize, epochs: usize, batches: usize) {
        let _ = (epoch, epochs, batches);
    }

    /// A batch was trained; return [`Control::Stop`] to end the run here.
    fn batch_end(&mut self, report: &BatchReport) -> Control {
        let _ = report;
        Control::Continue
    }

    /// An epoch ended and was evaluated; `trainer` holds the model and the updated run state.
    fn epoch_end(&mut self, trainer: &Trainer<'_>, report: &EpochReport) -> Result<()> {
        let _ = (trainer, report);
        Ok(())
    }
}

/// The observer that observes nothing.
impl Observer for () {}

/// Several observers, called in order; the first [`Control::Stop`] or error wins, but every
/// observer still sees the batch.
pub struct Observers<'a>(pub Vec<&'a mut dyn Observer>);

impl Observer for Observers<'_> {
    fn epoch_start(&mut self, epoch: usize, epochs: usize, batches: usize) {
        for o in &mut self.0 {
            o.epoch_start(epoch, epochs, batches);
        }
    }

    fn batch_end(&mut self, report: &BatchReport) -> Control {
        let mut c = Control::Continue;
        for o in &mut self.0 {
            if o.batch_end(report) == Control::Stop {
                c = Control::Stop;
            }
        }
        c
    }

    fn epoch_end(&mut self, trainer: &Trainer<'_>, report: &EpochReport) -> Result<()> {
        for o in &mut self.0 {
            o.epoch_end(trainer, report)?;
        }
        Ok(())
    }
}

/// Stops the run after the current batch once its flag is set (by a Ctrl-C handler, say).
#[derive(Clone, Debug, Default)]
pub struct StopFlag(pub Arc<AtomicBool>);

impl Observer for StopFlag {
    fn batch_end(&mut self, _: &BatchReport) -> Control {
        if self.0.load(Ordering::Relaxed) {
            Control::Stop
        } else {
            Control::Continue
        }
    }
}

/// The run folder: holds its lock while it lives, and after every epoch writes
/// `best.safetensors` (on a new best), `last.safetensors`, `metrics.csv` and
/// `checkpoint.safetensors`, each atomically, the checkpoint last.
pub struct RunFolder {
    files: RunFiles,
    _lock: crate::fsutil::DirLock,
}

impl RunFolder {
    /// Locks `dir` (which must exist) for one run; a second run gets a one-line error.
    pub fn open(dir: &Path) -> Result<Self> {
        let lock = crate::fsutil::DirLock::acquire(dir, "run folder")?;
        Ok(RunFolder {
            files: RunFiles {
                dir: dir.to_path_buf(),
            },
            _lock: lock,
        })
    }

    /// The checkpoint's path.
    pub fn checkpoint(&self) -> PathBuf {
        self.files.checkpoint()
    }

    /// Names this folder's checkpoint in a run's [`Error::Stopped`] (the one to resume from)
    /// or [`Error::Failed`] (the last good one); other errors pass through.
    pub fn explain(&self, mut e: Error) -> Error {
        match &mut e {
            Error::Stopped(s) => s.checkpoint = Some(self.checkpoint()),
            Error::Failed(f) => f.checkpoint = Some(self.checkpoint()),
            _ => {}
        }
        e
    }
}

impl Observer for RunFolder {
    fn epoch_end(&mut self, t: &Trainer<'_>, report: &EpochReport) -> Result<()> {
        if report.new_best {
            safetensors_io::save(t.net(), &self.files.best())?;
        }
        safetensors_io::save(t.net(), &self.files.last())?;
        write_metrics(&self.files.metrics(), &t.state().metrics)?;
        checkpoint::save(&self.files.checkpoint(), t.net(), t.velocity(), t.state())
    }
}
