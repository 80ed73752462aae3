//! `fake-conmon`: a stand-in for conmon 2.1.6 holding only what `ConmonMonitor` drives, so the
//! monitor's create, wait and clean-up paths, and its answers to a broken conmon, can be tested
//! on any machine and on demand. `tests/conmon_differential.rs` holds it to the real conmon.
//!
//! What it does, in conmon's order (`src/conmon.c`), for the command lines `ConmonMonitor`
//! builds: a create (`--api-version 1 -c -u -n -r -b -p -P --exit-dir --persist-dir
//! --socket-dir-path -l ... [--log-size-max N] [--runtime-arg ...] [--no-pivot]
//! [--no-new-keyring] [-t] [--log-tag T] [--log-level L] [--exit-command P [--exit-command-arg
//! A]... [--exit-delay S]] [--sdnotify-socket S] [--replace-listen-pid] [-s] [--runtime-opt
//! ...]`), the same with `--restore IMAGES [--runtime-opt ...]`, and a
//! background exec (`--api-version 1 -c -u -r -p -P --exit-dir --persist-dir -l ... -e
//! --exec-process-spec SPEC [-T SECONDS]`, no bundle, or with a terminal `-b DIR --full-attach
//! -t` after it); any other option is refused:
//!
//! 0. with `--version` among the options, prints what 2.1.6 prints ([`VERSION_OUTPUT`]) and
//!    exits 0, before anything else (`ConmonMonitor` asks once, before its first create);
//! 1. opens the k8s-file log, then blocks until a byte (or end of file) arrives on the start
//!    pipe (`_OCI_STARTPIPE`);
//! 2. forks: the process the caller started writes the other's pid to the `-P` file and exits
//!    0 at once; the one that stays starts a session, becomes a subreaper (so the container's
//!    init becomes its child once the runtime exits), and puts `/dev/null` on its stdio;
//! 3. makes what conmon makes for attach: the link `<socket dir>/<cuuid>` to the bundle (none
//!    with `--full-attach`), the `attach` socket and the `ctl` and `winsz` fifos in the bundle
//!    (of which only the socket is served: output to its clients, see 6);
//! 4. runs `<runtime> [--systemd-cgroup] <runtime args> create --bundle B --pid-file P [--no-pivot]
//!    [--no-new-keyring] <runtime opts> [--console-socket S] <id>`, for a restore `restore` with
//!    `--detach --image-path IMAGES --work-path B` after the create's flags, for an exec
//!    `exec --pid-file P --process SPEC --detach <runtime opts> <id>`, with stdin `/dev/null`
//!    and stdout and stderr on pipes (with `-t`, the terminal's master the runtime sends over
//!    the console socket is stdout); the runtime inherits what the caller passed at fds 3, 4,
//!    ... that is not conmon's own pipe (`--preserve-fds` among the runtime opts passes them on);
//! 5. answers on the sync pipe (`_OCI_SYNCPIPE`): `{"data": <pid>}` with the pid the runtime
//!    wrote, or, when the runtime failed, `{"data": -1, "message": "<its stderr>"}` (nothing when
//!    it said nothing, as 2.1.6) and exits 1;
//! 6. logs the container's output until its init (or the exec'd process) exits, then what is
//!    left in the pipes, and sends each chunk read to every client attached by then (one
//!    packet: the stream's byte, 2 stdout or 3 stderr, and the chunk), closing them at the end;
//!    or, when `-T` expires first, kills the process's group and takes `-1` as the exit;
//!    writes the exit (decimal, 128 + the signal, no newline, by a rename) to `<persist
//!    dir>/exit` and then `<exit dir>/<id>`, removes the attach socket (through the link,
//!    which stays; one bound with `--full-attach` stays too);
//! 7. with `--exit-command`, waits `--exit-delay` seconds, runs the command with its
//!    `--exit-command-arg`s (stdio `/dev/null`) and waits for it, exiting with its status when
//!    that is not 0; then exits.
//!
//! Not imitated: OOM records (`oom`), input through the attach socket and the control fifos'
//! protocol, an exec's second sync message (its exit, which the exit files carry too),
//! conmon's own log (`--log-level` is checked as conmon checks it and then unused, as is
//! `--log-tag`, which only journald logs carry), the sd-notify relay (`--sdnotify-socket`), `LISTEN_PID` (`--replace-listen-pid`),
//! and every option `ConmonMonitor` does not pass. Faults on demand: `faults.rs`.
//!
//! It runs as the `fake-conmon` binary, or as a harness test binary linked under the name
//! `conmon` ([`crate::fake::FakeConmon`]).
#![allow(unsafe_code)]

mod faults;
mod log;

use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io::{IoSliceMut, Read, Write};
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};

use nix::fcntl::{FcntlArg, FdFlag, OFlag, fcntl};
use nix::sys::signal::{Signal, raise};
use nix::sys::socket::{AddressFamily, Backlog, ControlMessageOwned, MsgFlags, SockFlag, SockType, UnixAddr};
use nix::sys::stat::Mode;
use nix::unistd::{ForkResult, Pid};
use tokio::io::unix::AsyncFd;

use faults::Fault;
use log::{K8sLog, Stream};

/// The name the fake takes over under when it is a harness test binary's argv\[0\].
pub const PROGRAM_NAME: &str = "conmon";

/// The file beside the program's link that holds its faults.
pub const FAULTS_FILE: &str = "faults";

/// What `conmon --version` prints on stdout, as Debian's 2.1.6 prints it.
pub const VERSION_OUTPUT: &str = "conmon version 2.1.6\ncommit: unknown\n";

/// How much of the runtime's error output one answer carries (conmon reads `BUF_SIZE - 1`).
const MESSAGE_MAX: usize = 8191;

/// Where output goes (`-l`).
#[derive(Debug, PartialEq, Eq)]
enum LogDriver {
    K8sFile(PathBuf),
    None,
    Passthrough,
}

/// The command line, as `ConmonMonitor` builds it.
#[derive(Debug)]
struct Options {
    cid: String,
    cuuid: String,
    runtime: PathBuf,
    runtime_args: Vec<OsString>,
    /// `--runtime-opt`s, put after the runtime command's own flags.
    runtime_opts: Vec<OsString>,
    /// What the runtime is run for.
    action: Action,
    /// `-b`; an exec has none (and then no attach nodes).
    bundle: Option<PathBuf>,
    container_pid_file: PathBuf,
    conmon_pid_file: Option<PathBuf>,
    exit_dir: Option<PathBuf>,
    persist_dir: Option<PathBuf>,
    socket_dir: Option<PathBuf>,
    /// `--full-attach`: the attach socket is bound in the bundle itself, with no link.
    full_attach: bool,
    log: LogDriver,
    log_size_max: Option<u64>,
    no_pivot: bool,
    no_new_keyring: bool,
    terminal: bool,
    /// `-T`: seconds after which the process is killed with its process group.
    timeout: Option<u64>,
    /// `-s`: the runtime is told `--systemd-cgroup` first (not for an exec).
    systemd_cgroup: bool,
    /// `--exit-command` with its `--exit-command-arg`s.
    exit_command: Option<(PathBuf, Vec<OsString>)>,
    /// `--exit-delay`, in seconds.
    exit_delay: u64,
}

/// What conmon runs the runtime for.
#[derive(Debug, PartialEq, Eq)]
enum Action {
    /// `create`.
    Create,
    /// `--restore IMAGES`: `restore --detach --image-path IMAGES --work-path <bundle>`.
    Restore(PathBuf),
    /// `-e --exec-process-spec SPEC`: `exec --pid-file P --process SPEC --detach`.
    Exec(PathBuf),
}

/// What the command line asks for.
#[derive(Debug)]
enum Request {
    /// `--version`, whatever else is given (conmon checks nothing else first).
    Version,
    Run(Box<Options>),
}

impl Options {
    fn parse(args: &[OsString]) -> Result<Request, String> {
        let mut values: Vec<(&str, &OsStr)> = Vec::new();
        let (mut runtime_args, mut runtime_opts, mut exit_args) = (Vec::new(), Vec::new(), Vec::new());
        let (mut no_pivot, mut no_new_keyring, mut terminal, mut version) = (false, false, false, false);
        let (mut exec, mut systemd_cgroup, mut full_attach) = (false, false, false);
        let mut tokens = args.iter();
        while let Some(token) = tokens.next() {
            let name = token.to_str().ok_or_else(|| format!("unknown option {token:?}"))?;
            match name {
                "--no-pivot" => no_pivot = true,
                "--no-new-keyring" => no_new_keyring = true,
                "-t" | "--terminal" => terminal = true,
                "--version" => version = true,
                "-e" | "--exec" => exec = true,
                "-s" | "--systemd-cgroup" => systemd_cgroup = true,
                // The relay's socket and the listen pid are not imitated (see the module docs).
                "--replace-listen-pid" => {}
                "--full-attach" => full_attach = true,
                "--api-version"
                | "-c"
                | "-u"
                | "-n"
                | "-r"
                | "-b"
                | "-p"
                | "-P"
                | "--exit-dir"
                | "--persist-dir"
                | "--socket-dir-path"
                | "-l"
                | "--log-size-max"
                | "--runtime-arg"
                | "--runtime-opt"
                | "--exec-process-spec"
                | "--restore"
                | "-T"
                | "--log-tag"
                | "--log-level"
                | "--exit-command"
                | "--exit-command-arg"
                | "--exit-delay"
                | "--sdnotify-socket" => {
                    let value = tokens.next().ok_or_else(|| format!("{name} needs a value"))?;
                    match name {
                        "--runtime-arg" => runtime_args.push(value.clone()),
                        "--runtime-opt" => runtime_opts.push(value.clone()),
                        "--exit-command-arg" => exit_args.push(value.clone()),
                        _ => values.push((name, value)),
                    }
                }
                other => return Err(format!("unknown option {other}")),
            }
        }
        if version {
            return Ok(Request::Version);
        }
        let value = |name: &str| values.iter().rev().find(|(given, _)| *given == name).map(|(_, value)| *value);
        let required = |name: &str| value(name).ok_or_else(|| format!("{name} is required"));
        let text = |name: &str| required(name).map(|value| value.to_string_lossy().into_owned());
        if value("--api-version").is_none_or(|version| version != "1") {
            return Err("only --api-version 1 is imitated".into());
        }
        let log = match required("-l")?.as_bytes() {
            b"none" => LogDriver::None,
            b"passthrough" => LogDriver::Passthrough,
            driver => match driver.strip_prefix(b"k8s-file:") {
                Some(path) if !path.is_empty() => LogDriver::K8sFile(PathBuf::from(OsStr::from_bytes(path))),
                _ => return Err(format!("log driver {:?} is not imitated", value("-l"))),
            },
        };
        let log_size_max = match value("--log-size-max") {
            Some(max) => Some(max.to_str().and_then(|max| max.parse().ok()).ok_or("--log-size-max takes bytes")?),
            None => None,
        };
        let path = |name: &str| value(name).map(PathBuf::from);
        // conmon's own refusals (`process_cli`).
        let action = match (exec, path("--restore"), path("--exec-process-spec")) {
            (true, Some(_), _) => return Err("Cannot use 'exec' and 'restore' at the same time".into()),
            (true, None, None) => return Err("Exec process spec path not provided. Use --exec-process-spec".into()),
            (true, None, Some(spec)) => Action::Exec(spec),
            (false, Some(images), _) => Action::Restore(images),
            (false, None, _) => Action::Create,
        };
        let bundle = match action {
            Action::Exec(_) => path("-b"),
            Action::Create | Action::Restore(_) => Some(required("-b")?.into()),
        };
        // conmon's `set_conmon_logs`, case aside.
        if let Some(level) = value("--log-level")
            && !["error", "fatal", "panic", "warn", "warning", "info", "debug", "trace"]
                .contains(&level.to_string_lossy().to_ascii_lowercase().as_str())
        {
            return Err(format!("No such log level {}", level.to_string_lossy()));
        }
        let exit_delay = match value("--exit-delay") {
            Some(seconds) => seconds.to_str().and_then(|s| s.parse().ok()).ok_or("--exit-delay takes seconds")?,
            None => 0,
        };
        let timeout = match value("-T") {
            Some(seconds) => Some(seconds.to_str().and_then(|s| s.parse().ok()).ok_or("-T takes seconds")?),
            None => None,
        };
        Ok(Request::Run(Box::new(Options {
            cid: text("-c")?,
            cuuid: text("-u")?,
            runtime: required("-r")?.into(),
            runtime_args,
            runtime_opts,
            action,
            bundle,
            container_pid_file: required("-p")?.into(),
            conmon_pid_file: path("-P"),
            exit_dir: path("--exit-dir"),
            persist_dir: path("--persist-dir"),
            socket_dir: path("--socket-dir-path"),
            full_attach,
            log,
            log_size_max,
            no_pivot,
            no_new_keyring,
            terminal,
            timeout: timeout.filter(|seconds| *seconds > 0),
            systemd_cgroup,
            exit_command: path("--exit-command").map(|command| (command, exit_args)),
            exit_delay,
        })))
    }
}

/// True when argv\[0\] is [`PROGRAM_NAME`]: a harness test binary exec'd under that link hands
/// over to [`main`].
pub fn invoked_as_fake() -> bool {
    let arg0 = std::env::args_os().next().unwrap_or_default();
    Path::new(&arg0).file_name() == Some(OsStr::new(PROGRAM_NAME))
}

/// Runs the fake conmon on the process's own arguments.
pub fn main() -> ExitCode {
    let arg0 = PathBuf::from(std::env::args_os().next().unwrap_or_default());
    let args: Vec<OsString> = std::env::args_os().skip(1).collect();
    let faults_file = arg0.parent().unwrap_or(Path::new(".")).join(FAULTS_FILE);
    let faults = match faults::load(&faults_file) {
        Ok(faults) => faults,
        Err(message) => return fail(&message, 2),
    };
    let options = match Options::parse(&args) {
        Ok(Request::Run(options)) => *options,
        Ok(Request::Version) => {
            print!("{VERSION_OUTPUT}");
            return ExitCode::SUCCESS;
        }
        Err(message) => return fail(&message, 1),
    };
    if let Some(number) = faults.iter().find_map(|fault| if let Fault::Signal(n) = fault { Some(*n) } else { None }) {
        eprintln!("fake-conmon: killing itself with signal {number}, as asked");
        Signal::try_from(number).map(raise).ok();
        return ExitCode::from(u8::try_from(128 + number).unwrap_or(255));
    }
    match start(options, &faults) {
        Ok(code) => ExitCode::from(code),
        Err(message) => fail(&message, 1),
    }
}

fn fail(message: &str, code: u8) -> ExitCode {
    eprintln!("fake-conmon: {message}");
    ExitCode::from(code)
}

/// The pipe the caller passed as fd number `$variable`, made close-on-exec so that the runtime
/// does not inherit it (conmon's `get_pipe_fd_from_env`).
fn pipe_from_env(variable: &str) -> Result<Option<File>, String> {
    let Some(number) = std::env::var_os(variable) else { return Ok(None) };
    let fd: RawFd = number.to_str().and_then(|text| text.parse().ok()).ok_or(format!("unable to parse {variable}"))?;
    // SAFETY: the caller opened this descriptor for this process and named it in the
    // environment for conmon alone; nothing else here owns it.
    let pipe = unsafe { File::from_raw_fd(fd) };
    fcntl(&pipe, FcntlArg::F_SETFD(FdFlag::FD_CLOEXEC)).map_err(|errno| format!("{variable} {fd}: {errno}"))?;
    Ok(Some(pipe))
}

/// What happens in the process the caller started: the log opened, the start byte waited for,
/// the fork; only the process that stays returns.
fn start(options: Options, faults: &[Fault]) -> Result<u8, String> {
    let sync = pipe_from_env("_OCI_SYNCPIPE")?;
    let log = match &options.log {
        LogDriver::K8sFile(path) => Some(
            K8sLog::open(path.clone(), options.log_size_max)
                .map_err(|err| format!("failed to open log file {}: {err}", path.display()))?,
        ),
        LogDriver::None | LogDriver::Passthrough => None,
    };
    if let Some(mut start) = pipe_from_env("_OCI_STARTPIPE")? {
        start.read(&mut [0u8; 1]).map_err(|err| format!("start-pipe read failed: {err}"))?;
    }
    if faults.contains(&Fault::HangBeforeFork) {
        sleep_forever();
    }
    // SAFETY: this process has one thread (the fake takes over at the top of `main`, before any
    // runtime or thread is started), so the child may go on running ordinary Rust code.
    match unsafe { nix::unistd::fork() }.map_err(|errno| format!("fork: {errno}"))? {
        ForkResult::Parent { child } => {
            if let Some(path) = &options.conmon_pid_file {
                write_atomic(path, child.to_string().as_bytes())
                    .map_err(|err| format!("failed to write conmon pidfile: {err}"))?;
            }
            Ok(0)
        }
        ForkResult::Child => {
            let code = Daemon { options, faults, sync, log }.run();
            std::process::exit(code.into())
        }
    }
}

/// What a hung conmon does.
fn sleep_forever() -> ! {
    loop {
        std::thread::sleep(std::time::Duration::from_secs(3600));
    }
}

/// Writes `path` whole or not at all, as glib's `g_file_set_contents`: a file beside it renamed
/// over it.
fn write_atomic(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    let mut temporary = path.as_os_str().to_owned();
    temporary.push(format!(".{}.tmp", std::process::id()));
    std::fs::write(&temporary, contents)?;
    std::fs::rename(&temporary, path)
}

/// The conmon that stays, from the fork to the container's exit.
struct Daemon<'a> {
    options: Options,
    faults: &'a [Fault],
    sync: Option<File>,
    log: Option<K8sLog>,
}

/// The attach socket, listening while this conmon runs, as conmon holds it.
struct AttachSocket {
    /// Where it is removed when this conmon ends: reached through the link, and none with
    /// `--full-attach` (conmon 2.1.6 leaves a socket it bound in the bundle itself).
    removed_at_exit: Option<PathBuf>,
    socket: OwnedFd,
}

/// The runtime's output streams, as conmon holds them.
struct Outputs {
    /// The container's stdout: a pipe, or the terminal's master once the runtime sent it.
    stdout: Option<OwnedFd>,
    /// Where the runtime and the container write errors (none in passthrough).
    stderr: Option<OwnedFd>,
    /// The attach socket, whose clients get the output as it is read.
    attach: Option<OwnedFd>,
}

impl Daemon<'_> {
    fn has(&self, fault: &Fault) -> bool {
        self.faults.contains(fault)
    }

    fn passthrough(&self) -> bool {
        self.options.log == LogDriver::Passthrough
    }

    /// Writes one answer on the sync pipe.
    fn answer(&mut self, line: &str) {
        if let Some(sync) = &mut self.sync {
            // A caller that went away cannot be told anything.
            let _ = sync.write_all(line.as_bytes());
        }
    }

    /// Answers that the create failed, in `message`'s words, framed as conmon frames it.
    fn refuse(&mut self, message: &str) {
        let quoted = serde_json::Value::from(message).to_string();
        self.answer(&format!("{{\"data\": -1, \"message\": {quoted}}}\n"));
    }

    fn run(mut self) -> u8 {
        match self.supervise() {
            Ok(code) => code,
            Err(message) => {
                eprintln!("fake-conmon: {message}");
                1
            }
        }
    }

    fn supervise(&mut self) -> Result<u8, String> {
        nix::unistd::setsid().map_err(|errno| format!("setsid: {errno}"))?;
        nix::sys::prctl::set_child_subreaper(true).map_err(|errno| format!("Failed to set as subreaper: {errno}"))?;
        if !self.passthrough() {
            let null = File::options().read(true).write(true).open("/dev/null").map_err(|err| err.to_string())?;
            for dup in [nix::unistd::dup2_stdin, nix::unistd::dup2_stdout, nix::unistd::dup2_stderr] {
                dup(&null).map_err(|errno| format!("disconnecting stdio: {errno}"))?;
            }
        }
        let attach = self.make_attach_nodes()?;
        let listener = attach.as_ref().map(|attach| attach.socket.try_clone()).transpose();
        let listener = listener.map_err(|err| format!("attach socket: {err}"))?;
        let console = if self.options.terminal { Some(ConsoleSocket::new()?) } else { None };
        let result = self.create_and_wait(console.as_ref(), listener);
        if let Some(path) = attach.and_then(|attach| attach.removed_at_exit) {
            let _ = std::fs::remove_file(path);
        }
        drop(console);
        reap_orphans();
        result
    }

    /// The link `<socket dir>/<cuuid>` to the bundle (none with `--full-attach`), and in the
    /// bundle the `attach` socket and the `ctl` and `winsz` fifos, as conmon makes them unless it
    /// logs by passthrough. Returns the socket, which conmon removes when it ends unless it bound
    /// it in the bundle itself (the link and the fifos stay).
    fn make_attach_nodes(&self) -> Result<Option<AttachSocket>, String> {
        let (Some(bundle), false) = (&self.options.bundle, self.passthrough()) else {
            return Ok(None);
        };
        let link = match (&self.options.socket_dir, self.options.full_attach) {
            (_, true) => bundle.clone(),
            (Some(socket_dir), false) => {
                let link = socket_dir.join(&self.options.cuuid);
                let _ = std::fs::remove_file(&link);
                std::os::unix::fs::symlink(bundle, &link)
                    .map_err(|err| format!("symlink {}: {err}", link.display()))?;
                link
            }
            (None, false) => return Ok(None),
        };
        let path = link.join("attach");
        let _ = std::fs::remove_file(&path);
        let socket = nix::sys::socket::socket(AddressFamily::Unix, SockType::SeqPacket, SockFlag::SOCK_CLOEXEC, None)
            .map_err(|errno| format!("attach socket: {errno}"))?;
        // Bound through the link's descriptor, as conmon binds it: a socket's path is limited
        // to 108 bytes, and the link's own path may be longer.
        let dir = nix::fcntl::open(&link, OFlag::O_PATH | OFlag::O_CLOEXEC, Mode::empty())
            .map_err(|errno| format!("failed to open socket path parent dir {}: {errno}", link.display()))?;
        let address = UnixAddr::new(format!("/proc/self/fd/{}/attach", dir.as_raw_fd()).as_str())
            .map_err(|errno| format!("attach socket address: {errno}"))?;
        nix::sys::socket::bind(socket.as_raw_fd(), &address).map_err(|errno| format!("bind attach: {errno}"))?;
        nix::sys::socket::listen(&socket, Backlog::new(10).map_err(|errno| errno.to_string())?)
            .map_err(|errno| format!("listen on attach: {errno}"))?;
        for fifo in ["ctl", "winsz"] {
            let path = bundle.join(fifo);
            let _ = std::fs::remove_file(&path);
            nix::unistd::mkfifo(&path, Mode::from_bits_truncate(0o660))
                .map_err(|errno| format!("Failed to mkfifo at {}: {errno}", path.display()))?;
        }
        let removed_at_exit = (!self.options.full_attach).then_some(path);
        Ok(Some(AttachSocket { removed_at_exit, socket }))
    }

    /// Runs the runtime's `create`, answers, and supervises the container until it exits.
    fn create_and_wait(&mut self, console: Option<&ConsoleSocket>, attach: Option<OwnedFd>) -> Result<u8, String> {
        let pipe = || nix::unistd::pipe2(OFlag::O_CLOEXEC).map_err(|errno| format!("pipe: {errno}"));
        let outputs = Outputs { stdout: None, stderr: None, attach };
        let (mut outputs, mut command) = (outputs, self.runtime_command(console));
        if !self.passthrough() {
            command.stdin(Stdio::null());
            if console.is_none() {
                let (read, write) = pipe()?;
                outputs.stdout = Some(read);
                command.stdout(write);
            } else {
                command.stdout(Stdio::null());
            }
            let (read, write) = pipe()?;
            outputs.stderr = Some(read);
            command.stderr(write);
        }
        let mut runtime =
            command.spawn().map_err(|err| format!("running {}: {err}", self.options.runtime.display()))?;
        // The write ends are the runtime's (and the container's) alone now.
        drop(command);
        let status = runtime.wait().map_err(|err| format!("Failed to wait for `runtime create`: {err}"))?;
        if !status.success() {
            let said = outputs.stderr.as_ref().map(read_available).unwrap_or_default();
            if !said.is_empty() {
                let message = String::from_utf8_lossy(&said[..said.len().min(MESSAGE_MAX)]).into_owned();
                self.refuse(&message);
            }
            return Err(format!("Failed to create container: {status}"));
        }
        if let Some(console) = console {
            outputs.stdout = Some(console.receive_terminal()?);
        }
        let pid = std::fs::read_to_string(&self.options.container_pid_file)
            .ok()
            .and_then(|text| text.trim().parse::<i32>().ok())
            .ok_or_else(|| format!("Failed to read pidfile {}", self.options.container_pid_file.display()))?;
        if self.has(&Fault::NeverAnswer) {
            sleep_forever();
        }
        if self.has(&Fault::DieBeforeSync) {
            return Err("dying before the sync answer, as asked".into());
        }
        if let Some(Fault::Refuse(message)) = self.faults.iter().find(|fault| matches!(fault, Fault::Refuse(_))) {
            self.refuse(message);
            return Err("refused the create, as asked".into());
        }
        if self.has(&Fault::Garbage) {
            self.answer(faults::GARBAGE);
        } else {
            self.answer(&format!("{{\"data\": {pid}}}\n"));
        }
        let exit = self.log_until_exit(Pid::from_raw(pid), outputs)?;
        if self.has(&Fault::NoExitFile) {
            return Ok(0);
        }
        self.record_exit(exit)?;
        let code = u8::try_from(exit & 0xff).unwrap_or(255);
        Ok(self.run_exit_command()?.filter(|status| *status != 0).unwrap_or(code))
    }

    /// The exit command, `--exit-delay` seconds after the exit was recorded, waited for; its
    /// exit status (`None` without one).
    fn run_exit_command(&self) -> Result<Option<u8>, String> {
        let Some((command, args)) = &self.options.exit_command else { return Ok(None) };
        std::thread::sleep(std::time::Duration::from_secs(self.options.exit_delay));
        let status = Command::new(command)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .map_err(|err| format!("running the exit command {}: {err}", command.display()))?;
        Ok(Some(status.code().map_or(255, |code| u8::try_from(code & 0xff).unwrap_or(255))))
    }

    /// The runtime's `create`, `restore` or `exec`, as conmon's `configure_runtime_args` spells
    /// them.
    fn runtime_command(&self, console: Option<&ConsoleSocket>) -> Command {
        let options = &self.options;
        let mut command = Command::new(&options.runtime);
        if options.systemd_cgroup && !matches!(options.action, Action::Exec(_)) {
            command.arg("--systemd-cgroup");
        }
        command.args(&options.runtime_args);
        match (&options.action, &options.bundle) {
            (Action::Exec(spec), _) => {
                command.arg("exec").arg("--pid-file").arg(&options.container_pid_file);
                command.arg("--process").arg(spec).arg("--detach");
                if options.terminal {
                    command.arg("--tty");
                }
            }
            (Action::Create | Action::Restore(_), bundle) => {
                let bundle = bundle.as_deref().unwrap_or(Path::new("."));
                let verb = if let Action::Restore(_) = options.action { "restore" } else { "create" };
                command.arg(verb).arg("--bundle").arg(bundle).arg("--pid-file").arg(&options.container_pid_file);
                if options.no_pivot {
                    command.arg("--no-pivot");
                }
                if options.no_new_keyring {
                    command.arg("--no-new-keyring");
                }
                if let Action::Restore(images) = &options.action {
                    command.arg("--detach").arg("--image-path").arg(images).arg("--work-path").arg(bundle);
                }
            }
        }
        command.args(&options.runtime_opts);
        if let Some(console) = console {
            command.arg("--console-socket").arg(&console.path);
        }
        command.arg(&options.cid);
        command
    }

    /// Logs the container's output until its init `pid` exits and then what is left in the
    /// streams, sending each chunk to the clients attached by then; returns the exit as conmon
    /// records it: the code, or 128 + the signal. When `-T` expires first, the process's group
    /// is killed (the process alone if its group is 1's), nothing more is logged, and the exit
    /// is conmon's `-1`. The clients are let go (their sockets closed) at the end.
    fn log_until_exit(&mut self, pid: Pid, outputs: Outputs) -> Result<i32, String> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .enable_time()
            .build()
            .map_err(|err| format!("tokio: {err}"))?;
        let log = &mut self.log;
        let timeout = self.options.timeout.map(std::time::Duration::from_secs);
        runtime.block_on(async move {
            let (mut stdout, mut stderr) = (watch(outputs.stdout)?, watch(outputs.stderr)?);
            let (listener, mut clients) = (watch(outputs.attach)?, Vec::new());
            let mut exited = std::pin::pin!(tokio::task::spawn_blocking(move || wait_for(pid)));
            let mut expired = std::pin::pin!(async move {
                match timeout {
                    Some(timeout) => tokio::time::sleep(timeout).await,
                    None => std::future::pending().await,
                }
            });
            let exit = loop {
                tokio::select! {
                    exit = &mut exited => break exit.map_err(|err| format!("waiting for the container: {err}"))??,
                    () = &mut expired => {
                        match nix::unistd::getpgid(Some(pid)) {
                            Ok(group) if group.as_raw() > 1 => nix::sys::signal::killpg(group, Signal::SIGKILL),
                            _ => nix::sys::signal::kill(pid, Signal::SIGKILL),
                        }
                        .map_err(|errno| format!("killing {pid} on the timeout: {errno}"))?;
                        // Reaped, so that it does not linger as a zombie of whoever adopts it.
                        let _ = exited.await;
                        return Ok(-1);
                    }
                    read = next_chunk(stdout.as_ref()) => keep(log, &mut clients, Stream::Stdout, &mut stdout, read),
                    read = next_chunk(stderr.as_ref()) => keep(log, &mut clients, Stream::Stderr, &mut stderr, read),
                    client = next_client(listener.as_ref()) => clients.extend(client),
                }
            };
            // conmon's drain_stdio: what the container wrote before it ended, without waiting for
            // anything that still holds the streams.
            for (stream, source) in [(Stream::Stdout, stdout), (Stream::Stderr, stderr)] {
                let Some(source) = source else { continue };
                loop {
                    let chunk = read_available(source.get_ref());
                    if chunk.is_empty() {
                        break;
                    }
                    keep(log, &mut clients, stream, &mut None, Ok(chunk));
                }
            }
            Ok(exit)
        })
    }

    /// Writes `exit` to `<persist dir>/exit`, then `<exit dir>/<id>`.
    fn record_exit(&self, exit: i32) -> Result<(), String> {
        let text = exit.to_string();
        let persist = self.options.persist_dir.as_ref().map(|dir| dir.join("exit"));
        let exit_dir = self.options.exit_dir.as_ref().map(|dir| dir.join(&self.options.cid));
        for path in persist.iter().chain(&exit_dir) {
            write_atomic(path, text.as_bytes())
                .map_err(|err| format!("Failed to write {text} to exit file {}: {err}", path.display()))?;
        }
        Ok(())
    }
}

/// One of the container's output streams, watched on the reactor; `None` once it ended.
type Source = Option<AsyncFd<OwnedFd>>;

/// `fd`, non-blocking and registered with the reactor.
fn watch(fd: Option<OwnedFd>) -> Result<Source, String> {
    let Some(fd) = fd else { return Ok(None) };
    fcntl(&fd, FcntlArg::F_SETFL(OFlag::O_NONBLOCK)).map_err(|errno| format!("fcntl: {errno}"))?;
    // SAFETY: the descriptor is owned by the `AsyncFd`: it stays open, under the same number,
    // until the `AsyncFd` is dropped.
    let source = unsafe { AsyncFd::register(fd) }.map_err(|err| format!("watching output: {}", err.into_parts().1))?;
    Ok(Some(source))
}

/// The next chunk `source` has (empty at its end); never resolves for a source that ended.
async fn next_chunk(source: Option<&AsyncFd<OwnedFd>>) -> std::io::Result<Vec<u8>> {
    let Some(source) = source else { return std::future::pending().await };
    loop {
        let mut ready = source.readable().await?;
        let mut buffer = vec![0u8; 8192];
        match ready.try_io(|fd| nix::unistd::read(fd.get_ref(), &mut buffer).map_err(std::io::Error::from)) {
            Ok(Ok(read)) => {
                buffer.truncate(read);
                return Ok(buffer);
            }
            // A terminal whose every slave is closed reads EIO: that is its end.
            Ok(Err(err)) if err.raw_os_error() == Some(libc::EIO) => return Ok(Vec::new()),
            Ok(Err(err)) => return Err(err),
            Err(_would_block) => continue,
        }
    }
}

/// The next client of the attach socket (none when it could not be accepted); never resolves
/// without a socket.
async fn next_client(listener: Option<&AsyncFd<OwnedFd>>) -> Option<OwnedFd> {
    let Some(listener) = listener else { return std::future::pending().await };
    loop {
        let mut ready = listener.readable().await.ok()?;
        let accepted = ready.try_io(|fd| {
            nix::sys::socket::accept4(fd.as_raw_fd(), SockFlag::SOCK_CLOEXEC).map_err(std::io::Error::from)
        });
        match accepted {
            // SAFETY: accept4 returned a new descriptor that nothing else owns.
            Ok(Ok(client)) => return Some(unsafe { OwnedFd::from_raw_fd(client) }),
            Ok(Err(_)) => return None,
            Err(_would_block) => continue,
        }
    }
}

/// Logs a chunk read from `stream` and sends it to each attached client as conmon does: one
/// packet of the stream's byte (2 stdout, 3 stderr) and the chunk. A client that is gone is
/// dropped; one whose socket is full misses the packet. At its end, forgets the `source`.
fn keep(
    log: &mut Option<K8sLog>,
    clients: &mut Vec<OwnedFd>,
    stream: Stream,
    source: &mut Source,
    read: std::io::Result<Vec<u8>>,
) {
    match read {
        Ok(chunk) if !chunk.is_empty() => {
            if let Some(log) = log.as_mut()
                && let Err(err) = log.write(stream, &chunk)
            {
                eprintln!("fake-conmon: write_k8s_log failed: {err}");
            }
            let mut packet = vec![match stream {
                Stream::Stdout => 2,
                Stream::Stderr => 3,
            }];
            packet.extend_from_slice(&chunk);
            let flags = MsgFlags::MSG_DONTWAIT | MsgFlags::MSG_NOSIGNAL;
            clients.retain(|client| match nix::sys::socket::send(client.as_raw_fd(), &packet, flags) {
                Ok(_) | Err(nix::errno::Errno::EAGAIN) => true,
                Err(_) => false,
            });
        }
        _ => *source = None,
    }
}

/// What a non-blocking descriptor holds now, up to one buffer (empty at its end or when it has
/// nothing).
fn read_available(fd: &OwnedFd) -> Vec<u8> {
    let _ = fcntl(fd, FcntlArg::F_SETFL(OFlag::O_NONBLOCK));
    let mut buffer = vec![0u8; MESSAGE_MAX];
    match nix::unistd::read(fd.as_fd(), &mut buffer) {
        Ok(read) => buffer.truncate(read),
        Err(_) => buffer.clear(),
    }
    buffer
}

/// Waits for the container's init (this process's child, as the subreaper it was handed to).
/// The raw status is read, as conmon's `get_exit_status` reads it: nix's `waitpid` refuses a
/// death by a real-time signal, which has no `Signal` of its own.
fn wait_for(pid: Pid) -> Result<i32, String> {
    let mut status = 0;
    loop {
        // SAFETY: `waitpid` writes one int through a pointer to a live local.
        if unsafe { libc::waitpid(pid.as_raw(), &mut status, 0) } == pid.as_raw() {
            if libc::WIFEXITED(status) {
                return Ok(libc::WEXITSTATUS(status));
            }
            if libc::WIFSIGNALED(status) {
                return Ok(128 + libc::WTERMSIG(status));
            }
            continue;
        }
        match nix::errno::Errno::last() {
            nix::errno::Errno::EINTR => {}
            errno => return Err(format!("waiting for the container init {pid}: {errno}")),
        }
    }
}

/// Reaps whatever else was handed to this subreaper and has ended, as conmon's `reap_children`.
fn reap_orphans() {
    let mut status = 0;
    // SAFETY: as in `wait_for`.
    while unsafe { libc::waitpid(-1, &mut status, libc::WNOHANG) } > 0 {}
}

/// The socket the runtime sends a terminal's master over (conmon's `setup_console_socket`), in
/// a directory of its own that goes with it.
struct ConsoleSocket {
    _dir: tempfile::TempDir,
    path: PathBuf,
    listener: UnixListener,
}

impl ConsoleSocket {
    fn new() -> Result<Self, String> {
        let dir = tempfile::Builder::new().prefix("conmon-term.").tempdir().map_err(|err| err.to_string())?;
        let path = dir.path().join("console.sock");
        let listener = UnixListener::bind(&path).map_err(|err| format!("console socket: {err}"))?;
        Ok(ConsoleSocket { _dir: dir, path, listener })
    }

    /// The master the runtime sent while it ran (it has exited: a connection is there or never
    /// will be).
    fn receive_terminal(&self) -> Result<OwnedFd, String> {
        let missing = || "Runtime did not set up terminal".to_owned();
        self.listener.set_nonblocking(true).map_err(|err| err.to_string())?;
        let (stream, _): (UnixStream, _) = self.listener.accept().map_err(|_| missing())?;
        let mut bytes = [0u8; 256];
        let mut iov = [IoSliceMut::new(&mut bytes)];
        let mut space = nix::cmsg_space!([RawFd; 1]);
        let message =
            nix::sys::socket::recvmsg::<()>(stream.as_raw_fd(), &mut iov, Some(&mut space), MsgFlags::MSG_CMSG_CLOEXEC)
                .map_err(|errno| format!("receiving the terminal: {errno}"))?;
        for control in message.cmsgs().map_err(|errno| errno.to_string())? {
            if let ControlMessageOwned::ScmRights(fds) = control
                && let Some(&fd) = fds.first()
            {
                // SAFETY: the kernel just installed this descriptor in this process for this
                // message; nothing else owns it.
                return Ok(unsafe { OwnedFd::from_raw_fd(fd) });
            }
        }
        Err(missing())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(text: &str) -> Vec<OsString> {
        text.split_whitespace().map(OsString::from).collect()
    }

    #[test]
    fn conmons_own_options_parse_and_others_are_refused() {
        let line = "--api-version 1 -c c1 -u c1 -n c1 -r /usr/sbin/runc --runtime-arg --root \
            --runtime-arg /run/r -b /b -p /d/pidfile -P /d/conmon.pid --exit-dir /e --persist-dir /d \
            --socket-dir-path /d/sockets -l k8s-file:/d/ctr.log --log-size-max 10 --no-pivot -t";
        let Ok(Request::Run(options)) = Options::parse(&words(line)) else { panic!("{line} is not a create") };
        assert_eq!(options.cid, "c1");
        assert_eq!(options.runtime_args, words("--root /run/r"));
        assert_eq!(options.log, LogDriver::K8sFile("/d/ctr.log".into()));
        assert_eq!(options.log_size_max, Some(10));
        assert!(options.no_pivot && options.terminal && !options.no_new_keyring);
        assert!(Options::parse(&words(&format!("{line} --bogus"))).is_err());
        assert!(Options::parse(&words("-c c1 -u c1 -r /r -b /b -p /p -l none")).is_err(), "no api version");
    }

    #[test]
    fn the_exit_command_systemd_and_logging_options_parse_and_an_unknown_log_level_is_refused() {
        let line = "--api-version 1 -c c1 -u c1 -r /usr/sbin/runc -b /b -p /d/pidfile -l none --log-tag web \
            --log-level DEBUG --exit-command /bin/sh --exit-command-arg -c --exit-command-arg true --exit-delay 3 \
            --sdnotify-socket /run/notify --replace-listen-pid -s";
        let Ok(Request::Run(options)) = Options::parse(&words(line)) else { panic!("{line} is not a create") };
        assert_eq!(options.exit_command, Some(("/bin/sh".into(), words("-c true"))));
        assert_eq!(options.exit_delay, 3);
        assert!(options.systemd_cgroup);
        let bogus = line.replace("DEBUG", "loud");
        assert_eq!(Options::parse(&words(&bogus)).err().as_deref(), Some("No such log level loud"));
    }

    #[test]
    fn a_restore_and_an_exec_parse_and_conmons_own_refusals_hold() {
        let common = "--api-version 1 -c c1 -u e1 -r /usr/sbin/runc -p /d/pidfile -l k8s-file:/d/exec.log";
        let Ok(Request::Run(exec)) = Options::parse(&words(&format!("{common} -e --exec-process-spec /d/p.json -T 2")))
        else {
            panic!("an exec")
        };
        assert_eq!((exec.action, exec.bundle, exec.timeout), (Action::Exec("/d/p.json".into()), None, Some(2)));
        let with_terminal = format!("{common} -e --exec-process-spec /d/p.json -b /d --full-attach -t");
        let Ok(Request::Run(tty)) = Options::parse(&words(&with_terminal)) else { panic!("an exec with a terminal") };
        assert_eq!((tty.bundle, tty.full_attach, tty.terminal), (Some("/d".into()), true, true));
        let restore = format!("{common} -b /b --restore /img --runtime-opt --tcp-established");
        let Ok(Request::Run(restore)) = Options::parse(&words(&restore)) else { panic!("a restore") };
        assert_eq!(restore.action, Action::Restore("/img".into()));
        assert_eq!(restore.runtime_opts, words("--tcp-established"));
        // conmon 2.1.6's `process_cli`.
        for refused in [format!("{common} -e"), format!("{common} -e --exec-process-spec /p --restore /img")] {
            assert!(Options::parse(&words(&refused)).is_err(), "{refused}");
        }
    }

    #[test]
    fn version_is_answered_whatever_else_is_given_but_an_unknown_option() {
        // As conmon 2.1.6 here: `conmon -c x --version` prints its version, `conmon --version
        // --bogus` fails on the option.
        assert!(matches!(Options::parse(&words("--version")), Ok(Request::Version)));
        assert!(matches!(Options::parse(&words("-c x --version")), Ok(Request::Version)));
        assert!(Options::parse(&words("--version --bogus")).is_err());
    }
}
