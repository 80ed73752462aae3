#![doc = include_str!("../README.md")]

mod argv;
mod exec;
mod monitor;
mod sync;
mod watch;

pub use argv::LogDriver;
pub use monitor::{ConmonMonitor, DEFAULT_CREATE_TIMEOUT};
