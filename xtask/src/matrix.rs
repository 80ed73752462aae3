//! `cargo xtask matrix`: the conformance suite over every backend and monitor found, as one
//! table.
//!
//! Every backend crate (and testkit, for plugins) has a `conformance` test binary that registers
//! the backend's cases for its fake and, through the gate, for its real runtime, and an `engine`
//! test binary that registers the engine's cases once per monitor: `<backend>+direct` (the
//! embedding process supervises) and `<backend>+conmon` for every subject (a fake runtime under
//! the fake conmon, a real one under the real conmon). This task runs them all and reads the
//! outcome of each `conformance::<subject>::<case>` back into a table of cases by subject, so
//! the columns are backend × monitor (`runc+conmon`, `runc-fake+direct`) beside the
//! backend-only columns (`runc`, `runc-fake`), whose cases drive the runtime without a monitor.
//! Real runtimes and conmon that are missing show as skipped with the gate's reason; named in
//! `REQUIRE_REAL_RUNTIMES` they fail instead, and a case that needs what its monitor cannot do
//! is skipped with the monitor's reason. It builds what the suite loads first, so it works as
//! the first command on a fresh clone.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader};
use std::process::Stdio;

use anyhow::{Context, bail};

use crate::{cargo, run_command};

/// One test's outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Outcome {
    Passed,
    Failed,
    Skipped(String),
}

/// `test conformance::<subject>::<case> ... <outcome>` → (subject, case, outcome).
fn parse_line(line: &str) -> Option<(String, String, Outcome)> {
    let rest = line.strip_prefix("test conformance::")?;
    let (name, result) = rest.split_once(" ... ")?;
    // The harness pads names to align the outcomes.
    let (subject, case) = name.trim_end().split_once("::")?;
    let outcome = match result.trim() {
        "ok" => Outcome::Passed,
        "FAILED" => Outcome::Failed,
        other => Outcome::Skipped(
            other.strip_prefix("ignored (").and_then(|r| r.strip_suffix(')')).unwrap_or("ignored").to_owned(),
        ),
    };
    Some((subject.to_owned(), case.to_owned(), outcome))
}

pub fn run() -> anyhow::Result<()> {
    // The plugin subject loads testkit's example plugin, a cdylib that `cargo test --test` does
    // not build; without this a fresh clone would report every plugin case as failed.
    run_command(&mut cargo(["build", "-p", "testkit", "--example", "fake_plugin"]))?;
    // Every binary runs even after one fails: the table is the whole matrix, failures included.
    let mut command = cargo([
        "test",
        "--workspace",
        "--no-fail-fast",
        "--test",
        "conformance",
        "--test",
        "engine",
        "--",
        "--color",
        "never",
    ]);
    command.stdout(Stdio::piped());
    eprintln!("xtask: running {command:?}");
    let mut child = command.spawn().context("cannot run cargo test")?;
    let stdout = child.stdout.take().context("no stdout")?;
    let mut results: BTreeMap<(String, String), Outcome> = BTreeMap::new();
    for line in BufReader::new(stdout).lines() {
        let line = line.context("reading cargo test output")?;
        println!("{line}");
        if let Some((subject, case, outcome)) = parse_line(&line) {
            results.insert((case, subject), outcome);
        }
    }
    let status = child.wait().context("waiting for cargo test")?;
    if results.is_empty() {
        bail!("no conformance results: cargo test {status}");
    }
    print_table(&results);
    if !status.success() {
        bail!("the conformance matrix has failures ({status})");
    }
    Ok(())
}

fn print_table(results: &BTreeMap<(String, String), Outcome>) {
    let subjects: BTreeSet<&String> = results.keys().map(|(_, subject)| subject).collect();
    let cases: BTreeSet<&String> = results.keys().map(|(case, _)| case).collect();
    let case_width = cases.iter().map(|case| case.len()).max().unwrap_or(0);
    println!(
        "\nConformance matrix (columns: backend, or backend+monitor for the engine's cases; cells: ok, FAIL, skip)\n"
    );
    print!("{:case_width$}", "case");
    // Each column as wide as its label (`plugin-fake+direct`), at least as wide as "FAIL".
    let width = |subject: &str| subject.len().max(4);
    for subject in &subjects {
        print!("  {subject:>w$}", w = width(subject));
    }
    println!();
    for case in &cases {
        print!("{case:case_width$}");
        for subject in &subjects {
            let cell = match results.get(&((*case).clone(), (*subject).clone())) {
                Some(Outcome::Passed) => "ok",
                Some(Outcome::Failed) => "FAIL",
                Some(Outcome::Skipped(_)) => "skip",
                None => "-",
            };
            print!("  {cell:>w$}", w = width(subject));
        }
        println!();
    }
    let mut reasons: BTreeMap<(&String, &String), BTreeSet<&String>> = BTreeMap::new();
    for ((case, subject), outcome) in results {
        if let Outcome::Skipped(reason) = outcome {
            reasons.entry((subject, reason)).or_default().insert(case);
        }
    }
    if !reasons.is_empty() {
        println!("\nSkipped:");
        for ((subject, reason), cases) in reasons {
            println!("  {subject}: {reason} ({} case(s))", cases.len());
        }
    }
    let count = |wanted: fn(&Outcome) -> bool| results.values().filter(|outcome| wanted(outcome)).count();
    println!(
        "\n{} passed, {} failed, {} skipped",
        count(|o| *o == Outcome::Passed),
        count(|o| *o == Outcome::Failed),
        count(|o| matches!(o, Outcome::Skipped(_)))
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_passed_failed_and_skipped_lines() {
        assert_eq!(
            parse_line("test conformance::runc-fake::create_start_kill_delete ... ok"),
            Some(("runc-fake".into(), "create_start_kill_delete".into(), Outcome::Passed))
        );
        assert_eq!(parse_line("test conformance::crun::list ... FAILED").unwrap().2, Outcome::Failed);
        assert_eq!(
            parse_line("test conformance::crun::list      ... ok"),
            Some(("crun".into(), "list".into(), Outcome::Passed)),
            "padding is not part of the name"
        );
        assert_eq!(
            parse_line("test conformance::youki::x ... ignored (youki is not in PATH)").unwrap().2,
            Outcome::Skipped("youki is not in PATH".into())
        );
        assert_eq!(parse_line("test other::thing ... ok"), None);
    }

    #[test]
    fn reads_backend_and_monitor_labels_as_one_subject() {
        assert_eq!(
            parse_line("test conformance::runc+conmon::exit_code_is_reported_and_recorded ... ok"),
            Some(("runc+conmon".into(), "exit_code_is_reported_and_recorded".into(), Outcome::Passed))
        );
        assert_eq!(
            parse_line("test conformance::runc-fake+direct::stop_of_a_gone_container_succeeds   ... FAILED"),
            Some(("runc-fake+direct".into(), "stop_of_a_gone_container_succeeds".into(), Outcome::Failed))
        );
        assert_eq!(
            parse_line(
                "test conformance::crun+conmon::exec_stop_ends_every_process_the_session_started ... ignored (the conmon monitor cannot supervise a process exec'd in the background)"
            ),
            Some((
                "crun+conmon".into(),
                "exec_stop_ends_every_process_the_session_started".into(),
                Outcome::Skipped("the conmon monitor cannot supervise a process exec'd in the background".into())
            ))
        );
        assert_eq!(
            parse_line("test conformance::youki+conmon::x ... ignored (conmon is not in PATH (`cargo xtask setup` installs it))")
                .unwrap()
                .2,
            Outcome::Skipped("conmon is not in PATH (`cargo xtask setup` installs it)".into()),
            "a reason with parentheses of its own is kept whole"
        );
    }
}
