//! Golden snapshots under golden/cnn/: the torchsummary table, the parameter count per layer,
//! and the loss and per-tensor gradient norms of one deterministic forward+backward pass in f64
//! (6 significant digits) and f32 (4 significant digits). Rounding before snapshotting keeps
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

/// Loss and gradient norms of `Net::<T>::new(0)` on [`golden_batch`], train mode with dropout
/// key {seed 1, step 0}, each printed with `digits` significant digits.
fn fingerprint<T: Float>(digits: usize) -> String {
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
    let p = digits - 1;
    let mut s = format!("loss = {:.p$e}\n", out.loss);
    for (name, norm) in g.norms() {
        writeln!(s, "|d {name}| = {norm:.p$e}").unwrap();
    }
    s
}

#[test]
fn loss_and_gradient_norms_f64() {
    golden!("gradients_f64", fingerprint::<f64>(6));
}

/// f32 runs the same code as f64: the loss and every gradient norm agree to 1e-3 relative.
#[test]
fn f32_agrees_with_f64() {
    let parse = |s: String| -> Vec<f64> {
        s.lines()
            .map(|l| l.rsplit(' ').next().unwrap().parse().unwrap())
            .collect()
    };
    let (a, b) = (parse(fingerprint::<f32>(8)), parse(fingerprint::<f64>(8)));
    for (x, y) in a.iter().zip(&b) {
        assert!((x - y).abs() <= 1e-3 * y.abs(), "{x} vs {y}");
    }
}

#[test]
fn loss_and_gradient_norms_f32() {
    golden!("gradients_f32", fingerprint::<f32>(4));
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
