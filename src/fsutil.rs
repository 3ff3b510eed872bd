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

/// Returns a temporary path beside `path` with the same extension (image encoders pick the
/// format from the extension), for writers that want a path rather than a stream.
/// The caller renames it into place with [`commit_tmp`].
pub fn tmp_path_for(path: &Path) -> PathBuf {
    let dir = parent_dir(path);
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "out".into());
    dir.join(format!(".gradspec-tmp-{}-{name}", std::process::id()))
}

/// Renames a file produced at [`tmp_path_for`] into place; removes it on failure.
pub fn commit_tmp(tmp: &Path, path: &Path) -> Result<()> {
    std::fs::rename(tmp, path).map_err(|e| {
        let _ = std::fs::remove_file(tmp);
        anyhow::anyhow!("'{}': cannot rename into place: {e}", path.display())
    })
}

fn parent_dir(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}
