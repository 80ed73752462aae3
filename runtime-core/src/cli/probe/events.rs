//! The `events` probe: the dialect must name the command and the binary must answer its
//! `--help`. crun 1.8.1 answers `unknown command events`, which becomes the reason.

use super::runtime_probe;
use crate::cli::driver::CliRuntime;
use crate::contract::features::Support;

/// Whether the runtime's `events` command works.
pub(super) async fn events_command(cli: &CliRuntime) -> Support {
    let Some(events) = &cli.dialect().events else {
        let reason = "the runtime's dialect has no events command".to_owned();
        return Support::Unsupported { reason, evidence: Vec::new() };
    };
    let command = events.command.as_str();
    let help = runtime_probe(cli, &[command, "--help"]).await;
    if help.succeeded() {
        return Support::Supported { evidence: vec![help.evidence] };
    }
    Support::Unsupported {
        reason: format!("the runtime has no working `{command}` command: {}", help.said()),
        evidence: vec![help.evidence],
    }
}
