//! `cargo xtask setup`: makes this host able to run every real runtime the project drives.
//!
//! Idempotent: each step checks first and says whether it did anything. Needs root, since it
//! installs packages, mounts cgroup hierarchies, may build CRIU and adds the unprivileged user
//! the rootless tests run as.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, bail};
use runtime_core::CgroupLayout;

use crate::{cargo, run_command};

mod rootless;

/// Debian packages the real runtime tests need. CRIU locks a container's network namespace with
/// `iptables-restore` and saves its addresses and routes with `ip`, so both come with it; a
/// rootless container's subordinate ids are mapped with `uidmap`'s `newuidmap` and `newgidmap`.
const PACKAGES: &[&str] = &[
    "runc",
    "crun",
    "conmon",
    "criu",
    "iptables",
    "iproute2",
    "busybox-static",
    "libseccomp-dev",
    "pkg-config",
    "uidmap",
];

pub fn run() -> anyhow::Result<()> {
    if !nix::unistd::geteuid().is_root() {
        bail!("setup installs packages and mounts cgroups; run it as root (e.g. `sudo -E cargo xtask setup`)");
    }
    install_packages()?;
    verify_conmon()?;
    criu::ensure_working()?;
    install_youki()?;
    fix_hybrid_cgroups()?;
    rootless::ensure()?;
    println!("setup: done");
    Ok(())
}

fn installed(package: &str) -> bool {
    Command::new("dpkg-query")
        .args(["-W", "-f=${Status}", package])
        .output()
        .is_ok_and(|output| String::from_utf8_lossy(&output.stdout).contains("install ok installed"))
}

/// Installs whichever of `packages` are missing; `purpose` says what they are for.
fn install_missing(packages: &[&str], purpose: &str) -> anyhow::Result<()> {
    let missing: Vec<&str> = packages.iter().copied().filter(|package| !installed(package)).collect();
    if missing.is_empty() {
        println!("setup: {purpose}: already installed: {}", packages.join(" "));
        return Ok(());
    }
    println!("setup: {purpose}: installing {}", missing.join(" "));
    run_command(Command::new("apt-get").args(["update", "-qq"]))?;
    run_command(
        Command::new("apt-get")
            .args(["install", "-y", "-qq", "--no-install-recommends"])
            .args(&missing)
            .env("DEBIAN_FRONTEND", "noninteractive"),
    )
}

fn install_packages() -> anyhow::Result<()> {
    install_missing(PACKAGES, "runtime packages")
}

/// conmon must run here, not only be installed: `ConmonMonitor`'s tests and the bench require
/// it, so a conmon that is missing from `PATH` or fails `conmon --version` fails setup, saying so.
fn verify_conmon() -> anyhow::Result<()> {
    let conmon = which::which("conmon").context("conmon is not in PATH after installing Debian's conmon package")?;
    let output = Command::new(&conmon)
        .arg("--version")
        .output()
        .with_context(|| format!("cannot run `{} --version`", conmon.display()))?;
    let said = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    if !output.status.success() {
        bail!("`{} --version` failed ({}): {}", conmon.display(), output.status, said.trim());
    }
    let version = said.lines().next().unwrap_or_default();
    println!("setup: conmon: {} says {version:?}", conmon.display());
    Ok(())
}

/// Where the youki setup finds (or builds, under cargo's bin directory, which is root's and
/// which an unprivileged user may not enter) is copied, so that the rootless user's `PATH` finds
/// the same youki as root's.
const SHARED_YOUKI: &str = "/usr/local/bin/youki";

fn install_youki() -> anyhow::Result<()> {
    let youki = match which::which("youki") {
        Ok(path) => {
            println!("setup: youki already at {}", path.display());
            path
        }
        Err(_) => {
            println!("setup: building youki (cargo install youki --locked --features v1; a few minutes)");
            // Without `v1`, youki cannot run containers on cgroup v1 or hybrid hosts.
            run_command(&mut cargo(["install", "youki", "--locked", "--features", "v1"]))?;
            which::which("youki")
                .context("youki was installed but is not in PATH: add cargo's bin directory to PATH")?
        }
    };
    share_youki(&youki)
}

/// Copies `youki` to [`SHARED_YOUKI`] when that is missing or holds another binary; the copy is
/// written beside it and renamed over it, so a youki running from it meanwhile is not changed.
fn share_youki(youki: &Path) -> anyhow::Result<()> {
    let shared = Path::new(SHARED_YOUKI);
    let built = std::fs::read(youki).with_context(|| format!("reading {}", youki.display()))?;
    if std::fs::read(shared).is_ok_and(|installed| installed == built) {
        println!("setup: youki: {SHARED_YOUKI} is the same binary as {}", youki.display());
        return Ok(());
    }
    let partial = shared.with_file_name(".youki.partial");
    std::fs::write(&partial, &built).with_context(|| format!("writing {}", partial.display()))?;
    std::fs::set_permissions(&partial, std::os::unix::fs::PermissionsExt::from_mode(0o755))?;
    std::fs::rename(&partial, shared).with_context(|| format!("installing {SHARED_YOUKI}"))?;
    println!("setup: youki: copied {} to {SHARED_YOUKI} (for the rootless user's PATH)", youki.display());
    Ok(())
}

fn fix_hybrid_cgroups() -> anyhow::Result<()> {
    let layout = CgroupLayout::read(Path::new("/proc/self/mountinfo")).context("reading the mount table")?;
    let CgroupLayout::Hybrid { v2_controllers, .. } = layout else {
        println!("setup: cgroups are not hybrid ({layout:?}); nothing to mount");
        return Ok(());
    };
    if v2_controllers.is_empty() {
        println!("setup: hybrid cgroups with an empty v2 hierarchy; crun can run");
        return Ok(());
    }
    for controller in &v2_controllers {
        let target = Path::new("/sys/fs/cgroup").join(controller);
        std::fs::create_dir_all(&target).with_context(|| format!("creating {}", target.display()))?;
        println!(
            "setup: mounting the v1 {controller} hierarchy at {} (crun refuses controllers in v2)",
            target.display()
        );
        run_command(Command::new("mount").args(["-t", "cgroup", "-o", controller, "cgroup"]).arg(&target))?;
    }
    Ok(())
}

/// A CRIU that passes `criu check` on this kernel.
///
/// Debian 12's CRIU 3.17 cannot read the vdso of newer kernels (`criu check` fails with
/// "vdso: Failed to fill self vdso symtable"), and with it no runtime can checkpoint. Debian 13
/// (trixie) has CRIU 4.1.1, whose source package builds on Debian 12 with Debian 12's libraries and
/// works. So when the installed `criu` fails (or there is none), setup fetches that source
/// package from Debian's archive, builds it, and installs the binary.
///
/// Where it goes: `/usr/local/sbin/criu`, the place for locally built programs, which comes before
/// `/usr/sbin` in every standard root PATH (login shells, `sudo`'s secure_path, systemd units,
/// `env -i`). PATH order alone is not enough, though: a PATH that lists `/usr/sbin` first, or lacks
/// `/usr/local/sbin` (cron's), would still reach the broken binary, and runc and youki look `criu`
/// up in whatever PATH they were given. So Debian's `/usr/sbin/criu` is moved aside with a
/// `dpkg-divert` (which package upgrades respect, so an upgrade cannot put it back) and replaced by
/// a link to the working one: every PATH that finds a `criu` finds the one that works.
/// `dpkg-divert --rename --remove /usr/sbin/criu` (after removing the link) undoes it.
mod criu {
    use super::*;

    /// The upstream version of trixie's source package, the one known to work here.
    const VERSION: &str = "4.1.1";
    /// The source package's upstream tarball, which is all the build needs.
    const TARBALL: &str = "criu_4.1.1.orig.tar.xz";
    /// Where the binary built here is installed.
    const LOCAL_BINARY: &str = "/usr/local/sbin/criu";
    /// Debian's binary, replaced by a link to [`LOCAL_BINARY`] when it fails.
    const DEBIAN_BINARY: &str = "/usr/sbin/criu";
    /// Where the diversion moves Debian's binary.
    const DIVERTED_BINARY: &str = "/usr/sbin/criu.debian";
    /// The directories of root's standard PATH, searched besides the current PATH.
    const ROOT_PATH: &[&str] = &["/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin"];
    /// An apt source for trixie's source packages only: no binary package comes from trixie.
    const SOURCES_FILE: &str = "/etc/apt/sources.list.d/debian-trixie-src.sources";
    const SOURCES: &str = "\
# Source packages only (no binary packages from trixie): `cargo xtask setup` builds CRIU from
# trixie's source package when the installed CRIU fails `criu check`.
Types: deb-src
URIs: http://deb.debian.org/debian
Suites: trixie
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
";
    /// What building CRIU needs, all from Debian 12.
    const BUILD_DEPENDENCIES: &[&str] = &[
        "build-essential",
        "make",
        "gcc",
        "pkg-config",
        "libprotobuf-dev",
        "libprotobuf-c-dev",
        "protobuf-c-compiler",
        "protobuf-compiler",
        "python3-protobuf",
        "libnl-3-dev",
        "libnet1-dev",
        "libcap-dev",
        "libbsd-dev",
        "libnftables-dev",
        "libaio-dev",
        "libgnutls28-dev",
        "uuid-dev",
        "libdrm-dev",
    ];

    /// Makes sure every `criu` a PATH can reach passes `criu check`, building CRIU if needed.
    pub fn ensure_working() -> anyhow::Result<()> {
        let failing = match failing_binaries() {
            Ok(working) => {
                println!("setup: criu: `criu check` passes for {}; nothing to build", join(&working));
                return Ok(());
            }
            Err(failing) => failing,
        };
        if failing.is_empty() {
            println!("setup: criu: no criu installed");
        }
        for (binary, reason) in &failing {
            println!("setup: criu: `{} check` fails: {reason}", binary.display());
        }
        if check(Path::new(LOCAL_BINARY)).is_ok() {
            println!("setup: criu: {LOCAL_BINARY} (built by an earlier run) passes `criu check`; not rebuilding it");
        } else {
            println!("setup: criu: building CRIU {VERSION} from Debian trixie's source package");
            build()?;
        }
        replace_debian_binary()?;
        match failing_binaries() {
            Ok(working) => {
                let output = check(Path::new(LOCAL_BINARY)).unwrap_or_default();
                println!("setup: criu: `criu check` passes for {}: {output}", join(&working));
                Ok(())
            }
            Err(failing) => {
                let reasons: Vec<String> =
                    failing.iter().map(|(binary, reason)| format!("{}: {reason}", binary.display())).collect();
                bail!("criu still fails `criu check` after the build: {}", reasons.join("; "))
            }
        }
    }

    fn join(binaries: &[PathBuf]) -> String {
        binaries.iter().map(|binary| binary.display().to_string()).collect::<Vec<_>>().join(", ")
    }

    /// Runs `binary check`: `Ok` with its verdict when it says "Looks good", else `Err` with its
    /// first error (the cause; later lines only say that initialisation failed).
    fn check(binary: &Path) -> Result<String, String> {
        let output = Command::new(binary).arg("check").output().map_err(|error| format!("cannot run it: {error}"))?;
        let text = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
        let lines = || text.lines().map(str::trim).filter(|line| !line.is_empty());
        if output.status.success() && text.contains("Looks good") {
            return Ok(lines().next_back().unwrap_or_default().to_owned());
        }
        let cause = lines().find(|line| line.starts_with("Error")).or_else(|| lines().next_back());
        Err(format!("{} ({})", cause.unwrap_or("no output"), output.status))
    }

    /// Every distinct `criu` in the current PATH and root's standard PATH: `Ok` with them all when
    /// each passes `criu check` (and there is at least one), else `Err` with those that fail.
    fn failing_binaries() -> Result<Vec<PathBuf>, Vec<(PathBuf, String)>> {
        let current = std::env::var_os("PATH").unwrap_or_default();
        let mut binaries: Vec<PathBuf> = Vec::new();
        for dir in std::env::split_paths(&current).chain(ROOT_PATH.iter().map(PathBuf::from)) {
            let candidate = dir.join("criu");
            if let Ok(real) = candidate.canonicalize()
                && real.is_file()
                && !binaries.contains(&real)
            {
                binaries.push(real);
            }
        }
        let failing: Vec<(PathBuf, String)> =
            binaries.iter().filter_map(|binary| check(binary).err().map(|reason| (binary.clone(), reason))).collect();
        if binaries.is_empty() || !failing.is_empty() { Err(failing) } else { Ok(binaries) }
    }

    /// Adds the trixie source entry, fetches CRIU's source, builds it and installs the binary.
    fn build() -> anyhow::Result<()> {
        install_missing(BUILD_DEPENDENCIES, "CRIU build dependencies")?;
        add_trixie_sources()?;
        run_command(Command::new("apt-get").args(["update", "-qq"]))?;

        let work = tempfile::Builder::new().prefix("criu-build-").tempdir().context("creating the build directory")?;
        let mut fetch = Command::new("apt-get");
        fetch.args(["source", "--download-only", "criu/trixie"]).current_dir(work.path());
        // apt may fail on one of the package's files (the .dsc); the upstream tarball is all the
        // build uses, so its presence is what decides.
        eprintln!("xtask: running {fetch:?}");
        let fetched = fetch.status().with_context(|| format!("cannot run {fetch:?}"))?;
        let tarball = work.path().join(TARBALL);
        if !tarball.is_file() {
            let files: Vec<String> = std::fs::read_dir(work.path())
                .map(|entries| {
                    entries.flatten().map(|entry| entry.file_name().to_string_lossy().into_owned()).collect()
                })
                .unwrap_or_default();
            bail!("{fetch:?} ({fetched}) did not bring {TARBALL}; it fetched: [{}]", files.join(", "));
        }
        if !fetched.success() {
            println!("setup: criu: apt-get source exited with {fetched}, but {TARBALL} arrived; building from it");
        }

        run_command(Command::new("tar").arg("-xJf").arg(&tarball).arg("-C").arg(work.path()))?;
        let source = work.path().join(format!("criu-{VERSION}"));
        let jobs = std::thread::available_parallelism().map_or(1, |n| n.get());
        println!("setup: criu: building in {} (make -j{jobs} criu; a few minutes)", source.display());
        run_command(Command::new("make").arg(format!("-j{jobs}")).arg("criu").current_dir(&source))?;

        let built = source.join("criu").join("criu");
        run_command(Command::new("install").args(["-D", "-m", "0755"]).arg(&built).arg(LOCAL_BINARY))?;
        println!("setup: criu: installed CRIU {VERSION} at {LOCAL_BINARY}");
        Ok(())
    }

    fn add_trixie_sources() -> anyhow::Result<()> {
        if std::fs::read_to_string(SOURCES_FILE).is_ok_and(|existing| existing == SOURCES) {
            println!("setup: criu: {SOURCES_FILE} already lists trixie's source packages");
            return Ok(());
        }
        std::fs::write(SOURCES_FILE, SOURCES).with_context(|| format!("writing {SOURCES_FILE}"))?;
        println!("setup: criu: wrote {SOURCES_FILE} (deb-src for trixie only)");
        Ok(())
    }

    /// Diverts Debian's binary aside and links its path to the one built here.
    fn replace_debian_binary() -> anyhow::Result<()> {
        let debian = Path::new(DEBIAN_BINARY);
        if std::fs::read_link(debian).is_ok_and(|target| target == Path::new(LOCAL_BINARY)) {
            println!("setup: criu: {DEBIAN_BINARY} already links to {LOCAL_BINARY}");
            return Ok(());
        }
        // Registered even when no package owns the path yet, so installing one later cannot
        // overwrite the link.
        run_command(Command::new("dpkg-divert").args([
            "--local",
            "--rename",
            "--divert",
            DIVERTED_BINARY,
            "--add",
            DEBIAN_BINARY,
        ]))?;
        if debian.symlink_metadata().is_ok() {
            bail!("{DEBIAN_BINARY} is still there after diverting it to {DIVERTED_BINARY}; not replacing it");
        }
        std::os::unix::fs::symlink(LOCAL_BINARY, debian)
            .with_context(|| format!("linking {DEBIAN_BINARY} to {LOCAL_BINARY}"))?;
        println!("setup: criu: moved Debian's {DEBIAN_BINARY} to {DIVERTED_BINARY} and linked it to {LOCAL_BINARY}");
        Ok(())
    }
}
