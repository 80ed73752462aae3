//! One case on real conmon over real runc, for the test binaries that run single cases rather
//! than a table over runtimes (`mod through_conmon;` beside `mod support;`): the gate decides
//! whether runc runs here, the engine has its own runtime and state roots, and once the case is
//! over nothing of it may be left ([`crate::support::check_nothing_left`]).

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::bail;
use backend_runc::Runc;
use conmon_driver::ConmonMonitor;
use runtime_core::{CliBackend, ContainerId, DeleteMode, Engine, OciBackend, RuntimeConfig, RuntimeFamily, StateRoot};
use testkit::bundle::{BundleBuilder, Rootfs};
use testkit::gate::{self, Gate};
use testkit::harness::{CaseResult, Ran};

/// Runs `case` with an engine through `monitor` (a [`ConmonMonitor`] of the gated conmon) over
/// runc (once the gate let runc in), a container id made of `name` and a busybox bundle built by
/// `bundle`; then checks that nothing is left. A case that fails has its container removed.
pub async fn through_conmon(
    monitor: ConmonMonitor,
    name: &str,
    bundle: BundleBuilder,
    case: impl AsyncFnOnce(&Engine, &ContainerId, &Path) -> anyhow::Result<()>,
) -> CaseResult {
    let runc = match gate::real_runtime("runc", &Runc.host_checks()) {
        Gate::Open(runc) => runc,
        Gate::Skip(reason) => return Ok(Ran::Skipped(reason)),
        Gate::Fail(reason) => bail!("{reason}"),
    };
    let runtime_root = tempfile::Builder::new().prefix("runtime-root-").tempdir()?;
    let config = RuntimeConfig::default().binary(&runc.binary).root(runtime_root.path());
    let backend = Arc::new(CliBackend::connect(Arc::new(Runc), config).await?);
    let engine_root = tempfile::Builder::new().prefix("engine-root-").tempdir()?;
    let state = engine_root.path().join("state");
    let engine = Engine::new(backend.clone(), Arc::new(monitor), StateRoot::open(&state)?);
    let bundle = bundle.rootfs(Rootfs::Busybox).build()?;
    let id = ContainerId::new(format!("{name}-{}", std::process::id()))?;
    let outcome = case(&engine, &id, bundle.path()).await;
    if outcome.is_err() {
        let _ = backend.delete(&id, DeleteMode::Force).await;
    }
    outcome?;
    crate::support::check_nothing_left(&backend, &state, &[id], [&bundle], Duration::ZERO).await?;
    Ok(Ran::Passed)
}
