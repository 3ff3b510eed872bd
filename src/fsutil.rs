//! Atomic file output: write to a temporary file beside the target, then rename into place,
//! so that an interrupted run never leaves a half-written file behind.
use anyhow::{Context, Result};
use std::io::Write;
use std::path::{Path, PathBuf};

/// Creates `dir` (and its parents) or fails with an error that names `what` (e.g. `--out`).
pub fn ensure_dir(dir: &Path, what: &str) -> Result<()> {
    std::fs::create_dir_all(dir)
        .with_context(|| format!("{what} '{}': cannot create directory", dir.display()))?;
    // Probe writability now, so that a read-only directory fails before any work is done.
    let probe = tempfile::Builder::new()
        .prefix(".gradspec-probe")
        .tempfile_in(dir)
        .with_context(|| format!("{what} '{}': directory is not writable", dir.display()))?;
    drop(probe);
    Ok(())
}

/// Writes a file atomically: `fill` writes into a temporary file in the same directory,
/// which is flushed, synced and renamed over `path` only when `fill` succeeds.
pub fn write_atomic<F>(path: &Path, fill: F) -> Result<()>
where
    F: FnOnce(&mut dyn Write) -> Result<()>,
{
    let dir = parent_dir(path);
    let mut tmp = tempfile::Builder::new()
        .prefix(".gradspec-tmp")
        .tempfile_in(&dir)
        .with_context(|| format!("'{}': cannot create a temporary file", dir.display()))?;
    {
        let mut w = std::io::BufWriter::new(tmp.as_file_mut());
        fill(&mut w)?;
        w.flush()
            .with_context(|| format!("'{}': write failed", path.display()))?;
    }
    tmp.as_file()
        .sync_all()
        .with_context(|| format!("'{}': sync failed", path.display()))?;
    tmp.persist(path)
        .map_err(|e| e.error)
        .with_context(|| format!("'{}': cannot rename into place", path.display()))?;
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
