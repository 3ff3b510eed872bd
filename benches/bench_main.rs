//! The one criterion harness. Bench names carry their shapes.
use criterion::{criterion_group, criterion_main};

mod backprop;
mod cnn;

criterion_group!(benches, backprop::benches, cnn::benches);
criterion_main!(benches);
