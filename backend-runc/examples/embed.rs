//! Embedding: run one container with runc and report how it went.
//!
//! `cargo run -p backend-runc --example embed -- <bundle> [id]` (as root, with runc installed;
//! `cargo xtask setup` installs it). Swap `Runc` for `backend_crun::Crun` or
//! `backend_youki::Youki` and nothing else changes.

use std::path::PathBuf;

use backend_runc::Runc;
use runtime_core::{
    ContainerId, CreateOptions, DeleteMode, ExecOptions, ExecOutcome, KillScope, OciBackend, RuntimeConfig, Signal,
    process,
};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let bundle = PathBuf::from(args.next().ok_or("usage: embed <bundle> [id]")?);
    let id = ContainerId::new(args.next().unwrap_or_else(|| "embed-demo".into()))?;

    let runc = Runc::connect(RuntimeConfig::default()).await?;
    let features = runc.features().await?;
    if let Some(reason) = features.checkpoint.reason() {
        println!("checkpoint is not available here: {reason}");
    }

    let created = runc.create(&id, &bundle, CreateOptions::default()).await?;
    runc.start(&id).await?;
    println!("{id} (init pid {}) is {}", created.pid, runc.state(&id).await?.status);

    let echo = process(["echo", "hello"]);
    if let ExecOutcome::Exited { code, stdout, .. } = runc.exec(&id, &echo, ExecOptions::default()).await? {
        println!("exec exited {code}: {}", String::from_utf8_lossy(&stdout.bytes).trim());
    }

    runc.kill(&id, Signal::KILL, KillScope::All).await?;
    runc.delete(&id, DeleteMode::Force).await?;
    Ok(())
}
