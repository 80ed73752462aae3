//! Fault injection: making a command fail, hang, die or lie on demand, so a driver's error,
//! timeout and parsing paths can be tested without a broken real runtime.
//!
//! Rules come from the file `<root>/faults`, one per line (blank lines and lines starting with
//! `#` are ignored), so a test can change them for runtime processes it does not spawn itself:
//!
//! ```text
//! rule    := command "=" fault
//! command := a subcommand name as typed ("create", "checkpointt", ...), "version" for
//!            --version, or "*" for every command
//! fault   := "fail:" message      fail as a runtime error with that message
//!          | "fail-first:" n ":" message
//!                                 the first n runs of the command fail so, before doing
//!                                 anything; later ones behave normally
//!          | "hang"               block forever before doing anything
//!          | "signal:" number     kill itself with that signal before doing anything
//!          | "malformed-json"     print `{"broken` on stdout and exit 0
//!          | "slow:" millis       sleep, then behave normally
//!          | "no-pid-file"        create/exec/restore skip writing the pid file
//! ```
//!
//! Every matching rule applies, in order, so `create=slow:200` and `create=no-pid-file` combine.
//! An unparsable rule is itself reported as a failure so that typos do not pass silently.

use std::io::Write;
use std::path::Path;
use std::thread;
use std::time::Duration;

use nix::sys::signal::{Signal, raise};

use super::Failure;

/// One kind of misbehaviour.
#[derive(Debug)]
enum Fault {
    Fail(String),
    FailFirst(u32, String),
    Hang,
    Signal(i32),
    MalformedJson,
    Slow(u64),
    NoPidFile,
}

/// The command and fault of one rule.
fn parse_rule(text: &str) -> Result<(&str, Fault), Failure> {
    let invalid = || Failure::runtime(format!("fake-oci: invalid fault rule {text:?}"));
    let (command, fault) = text.split_once('=').ok_or_else(invalid)?;
    let fault = match fault.trim().split_once(':') {
        None if fault.trim() == "hang" => Fault::Hang,
        None if fault.trim() == "malformed-json" => Fault::MalformedJson,
        None if fault.trim() == "no-pid-file" => Fault::NoPidFile,
        Some(("fail", message)) => Fault::Fail(message.to_owned()),
        Some(("fail-first", rest)) => {
            let (count, message) = rest.split_once(':').ok_or_else(invalid)?;
            Fault::FailFirst(count.trim().parse().map_err(|_| invalid())?, message.to_owned())
        }
        Some(("signal", number)) => Fault::Signal(number.trim().parse().map_err(|_| invalid())?),
        Some(("slow", millis)) => Fault::Slow(millis.trim().parse().map_err(|_| invalid())?),
        _ => return Err(invalid()),
    };
    Ok((command.trim(), fault))
}

/// Whether this run is one of the first `count` that rule `index` fails: each failing run
/// claims a marker file of its own, made only if it is not there, so runs side by side never
/// claim the same one.
fn claim_a_failing_run(root: &Path, index: usize, count: u32) -> bool {
    (0..count).any(|run| {
        let marker = root.join(format!("faults.failed-{index}-{run}"));
        std::fs::OpenOptions::new().write(true).create_new(true).open(marker).is_ok()
    })
}

/// Applies every rule matching `command`; `failure_code` is the exit status the command uses
/// for runtime errors (255 for `exec` on runc and youki). Returns whether pid files are to be
/// skipped; faults that end the command (`signal`, `malformed-json`) exit the process.
pub(crate) fn apply(root: &Path, command: &str, failure_code: u8) -> Result<bool, Failure> {
    let file = std::fs::read_to_string(root.join("faults")).unwrap_or_default();
    let rules: Vec<(&str, Fault)> = file
        .lines()
        .map(str::trim)
        .filter(|text| !text.is_empty() && !text.starts_with('#'))
        .map(parse_rule)
        .collect::<Result<_, _>>()?;
    let mut no_pid_file = false;
    for (index, (_, fault)) in rules.into_iter().enumerate().filter(|(_, (rule, _))| *rule == "*" || *rule == command) {
        match fault {
            Fault::Slow(millis) => thread::sleep(Duration::from_millis(millis)),
            Fault::Hang => loop {
                thread::sleep(Duration::from_secs(3600));
            },
            Fault::Signal(number) => {
                Signal::try_from(number).map(raise).ok();
                // Still here: the signal is ignored or handled by default (SIGPIPE is ignored by
                // the Rust runtime). Report it the way a shell would.
                std::process::exit(128 + number);
            }
            Fault::Fail(message) => {
                return Err(Failure::runtime(message).with_code(failure_code));
            }
            Fault::FailFirst(count, message) => {
                if claim_a_failing_run(root, index, count) {
                    return Err(Failure::runtime(message).with_code(failure_code));
                }
            }
            Fault::MalformedJson => {
                let mut out = std::io::stdout();
                let _ = out.write_all(b"{\"broken");
                let _ = out.flush();
                std::process::exit(0);
            }
            Fault::NoPidFile => no_pid_file = true,
        }
    }
    Ok(no_pid_file)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fail_first_fails_that_many_runs_of_its_command_only() {
        let root = tempfile::tempdir().unwrap();
        std::fs::write(root.path().join("faults"), "create=fail-first:2:failed to seal /proc/self/exe\n").unwrap();
        let runs: Vec<bool> = (0..4).map(|_| apply(root.path(), "create", 1).is_err()).collect();
        assert_eq!(runs, [true, true, false, false], "the first two creates fail");
        assert!(apply(root.path(), "start", 1).is_ok(), "another command is left alone");
        std::fs::write(root.path().join("faults"), "create=fail-first:two:x\n").unwrap();
        let refused = apply(root.path(), "create", 1).unwrap_err();
        assert!(refused.message.contains("invalid fault rule"), "an unreadable count: {}", refused.message);
    }
}
