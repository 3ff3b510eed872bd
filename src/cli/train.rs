//! `gradspec mnist train`, and the observers that show a run on the terminal.
use super::args::DataDirArg;
use crate::data::{self, Split};
use crate::progress::bar;
use crate::train::{
    self, BatchReport, Control, EpochReport, Observer, Observers, RunOptions, TrainConfig, Trainer,
    artifacts, recipe::Recipe,
};
use anyhow::{Result, bail};
use clap::Args;
use indicatif::ProgressBar;
use std::path::PathBuf;

// No `///` doc here: clap would turn it into --help text.
#[allow(missing_docs)]
#[derive(Args, Debug, Clone)]
pub struct TrainArgs {
    /// Training recipe: `onecycle` (default, 8 epochs), `onecyclelr` (the same with PyTorch's
    /// `OneCycleLR` schedule exactly) or `seed` (the source notebook).
    #[arg(long, value_parser = super::args::recipe)]
    pub recipe: Option<Recipe>,
    /// Number of epochs, 1 to 1000 (default: the recipe's; 8 for onecycle and onecyclelr, 20 for seed).
    #[arg(long, value_parser = super::args::up_to::<{ super::args::MAX_EPOCHS }>, allow_negative_numbers = true)]
    pub epochs: Option<usize>,
    /// Seed of the initialisation, shuffle, augmentation and dropout [default: 1].
    #[arg(long, value_parser = super::args::seed, allow_negative_numbers = true)]
    pub seed: Option<u64>,
    /// Output directory (metrics, charts, checkpoints); must not hold a run already.
    #[arg(long, required_unless_present = "resume", conflicts_with = "resume")]
    pub out: Option<PathBuf>,
    /// Continue an interrupted run in DIR from its last checkpoint, with the options it was
    /// started with (a flag given here must agree with them).
    #[arg(long, value_name = "DIR")]
    pub resume: Option<PathBuf>,
    /// Worker threads, 1 to 256 (default: all cores). Results do not depend on it.
    #[arg(long, value_parser = super::args::up_to::<{ super::args::MAX_THREADS }>, allow_negative_numbers = true)]
    pub threads: Option<usize>,
    /// Train on the first N training images only (quick experiments).
    #[arg(long, value_parser = super::args::positive_usize, allow_negative_numbers = true)]
    pub train_limit: Option<usize>,
    #[command(flatten)]
    pub data: DataDirArg,
}

/// A training run's progress: one bar per epoch with the running loss, accuracy and
/// images per second.
#[derive(Default)]
pub struct TrainBars {
    current: Option<ProgressBar>,
}

impl Observer for TrainBars {
    fn epoch_start(&mut self, epoch: usize, epochs: usize, batches: usize) {
        self.current = Some(bar(batches as u64, &format!("epoch {epoch}/{epochs}")));
    }

    fn batch_end(&mut self, b: &BatchReport) -> Control {
        if let Some(pb) = &self.current {
            pb.inc(1);
            if (b.batch - 1).is_multiple_of(8) {
                let rate = pb.per_sec() * b.images as f64;
                pb.set_message(format!(
                    "loss {:.4} acc {:.2}% {:.0} img/s",
                    b.epoch_loss, b.epoch_acc, rate
                ));
            }
        }
        Control::Continue
    }

    fn epoch_end(&mut self, _: &Trainer<'_>, _: &EpochReport) -> crate::Result<()> {
        if let Some(pb) = self.current.take() {
            pb.finish_and_clear();
        }
        Ok(())
    }
}

impl Drop for TrainBars {
    fn drop(&mut self) {
        if let Some(pb) = self.current.take() {
            pb.abandon();
        }
    }
}

/// Prints the source notebook's test-set line after every epoch.
pub struct EpochLines;

impl Observer for EpochLines {
    fn epoch_end(&mut self, _: &Trainer<'_>, r: &EpochReport) -> crate::Result<()> {
        println!("Epoch {}: {}", r.metrics.epoch, r.eval.line());
        Ok(())
    }
}

/// Trains with the command line's observers (progress bars, the epoch lines, Ctrl-C and the
/// charts) plugged in, then writes the run's pictures and tables if no epoch was left to run.
///
/// `stop` is the Ctrl-C flag from [`super::stop_on_ctrl_c`], installed before the caller's
/// first line on stderr so that a Ctrl-C is never lost in between.
pub fn run_with_observers(
    cfg: &TrainConfig,
    train_ds: &data::Dataset,
    test_ds: &data::Dataset,
    resume: bool,
    mut stop: train::StopFlag,
) -> Result<train::TrainOutcome> {
    let mut bars = TrainBars::default();
    let mut lines = EpochLines;
    let mut charts = artifacts::Artifacts {
        out: cfg.out.clone(),
        test: test_ds,
    };
    let res = train::run(
        cfg,
        train_ds,
        test_ds,
        resume,
        &mut Observers(vec![&mut bars, &mut lines, &mut stop, &mut charts]),
    )?;
    if res.last_eval.is_none() {
        write_artifacts(&cfg.out, &res, test_ds)?;
    }
    Ok(res)
}

/// A resumed run's options: the saved ones. A flag that was given must agree with them.
fn resumed_options(a: &TrainArgs, dir: &std::path::Path, st: RunOptions) -> Result<RunOptions> {
    let clash = |flag: &str, given: String, saved: String| -> Result<()> {
        bail!(
            "{flag} {given}: conflicts with the run being resumed in '{}', which has {flag} {saved}; leave the flag out to resume, or start a new run with --out",
            dir.display()
        )
    };
    if let Some(r) = a.recipe.filter(|&r| r != st.recipe) {
        clash("--recipe", r.name().into(), st.recipe.name().into())?;
    }
    if let Some(e) = a.epochs.filter(|&e| e != st.epochs) {
        clash("--epochs", e.to_string(), st.epochs.to_string())?;
    }
    if let Some(s) = a.seed.filter(|&s| s != st.seed) {
        clash("--seed", s.to_string(), st.seed.to_string())?;
    }
    if let Some(n) = a.train_limit.filter(|&n| Some(n) != st.train_limit) {
        let saved = st
            .train_limit
            .map_or("(none: all images)".into(), |n| n.to_string());
        clash("--train-limit", n.to_string(), saved)?;
    }
    Ok(st)
}

/// `gradspec mnist train`: trains the CNN (a new run into `--out`, or `--resume`s one).
pub fn train(a: TrainArgs) -> Result<()> {
    super::set_threads(a.threads)?;
    let (out, resume) = match (&a.out, &a.resume) {
        (_, Some(dir)) => (dir.clone(), true),
        (Some(out), None) => (out.clone(), false),
        (None, None) => bail!("--out: required (or --resume DIR)"),
    };
    let ck = out.join("checkpoint.safetensors");
    let opts = if resume {
        if !ck.is_file() {
            bail!(
                "--resume '{}': no checkpoint.safetensors there",
                out.display()
            );
        }
        let (_, _, st) = train::checkpoint::load(&ck)?;
        resumed_options(&a, &out, st.options)?
    } else {
        if ck.exists() {
            bail!(
                "--out '{}': holds a run already (checkpoint.safetensors); continue it with --resume {} or choose another folder",
                out.display(),
                super::shell_quote(&out)
            );
        }
        let recipe = a.recipe.unwrap_or(Recipe::Onecycle);
        RunOptions {
            recipe,
            epochs: a.epochs.unwrap_or(recipe.default_epochs()),
            seed: a.seed.unwrap_or(1),
            train_limit: a.train_limit,
        }
    };
    crate::fsutil::ensure_dir(&out, if resume { "--resume" } else { "--out" })?;
    let dir = super::args::ensure_mnist(&a.data)?;
    let mut train_ds = data::load_split(&dir, Split::Train)?;
    if let Some(n) = opts.train_limit {
        train_ds = train_ds.slice(0..n.min(train_ds.len()));
    }
    let test_ds = data::load_split(&dir, Split::Test)?;
    let cfg = TrainConfig {
        options: opts,
        out: out.clone(),
        stop_after: None,
    };
    // Ctrl-C is handled from here on: a test (and a user) may interrupt as soon as this line
    // below appears.
    let stop = super::stop_on_ctrl_c()?;
    eprintln!(
        "training: recipe {}, {} epochs, seed {}, {} training / {} test images, {} threads → '{}'",
        opts.recipe.name(),
        opts.epochs,
        opts.seed,
        train_ds.len(),
        test_ds.len(),
        crate::par::threads(),
        out.display()
    );
    let data_flag = match &a.data.data_dir {
        Some(d) => format!(" --data-dir {}", super::shell_quote(d)),
        None => String::new(),
    };
    let resume_cmd = format!(
        "gradspec mnist train --resume {}{data_flag}",
        super::shell_quote(&out)
    );
    let restart_cmd = format!(
        "gradspec mnist train --out {} --recipe {} --epochs {} --seed {}{}{data_flag}",
        super::shell_quote(&out),
        opts.recipe.name(),
        opts.epochs,
        opts.seed,
        opts.train_limit
            .map_or(String::new(), |n| format!(" --train-limit {n}"))
    );
    let res = run_with_observers(&cfg, &train_ds, &test_ds, resume, stop)
        .map_err(|e| super::explain_interruption(e, &resume_cmd, &restart_cmd))?;
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

/// curves.png, confusion.csv/png and misclassified.png for a run whose last epoch this
/// invocation did not run (so the [`artifacts::Artifacts`] observer did not see it).
pub fn write_artifacts(
    out: &std::path::Path,
    res: &train::TrainOutcome,
    test: &data::Dataset,
) -> Result<()> {
    let ev = match &res.last_eval {
        Some(ev) => ev.clone(),
        None => train::evaluate(
            &mut res.net.clone(),
            test,
            &mut crate::cnn::Workspace::new(train::recipe::BATCH),
        ),
    };
    Ok(artifacts::write_all(out, &res.state, &ev, test)?)
}
