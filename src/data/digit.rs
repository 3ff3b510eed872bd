//! A person's own digit, made to look like an MNIST digit: the preprocessing that turns a
//! photo, a scan, a PNG or a canvas drawing of any size and polarity into the 28×28 image the
//! network was trained on.
//!
//! The pipeline follows LeCun's description of how MNIST was made ("size normalized to fit in
//! a 20x20 pixel box while preserving their aspect ratio … anti-aliasing … centered in a 28x28
//! image by computing the center of mass of the pixels, and translating the image so as to
//! position this point at the center of the 28x28 field"), plus the steps a real picture needs
//! first. [`preprocess`] does, in order:
//!
//! 1. **Check the input** (never panics): width and height at least 1 and at most
//!    [`MAX_SIDE`] (16,384) each, and exactly `width × height` bytes.
//! 2. **Polarity.** MNIST is a light digit on a black background. The background is read from
//!    the *border* (every pixel of the outermost rows and columns): the image is inverted
//!    (`v ↦ 255 − v`) when more border pixels are light (≥ 128) than dark (≤ 127). On a tie
//!    the border's mean decides (inverted when it is above 127.5); an exact tie of both keeps
//!    the image as it is. Every later step works on the polarity-corrected image, so inverting
//!    the input gives the same output, except for that last, exactly balanced border.
//! 3. **Flatten the paper.** A photo's paper is lit unevenly (brighter on one side, a shadow
//!    towards a corner) and noisy. The background is modelled as a smooth surface, a quadratic
//!    `b(u, v) = c₀ + c₁u + c₂v + c₃u² + c₄v² + c₅uv` over the picture (`u`, `v` from −1 to 1),
//!    fitted by least squares to the border pixels, robustly: border pixels brighter than the
//!    fit by more than 3 noise levels (ink crossing the border) are left out and the fit is
//!    repeated ([`FIT_ROUNDS`] times). The noise level `σ` is 1.4826 × the median absolute
//!    residual of the kept border pixels (the standard deviation, for Gaussian noise). A flat
//!    border (every border pixel equal, as in any clean digit picture) gives the flat
//!    background exactly, `σ = 0`, and a picture narrower or shorter than 3 pixels uses the
//!    border's median. Each pixel's *contrast* is its value minus the background under it.
//! 4. **Levels.** The floor is `2σ` above the background (noise stays below it), the ink level
//!    `m` the largest contrast. When `m − 2σ` is less than [`MIN_CONTRAST`] (32 of 255) the
//!    image is blank. Otherwise every pixel is stretched linearly, floor ↦ 0, `m ↦ 255` (lower
//!    values become 0), rounded to a byte, so that grey, unevenly lit paper and a faint pencil
//!    line look like MNIST's black background and full-strength ink.
//! 5. **Find the digit's ink.** A pixel is *ink* when its stretched value is at least
//!    [`INK_THRESHOLD`] (48 of 255, about 19 %), and *strong ink* when it is also at least Otsu's
//!    threshold of the stretched image (the level that best splits its histogram in two,
//!    maximising the between-class variance). Ink pixels are grouped into 8-connected
//!    components; a component is kept when it holds strong ink (hysteresis: faint noise blobs
//!    hold none) and its area is at least 1/[`SPECK_DIVISOR`] of the largest kept one (specks
//!    are dropped). Ink of dropped components is erased. No component at all is the error
//!    "blank image, no digit found".
//! 6. **Count the digits.** Components at least a quarter of the largest's area and half its
//!    height are *major*; majors whose column ranges overlap belong to one digit. More than one
//!    digit side by side is reported in [`Reading::digits`] (the picture seems to hold several
//!    digits; the crop then holds them all).
//! 7. **Crop** to the bounding box of the kept components. Fainter pixels inside it (JPEG
//!    ringing, the outer edge of anti-aliasing) are kept.
//! 8. **Scale** the box to fit [`BOX`]×[`BOX`] (20×20) keeping its aspect ratio: the longer
//!    side becomes 20 pixels, the shorter `max(1, round(20 · short / long))`. Resampling is
//!    area averaging: each output pixel is the mean of the input area it covers, partial
//!    pixels weighted by the fraction covered (a box filter, separable, in f64). Shrinking
//!    anti-aliases; enlarging a small drawing blends only where an output pixel straddles
//!    two input pixels. Values are rounded to the nearest byte.
//! 9. **Centre** in the [`FIELD`]×[`FIELD`] (28×28) field by centre of mass: with pixel `i`
//!    covering `[i, i + 1)` (its centre at `i + 0.5`, so the field's centre is `(14, 14)`),
//!    the scaled box is shifted by whole pixels, `round(14 − c)` where `c` is its centre of
//!    mass along that axis, clamped so that the box stays inside the field. The output's
//!    centre of mass is then within half a pixel of `(14, 14)` on each axis, unless the clamp
//!    moved it (a lopsided digit whose mass sits near one end of its box).
//!
//! The result is bytes `0..=255`, white digit on black, like the IDX files; normalise it with
//! [`normalize_into`](super::normalize_into) exactly as for training. [`gray_from_rgba`] turns
//! RGBA pixels (a canvas's `ImageData`, a decoded PNG or JPEG) into the grayscale input, so the
//! command line (`gradspec mnist predict`) and a browser canvas share every step.
use crate::error::{Result, bail, ensure};

/// Side of the field MNIST digits sit in, and of the box they are scaled to fit.
pub const FIELD: usize = 28;
/// Side of the box the digit's bounding box is scaled to fit (its longer side becomes `BOX`).
pub const BOX: usize = 20;
/// The largest width or height accepted, in pixels (16,384, larger than any camera's picture
/// side today); larger images are refused with an error that says so.
pub const MAX_SIDE: usize = 16_384;
/// Smallest difference between the ink level and the background level (of 255) for an image
/// to hold a digit at all; below it the image is blank.
pub const MIN_CONTRAST: u8 = 32;
/// A pixel is ink, for the bounding box, when its contrast-stretched value is at least this
/// (of 255).
pub const INK_THRESHOLD: u8 = 48;

/// A grayscale image, row-major, values 0..=255, any size, any polarity.
#[derive(Clone, Copy, Debug)]
pub struct Gray<'a> {
    /// Pixels per row.
    pub width: usize,
    /// Rows.
    pub height: usize,
    /// `width × height` bytes, row after row, 0 = black.
    pub pixels: &'a [u8],
}

/// Checks a `width × height` image size and returns its pixel count.
fn check_size(width: usize, height: usize) -> Result<usize> {
    ensure!(
        width >= 1 && height >= 1,
        "image of {width}×{height} pixels: width and height must be at least 1"
    );
    ensure!(
        width <= MAX_SIDE && height <= MAX_SIDE,
        "image of {width}×{height} pixels is too large: at most {MAX_SIDE} pixels per side"
    );
    Ok(width * height)
}

/// Converts interleaved RGBA bytes (a canvas's ImageData, or a decoded PNG) to grayscale, alpha
/// composited over white.
///
/// Each pixel's luma is ITU-R BT.601, `Y = (299 R + 587 G + 114 B) / 1000` (the weights of
/// Pillow's `convert("L")`), then composited over a white page with straight (not
/// premultiplied) alpha, `Y·α/255 + 255·(1 − α/255)`, rounded to the nearest byte. A fully
/// transparent pixel is white, so strokes drawn on a transparent canvas read as dark ink on
/// light paper.
///
/// Errors: zero or too large a size (see [`MAX_SIDE`]), or `rgba` not `width × height × 4`
/// bytes.
pub fn gray_from_rgba(rgba: &[u8], width: usize, height: usize) -> Result<Vec<u8>> {
    let n = check_size(width, height)?;
    ensure!(
        rgba.len() / 4 == n && rgba.len().is_multiple_of(4),
        "RGBA buffer of {} bytes for a {width}×{height} image: expected {} (4 bytes per pixel)",
        rgba.len(),
        n * 4
    );
    Ok(rgba
        .chunks_exact(4)
        .map(|p| {
            let [r, g, b, a] = [p[0], p[1], p[2], p[3]].map(u32::from);
            // Luma times 1000, then over white: (y·a + 255·1000·(255 − a)) / (1000·255).
            let y1000 = 299 * r + 587 * g + 114 * b;
            let num = y1000 * a + 255_000 * (255 - a);
            let den = 255_000;
            ((num + den / 2) / den) as u8
        })
        .collect())
}

/// Step 2 of the module docs: whether the picture is dark ink on light paper (to be inverted),
/// read from its border.
fn dark_on_light(img: &Gray<'_>) -> bool {
    let mut hist = [0u64; 256];
    for_border(img.width, img.height, |x, y| {
        hist[img.pixels[y * img.width + x] as usize] += 1;
    });
    let n: u64 = hist.iter().sum();
    let light: u64 = hist[128..].iter().sum();
    let dark = n - light;
    match light.cmp(&dark) {
        std::cmp::Ordering::Greater => true,
        std::cmp::Ordering::Less => false,
        std::cmp::Ordering::Equal => {
            let sum: u64 = hist.iter().enumerate().map(|(v, &c)| v as u64 * c).sum();
            2 * sum > 255 * n
        }
    }
}

/// Calls `f(x, y)` once for every pixel of the outermost rows and columns.
fn for_border(w: usize, h: usize, mut f: impl FnMut(usize, usize)) {
    for x in 0..w {
        f(x, 0);
        if h > 1 {
            f(x, h - 1);
        }
    }
    for y in 1..h.saturating_sub(1) {
        f(0, y);
        if w > 1 {
            f(w - 1, y);
        }
    }
}

/// How many times the background fit leaves out the ink it found on the border and fits again.
pub const FIT_ROUNDS: usize = 3;
/// Components smaller than 1/`SPECK_DIVISOR` of the largest kept component are specks.
pub const SPECK_DIVISOR: usize = 20;

/// The paper's level under every pixel (step 3 of the module docs): flat, or a quadratic
/// surface in `u = 2x/(w − 1) − 1`, `v = 2y/(h − 1) − 1`.
#[derive(Clone, Copy, Debug)]
enum Background {
    Flat(f64),
    Quadratic([f64; 6]),
}

/// The quadratic basis `1, u, v, u², v², uv` at pixel `(x, y)` of a `w × h` picture.
fn basis(x: usize, y: usize, w: usize, h: usize) -> [f64; 6] {
    let u = 2.0 * x as f64 / (w - 1) as f64 - 1.0;
    let v = 2.0 * y as f64 / (h - 1) as f64 - 1.0;
    [1.0, u, v, u * u, v * v, u * v]
}

/// Median of `v` (the lower one for an even count); `v` is reordered. `0` when empty.
fn median(v: &mut [f64]) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    let k = (v.len() - 1) / 2;
    *v.select_nth_unstable_by(k, f64::total_cmp).1
}

/// Solves the 6×6 system `a·c = b` by Gaussian elimination with partial pivoting; `None` when
/// it is (nearly) singular.
fn solve6(mut a: [[f64; 6]; 6], mut b: [f64; 6]) -> Option<[f64; 6]> {
    let scale = a.iter().flatten().fold(0f64, |m, v| m.max(v.abs()));
    for col in 0..6 {
        let piv = (col..6).max_by(|&i, &j| a[i][col].abs().total_cmp(&a[j][col].abs()))?;
        if a[piv][col].abs() <= 1e-12 * scale {
            return None;
        }
        a.swap(col, piv);
        b.swap(col, piv);
        for r in col + 1..6 {
            let f = a[r][col] / a[col][col];
            let pivot_row = a[col];
            for (v, p) in a[r][col..].iter_mut().zip(&pivot_row[col..]) {
                *v -= f * p;
            }
            b[r] -= f * b[col];
        }
    }
    let mut c = [0f64; 6];
    for r in (0..6).rev() {
        // c[r] is still 0 here, so its term adds nothing.
        let s: f64 = (r..6).map(|k| a[r][k] * c[k]).sum();
        c[r] = (b[r] - s) / a[r][r];
    }
    c.iter().all(|v| v.is_finite()).then_some(c)
}

/// Step 3 of the module docs: the background under the polarity-corrected picture `c`, and the
/// noise level σ of its border.
fn background(c: &[u8], w: usize, h: usize) -> (Background, f64) {
    let mut border: Vec<(usize, usize, f64)> = Vec::with_capacity(2 * (w + h));
    for_border(w, h, |x, y| border.push((x, y, f64::from(c[y * w + x]))));
    let mut vals: Vec<f64> = border.iter().map(|p| p.2).collect();
    let med = median(&mut vals);
    if border.iter().all(|p| p.2 == med) {
        return (Background::Flat(med), 0.0);
    }
    let mad = |res: &mut Vec<f64>| 1.4826 * median(res);
    let mut abs: Vec<f64> = border.iter().map(|p| (p.2 - med).abs()).collect();
    let mut sigma = mad(&mut abs);
    if w.min(h) < 3 {
        return (Background::Flat(med), sigma);
    }
    let mut bg = Background::Flat(med);
    for _ in 0..FIT_ROUNDS {
        let at = |x, y| eval(bg, x, y, w, h);
        // Ink (brighter than the paper after the polarity correction) is left out.
        let cut = 3.0 * sigma + 1.0;
        let (mut a, mut b) = ([[0f64; 6]; 6], [0f64; 6]);
        for &(x, y, v) in &border {
            if v - at(x, y) > cut {
                continue;
            }
            let f = basis(x, y, w, h);
            for i in 0..6 {
                for j in 0..6 {
                    a[i][j] += f[i] * f[j];
                }
                b[i] += f[i] * v;
            }
        }
        let Some(coef) = solve6(a, b) else { break };
        let fit = Background::Quadratic(coef);
        let mut res: Vec<f64> = border
            .iter()
            .map(|&(x, y, v)| v - eval(fit, x, y, w, h))
            .filter(|r| *r <= cut)
            .map(f64::abs)
            .collect();
        if res.is_empty() {
            break;
        }
        bg = fit;
        sigma = mad(&mut res);
    }
    (bg, sigma)
}

/// The background's level at pixel `(x, y)`.
fn eval(bg: Background, x: usize, y: usize, w: usize, h: usize) -> f64 {
    match bg {
        Background::Flat(v) => v,
        Background::Quadratic(c) => {
            let f = basis(x, y, w, h);
            (0..6).map(|i| c[i] * f[i]).sum()
        }
    }
}

/// Otsu's threshold of a histogram: the smallest level `t` that maximises the between-class
/// variance of `{v < t}` and `{v ≥ t}`. `None` when every count sits in one bin.
fn otsu(hist: &[u64; 256]) -> Option<u8> {
    let n: u64 = hist.iter().sum();
    let total: f64 = hist
        .iter()
        .enumerate()
        .map(|(v, &c)| v as f64 * c as f64)
        .sum();
    let (mut n0, mut s0) = (0u64, 0f64);
    let mut best: Option<(f64, u8)> = None;
    for t in 1..256 {
        n0 += hist[t - 1];
        s0 += (t - 1) as f64 * hist[t - 1] as f64;
        let n1 = n - n0;
        if n0 == 0 || n1 == 0 {
            continue;
        }
        let (m0, m1) = (s0 / n0 as f64, (total - s0) / n1 as f64);
        let between = n0 as f64 * n1 as f64 * (m1 - m0) * (m1 - m0);
        if best.is_none_or(|(b, _)| between > b) {
            best = Some((between, t as u8));
        }
    }
    best.map(|(_, t)| t)
}

/// One 8-connected component of ink.
#[derive(Clone, Copy, Debug)]
struct Blob {
    area: usize,
    x0: usize,
    y0: usize,
    x1: usize,
    y1: usize,
    strong: bool,
}

/// Labels the 8-connected components of `ink` (a `w × h` mask): returns each pixel's label
/// (`u32::MAX` for no ink) and the components. `strong` marks the pixels of strong ink.
fn components(ink: &[bool], strong: &[bool], w: usize, h: usize) -> (Vec<u32>, Vec<Blob>) {
    let mut label = vec![u32::MAX; w * h];
    let mut blobs = Vec::new();
    let mut stack = Vec::new();
    for start in 0..w * h {
        if !ink[start] || label[start] != u32::MAX {
            continue;
        }
        let id = blobs.len() as u32;
        let (sx, sy) = (start % w, start / w);
        let mut b = Blob {
            area: 0,
            x0: sx,
            y0: sy,
            x1: sx,
            y1: sy,
            strong: false,
        };
        label[start] = id;
        stack.push(start);
        while let Some(i) = stack.pop() {
            let (x, y) = (i % w, i / w);
            b.area += 1;
            b.strong |= strong[i];
            (b.x0, b.y0, b.x1, b.y1) = (b.x0.min(x), b.y0.min(y), b.x1.max(x), b.y1.max(y));
            for ny in y.saturating_sub(1)..=(y + 1).min(h - 1) {
                for nx in x.saturating_sub(1)..=(x + 1).min(w - 1) {
                    let j = ny * w + nx;
                    if ink[j] && label[j] == u32::MAX {
                        label[j] = id;
                        stack.push(j);
                    }
                }
            }
        }
        blobs.push(b);
    }
    (label, blobs)
}

/// How many digits stand side by side among the kept components (step 6 of the module docs).
fn count_digits(kept: &[Blob]) -> usize {
    let Some(big) = kept.iter().max_by_key(|b| b.area) else {
        return 0;
    };
    let tall = big.y1 - big.y0 + 1;
    let mut majors: Vec<(usize, usize)> = kept
        .iter()
        .filter(|b| 4 * b.area >= big.area && 2 * (b.y1 - b.y0 + 1) >= tall)
        .map(|b| (b.x0, b.x1))
        .collect();
    majors.sort_unstable();
    let mut groups = 0;
    let mut reach = None;
    for (x0, x1) in majors {
        match reach {
            Some(r) if x0 <= r => reach = Some(r.max(x1)),
            _ => {
                groups += 1;
                reach = Some(x1);
            }
        }
    }
    groups
}

/// The area-averaging taps of a resampling from `src` pixels to `dst` pixels: for every output
/// pixel, the input pixels it covers and their weights (summing to 1).
fn taps(src: usize, dst: usize) -> Vec<Vec<(usize, f64)>> {
    let scale = src as f64 / dst as f64;
    (0..dst)
        .map(|i| {
            let (a, b) = (i as f64 * scale, (i + 1) as f64 * scale);
            let first = a.floor() as usize;
            let last = (b.ceil() as usize).min(src);
            // Every `x` here overlaps `[a, b)` by a positive length: `x < b` (as `x < ⌈b⌉`) and
            // `x + 1 > a` (as `x ≥ ⌊a⌋`), and a difference of two different floats is never 0.
            (first..last)
                .map(|x| {
                    let overlap = b.min(x as f64 + 1.0) - a.max(x as f64);
                    (x, overlap / scale)
                })
                .collect()
        })
        .collect()
}

/// What [`read`] found in a picture.
#[derive(Clone, Debug)]
pub struct Reading {
    /// The 28×28 image the network sees, bytes 0..=255, white digit on black.
    pub field: [u8; FIELD * FIELD],
    /// The crop in the input picture, `(x0, y0, x1, y1)`, inclusive.
    pub crop: (usize, usize, usize, usize),
    /// How many digits the ink seems to hold side by side (step 6 of the module docs): 1 for a
    /// single digit; more means the picture seems to hold several and the crop holds them all.
    pub digits: usize,
}

/// MNIST's own preprocessing: returns the 28×28 image as bytes 0..=255 (white digit on black,
/// like the IDX files). The same as [`read`]'s [`Reading::field`].
///
/// Errors: those of [`read`].
pub fn preprocess(img: Gray<'_>) -> Result<[u8; FIELD * FIELD]> {
    read(img).map(|r| r.field)
}

/// Reads a picture of one digit: the 28×28 image the network sees, the crop, and how many
/// digits the ink seems to hold.
///
/// The steps (checks, polarity from the border, the background surface fitted to the border
/// and subtracted, the level stretch above the noise, the digit's connected ink by hysteresis
/// between [`INK_THRESHOLD`] and Otsu's threshold with specks dropped, area-averaged scaling
/// into [`BOX`]×[`BOX`], whole-pixel centring by centre of mass in [`FIELD`]×[`FIELD`]) and
/// their rules are in the [module docs](self).
///
/// Errors, never a panic: zero or too large a size ([`MAX_SIDE`]), a buffer that is not
/// `width × height` bytes, "blank image, no digit found" (less contrast than [`MIN_CONTRAST`],
/// or no pixel reaching the ink threshold), and "ink too sparse" when every pixel of the
/// scaled digit rounds to 0 (a few scattered dots over a large area).
pub fn read(img: Gray<'_>) -> Result<Reading> {
    let (w, h) = (img.width, img.height);
    let n = check_size(w, h)?;
    ensure!(
        img.pixels.len() == n,
        "grayscale buffer of {} bytes for a {w}×{h} image: expected {n} (one byte per pixel)",
        img.pixels.len()
    );
    // Step 2: polarity.
    let corrected: Vec<u8> = if dark_on_light(&img) {
        img.pixels.iter().map(|&v| 255 - v).collect()
    } else {
        img.pixels.to_vec()
    };
    // Steps 3 and 4: contrast over the background, stretched above the noise floor.
    let (bg, sigma) = background(&corrected, w, h);
    let mut contrast = vec![0f32; n];
    for (y, (row, out)) in corrected
        .chunks_exact(w)
        .zip(contrast.chunks_exact_mut(w))
        .enumerate()
    {
        for (x, (&v, o)) in row.iter().zip(out.iter_mut()).enumerate() {
            *o = (f64::from(v) - eval(bg, x, y, w, h)) as f32;
        }
    }
    let floor = (2.0 * sigma) as f32;
    let top = contrast.iter().copied().fold(f32::MIN, f32::max);
    if top - floor < f32::from(MIN_CONTRAST) {
        bail!("blank image, no digit found (no ink stands out from the background)");
    }
    let range = top - floor;
    let stretched: Vec<u8> = contrast
        .iter()
        .map(|&d| ((d - floor) / range * 255.0).round().clamp(0.0, 255.0) as u8)
        .collect();
    drop(contrast);

    // Step 5: the digit's ink, by hysteresis, without specks.
    let mut hist = [0u64; 256];
    for &v in &stretched {
        hist[v as usize] += 1;
    }
    let strong_at = otsu(&hist).unwrap_or(255).max(INK_THRESHOLD);
    let ink: Vec<bool> = stretched.iter().map(|&v| v >= INK_THRESHOLD).collect();
    let strong: Vec<bool> = stretched.iter().map(|&v| v >= strong_at).collect();
    let (label, blobs) = components(&ink, &strong, w, h);
    drop((ink, strong));
    let largest = blobs
        .iter()
        .filter(|b| b.strong)
        .map(|b| b.area)
        .max()
        .unwrap_or(0);
    ensure!(
        largest > 0,
        "blank image, no digit found (no pixel reaches the ink threshold)"
    );
    let keep: Vec<bool> = blobs
        .iter()
        .map(|b| b.strong && b.area * SPECK_DIVISOR >= largest)
        .collect();
    let kept: Vec<Blob> = blobs
        .iter()
        .zip(&keep)
        .filter(|(_, k)| **k)
        .map(|(b, _)| *b)
        .collect();
    let digits = count_digits(&kept);
    // Step 7: the crop; ink of dropped components is erased.
    let (mut x0, mut y0, mut x1, mut y1) = (usize::MAX, usize::MAX, 0, 0);
    for b in &kept {
        (x0, y0, x1, y1) = (x0.min(b.x0), y0.min(b.y0), x1.max(b.x1), y1.max(b.y1));
    }
    let value = |i: usize| match label[i] {
        u32::MAX => stretched[i],
        l if keep[l as usize] => stretched[i],
        _ => 0,
    };
    let (bw, bh) = (x1 - x0 + 1, y1 - y0 + 1);

    // Step 5: scale to fit BOX × BOX, area averaging.
    let fit = |short: usize, long: usize| {
        ((BOX as f64 * short as f64 / long as f64).round() as usize).clamp(1, BOX)
    };
    let (tw, th) = if bw >= bh {
        (BOX, fit(bh, bw))
    } else {
        (fit(bw, bh), BOX)
    };
    let hx = taps(bw, tw);
    let vy = taps(bh, th);
    // Horizontal pass: every cropped row to `tw` values.
    let mut rows = vec![0f64; tw * bh];
    for (y, out) in rows.chunks_exact_mut(tw).enumerate() {
        let row = (y0 + y) * w + x0;
        for (o, t) in out.iter_mut().zip(&hx) {
            *o = t
                .iter()
                .map(|&(x, wt)| f64::from(value(row + x)) * wt)
                .sum();
        }
    }
    // Vertical pass, rounded to bytes.
    let mut boxed = vec![0u8; tw * th];
    for (j, out) in boxed.chunks_exact_mut(tw).enumerate() {
        for (i, o) in out.iter_mut().enumerate() {
            let v: f64 = vy[j].iter().map(|&(y, wt)| rows[y * tw + i] * wt).sum();
            *o = v.round().clamp(0.0, 255.0) as u8;
        }
    }

    // Step 6: centre of mass to the centre of the field, whole pixels, box kept inside.
    let (mut mass, mut mx, mut my) = (0f64, 0f64, 0f64);
    for (j, row) in boxed.chunks_exact(tw).enumerate() {
        for (i, &v) in row.iter().enumerate() {
            let v = f64::from(v);
            mass += v;
            mx += v * (i as f64 + 0.5);
            my += v * (j as f64 + 0.5);
        }
    }
    ensure!(
        boxed.iter().any(|&v| v > 0),
        "blank image, no digit found (the ink is too sparse to survive scaling to {BOX}×{BOX})"
    );
    let half = FIELD as f64 / 2.0;
    let place = |c: f64, size: usize| {
        let max = (FIELD - size) as f64;
        (half - c / mass).round().clamp(0.0, max) as usize
    };
    let (ox, oy) = (place(mx, tw), place(my, th));
    let mut field = [0u8; FIELD * FIELD];
    for (j, row) in boxed.chunks_exact(tw).enumerate() {
        let start = (oy + j) * FIELD + ox;
        field[start..start + tw].copy_from_slice(row);
    }
    Ok(Reading {
        field,
        crop: (x0, y0, x1, y1),
        digits,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// [`read`] of a `w × h` picture.
    fn read_wh(w: usize, h: usize, pixels: &[u8]) -> Result<Reading> {
        read(Gray {
            width: w,
            height: h,
            pixels,
        })
    }

    #[test]
    fn taps_cover_every_input_pixel_once() {
        for (src, dst) in [(1, 20), (3, 20), (20, 20), (37, 20), (1000, 7), (5, 3)] {
            let t = taps(src, dst);
            let mut cover = vec![0f64; src];
            for out in &t {
                let s: f64 = out.iter().map(|&(_, w)| w).sum();
                assert!((s - 1.0).abs() < 1e-12, "{src}->{dst}: weights sum to {s}");
                for &(x, w) in out {
                    cover[x] += w * src as f64 / dst as f64;
                }
            }
            for c in cover {
                assert!((c - 1.0).abs() < 1e-9, "{src}->{dst}: coverage {c}");
            }
        }
    }

    #[test]
    fn gray_from_rgba_composites_over_white() {
        let px = [
            0, 0, 0, 255, // opaque black
            0, 0, 0, 0, // transparent: white
            255, 255, 255, 255, // opaque white
            0, 0, 0, 128, // half-transparent black
            255, 0, 0, 255, // red: 0.299 · 255
            2, 0, 0, 255, // 0.598 rounds up to 1
        ];
        assert_eq!(
            gray_from_rgba(&px, 6, 1).unwrap(),
            vec![0, 255, 255, 127, 76, 1]
        );
        assert!(gray_from_rgba(&px, 5, 1).is_err());
        assert!(gray_from_rgba(&px[..23], 6, 1).is_err());
        assert!(gray_from_rgba(&[], 0, 0).is_err());
    }

    /// Every pixel of the outermost rows and columns, each exactly once, for thin and square
    /// shapes alike.
    #[test]
    fn for_border_visits_each_border_pixel_once() {
        for (w, h) in [(1, 1), (3, 1), (1, 3), (2, 2), (4, 3), (5, 5)] {
            let mut seen = vec![0u32; w * h];
            for_border(w, h, |x, y| seen[y * w + x] += 1);
            for y in 0..h {
                for x in 0..w {
                    let edge = x == 0 || y == 0 || x == w - 1 || y == h - 1;
                    assert_eq!(seen[y * w + x], u32::from(edge), "{w}×{h} at ({x}, {y})");
                }
            }
        }
    }

    /// The border's majority decides the polarity; when light and dark pixels tie, its mean
    /// does (above 127.5: light paper), and a mean of exactly 127.5 is not light.
    #[test]
    fn dark_on_light_reads_the_border_and_breaks_ties_by_its_mean() {
        let gray = |pixels: &[u8]| {
            dark_on_light(&Gray {
                width: 4,
                height: 3,
                pixels,
            })
        };
        // The top row dark, the rest of the border light (the middle row's inside is dark,
        // and is not border).
        assert!(gray(&[0, 0, 0, 0, 255, 0, 0, 255, 255, 255, 255, 255]));
        assert!(!gray(&[255, 255, 255, 255, 0, 255, 255, 0, 0, 0, 0, 0]));
        // Ties: five light and five dark border pixels.
        let tie = |dark: u8, light: u8| {
            gray(&[
                dark, dark, dark, dark, dark, 0, 0, light, light, light, light, light,
            ])
        };
        assert!(tie(100, 200), "mean 150");
        assert!(!tie(0, 140), "mean 70");
        assert!(!tie(0, 255), "mean 127.5");
        assert!(tie(1, 255), "mean 128");
    }

    /// A border that lies on a quadratic is fitted exactly, inside as well as on the border,
    /// with no noise left, and with the coefficients of the documented basis; a flat border
    /// stays flat.
    #[test]
    fn a_quadratic_background_is_fitted_exactly() {
        let (w, h) = (9, 9);
        // 120 + 40u + 20v + 16u² + 16v² + 16uv with u = (x − 4)/4, v = (y − 4)/4: integers.
        let level = |x: usize, y: usize| {
            let (a, b) = (x as f64 - 4.0, y as f64 - 4.0);
            120.0 + 10.0 * a + 5.0 * b + a * a + b * b + a * b
        };
        let c: Vec<u8> = (0..w * h).map(|k| level(k % w, k / w) as u8).collect();
        let (bg, sigma) = background(&c, w, h);
        // In the basis `1, u, v, u², v², uv` with u, v running from −1 to 1 across the picture
        // (any other scaling of u and v fits the same surface with other coefficients).
        let Background::Quadratic(coef) = bg else {
            panic!("{bg:?}")
        };
        for (c, want) in coef.iter().zip([120.0, 40.0, 20.0, 16.0, 16.0, 16.0]) {
            assert!((c - want).abs() < 1e-9, "{coef:?}");
        }
        assert!(sigma.abs() < 1e-9, "σ = {sigma}");
        for y in 0..h {
            for x in 0..w {
                let e = eval(bg, x, y, w, h);
                assert!((e - level(x, y)).abs() < 1e-9, "({x}, {y}): {e}");
            }
        }
        let (bg, sigma) = background(&[77; 81], w, h);
        assert!(matches!(bg, Background::Flat(v) if v == 77.0) && sigma == 0.0);
    }

    /// The lower median for an even count; `0` for none.
    #[test]
    fn median_is_the_lower_middle() {
        for (v, m) in [
            (&[3.0, 1.0, 2.0][..], 2.0),
            (&[4.0, 1.0, 3.0, 2.0][..], 2.0),
            (&[5.0][..], 5.0),
            (&[][..], 0.0),
        ] {
            assert_eq!(median(&mut v.to_vec()), m, "{v:?}");
        }
    }

    /// A pivot at or below 1e-12 of the matrix's largest entry counts as singular; above, the
    /// system is solved.
    #[test]
    fn solve6_refuses_a_pivot_below_1e_minus_12_of_the_scale() {
        let diag = |last: f64| {
            let mut a = [[0.0; 6]; 6];
            for (i, d) in [1e6, 1.0, 1.0, 1.0, 1.0, last].into_iter().enumerate() {
                a[i][i] = d;
            }
            a
        };
        let b = [1e6, 2.0, 3.0, 4.0, 5.0, 6e-5];
        assert_eq!(solve6(diag(1e-8), b), None);
        let c = solve6(diag(1e-5), b).unwrap();
        for (c, want) in c.iter().zip([1.0, 2.0, 3.0, 4.0, 5.0, 6.0]) {
            assert!((c - want).abs() < 1e-9, "{c}");
        }
    }

    /// Narrower than 3 pixels there is no quadratic to fit: the background is the border's
    /// median, and σ is 1.4826 times the median absolute deviation from it. From 3 by 3 on, a
    /// plane is fitted.
    #[test]
    fn a_thin_picture_has_a_flat_background_and_a_3_by_5_one_is_fitted() {
        let (bg, sigma) = background(&[10, 20, 30, 40], 2, 2);
        assert!(matches!(bg, Background::Flat(v) if v == 20.0), "{bg:?}");
        assert!((sigma - 14.826).abs() < 1e-12, "{sigma}");
        // 110 + 20u + 10v on 3 × 5 (u = x − 1, v = (y − 2)/2), and transposed.
        let c: Vec<u8> = (0..15)
            .map(|k| (80 + 20 * (k % 3) + 5 * (k / 3)) as u8)
            .collect();
        for (w, h) in [(3, 5), (5, 3)] {
            let c: Vec<u8> = if w == 3 {
                c.clone()
            } else {
                (0..15).map(|k| c[(k % 5) * 3 + k / 5]).collect()
            };
            let (bg, _) = background(&c, w, h);
            let Background::Quadratic(coef) = bg else {
                panic!("{w}×{h}: {bg:?}")
            };
            let want = if w == 3 {
                [110.0, 20.0, 10.0]
            } else {
                [110.0, 10.0, 20.0]
            };
            for (c, want) in coef.iter().zip(want.iter().chain(&[0.0; 3])) {
                assert!((c - want).abs() < 1e-9, "{w}×{h}: {coef:?}");
            }
        }
    }

    /// Ink on the border is left out of the fit: a border pixel brighter than the background by
    /// more than the cut `3σ + 1` is ignored, and one exactly at the cut is kept. A 9 × 9 border
    /// of 100s has σ = 0, so the cut is 1: the 101 at (4, 0) stays in the fit and the 102 at
    /// (0, 4) does not. The result is the least-squares quadratic through the other 31 border
    /// pixels, which the fit's later rounds keep (its residuals stay under 1, the 102's near 2).
    #[test]
    fn ink_on_the_border_beyond_the_cut_is_left_out_of_the_fit() {
        let (w, h) = (9, 9);
        let mut c = vec![100u8; w * h];
        c[4] = 101;
        c[4 * w] = 102;
        let (bg, sigma) = background(&c, w, h);
        let Background::Quadratic(coef) = bg else {
            panic!("{bg:?}")
        };
        let (mut a, mut b) = ([[0f64; 6]; 6], [0f64; 6]);
        for_border(w, h, |x, y| {
            let v = f64::from(c[y * w + x]);
            if v == 102.0 {
                return;
            }
            let f = basis(x, y, w, h);
            for i in 0..6 {
                for j in 0..6 {
                    a[i][j] += f[i] * f[j];
                }
                b[i] += f[i] * v;
            }
        });
        let want = solve6(a, b).unwrap();
        // The 101 pulls the top edge up: v's coefficient is negative (v = −1 on the top row).
        assert!(want[2] < -0.01, "{want:?}");
        for (c, want) in coef.iter().zip(want) {
            assert!((c - want).abs() < 1e-9, "{coef:?} against {want}");
        }
        assert!(sigma < 0.5, "σ = {sigma}");
    }

    /// Otsu's threshold against its definition, written out directly: for every level `t`, the
    /// two classes' counts and sums are added up from scratch and `n0·n1·(m1 − m0)²` (the
    /// between-class variance times n², the same order for every `t`) is compared; the smallest
    /// `t` of the maximum wins. The sums are of integers below 2⁵³, so both computations give
    /// the same bits and a tie is a tie in both. Histograms: two spikes (every `t` between them
    /// ties, so the smallest wins), three spikes, one bin (`None`), and 200 pseudo-random ones.
    #[test]
    fn otsu_is_the_smallest_level_of_the_largest_between_class_variance() {
        let direct = |hist: &[u64; 256]| {
            let mut best: Option<(f64, u8)> = None;
            for t in 1..256 {
                let (mut n0, mut s0, mut n1, mut s1) = (0u64, 0f64, 0u64, 0f64);
                for (v, &c) in hist.iter().enumerate() {
                    if v < t {
                        (n0, s0) = (n0 + c, s0 + v as f64 * c as f64);
                    } else {
                        (n1, s1) = (n1 + c, s1 + v as f64 * c as f64);
                    }
                }
                if n0 == 0 || n1 == 0 {
                    continue;
                }
                let d = s1 / n1 as f64 - s0 / n0 as f64;
                let between = n0 as f64 * n1 as f64 * d * d;
                if best.is_none_or(|(b, _)| between > b) {
                    best = Some((between, t as u8));
                }
            }
            best.map(|(_, t)| t)
        };
        let spikes = |s: &[(usize, u64)]| {
            let mut h = [0u64; 256];
            for &(v, c) in s {
                h[v] = c;
            }
            h
        };
        assert_eq!(otsu(&spikes(&[(10, 5), (200, 3)])), Some(11));
        assert_eq!(otsu(&spikes(&[(0, 1), (255, 1)])), Some(1));
        assert_eq!(otsu(&spikes(&[(0, 4), (100, 2), (255, 4)])), Some(101));
        assert_eq!(otsu(&spikes(&[(0, 2), (155, 2), (255, 6)])), Some(1));
        assert_eq!(otsu(&spikes(&[(37, 9)])), None);
        assert_eq!(otsu(&[0; 256]), None);
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        for k in 0..200 {
            let mut h = [0u64; 256];
            for c in &mut h {
                state = state
                    .wrapping_mul(6_364_136_223_846_793_005)
                    .wrapping_add(1);
                // Sparse: about one bin in four holds up to 1,000 pixels.
                let r = state >> 33;
                *c = if r.is_multiple_of(4) {
                    (r >> 2) % 1000
                } else {
                    0
                };
            }
            assert_eq!(otsu(&h), direct(&h), "histogram {k}");
        }
    }

    /// Components are 8-connected (a diagonal step joins), labelled in scan order, with their
    /// area, inclusive bounding box, and whether any pixel is strong ink. Non-ink pixels get
    /// `u32::MAX`.
    #[test]
    fn components_are_8_connected_with_area_bounds_and_strength() {
        // 6 × 4:        labels:
        //   # . . . # #   0 . . . 1 1
        //   . # . . . #   . 0 . . . 1
        //   . . # . . .   . . 0 . . .
        //   # . . . # #   2 . . . 3 3
        let pic = ["#...##", ".#...#", "..#...", "#...##"];
        let (w, h) = (6, 4);
        let ink: Vec<bool> = pic
            .iter()
            .flat_map(|r| r.bytes().map(|b| b == b'#'))
            .collect();
        let mut strong = vec![false; w * h];
        strong[2 * w + 2] = true; // the diagonal's last pixel
        strong[3 * w + 5] = true; // the bottom right
        let (label, blobs) = components(&ink, &strong, w, h);
        let m = u32::MAX;
        #[rustfmt::skip]
        let want = [
            0, m, m, m, 1, 1,
            m, 0, m, m, m, 1,
            m, m, 0, m, m, m,
            2, m, m, m, 3, 3,
        ];
        assert_eq!(label, want);
        let got: Vec<_> = blobs
            .iter()
            .map(|b| (b.area, b.x0, b.y0, b.x1, b.y1, b.strong))
            .collect();
        assert_eq!(
            got,
            [
                (3, 0, 0, 2, 2, true),
                (3, 4, 0, 5, 1, false),
                (1, 0, 3, 0, 3, false),
                (2, 4, 3, 5, 3, true),
            ]
        );
        // A component that reaches the right edge and wraps nothing onto the next row.
        let ink = [false, false, true, true, false, false];
        let (label, blobs) = components(&ink, &[false; 6], 3, 2);
        assert_eq!(label, [m, m, 0, 1, m, m]);
        assert_eq!(blobs.len(), 2);
    }

    /// Digits side by side: the kept components at least ¼ the largest's area and ½ its height
    /// are grouped by overlapping column ranges; each group is a digit.
    #[test]
    fn count_digits_groups_the_major_components_by_columns() {
        let blob = |area, x0, y0, x1, y1| Blob {
            area,
            x0,
            y0,
            x1,
            y1,
            strong: true,
        };
        assert_eq!(count_digits(&[]), 0);
        let big = blob(100, 0, 0, 9, 19); // 20 tall
        assert_eq!(count_digits(&[big]), 1);
        // Side by side, each major: 2. Touching columns (x0 = the reach) join: 1.
        assert_eq!(count_digits(&[big, blob(25, 12, 0, 15, 9)]), 2);
        assert_eq!(count_digits(&[blob(25, 9, 0, 15, 9), big]), 1);
        assert_eq!(count_digits(&[big, blob(25, 10, 0, 15, 9)]), 2);
        // Just under a quarter of the area, or just under half the height: not a digit.
        assert_eq!(count_digits(&[big, blob(24, 12, 0, 15, 9)]), 1);
        assert_eq!(count_digits(&[big, blob(25, 12, 0, 15, 8)]), 1);
        // The height bar is half the largest's height, measured from its top: 21 rows from
        // row 10, so 11 rows are a digit and 10 are not.
        let low = blob(100, 0, 10, 9, 30);
        assert_eq!(count_digits(&[low, blob(25, 12, 0, 15, 10)]), 2);
        assert_eq!(count_digits(&[low, blob(25, 12, 0, 15, 9)]), 1);
        // Every component's height is its own rows, wherever it starts: 5 rows from row 5.
        assert_eq!(count_digits(&[low, blob(25, 12, 5, 15, 9)]), 1);
        // A group's reach is its widest member's right edge, not the last one's.
        let wide = blob(100, 0, 0, 30, 19);
        assert_eq!(
            count_digits(&[wide, blob(30, 2, 0, 5, 19), blob(30, 20, 0, 25, 19)]),
            1
        );
        assert_eq!(count_digits(&[wide, blob(30, 32, 0, 35, 19)]), 2);
        // The largest by area sets the bar, wherever it is in the list.
        let small = blob(30, 0, 0, 3, 19);
        assert_eq!(
            count_digits(&[small, blob(30, 10, 0, 13, 19), blob(200, 20, 0, 29, 19)]),
            1
        );
    }

    /// A 24 × 24 picture, black with a 20 × 20 block of ink 200 holding one pixel of 100: the
    /// border is flat (σ = 0), so the noise floor `2σ` is 0 and the stretch maps 200 to 255 and
    /// 100 to 127.5, rounded to 128. The crop is the block and already 20 × 20, so the
    /// resampling copies it, and the centre of mass puts it at column and row 4 of the field.
    #[test]
    fn read_stretches_above_the_noise_floor_crops_and_centres() {
        let (w, h) = (24, 24);
        let mut px = vec![0u8; w * h];
        for y in 2..22 {
            px[y * w + 2..y * w + 22].fill(200);
        }
        px[12 * w + 12] = 100;
        let r = read_wh(w, h, &px).unwrap();
        assert_eq!((r.crop, r.digits), ((2, 2, 21, 21), 1));
        let mut want = [0u8; FIELD * FIELD];
        for y in 4..24 {
            want[y * FIELD + 4..y * FIELD + 24].fill(255);
        }
        want[14 * FIELD + 14] = 128;
        assert_eq!(r.field, want);
    }

    /// The contrast test: ink exactly [`MIN_CONTRAST`] above a flat background is a digit, one
    /// level less is a blank picture.
    #[test]
    fn ink_of_exactly_the_minimum_contrast_is_read() {
        let picture = |ink: u8| {
            let mut px = vec![10u8; 8 * 8];
            for y in 2..6 {
                px[y * 8 + 2..y * 8 + 6].fill(10 + ink);
            }
            px
        };
        let at = |px: &[u8]| read_wh(8, 8, px);
        assert!(at(&picture(MIN_CONTRAST)).is_ok());
        let err = at(&picture(MIN_CONTRAST - 1)).unwrap_err().to_string();
        assert!(err.contains("no ink stands out"), "{err}");
        // On a noisy border (10, 13, 16 in turn, so σ is a few levels) the contrast is counted
        // above the noise floor 2σ, not from the background: ink 30 over it is then too little
        // (counted from the background, or with the floor added, it would pass).
        let mut px: Vec<u8> = (0..64).map(|k| [10, 13, 16][k % 3]).collect();
        for y in 2..6 {
            px[y * 8 + 2..y * 8 + 6].fill(43);
        }
        let err = at(&px).unwrap_err().to_string();
        assert!(err.contains("no ink stands out"), "{err}");
        // Above the floor the stretch runs to the brightest ink: it becomes 255 on the same noisy
        // paper (a 20 × 20 block of 200 in 24 × 24, which the resampling copies).
        let mut px: Vec<u8> = (0..24 * 24).map(|k| [10, 13, 16][k % 3]).collect();
        for y in 2..22 {
            px[y * 24 + 2..y * 24 + 22].fill(200);
        }
        let r = read_wh(24, 24, &px).unwrap();
        assert_eq!(r.crop, (2, 2, 21, 21));
        assert_eq!(r.field.iter().max(), Some(&255));
        // A pixel of 100 in the block is stretched by step 4's formula, from the floor up:
        // round((d − 2σ) / (top − 2σ) · 255), with d its contrast over the fitted background.
        px[12 * 24 + 12] = 100;
        let (bg, sigma) = background(&px, 24, 24);
        let d = |x: usize, y: usize| (f64::from(px[y * 24 + x]) - eval(bg, x, y, 24, 24)) as f32;
        let top = (0..24 * 24)
            .map(|k| d(k % 24, k / 24))
            .fold(f32::MIN, f32::max);
        let floor = (2.0 * sigma) as f32;
        let want = ((d(12, 12) - floor) / (top - floor) * 255.0).round() as u8;
        assert!((60..200).contains(&want), "{want}");
        let r = read_wh(24, 24, &px).unwrap();
        let least = r.field.iter().copied().filter(|&v| v > 0).min();
        assert_eq!(least, Some(want));
    }

    /// Step 5's components: a 10 × 20 stroke of 200 is kept; a separate 4 × 4 patch of faint
    /// ink (60: above [`INK_THRESHOLD`] once stretched, below Otsu's threshold, so weak) and a
    /// single bright pixel (strong, but a speck: 1 pixel against 1/[`SPECK_DIVISOR`] of 200)
    /// are dropped, so the crop is the stroke alone.
    #[test]
    fn weak_components_and_specks_are_dropped_from_the_crop() {
        let w = 28;
        let mut px = vec![0u8; w * w];
        for y in 2..22 {
            px[y * w + 2..y * w + 12].fill(200);
        }
        for y in 20..24 {
            px[y * w + 20..y * w + 24].fill(60);
        }
        px[5 * w + 20] = 200;
        let r = read_wh(w, w, &px).unwrap();
        assert_eq!((r.crop, r.digits), ((2, 2, 11, 21), 1));
        // Ink of a dropped component inside the crop is erased: an L-shaped stroke with the
        // faint patch in the crook reads exactly as the stroke alone.
        let mut stroke = vec![0u8; w * w];
        for y in 2..22 {
            stroke[y * w + 2..y * w + 5].fill(200);
        }
        for y in 19..22 {
            stroke[y * w + 2..y * w + 12].fill(200);
        }
        let mut with_patch = stroke.clone();
        for y in 6..10 {
            with_patch[y * w + 7..y * w + 11].fill(60);
        }
        let [a, b] = [&stroke, &with_patch].map(|px| read_wh(w, w, px).unwrap());
        assert_eq!((b.crop, b.field), (a.crop, a.field));
    }
}
