//! The network's trainable parameters and buffers, with PyTorch's `state_dict` names, shapes
//! and default initialisation.
use super::batchnorm::{BatchNorm, Running};
use super::conv::Conv;
use super::float::Float;
use super::linear::Linear;
use rand::{Rng, SeedableRng};

/// Every trainable tensor of the source network. Also used for gradients and momentum.
#[derive(Clone, Debug, PartialEq)]
pub struct Params<T: Float> {
    /// `conv1 = Conv2d(1, 16, 3)`.
    pub conv1: Conv<T, 1, 16, 3, 9>,
    /// `bn1 = BatchNorm2d(16)`.
    pub bn1: BatchNorm<T, 16>,
    /// `conv2 = Conv2d(16, 32, 3)`.
    pub conv2: Conv<T, 16, 32, 3, 144>,
    /// `bn2 = BatchNorm2d(32)`.
    pub bn2: BatchNorm<T, 32>,
    /// `conv3 = Conv2d(32, 8, 1)`.
    pub conv3: Conv<T, 32, 8, 1, 32>,
    /// `conv4 = Conv2d(8, 16, 3)`.
    pub conv4: Conv<T, 8, 16, 3, 72>,
    /// `bn4 = BatchNorm2d(16)`.
    pub bn4: BatchNorm<T, 16>,
    /// `conv5 = Conv2d(16, 32, 3)`.
    pub conv5: Conv<T, 16, 32, 3, 144>,
    /// `bn5 = BatchNorm2d(32)`.
    pub bn5: BatchNorm<T, 32>,
    /// `conv6 = Conv2d(32, 16, 1)`.
    pub conv6: Conv<T, 32, 16, 1, 32>,
    /// `conv7 = Conv2d(16, 32, 3)`.
    pub conv7: Conv<T, 16, 32, 3, 144>,
    /// `fc1 = Linear(32, 10)`.
    pub fc1: Linear<T, 32, 10>,
}

/// BatchNorm running statistics (PyTorch buffers).
#[derive(Clone, Debug, PartialEq)]
pub struct Buffers<T: Float> {
    /// `bn1`'s running statistics.
    pub bn1: Running<T, 16>,
    /// `bn2`'s running statistics.
    pub bn2: Running<T, 32>,
    /// `bn4`'s running statistics.
    pub bn4: Running<T, 16>,
    /// `bn5`'s running statistics.
    pub bn5: Running<T, 32>,
}

/// Trainable parameter count, summed from each layer's own count.
pub const PARAM_COUNT: usize = Conv::<f32, 1, 16, 3, 9>::PARAMS
    + BatchNorm::<f32, 16>::PARAMS
    + Conv::<f32, 16, 32, 3, 144>::PARAMS
    + BatchNorm::<f32, 32>::PARAMS
    + Conv::<f32, 32, 8, 1, 32>::PARAMS
    + Conv::<f32, 8, 16, 3, 72>::PARAMS
    + BatchNorm::<f32, 16>::PARAMS
    + Conv::<f32, 16, 32, 3, 144>::PARAMS
    + BatchNorm::<f32, 32>::PARAMS
    + Conv::<f32, 32, 16, 1, 32>::PARAMS
    + Conv::<f32, 16, 32, 3, 144>::PARAMS
    + Linear::<f32, 32, 10>::PARAMS;

const _: () = assert!(
    PARAM_COUNT == 16_562,
    "the source network has 16,562 parameters"
);

/// A named tensor: PyTorch name, PyTorch shape, row-major data.
pub struct Tensor<'a, T> {
    /// The `state_dict` name, e.g. `conv1.weight`.
    pub name: &'static str,
    /// PyTorch's shape.
    pub shape: Vec<usize>,
    /// The values, row-major.
    pub data: &'a [T],
}

/// A named mutable tensor.
pub struct TensorMut<'a, T> {
    /// The `state_dict` name, e.g. `conv1.weight`.
    pub name: &'static str,
    /// PyTorch's shape.
    pub shape: Vec<usize>,
    /// The values, row-major.
    pub data: &'a mut [T],
}

/// The 24 parameter tensors' data in `state_dict` order, as an array (no allocation): each
/// layer's weight, then its bias, the layers in the order of [`Params`]' fields.
macro_rules! param_slices {
    ($self:ident, $as:ident) => {
        param_slices!($self, $as, conv1 bn1 conv2 bn2 conv3 conv4 bn4 conv5 bn5 conv6 conv7 fc1)
    };
    ($self:ident, $as:ident, $($layer:ident)*) => {{
        let p = $self;
        [$(p.$layer.weight.$as(), p.$layer.bias.$as()),*]
    }};
}

/// The `(name, shape)` rows of a layer's two tensors, `<layer>.weight` with the given shape
/// and `<layer>.bias`, whose one dimension is the weight's first (the layer's outputs).
macro_rules! weight_and_bias {
    ($($layer:ident [$out:literal $(, $dim:literal)*],)*) => {
        [$(
            (concat!(stringify!($layer), ".weight"), &[$out $(, $dim)*]),
            (concat!(stringify!($layer), ".bias"), &[$out]),
        )*]
    };
}

/// Name and PyTorch shape of each parameter tensor, in `state_dict` order (the order of
/// [`Params::slices`]), from each layer's weight shape.
const TENSORS: [(&str, &[usize]); 24] = weight_and_bias![
    conv1[16, 1, 3, 3],
    bn1[16],
    conv2[32, 16, 3, 3],
    bn2[32],
    conv3[8, 32, 1, 1],
    conv4[16, 8, 3, 3],
    bn4[16],
    conv5[32, 16, 3, 3],
    bn5[32],
    conv6[16, 32, 1, 1],
    conv7[32, 16, 3, 3],
    fc1[10, 32],
];

impl<T: Float> Params<T> {
    /// All zeros (gradient accumulators, momentum buffers).
    pub fn zeros() -> Self {
        Params {
            conv1: Conv::zeros(),
            bn1: BatchNorm::zeros(),
            conv2: Conv::zeros(),
            bn2: BatchNorm::zeros(),
            conv3: Conv::zeros(),
            conv4: Conv::zeros(),
            bn4: BatchNorm::zeros(),
            conv5: Conv::zeros(),
            bn5: BatchNorm::zeros(),
            conv6: Conv::zeros(),
            conv7: Conv::zeros(),
            fc1: Linear::zeros(),
        }
    }

    /// PyTorch's default initialisation, drawn from ChaCha8 seeded with `seed`:
    /// conv and linear weights and biases `U(−1/√fan_in, 1/√fan_in)` (what
    /// `kaiming_uniform_(a=√5)` reduces to), BatchNorm γ = 1 and β = 0. Layers are drawn in
    /// forward order, weight before bias.
    pub fn init(seed: u64) -> Self {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        let mut p = Self::zeros();
        for t in p.tensors_mut() {
            if t.name.starts_with("bn") {
                let v = if t.name.ends_with("weight") {
                    T::one()
                } else {
                    T::zero()
                };
                t.data.fill(v);
                continue;
            }
            let fan_in: usize = match t.name {
                "fc1.weight" | "fc1.bias" => 32,
                n => fan_in_of_conv(n),
            };
            let bound = 1.0 / (fan_in as f64).sqrt();
            for v in t.data.iter_mut() {
                *v = T::c(rng.random_range(-bound..bound));
            }
        }
        p
    }

    /// The tensors in PyTorch `state_dict` order, with PyTorch shapes and row-major data.
    pub fn tensors(&self) -> Vec<Tensor<'_, T>> {
        named(self.slices(), |name, shape, data| Tensor {
            name,
            shape,
            data,
        })
    }

    /// Mutable access to the same tensors.
    pub fn tensors_mut(&mut self) -> Vec<TensorMut<'_, T>> {
        named(self.slices_mut(), |name, shape, data| TensorMut {
            name,
            shape,
            data,
        })
    }

    /// The data of the same tensors in the same order, without names or shapes: an array, so
    /// the training loop can visit every parameter without allocating.
    pub fn slices(&self) -> [&[T]; 24] {
        param_slices!(self, as_slice)
    }

    /// Mutable [`Params::slices`].
    pub fn slices_mut(&mut self) -> [&mut [T]; 24] {
        param_slices!(self, as_mut_slice)
    }

    /// `self += other`, tensor by tensor, in a fixed order.
    pub fn add_assign(&mut self, other: &Params<T>) {
        for (a, b) in self.slices_mut().into_iter().zip(other.slices()) {
            for (x, &y) in a.iter_mut().zip(b) {
                *x += y;
            }
        }
    }

    /// Sets every entry to zero.
    pub fn fill_zero(&mut self) {
        for t in self.slices_mut() {
            t.fill(T::zero());
        }
    }

    /// Converts to another float type.
    pub fn cast<U: Float>(&self) -> Params<U> {
        let mut out = Params::<U>::zeros();
        for (d, s) in out.slices_mut().into_iter().zip(self.slices()) {
            d.iter_mut().zip(s).for_each(|(x, &y)| *x = U::c(y.f64()));
        }
        out
    }

    /// Euclidean norm of every tensor, by name.
    pub fn norms(&self) -> Vec<(&'static str, f64)> {
        self.tensors()
            .iter()
            .map(|t| {
                (
                    t.name,
                    t.data.iter().map(|v| v.f64() * v.f64()).sum::<f64>().sqrt(),
                )
            })
            .collect()
    }
}

/// Each of the 24 parameter tensors' data (in the order of [`TENSORS`]) made into a named
/// tensor by `make(name, shape, data)`.
fn named<D, R>(data: [D; 24], make: impl Fn(&'static str, Vec<usize>, D) -> R) -> Vec<R> {
    TENSORS
        .iter()
        .zip(data)
        .map(|(&(name, shape), data)| make(name, shape.to_vec(), data))
        .collect()
}

fn fan_in_of_conv(name: &str) -> usize {
    match name.split('.').next() {
        Some("conv1") => 9,
        Some("conv2") | Some("conv5") | Some("conv7") => 144,
        Some("conv3") | Some("conv6") => 32,
        Some("conv4") => 72,
        _ => 1,
    }
}

impl<T: Float> Buffers<T> {
    /// PyTorch's initial values: running mean 0, running variance 1, no batches tracked.
    pub fn new() -> Self {
        Buffers {
            bn1: Running::new(),
            bn2: Running::new(),
            bn4: Running::new(),
            bn5: Running::new(),
        }
    }

    /// `(name prefix, mean, var, num_batches_tracked)` in state_dict order.
    #[allow(clippy::type_complexity)]
    pub fn tensors(&self) -> Vec<(&'static str, &[T], &[T], i64)> {
        let Buffers { bn1, bn2, bn4, bn5 } = self;
        vec![
            running("bn1", bn1),
            running("bn2", bn2),
            running("bn4", bn4),
            running("bn5", bn5),
        ]
    }

    /// Mutable `(name prefix, mean, var, num_batches_tracked)`.
    #[allow(clippy::type_complexity)]
    pub fn tensors_mut(&mut self) -> Vec<(&'static str, &mut [T], &mut [T], &mut i64)> {
        let Buffers { bn1, bn2, bn4, bn5 } = self;
        vec![
            running_mut("bn1", bn1),
            running_mut("bn2", bn2),
            running_mut("bn4", bn4),
            running_mut("bn5", bn5),
        ]
    }

    /// Converts to another float type.
    pub fn cast<U: Float>(&self) -> Buffers<U> {
        let mut out = Buffers::<U>::new();
        for (d, s) in out.tensors_mut().into_iter().zip(self.tensors()) {
            for (x, &y) in d.1.iter_mut().zip(s.1) {
                *x = U::c(y.f64());
            }
            for (x, &y) in d.2.iter_mut().zip(s.2) {
                *x = U::c(y.f64());
            }
            *d.3 = s.3;
        }
        out
    }
}

impl<T: Float> Default for Buffers<T> {
    fn default() -> Self {
        Self::new()
    }
}

/// One entry of [`Buffers::tensors`]: `(name, mean, var, num_batches_tracked)`.
fn running<'a, T: Float, const C: usize>(
    name: &'static str,
    r: &'a Running<T, C>,
) -> (&'static str, &'a [T], &'a [T], i64) {
    (
        name,
        r.mean.as_slice(),
        r.var.as_slice(),
        r.num_batches_tracked,
    )
}

/// One entry of [`Buffers::tensors_mut`].
fn running_mut<'a, T: Float, const C: usize>(
    name: &'static str,
    r: &'a mut Running<T, C>,
) -> (&'static str, &'a mut [T], &'a mut [T], &'a mut i64) {
    let Running {
        mean,
        var,
        num_batches_tracked,
    } = r;
    (
        name,
        mean.as_mut_slice(),
        var.as_mut_slice(),
        num_batches_tracked,
    )
}
