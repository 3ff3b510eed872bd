//! `gradspec mnist train|bench`. Owned by the training and speed work.
use clap::Args;

#[derive(Args, Debug)]
pub struct TrainArgs {}
#[derive(Args, Debug)]
pub struct BenchArgs {}

pub fn train(_a: TrainArgs) -> anyhow::Result<()> {
    anyhow::bail!("mnist train: not implemented yet")
}
pub fn bench(_a: BenchArgs) -> anyhow::Result<()> {
    anyhow::bail!("mnist bench: not implemented yet")
}
