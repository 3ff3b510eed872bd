//! Proptest case counts fixed in code.
//!
//! proptest's `proptest!` macro passes even an explicit configuration through
//! `contextualize_config` (proptest 1.12, `src/sugar.rs`), which lets the `PROPTEST_CASES`
//! environment variable replace its `cases`: `PROPTEST_CASES=0` would run every property zero
//! times, and every property would pass. So every `proptest!` block in `tests/` takes its
//! configuration from [`fixed_cases`], and the registry (`src/spec`) rejects a citing block whose
//! `#![proptest_config(…)]` does not call it.
use proptest::test_runner::Config;

/// `Config::with_cases(cases)`, refusing to run when `PROPTEST_CASES` asks for another count
/// (which the `proptest!` macro would apply over this one).
///
/// # Panics
/// When `PROPTEST_CASES` is set to anything but `cases`.
pub fn fixed_cases(cases: u32) -> Config {
    if let Some(v) = std::env::var_os("PROPTEST_CASES")
        && v.to_str() != Some(cases.to_string().as_str())
    {
        panic!(
            "PROPTEST_CASES={} would override this property's case count, which is fixed in \
             code at {cases}; unset it",
            v.to_string_lossy()
        );
    }
    Config::with_cases(cases)
}
