//! Part 2's worked example: one test digit through the trained network, every layer's
//! feature maps, the BatchNorm statistics, the softmax probabilities and, after one backward
//! pass, the gradients of the loss with respect to every layer's activations and the norms of
//! the parameter gradients. Also the training run's charts and the draw-a-digit section.
use super::markdown::esc;
use crate::cnn::{LayerMap, Mode, Net, Params, Workspace, safetensors_io};
use crate::data::normalize_into;
use anyhow::{Context as _, Result};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

/// The worked example's HTML and the images it links to (path inside the book → bytes).
pub struct Worked {
    /// The section's HTML.
    pub html: String,
    /// `img/…png` files.
    pub files: BTreeMap<String, Vec<u8>>,
}

/// An RGB image as PNG bytes.
fn png(w: usize, h: usize, rgb: Vec<u8>) -> Result<Vec<u8>> {
    let img = image::RgbImage::from_raw(w as u32, h as u32, rgb)
        .context("book: image buffer of the wrong size")?;
    let mut bytes = Vec::new();
    img.write_to(
        &mut std::io::Cursor::new(&mut bytes),
        image::ImageFormat::Png,
    )
    .context("book: PNG encoding")?;
    Ok(bytes)
}

/// A sequential colour map (dark blue → teal → yellow, close to viridis) at `t ∈ [0, 1]`.
fn sequential(t: f32) -> [u8; 3] {
    const STOPS: [[f32; 3]; 5] = [
        [68.0, 1.0, 84.0],
        [59.0, 82.0, 139.0],
        [33.0, 145.0, 140.0],
        [94.0, 201.0, 98.0],
        [253.0, 231.0, 37.0],
    ];
    let t = if t.is_finite() {
        t.clamp(0.0, 1.0)
    } else {
        0.0
    } * 4.0;
    let k = (t.floor() as usize).min(3);
    let f = t - k as f32;
    std::array::from_fn(|c| (STOPS[k][c] + (STOPS[k + 1][c] - STOPS[k][c]) * f).round() as u8)
}

/// A diverging colour map: blue for negative, white for 0, red for positive, `t ∈ [-1, 1]`.
fn diverging(t: f32) -> [u8; 3] {
    let t = if t.is_finite() {
        t.clamp(-1.0, 1.0)
    } else {
        0.0
    };
    let (a, b) = if t < 0.0 {
        ([255.0, 255.0, 255.0], [33.0, 102.0, 172.0])
    } else {
        ([255.0, 255.0, 255.0], [178.0, 24.0, 43.0])
    };
    let f = t.abs();
    std::array::from_fn(|c| (a[c] + (b[c] - a[c]) * f).round() as u8)
}

/// The maps of `m` as one image: a grid of up to 8 maps per row, each scaled up by whole
/// pixels to about 96 px, with a 2-px gap. `signed`: a diverging colour map of
/// `sign(v)·√(|v| / max|v|)` over the whole layer (so maps compare within a layer, and the
/// square root keeps small gradients visible); else a
/// sequential one over each map's own minimum to maximum.
fn grid(m: &LayerMap<f32>, signed: bool) -> Result<(usize, usize, Vec<u8>)> {
    let (c, h, w) = (m.channels, m.height, m.width);
    let scale = (96 / h.max(w)).clamp(1, 48);
    let cols = c.min(8);
    let rows = c.div_ceil(cols);
    let gap = 2;
    let (tw, th) = (
        cols * (w * scale + gap) + gap,
        rows * (h * scale + gap) + gap,
    );
    // Grey gaps: white is a colour of the diverging map (zero).
    let mut rgb = vec![190u8; tw * th * 3];
    let amax = m.values.iter().fold(0f32, |a, v| a.max(v.abs()));
    for ch in 0..c {
        let plane = &m.values[ch * h * w..(ch + 1) * h * w];
        let lo = plane.iter().copied().fold(f32::INFINITY, f32::min);
        let hi = plane.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let (ox, oy) = (
            gap + (ch % cols) * (w * scale + gap),
            gap + (ch / cols) * (h * scale + gap),
        );
        for y in 0..h * scale {
            for x in 0..w * scale {
                let v = plane[(y / scale) * w + x / scale];
                let px = if signed {
                    diverging(if amax > 0.0 {
                        (v / amax).signum() * (v.abs() / amax).sqrt()
                    } else {
                        0.0
                    })
                } else if hi > lo {
                    sequential((v - lo) / (hi - lo))
                } else {
                    sequential(0.0)
                };
                let i = ((oy + y) * tw + ox + x) * 3;
                rgb[i..i + 3].copy_from_slice(&px);
            }
        }
    }
    Ok((tw, th, rgb))
}

/// A file name for a layer: its position and a slug of its name.
fn file_name(prefix: &str, k: usize, name: &str) -> String {
    let slug: String = name
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect::<String>()
        .split('-')
        .filter(|s| !s.is_empty())
        .collect::<Vec<_>>()
        .join("-");
    format!("img/{prefix}-{k:02}-{slug}.png")
}

/// One layer as a figure, or (a vector of 1×1 maps) as a row of numbers.
fn figure(
    files: &mut BTreeMap<String, Vec<u8>>,
    html: &mut String,
    prefix: &str,
    k: usize,
    m: &LayerMap<f32>,
    signed: bool,
) -> Result<()> {
    let shape = format!("{}×{}×{}", m.channels, m.height, m.width);
    if m.height * m.width == 1 {
        let nums: Vec<String> = m.values.iter().map(|v| format!("{v:.3}")).collect();
        let _ = write!(
            html,
            "<figure class=\"vec\"><figcaption>{} <span class=\"shape\">{shape}</span></figcaption>\
             <code>[{}]</code></figure>",
            esc(m.name),
            nums.join(", ")
        );
        return Ok(());
    }
    let (w, h, rgb) = grid(m, signed)?;
    let name = file_name(prefix, k, m.name);
    files.insert(name.clone(), png(w, h, rgb)?);
    let amax = m.values.iter().fold(0f32, |a, v| a.max(v.abs()));
    let scale = if signed {
        format!(" · colour scale ±{amax:.3e}")
    } else {
        String::new()
    };
    let _ = write!(
        html,
        "<figure><figcaption>{} <span class=\"shape\">{shape}{scale}</span></figcaption>\
         <img src=\"{name}\" alt=\"{} feature maps\" width=\"{w}\" height=\"{h}\"></figure>",
        esc(m.name),
        esc(m.name)
    );
    Ok(())
}

/// The worked example for test digit `index` (`pixels`, `label`) under `weights`; the charts
/// come from the run folder `run_dir` (curves.png, confusion.png, misclassified.png, when
/// present).
pub fn worked_example(
    weights: &[u8],
    index: usize,
    pixels: &[u8],
    label: u8,
    run_dir: &Path,
) -> Result<Worked> {
    let mut files = BTreeMap::new();
    let mut html = String::new();
    let mut x = vec![0f32; pixels.len()];
    normalize_into(pixels, &mut x);

    // Eval mode: what the trained network predicts.
    let mut net: Net<f32> = safetensors_io::from_bytes(weights, "--weights")?;
    let mut ws = Workspace::<f32>::new(1);
    ws.load(&x, &[label]);
    net.forward(&mut ws, Mode::Eval);
    let acts = ws.activations(0);
    let probs: Vec<f64> = ws.log_probs().iter().map(|&l| f64::from(l).exp()).collect();
    let pred = ws.predictions()[0];

    let _ = write!(
        html,
        "<section id=\"worked-example\"><h2><a class=\"h\" href=\"#worked-example\">Worked \
         example: test digit {index} through the trained network</a></h2>\
         <p>Test-set image {index} (label {label}), normalised as in training, through the \
         network in eval mode (BatchNorm with its running statistics, no dropout). Each \
         figure shows one layer's maps, each map scaled to its own minimum (dark) and maximum \
         (yellow). The network predicts <strong id=\"worked-prediction\">{pred}</strong>.</p>"
    );
    html.push_str("<div class=\"maps\">");
    for (k, m) in acts.iter().enumerate() {
        figure(&mut files, &mut html, "act", k, m, false)?;
    }
    html.push_str("</div>");

    html.push_str("<h3 id=\"worked-softmax\">Softmax probabilities</h3><table class=\"probs\">");
    for (d, p) in probs.iter().enumerate() {
        let _ = write!(
            html,
            "<tr{}><td>{d}</td><td class=\"bar\"><span style=\"width:{:.1}%\"></span></td><td>{:.4}%</td></tr>",
            if d as u8 == pred {
                " class=\"top\""
            } else {
                ""
            },
            p * 100.0,
            p * 100.0
        );
    }
    html.push_str("</table>");

    // Train mode, dropout off, this one image: the batch statistics and one backward pass.
    let mut tnet: Net<f32> = safetensors_io::from_bytes(weights, "--weights")?;
    let mut tws = Workspace::<f32>::new(1);
    tws.load(&x, &[label]);
    let out = tnet.forward(&mut tws, Mode::Train { dropout: None });
    let mut grads = Params::<f32>::zeros();
    tnet.backward(&mut tws, &mut grads);

    html.push_str(
        "<h3 id=\"worked-batchnorm\">BatchNorm statistics</h3><p>Per channel: the running \
         statistics the trained network normalises with in eval mode, and this one image's \
         batch statistics (over its H×W values), which a train-mode pass would use instead. \
         γ and β are the learned scale and shift.</p>",
    );
    let running = net.buffers.tensors();
    let params = net.params.tensors();
    for (name, mean, var) in tws.batch_stats() {
        let find = |suffix: &str| {
            params
                .iter()
                .find(|t| t.name == format!("{name}.{suffix}"))
                .map(|t| t.data.to_vec())
                .unwrap_or_default()
        };
        let (gamma, beta) = (find("weight"), find("bias"));
        let Some((_, rmean, rvar, _)) = running.iter().find(|t| t.0 == name) else {
            continue;
        };
        let _ = write!(
            html,
            "<details class=\"bn\"><summary><code>{name}</code>: {} channels</summary>\
             <table><tr><th>channel</th><th>running mean</th><th>running var</th>\
             <th>image mean</th><th>image var</th><th>γ</th><th>β</th></tr>",
            mean.len()
        );
        for c in 0..mean.len() {
            let g = |v: &[f32]| v.get(c).map_or(String::new(), |x| format!("{x:.4}"));
            let _ = write!(
                html,
                "<tr><td>{c}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                g(rmean),
                g(rvar),
                g(&mean),
                g(&var),
                g(&gamma),
                g(&beta)
            );
        }
        html.push_str("</table></details>");
    }

    let _ = write!(
        html,
        "<h3 id=\"worked-gradients\">One backward pass</h3><p>The loss of this image \
         (NLL of label {label}, BatchNorm in train mode over this image alone, dropout off) is \
         {:.4}. Its gradient with respect to each layer's activations, from the output back \
         to conv1: red positive, blue negative, white zero; the colour's strength is √(|g| / max|g|) over the layer, so small gradients stay visible and maps of one layer compare.</p>\
         <div class=\"maps\">",
        out.loss
    );
    for (k, m) in tws.activation_grads(0).iter().enumerate() {
        figure(&mut files, &mut html, "grad", k, m, true)?;
    }
    html.push_str(
        "</div><h3 id=\"worked-param-grads\">Parameter gradient norms</h3>\
         <table class=\"norms\"><tr><th>tensor</th><th>‖∂L/∂θ‖₂</th><th></th></tr>",
    );
    let norms = grads.norms();
    let top = norms.iter().fold(0f64, |a, (_, n)| a.max(*n));
    for (name, n) in &norms {
        let _ = write!(
            html,
            "<tr><td><code>{name}</code></td><td>{n:.4e}</td><td class=\"bar\"><span style=\"width:{:.1}%\"></span></td></tr>",
            if top > 0.0 { n / top * 100.0 } else { 0.0 }
        );
    }
    html.push_str("</table>");

    html.push_str(
        "<h3 id=\"training-run\">The training run</h3><p>From the run that produced these \
         weights (<code>records/</code>).</p><div class=\"charts\">",
    );
    for (file, alt) in [
        (
            "curves.png",
            "training curves: loss and test accuracy per epoch",
        ),
        ("confusion.png", "confusion matrix on the test set"),
        ("misclassified.png", "misclassified test digits"),
    ] {
        let path = run_dir.join(file);
        if let Ok(bytes) = std::fs::read(&path) {
            let name = format!("img/run-{file}");
            files.insert(name.clone(), bytes);
            let _ = write!(
                html,
                "<figure><img src=\"{name}\" alt=\"{alt}\"><figcaption>{alt}</figcaption></figure>"
            );
        }
    }
    html.push_str("</div></section>");
    Ok(Worked { html, files })
}

/// The draw-a-digit section: the canvas and the places the WebAssembly module's answer goes.
pub const DRAW_HTML: &str = r##"<section id="draw"><h2><a class="h" href="#draw">Draw a digit</a></h2>
<p>Draw one digit with the mouse or a finger. The network above, compiled to WebAssembly with
the trained weights, reads it: the same preprocessing as <code>gradspec mnist predict</code>
(grayscale, inverted when the background is light, cropped to the digit, scaled to fit 20×20,
centred by its centre of mass in 28×28), then the forward pass in eval mode, on the portable
code path.</p>
<div class="draw">
<div><canvas id="pad" width="280" height="280"></canvas><br>
<button id="clear" type="button">clear</button></div>
<div><p>Prediction: <strong id="prediction">–</strong></p>
<table class="probs" id="draw-probs"></table>
<p>What the network sees (28×28):</p><canvas id="seen" width="112" height="112"></canvas>
<p id="draw-error" class="error"></p></div>
</div>
<div id="draw-maps" class="maps"></div>
</section>"##;
