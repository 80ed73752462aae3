//! The container lifecycle: `create`, `start`, `run`, `state`, `list`, `kill`, `delete`,
//! `pause` and `resume`.
//!
//! Which transitions are refused, and with which words, follows each real runtime; the
//! differences are deliberate (for example runc and crun pause a created container, youki
//! refuses), since a driver has to cope with all of them.

use std::fs::{self, DirBuilder, OpenOptions};
use std::io::{self, Read};
use std::os::fd::OwnedFd;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::thread;
use std::time::{Duration, Instant};

use chrono::{DateTime, SecondsFormat, Utc};
use nix::sys::signal::Signal;
use nix::sys::stat::Mode;
use nix::unistd::{Uid, User, mkfifo};
use oci_spec::runtime::Spec;
use serde::Serialize;

use super::args::{Grammar, Opt, flag, flag_s, parse_command, val, val_s};
use super::console;
use super::error::{CmdResult, Failure, io_failure};
use super::flavour::{Ctx, Flavour};
use super::init::INIT_ARG;
use super::json_text;
use crate::procs::Tracked;

use super::procs::{env_pairs, host_cwd, parse_signal, relay_signals, resolve_executable, wait_code, write_pid_file};
use super::state::{self, FIFO, ProcSpec, RESOURCES_FILE, Record, Status};

const ID: &[&str] = &["container-id"];

const RUNC_CREATE: &[Opt] = &[
    val_s("bundle", 'b'),
    val("console-socket"),
    val("pid-file"),
    flag("no-pivot"),
    flag("no-new-keyring"),
    val("preserve-fds"),
];
const YOUKI_CREATE: &[Opt] = &[
    val_s("bundle", 'b'),
    val_s("console-socket", 'c'),
    val_s("pid-file", 'p'),
    flag("no-pivot"),
    flag("no-new-keyring"),
    val("preserve-fds"),
];
const RUNC_RUN: &[Opt] = &[
    val_s("bundle", 'b'),
    val("console-socket"),
    flag_s("detach", 'd'),
    flag("keep"),
    val("pid-file"),
    flag("no-subreaper"),
    flag("no-pivot"),
    flag("no-new-keyring"),
    val("preserve-fds"),
];
const YOUKI_RUN: &[Opt] = &[
    val_s("bundle", 'b'),
    val_s("console-socket", 'c'),
    val_s("pid-file", 'p'),
    flag("no-subreaper"),
    flag("no-pivot"),
    flag("no-new-keyring"),
    val("preserve-fds"),
    flag("keep"),
    flag_s("detach", 'd'),
];
const KILL: &[Opt] = &[flag_s("all", 'a')];
const DELETE: &[Opt] = &[flag_s("force", 'f')];
const LIST: &[Opt] = &[val_s("format", 'f'), flag_s("quiet", 'q')];
const YOUKI_LIST: &[Opt] = &[val("format"), flag_s("quiet", 'q')];

/// Loads a container or fails with the flavour's "does not exist".
pub(crate) fn find(ctx: &Ctx, id: &str) -> Result<Record, Failure> {
    state::load(&ctx.root, id).ok_or_else(|| Failure::runtime(ctx.not_found(id)))
}

/// Locks a container for a read-modify-write of its record.
pub(crate) fn lock(ctx: &Ctx, id: &str) -> Result<state::Lock, Failure> {
    state::lock(&ctx.root, id).map_err(|_| Failure::runtime(ctx.not_found(id)))
}

pub(crate) fn save(ctx: &Ctx, record: &Record) -> Result<(), Failure> {
    state::save(&ctx.root, record).map_err(|e| io_failure("save container state", e))
}

/// Everything needed to start a container's process, checked before anything is created.
#[derive(Debug)]
pub(crate) struct Prepared {
    pub id: String,
    pub bundle: PathBuf,
    pub root_path: String,
    pub process: ProcSpec,
    pub executable: PathBuf,
    pub cwd: PathBuf,
    pub resources: Option<serde_json::Value>,
}

fn validate_id(ctx: &Ctx, id: &str) -> Result<(), Failure> {
    let valid = !id.is_empty()
        && id != "."
        && id != ".."
        && id.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '+' | '-' | '.'));
    if valid {
        return Ok(());
    }
    Err(Failure::runtime(match ctx.flavour {
        Flavour::Runc => format!("invalid id format: {id}"),
        Flavour::Crun => format!("invalid container ID `{id}`"),
        Flavour::Youki => format!("invalid container ID format: {id:?}"),
    }))
}

/// The bundle path as the runtime reports it: runc keeps it absolute but unresolved, crun and
/// youki resolve symlinks.
fn bundle_path(ctx: &Ctx, given: Option<&str>) -> Result<PathBuf, Failure> {
    let given = given.filter(|b| !b.is_empty()).unwrap_or(".");
    let absolute = std::path::absolute(given).map_err(|e| io_failure(format!("bundle {given}"), e))?;
    if !absolute.is_dir() {
        return Err(Failure::runtime(match ctx.flavour {
            Flavour::Runc => format!("chdir {}: no such file or directory", absolute.display()),
            Flavour::Crun => format!("chdir `{}`: No such file or directory", absolute.display()),
            Flavour::Youki => {
                format!("failed to canonicalize {}: No such file or directory (os error 2)", absolute.display())
            }
        }));
    }
    Ok(match ctx.flavour {
        Flavour::Runc => absolute,
        Flavour::Crun | Flavour::Youki => fs::canonicalize(&absolute).unwrap_or(absolute),
    })
}

/// Reads `<bundle>/config.json`.
fn load_spec(ctx: &Ctx, bundle: &Path) -> Result<Spec, Failure> {
    let path = bundle.join("config.json");
    let text = fs::read_to_string(&path).map_err(|err| {
        if err.kind() == io::ErrorKind::NotFound {
            Failure::runtime(match ctx.flavour {
                Flavour::Runc => "JSON specification file config.json not found".to_string(),
                Flavour::Crun | Flavour::Youki => {
                    format!("open {}: no such file or directory", path.display())
                }
            })
        } else {
            io_failure(format!("open {}", path.display()), err)
        }
    })?;
    serde_json::from_str(&text).map_err(|e| Failure::runtime(format!("parse {}: {e}", path.display())))
}

/// The checks every new container goes through, in the real runtimes' order: the id, the
/// bundle and its config, then whether the id is taken. Returns the bundle path and config.
pub(crate) fn check_new(ctx: &Ctx, id: &str, bundle: Option<&str>) -> Result<(PathBuf, Spec), Failure> {
    validate_id(ctx, id)?;
    let bundle = bundle_path(ctx, bundle)?;
    let spec = load_spec(ctx, &bundle)?;
    if state::dir(&ctx.root, id).exists() {
        return Err(Failure::runtime(ctx.already_exists(id)));
    }
    Ok((bundle, spec))
}

/// Validates everything `create`, `run` and `restore` need before touching the state directory.
/// `process` replaces the config's process (for `restore`).
pub(crate) fn prepare(
    ctx: &Ctx,
    id: &str,
    bundle: Option<&str>,
    process: Option<ProcSpec>,
) -> Result<Prepared, Failure> {
    let (bundle, spec) = check_new(ctx, id, bundle)?;
    let process = match process {
        Some(process) => process,
        None => spec.process().as_ref().map(ProcSpec::from_oci).ok_or_else(|| {
            Failure::runtime(match ctx.flavour {
                Flavour::Runc => "process property must not be empty",
                Flavour::Crun => "invalid config: missing `process`",
                Flavour::Youki => "missing process in spec",
            })
        })?,
    };
    let Some(arg0) = process.args.first() else {
        return Err(Failure::runtime(match ctx.flavour {
            Flavour::Runc => "args must not be empty",
            Flavour::Crun => "invalid config: `process.args` is empty",
            Flavour::Youki => "missing args in the process spec",
        }));
    };
    let cwd = host_cwd(&process.cwd, &bundle);
    let executable =
        resolve_executable(arg0, &process.env, &cwd).ok_or_else(|| Failure::runtime(ctx.missing_executable(arg0)))?;
    let resources = spec
        .linux()
        .as_ref()
        .and_then(|linux| linux.resources().as_ref())
        .and_then(|resources| serde_json::to_value(resources).ok());
    Ok(Prepared {
        id: id.to_string(),
        root_path: spec.root().as_ref().map(|root| root.path().to_string_lossy().into_owned()).unwrap_or_default(),
        bundle,
        process,
        executable,
        cwd,
        resources,
    })
}

/// Creates `<root>/<id>` (and the exec fifo when asked); the directory doubles as the lock
/// against two concurrent creates of one id.
pub(crate) fn materialise(ctx: &Ctx, prepared: &Prepared, fifo: bool) -> Result<PathBuf, Failure> {
    DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&ctx.root)
        .map_err(|e| io_failure(format!("mkdir {}", ctx.root.display()), e))?;
    let dir = state::dir(&ctx.root, &prepared.id);
    match DirBuilder::new().mode(0o711).create(&dir) {
        Ok(()) => {}
        Err(err) if err.kind() == io::ErrorKind::AlreadyExists => {
            return Err(Failure::runtime(ctx.already_exists(&prepared.id)));
        }
        Err(err) => return Err(io_failure(format!("mkdir {}", dir.display()), err)),
    }
    let populate = || -> Result<(), Failure> {
        if fifo {
            mkfifo(&dir.join(FIFO), Mode::from_bits_truncate(0o600)).map_err(|e| io_failure("mkfifo", e.into()))?;
        }
        if let Some(resources) = &prepared.resources {
            state::write_atomic(&dir.join(RESOURCES_FILE), json_text(resources, "  ").as_bytes())
                .map_err(|e| io_failure("write resources", e))?;
        }
        Ok(())
    };
    populate().inspect_err(|_| {
        let _ = fs::remove_dir_all(&dir);
    })?;
    Ok(dir)
}

/// Spawns a process as a container process: own process group, given environment and
/// directory, and the runtime's stdio, which it inherits as with the real runtimes.
pub(crate) fn spawn_process(executable: &Path, process: &ProcSpec, cwd: &Path) -> io::Result<Child> {
    let mut command = Command::new(executable);
    if let Some(arg0) = process.args.first() {
        command.arg0(arg0);
    }
    command
        .args(process.args.iter().skip(1))
        .env_clear()
        .envs(env_pairs(&process.env))
        .current_dir(cwd)
        .process_group(0)
        .spawn()
}

fn spawn_init(ctx: &Ctx, prepared: &Prepared, fifo: &Path, terminal: Option<&OwnedFd>) -> io::Result<Child> {
    let mut command = Command::new(std::env::current_exe()?);
    if let Some(slave) = terminal {
        command.stdin(slave.try_clone()?).stdout(slave.try_clone()?).stderr(slave.try_clone()?);
    }
    command
        .arg0(ctx.flavour.name())
        .arg(INIT_ARG)
        .arg(fifo)
        .arg(&prepared.executable)
        .arg("--")
        .args(&prepared.process.args)
        .env_clear()
        .envs(env_pairs(&prepared.process.env))
        .current_dir(&prepared.cwd)
        .process_group(0)
        .spawn()
}

/// Builds the record for a freshly spawned container process.
pub(crate) fn new_record(prepared: Prepared, child: &Child, started: bool) -> Record {
    Record {
        id: prepared.id,
        bundle: prepared.bundle,
        root_path: prepared.root_path,
        created: Utc::now(),
        init: Tracked::capture(child.id()),
        started,
        paused: false,
        execs: Vec::new(),
        process: prepared.process,
    }
}

/// Saves a new container's record and pid file; on failure kills it and removes its directory.
pub(crate) fn commit(ctx: &Ctx, record: &Record, pid_file: Option<&str>, no_pid_file: bool) -> Result<(), Failure> {
    let result = save(ctx, record).and_then(|()| match pid_file {
        Some(path) if !no_pid_file => write_pid_file(Path::new(path), record.init.pid)
            .map_err(|e| io_failure(format!("write pid file {path}"), e)),
        _ => Ok(()),
    });
    result.inspect_err(|_| destroy(ctx, record))
}

/// Kills whatever is left of a container and removes its directory.
pub(crate) fn destroy(ctx: &Ctx, record: &Record) {
    record.kill_everything();
    let _ = fs::remove_dir_all(state::dir(&ctx.root, &record.id));
}

/// Creates a container; `foreground` starts relaying signals to its init (for `run`).
fn create_container(
    ctx: &Ctx,
    id: &str,
    bundle: Option<&str>,
    console_socket: Option<&str>,
    pid_file: Option<&str>,
    no_pid_file: bool,
    foreground: bool,
) -> Result<(Record, Child), Failure> {
    let prepared = prepare(ctx, id, bundle, None)?;
    let terminal = console::attach(ctx, &prepared.bundle, console_socket, !foreground)?;
    let dir = materialise(ctx, &prepared, true)?;
    let child = spawn_init(ctx, &prepared, &dir.join(FIFO), terminal.as_ref()).map_err(|e| {
        let _ = fs::remove_dir_all(&dir);
        io_failure("start container init", e)
    })?;
    if foreground {
        relay_signals(&child);
    }
    let record = new_record(prepared, &child, false);
    commit(ctx, &record, pid_file, no_pid_file)?;
    Ok((record, child))
}

/// `create`: sets up the container and leaves its init waiting for `start`.
pub(crate) fn create(ctx: &Ctx, argv: &[String], no_pid_file: bool) -> CmdResult {
    let opts = match ctx.flavour {
        Flavour::Runc | Flavour::Crun => RUNC_CREATE,
        Flavour::Youki => YOUKI_CREATE,
    };
    let grammar = Grammar::new("create", "create a container", opts, ID);
    let Some(m) = parse_command(ctx, &grammar, argv)? else {
        return Ok(0);
    };
    create_container(
        ctx,
        m.first(),
        m.value("bundle"),
        m.value("console-socket"),
        m.value("pid-file"),
        no_pid_file,
        false,
    )
    .map_err(|f| runc_prefix(ctx, f, "runc create failed: "))?;
    Ok(0)
}

fn runc_prefix(ctx: &Ctx, failure: Failure, prefix: &str) -> Failure {
    match ctx.flavour {
        Flavour::Runc => failure.prefixed(prefix),
        Flavour::Crun | Flavour::Youki => failure,
    }
}

/// Opens the exec fifo and waits for the init's byte, which it writes just before `exec`.
///
/// The fifo is opened non-blocking and polled, so that an init that died meanwhile turns into
/// an error instead of a hang.
fn release_init(dir: &Path, init: &Tracked) -> Result<(), Failure> {
    let path = dir.join(FIFO);
    let mut fifo = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(&path)
        .map_err(|e| io_failure(format!("open {}", path.display()), e))?;
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut byte = [0u8; 1];
    let mut read_byte = || match fifo.read(&mut byte) {
        Ok(1) => Ok(true),
        Ok(_) => Ok(false),
        Err(err) if matches!(err.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted) => Ok(false),
        Err(err) => Err(io_failure("read exec fifo", err)),
    };
    loop {
        if read_byte()? {
            break;
        }
        if !init.alive() {
            // It may have written and exited between the read and the check.
            if read_byte()? {
                break;
            }
            return Err(Failure::runtime("container init exited before start"));
        }
        if Instant::now() >= deadline {
            return Err(Failure::runtime("timed out waiting for the container init"));
        }
        thread::sleep(Duration::from_millis(1));
    }
    let _ = fs::remove_file(&path);
    Ok(())
}

/// `start`: releases a created container's init.
pub(crate) fn start(ctx: &Ctx, argv: &[String]) -> CmdResult {
    let grammar = Grammar::new("start", "executes the user defined process in a created container", &[], ID);
    let Some(m) = parse_command(ctx, &grammar, argv)? else {
        return Ok(0);
    };
    let id = m.first();
    let _lock = lock(ctx, id)?;
    let mut record = find(ctx, id)?;
    let status = record.status();
    let refusal = match (ctx.flavour, status) {
        (_, Status::Created) => None,
        (Flavour::Runc, Status::Stopped) => Some("cannot start a container that has stopped".into()),
        (Flavour::Runc, Status::Running) => Some("cannot start an already running container".into()),
        (Flavour::Runc, Status::Paused) => Some("cannot start a container in the paused state".into()),
        (Flavour::Crun, Status::Stopped) => Some(format!("container `{id}` is not running")),
        (Flavour::Crun, _) => {
            Some(format!("cannot open `{}`: No such file or directory", state::dir(&ctx.root, id).join(FIFO).display()))
        }
        (Flavour::Youki, status) => Some(Ctx::youki_incompatible("start", id, status)),
    };
    if let Some(message) = refusal {
        return Err(Failure::runtime(message));
    }
    release_init(&state::dir(&ctx.root, id), &record.init)?;
    record.started = true;
    save(ctx, &record)?;
    Ok(0)
}

/// `run`: `create` and `start` in one, then (unless detached) wait for the process and remove
/// the container, relaying signals meanwhile.
pub(crate) fn run(ctx: &Ctx, argv: &[String], no_pid_file: bool) -> CmdResult {
    let opts = match ctx.flavour {
        Flavour::Runc | Flavour::Crun => RUNC_RUN,
        Flavour::Youki => YOUKI_RUN,
    };
    let grammar = Grammar::new("run", "create and run a container", opts, ID);
    let Some(m) = parse_command(ctx, &grammar, argv)? else {
        return Ok(0);
    };
    let detach = m.flag("detach");
    let (mut record, mut child) = create_container(
        ctx,
        m.first(),
        m.value("bundle"),
        m.value("console-socket"),
        m.value("pid-file"),
        no_pid_file,
        !detach,
    )
    .map_err(|f| runc_prefix(ctx, f, "runc run failed: "))?;
    let started = release_init(&state::dir(&ctx.root, &record.id), &record.init).and_then(|()| {
        record.started = true;
        save(ctx, &record)
    });
    if let Err(failure) = started {
        destroy(ctx, &record);
        return Err(runc_prefix(ctx, failure, "runc run failed: "));
    }
    if detach {
        return Ok(0);
    }
    let code = wait_code(&mut child);
    if !m.flag("keep") {
        destroy(ctx, &record);
    }
    Ok(code)
}

#[derive(Serialize)]
struct RuncState {
    #[serde(rename = "ociVersion")]
    oci_version: &'static str,
    id: String,
    pid: i32,
    status: &'static str,
    bundle: String,
    rootfs: String,
    created: String,
    owner: String,
}

#[derive(Serialize)]
struct CrunState {
    #[serde(rename = "ociVersion")]
    oci_version: &'static str,
    id: String,
    pid: i32,
    status: &'static str,
    bundle: String,
    rootfs: String,
    created: String,
    #[serde(rename = "systemd-scope")]
    systemd_scope: &'static str,
    owner: String,
}

#[derive(Serialize)]
struct YoukiState {
    #[serde(rename = "ociVersion")]
    oci_version: &'static str,
    id: String,
    status: &'static str,
    pid: i32,
    bundle: String,
    created: String,
    owner: u32,
}

fn timestamp(created: &DateTime<Utc>, precision: SecondsFormat) -> String {
    created.to_rfc3339_opts(precision, true)
}

fn user_name(uid: u32) -> String {
    User::from_uid(Uid::from_raw(uid)).ok().flatten().map(|user| user.name).unwrap_or_else(|| uid.to_string())
}

/// The pid a runtime reports: runc and crun say 0 once the container stopped.
fn reported_pid(ctx: &Ctx, record: &Record, status: Status) -> i32 {
    match (ctx.flavour, status) {
        (Flavour::Runc | Flavour::Crun, Status::Stopped) => 0,
        _ => record.init.pid,
    }
}

fn runc_state(ctx: &Ctx, record: &Record, owner: String) -> RuncState {
    let status = record.status();
    RuncState {
        oci_version: "1.0.2-dev",
        id: record.id.clone(),
        pid: reported_pid(ctx, record, status),
        status: status.lower(),
        bundle: record.bundle.display().to_string(),
        rootfs: record.rootfs().display().to_string(),
        created: timestamp(&record.created, SecondsFormat::Nanos),
        owner,
    }
}

/// `state`: the OCI state document in the flavour's shape.
pub(crate) fn state(ctx: &Ctx, argv: &[String]) -> CmdResult {
    let grammar = Grammar::new("state", "output the state of a container", &[], ID);
    let Some(m) = parse_command(ctx, &grammar, argv)? else {
        return Ok(0);
    };
    let record = find(ctx, m.first())?;
    let status = record.status();
    match ctx.flavour {
        // runc writes the indented document without a trailing newline.
        Flavour::Runc => print!("{}", json_text(&runc_state(ctx, &record, String::new()), "  ")),
        Flavour::Crun => println!(
            "{}",
            json_text(
                &CrunState {
                    oci_version: "1.0.0",
                    id: record.id.clone(),
                    pid: reported_pid(ctx, &record, status),
                    status: status.lower(),
                    bundle: record.bundle.display().to_string(),
                    rootfs: record.root_path.clone(),
                    created: timestamp(&record.created, SecondsFormat::Micros),
                    systemd_scope: "",
                    owner: user_name(Uid::effective().as_raw()),
                },
                "    "
            )
        ),
        Flavour::Youki => println!(
            "{}",
            json_text(
                &YoukiState {
                    oci_version: "1.1.0",
                    id: record.id.clone(),
                    status: status.lower(),
                    pid: record.init.pid,
                    bundle: record.bundle.display().to_string(),
                    created: timestamp(&record.created, SecondsFormat::Nanos),
                    owner: Uid::effective().as_raw(),
                },
                "  "
            )
        ),
    }
    Ok(0)
}

#[derive(Serialize)]
struct CrunListItem {
    id: String,
    pid: i32,
    status: &'static str,
    bundle: String,
    created: String,
    owner: String,
}

/// Lays out rows like Go's (and the `tabwriter` crate's) tabwriter: every cell but the last of
/// a row is padded to its column's width plus `padding`, at least `min_width`.
fn tabulate(rows: &[Vec<String>], min_width: usize, padding: usize) -> String {
    let columns = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..columns)
        .map(|c| {
            rows.iter()
                .filter(|row| c + 1 < row.len())
                .map(|row| row[c].chars().count() + padding)
                .max()
                .unwrap_or(0)
                .max(min_width)
        })
        .collect();
    let mut out = String::new();
    for row in rows {
        for (c, cell) in row.iter().enumerate() {
            if c + 1 < row.len() {
                out.push_str(&format!("{cell:<width$}", width = widths[c]));
            } else {
                out.push_str(cell);
            }
        }
        out.push('\n');
    }
    out
}

fn dir_owner(ctx: &Ctx, id: &str) -> String {
    fs::metadata(state::dir(&ctx.root, id)).map(|meta| user_name(meta.uid())).unwrap_or_default()
}

/// `list`: every container, as a table or JSON.
pub(crate) fn list(ctx: &Ctx, argv: &[String]) -> CmdResult {
    let opts = match ctx.flavour {
        Flavour::Runc | Flavour::Crun => LIST,
        Flavour::Youki => YOUKI_LIST,
    };
    let grammar = Grammar::new("list", "lists containers started by runc with the given root", opts, &[]);
    let Some(m) = parse_command(ctx, &grammar, argv)? else {
        return Ok(0);
    };
    let records = state::list(&ctx.root);
    if m.flag("quiet") {
        for record in &records {
            println!("{}", record.id);
        }
        return Ok(0);
    }
    let format = match ctx.flavour {
        // youki accepts --format but always prints its table.
        Flavour::Youki => "table",
        Flavour::Runc | Flavour::Crun => m.value("format").unwrap_or("table"),
    };
    match (ctx.flavour, format) {
        (Flavour::Runc, "json") => {
            let items: Vec<RuncState> = records.iter().map(|r| runc_state(ctx, r, dir_owner(ctx, &r.id))).collect();
            // Go encodes an empty (nil) slice as null.
            if items.is_empty() {
                println!("null");
            } else {
                println!("{}", json_text(&items, ""));
            }
        }
        (Flavour::Runc, "table") => {
            let mut rows = vec![["ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER"].map(String::from).to_vec()];
            for record in &records {
                let item = runc_state(ctx, record, dir_owner(ctx, &record.id));
                rows.push(vec![
                    item.id,
                    item.pid.to_string(),
                    item.status.to_string(),
                    item.bundle,
                    item.created,
                    item.owner,
                ]);
            }
            print!("{}", tabulate(&rows, 12, 3));
        }
        (Flavour::Crun, "json") => {
            let items: Vec<CrunListItem> = records
                .iter()
                .map(|r| {
                    let status = r.status();
                    CrunListItem {
                        id: r.id.clone(),
                        pid: reported_pid(ctx, r, status),
                        status: status.lower(),
                        bundle: r.bundle.display().to_string(),
                        created: timestamp(&r.created, SecondsFormat::Micros),
                        owner: dir_owner(ctx, &r.id),
                    }
                })
                .collect();
            println!("{}", json_text(&items, "    "));
        }
        (Flavour::Crun, "table") => {
            println!(
                "{:<30}{:<10}{:<10}{:<40}{:<31}{:<10}",
                "NAME", "PID", "STATUS", "BUNDLE PATH", "CREATED", "OWNER"
            );
            for record in &records {
                let status = record.status();
                println!(
                    "{:<30}{:<10}{:<10}{:<40}{:<31}{:<10}",
                    record.id,
                    reported_pid(ctx, record, status),
                    status.lower(),
                    record.bundle.display(),
                    timestamp(&record.created, SecondsFormat::Micros),
                    dir_owner(ctx, &record.id)
                );
            }
        }
        (Flavour::Youki, _) => {
            let mut rows = vec![["ID", "PID", "STATUS", "BUNDLE", "CREATED", "CREATOR"].map(String::from).to_vec()];
            for record in &records {
                rows.push(vec![
                    record.id.clone(),
                    record.init.pid.to_string(),
                    record.status().capitalised().to_string(),
                    record.bundle.display().to_string(),
                    record.created.to_rfc3339_opts(SecondsFormat::Secs, false),
                    dir_owner(ctx, &record.id),
                ]);
            }
            print!("{}", tabulate(&rows, 2, 2));
        }
        (_, other) => {
            return Err(Failure::runtime(match ctx.flavour {
                Flavour::Runc => "invalid format option".to_string(),
                Flavour::Crun | Flavour::Youki => format!("unknown format `{other}`"),
            }));
        }
    }
    Ok(0)
}

/// `kill`: delivers a signal to the init, or with `--all` to every process of the container.
pub(crate) fn kill(ctx: &Ctx, argv: &[String]) -> CmdResult {
    let mut grammar = Grammar::new(
        "kill",
        "kill sends the specified signal (default: SIGTERM) to the container's init process",
        KILL,
        &["container-id", "signal"],
    );
    if ctx.flavour != Flavour::Youki {
        grammar.min_args = 1;
    }
    let Some(m) = parse_command(ctx, &grammar, argv)? else {
        return Ok(0);
    };
    let id = m.first();
    let all = m.flag("all");
    let name = m.positionals.get(1).map_or("SIGTERM", String::as_str);
    let signal = parse_signal(name).ok_or_else(|| {
        Failure::runtime(match ctx.flavour {
            Flavour::Runc => format!("unknown signal {name:?}"),
            Flavour::Crun => format!("unknown signal `{name}`"),
            Flavour::Youki => format!("{name} is not a valid signal"),
        })
    })?;
    let record = find(ctx, id)?;
    if record.status() == Status::Stopped {
        return match (ctx.flavour, all) {
            // runc and youki accept `kill --all` on a stopped container with nothing left.
            (Flavour::Runc | Flavour::Youki, true) => {
                record.signal_all(signal);
                Ok(0)
            }
            (Flavour::Runc, false) => Err(Failure::runtime("container not running")),
            (Flavour::Crun, _) => Err(Failure::runtime("kill container: No such process")),
            (Flavour::Youki, false) => Err(Failure::runtime(format!(
                "container not running\n\nCaused by:\n    {}",
                Ctx::youki_status_cause(Status::Stopped)
            ))),
        };
    }
    if all {
        record.signal_all(signal);
    } else {
        record.init.signal(signal);
    }
    Ok(0)
}

/// `delete`: removes a created or stopped container, or with `--force` any container.
pub(crate) fn delete(ctx: &Ctx, argv: &[String]) -> CmdResult {
    let grammar = Grammar::new("delete", "delete any resources held by the container", DELETE, ID);
    let Some(m) = parse_command(ctx, &grammar, argv)? else {
        return Ok(0);
    };
    let id = m.first();
    let force = m.flag("force");
    let dir = state::dir(&ctx.root, id);
    let lock = state::lock(&ctx.root, id).ok();
    let Some(record) = lock.as_ref().and_then(|_| state::load(&ctx.root, id)) else {
        // A directory without a record is the remains of an aborted create: runc removes it.
        let _ = fs::remove_dir_all(&dir);
        return if force { Ok(0) } else { Err(Failure::runtime(ctx.delete_not_found(id))) };
    };
    let status = record.status();
    if matches!(status, Status::Running | Status::Paused) && !force {
        return Err(Failure::runtime(match ctx.flavour {
            Flavour::Runc => format!("cannot delete container {id} that is not stopped: {}", status.lower()),
            Flavour::Crun => format!("the container `{id}` is not in `created` or `stopped` state"),
            Flavour::Youki => Ctx::youki_incompatible("delete", id, status),
        }));
    }
    destroy(ctx, &record);
    Ok(0)
}

/// `pause` and `resume`: SIGSTOP / SIGCONT to every process of the container.
pub(crate) fn pause_resume(ctx: &Ctx, argv: &[String], pause: bool) -> CmdResult {
    let (name, about) = if pause {
        ("pause", "pause suspends all processes inside the container")
    } else {
        ("resume", "resumes all processes that have been previously paused")
    };
    let grammar = Grammar::new(name, about, &[], ID);
    let Some(m) = parse_command(ctx, &grammar, argv)? else {
        return Ok(0);
    };
    let id = m.first();
    let _lock = lock(ctx, id)?;
    let mut record = find(ctx, id)?;
    let status = record.status();
    let allowed = match (ctx.flavour, pause) {
        (Flavour::Runc, true) => matches!(status, Status::Running | Status::Created),
        (Flavour::Runc, false) => status == Status::Paused,
        (Flavour::Crun, _) => status != Status::Stopped,
        (Flavour::Youki, true) => status == Status::Running,
        (Flavour::Youki, false) => status == Status::Paused,
    };
    if !allowed {
        return Err(Failure::runtime(match (ctx.flavour, pause) {
            (Flavour::Runc, true) => "container not running".to_string(),
            (Flavour::Runc, false) => "container not paused".to_string(),
            (Flavour::Crun, _) => format!("the container `{id}` is not running"),
            (Flavour::Youki, _) => Ctx::youki_incompatible(name, id, status),
        }));
    }
    record.signal_all(if pause { Signal::SIGSTOP } else { Signal::SIGCONT });
    record.paused = pause;
    save(ctx, &record)?;
    Ok(0)
}
