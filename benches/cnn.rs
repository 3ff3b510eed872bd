//! CNN benches, f32, batch 128, seeded inputs. Names carry the input shape
//! (`conv2_fwd_f32_b128_16x26x26_k3`). The whole-network benches run chunk-parallel (rayon);
//! the per-layer ones call the layer function alone, on one thread, at its real shape.
use criterion::{Criterion, Throughput};
use gradspec::cnn::avgpool::{avgpool_backward, avgpool_forward};
use gradspec::cnn::batchnorm::{
    BatchNorm, bn_backward_input, bn_backward_params, bn_batch_stats, bn_forward_train,
    bn_partial_sums,
};
use gradspec::cnn::conv::{
    ConvParams, ConvShape, conv_backward_bias, conv_backward_input, conv_backward_weight,
    conv_forward,
};
use gradspec::cnn::dropout::{dropout_backward, dropout_forward, dropout_mask, keep_scale};
use gradspec::cnn::linear::{
    Linear, linear_backward_bias, linear_backward_input, linear_backward_weight, linear_forward,
};
use gradspec::cnn::loss::{logsoftmax_backward, logsoftmax_forward, nll_backward, nll_forward};
use gradspec::cnn::maxpool::{maxpool_backward, maxpool_forward};
use gradspec::cnn::net::{Conv1, Conv2, Conv3, Conv4, Conv5, Conv6, Conv7, DropoutKey};
use gradspec::cnn::pool::Pool;
use gradspec::cnn::relu::{relu_backward, relu_forward};
use gradspec::cnn::tensor::{View, ViewMut};
use gradspec::cnn::{Mode, Net, Params, Workspace};
use gradspec::kernels::dropout::dropout_bits_lockstep;
use gradspec::kernels::fused::{
    bn_dropout_forward, bn_relu_backward, dropout_bn_params_backward, relu_sums,
};
use rand::{Rng, SeedableRng};
use std::hint::black_box;

const B: usize = 128;

fn seeded(n: usize, seed: u64) -> Vec<f32> {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    (0..n).map(|_| rng.random_range(-1.0..1.0)).collect()
}

fn whole_net(c: &mut Criterion) {
    let x = seeded(B * 784, 1);
    let labels: Vec<u8> = (0..B).map(|i| (i % 10) as u8).collect();
    let mut net = Net::<f32>::new(0);
    let mut ws = Workspace::new(B);
    ws.load(&x, &labels);
    let mut g = Params::zeros();
    let train = Mode::Train {
        dropout: Some(DropoutKey { seed: 1, step: 0 }),
    };
    let mut group = c.benchmark_group("cnn");
    group.throughput(Throughput::Elements(B as u64));
    group.bench_function("cnn_forward_train_b128", |b| {
        b.iter(|| black_box(net.forward(&mut ws, train)))
    });
    group.bench_function("cnn_forward_backward_b128", |b| {
        b.iter(|| {
            net.forward(&mut ws, train);
            net.backward(&mut ws, &mut g);
            black_box(&g);
        })
    });
    group.bench_function("cnn_forward_eval_b128", |b| {
        b.iter(|| black_box(net.forward(&mut ws, Mode::Eval)))
    });
    group.finish();
}

/// Forward, and backward (input, weight and bias gradients; conv1 has no input gradient in
/// the network, so `with_dx = false` skips it there).
fn conv<S: ConvShape>(c: &mut Criterion, name: &str, with_dx: bool) {
    let mut p = S::Params::<f32>::zeros();
    p.weight_mut().copy_from_slice(&seeded(S::KK * S::COUT, 2));
    p.bias_mut().copy_from_slice(&seeded(S::COUT, 3));
    let x = seeded(B * S::CIN * S::H * S::W, 4);
    let dy = seeded(B * S::COUT * S::OH * S::OW, 5);
    let mut y = vec![0.0f32; B * S::COUT * S::OH * S::OW];
    let mut dx = vec![0.0f32; B * S::CIN * S::H * S::W];
    let mut col = vec![0.0f32; S::KK * S::OH * S::OW];
    let mut dp = S::Params::<f32>::zeros();
    let shape = format!("f32_b{B}_{}x{}x{}_k{}", S::CIN, S::H, S::W, S::K);
    c.bench_function(&format!("{name}_fwd_{shape}"), |b| {
        b.iter(|| {
            conv_forward::<f32, S>(&p, (&x[..]).into(), (&mut y[..]).into(), &mut col);
            black_box(&y);
        })
    });
    c.bench_function(&format!("{name}_bwd_{shape}"), |b| {
        b.iter(|| {
            conv_backward_weight::<f32, S>((&dy[..]).into(), (&x[..]).into(), &mut dp, &mut col);
            conv_backward_bias::<f32, S>((&dy[..]).into(), &mut dp);
            if with_dx {
                conv_backward_input::<f32, S>(&p, (&dy[..]).into(), (&mut dx[..]).into(), &mut col);
            }
            black_box((&dp, &dx));
        })
    });
}

/// ReLU → BatchNorm (train) → dropout, forward and backward, at one shape.
fn relu_bn_dropout<const C: usize, const H: usize, const W: usize>(
    c: &mut Criterion,
    relu: &str,
    bn: &str,
    dropout: &str,
) {
    let len = B * C * H * W;
    let x0 = seeded(len, 6);
    let g0 = seeded(len, 7);
    let shape = format!("f32_b{B}_{C}x{H}x{W}");
    let mut x = x0.clone();
    let mut g = g0.clone();
    c.bench_function(&format!("{relu}_fwd_{shape}"), |b| {
        b.iter(|| {
            x.copy_from_slice(&x0);
            relu_forward(&mut x);
            black_box(&x);
        })
    });
    let y = x.clone();
    c.bench_function(&format!("{relu}_bwd_{shape}"), |b| {
        b.iter(|| {
            g.copy_from_slice(&g0);
            relu_backward(&y, &mut g);
            black_box(&g);
        })
    });

    let p = BatchNorm::<f32, C>::new();
    let mut xhat = vec![0.0f32; len];
    let mut out = vec![0.0f32; len];
    c.bench_function(&format!("{bn}_fwd_{shape}"), |b| {
        b.iter(|| {
            let (mut s1, mut s2) = ([0.0; C], [0.0; C]);
            bn_partial_sums::<f32, C, H, W>(View(&x0), &mut s1, &mut s2);
            let (mean, var) = bn_batch_stats::<f32, C>(&s1, &s2, B * H * W);
            bn_forward_train::<f32, C, H, W>(
                &p,
                &mean,
                &var,
                View(&x0),
                &mut xhat,
                ViewMut(&mut out),
            );
            black_box(&out);
        })
    });
    let var = nalgebra::SVector::<f32, C>::repeat(1.0);
    c.bench_function(&format!("{bn}_bwd_{shape}"), |b| {
        b.iter(|| {
            g.copy_from_slice(&g0);
            let mut dgamma = nalgebra::SVector::<f32, C>::zeros();
            let mut dbeta = nalgebra::SVector::<f32, C>::zeros();
            bn_backward_params::<f32, C, H, W>(View(&g), &xhat, &mut dgamma, &mut dbeta);
            bn_backward_input::<f32, C, H, W>(
                &p,
                &var,
                &dgamma,
                &dbeta,
                B * H * W,
                &xhat,
                ViewMut(&mut g),
            );
            black_box(&g);
        })
    });

    // The fused passes the trainer runs instead of the six functions above (bit-identical).
    let bits: Vec<u8> = (0..len).map(|i| u8::from(i % 20 != 0)).collect();
    let keep = keep_scale::<f32>(0.05);
    let mut r = x0.clone();
    let (mut s1, mut s2) = ([0.0; C], [0.0; C]);
    relu_sums::<f32, C, H, W>(ViewMut(&mut r), &mut s1, &mut s2);
    let (mean, var1) = bn_batch_stats::<f32, C>(&s1, &s2, B * H * W);
    c.bench_function(&format!("{relu}_{bn}_{dropout}_fused_fwd_{shape}"), |b| {
        b.iter(|| {
            x.copy_from_slice(&x0);
            let (mut s1, mut s2) = ([0.0; C], [0.0; C]);
            relu_sums::<f32, C, H, W>(ViewMut(&mut x), &mut s1, &mut s2);
            let (mean, var) = bn_batch_stats::<f32, C>(&s1, &s2, B * H * W);
            let y = ViewMut(&mut out);
            bn_dropout_forward::<f32, C, H, W>(&p, &mean, &var, View(&x), Some(&bits), keep, y);
            black_box(&out);
        })
    });
    c.bench_function(&format!("{relu}_{bn}_{dropout}_fused_bwd_{shape}"), |b| {
        b.iter(|| {
            g.copy_from_slice(&g0);
            let mut dgamma = nalgebra::SVector::<f32, C>::zeros();
            let mut dbeta = nalgebra::SVector::<f32, C>::zeros();
            let mut dbias = nalgebra::SVector::<f32, C>::zeros();
            let (rv, m) = (View::<f32, C, H, W>(&r), B * H * W);
            let (d, db) = (&mut dgamma, &mut dbeta);
            dropout_bn_params_backward(Some(&bits), keep, &mean, &var1, rv, ViewMut(&mut g), d, db);
            let gv = ViewMut(&mut g);
            bn_relu_backward(&p, &mean, &var1, &dgamma, &dbeta, m, rv, gv, &mut dbias);
            black_box(&g);
        })
    });

    let mut mask = vec![0.0f32; len];
    let mut rng = rand_xoshiro::Xoshiro256PlusPlus::seed_from_u64(8);
    c.bench_function(&format!("{dropout}_mask_{shape}"), |b| {
        b.iter(|| {
            dropout_mask(&mut rng, 0.05, &mut mask);
            black_box(&mask);
        })
    });
    c.bench_function(&format!("{dropout}_fwd_{shape}"), |b| {
        b.iter(|| {
            x.copy_from_slice(&x0);
            dropout_forward(&mut x, &mask);
            black_box(&x);
        })
    });
    c.bench_function(&format!("{dropout}_bwd_{shape}"), |b| {
        b.iter(|| {
            g.copy_from_slice(&g0);
            dropout_backward(&mut g, &mask);
            black_box(&g);
        })
    });
}

fn maxpool<const C: usize, const H: usize, const W: usize, const OH: usize, const OW: usize>(
    c: &mut Criterion,
    name: &str,
) {
    let x = seeded(B * C * H * W, 9);
    let dy = seeded(B * C * OH * OW, 10);
    let mut y = vec![0.0f32; B * C * OH * OW];
    let mut arg = vec![0u8; y.len()];
    let mut dx = vec![0.0f32; x.len()];
    let shape = format!("f32_b{B}_{C}x{H}x{W}");
    c.bench_function(&format!("{name}_fwd_{shape}"), |b| {
        b.iter(|| {
            maxpool_forward::<f32, Pool<C, H, W, OH, OW>>(View(&x), ViewMut(&mut y), &mut arg);
            black_box(&y);
        })
    });
    c.bench_function(&format!("{name}_bwd_{shape}"), |b| {
        b.iter(|| {
            maxpool_backward::<f32, Pool<C, H, W, OH, OW>>(View(&dy), &arg, ViewMut(&mut dx));
            black_box(&dx);
        })
    });
}

fn head(c: &mut Criterion) {
    // avgpool: 32×2×2 → 32×1×1
    let x = seeded(B * 32 * 4, 11);
    let dy = seeded(B * 32, 12);
    let mut v = vec![0.0f32; B * 32];
    let mut dx = vec![0.0f32; B * 32 * 4];
    c.bench_function("avgpool_fwd_f32_b128_32x2x2", |b| {
        b.iter(|| {
            avgpool_forward::<f32, Pool<32, 2, 2, 1, 1>>(View(&x), ViewMut(&mut v));
            black_box(&v);
        })
    });
    c.bench_function("avgpool_bwd_f32_b128_32x2x2", |b| {
        b.iter(|| {
            avgpool_backward::<f32, Pool<32, 2, 2, 1, 1>>(View(&dy), ViewMut(&mut dx));
            black_box(&dx);
        })
    });

    // fc1: 32 → 10
    let mut p = Linear::<f32, 32, 10>::zeros();
    p.weight.as_mut_slice().copy_from_slice(&seeded(320, 13));
    let dz = seeded(B * 10, 14);
    let mut z = vec![0.0f32; B * 10];
    let mut dv = vec![0.0f32; B * 32];
    let mut dp = Linear::<f32, 32, 10>::zeros();
    c.bench_function("fc1_fwd_f32_b128_32", |b| {
        b.iter(|| {
            linear_forward::<f32, 32, 10>(&p, View(&v), ViewMut(&mut z));
            black_box(&z);
        })
    });
    c.bench_function("fc1_bwd_f32_b128_32", |b| {
        b.iter(|| {
            linear_backward_weight::<f32, 32, 10>(View(&dz), View(&v), &mut dp.weight);
            linear_backward_bias::<f32, 10>(View(&dz), &mut dp.bias);
            linear_backward_input::<f32, 32, 10>(&p, View(&dz), ViewMut(&mut dv));
            black_box((&dp, &dv));
        })
    });

    // log-softmax + NLL over 10 classes
    let labels: Vec<u8> = (0..B).map(|i| (i % 10) as u8).collect();
    let mut logp = vec![0.0f32; B * 10];
    let mut dl = vec![0.0f32; B * 10];
    let mut dzz = vec![0.0f32; B * 10];
    c.bench_function("logsoftmax_nll_fwd_f32_b128_10", |b| {
        b.iter(|| {
            logsoftmax_forward::<f32, 10>(&z, &mut logp);
            black_box(nll_forward::<f32, 10>(&logp, &labels))
        })
    });
    c.bench_function("logsoftmax_nll_bwd_f32_b128_10", |b| {
        b.iter(|| {
            nll_backward::<f32, 10>(&labels, B, &mut dl);
            logsoftmax_backward::<f32, 10>(&logp, &dl, &mut dzz);
            black_box(&dzz);
        })
    });
}

/// The dropout masks of one training step (four layers, 128 images), eight streams at a time.
fn masks(c: &mut Criterion) {
    let sizes = [16 * 26 * 26, 32 * 24 * 24, 16 * 10 * 10, 32 * 8 * 8];
    let mut bufs: Vec<Vec<u8>> = sizes.iter().map(|s| vec![0u8; 8 * s]).collect();
    c.bench_function("dropout_masks_lockstep_b128_4_layers", |b| {
        b.iter(|| {
            for group in 0..B as u64 / 8 {
                let seeds: Vec<u64> = (0..8).map(|i| group * 8 + i).collect();
                let mut parts: Vec<(&mut [u8], usize)> = bufs
                    .iter_mut()
                    .zip(sizes)
                    .map(|(b, s)| (&mut b[..], s))
                    .collect();
                dropout_bits_lockstep(&seeds, 0.05, &mut parts);
            }
            black_box(&bufs);
        })
    });
}

/// Every CNN bench: the whole network, then each layer in forward order.
pub fn benches(c: &mut Criterion) {
    whole_net(c);
    masks(c);
    conv::<Conv1>(c, "conv1", false);
    relu_bn_dropout::<16, 26, 26>(c, "relu1", "bn1", "dropout1");
    conv::<Conv2>(c, "conv2", true);
    relu_bn_dropout::<32, 24, 24>(c, "relu2", "bn2", "dropout2");
    conv::<Conv3>(c, "conv3", true);
    maxpool::<8, 24, 24, 12, 12>(c, "maxpool1");
    conv::<Conv4>(c, "conv4", true);
    relu_bn_dropout::<16, 10, 10>(c, "relu4", "bn4", "dropout4");
    conv::<Conv5>(c, "conv5", true);
    relu_bn_dropout::<32, 8, 8>(c, "relu5", "bn5", "dropout5");
    conv::<Conv6>(c, "conv6", true);
    maxpool::<16, 8, 8, 4, 4>(c, "maxpool2");
    conv::<Conv7>(c, "conv7", true);
    head(c);
}
