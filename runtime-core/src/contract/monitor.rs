//! The contract of a monitor: who holds a container's process and sees it exit.
//!
//! A monitor (conmon, or the embedding process itself) starts containers through a backend and
//! stays their parent or subreaper, so it can report exit statuses that would otherwise be lost.
//! It asks the backend for the pieces it needs and never hard-codes runtime flags. Both monitors
//! record an exit the same way on disk: the container's exit file holds the status as a decimal
//! number, 128 + the signal for a killed process, as conmon writes it; and an OOM kill as an
//! empty `oom` file in the container's directory, as conmon writes it in its persist dir.

use std::path::PathBuf;
use std::time::Duration;

use async_trait::async_trait;
use oci_spec::runtime::Process;

use crate::contract::backend::OciBackend;
use crate::contract::error::{Error, Result};
use crate::contract::exit::Exit;
use crate::contract::id::ContainerId;
use crate::contract::options::{CreateOptions, Created, ExecOptions, RestoreOptions};
use crate::contract::output::{AttachedStdio, LogOptions, LogReader, TerminalSize};

/// Where a monitor keeps what it knows of one container, inside the engine's state root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerFiles {
    /// The exit file: written once, atomically, when the container's init ends.
    pub exit_file: PathBuf,
    /// A private (0700) directory for the monitor's own files (sockets, logs, pid files).
    pub dir: PathBuf,
}

impl ContainerFiles {
    /// The OOM file: present (and empty) once the kernel's OOM killer was seen to kill a process
    /// of the container, written before its exit is recorded.
    pub fn oom_file(&self) -> PathBuf {
        self.dir.join("oom")
    }
}

/// How a container is brought up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Launch {
    /// `create`: the init waits for `start`.
    Create,
    /// `run --detach`: created and started in one runtime call.
    Run,
}

/// What to create under a monitor.
#[derive(Debug)]
pub struct CreateRequest {
    /// The container.
    pub id: ContainerId,
    /// Its bundle.
    pub bundle: PathBuf,
    /// The runtime's create options.
    pub options: CreateOptions,
    /// Create, or create and start.
    pub launch: Launch,
    /// Where the monitor records the container.
    pub files: ContainerFiles,
}

/// What to restore under a monitor.
#[derive(Debug)]
pub struct RestoreRequest {
    /// The container.
    pub id: ContainerId,
    /// Its bundle.
    pub bundle: PathBuf,
    /// The runtime's restore options.
    pub options: RestoreOptions,
    /// Where the monitor records the container.
    pub files: ContainerFiles,
}

/// What to exec, in the background, under a monitor.
#[derive(Debug)]
pub struct ExecRequest {
    /// The container.
    pub id: ContainerId,
    /// The process.
    pub process: Process,
    /// Its options (the monitor makes it detached; its stdio must be wired, not captured).
    pub options: ExecOptions,
    /// The container's files: a monitor that keeps its execs on disk keeps them in its `dir`.
    pub files: ContainerFiles,
}

/// A process exec'd in the background under a monitor.
///
/// Whether a session outlives the monitor that made it is the monitor's: conmon keeps each one
/// on disk, so a session rebuilt from these three fields is served by any engine over the same
/// state root, in any process; the direct monitor keeps them in memory only, and another
/// monitor answers its sessions with [`Error::NotSupervised`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecSession {
    /// The container it runs in.
    pub id: ContainerId,
    /// Its host pid.
    pub pid: u32,
    /// The monitor's name for it, unique in its container and safe as a file name.
    pub exec_id: String,
}

/// Something a monitor does or does not do beyond creating, waiting for and releasing
/// containers. The engine asks before it does anything, so an operation a monitor cannot serve
/// is [`Error::Unsupported`] (naming the monitor and the operation) with nothing run or written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Capability {
    /// Its containers, their output and their exit codes outlive the embedding process.
    SurvivesEmbedder,
    /// It keeps a container's output in a log it can read back.
    Logs,
    /// It attaches a client to a running container's stdio, and to a background exec's
    /// terminal.
    Attach,
    /// It resizes a container's terminal, and a background exec's.
    Resize,
    /// It starts and supervises processes exec'd in the background.
    Exec,
    /// It ends a background exec whose timeout expired, with every process the exec started.
    ExecTimeout,
    /// It records whether the kernel's OOM killer killed a process of the container.
    Oom,
    /// It restores containers from checkpoints.
    Restore,
}

impl Capability {
    /// What a monitor with this capability does, as the end of "the monitor cannot ...".
    pub fn describe(self) -> &'static str {
        match self {
            Capability::SurvivesEmbedder => "keep containers after the embedding process exits",
            Capability::Logs => "keep and read back a container's output log",
            Capability::Attach => "attach to a container's stdio",
            Capability::Resize => "resize a container's terminal",
            Capability::Exec => "supervise a process exec'd in the background",
            Capability::ExecTimeout => "end a background exec when its timeout expires",
            Capability::Oom => "record OOM kills",
            Capability::Restore => "restore a container from a checkpoint",
        }
    }
}

/// Holds containers' processes and reports how they end.
#[async_trait]
pub trait Monitor: Send + Sync {
    /// `conmon`, `direct`.
    fn name(&self) -> &str;
    /// What it can do; the engine refuses the rest before doing anything.
    fn capabilities(&self) -> &[Capability];
    /// [`Error::Unsupported`] naming this monitor and `operation` unless it has `capability`.
    fn require(&self, capability: Capability, operation: &str) -> Result<()> {
        if self.capabilities().contains(&capability) {
            return Ok(());
        }
        Err(Error::Unsupported {
            backend: format!("the {} monitor", self.name()),
            feature: operation.to_owned(),
            reason: format!("the {} monitor cannot {}", self.name(), capability.describe()),
        })
    }
    /// Creates (or runs) a container under supervision.
    async fn create(&self, backend: &dyn OciBackend, req: CreateRequest) -> Result<Created>;
    /// Restores a container from a checkpoint under supervision.
    async fn restore(&self, backend: &dyn OciBackend, req: RestoreRequest) -> Result<Created>;
    /// Starts a process in the container in the background and supervises it.
    async fn exec(&self, backend: &dyn OciBackend, req: ExecRequest) -> Result<ExecSession>;
    /// Watches a container found again after a restart, whose init is `pid`: its end is seen,
    /// though how it ended may not be ([`Exit::Unknown`]).
    async fn adopt(&self, id: &ContainerId, pid: u32, files: &ContainerFiles) -> Result<()>;
    /// The exit status if the container has exited; never blocks.
    async fn exit_status(&self, id: &ContainerId, files: &ContainerFiles) -> Result<Option<Exit>>;
    /// Waits for the container to exit, driven by events, never by a sleep loop.
    async fn wait(&self, id: &ContainerId, files: &ContainerFiles) -> Result<Exit>;
    /// [`Error::MonitorLost`] when the process that holds the container has ended without
    /// recording its exit; `Ok` while it holds it, and after the exit was recorded. Never
    /// blocks. A monitor living in the engine's own process cannot be lost apart from it.
    async fn ensure_supervised(&self, _id: &ContainerId, _files: &ContainerFiles) -> Result<()> {
        Ok(())
    }
    /// Whether the kernel's OOM killer killed a process of the container, as recorded with its
    /// exit ([`ContainerFiles::oom_file`]); false while none is recorded. Never blocks.
    async fn oom_killed(&self, _id: &ContainerId, files: &ContainerFiles) -> Result<bool> {
        let path = files.oom_file();
        path.try_exists().map_err(|err| Error::io(format!("looking for {}", path.display()), err))
    }
    /// Waits until a container this monitor created may start: [`crate::Engine::start`] awaits
    /// it before the runtime lets the init run. The direct monitor looks for the init's memory
    /// cgroup while the engine finishes the create, and must have found it before the init can
    /// end. Immediate for a monitor that needs nothing.
    async fn ready_to_start(&self, _id: &ContainerId) {}
    /// Waits for a background exec of the container whose files are `files` to end, then
    /// forgets it. What its process left running (a
    /// `&` job) is left alone, as after an exec waited for in the foreground. A monitor process
    /// that held the exec and ended without recording its exit is [`Error::MonitorLost`], and
    /// the exec is kept for [`Monitor::stop_exec`] to end.
    async fn wait_exec(&self, session: &ExecSession, files: &ContainerFiles) -> Result<Exit>;
    /// Ends a background exec and every process it started, then forgets it: SIGTERM to its
    /// process, up to `timeout`, then SIGKILL and [`crate::KILL_GRACE`] more; as the process
    /// ends, and before it is reaped, the rest of its session is SIGKILLed. The monitor does
    /// this rather than the engine because only the holder of the process can end the rest
    /// while their session id is still theirs (a reaped process's may be reused). A monitor
    /// process that held the exec and is gone ([`Error::MonitorLost`]) does not stop the stop:
    /// the exec is ended and forgotten all the same, and the error says its end is unknown.
    async fn stop_exec(&self, session: &ExecSession, files: &ContainerFiles, timeout: Duration) -> Result<Exit>;
    /// Forgets a deleted container and removes the monitor's files for it.
    async fn release(&self, id: &ContainerId, files: &ContainerFiles) -> Result<()>;
    /// Attaches a client to a running container's stdio ([`Capability::Attach`]).
    async fn attach(&self, _id: &ContainerId, _files: &ContainerFiles) -> Result<Box<dyn AttachedStdio>> {
        Err(not_implemented(self, Capability::Attach, "attach"))
    }
    /// Resizes a container's terminal ([`Capability::Resize`]).
    async fn resize(&self, _id: &ContainerId, _files: &ContainerFiles, _size: TerminalSize) -> Result<()> {
        Err(not_implemented(self, Capability::Resize, "resize"))
    }
    /// Attaches a client to a running background exec's terminal ([`Capability::Attach`]): its
    /// output as it comes, and its input.
    async fn attach_exec(&self, _session: &ExecSession, _files: &ContainerFiles) -> Result<Box<dyn AttachedStdio>> {
        Err(not_implemented(self, Capability::Attach, "attach_exec"))
    }
    /// Resizes a running background exec's terminal ([`Capability::Resize`]).
    async fn resize_exec(&self, _session: &ExecSession, _files: &ContainerFiles, _size: TerminalSize) -> Result<()> {
        Err(not_implemented(self, Capability::Resize, "resize_exec"))
    }
    /// Closes and opens again a container's log file, so that one moved away (rotated by the
    /// caller) is written anew ([`Capability::Logs`]).
    async fn reopen_log(&self, _id: &ContainerId, _files: &ContainerFiles) -> Result<()> {
        Err(not_implemented(self, Capability::Logs, "reopen_log"))
    }
    /// Reads a container's log back ([`Capability::Logs`]).
    async fn logs(&self, _id: &ContainerId, _files: &ContainerFiles, _opts: LogOptions) -> Result<Box<dyn LogReader>> {
        Err(not_implemented(self, Capability::Logs, "logs"))
    }
}

/// What a monitor that does not implement `operation` says: the refusal of
/// [`Monitor::require`], or, for a monitor that declares `capability` all the same, that it does
/// not implement it.
fn not_implemented<M: Monitor + ?Sized>(monitor: &M, capability: Capability, operation: &str) -> Error {
    match monitor.require(capability, operation) {
        Err(refused) => refused,
        Ok(()) => Error::Unsupported {
            backend: format!("the {} monitor", monitor.name()),
            feature: operation.to_owned(),
            reason: format!(
                "the {} monitor declares that it can {} but does not implement it",
                monitor.name(),
                capability.describe()
            ),
        },
    }
}
