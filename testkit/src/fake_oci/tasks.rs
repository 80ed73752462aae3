//! Commands that act inside an existing container: `exec`, `ps` and `update`.
//!
//! `update` cannot enforce limits without cgroups; it validates the document like the real
//! runtimes and records the effective `LinuxResources` in `<root>/<id>/resources.json` so tests
//! can check what a driver asked for.

use std::fs;
use std::io::Read;
use std::path::Path;
use std::process::Command;

use oci_spec::runtime::{LinuxResources, Process};
use serde_json::{Map, Value};

use super::args::{Grammar, Matches, Opt, clap_error, flag, flag_s, parse_command, val, val_s};
use super::error::{CmdResult, Failure, io_failure};
use super::flavour::{Ctx, Flavour};
use super::json_text;
use super::lifecycle::{find, lock, save, spawn_process};
use crate::procs::Tracked;

use super::procs::{host_cwd, relay_signals, resolve_executable, wait_code, write_pid_file};
use super::state::{self, ProcSpec, RESOURCES_FILE, Status};

const RUNC_EXEC: &[Opt] = &[
    val("console-socket"),
    val("cwd"),
    val_s("env", 'e'),
    flag_s("tty", 't'),
    val_s("user", 'u'),
    val_s("additional-gids", 'g'),
    val_s("process", 'p'),
    flag_s("detach", 'd'),
    val("pid-file"),
    val("process-label"),
    val("apparmor"),
    flag("no-new-privs"),
    val_s("cap", 'c'),
    val("preserve-fds"),
    flag("ignore-paused"),
    val("cgroup"),
];
const CRUN_EXEC: &[Opt] = &[
    val("apparmor"),
    val_s("cap", 'c'),
    val("console-socket"),
    val("cwd"),
    flag_s("detach", 'd'),
    val_s("env", 'e'),
    flag("no-new-privs"),
    val("preserve-fds"),
    val_s("process", 'p'),
    val("process-label"),
    val("pid-file"),
    flag_s("tty", 't'),
    val_s("user", 'u'),
    val("cgroup"),
];
const YOUKI_EXEC: &[Opt] = &[
    val("console-socket"),
    val("cwd"),
    val_s("env", 'e'),
    flag_s("tty", 't'),
    val_s("user", 'u'),
    val_s("additional-gids", 'g'),
    val_s("process", 'p'),
    flag_s("detach", 'd'),
    val("pid-file"),
    val("process-label"),
    val("apparmor"),
    flag("no-new-privs"),
    val("cap"),
    val("preserve-fds"),
    flag("ignore-paused"),
    val("cgroup"),
];
const PS: &[Opt] = &[val_s("format", 'f')];
const RUNC_UPDATE: &[Opt] = &[
    val_s("resources", 'r'),
    val("blkio-weight"),
    val("cpu-period"),
    val("cpu-quota"),
    val("cpu-rt-period"),
    val("cpu-rt-runtime"),
    val("cpu-share"),
    val("cpuset-cpus"),
    val("cpuset-mems"),
    val("kernel-memory"),
    val("kernel-memory-tcp"),
    val("memory"),
    val("memory-reservation"),
    val("memory-swap"),
    val("pids-limit"),
    val("l3-cache-schema"),
    val("mem-bw-schema"),
];
const YOUKI_UPDATE: &[Opt] = &[
    val_s("resources", 'r'),
    val("blkio-weight"),
    val("cpu-period"),
    val("cpu-quota"),
    val("cpu-rt-period"),
    val("cpu-rt-runtime"),
    val("cpu-share"),
    val("cpuset-cpus"),
    val("cpuset-mems"),
    val("memory"),
    val("memory-reservation"),
    val("memory-swap"),
    val("pids-limit"),
    val("l3-cache-schema"),
    val("mem-bw-schema"),
];

/// The exit status of a failed `exec`: runc and youki use 255.
pub(crate) fn exec_failure_code(flavour: Flavour) -> u8 {
    match flavour {
        Flavour::Runc | Flavour::Youki => 255,
        Flavour::Crun => 1,
    }
}

/// `exec`: runs another process in a running container.
pub(crate) fn exec(ctx: &Ctx, argv: &[String], no_pid_file: bool) -> CmdResult {
    let opts = match ctx.flavour {
        Flavour::Runc => RUNC_EXEC,
        Flavour::Crun => CRUN_EXEC,
        Flavour::Youki => YOUKI_EXEC,
    };
    let grammar = Grammar {
        min_args: 1,
        max_args: None,
        raw_after: Some(1),
        ..Grammar::new("exec", "execute new process inside the container", opts, &["container-id", "command"])
    };
    let Some(m) = parse_command(ctx, &grammar, argv)? else {
        return Ok(0);
    };
    let code = exec_failure_code(ctx.flavour);
    let prefix = match ctx.flavour {
        Flavour::Runc => "exec failed: ",
        Flavour::Crun | Flavour::Youki => "",
    };
    run_exec(ctx, &m, no_pid_file).map_err(|f| f.prefixed(prefix).with_code(code))
}

fn run_exec(ctx: &Ctx, m: &Matches, no_pid_file: bool) -> CmdResult {
    let id = m.first();
    let Some(record) = state::load(&ctx.root, id) else {
        return Err(Failure::runtime(match ctx.flavour {
            Flavour::Youki => "container state directory does not exist".to_string(),
            Flavour::Runc | Flavour::Crun => ctx.not_found(id),
        }));
    };
    let status = record.status();
    let ignore_paused = m.flag("ignore-paused");
    let refusal = match (ctx.flavour, status) {
        (Flavour::Runc, Status::Stopped) => Some("cannot exec in a stopped container".to_string()),
        (Flavour::Runc, Status::Paused) if !ignore_paused => {
            Some("cannot exec in a paused container (use --ignore-paused to override)".to_string())
        }
        (Flavour::Crun, Status::Stopped | Status::Created) => Some(format!("the container `{id}` is not running")),
        (Flavour::Crun, Status::Paused) => Some(format!("the container `{id}` is paused")),
        (Flavour::Youki, Status::Running) => None,
        (Flavour::Youki, Status::Paused) if ignore_paused => None,
        (Flavour::Youki, status) => Some(Ctx::youki_incompatible("exec", id, status)),
        _ => None,
    };
    if let Some(message) = refusal {
        return Err(Failure::runtime(message));
    }
    let process = exec_process(ctx, m, &record.process)?;
    let Some(arg0) = process.args.first() else {
        return Err(Failure::runtime("args must not be empty"));
    };
    let cwd = host_cwd(&process.cwd, &record.bundle);
    let executable =
        resolve_executable(arg0, &process.env, &cwd).ok_or_else(|| Failure::runtime(ctx.missing_executable(arg0)))?;
    let mut child = spawn_process(&executable, &process, &cwd).map_err(|e| io_failure(format!("exec {arg0}"), e))?;
    let detach = m.flag("detach");
    if !detach {
        relay_signals(&child);
    }
    let tracked = Tracked::capture(child.id());
    {
        let _lock = lock(ctx, id)?;
        if let Some(mut latest) = state::load(&ctx.root, id) {
            latest.execs.retain(Tracked::alive);
            latest.execs.push(tracked);
            save(ctx, &latest)?;
        }
    }
    if let Some(path) = m.value("pid-file").filter(|_| !no_pid_file) {
        write_pid_file(Path::new(path), tracked.pid).map_err(|e| io_failure(format!("write pid file {path}"), e))?;
    }
    Ok(if detach { 0 } else { wait_code(&mut child) })
}

/// The process to exec: from `--process FILE`, or the trailing arguments combined with the
/// container's environment, `--env` and `--cwd`.
fn exec_process(ctx: &Ctx, m: &Matches, container: &ProcSpec) -> Result<ProcSpec, Failure> {
    if let Some(path) = m.value("process") {
        let text = fs::read_to_string(path).map_err(|e| io_failure(format!("open {path}"), e))?;
        let process: Process = serde_json::from_str(&text).map_err(|e| {
            Failure::runtime(match ctx.flavour {
                Flavour::Runc => format!("failed to decode process.json: {e}"),
                Flavour::Crun | Flavour::Youki => format!("cannot parse process file {path}: {e}"),
            })
        })?;
        return Ok(ProcSpec::from_oci(&process));
    }
    let mut env = container.env.clone();
    for entry in m.values("env") {
        let key = entry.split_once('=').map_or(entry, |(k, _)| k);
        env.retain(|existing| existing.split_once('=').map_or(existing.as_str(), |(k, _)| k) != key);
        env.push(entry.to_string());
    }
    Ok(ProcSpec {
        args: m.positionals[1..].to_vec(),
        env,
        cwd: m.value("cwd").map_or_else(|| container.cwd.clone(), str::to_string),
    })
}

/// `ps`: the container's processes, as JSON pids or (runc, youki) filtered `ps` output.
pub(crate) fn ps(ctx: &Ctx, argv: &[String]) -> CmdResult {
    let grammar = match ctx.flavour {
        Flavour::Crun => {
            Grammar::new("ps", "ps displays the processes running inside a container", PS, &["container-id"])
        }
        Flavour::Runc | Flavour::Youki => Grammar {
            min_args: 1,
            max_args: None,
            raw_after: Some(0),
            ..Grammar::new(
                "ps",
                "ps displays the processes running inside a container",
                PS,
                &["container-id", "ps-options"],
            )
        },
    };
    let Some(m) = parse_command(ctx, &grammar, argv)? else {
        return Ok(0);
    };
    let record = find(ctx, m.first())?;
    let pids = record.pids();
    match (ctx.flavour, m.value("format").unwrap_or("table")) {
        // Go encodes an empty (nil) slice as null.
        (Flavour::Runc, "json") if pids.is_empty() => println!("null"),
        (Flavour::Runc | Flavour::Youki, "json") => println!("{}", json_text(&pids, "")),
        (Flavour::Crun, "json") => println!("{}", json_text(&pids, "  ")),
        (Flavour::Crun, "table") => {
            println!("PID");
            for pid in pids {
                println!("{pid}");
            }
        }
        (Flavour::Runc | Flavour::Youki, "table") => ps_table(&m.positionals[1..], &pids)?,
        (_, other) => {
            return Err(Failure::runtime(match ctx.flavour {
                Flavour::Runc => "invalid format option".to_string(),
                Flavour::Crun | Flavour::Youki => format!("unknown format `{other}`"),
            }));
        }
    }
    Ok(0)
}

/// Runs the host's `ps` and keeps the header and the container's lines, as runc does.
fn ps_table(options: &[String], pids: &[i32]) -> Result<(), Failure> {
    let default = ["-ef".to_string()];
    let options = if options.is_empty() { &default[..] } else { options };
    let output = Command::new("ps").args(options).output().map_err(|e| io_failure("exec: \"ps\"", e))?;
    if !output.status.success() {
        return Err(Failure::runtime(format!("{}: {}", output.status, String::from_utf8_lossy(&output.stderr).trim())));
    }
    let text = String::from_utf8_lossy(&output.stdout);
    let mut lines = text.lines();
    let header = lines.next().unwrap_or_default();
    let Some(column) = header.split_whitespace().position(|f| f == "PID") else {
        return Err(Failure::runtime("couldn't find PID field in ps output"));
    };
    println!("{header}");
    for line in lines {
        let pid = line.split_whitespace().nth(column).and_then(|f| f.parse::<i32>().ok());
        if pid.is_some_and(|pid| pids.contains(&pid)) {
            println!("{line}");
        }
    }
    Ok(())
}

/// Parses a byte count with runc's unit suffixes (`512k`, `64m`, `1g`, binary multiples).
fn parse_bytes(text: &str) -> Option<i64> {
    let lower = text.trim().to_ascii_lowercase();
    let trimmed = lower.trim_end_matches('b');
    let (digits, multiplier) = match trimmed.chars().last()? {
        'k' => (&trimmed[..trimmed.len() - 1], 1i64 << 10),
        'm' => (&trimmed[..trimmed.len() - 1], 1 << 20),
        'g' => (&trimmed[..trimmed.len() - 1], 1 << 30),
        't' => (&trimmed[..trimmed.len() - 1], 1 << 40),
        _ => (trimmed, 1),
    };
    digits.trim().parse::<i64>().ok()?.checked_mul(multiplier)
}

/// How one `update` flag lands in the LinuxResources document.
struct Knob {
    flag: &'static str,
    path: [&'static str; 2],
    kind: Kind,
}

#[derive(Clone, Copy)]
enum Kind {
    Bytes,
    Signed,
    Unsigned,
    Text,
}

const KNOBS: &[Knob] = &[
    Knob { flag: "memory", path: ["memory", "limit"], kind: Kind::Bytes },
    Knob { flag: "memory-reservation", path: ["memory", "reservation"], kind: Kind::Bytes },
    Knob { flag: "memory-swap", path: ["memory", "swap"], kind: Kind::Bytes },
    Knob { flag: "kernel-memory", path: ["memory", "kernel"], kind: Kind::Bytes },
    Knob { flag: "kernel-memory-tcp", path: ["memory", "kernelTCP"], kind: Kind::Bytes },
    Knob { flag: "pids-limit", path: ["pids", "limit"], kind: Kind::Signed },
    Knob { flag: "cpu-share", path: ["cpu", "shares"], kind: Kind::Unsigned },
    Knob { flag: "cpu-quota", path: ["cpu", "quota"], kind: Kind::Signed },
    Knob { flag: "cpu-period", path: ["cpu", "period"], kind: Kind::Unsigned },
    Knob { flag: "cpu-rt-period", path: ["cpu", "realtimePeriod"], kind: Kind::Unsigned },
    Knob { flag: "cpu-rt-runtime", path: ["cpu", "realtimeRuntime"], kind: Kind::Signed },
    Knob { flag: "cpuset-cpus", path: ["cpu", "cpus"], kind: Kind::Text },
    Knob { flag: "cpuset-mems", path: ["cpu", "mems"], kind: Kind::Text },
    Knob { flag: "blkio-weight", path: ["blockIO", "weight"], kind: Kind::Unsigned },
];

fn knob_value(ctx: &Ctx, grammar: &Grammar<'_>, knob: &Knob, text: &str) -> Result<Value, Failure> {
    let parsed = match (ctx.flavour, knob.kind) {
        (_, Kind::Text) => Some(Value::from(text)),
        // youki's clap parses plain integers only.
        (Flavour::Youki, Kind::Bytes | Kind::Signed) => text.parse::<i64>().ok().map(Value::from),
        (_, Kind::Bytes) => parse_bytes(text).map(Value::from),
        (_, Kind::Signed) => text.parse::<i64>().ok().map(Value::from),
        (_, Kind::Unsigned) => text.parse::<u64>().ok().map(Value::from),
    };
    parsed.ok_or_else(|| match ctx.flavour {
        Flavour::Youki => clap_error(
            grammar,
            &format!(
                "invalid value '{text}' for '--{} <{}>': invalid digit found in string",
                knob.flag,
                knob.flag.to_ascii_uppercase().replace('-', "_")
            ),
        ),
        Flavour::Runc | Flavour::Crun => Failure::runtime(format!("invalid value for {}: {text}", knob.flag)),
    })
}

/// `update`: validates new resources and records them in `resources.json`.
pub(crate) fn update(ctx: &Ctx, argv: &[String]) -> CmdResult {
    let opts = match ctx.flavour {
        Flavour::Runc | Flavour::Crun => RUNC_UPDATE,
        Flavour::Youki => YOUKI_UPDATE,
    };
    let grammar = Grammar::new("update", "update container resource constraints", opts, &["container-id"]);
    let Some(m) = parse_command(ctx, &grammar, argv)? else {
        return Ok(0);
    };
    let id = m.first();
    find(ctx, id)?;
    let path = state::dir(&ctx.root, id).join(RESOURCES_FILE);
    let resources = m.value("resources");
    // youki 0.7.0 treats `-r -` as "no file" and changes nothing.
    if ctx.flavour == Flavour::Youki && resources == Some("-") {
        return Ok(0);
    }
    let mut document = match resources {
        Some(source) => parse_resources(ctx, &read_resources(source)?)?,
        None => fs::read_to_string(&path)
            .ok()
            .and_then(|text| serde_json::from_str(&text).ok())
            .unwrap_or_else(|| Value::Object(Map::new())),
    };
    // youki ignores the other flags when a resources file is given.
    if !(ctx.flavour == Flavour::Youki && resources.is_some()) {
        for knob in KNOBS {
            if let Some(text) = m.value(knob.flag) {
                let value = knob_value(ctx, &grammar, knob, text)?;
                set_path(&mut document, knob.path, value);
            }
        }
    }
    parse_resources(ctx, &document.to_string())?;
    let _lock = lock(ctx, id)?;
    state::write_atomic(&path, json_text(&document, "  ").as_bytes()).map_err(|e| io_failure("write resources", e))?;
    Ok(0)
}

fn read_resources(source: &str) -> Result<String, Failure> {
    if source == "-" {
        let mut text = String::new();
        std::io::stdin().read_to_string(&mut text).map_err(|e| io_failure("read stdin", e))?;
        Ok(text)
    } else {
        fs::read_to_string(source).map_err(|e| io_failure(format!("open {source}"), e))
    }
}

/// Parses and validates a LinuxResources document, keeping it as written.
fn parse_resources(ctx: &Ctx, text: &str) -> Result<Value, Failure> {
    let invalid = |e: serde_json::Error| {
        Failure::runtime(match ctx.flavour {
            Flavour::Runc => format!("unable to parse resources: {e}"),
            Flavour::Crun => format!("cannot parse resources: {e}"),
            Flavour::Youki => format!("failed to parse resources: {e}"),
        })
    };
    let value: Value = serde_json::from_str(text).map_err(invalid)?;
    serde_json::from_value::<LinuxResources>(value.clone()).map_err(invalid)?;
    Ok(value)
}

fn set_path(document: &mut Value, [section, key]: [&str; 2], value: Value) {
    if !document.is_object() {
        *document = Value::Object(Map::new());
    }
    let Value::Object(root) = document else { return };
    let entry = root.entry(section).or_insert_with(|| Value::Object(Map::new()));
    if !entry.is_object() {
        *entry = Value::Object(Map::new());
    }
    if let Value::Object(section) = entry {
        section.insert(key.to_string(), value);
    }
}
