//! The training loop on the committed fixture (512 real MNIST test images used as a tiny
//! training set): determinism across thread counts, bit-identical resume (in-process and after
//! SIGKILL), divergence handling and bad flags.
use gradspec::data::{self, Split};
use gradspec::train::{self, RunOptions, TrainConfig, recipe::Recipe};
use std::path::{Path, PathBuf};
use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_gradspec");

fn fixture_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/mnist")
}

fn fixture() -> data::Dataset {
    data::load_split(&fixture_dir(), Split::Test).expect("fixture loads")
}

/// A data dir whose train and test splits are both the fixture.
fn fixture_as_full_dir(tmp: &Path) -> PathBuf {
    let d = tmp.join("mnist");
    std::fs::create_dir_all(&d).unwrap();
    for (src, dsts) in [
        (
            "t10k-images-idx3-ubyte.gz",
            ["t10k-images-idx3-ubyte.gz", "train-images-idx3-ubyte.gz"],
        ),
        (
            "t10k-labels-idx1-ubyte.gz",
            ["t10k-labels-idx1-ubyte.gz", "train-labels-idx1-ubyte.gz"],
        ),
    ] {
        for dst in dsts {
            std::fs::copy(fixture_dir().join(src), d.join(dst)).unwrap();
        }
    }
    d
}

fn cfg(out: &Path, epochs: usize) -> TrainConfig {
    TrainConfig {
        options: RunOptions {
            recipe: Recipe::Onecycle,
            epochs,
            seed: 7,
            train_limit: None,
        },
        out: out.to_path_buf(),
        stop_after: None,
    }
}

fn weight_bits(net: &gradspec::cnn::Net<f32>) -> Vec<u32> {
    let mut v: Vec<u32> = net
        .params
        .tensors()
        .iter()
        .flat_map(|t| t.data.iter().map(|x| x.to_bits()))
        .collect();
    for (_, m, var, n) in net.buffers.tensors() {
        v.extend(m.iter().chain(var).map(|x| x.to_bits()));
        v.push(n as u32);
    }
    v
}

#[test]
fn one_thread_and_two_threads_give_bit_identical_weights() {
    let ds = fixture();
    let (train_ds, test_ds) = (ds.slice(0..384), ds.slice(384..512));
    let run = |threads: usize| {
        let tmp = tempfile::tempdir().unwrap();
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap();
        pool.install(|| {
            train::run(&cfg(tmp.path(), 2), &train_ds, &test_ds, false, &mut ()).unwrap()
        })
    };
    let a = run(1);
    let b = run(2);
    assert_eq!(weight_bits(&a.net), weight_bits(&b.net));
    assert_eq!(a.state.metrics.len(), 2);
    // the run did learn something (not a test that cannot fail)
    assert_ne!(
        weight_bits(&a.net),
        weight_bits(&gradspec::cnn::Net::<f32>::new(7))
    );
}

#[test]
fn resume_after_interruption_is_bit_identical() {
    let ds = fixture();
    let (train_ds, test_ds) = (ds.slice(0..384), ds.slice(384..512));
    let full = tempfile::tempdir().unwrap();
    let a = train::run(&cfg(full.path(), 3), &train_ds, &test_ds, false, &mut ()).unwrap();
    let part = tempfile::tempdir().unwrap();
    let mut c = cfg(part.path(), 3);
    c.stop_after = Some(1);
    let first = train::run(&c, &train_ds, &test_ds, false, &mut ()).unwrap();
    assert_eq!(first.state.completed_epochs, 1);
    let b = train::run(&cfg(part.path(), 3), &train_ds, &test_ds, true, &mut ()).unwrap();
    assert_eq!(b.state.completed_epochs, 3);
    assert_eq!(weight_bits(&a.net), weight_bits(&b.net));
    assert_eq!(a.state.step, b.state.step);
    let acc =
        |s: &train::checkpoint::RunState| s.metrics.iter().map(|m| m.test_acc).collect::<Vec<_>>();
    assert_eq!(acc(&a.state), acc(&b.state));
}

/// A checkpoint written by the release before the run options were nested in `RunState`
/// (tests/fixtures/checkpoint_v1/README.md says how it was made): it loads with the current
/// code, its options read back as they were written, and resuming it gives the bits of an
/// uninterrupted run of the same options. The run took images 0..256 of the fixture to train
/// and 384..512 to test.
#[test]
fn a_checkpoint_of_the_previous_release_loads_and_resumes() {
    let ds = fixture();
    let (train_ds, test_ds) = (ds.slice(0..256), ds.slice(384..512));
    let old = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/checkpoint_v1/checkpoint.safetensors");
    let stored = RunOptions {
        recipe: Recipe::Onecycle,
        epochs: 3,
        seed: 11,
        train_limit: Some(256),
    };
    let (_, _, st) = train::checkpoint::load(&old).expect("the old checkpoint loads");
    assert_eq!(st.options, stored);
    assert_eq!((st.completed_epochs, st.step), (1, 2));

    let part = tempfile::tempdir().unwrap();
    std::fs::copy(&old, part.path().join("checkpoint.safetensors")).unwrap();
    // The options given here are not the stored ones: a resumed run must take the stored ones.
    let resumed = train::run(&cfg(part.path(), 5), &train_ds, &test_ds, true, &mut ()).unwrap();
    assert_eq!(resumed.state.options, stored);
    assert_eq!(resumed.state.completed_epochs, 3);

    let full = tempfile::tempdir().unwrap();
    let c = TrainConfig {
        options: stored,
        ..cfg(full.path(), 3)
    };
    let clean = train::run(&c, &train_ds, &test_ds, false, &mut ()).unwrap();
    assert_eq!(resumed.state.step, clean.state.step);
    // The fixture's first epoch was trained on the default path (the kernels, Winograd for
    // conv2, conv5 and conv7; every instruction set gives those bits). On the reference path
    // (`GRADSPEC_SIMD=reference`) or with `GRADSPEC_WINOGRAD=0` the epochs after it round
    // differently, so only the default path can reproduce an uninterrupted run bit for bit.
    let default_path =
        gradspec::kernels::cpu::isa().is_some() && gradspec::kernels::cpu::winograd();
    if default_path {
        assert_eq!(weight_bits(&resumed.net), weight_bits(&clean.net));
    } else {
        assert!(
            weight_bits(&resumed.net)
                .iter()
                .all(|&b| f32::from_bits(b).is_finite())
        );
    }

    // What the new code writes, the old reader's layout still holds: the options stand flat in
    // the run state's JSON, as before.
    let bytes = std::fs::read(part.path().join("checkpoint.safetensors")).unwrap();
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let header: serde_json::Value = serde_json::from_slice(&bytes[8..8 + n]).unwrap();
    let state: serde_json::Value = serde_json::from_str(
        header["__metadata__"]["gradspec.run_state"]
            .as_str()
            .unwrap(),
    )
    .unwrap();
    for (key, value) in [
        ("recipe", serde_json::json!("onecycle")),
        ("epochs", serde_json::json!(3)),
        ("seed", serde_json::json!(11)),
        ("train_limit", serde_json::json!(256)),
        ("completed_epochs", serde_json::json!(3)),
    ] {
        assert_eq!(state[key], value, "{key} in {state}");
    }
    assert!(state.get("options").is_none(), "{state}");
}

#[test]
fn sigkill_then_resume_matches_an_uninterrupted_run() {
    let tmp = tempfile::tempdir().unwrap();
    let data_dir = fixture_as_full_dir(tmp.path());
    let args = |out: &Path| {
        vec![
            "mnist".to_string(),
            "train".into(),
            "--epochs".into(),
            "4".into(),
            "--seed".into(),
            "3".into(),
            "--out".into(),
            out.display().to_string(),
            "--data-dir".into(),
            data_dir.display().to_string(),
        ]
    };
    let clean = tmp.path().join("clean");
    let st = Command::new(BIN).args(args(&clean)).output().unwrap();
    assert!(
        st.status.success(),
        "{}",
        String::from_utf8_lossy(&st.stderr)
    );

    let killed = tmp.path().join("killed");
    let mut child = Command::new(BIN)
        .args(args(&killed))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Wait for the first checkpoint, then SIGKILL mid-run.
    let ck = killed.join("checkpoint.safetensors");
    let t0 = std::time::Instant::now();
    while !ck.exists() && t0.elapsed().as_secs() < 120 {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    child.kill().unwrap(); // SIGKILL on Unix
    child.wait().unwrap();
    assert!(ck.exists(), "no checkpoint was written before the kill");
    // No temporary files are left looking like outputs.
    let st = Command::new(BIN)
        .args([
            "mnist",
            "train",
            "--resume",
            &killed.display().to_string(),
            "--data-dir",
            &data_dir.display().to_string(),
        ])
        .output()
        .unwrap();
    assert!(
        st.status.success(),
        "{}",
        String::from_utf8_lossy(&st.stderr)
    );
    let a = std::fs::read(clean.join("last.safetensors")).unwrap();
    let b = std::fs::read(killed.join("last.safetensors")).unwrap();
    assert!(a == b, "resumed weights differ from the uninterrupted run");
    let ma = std::fs::read_to_string(clean.join("metrics.csv")).unwrap();
    let mb = std::fs::read_to_string(killed.join("metrics.csv")).unwrap();
    let strip = |s: &str| {
        s.lines()
            .map(|l| l.rsplit_once(',').unwrap().0.to_string())
            .collect::<Vec<_>>()
    };
    assert_eq!(
        strip(&ma),
        strip(&mb),
        "metrics other than seconds must match"
    );
}

#[test]
fn a_nan_loss_stops_the_run_naming_epoch_and_batch() {
    let ds = fixture();
    let (train_ds, test_ds) = (ds.slice(0..256), ds.slice(256..384));
    let tmp = tempfile::tempdir().unwrap();
    let mut c = cfg(tmp.path(), 3);
    c.stop_after = Some(1);
    train::run(&c, &train_ds, &test_ds, false, &mut ()).unwrap();
    // Poison the checkpoint's weights, as a diverged run would.
    let ck = tmp.path().join("checkpoint.safetensors");
    let (mut net, vel, st) = train::checkpoint::load(&ck).unwrap();
    net.params.fc1.weight[0] = f32::NAN;
    train::checkpoint::save(&ck, &net, &vel, &st).unwrap();
    let before = std::fs::read(&ck).unwrap();
    let err = match train::run(&cfg(tmp.path(), 3), &train_ds, &test_ds, true, &mut ()) {
        Err(e) => e.to_string(),
        Ok(_) => panic!("a NaN weight must stop the run"),
    };
    assert!(err.contains("epoch 2, batch 1"), "{err}");
    assert!(err.contains("checkpoint"), "{err}");
    assert_eq!(
        before,
        std::fs::read(&ck).unwrap(),
        "the last checkpoint must be kept as it was"
    );
}

fn one_line_exit_2(args: &[&str]) -> String {
    let out = Command::new(BIN).args(args).output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(2),
        "args {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let err = String::from_utf8_lossy(&out.stderr).trim_end().to_string();
    assert_eq!(err.lines().count(), 1, "one line expected: {err}");
    err
}

#[test]
fn bad_train_flags_get_one_line_and_exit_2() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("o");
    let o = out.to_str().unwrap();
    assert!(one_line_exit_2(&["mnist", "train", "--epochs", "0", "--out", o]).contains("--epochs"));
    assert!(
        one_line_exit_2(&["mnist", "train", "--epochs", "-3", "--out", o]).contains("--epochs")
    );
    assert!(one_line_exit_2(&["mnist", "train", "--recipe", "fast", "--out", o]).contains("fast"));
    assert!(one_line_exit_2(&["mnist", "train", "--epochs", "2"]).contains("--out"));
    let file = tmp.path().join("a_file");
    std::fs::write(&file, b"x").unwrap();
    let e = one_line_exit_2(&[
        "mnist",
        "train",
        "--out",
        file.join("sub").to_str().unwrap(),
    ]);
    assert!(e.contains("--out"), "{e}");
    assert!(one_line_exit_2(&["mnist", "train", "--resume", o]).contains("--resume"));
    assert!(
        !out.exists(),
        "nothing may be created for a rejected command line"
    );
}

/// `reproduce`'s time to 99.40%: the first epoch at or above the target, with the seconds of
/// every epoch up to and including it.
#[test]
fn time_to_accuracy_is_the_first_epoch_at_the_target_and_the_sum_of_seconds_to_it() {
    use gradspec::train::{EpochMetrics, time_to_accuracy};
    let row = |epoch, test_acc, seconds| EpochMetrics {
        epoch,
        lr: 0.01,
        train_loss: 0.1,
        train_acc: 99.0,
        test_loss: 0.02,
        test_acc,
        seconds,
    };
    let rows = [row(1, 98.9, 7.0), row(2, 99.4, 6.5), row(3, 99.5, 6.0)];
    assert_eq!(time_to_accuracy(&rows, 99.4), Some((2, 13.5)));
    assert_eq!(time_to_accuracy(&rows, 99.45), Some((3, 19.5)));
    assert_eq!(time_to_accuracy(&rows, 99.6), None);
    assert_eq!(time_to_accuracy(&[], 99.4), None);
}

/// An epoch's `seconds` is the wall-clock time of that epoch: more than 0 and no more than the
/// time measured around it. (A run of 128 images takes a few milliseconds, so a clock stuck at
/// 0 or at 1 second is seen; a slower machine can only make the upper bound looser, never make
/// the test fail on correct code.)
#[test]
fn an_epochs_seconds_are_its_wall_clock_time() {
    use gradspec::train::Trainer;
    let ds = fixture();
    let (train_ds, test_ds) = (ds.slice(0..128), ds.slice(384..416));
    let options = RunOptions {
        recipe: Recipe::Onecycle,
        epochs: 1,
        seed: 3,
        train_limit: None,
    };
    let mut trainer = Trainer::new(options, &train_ds);
    let t0 = std::time::Instant::now();
    let report = trainer.run_epoch(&test_ds, &mut ()).unwrap();
    let elapsed = t0.elapsed().as_secs_f64();
    let s = report.metrics.seconds;
    assert!(
        s > 0.0 && s <= elapsed,
        "seconds {s}, measured around it {elapsed}"
    );
}
