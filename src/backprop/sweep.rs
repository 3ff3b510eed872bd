//! The learning-rate sweep: the same network trained at several learning rates, compared by
//! loss curve. `gradspec backprop sweep` and `gradspec reproduce` (into `out/part1/`) both
//! call [`run_sweep`].
//!
//! Files written to the output directory (each atomically):
//! * `loss_curves.csv` — `iteration` plus one `lr_<rate>` column of E_total per rate;
//! * `loss_lr_<rate>.png` — one chart per rate;
//! * `loss_all.png` — every rate on one chart, with a legend.
//!
//! `<rate>` is the rate in Rust's `{:?}` form (`0.1`, `1.0`, `2.0`), so a rate always reads as
//! a number with a decimal point.
use super::State;
use super::train::{Diverged, Trainer};
#[cfg(feature = "plots")]
use crate::error::Context as _;
use crate::error::{Result, ensure};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// The rates the spreadsheet compares.
pub const DEFAULT_LRS: [f64; 6] = [0.1, 0.2, 0.5, 0.8, 1.0, 2.0];

/// The number of iterations the spreadsheet shows.
pub const DEFAULT_ITERATIONS: usize = 100;

/// Loss curves for several rates: `e_total[j][k]` is E_total at row `k` for rate `lrs[j]`.
#[derive(Debug, Clone, PartialEq)]
pub struct Curves {
    /// The learning rates η, one per curve.
    pub lrs: Vec<f64>,
    /// E_total per row, one curve per rate (same order as `lrs`).
    pub e_total: Vec<Vec<f64>>,
}

/// The most rows a table, sweep or explanation may ask for (a table of this many rows is
/// about 400 MB of CSV).
pub const MAX_ITERATIONS: usize = 1_000_000;

/// Trains from `state` at each rate for `iterations` rows (computation only, no IO), or
/// stops at the first rate and row where a value is not finite (see
/// [`Row::check_finite`](super::train::Row::check_finite)).
pub fn sweep_curves(state: State<f64>, lrs: &[f64], iterations: usize) -> Result<Curves, Diverged> {
    let e_total = lrs
        .iter()
        .map(|&lr| {
            Trainer::new(state, lr)
                .take(iterations)
                .map(|r| r.check_finite(lr).map(|()| r.fwd.e_total))
                .collect()
        })
        .collect::<Result<_, _>>()?;
    Ok(Curves {
        lrs: lrs.to_vec(),
        e_total,
    })
}

/// What one rate achieved.
#[derive(Debug, Clone, PartialEq)]
pub struct RateSummary {
    /// The learning rate η.
    pub lr: f64,
    /// E_total at row 0 (the initial weights).
    pub e_first: f64,
    /// E_total at the last row.
    pub e_last: f64,
    /// The first row whose E_total is at most half of row 0's, if any.
    pub halved_at: Option<usize>,
}

/// The result of a sweep: one [`RateSummary`] per rate and the files written.
#[derive(Debug, Clone, PartialEq)]
pub struct SweepSummary {
    /// The number of rows trained at each rate.
    pub iterations: usize,
    /// One summary per learning rate, in the order the rates were given.
    pub rates: Vec<RateSummary>,
    /// The files written: `loss_curves.csv` and, with feature `plots`, the PNG charts.
    pub files: Vec<PathBuf>,
}

impl Curves {
    /// Summarises each curve (no files).
    pub fn summarise(&self) -> Vec<RateSummary> {
        self.lrs
            .iter()
            .zip(&self.e_total)
            .map(|(&lr, c)| {
                let e_first = c[0];
                RateSummary {
                    lr,
                    e_first,
                    e_last: c[c.len() - 1],
                    halved_at: c.iter().position(|&e| e <= e_first / 2.0),
                }
            })
            .collect()
    }

    /// `iteration,lr_0.1,lr_0.2,…` then one line per row, numbers in shortest round-trip form.
    pub fn to_csv(&self) -> String {
        let mut s = String::from("iteration");
        for lr in &self.lrs {
            let _ = write!(s, ",{}", column_name(*lr));
        }
        s.push('\n');
        let n = self.e_total.first().map_or(0, Vec::len);
        for k in 0..n {
            let _ = write!(s, "{k}");
            for c in &self.e_total {
                let _ = write!(s, ",{}", c[k]);
            }
            s.push('\n');
        }
        s
    }
}

/// The CSV column (and file-name stem) for a rate: `lr_0.1`, `lr_1.0`.
pub fn column_name(lr: f64) -> String {
    format!("lr_{lr:?}")
}

/// Checks a list of rates: non-empty, each finite and > 0, no repeats.
pub fn validate_lrs(lrs: &[f64]) -> Result<()> {
    ensure!(!lrs.is_empty(), "at least one learning rate is needed");
    for (j, &lr) in lrs.iter().enumerate() {
        ensure!(
            lr.is_finite() && lr > 0.0,
            "learning rate {lr} must be a finite number greater than 0"
        );
        ensure!(
            !lrs[..j].contains(&lr),
            "learning rate {lr:?} is given twice (its files would collide)"
        );
    }
    Ok(())
}

/// Runs the sweep from the spreadsheet's state and writes its files into `out_dir`.
pub fn run_sweep(lrs: &[f64], iterations: usize, out_dir: &Path) -> Result<SweepSummary> {
    run_sweep_with(State::spreadsheet(), lrs, iterations, out_dir)
}

/// Runs the sweep from `state` and writes its files into `out_dir`.
///
/// Everything is validated and computed before `out_dir` is created and probed for
/// writability, so a sweep that [diverges](Diverged) writes nothing; every file is written
/// atomically.
pub fn run_sweep_with(
    state: State<f64>,
    lrs: &[f64],
    iterations: usize,
    out_dir: &Path,
) -> Result<SweepSummary> {
    validate_lrs(lrs)?;
    ensure!(
        (1..=MAX_ITERATIONS).contains(&iterations),
        "iterations must be from 1 to {MAX_ITERATIONS}, got {iterations}"
    );
    // All the numbers first: a sweep that diverges writes nothing.
    let curves = sweep_curves(state, lrs, iterations)?;
    crate::fsutil::ensure_dir(out_dir, "--out")?;
    let mut files = Vec::new();

    let csv_path = out_dir.join("loss_curves.csv");
    crate::fsutil::write_bytes_atomic(&csv_path, curves.to_csv().as_bytes())?;
    files.push(csv_path);

    // The charts (feature `plots`): one per rate, and all rates together.
    #[cfg(feature = "plots")]
    {
        for (j, &lr) in curves.lrs.iter().enumerate() {
            let path = out_dir.join(format!("loss_{}.png", column_name(lr)));
            chart(
                &path,
                &format!("2-2-2 sigmoid network: E_total at learning rate {lr:?}"),
                &curves.lrs[j..=j],
                &curves.e_total[j..=j],
            )?;
            files.push(path);
        }
        let all = out_dir.join("loss_all.png");
        chart(
            &all,
            "2-2-2 sigmoid network: E_total by learning rate",
            &curves.lrs,
            &curves.e_total,
        )?;
        files.push(all);
    }

    Ok(SweepSummary {
        iterations,
        rates: curves.summarise(),
        files,
    })
}

impl SweepSummary {
    /// A fixed-width text table: rate, E_total at the first and last row, rows to halve.
    /// Losses are printed to 9 significant digits.
    pub fn summary_table(&self) -> String {
        summary_table(&self.rates, self.iterations)
    }
}

/// See [`SweepSummary::summary_table`].
pub fn summary_table(rates: &[RateSummary], iterations: usize) -> String {
    let last = iterations - 1;
    let mut s = String::new();
    let _ = writeln!(
        s,
        "{:>6}  {:>16}  {:>16}  {:>20}",
        "lr",
        "E_total[0]",
        format!("E_total[{last}]"),
        "iterations to halve"
    );
    for r in rates {
        let halved = match r.halved_at {
            Some(k) => k.to_string(),
            None => format!("not within {iterations}"),
        };
        let _ = writeln!(
            s,
            "{:>6}  {:>16}  {:>16}  {:>20}",
            format!("{:?}", r.lr),
            sig(r.e_first, 9),
            sig(r.e_last, 9),
            halved
        );
    }
    s
}

/// `x` rounded to `digits` significant digits, in plain decimal when that is readable
/// (1e-4 ≤ |x| < 1e9) and in scientific notation otherwise.
pub fn sig(x: f64, digits: usize) -> String {
    if x == 0.0 || !x.is_finite() {
        return format!("{x}");
    }
    let mag = x.abs().log10().floor() as i32;
    if !(-4..9).contains(&mag) {
        let s = format!("{:.*e}", digits - 1, x);
        let (mantissa, exp) = s.split_once('e').expect("{:e} has an exponent");
        let mantissa = if mantissa.contains('.') {
            mantissa.trim_end_matches('0').trim_end_matches('.')
        } else {
            mantissa
        };
        return format!("{mantissa}e{exp}");
    }
    let decimals = (digits as i32 - 1 - mag).max(0) as usize;
    let s = format!("{x:.decimals$}");
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    }
}

#[cfg(feature = "plots")]
const PALETTE: [plotters::style::RGBColor; 8] = [
    plotters::style::RGBColor(31, 119, 180),
    plotters::style::RGBColor(255, 127, 14),
    plotters::style::RGBColor(44, 160, 44),
    plotters::style::RGBColor(214, 39, 40),
    plotters::style::RGBColor(148, 103, 189),
    plotters::style::RGBColor(140, 86, 75),
    plotters::style::RGBColor(227, 119, 194),
    plotters::style::RGBColor(127, 127, 127),
];

/// Draws loss curves (E_total against iteration) with labelled axes and a legend.
#[cfg(feature = "plots")]
fn chart(path: &Path, title: &str, lrs: &[f64], curves: &[Vec<f64>]) -> Result<()> {
    use plotters::prelude::*;
    let n = curves.iter().map(Vec::len).max().unwrap_or(1);
    let y_max = curves
        .iter()
        .flatten()
        .copied()
        .fold(0.0f64, f64::max)
        .max(f64::MIN_POSITIVE);
    crate::plot::render_png(path, 1000, 640, |root| {
        let err = |e: &dyn std::fmt::Display| crate::error::err!("chart '{}': {e}", path.display());
        let mut ch = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 26))
            .margin(20)
            .x_label_area_size(55)
            .y_label_area_size(90)
            .build_cartesian_2d(
                0f64..(n.saturating_sub(1).max(1)) as f64,
                0f64..y_max * 1.05,
            )
            .map_err(|e| err(&e))?;
        ch.configure_mesh()
            .x_desc("iteration (row k = weights before update k + 1)")
            .y_desc("E_total")
            .label_style(("sans-serif", 18))
            .axis_desc_style(("sans-serif", 20))
            .x_label_formatter(&|x| format!("{x:.0}"))
            .y_label_formatter(&|y| format!("{y:.3}"))
            .draw()
            .map_err(|e| err(&e))?;
        for (j, (lr, c)) in lrs.iter().zip(curves).enumerate() {
            let color = PALETTE[j % PALETTE.len()];
            ch.draw_series(LineSeries::new(
                c.iter().enumerate().map(|(k, &e)| (k as f64, e)),
                color.stroke_width(3),
            ))
            .map_err(|e| err(&e))?
            .label(format!("lr = {lr:?}"))
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 24, y)], color.stroke_width(3))
            });
        }
        ch.configure_series_labels()
            .position(SeriesLabelPosition::UpperRight)
            .label_font(("sans-serif", 18))
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .draw()
            .map_err(|e| err(&e))?;
        root.present().map_err(|e| err(&e))?;
        Ok(())
    })
    .context(format!("cannot draw '{}'", path.display()))
}
