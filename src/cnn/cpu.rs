//! The one place that knows the CPU: which fast paths may run on this machine.
//!
//! Two questions are kept apart:
//! - [`avx512_hardware`]: does the CPU have AVX-512F, BW and VL? This is what makes running
//!   an AVX-512 instruction *sound*, so kernels check it before executing any.
//! - [`avx512`]: should the trainer *choose* the AVX-512 paths? That is the hardware answer
//!   unless the environment variable `GRADSPEC_NO_AVX512` is set (to anything), which switches
//!   off every CPU-dependent fast path at once: the direct convolutions
//!   ([`super::conv_simd`]), the wide builds of the fused passes ([`super::fused`]) and the
//!   dropout lockstep ([`super::dropout::dropout_bits_lockstep`]). Both answers are read once
//!   and cached for the life of the process, so a run never changes path half-way.
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

/// Whether the CPU has AVX-512F, AVX-512BW and AVX-512VL (every feature the fast paths are
/// compiled for). Independent of `GRADSPEC_NO_AVX512`.
pub fn avx512_hardware() -> bool {
    static FLAG: OnceLock<bool> = OnceLock::new();
    *FLAG.get_or_init(detect)
}

/// Whether the AVX-512 fast paths are chosen: the hardware has them and
/// `GRADSPEC_NO_AVX512` is not set.
pub fn avx512() -> bool {
    static FLAG: OnceLock<bool> = OnceLock::new();
    *FLAG.get_or_init(|| std::env::var_os(NO_AVX512_VAR).is_none() && avx512_hardware())
}

/// The name of the path the trainer takes: `"avx512"` or `"portable"`.
pub fn path_name() -> &'static str {
    if avx512() { "avx512" } else { "portable" }
}

/// For tests of the AVX-512 kernels: `true` when they can run here. When they cannot and
/// `GRADSPEC_REQUIRE_AVX512` is set, this panics instead of letting the test skip.
pub fn require_avx512_if_asked() -> bool {
    let have = avx512_hardware();
    if !have && std::env::var_os(REQUIRE_AVX512_VAR).is_some() {
        panic!("{REQUIRE_AVX512_VAR} is set but this CPU lacks AVX-512F/BW/VL");
    }
    have
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
