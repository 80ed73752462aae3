//! The conformance suite for crun: against the fake on every run, against the real crun when
//! the gate lets it run (the gate also needs a host crun accepts: see `HybridCgroupCheck`).
//! Plus crun's host refusal, on a fake hybrid host.

use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, bail, ensure};
use backend_crun::Crun;
use runtime_core::{CliBackend, CreateOptions, Error, OciBackend};
use testkit::bundle::{BundleBuilder, Rootfs};
use testkit::conformance::{Subject, register};
use testkit::fake::{FakeRuntime, Flavour};

/// A mount table of a hybrid host whose v2 hierarchy (under `dir`) holds hugetlb.
fn hybrid_host(dir: &std::path::Path) -> anyhow::Result<std::path::PathBuf> {
    let unified = dir.join("unified");
    std::fs::create_dir_all(&unified)?;
    std::fs::write(unified.join("cgroup.controllers"), "hugetlb\n")?;
    let mountinfo = dir.join("mountinfo");
    std::fs::write(
        &mountinfo,
        format!(
            "30 25 0:26 / {root} ro - tmpfs tmpfs ro\n\
             31 30 0:27 / {root}/memory rw - cgroup cgroup rw,memory\n\
             35 30 0:30 / {unified} rw - cgroup2 cgroup2 rw,nsdelegate\n",
            root = dir.display(),
            unified = unified.display()
        ),
    )?;
    Ok(mountinfo)
}

async fn create_on_a_hybrid_host_is_refused_before_crun_runs() -> anyhow::Result<()> {
    let fake = FakeRuntime::new(Flavour::Crun)?;
    let host = tempfile::tempdir()?;
    let family = Crun::with_mountinfo(hybrid_host(host.path())?);
    let crun = CliBackend::connect(Arc::new(family), fake.config()).await?;
    let id = runtime_core::ContainerId::new("refused")?;
    let bundle = BundleBuilder::new(["sleep", "1000"]).rootfs(Rootfs::Empty).build()?;
    match crun.create(&id, bundle.path(), CreateOptions::default()).await {
        Err(Error::HostIncompatible { backend, problem, fix }) => {
            ensure!(backend == "crun", "named {backend}");
            ensure!(problem.contains("hugetlb"), "the problem names the controller: {problem}");
            ensure!(fix.contains("mount -t cgroup -o hugetlb"), "the fix says what to mount: {fix}");
        }
        other => bail!("create on a hybrid host: {other:?}"),
    }
    ensure!(std::fs::read_dir(fake.root())?.next().is_none(), "crun never ran: no state under its root");
    let features = crun.features().await.context("features")?;
    ensure!(features.host.reason().is_some_and(|reason| reason.contains("hybrid")), "{:?}", features.host);
    Ok(())
}

fn main() -> ExitCode {
    testkit::harness::main(|suite| {
        // The fake uses no cgroups, so its host check reads an empty mount table.
        register(suite, &Subject::fake(Flavour::Crun, Arc::new(Crun::with_mountinfo("/dev/null"))));
        register(suite, &Subject::real(Arc::new(Crun::default())));
        suite.case(
            "crun::create_on_a_hybrid_host_is_refused_before_crun_runs",
            create_on_a_hybrid_host_is_refused_before_crun_runs,
        );
    })
}
