//! Feature probes: ask the binaries, never assume from a backend's name.
//!
//! Checkpoint needs three things to be true at once: the runtime's checkpoint command answers
//! `--help`, `criu check` succeeds, and CRIU is at least the version the runtime needs. Restore
//! needs the same of the restore command. Checkpoint options that need more of the kernel than a
//! plain dump (pre-dump's dirty-memory tracking, lazy pages' userfaultfd) are asked of CRIU one
//! by one with `criu check --feature`, once checkpoint itself works. Each verdict keeps the probes
//! that decided it, and an unsupported verdict quotes the tool that refused (for CRIU, the line
//! [`criu_reason`] picks).

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::Path;

use crate::cli::driver::{Call, CliRuntime, Finished, Runner};
use crate::contract::error::Result;
use crate::contract::exit::Exit;
use crate::contract::features::{CgroupManager, Features, Probe, Support};
use crate::contract::host::{HostCheck, HostVerdict};
use crate::contract::version::{RuntimeVersion, Version};

mod events;

/// Runs a program that is not the runtime (CRIU, or the runtime's `--version` before its dialect
/// is known) under the same rules as runtime calls: own process group killed at the timeout,
/// bounded output, nothing left running.
pub(crate) async fn run_probe(runner: &Runner, program: &Path, args: &[&str]) -> Result<Finished> {
    runner.run(vec![program.into()], Call::new(args.iter().map(OsString::from).collect())).await
}

/// A probe that ran, or failed to: the evidence, the output its verdict reads, and why it could
/// not be read at all.
struct Probed {
    evidence: Probe,
    /// Stdout then stderr; empty when the probe did not run to its end.
    output: String,
    /// The last error record of the runtime's JSON log.
    log_error: Option<String>,
    /// Why the probe says nothing: it could not run, timed out, or its output was cut.
    unusable: Option<String>,
}

impl Probed {
    fn new(argv: Vec<String>, result: Result<Finished>) -> Self {
        let finished = match result {
            Ok(finished) => finished,
            Err(err) => {
                let evidence = Probe { argv, status: None, output: err.to_string() };
                return Probed { evidence, output: String::new(), log_error: None, unusable: Some(err.to_string()) };
            }
        };
        let status = match finished.status {
            Exit::Exited(code) => Some(code),
            _ => None,
        };
        let (output, unusable) = match finished.complete_output() {
            Ok(output) => (output, None),
            Err(cut) => (finished.output_text(), Some(cut.to_string())),
        };
        let evidence = shorten(Probe { argv, status, output: output.clone() });
        Probed { evidence, output, log_error: finished.log_error, unusable }
    }

    fn succeeded(&self) -> bool {
        self.unusable.is_none() && self.evidence.status == Some(0)
    }

    /// What the tool said when it failed: its log's error, else its first line.
    fn said(&self) -> String {
        match (&self.unusable, &self.log_error) {
            (Some(unusable), _) => unusable.clone(),
            (None, Some(logged)) => logged.clone(),
            (None, None) => first_line(&self.output).to_owned(),
        }
    }
}

fn argv_of(program: &Path, args: &[&str]) -> Vec<String> {
    let mut argv = vec![program.display().to_string()];
    argv.extend(args.iter().map(|arg| (*arg).to_owned()));
    argv
}

/// Runs a program other than the runtime and records it.
async fn program_probe(runner: &Runner, program: &Path, args: &[&str]) -> Probed {
    Probed::new(argv_of(program, args), run_probe(runner, program, args).await)
}

/// Runs a runtime subcommand through the driver and records it.
async fn runtime_probe(cli: &CliRuntime, args: &[&str]) -> Probed {
    let result = cli.run(Call::new(args.iter().map(OsString::from).collect())).await;
    let argv = match &result {
        Ok(finished) => finished.argv.iter().map(|arg| arg.to_string_lossy().into_owned()).collect(),
        Err(_) => argv_of(cli.binary(), args),
    };
    Probed::new(argv, result)
}

/// The longest probe output kept as evidence.
const EVIDENCE_LIMIT: usize = 2000;

fn shorten(mut probe: Probe) -> Probe {
    let trimmed = probe.output.trim();
    probe.output = match trimmed.char_indices().nth(EVIDENCE_LIMIT) {
        Some((cut, _)) => format!("{}…", &trimmed[..cut]),
        None => trimmed.to_owned(),
    };
    probe
}

fn first_line(text: &str) -> &str {
    text.lines().map(str::trim).find(|line| !line.is_empty()).unwrap_or("no output")
}

/// CRIU's own reason for failing. CRIU prints a chain of `Error (file:line): message` lines
/// from the failing subsystem out to the generic layers (`kerndat.c`, `crtools.c`: "Could not
/// initialize kernel features detection"), with helper-process noise from `util.c` ("exited,
/// status=1") before it when stderr is not a terminal. The reason is the last line of the
/// subsystem that failed; failing that, the first error line. A feature check that fails says
/// why in a warning only (`Warn  (criu/cr-check.c:824): Dirty tracking is OFF. ...`), so without
/// an error line the reason is the first warning; failing that, the first line.
pub(crate) fn criu_reason(output: &str) -> String {
    const GENERIC: [&str; 3] = ["criu/crtools.c", "criu/kerndat.c", "criu/util.c"];
    let errors = criu_messages(output, "Error");
    let specific =
        errors.iter().rev().find(|(location, _)| !GENERIC.iter().any(|generic| location.starts_with(generic)));
    let warning = || criu_messages(output, "Warn").into_iter().next();
    match specific.or(errors.first()).copied().or_else(warning) {
        Some((_, message)) => message.to_owned(),
        None => first_line(output).to_owned(),
    }
}

/// CRIU's `<level> (file:line): message` lines of one level, as (location, message).
fn criu_messages<'a>(output: &'a str, level: &str) -> Vec<(&'a str, &'a str)> {
    output
        .lines()
        .filter_map(|line| {
            let rest = line.trim().strip_prefix(level)?.trim_start().strip_prefix('(')?;
            let (location, message) = rest.split_once("): ")?;
            Some((location, message.trim()))
        })
        .collect()
}

/// `Version: 3.17.1` in `criu --version`.
fn criu_version(output: &str) -> Option<Version> {
    output.lines().find_map(|line| line.trim().strip_prefix("Version:")?.trim().parse().ok())
}

/// What CRIU can do here: `criu check`, then its version against the runtime's minimum.
struct CriuVerdict {
    problem: Option<String>,
    /// The version `criu --version` reported, once `criu check` passed.
    version: Option<Version>,
    evidence: Vec<Probe>,
}

async fn probe_criu(runner: &Runner, criu: &Path, minimum: Option<Version>) -> CriuVerdict {
    let check = program_probe(runner, criu, &["check"]).await;
    if !check.succeeded() {
        let reason = check.unusable.clone().unwrap_or_else(|| criu_reason(&check.output));
        let problem = format!("`criu check` failed: {reason}");
        return CriuVerdict { problem: Some(problem), version: None, evidence: vec![check.evidence] };
    }
    let version = program_probe(runner, criu, &["--version"]).await;
    let found = criu_version(&version.output);
    let problem = match (found, minimum) {
        (None, _) => Some(format!("cannot read CRIU's version from `criu --version`: {}", version.said())),
        (Some(found), Some(minimum)) if found < minimum => {
            Some(format!("CRIU {found} is older than the {minimum} this runtime needs"))
        }
        _ => None,
    };
    CriuVerdict { problem, version: found, evidence: vec![check.evidence, version.evidence] }
}

/// A checkpoint option that needs a kernel feature beyond what a plain dump needs.
struct CriuOption {
    /// The runtime's checkpoint flag.
    flag: &'static str,
    /// The name `criu check --feature` takes.
    feature: &'static str,
    /// What CRIU cannot do without it, after "CRIU 4.1.1 cannot".
    inability: &'static str,
}

const PRE_DUMP: CriuOption =
    CriuOption { flag: "--pre-dump", feature: "mem_dirty_track", inability: "track dirty memory" };

const LAZY_PAGES: CriuOption =
    CriuOption { flag: "--lazy-pages", feature: "uffd-noncoop", inability: "serve memory pages lazily" };

/// The verdict for a checkpoint option: checkpoint works, the runtime takes the flag, and
/// `criu check --feature` passes.
async fn checkpoint_option(
    cli: &CliRuntime,
    checkpoint: &Support,
    criu: &Path,
    found: &CriuVerdict,
    option: &CriuOption,
) -> Support {
    let CriuOption { flag, feature, inability } = option;
    if let Some(reason) = checkpoint.reason() {
        let reason = format!("{flag} needs checkpoint, which is unsupported: {reason}");
        return Support::Unsupported { reason, evidence: checkpoint.evidence().to_vec() };
    }
    let dialect = cli.dialect();
    if let Some(command) = dialect.checkpoint_command.as_deref().filter(|command| dialect.lacks_flag(command, flag)) {
        let reason = format!("the runtime's `{command}` does not take {flag}");
        return Support::Unsupported { reason, evidence: checkpoint.evidence().to_vec() };
    }
    let probe = program_probe(cli.runner(), criu, &["check", "--feature", feature]).await;
    let mut evidence = checkpoint.evidence().to_vec();
    if probe.succeeded() {
        evidence.push(probe.evidence);
        return Support::Supported { evidence };
    }
    // A supported checkpoint means CRIU's version was read.
    let criu_name = found.version.map_or_else(|| "CRIU".to_owned(), |version| format!("CRIU {version}"));
    let reason = match &probe.unusable {
        Some(unusable) => format!("`criu check --feature {feature}` failed: {unusable}"),
        None => format!("{criu_name} cannot {inability}: {}", criu_reason(&probe.output)),
    };
    evidence.push(probe.evidence);
    Support::Unsupported { reason, evidence }
}

/// The verdict for a checkpoint-like command: it must answer `--help`, and CRIU must work.
async fn command_with_criu(cli: &CliRuntime, command: Option<&str>, what: &str, criu: &CriuVerdict) -> Support {
    let Some(command) = command else {
        return Support::Unsupported {
            reason: format!("the runtime's dialect has no {what} command"),
            evidence: Vec::new(),
        };
    };
    let help = runtime_probe(cli, &[command, "--help"]).await;
    if !help.succeeded() {
        return Support::Unsupported {
            reason: format!("the runtime has no working `{command}` command: {}", help.said()),
            evidence: vec![help.evidence],
        };
    }
    let mut evidence = vec![help.evidence];
    evidence.extend(criu.evidence.iter().cloned());
    match &criu.problem {
        Some(problem) => Support::Unsupported { reason: problem.clone(), evidence },
        None => Support::Supported { evidence },
    }
}

async fn features_document(cli: &CliRuntime) -> (Support, Option<oci_spec::runtime::Features>) {
    let Some(args) = cli.dialect().features_args() else {
        let reason = "the runtime's dialect has no features command".to_owned();
        return (Support::Unsupported { reason, evidence: Vec::new() }, None);
    };
    let args: Vec<String> = args.iter().map(|arg| arg.to_string_lossy().into_owned()).collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let probe = runtime_probe(cli, &args).await;
    if !probe.succeeded() {
        let reason = format!("`{}` failed: {}", args.join(" "), probe.said());
        return (Support::Unsupported { reason, evidence: vec![probe.evidence] }, None);
    }
    match serde_json::from_str::<oci_spec::runtime::Features>(&probe.output) {
        Ok(document) => (Support::Supported { evidence: vec![probe.evidence] }, Some(document)),
        Err(err) => {
            let reason = format!("`{}` printed a document that is not OCI features JSON: {err}", args.join(" "));
            (Support::Unsupported { reason, evidence: vec![probe.evidence] }, None)
        }
    }
}

async fn json_error_log(cli: &CliRuntime) -> Support {
    if !cli.dialect().global_flags.json_log {
        let reason = "the runtime's dialect has no JSON log format; errors are read from stderr".to_owned();
        return Support::Unsupported { reason, evidence: Vec::new() };
    }
    // Asking for a container that cannot exist is harmless and must fail with a logged error.
    let probe_id = format!("features-probe-{}", std::process::id());
    let probe = runtime_probe(cli, &["state", &probe_id]).await;
    match (&probe.unusable, probe.log_error) {
        (Some(unusable), _) => Support::Unsupported { reason: unusable.clone(), evidence: vec![probe.evidence] },
        (None, Some(record)) => {
            let evidence = Probe { output: format!("log record: {record}"), ..probe.evidence };
            Support::Supported { evidence: vec![evidence] }
        }
        (None, None) => Support::Unsupported {
            reason: "a failing call wrote no JSON error record to --log".to_owned(),
            evidence: vec![probe.evidence],
        },
    }
}

async fn update_command(cli: &CliRuntime) -> Support {
    let probe = runtime_probe(cli, &["update", "--help"]).await;
    if probe.succeeded() {
        Support::Supported { evidence: vec![probe.evidence] }
    } else {
        Support::Unsupported {
            reason: format!("`update --help` failed: {}", probe.said()),
            evidence: vec![probe.evidence],
        }
    }
}

async fn cgroup_managers(cli: &CliRuntime) -> BTreeMap<CgroupManager, Support> {
    let probe = runtime_probe(cli, &["--help"]).await;
    let has_manager_flag = probe.output.contains("--cgroup-manager");
    let has_systemd_flag = probe.output.contains("--systemd-cgroup");
    let unreadable = probe.unusable.clone();
    let evidence = vec![probe.evidence];
    let verdict = |accepted: bool, reason: &str| match (&unreadable, accepted) {
        (_, true) => Support::Supported { evidence: evidence.clone() },
        (Some(unreadable), false) => Support::Unsupported { reason: unreadable.clone(), evidence: evidence.clone() },
        (None, false) => Support::Unsupported { reason: reason.to_owned(), evidence: evidence.clone() },
    };
    BTreeMap::from([
        (CgroupManager::Cgroupfs, verdict(true, "")),
        (
            CgroupManager::Systemd,
            verdict(
                has_manager_flag || has_systemd_flag,
                "`--help` lists neither --cgroup-manager nor --systemd-cgroup",
            ),
        ),
        (CgroupManager::Disabled, verdict(has_manager_flag, "`--help` does not list --cgroup-manager")),
    ])
}

/// Runs the host checks now, for this caller: the verdict, or the first problem; each check
/// that ran is a probe of the evidence, its description as the argv and what it saw as the
/// output.
pub fn host_support(checks: &[std::sync::Arc<dyn HostCheck>]) -> Support {
    let mut evidence = Vec::new();
    for check in checks {
        match check.check() {
            HostVerdict::Fine { evidence: seen } => evidence.push(host_probe(check.as_ref(), seen)),
            HostVerdict::Incompatible { problem, fix, evidence: seen } => {
                evidence.push(host_probe(check.as_ref(), seen));
                return Support::Unsupported { reason: format!("{problem}; fix: {fix}"), evidence };
            }
        }
    }
    Support::Supported { evidence }
}

fn host_probe(check: &dyn HostCheck, seen: String) -> Probe {
    Probe { argv: vec![check.describe()], status: None, output: seen }
}

/// Probes everything in [`Features`].
pub(crate) async fn probe_features(
    cli: &CliRuntime,
    version: RuntimeVersion,
    criu_binary: &Path,
    host_checks: &[std::sync::Arc<dyn HostCheck>],
) -> Features {
    let dialect = cli.dialect();
    let criu = probe_criu(cli.runner(), criu_binary, dialect.min_criu_version).await;
    let (checkpoint, restore, (features_command, document), json_error_log, update, cgroup_managers, events) = tokio::join!(
        command_with_criu(cli, dialect.checkpoint_command.as_deref(), "checkpoint", &criu),
        command_with_criu(cli, dialect.restore_command.as_deref(), "restore", &criu),
        features_document(cli),
        json_error_log(cli),
        update_command(cli),
        cgroup_managers(cli),
        events::events_command(cli),
    );
    let (pre_dump, lazy_pages) = tokio::join!(
        checkpoint_option(cli, &checkpoint, criu_binary, &criu, &PRE_DUMP),
        checkpoint_option(cli, &checkpoint, criu_binary, &criu, &LAZY_PAGES),
    );
    Features {
        version,
        checkpoint,
        restore,
        pre_dump,
        lazy_pages,
        features_command,
        document,
        json_error_log,
        update,
        cgroup_managers,
        host: host_support(host_checks),
        events,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn criu_reason_is_the_failing_subsystems_last_line_on_a_terminal() {
        let output = "Error (criu/vdso.c:613): vdso: Failed to fill self vdso symtable\n\
                      Error (criu/kerndat.c:1615): kerndat_vdso_fill_symtable failed when initializing kerndat.\n\
                      Error (criu/crtools.c:260): Could not initialize kernel features detection.\n";
        assert_eq!(criu_reason(output), "vdso: Failed to fill self vdso symtable");
    }

    #[test]
    fn criu_reason_skips_helper_noise_when_stderr_is_a_pipe() {
        let output = include_str!("../../tests/fixtures/criu-check-vdso.txt");
        assert_eq!(criu_reason(output), "vdso: Failed to fill self vdso symtable");
    }

    #[test]
    fn criu_reason_is_the_warning_of_a_failed_feature_check() {
        // `criu check --feature mem_dirty_track` of CRIU 4.1.1 on a kernel without soft-dirty bits.
        let output = include_str!("../../tests/fixtures/criu-check-mem-dirty-track.txt");
        assert_eq!(criu_reason(output), "Dirty tracking is OFF. Memory snapshot will not work.");
        let both = format!("{output}Error (criu/cr-check.c:1866): Unknown feature nonexistent\n");
        assert_eq!(criu_reason(&both), "Unknown feature nonexistent", "an error line wins over a warning");
    }

    #[test]
    fn criu_reason_falls_back_to_the_first_error_then_the_first_line() {
        assert_eq!(criu_reason("Error (criu/crtools.c:1): Could not start\n"), "Could not start");
        assert_eq!(criu_reason("criu: command not found\n"), "criu: command not found");
    }

    #[test]
    fn criu_version_is_read_from_its_version_line() {
        assert_eq!(criu_version("Version: 3.17.1\nGitID: v3.17.1\n"), Some(Version::new(3, 17, 1)));
        assert_eq!(criu_version("nonsense"), None);
    }
}
