//! `.safetensors` interchange with PyTorch: round trips, a file written by hand in PyTorch's
//! layout (independently of our writer), every error case, and random corruptions that must
//! give errors, never panics.
mod proptest_cases;
use gradspec::cnn::safetensors_io::{
    from_bytes, load, save, save_params_f32, state_dict_names, to_bytes, to_bytes_with,
};
use gradspec::cnn::{Buffers, Mode, Net, Params, Workspace};
use proptest::prelude::*;
use proptest_cases::fixed_cases;
use rand::{Rng, SeedableRng};
use std::collections::HashMap;

/// A net whose buffers are not the initial ones (one train-mode step).
fn trained_net(seed: u64) -> Net<f32> {
    let mut net = Net::<f32>::new(seed);
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let x: Vec<f32> = (0..2 * 784).map(|_| rng.random_range(-1.0..2.5)).collect();
    let mut ws = Workspace::new(2);
    ws.load(&x, &[3, 7]);
    net.forward(&mut ws, Mode::Train { dropout: None });
    net
}

#[test]
fn bytes_round_trip_exactly() {
    let net = trained_net(1);
    let back = from_bytes(&to_bytes(&net).unwrap(), "mem").unwrap();
    assert_eq!(back, net);
    assert_eq!(back.buffers.bn4.num_batches_tracked, 1);
}

#[test]
fn file_round_trip_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("model.safetensors");
    let net = trained_net(2);
    save(&net, &path).unwrap();
    assert_eq!(load(&path).unwrap(), net);
    // No temporary file is left beside it.
    let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
    assert_eq!(names.len(), 1);
}

/// An untrained net's `num_batches_tracked` is 0, which is a valid count (PyTorch writes 0
/// for a model that never trained); only a negative count is refused.
#[test]
fn a_zero_batch_count_loads_and_a_negative_one_is_refused() {
    let net = Net::<f32>::new(4);
    assert_eq!(net.buffers.bn1.num_batches_tracked, 0);
    assert_eq!(from_bytes(&to_bytes(&net).unwrap(), "fresh").unwrap(), net);

    let mut e = torch_entries("F32");
    let k = index_of(&e, "bn4.num_batches_tracked");
    e[k].bytes = 0i64.to_le_bytes().to_vec();
    let zero = from_bytes(&build(e.clone()), "zero.safetensors").unwrap();
    assert_eq!(zero.buffers.bn4.num_batches_tracked, 0);
    e[k].bytes = (-1i64).to_le_bytes().to_vec();
    let msg = load_err(e);
    assert!(
        msg.contains("tensor 'bn4.num_batches_tracked' is negative (-1)"),
        "{msg}"
    );
}

/// The safetensors format pads the JSON header with spaces so that the data section starts at
/// an offset that is a multiple of 8, and no further: checked for every length of header
/// modulo 8 (metadata values of 0 to 7 extra characters).
#[test]
fn the_header_is_padded_with_at_most_seven_spaces_to_a_multiple_of_8() {
    let net = trained_net(3);
    for extra in 0..8 {
        let meta = HashMap::from([("note".to_string(), "x".repeat(extra))]);
        let bytes = to_bytes_with(&net, &[], meta).unwrap();
        let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
        assert_eq!(n % 8, 0, "header length {n} (extra {extra})");
        let header = &bytes[8..8 + n];
        let json_end = header.iter().rposition(|&b| b == b'}').unwrap() + 1;
        assert!(n - json_end < 8, "{} spaces of padding", n - json_end);
        assert!(header[json_end..].iter().all(|&b| b == b' '));
        assert_eq!(from_bytes(&bytes, "padded").unwrap(), net);
    }
}

/// `Buffers::cast` carries every running mean, variance and batch count across float types,
/// both ways (the f64 checks start from the f32 net's buffers).
#[test]
fn buffers_cast_keeps_every_running_statistic() {
    let net = trained_net(5);
    let wide: Buffers<f64> = net.buffers.cast();
    assert_ne!(wide, Buffers::<f64>::new());
    assert_eq!(wide.bn4.var[3], f64::from(net.buffers.bn4.var[3]));
    assert_eq!(wide.bn5.mean[31], f64::from(net.buffers.bn5.mean[31]));
    assert_eq!(wide.bn1.num_batches_tracked, 1);
    let back: Buffers<f32> = wide.cast();
    assert_eq!(back, *net.buffers);
}

#[test]
fn the_file_holds_the_state_dict_with_torch_dtypes_and_shapes() {
    let bytes = to_bytes(&trained_net(3)).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let mut names: Vec<&str> = st.names();
    names.sort_unstable();
    let mut want = state_dict_names();
    want.sort_unstable();
    assert_eq!(names, want);
    assert_eq!(names.len(), 24 + 12);
    let t = st.tensor("conv2.weight").unwrap();
    assert_eq!(t.shape(), [32, 16, 3, 3]);
    assert_eq!(t.dtype(), safetensors::Dtype::F32);
    let t = st.tensor("fc1.weight").unwrap();
    assert_eq!(t.shape(), [10, 32]);
    let t = st.tensor("bn5.num_batches_tracked").unwrap();
    assert_eq!((t.dtype(), t.shape()), (safetensors::Dtype::I64, &[][..]));
    assert_eq!(t.data(), 1i64.to_le_bytes());
    let (_, meta) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
    assert_eq!(
        meta.metadata().as_ref().and_then(|m| m.get("format")),
        Some(&"pt".to_string())
    );
}

#[test]
fn state_dict_names_follow_module_order() {
    let n = state_dict_names();
    assert_eq!(
        &n[..9],
        [
            "conv1.weight",
            "conv1.bias",
            "bn1.weight",
            "bn1.bias",
            "bn1.running_mean",
            "bn1.running_var",
            "bn1.num_batches_tracked",
            "conv2.weight",
            "conv2.bias"
        ]
    );
    assert_eq!(n.last().unwrap(), "fc1.bias");
}

#[test]
fn gradients_are_written_under_parameter_names() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("grad.safetensors");
    let mut g = Params::<f64>::zeros();
    g.conv3.weight[(5, 2)] = 0.5; // [o=2, c=5, 0, 0]
    save_params_f32(&g, &path).unwrap();
    let bytes = std::fs::read(&path).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    assert_eq!(st.len(), 24);
    let t = st.tensor("conv3.weight").unwrap();
    assert_eq!(t.shape(), [8, 32, 1, 1]);
    let at = (2 * 32 + 5) * 4;
    assert_eq!(&t.data()[at..at + 4], 0.5f32.to_le_bytes());
}

// ------------------------------------------------ a file in PyTorch's layout, built by hand

/// One tensor of a hand-built file.
#[derive(Clone)]
struct Entry {
    name: String,
    dtype: &'static str,
    shape: Vec<usize>,
    bytes: Vec<u8>,
}

/// Builds a safetensors file without the `safetensors` crate: 8-byte little-endian header
/// length, a JSON header (`__metadata__` first, tensors ordered as `safetensors.torch.save_file`
/// orders them: by dtype alignment descending, then by name) padded with spaces to a multiple
/// of 8, then the raw little-endian data in that order.
fn build(mut entries: Vec<Entry>) -> Vec<u8> {
    let rank = |d: &str| match d {
        "I64" => 0,
        "F64" => 1,
        "F32" => 2,
        _ => 3,
    };
    entries.sort_by(|a, b| rank(a.dtype).cmp(&rank(b.dtype)).then(a.name.cmp(&b.name)));
    let mut header = String::from("{\"__metadata__\":{\"format\":\"pt\"}");
    let mut offset = 0;
    for e in &entries {
        let shape: Vec<String> = e.shape.iter().map(|d| d.to_string()).collect();
        header.push_str(&format!(
            ",\"{}\":{{\"dtype\":\"{}\",\"shape\":[{}],\"data_offsets\":[{},{}]}}",
            e.name,
            e.dtype,
            shape.join(","),
            offset,
            offset + e.bytes.len()
        ));
        offset += e.bytes.len();
    }
    header.push('}');
    while !header.len().is_multiple_of(8) {
        header.push(' ');
    }
    let mut out = (header.len() as u64).to_le_bytes().to_vec();
    out.extend_from_slice(header.as_bytes());
    for e in &entries {
        out.extend_from_slice(&e.bytes);
    }
    out
}

/// A recognisable value for element `flat` of tensor number `t`.
fn marker(t: usize, flat: usize) -> f32 {
    t as f32 * 1000.0 + flat as f32 * 0.25
}

/// Every tensor of the state_dict with PyTorch shapes, as `torch` would save them.
fn torch_entries(float: &'static str) -> Vec<Entry> {
    let shapes: Vec<(&str, Vec<usize>)> = vec![
        ("conv1.weight", vec![16, 1, 3, 3]),
        ("conv1.bias", vec![16]),
        ("conv2.weight", vec![32, 16, 3, 3]),
        ("conv2.bias", vec![32]),
        ("conv3.weight", vec![8, 32, 1, 1]),
        ("conv3.bias", vec![8]),
        ("conv4.weight", vec![16, 8, 3, 3]),
        ("conv4.bias", vec![16]),
        ("conv5.weight", vec![32, 16, 3, 3]),
        ("conv5.bias", vec![32]),
        ("conv6.weight", vec![16, 32, 1, 1]),
        ("conv6.bias", vec![16]),
        ("conv7.weight", vec![32, 16, 3, 3]),
        ("conv7.bias", vec![32]),
        ("fc1.weight", vec![10, 32]),
        ("fc1.bias", vec![10]),
    ];
    let mut out = Vec::new();
    let mut push = |name: String, shape: Vec<usize>| {
        let t = out.len();
        let n: usize = shape.iter().product();
        let mut bytes = Vec::new();
        for i in 0..n {
            let v = marker(t, i);
            if float == "F64" {
                bytes.extend_from_slice(&(v as f64).to_le_bytes());
            } else {
                bytes.extend_from_slice(&v.to_le_bytes());
            }
        }
        out.push(Entry {
            name,
            dtype: float,
            shape,
            bytes,
        });
    };
    for (name, shape) in shapes {
        push(name.to_string(), shape);
    }
    for (bn, c) in [("bn1", 16), ("bn2", 32), ("bn4", 16), ("bn5", 32)] {
        for what in ["weight", "bias", "running_mean", "running_var"] {
            push(format!("{bn}.{what}"), vec![c]);
        }
    }
    for (k, bn) in ["bn1", "bn2", "bn4", "bn5"].iter().enumerate() {
        out.push(Entry {
            name: format!("{bn}.num_batches_tracked"),
            dtype: "I64",
            shape: vec![],
            bytes: (100 + k as i64).to_le_bytes().to_vec(),
        });
    }
    out
}

fn index_of(entries: &[Entry], name: &str) -> usize {
    entries.iter().position(|e| e.name == name).unwrap()
}

fn assert_torch_layout(net: &Net<f32>, entries: &[Entry]) {
    let p = &net.params;
    // conv2.weight[o, c, ki, kj] is our weight[((c·3 + ki)·3 + kj), o].
    let t = index_of(entries, "conv2.weight");
    for (o, c, ki, kj) in [(0, 0, 0, 0), (31, 15, 2, 2), (7, 3, 1, 2), (20, 9, 2, 0)] {
        let flat = ((o * 16 + c) * 3 + ki) * 3 + kj;
        assert_eq!(
            p.conv2.weight[((c * 3 + ki) * 3 + kj, o)],
            marker(t, flat),
            "conv2.weight[{o},{c},{ki},{kj}]"
        );
    }
    // conv6 is 1×1: [o, c, 0, 0] is weight[c, o].
    let t = index_of(entries, "conv6.weight");
    assert_eq!(p.conv6.weight[(17, 9)], marker(t, 9 * 32 + 17));
    // fc1.weight[o, i] is our weight[i, o].
    let t = index_of(entries, "fc1.weight");
    assert_eq!(p.fc1.weight[(31, 9)], marker(t, 9 * 32 + 31));
    assert_eq!(p.fc1.weight[(4, 2)], marker(t, 2 * 32 + 4));
    let t = index_of(entries, "bn4.running_var");
    assert_eq!(net.buffers.bn4.var[11], marker(t, 11));
    let t = index_of(entries, "bn2.bias");
    assert_eq!(p.bn2.bias[30], marker(t, 30));
    assert_eq!(net.buffers.bn1.num_batches_tracked, 100);
    assert_eq!(net.buffers.bn5.num_batches_tracked, 103);
}

#[test]
fn loads_a_file_in_pytorch_layout_built_by_hand() {
    let entries = torch_entries("F32");
    let net = from_bytes(&build(entries.clone()), "torch.safetensors").unwrap();
    assert_torch_layout(&net, &entries);
    // And writing it back gives the same tensors (byte for byte per tensor).
    let ours = to_bytes(&net).unwrap();
    let st = safetensors::SafeTensors::deserialize(&ours).unwrap();
    for e in &entries {
        let t = st.tensor(&e.name).unwrap();
        assert_eq!(t.data(), &e.bytes[..], "{}", e.name);
        assert_eq!(t.shape(), &e.shape[..], "{}", e.name);
    }
}

#[test]
fn loads_f64_tensors_converting_them() {
    let entries = torch_entries("F64");
    let net = from_bytes(&build(entries.clone()), "f64.safetensors").unwrap();
    assert_torch_layout(&net, &entries);
}

#[test]
fn accepts_num_batches_tracked_as_a_one_element_tensor() {
    let mut e = torch_entries("F32");
    let k = index_of(&e, "bn2.num_batches_tracked");
    e[k].shape = vec![1];
    assert!(from_bytes(&build(e), "x").is_ok());
}

fn load_err(entries: Vec<Entry>) -> String {
    format!(
        "{:#}",
        from_bytes(&build(entries), "bad.safetensors").unwrap_err()
    )
}

#[test]
fn a_missing_tensor_is_named() {
    let mut e = torch_entries("F32");
    e.retain(|t| t.name != "bn2.running_var");
    let msg = load_err(e);
    assert!(msg.contains("'bad.safetensors'"), "{msg}");
    assert!(msg.contains("missing tensor 'bn2.running_var'"), "{msg}");
}

#[test]
fn an_unexpected_or_misnamed_tensor_is_named() {
    let mut e = torch_entries("F32");
    let k = index_of(&e, "conv1.weight");
    e[k].name = "conv1.weights".into();
    let msg = load_err(e);
    assert!(msg.contains("unexpected tensor 'conv1.weights'"), "{msg}");

    let mut e = torch_entries("F32");
    e.push(Entry {
        name: "conv8.bias".into(),
        dtype: "F32",
        shape: vec![1],
        bytes: vec![0; 4],
    });
    let msg = load_err(e);
    assert!(msg.contains("unexpected tensor 'conv8.bias'"), "{msg}");
}

#[test]
fn a_wrong_shape_is_named() {
    let mut e = torch_entries("F32");
    let k = index_of(&e, "fc1.weight");
    e[k].shape = vec![32, 10]; // transposed: same byte count, wrong layout
    let msg = load_err(e);
    assert!(
        msg.contains("tensor 'fc1.weight' has shape [32, 10], expected [10, 32]"),
        "{msg}"
    );

    let mut e = torch_entries("F32");
    let k = index_of(&e, "bn1.num_batches_tracked");
    e[k].shape = vec![2];
    e[k].bytes = vec![0; 16];
    let msg = load_err(e);
    assert!(
        msg.contains("'bn1.num_batches_tracked' has shape [2]"),
        "{msg}"
    );
}

#[test]
fn a_wrong_dtype_is_named() {
    let mut e = torch_entries("F32");
    let k = index_of(&e, "conv4.bias");
    e[k].dtype = "F16";
    let half = e[k].bytes.len() / 2;
    e[k].bytes.truncate(half);
    let msg = load_err(e);
    assert!(
        msg.contains("tensor 'conv4.bias' has dtype F16, expected F32"),
        "{msg}"
    );

    let mut e = torch_entries("F32");
    let k = index_of(&e, "bn5.num_batches_tracked");
    e[k].dtype = "F64";
    let msg = load_err(e);
    assert!(
        msg.contains("'bn5.num_batches_tracked' has dtype F64, expected I64"),
        "{msg}"
    );
}

#[test]
fn truncated_or_garbage_files_are_rejected_with_the_file_name() {
    let good = to_bytes(&trained_net(4)).unwrap();
    for bad in [
        &good[..good.len() - 1],
        &good[..100],
        &good[..7],
        &[][..],
        b"not a safetensors file at all",
    ] {
        let msg = format!("{:#}", from_bytes(bad, "m.safetensors").unwrap_err());
        assert!(
            msg.starts_with("'m.safetensors': not a valid safetensors file"),
            "{msg}"
        );
    }
}

#[test]
fn a_missing_file_is_named() {
    let msg = format!(
        "{:#}",
        load(std::path::Path::new("/nonexistent/x.safetensors")).unwrap_err()
    );
    assert!(msg.contains("/nonexistent/x.safetensors"), "{msg}");
}

proptest! {
    #![proptest_config(ProptestConfig {
        failure_persistence: Some(Box::new(proptest::test_runner::FileFailurePersistence::Direct(
            "proptest-regressions/cnn_safetensors.txt",
        ))),
        ..fixed_cases(256)
    })]

    /// Random byte changes (biased towards the JSON header) and truncations of a valid file
    /// give a net or an error, never a panic.
    #[test]
    fn corrupted_files_never_panic(
        edits in proptest::collection::vec((0usize..4096, any::<u8>(), any::<bool>()), 1..8),
        cut in proptest::option::of(0usize..80_000),
    ) {
        thread_local!(static GOOD: Vec<u8> = to_bytes(&Net::<f32>::new(5)).unwrap());
        let mut bytes = GOOD.with(|g| g.clone());
        let header = 8 + u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
        for (pos, val, in_header) in edits {
            let at = if in_header { pos % header } else { pos * 17 % bytes.len() };
            bytes[at] = val;
        }
        if let Some(c) = cut {
            bytes.truncate(c.min(bytes.len()));
        }
        let _ = from_bytes(&bytes, "fuzz");
    }
}

// ------------------------------------------------ cross-checks with Python's safetensors

/// `golden/cnn/python_written.safetensors` was written by the official Python library
/// (`safetensors.numpy.save_file`, the same Rust core torch's `save_file` uses) from
/// `tests/python/check_safetensors.py write`: every tensor holds `t·1000 + flat·0.25`, where `t`
/// is its position in the state_dict, and `num_batches_tracked` is a 0-d int64 `200 + t`.
#[test]
fn loads_the_python_written_file() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("golden/cnn/python_written.safetensors");
    let net = load(&path).unwrap();
    let names = state_dict_names();
    let t = |n: &str| names.iter().position(|x| x == n).unwrap();
    let m = |n: &str, flat: usize| t(n) as f32 * 1000.0 + flat as f32 * 0.25;
    let p = &net.params;
    // conv5.weight[o=30, c=11, ki=2, kj=1] is our weight[(11·3 + 2)·3 + 1, 30].
    assert_eq!(
        p.conv5.weight[((11 * 3 + 2) * 3 + 1, 30)],
        m("conv5.weight", ((30 * 16 + 11) * 3 + 2) * 3 + 1)
    );
    assert_eq!(p.conv1.weight[(7, 15)], m("conv1.weight", 15 * 9 + 7));
    assert_eq!(p.conv3.weight[(31, 6)], m("conv3.weight", 6 * 32 + 31));
    assert_eq!(p.fc1.weight[(3, 8)], m("fc1.weight", 8 * 32 + 3));
    assert_eq!(p.fc1.bias[9], m("fc1.bias", 9));
    assert_eq!(p.bn2.weight[5], m("bn2.weight", 5));
    assert_eq!(net.buffers.bn5.mean[31], m("bn5.running_mean", 31));
    assert_eq!(
        net.buffers.bn4.num_batches_tracked,
        200 + t("bn4.num_batches_tracked") as i64
    );
}

/// Writes a checkpoint for `tests/python/check_safetensors.py check` when
/// `GRADSPEC_PY_FIXTURE` names a path; otherwise does nothing.
#[test]
fn writes_a_checkpoint_for_python() {
    if let Ok(path) = std::env::var("GRADSPEC_PY_FIXTURE") {
        save(&trained_net(6), std::path::Path::new(&path)).unwrap();
    }
}

/// A training checkpoint (model + `momentum.*`) given where model weights are expected gets an
/// error that says what it is and which file to use instead.
#[test]
fn a_training_checkpoint_as_model_weights_points_to_best_or_last() {
    let net = gradspec::cnn::Net::<f32>::new(1);
    let momentum = gradspec::cnn::Params::<f32>::zeros();
    let bytes = gradspec::cnn::safetensors_io::to_bytes_with(
        &net,
        &[("momentum.", &momentum)],
        Default::default(),
    )
    .unwrap();
    let err = gradspec::cnn::safetensors_io::from_bytes(&bytes, "checkpoint.safetensors")
        .expect_err("a checkpoint is not a plain state_dict");
    let msg = err.to_string();
    assert!(msg.contains("unexpected tensor 'momentum."), "{msg}");
    assert!(msg.contains("training checkpoint"), "{msg}");
    assert!(
        msg.contains("best.safetensors or last.safetensors"),
        "{msg}"
    );
    assert!(!msg.contains('\n'), "one line: {msg}");
}
