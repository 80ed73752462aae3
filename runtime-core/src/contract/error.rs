//! The one error type of the contract.
//!
//! Every failure a caller can act on has its own variant, and every variant that comes from a
//! runtime process carries the evidence: the argv that ran, how it ended, and the runtime's own
//! message. Callers match on `NotFound`, `AlreadyExists` and `InvalidState` without caring which
//! runtime worded them.

use std::ffi::OsString;
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use crate::contract::exit::Exit;

/// Shorthand for results of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What a runtime process did when it failed: the evidence attached to runtime errors.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// The whole argv, binary first.
    pub argv: Vec<OsString>,
    /// How the process ended.
    pub status: Exit,
    /// The runtime's own message: the last `error` record of its JSON log, else its stderr.
    pub message: String,
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "`{}` {}: {}", display_argv(&self.argv), self.status, self.message)
    }
}

/// Everything that can go wrong when driving a runtime.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The runtime does not know this container.
    #[error("container {id} does not exist: {failure}")]
    NotFound {
        /// The container asked for.
        id: String,
        /// The runtime call that said so.
        failure: Box<Failure>,
    },
    /// A container with this id already exists.
    #[error("container {id} already exists: {failure}")]
    AlreadyExists {
        /// The container asked for.
        id: String,
        /// The runtime call that said so.
        failure: Box<Failure>,
    },
    /// The container is not in a state that allows the operation (delete a running container,
    /// start a stopped one, pause a stopped one...).
    #[error("container {id} is in the wrong state: {failure}")]
    InvalidState {
        /// The container asked for.
        id: String,
        /// The runtime call that said so.
        failure: Box<Failure>,
    },
    /// The backend cannot do this, as decided by its probes; nothing was run.
    #[error("{backend} does not support {feature}: {reason}")]
    Unsupported {
        /// The backend's name.
        backend: String,
        /// The operation or option asked for.
        feature: String,
        /// Why, with the evidence that decided it.
        reason: String,
    },
    /// The host is set up in a way the runtime refuses; nothing was run.
    #[error("{backend} cannot run on this host: {problem}; fix: {fix}")]
    HostIncompatible {
        /// The backend's name.
        backend: String,
        /// What is wrong with the host.
        problem: String,
        /// What makes it work.
        fix: String,
    },
    /// The runtime failed in a way none of the typed variants describe.
    #[error("runtime failed: {0}")]
    RuntimeFailed(Box<Failure>),
    /// The runtime did not finish in time; its process group was killed.
    #[error("`{}` did not finish within {after:?}; its process group was killed", display_argv(argv))]
    Timeout {
        /// The whole argv, binary first.
        argv: Vec<OsString>,
        /// The limit that expired.
        after: Duration,
    },
    /// The runtime binary is not there or cannot be executed.
    #[error("runtime binary {path} not found: {source}")]
    BinaryNotFound {
        /// The path that was tried.
        path: PathBuf,
        /// Why it could not be run.
        source: std::io::Error,
    },
    /// A container id outside the accepted grammar.
    #[error("invalid container id {id:?}: {reason}")]
    InvalidId {
        /// The id as given (possibly shortened).
        id: String,
        /// Which rule it breaks.
        reason: &'static str,
    },
    /// A signal that is not a name or number this host knows.
    #[error("invalid signal {0:?}")]
    InvalidSignal(String),
    /// A local I/O failure (temp files, pipes, spawning).
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The underlying error.
        source: std::io::Error,
    },
    /// Output of a runtime (or a file it wrote) that could not be understood.
    #[error("cannot parse {what}: {message}")]
    Parse {
        /// What was being parsed.
        what: String,
        /// Why it failed, with the start of the input.
        message: String,
    },
    /// A container did not exit even after SIGKILL: its process is stuck (in the kernel, or
    /// frozen) and is still there.
    #[error("container {id} did not exit within {waited:?} of SIGKILL{}", pid.map(|pid| format!(" (init pid {pid})")).unwrap_or_default())]
    DidNotStop {
        /// The container.
        id: String,
        /// Its init pid, when known.
        pid: Option<u32>,
        /// How long it was given after SIGKILL.
        waited: Duration,
    },
    /// A process the caller named is not one this monitor supervises.
    #[error("{what} is not supervised by this monitor")]
    NotSupervised {
        /// The process, as the caller named it.
        what: String,
    },
    /// A backend plugin could not be loaded; nothing from it was called beyond its descriptor.
    #[error("plugin {path}: {problem}")]
    Plugin {
        /// The shared library.
        path: PathBuf,
        /// What is wrong with it.
        problem: PluginProblem,
    },
}

/// Why a backend plugin was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PluginProblem {
    /// The shared library could not be opened.
    #[error("cannot open: {0}")]
    Open(String),
    /// The library does not export the descriptor symbol.
    #[error("missing symbol {symbol}: {message}")]
    MissingSymbol {
        /// The symbol looked for.
        symbol: String,
        /// The loader's message.
        message: String,
    },
    /// The plugin speaks another ABI version.
    #[error("ABI version {found}, this build speaks {expected}")]
    AbiVersion {
        /// The version the plugin declares.
        found: u32,
        /// The version this build understands.
        expected: u32,
    },
    /// The descriptor is null, not UTF-8, or its dialect is not valid.
    #[error("malformed descriptor: {0}")]
    Malformed(String),
}

impl Error {
    pub(crate) fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        Error::Io { context: context.into(), source }
    }

    pub(crate) fn parse(what: impl Into<String>, message: impl Into<String>) -> Self {
        Error::Parse { what: what.into(), message: message.into() }
    }

    /// The runtime call behind this error, when it came from one.
    pub fn failure(&self) -> Option<&Failure> {
        match self {
            Error::NotFound { failure, .. }
            | Error::AlreadyExists { failure, .. }
            | Error::InvalidState { failure, .. }
            | Error::RuntimeFailed(failure) => Some(failure),
            _ => None,
        }
    }
}

/// Renders an argv for messages: space separated, lossy for non-UTF-8.
pub(crate) fn display_argv(argv: &[OsString]) -> String {
    argv.iter().map(|arg| arg.to_string_lossy()).collect::<Vec<_>>().join(" ")
}
