//! Shuffling into mini-batches and filling batch buffers.
//!
//! An epoch visits every example once in the order [`epoch_order`]`(n, seed, epoch)`, cut
//! into consecutive batches by [`batches`]; the last, partial batch is kept (60,000 training
//! images at batch size 128 give 468 full batches and one of 96: 469 in all). Both are pure
//! functions, so resuming at epoch `e` needs no saved RNG state.
use rand::RngCore;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use super::augment::{Strength, augment_with, image_rng, normalize_into};
use super::{Dataset, PIXELS};

/// The training augmentation of one epoch: images are augmented at `strength` with
/// [`image_rng`]`(seed, epoch, index)`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Augmentation {
    /// The run's seed.
    pub seed: u64,
    /// The epoch (1-based in training).
    pub epoch: u64,
    /// Crop probability and rotation range.
    pub strength: Strength,
}

impl Augmentation {
    /// At the source's strength.
    pub fn source(seed: u64, epoch: u64) -> Self {
        Self {
            seed,
            epoch,
            strength: Strength::SOURCE,
        }
    }
}

/// A permutation of `0..n` for epoch `epoch` of a run seeded with `seed`.
///
/// Fisher–Yates driven by ChaCha8 (`seed_from_u64(seed)`, stream `2⁶³ | epoch`, disjoint
/// from the augmentation streams of [`image_rng`]; the epoch's own top bit is therefore
/// ignored), with Lemire's unbiased bounded integers.
/// The algorithm is spelled out here rather than taken from `rand::seq`, so the order is
/// fixed by this crate's code alone.
///
/// # Panics
/// If `n` does not fit in `u32`.
pub fn epoch_order(n: usize, seed: u64, epoch: u64) -> Vec<u32> {
    assert!(u32::try_from(n).is_ok(), "epoch_order: n = {n} exceeds u32");
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream((1 << 63) | epoch);
    let mut order: Vec<u32> = (0..n as u32).collect();
    for i in (1..n).rev() {
        let j = bounded(&mut rng, i as u32 + 1) as usize;
        order.swap(i, j);
    }
    order
}

/// Uniform integer in `0..range` (`range ≥ 1`), Lemire's multiply-and-reject method.
fn bounded(rng: &mut impl RngCore, range: u32) -> u32 {
    let threshold = range.wrapping_neg() % range; // 2^32 mod range
    loop {
        let m = u64::from(rng.next_u32()) * u64::from(range);
        if (m as u32) >= threshold {
            return (m >> 32) as u32;
        }
    }
}

/// The batches of an epoch: consecutive chunks of `batch_size` indices, the last one
/// possibly shorter (never dropped).
///
/// # Panics
/// If `batch_size` is 0.
pub fn batches(order: &[u32], batch_size: usize) -> std::slice::Chunks<'_, u32> {
    order.chunks(batch_size)
}

/// Number of batches of an epoch over `n` examples: `⌈n / batch_size⌉`.
pub fn num_batches(n: usize, batch_size: usize) -> usize {
    n.div_ceil(batch_size)
}

/// Fills one batch: for each `idx[i]`, the (optionally augmented) image, normalised into
/// `out_x[i*784..(i+1)*784]` (`[b, 1, 28, 28]` row-major), and its label into `out_y[i]`.
///
/// `augment = Some(a)` applies the training augmentation at `a.strength` with
/// [`image_rng`]`(a.seed, a.epoch, idx[i])`, so the result depends only on the example, not on
/// its position in the batch; `None` only normalises (evaluation). Allocation-free.
///
/// # Panics
/// If `out_x.len() != idx.len() * 784`, `out_y.len() != idx.len()`, or an index is out of
/// range.
pub fn fill_batch(
    ds: &Dataset,
    idx: &[u32],
    augment: Option<Augmentation>,
    out_x: &mut [f32],
    out_y: &mut [u8],
) {
    check_lengths(idx, out_x, out_y);
    for ((&i, x), y) in idx.iter().zip(out_x.chunks_exact_mut(PIXELS)).zip(out_y) {
        fill_one(ds, i, augment, x, y);
    }
}

/// [`fill_batch`] spread over the thread pool ([`crate::par`]): identical output (each image has its own
/// RNG), for when a core is free.
///
/// # Panics
/// As [`fill_batch`].
pub fn fill_batch_par(
    ds: &Dataset,
    idx: &[u32],
    augment: Option<Augmentation>,
    out_x: &mut [f32],
    out_y: &mut [u8],
) {
    check_lengths(idx, out_x, out_y);
    let mut jobs: Vec<(u32, &mut [f32], &mut u8)> = idx
        .iter()
        .zip(out_x.chunks_exact_mut(PIXELS))
        .zip(out_y.iter_mut())
        .map(|((&i, x), y)| (i, x, y))
        .collect();
    crate::par::for_each_mut(&mut jobs, 16, |(i, x, y)| fill_one(ds, *i, augment, x, y));
}

fn check_lengths(idx: &[u32], out_x: &[f32], out_y: &[u8]) {
    assert_eq!(
        out_x.len(),
        idx.len() * PIXELS,
        "fill_batch: out_x must hold idx.len() × 784 floats"
    );
    assert_eq!(
        out_y.len(),
        idx.len(),
        "fill_batch: out_y must hold idx.len() labels"
    );
}

#[inline]
fn fill_one(ds: &Dataset, i: u32, aug: Option<Augmentation>, x: &mut [f32], y: &mut u8) {
    let src = ds.image(i as usize);
    *y = ds.labels[i as usize];
    match aug {
        Some(a) => {
            let mut tmp = [0u8; PIXELS];
            let mut rng = image_rng(a.seed, a.epoch, u64::from(i));
            augment_with(src, &mut tmp, &mut rng, a.strength);
            normalize_into(&tmp, x);
        }
        None => normalize_into(src, x),
    }
}
