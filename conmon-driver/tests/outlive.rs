//! The `outlive` example, run twice as its users run it: two OS processes, the first of which
//! exits while its container runs on under conmon, the second reconnecting to print the
//! container's output and exit code; and that pair twice in a row, to show the second pair
//! finds nothing of the first. Gated on conmon and each real runtime (`--runtime`).
//!
//! This binary plays the example: started again with [`PLAY_THE_EXAMPLE`] set, it runs the
//! example's `main` (its source is included below), so the two runs are new processes running
//! the example's code without building it apart (`cargo test --test outlive` builds no example).
//!
//! What the second run must print is taken from the bundle the first run wrote, which is what
//! runc ran: the exit code of the script's last `exit N`, and the lines it `echo`es.

use std::ffi::OsStr;
use std::path::Path;
use std::process::{Command, ExitCode, Output};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use backend_crun::Crun;
use backend_runc::Runc;
use backend_youki::Youki;
use nix::sys::signal::Signal;
use runtime_core::RuntimeFamily;
use runtime_core::oci_spec::runtime::Spec;
use testkit::gate::RealRuntime;
use testkit::harness::{CaseResult, Ran};

#[path = "../examples/outlive.rs"]
mod example;

/// Set for a copy of this binary that runs the example.
const PLAY_THE_EXAMPLE: &str = "CONMON_DRIVER_TEST_OUTLIVE_EXAMPLE";

/// The container the example makes.
const ID: &str = "outlive-demo";

/// One run of the example over `dir` with `runtime`, as a process of its own.
fn run_example(dir: &Path, runtime: &RealRuntime) -> anyhow::Result<Output> {
    let output = Command::new(std::env::current_exe()?)
        .env(PLAY_THE_EXAMPLE, "1")
        .args(["--runtime", &runtime.name])
        .arg(dir)
        .output()?;
    ensure!(
        output.status.success(),
        "the example failed ({}): {}{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    Ok(output)
}

/// The script of the bundle's process (`sh -c SCRIPT`).
fn script_of(bundle: &Path) -> anyhow::Result<String> {
    let spec = Spec::load(bundle.join("config.json"))?;
    let args = spec.process().as_ref().and_then(|process| process.args().clone()).context("no process args")?;
    match &args[..] {
        [sh, dash_c, script] if sh == "sh" && dash_c == "-c" => Ok(script.clone()),
        other => bail!("the bundle runs {other:?}, not sh -c SCRIPT"),
    }
}

/// Live conmons holding container [`ID`] (conmon's command line names it after `-c`).
fn conmons_of_the_container() -> Vec<i32> {
    testkit::procs::live_with_argument(OsStr::new(ID))
        .into_iter()
        .filter(|pid| std::fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|comm| comm.trim() == "conmon"))
        .collect()
}

async fn the_second_run_prints_the_exit_code_and_output_of_the_first_runs_container_twice_in_a_row(
    _conmon: RealRuntime,
    runtime: RealRuntime,
) -> CaseResult {
    ensure!(conmons_of_the_container().is_empty(), "another {ID} is running on this host; not touching it");
    let dir = tempfile::Builder::new().prefix("outlive-").tempdir()?;
    for pair in ["first", "second"] {
        let outcome = two_runs(dir.path(), &runtime).await;
        if outcome.is_err() {
            // Whatever state it is in, the container goes (the runtime's state is under `dir`).
            let root = dir.path().join(&runtime.name);
            let _ = Command::new(&runtime.binary).arg("--root").arg(root).args(["delete", "--force", ID]).status();
        }
        outcome.with_context(|| format!("the {pair} pair of runs"))?;
    }
    Ok(Ran::Passed)
}

async fn two_runs(dir: &Path, runtime: &RealRuntime) -> anyhow::Result<()> {
    let first = run_example(dir, runtime)?;
    let said = String::from_utf8_lossy(&first.stdout);
    ensure!(said.contains("cargo run -p conmon-driver --example outlive"), "says what to run next: {said}");
    let script = script_of(&dir.join("bundle"))?;
    let code: i32 = script
        .rsplit_once("exit ")
        .and_then(|(_, code)| code.trim().parse().ok())
        .with_context(|| format!("the script ends with no `exit N`: {script:?}"))?;
    let printed: Vec<&str> = script.split(';').filter_map(|command| command.trim().strip_prefix("echo ")).collect();
    ensure!(!printed.is_empty(), "the script echoes nothing: {script:?}");
    ensure!(
        !conmons_of_the_container().is_empty(),
        "no conmon holds {ID} once the first run exited: the container did not outlive it"
    );

    let second = run_example(dir, runtime)?;
    let said = String::from_utf8_lossy(&second.stdout);
    ensure!(said.contains(&format!("exited with code {code}.")), "exit code {code} expected in: {said}");
    for line in printed {
        ensure!(said.contains(&format!("stdout: {line}\n")), "{line:?} expected in: {said}");
    }

    nothing_left(dir).await
}

/// Conmon ends once its container is deleted, and the example's directory goes.
async fn nothing_left(dir: &Path) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !conmons_of_the_container().is_empty() {
        ensure!(Instant::now() < deadline, "conmon still holds {ID}: {:?}", conmons_of_the_container());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    ensure!(!dir.exists(), "{} is left: {:?}", dir.display(), std::fs::read_dir(dir).map(|d| d.count()));
    Ok(())
}

async fn an_interrupted_second_run_deletes_the_container_and_everything_the_first_run_made(
    _conmon: RealRuntime,
    runtime: RealRuntime,
) -> CaseResult {
    ensure!(conmons_of_the_container().is_empty(), "another {ID} is running on this host; not touching it");
    let dir = tempfile::Builder::new().prefix("outlive-").tempdir()?;
    let outcome = interrupted_second_run(dir.path(), &runtime).await;
    if outcome.is_err() {
        let root = dir.path().join(&runtime.name);
        let _ = Command::new(&runtime.binary).arg("--root").arg(root).args(["delete", "--force", ID]).status();
    }
    outcome?;
    Ok(Ran::Passed)
}

async fn interrupted_second_run(dir: &Path, runtime: &RealRuntime) -> anyhow::Result<()> {
    run_example(dir, runtime)?;
    let scratch = tempfile::tempdir()?;
    let (out, err) = (scratch.path().join("stdout"), scratch.path().join("stderr"));
    let mut second = Command::new(std::env::current_exe()?)
        .env(PLAY_THE_EXAMPLE, "1")
        .args(["--runtime", &runtime.name])
        .arg(dir)
        .stdout(std::fs::File::create(&out)?)
        .stderr(std::fs::File::create(&err)?)
        .spawn()?;
    // Ctrl-C once it waits for the container, which runs for seconds more.
    let status = loop {
        if let Some(status) = second.try_wait()? {
            break status;
        }
        if std::fs::read_to_string(&out)?.contains("waiting for it to exit") {
            nix::sys::signal::kill(nix::unistd::Pid::from_raw(i32::try_from(second.id())?), Signal::SIGINT)?;
            break second.wait()?;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    let (said, complained) = (std::fs::read_to_string(&out)?, std::fs::read_to_string(&err)?);
    ensure!(!status.success(), "the second run was not interrupted while waiting: {said}");
    ensure!(complained.contains("interrupted (SIGINT)"), "says it was interrupted: {complained}");
    nothing_left(dir).await?;
    let again = run_example(dir, runtime)?;
    ensure!(
        String::from_utf8_lossy(&again.stdout).contains(&format!("Started container {ID}")),
        "the run after starts over"
    );
    run_example(dir, runtime)?;
    nothing_left(dir).await
}

fn main() -> ExitCode {
    if std::env::var_os(PLAY_THE_EXAMPLE).is_some() {
        return example::main();
    }
    testkit::harness::main(|suite| {
        let families: [Arc<dyn RuntimeFamily>; 3] = [Arc::new(Runc), Arc::new(Crun::default()), Arc::new(Youki)];
        for family in families {
            suite.gated_under(
                format!(
                    "outlive_example::{}::the_second_run_prints_the_exit_code_and_output_of_the_first_runs_container_twice_in_a_row",
                    family.name()
                ),
                "conmon",
                family,
                the_second_run_prints_the_exit_code_and_output_of_the_first_runs_container_twice_in_a_row,
            );
        }
        suite.gated_under(
            "outlive_example::runc::an_interrupted_second_run_deletes_the_container_and_everything_the_first_run_made",
            "conmon",
            Arc::new(Runc),
            an_interrupted_second_run_deletes_the_container_and_everything_the_first_run_made,
        );
    })
}
