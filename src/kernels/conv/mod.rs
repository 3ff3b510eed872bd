//! Hand-vectorised f32 kernels for the convolution of [`crate::cnn::conv`] (stride 1, no padding,
//! bias): forward, input gradient, weight gradient and bias gradient, one image at a time, by
//! direct convolution (no im2col, no packing of the input). They are written once over the
//! 16-lane vectors of [`super::simd`] and run on AVX-512, AVX2+FMA, NEON or plain Rust, with
//! the same bits on every one of them (see [`super::simd`]).
//!
//! They compute the same sums as the generic GEMM path of [`crate::cnn::conv`] in another (fixed,
//! thread-independent) order, so results agree to f32 rounding, not bit for bit.
//!
//! # Dispatch
//! The network calls one function per pass: [`forward`], [`backward_input`],
//! [`backward_weight`], [`backward`] (weight and input gradients in one pass) and
//! [`backward_bias`]. Each asks [`cpu::isa`] (which honours `GRADSPEC_SIMD` and
//! `GRADSPEC_NO_AVX512`) and [`cpu::winograd`], and alone chooses Winograd, direct or the
//! reference path (see [`crate::kernels`]).
//!
//! Below them, every function takes an [`Isa`] (or a token that converts into one, such as
//! [`super::cpu::Avx512`]), which only [`super::cpu`] can make for an instruction set the CPU
//! has: holding one is the proof that the kernels may run, so nothing here detects features
//! itself; the kernels' tests pass each of [`super::cpu::isas_hardware`]. The register tiles
//! below are those of AVX-512 (32 registers of one vector); AVX2 and NEON use tiles of at most
//! 6 vectors, chosen so that every sum keeps its order.
//!
//! The batch functions (`try_*`) are generic over the float type, with the signatures of
//! [`crate::cnn::conv`] plus the token. They reach the f32 data through [`Float::as_f32`] and
//! [`Float::as_f32_mut`] (one helper, `f32_images`, for the per-image loop), and return
//! `false`, having done nothing, when the float type is not `f32` (f64 always takes
//! [`crate::cnn::conv`]), so that the dispatcher falls back to the reference path.
//!
//! # Files
//! One per pass, each holding its safe entry points and, in a `mod kernel`, the `unsafe`
//! kernels they call, generic over [`super::simd::Simd`]: `forward.rs`, `backward_input.rs`, `backward_weight.rs` (weight and
//! bias gradients); `winograd.rs` holds Winograd's `F(2×2, 3×3)` for the 16 → 32-channel 3×3
//! shapes (conv2, conv5, conv7): forward pass, input gradient and weight gradient, which the
//! network runs by default ([`super::cpu::winograd`]; batch functions [`try_winograd_forward`],
//! [`try_winograd_backward_input`], [`try_winograd_backward_weight`]; the tests' entry points
//! [`winograd_forward_image`], [`winograd_backward_input_image`],
//! [`winograd_backward_weight_images`]); This file holds the batch functions, the scratch sizes, the shape
//! checks and what the passes share (the wide rows of `dY`, the geometry of a wide vector).
//!
//! # API
//! Per image (f32 slices, `[C, H, W]` row-major): [`forward_image`], [`backward_input_image`],
//! [`backward_weight_image`] (adds into `dw.weight`), [`backward_bias_image`] (adds into
//! `db`). Per batch, with the signatures of [`crate::cnn::conv`] and generic over the float type:
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
//! When the output rows are a multiple of 8 long and a plane a multiple of 16 (conv2, conv5),
//! the forward pass skips the wide layout's waste: a vector holds 16 *dense* outputs, which lie
//! in one row or in the last 8 of one row and the first 8 of the next, so each tap loads them
//! as one vector or as two 8-float halves `K − 1` apart (`load_halves`), and the tile is
//! stored whole. Each output's FMA chain is unchanged, so are the bits (criterion, AVX-512:
//! conv2 8.12 → 7.50 ms, conv5 0.86 → 0.67 ms per 128 images).
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
//! output channels: `dY` is transposed per image to `[COUT/16, OH·OW, 16]` (16×16 shuffle
//! blocks; each block of 16 channels one stream of 64-byte rows) and
//! `dW[o, (c, ki, kj)] += Σ_{y,x} dYt[o/16, y·OW + x, o%16]·X[c, y+ki, x+kj]`. Register tile: 2
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
use super::cpu::{self, Isa};
use crate::cnn::conv::{
    ConvParams, ConvShape, conv_backward_bias, conv_backward_input, conv_backward_weight,
    conv_forward,
};
use crate::cnn::float::Float;
use crate::cnn::tensor::{Data, DataMut};

mod backward_input;
mod backward_weight;
mod forward;
mod winograd;

pub use backward_input::backward_input_image;
pub use backward_weight::{backward_bias_image, backward_weight_image};
pub use forward::{dense_layout, forward_image};

/// Floats per vector (of [`super::simd`]).
pub use super::simd::LANES;

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
/// `[COUT/16, OH·OW, 16]`): when `COUT` is a multiple of 16. Otherwise it vectorises over wide
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

/// [`scratch_len`] of the shape `S`.
pub const fn scratch_len_of<S: ConvShape>() -> usize {
    scratch_len(S::COUT, S::OH, S::OW, S::W)
}

/// [`image_scratch_len`] of the shape `S`.
pub const fn image_scratch_len_of<S: ConvShape>() -> usize {
    image_scratch_len(S::COUT, S::OH, S::OW, S::W)
}

/// The Winograd geometry of the forward pass of `S` when the shape is one the Winograd
/// kernels take (3×3 kernels, 16 → 32 or 32 → 16 channels, an even output).
const fn winograd_geom_forward<S: ConvShape>() -> Option<winograd::WGeom> {
    let g = winograd::WGeom::forward(S::CIN, S::COUT, S::H, S::W);
    if S::K == 3 && g.takes() {
        Some(g)
    } else {
        None
    }
}

/// The Winograd geometry of the input gradient of `S`, as [`winograd_geom_forward`].
const fn winograd_geom_backward_input<S: ConvShape>() -> Option<winograd::WGeom> {
    let g = winograd::WGeom::backward_input(S::CIN, S::COUT, S::H, S::W);
    if S::K == 3 && g.takes() {
        Some(g)
    } else {
        None
    }
}

/// The Winograd geometry of the weight gradient of `S` (that of its forward pass) when the
/// weight-gradient kernels take it, as [`winograd_geom_forward`].
const fn winograd_geom_backward_weight<S: ConvShape>() -> Option<winograd::WGeom> {
    let g = winograd::WGeom::forward(S::CIN, S::COUT, S::H, S::W);
    if S::K == 3 && g.takes_weight() {
        Some(g)
    } else {
        None
    }
}

/// The geometries of [`try_winograd_backward`]: the weight gradient's and the input
/// gradient's, when the one pass over the images takes the shape `S`.
const fn winograd_geoms_backward<S: ConvShape>() -> Option<(winograd::WGeom, winograd::WGeom)> {
    let gw = winograd::WGeom::forward(S::CIN, S::COUT, S::H, S::W);
    let gi = winograd::WGeom::backward_input(S::CIN, S::COUT, S::H, S::W);
    if S::K == 3 && gw.takes_backward() {
        Some((gw, gi))
    } else {
        None
    }
}

/// Which passes of a convolution shape Winograd's kernels take, when
/// [`cpu::winograd`] allows them ([`winograd_passes`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WinogradPasses {
    /// [`try_winograd_forward`].
    pub forward: bool,
    /// [`try_winograd_backward_input`].
    pub backward_input: bool,
    /// [`try_winograd_backward_weight`].
    pub backward_weight: bool,
    /// [`try_winograd_backward`], both gradients in one pass over the images.
    pub backward: bool,
}

/// Which passes of `S` Winograd's kernels take: 3×3 kernels, 16 → 32 or 32 → 16 channels, an
/// even output, and buffers within the kernels' fixed scratch, which is sized for the
/// network's conv2 (so conv2, conv5 and conv7 take every pass). Each pass's rule is checked on
/// its own geometry. Where the forward pass or one gradient is refused, its dispatcher takes
/// the direct kernels, which round differently; where only the one pass over both gradients
/// is, [`backward`] runs the two gradients' dispatchers one after the other (the same bits).
/// `tests/cnn_conv_simd.rs` pins the answer at each edge of the rule.
pub const fn winograd_passes<S: ConvShape>() -> WinogradPasses {
    WinogradPasses {
        forward: winograd_geom_forward::<S>().is_some(),
        backward_input: winograd_geom_backward_input::<S>().is_some(),
        backward_weight: winograd_geom_backward_weight::<S>().is_some(),
        backward: winograd_geoms_backward::<S>().is_some(),
    }
}

/// The forward pass of one image by Winograd's `F(2×2, 3×3)` whatever
/// [`cpu::winograd`](super::cpu::winograd) says (for the kernels' tests): as
/// [`forward_image`], rounded differently.
///
/// # Panics
/// If `S` is not a shape the Winograd kernels take (3×3, 16 → 32 or 32 → 16 channels, an
/// even output), or a slice length does not match its shape.
pub fn winograd_forward_image<S: ConvShape>(
    cpu: impl Into<Isa>,
    p: &S::Params<f32>,
    x: &[f32],
    y: &mut [f32],
) {
    let g = winograd_geom_forward::<S>().expect("winograd_forward_image: shape not taken");
    let mut slot = std::mem::MaybeUninit::uninit();
    let work = winograd::Work::init(&mut slot, g);
    work.set_forward(&g, p.weight());
    winograd::image(cpu.into(), &g, work, Some(p.bias()), x, y);
}

/// The input gradient of one image by Winograd (`dY` zero-padded by 2, correlated with the
/// flipped kernel), as [`winograd_forward_image`]; `dx` is overwritten.
///
/// # Panics
/// As [`winograd_forward_image`].
pub fn winograd_backward_input_image<S: ConvShape>(
    cpu: impl Into<Isa>,
    p: &S::Params<f32>,
    dy: &[f32],
    dx: &mut [f32],
) {
    let g = winograd_geom_backward_input::<S>()
        .expect("winograd_backward_input_image: shape not taken");
    let mut slot = std::mem::MaybeUninit::uninit();
    let work = winograd::Work::init(&mut slot, g);
    work.set_backward_input(&g, p.weight());
    winograd::image(cpu.into(), &g, work, None, dy, dx);
}

/// The weight gradient of `n ≥ 1` images by Winograd (`dy`, `x` hold exactly `n` each),
/// **added** into `dw.weight` whatever [`cpu::winograd`](super::cpu::winograd) says (for the
/// kernels' tests): as [`try_conv_backward_weight`], rounded differently, and summed over all
/// `n` images before `dw` is touched.
///
/// # Panics
/// As [`winograd_forward_image`], and if `dy` and `x` do not hold the same number of whole
/// images.
pub fn winograd_backward_weight_images<S: ConvShape>(
    cpu: impl Into<Isa>,
    dy: &[f32],
    x: &[f32],
    dw: &mut S::Params<f32>,
) {
    let g = winograd_geom_backward_weight::<S>()
        .expect("winograd_backward_weight_images: shape not taken");
    let mut slot = std::mem::MaybeUninit::uninit();
    let work = winograd::Work::init(&mut slot, g);
    winograd::weight(cpu.into(), &g, work, dy, x, dw.weight_mut());
}

/// Whether `dY` is already in wide rows: `W = OW` and `OH·OW` a multiple of 16.
const fn dy_is_wide(oh: usize, ow: usize, w: usize) -> bool {
    w == ow && (oh * ow).is_multiple_of(LANES)
}

/// The largest number of f32 elements a slice can hold (`isize::MAX` bytes).
const MAX_FLOATS: usize = isize::MAX as usize / size_of::<f32>();

/// The compile-time checks of a convolution shape as the kernels see it: those of
/// [`crate::cnn::conv::check_shapes`] (`KK = CIN·K·K`, `OH = H−K+1`, `OW = W−K+1`), nothing empty, and
/// every size the kernels index with (an image of `x` and of `y`, the weights, the scratch)
/// at most [`MAX_FLOATS`]. Const evaluation rejects an overflowing product, so these sizes,
/// and every index below them, are computed at run time without overflow: the pointer
/// arithmetic of the kernels needs no further checks.
fn check_geometry<S: ConvShape>() {
    crate::cnn::conv::check_shapes::<S>();
    const {
        assert!(S::CIN > 0 && S::COUT > 0 && S::K > 0 && S::OH > 0 && S::OW > 0);
        assert!(
            S::CIN * S::H * S::W <= MAX_FLOATS
                && S::COUT * S::OH * S::OW <= MAX_FLOATS
                && S::COUT * S::CIN * S::K * S::K <= MAX_FLOATS
                && scratch_len_of::<S>() <= MAX_FLOATS
        );
    }
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
///
/// Either way the result holds exactly `images` strides, and each image is `COUT` rows of
/// `16·nv` floats.
///
/// # Panics
/// If `scratch` is too short.
fn wide_dy<'a, S: ConvShape>(dy: &'a [f32], scratch: &'a mut [f32]) -> (&'a [f32], usize) {
    let (cout, oh, ow, w) = (S::COUT, S::OH, S::OW, S::W);
    let dyi = cout * oh * ow;
    if dy_is_wide(oh, ow, w) {
        return (dy, dyi);
    }
    let n = dy.len() / dyi;
    let row = wide_vectors(oh, ow, w) * LANES;
    let len = wide_len(cout, oh, ow, w);
    let total = n.checked_mul(len).expect("wide_dy: scratch size overflows");
    let s = &mut aligned(scratch)[..total];
    for (img, dyimg) in s.chunks_exact_mut(len).zip(dy.chunks_exact(dyi)) {
        for (orow, dyo) in img.chunks_exact_mut(row).zip(dyimg.chunks_exact(oh * ow)) {
            orow.fill(0.0);
            for (i, r) in dyo.chunks_exact(ow).enumerate() {
                orow[i * w..i * w + ow].copy_from_slice(r);
            }
        }
    }
    (s, len)
}

// ------------------------------------------------------------------ the dispatchers

/// The convolution's forward pass, as [`conv_forward`]: Winograd's kernels, else the direct
/// kernels, else the reference path (see the [module docs](crate::kernels)). The one function
/// the network calls for it; `col` is the reference path's scratch ([`crate::cnn::conv::col_len_of`]).
#[inline(never)]
pub fn forward<T: Float, S: ConvShape>(
    p: &S::Params<T>,
    x: S::In<'_, T>,
    y: S::OutMut<'_, T>,
    col: &mut [T],
) {
    let y = y.data_mut();
    let done = cpu::isa().is_some_and(|isa| {
        (cpu::winograd() && try_winograd_forward::<T, S>(isa, p, x, (&mut *y).into()))
            || try_conv_forward::<T, S>(isa, p, x, (&mut *y).into())
    });
    if !done {
        conv_forward::<T, S>(p, x, y.into(), col);
    }
}

/// The input gradient, as [`conv_backward_input`] (`dx` overwritten), chosen as [`forward`]
/// is, except that a convolution with fewer than 16 output channels takes the reference path:
/// the direct kernel sums over the output channels in registers, and 8 (conv3) are too few to
/// pay for its scatter into `dx` (measured slower than GEMM). `scratch` needs the larger of
/// [`crate::cnn::conv::col_len_of`] and [`scratch_len_of`] floats.
#[inline(never)]
pub fn backward_input<T: Float, S: ConvShape>(
    p: &S::Params<T>,
    dy: S::Out<'_, T>,
    dx: S::InMut<'_, T>,
    scratch: &mut [T],
) {
    let dx = dx.data_mut();
    let done = S::COUT >= LANES
        && cpu::isa().is_some_and(|isa| {
            (cpu::winograd() && try_winograd_backward_input::<T, S>(isa, p, dy, (&mut *dx).into()))
                || try_conv_backward_input::<T, S>(isa, p, dy, (&mut *dx).into(), scratch)
        });
    if !done {
        conv_backward_input::<T, S>(p, dy, dx.into(), scratch);
    }
}

/// The weight gradient, as [`conv_backward_weight`] (**accumulates** into `dw.weight`), chosen
/// as [`forward`] is; `scratch` as [`backward_input`].
#[inline(never)]
pub fn backward_weight<T: Float, S: ConvShape>(
    dy: S::Out<'_, T>,
    x: S::In<'_, T>,
    dw: &mut S::Params<T>,
    scratch: &mut [T],
) {
    let done = cpu::isa().is_some_and(|isa| {
        (cpu::winograd() && try_winograd_backward_weight::<T, S>(isa, dy, x, dw))
            || try_conv_backward_weight::<T, S>(isa, dy, x, &mut *dw, scratch)
    });
    if !done {
        conv_backward_weight::<T, S>(dy, x, dw, scratch);
    }
}

/// [`backward_weight`] then [`backward_input`], as one pass over the images when Winograd's
/// kernels take both (they then transpose each image's `dY` once for the two): the same bits
/// as the two calls.
#[inline(never)]
pub fn backward<T: Float, S: ConvShape>(
    p: &S::Params<T>,
    dy: S::Out<'_, T>,
    x: S::In<'_, T>,
    dw: &mut S::Params<T>,
    dx: S::InMut<'_, T>,
    scratch: &mut [T],
) {
    let dx = dx.data_mut();
    let done = cpu::isa().is_some_and(|isa| {
        cpu::winograd() && try_winograd_backward::<T, S>(isa, p, dy, x, &mut *dw, (&mut *dx).into())
    });
    if !done {
        backward_weight::<T, S>(dy, x, dw, scratch);
        backward_input::<T, S>(p, dy, dx.into(), scratch);
    }
}

/// The bias gradient, as [`conv_backward_bias`] (accumulates into `db.bias`): the direct
/// kernel when the float type is f32 and an instruction set is chosen, else the reference.
#[inline(never)]
pub fn backward_bias<T: Float, S: ConvShape>(dy: S::Out<'_, T>, db: &mut S::Params<T>) {
    if !cpu::isa().is_some_and(|isa| try_conv_backward_bias::<T, S>(isa, dy, db)) {
        conv_backward_bias::<T, S>(dy, db);
    }
}

// ------------------------------------------------------------------ batch functions

/// Floats of one input image of `S`, `CIN·H·W`.
const fn in_len<S: ConvShape>() -> usize {
    S::CIN * S::H * S::W
}

/// Floats of one output image of `S`, `COUT·OH·OW`.
const fn out_len<S: ConvShape>() -> usize {
    S::COUT * S::OH * S::OW
}

/// The image pairs of `a` (`ai` floats each) and `b` (`bi` floats each) as f32 slices when
/// `T` is `f32`; `None` otherwise (f64 takes the reference path). The one per-image loop of
/// the batch functions.
///
/// # Panics
/// If `a` and `b` hold different numbers of images.
fn f32_images<'a, T: Float>(
    what: &str,
    a: &'a [T],
    ai: usize,
    b: &'a mut [T],
    bi: usize,
) -> Option<impl Iterator<Item = (&'a [f32], &'a mut [f32])>> {
    assert_eq!(a.len() / ai, b.len() / bi, "{what}: batch sizes differ");
    let (a, b) = (T::as_f32(a)?, T::as_f32_mut(b)?);
    Some(a.chunks_exact(ai).zip(b.chunks_exact_mut(bi)))
}

/// `scratch` as f32 when `T` is `f32`, once checked to hold `len` floats.
///
/// # Panics
/// If it is shorter.
fn f32_scratch<'a, T: Float>(
    what: &str,
    scratch: &'a mut [T],
    len: usize,
) -> Option<&'a mut [f32]> {
    assert!(
        scratch.len() >= len,
        "{what}: scratch shorter than scratch_len"
    );
    T::as_f32_mut(scratch)
}

/// `dy` and `x` of a weight gradient as f32 when `T` is `f32`.
///
/// # Panics
/// If they hold different numbers of images.
fn f32_dy_x<'a, T: Float, S: ConvShape>(
    what: &str,
    dy: &'a [T],
    x: &'a [T],
) -> Option<(&'a [f32], &'a [f32])> {
    let (dyi, xi) = (out_len::<S>(), in_len::<S>());
    assert_eq!(x.len() / xi, dy.len() / dyi, "{what}: batch sizes differ");
    Some((T::as_f32(dy)?, T::as_f32(x)?))
}

/// [`conv_forward`] over a batch, image by image with [`forward_image`], on `cpu` whatever
/// [`cpu::isa`] says, when `T` is `f32`; otherwise returns `false` having done nothing (the
/// dispatcher [`forward`] then takes the reference path). Needs no scratch.
#[inline(never)]
pub fn try_conv_forward<T: Float, S: ConvShape>(
    cpu: impl Into<Isa>,
    p: &S::Params<T>,
    x: S::In<'_, T>,
    y: S::OutMut<'_, T>,
) -> bool {
    check_geometry::<S>();
    let (xi, yi) = (in_len::<S>(), out_len::<S>());
    let images = f32_images("try_conv_forward", x.data(), xi, y.data_mut(), yi);
    let (Some(images), Some(w), Some(b)) = (images, T::as_f32(p.weight()), T::as_f32(p.bias()))
    else {
        return false;
    };
    let cpu = cpu.into();
    for (x, y) in images {
        forward::image::<S>(cpu, w, b, x, y);
    }
    true
}

/// [`conv_backward_input`] over a batch (`dx` overwritten), image by image with
/// [`backward_input_image`], as [`try_conv_forward`]. `scratch` needs [`scratch_len`] floats.
#[inline(never)]
pub fn try_conv_backward_input<T: Float, S: ConvShape>(
    cpu: impl Into<Isa>,
    p: &S::Params<T>,
    dy: S::Out<'_, T>,
    dx: S::InMut<'_, T>,
    scratch: &mut [T],
) -> bool {
    check_geometry::<S>();
    let (dyi, dxi) = (out_len::<S>(), in_len::<S>());
    let what = "try_conv_backward_input";
    let images = f32_images(what, dy.data(), dyi, dx.data_mut(), dxi);
    let s = f32_scratch(what, scratch, image_scratch_len_of::<S>());
    let (Some(images), Some(s), Some(w)) = (images, s, T::as_f32(p.weight())) else {
        return false;
    };
    let cpu = cpu.into();
    for (dy, dx) in images {
        backward_input::image::<S>(cpu, w, dy, dx, s);
    }
    true
}

/// [`conv_backward_weight`] over a batch (**accumulates** into `dw.weight`), as
/// [`try_conv_forward`]. Images are taken in order, in groups of [`weight_group_len`] whose
/// sums are formed in registers before being added into `dw` (so a batch passed in one call
/// is summed in a different, equally fixed, order from the same images passed one by one).
/// `scratch` needs [`scratch_len`] floats.
#[inline(never)]
pub fn try_conv_backward_weight<T: Float, S: ConvShape>(
    cpu: impl Into<Isa>,
    dy: S::Out<'_, T>,
    x: S::In<'_, T>,
    dw: &mut S::Params<T>,
    scratch: &mut [T],
) -> bool {
    check_geometry::<S>();
    let what = "try_conv_backward_weight";
    let data = f32_dy_x::<T, S>(what, dy.data(), x.data());
    let s = f32_scratch(what, scratch, scratch_len_of::<S>());
    let (Some((dys, xs)), Some(s), Some(dw)) = (data, s, T::as_f32_mut(dw.weight_mut())) else {
        return false;
    };
    let (dyi, xi) = (out_len::<S>(), in_len::<S>());
    let gl = weight_group_len(S::COUT, S::OH, S::OW, S::W);
    let cpu = cpu.into();
    for (dy, x) in dys.chunks(gl * dyi).zip(xs.chunks(gl * xi)) {
        backward_weight::group::<S>(cpu, dy, x, dw, s);
    }
    true
}

/// [`conv_backward_bias`] over a batch (accumulates into `db.bias`), with
/// [`backward_bias_image`], as [`try_conv_forward`].
#[inline(never)]
pub fn try_conv_backward_bias<T: Float, S: ConvShape>(
    cpu: impl Into<Isa>,
    dy: S::Out<'_, T>,
    db: &mut S::Params<T>,
) -> bool {
    let (Some(db), Some(dys)) = (T::as_f32_mut(db.bias_mut()), T::as_f32(dy.data())) else {
        return false;
    };
    let cpu = cpu.into();
    for dy in dys.chunks_exact(out_len::<S>()) {
        backward_weight::bias_image::<S>(cpu, dy, db);
    }
    true
}

// ------------------------------------------------------------------ Winograd batch functions

/// [`try_conv_forward`] by Winograd's `F(2×2, 3×3)` (one [`winograd_forward_image`] per image,
/// the kernels transformed once per call), when `T` is `f32` and `S` is a shape the Winograd
/// kernels take (3×3, 16 → 32 or 32 → 16 channels, an even output: conv2, conv5 and conv7);
/// otherwise returns `false` having done nothing. On each of the three, each pass measured
/// faster by Winograd than direct (criterion, `benches/conv_simd.rs`; figures in docs/performance.md).
#[inline(never)]
pub fn try_winograd_forward<T: Float, S: ConvShape>(
    cpu: impl Into<Isa>,
    p: &S::Params<T>,
    x: S::In<'_, T>,
    y: S::OutMut<'_, T>,
) -> bool {
    let Some(g) = winograd_geom_forward::<S>() else {
        return false;
    };
    let (xi, yi) = (in_len::<S>(), out_len::<S>());
    let images = f32_images("try_winograd_forward", x.data(), xi, y.data_mut(), yi);
    let (Some(images), Some(w), Some(b)) = (images, T::as_f32(p.weight()), T::as_f32(p.bias()))
    else {
        return false;
    };
    let cpu = cpu.into();
    let mut slot = std::mem::MaybeUninit::uninit();
    let work = winograd::Work::init(&mut slot, g);
    work.set_forward(&g, w);
    for (x, y) in images {
        winograd::image(cpu, &g, work, Some(b), x, y);
    }
    true
}

/// [`try_conv_backward_input`] by Winograd (`dY` zero-padded by 2, correlated with the flipped
/// kernel), as [`try_winograd_forward`]; needs no scratch.
#[inline(never)]
pub fn try_winograd_backward_input<T: Float, S: ConvShape>(
    cpu: impl Into<Isa>,
    p: &S::Params<T>,
    dy: S::Out<'_, T>,
    dx: S::InMut<'_, T>,
) -> bool {
    let Some(g) = winograd_geom_backward_input::<S>() else {
        return false;
    };
    let (dyi, dxi) = (out_len::<S>(), in_len::<S>());
    let what = "try_winograd_backward_input";
    let images = f32_images(what, dy.data(), dyi, dx.data_mut(), dxi);
    let (Some(images), Some(w)) = (images, T::as_f32(p.weight())) else {
        return false;
    };
    let cpu = cpu.into();
    let mut slot = std::mem::MaybeUninit::uninit();
    let work = winograd::Work::init(&mut slot, g);
    work.set_backward_input(&g, w);
    for (dy, dx) in images {
        winograd::image(cpu, &g, work, None, dy, dx);
    }
    true
}

/// [`try_conv_backward_weight`] by Winograd (**accumulates** into `dw.weight`): the sums of
/// all the images of the call are formed before `dw` is touched (see
/// [`winograd_backward_weight_images`]), as [`try_winograd_forward`]; needs no scratch.
#[inline(never)]
pub fn try_winograd_backward_weight<T: Float, S: ConvShape>(
    cpu: impl Into<Isa>,
    dy: S::Out<'_, T>,
    x: S::In<'_, T>,
    dw: &mut S::Params<T>,
) -> bool {
    let Some(g) = winograd_geom_backward_weight::<S>() else {
        return false;
    };
    let data = f32_dy_x::<T, S>("try_winograd_backward_weight", dy.data(), x.data());
    let (Some((dys, xs)), Some(dw)) = (data, T::as_f32_mut(dw.weight_mut())) else {
        return false;
    };
    let mut slot = std::mem::MaybeUninit::uninit();
    let work = winograd::Work::init(&mut slot, g);
    winograd::weight(cpu.into(), &g, work, dys, xs, dw);
    true
}

/// [`try_winograd_backward_weight`] (**accumulates** into `dw.weight`) and
/// [`try_winograd_backward_input`] (`dx` overwritten) in one pass over the images, which
/// transposes each image's `dY` once for both: the same bits as the two calls. Returns `false`,
/// having done nothing, when either would, or when the kernels' scratch cannot hold both
/// ([`WinogradPasses::backward`]).
#[inline(never)]
pub fn try_winograd_backward<T: Float, S: ConvShape>(
    cpu: impl Into<Isa>,
    p: &S::Params<T>,
    dy: S::Out<'_, T>,
    x: S::In<'_, T>,
    dw: &mut S::Params<T>,
    dx: S::InMut<'_, T>,
) -> bool {
    let Some((gw, gi)) = winograd_geoms_backward::<S>() else {
        return false;
    };
    let data = f32_dy_x::<T, S>("try_winograd_backward", dy.data(), x.data());
    let (Some((dys, xs)), Some(w), Some(dw), Some(dxs)) = (
        data,
        T::as_f32(p.weight()),
        T::as_f32_mut(dw.weight_mut()),
        T::as_f32_mut(dx.data_mut()),
    ) else {
        return false;
    };
    let mut slot = std::mem::MaybeUninit::uninit();
    let work = winograd::Work::init(&mut slot, gi);
    work.set_backward_input(&gi, w);
    winograd::backward(cpu.into(), &gw, work, dys, xs, dxs, dw);
    true
}

// ------------------------------------------------------------------ shared by the kernels

/// The geometry of one valid convolution as the kernels see it: `cout` output channels,
/// input planes `h×w`, output planes `oh×ow` (`= (h−K+1)×(w−K+1)`). The input channel
/// count and `K` come from the kernels' shape parameter.
pub(crate) struct Geom {
    cout: usize,
    h: usize,
    w: usize,
    oh: usize,
    ow: usize,
}

impl Geom {
    /// The geometry of the convolution `S`.
    fn of<S: ConvShape>() -> Self {
        Geom {
            cout: S::COUT,
            h: S::H,
            w: S::W,
            oh: S::OH,
            ow: S::OW,
        }
    }
    /// Wide positions, `(oh−1)·w + ow`.
    fn total(&self) -> usize {
        wide_positions(self.oh, self.ow, self.w)
    }
    /// Wide vectors, `⌈total/16⌉`.
    fn nv(&self) -> usize {
        wide_vectors(self.oh, self.ow, self.w)
    }
}

/// One vector of 16 wide positions starting at `16·v`: which lanes may be loaded
/// (`q < total`), which are real outputs (also `x < ow`), the dense NCHW index of the
/// first real one and how many there are.
#[derive(Clone, Copy)]
struct Slot {
    load: u16,
    valid: u16,
    dense: usize,
}

/// The [`Slot`] of wide vector `v`.
fn slot(g: &Geom, v: usize) -> Slot {
    let total = g.total();
    let (mut load, mut valid, mut dense) = (0u16, 0u16, None);
    let q0 = v * LANES;
    let (mut y, mut x) = (q0 / g.w, q0 % g.w);
    for i in 0..LANES.min(total.saturating_sub(q0)) {
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
    }
}

/// The lowest `n ≤ 16` lanes.
///
/// # Panics
/// If `n > 16` (a wider mask would enable lanes past the data it guards).
fn mask_low(n: u32) -> u16 {
    assert!(n <= LANES as u32, "mask_low: {n} lanes");
    ((1u32 << n) - 1) as u16
}
