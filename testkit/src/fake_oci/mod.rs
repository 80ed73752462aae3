//! `fake-oci`: a hermetic OCI runtime for tests.
//!
//! Drivers of OCI runtimes have to be tested against runc, crun and youki, but the real
//! runtimes need root, namespaces and cgroups, which CI machines and developer laptops often
//! lack, and they cannot be made to fail on cue. `fake-oci` is a working runtime CLI that needs
//! none of that: it runs the container's `process.args` as ordinary host processes (so
//! `sleep 100`, `sh -c 'exit 7'` and `echo hi` behave as expected) while reproducing, per
//! runtime, the command line, the exit statuses, the JSON documents and the error wording that
//! a driver observes. Only the observable contract is imitated; there is no isolation.
//!
//! # Selecting a flavour
//!
//! - By argv\[0\]: invoked through a link named `runc`, `crun` or `youki` it imitates runc 1.1.5,
//!   crun 1.8.1 or youki 0.7.0; named `criu` it answers CRIU's probes (see `criu.rs`).
//! - Otherwise a leading `--flavour runc|crun|youki`; runc by default.
//! - `FAKE_OCI_VERSION=X.Y.Z` changes the reported version, and with it version-dependent
//!   behaviour (crun has `features` from 1.8.6, and words "not found" differently from 1.22).
//!
//! A test harness binary exec'd under such a link can call [`invoked_as_fake`] first thing and
//! dispatch into [`main`]; the fake re-executes its own binary with argv\[0\] set to the flavour
//! name, so that works for the container init too.
//!
//! # Behaviour
//!
//! Each container lives in `<root>/<id>/` (`--root`, default `/tmp/fake-oci-<flavour>`), see
//! `state.rs`: the fake's own `state.json`, the `exec.fifo` between `create` and `start`, and
//! `resources.json` with the effective resources after `create` and `update`. `create` leaves an
//! init process (see `init.rs`) blocked on the fifo, in its own process group and with
//! `create`'s stdio, like runc's: a caller that captures `create`'s output through pipes must
//! not wait for EOF, since the container keeps them open. The process group stands in for the
//! cgroup (`kill --all`, `pause`, `ps`).
//!
//! Not imitated: namespaces, cgroup limits, the root filesystem (the process runs in
//! `process.cwd` if it exists on the host, else in the bundle), exec terminals (`exec --tty` is
//! accepted and ignored), users and capabilities. `--preserve-fds` needs no work: inherited
//! descriptors stay open. A terminal container gets a real pseudo-terminal through
//! `--console-socket` (see `console.rs`); `events` reports what `/proc` says of the container's
//! processes (see `events.rs`).
//!
//! Failures are written to stderr and, with `--log FILE`, appended to FILE as a text line or
//! (`--log-format json`) a JSON record in the flavour's shape. Faults can be injected into any
//! command (see `faults.rs`).

mod args;
mod checkpoint;
mod console;
mod criu;
mod error;
mod events;
mod faults;
mod features;
mod flavour;
mod init;
mod lifecycle;
mod procs;
mod state;
mod tasks;

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use serde::Serialize;
use serde_json::ser::PrettyFormatter;

use args::{Grammar, Opt, flag, flag_s, val, val_s};
use error::{CmdResult, Failure};
use faults::Verdict;
use flavour::{Ctx, Flavour};

/// Names under which the fake takes over when it is argv\[0\].
const FAKE_NAMES: [&str; 4] = ["runc", "crun", "youki", "criu"];

const RUNC_GLOBAL: &[Opt] = &[
    flag("debug"),
    val("log"),
    val("log-format"),
    val("root"),
    val("criu"),
    flag("systemd-cgroup"),
    val("rootless"),
    flag_s("version", 'v'),
];
const CRUN_GLOBAL: &[Opt] = &[
    flag("debug"),
    val("log"),
    val("log-format"),
    val("log-level"),
    val("root"),
    val("cgroup-manager"),
    flag("systemd-cgroup"),
    val("rootless"),
    flag_s("version", 'v'),
    flag_s("version", 'V'),
];
const YOUKI_GLOBAL: &[Opt] = &[
    val_s("log", 'l'),
    flag("debug"),
    val("log-format"),
    val_s("root", 'r'),
    flag_s("systemd-cgroup", 's'),
    flag_s("version", 'V'),
];

/// True when argv\[0\] names one of the runtimes (or CRIU) the fake stands in for, so a binary
/// exec'd under such a link should hand over to [`main`].
pub fn invoked_as_fake() -> bool {
    std::env::args_os().next().is_some_and(|arg0| FAKE_NAMES.contains(&basename(&arg0.to_string_lossy())))
}

/// Runs the fake runtime (or fake CRIU) on the process's own arguments.
pub fn main() -> ExitCode {
    let raw: Vec<OsString> = std::env::args_os().collect();
    let argv: Vec<String> = raw.iter().map(|arg| arg.to_string_lossy().into_owned()).collect();
    let program = argv.first().cloned().unwrap_or_default();
    let base = basename(&program);
    if base == "criu" {
        return criu::main(Path::new(&program), &argv[1..]);
    }
    if argv.get(1).is_some_and(|arg| arg == init::INIT_ARG) {
        return init::main(&raw[2..]);
    }
    let rest = argv.get(1..).unwrap_or_default();
    let (flavour, rest, program) = match Flavour::from_name(base) {
        Some(flavour) => (flavour, rest, program),
        None => match select_flavour(rest) {
            Ok((flavour, rest)) => (flavour, rest, flavour.name().to_string()),
            Err(message) => {
                eprintln!("{message}");
                return ExitCode::FAILURE;
            }
        },
    };
    ExitCode::from(run(flavour, program, rest))
}

fn basename(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}

/// Strips a leading `--flavour NAME` / `--flavour=NAME`.
fn select_flavour(argv: &[String]) -> Result<(Flavour, &[String]), String> {
    let (name, rest) = match argv.first().map(String::as_str) {
        Some("--flavour") => match argv.get(1) {
            Some(name) => (name.as_str(), &argv[2..]),
            None => return Err("fake-oci: --flavour needs runc, crun or youki".to_string()),
        },
        Some(arg) if arg.starts_with("--flavour=") => (&arg["--flavour=".len()..], &argv[1..]),
        _ => return Ok((Flavour::Runc, argv)),
    };
    Flavour::from_name(name)
        .map(|flavour| (flavour, rest))
        .ok_or_else(|| format!("fake-oci: unknown flavour {name:?} (runc, crun or youki)"))
}

fn global_grammar(flavour: Flavour) -> Grammar<'static> {
    Grammar {
        name: None,
        about: "Open Container Initiative runtime",
        opts: match flavour {
            Flavour::Runc => RUNC_GLOBAL,
            Flavour::Crun => CRUN_GLOBAL,
            Flavour::Youki => YOUKI_GLOBAL,
        },
        args: &["command"],
        min_args: 0,
        max_args: None,
        raw_after: Some(0),
    }
}

/// Serialises `value` as JSON: compact when `indent` is empty, else pretty with that indent.
pub(crate) fn json_text<T: Serialize + ?Sized>(value: &T, indent: &str) -> String {
    if indent.is_empty() {
        return serde_json::to_string(value).unwrap_or_default();
    }
    let mut out = Vec::new();
    let mut serializer =
        serde_json::Serializer::with_formatter(&mut out, PrettyFormatter::with_indent(indent.as_bytes()));
    match value.serialize(&mut serializer) {
        Ok(()) => String::from_utf8(out).unwrap_or_default(),
        Err(_) => String::new(),
    }
}

/// Applies the global options; an invalid value is a runtime error, as in the real runtimes.
fn apply_globals(ctx: &mut Ctx, m: &args::Matches) -> Result<(), Failure> {
    if let Some(root) = m.value("root") {
        ctx.root = std::path::absolute(Path::new(root)).unwrap_or_else(|_| PathBuf::from(root));
    }
    ctx.log = m.value("log").map(PathBuf::from);
    match m.value("log-format") {
        None | Some("text") => {}
        Some("json") => ctx.log_json = true,
        Some(other) => {
            return Err(Failure::runtime(match ctx.flavour {
                Flavour::Runc => format!("invalid log-format: {other}"),
                Flavour::Crun => format!("unknown log format type {other}"),
                Flavour::Youki => format!("unknown log format: {other}"),
            }));
        }
    }
    if let Some(manager) = m.value("cgroup-manager")
        && !matches!(manager, "systemd" | "cgroupfs" | "disabled")
    {
        return Err(Failure::runtime("unknown cgroup manager specified"));
    }
    Ok(())
}

fn global_help(ctx: &Ctx) -> String {
    let commands = match ctx.flavour {
        Flavour::Runc => {
            "checkpoint create delete exec features kill list pause ps restore resume run start state update"
        }
        Flavour::Crun => "create delete exec features kill list pause ps resume run start state update",
        Flavour::Youki => "checkpointt create delete exec features kill list pause ps resume run start state update",
    };
    let mut text = format!(
        "{} (fake-oci) - Open Container Initiative runtime\n\nUSAGE:\n   {} [global options] command [command options] [arguments...]\n\nCOMMANDS:\n",
        ctx.flavour.name(),
        ctx.flavour.name()
    );
    for command in commands.split(' ') {
        text.push_str(&format!("   {command}\n"));
    }
    text
}

fn unknown_command(ctx: &Ctx, command: &str) -> Failure {
    match ctx.flavour {
        Flavour::Runc => Failure::usage(format!("No help topic for '{command}'"), 3),
        Flavour::Crun => Failure::runtime(format!("unknown command {command}")),
        Flavour::Youki => {
            args::clap_error(&global_grammar(ctx.flavour), &format!("unrecognized subcommand '{command}'"))
        }
    }
}

fn run(flavour: Flavour, program: String, argv: &[String]) -> u8 {
    let mut ctx = Ctx::new(flavour, program);
    let m = match args::parse(&ctx, &global_grammar(flavour), argv) {
        Ok(m) => m,
        Err(failure) => return failure.report(&ctx),
    };
    if let Err(failure) = apply_globals(&mut ctx, &m) {
        return failure.report(&ctx);
    }
    if m.help {
        print!("{}", global_help(&ctx));
        return 0;
    }
    let (command, rest) = if m.flag("version") {
        ("version", &[][..])
    } else {
        match m.positionals.split_first() {
            Some((command, rest)) => (command.as_str(), rest),
            None => return no_command(&ctx),
        }
    };
    let failure_code = if command == "exec" { tasks::exec_failure_code(flavour) } else { 1 };
    let no_pid_file = match faults::apply(&ctx.root, command, failure_code) {
        Verdict::Proceed { no_pid_file } => no_pid_file,
        Verdict::Exit(code) => return code,
        Verdict::Fail(failure) => return failure.report(&ctx),
    };
    let result = if m.flag("version") {
        println!("{}", ctx.version_banner());
        Ok(0)
    } else {
        dispatch(&ctx, command, rest, no_pid_file)
    };
    match result {
        Ok(code) => code,
        Err(failure) => failure.report(&ctx),
    }
}

fn no_command(ctx: &Ctx) -> u8 {
    match ctx.flavour {
        Flavour::Runc => {
            print!("{}", global_help(ctx));
            0
        }
        Flavour::Crun => {
            Failure::usage("crun: no command specified\nTry `crun --help' or `crun --usage' for more information.", 1)
                .report(ctx)
        }
        Flavour::Youki => {
            args::clap_error(&global_grammar(ctx.flavour), "'youki' requires a subcommand but one was not provided")
                .report(ctx)
        }
    }
}

fn dispatch(ctx: &Ctx, command: &str, argv: &[String], no_pid_file: bool) -> CmdResult {
    match (ctx.flavour, command) {
        (_, "create") => lifecycle::create(ctx, argv, no_pid_file),
        (_, "start") => lifecycle::start(ctx, argv),
        (_, "run") => lifecycle::run(ctx, argv, no_pid_file),
        (_, "state") => lifecycle::state(ctx, argv),
        (_, "list") => lifecycle::list(ctx, argv),
        (_, "kill") => lifecycle::kill(ctx, argv),
        (_, "delete") => lifecycle::delete(ctx, argv),
        (_, "pause") => lifecycle::pause_resume(ctx, argv, true),
        (_, "resume") => lifecycle::pause_resume(ctx, argv, false),
        (_, "exec") => tasks::exec(ctx, argv, no_pid_file),
        (_, "ps") => tasks::ps(ctx, argv),
        (_, "update") => tasks::update(ctx, argv),
        (_, "features") if features::available(ctx) => features::features(ctx, argv),
        (Flavour::Runc, "checkpoint") | (Flavour::Youki, "checkpointt") => checkpoint::checkpoint(ctx, argv, command),
        (Flavour::Runc, "restore") => checkpoint::restore(ctx, argv, no_pid_file),
        (Flavour::Runc | Flavour::Youki, "events") => events::events(ctx, argv),
        (Flavour::Runc | Flavour::Youki, "help") => {
            print!("{}", global_help(ctx));
            Ok(0)
        }
        _ => Err(unknown_command(ctx, command)),
    }
}
