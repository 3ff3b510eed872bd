//! The conventions of spec/cnn.md that are not gradients: BatchNorm train vs eval and its
//! running statistics, dropout mask statistics and keying, the max-pool tie rule.
use gradspec::cnn::batchnorm::{
    BatchNorm, Running, bn_batch_stats, bn_forward_eval, bn_forward_train, bn_partial_sums,
    bn_running_update,
};
use gradspec::cnn::dropout::dropout_mask;
use gradspec::cnn::maxpool::{maxpool_backward, maxpool_forward};
use gradspec::cnn::net::{DROPOUT_P, DropoutKey};
use gradspec::cnn::pool::Pool;
use gradspec::cnn::tensor::{View, ViewMut};
use gradspec::cnn::{Mode, Net, Params, Workspace};
use rand::{Rng, SeedableRng};

fn rel(a: f64, b: f64) -> f64 {
    (a - b).abs() / b.abs().max(1e-300)
}

fn random(n: usize, seed: u64, lo: f64, hi: f64) -> Vec<f64> {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    (0..n).map(|_| rng.random_range(lo..hi)).collect()
}

// ---------------------------------------------------------------- BatchNorm

/// Two-pass mean, biased and unbiased variance of channel `c` of a `[n, C, HW]` batch.
fn direct_stats(x: &[f64], c: usize, channels: usize, hw: usize) -> (f64, f64, f64) {
    let vals: Vec<f64> = x
        .chunks_exact(hw)
        .enumerate()
        .filter(|(k, _)| k % channels == c)
        .flat_map(|(_, p)| p.iter().copied())
        .collect();
    let m = vals.len() as f64;
    let mean = vals.iter().sum::<f64>() / m;
    let ss: f64 = vals.iter().map(|v| (v - mean) * (v - mean)).sum();
    (mean, ss / m, ss / (m - 1.0))
}

/// Verifies r[cnn.bn.batch_stats] against a two-pass mean and variance.
#[test]
fn batch_statistics_are_the_mean_and_biased_variance() {
    let x = random(3 * 4 * 25, 1, -1.0, 3.0);
    let (mut s1, mut s2) = ([0.0; 4], [0.0; 4]);
    bn_partial_sums::<f64, 4, 5, 5>(View(&x), &mut s1, &mut s2);
    let (mean, var) = bn_batch_stats::<f64, 4>(&s1, &s2, 75);
    for c in 0..4 {
        let (m, biased, _) = direct_stats(&x, c, 4, 25);
        assert!(rel(mean[c], m) < 1e-12, "mean {c}");
        assert!(rel(var[c], biased) < 1e-12, "var {c}");
    }
}

/// Verifies r[cnn.bn.running_update]: momentum 0.1 and the unbiased variance.
#[test]
fn running_statistics_use_the_unbiased_variance_and_momentum_0_1() {
    let x = random(2 * 3 * 16, 2, -2.0, 1.0);
    let (mut s1, mut s2) = ([0.0; 3], [0.0; 3]);
    bn_partial_sums::<f64, 3, 4, 4>(View(&x), &mut s1, &mut s2);
    let (mean, var) = bn_batch_stats::<f64, 3>(&s1, &s2, 32);
    let mut r = Running::<f64, 3>::new();
    r.mean = nalgebra::SVector::from([0.5, -1.0, 2.0]);
    r.var = nalgebra::SVector::from([1.5, 0.25, 3.0]);
    let before = r.clone();
    bn_running_update(&mut r, &mean, &var, 32);
    for c in 0..3 {
        let (m, _, unbiased) = direct_stats(&x, c, 3, 16);
        assert!(rel(r.mean[c], 0.9 * before.mean[c] + 0.1 * m) < 1e-12);
        assert!(rel(r.var[c], 0.9 * before.var[c] + 0.1 * unbiased) < 1e-12);
    }
    assert_eq!(r.num_batches_tracked, 1);
}

/// Verifies r[cnn.bn.forward_eval] element by element, and r[cnn.bn.forward_train] by the mean
/// and variance of its output.
#[test]
fn eval_mode_normalises_with_the_running_statistics() {
    let x = random(2 * 2 * 9, 3, -1.0, 1.0);
    let mut p = BatchNorm::<f64, 2>::new();
    p.weight = nalgebra::SVector::from([1.5, -0.5]);
    p.bias = nalgebra::SVector::from([0.25, 2.0]);
    let mut r = Running::<f64, 2>::new();
    r.mean = nalgebra::SVector::from([0.3, -0.2]);
    r.var = nalgebra::SVector::from([2.0, 0.5]);
    let mut y = x.clone();
    bn_forward_eval::<f64, 2, 3, 3>(&p, &r, ViewMut(&mut y));
    for (k, (yv, xv)) in y.iter().zip(&x).enumerate() {
        let c = (k / 9) % 2;
        let want = p.weight[c] * (xv - r.mean[c]) / (r.var[c] + 1e-5).sqrt() + p.bias[c];
        assert!((yv - want).abs() < 1e-12, "{k}");
    }
    // Train mode on the same input uses the batch statistics instead: a different result,
    // with mean β and (biased) variance γ²·σ²/(σ²+ε) per channel.
    let (mut s1, mut s2) = ([0.0; 2], [0.0; 2]);
    bn_partial_sums::<f64, 2, 3, 3>(View(&x), &mut s1, &mut s2);
    let (mean, var) = bn_batch_stats::<f64, 2>(&s1, &s2, 18);
    let mut xhat = vec![0.0; x.len()];
    let mut yt = vec![0.0; x.len()];
    bn_forward_train::<f64, 2, 3, 3>(&p, &mean, &var, View(&x), &mut xhat, ViewMut(&mut yt));
    assert!(y.iter().zip(&yt).any(|(a, b)| (a - b).abs() > 1e-3));
    for c in 0..2 {
        let (m, v, _) = direct_stats(&yt, c, 2, 9);
        assert!((m - p.bias[c]).abs() < 1e-12);
        let want = p.weight[c] * p.weight[c] * var[c] / (var[c] + 1e-5);
        assert!(rel(v, want) < 1e-9);
    }
}

fn images(n: usize, seed: u64) -> (Vec<f64>, Vec<u8>) {
    let x = random(n * 784, seed, -1.0, 2.5);
    let y = (0..n).map(|i| (i * 3 % 10) as u8).collect();
    (x, y)
}

#[test]
fn network_train_mode_updates_buffers_and_eval_mode_does_not() {
    let mut net = Net::<f64>::new(0);
    let (x, y) = images(4, 9);
    let mut ws = Workspace::new(4);
    ws.load(&x, &y);
    let fresh = net.buffers.clone();
    net.forward(&mut ws, Mode::Eval);
    assert_eq!(net.buffers, fresh, "eval must not touch running statistics");
    net.forward(&mut ws, Mode::Train { dropout: None });
    assert_eq!(net.buffers.bn1.num_batches_tracked, 1);
    assert_eq!(net.buffers.bn5.num_batches_tracked, 1);
    assert_ne!(net.buffers.bn1.mean, fresh.bn1.mean);
    // With initial running stats (0, 1), the first update gives 0.9·1 + 0.1·unbiased var.
    assert!(net.buffers.bn2.var.iter().all(|v| *v > 0.9));
}

#[test]
fn eval_output_of_an_image_does_not_depend_on_its_batch_but_train_output_does() {
    let mut net = Net::<f64>::new(1);
    let (x, y) = images(3, 10);
    let mut ws3 = Workspace::new(3);
    let mut ws1 = Workspace::new(1);
    ws3.load(&x, &y);
    ws1.load(&x[..784], &y[..1]);
    net.forward(&mut ws3, Mode::Eval);
    net.forward(&mut ws1, Mode::Eval);
    let (a, b) = (ws3.log_probs(), ws1.log_probs());
    assert_eq!(
        &a[..10],
        &b[..],
        "eval: same image, same output, bit for bit"
    );
    let mut train_net = net.clone();
    train_net.forward(&mut ws3, Mode::Train { dropout: None });
    train_net.forward(&mut ws1, Mode::Train { dropout: None });
    let (a, b) = (ws3.log_probs(), ws1.log_probs());
    assert!((a[0] - b[0]).abs() > 1e-6, "train: batch statistics differ");
}

/// `Net::backward` writes the gradients (it does not add to what `grads` or the workspace held):
/// a second backward of the same forward pass, into the same `grads`, gives the first one's
/// bits, and so does a backward into `grads` that held other numbers.
#[test]
fn backward_overwrites_the_gradients_on_every_call() {
    let mut net = Net::<f64>::new(2);
    let (x, y) = images(3, 11);
    let mut ws = Workspace::new(3);
    ws.load(&x, &y);
    net.forward(&mut ws, Mode::Train { dropout: None });
    let mut first = Params::<f64>::zeros();
    net.backward(&mut ws, &mut first);
    assert!(first.conv1.weight.iter().any(|g| *g != 0.0));
    let mut again = first.clone();
    net.backward(&mut ws, &mut again);
    assert_eq!(again, first, "a second backward must not add to the first");
    let mut other: Params<f64> = (*net.params).clone();
    net.backward(&mut ws, &mut other);
    assert_eq!(other, first, "backward must overwrite what grads held");
}

// ---------------------------------------------------------------- dropout

/// Verifies r[cnn.dropout.mask]: drop rate, keep scale and mean at p = 0.05.
#[test]
fn dropout_mask_drops_five_percent_and_scales_the_rest_by_1_over_0_95() {
    let mut mask = vec![0.0f32; 1 << 20];
    let mut rng = rand_xoshiro::Xoshiro256PlusPlus::seed_from_u64(123);
    dropout_mask(&mut rng, DROPOUT_P, &mut mask);
    let zeros = mask.iter().filter(|&&m| m == 0.0).count();
    let frac = zeros as f64 / mask.len() as f64;
    // σ = √(p(1−p)/2²⁰) ≈ 2.1e-4; 0.0015 is 7σ.
    assert!((frac - 0.05).abs() < 0.0015, "zero fraction {frac}");
    let keep = (1.0 / 0.95) as f32;
    assert!(mask.iter().all(|&m| m == 0.0 || m == keep));
    // Inverted dropout keeps the mean: E[m] = 1.
    let mean = mask.iter().map(|&m| m as f64).sum::<f64>() / mask.len() as f64;
    assert!((mean - 1.0).abs() < 0.002, "mean {mean}");
}

/// Verifies r[cnn.dropout.mask] at p = 0.5 and an odd length.
#[test]
fn dropout_mask_handles_odd_lengths_and_other_probabilities() {
    let mut mask = vec![0.0f64; 100_001];
    dropout_mask(
        &mut rand_chacha::ChaCha8Rng::seed_from_u64(4),
        0.5,
        &mut mask,
    );
    let frac = mask.iter().filter(|&&m| m == 0.0).count() as f64 / mask.len() as f64;
    assert!((frac - 0.5).abs() < 0.01, "{frac}");
    assert!(mask.iter().all(|&m| m == 0.0 || m == 2.0));
}

/// A stream that returns one chosen 24-bit value `u` in every position that dropout reads: the
/// low 24 bits and bits 32..56 of each `u64` (a pair of elements), and the low 24 bits of each
/// `u32` (the odd last element).
struct Constant(u32);

impl rand::RngCore for Constant {
    fn next_u32(&mut self) -> u32 {
        self.0 | 0xAB00_0000 // high bits that must be ignored
    }
    fn next_u64(&mut self) -> u64 {
        (u64::from(self.0) << 32) | u64::from(self.0) | 0xCD00_0000_EF00_0000
    }
    fn fill_bytes(&mut self, _: &mut [u8]) {
        unreachable!("dropout draws u64 and u32 only")
    }
}

/// Verifies r[cnn.dropout.mask] at the boundary: an element is dropped exactly when its 24-bit
/// draw `u` is below `p·2²⁴`, so the drop probability is `p` exactly (for `p = k/2²⁴`), not
/// `p + 2⁻²⁴`. At `p = u/2²⁴` a draw of `u` is kept and a draw of `u − 1` is dropped, in both
/// the float mask and the bit form, for the pair slots and the odd last element.
#[test]
fn dropout_keeps_a_draw_equal_to_the_threshold_and_drops_the_one_below() {
    use gradspec::cnn::dropout::dropout_bits;
    for u in [1u32, 0x80_0000, 0xAB_CDEF, 0xFF_FFFF] {
        let p = f64::from(u) / f64::from(1u32 << 24);
        let keep = 1.0 / (1.0 - p);
        for (draw, kept) in [(u, true), (u - 1, false)] {
            let mut mask = [f64::NAN; 5];
            dropout_mask(&mut Constant(draw), p, &mut mask);
            let want = if kept { keep } else { 0.0 };
            assert_eq!(mask, [want; 5], "mask: u = {u:#x}, draw {draw:#x}");
            let mut bits = [7u8; 5];
            dropout_bits(&mut Constant(draw), p, &mut bits);
            assert_eq!(
                bits,
                [u8::from(kept); 5],
                "bits: u = {u:#x}, draw {draw:#x}"
            );
        }
    }
}

#[test]
fn dropout_masks_are_a_function_of_the_key() {
    // A batch of 9 (chunks of 8 and 1): the same key gives the same masks, bit for bit,
    // whichever thread runs which chunk; another step gives other masks.
    let mut net = Net::<f64>::new(2);
    let (x, y) = images(9, 11);
    let mut ws = Workspace::new(9);
    ws.load(&x, &y);
    let k1 = Mode::Train {
        dropout: Some(DropoutKey { seed: 1, step: 0 }),
    };
    let k2 = Mode::Train {
        dropout: Some(DropoutKey { seed: 1, step: 1 }),
    };
    net.forward(&mut ws, k1);
    let a = ws.log_probs();
    net.forward(&mut ws, k1);
    assert_eq!(a, ws.log_probs(), "same key, same masks, same output");
    net.forward(&mut ws, k2);
    assert_ne!(a, ws.log_probs(), "another step, other masks");
}

// ---------------------------------------------------------------- max-pool tie rule

fn pool_one(window: [f64; 4]) -> (f64, u8, [f64; 4]) {
    // One 2×2 plane: [[w0, w1], [w2, w3]].
    let x = window.to_vec();
    let mut y = [0.0];
    let mut a = [0u8];
    maxpool_forward::<f64, Pool<1, 2, 2, 1, 1>>(View(&x), ViewMut(&mut y), &mut a);
    let mut dx = [9.0; 4];
    maxpool_backward::<f64, Pool<1, 2, 2, 1, 1>>(View(&[1.0]), &a, ViewMut(&mut dx));
    (y[0], a[0], dx)
}

/// Verifies r[cnn.maxpool.forward] r[cnn.maxpool.backward] on single windows, ties included.
#[test]
fn maxpool_first_maximum_in_row_major_order_wins_a_tie() {
    assert_eq!(pool_one([2.0, 2.0, 2.0, 2.0]).1, 0);
    assert_eq!(pool_one([1.0, 3.0, 3.0, 2.0]).1, 1);
    assert_eq!(pool_one([1.0, 0.0, 3.0, 3.0]).1, 2);
    let (y, a, dx) = pool_one([-1.0, -2.0, -3.0, 5.0]);
    assert_eq!((y, a, dx), (5.0, 3, [0.0, 0.0, 0.0, 1.0]));
    // The gradient goes to the winner only, the other three get exactly 0.
    assert_eq!(pool_one([4.0, 4.0, 1.0, 4.0]).2, [1.0, 0.0, 0.0, 0.0]);
}

/// Verifies r[cnn.maxpool.forward] when a window holds a NaN.
#[test]
fn maxpool_nan_wins_and_propagates() {
    let (y, a, _) = pool_one([1.0, f64::NAN, 5.0, 2.0]);
    assert!(y.is_nan());
    assert_eq!(a, 1);
    let (y, a, _) = pool_one([f64::NAN, 1.0, 5.0, 2.0]);
    assert!(y.is_nan());
    assert_eq!(a, 0);
}

/// Verifies r[cnn.maxpool.forward] over several images, channels and windows.
#[test]
fn maxpool_planes_and_windows_are_addressed_nchw() {
    // [n=2, C=2, 4, 4]; the value encodes its own index, so every window's maximum is its
    // bottom-right element (strictly greatest).
    let x: Vec<f64> = (0..64).map(|i| i as f64).collect();
    let mut y = vec![0.0; 16];
    let mut a = vec![0u8; 16];
    maxpool_forward::<f64, Pool<2, 4, 4, 2, 2>>(View(&x), ViewMut(&mut y), &mut a);
    let want: Vec<f64> = (0..4)
        .flat_map(|plane| {
            [5, 7, 13, 15]
                .into_iter()
                .map(move |o| (plane * 16 + o) as f64)
        })
        .collect();
    assert_eq!(y, want);
    assert!(a.iter().all(|&k| k == 3));
}

/// Regression: the batch variance is `E[x²] − μ²`; with the sums kept in f32 this cancelled
/// catastrophically when a channel's mean was large against its spread (found by this suite;
/// `bn_partial_sums` now accumulates in f64 from the first element).
/// Verifies r[cnn.bn.batch_stats] in f32.
#[test]
fn f32_batch_variance_survives_a_large_mean() {
    let x64 = random(4 * 2 * 26 * 26, 21, -0.01, 0.01);
    let x: Vec<f32> = x64.iter().map(|v| (100.0 + v) as f32).collect();
    let (mut s1, mut s2) = ([0.0; 2], [0.0; 2]);
    bn_partial_sums::<f32, 2, 26, 26>(View(&x), &mut s1, &mut s2);
    let (_, var) = bn_batch_stats::<f32, 2>(&s1, &s2, 4 * 26 * 26);
    let xf: Vec<f64> = x.iter().map(|&v| v as f64).collect();
    for c in 0..2 {
        let (_, biased, _) = direct_stats(&xf, c, 2, 26 * 26);
        let err = rel(var[c] as f64, biased);
        assert!(
            err < 1e-2,
            "channel {c}: var {} vs {biased} (rel err {err:.2e})",
            var[c]
        );
    }
}

/// `Params::slices` (the allocation-free view the training loop uses) lists the very tensors of
/// `Params::tensors`, in the same order.
#[test]
fn param_slices_are_the_state_dict_tensors_in_order() {
    let p = gradspec::cnn::Params::<f32>::init(3);
    let named = p.tensors();
    let bare = p.slices();
    assert_eq!(named.len(), bare.len());
    for (t, s) in named.iter().zip(bare) {
        assert!(std::ptr::eq(t.data, s), "{} is out of place", t.name);
    }
}

// ---------------------------------------------------------------- edge cases of the conventions

/// Verifies r[cnn.maxpool.forward]: of two NaNs in one window the last wins (PyTorch's
/// `val > maxval || isnan(val)`), and the gradient goes to that one.
#[test]
fn maxpool_of_two_nans_the_last_wins() {
    let (y, a, dx) = pool_one([f64::NAN, 1.0, f64::NAN, 2.0]);
    assert!(y.is_nan());
    assert_eq!(a, 2);
    assert_eq!(dx, [0.0, 0.0, 1.0, 0.0]);
    // A number after a NaN never takes the window back, however large.
    assert_eq!(pool_one([1.0, f64::NAN, f64::INFINITY, 2.0]).1, 1);
}

/// Verifies r[cnn.bn.running_update]: with 2 values per channel the factor is exactly 2.
#[test]
fn running_update_with_two_values_doubles_the_batch_variance() {
    let mut r = Running::<f64, 1>::new();
    let mean = nalgebra::SVector::from([3.0]);
    let var = nalgebra::SVector::from([0.25]);
    bn_running_update(&mut r, &mean, &var, 2);
    assert_eq!(r.mean[0], 0.9 * 0.0 + 0.1 * 3.0);
    assert_eq!(r.var[0], 0.9 * 1.0 + 0.1 * (0.25 * 2.0));
    assert_eq!(r.num_batches_tracked, 1);
}

/// Like PyTorch ("Expected more than 1 value per channel when training"), a count of 1 is
/// refused rather than silently using the biased variance.
#[test]
#[should_panic(expected = "more than 1 value per channel")]
fn running_update_with_one_value_per_channel_is_refused() {
    let mut r = Running::<f64, 1>::new();
    let v = nalgebra::SVector::from([1.0]);
    bn_running_update(&mut r, &v, &v, 1);
}

// ---------------------------------------------------------------- the workspace's read-outs

/// After a forward pass over 11 images (a full chunk of 8 and one of 3), the workspace reports
/// the batch size, every image's log-probabilities (each row a distribution), the arg-max of
/// each row as its prediction (the first maximum on a tie), and `correct` counts exactly the
/// predictions that equal their labels.
#[test]
fn workspace_read_outs_agree_with_the_log_probabilities() {
    let n = 11;
    let x = random(n * 784, 9, -1.0, 2.5);
    let mut net = Net::<f64>::new(4);
    let mut ws = Workspace::<f64>::new(16);
    assert_eq!(ws.capacity(), 16);
    assert_eq!(Workspace::<f64>::new(17).capacity(), 24);
    assert_eq!(Workspace::<f64>::new(0).capacity(), 8);
    // First a pass with labels 0, to learn the predictions; then labels that make exactly the
    // images 0, 3 and 10 correct.
    ws.load(&x, &[0; 11]);
    net.forward(&mut ws, Mode::Eval);
    let pred = ws.predictions();
    let logp = ws.log_probs();
    assert_eq!((ws.n(), pred.len(), logp.len()), (n, n, n * 10));
    for (i, row) in logp.chunks_exact(10).enumerate() {
        let total: f64 = row.iter().map(|v| v.exp()).sum();
        assert!((total - 1.0).abs() < 1e-12, "image {i}: Σp = {total}");
        let best = row.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let first = row.iter().position(|&v| v == best).unwrap();
        assert_eq!(pred[i] as usize, first, "image {i}");
    }
    let labels: Vec<u8> = (0..n)
        .map(|i| {
            if [0, 3, 10].contains(&i) {
                pred[i]
            } else {
                (pred[i] + 1) % 10
            }
        })
        .collect();
    ws.load(&x, &labels);
    let out = net.forward(&mut ws, Mode::Eval);
    assert_eq!(out.correct, 3);
    // The loss is the mean NLL of the labels.
    let nll: f64 = -(0..n)
        .map(|i| logp[i * 10 + labels[i] as usize])
        .sum::<f64>()
        / n as f64;
    assert!((out.loss - nll).abs() < 1e-12 * nll.abs());

    // A ten-way tie (fc1 all zeros: every logit 0): the first class wins, as in `torch.argmax`.
    net.params.fc1.weight.fill(0.0);
    net.params.fc1.bias.fill(0.0);
    net.forward(&mut ws, Mode::Eval);
    assert_eq!(ws.predictions(), vec![0u8; n]);
}

/// `col_len` is exactly the im2col scratch of one image, `KK·OH·OW`: conv2's forward pass runs
/// on a scratch of that length, and the length is what the layer table says.
#[test]
fn col_len_is_one_images_im2col_matrix() {
    use gradspec::cnn::conv::{Conv, col_len, conv_forward};
    use gradspec::cnn::net::Conv2;
    assert_eq!(col_len(144, 24, 24), 144 * 24 * 24);
    assert_eq!(col_len(9, 26, 26), 9 * 676);
    assert_eq!(col_len(72, 10, 10), 7200);
    let p = Conv::<f64, 16, 32, 3, 144>::zeros();
    let x = random(16 * 26 * 26, 5, -1.0, 1.0);
    let mut y = vec![0.0; 32 * 24 * 24];
    let mut col = vec![0.0; col_len(144, 24, 24)];
    conv_forward::<f64, Conv2>(&p, View(&x), ViewMut(&mut y), &mut col);
    // The last column of the scratch holds the last tap of the last position.
    assert_eq!(col[col.len() - 1], x[x.len() - 1]);
}
