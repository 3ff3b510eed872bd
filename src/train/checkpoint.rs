//! Training checkpoints: one `.safetensors` file holding the model in PyTorch's layout, the
//! SGD momentum buffers (`momentum.<name>`), and the run's state as JSON metadata, all of it
//! checksummed (see [`safetensors_io`]). Written atomically every epoch, so a run killed at any
//! moment (even by SIGKILL) resumes from the last completed epoch and ends bit-identical to an
//! uninterrupted run: every random draw is keyed by `(seed, epoch, index)` or
//! `(seed, step, image)`, so the state below is all there is.
use crate::cnn::safetensors_io;
use crate::cnn::{Net, Params};
use crate::error::{Context, Result, err};
use std::collections::HashMap;
use std::path::Path;

use super::{EpochMetrics, RunOptions};

/// Everything about a run besides its tensors.
///
/// The JSON is the one written before the options were nested: `options` is flattened, so its
/// fields stand beside the others (`{"recipe":…,"epochs":…,"seed":…,"train_limit":…,
/// "completed_epochs":…}`), and checkpoints of either layout read with either reader
/// (`tests/fixtures/checkpoint_v1`).
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct RunState {
    /// The options the run was started with.
    #[serde(flatten)]
    pub options: RunOptions,
    /// Epochs finished; the next epoch to run is `completed_epochs + 1` (1-based).
    pub completed_epochs: usize,
    /// Optimiser steps taken.
    pub step: u64,
    /// Best test accuracy (%) so far (−1 before the first epoch).
    pub best_acc: f64,
    /// The epoch that reached it (0: none yet).
    pub best_epoch: usize,
    /// One row per completed epoch.
    pub metrics: Vec<EpochMetrics>,
}

const STATE_KEY: &str = "gradspec.run_state";
const MOMENTUM: &str = "momentum.";

/// Writes a run checkpoint atomically.
pub fn save(path: &Path, net: &Net<f32>, velocity: &Params<f32>, state: &RunState) -> Result<()> {
    let meta = HashMap::from([(STATE_KEY.to_string(), serde_json::to_string(state)?)]);
    let bytes = safetensors_io::to_bytes_with(net, &[(MOMENTUM, velocity)], meta)?;
    crate::fsutil::write_bytes_atomic(path, &bytes)
}

/// Reads a run checkpoint written by [`save`].
pub fn load(path: &Path) -> Result<(Net<f32>, Params<f32>, RunState)> {
    let bytes = std::fs::read(path)
        .with_context(|| format!("'{}': cannot read checkpoint", path.display()))?;
    from_bytes(&bytes, &path.display().to_string())
}

/// Parses a run checkpoint held in memory; `what` names it in error messages (usually the path).
/// Checksums are verified by [`safetensors_io::from_bytes_with`].
pub fn from_bytes(bytes: &[u8], what: &str) -> Result<(Net<f32>, Params<f32>, RunState)> {
    let (net, mut extras, meta) = safetensors_io::from_bytes_with(bytes, what, &[MOMENTUM])?;
    let state_json = meta
        .get(STATE_KEY)
        .ok_or_else(|| err!("'{what}': not a gradspec training checkpoint (no run state)"))?;
    let state: RunState = serde_json::from_str(state_json)
        .with_context(|| format!("'{what}': run state is unreadable"))
        .map_err(safetensors_io::one_line)?;
    let velocity = extras
        .pop()
        .ok_or_else(|| err!("'{what}': no momentum buffers"))?;
    Ok((net, velocity, state))
}
