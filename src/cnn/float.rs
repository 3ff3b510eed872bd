//! The float type the network is generic over: `f32` trains, `f64` checks gradients, and both
//! run the very same layer code. Matrix products go through [`Float::gemm`], which dispatches
//! to `matrixmultiply`'s `sgemm`/`dgemm` (runtime-detected AVX2/FMA kernels).
//!
//! Code that has an f32-only fast path (the AVX-512 convolutions of [`crate::kernels::conv`])
//! asks the float type for its data as `f32` through [`Float::as_f32`] and
//! [`Float::as_f32_mut`]: `Some` for `f32`, `None` for `f64`. That is the whole of the f32
//! specialisation; there are no type-id checks, downcasts or pointer casts.
use nalgebra::Scalar;

/// The signature of `matrixmultiply`'s `sgemm` and `dgemm`: `m, k, n, α, a, a's row and column
/// strides, b and its strides, β, c and its strides`, on raw pointers.
pub type GemmKernel<T> = unsafe fn(
    usize,
    usize,
    usize,
    T,
    *const T,
    isize,
    isize,
    *const T,
    isize,
    isize,
    T,
    *mut T,
    isize,
    isize,
);

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

    /// `matrixmultiply`'s kernel for this type (`sgemm` or `dgemm`), which [`Float::gemm`]
    /// calls once it has checked the bounds.
    const GEMM_KERNEL: GemmKernel<Self>;

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
    ) {
        let (rsa, csa) = checked_strides("a", m, k, a_strides, a.len());
        let (rsb, csb) = checked_strides("b", k, n, b_strides, b.len());
        let (rsc, csc) = checked_strides("c", m, n, c_strides, c.len());
        // SAFETY: every index touched is < len, checked above without overflow, and the
        // strides are the same numbers as isize; the three slices are distinct borrows (c is
        // &mut), so c does not alias a or b.
        unsafe {
            Self::GEMM_KERNEL(
                m,
                k,
                n,
                alpha,
                a.as_ptr(),
                rsa,
                csa,
                b.as_ptr(),
                rsb,
                csb,
                beta,
                c.as_mut_ptr(),
                rsc,
                csc,
            )
        }
    }

    /// The slice as `f32` when `Self` is `f32` (the very same slice), `None` otherwise.
    fn as_f32(s: &[Self]) -> Option<&[f32]>;

    /// The slice as `f32` when `Self` is `f32` (the very same slice), `None` otherwise.
    fn as_f32_mut(s: &mut [Self]) -> Option<&mut [f32]>;

    /// Converts from f64 (constants, initial values).
    fn c(x: f64) -> Self {
        <Self as num_traits::FromPrimitive>::from_f64(x).unwrap_or_else(Self::nan)
    }

    /// Converts to f64 (reporting).
    fn f64(self) -> f64 {
        num_traits::ToPrimitive::to_f64(&self).unwrap_or(f64::NAN)
    }
}

/// One past the largest index of a `rows×cols` matrix at strides `(rs, cs)`, i.e.
/// `(rows−1)·rs + (cols−1)·cs + 1`, or 0 when it has no element; `None` when that does not fit
/// in a `usize`.
fn extent(rows: usize, cols: usize, rs: usize, cs: usize) -> Option<usize> {
    if rows == 0 || cols == 0 {
        return Some(0);
    }
    (rows - 1)
        .checked_mul(rs)?
        .checked_add((cols - 1).checked_mul(cs)?)?
        .checked_add(1)
}

/// Checks that a `rows×cols` matrix at strides `strides` lies inside a slice of `len`
/// elements, and returns the strides as the `isize` that `matrixmultiply` takes.
///
/// # Panics
/// If an addressed element would fall outside the slice (overflow included), or a stride
/// exceeds `isize::MAX`.
fn checked_strides(
    what: &str,
    rows: usize,
    cols: usize,
    (rs, cs): (usize, usize),
    len: usize,
) -> (isize, isize) {
    match extent(rows, cols, rs, cs) {
        Some(e) if e <= len => {}
        _ => panic!("gemm: {what} is too short"),
    }
    match (isize::try_from(rs), isize::try_from(cs)) {
        (Ok(rs), Ok(cs)) => (rs, cs),
        _ => panic!("gemm: a stride of {what} exceeds isize::MAX"),
    }
}

macro_rules! impl_float {
    ($t:ty, $name:literal, $kernel:path, |$s:ident| $as_f32:expr) => {
        impl Float for $t {
            const DTYPE: &'static str = $name;
            const GEMM_KERNEL: GemmKernel<Self> = $kernel;
            fn as_f32($s: &[Self]) -> Option<&[f32]> {
                $as_f32
            }
            fn as_f32_mut($s: &mut [Self]) -> Option<&mut [f32]> {
                $as_f32
            }
        }
    };
}

impl_float!(f32, "F32", matrixmultiply::sgemm, |s| Some(s));
impl_float!(f64, "F64", matrixmultiply::dgemm, |_s| None);

#[cfg(test)]
mod tests {
    use super::{Float, extent};

    #[test]
    fn extent_is_one_past_the_last_index_and_none_on_overflow() {
        assert_eq!(extent(3, 4, 4, 1), Some(12));
        assert_eq!(extent(3, 4, 1, 3), Some(12));
        assert_eq!(extent(0, 4, 4, 1), Some(0));
        assert_eq!(extent(4, 0, 4, 1), Some(0));
        assert_eq!(extent(1, 1, usize::MAX, usize::MAX), Some(1));
        // (2−1)·MAX + 0 + 1 overflows in the last add, (3−1)·MAX in the multiplication.
        assert_eq!(extent(2, 1, usize::MAX, 0), None);
        assert_eq!(extent(3, 1, usize::MAX, 0), None);
        assert_eq!(extent(2, 2, usize::MAX / 2, usize::MAX / 2 + 1), None);
    }

    #[test]
    fn gemm_computes_a_small_product() {
        // [1 2; 3 4]·[5 6; 7 8] = [19 22; 43 50], row-major.
        let (a, b) = ([1.0f32, 2.0, 3.0, 4.0], [5.0f32, 6.0, 7.0, 8.0]);
        let mut c = [0.0f32; 4];
        f32::gemm(2, 2, 2, 1.0, &a, (2, 1), &b, (2, 1), 0.0, &mut c, (2, 1));
        assert_eq!(c, [19.0, 22.0, 43.0, 50.0]);
    }

    /// `c ← a·b` with a zero `2×2` matrix `b`, for an `m×2` matrix `a` at `a_strides` and `c`
    /// at `(2, 1)`: only the bounds checks are of interest.
    fn gemm_with_zero_b<T: Float>(m: usize, a: &[T], a_strides: (usize, usize), c: &mut [T]) {
        let b = [T::zero(); 4];
        T::gemm(
            m,
            2,
            2,
            T::one(),
            a,
            a_strides,
            &b,
            (2, 1),
            T::zero(),
            c,
            (2, 1),
        );
    }

    #[test]
    #[should_panic(expected = "gemm: a is too short")]
    fn gemm_panics_when_a_stride_wraps_around() {
        // In wrapping arithmetic (2−1)·(MAX/2 + 1) + (2−1)·(MAX/2 + 1) + 1 = 1 ≤ 4: the old
        // unchecked bound would have let this through to the kernel.
        let big = usize::MAX / 2 + 1;
        gemm_with_zero_b(2, &[0.0f64; 4], (big, big), &mut [0.0; 4]);
    }

    #[test]
    #[should_panic(expected = "gemm: c is too short")]
    fn gemm_panics_when_c_is_short() {
        gemm_with_zero_b(2, &[0.0f32; 4], (2, 1), &mut [0.0; 3]);
    }

    #[test]
    #[should_panic(expected = "exceeds isize::MAX")]
    fn gemm_panics_on_a_stride_beyond_isize() {
        // One row, so the bound holds, but the stride cannot be passed on as an isize.
        gemm_with_zero_b(1, &[0.0f32; 2], (usize::MAX, 1), &mut [0.0; 2]);
    }

    #[test]
    fn only_f32_hands_out_its_data_as_f32() {
        let mut x = [1.5f32, 2.5];
        assert_eq!(f32::as_f32(&x), Some(&[1.5f32, 2.5][..]));
        assert!(f32::as_f32_mut(&mut x).is_some());
        let mut y = [1.5f64, 2.5];
        assert!(f64::as_f32(&y).is_none());
        assert!(f64::as_f32_mut(&mut y).is_none());
    }
}
