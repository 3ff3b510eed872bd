//! The direct convolution kernels of `kernels::conv` against the generic im2col + GEMM
//! convolution of `cnn::conv`, run in f64 as the reference, at every shape of the network and
//! at odd shapes that exercise the tile tails (channel counts not a multiple of 8, widths that
//! leave a partial last vector, K = 1, 2, 5).
//!
//! # Tolerance
//! Each output is a sum of `N` products of f32 numbers (plus a bias or the accumulated initial
//! value). The inputs are f32, so in f64 the products are exact and the f64 sum is exact to
//! ~N·2⁻⁵³ relative, far below f32 rounding: the f64 result is the exact value. Any f32
//! evaluation of such a sum, in any order, with or without FMA, satisfies
//! `|computed − exact| ≤ γ_N · Σ|terms|`, `γ_N = N·u/(1 − N·u)`, `u = 2⁻²⁴` (Higham,
//! *Accuracy and Stability of Numerical Algorithms*, §3.1 and §4.2), with `N` the number of
//! terms plus one for the product rounding. `Σ|terms|` is computed by running the same
//! reference convolution on absolute values. This bound is rigorous, so the test never fails
//! for a correct kernel; the printed ratios show that correct kernels use well under 1% of it,
//! while the mutant tests show that a single wrong input (at the masked tail of the image,
//! the spot most likely to be mishandled) is far outside it.
//!
//! # Every instruction set
//! The kernels are written once over the 16-lane vectors of `kernels::simd` and run on an
//! `cpu::Isa`: AVX-512, AVX2+FMA, NEON or plain Rust (`Scalar`). Every test runs on every
//! instruction set this CPU has (`cpu::isas_hardware`, whatever `GRADSPEC_SIMD` or
//! `GRADSPEC_NO_AVX512` choose for the network), so the scalar build runs everywhere, and each
//! is held to the bound above. On top of the bound, the instruction sets must agree **bit for
//! bit** with each other: every operation is lane-wise with one rounding (a fused FMA on every
//! one of them) and the cross-lane sums follow the same fixed trees, so any difference is a
//! bug, not rounding. With `GRADSPEC_REQUIRE_AVX512` set, a CPU without AVX-512 fails the
//! tests instead of testing only the narrower builds.
use gradspec::cnn::Float;
use gradspec::cnn::conv::{
    Conv, ConvParams, ConvShape, Shape, conv_backward_bias, conv_backward_input,
    conv_backward_weight, conv_forward,
};
use gradspec::cnn::net::{Conv1, Conv2, Conv3, Conv4, Conv5, Conv6, Conv7};
use gradspec::cnn::tensor::{View, ViewMut};
use gradspec::kernels;
use gradspec::kernels::conv::{
    image_scratch_len, scratch_len, scratch_len_of, try_conv_backward_bias,
    try_conv_backward_input, try_conv_backward_weight, try_conv_forward, weight_group_len,
    wide_vectors,
};
use gradspec::kernels::cpu::{self, Isa};
use gradspec::kernels::simd::{self, Kernel, Simd};
use rand::{Rng, SeedableRng};

/// Every instruction set the kernels can run on here, widest first, `Scalar` last. With
/// `GRADSPEC_REQUIRE_AVX512` set (as `.ci/run` does on an AVX-512 machine) a missing AVX-512
/// panics.
fn isas() -> Vec<Isa> {
    cpu::require_avx512_if_asked();
    let v = cpu::isas_hardware();
    println!(
        "instruction sets: {:?}",
        v.iter().map(|i| i.name()).collect::<Vec<_>>()
    );
    v
}

/// Runs `f` and checks that it panics with a message containing `expected`.
fn assert_panics(expected: &str, f: impl FnOnce() + std::panic::UnwindSafe) {
    let err = std::panic::catch_unwind(f).expect_err("no panic");
    let msg = err
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| err.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_default();
    assert!(msg.contains(expected), "panic message {msg:?}");
}

fn seeded(n: usize, seed: u64) -> Vec<f32> {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    (0..n).map(|_| rng.random_range(-1.0..1.0)).collect()
}

fn f64s(v: &[f32]) -> Vec<f64> {
    v.iter().map(|&a| f64::from(a)).collect()
}

fn abs(v: &[f64]) -> Vec<f64> {
    v.iter().map(|a| a.abs()).collect()
}

/// `γ_N` for f32 (see the module docs).
fn gamma(n: usize) -> f64 {
    let nu = n as f64 * f64::from(f32::EPSILON) / 2.0;
    nu / (1.0 - nu)
}

/// The worst `|got − exact| / (γ_N·scale)` over all elements; ≤ 1 passes.
fn worst_ratio(got: &[f32], exact: &[f64], scale: &[f64], n_terms: usize) -> f64 {
    assert_eq!(got.len(), exact.len());
    assert_eq!(got.len(), scale.len());
    let g = gamma(n_terms + 1);
    got.iter()
        .zip(exact)
        .zip(scale)
        .map(|((&a, &e), &s)| {
            let err = (f64::from(a) - e).abs();
            if err == 0.0 { 0.0 } else { err / (g * s) }
        })
        .fold(0.0, f64::max)
}

fn conv_of<T: gradspec::cnn::Float, S: ConvShape>(w: &[T], b: &[T]) -> S::Params<T> {
    let mut p = S::Params::<T>::zeros();
    p.weight_mut().copy_from_slice(w);
    p.bias_mut().copy_from_slice(b);
    p
}

/// What to corrupt in the input of the SIMD side only, to show that the comparison fails.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Mutant {
    None,
    /// The last input element (`x` for forward and weight gradient, `dy` for input
    /// gradient) += 1: the bottom-right corner, reached only through the masked last vector.
    LastInput,
    /// The last weight (`W[COUT−1, CIN−1, K−1, K−1]`) += 0.5.
    LastWeight,
}

/// Worst ratios of (forward, input gradient, weight gradient, bias gradient).
#[derive(Debug)]
struct Ratios {
    fwd: f64,
    bwd_input: f64,
    bwd_weight: f64,
    bwd_bias: f64,
}

impl Ratios {
    fn all_pass(&self) -> bool {
        self.fwd <= 1.0 && self.bwd_input <= 1.0 && self.bwd_weight <= 1.0 && self.bwd_bias <= 1.0
    }
}

/// Runs all four passes over `n` images with the SIMD kernels (f32) on `cpu` and the generic
/// convolution (f64); returns the worst ratios and the kernels' outputs (y, dx, dw, db).
fn compare<S: ConvShape>(cpu: Isa, n: usize, seed: u64, mutant: Mutant) -> (Ratios, Vec<f32>) {
    let (cout, kk, ohw) = (S::COUT, S::KK, S::OH * S::OW);
    let (xi, yi) = (S::CIN * S::H * S::W, cout * ohw);
    let w = seeded(kk * cout, seed);
    let b = seeded(cout, seed + 1);
    let x = seeded(n * xi, seed + 2);
    let dy = seeded(n * yi, seed + 3);
    let dw0 = seeded(kk * cout, seed + 4);
    let db0 = seeded(cout, seed + 5);

    // The f64 reference and the scale Σ|terms| (the same convolution on absolute values).
    let p64 = conv_of::<f64, S>(&f64s(&w), &f64s(&b));
    let pabs = conv_of::<f64, S>(&abs(&f64s(&w)), &abs(&f64s(&b)));
    let (x64, dy64) = (f64s(&x), f64s(&dy));
    let (xabs, dyabs) = (abs(&x64), abs(&dy64));
    let mut col = vec![0.0f64; kk * ohw];
    let mut y_ref = vec![0.0; n * yi];
    let mut y_scale = vec![0.0; n * yi];
    conv_forward::<f64, S>(&p64, (&x64[..]).into(), (&mut y_ref[..]).into(), &mut col);
    conv_forward::<f64, S>(
        &pabs,
        (&xabs[..]).into(),
        (&mut y_scale[..]).into(),
        &mut col,
    );
    let mut dx_ref = vec![0.0; n * xi];
    let mut dx_scale = vec![0.0; n * xi];
    conv_backward_input::<f64, S>(&p64, (&dy64[..]).into(), (&mut dx_ref[..]).into(), &mut col);
    conv_backward_input::<f64, S>(
        &pabs,
        (&dyabs[..]).into(),
        (&mut dx_scale[..]).into(),
        &mut col,
    );
    let mut dw_ref = conv_of::<f64, S>(&f64s(&dw0), &f64s(&db0));
    let mut dw_scale = conv_of::<f64, S>(&abs(&f64s(&dw0)), &abs(&f64s(&db0)));
    conv_backward_weight::<f64, S>((&dy64[..]).into(), (&x64[..]).into(), &mut dw_ref, &mut col);
    conv_backward_bias::<f64, S>((&dy64[..]).into(), &mut dw_ref);
    conv_backward_weight::<f64, S>(
        (&dyabs[..]).into(),
        (&xabs[..]).into(),
        &mut dw_scale,
        &mut col,
    );
    conv_backward_bias::<f64, S>((&dyabs[..]).into(), &mut dw_scale);

    // The SIMD side, possibly corrupted.
    let (mut ws, mut xs, mut dys) = (w.clone(), x.clone(), dy.clone());
    match mutant {
        Mutant::None => {}
        Mutant::LastInput => {
            *xs.last_mut().unwrap() += 1.0;
            *dys.last_mut().unwrap() += 1.0;
        }
        Mutant::LastWeight => *ws.last_mut().unwrap() += 0.5,
    }
    let p = conv_of::<f32, S>(&ws, &b);
    let mut scratch = vec![f32::NAN; scratch_len_of::<S>()];
    // NaN-filled outputs: anything the kernels fail to write shows up.
    let mut y = vec![f32::NAN; n * yi];
    assert!(try_conv_forward::<f32, S>(
        cpu,
        &p,
        (&xs[..]).into(),
        (&mut y[..]).into()
    ));
    let mut dx = vec![f32::NAN; n * xi];
    assert!(try_conv_backward_input::<f32, S>(
        cpu,
        &p,
        (&dys[..]).into(),
        (&mut dx[..]).into(),
        &mut scratch
    ));
    let mut dw = conv_of::<f32, S>(&dw0, &db0);
    assert!(try_conv_backward_weight::<f32, S>(
        cpu,
        (&dys[..]).into(),
        (&xs[..]).into(),
        &mut dw,
        &mut scratch
    ));
    assert!(try_conv_backward_bias::<f32, S>(
        cpu,
        (&dys[..]).into(),
        &mut dw
    ));

    let r = Ratios {
        fwd: worst_ratio(&y, &y_ref, &y_scale, kk + 1),
        bwd_input: worst_ratio(&dx, &dx_ref, &dx_scale, cout * S::K * S::K),
        bwd_weight: worst_ratio(dw.weight(), dw_ref.weight(), dw_scale.weight(), n * ohw + 1),
        bwd_bias: worst_ratio(dw.bias(), dw_ref.bias(), dw_scale.bias(), n * ohw + 1),
    };
    (r, [&y[..], &dx, dw.weight(), dw.bias()].concat())
}

/// On every instruction set: a correct comparison passes, and each mutant makes it fail where
/// it should; and every instruction set gives the same bits as the first (the widest).
fn check<S: ConvShape>(name: &str, n: usize, seed: u64) {
    let mut first: Option<(Isa, Vec<f32>)> = None;
    for cpu in isas() {
        let name = format!("{name} [{}]", cpu.name());
        let (r, out) = compare::<S>(cpu, n, seed, Mutant::None);
        println!("{name}: worst error / allowance = {r:?}");
        assert!(r.all_pass(), "{name}: {r:?}");

        let (m, _) = compare::<S>(cpu, n, seed, Mutant::LastInput);
        println!("{name}: mutant LastInput: {m:?}");
        assert!(
            m.fwd > 1.0 && m.bwd_input > 1.0 && m.bwd_weight > 1.0 && m.bwd_bias > 1.0,
            "{name}: a corrupted last input went unnoticed: {m:?}"
        );
        let (m, _) = compare::<S>(cpu, n, seed, Mutant::LastWeight);
        println!("{name}: mutant LastWeight: {m:?}");
        assert!(
            m.fwd > 1.0 && m.bwd_input > 1.0,
            "{name}: a corrupted last weight went unnoticed: {m:?}"
        );
        match &first {
            None => first = Some((cpu, out)),
            Some((isa, want)) => {
                let same = want
                    .iter()
                    .zip(&out)
                    .all(|(a, b)| a.to_bits() == b.to_bits());
                assert!(
                    same && want.len() == out.len(),
                    "{name}: not bit-identical to {}",
                    isa.name()
                );
            }
        }
    }
}

/// Verifies r[cnn.conv.forward] r[cnn.conv.backward_input] r[cnn.conv.backward_weight]
/// Verifies r[cnn.conv.backward_bias] in the direct kernels training runs, on every instruction set.
#[test]
fn conv1_1x28x28_k3_matches_generic() {
    check::<Conv1>("conv1", 3, 10);
}

/// Verifies r[cnn.conv.forward] r[cnn.conv.backward_input] r[cnn.conv.backward_weight]
/// Verifies r[cnn.conv.backward_bias] in the direct kernels training runs, on every instruction set.
#[test]
fn conv2_16x26x26_k3_matches_generic() {
    check::<Conv2>("conv2", 3, 20);
}

/// Verifies r[cnn.conv.forward] r[cnn.conv.backward_input] r[cnn.conv.backward_weight]
/// Verifies r[cnn.conv.backward_bias] in the direct kernels training runs, on every instruction set.
#[test]
fn conv3_32x24x24_k1_matches_generic() {
    check::<Conv3>("conv3", 3, 30);
}

/// Verifies r[cnn.conv.forward] r[cnn.conv.backward_input] r[cnn.conv.backward_weight]
/// Verifies r[cnn.conv.backward_bias] in the direct kernels training runs, on every instruction set.
#[test]
fn conv4_8x12x12_k3_matches_generic() {
    check::<Conv4>("conv4", 3, 40);
}

/// Verifies r[cnn.conv.forward] r[cnn.conv.backward_input] r[cnn.conv.backward_weight]
/// Verifies r[cnn.conv.backward_bias] in the direct kernels training runs, on every instruction set.
#[test]
fn conv5_16x10x10_k3_matches_generic() {
    check::<Conv5>("conv5", 3, 50);
}

/// Verifies r[cnn.conv.forward] r[cnn.conv.backward_input] r[cnn.conv.backward_weight]
/// Verifies r[cnn.conv.backward_bias] in the direct kernels training runs, on every instruction set.
#[test]
fn conv6_32x8x8_k1_matches_generic() {
    check::<Conv6>("conv6", 3, 60);
}

/// Verifies r[cnn.conv.forward] r[cnn.conv.backward_input] r[cnn.conv.backward_weight]
/// Verifies r[cnn.conv.backward_bias] in the direct kernels training runs, on every instruction set.
#[test]
fn conv7_16x4x4_k3_matches_generic() {
    check::<Conv7>("conv7", 3, 70);
}

/// Verifies r[cnn.conv.forward] r[cnn.conv.backward_input] r[cnn.conv.backward_weight]
/// Verifies r[cnn.conv.backward_bias] in the direct kernels training runs, on every instruction set.
#[test]
fn odd_channel_counts_and_partial_vectors_match_generic() {
    // COUT 5 = tile 4 + 1, CIN 3 (weight-gradient taps 27 = 4·6 + 3), 9 wide.
    check::<Shape<3, 5, 3, 27, 7, 9, 5, 7>>("odd_3to5_7x9_k3", 2, 80);
    // COUT 11 = 8 + 2 + 1, K = 2, rows longer than one vector.
    check::<Shape<2, 11, 2, 8, 5, 18, 4, 17>>("odd_2to11_5x18_k2", 2, 90);
    // K = 1 whose plane (15) is not a multiple of 16: dY needs the wide scratch.
    check::<Shape<5, 3, 1, 5, 3, 5, 3, 5>>("odd_5to3_3x5_k1", 2, 100);
    // K = 1 whose plane (60) is not a multiple of 16 although its height plus width (16) is:
    // dY still needs the wide scratch, whose rows are 64 floats long, not 60.
    check::<Shape<3, 5, 1, 3, 10, 6, 10, 6>>("odd_3to5_10x6_k1", 2, 105);
    // K = 3 with output rows of 12 (not a multiple of 8) in a plane of 48 (a multiple of 16):
    // a dense vector would start 4 before a row's end, where `forward_compact` cannot split
    // it, so the wide layout must be chosen (the dense one needs rows a multiple of 8 too).
    check::<Shape<2, 3, 3, 18, 6, 14, 4, 12>>("odd_2to3_6x14_k3", 2, 107);
    // Rows of 8 (a multiple of 8) in a plane of 24 (not a multiple of 16): wide as well.
    check::<Shape<2, 3, 3, 18, 5, 10, 3, 8>>("odd_2to3_5x10_k3", 2, 108);
    // K = 5, a single output row and column count not a multiple of anything.
    check::<Shape<2, 9, 5, 50, 5, 20, 1, 16>>("odd_2to9_5x20_k5", 2, 110);
    // COUT 48: the weight gradient vectorises over output channels (2 + 1 vectors), CIN 3
    // (channel tiles 2 + 1), 30 pixels (one 16×16 transpose block and an edge).
    check::<Shape<3, 48, 2, 12, 6, 7, 5, 6>>("odd_3to48_6x7_k2", 2, 130);
    // COUT 16 with K 5: one vector of output channels, two input channels per tile.
    check::<Shape<5, 16, 5, 125, 7, 9, 3, 5>>("odd_5to16_7x9_k5", 3, 140);
    // Dense forward vectors (rows of 40 = 5 × 8): groups that start mid-row, split across two
    // rows, and neither, so every group pattern of `forward_compact` and its single-vector
    // fallback run (conv2 and conv5 take only two of them).
    check::<Shape<2, 5, 3, 18, 4, 42, 2, 40>>("dense_2to5_4x42_k3", 2, 150);
    // One image, every tail at once: COUT 7 (4+2+1), CIN 1, K 3, 3×3 → 1×1.
    check::<Shape<1, 7, 3, 9, 3, 3, 1, 1>>("odd_1to7_3x3_k3", 1, 120);
}

/// The direct forward pass takes the dense layout (16 outputs a vector, no lane thrown away)
/// exactly where its docs say: `K > 1`, output rows a multiple of 8, planes a multiple of 16.
/// Both layouts give the same bits, so the matches-generic tests cannot see the choice; this
/// pins it, so that a change that quietly sends conv2 or conv5 the slow way, or sends a shape
/// the dense layout cannot take its way, fails here.
#[test]
fn the_dense_forward_layout_is_chosen_exactly_where_documented() {
    use kernels::conv::dense_layout;
    // The network: conv2 (24×24) and conv5 (8×8) are dense; conv1 (26×26) and conv4 (10×10)
    // have rows that are not a multiple of 8, conv7 (2×2) too; conv3 and conv6 have K = 1.
    assert!(dense_layout::<Conv2>() && dense_layout::<Conv5>());
    assert!(!dense_layout::<Conv1>() && !dense_layout::<Conv4>() && !dense_layout::<Conv7>());
    assert!(!dense_layout::<Conv3>() && !dense_layout::<Conv6>());
    // Rows of 40 in a plane of 80 (the dense test shape above): dense, although 2 + 40 is
    // not a multiple of 16.
    assert!(dense_layout::<Shape<2, 5, 3, 18, 4, 42, 2, 40>>());
    // Rows of 8 in a plane of 24, not a multiple of 16: wide.
    assert!(!dense_layout::<Shape<2, 3, 3, 18, 5, 10, 3, 8>>());
    // Rows of 12 in a plane of 48: wide (rows must be a multiple of 8 too).
    assert!(!dense_layout::<Shape<2, 3, 3, 18, 6, 14, 4, 12>>());
    // K = 1 with rows of 16: wide (dense and wide positions coincide).
    assert!(!dense_layout::<Shape<2, 3, 1, 2, 2, 16, 2, 16>>());
}

/// Which passes Winograd's kernels take (`WGeom::takes`, `takes_weight`, `takes_backward`),
/// pinned on both sides of each edge of the rule: the channels, an even output, and each of the
/// fixed scratch buffers, which are sized for conv2. Winograd and the direct kernels round
/// differently but both stay within the tests' bounds, so only this sees a change to the rule
/// — one that sends conv2 the slow way, or lets a shape overrun the scratch. Each row was
/// worked out from the buffer sizes by hand and by a model of the rule in Python.
#[test]
fn the_winograd_passes_are_taken_exactly_where_documented() {
    use kernels::conv::{WinogradPasses, winograd_passes};
    fn of<S: ConvShape>() -> String {
        let WinogradPasses {
            forward,
            backward_input,
            backward_weight,
            backward,
        } = winograd_passes::<S>();
        [forward, backward_input, backward_weight, backward]
            .map(|t| if t { 'T' } else { 'F' })
            .iter()
            .collect()
    }
    // forward, input gradient, weight gradient, both gradients in one pass.
    let rows = [
        // The network: conv2, conv5 and conv7 take every pass; the others have 1 → 16,
        // 8 → 16 channels or 1×1 kernels.
        ("conv2", of::<Conv2>(), "TTTT"),
        ("conv5", of::<Conv5>(), "TTTT"),
        ("conv7", of::<Conv7>(), "TTTT"),
        ("conv1", of::<Conv1>(), "FFFF"),
        ("conv3", of::<Conv3>(), "FFFF"),
        ("conv4", of::<Conv4>(), "FFFF"),
        ("conv6", of::<Conv6>(), "FFFF"),
        // Channels other than 16 → 32 and 32 → 16.
        ("16→16", of::<Shape<16, 16, 3, 144, 10, 10, 8, 8>>(), "FFFF"),
        ("32→32", of::<Shape<32, 32, 3, 288, 10, 10, 8, 8>>(), "FFFF"),
        // An odd output, in rows or in columns.
        (
            "16→32 27×26",
            of::<Shape<16, 32, 3, 144, 27, 26, 25, 24>>(),
            "FFFF",
        ),
        (
            "16→32 26×27",
            of::<Shape<16, 32, 3, 144, 26, 27, 24, 25>>(),
            "FFFF",
        ),
        // 16 → 32, columns: 26 fit the output tiles' buffer (12 tiles of 32 channels), 28 not.
        (
            "16→32 4×26",
            of::<Shape<16, 32, 3, 144, 4, 26, 2, 24>>(),
            "TTTT",
        ),
        (
            "16→32 4×28",
            of::<Shape<16, 32, 3, 144, 4, 28, 2, 26>>(),
            "FFFF",
        ),
        // 16 → 32 at 26 columns, rows: the padded input of the forward pass fills `xh` at 86,
        // the input gradient's padded dY at 38, the weight gradient's input and dY at 30, and
        // the one pass's padded dY and input at 26.
        (
            "16→32 86×26",
            of::<Shape<16, 32, 3, 144, 86, 26, 84, 24>>(),
            "TFFF",
        ),
        (
            "16→32 88×26",
            of::<Shape<16, 32, 3, 144, 88, 26, 86, 24>>(),
            "FFFF",
        ),
        (
            "16→32 38×26",
            of::<Shape<16, 32, 3, 144, 38, 26, 36, 24>>(),
            "TTFF",
        ),
        (
            "16→32 40×26",
            of::<Shape<16, 32, 3, 144, 40, 26, 38, 24>>(),
            "TFFF",
        ),
        (
            "16→32 30×26",
            of::<Shape<16, 32, 3, 144, 30, 26, 28, 24>>(),
            "TTTF",
        ),
        (
            "16→32 32×26",
            of::<Shape<16, 32, 3, 144, 32, 26, 30, 24>>(),
            "TTFF",
        ),
        (
            "16→32 28×26",
            of::<Shape<16, 32, 3, 144, 28, 26, 26, 24>>(),
            "TTTF",
        ),
        // 32 → 16, columns: 28 fit the input tiles' buffer (13 tiles of 32 channels), 30 not;
        // the input gradient (16 → 32 seen from dY) stops at 24.
        (
            "32→16 4×28",
            of::<Shape<32, 16, 3, 288, 4, 28, 2, 26>>(),
            "TFTF",
        ),
        (
            "32→16 4×30",
            of::<Shape<32, 16, 3, 288, 4, 30, 2, 28>>(),
            "FFFF",
        ),
        (
            "32→16 4×26",
            of::<Shape<32, 16, 3, 288, 4, 26, 2, 24>>(),
            "TFTF",
        ),
        (
            "32→16 28×24",
            of::<Shape<32, 16, 3, 288, 28, 24, 26, 22>>(),
            "TTTT",
        ),
        // 32 → 16, rows: the forward pass at 28 columns stops at 40, its weight gradient at
        // 28; the input gradient at 24 columns at 84; the one pass at 24 columns at 28.
        (
            "32→16 40×28",
            of::<Shape<32, 16, 3, 288, 40, 28, 38, 26>>(),
            "TFFF",
        ),
        (
            "32→16 42×28",
            of::<Shape<32, 16, 3, 288, 42, 28, 40, 26>>(),
            "FFFF",
        ),
        (
            "32→16 28×28",
            of::<Shape<32, 16, 3, 288, 28, 28, 26, 26>>(),
            "TFTF",
        ),
        (
            "32→16 30×28",
            of::<Shape<32, 16, 3, 288, 30, 28, 28, 26>>(),
            "TFFF",
        ),
        (
            "32→16 84×24",
            of::<Shape<32, 16, 3, 288, 84, 24, 82, 22>>(),
            "FTFF",
        ),
        (
            "32→16 86×24",
            of::<Shape<32, 16, 3, 288, 86, 24, 84, 22>>(),
            "FFFF",
        ),
        (
            "32→16 30×24",
            of::<Shape<32, 16, 3, 288, 30, 24, 28, 22>>(),
            "TTTF",
        ),
    ];
    for (name, got, want) in rows {
        assert_eq!(got, want, "{name}: forward, input, weight, one pass");
    }
}

/// Where the Winograd kernels take each gradient of a shape but their scratch cannot hold both
/// at once (16 → 32 at 28×26), the one pass over the images declines, having done nothing, and
/// the dispatcher gives the bits of the two gradients' dispatchers run one after the other. (The
/// one pass once asserted here instead of declining.)
#[test]
fn winograd_one_pass_declines_where_its_scratch_cannot_hold_both_gradients() {
    type S = Shape<16, 32, 3, 144, 28, 26, 26, 24>;
    let n = 2;
    let (xi, yi) = (S::CIN * S::H * S::W, S::COUT * S::OH * S::OW);
    let p = conv_of::<f32, S>(&seeded(S::KK * S::COUT, 230), &seeded(S::COUT, 231));
    let (x, dy) = (seeded(n * xi, 232), seeded(n * yi, 233));
    let (w0, b0) = (seeded(S::KK * S::COUT, 234), vec![0.0; S::COUT]);
    let mut scratch =
        vec![0.0; gradspec::cnn::conv::col_len_of::<S>().max(kernels::conv::scratch_len_of::<S>())];
    for cpu in isas() {
        let (mut dw, mut dx) = (conv_of::<f32, S>(&w0, &b0), vec![f32::NAN; n * xi]);
        assert!(!kernels::conv::try_winograd_backward::<f32, S>(
            cpu,
            &p,
            (&dy[..]).into(),
            (&x[..]).into(),
            &mut dw,
            (&mut dx[..]).into()
        ));
        assert_eq!(dw.weight(), &w0[..], "{}: dw touched", cpu.name());
        assert!(dx.iter().all(|v| v.is_nan()), "{}: dx touched", cpu.name());
    }
    let (mut dw_apart, mut dx_apart) = (conv_of::<f32, S>(&w0, &b0), vec![f32::NAN; n * xi]);
    kernels::conv::backward_weight::<f32, S>(
        (&dy[..]).into(),
        (&x[..]).into(),
        &mut dw_apart,
        &mut scratch,
    );
    kernels::conv::backward_input::<f32, S>(
        &p,
        (&dy[..]).into(),
        (&mut dx_apart[..]).into(),
        &mut scratch,
    );
    let (mut dw, mut dx) = (conv_of::<f32, S>(&w0, &b0), vec![f32::NAN; n * xi]);
    kernels::conv::backward::<f32, S>(
        &p,
        (&dy[..]).into(),
        (&x[..]).into(),
        &mut dw,
        (&mut dx[..]).into(),
        &mut scratch,
    );
    let bits = |a: &[f32]| a.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
    assert_eq!(bits(&dx), bits(&dx_apart), "input gradients differ");
    assert_eq!(
        bits(dw.weight()),
        bits(dw_apart.weight()),
        "weight gradients differ"
    );
    assert_ne!(dw.weight(), &w0[..], "nothing added");
}

#[test]
fn per_image_functions_agree_with_the_batch_wrappers() {
    for cpu in isas() {
        per_image_functions_agree_on(cpu);
    }
}

fn per_image_functions_agree_on(cpu: Isa) {
    const CIN: usize = 16;
    const COUT: usize = 32;
    let p = conv_of::<f32, Conv2>(&seeded(144 * COUT, 1), &seeded(COUT, 2));
    let x = seeded(2 * CIN * 26 * 26, 3);
    let dy = seeded(2 * COUT * 24 * 24, 4);
    let mut scratch = vec![0.0f32; scratch_len(COUT, 24, 24, 26)];

    let mut y_batch = vec![0.0f32; dy.len()];
    assert!(try_conv_forward::<f32, Conv2>(
        cpu,
        &p,
        View(&x),
        ViewMut(&mut y_batch)
    ));
    let mut wide = vec![0.0f32; image_scratch_len(COUT, 24, 24, 26)];
    let mut dx_batch = vec![0.0f32; x.len()];
    assert!(try_conv_backward_input::<f32, Conv2>(
        cpu,
        &p,
        View(&dy),
        ViewMut(&mut dx_batch),
        &mut scratch
    ));
    // The batch wrapper sums groups of images in registers (a different order from image by
    // image, covered by the tolerance tests); fed one image at a time it is the per-image
    // function.
    let mut dw_batch = Conv::<f32, CIN, COUT, 3, 144>::zeros();
    for i in 0..2 {
        assert!(try_conv_backward_weight::<f32, Conv2>(
            cpu,
            View(&dy[i * COUT * 576..(i + 1) * COUT * 576]),
            View(&x[i * CIN * 676..(i + 1) * CIN * 676]),
            &mut dw_batch,
            &mut scratch
        ));
    }

    let mut dw = Conv::<f32, CIN, COUT, 3, 144>::zeros();
    for i in 0..2 {
        let xi = &x[i * CIN * 676..(i + 1) * CIN * 676];
        let dyi = &dy[i * COUT * 576..(i + 1) * COUT * 576];
        let mut y = vec![0.0f32; COUT * 576];
        kernels::conv::forward_image::<Conv2>(cpu, &p, xi, &mut y);
        assert_eq!(y, y_batch[i * COUT * 576..(i + 1) * COUT * 576]);
        let mut dx = vec![0.0f32; CIN * 676];
        kernels::conv::backward_input_image::<Conv2>(cpu, &p, dyi, &mut dx, &mut wide);
        assert_eq!(dx, dx_batch[i * CIN * 676..(i + 1) * CIN * 676]);
        kernels::conv::backward_weight_image::<Conv2>(cpu, dyi, xi, &mut dw, &mut wide);
        kernels::conv::backward_bias_image::<Conv2>(cpu, dyi, &mut dw);
    }
    assert_eq!(dw.weight, dw_batch.weight, "same order, so bit-identical");
    // The bias gradient image by image (added into `dw.bias`, the weights left alone) is the
    // batch wrapper's, which sums the same planes in the same order.
    let mut db_batch = Conv::<f32, CIN, COUT, 3, 144>::zeros();
    assert!(try_conv_backward_bias::<f32, Conv2>(
        cpu,
        View(&dy),
        &mut db_batch
    ));
    assert!(db_batch.bias.iter().all(|&b| b != 0.0));
    assert_eq!(dw.bias, db_batch.bias, "same order, so bit-identical");
}

#[test]
fn f64_is_declined_and_left_untouched() {
    // The f32 specialisation: only f32 hands its data to the kernels.
    assert!(<f64 as Float>::as_f32(&[1.0]).is_none());
    assert_eq!(<f32 as Float>::as_f32(&[1.0]), Some(&[1.0f32][..]));
    let cpu = isas()[0];
    let p = Conv::<f64, 1, 16, 3, 9>::zeros();
    let x = vec![1.0f64; 28 * 28];
    let mut y = vec![7.0f64; 16 * 26 * 26];
    assert!(!try_conv_forward::<f64, Conv1>(
        cpu,
        &p,
        View(&x),
        ViewMut(&mut y)
    ));
    assert!(y.iter().all(|&v| v == 7.0));
    let mut db = Conv::<f64, 1, 16, 3, 9>::zeros();
    assert!(!try_conv_backward_bias::<f64, Conv1>(
        cpu,
        View(&y),
        &mut db
    ));
    assert!(db.bias.iter().all(|&v| v == 0.0));
}

#[test]
fn a_short_output_slice_panics_before_any_work() {
    for cpu in isas() {
        assert_panics("forward_image: y length", || {
            let p = Conv::<f32, 1, 16, 3, 9>::zeros();
            let x = vec![0.0f32; 28 * 28];
            let mut y = vec![0.0f32; 16 * 26 * 26 - 1];
            kernels::conv::forward_image::<Conv1>(cpu, &p, &x, &mut y);
        });
    }
}

#[test]
fn a_short_scratch_panics_before_any_work() {
    for cpu in isas() {
        assert_panics("scratch shorter", || {
            let dy = vec![0.0f32; 32 * 24 * 24];
            let x = vec![0.0f32; 16 * 26 * 26];
            let mut dw = Conv::<f32, 16, 32, 3, 144>::zeros();
            let mut scratch = vec![0.0f32; image_scratch_len(32, 24, 24, 26) - 1];
            kernels::conv::backward_weight_image::<Conv2>(cpu, &dy, &x, &mut dw, &mut scratch);
        });
    }
}

/// The shuffles of the weight gradient, [`Simd::transpose16`] and [`Simd::reduce16`], run on one
/// instruction set: the 16 rows `a`, their transpose and their lane sums, as plain floats; and
/// [`Simd::transpose16_mem`] of `a` for each `(lm, sm, rows)` of [`MEM_CASES`], into a
/// `NaN`-filled 16×16.
struct Shuffles(Vec<f32>);

/// Load masks, store masks and row counts of [`Simd::transpose16_mem`] as the kernels use them
/// (full; a plane's last run of positions; the Winograd output's last run) and mixed ones.
const MEM_CASES: [(u16, u16, usize); 8] = [
    (0xFFFF, 0xFFFF, 16),
    (0x0FFF, 0xFFFF, 12),
    (0x001F, 0xFFFF, 5),
    (0x01FF, 0xFFFF, 9),
    (0xFFFF, 0x00FF, 16),
    (0xFFFF, 0x3FFF, 16),
    (0xFFFF, 0x8421, 16),
    (0x7FFE, 0xF00D, 15),
];

impl Kernel for Shuffles {
    type Out = (Vec<f32>, Vec<f32>, Vec<Vec<f32>>);
    fn run<V: Simd>(self, s: V) -> Self::Out {
        let a: [V::V; 16] =
            std::array::from_fn(|i| s.array_to_vec(std::array::from_fn(|j| self.0[i * 16 + j])));
        let t = s.transpose16(a);
        let r = s.reduce16(a);
        let mem = MEM_CASES
            .iter()
            .map(|&(lm, sm, rows)| {
                let mut out = vec![f32::NAN; 256];
                let o = out.as_mut_ptr();
                // SAFETY: rows of 16 floats inside `self.0` (256) and `out` (256), `rows ≤ 16`.
                unsafe {
                    s.transpose16_mem(
                        |i| self.0.as_ptr().add(16 * i),
                        lm,
                        |j| o.add(16 * j),
                        sm,
                        rows,
                    )
                };
                out
            })
            .collect();
        (
            t.iter().flat_map(|v| s.to_array(*v)).collect(),
            s.to_array(r).to_vec(),
            mem,
        )
    }
}

/// Cases for [`U64Ops`]: two integer vectors and a shift.
type U64Case = ([u64; simd::U64_LANES], [u64; simd::U64_LANES], u32);

/// Every integer lane operation of [`Simd`] on each case: add, xor, and, or, shl, shr, rotl
/// and splat of the first lane, and `lt_mask` of the cases halved (its lanes must be below
/// 2⁶³).
struct U64Ops(Vec<U64Case>);

impl Kernel for U64Ops {
    type Out = Vec<([[u64; simd::U64_LANES]; 8], u8)>;
    fn run<V: Simd>(self, s: V) -> Self::Out {
        self.0
            .iter()
            .map(|&(a, b, n)| {
                let (va, vb) = (s.u64_from_array(a), s.u64_from_array(b));
                let t = |v| s.u64_to_array(v);
                let half = |x: [u64; simd::U64_LANES]| s.u64_from_array(x.map(|x| x >> 1));
                (
                    [
                        t(s.u64_add(va, vb)),
                        t(s.u64_xor(va, vb)),
                        t(s.u64_and(va, vb)),
                        t(s.u64_or(va, vb)),
                        t(s.u64_shl(va, n)),
                        t(s.u64_shr(va, n)),
                        t(s.u64_rotl(va, n)),
                        t(s.u64_splat(a[0])),
                    ],
                    s.u64_lt_mask(half(a), half(b)),
                )
            })
            .collect()
    }
}

/// Every instruction set's integer lane operations (the dropout lockstep's generator is built
/// from them) are the `u64` operations they are named for, lane by lane. The lockstep only ors
/// halves that share no bit (in `rotl`), where `|` and `^` agree, so this is the one test that
/// holds `u64_or` to `|`.
#[test]
fn the_integer_lane_operations_are_exact_on_every_instruction_set() {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(64);
    let mut cases: Vec<U64Case> = (0..64)
        .map(|n| (rng.random(), rng.random(), 1 + n % 63))
        .collect();
    // Equal lanes and carries out of the top bit.
    cases.push(([u64::MAX; 8], [1; 8], 32));
    cases.push(([5, 6, 7, 8, 9, 10, 11, 12], [5, 7, 6, 8, 10, 9, 11, 13], 1));
    for cpu in isas() {
        for (&(a, b, n), (got, lt)) in cases.iter().zip(cpu.vectorize(U64Ops(cases.clone()))) {
            let want = [
                std::array::from_fn(|l| a[l].wrapping_add(b[l])),
                std::array::from_fn(|l| a[l] ^ b[l]),
                std::array::from_fn(|l| a[l] & b[l]),
                std::array::from_fn(|l| a[l] | b[l]),
                a.map(|x| x << n),
                a.map(|x| x >> n),
                a.map(|x| x.rotate_left(n)),
                [a[0]; 8],
            ];
            let names = ["add", "xor", "and", "or", "shl", "shr", "rotl", "splat"];
            for ((name, got), want) in names.iter().zip(got).zip(want) {
                assert_eq!(got, want, "{}: u64_{name} of {a:?}, {b:?}, {n}", cpu.name());
            }
            let want_lt = (0..8).fold(0u8, |m, l| m | u8::from(a[l] >> 1 < b[l] >> 1) << l);
            assert_eq!(lt, want_lt, "{}: u64_lt_mask of {a:?}, {b:?}", cpu.name());
        }
    }
}

/// Every instruction set's 16×16 transpose moves each float to its mirrored place (in registers,
/// and from memory to memory through any masks), and its
/// `reduce16` gives each row's sum in the order of [`simd::hsum16_tree`], bit for bit (the
/// values span 12 binary orders of magnitude, so another order would round differently).
#[test]
fn the_transpose_and_the_lane_sums_are_exact_on_every_instruction_set() {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(16);
    let a: Vec<f32> = (0..256)
        .map(|_| rng.random_range(-1.0f32..1.0) * 2f32.powi(rng.random_range(-6..6)))
        .collect();
    for cpu in isas() {
        let (t, r, mem) = cpu.vectorize(Shuffles(a.clone()));
        for (&(lm, sm, rows), out) in MEM_CASES.iter().zip(&mem) {
            for j in 0..16 {
                for i in 0..16 {
                    let got = out[j * 16 + i];
                    let want = match (j < rows && sm >> i & 1 != 0, lm >> j & 1 != 0) {
                        (false, _) => f32::NAN,
                        (true, true) => a[i * 16 + j],
                        (true, false) => 0.0,
                    };
                    assert!(
                        got.to_bits() == want.to_bits() || (got.is_nan() && want.is_nan()),
                        "{}: transpose16_mem {lm:#06x} {sm:#06x} {rows}: ({j}, {i}) = {got}",
                        cpu.name()
                    );
                }
            }
        }
        for i in 0..16 {
            for j in 0..16 {
                assert_eq!(
                    t[j * 16 + i].to_bits(),
                    a[i * 16 + j].to_bits(),
                    "{}: transpose ({i}, {j})",
                    cpu.name()
                );
            }
            let row: [f32; 16] = a[i * 16..][..16].try_into().unwrap();
            assert_eq!(
                r[i].to_bits(),
                simd::hsum16_tree(row).to_bits(),
                "{}: reduce16 row {i}",
                cpu.name()
            );
        }
    }
}

/// Every mask's [`Simd::load_masked`] and [`Simd::store_masked`] on one instruction set: for
/// mask `m`, the 16 lanes loaded from `a` (`NaN` where `m` is clear, to be read as 0) and the
/// 16 floats of a `NaN`-filled window after `b` is stored through `m`.
struct Masked(Vec<f32>);

impl Kernel for Masked {
    type Out = Vec<([f32; 16], [f32; 16])>;
    fn run<V: Simd>(self, s: V) -> Self::Out {
        (0..=u16::MAX)
            .map(|m| {
                let src: Vec<f32> = (0..16)
                    .map(|i| if m >> i & 1 != 0 { self.0[i] } else { f32::NAN })
                    .collect();
                // SAFETY: `src` holds 16 floats.
                let loaded = s.to_array(unsafe { s.load_masked(m, src.as_ptr()) });
                let mut dst = [f32::NAN; 16];
                let v = s.array_to_vec(std::array::from_fn(|i| self.0[16 + i]));
                // SAFETY: `dst` holds 16 floats.
                unsafe { s.store_masked(dst.as_mut_ptr(), m, v) };
                (loaded, dst)
            })
            .collect()
    }
}

/// Every instruction set's masked load reads exactly the lanes of its mask (0 elsewhere) and
/// its masked store writes exactly them (the rest of the window keeps its `NaN`), for all
/// 65,536 masks: the kernels' partial vectors at the end of a plane or a row of positions.
#[test]
fn masked_loads_and_stores_touch_exactly_their_lanes_on_every_instruction_set() {
    let ab: Vec<f32> = (0..32).map(|i| i as f32 + 1.0).collect();
    for cpu in isas() {
        for (m, (loaded, stored)) in cpu.vectorize(Masked(ab.clone())).into_iter().enumerate() {
            for i in 0..16 {
                let on = m >> i & 1 != 0;
                let (want_l, want_s) = if on {
                    (ab[i], ab[16 + i])
                } else {
                    (0.0, f32::NAN)
                };
                assert_eq!(
                    loaded[i],
                    want_l,
                    "{}: load_masked {m:#06x} lane {i}",
                    cpu.name()
                );
                assert!(
                    stored[i] == want_s || (want_s.is_nan() && stored[i].is_nan()),
                    "{}: store_masked {m:#06x} lane {i}: {}",
                    cpu.name(),
                    stored[i]
                );
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Winograd F(2×2, 3×3) (the network's default for conv2, conv5 and conv7; GRADSPEC_WINOGRAD=0
// keeps them direct; tested here always, whatever the variable says).
//
// # Tolerance
// Winograd's sums are not sums of the products `W·X` but of transformed values, so the bound
// of the module docs does not apply as it stands. The same argument does, on the algorithm's
// own terms: every coefficient of `Bᵀ`, `G` and `Aᵀ` is 0, ±1 or ±½ (exact), and along the
// longest path an output goes through 4 roundings in `G g Gᵀ`, 2 in `Bᵀ d B`, 1 product, a
// chain of `CI` FMAs, 4 in `Aᵀ M A` and 1 for the bias: `N = CI + 12` roundings. So
// `|computed − exact| ≤ γ_{N+1} · S`, where `S` is the same algorithm run in f64 on absolute
// values (`|Aᵀ| [Σ_c (|G| |g| |G|ᵀ) ⊙ (|B|ᵀ |d| |B|)] |A| + |b|`), which `winograd_scale`
// computes. `S` covers the whole 4×4 input patch of a tile, not only an output's 3×3 window:
// Winograd mixes the neighbours' inputs into each output, and the bound says so.

#[allow(clippy::needless_range_loop)]
/// `S` of the note above for one correlation of `ci` channels of `hi × wi`, zero-padded by
/// `p`, with the 3×3 kernels `kernel(i, o, r, c)` (absolute values) into `co` channels.
#[allow(clippy::too_many_arguments)]
fn winograd_scale(
    (ci, co, hi, wi, p): (usize, usize, usize, usize, usize),
    kernel: impl Fn(usize, usize, usize, usize) -> f64,
    x: &[f64],
    bias: &[f64],
) -> Vec<f64> {
    const BT: [[f64; 4]; 4] = [
        [1., 0., 1., 0.],
        [0., 1., 1., 0.],
        [0., 1., 1., 0.],
        [0., 1., 0., 1.],
    ];
    const G: [[f64; 3]; 4] = [[1., 0., 0.], [0.5, 0.5, 0.5], [0.5, 0.5, 0.5], [0., 0., 1.]];
    const AT: [[f64; 4]; 2] = [[1., 1., 1., 0.], [0., 1., 1., 1.]];
    let (ho, wo) = (hi + 2 * p - 2, wi + 2 * p - 2);
    let at = |c: usize, r: isize, s: isize| -> f64 {
        let (r, s) = (r - p as isize, s - p as isize);
        if r < 0 || s < 0 || r >= hi as isize || s >= wi as isize {
            0.0
        } else {
            x[(c * hi + r as usize) * wi + s as usize]
        }
    };
    let mut out = vec![0.0; co * ho * wo];
    for o in 0..co {
        for ty in 0..ho / 2 {
            for tx in 0..wo / 2 {
                let mut m = [[0.0f64; 4]; 4];
                for c in 0..ci {
                    let mut u = [[0.0f64; 4]; 4];
                    let mut v = [[0.0f64; 4]; 4];
                    for a in 0..4 {
                        for b in 0..4 {
                            for r in 0..3 {
                                for s in 0..3 {
                                    u[a][b] += G[a][r] * kernel(c, o, r, s) * G[b][s];
                                }
                            }
                            for r in 0..4 {
                                for s in 0..4 {
                                    let d = at(c, (2 * ty + r) as isize, (2 * tx + s) as isize);
                                    v[a][b] += BT[a][r] * d * BT[b][s];
                                }
                            }
                        }
                    }
                    for a in 0..4 {
                        for b in 0..4 {
                            m[a][b] += u[a][b] * v[a][b];
                        }
                    }
                }
                for i in 0..2 {
                    for j in 0..2 {
                        let mut y = bias[o];
                        for a in 0..4 {
                            for b in 0..4 {
                                y += AT[i][a] * m[a][b] * AT[j][b];
                            }
                        }
                        out[(o * ho + 2 * ty + i) * wo + 2 * tx + j] = y;
                    }
                }
            }
        }
    }
    out
}

/// The Winograd forward pass and input gradient of one image of shape `S` on `cpu`, against
/// the f64 reference: the worst ratios (forward, input gradient) to the allowance of the note
/// above, and the outputs.
fn compare_winograd<S: ConvShape>(cpu: Isa, seed: u64, mutant: Mutant) -> ((f64, f64), Vec<f32>) {
    let (cin, cout, h, w) = (S::CIN, S::COUT, S::H, S::W);
    let (xi, yi) = (cin * h * w, cout * S::OH * S::OW);
    let wt = seeded(S::KK * cout, seed);
    let b = seeded(cout, seed + 1);
    let x = seeded(xi, seed + 2);
    let dy = seeded(yi, seed + 3);
    let p64 = conv_of::<f64, S>(&f64s(&wt), &f64s(&b));
    let mut col = vec![0.0f64; S::KK * S::OH * S::OW];
    let mut y_ref = vec![0.0; yi];
    conv_forward::<f64, S>(
        &p64,
        (&f64s(&x)[..]).into(),
        (&mut y_ref[..]).into(),
        &mut col,
    );
    let mut dx_ref = vec![0.0; xi];
    conv_backward_input::<f64, S>(
        &p64,
        (&f64s(&dy)[..]).into(),
        (&mut dx_ref[..]).into(),
        &mut col,
    );
    let wa = abs(&f64s(&wt));
    let k = |o: usize, c: usize, r: usize, s: usize| wa[((o * cin + c) * 3 + r) * 3 + s];
    let y_scale = winograd_scale(
        (cin, cout, h, w, 0),
        |i, o, r, s| k(o, i, r, s),
        &abs(&f64s(&x)),
        &abs(&f64s(&b)),
    );
    let dx_scale = winograd_scale(
        (cout, cin, S::OH, S::OW, 2),
        |o, c, r, s| k(o, c, 2 - r, 2 - s),
        &abs(&f64s(&dy)),
        &vec![0.0; cin],
    );

    let (mut ws, mut xs, mut dys) = (wt.clone(), x.clone(), dy.clone());
    match mutant {
        Mutant::None => {}
        Mutant::LastInput => {
            *xs.last_mut().unwrap() += 1.0;
            *dys.last_mut().unwrap() += 1.0;
        }
        Mutant::LastWeight => *ws.last_mut().unwrap() += 0.5,
    }
    let p = conv_of::<f32, S>(&ws, &b);
    let mut y = vec![f32::NAN; yi];
    kernels::conv::winograd_forward_image::<S>(cpu, &p, &xs, &mut y);
    let mut dx = vec![f32::NAN; xi];
    kernels::conv::winograd_backward_input_image::<S>(cpu, &p, &dys, &mut dx);
    let ratios = (
        worst_ratio(&y, &y_ref, &y_scale, cin + 12),
        worst_ratio(&dx, &dx_ref, &dx_scale, cout + 12),
    );
    (ratios, [y, dx].concat())
}

/// On every instruction set: Winograd's forward pass and input gradient are within the
/// allowance of the note above, a corrupted last input or weight is far outside it, and every
/// instruction set gives the same bits.
fn check_winograd<S: ConvShape>(name: &str, seed: u64) {
    let mut first: Option<(Isa, Vec<f32>)> = None;
    for cpu in isas() {
        let name = format!("{name} winograd [{}]", cpu.name());
        let (r, out) = compare_winograd::<S>(cpu, seed, Mutant::None);
        println!("{name}: worst error / allowance (fwd, bwd_input) = {r:?}");
        assert!(r.0 <= 1.0 && r.1 <= 1.0, "{name}: {r:?}");
        for m in [Mutant::LastInput, Mutant::LastWeight] {
            let (r, _) = compare_winograd::<S>(cpu, seed, m);
            println!("{name}: mutant {m:?}: {r:?}");
            assert!(
                r.0 > 1.0 && r.1 > 1.0,
                "{name}: mutant {m:?} went unnoticed: {r:?}"
            );
        }
        match &first {
            None => first = Some((cpu, out)),
            Some((isa, want)) => assert!(
                want.iter()
                    .zip(&out)
                    .all(|(a, b)| a.to_bits() == b.to_bits()),
                "{name}: not bit-identical to {}",
                isa.name()
            ),
        }
    }
}

/// Verifies r[cnn.conv.forward] r[cnn.conv.backward_input] by Winograd's F(2×2, 3×3) at conv2's
/// shape (12 and 13 tiles a row: the full register tiles), on every instruction set.
#[test]
fn conv2_winograd_matches_generic() {
    check_winograd::<Conv2>("conv2", 120);
}

/// Verifies r[cnn.conv.forward] r[cnn.conv.backward_input] by Winograd at conv5's shape (4 and
/// 5 tiles a row: the tile tails), on every instruction set.
#[test]
fn conv5_winograd_matches_generic() {
    check_winograd::<Conv5>("conv5", 150);
}

// The weight gradient by Winograd: `dU[ξ][c][o] = Σ_images Σ_tiles V[ξ][t][c]·M̄[ξ][t][o]`
// with `V = Bᵀ d B`, `M̄ = A dY Aᵀ`, then `dW[o][c] += Gᵀ dU G`. Along the longest path a term
// goes through 2 roundings in `V`, 2 in `M̄`, a chain of `K = images·tiles` FMAs, 4 in
// `Gᵀ dU G` and 1 when added to the initial `dW`: `N = K + 9`, and `S` is the same algorithm on
// absolute values, plus `|dW₀|`.

/// `S` of the note above for `n` images of shape `S` (absolute values in, `[COUT, CIN, 3, 3]`
/// out), `dw0` the initial gradient.
#[allow(clippy::needless_range_loop)]
fn winograd_weight_scale<S: ConvShape>(x: &[f64], dy: &[f64], dw0: &[f64]) -> Vec<f64> {
    const BT: [[f64; 4]; 4] = [
        [1., 0., 1., 0.],
        [0., 1., 1., 0.],
        [0., 1., 1., 0.],
        [0., 1., 0., 1.],
    ];
    const G: [[f64; 3]; 4] = [[1., 0., 0.], [0.5, 0.5, 0.5], [0.5, 0.5, 0.5], [0., 0., 1.]];
    const A: [[f64; 2]; 4] = [[1., 0.], [1., 1.], [1., 1.], [0., 1.]];
    let (ci, co, h, w, oh, ow) = (S::CIN, S::COUT, S::H, S::W, S::OH, S::OW);
    let n = x.len() / (ci * h * w);
    let mut du = vec![[[0.0f64; 4]; 4]; ci * co];
    for img in 0..n {
        let x = &x[img * ci * h * w..];
        let dy = &dy[img * co * oh * ow..];
        for ty in 0..oh / 2 {
            for tx in 0..ow / 2 {
                let v: Vec<[[f64; 4]; 4]> = (0..ci)
                    .map(|c| {
                        let mut v = [[0.0; 4]; 4];
                        for a in 0..4 {
                            for b in 0..4 {
                                for r in 0..4 {
                                    for s in 0..4 {
                                        let d = x[(c * h + 2 * ty + r) * w + 2 * tx + s];
                                        v[a][b] += BT[a][r] * d * BT[b][s];
                                    }
                                }
                            }
                        }
                        v
                    })
                    .collect();
                for o in 0..co {
                    let mut m = [[0.0; 4]; 4];
                    for a in 0..4 {
                        for b in 0..4 {
                            for i in 0..2 {
                                for j in 0..2 {
                                    let d = dy[(o * oh + 2 * ty + i) * ow + 2 * tx + j];
                                    m[a][b] += A[a][i] * d * A[b][j];
                                }
                            }
                        }
                    }
                    for c in 0..ci {
                        for a in 0..4 {
                            for b in 0..4 {
                                du[c * co + o][a][b] += v[c][a][b] * m[a][b];
                            }
                        }
                    }
                }
            }
        }
    }
    let mut out = dw0.to_vec();
    for o in 0..co {
        for c in 0..ci {
            for r in 0..3 {
                for s in 0..3 {
                    let mut k = 0.0;
                    for a in 0..4 {
                        for b in 0..4 {
                            k += G[a][r] * du[c * co + o][a][b] * G[b][s];
                        }
                    }
                    out[((o * ci + c) * 3 + r) * 3 + s] += k;
                }
            }
        }
    }
    out
}

/// Winograd's weight gradient of `n` images of shape `S` on `cpu`, added into a nonzero
/// initial gradient, against the f64 reference: the worst ratio to the allowance of the note
/// above, and the gradient.
fn compare_winograd_weight<S: ConvShape>(
    cpu: Isa,
    n: usize,
    seed: u64,
    mutant: WeightMutant,
) -> (f64, Vec<f32>) {
    let (xi, yi, wn) = (
        S::CIN * S::H * S::W,
        S::COUT * S::OH * S::OW,
        S::COUT * S::KK,
    );
    let x = seeded(n * xi, seed);
    let dy = seeded(n * yi, seed + 1);
    let dw0 = seeded(wn, seed + 2);
    let mut dw_ref = conv_of::<f64, S>(&f64s(&dw0), &vec![0.0; S::COUT]);
    let mut col = vec![0.0f64; S::KK * S::OH * S::OW];
    conv_backward_weight::<f64, S>(
        (&f64s(&dy)[..]).into(),
        (&f64s(&x)[..]).into(),
        &mut dw_ref,
        &mut col,
    );
    let scale = winograd_weight_scale::<S>(&abs(&f64s(&x)), &abs(&f64s(&dy)), &abs(&f64s(&dw0)));
    let (mut xs, mut dys) = (x.clone(), dy.clone());
    match mutant {
        WeightMutant::None => {}
        WeightMutant::LastInput => *xs.last_mut().unwrap() += 1.0,
        WeightMutant::FirstDy => *dys.first_mut().unwrap() += 1.0,
    }
    let mut dw = conv_of::<f32, S>(&dw0, &vec![0.0; S::COUT]);
    kernels::conv::winograd_backward_weight_images::<S>(cpu, &dys, &xs, &mut dw);
    let k = n * (S::OH / 2) * (S::OW / 2);
    let r = worst_ratio(dw.weight(), dw_ref.weight(), &scale, k + 9);
    (r, dw.weight().to_vec())
}

/// What to corrupt in the input of Winograd's weight gradient only.
#[derive(Clone, Copy, Debug, PartialEq)]
enum WeightMutant {
    None,
    /// The last element of `x` += 1 (the bottom-right corner of the last image).
    LastInput,
    /// The first element of `dY` += 1 (the top-left corner of the first image).
    FirstDy,
}

/// On every instruction set: Winograd's weight gradient is within the allowance, a corrupted
/// last input or first `dY` element is far outside it, and every instruction set gives the
/// same bits.
fn check_winograd_weight<S: ConvShape>(name: &str, n: usize, seed: u64) {
    let mut first: Option<(Isa, Vec<f32>)> = None;
    for cpu in isas() {
        let name = format!("{name} winograd weight [{}]", cpu.name());
        let (r, out) = compare_winograd_weight::<S>(cpu, n, seed, WeightMutant::None);
        println!("{name}: worst error / allowance = {r:.3e}");
        assert!(r <= 1.0, "{name}: {r}");
        for m in [WeightMutant::LastInput, WeightMutant::FirstDy] {
            let (r, _) = compare_winograd_weight::<S>(cpu, n, seed, m);
            println!("{name}: mutant {m:?}: {r:.3e}");
            assert!(r > 1.0, "{name}: mutant {m:?} went unnoticed: {r}");
        }
        match &first {
            None => first = Some((cpu, out)),
            Some((isa, want)) => assert!(
                want.iter()
                    .zip(&out)
                    .all(|(a, b)| a.to_bits() == b.to_bits()),
                "{name}: not bit-identical to {}",
                isa.name()
            ),
        }
    }
}

/// Verifies r[cnn.conv.backward_weight] by Winograd at conv2's shape over 3 images (the sums
/// run across images), on every instruction set.
#[test]
fn conv2_winograd_weight_matches_generic() {
    check_winograd_weight::<Conv2>("conv2", 3, 130);
}

/// Verifies r[cnn.conv.backward_weight] by Winograd at conv5's shape over 8 images (a chunk of
/// the network), on every instruction set.
#[test]
fn conv5_winograd_weight_matches_generic() {
    check_winograd_weight::<Conv5>("conv5", 8, 160);
}

/// Verifies r[cnn.conv.forward] r[cnn.conv.backward_input] by Winograd at conv7's shape (one
/// tile per plane), on every instruction set.
#[test]
fn conv7_winograd_matches_generic() {
    check_winograd::<Conv7>("conv7", 170);
}

/// Verifies r[cnn.conv.backward_weight] by Winograd at conv7's shape over 8 images, on every
/// instruction set.
#[test]
fn conv7_winograd_weight_matches_generic() {
    check_winograd_weight::<Conv7>("conv7", 8, 180);
}

/// `try_winograd_backward` (input and weight gradient in one pass over the images, `dY`
/// transposed once) gives the bits of the two passes run apart, on every instruction set.
fn fused_backward_equals_the_two_passes<S: ConvShape>(n: usize, seed: u64) {
    let (xi, yi) = (S::CIN * S::H * S::W, S::COUT * S::OH * S::OW);
    let p = conv_of::<f32, S>(&seeded(S::KK * S::COUT, seed), &seeded(S::COUT, seed + 1));
    let (x, dy) = (seeded(n * xi, seed + 2), seeded(n * yi, seed + 3));
    let (w0, b0) = (seeded(S::KK * S::COUT, seed + 4), vec![0.0; S::COUT]);
    let dw0 = conv_of::<f32, S>(&w0, &b0);
    for cpu in isas() {
        let (mut dw_apart, mut dx_apart) = (conv_of::<f32, S>(&w0, &b0), vec![f32::NAN; n * xi]);
        assert!(kernels::conv::try_winograd_backward_weight::<f32, S>(
            cpu,
            (&dy[..]).into(),
            (&x[..]).into(),
            &mut dw_apart
        ));
        assert!(kernels::conv::try_winograd_backward_input::<f32, S>(
            cpu,
            &p,
            (&dy[..]).into(),
            (&mut dx_apart[..]).into()
        ));
        let (mut dw, mut dx) = (conv_of::<f32, S>(&w0, &b0), vec![f32::NAN; n * xi]);
        assert!(kernels::conv::try_winograd_backward::<f32, S>(
            cpu,
            &p,
            (&dy[..]).into(),
            (&x[..]).into(),
            &mut dw,
            (&mut dx[..]).into()
        ));
        let same = |a: &[f32], b: &[f32]| a.iter().zip(b).all(|(a, b)| a.to_bits() == b.to_bits());
        assert!(
            same(&dx, &dx_apart),
            "{}: input gradients differ",
            cpu.name()
        );
        assert!(
            same(dw.weight(), dw_apart.weight()),
            "{}: weight gradients differ",
            cpu.name()
        );
        assert_ne!(dw.weight(), dw0.weight(), "{}: nothing added", cpu.name());
    }
}

#[test]
fn winograd_fused_backward_equals_the_two_passes() {
    fused_backward_equals_the_two_passes::<Conv2>(3, 190);
    fused_backward_equals_the_two_passes::<Conv5>(8, 200);
    fused_backward_equals_the_two_passes::<Conv7>(8, 210);
}

/// A shape the Winograd kernels do not take is refused before any work.
#[test]
fn winograd_refuses_a_shape_it_does_not_take() {
    let p = conv_of::<f32, Conv4>(&[0.0; 16 * 72], &[0.0; 16]);
    let (x, mut y) = (vec![0.0; 8 * 144], vec![7.0; 16 * 100]);
    let cpu = Isa::Scalar;
    assert_panics("shape not taken", || {
        let mut y = y.clone();
        kernels::conv::winograd_forward_image::<Conv4>(cpu, &p, &x, &mut y)
    });
    assert!(y.iter_mut().all(|v| *v == 7.0));
}

/// The weight gradient's batch function sums `weight_group_len` images in registers before it
/// touches `dw` (the `kernels::conv` docs): the most images whose pixels (when it vectorises
/// over output channels, `COUT` a multiple of 16) or wide vectors (otherwise) fit one tile's
/// budget of 2048 pixels or 128 wide vectors, at least 1 and at most 8, which is 3 for conv2
/// and 8 for the small late layers. The group only changes the order of the sums, so the
/// matches-generic tests above cannot see it (and they run 3 images); this holds it to what the
/// docs promise, at the network's shapes, at odd ones and at images larger than one budget
/// (where a group of 0 would leave `dw` untouched).
#[test]
fn weight_groups_are_the_most_images_within_one_tiles_budget() {
    fn of<S: ConvShape>() -> usize {
        weight_group_len(S::COUT, S::OH, S::OW, S::W)
    }
    assert_eq!(of::<Conv2>(), 3, "conv2");
    for (name, g) in [
        ("conv5", of::<Conv5>()),
        ("conv6", of::<Conv6>()),
        ("conv7", of::<Conv7>()),
    ] {
        assert_eq!(g, 8, "{name}");
    }
    for cout in [1, 8, 15, 16, 32, 48] {
        for k in [1, 3, 5] {
            for (h, w) in [
                (5, 5),
                (8, 8),
                (12, 12),
                (24, 24),
                (26, 26),
                (28, 28),
                (9, 40),
                (50, 50),
                (64, 64),
                (100, 80),
            ] {
                let (oh, ow) = (h - k + 1, w - k + 1);
                let (per_image, budget) = if cout % 16 == 0 {
                    (oh * ow, 2048)
                } else {
                    (wide_vectors(oh, ow, w), 128)
                };
                let g = weight_group_len(cout, oh, ow, w);
                let at =
                    format!("COUT {cout}, {oh}×{ow} of W {w}: group {g}, {per_image} per image");
                assert!((1..=8).contains(&g), "{at}: not in 1..=8");
                assert!(
                    g == 1 || g * per_image <= budget,
                    "{at}: over the budget {budget}"
                );
                assert!(
                    g == 8 || (g + 1) * per_image > budget,
                    "{at}: one more image fits {budget}"
                );
            }
        }
    }
}
