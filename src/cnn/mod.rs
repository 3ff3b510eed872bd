//! Part 2: the 16,562-parameter MNIST CNN of `spec/cnn.md`.
//!
//! One file per operation, each holding its forward and backward side by side:
//! [`conv`], [`relu`], [`batchnorm`], [`dropout`], [`maxpool`], [`avgpool`], [`linear`],
//! [`loss`] ([`pool`] is the shape both pools take). [`net`] wires them into the source network; [`params`] names the tensors as
//! PyTorch's `state_dict` does. Everything is generic over [`Float`]: f32 trains, f64 checks.
//!
//! These are the reference functions that the spec labels cite and the gradient checks verify;
//! [`reduce`] fixes the summation order that BatchNorm and the fused passes share. Everything
//! that depends on the CPU (the convolution kernels, the fused passes, the dropout lockstep,
//! feature detection) is in [`crate::kernels`]; the network calls one dispatcher there per
//! convolution pass.
//!
//! The layer functions are `#[inline(never)]` so that a profile (perf, flamegraph) attributes
//! time per layer; each is a loop over a whole chunk, so the call itself costs nothing measurable.
pub mod avgpool;
pub mod batchnorm;
pub mod conv;
pub mod dropout;
pub mod float;
pub mod linear;
pub mod loss;
pub mod maxpool;
pub mod net;
pub mod params;
pub mod pool;
pub mod receptive;
pub mod reduce;
pub mod relu;
pub mod safetensors_io;
pub mod summary;
pub mod tensor;

pub use float::Float;
pub use net::{LayerMap, Mode, Net, Outcome, Workspace};
pub use params::{Buffers, PARAM_COUNT, Params};
