//! The one criterion harness. Bench names carry their shapes.
use criterion::{Criterion, criterion_group, criterion_main};

mod backprop;
mod cnn;
mod conv_simd;
mod data;

fn config() -> Criterion {
    // Criterion's charts are drawn with plotters, which needs a font; register the embedded
    // DejaVu Sans (machines may have no system fonts, and plotters then panics).
    gradspec::plot::init_fonts();
    Criterion::default()
}

criterion_group! {
    name = benches;
    config = config();
    targets = backprop::benches, cnn::benches, conv_simd::benches, data::benches
}
criterion_main!(benches);
