//! Cases for the lifecycle lines of the OCI runtime spec (`runtime.md`) that the other backend
//! cases leave open: what `create` refuses and what it must not do yet, the transitions `start`,
//! `kill` and `delete` refuse or allow, and the pid file (`--pid-file`, runtime-tools'
//! command-line interface) naming the container's init.
//!
//! The evidence is gathered on the host by each case: files the container's shell writes into
//! its root filesystem (under the bundle, where the test reads them), `/proc` for the init, and
//! the runtime's state root. Each case quotes the spec line it holds the runtime to; a refusal
//! must come back as the library's typed error, never as a bare runtime failure.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use runtime_core::{ContainerId, CreateOptions, DeleteMode, Error, Existence, KillScope, Signal, Status};

use super::CaseSpec;
use super::engine::{Disposition, until_the_init_handles};
use super::env::{Env, STATUS_PATIENCE};
use crate::harness::{CaseResult, Ran};

/// A process that runs until killed.
const SLEEPER: &[&str] = &["sleep", "1000"];

/// Every case of this file with its name.
pub(super) fn all() -> Vec<CaseSpec> {
    vec![
        CaseSpec::new(
            "create_of_a_bundle_without_a_usable_config_is_refused_and_leaves_nothing",
            "runtime.md#create: a config the runtime cannot apply MUST generate an error and a new container MUST NOT be created (no config.json; a config.json that is not JSON)",
            |env| Box::pin(unusable_config_is_refused(env)),
        ),
        CaseSpec::new(
            "process_args_do_not_run_before_start",
            "runtime.md#create: process.args MUST NOT be applied until triggered by the start operation",
            |env| Box::pin(args_wait_for_start(env)),
        ),
        CaseSpec::new(
            "an_edit_of_config_json_after_create_has_no_effect",
            "runtime.md#lifecycle: any updates to config.json after create MUST NOT affect the container",
            |env| Box::pin(edit_after_create_has_no_effect(env)),
        ),
        CaseSpec::new(
            "a_second_start_is_invalid_state",
            "runtime.md#start: attempting to start a container that is not created MUST have no effect on the container and MUST generate an error (here: one that runs)",
            |env| Box::pin(second_start_is_refused(env)),
        ),
        CaseSpec::new(
            "start_of_a_stopped_container_is_invalid_state",
            "runtime.md#start: attempting to start a container that is not created MUST have no effect on the container and MUST generate an error (here: one that stopped)",
            |env| Box::pin(start_of_stopped_is_refused(env)),
        ),
        CaseSpec::new(
            "kill_of_a_created_container_reaches_its_init",
            "runtime.md#kill: a created container takes signals; the operation MUST send the signal to the container process (KILL: it stops)",
            |env| Box::pin(kill_of_created(env)),
        ),
        CaseSpec::new(
            "term_usr1_and_usr2_each_reach_the_running_process",
            "runtime.md#kill: this operation MUST send the specified signal to the container process (each of TERM, USR1, USR2 meets the process's trap)",
            |env| Box::pin(signals_reach_the_process(env)),
        ),
        CaseSpec::new(
            "kill_of_a_stopped_container_is_invalid_state",
            "runtime.md#kill: attempting to send a signal to a container that is neither created nor running MUST have no effect on the container and MUST generate an error",
            |env| Box::pin(kill_of_stopped_is_refused(env)),
        ),
        CaseSpec::new(
            "delete_of_a_stopped_container_removes_its_state_and_frees_the_id",
            "runtime.md#delete: deleting a container MUST delete the resources created during create; once deleted its id MAY be used by a subsequent container",
            |env| Box::pin(delete_of_stopped_frees_the_id(env)),
        ),
        CaseSpec::new(
            "the_pid_file_names_the_container_s_init",
            "runtime-tools command-line-interface.md (`create --pid-file`): the runtime MUST write the container PID to this path; runtime.md#state: it is `pid`, the container process",
            |env| Box::pin(pid_file_names_the_init(env)),
        ),
    ]
}

/// Waits until the container has written `name` (a non-empty file) in its root filesystem, then
/// returns what it holds.
async fn written(rootfs: &Path, name: &str) -> anyhow::Result<String> {
    let path = rootfs.join(name);
    let deadline = Instant::now() + STATUS_PATIENCE;
    loop {
        // Between the shell's truncate and its write the file is empty: read again.
        if let Some(text) = std::fs::read_to_string(&path).ok().filter(|text| !text.is_empty()) {
            return Ok(text);
        }
        ensure!(Instant::now() < deadline, "the container never wrote {}", path.display());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The names of what the runtime keeps under its state root (the fake's `faults` file is no
/// container's).
fn state_entries(env: &Env) -> anyhow::Result<Vec<String>> {
    let root = env.config.root.as_ref().context("every env has its own root")?;
    let Ok(entries) = std::fs::read_dir(root) else {
        return Ok(Vec::new());
    };
    Ok(entries
        .flatten()
        .map(|entry| entry.file_name().to_string_lossy().into_owned())
        .filter(|name| name != "faults")
        .collect())
}

/// The state of `id` is NotFound and nothing under the runtime's state root names it.
async fn nothing_left_of(env: &Env, id: &ContainerId) -> anyhow::Result<()> {
    match env.backend.state(id).await {
        Err(Error::NotFound { .. }) => {}
        other => bail!("state of {id}: {other:?}"),
    }
    let entries = state_entries(env)?;
    ensure!(!entries.iter().any(|name| name == id.as_str()), "the state root still holds {id}: {entries:?}");
    Ok(())
}

async fn unusable_config_is_refused(env: &mut Env) -> CaseResult {
    let missing = env.id("no-config");
    let bundle = env.bundle(SLEEPER.iter().copied())?;
    let config = bundle.path().join("config.json");
    std::fs::remove_file(&config)?;
    match env.backend.create(&missing, bundle.path(), CreateOptions::default()).await {
        Err(Error::NotFound { id: Some(refused), evidence: Existence::Seen { path, .. } })
            if refused == missing && path == config => {}
        other => bail!("create from a bundle without config.json: {other:?}"),
    }
    nothing_left_of(env, &missing).await?;

    let garbled = env.id("not-json");
    std::fs::write(&config, "{not json")?;
    match env.backend.create(&garbled, bundle.path(), CreateOptions::default()).await {
        Err(Error::InvalidArgument { option, reason }) if option == "bundle" => {
            ensure!(reason.contains(&config.display().to_string()), "the reason names the config: {reason}");
        }
        other => bail!("create from a config.json that is not JSON: {other:?}"),
    }
    nothing_left_of(env, &garbled).await?;
    ensure!(env.backend.list().await?.is_empty(), "no container was created");
    Ok(Ran::Passed)
}

async fn args_wait_for_start(env: &mut Env) -> CaseResult {
    let id = env.id("not-yet");
    let bundle = env.bundle(["sh", "-c", "echo ran > started; exec sleep 1000"])?;
    let created = env.create(&id, bundle.path()).await?;
    let pid = created.pid.context("a created container has its init pid")?;
    // The init has not become the program yet: at start it executes it, in place.
    let before = std::fs::read_link(format!("/proc/{pid}/exe")).context("the created init's executable")?;
    let marker = bundle.rootfs().join("started");
    ensure!(!marker.exists(), "process.args ran before start: {} exists", marker.display());
    env.backend.start(&id).await.context("start")?;
    ensure!(written(&bundle.rootfs(), "started").await? == "ran\n", "the program ran once started");
    let after = std::fs::read_link(format!("/proc/{pid}/exe")).context("the started init's executable")?;
    ensure!(before != after, "the init ran {} before start and after it", before.display());
    env.remove(&id).await?;
    Ok(Ran::Passed)
}

async fn edit_after_create_has_no_effect(env: &mut Env) -> CaseResult {
    let id = env.id("edited");
    let bundle = env.bundle(["sh", "-c", "echo original > ran; sleep 1000"])?;
    env.create(&id, bundle.path()).await?;
    let edited = env.bundle_builder(["sh", "-c", "echo edited > ran; sleep 1000"]).spec()?;
    edited.save(bundle.path().join("config.json")).context("editing config.json")?;
    env.backend.start(&id).await.context("start")?;
    let ran = written(&bundle.rootfs(), "ran").await?;
    env.remove(&id).await?;
    ensure!(ran == "original\n", "the container ran the edited config: it wrote {ran:?}");
    Ok(Ran::Passed)
}

/// `result` is the library's InvalidState naming `id`.
fn invalid_state(what: &str, id: &ContainerId, result: runtime_core::Result<()>) -> anyhow::Result<()> {
    match result {
        Err(Error::InvalidState { id: refused, .. }) if refused.as_ref() == Some(id) => Ok(()),
        other => bail!("{what}: {other:?}"),
    }
}

async fn second_start_is_refused(env: &mut Env) -> CaseResult {
    let (id, _bundle, running) = env.running("twice", SLEEPER).await?;
    let second = env.backend.start(&id).await;
    let after = env.backend.state(&id).await;
    env.remove(&id).await?;
    invalid_state("a second start", &id, second)?;
    let after = after.context("state after the second start")?;
    ensure!(after.status == Status::Running && after.pid == running.pid, "the refusal touched it: {after:?}");
    Ok(Ran::Passed)
}

/// A container whose process has exited.
async fn stopped(env: &mut Env, name: &str) -> anyhow::Result<(ContainerId, crate::bundle::Bundle)> {
    let id = env.id(name);
    let bundle = env.bundle(["true"])?;
    env.create(&id, bundle.path()).await?;
    env.backend.start(&id).await.context("start")?;
    env.wait_for(&id, Status::Stopped).await?;
    Ok((id, bundle))
}

async fn start_of_stopped_is_refused(env: &mut Env) -> CaseResult {
    let (id, _bundle) = stopped(env, "ended").await?;
    let again = env.backend.start(&id).await;
    let after = env.backend.state(&id).await;
    env.remove(&id).await?;
    invalid_state("start of a stopped container", &id, again)?;
    ensure!(after.context("state after the refusal")?.status == Status::Stopped, "the refusal touched it");
    Ok(Ran::Passed)
}

async fn kill_of_created(env: &mut Env) -> CaseResult {
    let id = env.id("killed-early");
    let bundle = env.bundle(SLEEPER.iter().copied())?;
    env.create(&id, bundle.path()).await?;
    env.backend.kill(&id, Signal::KILL, KillScope::Init).await.context("kill KILL of a created container")?;
    env.wait_for(&id, Status::Stopped).await?;
    env.backend.delete(&id, DeleteMode::IfStopped).await.context("delete once stopped")?;
    Ok(Ran::Passed)
}

async fn signals_reach_the_process(env: &mut Env) -> CaseResult {
    let signals: Vec<Signal> = ["TERM", "USR1", "USR2"].iter().map(|name| name.parse()).collect::<Result<_, _>>()?;
    // Each trap leaves a file named after its signal; `wait` returns at each one, and waits again.
    let traps = "trap 'echo > got-TERM' TERM; trap 'echo > got-USR1' USR1; trap 'echo > got-USR2' USR2";
    let script = format!("{traps}; sleep 1000 & while :; do wait; done");
    let id = env.id("trapped");
    let bundle = env.bundle(["sh", "-c", &script])?;
    env.create(&id, bundle.path()).await?;
    env.backend.start(&id).await.context("start")?;
    for signal in &signals {
        until_the_init_handles(env.backend.as_ref(), &id, *signal, Disposition::Caught).await?;
    }
    for (signal, name) in signals.iter().zip(["TERM", "USR1", "USR2"]) {
        env.backend.kill(&id, *signal, KillScope::Init).await.with_context(|| format!("kill {name}"))?;
        written(&bundle.rootfs(), &format!("got-{name}")).await.with_context(|| format!("{name} never arrived"))?;
    }
    let after = env.backend.state(&id).await?;
    env.remove(&id).await?;
    ensure!(after.status == Status::Running, "every signal was caught, so it runs on: {after:?}");
    Ok(Ran::Passed)
}

async fn kill_of_stopped_is_refused(env: &mut Env) -> CaseResult {
    let (id, _bundle) = stopped(env, "dead").await?;
    let kill = env.backend.kill(&id, Signal::TERM, KillScope::Init).await;
    let after = env.backend.state(&id).await;
    env.remove(&id).await?;
    invalid_state("kill of a stopped container", &id, kill)?;
    ensure!(after.context("state after the refusal")?.status == Status::Stopped, "the refusal touched it");
    Ok(Ran::Passed)
}

async fn delete_of_stopped_frees_the_id(env: &mut Env) -> CaseResult {
    let (id, _bundle) = stopped(env, "reused").await?;
    ensure!(state_entries(env)?.iter().any(|name| name == id.as_str()), "the runtime keeps {id} under its root");
    env.backend.delete(&id, DeleteMode::IfStopped).await.context("delete of a stopped container")?;
    nothing_left_of(env, &id).await?;
    let bundle = env.bundle(SLEEPER.iter().copied())?;
    let again = env.create(&id, bundle.path()).await.context("a new container under the deleted id")?;
    ensure!(again.status == Status::Created && again.bundle == bundle.path(), "the new container: {again:?}");
    env.remove(&id).await?;
    Ok(Ran::Passed)
}

async fn pid_file_names_the_init(env: &mut Env) -> CaseResult {
    let id = env.id("pid-file");
    let bundle = env.bundle(SLEEPER.iter().copied())?;
    let dir = tempfile::tempdir()?;
    let pid_file = dir.path().join("init.pid");
    let opts = CreateOptions { pid_file: Some(pid_file.clone()), ..CreateOptions::default() };
    let created = env.backend.create(&id, bundle.path(), opts).await.context("create --pid-file")?;
    env.track(created.pid);
    let text = std::fs::read_to_string(&pid_file).context("the runtime wrote no pid file")?;
    let written: u32 = text.trim().parse().with_context(|| format!("the pid file holds {text:?}"))?;
    let state = env.backend.state(&id).await?;
    ensure!(state.pid == Some(written), "the pid file says {written}, state says {:?}", state.pid);
    ensure!(created.pid == written, "create returned {}, the pid file says {written}", created.pid);
    let status = std::fs::read_to_string(format!("/proc/{written}/status")).context("the init is not alive")?;
    if env.is_real() {
        // The bundle asks for a pid namespace of its own: the init is its first process.
        let inner = status.lines().find_map(|line| line.strip_prefix("NSpid:")).map(|ids| ids.split_whitespace());
        let inner = inner.and_then(Iterator::last).context("no NSpid in the init's status")?;
        ensure!(inner == "1", "the pid file's process is {inner} in the container's pid namespace, not its init");
    }
    env.backend.start(&id).await.context("start")?;
    // Start returns once the init is released; it executes the program right after.
    let deadline = Instant::now() + STATUS_PATIENCE;
    loop {
        let cmdline = std::fs::read(format!("/proc/{written}/cmdline")).context("the started init")?;
        if cmdline == b"sleep\x001000\x00" {
            break;
        }
        let running = String::from_utf8_lossy(&cmdline).into_owned();
        ensure!(Instant::now() < deadline, "the pid file's process runs {running:?}, not the container's program");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    env.remove(&id).await?;
    Ok(Ran::Passed)
}
