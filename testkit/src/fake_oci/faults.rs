//! Fault injection: making a command fail, hang, die or lie on demand, so a driver's error,
//! timeout and parsing paths can be tested without a broken real runtime.
//!
//! Rules come from the environment variable `FAKE_OCI_FAULTS` (separated by `;`) followed by the
//! file `<root>/faults` (one per line; blank lines and lines starting with `#` are ignored):
//!
//! ```text
//! rule    := command "=" fault
//! command := a subcommand name as typed ("create", "checkpointt", ...), "version" for
//!            --version, or "*" for every command
//! fault   := "fail:" message      fail as a runtime error with that message
//!          | "hang"               block forever before doing anything
//!          | "signal:" number     kill itself with that signal before doing anything
//!          | "malformed-json"     print `{"broken` on stdout and exit 0
//!          | "slow:" millis       sleep, then behave normally
//!          | "no-pid-file"        create/exec/run/restore skip writing the pid file
//! ```
//!
//! Every matching rule applies, in order (environment first), so `create=slow:200` and
//! `create=no-pid-file` combine. The file form lets a test change faults for processes it does
//! not spawn itself (the driver under test calls the runtime); the variable suits one-shot CLI
//! tests. An unparsable rule is itself reported as a failure so that typos do not pass silently.

use std::io::Write;
use std::path::Path;
use std::thread;
use std::time::Duration;

use nix::sys::signal::{Signal, raise};

use super::error::Failure;

/// One kind of misbehaviour.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Fault {
    Fail(String),
    Hang,
    Signal(i32),
    MalformedJson,
    Slow(u64),
    NoPidFile,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Rule {
    command: String,
    fault: Fault,
}

fn parse_rule(text: &str) -> Result<Rule, Failure> {
    let invalid = |why: &str| Failure::runtime(format!("fake-oci: invalid fault rule {text:?}: {why}"));
    let (command, fault) = text.split_once('=').ok_or_else(|| invalid("expected <command>=<fault>"))?;
    let fault = match fault.trim() {
        "hang" => Fault::Hang,
        "malformed-json" => Fault::MalformedJson,
        "no-pid-file" => Fault::NoPidFile,
        other => match other.split_once(':') {
            Some(("fail", message)) => Fault::Fail(message.to_string()),
            Some(("signal", number)) => {
                let number: i32 = number.trim().parse().map_err(|_| invalid("signal needs a number"))?;
                Signal::try_from(number).map_err(|_| invalid("no such signal"))?;
                Fault::Signal(number)
            }
            Some(("slow", millis)) => {
                Fault::Slow(millis.trim().parse().map_err(|_| invalid("slow needs milliseconds"))?)
            }
            _ => return Err(invalid("unknown fault")),
        },
    };
    Ok(Rule { command: command.trim().to_string(), fault })
}

fn load(root: &Path) -> Result<Vec<Rule>, Failure> {
    let mut rules = Vec::new();
    if let Ok(spec) = std::env::var("FAKE_OCI_FAULTS") {
        for text in spec.split(';').map(str::trim).filter(|t| !t.is_empty()) {
            rules.push(parse_rule(text)?);
        }
    }
    if let Ok(file) = std::fs::read_to_string(root.join("faults")) {
        for text in file.lines().map(str::trim).filter(|t| !t.is_empty() && !t.starts_with('#')) {
            rules.push(parse_rule(text)?);
        }
    }
    Ok(rules)
}

/// What the command should do after faults were applied.
#[derive(Debug)]
pub(crate) enum Verdict {
    /// Run normally; `no_pid_file` tells commands that write pid files to skip them.
    Proceed { no_pid_file: bool },
    /// Stop now with this exit status (the fault already produced its output).
    Exit(u8),
    /// Fail with this error.
    Fail(Failure),
}

/// Applies every rule matching `command`. `failure_code` is the exit status the command uses for
/// runtime errors (255 for `exec` on runc and youki).
pub(crate) fn apply(root: &Path, command: &str, failure_code: u8) -> Verdict {
    let rules = match load(root) {
        Ok(rules) => rules,
        Err(failure) => return Verdict::Fail(failure),
    };
    let mut no_pid_file = false;
    for rule in rules.into_iter().filter(|r| r.command == "*" || r.command == command) {
        match rule.fault {
            Fault::Slow(millis) => thread::sleep(Duration::from_millis(millis)),
            Fault::Hang => loop {
                thread::sleep(Duration::from_secs(3600));
            },
            Fault::Signal(number) => {
                if let Ok(signal) = Signal::try_from(number) {
                    let _ = raise(signal);
                }
                // Still here: the signal is ignored or handled by default (SIGPIPE is ignored by
                // the Rust runtime). Report it the way a shell would.
                return Verdict::Exit(u8::try_from(128 + number).unwrap_or(255));
            }
            Fault::Fail(message) => {
                return Verdict::Fail(Failure::runtime(message).with_code(failure_code));
            }
            Fault::MalformedJson => {
                let mut out = std::io::stdout();
                let _ = out.write_all(b"{\"broken");
                let _ = out.flush();
                return Verdict::Exit(0);
            }
            Fault::NoPidFile => no_pid_file = true,
        }
    }
    Verdict::Proceed { no_pid_file }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_fault_kind() {
        let cases = [
            ("create=hang", Fault::Hang),
            ("*=malformed-json", Fault::MalformedJson),
            ("exec=no-pid-file", Fault::NoPidFile),
            ("state=fail:boom: with colon", Fault::Fail("boom: with colon".into())),
            ("kill=signal:9", Fault::Signal(9)),
            ("start=slow:250", Fault::Slow(250)),
        ];
        for (text, fault) in cases {
            assert_eq!(parse_rule(text).expect(text).fault, fault, "{text}");
        }
        assert!(parse_rule("create").is_err());
        assert!(parse_rule("create=explode").is_err());
        assert!(parse_rule("create=signal:x").is_err());
    }
}
