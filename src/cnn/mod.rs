//! Part 2: the 16,562-parameter MNIST CNN of `spec/cnn.md`.
//!
//! One file per operation, each holding its forward and backward side by side:
//! [`conv`], [`relu`], [`batchnorm`], [`dropout`], [`maxpool`], [`avgpool`], [`linear`],
//! [`loss`]. [`net`] wires them into the source network; [`params`] names the tensors as
//! PyTorch's `state_dict` does. Everything is generic over [`Float`]: f32 trains, f64 checks.
//!
//! The trainer's fast paths sit beside the reference functions, which stay what the spec labels
//! cite and the gradient checks verify: [`fused`] runs each ReLU → BatchNorm → dropout block in
//! fewer passes, bit-identical to the per-operation functions; [`reduce`] fixes the summation
//! order they share; [`conv_simd`] holds direct convolution kernels for f32, equal to [`conv`]
//! to f32 rounding, written once over the 16-lane vectors of [`simd`] (AVX-512, AVX2+FMA, NEON
//! or plain Rust, the same bits on each). [`cpu`] is the one place that detects the CPU's
//! features and chooses the path (`GRADSPEC_SIMD`, `GRADSPEC_NO_AVX512`): it hands out the
//! tokens every SIMD code path requires.
//!
//! The layer functions are `#[inline(never)]` so that a profile (perf, flamegraph) attributes
//! time per layer; each is a loop over a whole chunk, so the call itself costs nothing measurable.
pub mod avgpool;
pub mod batchnorm;
pub mod conv;
pub mod conv_simd;
pub mod cpu;
pub mod dropout;
pub mod float;
pub mod fused;
pub mod linear;
pub mod loss;
pub mod maxpool;
pub mod net;
pub mod params;
pub mod receptive;
pub mod reduce;
pub mod relu;
pub mod safetensors_io;
pub mod simd;
pub mod summary;
pub mod tensor;

pub use float::Float;
pub use net::{LayerMap, Mode, Net, Outcome, Workspace};
pub use params::{Buffers, PARAM_COUNT, Params};
