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

mod checkpoint;
mod direct;
mod pidfd;
mod state_root;
#[cfg(test)]
mod tests;

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use oci_spec::runtime::{LinuxResources, Process};

use crate::contract::backend::OciBackend;
use crate::contract::error::{Error, Result};
use crate::contract::exit::Exit;
use crate::contract::id::ContainerId;
use crate::contract::monitor::{CreateRequest, ExecRequest, ExecSession, Launch, Monitor};
use crate::contract::options::{CreateOptions, Created, DeleteMode, ExecOptions, ExecOutcome, KillScope};
use crate::contract::signal::Signal;
use crate::contract::state::Status;

pub use checkpoint::{CheckpointReport, ContainerCheckpointOptions, ContainerRestoreOptions, Export, RestoreReport};
pub use direct::DirectMonitor;
use state_root::ContainerRecord;
pub use state_root::StateRoot;

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
    /// Not root: `stop`'s SIGKILL goes to the init alone, since a rootless container's cgroup
    /// may not be ours to signal (as podman does).
    rootless: bool,
}

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
        let rootless = !nix::unistd::geteuid().is_root();
        Engine { backend, monitor, root, watched: Mutex::new(HashSet::new()), rootless }
    }

    /// An engine that finds again the containers recorded under `root` (after the embedding
    /// program restarted): live ones are watched from now on; one that ended while nobody
    /// watched reports [`Exit::Unknown`], never a guessed code. A root holding a container of
    /// another backend or monitor is [`Error::ForeignStateRoot`], before anything is touched.
    pub async fn reconnect(backend: Arc<dyn OciBackend>, monitor: Arc<dyn Monitor>, root: StateRoot) -> Result<Self> {
        let engine = Engine::new(backend, monitor, root);
        let records = engine.root.records()?;
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
        if let Err(err) = self.start(id).await {
            self.roll_back(id).await;
            return Err(err);
        }
        Ok(created)
    }

    async fn bring_up(&self, id: &ContainerId, bundle: &Path, opts: CreateOptions, launch: Launch) -> Result<Created> {
        let _lock = self.root.lock(id).await?;
        let known = self.root.load(id)?.is_some();
        let files = self.root.files(id);
        if !known {
            // Left by a container of the same id that was deleted outside the engine.
            self.root.forget(id)?;
        }
        let request = CreateRequest { id: id.clone(), bundle: bundle.to_path_buf(), options: opts, launch, files };
        let created = match self.monitor.create(self.backend.as_ref(), request).await {
            Ok(created) => created,
            Err(err) => {
                // A refusal made nothing (and an existing container of this id keeps its files);
                // an unfinished call was undone by the backend.
                if !known {
                    self.root.forget(id)?;
                }
                return Err(err);
            }
        };
        self.mark_watched(id);
        if let Err(err) = self.root.save(&self.record(id, bundle, created)) {
            self.roll_back(id).await;
            return Err(err);
        }
        Ok(created)
    }

    /// What the engine remembers of a container it just made.
    fn record(&self, id: &ContainerId, bundle: &Path, created: Created) -> ContainerRecord {
        ContainerRecord {
            id: id.clone(),
            bundle: bundle.to_path_buf(),
            backend: self.backend.name().to_owned(),
            monitor: self.monitor.name().to_owned(),
            pid: created.pid,
            stop_signal: stop_signal_of(bundle).number(),
            checkpointed: false,
        }
    }

    /// Removes a container the engine could not finish making: `delete --force`, then the
    /// monitor's files and the engine's record.
    async fn roll_back(&self, id: &ContainerId) {
        match self.backend.delete(id, DeleteMode::Force).await {
            Ok(()) | Err(Error::NotFound { .. }) => {}
            Err(err) => tracing::warn!(%id, %err, "rolling back a create left the container behind"),
        }
        let files = self.root.files(id);
        if let Err(err) = self.monitor.release(id, &files).await {
            tracing::warn!(%id, %err, "releasing the monitor's files failed");
        }
        if let Err(err) = self.root.forget(id) {
            tracing::warn!(%id, %err, "removing the container's state failed");
        }
    }

    /// Starts a created container's process.
    pub async fn start(&self, id: &ContainerId) -> Result<()> {
        let _lock = self.root.lock(id).await?;
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
    /// it, no runtime call is made.
    pub async fn status(&self, id: &ContainerId) -> Result<ContainerStatus> {
        if self.root.load(id)?.is_some_and(|record| record.checkpointed) {
            return Ok(ContainerStatus { id: id.clone(), status: Status::Stopped, exit: None, checkpointed: true });
        }
        let files = self.root.files(id);
        if let Some(exit) = self.monitor.exit_status(id, &files).await? {
            let status = Status::Stopped;
            return Ok(ContainerStatus { id: id.clone(), status, exit: Some(exit), checkpointed: false });
        }
        let state = self.backend.state(id).await?;
        let exit = match state.status {
            // The runtime saw it stop; the monitor's event is at most a moment behind.
            Status::Stopped => Some(self.exit_after_stop(id).await?),
            _ => None,
        };
        Ok(ContainerStatus { id: id.clone(), status: state.status, exit, checkpointed: false })
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
        let record = self.root.load(id)?;
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
                pid: record.map(|record| record.pid),
                waited: KILL_GRACE,
            }),
        }
    }

    /// Runs `process` in the container and waits for it: its exit code and, unless wired
    /// elsewhere, its output.
    pub async fn exec(&self, id: &ContainerId, process: &Process, opts: ExecOptions) -> Result<ExecOutcome> {
        self.backend.exec(id, process, ExecOptions { detach: false, ..opts }).await
    }

    /// Starts `process` in the container in the background, supervised by the monitor.
    pub async fn exec_detached(&self, id: &ContainerId, process: &Process, opts: ExecOptions) -> Result<ExecSession> {
        let request = ExecRequest { id: id.clone(), process: process.clone(), options: opts };
        self.monitor.exec(self.backend.as_ref(), request).await
    }

    /// Waits for a background exec to end.
    pub async fn wait_exec(&self, session: &ExecSession) -> Result<Exit> {
        self.monitor.wait_exec(session).await
    }

    /// Ends a background exec: SIGTERM, up to `timeout`, then SIGKILL and [`KILL_GRACE`] more.
    pub async fn exec_stop(&self, session: &ExecSession, timeout: Duration) -> Result<Exit> {
        self.monitor.signal_exec(session, Signal::TERM).await?;
        if let Ok(exit) = tokio::time::timeout(timeout, self.monitor.wait_exec(session)).await {
            return exit;
        }
        self.monitor.signal_exec(session, Signal::KILL).await?;
        match tokio::time::timeout(KILL_GRACE, self.monitor.wait_exec(session)).await {
            Ok(exit) => exit,
            Err(_) => Err(Error::DidNotStop {
                id: format!("{} (exec)", session.id),
                pid: Some(session.pid),
                waited: KILL_GRACE,
            }),
        }
    }

    /// Deletes the container (a running one only with [`DeleteMode::Force`]) and everything
    /// the engine and the monitor kept for it. A container the runtime no longer knows is
    /// `Error::NotFound`, and its leftovers here are removed all the same; one a checkpoint
    /// stopped is deleted with its images.
    pub async fn delete(&self, id: &ContainerId, mode: DeleteMode) -> Result<()> {
        let mut lock = self.root.lock(id).await?;
        let checkpointed = self.root.load(id)?.is_some_and(|record| record.checkpointed);
        let deleted = match self.backend.delete(id, mode).await {
            // Only its images were left, and they are deleted below.
            Err(Error::NotFound { .. }) if checkpointed => Ok(()),
            deleted => deleted,
        };
        if let Ok(()) | Err(Error::NotFound { .. }) = deleted {
            let files = self.root.files(id);
            self.monitor.release(id, &files).await?;
            self.root.forget(id)?;
            self.watched.lock().unwrap_or_else(|p| p.into_inner()).remove(id);
            lock.remove_on_drop();
        }
        deleted
    }

    /// Every container the engine has a record of, with its status.
    pub async fn list(&self) -> Result<Vec<ContainerStatus>> {
        let mut statuses = Vec::new();
        for record in self.root.records()? {
            match self.status(&record.id).await {
                Ok(status) => statuses.push(status),
                // Deleted by another process meanwhile.
                Err(Error::NotFound { .. }) => {}
                Err(err) => return Err(err),
            }
        }
        Ok(statuses)
    }

    /// Stops watching `id` and removes its recorded exit.
    async fn forget_exit(&self, id: &ContainerId) -> Result<()> {
        let files = self.root.files(id);
        self.monitor.release(id, &files).await?;
        self.watched.lock().unwrap_or_else(|p| p.into_inner()).remove(id);
        match std::fs::remove_file(&files.exit_file) {
            Err(err) if err.kind() != std::io::ErrorKind::NotFound => {
                Err(Error::io(format!("removing {}", files.exit_file.display()), err))
            }
            _ => Ok(()),
        }
    }
}
