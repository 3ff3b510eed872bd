//! Training: repeated forward pass, backward pass and update, one [`Row`] per iteration.
//!
//! Row `k` is the state **before** update `k + 1`: row 0 holds the initial weights and their
//! loss, and `train(s, lr, n)` performs `n` updates but reports the `n` states that preceded
//! them (rows `0..n`), exactly like the source spreadsheet's "100 iterations" sheet.
use super::{Backward, Forward, State};
use num_traits::Float;

/// One iteration: the state, its forward pass and its backward pass.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Row<T> {
    /// 0-based: row `k` is the state before update `k + 1`.
    pub iteration: usize,
    pub state: State<T>,
    pub fwd: Forward<T>,
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
    pub fn new(state: State<T>, lr: T) -> Self {
        Trainer {
            state,
            lr,
            iteration: 0,
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

/// E_total of rows `0..iterations` (the loss curve), without keeping the rows.
pub fn loss_curve<T: Float>(state: State<T>, lr: T, iterations: usize) -> Vec<T> {
    Trainer::new(state, lr)
        .take(iterations)
        .map(|r| r.fwd.e_total)
        .collect()
}
