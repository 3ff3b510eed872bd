//! Fused passes: each does in one sweep over memory what a sequence of the per-operation
//! functions does in several, and gives **bit-identical** results to that sequence
//! (`tests/cnn_fused.rs` checks equality, not closeness). The trainer uses these; the
//! per-operation functions stay the reference that the spec labels cite and the gradient
//! checks verify.
//!
//! Why fuse: after the convolutions, ReLU, BatchNorm and dropout are memory-bound — each
//! separate pass reads and writes a whole activation for a few flops. The four BatchNorm blocks
//! of the network (`conv → ReLU → BN → dropout`) are served by four passes, two forward and two
//! backward, instead of nine, and the normalised input x̂ is recomputed from the ReLU output
//! instead of being stored.
//!
//! | pass | replaces |
//! |---|---|
//! | [`relu_sums`] | `relu_forward`; `bn_partial_sums` |
//! | [`bn_dropout_forward`] | `bn_forward_train`; `dropout_forward` |
//! | [`dropout_bn_params_backward`] | `dropout_backward`; `bn_backward_params` |
//! | [`bn_relu_backward`] | `bn_backward_input`; `relu_backward`; `conv_backward_bias` |
//! | [`relu_bn_eval`] | `relu_forward`; `bn_forward_eval` |
//!
//! Dropout masks come as bytes (see [`crate::cnn::dropout::dropout_bits`]); `bits = None` means no
//! dropout (the mask of ones).
use super::cpu;
use super::simd::{Kernel, Scalar, Simd};
use crate::cnn::batchnorm::{BatchNorm, EPS, Running, inv_std};
use crate::cnn::float::Float;
use crate::cnn::reduce::{LANES, fold};
use crate::cnn::tensor::{View, ViewMut};
use nalgebra::SVector;

/// Runs a pass's body compiled for the instruction set [`cpu::isa`] chose, through
/// [`cpu::Isa::vectorize`] (the one mechanism every kernel of this folder uses), or for the baseline
/// target on the reference path. The body is plain Rust that the compiler vectorises for the
/// features it is compiled with; the passes never reassociate (sums follow
/// [`crate::cnn::reduce`]) and Rust never contracts `a·b + c` into an FMA on its own, so the
/// instruction set changes the speed, never the bits.
#[inline(always)]
fn vectorized(body: impl FnOnce()) {
    let k = Body(body);
    match cpu::isa() {
        Some(isa) => isa.vectorize(k),
        None => k.run(Scalar),
    }
}

/// A pass's body as a [`Kernel`] that uses no vector type of its own.
struct Body<F>(F);

impl<F: FnOnce()> Kernel for Body<F> {
    type Out = ();
    #[inline(always)]
    fn run<S: Simd>(self, _: S) {
        (self.0)()
    }
}

/// The mask value of a byte: `keep` or `0`, the very value `dropout_mask` stores.
#[inline(always)]
fn mask<T: Float>(bit: u8, keep: T) -> T {
    if bit != 0 { keep } else { T::zero() }
}

/// The channel planes (`H·W` values each) of `r` and `g` in step, each with its channel (`k % C`
/// for the `k`-th plane of the batch) and, when there is a dropout mask `bits`, its plane of it.
///
/// # Panics
/// If `r` and `g` differ in length, or `bits` from them (`what` names the pass).
#[inline(always)]
fn planes<'a, T: Float, const C: usize, const H: usize, const W: usize>(
    what: &str,
    r: View<'a, T, C, H, W>,
    g: ViewMut<'a, T, C, H, W>,
    bits: Option<&'a [u8]>,
) -> impl Iterator<Item = (usize, &'a [T], &'a mut [T], Option<&'a [u8]>)> {
    assert_eq!(r.0.len(), g.0.len(), "{what}: lengths differ");
    if let Some(b) = bits {
        assert_eq!(b.len(), r.0.len(), "{what}: mask length differs");
    }
    let hw = H * W;
    r.0.chunks_exact(hw)
        .zip(g.0.chunks_exact_mut(hw))
        .enumerate()
        .map(move |(k, (rp, gp))| {
            let bp = bits.map(|b| &b[k * hw..(k + 1) * hw]);
            (k % C, rp, gp, bp)
        })
}

/// `f(j, g[i], r[i])` for every `i` of `g` and `r` (the same length), `j` the lane
/// ([`crate::cnn::reduce`]'s order: blocks of [`LANES`], then the remainder from lane 0).
#[inline(always)]
fn lanes<T: Float>(g: &[T], r: &[T], mut f: impl FnMut(usize, T, T)) {
    let mut gb = g.chunks_exact(LANES);
    let mut rb = r.chunks_exact(LANES);
    for (gs, rs) in (&mut gb).zip(&mut rb) {
        for j in 0..LANES {
            f(j, gs[j], rs[j]);
        }
    }
    for (j, (&gv, &rv)) in gb.remainder().iter().zip(rb.remainder()).enumerate() {
        f(j, gv, rv);
    }
}

/// ReLU in place, then adds the per-channel `Σx` and `Σx²` (f64) of the result to `s1`, `s2`.
///
/// ≡ `relu_forward(x); bn_partial_sums(x, s1, s2)`.
#[inline(never)]
pub fn relu_sums<T: Float, const C: usize, const H: usize, const W: usize>(
    x: ViewMut<'_, T, C, H, W>,
    s1: &mut [f64; C],
    s2: &mut [f64; C],
) {
    vectorized(
        #[inline(always)]
        move || {
            for (k, plane) in x.0.chunks_exact_mut(H * W).enumerate() {
                let c = k % C;
                let mut a = [0f64; LANES];
                let mut b = [0f64; LANES];
                let mut blocks = plane.chunks_exact_mut(LANES);
                for blk in &mut blocks {
                    let mut r = [T::zero(); LANES];
                    for j in 0..LANES {
                        let v = relu(blk[j]);
                        r[j] = v;
                        let v = v.f64();
                        a[j] += v;
                        b[j] += v * v;
                    }
                    // Stored through an opaque copy of the pointer: a store of `select(v < 0, 0,
                    // v)` to where `v` was loaded is otherwise turned by LLVM's x86 back end into
                    // a masked store of the zeros alone, which on AVX2 is `vmaskmovps`, slow on
                    // AMD CPUs (measured: this pass took 4× its AVX-512 time).
                    std::hint::black_box(&mut *blk).copy_from_slice(&r);
                }
                for (j, x) in blocks.into_remainder().iter_mut().enumerate() {
                    let v = relu(*x);
                    *x = v;
                    let v = v.f64();
                    a[j] += v;
                    b[j] += v * v;
                }
                s1[c] += fold(&a);
                s2[c] += fold(&b);
            }
        },
    )
}

/// `relu_forward`'s select, which keeps NaN visible.
#[inline(always)]
fn relu<T: Float>(v: T) -> T {
    if v < T::zero() { T::zero() } else { v }
}

/// `y = (γ·x̂ + β)·m` with `x̂ = (r − μ)/√(σ² + ε)` and batch statistics; x̂ is not stored.
///
/// ≡ `bn_forward_train(p, mean, var, r, xhat, y); dropout_forward(y, mask)`.
#[inline(never)]
pub fn bn_dropout_forward<T: Float, const C: usize, const H: usize, const W: usize>(
    p: &BatchNorm<T, C>,
    mean: &SVector<T, C>,
    var: &SVector<T, C>,
    r: View<'_, T, C, H, W>,
    bits: Option<&[u8]>,
    keep: T,
    y: ViewMut<'_, T, C, H, W>,
) {
    vectorized(
        #[inline(always)]
        move || {
            for (c, rp, yp, bp) in planes("bn_dropout_forward", r, y, bits) {
                let inv = inv_std(var[c]);
                let (g, b, mu) = (p.weight[c], p.bias[c], mean[c]);
                match bp {
                    None => {
                        for (&v, o) in rp.iter().zip(yp.iter_mut()) {
                            *o = g * ((v - mu) * inv) + b;
                        }
                    }
                    Some(bp) => {
                        for ((&v, o), &m) in rp.iter().zip(yp.iter_mut()).zip(bp) {
                            *o = (g * ((v - mu) * inv) + b) * mask(m, keep);
                        }
                    }
                }
            }
        },
    )
}

/// Dropout's backward in place on `g`, then adds `Σ g·x̂` and `Σ g` per channel to `dgamma`,
/// `dbeta`, with x̂ recomputed from the ReLU output `r` as the forward pass computed it.
///
/// ≡ `dropout_backward(g, mask); bn_backward_params(g, xhat, dgamma, dbeta)`.
#[allow(clippy::too_many_arguments)]
#[inline(never)]
pub fn dropout_bn_params_backward<T: Float, const C: usize, const H: usize, const W: usize>(
    bits: Option<&[u8]>,
    keep: T,
    mean: &SVector<T, C>,
    var: &SVector<T, C>,
    r: View<'_, T, C, H, W>,
    g: ViewMut<'_, T, C, H, W>,
    dgamma: &mut SVector<T, C>,
    dbeta: &mut SVector<T, C>,
) {
    vectorized(
        #[inline(always)]
        move || {
            for (c, rp, gp, bp) in planes("dropout_bn_params_backward", r, g, bits) {
                let (mu, inv) = (mean[c], inv_std(var[c]));
                if let Some(bp) = bp {
                    for (gv, &m) in gp.iter_mut().zip(bp) {
                        *gv *= mask(m, keep);
                    }
                }
                let mut a = [T::zero(); LANES];
                let mut b = [T::zero(); LANES];
                lanes(gp, rp, |j, gv, rv| {
                    a[j] += gv * ((rv - mu) * inv);
                    b[j] += gv;
                });
                dgamma[c] += fold(&a);
                dbeta[c] += fold(&b);
            }
        },
    )
}

/// BatchNorm's input gradient, then ReLU's backward, in place on `g`; adds the result's
/// per-channel sums to `dbias` (the gradient of the bias of the convolution feeding the ReLU).
///
/// ≡ `bn_backward_input(p, var, dgamma, dbeta, m, xhat, g); relu_backward(r, g);
/// conv_backward_bias(g, dbias)`.
#[allow(clippy::too_many_arguments)]
#[inline(never)]
pub fn bn_relu_backward<T: Float, const C: usize, const H: usize, const W: usize>(
    p: &BatchNorm<T, C>,
    mean: &SVector<T, C>,
    var: &SVector<T, C>,
    dgamma: &SVector<T, C>,
    dbeta: &SVector<T, C>,
    m: usize,
    r: View<'_, T, C, H, W>,
    g: ViewMut<'_, T, C, H, W>,
    dbias: &mut SVector<T, C>,
) {
    vectorized(
        #[inline(always)]
        move || {
            let inv_m = T::one() / T::c(m as f64);
            for (c, rp, gp, _) in planes("bn_relu_backward", r, g, None) {
                let (mu, inv) = (mean[c], inv_std(var[c]));
                let scale = p.weight[c] * inv;
                let mb = dbeta[c] * inv_m;
                let mg = dgamma[c] * inv_m;
                let step = |gv: T, rv: T| {
                    let h = (rv - mu) * inv;
                    let d = scale * (gv - mb - h * mg);
                    if rv > T::zero() { d } else { T::zero() }
                };
                let mut acc = [T::zero(); LANES];
                let mut gb = gp.chunks_exact_mut(LANES);
                let mut rb = rp.chunks_exact(LANES);
                for (gs, rs) in (&mut gb).zip(&mut rb) {
                    // Every load before every store. The closure's captures carry no `noalias`,
                    // so with a store to `gs[j]` before the load of `rs[j + 1]` LLVM must assume
                    // they may overlap, and it compiled the block to scalar code (no zmm register
                    // in the AVX-512 build) since the pass moved into a closure; see
                    // docs/performance.md.
                    let (gv, rv): ([T; LANES], [T; LANES]) = (
                        std::array::from_fn(|j| gs[j]),
                        std::array::from_fn(|j| rs[j]),
                    );
                    let mut d = [T::zero(); LANES];
                    for j in 0..LANES {
                        d[j] = step(gv[j], rv[j]);
                        acc[j] += d[j];
                    }
                    gs.copy_from_slice(&d);
                }
                for (j, (gv, &rv)) in gb
                    .into_remainder()
                    .iter_mut()
                    .zip(rb.remainder())
                    .enumerate()
                {
                    let d = step(*gv, rv);
                    *gv = d;
                    acc[j] += d;
                }
                dbias[c] += fold(&acc);
            }
        },
    )
}

/// Evaluation: ReLU, then BatchNorm with the running statistics, in place.
///
/// ≡ `relu_forward(x); bn_forward_eval(p, running, x)`.
#[inline(never)]
pub fn relu_bn_eval<T: Float, const C: usize, const H: usize, const W: usize>(
    p: &BatchNorm<T, C>,
    running: &Running<T, C>,
    x: ViewMut<'_, T, C, H, W>,
) {
    vectorized(
        #[inline(always)]
        move || {
            let eps = T::c(EPS);
            for (k, xp) in x.0.chunks_exact_mut(H * W).enumerate() {
                let c = k % C;
                let scale = p.weight[c] / (running.var[c] + eps).sqrt();
                let shift = p.bias[c] - running.mean[c] * scale;
                for v in xp {
                    *v = relu(*v) * scale + shift;
                }
            }
        },
    )
}
