//! The conformance suite: one set of cases every backend is held to, against the fakes on every
//! `cargo test` and against the real runtimes when the gate lets them run.
//!
//! A [`Subject`] says what to test (a fake of some flavour, or a real runtime) and how to
//! connect a backend to it. [`register`] adds every case for it to a [`Suite`], named
//! `conformance::<subject>::<case>`; `cargo xtask matrix` reads those names back into a table.
//! Each case gets a fresh [`Env`] (its own state root) and, whether it passed or not, the env
//! then checks that no container, process or state directory was left behind.

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
use std::pin::Pin;
use std::sync::Arc;

use runtime_core::{CliBackend, HostCheck, OciBackend, RuntimeConfig, RuntimeFamily};

pub use env::Env;

use crate::fake::Flavour;
use crate::harness::{CaseResult, Suite};

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
/// `conformance::<subject>+<monitor>::<case>`. They belong in a test binary of their own: a
/// process that supervises containers directly is a child subreaper while it creates them, and
/// would adopt the detached execs the backend cases make.
pub fn register_engine(suite: &mut Suite, subject: &Subject) {
    SUBJECTS.lock().unwrap_or_else(|p| p.into_inner()).push(subject.clone());
    let cases = engine::all()
        .into_iter()
        .chain(checkpoint::all())
        .chain(oom::all())
        .chain(errors::all())
        .chain(exec::all())
        .collect();
    add(suite, subject, format!("{}+direct", subject.label), cases);
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

fn add(suite: &mut Suite, subject: &Subject, label: String, cases: Vec<(&'static str, Case)>) {
    for (name, case) in cases {
        let subject = subject.clone();
        let test_name = format!("conformance::{label}::{name}");
        match subject.setup.clone() {
            Setup::Fake(_) => suite.case_that_may_skip(test_name, move || env::run(subject, None, case)),
            Setup::Real(runtime) => {
                let host_checks = subject.host_checks.clone();
                suite.gated(test_name, &runtime, host_checks, move |real| env::run(subject, Some(real), case));
            }
        }
    }
}
