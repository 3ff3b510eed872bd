//! The NEON build of [`Simd`]: four `float32x4_t` per vector.
use super::{Simd, U64_LANES, u64_as_array};
use crate::kernels::cpu::Neon;
use std::arch::aarch64::*;

/// The NEON build: four `float32x4_t`, lanes 0–3, 4–7, 8–11, 12–15.
#[derive(Clone, Copy)]
pub struct NeonSimd(pub Neon);

// SAFETY: made only from a `Neon` token (NEON is part of the aarch64 baseline).
#[allow(unused_unsafe)]
unsafe impl Simd for NeonSimd {
    type V = [float32x4_t; 4];
    u64_as_array!();
    const WIDE: bool = false;
    #[inline(always)]
    fn zero(self) -> Self::V {
        // SAFETY: NEON (the token; also below for every intrinsic).
        unsafe { [vdupq_n_f32(0.0); 4] }
    }
    #[inline(always)]
    fn splat(self, x: f32) -> Self::V {
        // SAFETY: NEON (the token).
        unsafe { [vdupq_n_f32(x); 4] }
    }
    #[inline(always)]
    fn add(self, a: Self::V, b: Self::V) -> Self::V {
        // SAFETY: NEON (the token).
        unsafe {
            [
                vaddq_f32(a[0], b[0]),
                vaddq_f32(a[1], b[1]),
                vaddq_f32(a[2], b[2]),
                vaddq_f32(a[3], b[3]),
            ]
        }
    }
    #[inline(always)]
    fn fma(self, a: Self::V, b: Self::V, c: Self::V) -> Self::V {
        // SAFETY: NEON (the token). `vfmaq_f32(c, a, b)` is `c + a·b`, fused.
        unsafe {
            [
                vfmaq_f32(c[0], a[0], b[0]),
                vfmaq_f32(c[1], a[1], b[1]),
                vfmaq_f32(c[2], a[2], b[2]),
                vfmaq_f32(c[3], a[3], b[3]),
            ]
        }
    }
    #[inline(always)]
    unsafe fn load(self, p: *const f32) -> Self::V {
        // SAFETY: NEON (the token); the caller guarantees 16 readable floats.
        unsafe {
            [
                vld1q_f32(p),
                vld1q_f32(p.add(4)),
                vld1q_f32(p.add(8)),
                vld1q_f32(p.add(12)),
            ]
        }
    }
    #[inline(always)]
    unsafe fn load_halves(self, lo: *const f32, hi: *const f32) -> Self::V {
        // SAFETY: NEON (the token); 8 readable floats at `lo` and at `hi` (the caller).
        unsafe {
            [
                vld1q_f32(lo),
                vld1q_f32(lo.add(4)),
                vld1q_f32(hi),
                vld1q_f32(hi.add(4)),
            ]
        }
    }
    #[inline(always)]
    unsafe fn store(self, p: *mut f32, v: Self::V) {
        // SAFETY: NEON (the token); the caller guarantees 16 writable floats.
        unsafe {
            for (i, &v) in v.iter().enumerate() {
                vst1q_f32(p.add(4 * i), v);
            }
        }
    }
}
