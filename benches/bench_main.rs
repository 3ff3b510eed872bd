//! The one criterion harness. Bench names carry their shapes.
//!
//! Plots are off: criterion's plotters backend needs system fonts, which CI machines may lack
//! (it panics with `FontUnavailable`); the numbers and HTML-free reports are unaffected.
use criterion::{Criterion, criterion_group, criterion_main};

mod cnn;

criterion_group! {
    name = benches;
    config = Criterion::default().without_plots();
    targets = cnn::benches
}
criterion_main!(benches);
