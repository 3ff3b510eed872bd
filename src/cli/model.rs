//! `gradspec mnist summary|eval|grad`. Owned by the model work.
use clap::Args;

#[derive(Args, Debug)]
pub struct SummaryArgs {}
#[derive(Args, Debug)]
pub struct EvalArgs {}
#[derive(Args, Debug)]
pub struct GradArgs {}

/// Prints torchsummary's layer table for the CNN (see [`crate::cnn::summary`]).
pub fn summary(_a: SummaryArgs) -> anyhow::Result<()> {
    print!("{}", crate::cnn::summary::summary());
    Ok(())
}
pub fn eval(_a: EvalArgs) -> anyhow::Result<()> {
    anyhow::bail!("mnist eval: not implemented yet")
}
pub fn grad(_a: GradArgs) -> anyhow::Result<()> {
    anyhow::bail!("mnist grad: not implemented yet")
}
