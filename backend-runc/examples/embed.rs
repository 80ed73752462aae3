//! Embedding: run one container with runc under the engine and report how it ended.
//!
//! `cargo run -p backend-runc --example embed -- <bundle> [id]` (as root, with runc installed;
//! `cargo xtask setup` installs it). Swap `Runc` for `backend_crun::Crun` or
//! `backend_youki::Youki` and nothing else changes.

use std::path::PathBuf;
use std::sync::Arc;

use backend_runc::Runc;
use runtime_core::{
    ContainerId, CreateOptions, DeleteMode, DirectMonitor, Engine, ExecOptions, ExecOutcome, OciBackend, RuntimeConfig,
    StateRoot, process,
};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let bundle = PathBuf::from(args.next().ok_or("usage: embed <bundle> [id]")?);
    let id = ContainerId::new(args.next().unwrap_or_else(|| "embed-demo".into()))?;

    let runc = Runc::connect(RuntimeConfig::default()).await?;
    if let Some(reason) = runc.features().await?.checkpoint.reason() {
        println!("checkpoint is not available here: {reason}");
    }
    let engine =
        Engine::new(Arc::new(runc), Arc::new(DirectMonitor::new()), StateRoot::open(StateRoot::default_path()?)?);

    let created = engine.create(&id, &bundle, CreateOptions::default()).await?;
    engine.start(&id).await?;
    println!("{id} started, init pid {}", created.pid);

    if let ExecOutcome::Exited { code, stdout, .. } =
        engine.exec(&id, &process(["echo", "hello"]), ExecOptions::default()).await?
    {
        println!("exec exited {code}: {}", String::from_utf8_lossy(&stdout.bytes).trim());
    }

    let exit = engine.wait(&id).await?;
    println!("{id} {exit} (exit code {:?})", exit.shell_code());
    engine.delete(&id, DeleteMode::IfStopped).await?;
    Ok(())
}
