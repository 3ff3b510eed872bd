//! Preprocessing and batching: Pillow-exact geometry (golden vectors made by Pillow itself,
//! see `golden/data/make_pil_golden.py`), imageproc as a second oracle, determinism of the
//! per-image RNG, normalisation values, epoch order and batch sizes; and, when the full data
//! set is present, its counts and label histograms.
use gradspec::data::{
    self, AugmentParams, Dataset, MNIST_SHA256, PIXELS, Split, augment, batches,
    center_crop_resize, epoch_order, fill_batch, fill_batch_par, image_rng, load_split,
    normalize_into, num_batches, rotate_nearest,
};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

fn fixture() -> Dataset {
    load_split(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/mnist"),
        Split::Test,
    )
    .unwrap()
}

/// The cases of `golden/data/make_pil_golden.py`, in order: (crop, angle).
fn golden_cases() -> Vec<(bool, Option<f64>)> {
    let mut v = vec![(true, None)];
    for a in [
        -15.0, -12.345, -7.5, -1e-3, 0.0, 0.5, 3.0, 9.87654321, 14.999, 15.0, 45.0, 90.0, 180.0,
        270.0, -90.5,
    ] {
        v.push((false, Some(a)));
    }
    v.push((true, Some(7.0)));
    v.push((true, Some(-11.0)));
    v
}

fn golden() -> Vec<u8> {
    let gz =
        std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join("golden/data/pil_golden.bin.gz"))
            .unwrap();
    let mut raw = Vec::new();
    flate2::read::GzDecoder::new(&gz[..])
        .read_to_end(&mut raw)
        .unwrap();
    raw
}

fn ours(src: &[u8], crop: bool, angle: Option<f64>) -> Vec<u8> {
    let mut out = vec![0u8; PIXELS];
    match angle {
        Some(a) => data::apply(src, &mut out, AugmentParams { crop, angle_deg: a }),
        None => center_crop_resize(src, &mut out),
    }
    out
}

#[test]
fn geometry_matches_pillow_pixel_for_pixel() {
    let g = golden();
    let cases = golden_cases();
    let rec = PIXELS * (1 + cases.len());
    assert_eq!(g.len(), 12 * rec, "golden file layout");
    let fx = fixture();
    for (n, r) in g.chunks_exact(rec).enumerate() {
        let src = &r[..PIXELS];
        if n < 8 {
            assert_eq!(src, fx.image(n), "golden input {n} is fixture image {n}");
        }
        for (c, &(crop, angle)) in cases.iter().enumerate() {
            let want = &r[PIXELS * (1 + c)..PIXELS * (2 + c)];
            let got = ours(src, crop, angle);
            let diff = got.iter().zip(want).filter(|(a, b)| a != b).count();
            assert_eq!(
                diff, 0,
                "input {n}, crop {crop}, angle {angle:?}: {diff} pixels differ from Pillow"
            );
        }
    }
}

#[test]
fn rotation_agrees_with_imageproc_about_the_same_centre() {
    // imageproc samples at integer pixel coordinates and rounds; Pillow samples at pixel
    // centres (+0.5) and floors. The same geometric centre (14.0, 14.0) is therefore
    // (13.5, 13.5) for imageproc, and Pillow's counter-clockwise angle is imageproc's
    // negative ("clockwise") theta. Only f32-vs-fixed-point rounding may differ.
    use imageproc::geometric_transformations::{Border, Interpolation, rotate};
    let fx = fixture();
    let mut total = 0;
    for i in 0..32 {
        let src = fx.image(i);
        let img = image::GrayImage::from_raw(28, 28, src.to_vec()).unwrap();
        for k in 0..8 {
            let angle = -15.0 + 30.0 * (k as f64 + 0.37) / 8.0;
            let mut ours = vec![0u8; PIXELS];
            rotate_nearest(src, &mut ours, angle);
            let theirs = rotate(
                &img,
                (13.5, 13.5),
                -(angle.to_radians() as f32),
                Interpolation::Nearest,
                Border::Constant(image::Luma([0u8])),
            )
            .into_raw();
            let diff = ours.iter().zip(&theirs).filter(|(a, b)| a != b).count();
            assert!(diff <= 6, "image {i} angle {angle}: {diff} pixels differ");
            total += diff;
        }
    }
    assert!(total <= 100, "{total} differing pixels over 256 rotations");
}

#[test]
fn positive_angles_turn_counter_clockwise() {
    // A single lit pixel right of centre moves up (towards smaller y) for +10°.
    let mut src = vec![0u8; PIXELS];
    src[14 * 28 + 24] = 255; // row 14, column 24
    let mut out = vec![0u8; PIXELS];
    rotate_nearest(&src, &mut out, 10.0);
    let at = out.iter().position(|&p| p == 255).unwrap();
    let (y, x) = (at / 28, at % 28);
    assert!(y < 14 && x <= 24, "moved to row {y}, column {x}");
}

#[test]
fn augmentation_is_a_pure_function_of_seed_epoch_index() {
    let fx = fixture();
    let run = |seed, epoch, index: u64| {
        let mut out = vec![0u8; PIXELS];
        augment(
            fx.image(index as usize),
            &mut out,
            &mut image_rng(seed, epoch, index),
        );
        out
    };
    assert_eq!(run(1, 2, 3), run(1, 2, 3));
    let base = AugmentParams::sample(&mut image_rng(1, 2, 3));
    for (s, e, i) in [(1, 2, 4), (1, 3, 3), (2, 2, 3)] {
        assert_ne!(
            AugmentParams::sample(&mut image_rng(s, e, i)),
            base,
            "({s}, {e}, {i})"
        );
    }
    assert_ne!(run(1, 2, 3), run(1, 3, 3));
}

#[test]
fn augmentation_parameters_have_the_notebook_distribution() {
    let n = 20_000u64;
    let (mut crops, mut lo, mut hi) = (0, f64::MAX, f64::MIN);
    let mut sum = 0.0;
    for i in 0..n {
        let p = AugmentParams::sample(&mut image_rng(0, 0, i));
        crops += p.crop as u32;
        lo = lo.min(p.angle_deg);
        hi = hi.max(p.angle_deg);
        sum += p.angle_deg;
    }
    let rate = f64::from(crops) / n as f64;
    // Binomial(20000, 0.1): sd 0.0021; 5 sd.
    assert!((rate - 0.1).abs() < 0.011, "crop rate {rate}");
    assert!(
        (-15.0..-14.9).contains(&lo) && (14.9..15.0).contains(&hi),
        "{lo} {hi}"
    );
    assert!(
        (sum / n as f64).abs() < 0.3,
        "mean angle {}",
        sum / n as f64
    );
}

#[test]
fn a_strength_changes_only_the_ranges_of_the_same_draws() {
    use gradspec::data::{Strength, augment_with};
    let weak = Strength {
        crop_prob: 0.5,
        max_angle_deg: 6.0,
    };
    let (mut crops, mut lo, mut hi) = (0u32, f64::MAX, f64::MIN);
    for i in 0..4000u64 {
        let src = AugmentParams::sample(&mut image_rng(0, 0, i));
        let p = AugmentParams::sample_with(&mut image_rng(0, 0, i), weak);
        // The same two uniforms, mapped onto the new ranges: u = (a + 15) / 30 = (b + 6) / 12.
        let (u_src, u) = ((src.angle_deg + 15.0) / 30.0, (p.angle_deg + 6.0) / 12.0);
        assert!((u_src - u).abs() < 1e-12, "image {i}: {u_src} vs {u}");
        assert!(
            !src.crop || p.crop,
            "image {i}: crops at 0.1 but not at 0.5"
        );
        crops += p.crop as u32;
        lo = lo.min(p.angle_deg);
        hi = hi.max(p.angle_deg);
    }
    // Binomial(4000, 0.5): sd 32; 5 sd.
    assert!((1840..2160).contains(&crops), "{crops} crops of 4000");
    assert!(
        (-6.0..-5.9).contains(&lo) && (5.9..6.0).contains(&hi),
        "{lo} {hi}"
    );
    // At the source's strength, augment_with is augment.
    let fx = fixture();
    let (mut a, mut b) = (vec![0u8; PIXELS], vec![0u8; PIXELS]);
    for i in 0..20u64 {
        augment(fx.image(i as usize), &mut a, &mut image_rng(5, 1, i));
        augment_with(
            fx.image(i as usize),
            &mut b,
            &mut image_rng(5, 1, i),
            Strength::SOURCE,
        );
        assert_eq!(a, b, "image {i}");
    }
}

#[test]
fn normalisation_matches_torchvision_in_f32() {
    let src = [0u8, 1, 128, 255];
    let mut dst = [0f32; 4];
    normalize_into(&src, &mut dst);
    for (s, d) in src.iter().zip(dst) {
        let want = (f32::from(*s) / 255.0 - 0.1307f32) / 0.3081f32;
        assert_eq!(d.to_bits(), want.to_bits(), "pixel {s}");
    }
    assert!((dst[0] - (-0.424_212_9)).abs() < 1e-6);
    assert!((dst[3] - 2.821_486_7).abs() < 1e-6);
}

#[test]
fn epoch_order_is_a_deterministic_permutation() {
    let n = 60_000;
    let a = epoch_order(n, 42, 3);
    assert_eq!(a, epoch_order(n, 42, 3));
    let mut seen = vec![false; n];
    for &i in &a {
        assert!(!std::mem::replace(&mut seen[i as usize], true), "{i} twice");
    }
    assert!(seen.iter().all(|&s| s));
    assert_ne!(a, epoch_order(n, 42, 4), "epochs differ");
    assert_ne!(a, epoch_order(n, 43, 3), "seeds differ");
    // Actually shuffled: few fixed points (expected 1).
    assert!(
        a.iter()
            .enumerate()
            .filter(|(i, v)| *i == **v as usize)
            .count()
            < 10
    );
    assert!(epoch_order(0, 1, 1).is_empty());
    assert_eq!(epoch_order(1, 1, 1), vec![0]);
}

/// The order's keystream is ChaCha8 `seed_from_u64(seed)` on stream `2⁶³ | epoch`, apart from
/// every augmentation stream (`image_rng` clears the top bit). With two examples the whole
/// shuffle is one Lemire draw over `0..2`, the top bit of the stream's first `u32`, so the order
/// can be predicted from the stream alone: `[1, 0]` when that bit is 0 (swap with index 0).
#[test]
fn epoch_order_draws_from_stream_two_to_the_63_or_epoch() {
    use rand::{RngCore, SeedableRng};
    for seed in 0..32u64 {
        for epoch in [0u64, 1, 7, 1 << 40] {
            let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
            rng.set_stream((1 << 63) | epoch);
            let expected = if rng.next_u32() >> 31 == 0 {
                [1, 0]
            } else {
                [0, 1]
            };
            assert_eq!(
                epoch_order(2, seed, epoch),
                expected,
                "seed {seed} epoch {epoch}"
            );
        }
    }
    // The epoch's own top bit is ignored: the stream is the same with or without it.
    assert_eq!(epoch_order(50, 9, 5), epoch_order(50, 9, (1 << 63) | 5));
}

#[test]
fn an_epoch_of_60000_is_469_batches_the_last_of_96() {
    let order = epoch_order(60_000, 0, 0);
    let sizes: Vec<usize> = batches(&order, 128).map(<[u32]>::len).collect();
    assert_eq!(sizes.len(), 469);
    assert_eq!(num_batches(60_000, 128), 469);
    assert!(sizes[..468].iter().all(|&s| s == 128));
    assert_eq!(sizes[468], 96);
    assert_eq!(sizes.iter().sum::<usize>(), 60_000);
}

#[test]
fn fill_batch_augments_normalises_and_is_thread_independent() {
    let fx = fixture();
    let idx: Vec<u32> = vec![5, 0, 511, 17, 5];
    let b = idx.len();
    let (mut x, mut y) = (vec![0f32; b * PIXELS], vec![0u8; b]);
    fill_batch(&fx, &idx, None, &mut x, &mut y);
    assert_eq!(
        y,
        idx.iter()
            .map(|&i| fx.labels[i as usize])
            .collect::<Vec<_>>()
    );
    let mut want = vec![0f32; PIXELS];
    normalize_into(fx.image(511), &mut want);
    assert_eq!(&x[2 * PIXELS..3 * PIXELS], &want[..]);

    let (mut xa, mut ya) = (vec![0f32; b * PIXELS], vec![0u8; b]);
    fill_batch(
        &fx,
        &idx,
        Some(gradspec::data::Augmentation::source(9, 1)),
        &mut xa,
        &mut ya,
    );
    let (mut xp, mut yp) = (vec![0f32; b * PIXELS], vec![0u8; b]);
    fill_batch_par(
        &fx,
        &idx,
        Some(gradspec::data::Augmentation::source(9, 1)),
        &mut xp,
        &mut yp,
    );
    assert_eq!(xa, xp, "rayon and sequential agree");
    assert_eq!(ya, yp);
    // The same image index gets the same augmentation wherever it sits in the batch.
    assert_eq!(&xa[..PIXELS], &xa[4 * PIXELS..]);
    assert_ne!(&xa[..PIXELS], &x[..PIXELS], "augmented differs from plain");
    let mut aug = vec![0u8; PIXELS];
    augment(fx.image(17), &mut aug, &mut image_rng(9, 1, 17));
    normalize_into(&aug, &mut want);
    assert_eq!(&xa[3 * PIXELS..4 * PIXELS], &want[..]);
}

#[test]
#[should_panic(expected = "out_x must hold")]
fn fill_batch_checks_buffer_sizes() {
    let fx = fixture();
    let mut x = vec![0f32; 10];
    let mut y = vec![0u8; 1];
    fill_batch(&fx, &[0], None, &mut x, &mut y);
}

/// The full data set, if present: `$MNIST_DIR`, else `data/mnist` in the project.
fn full_dir() -> Option<PathBuf> {
    let dir = data::resolve_dir(None);
    data::missing_files(&dir, &data::FILES)
        .is_empty()
        .then_some(dir)
}

#[test]
fn full_mnist_counts_and_label_histograms() {
    let Some(dir) = full_dir() else {
        // `.ci/run` fetches MNIST before the tests, so in CI a missing data set is a failure.
        assert!(
            std::env::var_os("GRADSPEC_REQUIRE_MNIST").is_none(),
            "GRADSPEC_REQUIRE_MNIST is set but full MNIST is not at {}",
            data::resolve_dir(None).display()
        );
        // Written to the real stderr (not the captured one), so a skip is visible in the
        // normal `cargo test` output.
        let _ = writeln!(
            std::io::stderr(),
            "SKIPPED: full MNIST not present at {} (run `gradspec mnist fetch` or set MNIST_DIR)",
            data::resolve_dir(None).display()
        );
        return;
    };
    let train = load_split(&dir, Split::Train).unwrap();
    let test = load_split(&dir, Split::Test).unwrap();
    assert_eq!((train.len(), test.len()), (60_000, 10_000));
    assert_eq!(
        train.label_histogram(),
        [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
    );
    assert_eq!(
        test.label_histogram(),
        [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
    );
    // The fixture is exactly the first 512 test examples.
    assert_eq!(fixture(), test.slice(0..512));
    data::verify_dir(&dir, &MNIST_SHA256).unwrap();
}
