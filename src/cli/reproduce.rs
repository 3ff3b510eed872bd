//! `gradspec reproduce`: the README's main job.
use clap::Args;

#[derive(Args, Debug)]
pub struct ReproduceArgs {}

pub fn run(_a: ReproduceArgs) -> anyhow::Result<()> {
    anyhow::bail!("reproduce: not implemented yet")
}
