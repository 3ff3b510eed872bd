//! Part 2's worked example: one test digit through the trained network, every layer's
//! feature maps, the BatchNorm statistics, the softmax probabilities and, after one backward
//! pass, the gradients of the loss with respect to every layer's activations and the norms of
//! the parameter gradients. Also the training run's charts and the draw-a-digit section.
use super::markdown::esc;
use crate::cnn::receptive::receptive_field;
use crate::cnn::summary;
use crate::cnn::{LayerMap, Mode, Net, Params, Workspace, safetensors_io};
use crate::data::normalize_into;
use crate::train::EpochMetrics;
use anyhow::{Context as _, Result, bail};
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

/// Where a run folder sits, as the book says it: relative to the project when it is inside
/// it (`records/onecycle8-seed1`, `out/mnist`), else as given.
pub fn shown_path(p: &Path) -> String {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let rel = p.strip_prefix(root).unwrap_or(p);
    let s = rel.display().to_string();
    if s.is_empty() { ".".into() } else { s }
}

/// One sentence naming the run `run_dir` as the source of what follows: a committed run under
/// `records/`, or another folder (the book's own run when `gradspec reproduce` built it).
pub fn provenance(run_dir: &Path) -> String {
    let shown = shown_path(run_dir);
    let committed = Path::new(&shown)
        .components()
        .next()
        .is_some_and(|c| c.as_os_str() == "records");
    if committed {
        format!("the committed run <code>{}</code>", esc(&shown))
    } else {
        format!(
            "the run in <code>{}</code> (not a committed record: the run this book was built \
             from, e.g. by <code>gradspec reproduce</code>)",
            esc(&shown)
        )
    }
}

/// The rows of `run_dir/metrics.csv`, `None` when the file is absent.
fn read_metrics(run_dir: &Path) -> Result<Option<Vec<EpochMetrics>>> {
    let path = run_dir.join("metrics.csv");
    if !path.is_file() {
        return Ok(None);
    }
    let mut r =
        csv::Reader::from_path(&path).with_context(|| format!("book: {}", path.display()))?;
    let mut rows = Vec::new();
    for (k, row) in r.deserialize::<EpochMetrics>().enumerate() {
        let row =
            row.map_err(|e| anyhow::anyhow!("book: {}: row {}: {e}", path.display(), k + 1))?;
        rows.push(row);
    }
    if rows.is_empty() {
        bail!("book: {}: no epochs in it", path.display());
    }
    Ok(Some(rows))
}

/// PyTorch names of the summary rows: conv1 … conv7, bn1 … (numbered after their
/// convolution), fc1; the rest by type.
fn module_names(rows: &[summary::Row]) -> Vec<String> {
    let mut conv = 0;
    rows.iter()
        .map(|r| match r.kind {
            "Conv2d" => {
                conv += 1;
                format!("conv{conv} = Conv2d, {0}×{0}", r.kernel)
            }
            "BatchNorm2d" => format!("bn{conv} = BatchNorm2d"),
            "Dropout" => "Dropout(0.05)".into(),
            "MaxPool2d" => "MaxPool2d(2, 2)".into(),
            "AvgPool2d" => "AvgPool2d(2, 2)".into(),
            "Linear" => "fc1 = Linear".into(),
            k => k.to_string(),
        })
        .collect()
}

/// The opening of Part 2's page: the layer table (output shape, parameters, receptive field
/// from [`receptive_field`] over [`summary::rows`]), why each block is there, the run's
/// per-epoch table and the torchsummary table.
pub fn start_here(run_dir: &Path) -> Result<String> {
    let rows = summary::rows();
    let fields = receptive_field(&rows);
    let names = module_names(&rows);
    let mut h = String::from(
        "<section id=\"at-a-glance\"><h2><a class=\"h\" href=\"#at-a-glance\">The network at \
         a glance</a></h2><p>A 28×28 grey image goes in; ten log-probabilities, one per \
         digit, come out. The table lists every module in the order the forward pass runs \
         them (ReLU follows each 3×3 convolution but conv3 and conv6; it has no parameters and \
         no row, as in torchsummary). The <em>receptive field</em> is the side of the square of \
         input pixels that one output pixel of the layer can see, computed by \
         <a href=\"#cnn.receptive_field\"><code>receptive_field</code></a> \
         (<code>r[cnn.receptive_field]</code>) from each module's window and stride; the \
         <em>jump</em> is how far apart, in input pixels, two neighbouring output pixels' \
         fields start.</p><table class=\"layers\"><tr><th>#</th><th>module</th>\
         <th>output C×H×W</th><th>parameters</th><th>receptive field</th><th>jump</th></tr>",
    );
    for (k, ((r, f), name)) in rows.iter().zip(&fields).zip(&names).enumerate() {
        let shape: Vec<String> = r.shape.iter().map(|d| d.to_string()).collect();
        let _ = write!(
            h,
            "<tr><td>{}</td><td><code>{}</code></td><td>{}</td><td class=\"num\">{}</td>\
             <td class=\"num\">{}×{}</td><td class=\"num\">{}</td></tr>",
            k + 1,
            esc(name),
            shape.join("×"),
            summary::thousands(r.params),
            f.size,
            f.size,
            f.jump
        );
    }
    let total: usize = rows.iter().map(|r| r.params).sum();
    let _ = write!(
        h,
        "<tr><td></td><td><strong>total</strong></td><td></td><td class=\"num\"><strong>{}\
         </strong></td><td></td><td></td></tr></table>",
        summary::thousands(total)
    );
    h.push_str(WHY_HTML);

    let prov = provenance(run_dir);
    let _ = write!(
        h,
        "<h3 id=\"epochs\">Training, epoch by epoch</h3><p>From {prov}: its \
         <code>metrics.csv</code>. The learning rate is the one-cycle schedule's at the \
         epoch's last step; train loss and accuracy are averages over the epoch's batches in \
         train mode (dropout on, batch statistics, before each batch's update); test loss and \
         accuracy are after the epoch, in eval mode, on the 10,000 test digits; seconds are \
         wall-clock, evaluation included, on whatever machine ran it.</p>"
    );
    match read_metrics(run_dir)? {
        None => {
            let _ = write!(
                h,
                "<p class=\"error\">No <code>metrics.csv</code> in <code>{}</code>.</p>",
                esc(&shown_path(run_dir))
            );
        }
        Some(ms) => {
            h.push_str(
                "<table class=\"epochs\"><tr><th>epoch</th><th>lr</th><th>train loss</th>\
                 <th>train acc.</th><th>test loss</th><th>test acc.</th><th>seconds</th></tr>",
            );
            for m in &ms {
                let _ = write!(
                    h,
                    "<tr><td class=\"num\">{}</td><td class=\"num\">{:.5}</td>\
                     <td class=\"num\">{:.4}</td><td class=\"num\">{:.2} %</td>\
                     <td class=\"num\">{:.4}</td><td class=\"num\">{:.2} %</td>\
                     <td class=\"num\">{:.1}</td></tr>",
                    m.epoch, m.lr, m.train_loss, m.train_acc, m.test_loss, m.test_acc, m.seconds
                );
            }
            h.push_str("</table>");
            h.push_str(&curves_svg(&ms));
        }
    }
    let _ = write!(
        h,
        "<h3 id=\"torchsummary\">The torchsummary table</h3><p>What \
         <code>torchsummary.summary(model, (1, 28, 28))</code> prints for the source network, \
         reproduced by <code>gradspec mnist summary</code> from the same layer list as the \
         table above (<code>src/cnn/summary.rs</code>; it depends on no run).</p>\
         <pre class=\"summary\">{}</pre></section>",
        esc(&summary::summary())
    );
    Ok(h)
}

/// The run's curves drawn from its metrics.csv as two SVG charts (loss, accuracy per epoch),
/// with axis titles and 13-px labels at the column's width (the run's own `curves.png` is
/// 1200 px wide, and shrunk into the column its text would be about 6 px).
fn curves_svg(ms: &[EpochMetrics]) -> String {
    let panel = |title: &str,
                 ytitle: &str,
                 series: [(&str, &str, Vec<f64>); 2],
                 x0: f64|
     -> String {
        let (w, h, l, b, t, r) = (370.0, 260.0, 62.0, 44.0, 26.0, 12.0);
        let ys = series.iter().flat_map(|s| s.2.iter().copied());
        let (lo, hi) = ys.fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), y| {
            (a.min(y), b.max(y))
        });
        let (lo, hi) = if hi > lo {
            (lo, hi)
        } else {
            (lo - 1.0, hi + 1.0)
        };
        let n = ms.len().max(2) - 1;
        let px = |i: usize| x0 + l + (w - l - r) * i as f64 / n as f64;
        let py = |y: f64| t + (h - t - b) * (1.0 - (y - lo) / (hi - lo));
        let mut g = format!(
            "<text x=\"{}\" y=\"16\" text-anchor=\"middle\" font-weight=\"600\">{title}</text>\
             <line x1=\"{xa}\" y1=\"{t}\" x2=\"{xa}\" y2=\"{yb}\" stroke=\"#999\"/>\
             <line x1=\"{xa}\" y1=\"{yb}\" x2=\"{xr}\" y2=\"{yb}\" stroke=\"#999\"/>\
             <text x=\"{xm}\" y=\"{xt}\" text-anchor=\"middle\">epoch</text>\
             <text transform=\"translate({yx},{ym}) rotate(-90)\" text-anchor=\"middle\">{ytitle}</text>\
             <text x=\"{lx}\" y=\"{t}\" text-anchor=\"end\" dominant-baseline=\"central\">{hi:.4}</text>\
             <text x=\"{lx}\" y=\"{yb}\" text-anchor=\"end\" dominant-baseline=\"central\">{lo:.4}</text>",
            x0 + w / 2.0,
            xa = x0 + l,
            yb = h - b,
            xr = x0 + w - r,
            xm = x0 + (l + w - r) / 2.0,
            xt = h - 8.0,
            yx = x0 + 14.0,
            ym = (t + h - b) / 2.0,
            lx = x0 + l - 4.0,
        );
        for (i, m) in ms.iter().enumerate() {
            let _ = write!(
                g,
                "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">{}</text>",
                px(i),
                h - b + 16.0,
                m.epoch
            );
        }
        for (k, (name, colour, ys)) in series.iter().enumerate() {
            let pts: Vec<String> = ys
                .iter()
                .enumerate()
                .map(|(i, &y)| format!("{:.1},{:.1}", px(i), py(y)))
                .collect();
            let _ = write!(
                g,
                "<polyline fill=\"none\" stroke=\"{colour}\" stroke-width=\"2\" points=\"{}\"/>\
                 <text x=\"{}\" y=\"{}\" fill=\"{colour}\" text-anchor=\"end\">{name}</text>",
                pts.join(" "),
                x0 + w - r - 4.0,
                t + 16.0 + 16.0 * k as f64
            );
        }
        g
    };
    let col = |f: fn(&EpochMetrics) -> f64| ms.iter().map(f).collect::<Vec<f64>>();
    // Each panel: the train curve in orange, the test curve in blue.
    let train_test = |train, test| {
        [
            ("train", "#d95f02", col(train)),
            ("test", "#0b5cad", col(test)),
        ]
    };
    let loss = panel(
        "loss",
        "mean NLL",
        train_test(|m| m.train_loss, |m| m.test_loss),
        0.0,
    );
    let acc = panel(
        "accuracy",
        "accuracy (%)",
        train_test(|m| m.train_acc, |m| m.test_acc),
        380.0,
    );
    format!(
        "<figure class=\"curves\"><svg viewBox=\"0 0 750 260\" width=\"750\" height=\"260\" \
         font-family=\"sans-serif\" font-size=\"13\" role=\"img\" aria-label=\"loss and \
         accuracy per epoch\">{loss}{acc}</svg><figcaption>The table's numbers as curves: \
         loss and accuracy per epoch, train (orange) and test (blue).</figcaption></figure>"
    )
}

/// Why each block of the network is there (checked against `spec/cnn.md`'s table and
/// `src/cnn/net.rs`).
const WHY_HTML: &str = "<h3 id=\"why\">Why each block is there</h3><dl class=\"why\">\
<dt>conv → ReLU → BatchNorm → dropout (conv1, conv2, conv4, conv5)</dt><dd>A 3×3 convolution \
finds a local pattern wherever it occurs, and each one widens what a pixel sees by two steps \
(3, 5, then 10, 14). ReLU makes the stack non-linear. BatchNorm re-centres and re-scales every \
channel over the batch, so the next layer sees inputs of a steady scale whatever the weights \
before it did; that is what lets the schedule climb to a learning rate of 0.08.</dd>\
<dt>Dropout 0.05</dt><dd>In training it zeroes 5 % of each block's activations (and scales \
the rest by 1/0.95), a light regulariser: the network has only 16,562 parameters, the \
training images are already augmented (small rotations and crops), and a heavier rate would \
mostly slow learning. In eval mode it does nothing.</dd>\
<dt>The 1×1 squeeze after two 3×3s (conv3: 32 → 8, conv6: 32 → 16)</dt><dd>Two 3×3 \
convolutions build up 32 channels; a 1×1 convolution then mixes them into fewer, for \
8·32 + 8 = 264 and 16·32 + 16 = 528 parameters. The next 3×3 convolution reads 8 or 16 \
channels instead of 32, a quarter or half of the weights. A 1×1 sees one pixel, so it \
leaves the receptive field as it is (the table's 5 and 14 repeat).</dd>\
<dt>Max-pool right after the squeeze</dt><dd>Halving the maps after the 1×1 costs least (8 or \
16 channels to pool, not 32) and keeps the strongest response of each 2×2 patch. It doubles \
the jump, so every 3×3 after it widens the field by twice as much: 6 → 10 → 14 after the \
first pool, 16 → 24 after the second.</dd>\
<dt>No ReLU or BatchNorm after the 1×1s</dt><dd>As in the source network, conv3 and conv6 \
are a plain linear mixing of channels fed to the max-pool; the next block's ReLU and \
BatchNorm come after its own 3×3 convolution, which is where they normalise.</dd>\
<dt>GAP, then the linear head</dt><dd>conv7 leaves 32 maps of 2×2; the 2×2 average pool \
averages each into one number, which on a 2×2 map is global average pooling (GAP). Each of \
the 32 numbers now sees all 28×28 pixels. <code>Linear(32, 10)</code> turns them into ten \
scores for 330 parameters (flattening 32×2×2 instead would need 1,290), and log-softmax \
makes the scores log-probabilities for the NLL loss.</dd></dl>";

/// The worked example for test digit `index` (`pixels`, `label`) under `weights`; the charts
/// come from the run folder `run_dir` (curves.png, confusion.png, misclassified.png, when
/// present); `weights_name` is the weights' path as the page names it.
pub fn worked_example(
    weights: &[u8],
    index: usize,
    pixels: &[u8],
    label: u8,
    run_dir: &Path,
    weights_name: &str,
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
         network with the weights <code>{wn}</code> in eval mode (BatchNorm with its running statistics, no dropout). Each \
         figure shows one layer's maps, each map scaled to its own minimum (dark) and maximum \
         (yellow). The network predicts <strong id=\"worked-prediction\">{pred}</strong>.</p>",
        wn = esc(weights_name)
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

    let _ = write!(
        html,
        "<h3 id=\"training-run\">The training run</h3><p>The charts below are the files \
         <code>curves.png</code>, <code>confusion.png</code> and \
         <code>misclassified.png</code> of {}, copied as they are. The worked example above \
         used the weights <code>{}</code>.</p><div class=\"charts\">",
        provenance(run_dir),
        esc(weights_name)
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
            if file == "curves.png" {
                // 1200 px wide: shrunk into the column its text would be unreadable, so it is
                // linked at its natural size; the epoch table's curves are drawn above.
                let _ = write!(
                    html,
                    "<p class=\"cap\"><a href=\"{name}\">{file}</a>: {alt}, as the run drew \
                     it (opens at its natural size; the same numbers are drawn under \
                     <a href=\"#epochs\">the epoch table</a>).</p>"
                );
                continue;
            }
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
