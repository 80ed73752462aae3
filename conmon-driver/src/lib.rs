#![doc = include_str!("../README.md")]

mod argv;
mod attach;
mod logs;
mod monitor;
mod sync;
mod watch;

pub use monitor::{ConmonMonitor, DEFAULT_CREATE_TIMEOUT};
