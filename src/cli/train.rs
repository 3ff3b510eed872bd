//! `gradspec mnist train|bench`.
use crate::data::{self, DataDirArg, Split};
use crate::train::{self, TrainConfig, artifacts, recipe::Recipe};
use anyhow::{Result, bail};
use clap::Args;
use std::path::PathBuf;

#[derive(Args, Debug, Clone)]
pub struct TrainArgs {
    /// Training recipe: `onecycle` (default, ≤ 15 epochs) or `seed` (the source notebook).
    #[arg(long, value_enum, default_value_t = Recipe::Onecycle)]
    pub recipe: Recipe,
    /// Number of epochs (default: the recipe's; 12 for onecycle, 20 for seed).
    #[arg(long, value_parser = super::positive_usize, allow_negative_numbers = true)]
    pub epochs: Option<usize>,
    /// Seed of the initialisation, shuffle, augmentation and dropout.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Output directory (metrics, charts, checkpoints).
    #[arg(long, required_unless_present = "resume", conflicts_with = "resume")]
    pub out: Option<PathBuf>,
    /// Continue an interrupted run in DIR from its last checkpoint.
    #[arg(long, value_name = "DIR")]
    pub resume: Option<PathBuf>,
    /// Worker threads (default: all cores). Results do not depend on it.
    #[arg(long, value_parser = super::positive_usize)]
    pub threads: Option<usize>,
    /// Train on the first N training images only (quick experiments).
    #[arg(long, value_parser = super::positive_usize)]
    pub train_limit: Option<usize>,
    #[command(flatten)]
    pub data: DataDirArg,
}

/// Builds rayon's global pool with `threads` workers, once.
pub fn set_threads(threads: Option<usize>) -> Result<()> {
    if let Some(t) = threads {
        rayon::ThreadPoolBuilder::new()
            .num_threads(t)
            .build_global()
            .map_err(|e| anyhow::anyhow!("--threads {t}: {e}"))?;
    }
    Ok(())
}

pub fn train(a: TrainArgs) -> Result<()> {
    set_threads(a.threads)?;
    let (out, resume) = match (&a.out, &a.resume) {
        (_, Some(dir)) => (dir.clone(), true),
        (Some(out), None) => (out.clone(), false),
        (None, None) => bail!("--out: required (or --resume DIR)"),
    };
    if resume {
        let ck = out.join("checkpoint.safetensors");
        if !ck.is_file() {
            bail!(
                "--resume '{}': no checkpoint.safetensors there",
                out.display()
            );
        }
    }
    crate::fsutil::ensure_dir(&out, if resume { "--resume" } else { "--out" })?;
    let dir = data::ensure_mnist(&a.data)?;
    let mut train_ds = data::load_split(&dir, Split::Train)?;
    if let Some(n) = a.train_limit {
        train_ds = train_ds.slice(0..n.min(train_ds.len()));
    }
    let test_ds = data::load_split(&dir, Split::Test)?;
    // A resumed run keeps the recipe, epochs and seed it was started with.
    let (recipe, epochs, seed) = if resume {
        let (_, _, st) = train::checkpoint::load(&out.join("checkpoint.safetensors"))?;
        (st.recipe, st.epochs, st.seed)
    } else {
        (
            a.recipe,
            a.epochs.unwrap_or(a.recipe.default_epochs()),
            a.seed,
        )
    };
    let cfg = TrainConfig {
        recipe,
        epochs,
        seed,
        out: out.clone(),
        progress: true,
        stop_after: None,
    };
    eprintln!(
        "training: recipe {}, {} epochs, seed {}, {} training / {} test images, {} threads → '{}'",
        cfg.recipe.name(),
        cfg.epochs,
        cfg.seed,
        train_ds.len(),
        test_ds.len(),
        rayon::current_num_threads(),
        out.display()
    );
    let res = train::run(&cfg, &train_ds, &test_ds, resume)?;
    write_artifacts(&out, &res, &test_ds)?;
    let st = &res.state;
    if let Some(last) = st.metrics.last() {
        eprintln!(
            "done: last epoch {} test accuracy {:.2}%, best {:.2}% at epoch {}; files in '{}'",
            last.epoch,
            last.test_acc,
            st.best_acc,
            st.best_epoch,
            out.display()
        );
    }
    Ok(())
}

/// curves.png, confusion.csv/png and misclassified.png for a finished run.
pub fn write_artifacts(
    out: &std::path::Path,
    res: &train::TrainOutcome,
    test: &data::Dataset,
) -> Result<()> {
    let st = &res.state;
    artifacts::curves_png(
        &out.join("curves.png"),
        &st.metrics,
        &format!("{} seed {}", st.recipe.name(), st.seed),
    )?;
    let mut net = res.net.clone();
    let ev = match &res.last_eval {
        Some(ev) => ev.clone(),
        None => train::evaluate(
            &mut net,
            test,
            &mut crate::cnn::Workspace::new(train::recipe::BATCH),
        ),
    };
    let m = artifacts::confusion(&test.labels, &ev.predictions);
    artifacts::confusion_csv(&out.join("confusion.csv"), &m)?;
    artifacts::confusion_png(&out.join("confusion.png"), &m)?;
    artifacts::misclassified_png(&out.join("misclassified.png"), test, &ev.predictions, 100)?;
    Ok(())
}
