#![doc = include_str!("../README.md")]

pub mod bundle;
pub mod conformance;
pub mod counter;
pub mod direct;
pub mod example;
pub mod fake;
pub mod fake_conmon;
pub mod fake_oci;
pub mod gate;
pub mod harness;
pub mod overlay;
pub mod plugins;
pub mod procs;
pub mod rootless;
