//! The driver against a runc that misbehaves on cue (the fake's fault injection): each fault
//! gives its typed error, and nothing is left running afterwards.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail, ensure};
use backend_runc::Runc;
use runtime_core::{
    CheckpointOptions, CliBackend, ContainerId, CreateOptions, DeleteMode, Error, ExecOptions, Exit, OciBackend,
    RuntimeConfig, Signal, Status, process,
};
use testkit::bundle::{Bundle, BundleBuilder, Rootfs};
use testkit::fake::{FakeRuntime, Flavour};

struct Rig {
    fake: FakeRuntime,
    runc: CliBackend,
}

impl Rig {
    async fn new(timeout: Duration) -> anyhow::Result<Self> {
        let fake = FakeRuntime::new(Flavour::Runc)?;
        let runc = CliBackend::connect(Arc::new(Runc), RuntimeConfig { timeout, ..fake.config() }).await?;
        Ok(Rig { fake, runc })
    }

    fn bundle(args: &[&str]) -> anyhow::Result<Bundle> {
        BundleBuilder::new(args.iter().copied()).rootfs(Rootfs::Empty).build()
    }

    /// Fails if a container, its state, or a runtime process of this fake is still there.
    async fn assert_nothing_left(&self) -> anyhow::Result<()> {
        std::fs::remove_file(self.fake.root().join("faults")).ok();
        let left = self.runc.list().await.context("list")?;
        ensure!(left.is_empty(), "containers left: {left:?}");
        let root = self.fake.root();
        let runtime_processes = testkit::procs::live_with_argument(root.as_os_str());
        ensure!(runtime_processes.is_empty(), "runtime processes still alive: {runtime_processes:?}");
        Ok(())
    }
}

fn id(name: &str) -> ContainerId {
    ContainerId::new(name).expect("valid id")
}

async fn fail_gives_runtime_failed_with_the_message_and_argv() -> anyhow::Result<()> {
    let rig = Rig::new(Duration::from_secs(30)).await?;
    rig.fake.inject("create", "fail:boom at create")?;
    let bundle = Rig::bundle(&["sleep", "1000"])?;
    match rig.runc.create(&id("f1"), bundle.path(), CreateOptions::default()).await {
        Err(Error::RuntimeFailed(failure)) => {
            ensure!(failure.message == "boom at create", "message {:?}", failure.message);
            ensure!(failure.status == Exit::Exited(1), "status {:?}", failure.status);
            ensure!(failure.argv.iter().any(|arg| arg == "create"), "argv {:?}", failure.argv);
            ensure!(failure.argv.iter().any(|arg| arg == "json"), "asked for JSON logs: {:?}", failure.argv);
        }
        other => bail!("create with fail: {other:?}"),
    }
    rig.assert_nothing_left().await
}

async fn failures_are_classified_by_wording() -> anyhow::Result<()> {
    let rig = Rig::new(Duration::from_secs(30)).await?;
    rig.fake.inject("state", "fail:container does not exist")?;
    rig.fake.inject("start", "fail:cannot start a container that has stopped")?;
    ensure!(matches!(rig.runc.state(&id("gone")).await, Err(Error::NotFound { .. })), "not found");
    ensure!(matches!(rig.runc.start(&id("gone")).await, Err(Error::InvalidState { .. })), "invalid state");
    rig.assert_nothing_left().await
}

async fn hang_times_out_and_kills_the_runtime() -> anyhow::Result<()> {
    let rig = Rig::new(Duration::from_millis(500)).await?;
    rig.fake.inject("create", "hang")?;
    let bundle = Rig::bundle(&["sleep", "1000"])?;
    match rig.runc.create(&id("h1"), bundle.path(), CreateOptions::default()).await {
        Err(Error::Timeout { argv, after }) => {
            ensure!(after == Duration::from_millis(500), "after {after:?}");
            ensure!(argv.iter().any(|arg| arg == "create"), "argv {argv:?}");
        }
        other => bail!("create that hangs: {other:?}"),
    }
    rig.assert_nothing_left().await
}

async fn per_call_timeout_overrides_the_default() -> anyhow::Result<()> {
    let rig = Rig::new(Duration::from_secs(30)).await?;
    rig.fake.inject("create", "slow:3000")?;
    let bundle = Rig::bundle(&["sleep", "1000"])?;
    let opts = CreateOptions { timeout: Some(Duration::from_millis(300)), ..CreateOptions::default() };
    let result = rig.runc.create(&id("s1"), bundle.path(), opts).await;
    ensure!(matches!(result, Err(Error::Timeout { .. })), "slow create past its own timeout: {result:?}");
    rig.assert_nothing_left().await
}

async fn slow_but_within_the_timeout_succeeds() -> anyhow::Result<()> {
    let rig = Rig::new(Duration::from_secs(30)).await?;
    rig.fake.inject("state", "slow:200")?;
    let bundle = Rig::bundle(&["sleep", "1000"])?;
    rig.runc.create(&id("s2"), bundle.path(), CreateOptions::default()).await?;
    ensure!(rig.runc.state(&id("s2")).await?.status == Status::Created, "slow state still answers");
    rig.runc.delete(&id("s2"), DeleteMode::Force).await?;
    rig.assert_nothing_left().await
}

async fn death_by_signal_is_reported_as_such() -> anyhow::Result<()> {
    let rig = Rig::new(Duration::from_secs(30)).await?;
    rig.fake.inject("state", "signal:9")?;
    match rig.runc.state(&id("k1")).await {
        Err(Error::RuntimeFailed(failure)) => {
            ensure!(failure.status == Exit::Signaled(Signal::KILL), "status {:?}", failure.status)
        }
        other => bail!("state killed by SIGKILL: {other:?}"),
    }
    rig.assert_nothing_left().await
}

async fn malformed_json_is_a_parse_error() -> anyhow::Result<()> {
    let rig = Rig::new(Duration::from_secs(30)).await?;
    rig.fake.inject("state", "malformed-json")?;
    rig.fake.inject("ps", "malformed-json")?;
    ensure!(matches!(rig.runc.state(&id("m1")).await, Err(Error::Parse { .. })), "state");
    ensure!(matches!(rig.runc.ps(&id("m1")).await, Err(Error::Parse { .. })), "ps");
    std::fs::remove_file(rig.fake.root().join("faults"))?;
    rig.fake.inject("list", "malformed-json")?;
    ensure!(matches!(rig.runc.list().await, Err(Error::Parse { .. })), "list");
    rig.assert_nothing_left().await
}

async fn missing_pid_file_of_a_detached_exec_is_an_error_and_cleanup_still_works() -> anyhow::Result<()> {
    let rig = Rig::new(Duration::from_secs(30)).await?;
    let bundle = Rig::bundle(&["sleep", "1000"])?;
    let c = id("p1");
    rig.runc.create(&c, bundle.path(), CreateOptions::default()).await?;
    rig.runc.start(&c).await?;
    rig.fake.inject("exec", "no-pid-file")?;
    let opts = ExecOptions { detach: true, ..ExecOptions::default() };
    match rig.runc.exec(&c, &process(["sleep", "1000"]), opts).await {
        Err(Error::Io { context, .. }) => ensure!(context.contains("pid file"), "{context}"),
        other => bail!("detached exec without pid file: {other:?}"),
    }
    let pids = rig.runc.ps(&c).await?;
    rig.runc.delete(&c, DeleteMode::Force).await?;
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let alive = |pid: &u32| testkit::procs::Tracked::capture(*pid).alive();
    while pids.iter().any(alive) {
        ensure!(std::time::Instant::now() < deadline, "processes of {c} survive delete --force: {pids:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    rig.assert_nothing_left().await
}

async fn exec_that_outlives_its_timeout_is_killed() -> anyhow::Result<()> {
    let rig = Rig::new(Duration::from_secs(30)).await?;
    let bundle = Rig::bundle(&["sleep", "1000"])?;
    let c = id("t1");
    rig.runc.create(&c, bundle.path(), CreateOptions::default()).await?;
    rig.runc.start(&c).await?;
    let before = rig.runc.ps(&c).await?;
    let opts = ExecOptions { timeout: Some(Duration::from_millis(500)), ..ExecOptions::default() };
    let outcome = rig.runc.exec(&c, &process(["sleep", "1000"]), opts).await;
    ensure!(matches!(outcome, Err(Error::Timeout { .. })), "exec past its timeout");
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let now = rig.runc.ps(&c).await?;
        if now == before {
            break;
        }
        ensure!(std::time::Instant::now() < deadline, "the exec'd process survives: {now:?} vs {before:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    rig.runc.delete(&c, DeleteMode::Force).await?;
    rig.assert_nothing_left().await
}

async fn captured_output_is_bounded_and_the_rest_drained() -> anyhow::Result<()> {
    let fake = FakeRuntime::new(Flavour::Runc)?;
    let config = RuntimeConfig { output_limit: 1000, ..fake.config() };
    let runc = CliBackend::connect(Arc::new(Runc), config).await?;
    let bundle = Rig::bundle(&["sleep", "1000"])?;
    let c = id("big");
    runc.create(&c, bundle.path(), CreateOptions::default()).await?;
    runc.start(&c).await?;
    // Far more than a pipe holds: the writer must not block on a reader that stopped keeping.
    let flood = process(["sh", "-c", "head -c 1000000 /dev/zero; echo done >&2"]);
    match runc.exec(&c, &flood, ExecOptions::default()).await? {
        runtime_core::ExecOutcome::Exited { code: 0, stdout, stderr } => {
            ensure!(stdout.bytes.len() == 1000, "kept {} bytes", stdout.bytes.len());
            ensure!(stderr.bytes == b"done\n", "the writer ran to its end: {stderr:?}");
        }
        other => bail!("flooding exec: {other:?}"),
    }
    runc.delete(&c, DeleteMode::Force).await?;
    Ok(())
}

async fn missing_binary_is_binary_not_found() -> anyhow::Result<()> {
    match Runc::connect(RuntimeConfig::default().binary("/nonexistent/runc")).await {
        Err(Error::BinaryNotFound { path, .. }) => ensure!(path.ends_with("runc"), "{path:?}"),
        other => bail!("connect to a missing binary: {other:?}"),
    }
    Ok(())
}

async fn broken_criu_makes_checkpoint_unsupported_with_its_reason() -> anyhow::Result<()> {
    let rig = Rig::new(Duration::from_secs(30)).await?;
    rig.fake.break_criu("vdso: Failed to fill self vdso symtable")?;
    let features = rig.runc.features().await?;
    let reason = features.checkpoint.reason().context("checkpoint must be unsupported")?;
    ensure!(reason == "`criu check` failed: vdso: Failed to fill self vdso symtable", "{reason}");
    ensure!(features.restore.reason() == Some(reason), "restore needs CRIU too: {:?}", features.restore);
    let images = tempfile::tempdir()?;
    let opts = CheckpointOptions { image_path: images.path().join("img"), ..CheckpointOptions::default() };
    match rig.runc.checkpoint(&id("never-created"), &opts).await {
        Err(Error::Unsupported { feature, reason: refused, .. }) => {
            ensure!(feature == "checkpoint" && refused == reason, "{feature}: {refused}")
        }
        other => bail!("checkpoint with broken CRIU: {other:?}"),
    }
    rig.assert_nothing_left().await
}

async fn old_criu_makes_checkpoint_unsupported() -> anyhow::Result<()> {
    let rig = Rig::new(Duration::from_secs(30)).await?;
    rig.fake.set_criu_version("2.9")?;
    let features = rig.runc.features().await?;
    let reason = features.checkpoint.reason().context("checkpoint must be unsupported")?;
    ensure!(reason.contains("2.9.0 is older than the 3.0.0"), "{reason}");
    Ok(())
}

fn main() -> ExitCode {
    testkit::harness::main(|suite| {
        suite.case(
            "fault::fail_gives_runtime_failed_with_the_message_and_argv",
            fail_gives_runtime_failed_with_the_message_and_argv,
        );
        suite.case("fault::failures_are_classified_by_wording", failures_are_classified_by_wording);
        suite.case("fault::hang_times_out_and_kills_the_runtime", hang_times_out_and_kills_the_runtime);
        suite.case("fault::per_call_timeout_overrides_the_default", per_call_timeout_overrides_the_default);
        suite.case("fault::slow_but_within_the_timeout_succeeds", slow_but_within_the_timeout_succeeds);
        suite.case("fault::death_by_signal_is_reported_as_such", death_by_signal_is_reported_as_such);
        suite.case("fault::malformed_json_is_a_parse_error", malformed_json_is_a_parse_error);
        suite.case(
            "fault::missing_pid_file_of_a_detached_exec_is_an_error_and_cleanup_still_works",
            missing_pid_file_of_a_detached_exec_is_an_error_and_cleanup_still_works,
        );
        suite.case("fault::exec_that_outlives_its_timeout_is_killed", exec_that_outlives_its_timeout_is_killed);
        suite.case("captured_output_is_bounded_and_the_rest_drained", captured_output_is_bounded_and_the_rest_drained);
        suite.case("missing_binary_is_binary_not_found", missing_binary_is_binary_not_found);
        suite.case(
            "broken_criu_makes_checkpoint_unsupported_with_its_reason",
            broken_criu_makes_checkpoint_unsupported_with_its_reason,
        );
        suite.case("old_criu_makes_checkpoint_unsupported", old_criu_makes_checkpoint_unsupported);
    })
}
