//! Fault injection for `fake-conmon`: one conmon misbehaving on demand, so that
//! `ConmonMonitor`'s error, timeout and clean-up paths can be tested without breaking the real
//! one.
//!
//! Rules come from the file `faults` beside the program's link (see
//! [`crate::fake::FakeConmon::inject`]), one per line (blank lines and lines starting with `#`
//! are ignored). A file per fake, not the environment: tests run side by side in threads of one
//! process, and the conmon under test is started by the product, not by the test.
//!
//! ```text
//! fault := "signal:" number   the process the caller started says so on stderr and kills
//!                             itself with that signal before doing anything (it never forks)
//!        | "hang-before-fork" the process the caller started blocks forever after the start
//!                             byte, before forking: it never exits
//!        | "never-answer"     the runtime creates the container, then conmon holds its sync
//!                             pipe open without a word, forever
//!        | "die-before-sync"  the runtime creates the container, then conmon exits 1 without
//!                             answering (its sync pipe closes)
//!        | "refuse:" message  the runtime creates the container, then conmon answers
//!                             `{"data": -1, "message": ...}` and exits 1, as after a failed create
//!        | "garbage"          the runtime creates the container, then conmon writes a line that
//!                             is not JSON on its sync pipe and goes on supervising
//!        | "no-exit-file"     everything as usual, but when the container exits conmon ends
//!                             without writing either exit file
//! ```
//!
//! The faults after the runtime ran leave a container behind for the caller to remove, which
//! is what they test. An unparsable rule makes the fake exit 2 at once, so a typo cannot pass as
//! a working conmon.

use std::path::Path;

/// One kind of misbehaviour.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Fault {
    Signal(i32),
    HangBeforeFork,
    NeverAnswer,
    DieBeforeSync,
    Refuse(String),
    Garbage,
    NoExitFile,
}

/// The line `fake-conmon` writes on its sync pipe for the `garbage` fault.
pub(crate) const GARBAGE: &str = "fake-conmon: this is not JSON\n";

fn parse_rule(text: &str) -> Result<Fault, String> {
    let fault = match text.split_once(':') {
        None if text == "hang-before-fork" => Fault::HangBeforeFork,
        None if text == "never-answer" => Fault::NeverAnswer,
        None if text == "die-before-sync" => Fault::DieBeforeSync,
        None if text == "garbage" => Fault::Garbage,
        None if text == "no-exit-file" => Fault::NoExitFile,
        Some(("signal", number)) => {
            Fault::Signal(number.trim().parse().map_err(|_| format!("invalid fault rule {text:?}"))?)
        }
        Some(("refuse", message)) => Fault::Refuse(message.to_owned()),
        _ => return Err(format!("invalid fault rule {text:?}")),
    };
    Ok(fault)
}

/// The faults in `file` (none when it is not there), or why a rule cannot be read.
pub(crate) fn load(file: &Path) -> Result<Vec<Fault>, String> {
    std::fs::read_to_string(file)
        .unwrap_or_default()
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .map(parse_rule)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_documented_rule_parses_and_a_typo_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("faults");
        std::fs::write(
            &file,
            "# comment\n\nsignal:9\nhang-before-fork\nnever-answer\ndie-before-sync\nrefuse:no: way\ngarbage\n\
             no-exit-file\n",
        )
        .unwrap();
        assert_eq!(
            load(&file).unwrap(),
            vec![
                Fault::Signal(9),
                Fault::HangBeforeFork,
                Fault::NeverAnswer,
                Fault::DieBeforeSync,
                Fault::Refuse("no: way".into()),
                Fault::Garbage,
                Fault::NoExitFile,
            ]
        );
        std::fs::write(&file, "never-answers\n").unwrap();
        assert!(load(&file).is_err());
        assert_eq!(load(&dir.path().join("absent")).unwrap(), Vec::new());
    }
}
