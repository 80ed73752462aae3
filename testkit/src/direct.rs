//! A runtime run directly, not through the library: how the tests hold the library's view of a
//! runtime (its dialect, its host checks) to what the runtime itself does.

use std::ffi::OsStr;
use std::process::Output;

use anyhow::Context;
use runtime_core::{Exit, Failure, OciBackend};

/// The runtime of `backend` run with `args` after its global flags, run again (up to twice)
/// when it fails in one of the ways the library itself runs a call again for (youki's failure
/// to seal its copy, say): what is compared is what the runtime does, not those.
pub fn run_directly(backend: &dyn OciBackend, args: &[&OsStr]) -> anyhow::Result<Output> {
    let mut attempts = 0;
    loop {
        let output = std::process::Command::new(backend.binary())
            .args(backend.global_args())
            .args(args)
            .stdin(std::process::Stdio::null())
            .output()
            .with_context(|| format!("running {args:?}"))?;
        let failure = Failure {
            argv: args.iter().map(|arg| arg.to_os_string()).collect(),
            status: Exit::from(output.status),
            message: String::from_utf8_lossy(&output.stderr).into_owned(),
        };
        attempts += 1;
        if output.status.success() || attempts == 3 || !backend.is_transient(&failure) {
            return Ok(output);
        }
    }
}
