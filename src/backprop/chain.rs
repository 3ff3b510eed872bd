//! The chain-rule pieces: one local derivative per edge of the computation graph.
//!
//! Spec: `spec/backprop.md`, section "Chain-rule pieces". Each function is the derivative of
//! one forward equation with respect to one of its arguments, written in terms of values the
//! forward pass already holds (for example σ′ is expressed through σ's output, not its input).
//! `tests/backprop_gradcheck.rs` checks every one of them against a central difference of the
//! forward function it differentiates.
use super::Float;

/// r[bp.chain.de1_dao1] How E1 changes with output 1's activation.
///
/// ∂E1/∂a_o1 = a_o1 − t1 (from E1 = ½(t1 − a_o1)²; the ½ cancels the 2, and the inner
/// derivative −1 flips the sign).
pub fn chain_de1_dao1<T: Float>(a_o1: T, t1: T) -> T {
    a_o1 - t1
}

/// r[bp.chain.de2_dao2] How E2 changes with output 2's activation.
///
/// ∂E2/∂a_o2 = a_o2 − t2
pub fn chain_de2_dao2<T: Float>(a_o2: T, t2: T) -> T {
    a_o2 - t2
}

/// r[bp.chain.dao1_do1] Slope of output 1's sigmoid, from its output.
///
/// ∂a_o1/∂o1 = a_o1·(1 − a_o1) (because σ′(x) = σ(x)(1 − σ(x)))
pub fn chain_dao1_do1<T: Float>(a_o1: T) -> T {
    a_o1 * (T::one() - a_o1)
}

/// r[bp.chain.dao2_do2] Slope of output 2's sigmoid, from its output.
///
/// ∂a_o2/∂o2 = a_o2·(1 − a_o2)
pub fn chain_dao2_do2<T: Float>(a_o2: T) -> T {
    a_o2 * (T::one() - a_o2)
}

/// r[bp.chain.do1_dw5] How o1 changes with w5.
///
/// ∂o1/∂w5 = a_h1
pub fn chain_do1_dw5<T: Float>(a_h1: T) -> T {
    a_h1
}

/// r[bp.chain.do1_dw6] How o1 changes with w6.
///
/// ∂o1/∂w6 = a_h2
pub fn chain_do1_dw6<T: Float>(a_h2: T) -> T {
    a_h2
}

/// r[bp.chain.do2_dw7] How o2 changes with w7.
///
/// ∂o2/∂w7 = a_h1
pub fn chain_do2_dw7<T: Float>(a_h1: T) -> T {
    a_h1
}

/// r[bp.chain.do2_dw8] How o2 changes with w8.
///
/// ∂o2/∂w8 = a_h2
pub fn chain_do2_dw8<T: Float>(a_h2: T) -> T {
    a_h2
}

/// r[bp.chain.do1_dah1] How o1 changes with hidden activation 1.
///
/// ∂o1/∂a_h1 = w5
pub fn chain_do1_dah1<T: Float>(w5: T) -> T {
    w5
}

/// r[bp.chain.do1_dah2] How o1 changes with hidden activation 2.
///
/// ∂o1/∂a_h2 = w6
pub fn chain_do1_dah2<T: Float>(w6: T) -> T {
    w6
}

/// r[bp.chain.do2_dah1] How o2 changes with hidden activation 1.
///
/// ∂o2/∂a_h1 = w7
pub fn chain_do2_dah1<T: Float>(w7: T) -> T {
    w7
}

/// r[bp.chain.do2_dah2] How o2 changes with hidden activation 2.
///
/// ∂o2/∂a_h2 = w8
pub fn chain_do2_dah2<T: Float>(w8: T) -> T {
    w8
}

/// r[bp.chain.dah1_dh1] Slope of hidden neuron 1's sigmoid, from its output.
///
/// ∂a_h1/∂h1 = a_h1·(1 − a_h1)
pub fn chain_dah1_dh1<T: Float>(a_h1: T) -> T {
    a_h1 * (T::one() - a_h1)
}

/// r[bp.chain.dah2_dh2] Slope of hidden neuron 2's sigmoid, from its output.
///
/// ∂a_h2/∂h2 = a_h2·(1 − a_h2)
pub fn chain_dah2_dh2<T: Float>(a_h2: T) -> T {
    a_h2 * (T::one() - a_h2)
}

/// r[bp.chain.dh1_dw1] How h1 changes with w1.
///
/// ∂h1/∂w1 = i1
pub fn chain_dh1_dw1<T: Float>(i1: T) -> T {
    i1
}

/// r[bp.chain.dh1_dw2] How h1 changes with w2.
///
/// ∂h1/∂w2 = i2
pub fn chain_dh1_dw2<T: Float>(i2: T) -> T {
    i2
}

/// r[bp.chain.dh2_dw3] How h2 changes with w3.
///
/// ∂h2/∂w3 = i1
pub fn chain_dh2_dw3<T: Float>(i1: T) -> T {
    i1
}

/// r[bp.chain.dh2_dw4] How h2 changes with w4.
///
/// ∂h2/∂w4 = i2
pub fn chain_dh2_dw4<T: Float>(i2: T) -> T {
    i2
}
