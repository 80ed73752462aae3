//! The contract every backend and monitor fulfils, and the vocabulary callers use with them:
//! ids, signals, states, options, features and the one error type. Nothing here runs a process.

pub mod backend;
pub mod error;
pub mod exit;
pub mod features;
pub mod host;
pub mod id;
pub mod monitor;
pub mod options;
pub mod output;
pub mod signal;
pub mod state;
pub mod stats;
pub mod version;
