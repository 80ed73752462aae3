//! The three runtimes the fake imitates, and everything that differs between them apart from
//! argument syntax: version banners, the words of the common errors, and the shape of the log
//! record a failure leaves behind.
//!
//! Drivers classify failures by matching these strings, so they are copied from the real
//! runtimes (runc 1.1.5, crun 1.8.1, youki 0.7.0) rather than paraphrased.

use std::cmp::Ordering;
use std::fs::OpenOptions;
use std::io::Write;
use std::path::PathBuf;

use chrono::{SecondsFormat, Utc};
use serde::Serialize;

use super::state::Status;

/// Which runtime is being imitated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Flavour {
    Runc,
    Crun,
    Youki,
}

impl Flavour {
    pub(crate) fn from_name(name: &str) -> Option<Self> {
        match name {
            "runc" => Some(Self::Runc),
            "crun" => Some(Self::Crun),
            "youki" => Some(Self::Youki),
            _ => None,
        }
    }

    pub(crate) fn name(self) -> &'static str {
        match self {
            Self::Runc => "runc",
            Self::Crun => "crun",
            Self::Youki => "youki",
        }
    }

    fn default_version(self) -> &'static str {
        match self {
            Self::Runc => "1.1.5",
            Self::Crun => "1.8.1",
            Self::Youki => "0.7.0",
        }
    }
}

/// A dotted version number; missing components count as zero.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Version {
    text: String,
    parts: [u64; 3],
}

impl Version {
    pub(crate) fn parse(text: &str) -> Self {
        let mut parts = [0u64; 3];
        let numeric = text.split(['+', '-', '~']).next().unwrap_or_default();
        for (slot, piece) in parts.iter_mut().zip(numeric.split('.')) {
            let digits: String = piece.chars().take_while(char::is_ascii_digit).collect();
            *slot = digits.parse().unwrap_or(0);
        }
        Self { text: text.to_string(), parts }
    }

    /// True when this version is at least `major.minor.patch`.
    pub(crate) fn at_least(&self, major: u64, minor: u64, patch: u64) -> bool {
        self.parts.cmp(&[major, minor, patch]) != Ordering::Less
    }

    pub(crate) fn text(&self) -> &str {
        &self.text
    }
}

/// One invocation: who we pretend to be and the global options that apply to every command.
#[derive(Debug)]
pub(crate) struct Ctx {
    pub flavour: Flavour,
    pub version: Version,
    /// argv[0] as typed; runc quotes it in some usage errors.
    pub program: String,
    pub root: PathBuf,
    pub log: Option<PathBuf>,
    pub log_json: bool,
}

impl Ctx {
    pub(crate) fn new(flavour: Flavour, program: String) -> Self {
        let version = std::env::var("FAKE_OCI_VERSION")
            .ok()
            .filter(|v| !v.trim().is_empty())
            .unwrap_or_else(|| flavour.default_version().to_string());
        Self {
            flavour,
            version: Version::parse(version.trim()),
            program,
            root: PathBuf::from(format!("/tmp/fake-oci-{}", flavour.name())),
            log: None,
            log_json: false,
        }
    }

    pub(crate) fn version_banner(&self) -> String {
        let v = self.version.text();
        match self.flavour {
            Flavour::Runc => {
                format!("runc version {v}+fake\ncommit: fake\nspec: 1.0.2-dev\ngo: go1.19.8\nlibseccomp: 2.5.4")
            }
            Flavour::Crun => format!(
                "crun version {v}\ncommit: fake\nrundir: {}\nspec: 1.0.0\n+SYSTEMD +SELINUX +APPARMOR +CAP +SECCOMP +EBPF +YAJL",
                self.root.display()
            ),
            Flavour::Youki => format!("youki version: {v}\ncommit: fake\nspec: 1.1.0"),
        }
    }

    /// crun 1.22 reworded the "no such container" error.
    fn crun_modern_not_found(&self) -> bool {
        self.flavour == Flavour::Crun && self.version.at_least(1, 22, 0)
    }

    /// The error for a command naming a container that does not exist.
    pub(crate) fn not_found(&self, id: &str) -> String {
        match self.flavour {
            Flavour::Runc => "container does not exist".to_string(),
            Flavour::Crun if self.crun_modern_not_found() => {
                format!("container `{id}` does not exist")
            }
            Flavour::Crun => {
                format!("error opening file `{}/{id}/status`: No such file or directory", self.root.display())
            }
            Flavour::Youki => format!("container {id} does not exist"),
        }
    }

    /// `delete` of an unknown container words it differently in old crun.
    pub(crate) fn delete_not_found(&self, id: &str) -> String {
        if self.flavour == Flavour::Crun && !self.crun_modern_not_found() {
            format!("cannot open directory '{}/{id}': No such file or directory", self.root.display())
        } else {
            self.not_found(id)
        }
    }

    pub(crate) fn already_exists(&self, id: &str) -> String {
        match self.flavour {
            Flavour::Runc => "container with given ID already exists".to_string(),
            Flavour::Crun => format!("container `{id}` already exists"),
            Flavour::Youki => "container already exists".to_string(),
        }
    }

    /// youki's anyhow chain for an operation refused because of the container's status.
    pub(crate) fn youki_incompatible(op: &str, id: &str, status: Status) -> String {
        format!("failed to {op} container {id}\n\nCaused by:\n    {}", Self::youki_status_cause(status))
    }

    pub(crate) fn youki_status_cause(status: Status) -> String {
        format!("failed operation due to incompatible container status: `{}`", status.capitalised())
    }

    /// The error for an executable that cannot be found in the process's `PATH`.
    pub(crate) fn missing_executable(&self, arg0: &str) -> String {
        match self.flavour {
            Flavour::Runc => {
                format!("unable to start container process: exec: \"{arg0}\": executable file not found in $PATH")
            }
            Flavour::Crun => {
                format!("executable file `{arg0}` not found in $PATH: No such file or directory")
            }
            Flavour::Youki => format!("executable '{arg0}' not found in $PATH"),
        }
    }

    /// Appends the flavour's error record for `message` to the `--log` file, if any.
    pub(crate) fn log_error(&self, message: &str) {
        let Some(path) = &self.log else { return };
        let line = self.error_record(message);
        if let Ok(mut file) = OpenOptions::new().create(true).append(true).open(path) {
            // A log that cannot be written must not turn a reported failure into a panic.
            let _ = writeln!(file, "{line}");
        }
    }

    fn error_record(&self, message: &str) -> String {
        let now = Utc::now();
        let quoted = serde_json::to_string(message).unwrap_or_default();
        match (self.flavour, self.log_json) {
            (Flavour::Runc, true) => to_json(&RuncRecord {
                level: "error",
                msg: message,
                time: now.to_rfc3339_opts(SecondsFormat::Secs, true),
            }),
            (Flavour::Runc, false) => {
                format!("time=\"{}\" level=error msg={quoted}", now.to_rfc3339_opts(SecondsFormat::Secs, true))
            }
            (Flavour::Crun, true) => to_json(&CrunRecord {
                msg: message,
                level: "error",
                time: now.to_rfc3339_opts(SecondsFormat::Micros, true),
            }),
            (Flavour::Crun, false) => format!("{}: {message}", now.to_rfc3339_opts(SecondsFormat::Micros, true)),
            (Flavour::Youki, true) => to_json(&YoukiRecord {
                timestamp: now.to_rfc3339_opts(SecondsFormat::Micros, true),
                level: "ERROR",
                message: format!("error in executing command: {message}"),
                target: "youki",
            }),
            (Flavour::Youki, false) => format!(
                "{} ERROR youki: error in executing command: {message}",
                now.to_rfc3339_opts(SecondsFormat::Micros, true)
            ),
        }
    }
}

fn to_json<T: Serialize>(record: &T) -> String {
    serde_json::to_string(record).unwrap_or_default()
}

#[derive(Serialize)]
struct RuncRecord<'a> {
    level: &'a str,
    msg: &'a str,
    time: String,
}

#[derive(Serialize)]
struct CrunRecord<'a> {
    msg: &'a str,
    level: &'a str,
    time: String,
}

#[derive(Serialize)]
struct YoukiRecord<'a> {
    timestamp: String,
    level: &'a str,
    message: String,
    target: &'a str,
}
