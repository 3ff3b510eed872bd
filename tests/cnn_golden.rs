//! Golden snapshots under golden/cnn/: the torchsummary table, the parameter count per layer,
//! and the loss, per-tensor gradient norms and pinned gradient entries, signed sums and
//! weighted checksums of one deterministic forward+backward pass in f64 (6 significant digits)
//! and f32 (4 significant digits). Rounding before snapshotting keeps
//! another CPU's last-bit differences from breaking them.
use gradspec::cnn::net::DropoutKey;
use gradspec::cnn::summary::{rows, summary, thousands};
use gradspec::cnn::{Float, Mode, Net, PARAM_COUNT, Params, Workspace};
use rand::{Rng, SeedableRng};
use std::fmt::Write;

macro_rules! golden {
    ($name:expr, $value:expr) => {
        insta::with_settings!({snapshot_path => "../golden/cnn", prepend_module_to_snapshot => false}, {
            insta::assert_snapshot!($name, $value);
        })
    };
}

#[test]
fn summary_table_matches_torchsummary() {
    let s = summary();
    assert!(s.contains("Total params: 16,562\n"));
    golden!("summary", s);
}

#[test]
fn summary_rows_follow_torchsummary_hook_order() {
    let kinds: Vec<&str> = rows().iter().map(|r| r.kind).collect();
    assert_eq!(
        kinds,
        [
            "Conv2d",
            "BatchNorm2d",
            "Dropout",
            "Conv2d",
            "BatchNorm2d",
            "Dropout",
            "Conv2d",
            "MaxPool2d",
            "Conv2d",
            "BatchNorm2d",
            "Dropout",
            "Conv2d",
            "BatchNorm2d",
            "Dropout",
            "Conv2d",
            "MaxPool2d",
            "Conv2d",
            "AvgPool2d",
            "Linear"
        ]
    );
    assert_eq!(thousands(0), "0");
    assert_eq!(thousands(330), "330");
    assert_eq!(thousands(4640), "4,640");
    assert_eq!(thousands(1_234_567), "1,234,567");
}

#[test]
fn parameter_count_per_layer() {
    let p = Params::<f32>::zeros();
    let mut s = String::new();
    let mut layer = String::new();
    let mut layer_total = 0;
    let mut total = 0;
    for t in p.tensors() {
        let name = t.name.split('.').next().unwrap().to_string();
        if name != layer && !layer.is_empty() {
            writeln!(s, "{layer}: {}", thousands(layer_total)).unwrap();
            layer_total = 0;
        }
        layer = name;
        assert_eq!(
            t.shape.iter().product::<usize>(),
            t.data.len(),
            "{}",
            t.name
        );
        writeln!(s, "  {} {:?} = {}", t.name, t.shape, t.data.len()).unwrap();
        layer_total += t.data.len();
        total += t.data.len();
    }
    writeln!(s, "{layer}: {}", thousands(layer_total)).unwrap();
    writeln!(s, "total: {}", thousands(total)).unwrap();
    assert_eq!(total, PARAM_COUNT);
    assert_eq!(total, 16_562);
    golden!("param_count", s);
}

/// 4 pseudo-random images (ChaCha8, seed 42, pixels in [−1, 2.5]) with labels 0, 3, 6, 9.
fn golden_batch<T: Float>() -> (Vec<T>, Vec<u8>) {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(42);
    let x = (0..4 * 784)
        .map(|_| T::c(rng.random_range(-1.0..2.5)))
        .collect();
    (x, vec![0, 3, 6, 9])
}

/// Loss and gradients of `Net::<T>::new(0)` on [`golden_batch`], train mode with dropout key
/// {seed 1, step 0}.
fn pass<T: Float>() -> (f64, Params<T>) {
    let mut net = Net::<T>::new(0);
    let (x, y) = golden_batch::<T>();
    let mut ws = Workspace::new(4);
    ws.load(&x, &y);
    let out = net.forward(
        &mut ws,
        Mode::Train {
            dropout: Some(DropoutKey { seed: 1, step: 0 }),
        },
    );
    let mut g = Params::zeros();
    net.backward(&mut ws, &mut g);
    (out.loss, g)
}

/// One pinned number of a gradient tensor: its label, its value, and the scale whose grid it
/// is printed on (see [`on_grid`]).
struct Pin {
    label: String,
    value: f64,
    scale: f64,
}

/// What pins each gradient tensor beyond its norm, so that a permuted, sign-flipped or
/// partly wrong gradient changes the snapshot: the entries at `0`, `len/3`, `2·len/3` and
/// `len − 1` (on the grid of `max|g|`), the signed sum `Σ g_i` (on the grid of `Σ|g_i|`) and
/// the weighted checksum `Σ (i+1)·g_i` (on the grid of `Σ (i+1)·|g_i|`).
fn pins<T: Float>(g: &Params<T>) -> Vec<(&'static str, Vec<Pin>)> {
    g.tensors()
        .iter()
        .map(|t| {
            let v: Vec<f64> = t.data.iter().map(|a| a.f64()).collect();
            let n = v.len();
            let max = v.iter().fold(0.0f64, |m, a| m.max(a.abs()));
            let mut idx = vec![0, n / 3, 2 * n / 3, n - 1];
            idx.dedup();
            let mut p: Vec<Pin> = idx
                .into_iter()
                .map(|i| Pin {
                    label: format!("g[{i}]"),
                    value: v[i],
                    scale: max,
                })
                .collect();
            p.push(Pin {
                label: "Σg".into(),
                value: v.iter().sum(),
                scale: v.iter().map(|a| a.abs()).sum(),
            });
            let w = |f: fn(f64) -> f64| -> f64 {
                v.iter()
                    .enumerate()
                    .map(|(i, &a)| (i + 1) as f64 * f(a))
                    .sum()
            };
            p.push(Pin {
                label: "Σ(i+1)g".into(),
                value: w(|a| a),
                scale: w(f64::abs),
            });
            (t.name, p)
        })
        .collect()
}

/// `v` in fixed point with as many decimals as `scale` has at `digits` significant digits
/// (`scale = 0.01234` and 6 digits: 7 decimals). Values far below their scale, such as a sum
/// that cancels, print as `0` instead of as rounding noise. No `-0`.
fn on_grid(v: f64, scale: f64, digits: usize) -> String {
    if scale == 0.0 {
        return "0".into();
    }
    let e = scale.log10().floor() as i32;
    let decimals = (digits as i32 - 1 - e).max(0) as usize;
    let k = (v * 10f64.powi(decimals as i32)).round();
    if k == 0.0 {
        return "0".into();
    }
    format!("{:.decimals$}", k / 10f64.powi(decimals as i32))
}

/// The loss and the gradient norms (`digits` significant digits), then the [`pins`] of every
/// gradient tensor (on their grids at `digits` digits).
fn fingerprint<T: Float>(digits: usize) -> String {
    let (loss, g) = pass::<T>();
    let p = digits - 1;
    let mut s = format!("loss = {loss:.p$e}\n");
    for (name, norm) in g.norms() {
        writeln!(s, "|d {name}| = {norm:.p$e}").unwrap();
    }
    for (name, pins) in pins(&g) {
        let body: Vec<String> = pins
            .iter()
            .map(|q| format!("{} = {}", q.label, on_grid(q.value, q.scale, digits)))
            .collect();
        writeln!(s, "d {name}: {}", body.join(", ")).unwrap();
    }
    s
}

/// Verifies r[cnn.nll.forward] r[cnn.conv.backward_weight] r[cnn.conv.backward_bias] r[cnn.bn.backward_params] r[cnn.linear.backward_weight] r[cnn.linear.backward_bias].
/// Checks `cnn.nll.forward` (the loss) and, through pinned norms, entries, signed sums and weighted
/// checksums, that the network's backward pass (`cnn.conv.backward_weight` `cnn.conv.backward_bias`
/// `cnn.bn.backward_params` `cnn.linear.backward_weight` `cnn.linear.backward_bias`) reproduces the
/// recorded f64 gradients.
#[test]
fn loss_and_gradient_norms_f64() {
    golden!("gradients_f64", fingerprint::<f64>(6));
}

/// f32 runs the same code as f64: the loss and every gradient norm agree to 1e-3 relative,
/// and every pinned entry, sum and checksum to 1e-3 of its scale.
#[test]
fn f32_agrees_with_f64() {
    let ((l32, g32), (l64, g64)) = (pass::<f32>(), pass::<f64>());
    assert!((l32 - l64).abs() <= 1e-3 * l64.abs(), "{l32} vs {l64}");
    for ((name, x), (_, y)) in g32.norms().iter().zip(g64.norms()) {
        assert!((x - y).abs() <= 1e-3 * y.abs(), "|d {name}|: {x} vs {y}");
    }
    for ((name, a), (_, b)) in pins(&g32).iter().zip(pins(&g64)) {
        for (x, y) in a.iter().zip(&b) {
            let err = (x.value - y.value).abs();
            assert!(
                err <= 1e-3 * y.scale,
                "d {name} {}: {} vs {} (scale {})",
                x.label,
                x.value,
                y.value,
                y.scale
            );
        }
    }
}

/// Verifies r[cnn.conv.backward_weight] r[cnn.conv.backward_bias] r[cnn.bn.backward_params] r[cnn.linear.backward_weight] r[cnn.linear.backward_bias] r[cnn.nll.forward].
/// Checks, as the f64 snapshot does, the f32 instance of the same backward pass (`cnn.conv.backward_weight`
/// `cnn.conv.backward_bias` `cnn.bn.backward_params` `cnn.linear.backward_weight`
/// `cnn.linear.backward_bias`) and `cnn.nll.forward`.
#[test]
fn loss_and_gradient_norms_f32() {
    golden!("gradients_f32", fingerprint::<f32>(4));
}

/// A permuted or sign-flipped gradient (same norms) and one wrong unpinned entry change the
/// f64 fingerprint.
#[test]
fn fingerprint_sees_a_permutation_a_sign_flip_and_one_wrong_entry() {
    let (_, g) = pass::<f64>();
    let show = |g: &Params<f64>| -> Vec<String> {
        pins(g)
            .iter()
            .map(|(_, p)| {
                p.iter()
                    .map(|q| on_grid(q.value, q.scale, 6))
                    .collect::<Vec<_>>()
                    .join(",")
            })
            .collect()
    };
    let base = show(&g);
    let k = 4; // conv2.weight
    let n = g.tensors()[k].data.len();
    let mut swapped = g.clone();
    swapped.tensors_mut()[k].data.swap(100, 2000);
    let mut flipped = g.clone();
    flipped.conv2.bias.iter_mut().for_each(|v| *v = -*v);
    for (what, bad) in [("swap", &swapped), ("sign flip", &flipped)] {
        assert_eq!(bad.norms(), g.norms(), "{what}: the norms cannot see it");
        assert_ne!(show(bad), base, "{what}");
    }
    // One unpinned entry off by 10% of the tensor's largest |gradient|: seen by the sums (their
    // grid is 10⁻⁵·Σ|g| ≤ 10⁻⁵·n·max|g| ≈ 0.05·max|g| for conv2.weight).
    let mut one = g.clone();
    let max = g.conv2.weight.iter().fold(0.0f64, |m, v| m.max(v.abs()));
    one.tensors_mut()[k].data[n / 2 + 7] += 0.1 * max;
    assert_ne!(show(&one), base, "one entry");
}

#[test]
fn summary_command_prints_the_table() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_gradspec"))
        .args(["mnist", "summary"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(stdout.contains("Total params: 16,562"), "{stdout}");
    assert_eq!(stdout, summary());
}
