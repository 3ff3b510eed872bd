//! The AVX-512 build of [`Simd`]: one `__m512` per vector, and the shuffle trees of its
//! [`Simd::transpose16`] and [`Simd::reduce16`] (the 16×16 transpose that lays `dY` out as
//! `[COUT/16, OH·OW, 16]` for the weight gradient, and the transposition tree that sums 16
//! accumulators across their lanes): pure data movement and additions in a fixed order.
use super::{LANES, Simd, U64_LANES, x86_u64_ops};
use crate::kernels::cpu::Avx512;
use std::arch::x86_64::*;

/// `f` on the one register of an integer vector (the build's half of [`super::x86_u64_ops`]).
#[inline(always)]
fn per_register(a: __m512i, b: __m512i, f: impl Fn(__m512i, __m512i) -> __m512i) -> __m512i {
    f(a, b)
}

/// The AVX-512 build: one `__m512`.
#[derive(Clone, Copy)]
pub struct Avx512Simd(pub Avx512);

// SAFETY: made only from an `Avx512` token (the CPU has AVX-512F/BW/VL); every method uses
// AVX-512F only.
unsafe impl Simd for Avx512Simd {
    type V = __m512;
    type U = __m512i;
    #[inline(always)]
    fn u64_from_array(self, a: [u64; U64_LANES]) -> __m512i {
        // SAFETY: AVX-512F (the token); `a` is 64 bytes.
        unsafe { _mm512_loadu_si512(a.as_ptr().cast()) }
    }
    #[inline(always)]
    fn u64_to_array(self, v: __m512i) -> [u64; U64_LANES] {
        let mut a = [0; U64_LANES];
        // SAFETY: AVX-512F (the token); `a` is 64 bytes.
        unsafe { _mm512_storeu_si512(a.as_mut_ptr().cast(), v) };
        a
    }
    #[inline(always)]
    fn u64_splat(self, x: u64) -> __m512i {
        // SAFETY: AVX-512F (the token; also below, for every intrinsic).
        unsafe { _mm512_set1_epi64(x as i64) }
    }
    x86_u64_ops! {
        binary: u64_add = _mm512_add_epi64, u64_xor = _mm512_xor_si512, u64_and = _mm512_and_si512, u64_or = _mm512_or_si512;
        shift: u64_shl = _mm512_sll_epi64, u64_shr = _mm512_srl_epi64;
    }
    #[inline(always)]
    fn u64_lt_mask(self, a: __m512i, b: __m512i) -> u8 {
        // SAFETY: AVX-512F (the token).
        unsafe { _mm512_cmplt_epu64_mask(a, b) }
    }
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
        unsafe { reduce16(a) }
    }
    #[inline(always)]
    fn reduce_add(self, v: __m512) -> f32 {
        // SAFETY: AVX-512F (the token).
        unsafe { _mm512_reduce_add_ps(v) }
    }
    #[inline(always)]
    fn transpose16(self, a: [__m512; 16]) -> [__m512; 16] {
        // SAFETY: AVX-512F (the token) is all `transpose16` is compiled for.
        unsafe { transpose16(a) }
    }
}

/// The 16×16 transpose of the rows `r`: unpack, then three rounds of shuffles.
#[inline]
#[target_feature(enable = "avx512f")]
fn transpose16(mut r: [__m512; 16]) -> [__m512; 16] {
    let mut t = [_mm512_setzero_ps(); 16];
    for i in 0..8 {
        t[2 * i] = _mm512_unpacklo_ps(r[2 * i], r[2 * i + 1]);
        t[2 * i + 1] = _mm512_unpackhi_ps(r[2 * i], r[2 * i + 1]);
    }
    for b in (0..16).step_by(4) {
        r[b] = _mm512_shuffle_ps::<0x44>(t[b], t[b + 2]);
        r[b + 1] = _mm512_shuffle_ps::<0xEE>(t[b], t[b + 2]);
        r[b + 2] = _mm512_shuffle_ps::<0x44>(t[b + 1], t[b + 3]);
        r[b + 3] = _mm512_shuffle_ps::<0xEE>(t[b + 1], t[b + 3]);
    }
    for b in [0, 8] {
        for j in 0..4 {
            t[b + j] = _mm512_shuffle_f32x4::<0x88>(r[b + j], r[b + 4 + j]);
            t[b + 4 + j] = _mm512_shuffle_f32x4::<0xDD>(r[b + j], r[b + 4 + j]);
        }
    }
    for j in 0..8 {
        r[j] = _mm512_shuffle_f32x4::<0x88>(t[j], t[8 + j]);
        r[8 + j] = _mm512_shuffle_f32x4::<0xDD>(t[j], t[8 + j]);
    }
    r
}

/// `r[i] = Σ_lanes a[i]`: a transposition tree of 15 adds and 30 shuffles, then one
/// permutation into natural order.
#[inline]
#[target_feature(enable = "avx512f")]
fn reduce16(a: [__m512; 16]) -> __m512 {
    // Level 1: 128-bit halves. l1[i] holds a[2i] in 128-lanes 0,1 and a[2i+1] in 2,3.
    let l1: [__m512; 8] = std::array::from_fn(|i| {
        let (p, q) = (a[2 * i], a[2 * i + 1]);
        _mm512_add_ps(
            _mm512_shuffle_f32x4::<0b01_00_01_00>(p, q),
            _mm512_shuffle_f32x4::<0b11_10_11_10>(p, q),
        )
    });
    // Level 2: l2[j] holds a[4j + l] in 128-lane l.
    let l2: [__m512; 4] = std::array::from_fn(|j| {
        let (p, q) = (l1[2 * j], l1[2 * j + 1]);
        _mm512_add_ps(
            _mm512_shuffle_f32x4::<0b10_00_10_00>(p, q),
            _mm512_shuffle_f32x4::<0b11_01_11_01>(p, q),
        )
    });
    // Level 3: in 128-lane l of l3[m], elements 0,1 belong to a[8m + l], 2,3 to
    // a[8m + 4 + l].
    let l3: [__m512; 2] = std::array::from_fn(|m| {
        let (p, q) = (l2[2 * m], l2[2 * m + 1]);
        _mm512_add_ps(
            _mm512_shuffle_ps::<0b01_00_01_00>(p, q),
            _mm512_shuffle_ps::<0b11_10_11_10>(p, q),
        )
    });
    // Level 4: element 4l + s holds the sum of a[4s + l].
    let r = _mm512_add_ps(
        _mm512_shuffle_ps::<0b10_00_10_00>(l3[0], l3[1]),
        _mm512_shuffle_ps::<0b11_01_11_01>(l3[0], l3[1]),
    );
    let idx = _mm512_setr_epi32(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15);
    _mm512_permutexvar_ps(idx, r)
}
