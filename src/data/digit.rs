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
//!    the image as it is. Inverting the input therefore gives the same output, except for that
//!    last, exactly balanced border.
//! 3. **Levels.** The background level `b` is the median of the (polarity-corrected) border,
//!    the ink level `m` the largest pixel value. When `m − b` is less than [`MIN_CONTRAST`]
//!    (32 of 255) the image is blank. Otherwise every pixel is stretched linearly, `b ↦ 0`,
//!    `m ↦ 255` (values below `b` become 0), so that grey paper and a faint pencil line
//!    look like MNIST's black background and full-strength ink.
//! 4. **Crop** to the bounding box of the *ink*: stretched pixels of at least
//!    [`INK_THRESHOLD`] (48 of 255, about 19 %). Fainter pixels — JPEG ringing, paper texture,
//!    the outer edge of anti-aliasing — do not grow the box (but those inside it are kept).
//!    No ink at all is the error "blank image, no digit found".
//! 5. **Scale** the box to fit [`BOX`]×[`BOX`] (20×20) keeping its aspect ratio: the longer
//!    side becomes 20 pixels, the shorter `max(1, round(20 · short / long))`. Resampling is
//!    area averaging: each output pixel is the mean of the input area it covers, partial
//!    pixels weighted by the fraction covered (a box filter, separable, in f64). Shrinking
//!    anti-aliases; enlarging a small drawing blends only where an output pixel straddles
//!    two input pixels. Values are rounded to the nearest byte.
//! 6. **Centre** in the [`FIELD`]×[`FIELD`] (28×28) field by centre of mass: with pixel `i`
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

/// Steps 2 and 3 of the module docs, polarity from the border and the level stretch, as a
/// table: the stretched value of every raw byte (inversion included). `None` when the image is
/// blank (too little contrast).
fn levels(img: &Gray<'_>) -> Option<[u8; 256]> {
    let (w, h) = (img.width, img.height);
    let mut hist = [0u64; 256];
    let mut border = |x: usize, y: usize| hist[img.pixels[y * w + x] as usize] += 1;
    for x in 0..w {
        border(x, 0);
        if h > 1 {
            border(x, h - 1);
        }
    }
    for y in 1..h.saturating_sub(1) {
        border(0, y);
        if w > 1 {
            border(w - 1, y);
        }
    }
    let n: u64 = hist.iter().sum();
    let light: u64 = hist[128..].iter().sum();
    let dark = n - light;
    let invert = match light.cmp(&dark) {
        std::cmp::Ordering::Greater => true,
        std::cmp::Ordering::Less => false,
        std::cmp::Ordering::Equal => {
            let sum: u64 = hist.iter().enumerate().map(|(v, &c)| v as u64 * c).sum();
            2 * sum > 255 * n
        }
    };
    let flip = |v: usize| if invert { 255 - v } else { v };
    // Lower median of the border (the value at rank (n − 1) / 2, counting from 0), after the
    // polarity correction.
    let rank = (n - 1) / 2;
    let mut seen = 0;
    let mut background = 0;
    for v in 0..256 {
        seen += hist[flip(v)];
        if seen > rank {
            background = v;
            break;
        }
    }
    let mut present = [false; 256];
    for &p in img.pixels {
        present[p as usize] = true;
    }
    let ink = (0..256).rev().find(|&v| present[flip(v)]).unwrap_or(0);
    if ink < background + usize::from(MIN_CONTRAST) {
        return None;
    }
    let range = (ink - background) as u32;
    let mut lut = [0u8; 256];
    for (raw, out) in lut.iter_mut().enumerate() {
        let v = flip(raw);
        *out = if v <= background {
            0
        } else {
            let d = (v - background) as u32;
            ((d * 255 + range / 2) / range).min(255) as u8
        };
    }
    Some(lut)
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
            (first..last)
                .filter_map(|x| {
                    let overlap = (b.min(x as f64 + 1.0) - a.max(x as f64)).max(0.0);
                    (overlap > 0.0).then_some((x, overlap / scale))
                })
                .collect()
        })
        .collect()
}

/// MNIST's own preprocessing: returns the 28×28 image as bytes 0..=255 (white digit on black,
/// like the IDX files).
///
/// The steps (checks, polarity from the border, level stretch, crop to the ink at
/// [`INK_THRESHOLD`], area-averaged scaling into [`BOX`]×[`BOX`], whole-pixel centring by
/// centre of mass in [`FIELD`]×[`FIELD`]) and their rules are in the [module docs](self).
///
/// Errors, never a panic: zero or too large a size ([`MAX_SIDE`]), a buffer that is not
/// `width × height` bytes, "blank image, no digit found" (less contrast than [`MIN_CONTRAST`],
/// or no pixel reaching the ink threshold), and "ink too sparse" when every pixel of the
/// scaled digit rounds to 0 (a few scattered dots over a large area).
pub fn preprocess(img: Gray<'_>) -> Result<[u8; FIELD * FIELD]> {
    let (w, h) = (img.width, img.height);
    let n = check_size(w, h)?;
    ensure!(
        img.pixels.len() == n,
        "grayscale buffer of {} bytes for a {w}×{h} image: expected {n} (one byte per pixel)",
        img.pixels.len()
    );
    let Some(lut) = levels(&img) else {
        bail!("blank image, no digit found (no ink stands out from the background)");
    };

    // Step 4: the bounding box of the ink.
    let (mut x0, mut y0, mut x1, mut y1) = (usize::MAX, usize::MAX, 0, 0);
    for (y, row) in img.pixels.chunks_exact(w).enumerate() {
        let mut first = None;
        let mut last = 0;
        for (x, &p) in row.iter().enumerate() {
            if lut[p as usize] >= INK_THRESHOLD {
                first.get_or_insert(x);
                last = x;
            }
        }
        if let Some(f) = first {
            x0 = x0.min(f);
            x1 = x1.max(last);
            y0 = y0.min(y);
            y1 = y;
        }
    }
    ensure!(
        x0 != usize::MAX,
        "blank image, no digit found (no pixel reaches the ink threshold)"
    );
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
        let row = &img.pixels[(y0 + y) * w + x0..(y0 + y) * w + x0 + bw];
        for (o, t) in out.iter_mut().zip(&hx) {
            *o = t
                .iter()
                .map(|&(x, wt)| f64::from(lut[row[x] as usize]) * wt)
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
    Ok(field)
}

#[cfg(test)]
mod tests {
    use super::*;

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
        ];
        assert_eq!(
            gray_from_rgba(&px, 5, 1).unwrap(),
            vec![0, 255, 255, 127, 76]
        );
        assert!(gray_from_rgba(&px, 4, 1).is_err());
        assert!(gray_from_rgba(&px[..19], 5, 1).is_err());
        assert!(gray_from_rgba(&[], 0, 0).is_err());
    }
}
