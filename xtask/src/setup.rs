//! `cargo xtask setup`: makes this host able to run every real runtime the project drives.
//!
//! Idempotent: each step checks first and says whether it did anything. Needs root, since it
//! installs packages and mounts cgroup hierarchies.

use std::path::Path;
use std::process::Command;

use anyhow::{Context, bail};
use backend_crun::{CgroupLayout, HybridCgroupCheck};

use crate::{cargo, run_command};

/// Debian packages the real runtime tests need.
const PACKAGES: &[&str] = &["runc", "crun", "conmon", "criu", "busybox-static", "libseccomp-dev", "pkg-config"];

pub fn run() -> anyhow::Result<()> {
    if !nix::unistd::geteuid().is_root() {
        bail!("setup installs packages and mounts cgroups; run it as root (e.g. `sudo -E cargo xtask setup`)");
    }
    install_packages()?;
    install_youki()?;
    fix_hybrid_cgroups()?;
    println!("setup: done");
    Ok(())
}

fn installed(package: &str) -> bool {
    Command::new("dpkg-query")
        .args(["-W", "-f=${Status}", package])
        .output()
        .is_ok_and(|output| String::from_utf8_lossy(&output.stdout).contains("install ok installed"))
}

fn install_packages() -> anyhow::Result<()> {
    let missing: Vec<&str> = PACKAGES.iter().copied().filter(|package| !installed(package)).collect();
    if missing.is_empty() {
        println!("setup: packages already installed: {}", PACKAGES.join(" "));
        return Ok(());
    }
    println!("setup: installing {}", missing.join(" "));
    run_command(Command::new("apt-get").args(["update", "-qq"]))?;
    run_command(
        Command::new("apt-get")
            .args(["install", "-y", "-qq", "--no-install-recommends"])
            .args(&missing)
            .env("DEBIAN_FRONTEND", "noninteractive"),
    )
}

fn install_youki() -> anyhow::Result<()> {
    if let Ok(path) = which::which("youki") {
        println!("setup: youki already at {}", path.display());
        return Ok(());
    }
    println!("setup: building youki (cargo install youki --locked --features v1; a few minutes)");
    // Without `v1`, youki cannot run containers on cgroup v1 or hybrid hosts.
    run_command(&mut cargo(["install", "youki", "--locked", "--features", "v1"]))?;
    which::which("youki").context("youki was installed but is not in PATH: add cargo's bin directory to PATH")?;
    Ok(())
}

fn fix_hybrid_cgroups() -> anyhow::Result<()> {
    let layout = HybridCgroupCheck::default().inspect().context("reading the mount table")?;
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
