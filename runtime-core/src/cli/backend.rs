//! [`CliBackend`]: the one implementation of [`OciBackend`] for every runtime driven through its
//! command line (runc, crun, youki, plugins).
//!
//! What differs between runtimes is data: a [`RuntimeFamily`] names the runtime, picks its
//! [`Dialect`] for the version found, and lists the host conditions it needs. Everything else —
//! the create that never hands the container a pipe the library reads, rollback of a failed or
//! timed-out create within the call's own timeout, exec through a 0600 process file, gating of
//! checkpoint, restore and their CRIU-dependent options on probed features — is written once here, over a [`Spawner`] that its tests
//! replace with a recording double.

use std::ffi::OsString;
use std::io::Write;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use oci_spec::runtime::{LinuxResources, Process};
use tokio::sync::OnceCell;
use tokio::time::Instant;

use crate::blocking::off_executor;
use crate::caller::Caller;
use crate::cli::config::RuntimeConfig;
use crate::cli::dialect::{Dialect, ListFormat, Missing, ResourcesInput, ids_from_list_table};
use crate::cli::driver::{Call, CliRuntime, NO_DEADLINE, Runner, failed_with};
use crate::cli::events::{self, StatsShape};
use crate::cli::probe::{probe_features, run_probe};
use crate::cli::rollback::{Cleanups, Delete, Rollback, fresh_pid_file};
use crate::cli::spawn::{Input, Leftovers, ProcessSpawner, Sink, Spawner};
use crate::contract::backend::OciBackend;
use crate::contract::error::{Error, Existence, Failure, Result};
use crate::contract::exit::Exit;
use crate::contract::features::{CgroupManager, Features, Support};
use crate::contract::host::{HostCheck, HostVerdict};
use crate::contract::id::ContainerId;
use crate::contract::monitor::Launch;
use crate::contract::options::{
    Captured, CheckpointOptions, ContainerStdio, CreateOptions, Created, DeleteMode, ExecOptions, ExecOutcome,
    ExecStdio, KillScope, RestoreOptions,
};
use crate::contract::signal::Signal;
use crate::contract::state::ContainerState;
use crate::contract::stats::{EventStream, Stats};
use crate::contract::version::RuntimeVersion;
use crate::exec_tree::UnfinishedExec;

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
    /// Messages of failures this runtime can meet before it does anything at all, which the
    /// same call may not meet again: such a call is run once more.
    fn transient_failures(&self) -> Vec<String> {
        Vec::new()
    }
    /// Whether this runtime says its transient failures before it opens its `--log`, so that a
    /// call whose stderr is the container's (`create`, `run`, `restore`) sees one as an exit 1
    /// without a word: such a call is then run once more too.
    fn wordless_failures_are_transient(&self) -> bool {
        false
    }
}

/// A runtime driven through its command line.
#[derive(Debug)]
pub struct CliBackend {
    family: Arc<dyn RuntimeFamily>,
    cli: CliRuntime,
    version: RuntimeVersion,
    criu: PathBuf,
    /// The config's cgroup manager, which [`CliRuntime`]'s global args select.
    cgroup_manager: Option<CgroupManager>,
    host_checks: Vec<Arc<dyn HostCheck>>,
    features: OnceCell<Arc<Features>>,
    /// Rollbacks of dropped calls, under way in the background.
    cleanups: Cleanups,
}

impl CliBackend {
    /// Finds the binary, asks its version (within the config's timeout), and picks the dialect
    /// for it.
    pub async fn connect(family: Arc<dyn RuntimeFamily>, config: RuntimeConfig) -> Result<Self> {
        Self::connect_with(family, config, Arc::new(ProcessSpawner)).await
    }

    /// [`CliBackend::connect`] with processes run by `spawner`.
    pub(crate) async fn connect_with(
        family: Arc<dyn RuntimeFamily>,
        config: RuntimeConfig,
        spawner: Arc<dyn Spawner>,
    ) -> Result<Self> {
        let binary = resolve_binary(config.binary.clone().unwrap_or_else(|| family.default_binary()))?;
        let runner = Runner::new(spawner, &config);
        let mut finished = run_probe(&runner, &binary, &["--version"]).await?;
        if failed_with(&finished, &family.transient_failures()) {
            finished = run_probe(&runner, &binary, &["--version"]).await?;
        }
        let output = finished.complete_output()?;
        if !finished.status.success() {
            return Err(Error::RuntimeFailed(finished.failure()));
        }
        let version = RuntimeVersion::parse(&output)?;
        Self::with_runner(family, config, binary, version, runner)
    }

    /// A backend for a runtime whose version is already known; runs nothing.
    pub fn with_version(
        family: Arc<dyn RuntimeFamily>,
        config: RuntimeConfig,
        binary: PathBuf,
        version: RuntimeVersion,
    ) -> Result<Self> {
        let runner = Runner::new(Arc::new(ProcessSpawner), &config);
        Self::with_runner(family, config, binary, version, runner)
    }

    /// [`CliBackend::with_version`] with processes run by `runner`.
    pub(crate) fn with_runner(
        family: Arc<dyn RuntimeFamily>,
        config: RuntimeConfig,
        binary: PathBuf,
        version: RuntimeVersion,
        runner: Runner,
    ) -> Result<Self> {
        let runtime_dir = std::env::var_os("XDG_RUNTIME_DIR");
        let config = config.for_caller(family.name(), Caller::current(), runtime_dir.as_deref())?;
        let dialect = family.dialect(&version);
        let global_args = dialect.global_args(&config).map_err(|missing| unsupported(family.name(), missing))?;
        let cli = CliRuntime::new(
            binary,
            global_args,
            Arc::new(dialect),
            runner,
            family.transient_failures(),
            family.wordless_failures_are_transient(),
        );
        let criu = config.criu.clone().unwrap_or_else(|| PathBuf::from("criu"));
        let host_checks = family.host_checks();
        Ok(CliBackend {
            family,
            cli,
            version,
            criu,
            cgroup_manager: config.cgroup_manager,
            host_checks,
            features: OnceCell::new(),
            cleanups: Cleanups::default(),
        })
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

    /// `create` or `run --detach`, with a pid file (the caller's, else a private one).
    async fn bring_up(&self, id: &ContainerId, bundle: &Path, opts: CreateOptions, launch: Launch) -> Result<Created> {
        self.check_host()?;
        if let Some(option) = opts.monitor_only_option() {
            let reason = "it is served by a monitor (conmon), not by the runtime".to_owned();
            return Err(Error::Unsupported { backend: self.name().to_owned(), feature: option.to_owned(), reason });
        }
        let private;
        let pid_file = match opts.pid_file.clone() {
            Some(pid_file) => pid_file,
            None => {
                private = scratch("create-")?;
                private.path().join("pid")
            }
        };
        let args = match launch {
            Launch::Create => self.dialect().create_args(id, bundle, &pid_file, &opts),
            Launch::Run => self.dialect().run_args(id, bundle, &pid_file, &opts),
        };
        let args = self.argv(args)?;
        let created = self.run_creating(id, args, &pid_file, opts.stdio, opts.preserve_fds, opts.timeout).await;
        typing_bundle_refusals(created, id, bundle).await
    }

    /// Runs a call that makes a container (create, run, restore) with the container's stdio and
    /// returns the init pid from `pid_file`. If it fails or times out, whatever the runtime left
    /// is removed, so nothing keeps running unseen; a rollback that could not remove it all is
    /// reported on a timeout's `left_behind`. If the caller drops the call instead, the
    /// [`Rollback`] guard does the same in the background.
    ///
    /// The call's timeout bounds the whole of it, rollback included: the runtime gets the budget
    /// less a reserve ([`rollback_reserve`]), and the rollback what remains by the deadline. A
    /// rollback of this id still under way from a dropped call is waited for first: its
    /// `delete --force` would remove what this call makes.
    async fn run_creating(
        &self,
        id: &ContainerId,
        args: Vec<OsString>,
        pid_file: &Path,
        stdio: ContainerStdio,
        extra_fds: Vec<OwnedFd>,
        timeout: Option<Duration>,
    ) -> Result<Created> {
        self.cleanups.settled_for(id).await;
        let budget = timeout.unwrap_or(self.cli.timeout());
        let deadline = Instant::now() + budget;
        let delete = self.argv(self.dialect().delete_args(id, DeleteMode::Force))?;
        fresh_pid_file(pid_file)?;
        let guard = Rollback::arm(&self.cleanups, pid_file.to_path_buf(), Delete::new(&self.cli, id, delete, deadline));
        let (stdin, stdout, stderr) = container_stdio(stdio);
        let call = Call {
            stdin,
            stdout,
            stderr,
            timeout: Some(budget.saturating_sub(rollback_reserve(budget))),
            extra_fds,
            leftovers: Leftovers::Keep,
            ..Call::new(args).for_container(id)
        };
        let err = match self.cli.run_ok(call).await.and_then(|_| read_pid_file(pid_file)) {
            Ok(pid) => {
                guard.disarm();
                return Ok(Created { pid });
            }
            // Another container holds the id, or nothing ran: there is nothing of ours to remove.
            Err(
                err @ (Error::AlreadyExists { .. }
                | Error::BinaryNotFound { .. }
                | Error::BinaryNotExecutable { .. }
                | Error::Unsupported { .. }),
            ) => {
                guard.disarm();
                return Err(err);
            }
            Err(err) => err,
        };
        let left_behind = guard.roll_back().await.err();
        match err {
            Error::Timeout { argv, .. } => {
                Err(Error::Timeout { argv, after: budget, left_behind: left_behind.map(Box::new) })
            }
            err => {
                if let Some(problem) = left_behind {
                    tracing::warn!(%id, %err, %problem, "rolling back a failed create left something behind");
                }
                Err(err)
            }
        }
    }
}

/// A private 0700 directory for the files of one call (process spec, pid file), removed on drop.
fn scratch(prefix: &str) -> Result<tempfile::TempDir> {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::Builder::new()
        .prefix(prefix)
        .tempdir()
        .map_err(|err| Error::io("creating a scratch directory", err))?;
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700))
        .map_err(|err| Error::io("making the scratch directory private", err))?;
    Ok(dir)
}

/// What a create or restore keeps of its timeout for its rollback: a quarter, at most 2 s.
fn rollback_reserve(budget: Duration) -> Duration {
    (budget / 4).min(Duration::from_secs(2))
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

/// The binary to run: a bare name is looked up in `PATH`; a path must be an executable file.
fn resolve_binary(binary: PathBuf) -> Result<PathBuf> {
    use std::io::{Error as IoError, ErrorKind};
    if binary.components().count() == 1 && !binary.is_absolute() {
        return which::which(&binary).map_err(|err| Error::BinaryNotFound {
            source: IoError::new(ErrorKind::NotFound, format!("no executable of that name in PATH ({err})")),
            path: binary,
        });
    }
    let not_executable = |source| Error::BinaryNotExecutable { path: binary.clone(), source };
    match std::fs::metadata(&binary) {
        Err(source) if source.kind() == ErrorKind::NotFound => Err(Error::BinaryNotFound { path: binary, source }),
        Err(source) => Err(not_executable(source)),
        Ok(metadata) if metadata.is_dir() => Err(not_executable(IoError::new(ErrorKind::IsADirectory, "a directory"))),
        Ok(_) => match nix::unistd::access(&binary, nix::unistd::AccessFlags::X_OK) {
            Ok(()) => Ok(binary),
            Err(errno) => Err(not_executable(errno.into())),
        },
    }
}

/// The runtime's stdio for a container process, which inherits it. The descriptors move into
/// the call and are closed in this process once the runtime has them.
fn container_stdio(stdio: ContainerStdio) -> (Input, Sink, Sink) {
    match stdio {
        ContainerStdio::Null => (Input::Null, Sink::Null, Sink::Null),
        ContainerStdio::Inherit => (Input::Inherit, Sink::Inherit, Sink::Inherit),
        ContainerStdio::Fds { stdin, stdout, stderr } => (
            stdin.map_or(Input::Null, Input::Fd),
            stdout.map_or(Sink::Null, Sink::Fd),
            stderr.map_or(Sink::Null, Sink::Fd),
        ),
    }
}

/// Refuses, before anything runs, exec options the runtime would otherwise drop or misread.
fn refuse_unservable_exec_options(opts: &ExecOptions) -> Result<()> {
    let refuse =
        |option: &str, reason: &str| Err(Error::InvalidArgument { option: option.into(), reason: reason.into() });
    if opts.tty && opts.console_socket.is_none() {
        return refuse("ExecOptions::tty", "a terminal is handed over on a console socket, and none was given");
    }
    if opts.detach && matches!(opts.stdio, ExecStdio::Capture) {
        return refuse(
            "ExecStdio::Capture",
            "a detached exec outlives the call, so nothing would read its output; wire its stdio instead",
        );
    }
    Ok(())
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

/// A runtime's refusal of a bundle whose `config.json` is missing or is no JSON document, typed
/// (`NotFound`, `InvalidArgument`): each runtime words that refusal its own way (crun 1.8.1 the
/// same for both), so its answer alone could not be typed without guessing. The bundle is looked
/// at only after the runtime failed, so a call that works pays nothing for it; any other outcome
/// is returned as it came.
async fn typing_bundle_refusals(outcome: Result<Created>, id: &ContainerId, bundle: &Path) -> Result<Created> {
    let Err(failed @ Error::RuntimeFailed(_)) = outcome else { return outcome };
    let (id, config) = (id.clone(), bundle.join("config.json"));
    let refusal = off_executor("reading the bundle's config.json", move || {
        Ok(match std::fs::read(&config) {
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => Some(Error::NotFound {
                id: Some(id),
                evidence: Existence::Seen { what: "the bundle's config.json".to_owned(), path: config },
            }),
            Err(_) => None,
            Ok(bytes) => {
                serde_json::from_slice::<serde::de::IgnoredAny>(&bytes).err().map(|err| Error::InvalidArgument {
                    option: "bundle".to_owned(),
                    reason: format!("{} is not a JSON document: {err}", config.display()),
                })
            }
        })
    })
    .await;
    Err(refusal.ok().flatten().unwrap_or(failed))
}

fn read_pid_file(path: &Path) -> Result<u32> {
    let text =
        std::fs::read_to_string(path).map_err(|err| Error::io(format!("reading pid file {}", path.display()), err))?;
    text.trim().parse().map_err(|err| Error::parse_failed(format!("pid file {}", path.display()), err, text.as_bytes()))
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

    fn cgroup_manager(&self) -> Option<CgroupManager> {
        self.cgroup_manager
    }

    fn can_run(&self) -> bool {
        self.dialect().run_command.is_some()
    }

    fn classify_failure(&self, id: Option<&ContainerId>, failure: Failure) -> Error {
        self.cli.typed_error(Box::new(failure), id)
    }

    fn is_transient(&self, failure: &Failure) -> bool {
        self.cli.is_transient(failure)
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

    async fn create(&self, id: &ContainerId, bundle: &Path, opts: CreateOptions) -> Result<Created> {
        self.bring_up(id, bundle, opts, Launch::Create).await
    }

    async fn run(&self, id: &ContainerId, bundle: &Path, opts: CreateOptions) -> Result<Created> {
        self.bring_up(id, bundle, opts, Launch::Run).await
    }

    async fn start(&self, id: &ContainerId) -> Result<()> {
        self.simple(id, self.dialect().start_args(id)).await
    }

    async fn state(&self, id: &ContainerId) -> Result<ContainerState> {
        let finished = self.cli.run_ok(Call::new(self.argv(self.dialect().state_args(id))?).for_container(id)).await?;
        ContainerState::from_json(finished.complete_stdout()?)
    }

    async fn list(&self) -> Result<Vec<ContainerState>> {
        let finished = self.cli.run_ok(Call::new(self.argv(self.dialect().list_args())?)).await?;
        match self.dialect().list_format {
            ListFormat::Json => ContainerState::list_from_json(finished.complete_stdout()?),
            ListFormat::Table => {
                let mut states = Vec::new();
                for id in ids_from_list_table(&String::from_utf8_lossy(finished.complete_stdout()?)) {
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

    async fn kill(&self, id: &ContainerId, signal: Signal, scope: KillScope) -> Result<()> {
        self.simple(id, self.dialect().kill_args(id, signal, scope)).await
    }

    async fn delete(&self, id: &ContainerId, mode: DeleteMode) -> Result<()> {
        self.simple(id, self.dialect().delete_args(id, mode)).await
    }

    async fn pause(&self, id: &ContainerId) -> Result<()> {
        self.simple(id, self.dialect().pause_args(id)).await
    }

    async fn resume(&self, id: &ContainerId) -> Result<()> {
        self.simple(id, self.dialect().resume_args(id)).await
    }

    async fn exec(&self, id: &ContainerId, process: &Process, opts: ExecOptions) -> Result<ExecOutcome> {
        refuse_unservable_exec_options(&opts)?;
        let mut process = process.clone();
        process.set_terminal(Some(opts.tty));
        let json = serde_json::to_vec(&process).map_err(|err| Error::parse("exec process", err.to_string()))?;
        // The process file and our pid file live in a 0700 scratch directory removed on drop,
        // whatever happens below.
        let scratch = scratch("exec-")?;
        let process_file = scratch.path().join("process.json");
        write_private(&process_file, &json)?;
        // The pid file lets a detached exec report its pid and an unfinished one be ended.
        let pid_file = opts.pid_file.clone().unwrap_or_else(|| scratch.path().join("pid"));
        fresh_pid_file(&pid_file)?;
        let args = self.argv(self.dialect().exec_args(id, &process_file, &pid_file, &opts))?;
        let (stdin, stdout, stderr) = match opts.stdio {
            ExecStdio::Wired(stdio) => container_stdio(stdio),
            ExecStdio::Capture => (Input::Null, Sink::Capture, Sink::Capture),
        };
        let call = Call {
            args,
            id: Some(id.clone()),
            stdin,
            stdout,
            stderr,
            // A detached exec's call returns once the process started; one waited for lasts as
            // long as its process, bounded only by the caller.
            timeout: if opts.detach { opts.timeout } else { Some(opts.timeout.unwrap_or(NO_DEADLINE)) },
            output_limit: opts.output_limit,
            extra_fds: opts.preserve_fds,
            leftovers: Leftovers::Keep,
        };
        // A detached process is the caller's once the runtime reported it; until then, and for
        // the whole life of an attached one, an unfinished call ends it and all it started.
        let guard = UnfinishedExec::arm(pid_file.clone());
        let finished = match self.cli.run(call).await {
            Ok(finished) => finished,
            Err(err) => {
                guard.end().await;
                return Err(err);
            }
        };
        guard.disarm();
        if opts.detach {
            self.cli.check(finished, Some(id))?;
            let pid = read_pid_file(&pid_file)?;
            return Ok(ExecOutcome::Detached { pid });
        }
        // A runtime failure leaves an error record, and a runtime killed by a signal never saw
        // the process end; otherwise the exit status is the process's own.
        match (finished.status, &finished.log_error) {
            (Exit::Exited(code), None) => Ok(ExecOutcome::Exited {
                code,
                stdout: Captured { bytes: finished.stdout, truncated: finished.stdout_truncated },
                stderr: Captured { bytes: finished.stderr, truncated: finished.stderr_truncated },
            }),
            _ => Err(self.cli.error_for(&finished, Some(id))),
        }
    }

    async fn ps(&self, id: &ContainerId) -> Result<Vec<u32>> {
        let finished = self.cli.run_ok(Call::new(self.argv(self.dialect().ps_args(id))?).for_container(id)).await?;
        let stdout = finished.complete_stdout()?;
        serde_json::from_slice::<Option<Vec<u32>>>(stdout)
            .map(Option::unwrap_or_default)
            .map_err(|err| Error::parse_failed("ps output", err, stdout))
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
        require_image_path("CheckpointOptions::image_path", &opts.image_path)?;
        let features = self.features().await?;
        self.require("checkpoint", &features.checkpoint)?;
        if opts.pre_dump {
            self.require("checkpoint --pre-dump", &features.pre_dump)?;
        }
        if opts.lazy_pages {
            self.require("checkpoint --lazy-pages", &features.lazy_pages)?;
        }
        let args = self.argv(self.dialect().checkpoint_args(id, opts))?;
        // With lazy pages, CRIU's page server outlives the runtime on purpose.
        let call = Call { timeout: opts.timeout, leftovers: Leftovers::Keep, ..Call::new(args).for_container(id) };
        self.cli.run_ok(call).await.map(drop)
    }

    async fn restore(&self, id: &ContainerId, bundle: &Path, opts: RestoreOptions) -> Result<Created> {
        require_image_path("RestoreOptions::image_path", &opts.image_path)?;
        if let Some(option) = opts.monitor_only_option() {
            let reason = "it is served by a monitor (conmon), not by the runtime".to_owned();
            return Err(Error::Unsupported { backend: self.name().to_owned(), feature: option.to_owned(), reason });
        }
        let features = self.features().await?;
        self.require("restore", &features.restore)?;
        if opts.lazy_pages {
            self.require("restore --lazy-pages", &features.lazy_pages)?;
        }
        self.check_host()?;
        let private;
        let pid_file = match opts.pid_file.clone() {
            Some(pid_file) => pid_file,
            None => {
                private = scratch("restore-")?;
                private.path().join("pid")
            }
        };
        let args = self.argv(self.dialect().restore_args(id, bundle, &pid_file, &opts))?;
        let restored = self.run_creating(id, args, &pid_file, opts.stdio, Vec::new(), opts.timeout).await;
        typing_bundle_refusals(restored, id, bundle).await
    }

    async fn restore_option_args(&self, opts: &RestoreOptions) -> Result<Vec<OsString>> {
        let features = self.features().await?;
        self.require("restore", &features.restore)?;
        if opts.lazy_pages {
            self.require("restore --lazy-pages", &features.lazy_pages)?;
        }
        self.argv(self.dialect().restore_option_args(opts))
    }

    async fn stats(&self, id: &ContainerId) -> Result<Stats> {
        let shape = self.events_shape().await?;
        let args = self.argv(self.dialect().stats_args(id))?;
        let finished = self.cli.run_ok(Call::new(args).for_container(id)).await?;
        events::stats_from_output(shape, finished.complete_stdout()?)
    }

    async fn events(&self, id: &ContainerId, interval: Duration) -> Result<EventStream> {
        let shape = self.events_shape().await?;
        let args = self.argv(self.dialect().events_args(id, interval))?;
        events::stream(&self.cli, id, shape, args).await
    }

    async fn settle(&self) -> Vec<Error> {
        self.cleanups.settled().await
    }
}

/// Refuses an empty image path: it would reach the runtime as `--image-path ''`, which runc
/// takes as "use `./checkpoint` of whatever directory the caller runs in".
fn require_image_path(option: &str, image_path: &Path) -> Result<()> {
    match image_path.as_os_str().is_empty() {
        true => Err(Error::InvalidArgument {
            option: option.to_owned(),
            reason: "is empty; the images need a directory the caller chose".to_owned(),
        }),
        false => Ok(()),
    }
}

#[cfg(test)]
mod tests;
