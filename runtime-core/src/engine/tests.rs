//! The engine's decisions, against mocks of the backend and the monitor: which calls it makes,
//! in which order, and what it returns. Time is paused, so timeouts pass at once; a wait that
//! should not end returns a future that never resolves.

use std::future::Future;
use std::pin::Pin;

use mockall::Sequence;
use mockall::predicate::{always, eq};

use super::*;
use crate::contract::error::WrongState;
use crate::contract::error::{Existence, Failure};
use crate::contract::features::{Features, Support};
use crate::contract::monitor::RestoreRequest;
use crate::contract::monitor::{Capability, ContainerFiles};
use crate::contract::options::{CheckpointOptions, RestoreOptions};
use crate::contract::state::ContainerState;
use crate::contract::stats::{EventStream, Stats};
use crate::contract::version::{RuntimeVersion, Version};

mockall::mock! {
    Backend {}
    #[async_trait::async_trait]
    impl OciBackend for Backend {
        fn name(&self) -> &str;
        fn binary(&self) -> &Path;
        fn global_args(&self) -> Vec<std::ffi::OsString>;
        async fn version(&self) -> Result<RuntimeVersion>;
        async fn features(&self) -> Result<Arc<Features>>;
        async fn create(&self, id: &ContainerId, bundle: &Path, opts: CreateOptions) -> Result<Created>;
        fn can_run(&self) -> bool;
        async fn run(&self, id: &ContainerId, bundle: &Path, opts: CreateOptions) -> Result<Created>;
        async fn start(&self, id: &ContainerId) -> Result<()>;
        async fn state(&self, id: &ContainerId) -> Result<ContainerState>;
        async fn list(&self) -> Result<Vec<ContainerState>>;
        async fn kill(&self, id: &ContainerId, signal: Signal, scope: KillScope) -> Result<()>;
        async fn delete(&self, id: &ContainerId, mode: DeleteMode) -> Result<()>;
        async fn pause(&self, id: &ContainerId) -> Result<()>;
        async fn resume(&self, id: &ContainerId) -> Result<()>;
        async fn exec(&self, id: &ContainerId, process: &Process, opts: ExecOptions) -> Result<ExecOutcome>;
        async fn ps(&self, id: &ContainerId) -> Result<Vec<u32>>;
        async fn update(&self, id: &ContainerId, resources: &LinuxResources) -> Result<()>;
        async fn checkpoint(&self, id: &ContainerId, opts: &CheckpointOptions) -> Result<()>;
        async fn restore(&self, id: &ContainerId, bundle: &Path, opts: RestoreOptions) -> Result<Created>;
        async fn stats(&self, id: &ContainerId) -> Result<Stats>;
        async fn events(&self, id: &ContainerId, interval: Duration) -> Result<EventStream>;
    }
}

/// What a mocked monitor's methods return: a future, so that a wait can be one that never ends.
type Answer<'a, T> = Pin<Box<dyn Future<Output = Result<T>> + Send + 'a>>;

// `async_trait` methods written out as what they are, functions returning boxed futures.
mockall::mock! {
    Monitor {}
    impl Monitor for Monitor {
        fn name(&self) -> &str;
        fn capabilities(&self) -> &[Capability];
        fn create<'a, 'b, 'c>(&'a self, backend: &'b dyn OciBackend, req: CreateRequest) -> Answer<'c, Created>
        where 'a: 'c, 'b: 'c, Self: 'c;
        fn restore<'a, 'b, 'c>(&'a self, backend: &'b dyn OciBackend, req: RestoreRequest) -> Answer<'c, Created>
        where 'a: 'c, 'b: 'c, Self: 'c;
        fn exec<'a, 'b, 'c>(&'a self, backend: &'b dyn OciBackend, req: ExecRequest) -> Answer<'c, ExecSession>
        where 'a: 'c, 'b: 'c, Self: 'c;
        fn adopt<'a, 'b, 'c, 'd>(&'a self, id: &'b ContainerId, pid: u32, files: &'c ContainerFiles) -> Answer<'d, ()>
        where 'a: 'd, 'b: 'd, 'c: 'd, Self: 'd;
        fn exit_status<'a, 'b, 'c, 'd>(&'a self, id: &'b ContainerId, files: &'c ContainerFiles)
            -> Answer<'d, Option<Exit>>
        where 'a: 'd, 'b: 'd, 'c: 'd, Self: 'd;
        fn wait<'a, 'b, 'c, 'd>(&'a self, id: &'b ContainerId, files: &'c ContainerFiles) -> Answer<'d, Exit>
        where 'a: 'd, 'b: 'd, 'c: 'd, Self: 'd;
        fn wait_exec<'a, 'b, 'c, 'd>(&'a self, session: &'b ExecSession, files: &'c ContainerFiles)
            -> Answer<'d, Exit>
        where 'a: 'd, 'b: 'd, 'c: 'd, Self: 'd;
        fn stop_exec<'a, 'b, 'c, 'd>(&'a self, session: &'b ExecSession, files: &'c ContainerFiles, timeout: Duration)
            -> Answer<'d, Exit>
        where 'a: 'd, 'b: 'd, 'c: 'd, Self: 'd;
        fn release<'a, 'b, 'c, 'd>(&'a self, id: &'b ContainerId, files: &'c ContainerFiles) -> Answer<'d, ()>
        where 'a: 'd, 'b: 'd, 'c: 'd, Self: 'd;
    }
}

fn ready<'a, T: Send + 'a>(value: Result<T>) -> Answer<'a, T> {
    Box::pin(std::future::ready(value))
}

fn never<'a, T: Send + 'a>() -> Answer<'a, T> {
    Box::pin(std::future::pending())
}

fn id() -> ContainerId {
    ContainerId::new("c1").unwrap()
}

fn refusal(status: i32, message: &str) -> Box<Failure> {
    Box::new(Failure { argv: vec!["runtime".into()], status: Exit::Exited(status), message: message.into() })
}

fn backend() -> MockBackend {
    let mut backend = MockBackend::new();
    backend.expect_name().return_const("mock".to_owned());
    backend
}

/// Every capability a monitor may have.
const ALL_CAPABILITIES: &[Capability] = &[
    Capability::SurvivesEmbedder,
    Capability::Logs,
    Capability::Attach,
    Capability::Resize,
    Capability::Exec,
    Capability::ExecTimeout,
    Capability::Oom,
    Capability::Restore,
];

/// A mocked monitor that can do everything.
fn monitor() -> MockMonitor {
    let mut monitor = monitor_that_can(ALL_CAPABILITIES);
    monitor.expect_name().return_const("mock-monitor".to_owned());
    monitor
}

fn monitor_that_can(capabilities: &'static [Capability]) -> MockMonitor {
    let mut monitor = MockMonitor::new();
    monitor.expect_capabilities().return_const(capabilities.to_vec());
    monitor
}

#[tokio::test]
async fn a_background_exec_is_kept_by_the_monitor_in_the_containers_files_and_found_there_again() {
    let dir = tempfile::tempdir().unwrap();
    let root = StateRoot::open(dir.path()).unwrap();
    // Where the state root keeps container c1, as its layout says.
    let expected = ContainerFiles { exit_file: dir.path().join("exits/c1"), dir: dir.path().join("containers/c1") };
    let mut monitor = monitor();
    let files = expected.clone();
    monitor.expect_exec().times(1).returning(move |_, req| {
        assert_eq!(req.files, files, "exec_detached");
        ready(Ok(ExecSession { id: req.id, pid: 7, exec_id: "e1".into() }))
    });
    let files = expected.clone();
    monitor.expect_wait_exec().times(1).returning(move |session, given| {
        assert_eq!((session.exec_id.as_str(), given), ("e1", &files), "wait_exec");
        ready(Ok(Exit::Exited(5)))
    });
    let files = expected.clone();
    monitor.expect_stop_exec().times(1).returning(move |_, given, _| {
        assert_eq!(given, &files, "exec_stop");
        ready(Ok(Exit::Signaled(Signal::TERM)))
    });
    let engine = Engine::new(Arc::new(backend()), Arc::new(monitor), root);
    let session = engine.exec_detached(&id(), &crate::process(["true"]), ExecOptions::default()).await.unwrap();
    assert_eq!(engine.wait_exec(&session).await.unwrap(), Exit::Exited(5));
    // A session rebuilt from its fields, as a program restarted would.
    let rebuilt = ExecSession { id: id(), pid: 7, exec_id: "e1".into() };
    assert_eq!(engine.exec_stop(&rebuilt, Duration::from_secs(1)).await.unwrap(), Exit::Signaled(Signal::TERM));
}

#[tokio::test]
async fn what_the_monitor_cannot_do_is_refused_naming_it_before_anything_runs() {
    let dir = tempfile::tempdir().unwrap();
    // No expectation on the backend but its name, none on the monitor but its name and
    // capabilities: any runtime call or monitor call would fail the test.
    let mut monitor = monitor_that_can(&[Capability::Oom]);
    monitor.expect_name().return_const("mute".to_owned());
    let engine = Engine::new(Arc::new(backend()), Arc::new(monitor), StateRoot::open(dir.path()).unwrap());
    let unsupported = |result: Result<_>, operation: &str| match result {
        Err(Error::Unsupported { backend, feature, reason }) => {
            assert_eq!(backend, "the mute monitor");
            assert_eq!(feature, operation);
            assert!(reason.starts_with("the mute monitor cannot "), "{reason}");
        }
        other => panic!("{operation}: expected Unsupported, got {other:?}"),
    };
    let process = crate::process(["true"]);
    unsupported(engine.exec_detached(&id(), &process, ExecOptions::default()).await.map(drop), "exec_detached");
    let session = ExecSession { id: id(), pid: 1, exec_id: "1".into() };
    unsupported(engine.wait_exec(&session).await.map(drop), "wait_exec");
    unsupported(engine.exec_stop(&session, Duration::from_secs(1)).await.map(drop), "exec_stop");
    let restored = engine.restore(&id(), Path::new("/b"), ContainerRestoreOptions::default()).await;
    unsupported(restored.map(drop), "restore");
    assert!(std::fs::read_dir(dir.path().join("containers")).unwrap().next().is_none(), "nothing was recorded");
}

/// An engine over the mocks, with `c1` created through it (so its monitor watches it).
async fn engine_with_c1(mut backend: MockBackend, mut monitor: MockMonitor, root: &Path) -> Engine {
    monitor.expect_create().times(1).returning(|_, _| ready(Ok(Created { pid: 4242 })));
    backend.expect_can_run().return_const(false);
    let engine = Engine::new(Arc::new(backend), Arc::new(monitor), StateRoot::open(root).unwrap());
    engine.create(&id(), Path::new("/nonexistent-bundle"), CreateOptions::default()).await.unwrap();
    engine
}

#[tokio::test(start_paused = true)]
async fn stop_sends_term_waits_its_timeout_then_kills_every_process_and_waits_the_grace() {
    let dir = tempfile::tempdir().unwrap();
    let (mut backend, mut monitor) = (backend(), monitor());
    let mut order = Sequence::new();
    monitor.expect_exit_status().times(1).in_sequence(&mut order).returning(|_, _| ready(Ok(None)));
    backend
        .expect_kill()
        .with(eq(id()), eq(Signal::TERM), eq(KillScope::Init))
        .times(1)
        .in_sequence(&mut order)
        .returning(|_, _, _| Ok(()));
    monitor.expect_wait().times(1).in_sequence(&mut order).returning(|_, _| never());
    backend
        .expect_kill()
        .with(eq(id()), eq(Signal::KILL), eq(KillScope::All))
        .times(1)
        .in_sequence(&mut order)
        .returning(|_, _, _| Ok(()));
    monitor.expect_wait().times(1).in_sequence(&mut order).returning(|_, _| ready(Ok(Exit::Signaled(Signal::KILL))));
    let mut engine = engine_with_c1(backend, monitor, dir.path()).await;
    engine.rootless = false;
    let started = tokio::time::Instant::now();
    let exit = engine.stop(&id(), StopOptions { signal: None, timeout: Duration::from_secs(7) }).await.unwrap();
    assert_eq!(exit, Exit::Signaled(Signal::KILL));
    assert_eq!(started.elapsed(), Duration::from_secs(7), "SIGKILL came when the timeout ran out");
}

#[tokio::test(start_paused = true)]
async fn a_rootless_stop_kills_only_the_init() {
    let dir = tempfile::tempdir().unwrap();
    let (mut backend, mut monitor) = (backend(), monitor());
    monitor.expect_exit_status().returning(|_, _| ready(Ok(None)));
    backend.expect_kill().with(eq(id()), eq(Signal::TERM), eq(KillScope::Init)).times(1).returning(|_, _, _| Ok(()));
    backend.expect_kill().with(eq(id()), eq(Signal::KILL), eq(KillScope::Init)).times(1).returning(|_, _, _| Ok(()));
    let mut waits = 0;
    monitor.expect_wait().times(2).returning(move |_, _| {
        waits += 1;
        if waits == 1 { never() } else { ready(Ok(Exit::Signaled(Signal::KILL))) }
    });
    let mut engine = engine_with_c1(backend, monitor, dir.path()).await;
    engine.rootless = true;
    let exit = engine.stop(&id(), StopOptions::default()).await.unwrap();
    assert_eq!(exit, Exit::Signaled(Signal::KILL));
}

#[tokio::test]
async fn a_checkpoint_that_stops_the_container_forgets_its_oom_kill_with_its_exit() {
    let dir = tempfile::tempdir().unwrap();
    let (mut backend, mut monitor) = (backend(), monitor());
    monitor.expect_exit_status().returning(|_, _| ready(Ok(None)));
    monitor.expect_wait().returning(|_, _| ready(Ok(Exit::Signaled(Signal::KILL))));
    monitor.expect_release().returning(|_, _| ready(Ok(())));
    backend.expect_state().returning(|_| Ok(state_of(Status::Running)));
    backend.expect_checkpoint().times(1).returning(|_, _| Ok(()));
    let engine = engine_with_c1(backend, monitor, dir.path()).await;
    // An OOM kill of a process of the container before the dump: not the restored one's.
    let oom = dir.path().join("containers/c1/oom");
    std::fs::write(&oom, "").unwrap();
    engine.checkpoint(&id(), ContainerCheckpointOptions::default()).await.unwrap();
    assert!(!oom.exists(), "the oom file went with the exit");
}

#[tokio::test]
async fn status_reports_an_oom_kill_from_the_oom_file_beside_the_exit_only_once_it_exited() {
    let dir = tempfile::tempdir().unwrap();
    let (mut backend, mut monitor) = (backend(), monitor());
    let mut exited = false;
    monitor.expect_exit_status().returning(move |_, _| {
        // Running at the first question, killed afterwards.
        let answer = exited.then_some(Exit::Signaled(Signal::KILL));
        exited = true;
        ready(Ok(answer))
    });
    backend.expect_state().times(1).returning(|_| Ok(state_of(Status::Running)));
    let engine = engine_with_c1(backend, monitor, dir.path()).await;
    // conmon's shape: an empty file named `oom` in the container's directory.
    let oom = dir.path().join("containers/c1/oom");
    std::fs::write(&oom, "").unwrap();
    let running = engine.status(&id()).await.unwrap();
    assert!(running.exit.is_none() && !running.oom_killed, "not while it runs: {running:?}");
    let status = engine.status(&id()).await.unwrap();
    assert_eq!((status.exit, status.oom_killed), (Some(Exit::Signaled(Signal::KILL)), true));
    std::fs::remove_file(&oom).unwrap();
    assert!(!engine.status(&id()).await.unwrap().oom_killed, "no file, no OOM kill");
}

#[tokio::test(start_paused = true)]
async fn a_container_that_ignores_even_sigkill_is_reported_with_its_pid() {
    let dir = tempfile::tempdir().unwrap();
    let (mut backend, mut monitor) = (backend(), monitor());
    monitor.expect_exit_status().returning(|_, _| ready(Ok(None)));
    backend.expect_kill().times(2).returning(|_, _, _| Ok(()));
    monitor.expect_wait().times(2).returning(|_, _| never());
    let engine = engine_with_c1(backend, monitor, dir.path()).await;
    let started = tokio::time::Instant::now();
    // The grace after SIGKILL, as `stop` documents it: 5 s.
    let grace = Duration::from_secs(5);
    match engine.stop(&id(), StopOptions { signal: None, timeout: Duration::from_secs(1) }).await {
        Err(Error::DidNotStop { id: stuck, pid, waited }) => {
            assert_eq!((stuck.as_str(), pid, waited), ("c1", Some(4242), grace));
        }
        other => panic!("a container that never exits: {other:?}"),
    }
    assert_eq!(started.elapsed(), Duration::from_secs(1) + grace, "bounded by timeout + grace");
}

#[tokio::test(start_paused = true)]
async fn stopping_a_container_the_runtime_no_longer_knows_succeeds_without_a_kill() {
    let dir = tempfile::tempdir().unwrap();
    let (mut backend, mut monitor) = (backend(), monitor());
    monitor.expect_exit_status().times(2).returning(|_, _| ready(Ok(None)));
    backend.expect_kill().with(eq(id()), eq(Signal::TERM), always()).times(1).returning(|id, _, _| {
        Err(Error::NotFound {
            id: Some(id.clone()),
            evidence: Existence::Refused(refusal(1, "container does not exist")),
        })
    });
    let engine = engine_with_c1(backend, monitor, dir.path()).await;
    let exit = engine.stop(&id(), StopOptions::default()).await.unwrap();
    assert_eq!(exit, Exit::Unknown, "gone, and nobody saw how");
}

#[tokio::test(start_paused = true)]
async fn a_stop_signal_the_runtime_fails_to_send_is_returned_without_waiting_or_sigkill() {
    let dir = tempfile::tempdir().unwrap();
    let (mut backend, mut monitor) = (backend(), monitor());
    monitor.expect_exit_status().times(1).returning(|_, _| ready(Ok(None)));
    backend
        .expect_kill()
        .with(eq(id()), eq(Signal::TERM), eq(KillScope::Init))
        .times(1)
        .returning(|_, _, _| Err(Error::RuntimeFailed(refusal(1, "permission denied"))));
    // Neither a wait nor a second kill is expected: the mocks fail the test if one comes.
    let engine = engine_with_c1(backend, monitor, dir.path()).await;
    let started = tokio::time::Instant::now();
    let result = engine.stop(&id(), StopOptions::default()).await;
    assert!(matches!(&result, Err(Error::RuntimeFailed(_))), "{result:?}");
    assert_eq!(started.elapsed(), Duration::ZERO, "returned at once");
}

#[tokio::test(start_paused = true)]
async fn stopping_a_container_whose_exit_was_recorded_sends_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (backend, mut monitor) = (backend(), monitor());
    monitor.expect_exit_status().times(1).returning(|_, _| ready(Ok(Some(Exit::Exited(0)))));
    // No kill is expected: the mock fails the test if one comes.
    let engine = engine_with_c1(backend, monitor, dir.path()).await;
    assert_eq!(engine.stop(&id(), StopOptions::default()).await.unwrap(), Exit::Exited(0));
}

#[tokio::test]
async fn a_run_whose_start_fails_is_deleted_and_released() {
    let dir = tempfile::tempdir().unwrap();
    let (mut backend, mut monitor) = (backend(), monitor());
    let mut order = Sequence::new();
    backend.expect_can_run().return_const(false);
    monitor
        .expect_create()
        .withf(|_, req| req.launch == Launch::Create)
        .times(1)
        .in_sequence(&mut order)
        .returning(|_, _| ready(Ok(Created { pid: 7 })));
    backend
        .expect_start()
        .times(1)
        .in_sequence(&mut order)
        .returning(|_| Err(Error::RuntimeFailed(refusal(1, "exec format error"))));
    backend
        .expect_delete()
        .with(eq(id()), eq(DeleteMode::Force))
        .times(1)
        .in_sequence(&mut order)
        .returning(|_, _| Ok(()));
    monitor.expect_release().times(1).in_sequence(&mut order).returning(|_, _| ready(Ok(())));
    let root = StateRoot::open(dir.path()).unwrap();
    let engine = Engine::new(Arc::new(backend), Arc::new(monitor), root.clone());
    let result = engine.run(&id(), Path::new("/nonexistent-bundle"), CreateOptions::default()).await;
    assert!(matches!(result, Err(Error::RuntimeFailed(_))), "{result:?}");
    assert!(root.records().await.unwrap().is_empty(), "no record of the container is left");
}

#[tokio::test]
async fn a_run_uses_the_runtimes_one_call_when_it_has_one() {
    let dir = tempfile::tempdir().unwrap();
    let (mut backend, mut monitor) = (backend(), monitor());
    backend.expect_can_run().return_const(true);
    monitor
        .expect_create()
        .withf(|_, req| req.launch == Launch::Run)
        .times(1)
        .returning(|_, _| ready(Ok(Created { pid: 7 })));
    // No start is expected.
    let engine = Engine::new(Arc::new(backend), Arc::new(monitor), StateRoot::open(dir.path()).unwrap());
    engine.run(&id(), Path::new("/nonexistent-bundle"), CreateOptions::default()).await.unwrap();
}

#[tokio::test]
async fn a_create_the_runtime_refused_is_not_deleted_and_leaves_no_record() {
    let dir = tempfile::tempdir().unwrap();
    let (backend, mut monitor) = (backend(), monitor());
    monitor.expect_create().times(1).returning(|_, req| {
        let id = req.id.clone();
        ready(Err(Error::AlreadyExists {
            id: Some(id),
            evidence: Existence::Refused(refusal(1, "container with given ID already exists")),
        }))
    });
    // Neither a delete (it would remove the other container) nor a release is expected.
    let root = StateRoot::open(dir.path()).unwrap();
    let engine = Engine::new(Arc::new(backend), Arc::new(monitor), root.clone());
    let result = engine.create(&id(), Path::new("/b"), CreateOptions::default()).await;
    assert!(matches!(result, Err(Error::AlreadyExists { .. })), "{result:?}");
    assert!(root.records().await.unwrap().is_empty());
}

#[tokio::test]
async fn deleting_a_container_the_runtime_no_longer_knows_cleans_up_and_says_not_found() {
    let dir = tempfile::tempdir().unwrap();
    let (mut backend, mut monitor) = (backend(), monitor());
    backend.expect_delete().with(eq(id()), eq(DeleteMode::IfStopped)).times(1).returning(|id, _| {
        Err(Error::NotFound {
            id: Some(id.clone()),
            evidence: Existence::Refused(refusal(1, "container does not exist")),
        })
    });
    monitor.expect_release().times(1).returning(|_, _| ready(Ok(())));
    let engine = engine_with_c1(backend, monitor, dir.path()).await;
    let result = engine.delete(&id(), DeleteMode::IfStopped).await;
    assert!(matches!(result, Err(Error::NotFound { .. })), "{result:?}");
    assert!(engine.state_root().records().await.unwrap().is_empty(), "the engine's record is gone");
    assert!(!dir.path().join("locks/c1").exists(), "and so is the lock file");
}

fn state_of(status: Status) -> ContainerState {
    ContainerState {
        oci_version: "1.0.2".into(),
        id: id(),
        status,
        pid: (status != Status::Stopped).then_some(4242),
        bundle: "/nonexistent-bundle".into(),
        rootfs: None,
        created: None,
        owner: None,
        annotations: Default::default(),
    }
}

/// Features where everything works but restore, which the probes refused for `reason`.
fn features_without_restore(reason: &str) -> Arc<Features> {
    features_with_restore(Support::Unsupported { reason: reason.into(), evidence: Vec::new() })
}

/// Features where everything works, and restore as `restore` says.
fn features_with_restore(restore: Support) -> Arc<Features> {
    let works = || Support::Supported { evidence: Vec::new() };
    let version = Version { major: 0, minor: 7, patch: 0 };
    Arc::new(Features {
        version: RuntimeVersion {
            program: "mock".into(),
            version,
            version_text: "0.7.0".into(),
            commit: None,
            spec: None,
            raw: String::new(),
        },
        checkpoint: works(),
        restore,
        pre_dump: works(),
        lazy_pages: works(),
        features_command: works(),
        document: None,
        json_error_log: works(),
        update: works(),
        cgroup_managers: Default::default(),
        host: works(),
        events: works(),
    })
}

#[tokio::test]
async fn a_checkpoint_of_a_created_container_is_refused_before_the_runtime_dumps() {
    let dir = tempfile::tempdir().unwrap();
    let (mut backend, mut monitor) = (backend(), monitor());
    monitor.expect_exit_status().returning(|_, _| ready(Ok(None)));
    backend.expect_state().times(1).returning(|_| Ok(state_of(Status::Created)));
    backend.expect_checkpoint().never();
    let engine = engine_with_c1(backend, monitor, dir.path()).await;
    let result = engine.checkpoint(&id(), ContainerCheckpointOptions::default()).await;
    let expected = WrongState::Seen { operation: "checkpoint", needs: Status::Running, found: Status::Created };
    assert!(
        matches!(&result, Err(Error::InvalidState { id: Some(refused), evidence }) if *refused == id() && *evidence == expected),
        "{result:?}"
    );
    assert!(!engine.state_root().files(&id()).dir.join("checkpoint").exists(), "no image directory was made");
}

#[tokio::test]
async fn a_checkpoint_of_an_exited_container_is_refused_without_asking_the_runtime() {
    let dir = tempfile::tempdir().unwrap();
    let (mut backend, mut monitor) = (backend(), monitor());
    monitor.expect_exit_status().returning(|_, _| ready(Ok(Some(Exit::Exited(0)))));
    backend.expect_state().never();
    backend.expect_checkpoint().never();
    let engine = engine_with_c1(backend, monitor, dir.path()).await;
    let result = engine.checkpoint(&id(), ContainerCheckpointOptions::default()).await;
    assert!(
        matches!(&result, Err(Error::InvalidState { evidence: WrongState::Seen { found: Status::Stopped, .. }, .. })),
        "{result:?}"
    );
}

#[tokio::test]
async fn a_checkpoint_with_its_previous_names_and_links_the_parent_relatively() {
    let dir = tempfile::tempdir().unwrap();
    let (mut backend, mut monitor) = (backend(), monitor());
    monitor.expect_exit_status().returning(|_, _| ready(Ok(None)));
    backend.expect_state().returning(|_| Ok(state_of(Status::Running)));
    let container_dir = dir.path().join("containers/c1");
    let images = container_dir.join("checkpoint");
    backend
        .expect_checkpoint()
        .withf(move |_, opts| {
            opts.image_path == images && opts.parent_path.as_deref() == Some(Path::new("../pre-checkpoint"))
        })
        .times(1)
        // As a CRIU that resolved the path would leave it.
        .returning(|_, opts| {
            let absolute = opts.image_path.parent().unwrap().join("pre-checkpoint");
            std::os::unix::fs::symlink(absolute, opts.image_path.join("parent")).unwrap();
            Ok(())
        });
    let engine = engine_with_c1(backend, monitor, dir.path()).await;
    std::fs::create_dir_all(container_dir.join("pre-checkpoint")).unwrap();
    let opts = ContainerCheckpointOptions { with_previous: true, leave_running: true, ..Default::default() };
    let report = engine.checkpoint(&id(), opts).await.unwrap();
    assert_eq!(report.images, Some(container_dir.join("checkpoint")));
    let parent = std::fs::read_link(container_dir.join("checkpoint/parent")).unwrap();
    assert_eq!(parent, Path::new("../pre-checkpoint"), "the link moves with the pair");
}

#[tokio::test]
async fn a_checkpoint_with_its_previous_but_no_pre_checkpoint_runs_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (mut backend, mut monitor) = (backend(), monitor());
    monitor.expect_exit_status().returning(|_, _| ready(Ok(None)));
    backend.expect_state().returning(|_| Ok(state_of(Status::Running)));
    backend.expect_checkpoint().never();
    let engine = engine_with_c1(backend, monitor, dir.path()).await;
    let opts = ContainerCheckpointOptions { with_previous: true, ..Default::default() };
    let result = engine.checkpoint(&id(), opts).await;
    let missing = dir.path().join("containers/c1/pre-checkpoint");
    assert_seen_missing(&result, &missing);
}

/// `result` is `NotFound` for `c1`, found by the engine looking for `missing`.
fn assert_seen_missing<T: std::fmt::Debug>(result: &Result<T>, missing: &Path) {
    assert!(
        matches!(result, Err(Error::NotFound { id: Some(c1), evidence: Existence::Seen { path, .. } })
            if *c1 == id() && path == missing),
        "{result:?}"
    );
}

#[tokio::test]
async fn a_restore_with_no_kept_checkpoint_is_not_found_before_the_monitor_is_asked() {
    let dir = tempfile::tempdir().unwrap();
    let (mut backend, mut monitor) = (backend(), monitor());
    backend.expect_features().returning(|| Ok(features_with_restore(Support::Supported { evidence: Vec::new() })));
    monitor.expect_release().returning(|_, _| ready(Ok(())));
    monitor.expect_restore().never();
    let engine = Engine::new(Arc::new(backend), Arc::new(monitor), StateRoot::open(dir.path()).unwrap());
    let result = engine.restore(&id(), Path::new("/b"), ContainerRestoreOptions::default()).await;
    let missing = dir.path().join("containers/c1/checkpoint");
    assert_seen_missing(&result, &missing);
}

#[tokio::test]
async fn a_checkpoint_of_a_checkpointed_container_is_refused_without_asking_the_runtime() {
    let dir = tempfile::tempdir().unwrap();
    let (mut backend, mut monitor) = (backend(), monitor());
    monitor.expect_exit_status().returning(|_, _| ready(Ok(None)));
    monitor.expect_wait().returning(|_, _| ready(Ok(Exit::Signaled(Signal::KILL))));
    monitor.expect_release().returning(|_, _| ready(Ok(())));
    // One state call, before the first dump; the second checkpoint asks the runtime nothing
    // (runc would say it no longer knows the container).
    backend.expect_state().times(1).returning(|_| Ok(state_of(Status::Running)));
    backend.expect_checkpoint().times(1).returning(|_, _| Ok(()));
    let engine = engine_with_c1(backend, monitor, dir.path()).await;
    engine.checkpoint(&id(), ContainerCheckpointOptions::default()).await.unwrap();
    let result = engine.checkpoint(&id(), ContainerCheckpointOptions::default()).await;
    let expected = WrongState::Seen { operation: "checkpoint", needs: Status::Running, found: Status::Stopped };
    assert!(
        matches!(&result, Err(Error::InvalidState { id: Some(c1), evidence }) if *c1 == id() && *evidence == expected),
        "{result:?}"
    );
    assert!(dir.path().join("containers/c1/checkpoint").is_dir(), "the first checkpoint's images are kept");
}

#[tokio::test]
async fn a_restore_on_a_backend_that_cannot_is_refused_before_the_archive_is_opened() {
    let dir = tempfile::tempdir().unwrap();
    let (mut backend, mut monitor) = (backend(), monitor());
    backend.expect_features().returning(|| Ok(features_without_restore("error: unrecognized subcommand 'restore'")));
    monitor.expect_restore().never();
    let root = StateRoot::open(dir.path()).unwrap();
    let engine = Engine::new(Arc::new(backend), Arc::new(monitor), root);
    // The archive does not exist: opening it would fail with another error.
    let opts = ContainerRestoreOptions { import: Some(dir.path().join("no-such.tar")), ..Default::default() };
    let result = engine.restore(&id(), Path::new("/b"), opts).await;
    assert!(
        matches!(&result, Err(Error::Unsupported { feature, reason, .. })
            if feature == "restore" && reason == "error: unrecognized subcommand 'restore'"),
        "{result:?}"
    );
    assert!(!engine.state_root().files(&id()).dir.exists(), "nothing was made for the container");
}

#[tokio::test]
async fn a_container_a_checkpoint_stopped_is_reported_checkpointed_and_deleted_with_its_images() {
    let dir = tempfile::tempdir().unwrap();
    let (mut backend, mut monitor) = (backend(), monitor());
    monitor.expect_exit_status().returning(|_, _| ready(Ok(None)));
    monitor.expect_wait().returning(|_, _| ready(Ok(Exit::Signaled(Signal::KILL))));
    monitor.expect_release().returning(|_, _| ready(Ok(())));
    // One state call, before the dump: afterwards the runtime is not asked.
    backend.expect_state().times(1).returning(|_| Ok(state_of(Status::Running)));
    backend.expect_checkpoint().times(1).returning(|_, _| Ok(()));
    backend.expect_delete().times(1).returning(|id, _| {
        Err(Error::NotFound {
            id: Some(id.clone()),
            evidence: Existence::Refused(refusal(1, "container does not exist")),
        })
    });
    let engine = engine_with_c1(backend, monitor, dir.path()).await;
    engine.checkpoint(&id(), ContainerCheckpointOptions::default()).await.unwrap();
    let status = engine.status(&id()).await.unwrap();
    assert_eq!(
        status,
        ContainerStatus { id: id(), status: Status::Stopped, exit: None, oom_killed: false, checkpointed: true }
    );
    assert_eq!(engine.list().await.unwrap(), vec![status]);
    engine.delete(&id(), DeleteMode::IfStopped).await.unwrap();
    assert!(!dir.path().join("containers/c1").exists(), "the images went with it");
}

#[tokio::test]
async fn an_export_onto_an_existing_file_is_refused_before_the_dump() {
    let dir = tempfile::tempdir().unwrap();
    let (mut backend, mut monitor) = (backend(), monitor());
    monitor.expect_exit_status().returning(|_, _| ready(Ok(None)));
    backend.expect_state().returning(|_| Ok(state_of(Status::Running)));
    backend.expect_checkpoint().never();
    let engine = engine_with_c1(backend, monitor, dir.path()).await;
    let existing = dir.path().join("earlier.tar");
    std::fs::write(&existing, "an earlier archive").unwrap();
    let export = Export { path: existing.clone(), compression: crate::checkpoint::Compression::None };
    let result =
        engine.checkpoint(&id(), ContainerCheckpointOptions { export: Some(export), ..Default::default() }).await;
    assert!(
        matches!(&result, Err(Error::AlreadyExists { id: Some(c1), evidence: Existence::Seen { path, .. } })
            if *c1 == id() && *path == existing),
        "{result:?}"
    );
    assert_eq!(std::fs::read_to_string(&existing).unwrap(), "an earlier archive", "left as it was");
    let dangling = dir.path().join("dangling.tar");
    std::os::unix::fs::symlink(dir.path().join("nowhere"), &dangling).unwrap();
    let export = Export { path: dangling.clone(), compression: crate::checkpoint::Compression::None };
    let result =
        engine.checkpoint(&id(), ContainerCheckpointOptions { export: Some(export), ..Default::default() }).await;
    assert!(
        matches!(&result, Err(Error::AlreadyExists { evidence: Existence::Seen { path, .. }, .. }) if *path == dangling),
        "a dangling link where the archive would go: {result:?}"
    );
}

/// A record of `c1` as an engine of `backend` under `monitor` writes it.
fn record_by(backend: &str, monitor: &str) -> ContainerRecord {
    ContainerRecord {
        id: id(),
        bundle: "/b".into(),
        backend: backend.into(),
        monitor: monitor.into(),
        pid: Some(4242),
        stop_signal: 15,
        checkpointed: false,
    }
}

#[tokio::test]
async fn reconnecting_to_a_root_of_another_backend_or_monitor_is_refused_naming_both() {
    for (found_backend, found_monitor) in [("youki", "mock-monitor"), ("mock", "conmon")] {
        let dir = tempfile::tempdir().unwrap();
        let root = StateRoot::open(dir.path()).unwrap();
        root.save(&record_by(found_backend, found_monitor)).await.unwrap();
        let (backend, monitor) = (backend(), monitor());
        // Neither the runtime nor the monitor is asked anything: the mocks fail the test if so.
        let result = Engine::reconnect(Arc::new(backend), Arc::new(monitor), root).await;
        match result {
            Err(Error::ForeignStateRoot { id: found, found_backend: b, found_monitor: m, backend, monitor }) => {
                assert_eq!(found, id());
                assert_eq!((b.as_str(), m.as_str()), (found_backend, found_monitor));
                assert_eq!((backend.as_str(), monitor.as_str()), ("mock", "mock-monitor"));
            }
            other => panic!("a root written by {found_backend} under {found_monitor}: {other:?}"),
        }
        assert!(dir.path().join("containers/c1/record.json").is_file(), "its record is left as it was");
    }
}

#[tokio::test]
async fn reconnecting_to_a_root_of_the_same_backend_and_monitor_finds_its_containers() {
    let dir = tempfile::tempdir().unwrap();
    let root = StateRoot::open(dir.path()).unwrap();
    root.save(&record_by("mock", "mock-monitor")).await.unwrap();
    let (mut backend, mut monitor) = (backend(), monitor());
    monitor.expect_exit_status().times(1).returning(|_, _| ready(Ok(None)));
    backend.expect_state().times(1).returning(|_| Ok(state_of(Status::Running)));
    monitor.expect_adopt().with(eq(id()), eq(4242), always()).times(1).returning(|_, _, _| ready(Ok(())));
    let engine = Engine::reconnect(Arc::new(backend), Arc::new(monitor), root).await.unwrap();
    assert!(engine.is_watched(&id()));
}

#[tokio::test]
async fn a_relative_bundle_is_given_and_recorded_absolute_from_the_current_directory() {
    let dir = tempfile::tempdir().unwrap();
    let absolute = std::env::current_dir().unwrap().join("relative-bundle");
    let (mut backend, mut monitor) = (backend(), monitor());
    backend.expect_can_run().return_const(true);
    let given = absolute.clone();
    monitor
        .expect_create()
        .withf(move |_, req| req.bundle == given)
        .times(1)
        .returning(|_, _| ready(Ok(Created { pid: 7 })));
    let root = StateRoot::open(dir.path()).unwrap();
    let engine = Engine::new(Arc::new(backend), Arc::new(monitor), root.clone());
    engine.run(&id(), Path::new("relative-bundle"), CreateOptions::default()).await.unwrap();
    assert_eq!(root.load(&id()).await.unwrap().unwrap().bundle, absolute);
}

#[tokio::test]
async fn a_relative_bundle_is_restored_and_recorded_absolute_from_the_current_directory() {
    let dir = tempfile::tempdir().unwrap();
    let absolute = std::env::current_dir().unwrap().join("relative-bundle");
    let (mut backend, mut monitor) = (backend(), monitor());
    backend.expect_features().returning(|| Ok(features_with_restore(Support::Supported { evidence: Vec::new() })));
    monitor.expect_release().returning(|_, _| ready(Ok(())));
    let given = absolute.clone();
    monitor
        .expect_restore()
        .withf(move |_, req| req.bundle == given)
        .times(1)
        .returning(|_, _| ready(Ok(Created { pid: 7 })));
    let root = StateRoot::open(dir.path()).unwrap();
    std::fs::create_dir_all(root.files(&id()).dir.join("checkpoint")).unwrap();
    let engine = Engine::new(Arc::new(backend), Arc::new(monitor), root.clone());
    engine.restore(&id(), Path::new("relative-bundle"), ContainerRestoreOptions::default()).await.unwrap();
    assert_eq!(root.load(&id()).await.unwrap().unwrap().bundle, absolute);
}

#[tokio::test]
async fn an_empty_bundle_path_is_refused_before_the_monitor_is_asked() {
    let dir = tempfile::tempdir().unwrap();
    let (mut backend, mut monitor) = (backend(), monitor());
    backend.expect_can_run().return_const(true);
    monitor.expect_create().never();
    let engine = Engine::new(Arc::new(backend), Arc::new(monitor), StateRoot::open(dir.path()).unwrap());
    let result = engine.create(&id(), Path::new(""), CreateOptions::default()).await;
    assert!(matches!(&result, Err(Error::InvalidArgument { option, .. }) if option == "bundle"), "{result:?}");
}

/// The direct monitor, but `create` returns only once the init has exited and its exit was
/// recorded: the ordering of an init that exits before the engine has saved anything.
#[derive(Debug, Default)]
struct ExitsBeforeCreateReturns(DirectMonitor);

#[async_trait::async_trait]
impl Monitor for ExitsBeforeCreateReturns {
    fn name(&self) -> &str {
        self.0.name()
    }
    fn capabilities(&self) -> &[Capability] {
        self.0.capabilities()
    }
    async fn create(&self, backend: &dyn OciBackend, req: CreateRequest) -> Result<Created> {
        let (id, files) = (req.id.clone(), req.files.clone());
        let created = self.0.create(backend, req).await?;
        self.0.wait(&id, &files).await?;
        Ok(created)
    }
    async fn restore(&self, backend: &dyn OciBackend, req: RestoreRequest) -> Result<Created> {
        self.0.restore(backend, req).await
    }
    async fn exec(&self, backend: &dyn OciBackend, req: ExecRequest) -> Result<ExecSession> {
        self.0.exec(backend, req).await
    }
    async fn adopt(&self, id: &ContainerId, pid: u32, files: &ContainerFiles) -> Result<()> {
        self.0.adopt(id, pid, files).await
    }
    async fn exit_status(&self, id: &ContainerId, files: &ContainerFiles) -> Result<Option<Exit>> {
        self.0.exit_status(id, files).await
    }
    async fn wait(&self, id: &ContainerId, files: &ContainerFiles) -> Result<Exit> {
        self.0.wait(id, files).await
    }
    async fn wait_exec(&self, session: &ExecSession, files: &ContainerFiles) -> Result<Exit> {
        self.0.wait_exec(session, files).await
    }
    async fn stop_exec(&self, session: &ExecSession, files: &ContainerFiles, timeout: Duration) -> Result<Exit> {
        self.0.stop_exec(session, files, timeout).await
    }
    async fn release(&self, id: &ContainerId, files: &ContainerFiles) -> Result<()> {
        self.0.release(id, files).await
    }
}

/// A backend whose `run` starts `script` as the container's init, a child of this process
/// that the monitor under test reaps.
#[allow(clippy::zombie_processes)]
fn backend_running(script: &'static str) -> MockBackend {
    let mut backend = backend();
    backend.expect_can_run().return_const(true);
    backend.expect_run().returning(move |_, _, _| {
        let child = std::process::Command::new("sh").args(["-c", script]).spawn().unwrap();
        Ok(Created { pid: child.id() })
    });
    backend
}

#[tokio::test]
async fn an_init_that_exits_before_its_record_is_saved_keeps_its_code_across_a_reconnect() {
    let dir = tempfile::tempdir().unwrap();
    let root = StateRoot::open(dir.path()).unwrap();
    let engine =
        Engine::new(Arc::new(backend_running("exit 42")), Arc::new(ExitsBeforeCreateReturns::default()), root.clone());
    engine.run(&id(), Path::new("/nonexistent-bundle"), CreateOptions::default()).await.unwrap();
    assert_eq!(engine.wait(&id()).await.unwrap(), Exit::Exited(42), "in the same engine");
    drop(engine);

    // No runtime call is expected: the record and the exit file say it all.
    let reconnected = Engine::reconnect(Arc::new(backend()), Arc::new(DirectMonitor::new()), root).await.unwrap();
    let status = reconnected.status(&id()).await.unwrap();
    assert_eq!((status.status, status.exit), (Status::Stopped, Some(Exit::Exited(42))), "{status:?}");
    assert_eq!(reconnected.wait(&id()).await.unwrap(), Exit::Exited(42));
}

#[tokio::test]
async fn a_code_above_128_and_a_kill_read_the_same_live_and_after_a_reconnect() {
    for (script, expected) in [("exit 137", Exit::Exited(137)), ("kill -KILL $$", Exit::Signaled(Signal::KILL))] {
        let dir = tempfile::tempdir().unwrap();
        let root = StateRoot::open(dir.path()).unwrap();
        let engine = Engine::new(Arc::new(backend_running(script)), Arc::new(DirectMonitor::new()), root.clone());
        engine.run(&id(), Path::new("/nonexistent-bundle"), CreateOptions::default()).await.unwrap();
        assert_eq!(engine.wait(&id()).await.unwrap(), expected, "live: {script}");
        drop(engine);
        let reconnected = Engine::reconnect(Arc::new(backend()), Arc::new(DirectMonitor::new()), root).await.unwrap();
        assert_eq!(reconnected.status(&id()).await.unwrap().exit, Some(expected), "after a reconnect: {script}");
    }
}

#[tokio::test]
#[allow(clippy::zombie_processes)] // the monitor under test reaps the inits
async fn a_container_deleted_outside_the_engine_leaves_no_exit_to_the_next_of_its_id() {
    let dir = tempfile::tempdir().unwrap();
    let root = StateRoot::open(dir.path()).unwrap();
    let mut first = backend_running("exit 3");
    // Between the two runs the runtime's container was deleted by someone else.
    first.expect_state().returning(|id| {
        Err(Error::NotFound {
            id: Some(id.clone()),
            evidence: Existence::Refused(refusal(1, "container does not exist")),
        })
    });
    let engine = Engine::new(Arc::new(first), Arc::new(DirectMonitor::new()), root.clone());
    engine.run(&id(), Path::new("/nonexistent-bundle"), CreateOptions::default()).await.unwrap();
    assert_eq!(engine.wait(&id()).await.unwrap(), Exit::Exited(3));
    assert!(root.files(&id()).exit_file.exists());

    let mut second = backend();
    second.expect_state().returning(|id| {
        Err(Error::NotFound {
            id: Some(id.clone()),
            evidence: Existence::Refused(refusal(1, "container does not exist")),
        })
    });
    second.expect_can_run().return_const(true);
    second.expect_run().returning(|_, _, _| {
        let child = std::process::Command::new("sleep").arg("1000").spawn().unwrap();
        Ok(Created { pid: child.id() })
    });
    let engine = Engine::new(Arc::new(second), Arc::new(DirectMonitor::new()), root.clone());
    let created = engine.run(&id(), Path::new("/nonexistent-bundle"), CreateOptions::default()).await.unwrap();
    assert!(!root.files(&id()).exit_file.exists(), "the earlier container's exit is gone");
    assert_eq!(engine.monitor.exit_status(&id(), &root.files(&id())).await.unwrap(), None);
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(created.pid as i32), nix::sys::signal::Signal::SIGKILL).unwrap();
    assert_eq!(engine.wait(&id()).await.unwrap(), Exit::Signaled(Signal::KILL));
}

#[tokio::test]
async fn a_restore_that_fails_after_the_runtime_restored_deletes_the_container_and_keeps_the_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let (mut backend, mut monitor) = (backend(), monitor());
    let mut features = (*features_without_restore("")).clone();
    features.restore = crate::contract::features::Support::Supported { evidence: Vec::new() };
    let features = Arc::new(features);
    backend.expect_features().returning(move || Ok(features.clone()));
    monitor.expect_release().returning(|_, _| ready(Ok(())));
    monitor.expect_restore().times(1).returning(|_, _| ready(Ok(Created { pid: 4343 })));
    // The restored container is deleted again.
    backend.expect_delete().with(eq(id()), eq(DeleteMode::Force)).times(1).returning(|_, _| Ok(()));
    let root = StateRoot::open(dir.path()).unwrap();
    let checkpointed = ContainerRecord {
        id: id(),
        bundle: "/b".into(),
        backend: "mock".into(),
        monitor: "mock-monitor".into(),
        pid: Some(4242),
        stop_signal: 15,
        checkpointed: true,
    };
    root.save(&checkpointed).await.unwrap();
    let images = root.files(&id()).dir.join(crate::checkpoint::CHECKPOINT_DIR);
    std::fs::create_dir(&images).unwrap();
    let engine = Engine::new(Arc::new(backend), Arc::new(monitor), root.clone());
    // The images hold no CRIU statistics, so reading them fails once the runtime restored.
    let opts = ContainerRestoreOptions { statistics: true, ..Default::default() };
    let result = engine.restore(&id(), Path::new("/b"), opts).await;
    assert!(result.is_err(), "{result:?}");
    assert_eq!(root.load(&id()).await.unwrap(), Some(checkpointed), "the checkpoint is still recorded as such");
    assert!(images.is_dir(), "and its images are kept");
}

#[tokio::test(start_paused = true)]
async fn a_call_on_a_container_whose_lock_another_call_holds_gives_up_after_the_lock_wait() {
    let dir = tempfile::tempdir().unwrap();
    let wait = Duration::from_secs(3);
    // No expectation on the backend: nothing may run.
    let engine = Engine::new(
        Arc::new(backend()),
        Arc::new(monitor()),
        StateRoot::open(dir.path()).unwrap().with_lock_wait(wait),
    );
    let _held = StateRoot::open(dir.path()).unwrap().lock(&id()).await.unwrap();
    let started = tokio::time::Instant::now();
    match engine.start(&id()).await {
        Err(Error::WaitTimeout { after, .. }) => assert_eq!(after, wait),
        other => panic!("start while another call holds the lock: {other:?}"),
    }
    assert!(started.elapsed() >= wait, "it waited the whole bound: {:?}", started.elapsed());
}

#[tokio::test]
async fn attach_resize_and_logs_of_containers_and_execs_are_refused_naming_a_monitor_without_them_before_anything_runs()
{
    let dir = tempfile::tempdir().unwrap();
    // Neither the backend nor the monitor expects a call but its name and capabilities.
    let mut monitor = monitor_that_can(&[Capability::Oom]);
    monitor.expect_name().return_const("mute".to_owned());
    let engine = Engine::new(Arc::new(backend()), Arc::new(monitor), StateRoot::open(dir.path()).unwrap());
    let refused = |result: Result<()>, operation: &str, cannot: &str| match result {
        Err(Error::Unsupported { backend, feature, reason }) => {
            assert_eq!((backend.as_str(), feature.as_str()), ("the mute monitor", operation));
            assert_eq!(reason, format!("the mute monitor cannot {cannot}"));
        }
        other => panic!("{operation}: expected Unsupported, got {other:?}"),
    };
    refused(engine.attach(&id()).await.map(drop), "attach", "attach to a container's stdio");
    let size = crate::TerminalSize { rows: 24, cols: 80 };
    refused(engine.resize(&id(), size).await, "resize", "resize a container's terminal");
    let session = ExecSession { id: id(), pid: 42, exec_id: "e1".into() };
    refused(engine.attach_exec(&session).await.map(drop), "attach_exec", "attach to a container's stdio");
    refused(engine.resize_exec(&session, size).await, "resize_exec", "resize a container's terminal");
    refused(engine.reopen_log(&id()).await, "reopen_log", "keep and read back a container's output log");
    let logs = engine.logs(&id(), crate::LogOptions::default()).await.map(drop);
    refused(logs, "logs", "keep and read back a container's output log");
}

#[tokio::test]
async fn a_terminal_of_no_rows_or_no_columns_is_refused_before_the_monitor_is_asked() {
    let dir = tempfile::tempdir().unwrap();
    let mut monitor = monitor_that_can(&[Capability::Resize]);
    monitor.expect_name().return_const("tty".to_owned());
    let engine = Engine::new(Arc::new(backend()), Arc::new(monitor), StateRoot::open(dir.path()).unwrap());
    for (rows, cols) in [(0, 80), (24, 0)] {
        let size = crate::TerminalSize { rows, cols };
        let session = ExecSession { id: id(), pid: 42, exec_id: "e1".into() };
        for result in [engine.resize(&id(), size).await, engine.resize_exec(&session, size).await] {
            assert!(
                matches!(&result, Err(Error::InvalidArgument { option, .. }) if option == "TerminalSize"),
                "{result:?}"
            );
        }
    }
}

#[tokio::test]
async fn the_direct_monitor_refuses_an_exit_command_and_the_sd_notify_relay_before_anything_runs() {
    use crate::{ExitCommand, SystemdPassthrough};
    let dir = tempfile::tempdir().unwrap();
    // The backend expects no create and no run: either would fail the test.
    let mut backend = backend();
    backend.expect_can_run().return_const(true);
    let engine =
        Engine::new(Arc::new(backend), Arc::new(DirectMonitor::default()), StateRoot::open(dir.path()).unwrap());
    let exit_command = ExitCommand { path: "/usr/bin/true".into(), args: vec!["cleanup".into()], delay_secs: 0 };
    let relay = SystemdPassthrough { sdnotify_socket: Some("/run/systemd/notify".into()), ..Default::default() };
    let replace = SystemdPassthrough { replace_listen_pid: true, ..Default::default() };
    let refusals = [
        (CreateOptions { exit_command: Some(exit_command), ..CreateOptions::default() }, "CreateOptions::exit_command"),
        (CreateOptions { systemd: relay, ..CreateOptions::default() }, "CreateOptions::systemd.sdnotify_socket"),
        (CreateOptions { systemd: replace, ..CreateOptions::default() }, "CreateOptions::systemd.replace_listen_pid"),
    ];
    for (opts, option) in refusals {
        match engine.run(&id(), Path::new("/nonexistent-bundle"), opts).await {
            Err(Error::Unsupported { backend, feature, .. }) => {
                assert_eq!((backend.as_str(), feature.as_str()), ("the direct monitor", option));
            }
            other => panic!("{option}: expected Unsupported, got {other:?}"),
        }
    }
    // A restore's exit command, refused by the monitor before the backend is asked to restore.
    let exit_command = ExitCommand { path: "/usr/bin/true".into(), args: Vec::new(), delay_secs: 0 };
    let options = RestoreOptions { exit_command: Some(exit_command), ..RestoreOptions::default() };
    let files = ContainerFiles { dir: dir.path().join("c"), exit_file: dir.path().join("exit") };
    let request = RestoreRequest { id: id(), bundle: "/nonexistent-bundle".into(), options, files };
    match DirectMonitor::default().restore(&self::backend(), request).await {
        Err(Error::Unsupported { backend, feature, .. }) => {
            assert_eq!((backend.as_str(), feature.as_str()), ("the direct monitor", "RestoreOptions::exit_command"));
        }
        other => panic!("a restore's exit command: expected Unsupported, got {other:?}"),
    }
}

#[tokio::test]
async fn the_direct_monitor_refuses_a_log_it_cannot_keep_and_a_stdin_for_attach_before_anything_runs() {
    use crate::{AttachStdin, LogDriver, MonitorStdio};
    let dir = tempfile::tempdir().unwrap();
    // The backend expects no create and no run: either would fail the test.
    let mut backend = backend();
    backend.expect_can_run().return_const(true);
    let engine =
        Engine::new(Arc::new(backend), Arc::new(DirectMonitor::default()), StateRoot::open(dir.path()).unwrap());
    let k8s_file = LogDriver::K8sFile { path: None, max_size: None };
    let refusals = [
        (MonitorStdio { log: k8s_file, ..MonitorStdio::default() }, "LogDriver::K8sFile", "keep and read back"),
        (
            MonitorStdio { log: LogDriver::Journald { tag: None }, ..MonitorStdio::default() },
            "LogDriver::Journald",
            "send",
        ),
        (
            MonitorStdio { stdin: AttachStdin::UntilDetach, ..MonitorStdio::default() },
            "AttachStdin::UntilDetach",
            "attach",
        ),
        (MonitorStdio { stdin: AttachStdin::KeptOpen, ..MonitorStdio::default() }, "AttachStdin::KeptOpen", "attach"),
    ];
    for (monitor_stdio, operation, cannot) in refusals {
        let opts = CreateOptions { monitor_stdio: monitor_stdio.clone(), ..CreateOptions::default() };
        match engine.run(&id(), Path::new("/nonexistent-bundle"), opts).await {
            Err(Error::Unsupported { backend, feature, reason }) => {
                assert_eq!((backend.as_str(), feature.as_str()), ("the direct monitor", operation));
                assert!(reason.starts_with(&format!("the direct monitor cannot {cannot}")), "{reason}");
            }
            other => panic!("{monitor_stdio:?}: expected Unsupported, got {other:?}"),
        }
        // A restore is refused by the monitor itself, before the runtime is asked.
        let files = engine.root.files(&id());
        let options = RestoreOptions { monitor_stdio, ..RestoreOptions::default() };
        let request = RestoreRequest { id: id(), bundle: "/nonexistent-bundle".into(), options, files };
        let restored = DirectMonitor::default().restore(engine.backend(), request).await;
        assert!(matches!(&restored, Err(Error::Unsupported { feature, .. }) if feature == operation), "{restored:?}");
    }
    let dropped_but_wired = CreateOptions {
        monitor_stdio: MonitorStdio { log: LogDriver::None, ..MonitorStdio::default() },
        stdio: crate::ContainerStdio::Inherit,
        ..CreateOptions::default()
    };
    let result = engine.run(&id(), Path::new("/nonexistent-bundle"), dropped_but_wired).await;
    assert!(
        matches!(&result, Err(Error::InvalidArgument { option, .. }) if option == "MonitorStdio::log"),
        "{result:?}"
    );
    assert!(std::fs::read_dir(dir.path().join("containers")).unwrap().next().is_none(), "nothing was kept");
}

/// Reconnects to a root holding `c1`, which stopped while nobody watched and whose exit is not
/// recorded yet, under a monitor that can `capabilities` and whose wait would say `Exited(42)`;
/// returns what `wait` then says.
async fn wait_after_reconnecting_to_an_unrecorded_stop(capabilities: &'static [Capability]) -> Exit {
    let dir = tempfile::tempdir().unwrap();
    let root = StateRoot::open(dir.path()).unwrap();
    root.save(&record_by("mock", "mock-monitor")).await.unwrap();
    let (mut backend, mut monitor) = (backend(), monitor_that_can(capabilities));
    monitor.expect_name().return_const("mock-monitor".to_owned());
    monitor.expect_exit_status().returning(|_, _| ready(Ok(None)));
    backend.expect_state().returning(|_| Ok(state_of(Status::Stopped)));
    monitor.expect_wait().returning(|_, _| ready(Ok(Exit::Exited(42))));
    let engine = Engine::reconnect(Arc::new(backend), Arc::new(monitor), root).await.unwrap();
    engine.wait(&id()).await.unwrap()
}

#[tokio::test]
async fn a_monitor_that_outlives_its_embedder_is_waited_for_a_stop_it_has_not_recorded_yet() {
    let exit = wait_after_reconnecting_to_an_unrecorded_stop(&[Capability::SurvivesEmbedder]).await;
    assert_eq!(exit, Exit::Exited(42), "conmon records the exit a moment after the runtime sees the stop");
    let exit = wait_after_reconnecting_to_an_unrecorded_stop(&[Capability::Oom]).await;
    assert_eq!(exit, Exit::Unknown, "a monitor that ended with its embedder records nothing more");
}
