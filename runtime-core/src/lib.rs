#![doc = include_str!("../README.md")]
#![deny(missing_docs)]

mod blocking;
mod caller;
mod cgroup_layout;
pub mod checkpoint;
mod cli;
mod console;
mod contract;
mod engine;
mod exec_tree;
pub mod plugin;

pub use caller::Caller;
pub use cgroup_layout::CgroupLayout;
pub use cli::backend::{CliBackend, RuntimeFamily};
pub use cli::config::{DEFAULT_OUTPUT_LIMIT, DEFAULT_TIMEOUT, RuntimeConfig};
pub use cli::dialect::{self, Dialect};
pub use cli::probe::host_support;
pub use console::{Console, ConsoleSocket};
pub use contract::backend::OciBackend;
pub use contract::error::{Error, Existence, Failure, PluginProblem, Result, WrongState};
pub use contract::exit::Exit;
pub use contract::features::{CgroupManager, Features, Probe, Support};
pub use contract::host::{HostCheck, HostVerdict};
pub use contract::id::{ContainerId, MAX_ID_LEN};
pub use contract::monitor::{
    Capability, ContainerFiles, CreateRequest, ExecRequest, ExecSession, Launch, Monitor, RestoreRequest,
};
pub use contract::options::{
    AsyncStdioPipes, Captured, CheckpointOptions, ContainerStdio, CreateOptions, Created, DeleteMode, ExecOptions,
    ExecOutcome, ExecStdio, ExitCommand, KillScope, ManageCgroupsMode, PortProtocol, PortReservation, RestoreOptions,
    StdioPipes, SystemdPassthrough, process,
};
pub use contract::output::{
    AttachStdin, AttachedStdio, LogDriver, LogLine, LogOptions, LogReader, MonitorStdio, OutputChunk, OutputStream,
    TerminalSize,
};
pub use contract::signal::Signal;
pub use contract::state::{ContainerState, Status};
pub use contract::stats::{
    BlkioEntry, BlkioStats, CpuStats, Event, EventSource, EventStream, MemoryStats, MemoryUsage, PidStats, Stats,
    Throttling,
};
pub use contract::version::{RuntimeVersion, Version};
pub use engine::{
    CheckpointReport, ContainerCheckpointOptions, ContainerRestoreOptions, ContainerStatus, DEFAULT_LOCK_WAIT,
    DEFAULT_STOP_TIMEOUT, DirectMonitor, Engine, Export, KILL_GRACE, RestoreReport, STOP_SIGNAL_ANNOTATION, StateRoot,
    StopOptions,
};
pub use exec_tree::ExecTree;

/// The OCI types callers need (`Spec`, `Process`, `LinuxResources`...), re-exported so they
/// match the version this crate was built with.
pub use oci_spec;
