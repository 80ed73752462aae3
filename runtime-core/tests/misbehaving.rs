//! `CliBackend` against runtimes that misbehave. Each "runtime" is a shell script written into a
//! temporary directory; it records its own pid and those of the processes it starts. Whatever
//! the misbehaviour, the call must end with its typed error within its timeout (plus a generous
//! margin), memory must stay bounded whatever the runtime prints, and nothing the script started
//! may be left running afterwards.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use runtime_core::dialect::{
    ErrorWording, EventsCommand, GlobalFlags, IntervalFormat, ListFormat, ResourcesInput, StatsShape,
};
use runtime_core::oci_spec::runtime::LinuxResources;
use runtime_core::{
    CliBackend, ContainerId, CreateOptions, DeleteMode, Dialect, Error, Event, Existence, Exit, KillScope, OciBackend,
    RuntimeConfig, RuntimeFamily, RuntimeVersion, Signal,
};

/// The bound on each captured stream in these tests.
const OUTPUT_LIMIT: usize = 64 * 1024;

/// What the tests' process may reach at its peak. Floods are 256 MiB per stream: keeping one of
/// them would blow through this.
const MEMORY_BOUND_KIB: u64 = 160 * 1024;

/// How much later than its timeout a call may end.
const MARGIN: Duration = Duration::from_secs(2);

#[derive(Debug)]
struct ScriptFamily {
    binary: PathBuf,
}

impl RuntimeFamily for ScriptFamily {
    fn name(&self) -> &str {
        "script"
    }

    fn default_binary(&self) -> PathBuf {
        self.binary.clone()
    }

    fn dialect(&self, _version: &RuntimeVersion) -> Dialect {
        Dialect {
            run_command: None,
            checkpoint_command: Some("checkpoint".into()),
            restore_command: Some("restore".into()),
            features_command: None,
            global_flags: GlobalFlags { json_log: true, ..GlobalFlags::default() },
            missing_flags: Vec::new(),
            list_format: ListFormat::Json,
            update_resources: ResourcesInput::Stdin,
            errors: ErrorWording {
                not_found: vec!["does not exist".into()],
                already_exists: vec!["already exists".into()],
                invalid_state: vec!["wrong state".into()],
            },
            min_criu_version: None,
            events: Some(EventsCommand {
                command: "events".into(),
                interval: IntervalFormat::GoDuration,
                stats: StatsShape::Runc,
            }),
        }
    }
}

/// A runtime script in its own directory.
struct Runtime {
    dir: tempfile::TempDir,
    binary: PathBuf,
}

impl Runtime {
    /// A runtime whose subcommands behave as `cases` says: the body of a `case "$cmd" in`
    /// statement, where `$cmd` is the subcommand (or `--version`) and `$@` what follows it,
    /// `$log` the JSON log file, and `record PID` notes a process it started.
    fn new(cases: &str) -> Runtime {
        let dir = tempfile::tempdir().unwrap();
        let pids = dir.path().join("pids");
        let script = format!(
            r#"#!/bin/sh
record() {{ echo "$1" >> '{pids}'; }}
record $$
log=/dev/null
while [ $# -gt 0 ]; do
  case "$1" in
    --log) log="$2"; shift 2 ;;
    --log-format|--root|--criu) shift 2 ;;
    *) break ;;
  esac
done
cmd="$1"
[ $# -gt 0 ] && shift
case "$cmd" in
{cases}
esac
"#,
            pids = pids.display()
        );
        let source = dir.path().join("runtime.txt");
        std::fs::write(&source, script).unwrap();
        let binary = dir.path().join("runtime");
        // Copied by another process: a file this multi-threaded process had open for writing
        // can be inherited by a concurrent fork and make its exec fail with ETXTBSY.
        install(&source, &binary, "0755");
        Runtime { dir, binary }
    }

    fn config(&self, timeout: Duration) -> RuntimeConfig {
        RuntimeConfig::default().binary(&self.binary).timeout(timeout).output_limit(OUTPUT_LIMIT)
    }

    fn family(&self) -> Arc<ScriptFamily> {
        Arc::new(ScriptFamily { binary: self.binary.clone() })
    }

    /// A backend that never asked `--version`.
    fn backend(&self, timeout: Duration) -> CliBackend {
        let version = RuntimeVersion::parse("script version 1.0.0").unwrap();
        CliBackend::with_version(self.family(), self.config(timeout), self.binary.clone(), version).unwrap()
    }

    /// The pids the script recorded.
    fn pids(&self) -> BTreeSet<i32> {
        let text = std::fs::read_to_string(self.dir.path().join("pids")).unwrap_or_default();
        text.lines().filter_map(|line| line.trim().parse().ok()).collect()
    }

    /// Fails unless the script ran, and every process it recorded, and every member of its
    /// process groups, is gone (a zombie waiting for init to reap it counts as gone).
    fn assert_nothing_left(&self) {
        let pids = self.pids();
        assert!(!pids.is_empty(), "the runtime script never ran");
        let deadline = Instant::now() + Duration::from_secs(2);
        loop {
            let alive = live_processes(&pids);
            if alive.is_empty() {
                return;
            }
            assert!(Instant::now() < deadline, "still running: {alive:?} (recorded {pids:?})");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

fn install(source: &Path, target: &Path, mode: &str) {
    let status = std::process::Command::new("install").args(["-m", mode]).arg(source).arg(target).status();
    assert!(status.unwrap().success(), "install {}", target.display());
}

/// Processes that are not zombies and either are one of `pids` or belong to a group led by one.
fn live_processes(pids: &BTreeSet<i32>) -> Vec<String> {
    let mut alive = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else { continue };
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else { continue };
        // `pid (comm) state ppid pgrp ...`; comm may hold spaces and parentheses.
        let Some((head, rest)) = stat.rsplit_once(')') else { continue };
        let fields: Vec<&str> = rest.split_whitespace().collect();
        let (state, pgrp) = (fields[0], fields[2].parse::<i32>().unwrap_or(0));
        if matches!(state, "Z" | "X") {
            continue;
        }
        if pids.contains(&pid) || pids.contains(&pgrp) {
            alive.push(format!("{pid} {}) {state}", head.split_once('(').map_or("", |(_, comm)| comm)));
        }
    }
    alive
}

/// The peak resident memory of this test process.
fn assert_memory_bounded() {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let peak: u64 = status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|value| value.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap();
    assert!(peak < MEMORY_BOUND_KIB, "peak memory {peak} KiB");
}

fn within(started: Instant, timeout: Duration) {
    let took = started.elapsed();
    assert!(took < timeout + MARGIN, "took {took:?} with a timeout of {timeout:?}");
}

fn c1() -> ContainerId {
    ContainerId::new("c1").unwrap()
}

const STATE_C1: &str = r#"{"ociVersion":"1.0.2","id":"c1","status":"running","pid":1,"bundle":"/b"}"#;

#[tokio::test]
async fn a_runtime_that_hangs_is_killed_at_its_timeout() {
    let runtime = Runtime::new("state) sleep 1000 & record $!; wait ;;");
    let timeout = Duration::from_millis(800);
    let started = Instant::now();
    match runtime.backend(timeout).state(&c1()).await {
        Err(Error::Timeout { argv, after, .. }) => {
            assert_eq!(after, timeout);
            assert!(argv.iter().any(|arg| arg == "state"), "{argv:?}");
        }
        other => panic!("a hanging state: {other:?}"),
    }
    within(started, timeout);
    runtime.assert_nothing_left();
    assert_memory_bounded();
}

#[tokio::test]
async fn a_runtime_that_ignores_sigterm_is_killed_all_the_same() {
    let runtime = Runtime::new("kill) trap '' TERM; sleep 1000 & record $!; wait; wait ;;");
    let timeout = Duration::from_millis(800);
    let started = Instant::now();
    let result = runtime.backend(timeout).kill(&c1(), Signal::TERM, KillScope::Init).await;
    assert!(matches!(result, Err(Error::Timeout { .. })), "{result:?}");
    within(started, timeout);
    runtime.assert_nothing_left();
}

#[tokio::test]
async fn a_create_whose_rollback_hangs_too_ends_within_one_timeout() {
    let runtime = Runtime::new(
        "create) sleep 1000 & record $!; wait ;;
         delete) echo \"$@\" >> \"$(dirname \"$0\")/deletes\"; sleep 1000 & record $!; wait ;;",
    );
    // Long enough that a rollback with a timeout of its own (twice the time) would miss the bound.
    let timeout = Duration::from_secs(4);
    // The backend reads no more of the bundle than that its config.json is JSON.
    let bundle = tempfile::tempdir().unwrap();
    std::fs::write(bundle.path().join("config.json"), "{}").unwrap();
    let started = Instant::now();
    let result = runtime.backend(timeout).create(&c1(), bundle.path(), CreateOptions::default()).await;
    assert!(matches!(result, Err(Error::Timeout { after, .. }) if after == timeout), "{result:?}");
    within(started, timeout);
    let deletes = std::fs::read_to_string(runtime.dir.path().join("deletes")).unwrap_or_default();
    assert_eq!(deletes.trim(), "--force c1", "the rollback was tried");
    runtime.assert_nothing_left();
}

#[tokio::test]
async fn a_flood_on_both_streams_is_cut_at_the_limit_and_parsing_refused() {
    let runtime = Runtime::new(
        "state) head -c 268435456 /dev/zero; head -c 268435456 /dev/zero >&2 ;;
         kill) yes 'the same complaint' | head -c 268435456 >&2; exit 1 ;;",
    );
    let timeout = Duration::from_secs(60);
    let backend = runtime.backend(timeout);
    let started = Instant::now();
    match backend.state(&c1()).await {
        Err(Error::OutputTruncated { stream, limit, .. }) => assert_eq!((stream, limit), ("stdout", OUTPUT_LIMIT)),
        other => panic!("a flooded state: {other:?}"),
    }
    match backend.kill(&c1(), Signal::KILL, KillScope::Init).await {
        Err(Error::RuntimeFailed(failure)) => {
            assert!(failure.message.len() < 2 * OUTPUT_LIMIT, "message of {} bytes", failure.message.len());
            assert!(failure.message.starts_with("the same complaint"), "{}", &failure.message[..80]);
            assert!(failure.message.ends_with("(stderr cut at 65536 bytes)"), "the cut is said");
        }
        other => panic!("a flooded failure: {other:?}"),
    }
    within(started, timeout);
    runtime.assert_nothing_left();
    assert_memory_bounded();
}

#[tokio::test]
async fn a_huge_single_line_is_cut_and_a_huge_log_read_from_its_end() {
    let runtime = Runtime::new(
        "state) printf '{\"id\":\"'; head -c 33554432 /dev/zero | tr '\\0' 'x'; printf '\"}\\n' ;;
         delete) head -c 33554432 /dev/zero | tr '\\0' 'y' >> \"$log\"
                 printf '\\n{\"level\":\"error\",\"msg\":\"container c1 does not exist\"}\\n' >> \"$log\"; exit 1 ;;",
    );
    let timeout = Duration::from_secs(60);
    let backend = runtime.backend(timeout);
    let started = Instant::now();
    let result = backend.state(&c1()).await;
    assert!(matches!(result, Err(Error::OutputTruncated { stream: "stdout", .. })), "{result:?}");
    match backend.delete(&c1(), DeleteMode::IfStopped).await {
        Err(Error::NotFound { id, evidence: Existence::Refused(failure) }) => {
            assert_eq!(id, Some(c1()));
            assert_eq!(failure.message, "container c1 does not exist");
        }
        other => panic!("a delete whose log ends with the error after 32 MiB: {other:?}"),
    }
    within(started, timeout);
    runtime.assert_nothing_left();
    assert_memory_bounded();
}

#[tokio::test]
async fn a_runtime_killed_by_a_signal_mid_call_is_reported_as_such() {
    let runtime = Runtime::new("state) printf '{\"ociVersion\":'; kill -KILL $$ ;;");
    let timeout = Duration::from_secs(10);
    let started = Instant::now();
    match runtime.backend(timeout).state(&c1()).await {
        Err(Error::RuntimeFailed(failure)) => assert_eq!(failure.status, Exit::Signaled(Signal::KILL)),
        other => panic!("a state killed half way: {other:?}"),
    }
    within(started, timeout);
    runtime.assert_nothing_left();
}

#[tokio::test]
async fn a_runtime_that_fails_without_a_word_says_so() {
    let runtime = Runtime::new("delete) exit 3 ;;");
    let timeout = Duration::from_secs(10);
    let started = Instant::now();
    match runtime.backend(timeout).delete(&c1(), DeleteMode::Force).await {
        Err(err @ Error::RuntimeFailed(_)) => {
            let failure = err.failure().unwrap();
            assert_eq!((failure.status, failure.message.as_str()), (Exit::Exited(3), ""));
            let text = err.to_string();
            assert!(text.ends_with("exited with status 3 and printed no error message"), "{text}");
        }
        other => panic!("a silent failure: {other:?}"),
    }
    within(started, timeout);
    runtime.assert_nothing_left();
}

#[tokio::test]
async fn a_child_left_holding_the_output_open_neither_delays_the_call_nor_survives_it() {
    let runtime = Runtime::new(&format!(
        "state) sleep 1000 & record $!; echo '{STATE_C1}' ;;
         start) sleep 1000 >&2 & record $!; echo 'cannot start: wrong state' >&2; exit 1 ;;"
    ));
    let timeout = Duration::from_secs(30);
    let backend = runtime.backend(timeout);
    let started = Instant::now();
    let state = backend.state(&c1()).await.unwrap();
    assert_eq!(state.id, c1());
    let result = backend.start(&c1()).await;
    assert!(matches!(result, Err(Error::InvalidState { .. })), "{result:?}");
    let took = started.elapsed();
    assert!(took < Duration::from_secs(5), "waited for the children: {took:?}");
    runtime.assert_nothing_left();
}

#[tokio::test]
async fn garbage_for_a_state_is_a_parse_error_that_keeps_the_parser_s_reason() {
    let runtime = Runtime::new("state) echo 'this is not json' ;;");
    let timeout = Duration::from_secs(10);
    let started = Instant::now();
    match runtime.backend(timeout).state(&c1()).await {
        Err(err @ Error::Parse { .. }) => {
            assert!(std::error::Error::source(&err).is_some(), "the parser's error is kept");
            assert!(err.to_string().contains("this is not json"), "shows the input: {err}");
        }
        other => panic!("garbage state: {other:?}"),
    }
    within(started, timeout);
    runtime.assert_nothing_left();
}

#[tokio::test]
async fn a_file_without_execute_permission_is_not_executable_rather_than_missing() {
    let runtime = Runtime::new("state) echo '{}' ;;");
    let plain = runtime.dir.path().join("plain");
    install(&runtime.binary, &plain, "0644");
    let config = RuntimeConfig::default().binary(&plain).timeout(Duration::from_secs(5));
    match CliBackend::connect(runtime.family(), config.clone()).await {
        Err(Error::BinaryNotExecutable { path, .. }) => assert_eq!(path, plain),
        other => panic!("connect to a 0644 file: {other:?}"),
    }
    let version = RuntimeVersion::parse("script version 1.0.0").unwrap();
    let backend = CliBackend::with_version(runtime.family(), config, plain.clone(), version).unwrap();
    match backend.state(&c1()).await {
        Err(Error::BinaryNotExecutable { path, .. }) => assert_eq!(path, plain),
        other => panic!("a call to a 0644 file: {other:?}"),
    }
}

#[tokio::test]
async fn a_file_that_is_no_program_is_not_executable() {
    let dir = tempfile::tempdir().unwrap();
    let source = dir.path().join("noise.txt");
    std::fs::write(&source, [0x7f, 0x00, 0x13, 0x37, 0xff, 0xfe, 0x00, 0x01]).unwrap();
    let binary = dir.path().join("noise");
    install(&source, &binary, "0755");
    let version = RuntimeVersion::parse("script version 1.0.0").unwrap();
    let config = RuntimeConfig::default().binary(&binary).timeout(Duration::from_secs(5));
    let family = Arc::new(ScriptFamily { binary: binary.clone() });
    let backend = CliBackend::with_version(family, config, binary.clone(), version).unwrap();
    match backend.state(&c1()).await {
        Err(Error::BinaryNotExecutable { path, source }) => {
            assert_eq!((path, source.raw_os_error()), (binary, Some(libc::ENOEXEC)))
        }
        other => panic!("a call to a file of noise: {other:?}"),
    }
}

#[tokio::test]
async fn a_missing_binary_is_not_found() {
    let dir = tempfile::tempdir().unwrap();
    let binary = dir.path().join("nothing-here");
    let family = Arc::new(ScriptFamily { binary: binary.clone() });
    match CliBackend::connect(family, RuntimeConfig::default().binary(&binary)).await {
        Err(Error::BinaryNotFound { path, .. }) => assert_eq!(path, binary),
        other => panic!("connect to a missing binary: {other:?}"),
    }
}

#[tokio::test]
async fn a_version_that_hangs_during_connect_is_a_timeout() {
    let runtime = Runtime::new("--version) sleep 1000 & record $!; wait ;;");
    let timeout = Duration::from_millis(800);
    let started = Instant::now();
    match CliBackend::connect(runtime.family(), runtime.config(timeout)).await {
        Err(Error::Timeout { argv, after, .. }) => {
            assert_eq!(after, timeout);
            assert_eq!(argv.last().map(|arg| arg.to_string_lossy().into_owned()).as_deref(), Some("--version"));
        }
        other => panic!("connect with a hanging --version: {other:?}"),
    }
    within(started, timeout);
    runtime.assert_nothing_left();
}

#[tokio::test]
async fn a_version_that_leaves_a_child_on_its_output_answers_and_leaves_nothing() {
    let runtime = Runtime::new("--version) sleep 1000 & record $!; echo 'script version 2.3.4' ;;");
    let timeout = Duration::from_secs(30);
    let started = Instant::now();
    let backend = CliBackend::connect(runtime.family(), runtime.config(timeout)).await.unwrap();
    assert_eq!(backend.version().await.unwrap().version_text, "2.3.4");
    assert!(started.elapsed() < Duration::from_secs(5), "waited for the child: {:?}", started.elapsed());
    runtime.assert_nothing_left();
}

#[tokio::test]
async fn a_version_that_is_not_a_version_is_a_parse_error() {
    let runtime = Runtime::new("--version) echo 'Usage: runtime [OPTIONS]' ;;");
    let result = CliBackend::connect(runtime.family(), runtime.config(Duration::from_secs(10))).await;
    assert!(matches!(result, Err(Error::Parse { .. })), "{result:?}");
    runtime.assert_nothing_left();
}

#[tokio::test]
async fn a_criu_that_hangs_or_leaves_a_child_makes_checkpoint_unsupported_in_time() {
    let runtime = Runtime::new(
        "checkpoint|restore) echo usage ;;
         check) sleep 1000 & record $!; wait ;;",
    );
    let timeout = Duration::from_millis(800);
    let config = RuntimeConfig { criu: Some(runtime.binary.clone()), ..runtime.config(timeout) };
    let version = RuntimeVersion::parse("script version 1.0.0").unwrap();
    let backend = CliBackend::with_version(runtime.family(), config, runtime.binary.clone(), version).unwrap();
    let started = Instant::now();
    let features = backend.features().await.unwrap();
    within(started, timeout);
    let reason = features.checkpoint.reason().expect("checkpoint needs a working CRIU");
    assert!(reason.starts_with("`criu check` failed: "), "{reason}");
    assert!(reason.contains("did not finish within 800ms"), "{reason}");
    runtime.assert_nothing_left();
}

#[tokio::test]
async fn a_criu_feature_check_that_hangs_makes_the_option_unsupported_in_time() {
    let runtime = Runtime::new(
        r#"checkpoint|restore) echo usage ;;
         --version) echo 'Version: 4.1.1' ;;
         check) [ "$1" = --feature ] || exit 0; sleep 1000 & record $!; wait ;;"#,
    );
    let timeout = Duration::from_millis(800);
    let backend = probed_backend(&runtime, timeout);
    let started = Instant::now();
    let features = backend.features().await.unwrap();
    within(started, timeout);
    assert!(features.checkpoint.is_supported(), "{:?}", features.checkpoint);
    for (feature, support) in [("mem_dirty_track", &features.pre_dump), ("uffd-noncoop", &features.lazy_pages)] {
        let reason = support.reason().expect("an option whose feature check never ends");
        assert!(reason.starts_with(&format!("`criu check --feature {feature}` failed: ")), "{reason}");
        assert!(reason.contains("did not finish within 800ms"), "{reason}");
    }
    runtime.assert_nothing_left();
}

#[tokio::test]
async fn a_runtime_that_never_reads_its_stdin_does_not_hold_the_call() {
    let runtime = Runtime::new("update) exit 0 ;;");
    let timeout = Duration::from_secs(10);
    let started = Instant::now();
    runtime.backend(timeout).update(&c1(), &LinuxResources::default()).await.unwrap();
    within(started, timeout);
    runtime.assert_nothing_left();
}

#[tokio::test]
async fn a_runtime_that_closes_its_output_and_stays_is_killed_at_its_timeout() {
    let runtime = Runtime::new("ps) exec >&- 2>&-; sleep 1000 & record $!; wait ;;");
    let timeout = Duration::from_millis(800);
    let started = Instant::now();
    let result = runtime.backend(timeout).ps(&c1()).await;
    assert!(matches!(result, Err(Error::Timeout { .. })), "{result:?}");
    within(started, timeout);
    runtime.assert_nothing_left();
}

/// A backend whose feature probes end at once: the script stands in for CRIU too.
fn probed_backend(runtime: &Runtime, timeout: Duration) -> CliBackend {
    let config = RuntimeConfig { criu: Some(runtime.binary.clone()), ..runtime.config(timeout) };
    let version = RuntimeVersion::parse("script version 1.0.0").unwrap();
    CliBackend::with_version(runtime.family(), config, runtime.binary.clone(), version).unwrap()
}

#[tokio::test]
async fn a_dropped_event_stream_kills_its_runtime_and_what_it_started() {
    let runtime = Runtime::new(
        r#"events) [ "$1" = --help ] && exit 0; sleep 1000 & record $!
                 while true; do echo '{"type":"stats","id":"c1","data":{"pids":{"current":7}}}'; sleep 0.1; done ;;"#,
    );
    // Far shorter than the stream lasts: the stream has no deadline of its own.
    let timeout = Duration::from_millis(500);
    let backend = probed_backend(&runtime, timeout);
    let mut stream = backend.events(&c1(), Duration::from_millis(100)).await.unwrap();
    for _ in 0..10 {
        match stream.next().await {
            Some(Ok(Event::Stats(stats))) => assert_eq!(stats.pids.current, 7),
            other => panic!("a sample: {other:?}"),
        }
    }
    drop(stream);
    runtime.assert_nothing_left();
}

#[tokio::test]
async fn an_event_stream_whose_runtime_fails_ends_with_its_typed_error() {
    let runtime = Runtime::new(
        r#"events) [ "$1" = --help ] && exit 0; echo '{"type":"oom","id":"c1"}'
                 echo '{"level":"error","msg":"container c1 does not exist"}' >> "$log"; exit 1 ;;"#,
    );
    let backend = probed_backend(&runtime, Duration::from_secs(10));
    let mut stream = backend.events(&c1(), Duration::from_secs(1)).await.unwrap();
    assert!(matches!(stream.next().await, Some(Ok(Event::Oom))));
    match stream.next().await {
        Some(Err(Error::NotFound { id, evidence: Existence::Refused(failure) })) => {
            assert_eq!(id, Some(c1()));
            assert_eq!(failure.message, "container c1 does not exist");
        }
        other => panic!("after the runtime failed: {other:?}"),
    }
    assert!(stream.next().await.is_none(), "the stream ends with the error");
    runtime.assert_nothing_left();
}
