//! conmon's options beyond output, on real conmon and runc through the gate: an exit command
//! runs with its arguments once the exit is recorded and not before its delay; descriptors the
//! caller preserves are the container's fds 3 and 4, beside a reserved port; an embedding
//! process's listening descriptor (socket activation) is the container's fd 3, ahead of a
//! preserved one, with `LISTEN_FDS` set in the container when the listen pid is replaced; a
//! journal log's tag and conmon's own log level are taken by conmon; an sd-notify relay gets its socket in the bundle
//! and leaves nothing there. Nothing is left behind after each case.
//!
//! The expected values are facts the test makes itself: what it writes into the descriptors,
//! the arguments it gives the exit command, the times the files it reads were written. `-s`
//! (the systemd cgroup manager) is not run here: it needs systemd as the host's init, and the
//! command line carrying it is pinned by the driver's own tests.

mod support;
#[path = "support/through_conmon.rs"]
mod through_conmon;

use std::io::Write;
use std::net::{Ipv4Addr, TcpListener};
use std::os::fd::OwnedFd;
use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context, bail, ensure};
use backend_runc::Runc;
use conmon_driver::{ConmonLogLevel, ConmonMonitor};
use runtime_core::{
    CliBackend, ContainerId, CreateOptions, DeleteMode, Engine, Exit, ExitCommand, KillScope, LogDriver, LogOptions,
    MonitorStdio, PortProtocol, PortReservation, RuntimeConfig, Signal, StateRoot, SystemdPassthrough,
};
use testkit::bundle::BundleBuilder;
use testkit::harness::CaseResult;
use through_conmon::through_conmon;

/// How long any one step may take before the case fails instead of hanging.
const STEP: Duration = Duration::from_secs(30);

/// The seconds conmon waits before running the exit command.
const EXIT_DELAY_SECS: u16 = 2;

/// Creates, starts and waits for the container, which must exit 0.
async fn run_to_exit(engine: &Engine, id: &ContainerId, bundle: &Path, options: CreateOptions) -> anyhow::Result<()> {
    engine.create(id, bundle, options).await.context("create")?;
    engine.start(id).await.context("start")?;
    let exit = tokio::time::timeout(STEP, engine.wait(id)).await.context("no exit")??;
    ensure!(exit == Exit::Exited(0), "the container ended {exit:?}");
    Ok(())
}

/// The container's log, line by line.
async fn log_lines(engine: &Engine, id: &ContainerId) -> anyhow::Result<Vec<String>> {
    let mut reader = engine.logs(id, LogOptions::default()).await.context("logs")?;
    let mut lines = Vec::new();
    while let Some(line) = reader.next_line().await? {
        lines.push(String::from_utf8_lossy(&line.text).into_owned());
    }
    Ok(lines)
}

/// The live conmon of container `id`, from its pid file, and its command line.
fn conmon_cmdline(engine: &Engine, id: &ContainerId) -> anyhow::Result<Vec<String>> {
    let pid = std::fs::read_to_string(engine.state_root().files(id).dir.join("conmon.pid"))?;
    let raw = std::fs::read(format!("/proc/{}/cmdline", pid.trim()))?;
    Ok(raw.split(|byte| *byte == 0).map(|word| String::from_utf8_lossy(word).into_owned()).collect())
}

fn modified(path: &Path) -> anyhow::Result<SystemTime> {
    Ok(std::fs::metadata(path).with_context(|| format!("{}", path.display()))?.modified()?)
}

async fn an_exit_command_runs_with_its_arguments_after_the_exit_and_its_delay(conmon: PathBuf) -> CaseResult {
    let out = tempfile::tempdir()?;
    let report = out.path().join("report");
    // The command says whether the exit was recorded when it ran, then its arguments; written
    // aside and renamed, so that the file is whole once it is there.
    let script = r#"exit_file=$1; report=$2; shift 2
        { if [ -e "$exit_file" ]; then echo recorded; else echo unrecorded; fi; printf '%s\n' "$@"; } > "$report.tmp"
        mv "$report.tmp" "$report""#;
    let bundle = BundleBuilder::new(["sh", "-c", "exit 0"]);
    through_conmon(ConmonMonitor::new(conmon), "exitcmd", bundle, async |engine, id, bundle| {
        let exit_file = engine.state_root().files(id).exit_file;
        let args = ["-c", script, "exit-command", &exit_file.to_string_lossy(), &report.to_string_lossy()]
            .into_iter()
            .chain(["container cleanup", id.as_str()])
            .map(Into::into)
            .collect();
        let exit_command = ExitCommand { path: "/bin/sh".into(), args, delay_secs: EXIT_DELAY_SECS };
        let options = CreateOptions { exit_command: Some(exit_command), ..CreateOptions::default() };
        run_to_exit(engine, id, bundle, options).await?;
        ensure!(!report.exists(), "the exit command ran as soon as the exit was recorded, not after its delay");
        let deadline = Instant::now() + STEP;
        while !report.exists() {
            ensure!(Instant::now() < deadline, "the exit command never ran");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let said = std::fs::read_to_string(&report)?;
        ensure!(said == format!("recorded\ncontainer cleanup\n{id}\n"), "the exit command said {said:?}");
        let after = modified(&report)?.duration_since(modified(&exit_file)?)?;
        // The files' times are the kernel's coarse clock: a tick's worth is allowed.
        let delay = Duration::from_secs(EXIT_DELAY_SECS.into());
        ensure!(after + Duration::from_millis(20) >= delay, "ran {after:?} after the exit, before its delay");
        engine.delete(id, DeleteMode::IfStopped).await.context("delete")?;
        Ok(())
    })
    .await
}

/// Set (to the JSON of what to do) for a copy of this test binary that plays an embedding
/// program started by systemd's socket activation: its fd 3 is the listening descriptor and
/// `LISTEN_PID` names it. It runs the container to its end, prints its log's lines and deletes
/// it.
const ACTIVATED: &str = "CONMON_DRIVER_TEST_ACTIVATED";

/// The socket-activated embedding program: one container run through conmon with its
/// listening descriptor passed on and a file preserved after it.
fn activated(job: &str) -> anyhow::Result<()> {
    let job: serde_json::Value = serde_json::from_str(job)?;
    let text = |key: &str| job[key].as_str().map(str::to_owned).with_context(|| format!("no {key}"));
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    runtime.block_on(async {
        let config = RuntimeConfig::default().binary(text("runtime")?).root(text("runtime_root")?);
        let backend = CliBackend::connect(std::sync::Arc::new(Runc), config).await?;
        let monitor = std::sync::Arc::new(ConmonMonitor::new(text("conmon")?));
        let engine = Engine::new(std::sync::Arc::new(backend), monitor, StateRoot::open(text("state_root")?)?);
        let replace_listen_pid = job["replace_listen_pid"].as_bool().context("no replace_listen_pid")?;
        let options = CreateOptions {
            systemd: SystemdPassthrough { listen_fds: true, replace_listen_pid, ..SystemdPassthrough::default() },
            preserve_fds: vec![std::fs::File::open(text("preserved")?)?.into()],
            ..CreateOptions::default()
        };
        let id = ContainerId::new(text("id")?)?;
        run_to_exit(&engine, &id, text("bundle")?.as_ref(), options).await?;
        for line in log_lines(&engine, &id).await? {
            println!("{line}");
        }
        engine.delete(&id, DeleteMode::IfStopped).await.context("delete")?;
        anyhow::Ok(())
    })
}

async fn a_listening_descriptor_is_the_containers_fd_3_ahead_of_a_preserved_one(
    conmon: PathBuf,
    replace_listen_pid: bool,
) -> CaseResult {
    let out = tempfile::tempdir()?;
    let preserved = out.path().join("preserved");
    std::fs::write(&preserved, "read from the preserved fd\n")?;
    let script = r#"echo "LISTEN_FDS=$LISTEN_FDS"; cat <&3; cat <&4"#;
    let bundle = BundleBuilder::new(["sh", "-c", script]);
    let name = if replace_listen_pid { "listen-replaced" } else { "listen" };
    through_conmon(ConmonMonitor::new(&conmon), name, bundle, async |engine, id, bundle| {
        // The engine here only lends its roots: the embedding program runs the container.
        let global_args = engine.backend().global_args();
        let runtime_root = global_args.windows(2).find(|pair| pair[0] == "--root").context("no --root")?[1].clone();
        let job = serde_json::json!({
            "runtime": engine.backend().binary(),
            "runtime_root": runtime_root.to_string_lossy(),
            "conmon": conmon,
            "state_root": engine.state_root().path(),
            "id": id.as_str(),
            "bundle": bundle,
            "preserved": preserved,
            "replace_listen_pid": replace_listen_pid,
        });
        let mut command = std::process::Command::new("/bin/sh");
        // The shell names itself in LISTEN_PID and becomes the embedding program, same pid.
        command.args(["-c", r#"LISTEN_PID=$$ LISTEN_FDS=1 exec "$0""#]).arg(std::env::current_exe()?);
        command.env(ACTIVATED, job.to_string());
        let mapping = command_fds::FdMapping { parent_fd: pipe_holding("read from the listening fd\n")?, child_fd: 3 };
        command_fds::CommandFdExt::fd_mappings(&mut command, vec![mapping])?;
        let ran = command.output()?;
        ensure!(ran.status.success(), "the embedding program failed: {}", String::from_utf8_lossy(&ran.stderr));
        // runc sets LISTEN_FDS in the container only for descriptors it took as listening ones.
        let listen_fds = if replace_listen_pid { "LISTEN_FDS=1" } else { "LISTEN_FDS=" };
        let said = String::from_utf8_lossy(&ran.stdout);
        let expected = [listen_fds, "read from the listening fd", "read from the preserved fd"];
        ensure!(said.lines().eq(expected), "the container said {said:?}");
        Ok(())
    })
    .await
}

/// The read end of a pipe holding `text`, its write end closed.
fn pipe_holding(text: &str) -> anyhow::Result<OwnedFd> {
    let (read, write) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)?;
    std::fs::File::from(write).write_all(text.as_bytes())?;
    Ok(read)
}

async fn preserved_fds_are_the_containers_fd_3_and_4_beside_a_reserved_port(conmon: PathBuf) -> CaseResult {
    let out = tempfile::tempdir()?;
    let file = out.path().join("fd4");
    std::fs::write(&file, "read from fd 4\n")?;
    let port = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?.local_addr()?.port();
    let bundle = BundleBuilder::new(["sh", "-c", "cat <&3; cat <&4"]);
    through_conmon(ConmonMonitor::new(conmon), "fds", bundle, async |engine, id, bundle| {
        let preserve_fds = vec![pipe_holding("read from fd 3\n")?, std::fs::File::open(&file)?.into()];
        let reserved_ports =
            vec![PortReservation { protocol: PortProtocol::Tcp, host_ip: Ipv4Addr::LOCALHOST.into(), port }];
        let options = CreateOptions { preserve_fds, reserved_ports, ..CreateOptions::default() };
        engine.create(id, bundle, options).await.context("create")?;
        let bound = TcpListener::bind((Ipv4Addr::LOCALHOST, port));
        ensure!(bound.is_err(), "the reserved port {port} is free while the container lives");
        engine.start(id).await.context("start")?;
        let exit = tokio::time::timeout(STEP, engine.wait(id)).await.context("no exit")??;
        ensure!(exit == Exit::Exited(0), "the container ended {exit:?}");
        let lines = log_lines(engine, id).await?;
        ensure!(lines == ["read from fd 3", "read from fd 4"], "the container read {lines:?}");
        engine.delete(id, DeleteMode::IfStopped).await.context("delete")?;
        TcpListener::bind((Ipv4Addr::LOCALHOST, port)).context("the reserved port is held after delete")?;
        Ok(())
    })
    .await
}

async fn a_journal_logs_tag_and_conmons_log_level_are_taken_by_conmon(conmon: PathBuf) -> CaseResult {
    let monitor = ConmonMonitor::new(conmon).with_log_level(ConmonLogLevel::Debug);
    let bundle = BundleBuilder::new(["sleep", "100"]);
    through_conmon(monitor, "journal-tagged", bundle, async |engine, id, bundle| {
        // conmon's journald log wants an id longer than 12 characters.
        let log = LogDriver::Journald { tag: Some("web".into()) };
        let options =
            CreateOptions { monitor_stdio: MonitorStdio { log, ..MonitorStdio::default() }, ..Default::default() };
        engine.create(id, bundle, options).await.context("create")?;
        // conmon exits at once on an option or level it does not take (a tag with a k8s-file
        // log, an unknown level): the one that holds the container took both.
        let cmdline = conmon_cmdline(engine, id)?;
        for pair in [["--log-tag", "web"], ["--log-level", "debug"]] {
            ensure!(cmdline.windows(2).any(|words| words == pair), "conmon runs without {pair:?}: {cmdline:?}");
        }
        engine.start(id).await.context("start")?;
        engine.kill(id, Signal::KILL, KillScope::Init).await.context("kill")?;
        let exit = tokio::time::timeout(STEP, engine.wait(id)).await.context("no exit")??;
        ensure!(exit == Exit::Signaled(Signal::KILL), "the container ended {exit:?}");
        engine.delete(id, DeleteMode::IfStopped).await.context("delete")?;
        Ok(())
    })
    .await
}

async fn an_sd_notify_relay_listens_in_the_bundle_and_leaves_nothing_there(conmon: PathBuf) -> CaseResult {
    let host = tempfile::tempdir()?;
    let host_socket = host.path().join("notify.sock");
    let _listening = std::os::unix::net::UnixDatagram::bind(&host_socket)?;
    let bundle = BundleBuilder::new(["sleep", "100"]);
    through_conmon(ConmonMonitor::new(conmon), "notify", bundle, async |engine, id, bundle| {
        let systemd = SystemdPassthrough { sdnotify_socket: Some(host_socket.clone()), ..Default::default() };
        let options = CreateOptions { systemd, ..CreateOptions::default() };
        engine.create(id, bundle, options).await.context("create")?;
        let relay = bundle.join("notify/notify.sock");
        match std::fs::symlink_metadata(&relay) {
            Ok(meta) if meta.file_type().is_socket() => {}
            other => bail!("no relay socket at {}: {other:?}", relay.display()),
        }
        engine.delete(id, DeleteMode::Force).await.context("delete")?;
        Ok(())
    })
    .await
}

fn main() -> ExitCode {
    if let Ok(job) = std::env::var(ACTIVATED) {
        return match activated(&job) {
            Ok(()) => ExitCode::SUCCESS,
            Err(err) => {
                eprintln!("{err:#}");
                ExitCode::FAILURE
            }
        };
    }
    testkit::harness::main(|suite| {
        for replace in [false, true] {
            let name = if replace { "with_the_listen_pid_replaced" } else { "passed_on_as_preserved" };
            suite.gated(
                format!("conmon::runc::a_listening_descriptor_is_the_containers_fd_3_ahead_of_a_preserved_one_{name}"),
                "conmon",
                Vec::new(),
                move |conmon| {
                    a_listening_descriptor_is_the_containers_fd_3_ahead_of_a_preserved_one(conmon.binary, replace)
                },
            );
        }
        suite.gated(
            "conmon::runc::an_exit_command_runs_with_its_arguments_after_the_exit_and_its_delay",
            "conmon",
            Vec::new(),
            |conmon| an_exit_command_runs_with_its_arguments_after_the_exit_and_its_delay(conmon.binary),
        );
        suite.gated(
            "conmon::runc::preserved_fds_are_the_containers_fd_3_and_4_beside_a_reserved_port",
            "conmon",
            Vec::new(),
            |conmon| preserved_fds_are_the_containers_fd_3_and_4_beside_a_reserved_port(conmon.binary),
        );
        suite.gated(
            "conmon::runc::a_journal_logs_tag_and_conmons_log_level_are_taken_by_conmon",
            "conmon",
            Vec::new(),
            |conmon| a_journal_logs_tag_and_conmons_log_level_are_taken_by_conmon(conmon.binary),
        );
        suite.gated(
            "conmon::runc::an_sd_notify_relay_listens_in_the_bundle_and_leaves_nothing_there",
            "conmon",
            Vec::new(),
            |conmon| an_sd_notify_relay_listens_in_the_bundle_and_leaves_nothing_there(conmon.binary),
        );
    })
}
