//! Waiting without polling: for an exit file with inotify, for a process with a pidfd, both on
//! the tokio reactor.
//!
//! conmon writes the exit file once, by a rename into the exit directory (glib's
//! `g_file_set_contents`), so a watch on the directory for moved-in and closed-after-writing
//! files sees it appear complete. The watch is set before the file is first looked for, so an
//! exit between the two is not missed.
//!
//! Registering a descriptor with the reactor is `unsafe` in tokio (it cannot check that the
//! descriptor stays open); here each one is owned by the value registered, which is what makes
//! it sound.
#![allow(unsafe_code)]

use std::io;
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::path::Path;
use std::time::Duration;

use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify};
use tokio::io::Interest;
use tokio::io::unix::AsyncFd;

use runtime_core::{ContainerFiles, Error, Exit, Result};

/// An inotify instance, for the reactor.
pub(crate) struct Watch(pub(crate) Inotify);

impl AsRawFd for Watch {
    fn as_raw_fd(&self) -> RawFd {
        self.0.as_fd().as_raw_fd()
    }
}

/// Waits until the container's exit file is there and says how it ended; `None` when `writer_gone`
/// (the end of whoever was to write it) comes first and the file is still not there.
pub(crate) async fn exit_file(files: &ContainerFiles, writer_gone: impl Future<Output = ()>) -> Result<Option<Exit>> {
    let path = &files.exit_file;
    let (dir, name) = match (path.parent(), path.file_name()) {
        (Some(dir), Some(name)) => (dir, name.to_owned()),
        _ => {
            return Err(Error::Io {
                context: format!("watching {}", path.display()),
                source: io::ErrorKind::InvalidInput.into(),
            });
        }
    };
    let context = || format!("watching {} for the exit file {}", dir.display(), path.display());
    let inotify = Inotify::init(InitFlags::IN_NONBLOCK | InitFlags::IN_CLOEXEC)
        .map_err(|errno| Error::Io { context: context(), source: errno.into() })?;
    inotify
        .add_watch(dir, AddWatchFlags::IN_MOVED_TO | AddWatchFlags::IN_CLOSE_WRITE)
        .map_err(|errno| Error::Io { context: context(), source: errno.into() })?;
    // SAFETY: the inotify descriptor is owned by `Watch`, which the `AsyncFd` owns: it stays
    // open, under the same number, until the `AsyncFd` is dropped.
    let watch = unsafe { AsyncFd::register_with_interest(Watch(inotify), Interest::READABLE) }
        .map_err(|err| Error::Io { context: context(), source: err.into_parts().1 })?;
    if let Some(exit) = complete_exit(files)? {
        return Ok(Some(exit));
    }
    let appeared = async {
        loop {
            let mut ready = watch.readable().await.map_err(|err| Error::Io { context: context(), source: err })?;
            let events = match ready.get_inner().0.read_events() {
                Ok(events) => events,
                Err(nix::errno::Errno::EAGAIN) => {
                    ready.clear_ready();
                    continue;
                }
                Err(errno) => return Err(Error::Io { context: context(), source: errno.into() }),
            };
            if events.iter().any(|event| event.name.as_deref() == Some(name.as_os_str()))
                && let Some(exit) = complete_exit(files)?
            {
                return Ok(Some(exit));
            }
        }
    };
    tokio::select! {
        exit = appeared => exit,
        // The writer records the exit before it ends: what is there now is all there will be.
        () = writer_gone => complete_exit(files),
    }
}

/// The recorded exit; an exit file still empty (being written by something that does not
/// rename) is not there yet.
fn complete_exit(files: &ContainerFiles) -> Result<Option<Exit>> {
    match std::fs::metadata(&files.exit_file) {
        Ok(meta) if meta.len() == 0 => Ok(None),
        _ => files.recorded_exit(),
    }
}

/// A process this monitor started, held by a pidfd so that its pid cannot name another.
pub(crate) struct Process {
    pidfd: AsyncFd<OwnedFd>,
    pub(crate) pid: u32,
}

impl Process {
    /// The process `pid`, if it is still there (a zombie counts: it is there until reaped).
    pub(crate) fn open(pid: u32) -> Result<Option<Self>> {
        let Some(raw) = i32::try_from(pid).ok().and_then(rustix::process::Pid::from_raw) else {
            return Ok(None);
        };
        match rustix::process::pidfd_open(raw, rustix::process::PidfdFlags::NONBLOCK) {
            Ok(fd) => {
                // SAFETY: the `OwnedFd` is a valid open descriptor that the `AsyncFd` owns: it
                // stays open, under the same number, until the `AsyncFd` is dropped.
                let pidfd = unsafe { AsyncFd::register_with_interest(fd, Interest::READABLE) }.map_err(|err| {
                    Error::Io { context: format!("watching process {pid}"), source: err.into_parts().1 }
                })?;
                Ok(Some(Process { pidfd, pid }))
            }
            Err(rustix::io::Errno::SRCH) => Ok(None),
            Err(errno) => Err(Error::Io { context: format!("opening a pidfd for {pid}"), source: errno.into() }),
        }
    }

    /// Sends SIGKILL; one that has exited already is left alone.
    pub(crate) fn kill(&self) -> Result<()> {
        self.signal(rustix::process::Signal::KILL)
    }

    /// Sends `signal`; one that has exited already is left alone.
    pub(crate) fn signal(&self, signal: rustix::process::Signal) -> Result<()> {
        match rustix::process::pidfd_send_signal(self.pidfd.get_ref(), signal) {
            Ok(()) | Err(rustix::io::Errno::SRCH) => Ok(()),
            Err(errno) => Err(Error::Io { context: format!("signalling process {}", self.pid), source: errno.into() }),
        }
    }

    /// Waits at most `bound` for it to exit (a zombie has); returns whether it did.
    pub(crate) async fn exited_within(&self, bound: Duration) -> bool {
        tokio::time::timeout(bound, self.pidfd.readable()).await.is_ok_and(|ready| ready.is_ok())
    }

    /// Resolves once it has exited (a zombie has). A pidfd that cannot be waited on says so at
    /// once: it is then not known to live.
    pub(crate) async fn exited(&self) {
        let _ = self.pidfd.readable().await;
    }
}

/// Whether `path` is there.
pub(crate) fn exists(path: &Path) -> bool {
    path.symlink_metadata().is_ok()
}
