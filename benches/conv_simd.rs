//! The AVX-512 convolution kernels (`cnn::conv_simd`) against the generic im2col + GEMM
//! convolution (`cnn::conv`), pass by pass, f32, batch 128 (the kernels loop over the images
//! one at a time), seeded inputs, one thread. Names carry the pass, the implementation and the
//! input shape: `conv2_fwd_simd_f32_b128_16x26x26_k3` against
//! `conv2_fwd_generic_f32_b128_16x26x26_k3`. `bwdin` is the input gradient, `bwdw` the weight
//! and bias gradients. Without AVX-512 only the generic benches run.
use criterion::Criterion;
use gradspec::cnn::conv::{
    Conv, col_len, conv_backward_bias, conv_backward_input, conv_backward_weight, conv_forward,
};
use gradspec::cnn::conv_simd::{
    scratch_len, try_conv_backward_bias, try_conv_backward_input, try_conv_backward_weight,
    try_conv_forward,
};
use gradspec::cnn::cpu;
use gradspec::cnn::tensor::{View, ViewMut};
use rand::{Rng, SeedableRng};
use std::hint::black_box;

const B: usize = 128;

fn seeded(n: usize, seed: u64) -> Vec<f32> {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    (0..n).map(|_| rng.random_range(-1.0..1.0)).collect()
}

fn conv<
    const CIN: usize,
    const COUT: usize,
    const K: usize,
    const KK: usize,
    const H: usize,
    const W: usize,
    const OH: usize,
    const OW: usize,
>(
    c: &mut Criterion,
    name: &str,
    with_dx: bool,
) {
    let mut p = Conv::<f32, CIN, COUT, K, KK>::zeros();
    p.weight
        .as_mut_slice()
        .copy_from_slice(&seeded(KK * COUT, 2));
    p.bias.as_mut_slice().copy_from_slice(&seeded(COUT, 3));
    let x = seeded(B * CIN * H * W, 4);
    let dy = seeded(B * COUT * OH * OW, 5);
    let mut y = vec![0.0f32; B * COUT * OH * OW];
    let mut dx = vec![0.0f32; B * CIN * H * W];
    let mut col = vec![0.0f32; col_len(KK, OH, OW)];
    let mut scratch = vec![0.0f32; scratch_len(COUT, OH, OW, W)];
    let mut dp = Conv::<f32, CIN, COUT, K, KK>::zeros();
    let shape = format!("f32_b{B}_{CIN}x{H}x{W}_k{K}");
    let simd = cpu::avx512_hardware();

    c.bench_function(&format!("{name}_fwd_generic_{shape}"), |b| {
        b.iter(|| {
            conv_forward::<f32, CIN, COUT, K, KK, H, W, OH, OW>(
                &p,
                View(&x),
                ViewMut(&mut y),
                &mut col,
            );
            black_box(&y);
        })
    });
    if let Some(cpu) = simd {
        c.bench_function(&format!("{name}_fwd_simd_{shape}"), |b| {
            b.iter(|| {
                assert!(try_conv_forward::<f32, CIN, COUT, K, KK, H, W, OH, OW>(
                    cpu,
                    &p,
                    View(&x),
                    ViewMut(&mut y),
                ));
                black_box(&y);
            })
        });
    }
    if with_dx {
        c.bench_function(&format!("{name}_bwdin_generic_{shape}"), |b| {
            b.iter(|| {
                conv_backward_input::<f32, CIN, COUT, K, KK, H, W, OH, OW>(
                    &p,
                    View(&dy),
                    ViewMut(&mut dx),
                    &mut col,
                );
                black_box(&dx);
            })
        });
        if let Some(cpu) = simd {
            c.bench_function(&format!("{name}_bwdin_simd_{shape}"), |b| {
                b.iter(|| {
                    assert!(
                        try_conv_backward_input::<f32, CIN, COUT, K, KK, H, W, OH, OW>(
                            cpu,
                            &p,
                            View(&dy),
                            ViewMut(&mut dx),
                            &mut scratch,
                        )
                    );
                    black_box(&dx);
                })
            });
        }
    }
    c.bench_function(&format!("{name}_bwdw_generic_{shape}"), |b| {
        b.iter(|| {
            conv_backward_weight::<f32, CIN, COUT, K, KK, H, W, OH, OW>(
                View(&dy),
                View(&x),
                &mut dp,
                &mut col,
            );
            conv_backward_bias::<f32, COUT, OH, OW>(View(&dy), &mut dp.bias);
            black_box(&dp);
        })
    });
    if let Some(cpu) = simd {
        c.bench_function(&format!("{name}_bwdw_simd_{shape}"), |b| {
            b.iter(|| {
                assert!(try_conv_backward_weight::<
                    f32,
                    CIN,
                    COUT,
                    K,
                    KK,
                    H,
                    W,
                    OH,
                    OW,
                >(
                    cpu, View(&dy), View(&x), &mut dp, &mut scratch,
                ));
                assert!(try_conv_backward_bias::<f32, COUT, OH, OW>(
                    cpu,
                    View(&dy),
                    &mut dp.bias
                ));
                black_box(&dp);
            })
        });
    }
}

/// Every convolution of the network, hottest first.
pub fn benches(c: &mut Criterion) {
    conv::<16, 32, 3, 144, 26, 26, 24, 24>(c, "conv2", true);
    conv::<32, 8, 1, 32, 24, 24, 24, 24>(c, "conv3", true);
    conv::<32, 16, 1, 32, 8, 8, 8, 8>(c, "conv6", true);
    conv::<1, 16, 3, 9, 28, 28, 26, 26>(c, "conv1", false);
    conv::<8, 16, 3, 72, 12, 12, 10, 10>(c, "conv4", true);
    conv::<16, 32, 3, 144, 10, 10, 8, 8>(c, "conv5", true);
    conv::<16, 32, 3, 144, 4, 4, 2, 2>(c, "conv7", true);
}
