//! The cases. Each takes the env, uses only the `OciBackend` contract, and deletes what it made
//! (the env checks afterwards that it did).

use std::io::Read;
use std::time::Duration;

use anyhow::{Context, bail, ensure};
use runtime_core::oci_spec::runtime::{LinuxMemoryBuilder, LinuxResourcesBuilder};
use runtime_core::{
    CheckpointOptions, ContainerStdio, CreateOptions, Error, ExecOptions, ExecOutcome, Features, RestoreOptions,
    Signal, Status, Support, criu_reason,
};

use super::Case;
use super::env::{Env, skipped};
use crate::harness::{CaseResult, Ran};

/// A process that runs until killed.
const SLEEPER: &[&str] = &["sleep", "1000"];

/// A process that exits 143 on SIGTERM even as PID 1 of a container (which ignores signals it
/// has no handler for), taking its child with it.
const TERM_AWARE: &[&str] = &["sh", "-c", "sleep 1000 & trap \"kill $!; exit 143\" TERM; wait"];

/// Every case with its name.
pub(super) fn all() -> Vec<(&'static str, Case)> {
    vec![
        ("create_start_kill_delete", |env| Box::pin(create_start_kill_delete(env))),
        ("create_with_pipes_returns_and_the_container_writes_to_them", |env| Box::pin(create_with_pipes(env))),
        ("preserved_fds_reach_the_container_and_exec", |env| Box::pin(preserved_fds(env))),
        ("exec_returns_stdout_and_exit_code", |env| Box::pin(exec_returns_stdout_and_exit_code(env))),
        ("exec_detached_returns_a_pid_that_ps_lists", |env| Box::pin(exec_detached(env))),
        ("pause_resume_and_ps_lists_the_init", |env| Box::pin(pause_resume_and_ps(env))),
        ("update_sets_the_memory_limit", |env| Box::pin(update_sets_the_memory_limit(env))),
        ("unknown_id_is_not_found", |env| Box::pin(unknown_id_is_not_found(env))),
        ("duplicate_create_is_already_exists", |env| Box::pin(duplicate_create_is_already_exists(env))),
        ("delete_running_without_force_is_invalid_state", |env| Box::pin(delete_running_is_invalid_state(env))),
        ("list_reports_each_container_with_its_status", |env| Box::pin(list_reports_containers(env))),
        ("features_are_probed_once_and_shared", |env| Box::pin(features_are_probed_once(env))),
        ("feature_verdicts_match_their_evidence", |env| Box::pin(feature_verdicts_match_evidence(env))),
        ("unsupported_checkpoint_is_refused_with_the_probed_reason", |env| Box::pin(unsupported_checkpoint(env))),
        ("checkpoint_and_restore_roundtrip", |env| Box::pin(checkpoint_and_restore(env))),
        ("terminal_reaches_the_container_through_the_console_socket", |env| {
            Box::pin(super::terminal::terminal_reaches_the_container_through_the_console_socket(env))
        }),
        ("stats_match_what_the_test_reads", |env| Box::pin(super::stats::stats_match_what_the_test_reads(env))),
        ("events_stream_samples_and_dropping_it_ends_the_runtime", |env| {
            Box::pin(super::stats::events_stream_samples_and_dropping_it_ends_the_runtime(env))
        }),
    ]
}

async fn create_start_kill_delete(env: &mut Env) -> CaseResult {
    let id = env.id("life");
    let bundle = env.bundle(TERM_AWARE.iter().copied())?;
    let created = env.create(&id, bundle.path()).await?;
    ensure!(created.status == Status::Created, "after create: {}", created.status);
    ensure!(created.pid.is_some_and(|pid| pid > 0), "a created container has its init pid");
    ensure!(created.created.is_some(), "`created` is parsed as a timestamp");
    ensure!(created.id == id && created.bundle == bundle.path(), "state names the container and its bundle");
    env.backend.start(&id).await.context("start")?;
    let running = env.wait_for(&id, Status::Running).await?;
    ensure!(running.pid == created.pid, "the init pid is kept across start");
    env.backend.kill(&id, Signal::TERM, false).await.context("kill TERM")?;
    let stopped = env.wait_for(&id, Status::Stopped).await?;
    ensure!(stopped.pid.is_none(), "a stopped container has no pid");
    env.backend.delete(&id, false).await.context("delete")?;
    match env.backend.state(&id).await {
        Err(Error::NotFound { .. }) => Ok(Ran::Passed),
        other => bail!("state after delete should be NotFound, got {other:?}"),
    }
}

async fn create_with_pipes(env: &mut Env) -> CaseResult {
    let id = env.id("pipes");
    let bundle = env.bundle(["sh", "-c", "echo out; echo err >&2; sleep 1000"])?;
    let (stdio, pipes) = ContainerStdio::pipes()?;
    let opts = CreateOptions { stdio, ..CreateOptions::default() };
    // The init inherits these pipes and never closes them: create must return anyway.
    tokio::time::timeout(Duration::from_secs(60), env.backend.create(&id, bundle.path(), &opts))
        .await
        .context("create with pipes never returned")?
        .context("create")?;
    drop(opts);
    if let Some(pid) = env.backend.state(&id).await?.pid {
        env.track(pid);
    }
    env.backend.start(&id).await.context("start")?;
    let out = read_prefix(pipes.stdout, 4).await?;
    ensure!(out == "out\n", "stdout pipe carried {out:?}");
    let err = read_prefix(pipes.stderr, 4).await?;
    ensure!(err == "err\n", "stderr pipe carried {err:?}");
    env.remove(&id).await?;
    Ok(Ran::Passed)
}

async fn preserved_fds(env: &mut Env) -> CaseResult {
    let id = env.id("fds");
    let bundle = env.bundle(["sh", "-c", "echo init-fd3 >&3; exec 3>&-; sleep 1000"])?;
    let pipe = || nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).context("pipe");
    let (init_read, init_write) = pipe()?;
    let opts = CreateOptions { preserve_fds: vec![init_write], ..CreateOptions::default() };
    env.backend.create(&id, bundle.path(), &opts).await.context("create --preserve-fds 1")?;
    drop(opts);
    if let Some(pid) = env.backend.state(&id).await?.pid {
        env.track(pid);
    }
    env.backend.start(&id).await.context("start")?;
    let got = read_prefix(init_read, 9).await?;
    ensure!(got == "init-fd3\n", "the init wrote {got:?} to fd 3");

    let (exec_read, exec_write) = pipe()?;
    let exec =
        ExecOptions { preserve_fds: vec![exec_write], ..ExecOptions::command(["sh", "-c", "echo exec-fd3 >&3"]) };
    let outcome = env.backend.exec(&id, &exec).await.context("exec --preserve-fds 1")?;
    ensure!(matches!(outcome, ExecOutcome::Exited { code: 0, .. }), "exec: {outcome:?}");
    drop(exec);
    let got = read_prefix(exec_read, 9).await?;
    ensure!(got == "exec-fd3\n", "the exec'd process wrote {got:?} to fd 3");
    env.remove(&id).await?;
    Ok(Ran::Passed)
}

/// The first `len` bytes a container writes to a pipe.
async fn read_prefix(pipe: std::os::fd::OwnedFd, len: usize) -> anyhow::Result<String> {
    let reading = tokio::task::spawn_blocking(move || {
        let mut bytes = vec![0u8; len];
        std::fs::File::from(pipe).read_exact(&mut bytes).map(|()| bytes)
    });
    let bytes = tokio::time::timeout(Duration::from_secs(30), reading)
        .await
        .context("the container wrote nothing to its pipe")?
        .context("the reading task failed")?
        .context("reading the pipe")?;
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

async fn exec_returns_stdout_and_exit_code(env: &mut Env) -> CaseResult {
    let (id, _bundle, _) = env.running("exec", SLEEPER).await?;
    match env.backend.exec(&id, &ExecOptions::command(["echo", "hello from exec"])).await.context("exec echo")? {
        ExecOutcome::Exited { code: 0, stdout, .. } => {
            ensure!(stdout == b"hello from exec\n", "stdout was {:?}", String::from_utf8_lossy(&stdout))
        }
        other => bail!("exec echo gave {other:?}"),
    }
    match env.backend.exec(&id, &ExecOptions::command(["sh", "-c", "echo oops >&2; exit 3"])).await? {
        ExecOutcome::Exited { code: 3, stderr, .. } => ensure!(stderr == b"oops\n", "stderr {stderr:?}"),
        other => bail!("exec exit 3 gave {other:?}"),
    }
    env.remove(&id).await?;
    Ok(Ran::Passed)
}

async fn exec_detached(env: &mut Env) -> CaseResult {
    let (id, _bundle, _) = env.running("detach", SLEEPER).await?;
    let opts = ExecOptions { detach: true, ..ExecOptions::command(SLEEPER.iter().copied()) };
    let ExecOutcome::Detached { pid } = env.backend.exec(&id, &opts).await.context("exec --detach")? else {
        bail!("a detached exec reports a pid");
    };
    env.track(pid);
    let pids = env.backend.ps(&id).await.context("ps")?;
    ensure!(pids.contains(&(pid as i32)), "ps {pids:?} lists the exec'd {pid}");
    env.remove(&id).await?;
    Ok(Ran::Passed)
}

async fn pause_resume_and_ps(env: &mut Env) -> CaseResult {
    let (id, _bundle, state) = env.running("pause", SLEEPER).await?;
    let init = state.pid.context("running container has a pid")?;
    let pids = env.backend.ps(&id).await.context("ps")?;
    ensure!(pids.contains(&(init as i32)), "ps {pids:?} lists the init {init}");
    env.backend.pause(&id).await.context("pause")?;
    env.wait_for(&id, Status::Paused).await?;
    env.backend.resume(&id).await.context("resume")?;
    env.wait_for(&id, Status::Running).await?;
    env.remove(&id).await?;
    Ok(Ran::Passed)
}

async fn update_sets_the_memory_limit(env: &mut Env) -> CaseResult {
    let (id, _bundle, state) = env.running("update", SLEEPER).await?;
    let limit: i64 = 64 << 20;
    let memory = LinuxMemoryBuilder::default().limit(limit).build()?;
    let resources = LinuxResourcesBuilder::default().memory(memory).build()?;
    env.backend.update(&id, &resources).await.context("update")?;
    let applied = env.memory_limit(&id, state.pid.context("pid")?)?;
    ensure!(applied == limit as u64, "memory limit read back as {applied}, not {limit}");
    env.remove(&id).await?;
    Ok(Ran::Passed)
}

async fn unknown_id_is_not_found(env: &mut Env) -> CaseResult {
    let id = env.id("never-created");
    let expect = |what: &str, result: runtime_core::Result<()>| -> anyhow::Result<()> {
        match result {
            Err(Error::NotFound { id: reported, failure }) => {
                ensure!(reported == id.as_str(), "{what}: NotFound names {reported}");
                ensure!(!failure.message.is_empty(), "{what}: NotFound carries the runtime's message");
                Ok(())
            }
            other => bail!("{what} of an unknown id: {other:?}"),
        }
    };
    expect("state", env.backend.state(&id).await.map(drop))?;
    expect("start", env.backend.start(&id).await)?;
    expect("kill", env.backend.kill(&id, Signal::KILL, false).await)?;
    expect("delete", env.backend.delete(&id, false).await)?;
    expect("pause", env.backend.pause(&id).await)?;
    expect("ps", env.backend.ps(&id).await.map(drop))?;
    expect("exec", env.backend.exec(&id, &ExecOptions::command(["true"])).await.map(drop))?;
    Ok(Ran::Passed)
}

async fn duplicate_create_is_already_exists(env: &mut Env) -> CaseResult {
    let id = env.id("dup");
    let bundle = env.bundle(SLEEPER.iter().copied())?;
    env.create(&id, bundle.path()).await?;
    match env.backend.create(&id, bundle.path(), &CreateOptions::default()).await {
        Err(Error::AlreadyExists { id: reported, .. }) => ensure!(reported == id.as_str(), "names {reported}"),
        other => bail!("second create: {other:?}"),
    }
    let state = env.backend.state(&id).await.context("the first container survives")?;
    ensure!(state.status == Status::Created, "the first container is still {}", state.status);
    env.remove(&id).await?;
    Ok(Ran::Passed)
}

async fn delete_running_is_invalid_state(env: &mut Env) -> CaseResult {
    let (id, _bundle, _) = env.running("busy", SLEEPER).await?;
    match env.backend.delete(&id, false).await {
        Err(Error::InvalidState { id: reported, .. }) => ensure!(reported == id.as_str(), "names {reported}"),
        other => bail!("delete of a running container without force: {other:?}"),
    }
    ensure!(env.backend.state(&id).await?.status == Status::Running, "still running after the refusal");
    env.backend.delete(&id, true).await.context("delete --force")?;
    Ok(Ran::Passed)
}

async fn list_reports_containers(env: &mut Env) -> CaseResult {
    let created = env.id("listed-created");
    let bundle = env.bundle(SLEEPER.iter().copied())?;
    env.create(&created, bundle.path()).await?;
    let (running, _running_bundle, _) = env.running("listed-running", SLEEPER).await?;
    let states = env.backend.list().await.context("list")?;
    let status_of =
        |id: &runtime_core::ContainerId| states.iter().find(|state| state.id == *id).map(|state| state.status);
    ensure!(status_of(&created) == Some(Status::Created), "list: {states:?}");
    ensure!(status_of(&running) == Some(Status::Running), "list: {states:?}");
    ensure!(states.len() == 2, "only this env's containers: {states:?}");
    env.remove(&created).await?;
    env.remove(&running).await?;
    ensure!(env.backend.list().await?.is_empty(), "list is empty after delete");
    Ok(Ran::Passed)
}

async fn features_are_probed_once(env: &mut Env) -> CaseResult {
    let (first, second) = tokio::join!(env.backend.features(), env.backend.features());
    let (first, second) = (first?, second?);
    ensure!(std::sync::Arc::ptr_eq(&first, &second), "concurrent callers share one probe");
    let third = env.backend.features().await?;
    ensure!(std::sync::Arc::ptr_eq(&first, &third), "later callers get the cached result");
    ensure!(first.version == env.backend.version().await?, "features carry the version");
    Ok(Ran::Passed)
}

/// What `criu check` says on this host, asked independently of the backend.
fn criu_check_here(env: &Env) -> Option<String> {
    let criu = env.fake().map_or_else(|| std::path::PathBuf::from("criu"), |fake| fake.criu());
    let output = std::process::Command::new(criu).arg("check").output().ok()?;
    if output.status.success() {
        return None;
    }
    let mut text = String::from_utf8_lossy(&output.stdout).into_owned();
    text.push_str(&String::from_utf8_lossy(&output.stderr));
    Some(criu_reason(&text))
}

fn check_verdict(name: &str, support: &Support, criu_problem: Option<&str>) -> anyhow::Result<()> {
    let evidence = support.evidence();
    match support {
        Support::Supported { .. } => {
            ensure!(!evidence.is_empty(), "{name}: supported without evidence");
            ensure!(
                evidence.iter().all(|probe| probe.status == Some(0)),
                "{name}: supported, yet a probe failed: {evidence:?}"
            );
            ensure!(criu_problem.is_none(), "{name}: supported although `criu check` fails here: {criu_problem:?}");
        }
        Support::Unsupported { reason, .. } => {
            let command_probe = evidence.first().context("an unsupported verdict names its probe")?;
            if command_probe.status != Some(0) {
                // The runtime lacks the command: the reason quotes what it said.
                let said = command_probe.output.lines().next().unwrap_or_default().trim();
                ensure!(reason.contains(said) || reason.contains("no working"), "{name}: {reason:?} vs {said:?}");
            } else if let Some(problem) = criu_problem {
                ensure!(reason.contains(problem), "{name}: reason {reason:?} should quote CRIU's {problem:?}");
                let criu_probe = evidence.iter().find(|probe| probe.argv.last().is_some_and(|arg| arg == "check"));
                ensure!(
                    criu_probe.is_some_and(|probe| probe.status != Some(0)),
                    "{name}: the failing `criu check` is evidence"
                );
            } else {
                ensure!(
                    reason.contains("CRIU"),
                    "{name}: unsupported for a reason the evidence does not show: {reason}"
                );
            }
        }
    }
    Ok(())
}

async fn feature_verdicts_match_evidence(env: &mut Env) -> CaseResult {
    let features: std::sync::Arc<Features> = env.backend.features().await?;
    let criu_problem = criu_check_here(env);
    check_verdict("checkpoint", &features.checkpoint, criu_problem.as_deref())?;
    check_verdict("restore", &features.restore, criu_problem.as_deref())?;
    ensure!(features.update.is_supported(), "every runtime here has update: {:?}", features.update);
    ensure!(
        features.json_error_log.is_supported(),
        "every runtime here logs JSON errors: {:?}",
        features.json_error_log
    );
    ensure!(
        features.document.is_some() == features.features_command.is_supported(),
        "a supported features command yields a document"
    );
    let cgroupfs = &features.cgroup_managers[&runtime_core::CgroupManager::Cgroupfs];
    ensure!(cgroupfs.is_supported(), "cgroupfs is always accepted");
    Ok(Ran::Passed)
}

async fn unsupported_checkpoint(env: &mut Env) -> CaseResult {
    let features = env.backend.features().await?;
    let Some(reason) = features.checkpoint.reason() else {
        return skipped("checkpoint is supported here; the roundtrip case covers it");
    };
    let (id, _bundle, _) = env.running("no-ckpt", SLEEPER).await?;
    let images = tempfile::tempdir()?;
    let opts = CheckpointOptions { image_path: images.path().join("img"), ..CheckpointOptions::default() };
    match env.backend.checkpoint(&id, &opts).await {
        Err(Error::Unsupported { reason: refused, feature, .. }) => {
            ensure!(refused == reason && feature == "checkpoint", "refused with {feature}: {refused}");
        }
        other => bail!("checkpoint although unsupported: {other:?}"),
    }
    ensure!(!opts.image_path.exists(), "nothing ran: no image directory");
    ensure!(env.backend.state(&id).await?.status == Status::Running, "the container was not touched");
    env.remove(&id).await?;
    Ok(Ran::Passed)
}

async fn checkpoint_and_restore(env: &mut Env) -> CaseResult {
    let features = env.backend.features().await?;
    if let Some(reason) = features.checkpoint.reason() {
        return skipped(format!("checkpoint unsupported: {reason}"));
    }
    let (id, bundle, _) = env.running("ckpt", SLEEPER).await?;
    let images = tempfile::tempdir()?;
    let image_path = images.path().join("img");
    let opts = CheckpointOptions { image_path: image_path.clone(), ..CheckpointOptions::default() };
    env.backend.checkpoint(&id, &opts).await.context("checkpoint")?;
    ensure!(image_path.join("inventory.img").is_file(), "the image has inventory.img");
    // runc removes a container it dumped; youki keeps it, stopped.
    match env.backend.state(&id).await {
        Err(Error::NotFound { .. }) => {}
        Ok(_) => {
            env.wait_for(&id, Status::Stopped).await?;
            env.backend.delete(&id, false).await.context("delete the dumped container")?;
        }
        Err(err) => return Err(err).context("state after checkpoint"),
    }
    let restore = RestoreOptions { image_path, detach: true, ..RestoreOptions::default() };
    match features.restore.reason() {
        Some(reason) => match env.backend.restore(&id, bundle.path(), &restore).await {
            Err(Error::Unsupported { reason: refused, .. }) => {
                ensure!(refused == reason, "restore refused with the probed reason");
            }
            other => bail!("restore although unsupported: {other:?}"),
        },
        None => {
            env.backend.restore(&id, bundle.path(), &restore).await.context("restore")?;
            let restored = env.wait_for(&id, Status::Running).await?;
            if let Some(pid) = restored.pid {
                env.track(pid);
            }
            env.remove(&id).await?;
        }
    }
    Ok(Ran::Passed)
}
