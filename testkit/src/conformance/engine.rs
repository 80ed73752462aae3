//! Cases for the [`Engine`] under each monitor: exit statuses that are never lost or guessed,
//! stop escalation, background exec, many containers at once, reconnecting, and the container's
//! output in a log and to an attached client.
//! Expected values come from the processes the cases run (their exit codes and signals as
//! POSIX defines them), never from the engine's own formatting. Where the monitors differ, the
//! case says how, from what it reads itself (conmon's exit file is one number).

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use runtime_core::{
    Capability, ContainerId, ContainerStdio, CreateOptions, DeleteMode, Engine, ExecOptions, ExecOutcome, ExecStdio,
    Exit, KillScope, LogOptions, OutputStream, STOP_SIGNAL_ANNOTATION, Signal, Status, StopOptions, process,
};

use super::env::{Env, skipped};
use super::{CaseSpec, MonitorChoice};
use crate::bundle::Bundle;
use crate::harness::{CaseResult, Ran};

/// Every engine case with its name.
pub(super) fn all() -> Vec<CaseSpec> {
    vec![
        CaseSpec::new(
            "exit_code_is_reported_and_recorded",
            "exit codes: a plain exit's code is reported and kept on disk",
            |env| Box::pin(exit_code_is_reported(env)),
        ),
        CaseSpec::new(
            "signals_are_reported_as_signaled",
            "exit codes: a death by signal is reported as that signal",
            |env| Box::pin(signals_are_reported(env)),
        ),
        CaseSpec::new(
            "an_exit_before_start_returns_keeps_its_code",
            "exit codes: a fast exit, before start returns, keeps its code",
            |env| Box::pin(exit_before_start_returns(env)),
        ),
        CaseSpec::new(
            "run_supervises_like_create_and_start",
            "`run` supervises the container as create and start do",
            |env| Box::pin(run_supervises(env)),
        ),
        CaseSpec::new(
            "stop_escalates_to_kill_when_term_is_ignored",
            "stop sends KILL once the timeout passes on a container that ignores TERM",
            |env| Box::pin(stop_escalates(env)),
        ),
        CaseSpec::new(
            "stop_returns_at_the_exit_of_a_term_obeying_container",
            "stop returns as soon as a TERM-obeying container exits",
            |env| Box::pin(stop_returns_at_exit(env)),
        ),
        CaseSpec::new(
            "stop_uses_the_stop_signal_annotation",
            "stop sends the signal the stop-signal annotation names",
            |env| Box::pin(stop_uses_annotation(env)),
        ),
        CaseSpec::new(
            "stop_of_a_gone_container_succeeds",
            "stop of a container that has already exited reports the exit it saw",
            |env| Box::pin(stop_of_gone_container(env)),
        ),
        CaseSpec::needing(
            "exec_returns_output_and_exec_stop_ends_a_session",
            "an exec through the engine returns its output; exec stop ends a session",
            &[Capability::Exec],
            |env| Box::pin(exec_and_exec_stop(env)),
        ),
        CaseSpec::new(
            "fifty_containers_in_parallel_keep_their_codes",
            "fifty containers at once each keep their own exit code",
            |env| Box::pin(fifty_in_parallel(env)),
        ),
        CaseSpec::new(
            "reconnect_finds_live_and_exited_containers",
            "an engine started again finds running and exited containers",
            |env| Box::pin(reconnect(env)),
        ),
        CaseSpec::new(
            "delete_refuses_a_running_container_unless_forced",
            "runtime.md#delete: deleting a running container MUST generate an error unless forced",
            |env| Box::pin(delete_refuses_running(env)),
        ),
        CaseSpec::new(
            "two_processes_stop_and_delete_one_container",
            "two processes that stop and delete one container: one deletes, the other is told it is gone",
            |env| Box::pin(two_processes_stop_and_delete_one_container(env)),
        ),
        CaseSpec::new(
            "output_goes_to_a_log_file",
            "the container's output reaches the log file (where the monitor has logs)",
            |env| Box::pin(output_goes_to_a_log_file(env)),
        ),
        CaseSpec::needing(
            "an_attached_client_receives_the_init_s_output_as_it_comes",
            "the init's output reaches a client attached before start, each stream apart, and the attachment ends with the container (where the monitor attaches)",
            &[Capability::Attach],
            |env| Box::pin(attached_client_receives_output(env)),
        ),
        CaseSpec::new(
            "a_fast_exit_from_run_survives_a_reconnect",
            "a fast exit from `run` is still known after the engine starts again",
            |env| Box::pin(fast_exit_survives_reconnect(env)),
        ),
        CaseSpec::new(
            "a_code_above_128_and_a_kill_read_the_same_after_a_reconnect",
            "`exit 137` and a death by KILL stay distinct after a reconnect",
            |env| Box::pin(codes_above_128_survive_reconnect(env)),
        ),
        CaseSpec::new(
            "a_real_time_signal_death_is_reported",
            "a death by a real-time signal is reported as that signal",
            |env| Box::pin(real_time_signal_death(env)),
        ),
        CaseSpec::new(
            "a_recreated_id_inherits_no_exit",
            "runtime.md#delete: once deleted, an id can be reused and the new container inherits no exit",
            |env| Box::pin(recreated_id_inherits_no_exit(env)),
        ),
        CaseSpec::new(
            "a_run_dropped_while_starting_leaves_nothing",
            "a `run` dropped while starting leaves no container and no process",
            |env| Box::pin(run_dropped_while_starting(env)),
        ),
    ]
}

/// The exit file's text, as written on disk.
fn exit_file_text(env: &mut Env, id: &ContainerId) -> anyhow::Result<String> {
    let root = env.engine_state_root()?;
    let path = root.files(id).exit_file;
    std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))
}

async fn created(env: &mut Env, engine: &Engine, name: &str, args: &[&str]) -> anyhow::Result<ContainerId> {
    let bundle = env.bundle(args.iter().copied())?;
    created_from(env, engine, name, bundle).await
}

/// A container created in the host's pid namespace: its init is no namespace init there, so a
/// signal's default action (to terminate) applies to it.
async fn created_in_host_pid_namespace(
    env: &mut Env,
    engine: &Engine,
    name: &str,
    args: &[&str],
) -> anyhow::Result<ContainerId> {
    let bundle = env.bundle_builder(args.iter().copied()).host_pid_namespace().build()?;
    created_from(env, engine, name, bundle).await
}

async fn created_from(env: &mut Env, engine: &Engine, name: &str, bundle: Bundle) -> anyhow::Result<ContainerId> {
    let id = env.id(name);
    let created = engine.create(&id, bundle.path(), CreateOptions::default()).await.context("engine create")?;
    env.track(created.pid);
    // The runtime has what it needs from the bundle once the container exists.
    env.keep(bundle);
    Ok(id)
}

async fn exit_code_is_reported(env: &mut Env) -> CaseResult {
    let engine = env.engine()?;
    let id = created(env, &engine, "exit7", &["sh", "-c", "exit 7"]).await?;
    engine.start(&id).await.context("start")?;
    ensure!(engine.wait(&id).await? == Exit::Exited(7), "wait");
    ensure!(exit_file_text(env, &id)? == "7", "the exit file holds the code as decimal text");
    let status = engine.status(&id).await?;
    ensure!(status.status == Status::Stopped && status.exit == Some(Exit::Exited(7)), "status {status:?}");
    engine.delete(&id, DeleteMode::IfStopped).await.context("delete")?;
    ensure!(engine.list().await?.is_empty(), "nothing listed after delete");
    Ok(Ran::Passed)
}

async fn signals_are_reported(env: &mut Env) -> CaseResult {
    let engine = env.engine()?;
    for (signal, code) in [(Signal::TERM, "143"), (Signal::KILL, "137")] {
        let id = created_in_host_pid_namespace(env, &engine, "signaled", &["sleep", "1000"]).await?;
        engine.start(&id).await?;
        engine.kill(&id, signal, KillScope::Init).await.context("kill")?;
        let exit = engine.wait(&id).await?;
        ensure!(exit == Exit::Signaled(signal), "killed by {signal:?}: {exit:?}");
        ensure!(exit_file_text(env, &id)? == code, "on disk as 128 + {}", signal.number());
        engine.delete(&id, DeleteMode::IfStopped).await?;
    }
    Ok(Ran::Passed)
}

async fn exit_before_start_returns(env: &mut Env) -> CaseResult {
    let engine = env.engine()?;
    let id = created(env, &engine, "quick", &["sh", "-c", "exit 3"]).await?;
    engine.start(&id).await.context("start")?;
    // The process may be long gone by now: the monitor held it from create on.
    tokio::time::sleep(Duration::from_millis(200)).await;
    ensure!(engine.wait(&id).await? == Exit::Exited(3), "an early exit keeps its code");
    engine.delete(&id, DeleteMode::IfStopped).await?;
    Ok(Ran::Passed)
}

async fn run_supervises(env: &mut Env) -> CaseResult {
    let engine = env.engine()?;
    let id = env.id("run");
    let bundle = env.bundle(["sh", "-c", "exit 4"])?;
    let created = engine.run(&id, bundle.path(), CreateOptions::default()).await.context("run")?;
    env.track(created.pid);
    ensure!(engine.wait(&id).await? == Exit::Exited(4), "run's container reports its code");
    engine.delete(&id, DeleteMode::IfStopped).await?;
    Ok(Ran::Passed)
}

/// What a process does with a signal, as `/proc/<pid>/status` shows it.
#[derive(Debug, Clone, Copy)]
pub(super) enum Disposition {
    /// `SigIgn`: `trap '' SIG`.
    Ignored,
    /// `SigCgt`: a handler, `trap 'command' SIG`.
    Caught,
}

/// Waits (up to 10 s) until the container's init has set `disposition` for `signal`, so that a
/// signal sent next meets the shell's trap rather than the default action.
pub(super) async fn until_the_init_handles(
    backend: &dyn runtime_core::OciBackend,
    id: &ContainerId,
    signal: Signal,
    disposition: Disposition,
) -> anyhow::Result<()> {
    let pid = backend.state(id).await?.pid.context("a running container has an init pid")?;
    let field = match disposition {
        Disposition::Ignored => "SigIgn:",
        Disposition::Caught => "SigCgt:",
    };
    // The mask's bit n - 1 is signal n (proc(5)).
    let bit = 1u64 << (signal.number() - 1);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
        let mask = status
            .lines()
            .find_map(|line| line.strip_prefix(field))
            .and_then(|mask| u64::from_str_radix(mask.trim(), 16).ok())
            .with_context(|| format!("no {field} in /proc/{pid}/status"))?;
        if mask & bit != 0 {
            return Ok(());
        }
        ensure!(Instant::now() < deadline, "the init never set its {disposition:?} {signal:?} trap");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn stop_escalates(env: &mut Env) -> CaseResult {
    let engine = env.engine()?;
    // A namespace init without a TERM handler ignores TERM (fakes: a process that traps it).
    let id = created(env, &engine, "stubborn", &["sh", "-c", "trap '' TERM; sleep 1000 & wait"]).await?;
    engine.start(&id).await?;
    until_the_init_handles(engine.backend(), &id, Signal::TERM, Disposition::Ignored).await?;
    let timeout = Duration::from_secs(1);
    let started = Instant::now();
    let exit = engine.stop(&id, StopOptions { signal: None, timeout }).await.context("stop")?;
    let took = started.elapsed();
    ensure!(exit == Exit::Signaled(Signal::KILL), "a container that ignores TERM ends by KILL: {exit:?}");
    ensure!(took >= timeout, "SIGKILL came only after the timeout ({took:?})");
    // SIGKILL ends it at once; the grace `stop` documents after it is 5 s.
    let grace = Duration::from_secs(5);
    ensure!(took < timeout + grace, "stop returned within timeout + grace ({took:?})");
    engine.delete(&id, DeleteMode::IfStopped).await?;
    Ok(Ran::Passed)
}

async fn stop_returns_at_exit(env: &mut Env) -> CaseResult {
    let engine = env.engine()?;
    // A code below 129, which no monitor can take for a signal.
    let id =
        created(env, &engine, "polite", &["sh", "-c", "sleep 1000 & trap \"kill $!; exit 43\" TERM; wait"]).await?;
    engine.start(&id).await?;
    until_the_init_handles(engine.backend(), &id, Signal::TERM, Disposition::Caught).await?;
    let started = Instant::now();
    let exit = engine.stop(&id, StopOptions { signal: None, timeout: Duration::from_secs(60) }).await?;
    ensure!(exit == Exit::Exited(43), "the trap's own exit code: {exit:?}");
    ensure!(started.elapsed() < Duration::from_secs(30), "stop waited for the exit, not for its timeout");
    engine.delete(&id, DeleteMode::IfStopped).await?;
    Ok(Ran::Passed)
}

async fn stop_uses_annotation(env: &mut Env) -> CaseResult {
    let engine = env.engine()?;
    let id = env.id("stopsig");
    // The process traps only SIGUSR1 (10 on x86-64) and exits 42 on it: any other first signal
    // would end in SIGKILL.
    let bundle = env
        .bundle_builder(["sh", "-c", "sleep 1000 & trap \"kill $!; exit 42\" USR1; wait"])
        .annotation(STOP_SIGNAL_ANNOTATION, "SIGUSR1")
        .build()?;
    let created = engine.create(&id, bundle.path(), CreateOptions::default()).await?;
    env.track(created.pid);
    engine.start(&id).await?;
    let usr1 = Signal::from_number(10)?;
    until_the_init_handles(engine.backend(), &id, usr1, Disposition::Caught).await?;
    let exit = engine.stop(&id, StopOptions { signal: None, timeout: Duration::from_secs(30) }).await?;
    ensure!(exit == Exit::Exited(42), "stopped by the annotated signal: {exit:?}");
    engine.delete(&id, DeleteMode::IfStopped).await?;
    Ok(Ran::Passed)
}

async fn stop_of_gone_container(env: &mut Env) -> CaseResult {
    let engine = env.engine()?;
    let id = created(env, &engine, "gone", &["sh", "-c", "exit 0"]).await?;
    engine.start(&id).await?;
    engine.wait(&id).await?;
    let exit = engine.stop(&id, StopOptions::default()).await.context("stop of a stopped container")?;
    ensure!(exit == Exit::Exited(0), "stop reports the exit it already saw: {exit:?}");
    engine.delete(&id, DeleteMode::IfStopped).await?;
    Ok(Ran::Passed)
}

async fn exec_and_exec_stop(env: &mut Env) -> CaseResult {
    let engine = env.engine()?;
    let id = created(env, &engine, "execs", &["sleep", "1000"]).await?;
    engine.start(&id).await?;
    match engine.exec(&id, &process(["sh", "-c", "echo out; echo err >&2; exit 5"]), ExecOptions::default()).await? {
        ExecOutcome::Exited { code: 5, stdout, stderr } => {
            ensure!(stdout.bytes == b"out\n" && stderr.bytes == b"err\n", "output {stdout:?} {stderr:?}")
        }
        other => bail!("exec: {other:?}"),
    }
    let background = ExecOptions { stdio: ExecStdio::Wired(ContainerStdio::Null), ..ExecOptions::default() };
    let session = engine.exec_detached(&id, &process(["sleep", "1000"]), background).await?;
    env.track(session.pid);
    let exit = engine.exec_stop(&session, Duration::from_secs(5)).await.context("exec_stop")?;
    // A plain process (not a namespace init) dies of SIGTERM.
    ensure!(exit == Exit::Signaled(Signal::TERM), "the session ended by TERM: {exit:?}");
    engine.stop(&id, StopOptions { signal: Some(Signal::KILL), timeout: Duration::from_secs(5) }).await?;
    engine.delete(&id, DeleteMode::IfStopped).await?;
    Ok(Ran::Passed)
}

async fn fifty_in_parallel(env: &mut Env) -> CaseResult {
    let engine = env.engine()?;
    let mut bundles = Vec::new();
    let mut tasks = tokio::task::JoinSet::new();
    for code in 0..50 {
        let id = env.id("many");
        let bundle = env.bundle(["sh", "-c", &format!("exit {code}")])?;
        let engine = Arc::clone(&engine);
        let path = bundle.path().to_path_buf();
        bundles.push(bundle);
        tasks.spawn(async move {
            let created = engine.create(&id, &path, CreateOptions::default()).await?;
            engine.start(&id).await?;
            let exit = engine.wait(&id).await?;
            engine.delete(&id, DeleteMode::IfStopped).await?;
            anyhow::Ok((code, created.pid, exit))
        });
    }
    let mut seen = 0;
    while let Some(joined) = tasks.join_next().await {
        let (code, pid, exit) = joined.context("a container task panicked")??;
        env.track(pid);
        ensure!(exit == Exit::Exited(code), "container {code} reported {exit:?}");
        seen += 1;
    }
    ensure!(seen == 50, "{seen} of 50 finished");
    ensure!(engine.list().await?.is_empty(), "all deleted");
    Ok(Ran::Passed)
}

async fn reconnect(env: &mut Env) -> CaseResult {
    let first = env.engine()?;
    let live = created(env, &first, "live", &["sleep", "1000"]).await?;
    first.start(&live).await?;
    let exited = created(env, &first, "exited", &["sh", "-c", "exit 5"]).await?;
    first.start(&exited).await?;
    ensure!(first.wait(&exited).await? == Exit::Exited(5), "first engine sees the exit");
    drop(first);
    // A new engine on the same root, as after the embedding program restarted.
    let second = env.reconnected().await?;
    let statuses = second.list().await?;
    let find = |id: &ContainerId| statuses.iter().find(|status| status.id == *id).cloned();
    let live_status = find(&live).context("the live container is found again")?;
    ensure!(live_status.status == Status::Running && live_status.exit.is_none(), "{live_status:?}");
    let exited_status = find(&exited).context("the exited container is found again")?;
    ensure!(exited_status.exit == Some(Exit::Exited(5)), "its code survives: {exited_status:?}");
    second.stop(&live, StopOptions { signal: Some(Signal::KILL), timeout: Duration::from_secs(5) }).await?;
    second.delete(&live, DeleteMode::IfStopped).await?;
    second.delete(&exited, DeleteMode::IfStopped).await?;
    Ok(Ran::Passed)
}

async fn delete_refuses_running(env: &mut Env) -> CaseResult {
    let engine = env.engine()?;
    let id = created(env, &engine, "busy", &["sleep", "1000"]).await?;
    engine.start(&id).await?;
    match engine.delete(&id, DeleteMode::IfStopped).await {
        Err(runtime_core::Error::InvalidState { .. }) => {}
        other => bail!("delete of a running container: {other:?}"),
    }
    ensure!(engine.status(&id).await?.status == Status::Running, "still running");
    engine.delete(&id, DeleteMode::Force).await.context("delete --force")?;
    ensure!(engine.list().await?.is_empty(), "nothing listed after delete");
    Ok(Ran::Passed)
}

/// What tells a test binary it runs as the second process of
/// [`two_processes_stop_and_delete_one_container`]: the subject's label, then the monitor
/// (`direct`, or `conmon:<binary>`), the runtime binary, its root, the engine's state root and
/// the container, separated by newlines.
const SECOND_PROCESS: &str = "TESTKIT_ENGINE_SECOND_PROCESS";

/// Stops and deletes one container from another OS process, through an engine of its own on the
/// same state root; prints `stop: <outcome>` and `delete: <outcome>`.
pub(super) fn second_process(subjects: &[super::Subject]) -> Option<std::process::ExitCode> {
    let task = std::env::var(SECOND_PROCESS).ok()?;
    let fields: Vec<&str> = task.split('\n').collect();
    let [label, monitor, binary, root, state_root, id] = fields[..] else {
        eprintln!("{SECOND_PROCESS} holds {task:?}");
        return Some(std::process::ExitCode::from(2));
    };
    let Some(monitor) = super::MonitorChoice::decode(monitor) else {
        eprintln!("{SECOND_PROCESS} names the monitor {monitor:?}, which is none this suite makes");
        return Some(std::process::ExitCode::from(2));
    };
    // Once the variable is set this process never runs the suite itself: that would recurse.
    let Some(subject) = subjects.iter().find(|subject| subject.label() == label).cloned() else {
        eprintln!("{SECOND_PROCESS} names {label:?}, which this binary does not register");
        return Some(std::process::ExitCode::from(2));
    };
    let outcome = async {
        let config = runtime_core::RuntimeConfig::default().binary(binary).root(root);
        let backend: Arc<dyn runtime_core::OciBackend> = Arc::from((subject.connect)(config).await?);
        let root = runtime_core::StateRoot::open(state_root)?;
        let engine = Engine::new(backend, monitor.monitor(), root);
        let id = ContainerId::new(id)?;
        let stop = engine.stop(&id, StopOptions { signal: Some(Signal::KILL), timeout: Duration::from_secs(10) }).await;
        let delete = engine.delete(&id, DeleteMode::IfStopped).await;
        anyhow::Ok((kind(stop), kind(delete)))
    };
    let outcome = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(anyhow::Error::from)
        .and_then(|runtime| runtime.block_on(outcome));
    match outcome {
        Ok((stop, delete)) => {
            println!("stop: {stop}\ndelete: {delete}");
            Some(std::process::ExitCode::SUCCESS)
        }
        Err(err) => {
            eprintln!("second process: {err:#}");
            Some(std::process::ExitCode::from(1))
        }
    }
}

/// An outcome as `ok`, or the error's variant and message.
fn kind<T>(result: runtime_core::Result<T>) -> String {
    use runtime_core::Error;
    match result {
        Ok(_) => "ok".to_owned(),
        Err(err @ Error::NotFound { .. }) => format!("NotFound ({err})"),
        Err(err @ Error::InvalidState { .. }) => format!("InvalidState ({err})"),
        Err(err) => format!("other ({err})"),
    }
}

async fn two_processes_stop_and_delete_one_container(env: &mut Env) -> CaseResult {
    let engine = env.engine()?;
    let id = created(env, &engine, "contended", &["sleep", "1000"]).await?;
    engine.start(&id).await?;
    let root = env.engine_state_root()?;
    let binary = env.config.binary.clone().context("the env names its binary")?;
    let runtime_root = env.config.root.clone().context("the env names its root")?;
    let task = [
        env.label().to_owned(),
        env.monitor().encode(),
        binary.display().to_string(),
        runtime_root.display().to_string(),
        root.path().display().to_string(),
        id.as_str().to_owned(),
    ]
    .join("\n");
    let program = std::env::current_exe()?;
    let spawn = || {
        // With this process's arguments: a program whose command line chooses its subjects
        // (`cargo xtask matrix --plugin`) registers the same ones.
        tokio::process::Command::new(&program)
            .args(std::env::args_os().skip(1))
            .env(SECOND_PROCESS, &task)
            .stdin(std::process::Stdio::null())
            .kill_on_drop(true)
            .output()
    };
    let (first, second) = tokio::time::timeout(Duration::from_secs(120), async { tokio::join!(spawn(), spawn()) })
        .await
        .context("the two processes did not finish")?;
    let mut deletes = Vec::new();
    for output in [first?, second?] {
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&output.stderr);
        ensure!(output.status.success() && !stderr.contains("panicked"), "a process failed: {stdout} {stderr}");
        let stop = stdout.lines().find_map(|line| line.strip_prefix("stop: ")).context("no stop line")?;
        ensure!(stop == "ok" || stop.starts_with("NotFound"), "stop in one process: {stop}");
        deletes
            .push(stdout.lines().find_map(|line| line.strip_prefix("delete: ")).context("no delete line")?.to_owned());
    }
    deletes.sort();
    ensure!(deletes[1] == "ok", "one process deleted the container: {deletes:?}");
    ensure!(
        deletes[0].starts_with("NotFound") || deletes[0].starts_with("InvalidState"),
        "the other was told, with a typed error: {deletes:?}"
    );
    ensure!(engine.list().await?.is_empty(), "the state root has no container left");
    Ok(Ran::Passed)
}

/// A supervised container's output goes to a log that needs no reader: where the monitor keeps
/// logs ([`Capability::Logs`]: conmon, which owns the container's stdio), the monitor's own, read
/// back through [`Engine::logs`], each stream's lines in order (the streams are separate pipes,
/// whose order between them no reader can know); elsewhere a file of the caller's as the
/// container's stdio, which holds both streams in the order written.
async fn output_goes_to_a_log_file(env: &mut Env) -> CaseResult {
    let engine = env.engine()?;
    let id = env.id("logged");
    let bundle = env.bundle(["sh", "-c", "echo out; echo err >&2; exit 2"])?;
    if env.lacks(Capability::Logs).is_none() {
        let created = engine.run(&id, bundle.path(), CreateOptions::default()).await.context("run")?;
        env.track(created.pid);
        ensure!(engine.wait(&id).await? == Exit::Exited(2), "the container's own exit");
        let mut reader = engine.logs(&id, LogOptions::default()).await.context("the monitor's log")?;
        let mut lines = Vec::new();
        while let Some(line) = reader.next_line().await? {
            ensure!(line.complete, "every line ended with its newline: {line:?}");
            lines.push((line.stream, String::from_utf8_lossy(&line.text).into_owned()));
        }
        let of = |stream: OutputStream| -> Vec<&str> {
            lines.iter().filter(|(from, _)| *from == stream).map(|(_, text)| text.as_str()).collect()
        };
        ensure!(of(OutputStream::Stdout) == ["out"], "stdout's lines in the log: {lines:?}");
        ensure!(of(OutputStream::Stderr) == ["err"], "stderr's lines in the log: {lines:?}");
        ensure!(lines.len() == 2, "nothing else in the log: {lines:?}");
    } else {
        let logs = tempfile::tempdir()?;
        let log = logs.path().join("ctr.log");
        let stdio = ContainerStdio::log_file(&log)?;
        let options = CreateOptions { stdio, ..CreateOptions::default() };
        let created = engine.run(&id, bundle.path(), options).await.context("run with the log file as stdio")?;
        env.track(created.pid);
        ensure!(engine.wait(&id).await? == Exit::Exited(2), "the container's own exit");
        let text = std::fs::read_to_string(&log)?;
        ensure!(text == "out\nerr\n", "the log holds both streams in order: {text:?}");
        use std::os::unix::fs::PermissionsExt;
        ensure!(std::fs::metadata(&log)?.permissions().mode() & 0o777 == 0o600, "the log is private");
    }
    engine.delete(&id, DeleteMode::IfStopped).await?;
    Ok(Ran::Passed)
}

/// A client attached between create and start misses nothing (the monitor replays nothing
/// written before a client attached); the streams are separate pipes, so each is read apart.
async fn attached_client_receives_output(env: &mut Env) -> CaseResult {
    let engine = env.engine()?;
    let id = created(env, &engine, "attached", &["sh", "-c", "echo out; echo err >&2; exit 4"]).await?;
    let attached = engine.attach(&id).await.context("attach")?;
    engine.start(&id).await.context("start")?;
    let (mut stdout, mut stderr) = (Vec::new(), Vec::new());
    let reading = async {
        while let Some(chunk) = attached.read().await? {
            match chunk.stream {
                OutputStream::Stdout => stdout.extend(chunk.bytes),
                OutputStream::Stderr => stderr.extend(chunk.bytes),
            }
        }
        anyhow::Ok(())
    };
    tokio::time::timeout(Duration::from_secs(30), reading).await.context("the attachment outlived the container")??;
    let exit = engine.wait(&id).await?;
    engine.delete(&id, DeleteMode::IfStopped).await?;
    let text = |bytes: &[u8]| String::from_utf8_lossy(bytes).into_owned();
    ensure!(stdout == b"out\n", "stdout through the attachment: {:?}", text(&stdout));
    ensure!(stderr == b"err\n", "stderr through the attachment: {:?}", text(&stderr));
    ensure!(exit == Exit::Exited(4), "the container's own exit: {exit:?}");
    Ok(Ran::Passed)
}

async fn fast_exit_survives_reconnect(env: &mut Env) -> CaseResult {
    // An init that exits as soon as it starts may end before `run` has returned.
    for attempt in 0..5 {
        let engine = env.engine()?;
        let id = env.id("fast");
        let bundle = env.bundle(["sh", "-c", "exit 42"])?;
        let created = engine.run(&id, bundle.path(), CreateOptions::default()).await.context("run")?;
        env.track(created.pid);
        drop(engine);
        let engine = env.reconnected().await?;
        // A snapshot: until its monitor has reaped the init, the runtime counts it running (a
        // zombie here). Whatever exit the status reports must be the container's own.
        let status = engine.status(&id).await?;
        let not_yet_reaped = status.status == Status::Running && status.exit.is_none();
        ensure!(
            status.exit == Some(Exit::Exited(42)) || not_yet_reaped,
            "attempt {attempt}, after a reconnect: {status:?}"
        );
        ensure!(engine.wait(&id).await? == Exit::Exited(42), "attempt {attempt}: wait after a reconnect");
        let status = engine.status(&id).await?;
        ensure!(status.exit == Some(Exit::Exited(42)), "attempt {attempt}, once waited for: {status:?}");
        engine.delete(&id, DeleteMode::IfStopped).await?;
    }
    Ok(Ran::Passed)
}

async fn codes_above_128_survive_reconnect(env: &mut Env) -> CaseResult {
    // `exit 137` is a code; a KILL is a signal. The direct monitor records which; conmon's exit
    // file says 137 for both, so under conmon the code may read as the signal, but it must read
    // the same live and after a reconnect.
    let engine = env.engine()?;
    let code = created(env, &engine, "code137", &["sh", "-c", "exit 137"]).await?;
    engine.start(&code).await?;
    let code_exit = engine.wait(&code).await?;
    match env.monitor() {
        MonitorChoice::Direct => ensure!(code_exit == Exit::Exited(137), "live, exit 137 is a code: {code_exit:?}"),
        MonitorChoice::Conmon(_) => {
            ensure!(exit_file_text(env, &code)? == "137", "conmon's exit file holds the code");
            let either = [Exit::Exited(137), Exit::Signaled(Signal::KILL)];
            ensure!(either.contains(&code_exit), "live, exit 137 read as neither 137 nor KILL: {code_exit:?}");
        }
    }
    let id = created_in_host_pid_namespace(env, &engine, "killed", &["sleep", "1000"]).await?;
    engine.start(&id).await?;
    engine.kill(&id, Signal::KILL, KillScope::Init).await?;
    ensure!(engine.wait(&id).await? == Exit::Signaled(Signal::KILL), "live, SIGKILL is a signal");
    drop(engine);
    let engine = env.reconnected().await?;
    let code_status = engine.status(&code).await?;
    ensure!(code_status.exit == Some(code_exit), "after a reconnect, {code_exit:?} became {code_status:?}");
    let killed_status = engine.status(&id).await?;
    ensure!(killed_status.exit == Some(Exit::Signaled(Signal::KILL)), "after a reconnect: {killed_status:?}");
    engine.delete(&code, DeleteMode::IfStopped).await?;
    engine.delete(&id, DeleteMode::IfStopped).await?;
    Ok(Ran::Passed)
}

async fn real_time_signal_death(env: &mut Env) -> CaseResult {
    let engine = env.engine()?;
    // glibc's SIGRTMIN is 34 on Linux, so SIGRTMIN+3 (as systemd uses) is 37. The init sends
    // it to itself (youki 0.7's `kill` refuses real-time signals).
    let script = ["sh", "-c", "kill -37 $$; sleep 1000"];
    let id = created_in_host_pid_namespace(env, &engine, "rt-signal", &script).await?;
    engine.start(&id).await?;
    let exit = engine.wait(&id).await?;
    ensure!(exit == Exit::Signaled("SIGRTMIN+3".parse()?), "{exit:?}");
    ensure!(exit_file_text(env, &id)? == "165", "the exit file holds 128 + 37");
    engine.delete(&id, DeleteMode::IfStopped).await?;
    Ok(Ran::Passed)
}

async fn recreated_id_inherits_no_exit(env: &mut Env) -> CaseResult {
    let engine = env.engine()?;
    let id = created(env, &engine, "reused", &["sh", "-c", "exit 3"]).await?;
    engine.start(&id).await?;
    ensure!(engine.wait(&id).await? == Exit::Exited(3), "the first container's exit");
    // Someone deletes it behind the engine's back.
    env.backend.delete(&id, DeleteMode::Force).await.context("delete outside the engine")?;
    let bundle = env.bundle(["sleep", "1000"])?;
    let again = engine.create(&id, bundle.path(), CreateOptions::default()).await.context("create again")?;
    env.track(again.pid);
    env.keep(bundle);
    engine.start(&id).await?;
    let status = engine.status(&id).await?;
    ensure!(status.status == Status::Running && status.exit.is_none(), "the new container: {status:?}");
    // A stop that found an exit would return it without a signal; this one must kill.
    let exit = engine.stop(&id, StopOptions { signal: Some(Signal::KILL), timeout: Duration::from_secs(5) }).await?;
    ensure!(exit == Exit::Signaled(Signal::KILL), "stop ends the new container: {exit:?}");
    engine.delete(&id, DeleteMode::IfStopped).await?;
    Ok(Ran::Passed)
}

async fn run_dropped_while_starting(env: &mut Env) -> CaseResult {
    if env.backend.can_run() {
        return skipped("this backend runs in one runtime call, whose own rollback the fault cases test");
    }
    let Some(fake) = env.fake() else {
        return skipped("needs a runtime whose start hangs on cue (the fake's fault injection)");
    };
    fake.inject("start", "hang")?;
    let engine = env.engine()?;
    let id = env.id("dropped-run");
    let bundle = env.bundle(["sleep", "1000"])?;
    let run = engine.run(&id, bundle.path(), CreateOptions::default());
    ensure!(tokio::time::timeout(Duration::from_secs(2), run).await.is_err(), "the start hangs, so the run does");
    // The rollback runs in the background; settling waits for it.
    let left = engine.settle().await;
    ensure!(left.is_empty(), "the rollback could not undo everything: {left:?}");
    let containers = env.backend.list().await?;
    ensure!(containers.is_empty(), "containers left: {containers:?}");
    let records = engine.list().await?;
    ensure!(records.is_empty(), "records left: {records:?}");
    Ok(Ran::Passed)
}
