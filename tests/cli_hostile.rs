//! No panic from any input. Every subcommand is driven, as the real binary, with boundary and
//! hostile values: 0, 1, the maximum and beyond; negative numbers, NaN, inf and empty strings;
//! paths that are directories, missing, unwritable or on a full file system; files of the wrong
//! kind. Each attempt must end with exit code 1 or 2 and exactly one line on stderr that starts
//! with `error:` and names the flag or file (never exit code 101, never a backtrace), and must
//! leave no temporary file behind. docs/bad-input.md lists the same classes.
//!
//! MNIST comes from the committed fixture (its 512 test images serve as both splits), so
//! nothing here downloads anything.
mod common;
mod proptest_cases;
use proptest_cases::fixed_cases;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn gradspec_in(data: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_gradspec"))
        .args(args)
        .env("MNIST_DIR", data)
        .env_remove("GRADSPEC_NO_AVX512")
        .output()
        .expect("the binary runs")
}

/// What a rejected attempt must look like: exit code 1 or 2 (2 for bad input unless `code`
/// says otherwise), one stderr line beginning `error:` that contains every needle.
#[track_caller]
fn assert_rejected(o: &Output, code: i32, needles: &[&str], what: &str) {
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        !err.contains("panicked") && !err.contains("RUST_BACKTRACE"),
        "{what}: panicked: {err}"
    );
    assert_eq!(
        o.status.code(),
        Some(code),
        "{what}: exit code; stderr: {err}"
    );
    let lines: Vec<&str> = err.lines().filter(|l| !l.trim().is_empty()).collect();
    let last = lines.last().copied().unwrap_or("");
    // Progress lines may come first (e.g. "training: …" before a lock error); the error itself
    // is one line, the last.
    assert!(
        last.starts_with("error:"),
        "{what}: last stderr line {last:?} (all: {err:?})"
    );
    assert_eq!(
        lines.iter().filter(|l| l.starts_with("error:")).count(),
        1,
        "{what}: one error line, got {err:?}"
    );
    for n in needles {
        assert!(last.contains(n), "{what}: {last:?} should mention {n:?}");
    }
}

/// Files of every wrong kind, plus valid ones to start from.
struct Zoo {
    tmp: tempfile::TempDir,
    data: PathBuf,
}

impl Zoo {
    fn new() -> Self {
        let tmp = tempfile::tempdir().unwrap();
        let data = common::fixture_data_dir(tmp.path());
        let p = tmp.path();
        std::fs::create_dir(p.join("a_dir")).unwrap();
        std::fs::write(p.join("empty.bin"), b"").unwrap();
        std::fs::write(p.join("text.txt"), b"hello, world\n").unwrap();
        // A real PNG.
        image::GrayImage::from_pixel(4, 4, image::Luma([7]))
            .save(p.join("image.png"))
            .unwrap();
        // A valid weights file and its first half.
        let net = gradspec::cnn::Net::<f32>::new(1);
        let weights = p.join("weights.safetensors");
        gradspec::cnn::safetensors_io::save(&net, &weights).unwrap();
        let bytes = std::fs::read(&weights).unwrap();
        std::fs::write(p.join("half.safetensors"), &bytes[..bytes.len() / 2]).unwrap();
        // A header that claims 2⁶⁴ − 1 bytes.
        let mut huge = u64::MAX.to_le_bytes().to_vec();
        huge.extend_from_slice(b"{}");
        std::fs::write(p.join("huge_header.safetensors"), huge).unwrap();
        // Valid safetensors of the wrong kind: PyTorch's BatchNorm fixture.
        std::fs::copy(
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("tests/fixtures/torch/batchnorm.safetensors"),
            p.join("other_model.safetensors"),
        )
        .unwrap();
        // A run folder whose checkpoint is text, and one whose checkpoint is plain weights.
        for (name, from) in [
            ("bad_ck", "text.txt"),
            ("weights_ck", "weights.safetensors"),
        ] {
            std::fs::create_dir(p.join(name)).unwrap();
            std::fs::copy(p.join(from), p.join(name).join("checkpoint.safetensors")).unwrap();
        }
        // A data dir whose IDX files are of the wrong kind (text, and labels as images).
        let bad = p.join("bad_data");
        std::fs::create_dir(&bad).unwrap();
        for f in ["train-images-idx3-ubyte", "t10k-images-idx3-ubyte"] {
            std::fs::write(bad.join(f), b"hello, world\n").unwrap();
        }
        for f in ["train-labels-idx1-ubyte", "t10k-labels-idx1-ubyte"] {
            std::fs::copy(
                data.join("t10k-labels-idx1-ubyte.gz"),
                bad.join(format!("{f}.gz")),
            )
            .unwrap();
        }
        Zoo { tmp, data }
    }

    fn path(&self, name: &str) -> String {
        self.tmp.path().join(name).display().to_string()
    }

    fn run(&self, args: &[&str]) -> Output {
        gradspec_in(&self.data, args)
    }

    /// No `.tmp` file left anywhere under the zoo.
    fn assert_no_temp_files(&self) {
        fn walk(d: &Path, out: &mut Vec<PathBuf>) {
            for e in std::fs::read_dir(d).unwrap() {
                let p = e.unwrap().path();
                if p.is_dir() {
                    walk(&p, out);
                } else if p.to_string_lossy().ends_with(".tmp") {
                    out.push(p);
                }
            }
        }
        let mut left = Vec::new();
        walk(self.tmp.path(), &mut left);
        assert!(left.is_empty(), "temporary files left behind: {left:?}");
    }
}

/// A flag's kind of value and the values that must be refused.
fn bad_values(kind: &str, max: Option<&str>) -> Vec<String> {
    let mut v: Vec<&str> = match kind {
        "positive" => vec![
            "0", "-1", "-0.5", "nan", "NaN", "inf", "-inf", "1e400", "", "abc",
        ],
        "finite" => vec!["nan", "inf", "-inf", "1e400", "", "abc", "0x10"],
        "count" => vec![
            "0",
            "-1",
            "",
            "abc",
            "1.5",
            "nan",
            "99999999999999999999999",
        ],
        "index" => vec!["-1", "", "abc", "1.5", "99999999999999999999999"],
        "seed" => vec!["-1", "", "abc", "1.5", "18446744073709551616"],
        other => panic!("unknown kind {other}"),
    };
    if let Some(m) = max {
        v.push(m);
    }
    v.into_iter().map(String::from).collect()
}

/// Every numeric flag of every subcommand, with a base command line that is valid apart from
/// the flag, the kind of value it takes and its limit + 1 where it has one.
#[test]
fn every_numeric_flag_refuses_every_hostile_value_with_one_line() {
    let z = Zoo::new();
    let out = z.path("out");
    let png = z.path("out.png");
    let st = z.path("g.safetensors");
    let w = z.path("weights.safetensors");
    let mut cases: Vec<(Vec<&str>, &str, &str, Option<&str>)> = vec![
        (vec!["backprop", "table"], "--lr", "positive", None),
        (
            vec!["backprop", "table"],
            "--iterations",
            "count",
            Some("1000001"),
        ),
        (
            vec!["backprop", "sweep", "--out", &out],
            "--iterations",
            "count",
            Some("1000001"),
        ),
        (
            vec!["backprop", "sweep", "--out", &out],
            "--lrs",
            "positive",
            None,
        ),
        (vec!["backprop", "explain"], "--lr", "positive", None),
        (
            vec!["backprop", "explain"],
            "--iterations",
            "count",
            Some("1000001"),
        ),
        (
            vec!["backprop", "explain"],
            "--iteration",
            "index",
            Some("1000001"),
        ),
        (
            vec!["mnist", "augment-preview", "--out", &png],
            "--count",
            "count",
            Some("101"),
        ),
        (
            vec!["mnist", "augment-preview", "--out", &png],
            "--copies",
            "count",
            Some("21"),
        ),
        (
            vec!["mnist", "augment-preview", "--out", &png],
            "--seed",
            "seed",
            None,
        ),
        (
            vec!["mnist", "train", "--out", &out],
            "--epochs",
            "count",
            Some("1001"),
        ),
        (
            vec!["mnist", "train", "--out", &out],
            "--seed",
            "seed",
            None,
        ),
        (
            vec!["mnist", "train", "--out", &out],
            "--threads",
            "count",
            Some("257"),
        ),
        (
            vec!["mnist", "train", "--out", &out],
            "--train-limit",
            "count",
            None,
        ),
        (
            vec!["mnist", "bench"],
            "--seconds",
            "positive",
            Some("3601"),
        ),
        (vec!["mnist", "bench"], "--threads", "count", Some("257")),
        (
            vec!["reproduce", "--out", &out],
            "--epochs",
            "count",
            Some("1001"),
        ),
        (vec!["reproduce", "--out", &out], "--seed", "seed", None),
        (
            vec!["reproduce", "--out", &out],
            "--threads",
            "count",
            Some("257"),
        ),
    ];
    let grad_base = vec![
        "mnist",
        "grad",
        "--weights",
        &w,
        "--split",
        "test",
        "--out",
        &st,
    ];
    cases.push((grad_base.clone(), "--count", "count", Some("1025")));
    cases.push((
        [grad_base.clone(), vec!["--count", "2"]].concat(),
        "--start",
        "index",
        None,
    ));
    for w in [
        "--i1", "--i2", "--t1", "--t2", "--w1", "--w2", "--w3", "--w4", "--w5",
    ] {
        cases.push((vec!["backprop", "table"], w, "finite", None));
    }
    for w in ["--w6", "--w7", "--w8"] {
        cases.push((vec!["backprop", "sweep", "--out", &out], w, "finite", None));
    }
    let mut n = 0;
    for (base, flag, kind, max) in &cases {
        for v in bad_values(kind, *max) {
            let mut args = base.clone();
            args.extend([*flag, v.as_str()]);
            let o = z.run(&args);
            assert_rejected(&o, 2, &[flag], &format!("{args:?}"));
            if let Some(m) = max
                && v == *m
            {
                let limit = (m.parse::<u64>().unwrap() - 1).to_string();
                assert_rejected(&o, 2, &[&limit], &format!("{args:?} states its limit"));
            }
            n += 1;
        }
    }
    assert!(n > 240, "{n} attempts");
    assert!(!Path::new(&out).exists(), "a refused command created --out");
    z.assert_no_temp_files();
}

/// The limits themselves are accepted (1 and the maximum), so the caps are not off by one.
#[test]
fn the_limits_themselves_are_accepted() {
    let z = Zoo::new();
    let png = z.path("p.png");
    for args in [
        vec!["backprop", "table", "--iterations", "1"],
        vec![
            "backprop",
            "explain",
            "--iteration",
            "0",
            "--iterations",
            "1",
        ],
        vec!["backprop", "table", "--lr", "1e-300", "--iterations", "3"],
        vec!["backprop", "table", "--w1", "-1e300", "--iterations", "3"],
        vec![
            "mnist",
            "augment-preview",
            "--out",
            &png,
            "--count",
            "1",
            "--copies",
            "20",
        ],
        vec![
            "mnist",
            "augment-preview",
            "--out",
            &png,
            "--count",
            "100",
            "--copies",
            "1",
        ],
    ] {
        let o = z.run(&args);
        assert!(
            o.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    }
    z.assert_no_temp_files();
}

/// Files of the wrong kind, missing files, directories, unwritable and special paths.
#[test]
fn wrong_files_and_paths_get_one_line_naming_them() {
    let z = Zoo::new();
    let p = |n: &str| z.path(n);
    let st = p("g.safetensors");
    let under_file = p("text.txt/sub.png");
    let proc_path = "/proc/gradspec-cannot-write/x".to_string();
    let mut cases: Vec<(Vec<String>, Vec<String>)> = Vec::new();
    let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
    // A good picture for `mnist predict` (its bad pictures are in tests/predict.rs).
    let digit = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/digits/hand_3_a.png")
        .display()
        .to_string();
    // Weights of every wrong kind, for eval and grad.
    for bad in [
        "a_dir",
        "missing.safetensors",
        "empty.bin",
        "text.txt",
        "image.png",
        "half.safetensors",
        "huge_header.safetensors",
        "other_model.safetensors",
    ] {
        let f = p(bad);
        cases.push((s(&["mnist", "eval", "--weights", &f]), vec![f.clone()]));
        cases.push((
            s(&["mnist", "predict", "--weights", &f, &digit]),
            vec![f.clone()],
        ));
        cases.push((
            s(&[
                "mnist",
                "grad",
                "--weights",
                &f,
                "--split",
                "test",
                "--count",
                "2",
                "--out",
                &st,
            ]),
            vec![f.clone()],
        ));
    }
    // Output paths that cannot be written: a directory, under a file, in /proc, a device.
    let w = p("weights.safetensors");
    // (Under a file, the error names the file that is in the way.)
    for (bad, named) in [
        (p("a_dir"), p("a_dir")),
        (under_file.clone(), p("text.txt")),
        (proc_path.clone(), "/proc/gradspec-cannot-write".into()),
        ("/dev/full".into(), "/dev/full".into()),
    ] {
        cases.push((
            s(&[
                "mnist",
                "grad",
                "--weights",
                &w,
                "--split",
                "test",
                "--count",
                "2",
                "--out",
                &bad,
            ]),
            vec!["--out".into(), named.clone()],
        ));
        cases.push((
            s(&["mnist", "predict", "--weights", &w, "--show", &bad, &digit]),
            vec!["--show".into(), named.clone()],
        ));
        cases.push((
            s(&["mnist", "augment-preview", "--out", &bad]),
            vec!["--out".into(), named],
        ));
    }
    // Output folders that cannot be folders.
    for bad in [p("text.txt"), proc_path.clone(), "/dev/null".into()] {
        cases.push((s(&["backprop", "sweep", "--out", &bad]), vec![bad.clone()]));
        cases.push((s(&["mnist", "train", "--out", &bad]), vec![bad.clone()]));
        cases.push((s(&["reproduce", "--out", &bad]), vec![bad.clone()]));
    }
    // Resuming from what is not a run.
    for bad in ["missing", "a_dir", "bad_ck", "weights_ck", "text.txt"] {
        let f = p(bad);
        cases.push((s(&["mnist", "train", "--resume", &f]), vec![f.clone()]));
    }
    // A budget file that is missing, a directory, text or an image.
    for bad in ["missing.toml", "a_dir", "text.txt", "image.png"] {
        let f = p(bad);
        cases.push((
            s(&["mnist", "bench", "--seconds", "0.01", "--check", &f]),
            vec![f.clone()],
        ));
    }
    // Data that is not MNIST: a file as the data dir, IDX files of the wrong kind.
    for bad in ["text.txt", "bad_data"] {
        let d = p(bad);
        cases.push((
            s(&["mnist", "eval", "--weights", &w, "--data-dir", &d]),
            vec![d.clone()],
        ));
        cases.push((
            s(&["mnist", "train", "--out", &p("t"), "--data-dir", &d]),
            vec![d.clone()],
        ));
    }
    // A mirror that is not a URL, or that refuses the connection.
    for bad in ["not a url", "ftp://example.invalid/", "http://127.0.0.1:9/"] {
        let d = p("fetch_here");
        cases.push((
            s(&["mnist", "fetch", "--data-dir", &d, "--mirror", bad]),
            vec![bad.into()],
        ));
    }
    for (args, needles) in &cases {
        let a: Vec<&str> = args.iter().map(String::as_str).collect();
        let o = z.run(&a);
        let n: Vec<&str> = needles.iter().map(String::as_str).collect();
        assert_rejected(&o, 2, &n, &format!("{a:?}"));
    }
    assert!(Path::new("/dev/full").exists(), "/dev/full was replaced");
    z.assert_no_temp_files();
}

#[test]
fn a_bad_instruction_set_choice_is_one_line_not_a_panic() {
    // `GRADSPEC_SIMD` names the kernels' path; an unknown name (or, on x86-64, `neon`) used to
    // panic in the first convolution. Checked before any command runs.
    let bad: &[&str] = if cfg!(target_arch = "x86_64") {
        &["portable", "AVX2", " ", "neon"]
    } else {
        &["portable", "AVX2", " ", "avx512"]
    };
    for v in bad {
        let o = Command::new(env!("CARGO_BIN_EXE_gradspec"))
            .args(["mnist", "bench", "--threads", "1", "--seconds", "1"])
            .env("GRADSPEC_SIMD", v)
            .output()
            .expect("the binary runs");
        let what = format!("GRADSPEC_SIMD={v:?}");
        assert_rejected(&o, 2, &["GRADSPEC_SIMD"], &what);
    }
}

/// Outputs get the permissions an ordinary `File::create` gives: 0666 less the umask.
#[cfg(unix)]
#[test]
fn outputs_follow_the_umask() {
    use std::os::unix::fs::PermissionsExt;
    let z = Zoo::new();
    for (umask, want) in [("022", 0o644), ("027", 0o640), ("002", 0o664)] {
        let out = z.path(&format!("sweep_{umask}"));
        let png = z.path(&format!("preview_{umask}.png"));
        let w = z.path(&format!("grad_{umask}.safetensors"));
        let weights = z.path("weights.safetensors");
        let script = format!(
            "umask {umask} && \"$0\" backprop sweep --out '{out}' --lrs 0.5 --iterations 3 >/dev/null \
             && \"$0\" mnist augment-preview --out '{png}' --count 1 --copies 1 \
             && \"$0\" mnist grad --weights '{weights}' --split test --count 2 --out '{w}'"
        );
        let o = Command::new("sh")
            .args(["-c", &script, env!("CARGO_BIN_EXE_gradspec")])
            .env("MNIST_DIR", &z.data)
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let mut files: Vec<PathBuf> = std::fs::read_dir(&out)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        files.extend([PathBuf::from(&png), PathBuf::from(&w)]);
        assert!(files.len() >= 5, "{files:?}");
        for f in files {
            let mode = std::fs::metadata(&f).unwrap().permissions().mode() & 0o777;
            assert_eq!(
                mode,
                want,
                "{}: mode {mode:o} under umask {umask}",
                f.display()
            );
        }
    }
}

/// A full file system: the error names the file, and nothing half-written stays. The full
/// disk is a 64 KiB tmpfs mounted in a private mount namespace (`unshare`), so it needs no
/// privileges and leaves nothing mounted.
#[cfg(target_os = "linux")]
#[test]
fn a_full_disk_names_the_file_and_leaves_nothing_half_written() {
    let z = Zoo::new();
    let mnt = z.path("small_fs");
    std::fs::create_dir(&mnt).unwrap();
    let out = format!("{mnt}/sweep");
    let script = format!(
        "mount -t tmpfs -o size=64k gradspec-full '{mnt}' && \
         \"$0\" backprop sweep --out '{out}' --iterations 100000; rc=$?; \
         echo \"rc=$rc\"; find '{mnt}' -type f | sort"
    );
    let o = Command::new("unshare")
        .args(["-rm", "sh", "-c", &script, env!("CARGO_BIN_EXE_gradspec")])
        .output()
        .expect("unshare (util-linux) runs");
    let stdout = String::from_utf8_lossy(&o.stdout);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(
        o.status.success() && stdout.contains("rc="),
        "could not set up the full file system: {stderr}"
    );
    assert!(stdout.contains("rc=2"), "exit code: {stdout} / {stderr}");
    let err_lines: Vec<&str> = stderr.lines().filter(|l| l.starts_with("error:")).collect();
    assert_eq!(err_lines.len(), 1, "{stderr}");
    let line = err_lines[0];
    assert!(line.contains("No space left on device"), "{line}");
    assert!(line.contains(&format!("{out}/")), "names the file: {line}");
    assert!(
        !stdout.contains(".tmp"),
        "a temporary file was left: {stdout}"
    );
    // Whatever is there is whole: every file present is one the sweep finished.
    for f in stdout.lines().filter(|l| l.starts_with('/')) {
        assert!(
            f.ends_with(".csv") || f.ends_with(".png"),
            "unexpected file {f}"
        );
    }
}

/// clap's own consistency checks on the whole command tree (conflicting settings, duplicate
/// flags, bad defaults), which otherwise fire only when the faulty flag is used.
#[test]
fn the_command_line_definition_is_consistent() {
    use clap::CommandFactory;
    gradspec::cli::Cli::command().debug_assert();
}

use proptest::strategy::Strategy as _;

proptest::proptest! {
    #![proptest_config(fixed_cases(3000))]

    /// Parsing any command line made of real subcommands, real flags and hostile values
    /// never panics: it is either a command or a clap error.
    #[test]
    fn parsing_random_command_lines_never_panics(
        words in proptest::collection::vec(
            proptest::prop_oneof![
                proptest::sample::select(vec![
                    "backprop", "table", "sweep", "explain", "mnist", "fetch", "augment-preview",
                    "summary", "eval", "predict", "grad", "train", "bench", "reproduce",
                    "spec-coverage", "--show",
                    "--lr", "--lrs", "--iterations", "--iteration", "--out", "--resume", "--seed",
                    "--epochs", "--threads", "--train-limit", "--count", "--copies", "--start",
                    "--weights", "--split", "--precision", "--seconds", "--check", "--json",
                    "--mirror", "--force", "--data-dir", "--recipe", "--w1", "--t2", "--help",
                    "-h", "--version", "--", "-", "",
                ]).prop_map(String::from),
                proptest::sample::select(vec![
                    "0", "1", "-1", "nan", "inf", "-inf", "1e400", "18446744073709551616",
                    "0.5", ",", "1,,2", "test", "f64", "seed", "onecycle", "\u{0}", "é", " ",
                ]).prop_map(String::from),
                ".{0,12}",
            ],
            0..8,
        )
    ) {
        let argv = std::iter::once("gradspec".to_string()).chain(words);
        let _ = <gradspec::cli::Cli as clap::Parser>::try_parse_from(argv);
    }
}

/// Verifies that a `GRADSPEC_WINOGRAD` other than `0`, `1` or empty is a one-line error (exit 2)
/// before any command runs, not a panic in the first convolution.
#[test]
fn a_bad_winograd_switch_is_one_line_not_a_panic() {
    for v in ["yes", "2", " 1"] {
        let o = Command::new(env!("CARGO_BIN_EXE_gradspec"))
            .args(["mnist", "bench", "--threads", "1", "--seconds", "1"])
            .env("GRADSPEC_WINOGRAD", v)
            .output()
            .expect("the binary runs");
        let what = format!("GRADSPEC_WINOGRAD={v:?}");
        assert_rejected(&o, 2, &["GRADSPEC_WINOGRAD"], &what);
    }
}
