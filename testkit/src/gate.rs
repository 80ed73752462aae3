//! The one gate for tests that need a real runtime.
//!
//! A real runtime is usable when its binary is in `PATH`, the tests run as root (real containers
//! need namespaces and cgroups), and a static busybox is there to build root filesystems from.
//! Without it a test is reported as skipped with the reason. `REQUIRE_REAL_RUNTIMES=runc,crun`
//! (set by `.ci/run`) turns a missing runtime into a failure, so CI cannot pass by skipping.
//!
//! A program can name the binary to use instead of the one in `PATH` ([`use_binary`]).
//!
//! CRIU is gated apart from the runtimes, under the name `criu`: a runtime can be there while
//! CRIU is missing or fails `criu check`, and then its checkpoint and restore are unsupported for
//! a reason that is the host's, not the runtime's. A case that meets such a verdict asks
//! [`criu_problem`] and hands the answer to [`lacking`]; with `criu` in `REQUIRE_REAL_RUNTIMES`
//! it fails instead of skipping.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use runtime_core::{HostCheck, HostVerdict};

/// The variable that names the runtimes that must be there.
pub const REQUIRE_ENV: &str = "REQUIRE_REAL_RUNTIMES";

/// Where a static busybox is looked for.
pub const BUSYBOX_CANDIDATES: [&str; 2] = ["/bin/busybox", "/usr/bin/busybox"];

/// A real runtime that is there.
#[derive(Debug, Clone)]
pub struct RealRuntime {
    /// Its name (`runc`).
    pub name: String,
    /// Its binary.
    pub binary: PathBuf,
}

/// The name `REQUIRE_REAL_RUNTIMES` gives CRIU.
pub const CRIU: &str = "criu";

/// What a test does about something it needs and the host lacks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lacking {
    /// Report the test as skipped, with this reason.
    Skip(String),
    /// Fail the test: `REQUIRE_REAL_RUNTIMES` names what is missing.
    Fail(String),
}

/// Decides what a test does without `name` (a runtime, or [`CRIU`]), missing for `reason`:
/// a failure when `required` names it, else a skip.
pub fn lacking(name: &str, reason: String, required: &BTreeSet<String>) -> Lacking {
    if required.contains(name) {
        Lacking::Fail(format!("{REQUIRE_ENV} requires {name}, but {reason}"))
    } else {
        Lacking::Skip(reason)
    }
}

/// Why the `criu` in `PATH` cannot checkpoint on this host: not there, or `criu check` fails
/// (with what it said); `None` when it passes.
pub fn criu_problem() -> Option<String> {
    let Ok(criu) = which::which(CRIU) else {
        return Some("criu is not in PATH (`cargo xtask setup` installs it)".to_owned());
    };
    match std::process::Command::new(&criu).arg("check").output() {
        Ok(output) if output.status.success() => None,
        Ok(output) => {
            let mut said = String::from_utf8_lossy(&output.stdout).into_owned();
            said.push_str(&String::from_utf8_lossy(&output.stderr));
            Some(format!("`{} check` fails ({}): {}", criu.display(), output.status, said.trim()))
        }
        Err(err) => Some(format!("`{} check` cannot run: {err}", criu.display())),
    }
}

/// What the gate decided.
#[derive(Debug)]
pub enum Gate {
    /// Run the test.
    Open(RealRuntime),
    /// Report the test as skipped, with this reason.
    Skip(String),
    /// Fail the test: the runtime is required but missing.
    Fail(String),
}

/// The runtimes named by `REQUIRE_REAL_RUNTIMES`.
pub fn required() -> BTreeSet<String> {
    std::env::var(REQUIRE_ENV)
        .unwrap_or_default()
        .split(',')
        .map(|name| name.trim().to_owned())
        .filter(|name| !name.is_empty())
        .collect()
}

/// Decides whether a test that needs `name` runs on this host; `host_checks` are the runtime's
/// own requirements of the host (crun refuses hybrid cgroup hosts with v2 controllers).
pub fn real_runtime(name: &str, host_checks: &[Arc<dyn HostCheck>]) -> Gate {
    let usable = availability(name).and_then(|binary| {
        for check in host_checks {
            if let HostVerdict::Incompatible { problem, fix, .. } = check.check() {
                return Err(format!("{name} cannot run on this host: {problem}; fix: {fix}"));
            }
        }
        Ok(binary)
    });
    match usable.map_err(|reason| lacking(name, reason, &required())) {
        Ok(binary) => Gate::Open(RealRuntime { name: name.to_owned(), binary }),
        Err(Lacking::Fail(reason)) => Gate::Fail(reason),
        Err(Lacking::Skip(reason)) => Gate::Skip(reason),
    }
}

/// The binaries named on a command line (`cargo xtask matrix --runtime-path runc=/opt/runc`),
/// used instead of the ones in `PATH`.
static CHOSEN_BINARIES: std::sync::Mutex<std::collections::BTreeMap<String, PathBuf>> =
    std::sync::Mutex::new(std::collections::BTreeMap::new());

/// Makes the gate use `binary` for `name` (a runtime, or conmon) instead of looking in `PATH`.
pub fn use_binary(name: &str, binary: PathBuf) {
    CHOSEN_BINARIES.lock().unwrap_or_else(|p| p.into_inner()).insert(name.to_owned(), binary);
}

fn find(name: &str) -> Result<PathBuf, String> {
    match CHOSEN_BINARIES.lock().unwrap_or_else(|p| p.into_inner()).get(name) {
        Some(binary) if binary.is_file() => Ok(binary.clone()),
        Some(binary) => Err(format!("{name} was given as {}, which is no file", binary.display())),
        None => which::which(name).map_err(|_| format!("{name} is not in PATH (`cargo xtask setup` installs it)")),
    }
}

fn availability(name: &str) -> Result<PathBuf, String> {
    let binary = find(name)?;
    if !nix::unistd::geteuid().is_root() {
        return Err(format!("real {name} containers need root"));
    }
    static_busybox().ok_or_else(|| "no static busybox to build a rootfs (install busybox-static)".to_owned())?;
    Ok(binary)
}

/// A statically linked busybox, if the host has one.
pub fn static_busybox() -> Option<PathBuf> {
    BUSYBOX_CANDIDATES.iter().map(Path::new).find(|path| is_static_elf(path)).map(Path::to_path_buf)
}

/// True for a 64-bit little-endian ELF file without a `PT_INTERP` header (no dynamic loader).
fn is_static_elf(path: &Path) -> bool {
    let Ok(bytes) = std::fs::read(path) else { return false };
    let read = |offset: usize, len: usize| -> Option<u64> {
        let slice = bytes.get(offset..offset + len)?;
        Some(slice.iter().rev().fold(0u64, |acc, byte| acc << 8 | u64::from(*byte)))
    };
    if bytes.get(..4) != Some(b"\x7fELF") || bytes.get(4) != Some(&2) || bytes.get(5) != Some(&1) {
        return false;
    }
    const PT_INTERP: u64 = 3;
    let (Some(phoff), Some(phentsize), Some(phnum)) = (read(0x20, 8), read(0x36, 2), read(0x38, 2)) else {
        return false;
    };
    (0..phnum).all(|index| {
        let header = usize::try_from(phoff + index * phentsize).unwrap_or(usize::MAX);
        read(header, 4).is_some_and(|kind| kind != PT_INTERP)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    /// Builds a C program with the toolchain's `cc` (there for Rust's linker) and returns it with
    /// what `readelf -l` says: static when it lists no INTERP program header.
    fn build(dir: &Path, name: &str, source: &str, flags: &[&str]) -> (PathBuf, bool) {
        let (source_file, binary) = (dir.join(format!("{name}.c")), dir.join(name));
        std::fs::write(&source_file, source).unwrap();
        let built = Command::new("cc").args(flags).arg("-o").args([&binary, &source_file]).status().unwrap();
        assert!(built.success(), "cc {flags:?} failed");
        let readelf = Command::new("readelf").arg("-lW").arg(&binary).output().expect("binutils' readelf");
        assert!(readelf.status.success(), "readelf -l {}", binary.display());
        (binary, !String::from_utf8_lossy(&readelf.stdout).contains("INTERP"))
    }

    #[test]
    fn a_missing_criu_fails_only_when_criu_is_required() {
        let required = |names: &[&str]| names.iter().map(|name| (*name).to_owned()).collect::<BTreeSet<_>>();
        let reason = || "`/usr/sbin/criu check` fails (exit status: 1): vdso".to_owned();
        assert_eq!(
            lacking(CRIU, reason(), &required(&["runc", "crun", "youki", "criu"])),
            Lacking::Fail(format!("REQUIRE_REAL_RUNTIMES requires criu, but {}", reason()))
        );
        assert_eq!(lacking(CRIU, reason(), &required(&["runc", "crun", "youki"])), Lacking::Skip(reason()));
        assert_eq!(lacking(CRIU, reason(), &required(&[])), Lacking::Skip(reason()));
        assert_eq!(
            lacking("runc", "runc is not in PATH".to_owned(), &required(&["criu"])),
            Lacking::Skip("runc is not in PATH".to_owned()),
            "requiring CRIU requires no runtime"
        );
    }

    #[test]
    fn a_missing_conmon_fails_only_when_conmon_is_required() {
        let required = |names: &[&str]| names.iter().map(|name| (*name).to_owned()).collect::<BTreeSet<_>>();
        let reason = || "conmon is not in PATH (`cargo xtask setup` installs it)".to_owned();
        assert_eq!(
            lacking("conmon", reason(), &required(&["runc", "crun", "youki", "conmon", "criu"])),
            Lacking::Fail(format!("REQUIRE_REAL_RUNTIMES requires conmon, but {}", reason()))
        );
        assert_eq!(lacking("conmon", reason(), &required(&["runc", "crun", "youki", "criu"])), Lacking::Skip(reason()));
        assert_eq!(
            lacking("runc", "runc is not in PATH".to_owned(), &required(&["conmon"])),
            Lacking::Skip("runc is not in PATH".to_owned()),
            "requiring conmon requires no runtime"
        );
    }

    #[test]
    fn a_binary_missing_from_path_is_a_failure_once_required() {
        let name = "conmon-that-no-host-has";
        let missing = availability(name).expect_err("no such binary in PATH");
        let required = [name.to_owned()].into_iter().collect::<BTreeSet<_>>();
        assert!(
            matches!(lacking(name, missing, &required), Lacking::Fail(reason) if reason.contains("not in PATH")),
            "the gate's own verdict on a missing binary fails the test"
        );
    }

    #[test]
    fn a_chosen_binary_is_used_instead_of_path_and_a_missing_one_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let chosen = dir.path().join("runtime-no-path-has");
        std::fs::write(&chosen, "").unwrap();
        assert!(which::which("runtime-no-path-has").is_err(), "not in PATH");
        use_binary("runtime-no-path-has", chosen.clone());
        assert_eq!(find("runtime-no-path-has"), Ok(chosen));
        let gone = dir.path().join("gone");
        use_binary("other-runtime-no-path-has", gone.clone());
        assert_eq!(
            find("other-runtime-no-path-has"),
            Err(format!("other-runtime-no-path-has was given as {}, which is no file", gone.display()))
        );
    }

    #[test]
    fn agrees_with_readelf_on_a_static_and_a_dynamic_build() {
        let dir = tempfile::tempdir().unwrap();
        let (static_binary, readelf_static) =
            build(dir.path(), "bare", "void _start(void) { for (;;) {} }\n", &["-static", "-nostdlib"]);
        assert!(readelf_static, "readelf finds no interpreter in a -static -nostdlib build");
        assert!(is_static_elf(&static_binary));
        let (dynamic_binary, readelf_static) = build(dir.path(), "hello", "int main(void) { return 0; }\n", &[]);
        assert!(!readelf_static, "readelf finds the dynamic loader in a default build");
        assert!(!is_static_elf(&dynamic_binary));
        assert!(!is_static_elf(Path::new("/nonexistent")));
    }
}
