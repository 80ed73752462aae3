//! `CliBackend`'s decisions, checked against a recording spawner: which calls it makes, with
//! which deadlines, and what it makes of their endings. No process runs.

use std::time::Duration;

use tokio::time::Instant;

use super::*;
use crate::cli::dialect::{ErrorWording, GlobalFlags};
use crate::cli::spawn::recording::{RecordingSpawner, Reply};
use crate::contract::error::Existence;
use crate::contract::options::process;

#[derive(Debug)]
struct TestFamily {
    list_format: ListFormat,
}

impl RuntimeFamily for TestFamily {
    fn name(&self) -> &str {
        "test"
    }

    fn default_binary(&self) -> PathBuf {
        PathBuf::from("/bin/true")
    }

    fn dialect(&self, _version: &RuntimeVersion) -> Dialect {
        Dialect {
            checkpoint_command: Some("checkpoint".into()),
            run_command: None,
            restore_command: Some("restore".into()),
            features_command: None,
            global_flags: GlobalFlags { json_log: true, ..GlobalFlags::default() },
            missing_flags: Vec::new(),
            list_format: self.list_format,
            update_resources: ResourcesInput::Stdin,
            errors: ErrorWording {
                not_found: vec!["does not exist".into()],
                already_exists: vec!["already exists".into()],
                invalid_state: vec!["wrong state".into()],
            },
            min_criu_version: None,
            events: None,
        }
    }
}

const TIMEOUT: Duration = Duration::from_secs(8);

/// A rollback's `delete --force` runs on a thread of its own, on the real clock: the call's
/// deadline, turned into a timeout there and back into a deadline by the spawner, lands later by
/// the moments between the two readings of that clock. Well under this.
const CLOCK_SLACK: Duration = Duration::from_millis(50);

fn config() -> RuntimeConfig {
    RuntimeConfig::default().binary("/bin/true").timeout(TIMEOUT).output_limit(1024)
}

fn backend_with(spawner: &Arc<RecordingSpawner>, list_format: ListFormat) -> CliBackend {
    let version = RuntimeVersion::parse("test version 1.0.0").unwrap();
    let runner = Runner::new(Arc::clone(spawner) as Arc<dyn Spawner>, &config());
    CliBackend::with_runner(Arc::new(TestFamily { list_format }), config(), "/bin/true".into(), version, runner)
        .unwrap()
}

fn backend(spawner: &Arc<RecordingSpawner>) -> CliBackend {
    backend_with(spawner, ListFormat::Json)
}

/// A bundle whose config.json is a JSON document, which is all the backend looks at itself (and
/// only when the runtime refused it).
fn bundle() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("config.json"), "{}").unwrap();
    dir
}

fn id(name: &str) -> ContainerId {
    ContainerId::new(name).unwrap()
}

fn state_json(name: &str) -> String {
    format!(r#"{{"ociVersion":"1.0.2","id":"{name}","status":"running","pid":42,"bundle":"/b"}}"#)
}

/// Create options with a pid file at `/run/test.pid`, so that argv is known in advance.
fn create_opts() -> CreateOptions {
    CreateOptions { pid_file: Some("/run/test.pid".into()), ..CreateOptions::default() }
}

/// Argv as the test writes it.
fn words(text: &str) -> Vec<String> {
    text.split_whitespace().map(str::to_owned).collect()
}

#[tokio::test(start_paused = true)]
async fn a_create_that_times_out_is_rolled_back_within_its_own_timeout() {
    let bundle = bundle();
    let spawner = RecordingSpawner::new(|command| match command[0].as_str() {
        "create" => Reply::TimesOut,
        _ => Reply::exits(0),
    });
    let started = Instant::now();
    let result = backend(&spawner).create(&id("c1"), bundle.path(), create_opts()).await;
    match result {
        Err(Error::Timeout { argv, after, .. }) => {
            assert_eq!(after, TIMEOUT, "the call's timeout, as configured");
            assert!(argv.iter().any(|arg| arg == "create"), "{argv:?}");
        }
        other => panic!("a create that times out: {other:?}"),
    }
    assert_eq!(
        spawner.commands(),
        [
            words(&format!("create --bundle {} --pid-file /run/test.pid c1", bundle.path().display())),
            words("delete --force c1")
        ]
    );
    let asked = spawner.asked();
    let (create, rollback) = (&asked[0], &asked[1]);
    assert!(create.deadline < started + TIMEOUT, "the create leaves time for its rollback");
    assert!(rollback.deadline > create.deadline, "the rollback gets what remains");
    assert!(rollback.deadline <= started + TIMEOUT + CLOCK_SLACK, "and nothing past the call's deadline");
}

#[tokio::test(start_paused = true)]
async fn a_create_s_own_timeout_bounds_it_and_its_rollback() {
    let bundle = bundle();
    let spawner = RecordingSpawner::new(|command| match command[0].as_str() {
        "create" => Reply::TimesOut,
        _ => Reply::exits(0),
    });
    let own = Duration::from_millis(600);
    let opts = CreateOptions { timeout: Some(own), ..create_opts() };
    let started = Instant::now();
    let result = backend(&spawner).create(&id("c1"), bundle.path(), opts).await;
    assert!(matches!(result, Err(Error::Timeout { after, .. }) if after == own), "{result:?}");
    let deadlines: Vec<Instant> = spawner.asked().iter().map(|asked| asked.deadline).collect();
    assert_eq!(deadlines.len(), 2);
    assert!(deadlines.iter().all(|deadline| *deadline <= started + own + CLOCK_SLACK), "{deadlines:?}");
}

/// A create that times out, whose rollback's `delete` answers in turn from `deletes` (the last
/// answer repeats).
fn create_timing_out_with_deletes(deletes: Vec<Reply>) -> Arc<RecordingSpawner> {
    let answered = std::sync::atomic::AtomicUsize::new(0);
    RecordingSpawner::new(move |command| match command[0].as_str() {
        "create" => Reply::TimesOut,
        "delete" => {
            let turn = answered.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            deletes[turn.min(deletes.len() - 1)].clone()
        }
        _ => Reply::exits(0),
    })
}

#[tokio::test]
async fn a_rollback_delete_that_fails_for_a_moment_is_tried_again() {
    let bundle = bundle();
    let spawner = create_timing_out_with_deletes(vec![Reply::logs_error("device or resource busy"), Reply::exits(0)]);
    let result = backend(&spawner).create(&id("c1"), bundle.path(), create_opts()).await;
    assert!(matches!(result, Err(Error::Timeout { left_behind: None, .. })), "{result:?}");
    let deletes = spawner.commands().into_iter().filter(|command| command[0] == "delete").count();
    assert_eq!(deletes, 2, "tried again once, then it worked");
}

#[tokio::test]
async fn a_rollback_that_leaves_the_container_is_reported_on_the_timeout() {
    let bundle = bundle();
    let spawner = create_timing_out_with_deletes(vec![Reply::logs_error("device or resource busy")]);
    let result = backend(&spawner).create(&id("c1"), bundle.path(), create_opts()).await;
    match result {
        Err(Error::Timeout { argv, left_behind: Some(problem), .. }) => {
            assert!(argv.iter().any(|arg| arg == "create"), "the timeout is the create's: {argv:?}");
            match *problem {
                Error::RuntimeFailed(failure) => {
                    assert_eq!(failure.message, "device or resource busy");
                    assert!(failure.argv.iter().any(|arg| arg == "delete"), "{:?}", failure.argv);
                }
                other => panic!("the rollback's failure: {other:?}"),
            }
        }
        other => panic!("a create whose rollback fails: {other:?}"),
    }
    let deletes = spawner.commands().into_iter().filter(|command| command[0] == "delete").count();
    assert_eq!(deletes, 3, "a few attempts, then given up");
}

#[tokio::test]
async fn a_create_the_runtime_refuses_is_rolled_back() {
    let bundle = bundle();
    let spawner = RecordingSpawner::new(|command| match command[0].as_str() {
        "create" => Reply::logs_error("cannot mount proc"),
        _ => Reply::logs_error("container c1 does not exist"),
    });
    let result = backend(&spawner).create(&id("c1"), bundle.path(), create_opts()).await;
    match result {
        Err(Error::RuntimeFailed(failure)) => assert_eq!(failure.message, "cannot mount proc"),
        other => panic!("a failed create: {other:?}"),
    }
    assert_eq!(
        spawner.commands(),
        [
            words(&format!("create --bundle {} --pid-file /run/test.pid c1", bundle.path().display())),
            words("delete --force c1")
        ]
    );
}

#[tokio::test]
async fn a_create_refused_because_the_id_is_taken_leaves_the_other_container_alone() {
    let bundle = bundle();
    let spawner = RecordingSpawner::new(|_| Reply::logs_error("container c1 already exists"));
    let result = backend(&spawner).create(&id("c1"), bundle.path(), create_opts()).await;
    assert!(matches!(&result, Err(Error::AlreadyExists { id: Some(taken), .. }) if *taken == id("c1")), "{result:?}");
    assert_eq!(
        spawner.commands(),
        [words(&format!("create --bundle {} --pid-file /run/test.pid c1", bundle.path().display()))],
        "no delete of someone else's container"
    );
}

#[tokio::test]
async fn a_create_whose_binary_is_missing_ran_nothing_to_roll_back() {
    let bundle = bundle();
    let spawner = RecordingSpawner::new(|_| Reply::Missing);
    let result = backend(&spawner).create(&id("c1"), bundle.path(), create_opts()).await;
    assert!(matches!(result, Err(Error::BinaryNotFound { .. })), "{result:?}");
    assert_eq!(
        spawner.commands(),
        [words(&format!("create --bundle {} --pid-file /run/test.pid c1", bundle.path().display()))]
    );
}

#[tokio::test]
async fn a_create_leaves_its_container_running_and_other_calls_leave_nothing() {
    let bundle = bundle();
    let scratch = tempfile::tempdir().unwrap();
    let pid_file = scratch.path().join("pid");
    let spawner = RecordingSpawner::new({
        let pid_file = pid_file.clone();
        move |command| match command[0].as_str() {
            "state" => Reply::prints(state_json("c1")),
            // The pid file the runtime writes.
            "create" => {
                std::fs::write(&pid_file, "42").unwrap();
                Reply::exits(0)
            }
            _ => Reply::exits(0),
        }
    });
    let backend = backend(&spawner);
    let opts = CreateOptions { pid_file: Some(pid_file), ..CreateOptions::default() };
    let created = backend.create(&id("c1"), bundle.path(), opts).await.unwrap();
    assert_eq!(created.pid, 42, "the pid the runtime wrote");
    backend.start(&id("c1")).await.unwrap();
    backend.state(&id("c1")).await.unwrap();
    let leftovers: Vec<Leftovers> = spawner.asked().iter().map(|asked| asked.leftovers).collect();
    assert_eq!(leftovers, [Leftovers::Keep, Leftovers::Kill, Leftovers::Kill]);
}

#[tokio::test]
async fn a_restore_that_times_out_is_rolled_back() {
    let bundle = bundle();
    // Every probe answers yes; CRIU says which version it is.
    let spawner = RecordingSpawner::new(|command| match command[0].as_str() {
        "--version" => Reply::prints("Version: 3.17.1\n"),
        "restore" if command.len() > 2 => Reply::TimesOut,
        _ => Reply::exits(0),
    });
    let opts = RestoreOptions {
        image_path: "/img".into(),
        pid_file: Some("/run/test.pid".into()),
        ..RestoreOptions::default()
    };
    let result = backend(&spawner).restore(&id("c1"), bundle.path(), opts).await;
    assert!(matches!(result, Err(Error::Timeout { .. })), "{result:?}");
    let commands = spawner.commands();
    assert_eq!(
        commands[commands.len() - 2..],
        [
            words(&format!(
                "restore --image-path /img --bundle {} --detach --pid-file /run/test.pid c1",
                bundle.path().display()
            )),
            words("delete --force c1")
        ]
    );
}

#[tokio::test]
async fn an_exec_s_exit_status_is_its_process_s_own() {
    let spawner = RecordingSpawner::new(|_| Reply::Exits {
        status: Exit::Exited(3),
        stdout: b"out".to_vec(),
        stderr: b"err".to_vec(),
        log: None,
    });
    let outcome = backend(&spawner).exec(&id("c1"), &process(["false"]), ExecOptions::default()).await.unwrap();
    match outcome {
        ExecOutcome::Exited { code, stdout, stderr } => {
            assert_eq!((code, stdout.bytes.as_slice(), stderr.bytes.as_slice()), (3, &b"out"[..], &b"err"[..]))
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(spawner.asked()[0].leftovers, Leftovers::Keep, "exec's process is not the runtime's to kill");
}

#[tokio::test]
async fn an_exec_whose_runtime_logged_an_error_is_the_runtime_s_failure() {
    let spawner = RecordingSpawner::new(|_| Reply::logs_error("container c1 does not exist"));
    let result = backend(&spawner).exec(&id("c1"), &process(["true"]), ExecOptions::default()).await;
    match result {
        Err(Error::NotFound { id: Some(missing), evidence: Existence::Refused(failure) }) => {
            assert_eq!(missing, id("c1"));
            assert_eq!(failure.message, "container c1 does not exist");
        }
        other => panic!("an exec the runtime refused: {other:?}"),
    }
}

#[tokio::test]
async fn an_exec_whose_runtime_was_killed_never_saw_the_process_end() {
    let spawner = RecordingSpawner::new(|_| Reply::Exits {
        status: Exit::Signaled(crate::contract::signal::Signal::KILL),
        stdout: Vec::new(),
        stderr: Vec::new(),
        log: None,
    });
    let result = backend(&spawner).exec(&id("c1"), &process(["true"]), ExecOptions::default()).await;
    match result {
        Err(Error::RuntimeFailed(failure)) => {
            assert_eq!(failure.status, Exit::Signaled(crate::contract::signal::Signal::KILL))
        }
        other => panic!("an exec whose runtime died: {other:?}"),
    }
}

#[tokio::test]
async fn a_table_list_asks_each_state_and_skips_a_container_deleted_in_between() {
    let table = "ID   PID   STATUS    BUNDLE   CREATED   OWNER\na    1     running   /b   x   root\nb    2     running   /b   x   root\nc    3     running   /b   x   root\n";
    let spawner =
        RecordingSpawner::new(move |command| match (command[0].as_str(), command.get(1).map(String::as_str)) {
            ("list", _) => Reply::prints(table),
            ("state", Some("b")) => Reply::logs_error("container b does not exist"),
            ("state", Some(name)) => Reply::prints(state_json(name)),
            _ => Reply::exits(1),
        });
    let states = backend_with(&spawner, ListFormat::Table).list().await.unwrap();
    let ids: Vec<&str> = states.iter().map(|state| state.id.as_str()).collect();
    assert_eq!(ids, ["a", "c"]);
    assert_eq!(spawner.commands(), [words("list"), words("state a"), words("state b"), words("state c")]);
}

#[tokio::test]
async fn a_table_list_stops_at_an_error_other_than_not_found() {
    let table = "ID   PID\na    1\nb    2\n";
    let spawner = RecordingSpawner::new(move |command| match command[0].as_str() {
        "list" => Reply::prints(table),
        _ => Reply::logs_error("permission denied"),
    });
    let result = backend_with(&spawner, ListFormat::Table).list().await;
    assert!(matches!(result, Err(Error::RuntimeFailed(_))), "{result:?}");
    assert_eq!(spawner.commands().len(), 2, "no state after the failure");
}

#[tokio::test]
async fn parsed_output_cut_at_the_limit_is_an_error_that_says_so() {
    // Over config()'s 1024-byte limit; a cut document must not reach the parser.
    let long = format!(
        r#"{{"ociVersion":"1.0.2","id":"c1","status":"running","bundle":"/b","annotations":{{"a":"{}"}}}}"#,
        "x".repeat(2000)
    );
    let spawner = RecordingSpawner::new(move |_| Reply::prints(long.clone()));
    let backend = backend(&spawner);
    for (what, result) in [
        ("state", backend.state(&id("c1")).await.map(drop)),
        ("list", backend.list().await.map(drop)),
        ("ps", backend.ps(&id("c1")).await.map(drop)),
    ] {
        match result {
            Err(Error::OutputTruncated { stream, limit, .. }) => {
                assert_eq!((stream, limit), ("stdout", 1024), "{what}")
            }
            other => panic!("{what} with cut output: {other:?}"),
        }
    }
}

#[tokio::test(start_paused = true)]
async fn calls_get_the_configured_timeout_unless_they_bring_their_own() {
    let spawner = RecordingSpawner::new(|command| match command[0].as_str() {
        "state" => Reply::prints(state_json("c1")),
        "--version" => Reply::prints("Version: 3.17.1\n"),
        _ => Reply::exits(0),
    });
    let backend = backend(&spawner);
    let started = Instant::now();
    backend.state(&id("c1")).await.unwrap();
    let own = Duration::from_secs(90);
    let opts = CheckpointOptions { image_path: "/img".into(), timeout: Some(own), ..CheckpointOptions::default() };
    backend.checkpoint(&id("c1"), &opts).await.unwrap();
    let asked = spawner.asked();
    assert_eq!(asked[0].command(), words("state c1"));
    assert_eq!(asked[0].deadline, started + TIMEOUT, "state: the configured timeout");
    let checkpoint = asked.last().unwrap();
    assert_eq!(checkpoint.command(), words("checkpoint --image-path /img c1"));
    assert_eq!(checkpoint.deadline, started + own, "checkpoint: its own");
    assert_eq!(checkpoint.leftovers, Leftovers::Keep, "a lazy-pages server may outlive it");
}

#[tokio::test(start_paused = true)]
async fn connect_to_a_version_that_hangs_is_a_timeout() {
    let spawner = RecordingSpawner::new(|_| Reply::TimesOut);
    let family = Arc::new(TestFamily { list_format: ListFormat::Json });
    let result = CliBackend::connect_with(family, config(), spawner.clone()).await;
    match result {
        Err(Error::Timeout { argv, after, .. }) => {
            assert_eq!(argv, [OsString::from("/bin/true"), OsString::from("--version")]);
            assert_eq!(after, TIMEOUT);
        }
        other => panic!("connect with a hanging --version: {other:?}"),
    }
}

#[tokio::test]
async fn connect_to_a_version_that_fails_is_the_runtime_s_failure() {
    let spawner = RecordingSpawner::new(|_| Reply::Exits {
        status: Exit::Exited(2),
        stdout: Vec::new(),
        stderr: b"unknown flag --version\n".to_vec(),
        log: None,
    });
    let family = Arc::new(TestFamily { list_format: ListFormat::Json });
    match CliBackend::connect_with(family, config(), spawner).await {
        Err(Error::RuntimeFailed(failure)) => {
            assert_eq!((failure.status, failure.message.as_str()), (Exit::Exited(2), "unknown flag --version"))
        }
        other => panic!("connect with a failing --version: {other:?}"),
    }
}

#[tokio::test]
async fn connect_to_a_version_cut_at_the_limit_is_an_error_that_says_so() {
    let spawner = RecordingSpawner::new(|_| Reply::prints(format!("test version 1.0.0\n{}", "x".repeat(4096))));
    let family = Arc::new(TestFamily { list_format: ListFormat::Json });
    let result = CliBackend::connect_with(family, config(), spawner).await;
    assert!(matches!(result, Err(Error::OutputTruncated { stream: "stdout", .. })), "{result:?}");
}

/// A host where `criu check` passes (CRIU 4.1.1) and `criu check --feature <name>` fails for the
/// features in `missing` with `output` on stderr, as CRIU does; every other call succeeds.
fn host_without(missing: &'static [&'static str], output: &'static str) -> Arc<RecordingSpawner> {
    RecordingSpawner::new(move |command| match command.iter().map(String::as_str).collect::<Vec<_>>()[..] {
        ["--version"] => Reply::prints("Version: 4.1.1\n"),
        ["check", "--feature", feature] if missing.contains(&feature) => {
            Reply::Exits { status: Exit::Exited(1), stdout: Vec::new(), stderr: output.as_bytes().to_vec(), log: None }
        }
        _ => Reply::exits(0),
    })
}

/// The calls made for container `name`.
fn calls_for(spawner: &RecordingSpawner, name: &str) -> Vec<Vec<String>> {
    spawner.commands().into_iter().filter(|command| command.last().is_some_and(|last| last == name)).collect()
}

#[tokio::test]
async fn a_pre_dump_on_a_kernel_without_dirty_tracking_is_refused_before_anything_runs() {
    // What CRIU 4.1.1 prints on a kernel without CONFIG_MEM_SOFT_DIRTY, exit status 1.
    let spawner = host_without(
        &["mem_dirty_track"],
        "Warn  (criu/cr-check.c:824): Dirty tracking is OFF. Memory snapshot will not work.\n",
    );
    let backend = backend(&spawner);
    let opts = CheckpointOptions { image_path: "/img".into(), pre_dump: true, ..CheckpointOptions::default() };
    match backend.checkpoint(&id("c1"), &opts).await {
        Err(Error::Unsupported { feature, reason, .. }) => {
            assert_eq!(feature, "checkpoint --pre-dump");
            assert_eq!(
                reason,
                "CRIU 4.1.1 cannot track dirty memory: Dirty tracking is OFF. Memory snapshot will not work."
            );
        }
        other => panic!("a pre-dump without dirty tracking: {other:?}"),
    }
    assert_eq!(calls_for(&spawner, "c1"), Vec::<Vec<String>>::new(), "the runtime was not asked");
    let features = backend.features().await.unwrap();
    let asked: Vec<&[String]> = features.pre_dump.evidence().iter().map(|probe| &probe.argv[1..]).collect();
    assert!(asked.contains(&&words("check --feature mem_dirty_track")[..]), "the feature probe is evidence: {asked:?}");
    // The rest of checkpoint is untouched: lazy pages and a plain dump still run.
    let lazy = CheckpointOptions { lazy_pages: true, ..opts.clone() };
    backend.checkpoint(&id("c1"), &CheckpointOptions { pre_dump: false, ..lazy }).await.unwrap();
    backend.checkpoint(&id("c1"), &CheckpointOptions { pre_dump: false, ..opts }).await.unwrap();
    assert_eq!(
        calls_for(&spawner, "c1"),
        [words("checkpoint --image-path /img --lazy-pages c1"), words("checkpoint --image-path /img c1")]
    );
}

#[tokio::test]
async fn lazy_pages_without_userfaultfd_are_refused_on_checkpoint_and_restore() {
    let bundle = bundle();
    let spawner = host_without(&["uffd-noncoop"], "Error (criu/cr-check.c:1311): uffd-noncoop is not supported\n");
    let backend = backend(&spawner);
    let checkpoint = CheckpointOptions { image_path: "/img".into(), lazy_pages: true, ..CheckpointOptions::default() };
    let restore = RestoreOptions { image_path: "/img".into(), lazy_pages: true, ..RestoreOptions::default() };
    let refusals = [
        backend.checkpoint(&id("c1"), &checkpoint).await.map(drop),
        backend.restore(&id("c1"), bundle.path(), restore).await.map(drop),
    ];
    for (refusal, wanted) in refusals.into_iter().zip(["checkpoint --lazy-pages", "restore --lazy-pages"]) {
        match refusal {
            Err(Error::Unsupported { feature, reason, .. }) => {
                assert_eq!(feature, wanted);
                assert_eq!(reason, "CRIU 4.1.1 cannot serve memory pages lazily: uffd-noncoop is not supported");
            }
            other => panic!("{wanted} without userfaultfd: {other:?}"),
        }
    }
    assert_eq!(calls_for(&spawner, "c1"), Vec::<Vec<String>>::new(), "the runtime was not asked");
    let features = backend.features().await.unwrap();
    assert!(features.pre_dump.is_supported(), "dirty tracking works here: {:?}", features.pre_dump);
}

#[tokio::test]
async fn checkpoint_options_are_unsupported_with_checkpoint_itself() {
    let spawner = RecordingSpawner::new(|command| match command[0].as_str() {
        "check" => Reply::Exits {
            status: Exit::Exited(1),
            stdout: Vec::new(),
            stderr: b"Error (criu/vdso.c:613): vdso: Failed to fill self vdso symtable\n".to_vec(),
            log: None,
        },
        _ => Reply::exits(0),
    });
    let features = backend(&spawner).features().await.unwrap();
    let checkpoint = "`criu check` failed: vdso: Failed to fill self vdso symtable";
    assert_eq!(features.checkpoint.reason(), Some(checkpoint));
    for (option, support) in [("--pre-dump", &features.pre_dump), ("--lazy-pages", &features.lazy_pages)] {
        let wanted = format!("{option} needs checkpoint, which is unsupported: {checkpoint}");
        assert_eq!(support.reason(), Some(wanted.as_str()));
    }
    let feature_checks = spawner.commands().into_iter().filter(|command| command.len() > 1 && command[0] == "check");
    assert_eq!(feature_checks.count(), 0, "no feature is asked of a CRIU that fails `criu check`");
}

#[tokio::test]
async fn checkpoint_and_restore_without_an_image_path_are_refused_before_anything_runs() {
    let bundle = bundle();
    let spawner = RecordingSpawner::new(|_| Reply::exits(0));
    let backend = backend(&spawner);
    let checkpoint = backend.checkpoint(&id("c1"), &CheckpointOptions::default()).await;
    let restore = backend.restore(&id("c1"), bundle.path(), RestoreOptions::default()).await.map(drop);
    for (refusal, wanted) in
        [checkpoint, restore].into_iter().zip(["CheckpointOptions::image_path", "RestoreOptions::image_path"])
    {
        match refusal {
            Err(Error::InvalidArgument { option, .. }) => assert_eq!(option, wanted),
            other => panic!("{wanted} empty: {other:?}"),
        }
    }
    assert_eq!(spawner.commands(), Vec::<Vec<String>>::new(), "nothing ran, not even a probe");
}

#[test]
fn a_relayed_runtime_failure_is_classified_like_the_backends_own() {
    let spawner = RecordingSpawner::new(|_| Reply::exits(0));
    let backend = backend(&spawner);
    let relayed = |message: &str| Failure {
        argv: ["conmon", "--api-version", "1", "-c", "c1"].map(OsString::from).to_vec(),
        status: Exit::Unknown,
        message: message.to_owned(),
    };
    let taken = backend.classify_failure(Some(&id("c1")), relayed("the container already exists"));
    assert!(matches!(&taken, Error::AlreadyExists { id: Some(c1), .. } if *c1 == id("c1")), "{taken:?}");
    let other = backend.classify_failure(Some(&id("c1")), relayed("no space left on device"));
    assert!(matches!(other, Error::RuntimeFailed(_)), "{other:?}");
    assert!(spawner.commands().is_empty(), "classifying runs nothing");
}

#[tokio::test]
async fn options_only_a_monitor_serves_are_refused_before_the_runtime_runs() {
    let bundle = bundle();
    let spawner = RecordingSpawner::new(|_| Reply::exits(0));
    let port = crate::PortReservation {
        protocol: crate::PortProtocol::Tcp,
        host_ip: std::net::Ipv4Addr::LOCALHOST.into(),
        port: 8080,
    };
    let notify = crate::SystemdPassthrough { notify_socket: true, ..Default::default() };
    let refused = [
        (CreateOptions { reserved_ports: vec![port], ..create_opts() }, "CreateOptions::reserved_ports"),
        (CreateOptions { systemd: notify, ..create_opts() }, "CreateOptions::systemd.notify_socket"),
        (
            CreateOptions { exit_command: Some(crate::ExitCommand::default()), ..create_opts() },
            "CreateOptions::exit_command",
        ),
    ];
    for (opts, option) in refused {
        match backend(&spawner).create(&id("c1"), bundle.path(), opts).await {
            Err(Error::Unsupported { backend, feature, .. }) => {
                assert_eq!((backend.as_str(), feature.as_str()), ("test", option))
            }
            other => panic!("{option}: expected Unsupported, got {other:?}"),
        }
    }
    let restore = RestoreOptions {
        image_path: "/images".into(),
        exit_command: Some(crate::ExitCommand::default()),
        ..RestoreOptions::default()
    };
    match backend(&spawner).restore(&id("c1"), bundle.path(), restore).await {
        Err(Error::Unsupported { feature, .. }) => assert_eq!(feature, "RestoreOptions::exit_command"),
        other => panic!("a restore's exit command: expected Unsupported, got {other:?}"),
    }
    assert!(spawner.asked().is_empty(), "the runtime ran");
}

/// A runtime that refuses every bundle (crun 1.8.1 says this of a missing and of a malformed
/// `config.json` alike), and answers every feature probe yes so that a restore gets as far as
/// running.
fn refusing_every_bundle() -> Arc<RecordingSpawner> {
    RecordingSpawner::new(|command| match command[0].as_str() {
        "--version" => Reply::prints("Version: 3.17.1\n"),
        _ if command.iter().any(|arg| arg == "--bundle") => Reply::logs_error("error loading config.json"),
        _ => Reply::exits(0),
    })
}

#[tokio::test]
async fn a_refused_bundle_without_config_json_is_not_found() {
    let spawner = refusing_every_bundle();
    let empty = tempfile::tempdir().unwrap();
    let config = empty.path().join("config.json");
    let create = backend(&spawner).create(&id("c1"), empty.path(), create_opts()).await;
    match create {
        Err(Error::NotFound { id: Some(refused), evidence: Existence::Seen { path, .. } }) => {
            assert_eq!((refused, path), (id("c1"), config.clone()));
        }
        other => panic!("create from a bundle without config.json: {other:?}"),
    }
    let restore = RestoreOptions { image_path: "/img".into(), ..RestoreOptions::default() };
    let restored = backend(&spawner).restore(&id("c1"), empty.path(), restore).await;
    assert!(
        matches!(&restored, Err(Error::NotFound { evidence: Existence::Seen { path, .. }, .. }) if *path == config),
        "{restored:?}"
    );
}

#[tokio::test]
async fn a_refused_config_json_that_is_not_json_is_an_invalid_bundle() {
    let spawner = refusing_every_bundle();
    let garbled = tempfile::tempdir().unwrap();
    std::fs::write(garbled.path().join("config.json"), "{not json").unwrap();
    match backend(&spawner).create(&id("c1"), garbled.path(), create_opts()).await {
        Err(Error::InvalidArgument { option, reason }) => {
            assert_eq!(option, "bundle");
            assert!(reason.contains("config.json is not a JSON document"), "{reason}");
        }
        other => panic!("create from a config.json that is not JSON: {other:?}"),
    }
}

#[tokio::test]
async fn a_refusal_of_a_well_formed_bundle_stays_the_runtime_s_own() {
    let spawner = refusing_every_bundle();
    let bundle = bundle();
    match backend(&spawner).create(&id("c1"), bundle.path(), create_opts()).await {
        Err(Error::RuntimeFailed(failure)) => {
            assert!(failure.message.contains("error loading config.json"), "{failure:?}")
        }
        other => panic!("a failed create from a JSON config.json: {other:?}"),
    }
}
