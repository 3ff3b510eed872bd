//! The pictures and tables a run leaves behind: learning curves, the confusion matrix
//! (CSV and PNG) and a gallery of misclassified test digits. [`Artifacts`] is the observer
//! that draws them as a run goes; the charts need the `plots` feature.
#[cfg(feature = "plots")]
mod charts;

#[cfg(feature = "plots")]
pub use charts::{confusion_png, curves_png, misclassified_png};

use super::{EpochReport, Evaluation, Observer, Trainer, checkpoint::RunState};
use crate::data::Dataset;
use crate::error::Result;
use std::path::{Path, PathBuf};

/// `m[true][predicted]` counts.
pub fn confusion(labels: &[u8], predictions: &[u8]) -> [[usize; 10]; 10] {
    let mut m = [[0; 10]; 10];
    for (&t, &p) in labels.iter().zip(predictions) {
        m[t as usize % 10][p as usize % 10] += 1;
    }
    m
}

/// confusion.csv: one row per true label, one column per predicted label.
pub fn confusion_csv(path: &Path, m: &[[usize; 10]; 10]) -> Result<()> {
    crate::fsutil::write_atomic(path, |w| {
        writeln!(w, "true\\predicted,0,1,2,3,4,5,6,7,8,9")?;
        for (t, row) in m.iter().enumerate() {
            let cells: Vec<String> = row.iter().map(|c| c.to_string()).collect();
            writeln!(w, "{t},{}", cells.join(","))?;
        }
        Ok(())
    })
}

/// Writes every file of a finished run into `out`: `confusion.csv`, and with the `plots`
/// feature `curves.png`, `confusion.png` and `misclassified.png`. `eval` is the final model's
/// evaluation on `test`.
pub fn write_all(out: &Path, state: &RunState, eval: &Evaluation, test: &Dataset) -> Result<()> {
    #[cfg(feature = "plots")]
    curves_png(
        &out.join("curves.png"),
        &state.metrics,
        &format!(
            "{} seed {}",
            state.options.recipe.name(),
            state.options.seed
        ),
    )?;
    let m = confusion(&test.labels, &eval.predictions);
    confusion_csv(&out.join("confusion.csv"), &m)?;
    #[cfg(feature = "plots")]
    {
        confusion_png(&out.join("confusion.png"), &m)?;
        misclassified_png(&out.join("misclassified.png"), test, &eval.predictions, 100)?;
    }
    #[cfg(not(feature = "plots"))]
    let _ = state;
    Ok(())
}

/// The observer that writes a run's pictures and tables into its folder: the learning curves
/// after every epoch, and everything of [`write_all`] after the last one.
pub struct Artifacts<'a> {
    /// The run folder.
    pub out: PathBuf,
    /// The test set the run evaluates on (for the confusion matrix and the gallery).
    pub test: &'a Dataset,
}

impl Observer for Artifacts<'_> {
    fn epoch_end(&mut self, t: &Trainer<'_>, report: &EpochReport) -> Result<()> {
        let st = t.state();
        if t.is_finished() {
            write_all(&self.out, st, &report.eval, self.test)
        } else {
            #[cfg(feature = "plots")]
            curves_png(
                &self.out.join("curves.png"),
                &st.metrics,
                &format!("{} seed {}", st.options.recipe.name(), st.options.seed),
            )?;
            Ok(())
        }
    }
}
