//! Cases for exec through the [`Engine`]: an exec that is timed out, stopped or dropped leaves
//! none of the processes it started, a waited-for exec has no limit the caller did not set,
//! options a call cannot serve are refused before anything runs, a background exec asking for a
//! terminal gets one under a monitor that holds it (and is refused without a console socket
//! under one that does not), and a background session is forgotten with its container.
//!
//! What is left is found by the cases themselves, from the host: each exec runs `sleep` with a
//! duration no other case uses, and the case looks for live processes with that command line in
//! `/proc`; on a real runtime it also reads the container's own cgroup (`cgroup.procs`, which
//! lists no zombies) and the runtime's `ps`. Zombies count as ended: the container's init
//! (`sleep`) never reaps the orphans it adopts.

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use runtime_core::{
    Capability, ContainerId, ContainerStdio, CreateOptions, DeleteMode, Engine, Error, ExecOptions, ExecOutcome,
    ExecStdio, Exit, Signal, StopOptions, process,
};

use super::CaseSpec;
use super::env::Env;
use crate::harness::{CaseResult, Ran};

/// Every exec case with its name.
pub(super) fn all() -> Vec<CaseSpec> {
    vec![
        CaseSpec::new(
            "an_exec_timeout_ends_every_process_the_exec_started",
            "an exec past its timeout ends every process it started",
            |env| Box::pin(timeout_ends_the_tree(env)),
        ),
        CaseSpec::needing(
            "exec_stop_ends_every_process_the_session_started",
            "exec stop ends every process the session started",
            &[Capability::Exec],
            |env| Box::pin(exec_stop_ends_the_tree(env)),
        ),
        CaseSpec::new(
            "a_dropped_exec_ends_every_process_it_started",
            "a dropped exec ends every process it started",
            |env| Box::pin(dropped_exec_ends_the_tree(env)),
        ),
        CaseSpec::new(
            "a_waited_for_exec_outlasts_the_backend_call_timeout",
            "an exec that is waited for may outlast the backend's call timeout",
            |env| Box::pin(exec_outlasts_call_timeout(env)),
        ),
        CaseSpec::new(
            "exec_options_the_call_cannot_serve_are_refused_before_anything_runs",
            "exec options the call cannot serve are refused before anything runs",
            |env| Box::pin(unservable_options_are_refused(env)),
        ),
        CaseSpec::needing(
            "a_background_exec_never_waited_for_is_forgotten_with_its_container",
            "a background exec never waited for is forgotten with its container",
            &[Capability::Exec],
            |env| Box::pin(sessions_are_forgotten(env)),
        ),
        CaseSpec::needing(
            "a_background_exec_with_a_terminal_gets_one_under_a_monitor_that_holds_it",
            "a background exec with a terminal gets one, held by its monitor",
            &[Capability::Exec, Capability::Attach],
            |env| Box::pin(background_terminal_is_held_by_the_monitor(env)),
        ),
    ]
}

/// How long the processes of an exec that was ended may take to be seen gone.
const GONE_WITHIN: Duration = Duration::from_secs(2);

/// A `sleep` duration (seconds) that no other exec of this test process uses, so that its
/// processes can be told apart on the host.
fn unique_duration() -> u32 {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    100_000 + (std::process::id() % 1000) * 1000 + NEXT.fetch_add(1, Ordering::Relaxed)
}

/// Two `&` jobs, an orphan (the subshell exits at once, so the container's init adopts it) and
/// a last child the shell waits for: four processes besides the shell.
fn tree_script(duration: u32) -> String {
    format!("sleep {duration} & sleep {duration} & (sleep {duration} &) ; sleep {duration}")
}

/// Live (not zombie) host processes whose command line is `sleep <duration>`.
fn sleeping(duration: u32) -> Vec<u32> {
    let wanted = format!("sleep\0{duration}\0");
    let Ok(entries) = std::fs::read_dir("/proc") else { return Vec::new() };
    entries
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|line| line == wanted.as_bytes()))
        .filter(|pid| !is_zombie(*pid))
        .collect()
}

fn is_zombie(pid: u32) -> bool {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    stat.rsplit(')').next().and_then(|rest| rest.split_whitespace().next()).is_none_or(|state| state == "Z")
}

/// Waits (a short while) until the exec's four sleeps run.
async fn until_sleeping(duration: u32, count: usize) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(10);
    while sleeping(duration).len() < count {
        ensure!(Instant::now() < deadline, "the exec started {:?}, not {count} sleeps", sleeping(duration));
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(())
}

/// A running container whose init is `sleep 1000`, created through `engine`; its init pid.
async fn running(env: &mut Env, engine: &Engine, name: &str) -> anyhow::Result<(ContainerId, u32)> {
    let id = env.id(name);
    let bundle = env.bundle(["sleep", "1000"])?;
    let created = engine.create(&id, bundle.path(), CreateOptions::default()).await.context("engine create")?;
    env.track(created.pid);
    env.keep(bundle);
    engine.start(&id).await.context("engine start")?;
    Ok((id, created.pid))
}

/// Checks that nothing of the exec running `sleep <duration>` is left, and that the container
/// still runs its init and nothing else: by `ps`, by the host's `/proc` and, on a real
/// runtime, by the container's cgroup.
async fn only_the_init_is_left(env: &Env, id: &ContainerId, init: u32, duration: u32) -> anyhow::Result<()> {
    let deadline = Instant::now() + GONE_WITHIN;
    while !sleeping(duration).is_empty() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let left = sleeping(duration);
    ensure!(left.is_empty(), "processes the exec started still run: {left:?}");
    ensure!(!is_zombie(init), "the container's init {init} was hit");
    let pids = env.backend.ps(id).await.context("ps")?;
    ensure!(pids == [init], "ps of the container lists {pids:?}, not only its init {init}");
    if env.is_real() {
        let procs = cgroup_procs(init)?;
        ensure!(procs == [init], "the container's cgroup holds {procs:?}, not only its init {init}");
    }
    Ok(())
}

/// The processes in the memory cgroup of `pid`, as the kernel lists them (no zombies).
fn cgroup_procs(pid: u32) -> anyhow::Result<Vec<u32>> {
    let cgroups = std::fs::read_to_string(format!("/proc/{pid}/cgroup"))?;
    let path = cgroups
        .lines()
        .find_map(|line| line.split_once(":memory:").map(|(_, path)| path.to_owned()))
        .context("the init is in no v1 memory cgroup")?;
    let procs = std::fs::read_to_string(format!("/sys/fs/cgroup/memory{path}/cgroup.procs"))?;
    Ok(procs.lines().filter_map(|line| line.trim().parse().ok()).collect())
}

async fn remove(engine: &Engine, id: &ContainerId) -> anyhow::Result<()> {
    engine.stop(id, StopOptions { signal: Some(Signal::KILL), timeout: Duration::from_secs(5) }).await?;
    engine.delete(id, DeleteMode::IfStopped).await.context("delete")
}

async fn timeout_ends_the_tree(env: &mut Env) -> CaseResult {
    let engine = env.engine()?;
    let (id, init) = running(env, &engine, "exec-timeout").await?;
    let duration = unique_duration();
    let limit = Duration::from_secs(1);
    let opts = ExecOptions { timeout: Some(limit), ..ExecOptions::default() };
    let started = Instant::now();
    let script = process(["sh", "-c", &tree_script(duration)]);
    let (outcome, running_meanwhile) = tokio::join!(engine.exec(&id, &script, opts), until_sleeping(duration, 4));
    running_meanwhile.context("while the exec ran")?;
    match outcome {
        Err(Error::Timeout { after, .. }) => ensure!(after == limit, "timed out after {after:?}"),
        other => bail!("an exec past its timeout: {other:?}"),
    }
    // The timeout plus what killing the runtime and the exec's processes takes.
    ensure!(started.elapsed() < limit + Duration::from_secs(3), "returned after {:?}", started.elapsed());
    only_the_init_is_left(env, &id, init, duration).await?;
    remove(&engine, &id).await?;
    Ok(Ran::Passed)
}

async fn exec_stop_ends_the_tree(env: &mut Env) -> CaseResult {
    let engine = env.engine()?;
    let (id, init) = running(env, &engine, "exec-stop").await?;
    let duration = unique_duration();
    let background = ExecOptions { stdio: ExecStdio::Wired(ContainerStdio::Null), ..ExecOptions::default() };
    let session = engine.exec_detached(&id, &process(["sh", "-c", &tree_script(duration)]), background).await?;
    env.track(session.pid);
    until_sleeping(duration, 4).await?;
    let exit = engine.exec_stop(&session, Duration::from_secs(1)).await.context("exec_stop")?;
    // The shell waits for its last child and dies of SIGTERM (POSIX default action).
    ensure!(exit == Exit::Signaled(Signal::TERM), "the session's shell ended by {exit:?}");
    only_the_init_is_left(env, &id, init, duration).await?;
    remove(&engine, &id).await?;
    Ok(Ran::Passed)
}

async fn dropped_exec_ends_the_tree(env: &mut Env) -> CaseResult {
    let engine = env.engine()?;
    let (id, init) = running(env, &engine, "exec-dropped").await?;
    let duration = unique_duration();
    let script = process(["sh", "-c", &tree_script(duration)]);
    // Dropped once the runtime has said which process it started (its pid file): before that,
    // nothing names the exec's processes, and a runtime killed then may have started one.
    let scratch = tempfile::tempdir()?;
    let pid_file = scratch.path().join("exec.pid");
    let options = ExecOptions { pid_file: Some(pid_file.clone()), ..ExecOptions::default() };
    let mut exec = Box::pin(engine.exec(&id, &script, options));
    let started = async {
        until_sleeping(duration, 4).await?;
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::fs::read_to_string(&pid_file).map_or(true, |pid| pid.trim().is_empty()) {
            ensure!(Instant::now() < deadline, "the runtime wrote no pid file {}", pid_file.display());
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        anyhow::Ok(())
    };
    tokio::select! {
        outcome = &mut exec => bail!("the exec ended on its own: {outcome:?}"),
        started = started => started.context("while the exec ran")?,
    }
    drop(exec);
    only_the_init_is_left(env, &id, init, duration).await?;
    remove(&engine, &id).await?;
    Ok(Ran::Passed)
}

async fn exec_outlasts_call_timeout(env: &mut Env) -> CaseResult {
    let engine = env.engine()?;
    let (id, _init) = running(env, &engine, "exec-long").await?;
    let call_timeout = Duration::from_secs(1);
    let short = env.backend_with(env.config.clone().timeout(call_timeout)).await?;
    let impatient = env.engine_over(short)?;
    let started = Instant::now();
    let outcome = impatient.exec(&id, &process(["sh", "-c", "sleep 2; exit 3"]), ExecOptions::default()).await;
    match outcome.context("an exec longer than the call timeout")? {
        ExecOutcome::Exited { code: 3, .. } => {}
        other => bail!("exec: {other:?}"),
    }
    ensure!(started.elapsed() >= Duration::from_secs(2), "the exec ran its whole two seconds");
    remove(&engine, &id).await?;
    Ok(Ran::Passed)
}

async fn unservable_options_are_refused(env: &mut Env) -> CaseResult {
    let engine = env.engine()?;
    let (id, init) = running(env, &engine, "exec-refused").await?;
    let wired = || ExecStdio::Wired(ContainerStdio::Null);
    let supervises_execs = env.lacks(Capability::Exec).is_none();
    let mut refusals = vec![
        ("detach", ExecOptions { detach: true, stdio: wired(), ..ExecOptions::default() }, false),
        ("Capture", ExecOptions::default(), true),
        ("tty", ExecOptions { tty: true, stdio: wired(), ..ExecOptions::default() }, false),
    ];
    // A monitor that attaches to a terminal holds a background exec's itself, and needs no socket.
    if env.lacks(Capability::Attach).is_some() {
        refusals.push(("tty", ExecOptions { tty: true, stdio: wired(), ..ExecOptions::default() }, true));
    }
    // Each refusal is checked, and every one that fails is reported.
    let mut problems = Vec::new();
    for (option, opts, background) in refusals {
        let duration = unique_duration();
        let sleeper = process(["sleep".to_owned(), duration.to_string()]);
        let what = format!("{option} (background: {background})");
        let outcome = if background {
            engine.exec_detached(&id, &sleeper, opts).await.map(|session| format!("{session:?}"))
        } else {
            // Bounded: an exec that ran would sleep for a day.
            match tokio::time::timeout(Duration::from_secs(3), engine.exec(&id, &sleeper, opts)).await {
                Ok(outcome) => outcome.map(|outcome| format!("{outcome:?}")),
                Err(_) => Ok("an exec still running after 3s".to_owned()),
            }
        };
        match outcome {
            Err(Error::InvalidArgument { option: named, .. }) if named.contains(option) => {}
            // A monitor that supervises no background exec refuses every one, whatever its
            // options, before anything runs.
            Err(Error::Unsupported { feature, .. })
                if background && !supervises_execs && feature == "exec_detached" => {}
            other => problems.push(format!("{what} was not refused: {other:?}")),
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
        let ran = sleeping(duration);
        if !ran.is_empty() {
            problems.push(format!("{what} started {ran:?}"));
        }
    }
    ensure!(problems.is_empty(), "{}", problems.join("; "));
    let pids = env.backend.ps(&id).await.context("ps")?;
    ensure!(pids == [init], "ps lists {pids:?}, not only the init {init}");
    remove(&engine, &id).await?;
    Ok(Ran::Passed)
}

async fn background_terminal_is_held_by_the_monitor(env: &mut Env) -> CaseResult {
    let engine = env.engine()?;
    let (id, _init) = running(env, &engine, "exec-tty").await?;
    let options = ExecOptions { tty: true, stdio: ExecStdio::Wired(ContainerStdio::Null), ..ExecOptions::default() };
    // The shell's own word on whether its stdin and stdout are a terminal.
    let script = process(["sh", "-c", "test -t 0 && test -t 1 && exit 7; exit 1"]);
    let session = engine.exec_detached(&id, &script, options).await.context("a background exec with a terminal")?;
    let exit = tokio::time::timeout(Duration::from_secs(30), engine.wait_exec(&session)).await.context("no end")??;
    ensure!(exit == Exit::Exited(7), "the exec's stdin and stdout were not a terminal: {exit:?}");
    remove(&engine, &id).await?;
    Ok(Ran::Passed)
}

async fn sessions_are_forgotten(env: &mut Env) -> CaseResult {
    let engine = env.engine()?;
    let (id, _init) = running(env, &engine, "exec-forgotten").await?;
    let background = || ExecOptions { stdio: ExecStdio::Wired(ContainerStdio::Null), ..ExecOptions::default() };
    let stopped = engine.exec_detached(&id, &process(["sleep", "1000"]), background()).await?;
    env.track(stopped.pid);
    let never_waited = engine.exec_detached(&id, &process(["sleep", "1000"]), background()).await?;
    env.track(never_waited.pid);
    engine.exec_stop(&stopped, Duration::from_secs(5)).await.context("exec_stop")?;
    match engine.wait_exec(&stopped).await {
        Err(Error::NotSupervised { .. }) => {}
        other => bail!("a stopped session is still known: {other:?}"),
    }
    remove(&engine, &id).await?;
    // Deleting the container ended the process; its session went with the container.
    match tokio::time::timeout(Duration::from_secs(5), engine.wait_exec(&never_waited)).await {
        Ok(Err(Error::NotSupervised { .. })) => {}
        Ok(other) => bail!("a session of a deleted container is still known: {other:?}"),
        Err(_) => bail!("waiting for a session of a deleted container hangs"),
    }
    Ok(Ran::Passed)
}
