//! The f32 training step on the code path this process takes — the direct kernels on AVX-512,
//! AVX2, NEON or scalar (`cpu::isa`), or the reference path (im2col + GEMM) with
//! `GRADSPEC_SIMD=reference` or on a CPU with none of them — against the f64 reference, and a
//! pinned hash of the weights after a short run on each path.
//!
//! `.ci/run` runs these tests normally (AVX-512, Winograd for conv2, conv5 and conv7), with
//! `GRADSPEC_NO_AVX512=1` (AVX2), with `GRADSPEC_SIMD=reference`, with `GRADSPEC_WINOGRAD=0`
//! (every convolution direct), and for aarch64 under qemu (NEON), so every path passes through
//! them on every submission.
//!
//! # The bound
//! f64 runs the reference functions of `src/cnn/` (im2col + GEMM, the fused passes' portable
//! body): it is the exact answer to within 10⁻¹² or so. The f32 step differs from it by f32
//! rounding, amplified by the network: every output is a sum of up to 4,608 products (conv2's
//! weight gradient over 8 images of 24×24 positions, per chunk), BatchNorm divides by a batch
//! standard deviation, and the loss gradient flows back through seven convolutions. A rigorous
//! worst-case bound (γ_N·Σ|terms| per layer, compounded) is far too loose to catch anything;
//! instead the bound is stated against the tensor's own scale: for every parameter tensor,
//! `max_i |g32_i − g64_i| ≤ 10⁻⁴ · max_i |g64_i|`, and the losses agree to `10⁻⁶` relative.
//! Observed on the reference machine (12 images, seed 1): worst gradient ratio 1.7·10⁻⁶
//! (Winograd, conv1.weight; 1.6·10⁻⁶ with every convolution direct) and 1.4·10⁻⁶ (reference,
//! conv1.bias); loss 1.7·10⁻⁹ and 6.7·10⁻⁸ relative. That is ~1,000 f32 ulps of the largest entry, and a margin of ~60 for other CPUs.
//! A real defect on either path — a wrong tap, a missing image, a lost tail lane — moves some
//! entry by a sizeable fraction of the tensor's scale; the twin test shows that one entry of
//! conv2's 4,608 weight gradients moved by 1% of the tensor's scale is caught.
use gradspec::cnn::net::DropoutKey;
use gradspec::cnn::{Mode, Net, Params, Workspace};
use gradspec::data::{self, Split};
use gradspec::kernels::cpu;
use gradspec::train::sgd::sgd_momentum;
use sha2::{Digest, Sha256};
use std::path::Path;

/// Largest allowed `max|g32 − g64| / max|g64|` per parameter tensor.
const GRAD_BOUND: f64 = 1e-4;
/// Largest allowed relative loss difference.
const LOSS_BOUND: f64 = 1e-6;

fn fixture() -> data::Dataset {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/mnist");
    data::load_split(&dir, Split::Test).expect("fixture loads")
}

/// Images `start..start+n` of the fixture, augmented with key (seed 3, epoch 1) as in training.
fn batch(ds: &data::Dataset, start: usize, n: usize) -> (Vec<f32>, Vec<u8>) {
    let idx: Vec<u32> = (start as u32..(start + n) as u32).collect();
    let mut x = vec![0f32; n * data::PIXELS];
    let mut y = vec![0u8; n];
    data::fill_batch(
        ds,
        &idx,
        Some(data::Augmentation::source(3, 1)),
        &mut x,
        &mut y,
    );
    (x, y)
}

/// Worst `max|a − b| / max|b|` over the parameter tensors, with the tensor's name.
fn worst_ratio(g32: &Params<f32>, g64: &Params<f64>) -> (f64, &'static str) {
    let mut worst = (0.0, "");
    for (a, b) in g32.tensors().iter().zip(g64.tensors()) {
        let scale = b.data.iter().fold(0.0f64, |m, v| m.max(v.abs()));
        let diff = a
            .data
            .iter()
            .zip(b.data)
            .fold(0.0f64, |m, (x, y)| m.max((f64::from(*x) - y).abs()));
        let r = diff / scale.max(f64::MIN_POSITIVE);
        if r > worst.0 {
            worst = (r, b.name);
        }
    }
    worst
}

/// One training step's loss and gradients in f32 (the active path) and in f64 (reference),
/// from the same f32 weights and images.
fn step_both(n: usize) -> (f64, f64, Params<f32>, Params<f64>) {
    let ds = fixture();
    let (x, y) = batch(&ds, 0, n);
    let key = DropoutKey { seed: 11, step: 5 };
    let mode = Mode::Train { dropout: Some(key) };

    let mut net32 = Net::<f32>::new(1);
    let mut ws32 = Workspace::<f32>::new(n);
    ws32.load(&x, &y);
    let l32 = net32.forward(&mut ws32, mode).loss;
    let mut g32 = Params::<f32>::zeros();
    net32.backward(&mut ws32, &mut g32);

    let mut net64 = Net::<f64>::new(1);
    *net64.params = net32.params.cast();
    *net64.buffers = net32.buffers.cast();
    let x64: Vec<f64> = x.iter().map(|&v| f64::from(v)).collect();
    let mut ws64 = Workspace::<f64>::new(n);
    ws64.load(&x64, &y);
    let l64 = net64.forward(&mut ws64, mode).loss;
    let mut g64 = Params::<f64>::zeros();
    net64.backward(&mut ws64, &mut g64);
    (l32, l64, g32, g64)
}

/// Verifies r[cnn.conv.forward] r[cnn.conv.backward_input] r[cnn.conv.backward_weight] r[cnn.conv.backward_bias] on the f32 path the trainer takes, against f64.
#[test]
fn f32_training_step_agrees_with_the_f64_reference_on_this_path() {
    // 12 images: a full chunk of 8 and a partial one of 4.
    let (l32, l64, g32, g64) = step_both(12);
    let loss_rel = (l32 - l64).abs() / l64.abs();
    let (ratio, name) = worst_ratio(&g32, &g64);
    println!(
        "path {}: loss f32 {l32:.9} f64 {l64:.9} (rel {loss_rel:.2e}); worst gradient ratio {ratio:.2e} in {name} (bound {GRAD_BOUND:e})",
        cpu::path_name()
    );
    assert!(loss_rel <= LOSS_BOUND, "loss differs by {loss_rel:e}");
    assert!(
        ratio <= GRAD_BOUND,
        "{name}: f32 gradient off by {ratio:e} of the tensor's scale on path {}",
        cpu::path_name()
    );
}

#[test]
fn the_bound_rejects_one_wrong_gradient_entry() {
    let (_, _, mut g32, g64) = step_both(12);
    // One entry of conv2's weight gradient (4,608 entries) moved by 1% of the tensor's scale.
    let k = g32
        .tensors()
        .iter()
        .position(|t| t.name == "conv2.weight")
        .expect("conv2.weight exists");
    let mut tensors = g32.tensors_mut();
    let t = &mut tensors[k].data;
    let scale = t.iter().fold(0.0f32, |m, v| m.max(v.abs()));
    t[1234] += 0.01 * scale;
    drop(tensors);
    let (ratio, name) = worst_ratio(&g32, &g64);
    assert!(ratio > GRAD_BOUND, "not caught: {ratio:e} in {name}");
}

/// SHA-256 of the weights and BatchNorm buffers after four SGD steps (batch 32, momentum 0.9,
/// onecycle's first learning rates) on the fixture.
fn short_run_hash() -> String {
    let ds = fixture();
    let mut net = Net::<f32>::new(5);
    let mut velocity = Params::<f32>::zeros();
    let mut grads = Params::<f32>::zeros();
    let mut ws = Workspace::<f32>::new(32);
    for step in 0..4u64 {
        let (x, y) = batch(&ds, 32 * step as usize, 32);
        ws.load(&x, &y);
        let key = DropoutKey { seed: 5, step };
        let out = net.forward(&mut ws, Mode::Train { dropout: Some(key) });
        assert!(out.loss.is_finite());
        net.backward(&mut ws, &mut grads);
        let lr = 0.005 + 0.001 * step as f32;
        sgd_momentum(&mut net.params, &mut velocity, &grads, lr, 0.9);
    }
    let mut h = Sha256::new();
    for t in net.params.tensors() {
        for v in t.data {
            h.update(v.to_le_bytes());
        }
    }
    for (_, m, var, n) in net.buffers.tensors() {
        for v in m.iter().chain(var) {
            h.update(v.to_le_bytes());
        }
        h.update(n.to_le_bytes());
    }
    h.finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<String>()
}

/// The pinned hashes, per path: the kernels with conv2 by Winograd (`PINNED_AVX512`, the
/// default) and with every convolution direct (`PINNED_DIRECT`, `GRADSPEC_WINOGRAD=0`), each
/// the same bits on every instruction set they run on, and the reference path. The reference path's convolutions go through `matrixmultiply`,
/// whose kernel (and so its rounding) depends on the CPU's features, so the portable pin holds
/// for x86_64 with AVX2 and FMA; on another CPU the test prints the hash and checks only that
/// two runs agree.
const PINNED_AVX512: &str = "29ede6e7c9fc4984a96c986bc1cbdbe64be618e89d7ce8e0703602f514647f74";
const PINNED_DIRECT: &str = "a1ce3b0a868c3247565370ed340f2a53f282ed32ed541ae3e748fc474b20629d";
const PINNED_PORTABLE_X86_FMA: &str =
    "109c6d9bf2176559a504766cca26efcfd73605326862100275739f76e2226918";

#[cfg(target_arch = "x86_64")]
fn portable_is_pinned_here() -> bool {
    std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
}
#[cfg(not(target_arch = "x86_64"))]
fn portable_is_pinned_here() -> bool {
    false
}

#[test]
fn a_short_run_gives_the_pinned_weights_on_this_path() {
    let got = short_run_hash();
    println!("path {}: weights sha256 {got}", cpu::path_name());
    assert_eq!(got, short_run_hash(), "two runs differ");
    if cpu::isa().is_some() {
        // The kernels give the same bits on every instruction set (AVX-512, AVX2, NEON,
        // scalar; see src/kernels/simd/), and so do the fused passes and dropout.
        let (pin, what) = if cpu::winograd() {
            (PINNED_AVX512, "Winograd")
        } else {
            (PINNED_DIRECT, "direct")
        };
        assert_eq!(
            got,
            pin,
            "kernel path {} ({what} convolutions) changed its numbers",
            cpu::path_name()
        );
    } else if portable_is_pinned_here() {
        assert_eq!(
            got, PINNED_PORTABLE_X86_FMA,
            "portable path changed its numbers"
        );
    } else {
        println!("no pin for this CPU's portable path");
    }
}
