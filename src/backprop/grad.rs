//! Gradients: the chain-rule pieces multiplied along each path from E_total to a weight.
//!
//! Spec: `spec/backprop.md`, sections "Output-layer weights", "Hidden activations" and
//! "Hidden-layer weights". Every function here is a product (or sum of products) of the
//! pieces in [`super::chain`], so that the code reads like the derivation.
use super::Float;
use super::chain::*;

/// r[bp.grad.w5] Gradient of the total error with respect to w5.
///
/// ∂E_total/∂w5 = ∂E1/∂a_o1 · ∂a_o1/∂o1 · ∂o1/∂w5 = (a_o1 − t1) · a_o1(1 − a_o1) · a_h1
pub fn grad_w5<T: Float>(a_o1: T, t1: T, a_h1: T) -> T {
    chain_de1_dao1(a_o1, t1) * chain_dao1_do1(a_o1) * chain_do1_dw5(a_h1)
}

/// r[bp.grad.w6] Gradient of the total error with respect to w6.
///
/// ∂E_total/∂w6 = ∂E1/∂a_o1 · ∂a_o1/∂o1 · ∂o1/∂w6 = (a_o1 − t1) · a_o1(1 − a_o1) · a_h2
pub fn grad_w6<T: Float>(a_o1: T, t1: T, a_h2: T) -> T {
    chain_de1_dao1(a_o1, t1) * chain_dao1_do1(a_o1) * chain_do1_dw6(a_h2)
}

/// r[bp.grad.w7] Gradient of the total error with respect to w7.
///
/// ∂E_total/∂w7 = ∂E2/∂a_o2 · ∂a_o2/∂o2 · ∂o2/∂w7 = (a_o2 − t2) · a_o2(1 − a_o2) · a_h1
pub fn grad_w7<T: Float>(a_o2: T, t2: T, a_h1: T) -> T {
    chain_de2_dao2(a_o2, t2) * chain_dao2_do2(a_o2) * chain_do2_dw7(a_h1)
}

/// r[bp.grad.w8] Gradient of the total error with respect to w8.
///
/// ∂E_total/∂w8 = ∂E2/∂a_o2 · ∂a_o2/∂o2 · ∂o2/∂w8 = (a_o2 − t2) · a_o2(1 − a_o2) · a_h2
pub fn grad_w8<T: Float>(a_o2: T, t2: T, a_h2: T) -> T {
    chain_de2_dao2(a_o2, t2) * chain_dao2_do2(a_o2) * chain_do2_dw8(a_h2)
}

/// r[bp.hidden.de1_dah1] How E1 changes with hidden activation 1 (through o1).
///
/// ∂E1/∂a_h1 = ∂E1/∂a_o1 · ∂a_o1/∂o1 · ∂o1/∂a_h1 = (a_o1 − t1) · a_o1(1 − a_o1) · w5
pub fn hidden_de1_dah1<T: Float>(a_o1: T, t1: T, w5: T) -> T {
    chain_de1_dao1(a_o1, t1) * chain_dao1_do1(a_o1) * chain_do1_dah1(w5)
}

/// r[bp.hidden.de2_dah1] How E2 changes with hidden activation 1 (through o2).
///
/// ∂E2/∂a_h1 = ∂E2/∂a_o2 · ∂a_o2/∂o2 · ∂o2/∂a_h1 = (a_o2 − t2) · a_o2(1 − a_o2) · w7
pub fn hidden_de2_dah1<T: Float>(a_o2: T, t2: T, w7: T) -> T {
    chain_de2_dao2(a_o2, t2) * chain_dao2_do2(a_o2) * chain_do2_dah1(w7)
}

/// r[bp.hidden.de_dah1] How E_total changes with hidden activation 1: both paths, summed.
///
/// ∂E_total/∂a_h1 = ∂E1/∂a_h1 + ∂E2/∂a_h1
pub fn hidden_de_dah1<T: Float>(de1_dah1: T, de2_dah1: T) -> T {
    de1_dah1 + de2_dah1
}

/// r[bp.hidden.de1_dah2] How E1 changes with hidden activation 2 (through o1).
///
/// ∂E1/∂a_h2 = ∂E1/∂a_o1 · ∂a_o1/∂o1 · ∂o1/∂a_h2 = (a_o1 − t1) · a_o1(1 − a_o1) · w6
pub fn hidden_de1_dah2<T: Float>(a_o1: T, t1: T, w6: T) -> T {
    chain_de1_dao1(a_o1, t1) * chain_dao1_do1(a_o1) * chain_do1_dah2(w6)
}

/// r[bp.hidden.de2_dah2] How E2 changes with hidden activation 2 (through o2).
///
/// ∂E2/∂a_h2 = ∂E2/∂a_o2 · ∂a_o2/∂o2 · ∂o2/∂a_h2 = (a_o2 − t2) · a_o2(1 − a_o2) · w8
pub fn hidden_de2_dah2<T: Float>(a_o2: T, t2: T, w8: T) -> T {
    chain_de2_dao2(a_o2, t2) * chain_dao2_do2(a_o2) * chain_do2_dah2(w8)
}

/// r[bp.hidden.de_dah2] How E_total changes with hidden activation 2: both paths, summed.
///
/// ∂E_total/∂a_h2 = ∂E1/∂a_h2 + ∂E2/∂a_h2
pub fn hidden_de_dah2<T: Float>(de1_dah2: T, de2_dah2: T) -> T {
    de1_dah2 + de2_dah2
}

/// r[bp.grad.w1] Gradient of the total error with respect to w1.
///
/// ∂E_total/∂w1 = ∂E_total/∂a_h1 · ∂a_h1/∂h1 · ∂h1/∂w1 = ∂E_total/∂a_h1 · a_h1(1 − a_h1) · i1
pub fn grad_w1<T: Float>(de_dah1: T, a_h1: T, i1: T) -> T {
    de_dah1 * chain_dah1_dh1(a_h1) * chain_dh1_dw1(i1)
}

/// r[bp.grad.w2] Gradient of the total error with respect to w2.
///
/// ∂E_total/∂w2 = ∂E_total/∂a_h1 · ∂a_h1/∂h1 · ∂h1/∂w2 = ∂E_total/∂a_h1 · a_h1(1 − a_h1) · i2
pub fn grad_w2<T: Float>(de_dah1: T, a_h1: T, i2: T) -> T {
    de_dah1 * chain_dah1_dh1(a_h1) * chain_dh1_dw2(i2)
}

/// r[bp.grad.w3] Gradient of the total error with respect to w3.
///
/// ∂E_total/∂w3 = ∂E_total/∂a_h2 · ∂a_h2/∂h2 · ∂h2/∂w3 = ∂E_total/∂a_h2 · a_h2(1 − a_h2) · i1
pub fn grad_w3<T: Float>(de_dah2: T, a_h2: T, i1: T) -> T {
    de_dah2 * chain_dah2_dh2(a_h2) * chain_dh2_dw3(i1)
}

/// r[bp.grad.w4] Gradient of the total error with respect to w4.
///
/// ∂E_total/∂w4 = ∂E_total/∂a_h2 · ∂a_h2/∂h2 · ∂h2/∂w4 = ∂E_total/∂a_h2 · a_h2(1 − a_h2) · i2
pub fn grad_w4<T: Float>(de_dah2: T, a_h2: T, i2: T) -> T {
    de_dah2 * chain_dah2_dh2(a_h2) * chain_dh2_dw4(i2)
}

/// r[bp.update] One gradient-descent step for one weight: w⁺ = w − η·∂E_total/∂w.
///
/// [`super::State::step`] applies it to all eight weights at once, every gradient having
/// been computed from the weights *before* the step.
pub fn update<T: Float>(w: T, de_dw: T, lr: T) -> T {
    w - lr * de_dw
}
