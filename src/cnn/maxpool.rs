//! Max pooling, 2×2 window, stride 2 (PyTorch `nn.MaxPool2d(2, 2)`).
//!
//! Tie rule: the **first** maximum in row-major window order wins (strict `>` while scanning
//! (0,0), (0,1), (1,0), (1,1)); a NaN replaces any winner, so it propagates, and of several
//! NaNs the last wins. This is PyTorch's CPU rule (`val > maxval || isnan(val)`). The winner's index (0–3) is recorded for the backward pass.
use super::float::Float;
use super::pool::{PoolShape, unpack};

/// r[cnn.maxpool.forward] `Y[n,c,y,x] = max_{a,b∈{0,1}} X[n,c,2y+a,2x+b]`.
///
/// # Shapes
/// `x: [n, C, H, W]` → `y: [n, C, H/2, W/2]`, `argmax: [n·C·OH·OW]`.
#[inline(never)]
pub fn maxpool_forward<T: Float, S: PoolShape>(
    x: S::In<'_, T>,
    y: S::OutMut<'_, T>,
    argmax: &mut [u8],
) {
    let (x, y, [h, w, oh, ow]) = unpack::<T, S>(x, y);
    assert_eq!(
        x.len() / (S::C * h * w),
        y.len() / (S::C * oh * ow),
        "maxpool_forward: batch sizes differ"
    );
    assert_eq!(argmax.len(), y.len(), "maxpool_forward: argmax length");
    for (plane, (yp, ap)) in y
        .chunks_exact_mut(oh * ow)
        .zip(argmax.chunks_exact_mut(oh * ow))
        .enumerate()
    {
        let xp = &x[plane * h * w..(plane + 1) * h * w];
        for oy in 0..oh {
            let top = &xp[2 * oy * w..(2 * oy + 1) * w];
            let bottom = &xp[(2 * oy + 1) * w..(2 * oy + 2) * w];
            let yr = &mut yp[oy * ow..(oy + 1) * ow];
            let ar = &mut ap[oy * ow..(oy + 1) * ow];
            for ox in 0..ow {
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
pub fn maxpool_backward<T: Float, S: PoolShape>(
    dy: S::Out<'_, T>,
    argmax: &[u8],
    dx: S::InMut<'_, T>,
) {
    let (dy, dx, [h, w, oh, ow]) = unpack::<T, S>(dy, dx);
    assert_eq!(argmax.len(), dy.len(), "maxpool_backward: argmax length");
    dx.fill(T::zero());
    for (plane, dxp) in dx.chunks_exact_mut(h * w).enumerate() {
        for oy in 0..oh {
            for ox in 0..ow {
                let j = plane * oh * ow + oy * ow + ox;
                let a = argmax[j] as usize;
                dxp[(2 * oy + a / 2) * w + 2 * ox + a % 2] = dy[j];
            }
        }
    }
}
