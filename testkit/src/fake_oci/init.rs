//! The container init: a re-exec of the fake itself that stands between `create` and `start`.
//!
//! Real runtimes split container startup in two: `create` leaves an init process blocked on
//! `<root>/<id>/exec.fifo`, and `start` opens the other end to let it `exec` the user's process.
//! Reproducing that (instead of spawning the process at `start`) keeps the observable behaviour
//! faithful: the pid is known and reported from `create` on, the process inherits `create`'s
//! stdio rather than `start`'s, and killing a created container kills a real process.
//!
//! `create` spawns `<current exe> __fake-oci-init <fifo> <executable> -- <args...>` with argv[0]
//! set to the flavour name (so a test harness that dispatches on argv[0] routes it back here),
//! already in the container's environment, working directory and its own process group.

use std::ffi::OsString;
use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::process::CommandExt;
use std::process::{Command, ExitCode};

/// The hidden subcommand that marks an init invocation.
pub(crate) const INIT_ARG: &str = "__fake-oci-init";

/// Runs the init with the arguments after [`INIT_ARG`].
pub(crate) fn main(args: &[OsString]) -> ExitCode {
    let [fifo, executable, separator, argv @ ..] = args else {
        eprintln!("fake-oci init: malformed arguments");
        return ExitCode::from(127);
    };
    if separator != "--" || argv.is_empty() {
        eprintln!("fake-oci init: malformed arguments");
        return ExitCode::from(127);
    }
    // Blocks until `start` opens the fifo for reading.
    match OpenOptions::new().write(true).open(fifo) {
        Ok(mut pipe) => {
            if let Err(err) = pipe.write_all(b"0") {
                eprintln!("fake-oci init: write exec fifo: {err}");
                return ExitCode::from(127);
            }
        }
        Err(err) => {
            eprintln!("fake-oci init: open exec fifo: {err}");
            return ExitCode::from(127);
        }
    }
    let err = Command::new(executable).arg0(&argv[0]).args(&argv[1..]).exec();
    eprintln!("fake-oci init: exec {}: {err}", executable.to_string_lossy());
    ExitCode::from(127)
}
