//! The portable SIMD layer of the direct convolutions ([`super::conv_simd`]): a 16-lane f32
//! vector and the handful of operations the kernels need, implemented once per instruction set
//! — AVX-512 as one `__m512`, AVX2+FMA as two `__m256`, NEON as four `float32x4_t`, and plain
//! Rust as `[f32; 16]` — so that the kernels are written once, generically over [`Simd`].
//!
//! # Dispatch
//! A value of a [`Simd`] type is a token: it exists only when the CPU has the features its
//! methods use (only [`super::cpu`] makes the tokens they are built from). [`Isa::vectorize`]
//! runs a [`Kernel`] with the right token inside a function compiled for the instruction set
//! (`#[target_feature]`); the kernels and the methods here are `#[inline(always)]`, so the whole
//! kernel is compiled for that instruction set.
//!
//! # Same bits on every instruction set
//! Every operation is lane-wise and rounds each lane exactly once (`fma` is fused everywhere,
//! `f32::mul_add` in the scalar build); the two cross-lane sums, [`Simd::reduce16`] and
//! [`Simd::reduce_add`], follow the AVX-512 build's fixed trees in every build. The kernels
//! therefore give the same bits on every instruction set; `tests/cnn_conv_simd.rs` checks it.
//!
//! Masks are `u16`, bit `i` for lane `i`. The non-AVX-512 builds take a fast path for the
//! full mask and go through a stack array for a partial one (only the last wide vector of an
//! image has one), except AVX2's masked load (`vmaskmovps`), its masked store (whole halves,
//! and the lowest lanes of a half in pieces of 4, 2 and 1: AMD's `vmaskmovps` to memory is
//! slow) and its packed store into a 16-float window ([`Simd::store_compressed_window`]:
//! `vpermps` per half).
use super::cpu::Isa;

/// Floats per vector.
pub const LANES: usize = 16;

/// A 16-lane f32 vector type and its operations, for one instruction set.
///
/// # Safety
/// Implementors may be constructed only when the CPU has every feature their methods use.
pub unsafe trait Simd: Copy {
    /// Sixteen f32 lanes.
    type V: Copy;
    /// Whether the instruction set has 32 registers of one vector each (AVX-512): the kernels
    /// then use their wide register tiles; otherwise tiles of at most 6 vectors.
    const WIDE: bool;

    /// All lanes 0.
    fn zero(self) -> Self::V;
    /// All lanes `x`.
    fn splat(self, x: f32) -> Self::V;
    /// `a + b`.
    fn add(self, a: Self::V, b: Self::V) -> Self::V;
    /// `a·b + c` with one rounding.
    fn fma(self, a: Self::V, b: Self::V, c: Self::V) -> Self::V;
    /// The lanes as an array (through [`Simd::store`]).
    #[inline(always)]
    fn to_array(self, v: Self::V) -> [f32; LANES] {
        let mut a = [0.0; LANES];
        // SAFETY: `Self` exists only on a CPU with its features; `a` is 16 floats.
        unsafe { self.store(a.as_mut_ptr(), v) };
        a
    }
    /// An array as a vector (through [`Simd::load`]).
    #[inline(always)]
    fn array_to_vec(self, a: [f32; LANES]) -> Self::V {
        // SAFETY: `Self` exists only on a CPU with its features; `a` is 16 floats.
        unsafe { self.load(a.as_ptr()) }
    }

    /// 16 floats from `p`.
    ///
    /// # Safety
    /// `p .. p+16` is readable.
    unsafe fn load(self, p: *const f32) -> Self::V;

    /// The lanes of `m` from `p`, 0 elsewhere.
    ///
    /// # Safety
    /// `p + i` is readable for every lane `i` in `m`; nothing else is read.
    #[inline(always)]
    unsafe fn load_masked(self, m: u16, p: *const f32) -> Self::V {
        if m == u16::MAX {
            // SAFETY: every lane is in the mask, so `p .. p+16` is readable.
            return unsafe { self.load(p) };
        }
        let mut a = [0.0f32; LANES];
        for (i, x) in a.iter_mut().enumerate() {
            if m >> i & 1 != 0 {
                // SAFETY: lane `i` is in the mask.
                *x = unsafe { *p.add(i) };
            }
        }
        self.array_to_vec(a)
    }

    /// Lanes 0–7 from `lo .. lo+8` and lanes 8–15 from `hi .. hi+8` (a vector of 16
    /// consecutive outputs that spans two rows of a wider input; see the forward pass).
    ///
    /// # Safety
    /// `lo .. lo+8` and `hi .. hi+8` are readable.
    #[inline(always)]
    unsafe fn load_halves(self, lo: *const f32, hi: *const f32) -> Self::V {
        let mut a = [0.0f32; LANES];
        for i in 0..LANES / 2 {
            // SAFETY: `i < 8`: inside the two readable runs (the caller).
            unsafe {
                a[i] = *lo.add(i);
                a[LANES / 2 + i] = *hi.add(i);
            }
        }
        self.array_to_vec(a)
    }

    /// A hint to bring the cache line holding `p` into the L1 cache; it never faults, so `p`
    /// may point anywhere. Nothing in the scalar and NEON builds.
    #[inline(always)]
    fn prefetch(self, p: *const f32) {
        let _ = p;
    }

    /// Writes the 16 lanes to `p`.
    ///
    /// # Safety
    /// `p .. p+16` is writable.
    unsafe fn store(self, p: *mut f32, v: Self::V);

    /// Writes the lanes of `m` to `p + lane`.
    ///
    /// # Safety
    /// `p + i` is writable for every lane `i` in `m`; nothing else is written.
    #[inline(always)]
    unsafe fn store_masked(self, p: *mut f32, m: u16, v: Self::V) {
        if m == u16::MAX {
            // SAFETY: every lane is in the mask, so `p .. p+16` is writable.
            return unsafe { self.store(p, v) };
        }
        let a = self.to_array(v);
        for (i, &x) in a.iter().enumerate() {
            if m >> i & 1 != 0 {
                // SAFETY: lane `i` is in the mask.
                unsafe { *p.add(i) = x };
            }
        }
    }

    /// Writes the lanes of `m`, in order, packed to `p .. p + popcount(m)`.
    ///
    /// # Safety
    /// `p .. p + popcount(m)` is writable.
    #[inline(always)]
    unsafe fn store_compressed(self, p: *mut f32, m: u16, v: Self::V) {
        if m == u16::MAX {
            // SAFETY: `popcount(m) = 16`, so `p .. p+16` is writable.
            return unsafe { self.store(p, v) };
        }
        let a = self.to_array(v);
        let mut j = 0;
        for (i, &x) in a.iter().enumerate() {
            if m >> i & 1 != 0 {
                // SAFETY: `j < popcount(m)`.
                unsafe { *p.add(j) = x };
                j += 1;
            }
        }
    }

    /// [`Simd::store_compressed`] into a 16-float window: the lanes of `m` are written packed
    /// to `p .. p + popcount(m)`, and `p + popcount(m) .. p + 16` are left holding unspecified
    /// values (the AVX2 build stores whole halves there, rather than lane by lane).
    ///
    /// # Safety
    /// `p .. p+16` is writable, and the caller overwrites (or does not need) what was there
    /// past `p + popcount(m)`.
    #[inline(always)]
    unsafe fn store_compressed_window(self, p: *mut f32, m: u16, v: Self::V) {
        // SAFETY: `p .. p + popcount(m)` is writable (the caller).
        unsafe { self.store_compressed(p, m, v) }
    }

    /// `r[i] = Σ_lanes a[i]`, each sum in the fixed order of the AVX-512 build's tree
    /// ([`hsum16_tree`]).
    #[inline(always)]
    fn reduce16(self, a: [Self::V; 16]) -> Self::V {
        let mut r = [0.0; LANES];
        for (r, &a) in r.iter_mut().zip(&a) {
            *r = hsum16_tree(self.to_array(a));
        }
        self.array_to_vec(r)
    }

    /// `Σ_lanes v` in the order of `_mm512_reduce_add_ps` ([`hsum16_halves`]).
    #[inline(always)]
    fn reduce_add(self, v: Self::V) -> f32 {
        hsum16_halves(self.to_array(v))
    }

    /// The 16×16 transpose: `r[j]` lane `i` = `a[i]` lane `j`.
    #[inline(always)]
    fn transpose16(self, a: [Self::V; 16]) -> [Self::V; 16] {
        let mut m = [[0.0; LANES]; 16];
        for (i, row) in a.iter().enumerate() {
            for (j, &x) in self.to_array(*row).iter().enumerate() {
                m[j][i] = x;
            }
        }
        let mut r = a;
        for (r, m) in r.iter_mut().zip(&m) {
            *r = self.array_to_vec(*m);
        }
        r
    }

    /// [`Simd::transpose16`] from memory to memory: for each row `j < rows` of the result, lane
    /// `i` of the 16 floats at `dst(j)` (written only for the lanes `i` of `sm`) = lane `j` of
    /// the 16 at `src(i)` (read only for the lanes `j` of `lm`, 0 elsewhere).
    ///
    /// The AVX2 build moves one 8×8 block at a time through registers, never the whole
    /// 16×16 (32 `ymm`, twice its register file), and skips the blocks that nothing reads.
    ///
    /// # Safety
    /// `src(i) + j` is readable for every `i < 16` and lane `j` of `lm`, `dst(j) + i` writable
    /// for every `j < rows` and lane `i` of `sm`; `rows ≤ 16`.
    #[inline(always)]
    unsafe fn transpose16_mem(
        self,
        src: impl Fn(usize) -> *const f32,
        lm: u16,
        dst: impl Fn(usize) -> *mut f32,
        sm: u16,
        rows: usize,
    ) {
        let mut a = [self.zero(); LANES];
        for (i, a) in a.iter_mut().enumerate() {
            // SAFETY: the lanes of `lm` at `src(i)` are readable (the caller).
            *a = unsafe { self.load_masked(lm, src(i)) };
        }
        let t = self.transpose16(a);
        for (j, &v) in t[..rows].iter().enumerate() {
            // SAFETY: the lanes of `sm` at `dst(j)` are writable, `j < rows` (the caller).
            unsafe { self.store_masked(dst(j), sm, v) };
        }
    }
}

/// The lanes' sum in the order of the AVX-512 build's shuffle tree
/// (`conv_simd::shuffle::reduce16`): 128-bit blocks 0+2 and 1+3, then the two halves, then
/// elements 0+2 and 1+3, then 0+1.
#[inline(always)]
pub fn hsum16_tree(x: [f32; LANES]) -> f32 {
    let b: [f32; 8] = std::array::from_fn(|i| {
        let (blk, e) = (i / 4, i % 4);
        x[blk * 4 + e] + x[(blk + 2) * 4 + e]
    });
    let h: [f32; 4] = std::array::from_fn(|e| b[e] + b[4 + e]);
    (h[0] + h[2]) + (h[1] + h[3])
}

/// The lanes' sum in the order of `_mm512_reduce_add_ps`: halves (`i + 8`), then quarters
/// (`i + 4`), then `i + 2`, then `0 + 1`.
#[inline(always)]
pub fn hsum16_halves(x: [f32; LANES]) -> f32 {
    let h: [f32; 8] = std::array::from_fn(|i| x[i] + x[i + 8]);
    let q: [f32; 4] = std::array::from_fn(|i| h[i] + h[i + 4]);
    (q[0] + q[2]) + (q[1] + q[3])
}

/// A computation generic over the instruction set; [`Isa::vectorize`] runs it.
pub trait Kernel {
    /// What it returns.
    type Out;
    /// Runs with the token `s`. Implementations should be `#[inline(always)]`, so that the body
    /// is compiled inside the instruction set's entry function.
    fn run<S: Simd>(self, s: S) -> Self::Out;
}

impl Isa {
    /// Runs `k` with this instruction set's [`Simd`] token, compiled for its features.
    #[inline]
    pub fn vectorize<K: Kernel>(self, k: K) -> K::Out {
        match self {
            Isa::Avx512(t) => {
                #[cfg(target_arch = "x86_64")]
                {
                    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2,fma")]
                    fn go<K: Kernel>(s: x86::Avx512Simd, k: K) -> K::Out {
                        k.run(s)
                    }
                    // SAFETY: the token `t` proves the CPU has AVX-512F/BW/VL (and so AVX2
                    // and FMA, which every AVX-512 CPU has).
                    unsafe { go(x86::Avx512Simd(t), k) }
                }
                #[cfg(not(target_arch = "x86_64"))]
                t.unreachable()
            }
            Isa::Avx2(t) => {
                #[cfg(target_arch = "x86_64")]
                {
                    #[target_feature(enable = "avx2,fma")]
                    fn go<K: Kernel>(s: x86::Avx2Simd, k: K) -> K::Out {
                        k.run(s)
                    }
                    // SAFETY: the token `t` proves the CPU has AVX2 and FMA.
                    unsafe { go(x86::Avx2Simd(t), k) }
                }
                #[cfg(not(target_arch = "x86_64"))]
                t.unreachable()
            }
            Isa::Neon(t) => {
                #[cfg(target_arch = "aarch64")]
                {
                    k.run(arm::NeonSimd(t))
                }
                #[cfg(not(target_arch = "aarch64"))]
                t.unreachable()
            }
            Isa::Scalar => k.run(Scalar),
        }
    }
}

/// The plain-Rust build: `[f32; 16]`, `f32::mul_add` per lane.
#[derive(Clone, Copy, Debug)]
pub struct Scalar;

// SAFETY: uses no CPU feature.
unsafe impl Simd for Scalar {
    type V = [f32; LANES];
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

#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::{LANES, Simd};
    use crate::cnn::cpu::{Avx2, Avx512};
    use std::arch::x86_64::*;

    /// The AVX-512 build: one `__m512`.
    #[derive(Clone, Copy)]
    pub struct Avx512Simd(pub Avx512);

    // SAFETY: made only from an `Avx512` token (the CPU has AVX-512F/BW/VL); every method uses
    // AVX-512F only.
    unsafe impl Simd for Avx512Simd {
        type V = __m512;
        const WIDE: bool = true;
        #[inline(always)]
        fn zero(self) -> __m512 {
            // SAFETY: the token proves AVX-512F (also below, for every intrinsic).
            unsafe { _mm512_setzero_ps() }
        }
        #[inline(always)]
        fn splat(self, x: f32) -> __m512 {
            // SAFETY: AVX-512F (the token).
            unsafe { _mm512_set1_ps(x) }
        }
        #[inline(always)]
        fn add(self, a: __m512, b: __m512) -> __m512 {
            // SAFETY: AVX-512F (the token).
            unsafe { _mm512_add_ps(a, b) }
        }
        #[inline(always)]
        fn fma(self, a: __m512, b: __m512, c: __m512) -> __m512 {
            // SAFETY: AVX-512F (the token).
            unsafe { _mm512_fmadd_ps(a, b, c) }
        }
        #[inline(always)]
        fn to_array(self, v: __m512) -> [f32; LANES] {
            let mut a = [0.0; LANES];
            // SAFETY: AVX-512F (the token); `a` is 16 floats.
            unsafe { _mm512_storeu_ps(a.as_mut_ptr(), v) };
            a
        }
        #[inline(always)]
        fn array_to_vec(self, a: [f32; LANES]) -> __m512 {
            // SAFETY: AVX-512F (the token); `a` is 16 floats.
            unsafe { _mm512_loadu_ps(a.as_ptr()) }
        }
        #[inline(always)]
        unsafe fn load(self, p: *const f32) -> __m512 {
            // SAFETY: AVX-512F (the token); the caller guarantees 16 readable floats.
            unsafe { _mm512_loadu_ps(p) }
        }
        #[inline(always)]
        fn prefetch(self, p: *const f32) {
            // SAFETY: SSE (the token); a prefetch never faults, whatever the address.
            unsafe { _mm_prefetch::<_MM_HINT_T0>(p.cast()) }
        }
        #[inline(always)]
        unsafe fn load_halves(self, lo: *const f32, hi: *const f32) -> __m512 {
            // SAFETY: AVX-512F (the token); 8 readable floats at `lo` and at `hi` (the caller).
            // The upper 256 bits are replaced as four f64 lanes, which moves the bits unchanged.
            unsafe {
                let v = _mm512_castps256_ps512(_mm256_loadu_ps(lo));
                let h = _mm256_castps_pd(_mm256_loadu_ps(hi));
                _mm512_castpd_ps(_mm512_insertf64x4(_mm512_castps_pd(v), h, 1))
            }
        }
        #[inline(always)]
        unsafe fn load_masked(self, m: u16, p: *const f32) -> __m512 {
            // SAFETY: AVX-512F (the token); masked-off lanes are not accessed, the others are
            // readable (the caller).
            unsafe { _mm512_maskz_loadu_ps(m, p) }
        }
        #[inline(always)]
        unsafe fn store(self, p: *mut f32, v: __m512) {
            // SAFETY: AVX-512F (the token); the caller guarantees 16 writable floats.
            unsafe { _mm512_storeu_ps(p, v) }
        }
        #[inline(always)]
        unsafe fn store_masked(self, p: *mut f32, m: u16, v: __m512) {
            // SAFETY: AVX-512F (the token); masked-off lanes are not accessed, the others are
            // writable (the caller).
            unsafe { _mm512_mask_storeu_ps(p, m, v) }
        }
        #[inline(always)]
        unsafe fn store_compressed(self, p: *mut f32, m: u16, v: __m512) {
            let store = ((1u32 << m.count_ones()) - 1) as u16;
            // SAFETY: AVX-512F (the token); the lowest `popcount(m)` lanes are written, which
            // the caller guarantees writable.
            unsafe { _mm512_mask_storeu_ps(p, store, _mm512_maskz_compress_ps(m, v)) }
        }
        #[inline(always)]
        fn reduce16(self, a: [__m512; 16]) -> __m512 {
            // SAFETY: AVX-512F (the token) is all `reduce16` is compiled for.
            unsafe { crate::cnn::conv_simd::shuffle_reduce16(a) }
        }
        #[inline(always)]
        fn reduce_add(self, v: __m512) -> f32 {
            // SAFETY: AVX-512F (the token).
            unsafe { _mm512_reduce_add_ps(v) }
        }
        #[inline(always)]
        fn transpose16(self, a: [__m512; 16]) -> [__m512; 16] {
            // SAFETY: AVX-512F (the token) is all `transpose16` is compiled for.
            unsafe { crate::cnn::conv_simd::shuffle_transpose16(a) }
        }
    }

    /// The AVX2 build: two `__m256`, lanes 0–7 and 8–15.
    #[derive(Clone, Copy)]
    pub struct Avx2Simd(pub Avx2);

    // SAFETY: made only from an `Avx2` token (the CPU has AVX2 and FMA); the methods use AVX
    // and FMA only.
    unsafe impl Simd for Avx2Simd {
        type V = [__m256; 2];
        const WIDE: bool = false;
        #[inline(always)]
        fn zero(self) -> Self::V {
            // SAFETY: AVX (the token; also below for every intrinsic).
            unsafe { [_mm256_setzero_ps(); 2] }
        }
        #[inline(always)]
        fn splat(self, x: f32) -> Self::V {
            // SAFETY: AVX (the token).
            unsafe { [_mm256_set1_ps(x); 2] }
        }
        #[inline(always)]
        fn add(self, a: Self::V, b: Self::V) -> Self::V {
            // SAFETY: AVX (the token).
            unsafe { [_mm256_add_ps(a[0], b[0]), _mm256_add_ps(a[1], b[1])] }
        }
        #[inline(always)]
        fn fma(self, a: Self::V, b: Self::V, c: Self::V) -> Self::V {
            // SAFETY: FMA (the token).
            unsafe {
                [
                    _mm256_fmadd_ps(a[0], b[0], c[0]),
                    _mm256_fmadd_ps(a[1], b[1], c[1]),
                ]
            }
        }
        #[inline(always)]
        unsafe fn load(self, p: *const f32) -> Self::V {
            // SAFETY: AVX (the token); the caller guarantees 16 readable floats.
            unsafe { [_mm256_loadu_ps(p), _mm256_loadu_ps(p.add(8))] }
        }
        #[inline(always)]
        fn prefetch(self, p: *const f32) {
            // SAFETY: SSE (the token); a prefetch never faults, whatever the address.
            unsafe { _mm_prefetch::<_MM_HINT_T0>(p.cast()) }
        }
        #[inline(always)]
        unsafe fn load_halves(self, lo: *const f32, hi: *const f32) -> Self::V {
            // SAFETY: AVX (the token); 8 readable floats at `lo` and at `hi` (the caller).
            unsafe { [_mm256_loadu_ps(lo), _mm256_loadu_ps(hi)] }
        }
        #[inline(always)]
        unsafe fn store(self, p: *mut f32, v: Self::V) {
            // SAFETY: AVX (the token); the caller guarantees 16 writable floats.
            unsafe {
                _mm256_storeu_ps(p, v[0]);
                _mm256_storeu_ps(p.add(8), v[1]);
            }
        }
        #[inline(always)]
        unsafe fn load_masked(self, m: u16, p: *const f32) -> Self::V {
            if m == u16::MAX {
                // SAFETY: every lane is in the mask, so `p .. p+16` is readable.
                return unsafe { self.load(p) };
            }
            // A half whose lanes are all in (or all out of) the mask needs no `vmaskmovps`:
            // the tail vectors of the small layers (conv4, conv5, conv7) are mostly such.
            // SAFETY: AVX2 (the token). A half with all 8 lanes in the mask is readable (the
            // caller), a half with none is not read, and `vmaskmovps` reads only the lanes
            // whose mask element is set (no fault, no access for the others), which are
            // readable; `wrapping_add` computes the address of the upper half without
            // claiming it is in bounds.
            unsafe {
                [
                    load_half(m as u8, p),
                    load_half((m >> 8) as u8, p.wrapping_add(8)),
                ]
            }
        }
        #[inline(always)]
        unsafe fn store_masked(self, p: *mut f32, m: u16, v: Self::V) {
            if m == u16::MAX {
                // SAFETY: every lane is in the mask, so `p .. p+16` is writable.
                return unsafe { self.store(p, v) };
            }
            // As `load_masked`: a full half is one store, an empty one none, the lowest `n`
            // lanes a few narrower stores (`store_half`), and only another mask needs
            // `vmaskmovps`.
            // SAFETY: AVX2 (the token). A half with all 8 lanes in the mask is writable (the
            // caller), a half with none is not written, and `vmaskmovps` writes only the lanes
            // whose mask element is set, which are writable; `wrapping_add` as in
            // `load_masked`.
            unsafe {
                store_half(m as u8, p, v[0]);
                store_half((m >> 8) as u8, p.wrapping_add(8), v[1]);
            }
        }
        #[inline(always)]
        unsafe fn store_compressed(self, p: *mut f32, m: u16, v: Self::V) {
            if m == u16::MAX {
                // SAFETY: `popcount(m) = 16`, so `p .. p+16` is writable (the caller).
                return unsafe { self.store(p, v) };
            }
            // SAFETY: AVX2 (the token). `vmaskmovps` writes only the lanes whose mask element
            // is set: the lowest `c0` lanes from `p`, then the lowest `c1` from `p + c0`, that
            // is `p .. p + popcount(m)`, which the caller guarantees writable (`wrapping_add`:
            // `p + c0` may be one past the end).
            unsafe {
                let ([a, b], [c0, c1]) = pack_halves(m, v);
                _mm256_maskstore_ps(p, first_lanes(c0), a);
                _mm256_maskstore_ps(p.wrapping_add(c0), first_lanes(c1), b);
            }
        }
        #[inline(always)]
        unsafe fn store_compressed_window(self, p: *mut f32, m: u16, v: Self::V) {
            if m == u16::MAX {
                // SAFETY: `p .. p+16` is writable (the caller).
                return unsafe { self.store(p, v) };
            }
            // SAFETY: AVX2 (the token); `p .. p+16` is writable and what lies past the packed
            // lanes is the caller's to overwrite.
            unsafe {
                // The upper half stored right after the packed lower one (both inside the
                // window: `c0 ≤ 8`).
                let ([a, b], [c0, _]) = pack_halves(m, v);
                _mm256_storeu_ps(p, a);
                _mm256_storeu_ps(p.add(c0), b);
            }
        }
        #[inline(always)]
        fn transpose16(self, a: [Self::V; 16]) -> [Self::V; 16] {
            // Four 8×8 blocks: rows `8b..8b+8`, half `h` becomes half `b` of rows `8h..8h+8`.
            let block = |b: usize, h: usize| transpose8(std::array::from_fn(|i| a[8 * b + i][h]));
            let (b00, b10, b01, b11) = (block(0, 0), block(1, 0), block(0, 1), block(1, 1));
            std::array::from_fn(|j| {
                if j < 8 {
                    [b00[j], b10[j]]
                } else {
                    [b01[j - 8], b11[j - 8]]
                }
            })
        }
        #[inline(always)]
        unsafe fn transpose16_mem(
            self,
            src: impl Fn(usize) -> *const f32,
            lm: u16,
            dst: impl Fn(usize) -> *mut f32,
            sm: u16,
            rows: usize,
        ) {
            // Block (b, h): lane half `h` of the rows read `8b .. 8b+8` becomes lane half `b`
            // of the rows written `8h .. 8h+8`, in 16 registers: 16 loads of 4 floats and 16
            // shuffles (`transpose8_load`) when the half is read whole, else 8 masked loads and
            // 24 shuffles; 8 stores.
            for h in 0..2 {
                if 8 * h >= rows {
                    break;
                }
                let (lmh, n) = ((lm >> (8 * h)) as u8, (rows - 8 * h).min(8));
                for b in 0..2 {
                    let smb = (sm >> (8 * b)) as u8;
                    if smb == 0 {
                        continue;
                    }
                    // SAFETY: half `h` of the row at `src(8b + i)` is readable for the lanes
                    // of `lmh`, half `b` of the row at `dst(8h + j)`, `j < n`, writable for
                    // the lanes of `smb` (the caller; `wrapping_add` as in `load_masked`).
                    unsafe {
                        let row = |i| src(8 * b + i).wrapping_add(8 * h);
                        let t = if lmh == 0xFF {
                            transpose8_load(row)
                        } else {
                            let mut a = [_mm256_setzero_ps(); 8];
                            for (i, a) in a.iter_mut().enumerate() {
                                *a = load_half(lmh, row(i));
                            }
                            transpose8(a)
                        };
                        for (j, &t) in t[..n].iter().enumerate() {
                            store_half(smb, dst(8 * h + j).wrapping_add(8 * b), t);
                        }
                    }
                }
            }
        }
    }

    /// The lanes of the 8-bit mask `m` from `p`, 0 elsewhere: a full mask is one load, an
    /// empty one none, and only a mixed one needs `vmaskmovps`.
    ///
    /// # Safety
    /// `p + i` is readable for every lane `i` of `m` (`vmaskmovps` reads only those lanes, and
    /// does not fault on the others).
    #[inline(always)]
    unsafe fn load_half(m: u8, p: *const f32) -> __m256 {
        // SAFETY: AVX2, which every caller is compiled for; the lanes read are readable.
        unsafe {
            match m {
                0 => _mm256_setzero_ps(),
                0xFF => _mm256_loadu_ps(p),
                _ => _mm256_maskload_ps(p, lane_mask(m)),
            }
        }
    }

    /// The lanes of the 8-bit mask `m` of `v` to `p`, nothing else written ([`load_half`]'s
    /// store). The lowest `n` lanes (the end of a run of positions, the usual partial mask)
    /// are stored 4, 2 and 1 at a time: `vmaskmovps` to memory is microcoded on AMD's cores
    /// (Zen 4 too) and far slower than its load.
    ///
    /// # Safety
    /// `p + i` is writable for every lane `i` of `m`.
    #[inline(always)]
    unsafe fn store_half(m: u8, p: *mut f32, v: __m256) {
        // SAFETY: AVX2, which every caller is compiled for; the lanes written are writable
        // (for the lowest `n` lanes: `p .. p + n`, stored in pieces that stay inside it).
        unsafe {
            match m {
                0 => {}
                0xFF => _mm256_storeu_ps(p, v),
                _ if m & m.wrapping_add(1) == 0 => {
                    let (mut n, mut p, mut x) = (m.trailing_ones(), p, _mm256_castps256_ps128(v));
                    if n >= 4 {
                        _mm_storeu_ps(p, x);
                        (n, p, x) = (n - 4, p.add(4), _mm256_extractf128_ps::<1>(v));
                    }
                    if n >= 2 {
                        _mm_storel_epi64(p.cast(), _mm_castps_si128(x));
                        (n, p, x) = (n - 2, p.add(2), _mm_movehl_ps(x, x));
                    }
                    if n == 1 {
                        _mm_store_ss(p, x);
                    }
                }
                _ => _mm256_maskstore_ps(p, lane_mask(m), v),
            }
        }
    }

    /// Each half of `v` with the lanes of its byte of `m` packed, in order, to its low lanes
    /// (the others are don't-cares), and each half's number of such lanes.
    #[inline(always)]
    fn pack_halves(m: u16, v: [__m256; 2]) -> ([__m256; 2], [usize; 2]) {
        let (m0, m1) = ((m & 0xFF) as usize, (m >> 8) as usize);
        // SAFETY: AVX2, which every caller is compiled for (they run on an `Avx2` token).
        unsafe {
            (
                [
                    _mm256_permutevar8x32_ps(v[0], compress_index(m0)),
                    _mm256_permutevar8x32_ps(v[1], compress_index(m1)),
                ],
                [
                    usize::from(COMPRESS_COUNT[m0]),
                    usize::from(COMPRESS_COUNT[m1]),
                ],
            )
        }
    }

    /// The 8×8 transpose of eight `ymm` rows: `r[j]` lane `i` = `a[i]` lane `j` (the usual
    /// unpack, shuffle and 128-bit permute stages; data movement only).
    #[inline(always)]
    fn transpose8(a: [__m256; 8]) -> [__m256; 8] {
        // SAFETY: AVX, which every caller is compiled for (they run on an `Avx2` token).
        unsafe {
            let t: [__m256; 8] = std::array::from_fn(|i| {
                let (x, y) = (a[i / 2 * 2], a[i / 2 * 2 + 1]);
                if i % 2 == 0 {
                    _mm256_unpacklo_ps(x, y)
                } else {
                    _mm256_unpackhi_ps(x, y)
                }
            });
            // u[0..4] from rows 0–3, u[4..8] from rows 4–7: columns (0, 4), (1, 5), (2, 6),
            // (3, 7) in the low and high 128-bit halves.
            let u: [__m256; 8] = std::array::from_fn(|i| {
                let (b, k) = (i / 4 * 4, i % 4);
                let (x, y) = (t[b + k / 2], t[b + 2 + k / 2]);
                if k % 2 == 0 {
                    _mm256_shuffle_ps::<0x44>(x, y)
                } else {
                    _mm256_shuffle_ps::<0xEE>(x, y)
                }
            });
            std::array::from_fn(|j| {
                if j < 4 {
                    _mm256_permute2f128_ps::<0x20>(u[j], u[4 + j])
                } else {
                    _mm256_permute2f128_ps::<0x31>(u[j - 4], u[j])
                }
            })
        }
    }

    /// [`transpose8`] of the eight rows of 8 floats at `p(i)`, with its 128-bit stage done by
    /// the loads: `x[r]` = columns `0..4` of rows `r` and `r + 4` (`vinsertf128` from memory),
    /// `x[4 + r]` their columns `4..8`, so two in-lane 4×4 transposes finish it (16 shuffles,
    /// not 24).
    ///
    /// # Safety
    /// `p(i) .. p(i) + 8` is readable for every `i < 8`.
    #[inline(always)]
    unsafe fn transpose8_load(p: impl Fn(usize) -> *const f32) -> [__m256; 8] {
        // SAFETY: AVX, which every caller is compiled for; the reads are inside the rows.
        unsafe {
            let mut x = [_mm256_setzero_ps(); 8];
            for (i, x) in x.iter_mut().enumerate() {
                let (r, h) = (i % 4, 4 * (i / 4));
                let lo = _mm256_castps128_ps256(_mm_loadu_ps(p(r).add(h)));
                *x = _mm256_insertf128_ps::<1>(lo, _mm_loadu_ps(p(r + 4).add(h)));
            }
            let mut out = [_mm256_setzero_ps(); 8];
            for q in 0..2 {
                let x = &x[4 * q..4 * q + 4];
                let t = [
                    _mm256_unpacklo_ps(x[0], x[1]),
                    _mm256_unpackhi_ps(x[0], x[1]),
                    _mm256_unpacklo_ps(x[2], x[3]),
                    _mm256_unpackhi_ps(x[2], x[3]),
                ];
                out[4 * q] = _mm256_shuffle_ps::<0x44>(t[0], t[2]);
                out[4 * q + 1] = _mm256_shuffle_ps::<0xEE>(t[0], t[2]);
                out[4 * q + 2] = _mm256_shuffle_ps::<0x44>(t[1], t[3]);
                out[4 * q + 3] = _mm256_shuffle_ps::<0xEE>(t[1], t[3]);
            }
            out
        }
    }

    /// Lane `i` all ones where bit `i` of `m` is set, else zero.
    #[inline(always)]
    fn lane_mask(m: u8) -> __m256i {
        // SAFETY: AVX2, which every caller is compiled for (they run on an `Avx2` token).
        unsafe {
            let bits = _mm256_setr_epi32(1, 2, 4, 8, 16, 32, 64, 128);
            let b = _mm256_and_si256(_mm256_set1_epi32(i32::from(m)), bits);
            _mm256_cmpeq_epi32(b, bits)
        }
    }

    /// The `vpermps` indices that pack the lanes of the 8-bit mask `m` to the low lanes, in
    /// order (the lanes past `popcount(m)` are don't-cares). One load from a table, no vector
    /// constant: nothing for the compiler to keep in a register across the kernels' loops.
    #[inline(always)]
    fn compress_index(m: usize) -> __m256i {
        // SAFETY: AVX2, which every caller is compiled for (they run on an `Avx2` token);
        // the table entry is 8 bytes.
        unsafe { _mm256_cvtepu8_epi32(_mm_loadl_epi64(COMPRESS_INDEX[m].as_ptr().cast())) }
    }

    /// Per 8-bit mask, the positions of its set bits in order.
    static COMPRESS_INDEX: [[u8; 8]; 256] = {
        let mut t = [[0u8; 8]; 256];
        let mut m = 0;
        while m < 256 {
            let (mut j, mut i) = (0, 0);
            while i < 8 {
                if m >> i & 1 != 0 {
                    t[m][j] = i as u8;
                    j += 1;
                }
                i += 1;
            }
            m += 1;
        }
        t
    };

    /// Lanes `0 .. n` all ones, the others zero (`n ≤ 8`), loaded from a table.
    #[inline(always)]
    fn first_lanes(n: usize) -> __m256i {
        static ONES_THEN_ZEROS: [i32; 16] =
            [-1, -1, -1, -1, -1, -1, -1, -1, 0, 0, 0, 0, 0, 0, 0, 0];
        let n = n.min(8);
        // SAFETY: AVX (every caller is compiled for AVX2); `8 − n + 8 ≤ 16` floats.
        unsafe { _mm256_loadu_si256(ONES_THEN_ZEROS.as_ptr().add(8 - n).cast()) }
    }

    /// Per 8-bit mask, its number of set bits.
    static COMPRESS_COUNT: [u8; 256] = {
        let mut t = [0u8; 256];
        let mut m = 0;
        while m < 256 {
            t[m] = (m as u32).count_ones() as u8;
            m += 1;
        }
        t
    };
}

#[cfg(target_arch = "aarch64")]
mod arm {
    use super::Simd;
    use crate::cnn::cpu::Neon;
    use std::arch::aarch64::*;

    /// The NEON build: four `float32x4_t`, lanes 0–3, 4–7, 8–11, 12–15.
    #[derive(Clone, Copy)]
    pub struct NeonSimd(pub Neon);

    // SAFETY: made only from a `Neon` token (NEON is part of the aarch64 baseline).
    #[allow(unused_unsafe)]
    unsafe impl Simd for NeonSimd {
        type V = [float32x4_t; 4];
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
}
