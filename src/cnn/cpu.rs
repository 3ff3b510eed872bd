//! The one place that knows the CPU: which fast paths may run on this machine.
//!
//! Every AVX-512 fast path of the crate, and nothing else, is reached through an [`Avx512`]
//! token: a zero-sized proof that the CPU has AVX-512F, AVX-512BW and AVX-512VL. Only this
//! module can make one, and it makes one only after detecting those features, so a function
//! that takes the token as an argument may run AVX-512 instructions without further checks.
//! Code that runs AVX-512 instructions either takes the token or is an `unsafe fn` whose
//! caller holds one. (Small private helpers compiled with `#[target_feature]`, such as the
//! shuffle trees of [`super::conv_simd`], take no token: Rust lets them be called without
//! `unsafe` only from code that is itself compiled for AVX-512, which sits behind a token.)
//!
//! Two questions are kept apart; both answer with the token or `None`:
//! - [`avx512_hardware`]: does the CPU have AVX-512F, BW and VL? This is what makes running
//!   an AVX-512 instruction *sound*; the kernels' own tests ask it, so that they run whichever
//!   path the trainer takes.
//! - [`avx512`]: should the trainer *choose* the AVX-512 paths? That is the hardware answer
//!   unless the environment variable `GRADSPEC_NO_AVX512` is set (to anything), which switches
//!   off every CPU-dependent fast path at once: the direct convolutions
//!   ([`super::conv_simd`], taken by [`super::net`]), the AVX-512 builds of the fused passes
//!   ([`super::fused`]) and the dropout lockstep
//!   ([`super::dropout::dropout_bits_lockstep`]). Each of them asks [`avx512`] and nothing
//!   else. Both answers are read once and cached for the life of the process, so a run never
//!   changes path half-way.
//!
//! CI runs the whole suite once normally and once with `GRADSPEC_NO_AVX512=1`, so the
//! portable bodies are tested on a machine that has AVX-512 too. Setting
//! `GRADSPEC_REQUIRE_AVX512` makes [`require_avx512_if_asked`] panic when the hardware lacks
//! it, so that tests of the AVX-512 kernels cannot silently skip on a CI machine that is
//! supposed to run them.
use std::sync::OnceLock;

/// The environment variable that switches every AVX-512 fast path off.
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

/// The token when the AVX-512 fast paths are chosen: the hardware has them
/// ([`avx512_hardware`]) and `GRADSPEC_NO_AVX512` is not set.
pub fn avx512() -> Option<Avx512> {
    static FLAG: OnceLock<bool> = OnceLock::new();
    let chosen = *FLAG
        .get_or_init(|| std::env::var_os(NO_AVX512_VAR).is_none() && avx512_hardware().is_some());
    if chosen { avx512_hardware() } else { None }
}

/// The name of the path the trainer takes: `"avx512"` or `"portable"`.
pub fn path_name() -> &'static str {
    if avx512().is_some() {
        "avx512"
    } else {
        "portable"
    }
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
