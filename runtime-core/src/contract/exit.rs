//! How a process ended: one vocabulary for runtime processes and containers alike.
//!
//! A runtime call that failed carries the [`Exit`] of the runtime process; a monitor reports the
//! [`Exit`] of a container's init. The third case, [`Exit::Unknown`], exists because a monitor
//! can find a container gone without having seen how it ended (the embedding process restarted
//! in between, an exit file never written): that is reported as unknown, never as a guessed code.

use std::fmt;

use crate::contract::signal::Signal;

/// How a process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Exit {
    /// It exited with this code.
    Exited(i32),
    /// It was killed by this signal.
    Signaled(Signal),
    /// It is gone, but nobody saw how. Only monitors report this; a runtime process the library
    /// waited for always has a known ending.
    Unknown,
}

impl Exit {
    /// The status as a shell (and conmon's exit file) writes it: the code, or 128 + the signal
    /// number; `None` when unknown.
    pub fn shell_code(self) -> Option<i32> {
        match self {
            Exit::Exited(code) => Some(code),
            Exit::Signaled(signal) => Some(128 + signal.number()),
            Exit::Unknown => None,
        }
    }

    /// True for `Exited(0)`.
    pub fn success(self) -> bool {
        self == Exit::Exited(0)
    }
}

impl fmt::Display for Exit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Exit::Exited(code) => write!(f, "exited with status {code}"),
            Exit::Signaled(signal) => write!(f, "was killed by signal {}", signal.number()),
            Exit::Unknown => f.write_str("ended, but how was not seen"),
        }
    }
}

impl From<std::process::ExitStatus> for Exit {
    fn from(status: std::process::ExitStatus) -> Self {
        use std::os::unix::process::ExitStatusExt;
        match (status.code(), status.signal().map(Signal::from_number)) {
            (Some(code), _) => Exit::Exited(code),
            (None, Some(Ok(signal))) => Exit::Signaled(signal),
            // `wait` on an ended child always gives a code or a valid signal; anything else is
            // not invented into a code.
            _ => Exit::Unknown,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shell_codes_follow_the_128_plus_signal_convention() {
        assert_eq!(Exit::Exited(7).shell_code(), Some(7));
        assert_eq!(Exit::Signaled(Signal::TERM).shell_code(), Some(143));
        assert_eq!(Exit::Signaled(Signal::KILL).shell_code(), Some(137));
        assert_eq!(Exit::Unknown.shell_code(), None);
    }

    #[test]
    fn std_statuses_of_real_children_convert() {
        let exited = std::process::Command::new("sh").args(["-c", "exit 3"]).status().unwrap();
        assert_eq!(Exit::from(exited), Exit::Exited(3));
        let killed = std::process::Command::new("sh").args(["-c", "kill -KILL $$"]).status().unwrap();
        assert_eq!(Exit::from(killed), Exit::Signaled(Signal::KILL));
    }
}
