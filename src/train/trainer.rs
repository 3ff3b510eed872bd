//! The training loop as a value: a [`Trainer`] is stepped batch by batch ([`Trainer::step`]) or
//! epoch by epoch ([`Trainer::run_epoch`]), and tells [`Observer`]s what happened. It prints
//! nothing and writes no files; the run folder, progress bars and charts are observers.
//!
//! [`train_step`] is the one implementation of a training step (forward, backward, SGD with
//! momentum); the trainer, `mnist bench` and every test that trains call it.
use super::checkpoint::RunState;
use super::observe::{Control, Observer};
use super::recipe::{BATCH, Recipe};
use super::{EpochMetrics, Evaluation, evaluate, sgd};
use crate::cnn::net::DropoutKey;
use crate::cnn::{Mode, Net, Outcome, Params, Workspace};
use crate::data::{self, Dataset};
use crate::error::{Error, Result, RunFailed, Stopped};

/// The options of a run that change its numbers (the thread count does not): defined here once,
/// nested in the checkpoint's [`RunState`] (flattened, so the checkpoint's JSON is the same as
/// before they were nested) and in the trainer's [`TrainConfig`](super::TrainConfig).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RunOptions {
    /// Recipe (schedule and momentum).
    pub recipe: Recipe,
    /// Epochs of the whole run.
    pub epochs: usize,
    /// Seed of the initialisation, shuffle, augmentation and dropout.
    pub seed: u64,
    /// `--train-limit`: trains on the first N images of the training set it is given (`None`:
    /// all of them). Recorded so that a resumed run can be handed the same images.
    #[serde(default)]
    pub train_limit: Option<usize>,
}

/// One training step on the batch loaded in `ws`: the forward pass in train mode with the
/// dropout masks of `key`, the backward pass into `grads`, then SGD with momentum
/// (`sgd::sgd_momentum`) at learning rate `lr`. Returns the forward pass's loss and correct
/// count; the parameters are updated even when the loss is not finite (the caller decides).
pub fn train_step(
    net: &mut Net<f32>,
    velocity: &mut Params<f32>,
    grads: &mut Params<f32>,
    ws: &mut Workspace<f32>,
    key: DropoutKey,
    lr: f32,
    momentum: f32,
) -> Outcome {
    let out = net.forward(ws, Mode::Train { dropout: Some(key) });
    if out.loss.is_finite() {
        net.backward(ws, grads);
        sgd::sgd_momentum(&mut net.params, velocity, grads, lr, momentum);
    }
    out
}

/// What one batch did.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BatchReport {
    /// 1-based epoch.
    pub epoch: usize,
    /// 1-based batch within the epoch.
    pub batch: usize,
    /// Batches in the epoch.
    pub batches: usize,
    /// Images in this batch.
    pub images: usize,
    /// This batch's mean loss (before the update).
    pub loss: f64,
    /// This batch's correct predictions (before the update).
    pub correct: usize,
    /// The learning rate of this step.
    pub lr: f64,
    /// Optimiser steps taken so far in the run, this one included.
    pub step: u64,
    /// Mean loss over the epoch's batches so far.
    pub epoch_loss: f64,
    /// Training accuracy (%) over the epoch's batches so far.
    pub epoch_acc: f64,
    /// Images trained on in this epoch so far.
    pub epoch_images: usize,
}

/// What one epoch did: its metrics row and the test-set evaluation behind it.
#[derive(Clone, Debug)]
pub struct EpochReport {
    /// The epoch's row of `metrics.csv`.
    pub metrics: EpochMetrics,
    /// The test-set evaluation at the end of the epoch.
    pub eval: Evaluation,
    /// Whether this epoch's test accuracy is the best of the run so far.
    pub new_best: bool,
}

/// The training loss stopped being finite.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("training loss became {loss} at epoch {epoch}, batch {batch} (step {step})")]
pub struct NonFiniteLoss {
    /// The loss (NaN or ±inf).
    pub loss: f64,
    /// 1-based epoch.
    pub epoch: usize,
    /// 1-based batch.
    pub batch: usize,
    /// Steps taken before this batch.
    pub step: u64,
}

impl From<NonFiniteLoss> for crate::Error {
    /// A non-finite loss is a run that failed on its own.
    fn from(n: NonFiniteLoss) -> Self {
        RunFailed::new(n).into()
    }
}

/// Wall-clock seconds since a start, or 0 where the platform has no clock
/// (`wasm32-unknown-unknown`).
#[derive(Clone, Copy, Debug)]
struct Clock(#[cfg(not(target_arch = "wasm32"))] std::time::Instant);

impl Clock {
    fn start() -> Self {
        Clock(
            #[cfg(not(target_arch = "wasm32"))]
            std::time::Instant::now(),
        )
    }
    fn seconds(&self) -> f64 {
        #[cfg(not(target_arch = "wasm32"))]
        {
            self.0.elapsed().as_secs_f64()
        }
        #[cfg(target_arch = "wasm32")]
        {
            0.0
        }
    }
}

/// The epoch in progress.
struct Epoch {
    number: usize,
    order: Vec<u32>,
    next: usize,
    loss_sum: f64,
    correct: usize,
    seen: usize,
    lr: f64,
    clock: Clock,
}

impl Epoch {
    /// Epoch `number` (1-based) over the images in `order`, nothing trained yet.
    fn start(number: usize, order: Vec<u32>) -> Self {
        Epoch {
            number,
            order,
            next: 0,
            loss_sum: 0.0,
            correct: 0,
            seen: 0,
            lr: 0.0,
            clock: Clock::start(),
        }
    }
}

/// A training run in memory: the model, the optimiser state, the run state and the scratch
/// buffers, over one training set. See the module documentation.
pub struct Trainer<'d> {
    net: Net<f32>,
    velocity: Params<f32>,
    state: RunState,
    train: &'d Dataset,
    ws: Workspace<f32>,
    grads: Params<f32>,
    x: Vec<f32>,
    y: Vec<u8>,
    epoch: Option<Epoch>,
}

impl<'d> Trainer<'d> {
    /// A new run: the network initialised from `options.seed`, momentum zero.
    pub fn new(options: RunOptions, train: &'d Dataset) -> Self {
        let state = RunState {
            options,
            completed_epochs: 0,
            step: 0,
            best_acc: -1.0,
            best_epoch: 0,
            metrics: Vec::new(),
        };
        Self::resume(
            Net::<f32>::new(options.seed),
            Params::<f32>::zeros(),
            state,
            train,
        )
    }

    /// Continues a run from its saved parts (see `checkpoint::load`), after its last
    /// completed epoch.
    pub fn resume(
        net: Net<f32>,
        velocity: Params<f32>,
        state: RunState,
        train: &'d Dataset,
    ) -> Self {
        Trainer {
            net,
            velocity,
            state,
            train,
            ws: Workspace::<f32>::new(BATCH),
            grads: Params::<f32>::zeros(),
            x: vec![0f32; BATCH * data::PIXELS],
            y: vec![0u8; BATCH],
            epoch: None,
        }
    }

    /// The model as it is now.
    pub fn net(&self) -> &Net<f32> {
        &self.net
    }

    /// The SGD momentum buffers.
    pub fn velocity(&self) -> &Params<f32> {
        &self.velocity
    }

    /// The run state: options, completed epochs, steps, metrics, best epoch.
    pub fn state(&self) -> &RunState {
        &self.state
    }

    /// The model, momentum and run state.
    pub fn into_parts(self) -> (Net<f32>, Params<f32>, RunState) {
        (self.net, self.velocity, self.state)
    }

    /// Batches per epoch.
    pub fn batches_per_epoch(&self) -> usize {
        self.train.len().div_ceil(BATCH)
    }

    /// Whether every epoch of the run is complete.
    pub fn is_finished(&self) -> bool {
        self.state.completed_epochs >= self.state.options.epochs
    }

    /// Trains on the next batch of the current epoch (starting the next epoch when none is in
    /// progress). Returns `Ok(None)` when the epoch has no batch left — call
    /// [`end_epoch`](Self::end_epoch) then — or when the run is finished.
    pub fn step(&mut self) -> Result<Option<BatchReport>, NonFiniteLoss> {
        if self.is_finished() {
            return Ok(None);
        }
        let batches = self.batches_per_epoch();
        let (seed, total_steps) = (self.state.options.seed, batches * self.state.options.epochs);
        let train = self.train;
        let ep = self.epoch.get_or_insert_with(|| {
            let number = self.state.completed_epochs + 1;
            Epoch::start(number, data::epoch_order(train.len(), seed, number as u64))
        });
        if ep.next >= batches {
            return Ok(None);
        }
        let lo = ep.next * BATCH;
        let idx = &ep.order[lo..(lo + BATCH).min(ep.order.len())];
        let m = idx.len();
        let recipe = self.state.options.recipe;
        let augmentation = data::Augmentation {
            seed,
            epoch: ep.number as u64,
            strength: recipe.strength(),
        };
        data::fill_batch_par(
            train,
            idx,
            Some(augmentation),
            &mut self.x[..m * data::PIXELS],
            &mut self.y[..m],
        );
        self.ws.load(&self.x[..m * data::PIXELS], &self.y[..m]);
        let key = DropoutKey {
            seed,
            step: self.state.step,
        };
        let lr = recipe.lr(self.state.step as usize, total_steps);
        let out = train_step(
            &mut self.net,
            &mut self.velocity,
            &mut self.grads,
            &mut self.ws,
            key,
            lr as f32,
            recipe.momentum() as f32,
        );
        if !out.loss.is_finite() {
            return Err(NonFiniteLoss {
                loss: out.loss,
                epoch: ep.number,
                batch: ep.next + 1,
                step: self.state.step,
            });
        }
        self.state.step += 1;
        ep.next += 1;
        ep.lr = lr;
        ep.loss_sum += out.loss * m as f64;
        ep.correct += out.correct;
        ep.seen += m;
        Ok(Some(BatchReport {
            epoch: ep.number,
            batch: ep.next,
            batches,
            images: m,
            loss: out.loss,
            correct: out.correct,
            lr,
            step: self.state.step,
            epoch_loss: ep.loss_sum / ep.seen as f64,
            epoch_acc: 100.0 * ep.correct as f64 / ep.seen as f64,
            epoch_images: ep.seen,
        }))
    }

    /// Seconds since the current epoch started (0 when none is in progress).
    pub fn epoch_seconds(&self) -> f64 {
        self.epoch.as_ref().map_or(0.0, |e| e.clock.seconds())
    }

    /// Ends the current epoch: evaluates the model on `test`, appends the metrics row, and
    /// records the best epoch. Call it when [`step`](Self::step) returns `None`; it ends an
    /// epoch early if batches are left (the step counter keeps the schedule in place).
    pub fn end_epoch(&mut self, test: &Dataset) -> EpochReport {
        let ep = self
            .epoch
            .take()
            .unwrap_or_else(|| Epoch::start(self.state.completed_epochs + 1, Vec::new()));
        let eval = evaluate(&mut self.net, test, &mut self.ws);
        let metrics = EpochMetrics {
            epoch: ep.number,
            lr: ep.lr,
            train_loss: ep.loss_sum / ep.seen.max(1) as f64,
            train_acc: 100.0 * ep.correct as f64 / ep.seen.max(1) as f64,
            test_loss: eval.loss,
            test_acc: eval.accuracy(),
            seconds: ep.clock.seconds(),
        };
        self.state.metrics.push(metrics.clone());
        self.state.completed_epochs = ep.number;
        let new_best = eval.accuracy() > self.state.best_acc;
        if new_best {
            self.state.best_acc = eval.accuracy();
            self.state.best_epoch = ep.number;
        }
        EpochReport {
            metrics,
            eval,
            new_best,
        }
    }

    /// Runs the next epoch to its end, evaluating on `test`; `observer` sees its start, every
    /// batch (and may stop the run after it) and its end.
    ///
    /// Ends early with [`Error::Stopped`] when an observer stops the run (no checkpoint named:
    /// the trainer keeps none), [`Error::Failed`] when the loss stops being finite, or an
    /// observer's own error.
    pub fn run_epoch(
        &mut self,
        test: &Dataset,
        observer: &mut dyn Observer,
    ) -> Result<EpochReport> {
        observer.epoch_start(
            self.state.completed_epochs + 1,
            self.state.options.epochs,
            self.batches_per_epoch(),
        );
        while let Some(b) = self.step()? {
            if observer.batch_end(&b) == Control::Stop {
                return Err(Error::Stopped(Stopped {
                    epoch: b.epoch,
                    batch: b.batch,
                    completed_epochs: b.epoch - 1,
                    checkpoint: None,
                }));
            }
        }
        let report = self.end_epoch(test);
        observer.epoch_end(self, &report)?;
        Ok(report)
    }

    /// Runs every remaining epoch (see [`run_epoch`](Self::run_epoch)); returns the last
    /// epoch's report, if any epoch was left.
    pub fn run(
        &mut self,
        test: &Dataset,
        observer: &mut dyn Observer,
    ) -> Result<Option<EpochReport>> {
        let mut last = None;
        while !self.is_finished() {
            last = Some(self.run_epoch(test, observer)?);
        }
        Ok(last)
    }
}
