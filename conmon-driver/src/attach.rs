//! A running container's stdio through conmon: its attach socket and its control fifo.
//!
//! conmon binds the attach socket, a `SOCK_SEQPACKET` socket named `attach`, in the bundle
//! (reached through the `<socket dir>/<id>` symlink it makes to the bundle), and makes a fifo
//! `ctl` beside it (conmon's `conn_sock.c` and `ctrl.c`):
//!
//! - Every packet conmon sends an attached client is one read of the container's output: one
//!   byte naming the stream (2 stdout, 3 stderr; a terminal's output is all stdout), then at
//!   most 8192 bytes. Once the container has exited and its output was delivered, conmon
//!   closes the socket. What the client sends is written to the container's stdin as is, and
//!   its shutting down its sending side is the stdin's end of file.
//! - The fifo takes lines `"TYPE HEIGHT WIDTH\n"`: type 1 resizes the terminal, type 2
//!   reopens the log (both numbers are read and ignored then).
//!
//! A socket's path must fit `sun_path` (108 bytes) and a bundle's need not: as libpod does, the
//! socket is always reached through `/proc/self/fd/N/attach`, N an `O_PATH` descriptor of the
//! bundle, so a path is never cut short.
//!
//! Registering a descriptor with the reactor is `unsafe` in tokio (it cannot check that the
//! descriptor stays open); here the socket is owned by the value registered, which is what
//! makes it sound.
#![allow(unsafe_code)]

use std::io::Write;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use async_trait::async_trait;
use nix::fcntl::OFlag;
use nix::sys::socket::{self, AddressFamily, MsgFlags, Shutdown, SockFlag, SockType, UnixAddr};
use nix::sys::stat::Mode;
use tokio::io::Interest;
use tokio::io::unix::AsyncFd;

use runtime_core::{AttachedStdio, Error, OutputChunk, OutputStream, Result, TerminalSize};

/// The largest output packet: the stream byte and conmon's `STDIO_BUF_SIZE` (8192) bytes.
const MAX_OUTPUT_PACKET: usize = 1 + 8192;

/// The largest input packet conmon reads whole (`CONN_SOCK_BUF_SIZE`): longer input is sent
/// as several, since a longer packet would be cut short.
const MAX_INPUT_PACKET: usize = 32768;

/// A client on a container's attach socket.
#[derive(Debug)]
pub(crate) struct ConmonAttach {
    socket: AsyncFd<OwnedFd>,
    /// The container has a stdin to write to (`-i`, or a terminal).
    accepts_input: bool,
}

fn io(context: &str) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |source| Error::Io { context: context.to_owned(), source }
}

fn errno(context: &str) -> impl FnOnce(nix::errno::Errno) -> Error + '_ {
    move |errno| Error::Io { context: context.to_owned(), source: errno.into() }
}

/// What one packet from conmon says.
pub(crate) fn output_packet(packet: &[u8]) -> Result<OutputChunk> {
    let stream = match packet.first() {
        Some(2) => OutputStream::Stdout,
        Some(3) => OutputStream::Stderr,
        other => {
            return Err(Error::Parse {
                what: "a packet from conmon's attach socket".into(),
                message: format!("the stream byte is {other:?}, neither 2 (stdout) nor 3 (stderr)"),
                source: None,
            });
        }
    };
    Ok(OutputChunk { stream, bytes: packet[1..].to_vec() })
}

/// Connects to the attach socket conmon bound in `bundle`.
pub(crate) async fn connect(bundle: &Path, accepts_input: bool) -> Result<ConmonAttach> {
    let context = format!("attaching to conmon's socket {}", bundle.join("attach").display());
    let dir: OwnedFd = nix::fcntl::open(bundle, OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC, Mode::empty())
        .map_err(errno(&context))?;
    let address =
        UnixAddr::new(format!("/proc/self/fd/{}/attach", dir.as_raw_fd()).as_str()).map_err(errno(&context))?;
    let fd = socket::socket(
        AddressFamily::Unix,
        SockType::SeqPacket,
        SockFlag::SOCK_CLOEXEC | SockFlag::SOCK_NONBLOCK,
        None,
    )
    .map_err(errno(&context))?;
    // A local connect does not wait: it is accepted into the backlog or refused at once.
    socket::connect(fd.as_raw_fd(), &address).map_err(errno(&context))?;
    // SAFETY: the socket is an open descriptor the `AsyncFd` owns: it stays open, under the
    // same number, until the `AsyncFd` is dropped.
    let socket = unsafe { AsyncFd::register_with_interest(fd, Interest::READABLE | Interest::WRITABLE) }
        .map_err(|err| Error::Io { context, source: err.into_parts().1 })?;
    Ok(ConmonAttach { socket, accepts_input })
}

#[async_trait]
impl AttachedStdio for ConmonAttach {
    async fn read(&self) -> Result<Option<OutputChunk>> {
        let mut packet = [0u8; MAX_OUTPUT_PACKET];
        let received = loop {
            let mut ready = self.socket.readable().await.map_err(io("waiting for the container's output"))?;
            // MSG_TRUNC: the packet's real length, so a longer one is seen, not cut short.
            match ready.try_io(|fd| {
                socket::recv(fd.as_raw_fd(), &mut packet, MsgFlags::MSG_TRUNC).map_err(std::io::Error::from)
            }) {
                Ok(received) => break received.map_err(io("reading the container's output"))?,
                Err(_would_block) => continue,
            }
        };
        if received == 0 {
            return Ok(None);
        }
        if received > MAX_OUTPUT_PACKET {
            return Err(Error::Parse {
                what: "a packet from conmon's attach socket".into(),
                message: format!("{received} bytes, more than the {MAX_OUTPUT_PACKET} conmon sends"),
                source: None,
            });
        }
        output_packet(&packet[..received]).map(Some)
    }

    async fn write(&self, input: &[u8]) -> Result<()> {
        if !self.accepts_input {
            return Err(Error::Unsupported {
                backend: "conmon".into(),
                feature: "attach input".into(),
                reason: "the container has no stdin to write to: it was created with AttachStdin::Closed and \
                         no terminal"
                    .into(),
            });
        }
        for packet in input.chunks(MAX_INPUT_PACKET) {
            loop {
                let mut ready = self.socket.writable().await.map_err(io("waiting to write the container's stdin"))?;
                match ready.try_io(|fd| {
                    socket::send(fd.as_raw_fd(), packet, MsgFlags::MSG_NOSIGNAL).map_err(std::io::Error::from)
                }) {
                    Ok(sent) => {
                        sent.map_err(io("writing the container's stdin"))?;
                        break;
                    }
                    Err(_would_block) => continue,
                }
            }
        }
        Ok(())
    }

    async fn close_input(&self) -> Result<()> {
        socket::shutdown(self.socket.as_raw_fd(), Shutdown::Write).map_err(errno("closing the container's stdin"))
    }
}

/// A message for conmon's control fifo.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ControlMessage {
    /// Resize the terminal.
    Resize(TerminalSize),
    /// Close and open the log file again.
    ReopenLog,
}

impl ControlMessage {
    /// The line conmon reads: `"TYPE HEIGHT WIDTH\n"`.
    pub(crate) fn line(self) -> String {
        match self {
            ControlMessage::Resize(TerminalSize { rows, cols }) => format!("1 {rows} {cols}\n"),
            ControlMessage::ReopenLog => "2 0 0\n".to_owned(),
        }
    }
}

/// Writes `message` to the control fifo conmon made in `bundle`. The fifo is opened without
/// waiting: when conmon is no longer there to read it, that is an error at once, not a hang.
/// A line is shorter than `PIPE_BUF`, so it arrives whole.
pub(crate) fn control(bundle: &Path, message: ControlMessage) -> Result<()> {
    let path = bundle.join("ctl");
    let context = format!("writing {message:?} to conmon's control fifo {}", path.display());
    let mut fifo = std::fs::OpenOptions::new()
        .write(true)
        .custom_flags(OFlag::O_NONBLOCK.bits())
        .open(&path)
        .map_err(|source| Error::Io { context: context.clone(), source })?;
    fifo.write_all(message.line().as_bytes()).map_err(|source| Error::Io { context, source })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_packet_names_its_stream_in_its_first_byte() {
        let stdout = output_packet(b"\x02hello\n").unwrap();
        assert_eq!(stdout, OutputChunk { stream: OutputStream::Stdout, bytes: b"hello\n".to_vec() });
        let stderr = output_packet(b"\x03oops").unwrap();
        assert_eq!(stderr, OutputChunk { stream: OutputStream::Stderr, bytes: b"oops".to_vec() });
    }

    #[test]
    fn a_packet_with_another_stream_byte_or_none_is_a_parse_error() {
        for packet in [&b"\x01input"[..], b"\x04x", b""] {
            assert!(matches!(output_packet(packet), Err(Error::Parse { .. })), "{packet:?}");
        }
    }

    #[test]
    fn control_lines_are_type_height_width() {
        let resize = ControlMessage::Resize(TerminalSize { rows: 24, cols: 80 });
        assert_eq!(resize.line(), "1 24 80\n");
        assert_eq!(ControlMessage::ReopenLog.line(), "2 0 0\n");
    }
}
