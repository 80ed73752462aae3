//! The console socket of terminal containers.
//!
//! A container whose process has `terminal: true` gets a pseudo-terminal from its runtime, and
//! the runtime hands the master side to whoever asked for it over an AF_UNIX socket named by
//! `--console-socket`, as an `SCM_RIGHTS` message. [`ConsoleSocket`] is that socket: bound in a
//! private (0700) temporary directory that is removed with it, it accepts one connection and
//! gives back the master as a [`Console`] the caller reads and writes asynchronously. Every
//! descriptor here is close-on-exec, so no runtime or container started meanwhile inherits one.

// Descriptors received with SCM_RIGHTS arrive as raw numbers that only this code owns.
#![allow(unsafe_code)]

use std::io::{self, IoSliceMut};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixListener as StdUnixListener;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use nix::fcntl::{FcntlArg, OFlag, fcntl};
use nix::sys::socket::{ControlMessageOwned, MsgFlags, recvmsg};
use tokio::io::unix::AsyncFd;
use tokio::io::{AsyncRead, AsyncWrite, Interest, ReadBuf};
use tokio::net::UnixListener;

use crate::contract::error::{Error, Result};

/// The name runtimes send along with the descriptor (runc: the pty's path) fits in this.
const NAME_LIMIT: usize = 4096;

/// A socket to pass as `--console-socket`, waiting for one runtime to send a terminal.
#[derive(Debug)]
pub struct ConsoleSocket {
    listener: StdUnixListener,
    path: PathBuf,
    _dir: tempfile::TempDir,
}

impl ConsoleSocket {
    /// Binds a new socket in a fresh private directory.
    pub fn bind() -> Result<Self> {
        let dir = tempfile::Builder::new()
            .prefix("console-")
            .permissions(std::fs::Permissions::from_mode(0o700))
            .tempdir()
            .map_err(|err| Error::io("creating the console socket directory", err))?;
        let path = dir.path().join("console.sock");
        let listener = StdUnixListener::bind(&path)
            .map_err(|err| Error::io(format!("binding the console socket {}", path.display()), err))?;
        listener.set_nonblocking(true).map_err(|err| Error::io("setting up the console socket", err))?;
        Ok(ConsoleSocket { listener, path, _dir: dir })
    }

    /// The socket's path, for `--console-socket`.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Waits up to `timeout` for a runtime to connect and send the terminal's master side; none
    /// in time is [`Error::WaitTimeout`].
    pub async fn receive(&self, timeout: Duration) -> Result<Console> {
        match tokio::time::timeout(timeout, self.accept()).await {
            Ok(received) => received,
            Err(_) => {
                Err(Error::WaitTimeout { what: format!("a terminal on {}", self.path.display()), after: timeout })
            }
        }
    }

    async fn accept(&self) -> Result<Console> {
        let context = || format!("receiving a terminal on {}", self.path.display());
        let listener =
            self.listener.try_clone().and_then(UnixListener::from_std).map_err(|err| Error::io(context(), err))?;
        let (stream, _) = listener.accept().await.map_err(|err| Error::io(context(), err))?;
        loop {
            stream.readable().await.map_err(|err| Error::io(context(), err))?;
            match stream.try_io(Interest::READABLE, || receive_descriptor(stream.as_raw_fd())) {
                Ok(master) => return Console::new(master),
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => {}
                Err(err) => return Err(Error::io(context(), err)),
            }
        }
    }
}

/// Reads one message and takes the first descriptor it carries; any others are closed.
fn receive_descriptor(socket: RawFd) -> io::Result<OwnedFd> {
    let mut name = [0u8; NAME_LIMIT];
    let mut iov = [IoSliceMut::new(&mut name)];
    let mut space = nix::cmsg_space!([RawFd; 4]);
    let message = recvmsg::<()>(socket, &mut iov, Some(&mut space), MsgFlags::MSG_CMSG_CLOEXEC)?;
    let mut received = Vec::new();
    for control in message.cmsgs()? {
        if let ControlMessageOwned::ScmRights(fds) = control {
            // SAFETY: the kernel just installed these descriptors in this process for this
            // message; nothing else knows their numbers, so each is owned exactly once here.
            received.extend(fds.into_iter().map(|fd| unsafe { OwnedFd::from_raw_fd(fd) }));
        }
    }
    let bytes = message.bytes;
    received.into_iter().next().ok_or_else(|| {
        let what = if bytes == 0 { "closed the connection" } else { "sent a message" };
        io::Error::new(io::ErrorKind::InvalidData, format!("the runtime {what} without a terminal descriptor"))
    })
}

/// The master side of a container's terminal: what the container writes is read here, and what
/// is written here is the container's input. It reads end-of-file once the container's side is
/// closed.
#[derive(Debug)]
pub struct Console {
    master: AsyncFd<OwnedFd>,
}

impl Console {
    fn new(master: OwnedFd) -> Result<Self> {
        let flags = fcntl(&master, FcntlArg::F_GETFL)
            .map_err(|errno| Error::io("reading the terminal's flags", errno.into()))?;
        let flags = OFlag::from_bits_retain(flags) | OFlag::O_NONBLOCK;
        fcntl(&master, FcntlArg::F_SETFL(flags))
            .map_err(|errno| Error::io("making the terminal non-blocking", errno.into()))?;
        // SAFETY: the `OwnedFd` is open and moves into the `AsyncFd`, which owns it (and so its
        // number) until it is dropped.
        let master =
            unsafe { AsyncFd::register(master) }.map_err(|err| Error::io("watching the terminal", err.into()))?;
        Ok(Console { master })
    }
}

impl AsyncRead for Console {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        loop {
            let mut ready = ready!(self.master.poll_read_ready(cx))?;
            let unfilled = buf.initialize_unfilled();
            match ready.try_io(|master| Ok(nix::unistd::read(master.get_ref(), unfilled)?)) {
                Ok(Ok(read)) => {
                    buf.advance(read);
                    return Poll::Ready(Ok(()));
                }
                // Linux says EIO on a master whose slave side is closed: the end of the output.
                Ok(Err(err)) if err.raw_os_error() == Some(libc::EIO) => return Poll::Ready(Ok(())),
                Ok(Err(err)) => return Poll::Ready(Err(err)),
                Err(_would_block) => {}
            }
        }
    }
}

impl AsyncWrite for Console {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, bytes: &[u8]) -> Poll<io::Result<usize>> {
        loop {
            let mut ready = ready!(self.master.poll_write_ready(cx))?;
            match ready.try_io(|master| Ok(nix::unistd::write(master.get_ref(), bytes)?)) {
                Ok(written) => return Poll::Ready(written),
                Err(_would_block) => {}
            }
        }
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        // Writes go straight to the terminal.
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        // A terminal has no half-close; dropping the console closes it.
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use std::io::{IoSlice, Read, Write};
    use std::os::unix::net::UnixStream;

    use nix::sys::socket::{ControlMessage, sendmsg};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    /// What a runtime does: connect and send `fds` with a name.
    fn send(path: &Path, fds: &[RawFd]) {
        let stream = UnixStream::connect(path).unwrap();
        let control = [ControlMessage::ScmRights(fds)];
        let control: &[ControlMessage] = if fds.is_empty() { &[] } else { &control };
        sendmsg::<()>(stream.as_raw_fd(), &[IoSlice::new(b"/dev/ptmx")], control, MsgFlags::empty(), None).unwrap();
    }

    #[tokio::test]
    async fn the_master_sent_by_a_runtime_carries_the_terminal_both_ways() {
        let socket = ConsoleSocket::bind().unwrap();
        let pty = nix::pty::openpty(None, None).unwrap();
        send(socket.path(), &[pty.master.as_raw_fd()]);
        drop(pty.master);
        let mut console = socket.receive(Duration::from_secs(5)).await.unwrap();

        let mut slave = std::fs::File::from(pty.slave);
        slave.write_all(b"from the container\n").unwrap();
        let mut seen = Vec::new();
        while !String::from_utf8_lossy(&seen).contains("from the container") {
            let mut chunk = [0u8; 256];
            let read = tokio::time::timeout(Duration::from_secs(5), console.read(&mut chunk)).await.unwrap().unwrap();
            assert!(read > 0, "the console ended early: {seen:?}");
            seen.extend_from_slice(&chunk[..read]);
        }

        console.write_all(b"typed\n").await.unwrap();
        let mut line = [0u8; 6];
        let reading = tokio::task::spawn_blocking(move || slave.read_exact(&mut line).map(|()| line));
        assert_eq!(&reading.await.unwrap().unwrap(), b"typed\n");
        // The slave is closed now: the console reads end-of-file.
        let mut rest = Vec::new();
        tokio::time::timeout(Duration::from_secs(5), console.read_to_end(&mut rest)).await.unwrap().unwrap();
    }

    #[tokio::test]
    async fn the_received_descriptor_is_close_on_exec() {
        let socket = ConsoleSocket::bind().unwrap();
        let pty = nix::pty::openpty(None, None).unwrap();
        send(socket.path(), &[pty.master.as_raw_fd()]);
        let console = socket.receive(Duration::from_secs(5)).await.unwrap();
        let flags = fcntl(console.master.get_ref(), FcntlArg::F_GETFD).unwrap();
        assert_ne!(flags & libc::FD_CLOEXEC, 0);
    }

    #[tokio::test]
    async fn the_socket_lives_in_a_private_directory_removed_on_drop() {
        let socket = ConsoleSocket::bind().unwrap();
        let dir = socket.path().parent().unwrap().to_path_buf();
        assert_eq!(std::fs::metadata(&dir).unwrap().permissions().mode() & 0o777, 0o700);
        assert!(socket.path().exists());
        drop(socket);
        assert!(!dir.exists());
    }

    #[tokio::test]
    async fn nothing_sent_is_a_timeout_and_a_message_without_a_descriptor_an_error() {
        let socket = ConsoleSocket::bind().unwrap();
        match socket.receive(Duration::from_millis(50)).await {
            Err(Error::WaitTimeout { after, .. }) => assert_eq!(after, Duration::from_millis(50)),
            other => panic!("no runtime, yet {other:?}"),
        }
        send(socket.path(), &[]);
        match socket.receive(Duration::from_secs(5)).await {
            Err(Error::Io { source, .. }) => assert_eq!(source.kind(), io::ErrorKind::InvalidData),
            other => panic!("no descriptor, yet {other:?}"),
        }
    }
}
