//! The receptive field of `spec/cnn.md` (`r[cnn.receptive_field]`): hand-worked values, and
//! the recurrence against brute force, the set of input pixels an output pixel depends on
//! found by index arithmetic, layer by layer.
use gradspec::cnn::receptive::{Field, receptive_field};
use gradspec::cnn::summary::rows;
use proptest::prelude::*;
use proptest_cases::fixed_cases;
use std::collections::BTreeSet;

mod proptest_cases;

/// The input pixels (one axis) that output `x` of each layer depends on, by following every
/// window back: output `x` of a layer with window `k`, stride `s` reads inputs
/// `x·s … x·s + k − 1`; the set of the layer below is the union of theirs. `width` is the
/// input's width; every layer is "valid" (no padding), as in the network.
fn brute_force(layers: &[(usize, usize)], width: usize) -> Vec<Vec<BTreeSet<usize>>> {
    let mut below: Vec<BTreeSet<usize>> = (0..width).map(|p| BTreeSet::from([p])).collect();
    let mut out = Vec::new();
    for &(k, s) in layers {
        let n = (below.len() - k) / s + 1;
        let sets: Vec<BTreeSet<usize>> = (0..n)
            .map(|x| (x * s..x * s + k).flat_map(|i| below[i].clone()).collect())
            .collect();
        out.push(sets.clone());
        below = sets;
    }
    out
}

/// Each brute-force set spans the interval `[x·j, x·j + r)` of the recurrence's `r` and `j`
/// (its least and greatest pixel), and fills it when no window is narrower than its stride (a
/// `k < s` layer skips pixels, so its field has holes; the network has none).
fn assert_matches(layers: &[(usize, usize)], width: usize) {
    let fields = receptive_field(layers);
    let gapless = layers.iter().all(|&(k, s)| k >= s);
    for (l, (sets, f)) in brute_force(layers, width).iter().zip(&fields).enumerate() {
        for (x, set) in sets.iter().enumerate() {
            let (lo, hi) = (x * f.jump, x * f.jump + f.size - 1);
            let span = (set.first().copied(), set.last().copied());
            assert_eq!(
                span,
                (Some(lo), Some(hi)),
                "layer {l} {:?}, output {x}: brute force's span vs r = {}, j = {}",
                layers[l],
                f.size,
                f.jump
            );
            if gapless {
                assert_eq!(
                    set.len(),
                    f.size,
                    "layer {l}, output {x}: holes in the field"
                );
            }
        }
    }
}

/// Verifies r[cnn.receptive_field] on values worked by hand: a 3×3 convolution sees 3 pixels,
/// two see 5; a 2×2 pool then adds 1 and doubles the jump; a 3×3 after it adds 2·2.
#[test]
fn hand_worked_fields() {
    let f = |size, jump| Field { size, jump };
    assert_eq!(receptive_field::<(usize, usize)>(&[]), []);
    assert_eq!(receptive_field(&[(3, 1)]), [f(3, 1)]);
    assert_eq!(receptive_field(&[(3, 1), (3, 1)]), [f(3, 1), f(5, 1)]);
    assert_eq!(
        receptive_field(&[(3, 1), (3, 1), (2, 2), (3, 1)]),
        [f(3, 1), f(5, 1), f(6, 2), f(10, 2)]
    );
    // A strided convolution: 5 + (3 − 1)·1 = 7, jump 2; then 7 + (3 − 1)·2 = 11.
    assert_eq!(
        receptive_field(&[(5, 1), (3, 2), (3, 1)]),
        [f(5, 1), f(7, 2), f(11, 2)]
    );
}

/// Verifies r[cnn.receptive_field] over the network's own layer list: conv1 … fc1 as worked
/// by hand in `spec/cnn.md`, ending at the whole 28×28 image.
#[test]
fn the_networks_fields_end_at_the_whole_image() {
    let rows = rows();
    let got: Vec<(&str, usize, usize)> = rows
        .iter()
        .zip(receptive_field(&rows))
        .map(|(r, f)| (r.kind, f.size, f.jump))
        .collect();
    let want = [
        ("Conv2d", 3, 1),
        ("BatchNorm2d", 3, 1),
        ("Dropout", 3, 1),
        ("Conv2d", 5, 1),
        ("BatchNorm2d", 5, 1),
        ("Dropout", 5, 1),
        ("Conv2d", 5, 1),
        ("MaxPool2d", 6, 2),
        ("Conv2d", 10, 2),
        ("BatchNorm2d", 10, 2),
        ("Dropout", 10, 2),
        ("Conv2d", 14, 2),
        ("BatchNorm2d", 14, 2),
        ("Dropout", 14, 2),
        ("Conv2d", 14, 2),
        ("MaxPool2d", 16, 4),
        ("Conv2d", 24, 4),
        ("AvgPool2d", 28, 8),
        ("Linear", 28, 8),
    ];
    assert_eq!(got, want);
}

/// Verifies r[cnn.receptive_field] against brute force on the network's layer list: every
/// output pixel of every layer (one axis; the windows are square) depends on exactly the
/// interval the recurrence gives (no window is narrower than its stride, so no holes), and the brute force's output widths are the layer table's.
#[test]
fn the_networks_fields_match_brute_force() {
    let rows = rows();
    let layers: Vec<(usize, usize)> = rows.iter().map(|r| (r.kernel, r.stride)).collect();
    assert_matches(&layers, 28);
    for (sets, r) in brute_force(&layers, 28).iter().zip(&rows) {
        let width = if r.shape.len() == 3 { r.shape[2] } else { 1 };
        assert_eq!(sets.len(), width, "{}: output width", r.kind);
    }
}

proptest! {
    #![proptest_config(fixed_cases(256))]

    /// Verifies r[cnn.receptive_field] against brute force on random stacks of up to six
    /// layers (windows 1–5, strides 1–3, so some skip pixels) over an input wide enough for
    /// all of them.
    #[test]
    fn random_stacks_match_brute_force(
        layers in prop::collection::vec((1usize..=5, 1usize..=3), 0..=6)
    ) {
        // Wide enough that every layer keeps at least two outputs.
        let mut width = 2;
        for &(k, s) in layers.iter().rev() {
            width = (width - 1) * s + k;
        }
        assert_matches(&layers, width);
    }
}
