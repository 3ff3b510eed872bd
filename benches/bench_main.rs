//! The one criterion harness. Bench names carry their shapes.
//! Plots are off: criterion's plotters backend needs a system font, which CI may lack.
use criterion::{Criterion, criterion_group, criterion_main};

mod data;

criterion_group! {
    name = benches;
    config = Criterion::default().without_plots();
    targets = data::benches
}
criterion_main!(benches);
