//! The whole network's hand-written backward pass against central differences of its loss,
//! in f64, for every parameter tensor (a few entries each).
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

/// Checks `grads` against central differences of the train-mode loss (with [`KEY`]).
fn check_net(
    net: &mut Net<f64>,
    ws: &mut Workspace<f64>,
    grads: &Params<f64>,
) -> Result<Report, String> {
    let mut total = Report::default();
    let names: Vec<&'static str> = grads.tensors().iter().map(|t| t.name).collect();
    for (k, name) in names.iter().enumerate() {
        let analytic = grads.tensors()[k].data.to_vec();
        let idx = entries(analytic.len(), &analytic, k);
        let r = check(name, &analytic, idx, NET, |i, d| {
            let orig = net.params.tensors()[k].data[i];
            net.params.tensors_mut()[k].data[i] = orig + d;
            let l = net.forward(ws, TRAIN).loss;
            net.params.tensors_mut()[k].data[i] = orig;
            l
        })?;
        total.max_abs = total.max_abs.max(r.max_abs);
        total.max_ratio = total.max_ratio.max(r.max_ratio);
        total.checked += r.checked;
    }
    Ok(total)
}

fn run(n: usize) -> Report {
    let mut net = Net::<f64>::new(NET_SEED);
    let mut ws = Workspace::new(n);
    let (x, y) = batch(n, DATA_SEED);
    ws.load(&x, &y);
    let grads = gradients(&mut net, &mut ws, TRAIN);
    let r = check_net(&mut net, &mut ws, &grads).unwrap_or_else(|e| panic!("batch {n}: {e}"));
    println!(
        "observed net (batch {n}): max |a−n| = {:.2e}, max ratio to tolerance = {:.2e} over {} entries",
        r.max_abs, r.max_ratio, r.checked
    );
    r
}

/// Batch of 4 (one chunk): every one of the 24 parameter tensors.
#[test]
fn network_gradients_match_central_differences_batch_4() {
    let r = run(4);
    assert!(r.checked >= 24 * 3);
}

/// Batch of 10 = chunks of 8 and 2: the cross-chunk reductions (BatchNorm statistics, dγ, dβ,
/// parameter gradients) are part of what is checked.
#[test]
fn network_gradients_match_central_differences_across_chunks_batch_10() {
    run(10);
}

/// The checker can fail: a gradient off by 1% in one tensor is rejected, naming the tensor.
#[test]
fn network_checker_rejects_a_gradient_scaled_by_one_percent() {
    let mut net = Net::<f64>::new(NET_SEED);
    let mut ws = Workspace::new(4);
    let (x, y) = batch(4, DATA_SEED);
    ws.load(&x, &y);
    let mut grads = gradients(&mut net, &mut ws, TRAIN);
    for v in grads.bn4.weight.iter_mut() {
        *v *= 1.01;
    }
    let e = check_net(&mut net, &mut ws, &grads).unwrap_err();
    assert!(e.starts_with("bn4.weight"), "{e}");
}

/// The masks matter: the gradient of the network without dropout is not the gradient of the
/// loss with the key's masks, and the checker says so.
#[test]
fn network_checker_rejects_the_gradient_of_a_different_dropout_mask() {
    let mut net = Net::<f64>::new(NET_SEED);
    let mut ws = Workspace::new(4);
    let (x, y) = batch(4, DATA_SEED);
    ws.load(&x, &y);
    let grads = gradients(&mut net, &mut ws, Mode::Train { dropout: None });
    assert!(check_net(&mut net, &mut ws, &grads).is_err());
}

/// Same key, same loss and gradients, bit for bit (the masks are a function of the key).
#[test]
fn dropout_key_fixes_the_loss_exactly() {
    let mut net = Net::<f64>::new(NET_SEED);
    let mut ws = Workspace::new(4);
    let (x, y) = batch(4, DATA_SEED);
    ws.load(&x, &y);
    let g1 = gradients(&mut net, &mut ws, TRAIN);
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
