//! The weight gradient, `dW[o, k] += Σ dY[o, ·]·X[off(k) + ·]` summed over a group of images,
//! and the bias gradient (see "Weight gradient" in the docs of [`super`]): the safe entry
//! points, which check every length and take an [`Isa`] token, and the `unsafe` kernels they
//! call, generic over [`Simd`], one per layout of `dY` (transposed when `COUT` is a multiple of
//! 16, else in wide rows).
use super::{LANES, wide_dy, wide_vectors};
use super::{check_geometry, image_scratch_len_of};
use crate::cnn::conv::{ConvParams, ConvShape};
use crate::kernels::cpu::Isa;
use crate::kernels::simd::kernel_args;

/// Weight gradient of one image, **added** into `dw.weight` (the bias is left alone; see
/// [`backward_bias_image`]): `dw[o,c,ki,kj] += Σ_{y,x} dy[o,y,x]·x[c, y+ki, x+kj]`.
///
/// # Shapes
/// `dy: [COUT, OH, OW]`, `x: [CIN, H, W]`; `scratch` at least
/// [`image_scratch_len`](super::image_scratch_len) floats (contents irrelevant, overwritten).
///
/// # Panics
/// If a slice length does not match its shape (checked before anything else).
pub fn backward_weight_image<S: ConvShape>(
    cpu: impl Into<Isa>,
    dy: &[f32],
    x: &[f32],
    dw: &mut S::Params<f32>,
    scratch: &mut [f32],
) {
    check_geometry::<S>();
    let dy_len = S::COUT * S::OH * S::OW;
    assert_eq!(dy.len(), dy_len, "backward_weight_image: dy length");
    assert_eq!(
        x.len(),
        S::CIN * S::H * S::W,
        "backward_weight_image: x length"
    );
    assert!(
        scratch.len() >= image_scratch_len_of::<S>(),
        "backward_weight_image: scratch shorter than image_scratch_len"
    );
    group::<S>(cpu.into(), dy, x, dw.weight_mut(), scratch);
}

/// The weight gradient of `n ≥ 1` images (`dy`, `x` hold exactly `n` each), summed in
/// registers and added into `dw` (`[COUT, CIN, K, K]`). `scratch` needs `n` images of wide or
/// transposed `dY` plus alignment slack (see [`super::scratch_len`]).
///
/// # Panics
/// If `dy` and `x` do not hold the same number `n ≥ 1` of whole images, `dw` has the wrong
/// length, or `scratch` is too short (all checked before any AVX-512 instruction runs).
pub(super) fn group<S: ConvShape>(
    cpu: Isa,
    dy: &[f32],
    x: &[f32],
    dw: &mut [f32],
    scratch: &mut [f32],
) {
    check_geometry::<S>();
    let (cout, oh, ow) = (S::COUT, S::OH, S::OW);
    let (dyi, xi) = (cout * oh * ow, S::CIN * S::H * S::W);
    let n = dy.len() / dyi;
    assert!(
        n >= 1 && dy.len() == n * dyi && n.checked_mul(xi) == Some(x.len()),
        "weight gradient: dy and x must hold the same number of whole images"
    );
    assert_eq!(dw.len(), cout * S::KK, "weight gradient: dw length");
    if super::weight_by_channel(cout) {
        // `n·dyi = dy.len()`, so the product does not overflow.
        let dyt = &mut super::aligned(scratch)[..n * dyi];
        cpu.vectorize(ByChannel::<S>::new(n, dy, dyt, x, dw));
    } else {
        let (dyw, dy_stride) = wide_dy::<S>(dy, scratch);
        let row = wide_vectors(oh, ow, S::W) * LANES;
        // What the kernel reads of `dyw`, computed without overflow: exactly the `n` images
        // `wide_dy` returns (it needs only `≤`, but `wide_dy` promises `n` whole strides, so
        // any other length means the geometry above is wrong).
        let extent = (n - 1)
            .checked_mul(dy_stride)
            .and_then(|e| e.checked_add(cout * row));
        assert!(
            extent == Some(dyw.len()),
            "weight gradient: wide dY is not {n} images of {cout} rows of {row} floats"
        );
        let g = super::Geom::of::<S>();
        let grp = kernel::Group {
            n,
            dyw,
            dy_stride,
            x,
            x_stride: xi,
        };
        cpu.vectorize(Wide::<S>::new(&g, &grp, dw));
    }
}

kernel_args! {
    /// The arguments of [`kernel::backward_weight_by_channel`] (after transposing `dy` into
    /// `dyt`), run by [`Isa::vectorize`].
    struct ByChannel<'a, S: ConvShape> {
        n: usize,
        dy: &'a [f32],
        dyt: &'a mut [f32],
        x: &'a [f32],
        dw: &'a mut [f32],
    }
    fn run(v) {
        let dyi = S::COUT * S::OH * S::OW;
        for (t, d) in dyt.chunks_exact_mut(dyi).zip(dy.chunks_exact(dyi)) {
            kernel::transpose(v, d, t, S::COUT, S::OH * S::OW);
        }
        // SAFETY: `check_geometry` accepted the shape; `backward_weight_by_channel` asserts
        // the rest of its preconditions (here: `dyt` is `n` images of `[COUT/16, OH·OW, 16]`,
        // `x` is `n` images of `[CIN, H, W]`, `dw` is `COUT·CIN·K·K`, `COUT` a multiple of 16).
        unsafe { kernel::backward_weight_by_channel::<V, S>(v, n, dyt, x, dw) }
    }
}

kernel_args! {
    /// The arguments of [`kernel::backward_weight`], run by [`Isa::vectorize`].
    struct Wide<'a, S: ConvShape> {
        g: &'a super::Geom,
        grp: &'a kernel::Group<'a>,
        dw: &'a mut [f32],
    }
    fn run(v) {
        // SAFETY: `n ≥ 1`; each of the `n` images has `COUT` wide rows of `16·nv` floats at
        // stride `dy_stride` inside `dyw` (the extent asserted in `group`) and a
        // `[CIN, H, W]` input at stride `CIN·H·W` in `x` (`x.len() = n·CIN·H·W`, asserted);
        // `dw` is `COUT·CIN·K·K` (asserted) and `check_geometry` proves `OH = H−K+1`,
        // `OW = W−K+1`: all that `backward_weight` requires besides the token.
        unsafe { kernel::backward_weight::<V, S>(v, g, grp, dw) }
    }
}

/// Bias gradient of one image, **added** into `db.bias` (the weights are left alone):
/// `db[o] += Σ_{y,x} dy[o, y, x]`.
///
/// # Panics
/// If `dy.len() != COUT·OH·OW`.
pub fn backward_bias_image<S: ConvShape>(cpu: impl Into<Isa>, dy: &[f32], db: &mut S::Params<f32>) {
    bias_image::<S>(cpu.into(), dy, db.bias_mut());
}

/// [`backward_bias_image`] with `db` as a slice.
///
/// # Panics
/// If `dy.len() != COUT·OH·OW` or `db.len() != COUT`.
pub(super) fn bias_image<S: ConvShape>(cpu: Isa, dy: &[f32], db: &mut [f32]) {
    check_geometry::<S>();
    let (cout, ohw) = (S::COUT, S::OH * S::OW);
    assert_eq!(dy.len(), cout * ohw, "backward_bias_image: dy length");
    assert_eq!(db.len(), cout, "backward_bias_image: db length");
    cpu.vectorize(Bias::new(ohw, dy, db));
}

kernel_args! {
    /// The arguments of [`kernel::sum`] over the planes of one image, run by [`Isa::vectorize`].
    struct Bias<'a> {
        ohw: usize,
        dy: &'a [f32],
        db: &'a mut [f32],
    }
    fn run(v) {
        for (d, plane) in db.iter_mut().zip(dy.chunks_exact(ohw)) {
            *d += kernel::sum(v, plane);
        }
    }
}

mod kernel {
    use crate::cnn::conv::ConvShape;
    use crate::kernels::conv::{Geom, LANES as L, mask_low, slot};
    use crate::kernels::simd::Simd;

    /// `t[(b·p_len + p)·16 + r] = s[(16b + r)·p_len + p]`: the `[c, p_len]` matrix `s`
    /// transposed into blocks of 16 rows, `[c/16, p_len, 16]`, by 16×16 shuffles where they
    /// fit, element by element at the edge. Each block is one stream of 64-byte rows, so a
    /// kernel that reads one block at a time (AVX2) reads memory in order.
    ///
    /// # Panics
    /// Unless `c` is a multiple of 16 and `s.len() = t.len() = c·p_len` (without overflow).
    #[inline(always)]
    pub(super) fn transpose<V: Simd>(v: V, s: &[f32], t: &mut [f32], c: usize, p_len: usize) {
        let len = c.checked_mul(p_len);
        assert!(
            c.is_multiple_of(L) && len == Some(s.len()) && len == Some(t.len()),
            "transpose: {} and {} floats for a {c}×{p_len} matrix",
            s.len(),
            t.len()
        );
        let (cb, pb) = (c / L, p_len / L);
        let tp = t.as_mut_ptr();
        for ob in 0..cb {
            for qb in 0..pb {
                // SAFETY: rows `16·ob + r < c` of `s` from column `16·qb`, 16 floats each
                // (`16·qb + 16 ≤ p_len`); rows `ob·p_len + 16·qb + r < cb·p_len` of `t`, 16
                // floats each: all inside the `c·p_len` slices.
                unsafe {
                    v.transpose16_mem(
                        |i| s.as_ptr().add((ob * L + i) * p_len + qb * L),
                        u16::MAX,
                        |i| tp.add((ob * p_len + qb * L + i) * L),
                        u16::MAX,
                        L,
                    )
                }
            }
        }
        // The edge: pixels past the last full block (written as `p_len` less its remainder
        // rather than `pb·16`, so that no mutant of the bound can start the edge early and
        // rewrite, unobservably, what the shuffles wrote).
        let edge = p_len - p_len % L;
        for o in 0..c {
            for q in edge..p_len {
                t[((o / L) * p_len + q) * L + o % L] = s[o * p_len + q];
            }
        }
    }

    /// Where the images of a weight-gradient group are: `n` images, image `i`'s wide `dY`
    /// row `o` at `dyw[i·dy_stride + o·16·nv ..]`, its input at `x[i·x_stride ..]`.
    pub(super) struct Group<'a> {
        pub n: usize,
        pub dyw: &'a [f32],
        pub dy_stride: usize,
        pub x: &'a [f32],
        pub x_stride: usize,
    }

    /// The weight gradient of a group of images, summed over the images and added into `dw`.
    ///
    /// # Safety
    /// `n ≥ 1`; each image's `dY` is `cout` wide rows of `16·nv` floats (zero at `x ≥ ow`):
    /// `dyw.len() ≥ (n−1)·dy_stride + cout·16·nv`; each input is `[CIN, h, w]`:
    /// `x.len() ≥ (n−1)·x_stride + CIN·h·w`; `dw.len() = cout·CIN·K·K`; and `oh = h−K+1`,
    /// `ow = w−K+1`. (The token `s` proves the CPU features.)
    #[inline(always)]
    pub(super) unsafe fn backward_weight<V: Simd, S: ConvShape>(
        s: V,
        g: &Geom,
        grp: &Group<'_>,
        dw: &mut [f32],
    ) {
        let kk = S::CIN * S::K * S::K;
        let row = g.nv() * L;
        debug_assert!(grp.n >= 1);
        debug_assert!(grp.dyw.len() >= (grp.n - 1) * grp.dy_stride + g.cout * row);
        debug_assert!(grp.x.len() >= (grp.n - 1) * grp.x_stride + S::CIN * g.h * g.w);
        debug_assert_eq!(dw.len(), g.cout * kk);
        debug_assert!(g.oh + S::K == g.h + 1 && g.ow + S::K == g.w + 1);
        let last = slot(g, g.nv() - 1).load;
        let mut o0 = 0;
        while o0 < g.cout {
            let no = match g.cout - o0 {
                1 => 1,
                _ if !V::WIDE => 1,
                2 | 3 => 2,
                _ => 4,
            };
            let mut k0 = 0;
            while k0 < kk {
                // SAFETY: preconditions of `bw_tile`: those of this function,
                // `o0 + NO ≤ cout` and `k0 + NT ≤ kk` by the choice of `NO`, `NT`, and `last`
                // is the load mask of the last vector.
                unsafe {
                    k0 += match (no, kk - k0) {
                        (4, 6..) => bw_tile::<V, 4, 6, S>(s, g, grp, last, dw, o0, k0),
                        (4, 3..=5) => bw_tile::<V, 4, 3, S>(s, g, grp, last, dw, o0, k0),
                        (4, _) => bw_tile::<V, 4, 1, S>(s, g, grp, last, dw, o0, k0),
                        (2, 6..) => bw_tile::<V, 2, 6, S>(s, g, grp, last, dw, o0, k0),
                        (2, _) => bw_tile::<V, 2, 1, S>(s, g, grp, last, dw, o0, k0),
                        (_, 6..) => bw_tile::<V, 1, 6, S>(s, g, grp, last, dw, o0, k0),
                        (_, _) => bw_tile::<V, 1, 1, S>(s, g, grp, last, dw, o0, k0),
                    };
                }
            }
            o0 += no;
        }
    }

    /// `dw[o, k] += Σ_i Σ_q dyw_i[o, q]·x_i[off(k) + q]` for `o0 ≤ o < o0+NO`,
    /// `k0 ≤ k < k0+NT`; returns `NT`.
    ///
    /// # Safety
    /// As [`backward_weight`], `o0 + NO ≤ cout`, `k0 + NT ≤ CIN·K·K`, and `last` is the load
    /// mask of the last wide vector.
    #[inline(always)]
    unsafe fn bw_tile<V: Simd, const NO: usize, const NT: usize, S: ConvShape>(
        s: V,
        g: &Geom,
        grp: &Group<'_>,
        last: u16,
        dw: &mut [f32],
        o0: usize,
        k0: usize,
    ) -> usize {
        const { assert!(NO * NT <= 32, "bw_tile reduces at most 32 accumulators") }
        let kk = S::CIN * S::K * S::K;
        let nv = g.nv();
        let row = nv * L;
        let hw = g.h * g.w;
        let off: [usize; NT] = std::array::from_fn(|t| {
            let (c, r) = ((k0 + t) / (S::K * S::K), (k0 + t) % (S::K * S::K));
            c * hw + (r / S::K) * g.w + r % S::K
        });
        let mut acc = [[s.zero(); NT]; NO];
        for i in 0..grp.n {
            let dyp = grp.dyw[i * grp.dy_stride + o0 * row..][..NO * row].as_ptr();
            let xp = grp.x[i * grp.x_stride..][..S::CIN * hw].as_ptr();
            // SAFETY: (loads only) `dyp[o·row + 16v .. +16]` with `o < NO`, `v < nv` lies in the
            // `NO·row` sub-slice. An input load starts at `off(k) + 16v` whose first position
            // `16v < total` (`v < nv`); all vectors but the last are entirely below `total`,
            // the last is masked to `q < total`; and `off(k) + q < CIN·hw` for `q < total`,
            // as in `forward_tile`.
            unsafe {
                for v in 0..nv {
                    let m = if v + 1 < nv { !0 } else { last };
                    let mut d = [s.zero(); NO];
                    for (o, d) in d.iter_mut().enumerate() {
                        *d = s.load(dyp.add(o * row + v * L));
                    }
                    for (t, &off) in off.iter().enumerate() {
                        let xv = s.load_masked(m, xp.add(off + v * L));
                        for (a, &d) in acc.iter_mut().zip(&d) {
                            a[t] = s.fma(d, xv, a[t]);
                        }
                    }
                }
            }
        }
        // Horizontal sums, 16 accumulators at a time, in the order [o][t].
        let mut flat = [[s.zero(); 16]; 2];
        for (i, a) in acc.iter().flatten().enumerate() {
            flat[i / 16][i % 16] = *a;
        }
        let mut sums = [0.0f32; 32];
        for (h, out) in sums.chunks_exact_mut(16).enumerate() {
            if 16 * h < NO * NT {
                // SAFETY: `out` is 16 floats.
                unsafe { s.store(out.as_mut_ptr(), s.reduce16(flat[h])) };
            }
        }
        for o in 0..NO {
            let drow = &mut dw[(o0 + o) * kk + k0..][..NT];
            for (d, s) in drow.iter_mut().zip(&sums[o * NT..(o + 1) * NT]) {
                *d += s;
            }
        }
        NT
    }

    /// The weight gradient of `n` images vectorised over output channels, added into `dw`:
    /// `dw[o, (c, ki, kj)] += Σ_i Σ_{y,x} dyt_i[o/16, y·OW + x, o%16]·x_i[c, y+ki, x+kj]`,
    /// where `dyt_i` is image `i`'s `dY` transposed into blocks of 16 channels
    /// (`[COUT/16, OH·OW, 16]`, see [`transpose`]).
    ///
    /// Register tile: `NOV` vectors of 16 output channels × `NC` input channels × the `K`
    /// columns `kj` of one kernel row `ki` (24 accumulators for conv2: 2 × 4 × 3). Per pixel:
    /// `NOV` loads of `dyt`, `NC·K` broadcasts of `x` (4-byte loads, which never split a
    /// cache line; their offsets are compile-time constants from one base), `NOV·NC·K` FMAs.
    /// No lane is wasted and nothing is reduced across lanes; each accumulator lane is
    /// finally added to its own `dw` element.
    ///
    /// # Safety
    /// The shape is one that [`check_geometry`](crate::kernels::conv) accepts (so the
    /// sizes below do not overflow). The other preconditions are asserted here: `COUT % 16 =
    /// 0`, `OH = H−K+1`, `OW = W−K+1`, `dyt.len() = n·OH·OW·COUT` (`[COUT/16, OH·OW, 16]` per
    /// image), `x.len() = n·CIN·H·W` and `dw.len() = COUT·CIN·K·K`. (The token `s` proves the
    /// CPU features.)
    #[inline(always)]
    pub(super) unsafe fn backward_weight_by_channel<V: Simd, S: ConvShape>(
        s: V,
        n: usize,
        dyt: &[f32],
        x: &[f32],
        dw: &mut [f32],
    ) {
        assert!(S::COUT.is_multiple_of(L) && S::OH + S::K == S::H + 1 && S::OW + S::K == S::W + 1);
        assert!(n.checked_mul(S::OH * S::OW * S::COUT) == Some(dyt.len()));
        assert!(n.checked_mul(S::CIN * S::H * S::W) == Some(x.len()));
        assert_eq!(dw.len(), S::COUT * S::CIN * S::K * S::K);
        let mut ov0 = 0;
        while ov0 < S::COUT / L {
            let nov = if V::WIDE && S::COUT / L - ov0 >= 2 {
                2
            } else {
                1
            };
            let budget = if V::WIDE { 24 } else { 6 };
            for ki in 0..S::K {
                let mut c0 = 0;
                while c0 < S::CIN {
                    // The widest channel tile with at most 24 accumulators that fits.
                    let rem = S::CIN - c0;
                    let fits = |nc: usize| nc <= rem && nc * S::K * nov <= budget;
                    let nc = [8, 4, 2, 1].into_iter().find(|&nc| fits(nc)).unwrap_or(1);
                    // SAFETY: preconditions of `bwc_tile`: those of this function,
                    // `ov0 + NOV ≤ COUT/16`, `c0 + NC ≤ CIN`, `ki < K`.
                    unsafe {
                        macro_rules! tile {
                            ($nc:literal, $nov:literal) => {
                                bwc_tile::<V, $nc, $nov, S>(s, n, dyt, x, dw, ov0, ki, c0)
                            };
                        }
                        match (nc, nov) {
                            (8, 2) => tile!(8, 2),
                            (4, 2) => tile!(4, 2),
                            (2, 2) => tile!(2, 2),
                            (1, 2) => tile!(1, 2),
                            (8, _) => tile!(8, 1),
                            (4, _) => tile!(4, 1),
                            (2, _) => tile!(2, 1),
                            _ => tile!(1, 1),
                        }
                    }
                    c0 += nc;
                }
            }
            ov0 += nov;
        }
    }

    /// One tile of [`backward_weight_by_channel`]: output channels `16·ov0 .. 16·(ov0+NOV)`,
    /// input channels `c0 .. c0+NC`, kernel row `ki`, all `kj`.
    ///
    /// # Safety
    /// As [`backward_weight_by_channel`], `ov0 + NOV ≤ COUT/16`, `c0 + NC ≤ CIN`, `ki < K`.
    #[allow(clippy::too_many_arguments)]
    #[inline(always)]
    unsafe fn bwc_tile<V: Simd, const NC: usize, const NOV: usize, S: ConvShape>(
        s: V,
        n: usize,
        dyt: &[f32],
        x: &[f32],
        dw: &mut [f32],
        ov0: usize,
        ki: usize,
        c0: usize,
    ) {
        let hw = S::H * S::W;
        let mut acc = [S::taps([s.zero(); NOV]); NC];
        for i in 0..n {
            let dp = dyt[i * S::OH * S::OW * S::COUT..][..S::OH * S::OW * S::COUT].as_ptr();
            let xp = x[i * S::CIN * hw..][..S::CIN * hw].as_ptr();
            // SAFETY: (loads only) `dyt_i[((ov0 + j)·OH·OW + y·OW + x)·16 .. +16]` with
            // `y < OH`, `x < OW`, `ov0 + j < COUT/16`: inside image `i`'s `OH·OW·COUT` floats.
            // `x_i[(c0+t)·hw + (ki+y)·W + kj + x]` with `c0 + t < CIN`, `ki + y ≤ H−1`,
            // `kj + x ≤ W−1`: inside image `i`'s `CIN·hw` floats.
            unsafe {
                for y in 0..S::OH {
                    let xr = xp.add(c0 * hw + (ki + y) * S::W);
                    let dr = dp.add((ov0 * S::OH * S::OW + y * S::OW) * L);
                    for xx in 0..S::OW {
                        let mut d = [s.zero(); NOV];
                        for (j, d) in d.iter_mut().enumerate() {
                            *d = s.load(dr.add((j * S::OH * S::OW + xx) * L));
                        }
                        for (t, at) in acc.iter_mut().enumerate() {
                            for (kj, a) in at.as_mut().iter_mut().enumerate() {
                                let b = s.splat(*xr.add(t * hw + kj + xx));
                                for (a, &d) in a.iter_mut().zip(&d) {
                                    *a = s.fma(d, b, *a);
                                }
                            }
                        }
                    }
                }
            }
        }
        let kk = S::CIN * S::K * S::K;
        let mut lanes = [0.0f32; L];
        for (t, at) in acc.iter().enumerate() {
            for (kj, a) in at.as_ref().iter().enumerate() {
                let k = ((c0 + t) * S::K + ki) * S::K + kj;
                for (j, &v) in a.iter().enumerate() {
                    // SAFETY: `lanes` is 16 floats.
                    unsafe { s.store(lanes.as_mut_ptr(), v) };
                    for (l, &s) in lanes.iter().enumerate() {
                        dw[((ov0 + j) * L + l) * kk + k] += s;
                    }
                }
            }
        }
    }

    /// `Σ x`: 4 × 16 lane-wise partial sums, then a fixed reduction tree. Safe: every load
    /// stays inside `x`.
    #[inline(always)]
    pub(super) fn sum<V: Simd>(s: V, x: &[f32]) -> f32 {
        let mut acc = [s.zero(); 4];
        let mut blocks = x.chunks_exact(4 * L);
        for b in &mut blocks {
            for (j, a) in acc.iter_mut().enumerate() {
                // SAFETY: `b` is 64 floats, so lanes `16j .. 16j+16` are inside it.
                *a = s.add(*a, unsafe { s.load(b.as_ptr().add(j * L)) });
            }
        }
        let mut chunks = blocks.remainder().chunks(L);
        for a in &mut acc {
            let Some(ch) = chunks.next() else { break };
            // SAFETY: the mask enables only the `ch.len() ≤ 16` lanes inside `ch`.
            let v = unsafe { s.load_masked(mask_low(ch.len() as u32), ch.as_ptr()) };
            *a = s.add(*a, v);
        }
        let t = s.add(s.add(acc[0], acc[1]), s.add(acc[2], acc[3]));
        s.reduce_add(t)
    }
}
