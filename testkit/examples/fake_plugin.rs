//! An example backend plugin: a runc-like runtime described entirely as data, driven through
//! the plugin ABI (the tests point it at `fake-oci` linked as `runc`). Build it with
//! `cargo build -p testkit --example fake_plugin` and load `target/debug/examples/libfake_plugin.so` with `runtime_core::plugin::load_backend`.
//!
//! A real plugin for, say, runsc looks the same: its name, its binary, and its dialect.

#![allow(unsafe_code)]

use runtime_core::plugin::{PLUGIN_ABI_VERSION, PluginDescriptor};

/// How the runtime spells things: see `runtime_core::Dialect`.
const DIALECT: &std::ffi::CStr = cr#"{
    "checkpoint_command": "checkpoint",
    "restore_command": "restore",
    "features_command": "features",
    "global_flags": {"json_log": true, "criu": true, "systemd_cgroup": true, "cgroup_manager": false, "rootless": true},
    "missing_flags": [],
    "list_format": "json",
    "update_resources": "stdin",
    "errors": {
        "not_found": ["container does not exist"],
        "already_exists": ["container with given ID already exists"],
        "invalid_state": ["that is not stopped", "cannot start an already running container",
                          "cannot start a container that has stopped", "container not running",
                          "container not paused", "cannot exec in a stopped container"]
    },
    "min_criu_version": {"major": 3, "minor": 0, "patch": 0},
    "events": {"command": "events", "interval": "go_duration", "stats": "runc"}
}"#;

static DESCRIPTOR: PluginDescriptor = PluginDescriptor {
    abi_version: PLUGIN_ABI_VERSION,
    name: c"fake-plugin".as_ptr(),
    binary: c"runc".as_ptr(),
    dialect_json: DIALECT.as_ptr(),
};

/// The descriptor, as the ABI requires.
// SAFETY: exported under the ABI's symbol with the ABI's signature; it returns a pointer to a
// static that lives as long as the library.
#[unsafe(no_mangle)]
pub extern "C" fn ocikit_backend_descriptor() -> *const PluginDescriptor {
    &DESCRIPTOR
}
