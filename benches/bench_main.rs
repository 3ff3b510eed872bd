//! The one criterion harness. Bench names carry their shapes.
use criterion::{Criterion, criterion_group, criterion_main};

mod backprop;

fn placeholder(_c: &mut Criterion) {}

criterion_group!(benches, placeholder, backprop::benches);
criterion_main!(benches);
