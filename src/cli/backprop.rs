//! `gradspec backprop …` (Part 1). Owned by the Part 1 work.
use clap::Subcommand;

#[derive(Subcommand, Debug)]
pub enum BackpropCmd {
    /// Placeholder until Part 1 lands.
    Table,
}

pub fn run(_c: BackpropCmd) -> anyhow::Result<()> {
    anyhow::bail!("backprop: not implemented yet")
}
