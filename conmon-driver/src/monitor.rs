//! [`ConmonMonitor`]: a conmon process per container holds its init, its output and its exit.
//!
//! conmon double-forks: the process started here exits at once, and the one that stays is
//! reparented away from the embedding process, so the container, its log and its exit code
//! outlive the caller. What ties the two together is on disk only: conmon writes the exit file
//! straight into the engine's exit directory (its format is the engine's: decimal, 128 + the
//! signal), its `exit` and `oom` files into the container's directory (its persist dir), and
//! its pid, the init's pid and the log beside them. A monitor made after a restart therefore
//! needs nothing from the one before it.

use std::ffi::OsString;
use std::io::Write;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use async_trait::async_trait;
use command_fds::{CommandFdExt, FdMapping};
use serde::{Deserialize, Serialize};
use tokio::io::BufReader;

use runtime_core::{
    Capability, ContainerFiles, ContainerId, ContainerStdio, CreateOptions, CreateRequest, Created, DeleteMode, Error,
    ExecRequest, ExecSession, Exit, Failure, Launch, Monitor, OciBackend, RestoreRequest, Result,
};

use crate::argv::{ConmonPaths, Invocation, LogDriver, create_argv};
use crate::exec;
use crate::sync::{Answer, read_answer};
use crate::watch::{self, Process};

/// How long a create through conmon may take unless [`CreateOptions::timeout`] says otherwise
/// (libpod's bound).
pub const DEFAULT_CREATE_TIMEOUT: Duration = Duration::from_secs(240);

/// How long conmon gets to exit once its container is gone (it writes the exit file first)
/// before it is killed.
pub(crate) const CONMON_EXIT_GRACE: Duration = Duration::from_secs(5);

/// The fds conmon reads its sync and start pipes from, as the environment names them.
const SYNC_FD: i32 = 3;
const START_FD: i32 = 4;

/// What conmon makes in the bundle directory itself: the attach socket and the `ctl` and
/// `winsz` fifos. They are removed with the container (and by a failed create that made them).
const BUNDLE_NODES: [&str; 3] = ["attach", "ctl", "winsz"];

/// Supervises containers through conmon.
#[derive(Debug, Clone)]
pub struct ConmonMonitor {
    conmon: PathBuf,
    log: LogDriver,
    log_size_max: Option<u64>,
}

impl Default for ConmonMonitor {
    fn default() -> Self {
        ConmonMonitor::new("conmon")
    }
}

/// What this monitor keeps of a container beside conmon's own files, to undo what conmon made
/// outside the container's directory.
#[derive(Debug, Default, Serialize, Deserialize)]
struct Kept {
    bundle: PathBuf,
    /// The nodes of [`BUNDLE_NODES`] that were not in the bundle before conmon ran.
    made_in_bundle: Vec<String>,
}

/// Where conmon's files go, in the container's directory.
fn paths_of(files: &ContainerFiles, options: &CreateOptions) -> Result<ConmonPaths> {
    let exit_dir = files.exit_file.parent().ok_or_else(|| Error::InvalidArgument {
        option: "ContainerFiles::exit_file".into(),
        reason: format!("{} is not in a directory", files.exit_file.display()),
    })?;
    Ok(ConmonPaths {
        container_pid_file: options.pid_file.clone().unwrap_or_else(|| files.dir.join("pidfile")),
        conmon_pid_file: files.dir.join("conmon.pid"),
        exit_dir: exit_dir.to_path_buf(),
        persist_dir: files.dir.clone(),
        socket_dir: files.dir.join("sockets"),
        log_file: files.dir.join("ctr.log"),
    })
}

fn kept_path(files: &ContainerFiles) -> PathBuf {
    files.dir.join("conmon.json")
}

/// Where conmon's own error output goes, in the directory of what it runs.
fn stderr_path(dir: &Path) -> PathBuf {
    dir.join("conmon.stderr")
}

pub(crate) fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> Error {
    let context = context.into();
    move |source| Error::Io { context, source }
}

pub(crate) fn unsupported(feature: &str, reason: &str) -> Error {
    Error::Unsupported { backend: "conmon".into(), feature: feature.into(), reason: reason.into() }
}

/// Options conmon does not serve (yet): refused before anything runs, never dropped.
fn refuse_unserved(options: &CreateOptions) -> Result<()> {
    if options.console_socket.is_some() {
        return Err(unsupported(
            "CreateOptions::console_socket",
            "conmon makes the console socket and holds the terminal itself",
        ));
    }
    if !options.preserve_fds.is_empty() {
        return Err(unsupported(
            "CreateOptions::preserve_fds",
            "passing descriptors through conmon is not implemented yet",
        ));
    }
    if !matches!(options.stdio, ContainerStdio::Null) {
        return Err(unsupported(
            "CreateOptions::stdio",
            "conmon owns the container's stdio and keeps its output in the log; attach is not implemented yet",
        ));
    }
    Ok(())
}

/// Whether the bundle's spec asks for a terminal (conmon then needs `-t`).
fn wants_terminal(bundle: &Path) -> Result<bool> {
    let path = bundle.join("config.json");
    let bytes = std::fs::read(&path).map_err(io(format!("reading {}", path.display())))?;
    let spec: serde_json::Value = serde_json::from_slice(&bytes).map_err(|err| Error::Parse {
        what: format!("the spec {}", path.display()),
        message: err.to_string(),
        source: Some(Box::new(err)),
    })?;
    Ok(spec["process"]["terminal"].as_bool().unwrap_or(false))
}

pub(crate) fn private_dir(path: &Path) -> Result<()> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(path)
        .map_err(io(format!("creating {}", path.display())))
}

fn remove_file(path: &Path) -> Result<()> {
    match std::fs::remove_file(path) {
        Err(err) if err.kind() != std::io::ErrorKind::NotFound => {
            Err(Error::Io { context: format!("removing {}", path.display()), source: err })
        }
        _ => Ok(()),
    }
}

/// The long-lived conmon of container `id`, from its pid file, if it is still there and is
/// that conmon (its pid not reused): its command line names the container after `-c`.
fn conmon_of(id: &ContainerId, files: &ContainerFiles) -> Result<Option<Process>> {
    conmon_named(&files.dir.join("conmon.pid"), "-c", id.as_str())
}

/// The long-lived conmon whose pid is in `pid_file`, if it is still there and is that conmon
/// (its pid not reused): its command line has `value` after `flag`.
pub(crate) fn conmon_named(pid_file: &Path, flag: &str, value: &str) -> Result<Option<Process>> {
    let Ok(text) = std::fs::read_to_string(pid_file) else { return Ok(None) };
    let Ok(pid) = text.trim().parse::<u32>() else { return Ok(None) };
    let Some(process) = Process::open(pid)? else { return Ok(None) };
    // Read after the pidfd is open: if this is our conmon, the pid stays its own.
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    let args: Vec<&[u8]> = cmdline.split(|byte| *byte == 0).collect();
    let ours = args.windows(2).any(|pair| pair[0] == flag.as_bytes() && pair[1] == value.as_bytes());
    Ok(ours.then_some(process))
}

impl ConmonMonitor {
    /// A monitor running the conmon at `conmon` (a bare name is looked up in `PATH`), logging
    /// to a k8s-file log without a size bound.
    pub fn new(conmon: impl Into<PathBuf>) -> Self {
        ConmonMonitor { conmon: conmon.into(), log: LogDriver::default(), log_size_max: None }
    }

    /// The same monitor, keeping output as `log` says.
    pub fn log(mut self, log: LogDriver) -> Self {
        self.log = log;
        self
    }

    /// The same monitor, bounding a k8s-file log to `bytes` (`--log-size-max`).
    pub fn log_size_max(mut self, bytes: u64) -> Self {
        self.log_size_max = Some(bytes);
        self
    }

    /// The conmon binary this monitor runs.
    pub(crate) fn binary(&self) -> &Path {
        &self.conmon
    }

    /// The container's k8s-file log, in its directory.
    pub fn log_file(files: &ContainerFiles) -> PathBuf {
        files.dir.join("ctr.log")
    }

    /// Runs conmon and reads its answer. Returns the answer, or the error with whether the
    /// runtime got as far as writing the container's pid file (then a container exists that
    /// this call made).
    async fn create_through_conmon(
        &self,
        backend: &dyn OciBackend,
        id: &ContainerId,
        bundle: &Path,
        options: CreateOptions,
        files: &ContainerFiles,
    ) -> Result<Created> {
        refuse_unserved(&options)?;
        let terminal = wants_terminal(bundle)?;
        let paths = paths_of(files, &options)?;
        if files.exit_file.file_name() != Some(id.as_str().as_ref()) {
            return Err(Error::InvalidArgument {
                option: "ContainerFiles::exit_file".into(),
                reason: format!("conmon writes <exit dir>/{id}, not {}", files.exit_file.display()),
            });
        }
        if watch::exists(&paths.conmon_pid_file) {
            // The directory is a live container's (the engine asks the runtime to refuse a
            // create over one): its files are not overwritten.
            return Err(Error::AlreadyExists {
                id: Some(id.clone()),
                evidence: runtime_core::Existence::Seen {
                    what: "conmon's pid file".into(),
                    path: paths.conmon_pid_file,
                },
            });
        }
        // conmon writes no exit file at all when its persist dir is missing.
        for dir in [&paths.exit_dir, &paths.persist_dir, &paths.socket_dir] {
            private_dir(dir)?;
        }
        remove_file(&paths.container_pid_file)?;
        let made_in_bundle = BUNDLE_NODES
            .iter()
            .filter(|node| !watch::exists(&bundle.join(node)))
            .map(|node| (*node).to_owned())
            .collect();
        let kept = Kept { bundle: bundle.to_path_buf(), made_in_bundle };
        let json = serde_json::to_vec(&kept).map_err(|err| Error::Parse {
            what: "conmon's record".into(),
            message: err.to_string(),
            source: None,
        })?;
        std::fs::write(kept_path(files), json).map_err(io("writing conmon's record"))?;

        let call = Invocation {
            id,
            bundle,
            paths: &paths,
            log: self.log,
            log_size_max: self.log_size_max,
            no_pivot: options.no_pivot,
            no_new_keyring: options.no_new_keyring,
            terminal,
        };
        let argv = create_argv(&self.conmon, backend, &call);
        let timeout = options.timeout.unwrap_or(DEFAULT_CREATE_TIMEOUT);
        let answer = match tokio::time::timeout(timeout, self.spawn(&argv, &files.dir)).await {
            Ok(answer) => answer?,
            Err(_) => return Err(Error::Timeout { argv, after: timeout, left_behind: None }),
        };
        match answer {
            Answer::Created(pid) => Ok(Created { pid }),
            Answer::Refused(message) => {
                let failure = Failure { argv, status: Exit::Unknown, message };
                Err(backend.classify_failure(Some(id), failure))
            }
        }
    }

    /// Starts conmon with its pipes, tells it to go on, and reads its answer; conmon's error
    /// output goes to a file in `dir`, which is also its working directory: conmon 2.1.6 writes
    /// an `oom` file into its working directory (besides its persist dir) on every OOM kill, and
    /// one written into the embedding program's would be left behind.
    pub(crate) async fn spawn(&self, argv: &[OsString], dir: &Path) -> Result<Answer> {
        let pipe = || {
            nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)
                .map_err(|errno| Error::Io { context: "making conmon's pipes".into(), source: errno.into() })
        };
        let (sync_read, sync_write) = pipe()?;
        let (start_read, start_write) = pipe()?;
        let stderr_file = stderr_path(dir);
        let stderr = std::fs::File::create(&stderr_file).map_err(io(format!("creating {}", stderr_file.display())))?;
        let mut command = tokio::process::Command::new(&argv[0]);
        command
            .args(&argv[1..])
            .env("_OCI_SYNCPIPE", SYNC_FD.to_string())
            .env("_OCI_STARTPIPE", START_FD.to_string())
            .current_dir(dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .fd_mappings(vec![
                FdMapping { parent_fd: sync_write, child_fd: SYNC_FD },
                FdMapping { parent_fd: start_read, child_fd: START_FD },
            ])
            .map_err(|_| Error::Io {
                context: "passing conmon its pipes".into(),
                source: std::io::ErrorKind::InvalidInput.into(),
            })?;
        let spawned = command.spawn();
        // The child's ends are closed here, so that the sync pipe ends when conmon's do.
        drop(command);
        let mut child = spawned.map_err(|err| match err.kind() {
            std::io::ErrorKind::NotFound => Error::BinaryNotFound { path: self.conmon.clone(), source: err },
            std::io::ErrorKind::PermissionDenied => {
                Error::BinaryNotExecutable { path: self.conmon.clone(), source: err }
            }
            _ => Error::Io { context: format!("starting {}", self.conmon.display()), source: err },
        })?;
        // conmon is where it is to be (no cgroup is asked for yet): let it go on.
        let mut start = std::fs::File::from(start_write);
        let _ = start.write_all(&[0]);
        drop(start);
        let status = child.wait().await.map_err(io("waiting for conmon"))?;
        let said = || std::fs::read_to_string(&stderr_file).unwrap_or_default();
        if !status.success() {
            let failure = Failure { argv: argv.to_vec(), status: status.into(), message: said() };
            return Err(Error::RuntimeFailed(Box::new(failure)));
        }
        let sync =
            tokio::net::unix::pipe::Receiver::from_owned_fd(sync_read).map_err(io("reading conmon's sync pipe"))?;
        match read_answer(&mut BufReader::new(sync)).await? {
            Some(answer) => Ok(answer),
            None => {
                let message = format!("conmon closed its sync pipe without an answer. {}", said());
                Err(Error::RuntimeFailed(Box::new(Failure { argv: argv.to_vec(), status: Exit::Unknown, message })))
            }
        }
    }

    /// Undoes a create that failed: conmon is ended, the container deleted if the runtime made
    /// it (its pid file was written during the call), and the monitor's files removed.
    async fn undo(
        &self,
        backend: &dyn OciBackend,
        id: &ContainerId,
        files: &ContainerFiles,
        options_pid_file: Option<&Path>,
    ) {
        if let Ok(Some(conmon)) = conmon_of(id, files) {
            if let Err(err) = conmon.kill() {
                tracing::warn!(%id, %err, "cannot kill conmon");
            }
            conmon.exited_within(CONMON_EXIT_GRACE).await;
        }
        let pid_file = options_pid_file.map_or_else(|| files.dir.join("pidfile"), Path::to_path_buf);
        if watch::exists(&pid_file) {
            match backend.delete(id, DeleteMode::Force).await {
                Ok(()) | Err(Error::NotFound { .. }) => {}
                Err(err) => tracing::warn!(%id, %err, "rolling back left the container behind"),
            }
        }
        if let Err(err) = remove_monitor_files(files) {
            tracing::warn!(%id, %err, "removing conmon's files failed");
        }
    }
}

/// Removes what conmon and this monitor made for a container (conmon has ended): the nodes it
/// made in the bundle, and its files in the container's directory. An exit already recorded
/// stays, for the engine to read or forget.
fn remove_monitor_files(files: &ContainerFiles) -> Result<()> {
    let kept = kept_path(files);
    if let Ok(bytes) = std::fs::read(&kept) {
        let kept_record: Kept = serde_json::from_slice(&bytes).unwrap_or_default();
        for node in &kept_record.made_in_bundle {
            remove_file(&kept_record.bundle.join(node))?;
        }
    }
    let sockets = files.dir.join("sockets");
    match std::fs::remove_dir_all(&sockets) {
        Err(err) if err.kind() != std::io::ErrorKind::NotFound => {
            return Err(Error::Io { context: format!("removing {}", sockets.display()), source: err });
        }
        _ => {}
    }
    // A pid file the caller named is the caller's. conmon's `exit` copy goes; its `oom` is the
    // engine's record of an OOM kill ([`ContainerFiles::oom_file`]) and goes with the exit.
    let dir = &files.dir;
    for file in
        [dir.join("pidfile"), dir.join("conmon.pid"), dir.join("ctr.log"), dir.join("exit"), stderr_path(dir), kept]
    {
        remove_file(&file)?;
    }
    Ok(())
}

#[async_trait]
impl Monitor for ConmonMonitor {
    fn name(&self) -> &str {
        "conmon"
    }

    fn capabilities(&self) -> &[Capability] {
        &[Capability::SurvivesEmbedder, Capability::Logs, Capability::Exec, Capability::ExecTimeout, Capability::Oom]
    }

    async fn create(&self, backend: &dyn OciBackend, req: CreateRequest) -> Result<Created> {
        let CreateRequest { id, bundle, options, launch, files } = req;
        let pid_file = options.pid_file.clone();
        let created = match self.create_through_conmon(backend, &id, &bundle, options, &files).await {
            Ok(created) => created,
            Err(
                err @ (Error::AlreadyExists { evidence: runtime_core::Existence::Seen { .. }, .. }
                | Error::Unsupported { .. }
                | Error::InvalidArgument { .. }),
            ) => return Err(err),
            Err(err) => {
                self.undo(backend, &id, &files, pid_file.as_deref()).await;
                return Err(err);
            }
        };
        // conmon never starts the container: `run` is create, then the backend's start.
        if launch == Launch::Run
            && let Err(err) = backend.start(&id).await
        {
            self.undo(backend, &id, &files, pid_file.as_deref()).await;
            return Err(err);
        }
        Ok(created)
    }

    async fn restore(&self, _backend: &dyn OciBackend, _req: RestoreRequest) -> Result<Created> {
        Err(unsupported(
            "restore",
            "restoring through conmon (`--restore` with `--runtime-opt`) is not implemented yet",
        ))
    }

    async fn exec(&self, backend: &dyn OciBackend, req: ExecRequest) -> Result<ExecSession> {
        exec::start(self, backend, req).await
    }

    async fn adopt(&self, _id: &ContainerId, _pid: u32, _files: &ContainerFiles) -> Result<()> {
        // conmon still holds it and writes its exit file: nothing to start.
        Ok(())
    }

    async fn exit_status(&self, _id: &ContainerId, files: &ContainerFiles) -> Result<Option<Exit>> {
        files.recorded_exit()
    }

    async fn wait(&self, id: &ContainerId, files: &ContainerFiles) -> Result<Exit> {
        let conmon = conmon_of(id, files)?;
        let conmon_gone = async {
            if let Some(conmon) = &conmon {
                conmon.exited().await;
            }
        };
        match watch::exit_file(files, conmon_gone).await? {
            Some(exit) => Ok(exit),
            // conmon writes the exit file before it ends: without it, nobody will.
            None => Err(Error::NotSupervised {
                what: format!("container {id}, whose conmon ended without recording its exit,"),
            }),
        }
    }

    async fn wait_exec(&self, session: &ExecSession, files: &ContainerFiles) -> Result<Exit> {
        exec::wait(session, files).await
    }

    async fn stop_exec(&self, session: &ExecSession, files: &ContainerFiles, timeout: Duration) -> Result<Exit> {
        exec::stop(session, files, timeout).await
    }

    async fn release(&self, id: &ContainerId, files: &ContainerFiles) -> Result<()> {
        // conmon ends once it has recorded the exit of its (deleted) container; waited for, so
        // that it writes nothing after its files are gone.
        if let Some(conmon) = conmon_of(id, files)?
            && !conmon.exited_within(CONMON_EXIT_GRACE).await
        {
            tracing::warn!(%id, pid = conmon.pid, "conmon outlived its container; killing it");
            conmon.kill()?;
            conmon.exited_within(CONMON_EXIT_GRACE).await;
        }
        exec::release_all(files).await?;
        remove_monitor_files(files)
    }
}
