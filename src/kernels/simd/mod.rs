//! The portable SIMD layer of every kernel in [`super`]: a 16-lane f32 vector (and eight u64
//! lanes for the dropout lockstep's generator) and the handful of operations the kernels need,
//! implemented once per instruction set, one file each — AVX-512 as one `__m512`
//! (`avx512.rs`, with its shuffle trees), AVX2+FMA as two `__m256` (`avx2.rs`), NEON as four
//! `float32x4_t` (`neon.rs`), and plain Rust as `[f32; 16]` (`scalar.rs`) — so that the kernels
//! are written once, generically over [`Simd`].
//!
//! # Dispatch
//! A value of a [`Simd`] type is a token: it exists only when the CPU has the features its
//! methods use (only [`super::cpu`] makes the tokens they are built from). [`Isa::vectorize`]
//! runs a [`Kernel`] with the right token inside a function compiled for the instruction set
//! (`#[target_feature]`); the kernels and the methods here are `#[inline(always)]`, so the whole
//! kernel is compiled for that instruction set.
//!
//! # Same bits on every instruction set
//! Every operation is lane-wise and rounds each lane exactly once (`fma` is fused everywhere,
//! `f32::mul_add` in the scalar build); the two cross-lane sums, [`Simd::reduce16`] and
//! [`Simd::reduce_add`], follow the AVX-512 build's fixed trees in every build. The kernels
//! therefore give the same bits on every instruction set; `tests/cnn_conv_simd.rs` checks it.
//!
//! Masks are `u16`, bit `i` for lane `i`. The non-AVX-512 builds take a fast path for the
//! full mask and go through a stack array for a partial one (only the last wide vector of an
//! image has one), except AVX2's masked load (`vmaskmovps`), its masked store (whole halves,
//! and the lowest lanes of a half in pieces of 4, 2 and 1: AMD's `vmaskmovps` to memory is
//! slow) and its packed store into a 16-float window ([`Simd::store_compressed_window`]:
//! `vpermps` per half).
use super::cpu::Isa;

#[cfg(target_arch = "x86_64")]
mod avx2;
#[cfg(target_arch = "x86_64")]
mod avx512;
#[cfg(target_arch = "aarch64")]
mod neon;
mod scalar;

#[cfg(target_arch = "x86_64")]
pub use avx2::Avx2Simd;
#[cfg(target_arch = "x86_64")]
pub use avx512::Avx512Simd;
#[cfg(target_arch = "aarch64")]
pub use neon::NeonSimd;
pub use scalar::Scalar;

/// The lane-wise u64 operations of [`Simd`] that are one integer intrinsic per register, for
/// an x86 build's `unsafe impl Simd` (whose token proves the intrinsics' features): the
/// build's `per_register(a, b, f)` applies `f` to each register of its `Self::U` in turn
/// (AVX-512's `__m512i` is one, AVX2's `[__m256i; 2]` two). The shifts take their count in the
/// low 64 bits of an `__m128i`.
#[cfg(target_arch = "x86_64")]
macro_rules! x86_u64_ops {
    (
        binary: $($name:ident = $op:ident),*;
        shift: $($shift:ident = $sop:ident),*;
    ) => {
        $(
            #[inline(always)]
            fn $name(self, a: Self::U, b: Self::U) -> Self::U {
                // SAFETY: the token proves the intrinsic's instruction set.
                per_register(a, b, |a, b| unsafe { $op(a, b) })
            }
        )*
        $(
            #[inline(always)]
            fn $shift(self, a: Self::U, n: u32) -> Self::U {
                // SAFETY: the token proves the intrinsic's instruction set.
                per_register(a, a, |a, _| unsafe { $sop(a, _mm_set_epi64x(0, i64::from(n))) })
            }
        )*
    };
}
#[cfg(target_arch = "x86_64")]
use x86_u64_ops;

/// The integer vector of a build without 512-bit integer registers (scalar, NEON): the
/// array itself, on which [`Simd`]'s default integer operations work lane by lane.
macro_rules! u64_as_array {
    () => {
        type U = [u64; U64_LANES];
        #[inline(always)]
        fn u64_from_array(self, a: [u64; U64_LANES]) -> Self::U {
            a
        }
        #[inline(always)]
        fn u64_to_array(self, v: Self::U) -> [u64; U64_LANES] {
            v
        }
    };
}
use u64_as_array;

/// Floats per vector.
pub const LANES: usize = 16;

/// 64-bit integers per integer vector ([`Simd::U`]), the same 512 bits.
pub const U64_LANES: usize = 8;

/// A 16-lane f32 vector type and its operations, for one instruction set.
///
/// # Safety
/// Implementors may be constructed only when the CPU has every feature their methods use.
pub unsafe trait Simd: Copy {
    /// Sixteen f32 lanes.
    type V: Copy;
    /// Whether the instruction set has 32 registers of one vector each (AVX-512): the kernels
    /// then use their wide register tiles; otherwise tiles of at most 6 vectors.
    const WIDE: bool;

    /// Eight u64 lanes (the dropout lockstep's generator state). The operations on them are
    /// exact, so every instruction set gives the same bits without further care.
    type U: Copy;

    /// An array as an integer vector.
    fn u64_from_array(self, a: [u64; U64_LANES]) -> Self::U;
    /// The integer lanes as an array.
    fn u64_to_array(self, v: Self::U) -> [u64; U64_LANES];
    /// All integer lanes `x`.
    #[inline(always)]
    fn u64_splat(self, x: u64) -> Self::U {
        self.u64_from_array([x; U64_LANES])
    }
    /// `a + b` per lane, wrapping.
    #[inline(always)]
    fn u64_add(self, a: Self::U, b: Self::U) -> Self::U {
        self.u64_zip(a, b, u64::wrapping_add)
    }
    /// `a ^ b` per lane.
    #[inline(always)]
    fn u64_xor(self, a: Self::U, b: Self::U) -> Self::U {
        self.u64_zip(a, b, |a, b| a ^ b)
    }
    /// `a & b` per lane.
    #[inline(always)]
    fn u64_and(self, a: Self::U, b: Self::U) -> Self::U {
        self.u64_zip(a, b, |a, b| a & b)
    }
    /// `a | b` per lane.
    #[inline(always)]
    fn u64_or(self, a: Self::U, b: Self::U) -> Self::U {
        self.u64_zip(a, b, |a, b| a | b)
    }
    /// `a << n` per lane, `n < 64` (a constant at every call, so that it compiles to an
    /// immediate shift).
    #[inline(always)]
    fn u64_shl(self, a: Self::U, n: u32) -> Self::U {
        self.u64_zip(a, a, |a, _| a << n)
    }
    /// `a >> n` per lane (logical), `n < 64`, as [`Simd::u64_shl`].
    #[inline(always)]
    fn u64_shr(self, a: Self::U, n: u32) -> Self::U {
        self.u64_zip(a, a, |a, _| a >> n)
    }
    /// `a` rotated left by `n` per lane, `0 < n < 64`: two shifts and an `or`, which the
    /// compiler turns into one rotate where the instruction set has it (AVX-512's `vprolq`).
    #[inline(always)]
    fn u64_rotl(self, a: Self::U, n: u32) -> Self::U {
        self.u64_or(self.u64_shl(a, n), self.u64_shr(a, 64 - n))
    }
    /// Bit `l` set where lane `l` of `a` is below lane `l` of `b`; both below 2⁶³ in every
    /// lane (where the signed and the unsigned order agree: AVX2 compares signed).
    #[inline(always)]
    fn u64_lt_mask(self, a: Self::U, b: Self::U) -> u8 {
        let (a, b) = (self.u64_to_array(a), self.u64_to_array(b));
        let mut m = 0;
        for (l, (a, b)) in a.iter().zip(&b).enumerate() {
            m |= u8::from(a < b) << l;
        }
        m
    }
    /// `f` lane by lane, through arrays (the defaults of the integer operations).
    #[inline(always)]
    fn u64_zip(self, a: Self::U, b: Self::U, f: impl Fn(u64, u64) -> u64) -> Self::U {
        let (a, b) = (self.u64_to_array(a), self.u64_to_array(b));
        self.u64_from_array(std::array::from_fn(|l| f(a[l], b[l])))
    }

    /// All lanes 0.
    fn zero(self) -> Self::V;
    /// All lanes `x`.
    fn splat(self, x: f32) -> Self::V;
    /// `a + b`.
    fn add(self, a: Self::V, b: Self::V) -> Self::V;
    /// `a·b + c` with one rounding.
    fn fma(self, a: Self::V, b: Self::V, c: Self::V) -> Self::V;
    /// The lanes as an array (through [`Simd::store`]).
    #[inline(always)]
    fn to_array(self, v: Self::V) -> [f32; LANES] {
        let mut a = [0.0; LANES];
        // SAFETY: `Self` exists only on a CPU with its features; `a` is 16 floats.
        unsafe { self.store(a.as_mut_ptr(), v) };
        a
    }
    /// An array as a vector (through [`Simd::load`]).
    #[inline(always)]
    fn array_to_vec(self, a: [f32; LANES]) -> Self::V {
        // SAFETY: `Self` exists only on a CPU with its features; `a` is 16 floats.
        unsafe { self.load(a.as_ptr()) }
    }

    /// 16 floats from `p`.
    ///
    /// # Safety
    /// `p .. p+16` is readable.
    unsafe fn load(self, p: *const f32) -> Self::V;

    /// The lanes of `m` from `p`, 0 elsewhere.
    ///
    /// # Safety
    /// `p + i` is readable for every lane `i` in `m`; nothing else is read.
    #[inline(always)]
    unsafe fn load_masked(self, m: u16, p: *const f32) -> Self::V {
        if m == u16::MAX {
            // SAFETY: every lane is in the mask, so `p .. p+16` is readable.
            return unsafe { self.load(p) };
        }
        let mut a = [0.0f32; LANES];
        for (i, x) in a.iter_mut().enumerate() {
            if m >> i & 1 != 0 {
                // SAFETY: lane `i` is in the mask.
                *x = unsafe { *p.add(i) };
            }
        }
        self.array_to_vec(a)
    }

    /// Lanes 0–7 from `lo .. lo+8` and lanes 8–15 from `hi .. hi+8` (a vector of 16
    /// consecutive outputs that spans two rows of a wider input; see the forward pass).
    ///
    /// # Safety
    /// `lo .. lo+8` and `hi .. hi+8` are readable.
    #[inline(always)]
    unsafe fn load_halves(self, lo: *const f32, hi: *const f32) -> Self::V {
        let mut a = [0.0f32; LANES];
        for i in 0..LANES / 2 {
            // SAFETY: `i < 8`: inside the two readable runs (the caller).
            unsafe {
                a[i] = *lo.add(i);
                a[LANES / 2 + i] = *hi.add(i);
            }
        }
        self.array_to_vec(a)
    }

    /// A hint to bring the cache line holding `p` into the L1 cache; it never faults, so `p`
    /// may point anywhere. Nothing in the scalar and NEON builds.
    #[inline(always)]
    fn prefetch(self, p: *const f32) {
        let _ = p;
    }

    /// Writes the 16 lanes to `p`.
    ///
    /// # Safety
    /// `p .. p+16` is writable.
    unsafe fn store(self, p: *mut f32, v: Self::V);

    /// Writes the lanes of `m` to `p + lane`.
    ///
    /// # Safety
    /// `p + i` is writable for every lane `i` in `m`; nothing else is written.
    #[inline(always)]
    unsafe fn store_masked(self, p: *mut f32, m: u16, v: Self::V) {
        if m == u16::MAX {
            // SAFETY: every lane is in the mask, so `p .. p+16` is writable.
            return unsafe { self.store(p, v) };
        }
        let a = self.to_array(v);
        for (i, &x) in a.iter().enumerate() {
            if m >> i & 1 != 0 {
                // SAFETY: lane `i` is in the mask.
                unsafe { *p.add(i) = x };
            }
        }
    }

    /// Writes the lanes of `m`, in order, packed to `p .. p + popcount(m)`.
    ///
    /// # Safety
    /// `p .. p + popcount(m)` is writable.
    #[inline(always)]
    unsafe fn store_compressed(self, p: *mut f32, m: u16, v: Self::V) {
        if m == u16::MAX {
            // SAFETY: `popcount(m) = 16`, so `p .. p+16` is writable.
            return unsafe { self.store(p, v) };
        }
        let a = self.to_array(v);
        let mut j = 0;
        for (i, &x) in a.iter().enumerate() {
            if m >> i & 1 != 0 {
                // SAFETY: `j < popcount(m)`.
                unsafe { *p.add(j) = x };
                j += 1;
            }
        }
    }

    /// [`Simd::store_compressed`] into a 16-float window: the lanes of `m` are written packed
    /// to `p .. p + popcount(m)`, and `p + popcount(m) .. p + 16` are left holding unspecified
    /// values (the AVX2 build stores whole halves there, rather than lane by lane).
    ///
    /// # Safety
    /// `p .. p+16` is writable, and the caller overwrites (or does not need) what was there
    /// past `p + popcount(m)`.
    #[inline(always)]
    unsafe fn store_compressed_window(self, p: *mut f32, m: u16, v: Self::V) {
        // SAFETY: `p .. p + popcount(m)` is writable (the caller).
        unsafe { self.store_compressed(p, m, v) }
    }

    /// `r[i] = Σ_lanes a[i]`, each sum in the fixed order of the AVX-512 build's tree
    /// ([`hsum16_tree`]).
    #[inline(always)]
    fn reduce16(self, a: [Self::V; 16]) -> Self::V {
        let mut r = [0.0; LANES];
        for (r, &a) in r.iter_mut().zip(&a) {
            *r = hsum16_tree(self.to_array(a));
        }
        self.array_to_vec(r)
    }

    /// `Σ_lanes v` in the order of `_mm512_reduce_add_ps` ([`hsum16_halves`]).
    #[inline(always)]
    fn reduce_add(self, v: Self::V) -> f32 {
        hsum16_halves(self.to_array(v))
    }

    /// The 16×16 transpose: `r[j]` lane `i` = `a[i]` lane `j`.
    #[inline(always)]
    fn transpose16(self, a: [Self::V; 16]) -> [Self::V; 16] {
        let mut m = [[0.0; LANES]; 16];
        for (i, row) in a.iter().enumerate() {
            for (j, &x) in self.to_array(*row).iter().enumerate() {
                m[j][i] = x;
            }
        }
        let mut r = a;
        for (r, m) in r.iter_mut().zip(&m) {
            *r = self.array_to_vec(*m);
        }
        r
    }

    /// [`Simd::transpose16`] from memory to memory: for each row `j < rows` of the result, lane
    /// `i` of the 16 floats at `dst(j)` (written only for the lanes `i` of `sm`) = lane `j` of
    /// the 16 at `src(i)` (read only for the lanes `j` of `lm`, 0 elsewhere).
    ///
    /// The AVX2 build moves one 8×8 block at a time through registers, never the whole
    /// 16×16 (32 `ymm`, twice its register file), and skips the blocks that nothing reads.
    ///
    /// # Safety
    /// `src(i) + j` is readable for every `i < 16` and lane `j` of `lm`, `dst(j) + i` writable
    /// for every `j < rows` and lane `i` of `sm`; `rows ≤ 16`.
    #[inline(always)]
    unsafe fn transpose16_mem(
        self,
        src: impl Fn(usize) -> *const f32,
        lm: u16,
        dst: impl Fn(usize) -> *mut f32,
        sm: u16,
        rows: usize,
    ) {
        let mut a = [self.zero(); LANES];
        for (i, a) in a.iter_mut().enumerate() {
            // SAFETY: the lanes of `lm` at `src(i)` are readable (the caller).
            *a = unsafe { self.load_masked(lm, src(i)) };
        }
        let t = self.transpose16(a);
        for (j, &v) in t[..rows].iter().enumerate() {
            // SAFETY: the lanes of `sm` at `dst(j)` are writable, `j < rows` (the caller).
            unsafe { self.store_masked(dst(j), sm, v) };
        }
    }
}

/// The lanes' sum in the order of the AVX-512 build's shuffle tree
/// (the AVX-512 build's `reduce16`): 128-bit blocks 0+2 and 1+3, then the two halves, then
/// elements 0+2 and 1+3, then 0+1.
#[inline(always)]
pub fn hsum16_tree(x: [f32; LANES]) -> f32 {
    let b: [f32; 8] = std::array::from_fn(|i| {
        let (blk, e) = (i / 4, i % 4);
        x[blk * 4 + e] + x[(blk + 2) * 4 + e]
    });
    let h: [f32; 4] = std::array::from_fn(|e| b[e] + b[4 + e]);
    (h[0] + h[2]) + (h[1] + h[3])
}

/// The lanes' sum in the order of `_mm512_reduce_add_ps`: halves (`i + 8`), then quarters
/// (`i + 4`), then `i + 2`, then `0 + 1`.
#[inline(always)]
pub fn hsum16_halves(x: [f32; LANES]) -> f32 {
    let h: [f32; 8] = std::array::from_fn(|i| x[i] + x[i + 8]);
    let q: [f32; 4] = std::array::from_fn(|i| h[i] + h[i + 4]);
    (q[0] + q[2]) + (q[1] + q[3])
}

/// A computation generic over the instruction set; [`Isa::vectorize`] runs it.
pub trait Kernel {
    /// What it returns.
    type Out;
    /// Runs with the token `s`. Implementations should be `#[inline(always)]`, so that the body
    /// is compiled inside the instruction set's entry function.
    fn run<S: Simd>(self, s: S) -> Self::Out;
}

/// Declares the arguments of a computation as a struct, made by `new` from its fields in
/// order, and makes it a [`Kernel`] with no result, whose `run` binds each field to its name
/// and the token to `$v` (of the type parameter `V: Simd`) and runs `$body`. A struct with a
/// type parameter (a convolution's shape) holds it in a `PhantomData` field.
macro_rules! kernel_args {
    (
        $(#[$attr:meta])*
        struct $name:ident<$lt:lifetime $(, $s:ident: $bound:path)?> {
            $($field:ident: $ty:ty),* $(,)?
        }
        fn run($v:ident) $body:block
    ) => {
        $(#[$attr])*
        struct $name<$lt $(, $s)?> {
            $($field: $ty,)*
            $(_s: std::marker::PhantomData<$s>,)?
        }

        impl<$lt $(, $s: $bound)?> $name<$lt $(, $s)?> {
            #[inline(always)]
            fn new($($field: $ty),*) -> Self {
                $name {
                    $($field,)*
                    $(_s: std::marker::PhantomData::<$s>,)?
                }
            }
        }

        impl<$lt $(, $s: $bound)?> $crate::kernels::simd::Kernel for $name<$lt $(, $s)?> {
            type Out = ();
            #[inline(always)]
            fn run<V: $crate::kernels::simd::Simd>(self, $v: V) {
                let $name { $($field,)* .. } = self;
                $body
            }
        }
    };
}
pub(crate) use kernel_args;

/// Runs the kernel `$k` with the x86 token `$t` made into `$simd`, inside a function compiled
/// for `$features`, which the token proves the CPU has; unreachable on other targets.
macro_rules! run_x86 {
    ($t:ident, $k:ident, $simd:ident, $features:literal) => {{
        #[cfg(target_arch = "x86_64")]
        {
            #[target_feature(enable = $features)]
            fn go<K: Kernel>(s: $simd, k: K) -> K::Out {
                k.run(s)
            }
            // SAFETY: the token proves the CPU has the features `go` is compiled for.
            unsafe { go($simd($t), $k) }
        }
        #[cfg(not(target_arch = "x86_64"))]
        $t.unreachable()
    }};
}

impl Isa {
    /// Runs `k` with this instruction set's [`Simd`] token, compiled for its features.
    #[inline]
    pub fn vectorize<K: Kernel>(self, k: K) -> K::Out {
        match self {
            // Every AVX-512 CPU has AVX2 and FMA too.
            Isa::Avx512(t) => run_x86!(t, k, Avx512Simd, "avx512f,avx512bw,avx512vl,avx2,fma"),
            Isa::Avx2(t) => run_x86!(t, k, Avx2Simd, "avx2,fma"),
            Isa::Neon(t) => {
                #[cfg(target_arch = "aarch64")]
                {
                    k.run(NeonSimd(t))
                }
                #[cfg(not(target_arch = "aarch64"))]
                t.unreachable()
            }
            Isa::Scalar => k.run(Scalar),
        }
    }
}
