//! Part 1: the hand-derived 2-2-2 sigmoid network of `spec/backprop.md`.
//!
//! Two inputs, two sigmoid hidden neurons, two sigmoid outputs, no biases, squared error:
//!
//! ```text
//!  i1 ─w1─┐
//!  i2 ─w2─┴─► h1 → a_h1 ─w5─┐
//!                  a_h2 ─w6─┴─► o1 → a_o1 ──► E1 = ½(t1 − a_o1)²
//!  i1 ─w3─┐
//!  i2 ─w4─┴─► h2 → a_h2 ─w8─┐
//!                  a_h1 ─w7─┴─► o2 → a_o2 ──► E2 = ½(t2 − a_o2)²     E_total = E1 + E2
//! ```
//!
//! Every labelled equation of the spec is one small function ([`forward`], [`chain`],
//! [`grad`]); the types here only chain them together:
//! [`State`] (inputs, targets, weights) → [`Forward`] (every intermediate) →
//! [`Backward`] (every chain-rule piece and the eight gradients) → [`State::step`].
//! [`train`] turns that into the per-iteration rows of the spreadsheet, [`table`] writes them
//! as CSV, [`sweep`] compares learning rates and [`explain`] prints the derivation with one
//! iteration's numbers substituted; `xlsx` (feature `xlsx`) writes the spreadsheet as an
//! `.xlsx` workbook of live formulas.
//!
//! Everything is generic over [`Float`] (`f32` or `f64`): it trains in `f32` and is checked
//! in `f64`.
//!
//! ```
//! use gradspec::backprop::{Forward, State};
//! let s = State::<f64>::spreadsheet();
//! let f = Forward::compute(&s);
//! // Row 0 of the spreadsheet (t1 = t2 = 0.5, no biases).
//! assert!((f.e_total - 0.0141813779).abs() < 1e-10);
//! ```
/// The float type of Part 1: [`num_traits::Float`] with a [`Default`] (zero), which `f32` and
/// `f64` have. The zero lets mutation testing replace any labelled function's body by a value
/// that still compiles (`Default::default()`), so that even a one-call function such as
/// `fwd_a_h1 = σ(h1)` has a mutant its citing tests must catch (scripts/mutants-per-label.sh).
pub trait Float: num_traits::Float + Default {}

impl<T: num_traits::Float + Default> Float for T {}

pub mod chain;
pub mod explain;
pub mod forward;
pub mod grad;
pub mod sweep;
pub mod table;
pub mod train;
#[cfg(feature = "xlsx")]
pub mod xlsx;

use chain::*;
use forward::*;
use grad::*;

/// The eight weights (or anything indexed like them, such as their gradients).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Weights<T> {
    /// w1: input i1 → hidden h1.
    pub w1: T,
    /// w2: input i2 → hidden h1.
    pub w2: T,
    /// w3: input i1 → hidden h2.
    pub w3: T,
    /// w4: input i2 → hidden h2.
    pub w4: T,
    /// w5: hidden activation a_h1 → output o1.
    pub w5: T,
    /// w6: hidden activation a_h2 → output o1.
    pub w6: T,
    /// w7: hidden activation a_h1 → output o2.
    pub w7: T,
    /// w8: hidden activation a_h2 → output o2.
    pub w8: T,
}

impl<T: Copy> Weights<T> {
    /// `[w1, …, w8]`.
    pub fn to_array(&self) -> [T; 8] {
        [
            self.w1, self.w2, self.w3, self.w4, self.w5, self.w6, self.w7, self.w8,
        ]
    }

    /// The inverse of [`Weights::to_array`].
    pub fn from_array(a: [T; 8]) -> Self {
        let [w1, w2, w3, w4, w5, w6, w7, w8] = a;
        Weights {
            w1,
            w2,
            w3,
            w4,
            w5,
            w6,
            w7,
            w8,
        }
    }
}

/// Everything the network's output depends on: inputs, targets and weights.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct State<T> {
    /// First input i1.
    pub i1: T,
    /// Second input i2.
    pub i2: T,
    /// Target t1 for the first output a_o1.
    pub t1: T,
    /// Target t2 for the second output a_o2.
    pub t2: T,
    /// The eight weights w1 … w8.
    pub w: Weights<T>,
}

impl<T: Float> State<T> {
    /// The source spreadsheet's values: i = (0.05, 0.1), t = (0.5, 0.5),
    /// w1…w8 = 0.15, 0.2, 0.25, 0.3, 0.4, 0.45, 0.5, 0.55.
    pub fn spreadsheet() -> Self {
        let c = |x: f64| T::from(x).expect("spreadsheet constants fit every float type");
        State {
            i1: c(0.05),
            i2: c(0.1),
            t1: c(0.5),
            t2: c(0.5),
            w: Weights::from_array([0.15, 0.2, 0.25, 0.3, 0.4, 0.45, 0.5, 0.55].map(c)),
        }
    }

    /// The forward pass from this state.
    pub fn forward(&self) -> Forward<T> {
        Forward::compute(self)
    }

    /// ∂E_total/∂w for all eight weights (forward pass, then backward pass).
    pub fn gradient(&self) -> Weights<T> {
        Backward::compute(self, &self.forward()).grad
    }

    /// One gradient-descent step: every weight moves by `−lr · grad` at once
    /// ([`r[bp.update]`](grad::update)); inputs and targets are unchanged.
    pub fn step(&self, grad: &Weights<T>, lr: T) -> Self {
        let w = self.w.to_array();
        let g = grad.to_array();
        State {
            w: Weights::from_array(std::array::from_fn(|k| update(w[k], g[k], lr))),
            ..*self
        }
    }
}

/// Every intermediate value of the forward pass, in the order the spec computes them.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Forward<T> {
    /// Net input of the first hidden neuron, h1 = w1·i1 + w2·i2.
    pub h1: T,
    /// Activation of the first hidden neuron, a_h1 = σ(h1).
    pub a_h1: T,
    /// Net input of the second hidden neuron, h2 = w3·i1 + w4·i2.
    pub h2: T,
    /// Activation of the second hidden neuron, a_h2 = σ(h2).
    pub a_h2: T,
    /// Net input of the first output neuron, o1 = w5·a_h1 + w6·a_h2.
    pub o1: T,
    /// Activation of the first output neuron, a_o1 = σ(o1).
    pub a_o1: T,
    /// Net input of the second output neuron, o2 = w7·a_h1 + w8·a_h2.
    pub o2: T,
    /// Activation of the second output neuron, a_o2 = σ(o2).
    pub a_o2: T,
    /// Error of the first output, E1 = ½(t1 − a_o1)².
    pub e1: T,
    /// Error of the second output, E2 = ½(t2 − a_o2)².
    pub e2: T,
    /// Total error E_total = E1 + E2.
    pub e_total: T,
}

impl<T: Float> Forward<T> {
    /// Chains the `r[bp.fwd.*]` and `r[bp.loss.*]` functions.
    pub fn compute(s: &State<T>) -> Self {
        let w = &s.w;
        let h1 = fwd_h1(w.w1, w.w2, s.i1, s.i2);
        let h2 = fwd_h2(w.w3, w.w4, s.i1, s.i2);
        let a_h1 = fwd_a_h1(h1);
        let a_h2 = fwd_a_h2(h2);
        let o1 = fwd_o1(w.w5, w.w6, a_h1, a_h2);
        let o2 = fwd_o2(w.w7, w.w8, a_h1, a_h2);
        let a_o1 = fwd_a_o1(o1);
        let a_o2 = fwd_a_o2(o2);
        let e1 = loss_e1(s.t1, a_o1);
        let e2 = loss_e2(s.t2, a_o2);
        Forward {
            h1,
            a_h1,
            h2,
            a_h2,
            o1,
            a_o1,
            o2,
            a_o2,
            e1,
            e2,
            e_total: loss_total(e1, e2),
        }
    }
}

/// Every chain-rule piece of the backward pass and the eight gradients built from them.
///
/// The pieces that are just a forward value (∂o1/∂w5 = a_h1, ∂h1/∂w1 = i1, …) are not stored
/// separately; they are the fields of [`State`] and [`Forward`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Backward<T> {
    /// ∂E1/∂a_o1 = a_o1 − t1.
    pub de1_dao1: T,
    /// ∂E2/∂a_o2 = a_o2 − t2.
    pub de2_dao2: T,
    /// ∂a_o1/∂o1 = a_o1 · (1 − a_o1), the sigmoid's slope at the first output.
    pub dao1_do1: T,
    /// ∂a_o2/∂o2 = a_o2 · (1 − a_o2), the sigmoid's slope at the second output.
    pub dao2_do2: T,
    /// ∂E1/∂a_h1: the path from a_h1 through o1 (via w5).
    pub de1_dah1: T,
    /// ∂E2/∂a_h1: the path from a_h1 through o2 (via w7).
    pub de2_dah1: T,
    /// ∂E_total/∂a_h1 = ∂E1/∂a_h1 + ∂E2/∂a_h1.
    pub de_dah1: T,
    /// ∂E1/∂a_h2: the path from a_h2 through o1 (via w6).
    pub de1_dah2: T,
    /// ∂E2/∂a_h2: the path from a_h2 through o2 (via w8).
    pub de2_dah2: T,
    /// ∂E_total/∂a_h2 = ∂E1/∂a_h2 + ∂E2/∂a_h2.
    pub de_dah2: T,
    /// ∂a_h1/∂h1 = a_h1 · (1 − a_h1), the sigmoid's slope at the first hidden neuron.
    pub dah1_dh1: T,
    /// ∂a_h2/∂h2 = a_h2 · (1 − a_h2), the sigmoid's slope at the second hidden neuron.
    pub dah2_dh2: T,
    /// ∂E_total/∂w1 … ∂E_total/∂w8.
    pub grad: Weights<T>,
}

impl<T: Float> Backward<T> {
    /// Chains the `r[bp.chain.*]`, `r[bp.hidden.*]` and `r[bp.grad.*]` functions.
    pub fn compute(s: &State<T>, f: &Forward<T>) -> Self {
        let w = &s.w;
        let de1_dah1 = hidden_de1_dah1(f.a_o1, s.t1, w.w5);
        let de2_dah1 = hidden_de2_dah1(f.a_o2, s.t2, w.w7);
        let de1_dah2 = hidden_de1_dah2(f.a_o1, s.t1, w.w6);
        let de2_dah2 = hidden_de2_dah2(f.a_o2, s.t2, w.w8);
        let de_dah1 = hidden_de_dah1(de1_dah1, de2_dah1);
        let de_dah2 = hidden_de_dah2(de1_dah2, de2_dah2);
        Backward {
            de1_dao1: chain_de1_dao1(f.a_o1, s.t1),
            de2_dao2: chain_de2_dao2(f.a_o2, s.t2),
            dao1_do1: chain_dao1_do1(f.a_o1),
            dao2_do2: chain_dao2_do2(f.a_o2),
            de1_dah1,
            de2_dah1,
            de_dah1,
            de1_dah2,
            de2_dah2,
            de_dah2,
            dah1_dh1: chain_dah1_dh1(f.a_h1),
            dah2_dh2: chain_dah2_dh2(f.a_h2),
            grad: Weights {
                w1: grad_w1(de_dah1, f.a_h1, s.i1),
                w2: grad_w2(de_dah1, f.a_h1, s.i2),
                w3: grad_w3(de_dah2, f.a_h2, s.i1),
                w4: grad_w4(de_dah2, f.a_h2, s.i2),
                w5: grad_w5(f.a_o1, s.t1, f.a_h1),
                w6: grad_w6(f.a_o1, s.t1, f.a_h2),
                w7: grad_w7(f.a_o2, s.t2, f.a_h1),
                w8: grad_w8(f.a_o2, s.t2, f.a_h2),
            },
        }
    }
}
