//! The forward pass, `Y[o, q] = b[o] + Σ_k W[o, k]·X[off(k) + q]` over the wide positions `q`
//! (see "Forward" in the docs of [`super`]): the safe entry points, which check every length
//! and take an [`Isa`] token, and the `unsafe` kernel they call, generic over [`Simd`].
use super::check_geometry;
use crate::cnn::conv::{ConvParams, ConvShape};
use crate::kernels::cpu::Isa;
use crate::kernels::simd::kernel_args;

/// Forward of one image: `y[o, oy, ox] = b[o] + Σ_{c,ki,kj} W[o,c,ki,kj]·x[c, oy+ki, ox+kj]`.
///
/// # Shapes
/// `x: [CIN, H, W]` → `y: [COUT, OH, OW]` (overwritten). Same result as
/// [`crate::cnn::conv::conv_forward`] on one image, up to f32 rounding.
///
/// # Panics
/// If a slice length does not match its shape (checked before anything else).
pub fn forward_image<S: ConvShape>(
    cpu: impl Into<Isa>,
    p: &S::Params<f32>,
    x: &[f32],
    y: &mut [f32],
) {
    image::<S>(cpu.into(), p.weight(), p.bias(), x, y);
}

/// [`forward_image`] with the weights (`[COUT, CIN, K, K]`) and the bias as slices.
///
/// # Panics
/// If a slice length does not match its shape (checked before anything else).
pub(super) fn image<S: ConvShape>(cpu: Isa, w: &[f32], b: &[f32], x: &[f32], y: &mut [f32]) {
    check_geometry::<S>();
    assert_eq!(w.len(), S::COUT * S::KK, "forward_image: weight length");
    assert_eq!(b.len(), S::COUT, "forward_image: bias length");
    assert_eq!(x.len(), S::CIN * S::H * S::W, "forward_image: x length");
    assert_eq!(y.len(), S::COUT * S::OH * S::OW, "forward_image: y length");
    let g = super::Geom::of::<S>();
    cpu.vectorize(Fwd::<S>::new(&g, w, b, x, y));
}

/// Whether the direct forward pass of `S` runs over dense vectors of 16 outputs instead of
/// wide ones (`K > 1`, output rows a multiple of 8 and planes a multiple of 16: conv2 and conv5
/// of the network). Both layouts give the same bits, the dense one computes no lane it throws
/// away; `tests/cnn_conv_simd.rs` pins which shapes take it, so that a change to the choice is
/// seen although no output changes.
pub const fn dense_layout<S: ConvShape>() -> bool {
    kernel::compact::<S>()
}

kernel_args! {
    /// The arguments of [`kernel::forward`], run by [`Isa::vectorize`].
    struct Fwd<'a, S: ConvShape> {
        g: &'a super::Geom,
        w: &'a [f32],
        b: &'a [f32],
        x: &'a [f32],
        y: &'a mut [f32],
    }
    fn run(v) {
        // SAFETY: `image` asserted the weight, bias, x and y lengths against the geometry, and
        // `check_geometry` proves `OH = H−K+1`, `OW = W−K+1`: all that `forward` requires
        // besides the token `v`.
        unsafe { kernel::forward::<V, S>(v, g, w, b, x, y) }
    }
}

mod kernel {
    use crate::cnn::conv::ConvShape;
    use crate::kernels::conv::{Geom, LANES as L, Slot, slot};
    use crate::kernels::simd::Simd;

    /// The forward pass of one image.
    ///
    /// # Safety
    /// `w.len() = cout·CIN·K·K` (`[cout, CIN, K, K]`), `bias.len() = cout`,
    /// `x.len() = CIN·h·w`, `y.len() = cout·oh·ow`, and `oh = h−K+1`, `ow = w−K+1`. (The
    /// token `s` proves the CPU features.)
    #[inline(always)]
    pub(super) unsafe fn forward<V: Simd, S: ConvShape>(
        s: V,
        g: &Geom,
        w: &[f32],
        bias: &[f32],
        x: &[f32],
        y: &mut [f32],
    ) {
        debug_assert_eq!(w.len(), g.cout * S::CIN * S::K * S::K);
        debug_assert_eq!(bias.len(), g.cout);
        debug_assert_eq!(x.len(), S::CIN * g.h * g.w);
        debug_assert_eq!(y.len(), g.cout * g.oh * g.ow);
        debug_assert!(g.oh + S::K == g.h + 1 && g.ow + S::K == g.w + 1);
        if compact::<S>() {
            // SAFETY: the preconditions of `forward` are those of `forward_compact`, and the
            // shape is one it takes.
            unsafe { forward_compact::<V, S>(s, g, w, bias, x, y) };
            return;
        }
        let nv = g.nv();
        let mut v0 = 0;
        while v0 < nv {
            // SAFETY: the preconditions of `forward` are those of `forward_group`, and
            // `v0 < nv`.
            // Narrow instruction sets (16 registers of half a vector for AVX2) take one
            // vector at a time; the grouping does not change any sum.
            unsafe {
                v0 += match nv - v0 {
                    _ if !V::WIDE => forward_group::<V, 1, S>(s, g, w, bias, x, y, v0),
                    1 => forward_group::<V, 1, S>(s, g, w, bias, x, y, v0),
                    2 => forward_group::<V, 2, S>(s, g, w, bias, x, y, v0),
                    _ => forward_group::<V, 3, S>(s, g, w, bias, x, y, v0),
                };
            }
        }
    }

    /// All output channels of the `NPV` wide vectors from `v0`; returns `NPV`.
    ///
    /// # Safety
    /// As [`forward`], and `v0 + NPV ≤ nv`.
    #[inline(always)]
    unsafe fn forward_group<V: Simd, const NPV: usize, S: ConvShape>(
        s: V,
        g: &Geom,
        w: &[f32],
        bias: &[f32],
        x: &[f32],
        y: &mut [f32],
        v0: usize,
    ) -> usize {
        let slots: [Slot; NPV] = std::array::from_fn(|v| slot(g, v0 + v));
        let q: [usize; NPV] = std::array::from_fn(|v| (v0 + v) * L);
        // Narrow instruction sets mask a load through a stack copy: keep that out of the tiles
        // whose vectors are all full (every one but the last).
        if !V::WIDE && slots.iter().all(|sl| sl.load == u16::MAX) {
            // SAFETY: as below; `forward_tile::<_, _, _, _, false>` differs only in loading
            // every lane, which the full load masks allow.
            unsafe { forward_tiles::<V, NPV, false, false, 0, S>(s, g, w, bias, x, y, &q, &slots) };
        } else {
            // SAFETY: the preconditions of `forward_tiles` are those of this function, and
            // `slots[v] = slot(g, v0 + v)`.
            unsafe { forward_tiles::<V, NPV, true, false, 0, S>(s, g, w, bias, x, y, &q, &slots) };
        }
        NPV
    }

    /// All output channels of the `NPV` vectors that `q` and `slots` describe (as in
    /// [`forward_tile`]), in tiles of output channels.
    ///
    /// # Safety
    /// The conditions of [`forward_tile`] on `q` and `slots`.
    #[allow(clippy::too_many_arguments)]
    #[inline(always)]
    unsafe fn forward_tiles<
        V: Simd,
        const NPV: usize,
        const MASKED: bool,
        const COMPACT: bool,
        const SPLIT: u8,
        S: ConvShape,
    >(
        s: V,
        g: &Geom,
        w: &[f32],
        bias: &[f32],
        x: &[f32],
        y: &mut [f32],
        q: &[usize; NPV],
        slots: &[Slot; NPV],
    ) {
        let mut o0 = 0;
        while o0 < g.cout {
            // SAFETY: preconditions of `forward_tile` hold: those of this function, and
            // `o0 + NO ≤ cout` by the choice of `NO`.
            unsafe {
                o0 += match g.cout - o0 {
                    1 => forward_tile::<V, 1, NPV, MASKED, COMPACT, SPLIT, S>(
                        s, g, w, bias, x, y, o0, q, slots,
                    ),
                    2 | 3 => forward_tile::<V, 2, NPV, MASKED, COMPACT, SPLIT, S>(
                        s, g, w, bias, x, y, o0, q, slots,
                    ),
                    // Narrow instruction sets: 6 channels (12 `ymm` accumulators on AVX2), but
                    // 4 + 4 rather than 6 + 2 for the last 8, as a 2-channel tile has too few
                    // independent FMA chains to hide their latency.
                    10.. | 6 | 7 if !V::WIDE => {
                        forward_tile::<V, 6, NPV, MASKED, COMPACT, SPLIT, S>(
                            s, g, w, bias, x, y, o0, q, slots,
                        )
                    }
                    8 | 9 if !V::WIDE => forward_tile::<V, 4, NPV, MASKED, COMPACT, SPLIT, S>(
                        s, g, w, bias, x, y, o0, q, slots,
                    ),
                    4..=7 => forward_tile::<V, 4, NPV, MASKED, COMPACT, SPLIT, S>(
                        s, g, w, bias, x, y, o0, q, slots,
                    ),
                    _ => forward_tile::<V, 8, NPV, MASKED, COMPACT, SPLIT, S>(
                        s, g, w, bias, x, y, o0, q, slots,
                    ),
                };
            }
        }
    }

    /// Output channels `o0..o0+NO` of `NPV` vectors of outputs; returns `NO`. A vector is 16
    /// wide positions from `q[v]` (its load mask and packed store in `slots[v]`), or, if
    /// `COMPACT`, the 16 outputs from the dense index `slots[v].dense` on, whose first one
    /// has the wide position `q[v]`: then bit `v` of `SPLIT` says that its lanes 8–15 start
    /// the next output row (see [`forward_compact`]).
    ///
    /// # Safety
    /// As [`forward`], `o0 + NO ≤ cout`, and either (wide) `q[v] = 16·v'` of a wide vector
    /// `v' < nv` with `slots[v] = slot(g, v')` and every load mask full unless `MASKED`, or
    /// (`COMPACT`) the conditions of [`forward_compact`] for the dense vectors `slots[v]`
    /// names.
    #[allow(clippy::too_many_arguments)]
    #[inline(always)]
    unsafe fn forward_tile<
        V: Simd,
        const NO: usize,
        const NPV: usize,
        const MASKED: bool,
        const COMPACT: bool,
        const SPLIT: u8,
        S: ConvShape,
    >(
        s: V,
        g: &Geom,
        w: &[f32],
        bias: &[f32],
        x: &[f32],
        y: &mut [f32],
        o0: usize,
        q: &[usize; NPV],
        slots: &[Slot; NPV],
    ) -> usize {
        let kk = S::CIN * S::K * S::K;
        let (hw, ww, ohow) = (g.h * g.w, g.w, g.oh * g.ow);
        // A split vector's lanes 8–15: the next row, `K − 1` wide positions further on.
        let hi = L / 2 + S::K - 1;
        let mut acc = [[s.zero(); NPV]; NO];
        for (a, &b) in acc.iter_mut().zip(&bias[o0..o0 + NO]) {
            *a = [s.splat(b); NPV];
        }
        let wt = w[o0 * kk..(o0 + NO) * kk].as_ptr();
        let xt = x.as_ptr();
        // SAFETY: (loads only) weight reads are `wt[o·kk + k]` with `o < NO`, `k < kk`, inside the
        // `NO·kk` sub-slice. An input load for vector `v` and tap `(c, ki, kj)` starts at
        // `c·hw + ki·w + kj + q` with `q` its first wide position. Wide: `q < total` (as the
        // vector is one of the `nv`), and every lane it enables (`slots[v].load`) has `q' <
        // total = (oh−1)·w + ow`, so `c·hw + ki·w + kj + q' ≤ c·hw + (h−1)·w + w − 1 < CIN·hw`:
        // in bounds. Masked-off lanes are not accessed (without `MASKED` every mask is full).
        // Compact: the lanes loaded from `q` (16, or 8 when split) and from `q + hi` (8,
        // when split) are outputs of one row each (`x < ow`, `y < oh`), so the same bound
        // holds for each.
        unsafe {
            for c in 0..S::CIN {
                let xc = xt.add(c * hw);
                let wc = wt.add(c * S::K * S::K);
                for ki in 0..S::K {
                    for kj in 0..S::K {
                        let xp = xc.add(ki * ww + kj);
                        let mut xv = [s.zero(); NPV];
                        for (v, xv) in xv.iter_mut().enumerate() {
                            let p = xp.add(q[v]);
                            *xv = if COMPACT && SPLIT >> v & 1 != 0 {
                                s.load_halves(p, p.add(hi))
                            } else if MASKED && !COMPACT {
                                s.load_masked(slots[v].load, p)
                            } else {
                                s.load(p)
                            };
                        }
                        for (o, a) in acc.iter_mut().enumerate() {
                            let wv = s.splat(*wc.add(o * kk + ki * S::K + kj));
                            for (a, &xv) in a.iter_mut().zip(&xv) {
                                *a = s.fma(wv, xv, *a);
                            }
                        }
                    }
                }
            }
        }
        let yp = y.as_mut_ptr();
        if COMPACT {
            for (o, a) in acc.iter().enumerate() {
                for (v, sl) in slots.iter().enumerate() {
                    // SAFETY: all 16 outputs from the dense index `sl.dense` are in plane
                    // `o0 + o < cout` (`forward_compact`).
                    unsafe { s.store(yp.add((o0 + o) * ohow + sl.dense), a[v]) };
                }
            }
            return NO;
        }
        for (v, sl) in slots.iter().enumerate() {
            // SAFETY: the `count` real lanes are consecutive output pixels starting at the dense
            // index `dense` of plane `o0 + o < cout`, all `< oh·ow` (or none: mask 0), so the
            // packed store stays inside `y`. When there is at least one and the 16 floats from
            // `dense` stay inside the plane, the store may leave anything past them: those are
            // pixels of later wide vectors of the same plane, which are stored later (vectors
            // are stored in increasing order, here and in `forward`), so every pixel ends up
            // with its own value.
            unsafe {
                if sl.valid != 0 && sl.dense + L <= ohow {
                    for (o, a) in acc.iter().enumerate() {
                        let p = yp.add((o0 + o) * ohow + sl.dense);
                        s.store_compressed_window(p, sl.valid, a[v]);
                    }
                } else {
                    for (o, a) in acc.iter().enumerate() {
                        s.store_compressed(yp.add((o0 + o) * ohow + sl.dense), sl.valid, a[v]);
                    }
                }
            }
        }
        NO
    }

    /// Whether the forward pass of `S` runs over dense vectors of 16 outputs instead of wide
    /// ones ([`forward_compact`]): when `K > 1` (otherwise `W = OW` and the wide positions are
    /// the dense ones), the output rows are a multiple of 8 long and a plane a multiple of 16.
    /// Then a vector starts at a multiple of 8 in its row and its 16 outputs lie in one row,
    /// or in the last 8 of one and the first 8 of the next. (conv2, conv5.)
    pub(super) const fn compact<S: ConvShape>() -> bool {
        S::K > 1 && S::OW.is_multiple_of(L / 2) && (S::OH * S::OW).is_multiple_of(L)
    }

    /// The forward pass over dense vectors: vector `v` holds outputs `16v .. 16v+16` of a plane,
    /// whose inputs for a tap are the 16 floats from the wide position of output `16v`, or,
    /// when the vector spans two rows, 8 from there and 8 from the next row's start (one
    /// [`Simd::load_halves`]). No lane is thrown away (the wide layout computes `K − 1` of
    /// every `W`: 8 % of conv2, 20 % of conv5) and the stores are whole vectors. Each output
    /// is still one FMA chain over the taps in `(c, ki, kj)` order from the bias, so the bits
    /// are those of the wide layout.
    ///
    /// # Safety
    /// As [`forward`], and `compact::<S>()`.
    #[inline(always)]
    unsafe fn forward_compact<V: Simd, S: ConvShape>(
        s: V,
        g: &Geom,
        w: &[f32],
        bias: &[f32],
        x: &[f32],
        y: &mut [f32],
    ) {
        debug_assert!(compact::<S>());
        let nv = g.oh * g.ow / L;
        // Vector `v`: the wide position of its first output, its slot (the dense index of
        // that output; every lane loaded and stored), and whether its lanes 8–15 start the
        // next row.
        let at = |v: usize| {
            let d = v * L;
            let (oy, ox) = (d / g.ow, d % g.ow);
            let slot = Slot {
                load: u16::MAX,
                valid: u16::MAX,
                dense: d,
            };
            (oy * g.w + ox, slot, ox + L > g.ow)
        };
        macro_rules! tiles {
            ($npv:literal, $split:literal, $v0:expr) => {{
                let v0 = $v0;
                let (q, slots): ([usize; $npv], [Slot; $npv]) = (
                    std::array::from_fn(|v| at(v0 + v).0),
                    std::array::from_fn(|v| at(v0 + v).1),
                );
                // SAFETY: the preconditions of `forward_tiles` for dense vectors: those of this
                // function, `v0 + NPV ≤ nv`, and `SPLIT` the vectors' split bits (checked by
                // the caller's match).
                unsafe {
                    forward_tiles::<V, $npv, false, true, $split, S>(
                        s, g, w, bias, x, y, &q, &slots,
                    )
                };
                $npv
            }};
        }
        let mut v0 = 0;
        while v0 < nv {
            let split = |v: usize| at(v).2;
            v0 += if V::WIDE && nv - v0 >= 3 {
                match (split(v0), split(v0 + 1), split(v0 + 2)) {
                    (false, true, false) => tiles!(3, 0b010, v0),
                    (true, true, true) => tiles!(3, 0b111, v0),
                    (false, false, false) => tiles!(3, 0b000, v0),
                    _ if split(v0) => tiles!(1, 1, v0),
                    _ => tiles!(1, 0, v0),
                }
            } else if split(v0) {
                tiles!(1, 1, v0)
            } else {
                tiles!(1, 0, v0)
            };
        }
    }
}
