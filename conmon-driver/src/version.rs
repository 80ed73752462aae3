//! conmon's version, and the options each version has.
//!
//! conmon refuses an option it does not know by exiting with a usage message, after the
//! embedding process has already made the container's directory and pipes; worse, an older
//! conmon may take it for something else. So the driver asks `conmon --version` once per
//! monitor and refuses, before anything runs, a command line holding an option that came in a
//! later release than the one installed, naming the option and both versions.
//!
//! [`LATER_OPTIONS`] lists the options the driver emits (or is about to) that conmon gained in
//! or after 2.0.0. Each release is the first tag holding the commit that added the option's
//! entry to conmon's option table (`git log -S'{"option"'` in containers/conmon, then
//! `git describe --contains`). Options older than 2.0 (`-c`, `-b`, `--exit-dir`, `--restore`,
//! `--leave-stdin-open`, `--log-size-max`, `--no-new-keyring`...) are in every conmon the
//! driver can talk to, since `--api-version` itself came in 2.0.0.

use std::ffi::OsString;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use runtime_core::{Error, Result, Version};
use tokio::io::AsyncReadExt;

/// How long `conmon --version` may take.
pub(crate) const VERSION_PROBE_TIMEOUT: Duration = Duration::from_secs(10);

/// How much of `conmon --version`'s output is read; conmon prints two short lines.
const VERSION_OUTPUT_LIMIT: u64 = 4096;

/// Options conmon gained in or after 2.0.0, with the first release that has each.
pub(crate) const LATER_OPTIONS: &[(&str, Version)] = &[
    // aa5f905 "use conmon for a sync'd exec"; d68b2d9 "Enable backwards compatibility".
    ("--runtime-opt", Version::new(2, 0, 0)),
    ("--api-version", Version::new(2, 0, 0)),
    // 11efe93 "change conmon exec --attach option to exec-attach".
    ("--exec-attach", Version::new(2, 0, 0)),
    // 8d66f44 "src: add new option --log-tag".
    ("--log-tag", Version::new(2, 0, 3)),
    // c792503 "Write exit file to container bundle directory".
    ("--persist-dir", Version::new(2, 0, 5)),
    // 27eb304 "Add option to delay execution of exit command".
    ("--exit-delay", Version::new(2, 0, 17)),
    // 59c2817 "Refactor I/O and add SD_NOTIFY proxy support".
    ("--sdnotify-socket", Version::new(2, 0, 22)),
    // 93f5b30 "conn_sock: add full-attach option".
    ("--full-attach", Version::new(2, 0, 23)),
    // 2bc95ee "`log-size-global-max` Should Be `log-global-size-max`".
    ("--log-global-size-max", Version::new(2, 1, 2)),
    // f37e9e7 "logging: Add container labels to log entries on journald".
    ("--log-label", Version::new(2, 2, 0)),
    // 61c8da9 "Add log rotation functionality as alternative to log truncation".
    ("--log-rotate", Version::new(2, 2, 0)),
    ("--log-max-files", Version::new(2, 2, 0)),
];

/// The version in `conmon --version`'s output, whose first line is `conmon version X.Y.Z`.
pub(crate) fn parse_version(output: &str) -> Result<Version> {
    let first = output.lines().next().unwrap_or_default();
    let garbage = || {
        let start: String = first.chars().take(80).collect();
        Error::Parse {
            what: "conmon --version".into(),
            message: format!("expected `conmon version X.Y.Z` first, got {start:?}"),
            source: None,
        }
    };
    let number = first.strip_prefix("conmon version ").ok_or_else(garbage)?;
    if !number.trim().starts_with(|c: char| c.is_ascii_digit()) {
        return Err(garbage());
    }
    number.parse()
}

/// Refuses `argv` when it holds an option of [`LATER_OPTIONS`] that `version` lacks.
pub(crate) fn require_options(argv: &[OsString], version: Version) -> Result<()> {
    for word in argv {
        let lacking = LATER_OPTIONS.iter().find(|(option, since)| word.as_os_str() == *option && version < *since);
        if let Some((option, since)) = lacking {
            return Err(Error::Unsupported {
                backend: format!("conmon {version}"),
                feature: (*option).to_owned(),
                reason: format!("{option} came in conmon {since}"),
            });
        }
    }
    Ok(())
}

/// Runs `conmon --version` in its own process group, bounded by `timeout`, and reads the
/// version. Nothing it started is left running.
pub(crate) async fn probe(conmon: &Path, timeout: Duration) -> Result<Version> {
    let argv: Vec<OsString> = vec![conmon.into(), "--version".into()];
    let mut child = tokio::process::Command::new(conmon)
        .arg("--version")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .process_group(0)
        .kill_on_drop(true)
        .spawn()
        .map_err(|err| match err.kind() {
            std::io::ErrorKind::NotFound => Error::BinaryNotFound { path: conmon.to_path_buf(), source: err },
            std::io::ErrorKind::PermissionDenied => {
                Error::BinaryNotExecutable { path: conmon.to_path_buf(), source: err }
            }
            _ => Error::Io { context: format!("starting {} --version", conmon.display()), source: err },
        })?;
    let group = child.id().map(|pid| Pid::from_raw(pid as i32));
    let mut stdout = child.stdout.take().ok_or_else(|| Error::Io {
        context: "reading conmon --version".into(),
        source: std::io::ErrorKind::BrokenPipe.into(),
    })?;
    let run = async {
        let mut output = Vec::new();
        (&mut stdout)
            .take(VERSION_OUTPUT_LIMIT + 1)
            .read_to_end(&mut output)
            .await
            .map_err(|source| Error::Io { context: "reading conmon --version".into(), source })?;
        if output.len() as u64 > VERSION_OUTPUT_LIMIT {
            return Ok(Err(output.len()));
        }
        let status = child
            .wait()
            .await
            .map_err(|source| Error::Io { context: "waiting for conmon --version".into(), source })?;
        Ok(Ok((status, output)))
    };
    let outcome = tokio::time::timeout(timeout, run).await;
    // Whatever the probe left in its group (or the probe itself, on a timeout) goes.
    if let Some(group) = group {
        let _ = killpg(group, Signal::SIGKILL);
    }
    let _ = child.wait().await;
    let (status, output) = match outcome {
        Err(_) => return Err(Error::Timeout { argv, after: timeout, left_behind: None }),
        Ok(Err(err)) => return Err(err),
        Ok(Ok(Err(_))) => {
            let limit = VERSION_OUTPUT_LIMIT as usize;
            return Err(Error::OutputTruncated { argv, stream: "stdout", limit });
        }
        Ok(Ok(Ok(done))) => done,
    };
    let text = String::from_utf8_lossy(&output);
    if !status.success() {
        let failure = runtime_core::Failure { argv, status: status.into(), message: text.into_owned() };
        return Err(Error::RuntimeFailed(Box::new(failure)));
    }
    parse_version(&text)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(words: &str) -> Vec<OsString> {
        words.split_whitespace().map(OsString::from).collect()
    }

    #[test]
    fn reads_the_first_line_as_conmon_2_1_6_prints_it() {
        // `conmon --version` of Debian 12's conmon, as printed on this host.
        let version = parse_version("conmon version 2.1.6\ncommit: unknown\n").unwrap();
        assert_eq!(version, Version::new(2, 1, 6));
    }

    #[test]
    fn anything_else_is_a_parse_error() {
        for garbage in ["", "hello\n", "conmon 2.1.6\n", "conmon version x.y\n", "runc version 1.1.5\n"] {
            let parsed = parse_version(garbage);
            assert!(matches!(parsed, Err(Error::Parse { .. })), "{garbage:?}: {parsed:?}");
        }
    }

    #[test]
    fn an_option_newer_than_the_installed_conmon_is_refused_naming_both_versions() {
        let refused = require_options(&argv("conmon --api-version 1 --full-attach -c c1"), Version::new(2, 0, 22));
        match refused {
            Err(Error::Unsupported { backend, feature, reason }) => {
                assert_eq!(backend, "conmon 2.0.22");
                assert_eq!(feature, "--full-attach");
                assert_eq!(reason, "--full-attach came in conmon 2.0.23");
            }
            other => panic!("expected Unsupported, got {other:?}"),
        }
        assert!(require_options(&argv("conmon --api-version 1 --full-attach"), Version::new(2, 0, 23)).is_ok());
    }

    #[test]
    fn the_exit_delay_the_sd_notify_relay_and_the_log_tag_need_the_conmon_that_brought_them() {
        // conmon's releases, read from containers/conmon's tags (see the module docs).
        for (option, before, since) in [
            ("--exit-delay", Version::new(2, 0, 16), Version::new(2, 0, 17)),
            ("--sdnotify-socket", Version::new(2, 0, 21), Version::new(2, 0, 22)),
            ("--log-tag", Version::new(2, 0, 2), Version::new(2, 0, 3)),
        ] {
            let line = argv(&format!("conmon --api-version 1 {option} x"));
            let refused = require_options(&line, before);
            assert!(matches!(&refused, Err(Error::Unsupported { feature, .. }) if feature == option), "{refused:?}");
            assert!(require_options(&line, since).is_ok(), "{option} on {since}");
        }
    }

    #[test]
    fn the_exit_command_s_the_log_level_and_the_listen_pid_are_in_every_conmon() {
        // In conmon's option table since its first commit, taken from CRI-O before 2.0.
        let old = argv(
            "conmon --exit-command /bin/true --exit-command-arg a -s --log-level debug --replace-listen-pid \
             --runtime-opt --preserve-fds",
        );
        assert!(require_options(&old, Version::new(2, 0, 0)).is_ok());
    }

    #[test]
    fn a_conmon_older_than_2_0_is_refused_for_the_api_version_every_call_names() {
        let refused = require_options(&argv("conmon --api-version 1 -c c1"), Version::new(1, 0, 1));
        assert!(
            matches!(&refused, Err(Error::Unsupported { feature, .. }) if feature == "--api-version"),
            "{refused:?}"
        );
    }

    #[test]
    fn options_every_conmon_has_need_no_version() {
        let old_options = argv("conmon -c c1 -b /b --exit-dir /e --restore /img --leave-stdin-open --no-new-keyring");
        assert!(require_options(&old_options, Version::new(0, 2, 0)).is_ok());
    }

    /// A stand-in for conmon: a shell script running `body`.
    fn stand_in(dir: &Path, body: &str) -> std::path::PathBuf {
        use std::os::unix::fs::PermissionsExt;
        let path = dir.join("conmon");
        std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        path
    }

    #[tokio::test]
    async fn a_missing_conmon_is_binary_not_found() {
        let dir = tempfile::tempdir().unwrap();
        let probed = probe(&dir.path().join("conmon"), VERSION_PROBE_TIMEOUT).await;
        assert!(matches!(probed, Err(Error::BinaryNotFound { .. })), "{probed:?}");
    }

    #[tokio::test]
    async fn a_conmon_printing_garbage_is_a_parse_error() {
        let dir = tempfile::tempdir().unwrap();
        let conmon = stand_in(dir.path(), "echo 'Usage: conmon [OPTION...]'");
        let probed = probe(&conmon, VERSION_PROBE_TIMEOUT).await;
        assert!(matches!(probed, Err(Error::Parse { .. })), "{probed:?}");
    }

    #[tokio::test]
    async fn a_conmon_printing_without_end_is_cut_and_refused() {
        let dir = tempfile::tempdir().unwrap();
        let conmon = stand_in(dir.path(), "while :; do echo conmon version 2.1.6; done");
        let probed = probe(&conmon, VERSION_PROBE_TIMEOUT).await;
        assert!(matches!(probed, Err(Error::OutputTruncated { .. })), "{probed:?}");
    }

    #[tokio::test]
    async fn a_hanging_conmon_times_out_and_leaves_nothing_running() {
        let dir = tempfile::tempdir().unwrap();
        // The sleep is a child of the script, in its process group, holding its stdout.
        let group_file = dir.path().join("group");
        let conmon = stand_in(dir.path(), &format!("echo $$ > {}; sleep 1000 & wait", group_file.display()));
        let probed = probe(&conmon, Duration::from_millis(500)).await;
        assert!(
            matches!(&probed, Err(Error::Timeout { after, .. }) if *after == Duration::from_millis(500)),
            "{probed:?}"
        );
        // The group was killed: no live process is left in it (a zombie counts as gone). A
        // SIGKILLed process takes a moment to die, so it is given a few seconds.
        let group = std::fs::read_to_string(&group_file).unwrap().trim().to_owned();
        let live_in_group = || -> Vec<std::ffi::OsString> {
            std::fs::read_dir("/proc")
                .unwrap()
                .flatten()
                .filter(|entry| {
                    let stat = std::fs::read_to_string(entry.path().join("stat")).unwrap_or_default();
                    // After the command name: state, ppid, process group.
                    let fields: Vec<String> = stat
                        .rsplit_once(')')
                        .map(|(_, rest)| rest.split_whitespace().map(str::to_owned).collect())
                        .unwrap_or_default();
                    fields.len() > 2 && fields[0] != "Z" && fields[2] == group
                })
                .map(|entry| entry.file_name())
                .collect()
        };
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while !live_in_group().is_empty() && std::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let live = live_in_group();
        assert!(live.is_empty(), "left running: {live:?}");
    }

    #[tokio::test]
    async fn a_conmon_that_fails_is_a_runtime_failure_with_its_words() {
        let dir = tempfile::tempdir().unwrap();
        let conmon = stand_in(dir.path(), "echo 'unknown option --version'; exit 1");
        let probed = probe(&conmon, VERSION_PROBE_TIMEOUT).await;
        assert!(
            matches!(&probed, Err(Error::RuntimeFailed(failure)) if failure.message.contains("unknown option")),
            "{probed:?}"
        );
    }

    /// Creates container `c1` through a stand-in conmon that says it is `version` (and counts
    /// how often it was asked in `<script>.asked`) and otherwise leaves `<script>.ran` behind.
    async fn create_through(dir: &Path, monitor: &crate::ConmonMonitor) -> Result<runtime_core::Created> {
        use runtime_core::{CliBackend, ContainerFiles, CreateRequest, Launch, Monitor, RuntimeConfig, RuntimeVersion};
        let runc = RuntimeVersion::parse("runc version 1.1.5\ncommit: v1.1.5\nspec: 1.0.2-dev\n").unwrap();
        let config = RuntimeConfig::default().binary("/bin/false").root(dir.join("runtime"));
        let backend =
            CliBackend::with_version(std::sync::Arc::new(backend_runc::Runc), config, "/bin/false".into(), runc)
                .unwrap();
        let bundle = dir.join("bundle");
        std::fs::create_dir_all(&bundle).unwrap();
        std::fs::write(bundle.join("config.json"), r#"{"ociVersion": "1.0.2", "process": {"terminal": false}}"#)
            .unwrap();
        let id = runtime_core::ContainerId::new("c1").unwrap();
        let files = ContainerFiles { exit_file: dir.join("exits/c1"), dir: dir.join("containers/c1") };
        let request = CreateRequest { id, bundle, options: Default::default(), launch: Launch::Create, files };
        monitor.create(&backend, request).await
    }

    #[tokio::test]
    async fn a_conmon_older_than_an_option_of_the_create_is_refused_before_it_runs_and_asked_once() {
        let dir = tempfile::tempdir().unwrap();
        // conmon 2.0.4 predates --persist-dir (2.0.5), which every create names.
        let body = "[ \"$1\" = --version ] && { echo x >> \"$0.asked\"; echo 'conmon version 2.0.4'; exit 0; }\n\
                    touch \"$0.ran\"";
        let conmon = stand_in(dir.path(), body);
        let monitor = crate::ConmonMonitor::new(&conmon);
        for _ in 0..2 {
            match create_through(dir.path(), &monitor.clone()).await {
                Err(Error::Unsupported { backend, feature, reason }) => {
                    assert_eq!(backend, "conmon 2.0.4");
                    assert_eq!(feature, "--persist-dir");
                    assert_eq!(reason, "--persist-dir came in conmon 2.0.5");
                }
                other => panic!("expected Unsupported, got {other:?}"),
            }
        }
        assert!(!conmon.with_extension("ran").exists(), "conmon was run to create");
        let asked = std::fs::read_to_string(conmon.with_extension("asked")).unwrap();
        assert_eq!(asked.lines().count(), 1, "the version is asked once per monitor and its clones");
        assert!(!dir.path().join("containers/c1").exists(), "nothing was made for the container");
    }
}
