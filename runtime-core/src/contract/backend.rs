//! The contract every runtime backend fulfils.

use std::ffi::OsString;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use oci_spec::runtime::{LinuxResources, Process};

use crate::contract::error::{Error, Failure, Result};
use crate::contract::features::{CgroupManager, Features};
use crate::contract::id::ContainerId;
use crate::contract::options::{
    CheckpointOptions, CreateOptions, Created, DeleteMode, ExecOptions, ExecOutcome, KillScope, RestoreOptions,
};
use crate::contract::signal::Signal;
use crate::contract::state::ContainerState;
use crate::contract::stats::{EventStream, Stats};
use crate::contract::version::RuntimeVersion;

/// One OCI runtime: runc, crun, youki, or one loaded from a plugin.
///
/// Operations the runtime lacks return `Error::Unsupported`, decided by [`OciBackend::features`]
/// before anything runs. A backend knows nothing of monitors; a monitor asks it for the pieces
/// it needs ([`OciBackend::binary`], [`OciBackend::global_args`]).
#[async_trait]
pub trait OciBackend: Send + Sync {
    /// `runc`, `crun`, `youki`, or the plugin's name.
    fn name(&self) -> &str;
    /// The runtime binary.
    fn binary(&self) -> &Path;
    /// The flags every call needs (`--root`, `--cgroup-manager`...), e.g. for conmon's
    /// `--runtime-arg`.
    fn global_args(&self) -> Vec<OsString>;
    /// The cgroup manager the runtime is driven with, when the backend chose one (its
    /// [`OciBackend::global_args`] select it); `None` leaves it to the runtime. A monitor that
    /// must know it asks here (conmon's `-s` goes with the systemd one).
    fn cgroup_manager(&self) -> Option<CgroupManager> {
        None
    }
    /// What the runtime says about its version.
    async fn version(&self) -> Result<RuntimeVersion>;
    /// The capabilities on this host, probed once and cached.
    async fn features(&self) -> Result<Arc<Features>>;
    /// Creates a container from `bundle`; its process waits for [`OciBackend::start`]. The
    /// descriptors in `opts` go to the runtime and are closed in the caller. A create that fails,
    /// times out or is dropped leaves nothing behind: no process, no runtime state, the id free.
    /// A bundle without a `config.json` is `Error::NotFound`, one whose `config.json` is no JSON
    /// document `Error::InvalidArgument`, before the runtime runs.
    async fn create(&self, id: &ContainerId, bundle: &Path, opts: CreateOptions) -> Result<Created>;
    /// Whether [`OciBackend::run`] is there: the runtime's dialect has a `run` command.
    fn can_run(&self) -> bool;
    /// Creates and starts a container in one runtime call (`run --detach`), for runtimes whose
    /// dialect has it; the same guarantees as `create`. `Error::Unsupported` otherwise.
    async fn run(&self, id: &ContainerId, bundle: &Path, opts: CreateOptions) -> Result<Created>;
    /// Starts the user process of a created container.
    async fn start(&self, id: &ContainerId) -> Result<()>;
    /// The container's state.
    async fn state(&self, id: &ContainerId) -> Result<ContainerState>;
    /// Every container under the runtime's root.
    async fn list(&self) -> Result<Vec<ContainerState>>;
    /// Sends `signal` to the init process or to every process of the container.
    async fn kill(&self, id: &ContainerId, signal: Signal, scope: KillScope) -> Result<()>;
    /// Deletes a container: only a stopped one, or any with [`DeleteMode::Force`].
    async fn delete(&self, id: &ContainerId, mode: DeleteMode) -> Result<()>;
    /// Freezes every process of the container.
    async fn pause(&self, id: &ContainerId) -> Result<()>;
    /// Thaws a paused container.
    async fn resume(&self, id: &ContainerId) -> Result<()>;
    /// Runs `process` in the container. Waited for (not [`ExecOptions::detach`]), it runs until
    /// its process ends unless [`ExecOptions::timeout`] bounds it: there is no implicit limit.
    /// A timeout, or dropping the call before it returned, kills the process and every process
    /// it started (they share the session the runtime makes for it); one that left that
    /// session on purpose (`setsid`) is out of reach. Refused with [`Error::InvalidArgument`]
    /// before anything runs: `tty` without a console socket, captured output of a detached exec.
    ///
    /// [`Error::InvalidArgument`]: crate::Error::InvalidArgument
    async fn exec(&self, id: &ContainerId, process: &Process, opts: ExecOptions) -> Result<ExecOutcome>;
    /// The host pids of the container's processes.
    async fn ps(&self, id: &ContainerId) -> Result<Vec<u32>>;
    /// Changes the container's resource limits.
    async fn update(&self, id: &ContainerId, resources: &LinuxResources) -> Result<()>;
    /// Dumps the container with CRIU.
    async fn checkpoint(&self, id: &ContainerId, opts: &CheckpointOptions) -> Result<()>;
    /// Creates and starts a container from a checkpoint; like `create`, a failed or dropped
    /// restore leaves nothing behind.
    async fn restore(&self, id: &ContainerId, bundle: &Path, opts: RestoreOptions) -> Result<Created>;
    /// The flags of the runtime's restore command that say how CRIU restores (`opts` but the
    /// image, bundle, pid file, console and stdio), for a monitor that runs the restore itself
    /// (conmon's `--runtime-opt`). Refused like [`OciBackend::restore`] before anything runs.
    async fn restore_option_args(&self, _opts: &RestoreOptions) -> Result<Vec<OsString>> {
        Err(Error::Unsupported {
            backend: self.name().to_owned(),
            feature: "restore through a monitor".to_owned(),
            reason: "the backend does not say how its runtime's restore is spelled".to_owned(),
        })
    }
    /// The container's resource usage now (cpu, memory, pids, block I/O).
    async fn stats(&self, id: &ContainerId) -> Result<Stats>;
    /// Statistics every `interval` (and out-of-memory events where the runtime reports them),
    /// until the container stops or the stream is dropped.
    async fn events(&self, id: &ContainerId, interval: Duration) -> Result<EventStream>;

    /// The typed error for a failure of this runtime that another process saw and relayed
    /// (conmon hands back the runtime's own words on its sync pipe): classified exactly as a
    /// failure of the backend's own calls (`NotFound`, `AlreadyExists`, `InvalidState`...). A
    /// backend that cannot read its runtime's words keeps it as [`Error::RuntimeFailed`].
    fn classify_failure(&self, _id: Option<&ContainerId>, failure: Failure) -> Error {
        Error::RuntimeFailed(Box::new(failure))
    }

    /// Whether a relayed failure (as for [`OciBackend::classify_failure`]) is one the runtime
    /// meets before it does anything, and the same call may not meet again: a monitor that runs
    /// the runtime itself then undoes the attempt and runs it once more, as the backend does
    /// with its own calls. No failure is, unless the backend knows its runtime's.
    fn is_transient(&self, _failure: &Failure) -> bool {
        false
    }

    /// Waits until the rollbacks of dropped calls (which run in the background, never on the
    /// caller's executor) have finished, and returns what they could not undo: empty when
    /// everything was. Call it before a program that dropped calls exits, and in tests before
    /// looking for leftovers. A backend without background work has nothing to wait for.
    async fn settle(&self) -> Vec<Error> {
        Vec::new()
    }
}
