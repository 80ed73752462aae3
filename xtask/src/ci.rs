//! `cargo xtask ci`: the steps `.ci/run` takes, in the same order and with the same
//! environment, each as `cargo xtask <step>` would run it (this program again, as a child).
//!
//! The list is data so that a test can hold `.ci/run` to it: the two must never drift apart.
//! The matrix runs twice: first on the host as found (a fresh clone must pass it before
//! anything is installed), then after setup with every real runtime the code drives, conmon and
//! CRIU and the rootless user required, so a missing one fails instead of being skipped, and any `fail` fails CI. The
//! bench's quick run comes last: it must complete (an error fails it), its targets are reported
//! as met or missed, never enforced.

use std::process::Command;

use anyhow::Context;

use crate::run_command;

/// The real runtimes the landed code drives, conmon (the monitor that lets containers outlive
/// the caller), CRIU, which checkpoint and restore need, and the unprivileged user setup makes
/// for the rootless cases; the steps after setup require them all.
pub const DRIVEN_RUNTIMES: &str = "runc,crun,youki,conmon,criu,rootless";

/// One step: `cargo xtask <args>`, with `REQUIRE_REAL_RUNTIMES` set to [`DRIVEN_RUNTIMES`]
/// when `requires_real_runtimes`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Step {
    /// The task and its arguments.
    pub args: &'static [&'static str],
    /// Whether every runtime the code drives must be there.
    pub requires_real_runtimes: bool,
}

/// CI, in order.
pub const STEPS: &[Step] = &[
    Step { args: &["matrix"], requires_real_runtimes: false },
    Step { args: &["setup"], requires_real_runtimes: false },
    Step { args: &["matrix"], requires_real_runtimes: true },
    Step { args: &["test"], requires_real_runtimes: true },
    Step { args: &["bench", "--quick"], requires_real_runtimes: true },
];

/// Runs every step in turn, stopping at the first that fails.
pub fn run() -> anyhow::Result<()> {
    let xtask = std::env::current_exe().context("this program's path")?;
    for step in STEPS {
        let mut command = Command::new(&xtask);
        command.args(step.args);
        if step.requires_real_runtimes {
            command.env(testkit::gate::REQUIRE_ENV, DRIVEN_RUNTIMES);
        } else {
            command.env_remove(testkit::gate::REQUIRE_ENV);
        }
        run_command(&mut command)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The `cargo xtask` commands `.ci/run` runs, each with the runtimes it requires (from an
    /// `export REQUIRE_REAL_RUNTIMES=...` before it, or an assignment in front of it).
    fn steps_of_ci_script() -> Vec<(Vec<String>, Option<String>)> {
        let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../.ci/run");
        let script = std::fs::read_to_string(&script).unwrap();
        let mut exported = None;
        let mut steps = Vec::new();
        for line in script.lines().map(str::trim).filter(|line| !line.is_empty() && !line.starts_with('#')) {
            let mut words: Vec<&str> = line.split_whitespace().collect();
            if words[0] == "export" {
                if let Some(names) = words[1].strip_prefix("REQUIRE_REAL_RUNTIMES=") {
                    exported = Some(names.to_owned());
                }
                continue;
            }
            let mut required = exported.clone();
            if let Some(names) = words[0].strip_prefix("REQUIRE_REAL_RUNTIMES=") {
                required = Some(names.to_owned());
                words.remove(0);
            }
            if let ["cargo", "xtask", args @ ..] = words.as_slice() {
                steps.push((args.iter().map(|arg| (*arg).to_owned()).collect(), required));
            }
        }
        steps
    }

    #[test]
    fn ci_script_and_xtask_ci_take_the_same_steps() {
        let by_xtask: Vec<(Vec<String>, Option<String>)> = STEPS
            .iter()
            .map(|step| {
                let args = step.args.iter().map(|arg| (*arg).to_owned()).collect();
                (args, step.requires_real_runtimes.then(|| DRIVEN_RUNTIMES.to_owned()))
            })
            .collect();
        assert_eq!(steps_of_ci_script(), by_xtask);
    }

    #[test]
    fn ci_runs_the_matrix_as_found_then_after_setup_the_real_matrix_the_tests_and_the_quick_bench() {
        let required = Some("runc,crun,youki,conmon,criu,rootless".to_owned());
        let expected: Vec<(Vec<String>, Option<String>)> = [
            (&["matrix"][..], None),
            (&["setup"][..], None),
            (&["matrix"][..], required.clone()),
            (&["test"][..], required.clone()),
            (&["bench", "--quick"][..], required),
        ]
        .into_iter()
        .map(|(args, required)| (args.iter().map(|arg| (*arg).to_owned()).collect(), required))
        .collect();
        assert_eq!(steps_of_ci_script(), expected);
    }
}
