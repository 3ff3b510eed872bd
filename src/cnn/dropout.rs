//! Inverted dropout. Training multiplies by a mask whose entries are `0` (probability `p`) or
//! `1/(1−p)`; evaluation is the identity. The mask is an explicit argument, so gradient checks
//! can hold it fixed, and it is drawn from a seeded stream per image, so results do not depend
//! on thread scheduling.
use super::float::Float;
use rand::Rng;

/// r[cnn.dropout.mask] `m_i = 1/(1−p)` with probability `1−p`, else `0`, independently.
///
/// Draws a 24-bit uniform integer per element and drops it when it is below `p·2²⁴`
/// (exact for p = k/2²⁴; p = 0.05 is within 3·10⁻⁸ of that).
#[inline(never)]
pub fn dropout_mask<T: Float, R: Rng>(rng: &mut R, p: f64, mask: &mut [T]) {
    let keep = keep_scale::<T>(p);
    let threshold = (p * (1u64 << 24) as f64).round() as u32;
    let mut chunks = mask.chunks_exact_mut(2);
    for pair in &mut chunks {
        let r: u64 = rng.random();
        pair[0] = if ((r & 0xFF_FFFF) as u32) < threshold {
            T::zero()
        } else {
            keep
        };
        pair[1] = if (((r >> 32) & 0xFF_FFFF) as u32) < threshold {
            T::zero()
        } else {
            keep
        };
    }
    for m in chunks.into_remainder() {
        let r: u32 = rng.random();
        *m = if (r & 0xFF_FFFF) < threshold {
            T::zero()
        } else {
            keep
        };
    }
}

/// The decisions of [`dropout_mask`] as bytes, `1` keep and `0` drop, drawing exactly the same
/// numbers from `rng`: with the same stream, `mask[i] = bits[i]·1/(1−p)`. A quarter of the
/// memory of the float mask; the fused passes of [`crate::kernels::fused`] read it, and
/// [`crate::kernels::dropout::dropout_bits_lockstep`] draws it for eight images at once.
#[inline(never)]
pub fn dropout_bits<R: Rng>(rng: &mut R, p: f64, bits: &mut [u8]) {
    let threshold = (p * (1u64 << 24) as f64).round() as u32;
    let mut chunks = bits.chunks_exact_mut(2);
    for pair in &mut chunks {
        let r: u64 = rng.random();
        pair[0] = u8::from(((r & 0xFF_FFFF) as u32) >= threshold);
        pair[1] = u8::from((((r >> 32) & 0xFF_FFFF) as u32) >= threshold);
    }
    for b in chunks.into_remainder() {
        let r: u32 = rng.random();
        *b = u8::from((r & 0xFF_FFFF) >= threshold);
    }
}

/// The mask value `1/(1−p)` of a kept element, as [`dropout_mask`] computes it.
pub fn keep_scale<T: Float>(p: f64) -> T {
    T::c(1.0 / (1.0 - p))
}

/// r[cnn.dropout.forward] `y = x ⊙ m`, in place.
///
/// PyTorch equivalent: `nn.Dropout(p)` in training mode, with the mask made explicit.
#[inline(never)]
pub fn dropout_forward<T: Float>(x: &mut [T], mask: &[T]) {
    assert_eq!(x.len(), mask.len(), "dropout_forward: lengths differ");
    for (v, &m) in x.iter_mut().zip(mask) {
        *v *= m;
    }
}

/// r[cnn.dropout.backward] `∂L/∂x = ∂L/∂y ⊙ m`, in place.
#[inline(never)]
pub fn dropout_backward<T: Float>(dy: &mut [T], mask: &[T]) {
    assert_eq!(dy.len(), mask.len(), "dropout_backward: lengths differ");
    for (g, &m) in dy.iter_mut().zip(mask) {
        *g *= m;
    }
}
