//! Average pooling, 2×2 window, stride 2 (PyTorch `nn.AvgPool2d(2, 2)`).
use super::float::Float;
use super::tensor::{View, ViewMut};

/// r[cnn.avgpool.forward] `Y[n,c,y,x] = ¼ Σ_{a,b∈{0,1}} X[n,c,2y+a,2x+b]`.
///
/// # Shapes
/// `x: [n, C, H, W]` → `y: [n, C, H/2, W/2]`.
#[inline(never)]
pub fn avgpool_forward<
    T: Float,
    const C: usize,
    const H: usize,
    const W: usize,
    const OH: usize,
    const OW: usize,
>(
    x: View<'_, T, C, H, W>,
    y: ViewMut<'_, T, C, OH, OW>,
) {
    const { assert!(OH * 2 == H && OW * 2 == W) }
    let q = T::c(0.25);
    for (plane, yp) in y.0.chunks_exact_mut(OH * OW).enumerate() {
        let xp = &x.0[plane * H * W..(plane + 1) * H * W];
        for oy in 0..OH {
            for ox in 0..OW {
                let b = 2 * oy * W + 2 * ox;
                yp[oy * OW + ox] = (xp[b] + xp[b + 1] + xp[b + W] + xp[b + W + 1]) * q;
            }
        }
    }
}

/// r[cnn.avgpool.backward] `∂L/∂X[n,c,2y+a,2x+b] = ¼·∂L/∂Y[n,c,y,x]`.
#[inline(never)]
pub fn avgpool_backward<
    T: Float,
    const C: usize,
    const H: usize,
    const W: usize,
    const OH: usize,
    const OW: usize,
>(
    dy: View<'_, T, C, OH, OW>,
    dx: ViewMut<'_, T, C, H, W>,
) {
    const { assert!(OH * 2 == H && OW * 2 == W) }
    let q = T::c(0.25);
    for (plane, dxp) in dx.0.chunks_exact_mut(H * W).enumerate() {
        for y in 0..H {
            for x in 0..W {
                dxp[y * W + x] = dy.0[plane * OH * OW + (y / 2) * OW + x / 2] * q;
            }
        }
    }
}
