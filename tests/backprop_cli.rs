//! The `gradspec backprop` commands, run as the real binary: their output on success, and on
//! bad input a single stderr line naming the flag, exit code 2, and nothing written.
use std::path::Path;
use std::process::{Command, Output};

fn gradspec(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_gradspec"))
        .args(args)
        .output()
        .expect("the binary runs")
}

fn stdout(o: &Output) -> String {
    String::from_utf8(o.stdout.clone()).expect("UTF-8 stdout")
}

fn stderr(o: &Output) -> String {
    String::from_utf8(o.stderr.clone()).expect("UTF-8 stderr")
}

/// Exit code 2, exactly one stderr line containing every `needles`, empty stdout.
fn assert_bad_input(o: &Output, needles: &[&str]) {
    let err = stderr(o);
    assert_eq!(o.status.code(), Some(2), "exit code; stderr: {err}");
    assert_eq!(err.lines().count(), 1, "one stderr line, got: {err:?}");
    for n in needles {
        assert!(err.contains(n), "stderr {err:?} should mention {n:?}");
    }
    assert!(o.stdout.is_empty(), "nothing on stdout: {:?}", stdout(o));
}

fn entries(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

#[test]
fn table_prints_header_and_one_row_per_iteration() {
    let o = gradspec(&["backprop", "table", "--lr", "0.5", "--iterations", "7"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 8);
    assert_eq!(lines[0], gradspec::backprop::table::HEADER);
    assert!(lines[1].starts_with("0,0.5,0.5,0.05,0.1,0.15,0.2,0.25,0.3,"));
    assert!(lines[7].starts_with("6,"));
    assert!(lines.iter().all(|l| l.split(',').count() == 32));
}

#[test]
fn table_flags_override_the_spreadsheet_values() {
    let o = gradspec(&[
        "backprop",
        "table",
        "--iterations",
        "1",
        "--i1",
        "-1.5",
        "--t2=0.9",
        "--w8",
        "-2",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let row = stdout(&o).lines().nth(1).unwrap().to_string();
    let f: Vec<&str> = row.split(',').collect();
    assert_eq!((f[2], f[3], f[16]), ("0.9", "-1.5", "-2"));
}

#[test]
fn sweep_writes_csv_and_charts_and_prints_the_summary() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("nested/part1");
    let o = gradspec(&[
        "backprop",
        "sweep",
        "--lrs",
        "0.5,2",
        "--iterations",
        "20",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(
        entries(&out),
        [
            "loss_all.png",
            "loss_curves.csv",
            "loss_lr_0.5.png",
            "loss_lr_2.0.png"
        ]
    );
    let csv = std::fs::read_to_string(out.join("loss_curves.csv")).unwrap();
    assert_eq!(csv.lines().next(), Some("iteration,lr_0.5,lr_2.0"));
    assert_eq!(csv.lines().count(), 21);
    let text = stdout(&o);
    assert!(text.contains("E_total[19]"), "{text}");
    assert!(text.contains("0.0141813779"), "{text}");
    for png in ["loss_all.png", "loss_lr_0.5.png"] {
        let bytes = std::fs::read(out.join(png)).unwrap();
        assert_eq!(&bytes[1..4], b"PNG");
    }
}

#[test]
fn explain_prints_the_requested_row() {
    let o = gradspec(&["backprop", "explain", "--iteration", "3", "--lr", "0.8"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let text = stdout(&o);
    assert!(text.starts_with("Iteration 3 at learning rate η = 0.8"));
    assert!(text.contains("[bp.grad.w5]") && text.contains("[bp.update]"));
}

#[test]
fn non_positive_or_non_finite_learning_rates_are_rejected() {
    for bad in ["0", "-1", "nan", "inf", "abc"] {
        let o = gradspec(&["backprop", "table", &format!("--lr={bad}")]);
        assert_bad_input(&o, &["--lr"]);
    }
}

#[test]
fn zero_iterations_are_rejected() {
    assert_bad_input(
        &gradspec(&["backprop", "table", "--iterations", "0"]),
        &["--iterations", "at least 1"],
    );
}

#[test]
fn unknown_flags_are_rejected() {
    assert_bad_input(
        &gradspec(&["backprop", "table", "--learning-rate", "0.5"]),
        &["--learning-rate"],
    );
}

#[test]
fn non_finite_weights_are_rejected() {
    assert_bad_input(
        &gradspec(&["backprop", "explain", "--w3", "inf"]),
        &["--w3", "finite"],
    );
}

#[test]
fn explain_iteration_must_be_below_iterations() {
    assert_bad_input(
        &gradspec(&["backprop", "explain", "--iteration", "100"]),
        &["--iteration", "--iterations"],
    );
    assert_bad_input(
        &gradspec(&[
            "backprop",
            "explain",
            "--iteration",
            "5",
            "--iterations",
            "5",
        ]),
        &["--iteration 5"],
    );
}

#[test]
fn sweep_with_an_unwritable_out_leaves_nothing_behind() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("a_file");
    std::fs::write(&file, "x").unwrap();
    // A directory cannot be created inside a regular file (this holds even for root).
    let out = file.join("part1");
    let o = gradspec(&["backprop", "sweep", "--out", out.to_str().unwrap()]);
    assert_bad_input(&o, &["--out"]);
    assert_eq!(entries(dir.path()), ["a_file"]);
}

#[test]
fn sweep_with_bad_rates_writes_no_files() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let o = gradspec(&[
        "backprop",
        "sweep",
        "--lrs",
        "0.1,0,0.5",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_bad_input(&o, &["--lrs"]);
    let o = gradspec(&[
        "backprop",
        "sweep",
        "--lrs",
        "0.5,0.5",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_bad_input(&o, &["--lrs", "twice"]);
    assert!(!out.exists(), "no directory is created for bad input");
}

#[test]
fn sweep_requires_out() {
    assert_bad_input(&gradspec(&["backprop", "sweep"]), &["--out"]);
}

/// Part 1 stops on divergence: the first value that is not finite ends the table, sweep or
/// explanation with exit code 1 and one line naming the iteration and the quantity.
#[test]
fn a_diverging_run_stops_with_the_iteration_and_the_quantity() {
    // t1 = 100 makes ∂E/∂w large, so lr 1e308 overflows the weights in the first update.
    let o = gradspec(&["backprop", "table", "--lr", "1e308", "--t1", "100"]);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.starts_with("error: Part 1 diverged at learning rate 1e308: iteration 1 has w5 = inf"),
        "{err}"
    );
    // The rows before it were printed: the header and iteration 0.
    assert_eq!(stdout(&o).lines().count(), 2);

    // A NaN in the very first forward pass (∞ − ∞ in h1) is named too.
    let o = gradspec(&[
        "backprop", "table", "--w1", "1e308", "--w2", "-1e308", "--i1", "1e308", "--i2", "1e308",
    ]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("iteration 0 has h1 = NaN"),
        "{}",
        stderr(&o)
    );

    let o = gradspec(&[
        "backprop",
        "explain",
        "--lr",
        "1e308",
        "--t1",
        "100",
        "--iteration",
        "5",
    ]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("iteration 1 has w5 = inf"),
        "{}",
        stderr(&o)
    );
    assert!(o.stdout.is_empty());

    // A sweep that diverges at one of its rates writes nothing at all.
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("sweep");
    let o = gradspec(&[
        "backprop",
        "sweep",
        "--lrs",
        "0.5,1e308",
        "--t1",
        "100",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("learning rate 1e308: iteration 1"),
        "{}",
        stderr(&o)
    );
    assert!(!out.exists(), "a diverged sweep created {}", out.display());
}
