//! Hand-vectorised AVX-512 f32 kernels for the convolution of [`super::conv`] (stride 1, no
//! padding, bias): forward, input gradient, weight gradient and bias gradient, one image at a
//! time, by direct convolution (no im2col, no packing of the input).
//!
//! Every function here returns `false`, having done nothing, when it cannot run (the CPU lacks
//! `avx512f`, the target is not x86-64, or the float type is not `f32`), so that the caller
//! falls back to the generic GEMM path of [`super::conv`]. They compute the same sums as that
//! path in another (fixed, thread-independent) order, so results agree to f32 rounding, not
//! bit for bit.
//!
//! # API
//! Per image (f32 slices, `[C, H, W]` row-major): [`forward_image`], [`backward_input_image`],
//! [`backward_weight_image`] (adds into `dw.weight`), [`backward_bias_image`] (adds into
//! `db`). Per batch, with the signatures of [`super::conv`] and generic over the float type:
//! [`try_conv_forward`], [`try_conv_backward_input`], [`try_conv_backward_weight`],
//! [`try_conv_backward_bias`]. The weights are used in their own layout (PyTorch's
//! `[COUT, CIN, K, K]`, `Conv::weight`): there is no preparation step. Scratch, caller-owned,
//! contents irrelevant: [`image_scratch_len`] floats per-image, [`scratch_len`] for the batch
//! functions. Nothing allocates.
//!
//! # Layout: the "wide" output row
//! Images are NCHW as everywhere else. A valid convolution reads `X[c, y+ki, x+kj]` for
//! `y < OH`, `x < OW`. Index the output pixel `(y, x)` by the *wide* position `q = y·W + x`,
//! i.e. with the input's row length `W` instead of `OW`: then the input element a tap
//! `(c, ki, kj)` needs is `X[c·H·W + ki·W + kj + q]`, a fixed offset `off(k)` from `q`.
//! Sixteen consecutive wide positions therefore read sixteen *consecutive* input floats: one
//! unaligned `zmm` load per tap serves sixteen outputs. The price is that the positions with
//! `x ≥ OW` (the last `K−1` of each wide row) are computed and thrown away: 2/26 = 8% of the
//! lanes for conv2. The wide positions run from 0 to `(OH−1)·W + OW − 1`; the last vector is
//! loaded with a mask, so nothing past the image is read or written.
//!
//! # Forward: `Y[o, q] = b[o] + Σ_k W[o, k]·X[off(k) + q]`
//! Register tile: 8 output channels × 3 vectors of 16 wide positions = 24 `zmm`
//! accumulators (of 32), started at the bias. Per tap `k = (c, ki, kj)`: 3 input loads,
//! 8 weight broadcasts (`vbroadcastss`, each reused by 3 FMAs), 24 FMAs. The tile is written
//! straight into NCHW: per vector, `vcompressps` packs the lanes with `x < OW` (which are
//! consecutive output pixels) and one masked store writes them.
//!
//! # Input gradient: per-tap sums, scattered
//! `dX[c, off'(k) + q] += T_k[q]` with `T_k[q] = Σ_o W[o, k]·dYw[o, q]`, where `dYw` is `dY`
//! in wide rows (zeros at `x ≥ OW`; built in scratch, or `dY` itself for `K = 1` with `OH·OW`
//! a multiple of 16), `off'(k)` the tap's offset in `dX`. Register tile: 8 input channels at
//! one kernel position × 3 wide vectors; the sum over the output channels happens in
//! registers (per `o`: 3 `dY` loads, 8 broadcasts, 24 FMAs), then each of the 24 sums is
//! added into `dx` with a masked load-add-store. A tile spans *channels*, not neighbouring
//! taps, because neighbouring taps would store and reload overlapping, shifted vectors,
//! which defeats store forwarding (measured: 1.6× slower). This does not multiply the zeros
//! that a correlation of zero-padded `dY` with the flipped kernel would.
//!
//! # Weight gradient
//! When `COUT` is a multiple of 16 (every layer of the network but conv3), it vectorises over
//! output channels: `dY` is transposed per image to `[OH·OW, COUT]` (16×16 shuffle blocks) and
//! `dW[o, (c, ki, kj)] += Σ_{y,x} dYt[y·OW + x, o]·X[c, y+ki, x+kj]`. Register tile: 2
//! vectors of output channels × 4 input channels × the 3 `kj` of one kernel row = 24
//! accumulators; per pixel 2 `dYt` loads, 12 broadcasts of `X` (4-byte loads at compile-time
//! offsets from one pointer: they never split a cache line), 24 FMAs. No lane is wasted and
//! nothing is summed across lanes; each lane is finally added to its own `dw` element.
//!
//! Otherwise (conv3, `COUT = 8`) it is a dot product over wide positions:
//! `dW[o, k] += Σ_q dYw[o, q]·X[off(k) + q]`, tile 4 output channels × 6 taps, each
//! accumulator summed horizontally at the end by a shuffle-and-add transposition tree.
//!
//! The batch function sums [`weight_group_len`] images in registers before touching `dw`
//! (3 for conv2, 8 for the small late layers), so the final scatter is paid once per group.
//!
//! # Summation order
//! Forward: one FMA chain per output over the taps in `(c, ki, kj)` order, from the bias.
//! Input gradient: per tap a chain over `o`, the taps added into `dx` in a fixed order.
//! Weight gradient: a chain over the images of a group and their pixels (lane-wise partial
//! sums and a fixed tree in the wide variant), then added into `dw`. Bias: 64 lane-wise
//! partial sums and a fixed tree. Nothing depends on threads, so results are deterministic
//! given how the caller splits the batch into calls.
//!
//! # Supported shapes
//! Any `CIN, COUT ≥ 1`, `K ≥ 1`, `H ≥ K`, `W ≥ K` (tile tails are handled by smaller tiles
//! and masks); the speed is designed for the network's shapes, conv2 in particular.
//!
//! Zeros stand in for the discarded lanes (`x ≥ OW`), so an infinite or NaN weight or input
//! can leak into outputs the generic path would compute from finite values only; the network
//! never feeds those.
use super::conv::Conv;
use super::float::Float;
use super::tensor::{View, ViewMut};
use nalgebra::SVector;
use std::any::{Any, TypeId};

/// Floats per `zmm` vector.
pub const LANES: usize = 16;

/// Whether the AVX-512 kernels can run on this machine: the CPU has AVX-512F, BW and VL
/// ([`super::cpu::avx512_hardware`]). Every kernel checks this before executing an AVX-512
/// instruction; it does **not** look at `GRADSPEC_NO_AVX512`, so the kernels' own tests run
/// whichever path the network takes.
pub fn available() -> bool {
    super::cpu::avx512_hardware()
}

/// Whether the network should take these kernels for float type `T`: `T` is `f32` and the
/// AVX-512 fast paths are switched on ([`super::cpu::avx512`], which honours
/// `GRADSPEC_NO_AVX512`). The batch functions (`try_*`) themselves only need [`available`].
pub fn enabled<T: 'static>() -> bool {
    is_f32::<T>() && super::cpu::avx512()
}

fn is_f32<T: 'static>() -> bool {
    TypeId::of::<T>() == TypeId::of::<f32>()
}

/// Number of wide positions `(OH−1)·W + OW` of a convolution (see the module docs).
pub const fn wide_positions(oh: usize, ow: usize, w: usize) -> usize {
    (oh - 1) * w + ow
}

/// Number of 16-lane vectors covering the wide positions.
pub const fn wide_vectors(oh: usize, ow: usize, w: usize) -> usize {
    wide_positions(oh, ow, w).div_ceil(LANES)
}

/// Floats of `dY` in wide rows for one image, `COUT·16·⌈((OH−1)·W + OW)/16⌉` (0 when `dY`
/// can be used as it is: `W = OW` and `OH·OW` a multiple of 16).
const fn wide_len(cout: usize, oh: usize, ow: usize, w: usize) -> usize {
    if dy_is_wide(oh, ow, w) {
        0
    } else {
        cout * wide_vectors(oh, ow, w) * LANES
    }
}

/// Whether the weight gradient vectorises over output channels (with `dY` transposed to
/// `[OH·OW, COUT]`): when `COUT` is a multiple of 16. Otherwise it vectorises over wide
/// positions.
const fn weight_by_channel(cout: usize) -> bool {
    cout.is_multiple_of(LANES)
}

/// Floats of transposed `dY` for one image, `OH·OW·COUT`, when [`weight_by_channel`].
const fn transposed_len(cout: usize, oh: usize, ow: usize) -> usize {
    if weight_by_channel(cout) {
        cout * oh * ow
    } else {
        0
    }
}

const fn max(a: usize, b: usize) -> usize {
    if a > b { a } else { b }
}

/// Scratch (floats) that [`backward_weight_image`] and [`backward_input_image`] need: `dY`
/// in wide rows or transposed, plus 16 floats of slack to align it to 64 bytes.
pub const fn image_scratch_len(cout: usize, oh: usize, ow: usize, w: usize) -> usize {
    max(wide_len(cout, oh, ow, w), transposed_len(cout, oh, ow)) + LANES
}

/// Images per call of the weight-gradient kernel in [`try_conv_backward_weight`]: enough that
/// each tile of accumulators sums about 2048 pixels (or 128 wide vectors) before its final
/// reduction and scatter into `dw` (3 for conv2, 8 for the small late layers), at most 8.
pub const fn weight_group_len(cout: usize, oh: usize, ow: usize, w: usize) -> usize {
    let g = if weight_by_channel(cout) {
        2048 / (oh * ow)
    } else {
        128 / wide_vectors(oh, ow, w)
    };
    if g < 1 {
        1
    } else if g > 8 {
        8
    } else {
        g
    }
}

/// Scratch (floats) that suffices for every `try_*` batch function of one convolution shape:
/// `dY` of [`weight_group_len`] images, wide or transposed, plus alignment slack.
pub const fn scratch_len(cout: usize, oh: usize, ow: usize, w: usize) -> usize {
    let g = weight_group_len(cout, oh, ow, w);
    max(
        g * wide_len(cout, oh, ow, w),
        g * transposed_len(cout, oh, ow),
    ) + LANES
}

const fn dy_is_wide(oh: usize, ow: usize, w: usize) -> bool {
    w == ow && (oh * ow).is_multiple_of(LANES)
}

fn check_shapes<
    const CIN: usize,
    const COUT: usize,
    const K: usize,
    const KK: usize,
    const H: usize,
    const W: usize,
    const OH: usize,
    const OW: usize,
>() {
    const {
        assert!(
            KK == CIN * K * K
                && OH + K == H + 1
                && OW + K == W + 1
                && CIN > 0
                && COUT > 0
                && K > 0
                && OH > 0
                && OW > 0
        )
    }
}

/// Forward of one image: `y[o, oy, ox] = b[o] + Σ_{c,ki,kj} W[o,c,ki,kj]·x[c, oy+ki, ox+kj]`.
///
/// # Shapes
/// `x: [CIN, H, W]` → `y: [COUT, OH, OW]` (overwritten). Same result as
/// [`super::conv::conv_forward`] on one image, up to f32 rounding.
///
/// Returns `false` (and leaves `y` untouched) when AVX-512 is unavailable.
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
    p: &Conv<f32, CIN, COUT, K, KK>,
    x: &[f32],
    y: &mut [f32],
) -> bool {
    check_shapes::<CIN, COUT, K, KK, H, W, OH, OW>();
    assert_eq!(x.len(), CIN * H * W, "forward_image: x length");
    assert_eq!(y.len(), COUT * OH * OW, "forward_image: y length");
    if !available() {
        return false;
    }
    #[cfg(target_arch = "x86_64")]
    {
        let g = avx512::Geom {
            cout: COUT,
            h: H,
            w: W,
            oh: OH,
            ow: OW,
        };
        // SAFETY: `available()` checked avx512f; the weight, bias, x and y lengths match the
        // geometry (`KK·COUT`, `COUT`, `CIN·H·W`, `COUT·OH·OW`: asserted above and by the
        // types), which is all `forward` requires.
        unsafe {
            avx512::forward::<CIN, K>(&g, p.weight.as_slice(), p.bias.as_slice(), x, y);
        }
        true
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// Input gradient of one image: `dx[c, y, x] = Σ_{o,ki,kj} W[o,c,ki,kj]·dy[o, y−ki, x−kj]`.
///
/// # Shapes
/// `dy: [COUT, OH, OW]` → `dx: [CIN, H, W]` (overwritten); `scratch` at least
/// [`image_scratch_len`] floats (contents irrelevant, overwritten). The weights are
/// used as they are.
///
/// Returns `false` (and leaves `dx` untouched) when AVX-512 is unavailable.
///
/// # Panics
/// If a slice length does not match its shape (checked before anything else).
pub fn backward_input_image<
    const CIN: usize,
    const COUT: usize,
    const K: usize,
    const KK: usize,
    const H: usize,
    const W: usize,
    const OH: usize,
    const OW: usize,
>(
    p: &Conv<f32, CIN, COUT, K, KK>,
    dy: &[f32],
    dx: &mut [f32],
    scratch: &mut [f32],
) -> bool {
    check_shapes::<CIN, COUT, K, KK, H, W, OH, OW>();
    assert_eq!(dy.len(), COUT * OH * OW, "backward_input_image: dy length");
    assert_eq!(dx.len(), CIN * H * W, "backward_input_image: dx length");
    assert!(
        scratch.len() >= image_scratch_len(COUT, OH, OW, W),
        "backward_input_image: scratch shorter than image_scratch_len"
    );
    if !available() {
        return false;
    }
    let (dyw, _) = wide_dy::<COUT, OH, OW, W>(dy, scratch);
    #[cfg(target_arch = "x86_64")]
    {
        let g = avx512::Geom {
            cout: COUT,
            h: H,
            w: W,
            oh: OH,
            ow: OW,
        };
        let dyw = &dyw[..COUT * wide_vectors(OH, OW, W) * LANES];
        // SAFETY: avx512f checked by `available()`; `p.weight` is `COUT·KK`, `dyw` is `COUT`
        // wide rows of `16·nv` floats (sliced just above), `dx` is `[CIN, H, W]`: what
        // `backward_input` requires.
        unsafe {
            avx512::backward_input::<CIN, K>(&g, p.weight.as_slice(), dyw, dx);
        }
        true
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = (p, dyw);
        false
    }
}

/// Weight gradient of one image, **added** into `dw.weight` (the bias is left alone; see
/// [`backward_bias_image`]): `dw[o,c,ki,kj] += Σ_{y,x} dy[o,y,x]·x[c, y+ki, x+kj]`.
///
/// # Shapes
/// `dy: [COUT, OH, OW]`, `x: [CIN, H, W]`; `scratch` at least
/// [`image_scratch_len`] floats (contents irrelevant, overwritten).
///
/// Returns `false` (and leaves `dw` untouched) when AVX-512 is unavailable.
///
/// # Panics
/// If a slice length does not match its shape (checked before anything else).
pub fn backward_weight_image<
    const CIN: usize,
    const COUT: usize,
    const K: usize,
    const KK: usize,
    const H: usize,
    const W: usize,
    const OH: usize,
    const OW: usize,
>(
    dy: &[f32],
    x: &[f32],
    dw: &mut Conv<f32, CIN, COUT, K, KK>,
    scratch: &mut [f32],
) -> bool {
    check_shapes::<CIN, COUT, K, KK, H, W, OH, OW>();
    assert_eq!(dy.len(), COUT * OH * OW, "backward_weight_image: dy length");
    assert_eq!(x.len(), CIN * H * W, "backward_weight_image: x length");
    assert!(
        scratch.len() >= image_scratch_len(COUT, OH, OW, W),
        "backward_weight_image: scratch shorter than image_scratch_len"
    );
    if !available() {
        return false;
    }
    weight_group::<CIN, COUT, K, KK, H, W, OH, OW>(dy, x, dw, scratch)
}

/// `scratch` from its first 64-byte-aligned float on (at most 15 floats are skipped).
fn aligned(scratch: &mut [f32]) -> &mut [f32] {
    let a = scratch.as_ptr().align_offset(64);
    &mut scratch[if a < LANES { a } else { 0 }..]
}

/// `dy` (whole images `[COUT, OH, OW]`) in wide rows (see the module docs): `COUT` rows of
/// `16·nv` floats per image, `x ≥ OW` and the tail zero; returns the rows and the image
/// stride. When `dy` is already wide (`W = OW`, `OH·OW` a multiple of 16) it is returned as it
/// is; otherwise the rows are built in `scratch` (64-byte aligned), which needs
/// `images·wide_len + 16` floats.
fn wide_dy<'a, const COUT: usize, const OH: usize, const OW: usize, const W: usize>(
    dy: &'a [f32],
    scratch: &'a mut [f32],
) -> (&'a [f32], usize) {
    let dyi = COUT * OH * OW;
    if dy_is_wide(OH, OW, W) {
        return (dy, dyi);
    }
    let n = dy.len() / dyi;
    let row = wide_vectors(OH, OW, W) * LANES;
    let len = wide_len(COUT, OH, OW, W);
    let s = &mut aligned(scratch)[..n * len];
    for (img, dyimg) in s.chunks_exact_mut(len).zip(dy.chunks_exact(dyi)) {
        for (orow, dyo) in img.chunks_exact_mut(row).zip(dyimg.chunks_exact(OH * OW)) {
            orow.fill(0.0);
            for (i, r) in dyo.chunks_exact(OW).enumerate() {
                orow[i * W..i * W + OW].copy_from_slice(r);
            }
        }
    }
    (s, len)
}

/// The weight gradient of `n ≥ 1` images (`dy`, `x` hold exactly `n` each), summed in
/// registers and added into `dw`. `scratch` needs `n` images of wide or transposed `dY` (see
/// [`scratch_len`]).
/// Returns `true` (callers have checked `available()`), or `false` on other targets.
fn weight_group<
    const CIN: usize,
    const COUT: usize,
    const K: usize,
    const KK: usize,
    const H: usize,
    const W: usize,
    const OH: usize,
    const OW: usize,
>(
    dy: &[f32],
    x: &[f32],
    dw: &mut Conv<f32, CIN, COUT, K, KK>,
    scratch: &mut [f32],
) -> bool {
    let (dyi, xi) = (COUT * OH * OW, CIN * H * W);
    let n = dy.len() / dyi;
    assert!(n >= 1 && dy.len() == n * dyi && x.len() == n * xi);
    #[cfg(target_arch = "x86_64")]
    if weight_by_channel(COUT) {
        let dyt = &mut aligned(scratch)[..n * dyi];
        for (t, d) in dyt.chunks_exact_mut(dyi).zip(dy.chunks_exact(dyi)) {
            // SAFETY: callers checked avx512f; `d` and `t` are both `COUT·OH·OW` floats.
            unsafe { avx512::transpose(d, t, COUT, OH * OW) };
        }
        // SAFETY: callers checked avx512f; `dyt` is `n` images of `[OH·OW, COUT]`, `x` is
        // `n` images of `[CIN, H, W]`, `dw.weight` is `COUT·KK`, `COUT` is a multiple of 16:
        // what `backward_weight_by_channel` requires.
        unsafe {
            avx512::backward_weight_by_channel::<CIN, COUT, K, H, W, OH, OW>(
                n,
                dyt,
                x,
                dw.weight.as_mut_slice(),
            );
        }
        return true;
    }
    let row = wide_vectors(OH, OW, W) * LANES;
    let (dyw, dy_stride) = wide_dy::<COUT, OH, OW, W>(dy, scratch);
    #[cfg(target_arch = "x86_64")]
    {
        let g = avx512::Geom {
            cout: COUT,
            h: H,
            w: W,
            oh: OH,
            ow: OW,
        };
        let grp = avx512::Group {
            n,
            dyw,
            dy_stride,
            x,
            x_stride: xi,
        };
        debug_assert!(dyw.len() >= (n - 1) * dy_stride + COUT * row);
        // SAFETY: callers checked avx512f (`available()`); each of the `n` images has `COUT`
        // wide rows of `16·nv` floats at stride `dy_stride` in `dyw` and a `[CIN, H, W]`
        // input at stride `CIN·H·W` in `x` (lengths asserted above), and `dw.weight` is
        // `COUT·KK`: what `backward_weight` requires.
        unsafe {
            avx512::backward_weight::<CIN, K>(&g, &grp, dw.weight.as_mut_slice());
        }
        true
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = (dyw, dy_stride, row);
        false
    }
}

/// Bias gradient of one image, **added** into `db`: `db[o] += Σ_{y,x} dy[o, y, x]`.
///
/// Returns `false` (and leaves `db` untouched) when AVX-512 is unavailable.
///
/// # Panics
/// If `dy.len() != COUT·OH·OW`.
pub fn backward_bias_image<const COUT: usize, const OH: usize, const OW: usize>(
    dy: &[f32],
    db: &mut SVector<f32, COUT>,
) -> bool {
    assert_eq!(dy.len(), COUT * OH * OW, "backward_bias_image: dy length");
    if !available() {
        return false;
    }
    #[cfg(target_arch = "x86_64")]
    {
        for (o, d) in db.iter_mut().enumerate() {
            // SAFETY: avx512f checked by `available()`; the plane is a plain slice.
            *d += unsafe { avx512::sum(&dy[o * OH * OW..(o + 1) * OH * OW]) };
        }
        true
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

// ------------------------------------------------------------------ batch wrappers

fn f32_slice<T: 'static>(s: &[T]) -> Option<&[f32]> {
    if TypeId::of::<T>() == TypeId::of::<f32>() {
        // SAFETY: `T` is `f32`, so the memory is a valid `[f32]` of the same length, borrowed
        // for the same lifetime.
        Some(unsafe { std::slice::from_raw_parts(s.as_ptr().cast::<f32>(), s.len()) })
    } else {
        None
    }
}

fn f32_slice_mut<T: 'static>(s: &mut [T]) -> Option<&mut [f32]> {
    if TypeId::of::<T>() == TypeId::of::<f32>() {
        // SAFETY: `T` is `f32`, so the memory is a valid `[f32]` of the same length; the
        // unique borrow moves into the result.
        Some(unsafe { std::slice::from_raw_parts_mut(s.as_mut_ptr().cast::<f32>(), s.len()) })
    } else {
        None
    }
}

/// [`super::conv::conv_forward`] over a batch, image by image with [`forward_image`], when
/// `T` is `f32` and [`available`]; otherwise returns `false` having done nothing (fall back to the
/// generic function). Needs no scratch.
#[inline(never)]
pub fn try_conv_forward<
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
    y: ViewMut<'_, T, COUT, OH, OW>,
) -> bool {
    check_shapes::<CIN, COUT, K, KK, H, W, OH, OW>();
    assert_eq!(x.n(), y.n(), "try_conv_forward: batch sizes differ");
    if !(is_f32::<T>() && available()) {
        return false;
    }
    let (Some(p), Some(xs), Some(ys)) = (
        (p as &dyn Any).downcast_ref::<Conv<f32, CIN, COUT, K, KK>>(),
        f32_slice(x.0),
        f32_slice_mut(y.0),
    ) else {
        return false;
    };
    let (xi, yi) = (CIN * H * W, COUT * OH * OW);
    for (x, y) in xs.chunks_exact(xi).zip(ys.chunks_exact_mut(yi)) {
        forward_image::<CIN, COUT, K, KK, H, W, OH, OW>(p, x, y);
    }
    true
}

/// [`super::conv::conv_backward_input`] over a batch (`dx` overwritten), image by image with
/// [`backward_input_image`], when `T` is `f32` and [`available`]; otherwise returns `false` having
/// done nothing. `scratch` needs [`scratch_len`] floats.
#[inline(never)]
pub fn try_conv_backward_input<
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
    dx: ViewMut<'_, T, CIN, H, W>,
    scratch: &mut [T],
) -> bool {
    check_shapes::<CIN, COUT, K, KK, H, W, OH, OW>();
    assert_eq!(
        dx.n(),
        dy.n(),
        "try_conv_backward_input: batch sizes differ"
    );
    assert!(
        scratch.len() >= image_scratch_len(COUT, OH, OW, W),
        "try_conv_backward_input: scratch shorter than scratch_len"
    );
    if !(is_f32::<T>() && available()) {
        return false;
    }
    let (Some(p), Some(dys), Some(dxs), Some(s)) = (
        (p as &dyn Any).downcast_ref::<Conv<f32, CIN, COUT, K, KK>>(),
        f32_slice(dy.0),
        f32_slice_mut(dx.0),
        f32_slice_mut(scratch),
    ) else {
        return false;
    };
    let (dyi, dxi) = (COUT * OH * OW, CIN * H * W);
    for (dy, dx) in dys.chunks_exact(dyi).zip(dxs.chunks_exact_mut(dxi)) {
        backward_input_image::<CIN, COUT, K, KK, H, W, OH, OW>(p, dy, dx, s);
    }
    true
}

/// [`super::conv::conv_backward_weight`] over a batch (**accumulates** into `dw.weight`),
/// when `T` is `f32` and [`available`]; otherwise returns `false` having done nothing. Images are
/// taken in order, in groups of [`weight_group_len`] whose sums are formed in registers before
/// being added into `dw` (so a batch passed in one call is summed in a different, equally
/// fixed, order from the same images passed one by one). `scratch` needs [`scratch_len`]
/// floats.
#[inline(never)]
pub fn try_conv_backward_weight<
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
    scratch: &mut [T],
) -> bool {
    check_shapes::<CIN, COUT, K, KK, H, W, OH, OW>();
    assert_eq!(
        x.n(),
        dy.n(),
        "try_conv_backward_weight: batch sizes differ"
    );
    assert!(
        scratch.len() >= scratch_len(COUT, OH, OW, W),
        "try_conv_backward_weight: scratch shorter than scratch_len"
    );
    if !(is_f32::<T>() && available()) {
        return false;
    }
    let (Some(dw), Some(dys), Some(xs), Some(s)) = (
        (dw as &mut dyn Any).downcast_mut::<Conv<f32, CIN, COUT, K, KK>>(),
        f32_slice(dy.0),
        f32_slice(x.0),
        f32_slice_mut(scratch),
    ) else {
        return false;
    };
    let (dyi, xi) = (COUT * OH * OW, CIN * H * W);
    let gl = weight_group_len(COUT, OH, OW, W);
    for (dy, x) in dys.chunks(gl * dyi).zip(xs.chunks(gl * xi)) {
        weight_group::<CIN, COUT, K, KK, H, W, OH, OW>(dy, x, dw, s);
    }
    true
}

/// [`super::conv::conv_backward_bias`] over a batch (accumulates into `db`), with
/// [`backward_bias_image`], when `T` is `f32` and [`available`]; otherwise returns `false`.
#[inline(never)]
pub fn try_conv_backward_bias<T: Float, const COUT: usize, const OH: usize, const OW: usize>(
    dy: View<'_, T, COUT, OH, OW>,
    db: &mut SVector<T, COUT>,
) -> bool {
    if !(is_f32::<T>() && available()) {
        return false;
    }
    let (Some(db), Some(dys)) = (
        (db as &mut dyn Any).downcast_mut::<SVector<f32, COUT>>(),
        f32_slice(dy.0),
    ) else {
        return false;
    };
    for dy in dys.chunks_exact(COUT * OH * OW) {
        backward_bias_image::<COUT, OH, OW>(dy, db);
    }
    true
}

// ------------------------------------------------------------------ the kernels

#[cfg(target_arch = "x86_64")]
mod avx512 {
    use super::LANES as L;
    use std::arch::x86_64::*;

    /// The geometry of one valid convolution as the kernels see it: `cout` output channels,
    /// input planes `h×w`, output planes `oh×ow` (`= (h−K+1)×(w−K+1)`). The input channel
    /// count and `K` are const parameters of the kernels.
    pub(super) struct Geom {
        pub cout: usize,
        pub h: usize,
        pub w: usize,
        pub oh: usize,
        pub ow: usize,
    }

    impl Geom {
        fn total(&self) -> usize {
            super::wide_positions(self.oh, self.ow, self.w)
        }
        fn nv(&self) -> usize {
            super::wide_vectors(self.oh, self.ow, self.w)
        }
    }

    /// One vector of 16 wide positions starting at `16·v`: which lanes may be loaded
    /// (`q < total`), which are real outputs (also `x < ow`), the dense NCHW index of the
    /// first real one and how many there are.
    #[derive(Clone, Copy)]
    struct Slot {
        load: __mmask16,
        valid: __mmask16,
        dense: usize,
        count: u32,
    }

    fn slot(g: &Geom, v: usize) -> Slot {
        let total = g.total();
        let (mut load, mut valid, mut dense) = (0u16, 0u16, None);
        let q0 = v * L;
        let (mut y, mut x) = (q0 / g.w, q0 % g.w);
        for i in 0..L.min(total.saturating_sub(q0)) {
            load |= 1 << i;
            if x < g.ow {
                valid |= 1 << i;
                dense.get_or_insert(y * g.ow + x);
            }
            x += 1;
            if x == g.w {
                (x, y) = (0, y + 1);
            }
        }
        Slot {
            load,
            valid,
            dense: dense.unwrap_or(0),
            count: valid.count_ones(),
        }
    }

    /// The forward pass of one image.
    ///
    /// # Safety
    /// avx512f must be available; `w.len() = cout·CIN·K·K` (`[cout, CIN, K, K]`),
    /// `bias.len() = cout`, `x.len() = CIN·h·w`, `y.len() = cout·oh·ow`, and
    /// `oh = h−K+1`, `ow = w−K+1`.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn forward<const CIN: usize, const K: usize>(
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
        // SAFETY (loads): weight reads are `wt[o·kk + k]` with `o < NO`, `k < kk`, inside the
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

    /// The input gradient of one image: `dx` is zeroed, then
    /// `dx[off(k) + q] += Σ_o W[o, k]·dyw[o, q]` for every tap `k` and wide position `q`.
    ///
    /// # Safety
    /// avx512f must be available; `w.len() = cout·CIN·K·K` (`[cout, CIN, K, K]`),
    /// `dyw.len() = cout·16·nv` (wide rows, zero at `x ≥ ow`), `dx.len() = CIN·h·w`, and
    /// `oh = h−K+1`, `ow = w−K+1`.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn backward_input<const CIN: usize, const K: usize>(
        g: &Geom,
        w: &[f32],
        dyw: &[f32],
        dx: &mut [f32],
    ) {
        let kk = CIN * K * K;
        debug_assert_eq!(w.len(), g.cout * kk);
        debug_assert_eq!(dyw.len(), g.cout * g.nv() * L);
        debug_assert_eq!(dx.len(), CIN * g.h * g.w);
        debug_assert!(g.oh + K == g.h + 1 && g.ow + K == g.w + 1);
        dx.fill(0.0);
        let nv = g.nv();
        let mut v0 = 0;
        while v0 < nv {
            // SAFETY: the preconditions of `backward_input` are those of `bi_group`, and
            // `v0 < nv`.
            unsafe {
                v0 += match nv - v0 {
                    1 => bi_group::<1, CIN, K>(g, w, dyw, dx, v0),
                    2 => bi_group::<2, CIN, K>(g, w, dyw, dx, v0),
                    _ => bi_group::<3, CIN, K>(g, w, dyw, dx, v0),
                };
            }
        }
    }

    /// All taps of the `NPV` wide vectors from `v0`; returns `NPV`.
    ///
    /// # Safety
    /// As [`backward_input`], and `v0 + NPV ≤ nv`.
    #[target_feature(enable = "avx512f")]
    unsafe fn bi_group<const NPV: usize, const CIN: usize, const K: usize>(
        g: &Geom,
        w: &[f32],
        dyw: &[f32],
        dx: &mut [f32],
        v0: usize,
    ) -> usize {
        let masks: [__mmask16; NPV] = std::array::from_fn(|v| slot(g, v0 + v).load);
        // Tiles of input channels at one kernel position `r = ki·K + kj`: the `NT` sums a tile
        // adds into `dx` lie in different planes, so no store has to forward into an
        // overlapping, shifted load (which would stall), as would tiles of neighbouring taps.
        for r in 0..K * K {
            let mut c0 = 0;
            while c0 < CIN {
                // SAFETY: preconditions of `bi_tile`: those of `backward_input`,
                // `v0 + NPV ≤ nv`, `c0 + NT ≤ CIN` by the choice of `NT`, `r < K·K`, and the
                // load masks.
                unsafe {
                    c0 += match CIN - c0 {
                        1 => bi_tile::<1, NPV, CIN, K>(g, w, dyw, dx, c0, r, v0, &masks),
                        2 | 3 => bi_tile::<2, NPV, CIN, K>(g, w, dyw, dx, c0, r, v0, &masks),
                        4..=7 => bi_tile::<4, NPV, CIN, K>(g, w, dyw, dx, c0, r, v0, &masks),
                        _ => bi_tile::<8, NPV, CIN, K>(g, w, dyw, dx, c0, r, v0, &masks),
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
    /// `masks[v] = slot(g, v0 + v).load`.
    #[allow(clippy::too_many_arguments)]
    #[target_feature(enable = "avx512f")]
    unsafe fn bi_tile<const NT: usize, const NPV: usize, const CIN: usize, const K: usize>(
        g: &Geom,
        w: &[f32],
        dyw: &[f32],
        dx: &mut [f32],
        c0: usize,
        r: usize,
        v0: usize,
        masks: &[__mmask16; NPV],
    ) -> usize {
        let kk = CIN * K * K;
        let row = g.nv() * L;
        let hw = g.h * g.w;
        let mut acc = [[_mm512_setzero_ps(); NPV]; NT];
        let wp = w.as_ptr();
        let dyp = dyw.as_ptr();
        // SAFETY (loads): weights `w[o·kk + (c0+t)·K·K + r]` with `o < cout`, `c0 + t < CIN`,
        // `r < K·K`: inside `w`. `dyw[o·row + 16(v0+v) .. +16]` with `o < cout`,
        // `v0 + v < nv`: inside `dyw`.
        unsafe {
            for o in 0..g.cout {
                let dv: [__m512; NPV] =
                    std::array::from_fn(|v| _mm512_loadu_ps(dyp.add(o * row + (v0 + v) * L)));
                let wo = wp.add(o * kk + c0 * K * K + r);
                for (t, a) in acc.iter_mut().enumerate() {
                    let wv = _mm512_set1_ps(*wo.add(t * K * K));
                    for (a, &dv) in a.iter_mut().zip(&dv) {
                        *a = _mm512_fmadd_ps(wv, dv, *a);
                    }
                }
            }
        }
        let dxp = dx.as_mut_ptr();
        let shift = (r / K) * g.w + r % K;
        for (t, a) in acc.iter().enumerate() {
            let off = (c0 + t) * hw + shift;
            for (v, (&a, &m)) in a.iter().zip(masks).enumerate() {
                // SAFETY: the first position `q = 16(v0+v) < total` and every lane enabled by
                // `m` has `q' < total`, so `off + q' ≤ c·hw + (h−1)·w + w − 1 < CIN·hw`, as in
                // `forward_tile`; masked-off lanes are not accessed.
                unsafe {
                    let p = dxp.add(off + (v0 + v) * L);
                    let cur = _mm512_maskz_loadu_ps(m, p);
                    _mm512_mask_storeu_ps(p, m, _mm512_add_ps(cur, a));
                }
            }
        }
        NT
    }

    /// The lowest `n ≤ 16` lanes.
    fn mask_low(n: u32) -> __mmask16 {
        ((1u32 << n) - 1) as __mmask16
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
    /// avx512f must be available; `n ≥ 1`; each image's `dY` is `cout` wide rows of `16·nv`
    /// floats (zero at `x ≥ ow`): `dyw.len() ≥ (n−1)·dy_stride + cout·16·nv`; each input is
    /// `[CIN, h, w]`: `x.len() ≥ (n−1)·x_stride + CIN·h·w`; `dw.len() = cout·CIN·K·K`; and
    /// `oh = h−K+1`, `ow = w−K+1`.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn backward_weight<const CIN: usize, const K: usize>(
        g: &Geom,
        grp: &Group<'_>,
        dw: &mut [f32],
    ) {
        let kk = CIN * K * K;
        let row = g.nv() * L;
        debug_assert!(grp.n >= 1);
        debug_assert!(grp.dyw.len() >= (grp.n - 1) * grp.dy_stride + g.cout * row);
        debug_assert!(grp.x.len() >= (grp.n - 1) * grp.x_stride + CIN * g.h * g.w);
        debug_assert_eq!(dw.len(), g.cout * kk);
        debug_assert!(g.oh + K == g.h + 1 && g.ow + K == g.w + 1);
        let last = slot(g, g.nv() - 1).load;
        let mut o0 = 0;
        while o0 < g.cout {
            let no = match g.cout - o0 {
                1 => 1,
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
                        (4, 6..) => bw_tile::<4, 6, CIN, K>(g, grp, last, dw, o0, k0),
                        (4, 3..=5) => bw_tile::<4, 3, CIN, K>(g, grp, last, dw, o0, k0),
                        (4, _) => bw_tile::<4, 1, CIN, K>(g, grp, last, dw, o0, k0),
                        (2, 6..) => bw_tile::<2, 6, CIN, K>(g, grp, last, dw, o0, k0),
                        (2, _) => bw_tile::<2, 1, CIN, K>(g, grp, last, dw, o0, k0),
                        (_, 6..) => bw_tile::<1, 6, CIN, K>(g, grp, last, dw, o0, k0),
                        (_, _) => bw_tile::<1, 1, CIN, K>(g, grp, last, dw, o0, k0),
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
    #[target_feature(enable = "avx512f")]
    unsafe fn bw_tile<const NO: usize, const NT: usize, const CIN: usize, const K: usize>(
        g: &Geom,
        grp: &Group<'_>,
        last: __mmask16,
        dw: &mut [f32],
        o0: usize,
        k0: usize,
    ) -> usize {
        const { assert!(NO * NT <= 32, "bw_tile reduces at most 32 accumulators") }
        let kk = CIN * K * K;
        let nv = g.nv();
        let row = nv * L;
        let hw = g.h * g.w;
        let off: [usize; NT] = std::array::from_fn(|t| {
            let (c, r) = ((k0 + t) / (K * K), (k0 + t) % (K * K));
            c * hw + (r / K) * g.w + r % K
        });
        let mut acc = [[_mm512_setzero_ps(); NT]; NO];
        for i in 0..grp.n {
            let dyp = grp.dyw[i * grp.dy_stride + o0 * row..][..NO * row].as_ptr();
            let xp = grp.x[i * grp.x_stride..][..CIN * hw].as_ptr();
            // SAFETY (loads): `dyp[o·row + 16v .. +16]` with `o < NO`, `v < nv` lies in the
            // `NO·row` sub-slice. An input load starts at `off(k) + 16v` whose first position
            // `16v < total` (`v < nv`); all vectors but the last are entirely below `total`,
            // the last is masked to `q < total`; and `off(k) + q < CIN·hw` for `q < total`,
            // as in `forward_tile`.
            unsafe {
                for v in 0..nv {
                    let m = if v + 1 < nv { !0 } else { last };
                    let d: [__m512; NO] =
                        std::array::from_fn(|o| _mm512_loadu_ps(dyp.add(o * row + v * L)));
                    for (t, &off) in off.iter().enumerate() {
                        let xv = _mm512_maskz_loadu_ps(m, xp.add(off + v * L));
                        for (a, &d) in acc.iter_mut().zip(&d) {
                            a[t] = _mm512_fmadd_ps(d, xv, a[t]);
                        }
                    }
                }
            }
        }
        // Horizontal sums, 16 accumulators at a time, in the order [o][t].
        let flat: [[__m512; 16]; 2] = std::array::from_fn(|h| {
            std::array::from_fn(|i| {
                let i = 16 * h + i;
                if i < NO * NT {
                    acc[i / NT][i % NT]
                } else {
                    _mm512_setzero_ps()
                }
            })
        });
        let mut sums = [0.0f32; 32];
        for (h, out) in sums.chunks_exact_mut(16).enumerate() {
            if 16 * h < NO * NT {
                // SAFETY: `out` is 16 floats.
                unsafe { _mm512_storeu_ps(out.as_mut_ptr(), reduce16(flat[h])) };
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

    /// `t[p·c + r] = s[r·p_len + p]`: the `[c, p_len]` matrix `s` transposed, in 16×16
    /// blocks of shuffles where they fit, element by element at the edges.
    ///
    /// # Safety
    /// avx512f must be available; `s.len() = t.len() = c·p_len`.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn transpose(s: &[f32], t: &mut [f32], c: usize, p_len: usize) {
        assert!(s.len() == c * p_len && t.len() == c * p_len);
        let (cb, pb) = (c / L, p_len / L);
        for ob in 0..cb {
            for qb in 0..pb {
                // SAFETY: rows `16·ob + r < c` of `s` from column `16·qb`, 16 floats each
                // (`16·qb + 16 ≤ p_len`); rows `16·qb + r < p_len` of `t` from column `16·ob`
                // (`16·ob + 16 ≤ c`): all inside the `c·p_len` slices.
                unsafe {
                    let r: [__m512; 16] = std::array::from_fn(|r| {
                        _mm512_loadu_ps(s.as_ptr().add((ob * L + r) * p_len + qb * L))
                    });
                    let r = transpose16(r);
                    for (i, v) in r.iter().enumerate() {
                        _mm512_storeu_ps(t.as_mut_ptr().add((qb * L + i) * c + ob * L), *v);
                    }
                }
            }
        }
        // The edges: channels past the last full block, and pixels past the last full block.
        for o in 0..c {
            let q0 = if o < cb * L { pb * L } else { 0 };
            for q in q0..p_len {
                t[q * c + o] = s[o * p_len + q];
            }
        }
    }

    /// The 16×16 transpose of the rows `r`: unpack, then three rounds of shuffles.
    #[inline]
    #[target_feature(enable = "avx512f")]
    fn transpose16(mut r: [__m512; 16]) -> [__m512; 16] {
        let mut t = [_mm512_setzero_ps(); 16];
        for i in 0..8 {
            t[2 * i] = _mm512_unpacklo_ps(r[2 * i], r[2 * i + 1]);
            t[2 * i + 1] = _mm512_unpackhi_ps(r[2 * i], r[2 * i + 1]);
        }
        for b in (0..16).step_by(4) {
            r[b] = _mm512_shuffle_ps::<0x44>(t[b], t[b + 2]);
            r[b + 1] = _mm512_shuffle_ps::<0xEE>(t[b], t[b + 2]);
            r[b + 2] = _mm512_shuffle_ps::<0x44>(t[b + 1], t[b + 3]);
            r[b + 3] = _mm512_shuffle_ps::<0xEE>(t[b + 1], t[b + 3]);
        }
        for b in [0, 8] {
            for j in 0..4 {
                t[b + j] = _mm512_shuffle_f32x4::<0x88>(r[b + j], r[b + 4 + j]);
                t[b + 4 + j] = _mm512_shuffle_f32x4::<0xDD>(r[b + j], r[b + 4 + j]);
            }
        }
        for j in 0..8 {
            r[j] = _mm512_shuffle_f32x4::<0x88>(t[j], t[8 + j]);
            r[8 + j] = _mm512_shuffle_f32x4::<0xDD>(t[j], t[8 + j]);
        }
        r
    }

    /// The weight gradient of `n` images vectorised over output channels, added into `dw`:
    /// `dw[o, (c, ki, kj)] += Σ_i Σ_{y,x} dyt_i[y·OW + x, o]·x_i[c, y+ki, x+kj]`.
    ///
    /// Register tile: `NOV` vectors of 16 output channels × `NC` input channels × the `K`
    /// columns `kj` of one kernel row `ki` (24 accumulators for conv2: 2 × 4 × 3). Per pixel:
    /// `NOV` loads of `dyt`, `NC·K` broadcasts of `x` (4-byte loads, which never split a
    /// cache line; their offsets are compile-time constants from one base), `NOV·NC·K` FMAs.
    /// No lane is wasted and nothing is reduced across lanes; each accumulator lane is
    /// finally added to its own `dw` element.
    ///
    /// # Safety
    /// avx512f must be available; `COUT % 16 = 0`; `dyt.len() = n·OH·OW·COUT`
    /// (`[OH·OW, COUT]` per image); `x.len() = n·CIN·H·W`; `dw.len() = COUT·CIN·K·K`;
    /// `OH = H−K+1`, `OW = W−K+1`.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn backward_weight_by_channel<
        const CIN: usize,
        const COUT: usize,
        const K: usize,
        const H: usize,
        const W: usize,
        const OH: usize,
        const OW: usize,
    >(
        n: usize,
        dyt: &[f32],
        x: &[f32],
        dw: &mut [f32],
    ) {
        assert!(COUT.is_multiple_of(L) && OH + K == H + 1 && OW + K == W + 1);
        assert!(dyt.len() == n * OH * OW * COUT && x.len() == n * CIN * H * W);
        assert_eq!(dw.len(), COUT * CIN * K * K);
        let mut ov0 = 0;
        while ov0 < COUT / L {
            let nov = if COUT / L - ov0 >= 2 { 2 } else { 1 };
            for ki in 0..K {
                let mut c0 = 0;
                while c0 < CIN {
                    // The widest channel tile with at most 24 accumulators that fits.
                    let rem = CIN - c0;
                    let fits = |nc: usize| nc <= rem && nc * K * nov <= 24;
                    let nc = [8, 4, 2, 1].into_iter().find(|&nc| fits(nc)).unwrap_or(1);
                    // SAFETY: preconditions of `bwc_tile`: those of this function,
                    // `ov0 + NOV ≤ COUT/16`, `c0 + NC ≤ CIN`, `ki < K`.
                    unsafe {
                        macro_rules! tile {
                            ($nc:literal, $nov:literal) => {
                                bwc_tile::<$nc, $nov, CIN, COUT, K, H, W, OH, OW>(
                                    n, dyt, x, dw, ov0, ki, c0,
                                )
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
    #[target_feature(enable = "avx512f")]
    unsafe fn bwc_tile<
        const NC: usize,
        const NOV: usize,
        const CIN: usize,
        const COUT: usize,
        const K: usize,
        const H: usize,
        const W: usize,
        const OH: usize,
        const OW: usize,
    >(
        n: usize,
        dyt: &[f32],
        x: &[f32],
        dw: &mut [f32],
        ov0: usize,
        ki: usize,
        c0: usize,
    ) {
        let hw = H * W;
        let mut acc = [[[_mm512_setzero_ps(); NOV]; K]; NC];
        for i in 0..n {
            let dp = dyt[i * OH * OW * COUT..][..OH * OW * COUT].as_ptr();
            let xp = x[i * CIN * hw..][..CIN * hw].as_ptr();
            // SAFETY (loads): `dyt_i[(y·OW + x)·COUT + 16(ov0 + j) .. +16]` with `y < OH`,
            // `x < OW`, `ov0 + j < COUT/16`: inside image `i`'s `OH·OW·COUT` floats.
            // `x_i[(c0+t)·hw + (ki+y)·W + kj + x]` with `c0 + t < CIN`, `ki + y ≤ H−1`,
            // `kj + x ≤ W−1`: inside image `i`'s `CIN·hw` floats.
            unsafe {
                for y in 0..OH {
                    let xr = xp.add(c0 * hw + (ki + y) * W);
                    let dr = dp.add(y * OW * COUT + ov0 * L);
                    for xx in 0..OW {
                        let d: [__m512; NOV] =
                            std::array::from_fn(|j| _mm512_loadu_ps(dr.add(xx * COUT + j * L)));
                        for (t, at) in acc.iter_mut().enumerate() {
                            for (kj, a) in at.iter_mut().enumerate() {
                                let b = _mm512_set1_ps(*xr.add(t * hw + kj + xx));
                                for (a, &d) in a.iter_mut().zip(&d) {
                                    *a = _mm512_fmadd_ps(d, b, *a);
                                }
                            }
                        }
                    }
                }
            }
        }
        let kk = CIN * K * K;
        let mut lanes = [0.0f32; L];
        for (t, at) in acc.iter().enumerate() {
            for (kj, a) in at.iter().enumerate() {
                let k = ((c0 + t) * K + ki) * K + kj;
                for (j, &v) in a.iter().enumerate() {
                    // SAFETY: `lanes` is 16 floats.
                    unsafe { _mm512_storeu_ps(lanes.as_mut_ptr(), v) };
                    for (l, &s) in lanes.iter().enumerate() {
                        dw[((ov0 + j) * L + l) * kk + k] += s;
                    }
                }
            }
        }
    }

    /// `r[i] = Σ_lanes a[i]`: a transposition tree of 15 adds and 30 shuffles, then one
    /// permutation into natural order.
    #[inline]
    #[target_feature(enable = "avx512f")]
    fn reduce16(a: [__m512; 16]) -> __m512 {
        // Level 1: 128-bit halves. l1[i] holds a[2i] in 128-lanes 0,1 and a[2i+1] in 2,3.
        let l1: [__m512; 8] = std::array::from_fn(|i| {
            let (p, q) = (a[2 * i], a[2 * i + 1]);
            _mm512_add_ps(
                _mm512_shuffle_f32x4::<0b01_00_01_00>(p, q),
                _mm512_shuffle_f32x4::<0b11_10_11_10>(p, q),
            )
        });
        // Level 2: l2[j] holds a[4j + l] in 128-lane l.
        let l2: [__m512; 4] = std::array::from_fn(|j| {
            let (p, q) = (l1[2 * j], l1[2 * j + 1]);
            _mm512_add_ps(
                _mm512_shuffle_f32x4::<0b10_00_10_00>(p, q),
                _mm512_shuffle_f32x4::<0b11_01_11_01>(p, q),
            )
        });
        // Level 3: in 128-lane l of l3[m], elements 0,1 belong to a[8m + l], 2,3 to
        // a[8m + 4 + l].
        let l3: [__m512; 2] = std::array::from_fn(|m| {
            let (p, q) = (l2[2 * m], l2[2 * m + 1]);
            _mm512_add_ps(
                _mm512_shuffle_ps::<0b01_00_01_00>(p, q),
                _mm512_shuffle_ps::<0b11_10_11_10>(p, q),
            )
        });
        // Level 4: element 4l + s holds the sum of a[4s + l].
        let r = _mm512_add_ps(
            _mm512_shuffle_ps::<0b10_00_10_00>(l3[0], l3[1]),
            _mm512_shuffle_ps::<0b11_01_11_01>(l3[0], l3[1]),
        );
        let idx = _mm512_setr_epi32(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15);
        _mm512_permutexvar_ps(idx, r)
    }

    /// `Σ s`: 16 lane-wise partial sums, then a fixed reduction tree.
    ///
    /// # Safety
    /// avx512f must be available.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn sum(s: &[f32]) -> f32 {
        let mut acc = [_mm512_setzero_ps(); 4];
        let mut blocks = s.chunks_exact(4 * L);
        for b in &mut blocks {
            for (j, a) in acc.iter_mut().enumerate() {
                // SAFETY: `b` is 64 floats, so lanes `16j .. 16j+16` are inside it.
                *a = _mm512_add_ps(*a, unsafe { _mm512_loadu_ps(b.as_ptr().add(j * L)) });
            }
        }
        let mut chunks = blocks.remainder().chunks(L);
        for a in &mut acc {
            let Some(ch) = chunks.next() else { break };
            // SAFETY: the mask enables only the `ch.len() ≤ 16` lanes inside `ch`.
            let v = unsafe { _mm512_maskz_loadu_ps(mask_low(ch.len() as u32), ch.as_ptr()) };
            *a = _mm512_add_ps(*a, v);
        }
        let s = _mm512_add_ps(_mm512_add_ps(acc[0], acc[1]), _mm512_add_ps(acc[2], acc[3]));
        _mm512_reduce_add_ps(s)
    }
}
