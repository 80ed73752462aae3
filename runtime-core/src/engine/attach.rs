//! Reaching a running container's stdio through the monitor that holds it: attach, resize its
//! terminal, reopen and read its log; and a background exec's terminal, attached and resized
//! the same way.
//!
//! Only a monitor that holds the container's stdio can do these (conmon does; the embedding
//! process, which hands the stdio to the runtime, does not), so each asks the monitor for the
//! capability first: without it the call is [`Error::Unsupported`] naming the monitor, and
//! nothing is touched. None takes the container's lock: they change nothing the engine keeps,
//! and an attached client or a followed log lasts as long as the container, which would keep
//! `stop` and `delete` waiting.

use crate::contract::error::{Error, Result};
use crate::contract::id::ContainerId;
use crate::contract::monitor::{Capability, ExecSession};
use crate::contract::output::{AttachedStdio, LogOptions, LogReader, TerminalSize};
use crate::engine::Engine;

impl Engine {
    /// Attaches a client to the running container's stdio: its output as it comes, and its
    /// stdin when it was created with one ([`crate::MonitorStdio::stdin`]) or a terminal.
    /// Output written before the client attached is not replayed: [`Engine::logs`] has it.
    pub async fn attach(&self, id: &ContainerId) -> Result<Box<dyn AttachedStdio>> {
        self.monitor.require(Capability::Attach, "attach")?;
        self.monitor.attach(id, &self.root.files(id)).await
    }

    /// Resizes the container's terminal (its spec's `process.terminal`).
    pub async fn resize(&self, id: &ContainerId, size: TerminalSize) -> Result<()> {
        self.monitor.require(Capability::Resize, "resize")?;
        check_size(size)?;
        self.monitor.resize(id, &self.root.files(id), size).await
    }

    /// Attaches a client to the terminal of a running background exec started with one
    /// ([`crate::ExecOptions::tty`]): its output as it comes, and its input. As with
    /// [`Engine::attach`], earlier output is not replayed; the exec's log has it. Under a
    /// monitor that keeps its execs on disk, any engine over the same state root attaches.
    pub async fn attach_exec(&self, session: &ExecSession) -> Result<Box<dyn AttachedStdio>> {
        self.monitor.require(Capability::Attach, "attach_exec")?;
        self.monitor.attach_exec(session, &self.root.files(&session.id)).await
    }

    /// Resizes the terminal of a running background exec started with one.
    pub async fn resize_exec(&self, session: &ExecSession, size: TerminalSize) -> Result<()> {
        self.monitor.require(Capability::Resize, "resize_exec")?;
        check_size(size)?;
        self.monitor.resize_exec(session, &self.root.files(&session.id), size).await
    }

    /// Makes the monitor close the container's log and open it again, empty: a log the caller
    /// moved away (to rotate it) stays as it was, and output goes on in a new file.
    pub async fn reopen_log(&self, id: &ContainerId) -> Result<()> {
        self.monitor.require(Capability::Logs, "reopen_log")?;
        self.monitor.reopen_log(id, &self.root.files(id)).await
    }

    /// The container's log, line by line; with [`LogOptions::follow`], until the container has
    /// exited and all it wrote was read.
    pub async fn logs(&self, id: &ContainerId, opts: LogOptions) -> Result<Box<dyn LogReader>> {
        self.monitor.require(Capability::Logs, "logs")?;
        self.monitor.logs(id, &self.root.files(id), opts).await
    }
}

/// A terminal has at least one row and one column.
fn check_size(size: TerminalSize) -> Result<()> {
    if size.rows == 0 || size.cols == 0 {
        return Err(Error::InvalidArgument {
            option: "TerminalSize".to_owned(),
            reason: format!("{} rows by {} columns is no terminal", size.rows, size.cols),
        });
    }
    Ok(())
}
