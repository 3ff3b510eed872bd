//! 2-D convolution, stride 1, no padding, with bias (PyTorch `nn.Conv2d(CIN, COUT, K)`).
//!
//! Computed per image as one matrix product over an im2col matrix:
//! `Y[COUT, OH·OW] = Wmat[COUT, CIN·K·K] · col[CIN·K·K, OH·OW] + b`, where
//! `col[(c·K + ki)·K + kj, oy·OW + ox] = X[c, oy + ki, ox + kj]`. For `K = 1` the input is
//! already its own col matrix and no copy is made.
//!
//! Generics: `CIN`, `COUT` channels; `K` kernel size; `KK = CIN·K·K` (given explicitly because
//! stable Rust cannot compute it in a type); `H×W` input and `OH×OW = (H−K+1)×(W−K+1)`
//! output, all checked at compile time.
use super::float::Float;
use super::reduce;
use super::tensor::{View, ViewMut};
use nalgebra::{SMatrix, SVector};

/// The parameters of one convolution.
///
/// `weight` is stored as the `KK×COUT` column-major matrix `Wmatᵀ`, whose memory is exactly
/// PyTorch's row-major `[COUT, CIN, K, K]` weight, so safetensors I/O is a plain copy.
#[derive(Clone, Debug, PartialEq)]
pub struct Conv<T: Float, const CIN: usize, const COUT: usize, const K: usize, const KK: usize> {
    pub weight: SMatrix<T, KK, COUT>,
    pub bias: SVector<T, COUT>,
}

impl<T: Float, const CIN: usize, const COUT: usize, const K: usize, const KK: usize>
    Conv<T, CIN, COUT, K, KK>
{
    const CHECK: () = assert!(KK == CIN * K * K, "KK must equal CIN·K·K");
    /// Trainable parameter count: `COUT·CIN·K·K + COUT`.
    pub const PARAMS: usize = KK * COUT + COUT;

    pub fn zeros() -> Self {
        let () = Self::CHECK;
        Conv {
            weight: SMatrix::zeros(),
            bias: SVector::zeros(),
        }
    }
}

/// Scratch length needed by the im2col matrix of one image.
pub const fn col_len(kk: usize, oh: usize, ow: usize) -> usize {
    kk * oh * ow
}

fn check_shapes<
    const CIN: usize,
    const K: usize,
    const H: usize,
    const W: usize,
    const OH: usize,
    const OW: usize,
    const KK: usize,
>() {
    const { assert!(KK == CIN * K * K && OH + K == H + 1 && OW + K == W + 1) }
}

/// Writes the im2col matrix of one image `x: [CIN, H, W]` into `col: [KK, OH·OW]`.
fn im2col<
    T: Copy,
    const CIN: usize,
    const K: usize,
    const H: usize,
    const W: usize,
    const OH: usize,
    const OW: usize,
>(
    x: &[T],
    col: &mut [T],
) {
    let mut r = 0;
    for c in 0..CIN {
        for ki in 0..K {
            for kj in 0..K {
                let dst = &mut col[r * OH * OW..(r + 1) * OH * OW];
                for oy in 0..OH {
                    let src = &x[(c * H + oy + ki) * W + kj..][..OW];
                    dst[oy * OW..(oy + 1) * OW].copy_from_slice(src);
                }
                r += 1;
            }
        }
    }
}

/// Adds the im2col-shaped gradient `dcol: [KK, OH·OW]` back onto `dx: [CIN, H, W]`.
fn col2im_add<
    T: Float,
    const CIN: usize,
    const K: usize,
    const H: usize,
    const W: usize,
    const OH: usize,
    const OW: usize,
>(
    dcol: &[T],
    dx: &mut [T],
) {
    let mut r = 0;
    for c in 0..CIN {
        for ki in 0..K {
            for kj in 0..K {
                let src = &dcol[r * OH * OW..(r + 1) * OH * OW];
                for oy in 0..OH {
                    let dst = &mut dx[(c * H + oy + ki) * W + kj..][..OW];
                    for (d, s) in dst.iter_mut().zip(&src[oy * OW..(oy + 1) * OW]) {
                        *d += *s;
                    }
                }
                r += 1;
            }
        }
    }
}

/// r[cnn.conv.forward] `Y[n,o,y,x] = b[o] + Σ_{c,ki,kj} W[o,c,ki,kj]·X[n,c,y+ki,x+kj]`.
///
/// # Shapes
/// `x: [n, CIN, H, W]` → `y: [n, COUT, OH, OW]`; `col` scratch of at least `KK·OH·OW`
/// (unused when `K = 1`).
///
/// PyTorch equivalent: `torch.nn.functional.conv2d(x, weight, bias)`.
#[inline(never)]
pub fn conv_forward<
    T: Float,
    const CIN: usize,
    const COUT: usize,
    const K: usize,
    const KK: usize,
    const H: usize,
    const W: usize,
    const OH: usize,
    const OW: usize,
>(
    p: &Conv<T, CIN, COUT, K, KK>,
    x: View<'_, T, CIN, H, W>,
    mut y: ViewMut<'_, T, COUT, OH, OW>,
    col: &mut [T],
) {
    check_shapes::<CIN, K, H, W, OH, OW, KK>();
    assert_eq!(x.n(), y.n(), "conv_forward: batch sizes differ");
    let ohw = OH * OW;
    for i in 0..x.n() {
        let xi = x.image(i);
        let yi = y.image(i);
        for o in 0..COUT {
            yi[o * ohw..(o + 1) * ohw].fill(p.bias[o]);
        }
        let colm: &[T] = if K == 1 {
            xi
        } else {
            im2col::<T, CIN, K, H, W, OH, OW>(xi, col);
            &col[..KK * ohw]
        };
        // y[o, j] += Σ_k W[o, k]·col[k, j]; W[o,k] sits at o·KK + k.
        T::gemm(
            COUT,
            KK,
            ohw,
            T::one(),
            p.weight.as_slice(),
            (KK, 1),
            colm,
            (ohw, 1),
            T::one(),
            yi,
            (ohw, 1),
        );
    }
}

/// r[cnn.conv.backward_input] `∂L/∂X[n,c,y,x] = Σ_{o,ki,kj} W[o,c,ki,kj]·∂L/∂Y[n,o,y−ki,x−kj]`.
///
/// Computed as `dcol = Wmatᵀ·dY` followed by col2im (the transpose of im2col). `dx` is
/// overwritten.
///
/// # Shapes
/// `dy: [n, COUT, OH, OW]` → `dx: [n, CIN, H, W]`; `dcol` scratch of at least `KK·OH·OW`.
///
/// PyTorch equivalent: `torch.nn.grad.conv2d_input`.
#[inline(never)]
pub fn conv_backward_input<
    T: Float,
    const CIN: usize,
    const COUT: usize,
    const K: usize,
    const KK: usize,
    const H: usize,
    const W: usize,
    const OH: usize,
    const OW: usize,
>(
    p: &Conv<T, CIN, COUT, K, KK>,
    dy: View<'_, T, COUT, OH, OW>,
    mut dx: ViewMut<'_, T, CIN, H, W>,
    dcol: &mut [T],
) {
    check_shapes::<CIN, K, H, W, OH, OW, KK>();
    assert_eq!(dx.n(), dy.n(), "conv_backward_input: batch sizes differ");
    let ohw = OH * OW;
    for i in 0..dy.n() {
        let dyi = dy.image(i);
        let dxi = dx.image(i);
        if K == 1 {
            // dx[c, j] = Σ_o W[o, c]·dy[o, j]
            T::gemm(
                KK,
                COUT,
                ohw,
                T::one(),
                p.weight.as_slice(),
                (1, KK),
                dyi,
                (ohw, 1),
                T::zero(),
                dxi,
                (ohw, 1),
            );
        } else {
            let dc = &mut dcol[..KK * ohw];
            T::gemm(
                KK,
                COUT,
                ohw,
                T::one(),
                p.weight.as_slice(),
                (1, KK),
                dyi,
                (ohw, 1),
                T::zero(),
                dc,
                (ohw, 1),
            );
            dxi.fill(T::zero());
            col2im_add::<T, CIN, K, H, W, OH, OW>(dc, dxi);
        }
    }
}

/// r[cnn.conv.backward_weight] `∂L/∂W[o,c,ki,kj] = Σ_{n,y,x} ∂L/∂Y[n,o,y,x]·X[n,c,y+ki,x+kj]`.
///
/// Computed per image as `dWmat += dY·colᵀ`; **accumulates** into `dw.weight` (so a caller can sum
/// images, and chunks of images, in a fixed order).
///
/// # Shapes
/// `dy: [n, COUT, OH, OW]`, `x: [n, CIN, H, W]`, `dw` like `weight`; `col` scratch as in
/// [`conv_forward`].
#[inline(never)]
pub fn conv_backward_weight<
    T: Float,
    const CIN: usize,
    const COUT: usize,
    const K: usize,
    const KK: usize,
    const H: usize,
    const W: usize,
    const OH: usize,
    const OW: usize,
>(
    dy: View<'_, T, COUT, OH, OW>,
    x: View<'_, T, CIN, H, W>,
    dw: &mut Conv<T, CIN, COUT, K, KK>,
    col: &mut [T],
) {
    check_shapes::<CIN, K, H, W, OH, OW, KK>();
    assert_eq!(x.n(), dy.n(), "conv_backward_weight: batch sizes differ");
    let ohw = OH * OW;
    for i in 0..dy.n() {
        let xi = x.image(i);
        let colm: &[T] = if K == 1 {
            xi
        } else {
            im2col::<T, CIN, K, H, W, OH, OW>(xi, col);
            &col[..KK * ohw]
        };
        // dw[o, k] += Σ_j dy[o, j]·col[k, j]
        T::gemm(
            COUT,
            ohw,
            KK,
            T::one(),
            dy.image(i),
            (ohw, 1),
            colm,
            (1, ohw),
            T::one(),
            dw.weight.as_mut_slice(),
            (KK, 1),
        );
    }
}

/// r[cnn.conv.backward_bias] `∂L/∂b[o] = Σ_{n,y,x} ∂L/∂Y[n,o,y,x]`. Accumulates into `db`.
///
/// Each image's plane is summed in the order of [`super::reduce`].
#[inline(never)]
pub fn conv_backward_bias<T: Float, const COUT: usize, const OH: usize, const OW: usize>(
    dy: View<'_, T, COUT, OH, OW>,
    db: &mut SVector<T, COUT>,
) {
    let ohw = OH * OW;
    for i in 0..dy.n() {
        let dyi = dy.image(i);
        for o in 0..COUT {
            db[o] += reduce::sum(&dyi[o * ohw..(o + 1) * ohw]);
        }
    }
}
