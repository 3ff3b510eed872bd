//! Normalisation and training augmentation, pixel-exact with torchvision on PIL images.
//!
//! The source notebook's training transform is
//! ```text
//! RandomApply([CenterCrop(22)], p=0.1) → Resize((28, 28)) → RandomRotation((−15, 15), fill=0)
//!   → ToTensor() → Normalize((0.1307,), (0.3081,))
//! ```
//! with torchvision's defaults: bilinear resize, nearest-neighbour rotation. On a PIL image
//! torchvision calls Pillow, so "exact semantics" means Pillow's integer arithmetic:
//!
//! * **CenterCrop(22)** of 28×28: offset `round((28 − 22) / 2) = 3`, i.e. rows and columns
//!   `3..25` ([`center_crop_resize`]).
//! * **Resize** 22 → 28, `Image.resize(BILINEAR)`: separable, horizontal pass first,
//!   triangle filter with support 1 at half-pixel centres (`centre = (i + 0.5)·22/28`),
//!   weights normalised then rounded to 22-bit fixed point, each pass rounded to `u8`.
//!   When the crop is not applied, Resize 28 → 28 is the identity (Pillow returns a copy).
//! * **RandomRotation**: angle uniform in `[−15°, 15°)`; positive angles turn the digit
//!   **counter-clockwise** as seen on screen (Pillow's convention); the centre is the
//!   geometric centre `(14.0, 14.0)` in continuous coordinates where pixel `(x, y)` covers
//!   `[x, x+1) × [y, y+1)`, i.e. the corner shared by the four middle pixels. Each output
//!   pixel centre is mapped back into the input with Pillow's 16.16 fixed-point affine loop
//!   and floored (nearest); pixels that land outside are 0 ([`rotate_nearest`]).
//!
//! Both geometric steps are checked pixel-for-pixel against Pillow 13 in
//! `tests/data_augment.rs` (golden vectors in `golden/data/`), and the rotation also against
//! `imageproc` as an independent oracle. They are written by hand rather than with
//! `imageproc`/`image` because those use different rounding (imageproc rotates in `f32` about
//! pixel centres; `image`'s Triangle filter keeps an `f32` intermediate), and because the
//! hand-written rotation is an order of magnitude faster (see the crate's bench
//! `augment_28x28`).
//!
//! # Randomness
//! [`augment`] draws two `u64` from its RNG: the crop decision (`u < 0.1`) and the angle
//! (`−15 + 30·u`), each `u = (x >> 11)·2⁻⁵³` in `[0, 1)`; [`augment_with`] takes other
//! ranges ([`Strength`]) and draws the same two numbers. [`image_rng`] makes that RNG a pure
//! function of `(seed, epoch, index)`. The RNG is not torch's, so the *distribution* matches
//! the notebook, not the individual draws.
use rand::Rng;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use std::sync::LazyLock;

use super::{PIXELS, SIDE};

/// MNIST mean pixel value (of `x / 255`), as in the notebook's `Normalize`.
pub const MNIST_MEAN: f32 = 0.1307;
/// MNIST pixel standard deviation (of `x / 255`), as in the notebook's `Normalize`.
pub const MNIST_STD: f32 = 0.3081;
/// Probability that an image is centre-cropped (then resized back to 28×28).
pub const CROP_PROB: f64 = 0.1;
/// Side of the centre crop.
pub const CROP_SIDE: usize = 22;
/// Rotation angles are drawn from `[−MAX_ANGLE_DEG, MAX_ANGLE_DEG)`.
pub const MAX_ANGLE_DEG: f64 = 15.0;
/// Words of the ChaCha stream reserved for each image by [`image_rng`] (one 64-byte block);
/// [`augment`] uses 4 of them.
pub const WORDS_PER_IMAGE: u128 = 16;

/// `(x / 255 − mean) / std` in `f32` for every byte value, evaluated in the same order as
/// torchvision (`ToTensor` divides by 255 in f32, `Normalize` subtracts then divides).
static NORM_LUT: [f32; 256] = {
    let mut t = [0.0f32; 256];
    let mut i = 0;
    while i < 256 {
        t[i] = (i as f32 / 255.0 - MNIST_MEAN) / MNIST_STD;
        i += 1;
    }
    t
};

/// Normalises bytes into `f32`: `dst[i] = (src[i] / 255 − 0.1307) / 0.3081`, bit-identical
/// to torchvision's `ToTensor()` + `Normalize((0.1307,), (0.3081,))` (so 0 ↦ −0.42421296
/// and 255 ↦ 2.8214867).
///
/// # Panics
/// If the lengths differ.
pub fn normalize_into(src: &[u8], dst: &mut [f32]) {
    assert_eq!(src.len(), dst.len(), "normalize_into: length mismatch");
    for (d, &s) in dst.iter_mut().zip(src) {
        *d = NORM_LUT[s as usize];
    }
}

/// Normalises bytes into `f64`: `dst[i] = (src[i] / 255 − 0.1307) / 0.3081`, the same
/// formula and order as [`normalize_into`] but with every step in f64 (for gradients computed
/// in f64, `gradspec mnist grad --precision f64`; these values are not torchvision's f32 ones).
///
/// # Panics
/// If the lengths differ.
pub fn normalize_into_f64(src: &[u8], dst: &mut [f64]) {
    assert_eq!(src.len(), dst.len(), "normalize_into_f64: length mismatch");
    for (d, &s) in dst.iter_mut().zip(src) {
        *d = (f64::from(s) / 255.0 - 0.1307) / 0.3081;
    }
}

/// The RNG that augments image `index` in epoch `epoch` of a run seeded with `seed`.
///
/// ChaCha8 keyed by `seed_from_u64(seed)`, on stream `epoch`, positioned at word
/// `index · 16`: every image owns its own 64-byte block of the keystream, so the result
/// depends on nothing but the triple (not on batch order, threads, or earlier images).
/// Streams with the top bit set are reserved for [`super::epoch_order`].
pub fn image_rng(seed: u64, epoch: u64, index: u64) -> ChaCha8Rng {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(epoch & !(1 << 63));
    rng.set_word_pos(u128::from(index) * WORDS_PER_IMAGE);
    rng
}

/// A uniform `f64` in `[0, 1)` from the top 53 bits of one `u64`.
fn unit_f64(rng: &mut impl Rng) -> f64 {
    (rng.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
}

/// The random choices of one augmentation.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AugmentParams {
    /// Centre-crop to 22×22 and resize back to 28×28 (probability 0.1).
    pub crop: bool,
    /// Rotation in degrees, counter-clockwise on screen, in `[−15, 15)`.
    pub angle_deg: f64,
}

/// How strong the two augmentations are: the probability of the centre crop and the largest
/// rotation. The kinds of augmentation are the source's; only their ranges vary (a recipe
/// chooses them, see [`crate::train::recipe::Recipe::strength`]).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Strength {
    /// Probability that an image is centre-cropped, in `[0, 1]`.
    pub crop_prob: f64,
    /// Rotation angles are drawn from `[−max_angle_deg, max_angle_deg)`.
    pub max_angle_deg: f64,
}

impl Strength {
    /// The source notebook's: crop with probability 0.1, rotate within ±15°.
    pub const SOURCE: Strength = Strength {
        crop_prob: CROP_PROB,
        max_angle_deg: MAX_ANGLE_DEG,
    };
}

impl AugmentParams {
    /// Draws the parameters at the source's [`Strength`]: see [`sample_with`](Self::sample_with).
    pub fn sample(rng: &mut impl Rng) -> Self {
        Self::sample_with(rng, Strength::SOURCE)
    }

    /// Draws the parameters: first the crop decision (`u < crop_prob`), then the angle
    /// (`−a + 2a·u` with `a = max_angle_deg`); two `u64` whatever the strength.
    pub fn sample_with(rng: &mut impl Rng, strength: Strength) -> Self {
        let crop = unit_f64(rng) < strength.crop_prob;
        let a = strength.max_angle_deg;
        let angle_deg = -a + 2.0 * a * unit_f64(rng);
        Self { crop, angle_deg }
    }
}

/// Augments one 28×28 image (`src`, 784 bytes) into `dst` (784 bytes) at the source's
/// strength: see the module doc. Allocation-free; about 1 µs per image (bench `augment_28x28`).
///
/// # Panics
/// If either slice is not 784 bytes long.
pub fn augment(src: &[u8], dst: &mut [u8], rng: &mut impl Rng) {
    augment_with(src, dst, rng, Strength::SOURCE);
}

/// [`augment`] at a given [`Strength`].
///
/// # Panics
/// If either slice is not 784 bytes long.
pub fn augment_with(src: &[u8], dst: &mut [u8], rng: &mut impl Rng, strength: Strength) {
    apply(src, dst, AugmentParams::sample_with(rng, strength));
}

/// Applies given augmentation parameters (the deterministic half of [`augment`]).
///
/// # Panics
/// If either slice is not 784 bytes long.
pub fn apply(src: &[u8], dst: &mut [u8], p: AugmentParams) {
    if p.crop {
        let mut tmp = [0u8; PIXELS];
        center_crop_resize(src, &mut tmp);
        rotate_nearest(&tmp, dst, p.angle_deg);
    } else {
        rotate_nearest(src, dst, p.angle_deg);
    }
}

/// Pillow's bilinear resampling coefficients for one axis, in 22-bit fixed point.
struct Coeffs {
    /// `(first input index, number of taps)` per output index.
    bounds: Vec<(usize, usize)>,
    /// `ksize` coefficients per output index.
    k: Vec<i32>,
    ksize: usize,
}

/// `PRECISION_BITS` of Pillow's 8-bit resampler: 32 − 8 − 2.
const PRECISION_BITS: u32 = 22;

/// Pillow's `precompute_coeffs` + `normalize_coeffs_8bpc` for the bilinear (triangle) filter.
fn pil_bilinear_coeffs(in_size: usize, out_size: usize) -> Coeffs {
    let scale = in_size as f64 / out_size as f64;
    let filterscale = scale.max(1.0);
    let support = filterscale; // bilinear support 1.0 × filterscale
    let ksize = support.ceil() as usize * 2 + 1;
    let mut bounds = Vec::with_capacity(out_size);
    let mut k = vec![0i32; out_size * ksize];
    for xx in 0..out_size {
        let center = (xx as f64 + 0.5) * scale;
        let ss = 1.0 / filterscale;
        // C's (int) truncates toward zero; the values here are > −1, so max(0) is the same.
        let xmin = ((center - support + 0.5) as i64).max(0) as usize;
        let xmax = ((center + support + 0.5) as i64).min(in_size as i64) as usize - xmin;
        let mut w = vec![0f64; xmax];
        let mut ww = 0.0;
        for (x, wx) in w.iter_mut().enumerate() {
            let t = ((x + xmin) as f64 - center + 0.5) * ss;
            *wx = (1.0 - t.abs()).max(0.0);
            ww += *wx;
        }
        for (x, wx) in w.iter().enumerate() {
            let v = if ww != 0.0 { wx / ww } else { *wx };
            let f = v * f64::from(1u32 << PRECISION_BITS);
            k[xx * ksize + x] = if v < 0.0 {
                (f - 0.5) as i32
            } else {
                (f + 0.5) as i32
            };
        }
        bounds.push((xmin, xmax));
    }
    Coeffs { bounds, k, ksize }
}

static CROP_COEFFS: LazyLock<Coeffs> = LazyLock::new(|| pil_bilinear_coeffs(CROP_SIDE, SIDE));

/// Pillow's `clip8`: drop the fixed-point fraction (floor) and clamp to `0..=255`.
#[inline]
fn clip8(v: i32) -> u8 {
    (v >> PRECISION_BITS).clamp(0, 255) as u8
}

/// `CenterCrop(22)` then `Resize((28, 28))` (bilinear), exactly as Pillow computes it.
///
/// # Panics
/// If either slice is not 784 bytes long.
pub fn center_crop_resize(src: &[u8], dst: &mut [u8]) {
    assert_eq!(
        src.len(),
        PIXELS,
        "center_crop_resize: src must be 784 bytes"
    );
    assert_eq!(
        dst.len(),
        PIXELS,
        "center_crop_resize: dst must be 784 bytes"
    );
    let off = (SIDE - CROP_SIDE) / 2; // round(3.0) = 3
    let c = &*CROP_COEFFS;
    let half = 1i32 << (PRECISION_BITS - 1);
    // Horizontal pass: 22 rows × 28 columns, rounded to u8 (Pillow's intermediate image).
    let mut tmp = [0u8; CROP_SIDE * SIDE];
    for y in 0..CROP_SIDE {
        let row = &src[(y + off) * SIDE + off..(y + off) * SIDE + off + CROP_SIDE];
        for xx in 0..SIDE {
            let (xmin, n) = c.bounds[xx];
            let k = &c.k[xx * c.ksize..xx * c.ksize + n];
            let mut ss = half;
            for (j, &kj) in k.iter().enumerate() {
                ss += i32::from(row[xmin + j]) * kj;
            }
            tmp[y * SIDE + xx] = clip8(ss);
        }
    }
    // Vertical pass: 28 × 28.
    for yy in 0..SIDE {
        let (ymin, n) = c.bounds[yy];
        let k = &c.k[yy * c.ksize..yy * c.ksize + n];
        for xx in 0..SIDE {
            let mut ss = half;
            for (j, &kj) in k.iter().enumerate() {
                ss += i32::from(tmp[(ymin + j) * SIDE + xx]) * kj;
            }
            dst[yy * SIDE + xx] = clip8(ss);
        }
    }
}

/// Python's `round(v, 15)` as Pillow applies it to the rotation matrix (up to the last ulp,
/// which the 16.16 fixed-point conversion below cannot see).
fn round15(v: f64) -> f64 {
    (v * 1e15).round() / 1e15
}

/// `Image.rotate(angle_deg, resample=NEAREST, expand=False, fillcolor=0)` of a 28×28 image:
/// counter-clockwise on screen for positive angles, about the centre `(14.0, 14.0)`, nearest
/// neighbour, fill 0. Reproduces Pillow's fast paths (exact quarter turns) and its 16.16
/// fixed-point affine loop (`affine_fixed` in `Geometry.c`).
///
/// # Panics
/// If either slice is not 784 bytes long.
pub fn rotate_nearest(src: &[u8], dst: &mut [u8], angle_deg: f64) {
    assert_eq!(src.len(), PIXELS, "rotate_nearest: src must be 784 bytes");
    assert_eq!(dst.len(), PIXELS, "rotate_nearest: dst must be 784 bytes");
    const N: usize = SIDE;
    let a = angle_deg.rem_euclid(360.0); // Python's `angle % 360.0`
    if a == 0.0 || !a.is_finite() {
        // Pillow returns a copy for 0; a NaN angle is a caller bug, copy rather than panic.
        dst.copy_from_slice(src);
        return;
    }
    if a == 90.0 || a == 180.0 || a == 270.0 {
        for y in 0..N {
            for x in 0..N {
                let (sy, sx) = match a as u32 {
                    90 => (x, N - 1 - y),
                    180 => (N - 1 - y, N - 1 - x),
                    _ => (N - 1 - x, y),
                };
                dst[y * N + x] = src[sy * N + sx];
            }
        }
        return;
    }
    let theta = -a.to_radians();
    let (s, c) = theta.sin_cos();
    let (m0, m1, m3, m4) = (round15(c), round15(s), round15(-s), round15(c));
    let centre = (N / 2) as f64;
    let m2 = m0 * -centre + m1 * -centre + 0.0 + centre;
    let m5 = m3 * -centre + m4 * -centre + 0.0 + centre;
    let fix = |v: f64| (v * 65536.0 + 0.5).floor() as i32;
    let (a0, a1, a3, a4) = (fix(m0), fix(m1), fix(m3), fix(m4));
    let mut a2 = fix(m2 + m0 * 0.5 + m1 * 0.5);
    let mut a5 = fix(m5 + m3 * 0.5 + m4 * 0.5);
    for out_row in dst.chunks_exact_mut(N) {
        let (mut xx, mut yy) = (a2, a5);
        for o in out_row.iter_mut() {
            let (xin, yin) = (xx >> 16, yy >> 16);
            *o = if (0..N as i32).contains(&xin) && (0..N as i32).contains(&yin) {
                src[yin as usize * N + xin as usize]
            } else {
                0
            };
            xx += a0;
            yy += a3;
        }
        a2 += a1;
        a5 += a4;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crop_coefficients_sum_to_one_in_fixed_point() {
        let c = &*CROP_COEFFS;
        assert_eq!(c.ksize, 3);
        for (xx, &(_, n)) in c.bounds.iter().enumerate() {
            let s: i32 = c.k[xx * c.ksize..xx * c.ksize + n].iter().sum();
            assert!((s - (1 << PRECISION_BITS)).abs() <= 2, "output {xx}: {s}");
        }
    }

    #[test]
    fn rng_streams_do_not_overlap_the_shuffle_streams() {
        use rand::RngCore;
        let mut a = image_rng(1, 1 << 63, 0);
        let mut b = image_rng(1, 0, 0);
        assert_eq!(a.next_u64(), b.next_u64());
    }
}
