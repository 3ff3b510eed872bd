//! PyTorch as an independent oracle: every layer's forward value and input and parameter
//! gradients at the network's real shapes, BatchNorm's running statistics, max-pool ties and
//! NaN, log-softmax and NLL with large logits, three SGD-with-momentum steps, and the whole
//! network's loss and every gradient entry, compared element by element in f64 with values
//! that PyTorch computed.
//!
//! The reference values are committed data (`tests/fixtures/torch/*.safetensors`), written by
//! `tests/python/make_torch_fixtures.py` (its doc says how to run it, the torch version is in
//! each file's metadata). Neither Python nor torch is needed here. Inputs of the layer fixtures
//! are not stored but regenerated bit for bit from the metadata entry `gen.NAME` (see [`generate`]);
//! every layer check back-propagates a random upstream gradient `g` (`L = Σ g⊙y`). The
//! generated values are fractions of at most 20 significant bits, so the sums of products in
//! the linear layers (convolutions, linear, pools) happen to be exact in f64 and agree with
//! torch bit for bit: there, any difference at all would be a bug. BatchNorm, log-softmax,
//! SGD and the whole network (real images, torch-initialised weights) round, and show the
//! summation-order differences the tolerance is for.
//!
//! Batches: two images per layer fixture, except conv1–conv3 (one image: at two their outputs
//! alone would be 2 MB) and BatchNorm, checked at bn4's and bn5's shapes (`BatchNorm2d(16)` on
//! 10×10, `BatchNorm2d(32)` on 8×8). The whole-network check runs all of them, bn1 and bn2
//! included, on 10 real images (gradspec's chunks of 8 and 2).
//!
//! **Tolerance (`TORCH` preset, spec/cnn.md "Tolerance presets").** A value `a` agrees with
//! torch's `r` when `|a − r| ≤ 1e-10 · max|r|`, the maximum taken over the whole tensor.
//! Why: both sides compute the same formulas in f64 (ε = 2.2·10⁻¹⁶) and differ only in the
//! order of their sums (GEMM blocking, gradspec's 16-lane plane sums, f64 one-pass BatchNorm
//! variance against torch's two-pass one). A sum of `k` terms rounded in two orders differs by
//! at most about `k·ε·Σ|terms|`; the longest sums here (the network's conv1 weight gradient:
//! 10·26·26 = 6,760 terms, after four BatchNorm input gradients) give a few 10⁻¹³ of the
//! tensor's largest value in the worst case (measured: 2.5·10⁻¹³) and ≈ 10⁻¹⁵ typically.
//! 1e-10 leaves more than two orders of magnitude of room, while any real error — a wrong index, a
//! missing term, a transposed gradient, a convention that differs (biased variance, momentum
//! form) — is off by 10⁻³ or more; the twin tests show a change of 10⁻⁶ is rejected.
//! Relative to the tensor's largest value, not to each entry: an entry that is the
//! difference of large terms (a gradient near 0) has no meaningful relative error.
//!
//! Each test prints its worst relative disagreement per tensor (`cargo test --release --test
//! cnn_torch_oracle -- --nocapture`).
use gradspec::cnn::avgpool::{avgpool_backward, avgpool_forward};
use gradspec::cnn::batchnorm::{
    BatchNorm, Running, bn_backward_input, bn_backward_params, bn_batch_stats, bn_forward_train,
    bn_partial_sums, bn_running_update,
};
use gradspec::cnn::conv::{
    ConvParams, ConvShape, conv_backward_bias, conv_backward_input, conv_backward_weight,
    conv_forward,
};
use gradspec::cnn::linear::{
    Linear, linear_backward_bias, linear_backward_input, linear_backward_weight, linear_forward,
};
use gradspec::cnn::loss::{logsoftmax_backward, logsoftmax_forward, nll_backward, nll_forward};
use gradspec::cnn::maxpool::{maxpool_backward, maxpool_forward};
use gradspec::cnn::net::{Conv1, Conv2, Conv3, Conv4, Conv5, Conv6, Conv7};
use gradspec::cnn::pool::Pool;
use gradspec::cnn::relu::{relu_backward, relu_forward};
use gradspec::cnn::tensor::{View, ViewMut};
use gradspec::cnn::{Buffers, Mode, Net, Params, Workspace};
use gradspec::train::sgd::sgd_momentum;
use nalgebra::{SMatrix, SVector};
use safetensors::{Dtype, SafeTensors};
use std::collections::HashMap;

/// The `TORCH` tolerance: `|a − r| ≤ TORCH_RTOL · max|r|` over each tensor (see the file doc).
const TORCH_RTOL: f64 = 1e-10;

/// One fixture file: its bytes and its metadata.
struct Fixture {
    name: &'static str,
    bytes: Vec<u8>,
    meta: HashMap<String, String>,
}

impl Fixture {
    fn open(name: &'static str) -> Fixture {
        let path = format!("{}/tests/fixtures/torch/{name}", env!("CARGO_MANIFEST_DIR"));
        let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
        let (_, header) = SafeTensors::read_metadata(&bytes).expect("a safetensors file");
        let meta = header.metadata().clone().unwrap_or_default();
        assert!(
            meta.get("torch_version").is_some_and(|v| !v.is_empty()),
            "{name}: no torch_version in the metadata"
        );
        Fixture { name, bytes, meta }
    }

    fn raw(&self, tensor: &str, dtype: Dtype) -> (Vec<usize>, Vec<u8>) {
        let st = SafeTensors::deserialize(&self.bytes).expect("a safetensors file");
        let t = st
            .tensor(tensor)
            .unwrap_or_else(|e| panic!("{}: tensor '{tensor}': {e}", self.name));
        assert_eq!(t.dtype(), dtype, "{}: tensor '{tensor}'", self.name);
        (t.shape().to_vec(), t.data().to_vec())
    }

    /// An F64 tensor's data (row-major).
    fn f64(&self, tensor: &str) -> Vec<f64> {
        let (_, data) = self.raw(tensor, Dtype::F64);
        data.chunks_exact(8)
            .map(|b| f64::from_le_bytes(b.try_into().unwrap()))
            .collect()
    }

    /// An F64 tensor, checking its shape.
    fn f64_shaped(&self, tensor: &str, shape: &[usize]) -> Vec<f64> {
        let (s, _) = self.raw(tensor, Dtype::F64);
        assert_eq!(s, shape, "{}: tensor '{tensor}' shape", self.name);
        self.f64(tensor)
    }

    /// An I64 tensor's data.
    fn i64(&self, tensor: &str) -> Vec<i64> {
        let (_, data) = self.raw(tensor, Dtype::I64);
        data.chunks_exact(8)
            .map(|b| i64::from_le_bytes(b.try_into().unwrap()))
            .collect()
    }

    /// A generated input: the metadata entry `gen.NAME = "TAG LO SPAN N"` (see [`generate`]).
    fn input(&self, name: &str) -> Vec<f64> {
        let spec = self
            .meta
            .get(&format!("gen.{name}"))
            .unwrap_or_else(|| panic!("{}: no metadata gen.{name}", self.name));
        let f: Vec<&str> = spec.split_whitespace().collect();
        assert_eq!(f.len(), 4, "gen.{name} = {spec:?}");
        generate(
            f[0].parse().unwrap(),
            f[1].parse().unwrap(),
            f[2].parse().unwrap(),
            f[3].parse().unwrap(),
        )
    }
}

/// SplitMix64's output function.
fn splitmix64(z: u64) -> u64 {
    let mut z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The fixture script's input generator: `n` values `lo + span·k/2²⁰`, `k` the top 20 bits of
/// `splitmix64((tag << 32) | i)`. With `lo` and `span` powers of two every value is exact, so
/// Python and Rust produce the same bits.
fn generate(tag: u64, lo: f64, span: f64, n: usize) -> Vec<f64> {
    (0..n as u64)
        .map(|i| lo + span * ((splitmix64((tag << 32) | i) >> 44) as f64 / 1_048_576.0))
        .collect()
}

/// `max|a − r| / max|r|`, or an error when it exceeds [`TORCH_RTOL`] (or a value is NaN, or
/// the lengths differ).
fn rel_diff(what: &str, got: &[f64], want: &[f64]) -> Result<f64, String> {
    if got.len() != want.len() {
        return Err(format!(
            "{what}: {} values, torch has {}",
            got.len(),
            want.len()
        ));
    }
    let scale = want.iter().fold(0.0f64, |m, v| m.max(v.abs()));
    let (mut worst, mut at) = (0.0f64, 0);
    for (i, (a, r)) in got.iter().zip(want).enumerate() {
        let d = (a - r).abs();
        if d.is_nan() {
            return Err(format!("{what}[{i}]: gradspec {a} vs torch {r}"));
        }
        if d > worst {
            (worst, at) = (d, i);
        }
    }
    let rel = if scale > 0.0 { worst / scale } else { worst };
    if rel > TORCH_RTOL {
        return Err(format!(
            "{what}[{at}]: gradspec {:.17e} vs torch {:.17e}: |diff| = {worst:.3e} = {rel:.3e} of \
             max|torch| {scale:.3e}, allowed {TORCH_RTOL:e}",
            got[at], want[at]
        ));
    }
    Ok(rel)
}

/// Worst relative disagreements of one test, printed as a table at the end.
#[derive(Default)]
struct Worst(Vec<(String, f64)>);

impl Worst {
    fn check(&mut self, what: &str, got: &[f64], want: &[f64]) {
        match rel_diff(what, got, want) {
            Ok(r) => self.0.push((what.to_string(), r)),
            Err(e) => panic!("disagrees with torch: {e}"),
        }
    }
    fn print(&self, test: &str) -> f64 {
        let worst = self.0.iter().fold(0.0f64, |m, (_, r)| m.max(*r));
        let parts: Vec<String> = self.0.iter().map(|(n, r)| format!("{n} {r:.1e}")).collect();
        eprintln!(
            "[torch oracle] {test}: worst relative disagreement {worst:.2e} ({})",
            parts.join(", ")
        );
        worst
    }
}

// ---------------------------------------------------------------------------------------------
// Convolutions at the network's seven shapes
// ---------------------------------------------------------------------------------------------

/// Runs gradspec's four convolution functions on the fixture's generated `x`, `w`, `b`, `g`
/// of layer `name` and returns (y, dx, dw, db).
#[allow(clippy::type_complexity)]
fn conv_case<S: ConvShape>(fx: &Fixture, name: &str) -> (Vec<f64>, Vec<f64>, Vec<f64>, Vec<f64>) {
    let x = fx.input(&format!("{name}.x"));
    let g = fx.input(&format!("{name}.g"));
    let mut p = S::Params::<f64>::zeros();
    p.weight_mut()
        .copy_from_slice(&fx.input(&format!("{name}.w")));
    p.bias_mut()
        .copy_from_slice(&fx.input(&format!("{name}.b")));
    let n = x.len() / (S::CIN * S::H * S::W);
    assert_eq!(g.len(), n * S::COUT * S::OH * S::OW, "{name}: g shape");
    let mut col = vec![0.0; S::KK * S::OH * S::OW];
    let mut y = vec![0.0; g.len()];
    conv_forward::<f64, S>(&p, (&x[..]).into(), (&mut y[..]).into(), &mut col);
    let mut dx = vec![0.0; x.len()];
    conv_backward_input::<f64, S>(&p, (&g[..]).into(), (&mut dx[..]).into(), &mut col);
    let mut d = S::Params::<f64>::zeros();
    conv_backward_weight::<f64, S>((&g[..]).into(), (&x[..]).into(), &mut d, &mut col);
    conv_backward_bias::<f64, S>((&g[..]).into(), &mut d);
    (y, dx, d.weight().to_vec(), d.bias().to_vec())
}

fn check_conv(
    w: &mut Worst,
    fx: &Fixture,
    name: &str,
    r: (Vec<f64>, Vec<f64>, Vec<f64>, Vec<f64>),
) {
    w.check(&format!("{name}.y"), &r.0, &fx.f64(&format!("{name}.y")));
    w.check(&format!("{name}.dx"), &r.1, &fx.f64(&format!("{name}.dx")));
    w.check(&format!("{name}.dw"), &r.2, &fx.f64(&format!("{name}.dw")));
    w.check(&format!("{name}.db"), &r.3, &fx.f64(&format!("{name}.db")));
}

/// Verifies r[cnn.conv.forward] r[cnn.conv.backward_input] r[cnn.conv.backward_weight] r[cnn.conv.backward_bias] against PyTorch.
#[test]
fn conv_layers_agree_with_torch_at_the_network_shapes() {
    let fx = Fixture::open("conv.safetensors");
    let mut w = Worst::default();
    check_conv(&mut w, &fx, "conv1", conv_case::<Conv1>(&fx, "conv1"));
    check_conv(&mut w, &fx, "conv2", conv_case::<Conv2>(&fx, "conv2"));
    check_conv(&mut w, &fx, "conv3", conv_case::<Conv3>(&fx, "conv3"));
    check_conv(&mut w, &fx, "conv4", conv_case::<Conv4>(&fx, "conv4"));
    check_conv(&mut w, &fx, "conv5", conv_case::<Conv5>(&fx, "conv5"));
    check_conv(&mut w, &fx, "conv6", conv_case::<Conv6>(&fx, "conv6"));
    check_conv(&mut w, &fx, "conv7", conv_case::<Conv7>(&fx, "conv7"));
    w.print("conv1..conv7");
}

/// The comparison can fail: one weight-gradient entry of conv2 moved by 10⁻⁶ of the tensor's
/// largest value, and one forward value of conv7, are rejected.
#[test]
fn conv_comparison_rejects_a_perturbed_value() {
    let fx = Fixture::open("conv.safetensors");
    let (_, _, mut dw, _) = conv_case::<Conv2>(&fx, "conv2");
    let want = fx.f64("conv2.dw");
    assert!(rel_diff("conv2.dw", &dw, &want).is_ok());
    let scale = want.iter().fold(0.0f64, |m, v| m.max(v.abs()));
    dw[1234] += 1e-6 * scale;
    let err = rel_diff("conv2.dw", &dw, &want).expect_err("a 1e-6 change must be rejected");
    assert!(err.contains("conv2.dw[1234]"), "{err}");
    let (mut y, ..) = conv_case::<Conv7>(&fx, "conv7");
    let want = fx.f64("conv7.y");
    y[5] *= 1.0 + 1e-6;
    assert!(rel_diff("conv7.y", &y, &want).is_err());
}

// ---------------------------------------------------------------------------------------------
// BatchNorm, train mode, at the network's four shapes; running statistics
// ---------------------------------------------------------------------------------------------

fn bn_case<const C: usize, const H: usize, const W: usize>(
    w: &mut Worst,
    fx: &Fixture,
    name: &str,
) {
    let x = fx.input(&format!("{name}.x"));
    let g = fx.input(&format!("{name}.g"));
    let p = BatchNorm::<f64, C> {
        weight: SVector::from_column_slice(&fx.input(&format!("{name}.gamma"))),
        bias: SVector::from_column_slice(&fx.input(&format!("{name}.beta"))),
    };
    let m = x.len() / C;
    let (mut s1, mut s2) = ([0.0; C], [0.0; C]);
    bn_partial_sums(View::<f64, C, H, W>(&x), &mut s1, &mut s2);
    let (mean, var) = bn_batch_stats::<f64, C>(&s1, &s2, m);
    let mut xhat = vec![0.0; x.len()];
    let mut y = vec![0.0; x.len()];
    bn_forward_train(
        &p,
        &mean,
        &var,
        View::<f64, C, H, W>(&x),
        &mut xhat,
        ViewMut(&mut y),
    );
    let (mut dg, mut db) = (SVector::<f64, C>::zeros(), SVector::<f64, C>::zeros());
    bn_backward_params(View::<f64, C, H, W>(&g), &xhat, &mut dg, &mut db);
    let mut dx = g.clone();
    bn_backward_input(
        &p,
        &var,
        &dg,
        &db,
        m,
        &xhat,
        ViewMut::<f64, C, H, W>(&mut dx),
    );
    w.check(&format!("{name}.y"), &y, &fx.f64(&format!("{name}.y")));
    w.check(&format!("{name}.dx"), &dx, &fx.f64(&format!("{name}.dx")));
    w.check(
        &format!("{name}.dgamma"),
        dg.as_slice(),
        &fx.f64(&format!("{name}.dgamma")),
    );
    w.check(
        &format!("{name}.dbeta"),
        db.as_slice(),
        &fx.f64(&format!("{name}.dbeta")),
    );
}

/// Verifies r[cnn.bn.batch_stats] r[cnn.bn.forward_train] r[cnn.bn.backward_params] r[cnn.bn.backward_input] against PyTorch.
#[test]
fn batchnorm_train_mode_agrees_with_torch_at_the_network_shapes() {
    let fx = Fixture::open("batchnorm.safetensors");
    let mut w = Worst::default();
    bn_case::<16, 10, 10>(&mut w, &fx, "bn4");
    bn_case::<32, 8, 8>(&mut w, &fx, "bn5");
    w.print("BatchNorm2d(16) on 10x10 (bn4), BatchNorm2d(32) on 8x8 (bn5), train mode");
}

/// Three train-mode passes of `BatchNorm2d(32)` on 8×8 (batches of 2, 3, 2 images) from
/// non-default running values: `running_mean`, `running_var`, `num_batches_tracked` after each.
///
/// Verifies r[cnn.bn.running_update] against PyTorch.
#[test]
fn batchnorm_running_statistics_agree_with_torch_after_three_passes() {
    let fx = Fixture::open("batchnorm.safetensors");
    let mut w = Worst::default();
    let mut r = Running::<f64, 32> {
        mean: SVector::from_column_slice(&fx.input("running.mean0")),
        var: SVector::from_column_slice(&fx.input("running.var0")),
        num_batches_tracked: 0,
    };
    for step in 1..=3 {
        let x = fx.input(&format!("running.x{step}"));
        let (mut s1, mut s2) = ([0.0; 32], [0.0; 32]);
        bn_partial_sums(View::<f64, 32, 8, 8>(&x), &mut s1, &mut s2);
        let m = x.len() / 32;
        let (mean, var) = bn_batch_stats::<f64, 32>(&s1, &s2, m);
        bn_running_update(&mut r, &mean, &var, m);
        w.check(
            &format!("running_mean{step}"),
            r.mean.as_slice(),
            &fx.f64(&format!("running.mean{step}")),
        );
        w.check(
            &format!("running_var{step}"),
            r.var.as_slice(),
            &fx.f64(&format!("running.var{step}")),
        );
        assert_eq!(
            [r.num_batches_tracked],
            fx.i64(&format!("running.num_batches_tracked{step}"))[..]
        );
    }
    w.print("BatchNorm running statistics");
}

// ---------------------------------------------------------------------------------------------
// ReLU, pooling
// ---------------------------------------------------------------------------------------------

/// ReLU with exact zeros in the input, where both take the derivative as 0.
///
/// Verifies r[cnn.relu.forward] r[cnn.relu.backward] against PyTorch.
#[test]
fn relu_agrees_with_torch() {
    let fx = Fixture::open("relu_pool.safetensors");
    let mut x = fx.input("relu.x");
    let every: usize = fx.meta["zero.relu.x"].parse().unwrap();
    for v in x.iter_mut().step_by(every) {
        *v = 0.0;
    }
    let g = fx.input("relu.g");
    relu_forward(&mut x);
    let mut dx = g.clone();
    relu_backward(&x, &mut dx);
    let mut w = Worst::default();
    w.check("relu.y", &x, &fx.f64("relu.y"));
    w.check("relu.dx", &dx, &fx.f64("relu.dx"));
    w.print("relu");
}

fn maxpool_case<
    const C: usize,
    const H: usize,
    const W: usize,
    const OH: usize,
    const OW: usize,
>(
    w: &mut Worst,
    fx: &Fixture,
    name: &str,
) {
    let x = fx.input(&format!("{name}.x"));
    let g = fx.input(&format!("{name}.g"));
    let mut y = vec![0.0; g.len()];
    let mut arg = vec![0u8; g.len()];
    maxpool_forward::<f64, Pool<C, H, W, OH, OW>>(View(&x), ViewMut(&mut y), &mut arg);
    let mut dx = vec![0.0; x.len()];
    maxpool_backward::<f64, Pool<C, H, W, OH, OW>>(View(&g), &arg, ViewMut(&mut dx));
    w.check(&format!("{name}.y"), &y, &fx.f64(&format!("{name}.y")));
    w.check(&format!("{name}.dx"), &dx, &fx.f64(&format!("{name}.dx")));
    assert_eq!(
        winners::<W, OH, OW>(&arg),
        fx.i64(&format!("{name}.indices")),
        "{name}: winners"
    );
}

/// gradspec's winner codes (0–3 within a window, row-major) as torch's `return_indices`
/// (flat index within the input plane).
fn winners<const W: usize, const OH: usize, const OW: usize>(arg: &[u8]) -> Vec<i64> {
    arg.iter()
        .enumerate()
        .map(|(j, &a)| {
            let within = j % (OH * OW);
            let (oy, ox, a) = (within / OW, within % OW, a as usize);
            ((2 * oy + a / 2) * W + 2 * ox + a % 2) as i64
        })
        .collect()
}

/// Verifies r[cnn.maxpool.forward] r[cnn.maxpool.backward] r[cnn.avgpool.forward] r[cnn.avgpool.backward] against PyTorch at the network's shapes.
#[test]
fn pooling_agrees_with_torch() {
    let fx = Fixture::open("relu_pool.safetensors");
    let mut w = Worst::default();
    maxpool_case::<8, 24, 24, 12, 12>(&mut w, &fx, "pool1");
    maxpool_case::<16, 8, 8, 4, 4>(&mut w, &fx, "pool2");
    let x = fx.input("avgpool.x");
    let g = fx.input("avgpool.g");
    let mut y = vec![0.0; g.len()];
    avgpool_forward::<f64, Pool<32, 2, 2, 1, 1>>(View(&x), ViewMut(&mut y));
    let mut dx = vec![0.0; x.len()];
    avgpool_backward::<f64, Pool<32, 2, 2, 1, 1>>(View(&g), ViewMut(&mut dx));
    w.check("avgpool.y", &y, &fx.f64("avgpool.y"));
    w.check("avgpool.dx", &dx, &fx.f64("avgpool.dx"));
    w.print("max-pool (pool1, pool2), avg-pool");
}

/// Max-pool ties and NaN, one 2×2 window each (the list is in the fixture's metadata
/// `windows`). gradspec's rule (spec/cnn.md, "Max-pool ties"): scan row-major, a later value
/// wins only if strictly greater, a NaN always wins. PyTorch's CPU kernel does
/// `if (val > maxval || isnan(val))` from `maxval = −∞` with the first index: the same rule, so
/// for two NaNs in one window both pick the **last** NaN. Compared bit for bit: the value
/// (NaN, ±0, ±∞ included), the winner's index and where the gradient goes.
///
/// Verifies r[cnn.maxpool.forward] r[cnn.maxpool.backward] against PyTorch at ties and NaN.
#[test]
fn maxpool_ties_and_nan_agree_with_torch() {
    let fx = Fixture::open("maxpool_ties.safetensors");
    const K: usize = 16;
    let x = fx.f64_shaped("x", &[1, 1, 2, 2 * K]);
    let names: Vec<&str> = fx.meta["windows"].split("; ").collect();
    assert_eq!(names.len(), K);
    let mut y = vec![0.0; K];
    let mut arg = vec![0u8; K];
    maxpool_forward::<f64, Pool<1, 2, 32, 1, 16>>(View(&x), ViewMut(&mut y), &mut arg);
    let g: Vec<f64> = (1..=K).map(|j| j as f64).collect();
    let mut dx = vec![0.0; x.len()];
    maxpool_backward::<f64, Pool<1, 2, 32, 1, 16>>(View(&g), &arg, ViewMut(&mut dx));
    let (ty, tidx, tdx) = (fx.f64("y"), fx.i64("indices"), fx.f64("dx"));
    let ours = winners::<32, 1, 16>(&arg);
    for j in 0..K {
        let torch_win = (tidx[j] as usize / 32, tidx[j] as usize % 32 - 2 * j);
        eprintln!(
            "[torch oracle] max-pool window {:<24} torch y = {:<5} winner {:?}; gradspec y = {:<5} winner {:?}",
            names[j],
            ty[j],
            torch_win,
            y[j],
            (arg[j] / 2, arg[j] % 2)
        );
        assert_eq!(
            y[j].to_bits(),
            ty[j].to_bits(),
            "window '{}': value",
            names[j]
        );
        assert_eq!(ours[j], tidx[j], "window '{}': winner", names[j]);
    }
    assert_eq!(dx, tdx, "where the gradient goes");
}

/// ReLU at NaN, ±0 and ±∞. The forward agrees (NaN stays NaN, as r[cnn.relu.forward] says).
/// The backward agrees everywhere **except at NaN**: torch's `threshold_backward` zeroes the
/// gradient where `y <= 0`, which is false for NaN, so it passes the gradient through a NaN;
/// gradspec's r[cnn.relu.backward] passes it where `y > 0`, also false for NaN, so it blocks
/// it. The difference only matters once a run has already diverged, and spec/cnn.md states
/// gradspec's rule; this test asserts agreement where gradspec claims it and pins the known
/// difference so that a change of either side is noticed.
///
/// Verifies r[cnn.relu.forward] r[cnn.relu.backward] against PyTorch at NaN, ±0 and ±∞.
#[test]
fn relu_at_nan_and_infinities_compared_with_torch() {
    let fx = Fixture::open("maxpool_ties.safetensors");
    let mut x = fx.f64("relu.x");
    let (ty, tdx) = (fx.f64("relu.y"), fx.f64("relu.dx"));
    relu_forward(&mut x);
    let mut dx = vec![1.0; x.len()];
    relu_backward(&x, &mut dx);
    for i in 0..x.len() {
        assert_eq!(x[i].to_bits(), ty[i].to_bits(), "relu forward at entry {i}");
        if ty[i].is_nan() {
            eprintln!(
                "[torch oracle] relu backward at NaN: torch passes {}, gradspec passes {} (known, documented difference)",
                tdx[i], dx[i]
            );
            assert_eq!((tdx[i], dx[i]), (1.0, 0.0));
        } else {
            assert_eq!(dx[i], tdx[i], "relu backward at input {}", ty[i]);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Linear, log-softmax, NLL
// ---------------------------------------------------------------------------------------------

/// Verifies r[cnn.linear.forward] r[cnn.linear.backward_input] r[cnn.linear.backward_weight] r[cnn.linear.backward_bias] against PyTorch.
#[test]
fn linear_agrees_with_torch() {
    let fx = Fixture::open("linear_loss.safetensors");
    let x = fx.input("fc.x");
    let g = fx.input("fc.g");
    let p = Linear::<f64, 32, 10> {
        weight: SMatrix::from_column_slice(&fx.input("fc.w")),
        bias: SVector::from_column_slice(&fx.input("fc.b")),
    };
    let mut y = vec![0.0; g.len()];
    linear_forward(
        &p,
        View::<f64, 32, 1, 1>(&x),
        ViewMut::<f64, 10, 1, 1>(&mut y),
    );
    let mut dx = vec![0.0; x.len()];
    linear_backward_input(
        &p,
        View::<f64, 10, 1, 1>(&g),
        ViewMut::<f64, 32, 1, 1>(&mut dx),
    );
    let mut d = Linear::<f64, 32, 10>::zeros();
    linear_backward_weight(
        View::<f64, 10, 1, 1>(&g),
        View::<f64, 32, 1, 1>(&x),
        &mut d.weight,
    );
    linear_backward_bias(View::<f64, 10, 1, 1>(&g), &mut d.bias);
    let mut w = Worst::default();
    w.check("fc.y", &y, &fx.f64("fc.y"));
    w.check("fc.dx", &dx, &fx.f64("fc.dx"));
    w.check("fc.dw", d.weight.as_slice(), &fx.f64("fc.dw"));
    w.check("fc.db", d.bias.as_slice(), &fx.f64("fc.db"));
    w.print("fc1 (Linear 32 -> 10)");
}

/// Log-softmax with a random upstream gradient, and NLL (mean) composed with it, on ordinary,
/// large (offsets ±1000 and 4096) and widely spread logits. Each row of `logp` and of the
/// log-softmax `dz` is compared as its own tensor (stricter: a row of small log-probabilities
/// is not judged against another row's large ones); NLL's `dz` is judged as one tensor (see
/// the comment on its near-certain row).
///
/// Verifies r[cnn.logsoftmax.forward] r[cnn.logsoftmax.backward] r[cnn.nll.forward] r[cnn.nll.backward] against PyTorch.
#[test]
fn logsoftmax_and_nll_agree_with_torch_including_large_logits() {
    let fx = Fixture::open("linear_loss.safetensors");
    let z = fx.f64_shaped("ls.z", &[6, 10]);
    let g = fx.input("ls.g");
    let mut logp = vec![0.0; z.len()];
    logsoftmax_forward::<f64, 10>(&z, &mut logp);
    let mut dz = vec![0.0; z.len()];
    logsoftmax_backward::<f64, 10>(&logp, &g, &mut dz);
    let labels: Vec<u8> = fx.i64("nll.labels").iter().map(|&v| v as u8).collect();
    let loss = nll_forward::<f64, 10>(&logp, &labels);
    let mut dlogp = vec![0.0; z.len()];
    nll_backward::<f64, 10>(&labels, labels.len(), &mut dlogp);
    let mut dz_nll = vec![0.0; z.len()];
    logsoftmax_backward::<f64, 10>(&logp, &dlogp, &mut dz_nll);
    let (tl, tdz, tnll) = (fx.f64("ls.logp"), fx.f64("ls.dz"), fx.f64("nll.dz"));
    let mut w = Worst::default();
    for r in 0..6 {
        let s = r * 10..(r + 1) * 10;
        w.check(&format!("logp[{r}]"), &logp[s.clone()], &tl[s.clone()]);
        w.check(&format!("dz[{r}]"), &dz[s.clone()], &tdz[s]);
    }
    w.check("nll.dz", &dz_nll, &tnll);
    w.check("nll.loss", &[loss], &fx.f64("nll.loss"));
    w.print("log_softmax, NLL");
    // Row by row, NLL's dz of a near-certain row is itself a cancellation, (p − 1)/N with
    // 1 − p ≈ 2·10⁻¹²: gradspec forms ℓ = z − (M + ln Σ) (loss.rs), which rounds ℓ to the ulp of
    // M (≈ 6·10⁻¹⁴ for M ≈ 381), while torch forms (z − M) − ln Σ, exact for the top class. So
    // that row's tiny gradient differs by about 1% of itself — 3·10⁻¹⁴ of the tensor's scale,
    // which is what the check above judges. Printed, not asserted.
    for r in 0..6 {
        let s = r * 10..(r + 1) * 10;
        let scale = tnll[s.clone()].iter().fold(0.0f64, |m, v| m.max(v.abs()));
        let d = dz_nll[s.clone()]
            .iter()
            .zip(&tnll[s])
            .fold(0.0f64, |m, (a, b)| m.max((a - b).abs()));
        eprintln!(
            "[torch oracle] nll.dz row {r}: max|diff| {d:.2e} = {:.2e} of the row's own max {scale:.2e}",
            d / scale
        );
    }
}

// ---------------------------------------------------------------------------------------------
// SGD with momentum
// ---------------------------------------------------------------------------------------------

fn params_from(f: impl Fn(&str) -> Vec<f64>) -> Params<f64> {
    let mut p = Params::<f64>::zeros();
    for t in p.tensors_mut() {
        let v = f(t.name);
        assert_eq!(v.len(), t.data.len(), "{}", t.name);
        t.data.copy_from_slice(&v);
    }
    p
}

/// Three steps of gradspec's SGD from the fixture's parameters and gradient sequence.
fn sgd_three_steps(fx: &Fixture, lr: f64, mu: f64) -> (Params<f64>, Params<f64>) {
    let mut theta = params_from(|n| fx.input(&format!("theta0.{n}")));
    let mut v = Params::<f64>::zeros();
    for step in 1..=3 {
        let g = params_from(|n| fx.input(&format!("grad{step}.{n}")));
        sgd_momentum(&mut theta, &mut v, &g, lr, mu);
    }
    (theta, v)
}

/// `torch.optim.SGD(lr=0.05, momentum=0.9)`: all 24 parameter tensors after three steps from
/// generated parameters and gradients, and the momentum buffers of three layers (gradspec's
/// velocity is torch's `momentum_buffer`).
///
/// Verifies r[cnn.sgd.momentum] against PyTorch.
#[test]
fn sgd_momentum_agrees_with_torch_over_three_steps() {
    let fx = Fixture::open("sgd.safetensors");
    let lr: f64 = fx.meta["lr"].parse().unwrap();
    let mu: f64 = fx.meta["momentum"].parse().unwrap();
    assert_eq!((lr, mu), (0.05, 0.9));
    let (theta, v) = sgd_three_steps(&fx, lr, mu);
    let mut w = Worst::default();
    for (t, m) in theta.tensors().iter().zip(v.tensors()) {
        w.check(
            &format!("theta3.{}", t.name),
            t.data,
            &fx.f64(&format!("theta3.{}", t.name)),
        );
        // torch's momentum buffers are stored for three layers (bn1, conv6, fc1)
        if ["bn1.", "conv6.", "fc1."]
            .iter()
            .any(|l| t.name.starts_with(l))
        {
            let name = format!("momentum3.{}", m.name);
            w.check(&name, m.data, &fx.f64(&name));
        }
    }
    w.print("SGD with momentum, 3 steps (24 parameter tensors, 6 momentum buffers)");
}

/// The SGD comparison can fail: a momentum of 0.9 + 10⁻⁶ is rejected.
#[test]
fn sgd_comparison_rejects_another_momentum() {
    let fx = Fixture::open("sgd.safetensors");
    let (theta, _) = sgd_three_steps(&fx, 0.05, 0.9 + 1e-6);
    let bad = theta
        .tensors()
        .iter()
        .any(|t| rel_diff(t.name, t.data, &fx.f64(&format!("theta3.{}", t.name))).is_err());
    assert!(bad, "a momentum off by 1e-6 went unnoticed");
}

// ---------------------------------------------------------------------------------------------
// The whole network
// ---------------------------------------------------------------------------------------------

/// `Net<f64>` with the fixture's weights and BatchNorm buffers (a copy by state_dict name).
fn fixture_net(fx: &Fixture) -> Net<f64> {
    let mut params = Params::<f64>::zeros();
    for t in params.tensors_mut() {
        let v = fx.f64_shaped(t.name, &t.shape);
        t.data.copy_from_slice(&v);
    }
    let mut buffers = Buffers::<f64>::new();
    for (prefix, mean, var, count) in buffers.tensors_mut() {
        mean.copy_from_slice(&fx.f64(&format!("{prefix}.running_mean")));
        var.copy_from_slice(&fx.f64(&format!("{prefix}.running_var")));
        *count = fx.i64(&format!("{prefix}.num_batches_tracked"))[0];
    }
    Net {
        params: Box::new(params),
        buffers: Box::new(buffers),
    }
}

/// Loss, log-probabilities and gradients of the fixture batch (10 real test images, so both a
/// full chunk of 8 and a partial chunk of 2), train mode, dropout off.
fn net_grads(fx: &Fixture, net: &mut Net<f64>) -> (f64, Vec<f64>, Params<f64>) {
    let x = fx.f64_shaped("x", &[10, 1, 28, 28]);
    let labels: Vec<u8> = fx.i64("labels").iter().map(|&v| v as u8).collect();
    let mut ws = Workspace::<f64>::new(labels.len());
    ws.load(&x, &labels);
    let out = net.forward(&mut ws, Mode::Train { dropout: None });
    let mut g = Params::<f64>::zeros();
    net.backward(&mut ws, &mut g);
    (out.loss, ws.log_probs(), g)
}

/// The whole network against PyTorch: the mean NLL, the log-probabilities and **every** entry
/// of all 24 gradient tensors (16,562 values), BatchNorm in training mode with batch
/// statistics, dropout off (`Mode::Train { dropout: None }`; the torch module's dropouts are in
/// eval mode). Then two more train-mode passes (images 0..4, then 4..7 of the batch) and all
/// BatchNorm buffers.
///
/// Verifies r[cnn.conv.forward] r[cnn.conv.backward_input] r[cnn.conv.backward_weight] r[cnn.conv.backward_bias] r[cnn.relu.forward] r[cnn.relu.backward] r[cnn.bn.batch_stats] r[cnn.bn.forward_train] r[cnn.bn.running_update] r[cnn.bn.backward_params] r[cnn.bn.backward_input] r[cnn.maxpool.forward] r[cnn.maxpool.backward] r[cnn.avgpool.forward] r[cnn.avgpool.backward] r[cnn.linear.forward] r[cnn.linear.backward_input] r[cnn.linear.backward_weight] r[cnn.linear.backward_bias] r[cnn.logsoftmax.forward] r[cnn.logsoftmax.backward] r[cnn.nll.forward] r[cnn.nll.backward] against PyTorch, composed.
#[test]
fn whole_network_loss_and_every_gradient_agree_with_torch() {
    let fx = Fixture::open("net.safetensors");
    let mut net = fixture_net(&fx);
    let (loss, logp, g) = net_grads(&fx, &mut net);
    let mut w = Worst::default();
    w.check("loss", &[loss], &fx.f64("loss"));
    w.check("logp", &logp, &fx.f64("logp"));
    let mut per_layer: Vec<(String, f64)> = Vec::new();
    for t in g.tensors() {
        let name = format!("grad.{}", t.name);
        w.check(&name, t.data, &fx.f64_shaped(&name, &t.shape));
    }
    for (name, r) in &w.0 {
        if let Some(layer) = name.strip_prefix("grad.").and_then(|n| n.split('.').next()) {
            match per_layer.iter_mut().find(|(l, _)| l == layer) {
                Some(e) => e.1 = e.1.max(*r),
                None => per_layer.push((layer.to_string(), *r)),
            }
        }
    }
    w.print("whole network (loss, logp, 24 gradient tensors)");
    let parts: Vec<String> = per_layer
        .iter()
        .map(|(l, r)| format!("{l} {r:.1e}"))
        .collect();
    eprintln!(
        "[torch oracle] whole-network gradients, worst per layer: {}",
        parts.join(", ")
    );

    // Two more train-mode passes (the first already updated the buffers once).
    let mut b = Worst::default();
    let x = fx.f64("x");
    for (start, end) in [(0, 4), (4, 7)] {
        let n = end - start;
        let mut ws = Workspace::<f64>::new(n);
        ws.load(&x[start * 784..end * 784], &vec![0u8; n]);
        net.forward(&mut ws, Mode::Train { dropout: None });
    }
    for (prefix, mean, var, count) in net.buffers.tensors() {
        b.check(
            &format!("{prefix}.running_mean"),
            mean,
            &fx.f64(&format!("after3.{prefix}.running_mean")),
        );
        b.check(
            &format!("{prefix}.running_var"),
            var,
            &fx.f64(&format!("after3.{prefix}.running_var")),
        );
        let want = fx.i64(&format!("after3.{prefix}.num_batches_tracked"))[0];
        assert_eq!(count, want, "{prefix}.num_batches_tracked");
    }
    b.print("whole network, BatchNorm buffers after 3 passes");
}

/// The whole network in evaluation mode, with the running statistics of the three train-mode
/// passes above: the log-probabilities of the 10 images (dropout is the identity there).
///
/// Verifies r[cnn.bn.forward_eval] against PyTorch.
#[test]
fn whole_network_eval_mode_agrees_with_torch() {
    let fx = Fixture::open("net.safetensors");
    let mut net = fixture_net(&fx);
    for (prefix, mean, var, count) in net.buffers.tensors_mut() {
        mean.copy_from_slice(&fx.f64(&format!("after3.{prefix}.running_mean")));
        var.copy_from_slice(&fx.f64(&format!("after3.{prefix}.running_var")));
        *count = fx.i64(&format!("after3.{prefix}.num_batches_tracked"))[0];
    }
    let x = fx.f64("x");
    let labels: Vec<u8> = fx.i64("labels").iter().map(|&v| v as u8).collect();
    let mut ws = Workspace::<f64>::new(labels.len());
    ws.load(&x, &labels);
    let before = net.buffers.clone();
    net.forward(&mut ws, Mode::Eval);
    assert_eq!(
        net.buffers, before,
        "evaluation leaves the running statistics alone"
    );
    let mut w = Worst::default();
    w.check("eval logp", &ws.log_probs(), &fx.f64("after3.eval_logp"));
    w.print("whole network, eval mode");
}

/// The whole-network comparison can fail: one entry of conv1's weight gradient (the end of
/// the longest chain) moved by 10⁻⁶ of the tensor's largest value is rejected.
#[test]
fn whole_network_comparison_rejects_a_perturbed_gradient() {
    let fx = Fixture::open("net.safetensors");
    let mut net = fixture_net(&fx);
    let (_, _, mut g) = net_grads(&fx, &mut net);
    let want = fx.f64("grad.conv1.weight");
    let scale = want.iter().fold(0.0f64, |m, v| m.max(v.abs()));
    g.conv1.weight[(4, 7)] += 1e-6 * scale;
    assert!(rel_diff("grad.conv1.weight", g.conv1.weight.as_slice(), &want).is_err());
}
