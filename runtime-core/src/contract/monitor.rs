//! The contract of a monitor: who holds a container's process and sees it exit.
//!
//! A monitor (conmon, or the embedding process itself) starts containers through a backend and
//! stays their parent or subreaper, so it can report exit statuses that would otherwise be lost.
//! It asks the backend for the pieces it needs and never hard-codes runtime flags.

use std::path::PathBuf;

use async_trait::async_trait;
use oci_spec::runtime::Process;

use crate::contract::backend::OciBackend;
use crate::contract::error::Result;
use crate::contract::exit::Exit;
use crate::contract::id::ContainerId;
use crate::contract::options::{CreateOptions, Created, ExecOptions};

/// What to create under a monitor.
#[derive(Debug)]
pub struct CreateRequest {
    /// The container.
    pub id: ContainerId,
    /// Its bundle.
    pub bundle: PathBuf,
    /// The runtime's create options.
    pub options: CreateOptions,
}

/// What to exec under a monitor.
#[derive(Debug)]
pub struct ExecRequest {
    /// The container.
    pub id: ContainerId,
    /// The process.
    pub process: Process,
    /// Its options.
    pub options: ExecOptions,
}

/// A process exec'd under a monitor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExecSession {
    /// Its pid.
    pub pid: u32,
}

/// Holds containers' processes and reports how they end.
#[async_trait]
pub trait Monitor: Send + Sync {
    /// `conmon`, `direct`.
    fn name(&self) -> &str;
    /// Creates a container as the monitor's child.
    async fn create(&self, backend: &dyn OciBackend, req: CreateRequest) -> Result<Created>;
    /// Execs a process the monitor supervises.
    async fn exec(&self, backend: &dyn OciBackend, req: ExecRequest) -> Result<ExecSession>;
    /// The exit status if the container has exited; never blocks.
    async fn exit_status(&self, id: &ContainerId) -> Result<Option<Exit>>;
    /// Waits for the container to exit, driven by events, never by a sleep loop.
    async fn wait(&self, id: &ContainerId) -> Result<Exit>;
    /// Releases what the monitor holds for a deleted container.
    async fn release(&self, id: &ContainerId) -> Result<()>;
}
