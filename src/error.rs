//! The library's error type. Every fallible function of the library returns [`Result`]; the
//! message is one line that names the file, flag or quantity and says what is wrong. The command
//! line maps [`Error::exit_code`] to its exit status.
use std::fmt::Display;

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
    /// A malformed MNIST IDX file.
    #[error(transparent)]
    Idx(#[from] crate::data::IdxError),
    /// Part 1 diverged: an equation's value stopped being finite.
    #[error(transparent)]
    Diverged(#[from] crate::backprop::train::Diverged),
    /// A training run failed on its own (its loss stopped being finite).
    #[error(transparent)]
    RunFailed(#[from] crate::train::RunFailed),
    /// A training run was stopped after a complete batch.
    #[error(transparent)]
    Interrupted(#[from] crate::train::Interrupted),
    /// A [`Trainer`](crate::train::Trainer) epoch that ended early.
    #[error(transparent)]
    Train(#[from] crate::train::TrainError),
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

    /// The exit code the command line gives this error: 1 for a run that failed on its own
    /// (divergence, a non-finite training loss), 130 for a stopped run, 2 for everything else
    /// (bad input).
    pub fn exit_code(&self) -> u8 {
        match self.root() {
            Error::RunFailed(_)
            | Error::Diverged(_)
            | Error::Train(crate::train::TrainError::NonFinite(_)) => 1,
            Error::Interrupted(_) | Error::Train(crate::train::TrainError::Stopped { .. }) => 130,
            _ => 2,
        }
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

    /// The interruption this error reports, if it is one.
    pub fn interrupted(&self) -> Option<&crate::train::Interrupted> {
        match self.root() {
            Error::Interrupted(i) => Some(i),
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
