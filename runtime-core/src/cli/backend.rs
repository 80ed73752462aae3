//! [`CliBackend`]: the one implementation of [`OciBackend`] for every runtime driven through its
//! command line (runc, crun, youki, plugins).
//!
//! What differs between runtimes is data: a [`RuntimeFamily`] names the runtime, picks its
//! [`Dialect`] for the version found, and lists the host conditions it needs. Everything else —
//! the create that never hands the container a pipe the library reads, rollback of a timed-out
//! create, exec through a 0600 process file, gating of checkpoint on probed features — is written
//! once here.

use std::ffi::OsString;
use std::io::Write;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use oci_spec::runtime::LinuxResources;
use tokio::sync::OnceCell;

use crate::cli::config::RuntimeConfig;
use crate::cli::dialect::{Dialect, ListFormat, Missing, ResourcesInput, ids_from_list_table};
use crate::cli::driver::{Call, CliRuntime, Input, Sink};
use crate::cli::events::{self, StatsShape};
use crate::cli::probe::{probe_features, run_probe};
use crate::contract::backend::OciBackend;
use crate::contract::error::{Error, Result};
use crate::contract::exit::Exit;
use crate::contract::features::{Features, Support};
use crate::contract::host::{HostCheck, HostVerdict};
use crate::contract::id::ContainerId;
use crate::contract::options::{
    CheckpointOptions, ContainerStdio, CreateOptions, ExecOptions, ExecOutcome, RestoreOptions,
};
use crate::contract::signal::Signal;
use crate::contract::state::{ContainerState, excerpt};
use crate::contract::stats::{EventStream, Stats};
use crate::contract::version::RuntimeVersion;

/// What a backend crate (or a plugin) contributes to a [`CliBackend`].
pub trait RuntimeFamily: Send + Sync + std::fmt::Debug {
    /// The backend's name (`runc`).
    fn name(&self) -> &str;
    /// The binary looked up in `PATH` when the config names none.
    fn default_binary(&self) -> PathBuf;
    /// The dialect of this runtime at `version`.
    fn dialect(&self, version: &RuntimeVersion) -> Dialect;
    /// Host conditions this runtime needs.
    fn host_checks(&self) -> Vec<Arc<dyn HostCheck>> {
        Vec::new()
    }
}

/// A runtime driven through its command line.
#[derive(Debug)]
pub struct CliBackend {
    family: Arc<dyn RuntimeFamily>,
    cli: CliRuntime,
    version: RuntimeVersion,
    criu: PathBuf,
    host_checks: Vec<Arc<dyn HostCheck>>,
    features: OnceCell<Arc<Features>>,
}

impl CliBackend {
    /// Finds the binary, asks its version, and picks the dialect for it.
    pub async fn connect(family: Arc<dyn RuntimeFamily>, config: RuntimeConfig) -> Result<Self> {
        let binary = resolve_binary(config.binary.clone().unwrap_or_else(|| family.default_binary()))?;
        let probe = run_probe(&binary, &["--version"], config.timeout).await;
        if probe.status != Some(0) {
            return Err(Error::parse(
                format!("`{} --version`", binary.display()),
                format!("exit {:?}: {}", probe.status, excerpt(probe.output.as_bytes())),
            ));
        }
        let version = RuntimeVersion::parse(&probe.output)?;
        Self::with_version(family, config, binary, version)
    }

    /// A backend for a runtime whose version is already known; runs nothing.
    pub fn with_version(
        family: Arc<dyn RuntimeFamily>,
        config: RuntimeConfig,
        binary: PathBuf,
        version: RuntimeVersion,
    ) -> Result<Self> {
        let dialect = family.dialect(&version);
        let global_args = dialect.global_args(&config).map_err(|missing| unsupported(family.name(), missing))?;
        let cli = CliRuntime::new(
            binary,
            global_args,
            Arc::new(dialect),
            config.timeout,
            config.output_limit,
            config.pass_notify_socket,
        );
        let criu = config.criu.clone().unwrap_or_else(|| PathBuf::from("criu"));
        let host_checks = family.host_checks();
        Ok(CliBackend { family, cli, version, criu, host_checks, features: OnceCell::new() })
    }

    /// The dialect in use.
    pub fn dialect(&self) -> &Dialect {
        self.cli.dialect()
    }

    /// Argv the dialect built, or `Unsupported` for what it cannot say.
    fn argv(&self, built: Result<Vec<OsString>, Missing>) -> Result<Vec<OsString>> {
        built.map_err(|missing| unsupported(self.family.name(), missing))
    }

    /// Refuses an operation whose probed support is missing, with the probe's reason.
    fn require(&self, feature: &str, support: &Support) -> Result<()> {
        match support.reason() {
            None => Ok(()),
            Some(reason) => Err(Error::Unsupported {
                backend: self.family.name().to_owned(),
                feature: feature.to_owned(),
                reason: reason.to_owned(),
            }),
        }
    }

    fn check_host(&self) -> Result<()> {
        for check in &self.host_checks {
            if let HostVerdict::Incompatible { problem, fix, .. } = check.check() {
                return Err(Error::HostIncompatible { backend: self.family.name().to_owned(), problem, fix });
            }
        }
        Ok(())
    }

    async fn simple(&self, id: &ContainerId, built: Result<Vec<OsString>, Missing>) -> Result<()> {
        self.cli.run_ok(Call::new(self.argv(built)?).for_container(id)).await.map(drop)
    }

    /// Runs a call that makes a container (create, restore) with the container's stdio; if it
    /// times out, removes whatever the runtime left, so nothing keeps running unseen.
    async fn run_creating(
        &self,
        id: &ContainerId,
        args: Vec<OsString>,
        stdio: &ContainerStdio,
        extra_fds: &[OwnedFd],
        timeout: Option<std::time::Duration>,
    ) -> Result<()> {
        let (stdin, stdout, stderr) = container_stdio(stdio)?;
        let extra_fds = duplicate(extra_fds)?;
        let call =
            Call { args, id: Some(id.clone()), stdin, stdout, stderr, timeout, kill_on_timeout: None, extra_fds };
        match self.cli.run_ok(call).await {
            Err(err @ Error::Timeout { .. }) => {
                self.roll_back_create(id).await;
                Err(err)
            }
            other => other.map(drop),
        }
    }

    /// Removes what a create that did not finish may have left.
    async fn roll_back_create(&self, id: &ContainerId) {
        match self.simple(id, self.dialect().delete_args(id, true)).await {
            Ok(()) | Err(Error::NotFound { .. }) => {}
            Err(err) => tracing::warn!(%id, %err, "rolling back a failed create left something behind"),
        }
    }
}

impl CliBackend {
    /// The shape of the runtime's statistics, once the probe has found its `events` command.
    async fn events_shape(&self) -> Result<StatsShape> {
        let features = self.features().await?;
        self.require("events", &features.events)?;
        let events = self.dialect().events_command().map_err(|missing| unsupported(self.family.name(), missing))?;
        Ok(events.stats)
    }
}

fn unsupported(backend: &str, missing: Missing) -> Error {
    Error::Unsupported { backend: backend.to_owned(), feature: missing.feature, reason: missing.reason }
}

fn resolve_binary(binary: PathBuf) -> Result<PathBuf> {
    which::which(&binary).map_err(|err| Error::BinaryNotFound {
        path: binary,
        source: std::io::Error::new(std::io::ErrorKind::NotFound, err.to_string()),
    })
}

/// Copies of the caller's descriptors for one call (the options are borrowed).
fn duplicate(fds: &[OwnedFd]) -> Result<Vec<OwnedFd>> {
    fds.iter().map(|fd| fd.try_clone().map_err(|err| Error::io("duplicating a descriptor", err))).collect()
}

/// The runtime's stdio for a container process: it inherits them.
fn container_stdio(stdio: &ContainerStdio) -> Result<(Input, Sink, Sink)> {
    let dup = |fd: &Option<OwnedFd>| -> Result<Option<OwnedFd>> {
        fd.as_ref().map(|fd| fd.try_clone().map_err(|err| Error::io("duplicating a descriptor", err))).transpose()
    };
    Ok(match stdio {
        ContainerStdio::Null => (Input::Null, Sink::Null, Sink::Null),
        ContainerStdio::Inherit => (Input::Inherit, Sink::Inherit, Sink::Inherit),
        ContainerStdio::Fds { stdin, stdout, stderr } => (
            dup(stdin)?.map_or(Input::Null, Input::Fd),
            dup(stdout)?.map_or(Sink::Null, Sink::Fd),
            dup(stderr)?.map_or(Sink::Null, Sink::Fd),
        ),
    })
}

/// Writes `contents` to a new file only its owner can read.
fn write_private(path: &Path, contents: &[u8]) -> Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let context = || format!("writing {}", path.display());
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|err| Error::io(context(), err))?;
    file.write_all(contents).map_err(|err| Error::io(context(), err))
}

fn temp_file(prefix: &str) -> Result<tempfile::NamedTempFile> {
    // tempfile creates files with mode 0600.
    tempfile::Builder::new().prefix(prefix).tempfile().map_err(|err| Error::io("creating a temp file", err))
}

fn read_pid_file(path: &Path) -> Result<u32> {
    let text =
        std::fs::read_to_string(path).map_err(|err| Error::io(format!("reading pid file {}", path.display()), err))?;
    text.trim().parse().map_err(|_| {
        Error::parse(format!("pid file {}", path.display()), format!("{:?} is not a pid", excerpt(text.as_bytes())))
    })
}

#[async_trait]
impl OciBackend for CliBackend {
    fn name(&self) -> &str {
        self.family.name()
    }

    fn binary(&self) -> &Path {
        self.cli.binary()
    }

    fn global_args(&self) -> Vec<OsString> {
        self.cli.global_args().to_vec()
    }

    async fn version(&self) -> Result<RuntimeVersion> {
        Ok(self.version.clone())
    }

    async fn features(&self) -> Result<Arc<Features>> {
        let features = self
            .features
            .get_or_init(|| async {
                Arc::new(probe_features(&self.cli, self.version.clone(), &self.criu, &self.host_checks).await)
            })
            .await;
        Ok(Arc::clone(features))
    }

    async fn create(&self, id: &ContainerId, bundle: &Path, opts: &CreateOptions) -> Result<()> {
        self.check_host()?;
        let args = self.argv(self.dialect().create_args(id, bundle, opts))?;
        self.run_creating(id, args, &opts.stdio, &opts.preserve_fds, opts.timeout).await
    }

    async fn start(&self, id: &ContainerId) -> Result<()> {
        self.simple(id, self.dialect().start_args(id)).await
    }

    async fn state(&self, id: &ContainerId) -> Result<ContainerState> {
        let finished = self.cli.run_ok(Call::new(self.argv(self.dialect().state_args(id))?).for_container(id)).await?;
        ContainerState::from_json(&finished.stdout)
    }

    async fn list(&self) -> Result<Vec<ContainerState>> {
        let finished = self.cli.run_ok(Call::new(self.argv(self.dialect().list_args())?)).await?;
        match self.dialect().list_format {
            ListFormat::Json => ContainerState::list_from_json(&finished.stdout),
            ListFormat::Table => {
                let mut states = Vec::new();
                for id in ids_from_list_table(&String::from_utf8_lossy(&finished.stdout)) {
                    match self.state(&ContainerId::new(id)?).await {
                        Ok(state) => states.push(state),
                        // Deleted between `list` and `state`.
                        Err(Error::NotFound { .. }) => {}
                        Err(err) => return Err(err),
                    }
                }
                Ok(states)
            }
        }
    }

    async fn kill(&self, id: &ContainerId, signal: Signal, all: bool) -> Result<()> {
        self.simple(id, self.dialect().kill_args(id, signal, all)).await
    }

    async fn delete(&self, id: &ContainerId, force: bool) -> Result<()> {
        self.simple(id, self.dialect().delete_args(id, force)).await
    }

    async fn pause(&self, id: &ContainerId) -> Result<()> {
        self.simple(id, self.dialect().pause_args(id)).await
    }

    async fn resume(&self, id: &ContainerId) -> Result<()> {
        self.simple(id, self.dialect().resume_args(id)).await
    }

    async fn exec(&self, id: &ContainerId, opts: &ExecOptions) -> Result<ExecOutcome> {
        let mut process = opts.process.clone();
        process.set_terminal(Some(opts.tty));
        let json = serde_json::to_vec(&process).map_err(|err| Error::parse("exec process", err.to_string()))?;
        // The process file and our pid file live in a 0700 scratch directory removed on drop,
        // whatever happens below.
        let scratch = tempfile::Builder::new()
            .prefix("exec-")
            .tempdir()
            .map_err(|err| Error::io("creating the exec scratch directory", err))?;
        let process_file = scratch.path().join("process.json");
        write_private(&process_file, &json)?;
        // The pid file lets a detached exec report its pid and a timed-out one be killed.
        let pid_file = opts.pid_file.clone().unwrap_or_else(|| scratch.path().join("pid"));
        let args = self.argv(self.dialect().exec_args(id, &process_file, &pid_file, opts))?;
        let (stdout, stderr) = if opts.detach { (Sink::Null, Sink::Null) } else { (Sink::Capture, Sink::Capture) };
        let call = Call {
            args,
            id: Some(id.clone()),
            stdin: Input::Null,
            stdout,
            stderr,
            timeout: opts.timeout,
            kill_on_timeout: (!opts.detach).then(|| pid_file.clone()),
            extra_fds: duplicate(&opts.preserve_fds)?,
        };
        let finished = self.cli.run(call).await?;
        if opts.detach {
            self.cli.check(finished, Some(id))?;
            let pid = read_pid_file(&pid_file)?;
            return Ok(ExecOutcome::Detached { pid });
        }
        // A runtime failure leaves an error record, and a runtime killed by a signal never saw
        // the process end; otherwise the exit status is the process's own.
        match (finished.status, &finished.log_error) {
            (Exit::Exited(code), None) => {
                Ok(ExecOutcome::Exited { code, stdout: finished.stdout, stderr: finished.stderr })
            }
            _ => Err(self.cli.error_for(&finished, Some(id))),
        }
    }

    async fn ps(&self, id: &ContainerId) -> Result<Vec<i32>> {
        let finished = self.cli.run_ok(Call::new(self.argv(self.dialect().ps_args(id))?).for_container(id)).await?;
        serde_json::from_slice::<Option<Vec<i32>>>(&finished.stdout)
            .map(Option::unwrap_or_default)
            .map_err(|err| Error::parse("ps output", format!("{err}: {}", excerpt(&finished.stdout))))
    }

    async fn update(&self, id: &ContainerId, resources: &LinuxResources) -> Result<()> {
        let json = serde_json::to_vec(resources).map_err(|err| Error::parse("resources", err.to_string()))?;
        let (args, stdin, _file) = match self.dialect().update_resources {
            ResourcesInput::Stdin => (self.argv(self.dialect().update_args(id, None))?, Input::Bytes(json), None),
            ResourcesInput::File => {
                let mut file = temp_file("update-resources-")?;
                file.write_all(&json).map_err(|err| Error::io("writing the resources file", err))?;
                (self.argv(self.dialect().update_args(id, Some(file.path())))?, Input::Null, Some(file))
            }
        };
        let call = Call { stdin, ..Call::new(args).for_container(id) };
        self.cli.run_ok(call).await.map(drop)
    }

    async fn checkpoint(&self, id: &ContainerId, opts: &CheckpointOptions) -> Result<()> {
        let features = self.features().await?;
        self.require("checkpoint", &features.checkpoint)?;
        let args = self.argv(self.dialect().checkpoint_args(id, opts))?;
        let call = Call { timeout: opts.timeout, ..Call::new(args).for_container(id) };
        self.cli.run_ok(call).await.map(drop)
    }

    async fn restore(&self, id: &ContainerId, bundle: &Path, opts: &RestoreOptions) -> Result<()> {
        let features = self.features().await?;
        self.require("restore", &features.restore)?;
        self.check_host()?;
        let args = self.argv(self.dialect().restore_args(id, bundle, opts))?;
        self.run_creating(id, args, &opts.stdio, &[], opts.timeout).await
    }

    async fn stats(&self, id: &ContainerId) -> Result<Stats> {
        let shape = self.events_shape().await?;
        let args = self.argv(self.dialect().stats_args(id))?;
        let finished = self.cli.run_ok(Call::new(args).for_container(id)).await?;
        events::stats_from_output(shape, &finished.stdout)
    }

    async fn events(&self, id: &ContainerId, interval: Duration) -> Result<EventStream> {
        let shape = self.events_shape().await?;
        let args = self.argv(self.dialect().events_args(id, interval))?;
        events::stream(&self.cli, id, shape, args).await
    }
}
