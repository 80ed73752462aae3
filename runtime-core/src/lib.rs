#![doc = include_str!("../README.md")]
#![deny(missing_docs)]

mod backend;
mod cli;
mod cli_backend;
mod config;
pub mod dialect;
mod error;
mod features;
mod host;
mod id;
mod monitor;
mod options;
pub mod plugin;
mod probe;
mod signal;
mod state;
mod version;

pub use backend::OciBackend;
pub use cli::{Call, CliRuntime, Finished, Input, Sink};
pub use cli_backend::{CliBackend, RuntimeFamily};
pub use config::{DEFAULT_OUTPUT_LIMIT, DEFAULT_TIMEOUT, RuntimeConfig};
pub use dialect::Dialect;
pub use error::{Error, Failure, PluginProblem, Result, Termination};
pub use features::{CgroupManager, Features, Probe, Support};
pub use host::{HostCheck, HostVerdict};
pub use id::{ContainerId, MAX_ID_LEN};
pub use monitor::{CreateRequest, Created, ExecRequest, ExecSession, ExitStatus, Monitor};
pub use options::{
    CheckpointOptions, ContainerStdio, CreateOptions, ExecOptions, ExecOutcome, ManageCgroupsMode, RestoreOptions,
    StdioPipes,
};
pub use probe::criu_reason;
pub use signal::Signal;
pub use state::{ContainerState, Status};
pub use version::{RuntimeVersion, Version};

/// The OCI types callers need (`Spec`, `Process`, `LinuxResources`...), re-exported so they
/// match the version this crate was built with.
pub use oci_spec;
