//! Progress of long work. The library reports it through [`Progress`] (downloads,
//! extraction) and the trainer's observers (training) and draws nothing; with the `progress`
//! feature, [`Bars`] draws indicatif bars on stderr, hidden automatically when stderr is not a
//! terminal (the training bars, an observer, are the command line's: `cli::train::TrainBars`).
//! This module imports nothing of the trainer, so that `data` (downloads) can use it.
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
pub use bars::{Bars, bar, bytes_bar};

#[cfg(feature = "progress")]
mod bars {
    use super::Progress;
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
}
