//! The one criterion harness. Bench names carry their shapes.
use criterion::{criterion_group, criterion_main, Criterion};

mod backprop;
mod cnn;

fn config() -> Criterion {
    // Criterion's charts need a font; register the embedded one (machines may have none).
    gradspec::plot::init_fonts();
    Criterion::default()
}

criterion_group! {
    name = benches;
    config = config();
    targets = backprop::benches, cnn::benches
}
criterion_main!(benches);
