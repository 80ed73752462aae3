//! Terminals: `create` of a process with `terminal: true` opens a pseudo-terminal, sends its
//! master over `--console-socket` as an `SCM_RIGHTS` message, as runc, crun and youki do, and
//! gives the init the slave as stdin, stdout and stderr. Without a console socket a detached
//! terminal container is refused in each runtime's words. Not imitated: the slave does not become
//! the controlling terminal, and `exec --tty` is accepted and ignored.

use std::io::IoSlice;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::path::Path;

use nix::fcntl::{FcntlArg, FdFlag, fcntl};
use nix::sys::socket::{ControlMessage, MsgFlags, sendmsg};
use oci_spec::runtime::Spec;

use super::error::{Failure, io_failure};
use super::flavour::{Ctx, Flavour};

/// The slave side of a new terminal whose master went to `console_socket`, when the bundle's
/// process asks for a terminal; `None` otherwise.
pub(crate) fn attach(
    ctx: &Ctx,
    bundle: &Path,
    console_socket: Option<&str>,
    detached: bool,
) -> Result<Option<OwnedFd>, Failure> {
    let terminal = Spec::load(bundle.join("config.json"))
        .ok()
        .and_then(|spec| spec.process().as_ref().and_then(|process| process.terminal()))
        .unwrap_or(false);
    if !terminal {
        return Ok(None);
    }
    let Some(socket) = console_socket else {
        if !detached {
            // A foreground `run` keeps its own stdio for the process.
            return Ok(None);
        }
        return Err(Failure::runtime(match ctx.flavour {
            Flavour::Runc => "cannot allocate tty if runc will detach without setting console socket",
            Flavour::Crun => "use --console-socket with create when a terminal is used",
            Flavour::Youki => "cannot allocate tty if youki will detach without setting console socket",
        }));
    };
    let pty = nix::pty::openpty(None, None).map_err(|errno| io_failure("openpty", errno.into()))?;
    for fd in [&pty.master, &pty.slave] {
        fcntl(fd, FcntlArg::F_SETFD(FdFlag::FD_CLOEXEC)).map_err(|errno| io_failure("fcntl", errno.into()))?;
    }
    let stream = UnixStream::connect(socket).map_err(|err| io_failure(format!("connect {socket}"), err))?;
    // runc sends the master's path along with it.
    sendmsg::<()>(
        stream.as_raw_fd(),
        &[IoSlice::new(b"/dev/ptmx")],
        &[ControlMessage::ScmRights(&[pty.master.as_raw_fd()])],
        MsgFlags::empty(),
        None,
    )
    .map_err(|errno| io_failure(format!("send the terminal to {socket}"), errno.into()))?;
    Ok(Some(pty.slave))
}
