//! The forward pass, `Y[o, q] = b[o] + Σ_k W[o, k]·X[off(k) + q]` over the wide positions `q`
//! (see "Forward" in the docs of [`super`]): the safe entry points, which check every length
//! and take the [`Avx512`] token, and the `unsafe` kernel they call.
use super::{check_geometry, check_shapes};
use crate::cnn::conv::Conv;
use crate::cnn::cpu::Avx512;

/// Forward of one image: `y[o, oy, ox] = b[o] + Σ_{c,ki,kj} W[o,c,ki,kj]·x[c, oy+ki, ox+kj]`.
///
/// # Shapes
/// `x: [CIN, H, W]` → `y: [COUT, OH, OW]` (overwritten). Same result as
/// [`crate::cnn::conv::conv_forward`] on one image, up to f32 rounding.
///
/// # Panics
/// If a slice length does not match its shape (checked before anything else).
pub fn forward_image<
    const CIN: usize,
    const COUT: usize,
    const K: usize,
    const KK: usize,
    const H: usize,
    const W: usize,
    const OH: usize,
    const OW: usize,
>(
    cpu: Avx512,
    p: &Conv<f32, CIN, COUT, K, KK>,
    x: &[f32],
    y: &mut [f32],
) {
    check_shapes::<CIN, COUT, K, KK, H, W, OH, OW>();
    image::<CIN, COUT, K, H, W, OH, OW>(cpu, p.weight.as_slice(), p.bias.as_slice(), x, y);
}

/// [`forward_image`] with the weights (`[COUT, CIN, K, K]`) and the bias as slices.
///
/// # Panics
/// If a slice length does not match its shape (checked before anything else).
pub(super) fn image<
    const CIN: usize,
    const COUT: usize,
    const K: usize,
    const H: usize,
    const W: usize,
    const OH: usize,
    const OW: usize,
>(
    cpu: Avx512,
    w: &[f32],
    b: &[f32],
    x: &[f32],
    y: &mut [f32],
) {
    check_geometry::<CIN, COUT, K, H, W, OH, OW>();
    assert_eq!(w.len(), COUT * CIN * K * K, "forward_image: weight length");
    assert_eq!(b.len(), COUT, "forward_image: bias length");
    assert_eq!(x.len(), CIN * H * W, "forward_image: x length");
    assert_eq!(y.len(), COUT * OH * OW, "forward_image: y length");
    #[cfg(target_arch = "x86_64")]
    {
        let g = super::Geom::of::<COUT, H, W, OH, OW>();
        // SAFETY: the weight, bias, x and y lengths match the geometry (asserted above), and
        // `check_geometry` proves `OH = H−K+1`, `OW = W−K+1`: all that `forward` requires
        // besides the token.
        unsafe { avx512::forward::<CIN, K>(cpu, &g, w, b, x, y) };
    }
    #[cfg(not(target_arch = "x86_64"))]
    cpu.unreachable()
}

#[cfg(target_arch = "x86_64")]
mod avx512 {
    use crate::cnn::conv_simd::{Geom, LANES as L, Slot, mask_low, slot};
    use crate::cnn::cpu::Avx512;
    use std::arch::x86_64::*;

    /// The forward pass of one image.
    ///
    /// # Safety
    /// `w.len() = cout·CIN·K·K` (`[cout, CIN, K, K]`), `bias.len() = cout`,
    /// `x.len() = CIN·h·w`, `y.len() = cout·oh·ow`, and `oh = h−K+1`, `ow = w−K+1`. (The
    /// token proves the CPU features.)
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn forward<const CIN: usize, const K: usize>(
        _cpu: Avx512,
        g: &Geom,
        w: &[f32],
        bias: &[f32],
        x: &[f32],
        y: &mut [f32],
    ) {
        debug_assert_eq!(w.len(), g.cout * CIN * K * K);
        debug_assert_eq!(bias.len(), g.cout);
        debug_assert_eq!(x.len(), CIN * g.h * g.w);
        debug_assert_eq!(y.len(), g.cout * g.oh * g.ow);
        debug_assert!(g.oh + K == g.h + 1 && g.ow + K == g.w + 1);
        let nv = g.nv();
        let mut v0 = 0;
        while v0 < nv {
            // SAFETY: the preconditions of `forward` are those of `forward_group`, and
            // `v0 < nv`.
            unsafe {
                v0 += match nv - v0 {
                    1 => forward_group::<1, CIN, K>(g, w, bias, x, y, v0),
                    2 => forward_group::<2, CIN, K>(g, w, bias, x, y, v0),
                    _ => forward_group::<3, CIN, K>(g, w, bias, x, y, v0),
                };
            }
        }
    }

    /// All output channels of the `NPV` wide vectors from `v0`; returns `NPV`.
    ///
    /// # Safety
    /// As [`forward`], and `v0 + NPV ≤ nv`.
    #[target_feature(enable = "avx512f")]
    unsafe fn forward_group<const NPV: usize, const CIN: usize, const K: usize>(
        g: &Geom,
        w: &[f32],
        bias: &[f32],
        x: &[f32],
        y: &mut [f32],
        v0: usize,
    ) -> usize {
        let slots: [Slot; NPV] = std::array::from_fn(|v| slot(g, v0 + v));
        let mut o0 = 0;
        while o0 < g.cout {
            // SAFETY: preconditions of `forward_tile` hold: those of `forward`,
            // `v0 + NPV ≤ nv`, and `o0 + NO ≤ cout` by the choice of `NO`.
            unsafe {
                o0 += match g.cout - o0 {
                    1 => forward_tile::<1, NPV, CIN, K>(g, w, bias, x, y, o0, v0, &slots),
                    2 | 3 => forward_tile::<2, NPV, CIN, K>(g, w, bias, x, y, o0, v0, &slots),
                    4..=7 => forward_tile::<4, NPV, CIN, K>(g, w, bias, x, y, o0, v0, &slots),
                    _ => forward_tile::<8, NPV, CIN, K>(g, w, bias, x, y, o0, v0, &slots),
                };
            }
        }
        NPV
    }

    /// Output channels `o0..o0+NO` of the wide vectors `v0..v0+NPV`; returns `NO`.
    ///
    /// # Safety
    /// As [`forward`], `v0 + NPV ≤ nv`, `o0 + NO ≤ cout`, and `slots[v] = slot(g, v0 + v)`.
    #[allow(clippy::too_many_arguments)]
    #[target_feature(enable = "avx512f")]
    unsafe fn forward_tile<const NO: usize, const NPV: usize, const CIN: usize, const K: usize>(
        g: &Geom,
        w: &[f32],
        bias: &[f32],
        x: &[f32],
        y: &mut [f32],
        o0: usize,
        v0: usize,
        slots: &[Slot; NPV],
    ) -> usize {
        let kk = CIN * K * K;
        let (hw, ww, ohow) = (g.h * g.w, g.w, g.oh * g.ow);
        let mut acc = [[_mm512_setzero_ps(); NPV]; NO];
        for (a, &b) in acc.iter_mut().zip(&bias[o0..o0 + NO]) {
            *a = [_mm512_set1_ps(b); NPV];
        }
        let wt = w[o0 * kk..(o0 + NO) * kk].as_ptr();
        let xt = x.as_ptr();
        // SAFETY: (loads only) weight reads are `wt[o·kk + k]` with `o < NO`, `k < kk`, inside the
        // `NO·kk` sub-slice. An input load for vector `v` and tap `(c, ki, kj)` starts at
        // `c·hw + ki·w + kj + q` with `q = 16·(v0+v)` its first wide position; `q < total`
        // (as `v0 + v < nv`), and every lane it enables (`slots[v].load`) has `q' < total =
        // (oh−1)·w + ow`, so `c·hw + ki·w + kj + q' ≤ c·hw + (h−1)·w + w − 1 < CIN·hw`: in
        // bounds. Masked-off lanes are not accessed.
        unsafe {
            for c in 0..CIN {
                let xc = xt.add(c * hw + v0 * L);
                let wc = wt.add(c * K * K);
                for ki in 0..K {
                    for kj in 0..K {
                        let xp = xc.add(ki * ww + kj);
                        let xv: [__m512; NPV] = std::array::from_fn(|v| {
                            _mm512_maskz_loadu_ps(slots[v].load, xp.add(v * L))
                        });
                        for (o, a) in acc.iter_mut().enumerate() {
                            let wv = _mm512_set1_ps(*wc.add(o * kk + ki * K + kj));
                            for (a, &xv) in a.iter_mut().zip(&xv) {
                                *a = _mm512_fmadd_ps(wv, xv, *a);
                            }
                        }
                    }
                }
            }
        }
        let yp = y.as_mut_ptr();
        for (v, s) in slots.iter().enumerate() {
            let store = mask_low(s.count);
            for (o, a) in acc.iter().enumerate() {
                let packed = _mm512_maskz_compress_ps(s.valid, a[v]);
                // SAFETY: the `count` real lanes are consecutive output pixels starting at the
                // dense index `dense` of plane `o0 + o < cout`, all `< oh·ow` (or none: mask
                // 0), so the store stays inside `y`.
                unsafe {
                    _mm512_mask_storeu_ps(yp.add((o0 + o) * ohow + s.dense), store, packed);
                }
            }
        }
        NO
    }
}
