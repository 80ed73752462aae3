//! `events`: runc's and youki's statistics, from what the fake knows of a container without
//! cgroups: how many processes it runs, their resident memory and their CPU time, all read from
//! `/proc`. crun has no `events` command, like the real one.
//!
//! runc prints one `{"type":"stats",...}` line per sample, the first after one interval, and ends
//! quietly when the container stops; youki prints a pretty-printed document at once and then
//! every interval (whole seconds), and fails once the container is gone.

use std::io::Write;
use std::time::Duration;

use runtime_core::Status;
use serde_json::json;

use super::state::{self, Record};
use super::{Args, CmdResult, Ctx, Failure};
use crate::fake::Flavour;

/// Both runtimes sample every five seconds unless told otherwise.
const DEFAULT_INTERVAL: Duration = Duration::from_secs(5);

/// What `/proc` says about the container's processes.
#[derive(Debug, Default)]
struct Usage {
    pids: u64,
    resident_bytes: u64,
    user_ticks: u64,
    kernel_ticks: u64,
}

fn usage(record: &Record) -> Usage {
    let mut usage = Usage::default();
    for pid in record.pids() {
        usage.pids += 1;
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
        let resident_kib = status
            .lines()
            .find_map(|line| line.strip_prefix("VmRSS:")?.trim().strip_suffix("kB")?.trim().parse::<u64>().ok());
        usage.resident_bytes += resident_kib.unwrap_or(0) * 1024;
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        // Fields resume after the command name's last ')': the state is field 3, utime 14, stime 15.
        let after_name = stat.rfind(')').map_or("", |end| &stat[end + 1..]);
        let times: Vec<u64> = after_name.split_whitespace().skip(11).take(2).filter_map(|f| f.parse().ok()).collect();
        if let [user, kernel] = times[..] {
            usage.user_ticks += user;
            usage.kernel_ticks += kernel;
        }
    }
    usage
}

/// One sample in the flavour's shape.
fn document(ctx: &Ctx, id: &str, usage: &Usage) -> String {
    let hertz = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK).ok().flatten().filter(|hz| *hz > 0);
    let tick_ns = 1_000_000_000 / hertz.map_or(100, |hz| hz.unsigned_abs());
    let (user_ns, kernel_ns) = (usage.user_ticks * tick_ns, usage.kernel_ticks * tick_ns);
    match ctx.flavour {
        Flavour::Runc => json!({"type": "stats", "id": id, "data": {
            "cpu": {"usage": {"total": user_ns + kernel_ns, "kernel": kernel_ns, "user": user_ns}},
            "memory": {"usage": {"usage": usage.resident_bytes}},
            "pids": {"current": usage.pids},
        }})
        .to_string(),
        // youki 0.7 on cgroup v1 passes user and kernel time through as clock ticks.
        Flavour::Crun | Flavour::Youki => format!(
            "{:#}",
            json!({
                "cpu": {"usage": {
                    "usage_total": user_ns + kernel_ns, "usage_user": usage.user_ticks, "usage_kernel": usage.kernel_ticks,
                }},
                "pids": {"current": usage.pids, "limit": 0},
                "memory": {"memory": {"usage": usage.resident_bytes}},
            })
        ),
    }
}

/// `--interval` as the product spells it: a Go duration in `s`, `ms` or `ns` for runc, whole
/// seconds for youki.
fn interval(flavour: Flavour, text: &str) -> Result<Duration, Failure> {
    let split = text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len());
    let amount: Option<u64> = text[..split].parse().ok();
    let parsed = match (flavour, &text[split..]) {
        (Flavour::Runc, "s") => amount.map(Duration::from_secs),
        (Flavour::Runc, "ms") => amount.map(Duration::from_millis),
        (Flavour::Runc, "ns") => amount.map(Duration::from_nanos),
        (Flavour::Crun | Flavour::Youki, "") => amount.map(Duration::from_secs),
        _ => None,
    };
    parsed.filter(|interval| !interval.is_zero()).ok_or_else(|| {
        Failure::runtime(match flavour {
            Flavour::Runc => format!("invalid value {text:?} for flag -interval: parse error"),
            Flavour::Crun | Flavour::Youki => format!("invalid value '{text}' for '--interval <INTERVAL>'"),
        })
    })
}

/// `events [--stats] [--interval I] <id>`: statistics once, or every interval while the
/// container runs.
pub(crate) fn events(ctx: &Ctx, args: &Args) -> CmdResult {
    let id = args.id()?;
    let record = state::find(ctx, "events", id)?;
    let mut out = std::io::stdout().lock();
    if args.flag("stats") {
        // Nobody reading is no failure of the runtime's.
        let _ = writeln!(out, "{}", document(ctx, id, &usage(&record)));
        return Ok(0);
    }
    let every = args.value("interval").map_or(Ok(DEFAULT_INTERVAL), |text| interval(ctx.flavour, text))?;
    loop {
        if ctx.flavour == Flavour::Runc {
            std::thread::sleep(every);
        }
        let Some(record) = state::load(&ctx.root, id).filter(|record| record.status() != Status::Stopped) else {
            return match ctx.flavour {
                Flavour::Runc => Ok(0),
                Flavour::Crun | Flavour::Youki => {
                    Err(Failure::runtime(format!("failed to get events from container {id}")))
                }
            };
        };
        if writeln!(out, "{}", document(ctx, id, &usage(&record))).and_then(|()| out.flush()).is_err() {
            // Nobody reads any more.
            return Ok(0);
        }
        if ctx.flavour != Flavour::Runc {
            std::thread::sleep(every);
        }
    }
}
