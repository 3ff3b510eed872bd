//! Atomic file output: write to a temporary file beside the target, then rename into place,
//! so that an interrupted run never leaves a half-written file behind; and the lock that keeps
//! two runs out of one folder.
//!
//! Files are created the way `File::create` creates them (mode `0666` less the umask), so a
//! results folder is as readable as any other file its owner writes.
use crate::error::{Context, Result, bail, err};
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// Creates `dir` (and its parents) or fails with an error that names `what` (e.g. `--out`).
pub fn ensure_dir(dir: &Path, what: &str) -> Result<()> {
    std::fs::create_dir_all(dir)
        .with_context(|| format!("{what} '{}': cannot create directory", dir.display()))?;
    // Probe writability now, so that a read-only directory fails before any work is done.
    let (probe, file) = create_temp(dir, ".gradspec-probe")
        .with_context(|| format!("{what} '{}': directory is not writable", dir.display()))?;
    drop(file);
    let _ = std::fs::remove_file(probe);
    Ok(())
}

/// A new, empty file in `dir` with a name no other process or thread uses, created with
/// `create_new` (never follows or reuses an existing path) and the umask's default mode.
fn create_temp(dir: &Path, stem: &str) -> std::io::Result<(PathBuf, File)> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    loop {
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let path = dir.join(format!("{stem}-{}-{n}.tmp", std::process::id()));
        match OpenOptions::new().write(true).create_new(true).open(&path) {
            Ok(f) => return Ok((path, f)),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        }
    }
}

/// Deletes the temporary file unless it was renamed into place.
struct TempGuard(Option<PathBuf>);

impl Drop for TempGuard {
    fn drop(&mut self) {
        if let Some(p) = self.0.take() {
            let _ = std::fs::remove_file(p);
        }
    }
}

/// Fails, naming `what` (a flag such as `--out`, or nothing) and `path`, when `path` exists and
/// is not a regular file: a directory, or a device such as `/dev/full` that a rename would
/// replace.
pub fn refuse_non_regular(path: &Path, what: &str) -> Result<()> {
    if let Ok(meta) = std::fs::metadata(path)
        && !meta.is_file()
    {
        let kind = if meta.is_dir() {
            "a directory"
        } else {
            "a device or special file"
        };
        let what = if what.is_empty() {
            String::new()
        } else {
            format!("{what} ")
        };
        bail!(
            "{what}'{}': exists and is not a regular file ({kind}); give a file path",
            path.display()
        );
    }
    Ok(())
}

/// Writes a file atomically: `fill` writes into a temporary file in the same directory,
/// which is flushed, synced and renamed over `path` only when `fill` succeeds. Every error
/// names `path`. An existing `path` that is not a regular file (a directory, a device such as
/// `/dev/full`, a socket) is refused rather than replaced.
pub fn write_atomic<F>(path: &Path, fill: F) -> Result<()>
where
    F: FnOnce(&mut dyn Write) -> Result<()>,
{
    let shown = path.display();
    refuse_non_regular(path, "")?;
    let dir = parent_dir(path);
    let (tmp_path, file) = create_temp(&dir, ".gradspec").with_context(|| {
        format!(
            "'{shown}': cannot create a temporary file in '{}'",
            dir.display()
        )
    })?;
    let mut guard = TempGuard(Some(tmp_path.clone()));
    let mut w = std::io::BufWriter::new(file);
    fill(&mut w).with_context(|| format!("'{shown}': write failed"))?;
    let file = w
        .into_inner()
        .map_err(|e| err!("{}", e.error()))
        .with_context(|| format!("'{shown}': write failed"))?;
    file.sync_all()
        .with_context(|| format!("'{shown}': write failed (sync)"))?;
    drop(file);
    std::fs::rename(&tmp_path, path)
        .with_context(|| format!("'{shown}': cannot rename into place"))?;
    guard.0 = None;
    Ok(())
}

/// Writes bytes atomically (see [`write_atomic`]).
pub fn write_bytes_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    write_atomic(path, |w| {
        w.write_all(bytes)?;
        Ok(())
    })
}

fn parent_dir(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// The name of the lock file inside a run folder.
pub const LOCK_FILE: &str = ".gradspec.lock";

/// An exclusive lock on a run folder, held while a run writes to it and released when dropped
/// or when the process ends in any way (it is an OS file lock, so a killed run leaves no stale
/// lock behind).
#[derive(Debug)]
pub struct DirLock {
    _file: File,
}

impl DirLock {
    /// Locks `dir` (which must exist), or fails with one line naming `what` and the folder
    /// when another process holds it.
    pub fn acquire(dir: &Path, what: &str) -> Result<Self> {
        let path = dir.join(LOCK_FILE);
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .with_context(|| format!("{what} '{}': cannot create the lock file", dir.display()))?;
        match file.try_lock() {
            Ok(()) => Ok(Self { _file: file }),
            Err(std::fs::TryLockError::WouldBlock) => bail!(
                "{what} '{}': another gradspec run is writing to this folder (it holds '{LOCK_FILE}'); wait for it or choose another folder",
                dir.display()
            ),
            Err(std::fs::TryLockError::Error(e)) => Err(e)
                .with_context(|| format!("{what} '{}': cannot lock the folder", dir.display())),
        }
    }
}
