//! `gradspec mnist summary` (`eval` and `grad` are in `inspect.rs`).
use clap::Args;

// No `///` doc here: clap would turn it into --help text.
#[allow(missing_docs)]
#[derive(Args, Debug)]
pub struct SummaryArgs {}

/// Prints torchsummary's layer table for the CNN (see [`crate::cnn::summary`]).
pub fn summary(_a: SummaryArgs) -> anyhow::Result<()> {
    print!("{}", crate::cnn::summary::summary());
    Ok(())
}
