//! Running cases as an unprivileged user.
//!
//! Rootless containers are only proven by running them without root, so a rootless cell runs in
//! a copy of its program (a test binary, or `cargo xtask matrix`) executed as [`USER`] (made by
//! `cargo xtask setup`, with subordinate uid and gid ranges and a runtime directory). The copy
//! gets the environment a login session would give it (`HOME`, `XDG_RUNTIME_DIR`, `USER`, a
//! `PATH` that finds the runtimes, conmon and CRIU) and nothing of root's, runs the one cell
//! named in it ([`crate::conformance::run_as_user_copy`]) and reports the outcome as data. The
//! program is handed to it open, so it runs wherever the clone is; the case makes its bundles
//! itself, in directories it owns.
//!
//! The gate is named `rootless` in `REQUIRE_REAL_RUNTIMES`: a missing user (or one without
//! ranges or runtime directory) is then a failure, else a skip that says to run setup.

use std::collections::BTreeSet;
use std::fmt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::Duration;

use anyhow::Context;

use crate::conformance::Outcome;
use crate::gate::{self, Lacking};
use crate::procs::Tracked;

/// The unprivileged user the rootless cases run as.
pub const USER: &str = "ocirt-rootless";

/// The name of the rootless gate in `REQUIRE_REAL_RUNTIMES`.
pub const GATE: &str = "rootless";

/// How many subordinate ids setup gives the user (login.defs' `SUB_UID_COUNT`).
pub const SUBID_COUNT: u64 = 65536;

/// How long a process of the user's may take to exit after its case ended.
const EXIT_GRACE: Duration = Duration::from_secs(10);

/// Set in the copy of the program that runs a cell as the user: the cell's test name.
const CHILD_ENV: &str = "TESTKIT_ROOTLESS_CASE";

/// What starts the line of the user's copy's standard output that holds its outcome.
const OUTCOME_PREFIX: &str = "testkit rootless outcome: ";

/// The `PATH` of the user's copy: where Debian and setup put the runtimes, conmon and CRIU.
const USER_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// A range of subordinate ids from `/etc/subuid` or `/etc/subgid`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SubidRange {
    /// The first host id.
    pub start: u64,
    /// How many.
    pub count: u64,
}

/// The first range of user `name` (or of its uid, which the files may name instead) in the
/// text of a subid file.
pub fn subid_range(text: &str, name: &str, uid: impl fmt::Display) -> Option<SubidRange> {
    let uid = uid.to_string();
    text.lines().find_map(|line| {
        let mut fields = line.trim().split(':');
        let owner = fields.next()?;
        let (start, count) = (fields.next()?.parse().ok()?, fields.next()?.parse().ok()?);
        (owner == name || owner == uid).then_some(SubidRange { start, count })
    })
}

/// The rootless user, as the host knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RootlessUser {
    /// Its uid.
    pub uid: u32,
    /// Its primary gid.
    pub gid: u32,
    /// Its home directory.
    pub home: PathBuf,
    /// Its runtime directory, `/run/user/<uid>`.
    pub runtime_dir: PathBuf,
    /// Its subordinate uids.
    pub subuids: SubidRange,
    /// Its subordinate gids.
    pub subgids: SubidRange,
}

impl fmt::Display for RootlessUser {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{USER} (uid {}, gid {}, subuids {}+{}, subgids {}+{}, runtime dir {})",
            self.uid,
            self.gid,
            self.subuids.start,
            self.subuids.count,
            self.subgids.start,
            self.subgids.count,
            self.runtime_dir.display()
        )
    }
}

impl RootlessUser {
    /// [`USER`] with its ranges and runtime directory, or what is missing.
    pub fn find() -> Result<Self, String> {
        use std::os::unix::fs::{MetadataExt, PermissionsExt};
        let user = nix::unistd::User::from_name(USER)
            .map_err(|err| format!("cannot read the user database: {err}"))?
            .ok_or_else(|| format!("there is no user {USER}"))?;
        let range = |file: &str| {
            let text = std::fs::read_to_string(file).unwrap_or_default();
            subid_range(&text, USER, user.uid).ok_or_else(|| format!("{USER} has no range in {file}"))
        };
        let (subuids, subgids) = (range("/etc/subuid")?, range("/etc/subgid")?);
        let runtime_dir = Path::new("/run/user").join(user.uid.to_string());
        let metadata = std::fs::metadata(&runtime_dir)
            .map_err(|err| format!("{USER}'s runtime directory {}: {err}", runtime_dir.display()))?;
        let mode = metadata.permissions().mode() & 0o777;
        if metadata.uid() != user.uid.as_raw() || mode != 0o700 {
            return Err(format!(
                "{} is owned by uid {} with mode {mode:o}, not {USER}'s with mode 700",
                runtime_dir.display(),
                metadata.uid()
            ));
        }
        Ok(RootlessUser {
            uid: user.uid.as_raw(),
            gid: user.gid.as_raw(),
            home: user.dir,
            runtime_dir,
            subuids,
            subgids,
        })
    }

    /// The gate: the user when it is ready, else a skip, or a failure when `required` names
    /// [`GATE`].
    pub fn gate(required: &BTreeSet<String>) -> Result<Self, Lacking> {
        Self::find().map_err(|reason| gate::lacking(GATE, format!("{reason} (run `cargo xtask setup`)"), required))
    }

    /// Runs the cell named `case` in a copy of this program as the user, and gives the outcome
    /// the copy reported ([`report`]); an error when the copy reported none.
    pub fn run_case(&self, case: &str) -> anyhow::Result<Outcome> {
        let output = self.copy_of_this_program(|copy| copy.env(CHILD_ENV, case).output().context("running setpriv"))?;
        let stdout = String::from_utf8_lossy(&output.stdout);
        let reported = stdout.lines().find_map(|line| line.strip_prefix(OUTCOME_PREFIX));
        match reported.map(serde_json::from_str::<Outcome>) {
            Some(Ok(outcome)) => Ok(outcome),
            _ => anyhow::bail!(
                "as {USER}, the program reported no outcome ({}):\n{stdout}{}",
                output.status,
                String::from_utf8_lossy(&output.stderr)
            ),
        }
    }

    /// Runs a copy of this program as the user, with no arguments and the environment a login
    /// session would give it, through `run` (which adds what the copy is to do, and runs it).
    pub fn copy_of_this_program<T>(&self, run: impl FnOnce(&mut Command) -> anyhow::Result<T>) -> anyhow::Result<T> {
        let program = std::env::current_exe().context("this program's path")?;
        // Handed over open, without close-on-exec: the user may not reach the program's path (a
        // clone under a private home), and an exec through `/proc/self/fd` needs only the
        // file's own permissions.
        let open = nix::fcntl::open(&program, nix::fcntl::OFlag::O_RDONLY, nix::sys::stat::Mode::empty())
            .with_context(|| format!("opening {}", program.display()))?;
        let program = format!("/proc/self/fd/{}", std::os::fd::AsRawFd::as_raw_fd(&open));
        let mut copy = Command::new("setpriv");
        copy.arg(format!("--reuid={}", self.uid))
            .arg(format!("--regid={}", self.gid))
            .arg("--init-groups")
            .arg("--")
            .arg(&program)
            .env_clear()
            .env("HOME", &self.home)
            .env("USER", USER)
            .env("LOGNAME", USER)
            .env("PATH", USER_PATH)
            .env("XDG_RUNTIME_DIR", &self.runtime_dir)
            .current_dir(&self.runtime_dir);
        let ran = run(&mut copy);
        drop(open);
        ran
    }

    /// What is left in the user's runtime directory other than empty directories (state roots
    /// with nothing in them), and the user's processes still running once [`EXIT_GRACE`] has
    /// passed (conmon exits a moment after the container it watched was deleted).
    pub fn leftovers(&self) -> Vec<String> {
        let mut files = Vec::new();
        files_under(&self.runtime_dir, &mut files);
        let mut left: Vec<String> = files.into_iter().map(|path| format!("file {}", path.display())).collect();
        let running = processes_of(self.uid)
            .into_iter()
            .filter(|(pid, _)| !Tracked::capture(*pid).wait_gone(EXIT_GRACE))
            .map(|(pid, name)| format!("process {pid} ({name})"));
        left.extend(running);
        left
    }
}

/// The cell this process runs when it is the user's copy of the program, by its test name.
pub fn case_of_this_copy() -> Option<String> {
    std::env::var(CHILD_ENV).ok()
}

/// How the user's copy hands its outcome to root's process: one line of the standard output,
/// the outcome as JSON after [`OUTCOME_PREFIX`]; the exit code is success once it is written.
pub fn report(outcome: &Outcome) -> ExitCode {
    match serde_json::to_string(outcome) {
        Ok(json) => {
            println!("{OUTCOME_PREFIX}{json}");
            ExitCode::SUCCESS
        }
        Err(err) => {
            eprintln!("cannot write the outcome {outcome:?}: {err}");
            ExitCode::FAILURE
        }
    }
}

fn files_under(dir: &Path, found: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        match entry.file_type() {
            Ok(kind) if kind.is_dir() => files_under(&entry.path(), found),
            _ => found.push(entry.path()),
        }
    }
}

/// The processes whose real uid is `uid`, with their names.
fn processes_of(uid: u32) -> Vec<(u32, String)> {
    let Ok(entries) = std::fs::read_dir("/proc") else { return Vec::new() };
    entries
        .flatten()
        .filter_map(|entry| {
            let pid: u32 = entry.file_name().to_str()?.parse().ok()?;
            let status = std::fs::read_to_string(entry.path().join("status")).ok()?;
            let field = |key: &str| status.lines().find_map(|line| line.strip_prefix(key)).map(str::trim);
            let real_uid: u32 = field("Uid:")?.split_whitespace().next()?.parse().ok()?;
            (real_uid == uid).then(|| (pid, field("Name:").unwrap_or_default().to_owned()))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_subid_range_is_found_by_name_or_uid() {
        let text = "alice:100000:65536\nocirt-rootless:165536:65536\n1001:231072:1000\n";
        assert_eq!(subid_range(text, USER, 1000), Some(SubidRange { start: 165536, count: 65536 }));
        assert_eq!(subid_range(text, "bob", 1001), Some(SubidRange { start: 231072, count: 1000 }));
        assert_eq!(subid_range(text, "carol", 1002), None);
        assert_eq!(subid_range("ocirt-rootless:x:1\n", USER, 1000), None, "a malformed line is no range");
    }

    #[test]
    fn the_processes_of_this_user_include_this_one() {
        let uid = nix::unistd::getuid().as_raw();
        assert!(processes_of(uid).iter().any(|(pid, _)| *pid == std::process::id()));
    }
}
