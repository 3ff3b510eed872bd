//! # gradspec
//!
//! A literate, spec-driven verification suite for backpropagation.
//!
//! * Part 1 ([`backprop`]): the hand-derived 2-2-2 sigmoid network of `spec/backprop.md`.
//! * Part 2 ([`cnn`], [`data`], [`train`]): the 16,562-parameter MNIST CNN of `spec/cnn.md`;
//!   its CPU-dependent fast paths are in [`kernels`].
//!
//! Every equation in `spec/*.md` sits under a label such as `r[bp.grad.w5]`; exactly one
//! function cites that label in the first line of its doc comment, at least one test cites it in
//! a `/// Verifies r[…]` line, and [`spec`] checks both (see `tests/spec_conformance.rs`).
#![warn(missing_docs)]
pub mod backprop;
#[cfg(feature = "cli")]
pub mod cli;
pub mod cnn;
pub mod data;
pub mod error;
pub mod fsutil;
pub mod kernels;
pub mod par;
#[cfg(feature = "plots")]
pub mod plot;
pub mod progress;
pub mod spec;
pub mod train;

pub use error::{Error, Result};
