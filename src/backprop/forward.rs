//! The forward pass: pre-activations, sigmoid activations and the squared-error losses.
//!
//! Spec: `spec/backprop.md`, sections "Forward pass" and "Loss". Every function is one
//! labelled equation; [`super::Forward::compute`] chains them in order.
use super::Float;

/// r[bp.fwd.sigmoid] The logistic function σ(x) = 1 / (1 + e^(−x)).
///
/// Written as `1 / (1 + exp(−x))` for every `x`: for very negative `x`, `exp(−x)` overflows
/// to +∞ and the result is exactly 0, which is the correctly rounded limit, so no branch is
/// needed.
pub fn fwd_sigmoid<T: Float>(x: T) -> T {
    T::one() / (T::one() + (-x).exp())
}

/// r[bp.fwd.h1] Net input of hidden neuron 1: h1 = w1·i1 + w2·i2.
pub fn fwd_h1<T: Float>(w1: T, w2: T, i1: T, i2: T) -> T {
    w1 * i1 + w2 * i2
}

/// r[bp.fwd.h2] Net input of hidden neuron 2: h2 = w3·i1 + w4·i2.
pub fn fwd_h2<T: Float>(w3: T, w4: T, i1: T, i2: T) -> T {
    w3 * i1 + w4 * i2
}

/// r[bp.fwd.a_h1] Activation of hidden neuron 1: a_h1 = σ(h1).
pub fn fwd_a_h1<T: Float>(h1: T) -> T {
    fwd_sigmoid(h1)
}

/// r[bp.fwd.a_h2] Activation of hidden neuron 2: a_h2 = σ(h2).
pub fn fwd_a_h2<T: Float>(h2: T) -> T {
    fwd_sigmoid(h2)
}

/// r[bp.fwd.o1] Net input of output neuron 1: o1 = w5·a_h1 + w6·a_h2.
pub fn fwd_o1<T: Float>(w5: T, w6: T, a_h1: T, a_h2: T) -> T {
    w5 * a_h1 + w6 * a_h2
}

/// r[bp.fwd.o2] Net input of output neuron 2: o2 = w7·a_h1 + w8·a_h2.
pub fn fwd_o2<T: Float>(w7: T, w8: T, a_h1: T, a_h2: T) -> T {
    w7 * a_h1 + w8 * a_h2
}

/// r[bp.fwd.a_o1] Activation of output neuron 1: a_o1 = σ(o1).
pub fn fwd_a_o1<T: Float>(o1: T) -> T {
    fwd_sigmoid(o1)
}

/// r[bp.fwd.a_o2] Activation of output neuron 2: a_o2 = σ(o2).
pub fn fwd_a_o2<T: Float>(o2: T) -> T {
    fwd_sigmoid(o2)
}

/// r[bp.loss.e1] Squared error of output 1: E1 = ½·(t1 − a_o1)².
pub fn loss_e1<T: Float>(t1: T, a_o1: T) -> T {
    let d = t1 - a_o1;
    half::<T>() * d * d
}

/// r[bp.loss.e2] Squared error of output 2: E2 = ½·(t2 − a_o2)².
pub fn loss_e2<T: Float>(t2: T, a_o2: T) -> T {
    let d = t2 - a_o2;
    half::<T>() * d * d
}

/// r[bp.loss.total] Total error: E_total = E1 + E2.
pub fn loss_total<T: Float>(e1: T, e2: T) -> T {
    e1 + e2
}

/// ½ in any float type.
pub(crate) fn half<T: Float>() -> T {
    T::one() / (T::one() + T::one())
}
