//! The rootless cells: the library as an unprivileged user, each case run in a copy of the
//! program (test binary or `cargo xtask matrix`) executed as the user that `cargo xtask setup`
//! makes (see [`crate::rootless`]), on the real runc, crun and youki, under the direct monitor
//! and under conmon. Back as root, the cell checks that nothing of the case is left in the
//! user's runtime directory and no process of the user runs. The fakes have no rootless cells:
//! they make no user namespace, so the mappings, the user's state and the runtime's refusals
//! they would report would be theirs, not the runtimes'.
//!
//! The code is what a root caller would write: default config, default state root. Every bundle
//! maps the user to root and its subordinate ranges from id 1 on, as podman's do. The cases:
//! lifecycle, the id mappings, exec, stop and exit codes, conmon's log, and (runc) a checkpoint,
//! which CRIU refuses unprivileged unless it was given `CAP_CHECKPOINT_RESTORE`. Each case
//! checks that its state went under the user's runtime directory, never root's. youki 0.7 cannot
//! run rootless on a host with cgroup v1 hierarchies: the library refuses its create as
//! `Error::HostIncompatible` before youki runs, and the cell is skipped with that host verdict,
//! reached as the user before anything runs. So that the verdict is youki's and not only the
//! library's, one youki case (`host_verdict`) runs youki itself as the user: it must fail in the
//! words the check quotes where the check refuses it, and create the container where it does not.
//!
//! The expected exit codes are the shell's (`exit 7`), the uid inside the container is the
//! spec's mapping (the user is root of its user namespace), and the log lines are what the
//! container printed.

use std::ffi::OsStr;
use std::future::Future;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail, ensure};
use conmon_driver::ConmonMonitor;
use runtime_core::oci_spec::runtime::UserBuilder;
use runtime_core::{
    Capability, CliBackend, ContainerCheckpointOptions, ContainerId, ContainerRestoreOptions, CreateOptions,
    DeleteMode, DirectMonitor, Engine, Error, ExecOptions, ExecOutcome, Exit, HostVerdict, LogOptions, OutputStream,
    RuntimeConfig, RuntimeFamily, StateRoot, Status, StopOptions, process,
};

use super::outcome::Privilege;
use super::{CONMON, Cell, DEVIATIONS, Monitor, MonitorChoice, Outcome, Planned, env};
use crate::bundle::{Bundle, BundleBuilder};
use crate::direct::run_directly;
use crate::gate::{self, Gate, Lacking};
use crate::harness::{CaseResult, Ran, Suite, block_on};
use crate::rootless::{self as user_copy, RootlessUser, USER};

/// A rootless case, run in the user's copy of the program.
type RootlessCase = for<'env> fn(&'env mut UserEnv) -> Pin<Box<dyn Future<Output = anyhow::Result<()>> + 'env>>;

/// A rootless case as data: its name, what it checks, what it needs of its monitor, the
/// runtimes it is planned for (all when empty), whether it runs the runtime itself rather than
/// through the library, and the code.
#[derive(Clone, Copy)]
struct RootlessSpec {
    name: &'static str,
    checks: &'static str,
    needs: &'static [Capability],
    only_on: &'static [&'static str],
    /// The case holds the runtime's host checks to the runtime itself, so it runs whatever they
    /// say, and once (under the direct monitor): no monitor takes part.
    runtime_itself: bool,
    run: RootlessCase,
}

/// The rootless cases.
fn cases() -> Vec<RootlessSpec> {
    let spec = |name, checks, run| RootlessSpec { name, checks, needs: &[], only_on: &[], runtime_itself: false, run };
    vec![
        spec(
            "lifecycle",
            "as the unprivileged user: create, start, status, the init's exit code and delete, the state under \
             the user's XDG_RUNTIME_DIR",
            |env| Box::pin(lifecycle(env)),
        ),
        spec(
            "subordinate_ids",
            "as the unprivileged user: the container's user namespace maps the user to root and its /etc/subuid \
             and /etc/subgid ranges from id 1 on",
            |env| Box::pin(subordinate_ids(env)),
        ),
        spec(
            "exec",
            "as the unprivileged user: an exec's exit code and output, as root of the user namespace",
            |env| Box::pin(exec(env)),
        ),
        spec(
            "stop",
            "as the unprivileged user: a stop's TERM reaches the init's trap, and KILL follows the timeout",
            |env| Box::pin(stop(env)),
        ),
        RootlessSpec {
            needs: &[Capability::Logs],
            ..spec("logs", "as the unprivileged user: the monitor's log of the container's two streams", |env| {
                Box::pin(logs(env))
            })
        },
        // crun 1.8 has no checkpoint command, as root or not; youki's rootless cells skip.
        RootlessSpec {
            only_on: &["runc"],
            ..spec(
                "checkpoint",
                "as the unprivileged user: a checkpoint and restore where `criu check` passes, else a typed \
                 refusal with CRIU's words and the container running on",
                |env| Box::pin(checkpoint(env)),
            )
        },
        // Where the library refuses youki rootless before it runs, youki is run as the user
        // anyway, so that the refusal is youki's own and not only the library's belief.
        RootlessSpec {
            only_on: &["youki"],
            runtime_itself: true,
            ..spec(
                "host_verdict",
                "as the unprivileged user: youki itself, given a rootless bundle, fails with the words the \
                 library's host check quotes where the check says it cannot run rootless here, and creates the \
                 container where the check says it can",
                |env| Box::pin(host_verdict(env)),
            )
        },
    ]
}

/// Adds the rootless cells of the real runtime of `family` under each monitor to `suite`, named
/// `conformance::<runtime>+<monitor>+rootless::<case>`. Each runs through the gates (conmon's
/// under conmon, the runtime's, then the rootless user's: missing, a skip that says to run
/// `cargo xtask setup`, or a failure when `REQUIRE_REAL_RUNTIMES` names `rootless`).
pub fn register_rootless(suite: &mut Suite, family: &Arc<dyn RuntimeFamily>) {
    for monitor in [Monitor::Direct, Monitor::Conmon] {
        for case in cases() {
            let planned_here = case.only_on.is_empty() || case.only_on.contains(&family.name());
            if planned_here && !(case.runtime_itself && monitor == Monitor::Conmon) {
                suite.conformance(plan(family, monitor, case));
            }
        }
    }
}

/// When this process is the user's copy of the program, runs the one cell it was started for
/// among `suite`'s and gives the exit code, its outcome on the standard output for the root
/// process to read ([`user_copy::report`]); `None` otherwise. Every program that runs rootless
/// cells calls it before anything else, once the cells are registered.
pub fn run_as_user_copy(suite: &mut Suite) -> Option<ExitCode> {
    let name = user_copy::case_of_this_copy()?;
    let cell = suite.take_conformance().into_iter().find(|planned| planned.cell().test_name() == name);
    let outcome = match cell {
        Some(planned) => planned.run(),
        None => Outcome::Fail { evidence: format!("the user's copy of the program has no cell {name}") },
    };
    Some(user_copy::report(&outcome))
}

fn plan(family: &Arc<dyn RuntimeFamily>, monitor: Monitor, case: RootlessSpec) -> Planned {
    let cell = Cell {
        backend: family.name().to_owned(),
        monitor: Some(monitor),
        privilege: Privilege::Rootless,
        case: case.name.to_owned(),
    };
    let name = cell.test_name();
    let family = Arc::clone(family);
    let run = move || {
        if user_copy::case_of_this_copy().is_some() {
            let result = block_on(as_the_user(family.clone(), monitor, case));
            Outcome::of(family.name(), case.name, result, DEVIATIONS)
        } else {
            as_root(&family, monitor, case, &name)
        }
    };
    Planned { cell, checks: case.checks, run: Box::new(run) }
}

/// The root side of a cell: the gates, the user's copy running the case, then what it left.
fn as_root(family: &Arc<dyn RuntimeFamily>, monitor: Monitor, case: RootlessSpec, name: &str) -> Outcome {
    let conmon = match monitor {
        Monitor::Direct => None,
        Monitor::Conmon => match gate::real_runtime(CONMON, &[]) {
            Gate::Open(conmon) => Some(conmon.binary),
            Gate::Skip(reason) => return Outcome::Skip { reason },
            Gate::Fail(evidence) => return Outcome::Fail { evidence },
        },
    };
    let choice = conmon.map_or(MonitorChoice::Direct, MonitorChoice::Conmon);
    for capability in case.needs {
        if let Some(lacking) = env::lacking(&choice, *capability) {
            return Outcome::of(family.name(), case.name, lacking, DEVIATIONS);
        }
    }
    match gate::real_runtime(family.name(), &family.host_checks()) {
        Gate::Open(_) => {}
        Gate::Skip(reason) => return Outcome::Skip { reason },
        Gate::Fail(evidence) => return Outcome::Fail { evidence },
    }
    let user = match RootlessUser::gate(&gate::required()) {
        Ok(user) => user,
        Err(Lacking::Skip(reason)) => return Outcome::Skip { reason },
        Err(Lacking::Fail(evidence)) => return Outcome::Fail { evidence },
    };
    let outcome = match user.run_case(name) {
        Ok(outcome) => outcome,
        Err(err) => Outcome::Fail { evidence: format!("{err:#}") },
    };
    match user.leftovers() {
        left if left.is_empty() => outcome,
        left => {
            let left = format!("left behind as {USER}: {}", left.join(", "));
            match outcome {
                Outcome::Fail { evidence } => Outcome::Fail { evidence: format!("{evidence}; {left}") },
                _ => Outcome::Fail { evidence: left },
            }
        }
    }
}

/// The user's side of a cell: the runtime's host checks as this user sees them (the library
/// refuses a create they fail, youki's on v1 cgroups, as `Error::HostIncompatible`), then the
/// case in an engine of its own. A failed check is the cell's skip, in the check's words.
async fn as_the_user(family: Arc<dyn RuntimeFamily>, monitor: Monitor, case: RootlessSpec) -> CaseResult {
    let checks = if case.runtime_itself { Vec::new() } else { family.host_checks() };
    for check in checks {
        if let HostVerdict::Incompatible { problem, fix, evidence } = check.check() {
            let name = family.name();
            return Ok(Ran::Skipped(format!("{name} cannot run rootless here: {problem} ({evidence}); fix: {fix}")));
        }
    }
    UserEnv::case(family, monitor, case.run).await.map(|()| Ran::Passed)
}

/// One case's engine, made as an embedding program would make it, and what it created.
struct UserEnv {
    engine: Engine,
    family: Arc<dyn RuntimeFamily>,
    /// The user this runs as, with its subordinate ranges, which every bundle maps.
    user: RootlessUser,
    bundles: Vec<Bundle>,
    ids: Vec<ContainerId>,
}

impl UserEnv {
    /// An engine over `family` (found in `PATH`, default config) and the monitor, its state at
    /// the default root; both must be under the user's runtime directory.
    async fn new(family: Arc<dyn RuntimeFamily>, monitor: Monitor) -> anyhow::Result<Self> {
        let backend = CliBackend::connect(Arc::clone(&family), RuntimeConfig::default()).await.context("connecting")?;
        let monitor: Arc<dyn runtime_core::Monitor> = match monitor {
            Monitor::Direct => Arc::new(DirectMonitor::new()),
            Monitor::Conmon => Arc::new(ConmonMonitor::new(which::which(CONMON).context("conmon in PATH")?)),
        };
        let root = StateRoot::open(StateRoot::default_path()?)?;
        let engine = Engine::new(Arc::new(backend), monitor, root);
        let user = RootlessUser::find().map_err(anyhow::Error::msg)?;
        let env = UserEnv { engine, family, user, bundles: Vec::new(), ids: Vec::new() };
        env.check_state_is_the_users()?;
        Ok(env)
    }

    /// The engine's state root and the runtime's `--root` are in the user's runtime directory.
    fn check_state_is_the_users(&self) -> anyhow::Result<()> {
        let runtime_dir = PathBuf::from(std::env::var_os("XDG_RUNTIME_DIR").context("XDG_RUNTIME_DIR")?);
        ensure!(
            self.engine.state_root().path() == runtime_dir.join("ocikit"),
            "the state root is {}, not in {}",
            self.engine.state_root().path().display(),
            runtime_dir.display()
        );
        let args = self.engine.backend().global_args();
        let root = args.iter().position(|arg| arg == "--root").and_then(|at| args.get(at + 1));
        ensure!(
            root.map(PathBuf::from) == Some(runtime_dir.join(self.family.name())),
            "the runtime's --root is {root:?}, not {}",
            runtime_dir.join(self.family.name()).display()
        );
        Ok(())
    }

    fn id(&mut self, name: &str) -> ContainerId {
        let id = ContainerId::new(format!("rootless-{name}-{}", std::process::id())).unwrap();
        self.ids.push(id.clone());
        id
    }

    /// A rootless busybox bundle running `script` under `sh -c`, mapping the user to root and
    /// its subordinate ranges to the ids from 1 on.
    fn bundle(&mut self, script: &str) -> anyhow::Result<PathBuf> {
        let builder = BundleBuilder::new(["sh", "-c", script]);
        let bundle = builder.subordinate_ids(self.user.subuids, self.user.subgids).build()?;
        let path = bundle.path().to_path_buf();
        self.bundles.push(bundle);
        Ok(path)
    }

    /// Runs `body`, then removes every container it made, whatever happened.
    async fn case(family: Arc<dyn RuntimeFamily>, monitor: Monitor, body: RootlessCase) -> anyhow::Result<()> {
        let mut env = UserEnv::new(family, monitor).await?;
        let result = body(&mut env).await;
        for id in &env.ids {
            let _ = env.engine.delete(id, DeleteMode::Force).await;
        }
        result
    }
}

/// Waits (without a bound: the harness's is the case's) for `path` to exist.
async fn appears(path: &Path) {
    while !path.exists() {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Create, start, status, the exit code of the container's shell, delete.
async fn lifecycle(env: &mut UserEnv) -> anyhow::Result<()> {
    let id = env.id("lifecycle");
    let bundle = env.bundle("while [ ! -e /go ]; do sleep 0.05; done; exit 7")?;
    env.engine.create(&id, &bundle, CreateOptions::default()).await.context("create")?;
    ensure!(env.engine.status(&id).await?.status == Status::Created, "created");
    env.engine.start(&id).await.context("start")?;
    ensure!(env.engine.status(&id).await?.status == Status::Running, "running until told");
    std::fs::write(bundle.join("rootfs/go"), "")?;
    let exit = env.engine.wait(&id).await?;
    ensure!(exit == Exit::Exited(7), "the shell's exit 7, got {exit:?}");
    env.engine.delete(&id, DeleteMode::IfStopped).await.context("delete")?;
    ensure!(env.engine.list().await?.is_empty(), "no container is listed after the delete");
    Ok(())
}

/// The container's user namespace maps the user to root and its subordinate ranges (read from
/// `/etc/subuid` and `/etc/subgid`) from 1 on: a file an exec as uid and gid 1000 makes belongs
/// to the 1000th subordinate ids outside.
async fn subordinate_ids(env: &mut UserEnv) -> anyhow::Result<()> {
    let id = env.id("subids");
    let script = "cat /proc/self/uid_map /proc/self/gid_map > /maps; mkdir -m 777 /shared; touch /ready; \
                  while [ ! -e /go ]; do sleep 0.05; done";
    let bundle = env.bundle(script)?;
    env.engine.run(&id, &bundle, CreateOptions::default()).await.context("run")?;
    appears(&bundle.join("rootfs/ready")).await;
    let mut command = process(["sh", "-c", "touch /shared/owned; id -u"]);
    command.set_user(UserBuilder::default().uid(1000u32).gid(1000u32).build()?);
    match env.engine.exec(&id, &command, ExecOptions::default()).await.context("exec as uid 1000")? {
        ExecOutcome::Exited { code: 0, stdout, .. } => ensure!(stdout.bytes == b"1000\n", "id -u: {stdout:?}"),
        other => bail!("exec as uid 1000: {other:?}"),
    }
    std::fs::write(bundle.join("rootfs/go"), "")?;
    ensure!(env.engine.wait(&id).await? == Exit::Exited(0), "the init ends on its own");
    let maps = std::fs::read_to_string(bundle.join("rootfs/maps"))?;
    let maps: Vec<String> = maps.lines().map(|line| line.split_whitespace().collect::<Vec<_>>().join(" ")).collect();
    let user = &env.user;
    let expected = [
        format!("0 {} 1", user.uid),
        format!("1 {} {}", user.subuids.start, user.subuids.count),
        format!("0 {} 1", user.gid),
        format!("1 {} {}", user.subgids.start, user.subgids.count),
    ];
    ensure!(maps == expected, "maps {maps:?}, expected {expected:?}");
    let owned = std::fs::metadata(bundle.join("rootfs/shared/owned"))?;
    let outside = (u64::from(owned.uid()), u64::from(owned.gid()));
    ensure!(outside == (user.subuids.start + 999, user.subgids.start + 999), "uid and gid 1000 inside are {outside:?}");
    Ok(())
}

/// An exec's code and output; the user is root inside its user namespace.
async fn exec(env: &mut UserEnv) -> anyhow::Result<()> {
    let id = env.id("exec");
    let bundle = env.bundle("while [ ! -e /go ]; do sleep 0.05; done")?;
    env.engine.run(&id, &bundle, CreateOptions::default()).await.context("run")?;
    let command = process(["sh", "-c", "id -u; echo err >&2; exit 5"]);
    match env.engine.exec(&id, &command, ExecOptions::default()).await.context("exec")? {
        ExecOutcome::Exited { code: 5, stdout, stderr } => {
            ensure!(stdout.bytes == b"0\n" && stderr.bytes == b"err\n", "output {stdout:?} {stderr:?}");
        }
        other => bail!("exec: {other:?}"),
    }
    std::fs::write(bundle.join("rootfs/go"), "")?;
    ensure!(env.engine.wait(&id).await? == Exit::Exited(0), "the init ends on its own");
    Ok(())
}

/// A stop's TERM reaches the init's trap, whose code is the container's exit; a second
/// container that ignores TERM is killed once the stop's timeout passes.
async fn stop(env: &mut UserEnv) -> anyhow::Result<()> {
    let id = env.id("stop");
    let bundle = env.bundle("trap 'exit 9' TERM; touch /ready; while :; do sleep 0.05; done")?;
    env.engine.run(&id, &bundle, CreateOptions::default()).await.context("run")?;
    appears(&bundle.join("rootfs/ready")).await;
    let exit = env.engine.stop(&id, StopOptions::default()).await.context("stop")?;
    ensure!(exit == Exit::Exited(9), "the trap's exit 9, got {exit:?}");
    let stubborn = env.id("stop-kill");
    let bundle = env.bundle("trap '' TERM; touch /ready; while :; do sleep 0.05; done")?;
    env.engine.run(&stubborn, &bundle, CreateOptions::default()).await.context("run")?;
    appears(&bundle.join("rootfs/ready")).await;
    let opts = StopOptions { timeout: Duration::from_millis(500), ..StopOptions::default() };
    let exit = env.engine.stop(&stubborn, opts).await.context("stop")?;
    ensure!(exit == Exit::Signaled(runtime_core::Signal::KILL), "killed after the timeout, got {exit:?}");
    Ok(())
}

/// conmon's log of the container's two streams.
async fn logs(env: &mut UserEnv) -> anyhow::Result<()> {
    let id = env.id("logs");
    let bundle = env.bundle("echo out; echo err >&2; exit 2")?;
    env.engine.run(&id, &bundle, CreateOptions::default()).await.context("run")?;
    ensure!(env.engine.wait(&id).await? == Exit::Exited(2), "the container's own exit");
    let mut reader = env.engine.logs(&id, LogOptions::default()).await.context("the log")?;
    let mut lines = Vec::new();
    while let Some(line) = reader.next_line().await? {
        lines.push((line.stream, String::from_utf8_lossy(&line.text).into_owned()));
    }
    let stream = |wanted: OutputStream| {
        lines.iter().filter(|(stream, _)| *stream == wanted).map(|(_, text)| text.as_str()).collect::<Vec<_>>()
    };
    ensure!(stream(OutputStream::Stdout) == ["out"] && stream(OutputStream::Stderr) == ["err"], "log {lines:?}");
    Ok(())
}

/// A checkpoint as the user. CRIU without `CAP_CHECKPOINT_RESTORE` refuses to dump anything
/// unprivileged, and says so in `criu check`: the checkpoint is then a typed refusal with CRIU's
/// words, before anything ran, and the container runs on. Where `criu check` passes as the
/// user, the container is dumped and restored, running again.
async fn checkpoint(env: &mut UserEnv) -> anyhow::Result<()> {
    let id = env.id("checkpoint");
    let bundle = env.bundle("trap 'exit 0' TERM; touch /ready; while :; do sleep 0.05; done")?;
    env.engine.run(&id, &bundle, CreateOptions::default()).await.context("run")?;
    appears(&bundle.join("rootfs/ready")).await;
    let check = std::process::Command::new("criu").arg("check").output().context("criu check")?;
    let said = format!("{}{}", String::from_utf8_lossy(&check.stdout), String::from_utf8_lossy(&check.stderr));
    let criu_words = said.lines().map(str::trim).find(|line| !line.is_empty()).unwrap_or_default().to_owned();
    match (check.status.success(), env.engine.checkpoint(&id, ContainerCheckpointOptions::default()).await) {
        (false, Err(Error::Unsupported { feature, reason, .. })) => {
            ensure!(feature == "checkpoint" && reason.contains(&criu_words), "CRIU's {criu_words:?} in: {reason}");
        }
        (true, Ok(_)) => {
            let restored = env.engine.restore(&id, &bundle, ContainerRestoreOptions::default());
            restored.await.context("restore")?;
        }
        (passes, other) => bail!("`criu check` as the user passes: {passes} ({said:?}); the checkpoint gave {other:?}"),
    }
    ensure!(env.engine.status(&id).await?.status == Status::Running, "the container runs");
    ensure!(env.engine.stop(&id, StopOptions::default()).await? == Exit::Exited(0), "the trap's exit 0");
    Ok(())
}

/// youki run directly as the user (not through the engine, which would refuse it first) on a
/// rootless bundle, against the verdict of the library's host checks for it, reached as this
/// user. Where a check says youki cannot run rootless here, its create must fail, and what youki
/// said must hold the words the check quotes (the fixed parts around its `<placeholders>`, in
/// order, on one line). Where every check says it can, the create must succeed. Either way the
/// container is deleted by youki, and no v1 cgroup of it is left.
async fn host_verdict(env: &mut UserEnv) -> anyhow::Result<()> {
    let refusal = env.family.host_checks().iter().find_map(|check| match check.check() {
        HostVerdict::Incompatible { problem, evidence, .. } => Some((check.describe(), problem, evidence)),
        HostVerdict::Fine { .. } => None,
    });
    let id = ContainerId::new(format!("rootless-verdict-{}", std::process::id()))?;
    let bundle = env.bundle("true")?;
    let backend = env.engine.backend();
    let create = [OsStr::new("create"), OsStr::new("--bundle"), bundle.as_os_str(), id.as_ref()];
    let created = run_directly(backend, &create)?;
    let said = String::from_utf8_lossy(&created.stderr).into_owned();
    let deleted = run_directly(backend, &[OsStr::new("delete"), OsStr::new("--force"), id.as_ref()])?;
    let cgroups = v1_cgroups_named(&format!(":youki:{id}"));
    ensure!(cgroups.is_empty(), "youki left its cgroups {cgroups:?}");
    match (refusal, created.status.success()) {
        (Some((check, problem, evidence)), false) => {
            let quoted = problem.split('"').nth(1).with_context(|| format!("no quoted words in {problem:?}"))?;
            let fixed = fixed_parts(quoted);
            ensure!(
                said.lines().any(|line| in_order(line, &fixed)),
                "the check \"{check}\" ({evidence}) quotes youki as {quoted:?}; youki said ({}): {said}",
                created.status
            );
            Ok(())
        }
        (None, true) => {
            ensure!(deleted.status.success(), "youki's delete: {}", String::from_utf8_lossy(&deleted.stderr));
            Ok(())
        }
        (Some((check, problem, _)), true) => {
            bail!("the check \"{check}\" says youki cannot run rootless here ({problem}), but its create worked")
        }
        (None, false) => bail!("every host check says youki can run rootless here, but ({}): {said}", created.status),
    }
}

/// The parts of a quoted message around its `<placeholder>`s.
fn fixed_parts(quoted: &str) -> Vec<&str> {
    quoted
        .split('<')
        .enumerate()
        .map(|(at, part)| if at == 0 { part } else { part.split_once('>').map_or(part, |(_, rest)| rest) })
        .filter(|part| !part.is_empty())
        .collect()
}

/// Whether every one of `parts` is in `line`, each after the one before.
fn in_order(line: &str, parts: &[&str]) -> bool {
    let mut rest = line;
    parts.iter().all(|part| match rest.find(part) {
        Some(at) => {
            rest = &rest[at + part.len()..];
            true
        }
        None => false,
    })
}

/// The directories named `name` in the v1 hierarchies under `/sys/fs/cgroup`.
fn v1_cgroups_named(name: &str) -> Vec<PathBuf> {
    let Ok(hierarchies) = std::fs::read_dir("/sys/fs/cgroup") else { return Vec::new() };
    hierarchies.flatten().map(|hierarchy| hierarchy.path().join(name)).filter(|path| path.exists()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_quoted_message_matches_a_line_holding_its_fixed_parts_in_order() {
        let fixed = fixed_parts("failed to create dir /sys/fs/cgroup/<controller>/:youki:<id>: Permission denied");
        assert_eq!(fixed, ["failed to create dir /sys/fs/cgroup/", "/:youki:", ": Permission denied"]);
        let youki = "Error: failed to create dir /sys/fs/cgroup/devices/:youki:c1: Permission denied (os error 13)";
        assert!(in_order(youki, &fixed));
        assert!(!in_order("Permission denied: failed to create dir /sys/fs/cgroup/devices/:youki:c1", &fixed));
        assert!(!in_order("failed to create dir /sys/fs/cgroup/devices/c1: Permission denied", &fixed));
    }
}
