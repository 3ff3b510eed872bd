//! Data-pipeline benches (registered in `bench_main.rs`). Seeded inputs: the committed
//! fixture (512 real MNIST test digits), so the numbers do not depend on the full data set.
use criterion::{BatchSize, Criterion};
use gradspec::data::{
    self, AugmentParams, PIXELS, Split, augment, epoch_order, fill_batch, fill_batch_par,
    image_rng, load_split,
};
use std::hint::black_box;
use std::path::Path;

pub fn benches(c: &mut Criterion) {
    let ds = load_split(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/mnist"),
        Split::Test,
    )
    .expect("fixture");
    let n = ds.len() as u64;
    let mut out = [0u8; PIXELS];
    let mut i = 0u64;
    // One image: RNG derivation + crop decision + rotation (10 % also crop+resize).
    c.bench_function("augment_28x28", |b| {
        b.iter(|| {
            i = (i + 1) % n;
            augment(ds.image(i as usize), &mut out, &mut image_rng(1, 0, i));
            black_box(&out);
        })
    });
    c.bench_function("image_rng_derive", |b| {
        b.iter(|| black_box(image_rng(1, black_box(3), black_box(12345))))
    });
    c.bench_function("rotate_nearest_28x28", |b| {
        b.iter(|| {
            data::rotate_nearest(ds.image(7), &mut out, black_box(7.3));
            black_box(&out);
        })
    });
    c.bench_function("center_crop_resize_22to28", |b| {
        b.iter(|| {
            data::center_crop_resize(ds.image(7), &mut out);
            black_box(&out);
        })
    });
    c.bench_function("imageproc_rotate_28x28", |b| {
        use imageproc::geometric_transformations::{Border, Interpolation, rotate};
        let img = image::GrayImage::from_raw(28, 28, ds.image(7).to_vec()).unwrap();
        b.iter(|| {
            black_box(rotate(
                &img,
                (13.5, 13.5),
                black_box(-0.127),
                Interpolation::Nearest,
                Border::Constant(image::Luma([0u8])),
            ))
        })
    });
    let _ = AugmentParams::sample(&mut image_rng(0, 0, 0));

    // One batch of 128, as the trainer fills it (×469 per epoch).
    let order: Vec<u32> = epoch_order(ds.len(), 3, 0)
        .into_iter()
        .cycle()
        .take(128)
        .collect();
    let mut x = vec![0f32; 128 * PIXELS];
    let mut y = vec![0u8; 128];
    c.bench_function("fill_batch_b128_aug", |b| {
        b.iter(|| {
            fill_batch(
                &ds,
                &order,
                Some(gradspec::data::Augmentation::source(1, 2)),
                &mut x,
                &mut y,
            )
        })
    });
    c.bench_function("fill_batch_b128_noaug", |b| {
        b.iter(|| fill_batch(&ds, &order, None, &mut x, &mut y))
    });
    c.bench_function("fill_batch_par_b128_aug", |b| {
        b.iter(|| {
            fill_batch_par(
                &ds,
                &order,
                Some(gradspec::data::Augmentation::source(1, 2)),
                &mut x,
                &mut y,
            )
        })
    });
    c.bench_function("epoch_order_n60000", |b| {
        b.iter_batched(|| (), |_| epoch_order(60_000, 1, 2), BatchSize::SmallInput)
    });
}
