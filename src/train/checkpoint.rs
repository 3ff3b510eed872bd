//! Training checkpoints: one `.safetensors` file holding the model in PyTorch's layout, the
//! SGD momentum buffers (`momentum.<name>`), and the run's state as JSON metadata. Written
//! atomically every epoch, so a run killed at any moment (even by SIGKILL) resumes from the
//! last completed epoch and ends bit-identical to an uninterrupted run: every random draw is
//! keyed by `(seed, epoch, index)` or `(seed, step, image)`, so the state below is all there is.
use crate::cnn::{Net, Params};
use anyhow::{anyhow, bail, Context, Result};
use safetensors::tensor::{Dtype, SafeTensors, TensorView};
use std::collections::HashMap;
use std::path::Path;

use super::recipe::Recipe;
use super::EpochMetrics;

/// Everything about a run besides its tensors.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct RunState {
    pub recipe: Recipe,
    pub epochs: usize,
    pub seed: u64,
    /// Epochs finished; the next epoch to run is `completed_epochs + 1` (1-based).
    pub completed_epochs: usize,
    /// Optimiser steps taken.
    pub step: u64,
    pub best_acc: f64,
    pub best_epoch: usize,
    pub metrics: Vec<EpochMetrics>,
}

const STATE_KEY: &str = "gradspec.run_state";

fn f32_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

/// The model's state_dict as `(name, dtype, shape, bytes)` in PyTorch's order and layout.
pub fn state_dict(net: &Net<f32>) -> Vec<(String, Dtype, Vec<usize>, Vec<u8>)> {
    let mut out = Vec::new();
    let bufs = net.buffers.tensors();
    for t in net.params.tensors() {
        out.push((t.name.to_string(), Dtype::F32, t.shape.clone(), f32_bytes(t.data)));
        // PyTorch lists a BatchNorm's buffers right after its bias.
        if let Some(bn) = t.name.strip_suffix(".bias").filter(|p| p.starts_with("bn")) {
            if let Some((_, mean, var, nbt)) = bufs.iter().find(|b| b.0 == bn) {
                out.push((format!("{bn}.running_mean"), Dtype::F32, vec![mean.len()], f32_bytes(mean)));
                out.push((format!("{bn}.running_var"), Dtype::F32, vec![var.len()], f32_bytes(var)));
                out.push((format!("{bn}.num_batches_tracked"), Dtype::I64, vec![], nbt.to_le_bytes().to_vec()));
            }
        }
    }
    out
}

/// Serialises named tensors plus metadata to safetensors bytes.
pub fn serialize(tensors: &[(String, Dtype, Vec<usize>, Vec<u8>)], metadata: HashMap<String, String>) -> Result<Vec<u8>> {
    let views = tensors
        .iter()
        .map(|(n, d, s, b)| Ok((n.clone(), TensorView::new(*d, s.clone(), b).map_err(|e| anyhow!("tensor {n}: {e}"))?)))
        .collect::<Result<Vec<_>>>()?;
    safetensors::tensor::serialize(views, Some(metadata)).map_err(|e| anyhow!("safetensors: {e}"))
}

/// Writes a run checkpoint atomically.
pub fn save(path: &Path, net: &Net<f32>, velocity: &Params<f32>, state: &RunState) -> Result<()> {
    let mut tensors = state_dict(net);
    for t in velocity.tensors() {
        tensors.push((format!("momentum.{}", t.name), Dtype::F32, t.shape.clone(), f32_bytes(t.data)));
    }
    let mut meta = HashMap::new();
    meta.insert("format".to_string(), "pt".to_string());
    meta.insert(STATE_KEY.to_string(), serde_json::to_string(state)?);
    let bytes = serialize(&tensors, meta)?;
    crate::fsutil::write_bytes_atomic(path, &bytes)
}

fn read_f32(st: &SafeTensors<'_>, file: &Path, name: &str, shape: &[usize], dst: &mut [f32]) -> Result<()> {
    let t = st
        .tensor(name)
        .map_err(|_| anyhow!("'{}': tensor {name} is missing", file.display()))?;
    if t.dtype() != Dtype::F32 {
        bail!("'{}': tensor {name} has dtype {:?}, expected F32", file.display(), t.dtype());
    }
    if t.shape() != shape {
        bail!("'{}': tensor {name} has shape {:?}, expected {:?}", file.display(), t.shape(), shape);
    }
    for (d, c) in dst.iter_mut().zip(t.data().chunks_exact(4)) {
        *d = f32::from_le_bytes([c[0], c[1], c[2], c[3]]);
    }
    Ok(())
}

/// Reads a run checkpoint written by [`save`].
pub fn load(path: &Path) -> Result<(Net<f32>, Params<f32>, RunState)> {
    let bytes = std::fs::read(path).with_context(|| format!("'{}': cannot read checkpoint", path.display()))?;
    let st = SafeTensors::deserialize(&bytes)
        .map_err(|e| anyhow!("'{}': not a valid safetensors file: {e}", path.display()))?;
    let (_, meta) = SafeTensors::read_metadata(&bytes)
        .map_err(|e| anyhow!("'{}': not a valid safetensors file: {e}", path.display()))?;
    let state_json = meta
        .metadata()
        .as_ref()
        .and_then(|m| m.get(STATE_KEY))
        .ok_or_else(|| anyhow!("'{}': not a gradspec training checkpoint (no run state)", path.display()))?;
    let state: RunState = serde_json::from_str(state_json)
        .with_context(|| format!("'{}': run state is unreadable", path.display()))?;
    let mut net = Net::<f32>::new(0);
    for t in net.params.tensors_mut() {
        read_f32(&st, path, t.name, &t.shape, t.data)?;
    }
    for (bn, mean, var, nbt) in net.buffers.tensors_mut() {
        let n = mean.len();
        read_f32(&st, path, &format!("{bn}.running_mean"), &[n], mean)?;
        read_f32(&st, path, &format!("{bn}.running_var"), &[n], var)?;
        let name = format!("{bn}.num_batches_tracked");
        let t = st.tensor(&name).map_err(|_| anyhow!("'{}': tensor {name} is missing", path.display()))?;
        let d = t.data();
        if t.dtype() != Dtype::I64 || d.len() != 8 {
            bail!("'{}': tensor {name} must be a scalar I64", path.display());
        }
        *nbt = i64::from_le_bytes([d[0], d[1], d[2], d[3], d[4], d[5], d[6], d[7]]);
    }
    let mut velocity = Params::<f32>::zeros();
    for t in velocity.tensors_mut() {
        read_f32(&st, path, &format!("momentum.{}", t.name), &t.shape, t.data)?;
    }
    Ok((net, velocity, state))
}

/// Writes the model alone, as PyTorch's `state_dict` (loadable with
/// `model.load_state_dict(safetensors.torch.load_file(path))`), atomically.
pub fn save_model(path: &Path, net: &Net<f32>) -> Result<()> {
    let mut meta = HashMap::new();
    meta.insert("format".to_string(), "pt".to_string());
    let bytes = serialize(&state_dict(net), meta)?;
    crate::fsutil::write_bytes_atomic(path, &bytes)
}
