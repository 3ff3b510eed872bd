//! The fused passes of `src/kernels/fused.rs` against the per-operation functions they replace.
//!
//! The claim is bit-identity, so the comparisons are exact (`to_bits` equality, no tolerance):
//! a fused pass that computed the same maths in another order would fail here. Shapes include
//! planes whose size is not a multiple of the 16 summation lanes (5×5, 3×7), so the remainder
//! handling is covered; inputs include negatives and exact zeros of both signs (ReLU's kink) and both f32
//! and f64.
use gradspec::cnn::Float;
use gradspec::cnn::batchnorm::{
    BatchNorm, Running, bn_backward_input, bn_backward_params, bn_batch_stats, bn_forward_eval,
    bn_forward_train, bn_partial_sums,
};
use gradspec::cnn::conv::{Conv, Shape, conv_backward_bias};
use gradspec::cnn::dropout::{
    dropout_backward, dropout_bits, dropout_forward, dropout_mask, keep_scale,
};
use gradspec::cnn::relu::{relu_backward, relu_forward};
use gradspec::cnn::tensor::{View, ViewMut};
use gradspec::kernels::fused::{
    bn_dropout_forward, bn_relu_backward, dropout_bn_params_backward, relu_bn_eval, relu_sums,
};
use nalgebra::SVector;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

const P: f64 = 0.3;

fn random<T: Float>(rng: &mut ChaCha8Rng, len: usize) -> Vec<T> {
    (0..len)
        .map(|_| {
            if rng.random_bool(0.05) {
                // Exact zeros of both signs: ReLU keeps −0 as it is (`x < 0` is false), and
                // the fused pass must do the same, bit for bit.
                if rng.random_bool(0.5) {
                    T::zero()
                } else {
                    -T::zero()
                }
            } else {
                T::c(rng.random_range(-2.0..3.0))
            }
        })
        .collect()
}

fn same<T: Float>(a: &[T], b: &[T], what: &str) {
    assert_eq!(a.len(), b.len(), "{what}: lengths");
    for (i, (x, y)) in a.iter().zip(b).enumerate() {
        assert!(
            x.f64().to_bits() == y.f64().to_bits(),
            "{what}[{i}]: fused {x} vs reference {y}"
        );
    }
}

fn svec<T: Float, const C: usize>(rng: &mut ChaCha8Rng, lo: f64, hi: f64) -> SVector<T, C> {
    SVector::from_fn(|_, _| T::c(rng.random_range(lo..hi)))
}

/// Runs the whole forward-then-backward sequence of one `conv → ReLU → BN → dropout` block
/// both ways and compares every output.
fn block<T: Float, const C: usize, const H: usize, const W: usize>(
    seed: u64,
    n: usize,
    drop: bool,
) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let len = n * C * H * W;
    let z: Vec<T> = random(&mut rng, len);
    let up: Vec<T> = random(&mut rng, len);
    let p = BatchNorm::<T, C> {
        weight: svec(&mut rng, 0.5, 1.5),
        bias: svec(&mut rng, -0.5, 0.5),
    };
    let mut mask = vec![T::one(); len];
    let mut bits = vec![1u8; len];
    if drop {
        dropout_mask(&mut ChaCha8Rng::seed_from_u64(seed ^ 7), P, &mut mask);
        dropout_bits(&mut ChaCha8Rng::seed_from_u64(seed ^ 7), P, &mut bits);
    }
    let bits_opt = drop.then_some(&bits[..]);
    let keep = keep_scale::<T>(P);

    // forward, reference
    let mut r_ref = z.clone();
    relu_forward(&mut r_ref);
    let (mut s1r, mut s2r) = ([0f64; C], [0f64; C]);
    bn_partial_sums::<T, C, H, W>(View(&r_ref), &mut s1r, &mut s2r);
    // forward, fused
    let mut r = z.clone();
    let (mut s1, mut s2) = ([0f64; C], [0f64; C]);
    relu_sums::<T, C, H, W>(ViewMut(&mut r), &mut s1, &mut s2);
    same(&r, &r_ref, "relu");
    same(&s1, &s1r, "Σx");
    same(&s2, &s2r, "Σx²");

    let (mean, var) = bn_batch_stats::<T, C>(&s1, &s2, n * H * W);
    let mut xhat = vec![T::zero(); len];
    let mut y_ref = vec![T::zero(); len];
    bn_forward_train::<T, C, H, W>(&p, &mean, &var, View(&r), &mut xhat, ViewMut(&mut y_ref));
    if drop {
        dropout_forward(&mut y_ref, &mask);
    }
    let mut y = vec![T::zero(); len];
    bn_dropout_forward::<T, C, H, W>(&p, &mean, &var, View(&r), bits_opt, keep, ViewMut(&mut y));
    same(&y, &y_ref, "bn+dropout forward");

    // backward, reference
    let mut g_ref = up.clone();
    if drop {
        dropout_backward(&mut g_ref, &mask);
    }
    let (mut dgr, mut dbr) = (SVector::<T, C>::zeros(), SVector::<T, C>::zeros());
    bn_backward_params::<T, C, H, W>(View(&g_ref), &xhat, &mut dgr, &mut dbr);
    // backward, fused
    let mut g = up.clone();
    let (mut dg, mut db) = (SVector::<T, C>::zeros(), SVector::<T, C>::zeros());
    let r_view = View::<T, C, H, W>(&r);
    dropout_bn_params_backward(
        bits_opt,
        keep,
        &mean,
        &var,
        r_view,
        ViewMut(&mut g),
        &mut dg,
        &mut db,
    );
    same(&g, &g_ref, "dropout backward");
    same(dg.as_slice(), dgr.as_slice(), "∂γ");
    same(db.as_slice(), dbr.as_slice(), "∂β");

    let m = n * H * W;
    bn_backward_input::<T, C, H, W>(&p, &var, &dg, &db, m, &xhat, ViewMut(&mut g_ref));
    relu_backward(&r, &mut g_ref);
    // The bias of a 1×1 convolution whose output is `C×H×W` (only its bias is used).
    let mut conv_ref = Conv::<T, C, C, 1, C>::zeros();
    conv_backward_bias::<T, Shape<C, C, 1, C, H, W, H, W>>(View(&g_ref), &mut conv_ref);
    let bias_ref = conv_ref.bias;
    let mut bias = SVector::<T, C>::zeros();
    bn_relu_backward(
        &p,
        &mean,
        &var,
        &dg,
        &db,
        m,
        r_view,
        ViewMut(&mut g),
        &mut bias,
    );
    same(&g, &g_ref, "bn+relu backward");
    same(bias.as_slice(), bias_ref.as_slice(), "conv bias gradient");

    // evaluation
    let running = Running::<T, C> {
        mean: svec(&mut rng, -0.5, 0.5),
        var: svec(&mut rng, 0.5, 2.0),
        num_batches_tracked: 3,
    };
    let mut e_ref = z.clone();
    relu_forward(&mut e_ref);
    bn_forward_eval::<T, C, H, W>(&p, &running, ViewMut(&mut e_ref));
    let mut e = z;
    relu_bn_eval::<T, C, H, W>(&p, &running, ViewMut(&mut e));
    same(&e, &e_ref, "relu+bn eval");
}

/// The fused passes training runs compute these equations bit-identically to the labelled
/// functions (which the gradient checks verify against the spec).
/// Verifies r[cnn.relu.forward] r[cnn.relu.backward] r[cnn.bn.forward_train] r[cnn.bn.forward_eval]
/// Verifies r[cnn.bn.backward_params] r[cnn.bn.backward_input] r[cnn.conv.backward_bias]
/// Verifies r[cnn.dropout.forward] r[cnn.dropout.backward]
#[test]
fn fused_block_equals_the_composition_bit_for_bit_f32() {
    for (seed, drop) in [(1, true), (2, false)] {
        block::<f32, 4, 5, 5>(seed, 3, drop);
        block::<f32, 2, 3, 7>(seed, 2, drop);
        block::<f32, 16, 26, 26>(seed, 2, drop);
        block::<f32, 32, 8, 8>(seed, 2, drop);
    }
}

/// The fused passes training runs compute these equations bit-identically to the labelled
/// functions (which the gradient checks verify against the spec).
/// Verifies r[cnn.relu.forward] r[cnn.relu.backward] r[cnn.bn.forward_train] r[cnn.bn.forward_eval]
/// Verifies r[cnn.bn.backward_params] r[cnn.bn.backward_input] r[cnn.conv.backward_bias]
/// Verifies r[cnn.dropout.forward] r[cnn.dropout.backward]
#[test]
fn fused_block_equals_the_composition_bit_for_bit_f64() {
    for (seed, drop) in [(3, true), (4, false)] {
        block::<f64, 4, 5, 5>(seed, 3, drop);
        block::<f64, 3, 10, 10>(seed, 2, drop);
    }
}

/// `dropout_bits` draws the same numbers as `dropout_mask`, so the two agree element by
/// element, odd lengths included.
/// Verifies r[cnn.dropout.mask] in the bit form the fused passes use.
#[test]
fn dropout_bits_are_the_decisions_of_dropout_mask() {
    // p = 0.5 on many odd lengths, so that the odd last element (drawn on its own) is dropped
    // in about half of the cases and a wrong decision there cannot hide.
    let cases = [1, 2, 7, 1000, 1001]
        .map(|len| (len, 0.05))
        .into_iter()
        .chain((1..64).step_by(2).map(|len| (len, 0.5)));
    for (len, p) in cases {
        let mut mask = vec![0f32; len];
        let mut bits = vec![0u8; len];
        dropout_mask(&mut ChaCha8Rng::seed_from_u64(len as u64), p, &mut mask);
        dropout_bits(&mut ChaCha8Rng::seed_from_u64(len as u64), p, &mut bits);
        let keep = keep_scale::<f32>(p);
        for (m, b) in mask.iter().zip(&bits) {
            assert_eq!(*m, if *b == 1 { keep } else { 0.0 });
        }
        assert!(bits.iter().all(|&b| b <= 1));
    }
    // The odd last elements are dropped in some cases and kept in others.
    let last = |len: usize| {
        let mut bits = vec![0u8; len];
        dropout_bits(&mut ChaCha8Rng::seed_from_u64(len as u64), 0.5, &mut bits);
        bits[len - 1]
    };
    let dropped = (1..64).step_by(2).filter(|&len| last(len) == 0).count();
    assert!(
        (4..=28).contains(&dropped),
        "{dropped} of 32 odd tails dropped at p = 0.5"
    );
}

/// Eight streams in lockstep give each image exactly its own stream's decisions, for full and
/// partial groups of images.
/// Verifies r[cnn.dropout.mask] in the lockstep form training uses.
#[test]
fn lockstep_dropout_bits_equal_one_stream_per_image() {
    use gradspec::kernels::cpu::isas_hardware;
    use gradspec::kernels::dropout::dropout_bits_lockstep_on;
    use rand_xoshiro::Xoshiro256PlusPlus;
    // The layers' sizes (whole 64-decision blocks), then sizes that end in a partial block
    // after whole ones (100 = 64 + 36, 130 = 2·64 + 2) and one shorter than a block.
    let sizes = [10816, 18432, 1600, 2048, 100, 130, 2];
    // Every instruction set this CPU has (AVX-512 and AVX2 registers, else portable code), and
    // the reference path's portable code, whichever path `GRADSPEC_SIMD` chose for training.
    let isas: Vec<_> = isas_hardware()
        .into_iter()
        .map(Some)
        .chain([None])
        .collect();
    for (n, &isa) in [1, 3, 8]
        .into_iter()
        .flat_map(|n| isas.iter().map(move |i| (n, i)))
    {
        let seeds: Vec<u64> = (0..n as u64).map(|i| 0x9e37_79b9 * (i + 1)).collect();
        let mut bufs: Vec<Vec<u8>> = sizes.iter().map(|s| vec![7u8; n * s]).collect();
        let mut parts: Vec<(&mut [u8], usize)> = bufs
            .iter_mut()
            .zip(sizes)
            .map(|(b, s)| (&mut b[..], s))
            .collect();
        dropout_bits_lockstep_on(isa, &seeds, 0.05, &mut parts);
        for (i, &seed) in seeds.iter().enumerate() {
            let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
            for (b, &size) in bufs.iter().zip(&sizes) {
                let mut want = vec![0u8; size];
                dropout_bits(&mut rng, 0.05, &mut want);
                let on = isa.map_or("reference", |i| i.name());
                assert_eq!(
                    &b[i * size..(i + 1) * size],
                    &want[..],
                    "image {i} of {n} on {on}"
                );
            }
        }
    }
}

/// The comparison can fail: a pass that sums in a different order is caught even though its
/// result is mathematically the same.
#[test]
fn a_different_summation_order_is_detected() {
    let mut rng = ChaCha8Rng::seed_from_u64(9);
    let x: Vec<f32> = random(&mut rng, 2 * 4 * 25);
    let (mut s1, mut s2) = ([0f64; 4], [0f64; 4]);
    bn_partial_sums::<f32, 4, 5, 5>(View(&x), &mut s1, &mut s2);
    let mut naive = [0f32; 4];
    for (k, plane) in x.chunks_exact(25).enumerate() {
        naive[k % 4] += plane.iter().copied().sum::<f32>();
    }
    let mut conv = Conv::<f32, 4, 4, 1, 4>::zeros();
    conv_backward_bias::<f32, Shape<4, 4, 1, 4, 5, 5, 5, 5>>(View(&x), &mut conv);
    let differs = naive
        .iter()
        .zip(conv.bias.iter())
        .any(|(a, b)| a.to_bits() != b.to_bits());
    assert!(
        differs,
        "lane order and sequential order happened to agree on every channel"
    );
}

/// A mask of the wrong length is refused before any work (a longer one would otherwise be
/// silently truncated by the plane loop).
#[test]
#[should_panic(expected = "bn_dropout_forward: mask length differs")]
fn bn_dropout_forward_refuses_a_mask_of_the_wrong_length() {
    let p = BatchNorm::<f32, 2>::new();
    let (mean, var) = (SVector::<f32, 2>::zeros(), SVector::<f32, 2>::repeat(1.0));
    let r = vec![0.5f32; 2 * 9];
    let mut y = vec![0f32; 2 * 9];
    let bits = vec![1u8; 2 * 9 + 1];
    bn_dropout_forward::<f32, 2, 3, 3>(
        &p,
        &mean,
        &var,
        View(&r),
        Some(&bits),
        1.0,
        ViewMut(&mut y),
    );
}

#[test]
#[should_panic(expected = "dropout_bn_params_backward: mask length differs")]
fn dropout_bn_params_backward_refuses_a_mask_of_the_wrong_length() {
    let (mean, var) = (SVector::<f32, 2>::zeros(), SVector::<f32, 2>::repeat(1.0));
    let r = vec![0.5f32; 2 * 9];
    let mut g = vec![1f32; 2 * 9];
    let (mut dg, mut db) = (SVector::<f32, 2>::zeros(), SVector::<f32, 2>::zeros());
    let bits = vec![1u8; 2 * 9 + 1];
    dropout_bn_params_backward::<f32, 2, 3, 3>(
        Some(&bits),
        1.0,
        &mean,
        &var,
        View(&r),
        ViewMut(&mut g),
        &mut dg,
        &mut db,
    );
}
