//! `gradspec mnist eval` and `gradspec mnist grad`: inspect a `.safetensors` model on MNIST.
use crate::cnn::net::PIXELS;
use crate::cnn::{Mode, Params, Workspace, safetensors_io};
use crate::data::{self, DataDirArg, Split};
use anyhow::{Result, bail};
use clap::Args;
use std::path::PathBuf;

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

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum SplitArg {
    Train,
    Test,
}

/// Largest `--count` for `mnist grad`: about 0.6 MB of activations per image stay in memory.
pub const MAX_GRAD_IMAGES: usize = 1024;

#[derive(Args, Debug)]
pub struct GradArgs {
    /// Model weights (`.safetensors`).
    #[arg(long)]
    pub weights: PathBuf,
    /// Which split the images come from.
    #[arg(long, value_enum)]
    pub split: SplitArg,
    /// Index of the first image.
    #[arg(long, default_value_t = 0)]
    pub start: usize,
    /// Number of images (the mean NLL is taken over them).
    #[arg(long, value_parser = super::positive_usize)]
    pub count: usize,
    /// Where to write the gradients (`.safetensors`, parameter names).
    #[arg(long)]
    pub out: PathBuf,
    #[command(flatten)]
    pub data: DataDirArg,
}

/// Test-set loss and accuracy of a model, BatchNorm in eval mode.
pub fn eval(a: EvalArgs) -> Result<()> {
    let mut net = safetensors_io::load(&a.weights)?;
    let dir = data::ensure_mnist(&a.data)?;
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
    if let Some(parent) = a.out.parent().filter(|p| !p.as_os_str().is_empty()) {
        crate::fsutil::ensure_dir(parent, "--out")?;
    }
    let mut net = safetensors_io::load(&a.weights)?;
    let dir = data::ensure_mnist(&a.data)?;
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
    let idx: Vec<u32> = (a.start as u32..end as u32).collect();
    let mut x = vec![0f32; a.count * PIXELS];
    let mut y = vec![0u8; a.count];
    data::fill_batch(&ds, &idx, None, &mut x, &mut y);
    let mut ws = Workspace::new(a.count);
    ws.load(&x, &y);
    let out = net.forward(&mut ws, Mode::Train { dropout: None });
    let mut g = Params::<f32>::zeros();
    net.backward(&mut ws, &mut g);
    safetensors_io::save_params_f32(&g, &a.out)?;
    eprintln!(
        "mean NLL over {split} images {}..{}: {:.6}; gradients of {} tensors written to '{}'",
        a.start,
        end,
        out.loss,
        g.tensors().len(),
        a.out.display()
    );
    Ok(())
}
