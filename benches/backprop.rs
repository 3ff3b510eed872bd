//! Part 1 benches: one training iteration of the 2-2-2 network (forward, backward and
//! update timed separately and together), and the whole six-rate sweep without file IO.
//! Inputs are the spreadsheet's fixed values, so every run times the same arithmetic.
use criterion::Criterion;
use gradspec::backprop::sweep::{DEFAULT_ITERATIONS, DEFAULT_LRS, sweep_curves};
use gradspec::backprop::{Backward, Forward, State};
use std::hint::black_box;

pub fn benches(c: &mut Criterion) {
    // Criterion draws its HTML report with plotters, which finds no font on a machine
    // without system fonts and panics; register the embedded one first.
    gradspec::plot::init_fonts();
    let s = State::<f64>::spreadsheet();
    let f = Forward::compute(&s);
    let g = s.gradient();

    c.bench_function("backprop_2x2x2_f64_forward", |b| {
        b.iter(|| Forward::compute(black_box(&s)))
    });
    c.bench_function("backprop_2x2x2_f64_backward", |b| {
        b.iter(|| Backward::compute(black_box(&s), black_box(&f)))
    });
    c.bench_function("backprop_2x2x2_f64_update", |b| {
        b.iter(|| black_box(&s).step(black_box(&g), 0.5))
    });
    c.bench_function("backprop_2x2x2_f64_train_iteration", |b| {
        b.iter(|| {
            let s = black_box(&s);
            s.step(&s.gradient(), 0.5)
        })
    });
    c.bench_function("backprop_2x2x2_f64_sweep_6lr_x100it", |b| {
        b.iter(|| sweep_curves(black_box(s), &DEFAULT_LRS, DEFAULT_ITERATIONS))
    });
}
