//! `gradspec mnist summary|eval|grad`. Owned by the model work.
use clap::Args;

// No `///` doc here: clap would turn it into --help text.
#[allow(missing_docs)]
#[derive(Args, Debug)]
pub struct SummaryArgs {}
// No `///` doc here: clap would turn it into --help text.
#[allow(missing_docs)]
#[derive(Args, Debug)]
pub struct EvalArgs {}
// No `///` doc here: clap would turn it into --help text.
#[allow(missing_docs)]
#[derive(Args, Debug)]
pub struct GradArgs {}

/// Prints torchsummary's layer table for the CNN (see [`crate::cnn::summary`]).
pub fn summary(_a: SummaryArgs) -> anyhow::Result<()> {
    print!("{}", crate::cnn::summary::summary());
    Ok(())
}
/// Placeholder for a model-side `mnist eval`; always fails with "not implemented yet".
pub fn eval(_a: EvalArgs) -> anyhow::Result<()> {
    anyhow::bail!("mnist eval: not implemented yet")
}
/// Placeholder for a model-side `mnist grad`; always fails with "not implemented yet".
pub fn grad(_a: GradArgs) -> anyhow::Result<()> {
    anyhow::bail!("mnist grad: not implemented yet")
}
