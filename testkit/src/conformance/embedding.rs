//! Cases for what an embedder relies on beyond the runtime's own behaviour: descriptors handed
//! over by value reach end of file, exec streams, and a dropped call leaves nothing behind.

use std::io::Read;
use std::time::Duration;

use anyhow::{Context, bail, ensure};
use runtime_core::{ContainerStdio, CreateOptions, Error, ExecOptions, ExecOutcome, ExecStdio, Status, process};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

use super::env::Env;
use crate::harness::{CaseResult, Ran};
use crate::procs::Tracked;

/// How long a dropped call's leftovers may take to disappear (orphans are reaped lazily here).
const GONE_PATIENCE: Duration = Duration::from_secs(10);

pub(super) async fn create_returns_the_pid_the_runtime_reports(env: &mut Env) -> CaseResult {
    let id = env.id("pid");
    let bundle = env.bundle(["sleep", "1000"])?;
    let created = env.backend.create(&id, bundle.path(), CreateOptions::default()).await.context("create")?;
    env.track(created.pid);
    let state = env.backend.state(&id).await.context("state")?;
    ensure!(state.pid == Some(created.pid), "create said {}, state says {:?}", created.pid, state.pid);
    env.remove(&id).await?;
    Ok(Ran::Passed)
}

pub(super) async fn pipes_reach_end_of_file_when_the_container_exits(env: &mut Env) -> CaseResult {
    let id = env.id("eof");
    let bundle = env.bundle(["sh", "-c", "echo bye"])?;
    let (stdio, pipes) = ContainerStdio::pipes()?;
    let created = env.backend.create(&id, bundle.path(), CreateOptions { stdio, ..CreateOptions::default() }).await?;
    env.track(created.pid);
    env.backend.start(&id).await.context("start")?;
    // The options were consumed: no copy of the write end is left in this process, so reading
    // to the end finishes once the container has exited.
    let reading = tokio::task::spawn_blocking(move || {
        let mut text = String::new();
        std::fs::File::from(pipes.stdout).read_to_string(&mut text).map(|_| text)
    });
    let text = tokio::time::timeout(Duration::from_secs(30), reading)
        .await
        .context("stdout never reached end of file")?
        .context("reading task")?
        .context("reading stdout")?;
    ensure!(text == "bye\n", "stdout carried {text:?}");
    env.wait_for(&id, Status::Stopped).await?;
    env.remove(&id).await?;
    Ok(Ran::Passed)
}

pub(super) async fn exec_streams_through_pipes_while_it_runs(env: &mut Env) -> CaseResult {
    let (id, _bundle, _) = env.running("stream", &["sleep", "1000"]).await?;
    let (stdio, pipes) = ContainerStdio::pipes()?;
    let mut pipes = pipes.into_async()?;
    let conversation = process(["sh", "-c", "echo ready; read line; echo got $line"]);
    let opts = ExecOptions { stdio: ExecStdio::Wired(stdio), ..ExecOptions::default() };
    let exec = env.backend.exec(&id, &conversation, opts);
    // The process waits for our line only after printing its first: both directions must flow
    // while the exec call is still in flight.
    let talk = async {
        let mut lines = BufReader::new(&mut pipes.stdout).lines();
        let first = lines.next_line().await?.context("no first line")?;
        ensure!(first == "ready", "first line {first:?}");
        pipes.stdin.write_all(b"ping\n").await?;
        let second = lines.next_line().await?.context("no second line")?;
        ensure!(second == "got ping", "second line {second:?}");
        anyhow::Ok(())
    };
    let (outcome, talked) = tokio::time::timeout(Duration::from_secs(30), async { tokio::join!(exec, talk) })
        .await
        .context("the streamed exec did not finish")?;
    talked?;
    match outcome.context("exec")? {
        ExecOutcome::Exited { code: 0, stdout, .. } => {
            ensure!(stdout.bytes.is_empty(), "wired output is not captured as well")
        }
        other => bail!("streamed exec ended with {other:?}"),
    }
    env.remove(&id).await?;
    Ok(Ran::Passed)
}

pub(super) async fn a_dropped_exec_kills_its_process(env: &mut Env) -> CaseResult {
    let (id, _bundle, _) = env.running("drop-exec", &["sleep", "1000"]).await?;
    let scratch = tempfile::tempdir()?;
    let pid_file = scratch.path().join("exec.pid");
    let opts = ExecOptions { pid_file: Some(pid_file.clone()), ..ExecOptions::default() };
    let sleeper = process(["sleep", "1000"]);
    // Boxed, so that `drop` below really drops the call.
    let mut exec = Box::pin(env.backend.exec(&id, &sleeper, opts));
    // Let the exec run until its process exists, then drop the call.
    let pid = tokio::select! {
        outcome = &mut exec => bail!("a sleeping exec returned: {outcome:?}"),
        pid = wait_for_pid_file(&pid_file) => pid?,
    };
    let process = Tracked::capture(pid);
    ensure!(process.alive(), "the exec'd process {pid} runs before the drop");
    drop(exec);
    ensure!(process.wait_gone(GONE_PATIENCE), "the exec'd process {pid} survived the dropped call");
    ensure!(!env.backend.ps(&id).await?.contains(&pid), "ps still lists {pid}");
    env.remove(&id).await?;
    Ok(Ran::Passed)
}

/// A bundle whose `createRuntime` hook never returns, so its create is stuck with the container
/// made in part.
fn bundle_stuck_in_a_create_hook(env: &Env) -> anyhow::Result<crate::bundle::Bundle> {
    let bundle = env.bundle(["sleep", "1000"])?;
    let config_path = bundle.path().join("config.json");
    let mut config: serde_json::Value = serde_json::from_slice(&std::fs::read(&config_path)?)?;
    config["hooks"] = serde_json::json!({
        "createRuntime": [{ "path": "/bin/sleep", "args": ["sleep", "1000"] }]
    });
    std::fs::write(&config_path, serde_json::to_vec(&config)?)?;
    Ok(bundle)
}

/// A create whose runtime is stuck in a `createRuntime` hook: the container exists in part
/// (namespaces, init, state directory) when the caller gives up.
pub(super) async fn a_dropped_create_leaves_nothing_and_frees_the_id(env: &mut Env) -> CaseResult {
    let id = env.id("drop-create");
    let bundle = bundle_stuck_in_a_create_hook(env)?;
    let stuck =
        tokio::time::timeout(Duration::from_secs(2), env.backend.create(&id, bundle.path(), CreateOptions::default()))
            .await;
    ensure!(stuck.is_err(), "a create stuck in its hook returned: {stuck:?}");
    // The rollback runs in the background; once it has finished, nothing is left.
    let unfinished = env.backend.settle().await;
    ensure!(unfinished.is_empty(), "the rollback of the dropped create left: {unfinished:?}");
    match env.backend.state(&id).await {
        Err(Error::NotFound { .. }) => {}
        other => bail!("after the dropped create the runtime still knows the container: {other:?}"),
    }
    // The id is free: the same container can be made again, now without the hook.
    let plain = env.bundle(["sleep", "1000"])?;
    let created = env.backend.create(&id, plain.path(), CreateOptions::default()).await.context("create again")?;
    env.track(created.pid);
    env.remove(&id).await?;
    Ok(Ran::Passed)
}

/// A create dropped while stuck in a `createRuntime` hook, given a pid file that an earlier
/// program left naming one of the test's own processes: the rollback kills the container, never
/// the process the stale file names.
pub(super) async fn a_dropped_create_never_kills_what_a_stale_pid_file_names(env: &mut Env) -> CaseResult {
    let id = env.id("stale-pid");
    let bundle = bundle_stuck_in_a_create_hook(env)?;
    let mut bystander = std::process::Command::new("sleep").arg("1000").spawn()?;
    let scratch = tempfile::tempdir()?;
    let pid_file = scratch.path().join("left-by-an-earlier-program.pid");
    std::fs::write(&pid_file, bystander.id().to_string())?;
    let opts = CreateOptions { pid_file: Some(pid_file), ..CreateOptions::default() };
    let stuck = tokio::time::timeout(Duration::from_secs(2), env.backend.create(&id, bundle.path(), opts)).await;
    let unfinished = env.backend.settle().await;
    let survived = bystander.try_wait()?.is_none();
    let _ = bystander.kill();
    let _ = bystander.wait();
    ensure!(stuck.is_err(), "a create stuck in its hook returned: {stuck:?}");
    ensure!(unfinished.is_empty(), "the rollback of the dropped create left: {unfinished:?}");
    ensure!(survived, "the rollback killed {}, which only a stale pid file named", bystander.id());
    match env.backend.state(&id).await {
        Err(Error::NotFound { .. }) => Ok(Ran::Passed),
        other => bail!("after the dropped create the runtime still knows the container: {other:?}"),
    }
}

async fn wait_for_pid_file(path: &std::path::Path) -> anyhow::Result<u32> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(pid) = std::fs::read_to_string(path).ok().and_then(|text| text.trim().parse().ok()) {
            return Ok(pid);
        }
        ensure!(tokio::time::Instant::now() < deadline, "no pid in {}", path.display());
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
