//! The conformance suite: one set of cases every backend is held to, against the fakes on every
//! `cargo test` and against the real runtimes when the gate lets them run.
//!
//! A [`Subject`] says what to test (a fake of some flavour, or a real runtime) and how to
//! connect a backend to it. [`register`] adds every case for it to a [`Suite`], named
//! `conformance::<subject>::<case>`; [`register_engine`] adds the engine's cases once per
//! [`MonitorChoice`], named `conformance::<subject>+<monitor>::<case>`, so that every engine
//! guarantee is held against each monitor; `cargo xtask matrix` reads those names back into a
//! table. Each case gets a fresh [`Env`] (its own state root) and, whether it passed or not, the
//! env then checks that no container, process (conmon included) or state directory was left
//! behind.
//!
//! A case that needs a [`runtime_core::Capability`] its monitor lacks reports itself skipped
//! with the monitor's own "the conmon monitor cannot ..." ([`Env::lacks`]), never passed.

mod cases;
mod checkpoint;
mod embedding;
mod engine;
mod env;
mod errors;
mod exec;
mod oom;
mod stats;
mod terminal;

use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;

use conmon_driver::ConmonMonitor;
use runtime_core::{CliBackend, DirectMonitor, HostCheck, Monitor, OciBackend, RuntimeConfig, RuntimeFamily};

pub use env::Env;

use crate::fake::{FakeConmon, Flavour};
use crate::gate::{self, Gate};
use crate::harness::{CaseResult, Ran, Suite};

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
    pub fn monitor(&self) -> Arc<dyn Monitor> {
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

/// Adds the backend's conformance cases for `subject` to `suite`, named
/// `conformance::<subject>::<case>`.
pub fn register(suite: &mut Suite, subject: &Subject) {
    add(suite, subject, subject.label.clone(), cases::all());
}

/// Adds the engine's cases for `subject` with each monitor to `suite`, named
/// `conformance::<subject>+<monitor>::<case>`: with the direct monitor, and with conmon: for a
/// real runtime the real conmon, gated on the runtime and then on conmon (missing: skipped with
/// the reason, or failed when `REQUIRE_REAL_RUNTIMES` names `conmon`); for a fake the fake conmon
/// (`crate::fake_conmon`), which needs nothing installed. They belong in a test binary of their
/// own: a process that supervises containers directly is a child subreaper while it creates
/// them, and would adopt the detached execs the backend cases make.
pub fn register_engine(suite: &mut Suite, subject: &Subject) {
    SUBJECTS.lock().unwrap_or_else(|p| p.into_inner()).push(subject.clone());
    let cases = || {
        engine::all()
            .into_iter()
            .chain(checkpoint::all())
            .chain(oom::all())
            .chain(errors::all())
            .chain(exec::all())
            .collect::<Vec<_>>()
    };
    add_under(suite, subject, Monitoring::Chosen(MonitorChoice::Direct), cases());
    let conmon = match subject.setup {
        Setup::Fake(_) => Monitoring::FakeConmon,
        Setup::Real(_) => Monitoring::RealConmon,
    };
    add_under(suite, subject, conmon, cases());
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
    fn label(&self) -> &'static str {
        match self {
            Monitoring::Chosen(choice) => choice.label(),
            Monitoring::RealConmon | Monitoring::FakeConmon => CONMON,
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

/// The subjects this test binary registered for the engine, for [`run_as_second_process`].
static SUBJECTS: std::sync::Mutex<Vec<Subject>> = std::sync::Mutex::new(Vec::new());

/// When this test binary was started by an engine case as a second OS process (see
/// `engine::two_processes_stop_and_delete_one_container`), does that process's part and gives
/// its exit code; `None` in a normal test run.
pub fn run_as_second_process() -> Option<std::process::ExitCode> {
    let subjects = SUBJECTS.lock().unwrap_or_else(|p| p.into_inner()).clone();
    engine::second_process(&subjects)
}

/// The backend's cases drive the runtime without a monitor; their env is the direct monitor's,
/// as an engine any of them made would be.
fn add(suite: &mut Suite, subject: &Subject, label: String, cases: Vec<(&'static str, Case)>) {
    add_named(suite, subject, label, Monitoring::Chosen(MonitorChoice::Direct), cases);
}

fn add_under(suite: &mut Suite, subject: &Subject, monitoring: Monitoring, cases: Vec<(&'static str, Case)>) {
    add_named(suite, subject, format!("{}+{}", subject.label, monitoring.label()), monitoring, cases);
}

fn add_named(
    suite: &mut Suite,
    subject: &Subject,
    label: String,
    monitoring: Monitoring,
    cases: Vec<(&'static str, Case)>,
) {
    for (name, case) in cases {
        let (setup, host_checks) = (subject.setup.clone(), subject.host_checks.clone());
        let (subject, monitoring) = (subject.clone(), monitoring.clone());
        let test_name = format!("conformance::{label}::{name}");
        let run = move |real| async move {
            match monitoring.choose() {
                Ok((monitor, _fake_conmon)) => env::run(subject, real, monitor, case).await,
                Err(not_here) => not_here,
            }
        };
        match setup {
            Setup::Fake(_) => suite.case_that_may_skip(test_name, move || run(None)),
            Setup::Real(runtime) => suite.gated(test_name, &runtime, host_checks, move |real| run(Some(real))),
        }
    }
}
