//! `gradspec backprop …` (Part 1): the spreadsheet as CSV and as an `.xlsx` workbook of live
//! formulas, the learning-rate sweep, and the derivation with numbers.
use super::args::positive_f64;
use crate::backprop::sweep::{DEFAULT_ITERATIONS, MAX_ITERATIONS, run_sweep_with};
use crate::backprop::xlsx::{MAX_XLSX_ITERATIONS, XlsxOptions, write_xlsx};
use crate::backprop::{State, Weights, explain, table, train::train_checked};
use anyhow::{Context, Result, ensure};
use clap::{Args, Subcommand};
use std::io::Write;
use std::path::PathBuf;

// No `///` doc here: clap would turn it into --help text.
#[allow(missing_docs)]
#[derive(Subcommand, Debug)]
pub enum BackpropCmd {
    /// Print the training table as CSV: one row per iteration, row k = state before update k+1.
    Table(TableArgs),
    /// Train at several learning rates; write loss_curves.csv and charts to --out, print a summary.
    Sweep(SweepArgs),
    /// Print the derivation (spec/backprop.md) with one iteration's numbers substituted.
    Explain(ExplainArgs),
    /// Write the spreadsheet as an .xlsx workbook: input cells, live formulas, one sheet and one
    /// chart per learning rate.
    Xlsx(XlsxArgs),
}

/// Inputs, targets and weights; the defaults are the source spreadsheet's.
#[derive(Args, Debug, Clone)]
pub struct StateArgs {
    /// Input 1.
    #[arg(long, default_value_t = 0.05, value_parser = finite_f64, allow_hyphen_values = true)]
    pub i1: f64,
    /// Input 2.
    #[arg(long, default_value_t = 0.1, value_parser = finite_f64, allow_hyphen_values = true)]
    pub i2: f64,
    /// Target of output 1.
    #[arg(long, default_value_t = 0.5, value_parser = finite_f64, allow_hyphen_values = true)]
    pub t1: f64,
    /// Target of output 2.
    #[arg(long, default_value_t = 0.5, value_parser = finite_f64, allow_hyphen_values = true)]
    pub t2: f64,
    /// Weight i1 → h1.
    #[arg(long, default_value_t = 0.15, value_parser = finite_f64, allow_hyphen_values = true)]
    pub w1: f64,
    /// Weight i2 → h1.
    #[arg(long, default_value_t = 0.2, value_parser = finite_f64, allow_hyphen_values = true)]
    pub w2: f64,
    /// Weight i1 → h2.
    #[arg(long, default_value_t = 0.25, value_parser = finite_f64, allow_hyphen_values = true)]
    pub w3: f64,
    /// Weight i2 → h2.
    #[arg(long, default_value_t = 0.3, value_parser = finite_f64, allow_hyphen_values = true)]
    pub w4: f64,
    /// Weight a_h1 → o1.
    #[arg(long, default_value_t = 0.4, value_parser = finite_f64, allow_hyphen_values = true)]
    pub w5: f64,
    /// Weight a_h2 → o1.
    #[arg(long, default_value_t = 0.45, value_parser = finite_f64, allow_hyphen_values = true)]
    pub w6: f64,
    /// Weight a_h1 → o2.
    #[arg(long, default_value_t = 0.5, value_parser = finite_f64, allow_hyphen_values = true)]
    pub w7: f64,
    /// Weight a_h2 → o2.
    #[arg(long, default_value_t = 0.55, value_parser = finite_f64, allow_hyphen_values = true)]
    pub w8: f64,
}

impl StateArgs {
    /// The 2-2-2 network's [`State`]: inputs i1, i2, targets t1, t2 and weights w1 … w8.
    pub fn state(&self) -> State<f64> {
        State {
            i1: self.i1,
            i2: self.i2,
            t1: self.t1,
            t2: self.t2,
            w: Weights {
                w1: self.w1,
                w2: self.w2,
                w3: self.w3,
                w4: self.w4,
                w5: self.w5,
                w6: self.w6,
                w7: self.w7,
                w8: self.w8,
            },
        }
    }
}

// No `///` doc here: clap would turn it into --help text.
#[allow(missing_docs)]
#[derive(Args, Debug)]
pub struct TableArgs {
    /// Learning rate η (finite, > 0).
    #[arg(long, default_value_t = 0.5, value_parser = positive_f64, allow_hyphen_values = true)]
    pub lr: f64,
    /// Number of rows: iterations 0 … N−1.
    #[arg(long, default_value_t = DEFAULT_ITERATIONS, value_parser = iterations, allow_negative_numbers = true)]
    pub iterations: usize,
    #[command(flatten)]
    pub state: StateArgs,
}

/// `--lrs` and `--iterations`, shared by `sweep` and `xlsx` (which words their help for its
/// sheets).
#[derive(Args, Debug)]
pub struct RatesArgs {
    /// Comma-separated learning rates (each finite, > 0, no repeats).
    #[arg(
        long,
        value_delimiter = ',',
        value_parser = positive_f64,
        allow_hyphen_values = true,
        default_value = "0.1,0.2,0.5,0.8,1.0,2.0"
    )]
    pub lrs: Vec<f64>,
    /// Rows per rate: iterations 0 … N−1.
    #[arg(long, default_value_t = DEFAULT_ITERATIONS, value_parser = iterations, allow_negative_numbers = true)]
    pub iterations: usize,
}

impl RatesArgs {
    /// Refuses more than [`MAX_RATES`] rates, and a rate given twice: each rate gets one
    /// `output` (chart, sheet), and a repeated rate's `outputs` would collide.
    fn check(&self, output: &str, outputs: &str) -> Result<()> {
        ensure!(
            self.lrs.len() <= MAX_RATES,
            "--lrs: at most {MAX_RATES} rates (one {output} each), got {}",
            self.lrs.len()
        );
        for (j, lr) in self.lrs.iter().enumerate() {
            ensure!(
                !self.lrs[..j].contains(lr),
                "--lrs: {lr:?} is given twice (its {outputs} would collide)"
            );
        }
        Ok(())
    }
}

// No `///` doc here: clap would turn it into --help text.
#[allow(missing_docs)]
#[derive(Args, Debug)]
pub struct SweepArgs {
    #[command(flatten)]
    pub rates: RatesArgs,
    /// Output directory, created if missing (required).
    // Checked in `run` rather than by clap: clap's "required arguments were not provided"
    // names the flag only on its second line, and `cli::main` prints the first line only.
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    #[command(flatten)]
    pub state: StateArgs,
}

// No `///` doc here: clap would turn it into --help text. The table's flags, with the help of
// `--iterations` worded for this command.
#[allow(missing_docs)]
#[derive(Args, Debug)]
#[command(mut_arg("iterations", |a| a.help("The table's length, as in `backprop table`")))]
pub struct ExplainArgs {
    /// Which row to explain (0 = the initial weights); must be below --iterations.
    #[arg(long, default_value_t = 0, value_parser = iteration, allow_negative_numbers = true)]
    pub iteration: usize,
    #[command(flatten)]
    pub table: TableArgs,
}

// No `///` doc here: clap would turn it into --help text. The rates are a sweep's, worded for
// sheets, and `--lr` also names them.
#[allow(missing_docs)]
#[derive(Args, Debug)]
#[command(
    mut_arg("lrs", |a| a.visible_alias("lr").help(
        "Comma-separated learning rates η, one sheet each (each finite, > 0, no repeats)"
    )),
    mut_arg("iterations", |a| a.help("Rows per sheet: iterations 0 … N−1 (at most 10000)"))
)]
pub struct XlsxArgs {
    #[command(flatten)]
    pub rates: RatesArgs,
    /// The .xlsx file to write (required; replaced atomically).
    // Checked in `run` rather than by clap, as `sweep --out`.
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// Store no computed results beside the formulas: only a spreadsheet that recalculates on
    /// opening shows numbers.
    #[arg(long)]
    pub no_cached_results: bool,
    #[command(flatten)]
    pub state: StateArgs,
}

/// The most rates one sweep may compare.
const MAX_RATES: usize = 64;

/// clap value parser: a number of rows, 1 to [`MAX_ITERATIONS`].
fn iterations(s: &str) -> Result<usize, String> {
    let v = iteration(s)?;
    if v == 0 {
        return Err("must be at least 1, got 0".into());
    }
    Ok(v)
}

/// clap value parser: a row index, 0 to [`MAX_ITERATIONS`] − 1.
fn iteration(s: &str) -> Result<usize, String> {
    let v: usize = s
        .trim()
        .parse()
        .map_err(|_| format!("'{s}' is not a whole number from 0 to {MAX_ITERATIONS}"))?;
    if v > MAX_ITERATIONS {
        return Err(format!("must be at most {MAX_ITERATIONS}, got {v}"));
    }
    Ok(v)
}

/// clap value parser: any finite f64 (inputs, targets and weights may be zero or negative).
pub fn finite_f64(s: &str) -> Result<f64, String> {
    let v: f64 = s
        .trim()
        .parse()
        .map_err(|_| format!("'{s}' is not a number"))?;
    if !v.is_finite() {
        return Err(format!("must be a finite number, got {s}"));
    }
    Ok(v)
}

/// Runs one `gradspec backprop` subcommand (`table`, `sweep`, `explain` or `xlsx`).
pub fn run(c: BackpropCmd) -> Result<()> {
    match c {
        BackpropCmd::Table(a) => {
            let out = std::io::stdout().lock();
            let mut out = std::io::BufWriter::new(out);
            let r = table::write_table(&mut out, a.state.state(), a.lr, a.iterations)
                .and_then(|()| Ok(out.flush()?));
            stdout_result(r)
        }
        BackpropCmd::Sweep(a) => {
            let RatesArgs { lrs, iterations } = &a.rates;
            a.rates.check("chart", "files")?;
            let out = a
                .out
                .context("--out DIR is required: the directory for loss_curves.csv and charts")?;
            let summary = run_sweep_with(a.state.state(), lrs, *iterations, &out)?;
            let mut text = summary.summary_table();
            text.push_str(&format!(
                "wrote {} files to {}\n",
                summary.files.len(),
                out.display()
            ));
            stdout_result(std::io::stdout().lock().write_all(text.as_bytes()))
        }
        BackpropCmd::Explain(ExplainArgs { iteration, table }) => {
            ensure!(
                iteration < table.iterations,
                "--iteration {}: must be less than --iterations ({})",
                iteration,
                table.iterations
            );
            let rows = train_checked(table.state.state(), table.lr, iteration + 1)?;
            let row = rows.last().context("at least one row")?;
            let text = explain::explain(row, table.lr)?;
            stdout_result(std::io::stdout().lock().write_all(text.as_bytes()))
        }
        BackpropCmd::Xlsx(a) => {
            let RatesArgs { lrs, iterations } = &a.rates;
            a.rates.check("sheet", "sheets")?;
            ensure!(
                *iterations <= MAX_XLSX_ITERATIONS,
                "--iterations: at most {MAX_XLSX_ITERATIONS} rows per sheet in a workbook, got {}",
                iterations
            );
            let out = a
                .out
                .context("--out FILE is required: the .xlsx file to write")?;
            crate::fsutil::refuse_non_regular(&out, "--out")?;
            let opts = XlsxOptions {
                cached_results: !a.no_cached_results,
            };
            write_xlsx(&out, a.state.state(), lrs, *iterations, opts)
                .with_context(|| format!("--out '{}'", out.display()))?;
            let text = format!(
                "wrote {} ({} sheets of {} rows, and the E_total overview)\n",
                out.display(),
                lrs.len(),
                iterations
            );
            stdout_result(std::io::stdout().lock().write_all(text.as_bytes()))
        }
    }
}

/// A closed pipe (`| head`) is not an error; other I/O errors are about stdout; anything else
/// (a [`Diverged`](crate::backprop::train::Diverged) table) passes through.
fn stdout_result<E: Into<anyhow::Error>>(r: Result<(), E>) -> Result<()> {
    let Err(e) = r else { return Ok(()) };
    let e: anyhow::Error = e.into();
    match e.downcast_ref::<std::io::Error>() {
        Some(io) if io.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        Some(_) => Err(e.context("cannot write to stdout")),
        None => Err(e),
    }
}
