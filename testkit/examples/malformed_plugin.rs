//! A plugin whose descriptor is wrong: its dialect is not a dialect. Loading it must fail with
//! `PluginProblem::Malformed`.

#![allow(unsafe_code)]

use runtime_core::plugin::{PLUGIN_ABI_VERSION, PluginDescriptor};

static DESCRIPTOR: PluginDescriptor = PluginDescriptor {
    abi_version: PLUGIN_ABI_VERSION,
    name: c"malformed".as_ptr(),
    binary: c"malformed-runtime".as_ptr(),
    dialect_json: c"{\"checkpoint_command\": 42}".as_ptr(),
};

// SAFETY: exported under the ABI's symbol with the ABI's signature; returns a static.
#[unsafe(no_mangle)]
pub extern "C" fn ocikit_backend_descriptor() -> *const PluginDescriptor {
    &DESCRIPTOR
}
