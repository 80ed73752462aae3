//! The driver against a runc that misbehaves on cue (the fake's fault injection): each fault
//! gives its typed error, and nothing is left running afterwards.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail, ensure};
use backend_runc::Runc;
use runtime_core::{
    CheckpointOptions, CliBackend, ContainerId, ContainerStdio, CreateOptions, DeleteMode, Error, ExecOptions,
    ExecStdio, Exit, OciBackend, RuntimeConfig, Signal, Status, process,
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

    /// Fails if a container, its state, or a runtime process of this fake is still there, once
    /// the rollbacks of dropped calls have finished.
    async fn assert_nothing_left(&self) -> anyhow::Result<()> {
        let unfinished = self.runc.settle().await;
        ensure!(unfinished.is_empty(), "rollbacks left something behind: {unfinished:?}");
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

/// The message of an error record runc 1.1.5 wrote to its `--log-format json` log, recorded on
/// this host: `state` of an unknown id, `start` of a stopped container, and a second `create`
/// of an id.
fn runc_said(log: &str) -> anyhow::Result<String> {
    let record: serde_json::Value = serde_json::from_str(log)?;
    record["msg"].as_str().map(str::to_owned).context("an error record has a msg")
}

async fn failures_are_classified_by_wording() -> anyhow::Result<()> {
    let rig = Rig::new(Duration::from_secs(30)).await?;
    let unknown = runc_said(include_str!("../../runtime-core/tests/fixtures/runc-log-state-unknown.json"))?;
    let stopped = runc_said(include_str!("../../runtime-core/tests/fixtures/runc-log-start-stopped.json"))?;
    let exists = runc_said(include_str!("../../runtime-core/tests/fixtures/runc-log-create-exists.json"))?;
    rig.fake.inject("state", &format!("fail:{unknown}"))?;
    rig.fake.inject("start", &format!("fail:{stopped}"))?;
    rig.fake.inject("create", &format!("fail:{exists}"))?;
    let state = rig.runc.state(&id("gone")).await;
    ensure!(matches!(state, Err(Error::NotFound { .. })), "runc's words for an unknown id: {state:?}");
    let start = rig.runc.start(&id("gone")).await;
    ensure!(matches!(start, Err(Error::InvalidState { .. })), "runc's words for a stopped one: {start:?}");
    let bundle = Rig::bundle(&["sleep", "1000"])?;
    let create = rig.runc.create(&id("taken"), bundle.path(), CreateOptions::default()).await;
    ensure!(matches!(create, Err(Error::AlreadyExists { .. })), "runc's words for a taken id: {create:?}");
    rig.assert_nothing_left().await
}

async fn hang_times_out_and_kills_the_runtime() -> anyhow::Result<()> {
    let rig = Rig::new(Duration::from_millis(500)).await?;
    rig.fake.inject("create", "hang")?;
    let bundle = Rig::bundle(&["sleep", "1000"])?;
    match rig.runc.create(&id("h1"), bundle.path(), CreateOptions::default()).await {
        Err(Error::Timeout { argv, after, left_behind: None }) => {
            ensure!(after == Duration::from_millis(500), "after {after:?}");
            ensure!(argv.iter().any(|arg| arg == "create"), "argv {argv:?}");
        }
        other => bail!("create that hangs: {other:?}"),
    }
    rig.assert_nothing_left().await
}

async fn a_create_whose_rollback_hangs_too_ends_within_one_timeout() -> anyhow::Result<()> {
    // Long enough that a rollback with a timeout of its own (twice the time) misses the bound.
    let timeout = Duration::from_secs(3);
    let rig = Rig::new(timeout).await?;
    rig.fake.inject("create", "hang")?;
    rig.fake.inject("delete", "hang")?;
    let bundle = Rig::bundle(&["sleep", "1000"])?;
    let started = std::time::Instant::now();
    let result = rig.runc.create(&id("h2"), bundle.path(), CreateOptions::default()).await;
    let took = started.elapsed();
    ensure!(matches!(result, Err(Error::Timeout { after, .. }) if after == timeout), "create: {result:?}");
    ensure!(took < timeout + Duration::from_secs(2), "took {took:?} with a timeout of {timeout:?}");
    rig.assert_nothing_left().await
}

/// A `sleep` of the test's own, not of any container: what a stale pid file may name.
struct Bystander(std::process::Child);

impl Bystander {
    fn spawn() -> anyhow::Result<Self> {
        Ok(Bystander(std::process::Command::new("sleep").arg("1000").spawn()?))
    }

    fn pid(&self) -> u32 {
        self.0.id()
    }

    fn alive(&mut self) -> anyhow::Result<bool> {
        Ok(self.0.try_wait()?.is_none())
    }
}

impl Drop for Bystander {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

async fn a_stale_pid_file_never_gets_its_process_killed() -> anyhow::Result<()> {
    let rig = Rig::new(Duration::from_millis(600)).await?;
    rig.fake.inject("create", "hang")?;
    let bundle = Rig::bundle(&["sleep", "1000"])?;
    let mut bystander = Bystander::spawn()?;
    let scratch = tempfile::tempdir()?;
    let pid_file = scratch.path().join("left-by-an-earlier-program.pid");
    let opts = || CreateOptions { pid_file: Some(pid_file.clone()), ..CreateOptions::default() };
    // Dropped by the caller while the runtime hangs.
    std::fs::write(&pid_file, bystander.pid().to_string())?;
    let first = id("stale1");
    let dropped = tokio::time::timeout(Duration::from_millis(200), rig.runc.create(&first, bundle.path(), opts()));
    ensure!(dropped.await.is_err(), "the hanging create was given up");
    ensure!(rig.runc.settle().await.is_empty(), "the rollback of the dropped create");
    ensure!(
        bystander.alive()?,
        "the rollback of a dropped create killed {}, named by a stale pid file",
        bystander.pid()
    );
    // Timed out.
    std::fs::write(&pid_file, bystander.pid().to_string())?;
    let result = rig.runc.create(&id("stale2"), bundle.path(), opts()).await;
    ensure!(matches!(result, Err(Error::Timeout { .. })), "create: {result:?}");
    ensure!(bystander.alive()?, "the rollback of a timed-out create killed {}", bystander.pid());
    // An exec that times out.
    std::fs::remove_file(rig.fake.root().join("faults"))?;
    let c = id("stale3");
    rig.runc.create(&c, bundle.path(), CreateOptions::default()).await?;
    rig.runc.start(&c).await?;
    rig.fake.inject("exec", "hang")?;
    std::fs::write(&pid_file, bystander.pid().to_string())?;
    let exec = ExecOptions {
        pid_file: Some(pid_file.clone()),
        timeout: Some(Duration::from_millis(300)),
        ..ExecOptions::default()
    };
    let result = rig.runc.exec(&c, &process(["sleep", "1000"]), exec).await;
    ensure!(matches!(result, Err(Error::Timeout { .. })), "exec: {result:?}");
    ensure!(bystander.alive()?, "the rollback of a timed-out exec killed {}", bystander.pid());
    std::fs::remove_file(rig.fake.root().join("faults"))?;
    rig.runc.delete(&c, DeleteMode::Force).await?;
    rig.assert_nothing_left().await
}

async fn a_rollback_that_fails_is_reported_on_the_timeout() -> anyhow::Result<()> {
    let rig = Rig::new(Duration::from_millis(800)).await?;
    rig.fake.inject("create", "hang")?;
    rig.fake.inject("delete", "fail:device or resource busy")?;
    let bundle = Rig::bundle(&["sleep", "1000"])?;
    match rig.runc.create(&id("rb1"), bundle.path(), CreateOptions::default()).await {
        Err(Error::Timeout { argv, left_behind: Some(problem), .. }) => {
            ensure!(argv.iter().any(|arg| arg == "create"), "the create timed out: {argv:?}");
            match *problem {
                Error::RuntimeFailed(failure) => {
                    ensure!(failure.message == "device or resource busy", "{:?}", failure.message);
                    ensure!(failure.argv.iter().any(|arg| arg == "delete"), "{:?}", failure.argv);
                }
                other => bail!("the rollback's failure: {other:?}"),
            }
        }
        other => bail!("a create whose rollback fails: {other:?}"),
    }
    ensure!(rig.runc.settle().await.is_empty(), "a failure reported on the call is not reported twice");
    rig.assert_nothing_left().await
}

async fn settle_reports_what_the_rollback_of_a_dropped_create_left_behind() -> anyhow::Result<()> {
    let rig = Rig::new(Duration::from_secs(30)).await?;
    rig.fake.inject("create", "hang")?;
    rig.fake.inject("delete", "fail:device or resource busy")?;
    let bundle = Rig::bundle(&["sleep", "1000"])?;
    let c = id("rb2");
    let dropped =
        tokio::time::timeout(Duration::from_millis(200), rig.runc.create(&c, bundle.path(), CreateOptions::default()));
    ensure!(dropped.await.is_err(), "the hanging create was given up");
    let left = rig.runc.settle().await;
    match left.as_slice() {
        [Error::RuntimeFailed(failure)] => {
            ensure!(failure.message == "device or resource busy", "{:?}", failure.message);
            ensure!(failure.argv.iter().any(|arg| arg == "rb2"), "names the container: {:?}", failure.argv);
        }
        other => bail!("what settle reports: {other:?}"),
    }
    ensure!(rig.runc.settle().await.is_empty(), "reported once");
    rig.assert_nothing_left().await
}

async fn a_create_waits_for_the_rollback_of_its_id() -> anyhow::Result<()> {
    let rig = Rig::new(Duration::from_secs(30)).await?;
    let faults = rig.fake.root().join("faults");
    // The rollback's delete starts at once and removes whatever has the id 800 ms later.
    std::fs::write(&faults, "create=hang\ndelete=slow:800\n")?;
    let bundle = Rig::bundle(&["sleep", "1000"])?;
    let c = id("again");
    let dropped =
        tokio::time::timeout(Duration::from_millis(200), rig.runc.create(&c, bundle.path(), CreateOptions::default()));
    ensure!(dropped.await.is_err(), "the hanging create was given up");
    std::fs::write(&faults, "delete=slow:800\n")?;
    let created = rig.runc.create(&c, bundle.path(), CreateOptions::default()).await.context("create again")?;
    // Had the create not waited, the late delete would have removed it by now.
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let state = rig.runc.state(&c).await.context("the new container")?;
    ensure!(state.status == Status::Created && state.pid == Some(created.pid), "{state:?}");
    rig.runc.delete(&c, DeleteMode::Force).await?;
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
    let opts = ExecOptions { detach: true, stdio: ExecStdio::Wired(ContainerStdio::Null), ..ExecOptions::default() };
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
            ensure!(stdout.truncated, "the cut is reported");
            ensure!(stderr.bytes == b"done\n", "the writer ran to its end: {stderr:?}");
            ensure!(!stderr.truncated, "a short stream is whole");
        }
        other => bail!("flooding exec: {other:?}"),
    }
    // The caller can raise the limit for one call.
    let raised = ExecOptions { output_limit: Some(2_000_000), ..ExecOptions::default() };
    match runc.exec(&c, &flood, raised).await? {
        runtime_core::ExecOutcome::Exited { code: 0, stdout, .. } => {
            ensure!(stdout.bytes.len() == 1_000_000 && !stdout.truncated, "kept {} bytes", stdout.bytes.len());
        }
        other => bail!("flooding exec with a raised limit: {other:?}"),
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

async fn a_binary_without_execute_permission_is_not_executable() -> anyhow::Result<()> {
    let fake = FakeRuntime::new(Flavour::Runc)?;
    let dir = tempfile::tempdir()?;
    let plain = dir.path().join("runc");
    std::fs::copy(fake.binary(), &plain)?;
    std::fs::set_permissions(&plain, std::os::unix::fs::PermissionsExt::from_mode(0o644))?;
    match Runc::connect(RuntimeConfig { binary: Some(plain.clone()), ..fake.config() }).await {
        Err(Error::BinaryNotExecutable { path, .. }) => ensure!(path == plain, "{path:?}"),
        other => bail!("connect to a 0644 binary: {other:?}"),
    }
    Ok(())
}

async fn broken_criu_makes_checkpoint_unsupported_with_its_reason() -> anyhow::Result<()> {
    let rig = Rig::new(Duration::from_secs(30)).await?;
    rig.fake.break_criu("vdso: Failed to fill self vdso symtable")?;
    let features = rig.runc.features().await?;
    let wanted = "`criu check` failed: vdso: Failed to fill self vdso symtable";
    let reason = features.checkpoint.reason().context("checkpoint must be unsupported")?;
    ensure!(reason == wanted, "{reason}");
    ensure!(features.restore.reason() == Some(wanted), "restore needs CRIU too: {:?}", features.restore);
    let images = tempfile::tempdir()?;
    let opts = CheckpointOptions { image_path: images.path().join("img"), ..CheckpointOptions::default() };
    match rig.runc.checkpoint(&id("never-created"), &opts).await {
        Err(Error::Unsupported { feature, reason: refused, .. }) => {
            ensure!(feature == "checkpoint" && refused == wanted, "{feature}: {refused}")
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

/// What CRIU 4.1.1 prints for `criu check --feature mem_dirty_track` on a kernel without
/// `CONFIG_MEM_SOFT_DIRTY` (captured on such a host; it exits 1).
const NO_DIRTY_TRACKING: &str = include_str!("../../runtime-core/tests/fixtures/criu-check-mem-dirty-track.txt");

/// `criu check --feature <feature>` of the fake: exit status, stdout, stderr.
fn feature_check(fake: &FakeRuntime, feature: &str) -> anyhow::Result<(Option<i32>, String, String)> {
    let output = std::process::Command::new(fake.criu()).args(["check", "--feature", feature]).output()?;
    let text = |bytes: &[u8]| String::from_utf8_lossy(bytes).into_owned();
    Ok((output.status.code(), text(&output.stdout), text(&output.stderr)))
}

async fn the_fake_criu_answers_feature_checks_as_criu_does() -> anyhow::Result<()> {
    let fake = FakeRuntime::new(Flavour::Runc)?;
    // CRIU 4.1.1's words for a feature the kernel has and for one it does not know.
    let supported = |feature: &str| (Some(0), format!("{feature} is supported\n"), String::new());
    ensure!(feature_check(&fake, "mem_dirty_track")? == supported("mem_dirty_track"), "tracks dirty memory by default");
    ensure!(feature_check(&fake, "uffd-noncoop")? == supported("uffd-noncoop"), "has userfaultfd");
    let unknown = (Some(1), String::new(), "Error (criu/cr-check.c:1866): Unknown feature nonexistent\n".to_owned());
    ensure!(feature_check(&fake, "nonexistent")? == unknown, "an unknown feature");
    fake.disable_dirty_tracking()?;
    let off = (Some(1), String::new(), NO_DIRTY_TRACKING.to_owned());
    ensure!(feature_check(&fake, "mem_dirty_track")? == off, "without dirty tracking");
    ensure!(feature_check(&fake, "uffd-noncoop")? == supported("uffd-noncoop"), "userfaultfd is another feature");
    Ok(())
}

async fn a_kernel_without_dirty_tracking_refuses_pre_dump_with_criu_s_words() -> anyhow::Result<()> {
    let rig = Rig::new(Duration::from_secs(30)).await?;
    rig.fake.disable_dirty_tracking()?;
    let features = rig.runc.features().await?;
    let wanted = "CRIU 4.1.1 cannot track dirty memory: Dirty tracking is OFF. Memory snapshot will not work.";
    ensure!(features.pre_dump.reason() == Some(wanted), "pre-dump: {:?}", features.pre_dump);
    ensure!(
        features.checkpoint.is_supported(),
        "a plain checkpoint needs no dirty tracking: {:?}",
        features.checkpoint
    );
    ensure!(features.lazy_pages.is_supported(), "lazy pages need no dirty tracking: {:?}", features.lazy_pages);
    let bundle = Rig::bundle(&["sleep", "1000"])?;
    let c = id("no-pre-dump");
    rig.runc.create(&c, bundle.path(), CreateOptions::default()).await?;
    rig.runc.start(&c).await?;
    let images = tempfile::tempdir()?;
    let opts =
        CheckpointOptions { image_path: images.path().join("pre"), pre_dump: true, ..CheckpointOptions::default() };
    match rig.runc.checkpoint(&c, &opts).await {
        Err(Error::Unsupported { feature, reason, .. }) => {
            ensure!(feature == "checkpoint --pre-dump" && reason == wanted, "{feature}: {reason}")
        }
        other => bail!("a pre-dump without dirty tracking: {other:?}"),
    }
    ensure!(!opts.image_path.exists(), "runc was not asked: no image directory");
    ensure!(rig.runc.state(&c).await?.status == Status::Running, "the container was not touched");
    rig.runc.delete(&c, DeleteMode::Force).await?;
    rig.assert_nothing_left().await
}

fn main() -> ExitCode {
    testkit::harness::main(|suite| {
        suite.case(
            "fault::fail_gives_runtime_failed_with_the_message_and_argv",
            fail_gives_runtime_failed_with_the_message_and_argv,
        );
        suite.case("fault::failures_are_classified_by_wording", failures_are_classified_by_wording);
        suite.case("fault::hang_times_out_and_kills_the_runtime", hang_times_out_and_kills_the_runtime);
        suite.case(
            "fault::a_create_whose_rollback_hangs_too_ends_within_one_timeout",
            a_create_whose_rollback_hangs_too_ends_within_one_timeout,
        );
        suite.case(
            "fault::a_stale_pid_file_never_gets_its_process_killed",
            a_stale_pid_file_never_gets_its_process_killed,
        );
        suite.case(
            "fault::a_rollback_that_fails_is_reported_on_the_timeout",
            a_rollback_that_fails_is_reported_on_the_timeout,
        );
        suite.case(
            "fault::settle_reports_what_the_rollback_of_a_dropped_create_left_behind",
            settle_reports_what_the_rollback_of_a_dropped_create_left_behind,
        );
        suite.case("fault::a_create_waits_for_the_rollback_of_its_id", a_create_waits_for_the_rollback_of_its_id);
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
            "a_binary_without_execute_permission_is_not_executable",
            a_binary_without_execute_permission_is_not_executable,
        );
        suite.case(
            "broken_criu_makes_checkpoint_unsupported_with_its_reason",
            broken_criu_makes_checkpoint_unsupported_with_its_reason,
        );
        suite.case("old_criu_makes_checkpoint_unsupported", old_criu_makes_checkpoint_unsupported);
        suite.case(
            "the_fake_criu_answers_feature_checks_as_criu_does",
            the_fake_criu_answers_feature_checks_as_criu_does,
        );
        suite.case(
            "a_kernel_without_dirty_tracking_refuses_pre_dump_with_criu_s_words",
            a_kernel_without_dirty_tracking_refuses_pre_dump_with_criu_s_words,
        );
    })
}
