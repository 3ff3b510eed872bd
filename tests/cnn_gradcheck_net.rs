//! The whole network's hand-written backward pass against central differences of its loss,
//! in f64, covering every parameter: every entry of each tensor of at most 600 entries, a few
//! entries of the four large convolution weights, and random **directional derivatives**
//! `g·v` over all 16,562 parameters at once (one random unit direction per tensor, and
//! [`GLOBAL_DIRECTIONS`] over all tensors together).
//!
//! Kinks (ReLU at 0, max-pool ties) cannot be avoided by construction here: they depend on
//! every weight. So the inputs come from **fixed, documented seeds** rather than random ones,
//! and the check runs in train mode with a fixed dropout key, which fixes the masks; see
//! spec/cnn.md, "Whole-network check".
mod cnn_common;

use cnn_common::{NET, Report, check};
use gradspec::cnn::net::DropoutKey;
use gradspec::cnn::{Mode, Net, Params, Workspace};
use rand::{Rng, SeedableRng};

/// Seed of the network's initialisation.
const NET_SEED: u64 = 0;
/// Seed of the images and labels.
const DATA_SEED: u64 = 42;
/// Seed of the random directions.
const DIRECTION_SEED: u64 = 2718;
/// Random unit directions over all parameters together.
const GLOBAL_DIRECTIONS: usize = 8;
/// Tensors with at most this many entries are checked entry by entry (all but the weights of
/// conv2, conv4, conv5 and conv7).
const SMALL: usize = 600;
/// The dropout masks of every loss evaluation.
const KEY: DropoutKey = DropoutKey { seed: 7, step: 3 };
const TRAIN: Mode = Mode::Train { dropout: Some(KEY) };

/// `n` pseudo-random images with pixels in [−1, 2.5] (about the range of normalised MNIST)
/// and labels 0–9.
fn batch(n: usize, seed: u64) -> (Vec<f64>, Vec<u8>) {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let x = (0..n * 784).map(|_| rng.random_range(-1.0..2.5)).collect();
    let y = (0..n).map(|_| rng.random_range(0..10u8)).collect();
    (x, y)
}

/// The entries checked in a tensor of `len` values: first, last, the largest |gradient|,
/// and two pseudo-random ones.
fn entries(len: usize, grad: &[f64], salt: usize) -> Vec<usize> {
    let big = (0..len)
        .max_by(|&a, &b| grad[a].abs().total_cmp(&grad[b].abs()))
        .unwrap_or(0);
    let mut e = vec![
        0,
        len - 1,
        big,
        (salt * 7919 + 13) % len,
        (salt * 104_729 + len / 2) % len,
    ];
    e.sort_unstable();
    e.dedup();
    e
}

fn gradients(net: &mut Net<f64>, ws: &mut Workspace<f64>, mode: Mode) -> Params<f64> {
    let mut g = Params::zeros();
    net.forward(ws, mode);
    net.backward(ws, &mut g);
    g
}

fn merge(total: &mut Report, r: Report) {
    total.max_abs = total.max_abs.max(r.max_abs);
    total.max_ratio = total.max_ratio.max(r.max_ratio);
    total.checked += r.checked;
}

/// Which entries of each tensor [`check_entries`] compares.
#[derive(Clone, Copy, PartialEq)]
enum Coverage {
    /// [`entries`] only (five per tensor).
    Sampled,
    /// Every entry of tensors of at most [`SMALL`] entries, [`entries`] of the others.
    AllSmall,
}

/// Checks `grads` entry by entry against central differences of the train-mode loss (with
/// [`KEY`]).
fn check_entries(
    net: &mut Net<f64>,
    ws: &mut Workspace<f64>,
    grads: &Params<f64>,
    coverage: Coverage,
) -> Result<Report, String> {
    let mut total = Report::default();
    let names: Vec<&'static str> = grads.tensors().iter().map(|t| t.name).collect();
    for (k, name) in names.iter().enumerate() {
        let analytic = grads.tensors()[k].data.to_vec();
        let idx = if coverage == Coverage::AllSmall && analytic.len() <= SMALL {
            (0..analytic.len()).collect()
        } else {
            entries(analytic.len(), &analytic, k)
        };
        let r = check(name, &analytic, idx, NET, |i, d| {
            let orig = net.params.tensors()[k].data[i];
            net.params.tensors_mut()[k].data[i] = orig + d;
            let l = net.forward(ws, TRAIN).loss;
            net.params.tensors_mut()[k].data[i] = orig;
            l
        })?;
        merge(&mut total, r);
    }
    Ok(total)
}

/// A direction in parameter space: one vector per tensor, in `Params::slices` order.
type Direction = Vec<Vec<f64>>;

/// The fixed random directions, each of unit Euclidean norm over all 16,562 parameters, with
/// entries drawn `U[−1, 1]` (ChaCha8, [`DIRECTION_SEED`]) before normalising: first one per
/// tensor (zero outside that tensor, so a small tensor is not drowned by the large ones), then
/// [`GLOBAL_DIRECTIONS`] over all tensors at once. Their names are `dir <tensor>` and
/// `dir all #j`.
fn directions() -> Vec<(String, Direction)> {
    let shape = Params::<f64>::zeros();
    let lens: Vec<usize> = shape.slices().iter().map(|s| s.len()).collect();
    let names: Vec<&str> = shape.tensors().iter().map(|t| t.name).collect();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(DIRECTION_SEED);
    let mut draw = |on: &dyn Fn(usize) -> bool| -> Direction {
        let mut v: Direction = lens
            .iter()
            .enumerate()
            .map(|(k, &n)| {
                (0..n)
                    .map(|_| {
                        if on(k) {
                            rng.random_range(-1.0..1.0)
                        } else {
                            0.0
                        }
                    })
                    .collect()
            })
            .collect();
        let norm = v.iter().flatten().map(|a| a * a).sum::<f64>().sqrt();
        v.iter_mut().flatten().for_each(|a| *a /= norm);
        v
    };
    let mut out = Vec::new();
    for (k, name) in names.iter().enumerate() {
        out.push((format!("dir {name}"), draw(&|t| t == k)));
    }
    for j in 0..GLOBAL_DIRECTIONS {
        out.push((format!("dir all #{j}"), draw(&|_| true)));
    }
    out
}

/// `g·v` for each direction, summed tensor by tensor.
fn projections(grads: &Params<f64>, dirs: &[(String, Direction)]) -> Vec<f64> {
    dirs.iter()
        .map(|(_, v)| {
            grads
                .slices()
                .iter()
                .zip(v)
                .map(|(g, v)| g.iter().zip(v).map(|(a, b)| a * b).sum::<f64>())
                .sum()
        })
        .collect()
}

/// Checks the directional derivatives `g·v` against `(L(θ + h·v) − L(θ − h·v)) / 2h`, with
/// the same checker and the same `NET` tolerance as the entries (see spec/cnn.md, "Tolerance
/// presets": `v` has unit norm, so the rounding error `≈ ε·|L|/h` and the truncation
/// `h²·|D³L[v,v,v]|/6` are of the same size as for one coordinate).
fn check_directions(
    net: &mut Net<f64>,
    ws: &mut Workspace<f64>,
    grads: &Params<f64>,
    dirs: &[(String, Direction)],
) -> Result<Report, String> {
    let analytic = projections(grads, dirs);
    let base = net.params.clone();
    let mut total = Report::default();
    for (j, (name, v)) in dirs.iter().enumerate() {
        // One call per direction, so that an error message names the direction.
        let mut a = vec![0.0; dirs.len()];
        a[j] = analytic[j];
        let r = check(name, &a, [j], NET, |_, d| {
            for ((p, b), v) in net
                .params
                .slices_mut()
                .into_iter()
                .zip(base.slices())
                .zip(v)
            {
                for ((p, b), v) in p.iter_mut().zip(b).zip(v) {
                    *p = b + d * v;
                }
            }
            let l = net.forward(ws, TRAIN).loss;
            *net.params = (*base).clone();
            l
        })?;
        merge(&mut total, r);
    }
    Ok(total)
}

/// A network, a loaded batch of `n` images and the true gradient (all from the fixed seeds).
fn setup(n: usize) -> (Net<f64>, Workspace<f64>, Params<f64>) {
    let mut net = Net::<f64>::new(NET_SEED);
    let mut ws = Workspace::new(n);
    let (x, y) = batch(n, DATA_SEED);
    ws.load(&x, &y);
    let grads = gradients(&mut net, &mut ws, TRAIN);
    (net, ws, grads)
}

fn report(what: &str, n: usize, r: &Report) {
    println!(
        "observed net {what} (batch {n}): max |a−n| = {:.2e}, max ratio to tolerance = {:.2e} over {} checks",
        r.max_abs, r.max_ratio, r.checked
    );
}

fn run(n: usize, coverage: Coverage) -> (Report, Report) {
    let (mut net, mut ws, grads) = setup(n);
    let e = check_entries(&mut net, &mut ws, &grads, coverage)
        .unwrap_or_else(|e| panic!("batch {n}: {e}"));
    report("entries", n, &e);
    let d = check_directions(&mut net, &mut ws, &grads, &directions())
        .unwrap_or_else(|e| panic!("batch {n}: {e}"));
    report("directions", n, &d);
    (e, d)
}

/// Verifies r[cnn.conv.backward_input] r[cnn.conv.backward_weight] r[cnn.conv.backward_bias] r[cnn.relu.backward] r[cnn.bn.backward_params] r[cnn.bn.backward_input] r[cnn.dropout.backward] r[cnn.maxpool.backward] r[cnn.avgpool.backward] r[cnn.linear.backward_input] r[cnn.linear.backward_weight] r[cnn.linear.backward_bias] r[cnn.logsoftmax.backward] r[cnn.nll.backward].
/// Checks `cnn.conv.backward_input` `cnn.conv.backward_weight` `cnn.conv.backward_bias`
/// `cnn.relu.backward` `cnn.bn.backward_params` `cnn.bn.backward_input` `cnn.dropout.backward`
/// `cnn.maxpool.backward` `cnn.avgpool.backward` `cnn.linear.backward_input`
/// `cnn.linear.backward_weight` `cnn.linear.backward_bias` `cnn.logsoftmax.backward`
/// `cnn.nll.backward`, composed into the network's backward pass, against central differences of
/// the loss: batch of 4 (one chunk), every entry of the 20 tensors of at most 600 entries, five of
/// each large convolution weight, and every parameter through the random directions.
#[test]
fn network_gradients_match_central_differences_batch_4() {
    let (e, d) = run(4, Coverage::AllSmall);
    let small: usize = Params::<f64>::zeros()
        .slices()
        .iter()
        .map(|s| s.len())
        .filter(|&l| l <= SMALL)
        .sum();
    assert!(e.checked >= small + 4 * 3, "{} entries", e.checked);
    assert_eq!(d.checked, 24 + GLOBAL_DIRECTIONS);
}

/// Verifies r[cnn.bn.backward_params] r[cnn.bn.backward_input] r[cnn.conv.backward_weight] r[cnn.conv.backward_bias] r[cnn.linear.backward_weight] r[cnn.linear.backward_bias] r[cnn.nll.backward].
/// Checks the same labels as the batch-4 check across chunks: batch of 10 = chunks of 8 and 2, so the
/// cross-chunk reductions (BatchNorm statistics, dγ, dβ, parameter gradients) of
/// `cnn.bn.backward_params` `cnn.bn.backward_input` `cnn.conv.backward_weight`
/// `cnn.conv.backward_bias` `cnn.linear.backward_weight` `cnn.linear.backward_bias` and the
/// whole-batch `1/N` of `cnn.nll.backward` are part of what is checked (five entries per tensor,
/// and every parameter through the random directions).
#[test]
fn network_gradients_match_central_differences_across_chunks_batch_10() {
    run(10, Coverage::Sampled);
}

/// The checker can fail: a gradient off by 1% in one tensor is rejected, naming the tensor.
#[test]
fn network_checker_rejects_a_gradient_scaled_by_one_percent() {
    let (mut net, mut ws, mut grads) = setup(4);
    for v in grads.bn4.weight.iter_mut() {
        *v *= 1.01;
    }
    let e = check_entries(&mut net, &mut ws, &grads, Coverage::Sampled).unwrap_err();
    assert!(e.starts_with("bn4.weight"), "{e}");
}

/// The masks matter: the gradient of the network without dropout is not the gradient of the
/// loss with the key's masks, and the checker says so.
#[test]
fn network_checker_rejects_the_gradient_of_a_different_dropout_mask() {
    let (mut net, mut ws, _) = setup(4);
    let grads = gradients(&mut net, &mut ws, Mode::Train { dropout: None });
    assert!(check_entries(&mut net, &mut ws, &grads, Coverage::Sampled).is_err());
}

/// Two entries of conv2.weight's gradient swapped (a permutation: every norm and sum stays the
/// same), both outside the sampled entries: the sampled entry check passes, the directional
/// check rejects it. The swapped pair is the largest and the smallest |gradient| among the
/// unsampled entries.
#[test]
fn directional_check_rejects_two_swapped_entries_the_sampled_check_misses() {
    let (mut net, mut ws, mut grads) = setup(4);
    let k = 4;
    assert_eq!(grads.tensors()[k].name, "conv2.weight");
    let g = grads.tensors()[k].data.to_vec();
    let sampled = entries(g.len(), &g, k);
    let free = || (0..g.len()).filter(|i| !sampled.contains(i));
    let hi = free()
        .max_by(|&a, &b| g[a].abs().total_cmp(&g[b].abs()))
        .unwrap();
    let lo = free()
        .min_by(|&a, &b| g[a].abs().total_cmp(&g[b].abs()))
        .unwrap();
    grads.tensors_mut()[k].data.swap(hi, lo);
    check_entries(&mut net, &mut ws, &grads, Coverage::Sampled)
        .expect("the sampled entries do not see the swap");
    let e = check_directions(&mut net, &mut ws, &grads, &directions()).unwrap_err();
    println!("swap rejected: {e}");
    assert!(e.starts_with("dir conv2.weight"), "{e}");
}

/// One entry of conv5.weight's gradient off by 1% of the tensor's largest |gradient|, outside
/// the sampled entries: the directional check rejects it.
#[test]
fn directional_check_rejects_one_wrong_entry() {
    let (mut net, mut ws, mut grads) = setup(4);
    let k = 14;
    assert_eq!(grads.tensors()[k].name, "conv5.weight");
    let g = grads.tensors()[k].data.to_vec();
    let sampled = entries(g.len(), &g, k);
    let i = (0..g.len())
        .find(|i| !sampled.contains(i) && *i > g.len() / 3)
        .unwrap();
    let big = g.iter().fold(0.0f64, |m, v| m.max(v.abs()));
    grads.tensors_mut()[k].data[i] += 0.01 * big;
    check_entries(&mut net, &mut ws, &grads, Coverage::Sampled)
        .expect("the sampled entries do not see it");
    let e = check_directions(&mut net, &mut ws, &grads, &directions()).unwrap_err();
    println!("wrong entry rejected: {e}");
    assert!(e.starts_with("dir conv5.weight"), "{e}");
}

/// Same key, same loss and gradients, bit for bit (the masks are a function of the key).
#[test]
fn dropout_key_fixes_the_loss_exactly() {
    let (mut net, mut ws, g1) = setup(4);
    let l1 = net.forward(&mut ws, TRAIN).loss;
    let g2 = gradients(&mut net, &mut ws, TRAIN);
    let l2 = net.forward(&mut ws, TRAIN).loss;
    assert_eq!(l1.to_bits(), l2.to_bits());
    assert_eq!(g1, g2);
    let other = Mode::Train {
        dropout: Some(DropoutKey { seed: 7, step: 4 }),
    };
    assert_ne!(net.forward(&mut ws, other).loss, l1);
}
