//! Shared by the tests that run the real binary on MNIST without downloading it.
#![allow(dead_code)]
use std::path::{Path, PathBuf};

/// A data dir in `tmp` whose train and test splits are both the committed fixture (the first
/// 512 real test images), so that nothing is fetched and nothing is written beside the fixture.
pub fn fixture_data_dir(tmp: &Path) -> PathBuf {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/mnist");
    let d = tmp.join("mnist");
    std::fs::create_dir_all(&d).unwrap();
    for kind in ["images-idx3", "labels-idx1"] {
        for split in ["t10k", "train"] {
            let from = src.join(format!("t10k-{kind}-ubyte.gz"));
            std::fs::copy(from, d.join(format!("{split}-{kind}-ubyte.gz"))).unwrap();
        }
    }
    d
}
