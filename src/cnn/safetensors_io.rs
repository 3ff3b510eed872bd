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
//! this module panics on bad input, and every error is one line.
//!
//! # Checksums
//!
//! Every file written here (weights, training checkpoints, exported gradients) carries
//! checksums in its `__metadata__`, which stays a string→string map that PyTorch ignores:
//!
//! | key | value |
//! |---|---|
//! | `format` | `pt` |
//! | `gradspec.sha256:<tensor name>`, one per tensor | SHA-256 of the tensor (below) |
//! | `gradspec.sha256` | SHA-256 of every other metadata entry (below) |
//! | anything else, e.g. a checkpoint's `gradspec.run_state` | as given |
//!
//! A tensor's digest is taken over `"gradspec tensor v1\0"`, then its name, its dtype as the
//! header spells it (`F32`), its rank and each dimension, and its data bytes, where every
//! string and the data are preceded by their length and every number is a little-endian u64.
//! The metadata digest is taken over `"gradspec metadata v1\0"`, the number of entries, then
//! each entry that is not itself a checksum, sorted by key, key and value length-prefixed.
//! Digests are written as 64 lower-case hex digits and compared as strings.
//!
//! So a change to any tensor's name, dtype, shape, offsets or data, or to any metadata entry,
//! changes a digest or breaks the JSON, and every single-bit flip anywhere in a file is an error
//! (`tests/reliability_checksum.rs` flips every bit of the header). Loading checks each tensor
//! in `state_dict` order (a checkpoint's `momentum.*` after the model), after the metadata, and
//! names the first that fails: `'last.safetensors': tensor 'conv1.weight' fails its checksum
//! (file is corrupt)`. A file with no checksum at all (saved by PyTorch, or by gradspec before
//! checksums) loads unchecked; one with checksums for some entries but not for others is an
//! error.
//!
//! The writer lays the file out exactly as `safetensors::serialize` does (tensors sorted by
//! dtype, widest first, then by name; the header padded with spaces to a multiple of 8), but
//! writes the metadata in sorted key order, so equal tensors and metadata give equal bytes.
use super::float::Float;
use super::net::Net;
use super::params::{Buffers, Params};
use crate::error::{Context, Error, Result, bail, err};
use safetensors::tensor::{Dtype, Metadata, SafeTensors};
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::path::Path;

/// An owned tensor ready to serialise.
struct Owned {
    dtype: Dtype,
    shape: Vec<usize>,
    bytes: Vec<u8>,
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
    serialize(entries, meta)
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
    let bytes = serialize(entries, HashMap::new())?;
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
    parse_with(bytes, what, prefixes).map_err(one_line)
}

fn parse_with(bytes: &[u8], what: &str, prefixes: &[&str]) -> Result<WithExtras> {
    let file = Parsed::new(bytes, what)?;
    let mut order = state_dict_names();
    for prefix in prefixes {
        for t in Params::<f32>::zeros().tensors() {
            order.push(format!("{prefix}{}", t.name));
        }
    }
    file.verify(what, &order)?;
    let expected: BTreeSet<String> = order.into_iter().collect();
    let mut present: Vec<&str> = file.names();
    present.sort_unstable();
    if let Some(extra) = present.iter().find(|n| !expected.contains(**n)) {
        let starts_momentum = extra.starts_with("momentum.");
        let extra = extra.escape_debug();
        if starts_momentum {
            bail!(
                "'{what}': unexpected tensor '{extra}': this is a training checkpoint (model and \
                 momentum); use best.safetensors or last.safetensors from the same run folder"
            );
        }
        bail!("'{what}': unexpected tensor '{extra}' (not part of the model's state_dict)");
    }
    let present: BTreeSet<&str> = present.into_iter().collect();
    if let Some(missing) = expected.iter().find(|n| !present.contains(n.as_str())) {
        bail!("'{what}': missing tensor '{missing}'");
    }

    let mut net = Net::<f32> {
        params: Box::new(Params::zeros()),
        buffers: Box::new(Buffers::new()),
    };
    for t in net.params.tensors_mut() {
        read_floats(&file, what, t.name, &t.shape, t.data)?;
    }
    for (prefix, mean, var, count) in net.buffers.tensors_mut() {
        let n = mean.len();
        read_floats(&file, what, &format!("{prefix}.running_mean"), &[n], mean)?;
        read_floats(&file, what, &format!("{prefix}.running_var"), &[n], var)?;
        *count = read_count(&file, what, &format!("{prefix}.num_batches_tracked"))?;
    }
    let mut extras = Vec::new();
    for prefix in prefixes {
        let mut p = Params::<f32>::zeros();
        for t in p.tensors_mut() {
            read_floats(
                &file,
                what,
                &format!("{prefix}{}", t.name),
                &t.shape,
                t.data,
            )?;
        }
        extras.push(p);
    }
    Ok((net, extras, file.metadata().clone()))
}

fn read_floats(
    file: &Parsed<'_>,
    what: &str,
    name: &str,
    shape: &[usize],
    out: &mut [f32],
) -> Result<()> {
    let t = file.tensor(name, what)?;
    if t.shape != shape {
        bail!(
            "'{what}': tensor '{name}' has shape {:?}, expected {:?}",
            t.shape,
            shape
        );
    }
    let data = t.data;
    let width = match t.dtype {
        Dtype::F32 => 4,
        Dtype::F64 => 8,
        other => bail!("'{what}': tensor '{name}' has dtype {other:?}, expected F32 (or F64)"),
    };
    // The `safetensors` crate has already checked that the data agree with the shape; this
    // check keeps a short read from ever filling `out` partly.
    if data.len() != out.len() * width {
        bail!(
            "'{what}': tensor '{name}' holds {} bytes, which does not match its shape",
            data.len()
        )
    }
    for (o, b) in out.iter_mut().zip(data.chunks_exact(width)) {
        *o = if width == 4 {
            f32::from_le_bytes([b[0], b[1], b[2], b[3]])
        } else {
            let mut a = [0u8; 8];
            a.copy_from_slice(b);
            f64::from_le_bytes(a) as f32
        };
    }
    Ok(())
}

fn read_count(file: &Parsed<'_>, what: &str, name: &str) -> Result<i64> {
    let t = file.tensor(name, what)?;
    if !(t.shape.is_empty() || t.shape == [1]) {
        bail!(
            "'{what}': tensor '{name}' has shape {:?}, expected [] (a scalar)",
            t.shape
        );
    }
    if t.dtype != Dtype::I64 {
        bail!(
            "'{what}': tensor '{name}' has dtype {:?}, expected I64",
            t.dtype
        );
    }
    let b: [u8; 8] = t
        .data
        .try_into()
        .map_err(|_| err!("'{what}': tensor '{name}' does not hold 8 bytes"))?;
    let v = i64::from_le_bytes(b);
    if v < 0 {
        bail!("'{what}': tensor '{name}' is negative ({v})");
    }
    Ok(v)
}

/// Makes an error message one line: control characters (a tensor name or a metadata value from
/// a damaged file may hold a newline) are shown escaped. The cause chain is kept, `: `-joined.
pub fn one_line(e: crate::error::Error) -> crate::error::Error {
    let msg = e.chain();
    if !msg.chars().any(is_line_break_or_control) {
        return e;
    }
    let mut out = String::with_capacity(msg.len() + 8);
    for c in msg.chars() {
        if is_line_break_or_control(c) {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    Error::Invalid(out)
}

fn is_line_break_or_control(c: char) -> bool {
    c.is_control() || matches!(c, '\u{2028}' | '\u{2029}')
}

// ------------------------------------------------------------------------------- the file

/// One tensor of a parsed file.
struct TensorRef<'a> {
    dtype: Dtype,
    shape: &'a [usize],
    data: &'a [u8],
}

/// A file parsed once: its header (validated by the `safetensors` crate: the offsets tile the
/// data section exactly and agree with every shape and dtype) and its data section.
struct Parsed<'a> {
    header: Metadata,
    data: &'a [u8],
    /// Tensor names in file order.
    names: Vec<String>,
    no_metadata: HashMap<String, String>,
}

impl<'a> Parsed<'a> {
    fn new(bytes: &'a [u8], what: &str) -> Result<Self> {
        let bad = |e: &dyn std::fmt::Display| err!("'{what}': not a valid safetensors file: {e}");
        let (n, header) = SafeTensors::read_metadata(bytes).map_err(|e| bad(&e))?;
        let data = 8usize
            .checked_add(n)
            .and_then(|start| bytes.get(start..))
            .ok_or_else(|| bad(&"the header runs past the end"))?;
        Ok(Self {
            names: header.offset_keys(),
            header,
            data,
            no_metadata: HashMap::new(),
        })
    }

    /// Tensor names in file order (by data offset).
    fn names(&self) -> Vec<&str> {
        self.names.iter().map(String::as_str).collect()
    }

    fn metadata(&self) -> &HashMap<String, String> {
        self.header.metadata().as_ref().unwrap_or(&self.no_metadata)
    }

    fn tensor(&self, name: &str, what: &str) -> Result<TensorRef<'_>> {
        let info = self
            .header
            .info(name)
            .ok_or_else(|| err!("'{what}': missing tensor '{name}'"))?;
        let (start, end) = info.data_offsets;
        let data = self.data.get(start..end).ok_or_else(|| {
            err!("'{what}': tensor '{name}' lies outside the file's data section")
        })?;
        Ok(TensorRef {
            dtype: info.dtype,
            shape: &info.shape,
            data,
        })
    }
}

// -------------------------------------------------------------------------- checksums

/// Metadata key of a tensor's checksum: this prefix, then the tensor's name.
pub const TENSOR_SUM_PREFIX: &str = "gradspec.sha256:";
/// Metadata key of the checksum over every other metadata entry.
pub const METADATA_SUM_KEY: &str = "gradspec.sha256";

fn is_sum_key(key: &str) -> bool {
    key == METADATA_SUM_KEY || key.starts_with(TENSOR_SUM_PREFIX)
}

fn framed(h: &mut Sha256, bytes: &[u8]) {
    h.update((bytes.len() as u64).to_le_bytes());
    h.update(bytes);
}

fn hex(d: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    d.iter()
        .flat_map(|&b| [DIGITS[usize::from(b >> 4)], DIGITS[usize::from(b & 15)]])
        .map(char::from)
        .collect()
}

/// A tensor's checksum: lower-case hex SHA-256 over its name, dtype, shape and data, each
/// framed by its length, so that no two different tensors hash the same input.
fn tensor_sum(name: &str, dtype: Dtype, shape: &[usize], data: &[u8]) -> String {
    let mut h = Sha256::new();
    h.update(b"gradspec tensor v1\0");
    framed(&mut h, name.as_bytes());
    framed(&mut h, dtype.to_string().as_bytes());
    h.update((shape.len() as u64).to_le_bytes());
    for &d in shape {
        h.update((d as u64).to_le_bytes());
    }
    framed(&mut h, data);
    hex(&h.finalize())
}

/// The checksum of the metadata: lower-case hex SHA-256 over every entry that is not itself a
/// checksum (`format`, a checkpoint's run state, ...), sorted by key, keys and values framed.
fn metadata_sum<'a>(entries: impl Iterator<Item = (&'a String, &'a String)>) -> String {
    let sorted: BTreeMap<&str, &str> = entries
        .filter(|(k, _)| !is_sum_key(k))
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let mut h = Sha256::new();
    h.update(b"gradspec metadata v1\0");
    h.update((sorted.len() as u64).to_le_bytes());
    for (k, v) in sorted {
        framed(&mut h, k.as_bytes());
        framed(&mut h, v.as_bytes());
    }
    hex(&h.finalize())
}

/// What [`verify`] found in a file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Checksums {
    /// Every tensor and the metadata carry a checksum, and all of them match.
    Verified,
    /// The file carries no checksum at all (written by PyTorch, or by an older gradspec).
    Absent,
}

impl Parsed<'_> {
    /// Checks the checksums. First the cheap checks: every tensor has a checksum, every tensor
    /// checksum belongs to a tensor, and the metadata's checksum matches. Then every tensor,
    /// those named in `order` first and in that order, then the rest in file order. The first
    /// failure is the error.
    fn verify(&self, what: &str, order: &[String]) -> Result<Checksums> {
        let meta = self.metadata();
        let sums: HashMap<&str, &str> = meta
            .iter()
            .filter_map(|(k, v)| Some((k.strip_prefix(TENSOR_SUM_PREFIX)?, v.as_str())))
            .collect();
        let meta_sum = meta.get(METADATA_SUM_KEY);
        if sums.is_empty() && meta_sum.is_none() {
            return Ok(Checksums::Absent);
        }
        let present: HashSet<&str> = self.names.iter().map(String::as_str).collect();
        let hinted: HashSet<&str> = order.iter().map(String::as_str).collect();
        let in_order = order
            .iter()
            .map(String::as_str)
            .filter(|n| present.contains(n));
        let rest = self.names.iter().map(String::as_str);
        let names: Vec<&str> = in_order
            .chain(rest.filter(|n| !hinted.contains(n)))
            .collect();
        if let Some(name) = names.iter().find(|n| !sums.contains_key(*n)) {
            bail!(
                "'{what}': tensor '{}' has no checksum, but other entries have one \
                 (file is corrupt)",
                name.escape_debug()
            );
        }
        if let Some(stray) = sums.keys().filter(|n| !present.contains(*n)).min() {
            bail!(
                "'{what}': the metadata holds a checksum for tensor '{}', which the file does not \
                 hold (file is corrupt)",
                stray.escape_debug()
            );
        }
        match meta_sum {
            None => bail!(
                "'{what}': the tensors have checksums but the metadata has none (file is corrupt)"
            ),
            Some(s) if *s != metadata_sum(meta.iter()) => {
                bail!("'{what}': the metadata fails its checksum (file is corrupt)")
            }
            Some(_) => {}
        }
        for name in names {
            let t = self.tensor(name, what)?;
            if tensor_sum(name, t.dtype, t.shape, t.data) != sums[name] {
                bail!(
                    "'{what}': tensor '{}' fails its checksum (file is corrupt)",
                    name.escape_debug()
                );
            }
        }
        Ok(Checksums::Verified)
    }
}

/// Checks a `.safetensors` file held in memory: that it parses, and that its checksums, if it
/// has any, all match. The metadata is checked first, then the tensors in `state_dict` order,
/// then any others in file order; the error names `what` and the first tensor that fails. Does
/// not check which tensors the file holds (a gradient file holds only the parameters).
pub fn verify(bytes: &[u8], what: &str) -> Result<Checksums> {
    Parsed::new(bytes, what)
        .and_then(|f| f.verify(what, &state_dict_names()))
        .map_err(one_line)
}

/// [`verify`] for a file on disk.
pub fn verify_file(path: &Path) -> Result<Checksums> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read '{}'", path.display()))?;
    verify(&bytes, &path.display().to_string())
}

// -------------------------------------------------------------------------- the writer

/// Serialises `entries` with checksums, byte for byte as `safetensors::serialize` lays a file
/// out (tensors ordered by dtype, widest first, then by name; the header padded with spaces to
/// a multiple of 8), except that the metadata is written in sorted key order, so the same
/// tensors and metadata always give the same bytes.
fn serialize(mut entries: Vec<(String, Owned)>, extra: HashMap<String, String>) -> Result<Vec<u8>> {
    entries.sort_by(|(a, x), (b, y)| y.dtype.cmp(&x.dtype).then_with(|| a.cmp(b)));
    let mut meta = BTreeMap::from([("format".to_string(), "pt".to_string())]);
    meta.extend(extra.into_iter().filter(|(k, _)| !is_sum_key(k)));
    let meta_sum = metadata_sum(meta.iter());
    for (name, t) in &entries {
        meta.insert(
            format!("{TENSOR_SUM_PREFIX}{name}"),
            tensor_sum(name, t.dtype, &t.shape, &t.bytes),
        );
    }
    meta.insert(METADATA_SUM_KEY.to_string(), meta_sum);
    write_file(&entries, &meta)
}

/// The safetensors layout: header length (u64 little-endian), the JSON header (`__metadata__`
/// first, then the tensors in data order) padded with spaces to a multiple of 8, the data.
fn write_file(entries: &[(String, Owned)], meta: &BTreeMap<String, String>) -> Result<Vec<u8>> {
    let mut header = format!("{{\"__metadata__\":{}", serde_json::to_string(meta)?);
    let mut offset = 0usize;
    for (name, t) in entries {
        let end = offset + t.bytes.len();
        header.push_str(&format!(
            ",{}:{{\"dtype\":\"{}\",\"shape\":{},\"data_offsets\":[{offset},{end}]}}",
            serde_json::to_string(name)?,
            t.dtype,
            serde_json::to_string(&t.shape)?
        ));
        offset = end;
    }
    header.push('}');
    let padded = header.len().next_multiple_of(8);
    header.extend(std::iter::repeat_n(' ', padded - header.len()));
    let mut out = Vec::with_capacity(8 + header.len() + offset);
    out.extend_from_slice(&(header.len() as u64).to_le_bytes());
    out.extend_from_slice(header.as_bytes());
    for (_, t) in entries {
        out.extend_from_slice(&t.bytes);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::borrow::Cow;

    impl safetensors::View for &Owned {
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

    fn entries() -> Vec<(String, Owned)> {
        let net = Net::<f32>::new(3);
        let mut e = param_entries(&net.params);
        e.extend(buffer_entries(&net.buffers));
        e.push(("x.f64".into(), f64_tensor(vec![2], &[1.5f64, -2.0])));
        e
    }

    /// With the same metadata, the writer gives the `safetensors` crate's bytes exactly: same
    /// tensor order, same JSON, same padding, so the data section is unchanged by checksums.
    #[test]
    fn the_writer_lays_files_out_as_the_safetensors_crate_does() {
        let mut e = entries();
        let meta = BTreeMap::from([("format".to_string(), "pt".to_string())]);
        let theirs = safetensors::serialize(
            e.iter().map(|(n, t)| (n.clone(), t)),
            Some(meta.clone().into_iter().collect()),
        )
        .unwrap();
        e.sort_by(|(a, x), (b, y)| y.dtype.cmp(&x.dtype).then_with(|| a.cmp(b)));
        assert_eq!(write_file(&e, &meta).unwrap(), theirs);
    }

    /// With checksums, only the header differs: the data section is the crate's, byte for byte.
    #[test]
    fn checksums_change_only_the_header() {
        let e = entries();
        let ours = serialize(entries(), HashMap::new()).unwrap();
        let theirs = safetensors::serialize(
            e.iter().map(|(n, t)| (n.clone(), t)),
            Some(HashMap::from([("format".to_string(), "pt".to_string())])),
        )
        .unwrap();
        let data =
            |b: &[u8]| b[8 + u64::from_le_bytes(b[..8].try_into().unwrap()) as usize..].to_vec();
        assert_eq!(data(&ours), data(&theirs));
        assert_eq!(verify(&ours, "mem").unwrap(), Checksums::Verified);
        assert_eq!(verify(&theirs, "mem").unwrap(), Checksums::Absent);
        // Deterministic, whatever the hash map's order.
        assert_eq!(serialize(entries(), HashMap::new()).unwrap(), ours);
    }
}
