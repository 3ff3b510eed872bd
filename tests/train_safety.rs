//! A run is safe to resume and to share: `--resume` restores every option that changes the
//! numbers and refuses flags that disagree; a run folder is locked while a run writes to it;
//! Ctrl-C ends a run after the current batch, keeps the last complete checkpoint and prints
//! the exact command that resumes it. Run as the real binary on the committed 512-image MNIST
//! fixture (used as both splits), so nothing is downloaded.
mod common;
use gradspec::train::checkpoint;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

fn cmd(data: &Path, args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_gradspec"));
    c.args(args).env("MNIST_DIR", data);
    c
}

/// `cmd`, but started with SIGINT ignored, as a background job of a shell without job control
/// starts (CI runners, `cmd &` in a script): the binary must install its handler before it
/// announces the run, or a Ctrl-C sent after the announcement is lost.
fn cmd_sigint_ignored(data: &Path, args: &[&str]) -> Command {
    let mut c = Command::new("sh");
    c.arg("-c")
        .arg(r#"trap "" INT; exec "$0" "$@""#)
        .arg(env!("CARGO_BIN_EXE_gradspec"))
        .args(args)
        .env("MNIST_DIR", data);
    c
}

fn run(data: &Path, args: &[&str]) -> Output {
    cmd(data, args).output().expect("the binary runs")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn last_line(o: &Output) -> String {
    stderr(o).lines().last().unwrap_or("").to_string()
}

/// Waits until `dir/checkpoint.safetensors` holds at least `epochs` completed epochs.
fn wait_for_checkpoint(dir: &Path, epochs: usize) -> checkpoint::RunState {
    let t0 = Instant::now();
    loop {
        if let Ok((_, _, st)) = checkpoint::load(&dir.join("checkpoint.safetensors"))
            && st.completed_epochs >= epochs
        {
            return st;
        }
        assert!(t0.elapsed() < Duration::from_secs(120), "no checkpoint");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn resume_restores_the_options_and_refuses_flags_that_disagree() {
    let tmp = tempfile::tempdir().unwrap();
    let data = common::fixture_data_dir(tmp.path());
    let out = tmp.path().join("run");
    let o = tmp.path().join("run").display().to_string();
    let first = run(
        &data,
        &[
            "mnist",
            "train",
            "--out",
            &o,
            "--train-limit",
            "200",
            "--epochs",
            "2",
            "--seed",
            "5",
            "--recipe",
            "seed",
            "--threads",
            "1",
        ],
    );
    assert!(first.status.success(), "{}", stderr(&first));
    let st = checkpoint::load(&out.join("checkpoint.safetensors"))
        .unwrap()
        .2;
    assert_eq!(
        st.options.train_limit,
        Some(200),
        "the checkpoint records --train-limit"
    );

    // A second run into the same folder would overwrite it: refused, pointing at --resume.
    let again = run(&data, &["mnist", "train", "--out", &o, "--epochs", "1"]);
    assert_eq!(again.status.code(), Some(2));
    assert!(last_line(&again).contains("--resume"), "{}", stderr(&again));

    // Each flag that disagrees is named, with the saved value.
    for (flag, given, saved) in [
        ("--seed", "6", "--seed 5"),
        ("--epochs", "3", "--epochs 2"),
        ("--recipe", "onecycle", "--recipe seed"),
        ("--train-limit", "300", "--train-limit 200"),
    ] {
        let r = run(&data, &["mnist", "train", "--resume", &o, flag, given]);
        assert_eq!(r.status.code(), Some(2), "{flag}: {}", stderr(&r));
        let line = last_line(&r);
        assert!(
            line.starts_with("error: ") && line.contains(&format!("{flag} {given}")),
            "{line}"
        );
        assert!(line.contains(saved), "{line}");
    }

    // Flags that agree are accepted, and the resumed run announces the saved options: 200
    // images, not the 512 of the data.
    let r = run(
        &data,
        &[
            "mnist",
            "train",
            "--resume",
            &o,
            "--seed",
            "5",
            "--train-limit",
            "200",
        ],
    );
    assert!(r.status.success(), "{}", stderr(&r));
    let err = stderr(&r);
    assert!(
        err.contains("recipe seed, 2 epochs, seed 5, 200 training"),
        "{err}"
    );
}

#[test]
fn a_run_folder_is_locked_while_a_run_writes_to_it() {
    let tmp = tempfile::tempdir().unwrap();
    let data = common::fixture_data_dir(tmp.path());
    let out = tmp.path().join("run");
    std::fs::create_dir(&out).unwrap();
    let o = out.display().to_string();
    // Hold the lock as a running trainer does.
    let lock = gradspec::fsutil::DirLock::acquire(&out, "test").unwrap();
    let r = run(
        &data,
        &[
            "mnist",
            "train",
            "--out",
            &o,
            "--epochs",
            "1",
            "--threads",
            "1",
        ],
    );
    assert_eq!(r.status.code(), Some(2), "{}", stderr(&r));
    let line = last_line(&r);
    assert!(
        line.contains("another gradspec run") && line.contains(&o),
        "{line}"
    );
    assert!(
        !out.join("checkpoint.safetensors").exists(),
        "the locked-out run wrote a checkpoint"
    );
    // reproduce locks its --out folder too.
    let r = run(&data, &["reproduce", "--out", &o, "--epochs", "1"]);
    assert_eq!(r.status.code(), Some(2), "{}", stderr(&r));
    assert!(
        last_line(&r).contains("another gradspec run"),
        "{}",
        stderr(&r)
    );
    // Released, the folder can be used.
    drop(lock);
    let r = run(
        &data,
        &[
            "mnist",
            "train",
            "--out",
            &o,
            "--epochs",
            "1",
            "--threads",
            "1",
            "--train-limit",
            "128",
        ],
    );
    assert!(r.status.success(), "{}", stderr(&r));
}

#[cfg(unix)]
#[test]
fn ctrl_c_keeps_the_last_checkpoint_and_prints_the_command_that_resumes() {
    let tmp = tempfile::tempdir().unwrap();
    let data = common::fixture_data_dir(tmp.path());
    let out = tmp.path().join("run");
    let o = out.display().to_string();
    // 1000 epochs of 512 images: it is still running when the signal comes.
    let child = cmd(
        &data,
        &[
            "mnist",
            "train",
            "--out",
            &o,
            "--epochs",
            "1000",
            "--threads",
            "1",
        ],
    )
    .stdout(Stdio::null())
    .stderr(Stdio::piped())
    .spawn()
    .unwrap();
    let st = wait_for_checkpoint(&out, 1);
    let kill = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    let r = child.wait_with_output().unwrap();
    assert_eq!(r.status.code(), Some(130), "{}", stderr(&r));
    let line = last_line(&r);
    assert!(line.starts_with("interrupted during epoch "), "{line}");
    let resume = format!("resume with: gradspec mnist train --resume '{o}'");
    assert!(line.ends_with(&resume), "{line}");
    // The checkpoint is a complete one, from an epoch boundary, at or after the one we saw.
    let kept = checkpoint::load(&out.join("checkpoint.safetensors"))
        .unwrap()
        .2;
    assert!(kept.completed_epochs >= st.completed_epochs);
    assert!(
        line.contains(&format!(
            "the checkpoint of epoch {} is kept",
            kept.completed_epochs
        )),
        "{line}"
    );
    assert_eq!(kept.metrics.len(), kept.completed_epochs);
    let rows = std::fs::read_to_string(out.join("metrics.csv")).unwrap();
    assert_eq!(
        rows.lines().count(),
        kept.completed_epochs + 1,
        "metrics.csv: {rows}"
    );

    // The printed command resumes: it continues from the kept epoch (stopped again by Ctrl-C).
    let words: Vec<&str> = vec!["mnist", "train", "--resume", &o, "--threads", "1"];
    let child = cmd(&data, &words)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_for_checkpoint(&out, kept.completed_epochs + 1);
    Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    let r = child.wait_with_output().unwrap();
    assert_eq!(r.status.code(), Some(130), "{}", stderr(&r));
    let again = checkpoint::load(&out.join("checkpoint.safetensors"))
        .unwrap()
        .2;
    assert!(again.completed_epochs > kept.completed_epochs);
    assert_eq!(
        again.metrics[..kept.completed_epochs],
        kept.metrics[..],
        "history kept"
    );
}

#[cfg(unix)]
#[test]
fn ctrl_c_before_the_first_checkpoint_says_how_to_start_again() {
    let tmp = tempfile::tempdir().unwrap();
    let data = common::fixture_data_dir(tmp.path());
    let out = tmp.path().join("run");
    let o = out.display().to_string();
    // The signal comes right after the first progress line, usually inside epoch 1. The
    // process starts with SIGINT ignored, so the signal counts only if the handler is already
    // installed when the line appears.
    let mut child = cmd_sigint_ignored(
        &data,
        &[
            "mnist",
            "train",
            "--out",
            &o,
            "--epochs",
            "1000",
            "--threads",
            "1",
            "--seed",
            "9",
        ],
    )
    .stdout(Stdio::null())
    .stderr(Stdio::piped())
    .spawn()
    .unwrap();
    // Wait for the first progress line ("training: …"), then interrupt.
    use std::io::Read;
    let mut stderr_pipe = child.stderr.take().unwrap();
    let mut seen = Vec::new();
    let mut buf = [0u8; 256];
    while !String::from_utf8_lossy(&seen).contains("training:") {
        let n = stderr_pipe.read(&mut buf).unwrap();
        assert!(n > 0, "no progress line");
        seen.extend_from_slice(&buf[..n]);
    }
    Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    // A lost signal would leave the run going for 1000 epochs: give up after two minutes.
    let reader = std::thread::spawn(move || {
        stderr_pipe.read_to_end(&mut seen).unwrap();
        seen
    });
    let t0 = std::time::Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if t0.elapsed() > std::time::Duration::from_secs(120) {
            child.kill().unwrap();
            child.wait().unwrap();
            panic!("the run did not stop within 120 s of SIGINT: the signal was lost");
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    let seen = reader.join().unwrap();
    let err = String::from_utf8_lossy(&seen);
    if out.join("checkpoint.safetensors").exists() {
        // The machine was fast enough to finish an epoch first; then the resume line applies.
        assert!(err.contains("resume with:"), "{err}");
    } else {
        assert_eq!(status.code(), Some(130), "{err}");
        let line = err.lines().last().unwrap();
        assert!(line.contains("no epoch was complete"), "{line}");
        assert!(
            line.ends_with(&format!(
                "start again with: gradspec mnist train --out '{o}' --recipe onecycle --epochs 1000 --seed 9"
            )),
            "{line}"
        );
    }
}
