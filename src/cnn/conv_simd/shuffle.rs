//! The AVX-512 shuffle helpers of the weight gradient (the AVX-512 build of
//! [`crate::cnn::simd::Simd::transpose16`] and [`crate::cnn::simd::Simd::reduce16`]): the 16×16
//! transpose that lays `dY` out as `[COUT/16, OH·OW, 16]`, and the transposition tree that sums 16
//! accumulators across their lanes.
//! Pure data movement and additions in a fixed order.
use std::arch::x86_64::*;

/// The 16×16 transpose of the rows `r`: unpack, then three rounds of shuffles.
#[inline]
#[target_feature(enable = "avx512f")]
pub(crate) fn transpose16(mut r: [__m512; 16]) -> [__m512; 16] {
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
pub(crate) fn reduce16(a: [__m512; 16]) -> __m512 {
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
