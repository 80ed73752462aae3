//! The test harness of every test binary that needs a fake runtime or a real one.
//!
//! Two things the standard harness cannot do: decide at run time that a test is skipped, with
//! the reason (a test that needs runc on a machine without it must say "ignored (runc not
//! found)", never pass), and serve as the fake runtime itself. [`main`] first checks whether the
//! binary was executed under a runtime's name (a `runc`, `crun`, `youki` or `criu` symlink made by
//! [`crate::fake::FakeRuntime`]) and if so behaves as `fake-oci`; otherwise it runs the tests with
//! libtest's command line and output (`--test-threads`, filters, `--ignored`...). The conformance
//! suite's cells become trials named as their cells are; a program that runs them itself (`cargo
//! xtask matrix`) calls [`serve_as_fake`] first, as [`main`] does.
//!
//! Each case runs on its own single-threaded tokio runtime.

use std::future::Future;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};

use std::sync::Arc;

use libtest_mimic::{Arguments, Completion, Failed, Trial};
use runtime_core::{HostCheck, RuntimeFamily};

use crate::conformance::{Outcome, Planned};
use crate::gate::{self, Gate, RealRuntime};

static HARNESS_ACTIVE: AtomicBool = AtomicBool::new(false);

/// How a case ended when it did not fail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ran {
    /// It ran and every assertion held.
    Passed,
    /// It could not run here; the reason is reported as the test's "ignored" note.
    Skipped(String),
}

/// The result of one case.
pub type CaseResult = anyhow::Result<Ran>;

/// The cases of one test binary.
#[derive(Default)]
pub struct Suite {
    trials: Vec<Trial>,
    conformance: Vec<Planned>,
}

impl std::fmt::Debug for Suite {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Suite")
            .field("trials", &self.trials.len())
            .field("conformance", &self.conformance.len())
            .finish()
    }
}

/// Runs `case` to its end on a single-threaded tokio runtime of its own.
pub fn block_on<Fut>(case: Fut) -> CaseResult
where
    Fut: Future<Output = CaseResult>,
{
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build();
    match runtime {
        Ok(runtime) => runtime.block_on(case),
        Err(err) => anyhow::bail!("cannot build a tokio runtime: {err}"),
    }
}

fn run_case<Fut>(case: Fut) -> Result<Completion, Failed>
where
    Fut: Future<Output = CaseResult>,
{
    match block_on(case) {
        Ok(Ran::Passed) => Ok(Completion::Completed),
        Ok(Ran::Skipped(reason)) => Ok(Completion::ignored_with(reason)),
        Err(err) => Err(Failed::from(format!("{err:#}"))),
    }
}

/// libtest's word for a conformance outcome: a deviation is reported as ignored with what the
/// runtime does instead, never as a pass.
fn completion(outcome: Outcome) -> Result<Completion, Failed> {
    match outcome {
        Outcome::Pass => Ok(Completion::Completed),
        Outcome::Skip { reason } => Ok(Completion::ignored_with(reason)),
        Outcome::Deviation { spec, does } => Ok(Completion::ignored_with(format!("deviation from {spec}: {does}"))),
        Outcome::Fail { evidence } => Err(Failed::from(evidence)),
    }
}

impl Suite {
    /// A cell of the conformance suite, run as a trial of the cell's name.
    pub fn conformance(&mut self, planned: Planned) {
        self.conformance.push(planned);
    }

    /// The conformance cells registered so far, in order, for a program that runs them itself.
    pub fn take_conformance(&mut self) -> Vec<Planned> {
        std::mem::take(&mut self.conformance)
    }

    /// A case that always runs.
    pub fn case<F, Fut>(&mut self, name: impl Into<String>, case: F)
    where
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = anyhow::Result<()>>,
    {
        self.case_that_may_skip(name, move || async move { case().await.map(|()| Ran::Passed) });
    }

    /// A case that may find at run time that it cannot run here, and says why.
    pub fn case_that_may_skip<F, Fut>(&mut self, name: impl Into<String>, case: F)
    where
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = CaseResult>,
    {
        self.trials.push(Trial::ignorable_test(name, move || run_case(case())));
    }

    /// A case that needs the real runtime `runtime` on a host that passes `host_checks`, through
    /// the gate: skipped with the reason when either is missing, failed instead when
    /// `REQUIRE_REAL_RUNTIMES` names the runtime.
    pub fn gated<F, Fut>(
        &mut self,
        name: impl Into<String>,
        runtime: &str,
        host_checks: Vec<Arc<dyn HostCheck>>,
        case: F,
    ) where
        F: FnOnce(RealRuntime) -> Fut + Send + 'static,
        Fut: Future<Output = CaseResult>,
    {
        let runtime = runtime.to_owned();
        self.trials.push(Trial::ignorable_test(name, move || match gate::real_runtime(&runtime, &host_checks) {
            Gate::Open(real) => run_case(case(real)),
            Gate::Skip(reason) => Ok(Completion::ignored_with(reason)),
            Gate::Fail(reason) => Err(Failed::from(reason)),
        }));
    }

    /// A case that needs the real monitor `monitor` (conmon) and the real runtime of `family` on
    /// a host that passes the family's host checks, each through the gate, the monitor's first:
    /// skipped or failed as [`Suite::gated`] says. The case gets the monitor, then the runtime.
    pub fn gated_under<F, Fut>(
        &mut self,
        name: impl Into<String>,
        monitor: &str,
        family: Arc<dyn RuntimeFamily>,
        case: F,
    ) where
        F: FnOnce(RealRuntime, RealRuntime) -> Fut + Send + 'static,
        Fut: Future<Output = CaseResult>,
    {
        self.gated(name, monitor, Vec::new(), move |monitor| async move {
            match gate::real_runtime(family.name(), &family.host_checks()) {
                Gate::Open(runtime) => case(monitor, runtime).await,
                Gate::Skip(reason) => Ok(Ran::Skipped(reason)),
                Gate::Fail(reason) => anyhow::bail!("{reason}"),
            }
        });
    }
}

/// Runs the suite `build` registers, or acts as the fake runtime when executed under a
/// runtime's name.
pub fn main(build: impl FnOnce(&mut Suite)) -> ExitCode {
    if let Some(code) = serve_as_fake() {
        return code;
    }
    let mut args = Arguments::from_args();
    // One case at a time unless asked otherwise: the cases drive real runtimes that share the
    // host's cgroups, CRIU and their own state, and side by side on a small machine they fail
    // for reasons that are not the library's (youki 0.7's `exec --detach` then fails silently
    // once in a while). `--test-threads N` still runs them in parallel.
    args.test_threads.get_or_insert(1);
    let mut suite = Suite::default();
    build(&mut suite);
    if let Some(code) = crate::conformance::run_as_second_process() {
        return code;
    }
    if let Some(code) = crate::conformance::run_as_user_copy(&mut suite) {
        return code;
    }
    let cells = suite
        .take_conformance()
        .into_iter()
        .map(|planned| Trial::ignorable_test(planned.cell().test_name(), move || completion(planned.run())));
    libtest_mimic::run(&args, suite.trials.into_iter().chain(cells).collect()).exit_code()
}

/// Acts as `fake-oci` or `fake-conmon` when this program was executed under a runtime's or
/// conmon's name, and gives the exit code; otherwise marks the program as one whose fakes it can
/// be ([`fake_program`]) and gives `None`. Every program that runs cases calls it first.
pub fn serve_as_fake() -> Option<ExitCode> {
    if crate::fake_oci::invoked_as_fake() {
        return Some(crate::fake_oci::main());
    }
    if crate::fake_conmon::invoked_as_fake() {
        return Some(crate::fake_conmon::main());
    }
    HARNESS_ACTIVE.store(true, Ordering::SeqCst);
    None
}

/// The program fake runtimes are made of: this test binary (or another program that calls
/// [`serve_as_fake`] first), which [`main`] turns into `fake-oci` when it runs under a runtime's
/// name.
///
/// # Panics
/// When the binary does not run [`main`]: executed as `runc`, it would run its tests instead.
pub fn fake_program() -> PathBuf {
    assert!(
        HARNESS_ACTIVE.load(Ordering::SeqCst),
        "fake runtimes need the program to call testkit::harness::serve_as_fake first (a test binary: harness::main, harness = false)"
    );
    std::env::current_exe().expect("the test binary knows its own path")
}
