//! The plain-Rust build of [`Simd`]: runs anywhere, the same bits as the others.
use super::{LANES, Simd, U64_LANES, u64_as_array};

/// The plain-Rust build: `[f32; 16]`, `f32::mul_add` per lane.
#[derive(Clone, Copy, Debug)]
pub struct Scalar;

// SAFETY: uses no CPU feature.
unsafe impl Simd for Scalar {
    type V = [f32; LANES];
    u64_as_array!();
    const WIDE: bool = false;
    #[inline(always)]
    fn zero(self) -> Self::V {
        [0.0; LANES]
    }
    #[inline(always)]
    fn splat(self, x: f32) -> Self::V {
        [x; LANES]
    }
    #[inline(always)]
    fn add(self, a: Self::V, b: Self::V) -> Self::V {
        let mut r = a;
        for (r, &b) in r.iter_mut().zip(&b) {
            *r += b;
        }
        r
    }
    #[inline(always)]
    fn fma(self, a: Self::V, b: Self::V, c: Self::V) -> Self::V {
        let mut r = c;
        for ((r, &a), &b) in r.iter_mut().zip(&a).zip(&b) {
            *r = a.mul_add(b, *r);
        }
        r
    }
    #[inline(always)]
    fn to_array(self, v: Self::V) -> [f32; LANES] {
        v
    }
    #[inline(always)]
    fn array_to_vec(self, a: [f32; LANES]) -> Self::V {
        a
    }
    #[inline(always)]
    unsafe fn load(self, p: *const f32) -> Self::V {
        // SAFETY: the caller guarantees `p .. p+16` is readable.
        unsafe { p.cast::<[f32; LANES]>().read_unaligned() }
    }
    #[inline(always)]
    unsafe fn store(self, p: *mut f32, v: Self::V) {
        // SAFETY: the caller guarantees `p .. p+16` is writable.
        unsafe { p.cast::<[f32; LANES]>().write_unaligned(v) }
    }
}
