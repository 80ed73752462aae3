//! Commands that act inside an existing container: `exec`, `ps` and `update`.
//!
//! `update` cannot enforce limits without cgroups. It checks the document is `LinuxResources`
//! and keeps it exactly as received (`RECEIVED_RESOURCES`), so a test can tell whether what the
//! caller asked for reached the runtime, and nothing more.

use std::io::Read;

use oci_spec::runtime::{LinuxResources, Process};
use runtime_core::Status;

use super::lifecycle::{container_command, exit_code, write_pid_file};
use super::state::{self, RECEIVED_RESOURCES, youki_refusal};
use super::{Args, CmdResult, Ctx, Failure, console};
use crate::fake::Flavour;
use crate::procs::Tracked;

/// The exit status of a failed `exec`: runc and youki use 255.
pub(crate) fn exec_failure_code(flavour: Flavour) -> u8 {
    match flavour {
        Flavour::Runc | Flavour::Youki => 255,
        Flavour::Crun => 1,
    }
}

/// `exec --process FILE [--detach] [--pid-file FILE] [--tty] [--console-socket S] <id>`.
pub(crate) fn exec(ctx: &Ctx, args: &Args) -> CmdResult {
    let prefix = if ctx.flavour == Flavour::Runc { "exec failed: " } else { "" };
    run_exec(ctx, args).map_err(|failure| {
        Failure { message: format!("{prefix}{}", failure.message), ..failure }.with_code(exec_failure_code(ctx.flavour))
    })
}

fn run_exec(ctx: &Ctx, args: &Args) -> CmdResult {
    let id = args.id()?;
    let record = state::find(ctx, "exec", id)?;
    let status = record.status();
    match (ctx.flavour, status) {
        (_, Status::Running) => {}
        (Flavour::Runc, Status::Stopped) => return Err(Failure::runtime("cannot exec in a stopped container")),
        (Flavour::Runc, Status::Paused) => {
            return Err(Failure::runtime("cannot exec in a paused container (use --ignore-paused to override)"));
        }
        (Flavour::Runc, _) => {}
        (Flavour::Crun, Status::Paused) => return Err(Failure::runtime(format!("the container `{id}` is paused"))),
        (Flavour::Crun, _) => return Err(Failure::runtime(format!("the container `{id}` is not running"))),
        (Flavour::Youki, status) => return Err(youki_refusal("exec", id, status)),
    }
    let path = args.value("process").ok_or_else(|| Failure::runtime("fake-oci execs only a --process file"))?;
    let text = std::fs::read_to_string(path).map_err(|err| Failure::io(format!("open {path}"), err))?;
    let mut process: Process =
        serde_json::from_str(&text).map_err(|err| Failure::runtime(format!("cannot parse {path}: {err}")))?;
    if args.flag("tty") {
        process.set_terminal(Some(true));
    }
    let mut command = container_command(ctx.flavour, &process, &record.rootfs(), None)?;
    console::attach(ctx, &process, args.value("console-socket"), &mut command)?;
    let mut child = command.spawn().map_err(|err| Failure::io("exec", err))?;
    let tracked = Tracked::capture(child.id());
    // At once, as the runtimes write it as soon as the process runs: a caller that gives up on
    // the exec finds what to end there, and the state lock below may be contended.
    write_pid_file(ctx, args.value("pid-file"), tracked.pid)?;
    {
        let _lock = state::lock(ctx, "exec", id)?;
        if let Some(mut latest) = state::load(&ctx.root, id) {
            latest.execs.retain(Tracked::alive);
            latest.execs.push(tracked);
            state::save(ctx, &latest)?;
        }
    }
    Ok(if args.flag("detach") { 0 } else { exit_code(child.wait()) })
}

/// `ps --format json <id>`: the pids of the container's processes (runc says `null` for none).
pub(crate) fn ps(ctx: &Ctx, args: &Args) -> CmdResult {
    let pids = state::find(ctx, "ps", args.id()?)?.pids();
    if ctx.flavour == Flavour::Runc && pids.is_empty() {
        println!("null");
    } else {
        println!("{}", serde_json::Value::from(pids));
    }
    Ok(0)
}

/// `update -r FILE|- <id>`: validates the resources document and keeps it as received.
pub(crate) fn update(ctx: &Ctx, args: &Args) -> CmdResult {
    let id = args.id()?;
    state::find(ctx, "update", id)?;
    let source = args.value("r").ok_or_else(|| Failure::runtime("fake-oci updates only from -r FILE or -r -"))?;
    let mut text = String::new();
    match source {
        "-" => std::io::stdin().read_to_string(&mut text).map(drop),
        file => std::fs::read_to_string(file).map(|read| text = read),
    }
    .map_err(|err| Failure::io(format!("read {source}"), err))?;
    serde_json::from_str::<LinuxResources>(&text)
        .map_err(|err| Failure::runtime(format!("unable to parse resources: {err}")))?;
    state::write_atomic(&state::dir(&ctx.root, id).join(RECEIVED_RESOURCES), text.as_bytes())
        .map_err(|err| Failure::io("keep the resources", err))?;
    Ok(0)
}
