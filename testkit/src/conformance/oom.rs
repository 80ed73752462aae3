//! Cases for the out-of-memory report of the [`Engine`]: a container that allocates past its
//! memory limit is killed by the kernel's OOM killer, and the engine says so, live and after a
//! reconnect; a SIGKILL that `stop` sends is not mistaken for one.
//!
//! The evidence is the workload itself: a shell that doubles a string without end cannot stay
//! under a 32 MiB limit (tried here on runc 1.1.5, crun 1.8.1 and youki 0.7.0: killed within a
//! second, `oom_kill 1` in its memory cgroup), and nothing else signals it. The fake runtimes
//! run processes on the host without cgroups, so no limit is enforced there and the OOM case
//! is reported ignored on them; the `stop` case runs everywhere.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, ensure};
use runtime_core::{ContainerId, CreateOptions, DeleteMode, Engine, Exit, Signal, Status, StopOptions};

use super::CaseSpec;
use super::engine::{Disposition, until_the_init_handles};
use super::env::{Env, skipped};
use crate::harness::{CaseResult, Ran};

/// Every OOM case of the engine with its name.
pub(super) fn all() -> Vec<CaseSpec> {
    vec![
        CaseSpec::new(
            "an_oom_killed_container_is_reported_as_such_live_and_after_a_reconnect",
            "exit codes: an OOM kill is reported as such, live and after a reconnect",
            |env| Box::pin(oom_killed_is_reported(env)),
        ),
        CaseSpec::new(
            "an_oom_kill_after_a_reconnect_is_seen_by_the_new_engine",
            "an OOM kill while no engine runs is seen by the next one",
            |env| Box::pin(oom_after_reconnect(env)),
        ),
        CaseSpec::new(
            "a_kill_from_stop_is_not_reported_as_an_oom_kill",
            "a KILL sent by stop is not reported as an OOM kill",
            |env| Box::pin(stop_kill_is_no_oom(env)),
        ),
    ]
}

/// The memory limit of the cases' containers.
const LIMIT: i64 = 32 * 1024 * 1024;

/// A shell that doubles a string until the memory runs out.
const ALLOCATE_WITHOUT_END: &str = "x=a; while :; do x=$x$x; done";

/// How long the allocating container may take to hit its limit (it takes well under a second).
const PATIENCE: Duration = Duration::from_secs(60);

/// The reason the OOM cases cannot run on a fake.
const NO_CGROUPS: &str = "the fake runtimes run processes on the host without cgroups: no memory limit is enforced, so nothing is OOM-killed";

/// Creates and starts a container running `args` under a 32 MiB memory limit; says where its
/// root filesystem is.
async fn started_with_limit(
    env: &mut Env,
    engine: &Engine,
    name: &str,
    args: &[&str],
) -> anyhow::Result<(ContainerId, PathBuf)> {
    let id = env.id(name);
    let bundle = env.bundle_builder(args.iter().copied()).memory_limit(LIMIT).build()?;
    let created = engine.create(&id, bundle.path(), CreateOptions::default()).await.context("engine create")?;
    env.track(created.pid);
    let rootfs = bundle.rootfs();
    env.keep(bundle);
    engine.start(&id).await.context("start")?;
    Ok((id, rootfs))
}

/// Waits for the allocating container to end, within [`PATIENCE`].
async fn ended(engine: &Engine, id: &ContainerId) -> anyhow::Result<Exit> {
    tokio::time::timeout(PATIENCE, engine.wait(id))
        .await
        .with_context(|| format!("still running after {PATIENCE:?}: is the 32 MiB limit enforced?"))?
        .context("wait")
}

async fn oom_killed_is_reported(env: &mut Env) -> CaseResult {
    if !env.is_real() {
        return skipped(NO_CGROUPS);
    }
    // Nothing records the kill outside the state root (conmon writes `oom` in its working
    // directory too, which would be this process's unless it is given one).
    let stray = std::env::current_dir()?.join("oom");
    ensure!(!stray.exists(), "{} is there before the case", stray.display());
    let first = env.engine()?;
    let (id, _) = started_with_limit(env, &first, "oom", &["sh", "-c", ALLOCATE_WITHOUT_END]).await?;
    let exit = ended(&first, &id).await?;
    ensure!(exit == Exit::Signaled(Signal::KILL), "the OOM killer sends SIGKILL: {exit:?}");
    let status = first.status(&id).await?;
    ensure!(status.oom_killed, "the status says the OOM killer ended it: {status:?}");
    // As conmon records it: an empty file named `oom` in the container's directory.
    let oom_file = env.engine_state_root()?.path().join("containers").join(id.as_str()).join("oom");
    ensure!(std::fs::read(&oom_file).is_ok_and(|bytes| bytes.is_empty()), "no empty {}", oom_file.display());
    ensure!(!stray.exists(), "the OOM kill was recorded in this process's working directory too");
    drop(first);
    let second = env.reconnected().await?;
    let status = second.status(&id).await?;
    ensure!(
        status.status == Status::Stopped && status.exit == Some(Exit::Signaled(Signal::KILL)) && status.oom_killed,
        "the OOM kill survives a reconnect: {status:?}"
    );
    second.delete(&id, DeleteMode::IfStopped).await?;
    Ok(Ran::Passed)
}

/// The memory cgroup of a container found again by a reconnect is found from its init then.
async fn oom_after_reconnect(env: &mut Env) -> CaseResult {
    if !env.is_real() {
        return skipped(NO_CGROUPS);
    }
    let first = env.engine()?;
    let script = format!("while [ ! -e /go ]; do sleep 0.1; done; {ALLOCATE_WITHOUT_END}");
    let (id, rootfs) = started_with_limit(env, &first, "late-oom", &["sh", "-c", &script]).await?;
    drop(first);
    let second = env.reconnected().await?;
    ensure!(second.status(&id).await?.status == Status::Running, "still waiting for /go after the reconnect");
    std::fs::write(rootfs.join("go"), "")?;
    let exit = ended(&second, &id).await?;
    // The new engine sees how it ended: under the direct monitor this process is still the
    // init's parent (the first engine made it a subreaper) and reaps it; conmon records it.
    ensure!(exit == Exit::Signaled(Signal::KILL), "the OOM killer sends SIGKILL: {exit:?}");
    let status = second.status(&id).await?;
    ensure!(status.oom_killed, "the new engine saw the OOM kill: {status:?}");
    second.delete(&id, DeleteMode::IfStopped).await?;
    Ok(Ran::Passed)
}

async fn stop_kill_is_no_oom(env: &mut Env) -> CaseResult {
    let engine = env.engine()?;
    // Under the same limit, far below it; TERM is ignored, so `stop` ends it with SIGKILL.
    let (id, _) = started_with_limit(env, &engine, "stopped", &["sh", "-c", "trap '' TERM; sleep 1000 & wait"]).await?;
    // A TERM sent before the shell set its trap would end it on its own.
    until_the_init_handles(engine.backend(), &id, Signal::TERM, Disposition::Ignored).await?;
    let exit = engine.stop(&id, StopOptions { signal: None, timeout: Duration::from_secs(1) }).await.context("stop")?;
    ensure!(exit == Exit::Signaled(Signal::KILL), "stop escalated to SIGKILL: {exit:?}");
    let status = engine.status(&id).await?;
    ensure!(status.exit == Some(Exit::Signaled(Signal::KILL)), "{status:?}");
    ensure!(!status.oom_killed, "a SIGKILL from stop is no OOM kill: {status:?}");
    engine.delete(&id, DeleteMode::IfStopped).await?;
    Ok(Ran::Passed)
}
