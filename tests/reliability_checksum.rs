//! Checksums in `.safetensors` files (issue #14, item 3): weights, training checkpoints and
//! exported gradients carry a SHA-256 of every tensor and of the other metadata entries.
//!
//! For one real file of each kind, every single bit of the header (length field, JSON, tensor
//! names, dtypes, shapes, offsets, metadata incl. a checkpoint's run state, the checksums
//! themselves and the padding) is flipped in turn, and each load must be an error: one line,
//! naming the file, never a panic and never a success. Bits in the data section are flipped in
//! the first and last byte of every tensor, and the error must name that tensor. Files without
//! checksums (PyTorch's) still load; files with only some checksums do not.
use gradspec::cnn::safetensors_io::{
    self, Checksums, METADATA_SUM_KEY, TENSOR_SUM_PREFIX, from_bytes, save, save_params_f32,
    save_params_f64, state_dict_names, to_bytes, verify,
};
use gradspec::cnn::{Mode, Net, Params, Workspace};
use gradspec::train::checkpoint::{self, RunState};
use gradspec::train::{EpochMetrics, RunOptions, recipe::Recipe};
use rand::{Rng, SeedableRng};
use std::path::Path;

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

/// Random values in every tensor, so no tensor is all zeros.
fn random_params(seed: u64) -> Params<f64> {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let mut p = Params::<f64>::zeros();
    for t in p.tensors_mut() {
        for v in t.data.iter_mut() {
            *v = rng.random_range(-1.0..1.0);
        }
    }
    p
}

fn run_state() -> RunState {
    RunState {
        options: RunOptions {
            recipe: Recipe::Onecycle,
            epochs: 12,
            seed: 7,
            train_limit: Some(4096),
        },
        completed_epochs: 2,
        step: 938,
        best_acc: 0.9871,
        best_epoch: 2,
        metrics: (1..=2)
            .map(|epoch| EpochMetrics {
                epoch,
                lr: 0.05 / epoch as f64,
                train_loss: 0.5 / epoch as f64,
                train_acc: 0.9,
                test_loss: 0.07,
                test_acc: 0.98 + epoch as f64 * 0.003,
                seconds: 12.5,
            })
            .collect(),
    }
}

/// Header length (the 8-byte field included).
fn header_end(bytes: &[u8]) -> usize {
    8 + u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize
}

/// Tensors in file order: name and data byte range within the file.
fn tensor_ranges(bytes: &[u8]) -> Vec<(String, std::ops::Range<usize>)> {
    let end = header_end(bytes);
    let (_, header) = safetensors::SafeTensors::read_metadata(bytes).unwrap();
    header
        .offset_keys()
        .into_iter()
        .map(|name| {
            let (s, e) = header.info(&name).unwrap().data_offsets;
            (name, end + s..end + e)
        })
        .collect()
}

/// Flips every bit of the header, one at a time; each `load` must fail with a one-line error
/// naming `what`.
fn every_header_bit_flip_fails(
    bytes: &[u8],
    what: &str,
    load: impl Fn(&[u8]) -> Option<String> + Sync,
) {
    let end = header_end(bytes);
    // Split across the cores: ~100k loads for a checkpoint.
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
    let chunk = end.div_ceil(threads);
    std::thread::scope(|s| {
        for start in (0..end).step_by(chunk) {
            let load = &load;
            s.spawn(move || {
                let mut buf = bytes.to_vec();
                for at in start..(start + chunk).min(end) {
                    for bit in 0..8 {
                        buf[at] ^= 1 << bit;
                        match load(&buf) {
                            None => panic!("{what}: flipping bit {bit} of byte {at} still loads"),
                            Some(msg) => {
                                assert!(msg.contains(&format!("'{what}'")), "byte {at}: {msg}");
                                assert!(!msg.contains('\n'), "byte {at}: not one line: {msg}");
                            }
                        }
                        buf[at] ^= 1 << bit;
                    }
                }
            });
        }
    });
}

/// Flips one bit in the first and in the last byte of every tensor; the error must name it.
fn every_tensor_flip_is_named(bytes: &[u8], what: &str, load: impl Fn(&[u8]) -> Option<String>) {
    let mut buf = bytes.to_vec();
    for (name, range) in tensor_ranges(bytes) {
        for (at, bit) in [(range.start, 0), (range.end - 1, 7), (range.end - 1, 3)] {
            buf[at] ^= 1 << bit;
            let msg = load(&buf)
                .unwrap_or_else(|| panic!("{what}: a flipped bit in '{name}' still loads"));
            assert_eq!(
                msg,
                format!("'{what}': tensor '{name}' fails its checksum (file is corrupt)")
            );
            buf[at] ^= 1 << bit;
        }
    }
}

fn model_load(what: &'static str) -> impl Fn(&[u8]) -> Option<String> {
    move |b| from_bytes(b, what).err().map(|e| format!("{e:#}"))
}

fn checkpoint_load(what: &'static str) -> impl Fn(&[u8]) -> Option<String> {
    move |b| {
        checkpoint::from_bytes(b, what)
            .err()
            .map(|e| format!("{e:#}"))
    }
}

fn grad_load(what: &'static str) -> impl Fn(&[u8]) -> Option<String> {
    move |b| verify(b, what).err().map(|e| format!("{e:#}"))
}

#[test]
fn weights_every_header_bit_and_every_tensor() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("last.safetensors");
    let net = trained_net(1);
    save(&net, &path).unwrap();
    let bytes = std::fs::read(&path).unwrap();
    assert_eq!(verify(&bytes, "w").unwrap(), Checksums::Verified);
    assert_eq!(from_bytes(&bytes, "w").unwrap(), net);
    every_header_bit_flip_fails(&bytes, "last.safetensors", model_load("last.safetensors"));
    every_tensor_flip_is_named(&bytes, "last.safetensors", model_load("last.safetensors"));

    // Through the file API, the error names the path.
    let (name, range) = tensor_ranges(&bytes).pop().unwrap();
    let mut bad = bytes.clone();
    bad[range.start + 1] ^= 0x10;
    std::fs::write(&path, &bad).unwrap();
    let msg = format!("{:#}", safetensors_io::load(&path).unwrap_err());
    assert_eq!(
        msg,
        format!(
            "'{}': tensor '{name}' fails its checksum (file is corrupt)",
            path.display()
        )
    );
}

#[test]
fn checkpoint_every_header_bit_and_every_tensor() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("checkpoint.safetensors");
    let net = trained_net(2);
    let velocity = random_params(3).cast();
    let state = run_state();
    checkpoint::save(&path, &net, &velocity, &state).unwrap();
    let bytes = std::fs::read(&path).unwrap();
    assert_eq!(verify(&bytes, "c").unwrap(), Checksums::Verified);
    let (n, v, s) = checkpoint::load(&path).unwrap();
    assert_eq!((n, v, s), (net, velocity, state));
    every_header_bit_flip_fails(&bytes, "ck.safetensors", checkpoint_load("ck.safetensors"));
    every_tensor_flip_is_named(&bytes, "ck.safetensors", checkpoint_load("ck.safetensors"));

    // A flip inside the run state's JSON is caught by the metadata checksum, not by the JSON
    // parser: change a digit of `step` into another digit.
    let at = find(&bytes[..header_end(&bytes)], b"\\\"step\\\":938").unwrap() + 10;
    let mut bad = bytes.clone();
    bad[at] ^= 0x01; // '9' → '8'
    std::fs::write(&path, &bad).unwrap();
    let msg = format!("{:#}", checkpoint::load(&path).unwrap_err());
    assert_eq!(
        msg,
        format!(
            "'{}': the metadata fails its checksum (file is corrupt)",
            path.display()
        )
    );
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

#[test]
fn gradients_every_header_bit_and_every_tensor() {
    let dir = tempfile::tempdir().unwrap();
    let g = random_params(4);
    for (name, save_fn) in [
        (
            "g32.safetensors",
            save_params_f32::<f64> as fn(&Params<f64>, &Path) -> gradspec::Result<()>,
        ),
        ("g64.safetensors", save_params_f64::<f64>),
    ] {
        let path = dir.path().join(name);
        save_fn(&g, &path).unwrap();
        let bytes = std::fs::read(&path).unwrap();
        assert_eq!(verify(&bytes, name).unwrap(), Checksums::Verified);
        every_header_bit_flip_fails(&bytes, name, grad_load(name));
        every_tensor_flip_is_named(&bytes, name, grad_load(name));
    }
}

/// Two damaged tensors: the error names the first in `state_dict` order, not in file order
/// (where `bn*.num_batches_tracked` and then the names in alphabetical order come first).
#[test]
fn the_first_failing_tensor_in_state_dict_order_is_named() {
    let bytes = to_bytes(&trained_net(5)).unwrap();
    let ranges = tensor_ranges(&bytes);
    let order = state_dict_names();
    let file_order: Vec<&str> = ranges.iter().map(|(n, _)| n.as_str()).collect();
    assert_ne!(file_order[0], order[0]);
    let mut bad = bytes.clone();
    for name in ["fc1.bias", "conv1.weight", "bn1.num_batches_tracked"] {
        let r = &ranges.iter().find(|(n, _)| n == name).unwrap().1;
        bad[r.start] ^= 0x80;
    }
    let msg = format!("{:#}", from_bytes(&bad, "m").unwrap_err());
    assert_eq!(
        msg,
        "'m': tensor 'conv1.weight' fails its checksum (file is corrupt)"
    );
}

// ------------------------------------------------ files without checksums, partial checksums

/// Rewrites the header JSON of `bytes` (keeping the data section), re-padding it to 8 bytes.
fn edit_header(
    bytes: &[u8],
    f: impl FnOnce(&mut serde_json::Map<String, serde_json::Value>),
) -> Vec<u8> {
    let end = header_end(bytes);
    let mut json: serde_json::Value = serde_json::from_slice(&bytes[8..end]).unwrap();
    f(json.as_object_mut().unwrap());
    let mut header = serde_json::to_string(&json).unwrap();
    while !header.len().is_multiple_of(8) {
        header.push(' ');
    }
    let mut out = (header.len() as u64).to_le_bytes().to_vec();
    out.extend_from_slice(header.as_bytes());
    out.extend_from_slice(&bytes[end..]);
    out
}

fn edit_metadata(
    bytes: &[u8],
    f: impl FnOnce(&mut serde_json::Map<String, serde_json::Value>),
) -> Vec<u8> {
    edit_header(bytes, |h| {
        f(h["__metadata__"].as_object_mut().unwrap());
    })
}

#[test]
fn a_file_written_by_python_without_checksums_still_loads() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("golden/cnn/python_written.safetensors");
    let bytes = std::fs::read(&path).unwrap();
    let (_, header) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
    assert_eq!(
        header
            .metadata()
            .as_ref()
            .unwrap()
            .keys()
            .collect::<Vec<_>>(),
        ["format"],
        "the fixture has no checksums"
    );
    assert_eq!(verify(&bytes, "py").unwrap(), Checksums::Absent);
    safetensors_io::load(&path).unwrap();
}

#[test]
fn a_gradspec_file_with_every_checksum_removed_loads() {
    let net = trained_net(6);
    let bytes = to_bytes(&net).unwrap();
    let stripped = edit_metadata(&bytes, |m| {
        m.retain(|k, _| !k.starts_with(METADATA_SUM_KEY));
        assert_eq!(m.len(), 1);
    });
    assert_eq!(verify(&stripped, "s").unwrap(), Checksums::Absent);
    assert_eq!(from_bytes(&stripped, "s").unwrap(), net);
    // And without any metadata at all.
    let bare = edit_header(&bytes, |h| {
        h.remove("__metadata__");
    });
    assert_eq!(from_bytes(&bare, "s").unwrap(), net);
}

type MetaEdit = Box<dyn Fn(&mut serde_json::Map<String, serde_json::Value>)>;

#[test]
fn partial_checksums_are_an_error() {
    let bytes = to_bytes(&trained_net(7)).unwrap();
    let cases: Vec<(MetaEdit, &str)> = vec![
        (
            Box::new(|m| {
                m.remove(&format!("{TENSOR_SUM_PREFIX}bn2.running_var"));
            }),
            "'p': tensor 'bn2.running_var' has no checksum, but other entries have one (file is corrupt)",
        ),
        (
            Box::new(|m| {
                m.remove(METADATA_SUM_KEY);
            }),
            "'p': the tensors have checksums but the metadata has none (file is corrupt)",
        ),
        (
            Box::new(|m| {
                m.retain(|k, _| k == "format" || k == METADATA_SUM_KEY);
            }),
            "'p': tensor 'conv1.weight' has no checksum, but other entries have one (file is corrupt)",
        ),
        (
            Box::new(|m| {
                m.insert(format!("{TENSOR_SUM_PREFIX}conv9.weight"), "00".into());
            }),
            "'p': the metadata holds a checksum for tensor 'conv9.weight', which the file does not hold (file is corrupt)",
        ),
        (
            Box::new(|m| {
                m.insert("note".into(), "added later".into());
            }),
            "'p': the metadata fails its checksum (file is corrupt)",
        ),
        (
            Box::new(|m| {
                let k = format!("{TENSOR_SUM_PREFIX}fc1.weight");
                let v = m[&k].as_str().unwrap().to_uppercase();
                m.insert(k, v.into());
            }),
            "'p': tensor 'fc1.weight' fails its checksum (file is corrupt)",
        ),
    ];
    for (edit, want) in cases {
        let bad = edit_metadata(&bytes, edit);
        assert_eq!(format!("{:#}", from_bytes(&bad, "p").unwrap_err()), want);
        assert_eq!(format!("{:#}", verify(&bad, "p").unwrap_err()), want);
    }
}

/// A tensor renamed in the header (its checksum key left as it was) is caught by the checksums
/// before the name check, and the message says the file is corrupt.
#[test]
fn a_renamed_tensor_is_reported_as_corruption() {
    let bytes = to_bytes(&trained_net(8)).unwrap();
    let bad = edit_header(&bytes, |h| {
        let v = h.remove("conv3.bias").unwrap();
        h.insert("conv3.biat".into(), v);
    });
    let msg = format!("{:#}", from_bytes(&bad, "r").unwrap_err());
    assert_eq!(
        msg,
        "'r': tensor 'conv3.biat' has no checksum, but other entries have one (file is corrupt)"
    );
}

/// Saving twice gives the same bytes (the metadata is written in sorted order), so resumed and
/// uninterrupted runs can be compared byte for byte.
#[test]
fn files_are_deterministic() {
    let net = trained_net(9);
    assert_eq!(to_bytes(&net).unwrap(), to_bytes(&net).unwrap());
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("a"), dir.path().join("b"));
    let v = random_params(10).cast();
    checkpoint::save(&a, &net, &v, &run_state()).unwrap();
    checkpoint::save(&b, &net, &v, &run_state()).unwrap();
    assert_eq!(std::fs::read(a).unwrap(), std::fs::read(b).unwrap());
}

/// Error messages stay on one line even when a (checksum-less) file holds a tensor name or a
/// run state with a newline in it.
#[test]
fn errors_are_one_line_even_for_names_with_newlines() {
    let bytes = to_bytes(&trained_net(11)).unwrap();
    let stripped = edit_metadata(&bytes, |m| m.retain(|k, _| k == "format"));
    let bad = edit_header(&stripped, |h| {
        let v = h.remove("conv3.bias").unwrap();
        h.insert("conv3\nbias".into(), v);
    });
    let msg = format!("{:#}", from_bytes(&bad, "n").unwrap_err());
    assert_eq!(
        msg,
        "'n': unexpected tensor 'conv3\\nbias' (not part of the model's state_dict)"
    );

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ck");
    let net = trained_net(12);
    checkpoint::save(&path, &net, &Params::zeros(), &run_state()).unwrap();
    let bytes = std::fs::read(&path).unwrap();
    let bad = edit_metadata(&bytes, |m| {
        m.retain(|k, _| !k.starts_with(METADATA_SUM_KEY));
        let state = m["gradspec.run_state"].as_str().unwrap();
        let state = state.replace("\"onecycle\"", "\"one\\ncycle\"");
        m.insert("gradspec.run_state".into(), state.into());
    });
    let msg = format!("{:#}", checkpoint::from_bytes(&bad, "ck").unwrap_err());
    assert!(!msg.contains('\n'), "{msg}");
    assert!(
        msg.starts_with("'ck': run state is unreadable: unknown variant"),
        "{msg}"
    );
}

// ------------------------------------------------ the run state's floats

/// A checkpoint's run state comes back bit for bit, 17-digit floats included. serde_json parses
/// such numbers to the nearest f64 only with its `float_roundtrip` feature; without it about
/// one loss value in ten came back one ulp off, so a resumed run rewrote metrics.csv with
/// different last digits, and a `best_acc` read one ulp low would let a later epoch with the
/// same accuracy replace best.safetensors, which the uninterrupted run keeps.
#[test]
fn run_state_floats_round_trip_exactly() {
    let mut state = run_state();
    // Each prints as 17 significant digits and was read back one ulp off before the fix.
    let values = [
        0.20413729264315406,
        0.9856906946328695,
        0.18842739248731966,
        1.4589149519184461,
    ];
    for (m, &v) in state.metrics.iter_mut().zip(&values) {
        m.train_loss = v;
        m.test_loss = v / 3.0;
        m.lr = v * 1e-3;
    }
    state.best_acc = values[3] * 10.0;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ck");
    checkpoint::save(&path, &trained_net(16), &Params::zeros(), &state).unwrap();
    let (_, _, back) = checkpoint::load(&path).unwrap();
    for (a, b) in back.metrics.iter().zip(&state.metrics) {
        assert_eq!(a.train_loss.to_bits(), b.train_loss.to_bits());
        assert_eq!(a.test_loss.to_bits(), b.test_loss.to_bits());
        assert_eq!(a.lr.to_bits(), b.lr.to_bits());
    }
    assert_eq!(back.best_acc.to_bits(), state.best_acc.to_bits());
    assert_eq!(back, state);
}

// ------------------------------------------------ seeds for the fuzz targets

/// Writes seed inputs for the `weights` and `checkpoint` fuzz targets into
/// `$GRADSPEC_FUZZ_SEEDS/{weights,checkpoint}/` when that variable is set; otherwise does
/// nothing. Real files with and without checksums, a PyTorch-written file, and truncations.
#[test]
fn writes_fuzz_seeds() {
    let Ok(dir) = std::env::var("GRADSPEC_FUZZ_SEEDS") else {
        return;
    };
    let dir = Path::new(&dir);
    let write = |sub: &str, name: &str, bytes: &[u8]| {
        std::fs::create_dir_all(dir.join(sub)).unwrap();
        std::fs::write(dir.join(sub).join(name), bytes).unwrap();
    };
    let no_sums = |bytes: &[u8]| {
        edit_metadata(bytes, |m| {
            m.retain(|k, _| k == "format" || k == "gradspec.run_state")
        })
    };
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));

    let net = trained_net(13);
    let weights = to_bytes(&net).unwrap();
    write("weights", "weights.safetensors", &weights);
    write(
        "weights",
        "weights_no_checksums.safetensors",
        &no_sums(&weights),
    );
    write(
        "weights",
        "weights_header_only",
        &weights[..header_end(&weights)],
    );
    write(
        "weights",
        "weights_cut_in_data",
        &weights[..weights.len() / 2],
    );
    let py = std::fs::read(root.join("golden/cnn/python_written.safetensors")).unwrap();
    write("weights", "python_written.safetensors", &py);
    let torch = std::fs::read(root.join("tests/fixtures/torch/maxpool_ties.safetensors")).unwrap();
    write("weights", "torch_maxpool_ties.safetensors", &torch);
    let tmp = tempfile::tempdir().unwrap();
    save_params_f32(&random_params(14), &tmp.path().join("g")).unwrap();
    write(
        "weights",
        "grad_f32.safetensors",
        &std::fs::read(tmp.path().join("g")).unwrap(),
    );

    let ck = tmp.path().join("ck");
    checkpoint::save(&ck, &net, &random_params(15).cast(), &run_state()).unwrap();
    let ck = std::fs::read(ck).unwrap();
    write("checkpoint", "checkpoint.safetensors", &ck);
    write(
        "checkpoint",
        "checkpoint_no_checksums.safetensors",
        &no_sums(&ck),
    );
    write(
        "checkpoint",
        "checkpoint_header_only",
        &ck[..header_end(&ck)],
    );
    write("checkpoint", "weights.safetensors", &weights);
    write("checkpoint", "torch_maxpool_ties.safetensors", &torch);
}
