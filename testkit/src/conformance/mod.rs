//! The conformance suite: one set of cases every backend is held to, against the fakes on every
//! `cargo test` and against the real runtimes when the gate lets them run.
//!
//! The suite is data, so that the test binaries and `cargo xtask matrix` run the same thing and
//! neither reads the other's text. A `CaseSpec` names a case, says what it checks (the OCI
//! runtime-spec line or the runtime behaviour) and what it needs of its monitor. A [`Subject`]
//! says what to test (a fake of some flavour, a real runtime, a plugin) and how to connect a
//! backend to it. [`register`] plans every backend case for a subject as a [`Planned`] cell
//! (monitor: none), [`register_engine`] every engine case once per [`Monitor`] (direct and
//! conmon), so that every engine guarantee is held against each monitor, and
//! [`register_rootless`] a real runtime's rootless cases under each monitor, run as an
//! unprivileged user (a cell's [`Privilege`]). Running a cell gives an [`Outcome`]: pass, fail
//! with evidence, skip with a reason, or a deviation listed in [`DEVIATIONS`]. A test binary
//! turns each cell into a libtest trial named `conformance::<subject>[+<monitor>][+rootless]::<case>`;
//! `cargo xtask matrix` runs the cells itself.
//!
//! Each case gets a fresh [`Env`] (its own state root) and, whether it passed or not, the env
//! then checks that no container, process (conmon included) or state directory was left behind.
//! A case that needs a [`runtime_core::Capability`] its monitor lacks is skipped with the
//! monitor's own "the conmon monitor cannot ..." before it starts, never passed.

mod cases;
mod checkpoint;
mod embedding;
mod engine;
mod env;
mod errors;
mod exec;
mod lifecycle;
mod oom;
mod outcome;
mod rootless;
mod stats;
mod terminal;

use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;

use conmon_driver::ConmonMonitor;
use runtime_core::{Capability, CliBackend, DirectMonitor, HostCheck, OciBackend, RuntimeConfig, RuntimeFamily};

pub use env::Env;
pub use outcome::{Cell, DEVIATIONS, Departure, KnownDeviation, Monitor, Outcome, Privilege, Totals};
pub use rootless::{register_rootless, run_as_user_copy};

use crate::fake::{FakeConmon, Flavour};
use crate::gate::{self, Gate};
use crate::harness::{CaseResult, Ran, Suite, block_on};

/// The name the gate (and `REQUIRE_REAL_RUNTIMES`) gives conmon.
pub const CONMON: &str = "conmon";

/// Which monitor an env's engines supervise containers with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MonitorChoice {
    /// The embedding process itself ([`DirectMonitor`]).
    Direct,
    /// conmon, run from this binary ([`ConmonMonitor`]).
    Conmon(PathBuf),
}

impl MonitorChoice {
    /// Its name in test labels, as the monitor calls itself.
    pub fn label(&self) -> &'static str {
        match self {
            MonitorChoice::Direct => "direct",
            MonitorChoice::Conmon(_) => "conmon",
        }
    }

    /// A new monitor of this kind, as a (re)started program makes one.
    pub fn monitor(&self) -> Arc<dyn runtime_core::Monitor> {
        match self {
            MonitorChoice::Direct => Arc::new(DirectMonitor::new()),
            MonitorChoice::Conmon(binary) => Arc::new(ConmonMonitor::new(binary)),
        }
    }

    /// The choice as one line, for a second process to make the same monitor.
    pub(super) fn encode(&self) -> String {
        match self {
            MonitorChoice::Direct => "direct".to_owned(),
            MonitorChoice::Conmon(binary) => format!("conmon:{}", binary.display()),
        }
    }

    /// The choice [`MonitorChoice::encode`] wrote.
    pub(super) fn decode(text: &str) -> Option<Self> {
        match text.split_once(':') {
            None if text == "direct" => Some(MonitorChoice::Direct),
            Some(("conmon", binary)) => Some(MonitorChoice::Conmon(binary.into())),
            _ => None,
        }
    }
}

/// A future that connects a backend.
pub type Connecting = Pin<Box<dyn Future<Output = runtime_core::Result<Box<dyn OciBackend>>> + Send>>;

/// Connects a backend for a config.
pub type Connector = Arc<dyn Fn(RuntimeConfig) -> Connecting + Send + Sync>;

/// Where a subject's runtime comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Setup {
    /// A fake of this flavour, private to each case.
    Fake(Flavour),
    /// The real runtime of this name, through the gate.
    Real(String),
}

/// What the suite runs against.
#[derive(Clone)]
pub struct Subject {
    label: String,
    setup: Setup,
    connect: Connector,
    host_checks: Vec<Arc<dyn HostCheck>>,
}

impl std::fmt::Debug for Subject {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Subject").field("label", &self.label).field("setup", &self.setup).finish()
    }
}

fn family_connector(family: Arc<dyn RuntimeFamily>) -> Connector {
    Arc::new(move |config| {
        let family = Arc::clone(&family);
        Box::pin(async move {
            let backend = CliBackend::connect(family, config).await?;
            Ok(Box::new(backend) as Box<dyn OciBackend>)
        })
    })
}

impl Subject {
    /// A backend family against its fake.
    pub fn fake(flavour: Flavour, family: Arc<dyn RuntimeFamily>) -> Self {
        let label = format!("{}-fake", family.name());
        Subject { label, setup: Setup::Fake(flavour), connect: family_connector(family), host_checks: Vec::new() }
    }

    /// A backend family against the real runtime it is named after.
    pub fn real(family: Arc<dyn RuntimeFamily>) -> Self {
        let name = family.name().to_owned();
        let host_checks = family.host_checks();
        Subject { label: name.clone(), setup: Setup::Real(name), connect: family_connector(family), host_checks }
    }

    /// Any backend (a plugin, say) connected by `connect`.
    pub fn custom(label: impl Into<String>, setup: Setup, connect: Connector) -> Self {
        Subject { label: label.into(), setup, connect, host_checks: Vec::new() }
    }

    /// The label in test names.
    pub fn label(&self) -> &str {
        &self.label
    }
}

/// One case: runs against an env that the suite cleans up and checks afterwards.
pub type Case = for<'env> fn(&'env mut Env) -> Pin<Box<dyn Future<Output = CaseResult> + 'env>>;

/// A case as data: its name, what it checks (the OCI runtime-spec line, or the runtime
/// behaviour it pins), the monitor capabilities it needs, and the code.
#[derive(Clone, Copy)]
pub(crate) struct CaseSpec {
    name: &'static str,
    checks: &'static str,
    needs: &'static [Capability],
    run: Case,
}

impl std::fmt::Debug for CaseSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CaseSpec").field("name", &self.name).field("needs", &self.needs).finish()
    }
}

impl CaseSpec {
    /// A case that needs nothing of its monitor.
    pub(crate) const fn new(name: &'static str, checks: &'static str, run: Case) -> Self {
        CaseSpec { name, checks, needs: &[], run }
    }

    /// A case skipped, with the monitor's own reason, under a monitor that lacks one of `needs`.
    pub(crate) const fn needing(
        name: &'static str,
        checks: &'static str,
        needs: &'static [Capability],
        run: Case,
    ) -> Self {
        CaseSpec { name, checks, needs, run }
    }
}

/// One cell of the matrix, ready to run.
pub struct Planned {
    cell: Cell,
    checks: &'static str,
    run: Box<dyn FnOnce() -> Outcome + Send>,
}

impl std::fmt::Debug for Planned {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Planned").field("cell", &self.cell).finish()
    }
}

impl Planned {
    /// The cell it fills.
    pub fn cell(&self) -> &Cell {
        &self.cell
    }

    /// What its case checks.
    pub fn checks(&self) -> &'static str {
        self.checks
    }

    /// Runs the case on a tokio runtime of its own: its outcome.
    pub fn run(self) -> Outcome {
        (self.run)()
    }
}

/// The backend's cases, which drive the runtime without a monitor.
fn backend_cases() -> Vec<CaseSpec> {
    cases::all().into_iter().chain(lifecycle::all()).collect()
}

/// The engine's cases, each run under every monitor.
fn engine_cases() -> Vec<CaseSpec> {
    engine::all()
        .into_iter()
        .chain(checkpoint::all())
        .chain(oom::all())
        .chain(errors::all())
        .chain(exec::all())
        .collect()
}

/// Adds the backend's conformance cases for `subject` to `suite`, named
/// `conformance::<subject>::<case>`.
pub fn register(suite: &mut Suite, subject: &Subject) {
    for case in backend_cases() {
        suite.conformance(plan(subject, None, case));
    }
}

/// Adds the engine's cases for `subject` with each monitor to `suite`, named
/// `conformance::<subject>+<monitor>::<case>`: with the direct monitor, and with conmon: for a
/// real runtime the real conmon, gated on the runtime and then on conmon (missing: skipped with
/// the reason, or failed when `REQUIRE_REAL_RUNTIMES` names `conmon`); for a fake the fake conmon
/// (`crate::fake_conmon`), which needs nothing installed. In a test binary they belong in one of
/// their own: a process that supervises containers directly is a child subreaper while it
/// creates them, and would adopt the detached execs the backend cases make, were they run side
/// by side.
pub fn register_engine(suite: &mut Suite, subject: &Subject) {
    SUBJECTS.lock().unwrap_or_else(|p| p.into_inner()).push(subject.clone());
    let conmon = match subject.setup {
        Setup::Fake(_) => Monitoring::FakeConmon,
        Setup::Real(_) => Monitoring::RealConmon,
    };
    for monitoring in [Monitoring::Chosen(MonitorChoice::Direct), conmon] {
        for case in engine_cases() {
            suite.conformance(plan(subject, Some(monitoring.clone()), case));
        }
    }
}

/// The monitor a registered case gets.
#[derive(Debug, Clone)]
enum Monitoring {
    /// This one.
    Chosen(MonitorChoice),
    /// The real conmon, through the gate when the case runs.
    RealConmon,
    /// A fake conmon of its own for each case (`fake-conmon`, this test binary under conmon's
    /// name), over the subject's fake runtime: no binary needed on the machine.
    FakeConmon,
}

impl Monitoring {
    fn kind(&self) -> Monitor {
        match self {
            Monitoring::Chosen(MonitorChoice::Direct) => Monitor::Direct,
            Monitoring::Chosen(MonitorChoice::Conmon(_)) | Monitoring::RealConmon | Monitoring::FakeConmon => {
                Monitor::Conmon
            }
        }
    }

    /// The monitor, with the fake conmon it runs (kept until the case ends), or how the case
    /// ends when the gate keeps its binary out.
    fn choose(self) -> Result<(MonitorChoice, Option<FakeConmon>), CaseResult> {
        match self {
            Monitoring::Chosen(choice) => Ok((choice, None)),
            Monitoring::RealConmon => match gate::real_runtime(CONMON, &[]) {
                Gate::Open(conmon) => Ok((MonitorChoice::Conmon(conmon.binary), None)),
                Gate::Skip(reason) => Err(Ok(Ran::Skipped(reason))),
                Gate::Fail(reason) => Err(Err(anyhow::anyhow!(reason))),
            },
            Monitoring::FakeConmon => match FakeConmon::new() {
                Ok(fake) => Ok((MonitorChoice::Conmon(fake.binary()), Some(fake))),
                Err(err) => Err(Err(err.context("setting up the fake conmon"))),
            },
        }
    }
}

/// The cell of `case` against `subject` under `monitoring` (`None`: the backend's own case, its
/// env that of the direct monitor, as an engine any of them made would be).
fn plan(subject: &Subject, monitoring: Option<Monitoring>, case: CaseSpec) -> Planned {
    let cell = Cell {
        backend: subject.label.clone(),
        monitor: monitoring.as_ref().map(Monitoring::kind),
        privilege: Privilege::Rootful,
        case: case.name.to_owned(),
    };
    let (subject, setup, host_checks) = (subject.clone(), subject.setup.clone(), subject.host_checks.clone());
    let monitoring = monitoring.unwrap_or(Monitoring::Chosen(MonitorChoice::Direct));
    let run = move || {
        let in_env = |real| async move {
            let (monitor, _fake_conmon) = match monitoring.choose() {
                Ok(chosen) => chosen,
                Err(not_here) => return not_here,
            };
            for capability in case.needs {
                if let Some(lacking) = env::lacking(&monitor, *capability) {
                    return lacking;
                }
            }
            env::run(subject, real, monitor, case.run).await
        };
        let (runtime, result) = match setup {
            Setup::Fake(flavour) => (flavour.name().to_owned(), block_on(in_env(None))),
            Setup::Real(runtime) => match gate::real_runtime(&runtime, &host_checks) {
                Gate::Open(real) => (runtime, block_on(in_env(Some(real)))),
                Gate::Skip(reason) => return Outcome::Skip { reason },
                Gate::Fail(reason) => return Outcome::Fail { evidence: reason },
            },
        };
        Outcome::of(&runtime, case.name, result, DEVIATIONS)
    };
    Planned { cell, checks: case.checks, run: Box::new(run) }
}

/// The subjects this test binary registered for the engine, for [`run_as_second_process`].
static SUBJECTS: std::sync::Mutex<Vec<Subject>> = std::sync::Mutex::new(Vec::new());

/// When this test binary was started by an engine case as a second OS process (see
/// `engine::two_processes_stop_and_delete_one_container`), does that process's part and gives
/// its exit code; `None` in a normal test run.
pub fn run_as_second_process() -> Option<std::process::ExitCode> {
    let subjects = SUBJECTS.lock().unwrap_or_else(|p| p.into_inner()).clone();
    engine::second_process(&subjects)
}
