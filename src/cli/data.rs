//! `gradspec mnist fetch` and `gradspec mnist augment-preview`. Owned by the data work.
use clap::Args;

#[derive(Args, Debug)]
pub struct FetchArgs {}

#[derive(Args, Debug)]
pub struct AugmentPreviewArgs {}

pub fn fetch(_a: FetchArgs) -> anyhow::Result<()> {
    anyhow::bail!("mnist fetch: not implemented yet")
}

pub fn augment_preview(_a: AugmentPreviewArgs) -> anyhow::Result<()> {
    anyhow::bail!("mnist augment-preview: not implemented yet")
}
