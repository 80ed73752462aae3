//! Terminals: `create` of a process with `terminal: true` (and `exec` of one, or with `--tty`)
//! opens a pseudo-terminal, sends its master over `--console-socket` as an `SCM_RIGHTS`
//! message, as runc, crun and youki do, and gives the process the slave as stdin, stdout and
//! stderr. Without a console socket the create is refused in each runtime's words. Not
//! imitated: the slave does not become the controlling terminal.

use std::io::IoSlice;
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::process::Command;

use nix::fcntl::{FcntlArg, FdFlag, fcntl};
use nix::sys::socket::{ControlMessage, MsgFlags, sendmsg};
use oci_spec::runtime::Process;

use super::{Ctx, Failure};
use crate::fake::Flavour;

/// When `process` asks for a terminal: sends a new terminal's master to `console_socket` and
/// makes its slave the stdio of `init`.
pub(crate) fn attach(
    ctx: &Ctx,
    process: &Process,
    console_socket: Option<&str>,
    init: &mut Command,
) -> Result<(), Failure> {
    if process.terminal() != Some(true) {
        return Ok(());
    }
    let socket = console_socket.ok_or_else(|| {
        Failure::runtime(match ctx.flavour {
            Flavour::Runc => {
                "runc create failed: cannot allocate tty if runc will detach without setting console socket"
            }
            Flavour::Crun => "use --console-socket with create when a terminal is used",
            Flavour::Youki => "cannot allocate tty if youki will detach without setting console socket",
        })
    })?;
    let pty = nix::pty::openpty(None, None).map_err(|errno| Failure::io("openpty", errno.into()))?;
    // Neither side may leak into the init beyond the slave it gets as its stdio.
    for fd in [&pty.master, &pty.slave] {
        fcntl(fd, FcntlArg::F_SETFD(FdFlag::FD_CLOEXEC)).map_err(|errno| Failure::io("fcntl", errno.into()))?;
    }
    let stream = UnixStream::connect(socket).map_err(|err| Failure::io(format!("connect {socket}"), err))?;
    // runc sends the master's path along with it.
    sendmsg::<()>(
        stream.as_raw_fd(),
        &[IoSlice::new(b"/dev/ptmx")],
        &[ControlMessage::ScmRights(&[pty.master.as_raw_fd()])],
        MsgFlags::empty(),
        None,
    )
    .map_err(|errno| Failure::io(format!("send the terminal to {socket}"), errno.into()))?;
    let slave = || pty.slave.try_clone().map_err(|err| Failure::io("dup the terminal", err));
    init.stdin(slave()?).stdout(slave()?).stderr(slave()?);
    Ok(())
}
