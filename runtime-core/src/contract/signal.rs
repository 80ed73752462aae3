//! Signals as users write them: `TERM`, `SIGTERM`, `15`, `SIGRTMIN+3`.
//!
//! A signal is always handed to runtimes as its number: youki requires the argument and some
//! runtimes spell names differently, while every runtime accepts a number.

use std::fmt;
use std::str::FromStr;

use crate::contract::error::{Error, Result};

/// A validated signal number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Signal(i32);

impl Signal {
    /// SIGTERM, the polite stop.
    pub const TERM: Signal = Signal(libc::SIGTERM);
    /// SIGKILL, the stop that cannot be refused.
    pub const KILL: Signal = Signal(libc::SIGKILL);
    /// SIGINT.
    pub const INT: Signal = Signal(libc::SIGINT);
    /// SIGHUP.
    pub const HUP: Signal = Signal(libc::SIGHUP);
    /// SIGSTOP.
    pub const STOP: Signal = Signal(libc::SIGSTOP);
    /// SIGCONT.
    pub const CONT: Signal = Signal(libc::SIGCONT);

    /// A signal from its number, if the host has it (1 up to SIGRTMAX).
    pub fn from_number(number: i32) -> Result<Self> {
        if (1..=libc::SIGRTMAX()).contains(&number) {
            Ok(Signal(number))
        } else {
            Err(Error::InvalidSignal(number.to_string()))
        }
    }

    /// The signal number.
    pub fn number(self) -> i32 {
        self.0
    }

    /// The argv form runtimes get.
    pub fn to_arg(self) -> String {
        self.0.to_string()
    }
}

impl FromStr for Signal {
    type Err = Error;

    fn from_str(raw: &str) -> Result<Self> {
        let invalid = || Error::InvalidSignal(raw.to_owned());
        let text = raw.trim();
        if let Ok(number) = text.parse::<i32>() {
            return Signal::from_number(number).map_err(|_| invalid());
        }
        let upper = text.to_ascii_uppercase();
        let name = upper.strip_prefix("SIG").unwrap_or(&upper);
        if let Some(number) = realtime(name) {
            return Signal::from_number(number).map_err(|_| invalid());
        }
        let full = format!("SIG{name}");
        nix::sys::signal::Signal::from_str(&full).map(|signal| Signal(signal as i32)).map_err(|_| invalid())
    }
}

/// `RTMIN`, `RTMIN+n`, `RTMAX`, `RTMAX-n`, with the host's (libc's) bounds.
fn realtime(name: &str) -> Option<i32> {
    let offset = |rest: &str, sign: char| -> Option<i32> {
        if rest.is_empty() {
            return Some(0);
        }
        rest.strip_prefix(sign)?.parse::<i32>().ok()
    };
    let number = if let Some(rest) = name.strip_prefix("RTMIN") {
        libc::SIGRTMIN() + offset(rest, '+')?
    } else if let Some(rest) = name.strip_prefix("RTMAX") {
        libc::SIGRTMAX() - offset(rest, '-')?
    } else {
        return None;
    };
    (libc::SIGRTMIN()..=libc::SIGRTMAX()).contains(&number).then_some(number)
}

impl fmt::Display for Signal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match nix::sys::signal::Signal::try_from(self.0) {
            Ok(signal) => f.write_str(signal.as_str()),
            Err(_) => write!(f, "SIGRTMIN+{}", self.0 - libc::SIGRTMIN()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_names_with_and_without_prefix_and_numbers() {
        for text in ["TERM", "SIGTERM", "15", "term", "sigterm"] {
            assert_eq!(text.parse::<Signal>().unwrap(), Signal::TERM, "{text}");
        }
        assert_eq!("KILL".parse::<Signal>().unwrap().number(), 9);
        assert_eq!("SIGUSR1".parse::<Signal>().unwrap().number(), libc::SIGUSR1);
    }

    #[test]
    fn parses_realtime_signals_with_host_bounds() {
        assert_eq!("SIGRTMIN+3".parse::<Signal>().unwrap().number(), libc::SIGRTMIN() + 3);
        assert_eq!("RTMIN".parse::<Signal>().unwrap().number(), libc::SIGRTMIN());
        assert_eq!("SIGRTMAX-1".parse::<Signal>().unwrap().number(), libc::SIGRTMAX() - 1);
        assert!("SIGRTMIN+99".parse::<Signal>().is_err());
    }

    #[test]
    fn rejects_unknown_names_and_out_of_range_numbers() {
        for text in ["", "NOPE", "SIG", "0", "-9", "65", "15x", "RTMIN-1"] {
            assert!(text.parse::<Signal>().is_err(), "{text}");
        }
    }

    #[test]
    fn is_passed_to_runtimes_as_a_number() {
        assert_eq!("SIGRTMIN+3".parse::<Signal>().unwrap().to_arg(), (libc::SIGRTMIN() + 3).to_string());
        assert_eq!(Signal::KILL.to_arg(), "9");
    }

    #[test]
    fn displays_its_name() {
        assert_eq!(Signal::TERM.to_string(), "SIGTERM");
        assert_eq!("SIGRTMIN+3".parse::<Signal>().unwrap().to_string(), "SIGRTMIN+3");
    }
}
