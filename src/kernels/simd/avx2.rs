//! The AVX2+FMA build of [`Simd`]: two `__m256` per vector, lanes 0–7 and 8–15.
use super::{Simd, U64_LANES, x86_u64_ops};
use crate::kernels::cpu::Avx2;
use std::arch::x86_64::*;

/// `f` on each of the two registers of an integer vector, lanes 0–3 then 4–7 (the build's half
/// of [`super::x86_u64_ops`]).
#[inline(always)]
fn per_register(
    a: [__m256i; 2],
    b: [__m256i; 2],
    f: impl Fn(__m256i, __m256i) -> __m256i,
) -> [__m256i; 2] {
    [f(a[0], b[0]), f(a[1], b[1])]
}

/// [`Simd::store_compressed`] (`WINDOW` false) and [`Simd::store_compressed_window`] (true):
/// the full mask is one plain store; otherwise the lower half's `c0` packed lanes go to `p`
/// and the upper half's right after them (`pack_halves`), written lane-exact by `vmaskmovps`,
/// or, for the window, as whole halves (both inside it: `c0 ≤ 8`).
///
/// # Safety
/// As the method it serves.
#[inline(always)]
unsafe fn store_packed<const WINDOW: bool>(s: Avx2Simd, p: *mut f32, m: u16, v: [__m256; 2]) {
    if m == u16::MAX {
        // SAFETY: `popcount(m) = 16`, so `p .. p+16` is writable (the caller).
        return unsafe { s.store(p, v) };
    }
    let ([a, b], [c0, c1]) = pack_halves(m, v);
    // SAFETY: AVX2 (the token `s`). For the window, `p .. p+16` is writable and what lies
    // past the packed lanes is the caller's to overwrite. Otherwise `vmaskmovps` writes only
    // the lanes whose mask element is set: the lowest `c0` lanes from `p`, then the lowest
    // `c1` from `p + c0`, that is `p .. p + popcount(m)`, which the caller guarantees
    // writable (`wrapping_add`: `p + c0` may be one past the end).
    unsafe {
        if WINDOW {
            _mm256_storeu_ps(p, a);
            _mm256_storeu_ps(p.add(c0), b);
        } else {
            _mm256_maskstore_ps(p, first_lanes(c0), a);
            _mm256_maskstore_ps(p.wrapping_add(c0), first_lanes(c1), b);
        }
    }
}

/// The AVX2 build: two `__m256`, lanes 0–7 and 8–15.
#[derive(Clone, Copy)]
pub struct Avx2Simd(pub Avx2);

// SAFETY: made only from an `Avx2` token (the CPU has AVX2 and FMA); the methods use AVX
// and FMA only.
unsafe impl Simd for Avx2Simd {
    type V = [__m256; 2];
    type U = [__m256i; 2];
    #[inline(always)]
    fn u64_from_array(self, a: [u64; U64_LANES]) -> Self::U {
        // SAFETY: AVX (the token); `a` is 64 bytes, two loads of 32.
        unsafe {
            [
                _mm256_loadu_si256(a.as_ptr().cast()),
                _mm256_loadu_si256(a[4..].as_ptr().cast()),
            ]
        }
    }
    #[inline(always)]
    fn u64_to_array(self, v: Self::U) -> [u64; U64_LANES] {
        let mut a = [0; U64_LANES];
        // SAFETY: AVX (the token); `a` is 64 bytes, two stores of 32.
        unsafe {
            _mm256_storeu_si256(a.as_mut_ptr().cast(), v[0]);
            _mm256_storeu_si256(a[4..].as_mut_ptr().cast(), v[1]);
        }
        a
    }
    #[inline(always)]
    fn u64_splat(self, x: u64) -> Self::U {
        // SAFETY: AVX (the token; also below, AVX2 for every integer intrinsic).
        unsafe { [_mm256_set1_epi64x(x as i64); 2] }
    }
    x86_u64_ops! {
        binary: u64_add = _mm256_add_epi64, u64_xor = _mm256_xor_si256, u64_and = _mm256_and_si256, u64_or = _mm256_or_si256;
        shift: u64_shl = _mm256_sll_epi64, u64_shr = _mm256_srl_epi64;
    }
    #[inline(always)]
    fn u64_lt_mask(self, a: Self::U, b: Self::U) -> u8 {
        // SAFETY: AVX2 (the token). A signed comparison: both below 2⁶³ (the caller).
        unsafe {
            let lo = _mm256_movemask_pd(_mm256_castsi256_pd(_mm256_cmpgt_epi64(b[0], a[0])));
            let hi = _mm256_movemask_pd(_mm256_castsi256_pd(_mm256_cmpgt_epi64(b[1], a[1])));
            (lo | hi << 4) as u8
        }
    }
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
        // SAFETY: `p .. p + popcount(m)` is writable (the caller).
        unsafe { store_packed::<false>(self, p, m, v) }
    }
    #[inline(always)]
    unsafe fn store_compressed_window(self, p: *mut f32, m: u16, v: Self::V) {
        // SAFETY: `p .. p+16` is writable and what lies past the packed lanes is the caller's
        // to overwrite.
        unsafe { store_packed::<true>(self, p, m, v) }
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
static COMPRESS_INDEX: [[u8; 8]; 256] = compress_index_table();

/// [`COMPRESS_INDEX`], built at compile time.
const fn compress_index_table() -> [[u8; 8]; 256] {
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
}

/// Lanes `0 .. n` all ones, the others zero (`n ≤ 8`), loaded from a table.
#[inline(always)]
fn first_lanes(n: usize) -> __m256i {
    static ONES_THEN_ZEROS: [i32; 16] = [-1, -1, -1, -1, -1, -1, -1, -1, 0, 0, 0, 0, 0, 0, 0, 0];
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
