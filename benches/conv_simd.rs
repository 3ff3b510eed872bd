//! The direct convolution kernels (`kernels::conv`) on every instruction set this CPU has
//! (AVX-512, AVX2, NEON; not the scalar build) against the generic im2col + GEMM convolution
//! (`cnn::conv`), pass by pass, f32, batch 128 (the kernels loop over the images one at a
//! time), seeded inputs, one thread. Names carry the pass, the implementation and the input
//! shape: `conv2_fwd_avx512_f32_b128_16x26x26_k3` and `conv2_fwd_avx2_f32_b128_16x26x26_k3`
//! against `conv2_fwd_generic_f32_b128_16x26x26_k3`. `bwdin` is the input gradient, `bwdw` the
//! weight and bias gradients. Where the Winograd kernels run a shape (conv2, conv5, conv7), they
//! are measured too, as `conv2_fwd_winograd_avx512_…` (`bwdw`: the weight gradient by Winograd,
//! the bias gradient direct, as the network runs them; `bwd`: the input and weight gradients as
//! the one pass the network runs).
use criterion::Criterion;
use gradspec::cnn::conv::{
    ConvParams, ConvShape, col_len_of, conv_backward_bias, conv_backward_input,
    conv_backward_weight, conv_forward,
};
use gradspec::cnn::net::{Conv1, Conv2, Conv3, Conv4, Conv5, Conv6, Conv7};
use gradspec::kernels::conv::{
    scratch_len_of, try_conv_backward_bias, try_conv_backward_input, try_conv_backward_weight,
    try_conv_forward, try_winograd_backward, try_winograd_backward_input,
    try_winograd_backward_weight, try_winograd_forward,
};
use gradspec::kernels::cpu;
use rand::{Rng, SeedableRng};
use std::hint::black_box;

const B: usize = 128;

fn seeded(n: usize, seed: u64) -> Vec<f32> {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    (0..n).map(|_| rng.random_range(-1.0..1.0)).collect()
}

fn conv<S: ConvShape>(c: &mut Criterion, name: &str, with_dx: bool) {
    let mut p = S::Params::<f32>::zeros();
    p.weight_mut().copy_from_slice(&seeded(S::KK * S::COUT, 2));
    p.bias_mut().copy_from_slice(&seeded(S::COUT, 3));
    let x = seeded(B * S::CIN * S::H * S::W, 4);
    let dy = seeded(B * S::COUT * S::OH * S::OW, 5);
    let mut y = vec![0.0f32; B * S::COUT * S::OH * S::OW];
    let mut dx = vec![0.0f32; B * S::CIN * S::H * S::W];
    let mut col = vec![0.0f32; col_len_of::<S>()];
    let mut scratch = vec![0.0f32; scratch_len_of::<S>()];
    let mut dp = S::Params::<f32>::zeros();
    let shape = format!("f32_b{B}_{}x{}x{}_k{}", S::CIN, S::H, S::W, S::K);
    // Every instruction set of the direct kernels this CPU has, but the scalar build.
    let isas: Vec<cpu::Isa> = cpu::isas_hardware()
        .into_iter()
        .filter(|i| *i != cpu::Isa::Scalar)
        .collect();

    c.bench_function(&format!("{name}_fwd_generic_{shape}"), |b| {
        b.iter(|| {
            conv_forward::<f32, S>(&p, (&x[..]).into(), (&mut y[..]).into(), &mut col);
            black_box(&y);
        })
    });
    for &cpu in &isas {
        c.bench_function(&format!("{name}_fwd_{}_{shape}", cpu.name()), |b| {
            b.iter(|| {
                assert!(try_conv_forward::<f32, S>(
                    cpu,
                    &p,
                    (&x[..]).into(),
                    (&mut y[..]).into(),
                ));
                black_box(&y);
            })
        });
    }
    for &cpu in &isas {
        if !try_winograd_forward::<f32, S>(cpu, &p, (&x[..]).into(), (&mut y[..]).into()) {
            break;
        }
        c.bench_function(
            &format!("{name}_fwd_winograd_{}_{shape}", cpu.name()),
            |b| {
                b.iter(|| {
                    try_winograd_forward::<f32, S>(cpu, &p, (&x[..]).into(), (&mut y[..]).into());
                    black_box(&y);
                })
            },
        );
    }
    if with_dx {
        for &cpu in &isas {
            if !try_winograd_backward_input::<f32, S>(
                cpu,
                &p,
                (&dy[..]).into(),
                (&mut dx[..]).into(),
            ) {
                break;
            }
            c.bench_function(
                &format!("{name}_bwdin_winograd_{}_{shape}", cpu.name()),
                |b| {
                    b.iter(|| {
                        try_winograd_backward_input::<f32, S>(
                            cpu,
                            &p,
                            (&dy[..]).into(),
                            (&mut dx[..]).into(),
                        );
                        black_box(&dx);
                    })
                },
            );
        }
        c.bench_function(&format!("{name}_bwdin_generic_{shape}"), |b| {
            b.iter(|| {
                conv_backward_input::<f32, S>(&p, (&dy[..]).into(), (&mut dx[..]).into(), &mut col);
                black_box(&dx);
            })
        });
        for &cpu in &isas {
            c.bench_function(&format!("{name}_bwdin_{}_{shape}", cpu.name()), |b| {
                b.iter(|| {
                    assert!(try_conv_backward_input::<f32, S>(
                        cpu,
                        &p,
                        (&dy[..]).into(),
                        (&mut dx[..]).into(),
                        &mut scratch,
                    ));
                    black_box(&dx);
                })
            });
        }
    }
    c.bench_function(&format!("{name}_bwdw_generic_{shape}"), |b| {
        b.iter(|| {
            conv_backward_weight::<f32, S>((&dy[..]).into(), (&x[..]).into(), &mut dp, &mut col);
            conv_backward_bias::<f32, S>((&dy[..]).into(), &mut dp);
            black_box(&dp);
        })
    });
    for &cpu in &isas {
        c.bench_function(&format!("{name}_bwdw_{}_{shape}", cpu.name()), |b| {
            b.iter(|| {
                assert!(try_conv_backward_weight::<f32, S>(
                    cpu,
                    (&dy[..]).into(),
                    (&x[..]).into(),
                    &mut dp,
                    &mut scratch,
                ));
                assert!(try_conv_backward_bias::<f32, S>(
                    cpu,
                    (&dy[..]).into(),
                    &mut dp
                ));
                black_box(&dp);
            })
        });
    }
    for &cpu in &isas {
        if !try_winograd_backward_weight::<f32, S>(cpu, (&dy[..]).into(), (&x[..]).into(), &mut dp)
        {
            break;
        }
        c.bench_function(
            &format!("{name}_bwdw_winograd_{}_{shape}", cpu.name()),
            |b| {
                b.iter(|| {
                    try_winograd_backward_weight::<f32, S>(
                        cpu,
                        (&dy[..]).into(),
                        (&x[..]).into(),
                        &mut dp,
                    );
                    try_conv_backward_bias::<f32, S>(cpu, (&dy[..]).into(), &mut dp);
                    black_box(&dp);
                })
            },
        );
    }
    // Both gradients in one pass (`bwd`: the input gradient, and the weight and bias gradients,
    // as the network runs a block's backward pass): to set against `bwdin` + `bwdw`.
    for &cpu in &isas {
        if !with_dx {
            break;
        }
        let mut dxv = dx.clone();
        if !try_winograd_backward::<f32, S>(
            cpu,
            &p,
            (&dy[..]).into(),
            (&x[..]).into(),
            &mut dp,
            (&mut dxv[..]).into(),
        ) {
            break;
        }
        c.bench_function(
            &format!("{name}_bwd_winograd_{}_{shape}", cpu.name()),
            |b| {
                b.iter(|| {
                    try_winograd_backward::<f32, S>(
                        cpu,
                        &p,
                        (&dy[..]).into(),
                        (&x[..]).into(),
                        &mut dp,
                        (&mut dxv[..]).into(),
                    );
                    try_conv_backward_bias::<f32, S>(cpu, (&dy[..]).into(), &mut dp);
                    black_box((&dp, &dxv));
                })
            },
        );
    }
}

/// Every convolution of the network, hottest first.
pub fn benches(c: &mut Criterion) {
    conv::<Conv2>(c, "conv2", true);
    conv::<Conv3>(c, "conv3", true);
    conv::<Conv6>(c, "conv6", true);
    conv::<Conv1>(c, "conv1", false);
    conv::<Conv4>(c, "conv4", true);
    conv::<Conv5>(c, "conv5", true);
    conv::<Conv7>(c, "conv7", true);
}
