//! Port reservation through conmon: a reserved port is held while the container lives (a bind
//! from this test gets `EADDRINUSE`) and free once it is deleted, on real conmon and runc
//! through the gate; a port another socket holds is `Error::PortInUse` before any process
//! starts (a stand-in conmon records whether it ran); the direct monitor refuses reservations.
//! Beside them, conmon's environment as the real conmon process has it (its `environ`).
//!
//! The ports are the kernel's picks for port 0, free a moment before the case uses them.

mod support;
#[path = "support/through_conmon.rs"]
mod through_conmon;

use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail, ensure};
use backend_runc::Runc;
use conmon_driver::ConmonMonitor;
use runtime_core::{
    CliBackend, ContainerId, CreateOptions, DeleteMode, DirectMonitor, Engine, Error, Exit, KillScope, Monitor,
    PortProtocol, PortReservation, RuntimeConfig, Signal, StateRoot,
};
use testkit::bundle::{BundleBuilder, Rootfs};
use testkit::harness::CaseResult;
use through_conmon::through_conmon;

const LOCALHOST: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

/// A TCP port and a UDP port, each free a moment ago.
fn free_ports() -> anyhow::Result<(u16, u16)> {
    let tcp = TcpListener::bind((LOCALHOST, 0))?.local_addr()?.port();
    let udp = UdpSocket::bind((LOCALHOST, 0))?.local_addr()?.port();
    Ok((tcp, udp))
}

fn reservation(protocol: PortProtocol, port: u16) -> PortReservation {
    PortReservation { protocol, host_ip: LOCALHOST, port }
}

/// Whether binding `port` fails with `EADDRINUSE`.
fn taken(protocol: PortProtocol, port: u16) -> anyhow::Result<bool> {
    let bound = match protocol {
        PortProtocol::Tcp => TcpListener::bind((LOCALHOST, port)).map(drop),
        PortProtocol::Udp => UdpSocket::bind((LOCALHOST, port)).map(drop),
        PortProtocol::Sctp => bail!("the test binds no SCTP port"),
    };
    match bound {
        Ok(()) => Ok(false),
        Err(err) if err.kind() == std::io::ErrorKind::AddrInUse => Ok(true),
        Err(err) => Err(err).context("binding a port"),
    }
}

async fn a_reserved_port_is_held_while_the_container_lives(conmon: PathBuf) -> CaseResult {
    let (tcp, udp) = free_ports()?;
    let options = CreateOptions {
        reserved_ports: vec![reservation(PortProtocol::Tcp, tcp), reservation(PortProtocol::Udp, udp)],
        ..CreateOptions::default()
    };
    let bundle = BundleBuilder::new(["sleep", "100"]).host_pid_namespace();
    through_conmon(ConmonMonitor::new(conmon), "ports", bundle, async |engine, id, bundle| {
        engine.create(id, bundle, options).await.context("create")?;
        engine.start(id).await.context("start")?;
        ensure!(taken(PortProtocol::Tcp, tcp)?, "the TCP port {tcp} is free while the container lives");
        ensure!(taken(PortProtocol::Udp, udp)?, "the UDP port {udp} is free while the container lives");
        engine.kill(id, Signal::KILL, KillScope::Init).await?;
        let exit = tokio::time::timeout(Duration::from_secs(30), engine.wait(id)).await.context("no exit")??;
        ensure!(exit == Exit::Signaled(Signal::KILL), "{exit:?}");
        engine.delete(id, DeleteMode::IfStopped).await?;
        ensure!(!taken(PortProtocol::Tcp, tcp)?, "the TCP port {tcp} is still held after delete");
        ensure!(!taken(PortProtocol::Udp, udp)?, "the UDP port {udp} is still held after delete");
        Ok(())
    })
    .await
}

/// conmon's environment, from `/proc/<pid>/environ`.
fn environment_of(pid: i32) -> anyhow::Result<Vec<(String, String)>> {
    let raw = std::fs::read(format!("/proc/{pid}/environ"))?;
    Ok(raw
        .split(|byte| *byte == 0)
        .filter_map(|entry| {
            let entry = String::from_utf8_lossy(entry);
            entry.split_once('=').map(|(name, value)| (name.to_owned(), value.to_owned()))
        })
        .collect())
}

/// conmon runs with `HOME` the embedding process's and, as root, an empty `XDG_RUNTIME_DIR`
/// (podman's `configureConmonEnv`), and without the systemd variables nobody asked for.
async fn conmon_gets_home_and_the_runtime_dir_as_podman_sets_them(conmon: PathBuf) -> CaseResult {
    through_conmon(
        ConmonMonitor::new(conmon),
        "env",
        BundleBuilder::new(["sleep", "100"]),
        async |engine, id, bundle| {
            engine.create(id, bundle, CreateOptions::default()).await.context("create")?;
            let pid_file = engine.state_root().files(id).dir.join("conmon.pid");
            let pid: i32 = std::fs::read_to_string(pid_file)?.trim().parse()?;
            let env = environment_of(pid)?;
            let value = |name: &str| env.iter().find(|(key, _)| key == name).map(|(_, value)| value.as_str());
            let home = std::env::var("HOME").unwrap_or_default();
            ensure!(value("HOME") == Some(home.as_str()), "HOME: {:?}", value("HOME"));
            ensure!(value("XDG_RUNTIME_DIR") == Some(""), "XDG_RUNTIME_DIR: {:?}", value("XDG_RUNTIME_DIR"));
            for unasked in ["NOTIFY_SOCKET", "LISTEN_FDS", "LISTEN_PID"] {
                ensure!(value(unasked).is_none(), "{unasked} was passed unasked");
            }
            engine.delete(id, DeleteMode::Force).await?;
            Ok(())
        },
    )
    .await
}

/// An engine over a runc that is never run, under `monitor`, in `dir`.
fn engine_in(dir: &Path, monitor: Arc<dyn Monitor>) -> anyhow::Result<Engine> {
    let version = runtime_core::RuntimeVersion::parse("runc version 1.1.5\ncommit: v1.1.5\nspec: 1.0.2-dev\n")?;
    let config = RuntimeConfig::default().binary("/bin/false").root(dir.join("runtime"));
    let backend = Arc::new(CliBackend::with_version(Arc::new(Runc), config, "/bin/false".into(), version)?);
    Ok(Engine::new(backend, monitor, StateRoot::open(dir.join("state"))?))
}

async fn a_port_in_use_is_refused_before_conmon_runs() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let conmon = testkit::fake::stand_in_conmon(dir.path(), "")?;
    let engine = engine_in(dir.path(), Arc::new(ConmonMonitor::new(&conmon)))?;
    let holder = TcpListener::bind((LOCALHOST, 0))?;
    let port = holder.local_addr()?.port();
    let bundle = BundleBuilder::new(["true"]).rootfs(Rootfs::Empty).build()?;
    let id = ContainerId::new(format!("taken-{}", std::process::id()))?;
    let (free, _) = free_ports()?;
    let reserved_ports = vec![reservation(PortProtocol::Tcp, free), reservation(PortProtocol::Tcp, port)];
    let refused = engine.create(&id, bundle.path(), CreateOptions { reserved_ports, ..Default::default() }).await;
    match refused {
        Err(Error::PortInUse { protocol: "tcp", address, .. }) => {
            ensure!(address == SocketAddr::new(LOCALHOST, port), "names the port in use: {address}");
        }
        other => bail!("expected PortInUse, got {other:?}"),
    }
    ensure!(!conmon.with_extension("ran").exists(), "conmon was started");
    ensure!(!taken(PortProtocol::Tcp, free)?, "the port reserved before the refusal is free again");
    for sub in ["containers", "exits", "locks"] {
        let left: Vec<_> = std::fs::read_dir(dir.path().join("state").join(sub))?.flatten().collect();
        ensure!(left.is_empty(), "left in {sub}: {left:?}");
    }
    Ok(())
}

async fn the_direct_monitor_refuses_port_reservation() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let engine = engine_in(dir.path(), Arc::new(DirectMonitor::new()))?;
    let bundle = BundleBuilder::new(["true"]).rootfs(Rootfs::Empty).build()?;
    let id = ContainerId::new(format!("direct-{}", std::process::id()))?;
    let (port, _) = free_ports()?;
    let reserved_ports = vec![reservation(PortProtocol::Tcp, port)];
    let refused = engine.create(&id, bundle.path(), CreateOptions { reserved_ports, ..Default::default() }).await;
    match refused {
        Err(Error::Unsupported { backend, feature, .. }) => {
            ensure!(backend == "the direct monitor", "{backend}");
            ensure!(feature == "CreateOptions::reserved_ports", "{feature}");
        }
        other => bail!("expected Unsupported, got {other:?}"),
    }
    ensure!(!taken(PortProtocol::Tcp, port)?, "the direct monitor bound the port");
    Ok(())
}

fn main() -> ExitCode {
    testkit::harness::main(|suite| {
        suite.case("a_port_in_use_is_port_in_use_before_conmon_runs", a_port_in_use_is_refused_before_conmon_runs);
        suite.case("the_direct_monitor_refuses_port_reservation", the_direct_monitor_refuses_port_reservation);
        suite.gated(
            "conmon::runc::a_reserved_port_is_held_while_the_container_lives",
            "conmon",
            Vec::new(),
            |conmon| a_reserved_port_is_held_while_the_container_lives(conmon.binary),
        );
        suite.gated(
            "conmon::runc::conmon_gets_home_and_the_runtime_dir_as_podman_sets_them",
            "conmon",
            Vec::new(),
            |conmon| conmon_gets_home_and_the_runtime_dir_as_podman_sets_them(conmon.binary),
        );
    })
}
