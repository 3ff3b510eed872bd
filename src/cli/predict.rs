//! `gradspec mnist predict`: reads a person's own digit from a PNG or JPEG file.
//!
//! Every image is decoded (PNG or JPEG, any size up to [`MAX_SIDE`] per side, 8 or 16 bits,
//! gray, RGB or RGBA), turned upright as its EXIF orientation says (photos), converted to RGBA and then to grayscale by
//! [`gray_from_rgba`](crate::data::digit::gray_from_rgba) (alpha over white, as a browser
//! canvas is), made MNIST-like by [`preprocess`](crate::data::digit::preprocess), normalised
//! as in training, and classified by the network in eval mode (BatchNorm running statistics,
//! no dropout).
//!
//! **One bad file does not stop the others.** Every file is read, decoded and preprocessed;
//! one that fails (unreadable, empty, not a PNG or JPEG, corrupt, blank) gets one `error:`
//! line on stderr naming it, the others are classified and printed (and drawn by `--show`),
//! and the command then ends with a last error line counting the failures (exit code 2).
//!
//! **Which weights.** Without `--weights` the default recipe's committed run,
//! records/onecycle8-seed1/best.safetensors, built into the binary, so `predict` works from any
//! folder. `--weights` takes a `.safetensors` file or a run folder (its `best.safetensors`).
//! The first line on stderr names the weights used (with the SHA-256 of the built-in ones),
//! and `--json` has them as `"weights"`.
//!
//! **More than one digit.** When the ink falls into several blobs of similar size side by side
//! ([`Reading::digits`](crate::data::digit::Reading::digits) > 1), a `warning:` line on stderr
//! says the picture seems to hold more than one digit, and `--json` has it as `"warning"`.
use crate::cnn::{Mode, Workspace, safetensors_io};
use crate::data::digit::{self, FIELD, Gray, MAX_SIDE};
use crate::data::{self, CLASSES, PIXELS};
use anyhow::{Context, Result, anyhow, bail};
use clap::Args;
use std::path::{Path, PathBuf};

/// The weights `predict` uses when `--weights` is not given, relative to the project root: the
/// default recipe's (`onecycle`, 8 epochs) committed run with seed 1. The binary holds a copy,
/// [`BUILT_IN_WEIGHTS`].
pub const DEFAULT_WEIGHTS: &str = "records/onecycle8-seed1/best.safetensors";
/// The name `predict` reports for [`BUILT_IN_WEIGHTS`].
pub const BUILT_IN_NAME: &str = "onecycle8-seed1";
/// [`DEFAULT_WEIGHTS`], built into the binary (about 67 kB).
pub static BUILT_IN_WEIGHTS: &[u8] =
    include_bytes!("../../records/onecycle8-seed1/best.safetensors");
/// Height of one row of the `--show` picture: the input scaled to this height (at most twice
/// as wide), beside the 28×28 preprocessed image enlarged ×4 (nearest neighbour).
pub const SHOW_ROW: u32 = (FIELD * 4) as u32;
/// The widest an input is drawn in the `--show` picture.
const SHOW_MAX_W: u32 = 2 * SHOW_ROW;
/// Margin around and between the pictures of `--show`.
const SHOW_PAD: u32 = 8;

// No `///` doc here: clap would turn it into --help text.
#[allow(missing_docs)]
#[derive(Args, Debug)]
pub struct PredictArgs {
    /// Model weights: a `.safetensors` file, or a run folder (its best.safetensors) [default:
    /// records/onecycle8-seed1, built in].
    #[arg(long, value_name = "FILE|DIR")]
    pub weights: Option<PathBuf>,
    /// Print one JSON object (the weights; per image: file, prediction, the ten
    /// probabilities, the digit-count warning; the files that failed) instead of one line per
    /// image.
    #[arg(long)]
    pub json: bool,
    /// Also write a PNG showing, for each image, the input beside the 28×28 image the model saw.
    #[arg(long, value_name = "OUT.png")]
    pub show: Option<PathBuf>,
    /// PNG or JPEG files, each holding one digit (any size; dark on light or light on dark).
    #[arg(required = true, value_name = "IMAGE")]
    pub images: Vec<PathBuf>,
}

/// One decoded input: the 28×28 bytes the model sees, how many digits its ink seems to hold,
/// and a thumbnail for `--show`.
struct Input {
    field: [u8; FIELD * FIELD],
    digits: usize,
    thumb: Option<image::GrayImage>,
}

/// Reads, decodes and preprocesses one file; every error names it.
fn load(path: &Path, want_thumb: bool) -> Result<Input> {
    let shown = path.display();
    let bytes = std::fs::read(path).with_context(|| format!("'{shown}': cannot read"))?;
    if bytes.is_empty() {
        bail!("'{shown}': empty file, not a PNG or JPEG image");
    }
    let format = match image::guess_format(&bytes) {
        Ok(f @ (image::ImageFormat::Png | image::ImageFormat::Jpeg)) => f,
        Ok(f) => bail!(
            "'{shown}': not a PNG or JPEG image (looks like {})",
            f.extensions_str().first().unwrap_or(&"another format")
        ),
        Err(_) => {
            let head: Vec<String> = bytes.iter().take(4).map(|b| format!("{b:02x}")).collect();
            bail!(
                "'{shown}': not a PNG or JPEG image (starts with bytes {})",
                head.join(" ")
            )
        }
    };
    let name = if format == image::ImageFormat::Png {
        "PNG"
    } else {
        "JPEG"
    };
    let reader = || image::ImageReader::with_format(std::io::Cursor::new(&bytes), format);
    let (w, h) = reader()
        .into_dimensions()
        .map_err(|e| anyhow!("'{shown}': not a valid {name} image ({e})"))?;
    if w as usize > MAX_SIDE || h as usize > MAX_SIDE {
        bail!(
            "'{shown}': image of {w}×{h} pixels is too large: at most {MAX_SIDE} pixels per side"
        );
    }
    let invalid = |e: image::ImageError| anyhow!("'{shown}': not a valid {name} image ({e})");
    let mut decoder = reader().into_decoder().map_err(invalid)?;
    // A phone's JPEG stores its pixels as the sensor saw them and says in EXIF how to turn
    // them upright; a missing or unreadable orientation means upright.
    let orientation = image::ImageDecoder::orientation(&mut decoder)
        .unwrap_or(image::metadata::Orientation::NoTransforms);
    let mut img = image::DynamicImage::from_decoder(decoder).map_err(invalid)?;
    img.apply_orientation(orientation);
    let rgba = img.to_rgba8();
    let (w, h) = (rgba.width() as usize, rgba.height() as usize);
    let gray = digit::gray_from_rgba(rgba.as_raw(), w, h).with_context(|| format!("'{shown}'"))?;
    drop(rgba);
    let reading = digit::read(Gray {
        width: w,
        height: h,
        pixels: &gray,
    })
    .with_context(|| format!("'{shown}'"))?;
    let thumb = if want_thumb {
        let g = image::GrayImage::from_raw(w as u32, h as u32, gray)
            .context("thumbnail buffer of the wrong size")?;
        Some(thumbnail(&g))
    } else {
        None
    };
    Ok(Input {
        field: reading.field,
        digits: reading.digits,
        thumb,
    })
}

/// The input scaled to [`SHOW_ROW`] pixels tall (narrower if it would be wider than
/// [`SHOW_MAX_W`]), keeping its aspect ratio: bilinear (triangle) when shrinking, nearest
/// neighbour when enlarging.
fn thumbnail(g: &image::GrayImage) -> image::GrayImage {
    let (w, h) = (f64::from(g.width()), f64::from(g.height()));
    let k = (f64::from(SHOW_ROW) / h).min(f64::from(SHOW_MAX_W) / w);
    let tw = ((w * k).round() as u32).clamp(1, SHOW_MAX_W);
    let th = ((h * k).round() as u32).clamp(1, SHOW_ROW);
    let filter = if k < 1.0 {
        image::imageops::FilterType::Triangle
    } else {
        image::imageops::FilterType::Nearest
    };
    image::imageops::resize(g, tw, th, filter)
}

/// The `--show` picture: one row per input, its thumbnail on the left (centred in a
/// [`SHOW_MAX_W`]-wide slot) and the preprocessed image ×4 on the right, on mid grey.
fn show_png(inputs: &[&Input]) -> image::GrayImage {
    let w = SHOW_PAD * 3 + SHOW_MAX_W + SHOW_ROW;
    let h = SHOW_PAD + inputs.len() as u32 * (SHOW_ROW + SHOW_PAD);
    let mut out = image::GrayImage::from_pixel(w, h, image::Luma([128]));
    for (r, inp) in inputs.iter().enumerate() {
        let top = SHOW_PAD + r as u32 * (SHOW_ROW + SHOW_PAD);
        if let Some(t) = &inp.thumb {
            let left = SHOW_PAD + (SHOW_MAX_W - t.width()) / 2;
            let y0 = top + (SHOW_ROW - t.height()) / 2;
            image::imageops::replace(&mut out, t, i64::from(left), i64::from(y0));
        }
        let x0 = SHOW_PAD * 2 + SHOW_MAX_W;
        for y in 0..SHOW_ROW {
            for x in 0..SHOW_ROW {
                let v = inp.field[(y / 4) as usize * FIELD + (x / 4) as usize];
                out.put_pixel(x0 + x, top + y, image::Luma([v]));
            }
        }
    }
    out
}

/// The committed trained weights: [`DEFAULT_WEIGHTS`] in the current folder, else in the
/// project folder this binary was built from (what `gradspec book` shows; `predict` itself uses
/// the built-in copy).
pub fn default_weights() -> PathBuf {
    if Path::new(DEFAULT_WEIGHTS).is_file() {
        PathBuf::from(DEFAULT_WEIGHTS)
    } else {
        Path::new(env!("CARGO_MANIFEST_DIR")).join(DEFAULT_WEIGHTS)
    }
}

/// The warning for a picture whose ink seems to hold `digits` > 1 digits side by side.
fn digits_warning(digits: usize) -> Option<String> {
    (digits > 1).then(|| {
        format!(
            "the picture seems to hold {digits} digits side by side, not one; the prediction \
             reads them as one (crop each digit into its own picture)"
        )
    })
}

/// Loads `--weights` (a file, or a run folder's best.safetensors) or the built-in weights, and
/// says which: the path, or `built-in onecycle8-seed1 (sha256 …)`.
fn load_weights(arg: Option<&Path>) -> Result<(crate::cnn::Net<f32>, String)> {
    use sha2::Digest;
    match arg {
        None => {
            let hash: String = sha2::Sha256::digest(BUILT_IN_WEIGHTS)
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect();
            let net = safetensors_io::from_bytes(BUILT_IN_WEIGHTS, BUILT_IN_NAME)?;
            Ok((net, format!("built-in {BUILT_IN_NAME} (sha256 {hash})")))
        }
        Some(p) if p.is_dir() => {
            let f = p.join("best.safetensors");
            if !f.is_file() {
                bail!(
                    "--weights '{}': a folder without best.safetensors (give a .safetensors \
                     file or a training run's folder)",
                    p.display()
                );
            }
            Ok((safetensors_io::load(&f)?, f.display().to_string()))
        }
        Some(p) => Ok((safetensors_io::load(p)?, p.display().to_string())),
    }
}

/// Some of the files could not be read; each already has its error line.
#[derive(Debug)]
struct Unread {
    failed: usize,
    total: usize,
}

impl std::fmt::Display for Unread {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} of {} images could not be read (see above)",
            self.failed, self.total
        )
    }
}

impl std::error::Error for Unread {}

/// `gradspec mnist predict`.
pub fn predict(a: PredictArgs) -> Result<()> {
    if let Some(show) = &a.show {
        super::check_out_file(show, "--show")?;
    }
    let (mut net, weights) = load_weights(a.weights.as_deref())?;
    eprintln!("weights: {weights}");
    let loaded: Vec<Result<Input>> = a.images.iter().map(|p| load(p, a.show.is_some())).collect();
    let inputs: Vec<&Input> = loaded.iter().filter_map(|r| r.as_ref().ok()).collect();

    let mut ws = Workspace::<f32>::new(inputs.len().clamp(1, crate::train::recipe::BATCH));
    let cap = ws.capacity();
    let mut probs: Vec<[f64; CLASSES]> = Vec::with_capacity(inputs.len());
    let mut x = vec![0f32; cap * PIXELS];
    for batch in inputs.chunks(cap) {
        let m = batch.len();
        for (inp, xi) in batch.iter().zip(x.chunks_exact_mut(PIXELS)) {
            data::normalize_into(&inp.field, xi);
        }
        // Labels are unused in eval mode except for the loss, which is ignored here.
        ws.load(&x[..m * PIXELS], &vec![0u8; m]);
        net.forward(&mut ws, Mode::Eval);
        for row in ws.log_probs().chunks_exact(CLASSES) {
            let mut p = [0f64; CLASSES];
            for (pi, &l) in p.iter_mut().zip(row) {
                *pi = f64::from(l).exp();
            }
            let s: f64 = p.iter().sum();
            p.iter_mut().for_each(|v| *v /= s);
            probs.push(p);
        }
    }

    if let Some(show) = &a.show
        && !inputs.is_empty()
    {
        let img = show_png(&inputs);
        let mut bytes = Vec::new();
        img.write_to(
            &mut std::io::Cursor::new(&mut bytes),
            image::ImageFormat::Png,
        )
        .map_err(|e| anyhow!("--show '{}': PNG encoding failed: {e}", show.display()))?;
        crate::fsutil::write_bytes_atomic(show, &bytes)?;
    }

    let ranked = |p: &[f64; CLASSES]| {
        let mut order: Vec<usize> = (0..CLASSES).collect();
        // Highest first; ties by the lower digit (a stable sort on the descending value).
        order.sort_by(|&i, &j| p[j].total_cmp(&p[i]));
        order
    };
    let mut images = Vec::new();
    let mut errors = Vec::new();
    let mut next = probs.iter();
    for (f, r) in a.images.iter().zip(&loaded) {
        let shown = f.display().to_string();
        let (inp, p) = match r {
            Err(e) => {
                let line = format!("{e:#}").replace('\n', " ");
                eprintln!("error: {line}");
                errors.push(serde_json::json!({ "file": shown, "error": line }));
                continue;
            }
            Ok(inp) => (inp, next.next().context("one probability row per image")?),
        };
        let warning = digits_warning(inp.digits);
        if let Some(w) = &warning {
            eprintln!("warning: '{shown}': {w}");
        }
        let order = ranked(p);
        if a.json {
            images.push(serde_json::json!({
                "file": shown,
                "prediction": order[0],
                "probabilities": p.to_vec(),
                "digits_seen": inp.digits,
                "warning": warning,
            }));
        } else {
            let top: Vec<String> = order[..3]
                .iter()
                .map(|&d| format!("{d} {:.2}%", 100.0 * p[d]))
                .collect();
            println!("{shown}: {}  ({})", order[0], top.join(", "));
        }
    }
    if a.json {
        println!(
            "{}",
            serde_json::json!({
                "weights": weights,
                "images": images,
                "errors": errors,
            })
        );
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(Unread {
            failed: errors.len(),
            total: a.images.len(),
        }
        .into())
    }
}
