//! The container lifecycle: `create`, `start`, `state`, `list`, `kill`, `delete`, `pause` and
//! `resume`, and the init that stands between `create` and `start`.
//!
//! Real runtimes split startup in two: `create` leaves an init blocked on `<root>/<id>/exec.fifo`
//! and `start` opens the other end to let it `exec` the user's process. The fake does the same
//! (its init is a re-exec of itself, `INIT_ARG`), so the pid is known from `create` on, the
//! process inherits `create`'s stdio rather than `start`'s, and a created container is a real
//! process. Which transitions are refused, and with which words, follows each real runtime.

use std::ffi::OsString;
use std::fs::{self, DirBuilder, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, ExitStatus};
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use nix::sys::stat::Mode;
use oci_spec::runtime::{Hook, Process, Spec};
use runtime_core::Status;

use super::checkpoint::give_memory;
use super::state::{self, FIFO, Record, youki_refusal};
use super::{Args, CmdResult, Ctx, Failure, console};
use crate::fake::Flavour;
use crate::procs::Tracked;

/// The hidden command that marks an init invocation: `INIT_ARG <fifo> <args...>`.
pub(crate) const INIT_ARG: &str = "__fake-oci-init";

/// The init: waits until `start` opens the fifo, then becomes the container's process.
pub(crate) fn init(args: &[OsString]) -> ExitCode {
    let [fifo, program, argv @ ..] = args else {
        eprintln!("fake-oci init: malformed arguments");
        return ExitCode::from(127);
    };
    // Opening blocks until `start` opens the fifo for reading.
    if let Err(err) = OpenOptions::new().write(true).open(fifo).and_then(|mut pipe| pipe.write_all(b"0")) {
        eprintln!("fake-oci init: exec fifo: {err}");
        return ExitCode::from(127);
    }
    let err = Command::new(program).args(argv).exec();
    eprintln!("fake-oci init: exec {}: {err}", program.to_string_lossy());
    ExitCode::from(127)
}

/// `process` as a command: its arguments and environment (its `PATH` finds the program), in its
/// own process group and the runtime's stdio, running in `rootfs` joined with its `cwd` (the
/// host's files stay visible; relative paths land in the rootfs). With a `fifo`, the fake's init
/// runs first and waits on it for `start`.
pub(crate) fn container_command(
    flavour: Flavour,
    process: &Process,
    rootfs: &Path,
    fifo: Option<&Path>,
) -> Result<Command, Failure> {
    let args = process.args().as_deref().unwrap_or_default();
    let (program, rest) = args.split_first().ok_or_else(|| Failure::runtime("args must not be empty"))?;
    let mut command = match fifo {
        Some(fifo) => {
            let mut init = Command::new(std::env::current_exe().map_err(|err| Failure::io("the fake itself", err))?);
            // The init runs under the runtime's name so that a harness binary routes it here.
            init.arg0(flavour.name()).arg(INIT_ARG).arg(fifo).args(args);
            init
        }
        None => {
            let mut direct = Command::new(program);
            direct.args(rest);
            direct
        }
    };
    let cwd = rootfs.join(process.cwd().strip_prefix("/").unwrap_or(process.cwd()));
    command.env_clear().envs(process.env().iter().flatten().filter_map(|entry| entry.split_once('=')));
    command.current_dir(if cwd.is_dir() { &cwd } else { rootfs });
    in_own_session(&mut command);
    Ok(command)
}

/// Starts the process in a session of its own, as runc, crun and youki start a container's init
/// and each exec'd process (seen from the host in `/proc/<pid>/stat`): whatever it forks stays
/// in that session, and in its process group, unless it leaves on purpose.
#[allow(unsafe_code)]
fn in_own_session(command: &mut Command) {
    // SAFETY: the closure runs in the forked child before `exec`; it calls only setsid(2), which
    // is async-signal-safe, and allocates nothing.
    unsafe {
        command.pre_exec(|| nix::unistd::setsid().map(drop).map_err(io::Error::from));
    }
}

/// Writes a pid file as runc does: decimal, no newline, replaced atomically.
pub(crate) fn write_pid_file(ctx: &Ctx, path: Option<&str>, pid: i32) -> Result<(), Failure> {
    match path {
        Some(path) if !ctx.no_pid_file => state::write_atomic(Path::new(path), pid.to_string().as_bytes())
            .map_err(|err| Failure::io(format!("write pid file {path}"), err)),
        _ => Ok(()),
    }
}

/// The shell's convention for how a process ended: its code, or 128 plus the signal.
pub(crate) fn exit_code(status: io::Result<ExitStatus>) -> u8 {
    match status.map(|status| (status.code(), status.signal())) {
        Ok((Some(code), _)) => u8::try_from(code & 0xff).unwrap_or(1),
        Ok((None, Some(signal))) => u8::try_from(128 + signal).unwrap_or(255),
        _ => 1,
    }
}

/// Creates `<root>/<id>` and returns the bundle and its config, or the runtime's refusal.
pub(crate) fn new_container(ctx: &Ctx, id: &str, bundle: Option<&str>) -> Result<(PathBuf, Spec), Failure> {
    let bundle = std::path::absolute(bundle.unwrap_or(".")).map_err(|err| Failure::io("bundle", err))?;
    let spec = Spec::load(bundle.join("config.json"))
        .map_err(|err| Failure::runtime(format!("cannot load {}/config.json: {err}", bundle.display())))?;
    DirBuilder::new().recursive(true).mode(0o700).create(&ctx.root).map_err(|err| Failure::io("mkdir root", err))?;
    match DirBuilder::new().mode(0o711).create(state::dir(&ctx.root, id)) {
        Ok(()) => Ok((bundle, spec)),
        Err(err) if err.kind() == io::ErrorKind::AlreadyExists => Err(Failure::runtime(match ctx.flavour {
            Flavour::Runc => "runc create failed: container with given ID already exists".to_owned(),
            Flavour::Crun => format!("container `{id}` already exists"),
            Flavour::Youki => "container already exists".to_owned(),
        })),
        Err(err) => Err(Failure::io("mkdir container", err)),
    }
}

/// The root filesystem directory of a container from `bundle`, whose config is `spec`.
pub(crate) fn rootfs_of(bundle: &Path, spec: &Spec) -> PathBuf {
    bundle.join(spec.root().as_ref().map_or(Path::new(""), |root| root.path()))
}

/// Saves a new container's record, runs its `createRuntime` hooks on the host (in order, each
/// to its end, while the container exists and before its pid file is written, as the real
/// runtimes do) and writes the pid file; on failure removes the container.
pub(crate) fn commit(ctx: &Ctx, record: &Record, hooks: &[Hook], pid_file: Option<&str>) -> Result<(), Failure> {
    let run_hook = |hook: &Hook| {
        let (path, args) = (hook.path().display(), hook.args().as_deref().unwrap_or_default());
        let mut command = Command::new(hook.path());
        if let Some((arg0, rest)) = args.split_first() {
            command.arg0(arg0).args(rest);
        }
        match command.status() {
            Ok(status) if status.success() => Ok(()),
            Ok(status) => Err(Failure::runtime(format!("hook {path} failed: {status}"))),
            Err(err) => Err(Failure::io(format!("run hook {path}"), err)),
        }
    };
    (state::save(ctx, record).and_then(|()| hooks.iter().try_for_each(run_hook)))
        .and_then(|()| write_pid_file(ctx, pid_file, record.init.pid))
        .inspect_err(|_| {
            record.kill_everything();
            let _ = fs::remove_dir_all(state::dir(&ctx.root, &record.id));
        })
}

/// `create`: sets the container up and leaves its init waiting for `start`.
pub(crate) fn create(ctx: &Ctx, args: &Args) -> CmdResult {
    let id = args.id()?;
    let (bundle, spec) = new_container(ctx, id, args.value("bundle"))?;
    let dir = state::dir(&ctx.root, id);
    let rootfs = rootfs_of(&bundle, &spec);
    let launched = spec
        .process()
        .as_ref()
        .ok_or_else(|| Failure::runtime("process property must not be empty"))
        .and_then(|process| {
            let mut init = container_command(ctx.flavour, process, &rootfs, Some(&dir.join(FIFO)))?;
            give_memory(&mut init, &dir);
            console::attach(ctx, process, args.value("console-socket"), &mut init).map(|()| init)
        })
        .and_then(|mut init| {
            nix::unistd::mkfifo(&dir.join(FIFO), Mode::from_bits_truncate(0o600))
                .map_err(|errno| Failure::io("mkfifo", errno.into()))?;
            init.spawn().map_err(|err| Failure::io("start the container init", err))
        });
    let child = launched.inspect_err(|_| {
        let _ = fs::remove_dir_all(&dir);
    })?;
    let record = Record::new(id, bundle, &spec, Tracked::capture(child.id()), false);
    let hooks = spec.hooks().as_ref().and_then(|hooks| hooks.create_runtime().clone()).unwrap_or_default();
    commit(ctx, &record, &hooks, args.value("pid-file"))?;
    Ok(0)
}

/// `run --detach`: `create`, then `start`, as one call. The library runs detached only.
pub(crate) fn run(ctx: &Ctx, args: &Args) -> CmdResult {
    if !args.flag("detach") {
        return Err(Failure::runtime("fake-oci runs containers detached only"));
    }
    create(ctx, args)?;
    start(ctx, args)
}

/// Reads the init's byte from the exec fifo. Opened non-blocking and polled, so an init that
/// died meanwhile is an error rather than a hang.
fn release_init(dir: &Path, init: &Tracked) -> Result<(), Failure> {
    let path = dir.join(FIFO);
    let mut fifo = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(&path)
        .map_err(|err| Failure::io(format!("open {}", path.display()), err))?;
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut read_byte = || match fifo.read(&mut [0u8]) {
        Ok(read) => Ok(read == 1),
        Err(err) if matches!(err.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted) => Ok(false),
        Err(err) => Err(Failure::io("read exec fifo", err)),
    };
    while !read_byte()? {
        if !init.alive() {
            // It may have written and exited between the read and this check: the byte counts.
            if read_byte()? {
                break;
            }
            return Err(Failure::runtime("container init exited before start"));
        }
        if Instant::now() >= deadline {
            return Err(Failure::runtime("timed out waiting for the container init"));
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    fs::remove_file(&path).map_err(|err| Failure::io("remove exec fifo", err))
}

/// `start`: releases a created container's init.
pub(crate) fn start(ctx: &Ctx, args: &Args) -> CmdResult {
    let id = args.id()?;
    let _lock = state::lock(ctx, "start", id)?;
    let mut record = state::find(ctx, "start", id)?;
    let dir = state::dir(&ctx.root, id);
    match (ctx.flavour, record.status()) {
        (_, Status::Created) => {}
        (Flavour::Runc, Status::Stopped) => return Err(Failure::runtime("cannot start a container that has stopped")),
        (Flavour::Runc, Status::Paused) => {
            return Err(Failure::runtime("cannot start a container in the paused state"));
        }
        (Flavour::Runc, _) => return Err(Failure::runtime("cannot start an already running container")),
        (Flavour::Crun, Status::Stopped) => return Err(Failure::runtime(format!("container `{id}` is not running"))),
        (Flavour::Crun, _) => {
            let fifo = dir.join(FIFO);
            return Err(Failure::runtime(format!("cannot open `{}`: No such file or directory", fifo.display())));
        }
        (Flavour::Youki, status) => return Err(youki_refusal("start", id, status)),
    }
    release_init(&dir, &record.init)?;
    record.started = true;
    state::save(ctx, &record)?;
    Ok(0)
}

/// The state document in the flavour's shape: runc and crun report pid 0 once stopped, crun
/// the rootfs as written in the config and a `systemd-scope`, youki no rootfs, a numeric owner
/// and the config's annotations even when empty (runc only when there are some).
fn document(ctx: &Ctx, record: &Record) -> serde_json::Value {
    let status = record.status();
    let pid = if status == Status::Stopped && ctx.flavour != Flavour::Youki { 0 } else { record.init.pid };
    let (id, bundle, created) = (&record.id, &record.bundle, record.created.to_rfc3339());
    let uid = nix::unistd::geteuid();
    let user = || nix::unistd::User::from_uid(uid).ok().flatten().map_or_else(|| uid.to_string(), |user| user.name);
    let mut document = match ctx.flavour {
        Flavour::Runc => serde_json::json!({
            "ociVersion": "1.0.2-dev", "id": id, "pid": pid, "status": status, "bundle": bundle,
            "rootfs": record.rootfs(), "created": created, "owner": "",
        }),
        Flavour::Crun => serde_json::json!({
            "ociVersion": "1.0.0", "id": id, "pid": pid, "status": status, "bundle": bundle,
            "rootfs": record.root_path, "created": created, "systemd-scope": "", "owner": user(),
        }),
        Flavour::Youki => serde_json::json!({
            "ociVersion": "1.1.0", "id": id, "status": status, "pid": pid, "bundle": bundle,
            "created": created, "owner": uid.as_raw(),
        }),
    };
    let annotations = record.annotations.as_ref().filter(|map| ctx.flavour == Flavour::Youki || !map.is_empty());
    if let (Some(annotations), Flavour::Runc | Flavour::Youki) = (annotations, ctx.flavour) {
        document["annotations"] = serde_json::json!(annotations);
    }
    document
}

/// `state`.
pub(crate) fn state(ctx: &Ctx, args: &Args) -> CmdResult {
    let record = state::find(ctx, "state", args.id()?)?;
    println!("{:#}", document(ctx, &record));
    Ok(0)
}

/// `list`: JSON for runc and crun (`--format json`; runc says `null` for none), youki's table.
pub(crate) fn list(ctx: &Ctx, args: &Args) -> CmdResult {
    let records = state::list(&ctx.root);
    match (ctx.flavour, args.value("format")) {
        (Flavour::Runc, Some("json")) if records.is_empty() => println!("null"),
        (Flavour::Runc | Flavour::Crun, Some("json")) => {
            let documents: Vec<serde_json::Value> = records.iter().map(|record| document(ctx, record)).collect();
            println!("{}", serde_json::Value::from(documents));
        }
        _ => {
            println!("ID  PID  STATUS  BUNDLE  CREATED  CREATOR");
            for record in records {
                let (id, pid, status, bundle) = (&record.id, record.init.pid, record.status(), record.bundle.display());
                println!("{id}  {pid}  {status:?}  {bundle}  {}  root", record.created.to_rfc3339());
            }
        }
    }
    Ok(0)
}

/// `kill [--all] <id> <signal>`: to the init, or to every process of the container.
pub(crate) fn kill(ctx: &Ctx, args: &Args) -> CmdResult {
    let id = args.id()?;
    let text = args.positionals.get(1).map_or("TERM", String::as_str);
    let signal = text
        .parse::<runtime_core::Signal>()
        .ok()
        .and_then(|signal| Signal::try_from(signal.number()).ok())
        .ok_or_else(|| Failure::runtime(format!("unknown signal {text:?}")))?;
    let record = state::find(ctx, "kill", id)?;
    let all = args.flag("all");
    match (ctx.flavour, record.status(), all) {
        (_, Status::Stopped, true) => record.signal_all(signal),
        (Flavour::Runc, Status::Stopped, false) => return Err(Failure::runtime("container not running")),
        (Flavour::Crun, Status::Stopped, false) => return Err(Failure::runtime("kill container: No such process")),
        (Flavour::Youki, Status::Stopped, false) => {
            return Err(Failure::runtime(
                "container not running\n\nCaused by:\n    failed operation due to incompatible container status: `Stopped`",
            ));
        }
        (_, _, true) => record.signal_all(signal),
        (_, _, false) => record.init.signal(signal),
    }
    Ok(0)
}

/// `delete [--force]`: removes a created or stopped container, or with `--force` any.
pub(crate) fn delete(ctx: &Ctx, args: &Args) -> CmdResult {
    let id = args.id()?;
    let dir = state::dir(&ctx.root, id);
    let force = args.flag("force");
    let lock = state::lock(ctx, "delete", id);
    let Some(record) = lock.as_ref().ok().and_then(|_| state::load(&ctx.root, id)) else {
        // A directory without a record is what an aborted create leaves: it goes too.
        let _ = fs::remove_dir_all(&dir);
        return if force { Ok(0) } else { Err(state::not_found(ctx, "delete", id)) };
    };
    let status = record.status();
    if matches!(status, Status::Running | Status::Paused) && !force {
        return Err(match ctx.flavour {
            Flavour::Runc => Failure::runtime(format!("cannot delete container {id} that is not stopped: {status}")),
            Flavour::Crun => Failure::runtime(format!("the container `{id}` is not in `created` or `stopped` state")),
            Flavour::Youki => youki_refusal("delete", id, status),
        });
    }
    record.kill_everything();
    fs::remove_dir_all(&dir).map_err(|err| Failure::io("remove container", err))?;
    Ok(0)
}

/// `pause` (SIGSTOP to every process of the container) and `resume` (SIGCONT).
pub(crate) fn pause_or_resume(ctx: &Ctx, args: &Args, pause: bool) -> CmdResult {
    let (id, command) = (args.id()?, if pause { "pause" } else { "resume" });
    let _lock = state::lock(ctx, command, id)?;
    let mut record = state::find(ctx, command, id)?;
    let status = record.status();
    let allowed = match (ctx.flavour, pause) {
        (Flavour::Runc, true) => matches!(status, Status::Running | Status::Created),
        (Flavour::Crun, _) => status != Status::Stopped,
        (Flavour::Runc | Flavour::Youki, false) => status == Status::Paused,
        (Flavour::Youki, true) => status == Status::Running,
    };
    if !allowed {
        return Err(match (ctx.flavour, pause) {
            (Flavour::Runc, true) => Failure::runtime("container not running"),
            (Flavour::Runc, false) => Failure::runtime("container not paused"),
            (Flavour::Crun, _) => Failure::runtime(format!("the container `{id}` is not running")),
            (Flavour::Youki, _) => youki_refusal(command, id, status),
        });
    }
    record.signal_all(if pause { Signal::SIGSTOP } else { Signal::SIGCONT });
    record.paused = pause;
    state::save(ctx, &record)?;
    Ok(0)
}
