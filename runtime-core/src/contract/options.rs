//! Options of each operation, covering what runc 1.1 accepts.
//!
//! Defaults are what a runtime does without flags. Options a runtime does not have are refused
//! with `Error::Unsupported` by the dialect before anything runs, never dropped silently.
//!
//! Options that hold descriptors (stdio, preserved fds) are taken by value: the call hands the
//! child's ends to the runtime and closes them in the caller, so a caller's pipe reader sees end
//! of file when the container closes its end, without having to remember to drop anything.

use std::ffi::OsString;
use std::net::IpAddr;
use std::os::fd::OwnedFd;
use std::path::PathBuf;
use std::time::Duration;

use oci_spec::runtime::Process;
use tokio::net::unix::pipe;

use crate::contract::error::{Error, Result};
use crate::contract::output::MonitorStdio;

/// How the container's stdio is wired at `create`.
///
/// The container's init inherits the stdio `create` was given, so the library never gives it a
/// pipe it reads itself (that is how containerd's `runc` crate hangs until the container exits).
/// The runtime's own errors come from its `--log` file instead.
#[derive(Debug, Default)]
pub enum ContainerStdio {
    /// `/dev/null` for all three streams.
    #[default]
    Null,
    /// The calling process's own stdin, stdout and stderr.
    Inherit,
    /// File descriptors the caller owns, e.g. pipe ends from [`ContainerStdio::pipes`]; a
    /// missing one is `/dev/null`.
    Fds {
        /// The container's stdin.
        stdin: Option<OwnedFd>,
        /// The container's stdout.
        stdout: Option<OwnedFd>,
        /// The container's stderr.
        stderr: Option<OwnedFd>,
    },
}

/// The caller's ends of the pipes made by [`ContainerStdio::pipes`]; [`StdioPipes::into_async`]
/// turns them into tokio pipes for streaming.
#[derive(Debug)]
pub struct StdioPipes {
    /// Write end of the container's stdin.
    pub stdin: OwnedFd,
    /// Read end of the container's stdout.
    pub stdout: OwnedFd,
    /// Read end of the container's stderr.
    pub stderr: OwnedFd,
}

impl ContainerStdio {
    /// stdin `/dev/null`, stdout and stderr appended to the file at `path` (made 0600 if
    /// missing): a container's log that outlives the call and needs no reader.
    pub fn log_file(path: &std::path::Path) -> Result<ContainerStdio> {
        use std::os::unix::fs::OpenOptionsExt;
        let open = || {
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .mode(0o600)
                .custom_flags(libc::O_CLOEXEC)
                .open(path)
                .map_err(|err| Error::io(format!("opening the log file {}", path.display()), err))
        };
        let stdout = OwnedFd::from(open()?);
        let stderr = stdout.try_clone().map_err(|err| Error::io("duplicating the log file", err))?;
        Ok(ContainerStdio::Fds { stdin: None, stdout: Some(stdout), stderr: Some(stderr) })
    }

    /// Three fresh pipes: the container gets one end of each, the caller keeps the other.
    /// All ends are close-on-exec until they are handed to the runtime.
    pub fn pipes() -> Result<(ContainerStdio, StdioPipes)> {
        let pipe = || nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(|errno| Error::io("pipe", errno.into()));
        let (stdin_read, stdin_write) = pipe()?;
        let (stdout_read, stdout_write) = pipe()?;
        let (stderr_read, stderr_write) = pipe()?;
        Ok((
            ContainerStdio::Fds { stdin: Some(stdin_read), stdout: Some(stdout_write), stderr: Some(stderr_write) },
            StdioPipes { stdin: stdin_write, stdout: stdout_read, stderr: stderr_read },
        ))
    }
}

impl StdioPipes {
    /// The same ends as tokio pipes: write the container's stdin, read its stdout and stderr as
    /// they come. Must be called inside a tokio runtime.
    pub fn into_async(self) -> Result<AsyncStdioPipes> {
        let io = |context: &'static str| move |err| Error::io(context, err);
        Ok(AsyncStdioPipes {
            stdin: pipe::Sender::from_owned_fd(self.stdin).map_err(io("registering the stdin pipe"))?,
            stdout: pipe::Receiver::from_owned_fd(self.stdout).map_err(io("registering the stdout pipe"))?,
            stderr: pipe::Receiver::from_owned_fd(self.stderr).map_err(io("registering the stderr pipe"))?,
        })
    }
}

/// [`StdioPipes`] as tokio pipes.
#[derive(Debug)]
pub struct AsyncStdioPipes {
    /// Write end of the container's stdin; drop it to send end of file.
    pub stdin: pipe::Sender,
    /// Read end of the container's stdout.
    pub stdout: pipe::Receiver,
    /// Read end of the container's stderr.
    pub stderr: pipe::Receiver,
}

/// Options of `create`.
#[derive(Debug, Default)]
pub struct CreateOptions {
    /// `--pid-file`: where the runtime writes the init pid. The pid is returned either way; the
    /// library uses a private file when this is `None`. A file already there is removed before
    /// the runtime runs: only a pid written during the call is trusted.
    pub pid_file: Option<PathBuf>,
    /// `--console-socket`: the AF_UNIX socket that receives the pty master (terminal containers).
    pub console_socket: Option<PathBuf>,
    /// `--no-pivot`: use `chroot`-like `MS_MOVE` instead of `pivot_root` (ramdisk roots).
    pub no_pivot: bool,
    /// `--no-new-keyring`: keep the caller's session keyring.
    pub no_new_keyring: bool,
    /// Descriptors the container gets as fds 3, 4, ... (`--preserve-fds N`): the runtime is
    /// given them at those numbers and passes them on. Through conmon they are conmon's fds 3,
    /// 4, ... (its pipes and the reserved ports come after them), which the runtime it runs
    /// inherits.
    pub preserve_fds: Vec<OwnedFd>,
    /// How the container's stdio is wired.
    pub stdio: ContainerStdio,
    /// What the engine's monitor keeps of the container's stdio (its log, a stdin to attach
    /// to); a monitor refuses what it cannot serve. For the engine's monitor only: a backend
    /// called on its own has no monitor, and leaves the container's stdio as [`Self::stdio`]
    /// wires it.
    pub monitor_stdio: MonitorStdio,
    /// Overrides the backend's timeout for this call.
    pub timeout: Option<Duration>,
    /// Host ports the monitor binds before anything runs and holds while the container lives,
    /// so that nothing else takes them (podman's port reservation). Served by a monitor that
    /// outlives the call (conmon); the runtime has no such option, and a monitor or backend
    /// that cannot hold them refuses them with [`Error::Unsupported`].
    pub reserved_ports: Vec<PortReservation>,
    /// The embedding process's systemd environment handed to the monitor, as podman hands it
    /// to conmon; nothing of it by default, whatever the embedding process's environment holds.
    pub systemd: SystemdPassthrough,
    /// A program the monitor runs once the container has exited and its exit is recorded
    /// (conmon's `--exit-command`; podman's `container cleanup`). Served by a monitor that
    /// outlives the embedding process, so that it runs even when that process is gone; one that
    /// cannot promise that refuses it with [`Error::Unsupported`].
    pub exit_command: Option<ExitCommand>,
}

impl CreateOptions {
    /// The first option set here that only a monitor can serve, as the caller spells it; a
    /// backend called directly, or a monitor that does not serve it, refuses it by this name.
    pub fn monitor_only_option(&self) -> Option<&'static str> {
        if !self.reserved_ports.is_empty() {
            return Some("CreateOptions::reserved_ports");
        }
        if self.systemd.notify_socket {
            return Some("CreateOptions::systemd.notify_socket");
        }
        if self.systemd.listen_fds {
            return Some("CreateOptions::systemd.listen_fds");
        }
        if self.systemd.sdnotify_socket.is_some() {
            return Some("CreateOptions::systemd.sdnotify_socket");
        }
        if self.systemd.replace_listen_pid {
            return Some("CreateOptions::systemd.replace_listen_pid");
        }
        if self.exit_command.is_some() {
            return Some("CreateOptions::exit_command");
        }
        None
    }
}

/// A program run after a container exits: `path` with `args` (argv\[0\] is `path`), started
/// `delay_secs` seconds after the exit is recorded, in the monitor's environment with stdio on
/// `/dev/null`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ExitCommand {
    /// The program, by absolute path (it is not looked up in `PATH`).
    pub path: PathBuf,
    /// Its arguments after argv\[0\] (`--exit-command-arg`, one each).
    pub args: Vec<OsString>,
    /// Seconds to wait after the exit before running it (`--exit-delay`, whole seconds as conmon
    /// counts them); 0 runs it at once.
    pub delay_secs: u16,
}

/// The transport of a [`PortReservation`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PortProtocol {
    /// A listening TCP socket holds the port.
    Tcp,
    /// A bound UDP socket holds the port.
    Udp,
    /// Not reserved (as in podman): a warning is logged and the port is left alone.
    Sctp,
}

/// A host port held for a container: bound by the monitor, so another process that binds it
/// gets `EADDRINUSE` until the container is deleted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PortReservation {
    /// TCP, UDP or SCTP.
    pub protocol: PortProtocol,
    /// The host address; `0.0.0.0` for every IPv4 address.
    pub host_ip: IpAddr,
    /// The host port.
    pub port: u16,
}

/// What of the embedding process's systemd environment goes to the monitor, and how the
/// monitor takes part in systemd's protocols (podman's sd-notify modes and socket activation).
/// Each variable switch passes the variable only when the embedding process has it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SystemdPassthrough {
    /// `NOTIFY_SOCKET`, into the monitor's environment and so the runtime's it runs, as
    /// podman passes it to conmon.
    pub notify_socket: bool,
    /// Socket activation: the embedding process's listening descriptors (fds 3 to
    /// 3 + `LISTEN_FDS` - 1, when `LISTEN_PID` names it) to the monitor, ahead of
    /// [`CreateOptions::preserve_fds`], with `LISTEN_FDS` and `LISTEN_PID=1` in its environment,
    /// as podman passes them to conmon. The container gets them as fds 3, 4, ... and the
    /// preserved ones after them; with [`Self::replace_listen_pid`] the runtime also sets
    /// `LISTEN_FDS` in the container's environment.
    pub listen_fds: bool,
    /// The host's sd-notify socket the monitor relays the container's notifications to
    /// (conmon's `--sdnotify-socket`, podman's `--sdnotify=container`). conmon listens on
    /// `notify/notify.sock` in the bundle (the directory is made when missing, and both go with
    /// the container); the spec is the caller's to mount that directory into the container and
    /// name the socket in its `NOTIFY_SOCKET` (podman mounts it at `/run/notify`).
    pub sdnotify_socket: Option<PathBuf>,
    /// Sets `LISTEN_PID` to the runtime's pid whatever it was (conmon's
    /// `--replace-listen-pid`), so that the runtime takes the listening descriptors for its own
    /// and hands them on to the container.
    pub replace_listen_pid: bool,
}

/// A container the runtime created (or restored).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Created {
    /// The container's init pid, as the runtime wrote it to its pid file.
    pub pid: u32,
}

/// Where an exec'd process's stdio goes.
#[derive(Debug, Default)]
pub enum ExecStdio {
    /// stdin is `/dev/null`; stdout and stderr are read by the library, up to the output limit,
    /// and returned in [`ExecOutcome::Exited`]. Only for an exec that is waited for: a detached
    /// one refuses it with [`crate::Error::InvalidArgument`].
    #[default]
    Capture,
    /// Wired like a container's stdio: `/dev/null`, the caller's own streams, or descriptors the
    /// caller owns. For streaming, give it [`ContainerStdio::pipes`] and read the caller's ends
    /// (see [`StdioPipes::into_async`]) while the exec runs.
    Wired(ContainerStdio),
}

/// Options of `exec`; the process itself is an argument of [`crate::OciBackend::exec`].
#[derive(Debug, Default)]
pub struct ExecOptions {
    /// Where the process's stdio goes.
    pub stdio: ExecStdio,
    /// Allocate a terminal (sets `process.terminal`); the runtime hands it over on
    /// `console_socket`, and is refused with [`crate::Error::InvalidArgument`] without one. A
    /// monitor that holds an exec's terminal itself (conmon) takes no socket and refuses one:
    /// there the terminal is reached with `Engine::attach_exec` and `Engine::resize_exec`.
    pub tty: bool,
    /// Return once the process started instead of waiting for it. A switch of
    /// [`crate::OciBackend::exec`]: `Engine::exec` refuses it, `Engine::exec_detached` always
    /// detaches.
    pub detach: bool,
    /// `--pid-file`. A file already there is removed before the runtime runs: only a pid
    /// written during the call is trusted.
    pub pid_file: Option<PathBuf>,
    /// `--console-socket`.
    pub console_socket: Option<PathBuf>,
    /// Descriptors the process gets as fds 3, 4, ... (`--preserve-fds N`).
    pub preserve_fds: Vec<OwnedFd>,
    /// The limit of an exec that is waited for: `None` (the default) is none, it runs until its
    /// process ends, however long. On expiry (and when the call's future is dropped) the
    /// process and every process it started are killed, and the call fails with
    /// [`crate::Error::Timeout`]. For a detached exec, the limit of the runtime call that starts
    /// it (the backend's timeout when `None`), except under a monitor with
    /// [`crate::Capability::ExecTimeout`] (conmon's `-T`): there it bounds the exec itself, and
    /// `wait_exec` reports its expiry as [`crate::Error::Timeout`] once every process the exec
    /// started is ended.
    pub timeout: Option<Duration>,
    /// Overrides the backend's bound on captured output, per stream.
    pub output_limit: Option<usize>,
}

/// A process to run in a container: `args` with the defaults of an OCI process (not a terminal,
/// `/` as cwd). Anything else is set on the returned [`Process`] with its setters.
pub fn process<I, S>(args: I) -> Process
where
    I: IntoIterator<Item = S>,
    S: Into<String>,
{
    let mut process = Process::default();
    process.set_terminal(Some(false));
    process.set_args(Some(args.into_iter().map(Into::into).collect()));
    process.set_cwd("/".into());
    process
}

/// Output the library read from a process, up to a limit.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Captured {
    /// The bytes, at most the limit.
    pub bytes: Vec<u8>,
    /// True when the process wrote more than the limit: the rest was read and dropped.
    pub truncated: bool,
}

/// What an `exec` gave back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExecOutcome {
    /// The process ran to its end.
    Exited {
        /// Its exit code (128 + signal when killed, as the runtimes report it).
        code: i32,
        /// What it wrote to stdout, when captured (empty otherwise).
        stdout: Captured,
        /// What it wrote to stderr, when captured (empty otherwise).
        stderr: Captured,
    },
    /// The process was started in the background.
    Detached {
        /// Its pid, from the pid file.
        pid: u32,
    },
}

/// Which processes `kill` signals.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum KillScope {
    /// The container's init process.
    #[default]
    Init,
    /// Every process of the container (`kill --all`).
    All,
}

/// What `delete` may delete.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DeleteMode {
    /// Only a container that is stopped (or created and never started); a running one is
    /// `Error::InvalidState`.
    #[default]
    IfStopped,
    /// Any container: a running one is killed first (`delete --force`).
    Force,
}

/// How CRIU treats cgroups on checkpoint and restore.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ManageCgroupsMode {
    /// Restore cgroup properties only when the cgroup is created (CRIU's default).
    #[default]
    Soft,
    /// Restore all properties.
    Full,
    /// Fail if anything cannot be restored.
    Strict,
    /// Leave cgroups alone.
    Ignore,
}

impl ManageCgroupsMode {
    /// The value of `--manage-cgroups-mode`.
    pub fn as_str(self) -> &'static str {
        match self {
            ManageCgroupsMode::Soft => "soft",
            ManageCgroupsMode::Full => "full",
            ManageCgroupsMode::Strict => "strict",
            ManageCgroupsMode::Ignore => "ignore",
        }
    }
}

/// Options of `checkpoint`.
#[derive(Debug, Clone, Default)]
pub struct CheckpointOptions {
    /// `--image-path`: where CRIU writes the images.
    pub image_path: PathBuf,
    /// `--work-path`: where CRIU writes its logs.
    pub work_path: Option<PathBuf>,
    /// `--parent-path`: a previous (pre-dump) image to diff against.
    pub parent_path: Option<PathBuf>,
    /// `--leave-running`: keep the container running after the dump.
    pub leave_running: bool,
    /// `--tcp-established`: dump established TCP connections.
    pub tcp_established: bool,
    /// `--ext-unix-sk`: allow external unix sockets.
    pub ext_unix_sk: bool,
    /// `--shell-job`: allow a process with a controlling terminal.
    pub shell_job: bool,
    /// `--file-locks`: dump file locks.
    pub file_locks: bool,
    /// `--pre-dump`: dump memory only, for an iterative migration.
    pub pre_dump: bool,
    /// `--manage-cgroups-mode`; `None` leaves the runtime's default.
    pub manage_cgroups_mode: Option<ManageCgroupsMode>,
    /// `--lazy-pages`: leave memory pages to be served lazily.
    pub lazy_pages: bool,
    /// Overrides the backend's timeout (large containers dump slowly).
    pub timeout: Option<Duration>,
}

/// Options of `restore`; the bundle is an argument of [`crate::OciBackend::restore`], as for
/// `create`.
#[derive(Debug, Default)]
pub struct RestoreOptions {
    /// `--image-path`: the checkpoint to restore.
    pub image_path: PathBuf,
    /// `--work-path`: where CRIU writes its logs.
    pub work_path: Option<PathBuf>,
    /// `--pid-file`. The pid is returned either way; the library uses a private file when this
    /// is `None`. A file already there is removed before the runtime runs: only a pid written
    /// during the call is trusted.
    pub pid_file: Option<PathBuf>,
    /// Stay attached: without `--detach` the runtime (and the call) lasts as long as the
    /// restored container, so give such a call a `timeout` that fits. By default the call
    /// returns once the container is restored.
    pub attached: bool,
    /// `--console-socket`.
    pub console_socket: Option<PathBuf>,
    /// `--no-subreaper`: do not make the runtime a subreaper of the restored process.
    pub no_subreaper: bool,
    /// `--no-pivot`.
    pub no_pivot: bool,
    /// `--tcp-established`.
    pub tcp_established: bool,
    /// `--ext-unix-sk`.
    pub ext_unix_sk: bool,
    /// `--shell-job`.
    pub shell_job: bool,
    /// `--file-locks`.
    pub file_locks: bool,
    /// `--manage-cgroups-mode`.
    pub manage_cgroups_mode: Option<ManageCgroupsMode>,
    /// `--lazy-pages`.
    pub lazy_pages: bool,
    /// How the restored container's stdio is wired.
    pub stdio: ContainerStdio,
    /// What the engine's monitor keeps of the restored container's stdio, as for
    /// [`CreateOptions::monitor_stdio`].
    pub monitor_stdio: MonitorStdio,
    /// Overrides the backend's timeout.
    pub timeout: Option<Duration>,
    /// Run once the restored container has exited, as [`CreateOptions::exit_command`] (podman
    /// gives conmon its cleanup command on a restore as on a create).
    pub exit_command: Option<ExitCommand>,
}

impl RestoreOptions {
    /// As [`CreateOptions::monitor_only_option`].
    pub fn monitor_only_option(&self) -> Option<&'static str> {
        self.exit_command.as_ref().map(|_| "RestoreOptions::exit_command")
    }
}
