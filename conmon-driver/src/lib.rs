#![doc = include_str!("../README.md")]

mod argv;
mod attach;
mod exec;
mod logs;
mod monitor;
mod ports;
mod sync;
mod version;
mod watch;

pub use monitor::{ConmonLogLevel, ConmonMonitor, DEFAULT_CREATE_TIMEOUT};
