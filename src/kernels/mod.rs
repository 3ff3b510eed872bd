//! Everything that depends on the CPU: the fast paths of the trainer, apart from the spec's
//! layers in [`crate::cnn`].
//!
//! - [`cpu`]: the one place that detects the CPU's features and reads `GRADSPEC_SIMD`,
//!   `GRADSPEC_NO_AVX512` and `GRADSPEC_WINOGRAD`; it alone makes the tokens (proofs that a
//!   feature is there) that every fast path requires.
//! - [`simd`]: the 16-lane vector trait [`simd::Simd`] with one file per instruction set
//!   (AVX-512, AVX2+FMA, NEON, plain Rust), and the one way to build a kernel for each of them:
//!   a [`simd::Kernel`] written once over the trait, compiled per instruction set by
//!   [`cpu::Isa::vectorize`].
//! - [`conv`]: the f32 convolution kernels, direct and Winograd's `F(2×2, 3×3)`, and the
//!   network's one dispatcher per convolution pass ([`conv::forward`],
//!   [`conv::backward_input`], [`conv::backward_weight`], [`conv::backward`],
//!   [`conv::backward_bias`]).
//! - [`fused`]: the ReLU → BatchNorm → dropout passes fused into fewer sweeps.
//! - [`dropout`]: the dropout masks of eight images drawn in lockstep.
//!
//! # Dispatch
//! Each dispatcher asks [`cpu::isa`] once per call. A convolution pass runs Winograd's kernels
//! when the float type is f32, an instruction set is chosen, [`cpu::winograd`] is on and the
//! shape is one they take (conv2, conv5, conv7); else the direct kernels when the float type
//! is f32 and an instruction set is chosen; else the reference path, the im2col + GEMM
//! functions of [`crate::cnn::conv`] (always for f64, so the gradient checks verify the
//! reference). The fused passes and the dropout lockstep have no reference/kernel choice: they
//! run the same code compiled for the chosen instruction set, or for the baseline target on
//! the reference path.
//!
//! # Invariant
//! Every instruction set gives the same bits: each kernel is written once over [`simd::Simd`],
//! whose operations round each lane exactly once and whose cross-lane sums follow one fixed
//! tree in every build. `tests/cnn_conv_simd.rs` enforces it for the convolutions,
//! `tests/cnn_fused.rs` for the fused passes and the lockstep, and `tests/train_paths.rs` pins
//! the weights a training run gives on each path. Only this folder may use `core::arch` or
//! `#[target_feature]` (`tests/architecture.rs`).
pub mod conv;
pub mod cpu;
pub mod dropout;
pub mod fused;
pub mod simd;
