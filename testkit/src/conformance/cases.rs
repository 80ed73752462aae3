//! The cases. Each takes the env, uses only the `OciBackend` contract, and deletes what it made
//! (the env checks afterwards that it did).

use std::io::Read;
use std::time::Duration;

use anyhow::{Context, bail, ensure};
use runtime_core::oci_spec::runtime::{LinuxMemoryBuilder, LinuxResourcesBuilder};
use runtime_core::{
    CheckpointOptions, ContainerStdio, CreateOptions, DeleteMode, Error, ExecOptions, ExecOutcome, ExecStdio,
    Existence, Features, KillScope, RestoreOptions, Signal, Status, Support, process,
};

use super::engine::{Disposition, until_the_init_handles};
use super::env::{Env, STATUS_PATIENCE, Witness, quotes, refusal_quotes, skipped, witness};
use super::{CaseSpec, Departure, embedding, stats, terminal};
use crate::harness::{CaseResult, Ran};

/// A process that runs until killed.
const SLEEPER: &[&str] = &["sleep", "1000"];

/// A process that exits 143 on SIGTERM even as PID 1 of a container (which ignores signals it
/// has no handler for), taking its child with it.
const TERM_AWARE: &[&str] = &["sh", "-c", "sleep 1000 & trap \"kill $!; exit 143\" TERM; wait"];

/// A process that counts in the file `count` of its working directory, the root filesystem.
const COUNTER: &[&str] = &["sh", "-c", crate::counter::COUNTER];

/// Every case with its name.
pub(super) fn all() -> Vec<CaseSpec> {
    vec![
        CaseSpec::new(
            "create_start_kill_delete",
            "runtime.md#lifecycle: create leaves `created` with the init's pid, start makes it `running`, kill TERM makes it `stopped`, delete removes it (state is then not found)",
            |env| Box::pin(create_start_kill_delete(env)),
        ),
        CaseSpec::new(
            "create_with_pipes_returns_and_the_container_writes_to_them",
            "create returns while the container holds the caller's pipes, and the process writes to them once started",
            |env| Box::pin(create_with_pipes(env)),
        ),
        CaseSpec::new(
            "preserved_fds_reach_the_container_and_exec",
            "runtime behaviour (`--preserve-fds`): descriptors 3.. reach the init and an exec",
            |env| Box::pin(preserved_fds(env)),
        ),
        CaseSpec::new(
            "exec_returns_stdout_and_exit_code",
            "runtime behaviour (`exec`): the exec'd process's output and exit code come back",
            |env| Box::pin(exec_returns_stdout_and_exit_code(env)),
        ),
        CaseSpec::new(
            "exec_detached_returns_a_pid_that_ps_lists",
            "runtime behaviour (`exec --detach --pid-file`): the pid written is one `ps` lists",
            |env| Box::pin(exec_detached(env)),
        ),
        CaseSpec::new(
            "pause_resume_and_ps_lists_the_init",
            "runtime behaviour (`pause`, `resume`, `ps`): status `paused` and back to `running`; `ps` lists the init",
            |env| Box::pin(pause_resume_and_ps(env)),
        ),
        CaseSpec::new(
            "update_sets_the_memory_limit",
            "runtime behaviour (`update`): a memory limit reaches the container's cgroup",
            |env| Box::pin(update_sets_the_memory_limit(env)),
        ),
        CaseSpec::new(
            "unknown_id_is_not_found",
            "runtime.md#query-state: state of an id that does not exist MUST generate an error (NotFound)",
            |env| Box::pin(unknown_id_is_not_found(env)),
        ),
        CaseSpec::new(
            "duplicate_create_is_already_exists",
            "runtime.md#create: an id that is not unique MUST generate an error, and no new container is created",
            |env| Box::pin(duplicate_create_is_already_exists(env)),
        ),
        CaseSpec::new(
            "delete_running_without_force_is_invalid_state",
            "runtime.md#delete: deleting a container that is not stopped MUST generate an error; the state stays readable",
            |env| Box::pin(delete_running_is_invalid_state(env)),
        ),
        CaseSpec::new("delete_of_a_created_container_is_refused", DELETE_OF_A_CREATED_CONTAINER, |env| {
            Box::pin(delete_created_is_refused(env))
        }),
        CaseSpec::new(
            "list_reports_each_container_with_its_status",
            "runtime behaviour (`list`): every container with its own status",
            |env| Box::pin(list_reports_containers(env)),
        ),
        CaseSpec::new(
            "features_are_probed_once_and_shared",
            "the backend asks the runtime for its features once and shares the answer",
            |env| Box::pin(features_are_probed_once(env)),
        ),
        CaseSpec::new(
            "feature_verdicts_match_their_evidence",
            "each feature verdict agrees with what the runtime's version, help and CRIU say",
            |env| Box::pin(feature_verdicts_match_evidence(env)),
        ),
        CaseSpec::new(
            "unsupported_checkpoint_is_refused_in_the_runtimes_own_words",
            "checkpoint where the runtime cannot is refused with the runtime's own reason, before anything runs",
            |env| Box::pin(unsupported_checkpoint(env)),
        ),
        CaseSpec::new(
            "checkpoint_and_restore_roundtrip",
            "runtime behaviour (`checkpoint`, `restore`): the feature verdict agrees with behaviour; a restored container runs on",
            |env| Box::pin(checkpoint_and_restore(env)),
        ),
        CaseSpec::new(
            "pre_dump_chain_leaves_the_container_running_and_links_the_parent",
            "runtime behaviour (`checkpoint --pre-dump`, `--parent-path`): a pre-dump leaves the container running and the next dump links it",
            |env| Box::pin(pre_dump_chain(env)),
        ),
        CaseSpec::new(
            "a_checkpoint_onto_a_missing_parent_is_refused",
            "runtime behaviour (`checkpoint --parent-path`): a parent that does not exist is refused",
            |env| Box::pin(missing_parent(env)),
        ),
        CaseSpec::new(
            "create_returns_the_pid_the_runtime_reports",
            "runtime.md#state: the pid create returns (from the pid file) equals `state.pid`",
            |env| Box::pin(embedding::create_returns_the_pid_the_runtime_reports(env)),
        ),
        CaseSpec::new(
            "pipes_reach_end_of_file_when_the_container_exits",
            "the caller's pipes reach end of file once the container's process exits",
            |env| Box::pin(embedding::pipes_reach_end_of_file_when_the_container_exits(env)),
        ),
        CaseSpec::new(
            "exec_streams_through_pipes_while_it_runs",
            "an exec's output is readable while it still runs",
            |env| Box::pin(embedding::exec_streams_through_pipes_while_it_runs(env)),
        ),
        CaseSpec::new(
            "a_dropped_exec_kills_its_process",
            "an exec whose call is dropped leaves no process behind",
            |env| Box::pin(embedding::a_dropped_exec_kills_its_process(env)),
        ),
        CaseSpec::new(
            "a_dropped_create_leaves_nothing_and_frees_the_id",
            "a create whose call is dropped leaves no container and the id can be used again",
            |env| Box::pin(embedding::a_dropped_create_leaves_nothing_and_frees_the_id(env)),
        ),
        CaseSpec::new(
            "a_dropped_create_never_kills_what_a_stale_pid_file_names",
            "the rollback of a dropped create kills only the container's own process",
            |env| Box::pin(embedding::a_dropped_create_never_kills_what_a_stale_pid_file_names(env)),
        ),
        CaseSpec::new(
            "terminal_reaches_the_container_through_the_console_socket",
            "config.md#process (`terminal: true`): the pty master reaches the caller through the console socket",
            |env| Box::pin(terminal::terminal_reaches_the_container_through_the_console_socket(env)),
        ),
        CaseSpec::new(
            "stats_match_what_the_test_reads",
            "runtime behaviour (`events --stats`): the figures agree with what the test reads itself",
            |env| Box::pin(stats::stats_match_what_the_test_reads(env)),
        ),
        CaseSpec::new(
            "events_stream_samples_and_dropping_it_ends_the_runtime",
            "runtime behaviour (`events`): samples arrive and dropping the stream ends the runtime's process",
            |env| Box::pin(stats::events_stream_samples_and_dropping_it_ends_the_runtime(env)),
        ),
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
    // A namespace init ignores a TERM that comes before its shell set the trap.
    until_the_init_handles(env.backend.as_ref(), &id, Signal::TERM, Disposition::Caught).await?;
    env.backend.kill(&id, Signal::TERM, KillScope::Init).await.context("kill TERM")?;
    let stopped = env.wait_for(&id, Status::Stopped).await?;
    ensure!(stopped.pid.is_none(), "a stopped container has no pid");
    env.backend.delete(&id, DeleteMode::IfStopped).await.context("delete")?;
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
    let created = tokio::time::timeout(Duration::from_secs(60), env.backend.create(&id, bundle.path(), opts))
        .await
        .context("create with pipes never returned")?
        .context("create")?;
    env.track(created.pid);
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
    let created = env.backend.create(&id, bundle.path(), opts).await.context("create --preserve-fds 1")?;
    env.track(created.pid);
    env.backend.start(&id).await.context("start")?;
    let got = read_prefix(init_read, 9).await?;
    ensure!(got == "init-fd3\n", "the init wrote {got:?} to fd 3");

    let (exec_read, exec_write) = pipe()?;
    let exec = ExecOptions { preserve_fds: vec![exec_write], ..ExecOptions::default() };
    let outcome = env
        .backend
        .exec(&id, &process(["sh", "-c", "echo exec-fd3 >&3"]), exec)
        .await
        .context("exec --preserve-fds 1")?;
    ensure!(matches!(outcome, ExecOutcome::Exited { code: 0, .. }), "exec: {outcome:?}");
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
    let echo = process(["echo", "hello from exec"]);
    match env.backend.exec(&id, &echo, ExecOptions::default()).await.context("exec echo")? {
        ExecOutcome::Exited { code: 0, stdout, .. } => {
            ensure!(stdout.bytes == b"hello from exec\n", "stdout was {:?}", String::from_utf8_lossy(&stdout.bytes));
            ensure!(!stdout.truncated, "a short output is whole");
        }
        other => bail!("exec echo gave {other:?}"),
    }
    let failing = process(["sh", "-c", "echo oops >&2; exit 3"]);
    match env.backend.exec(&id, &failing, ExecOptions::default()).await? {
        ExecOutcome::Exited { code: 3, stderr, .. } => ensure!(stderr.bytes == b"oops\n", "stderr {stderr:?}"),
        other => bail!("exec exit 3 gave {other:?}"),
    }
    env.remove(&id).await?;
    Ok(Ran::Passed)
}

async fn exec_detached(env: &mut Env) -> CaseResult {
    let (id, _bundle, _) = env.running("detach", SLEEPER).await?;
    let opts = ExecOptions { detach: true, stdio: ExecStdio::Wired(ContainerStdio::Null), ..ExecOptions::default() };
    let sleeper = process(SLEEPER.iter().copied());
    let ExecOutcome::Detached { pid } = env.backend.exec(&id, &sleeper, opts).await.context("exec --detach")? else {
        bail!("a detached exec reports a pid");
    };
    env.track(pid);
    let pids = env.backend.ps(&id).await.context("ps")?;
    ensure!(pids.contains(&pid), "ps {pids:?} lists the exec'd {pid}");
    env.remove(&id).await?;
    Ok(Ran::Passed)
}

async fn pause_resume_and_ps(env: &mut Env) -> CaseResult {
    let (id, _bundle, state) = env.running("pause", SLEEPER).await?;
    let init = state.pid.context("running container has a pid")?;
    let pids = env.backend.ps(&id).await.context("ps")?;
    ensure!(pids.contains(&init), "ps {pids:?} lists the init {init}");
    env.backend.pause(&id).await.context("pause")?;
    env.wait_for(&id, Status::Paused).await?;
    env.backend.resume(&id).await.context("resume")?;
    env.wait_for(&id, Status::Running).await?;
    env.remove(&id).await?;
    Ok(Ran::Passed)
}

/// Against a real runtime the limit is read from the container's cgroup. A fake has no cgroups:
/// there the case reads the document the fake received, which shows the request reached the
/// runtime intact (stdin for runc and crun, a file for youki) and nothing about enforcement.
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
            Err(Error::NotFound { id: reported, evidence: Existence::Refused(failure) }) => {
                ensure!(reported.as_ref() == Some(&id), "{what}: NotFound names {reported:?}");
                ensure!(!failure.message.is_empty(), "{what}: NotFound carries the runtime's message");
                Ok(())
            }
            other => bail!("{what} of an unknown id: {other:?}"),
        }
    };
    expect("state", env.backend.state(&id).await.map(drop))?;
    expect("start", env.backend.start(&id).await)?;
    expect("kill", env.backend.kill(&id, Signal::KILL, KillScope::Init).await)?;
    expect("delete", env.backend.delete(&id, DeleteMode::IfStopped).await)?;
    expect("pause", env.backend.pause(&id).await)?;
    expect("ps", env.backend.ps(&id).await.map(drop))?;
    expect("exec", env.backend.exec(&id, &process(["true"]), ExecOptions::default()).await.map(drop))?;
    Ok(Ran::Passed)
}

async fn duplicate_create_is_already_exists(env: &mut Env) -> CaseResult {
    let id = env.id("dup");
    let bundle = env.bundle(SLEEPER.iter().copied())?;
    env.create(&id, bundle.path()).await?;
    match env.backend.create(&id, bundle.path(), CreateOptions::default()).await {
        Err(Error::AlreadyExists { id: reported, .. }) => ensure!(reported.as_ref() == Some(&id), "names {reported:?}"),
        other => bail!("second create: {other:?}"),
    }
    let state = env.backend.state(&id).await.context("the first container survives")?;
    ensure!(state.status == Status::Created, "the first container is still {}", state.status);
    env.remove(&id).await?;
    Ok(Ran::Passed)
}

async fn delete_running_is_invalid_state(env: &mut Env) -> CaseResult {
    let (id, _bundle, _) = env.running("busy", SLEEPER).await?;
    match env.backend.delete(&id, DeleteMode::IfStopped).await {
        Err(Error::InvalidState { id: reported, .. }) => ensure!(reported.as_ref() == Some(&id), "names {reported:?}"),
        other => bail!("delete of a running container without force: {other:?}"),
    }
    ensure!(env.backend.state(&id).await?.status == Status::Running, "still running after the refusal");
    env.backend.delete(&id, DeleteMode::Force).await.context("delete --force")?;
    Ok(Ran::Passed)
}

/// The spec line `delete_of_a_created_container_is_refused` checks, which every runtime it knows
/// departs from (see `DEVIATIONS`).
pub(super) const DELETE_OF_A_CREATED_CONTAINER: &str = "runtime.md#delete: attempting to delete a container that is not \
     stopped MUST have no effect on the container and MUST generate an error (here: one that is created)";

async fn delete_created_is_refused(env: &mut Env) -> CaseResult {
    let id = env.id("created");
    let bundle = env.bundle(SLEEPER.iter().copied())?;
    env.create(&id, bundle.path()).await?;
    let delete = env.backend.delete(&id, DeleteMode::IfStopped).await;
    let after = env.backend.state(&id).await;
    if after.is_ok() {
        env.remove(&id).await?;
    }
    let status = after.as_ref().map(|state| state.status);
    match (delete, status) {
        (Err(Error::InvalidState { .. }), Ok(Status::Created)) => Ok(Ran::Passed),
        (Err(Error::InvalidState { .. }), status) => bail!("the refusal left the container {status:?}"),
        (Ok(()), Err(Error::NotFound { .. })) => {
            Err(Departure("delete without force removed the created container".to_owned()).into())
        }
        (other, status) => bail!("delete of a created container without force: {other:?}; its state then: {status:?}"),
    }
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

/// A verdict is Supported exactly when the runtime's command answers `--help` and `criu check`
/// passes (for a checkpoint option, `criu check --feature` too), all run here by the case; an
/// Unsupported one quotes a line the failing tool printed (of CRIU's `Error (file:line): what`
/// and `Warn  (file:line): what` lines, the part after the location). The CRIU version rule is
/// held by backend-runc's fault tests, with a fake CRIU that reports an old one.
fn check_verdict(name: &str, support: &Support, tools: &[&Witness]) -> anyhow::Result<()> {
    let failing = tools.iter().find(|(_, succeeded, _)| !succeeded);
    match (support, failing) {
        (Support::Supported { evidence }, None) => ensure!(!evidence.is_empty(), "{name}: supported without evidence"),
        (Support::Supported { .. }, Some((command, _, output))) => {
            bail!("{name}: supported, yet `{command}` failed: {output}")
        }
        (Support::Unsupported { reason, .. }, None) => bail!("{name}: unsupported ({reason}), yet {tools:?} succeed"),
        (Support::Unsupported { reason, .. }, Some((command, _, output))) => {
            ensure!(
                quotes(reason, output),
                "{name}: the reason {reason:?} quotes nothing `{command}` printed: {output}"
            );
        }
    }
    Ok(())
}

async fn feature_verdicts_match_evidence(env: &mut Env) -> CaseResult {
    let features: std::sync::Arc<Features> = env.backend.features().await?;
    let binary = env.backend.binary().to_path_buf();
    let criu = witness(&env.criu(), &["check"])?;
    let command = env.checkpoint_command()?;
    let checkpoint = witness(&binary, &[command, "--help"])?;
    let restore = witness(&binary, &["restore", "--help"])?;
    check_verdict("checkpoint", &features.checkpoint, &[&checkpoint, &criu])?;
    check_verdict("restore", &features.restore, &[&restore, &criu])?;
    // Where the runtime takes the options, the kernel decides, through CRIU.
    if env.imitates()?.pre_dumps() {
        let dirty_tracking = witness(&env.criu(), &["check", "--feature", "mem_dirty_track"])?;
        let userfaultfd = witness(&env.criu(), &["check", "--feature", "uffd-noncoop"])?;
        check_verdict("pre-dump", &features.pre_dump, &[&checkpoint, &criu, &dirty_tracking])?;
        check_verdict("lazy pages", &features.lazy_pages, &[&checkpoint, &criu, &userfaultfd])?;
    }
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

/// What the runtime cannot do (crun: checkpoint and restore; youki: restore) is refused, with a
/// reason quoting what the runtime itself says when this case asks it, and nothing runs.
async fn unsupported_checkpoint(env: &mut Env) -> CaseResult {
    let flavour = env.imitates()?;
    if flavour.checkpoints() && flavour.restores() {
        return skipped(format!("{} checkpoints and restores; the roundtrip covers it", flavour.name()));
    }
    let features = env.backend.features().await?;
    let images = tempfile::tempdir()?;
    if !flavour.checkpoints() {
        let Some(reason) = features.checkpoint.reason() else {
            return env.contradiction(format!("{} has no checkpoint, yet the probe says it has", flavour.name()));
        };
        let (id, _bundle, _) = env.running("no-ckpt", SLEEPER).await?;
        let opts = CheckpointOptions { image_path: images.path().join("img"), ..CheckpointOptions::default() };
        match env.backend.checkpoint(&id, &opts).await {
            Err(Error::Unsupported { reason: refused, feature, .. }) if feature == "checkpoint" => {
                refusal_quotes(env.backend.binary(), &["checkpoint", "--help"], &refused)?;
            }
            other => bail!("checkpoint although unsupported ({reason}): {other:?}"),
        }
        ensure!(!opts.image_path.exists(), "nothing ran: no image directory");
        ensure!(env.backend.state(&id).await?.status == Status::Running, "the container was not touched");
        env.remove(&id).await?;
    }
    if !flavour.restores() {
        let Some(reason) = features.restore.reason() else {
            return env.contradiction(format!("{} has no restore, yet the probe says it has", flavour.name()));
        };
        let id = env.id("no-restore");
        let bundle = env.bundle(SLEEPER.iter().copied())?;
        let opts = RestoreOptions { image_path: images.path().join("img"), ..RestoreOptions::default() };
        match env.backend.restore(&id, bundle.path(), opts).await {
            Err(Error::Unsupported { reason: refused, feature, .. }) if feature == "restore" => {
                refusal_quotes(env.backend.binary(), &["restore", "--help"], &refused)?;
            }
            other => bail!("restore although unsupported ({reason}): {other:?}"),
        }
        ensure!(matches!(env.backend.state(&id).await, Err(Error::NotFound { .. })), "nothing was created");
    }
    Ok(Ran::Passed)
}

/// The count a [`COUNTER`] container has written, once it satisfies `wanted`.
async fn count_when(file: &std::path::Path, wanted: impl Fn(u64) -> bool) -> anyhow::Result<u64> {
    let deadline = std::time::Instant::now() + STATUS_PATIENCE;
    loop {
        // Between the shell's truncate and its write the file is empty: read again.
        let count = std::fs::read_to_string(file).ok().and_then(|text| text.trim().parse().ok());
        if let Some(count) = count.filter(|count| wanted(*count)) {
            return Ok(count);
        }
        ensure!(std::time::Instant::now() < deadline, "{} never held the count waited for: {count:?}", file.display());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A counting container is checkpointed and, where the runtime restores, restored: the restored
/// process continues the count where it was dumped instead of starting over.
async fn checkpoint_and_restore(env: &mut Env) -> CaseResult {
    let flavour = env.imitates()?;
    if !flavour.checkpoints() {
        return skipped(format!("{} has no checkpoint; the refusal case covers it", flavour.name()));
    }
    let features = env.backend.features().await?;
    let pinned = [("checkpoint", true, &features.checkpoint), ("restore", flavour.restores(), &features.restore)];
    for (what, _, support) in pinned.iter().filter(|(_, pinned, _)| *pinned) {
        if let Some(reason) = support.reason() {
            return env.cannot_checkpoint(what, reason);
        }
    }
    let (id, bundle, _) = env.running("ckpt", COUNTER).await?;
    let count_file = bundle.rootfs().join("count");
    let counted = count_when(&count_file, |count| count >= 3).await?;
    let images = tempfile::tempdir()?;
    let image_path = images.path().join("img");
    let opts = CheckpointOptions { image_path: image_path.clone(), ..CheckpointOptions::default() };
    env.backend.checkpoint(&id, &opts).await.context("checkpoint")?;
    ensure!(image_path.join("inventory.img").is_file(), "the image has CRIU's inventory.img");
    if env.is_real() {
        // What CRIU measured of the dump (the fakes write no CRIU images to measure).
        let stats = runtime_core::checkpoint::DumpStatistics::read(&image_path).context("CRIU's dump statistics")?;
        ensure!(stats.pages_written > 0 && stats.pages_written <= stats.pages_scanned, "dump statistics: {stats:?}");
    }
    let dumped = count_when(&count_file, |_| true).await?;
    ensure!(dumped >= counted, "the count went from {counted} back to {dumped}");
    // runc and youki 0.7 remove a container they dumped (tests/differential.rs holds the fakes
    // to that).
    match env.backend.state(&id).await {
        Err(Error::NotFound { .. }) => {}
        other => bail!("the dumped container is still there: {other:?}"),
    }
    if !flavour.restores() {
        return Ok(Ran::Passed);
    }
    let restore = RestoreOptions { image_path: image_path.clone(), ..RestoreOptions::default() };
    let restored = env.backend.restore(&id, bundle.path(), restore).await.context("restore")?;
    if env.is_real() {
        let stats =
            runtime_core::checkpoint::RestoreStatistics::read(&image_path).context("CRIU's restore statistics")?;
        ensure!(stats.restore_time > Duration::ZERO, "restore statistics: {stats:?}");
    }
    env.track(restored.pid);
    restored_counter_goes_on(env, &id, &count_file, dumped).await
}

/// A restored counter writes what follows `dumped`; a process started afresh would write 1.
async fn restored_counter_goes_on(
    env: &mut Env,
    id: &runtime_core::ContainerId,
    count_file: &std::path::Path,
    dumped: u64,
) -> CaseResult {
    env.wait_for(id, Status::Running).await?;
    let next = count_when(count_file, |count| count != dumped).await?;
    ensure!(next > dumped, "after the restore the count went from {dumped} to {next}: it started over");
    env.remove(id).await?;
    Ok(Ran::Passed)
}

/// How a case that needs a working checkpoint ends where there is none: skipped for a runtime
/// without one (the refusal case covers it), or as [`Env::cannot_checkpoint`] says when its
/// probe refuses; `None` where it can go on.
async fn without_checkpoint(env: &Env) -> anyhow::Result<Option<CaseResult>> {
    let flavour = env.imitates()?;
    if !flavour.checkpoints() {
        return Ok(Some(skipped(format!("{} has no checkpoint; the refusal case covers it", flavour.name()))));
    }
    let features = env.backend.features().await?;
    Ok(features.checkpoint.reason().map(|reason| env.cannot_checkpoint("checkpoint", reason)))
}

/// A pre-dump leaves the container running; a checkpoint on top of it names it relative to its
/// own image path, as runc takes it, and the image links to it as CRIU links it (`parent`).
async fn pre_dump_chain(env: &mut Env) -> CaseResult {
    if let Some(ended) = without_checkpoint(env).await? {
        return ended;
    }
    let (flavour, features) = (env.imitates()?, env.backend.features().await?);
    match features.pre_dump.reason() {
        // The fake CRIU models a kernel that tracks dirty memory; a real host may not.
        Some(reason) if flavour.pre_dumps() && !env.is_real() => {
            bail!("{} pre-dumps with the fake CRIU, yet the probe says: {reason}", flavour.name())
        }
        Some(reason) if flavour.pre_dumps() => return skipped(format!("no pre-dump on this host: {reason}")),
        Some(_) => return pre_dump_refused(env).await,
        None => ensure!(flavour.pre_dumps(), "{} has no pre-dump, yet the probe says it has", flavour.name()),
    }
    let (id, bundle, _) = env.running("pre-dump", COUNTER).await?;
    let count_file = bundle.rootfs().join("count");
    let counted = count_when(&count_file, |count| count >= 3).await?;
    let images = tempfile::tempdir()?;
    let pre =
        CheckpointOptions { image_path: images.path().join("pre"), pre_dump: true, ..CheckpointOptions::default() };
    env.backend.checkpoint(&id, &pre).await.context("pre-dump")?;
    ensure!(pre.image_path.is_dir(), "the pre-dump wrote its image");
    ensure!(env.backend.state(&id).await?.status == Status::Running, "a pre-dump leaves the container running");
    count_when(&count_file, |count| count > counted + 2).await.context("the count goes on after the pre-dump")?;

    let image_path = images.path().join("final");
    let last = CheckpointOptions {
        image_path: image_path.clone(),
        parent_path: Some("../pre".into()),
        ..CheckpointOptions::default()
    };
    env.backend.checkpoint(&id, &last).await.context("checkpoint onto the pre-dump")?;
    let parent = std::fs::read_link(image_path.join("parent")).context("the image's parent link")?;
    ensure!(parent == std::path::Path::new("../pre"), "the image's parent link points at {}", parent.display());
    let dumped = count_when(&count_file, |_| true).await?;
    match env.backend.state(&id).await {
        Err(Error::NotFound { .. }) => {}
        other => bail!("runc removes the container it dumped: {other:?}"),
    }
    if !flavour.restores() {
        return Ok(Ran::Passed);
    }
    let restore = RestoreOptions { image_path, ..RestoreOptions::default() };
    let restored = env.backend.restore(&id, bundle.path(), restore).await.context("restore from the chain")?;
    env.track(restored.pid);
    restored_counter_goes_on(env, &id, &count_file, dumped).await
}

/// A runtime whose checkpoint command takes no `--pre-dump` (as its own `--help`, run here,
/// shows) refuses a pre-dump as unsupported before anything runs, and the container runs on.
async fn pre_dump_refused(env: &mut Env) -> CaseResult {
    let command = env.checkpoint_command()?;
    let (asked, answered, help) = witness(env.backend.binary(), &[command, "--help"])?;
    ensure!(answered, "`{asked}` fails: {help}");
    ensure!(!help.contains("--pre-dump"), "`{asked}` lists --pre-dump, yet the runtime is pinned without it: {help}");
    let (id, _bundle, _) = env.running("no-pre-dump", SLEEPER).await?;
    let images = tempfile::tempdir()?;
    let pre =
        CheckpointOptions { image_path: images.path().join("pre"), pre_dump: true, ..CheckpointOptions::default() };
    let refused = env.backend.checkpoint(&id, &pre).await;
    let running = env.backend.state(&id).await?.status == Status::Running;
    env.remove(&id).await?;
    match refused {
        Err(Error::Unsupported { feature, reason, .. }) if feature == "checkpoint --pre-dump" => {
            ensure!(reason.contains("--pre-dump"), "the reason names the flag the runtime lacks: {reason}");
        }
        other => bail!("a pre-dump on a runtime whose `{command}` takes no --pre-dump: {other:?}"),
    }
    ensure!(!pre.image_path.exists(), "nothing ran: no image directory");
    ensure!(running, "the refused pre-dump left the container running");
    Ok(Ran::Passed)
}

/// A checkpoint whose `--parent-path` does not exist is refused as runc 1.1.5 refuses it, before
/// CRIU runs (so this holds on a kernel that cannot pre-dump), and the container keeps running.
/// A runtime without `--parent-path` refuses it as unsupported.
async fn missing_parent(env: &mut Env) -> CaseResult {
    if let Some(ended) = without_checkpoint(env).await? {
        return ended;
    }
    let flavour = env.imitates()?;
    let (id, _bundle, _) = env.running("orphan", SLEEPER).await?;
    let images = tempfile::tempdir()?;
    let orphan = CheckpointOptions {
        image_path: images.path().join("orphan"),
        parent_path: Some("../nope".into()),
        ..CheckpointOptions::default()
    };
    match env.backend.checkpoint(&id, &orphan).await {
        Err(Error::Unsupported { feature, .. }) if !flavour.pre_dumps() => {
            ensure!(feature.ends_with(" --parent-path"), "refused as unsupported: {feature}")
        }
        // runc 1.1.5's words, with the parent path joined to the image path and cleaned.
        Err(Error::RuntimeFailed(failure)) => {
            let missing = images.path().join("nope");
            let wanted = format!("invalid --parent-path: stat {}: no such file or directory", missing.display());
            ensure!(failure.message == wanted, "refused with {:?}, not {wanted:?}", failure.message);
        }
        other => bail!("a checkpoint onto a parent that does not exist: {other:?}"),
    }
    ensure!(env.backend.state(&id).await?.status == Status::Running, "the refused checkpoint left it running");
    env.remove(&id).await?;
    Ok(Ran::Passed)
}
