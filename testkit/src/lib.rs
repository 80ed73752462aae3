//! Test support for the workspace: the fake runtime (`fake-oci`), per-test fakes, bundle
//! builders, the gate for tests that need a real runtime, the harness that reports skips with
//! their reasons, and the conformance suite every backend is held to.

pub mod bundle;
pub mod conformance;
pub mod fake;
pub mod fake_oci;
pub mod gate;
pub mod harness;
pub mod plugins;
pub mod procs;
