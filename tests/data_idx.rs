//! IDX parsing: the fixture (gz and raw), and one test per kind of broken file. Every error
//! must name the file and the problem; no input may panic.
mod proptest_cases;
use flate2::{Compression, write::GzEncoder};
use gradspec::data::idx::{self, IdxKind, IdxProblem, MAGIC_IMAGES, MAGIC_LABELS};
use gradspec::data::{Dataset, Split, TEST_IMAGES, TEST_LABELS, load_split};
use proptest::prelude::*;
use proptest_cases::fixed_cases;
use std::io::Write;
use std::path::{Path, PathBuf};

fn fixture_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/mnist")
}

fn fixture() -> Dataset {
    load_split(&fixture_dir(), Split::Test).expect("fixture loads")
}

fn gz(bytes: &[u8]) -> Vec<u8> {
    let mut e = GzEncoder::new(Vec::new(), Compression::fast());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

fn images_file(n: u32, rows: u32, cols: u32, body: &[u8]) -> Vec<u8> {
    let mut v = MAGIC_IMAGES.to_be_bytes().to_vec();
    for x in [n, rows, cols] {
        v.extend(x.to_be_bytes());
    }
    v.extend(body);
    v
}

fn labels_file(n: u32, body: &[u8]) -> Vec<u8> {
    let mut v = MAGIC_LABELS.to_be_bytes().to_vec();
    v.extend(n.to_be_bytes());
    v.extend(body);
    v
}

/// A directory holding a test split made of `images` and `labels` (raw file names).
fn split_dir(images: &[u8], labels: &[u8]) -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    std::fs::write(d.path().join(TEST_IMAGES), images).unwrap();
    std::fs::write(d.path().join(TEST_LABELS), labels).unwrap();
    d
}

/// Loads the test split of `d` and returns the error text, which must name `file`.
fn load_err(d: &tempfile::TempDir, file: &str) -> String {
    let e = load_split(d.path(), Split::Test).expect_err("must fail");
    let msg = format!("{e:#}");
    assert!(msg.contains(file), "error does not name {file}: {msg}");
    assert!(!msg.contains('\n'), "error is not one line: {msg}");
    msg
}

fn ok_images(n: u32) -> Vec<u8> {
    images_file(n, 28, 28, &vec![7u8; n as usize * 784])
}

fn ok_labels(n: u32) -> Vec<u8> {
    labels_file(n, &(0..n).map(|i| (i % 10) as u8).collect::<Vec<_>>())
}

#[test]
fn fixture_is_the_first_512_test_images_gzipped() {
    let ds = fixture();
    assert_eq!(ds.len(), 512);
    assert_eq!(ds.images.len(), 512 * 784);
    // The first labels of the MNIST test set.
    assert_eq!(&ds.labels[..10], &[7, 2, 1, 0, 4, 1, 4, 9, 5, 9]);
    assert_eq!(ds.label_histogram().iter().sum::<usize>(), 512);
    // Image 0 (a 7) has ink in the middle rows and a blank border.
    let img = ds.image(0);
    assert!(img[..28].iter().all(|&p| p == 0));
    assert!(img.iter().filter(|&&p| p > 128).count() > 50);
}

#[test]
fn raw_and_gzipped_files_load_identically() {
    let gzds = fixture();
    let raw_img = idx::read_file(
        &fixture_dir().join(format!("{TEST_IMAGES}.gz")),
        IdxKind::Images,
    )
    .unwrap();
    assert_eq!(raw_img, gzds.images);
    let d = split_dir(
        &images_file(512, 28, 28, &gzds.images),
        &labels_file(512, &gzds.labels),
    );
    assert_eq!(load_split(d.path(), Split::Test).unwrap(), gzds);
    // Gzip is recognised by its magic bytes even without the .gz suffix.
    let d = split_dir(
        &gz(&images_file(512, 28, 28, &gzds.images)),
        &labels_file(512, &gzds.labels),
    );
    assert_eq!(load_split(d.path(), Split::Test).unwrap(), gzds);
}

#[test]
fn raw_file_wins_over_gz_when_both_exist() {
    let d = split_dir(&ok_images(2), &ok_labels(2));
    std::fs::write(d.path().join(format!("{TEST_IMAGES}.gz")), b"junk").unwrap();
    assert_eq!(load_split(d.path(), Split::Test).unwrap().len(), 2);
}

#[test]
fn wrong_magic_is_named_with_a_hint() {
    let d = split_dir(&ok_labels(3), &ok_labels(3));
    let msg = load_err(&d, TEST_IMAGES);
    assert!(msg.contains("wrong magic number 0x00000801"), "{msg}");
    assert!(msg.contains("this is an IDX labels file"), "{msg}");
}

#[test]
fn truncated_header_is_named() {
    let d = split_dir(&ok_images(1)[..10], &ok_labels(1));
    let msg = load_err(&d, TEST_IMAGES);
    assert!(msg.contains("truncated header: 10 bytes"), "{msg}");
    let d = split_dir(&ok_images(1), &ok_labels(1)[..6]);
    let msg = load_err(&d, TEST_LABELS);
    assert!(msg.contains("truncated header: 6 bytes"), "{msg}");
}

#[test]
fn truncated_data_is_named() {
    let full = ok_images(3);
    let d = split_dir(&full[..full.len() - 1], &ok_labels(3));
    let msg = load_err(&d, TEST_IMAGES);
    assert!(
        msg.contains("declares 3 images (2352 bytes) but only 2351 bytes follow"),
        "{msg}"
    );
}

#[test]
fn trailing_data_is_named() {
    let mut l = ok_labels(3);
    l.push(0);
    let d = split_dir(&ok_images(3), &l);
    let msg = load_err(&d, TEST_LABELS);
    assert!(msg.contains("1 unexpected trailing byte"), "{msg}");
}

#[test]
fn images_other_than_28x28_are_rejected() {
    let d = split_dir(&images_file(1, 32, 32, &[0; 1024]), &ok_labels(1));
    let msg = load_err(&d, TEST_IMAGES);
    assert!(msg.contains("images are 32×32, expected 28×28"), "{msg}");
}

#[test]
fn image_and_label_counts_must_agree() {
    let d = split_dir(&ok_images(4), &ok_labels(5));
    let msg = load_err(&d, TEST_LABELS);
    assert!(msg.contains("holds 5 labels but"), "{msg}");
    assert!(
        msg.contains(&format!("{TEST_IMAGES}' holds 4 images")),
        "{msg}"
    );
}

#[test]
fn label_above_9_is_named_with_its_index() {
    let d = split_dir(&ok_images(3), &labels_file(3, &[1, 2, 10]));
    let msg = load_err(&d, TEST_LABELS);
    assert!(msg.contains("label 10 at index 2 is above 9"), "{msg}");
}

#[test]
fn empty_file_is_named() {
    let d = split_dir(&[], &ok_labels(1));
    let msg = load_err(&d, TEST_IMAGES);
    assert!(msg.contains("empty file"), "{msg}");
}

#[test]
fn garbage_is_rejected() {
    let d = split_dir(b"<html>404 Not Found</html>", &ok_labels(1));
    let msg = load_err(&d, TEST_IMAGES);
    assert!(
        msg.contains("wrong magic") && msg.contains("not an MNIST IDX file"),
        "{msg}"
    );
}

#[test]
fn huge_declared_count_is_rejected_before_reading() {
    let d = split_dir(&images_file(u32::MAX, 28, 28, &[]), &ok_labels(1));
    let msg = load_err(&d, TEST_IMAGES);
    assert!(msg.contains("more than the 268435456-byte limit"), "{msg}");
    // Same through gzip: the header is checked before anything else is decompressed.
    let d = split_dir(
        &gz(&images_file(u32::MAX, 28, 28, &[1; 4096])),
        &ok_labels(1),
    );
    let msg = load_err(&d, TEST_IMAGES);
    assert!(msg.contains("limit"), "{msg}");
}

#[test]
fn gzip_bomb_is_read_only_as_far_as_the_header_declares() {
    // 64 MiB of zeros compress to ~64 KiB; the header declares 1 image.
    let mut body = ok_images(1);
    body.resize(64 << 20, 0);
    let bomb = gz(&body);
    assert!(bomb.len() < 1 << 20);
    match idx::parse(&bomb, IdxKind::Images) {
        Err(IdxProblem::TrailingData { count: 1, .. }) => {}
        other => panic!("expected trailing data, got {other:?}"),
    }
}

#[test]
fn corrupt_truncated_or_fake_gzip_is_named() {
    let good = gz(&ok_images(2));
    // A flipped byte in the deflate data or the CRC.
    for at in [good.len() / 2, good.len() - 6] {
        let mut bad = good.clone();
        bad[at] ^= 0x55;
        let d = split_dir(&bad, &ok_labels(2));
        let msg = load_err(&d, TEST_IMAGES);
        assert!(
            msg.contains("gzip") || msg.contains("truncated") || msg.contains("trailing"),
            "{msg}"
        );
    }
    // Cut short.
    let d = split_dir(&good[..good.len() - 20], &ok_labels(2));
    let msg = load_err(&d, TEST_IMAGES);
    assert!(msg.contains("corrupt gzip data"), "{msg}");
    // Junk after the gzip member.
    let mut extra = good.clone();
    extra.extend(b"junk");
    let d = split_dir(&extra, &ok_labels(2));
    let msg = load_err(&d, TEST_IMAGES);
    assert!(
        msg.contains("4 byte(s) after the end of the gzip stream"),
        "{msg}"
    );
    // Named .gz but not gzip.
    let d = tempfile::tempdir().unwrap();
    std::fs::write(d.path().join(format!("{TEST_IMAGES}.gz")), ok_images(1)).unwrap();
    std::fs::write(d.path().join(TEST_LABELS), ok_labels(1)).unwrap();
    let msg = load_err(&d, &format!("{TEST_IMAGES}.gz"));
    assert!(
        msg.contains("named .gz but is not gzip data (starts with 00 00 08 03)"),
        "{msg}"
    );
}

#[test]
fn missing_file_says_how_to_fetch() {
    let d = tempfile::tempdir().unwrap();
    let msg = load_err(&d, TEST_IMAGES);
    assert!(msg.contains("gradspec mnist fetch"), "{msg}");
}

proptest! {
    #![proptest_config(fixed_cases(3000))]

    /// Arbitrary bytes never panic, for either kind.
    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
        let _ = idx::parse(&bytes, IdxKind::Images);
        let _ = idx::parse(&bytes, IdxKind::Labels);
    }

    /// Valid files with a few bytes overwritten (raw or gzipped) never panic, and whatever
    /// parses is consistent with its header.
    #[test]
    fn mutated_files_never_panic(
        gzipped in any::<bool>(),
        labels in any::<bool>(),
        edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..6),
        cut in any::<prop::sample::Index>(),
    ) {
        let (kind, mut bytes) = if labels {
            (IdxKind::Labels, ok_labels(40))
        } else {
            (IdxKind::Images, ok_images(2))
        };
        if gzipped { bytes = gz(&bytes); }
        for (i, b) in edits { let i = i.index(bytes.len()); bytes[i] = b; }
        bytes.truncate(cut.index(bytes.len() + 1).max(1));
        if let Ok(body) = idx::parse(&bytes, kind) {
            match kind {
                IdxKind::Images => prop_assert_eq!(body.len() % 784, 0),
                IdxKind::Labels => prop_assert!(body.iter().all(|&l| l <= 9)),
            }
        }
    }
}
