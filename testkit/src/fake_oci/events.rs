//! `events`: runc's and youki's statistics, from what the fake knows of a container without
//! cgroups: how many processes it runs, their resident memory and their CPU time, all read from
//! `/proc`. Block I/O is not known and reported empty. crun has no `events` command, like the
//! real one.
//!
//! runc prints one `{"type":"stats",...}` line per sample, the first after one interval, and ends
//! quietly when the container stops; youki prints a pretty-printed document at once and then
//! every interval (whole seconds), and fails once the container is gone.

use std::io::Write;
use std::thread;
use std::time::Duration;

use nix::unistd::{SysconfVar, sysconf};
use serde_json::{Value, json};

use super::args::{Grammar, Opt, flag, parse_command, val};
use super::error::{CmdResult, Failure};
use super::flavour::{Ctx, Flavour};
use super::json_text;
use super::lifecycle::find;
use super::state::{self, Record, Status};

const EVENTS: &[Opt] = &[val("interval"), flag("stats")];

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
        // Fields resume after the command name's last ')': state is field 3, utime 14, stime 15.
        let fields: Vec<u64> = stat
            .rfind(')')
            .map(|end| stat[end + 1..].split_whitespace().skip(11).take(2).filter_map(|f| f.parse().ok()).collect())
            .unwrap_or_default();
        if let [user, kernel] = fields[..] {
            usage.user_ticks += user;
            usage.kernel_ticks += kernel;
        }
    }
    usage
}

fn document(ctx: &Ctx, id: &str, usage: &Usage) -> String {
    let tick_ns =
        1_000_000_000 / sysconf(SysconfVar::CLK_TCK).ok().flatten().filter(|hz| *hz > 0).unwrap_or(100) as u64;
    let (user_ns, kernel_ns) = (usage.user_ticks * tick_ns, usage.kernel_ticks * tick_ns);
    let total_ns = user_ns + kernel_ns;
    match ctx.flavour {
        Flavour::Runc => json_text(
            &json!({"type": "stats", "id": id, "data": {
                "cpu": {"usage": {"total": total_ns, "kernel": kernel_ns, "user": user_ns}, "throttling": {}},
                "memory": {"usage": {"usage": usage.resident_bytes, "failcnt": 0}},
                "pids": {"current": usage.pids},
                "blkio": {},
            }}),
            "",
        ),
        // youki 0.7 on cgroup v1 passes user and kernel time through as clock ticks.
        Flavour::Crun | Flavour::Youki => json_text(
            &json!({
                "cpu": {
                    "usage": {"usage_total": total_ns, "usage_user": usage.user_ticks, "usage_kernel": usage.kernel_ticks,
                              "per_core_usage_total": Value::Array(Vec::new())},
                    "throttling": {"periods": 0, "throttled_periods": 0, "throttled_time": 0},
                },
                "pids": {"current": usage.pids, "limit": 0},
                "blkio": {"service_bytes": [], "serviced": []},
                "memory": {"memory": {"usage": usage.resident_bytes, "max_usage": 0, "fail_count": 0, "limit": 0}},
            }),
            "  ",
        ),
    }
}

/// `--interval`: a Go duration for runc (`1s`, `500ms`), whole seconds for youki.
fn interval(ctx: &Ctx, given: Option<&str>) -> Result<Duration, Failure> {
    let Some(text) = given else { return Ok(DEFAULT_INTERVAL) };
    let parsed = match ctx.flavour {
        Flavour::Runc => {
            let split = text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len());
            let amount: Option<u64> = text[..split].parse().ok();
            amount.and_then(|amount| match &text[split..] {
                "ns" => Some(Duration::from_nanos(amount)),
                "us" => Some(Duration::from_micros(amount)),
                "ms" => Some(Duration::from_millis(amount)),
                "s" => Some(Duration::from_secs(amount)),
                "m" => Some(Duration::from_secs(amount * 60)),
                _ => None,
            })
        }
        Flavour::Crun | Flavour::Youki => text.parse().ok().map(Duration::from_secs),
    };
    match parsed {
        Some(interval) if !interval.is_zero() => Ok(interval),
        _ => Err(Failure::runtime(match ctx.flavour {
            Flavour::Runc => "duration interval must be greater than 0".to_string(),
            Flavour::Crun | Flavour::Youki => format!("invalid value '{text}' for '--interval <INTERVAL>'"),
        })),
    }
}

/// `events`: statistics once (`--stats`) or every interval while the container runs.
pub(crate) fn events(ctx: &Ctx, argv: &[String]) -> CmdResult {
    let grammar = Grammar::new(
        "events",
        "display container events such as OOM notifications, cpu, memory, and IO usage statistics",
        EVENTS,
        &["container-id"],
    );
    let Some(m) = parse_command(ctx, &grammar, argv)? else {
        return Ok(0);
    };
    let id = m.first();
    let record = find(ctx, id)?;
    let mut out = std::io::stdout().lock();
    if m.flag("stats") {
        let _ = writeln!(out, "{}", document(ctx, id, &usage(&record)));
        return Ok(0);
    }
    let every = interval(ctx, m.value("interval"))?;
    loop {
        if ctx.flavour == Flavour::Runc {
            thread::sleep(every);
        }
        let running = state::load(&ctx.root, id).filter(|record| record.status() != Status::Stopped);
        let Some(record) = running else {
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
            thread::sleep(every);
        }
    }
}
