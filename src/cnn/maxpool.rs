//! Max pooling, 2×2 window, stride 2 (PyTorch `nn.MaxPool2d(2, 2)`).
//!
//! Tie rule: the **first** maximum in row-major window order wins (strict `>` while scanning
//! (0,0), (0,1), (1,0), (1,1)); a NaN replaces any winner, so it propagates, and of several
//! NaNs the last wins. This is PyTorch's CPU rule (`val > maxval || isnan(val)`). The winner's index (0–3) is recorded for the backward pass.
use super::float::Float;
use super::tensor::{View, ViewMut};

/// r[cnn.maxpool.forward] `Y[n,c,y,x] = max_{a,b∈{0,1}} X[n,c,2y+a,2x+b]`.
///
/// # Shapes
/// `x: [n, C, H, W]` → `y: [n, C, H/2, W/2]`, `argmax: [n·C·OH·OW]`.
#[inline(never)]
pub fn maxpool_forward<
    T: Float,
    const C: usize,
    const H: usize,
    const W: usize,
    const OH: usize,
    const OW: usize,
>(
    x: View<'_, T, C, H, W>,
    y: ViewMut<'_, T, C, OH, OW>,
    argmax: &mut [u8],
) {
    const { assert!(OH * 2 == H && OW * 2 == W) }
    assert_eq!(x.n(), y.n(), "maxpool_forward: batch sizes differ");
    assert_eq!(argmax.len(), y.0.len(), "maxpool_forward: argmax length");
    for (plane, (yp, ap)) in
        y.0.chunks_exact_mut(OH * OW)
            .zip(argmax.chunks_exact_mut(OH * OW))
            .enumerate()
    {
        let xp = &x.0[plane * H * W..(plane + 1) * H * W];
        for oy in 0..OH {
            let top = &xp[2 * oy * W..(2 * oy + 1) * W];
            let bottom = &xp[(2 * oy + 1) * W..(2 * oy + 2) * W];
            let yr = &mut yp[oy * OW..(oy + 1) * OW];
            let ar = &mut ap[oy * OW..(oy + 1) * OW];
            for ox in 0..OW {
                // Branch-free scan (selects, no indexing by the winner) so the loop vectorises.
                let cand = [
                    top[2 * ox],
                    top[2 * ox + 1],
                    bottom[2 * ox],
                    bottom[2 * ox + 1],
                ];
                let (mut best, mut arg) = (cand[0], 0u8);
                for (k, &v) in cand.iter().enumerate().skip(1) {
                    let take = v > best || v.is_nan();
                    best = if take { v } else { best };
                    arg = if take { k as u8 } else { arg };
                }
                yr[ox] = best;
                ar[ox] = arg;
            }
        }
    }
}

/// r[cnn.maxpool.backward] `∂L/∂X[n,c,2y+a,2x+b] = ∂L/∂Y[n,c,y,x]` if `(a,b)` won, else 0.
#[inline(never)]
pub fn maxpool_backward<
    T: Float,
    const C: usize,
    const H: usize,
    const W: usize,
    const OH: usize,
    const OW: usize,
>(
    dy: View<'_, T, C, OH, OW>,
    argmax: &[u8],
    dx: ViewMut<'_, T, C, H, W>,
) {
    const { assert!(OH * 2 == H && OW * 2 == W) }
    assert_eq!(argmax.len(), dy.0.len(), "maxpool_backward: argmax length");
    dx.0.fill(T::zero());
    for (plane, dxp) in dx.0.chunks_exact_mut(H * W).enumerate() {
        for oy in 0..OH {
            for ox in 0..OW {
                let j = plane * OH * OW + oy * OW + ox;
                let a = argmax[j] as usize;
                dxp[(2 * oy + a / 2) * W + 2 * ox + a % 2] = dy.0[j];
            }
        }
    }
}
