//! `gradspec mnist grad --precision f64`, run as the real binary on the committed MNIST
//! fixture: an F64 file under the parameter names, equal bit for bit to `Net<f64>` run in
//! process on the same images (so it is the same network code, input normalisation included),
//! close to the default f32 gradients, and a one-line error for a bad `--precision`.
mod common;
use gradspec::cnn::safetensors_io::{load, save};
use gradspec::cnn::{Mode, Net, Params, Workspace};
use gradspec::data::{Split, load_split, normalize_into_f64};
use safetensors::{Dtype, SafeTensors};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// f32 against f64 gradients: `|g32 − g64| ≤ F32_VS_F64 · max|g64|` per tensor. f32 rounds
/// each value to 6·10⁻⁸ relative; the loss sums ~10⁵ products per image over 16 images and the
/// backward pass goes through four BatchNorm input gradients, each a difference of sums, so
/// errors of 10⁻⁶–10⁻⁵ of a tensor's largest entry are expected (measured worst 6·10⁻⁶,
/// printed by the test); 10⁻³ leaves room for another CPU's kernels while a wrong
/// gradient (another image range, a missing term) is off by 10⁻¹ or more.
const F32_VS_F64: f64 = 1e-3;

const START: usize = 3;
const COUNT: usize = 16;

fn grad(weights: &Path, out: &Path, precision: Option<&str>) -> Output {
    let dir = weights.parent().unwrap().join("mnist");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_gradspec"));
    cmd.args(["mnist", "grad", "--split", "test"])
        .args(["--start", &START.to_string(), "--count", &COUNT.to_string()])
        .arg("--weights")
        .arg(weights)
        .arg("--out")
        .arg(out)
        .arg("--data-dir")
        .arg(&dir);
    if let Some(p) = precision {
        cmd.args(["--precision", p]);
    }
    cmd.output().expect("the binary runs")
}

/// The file's tensors as f64, checking names, shapes and dtype against the parameter table.
fn read(path: &Path, dtype: Dtype) -> Params<f64> {
    let bytes = std::fs::read(path).unwrap();
    let st = SafeTensors::deserialize(&bytes).unwrap();
    let mut p = Params::<f64>::zeros();
    assert_eq!(
        st.names().len(),
        p.tensors().len(),
        "exactly the 24 parameter tensors"
    );
    for t in p.tensors_mut() {
        let v = st
            .tensor(t.name)
            .unwrap_or_else(|e| panic!("{}: {e}", t.name));
        assert_eq!(v.dtype(), dtype, "{}", t.name);
        assert_eq!(v.shape(), &t.shape[..], "{}", t.name);
        let data = v.data();
        match dtype {
            Dtype::F64 => {
                for (o, b) in t.data.iter_mut().zip(data.chunks_exact(8)) {
                    *o = f64::from_le_bytes(b.try_into().unwrap());
                }
            }
            _ => {
                for (o, b) in t.data.iter_mut().zip(data.chunks_exact(4)) {
                    *o = f64::from(f32::from_le_bytes(b.try_into().unwrap()));
                }
            }
        }
    }
    p
}

/// A weights file in `dir`, beside the data dir of [`common::fixture_data_dir`] (which it
/// also makes).
fn weights(dir: &Path) -> PathBuf {
    common::fixture_data_dir(dir);
    let path = dir.join("w.safetensors");
    // One train-mode pass so the buffers are not the initial ones (they are not used by a
    // train-mode gradient, but they must survive the conversion).
    let mut net = Net::<f32>::new(11);
    let x: Vec<f32> = (0..2 * 784).map(|i| (i % 17) as f32 * 0.1 - 0.4).collect();
    let mut ws = Workspace::new(2);
    ws.load(&x, &[1, 2]);
    net.forward(&mut ws, Mode::Train { dropout: None });
    save(&net, &path).unwrap();
    path
}

#[test]
fn f64_gradients_are_the_f64_network_written_as_f64() {
    let dir = tempfile::tempdir().unwrap();
    let w = weights(dir.path());
    let out64 = dir.path().join("g64.safetensors");
    let o = grad(&w, &out64, Some("f64"));
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let g64 = read(&out64, Dtype::F64);

    // The same computation in process: Net<f64> from the F32 weights, pixels normalised in f64.
    let net32 = load(&w).unwrap();
    let mut net = Net::<f64> {
        params: Box::new(net32.params.cast()),
        buffers: Box::new(net32.buffers.cast()),
    };
    let ds = load_split(&dir.path().join("mnist"), Split::Test).unwrap();
    let mut x = vec![0.0f64; COUNT * 784];
    for (k, xi) in x.chunks_exact_mut(784).enumerate() {
        normalize_into_f64(ds.image(START + k), xi);
    }
    let labels = &ds.labels[START..START + COUNT];
    let mut ws = Workspace::<f64>::new(COUNT);
    ws.load(&x, labels);
    net.forward(&mut ws, Mode::Train { dropout: None });
    let mut want = Params::<f64>::zeros();
    net.backward(&mut ws, &mut want);
    assert_eq!(
        g64, want,
        "the CLI's f64 gradients are Net<f64>'s, bit for bit"
    );
    // Not trivially zero.
    assert!(g64.norms().iter().all(|&(_, n)| n > 0.0));
}

#[test]
fn f64_gradients_agree_with_the_f32_ones() {
    let dir = tempfile::tempdir().unwrap();
    let w = weights(dir.path());
    let (out64, out32) = (dir.path().join("g64.st"), dir.path().join("g32.st"));
    let o = grad(&w, &out64, Some("f64"));
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let o = grad(&w, &out32, None); // the default is f32
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let (g64, g32) = (read(&out64, Dtype::F64), read(&out32, Dtype::F32));
    let mut worst = 0.0f64;
    for (a, b) in g64.tensors().iter().zip(g32.tensors()) {
        let scale = a.data.iter().fold(0.0f64, |m, v| m.max(v.abs()));
        let d = a
            .data
            .iter()
            .zip(b.data)
            .fold(0.0f64, |m, (x, y)| m.max((x - y).abs()));
        let rel = d / scale;
        assert!(
            rel <= F32_VS_F64,
            "{}: f32 vs f64 {rel:.3e} of max|g|",
            a.name
        );
        worst = worst.max(rel);
    }
    eprintln!("mnist grad: f32 vs f64 gradients, worst {worst:.2e} of a tensor's max |g|");
}

#[test]
fn a_bad_precision_is_a_one_line_error() {
    let dir = tempfile::tempdir().unwrap();
    let w = weights(dir.path());
    let out = dir.path().join("g.st");
    let o = grad(&w, &out, Some("f16"));
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert_eq!(err.lines().count(), 1, "one line: {err:?}");
    assert!(err.contains("--precision") && err.contains("f16"), "{err}");
    assert!(!out.exists(), "nothing written");
}
