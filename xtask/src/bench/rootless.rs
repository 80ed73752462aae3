//! The rootless lifecycle: the Engine with its direct monitor as the unprivileged user that
//! `cargo xtask setup` makes, beside the same lifecycle as root, for runc and crun (youki 0.7
//! cannot run rootless on a host with cgroup v1 hierarchies).
//!
//! What changes for an unprivileged caller is where state lives and what the runtime does
//! without root (a user namespace with the user's subordinate ranges mapped, no cgroups), not
//! the code; this measures what that costs. The bench runs a copy of itself as the user (handed
//! over open, as testkit runs the rootless cells: `main` serves as that copy before reading any
//! argument), which times the lifecycle of a `/bin/true` container from a rootless bundle
//! through an Engine made with the library's defaults (state root and the runtime's `--root`
//! under the user's runtime directory), after the same warm-ups, and reports its samples as one
//! line of JSON. The report gives their median and percentiles and the ratio of medians to the
//! rootful Engine lifecycle of the same run; never asserted, like every figure of the bench.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, bail, ensure};
use runtime_core::{ContainerId, DeleteMode, DirectMonitor, Engine, RuntimeConfig, StateRoot};
use testkit::bundle::BundleBuilder;
use testkit::rootless::{RootlessUser, USER};

use super::ways::{LIFECYCLE_EXIT, engine_sequence, millis};
use super::{Family, Outcome, Summary, WARM_UP, Way, Workload, summary_of};
use serde_json::json;

/// Set in the user's copy: the runtime and how many lifecycles to measure, `<runtime> <count>`.
const COPY_ENV: &str = "XTASK_BENCH_ROOTLESS";

/// What starts the line of the copy's standard output that holds its samples.
const SAMPLES_PREFIX: &str = "xtask bench rootless samples: ";

/// The runtimes measured rootless.
pub(super) const RUNTIMES: [(&str, Family); 2] = [("runc", Family::Runc), ("crun", Family::Crun)];

/// When this process is the user's copy of the bench, measures what it was asked to and gives
/// the exit code; `None` otherwise.
pub fn serve_as_user_copy() -> Option<ExitCode> {
    let asked = std::env::var(COPY_ENV).ok()?;
    Some(match measure_as_the_user(&asked) {
        Ok(samples) => {
            println!("{SAMPLES_PREFIX}{}", serde_json::Value::from(samples));
            ExitCode::SUCCESS
        }
        Err(err) => {
            eprintln!("as {USER}: {err:#}");
            ExitCode::FAILURE
        }
    })
}

/// `<runtime> <count>` as the runtime's family and the count.
fn parse_request(asked: &str) -> anyhow::Result<(Family, usize)> {
    let (runtime, count) = asked.split_once(' ').with_context(|| format!("{asked:?} is not `<runtime> <count>`"))?;
    let family = RUNTIMES.iter().find(|(name, _)| *name == runtime).map(|(_, family)| *family);
    let family = family.with_context(|| format!("{runtime} is not measured rootless"))?;
    Ok((family, count.parse().with_context(|| format!("{count:?} is no count"))?))
}

/// The user's side: `count` timed lifecycles after the warm-ups, in milliseconds.
fn measure_as_the_user(asked: &str) -> anyhow::Result<Vec<f64>> {
    let (family, count) = parse_request(asked)?;
    let user = RootlessUser::find().map_err(anyhow::Error::msg)?;
    let bundle = BundleBuilder::new(["/bin/true"]).subordinate_ids(user.subuids, user.subgids).build()?;
    let tokio =
        tokio::runtime::Builder::new_current_thread().enable_all().build().context("building a tokio runtime")?;
    let backend = tokio.block_on(family.connect(RuntimeConfig::default())).context("connecting")?;
    let root = StateRoot::open(StateRoot::default_path()?)?;
    let engine = Engine::new(Arc::new(backend), Arc::new(DirectMonitor::new()), root);
    let mut samples = Vec::with_capacity(count);
    for round in 0..WARM_UP + count {
        let id = ContainerId::new(format!("bench-rootless-{}-{round}", std::process::id()))?;
        let started = Instant::now();
        let exit = tokio.block_on(engine_sequence(&engine, &id, bundle.path(), false));
        let ms = millis(started.elapsed());
        let exit = match exit {
            Ok(exit) => exit,
            Err(err) => {
                let _ = tokio.block_on(engine.delete(&id, DeleteMode::Force));
                return Err(err.context(format!("lifecycle {round}")));
            }
        };
        ensure!(exit == LIFECYCLE_EXIT, "lifecycle {round}: /bin/true ended {exit:?}");
        if round >= WARM_UP {
            samples.push(ms);
        }
    }
    Ok(samples)
}

/// The root side: `count` rootless lifecycles of `runtime` measured by the user's copy, or why
/// they were not (the user missing: run setup).
pub(super) fn measure(runtime: &str, count: usize) -> anyhow::Result<Vec<f64>> {
    let user = RootlessUser::find().map_err(|reason| anyhow::anyhow!("{reason} (`cargo xtask setup` creates it)"))?;
    let output = user.copy_of_this_program(|copy| {
        copy.env(COPY_ENV, format!("{runtime} {count}")).output().context("running setpriv")
    })?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let Some(samples) = stdout.lines().find_map(|line| line.strip_prefix(SAMPLES_PREFIX)) else {
        bail!("as {USER} ({}): {}", output.status, String::from_utf8_lossy(&output.stderr).trim());
    };
    let samples: Vec<f64> = serde_json::from_str(samples).context("reading the copy's samples")?;
    let left = user.leftovers();
    ensure!(left.is_empty(), "left behind as {USER}: {}", left.join(", "));
    Ok(samples)
}

/// Measures the rootless lifecycle of each runtime whose rootful one was measured, `iterations`
/// times, prints a line for each (or why it was left out), and gives the figures as JSON: by
/// runtime, the samples, median and percentiles, and the ratio of medians to the rootful Engine.
pub(super) fn report(results: &[(&str, Outcome)], iterations: usize) -> serde_json::Value {
    println!("\nRootless lifecycle (Engine, direct monitor, as {USER}):");
    let mut figures = serde_json::Map::new();
    for (runtime, _) in RUNTIMES {
        let rootful = results.iter().find_map(|(name, outcome)| match outcome {
            Outcome::Measured(measured) if *name == runtime => Some(measured),
            _ => None,
        });
        let Some(rootful) = rootful else {
            println!("  {runtime}: left out: its rootful run was not measured");
            continue;
        };
        eprintln!("xtask: bench: {runtime} as {USER} ({iterations} iterations after {WARM_UP} warm-ups)");
        match measure(runtime, iterations) {
            Ok(samples) => {
                let summary = Summary::of(&samples);
                let rootful = summary_of(&rootful.series, Workload::Lifecycle, Way::Engine).map(|s| s.median);
                println!("  {}", line(runtime, &summary, rootful));
                let figure = json!({
                    "samples_ms": samples,
                    "median_ms": summary.median,
                    "p10_ms": summary.p10,
                    "p90_ms": summary.p90,
                    "p95_ms": summary.p95,
                    "ratio_to_rootful_median": rootful.map(|rootful| summary.median / rootful),
                });
                figures.insert(runtime.to_owned(), figure);
            }
            Err(err) => println!("  {runtime}: left out: {err:#}"),
        }
    }
    serde_json::Value::Object(figures)
}

/// The report's line for one runtime: the rootless median and percentiles, and the ratio of
/// medians to the rootful Engine lifecycle when that was measured.
pub(super) fn line(runtime: &str, rootless: &Summary, rootful_median: Option<f64>) -> String {
    let mut line = format!(
        "{runtime}: median {:.2} ms (p10 {:.2}, p90 {:.2}, p95 {:.2})",
        rootless.median, rootless.p10, rootless.p90, rootless.p95
    );
    if let Some(rootful) = rootful_median {
        line.push_str(&format!(", {:.2}× the rootful {rootful:.2} ms", rootless.median / rootful));
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_names_runc_or_crun_and_a_count() {
        assert!(matches!(parse_request("runc 20"), Ok((Family::Runc, 20))));
        assert!(matches!(parse_request("crun 3"), Ok((Family::Crun, 3))));
        assert!(parse_request("youki 3").is_err(), "youki is not measured rootless");
        assert!(parse_request("runc").is_err());
        assert!(parse_request("runc many").is_err());
    }

    #[test]
    fn the_line_gives_the_percentiles_and_the_ratio_to_the_rootful_median() {
        let rootless = Summary { median: 30.0, p10: 25.0, p90: 40.0, p95: 41.5 };
        assert_eq!(
            line("runc", &rootless, Some(20.0)),
            "runc: median 30.00 ms (p10 25.00, p90 40.00, p95 41.50), 1.50× the rootful 20.00 ms"
        );
        assert_eq!(line("crun", &rootless, None), "crun: median 30.00 ms (p10 25.00, p90 40.00, p95 41.50)");
    }
}
