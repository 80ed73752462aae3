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
use conmon_driver::ConmonMonitor;
use indicatif::{ProgressBar, ProgressStyle};
use runtime_core::{CliBackend, Features, OciBackend, RuntimeConfig, RuntimeFamily, Support};
use testkit::conformance::{
    CONMON, Cell, Monitor, Outcome, Planned, Privilege, Subject, Totals, register, register_engine,
    run_as_second_process,
};
use testkit::fake::{FakeRuntime, Flavour};
use testkit::gate::{self, Gate};
use testkit::harness::Suite;
use testkit::rootless::USER;

use crate::rootless::RootlessVerdict;
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
    /// Write every cell's outcome and each backend's feature probe as JSON to this file.
    #[arg(long, value_name = "PATH")]
    json: Option<PathBuf>,
    /// Write the report as GitHub markdown to this file: the run's date and the runtime
    /// versions found, the summary, the cases table, skips, failures, deviations and feature
    /// verdicts.
    #[arg(long, value_name = "PATH")]
    markdown: Option<PathBuf>,
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

/// A backend of the run: its subject for the suite, and how its features are probed.
struct Backend {
    subject: Subject,
    kind: Kind,
}

/// Where a backend's runtime comes from, as its feature probe connects to it: the way its cells
/// do.
enum Kind {
    /// A runtime family over its fake.
    Fake(Flavour, Arc<dyn RuntimeFamily>),
    /// A runtime family over the real runtime, through the gate.
    Real(Arc<dyn RuntimeFamily>),
    /// A backend plugin over the fake runc.
    Plugin(PathBuf),
}

impl Backend {
    fn fake(flavour: Flavour, family: Arc<dyn RuntimeFamily>) -> Self {
        Backend { subject: Subject::fake(flavour, Arc::clone(&family)), kind: Kind::Fake(flavour, family) }
    }

    fn real(family: Arc<dyn RuntimeFamily>) -> Self {
        Backend { subject: Subject::real(Arc::clone(&family)), kind: Kind::Real(family) }
    }

    fn plugin(label: String, library: PathBuf) -> Self {
        Backend { subject: testkit::plugins::plugin_subject(label, library.clone()), kind: Kind::Plugin(library) }
    }

    fn label(&self) -> &str {
        self.subject.label()
    }

    /// The fake this backend's runtime is, if it is one: a runtime family's own, or the fake
    /// runc a plugin is handed.
    fn fake_runtime(&self) -> anyhow::Result<Option<FakeRuntime>> {
        Ok(match &self.kind {
            Kind::Fake(flavour, _) => Some(FakeRuntime::new(*flavour)?),
            Kind::Plugin(_) => Some(FakeRuntime::new(Flavour::Runc)?),
            Kind::Real(_) => None,
        })
    }

    /// The library's feature probe of this backend: its verdicts and their evidence.
    async fn features(&self) -> anyhow::Result<Arc<Features>> {
        // The fake (its binary, its CRIU) lives until the probe is done.
        let fake = self.fake_runtime()?;
        let config = match (&fake, &self.kind) {
            (Some(fake), _) => fake.config(),
            (None, Kind::Real(family)) => match gate::real_runtime(family.name(), &family.host_checks()) {
                Gate::Open(real) => RuntimeConfig::default().binary(real.binary),
                Gate::Skip(reason) | Gate::Fail(reason) => bail!("{reason}"),
            },
            (None, Kind::Fake(..) | Kind::Plugin(_)) => bail!("{} has no fake to probe", self.label()),
        };
        let backend: Box<dyn OciBackend> = match &self.kind {
            Kind::Fake(_, family) | Kind::Real(family) => {
                Box::new(CliBackend::connect(Arc::clone(family), config).await?)
            }
            Kind::Plugin(library) => testkit::plugins::connect(library, config).await?,
        };
        Ok(backend.features().await?)
    }
}

/// The backends that are always there: each runtime's fake.
fn fake_backends() -> Vec<Backend> {
    vec![
        Backend::fake(Flavour::Runc, Arc::new(Runc)),
        // The fake uses no cgroups, so its host check reads an empty mount table.
        Backend::fake(Flavour::Crun, Arc::new(Crun::with_mountinfo("/dev/null"))),
        Backend::fake(Flavour::Youki, Arc::new(Youki)),
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
    let mut backends = fake_backends();
    backends.push(Backend::plugin("plugin-fake".to_owned(), example_plugin()?));
    for library in &args.plugins {
        backends.push(Backend::plugin(plugin_label(library), library.clone()));
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
                backends.push(Backend::real(Arc::clone(&family)));
                found.push(family);
            }
        }
    }
    let conmon = match gate::real_runtime(CONMON, &[]) {
        Gate::Skip(reason) => {
            missing.push(format!("{CONMON}: {reason}"));
            None
        }
        Gate::Open(conmon) => Some(Ok(conmon.binary)),
        Gate::Fail(reason) => Some(Err(reason)),
    };
    let mut suite = Suite::default();
    for backend in &backends {
        register(&mut suite, &backend.subject);
    }
    for backend in &backends {
        register_engine(&mut suite, &backend.subject);
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
            !(conmon.is_none() && real.contains(&cell.backend) && cell.monitor == Some(Monitor::Conmon))
        })
        .collect();
    if planned.is_empty() {
        bail!("no cell of the matrix matches the filters");
    }
    let results = run_cells(planned);
    let tokio =
        tokio::runtime::Builder::new_current_thread().enable_all().build().context("building a tokio runtime")?;
    let in_run: BTreeSet<&str> = results.iter().map(|ran| ran.cell.backend.as_str()).collect();
    let mut probed = BTreeMap::new();
    let mut found = Vec::new();
    for backend in backends.iter().filter(|backend| in_run.contains(backend.label())) {
        let features = tokio.block_on(backend.features()).map_err(|err| format!("{err:#}"));
        if let (Kind::Real(_), Ok(features)) = (&backend.kind, &features) {
            found.push(format!("{} {}", features.version.program, features.version.version_text));
        }
        probed.insert(backend.label().to_owned(), features);
    }
    match &conmon {
        Some(Ok(binary)) => match tokio.block_on(ConmonMonitor::new(binary).version()) {
            Ok(version) => found.push(format!("{CONMON} {version}")),
            Err(err) => found.push(format!("{CONMON} (its version: {err})")),
        },
        Some(Err(reason)) => missing.push(reason.clone()),
        None => {}
    }
    let real_in_run: Vec<Arc<dyn RuntimeFamily>> = backends
        .iter()
        .filter(|backend| in_run.contains(backend.label()))
        .filter_map(|backend| match &backend.kind {
            Kind::Real(family) => Some(Arc::clone(family)),
            Kind::Fake(..) | Kind::Plugin(_) => None,
        })
        .collect();
    let rootless = crate::rootless::host_verdicts(&real_in_run);
    let report = Report { results, features: probed, rootless };
    print!("{}", report.text());
    let totals = report.totals();
    if let Some(path) = &args.json {
        std::fs::write(path, serde_json::to_vec_pretty(&report.json())?)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    if let Some(path) = &args.markdown {
        let run = RunFacts { date: chrono::Utc::now().format("%Y-%m-%d %H:%M UTC").to_string(), found, missing };
        std::fs::write(path, report.markdown(&run)).with_context(|| format!("writing {}", path.display()))?;
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
            None => eprintln!("[{}/{total}] {} {}", index + 1, cell.test_name(), Style::Text.outcome(&outcome)),
        }
        results.push(Ran { cell, checks, outcome });
    }
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    results
}

/// What the report is written as: text for the terminal, or GitHub markdown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Style {
    Text,
    Markdown,
}

impl Style {
    /// The word for an outcome in the cases table: each kind unlike the others at a glance.
    fn outcome(self, outcome: &Outcome) -> &'static str {
        match (self, outcome) {
            (Style::Text, Outcome::Pass) => "pass",
            (Style::Text, Outcome::Fail { .. }) => "FAIL",
            (Style::Text, Outcome::Skip { .. }) => "skip",
            (Style::Text, Outcome::Deviation { .. }) => "DEVIATION",
            (Style::Markdown, Outcome::Pass) => "✅ pass",
            (Style::Markdown, Outcome::Fail { .. }) => "❌ FAIL",
            (Style::Markdown, Outcome::Skip { .. }) => "⚪ skip",
            (Style::Markdown, Outcome::Deviation { .. }) => "🔶 deviation",
        }
    }

    /// The legend of the cases table.
    fn legend(self) -> String {
        let [pass, fail, skip, deviation] = [
            Outcome::Pass,
            Outcome::Fail { evidence: String::new() },
            Outcome::Skip { reason: String::new() },
            Outcome::Deviation { spec: String::new(), does: String::new() },
        ]
        .map(|outcome| self.outcome(&outcome));
        format!(
            "Legend: {pass}; {fail} (evidence below); {skip} (reason below); {deviation} (a documented departure \
             of the runtime from the spec, below; never a pass); - (the case does not run there)"
        )
    }

    /// `text` as a table cell: in markdown on one line, its `|` escaped.
    fn cell(self, text: &str) -> String {
        match self {
            Style::Text => text.to_owned(),
            Style::Markdown => text.replace('|', "\\|").replace('\n', " "),
        }
    }

    /// `text` as code: in markdown between backticks.
    fn code(self, text: &str) -> String {
        match self {
            Style::Text => text.to_owned(),
            Style::Markdown => format!("`{text}`"),
        }
    }

    /// A list item: in markdown a bullet on one line.
    fn item(self, text: &str) -> String {
        match self {
            Style::Text => format!("  {text}\n"),
            Style::Markdown => format!("- {}\n", text.replace('\n', " ")),
        }
    }

    /// A section's title, then its body.
    fn section(self, title: &str, body: &str) -> String {
        match self {
            Style::Text => format!("\n{title}:\n{body}"),
            Style::Markdown => format!("\n## {title}\n\n{body}"),
        }
    }

    /// A table with `header`, the style's cells.
    fn table(self, header: Vec<String>, rows: Vec<Vec<String>>) -> String {
        let mut table = Table::new();
        table.load_style(presets::ASCII_MARKDOWN).set_content_arrangement(ContentArrangement::Disabled);
        table.set_header(header.iter().map(|text| self.cell(text)).collect::<Vec<_>>());
        for row in rows {
            table.add_row(row.iter().map(|text| self.cell(text)).collect::<Vec<_>>());
        }
        format!("{table}\n")
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

/// Each verdict of a feature probe, named as the report shows it.
fn verdicts(features: &Features) -> Vec<(String, &Support)> {
    let mut verdicts: Vec<(String, &Support)> = [
        ("checkpoint", &features.checkpoint),
        ("restore", &features.restore),
        ("pre-dump", &features.pre_dump),
        ("lazy pages", &features.lazy_pages),
        ("features command", &features.features_command),
        ("JSON error log", &features.json_error_log),
        ("update", &features.update),
        ("events", &features.events),
        ("host", &features.host),
    ]
    .into_iter()
    .map(|(name, support)| (name.to_owned(), support))
    .collect();
    for (manager, support) in &features.cgroup_managers {
        verdicts.push((format!("cgroup manager {}", manager.as_str()), support));
    }
    verdicts
}

/// When and against what a run was: its date, the versions of the real runtimes it ran and of
/// conmon when found, and what it did not find.
#[derive(Debug, Clone, PartialEq, Eq)]
struct RunFacts {
    date: String,
    found: Vec<String>,
    missing: Vec<String>,
}

/// The results, as the matrix shows them.
#[derive(Debug)]
struct Report {
    results: Vec<Ran>,
    /// Each backend's feature probe, by label, or why it could not be made.
    features: BTreeMap<String, Result<Arc<Features>, String>>,
    /// Each real runtime's host verdict as the rootless user sees it, or why it was not reached.
    rootless: BTreeMap<String, Result<RootlessVerdict, String>>,
}

impl Report {
    /// Cases as rows (in the order the suite has them), backend × monitor × privilege as columns
    /// (sorted, each backend's rootless columns after its rootful ones), `-` where a case does
    /// not run in a column; then the legend.
    fn cases(&self, style: Style) -> String {
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
        let header = std::iter::once("case".to_owned())
            .chain(columns.iter().map(|(backend, privilege, monitor)| column_label(backend, *monitor, *privilege)));
        let rows = cases
            .into_iter()
            .map(|case| {
                let row = columns.iter().map(|(backend, privilege, monitor)| {
                    cells
                        .get(&(case, *backend, *privilege, *monitor))
                        .map_or("-", |outcome| style.outcome(outcome))
                        .to_owned()
                });
                std::iter::once(case.to_owned()).chain(row).collect()
            })
            .collect();
        format!("{}\n{}\n", style.table(header.collect(), rows), style.legend())
    }

    /// The failures with their evidence, then the skip reasons by column (with how many cases
    /// each).
    fn failures_and_skips(&self, style: Style) -> String {
        let mut failures = String::new();
        let mut skips: BTreeMap<(String, &str), usize> = BTreeMap::new();
        for ran in &self.results {
            let column = column_label(&ran.cell.backend, ran.cell.monitor, ran.cell.privilege);
            match &ran.outcome {
                Outcome::Fail { evidence } => {
                    let where_ = format!("{} {}", style.code(&column), style.code(&ran.cell.case));
                    failures.push_str(&style.item(&format!("{where_}: {evidence}")));
                }
                Outcome::Skip { reason } => *skips.entry((column, reason)).or_default() += 1,
                Outcome::Pass | Outcome::Deviation { .. } => {}
            }
        }
        let mut notes = String::new();
        if !failures.is_empty() {
            notes.push_str(&style.section("Failed", &failures));
        }
        if !skips.is_empty() {
            let lines: String = skips
                .into_iter()
                .map(|((column, reason), count)| {
                    style.item(&format!("{}: {reason} ({count} case(s))", style.code(&column)))
                })
                .collect();
            notes.push_str(&style.section("Skipped", &lines));
        }
        notes
    }

    /// The deviations met, by runtime: each case with the monitors it ran under, the spec line
    /// it departs from and what the runtime does instead.
    fn deviations(&self, style: Style) -> String {
        let mut met: BTreeMap<(&str, &str), (&str, &str, Vec<&str>)> = BTreeMap::new();
        for ran in &self.results {
            if let Outcome::Deviation { spec, does } = &ran.outcome {
                let entry = met.entry((&ran.cell.backend, &ran.cell.case)).or_insert((spec, does, Vec::new()));
                entry.2.push(ran.cell.monitor.map_or("none", Monitor::label));
            }
        }
        if met.is_empty() {
            return String::new();
        }
        let header = ["runtime", "case", "monitor", "spec line it departs from", "what the runtime does"];
        let rows = met
            .into_iter()
            .map(|((backend, case), (spec, does, monitors))| {
                vec![backend.to_owned(), case.to_owned(), monitors.join(", "), spec.to_owned(), does.to_owned()]
            })
            .collect();
        style.section("Deviations", &style.table(header.map(str::to_owned).to_vec(), rows))
    }

    /// Each backend's feature verdicts as a table of features by backend, then the reason of
    /// every verdict that says no, and the backends whose probe could not be made.
    fn features(&self, style: Style) -> String {
        if self.features.is_empty() {
            return String::new();
        }
        let probed: Vec<(&str, &Features)> = self
            .features
            .iter()
            .filter_map(|(label, features)| Some((label.as_str(), features.as_deref().ok()?)))
            .collect();
        let mut body = String::new();
        if let Some((_, first)) = probed.first() {
            let header =
                std::iter::once("feature".to_owned()).chain(probed.iter().map(|(label, _)| (*label).to_owned()));
            let version = std::iter::once("version".to_owned())
                .chain(probed.iter().map(|(_, features)| features.version.version_text.clone()))
                .collect();
            let names: Vec<String> = verdicts(first).into_iter().map(|(name, _)| name).collect();
            let rows = std::iter::once(version)
                .chain(names.iter().map(|name| {
                    let answers = probed.iter().map(|(_, features)| {
                        let verdict = verdicts(features).into_iter().find(|(named, _)| named == name);
                        match verdict {
                            Some((_, support)) if support.is_supported() => "yes".to_owned(),
                            Some(_) => "no".to_owned(),
                            None => "-".to_owned(),
                        }
                    });
                    std::iter::once(name.clone()).chain(answers).collect()
                }))
                .chain((!self.rootless.is_empty()).then(|| {
                    let answers = probed.iter().map(|(label, _)| match self.rootless.get(*label) {
                        Some(Ok(verdict)) if verdict.refusal.is_none() => "yes".to_owned(),
                        Some(Ok(_)) => "no".to_owned(),
                        Some(Err(_)) | None => "-".to_owned(),
                    });
                    std::iter::once("rootless".to_owned()).chain(answers).collect()
                }))
                .collect();
            body.push_str(&style.table(header.collect(), rows));
        }
        let mut reasons = String::new();
        for (label, features) in &probed {
            for (name, support) in verdicts(features) {
                if let Some(reason) = support.reason() {
                    reasons.push_str(&style.item(&format!("{} {name}: {reason}", style.code(label))));
                }
            }
        }
        for (label, verdict) in &self.rootless {
            let reason = match verdict {
                Ok(RootlessVerdict { refusal: Some(refusal), evidence }) => {
                    format!("{refusal} (as {USER}: {})", evidence.join("; "))
                }
                Ok(RootlessVerdict { refusal: None, .. }) => continue,
                Err(why) => format!("not probed: {why}"),
            };
            reasons.push_str(&style.item(&format!("{} rootless: {reason}", style.code(label))));
        }
        for (label, features) in &self.features {
            if let Err(why) = features {
                reasons.push_str(&style.item(&format!("{}: not probed: {why}", style.code(label))));
            }
        }
        if !reasons.is_empty() {
            body.push_str(&format!("\nWhy not:\n{}{reasons}", if style == Style::Markdown { "\n" } else { "" }));
        }
        style.section("Feature verdicts (the library's probes)", &body)
    }

    fn totals(&self) -> Totals {
        Totals::of(self.results.iter().map(|ran| &ran.outcome))
    }

    fn summary(&self) -> String {
        let totals = self.totals();
        format!(
            "{} passed, {} failed, {} skipped, {} deviations",
            totals.passed, totals.failed, totals.skipped, totals.deviations
        )
    }

    /// The report for the terminal.
    fn text(&self) -> String {
        let style = Style::Text;
        format!(
            "\n{}{}{}{}\n{}\n",
            self.cases(style),
            self.failures_and_skips(style),
            self.deviations(style),
            self.features(style),
            self.summary()
        )
    }

    /// The same report as a GitHub markdown document, with the run's date and what it found.
    fn markdown(&self, run: &RunFacts) -> String {
        let style = Style::Markdown;
        let found = if run.found.is_empty() { "the fakes only".to_owned() } else { run.found.join(", ") };
        let mut document = format!("# Conformance matrix\n\nRun of {} with {found}.\n", run.date);
        if !run.missing.is_empty() {
            let missing: String = run.missing.iter().map(|line| style.item(line)).collect();
            document.push_str(&format!("\nNot in the matrix:\n\n{missing}"));
        }
        document.push_str(&format!("\n**{}**\n", self.summary()));
        document.push_str(&style.section("Cases", &self.cases(style)));
        document.push_str(&self.failures_and_skips(style));
        document.push_str(&self.deviations(style));
        document.push_str(&self.features(style));
        document
    }

    /// Every cell with what its case checks and its outcome, each backend's feature probe, and
    /// the totals.
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
        let features: serde_json::Map<String, serde_json::Value> = self
            .features
            .iter()
            .map(|(label, features)| {
                let probe = match features {
                    Ok(features) => serde_json::json!(features.as_ref()),
                    Err(why) => serde_json::json!({ "not_probed": why }),
                };
                (label.clone(), probe)
            })
            .collect();
        let rootless: serde_json::Map<String, serde_json::Value> = self
            .rootless
            .iter()
            .map(|(label, verdict)| {
                let verdict = match verdict {
                    Ok(verdict) => verdict.json(),
                    Err(why) => serde_json::json!({ "not_probed": why }),
                };
                (label.clone(), verdict)
            })
            .collect();
        serde_json::json!({ "cells": cells, "features": features, "rootless": rootless, "totals": self.totals() })
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
        let report = report_of(results);
        let expected = "\
| case | crun/direct | runc/direct | runc/direct/rootless | runc/conmon/rootless |
|------|-------------|-------------|----------------------|----------------------|
| exec | FAIL        | pass        | skip                 | pass                 |";
        assert_eq!(report.cases(Style::Text).lines().take(3).collect::<Vec<_>>().join("\n"), expected);
        assert_eq!(
            report.failures_and_skips(Style::Text),
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

    fn report_of(results: Vec<Ran>) -> Report {
        Report { results, features: BTreeMap::new(), rootless: BTreeMap::new() }
    }

    /// A run of each outcome: runc passes and fails and skips, crun deviates.
    fn one_of_each() -> Vec<Ran> {
        vec![
            ran("runc", None, "list", Outcome::Pass),
            ran("runc", Some(Monitor::Direct), "stop", Outcome::Fail { evidence: "exit 1 | killed".into() }),
            ran("runc", Some(Monitor::Conmon), "stop", Outcome::Skip { reason: "conmon is not in PATH".into() }),
            ran("crun", None, "list", Outcome::Deviation { spec: "runtime.md#state".into(), does: "omits pid".into() }),
        ]
    }

    fn yes(argv: &str) -> Support {
        let argv = argv.split(' ').map(str::to_owned).collect();
        Support::Supported { evidence: vec![runtime_core::Probe { argv, status: Some(0), output: String::new() }] }
    }

    fn no(reason: &str) -> Support {
        Support::Unsupported { reason: reason.into(), evidence: Vec::new() }
    }

    /// runc 1.1.5's probe on a host whose CRIU fails `criu check` and without systemd.
    fn runc_features() -> Arc<Features> {
        let version = runtime_core::RuntimeVersion::parse("runc version 1.1.5+ds1\nspec: 1.0.2-dev\n").unwrap();
        let criu = "criu check fails: vdso";
        Arc::new(Features {
            version,
            checkpoint: no(criu),
            restore: no(criu),
            pre_dump: no(criu),
            lazy_pages: no(criu),
            features_command: yes("runc features"),
            document: None,
            json_error_log: yes("runc --log-format json --version"),
            update: yes("runc update --help"),
            cgroup_managers: [
                (runtime_core::CgroupManager::Cgroupfs, yes("runc --version")),
                (runtime_core::CgroupManager::Systemd, no("no systemd")),
            ]
            .into(),
            host: yes("runc --version"),
            events: yes("runc events --help"),
        })
    }

    #[test]
    fn the_table_has_cases_as_rows_and_backend_by_monitor_as_columns() {
        let report = report_of(one_of_each());
        let expected = "\
| case | crun/none | runc/none | runc/direct | runc/conmon |
|------|-----------|-----------|-------------|-------------|
| list | DEVIATION | pass      | -           | -           |
| stop | -         | -         | FAIL        | skip        |

Legend: pass; FAIL (evidence below); skip (reason below); DEVIATION (a documented departure of the runtime \
from the spec, below; never a pass); - (the case does not run there)
";
        assert_eq!(report.cases(Style::Text), expected);
        assert_eq!(
            report.failures_and_skips(Style::Text),
            "\nFailed:\n  runc/direct stop: exit 1 | killed\n\
             \nSkipped:\n  runc/conmon: conmon is not in PATH (1 case(s))\n"
        );
        assert_eq!(report.totals(), Totals { passed: 1, failed: 1, skipped: 1, deviations: 1 });
    }

    #[test]
    fn skips_of_one_reason_in_one_column_are_counted_together() {
        let skip = || Outcome::Skip { reason: "runc is not in PATH".into() };
        let report = report_of(vec![
            ran("runc", None, "a", skip()),
            ran("runc", None, "b", skip()),
            ran("runc", Some(Monitor::Direct), "c", skip()),
        ]);
        assert_eq!(
            report.failures_and_skips(Style::Text),
            "\nSkipped:\n  runc/direct: runc is not in PATH (1 case(s))\n  runc/none: runc is not in PATH (2 case(s))\n"
        );
    }

    #[test]
    fn deviations_are_a_table_by_runtime_with_the_spec_line_and_every_monitor_they_were_met_under() {
        let deviation = || Outcome::Deviation {
            spec: "runtime.md#delete: MUST generate an error".into(),
            does: "deletes a created container".into(),
        };
        let report = report_of(vec![
            ran("youki", None, "delete_created", deviation()),
            ran("crun", None, "delete_created", deviation()),
            ran("crun", Some(Monitor::Direct), "delete_created", deviation()),
            ran("crun", None, "list", Outcome::Pass),
        ]);
        let expected = "
Deviations:
| runtime | case           | monitor      | spec line it departs from                 | what the runtime does       |
|---------|----------------|--------------|-------------------------------------------|-----------------------------|
| crun    | delete_created | none, direct | runtime.md#delete: MUST generate an error | deletes a created container |
| youki   | delete_created | none         | runtime.md#delete: MUST generate an error | deletes a created container |
";
        assert_eq!(report.deviations(Style::Text), expected);
        assert_eq!(report_of(vec![ran("crun", None, "list", Outcome::Pass)]).deviations(Style::Text), "", "none met");
    }

    #[test]
    fn feature_verdicts_are_a_table_of_features_by_backend_with_the_reasons_for_each_no() {
        let report = Report {
            results: Vec::new(),
            features: [
                ("runc".to_owned(), Ok(runc_features())),
                ("youki".to_owned(), Err("youki is not in PATH".to_owned())),
            ]
            .into(),
            rootless: BTreeMap::new(),
        };
        let expected = "
Feature verdicts (the library's probes):
| feature                 | runc      |
|-------------------------|-----------|
| version                 | 1.1.5+ds1 |
| checkpoint              | no        |
| restore                 | no        |
| pre-dump                | no        |
| lazy pages              | no        |
| features command        | yes       |
| JSON error log          | yes       |
| update                  | yes       |
| events                  | yes       |
| host                    | yes       |
| cgroup manager cgroupfs | yes       |
| cgroup manager systemd  | no        |

Why not:
  runc checkpoint: criu check fails: vdso
  runc restore: criu check fails: vdso
  runc pre-dump: criu check fails: vdso
  runc lazy pages: criu check fails: vdso
  runc cgroup manager systemd: no systemd
  youki: not probed: youki is not in PATH
";
        assert_eq!(report.features(Style::Text), expected);
    }

    #[test]
    fn the_rootless_row_is_each_runtimes_host_verdict_as_the_user_with_its_words_and_evidence_when_no() {
        let mut youki = (*runc_features()).clone();
        youki.version = runtime_core::RuntimeVersion::parse("youki version 0.7.0\nspec: 1.1.0\n").unwrap();
        let verdict = |refusal: Option<&str>, evidence: &str| {
            Ok(RootlessVerdict { refusal: refusal.map(str::to_owned), evidence: vec![evidence.to_owned()] })
        };
        let report = Report {
            results: Vec::new(),
            features: [("runc".to_owned(), Ok(runc_features())), ("youki".to_owned(), Ok(Arc::new(youki)))].into(),
            rootless: [
                ("runc".to_owned(), verdict(None, "nothing to check")),
                ("youki".to_owned(), verdict(Some("v1 cgroups: \"Permission denied\"; fix: v2"), "check: hybrid")),
            ]
            .into(),
        };
        let expected = "
Feature verdicts (the library's probes):
| feature                 | runc      | youki |
|-------------------------|-----------|-------|
| version                 | 1.1.5+ds1 | 0.7.0 |
| checkpoint              | no        | no    |
| restore                 | no        | no    |
| pre-dump                | no        | no    |
| lazy pages              | no        | no    |
| features command        | yes       | yes   |
| JSON error log          | yes       | yes   |
| update                  | yes       | yes   |
| events                  | yes       | yes   |
| host                    | yes       | yes   |
| cgroup manager cgroupfs | yes       | yes   |
| cgroup manager systemd  | no        | no    |
| rootless                | yes       | no    |

Why not:
  runc checkpoint: criu check fails: vdso
  runc restore: criu check fails: vdso
  runc pre-dump: criu check fails: vdso
  runc lazy pages: criu check fails: vdso
  runc cgroup manager systemd: no systemd
  youki checkpoint: criu check fails: vdso
  youki restore: criu check fails: vdso
  youki pre-dump: criu check fails: vdso
  youki lazy pages: criu check fails: vdso
  youki cgroup manager systemd: no systemd
  youki rootless: v1 cgroups: \"Permission denied\"; fix: v2 (as ocirt-rootless: check: hybrid)
";
        assert_eq!(report.features(Style::Text), expected);

        let without_user = Report {
            results: Vec::new(),
            features: [("runc".to_owned(), Ok(runc_features()))].into(),
            rootless: [("runc".to_owned(), Err("there is no user ocirt-rootless (setup makes it)".to_owned()))].into(),
        };
        let text = without_user.features(Style::Text);
        assert!(text.contains("\n| rootless                | -         |\n"), "{text}");
        assert!(
            text.ends_with("\n  runc rootless: not probed: there is no user ocirt-rootless (setup makes it)\n"),
            "{text}"
        );
    }

    #[test]
    fn the_markdown_report_has_the_date_versions_summary_cases_notes_deviations_and_feature_verdicts() {
        let report = Report {
            results: one_of_each(),
            features: [("runc".to_owned(), Ok(runc_features()))].into(),
            rootless: BTreeMap::new(),
        };
        let run = RunFacts {
            date: "2026-12-03 15:00 UTC".into(),
            found: vec!["runc 1.1.5+ds1".into(), "conmon 2.1.6".into()],
            missing: vec!["youki: youki is not in PATH".into()],
        };
        let expected = "\
# Conformance matrix

Run of 2026-12-03 15:00 UTC with runc 1.1.5+ds1, conmon 2.1.6.

Not in the matrix:

- youki: youki is not in PATH

**1 passed, 1 failed, 1 skipped, 1 deviations**

## Cases

| case | crun/none    | runc/none | runc/direct | runc/conmon |
|------|--------------|-----------|-------------|-------------|
| list | 🔶 deviation | ✅ pass   | -           | -           |
| stop | -            | -         | ❌ FAIL     | ⚪ skip     |

Legend: ✅ pass; ❌ FAIL (evidence below); ⚪ skip (reason below); 🔶 deviation (a documented departure of \
the runtime from the spec, below; never a pass); - (the case does not run there)

## Failed

- `runc/direct` `stop`: exit 1 | killed

## Skipped

- `runc/conmon`: conmon is not in PATH (1 case(s))

## Deviations

| runtime | case | monitor | spec line it departs from | what the runtime does |
|---------|------|---------|---------------------------|-----------------------|
| crun    | list | none    | runtime.md#state          | omits pid             |

## Feature verdicts (the library's probes)

| feature                 | runc      |
|-------------------------|-----------|
| version                 | 1.1.5+ds1 |
| checkpoint              | no        |
| restore                 | no        |
| pre-dump                | no        |
| lazy pages              | no        |
| features command        | yes       |
| JSON error log          | yes       |
| update                  | yes       |
| events                  | yes       |
| host                    | yes       |
| cgroup manager cgroupfs | yes       |
| cgroup manager systemd  | no        |

Why not:

- `runc` checkpoint: criu check fails: vdso
- `runc` restore: criu check fails: vdso
- `runc` pre-dump: criu check fails: vdso
- `runc` lazy pages: criu check fails: vdso
- `runc` cgroup manager systemd: no systemd
";
        assert_eq!(report.markdown(&run), expected);
    }

    #[test]
    fn a_markdown_table_cell_keeps_to_its_cell() {
        let report = report_of(vec![ran(
            "runc",
            None,
            "list",
            Outcome::Deviation { spec: "a | b".into(), does: "two\nlines".into() },
        )]);
        let deviations = report.deviations(Style::Markdown);
        assert!(deviations.contains("| a \\| b "), "{deviations}");
        assert!(deviations.contains("| two lines "), "{deviations}");
    }

    #[test]
    fn the_json_holds_each_cell_with_its_outcome_each_feature_probe_and_the_totals() {
        let report = Report {
            results: vec![ran("runc-fake", Some(Monitor::Conmon), "stop", Outcome::Fail { evidence: "e".into() })],
            features: [("youki".to_owned(), Err("youki is not in PATH".to_owned()))].into(),
            rootless: [("youki".to_owned(), Err("there is no user ocirt-rootless".to_owned()))].into(),
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
            "features": { "youki": { "not_probed": "youki is not in PATH" } },
            "rootless": { "youki": { "not_probed": "there is no user ocirt-rootless" } },
            "totals": { "passed": 0, "failed": 1, "skipped": 0, "deviations": 0 },
        });
        assert_eq!(report.json(), expected);
        let probed = Report {
            results: Vec::new(),
            features: [("runc".to_owned(), Ok(runc_features()))].into(),
            rootless: BTreeMap::new(),
        };
        let checkpoint = &probed.json()["features"]["runc"]["checkpoint"];
        assert_eq!(checkpoint["support"], "unsupported");
        assert_eq!(checkpoint["reason"], "criu check fails: vdso");
    }

    #[test]
    fn any_failure_makes_the_exit_status_a_failure() {
        let failed = Finished::Matrix(Totals { passed: 3, failed: 1, skipped: 0, deviations: 0 });
        let clean = Finished::Matrix(Totals { passed: 3, failed: 0, skipped: 2, deviations: 1 });
        assert_eq!(format!("{:?}", failed.exit_code()), format!("{:?}", ExitCode::FAILURE));
        assert_eq!(format!("{:?}", clean.exit_code()), format!("{:?}", ExitCode::SUCCESS));
    }
}
