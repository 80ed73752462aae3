//! A plugin built for an ABI version this build does not speak: loading it must fail with
//! `PluginProblem::AbiVersion` before any other field is read.

#![allow(unsafe_code)]

use runtime_core::plugin::PluginDescriptor;

static DESCRIPTOR: PluginDescriptor = PluginDescriptor {
    abi_version: 2,
    // A version-2 layout could mean anything here; the loader must not look.
    name: std::ptr::null(),
    binary: std::ptr::null(),
    dialect_json: std::ptr::null(),
};

// SAFETY: exported under the ABI's symbol with the ABI's signature; returns a static.
#[unsafe(no_mangle)]
pub extern "C" fn ocikit_backend_descriptor() -> *const PluginDescriptor {
    &DESCRIPTOR
}
