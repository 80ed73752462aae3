//! A fake runtime set up for one test: a private directory with `runc`, `crun` or `youki` and
//! `criu` links to the fake program, and a private state root.
//!
//! The links are the one way to start the fake: it takes the flavour from the name it runs
//! under. Everything a test wants to arrange for the fake goes through files in that directory,
//! never through the test process's environment (tests run in parallel threads): faults in
//! `<root>/faults`, CRIU's answers in `criu-check-error`, `criu-version` and
//! `criu-no-dirty-tracking` next to the `criu` link.
//!
//! A fake conmon ([`FakeConmon`]) is set up the same way: a `conmon` link in a private
//! directory, its faults in the file `faults` beside it.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context;
use runtime_core::{ContainerId, RuntimeConfig, Version};

/// Which real runtime the fake imitates: the builds this project is checked against (Debian 12's
/// runc and crun, youki from crates.io).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Flavour {
    /// runc 1.1.5.
    Runc,
    /// crun 1.8.1, built without CRIU.
    Crun,
    /// youki 0.7.0.
    Youki,
}

impl Flavour {
    /// Every flavour.
    pub const ALL: [Flavour; 3] = [Flavour::Runc, Flavour::Crun, Flavour::Youki];

    /// The runtime's name, which is also the name the fake program is linked under.
    pub fn name(self) -> &'static str {
        match self {
            Flavour::Runc => "runc",
            Flavour::Crun => "crun",
            Flavour::Youki => "youki",
        }
    }

    /// The flavour named `name`.
    pub fn from_name(name: &str) -> Option<Self> {
        Flavour::ALL.into_iter().find(|flavour| flavour.name() == name)
    }

    /// The version imitated.
    pub fn version(self) -> Version {
        match self {
            Flavour::Runc => Version::new(1, 1, 5),
            Flavour::Crun => Version::new(1, 8, 1),
            Flavour::Youki => Version::new(0, 7, 0),
        }
    }

    /// Whether this runtime checkpoints on a host with a working CRIU: runc and youki
    /// (`checkpointt`) do; crun 1.8.1 as Debian builds it has no `checkpoint` command.
    pub fn checkpoints(self) -> bool {
        matches!(self, Flavour::Runc | Flavour::Youki)
    }

    /// Whether this runtime pre-dumps (`checkpoint --pre-dump`, then `--parent-path`) on a host
    /// whose kernel tracks dirty memory, and takes `--lazy-pages`: runc does; youki 0.7's
    /// `checkpointt` takes none of these flags.
    pub fn pre_dumps(self) -> bool {
        self == Flavour::Runc
    }

    /// Whether this runtime restores on a host with a working CRIU: only runc; youki 0.7 has no
    /// `restore` command.
    pub fn restores(self) -> bool {
        self == Flavour::Runc
    }
}

/// One fake runtime with its own directory.
#[derive(Debug)]
pub struct FakeRuntime {
    dir: tempfile::TempDir,
    flavour: Flavour,
}

impl FakeRuntime {
    /// A fake of `flavour` made of this test binary (see [`crate::harness::fake_program`]).
    pub fn new(flavour: Flavour) -> anyhow::Result<Self> {
        Self::with_program(flavour, &crate::harness::fake_program())
    }

    /// A fake of `flavour` made of `program` (the `fake-oci` binary, or a harness test binary).
    pub fn with_program(flavour: Flavour, program: &Path) -> anyhow::Result<Self> {
        let dir =
            tempfile::Builder::new().prefix("fake-runtime-").tempdir().context("creating the fake's directory")?;
        for name in [flavour.name(), "criu"] {
            std::os::unix::fs::symlink(program, dir.path().join(name)).with_context(|| format!("linking {name}"))?;
        }
        std::fs::create_dir(dir.path().join("root")).context("creating the state root")?;
        Ok(FakeRuntime { dir, flavour })
    }

    /// Which runtime it imitates.
    pub fn flavour(&self) -> Flavour {
        self.flavour
    }

    /// The runtime binary (a link named after the flavour).
    pub fn binary(&self) -> PathBuf {
        self.dir.path().join(self.flavour.name())
    }

    /// The fake CRIU.
    pub fn criu(&self) -> PathBuf {
        self.dir.path().join("criu")
    }

    /// The state root.
    pub fn root(&self) -> PathBuf {
        self.dir.path().join("root")
    }

    /// A config that drives this fake: its binary, root and CRIU.
    pub fn config(&self) -> RuntimeConfig {
        RuntimeConfig::default().binary(self.binary()).root(self.root()).criu(self.criu())
    }

    /// Makes `command` (or `*`) misbehave from now on; see `fake_oci` for the faults.
    pub fn inject(&self, command: &str, fault: &str) -> anyhow::Result<()> {
        let mut faults = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.root().join("faults"))
            .context("opening the faults file")?;
        writeln!(faults, "{command}={fault}").context("writing a fault")
    }

    /// Makes `criu check` fail with `message`, as CRIU does on a host it cannot work on.
    pub fn break_criu(&self, message: &str) -> anyhow::Result<()> {
        std::fs::write(self.dir.path().join("criu-check-error"), message).context("breaking the fake CRIU")
    }

    /// Makes `criu --version` report `version`.
    pub fn set_criu_version(&self, version: &str) -> anyhow::Result<()> {
        std::fs::write(self.dir.path().join("criu-version"), version).context("setting the fake CRIU's version")
    }

    /// Makes the fake CRIU model a kernel without dirty-memory tracking, as on a kernel built
    /// without `CONFIG_MEM_SOFT_DIRTY`: `criu check --feature mem_dirty_track` fails, so pre-dumps
    /// cannot work.
    pub fn disable_dirty_tracking(&self) -> anyhow::Result<()> {
        std::fs::write(self.dir.path().join("criu-no-dirty-tracking"), "")
            .context("turning off the fake CRIU's dirty tracking")
    }

    /// The resources document the last `update` of `id` handed the fake, exactly as received.
    pub fn received_resources(&self, id: &ContainerId) -> anyhow::Result<serde_json::Value> {
        let path = self.root().join(id.as_str()).join(crate::fake_oci::RECEIVED_RESOURCES);
        let text = std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
        serde_json::from_slice(&text).with_context(|| format!("parsing {}", path.display()))
    }
}

/// One fake conmon with its own directory: a link named `conmon` to the fake program, and the
/// file of its faults beside it (see `fake_conmon`).
#[derive(Debug)]
pub struct FakeConmon {
    dir: tempfile::TempDir,
}

impl FakeConmon {
    /// A fake conmon made of this test binary (see [`crate::harness::fake_program`]).
    pub fn new() -> anyhow::Result<Self> {
        Self::with_program(&crate::harness::fake_program())
    }

    /// A fake conmon made of `program` (the `fake-conmon` binary, or a harness test binary).
    pub fn with_program(program: &Path) -> anyhow::Result<Self> {
        let dir = tempfile::Builder::new().prefix("fake-conmon-").tempdir().context("creating the fake's directory")?;
        let link = dir.path().join(crate::fake_conmon::PROGRAM_NAME);
        std::os::unix::fs::symlink(program, &link).context("linking conmon")?;
        Ok(FakeConmon { dir })
    }

    /// The program to run as conmon.
    pub fn binary(&self) -> PathBuf {
        self.dir.path().join(crate::fake_conmon::PROGRAM_NAME)
    }

    /// Makes every conmon started from now on misbehave as `fault` says (see `fake_conmon`'s
    /// faults: `signal:N`, `hang-before-fork`, `never-answer`, `die-before-sync`,
    /// `refuse:MESSAGE`, `garbage`, `no-exit-file`).
    pub fn inject(&self, fault: &str) -> anyhow::Result<()> {
        let mut faults = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join(crate::fake_conmon::FAULTS_FILE))
            .context("opening the faults file")?;
        writeln!(faults, "{fault}").context("writing a fault")
    }

    /// Makes every conmon started from now on behave again.
    pub fn heal(&self) -> anyhow::Result<()> {
        match std::fs::remove_file(self.dir.path().join(crate::fake_conmon::FAULTS_FILE)) {
            Err(err) if err.kind() != std::io::ErrorKind::NotFound => Err(err).context("removing the faults file"),
            _ => Ok(()),
        }
    }
}

/// A stand-in for conmon in `dir`, a shell script for the answers real conmon does not give on
/// demand: it answers `--version` as conmon 2.1.6 does (a monitor asks before it runs it), else
/// leaves `<script>.ran` behind, so a test can tell whether it ran, and runs `body` (fd 3 is its
/// sync pipe).
pub fn stand_in_conmon(dir: &Path, body: &str) -> anyhow::Result<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let path = dir.join("conmon");
    let version = "[ \"$1\" = --version ] && { printf 'conmon version 2.1.6\\ncommit: unknown\\n'; exit 0; }";
    std::fs::write(&path, format!("#!/bin/sh\n{version}\ntouch \"$0.ran\"\n{body}\n"))?;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))?;
    Ok(path)
}
