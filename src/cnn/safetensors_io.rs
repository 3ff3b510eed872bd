//! Weights interchange with PyTorch through `.safetensors` files.
//!
//! The file holds exactly the source model's `state_dict`: for every layer, its PyTorch name,
//! PyTorch shape and row-major data (our storage already *is* PyTorch's layout, see
//! [`Params::tensors`]), so a file written here loads in Python with
//!
//! ```text
//! model.load_state_dict(safetensors.torch.load_file(path))
//! ```
//!
//! and a file saved by `safetensors.torch.save_file(model.state_dict(), path)` loads here.
//!
//! | tensor | dtype | shape |
//! |---|---|---|
//! | `convK.weight` | F32 | `[out, in, k, k]` |
//! | `convK.bias`, `bnK.weight`, `bnK.bias`, `bnK.running_mean`, `bnK.running_var` | F32 | `[C]` |
//! | `bnK.num_batches_tracked` | I64 | `[]` (a scalar, as torch saves it) |
//! | `fc1.weight` | F32 | `[10, 32]` |
//! | `fc1.bias` | F32 | `[10]` |
//!
//! Loading accepts F32 and F64 floats (F64 is converted) and `num_batches_tracked` as a scalar
//! or a one-element tensor. Anything else — a missing, unexpected or misshapen tensor, another
//! dtype, a truncated or garbled file — is an error naming the file and the tensor. Nothing in
//! this module panics on bad input.
use super::float::Float;
use super::net::Net;
use super::params::{Buffers, Params};
use anyhow::{Context, Result, anyhow, bail};
use safetensors::tensor::{Dtype, SafeTensors, View};
use std::borrow::Cow;
use std::collections::{BTreeSet, HashMap};
use std::path::Path;

/// An owned tensor ready to serialise.
struct Owned {
    dtype: Dtype,
    shape: Vec<usize>,
    bytes: Vec<u8>,
}

impl View for Owned {
    fn dtype(&self) -> Dtype {
        self.dtype
    }
    fn shape(&self) -> &[usize] {
        &self.shape
    }
    fn data(&self) -> Cow<'_, [u8]> {
        Cow::Borrowed(&self.bytes)
    }
    fn data_len(&self) -> usize {
        self.bytes.len()
    }
}

fn f32_tensor<T: Float>(shape: Vec<usize>, data: &[T]) -> Owned {
    let mut bytes = Vec::with_capacity(data.len() * 4);
    for &v in data {
        bytes.extend_from_slice(&(v.f64() as f32).to_le_bytes());
    }
    Owned {
        dtype: Dtype::F32,
        shape,
        bytes,
    }
}

fn f64_tensor<T: Float>(shape: Vec<usize>, data: &[T]) -> Owned {
    let mut bytes = Vec::with_capacity(data.len() * 8);
    for &v in data {
        bytes.extend_from_slice(&v.f64().to_le_bytes());
    }
    Owned {
        dtype: Dtype::F64,
        shape,
        bytes,
    }
}

fn metadata() -> Option<HashMap<String, String>> {
    Some(HashMap::from([("format".to_string(), "pt".to_string())]))
}

fn param_entries<T: Float>(p: &Params<T>) -> Vec<(String, Owned)> {
    p.tensors()
        .into_iter()
        .map(|t| (t.name.to_string(), f32_tensor(t.shape, t.data)))
        .collect()
}

fn buffer_entries<T: Float>(b: &Buffers<T>) -> Vec<(String, Owned)> {
    let mut out = Vec::new();
    for (prefix, mean, var, count) in b.tensors() {
        out.push((
            format!("{prefix}.running_mean"),
            f32_tensor(vec![mean.len()], mean),
        ));
        out.push((
            format!("{prefix}.running_var"),
            f32_tensor(vec![var.len()], var),
        ));
        out.push((
            format!("{prefix}.num_batches_tracked"),
            Owned {
                dtype: Dtype::I64,
                shape: vec![],
                bytes: count.to_le_bytes().to_vec(),
            },
        ));
    }
    out
}

/// The names of the full `state_dict`, in PyTorch's order (module order; within a BatchNorm:
/// weight, bias, running_mean, running_var, num_batches_tracked).
pub fn state_dict_names() -> Vec<String> {
    let p = Params::<f32>::zeros();
    let mut out = Vec::new();
    for t in p.tensors() {
        out.push(t.name.to_string());
        if let Some(prefix) = t.name.strip_suffix(".bias")
            && prefix.starts_with("bn")
        {
            for b in ["running_mean", "running_var", "num_batches_tracked"] {
                out.push(format!("{prefix}.{b}"));
            }
        }
    }
    out
}

/// Serialises the whole `state_dict` (parameters as F32, `num_batches_tracked` as I64 scalars).
pub fn to_bytes(net: &Net<f32>) -> Result<Vec<u8>> {
    to_bytes_with(net, &[], HashMap::new())
}

/// Serialises the `state_dict` plus extra parameter sets stored under a name prefix (a training
/// checkpoint keeps its momentum buffers as `momentum.<name>`), with extra metadata entries.
pub fn to_bytes_with(
    net: &Net<f32>,
    extras: &[(&str, &Params<f32>)],
    meta: HashMap<String, String>,
) -> Result<Vec<u8>> {
    let mut entries = param_entries(&net.params);
    entries.extend(buffer_entries(&net.buffers));
    for (prefix, p) in extras {
        entries.extend(
            param_entries(p)
                .into_iter()
                .map(|(n, t)| (format!("{prefix}{n}"), t)),
        );
    }
    let mut all = metadata().unwrap_or_default();
    all.extend(meta);
    safetensors::serialize(entries, Some(all))
        .map_err(|e| anyhow!("cannot serialise the state_dict: {e}"))
}

/// Writes the whole `state_dict` to `path`, atomically (see [`crate::fsutil::write_atomic`]).
pub fn save(net: &Net<f32>, path: &Path) -> Result<()> {
    let bytes = to_bytes(net)?;
    crate::fsutil::write_bytes_atomic(path, &bytes)
        .with_context(|| format!("cannot write '{}'", path.display()))
}

/// Writes a [`Params`] (for example gradients) as F32 under the parameter names, atomically.
/// The file has no buffers, so it is not a loadable checkpoint.
pub fn save_params_f32<T: Float>(p: &Params<T>, path: &Path) -> Result<()> {
    save_entries(param_entries(p), path)
}

/// Writes a [`Params`] as F64 under the parameter names, atomically: the f64 gradients of
/// `gradspec mnist grad --precision f64`, for comparison with another framework in double
/// precision. Like [`save_params_f32`], not a loadable checkpoint.
pub fn save_params_f64<T: Float>(p: &Params<T>, path: &Path) -> Result<()> {
    let entries = p
        .tensors()
        .into_iter()
        .map(|t| (t.name.to_string(), f64_tensor(t.shape, t.data)))
        .collect();
    save_entries(entries, path)
}

fn save_entries(entries: Vec<(String, Owned)>, path: &Path) -> Result<()> {
    let bytes = safetensors::serialize(entries, metadata())
        .map_err(|e| anyhow!("cannot serialise parameters: {e}"))?;
    crate::fsutil::write_bytes_atomic(path, &bytes)
        .with_context(|| format!("cannot write '{}'", path.display()))
}

/// Reads a checkpoint written by [`save`] or by `safetensors.torch.save_file`.
pub fn load(path: &Path) -> Result<Net<f32>> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read '{}'", path.display()))?;
    from_bytes(&bytes, &path.display().to_string())
}

/// Parses a checkpoint held in memory. `what` names it in error messages (usually the path).
/// Every tensor of the `state_dict` must be present, and nothing else.
pub fn from_bytes(bytes: &[u8], what: &str) -> Result<Net<f32>> {
    Ok(from_bytes_with(bytes, what, &[])?.0)
}

/// What [`from_bytes_with`] returns: the model, one parameter set per prefix, the metadata.
pub type WithExtras = (Net<f32>, Vec<Params<f32>>, HashMap<String, String>);

/// A model plus the extra parameter sets of [`to_bytes_with`] (one per prefix, in order) and the
/// file's metadata. Tensors outside the `state_dict` and those prefixes are rejected.
pub fn from_bytes_with(bytes: &[u8], what: &str, prefixes: &[&str]) -> Result<WithExtras> {
    let st = SafeTensors::deserialize(bytes)
        .map_err(|e| anyhow!("'{what}': not a valid safetensors file: {e}"))?;
    let (_, header) = SafeTensors::read_metadata(bytes)
        .map_err(|e| anyhow!("'{what}': not a valid safetensors file: {e}"))?;
    let mut expected: BTreeSet<String> = state_dict_names().into_iter().collect();
    for prefix in prefixes {
        for t in Params::<f32>::zeros().tensors() {
            expected.insert(format!("{prefix}{}", t.name));
        }
    }
    let mut present: Vec<String> = st.names().into_iter().map(str::to_string).collect();
    present.sort();
    if let Some(extra) = present.iter().find(|n| !expected.contains(*n)) {
        if extra.starts_with("momentum.") {
            bail!(
                "'{what}': unexpected tensor '{extra}': this is a training checkpoint (model and \
                 momentum); use best.safetensors or last.safetensors from the same run folder"
            );
        }
        bail!("'{what}': unexpected tensor '{extra}' (not part of the model's state_dict)");
    }
    let present: BTreeSet<String> = present.into_iter().collect();
    if let Some(missing) = expected.iter().find(|n| !present.contains(*n)) {
        bail!("'{what}': missing tensor '{missing}'");
    }

    let mut net = Net::<f32> {
        params: Box::new(Params::zeros()),
        buffers: Box::new(Buffers::new()),
    };
    for t in net.params.tensors_mut() {
        read_floats(&st, what, t.name, &t.shape, t.data)?;
    }
    for (prefix, mean, var, count) in net.buffers.tensors_mut() {
        let n = mean.len();
        read_floats(&st, what, &format!("{prefix}.running_mean"), &[n], mean)?;
        read_floats(&st, what, &format!("{prefix}.running_var"), &[n], var)?;
        *count = read_count(&st, what, &format!("{prefix}.num_batches_tracked"))?;
    }
    let mut extras = Vec::new();
    for prefix in prefixes {
        let mut p = Params::<f32>::zeros();
        for t in p.tensors_mut() {
            read_floats(&st, what, &format!("{prefix}{}", t.name), &t.shape, t.data)?;
        }
        extras.push(p);
    }
    Ok((net, extras, header.metadata().clone().unwrap_or_default()))
}

fn read_floats(
    st: &SafeTensors<'_>,
    what: &str,
    name: &str,
    shape: &[usize],
    out: &mut [f32],
) -> Result<()> {
    let t = st
        .tensor(name)
        .map_err(|e| anyhow!("'{what}': tensor '{name}': {e}"))?;
    if t.shape() != shape {
        bail!(
            "'{what}': tensor '{name}' has shape {:?}, expected {:?}",
            t.shape(),
            shape
        );
    }
    let data = t.data();
    match t.dtype() {
        Dtype::F32 if data.len() == out.len() * 4 => {
            for (o, b) in out.iter_mut().zip(data.chunks_exact(4)) {
                *o = f32::from_le_bytes([b[0], b[1], b[2], b[3]]);
            }
        }
        Dtype::F64 if data.len() == out.len() * 8 => {
            for (o, b) in out.iter_mut().zip(data.chunks_exact(8)) {
                let mut a = [0u8; 8];
                a.copy_from_slice(b);
                *o = f64::from_le_bytes(a) as f32;
            }
        }
        Dtype::F32 | Dtype::F64 => {
            bail!(
                "'{what}': tensor '{name}' holds {} bytes, which does not match its shape",
                data.len()
            )
        }
        other => bail!("'{what}': tensor '{name}' has dtype {other:?}, expected F32 (or F64)"),
    }
    Ok(())
}

fn read_count(st: &SafeTensors<'_>, what: &str, name: &str) -> Result<i64> {
    let t = st
        .tensor(name)
        .map_err(|e| anyhow!("'{what}': tensor '{name}': {e}"))?;
    if !(t.shape().is_empty() || t.shape() == [1]) {
        bail!(
            "'{what}': tensor '{name}' has shape {:?}, expected [] (a scalar)",
            t.shape()
        );
    }
    if t.dtype() != Dtype::I64 {
        bail!(
            "'{what}': tensor '{name}' has dtype {:?}, expected I64",
            t.dtype()
        );
    }
    let b: [u8; 8] = t
        .data()
        .try_into()
        .map_err(|_| anyhow!("'{what}': tensor '{name}' does not hold 8 bytes"))?;
    let v = i64::from_le_bytes(b);
    if v < 0 {
        bail!("'{what}': tensor '{name}' is negative ({v})");
    }
    Ok(v)
}
