//! `cargo xtask bundle` as a user runs it: the bundle it writes is run by the real runc, which
//! must accept it and run the command given after `--`; a directory with something in it is
//! refused and left as it was.

use std::path::Path;
use std::process::{Command, ExitCode, Output};

use anyhow::{Context, ensure};
use testkit::gate::RealRuntime;
use testkit::harness::{CaseResult, Ran};

/// `cargo xtask bundle ARGS...`: the xtask program this test was built beside.
fn xtask_bundle(args: &[&str], dir: &Path) -> anyhow::Result<Output> {
    let program = env!("CARGO_BIN_EXE_xtask");
    Ok(Command::new(program).arg("bundle").arg(dir).args(args).output()?)
}

async fn runc_run_accepts_the_bundle_and_runs_the_command_after_the_double_dash(runc: RealRuntime) -> CaseResult {
    let scratch = tempfile::tempdir()?;
    let (bundle, root) = (scratch.path().join("bundle"), scratch.path().join("runc-root"));
    let made = xtask_bundle(&["--", "sh", "-c", "echo made by xtask bundle; exit 7"], &bundle)?;
    ensure!(made.status.success(), "cargo xtask bundle failed: {}", String::from_utf8_lossy(&made.stderr));

    let id = format!("xtask-bundle-{}", std::process::id());
    let ran =
        Command::new(&runc.binary).arg("--root").arg(&root).args(["run", "--bundle"]).arg(&bundle).arg(&id).output();
    // `run` deletes the container once it exits; a failed one may have left it.
    let _ = Command::new(&runc.binary).arg("--root").arg(&root).args(["delete", "--force", &id]).output();
    let ran = ran.context("running runc")?;
    let (stdout, stderr) = (String::from_utf8_lossy(&ran.stdout), String::from_utf8_lossy(&ran.stderr));
    ensure!(ran.status.code() == Some(7), "runc run ended {} (stdout {stdout:?}, stderr {stderr:?})", ran.status);
    ensure!(stdout.trim() == "made by xtask bundle", "runc run printed {stdout:?} (stderr {stderr:?})");
    Ok(Ran::Passed)
}

async fn a_directory_with_something_in_it_is_refused_and_left_as_it_was() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    std::fs::write(dir.path().join("notes.txt"), "mine")?;
    let refused = xtask_bundle(&["--", "true"], dir.path())?;
    ensure!(!refused.status.success(), "a non-empty directory was accepted");
    let stderr = String::from_utf8_lossy(&refused.stderr);
    ensure!(stderr.contains("is not empty"), "says why: {stderr}");
    let left: Vec<_> =
        std::fs::read_dir(dir.path())?.map(|entry| entry.map(|e| e.file_name())).collect::<Result<_, _>>()?;
    ensure!(left == ["notes.txt"], "the directory now holds {left:?}");
    Ok(())
}

fn main() -> ExitCode {
    testkit::harness::main(|suite| {
        suite.gated(
            "xtask_bundle::runc_run_accepts_the_bundle_and_runs_the_command_after_the_double_dash",
            "runc",
            Vec::new(),
            runc_run_accepts_the_bundle_and_runs_the_command_after_the_double_dash,
        );
        suite.case(
            "xtask_bundle::a_directory_with_something_in_it_is_refused_and_left_as_it_was",
            a_directory_with_something_in_it_is_refused_and_left_as_it_was,
        );
    })
}
