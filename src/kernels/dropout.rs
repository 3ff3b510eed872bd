//! The dropout masks of up to eight images drawn in lockstep: the bytes
//! [`crate::cnn::dropout::dropout_bits`] writes for each image, from eight Xoshiro256++
//! streams advanced together in the 64-bit integer lanes of [`Simd`].
//!
//! One stream is a chain of dependent operations; eight independent streams advanced side by
//! side fill the vector units. The kernel is written once over [`Simd`] and compiled per
//! instruction set by [`Isa::vectorize`], like the convolutions; integer operations are exact,
//! so every instruction set gives the same bytes (`tests/cnn_fused.rs` holds each one this CPU
//! has to the per-image streams).
use super::cpu::{self, Isa};
use super::simd::{Kernel, Scalar, Simd, U64_LANES};
use rand::SeedableRng;

/// Images whose dropout streams [`dropout_bits_lockstep`] advances together.
pub const LOCKSTEP: usize = U64_LANES;

/// For each image `i < seeds.len() ≤ LOCKSTEP`: what [`crate::cnn::dropout::dropout_bits`]
/// writes on `parts[k].0[i·size_k .. (i+1)·size_k]` (`size_k = parts[k].1`, which must be
/// even) for `k = 0, 1, …` in turn, all drawn from one stream
/// `Xoshiro256PlusPlus::seed_from_u64(seeds[i])` that continues from part to part.
///
/// Runs on the instruction set [`cpu::isa`] chose (see [`dropout_bits_lockstep_on`]).
#[inline(never)]
pub fn dropout_bits_lockstep(seeds: &[u64], p: f64, parts: &mut [(&mut [u8], usize)]) {
    dropout_bits_lockstep_on(cpu::isa(), seeds, p, parts);
}

/// [`dropout_bits_lockstep`] in the registers of `isa` (the reference path `None` runs the
/// plain-Rust build). Every choice gives the same bytes; the tests run each one this CPU has,
/// whatever `GRADSPEC_SIMD` says.
///
/// # Panics
/// If there are no seeds or more than [`LOCKSTEP`], or a part's length is not
/// `seeds.len()·size` with `size` even.
pub fn dropout_bits_lockstep_on(
    isa: Option<Isa>,
    seeds: &[u64],
    p: f64,
    parts: &mut [(&mut [u8], usize)],
) {
    assert!(
        (1..=LOCKSTEP).contains(&seeds.len()),
        "dropout_bits_lockstep: 1 to {LOCKSTEP} seeds"
    );
    let k = Lockstep { seeds, p, parts };
    match isa {
        Some(isa) => isa.vectorize(k),
        None => k.run(Scalar),
    }
}

/// The lockstep as a [`Kernel`].
struct Lockstep<'a, 'b> {
    seeds: &'a [u64],
    p: f64,
    parts: &'a mut [(&'b mut [u8], usize)],
}

impl Kernel for Lockstep<'_, '_> {
    type Out = ();
    #[inline(always)]
    fn run<S: Simd>(self, s: S) {
        lockstep(s, self.seeds, self.p, self.parts)
    }
}

/// Decisions per block: 32 draws of two decisions each, gathered per draw as one byte (bit `l`
/// for lane `l`) and then spread into the images' bytes, so that every store is contiguous.
const BLOCK: usize = 32;

#[inline(always)]
fn lockstep<S: Simd>(s: S, seeds: &[u64], p: f64, parts: &mut [(&mut [u8], usize)]) {
    let n = seeds.len();
    let st = lane_states(seeds);
    // The draws compared are below 2²⁴ and so is the threshold (at most 2²⁴): both are below
    // 2⁶³, as `u64_lt_mask` requires.
    let threshold = (p * (1u64 << 24) as f64).round() as u64;
    let (mut s0, mut s1, mut s2, mut s3) = (
        s.u64_from_array(st[0]),
        s.u64_from_array(st[1]),
        s.u64_from_array(st[2]),
        s.u64_from_array(st[3]),
    );
    let low24 = s.u64_splat(0xFF_FFFF);
    let thr = s.u64_splat(threshold);
    // masks[j]: bit l = decision j of the block for lane l (1 keep).
    let mut masks = [0u8; 2 * BLOCK];
    for (buf, size) in parts.iter_mut() {
        let size = *size;
        assert!(
            size.is_multiple_of(2) && buf.len() == n * size,
            "dropout_bits_lockstep: part of {} bytes for {n} images of {size}",
            buf.len()
        );
        let mut t = 0;
        while t < size {
            let steps = BLOCK.min((size - t) / 2);
            for step in 0..steps {
                // Xoshiro256++: r = rotl(s0 + s3, 23) + s0, then the state update.
                let r = s.u64_add(s.u64_rotl(s.u64_add(s0, s3), 23), s0);
                let x = s.u64_shl(s1, 17);
                s2 = s.u64_xor(s2, s0);
                s3 = s.u64_xor(s3, s1);
                s1 = s.u64_xor(s1, s2);
                s0 = s.u64_xor(s0, s3);
                s2 = s.u64_xor(s2, x);
                s3 = s.u64_rotl(s3, 45);
                // Kept: the low 24 bits of each 32-bit half at or above the threshold.
                let lo = s.u64_and(r, low24);
                let hi = s.u64_and(s.u64_shr(r, 32), low24);
                masks[2 * step] = !s.u64_lt_mask(lo, thr);
                masks[2 * step + 1] = !s.u64_lt_mask(hi, thr);
            }
            let len = 2 * steps;
            for (l, out) in buf.chunks_exact_mut(size).enumerate() {
                for (o, &m) in out[t..t + len].iter_mut().zip(&masks[..len]) {
                    *o = m >> l & 1;
                }
            }
            t += len;
        }
    }
}

/// The lockstep streams' states word by word, `st[k][lane]`: lane `l` is image `l`'s stream,
/// and lanes past the last image repeat it (their decisions are never stored).
fn lane_states(seeds: &[u64]) -> [[u64; LOCKSTEP]; 4] {
    let mut st = [[0u64; LOCKSTEP]; 4];
    for lane in 0..LOCKSTEP {
        let s = xoshiro_state(seeds[lane.min(seeds.len() - 1)]);
        for k in 0..4 {
            st[k][lane] = s[k];
        }
    }
    st
}

/// The state of Xoshiro256PlusPlus::seed_from_u64(seed): four SplitMix64 outputs.
fn xoshiro_state(seed: u64) -> [u64; 4] {
    use rand::RngCore;
    let mut sm = rand_xoshiro::SplitMix64::seed_from_u64(seed);
    let mut bytes = [0u8; 32];
    sm.fill_bytes(&mut bytes);
    let mut s = [0u64; 4];
    for (k, word) in bytes.chunks_exact(8).enumerate() {
        s[k] = u64::from_le_bytes(word.try_into().unwrap_or([0; 8]));
    }
    // (an all-zero state, which `from_seed` would replace, has probability 2⁻²⁵⁶)
    s
}
