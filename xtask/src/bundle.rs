//! `cargo xtask bundle`: an OCI bundle from the command line, written by the builder the tests
//! use (`testkit::bundle::BundleBuilder`), so a bundle made by hand is one the test suite would
//! make: a static busybox root filesystem with its applets linked in `/bin`, and a `config.json`
//! written with oci-spec.

use std::path::PathBuf;

use anyhow::Context;
use testkit::bundle::BundleBuilder;

/// What `cargo xtask bundle` takes.
#[derive(Debug, clap::Args)]
pub struct BundleArgs {
    /// Where to write the bundle: a missing or empty directory.
    dir: PathBuf,
    /// Give the process a terminal (create it with a console socket).
    #[arg(long)]
    tty: bool,
    /// A rootless config: a user namespace mapping the current user to root.
    #[arg(long)]
    rootless: bool,
    /// Limit the container's memory to BYTES, swap included.
    #[arg(long, value_name = "BYTES")]
    memory: Option<i64>,
    /// The process to run, after `--`.
    #[arg(last = true, required = true, value_name = "CMD")]
    command: Vec<String>,
}

/// Writes the bundle `args` describe.
pub fn run(args: &BundleArgs) -> anyhow::Result<()> {
    let mut builder = BundleBuilder::new(args.command.iter().cloned());
    if args.tty {
        builder = builder.terminal();
    }
    if args.rootless {
        builder = builder.rootless();
    }
    if let Some(bytes) = args.memory {
        builder = builder.memory_limit(bytes);
    }
    builder.write_to(&args.dir).with_context(|| format!("writing a bundle into {}", args.dir.display()))?;
    println!("wrote a bundle running {:?} into {}", args.command, args.dir.display());
    Ok(())
}
