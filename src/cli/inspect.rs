//! `gradspec mnist eval` and `gradspec mnist grad`: inspect a `.safetensors` model on MNIST.
use super::args::DataDirArg;
use crate::cnn::net::PIXELS;
use crate::cnn::{Float, Mode, Net, Params, Workspace, safetensors_io};
use crate::data::{self, Dataset, Split};
use anyhow::{Result, bail};
use clap::Args;
use std::path::PathBuf;

// No `///` doc here: clap would turn it into --help text.
#[allow(missing_docs)]
#[derive(Args, Debug)]
pub struct EvalArgs {
    /// Model weights (`.safetensors`, PyTorch state_dict names).
    #[arg(long)]
    pub weights: PathBuf,
    /// Print one JSON object instead of the source's text line.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub data: DataDirArg,
}

// No `///` doc here: clap would turn it into --help text.
#[allow(missing_docs)]
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum SplitArg {
    Train,
    Test,
}

/// The float type `mnist grad` computes in.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Precision {
    /// The trainer's type: f32 throughout, gradients written as F32.
    F32,
    /// The same network code as `Net<f64>` (the loaded F32 weights converted exactly, pixels
    /// normalised in f64), gradients written as F64.
    F64,
}

/// Largest `--count` for `mnist grad`: about 0.6 MB of activations per image stay in memory.
pub const MAX_GRAD_IMAGES: usize = 1024;

// No `///` doc here: clap would turn it into --help text.
#[allow(missing_docs)]
#[derive(Args, Debug)]
pub struct GradArgs {
    /// Model weights (`.safetensors`).
    #[arg(long)]
    pub weights: PathBuf,
    /// Which split the images come from.
    #[arg(long, value_enum)]
    pub split: SplitArg,
    /// Index of the first image.
    #[arg(long, default_value_t = 0, allow_negative_numbers = true)]
    pub start: usize,
    /// Number of images (the mean NLL is taken over them).
    #[arg(long, value_parser = super::args::positive_usize, allow_negative_numbers = true)]
    pub count: usize,
    /// Where to write the gradients (`.safetensors`, parameter names).
    #[arg(long)]
    pub out: PathBuf,
    /// Compute in f32 (the trainer's type; F32 file) or f64 (F64 file, for comparing with
    /// another framework in double precision).
    #[arg(long, value_enum, default_value_t = Precision::F32)]
    pub precision: Precision,
    #[command(flatten)]
    pub data: DataDirArg,
}

/// Test-set loss and accuracy of a model, BatchNorm in eval mode.
pub fn eval(a: EvalArgs) -> Result<()> {
    let mut net = safetensors_io::load(&a.weights)?;
    let dir = super::args::ensure_mnist(&a.data)?;
    let test = data::load_split(&dir, Split::Test)?;
    let mut ws = Workspace::new(crate::train::recipe::BATCH);
    let ev = crate::train::evaluate(&mut net, &test, &mut ws);
    if a.json {
        println!(
            "{}",
            serde_json::json!({
                "weights": a.weights.display().to_string(),
                "loss": ev.loss,
                "correct": ev.correct,
                "total": ev.n,
                "accuracy": ev.accuracy(),
            })
        );
    } else {
        println!("{}", ev.line());
    }
    Ok(())
}

/// Gradients of the mean NLL over images `start..start+count`: no augmentation, BatchNorm in
/// training mode (batch statistics over those images), dropout off. For cross-checking this
/// implementation against another framework.
pub fn grad(a: GradArgs) -> Result<()> {
    if a.count > MAX_GRAD_IMAGES {
        bail!(
            "--count: at most {MAX_GRAD_IMAGES} images (every activation is kept for the backward pass), got {}",
            a.count
        );
    }
    if a.count < 2 {
        bail!(
            "--count: BatchNorm in training mode needs at least 2 images, got {}",
            a.count
        );
    }
    super::check_out_file(&a.out, "--out")?;
    let mut net = safetensors_io::load(&a.weights)?;
    let dir = super::args::ensure_mnist(&a.data)?;
    let split = match a.split {
        SplitArg::Train => Split::Train,
        SplitArg::Test => Split::Test,
    };
    let ds = data::load_split(&dir, split)?;
    let end = a.start.checked_add(a.count).filter(|&e| e <= ds.len());
    let Some(end) = end else {
        bail!(
            "--start {} --count {}: the {split} split has only {} images",
            a.start,
            a.count,
            ds.len()
        );
    };
    let idx: Vec<u32> = (a.start as u32..end as u32).collect();
    let (loss, tensors) = match a.precision {
        Precision::F32 => {
            let g = gradients(&mut net, &ds, &idx, data::normalize_into);
            safetensors_io::save_params_f32(&g.1, &a.out)?;
            (g.0, g.1.tensors().len())
        }
        Precision::F64 => {
            let mut net64 = Net::<f64> {
                params: Box::new(net.params.cast()),
                buffers: Box::new(net.buffers.cast()),
            };
            let g = gradients(&mut net64, &ds, &idx, data::normalize_into_f64);
            safetensors_io::save_params_f64(&g.1, &a.out)?;
            (g.0, g.1.tensors().len())
        }
    };
    eprintln!(
        "mean NLL over {split} images {}..{}: {:.6}; {:?} gradients of {tensors} tensors written to '{}'",
        a.start,
        end,
        loss,
        a.precision,
        a.out.display()
    );
    Ok(())
}

/// Mean NLL and gradients over images `idx` of `ds`, normalised by `normalise`, BatchNorm in
/// training mode, dropout off, in the float type of `net`.
fn gradients<T: Float>(
    net: &mut Net<T>,
    ds: &Dataset,
    idx: &[u32],
    normalise: fn(&[u8], &mut [T]),
) -> (f64, Params<T>) {
    let mut x = vec![T::zero(); idx.len() * PIXELS];
    let y: Vec<u8> = idx.iter().map(|&i| ds.labels[i as usize]).collect();
    for (&i, xi) in idx.iter().zip(x.chunks_exact_mut(PIXELS)) {
        normalise(ds.image(i as usize), xi);
    }
    let mut ws = Workspace::new(idx.len());
    ws.load(&x, &y);
    let out = net.forward(&mut ws, Mode::Train { dropout: None });
    let mut g = Params::<T>::zeros();
    net.backward(&mut ws, &mut g);
    (out.loss, g)
}
