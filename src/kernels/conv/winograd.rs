//! Winograd's minimal filtering `F(2×2, 3×3)` for the 3×3 convolutions of 16 → 32 channels
//! (conv2, conv5 and conv7): the forward pass, the input gradient as the correlation of `dY`,
//! zero-padded by 2, with the flipped kernel, and the weight gradient as the adjoint of the
//! forward pass. Each 2×2 block of outputs costs 16 multiplications per channel pair instead
//! of 36. It computes the sums of `spec/cnn.md` exactly in exact arithmetic and rounds them
//! differently from the direct kernels in f32; the network runs it by default
//! (`GRADSPEC_WINOGRAD=0` keeps the direct kernels, see [`crate::kernels::cpu::winograd`]).
//!
//! For one output tile `Y = Aᵀ [Σ_c (G g_c Gᵀ) ⊙ (Bᵀ d_c B)] A`, with `d_c` the 4×4 input patch
//! of channel `c`, `g_c` its 3×3 kernel and
//!
//! ```text
//!      [1  0 -1  0]        [1    0    0 ]        [1  1  1  0]
//! Bᵀ = [0  1  1  0]    G = [1/2  1/2  1/2]   Aᵀ = [0  1 -1 -1]
//!      [0 -1  1  0]        [1/2 -1/2  1/2]
//!      [0  1  0 -1]        [0    0    1 ]
//! ```
//!
//! Layout: the vectors run across *channels*. The input is transposed per image to
//! `[row][column][channel]` (16×16 shuffle blocks), so a pixel's 16 channels are one vector;
//! the transformed input `V` and the products `M` of one row of tiles are `[ξ][tile][channel]`
//! (`ξ = 4a + b`, the 16 positions of a transformed tile), and the 16 sums
//! `M[ξ][t][o] = Σ_c V[ξ][t][c]·U[ξ][c][o]` are register tiles of broadcast `V` times vectors
//! of `U`. The output tiles are transposed back to `[channel][row][column]`.
//!
//! The weight gradient, `dW[o][c] += Gᵀ dU G` with `dU[ξ][c][o] = Σ_images Σ_tiles
//! V[ξ][t][c]·M̄[ξ][t][o]` and `M̄ = A dY Aᵀ`: `dY` is transposed like the input, `M̄` of a row
//! of tiles is `[ξ][tile][channel]`, and `dU` (16·CI·CO floats) is accumulated in register
//! tiles of broadcast `V` times vectors of `M̄`, over every image of the call, before `dW` is
//! touched.
//!
//! Summation order: the transforms are fixed sequences of adds (below); each `M` element is one
//! FMA chain over the input channels in order, from 0; the bias is added last; each `dU`
//! element is one FMA chain over the images, tile rows and tiles in order, from 0. Tile sizes
//! differ between instruction sets, the order does not, so every instruction set gives the
//! same bits.
use super::LANES as L;
use crate::kernels::cpu::Isa;
use crate::kernels::simd::kernel_args;
use std::mem::MaybeUninit;

/// A correlation of `ci` channels of `hi × wi`, zero-padded by `p` on every side, with 3×3
/// kernels into `co` channels of `ho × wo`, `ho = hi + 2p − 2`, `wo = wi + 2p − 2`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct WGeom {
    ci: usize,
    co: usize,
    hi: usize,
    wi: usize,
    p: usize,
    ho: usize,
    wo: usize,
}

/// Largest buffers of [`Work`] (those of conv2's input gradient and forward; `xh` holds the
/// padded `dY` of conv2's input gradient and conv2's transposed input side by side, for
/// [`backward`]).
const XH_MAX: usize = 28 * 28 * 32 + 26 * 26 * 16;
const V_MAX: usize = 16 * 13 * 32;
const M_MAX: usize = 16 * 12 * 32;
const Y_MAX: usize = 2 * 32 * 32;
/// The transformed kernels, `16·ci·co` floats: exactly this for both channel pairs that
/// [`WGeom::takes`] allows, so it needs no check there (`set_kernels` and [`backward`] index
/// `u` and `du` as slices).
const U_MAX: usize = 16 * 16 * 32;

impl WGeom {
    /// The forward pass of a `cin → cout` convolution of `h × w` inputs.
    pub(super) const fn forward(cin: usize, cout: usize, h: usize, w: usize) -> Self {
        WGeom {
            ci: cin,
            co: cout,
            hi: h,
            wi: w,
            p: 0,
            ho: h - 2,
            wo: w - 2,
        }
    }

    /// The input gradient of a `cin → cout` convolution of `h × w` inputs: `dY` (`cout` channels
    /// of `(h−2) × (w−2)`) padded by 2 → `dX` (`cin` of `h × w`).
    pub(super) const fn backward_input(cin: usize, cout: usize, h: usize, w: usize) -> Self {
        WGeom {
            ci: cout,
            co: cin,
            hi: h - 2,
            wi: w - 2,
            p: 2,
            ho: h,
            wo: w,
        }
    }

    /// Rows of the padded input.
    const fn hp(&self) -> usize {
        self.hi + 2 * self.p
    }
    /// Columns of a row of the transposed input: the input's and `p` zeros on either side.
    const fn wpad(&self) -> usize {
        self.wi + 2 * self.p
    }
    /// Tiles per row of tiles.
    const fn tw(&self) -> usize {
        self.wo / 2
    }
    /// Positions of two output rows, rounded up to whole vectors.
    const fn two_rows(&self) -> usize {
        (2 * self.wo).next_multiple_of(L)
    }
    /// Whether `y` holds two output rows of every output channel. Never false where the other
    /// bounds of [`takes`](Self::takes) hold (`V_MAX` and `M_MAX` allow at most 13 tiles a row
    /// for 32 → 16 and 12 for 16 → 32, so 64 · 16 and 48 · 32 floats), but checked, because
    /// the kernels' stores into `y` rely on it (mutants-equivalent.md, E8).
    const fn y_fits(&self) -> bool {
        self.two_rows() * self.co <= Y_MAX
    }

    /// Whether these kernels take the geometry: 16 → 32 or 32 → 16 channels (the kernels are
    /// compiled for those), an even output, and buffers within [`Work`]'s.
    pub(super) const fn takes(&self) -> bool {
        ((self.ci == 16 && self.co == 32) || (self.ci == 32 && self.co == 16))
            && self.hp() >= 4
            && self.wpad() >= 4
            && self.ho.is_multiple_of(2)
            && self.wo.is_multiple_of(2)
            && self.hp() * self.wpad() * self.ci <= XH_MAX
            && 16 * self.tw() * self.ci <= V_MAX
            && 16 * self.tw() * self.co <= M_MAX
            && self.y_fits()
    }
}

impl WGeom {
    /// Whether the weight-gradient kernels take the geometry: a forward one (`p = 0`) that
    /// [`takes`](Self::takes), whose transposed input and `dY` fit in `xh` side by side.
    pub(super) const fn takes_weight(&self) -> bool {
        self.takes() && self.p == 0 && self.dy_at() + self.ho * self.wo * self.co <= XH_MAX
    }
    /// Whether [`backward`] takes the geometry: the weight-gradient kernels take this forward
    /// one, the input-gradient kernels take its [`WGeom::backward_input`], and `xh` holds that
    /// one's padded `dY` and the transposed input side by side.
    pub(super) const fn takes_backward(&self) -> bool {
        let gi = WGeom::backward_input(self.ci, self.co, self.hi, self.wi);
        self.takes_weight() && gi.takes() && gi.x_at() + self.ci * self.hi * self.wi <= XH_MAX
    }
    /// The length of the padded input in `xh`, which [`Work::init`] zeroes; so also where
    /// [`backward`] puts the transposed input: after this (input-gradient) geometry's padded
    /// `dY`.
    const fn x_at(&self) -> usize {
        self.hp() * self.wpad() * self.ci
    }
    /// Where the transposed `dY` starts in `xh` (the weight gradient): after the input.
    const fn dy_at(&self) -> usize {
        self.hp() * self.wpad() * self.ci
    }
}

/// Buffers of one call for one geometry: the transformed kernels and the per-image working
/// set (about 290 KB, on the caller's stack, made by [`Work::init`]; no allocation). Only what
/// is read before it is written starts as zeros: the transposed input, whose padding is never
/// written after (so a `Work` serves one geometry only), and the output rows, whose lanes past
/// `2·wo` are loaded and masked off. The rest is written before it is read, so it starts
/// uninitialised.
pub(super) struct Work {
    g: WGeom,
    u: [MaybeUninit<f32>; U_MAX],
    /// The weight gradient's sums `dU[ξ][c][o]`.
    du: [MaybeUninit<f32>; U_MAX],
    xh: [MaybeUninit<f32>; XH_MAX],
    v: [MaybeUninit<f32>; V_MAX],
    m: [MaybeUninit<f32>; M_MAX],
    y: [f32; Y_MAX],
}

impl Work {
    /// A `Work` for `g`, initialised in place in `slot` (the caller's stack: a `Work` is never
    /// moved, which would copy its 290 KB). Only `g`, the output rows and the transposed input
    /// are written; everything else is written before it is read. `g` must be a geometry that
    /// [`WGeom::takes`], as every one the dispatchers build is.
    pub(super) fn init(slot: &mut MaybeUninit<Work>, g: WGeom) -> &mut Work {
        let p = slot.as_mut_ptr();
        // SAFETY: `g` and `y` are written here; every other field is an array of
        // `MaybeUninit`, for which any contents are valid, so the whole `Work` is initialised.
        let w = unsafe {
            std::ptr::addr_of_mut!((*p).g).write(g);
            std::ptr::addr_of_mut!((*p).y)
                .cast::<f32>()
                .write_bytes(0, Y_MAX);
            slot.assume_init_mut()
        };
        // The transposed input's padding is never written after this, and `transpose_in`
        // writes its inside for every image, so zeroing the whole padded input once is
        // enough, and simpler than zeroing the border alone. It costs one image's stores per
        // call, a call being a chunk of images (an estimate; not timed on its own).
        w.xh[..g.x_at()].fill(MaybeUninit::new(0.0));
        w
    }

    /// Transforms the kernels: `U[ξ][i][o] = (G g Gᵀ)[ξ]` with `g[r][c] = kernel(i, o, r, c)`.
    fn set_kernels(&mut self, g: &WGeom, kernel: impl Fn(usize, usize, usize, usize) -> f32) {
        for i in 0..g.ci {
            for o in 0..g.co {
                let k: [[f32; 3]; 3] =
                    std::array::from_fn(|r| std::array::from_fn(|c| kernel(i, o, r, c)));
                let t = kernel_transform(k);
                for (xi, &v) in t.iter().enumerate() {
                    self.u[(xi * g.ci + i) * g.co + o] = MaybeUninit::new(v);
                }
            }
        }
    }

    /// The forward pass's kernels from PyTorch's `[cout, cin, 3, 3]` weights.
    pub(super) fn set_forward(&mut self, g: &WGeom, w: &[f32]) {
        let cin = g.ci;
        self.set_kernels(g, |i, o, r, c| w[((o * cin + i) * 3 + r) * 3 + c]);
    }

    /// The input gradient's kernels: input channel `o` (of `dY`), output channel `c` (of `dX`),
    /// the 3×3 kernel flipped.
    pub(super) fn set_backward_input(&mut self, g: &WGeom, w: &[f32]) {
        let cin = g.co;
        self.set_kernels(g, |o, c, r, s| w[((o * cin + c) * 3 + 2 - r) * 3 + 2 - s]);
    }
}

/// `G g Gᵀ` in a fixed order: `(g0 + g2 ± g1)/2` along the rows, then along the columns.
fn kernel_transform(g: [[f32; 3]; 3]) -> [f32; 16] {
    let half = |a: f32, b: f32, c: f32, plus: bool| {
        let s = a + c;
        (if plus { s + b } else { s - b }) * 0.5
    };
    let t: [[f32; 3]; 4] = [
        g[0],
        std::array::from_fn(|j| half(g[0][j], g[1][j], g[2][j], true)),
        std::array::from_fn(|j| half(g[0][j], g[1][j], g[2][j], false)),
        g[2],
    ];
    let mut u = [0.0; 16];
    for a in 0..4 {
        u[4 * a] = t[a][0];
        u[4 * a + 1] = half(t[a][0], t[a][1], t[a][2], true);
        u[4 * a + 2] = half(t[a][0], t[a][1], t[a][2], false);
        u[4 * a + 3] = t[a][2];
    }
    u
}

/// `Gᵀ X G` of the weight gradient in a fixed order, where `X[a][b] = σ_a σ_b·du[4a + b]`,
/// `σ = (1, 1, 1, −1)`: the kernels leave the sign of the last row and column of `A dY Aᵀ` to
/// this step (negation is exact). Along the rows, then along the columns: `r₀ = X₀ + (X₁ + X₂)/2`,
/// `r₁ = (X₁ − X₂)/2`, `r₂ = (X₁ + X₂)/2 − σ₃X₃`.
fn weight_transform(du: [f32; 16]) -> [f32; 9] {
    let three = |x0: f32, x1: f32, x2: f32, x3: f32| {
        let h = (x1 + x2) * 0.5;
        [x0 + h, (x1 - x2) * 0.5, h - x3]
    };
    let t: [[f32; 4]; 3] = {
        let mut t = [[0.0; 4]; 3];
        for b in 0..4 {
            let r = three(du[b], du[4 + b], du[8 + b], du[12 + b]);
            for (i, r) in r.into_iter().enumerate() {
                t[i][b] = r;
            }
        }
        t
    };
    let mut k = [0.0; 9];
    for (i, t) in t.iter().enumerate() {
        let r = three(t[0], t[1], t[2], t[3]);
        k[3 * i..3 * i + 3].copy_from_slice(&r);
    }
    k
}

/// The weight gradient of `n ≥ 1` images (`x`: `n × [ci, hi, wi]`, `dy`: `n × [co, ho, wo]`),
/// **added** into `dw` (`[co, ci, 3, 3]`): `dU[ξ][c][o] = Σ_images Σ_tiles V[ξ][t][c]·M̄[ξ][t][o]`
/// with `V = Bᵀ d B` and `M̄ = A dY Aᵀ` (the adjoint of `Aᵀ M A`), then `dw[o][c] += Gᵀ dU G`
/// (the adjoint of `G g Gᵀ`). Each `dU` element is one FMA chain over the images, tile rows
/// and tiles in order, from zero, so every instruction set gives the same bits.
///
/// # Panics
/// If the geometry is not one [`WGeom::takes_weight`], or a slice length does not match it.
pub(super) fn weight(cpu: Isa, g: &WGeom, work: &mut Work, dy: &[f32], x: &[f32], dw: &mut [f32]) {
    assert!(g.takes_weight(), "winograd: geometry {g:?} not taken");
    assert_eq!(work.g, *g, "winograd: a Work serves one geometry");
    let (xi, dyi) = (g.ci * g.hi * g.wi, g.co * g.ho * g.wo);
    let n = x.len() / xi;
    assert!(
        n >= 1 && x.len() == n * xi && dy.len() == n * dyi,
        "winograd: dy and x must hold the same number of whole images"
    );
    assert_eq!(dw.len(), g.co * g.ci * 9, "winograd: dw length");
    work.du[..16 * g.ci * g.co].fill(MaybeUninit::new(0.0));
    cpu.vectorize(WeightRun::new(g, work, dy, x));
    add_weight_gradient(g, work, dw);
}

/// `dw[o][c] += Gᵀ dU[·][c][o] G` ([`weight_transform`]) from the sums in `work.du`.
fn add_weight_gradient(g: &WGeom, work: &Work, dw: &mut [f32]) {
    for c in 0..g.ci {
        for o in 0..g.co {
            // SAFETY: `du[..16·ci·co]` was filled with zeros before the kernels added into it.
            let du = std::array::from_fn(|xi| unsafe {
                work.du[(xi * g.ci + c) * g.co + o].assume_init()
            });
            let k = weight_transform(du);
            for (d, k) in dw[(o * g.ci + c) * 9..][..9].iter_mut().zip(k) {
                *d += k;
            }
        }
    }
}

/// The input gradient and the weight gradient of `n ≥ 1` images in one pass over them, which
/// transposes each image's `dY` once for both: `dx` (`n × [ci, hi, wi]`) is overwritten as by
/// [`image`] with the geometry [`WGeom::backward_input`] of `gw`, whose kernels `work` holds
/// ([`Work::set_backward_input`]), and `dw` gets what [`weight`] would add. The same
/// operations in the same order as those two, so the same bits.
///
/// # Panics
/// If `gw` is not a geometry [`WGeom::takes_backward`], `work` is not for its input gradient,
/// or a length does not match.
#[allow(clippy::too_many_arguments)]
pub(super) fn backward(
    cpu: Isa,
    gw: &WGeom,
    work: &mut Work,
    dy: &[f32],
    x: &[f32],
    dx: &mut [f32],
    dw: &mut [f32],
) {
    let gi = WGeom::backward_input(gw.ci, gw.co, gw.hi, gw.wi);
    assert!(gw.takes_backward(), "winograd: geometry {gw:?} not taken");
    assert_eq!(work.g, gi, "winograd: a Work serves one geometry");
    let (xi, dyi) = (gw.ci * gw.hi * gw.wi, gw.co * gw.ho * gw.wo);
    let n = x.len() / xi;
    assert!(
        n >= 1 && x.len() == n * xi && dy.len() == n * dyi && dx.len() == n * xi,
        "winograd: dy, x and dx must hold the same number of whole images"
    );
    assert_eq!(dw.len(), gw.co * gw.ci * 9, "winograd: dw length");
    work.du[..16 * gw.ci * gw.co].fill(MaybeUninit::new(0.0));
    cpu.vectorize(BackwardRun::new(gw, &gi, work, dy, x, dx));
    add_weight_gradient(gw, work, dw);
}

kernel_args! {
    /// The arguments of [`kernel::backward_image`] over the images, run by [`Isa::vectorize`].
    struct BackwardRun<'a> {
        gw: &'a WGeom,
        gi: &'a WGeom,
        work: &'a mut Work,
        dy: &'a [f32],
        x: &'a [f32],
        dx: &'a mut [f32],
    }
    fn run(s) {
        let (xi, dyi) = (gw.ci * gw.hi * gw.wi, gw.co * gw.ho * gw.wo);
        let images = x.chunks_exact(xi).zip(dy.chunks_exact(dyi));
        for ((x, dy), dx) in images.zip(dx.chunks_exact_mut(xi)) {
            // SAFETY: `backward` checked both geometries, the room in `xh` and the lengths.
            unsafe {
                if gw.ci == 16 {
                    kernel::backward_image::<V, 16, 32>(s, gw, gi, work, x, dy, dx)
                } else {
                    kernel::backward_image::<V, 32, 16>(s, gw, gi, work, x, dy, dx)
                }
            }
        }
    }
}

kernel_args! {
    /// The arguments of [`kernel::weight_image`] over the images, run by [`Isa::vectorize`].
    struct WeightRun<'a> {
        g: &'a WGeom,
        work: &'a mut Work,
        dy: &'a [f32],
        x: &'a [f32],
    }
    fn run(s) {
        let (xi, dyi) = (g.ci * g.hi * g.wi, g.co * g.ho * g.wo);
        for (x, dy) in x.chunks_exact(xi).zip(dy.chunks_exact(dyi)) {
            // SAFETY: `weight` checked the geometry (`takes_weight`) and the lengths.
            unsafe {
                if g.ci == 16 {
                    kernel::weight_image::<V, 16, 32>(s, g, work, x, dy)
                } else {
                    kernel::weight_image::<V, 32, 16>(s, g, work, x, dy)
                }
            }
        }
    }
}

/// Runs one image: `x` is `[ci, hi, wi]`, `y` is `[co, ho, wo]` (overwritten), the kernels are
/// those last set in `work`, `bias` (`co` floats) is added when given.
///
/// # Panics
/// If the geometry is not one [`WGeom::takes`], or a slice length does not match it.
pub(super) fn image(
    cpu: Isa,
    g: &WGeom,
    work: &mut Work,
    bias: Option<&[f32]>,
    x: &[f32],
    y: &mut [f32],
) {
    assert!(g.takes(), "winograd: geometry {g:?} not taken");
    assert_eq!(work.g, *g, "winograd: a Work serves one geometry");
    assert_eq!(x.len(), g.ci * g.hi * g.wi, "winograd: input length");
    assert_eq!(y.len(), g.co * g.ho * g.wo, "winograd: output length");
    if let Some(b) = bias {
        assert_eq!(b.len(), g.co, "winograd: bias length");
    }
    cpu.vectorize(Run::new(g, work, bias, x, y));
}

kernel_args! {
    /// The arguments of [`kernel::image`], run by [`Isa::vectorize`].
    struct Run<'a> {
        g: &'a WGeom,
        work: &'a mut Work,
        bias: Option<&'a [f32]>,
        x: &'a [f32],
        y: &'a mut [f32],
    }
    fn run(s) {
        // SAFETY: `image` checked the geometry against the buffers of `Work` (`takes`) and the
        // lengths of `x`, `y` and `bias`.
        unsafe {
            if g.ci == 16 {
                kernel::image::<V, 16, 32>(s, g, work, bias, x, y)
            } else {
                kernel::image::<V, 32, 16>(s, g, work, bias, x, y)
            }
        }
    }
}

mod kernel {
    use super::super::mask_low;
    use super::{L, WGeom, Work};
    use crate::kernels::simd::Simd;

    /// `a − b`, exactly rounded (one FMA: `b·(−1) + a`).
    #[inline(always)]
    fn sub<V: Simd>(s: V, a: V::V, b: V::V) -> V::V {
        s.fma(b, s.splat(-1.0), a)
    }

    /// # Safety
    /// `g.takes()`, `g.ci = CI`, `g.co = CO`, `x.len() = CI·hi·wi`, `y.len() = CO·ho·wo`,
    /// `bias` is `CO` floats.
    #[inline(always)]
    pub(super) unsafe fn image<V: Simd, const CI: usize, const CO: usize>(
        s: V,
        g: &WGeom,
        w: &mut Work,
        bias: Option<&[f32]>,
        x: &[f32],
        y: &mut [f32],
    ) {
        // SAFETY: as this function.
        unsafe {
            transpose_in::<V, CI>(s, g, w, x);
            for ty in 0..g.ho / 2 {
                input_transform::<V, CI>(s, g, w, ty);
                products::<V, CI, CO>(s, g, w);
                output_transform::<V, CO>(s, g, w, bias);
                transpose_out::<V, CO>(s, g, w, y, ty);
            }
        }
    }

    /// `xh[r][col][c]` = the input at channel `c`, row `r − p`, column `col − p`; the
    /// padding is never written, so it keeps the zeros [`Work::new`] gave it.
    #[inline(always)]
    unsafe fn transpose_in<V: Simd, const CI: usize>(s: V, g: &WGeom, w: &mut Work, x: &[f32]) {
        let xh = w.xh.as_mut_ptr().cast::<f32>();
        // SAFETY: `x` is `CI·hi·wi` floats, `xh` holds `hp·wpad·CI` (`takes`).
        unsafe { transpose::<V, CI>(s, x.as_ptr(), (g.hi, g.wi, g.p, g.wpad()), xh) }
    }

    /// `dst[r + p][col + p][c]` (rows of `wp` positions) = `src[c][r][col]` for the `C`
    /// channels of `h × w`: the plane is transposed as one run of `h·w` positions (16 at a
    /// time, the last run masked), each position stored where it lies in the padded rows.
    ///
    /// # Safety
    /// `src` holds `C·h·w` floats, `dst` `(h + 2p)·wp·C`, `w + 2p ≤ wp`, `C` a multiple of 16.
    #[inline(always)]
    unsafe fn transpose<V: Simd, const C: usize>(
        s: V,
        src: *const f32,
        (h, w, p, wp): (usize, usize, usize, usize),
        dst: *mut f32,
    ) {
        let plane = h * w;
        for pb in 0..plane.div_ceil(L) {
            let lanes = (plane - pb * L).min(L);
            let mask = mask_low(lanes as u32);
            // Where position `pb·16 + j` lies in the padded rows.
            let mut at = [0; L];
            let (mut r, mut col) = ((pb * L) / w, (pb * L) % w);
            for at in &mut at[..lanes] {
                *at = ((r + p) * wp + col + p) * C;
                col += 1;
                if col == w {
                    (r, col) = (r + 1, 0);
                }
            }
            if (pb + 4) * L < plane {
                for k in 0..C {
                    // Four runs ahead: one stream per channel is more than the hardware
                    // prefetchers follow.
                    s.prefetch(src.wrapping_add(k * plane + (pb + 4) * L));
                }
            }
            for cb in 0..C / L {
                // SAFETY: the lanes of `mask` are positions `< h·w` of the planes of channels
                // `cb·16 + k < C`; position `j < lanes` lies at `r < h`, `col < w`, inside the
                // padded rows, channels `cb·16 + 16 ≤ C`.
                unsafe {
                    s.transpose16_mem(
                        |k| src.add((cb * L + k) * plane + pb * L),
                        mask,
                        |j| dst.add(at[j] + cb * L),
                        u16::MAX,
                        lanes,
                    )
                };
            }
        }
    }

    /// `V[ξ][t][c] = (Bᵀ d B)[ξ]` for the tiles `t` of tile row `ty`.
    #[inline(always)]
    unsafe fn input_transform<V: Simd, const CI: usize>(s: V, g: &WGeom, w: &mut Work, ty: usize) {
        let (xh, v) = (w.xh.as_ptr().cast::<f32>(), w.v.as_mut_ptr().cast::<f32>());
        // SAFETY: `xh` holds the padded rows of `g`, `V` its `16·tw·CI` floats (`takes`).
        unsafe { input_transform_at::<V, CI>(s, xh, g.wpad(), g.tw(), ty, v) }
    }

    /// [`input_transform`] from the transposed rows at `xh` (`wp` positions of `CI` floats a
    /// row) into `v` (`[16][tw][CI]`).
    ///
    /// # Safety
    /// `xh` holds rows `2ty .. 2ty + 4` of `wp ≥ 2tw + 2` positions, `v` `16·tw·CI` floats.
    #[inline(always)]
    unsafe fn input_transform_at<V: Simd, const CI: usize>(
        s: V,
        xh: *const f32,
        wp: usize,
        tw: usize,
        ty: usize,
        v: *mut f32,
    ) {
        for t in 0..tw {
            for cb in 0..CI / L {
                // SAFETY: rows `2ty .. 2ty+4`, columns `2t .. 2t+4 ≤ wp`.
                let d = unsafe { xh.add(((2 * ty) * wp + 2 * t) * CI + cb * L) };
                // One row `a` of `Bᵀ d` at a time (each from two rows of `d`, loaded again
                // from L1 rather than all 16 held: AVX2's 16 registers hold 8 vectors), then
                // along it. (Holding all 16 made no measurable difference to AVX-512.)
                for a in 0..4 {
                    let mut e = [s.zero(); 4];
                    for (j, e) in e.iter_mut().enumerate() {
                        // SAFETY: as above.
                        *e = unsafe { bt_row(s, a, d.add(j * CI), wp * CI) };
                    }
                    for (b, &val) in bt(s, e).iter().enumerate() {
                        // SAFETY: `(ξ·tw + t)·CI + cb·16 + 16 ≤ 16·tw·CI`.
                        unsafe { s.store(v.add(((4 * a + b) * tw + t) * CI + cb * L), val) };
                    }
                }
            }
        }
    }

    /// `Bᵀ d` for one column `d` of four, `Bᵀ = [1 0 −1 0; 0 1 1 0; 0 −1 1 0; 0 1 0 −1]`.
    #[inline(always)]
    fn bt<V: Simd>(s: V, d: [V::V; 4]) -> [V::V; 4] {
        [
            sub(s, d[0], d[2]),
            s.add(d[1], d[2]),
            sub(s, d[2], d[1]),
            sub(s, d[1], d[3]),
        ]
    }

    /// Row `a` of [`bt`] for the column of four vectors at `d`, `d + stride`, …, loading only
    /// the two it needs. (No closure computes a vector here: a closure is compiled without the
    /// instruction set's features, and a first version that built the rows in closures had its
    /// intrinsics left as calls and ran 3–5× slower. The closure below only adds to a pointer.)
    ///
    /// # Safety
    /// The vectors at `d + i·stride` it reads are readable.
    #[inline(always)]
    unsafe fn bt_row<V: Simd>(s: V, a: usize, d: *const f32, stride: usize) -> V::V {
        // SAFETY: as this function.
        unsafe {
            let at = |i: usize| d.add(i * stride);
            match a {
                0 => sub(s, s.load(at(0)), s.load(at(2))),
                1 => s.add(s.load(at(1)), s.load(at(2))),
                2 => sub(s, s.load(at(2)), s.load(at(1))),
                _ => sub(s, s.load(at(1)), s.load(at(3))),
            }
        }
    }

    /// `M[ξ][t][o] = Σ_c V[ξ][t][c]·U[ξ][c][o]` for the tiles of the row.
    #[inline(always)]
    unsafe fn products<V: Simd, const CI: usize, const CO: usize>(s: V, g: &WGeom, w: &mut Work) {
        let tw = g.tw();
        for xi in 0..16 {
            // SAFETY: the blocks of `ξ` inside `U`, `V`, `M` (`takes`).
            let (u, v, m) = unsafe {
                (
                    w.u.as_ptr().cast::<f32>().add(xi * CI * CO),
                    w.v.as_ptr().cast::<f32>().add(xi * tw * CI),
                    w.m.as_mut_ptr().cast::<f32>().add(xi * tw * CO),
                )
            };
            let mut o0 = 0;
            while o0 < CO {
                let two = V::WIDE && CO - o0 >= 2 * L;
                let mut t0 = 0;
                while t0 < tw {
                    let r = tw - t0;
                    // SAFETY: `t0 + NT ≤ tw`, `o0 + 16·NO ≤ CO`.
                    unsafe {
                        t0 += match (V::WIDE, two) {
                            (true, true) if r >= 12 => tile::<V, 12, 2, CI, CO>(s, u, v, m, t0, o0),
                            (true, true) if r >= 6 => tile::<V, 6, 2, CI, CO>(s, u, v, m, t0, o0),
                            (true, true) if r >= 3 => tile::<V, 3, 2, CI, CO>(s, u, v, m, t0, o0),
                            (true, true) => tile::<V, 1, 2, CI, CO>(s, u, v, m, t0, o0),
                            (true, false) if r >= 13 => {
                                tile::<V, 13, 1, CI, CO>(s, u, v, m, t0, o0)
                            }
                            (true, false) if r >= 8 => tile::<V, 8, 1, CI, CO>(s, u, v, m, t0, o0),
                            _ if r >= 4 => tile::<V, 4, 1, CI, CO>(s, u, v, m, t0, o0),
                            _ if r >= 2 => tile::<V, 2, 1, CI, CO>(s, u, v, m, t0, o0),
                            _ => tile::<V, 1, 1, CI, CO>(s, u, v, m, t0, o0),
                        };
                    }
                }
                o0 += if two { 2 * L } else { L };
            }
        }
    }

    /// The `NT × NO` register tile of [`products`] at tile `t0`, output channel `o0`;
    /// returns `NT`.
    ///
    /// # Safety
    /// `u` is `[CI][CO]`, `v` holds tiles `t0 .. t0+NT` of `CI` floats, `m` tiles of `CO`,
    /// `o0 + 16·NO ≤ CO`.
    #[inline(always)]
    unsafe fn tile<V: Simd, const NT: usize, const NO: usize, const CI: usize, const CO: usize>(
        s: V,
        u: *const f32,
        v: *const f32,
        m: *mut f32,
        t0: usize,
        o0: usize,
    ) -> usize {
        let mut acc = [[s.zero(); NO]; NT];
        for c in 0..CI {
            let mut uv = [s.zero(); NO];
            for (k, uv) in uv.iter_mut().enumerate() {
                // SAFETY: as this function.
                *uv = unsafe { s.load(u.add(c * CO + o0 + k * L)) };
            }
            for (t, acc) in acc.iter_mut().enumerate() {
                // SAFETY: as this function.
                let b = s.splat(unsafe { *v.add((t0 + t) * CI + c) });
                for k in 0..NO {
                    acc[k] = s.fma(b, uv[k], acc[k]);
                }
            }
        }
        for (t, acc) in acc.iter().enumerate() {
            for (k, &a) in acc.iter().enumerate() {
                // SAFETY: as this function.
                unsafe { s.store(m.add((t0 + t) * CO + o0 + k * L), a) };
            }
        }
        NT
    }

    /// `Aᵀ M A` (+ bias) of every tile of the row into `y[i][2t + j][o]`.
    #[inline(always)]
    unsafe fn output_transform<V: Simd, const CO: usize>(
        s: V,
        g: &WGeom,
        w: &mut Work,
        bias: Option<&[f32]>,
    ) {
        let (tw, wo) = (g.tw(), g.wo);
        let m = w.m.as_ptr().cast::<f32>();
        let y = w.y.as_mut_ptr();
        for t in 0..tw {
            for ob in 0..CO / L {
                // One output row `i` at a time (as in `input_transform_at`): along the rows,
                // f[b] = (Aᵀ M)[i][b], then along f.
                for i in 0..2 {
                    let mut f = [s.zero(); 4];
                    for (b, f) in f.iter_mut().enumerate() {
                        // SAFETY: inside `M` (`takes`).
                        *f = unsafe {
                            let p = m.add((b * tw + t) * CO + ob * L);
                            let mm = |a: usize| p.add(a * 4 * tw * CO);
                            if i == 0 {
                                s.add(s.add(s.load(mm(0)), s.load(mm(1))), s.load(mm(2)))
                            } else {
                                sub(s, sub(s, s.load(mm(1)), s.load(mm(2))), s.load(mm(3)))
                            }
                        };
                    }
                    let mut out = [
                        s.add(s.add(f[0], f[1]), f[2]),
                        sub(s, sub(s, f[1], f[2]), f[3]),
                    ];
                    if let Some(b) = bias {
                        // SAFETY: `bias` holds `CO` floats.
                        let bv = unsafe { s.load(b.as_ptr().add(ob * L)) };
                        for o in out.iter_mut() {
                            *o = s.add(*o, bv);
                        }
                    }
                    for (j, &o) in out.iter().enumerate() {
                        // SAFETY: column `2t + j < wo`, inside `Y_MAX` (`takes`).
                        unsafe { s.store(y.add((i * wo + 2 * t + j) * CO + ob * L), o) };
                    }
                }
            }
        }
    }

    /// The two output rows of tile row `ty` from `y[i·wo + col][o]` to `out[o][2ty + i][col]`:
    /// the two rows are one run of `2·wo` floats in `out`, transposed 16 positions at a time
    /// (the last run masked).
    #[inline(always)]
    unsafe fn transpose_out<V: Simd, const CO: usize>(
        s: V,
        g: &WGeom,
        w: &Work,
        out: &mut [f32],
        ty: usize,
    ) {
        let (wo, n) = (g.wo, 2 * g.wo);
        let y = w.y.as_ptr();
        let o = out.as_mut_ptr();
        for pb in 0..n.div_ceil(L) {
            let lanes = (n - pb * L).min(L);
            let mask = mask_low(lanes as u32);
            for ob in 0..CO / L {
                // SAFETY: position `pb·16 + q < ⌈2·wo/16⌉·16` is inside `Y_MAX` (`takes`); the
                // lanes of `mask` are positions `< 2·wo` of the two rows of channel
                // `ob·16 + k` of `out`.
                unsafe {
                    s.transpose16_mem(
                        |q| y.add((pb * L + q) * CO + ob * L),
                        u16::MAX,
                        |k| o.add((ob * L + k) * g.ho * wo + 2 * ty * wo + pb * L),
                        mask,
                        L,
                    )
                };
            }
        }
    }

    /// # Safety
    /// `g.takes_weight()`, `g.ci = CI`, `g.co = CO`, `x.len() = CI·hi·wi`,
    /// `dy.len() = CO·ho·wo`, `dU[..16·CI·CO]` initialised.
    #[inline(always)]
    pub(super) unsafe fn weight_image<V: Simd, const CI: usize, const CO: usize>(
        s: V,
        g: &WGeom,
        w: &mut Work,
        x: &[f32],
        dy: &[f32],
    ) {
        // SAFETY: as this function; `dY` lies after the input in `xh` (`takes_weight`).
        unsafe {
            transpose_in::<V, CI>(s, g, w, x);
            let dyh = w.xh.as_mut_ptr().cast::<f32>().add(g.dy_at());
            transpose::<V, CO>(s, dy.as_ptr(), (g.ho, g.wo, 0, g.wo), dyh);
            weight_rows::<V, CI, CO>(s, g, w, (0, g.wi), (g.dy_at(), g.wo));
        }
    }

    /// One image of [`super::backward`]: its input gradient by [`image`] (geometry `gi`, which
    /// leaves `dY` transposed and padded by 2 at the start of `xh`), then its weight gradient
    /// (geometry `gw`) from that same `dY` and the input transposed after it.
    ///
    /// # Safety
    /// `gw.takes_weight()`, `gi = WGeom::backward_input(gw…)`, `gi.takes()`, `gw.ci = CI`,
    /// `gw.co = CO`, `gi.x_at() + CI·hi·wi ≤ XH_MAX`, `x` and `dx` hold `CI·hi·wi` floats, `dy`
    /// `CO·ho·wo`, the kernels of `gi` set in `w`, `dU[..16·CI·CO]` initialised.
    #[inline(always)]
    pub(super) unsafe fn backward_image<V: Simd, const CI: usize, const CO: usize>(
        s: V,
        gw: &WGeom,
        gi: &WGeom,
        w: &mut Work,
        x: &[f32],
        dy: &[f32],
        dx: &mut [f32],
    ) {
        // SAFETY: as this function.
        unsafe {
            image::<V, CO, CI>(s, gi, w, None, dy, dx);
            let xh = w.xh.as_mut_ptr().cast::<f32>().add(gi.x_at());
            transpose::<V, CI>(s, x.as_ptr(), (gw.hi, gw.wi, 0, gw.wi), xh);
            let dy_at = (gi.p * gi.wpad() + gi.p) * CO;
            weight_rows::<V, CI, CO>(s, gw, w, (gi.x_at(), gw.wi), (dy_at, gi.wpad()));
        }
    }

    /// The weight gradient's tile rows of one image: `dU += Σ_tiles V ⊙ M̄` with the input
    /// transposed at `xh[x.0]` (rows of `x.1` positions) and `dY` at `xh[dy.0]` (rows of
    /// `dy.1`).
    ///
    /// # Safety
    /// Both lie inside `xh` with `g`'s rows, `dU[..16·CI·CO]` initialised.
    #[inline(always)]
    unsafe fn weight_rows<V: Simd, const CI: usize, const CO: usize>(
        s: V,
        g: &WGeom,
        w: &mut Work,
        x: (usize, usize),
        dy: (usize, usize),
    ) {
        let tw = g.tw();
        for ty in 0..g.ho / 2 {
            // SAFETY: as this function; `V` and `M` hold a row of tiles (`takes`).
            unsafe {
                let xh = w.xh.as_ptr().cast::<f32>();
                input_transform_at::<V, CI>(s, xh.add(x.0), x.1, tw, ty, w.v.as_mut_ptr().cast());
                dy_transform::<V, CO>(s, xh.add(dy.0), dy.1, tw, ty, w.m.as_mut_ptr().cast());
                weight_products::<V, CI, CO>(s, g, w);
            }
        }
    }

    /// `M̄[ξ][t][o] = (A dY Aᵀ)[ξ]` for the tiles `t` of tile row `ty` from the transposed
    /// `dY` at `dyh` (rows of `wp` positions of `CO` floats), into `m` (`[16][tw][CO]`), but
    /// for the sign of row and column 3 (`A = [1 0; 1 1; 1 −1; 0 −1]`; the last row is stored
    /// as `+dY₁`, [`super::weight_transform`] applies the sign).
    ///
    /// # Safety
    /// `dyh` holds rows `2ty, 2ty + 1` of `wp ≥ 2tw` positions, `m` `16·tw·CO` floats.
    #[inline(always)]
    unsafe fn dy_transform<V: Simd, const CO: usize>(
        s: V,
        dyh: *const f32,
        wp: usize,
        tw: usize,
        ty: usize,
        m: *mut f32,
    ) {
        for t in 0..tw {
            for ob in 0..CO / L {
                // SAFETY: row `2ty`, column `2t`, channels `ob·16 + 16 ≤ CO`.
                let d = unsafe { dyh.add(((2 * ty) * wp + 2 * t) * CO + ob * L) };
                // One row `ra` of `A d` at a time (as in `input_transform_at`), then along it.
                for ra in 0..4 {
                    // SAFETY: rows `2ty, 2ty + 1`, columns `2t, 2t + 1 < wp`.
                    let r = unsafe {
                        a_col(
                            s,
                            a_row(s, ra, d, wp * CO),
                            a_row(s, ra, d.add(CO), wp * CO),
                        )
                    };
                    for (b, &val) in r.iter().enumerate() {
                        // SAFETY: `(ξ·tw + t)·CO + ob·16 + 16 ≤ 16·tw·CO`.
                        unsafe { s.store(m.add(((4 * ra + b) * tw + t) * CO + ob * L), val) };
                    }
                }
            }
        }
    }

    /// `A d` for one column `d` of two, the last row's sign left out: `(d₀, d₀ + d₁, d₀ − d₁, d₁)`.
    #[inline(always)]
    fn a_col<V: Simd>(s: V, d0: V::V, d1: V::V) -> [V::V; 4] {
        [d0, s.add(d0, d1), sub(s, d0, d1), d1]
    }

    /// Row `r` of [`a_col`] for the column of two vectors at `d` and `d + stride`, loading
    /// only what it needs (no closures: see [`bt_row`]).
    ///
    /// # Safety
    /// Both vectors are readable.
    #[inline(always)]
    unsafe fn a_row<V: Simd>(s: V, r: usize, d: *const f32, stride: usize) -> V::V {
        // SAFETY: as this function.
        unsafe {
            match r {
                0 => s.load(d),
                1 => s.add(s.load(d), s.load(d.add(stride))),
                2 => sub(s, s.load(d), s.load(d.add(stride))),
                _ => s.load(d.add(stride)),
            }
        }
    }

    /// `dU[ξ][c][o] += Σ_t V[ξ][t][c]·M̄[ξ][t][o]` over the tiles of the row, in register
    /// tiles of `NC` input channels × `NO` vectors of output channels.
    #[inline(always)]
    unsafe fn weight_products<V: Simd, const CI: usize, const CO: usize>(
        s: V,
        g: &WGeom,
        w: &mut Work,
    ) {
        let tw = g.tw();
        for xi in 0..16 {
            // SAFETY: the blocks of `ξ` inside `U`, `V`, `M` (`takes`).
            let (u, v, m) = unsafe {
                (
                    w.du.as_mut_ptr().cast::<f32>().add(xi * CI * CO),
                    w.v.as_ptr().cast::<f32>().add(xi * tw * CI),
                    w.m.as_ptr().cast::<f32>().add(xi * tw * CO),
                )
            };
            let mut c0 = 0;
            while c0 < CI {
                let mut o0 = 0;
                while o0 < CO {
                    // SAFETY: `c0 + NC ≤ CI`, `o0 + 16·NO ≤ CO` (`CI` is 16 or 32).
                    unsafe {
                        o0 += match (V::WIDE, CO - o0 >= 2 * L) {
                            (true, true) => wtile::<V, 8, 2, CI, CO>(s, u, v, m, tw, c0, o0),
                            (true, false) => wtile::<V, 8, 1, CI, CO>(s, u, v, m, tw, c0, o0),
                            _ => wtile::<V, 4, 1, CI, CO>(s, u, v, m, tw, c0, o0),
                        };
                    }
                }
                c0 += if V::WIDE { 8 } else { 4 };
            }
        }
    }

    /// The `NC × NO` register tile of [`weight_products`] at input channel `c0`, output
    /// channel `o0`; returns `16·NO`.
    ///
    /// # Safety
    /// `u` is `[CI][CO]`, `v` holds `tw` tiles of `CI` floats, `m` `tw` tiles of `CO`,
    /// `c0 + NC ≤ CI`, `o0 + 16·NO ≤ CO`.
    #[inline(always)]
    unsafe fn wtile<V: Simd, const NC: usize, const NO: usize, const CI: usize, const CO: usize>(
        s: V,
        u: *mut f32,
        v: *const f32,
        m: *const f32,
        tw: usize,
        c0: usize,
        o0: usize,
    ) -> usize {
        let mut acc = [[s.zero(); NO]; NC];
        for (c, acc) in acc.iter_mut().enumerate() {
            for (k, acc) in acc.iter_mut().enumerate() {
                // SAFETY: as this function.
                *acc = unsafe { s.load(u.add((c0 + c) * CO + o0 + k * L)) };
            }
        }
        for t in 0..tw {
            let mut mv = [s.zero(); NO];
            for (k, mv) in mv.iter_mut().enumerate() {
                // SAFETY: as this function.
                *mv = unsafe { s.load(m.add(t * CO + o0 + k * L)) };
            }
            for (c, acc) in acc.iter_mut().enumerate() {
                // SAFETY: as this function.
                let b = s.splat(unsafe { *v.add(t * CI + c0 + c) });
                for k in 0..NO {
                    acc[k] = s.fma(b, mv[k], acc[k]);
                }
            }
        }
        for (c, acc) in acc.iter().enumerate() {
            for (k, &a) in acc.iter().enumerate() {
                // SAFETY: as this function.
                unsafe { s.store(u.add((c0 + c) * CO + o0 + k * L), a) };
            }
        }
        16 * NO
    }
}
