//! `gradspec reproduce`: the README's main job. Runs the whole mission and writes
//! `out/REPORT.md`:
//! 1. the Part 1 learning-rate sweep and the spreadsheet as an `.xlsx` of live formulas
//!    (out/part1/);
//! 2. fetches MNIST if it is missing;
//! 3. trains the CNN with the default recipe (out/mnist/; resumes if interrupted);
//! 4. evaluates it and draws the charts, and writes the report;
//! 5. builds the web book (out/book/index.html) with this run's weights and charts.
use super::args::DataDirArg;
use crate::data::{self, Split};
use crate::train::{self, RunOptions, TrainConfig, recipe::Recipe};
use anyhow::Result;
use clap::Args;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::Instant;

/// The Part 1 workbook's file name inside `out/part1/` (`gradspec backprop xlsx`, default rates).
pub const PART1_XLSX: &str = "backprop.xlsx";

// No `///` doc here: clap would turn it into --help text.
#[allow(missing_docs)]
#[derive(Args, Debug)]
pub struct ReproduceArgs {
    /// Output directory.
    #[arg(long, default_value = "out")]
    pub out: PathBuf,
    /// Seed of the CNN run.
    #[arg(long, default_value_t = 1, value_parser = super::args::seed, allow_negative_numbers = true)]
    pub seed: u64,
    /// Epochs of the CNN run (default: the recipe's).
    #[arg(long, value_parser = super::args::up_to::<{ super::args::MAX_EPOCHS }>, allow_negative_numbers = true)]
    pub epochs: Option<usize>,
    /// Worker threads (default: all cores).
    #[arg(long, value_parser = super::args::up_to::<{ super::args::MAX_THREADS }>, allow_negative_numbers = true)]
    pub threads: Option<usize>,
    #[command(flatten)]
    pub data: DataDirArg,
}

/// `gradspec reproduce`: runs the steps listed in the module docs and writes `REPORT.md`
/// into `--out`.
pub fn run(a: ReproduceArgs) -> Result<()> {
    super::set_threads(a.threads)?;
    crate::fsutil::ensure_dir(&a.out, "--out")?;
    // One reproduction per folder at a time (the training inside locks out/mnist as well).
    let _lock = crate::fsutil::DirLock::acquire(&a.out, "--out")?;
    let t0 = Instant::now();

    let part1_dir = a.out.join("part1");
    let workbook = part1_dir.join(PART1_XLSX);
    eprintln!(
        "[1/5] Part 1: learning-rate sweep of the 2-2-2 network → {}/part1 \
         (loss_curves.csv, charts, and the spreadsheet with live formulas: {})",
        a.out.display(),
        workbook.display()
    );
    let sweep = crate::backprop::sweep::run_sweep(
        &crate::backprop::sweep::DEFAULT_LRS,
        crate::backprop::sweep::DEFAULT_ITERATIONS,
        &part1_dir,
    )?;
    crate::backprop::xlsx::write_xlsx(
        &workbook,
        crate::backprop::State::spreadsheet(),
        &crate::backprop::sweep::DEFAULT_LRS,
        crate::backprop::sweep::DEFAULT_ITERATIONS,
        crate::backprop::xlsx::XlsxOptions::default(),
    )?;
    let sweep_table = sweep.summary_table();
    println!("{sweep_table}");
    println!(
        "Part 1 spreadsheet (one sheet per rate, live formulas): {}",
        workbook.display()
    );

    eprintln!("[2/5] MNIST data");
    let dir = super::args::ensure_mnist(&a.data)?;
    let train_ds = data::load_split(&dir, Split::Train)?;
    let test_ds = data::load_split(&dir, Split::Test)?;

    let mnist_dir = a.out.join("mnist");
    crate::fsutil::ensure_dir(&mnist_dir, "--out")?;
    let recipe = Recipe::Onecycle;
    let cfg = TrainConfig {
        options: RunOptions {
            recipe,
            epochs: a.epochs.unwrap_or(recipe.default_epochs()),
            seed: a.seed,
            train_limit: None,
        },
        out: mnist_dir.clone(),
        stop_after: None,
    };
    let resume = match train::checkpoint::load(&mnist_dir.join("checkpoint.safetensors")) {
        Ok((_, _, st)) if st.options == cfg.options => {
            eprintln!(
                "      resuming the run in {} after epoch {}",
                mnist_dir.display(),
                st.completed_epochs
            );
            true
        }
        _ => false,
    };
    let stop = super::stop_on_ctrl_c()?;
    eprintln!(
        "[3/5] Part 2: training the 16,562-parameter CNN ({} recipe, {} epochs, seed {}) → {}",
        recipe.name(),
        cfg.options.epochs,
        cfg.options.seed,
        mnist_dir.display()
    );
    let mut again = format!(
        "gradspec reproduce --out {} --seed {}",
        super::shell_quote(&a.out),
        a.seed
    );
    if let Some(e) = a.epochs {
        again.push_str(&format!(" --epochs {e}"));
    }
    if let Some(d) = &a.data.data_dir {
        again.push_str(&format!(" --data-dir {}", super::shell_quote(d)));
    }
    // `reproduce` resumes a matching run by itself, so the same command continues it.
    let res = super::train::run_with_observers(&cfg, &train_ds, &test_ds, resume, stop)
        .map_err(|e| super::explain_interruption(e, &again, &again))?;
    eprintln!("[4/5] evaluation, charts and report");
    let ev = match res.last_eval.clone() {
        Some(ev) => ev,
        None => train::evaluate(
            &mut res.net.clone(),
            &test_ds,
            &mut crate::cnn::Workspace::new(train::recipe::BATCH),
        ),
    };

    let mut r = String::new();
    let st = &res.state;
    let _ = writeln!(r, "# gradspec reproduction report\n");
    let _ = writeln!(
        r,
        "Produced by `gradspec reproduce` (gradspec {}) in {:.0} s on {} thread(s).\n",
        env!("CARGO_PKG_VERSION"),
        t0.elapsed().as_secs_f64(),
        crate::par::threads()
    );
    let _ = writeln!(r, "## Part 1: the hand-derived 2-2-2 sigmoid network\n");
    let _ = writeln!(
        r,
        "Plain gradient descent for {} iterations from the spreadsheet's starting values, at each learning rate. \
         Every gradient is the hand derivation of `spec/backprop.md`, checked against numerical derivatives by the test suite.\n",
        crate::backprop::sweep::DEFAULT_ITERATIONS
    );
    let _ = writeln!(r, "```text\n{}```\n", sweep_table);
    let _ = writeln!(r, "![E_total by learning rate](part1/loss_all.png)\n");
    let _ = writeln!(
        r,
        "Data: [part1/loss_curves.csv](part1/loss_curves.csv). The spreadsheet itself, one sheet \
         per learning rate with every derived cell a live formula (change η or a weight and it \
         recalculates): [part1/{PART1_XLSX}](part1/{PART1_XLSX}).\n"
    );
    let _ = writeln!(r, "## Part 2: the MNIST CNN\n");
    let _ = writeln!(r, "```text\n{}```\n", crate::cnn::summary::summary());
    let _ = writeln!(
        r,
        "Recipe `{}`: SGD, momentum {}, batch {}, {} epochs, seed {}; the source notebook's \
         augmentation at crop probability {} and rotation within ±{}°.\n",
        st.options.recipe.name(),
        st.options.recipe.momentum(),
        train::recipe::BATCH,
        st.options.epochs,
        st.options.seed,
        st.options.recipe.strength().crop_prob,
        st.options.recipe.strength().max_angle_deg
    );
    let _ = writeln!(
        r,
        "**Final test accuracy: {:.2}%** (`{}`); best {:.2}% at epoch {}. \
         Mission target (at least 99.40% in fewer than 20 epochs): **{}**.\n",
        ev.accuracy(),
        ev.line(),
        st.best_acc,
        st.best_epoch,
        if ev.accuracy() >= 99.4 && st.options.epochs < 20 {
            "met"
        } else {
            "not met"
        }
    );
    let to_target = match train::time_to_accuracy(&st.metrics, 99.4) {
        Some((epoch, secs)) => {
            format!("first reached at epoch {epoch}, after {secs:.0} s of training and evaluation")
        }
        None => "not reached".to_string(),
    };
    let _ = writeln!(
        r,
        "Time to 99.40% test accuracy: {to_target} (target: 60 s or less on a 2-core machine).\n"
    );
    eprintln!("time to 99.40% test accuracy: {to_target}");
    let _ = writeln!(
        r,
        "| epoch | lr | train loss | train acc % | test loss | test acc % | seconds |"
    );
    let _ = writeln!(r, "|---:|---:|---:|---:|---:|---:|---:|");
    for m in &st.metrics {
        let _ = writeln!(
            r,
            "| {} | {:.5} | {:.4} | {:.2} | {:.4} | {:.2} | {:.0} |",
            m.epoch, m.lr, m.train_loss, m.train_acc, m.test_loss, m.test_acc, m.seconds
        );
    }
    let _ = writeln!(r, "\n![learning curves](mnist/curves.png)\n");
    let _ = writeln!(r, "![confusion matrix](mnist/confusion.png)\n");
    let _ = writeln!(r, "![misclassified test digits](mnist/misclassified.png)\n");
    let _ = writeln!(
        r,
        "The spec as a web book, with live numbers and this run's network reading a digit you \
         draw: [book/index.html](book/index.html) (opens from disk).\n"
    );
    let _ = writeln!(
        r,
        "Files: [metrics.csv](mnist/metrics.csv), [confusion.csv](mnist/confusion.csv), \
         [best.safetensors](mnist/best.safetensors) and [last.safetensors](mnist/last.safetensors) \
         (PyTorch `state_dict` names; `model.load_state_dict(safetensors.torch.load_file(path))`)."
    );
    let report = a.out.join("REPORT.md");
    crate::fsutil::write_bytes_atomic(&report, r.as_bytes())?;
    println!("{}", ev.line());
    eprintln!("report: {}", report.display());

    eprintln!("[5/5] the web book → {}/book", a.out.display());
    super::book::run(super::book::BookArgs {
        out: a.out.join("book"),
        weights: Some(mnist_dir.join("best.safetensors")),
        run: Some(mnist_dir.clone()),
        digit: 0,
        data: DataDirArg {
            data_dir: a.data.data_dir.clone(),
        },
    })?;
    Ok(())
}
