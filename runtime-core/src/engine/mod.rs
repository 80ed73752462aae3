//! The [`Engine`]: container lifecycle semantics over one backend and one monitor.
//!
//! A backend runs runtime commands; it cannot say how a container ended, and it has no `stop`.
//! The engine adds what users embed: containers created under a monitor that records their
//! exit, `wait` driven by the monitor's events, `stop` with the escalation podman uses (the
//! stop signal, a grace period, then SIGKILL to every process), and state under a root that
//! survives the embedding program ([`Engine::reconnect`]).
//!
//! One engine serves many containers at once. Work on one container is serialised by a
//! per-container `flock` in the state root, which also keeps two processes from racing on one
//! container; no engine-wide lock is ever held across a runtime call, so different containers
//! proceed in parallel.

mod attach;
mod checkpoint;
mod direct;
mod oom;
mod pidfd;
mod state_root;
#[cfg(test)]
mod tests;

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use oci_spec::runtime::{LinuxResources, Process};

use crate::blocking::off_executor;
use crate::contract::backend::OciBackend;
use crate::contract::error::{Error, Result};
use crate::contract::exit::Exit;
use crate::contract::id::ContainerId;
use crate::contract::monitor::{Capability, CreateRequest, ExecRequest, ExecSession, Launch, Monitor};
use crate::contract::options::{CreateOptions, Created, DeleteMode, ExecOptions, ExecOutcome, KillScope};
use crate::contract::signal::Signal;
use crate::contract::state::Status;

pub use checkpoint::{CheckpointReport, ContainerCheckpointOptions, ContainerRestoreOptions, Export, RestoreReport};
pub use direct::DirectMonitor;
use state_root::ContainerRecord;
pub use state_root::{DEFAULT_LOCK_WAIT, StateRoot};

/// The OCI annotation that names the signal `stop` sends first (what `STOPSIGNAL` becomes).
pub const STOP_SIGNAL_ANNOTATION: &str = "org.opencontainers.image.stopSignal";

/// How long a container gets to die after SIGKILL before `stop` gives up.
pub const KILL_GRACE: Duration = Duration::from_secs(5);

/// How long `stop` waits for the stop signal to work, unless told otherwise (podman's default).
pub const DEFAULT_STOP_TIMEOUT: Duration = Duration::from_secs(10);

/// What the engine knows of a container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerStatus {
    /// The container.
    pub id: ContainerId,
    /// Its lifecycle status.
    pub status: Status,
    /// How it ended, once it has.
    pub exit: Option<Exit>,
    /// The kernel's OOM killer killed a process of the container (read from its memory cgroup
    /// when its init ended, on every runtime, and kept with its exit across a reconnect). As in
    /// conmon and podman, a process other than the init counts too. False while it runs, and
    /// when the monitor could not see its memory cgroup.
    pub oom_killed: bool,
    /// Stopped by a checkpoint: it lives on as its images, under the state root or in the
    /// archive it was exported to, for [`Engine::restore`].
    pub checkpointed: bool,
}

/// Options of [`Engine::stop`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StopOptions {
    /// The first signal; `None` is the spec's stop-signal annotation, else TERM.
    pub signal: Option<Signal>,
    /// How long the first signal gets before SIGKILL.
    pub timeout: Duration,
}

impl Default for StopOptions {
    fn default() -> Self {
        StopOptions { signal: None, timeout: DEFAULT_STOP_TIMEOUT }
    }
}

/// Lifecycle of supervised containers over one backend and one monitor.
pub struct Engine {
    backend: Arc<dyn OciBackend>,
    monitor: Arc<dyn Monitor>,
    root: StateRoot,
    /// Containers this engine's monitor watches; others (made by another process) are adopted
    /// when waited for.
    watched: Mutex<HashSet<ContainerId>>,
    /// Rootless: `stop`'s SIGKILL goes to the init alone, since a rootless container's cgroup
    /// may not be ours to signal (as podman does).
    rootless: bool,
    /// Rollbacks of dropped runs, under way in the background.
    pending: PendingRollbacks,
}

/// Rollbacks running in the background, by container: a new container of the same id waits
/// for its predecessor's, and [`Engine::settle`] for all of them.
type PendingRollbacks = Arc<Mutex<HashMap<ContainerId, tokio::task::JoinHandle<()>>>>;

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("backend", &self.backend.name())
            .field("monitor", &self.monitor.name())
            .field("root", &self.root.path())
            .finish()
    }
}

/// A kill that found the container gone (or already stopped) did what it was for.
fn gone_is_fine(result: Result<()>) -> Result<()> {
    match result {
        Err(Error::NotFound { .. } | Error::InvalidState { .. }) => Ok(()),
        other => other,
    }
}

/// A bundle as the engine gives it to the runtime and records it: absolute, a relative one
/// taken from the current directory at the call. Recorded relative, it would name another
/// directory (or none) for a reconnected engine, an export or a restore that runs elsewhere.
/// The path is not resolved further: symlinks stay as the caller named them.
fn absolute_bundle(bundle: &Path) -> Result<PathBuf> {
    if bundle.as_os_str().is_empty() {
        let reason = "is empty; a bundle is the directory holding config.json".to_owned();
        return Err(Error::InvalidArgument { option: "bundle".to_owned(), reason });
    }
    std::path::absolute(bundle)
        .map_err(|err| Error::io(format!("making the bundle path {} absolute", bundle.display()), err))
}

/// The stop signal a bundle asks for, from its spec's annotation.
fn stop_signal_of(bundle: &Path) -> Signal {
    let config = std::fs::read(bundle.join("config.json")).ok();
    let spec: Option<serde_json::Value> = config.and_then(|bytes| serde_json::from_slice(&bytes).ok());
    spec.as_ref()
        .and_then(|spec| spec["annotations"][STOP_SIGNAL_ANNOTATION].as_str())
        .and_then(|name| name.parse().ok())
        .unwrap_or(Signal::TERM)
}

impl Engine {
    /// An engine driving `backend`, supervising through `monitor`, keeping state in `root`.
    pub fn new(backend: Arc<dyn OciBackend>, monitor: Arc<dyn Monitor>, root: StateRoot) -> Self {
        let rootless = crate::caller::Caller::current().is_rootless();
        let pending = PendingRollbacks::default();
        Engine { backend, monitor, root, watched: Mutex::new(HashSet::new()), rootless, pending }
    }

    /// An engine that finds again the containers recorded under `root` (after the embedding
    /// program restarted): live ones are watched from now on; one that ended while nobody
    /// watched reports [`Exit::Unknown`], never a guessed code. A root holding a container of
    /// another backend or monitor is [`Error::ForeignStateRoot`], before anything is touched.
    pub async fn reconnect(backend: Arc<dyn OciBackend>, monitor: Arc<dyn Monitor>, root: StateRoot) -> Result<Self> {
        let engine = Engine::new(backend, monitor, root);
        let records = engine.root.records().await?;
        let (backend, monitor) = (engine.backend.name(), engine.monitor.name());
        if let Some(foreign) = records.iter().find(|record| record.backend != backend || record.monitor != monitor) {
            return Err(Error::ForeignStateRoot {
                id: foreign.id.clone(),
                found_backend: foreign.backend.clone(),
                found_monitor: foreign.monitor.clone(),
                backend: backend.to_owned(),
                monitor: monitor.to_owned(),
            });
        }
        for record in records {
            let files = engine.root.files(&record.id);
            if engine.monitor.exit_status(&record.id, &files).await?.is_some() {
                continue;
            }
            match engine.backend.state(&record.id).await {
                Ok(state) if state.status != Status::Stopped => {
                    if let Some(pid) = state.pid {
                        engine.monitor.adopt(&record.id, pid, &files).await?;
                        engine.mark_watched(&record.id);
                    }
                }
                // A monitor that outlives its embedder (conmon) records the exit of a container
                // that ended while nobody here watched, a moment after the runtime sees it stop:
                // it is waited for, not reported unknown.
                Ok(_) if engine.monitor.capabilities().contains(&Capability::SurvivesEmbedder) => {
                    engine.mark_watched(&record.id);
                }
                Ok(_) | Err(Error::NotFound { .. }) => {}
                Err(err) => return Err(err),
            }
        }
        Ok(engine)
    }

    /// The backend.
    pub fn backend(&self) -> &dyn OciBackend {
        self.backend.as_ref()
    }

    /// The state root.
    pub fn state_root(&self) -> &StateRoot {
        &self.root
    }

    /// Waits until the rollbacks of calls dropped before it (a create, run, restore or exec the
    /// caller gave up on) have finished: they run in the background, never on the caller's
    /// executor. Returns what they could not undo, empty when everything was. A program awaits
    /// it before it exits, so that nothing a dropped call started outlives it unseen.
    pub async fn settle(&self) -> Vec<Error> {
        let pending: Vec<_> = self.pending.lock().unwrap_or_else(|p| p.into_inner()).drain().collect();
        for (id, rollback) in pending {
            if let Err(err) = rollback.await {
                tracing::warn!(%id, %err, "a background rollback did not finish");
            }
        }
        self.backend.settle().await
    }

    /// Waits for the background rollback of an earlier container of `id`, if one runs: it must
    /// not delete the container about to be made.
    async fn after_rollback_of(&self, id: &ContainerId) {
        let Some(rollback) = self.pending.lock().unwrap_or_else(|p| p.into_inner()).remove(id) else { return };
        if let Err(err) = rollback.await {
            tracing::warn!(%id, %err, "a background rollback did not finish");
        }
    }

    fn mark_watched(&self, id: &ContainerId) {
        self.watched.lock().unwrap_or_else(|p| p.into_inner()).insert(id.clone());
    }

    fn is_watched(&self, id: &ContainerId) -> bool {
        self.watched.lock().unwrap_or_else(|p| p.into_inner()).contains(id)
    }

    /// Creates `id` from `bundle` under the monitor; its init waits for [`Engine::start`]. A
    /// relative `bundle` is taken from the current directory at the call: the runtime is given,
    /// and the record keeps, the absolute path.
    pub async fn create(&self, id: &ContainerId, bundle: &Path, opts: CreateOptions) -> Result<Created> {
        self.bring_up(id, &absolute_bundle(bundle)?, opts, Launch::Create).await
    }

    /// Creates and starts `id` in one runtime call (`run --detach`) when the runtime has one,
    /// else `create` then `start`; supervised exactly like [`Engine::create`].
    pub async fn run(&self, id: &ContainerId, bundle: &Path, opts: CreateOptions) -> Result<Created> {
        let bundle = &absolute_bundle(bundle)?;
        if self.backend.can_run() {
            return self.bring_up(id, bundle, opts, Launch::Run).await;
        }
        let created = self.bring_up(id, bundle, opts, Launch::Create).await?;
        // Dropped while starting, the half-made container is rolled back in the background.
        let unfinished = self.unfinished(self.rollback_of(id));
        let started = self.start(id).await;
        let rollback = unfinished.finish();
        if let Err(err) = started {
            rollback.run_locked().await;
            return Err(err);
        }
        Ok(created)
    }

    async fn bring_up(&self, id: &ContainerId, bundle: &Path, opts: CreateOptions, launch: Launch) -> Result<Created> {
        self.after_rollback_of(id).await;
        let mut lock = self.root.lock(id).await?;
        let files = self.root.files(id);
        // Saved before the runtime runs, and again with the init's pid: the spec is read once.
        let (recorded, record) = self.begin_record(id, bundle).await?;
        let known = match &recorded {
            Some(record) => self.is_known_to_the_runtime(record).await?,
            None => false,
        };
        if !known && recorded.is_some() {
            // An earlier container of this id was deleted outside the engine: what is left of
            // it goes, as `begin_record` does when there was no record, so the new one inherits
            // no exit.
            self.monitor.release(id, &files).await?;
            self.watched.lock().unwrap_or_else(|p| p.into_inner()).remove(id);
            self.root.forget(id).await?;
            self.root.save(&record).await?;
        }
        let request = CreateRequest { id: id.clone(), bundle: bundle.to_path_buf(), options: opts, launch, files };
        // Dropped before the monitor answers, a new container is rolled back in the background:
        // the runtime may have made it, and the monitor may hold it already.
        let unfinished = (!known).then(|| self.unfinished(self.rollback_of(id)));
        let created = self.monitor.create(self.backend.as_ref(), request).await;
        if let Some(unfinished) = unfinished {
            unfinished.disarm();
        }
        let created = match created {
            Ok(created) => created,
            Err(err) => {
                // A refusal made nothing (and an existing container of this id keeps its files);
                // an unfinished call was undone by the backend.
                if !known {
                    self.root.forget(id).await?;
                    lock.remove_on_drop();
                }
                return Err(err);
            }
        };
        self.mark_watched(id);
        if let Err(err) = self.root.save(&ContainerRecord { pid: Some(created.pid), ..record }).await {
            self.roll_back(id).await;
            lock.remove_on_drop();
            return Err(err);
        }
        Ok(created)
    }

    /// Whether a recorded container is still there: the runtime knows it, or it lives on as a
    /// checkpoint. A create over it is the runtime's to refuse, and its files stay.
    async fn is_known_to_the_runtime(&self, record: &ContainerRecord) -> Result<bool> {
        if record.checkpointed {
            return Ok(true);
        }
        match self.backend.state(&record.id).await {
            Ok(_) => Ok(true),
            Err(Error::NotFound { .. }) => Ok(false),
            Err(err) => Err(err),
        }
    }

    /// What the engine remembers of a container it makes, before the runtime says its pid; the
    /// stop signal comes from its spec, read off the executor.
    async fn record(&self, id: &ContainerId, bundle: &Path) -> Result<ContainerRecord> {
        let mut record = self.unsigned_record(id, bundle);
        let spec_of = bundle.to_path_buf();
        let stop_signal = off_executor("reading the spec's stop signal", move || Ok(stop_signal_of(&spec_of))).await?;
        record.stop_signal = stop_signal.number();
        Ok(record)
    }

    /// The record of a container about to be made, with TERM for its stop signal until its
    /// spec is read.
    fn unsigned_record(&self, id: &ContainerId, bundle: &Path) -> ContainerRecord {
        ContainerRecord {
            id: id.clone(),
            bundle: bundle.to_path_buf(),
            backend: self.backend.name().to_owned(),
            monitor: self.monitor.name().to_owned(),
            pid: None,
            stop_signal: Signal::TERM.number(),
            checkpointed: false,
        }
    }

    /// The file work a create does before the runtime runs, in one trip off the executor: the
    /// record of an earlier container of `id`, if any, and the new container's record (its stop
    /// signal read from the spec). When there was none, the new record is saved at once, after
    /// whatever an earlier container of the id left (an exit file) is removed: the new one
    /// inherits no exit, and an init that exits at once has a place for its exit.
    async fn begin_record(
        &self,
        id: &ContainerId,
        bundle: &Path,
    ) -> Result<(Option<ContainerRecord>, ContainerRecord)> {
        let (root, mut record) = (self.root.clone(), self.unsigned_record(id, bundle));
        off_executor("recording a new container", move || {
            record.stop_signal = stop_signal_of(&record.bundle).number();
            let recorded = root.load_now(&record.id)?;
            if recorded.is_none() {
                root.forget_now(&record.id)?;
                root.save_now(&record)?;
            }
            Ok((recorded, record))
        })
        .await
    }

    /// Removes a container the engine could not finish making, its lock held by the caller:
    /// `delete --force`, then the monitor's files and the engine's record.
    async fn roll_back(&self, id: &ContainerId) {
        self.rollback_of(id).run().await;
    }

    fn rollback_of(&self, id: &ContainerId) -> RollBack {
        RollBack {
            backend: self.backend.clone(),
            monitor: self.monitor.clone(),
            root: self.root.clone(),
            id: id.clone(),
            previous: None,
        }
    }

    /// A guard that hands `rollback` to a task of its own if the call is dropped before it is
    /// finished ([`Unfinished::finish`]); [`Engine::settle`] and a later call for the same id
    /// wait for that task.
    fn unfinished(&self, rollback: RollBack) -> Unfinished {
        Unfinished { rollback: Some(rollback), pending: self.pending.clone() }
    }

    /// Starts a created container's process.
    pub async fn start(&self, id: &ContainerId) -> Result<()> {
        let _lock = self.root.lock(id).await?;
        self.monitor.ready_to_start(id).await;
        self.backend.start(id).await
    }

    /// Sends `signal` to the init or to every process of the container.
    pub async fn kill(&self, id: &ContainerId, signal: Signal, scope: KillScope) -> Result<()> {
        self.backend.kill(id, signal, scope).await
    }

    /// Freezes the container.
    pub async fn pause(&self, id: &ContainerId) -> Result<()> {
        let _lock = self.root.lock(id).await?;
        self.backend.pause(id).await
    }

    /// Thaws the container.
    pub async fn resume(&self, id: &ContainerId) -> Result<()> {
        let _lock = self.root.lock(id).await?;
        self.backend.resume(id).await
    }

    /// Changes the container's resource limits.
    pub async fn update(&self, id: &ContainerId, resources: &LinuxResources) -> Result<()> {
        let _lock = self.root.lock(id).await?;
        self.backend.update(id, resources).await
    }

    /// The host pids of the container's processes.
    pub async fn ps(&self, id: &ContainerId) -> Result<Vec<u32>> {
        self.backend.ps(id).await
    }

    /// The container's status. When the monitor has recorded its exit, or a checkpoint stopped
    /// it, no runtime call is made. A container still running whose monitor process is gone is
    /// [`Error::MonitorLost`]: its exit can never be known.
    pub async fn status(&self, id: &ContainerId) -> Result<ContainerStatus> {
        let status = self.observed_status(id).await?;
        if status.exit.is_none() && !status.checkpointed {
            self.monitor.ensure_supervised(id, &self.root.files(id)).await?;
        }
        Ok(status)
    }

    /// The status as the monitor's record and the runtime show it, whether or not the monitor
    /// still holds the container.
    async fn observed_status(&self, id: &ContainerId) -> Result<ContainerStatus> {
        if self.root.load(id).await?.is_some_and(|record| record.checkpointed) {
            let status = Status::Stopped;
            return Ok(ContainerStatus { id: id.clone(), status, exit: None, oom_killed: false, checkpointed: true });
        }
        let files = self.root.files(id);
        if let Some(exit) = self.monitor.exit_status(id, &files).await? {
            let (status, oom_killed) = (Status::Stopped, self.monitor.oom_killed(id, &files).await?);
            return Ok(ContainerStatus { id: id.clone(), status, exit: Some(exit), oom_killed, checkpointed: false });
        }
        let state = self.backend.state(id).await?;
        let exit = match state.status {
            // The runtime saw it stop; the monitor's event is at most a moment behind.
            Status::Stopped => Some(self.exit_after_stop(id).await?),
            _ => None,
        };
        // Recorded before the exit: once the exit is known, so is this.
        let oom_killed = exit.is_some() && self.monitor.oom_killed(id, &files).await?;
        Ok(ContainerStatus { id: id.clone(), status: state.status, exit, oom_killed, checkpointed: false })
    }

    async fn exit_after_stop(&self, id: &ContainerId) -> Result<Exit> {
        if !self.is_watched(id) {
            return Ok(self.monitor.exit_status(id, &self.root.files(id)).await?.unwrap_or(Exit::Unknown));
        }
        match tokio::time::timeout(KILL_GRACE, self.monitor.wait(id, &self.root.files(id))).await {
            Ok(exit) => exit,
            Err(_) => Ok(Exit::Unknown),
        }
    }

    /// Waits until the container has exited and says how. Driven by the monitor's events.
    /// Whether the OOM killer ended it is in [`Engine::status`] ([`ContainerStatus::oom_killed`]),
    /// recorded by the time this returns.
    pub async fn wait(&self, id: &ContainerId) -> Result<Exit> {
        let files = self.root.files(id);
        if !self.is_watched(id) {
            if let Some(exit) = self.monitor.exit_status(id, &files).await? {
                return Ok(exit);
            }
            // Made by another process (or before a restart without reconnect): watch it now.
            let state = self.backend.state(id).await?;
            match (state.status, state.pid) {
                (Status::Stopped, _) | (_, None) => return Ok(Exit::Unknown),
                (_, Some(pid)) => {
                    self.monitor.adopt(id, pid, &files).await?;
                    self.mark_watched(id);
                }
            }
        }
        self.monitor.wait(id, &files).await
    }

    /// Stops the container: its stop signal, up to `timeout` for it to exit, then SIGKILL to
    /// every process (to the init alone when rootless, where the cgroup may not be ours to
    /// signal), then up to [`KILL_GRACE`] more; past that, [`Error::DidNotStop`]. A container
    /// that is already gone is success; any other failure of the stop signal is returned as is,
    /// before any waiting or SIGKILL. Returns how it ended.
    pub async fn stop(&self, id: &ContainerId, opts: StopOptions) -> Result<Exit> {
        let _lock = self.root.lock(id).await?;
        let record = self.root.load(id).await?;
        let signal = opts.signal.unwrap_or_else(|| {
            record.as_ref().and_then(|r| Signal::from_number(r.stop_signal).ok()).unwrap_or(Signal::TERM)
        });
        if let Some(exit) = self.monitor.exit_status(id, &self.root.files(id)).await? {
            return Ok(exit);
        }
        match self.backend.kill(id, signal, KillScope::Init).await {
            Err(Error::NotFound { .. }) => {
                return Ok(self.monitor.exit_status(id, &self.root.files(id)).await?.unwrap_or(Exit::Unknown));
            }
            // It stopped since its exit was looked for: the monitor's event is on its way.
            Ok(()) | Err(Error::InvalidState { .. }) => {}
            Err(err) => return Err(err),
        }
        if let Ok(exit) = tokio::time::timeout(opts.timeout, self.wait(id)).await {
            return exit;
        }
        let scope = if self.rootless { KillScope::Init } else { KillScope::All };
        tracing::info!(%id, ?signal, timeout = ?opts.timeout, "the stop signal did not stop it; sending SIGKILL");
        gone_is_fine(self.backend.kill(id, Signal::KILL, scope).await)?;
        match tokio::time::timeout(KILL_GRACE, self.wait(id)).await {
            Ok(exit) => exit,
            Err(_) => Err(Error::DidNotStop {
                id: id.as_str().to_owned(),
                pid: record.and_then(|record| record.pid),
                waited: KILL_GRACE,
            }),
        }
    }

    /// Runs `process` in the container and waits for it: its exit code and, unless wired
    /// elsewhere, its output. It runs until it ends, however long, unless
    /// [`ExecOptions::timeout`] bounds it; on expiry (or when this future is dropped) the
    /// process and every process it started are killed (see [`OciBackend::exec`]).
    /// [`ExecOptions::detach`] is refused with [`Error::InvalidArgument`]: a process in the
    /// background is [`Engine::exec_detached`]'s.
    pub async fn exec(&self, id: &ContainerId, process: &Process, opts: ExecOptions) -> Result<ExecOutcome> {
        if opts.detach {
            return Err(Error::InvalidArgument {
                option: "ExecOptions::detach".into(),
                reason: "Engine::exec waits for its process; Engine::exec_detached starts one in the background".into(),
            });
        }
        self.backend.exec(id, process, opts).await
    }

    /// Starts `process` in the container in the background, supervised by the monitor, whatever
    /// [`ExecOptions::detach`] says. Its stdio must be wired ([`crate::ExecStdio::Wired`]): a
    /// captured one is refused with [`Error::InvalidArgument`], since nothing would read it.
    /// The session is forgotten by the monitor once waited for ([`Engine::wait_exec`]),
    /// stopped ([`Engine::exec_stop`]) or when its container is deleted. A monitor without
    /// [`Capability::Exec`] is refused with [`Error::Unsupported`] before anything runs.
    pub async fn exec_detached(&self, id: &ContainerId, process: &Process, opts: ExecOptions) -> Result<ExecSession> {
        self.monitor.require(Capability::Exec, "exec_detached")?;
        let files = self.root.files(id);
        let request = ExecRequest { id: id.clone(), process: process.clone(), options: opts, files };
        self.monitor.exec(self.backend.as_ref(), request).await
    }

    /// Waits for a background exec to end. Under a monitor that keeps its execs on disk
    /// (conmon), a session rebuilt from its fields is served by any engine over the same state
    /// root, in any process; [`Engine::exec_stop`] likewise.
    pub async fn wait_exec(&self, session: &ExecSession) -> Result<Exit> {
        self.monitor.require(Capability::Exec, "wait_exec")?;
        self.monitor.wait_exec(session, &self.root.files(&session.id)).await
    }

    /// Ends a background exec and everything it started: SIGTERM to its process, up to
    /// `timeout`, then SIGKILL and [`KILL_GRACE`] more. As its process ends, the processes it
    /// started (children, `&` jobs, orphans the container's init adopted) are SIGKILLed before
    /// this returns; only one that left its session on purpose (`setsid`) escapes. An exec
    /// that had already ended on its own is only forgotten, as by [`Engine::wait_exec`]: its
    /// session id may name other processes by then. The session is forgotten either way.
    pub async fn exec_stop(&self, session: &ExecSession, timeout: Duration) -> Result<Exit> {
        self.monitor.require(Capability::Exec, "exec_stop")?;
        self.monitor.stop_exec(session, &self.root.files(&session.id), timeout).await
    }

    /// Deletes the container (a running one only with [`DeleteMode::Force`]) and everything
    /// the engine and the monitor kept for it. A container the runtime no longer knows is
    /// `Error::NotFound`, and its leftovers here are removed all the same; one a checkpoint
    /// stopped is deleted with its images.
    pub async fn delete(&self, id: &ContainerId, mode: DeleteMode) -> Result<()> {
        let mut lock = self.root.lock(id).await?;
        let deleted = match self.backend.delete(id, mode).await {
            // Only its images were left, and they are deleted below. The record is read only
            // then: a delete the runtime did needs nothing from it.
            Err(Error::NotFound { .. }) if self.root.load(id).await?.is_some_and(|record| record.checkpointed) => {
                Ok(())
            }
            deleted => deleted,
        };
        if let Ok(()) | Err(Error::NotFound { .. }) = deleted {
            let files = self.root.files(id);
            self.monitor.release(id, &files).await?;
            self.root.forget(id).await?;
            self.watched.lock().unwrap_or_else(|p| p.into_inner()).remove(id);
            lock.remove_on_drop();
        }
        deleted
    }

    /// Every container the engine has a record of, with its status. One whose monitor was lost
    /// is listed as the runtime sees it, with a warning ([`Engine::status`] says
    /// [`Error::MonitorLost`]), so that one broken container does not hide the others.
    pub async fn list(&self) -> Result<Vec<ContainerStatus>> {
        let mut statuses = Vec::new();
        for record in self.root.records().await? {
            match self.observed_status(&record.id).await {
                Ok(status) => {
                    if status.exit.is_none()
                        && let Err(lost) =
                            self.monitor.ensure_supervised(&record.id, &self.root.files(&record.id)).await
                    {
                        tracing::warn!(id = %record.id, "{lost}");
                    }
                    statuses.push(status);
                }
                // Deleted by another process meanwhile.
                Err(Error::NotFound { .. }) => {}
                Err(err) => return Err(err),
            }
        }
        Ok(statuses)
    }

    /// Stops watching `id` and removes its recorded exit (and OOM kill).
    async fn forget_exit(&self, id: &ContainerId) -> Result<()> {
        let files = self.root.files(id);
        self.monitor.release(id, &files).await?;
        self.watched.lock().unwrap_or_else(|p| p.into_inner()).remove(id);
        for file in [files.exit_file.clone(), files.oom_file()] {
            match std::fs::remove_file(&file) {
                Err(err) if err.kind() != std::io::ErrorKind::NotFound => {
                    return Err(Error::io(format!("removing {}", file.display()), err));
                }
                _ => {}
            }
        }
        Ok(())
    }
}

/// What undoing a half-made container needs, owned, so that it can run after the call that
/// made the container was dropped.
struct RollBack {
    backend: Arc<dyn OciBackend>,
    monitor: Arc<dyn Monitor>,
    root: StateRoot,
    id: ContainerId,
    /// The record of the container this one was restored over (a restore from a kept
    /// checkpoint): put back, with the checkpoint beside it, instead of the state being removed.
    previous: Option<ContainerRecord>,
}

impl RollBack {
    /// The rollback of a restore over `previous`: the container goes, and the record it was
    /// restored from comes back, its checkpoint kept.
    fn restoring_over(mut self, previous: Option<ContainerRecord>) -> Self {
        self.previous = previous;
        self
    }

    /// `delete --force`, then the monitor's files and the engine's record (or the previous
    /// record put back); the caller holds the container's lock. Says whether the container's
    /// state is gone.
    async fn run(&self) -> bool {
        self.delete_and_release().await;
        let restored = match &self.previous {
            Some(previous) => self.root.save(previous).await,
            None => self.root.forget(&self.id).await,
        };
        if let Err(err) = restored {
            tracing::warn!(id = %self.id, %err, "undoing the container's state failed");
        }
        self.previous.is_none()
    }

    /// [`RollBack::run`] under the container's lock, which goes with the container.
    async fn run_locked(self) {
        match self.root.lock(&self.id).await {
            Ok(mut lock) => {
                if self.run().await {
                    lock.remove_on_drop();
                }
            }
            Err(err) => tracing::warn!(id = %self.id, %err, "cannot lock a container to roll it back"),
        }
    }

    /// `delete --force` and the monitor's files; the engine's record stays.
    async fn delete_and_release(&self) {
        let id = &self.id;
        match self.backend.delete(id, DeleteMode::Force).await {
            Ok(()) | Err(Error::NotFound { .. }) => {}
            Err(err) => tracing::warn!(%id, %err, "rolling back left the container behind"),
        }
        if let Err(err) = self.monitor.release(id, &self.root.files(id)).await {
            tracing::warn!(%id, %err, "releasing the monitor's files failed");
        }
    }
}

/// A call that is making a container (a create or restore waiting for the monitor, a `run`
/// between its create and its start): dropped there, it hands its rollback to a task of its
/// own, so the container it made is deleted, and whatever the monitor holds of it released,
/// without stalling the caller's executor. One way for every monitor: a monitor need not undo a
/// dropped call itself.
struct Unfinished {
    rollback: Option<RollBack>,
    pending: PendingRollbacks,
}

impl Unfinished {
    /// The start came back: the caller decides what to do with the rollback.
    fn finish(mut self) -> RollBack {
        self.rollback.take().expect("taken only here")
    }

    /// The call came back: a failure was undone by whoever failed.
    fn disarm(mut self) {
        self.rollback = None;
    }
}

impl Drop for Unfinished {
    fn drop(&mut self) {
        if let Some(rollback) = self.rollback.take() {
            match tokio::runtime::Handle::try_current() {
                Ok(runtime) => {
                    let id = rollback.id.clone();
                    let task = runtime.spawn(rollback.run_locked());
                    self.pending.lock().unwrap_or_else(|p| p.into_inner()).insert(id, task);
                }
                Err(_) => tracing::warn!(id = %rollback.id, "a dropped call could not be rolled back: no runtime"),
            }
        }
    }
}
