//! Average pooling, 2×2 window, stride 2 (PyTorch `nn.AvgPool2d(2, 2)`).
use super::float::Float;
use super::pool::{PoolShape, unpack};

/// r[cnn.avgpool.forward] `Y[n,c,y,x] = ¼ Σ_{a,b∈{0,1}} X[n,c,2y+a,2x+b]`.
///
/// # Shapes
/// `x: [n, C, H, W]` → `y: [n, C, H/2, W/2]`.
#[inline(never)]
pub fn avgpool_forward<T: Float, S: PoolShape>(x: S::In<'_, T>, y: S::OutMut<'_, T>) {
    let (x, y, [h, w, oh, ow]) = unpack::<T, S>(x, y);
    let q = T::c(0.25);
    for (plane, yp) in y.chunks_exact_mut(oh * ow).enumerate() {
        let xp = &x[plane * h * w..(plane + 1) * h * w];
        for oy in 0..oh {
            for ox in 0..ow {
                let b = 2 * oy * w + 2 * ox;
                yp[oy * ow + ox] = (xp[b] + xp[b + 1] + xp[b + w] + xp[b + w + 1]) * q;
            }
        }
    }
}

/// r[cnn.avgpool.backward] `∂L/∂X[n,c,2y+a,2x+b] = ¼·∂L/∂Y[n,c,y,x]`.
#[inline(never)]
pub fn avgpool_backward<T: Float, S: PoolShape>(dy: S::Out<'_, T>, dx: S::InMut<'_, T>) {
    let (dy, dx, [h, w, oh, ow]) = unpack::<T, S>(dy, dx);
    let q = T::c(0.25);
    for (plane, dxp) in dx.chunks_exact_mut(h * w).enumerate() {
        for y in 0..h {
            for x in 0..w {
                dxp[y * w + x] = dy[plane * oh * ow + (y / 2) * ow + x / 2] * q;
            }
        }
    }
}
