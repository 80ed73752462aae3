//! End-to-end tests of the `fake-oci` binary through its command line, the way a driver uses it.
//!
//! Flavours are selected as in production, through links named `runc`, `crun`, `youki` and
//! `criu`. Every invocation writes stdout and stderr to files rather than pipes: the container
//! init inherits `create`'s stdio, so reading pipes to EOF would wait for the container to exit.
//! Every test kills what it started and checks that none of its processes survived.

use std::cell::{Cell, RefCell};
use std::fs::{self, File};
use std::io::Read;
use std::os::unix::fs::symlink;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde_json::{Value, json};
use tempfile::TempDir;

const FLAVOURS: [&str; 3] = ["runc", "crun", "youki"];
const TIMEOUT: Duration = Duration::from_secs(20);

/// What one invocation did.
#[derive(Debug)]
struct Out {
    code: Option<i32>,
    signal: Option<i32>,
    stdout: String,
    stderr: String,
    elapsed: Duration,
}

impl Out {
    #[track_caller]
    fn ok(&self) -> &Self {
        assert_eq!(self.code, Some(0), "expected success: {self:#?}");
        self
    }

    #[track_caller]
    fn fails(&self, code: i32, stderr_contains: &str) -> &Self {
        assert_eq!(self.code, Some(code), "unexpected exit status: {self:#?}");
        assert!(self.stderr.contains(stderr_contains), "stderr lacks {stderr_contains:?}: {self:#?}");
        self
    }

    fn json(&self) -> Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {self:#?}"))
    }
}

/// (pid, start time): a process identity that survives pid reuse.
fn identity(pid: i32) -> Option<(char, u64)> {
    let text = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let fields: Vec<&str> = text[text.rfind(')')? + 1..].split_whitespace().collect();
    Some((fields.first()?.chars().next()?, fields.get(19)?.parse().ok()?))
}

/// One scratch area: links to the binary, a state root per flavour, bundles, and every process
/// the test started.
struct Env {
    dir: TempDir,
    counter: Cell<u32>,
    started: RefCell<Vec<(i32, u64)>>,
}

impl Env {
    fn new() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let bin = dir.path().join("bin");
        fs::create_dir(&bin).expect("bin dir");
        for name in ["runc", "crun", "youki", "criu"] {
            symlink(env!("CARGO_BIN_EXE_fake-oci"), bin.join(name)).expect("symlink");
        }
        Self { dir, counter: Cell::new(0), started: RefCell::new(Vec::new()) }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn root(&self, flavour: &str) -> PathBuf {
        self.path(&format!("root-{flavour}"))
    }

    fn next(&self) -> u32 {
        let n = self.counter.get() + 1;
        self.counter.set(n);
        n
    }

    /// A bundle whose process runs `args`; the rootfs directory stays empty.
    fn bundle(&self, args: &[&str]) -> PathBuf {
        let bundle = self.path(&format!("bundle-{}", self.next()));
        fs::create_dir_all(bundle.join("rootfs")).expect("rootfs");
        let config = json!({
            "ociVersion": "1.0.2",
            "process": {
                "user": {"uid": 0, "gid": 0},
                "args": args,
                "env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "GREETING=hello"],
                "cwd": "/"
            },
            "root": {"path": "rootfs"},
            "linux": {"resources": {"memory": {"limit": 134217728}}}
        });
        fs::write(bundle.join("config.json"), config.to_string()).expect("config.json");
        bundle
    }

    fn spawn(
        &self,
        program: &str,
        args: &[&str],
        envs: &[(&str, &str)],
        stdin: Option<&str>,
    ) -> (Child, PathBuf, PathBuf) {
        let n = self.next();
        let out = self.path(&format!("stdout-{n}"));
        let err = self.path(&format!("stderr-{n}"));
        let mut command = Command::new(self.path("bin").join(program));
        command
            .args(args)
            .env_remove("FAKE_OCI_FAULTS")
            .env_remove("FAKE_OCI_VERSION")
            .envs(envs.iter().copied())
            .current_dir(self.dir.path())
            .stdout(File::create(&out).expect("stdout file"))
            .stderr(File::create(&err).expect("stderr file"));
        match stdin {
            Some(text) => {
                let input = self.path(&format!("stdin-{n}"));
                fs::write(&input, text).expect("stdin file");
                command.stdin(File::open(&input).expect("stdin"));
            }
            None => {
                command.stdin(Stdio::null());
            }
        }
        (command.spawn().expect("spawn fake-oci"), out, err)
    }

    /// Runs `program args...` to completion (with a timeout) and collects its output.
    fn invoke(&self, program: &str, args: &[&str], envs: &[(&str, &str)], stdin: Option<&str>) -> Out {
        let started = Instant::now();
        let (mut child, out, err) = self.spawn(program, args, envs, stdin);
        let status = loop {
            if let Some(status) = child.try_wait().expect("wait") {
                break status;
            }
            if started.elapsed() > TIMEOUT {
                let _ = child.kill();
                let _ = child.wait();
                panic!("{program} {args:?} did not finish");
            }
            thread::sleep(Duration::from_millis(2));
        };
        Out {
            code: status.code(),
            signal: status.signal(),
            stdout: fs::read_to_string(out).unwrap_or_default(),
            stderr: fs::read_to_string(err).unwrap_or_default(),
            elapsed: started.elapsed(),
        }
    }

    /// Runs a runtime command with `--root` set for the flavour.
    fn rt(&self, flavour: &str, args: &[&str]) -> Out {
        self.rt_env(flavour, args, &[])
    }

    fn rt_env(&self, flavour: &str, args: &[&str], envs: &[(&str, &str)]) -> Out {
        let root = self.root(flavour);
        let mut full = vec!["--root", root.to_str().expect("utf-8 path")];
        full.extend_from_slice(args);
        self.invoke(flavour, &full, envs, None)
    }

    fn state(&self, flavour: &str, id: &str) -> Value {
        self.rt(flavour, &["state", id]).ok().json()
    }

    fn status(&self, flavour: &str, id: &str) -> String {
        self.state(flavour, id)["status"].as_str().expect("status").to_string()
    }

    #[track_caller]
    fn wait_status(&self, flavour: &str, id: &str, wanted: &str) {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let status = self.status(flavour, id);
            if status == wanted {
                return;
            }
            assert!(Instant::now() < deadline, "{id} stayed {status}, wanted {wanted}");
            thread::sleep(Duration::from_millis(10));
        }
    }

    /// Remembers a process the test caused, for the final check.
    fn track(&self, pid: i64) {
        let pid = i32::try_from(pid).expect("pid");
        assert!(pid > 0, "pid {pid}");
        if let Some((_, start)) = identity(pid) {
            self.started.borrow_mut().push((pid, start));
        }
    }

    /// Creates a container from a fresh bundle and records its init.
    fn create(&self, flavour: &str, id: &str, args: &[&str]) -> i64 {
        let bundle = self.bundle(args);
        self.rt(flavour, &["create", "--bundle", bundle.to_str().expect("utf-8"), id]).ok();
        let pid = self.state(flavour, id)["pid"].as_i64().expect("pid");
        self.track(pid);
        pid
    }

    fn create_started(&self, flavour: &str, id: &str, args: &[&str]) -> i64 {
        let pid = self.create(flavour, id, args);
        self.rt(flavour, &["start", id]).ok();
        pid
    }

    fn tracked_alive(&self) -> Vec<i32> {
        self.started
            .borrow()
            .iter()
            .filter(|(pid, start)| {
                identity(*pid).is_some_and(|(state, now)| now == *start && !matches!(state, 'Z' | 'X'))
            })
            .map(|(pid, _)| *pid)
            .collect()
    }

    /// Force-deletes every container and asserts that no process the test started survived.
    fn finish(self) {
        for flavour in FLAVOURS {
            if !self.root(flavour).exists() {
                continue;
            }
            let ids = self.rt(flavour, &["list", "-q"]).stdout;
            for id in ids.lines().filter(|l| !l.is_empty()) {
                self.rt(flavour, &["delete", "--force", id]).ok();
            }
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        while !self.tracked_alive().is_empty() && Instant::now() < deadline {
            thread::sleep(Duration::from_millis(10));
        }
        let survivors = self.tracked_alive();
        assert!(survivors.is_empty(), "processes survived: {survivors:?}");
    }
}

impl Drop for Env {
    /// After a failed assertion, still kill whatever is left.
    fn drop(&mut self) {
        for pid in self.tracked_alive() {
            let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
        }
    }
}

fn lifecycle(flavour: &str) {
    let env = Env::new();
    let bundle = env.bundle(&["sleep", "100"]);
    let pid_file = env.path("init.pid");
    env.rt(
        flavour,
        &[
            "create",
            "--bundle",
            bundle.to_str().expect("utf-8"),
            "--pid-file",
            pid_file.to_str().expect("utf-8"),
            "life",
        ],
    )
    .ok();
    let written = fs::read_to_string(&pid_file).expect("pid file");
    assert!(written.chars().all(|c| c.is_ascii_digit()), "pid file {written:?}");

    let state = env.state(flavour, "life");
    let pid = state["pid"].as_i64().expect("pid");
    env.track(pid);
    assert!(pid > 0);
    assert_eq!(written, pid.to_string());
    assert_eq!(state["status"], "created");
    assert_eq!(state["id"], "life");
    assert_eq!(
        Path::new(state["bundle"].as_str().expect("bundle")),
        fs::canonicalize(&bundle).expect("canonical bundle")
    );
    match flavour {
        "runc" => {
            assert_eq!(state["ociVersion"], "1.0.2-dev");
            assert_eq!(state["owner"], "");
            let rootfs = state["rootfs"].as_str().expect("rootfs");
            assert!(rootfs.starts_with('/') && rootfs.ends_with("/rootfs"), "{rootfs}");
            let created = state["created"].as_str().expect("created");
            assert!(created.ends_with('Z') && created.contains('.'), "{created}");
        }
        "crun" => {
            assert_eq!(state["ociVersion"], "1.0.0");
            assert_eq!(state["rootfs"], "rootfs");
            assert_eq!(state["systemd-scope"], "");
            assert!(state["owner"].is_string());
        }
        _ => {
            assert_eq!(state["ociVersion"], "1.1.0");
            assert!(state.get("rootfs").is_none());
            assert!(state["owner"].is_u64());
        }
    }

    env.rt(flavour, &["start", "life"]).ok();
    assert_eq!(env.status(flavour, "life"), "running");

    let echo = env.rt(flavour, &["exec", "life", "echo", "hi"]);
    echo.ok();
    assert_eq!(echo.stdout, "hi\n");
    let greeting = env.rt(flavour, &["exec", "life", "sh", "-c", "echo $GREETING"]);
    assert_eq!(greeting.stdout, "hello\n", "exec inherits process.env");
    assert_eq!(env.rt(flavour, &["exec", "life", "sh", "-c", "exit 7"]).code, Some(7));

    env.rt(flavour, &["pause", "life"]).ok();
    assert_eq!(env.status(flavour, "life"), "paused");
    let deadline = Instant::now() + Duration::from_secs(2);
    while identity(i32::try_from(pid).expect("pid")).map(|s| s.0) != Some('T') {
        assert!(Instant::now() < deadline, "the init was not stopped");
        thread::sleep(Duration::from_millis(5));
    }
    env.rt(flavour, &["resume", "life"]).ok();
    assert_eq!(env.status(flavour, "life"), "running");

    let kill_args: &[&str] = if flavour == "youki" { &["kill", "life", "TERM"] } else { &["kill", "life"] };
    env.rt(flavour, kill_args).ok();
    env.wait_status(flavour, "life", "stopped");
    let stopped = env.state(flavour, "life");
    let expected_pid = if flavour == "youki" { pid } else { 0 };
    assert_eq!(stopped["pid"].as_i64(), Some(expected_pid));

    env.rt(flavour, &["delete", "life"]).ok();
    assert_eq!(env.rt(flavour, &["state", "life"]).code, Some(1));
    assert!(!env.root(flavour).join("life").exists());
    env.finish();
}

#[test]
fn lifecycle_runc() {
    lifecycle("runc");
}

#[test]
fn lifecycle_crun() {
    lifecycle("crun");
}

#[test]
fn lifecycle_youki() {
    lifecycle("youki");
}

#[test]
fn create_returns_promptly_even_with_piped_stdio() {
    let env = Env::new();
    for flavour in FLAVOURS {
        let bundle = env.bundle(&["sleep", "100"]);
        let root = env.root(flavour);
        let started = Instant::now();
        let mut child = Command::new(env.path("bin").join(flavour))
            .args(["--root", root.to_str().expect("utf-8")])
            .args(["create", "--bundle", bundle.to_str().expect("utf-8"), "piped"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn create");
        let status = loop {
            if let Some(status) = child.try_wait().expect("wait") {
                break status;
            }
            assert!(started.elapsed() < Duration::from_secs(5), "create hung");
            thread::sleep(Duration::from_millis(2));
        };
        assert!(status.success(), "{flavour} create failed");
        env.track(env.state(flavour, "piped")["pid"].as_i64().expect("pid"));

        // The init holds the pipes; they reach EOF once the container is gone.
        let mut stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = mpsc::channel();
        thread::spawn(move || {
            let mut text = String::new();
            let _ = stdout.read_to_string(&mut text);
            let _ = tx.send(text);
        });
        assert!(rx.recv_timeout(Duration::from_millis(100)).is_err(), "pipe closed early");
        env.rt(flavour, &["delete", "--force", "piped"]).ok();
        let text = rx.recv_timeout(Duration::from_secs(5)).expect("EOF after delete");
        assert_eq!(text, "");
    }
    env.finish();
}

/// The last record of a JSON log file.
fn last_record(path: &Path) -> (String, Value) {
    let text = fs::read_to_string(path).expect("log file");
    let line = text.lines().last().expect("a record").to_string();
    let value = serde_json::from_str(&line).expect("JSON record");
    (line, value)
}

#[test]
fn not_found_wording_exit_codes_and_log_records() {
    let env = Env::new();
    // (flavour, extra environment, command, expected message)
    type Case = (&'static str, &'static [(&'static str, &'static str)], &'static str, &'static str);
    let cases: &[Case] = &[
        ("runc", &[], "state", "container does not exist"),
        ("crun", &[], "state", "error opening file `ROOT/ghost/status`: No such file or directory"),
        ("crun", &[("FAKE_OCI_VERSION", "1.22.0")], "state", "container `ghost` does not exist"),
        ("youki", &[], "state", "container ghost does not exist"),
        ("crun", &[], "delete", "cannot open directory 'ROOT/ghost': No such file or directory"),
    ];
    for (flavour, envs, command, message) in cases {
        let root = env.root(flavour);
        let message = message.replace("ROOT", root.to_str().expect("utf-8"));
        let log = env.path(&format!("log-{}", env.next()));
        let log_arg = log.to_str().expect("utf-8");
        let out = env.rt_env(flavour, &["--log", log_arg, "--log-format", "json", command, "ghost"], envs);
        // Global options go before the command; rt() put --root first.
        out.fails(1, &message);
        let (line, record) = last_record(&log);
        match *flavour {
            "runc" => {
                assert!(line.starts_with(r#"{"level":"error","msg":"#), "{line}");
                assert_eq!(record["msg"], message);
            }
            "crun" => {
                assert!(line.starts_with(r#"{"msg":"#), "{line}");
                assert_eq!(record["level"], "error");
                assert_eq!(record["msg"], message);
            }
            _ => {
                assert!(line.starts_with(r#"{"timestamp":"#), "{line}");
                assert_eq!(record["level"], "ERROR");
                assert_eq!(record["target"], "youki");
                assert_eq!(record["message"], format!("error in executing command: {message}"));
            }
        }
        assert!(record.get("time").or(record.get("timestamp")).is_some());
    }

    for flavour in FLAVOURS {
        for command in ["start", "kill", "pause", "resume", "ps", "update", "delete"] {
            let out = env.rt(flavour, &[command, "ghost", "KILL"][..if command == "kill" { 3 } else { 2 }]);
            assert_eq!(out.code, Some(1), "{flavour} {command}: {out:#?}");
            assert!(out.stderr.contains("ghost") || out.stderr.contains("does not exist"), "{out:#?}");
        }
        // `delete --force` of an unknown container succeeds in all three.
        env.rt(flavour, &["delete", "--force", "ghost"]).ok();
    }
    env.rt("runc", &["exec", "ghost", "true"]).fails(255, "exec failed: container does not exist");
    env.rt("youki", &["exec", "ghost", "true"]).fails(255, "container state directory does not exist");
    env.rt("crun", &["exec", "ghost", "true"]).fails(1, "ghost");

    // Text logs get a line too.
    let log = env.path("text.log");
    env.rt("runc", &["--log", log.to_str().expect("utf-8"), "state", "ghost"]).fails(1, "container does not exist");
    let text = fs::read_to_string(&log).expect("text log");
    assert!(text.contains("level=error") && text.contains("container does not exist"), "{text}");
    env.finish();
}

#[test]
fn already_exists_wording() {
    let env = Env::new();
    for (flavour, message) in [
        ("runc", "container with given ID already exists"),
        ("crun", "container `twice` already exists"),
        ("youki", "container already exists"),
    ] {
        env.create(flavour, "twice", &["sleep", "100"]);
        let bundle = env.bundle(&["sleep", "100"]);
        env.rt(flavour, &["create", "-b", bundle.to_str().expect("utf-8"), "twice"]).fails(1, message);
    }
    env.finish();
}

#[test]
fn invalid_state_wording_runc() {
    let env = Env::new();
    let f = "runc";
    env.create(f, "c", &["sleep", "100"]);
    env.rt(f, &["pause", "c"]).ok(); // runc pauses created containers
    env.rt(f, &["start", "c"]).fails(1, "cannot start a container in the paused state");
    env.rt(f, &["resume", "c"]).ok();
    env.rt(f, &["start", "c"]).ok();
    env.rt(f, &["start", "c"]).fails(1, "cannot start an already running container");
    env.rt(f, &["delete", "c"]).fails(1, "cannot delete container c that is not stopped: running");
    env.rt(f, &["resume", "c"]).fails(1, "container not paused");
    env.rt(f, &["pause", "c"]).ok();
    env.rt(f, &["delete", "c"]).fails(1, "cannot delete container c that is not stopped: paused");
    env.rt(f, &["exec", "c", "true"]).fails(255, "cannot exec in a paused container (use --ignore-paused to override)");
    env.rt(f, &["resume", "c"]).ok();
    env.rt(f, &["kill", "c", "KILL"]).ok();
    env.wait_status(f, "c", "stopped");
    env.rt(f, &["start", "c"]).fails(1, "cannot start a container that has stopped");
    env.rt(f, &["pause", "c"]).fails(1, "container not running");
    env.rt(f, &["kill", "c"]).fails(1, "container not running");
    env.rt(f, &["kill", "--all", "c", "KILL"]).ok();
    env.rt(f, &["exec", "c", "true"]).fails(255, "exec failed: cannot exec in a stopped container");
    // urfave/cli lets flags follow the arguments.
    env.rt(f, &["delete", "c", "--force"]).ok();
    env.finish();
}

#[test]
fn invalid_state_wording_crun() {
    let env = Env::new();
    let f = "crun";
    env.create(f, "c", &["sleep", "100"]);
    env.rt(f, &["exec", "c", "true"]).fails(1, "the container `c` is not running");
    env.rt(f, &["start", "c"]).ok();
    env.rt(f, &["delete", "c"]).fails(1, "the container `c` is not in `created` or `stopped` state");
    env.rt(f, &["kill", "c", "9"]).ok();
    env.wait_status(f, "c", "stopped");
    env.rt(f, &["pause", "c"]).fails(1, "the container `c` is not running");
    env.rt(f, &["exec", "c", "true"]).fails(1, "the container `c` is not running");
    env.rt(f, &["start", "c"]).fails(1, "container `c` is not running");
    env.rt(f, &["kill", "c"]).fails(1, "kill container: No such process");
    env.rt(f, &["delete", "c"]).ok();
    // A created container is deleted (and its init killed) without --force.
    let pid = env.create(f, "d", &["sleep", "100"]);
    env.rt(f, &["delete", "d"]).ok();
    assert!(identity(i32::try_from(pid).expect("pid")).is_none_or(|s| matches!(s.0, 'Z' | 'X')));
    env.finish();
}

#[test]
fn invalid_state_wording_youki() {
    let env = Env::new();
    let f = "youki";
    let caused = "\n\nCaused by:\n    failed operation due to incompatible container status: ";
    env.create(f, "c", &["sleep", "100"]);
    env.rt(f, &["pause", "c"]).fails(1, &format!("failed to pause container c{caused}`Created`"));
    env.rt(f, &["exec", "c", "true"]).fails(255, "`Created`");
    env.rt(f, &["start", "c"]).ok();
    env.rt(f, &["start", "c"]).fails(1, &format!("failed to start container c{caused}`Running`"));
    env.rt(f, &["resume", "c"]).fails(1, &format!("failed to resume container c{caused}`Running`"));
    env.rt(f, &["delete", "c"]).fails(1, &format!("failed to delete container c{caused}`Running`"));
    env.rt(f, &["kill", "c", "SIGKILL"]).ok();
    env.wait_status(f, "c", "stopped");
    env.rt(f, &["kill", "c", "KILL"]).fails(1, &format!("container not running{caused}`Stopped`"));
    env.rt(f, &["exec", "c", "true"]).fails(255, &format!("{caused}`Stopped`"));
    // clap accepts options after positionals.
    env.rt(f, &["delete", "c", "-f"]).ok();
    env.finish();
}

#[test]
fn usage_errors_per_flavour() {
    let env = Env::new();
    // youki's kill has no default signal.
    env.rt("youki", &["kill", "c"]).fails(2, "error: the following required arguments were not provided:\n  <SIGNAL>");
    env.rt("runc", &["frobnicate"]).fails(3, "No help topic for 'frobnicate'");
    env.rt("crun", &["frobnicate"]).fails(1, "unknown command frobnicate");
    env.rt("youki", &["frobnicate"]).fails(2, "error: unrecognized subcommand 'frobnicate'");
    env.rt("crun", &["checkpoint", "c"]).fails(1, "unknown command checkpoint");
    env.rt("crun", &["restore", "c"]).fails(1, "unknown command restore");
    env.rt("youki", &["restore", "c"]).fails(2, "unrecognized subcommand 'restore'");
    env.rt("runc", &["checkpointt", "c"]).fails(3, "No help topic for 'checkpointt'");
    env.rt("runc", &["--bogus", "list"]).fails(1, "flag provided but not defined: -bogus");
    env.rt("crun", &["--bogus", "list"]).fails(1, "unrecognized option '--bogus'");
    env.rt("youki", &["--bogus", "list"]).fails(2, "error: unexpected argument '--bogus' found");
    env.rt("runc", &["state", "--bogus", "c"]).fails(1, "flag provided but not defined: -bogus");
    env.rt("runc", &["state"]).fails(1, "\"state\" requires exactly 1 argument(s)");
    env.rt("youki", &["checkpointt", "--pre-dump", "c"]).fails(2, "unexpected argument '--pre-dump' found");
    for flavour in FLAVOURS {
        let help = env.rt(flavour, &["state", "--help"]);
        help.ok();
        assert!(help.stdout.contains("state"), "{help:#?}");
        env.rt(flavour, &["kill", "--help"]).ok();
        env.rt(flavour, &["kill", "-h"]).ok();
    }
    // Both option spellings work.
    let root = env.root("runc");
    let root_eq = format!("--root={}", root.display());
    env.invoke("runc", &[&root_eq, "list", "--format=json"], &[], None).ok();
    env.finish();
}

#[test]
fn list_shapes() {
    let env = Env::new();
    assert_eq!(env.rt("runc", &["list", "--format", "json"]).ok().stdout.trim(), "null");
    assert_eq!(env.rt("crun", &["list", "-f", "json"]).ok().stdout.trim(), "[]");
    for flavour in FLAVOURS {
        let pid = env.create_started(flavour, "one", &["sleep", "100"]);
        let quiet = env.rt(flavour, &["list", "-q"]);
        assert_eq!(quiet.ok().stdout, "one\n");
        if flavour == "youki" {
            let table = env.rt(flavour, &["list", "--format", "json"]);
            let lines: Vec<&str> = table.ok().stdout.lines().collect();
            let header: Vec<&str> = lines[0].split_whitespace().collect();
            assert_eq!(header, ["ID", "PID", "STATUS", "BUNDLE", "CREATED", "CREATOR"]);
            let row: Vec<&str> = lines[1].split_whitespace().collect();
            assert_eq!(row[..3], ["one", &pid.to_string(), "Running"]);
        } else {
            let items = env.rt(flavour, &["list", "--format", "json"]).ok().json();
            let items = items.as_array().expect("array");
            assert_eq!(items.len(), 1);
            assert_eq!(items[0]["id"], "one");
            assert_eq!(items[0]["status"], "running");
            assert_eq!(items[0]["pid"].as_i64(), Some(pid));
            let table = env.rt(flavour, &["list"]).ok().stdout.clone();
            assert!(table.lines().nth(1).is_some_and(|l| l.starts_with("one ")), "{table}");
        }
    }
    env.finish();
}

fn resources(env: &Env, flavour: &str, id: &str) -> Value {
    let path = env.root(flavour).join(id).join("resources.json");
    serde_json::from_str(&fs::read_to_string(path).expect("resources.json")).expect("JSON")
}

#[test]
fn update_records_resources() {
    let env = Env::new();
    for flavour in FLAVOURS {
        env.create_started(flavour, "u", &["sleep", "100"]);
        assert_eq!(resources(&env, flavour, "u")["memory"]["limit"], 134217728);

        env.rt(flavour, &["update", "--memory", "67108864", "--pids-limit", "42", "u"]).ok();
        let doc = resources(&env, flavour, "u");
        assert_eq!(doc["memory"]["limit"], 67108864);
        assert_eq!(doc["pids"]["limit"], 42);

        let file = env.path(&format!("res-{flavour}.json"));
        fs::write(&file, r#"{"cpu":{"shares":512}}"#).expect("resources file");
        env.rt(flavour, &["update", "-r", file.to_str().expect("utf-8"), "u"]).ok();
        let doc = resources(&env, flavour, "u");
        assert_eq!(doc["cpu"]["shares"], 512);
        assert!(doc.get("memory").is_none(), "the last document wins: {doc}");

        let root = env.root(flavour);
        let stdin_update = env.invoke(
            flavour,
            &["--root", root.to_str().expect("utf-8"), "update", "-r", "-", "u"],
            &[],
            Some(r#"{"memory":{"limit":33554432}}"#),
        );
        stdin_update.ok();
        let limit = resources(&env, flavour, "u")["memory"]["limit"].clone();
        if flavour == "youki" {
            // youki 0.7.0 ignores `-r -`.
            assert_eq!(limit, Value::Null);
        } else {
            assert_eq!(limit, 33554432);
        }

        fs::write(&file, "{not json").expect("bad file");
        env.rt(flavour, &["update", "-r", file.to_str().expect("utf-8"), "u"]).fails(1, "");
    }
    env.rt("runc", &["update", "--memory", "64m", "u"]).ok();
    assert_eq!(resources(&env, "runc", "u")["memory"]["limit"], 67108864);
    env.rt("youki", &["update", "--memory", "64m", "u"]).fails(2, "invalid value '64m'");
    env.finish();
}

#[test]
fn exec_detached_ps_and_kill_all() {
    let env = Env::new();
    for flavour in FLAVOURS {
        let init = env.create_started(flavour, "k", &["sh", "-c", "sleep 100 & wait"]);
        let pid_file = env.path(&format!("exec-{flavour}.pid"));
        env.rt(flavour, &["exec", "-d", "--pid-file", pid_file.to_str().expect("utf-8"), "k", "sleep", "100"]).ok();
        let exec_pid: i64 = fs::read_to_string(&pid_file).expect("pid file").parse().expect("pid");
        env.track(exec_pid);
        let deadline = Instant::now() + Duration::from_secs(5);
        let pids = loop {
            let pids: Vec<i64> = env
                .rt(flavour, &["ps", "--format", "json", "k"])
                .ok()
                .json()
                .as_array()
                .expect("array")
                .iter()
                .filter_map(Value::as_i64)
                .collect();
            if pids.len() >= 3 || Instant::now() > deadline {
                break pids;
            }
            thread::sleep(Duration::from_millis(10));
        };
        assert!(pids.contains(&init) && pids.contains(&exec_pid), "{pids:?}");
        assert!(pids.len() >= 3, "init, its sleep and the exec: {pids:?}");
        for pid in &pids {
            env.track(*pid);
        }
        env.rt(flavour, &["kill", "--all", "k", "KILL"]).ok();
        env.wait_status(flavour, "k", "stopped");
        let deadline = Instant::now() + Duration::from_secs(5);
        while !env.tracked_alive().is_empty() && Instant::now() < deadline {
            thread::sleep(Duration::from_millis(10));
        }
        assert!(env.tracked_alive().is_empty(), "kill --all missed {:?}", env.tracked_alive());
        env.rt(flavour, &["delete", "k"]).ok();
    }
    env.finish();
}

#[test]
fn exec_process_file_and_missing_executable() {
    let env = Env::new();
    env.create_started("runc", "p", &["sleep", "100"]);
    let process = env.path("process.json");
    fs::write(
        &process,
        json!({"user": {"uid": 0, "gid": 0}, "args": ["sh", "-c", "echo $X; exit 3"], "env": ["X=from-file", "PATH=/usr/bin:/bin"], "cwd": "/"}).to_string(),
    )
    .expect("process.json");
    let out = env.rt("runc", &["exec", "--process", process.to_str().expect("utf-8"), "p"]);
    assert_eq!(out.code, Some(3));
    assert_eq!(out.stdout, "from-file\n");
    let out = env.rt("runc", &["exec", "-e", "X=flag", "p", "sh", "-c", "echo $X"]);
    assert_eq!(out.ok().stdout, "flag\n");
    env.rt("runc", &["exec", "p", "no-such-binary"]).fails(
        255,
        "exec failed: unable to start container process: exec: \"no-such-binary\": executable file not found in $PATH",
    );
    env.create_started("youki", "p", &["sleep", "100"]);
    env.rt("youki", &["exec", "p", "no-such-binary"]).fails(255, "executable 'no-such-binary' not found in $PATH");
    let bundle = env.bundle(&["no-such-binary"]);
    env.rt("runc", &["create", "-b", bundle.to_str().expect("utf-8"), "bad"])
        .fails(1, "runc create failed: unable to start container process: exec: \"no-such-binary\"");
    assert!(!env.root("runc").join("bad").exists());
    let empty = env.path("empty-bundle");
    fs::create_dir(&empty).expect("empty bundle");
    env.rt("runc", &["create", "-b", empty.to_str().expect("utf-8"), "none"])
        .fails(1, "JSON specification file config.json not found");
    env.finish();
}

#[test]
fn run_waits_and_removes_the_container() {
    let env = Env::new();
    for flavour in FLAVOURS {
        let bundle = env.bundle(&["sh", "-c", "echo ran; exit 4"]);
        let out = env.rt(flavour, &["run", "-b", bundle.to_str().expect("utf-8"), "r"]);
        assert_eq!(out.code, Some(4), "{out:#?}");
        assert_eq!(out.stdout, "ran\n");
        assert_eq!(env.rt(flavour, &["state", "r"]).code, Some(1));
    }
    env.finish();
}

#[test]
fn checkpoint_and_restore() {
    let env = Env::new();
    let images = env.path("images");
    let images_arg = images.to_str().expect("utf-8");
    let bundle = env.bundle(&["sleep", "100"]);
    let bundle_arg = bundle.to_str().expect("utf-8");

    // runc: checkpoint stops (and, like runc, destroys) the container; restore revives it.
    let pid = env.create_started("runc", "cr", &["sleep", "100"]);
    env.rt("runc", &["checkpoint", "--image-path", images_arg, "cr"]).ok();
    assert!(images.join("inventory.img").is_file());
    assert!(images.join("fake-oci-checkpoint.json").is_file());
    assert!(identity(i32::try_from(pid).expect("pid")).is_none_or(|s| matches!(s.0, 'Z' | 'X')));
    env.rt("runc", &["state", "cr"]).fails(1, "container does not exist");

    let pid_file = env.path("restored.pid");
    env.rt(
        "runc",
        &[
            "restore",
            "--image-path",
            images_arg,
            "--bundle",
            bundle_arg,
            "--detach",
            "--pid-file",
            pid_file.to_str().expect("utf-8"),
            "cr",
        ],
    )
    .ok();
    let restored: i64 = fs::read_to_string(&pid_file).expect("pid file").parse().expect("pid");
    env.track(restored);
    let state = env.state("runc", "cr");
    assert_eq!(state["status"], "running");
    assert_eq!(state["pid"].as_i64(), Some(restored));
    env.rt("runc", &["restore", "--image-path", images_arg, "-b", bundle_arg, "-d", "cr"])
        .fails(1, "container with given ID already exists");
    let nowhere = env.path("no-images");
    env.rt("runc", &["restore", "--image-path", nowhere.to_str().expect("utf-8"), "-b", bundle_arg, "-d", "other"])
        .fails(1, "inventory.img");

    env.rt("runc", &["checkpoint", "--image-path", images_arg, "--leave-running", "cr"]).ok();
    assert_eq!(env.status("runc", "cr"), "running");
    env.create("runc", "fresh", &["sleep", "100"]);
    env.rt("runc", &["checkpoint", "--image-path", images_arg, "fresh"])
        .fails(1, "Container cannot be checkpointed in created state");

    // youki: `checkpointt`, and the container stays behind as stopped.
    let youki_images = env.path("youki-images");
    env.create_started("youki", "cy", &["sleep", "100"]);
    env.rt("youki", &["checkpointt", "--image-path", youki_images.to_str().expect("utf-8"), "cy"]).ok();
    assert!(youki_images.join("inventory.img").is_file());
    env.wait_status("youki", "cy", "stopped");
    env.finish();
}

#[test]
fn features_documents() {
    let env = Env::new();
    let runc = env.rt("runc", &["features"]).ok().json();
    assert_eq!(runc["ociVersionMin"], "1.0.0");
    assert!(runc["hooks"].as_array().is_some_and(|h| !h.is_empty()));
    assert!(runc["mountOptions"].is_array());
    assert!(runc["linux"]["namespaces"].as_array().is_some_and(|n| n.contains(&json!("pid"))));
    assert!(runc["linux"]["capabilities"].is_array());
    assert_eq!(runc["linux"]["cgroup"]["v2"], true);
    assert_eq!(runc["linux"]["seccomp"]["enabled"], true);
    assert!(runc["linux"]["seccomp"]["archs"].is_array());
    assert!(runc["linux"]["apparmor"]["enabled"].is_boolean());
    assert!(runc["linux"]["selinux"]["enabled"].is_boolean());
    assert!(runc["annotations"].is_object());

    let youki = env.rt("youki", &["features"]).ok().json();
    assert_eq!(youki["ociVersionMax"], "1.1.0");
    assert_eq!(youki["annotations"], Value::Null);
    assert!(youki["linux"]["namespaces"].is_array());

    env.rt("crun", &["features"]).fails(1, "unknown command features");
    let crun = env.rt_env("crun", &["features"], &[("FAKE_OCI_VERSION", "1.8.6")]).ok().json();
    assert_eq!(crun["annotations"]["run.oci.crun.version"], "1.8.6");
    env.finish();
}

#[test]
fn versions_and_overrides() {
    let env = Env::new();
    let runc = env.invoke("runc", &["--version"], &[], None);
    assert_eq!(
        runc.ok().stdout,
        "runc version 1.1.5+fake\ncommit: fake\nspec: 1.0.2-dev\ngo: go1.19.8\nlibseccomp: 2.5.4\n"
    );
    assert!(env.invoke("runc", &["-v"], &[], None).ok().stdout.starts_with("runc version 1.1.5"));
    let crun = env.invoke("crun", &["--root", "/tmp/x", "--version"], &[], None);
    assert_eq!(
        crun.ok().stdout,
        "crun version 1.8.1\ncommit: fake\nrundir: /tmp/x\nspec: 1.0.0\n+SYSTEMD +SELINUX +APPARMOR +CAP +SECCOMP +EBPF +YAJL\n"
    );
    let youki = env.invoke("youki", &["-V"], &[], None);
    assert_eq!(youki.ok().stdout, "youki version: 0.7.0\ncommit: fake\nspec: 1.1.0\n");
    let overridden = [("FAKE_OCI_VERSION", "1.22.3")];
    assert!(env.invoke("crun", &["--version"], &overridden, None).ok().stdout.starts_with("crun version 1.22.3\n"));
    assert!(
        env.invoke("runc", &["--version"], &overridden, None).ok().stdout.starts_with("runc version 1.22.3+fake\n")
    );
    assert!(env.invoke("youki", &["--version"], &overridden, None).ok().stdout.starts_with("youki version: 1.22.3\n"));

    // Without a runtime name in argv[0], --flavour selects (runc by default).
    let plain = Command::new(env!("CARGO_BIN_EXE_fake-oci"))
        .args(["--flavour", "youki", "--version"])
        .output()
        .expect("fake-oci");
    assert!(String::from_utf8_lossy(&plain.stdout).starts_with("youki version: 0.7.0"));
    let default = Command::new(env!("CARGO_BIN_EXE_fake-oci")).arg("--version").output().expect("fake-oci");
    assert!(String::from_utf8_lossy(&default.stdout).starts_with("runc version"));
    env.finish();
}

#[test]
fn fake_criu() {
    let env = Env::new();
    assert_eq!(env.invoke("criu", &["check"], &[], None).ok().stdout, "Looks good.\n");
    assert_eq!(env.invoke("criu", &["--version"], &[], None).ok().stdout, "Version: 3.17.1\n");
    fs::write(env.path("bin").join("criu-version"), "4.0\n").expect("criu-version");
    let newer = env.invoke("criu", &["--version"], &[], None);
    assert_eq!(newer.ok().stdout, "Version: 4.0\n");
    fs::write(env.path("bin").join("criu-check-error"), "vdso mismatch").expect("criu-check-error");
    let broken = env.invoke("criu", &["check"], &[], None);
    broken.fails(1, "Error (criu/vdso.c:613): vdso mismatch");
    assert!(broken.stderr.contains("Error (criu/crtools.c:260): Could not initialize kernel features detection."));
    env.finish();
}

#[test]
fn fault_injection() {
    let env = Env::new();
    let faults = |rule: &'static str| [("FAKE_OCI_FAULTS", rule)];

    // fail: a runtime error with the flavour's log record.
    let log = env.path("faults.log");
    let log_arg = log.to_str().expect("utf-8");
    env.rt_env("crun", &["--log", log_arg, "--log-format", "json", "list"], &faults("list=fail:injected boom"))
        .fails(1, "injected boom");
    let (line, record) = last_record(&log);
    assert!(line.starts_with(r#"{"msg":"injected boom""#), "{line}");
    assert_eq!(record["level"], "error");
    env.rt_env("runc", &["exec", "x", "true"], &faults("exec=fail:no exec")).fails(255, "no exec");

    // hang: never finishes on its own.
    let root = env.root("runc");
    let (mut child, _, _) =
        env.spawn("runc", &["--root", root.to_str().expect("utf-8"), "list"], &faults("list=hang"), None);
    thread::sleep(Duration::from_millis(300));
    assert!(child.try_wait().expect("wait").is_none(), "hang finished");
    child.kill().expect("kill");
    child.wait().expect("reap");

    // signal: dies by that signal.
    let killed = env.rt_env("runc", &["list"], &faults("*=signal:9"));
    assert_eq!((killed.code, killed.signal), (None, Some(9)));

    // malformed-json: broken output, success status.
    let broken = env.rt_env("youki", &["state", "x"], &faults("state=malformed-json"));
    assert_eq!(broken.ok().stdout, "{\"broken");
    assert!(serde_json::from_str::<Value>(&broken.stdout).is_err());

    // slow: delayed, then normal.
    let slow = env.rt_env("runc", &["list", "-q"], &faults("list=slow:300"));
    slow.ok();
    assert!(slow.elapsed >= Duration::from_millis(300), "{:?}", slow.elapsed);

    // no-pid-file: everything but the pid file.
    let bundle = env.bundle(&["sleep", "100"]);
    let pid_file = env.path("never.pid");
    env.rt_env(
        "crun",
        &["create", "-b", bundle.to_str().expect("utf-8"), "--pid-file", pid_file.to_str().expect("utf-8"), "np"],
        &faults("create=no-pid-file"),
    )
    .ok();
    env.track(env.state("crun", "np")["pid"].as_i64().expect("pid"));
    assert!(!pid_file.exists());

    // Rules in <root>/faults apply to every invocation with that root; rules combine.
    fs::write(env.root("crun").join("faults"), "# comment\n\nstate=fail:from the file\n").expect("faults file");
    env.rt("crun", &["state", "np"]).fails(1, "from the file");
    env.rt("crun", &["list", "-q"]).ok();
    fs::remove_file(env.root("crun").join("faults")).expect("remove faults");

    env.rt_env("runc", &["list"], &faults("list=explode")).fails(1, "invalid fault rule");
    env.finish();
}

#[test]
fn foreground_exec_relays_signals() {
    let env = Env::new();
    for flavour in FLAVOURS {
        env.create_started(flavour, "fg", &["sleep", "100"]);
        let root = env.root(flavour);
        let pid_file = env.path(&format!("fg-{flavour}.pid"));
        let (mut child, _, _) = env.spawn(
            flavour,
            &[
                "--root",
                root.to_str().expect("utf-8"),
                "exec",
                "--pid-file",
                pid_file.to_str().expect("utf-8"),
                "fg",
                "sleep",
                "100",
            ],
            &[],
            None,
        );
        let deadline = Instant::now() + Duration::from_secs(5);
        while !pid_file.exists() {
            assert!(Instant::now() < deadline, "no pid file from the foreground exec");
            thread::sleep(Duration::from_millis(5));
        }
        // The runtime relays signals before it writes the pid file.
        env.track(fs::read_to_string(&pid_file).expect("pid").parse().expect("pid"));
        let runtime = Pid::from_raw(i32::try_from(child.id()).expect("pid"));
        kill(runtime, Signal::SIGTERM).expect("signal the runtime");
        let status = loop {
            if let Some(status) = child.try_wait().expect("wait") {
                break status;
            }
            assert!(Instant::now() < deadline, "the exec'd process ignored the relayed SIGTERM");
            thread::sleep(Duration::from_millis(5));
        };
        assert_eq!(status.code(), Some(143), "{flavour}: 128 + SIGTERM");
    }
    env.finish();
}
