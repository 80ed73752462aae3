//! The `embed` and `migrate` examples, run as their users run them: each run a process of its
//! own, twice in a row, against the real runtimes (gated), and after each run nothing of it
//! left: no process of its containers or of the runtime working on them, no container in the
//! runtime's list, no entry of theirs in the engine's state root, nothing in the temporary
//! directory the run was given (bundles, archives, the library's scratch files). Their error
//! and Ctrl-C paths are held to the same, and the run after them must work.
//!
//! This binary plays the examples: started again with [`PLAY`] naming one, it runs that
//! example's `main` (their sources are included below), so the runs are new processes running
//! the examples' code without building them apart (`cargo test --test examples` builds no
//! example).

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, ExitStatus, Stdio};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail, ensure};
use backend_crun::Crun;
use backend_runc::Runc;
use backend_youki::Youki;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use runtime_core::{RuntimeFamily, StateRoot};
use testkit::bundle::{Bundle, BundleBuilder};
use testkit::gate::{self, Lacking, RealRuntime};
use testkit::harness::{CaseResult, Ran, Suite};
use testkit::procs::Tracked;

#[path = "../examples/embed.rs"]
mod embed;
#[path = "../examples/migrate.rs"]
mod migrate;

/// Set to `embed` or `migrate` for a copy of this binary that runs that example.
const PLAY: &str = "BACKEND_RUNC_TEST_PLAY_EXAMPLE";

/// The containers each example makes, as its output names them.
const EMBED_IDS: &[&str] = &["embed-demo"];
const MIGRATE_IDS: &[&str] = &["migrate-source", "migrate-restored"];

/// One run of an example.
struct Played {
    status: ExitStatus,
    stdout: String,
    stderr: String,
    /// The init processes the run printed the pids of, recorded when printed.
    inits: Vec<Tracked>,
}

/// What a test does to a run while it runs.
#[derive(Clone, Copy, PartialEq, Eq)]
enum While {
    Waiting,
    /// Sends SIGINT (what Ctrl-C sends) once the first init pid is printed.
    InterruptingOnceStarted,
}

/// Runs `example` with `args` as a process of its own whose temporary directory is `tmp`.
fn play(example: &str, args: &[&OsStr], tmp: &Path, doing: While) -> anyhow::Result<Played> {
    let scratch = tempfile::tempdir()?;
    let (out, err) = (scratch.path().join("stdout"), scratch.path().join("stderr"));
    let mut child: Child = Command::new(std::env::current_exe()?)
        .env(PLAY, example)
        .env("TMPDIR", tmp)
        .args(args)
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&out)?)
        .stderr(std::fs::File::create(&err)?)
        .spawn()?;
    let mut inits = Vec::new();
    let mut interrupted = false;
    // Init pids are read while the run goes on, so that each is recorded while it is the
    // container's process; the run's end is what ends this loop.
    let status = loop {
        let finished = child.try_wait()?;
        let stdout = std::fs::read_to_string(&out)?;
        for pid in init_pids(&stdout).skip(inits.len()).collect::<Vec<_>>() {
            inits.push(Tracked::capture(pid));
        }
        if doing == While::InterruptingOnceStarted && !interrupted && !inits.is_empty() && finished.is_none() {
            kill(Pid::from_raw(i32::try_from(child.id())?), Signal::SIGINT)?;
            interrupted = true;
        }
        if let Some(status) = finished {
            break status;
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    ensure!(doing == While::Waiting || interrupted, "the run ended before it printed an init pid");
    Ok(Played { status, stdout: std::fs::read_to_string(&out)?, stderr: std::fs::read_to_string(&err)?, inits })
}

/// The pids in `... init pid N` lines, in order.
fn init_pids(stdout: &str) -> impl Iterator<Item = u32> + '_ {
    stdout.lines().filter_map(|line| line.rsplit_once("init pid ")?.1.trim().parse().ok())
}

impl Played {
    fn succeeded(&self) -> anyhow::Result<()> {
        ensure!(self.status.success(), "the run failed ({}): {}{}", self.status, self.stdout, self.stderr);
        Ok(())
    }

    fn failed(&self) -> anyhow::Result<()> {
        ensure!(!self.status.success(), "the run succeeded: {}", self.stdout);
        Ok(())
    }
}

/// Checks that nothing of `played`'s containers `ids` is left on this host, nor anything in `tmp`.
fn nothing_left(runtime: &RealRuntime, ids: &[&str], played: &Played, tmp: &Path) -> anyhow::Result<()> {
    for init in &played.inits {
        ensure!(!init.alive(), "init {} is still running", init.pid);
    }
    let listed = Command::new(&runtime.binary).arg("list").output()?;
    ensure!(listed.status.success(), "{} list failed", runtime.name);
    let listed = String::from_utf8_lossy(&listed.stdout);
    let state_root = StateRoot::default_path()?;
    for id in ids {
        let running = testkit::procs::live_with_argument(OsStr::new(id));
        ensure!(running.is_empty(), "processes with {id} in their command line: {running:?}");
        ensure!(
            !listed.lines().any(|line| line.split_whitespace().next() == Some(id)),
            "{} still lists {id}:\n{listed}",
            runtime.name
        );
        let kept = entries_named(&state_root, id);
        ensure!(kept.is_empty(), "the state root keeps {kept:?}");
    }
    let in_tmp: Vec<PathBuf> =
        std::fs::read_dir(tmp)?.map(|entry| entry.map(|e| e.path())).collect::<Result<_, _>>()?;
    ensure!(in_tmp.is_empty(), "left in the temporary directory: {in_tmp:?}");
    Ok(())
}

/// Everything under `dir` whose name is `name`.
fn entries_named(dir: &Path, name: &str) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else { return Vec::new() };
    entries
        .filter_map(Result::ok)
        .flat_map(|entry| {
            let path = entry.path();
            let mut found = if entry.file_name() == name { vec![path.clone()] } else { Vec::new() };
            if entry.file_type().is_ok_and(|kind| kind.is_dir()) {
                found.extend(entries_named(&path, name));
            }
            found
        })
        .collect()
}

/// `--runtime NAME`, and `--bundle DIR` when given.
fn options<'a>(runtime: &'a RealRuntime, bundle: Option<&'a Bundle>) -> Vec<&'a OsStr> {
    let mut args = vec![OsStr::new("--runtime"), OsStr::new(&runtime.name)];
    if let Some(bundle) = bundle {
        args.extend([OsStr::new("--bundle"), bundle.path().as_os_str()]);
    }
    args
}

async fn embed_runs_twice_in_a_row_with_no_arguments_and_leaves_nothing(runtime: RealRuntime) -> CaseResult {
    for run in ["first", "second"] {
        let tmp = tempfile::tempdir()?;
        let played = play("embed", &options(&runtime, None), tmp.path(), While::Waiting)?;
        played.succeeded().with_context(|| format!("the {run} run"))?;
        ensure!(played.inits.len() == 1, "one init pid printed: {}", played.stdout);
        nothing_left(&runtime, EMBED_IDS, &played, tmp.path()).with_context(|| format!("after the {run} run"))?;
    }
    Ok(Ran::Passed)
}

async fn embed_reports_the_exit_code_and_output_of_a_given_bundle(runtime: RealRuntime) -> CaseResult {
    let bundle = BundleBuilder::new(["sh", "-c", "echo from the given bundle; sleep 1; exit 5"]).build()?;
    let tmp = tempfile::tempdir()?;
    let played = play("embed", &options(&runtime, Some(&bundle)), tmp.path(), While::Waiting)?;
    played.succeeded()?;
    ensure!(played.stdout.lines().any(|line| line == "from the given bundle"), "its output: {}", played.stdout);
    ensure!(played.stdout.contains("exited with status 5"), "its exit code: {}", played.stdout);
    nothing_left(&runtime, EMBED_IDS, &played, tmp.path())?;
    Ok(Ran::Passed)
}

async fn embed_interrupted_deletes_its_container_and_the_next_run_works(runtime: RealRuntime) -> CaseResult {
    let endless = BundleBuilder::new(["sh", "-c", "while true; do sleep 1; done"]).build()?;
    let tmp = tempfile::tempdir()?;
    let played = play("embed", &options(&runtime, Some(&endless)), tmp.path(), While::InterruptingOnceStarted)?;
    played.failed()?;
    ensure!(played.stderr.contains("interrupted (SIGINT)"), "says it was interrupted: {}", played.stderr);
    nothing_left(&runtime, EMBED_IDS, &played, tmp.path()).context("after the interrupted run")?;

    let again = play("embed", &options(&runtime, None), tmp.path(), While::Waiting)?;
    again.succeeded().context("the run after the interrupted one")?;
    nothing_left(&runtime, EMBED_IDS, &again, tmp.path())?;
    Ok(Ran::Passed)
}

async fn embed_failing_deletes_its_container_and_the_next_run_works(runtime: RealRuntime) -> CaseResult {
    // Its process is gone before the example's exec: the runtime refuses the exec.
    let ends_at_once = BundleBuilder::new(["true"]).build()?;
    let tmp = tempfile::tempdir()?;
    let played = play("embed", &options(&runtime, Some(&ends_at_once)), tmp.path(), While::Waiting)?;
    played.failed()?;
    nothing_left(&runtime, EMBED_IDS, &played, tmp.path()).context("after the failed run")?;

    let again = play("embed", &options(&runtime, None), tmp.path(), While::Waiting)?;
    again.succeeded().context("the run after the failed one")?;
    nothing_left(&runtime, EMBED_IDS, &again, tmp.path())?;
    Ok(Ran::Passed)
}

async fn migrate_runs_twice_in_a_row_with_no_arguments_and_leaves_nothing(runtime: RealRuntime) -> CaseResult {
    if let Some(problem) = gate::criu_problem() {
        return match gate::lacking(gate::CRIU, problem, &gate::required()) {
            Lacking::Skip(reason) => Ok(Ran::Skipped(reason)),
            Lacking::Fail(reason) => bail!("{reason}"),
        };
    }
    for run in ["first", "second"] {
        let tmp = tempfile::tempdir()?;
        let played = play("migrate", &options(&runtime, None), tmp.path(), While::Waiting)?;
        played.succeeded().with_context(|| format!("the {run} run"))?;
        ensure!(played.inits.len() == 2, "the source's and the restored init's pids: {}", played.stdout);
        ensure!(played.stdout.contains("restored from the archive"), "{}", played.stdout);
        nothing_left(&runtime, MIGRATE_IDS, &played, tmp.path()).with_context(|| format!("after the {run} run"))?;
    }
    Ok(Ran::Passed)
}

async fn migrate_is_refused_before_anything_runs_by_a_runtime_without_checkpoint_or_restore(
    runtime: RealRuntime,
) -> CaseResult {
    // What the runtime's own command line says it has, not what the library probes.
    let has = |command: &str| Command::new(&runtime.binary).args([command, "--help"]).output();
    let lacks: Vec<&str> = ["checkpoint", "restore"]
        .into_iter()
        .filter(|command| !has(command).is_ok_and(|out| out.status.success()))
        .collect();
    ensure!(!lacks.is_empty(), "{} has both checkpoint and restore", runtime.name);
    let tmp = tempfile::tempdir()?;
    let played = play("migrate", &options(&runtime, None), tmp.path(), While::Waiting)?;
    played.failed()?;
    let refusals: Vec<String> =
        lacks.iter().map(|command| format!("{} does not support {command}", runtime.name)).collect();
    ensure!(
        refusals.iter().any(|refusal| played.stderr.contains(refusal)),
        "one of {refusals:?} expected in: {}",
        played.stderr
    );
    ensure!(played.inits.is_empty(), "a container ran: {}", played.stdout);
    nothing_left(&runtime, MIGRATE_IDS, &played, tmp.path())?;
    Ok(Ran::Passed)
}

fn gated<F, Fut>(suite: &mut Suite, name: &str, family: Arc<dyn RuntimeFamily>, case: F)
where
    F: FnOnce(RealRuntime) -> Fut + Send + 'static,
    Fut: Future<Output = CaseResult>,
{
    let runtime = family.name().to_owned();
    suite.gated(format!("examples::{runtime}::{name}"), &runtime, family.host_checks(), |real| async move {
        let outcome = case(real.clone()).await;
        if outcome.is_err() {
            sweep(&real);
        }
        outcome
    });
}

/// Removes what a failed case may have left of the examples' containers.
fn sweep(runtime: &RealRuntime) {
    for id in EMBED_IDS.iter().chain(MIGRATE_IDS) {
        let _ = Command::new(&runtime.binary).args(["delete", "--force", id]).output();
        for path in StateRoot::default_path().iter().flat_map(|root| entries_named(root, id)) {
            let _ = std::fs::remove_dir_all(&path).or_else(|_| std::fs::remove_file(&path));
        }
    }
}

fn main() -> ExitCode {
    match std::env::var(PLAY).as_deref() {
        Ok("embed") => return embed::main(),
        Ok("migrate") => return migrate::main(),
        _ => {}
    }
    testkit::harness::main(|suite| {
        let families: [Arc<dyn RuntimeFamily>; 3] = [Arc::new(Runc), Arc::new(Crun::default()), Arc::new(Youki)];
        for family in families {
            gated(
                suite,
                "embed_runs_twice_in_a_row_with_no_arguments_and_leaves_nothing",
                family.clone(),
                embed_runs_twice_in_a_row_with_no_arguments_and_leaves_nothing,
            );
            if family.name() == "runc" {
                gated(
                    suite,
                    "migrate_runs_twice_in_a_row_with_no_arguments_and_leaves_nothing",
                    family.clone(),
                    migrate_runs_twice_in_a_row_with_no_arguments_and_leaves_nothing,
                );
            } else {
                gated(
                    suite,
                    "migrate_is_refused_before_anything_runs_by_a_runtime_without_checkpoint_or_restore",
                    family.clone(),
                    migrate_is_refused_before_anything_runs_by_a_runtime_without_checkpoint_or_restore,
                );
            }
        }
        let runc: Arc<dyn RuntimeFamily> = Arc::new(Runc);
        gated(
            suite,
            "embed_reports_the_exit_code_and_output_of_a_given_bundle",
            runc.clone(),
            embed_reports_the_exit_code_and_output_of_a_given_bundle,
        );
        gated(
            suite,
            "embed_interrupted_deletes_its_container_and_the_next_run_works",
            runc.clone(),
            embed_interrupted_deletes_its_container_and_the_next_run_works,
        );
        gated(
            suite,
            "embed_failing_deletes_its_container_and_the_next_run_works",
            runc,
            embed_failing_deletes_its_container_and_the_next_run_works,
        );
    })
}
