//! The one place that knows the CPU: which fast paths may run on this machine.
//!
//! Every CPU-dependent fast path of the crate is reached through a token: a zero-sized proof
//! that the CPU has the features the path is compiled for. Only this module can make one, and
//! it makes one only after detecting those features, so a function that takes a token may run
//! those instructions without further checks:
//! - [`Avx512`]: AVX-512F, AVX-512BW and AVX-512VL;
//! - [`Avx2`]: AVX2 and FMA;
//! - [`Neon`]: NEON (every aarch64 CPU).
//!
//! [`Isa`] names the instruction set the direct convolutions of [`super::conv`] run on,
//! one of these tokens or `Scalar` (plain Rust, runs anywhere); [`super::simd`] turns it into a
//! 16-lane vector type and compiles the kernels for it. Code that runs AVX-512 instructions
//! either takes a token or is an `unsafe fn` whose caller holds one. (Small private helpers
//! compiled with `#[target_feature]`, such as the shuffle trees of the AVX-512 build of [`super::simd`], take
//! no token: Rust lets them be called without `unsafe` only from code that is itself compiled
//! for AVX-512, which sits behind a token.)
//!
//! Two questions are kept apart:
//! - *What can run here* ([`avx512_hardware`], [`avx2_hardware`], [`neon_hardware`],
//!   [`isas_hardware`]): what makes running an instruction *sound*. The kernels' own tests ask
//!   this, so that they test every instruction set the machine has, whatever path the trainer
//!   takes.
//! - *What the trainer chooses* ([`isa`], which every dispatcher of [`super`] asks; [`avx512`]
//!   and [`avx2`] answer the same question for one instruction set): by default the widest
//!   instruction set the CPU has (AVX-512, then AVX2+FMA, then NEON, else the reference path: im2col + GEMM and the fused passes' baseline
//!   build). `GRADSPEC_NO_AVX512` (set to anything) makes it choose as a CPU without AVX-512
//!   would (AVX2+FMA on x86-64). `GRADSPEC_SIMD=avx512|avx2|neon|scalar|reference` picks a path
//!   explicitly, for benchmarks and tests. The choice is read once and cached for the life of
//!   the process, so a run never changes path half-way.
//!
//! Every direct-kernel instruction set gives the same bits (see [`super::simd`]); the
//! reference path differs from them by f32 rounding. CI runs the whole suite normally and with
//! `GRADSPEC_NO_AVX512=1`, the path-dependent tests with `GRADSPEC_SIMD=reference`, and the
//! kernels' tests under NEON emulation. Setting `GRADSPEC_REQUIRE_AVX512` makes
//! [`require_avx512_if_asked`] panic when the hardware lacks it, so that tests of the AVX-512
//! kernels cannot silently skip on a CI machine that is supposed to run them.
use std::sync::OnceLock;

/// The environment variable that makes the trainer choose as a CPU without AVX-512 would.
pub const NO_AVX512_VAR: &str = "GRADSPEC_NO_AVX512";

/// The environment variable that turns a missing AVX-512 into a test failure.
pub const REQUIRE_AVX512_VAR: &str = "GRADSPEC_REQUIRE_AVX512";

/// Proof that this CPU has AVX-512F, AVX-512BW and AVX-512VL, every feature the fast paths
/// are compiled for.
///
/// Zero-sized and `Copy`; its field is private, so only [`avx512_hardware`] and [`avx512`]
/// (which detect the features first) can make one. On a target other than x86-64 the type
/// has no values at all.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Avx512 {
    _proof: Proof,
}

/// The private field of [`Avx512`]: a unit on x86-64, uninhabited elsewhere.
#[cfg(target_arch = "x86_64")]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct Proof;

/// The private field of [`Avx512`]: a unit on x86-64, uninhabited elsewhere.
#[cfg(not(target_arch = "x86_64"))]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Proof {}

impl Avx512 {
    /// A token cannot exist on a target other than x86-64: code holding one there is
    /// unreachable, and this says so to the compiler.
    #[cfg(not(target_arch = "x86_64"))]
    pub(crate) fn unreachable(self) -> ! {
        match self._proof {}
    }
}

/// The token when the CPU has AVX-512F, AVX-512BW and AVX-512VL, whatever
/// `GRADSPEC_NO_AVX512` says. For the kernels' own tests and benchmarks; the trainer asks
/// [`avx512`].
pub fn avx512_hardware() -> Option<Avx512> {
    static FLAG: OnceLock<bool> = OnceLock::new();
    if *FLAG.get_or_init(detect) {
        token()
    } else {
        None
    }
}

/// The token when the AVX-512 fast paths are chosen: [`isa`] is [`Isa::Avx512`].
pub fn avx512() -> Option<Avx512> {
    match isa() {
        Some(Isa::Avx512(t)) => Some(t),
        _ => None,
    }
}

/// The token when the AVX2 builds are chosen: [`isa`] is [`Isa::Avx2`].
pub fn avx2() -> Option<Avx2> {
    match isa() {
        Some(Isa::Avx2(t)) => Some(t),
        _ => None,
    }
}

/// The environment variable that picks the path explicitly: `avx512`, `avx2`, `neon`, `scalar`
/// or `reference` (see [`isa`]).
pub const SIMD_VAR: &str = "GRADSPEC_SIMD";

/// Proof that this CPU has AVX2 and FMA, every feature the AVX2 build of the portable SIMD
/// layer ([`super::simd`]) is compiled for. Made only by [`avx2_hardware`], after detection.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Avx2 {
    _proof: Proof,
}

impl Avx2 {
    /// A token cannot exist on a target other than x86-64.
    #[cfg(not(target_arch = "x86_64"))]
    pub(crate) fn unreachable(self) -> ! {
        match self._proof {}
    }
}

/// Proof that this CPU has NEON (always true on aarch64, where NEON is part of the baseline);
/// uninhabited on other targets.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Neon {
    _proof: NeonProof,
}

#[cfg(target_arch = "aarch64")]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct NeonProof;

#[cfg(not(target_arch = "aarch64"))]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum NeonProof {}

impl Neon {
    /// A token cannot exist on a target other than aarch64.
    #[cfg(not(target_arch = "aarch64"))]
    pub(crate) fn unreachable(self) -> ! {
        match self._proof {}
    }
}

/// The token when the CPU has AVX2 and FMA, whatever the environment says.
pub fn avx2_hardware() -> Option<Avx2> {
    #[cfg(target_arch = "x86_64")]
    {
        static FLAG: OnceLock<bool> = OnceLock::new();
        let have = *FLAG.get_or_init(|| {
            std::arch::is_x86_feature_detected!("avx2")
                && std::arch::is_x86_feature_detected!("fma")
        });
        have.then_some(Avx2 { _proof: Proof })
    }
    #[cfg(not(target_arch = "x86_64"))]
    None
}

/// The token when the CPU has NEON (every aarch64 CPU).
pub fn neon_hardware() -> Option<Neon> {
    #[cfg(target_arch = "aarch64")]
    {
        Some(Neon { _proof: NeonProof })
    }
    #[cfg(not(target_arch = "aarch64"))]
    None
}

/// An instruction set the direct convolution kernels of [`super::conv`] run on: a token
/// of [`super::simd`]'s 16-lane vector layer. `Scalar` (plain Rust, one `f32::mul_add` per
/// lane) runs anywhere; the others carry the proof that the CPU has their features.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Isa {
    /// AVX-512F/BW/VL: one `zmm` per vector.
    Avx512(Avx512),
    /// AVX2 and FMA: two `ymm` per vector.
    Avx2(Avx2),
    /// NEON: four `q` registers per vector.
    Neon(Neon),
    /// No intrinsics: sixteen `f32` per vector.
    Scalar,
}

impl From<Avx512> for Isa {
    fn from(t: Avx512) -> Self {
        Isa::Avx512(t)
    }
}

impl From<Avx2> for Isa {
    fn from(t: Avx2) -> Self {
        Isa::Avx2(t)
    }
}

impl From<Neon> for Isa {
    fn from(t: Neon) -> Self {
        Isa::Neon(t)
    }
}

impl Isa {
    /// `"avx512"`, `"avx2"`, `"neon"` or `"scalar"`.
    pub fn name(self) -> &'static str {
        match self {
            Isa::Avx512(_) => "avx512",
            Isa::Avx2(_) => "avx2",
            Isa::Neon(_) => "neon",
            Isa::Scalar => "scalar",
        }
    }
}

/// Every instruction set the kernels can run on here, widest first, whatever the environment
/// says (ending with [`Isa::Scalar`]). For the kernels' tests and benchmarks.
pub fn isas_hardware() -> Vec<Isa> {
    let mut v = Vec::new();
    v.extend(avx512_hardware().map(Isa::from));
    v.extend(avx2_hardware().map(Isa::from));
    v.extend(neon_hardware().map(Isa::from));
    v.push(Isa::Scalar);
    v
}

/// The path the trainer takes, read once: `Some(isa)` runs the direct kernels of
/// [`super::conv`] on `isa` (and the fused passes compiled for it), `None` the reference
/// path (im2col + GEMM, the fused passes' baseline build).
///
/// - `GRADSPEC_SIMD=avx512|avx2|neon|scalar` picks that instruction set (the process panics
///   if the CPU lacks it); `GRADSPEC_SIMD=reference` picks the reference path.
/// - Otherwise the widest instruction set the CPU has, skipping AVX-512 when
///   `GRADSPEC_NO_AVX512` is set: AVX-512, then AVX2+FMA, then NEON. On a CPU with none of them
///   (an x86-64 without FMA, where `f32::mul_add` is a library call) the reference path.
///
/// # Panics
/// If `GRADSPEC_SIMD` names an unknown path or one this CPU cannot run ([`check_choice`] says
/// so without panicking; the command-line tool asks it first).
pub fn isa() -> Option<Isa> {
    choice().clone().unwrap_or_else(|e| panic!("{e}"))
}

/// `Err` with a one-line message when `GRADSPEC_SIMD` names an unknown path or one this CPU
/// cannot run, or `GRADSPEC_WINOGRAD` is neither `0` nor `1`: what [`isa`] or [`winograd`]
/// would panic with.
pub fn check_choice() -> Result<(), String> {
    choice().clone().map(|_| ())?;
    winograd_choice().clone().map(|_| ())
}

/// The variable that chooses how conv2, conv5 and conv7 run on the kernels' path: by
/// Winograd's `F(2×2, 3×3)` (`1`, unset or empty: the default) or by direct sums (`0`).
pub const WINOGRAD_VAR: &str = "GRADSPEC_WINOGRAD";

/// Whether the kernels' path runs the forward pass, input gradient and weight gradient of
/// conv2, conv5 and conv7 (the shapes the Winograd kernels take) by Winograd (the default; `GRADSPEC_WINOGRAD=0` keeps them direct; read once). The two round
/// differently, so a run with `GRADSPEC_WINOGRAD=0` does not reproduce the bits of the
/// default's records and pinned hashes (and the reverse); the speed it buys is in
/// docs/performance.md.
///
/// # Panics
/// If `GRADSPEC_WINOGRAD` is set to anything but `0`, `1` or nothing ([`check_choice`] says
/// so without panicking).
pub fn winograd() -> bool {
    winograd_choice().clone().unwrap_or_else(|e| panic!("{e}"))
}

/// [`winograd`]'s choice, read once.
fn winograd_choice() -> &'static Result<bool, String> {
    static CHOICE: OnceLock<Result<bool, String>> = OnceLock::new();
    CHOICE.get_or_init(|| match std::env::var(WINOGRAD_VAR).ok().as_deref() {
        None | Some("") | Some("1") => Ok(true),
        Some("0") => Ok(false),
        Some(v) => Err(format!("{WINOGRAD_VAR}={v}: expected 0 or 1")),
    })
}

/// [`isa`]'s choice, read once.
fn choice() -> &'static Result<Option<Isa>, String> {
    static CHOICE: OnceLock<Result<Option<Isa>, String>> = OnceLock::new();
    CHOICE.get_or_init(|| {
        let no512 = std::env::var_os(NO_AVX512_VAR).is_some();
        match std::env::var(SIMD_VAR).ok().as_deref() {
            None | Some("") => {
                let wide = if no512 { None } else { avx512_hardware() };
                Ok(wide
                    .map(Isa::from)
                    .or(avx2_hardware().map(Isa::from))
                    .or(neon_hardware().map(Isa::from)))
            }
            Some("reference") => Ok(None),
            Some("scalar") => Ok(Some(Isa::Scalar)),
            Some(name) => {
                let isa = match name {
                    "avx512" => avx512_hardware().map(Isa::from),
                    "avx2" => avx2_hardware().map(Isa::from),
                    "neon" => neon_hardware().map(Isa::from),
                    _ => {
                        return Err(format!(
                            "{SIMD_VAR}={name}: expected avx512, avx2, neon, scalar or reference"
                        ));
                    }
                };
                isa.map(Some)
                    .ok_or_else(|| format!("{SIMD_VAR}={name}: this CPU lacks it"))
            }
        }
    })
}

/// The name of the path the trainer takes: `"avx512"`, `"avx2"`, `"neon"`, `"scalar"` or
/// `"reference"` (see [`isa`]).
pub fn path_name() -> &'static str {
    isa().map_or("reference", Isa::name)
}

/// For tests of the AVX-512 kernels: the token when they can run here. When they cannot and
/// `GRADSPEC_REQUIRE_AVX512` is set, this panics instead of letting the test skip.
pub fn require_avx512_if_asked() -> Option<Avx512> {
    let have = avx512_hardware();
    if have.is_none() && std::env::var_os(REQUIRE_AVX512_VAR).is_some() {
        panic!("{REQUIRE_AVX512_VAR} is set but this CPU lacks AVX-512F/BW/VL");
    }
    have
}

/// The one place a token is made; called only once [`detect`] has said yes.
#[cfg(target_arch = "x86_64")]
fn token() -> Option<Avx512> {
    Some(Avx512 { _proof: Proof })
}

#[cfg(not(target_arch = "x86_64"))]
fn token() -> Option<Avx512> {
    None
}

#[cfg(target_arch = "x86_64")]
fn detect() -> bool {
    std::arch::is_x86_feature_detected!("avx512f")
        && std::arch::is_x86_feature_detected!("avx512bw")
        && std::arch::is_x86_feature_detected!("avx512vl")
}

#[cfg(not(target_arch = "x86_64"))]
fn detect() -> bool {
    false
}
