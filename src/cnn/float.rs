//! The float type the network is generic over: `f32` trains, `f64` checks gradients, and both
//! run the very same layer code. Matrix products go through [`Float::gemm`], which dispatches
//! to `matrixmultiply`'s `sgemm`/`dgemm` (runtime-detected AVX2/FMA kernels).
use nalgebra::Scalar;

/// A real scalar the CNN can run in.
pub trait Float:
    num_traits::Float
    + num_traits::FromPrimitive
    + Scalar
    + Default
    + Send
    + Sync
    + std::ops::AddAssign
    + std::ops::SubAssign
    + std::ops::MulAssign
    + std::iter::Sum
    + std::fmt::Display
    + 'static
{
    /// Name used in safetensors headers (`F32`/`F64`).
    const DTYPE: &'static str;

    /// `c ← α·a·b + β·c` for an `m×k` matrix `a`, a `k×n` matrix `b` and an `m×n` matrix `c`,
    /// each addressed as `base[row·rs + col·cs]`.
    ///
    /// # Panics
    /// If any addressed element would fall outside its slice (checked before any work).
    #[allow(clippy::too_many_arguments)]
    fn gemm(
        m: usize,
        k: usize,
        n: usize,
        alpha: Self,
        a: &[Self],
        a_strides: (usize, usize),
        b: &[Self],
        b_strides: (usize, usize),
        beta: Self,
        c: &mut [Self],
        c_strides: (usize, usize),
    );

    /// Converts from f64 (constants, initial values).
    fn c(x: f64) -> Self {
        <Self as num_traits::FromPrimitive>::from_f64(x).unwrap_or_else(Self::nan)
    }

    /// Converts to f64 (reporting).
    fn f64(self) -> f64 {
        num_traits::ToPrimitive::to_f64(&self).unwrap_or(f64::NAN)
    }
}

fn last_index(rows: usize, cols: usize, rs: usize, cs: usize) -> usize {
    if rows == 0 || cols == 0 {
        0
    } else {
        (rows - 1) * rs + (cols - 1) * cs + 1
    }
}

macro_rules! impl_float {
    ($t:ty, $name:literal, $kernel:path) => {
        impl Float for $t {
            const DTYPE: &'static str = $name;
            fn gemm(
                m: usize,
                k: usize,
                n: usize,
                alpha: Self,
                a: &[Self],
                (rsa, csa): (usize, usize),
                b: &[Self],
                (rsb, csb): (usize, usize),
                beta: Self,
                c: &mut [Self],
                (rsc, csc): (usize, usize),
            ) {
                assert!(
                    last_index(m, k, rsa, csa) <= a.len(),
                    "gemm: a is too short"
                );
                assert!(
                    last_index(k, n, rsb, csb) <= b.len(),
                    "gemm: b is too short"
                );
                assert!(
                    last_index(m, n, rsc, csc) <= c.len(),
                    "gemm: c is too short"
                );
                // SAFETY: every index touched is < len, checked above; the three slices are
                // distinct borrows (c is &mut), so c does not alias a or b.
                unsafe {
                    $kernel(
                        m,
                        k,
                        n,
                        alpha,
                        a.as_ptr(),
                        rsa as isize,
                        csa as isize,
                        b.as_ptr(),
                        rsb as isize,
                        csb as isize,
                        beta,
                        c.as_mut_ptr(),
                        rsc as isize,
                        csc as isize,
                    )
                }
            }
        }
    };
}

impl_float!(f32, "F32", matrixmultiply::sgemm);
impl_float!(f64, "F64", matrixmultiply::dgemm);
