//! The one summation order every reduction of the network uses.
//!
//! A sum over a plane of values keeps [`LANES`] interleaved partial sums (element `i` goes to
//! lane `i mod LANES`) and folds them in lane order at the end. Compared with one running sum,
//! this breaks the chain of dependent additions, so the compiler can keep the lanes in vector
//! registers; and because the order is written down rather than left to the compiler, the
//! result is the same bits on every machine and for every vector width.
//!
//! The per-operation functions (`bn_partial_sums`, `bn_backward_params`, `conv_backward_bias`)
//! and the fused passes of [`crate::kernels::fused`] all use it, which is what makes a fused pass
//! bit-identical to the composition of the functions it replaces.
use super::float::Float;

/// Number of interleaved partial sums.
pub const LANES: usize = 16;

/// Folds the lanes in order: `((acc[0] + acc[1]) + acc[2]) + …`.
#[inline(always)]
pub fn fold<A: Copy + std::ops::Add<Output = A>>(acc: &[A; LANES]) -> A {
    let mut s = acc[0];
    for &a in &acc[1..] {
        s = s + a;
    }
    s
}

/// `Σx` in `T`, in the lane order.
#[inline(always)]
pub fn sum<T: Float>(xs: &[T]) -> T {
    let mut acc = [T::zero(); LANES];
    let mut blocks = xs.chunks_exact(LANES);
    for b in &mut blocks {
        for j in 0..LANES {
            acc[j] += b[j];
        }
    }
    for (j, &v) in blocks.remainder().iter().enumerate() {
        acc[j] += v;
    }
    fold(&acc)
}

/// `(Σx, Σx²)` accumulated in f64, in the lane order.
#[inline(always)]
pub fn sum_sq_f64<T: Float>(xs: &[T]) -> (f64, f64) {
    let mut a = [0f64; LANES];
    let mut b = [0f64; LANES];
    let mut blocks = xs.chunks_exact(LANES);
    for blk in &mut blocks {
        for j in 0..LANES {
            let v = blk[j].f64();
            a[j] += v;
            b[j] += v * v;
        }
    }
    for (j, &v) in blocks.remainder().iter().enumerate() {
        let v = v.f64();
        a[j] += v;
        b[j] += v * v;
    }
    (fold(&a), fold(&b))
}

/// `(Σ g·h, Σ g)` in `T`, in the lane order.
#[inline(always)]
pub fn dot_sum<T: Float>(g: &[T], h: &[T]) -> (T, T) {
    assert_eq!(g.len(), h.len(), "dot_sum: lengths differ");
    let mut a = [T::zero(); LANES];
    let mut b = [T::zero(); LANES];
    let mut gb = g.chunks_exact(LANES);
    let mut hb = h.chunks_exact(LANES);
    for (gs, hs) in (&mut gb).zip(&mut hb) {
        for j in 0..LANES {
            a[j] += gs[j] * hs[j];
            b[j] += gs[j];
        }
    }
    for (j, (&gv, &hv)) in gb.remainder().iter().zip(hb.remainder()).enumerate() {
        a[j] += gv * hv;
        b[j] += gv;
    }
    (fold(&a), fold(&b))
}
