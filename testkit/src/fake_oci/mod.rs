//! `fake-oci`: a hermetic OCI runtime for tests, holding only what the library drives.
//!
//! The real runtimes need root, namespaces and cgroups, which CI machines and laptops often
//! lack, and they cannot be made to fail on cue. The fake runs a container's `process.args` as
//! ordinary host processes while reproducing, per runtime, what the library observes: the
//! commands and flags it passes (others are refused as the real runtime refuses them), exit
//! statuses, the state documents' keys, the JSON `--log` record, and the wording of the errors
//! the dialects classify. `tests/differential.rs` holds it to the real runc, crun and youki.
//!
//! It runs as a link named `runc`, `crun` or `youki` (see [`crate::fake::FakeRuntime`]) and
//! imitates that runtime; named `criu` it answers CRIU's probes (`criu.rs`).
//!
//! Each container lives in `<root>/<id>/` (`state.rs`). `create` leaves an init blocked on an
//! exec fifo, in its own process group and with `create`'s stdio, as the real runtimes do; the
//! process group stands in for the cgroup (`kill --all`, `pause`, `ps`). Processes run in the
//! bundle's root filesystem directory (joined with `process.cwd`) but see the host's files, so a
//! relative path written by the container lands in the rootfs, as with a real runtime.
//!
//! A terminal container gets a real pseudo-terminal through `--console-socket` (`console.rs`);
//! `events` reports what `/proc` says of the container's processes (`events.rs`).
//!
//! Not imitated: isolation, cgroup limits (`update` records the document it received,
//! `RECEIVED_RESOURCES`), exec terminals, text logs. Faults can be injected into any command
//! (`faults.rs`).

mod checkpoint;
mod console;
mod criu;
mod events;
mod faults;
mod lifecycle;
mod state;
mod tasks;

use std::ffi::OsString;
use std::fs::OpenOptions;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use crate::fake::Flavour;

pub use checkpoint::MEMORY_VARIABLE;
pub use state::RECEIVED_RESOURCES;

/// One invocation: who the fake is and the global options that apply to every command.
#[derive(Debug)]
pub(crate) struct Ctx {
    pub flavour: Flavour,
    pub root: PathBuf,
    log: Option<PathBuf>,
    /// Set by the `no-pid-file` fault: commands that write pid files skip them.
    pub no_pid_file: bool,
}

/// A failed command: what it prints, its exit status, and whether it goes to the `--log` file
/// (runtime errors do; of the usage errors, only runc's).
#[derive(Debug)]
pub(crate) struct Failure {
    message: String,
    code: u8,
    logged: bool,
}

/// What a command returns: its exit status, or why it failed.
pub(crate) type CmdResult = Result<u8, Failure>;

impl Failure {
    /// A runtime error: exit status 1, logged.
    pub(crate) fn runtime(message: impl Into<String>) -> Self {
        Failure { message: message.into(), code: 1, logged: true }
    }

    /// An I/O error with what was being done.
    pub(crate) fn io(what: impl std::fmt::Display, err: std::io::Error) -> Self {
        Failure::runtime(format!("{what}: {err}"))
    }

    /// Overrides the exit status.
    pub(crate) fn with_code(mut self, code: u8) -> Self {
        self.code = code;
        self
    }

    /// Not written to the `--log` file.
    pub(crate) fn unlogged(mut self) -> Self {
        self.logged = false;
        self
    }

    fn report(&self, ctx: &Ctx) -> u8 {
        match ctx.flavour {
            Flavour::Youki => eprintln!("Error: {}", self.message),
            Flavour::Runc | Flavour::Crun => eprintln!("{}", self.message),
        }
        if let (true, Some(path)) = (self.logged, &ctx.log) {
            let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
            let message = &self.message;
            let record = match ctx.flavour {
                Flavour::Runc | Flavour::Crun => serde_json::json!({"level": "error", "msg": message, "time": now}),
                Flavour::Youki => serde_json::json!({
                    "timestamp": now, "level": "ERROR", "target": "youki",
                    "message": format!("error in executing command: {message}"),
                }),
            };
            if let Ok(mut log) = OpenOptions::new().create(true).append(true).open(path) {
                // A log that cannot be written must not hide the failure being reported.
                let _ = writeln!(log, "{record}");
            }
        }
        self.code
    }
}

/// A command-line error, an unknown option `name` of `command` (the program, for global
/// options) or an unknown command `name`: each runtime's parser words it, exits and logs its way.
fn usage(flavour: Flavour, name: &str, command: Option<&str>) -> Failure {
    let (message, code) = match (flavour, command) {
        (Flavour::Runc, None) => (format!("No help topic for '{name}'"), 3),
        (Flavour::Runc, Some(_)) => (format!("flag provided but not defined: -{name}"), 1),
        (Flavour::Crun, None) => (format!("unknown command {name}"), 1),
        (Flavour::Crun, Some(command)) => (format!("{command}: unrecognized option '--{name}'"), 64),
        (Flavour::Youki, None) => (format!("error: unrecognized subcommand '{name}'"), 2),
        (Flavour::Youki, Some(_)) => (format!("error: unexpected argument '--{name}' found"), 2),
    };
    let failure = Failure::runtime(message).with_code(code);
    if flavour == Flavour::Runc { failure } else { failure.unlogged() }
}

/// A parsed command line.
#[derive(Debug, Default)]
pub(crate) struct Args {
    options: Vec<(String, Option<String>)>,
    pub positionals: Vec<String>,
    help: bool,
}

impl Args {
    /// Parses `argv` against `accepted` option names (`"bundle="` takes a value); `--help`
    /// anywhere asks for help. Global options end at the first positional (the command).
    fn parse(ctx: &Ctx, command: &str, accepted: &str, argv: &[String]) -> Result<Args, Failure> {
        let accepted: Vec<&str> = accepted.split_whitespace().collect();
        let mut args = Args::default();
        let mut tokens = argv.iter();
        let unknown =
            |name: &str| usage(ctx.flavour, name, Some(if command.is_empty() { ctx.flavour.name() } else { command }));
        // Global options end at the command's name; everything after it is the command's.
        let mut rest_is_positional = false;
        while let Some(token) = tokens.next() {
            let name = token.strip_prefix("--").or_else(|| token.strip_prefix('-').filter(|rest| rest.len() == 1));
            let Some(name) = name.filter(|_| !rest_is_positional) else {
                args.positionals.push(token.clone());
                rest_is_positional = command.is_empty();
                continue;
            };
            if matches!(name, "help" | "h") {
                args.help = true;
            } else if accepted.contains(&name) {
                args.options.push((name.to_owned(), None));
            } else if accepted.contains(&format!("{name}=").as_str()) {
                let value = tokens.next().ok_or_else(|| unknown(name))?;
                args.options.push((name.to_owned(), Some(value.clone())));
            } else {
                return Err(unknown(name));
            }
        }
        Ok(args)
    }

    /// Whether a flag was given.
    pub(crate) fn flag(&self, name: &str) -> bool {
        self.options.iter().any(|(given, _)| given == name)
    }

    /// The last value of an option.
    pub(crate) fn value(&self, name: &str) -> Option<&str> {
        self.options.iter().rev().find(|(given, _)| given == name).and_then(|(_, value)| value.as_deref())
    }

    /// The container id: the first positional.
    pub(crate) fn id(&self) -> Result<&str, Failure> {
        self.positionals.first().map(String::as_str).ok_or_else(|| Failure::runtime("missing container id"))
    }
}

type Command = fn(&Ctx, &Args) -> CmdResult;

/// The commands each runtime has, with the options the library passes them (`bundle=` takes a
/// value).
fn command(flavour: Flavour, name: &str) -> Option<(&'static str, Command)> {
    Some(match (flavour, name) {
        (_, "create") => ("bundle= pid-file= console-socket= no-pivot no-new-keyring preserve-fds=", lifecycle::create),
        (_, "start") => ("", lifecycle::start),
        (_, "run") => {
            ("detach bundle= pid-file= console-socket= no-pivot no-new-keyring preserve-fds=", lifecycle::run)
        }
        (_, "state") => ("", lifecycle::state),
        (_, "list") => ("format=", lifecycle::list),
        (_, "kill") => ("all", lifecycle::kill),
        (_, "delete") => ("force", lifecycle::delete),
        (_, "pause") => ("", |ctx, args| lifecycle::pause_or_resume(ctx, args, true)),
        (_, "resume") => ("", |ctx, args| lifecycle::pause_or_resume(ctx, args, false)),
        (_, "exec") => ("process= detach tty pid-file= console-socket= preserve-fds=", tasks::exec),
        (_, "ps") => ("format=", tasks::ps),
        (_, "update") => ("r=", tasks::update),
        // Captured from runc 1.1.5 and youki 0.7.0; crun 1.8.1 has no `features`.
        (Flavour::Runc, "features") => ("", |_, _| Ok(print_out(include_str!("features/runc.json")))),
        (Flavour::Youki, "features") => ("", |_, _| Ok(print_out(include_str!("features/youki.json")))),
        (Flavour::Runc | Flavour::Youki, "events") => ("interval= stats", events::events),
        (Flavour::Runc, "checkpoint") => (
            "image-path= work-path= parent-path= leave-running tcp-established ext-unix-sk shell-job file-locks \
             pre-dump manage-cgroups-mode= lazy-pages",
            checkpoint::checkpoint,
        ),
        (Flavour::Youki, "checkpointt") => (
            "image-path= work-path= leave-running tcp-established ext-unix-sk shell-job file-locks \
             manage-cgroups-mode=",
            checkpoint::checkpoint,
        ),
        (Flavour::Runc, "restore") => (
            "image-path= work-path= bundle= detach pid-file= console-socket= no-subreaper no-pivot tcp-established \
             ext-unix-sk shell-job file-locks manage-cgroups-mode= lazy-pages",
            checkpoint::restore,
        ),
        _ => return None,
    })
}

fn global_options(flavour: Flavour) -> &'static str {
    match flavour {
        Flavour::Runc => "root= log= log-format= criu= systemd-cgroup rootless= debug version",
        Flavour::Crun => "root= log= log-format= cgroup-manager= systemd-cgroup rootless= debug version",
        Flavour::Youki => "root= log= log-format= systemd-cgroup debug version",
    }
}

/// Prints `text` as a command's whole output.
fn print_out(text: &str) -> u8 {
    print!("{text}");
    0
}

/// The names under which the fake takes over when it is argv\[0\].
const FAKE_NAMES: [&str; 4] = ["runc", "crun", "youki", "criu"];

fn program_name() -> String {
    let arg0 = std::env::args_os().next().unwrap_or_default();
    let arg0 = arg0.to_string_lossy();
    arg0.rsplit('/').next().unwrap_or_default().to_owned()
}

/// True when argv\[0\] names a runtime (or CRIU) the fake stands in for, so a binary exec'd
/// under such a link should hand over to [`main`].
pub fn invoked_as_fake() -> bool {
    FAKE_NAMES.contains(&program_name().as_str())
}

/// Runs the fake runtime (or fake CRIU) on the process's own arguments.
pub fn main() -> ExitCode {
    let raw: Vec<OsString> = std::env::args_os().skip(1).collect();
    let program = program_name();
    if program == "criu" {
        return criu::main(&raw);
    }
    if raw.first().is_some_and(|arg| arg == lifecycle::INIT_ARG) {
        return lifecycle::init(&raw[1..]);
    }
    let Some(flavour) = Flavour::from_name(&program) else {
        eprintln!("fake-oci runs as a link named runc, crun, youki or criu, not {program:?}");
        return ExitCode::from(2);
    };
    let argv: Vec<String> = raw.iter().map(|arg| arg.to_string_lossy().into_owned()).collect();
    let mut ctx = Ctx { flavour, root: PathBuf::from(format!("/run/fake-{program}")), log: None, no_pid_file: false };
    let code = run(&mut ctx, &argv).unwrap_or_else(|failure| failure.report(&ctx));
    ExitCode::from(code)
}

fn run(ctx: &mut Ctx, argv: &[String]) -> CmdResult {
    let globals = Args::parse(ctx, "", global_options(ctx.flavour), argv)?;
    if let Some(root) = globals.value("root") {
        ctx.root = std::path::absolute(root).map_err(|err| Failure::io("--root", err))?;
    }
    ctx.log = globals.value("log").map(PathBuf::from);
    if globals.value("log-format").is_some_and(|format| format != "json") {
        return Err(Failure::runtime("fake-oci writes JSON logs only"));
    }
    let (name, rest) = match (globals.flag("version"), globals.positionals.split_first()) {
        (true, _) => ("version", &[][..]),
        (false, Some((name, rest))) => (name.as_str(), rest),
        (false, None) => ("help", &[][..]),
    };
    let failure_code = if name == "exec" { tasks::exec_failure_code(ctx.flavour) } else { 1 };
    ctx.no_pid_file = faults::apply(&ctx.root, name, failure_code)?;
    let flavour = ctx.flavour;
    if name == "version" {
        let spec = match flavour {
            Flavour::Runc => "1.0.2-dev",
            Flavour::Crun => "1.0.0",
            Flavour::Youki => "1.1.0",
        };
        let colon = if flavour == Flavour::Youki { ":" } else { "" };
        println!("{} version{colon} {}\ncommit: fake\nspec: {spec}", flavour.name(), flavour.version());
        return Ok(0);
    }
    let help = |usage: &str, options: &str| {
        println!("Usage: {} {usage} <container-id>", flavour.name());
        options.split_whitespace().for_each(|option| println!("  --{}", option.trim_end_matches('=')));
        Ok(0)
    };
    if name == "help" || globals.help {
        return help("[global options] command [command options]", global_options(flavour));
    }
    let (accepted, run) = command(flavour, name).ok_or_else(|| usage(flavour, name, None))?;
    let args = Args::parse(ctx, name, accepted, rest)?;
    if args.help {
        return help(&format!("{name} [options]"), accepted);
    }
    run(ctx, &args)
}
