#![doc = include_str!("../README.md")]
#![deny(missing_docs)]

mod cli;
mod console;
mod contract;
pub mod plugin;

pub use cli::backend::{CliBackend, RuntimeFamily};
pub use cli::config::{DEFAULT_OUTPUT_LIMIT, DEFAULT_TIMEOUT, RuntimeConfig};
pub use cli::dialect::{self, Dialect};
pub use cli::driver::{Call, CliRuntime, Finished, Input, Sink};
pub use cli::probe::criu_reason;
pub use console::{Console, ConsoleSocket};
pub use contract::backend::OciBackend;
pub use contract::error::{Error, Failure, PluginProblem, Result};
pub use contract::exit::Exit;
pub use contract::features::{CgroupManager, Features, Probe, Support};
pub use contract::host::{HostCheck, HostVerdict};
pub use contract::id::{ContainerId, MAX_ID_LEN};
pub use contract::monitor::{CreateRequest, Created, ExecRequest, ExecSession, Monitor};
pub use contract::options::{
    CheckpointOptions, ContainerStdio, CreateOptions, ExecOptions, ExecOutcome, ManageCgroupsMode, RestoreOptions,
    StdioPipes,
};
pub use contract::signal::Signal;
pub use contract::state::{ContainerState, Status};
pub use contract::stats::{
    BlkioEntry, BlkioStats, CpuStats, Event, EventSource, EventStream, MemoryStats, MemoryUsage, PidStats, Stats,
    Throttling,
};
pub use contract::version::{RuntimeVersion, Version};

/// The OCI types callers need (`Spec`, `Process`, `LinuxResources`...), re-exported so they
/// match the version this crate was built with.
pub use oci_spec;
