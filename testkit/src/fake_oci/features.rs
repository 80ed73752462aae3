//! `features`: the runtime's self-description (OCI runtime features document).
//!
//! The documents are captures from the real runtimes (runc 1.1.5 and youki 0.7.0; crun's is
//! modelled on its 1.8.6+ output) with version annotations pointing at the fake, so drivers that
//! parse them meet the real shapes, including youki's `"annotations": null`.

use super::args::{Grammar, parse_command};
use super::error::CmdResult;
use super::flavour::{Ctx, Flavour};

const RUNC: &str = include_str!("features/runc.json");
const CRUN: &str = include_str!("features/crun.json");
const YOUKI: &str = include_str!("features/youki.json");

/// Whether this flavour and version has a `features` command (crun gained it in 1.8.6).
pub(crate) fn available(ctx: &Ctx) -> bool {
    ctx.flavour != Flavour::Crun || ctx.version.at_least(1, 8, 6)
}

/// Prints the features document.
pub(crate) fn features(ctx: &Ctx, argv: &[String]) -> CmdResult {
    let grammar = Grammar::new("features", "show the enabled features", &[], &[]);
    if parse_command(ctx, &grammar, argv)?.is_none() {
        return Ok(0);
    }
    let version = ctx.version.text();
    let document = match ctx.flavour {
        Flavour::Runc => RUNC.replace("1.1.5+fake", &format!("{version}+fake")),
        Flavour::Crun => {
            CRUN.replace("\"run.oci.crun.version\": \"1.8.6\"", &format!("\"run.oci.crun.version\": \"{version}\""))
        }
        Flavour::Youki => YOUKI.to_string(),
    };
    println!("{}", document.trim_end());
    Ok(0)
}
