//! The library's error type. Every fallible function of the library returns [`Result`]; the
//! message is one line that names the file, flag or quantity and says what is wrong.
//!
//! An error says what happened, nothing more: bad input ([`Error::Invalid`], [`Error::Input`], …),
//! a run that was asked to stop ([`Error::Stopped`], [`Stopped`]) or a run that failed on its own
//! ([`Error::Failed`], [`RunFailed`]). Which exit code each gets is the command line's choice
//! (`cli::exit_code`), made there once. This module imports nothing of the rest of the library.
use std::fmt::Display;
use std::path::PathBuf;

/// A run that stopped because it was asked to (an observer's `Control::Stop`, the command
/// line's Ctrl-C), after a complete batch. The checkpoint of the last completed epoch (if any)
/// is untouched, so the run resumes from it.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error(
    "{}",
    match checkpoint {
        None => format!("stopped during epoch {epoch} after batch {batch}"),
        Some(path) => format!(
            "interrupted during epoch {epoch} after batch {batch}; {}",
            match completed_epochs {
                0 => "no epoch was complete, so there is no checkpoint".to_string(),
                n => format!("the checkpoint of epoch {n} is kept in '{}'", path.display()),
            }
        ),
    }
)]
pub struct Stopped {
    /// The 1-based epoch that was running.
    pub epoch: usize,
    /// The last batch of that epoch that was completed (1-based).
    pub batch: usize,
    /// Epochs the kept checkpoint holds (0: none).
    pub completed_epochs: usize,
    /// The run's checkpoint file, to resume from (`None`: the run had no run folder).
    pub checkpoint: Option<PathBuf>,
}

/// A run that failed on its own, as opposed to bad input: its numbers stopped being finite
/// (a non-finite training loss, a diverging Part 1 table), or it missed its performance budgets.
#[derive(Debug, thiserror::Error)]
#[error(
    "{reason}{}",
    match checkpoint {
        None => String::new(),
        Some(p) => format!("; the last good checkpoint is kept at '{}'", p.display()),
    }
)]
pub struct RunFailed {
    /// What went wrong (a `NonFiniteLoss`, a `Diverged`, a message).
    pub reason: Box<dyn std::error::Error + Send + Sync + 'static>,
    /// The last good checkpoint of the run, if it kept one.
    pub checkpoint: Option<PathBuf>,
}

impl RunFailed {
    /// A failure for `reason`, with no checkpoint.
    pub fn new(reason: impl Into<Box<dyn std::error::Error + Send + Sync + 'static>>) -> Self {
        RunFailed {
            reason: reason.into(),
            checkpoint: None,
        }
    }
}

/// Everything the library can fail with.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Bad input: a value, a path of the wrong kind, a file whose contents are not what they
    /// must be. The message names it.
    #[error("{0}")]
    Invalid(String),
    /// What was being done (naming the file or flag), and the error that stopped it.
    #[error("{context}")]
    Context {
        /// What was being done.
        context: String,
        /// Why it failed.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync + 'static>,
    },
    /// A file whose contents are not what they must be, as the reader's own error says (a
    /// malformed MNIST IDX file, say).
    #[error(transparent)]
    Input(Box<dyn std::error::Error + Send + Sync + 'static>),
    /// A run that failed on its own (a non-finite loss, Part 1 diverging, a missed budget).
    #[error(transparent)]
    Failed(#[from] RunFailed),
    /// A run that was asked to stop, after a complete batch.
    #[error(transparent)]
    Stopped(#[from] Stopped),
    /// An I/O error with nothing more to say about it.
    #[error(transparent)]
    Io(#[from] std::io::Error),
    /// JSON that could not be written or read.
    #[error(transparent)]
    Json(#[from] serde_json::Error),
    /// CSV that could not be written.
    #[error(transparent)]
    Csv(#[from] csv::Error),
}

/// `Result` with the library's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// A bad-input error with `message`.
    pub fn msg(message: impl Display) -> Self {
        Error::Invalid(message.to_string())
    }

    /// The error under any [`Error::Context`] layers that wrap another [`Error`].
    pub fn root(&self) -> &Error {
        let mut e = self;
        while let Error::Context { source, .. } = e {
            match source.downcast_ref::<Error>() {
                Some(inner) => e = inner,
                None => break,
            }
        }
        e
    }

    /// The message and every cause under it, joined by `: ` on one line (as anyhow's `{:#}`).
    pub fn chain(&self) -> String {
        let mut out = self.to_string();
        let mut next = std::error::Error::source(self);
        while let Some(e) = next {
            let s = e.to_string();
            if !out.ends_with(&s) {
                out.push_str(": ");
                out.push_str(&s);
            }
            next = e.source();
        }
        out
    }

    /// The stop this error reports, if it is one.
    pub fn stopped(&self) -> Option<&Stopped> {
        match self.root() {
            Error::Stopped(s) => Some(s),
            _ => None,
        }
    }
}

/// Adds what was being done to an error, or turns a `None` into a bad-input error.
pub trait Context<T> {
    /// Wraps the error with `context`.
    fn context(self, context: impl Display) -> Result<T>;
    /// Wraps the error with the context that `f` builds (only on failure).
    fn with_context<C: Display>(self, f: impl FnOnce() -> C) -> Result<T>;
}

impl<T, E: std::error::Error + Send + Sync + 'static> Context<T> for std::result::Result<T, E> {
    fn context(self, context: impl Display) -> Result<T> {
        self.map_err(|e| Error::Context {
            context: context.to_string(),
            source: Box::new(e),
        })
    }
    fn with_context<C: Display>(self, f: impl FnOnce() -> C) -> Result<T> {
        self.map_err(|e| Error::Context {
            context: f().to_string(),
            source: Box::new(e),
        })
    }
}

impl<T> Context<T> for Option<T> {
    fn context(self, context: impl Display) -> Result<T> {
        self.ok_or_else(|| Error::Invalid(context.to_string()))
    }
    fn with_context<C: Display>(self, f: impl FnOnce() -> C) -> Result<T> {
        self.ok_or_else(|| Error::Invalid(f().to_string()))
    }
}

/// `Error::Invalid(format!(...))`.
macro_rules! err {
    ($($t:tt)*) => {
        $crate::error::Error::Invalid(format!($($t)*))
    };
}

/// Returns `Err(err!(...))`.
macro_rules! bail {
    ($($t:tt)*) => {
        return Err($crate::error::err!($($t)*))
    };
}

/// Returns `Err(err!(...))` unless `cond` holds.
macro_rules! ensure {
    ($cond:expr, $($t:tt)*) => {
        if !$cond {
            $crate::error::bail!($($t)*);
        }
    };
}

pub(crate) use {bail, ensure, err};
