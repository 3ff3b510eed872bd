//! Progress of long work. The library reports it through [`Progress`] (downloads,
//! extraction) and [`Observer`](crate::train::Observer) (training) and draws nothing; with the
//! `progress` feature, [`Bars`] and [`TrainBars`] draw indicatif bars on stderr, hidden
//! automatically when stderr is not a terminal.
use std::io::Read;

/// Receives the progress of one piece of long work at a time.
pub trait Progress {
    /// Work named `what` starts; `total` units (bytes) when known.
    fn start(&mut self, what: &str, total: Option<u64>) {
        let _ = (what, total);
    }
    /// `n` more units are done.
    fn advance(&mut self, n: u64) {
        let _ = n;
    }
    /// The work is done (or abandoned).
    fn finish(&mut self) {}
}

/// Reports nothing.
impl Progress for () {}

/// A reader that reports every byte read to a [`Progress`].
pub struct ProgressRead<'a, R> {
    inner: R,
    progress: &'a mut dyn Progress,
}

impl<'a, R: Read> ProgressRead<'a, R> {
    /// Wraps `inner`; the caller calls `start` and `finish` on `progress`.
    pub fn new(inner: R, progress: &'a mut dyn Progress) -> Self {
        Self { inner, progress }
    }
}

impl<R: Read> Read for ProgressRead<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.progress.advance(n as u64);
        Ok(n)
    }
}

#[cfg(feature = "progress")]
pub use bars::{Bars, TrainBars, bar, bytes_bar};

#[cfg(feature = "progress")]
mod bars {
    use super::Progress;
    use crate::train::{BatchReport, Control, EpochReport, Observer, Trainer};
    use indicatif::{ProgressBar, ProgressStyle};

    /// A bar over `len` items with a message slot, ETA and per-second rate.
    pub fn bar(len: u64, prefix: &str) -> ProgressBar {
        let pb = ProgressBar::new(len);
        pb.set_style(
            ProgressStyle::with_template(
                "{prefix:>12} [{bar:30}] {pos}/{len} {msg} ({per_sec}, ETA {eta})",
            )
            .expect("static template is valid")
            .progress_chars("=> "),
        );
        pb.set_prefix(prefix.to_string());
        pb
    }

    /// A bar over a byte count (downloads, extraction).
    pub fn bytes_bar(len: u64, prefix: &str) -> ProgressBar {
        let pb = ProgressBar::new(len);
        pb.set_style(
            ProgressStyle::with_template(
                "{prefix:>12} [{bar:30}] {bytes}/{total_bytes} ({bytes_per_sec}, ETA {eta})",
            )
            .expect("static template is valid")
            .progress_chars("=> "),
        );
        pb.set_prefix(prefix.to_string());
        pb
    }

    /// [`Progress`] as indicatif bars: a byte bar when the total is known, else a spinner.
    #[derive(Default)]
    pub struct Bars {
        current: Option<ProgressBar>,
    }

    impl Progress for Bars {
        fn start(&mut self, what: &str, total: Option<u64>) {
            self.finish();
            let pb = match total {
                Some(len) => bytes_bar(len, what),
                None => {
                    let s = ProgressBar::new_spinner().with_message(what.to_string());
                    s.enable_steady_tick(std::time::Duration::from_millis(120));
                    s
                }
            };
            self.current = Some(pb);
        }
        fn advance(&mut self, n: u64) {
            if let Some(pb) = &self.current {
                pb.inc(n);
            }
        }
        fn finish(&mut self) {
            if let Some(pb) = self.current.take() {
                pb.finish_and_clear();
            }
        }
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

        fn epoch_end(&mut self, _: &Trainer<'_>, _: &EpochReport) -> crate::error::Result<()> {
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
}
