//! Terminal containers: the runtime sends the terminal's master over the console socket, and
//! the container's stdio is that terminal, both ways.

use std::time::Duration;

use anyhow::{Context, ensure};
use runtime_core::{Console, ConsoleSocket, CreateOptions};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::env::Env;
use crate::bundle::BundleBuilder;
use crate::harness::{CaseResult, Ran};

/// How long the container gets to answer on its terminal.
const PATIENCE: Duration = Duration::from_secs(30);

/// Says whether its stdio is a terminal, then echoes one line it reads.
const SCRIPT: &str =
    "if [ -t 0 ] && [ -t 1 ]; then echo tty-yes; else echo tty-no; fi; read line; echo \"got:$line\"; sleep 1000";

/// Reads from the console until `done` holds for everything read so far.
async fn read_until(console: &mut Console, seen: &mut String, done: impl Fn(&str) -> bool) -> anyhow::Result<()> {
    let reading = async {
        let mut chunk = [0u8; 1024];
        while !done(seen) {
            let read = console.read(&mut chunk).await.context("reading the console")?;
            ensure!(read > 0, "the terminal closed; it said {seen:?}");
            seen.push_str(&String::from_utf8_lossy(&chunk[..read]));
            ensure!(seen.len() < 64 * 1024, "the terminal said too much: {seen:?}");
        }
        Ok(())
    };
    tokio::time::timeout(PATIENCE, reading).await.with_context(|| format!("the terminal said only {seen:?}"))?
}

pub(super) async fn terminal_reaches_the_container_through_the_console_socket(env: &mut Env) -> CaseResult {
    let id = env.id("tty");
    let bundle = BundleBuilder::new(["sh", "-c", SCRIPT]).rootfs(env.rootfs()).terminal().build()?;
    let socket = ConsoleSocket::bind()?;
    let opts = CreateOptions { console_socket: Some(socket.path().to_path_buf()), ..CreateOptions::default() };
    let created = env.backend.create(&id, bundle.path(), opts).await.context("create with a console socket")?;
    env.track(created.pid);
    let mut console = socket.receive(PATIENCE).await.context("the runtime sent no terminal")?;
    env.backend.start(&id).await.context("start")?;

    let mut seen = String::new();
    read_until(&mut console, &mut seen, |text| text.contains("tty-yes") || text.contains("tty-no")).await?;
    ensure!(seen.contains("tty-yes"), "the container's stdin and stdout are not a terminal: {seen:?}");
    console.write_all(b"ping\n").await.context("typing on the console")?;
    read_until(&mut console, &mut seen, |text| text.contains("got:ping")).await?;

    env.remove(&id).await?;
    Ok(Ran::Passed)
}
