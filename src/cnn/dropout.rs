//! Inverted dropout. Training multiplies by a mask whose entries are `0` (probability `p`) or
//! `1/(1−p)`; evaluation is the identity. The mask is an explicit argument, so gradient checks
//! can hold it fixed, and it is drawn from a seeded stream per image, so results do not depend
//! on thread scheduling.
use super::float::Float;
use rand::{Rng, SeedableRng};

/// r[cnn.dropout.mask] `m_i = 1/(1−p)` with probability `1−p`, else `0`, independently.
///
/// Draws a 24-bit uniform integer per element and drops it when it is below `p·2²⁴`
/// (exact for p = k/2²⁴; p = 0.05 is within 3·10⁻⁸ of that).
#[inline(never)]
pub fn dropout_mask<T: Float, R: Rng>(rng: &mut R, p: f64, mask: &mut [T]) {
    let keep = keep_scale::<T>(p);
    let threshold = (p * (1u64 << 24) as f64).round() as u32;
    let mut chunks = mask.chunks_exact_mut(2);
    for pair in &mut chunks {
        let r: u64 = rng.random();
        pair[0] = if ((r & 0xFF_FFFF) as u32) < threshold {
            T::zero()
        } else {
            keep
        };
        pair[1] = if (((r >> 32) & 0xFF_FFFF) as u32) < threshold {
            T::zero()
        } else {
            keep
        };
    }
    for m in chunks.into_remainder() {
        let r: u32 = rng.random();
        *m = if (r & 0xFF_FFFF) < threshold {
            T::zero()
        } else {
            keep
        };
    }
}

/// The decisions of [`dropout_mask`] as bytes, `1` keep and `0` drop, drawing exactly the same
/// numbers from `rng`: with the same stream, `mask[i] = bits[i]·1/(1−p)`. A quarter of the
/// memory of the float mask; the fused passes of [`super::fused`] read it.
#[inline(never)]
pub fn dropout_bits<R: Rng>(rng: &mut R, p: f64, bits: &mut [u8]) {
    let threshold = (p * (1u64 << 24) as f64).round() as u32;
    let mut chunks = bits.chunks_exact_mut(2);
    for pair in &mut chunks {
        let r: u64 = rng.random();
        pair[0] = u8::from(((r & 0xFF_FFFF) as u32) >= threshold);
        pair[1] = u8::from((((r >> 32) & 0xFF_FFFF) as u32) >= threshold);
    }
    for b in chunks.into_remainder() {
        let r: u32 = rng.random();
        *b = u8::from((r & 0xFF_FFFF) >= threshold);
    }
}

/// Images whose dropout streams [`dropout_bits_lockstep`] advances together.
pub const LOCKSTEP: usize = 8;

/// For each image `i < seeds.len() ≤ LOCKSTEP`: what [`dropout_bits`] writes on
/// `parts[k].0[i·size_k .. (i+1)·size_k]` (`size_k = parts[k].1`, which must be even) for
/// `k = 0, 1, …` in turn, all drawn from one stream `Xoshiro256PlusPlus::seed_from_u64(seeds[i])`
/// that continues from part to part.
///
/// Same numbers, faster: one Xoshiro256++ stream is a chain of dependent operations, while
/// eight independent streams advanced in lockstep fill the vector units. They run in AVX-512
/// registers when [`super::cpu::avx512`] hands out its token, in AVX2 registers when
/// [`super::cpu::avx2`] does, else in portable code (see [`dropout_bits_lockstep_on`]);
/// `tests/cnn_fused.rs` checks that they give exactly the per-image streams.
#[inline(never)]
pub fn dropout_bits_lockstep(seeds: &[u64], p: f64, parts: &mut [(&mut [u8], usize)]) {
    dropout_bits_lockstep_on(super::cpu::isa(), seeds, p, parts);
}

/// [`dropout_bits_lockstep`] in the registers of `isa`: AVX-512 or AVX2 when it is one of
/// them, else (NEON, scalar, the reference path `None`) portable code. Every choice gives the
/// same bytes; the tests run each one this CPU has, whatever `GRADSPEC_SIMD` says.
///
/// # Panics
/// If there are no seeds or more than [`LOCKSTEP`], or a part's length is not
/// `seeds.len()·size` with `size` even.
pub fn dropout_bits_lockstep_on(
    isa: Option<super::cpu::Isa>,
    seeds: &[u64],
    p: f64,
    parts: &mut [(&mut [u8], usize)],
) {
    assert!(
        (1..=LOCKSTEP).contains(&seeds.len()),
        "dropout_bits_lockstep: 1 to {LOCKSTEP} seeds"
    );
    match isa {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: the token exists only when the CPU has AVX-512F/BW/VL, the features
        // `lockstep_avx512` is compiled for.
        Some(super::cpu::Isa::Avx512(cpu)) => unsafe { lockstep_avx512(cpu, seeds, p, parts) },
        #[cfg(target_arch = "x86_64")]
        // SAFETY: the token exists only when the CPU has AVX2 and FMA, the features
        // `lockstep_avx2` is compiled for.
        Some(super::cpu::Isa::Avx2(cpu)) => unsafe { lockstep_avx2(cpu, seeds, p, parts) },
        _ => lockstep(seeds, p, parts),
    }
}

/// [`lockstep`] with the eight streams in eight AVX2 registers (two per state word, lanes 0–3
/// and 4–7), as [`lockstep_avx512`] does with four: the same bits come out. AVX2 has no 64-bit
/// rotate, so the two rotates are a shift pair and an `or`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn lockstep_avx2(_cpu: super::cpu::Avx2, seeds: &[u64], p: f64, parts: &mut [(&mut [u8], usize)]) {
    use std::arch::x86_64::*;
    let n = seeds.len();
    let st = lane_states(seeds);
    let threshold = (p * (1u64 << 24) as f64).round() as u64;
    // s[h][k]: state word k of lanes 4h .. 4h+4.
    let mut s = [[_mm256_setzero_si256(); 4]; 2];
    for (h, s) in s.iter_mut().enumerate() {
        for (s, st) in s.iter_mut().zip(&st) {
            // SAFETY: 4 u64 from lane 4h of an array of 8 (unaligned load).
            *s = unsafe { _mm256_loadu_si256(st[4 * h..].as_ptr().cast()) };
        }
    }
    let low24 = _mm256_set1_epi64x(0xFF_FFFF);
    // The draws compared are below 2²⁴ and so is `threshold` (at most 2²⁴): the signed
    // 64-bit comparison is the unsigned one.
    let thr = _mm256_set1_epi64x(threshold as i64);
    const BLOCK: usize = 32;
    // masks[j]: bit l = decision j of the block for lane l.
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
                let (mut lo, mut hi) = (0, 0);
                for (h, sh) in s.iter_mut().enumerate() {
                    let [s0, s1, s2, s3] = *sh;
                    let a = _mm256_add_epi64(s0, s3);
                    let rot =
                        _mm256_or_si256(_mm256_slli_epi64::<23>(a), _mm256_srli_epi64::<41>(a));
                    let r = _mm256_add_epi64(rot, s0);
                    let x = _mm256_slli_epi64::<17>(s1);
                    let s2 = _mm256_xor_si256(s2, s0);
                    let s3 = _mm256_xor_si256(s3, s1);
                    let s1 = _mm256_xor_si256(s1, s2);
                    let s0 = _mm256_xor_si256(s0, s3);
                    let s2 = _mm256_xor_si256(s2, x);
                    let s3 =
                        _mm256_or_si256(_mm256_slli_epi64::<45>(s3), _mm256_srli_epi64::<19>(s3));
                    *sh = [s0, s1, s2, s3];
                    // Lanes below the threshold (dropped), one bit each.
                    let below = |v: __m256i| {
                        let lt = _mm256_cmpgt_epi64(thr, _mm256_and_si256(v, low24));
                        _mm256_movemask_pd(_mm256_castsi256_pd(lt))
                    };
                    lo |= (below(r) ^ 0xF) << (4 * h);
                    hi |= (below(_mm256_srli_epi64::<32>(r)) ^ 0xF) << (4 * h);
                }
                masks[2 * step] = lo as u8;
                masks[2 * step + 1] = hi as u8;
            }
            let len = 2 * steps;
            // SAFETY: `masks` holds 64 bytes, so both 32-byte loads are in bounds.
            let m = unsafe {
                [
                    _mm256_loadu_si256(masks.as_ptr().cast()),
                    _mm256_loadu_si256(masks[BLOCK..].as_ptr().cast()),
                ]
            };
            let one = _mm256_set1_epi8(1);
            for l in 0..n {
                // byte j of `m` shifted right by l, keeping bit 0: decision j of lane l
                let count = _mm_cvtsi32_si128(l as i32);
                let mut out = [0u8; 2 * BLOCK];
                for (k, &m) in m.iter().enumerate() {
                    let bits = _mm256_and_si256(_mm256_srl_epi16(m, count), one);
                    // SAFETY: `out` holds 64 bytes; this writes 32 from byte 32k.
                    unsafe { _mm256_storeu_si256(out[BLOCK * k..].as_mut_ptr().cast(), bits) };
                }
                buf[l * size + t..l * size + t + len].copy_from_slice(&out[..len]);
            }
            t += len;
        }
    }
}

/// The lockstep streams' states word by word, `st[k][lane]`: lane `l` is image `l`'s stream,
/// and lanes past the last image repeat it (their decisions are never stored).
#[cfg(target_arch = "x86_64")]
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

/// [`lockstep`] with the eight streams in four AVX-512 registers (one per state word); the
/// same bits come out.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw")]
fn lockstep_avx512(
    _cpu: super::cpu::Avx512,
    seeds: &[u64],
    p: f64,
    parts: &mut [(&mut [u8], usize)],
) {
    use std::arch::x86_64::*;
    let n = seeds.len();
    let st = lane_states(seeds);
    let threshold = (p * (1u64 << 24) as f64).round() as u64;
    // SAFETY: loads of 8 u64 from arrays of exactly 8 u64 (unaligned loads).
    let (mut s0, mut s1, mut s2, mut s3) = unsafe {
        (
            _mm512_loadu_si512(st[0].as_ptr().cast()),
            _mm512_loadu_si512(st[1].as_ptr().cast()),
            _mm512_loadu_si512(st[2].as_ptr().cast()),
            _mm512_loadu_si512(st[3].as_ptr().cast()),
        )
    };
    let low24 = _mm512_set1_epi64(0xFF_FFFF);
    let thr = _mm512_set1_epi64(threshold as i64);
    const BLOCK: usize = 32;
    // masks[j]: bit l = decision j of the block for lane l.
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
                let r = _mm512_add_epi64(_mm512_rol_epi64::<23>(_mm512_add_epi64(s0, s3)), s0);
                let x = _mm512_slli_epi64::<17>(s1);
                s2 = _mm512_xor_si512(s2, s0);
                s3 = _mm512_xor_si512(s3, s1);
                s1 = _mm512_xor_si512(s1, s2);
                s0 = _mm512_xor_si512(s0, s3);
                s2 = _mm512_xor_si512(s2, x);
                s3 = _mm512_rol_epi64::<45>(s3);
                let lo = _mm512_cmpge_epu64_mask(_mm512_and_si512(r, low24), thr);
                let hi = _mm512_cmpge_epu64_mask(
                    _mm512_and_si512(_mm512_srli_epi64::<32>(r), low24),
                    thr,
                );
                masks[2 * step] = lo;
                masks[2 * step + 1] = hi;
            }
            let len = 2 * steps;
            // SAFETY: `masks` holds 64 bytes, so the 64-byte load is in bounds.
            let m = unsafe { _mm512_loadu_si512(masks.as_ptr().cast()) };
            let one = _mm512_set1_epi8(1);
            for l in 0..n {
                // byte j of `m` shifted right by l, keeping bit 0: decision j of lane l
                let bits = _mm512_and_si512(_mm512_srlv_epi16(m, _mm512_set1_epi16(l as i16)), one);
                let mut out = [0u8; 2 * BLOCK];
                // SAFETY: `out` holds 64 bytes.
                unsafe { _mm512_storeu_si512(out.as_mut_ptr().cast(), bits) };
                buf[l * size + t..l * size + t + len].copy_from_slice(&out[..len]);
            }
            t += len;
        }
    }
}

#[inline(always)]
fn lockstep(seeds: &[u64], p: f64, parts: &mut [(&mut [u8], usize)]) {
    let n = seeds.len();
    assert!(
        (1..=LOCKSTEP).contains(&n),
        "dropout_bits_lockstep: 1 to {LOCKSTEP} seeds"
    );
    let threshold = (p * (1u64 << 24) as f64).round() as u64;
    // Xoshiro256PlusPlus::seed_from_u64: the state is four SplitMix64 outputs.
    let mut s = [[0u64; LOCKSTEP]; 4];
    for lane in 0..LOCKSTEP {
        let st = xoshiro_state(seeds[lane.min(n - 1)]);
        for k in 0..4 {
            s[k][lane] = st[k];
        }
    }
    // 32 draws give 64 decisions, gathered as the bits of one word per lane and then spread
    // into bytes: every store is contiguous.
    const BLOCK: usize = 32;
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
            let mut word = [0u64; LOCKSTEP];
            for step in 0..steps {
                for l in 0..LOCKSTEP {
                    let r = s[0][l]
                        .wrapping_add(s[3][l])
                        .rotate_left(23)
                        .wrapping_add(s[0][l]);
                    let x = s[1][l] << 17;
                    s[2][l] ^= s[0][l];
                    s[3][l] ^= s[1][l];
                    s[1][l] ^= s[2][l];
                    s[0][l] ^= s[3][l];
                    s[2][l] ^= x;
                    s[3][l] = s[3][l].rotate_left(45);
                    let lo = u64::from(r & 0xFF_FFFF >= threshold);
                    let hi = u64::from((r >> 32) & 0xFF_FFFF >= threshold);
                    word[l] |= (lo | hi << 1) << (2 * step);
                }
            }
            for (l, &w) in word.iter().enumerate().take(n) {
                let out = &mut buf[l * size + t..l * size + t + 2 * steps];
                for (b, o) in out.iter_mut().enumerate() {
                    *o = ((w >> b) & 1) as u8;
                }
            }
            t += 2 * steps;
        }
    }
}

/// The mask value `1/(1−p)` of a kept element, as [`dropout_mask`] computes it.
pub fn keep_scale<T: Float>(p: f64) -> T {
    T::c(1.0 / (1.0 - p))
}

/// r[cnn.dropout.forward] `y = x ⊙ m`, in place.
///
/// PyTorch equivalent: `nn.Dropout(p)` in training mode, with the mask made explicit.
#[inline(never)]
pub fn dropout_forward<T: Float>(x: &mut [T], mask: &[T]) {
    assert_eq!(x.len(), mask.len(), "dropout_forward: lengths differ");
    for (v, &m) in x.iter_mut().zip(mask) {
        *v *= m;
    }
}

/// r[cnn.dropout.backward] `∂L/∂x = ∂L/∂y ⊙ m`, in place.
#[inline(never)]
pub fn dropout_backward<T: Float>(dy: &mut [T], mask: &[T]) {
    assert_eq!(dy.len(), mask.len(), "dropout_backward: lengths differ");
    for (g, &m) in dy.iter_mut().zip(mask) {
        *g *= m;
    }
}
