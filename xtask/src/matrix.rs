//! `cargo xtask matrix`: the conformance suite over every backend and monitor found, as one
//! table of cases by backend × monitor.
//!
//! It runs testkit's conformance library in this process and reads its outcomes as data, so no
//! text of another program is parsed. The fakes (runc, crun and youki's, and the example plugin
//! over the fake runc) are always there, each under no monitor (the backend's own cases), the
//! direct monitor and the fake conmon; the real runc, crun and youki run when the gate finds
//! them (in `PATH` or as `--runtime-path NAME=PATH`), under no monitor, the direct monitor and
//! the real conmon when that is found too, and each found real runtime as the unprivileged user
//! under both monitors (the rootless columns, `crate::rootless`). A runtime or conmon that is
//! not found gets one line saying how to add it and no cells, unless `REQUIRE_REAL_RUNTIMES`
//! names it: then its cells run and fail. This program is the fake runtimes as the test binaries are (`main` serves as
//! one first), so it works as the first command on a fresh clone.
//!
//! The cells run one at a time, as the test binaries run their cases: the cases drive runtimes
//! that share the host's cgroups, CRIU and their own state. The backends' cases all run before
//! the engines': a process that supervises containers directly is a child subreaper while it
//! does, and would adopt the detached execs the backend cases make.

use std::collections::{BTreeMap, BTreeSet};
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, bail};
use backend_crun::Crun;
use backend_runc::Runc;
use backend_youki::Youki;
use clap::{Args, ValueEnum};
use comfy_table::{ContentArrangement, Table, presets};
use indicatif::{ProgressBar, ProgressStyle};
use runtime_core::RuntimeFamily;
use testkit::conformance::{
    CONMON, Cell, Monitor, Outcome, Planned, Privilege, Subject, Totals, register, register_engine,
    run_as_second_process,
};
use testkit::fake::Flavour;
use testkit::gate::{self, Gate};
use testkit::harness::Suite;

use crate::{cargo, run_command};

/// What `cargo xtask matrix` runs and where it writes.
#[derive(Debug, Default, Args)]
pub struct MatrixArgs {
    /// Only this backend (`runc`, `runc-fake`, `plugin-fake`...); repeatable.
    #[arg(long = "runtime", value_name = "NAME")]
    runtimes: Vec<String>,
    /// Only cells under this monitor (`none`: the backend's own cases); repeatable.
    #[arg(long = "monitor", value_enum, value_name = "MONITOR")]
    monitors: Vec<MonitorFilter>,
    /// Only cells run as root (`rootful`) or as the unprivileged user (`rootless`); repeatable.
    #[arg(long = "privilege", value_enum, value_name = "PRIVILEGE")]
    privileges: Vec<PrivilegeFilter>,
    /// Only cases whose name contains this.
    #[arg(long = "case", value_name = "SUBSTRING")]
    case: Option<String>,
    /// Use this binary for a real runtime or conmon instead of the one in PATH; repeatable.
    #[arg(long = "runtime-path", value_name = "NAME=PATH", value_parser = parse_runtime_path)]
    runtime_paths: Vec<(String, PathBuf)>,
    /// Also hold this backend plugin (a cdylib) to the suite, over the fake runc; repeatable.
    #[arg(long = "plugin", value_name = "PATH")]
    plugins: Vec<PathBuf>,
    /// Write every cell's outcome as JSON to this file.
    #[arg(long, value_name = "PATH")]
    json: Option<PathBuf>,
}

/// A `--monitor` value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum MonitorFilter {
    /// The backend's own cases, which run without a monitor.
    None,
    /// The engine's cases under the direct monitor.
    Direct,
    /// The engine's cases under conmon.
    Conmon,
}

impl MonitorFilter {
    fn matches(self, monitor: Option<Monitor>) -> bool {
        match self {
            MonitorFilter::None => monitor.is_none(),
            MonitorFilter::Direct => monitor == Some(Monitor::Direct),
            MonitorFilter::Conmon => monitor == Some(Monitor::Conmon),
        }
    }
}

/// A `--privilege` value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum PrivilegeFilter {
    /// The cells run as root.
    Rootful,
    /// The cells run as the unprivileged user `cargo xtask setup` makes.
    Rootless,
}

impl PrivilegeFilter {
    fn matches(self, privilege: Privilege) -> bool {
        match self {
            PrivilegeFilter::Rootful => privilege == Privilege::Rootful,
            PrivilegeFilter::Rootless => privilege == Privilege::Rootless,
        }
    }
}

fn parse_runtime_path(text: &str) -> Result<(String, PathBuf), String> {
    match text.split_once('=') {
        Some((name, path)) if !name.is_empty() && !path.is_empty() => Ok((name.to_owned(), PathBuf::from(path))),
        _ => Err(format!("{text:?} is not NAME=PATH")),
    }
}

impl MatrixArgs {
    fn wants_backend(&self, backend: &str) -> bool {
        self.runtimes.is_empty() || self.runtimes.iter().any(|wanted| wanted == backend)
    }

    fn wants(&self, cell: &Cell) -> bool {
        self.wants_backend(&cell.backend)
            && (self.monitors.is_empty() || self.monitors.iter().any(|filter| filter.matches(cell.monitor)))
            && (self.privileges.is_empty() || self.privileges.iter().any(|filter| filter.matches(cell.privilege)))
            && self.case.as_ref().is_none_or(|part| cell.case.contains(part.as_str()))
    }
}

/// The real runtimes the matrix looks for.
pub(crate) fn real_families() -> Vec<Arc<dyn RuntimeFamily>> {
    vec![Arc::new(Runc), Arc::new(Crun::default()), Arc::new(Youki)]
}

/// The subjects that are always there: each runtime's fake and the example plugin.
fn fake_subjects() -> Vec<Subject> {
    vec![
        Subject::fake(Flavour::Runc, Arc::new(Runc)),
        // The fake uses no cgroups, so its host check reads an empty mount table.
        Subject::fake(Flavour::Crun, Arc::new(Crun::with_mountinfo("/dev/null"))),
        Subject::fake(Flavour::Youki, Arc::new(Youki)),
    ]
}

/// The example plugin, which `run` builds beside this program (`<target>/<profile>/examples`).
fn example_plugin() -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe().context("this program's path")?;
    let profile = exe.parent().context("this program lives in <target>/<profile>")?;
    Ok(profile.join("examples").join("libfake_plugin.so"))
}

/// The label of the plugin `library`: its file's name without `lib` and the extension.
fn plugin_label(library: &Path) -> String {
    let stem = library.file_stem().map(|stem| stem.to_string_lossy().into_owned()).unwrap_or_default();
    stem.strip_prefix("lib").unwrap_or(&stem).to_owned()
}

/// How a run of this task ended.
#[derive(Debug)]
pub enum Finished {
    /// The matrix ran; these are its totals.
    Matrix(Totals),
    /// This process was an engine case's second process, and served its part.
    SecondProcess(ExitCode),
}

impl Finished {
    /// The exit status: non-zero on any failure.
    pub fn exit_code(self) -> ExitCode {
        match self {
            Finished::Matrix(totals) if totals.failed > 0 => ExitCode::FAILURE,
            Finished::Matrix(_) => ExitCode::SUCCESS,
            Finished::SecondProcess(code) => code,
        }
    }
}

pub fn run(args: &MatrixArgs) -> anyhow::Result<Finished> {
    for (name, binary) in &args.runtime_paths {
        gate::use_binary(name, binary.clone());
    }
    let mut subjects = fake_subjects();
    subjects.push(testkit::plugins::plugin_subject("plugin-fake", example_plugin()?));
    for library in &args.plugins {
        subjects.push(testkit::plugins::plugin_subject(plugin_label(library), library.clone()));
    }
    let mut missing = Vec::new();
    let mut real = BTreeSet::new();
    let mut found = Vec::new();
    for family in real_families() {
        let name = family.name().to_owned();
        if !args.wants_backend(&name) {
            continue;
        }
        match gate::real_runtime(&name, &family.host_checks()) {
            Gate::Skip(reason) => missing.push(format!("{name}: {reason}")),
            Gate::Open(_) | Gate::Fail(_) => {
                real.insert(name);
                subjects.push(Subject::real(Arc::clone(&family)));
                found.push(family);
            }
        }
    }
    let conmon_missing = match gate::real_runtime(CONMON, &[]) {
        Gate::Skip(reason) => {
            missing.push(format!("{CONMON}: {reason}"));
            true
        }
        Gate::Open(_) | Gate::Fail(_) => false,
    };
    let mut suite = Suite::default();
    for subject in &subjects {
        register(&mut suite, subject);
    }
    for subject in &subjects {
        register_engine(&mut suite, subject);
    }
    crate::rootless::register(&mut suite, &found);
    // An engine case may run this program again as its second process (with these arguments):
    // that process serves its part and never runs the matrix.
    if let Some(code) = run_as_second_process() {
        return Ok(Finished::SecondProcess(code));
    }
    // `cargo test --test` does not build the cdylib the plugin subject loads.
    run_command(&mut cargo(["build", "--quiet", "-p", "testkit", "--example", "fake_plugin"]))?;
    for line in &missing {
        println!("not in the matrix: {line}");
    }
    if let Some(line) = crate::rootless::missing_user_line().filter(|_| !found.is_empty()) {
        println!("{line}");
    }
    let planned: Vec<Planned> = suite
        .take_conformance()
        .into_iter()
        .filter(|planned| args.wants(planned.cell()))
        .filter(|planned| {
            let cell = planned.cell();
            !(conmon_missing && real.contains(&cell.backend) && cell.monitor == Some(Monitor::Conmon))
        })
        .collect();
    if planned.is_empty() {
        bail!("no cell of the matrix matches the filters");
    }
    let results = run_cells(planned);
    let report = Report { results };
    println!("\n{}", report.table());
    print!("{}", report.notes());
    let totals = report.totals();
    println!(
        "\n{} passed, {} failed, {} skipped, {} deviations",
        totals.passed, totals.failed, totals.skipped, totals.deviations
    );
    if let Some(path) = &args.json {
        std::fs::write(path, serde_json::to_vec_pretty(&report.json())?)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(Finished::Matrix(totals))
}

/// One cell's result.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Ran {
    cell: Cell,
    checks: String,
    outcome: Outcome,
}

/// Runs each cell in turn, showing progress: a bar with the running cell on a terminal, a line
/// per cell otherwise.
fn run_cells(planned: Vec<Planned>) -> Vec<Ran> {
    let total = planned.len();
    let bar = std::io::stderr().is_terminal().then(|| {
        let bar = ProgressBar::new(total as u64);
        let style = ProgressStyle::with_template("[{elapsed_precise}] {bar:30} {pos}/{len} {msg}");
        bar.set_style(style.unwrap_or_else(|_| ProgressStyle::default_bar()));
        bar
    });
    let mut results = Vec::with_capacity(total);
    for (index, planned) in planned.into_iter().enumerate() {
        let (cell, checks) = (planned.cell().clone(), planned.checks().to_owned());
        if let Some(bar) = &bar {
            bar.set_message(cell.test_name());
        }
        let outcome = planned.run();
        match &bar {
            Some(bar) => {
                if outcome.is_failure() {
                    bar.println(format!("FAIL {}", cell.test_name()));
                }
                bar.inc(1);
            }
            None => eprintln!("[{}/{total}] {} {}", index + 1, cell.test_name(), word(&outcome)),
        }
        results.push(Ran { cell, checks, outcome });
    }
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    results
}

/// The word for an outcome in the table.
fn word(outcome: &Outcome) -> &'static str {
    match outcome {
        Outcome::Pass => "pass",
        Outcome::Fail { .. } => "FAIL",
        Outcome::Skip { .. } => "skip",
        Outcome::Deviation { .. } => "DEVIATION",
    }
}

/// A column: a backend under a monitor (or none), as root or (`/rootless`) as the user.
fn column_label(backend: &str, monitor: Option<Monitor>, privilege: Privilege) -> String {
    let column = format!("{backend}/{}", monitor.map_or("none", Monitor::label));
    match privilege {
        Privilege::Rootful => column,
        Privilege::Rootless => format!("{column}/{}", privilege.label()),
    }
}

/// The results, as the matrix shows them.
#[derive(Debug)]
struct Report {
    results: Vec<Ran>,
}

impl Report {
    /// Cases as rows (in the order the suite has them), backend × monitor × privilege as columns
    /// (sorted, each backend's rootless columns after its rootful ones), `-` where a case does
    /// not run in a column.
    fn table(&self) -> String {
        let mut columns: Vec<(&str, Privilege, Option<Monitor>)> =
            self.results.iter().map(|ran| (ran.cell.backend.as_str(), ran.cell.privilege, ran.cell.monitor)).collect();
        columns.sort();
        columns.dedup();
        let mut cases: Vec<&str> = Vec::new();
        let mut cells: BTreeMap<(&str, &str, Privilege, Option<Monitor>), &Outcome> = BTreeMap::new();
        for ran in &self.results {
            if !cases.contains(&ran.cell.case.as_str()) {
                cases.push(&ran.cell.case);
            }
            cells.insert((&ran.cell.case, &ran.cell.backend, ran.cell.privilege, ran.cell.monitor), &ran.outcome);
        }
        let mut table = Table::new();
        table.load_style(presets::ASCII_MARKDOWN).set_content_arrangement(ContentArrangement::Disabled);
        let header = std::iter::once("case".to_owned())
            .chain(columns.iter().map(|(backend, privilege, monitor)| column_label(backend, *monitor, *privilege)));
        table.set_header(header.collect::<Vec<_>>());
        for case in cases {
            let row = columns.iter().map(|(backend, privilege, monitor)| {
                cells.get(&(case, *backend, *privilege, *monitor)).map_or("-", |outcome| word(outcome))
            });
            table.add_row(std::iter::once(case).chain(row).collect::<Vec<_>>());
        }
        format!(
            "{table}\n\nLegend: pass; FAIL (evidence below); skip (reason below); DEVIATION (a documented \
             departure of the runtime from the spec, below; never a pass); - (the case does not run there)"
        )
    }

    /// The failures with their evidence, the skip reasons by column (with how many cases each),
    /// and the deviations with the spec line each departs from.
    fn notes(&self) -> String {
        let mut failures = String::new();
        let mut skips: BTreeMap<(String, &str), usize> = BTreeMap::new();
        let mut deviations = String::new();
        for ran in &self.results {
            let column = column_label(&ran.cell.backend, ran.cell.monitor, ran.cell.privilege);
            match &ran.outcome {
                Outcome::Pass => {}
                Outcome::Fail { evidence } => {
                    failures.push_str(&format!("  {column} {}: {evidence}\n", ran.cell.case));
                }
                Outcome::Skip { reason } => *skips.entry((column, reason)).or_default() += 1,
                Outcome::Deviation { spec, does } => {
                    deviations.push_str(&format!("  {column} {}: {does} (spec: {spec})\n", ran.cell.case));
                }
            }
        }
        let mut notes = String::new();
        if !failures.is_empty() {
            notes.push_str(&format!("\nFailed:\n{failures}"));
        }
        if !skips.is_empty() {
            notes.push_str("\nSkipped:\n");
            for ((column, reason), count) in skips {
                notes.push_str(&format!("  {column}: {reason} ({count} case(s))\n"));
            }
        }
        if !deviations.is_empty() {
            notes.push_str(&format!("\nDeviations:\n{deviations}"));
        }
        notes
    }

    fn totals(&self) -> Totals {
        Totals::of(self.results.iter().map(|ran| &ran.outcome))
    }

    /// Every cell with what its case checks and its outcome, and the totals.
    fn json(&self) -> serde_json::Value {
        let cells: Vec<serde_json::Value> = self
            .results
            .iter()
            .map(|ran| {
                serde_json::json!({
                    "backend": ran.cell.backend,
                    "monitor": ran.cell.monitor,
                    "privilege": ran.cell.privilege,
                    "case": ran.cell.case,
                    "checks": ran.checks,
                    "result": ran.outcome,
                })
            })
            .collect();
        serde_json::json!({ "cells": cells, "totals": self.totals() })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cell(backend: &str, monitor: Option<Monitor>, case: &str) -> Cell {
        Cell { backend: backend.into(), monitor, privilege: Privilege::Rootful, case: case.into() }
    }

    fn ran(backend: &str, monitor: Option<Monitor>, case: &str, outcome: Outcome) -> Ran {
        Ran { cell: cell(backend, monitor, case), checks: format!("what {case} checks"), outcome }
    }

    fn args(line: &[&str]) -> MatrixArgs {
        use clap::Parser;
        #[derive(Parser)]
        struct Line {
            #[command(flatten)]
            matrix: MatrixArgs,
        }
        Line::parse_from(std::iter::once("matrix").chain(line.iter().copied())).matrix
    }

    #[test]
    fn no_filter_wants_every_cell() {
        let all = args(&[]);
        assert!(all.wants(&cell("runc", None, "list")));
        assert!(all.wants(&cell("plugin-fake", Some(Monitor::Conmon), "stop_of_a_gone_container_succeeds")));
    }

    #[test]
    fn runtime_filter_names_backends_exactly() {
        let fakes = args(&["--runtime", "runc-fake", "--runtime", "crun-fake"]);
        assert!(fakes.wants(&cell("runc-fake", None, "list")));
        assert!(fakes.wants(&cell("crun-fake", Some(Monitor::Direct), "list")));
        assert!(!fakes.wants(&cell("runc", None, "list")), "runc is not runc-fake");
        assert!(!fakes.wants(&cell("youki-fake", None, "list")));
    }

    #[test]
    fn monitor_filter_none_is_the_backend_s_own_cases() {
        let none = args(&["--monitor", "none"]);
        assert!(none.wants(&cell("runc", None, "list")));
        assert!(!none.wants(&cell("runc", Some(Monitor::Direct), "list")));
        let engines = args(&["--monitor", "direct", "--monitor", "conmon"]);
        assert!(!engines.wants(&cell("runc", None, "list")));
        assert!(engines.wants(&cell("runc", Some(Monitor::Direct), "list")));
        assert!(engines.wants(&cell("runc", Some(Monitor::Conmon), "list")));
    }

    #[test]
    fn case_filter_is_a_substring_and_filters_combine() {
        let stops = args(&["--case", "stop_", "--runtime", "crun", "--monitor", "conmon"]);
        assert!(stops.wants(&cell("crun", Some(Monitor::Conmon), "stop_of_a_gone_container_succeeds")));
        assert!(!stops.wants(&cell("crun", Some(Monitor::Conmon), "list_reports_each_container_with_its_status")));
        assert!(!stops.wants(&cell("crun", Some(Monitor::Direct), "stop_of_a_gone_container_succeeds")));
        assert!(!stops.wants(&cell("runc", Some(Monitor::Conmon), "stop_of_a_gone_container_succeeds")));
    }

    fn rootless(backend: &str, monitor: Monitor, case: &str) -> Cell {
        Cell { privilege: Privilege::Rootless, ..cell(backend, Some(monitor), case) }
    }

    #[test]
    fn privilege_filter_picks_rootful_or_rootless_cells() {
        let as_user = args(&["--privilege", "rootless"]);
        assert!(as_user.wants(&rootless("runc", Monitor::Direct, "lifecycle")));
        assert!(!as_user.wants(&cell("runc", Some(Monitor::Direct), "lifecycle")));
        assert!(!as_user.wants(&cell("runc", None, "list")));
        let as_root = args(&["--privilege", "rootful", "--runtime", "crun"]);
        assert!(as_root.wants(&cell("crun", None, "list")));
        assert!(!as_root.wants(&rootless("crun", Monitor::Conmon, "logs")));
        let both = args(&["--privilege", "rootful", "--privilege", "rootless", "--monitor", "conmon"]);
        assert!(both.wants(&rootless("crun", Monitor::Conmon, "logs")));
        assert!(both.wants(&cell("crun", Some(Monitor::Conmon), "logs")));
        assert!(!both.wants(&rootless("crun", Monitor::Direct, "logs")));
    }

    #[test]
    fn rootless_columns_follow_each_backend_s_rootful_ones_and_say_so() {
        let results = vec![
            Ran { cell: rootless("runc", Monitor::Conmon, "exec"), checks: String::new(), outcome: Outcome::Pass },
            Ran {
                cell: rootless("runc", Monitor::Direct, "exec"),
                checks: String::new(),
                outcome: Outcome::Skip { reason: "there is no user ocirt-rootless".into() },
            },
            ran("runc", Some(Monitor::Direct), "exec", Outcome::Pass),
            ran("crun", Some(Monitor::Direct), "exec", Outcome::Fail { evidence: "exit 1".into() }),
        ];
        let report = Report { results };
        let expected = "\
| case | crun/direct | runc/direct | runc/direct/rootless | runc/conmon/rootless |
|------|-------------|-------------|----------------------|----------------------|
| exec | FAIL        | pass        | skip                 | pass                 |";
        assert_eq!(report.table().lines().take(3).collect::<Vec<_>>().join("\n"), expected);
        assert_eq!(
            report.notes(),
            "\nFailed:\n  crun/direct exec: exit 1\n\
             \nSkipped:\n  runc/direct/rootless: there is no user ocirt-rootless (1 case(s))\n"
        );
        assert_eq!(report.json()["cells"][0]["privilege"], "rootless");
    }

    #[test]
    fn runtime_paths_are_name_equals_path() {
        let given = args(&["--runtime-path", "runc=/opt/runc/bin/runc", "--runtime-path", "conmon=/usr/bin/conmon"]);
        assert_eq!(
            given.runtime_paths,
            vec![
                ("runc".into(), PathBuf::from("/opt/runc/bin/runc")),
                ("conmon".into(), PathBuf::from("/usr/bin/conmon"))
            ]
        );
        assert!(parse_runtime_path("runc").is_err());
        assert!(parse_runtime_path("=/opt/runc").is_err());
        assert!(parse_runtime_path("runc=").is_err());
    }

    #[test]
    fn a_plugin_is_labelled_by_its_file() {
        assert_eq!(plugin_label(Path::new("/opt/plugins/libgvisor_backend.so")), "gvisor_backend");
        assert_eq!(plugin_label(Path::new("kata.so")), "kata");
    }

    #[test]
    fn the_table_has_cases_as_rows_and_backend_by_monitor_as_columns() {
        let report = Report {
            results: vec![
                ran("runc", None, "list", Outcome::Pass),
                ran("runc", Some(Monitor::Direct), "stop", Outcome::Fail { evidence: "exit 1".into() }),
                ran("runc", Some(Monitor::Conmon), "stop", Outcome::Skip { reason: "conmon is not in PATH".into() }),
                ran(
                    "crun",
                    None,
                    "list",
                    Outcome::Deviation { spec: "runtime.md#state".into(), does: "omits pid".into() },
                ),
            ],
        };
        let expected = "\
| case | crun/none | runc/none | runc/direct | runc/conmon |
|------|-----------|-----------|-------------|-------------|
| list | DEVIATION | pass      | -           | -           |
| stop | -         | -         | FAIL        | skip        |";
        let table = report.table();
        assert_eq!(table.lines().take(4).collect::<Vec<_>>().join("\n"), expected);
        assert!(table.contains("Legend: pass; FAIL"), "{table}");
        assert_eq!(
            report.notes(),
            "\nFailed:\n  runc/direct stop: exit 1\n\
             \nSkipped:\n  runc/conmon: conmon is not in PATH (1 case(s))\n\
             \nDeviations:\n  crun/none list: omits pid (spec: runtime.md#state)\n"
        );
        assert_eq!(report.totals(), Totals { passed: 1, failed: 1, skipped: 1, deviations: 1 });
    }

    #[test]
    fn skips_of_one_reason_in_one_column_are_counted_together() {
        let skip = || Outcome::Skip { reason: "runc is not in PATH".into() };
        let report = Report {
            results: vec![
                ran("runc", None, "a", skip()),
                ran("runc", None, "b", skip()),
                ran("runc", Some(Monitor::Direct), "c", skip()),
            ],
        };
        assert_eq!(
            report.notes(),
            "\nSkipped:\n  runc/direct: runc is not in PATH (1 case(s))\n  runc/none: runc is not in PATH (2 case(s))\n"
        );
    }

    #[test]
    fn the_json_holds_each_cell_with_its_outcome_and_the_totals() {
        let report = Report {
            results: vec![ran("runc-fake", Some(Monitor::Conmon), "stop", Outcome::Fail { evidence: "e".into() })],
        };
        let expected = serde_json::json!({
            "cells": [{
                "backend": "runc-fake",
                "monitor": "conmon",
                "privilege": "rootful",
                "case": "stop",
                "checks": "what stop checks",
                "result": { "outcome": "fail", "evidence": "e" },
            }],
            "totals": { "passed": 0, "failed": 1, "skipped": 0, "deviations": 0 },
        });
        assert_eq!(report.json(), expected);
    }
}
