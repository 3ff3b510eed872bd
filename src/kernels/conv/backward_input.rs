//! The input gradient, `dX[c, off'(k) + q] += Σ_o W[o, k]·dYw[o, q]` per tap `k` (see "Input
//! gradient" in the docs of [`super`]): the safe entry points, which check every length and
//! take an [`Isa`] token, and the `unsafe` kernel they call, generic over [`Simd`].
use super::{LANES, check_geometry, image_scratch_len_of, wide_dy, wide_vectors};
use crate::cnn::conv::{ConvParams, ConvShape};
use crate::kernels::cpu::Isa;
use crate::kernels::simd::kernel_args;

/// Input gradient of one image: `dx[c, y, x] = Σ_{o,ki,kj} W[o,c,ki,kj]·dy[o, y−ki, x−kj]`.
///
/// # Shapes
/// `dy: [COUT, OH, OW]` → `dx: [CIN, H, W]` (overwritten); `scratch` at least
/// [`image_scratch_len`](super::image_scratch_len) floats (contents irrelevant, overwritten). The weights are
/// used as they are.
///
/// # Panics
/// If a slice length does not match its shape (checked before anything else).
pub fn backward_input_image<S: ConvShape>(
    cpu: impl Into<Isa>,
    p: &S::Params<f32>,
    dy: &[f32],
    dx: &mut [f32],
    scratch: &mut [f32],
) {
    image::<S>(cpu.into(), p.weight(), dy, dx, scratch);
}

/// [`backward_input_image`] with the weights (`[COUT, CIN, K, K]`) as a slice.
///
/// # Panics
/// If a slice length does not match its shape (checked before anything else).
pub(super) fn image<S: ConvShape>(
    cpu: Isa,
    w: &[f32],
    dy: &[f32],
    dx: &mut [f32],
    scratch: &mut [f32],
) {
    check_geometry::<S>();
    let (cout, oh, ow) = (S::COUT, S::OH, S::OW);
    assert_eq!(w.len(), cout * S::KK, "backward_input_image: weight length");
    assert_eq!(dy.len(), cout * oh * ow, "backward_input_image: dy length");
    assert_eq!(
        dx.len(),
        S::CIN * S::H * S::W,
        "backward_input_image: dx length"
    );
    assert!(
        scratch.len() >= image_scratch_len_of::<S>(),
        "backward_input_image: scratch shorter than image_scratch_len"
    );
    let (dyw, _) = wide_dy::<S>(dy, scratch);
    let dyw = &dyw[..cout * wide_vectors(oh, ow, S::W) * LANES];
    let g = super::Geom::of::<S>();
    cpu.vectorize(Bwi::<S>::new(&g, w, dyw, dx));
}

kernel_args! {
    /// The arguments of [`kernel::backward_input`], run by [`Isa::vectorize`].
    struct Bwi<'a, S: ConvShape> {
        g: &'a super::Geom,
        w: &'a [f32],
        dyw: &'a [f32],
        dx: &'a mut [f32],
    }
    fn run(v) {
        // SAFETY: `w` is `COUT·CIN·K·K`, `dyw` is `COUT` wide rows of `16·nv` floats (sliced in
        // `image`), `dx` is `[CIN, H, W]` (asserted in `image`), and `check_geometry` proves
        // `OH = H−K+1`, `OW = W−K+1`: all that `backward_input` requires besides the token.
        unsafe { kernel::backward_input::<V, S>(v, g, w, dyw, dx) }
    }
}

mod kernel {
    use crate::cnn::conv::ConvShape;
    use crate::kernels::conv::{Geom, LANES as L, slot};
    use crate::kernels::simd::Simd;

    /// The input gradient of one image: `dx` is zeroed, then
    /// `dx[off(k) + q] += Σ_o W[o, k]·dyw[o, q]` for every tap `k` and wide position `q`. With
    /// `K = 1` the one tap covers every element of `dx` once, so each sum is stored as
    /// `0 + Σ` (the very addition the zeroed element would receive) without the zeroing pass
    /// and the load.
    ///
    /// # Safety
    /// `w.len() = cout·CIN·K·K` (`[cout, CIN, K, K]`), `dyw.len() = cout·16·nv` (wide rows,
    /// zero at `x ≥ ow`), `dx.len() = CIN·h·w`, and `oh = h−K+1`, `ow = w−K+1`. (The token
    /// `s` proves the CPU features.)
    #[inline(always)]
    pub(super) unsafe fn backward_input<V: Simd, S: ConvShape>(
        s: V,
        g: &Geom,
        w: &[f32],
        dyw: &[f32],
        dx: &mut [f32],
    ) {
        let kk = S::CIN * S::K * S::K;
        debug_assert_eq!(w.len(), g.cout * kk);
        debug_assert_eq!(dyw.len(), g.cout * g.nv() * L);
        debug_assert_eq!(dx.len(), S::CIN * g.h * g.w);
        debug_assert!(g.oh + S::K == g.h + 1 && g.ow + S::K == g.w + 1);
        if S::K > 1 {
            dx.fill(0.0);
        }
        let nv = g.nv();
        let mut v0 = 0;
        while v0 < nv {
            // SAFETY: the preconditions of `backward_input` are those of `bi_group`, and
            // `v0 < nv`.
            unsafe {
                v0 += match nv - v0 {
                    1 => bi_group::<V, 1, S>(s, g, w, dyw, dx, v0),
                    2 => bi_group::<V, 2, S>(s, g, w, dyw, dx, v0),
                    _ => bi_group::<V, 3, S>(s, g, w, dyw, dx, v0),
                };
            }
        }
    }

    /// All taps of the `NPV` wide vectors from `v0`; returns `NPV`.
    ///
    /// # Safety
    /// As [`backward_input`], and `v0 + NPV ≤ nv`.
    ///
    /// The grouping of vectors fixes the order in which the taps are added into `dx`, so it
    /// is the same on every instruction set; only the channel tile `NT` is narrower when
    /// registers are fewer.
    #[inline(always)]
    unsafe fn bi_group<V: Simd, const NPV: usize, S: ConvShape>(
        s: V,
        g: &Geom,
        w: &[f32],
        dyw: &[f32],
        dx: &mut [f32],
        v0: usize,
    ) -> usize {
        let masks: [u16; NPV] = std::array::from_fn(|v| slot(g, v0 + v).load);
        // Tiles of input channels at one kernel position `r = ki·K + kj`: the `NT` sums a tile
        // adds into `dx` lie in different planes, so no store has to forward into an
        // overlapping, shifted load (which would stall), as would tiles of neighbouring taps.
        for r in 0..S::K * S::K {
            let mut c0 = 0;
            while c0 < S::CIN {
                if !V::WIDE {
                    // Narrow instruction sets hold one vector of a tile at a time (`NPV = 1`
                    // per call, wider channel tiles). Each `dx` element still receives its
                    // sums in the same order, by `r` and then by vector: the same bits.
                    let mut nt = 0;
                    for (v, &mask) in masks.iter().enumerate() {
                        let (v1, m) = (v0 + v, [mask]);
                        // SAFETY: preconditions of `bi_tile`: those of `backward_input`,
                        // `v1 + 1 ≤ v0 + NPV ≤ nv`, `c0 + NT ≤ CIN` by the choice of `NT`,
                        // `r < K·K`, `m[0] = slot(g, v1).load`, and the mask full unless
                        // `MASKED`.
                        unsafe {
                            macro_rules! tile {
                                ($nt:literal) => {
                                    if mask == u16::MAX {
                                        bi_tile::<V, $nt, 1, false, S>(
                                            s, g, w, dyw, dx, c0, r, v1, &m,
                                        )
                                    } else {
                                        bi_tile::<V, $nt, 1, true, S>(
                                            s, g, w, dyw, dx, c0, r, v1, &m,
                                        )
                                    }
                                };
                            }
                            nt = match S::CIN - c0 {
                                // 4 + 4 rather than 6 + 2 for the last 8 (see `forward`).
                                10.. | 6 | 7 => tile!(6),
                                4 | 5 | 8 | 9 => tile!(4),
                                2 | 3 => tile!(2),
                                _ => tile!(1),
                            };
                        }
                    }
                    c0 += nt;
                    continue;
                }
                // SAFETY: preconditions of `bi_tile`: those of `backward_input`,
                // `v0 + NPV ≤ nv`, `c0 + NT ≤ CIN` by the choice of `NT`, `r < K·K`, and the
                // load masks.
                unsafe {
                    c0 += match S::CIN - c0 {
                        1 => bi_tile::<V, 1, NPV, true, S>(s, g, w, dyw, dx, c0, r, v0, &masks),
                        2 | 3 => bi_tile::<V, 2, NPV, true, S>(s, g, w, dyw, dx, c0, r, v0, &masks),
                        4..=7 => bi_tile::<V, 4, NPV, true, S>(s, g, w, dyw, dx, c0, r, v0, &masks),
                        _ => bi_tile::<V, 8, NPV, true, S>(s, g, w, dyw, dx, c0, r, v0, &masks),
                    };
                }
            }
        }
        NPV
    }

    /// Input channels `c0..c0+NT` at kernel position `r = ki·K + kj`, over the wide vectors
    /// `v0..v0+NPV`: the sums over the output channels are formed in registers, then added
    /// into `dx` at the tap's offset; returns `NT`.
    ///
    /// # Safety
    /// As [`backward_input`], `v0 + NPV ≤ nv`, `c0 + NT ≤ CIN`, `r < K·K`, and
    /// `masks[v] = slot(g, v0 + v).load`, every one of them full unless `MASKED`. Without
    /// `MASKED` the tile loads and stores whole vectors, with no mask work.
    #[allow(clippy::too_many_arguments)]
    #[inline(always)]
    unsafe fn bi_tile<
        V: Simd,
        const NT: usize,
        const NPV: usize,
        const MASKED: bool,
        S: ConvShape,
    >(
        s: V,
        g: &Geom,
        w: &[f32],
        dyw: &[f32],
        dx: &mut [f32],
        c0: usize,
        r: usize,
        v0: usize,
        masks: &[u16; NPV],
    ) -> usize {
        let kk = S::CIN * S::K * S::K;
        let row = g.nv() * L;
        let hw = g.h * g.w;
        let mut acc = [[s.zero(); NPV]; NT];
        let wp = w.as_ptr();
        let dyp = dyw.as_ptr();
        // SAFETY: (loads only) weights `w[o·kk + (c0+t)·K·K + r]` with `o < cout`, `c0 + t < CIN`,
        // `r < K·K`: inside `w`. `dyw[o·row + 16(v0+v) .. +16]` with `o < cout`,
        // `v0 + v < nv`: inside `dyw`.
        unsafe {
            for o in 0..g.cout {
                let mut dv = [s.zero(); NPV];
                for (v, dv) in dv.iter_mut().enumerate() {
                    *dv = s.load(dyp.add(o * row + (v0 + v) * L));
                }
                let wo = wp.add(o * kk + c0 * S::K * S::K + r);
                for (t, a) in acc.iter_mut().enumerate() {
                    let wv = s.splat(*wo.add(t * S::K * S::K));
                    for (a, &dv) in a.iter_mut().zip(&dv) {
                        *a = s.fma(wv, dv, *a);
                    }
                }
            }
        }
        let dxp = dx.as_mut_ptr();
        let shift = (r / S::K) * g.w + r % S::K;
        for (t, a) in acc.iter().enumerate() {
            let off = (c0 + t) * hw + shift;
            for (v, (&a, &m)) in a.iter().zip(masks).enumerate() {
                // SAFETY: the first position `q = 16(v0+v) < total` and every lane enabled by
                // `m` has `q' < total`, so `off + q' ≤ c·hw + (h−1)·w + w − 1 < CIN·hw`, as in
                // `forward_tile`; masked-off lanes are not accessed.
                unsafe {
                    let p = dxp.add(off + (v0 + v) * L);
                    // With `K = 1`, `dx` was not zeroed: this is the element's only sum.
                    if MASKED {
                        let cur = if S::K == 1 {
                            s.zero()
                        } else {
                            s.load_masked(m, p)
                        };
                        s.store_masked(p, m, s.add(cur, a));
                    } else {
                        let cur = if S::K == 1 { s.zero() } else { s.load(p) };
                        s.store(p, s.add(cur, a));
                    }
                }
            }
        }
        NT
    }
}
