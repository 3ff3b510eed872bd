//! Training: repeated forward pass, backward pass and update, one [`Row`] per iteration.
//!
//! Row `k` is the state **before** update `k + 1`: row 0 holds the initial weights and their
//! loss, and `train(s, lr, n)` performs `n` updates but reports the `n` states that preceded
//! them (rows `0..n`), exactly like the source spreadsheet's "100 iterations" sheet.
use super::Float;
use super::{Backward, Forward, State};

/// Training stopped because a value stopped being a finite number (a learning rate too large
/// for the weights, for example): which row, which quantity, and its value.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error(
    "Part 1 diverged at learning rate {lr:?}: iteration {iteration} has {quantity} = {value:?}, which is not a finite number (the rate or the starting values are too large)"
)]
pub struct Diverged {
    /// The learning rate η the run was using.
    pub lr: f64,
    /// The row (0-based iteration) holding the non-finite value.
    pub iteration: usize,
    /// The quantity's name in the spec (`w5`, `a_o1`, `E_total`, `dE_total/dw5`, …).
    pub quantity: &'static str,
    /// The offending value (NaN or ±∞).
    pub value: f64,
}

/// Part 1 diverging is a run that failed on its own.
impl From<Diverged> for crate::Error {
    fn from(d: Diverged) -> Self {
        crate::error::RunFailed::new(d).into()
    }
}

/// One iteration: the state, its forward pass and its backward pass.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Row<T> {
    /// 0-based: row `k` is the state before update `k + 1`.
    pub iteration: usize,
    /// Inputs i1, i2, targets t1, t2 and weights w1 … w8 before this row's update.
    pub state: State<T>,
    /// The forward pass of `state` (h1 … a_o2, E1, E2, E_total).
    pub fwd: Forward<T>,
    /// The backward pass of `state`: chain-rule pieces and ∂E_total/∂w1 … ∂E_total/∂w8.
    pub bwd: Backward<T>,
}

impl<T: Float> Row<T> {
    /// Computes the forward and backward passes of `state`.
    pub fn of(iteration: usize, state: State<T>) -> Self {
        let fwd = Forward::compute(&state);
        let bwd = Backward::compute(&state, &fwd);
        Row {
            iteration,
            state,
            fwd,
            bwd,
        }
    }
}

/// An endless iterator of rows: forward, backward, emit, update.
#[derive(Debug, Clone)]
pub struct Trainer<T> {
    state: State<T>,
    lr: T,
    iteration: usize,
}

impl<T: Float> Trainer<T> {
    /// Starts at `state` (row 0) with learning rate η = `lr`.
    pub fn new(state: State<T>, lr: T) -> Self {
        Trainer {
            state,
            lr,
            iteration: 0,
        }
    }
}

impl<T: Float> Row<T> {
    /// Every number of the row under its two names, in the spec's order: the state (targets,
    /// inputs, weights), the forward pass, every chain-rule piece of the backward pass, the
    /// gradients. The first name is the one [`Row::quantities`] gives (`dE1/da_o1`), the second
    /// the spec's own (`∂E1/∂a_o1`), which [`super::explain`] substitutes.
    pub fn named_quantities(&self) -> [(&'static str, &'static str, T); 43] {
        let (s, f, b) = (&self.state, &self.fwd, &self.bwd);
        let (w, g) = (&s.w, &b.grad);
        [
            ("t1", "t1", s.t1),
            ("t2", "t2", s.t2),
            ("i1", "i1", s.i1),
            ("i2", "i2", s.i2),
            ("w1", "w1", w.w1),
            ("w2", "w2", w.w2),
            ("w3", "w3", w.w3),
            ("w4", "w4", w.w4),
            ("w5", "w5", w.w5),
            ("w6", "w6", w.w6),
            ("w7", "w7", w.w7),
            ("w8", "w8", w.w8),
            ("h1", "h1", f.h1),
            ("a_h1", "a_h1", f.a_h1),
            ("h2", "h2", f.h2),
            ("a_h2", "a_h2", f.a_h2),
            ("o1", "o1", f.o1),
            ("a_o1", "a_o1", f.a_o1),
            ("o2", "o2", f.o2),
            ("a_o2", "a_o2", f.a_o2),
            ("E1", "E1", f.e1),
            ("E2", "E2", f.e2),
            ("E_total", "E_total", f.e_total),
            ("dE1/da_o1", "∂E1/∂a_o1", b.de1_dao1),
            ("dE2/da_o2", "∂E2/∂a_o2", b.de2_dao2),
            ("da_o1/do1", "∂a_o1/∂o1", b.dao1_do1),
            ("da_o2/do2", "∂a_o2/∂o2", b.dao2_do2),
            ("dE1/da_h1", "∂E1/∂a_h1", b.de1_dah1),
            ("dE2/da_h1", "∂E2/∂a_h1", b.de2_dah1),
            ("dE_total/da_h1", "∂E_total/∂a_h1", b.de_dah1),
            ("dE1/da_h2", "∂E1/∂a_h2", b.de1_dah2),
            ("dE2/da_h2", "∂E2/∂a_h2", b.de2_dah2),
            ("dE_total/da_h2", "∂E_total/∂a_h2", b.de_dah2),
            ("da_h1/dh1", "∂a_h1/∂h1", b.dah1_dh1),
            ("da_h2/dh2", "∂a_h2/∂h2", b.dah2_dh2),
            ("dE_total/dw1", "∂E_total/∂w1", g.w1),
            ("dE_total/dw2", "∂E_total/∂w2", g.w2),
            ("dE_total/dw3", "∂E_total/∂w3", g.w3),
            ("dE_total/dw4", "∂E_total/∂w4", g.w4),
            ("dE_total/dw5", "∂E_total/∂w5", g.w5),
            ("dE_total/dw6", "∂E_total/∂w6", g.w6),
            ("dE_total/dw7", "∂E_total/∂w7", g.w7),
            ("dE_total/dw8", "∂E_total/∂w8", g.w8),
        ]
    }

    /// Every number of the row with its name, in the spec's order (see
    /// [`Row::named_quantities`]); a derivative is named in ASCII-friendly form, `dE1/da_o1`.
    pub fn quantities(&self) -> [(&'static str, T); 43] {
        self.named_quantities()
            .map(|(name, _, value)| (name, value))
    }

    /// `Ok` when every quantity of the row is finite, else the first one (in the order of
    /// [`Row::quantities`]) that is not, as a [`Diverged`] at rate `lr`.
    pub fn check_finite(&self, lr: f64) -> Result<(), Diverged> {
        match self.quantities().into_iter().find(|(_, v)| !v.is_finite()) {
            None => Ok(()),
            Some((quantity, value)) => Err(Diverged {
                lr,
                iteration: self.iteration,
                quantity,
                value: value.to_f64().unwrap_or(f64::NAN),
            }),
        }
    }
}

impl<T: Float> Iterator for Trainer<T> {
    type Item = Row<T>;

    fn next(&mut self) -> Option<Row<T>> {
        let row = Row::of(self.iteration, self.state);
        self.state = self.state.step(&row.bwd.grad, self.lr);
        self.iteration += 1;
        Some(row)
    }
}

/// Rows `0..iterations` of training from `state` with learning rate `lr`.
pub fn train<T: Float>(state: State<T>, lr: T, iterations: usize) -> Vec<Row<T>> {
    Trainer::new(state, lr).take(iterations).collect()
}

/// Rows `0..iterations` as [`train`] gives them, or the first row that holds a value that is
/// not finite (see [`Row::check_finite`]).
pub fn train_checked<T: Float>(
    state: State<T>,
    lr: T,
    iterations: usize,
) -> Result<Vec<Row<T>>, Diverged> {
    let lr64 = lr.to_f64().unwrap_or(f64::NAN);
    Trainer::new(state, lr)
        .take(iterations)
        .map(|r| r.check_finite(lr64).map(|()| r))
        .collect()
}

/// E_total of rows `0..iterations` (the loss curve), without keeping the rows.
pub fn loss_curve<T: Float>(state: State<T>, lr: T, iterations: usize) -> Vec<T> {
    Trainer::new(state, lr)
        .take(iterations)
        .map(|r| r.fwd.e_total)
        .collect()
}
