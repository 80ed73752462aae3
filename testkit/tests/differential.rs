//! Each fake held to the runtime it imitates: the same calls, error cases included, against the
//! fake and the real runtime must end alike — the exit status, the typed error the backend
//! makes of the runtime's words, and the state document's keys and status. Runs when the gate
//! opens for the real runtime. A difference is a bug in the fake, which the rest of the tests
//! trust to behave as the real runtime does. Where the runtime checkpoints (and CRIU works here),
//! a counting container's checkpoint and restore as well: the image's inventory, the states, and
//! a restored init that is a new process counting on from the dump. The fake `criu` is held to
//! the real one the same way, in the probes the library makes of it.

use std::ffi::{OsStr, OsString};
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, ensure};
use runtime_core::{
    CheckpointOptions, CliBackend, ContainerId, CreateOptions, DeleteMode, Error, KillScope, OciBackend,
    RestoreOptions, RuntimeConfig, RuntimeFamily, Signal, Status, Support,
};
use testkit::bundle::{BundleBuilder, Rootfs};
use testkit::counter::{COUNTER, count_in};
use testkit::direct::run_directly;
use testkit::fake::{FakeRuntime, Flavour};
use testkit::gate::RealRuntime;
use testkit::harness::{CaseResult, Ran};

fn family(flavour: Flavour) -> Arc<dyn RuntimeFamily> {
    match flavour {
        Flavour::Runc => Arc::new(backend_runc::Runc),
        Flavour::Crun => Arc::new(backend_crun::Crun::default()),
        Flavour::Youki => Arc::new(backend_youki::Youki),
    }
}

/// How a call ended, as the caller sees it.
fn outcome<T>(result: runtime_core::Result<T>) -> String {
    match result {
        Ok(_) => "ok".to_owned(),
        Err(err @ (Error::NotFound { .. } | Error::AlreadyExists { .. })) => {
            let kind = if matches!(err, Error::NotFound { .. }) { "NotFound" } else { "AlreadyExists" };
            format!("{kind}, {:?}", err.failure().map(|failure| &failure.status))
        }
        Err(err @ Error::InvalidState { .. }) => {
            format!("InvalidState, {:?}", err.failure().map(|failure| &failure.status))
        }
        Err(Error::RuntimeFailed(failure)) => format!("RuntimeFailed, {:?}", failure.status),
        Err(other) => format!("{other}"),
    }
}

/// The keys and status of the runtime's own `state` document.
fn state_shape(backend: &CliBackend, id: &ContainerId) -> anyhow::Result<String> {
    let output = run_directly(backend, &[OsStr::new("state"), id.as_ref()])?;
    let document: serde_json::Map<String, serde_json::Value> =
        serde_json::from_slice(&output.stdout).with_context(|| format!("state printed {output:?}"))?;
    let keys: Vec<&String> = document.keys().collect();
    Ok(format!("keys {keys:?}, status {}", document["status"]))
}

/// A command the runtime does not have: its exit status, and what the dialect makes of all it
/// said (stderr and its JSON log).
fn unknown_command(backend: &CliBackend, id: &ContainerId) -> anyhow::Result<String> {
    let log = tempfile::NamedTempFile::new()?;
    let mut args = backend.dialect().log_args(log.path());
    args.extend([OsString::from("frobnicate"), OsString::from(id.as_str())]);
    let args: Vec<&OsStr> = args.iter().map(OsString::as_os_str).collect();
    let output = run_directly(backend, &args)?;
    let mut said = String::from_utf8_lossy(&output.stderr).into_owned();
    said.push_str(&std::fs::read_to_string(log.path()).unwrap_or_default());
    Ok(format!("{:?}, {:?}", output.status.code(), backend.dialect().classify(Some(id), &said)))
}

async fn wait_for(backend: &CliBackend, id: &ContainerId, status: Status) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(15);
    while backend.state(id).await?.status != status {
        ensure!(Instant::now() < deadline, "{id} never became {status}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(())
}

/// The same sequence against any runtime: what each step gave.
async fn observe(
    backend: &CliBackend,
    id: &ContainerId,
    rootfs: Rootfs,
    seen: &mut Vec<(String, String)>,
) -> anyhow::Result<()> {
    let bundle = BundleBuilder::new(["sleep", "1000"]).rootfs(rootfs).build()?;
    let mut note = |step: &str, what: String| seen.push((step.to_owned(), what));
    note("version", backend.version().await?.version.to_string());
    let features = backend.features().await?;
    let help = |support: &Support| support.evidence().first().map(|probe| probe.status);
    let managers: Vec<bool> = features.cgroup_managers.values().map(Support::is_supported).collect();
    note(
        "probes",
        format!(
            "checkpoint --help {:?}, restore --help {:?}, events --help {:?}, features {}, update {}, JSON log {}, \
             cgroup managers {managers:?}",
            help(&features.checkpoint),
            help(&features.restore),
            help(&features.events),
            features.features_command.is_supported(),
            features.update.is_supported(),
            features.json_error_log.is_supported(),
        ),
    );
    note("state of an unknown id", outcome(backend.state(id).await));
    note("start of an unknown id", outcome(backend.start(id).await));
    note("kill of an unknown id", outcome(backend.kill(id, Signal::KILL, KillScope::Init).await));
    note("delete of an unknown id", outcome(backend.delete(id, DeleteMode::IfStopped).await));
    note("pause of an unknown id", outcome(backend.pause(id).await));
    note("ps of an unknown id", outcome(backend.ps(id).await));
    note("stats of an unknown id", outcome(backend.stats(id).await));
    let terminal = BundleBuilder::new(["sh"]).rootfs(rootfs).terminal().build()?;
    let created = backend.create(id, terminal.path(), CreateOptions::default()).await;
    note("create of a terminal without a console socket", outcome(created));
    note("create", outcome(backend.create(id, bundle.path(), CreateOptions::default()).await));
    note("state after create", state_shape(backend, id)?);
    note("duplicate create", outcome(backend.create(id, bundle.path(), CreateOptions::default()).await));
    note("start", outcome(backend.start(id).await));
    wait_for(backend, id, Status::Running).await?;
    note("state after start", state_shape(backend, id)?);
    note("processes", format!("{:?}", backend.ps(id).await.map(|pids| pids.len())));
    note("start of a running container", outcome(backend.start(id).await));
    note("delete of a running container", outcome(backend.delete(id, DeleteMode::IfStopped).await));
    note("pause", outcome(backend.pause(id).await));
    note("state after pause", state_shape(backend, id)?);
    note("resume", outcome(backend.resume(id).await));
    note("an unknown command", unknown_command(backend, id)?);
    note("kill", outcome(backend.kill(id, Signal::KILL, KillScope::Init).await));
    wait_for(backend, id, Status::Stopped).await?;
    note("state after kill", state_shape(backend, id)?);
    note("kill of a stopped container", outcome(backend.kill(id, Signal::KILL, KillScope::Init).await));
    note("start of a stopped container", outcome(backend.start(id).await));
    note("delete", outcome(backend.delete(id, DeleteMode::IfStopped).await));
    note("list after delete", format!("{:?}", backend.list().await.map(|states| states.len())));
    Ok(())
}

/// The count a [`COUNTER`] container last wrote, once it is more than `least`.
async fn count_above(rootfs: &Path, least: u32) -> anyhow::Result<u32> {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        match count_in(rootfs) {
            Ok(count) if count > least => return Ok(count),
            _ => ensure!(Instant::now() < deadline, "no count above {least} in {}", rootfs.display()),
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A counting container checkpointed and, where the runtime restores, restored, against any
/// runtime that checkpoints: what each step gave, the files the image holds, the states, and
/// whether the restored init is a new process that counts on from the dump.
async fn observe_checkpoint(
    backend: &CliBackend,
    flavour: Flavour,
    id: &ContainerId,
    rootfs: Rootfs,
    seen: &mut Vec<(String, String)>,
) -> anyhow::Result<()> {
    let bundle = BundleBuilder::new(["sh", "-c", COUNTER]).rootfs(rootfs).build()?;
    let mut note = |step: &str, what: String| seen.push((step.to_owned(), what));
    let dumped = backend.create(id, bundle.path(), CreateOptions::default()).await?.pid;
    backend.start(id).await?;
    count_above(&bundle.rootfs(), 2).await?;
    let images = tempfile::tempdir()?;
    let image_path = images.path().join("image");
    let opts = CheckpointOptions { image_path: image_path.clone(), ..CheckpointOptions::default() };
    note("checkpoint", outcome(backend.checkpoint(id, &opts).await));
    note("the image has inventory.img", image_path.join("inventory.img").is_file().to_string());
    let at_dump = count_in(&bundle.rootfs())?;
    let state = match backend.state(id).await {
        Ok(state) => state.status.to_string(),
        failed => outcome(failed),
    };
    note("state after checkpoint", state);
    if !flavour.restores() {
        note("delete after checkpoint", outcome(backend.delete(id, DeleteMode::IfStopped).await));
        return Ok(());
    }
    let restore = RestoreOptions { image_path, ..RestoreOptions::default() };
    let restored = backend.restore(id, bundle.path(), restore).await?;
    note("state after restore", state_shape(backend, id)?);
    note("the restored init is a new process", (restored.pid != dumped).to_string());
    let after = count_above(&bundle.rootfs(), at_dump).await?;
    note("the restored counter goes on from the dump", (after == at_dump + 1).to_string());
    note("kill of the restored container", outcome(backend.kill(id, Signal::KILL, KillScope::Init).await));
    wait_for(backend, id, Status::Stopped).await?;
    note("delete", outcome(backend.delete(id, DeleteMode::IfStopped).await));
    Ok(())
}

/// Runs the sequences and removes the containers whatever happened. The checkpoint's only where
/// the runtime checkpoints and, for a real one, CRIU works here (the fake's needs no CRIU; both
/// sides leave it out alike).
async fn observed(flavour: Flavour, config: RuntimeConfig, rootfs: Rootfs) -> anyhow::Result<Vec<(String, String)>> {
    let backend = CliBackend::connect(family(flavour), config).await?;
    let id = ContainerId::new(format!("differential-{}-{}", flavour.name(), std::process::id()))?;
    let dumped = ContainerId::new(format!("differential-checkpoint-{}-{}", flavour.name(), std::process::id()))?;
    let mut seen = Vec::new();
    let mut outcome = observe(&backend, &id, rootfs, &mut seen).await;
    if outcome.is_ok() && flavour.checkpoints() && testkit::gate::criu_problem().is_none() {
        outcome = observe_checkpoint(&backend, flavour, &dumped, rootfs, &mut seen).await;
    }
    if let Err(err) = outcome {
        for id in [&id, &dumped] {
            backend.delete(id, DeleteMode::Force).await.ok();
        }
        return Err(err.context(format!("after {seen:?}")));
    }
    Ok(seen)
}

async fn compare(flavour: Flavour, real: RealRuntime) -> CaseResult {
    let fake = FakeRuntime::new(flavour)?;
    let fake_seen = observed(flavour, fake.config(), Rootfs::Empty).await.context("against the fake")?;
    let root = tempfile::tempdir()?;
    let real_config = RuntimeConfig::default().binary(&real.binary).root(root.path());
    let real_seen = observed(flavour, real_config, Rootfs::Busybox).await.context("against the real runtime")?;
    let differences: Vec<String> = (fake_seen.iter().zip(&real_seen))
        .filter(|((_, fake), (_, real))| fake != real)
        .map(|((step, fake), (_, real))| {
            format!("{step}: the fake gave {fake}, {} {} gave {real}", flavour.name(), flavour.version())
        })
        .collect();
    ensure!(fake_seen.len() == real_seen.len(), "the sequences differ in length: {fake_seen:?} vs {real_seen:?}");
    ensure!(differences.is_empty(), "the fake differs from the real runtime:\n  {}", differences.join("\n  "));
    Ok(Ran::Passed)
}

/// What `criu <args>` ended with: exit status, stdout, stderr.
fn criu_said(criu: &std::path::Path, args: &[&str]) -> anyhow::Result<(Option<i32>, String, String)> {
    let output = std::process::Command::new(criu).args(args).output().with_context(|| format!("running {args:?}"))?;
    let text = |bytes: &[u8]| String::from_utf8_lossy(bytes).into_owned();
    Ok((output.status.code(), text(&output.stdout), text(&output.stderr)))
}

/// The fake CRIU, set to this host's kernel (with or without dirty-memory tracking, as the real
/// CRIU finds it), answers each probe as the real one does.
async fn compare_criu(real: RealRuntime) -> CaseResult {
    let fake = FakeRuntime::new(Flavour::Runc)?;
    let tracks = criu_said(&real.binary, &["check", "--feature", "mem_dirty_track"])?.0 == Some(0);
    if !tracks {
        fake.disable_dirty_tracking()?;
    }
    let probes: [&[&str]; 5] = [
        &["check"],
        &["--version"],
        &["check", "--feature", "mem_dirty_track"],
        &["check", "--feature", "uffd-noncoop"],
        &["check", "--feature", "nonexistent"],
    ];
    let mut differences = Vec::new();
    for args in probes {
        let (faked, said) = (criu_said(&fake.criu(), args)?, criu_said(&real.binary, args)?);
        if faked != said {
            differences.push(format!("criu {}: the fake gave {faked:?}, CRIU gave {said:?}", args.join(" ")));
        }
    }
    ensure!(differences.is_empty(), "the fake CRIU differs from the real one:\n  {}", differences.join("\n  "));
    Ok(Ran::Passed)
}

fn main() -> ExitCode {
    testkit::harness::main(|suite| {
        for flavour in Flavour::ALL {
            let host_checks = family(flavour).host_checks();
            let name = format!("differential::{}", flavour.name());
            suite.gated(name, flavour.name(), host_checks, move |real| compare(flavour, real));
        }
        suite.gated("differential::criu", testkit::gate::CRIU, Vec::new(), compare_criu);
    })
}
