#![doc = include_str!("../README.md")]

mod argv;
mod monitor;
mod ports;
mod sync;
mod version;
mod watch;

pub use argv::LogDriver;
pub use monitor::{ConmonMonitor, DEFAULT_CREATE_TIMEOUT};
