//! The source network, wired from the layer functions: forward (train and eval) and the
//! hand-written backward pass, run over fixed-size chunks of images in parallel.
//!
//! Determinism: a batch is cut into chunks of [`CHUNK`] images; rayon may run chunks on any
//! thread, but each chunk's arithmetic is fixed, and every batch-wide sum (BatchNorm
//! statistics, parameter gradients, the loss) adds the chunks' partial sums in chunk order.
//! The result is bit-identical whatever the number of threads. Dropout masks are drawn per
//! image from a stream keyed by `(seed, step, image index)`, so they too ignore scheduling.
//!
//! Layout: the rows of the table in `spec/cnn.md` are the fields of a chunk, in order: a
//! `Block` per `conv → ReLU → BN → dropout` block (conv1, conv2, conv4, conv5), a `ConvPool`
//! per `conv → max-pool` (conv3, conv6), and the `Head` (conv7 → ReLU → avg-pool → fc1 →
//! log-softmax → NLL). Each convolution's shape is a type ([`Conv1`] … [`Conv7`]), checked
//! against the buffers it reads and writes at compile time. [`Net::forward`] and
//! [`Net::backward`] walk that list; a train-mode pass stops between blocks only where
//! BatchNorm needs a batch-wide sum.
use super::avgpool::{avgpool_backward, avgpool_forward};
use super::batchnorm::{BatchNorm, Running, bn_batch_stats, bn_running_update};
use super::conv::{ConvBias, ConvShape, Shape, col_len_of};
use super::dropout::keep_scale;
use super::float::Float;
use super::linear::{
    linear_backward_bias, linear_backward_input, linear_backward_weight, linear_forward,
};
use super::loss::{logsoftmax_backward, logsoftmax_forward, nll_backward, nll_forward};
use super::maxpool::{maxpool_backward, maxpool_forward};
use super::params::{Buffers, Params};
use super::pool::Pool;
use super::relu::{relu_backward, relu_forward};
use super::tensor::Act;
use crate::kernels::conv as conv_pass;
use crate::kernels::dropout::{LOCKSTEP, dropout_bits_lockstep};
use crate::kernels::fused::{
    bn_dropout_forward, bn_relu_backward, dropout_bn_params_backward, relu_bn_eval, relu_sums,
};
use nalgebra::SVector;

/// Images per parallel work item. Part of the numerics (it fixes the summation order), so it
/// is a constant, not a tuning knob that depends on the machine.
pub const CHUNK: usize = 8;
/// Dropout probability of every dropout layer of the source network.
pub const DROPOUT_P: f64 = 0.05;
/// Number of classes.
pub const CLASSES: usize = 10;
/// Pixels per input image.
pub const PIXELS: usize = Act::<f32, 1, 28, 28>::IMAGE;

/// `conv1 = Conv2d(1, 16, 3)` on the 1×28×28 input → 16×26×26.
pub type Conv1 = Shape<1, 16, 3, 9, 28, 28, 26, 26>;
/// `conv2 = Conv2d(16, 32, 3)` → 32×24×24.
pub type Conv2 = Shape<16, 32, 3, 144, 26, 26, 24, 24>;
/// `conv3 = Conv2d(32, 8, 1)` → 8×24×24.
pub type Conv3 = Shape<32, 8, 1, 32, 24, 24, 24, 24>;
/// `conv4 = Conv2d(8, 16, 3)` on the pooled 8×12×12 → 16×10×10.
pub type Conv4 = Shape<8, 16, 3, 72, 12, 12, 10, 10>;
/// `conv5 = Conv2d(16, 32, 3)` → 32×8×8.
pub type Conv5 = Shape<16, 32, 3, 144, 10, 10, 8, 8>;
/// `conv6 = Conv2d(32, 16, 1)` → 16×8×8.
pub type Conv6 = Shape<32, 16, 1, 32, 8, 8, 8, 8>;
/// `conv7 = Conv2d(16, 32, 3)` on the pooled 16×4×4 → 32×2×2.
pub type Conv7 = Shape<16, 32, 3, 144, 4, 4, 2, 2>;
/// The average pool after conv7: 32×2×2 → 32×1×1.
type AvgPool7 = Pool<32, 2, 2, 1, 1>;

/// Scratch floats one convolution of shape `S` borrows: its im2col matrix, or what the
/// AVX-512 kernels need.
const fn scratch_of<S: ConvShape>() -> usize {
    let (a, b) = (col_len_of::<S>(), conv_pass::scratch_len_of::<S>());
    if a > b { a } else { b }
}

/// The largest of `v`.
const fn max_of(v: &[usize]) -> usize {
    let (mut m, mut i) = (0, 0);
    while i < v.len() {
        if v[i] > m {
            m = v[i];
        }
        i += 1;
    }
    m
}

/// Length of the scratch buffer that every convolution of a chunk borrows in turn: the
/// largest requirement over the seven layers.
const COL_LEN: usize = max_of(&[
    scratch_of::<Conv1>(),
    scratch_of::<Conv2>(),
    scratch_of::<Conv3>(),
    scratch_of::<Conv4>(),
    scratch_of::<Conv5>(),
    scratch_of::<Conv6>(),
    scratch_of::<Conv7>(),
]);

/// How a forward pass runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Batch statistics (and running-statistics update); dropout when a key is given.
    Train {
        /// The key of this step's dropout masks; `None` trains without dropout.
        dropout: Option<DropoutKey>,
    },
    /// Running statistics, no dropout.
    Eval,
}

/// Identifies the dropout masks of one training step.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DropoutKey {
    /// The run's seed.
    pub seed: u64,
    /// The training step.
    pub step: u64,
}

/// The model: trainable parameters and BatchNorm buffers.
#[derive(Clone, Debug, PartialEq)]
pub struct Net<T: Float> {
    /// Trainable parameters.
    pub params: Box<Params<T>>,
    /// BatchNorm running statistics.
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

/// Batch statistics `(mean, biased variance)` of one BatchNorm layer, kept from forward for
/// backward.
type BnStats<T, const C: usize> = (SVector<T, C>, SVector<T, C>);

/// Batch statistics of the four BatchNorm layers, kept from forward for backward.
#[derive(Clone, Debug, Default)]
struct Stats<T: Float> {
    bn1: BnStats<T, 16>,
    bn2: BnStats<T, 32>,
    bn4: BnStats<T, 16>,
    bn5: BnStats<T, 32>,
}

/// Per-channel `Σx`, `Σx²` (f64) of one chunk, for the BatchNorm batch statistics.
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

/// The compile-time check that the convolution `S` outputs `C×H×W`.
fn check_shapes<S: ConvShape, const C: usize, const H: usize, const W: usize>() {
    const { assert!(S::COUT == C && S::OH == H && S::OW == W) }
}

/// One `conv → ReLU → BN → dropout` block of the network table, for one chunk: its `C×H×W`
/// activations, its dropout masks, the gradient flowing back through it and the chunk's
/// BatchNorm partial sums. The block's input belongs to the layer before it, so the passes
/// that read it, or write its gradient, take it as an argument; the convolution's shape `S`
/// is a type parameter of those passes, checked against `C×H×W` at compile time.
struct Block<T: Float, const C: usize, const H: usize, const W: usize> {
    /// The convolution's output, then (in place) the ReLU output: BatchNorm's input. In eval
    /// mode, also (in place) the block's output.
    r: Act<T, C, H, W>,
    /// The block's output in train mode: BatchNorm, then dropout.
    d: Act<T, C, H, W>,
    /// Dropout mask bytes, one per element of `d`.
    mask: Vec<u8>,
    /// `∂L/∂d`, then (in place) `∂L/∂` of the convolution's output.
    g: Act<T, C, H, W>,
    /// This chunk's `Σr`, `Σr²` per channel.
    sums: Sums<C>,
}

impl<T: Float, const C: usize, const H: usize, const W: usize> Block<T, C, H, W> {
    /// Values per channel and image: a BatchNorm statistic averages `n·PLANE` of them.
    const PLANE: usize = H * W;

    /// Buffers for `n` images.
    fn new(n: usize) -> Self {
        Block {
            r: Act::zeros(n),
            d: Act::zeros(n),
            mask: vec![0; n * Act::<T, C, H, W>::IMAGE],
            g: Act::zeros(n),
            sums: Sums::new(),
        }
    }

    fn set_n(&mut self, n: usize) {
        self.r.set_n(n);
        self.d.set_n(n);
        self.g.set_n(n);
    }

    /// The masks of the images in use and their length per image, for
    /// [`dropout_bits_lockstep`].
    fn mask_part(&mut self) -> (&mut [u8], usize) {
        let len = self.r.as_slice().len();
        (&mut self.mask[..len], Act::<T, C, H, W>::IMAGE)
    }

    /// Eval: conv, then ReLU and BatchNorm with the running statistics, in place in `r`.
    fn forward_eval<S: ConvShape>(
        &mut self,
        (conv, bn, running): (&S::Params<T>, &BatchNorm<T, C>, &Running<T, C>),
        x: S::In<'_, T>,
        col: &mut [T],
    ) {
        check_shapes::<S, C, H, W>();
        conv_pass::forward::<T, S>(conv, x, self.r.as_mut_slice().into(), col);
        relu_bn_eval(bn, running, self.r.view_mut());
    }

    /// Train, first pass: conv, ReLU, and the chunk's BatchNorm sums.
    fn conv_relu_sums<S: ConvShape>(
        &mut self,
        conv: &S::Params<T>,
        x: S::In<'_, T>,
        col: &mut [T],
    ) {
        check_shapes::<S, C, H, W>();
        conv_pass::forward::<T, S>(conv, x, self.r.as_mut_slice().into(), col);
        self.sums = Sums::new();
        relu_sums(self.r.view_mut(), &mut self.sums.s1, &mut self.sums.s2);
    }

    /// Train, second pass (once the batch statistics are known): BatchNorm and dropout into `d`.
    fn bn_dropout(
        &mut self,
        bn: &BatchNorm<T, C>,
        (mean, var): &BnStats<T, C>,
        keep: T,
        dropout: bool,
    ) {
        let bits = dropout.then(|| &self.mask[..self.r.as_slice().len()]);
        bn_dropout_forward(bn, mean, var, self.r.view(), bits, keep, self.d.view_mut());
    }

    /// Backward, first pass: dropout's backward in place on `g` and the chunk's BatchNorm
    /// parameter gradients (see [`dropout_bn_params_backward`]).
    fn params_backward(
        &mut self,
        dropout: bool,
        keep: T,
        (mean, var): &BnStats<T, C>,
        grad: &mut BatchNorm<T, C>,
    ) {
        let bits = dropout.then(|| &self.mask[..self.r.as_slice().len()]);
        let (dg, db) = (&mut grad.weight, &mut grad.bias);
        dropout_bn_params_backward(
            bits,
            keep,
            mean,
            var,
            self.r.view(),
            self.g.view_mut(),
            dg,
            db,
        );
    }

    /// Backward, second pass (once the batch's `∂L/∂γ`, `∂L/∂β` are known): BatchNorm's input
    /// gradient, ReLU's backward and the convolution's bias gradient in place on `g` (see
    /// [`bn_relu_backward`]), then the convolution's weight gradient and, unless `dx` is
    /// `None` (the first layer), its input gradient into `dx`. `batch` is the number of
    /// images in the batch.
    #[allow(clippy::too_many_arguments)]
    fn backward<S: ConvShape>(
        &mut self,
        (bn, (mean, var)): (&BatchNorm<T, C>, &BnStats<T, C>),
        (dg, db): &BnStats<T, C>,
        batch: usize,
        (conv, dconv): (&S::Params<T>, &mut S::Params<T>),
        x: S::In<'_, T>,
        dx: Option<S::InMut<'_, T>>,
        col: &mut [T],
    ) where
        S::Params<T>: ConvBias<T, C>,
    {
        check_shapes::<S, C, H, W>();
        let (g, m) = (self.g.view_mut(), batch * Self::PLANE);
        bn_relu_backward(
            bn,
            mean,
            var,
            dg,
            db,
            m,
            self.r.view(),
            g,
            dconv.bias_vector_mut(),
        );
        let g = self.g.as_slice();
        match dx {
            Some(dx) => conv_pass::backward::<T, S>(conv, g.into(), x, dconv, dx, col),
            None => conv_pass::backward_weight::<T, S>(g.into(), x, dconv, col),
        }
    }
}

/// A convolution followed by `MaxPool2d(2, 2)` (conv3 and conv6), for one chunk: the
/// convolution's `C×H×W` output, the pooled `C×PH×PW`, the winners, and both gradients.
struct ConvPool<
    T: Float,
    const C: usize,
    const H: usize,
    const W: usize,
    const PH: usize,
    const PW: usize,
> {
    /// The convolution's output.
    z: Act<T, C, H, W>,
    /// The pooled output.
    p: Act<T, C, PH, PW>,
    /// The winner (0–3) of every pooling window.
    arg: Vec<u8>,
    /// `∂L/∂p`.
    gp: Act<T, C, PH, PW>,
    /// `∂L/∂z`.
    gz: Act<T, C, H, W>,
}

impl<T: Float, const C: usize, const H: usize, const W: usize, const PH: usize, const PW: usize>
    ConvPool<T, C, H, W, PH, PW>
{
    /// Buffers for `n` images.
    fn new(n: usize) -> Self {
        ConvPool {
            z: Act::zeros(n),
            p: Act::zeros(n),
            arg: vec![0; n * Act::<T, C, PH, PW>::IMAGE],
            gp: Act::zeros(n),
            gz: Act::zeros(n),
        }
    }

    fn set_n(&mut self, n: usize) {
        self.z.set_n(n);
        self.p.set_n(n);
        self.gp.set_n(n);
        self.gz.set_n(n);
    }

    /// Conv, then max-pool.
    fn forward<S: ConvShape>(&mut self, conv: &S::Params<T>, x: S::In<'_, T>, col: &mut [T]) {
        check_shapes::<S, C, H, W>();
        conv_pass::forward::<T, S>(conv, x, self.z.as_mut_slice().into(), col);
        let arg = &mut self.arg[..self.p.as_slice().len()];
        maxpool_forward::<T, Pool<C, H, W, PH, PW>>(self.z.view(), self.p.view_mut(), arg);
    }

    /// Max-pool's backward from `gp` into `gz`, then the convolution's weight and bias
    /// gradients. The input gradient is left to the caller, which picks its implementation.
    fn backward<S: ConvShape>(&mut self, dconv: &mut S::Params<T>, x: S::In<'_, T>, col: &mut [T]) {
        check_shapes::<S, C, H, W>();
        let arg = &self.arg[..self.p.as_slice().len()];
        maxpool_backward::<T, Pool<C, H, W, PH, PW>>(self.gp.view(), arg, self.gz.view_mut());
        conv_pass::backward_weight::<T, S>(self.gz.as_slice().into(), x, dconv, col);
        conv_pass::backward_bias::<T, S>(self.gz.as_slice().into(), dconv);
    }
}

/// The network's head for one chunk: conv7 → ReLU → avg-pool → fc1 → log-softmax, and the
/// gradients flowing back through it.
struct Head<T: Float> {
    r7: Act<T, 32, 2, 2>,
    v7: Act<T, 32, 1, 1>,
    logits: Act<T, CLASSES, 1, 1>,
    logp: Act<T, CLASSES, 1, 1>,
    g_logp: Act<T, CLASSES, 1, 1>,
    g_logits: Act<T, CLASSES, 1, 1>,
    g_v7: Act<T, 32, 1, 1>,
    g_r7: Act<T, 32, 2, 2>,
}

impl<T: Float> Head<T> {
    /// Buffers for `n` images.
    fn new(n: usize) -> Self {
        Head {
            r7: Act::zeros(n),
            v7: Act::zeros(n),
            logits: Act::zeros(n),
            logp: Act::zeros(n),
            g_logp: Act::zeros(n),
            g_logits: Act::zeros(n),
            g_v7: Act::zeros(n),
            g_r7: Act::zeros(n),
        }
    }

    fn set_n(&mut self, n: usize) {
        self.r7.set_n(n);
        self.v7.set_n(n);
        self.logits.set_n(n);
        self.logp.set_n(n);
        self.g_logp.set_n(n);
        self.g_logits.set_n(n);
        self.g_v7.set_n(n);
        self.g_r7.set_n(n);
    }

    /// conv7 → ReLU → avg-pool → fc1 → log-softmax → NLL from the pooled conv6 output `x`;
    /// returns the summed (not averaged) loss and the number of correct predictions.
    fn forward(
        &mut self,
        p: &Params<T>,
        x: <Conv7 as ConvShape>::In<'_, T>,
        labels: &[u8],
        col: &mut [T],
    ) -> (f64, usize) {
        conv_pass::forward::<T, Conv7>(&p.conv7, x, self.r7.view_mut(), col);
        relu_forward(self.r7.as_mut_slice());
        avgpool_forward::<T, AvgPool7>(self.r7.view(), self.v7.view_mut());
        linear_forward(&p.fc1, self.v7.view(), self.logits.view_mut());
        logsoftmax_forward::<T, CLASSES>(self.logits.as_slice(), self.logp.as_mut_slice());
        // nll_forward averages over its rows; scale back to a sum so chunks add exactly.
        let n = labels.len();
        let loss_sum = nll_forward::<T, CLASSES>(self.logp.as_slice(), labels).f64() * n as f64;
        let correct = self
            .logp
            .as_slice()
            .chunks_exact(CLASSES)
            .zip(labels)
            .filter(|(r, y)| argmax(r) == **y)
            .count();
        (loss_sum, correct)
    }

    /// The gradient of the mean NLL over a batch of `batch` images back to conv7's input `x`:
    /// parameter gradients into `g`, the input gradient into `dx`.
    #[allow(clippy::too_many_arguments)]
    fn backward(
        &mut self,
        p: &Params<T>,
        g: &mut Params<T>,
        labels: &[u8],
        batch: usize,
        x: <Conv7 as ConvShape>::In<'_, T>,
        dx: <Conv7 as ConvShape>::InMut<'_, T>,
        col: &mut [T],
    ) {
        nll_backward::<T, CLASSES>(labels, batch, self.g_logp.as_mut_slice());
        logsoftmax_backward::<T, CLASSES>(
            self.logp.as_slice(),
            self.g_logp.as_slice(),
            self.g_logits.as_mut_slice(),
        );
        linear_backward_weight(self.g_logits.view(), self.v7.view(), &mut g.fc1.weight);
        linear_backward_bias(self.g_logits.view(), &mut g.fc1.bias);
        linear_backward_input(&p.fc1, self.g_logits.view(), self.g_v7.view_mut());
        avgpool_backward::<T, AvgPool7>(self.g_v7.view(), self.g_r7.view_mut());
        relu_backward(self.r7.as_slice(), self.g_r7.as_mut_slice());
        conv_pass::backward_weight::<T, Conv7>(self.g_r7.view(), x, &mut g.conv7, col);
        conv_pass::backward_bias::<T, Conv7>(self.g_r7.view(), &mut g.conv7);
        conv_pass::backward_input::<T, Conv7>(&p.conv7, self.g_r7.view(), dx, col);
    }
}

/// One chunk of up to [`CHUNK`] images: the input, one buffer set per row of the network
/// table, the convolutions' shared scratch, and the chunk's partial sums.
struct Chunk<T: Float> {
    n: usize,
    first: usize,
    x: Act<T, 1, 28, 28>,
    labels: Vec<u8>,
    b1: Block<T, 16, 26, 26>,
    b2: Block<T, 32, 24, 24>,
    c3: ConvPool<T, 8, 24, 24, 12, 12>,
    b4: Block<T, 16, 10, 10>,
    b5: Block<T, 32, 8, 8>,
    c6: ConvPool<T, 16, 8, 8, 4, 4>,
    head: Head<T>,
    col: Vec<T>,
    grad: Box<Params<T>>,
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
            b1: Block::new(c),
            b2: Block::new(c),
            c3: ConvPool::new(c),
            b4: Block::new(c),
            b5: Block::new(c),
            c6: ConvPool::new(c),
            head: Head::new(c),
            col: vec![T::zero(); COL_LEN],
            grad: Box::new(Params::zeros()),
            loss_sum: 0.0,
            correct: 0,
            dropout: false,
        }
    }

    fn set_n(&mut self, n: usize) {
        self.n = n;
        self.x.set_n(n);
        self.b1.set_n(n);
        self.b2.set_n(n);
        self.c3.set_n(n);
        self.b4.set_n(n);
        self.b5.set_n(n);
        self.c6.set_n(n);
        self.head.set_n(n);
    }

    fn draw_masks(&mut self, key: DropoutKey) {
        let n = self.n;
        const { assert!(CHUNK <= LOCKSTEP) }
        let mut seeds = [0u64; LOCKSTEP];
        for (i, s) in seeds.iter_mut().enumerate().take(n) {
            *s = mask_seed(key, (self.first + i) as u64);
        }
        let mut parts = [
            self.b1.mask_part(),
            self.b2.mask_part(),
            self.b4.mask_part(),
            self.b5.mask_part(),
        ];
        dropout_bits_lockstep(&seeds[..n], DROPOUT_P, &mut parts);
    }

    /// The head's forward pass from the pooled conv6 output, recording the chunk's loss sum
    /// and correct count.
    fn head_forward(&mut self, p: &Params<T>) {
        let labels = &self.labels[..self.n];
        let x = self.c6.p.view();
        (self.loss_sum, self.correct) = self.head.forward(p, x, labels, &mut self.col);
    }
}

/// SplitMix64's finaliser: a bijective mix of 64 bits.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The seed of image `image`'s dropout stream (see `spec/cnn.md`, "Dropout").
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
    /// Buffers for batches of up to `max_batch` images.
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
    ///
    /// # Panics
    /// If `x` does not hold [`PIXELS`] values per label, or the batch is empty or larger than
    /// [`Workspace::capacity`].
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
                c.head
                    .logp
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
            .flat_map(|c| c.head.logp.as_slice().to_vec())
            .collect()
    }
}

/// One layer's values for one image, for looking at (the book's worked example, the
/// draw-a-digit page): a `channels × height × width` block, row-major as in the network.
#[derive(Clone, Debug, PartialEq)]
pub struct LayerMap<T> {
    /// What the values are, e.g. `"conv1 → ReLU → bn1"` or `"∂L/∂(conv1 output)"`.
    pub name: &'static str,
    /// Channels (feature maps).
    pub channels: usize,
    /// Rows of each map.
    pub height: usize,
    /// Columns of each map.
    pub width: usize,
    /// `channels · height · width` values.
    pub values: Vec<T>,
}

/// Image `i`'s slice of an activation buffer, as a [`LayerMap`].
fn layer_map<T: Float, const C: usize, const H: usize, const W: usize>(
    name: &'static str,
    a: &Act<T, C, H, W>,
    i: usize,
) -> LayerMap<T> {
    LayerMap {
        name,
        channels: C,
        height: H,
        width: W,
        values: a.view().image(i).to_vec(),
    }
}

impl<T: Float> Workspace<T> {
    /// The chunk holding image `i` of the loaded batch and its index within the chunk.
    ///
    /// # Panics
    /// If `i` is not below [`Workspace::n`].
    fn image_of(&self, i: usize) -> (&Chunk<T>, usize) {
        assert!(i < self.n, "Workspace: image {i} of a batch of {}", self.n);
        (&self.chunks[i / CHUNK], i % CHUNK)
    }

    /// Every layer's output for image `i` after [`Net::forward`], from the input to the
    /// log-probabilities, in the order of the network table. A block's output is BatchNorm's
    /// (eval mode) or dropout's (train mode).
    ///
    /// # Panics
    /// If no forward pass ran, or `i` is not below [`Workspace::n`].
    pub fn activations(&self, i: usize) -> Vec<LayerMap<T>> {
        let eval = matches!(self.mode, Some(Mode::Eval));
        assert!(
            self.mode.is_some(),
            "Workspace::activations: no forward pass"
        );
        let (c, j) = self.image_of(i);
        let (o1, o2, o4, o5) = if eval {
            (&c.b1.r, &c.b2.r, &c.b4.r, &c.b5.r)
        } else {
            (&c.b1.d, &c.b2.d, &c.b4.d, &c.b5.d)
        };
        vec![
            layer_map("input (normalised)", &c.x, j),
            layer_map("conv1 → ReLU → bn1", o1, j),
            layer_map("conv2 → ReLU → bn2", o2, j),
            layer_map("conv3", &c.c3.z, j),
            layer_map("max-pool", &c.c3.p, j),
            layer_map("conv4 → ReLU → bn4", o4, j),
            layer_map("conv5 → ReLU → bn5", o5, j),
            layer_map("conv6", &c.c6.z, j),
            layer_map("max-pool", &c.c6.p, j),
            layer_map("conv7 → ReLU", &c.head.r7, j),
            layer_map("avg-pool", &c.head.v7, j),
            layer_map("fc1 (logits)", &c.head.logits, j),
            layer_map("log-softmax", &c.head.logp, j),
        ]
    }

    /// The gradient of the loss with respect to every layer's activations for image `i`, after
    /// [`Net::backward`], from the log-probabilities back to the first convolution's output.
    ///
    /// # Panics
    /// If the last forward pass was not in train mode, or `i` is not below [`Workspace::n`].
    pub fn activation_grads(&self, i: usize) -> Vec<LayerMap<T>> {
        assert!(
            matches!(self.mode, Some(Mode::Train { .. })),
            "Workspace::activation_grads needs a train-mode forward and a backward"
        );
        let (c, j) = self.image_of(i);
        vec![
            layer_map("∂L/∂(log-softmax)", &c.head.g_logp, j),
            layer_map("∂L/∂(logits)", &c.head.g_logits, j),
            layer_map("∂L/∂(avg-pool output)", &c.head.g_v7, j),
            layer_map("∂L/∂(conv7 output)", &c.head.g_r7, j),
            layer_map("∂L/∂(max-pool 2 output)", &c.c6.gp, j),
            layer_map("∂L/∂(conv6 output)", &c.c6.gz, j),
            layer_map("∂L/∂(conv5 output)", &c.b5.g, j),
            layer_map("∂L/∂(conv4 output)", &c.b4.g, j),
            layer_map("∂L/∂(max-pool 1 output)", &c.c3.gp, j),
            layer_map("∂L/∂(conv3 output)", &c.c3.gz, j),
            layer_map("∂L/∂(conv2 output)", &c.b2.g, j),
            layer_map("∂L/∂(conv1 output)", &c.b1.g, j),
        ]
    }

    /// The batch statistics `(name, mean, biased variance)` of the four BatchNorm layers from
    /// the last train-mode forward pass (all zeros before one).
    pub fn batch_stats(&self) -> Vec<(&'static str, Vec<T>, Vec<T>)> {
        let s = &self.stats;
        let v = |x: &[T]| x.to_vec();
        vec![
            ("bn1", v(s.bn1.0.as_slice()), v(s.bn1.1.as_slice())),
            ("bn2", v(s.bn2.0.as_slice()), v(s.bn2.1.as_slice())),
            ("bn4", v(s.bn4.0.as_slice()), v(s.bn4.1.as_slice())),
            ("bn5", v(s.bn5.0.as_slice()), v(s.bn5.1.as_slice())),
        ]
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

/// The batch's `∂L/∂γ`, `∂L/∂β` of one BatchNorm layer: the chunks' sums added in chunk order.
fn reduce_bn_grads<T: Float, const C: usize>(
    chunks: &[Chunk<T>],
    pick: impl Fn(&Params<T>) -> &BatchNorm<T, C>,
) -> BnStats<T, C> {
    let (mut g, mut b) = (SVector::<T, C>::zeros(), SVector::<T, C>::zeros());
    for ch in chunks {
        let p = pick(&ch.grad);
        g += p.weight;
        b += p.bias;
    }
    (g, b)
}

/// The batch statistics of one block's BatchNorm over a batch of `n` images (the chunks'
/// sums added in chunk order), and the running-statistics update.
fn bn_stats_step<T: Float, const C: usize, const H: usize, const W: usize>(
    chunks: &[Chunk<T>],
    n: usize,
    pick: impl Fn(&Chunk<T>) -> &Block<T, C, H, W>,
    running: &mut Running<T, C>,
) -> BnStats<T, C> {
    let (mut s1, mut s2) = ([0.0; C], [0.0; C]);
    for ch in chunks {
        let s = &pick(ch).sums;
        for c in 0..C {
            s1[c] += s.s1[c];
            s2[c] += s.s2[c];
        }
    }
    let count = n * Block::<T, C, H, W>::PLANE;
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
    ///
    /// # Panics
    /// If no batch is loaded.
    pub fn forward(&mut self, ws: &mut Workspace<T>, mode: Mode) -> Outcome {
        let n = ws.n;
        assert!(n > 0, "Net::forward: no batch loaded");
        ws.mode = Some(mode);
        let p = &*self.params;
        match mode {
            Mode::Eval => {
                let b = &*self.buffers;
                crate::par::for_each_mut(ws.active(), 1, |c| {
                    c.dropout = false;
                    let col = &mut c.col;
                    // In eval mode each block's output is its `r`, normalised in place.
                    let (l1, l2) = ((&p.conv1, &p.bn1, &b.bn1), (&p.conv2, &p.bn2, &b.bn2));
                    let (l4, l5) = ((&p.conv4, &p.bn4, &b.bn4), (&p.conv5, &p.bn5, &b.bn5));
                    c.b1.forward_eval::<Conv1>(l1, c.x.view(), col);
                    c.b2.forward_eval::<Conv2>(l2, c.b1.r.view(), col);
                    c.c3.forward::<Conv3>(&p.conv3, c.b2.r.view(), col);
                    c.b4.forward_eval::<Conv4>(l4, c.c3.p.view(), col);
                    c.b5.forward_eval::<Conv5>(l5, c.b4.r.view(), col);
                    c.c6.forward::<Conv6>(&p.conv6, c.b5.r.view(), col);
                    c.head_forward(p);
                });
            }
            Mode::Train { dropout } => {
                let keep = keep_scale::<T>(DROPOUT_P);
                let b = &mut *self.buffers;
                crate::par::for_each_mut(ws.active(), 1, |c| {
                    c.dropout = dropout.is_some();
                    if let Some(key) = dropout {
                        c.draw_masks(key);
                    }
                    c.b1.conv_relu_sums::<Conv1>(&p.conv1, c.x.view(), &mut c.col);
                });
                let st1 = bn_stats_step(ws.active(), n, |c| &c.b1, &mut b.bn1);
                crate::par::for_each_mut(ws.active(), 1, |c| {
                    c.b1.bn_dropout(&p.bn1, &st1, keep, c.dropout);
                    c.b2.conv_relu_sums::<Conv2>(&p.conv2, c.b1.d.view(), &mut c.col);
                });
                let st2 = bn_stats_step(ws.active(), n, |c| &c.b2, &mut b.bn2);
                crate::par::for_each_mut(ws.active(), 1, |c| {
                    c.b2.bn_dropout(&p.bn2, &st2, keep, c.dropout);
                    c.c3.forward::<Conv3>(&p.conv3, c.b2.d.view(), &mut c.col);
                    c.b4.conv_relu_sums::<Conv4>(&p.conv4, c.c3.p.view(), &mut c.col);
                });
                let st4 = bn_stats_step(ws.active(), n, |c| &c.b4, &mut b.bn4);
                crate::par::for_each_mut(ws.active(), 1, |c| {
                    c.b4.bn_dropout(&p.bn4, &st4, keep, c.dropout);
                    c.b5.conv_relu_sums::<Conv5>(&p.conv5, c.b4.d.view(), &mut c.col);
                });
                let st5 = bn_stats_step(ws.active(), n, |c| &c.b5, &mut b.bn5);
                crate::par::for_each_mut(ws.active(), 1, |c| {
                    c.b5.bn_dropout(&p.bn5, &st5, keep, c.dropout);
                    c.c6.forward::<Conv6>(&p.conv6, c.b5.d.view(), &mut c.col);
                    c.head_forward(p);
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
            let (g, col) = (&mut *c.grad, &mut c.col);
            let labels = &c.labels[..c.n];
            c.head
                .backward(p, g, labels, n, c.c6.p.view(), c.c6.gp.view_mut(), col);
            c.c6.backward::<Conv6>(&mut g.conv6, c.b5.d.view(), col);
            conv_pass::backward_input::<T, Conv6>(&p.conv6, c.c6.gz.view(), c.b5.g.view_mut(), col);
            c.b5.params_backward(c.dropout, keep, &st.bn5, &mut g.bn5);
        });
        let d5 = reduce_bn_grads(ws.active(), |g| &g.bn5);
        crate::par::for_each_mut(ws.active(), 1, |c| {
            let (g, col) = (&mut *c.grad, &mut c.col);
            let (bn, conv) = ((&p.bn5, &st.bn5), (&p.conv5, &mut g.conv5));
            let dx = Some(c.b4.g.view_mut());
            c.b5.backward::<Conv5>(bn, &d5, n, conv, c.b4.d.view(), dx, col);
            c.b4.params_backward(c.dropout, keep, &st.bn4, &mut g.bn4);
        });
        let d4 = reduce_bn_grads(ws.active(), |g| &g.bn4);
        crate::par::for_each_mut(ws.active(), 1, |c| {
            let (g, col) = (&mut *c.grad, &mut c.col);
            let (bn, conv) = ((&p.bn4, &st.bn4), (&p.conv4, &mut g.conv4));
            let dx = Some(c.c3.gp.view_mut());
            c.b4.backward::<Conv4>(bn, &d4, n, conv, c.c3.p.view(), dx, col);
            c.c3.backward::<Conv3>(&mut g.conv3, c.b2.d.view(), col);
            conv_pass::backward_input::<T, Conv3>(&p.conv3, c.c3.gz.view(), c.b2.g.view_mut(), col);
            c.b2.params_backward(c.dropout, keep, &st.bn2, &mut g.bn2);
        });
        let d2 = reduce_bn_grads(ws.active(), |g| &g.bn2);
        crate::par::for_each_mut(ws.active(), 1, |c| {
            let (g, col) = (&mut *c.grad, &mut c.col);
            let (bn, conv) = ((&p.bn2, &st.bn2), (&p.conv2, &mut g.conv2));
            let dx = Some(c.b1.g.view_mut());
            c.b2.backward::<Conv2>(bn, &d2, n, conv, c.b1.d.view(), dx, col);
            c.b1.params_backward(c.dropout, keep, &st.bn1, &mut g.bn1);
        });
        let d1 = reduce_bn_grads(ws.active(), |g| &g.bn1);
        crate::par::for_each_mut(ws.active(), 1, |c| {
            let (g, col) = (&mut *c.grad, &mut c.col);
            let (bn, conv) = ((&p.bn1, &st.bn1), (&p.conv1, &mut g.conv1));
            c.b1.backward::<Conv1>(bn, &d1, n, conv, c.x.view(), None, col);
        });
        grads.fill_zero();
        for c in ws.active().iter() {
            grads.add_assign(&c.grad);
        }
    }
}
