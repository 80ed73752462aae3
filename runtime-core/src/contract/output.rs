//! What a monitor does with a container's stdio, as the engine's caller chooses it, and the
//! ways a client reaches that stdio afterwards: attached live, or read back from the log.
//!
//! [`ContainerStdio`](crate::ContainerStdio) is what the caller wires itself; [`MonitorStdio`]
//! is what it asks the monitor to hold: where output is kept ([`LogDriver`], conmon's `-l`) and
//! whether stdin stays open for a client to attach ([`AttachStdin`], conmon's `-i` and
//! `--leave-stdin-open`). A monitor serves each choice or refuses it with
//! [`Error::Unsupported`](crate::Error::Unsupported) before anything runs; none is ignored.
//!
//! The types a client reads are the monitor's words turned into one vocabulary: an attached
//! client gets [`OutputChunk`]s as the container writes them, a log reader [`LogLine`]s as they
//! were recorded, whole lines rejoined from the pieces a log keeps.

use std::path::PathBuf;

use async_trait::async_trait;
use chrono::{DateTime, FixedOffset};

use crate::contract::error::Result;

/// Where a container's output is kept.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum LogDriver {
    /// The monitor's own way: conmon keeps a k8s-file log in its directory without a size
    /// bound; the direct monitor keeps none and leaves the output where
    /// [`ContainerStdio`](crate::ContainerStdio) wires it.
    #[default]
    MonitorDefault,
    /// Every line with its time and stream, in the CRI log format (`-l k8s-file:PATH`).
    K8sFile {
        /// The log file; `None` is a file in the monitor's directory for the container, removed
        /// with it. A path given here is the caller's and stays.
        path: Option<PathBuf>,
        /// When the log would grow past this many bytes, it starts again empty
        /// (`--log-size-max`); `None` is no bound.
        max_size: Option<u64>,
    },
    /// Output is dropped (`-l none`); a client may still attach.
    None,
    /// The container writes straight to the monitor's own stdio (`-l passthrough`), without a
    /// log and without an attach socket.
    Passthrough,
    /// Every line goes to the systemd journal (`-l journald:`).
    Journald {
        /// The journal entries' `CONTAINER_TAG` and `SYSLOG_IDENTIFIER` (`--log-tag`); `None`
        /// is none. Only the journal carries a tag: conmon refuses one for a k8s-file log.
        tag: Option<String>,
    },
}

/// Whether the container's stdin stays open for a client that attaches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AttachStdin {
    /// The container has no stdin to write to.
    #[default]
    Closed,
    /// Open until the first attached client closes its input (`-i`): the container then sees
    /// end of file.
    UntilDetach,
    /// Open for every client in turn: one closing its input does not close it
    /// (`-i --leave-stdin-open`).
    KeptOpen,
}

/// What a monitor holds of a container's stdio; the default is the monitor's own way with no
/// stdin.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MonitorStdio {
    /// Where output is kept.
    pub log: LogDriver,
    /// Whether stdin stays open for attach.
    pub stdin: AttachStdin,
}

/// One of the container's output streams.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OutputStream {
    /// Its stdout (and all of a terminal's output).
    Stdout,
    /// Its stderr.
    Stderr,
}

/// Output an attached client received, as the container wrote it (not split into lines).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutputChunk {
    /// The stream it was written to.
    pub stream: OutputStream,
    /// The bytes.
    pub bytes: Vec<u8>,
}

/// A client attached to a running container's stdio. It reads and writes through `&self`, so
/// one task can read while another writes.
#[async_trait]
pub trait AttachedStdio: Send + Sync {
    /// The next output of the container; `None` once the monitor ended the attachment (the
    /// container has exited and its output was delivered).
    async fn read(&self) -> Result<Option<OutputChunk>>;
    /// Writes `input` to the container's stdin (refused by the monitor when it keeps none).
    async fn write(&self, input: &[u8]) -> Result<()>;
    /// Ends this client's input: the container sees end of file unless its stdin is
    /// [`AttachStdin::KeptOpen`]. Output still arrives.
    async fn close_input(&self) -> Result<()>;
}

/// The size of a terminal, in characters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TerminalSize {
    /// Lines.
    pub rows: u16,
    /// Columns.
    pub cols: u16,
}

/// How a log is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LogOptions {
    /// Keep reading as lines come, until the container has exited and everything it wrote was
    /// read; without it, reading ends at what the log holds now.
    pub follow: bool,
}

/// A line of a container's log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogLine {
    /// When the monitor received (the first piece of) it.
    pub time: DateTime<FixedOffset>,
    /// The stream it was written to.
    pub stream: OutputStream,
    /// The line, without its newline.
    pub text: Vec<u8>,
    /// False for output the container left without a newline: the last of the log when it
    /// ended that way, or, when not following, a line still being written.
    pub complete: bool,
}

/// Lines of a container's log, in order, as an async stream.
#[async_trait]
pub trait LogReader: Send {
    /// The next line; `None` at the end (see [`LogOptions::follow`]).
    async fn next_line(&mut self) -> Result<Option<LogLine>>;
}
