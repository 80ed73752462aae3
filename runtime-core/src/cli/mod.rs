//! Runtimes driven through their command line: the spawner (own process group, timeout, bounded
//! capture) behind a trait, the generic driver on top of it (global and log flags, error
//! classification), the data [`dialect`] that says how one runtime spells things, the feature
//! probes, and [`CliBackend`](backend::CliBackend), the one `OciBackend` for every command-line
//! runtime.

pub mod backend;
pub mod config;
pub mod dialect;
pub mod driver;
pub mod events;
pub mod probe;
pub(crate) mod rollback;
pub(crate) mod spawn;
