//! The source network, wired from the layer functions: forward (train and eval) and the
//! hand-written backward pass, run over fixed-size chunks of images in parallel.
//!
//! Determinism: a batch is cut into chunks of [`CHUNK`] images; rayon may run chunks on any
//! thread, but each chunk's arithmetic is fixed, and every batch-wide sum (BatchNorm
//! statistics, parameter gradients, the loss) adds the chunks' partial sums in chunk order.
//! The result is bit-identical whatever the number of threads. Dropout masks are drawn per
//! image from a stream keyed by `(seed, step, image index)`, so they too ignore scheduling.
use super::avgpool::{avgpool_backward, avgpool_forward};
use super::batchnorm::{BatchNorm, Running, bn_batch_stats, bn_running_update};
use super::conv::{
    Conv, conv_backward_bias, conv_backward_input, conv_backward_weight, conv_forward,
};
use super::conv_simd;
use super::cpu;
use super::dropout::{LOCKSTEP, dropout_bits_lockstep, keep_scale};
use super::float::Float;
use super::fused::{
    bn_dropout_forward, bn_relu_backward, dropout_bn_params_backward, relu_bn_eval, relu_sums,
};
use super::linear::{
    linear_backward_bias, linear_backward_input, linear_backward_weight, linear_forward,
};
use super::loss::{logsoftmax_backward, logsoftmax_forward, nll_backward, nll_forward};
use super::maxpool::{maxpool_backward, maxpool_forward};
use super::params::{Buffers, Params};
use super::relu::{relu_backward, relu_forward};
use super::tensor::Act;
use super::tensor::{View, ViewMut};
use nalgebra::SVector;

/// Images per parallel work item. Part of the numerics (it fixes the summation order), so it
/// is a constant, not a tuning knob that depends on the machine.
pub const CHUNK: usize = 8;
/// Dropout probability of every dropout layer of the source network.
pub const DROPOUT_P: f64 = 0.05;
/// Number of classes.
pub const CLASSES: usize = 10;
/// Pixels per input image.
pub const PIXELS: usize = 28 * 28;

/// How a forward pass runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Batch statistics (and running-statistics update); dropout when a key is given.
    Train { dropout: Option<DropoutKey> },
    /// Running statistics, no dropout.
    Eval,
}

/// Identifies the dropout masks of one training step.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DropoutKey {
    pub seed: u64,
    pub step: u64,
}

/// The model: trainable parameters and BatchNorm buffers.
#[derive(Clone, Debug, PartialEq)]
pub struct Net<T: Float> {
    pub params: Box<Params<T>>,
    pub buffers: Box<Buffers<T>>,
}

/// What a forward pass reports.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Outcome {
    /// Mean NLL over the batch.
    pub loss: f64,
    /// Images whose arg-max class equals the label.
    pub correct: usize,
}

/// Batch statistics of the four BatchNorm layers, kept from forward for backward.
#[derive(Clone, Debug, Default)]
struct Stats<T: Float> {
    bn1: (SVector<T, 16>, SVector<T, 16>),
    bn2: (SVector<T, 32>, SVector<T, 32>),
    bn4: (SVector<T, 16>, SVector<T, 16>),
    bn5: (SVector<T, 32>, SVector<T, 32>),
}

#[derive(Clone, Debug)]
struct Sums<const C: usize> {
    s1: [f64; C],
    s2: [f64; C],
}

impl<const C: usize> Sums<C> {
    fn new() -> Self {
        Sums {
            s1: [0.0; C],
            s2: [0.0; C],
        }
    }
}

/// One chunk's activations, caches, gradient buffers and partial sums.
struct Chunk<T: Float> {
    n: usize,
    first: usize,
    x: Act<T, 1, 28, 28>,
    labels: Vec<u8>,
    r1: Act<T, 16, 26, 26>,
    d1: Act<T, 16, 26, 26>,
    m1: Vec<u8>,
    r2: Act<T, 32, 24, 24>,
    d2: Act<T, 32, 24, 24>,
    m2: Vec<u8>,
    z3: Act<T, 8, 24, 24>,
    p3: Act<T, 8, 12, 12>,
    a3: Vec<u8>,
    r4: Act<T, 16, 10, 10>,
    d4: Act<T, 16, 10, 10>,
    m4: Vec<u8>,
    r5: Act<T, 32, 8, 8>,
    d5: Act<T, 32, 8, 8>,
    m5: Vec<u8>,
    z6: Act<T, 16, 8, 8>,
    p6: Act<T, 16, 4, 4>,
    a6: Vec<u8>,
    r7: Act<T, 32, 2, 2>,
    v7: Act<T, 32, 1, 1>,
    logits: Act<T, 10, 1, 1>,
    logp: Act<T, 10, 1, 1>,
    // gradients flowing backward, one buffer per shape
    g_logp: Act<T, 10, 1, 1>,
    g_logits: Act<T, 10, 1, 1>,
    g_v7: Act<T, 32, 1, 1>,
    g_r7: Act<T, 32, 2, 2>,
    g_p6: Act<T, 16, 4, 4>,
    g_z6: Act<T, 16, 8, 8>,
    g_5: Act<T, 32, 8, 8>,
    g_4: Act<T, 16, 10, 10>,
    g_p3: Act<T, 8, 12, 12>,
    g_z3: Act<T, 8, 24, 24>,
    g_2: Act<T, 32, 24, 24>,
    g_1: Act<T, 16, 26, 26>,
    col: Vec<T>,
    grad: Box<Params<T>>,
    sum1: Sums<16>,
    sum2: Sums<32>,
    sum4: Sums<16>,
    sum5: Sums<32>,
    loss_sum: f64,
    correct: usize,
    dropout: bool,
}

impl<T: Float> Chunk<T> {
    fn new() -> Self {
        let c = CHUNK;
        Chunk {
            n: c,
            first: 0,
            x: Act::zeros(c),
            labels: vec![0; c],
            r1: Act::zeros(c),
            d1: Act::zeros(c),
            m1: vec![0; c * 16 * 26 * 26],
            r2: Act::zeros(c),
            d2: Act::zeros(c),
            m2: vec![0; c * 32 * 24 * 24],
            z3: Act::zeros(c),
            p3: Act::zeros(c),
            a3: vec![0; c * 8 * 12 * 12],
            r4: Act::zeros(c),
            d4: Act::zeros(c),
            m4: vec![0; c * 16 * 10 * 10],
            r5: Act::zeros(c),
            d5: Act::zeros(c),
            m5: vec![0; c * 32 * 8 * 8],
            z6: Act::zeros(c),
            p6: Act::zeros(c),
            a6: vec![0; c * 16 * 4 * 4],
            r7: Act::zeros(c),
            v7: Act::zeros(c),
            logits: Act::zeros(c),
            logp: Act::zeros(c),
            g_logp: Act::zeros(c),
            g_logits: Act::zeros(c),
            g_v7: Act::zeros(c),
            g_r7: Act::zeros(c),
            g_p6: Act::zeros(c),
            g_z6: Act::zeros(c),
            g_5: Act::zeros(c),
            g_4: Act::zeros(c),
            g_p3: Act::zeros(c),
            g_z3: Act::zeros(c),
            g_2: Act::zeros(c),
            g_1: Act::zeros(c),
            col: vec![T::zero(); 144 * 24 * 24],
            grad: Box::new(Params::zeros()),
            sum1: Sums::new(),
            sum2: Sums::new(),
            sum4: Sums::new(),
            sum5: Sums::new(),
            loss_sum: 0.0,
            correct: 0,
            dropout: false,
        }
    }

    fn set_n(&mut self, n: usize) {
        self.n = n;
        self.x.set_n(n);
        self.r1.set_n(n);
        self.d1.set_n(n);
        self.r2.set_n(n);
        self.d2.set_n(n);
        self.z3.set_n(n);
        self.p3.set_n(n);
        self.r4.set_n(n);
        self.d4.set_n(n);
        self.r5.set_n(n);
        self.d5.set_n(n);
        self.z6.set_n(n);
        self.p6.set_n(n);
        self.r7.set_n(n);
        self.v7.set_n(n);
        self.logits.set_n(n);
        self.logp.set_n(n);
        self.g_logp.set_n(n);
        self.g_logits.set_n(n);
        self.g_v7.set_n(n);
        self.g_r7.set_n(n);
        self.g_p6.set_n(n);
        self.g_z6.set_n(n);
        self.g_5.set_n(n);
        self.g_4.set_n(n);
        self.g_p3.set_n(n);
        self.g_z3.set_n(n);
        self.g_2.set_n(n);
        self.g_1.set_n(n);
    }

    fn draw_masks(&mut self, key: DropoutKey) {
        let n = self.n;
        const { assert!(CHUNK <= LOCKSTEP) }
        let mut seeds = [0u64; LOCKSTEP];
        for (i, s) in seeds.iter_mut().enumerate().take(n) {
            *s = mask_seed(key, (self.first + i) as u64);
        }
        let mut parts = [
            (&mut self.m1[..n * 16 * 26 * 26], 16 * 26 * 26),
            (&mut self.m2[..n * 32 * 24 * 24], 32 * 24 * 24),
            (&mut self.m4[..n * 16 * 10 * 10], 16 * 10 * 10),
            (&mut self.m5[..n * 32 * 8 * 8], 32 * 8 * 8),
        ];
        dropout_bits_lockstep(&seeds[..n], DROPOUT_P, &mut parts);
    }
}

/// SplitMix64's finaliser: a bijective mix of 64 bits.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

fn mask_seed(key: DropoutKey, image: u64) -> u64 {
    mix(mix(mix(key.seed ^ 0x6d61_736b) ^ key.step) ^ image)
}

/// Reusable buffers for forward and backward over batches of up to `max_batch` images.
/// Allocated once; a training loop makes no allocation per step.
pub struct Workspace<T: Float> {
    chunks: Vec<Chunk<T>>,
    n: usize,
    stats: Stats<T>,
    mode: Option<Mode>,
}

impl<T: Float> Workspace<T> {
    pub fn new(max_batch: usize) -> Self {
        let k = max_batch.div_ceil(CHUNK).max(1);
        Workspace {
            chunks: (0..k).map(|_| Chunk::new()).collect(),
            n: 0,
            stats: Stats::default(),
            mode: None,
        }
    }

    /// Largest batch this workspace holds.
    pub fn capacity(&self) -> usize {
        self.chunks.len() * CHUNK
    }

    fn active(&mut self) -> &mut [Chunk<T>] {
        let k = self.n.div_ceil(CHUNK);
        &mut self.chunks[..k]
    }

    /// Loads a batch: `x` is `[n, 1, 28, 28]` normalised pixels, `labels` is `[n]`.
    pub fn load(&mut self, x: &[T], labels: &[u8]) {
        let n = labels.len();
        assert_eq!(
            x.len(),
            n * PIXELS,
            "Workspace::load: x must hold 784 values per label"
        );
        assert!(
            n >= 1 && n <= self.capacity(),
            "Workspace::load: batch of {n} does not fit"
        );
        self.n = n;
        for (k, ch) in self.active().iter_mut().enumerate() {
            let first = k * CHUNK;
            let m = (n - first).min(CHUNK);
            ch.first = first;
            ch.set_n(m);
            ch.x.as_mut_slice()
                .copy_from_slice(&x[first * PIXELS..(first + m) * PIXELS]);
            ch.labels[..m].copy_from_slice(&labels[first..first + m]);
        }
    }

    /// Number of images loaded.
    pub fn n(&self) -> usize {
        self.n
    }

    /// The predicted class (arg-max of log-probabilities) of every loaded image, after forward.
    pub fn predictions(&self) -> Vec<u8> {
        let k = self.n.div_ceil(CHUNK);
        self.chunks[..k]
            .iter()
            .flat_map(|c| {
                c.logp
                    .as_slice()
                    .chunks_exact(CLASSES)
                    .map(argmax)
                    .collect::<Vec<_>>()
            })
            .collect()
    }

    /// The log-probabilities `[n, 10]`, after forward.
    pub fn log_probs(&self) -> Vec<T> {
        let k = self.n.div_ceil(CHUNK);
        self.chunks[..k]
            .iter()
            .flat_map(|c| c.logp.as_slice().to_vec())
            .collect()
    }
}

fn argmax<T: Float>(row: &[T]) -> u8 {
    let mut best = 0;
    for (j, &v) in row.iter().enumerate() {
        if v > row[best] {
            best = j;
        }
    }
    best as u8
}

fn reduce_sums<T: Float, const C: usize>(
    chunks: &[Chunk<T>],
    pick: impl Fn(&Chunk<T>) -> &Sums<C>,
) -> ([f64; C], [f64; C]) {
    let (mut s1, mut s2) = ([0.0; C], [0.0; C]);
    for ch in chunks {
        let s = pick(ch);
        for c in 0..C {
            s1[c] += s.s1[c];
            s2[c] += s.s2[c];
        }
    }
    (s1, s2)
}

fn reduce_bn_grads<T: Float, const C: usize>(
    chunks: &[Chunk<T>],
    pick: impl Fn(&Params<T>) -> &BatchNorm<T, C>,
) -> (SVector<T, C>, SVector<T, C>) {
    let (mut g, mut b) = (SVector::<T, C>::zeros(), SVector::<T, C>::zeros());
    for ch in chunks {
        let p = pick(&ch.grad);
        g += p.weight;
        b += p.bias;
    }
    (g, b)
}

/// Batch statistics in train mode (and the running update), or nothing in eval mode.
fn bn_stats_step<T: Float, const C: usize>(
    chunks: &[Chunk<T>],
    pick: impl Fn(&Chunk<T>) -> &Sums<C>,
    count: usize,
    running: &mut Running<T, C>,
) -> (SVector<T, C>, SVector<T, C>) {
    let (s1, s2) = reduce_sums(chunks, pick);
    let (mean, var) = bn_batch_stats::<T, C>(&s1, &s2, count);
    bn_running_update(running, &mean, &var, count);
    (mean, var)
}

impl<T: Float> Net<T> {
    /// A freshly initialised network (see [`Params::init`]).
    pub fn new(seed: u64) -> Self {
        Net {
            params: Box::new(Params::init(seed)),
            buffers: Box::new(Buffers::new()),
        }
    }

    /// Runs the forward pass over the loaded batch. In train mode it uses batch statistics and
    /// updates the running statistics, as PyTorch's `model.train()` does.
    pub fn forward(&mut self, ws: &mut Workspace<T>, mode: Mode) -> Outcome {
        let n = ws.n;
        assert!(n > 0, "Net::forward: no batch loaded");
        ws.mode = Some(mode);
        let p = &*self.params;
        match mode {
            Mode::Eval => {
                let buf = &*self.buffers;
                crate::par::for_each_mut(ws.active(), 1, |c| {
                    c.dropout = false;
                    conv_fwd(&p.conv1, c.x.view(), c.r1.view_mut(), &mut c.col);
                    relu_bn_eval(&p.bn1, &buf.bn1, c.r1.view_mut());
                    conv_fwd(&p.conv2, c.r1.view(), c.r2.view_mut(), &mut c.col);
                    relu_bn_eval(&p.bn2, &buf.bn2, c.r2.view_mut());
                    conv_fwd(&p.conv3, c.r2.view(), c.z3.view_mut(), &mut c.col);
                    maxpool_forward(c.z3.view(), c.p3.view_mut(), &mut c.a3[..c.n * 8 * 144]);
                    conv_fwd(&p.conv4, c.p3.view(), c.r4.view_mut(), &mut c.col);
                    relu_bn_eval(&p.bn4, &buf.bn4, c.r4.view_mut());
                    conv_fwd(&p.conv5, c.r4.view(), c.r5.view_mut(), &mut c.col);
                    relu_bn_eval(&p.bn5, &buf.bn5, c.r5.view_mut());
                    conv_fwd(&p.conv6, c.r5.view(), c.z6.view_mut(), &mut c.col);
                    head_forward(p, c);
                });
            }
            Mode::Train { dropout } => {
                let keep = keep_scale::<T>(DROPOUT_P);
                let m26 = n * 26 * 26;
                let m24 = n * 24 * 24;
                let m10 = n * 10 * 10;
                let m8 = n * 8 * 8;
                crate::par::for_each_mut(ws.active(), 1, |c| {
                    c.dropout = dropout.is_some();
                    if let Some(key) = dropout {
                        c.draw_masks(key);
                    }
                    conv_fwd(&p.conv1, c.x.view(), c.r1.view_mut(), &mut c.col);
                    c.sum1 = Sums::new();
                    relu_sums(c.r1.view_mut(), &mut c.sum1.s1, &mut c.sum1.s2);
                });
                let buf = &mut *self.buffers;
                let st1 = bn_stats_step(ws.active(), |c| &c.sum1, m26, &mut buf.bn1);
                crate::par::for_each_mut(ws.active(), 1, |c| {
                    let bits = c.dropout.then(|| &c.m1[..c.n * 16 * 676]);
                    let (mean, var) = (&st1.0, &st1.1);
                    bn_dropout_forward(&p.bn1, mean, var, c.r1.view(), bits, keep, c.d1.view_mut());
                    conv_fwd(&p.conv2, c.d1.view(), c.r2.view_mut(), &mut c.col);
                    c.sum2 = Sums::new();
                    relu_sums(c.r2.view_mut(), &mut c.sum2.s1, &mut c.sum2.s2);
                });
                let st2 = bn_stats_step(ws.active(), |c| &c.sum2, m24, &mut buf.bn2);
                crate::par::for_each_mut(ws.active(), 1, |c| {
                    let bits = c.dropout.then(|| &c.m2[..c.n * 32 * 576]);
                    let (mean, var) = (&st2.0, &st2.1);
                    bn_dropout_forward(&p.bn2, mean, var, c.r2.view(), bits, keep, c.d2.view_mut());
                    conv_fwd(&p.conv3, c.d2.view(), c.z3.view_mut(), &mut c.col);
                    maxpool_forward(c.z3.view(), c.p3.view_mut(), &mut c.a3[..c.n * 8 * 144]);
                    conv_fwd(&p.conv4, c.p3.view(), c.r4.view_mut(), &mut c.col);
                    c.sum4 = Sums::new();
                    relu_sums(c.r4.view_mut(), &mut c.sum4.s1, &mut c.sum4.s2);
                });
                let st4 = bn_stats_step(ws.active(), |c| &c.sum4, m10, &mut buf.bn4);
                crate::par::for_each_mut(ws.active(), 1, |c| {
                    let bits = c.dropout.then(|| &c.m4[..c.n * 16 * 100]);
                    let (mean, var) = (&st4.0, &st4.1);
                    bn_dropout_forward(&p.bn4, mean, var, c.r4.view(), bits, keep, c.d4.view_mut());
                    conv_fwd(&p.conv5, c.d4.view(), c.r5.view_mut(), &mut c.col);
                    c.sum5 = Sums::new();
                    relu_sums(c.r5.view_mut(), &mut c.sum5.s1, &mut c.sum5.s2);
                });
                let st5 = bn_stats_step(ws.active(), |c| &c.sum5, m8, &mut buf.bn5);
                crate::par::for_each_mut(ws.active(), 1, |c| {
                    let bits = c.dropout.then(|| &c.m5[..c.n * 32 * 64]);
                    let (mean, var) = (&st5.0, &st5.1);
                    bn_dropout_forward(&p.bn5, mean, var, c.r5.view(), bits, keep, c.d5.view_mut());
                    conv_fwd(&p.conv6, c.d5.view(), c.z6.view_mut(), &mut c.col);
                    head_forward(p, c);
                });
                ws.stats = Stats {
                    bn1: st1,
                    bn2: st2,
                    bn4: st4,
                    bn5: st5,
                };
            }
        }
        let chunks = &ws.chunks[..n.div_ceil(CHUNK)];
        let loss_sum: f64 = chunks.iter().map(|c| c.loss_sum).sum();
        let correct = chunks.iter().map(|c| c.correct).sum();
        Outcome {
            loss: loss_sum / n as f64,
            correct,
        }
    }

    /// Back-propagates the mean NLL of the last train-mode forward pass and writes the
    /// gradient of every parameter into `grads` (overwritten).
    ///
    /// # Panics
    /// If the last forward pass was not in train mode (the eval path keeps no caches).
    pub fn backward(&self, ws: &mut Workspace<T>, grads: &mut Params<T>) {
        assert!(
            matches!(ws.mode, Some(Mode::Train { .. })),
            "Net::backward needs a train-mode forward"
        );
        let n = ws.n;
        let p = &*self.params;
        let st = ws.stats.clone();
        let keep = keep_scale::<T>(DROPOUT_P);
        crate::par::for_each_mut(ws.active(), 1, |c| {
            c.grad.fill_zero();
            let g = &mut *c.grad;
            let labels = &c.labels[..c.n];
            nll_backward::<T, CLASSES>(labels, n, c.g_logp.as_mut_slice());
            logsoftmax_backward::<T, CLASSES>(
                c.logp.as_slice(),
                c.g_logp.as_slice(),
                c.g_logits.as_mut_slice(),
            );
            linear_backward_weight(c.g_logits.view(), c.v7.view(), &mut g.fc1.weight);
            linear_backward_bias(c.g_logits.view(), &mut g.fc1.bias);
            linear_backward_input(&p.fc1, c.g_logits.view(), c.g_v7.view_mut());
            avgpool_backward(c.g_v7.view(), c.g_r7.view_mut());
            relu_backward(c.r7.as_slice(), c.g_r7.as_mut_slice());
            conv_bwd_weight(c.g_r7.view(), c.p6.view(), &mut g.conv7, &mut c.col);
            conv_bwd_bias(c.g_r7.view(), &mut g.conv7.bias);
            conv_bwd_input(&p.conv7, c.g_r7.view(), c.g_p6.view_mut(), &mut c.col);
            maxpool_backward(c.g_p6.view(), &c.a6[..c.n * 16 * 16], c.g_z6.view_mut());
            conv_bwd_weight(c.g_z6.view(), c.d5.view(), &mut g.conv6, &mut c.col);
            conv_bwd_bias(c.g_z6.view(), &mut g.conv6.bias);
            conv_bwd_input(&p.conv6, c.g_z6.view(), c.g_5.view_mut(), &mut c.col);
            let bits = c.dropout.then_some(&c.m5[..]);
            block_params_backward(bits, keep, &st.bn5, &c.r5, &mut c.g_5, &mut g.bn5);
        });
        let (dg5, db5) = reduce_bn_grads(ws.active(), |g| &g.bn5);
        let m8 = n * 64;
        crate::par::for_each_mut(ws.active(), 1, |c| {
            let g = &mut *c.grad;
            let (bn, sums) = ((&p.bn5, &st.bn5), (&dg5, &db5, m8));
            block_input_backward(bn, sums, &c.r5, &mut c.g_5, &mut g.conv5.bias);
            conv_bwd_weight(c.g_5.view(), c.d4.view(), &mut g.conv5, &mut c.col);
            conv_bwd_input(&p.conv5, c.g_5.view(), c.g_4.view_mut(), &mut c.col);
            let bits = c.dropout.then_some(&c.m4[..]);
            block_params_backward(bits, keep, &st.bn4, &c.r4, &mut c.g_4, &mut g.bn4);
        });
        let (dg4, db4) = reduce_bn_grads(ws.active(), |g| &g.bn4);
        let m10 = n * 100;
        crate::par::for_each_mut(ws.active(), 1, |c| {
            let g = &mut *c.grad;
            let (bn, sums) = ((&p.bn4, &st.bn4), (&dg4, &db4, m10));
            block_input_backward(bn, sums, &c.r4, &mut c.g_4, &mut g.conv4.bias);
            conv_bwd_weight(c.g_4.view(), c.p3.view(), &mut g.conv4, &mut c.col);
            conv_bwd_input(&p.conv4, c.g_4.view(), c.g_p3.view_mut(), &mut c.col);
            maxpool_backward(c.g_p3.view(), &c.a3[..c.n * 8 * 144], c.g_z3.view_mut());
            conv_bwd_weight(c.g_z3.view(), c.d2.view(), &mut g.conv3, &mut c.col);
            conv_bwd_bias(c.g_z3.view(), &mut g.conv3.bias);
            // conv3's input gradient (1×1, 8 → 32 channels) is the one pass where the direct
            // kernel measured slower than GEMM (k = 8 is too short to amortise its scatter).
            conv_backward_input(&p.conv3, c.g_z3.view(), c.g_2.view_mut(), &mut c.col);
            let bits = c.dropout.then_some(&c.m2[..]);
            block_params_backward(bits, keep, &st.bn2, &c.r2, &mut c.g_2, &mut g.bn2);
        });
        let (dg2, db2) = reduce_bn_grads(ws.active(), |g| &g.bn2);
        let m24 = n * 576;
        crate::par::for_each_mut(ws.active(), 1, |c| {
            let g = &mut *c.grad;
            let (bn, sums) = ((&p.bn2, &st.bn2), (&dg2, &db2, m24));
            block_input_backward(bn, sums, &c.r2, &mut c.g_2, &mut g.conv2.bias);
            conv_bwd_weight(c.g_2.view(), c.d1.view(), &mut g.conv2, &mut c.col);
            conv_bwd_input(&p.conv2, c.g_2.view(), c.g_1.view_mut(), &mut c.col);
            let bits = c.dropout.then_some(&c.m1[..]);
            block_params_backward(bits, keep, &st.bn1, &c.r1, &mut c.g_1, &mut g.bn1);
        });
        let (dg1, db1) = reduce_bn_grads(ws.active(), |g| &g.bn1);
        let m26 = n * 676;
        crate::par::for_each_mut(ws.active(), 1, |c| {
            let g = &mut *c.grad;
            let (bn, sums) = ((&p.bn1, &st.bn1), (&dg1, &db1, m26));
            block_input_backward(bn, sums, &c.r1, &mut c.g_1, &mut g.conv1.bias);
            conv_bwd_weight(c.g_1.view(), c.x.view(), &mut g.conv1, &mut c.col);
        });
        grads.fill_zero();
        for c in ws.active().iter() {
            grads.add_assign(&c.grad);
        }
    }
}

/// Dropout's backward and the BatchNorm parameter gradients of one `conv → ReLU → BN →
/// dropout` block, for one chunk (see [`dropout_bn_params_backward`]). `bits` holds the chunk's
/// masks (`None` without dropout); only the first `g.n()` images' worth is used.
fn block_params_backward<T: Float, const C: usize, const H: usize, const W: usize>(
    bits: Option<&[u8]>,
    keep: T,
    (mean, var): &(SVector<T, C>, SVector<T, C>),
    r: &Act<T, C, H, W>,
    g: &mut Act<T, C, H, W>,
    grad: &mut BatchNorm<T, C>,
) {
    let len = g.as_slice().len();
    let bits = bits.map(|b| &b[..len]);
    let (dg, db) = (&mut grad.weight, &mut grad.bias);
    dropout_bn_params_backward(bits, keep, mean, var, r.view(), g.view_mut(), dg, db);
}

/// BatchNorm's input gradient, ReLU's backward and the feeding convolution's bias gradient of
/// one block, for one chunk (see [`bn_relu_backward`]): `bn` is the layer and its batch
/// statistics, `sums` the batch's `∂L/∂γ`, `∂L/∂β` and count.
#[allow(clippy::type_complexity)]
fn block_input_backward<T: Float, const C: usize, const H: usize, const W: usize>(
    (p, (mean, var)): (&BatchNorm<T, C>, &(SVector<T, C>, SVector<T, C>)),
    (dg, db, m): (&SVector<T, C>, &SVector<T, C>, usize),
    r: &Act<T, C, H, W>,
    g: &mut Act<T, C, H, W>,
    dbias: &mut SVector<T, C>,
) {
    bn_relu_backward(p, mean, var, dg, db, m, r.view(), g.view_mut(), dbias);
}

/// conv6 output → pool → conv7 → ReLU → avg-pool → fc1 → log-softmax → NLL, for one chunk.
fn head_forward<T: Float>(p: &Params<T>, c: &mut Chunk<T>) {
    maxpool_forward(c.z6.view(), c.p6.view_mut(), &mut c.a6[..c.n * 16 * 16]);
    conv_fwd(&p.conv7, c.p6.view(), c.r7.view_mut(), &mut c.col);
    relu_forward(c.r7.as_mut_slice());
    avgpool_forward(c.r7.view(), c.v7.view_mut());
    linear_forward(&p.fc1, c.v7.view(), c.logits.view_mut());
    logsoftmax_forward::<T, CLASSES>(c.logits.as_slice(), c.logp.as_mut_slice());
    let labels = &c.labels[..c.n];
    // nll_forward averages over its rows; scale back to a sum so chunks add exactly.
    c.loss_sum = nll_forward::<T, CLASSES>(c.logp.as_slice(), labels).f64() * c.n as f64;
    c.correct = c
        .logp
        .as_slice()
        .chunks_exact(CLASSES)
        .zip(labels)
        .filter(|(r, y)| argmax(r) == **y)
        .count();
}

// The convolutions of the network: the direct AVX-512 kernels of `conv_simd` when `cpu` hands
// out its token (the CPU has AVX-512 and `GRADSPEC_NO_AVX512` is not set) and the float type is
// f32, else the im2col + GEMM functions of `conv` (always for f64, so the gradient checks verify
// the reference path; `tests/cnn_conv_simd.rs` ties the two together).

#[allow(clippy::type_complexity)]
fn conv_fwd<
    T: Float,
    const CIN: usize,
    const COUT: usize,
    const K: usize,
    const KK: usize,
    const H: usize,
    const W: usize,
    const OH: usize,
    const OW: usize,
>(
    p: &Conv<T, CIN, COUT, K, KK>,
    x: View<'_, T, CIN, H, W>,
    y: ViewMut<'_, T, COUT, OH, OW>,
    col: &mut [T],
) {
    let y2 = ViewMut::<T, COUT, OH, OW>(&mut *y.0);
    let simd = |cpu| conv_simd::try_conv_forward(cpu, p, x, y2);
    if !cpu::avx512().is_some_and(simd) {
        conv_forward(p, x, y, col);
    }
}

fn conv_bwd_input<
    T: Float,
    const CIN: usize,
    const COUT: usize,
    const K: usize,
    const KK: usize,
    const H: usize,
    const W: usize,
    const OH: usize,
    const OW: usize,
>(
    p: &Conv<T, CIN, COUT, K, KK>,
    dy: View<'_, T, COUT, OH, OW>,
    dx: ViewMut<'_, T, CIN, H, W>,
    col: &mut [T],
) {
    let dx2 = ViewMut::<T, CIN, H, W>(&mut *dx.0);
    let simd = |cpu| conv_simd::try_conv_backward_input(cpu, p, dy, dx2, col);
    if !cpu::avx512().is_some_and(simd) {
        conv_backward_input(p, dy, dx, col);
    }
}

fn conv_bwd_weight<
    T: Float,
    const CIN: usize,
    const COUT: usize,
    const K: usize,
    const KK: usize,
    const H: usize,
    const W: usize,
    const OH: usize,
    const OW: usize,
>(
    dy: View<'_, T, COUT, OH, OW>,
    x: View<'_, T, CIN, H, W>,
    dw: &mut Conv<T, CIN, COUT, K, KK>,
    col: &mut [T],
) {
    if !cpu::avx512().is_some_and(|cpu| conv_simd::try_conv_backward_weight(cpu, dy, x, dw, col)) {
        conv_backward_weight(dy, x, dw, col);
    }
}

fn conv_bwd_bias<T: Float, const COUT: usize, const OH: usize, const OW: usize>(
    dy: View<'_, T, COUT, OH, OW>,
    db: &mut SVector<T, COUT>,
) {
    if !cpu::avx512().is_some_and(|cpu| conv_simd::try_conv_backward_bias(cpu, dy, db)) {
        conv_backward_bias(dy, db);
    }
}
