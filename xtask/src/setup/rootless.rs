//! The unprivileged user the rootless tests run as ([`testkit::rootless::USER`]): a login user
//! with subordinate uid and gid ranges (as `useradd` gives a new user, or `usermod` adds) and a
//! runtime directory `/run/user/<uid>`, owned by it, mode 0700, as a login session's
//! `pam_systemd` makes it. `/run` is emptied at boot, so the directory is made again whenever it
//! is missing. Each step checks first; run twice, the second run changes nothing.

use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::Path;
use std::process::Command;

use anyhow::Context;
use nix::unistd::User;
use testkit::rootless::{RootlessUser, SUBID_COUNT, USER};

use crate::run_command;

pub fn ensure() -> anyhow::Result<()> {
    let user = match User::from_name(USER).context("reading the user database")? {
        Some(user) => {
            println!("setup: rootless user {USER} exists (uid {})", user.uid);
            user
        }
        None => {
            println!("setup: adding the rootless user {USER}");
            run_command(Command::new("useradd").args(["--create-home", "--shell", "/bin/sh", USER]))?;
            User::from_name(USER)?.with_context(|| format!("useradd made no user {USER}"))?
        }
    };
    ensure_subids(&user)?;
    ensure_runtime_dir(&user)?;
    let found = RootlessUser::find().map_err(anyhow::Error::msg)?;
    println!("setup: rootless user ready: {found}");
    Ok(())
}

/// Adds subordinate uid and gid ranges when the user has none.
fn ensure_subids(user: &User) -> anyhow::Result<()> {
    for (file, flag) in [("/etc/subuid", "--add-subuids"), ("/etc/subgid", "--add-subgids")] {
        let text = std::fs::read_to_string(file).unwrap_or_default();
        if let Some(range) = testkit::rootless::subid_range(&text, USER, user.uid) {
            println!("setup: {USER} has {file} range {}+{}", range.start, range.count);
            continue;
        }
        let start = next_free_subid(&text);
        let range = format!("{start}-{}", start + SUBID_COUNT - 1);
        println!("setup: giving {USER} the {file} range {range}");
        run_command(Command::new("usermod").args([flag, &range, USER]))?;
    }
    Ok(())
}

/// The first id past every range in a subid file, at least 100000 (login.defs' SUB_UID_MIN).
fn next_free_subid(text: &str) -> u64 {
    text.lines()
        .filter_map(|line| {
            let mut fields = line.split(':').skip(1);
            Some(fields.next()?.parse::<u64>().ok()? + fields.next()?.parse::<u64>().ok()?)
        })
        .fold(100_000, u64::max)
}

fn ensure_runtime_dir(user: &User) -> anyhow::Result<()> {
    let dir = Path::new("/run/user").join(user.uid.to_string());
    if !dir.is_dir() {
        println!("setup: making {}", dir.display());
        std::fs::DirBuilder::new().recursive(true).mode(0o700).create(&dir)?;
    }
    std::os::unix::fs::chown(&dir, Some(user.uid.as_raw()), Some(user.gid.as_raw()))
        .with_context(|| format!("giving {} to {USER}", dir.display()))?;
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_next_free_subid_is_past_every_range_and_never_below_100000() {
        assert_eq!(next_free_subid(""), 100_000);
        assert_eq!(next_free_subid("alice:100000:65536\nbob:165536:65536\n"), 231_072);
        assert_eq!(next_free_subid("odd line\ncarol:10:5\n"), 100_000);
    }
}
