//! How a command fails.
//!
//! Real runtimes distinguish two kinds of failure and drivers rely on the difference: runtime
//! errors (exit 1, or 255 for `exec`, and a record in the `--log` file) and usage errors found
//! while parsing the command line (exit 1 for crun, 2 for youki's clap, nothing logged).

use super::flavour::Ctx;

/// A failed command, ready to be reported.
#[derive(Debug)]
pub(crate) struct Failure {
    message: String,
    code: u8,
    logged: bool,
}

impl Failure {
    /// A runtime error: exit status 1, logged to the `--log` file.
    pub(crate) fn runtime(message: impl Into<String>) -> Self {
        Self { message: message.into(), code: 1, logged: true }
    }

    /// A command-line error printed verbatim and never logged.
    pub(crate) fn usage(text: impl Into<String>, code: u8) -> Self {
        Self { message: text.into(), code, logged: false }
    }

    /// Overrides the exit status.
    pub(crate) fn with_code(mut self, code: u8) -> Self {
        self.code = code;
        self
    }

    /// Prepends context to the message, as runc does with `runc create failed: `.
    pub(crate) fn prefixed(mut self, prefix: &str) -> Self {
        self.message = format!("{prefix}{}", self.message);
        self
    }

    /// Prints the failure, logs it when appropriate and returns the exit status.
    pub(crate) fn report(&self, ctx: &Ctx) -> u8 {
        eprintln!("{}", self.message);
        if self.logged {
            ctx.log_error(&self.message);
        }
        self.code
    }
}

/// What a command returns: the exit status to use, or why it failed.
pub(crate) type CmdResult = Result<u8, Failure>;

/// Converts an I/O error into a runtime failure with context.
pub(crate) fn io_failure(what: impl std::fmt::Display, err: std::io::Error) -> Failure {
    Failure::runtime(format!("{what}: {err}"))
}
