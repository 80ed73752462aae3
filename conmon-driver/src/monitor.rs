//! [`ConmonMonitor`]: a conmon process per container holds its init, its output and its exit.
//!
//! conmon double-forks: the process started here exits at once, and the one that stays is
//! reparented away from the embedding process, so the container, its log and its exit code
//! outlive the caller. What ties the two together is on disk only: conmon writes the exit file
//! straight into the engine's exit directory (its format is the engine's: decimal, 128 + the
//! signal), its `exit` and `oom` files into the container's directory (its persist dir), and
//! its pid, the init's pid and the log beside them. A monitor made after a restart therefore
//! needs nothing from the one before it.
//!
//! A restore is the same run of conmon with `--restore`: conmon runs the runtime's restore
//! instead of its create, and holds the restored init as it would a created one. Ports reserved
//! for a container are bound here and handed to conmon, whose lifetime is the container's.
//! Descriptors the container keeps ([`CreateOptions::preserve_fds`]) are handed to conmon first,
//! at fds 3, 4, ..., since its runtime inherits conmon's descriptors and passes on fds 3 to
//! 3 + N - 1; conmon's pipes (named to it by number in its environment) and the ports come after
//! them. The embedding process's listening descriptors (socket activation), when passed, come
//! before them all, where the runtime looks for `LISTEN_FDS`' descriptors: with the listen pid
//! replaced the runtime takes them as its own (and sets `LISTEN_FDS` in the container),
//! otherwise it passes them on among the preserved ones. An exit command is conmon's to run: it runs it once the exit is recorded, and ends
//! only after it, so a delete waits for it as for conmon (up to [`CONMON_EXIT_GRACE`]).
//! A background exec (`exec.rs`) is one more run of conmon through the same spawn, so every
//! conmon gets the same environment, version check and working-directory rule. A create or
//! restore given up on before conmon answered is rolled back by the engine, as for any monitor
//! (the runtime's delete, then [`Monitor::release`] ends conmon and removes its files); an exec
//! given up on so is ended here (`exec.rs`), since only this monitor knows where its pid is.

use std::ffi::OsString;
use std::io::Write;
use std::os::fd::OwnedFd;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use command_fds::{CommandFdExt, FdMapping};
use serde::{Deserialize, Serialize};
use tokio::io::BufReader;

use runtime_core::{
    AttachStdin, AttachedStdio, Capability, ContainerFiles, ContainerId, ContainerStdio, CreateOptions, CreateRequest,
    Created, DeleteMode, Error, ExecRequest, ExecSession, Existence, Exit, ExitCommand, Failure, Launch, LogDriver,
    LogOptions, LogReader, Monitor, MonitorStdio, OciBackend, RestoreOptions, RestoreRequest, Result, Status,
    SystemdPassthrough, TerminalSize, Version,
};
use tokio::sync::OnceCell;

use crate::argv::{ConmonEnv, ConmonPaths, EmbedderEnv, Invocation, Restore, conmon_env, create_argv};
use crate::attach::{self, ControlMessage};
use crate::exec;
use crate::logs::K8sFileReader;
use crate::ports;
use crate::sync::{Answer, Retries, read_answer};
use crate::version::{self, VERSION_PROBE_TIMEOUT};
use crate::watch::{self, Process};

/// How long a create through conmon may take unless [`CreateOptions::timeout`] says otherwise
/// (libpod's bound).
pub const DEFAULT_CREATE_TIMEOUT: Duration = Duration::from_secs(240);

/// How long conmon gets to exit once its container is gone (it writes the exit file first)
/// before it is killed.
pub(crate) const CONMON_EXIT_GRACE: Duration = Duration::from_secs(5);

/// The first descriptor conmon is given beyond its stdio: the container's preserved fds start
/// here, then conmon's sync and start pipes, then the reserved ports.
const FIRST_PASSED_FD: i32 = 3;

/// What conmon makes in the bundle directory itself: the attach socket and the `ctl` and
/// `winsz` fifos. They are removed with the container (and by a failed create that made them).
const BUNDLE_NODES: [&str; 3] = ["attach", "ctl", "winsz"];

/// What an sd-notify relay adds to the bundle, socket first: conmon binds `notify/notify.sock`
/// in it (for the spec to mount into the container) and fails when the directory is missing,
/// so the directory is made for it when missing. Both go with the container.
const NOTIFY_NODES: [&str; 2] = ["notify/notify.sock", "notify"];

/// Supervises containers through conmon.
#[derive(Debug, Clone)]
pub struct ConmonMonitor {
    conmon: PathBuf,
    /// conmon's version, asked once and shared by clones.
    version: Arc<OnceCell<Version>>,
    /// conmon's own log level, for every conmon this monitor runs to bring a container up.
    log_level: Option<ConmonLogLevel>,
}

/// How much conmon says about itself (`--log-level`), to its stderr (kept in the container's
/// directory as `conmon.stderr` while it starts) and to syslog; conmon's default is
/// [`ConmonLogLevel::Warning`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConmonLogLevel {
    /// Only what makes it exit.
    Error,
    /// Also what it works around.
    Warning,
    /// Also what it does.
    Info,
    /// Also how it does it.
    Debug,
    /// Everything, the runtime's command line included.
    Trace,
}

impl ConmonLogLevel {
    /// The value of `--log-level`, as conmon spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            ConmonLogLevel::Error => "error",
            ConmonLogLevel::Warning => "warning",
            ConmonLogLevel::Info => "info",
            ConmonLogLevel::Debug => "debug",
            ConmonLogLevel::Trace => "trace",
        }
    }
}

/// One conmon run that brings a container up: a create, or a restore.
struct BringUp<'a> {
    id: &'a ContainerId,
    bundle: &'a Path,
    files: &'a ContainerFiles,
    /// The caller's pid file for the runtime, if it named one.
    pid_file: Option<PathBuf>,
    /// Where output is kept and whether stdin stays open for attach.
    stdio: &'a MonitorStdio,
    no_pivot: bool,
    no_new_keyring: bool,
    timeout: Option<Duration>,
    restore: Option<Restore<'a>>,
    exit_command: Option<&'a ExitCommand>,
    systemd: &'a SystemdPassthrough,
    /// What conmon holds for the container at fds 3, 4, ....
    preserved: Vec<OwnedFd>,
    /// How many of them the runtime is told to pass on ([`Invocation::preserved_fds`]).
    handed_on: usize,
    /// The reserved ports, bound already: conmon holds them from now on.
    ports: Vec<OwnedFd>,
    env: ConmonEnv,
}

/// The descriptors conmon is given beyond its stdio and pipes.
struct PassedFds {
    /// The container's, at fds 3, 4, ...: conmon's runtime inherits them there.
    preserved: Vec<OwnedFd>,
    /// The reserved ports, after conmon's pipes, as podman passes them.
    ports: Vec<OwnedFd>,
}

impl PassedFds {
    /// The same descriptors again, for one more conmon.
    fn try_clone(&self) -> std::io::Result<PassedFds> {
        let clone = |fds: &[OwnedFd]| fds.iter().map(OwnedFd::try_clone).collect::<std::io::Result<Vec<_>>>();
        Ok(PassedFds { preserved: clone(&self.preserved)?, ports: clone(&self.ports)? })
    }
}

impl Default for ConmonMonitor {
    fn default() -> Self {
        ConmonMonitor::new("conmon")
    }
}

/// What this monitor keeps of a container beside conmon's own files: what conmon made outside
/// the container's directory, to undo it, and where its stdio can be reached.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Kept {
    /// The bundle, where conmon binds the attach socket and makes its `ctl` fifo.
    bundle: PathBuf,
    /// The nodes of [`BUNDLE_NODES`] (and [`NOTIFY_NODES`]) that were not in the bundle before
    /// conmon ran.
    made_in_bundle: Vec<String>,
    /// The k8s-file log, when output is kept in one.
    #[serde(default)]
    log_file: Option<PathBuf>,
    /// conmon made the attach socket and the `ctl` fifo (it makes neither when output passes
    /// through).
    #[serde(default)]
    stdio_endpoints: bool,
    /// The container has a stdin an attached client writes to (`-i`, or a terminal).
    #[serde(default)]
    accepts_input: bool,
}

impl Kept {
    /// The record of container `id`; [`Error::NotFound`] when this monitor has none.
    fn of(id: &ContainerId, files: &ContainerFiles) -> Result<Kept> {
        let path = kept_path(files);
        let bytes = match std::fs::read(&path) {
            Ok(bytes) => bytes,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
                let evidence = Existence::Seen { what: "conmon's record of the container".into(), path };
                return Err(Error::NotFound { id: Some(id.clone()), evidence });
            }
            Err(err) => return Err(Error::Io { context: format!("reading {}", path.display()), source: err }),
        };
        serde_json::from_slice(&bytes).map_err(|err| Error::Parse {
            what: format!("conmon's record {}", path.display()),
            message: err.to_string(),
            source: Some(Box::new(err)),
        })
    }
}

/// Where conmon's files go, in the container's directory; the runtime's pid file where the
/// caller named one.
fn paths_of(files: &ContainerFiles, pid_file: Option<&Path>) -> Result<ConmonPaths> {
    let exit_dir = files.exit_file.parent().ok_or_else(|| Error::InvalidArgument {
        option: "ContainerFiles::exit_file".into(),
        reason: format!("{} is not in a directory", files.exit_file.display()),
    })?;
    Ok(ConmonPaths {
        container_pid_file: container_pid_file(files, pid_file),
        conmon_pid_file: files.dir.join("conmon.pid"),
        exit_dir: exit_dir.to_path_buf(),
        persist_dir: files.dir.clone(),
        socket_dir: files.dir.join("sockets"),
        log_file: files.dir.join("ctr.log"),
    })
}

/// Where the runtime writes the container's pid: the caller's file, else one in its directory.
fn container_pid_file(files: &ContainerFiles, pid_file: Option<&Path>) -> PathBuf {
    pid_file.map_or_else(|| files.dir.join("pidfile"), Path::to_path_buf)
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
    if !matches!(options.stdio, ContainerStdio::Null) {
        return Err(unsupported(
            "CreateOptions::stdio",
            "conmon owns the container's stdio: its output is kept as MonitorStdio::log says, and a client \
             reaches it with attach",
        ));
    }
    Ok(())
}

/// Restore options conmon does not serve: refused before anything runs, never dropped.
fn refuse_unserved_restore(options: &RestoreOptions) -> Result<()> {
    if options.image_path.as_os_str().is_empty() {
        // conmon would take an empty `--restore` for none, and create the container afresh.
        return Err(Error::InvalidArgument {
            option: "RestoreOptions::image_path".into(),
            reason: "a restore needs the checkpoint's image directory".into(),
        });
    }
    if options.console_socket.is_some() {
        return Err(unsupported(
            "RestoreOptions::console_socket",
            "conmon makes the console socket and holds the terminal itself",
        ));
    }
    if options.attached {
        return Err(unsupported("RestoreOptions::attached", "conmon restores detached and holds the container itself"));
    }
    if !matches!(options.stdio, ContainerStdio::Null) {
        return Err(unsupported(
            "RestoreOptions::stdio",
            "conmon owns the container's stdio: its output is kept as MonitorStdio::log says, and a client \
             reaches it with attach",
        ));
    }
    Ok(())
}

/// The embedding process's `count` listening descriptors (fds 3, 4, ..., as `sd_listen_fds`
/// numbers them), duplicated for conmon: the embedding process keeps its own.
#[allow(unsafe_code)]
fn listening_fds(count: usize) -> Result<Vec<OwnedFd>> {
    (0..count)
        .map(|index| {
            let fd = FIRST_PASSED_FD + index as i32;
            // SAFETY: `LISTEN_PID` names this process, so by systemd's protocol fds 3 to
            // 3 + LISTEN_FDS - 1 are its own and open; each is borrowed only to duplicate it.
            let borrowed = unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) };
            borrowed.try_clone_to_owned().map_err(io(format!("duplicating the listening descriptor {fd}")))
        })
        .collect()
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

/// The k8s-file log `log` asks for, if any. conmon splits its `-l` value at every colon, so a
/// path with one would be cut short: it is refused instead.
fn k8s_log_file(log: &LogDriver, paths: &ConmonPaths) -> Result<Option<PathBuf>> {
    let path = match log {
        LogDriver::MonitorDefault | LogDriver::K8sFile { path: None, .. } => paths.log_file.clone(),
        LogDriver::K8sFile { path: Some(path), .. } => path.clone(),
        LogDriver::None | LogDriver::Passthrough | LogDriver::Journald { .. } => return Ok(None),
    };
    if path.as_os_str().as_encoded_bytes().contains(&b':') {
        return Err(Error::InvalidArgument {
            option: "LogDriver::K8sFile".into(),
            reason: format!("conmon cuts a log path at its first colon, and {} has one", path.display()),
        });
    }
    Ok(Some(path))
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

/// How the container ended, as conmon recorded it; `None` while nothing is recorded.
///
/// conmon writes the exit code twice: as `<exit dir>/<id>`, the engine's exit file, and as
/// `exit` in its persist dir. It writes each through a temporary file named after it with six
/// more characters (glib's `g_file_set_contents`), which cannot be made for an id longer than
/// 248 bytes (`NAME_MAX` is 255): conmon 2.1.6 then writes only its `exit`. That one is linked
/// to the engine's exit file, so the engine and every later reader find it where they look.
fn recorded_exit(files: &ContainerFiles) -> Result<Option<Exit>> {
    if let Some(exit) = files.recorded_exit()? {
        return Ok(Some(exit));
    }
    let persisted = files.dir.join("exit");
    match std::fs::hard_link(&persisted, &files.exit_file) {
        Ok(()) => {}
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        // conmon wrote the engine's file meanwhile, with the same code.
        Err(err) if err.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(err) => {
            let context = format!("linking {} to {}", persisted.display(), files.exit_file.display());
            return Err(Error::Io { context, source: err });
        }
    }
    files.recorded_exit()
}

/// The long-lived conmon of container `id`, from its pid file, if it is still there and is
/// that conmon (its pid not reused): its command line names the container after `-c`.
fn conmon_of(id: &ContainerId, files: &ContainerFiles) -> Result<Option<Process>> {
    conmon_named(&files.dir.join("conmon.pid"), "-c", id.as_str())
}

/// The long-lived conmon whose pid is in `pid_file`, if it is still there and is that conmon
/// (its pid not reused): its command line has `value` after `flag`.
pub(crate) fn conmon_named(pid_file: &Path, flag: &str, value: &str) -> Result<Option<Process>> {
    let Some(pid) = recorded_pid(pid_file) else { return Ok(None) };
    let Some(process) = Process::open(pid)? else { return Ok(None) };
    // Read after the pidfd is open: if this is our conmon, the pid stays its own.
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    let args: Vec<&[u8]> = cmdline.split(|byte| *byte == 0).collect();
    let ours = args.windows(2).any(|pair| pair[0] == flag.as_bytes() && pair[1] == value.as_bytes());
    Ok(ours.then_some(process))
}

/// The pid conmon wrote into its pid file, if it got that far.
fn recorded_conmon_pid(files: &ContainerFiles) -> Option<u32> {
    recorded_pid(&files.dir.join("conmon.pid"))
}

/// The pid in `pid_file`, if one was written there.
pub(crate) fn recorded_pid(pid_file: &Path) -> Option<u32> {
    std::fs::read_to_string(pid_file).ok()?.trim().parse().ok()
}

/// Whether a conmon was started for the container (it writes its pid file before it answers).
fn conmon_started(files: &ContainerFiles) -> bool {
    recorded_conmon_pid(files).is_some()
}

impl ConmonMonitor {
    /// The error for a container whose conmon ended without recording its exit (or, with no
    /// conmon pid recorded, was never started for it).
    fn lost(&self, id: &ContainerId, files: &ContainerFiles) -> Error {
        match recorded_conmon_pid(files) {
            Some(pid) => Error::MonitorLost { id: id.as_str().to_owned(), monitor: self.name().to_owned(), pid },
            None => Error::NotSupervised { what: format!("container {id}, for which no conmon was started,") },
        }
    }

    /// A monitor running the conmon at `conmon` (a bare name is looked up in `PATH`). What it
    /// keeps of each container's output is the request's ([`CreateOptions::monitor_stdio`]).
    pub fn new(conmon: impl Into<PathBuf>) -> Self {
        ConmonMonitor { conmon: conmon.into(), version: Arc::new(OnceCell::new()), log_level: None }
    }

    /// This monitor with conmon's own log level set for the containers it brings up.
    pub fn with_log_level(mut self, level: ConmonLogLevel) -> Self {
        self.log_level = Some(level);
        self
    }

    /// The conmon binary this monitor runs.
    pub(crate) fn binary(&self) -> &Path {
        &self.conmon
    }

    /// The container's k8s-file log when the request names none ([`LogDriver::MonitorDefault`],
    /// or [`LogDriver::K8sFile`] without a path): in its directory, removed with it.
    pub fn log_file(files: &ContainerFiles) -> PathBuf {
        files.dir.join("ctr.log")
    }

    /// conmon's version, asked (`conmon --version`) the first time and kept: clones of this
    /// monitor share the answer. A conmon that is missing, hangs or prints something else is
    /// the typed error of the probe, asked again next time.
    pub async fn version(&self) -> Result<Version> {
        self.version.get_or_try_init(|| version::probe(&self.conmon, VERSION_PROBE_TIMEOUT)).await.copied()
    }

    /// Runs conmon to create or restore a container and reads its answer. What this conmon
    /// cannot do, and a directory that still holds a conmon's pid file, are refused before
    /// anything is made; a failure after that is undone (conmon ended, the container deleted
    /// if the runtime made it, the files removed). A transient failure of the runtime is undone
    /// so, then run again ([`Retries`]), all within the one timeout.
    async fn bring_up(&self, backend: &dyn OciBackend, up: BringUp<'_>) -> Result<Created> {
        let BringUp { id, bundle, files, .. } = up;
        let terminal = wants_terminal(bundle)?;
        let paths = paths_of(files, up.pid_file.as_deref())?;
        let log_file = k8s_log_file(&up.stdio.log, &paths)?;
        if files.exit_file.file_name() != Some(id.as_str().as_ref()) {
            return Err(Error::InvalidArgument {
                option: "ContainerFiles::exit_file".into(),
                reason: format!("conmon writes <exit dir>/{id}, not {}", files.exit_file.display()),
            });
        }
        let call = Invocation {
            id,
            bundle,
            paths: &paths,
            stdio: up.stdio,
            no_pivot: up.no_pivot,
            no_new_keyring: up.no_new_keyring,
            terminal,
            restore: up.restore,
            log_level: self.log_level,
            exit_command: up.exit_command,
            systemd: up.systemd,
            preserved_fds: up.handed_on,
        };
        let argv = create_argv(&self.conmon, backend, &call);
        self.require_options(&argv).await?;
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
        let relay = up.systemd.sdnotify_socket.is_some();
        let to_be_made = BUNDLE_NODES.iter().chain(if relay { &NOTIFY_NODES[..] } else { &[] });
        let kept = Kept {
            bundle: bundle.to_path_buf(),
            made_in_bundle: to_be_made.map(|node| (*node).to_owned()).collect(),
            log_file,
            stdio_endpoints: up.stdio.log != LogDriver::Passthrough,
            accepts_input: terminal || up.stdio.stdin != AttachStdin::Closed,
        };
        let timeout = up.timeout.unwrap_or(DEFAULT_CREATE_TIMEOUT);
        let fds = PassedFds { preserved: up.preserved, ports: up.ports };
        let attempts = async {
            let mut retries = Retries::new();
            loop {
                // Each conmon takes the descriptors; this process holds them until the answer is in.
                let passed = fds.try_clone().map_err(io("passing conmon its descriptors"))?;
                let answer = self.run(argv.clone(), &paths, kept.clone(), files, passed, &up.env).await?;
                if let Answer::Refused(message) = &answer {
                    let failure = Failure { argv: argv.clone(), status: Exit::Unknown, message: message.clone() };
                    if retries.take_for(backend, &failure) {
                        self.undo(backend, id, files, up.pid_file.as_deref()).await;
                        continue;
                    }
                }
                return Ok(answer);
            }
        };
        let finished = tokio::time::timeout(timeout, attempts).await;
        let answer = match finished {
            Ok(Ok(answer)) => answer,
            Ok(Err(err)) => {
                self.undo(backend, id, files, up.pid_file.as_deref()).await;
                return Err(err);
            }
            Err(_) => {
                self.undo(backend, id, files, up.pid_file.as_deref()).await;
                return Err(Error::Timeout { argv, after: timeout, left_behind: None });
            }
        };
        match answer {
            Answer::Created(pid) => Ok(Created { pid }),
            Answer::Refused(message) => {
                self.undo(backend, id, files, up.pid_file.as_deref()).await;
                let failure = Failure { argv, status: Exit::Unknown, message };
                Err(backend.classify_failure(Some(id), failure))
            }
        }
    }

    /// Makes conmon's directories and this monitor's record (`kept`, with those of the bundle's
    /// nodes conmon is about to make that are not there yet), then runs conmon.
    async fn run(
        &self,
        argv: Vec<OsString>,
        paths: &ConmonPaths,
        mut kept: Kept,
        files: &ContainerFiles,
        fds: PassedFds,
        env: &ConmonEnv,
    ) -> Result<Answer> {
        // conmon writes no exit file at all when its persist dir is missing.
        for dir in [&paths.exit_dir, &paths.persist_dir, &paths.socket_dir] {
            private_dir(dir)?;
        }
        remove_file(&paths.container_pid_file)?;
        kept.made_in_bundle.retain(|node| !watch::exists(&kept.bundle.join(node)));
        let json = serde_json::to_vec(&kept).map_err(|err| Error::Parse {
            what: "conmon's record".into(),
            message: err.to_string(),
            source: None,
        })?;
        std::fs::write(kept_path(files), json).map_err(io("writing conmon's record"))?;
        if kept.made_in_bundle.iter().any(|node| node == NOTIFY_NODES[1]) {
            let dir = kept.bundle.join(NOTIFY_NODES[1]);
            std::fs::create_dir(&dir).map_err(io(format!("creating {}", dir.display())))?;
        }
        self.spawn_passing(&argv, &files.dir, fds, env).await
    }

    /// Asks conmon's version (once) and refuses `argv` if it holds an option that came in a
    /// later conmon, before anything runs.
    pub(crate) async fn require_options(&self, argv: &[OsString]) -> Result<()> {
        version::require_options(argv, self.version().await?)
    }

    /// [`ConmonMonitor::spawn_passing`] with no descriptor for the container.
    pub(crate) async fn spawn(
        &self,
        argv: &[OsString],
        dir: &Path,
        ports: Vec<OwnedFd>,
        env: &ConmonEnv,
    ) -> Result<Answer> {
        self.spawn_passing(argv, dir, PassedFds { preserved: Vec::new(), ports }, env).await
    }

    /// Starts conmon with `fds` laid out as [`PassedFds`] says and the environment `env`
    /// changes, tells it to go on, and reads its answer. conmon's error output goes to a file in
    /// `dir`, which is also its working directory: conmon 2.1.6 writes an `oom` file into its
    /// working directory (besides its persist dir) on every OOM kill, and one written into the
    /// embedding program's would be left behind.
    async fn spawn_passing(&self, argv: &[OsString], dir: &Path, fds: PassedFds, env: &ConmonEnv) -> Result<Answer> {
        let pipe = || {
            nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)
                .map_err(|errno| Error::Io { context: "making conmon's pipes".into(), source: errno.into() })
        };
        let (sync_read, sync_write) = pipe()?;
        let (start_read, start_write) = pipe()?;
        let stderr_file = stderr_path(dir);
        let stderr = std::fs::File::create(&stderr_file).map_err(io(format!("creating {}", stderr_file.display())))?;
        let PassedFds { preserved, ports } = fds;
        let sync_fd = FIRST_PASSED_FD + preserved.len() as i32;
        let start_fd = sync_fd + 1;
        let mut command = tokio::process::Command::new(&argv[0]);
        command
            // A conmon that never forks is still this child when the call times out: it is
            // killed (and reaped) with the call, not left to run with its pipes.
            .kill_on_drop(true)
            .args(&argv[1..])
            .current_dir(dir)
            .env("_OCI_SYNCPIPE", sync_fd.to_string())
            .env("_OCI_STARTPIPE", start_fd.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr);
        for (name, value) in &env.set {
            command.env(name, value);
        }
        for name in &env.remove {
            command.env_remove(name);
        }
        let passed = preserved.into_iter().chain([sync_write, start_read]).chain(ports);
        let mappings: Vec<FdMapping> =
            passed.zip(FIRST_PASSED_FD..).map(|(parent_fd, child_fd)| FdMapping { parent_fd, child_fd }).collect();
        command.fd_mappings(mappings).map_err(|_| Error::Io {
            context: "passing conmon its pipes".into(),
            source: std::io::ErrorKind::InvalidInput.into(),
        })?;
        let spawned = command.spawn();
        // The child's ends (and this process's hold on the ports and the preserved fds) are
        // closed here, so that the sync pipe ends when conmon's do and the rest is conmon's alone.
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
        end_conmon(id, files).await;
        if watch::exists(&container_pid_file(files, options_pid_file)) {
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

/// Kills the container's conmon, if it runs, and waits (bounded) for it to end.
async fn end_conmon(id: &ContainerId, files: &ContainerFiles) {
    if let Ok(Some(conmon)) = conmon_of(id, files) {
        if let Err(err) = conmon.kill() {
            tracing::warn!(%id, %err, "cannot kill conmon");
        }
        conmon.exited_within(CONMON_EXIT_GRACE).await;
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
            let path = kept_record.bundle.join(node);
            match std::fs::remove_dir(&path) {
                Err(err) if err.kind() == std::io::ErrorKind::NotADirectory => remove_file(&path)?,
                Err(err) if err.kind() != std::io::ErrorKind::NotFound => {
                    return Err(Error::Io { context: format!("removing {}", path.display()), source: err });
                }
                _ => {}
            }
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
        &[
            Capability::SurvivesEmbedder,
            Capability::Logs,
            Capability::Attach,
            Capability::Resize,
            Capability::Exec,
            Capability::ExecTimeout,
            Capability::Oom,
            Capability::Restore,
        ]
    }

    async fn create(&self, backend: &dyn OciBackend, req: CreateRequest) -> Result<Created> {
        let CreateRequest { id, bundle, mut options, launch, files } = req;
        refuse_unserved(&options)?;
        let embedder = EmbedderEnv::of_this_process();
        let listening = match options.systemd.listen_fds {
            true => listening_fds(embedder.listening_fds())?,
            false => Vec::new(),
        };
        let handed_on =
            options.preserve_fds.len() + if options.systemd.replace_listen_pid { 0 } else { listening.len() };
        let preserved = listening.into_iter().chain(std::mem::take(&mut options.preserve_fds)).collect();
        let up = BringUp {
            id: &id,
            bundle: &bundle,
            files: &files,
            pid_file: options.pid_file.clone(),
            stdio: &options.monitor_stdio,
            no_pivot: options.no_pivot,
            no_new_keyring: options.no_new_keyring,
            timeout: options.timeout,
            restore: None,
            exit_command: options.exit_command.as_ref(),
            systemd: &options.systemd,
            preserved,
            handed_on,
            ports: ports::reserve(&options.reserved_ports)?,
            env: conmon_env(&embedder, options.systemd.clone()),
        };
        let created = self.bring_up(backend, up).await?;
        // conmon never starts the container: `run` is create, then the backend's start.
        if launch == Launch::Run
            && let Err(err) = backend.start(&id).await
        {
            self.undo(backend, &id, &files, options.pid_file.as_deref()).await;
            return Err(err);
        }
        Ok(created)
    }

    async fn restore(&self, backend: &dyn OciBackend, req: RestoreRequest) -> Result<Created> {
        let RestoreRequest { id, bundle, options, files } = req;
        refuse_unserved_restore(&options)?;
        let up = BringUp {
            id: &id,
            bundle: &bundle,
            files: &files,
            pid_file: options.pid_file.clone(),
            stdio: &options.monitor_stdio,
            no_pivot: false,
            no_new_keyring: false,
            timeout: options.timeout,
            restore: Some(Restore {
                images: &options.image_path,
                runtime_opts: backend.restore_option_args(&options).await?,
            }),
            exit_command: options.exit_command.as_ref(),
            systemd: &SystemdPassthrough::default(),
            preserved: Vec::new(),
            handed_on: 0,
            ports: Vec::new(),
            env: conmon_env(&EmbedderEnv::of_this_process(), SystemdPassthrough::default()),
        };
        self.bring_up(backend, up).await
    }

    async fn exec(&self, backend: &dyn OciBackend, req: ExecRequest) -> Result<ExecSession> {
        exec::start(self, backend, req).await
    }

    async fn adopt(&self, _id: &ContainerId, _pid: u32, _files: &ContainerFiles) -> Result<()> {
        // conmon still holds it and writes its exit file: nothing to start.
        Ok(())
    }

    async fn exit_status(&self, _id: &ContainerId, files: &ContainerFiles) -> Result<Option<Exit>> {
        recorded_exit(files)
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
            None => match recorded_exit(files)? {
                Some(exit) => Ok(exit),
                // conmon records the exit before it ends: without a record, nobody will.
                None => Err(self.lost(id, files)),
            },
        }
    }

    async fn ensure_supervised(&self, id: &ContainerId, files: &ContainerFiles) -> Result<()> {
        // Whether conmon lives is asked first: it records the exit before it ends, so a gone
        // conmon and no exit file read afterwards mean it never will.
        if !conmon_started(files) || conmon_of(id, files)?.is_some() || recorded_exit(files)?.is_some() {
            return Ok(());
        }
        Err(self.lost(id, files))
    }

    async fn wait_exec(&self, session: &ExecSession, files: &ContainerFiles) -> Result<Exit> {
        exec::wait(self, session, files).await
    }

    async fn stop_exec(&self, session: &ExecSession, files: &ContainerFiles, timeout: Duration) -> Result<Exit> {
        exec::stop(self, session, files, timeout).await
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

    async fn attach(&self, id: &ContainerId, files: &ContainerFiles) -> Result<Box<dyn AttachedStdio>> {
        let kept = self.with_stdio_endpoints(id, files, "attach")?;
        Ok(Box::new(attach::connect(&kept.bundle, kept.accepts_input).await?))
    }

    async fn resize(&self, id: &ContainerId, files: &ContainerFiles, size: TerminalSize) -> Result<()> {
        let kept = self.with_stdio_endpoints(id, files, "resize")?;
        attach::control(&kept.bundle, ControlMessage::Resize(size))
    }

    async fn attach_exec(&self, session: &ExecSession, files: &ContainerFiles) -> Result<Box<dyn AttachedStdio>> {
        Ok(Box::new(exec::attach(session, files).await?))
    }

    async fn resize_exec(&self, session: &ExecSession, files: &ContainerFiles, size: TerminalSize) -> Result<()> {
        exec::resize(session, files, size)
    }

    async fn reopen_log(&self, id: &ContainerId, files: &ContainerFiles) -> Result<()> {
        let kept = self.with_stdio_endpoints(id, files, "reopen_log")?;
        attach::control(&kept.bundle, ControlMessage::ReopenLog)
    }

    async fn logs(&self, id: &ContainerId, files: &ContainerFiles, opts: LogOptions) -> Result<Box<dyn LogReader>> {
        let Some(log_file) = Kept::of(id, files)?.log_file else {
            return Err(unsupported("logs", "the container's output is not kept in a k8s-file log"));
        };
        let follow = match opts.follow {
            true => Some((files.clone(), conmon_of(id, files)?)),
            false => None,
        };
        Ok(Box::new(K8sFileReader::open(&log_file, follow)?))
    }
}

impl ConmonMonitor {
    /// The record of a running container whose conmon made the attach socket and `ctl` fifo.
    fn with_stdio_endpoints(&self, id: &ContainerId, files: &ContainerFiles, operation: &'static str) -> Result<Kept> {
        let kept = Kept::of(id, files)?;
        if !kept.stdio_endpoints {
            return Err(unsupported(
                operation,
                "the container's output passes through conmon (LogDriver::Passthrough), which then makes no \
                 attach socket and no control fifo",
            ));
        }
        if files.recorded_exit()?.is_some() {
            return Err(Error::InvalidState {
                id: Some(id.clone()),
                evidence: runtime_core::WrongState::Seen { operation, needs: Status::Running, found: Status::Stopped },
            });
        }
        Ok(kept)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn paths() -> ConmonPaths {
        let files = ContainerFiles { exit_file: "/s/exits/c1".into(), dir: "/s/containers/c1".into() };
        paths_of(&files, None).unwrap()
    }

    #[test]
    fn a_k8s_file_log_is_the_default_one_or_the_callers() {
        let default = k8s_log_file(&LogDriver::MonitorDefault, &paths()).unwrap();
        assert_eq!(default.as_deref(), Some(Path::new("/s/containers/c1/ctr.log")));
        let own = LogDriver::K8sFile { path: Some("/var/log/c1.log".into()), max_size: None };
        assert_eq!(k8s_log_file(&own, &paths()).unwrap().as_deref(), Some(Path::new("/var/log/c1.log")));
        for kept_elsewhere in [LogDriver::None, LogDriver::Passthrough, LogDriver::Journald { tag: None }] {
            assert_eq!(k8s_log_file(&kept_elsewhere, &paths()).unwrap(), None, "{kept_elsewhere:?}");
        }
    }

    #[test]
    fn a_log_path_conmon_would_cut_at_a_colon_is_refused() {
        let colon = LogDriver::K8sFile { path: Some("/var/log/c1:web.log".into()), max_size: None };
        let refused = k8s_log_file(&colon, &paths());
        assert!(matches!(&refused, Err(Error::InvalidArgument { option, .. }) if option == "LogDriver::K8sFile"));
    }

    /// A container's files in a fresh state root, laid out as the engine lays them out.
    fn container_files(root: &Path) -> ContainerFiles {
        let files = ContainerFiles { exit_file: root.join("exits/c1"), dir: root.join("containers/c1") };
        for dir in [root.join("exits"), files.dir.clone()] {
            std::fs::create_dir_all(dir).unwrap();
        }
        files
    }

    #[test]
    fn an_exit_only_in_conmons_persist_dir_becomes_the_engines_exit_file() {
        let root = tempfile::tempdir().unwrap();
        let files = container_files(root.path());
        // conmon's format: decimal, no newline; 7 is what `exit 7` leaves.
        std::fs::write(files.dir.join("exit"), "7").unwrap();
        assert_eq!(recorded_exit(&files).unwrap(), Some(Exit::Exited(7)));
        assert_eq!(std::fs::read_to_string(&files.exit_file).unwrap(), "7", "the engine's exit file");
    }

    #[test]
    fn the_engines_exit_file_is_read_as_conmon_wrote_it() {
        let root = tempfile::tempdir().unwrap();
        let files = container_files(root.path());
        std::fs::write(&files.exit_file, "137").unwrap();
        std::fs::write(files.dir.join("exit"), "137").unwrap();
        assert_eq!(recorded_exit(&files).unwrap(), Some(Exit::Signaled(runtime_core::Signal::KILL)));
    }

    #[test]
    fn no_exit_recorded_anywhere_is_none() {
        let root = tempfile::tempdir().unwrap();
        let files = container_files(root.path());
        assert_eq!(recorded_exit(&files).unwrap(), None);
        assert!(!files.exit_file.exists(), "nothing is made up");
    }
}
