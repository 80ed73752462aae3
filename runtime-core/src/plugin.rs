//! Backends loaded from shared libraries at run time.
//!
//! A new runtime (runsc, kata, crun-vm...) is driven without recompiling the embedding program:
//! its plugin describes the runtime as data, and our CLI driver does the spawning. Nothing but
//! plain C data crosses the boundary — never a Rust trait object, whose layout is not stable
//! between compilers.
//!
//! # ABI, version 1
//!
//! The library exports `ocikit_backend_descriptor`, an `extern "C"` function without arguments
//! that returns a pointer to a [`PluginDescriptor`] valid for as long as the library is loaded.
//! The descriptor's first field is always the ABI version, so a future layout is recognised
//! before any other field is read. Its strings are NUL-terminated UTF-8; `dialect_json` is a
//! [`Dialect`] as JSON (subcommand names, the flags the runtime takes, its error wording).
//! The library stays loaded as long as any backend made from it lives.

#![allow(unsafe_code)]

use std::ffi::{CStr, c_char};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::blocking::off_executor;
use crate::cli::backend::{CliBackend, RuntimeFamily};
use crate::cli::config::RuntimeConfig;
use crate::cli::dialect::Dialect;
use crate::contract::backend::OciBackend;
use crate::contract::error::{Error, PluginProblem, Result};
use crate::contract::version::RuntimeVersion;

/// The ABI version this build speaks.
pub const PLUGIN_ABI_VERSION: u32 = 1;

/// The symbol every plugin exports.
pub const PLUGIN_DESCRIPTOR_SYMBOL: &str = "ocikit_backend_descriptor";

/// What a plugin's descriptor function returns a pointer to.
#[repr(C)]
#[derive(Debug)]
pub struct PluginDescriptor {
    /// Must be [`PLUGIN_ABI_VERSION`].
    pub abi_version: u32,
    /// The backend's name, NUL-terminated UTF-8.
    pub name: *const c_char,
    /// The runtime binary (a path, or a name looked up in `PATH`), NUL-terminated UTF-8.
    pub binary: *const c_char,
    /// The runtime's [`Dialect`] as JSON, NUL-terminated UTF-8.
    pub dialect_json: *const c_char,
}

// SAFETY: a descriptor only holds pointers to immutable, NUL-terminated strings that live as long
// as the library; nothing is ever written through them, so sharing between threads is sound.
unsafe impl Sync for PluginDescriptor {}

/// The signature of the exported descriptor function.
pub type DescriptorFn = unsafe extern "C" fn() -> *const PluginDescriptor;

/// A plugin whose descriptor was read and checked.
#[derive(Debug)]
pub struct BackendPlugin {
    path: PathBuf,
    name: String,
    binary: PathBuf,
    dialect: Dialect,
    // Keeps the code of the plugin mapped for as long as a backend made from it lives.
    _library: libloading::Library,
}

impl BackendPlugin {
    /// Loads the library at `path` and reads its descriptor.
    pub fn open(path: &Path) -> Result<Self> {
        let fail = |problem| Error::Plugin { path: path.to_path_buf(), problem };
        // SAFETY: loading a library runs its initialisers; loading a plugin is exactly the act of
        // trusting its code, as with any plugin system. Nothing else is assumed here.
        let library =
            unsafe { libloading::Library::new(path) }.map_err(|err| fail(PluginProblem::Open(loader_reason(&err))))?;
        // SAFETY: the type is the one the ABI defines for this symbol.
        let descriptor_fn: libloading::Symbol<DescriptorFn> =
            unsafe { library.get(PLUGIN_DESCRIPTOR_SYMBOL.as_bytes()) }.map_err(|err| {
                fail(PluginProblem::MissingSymbol {
                    symbol: PLUGIN_DESCRIPTOR_SYMBOL.to_owned(),
                    message: loader_reason(&err),
                })
            })?;
        // SAFETY: the ABI defines the function as taking nothing and returning a pointer.
        let descriptor = unsafe { descriptor_fn() };
        if descriptor.is_null() {
            return Err(fail(PluginProblem::Malformed("the descriptor function returned null".into())));
        }
        // SAFETY: non-null, and by the ABI it points to a descriptor whose first field is the
        // version; only that field is read before the version is known to match.
        let abi_version = unsafe { (*descriptor).abi_version };
        if abi_version != PLUGIN_ABI_VERSION {
            return Err(fail(PluginProblem::AbiVersion { found: abi_version, expected: PLUGIN_ABI_VERSION }));
        }
        // SAFETY: the version matches, so the whole version-1 layout may be read.
        let descriptor = unsafe { &*descriptor };
        let name = read_string(descriptor.name, "name").map_err(fail)?;
        let binary = read_string(descriptor.binary, "binary").map_err(fail)?;
        let dialect_json = read_string(descriptor.dialect_json, "dialect_json").map_err(fail)?;
        if name.is_empty() || binary.is_empty() {
            return Err(fail(PluginProblem::Malformed("name and binary must not be empty".into())));
        }
        let dialect: Dialect = serde_json::from_str(&dialect_json)
            .map_err(|err| fail(PluginProblem::Malformed(format!("dialect_json is not a dialect: {err}"))))?;
        Ok(BackendPlugin { path: path.to_path_buf(), name, binary: PathBuf::from(binary), dialect, _library: library })
    }

    /// The library's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The dialect the plugin declares.
    pub fn declared_dialect(&self) -> &Dialect {
        &self.dialect
    }

    /// A backend driving the plugin's runtime; `config.binary` overrides the plugin's binary.
    pub async fn connect(self, config: RuntimeConfig) -> Result<Box<dyn OciBackend>> {
        Ok(Box::new(CliBackend::connect(Arc::new(self), config).await?))
    }
}

/// The loader's own reason: libloading says only "dlopen failed" and keeps `dlerror`'s text
/// (which file, and what is wrong with it) as its source.
fn loader_reason(err: &libloading::Error) -> String {
    let mut innermost: &dyn std::error::Error = err;
    while let Some(cause) = innermost.source() {
        innermost = cause;
    }
    innermost.to_string()
}

/// Reads one descriptor string.
fn read_string(pointer: *const c_char, field: &str) -> Result<String, PluginProblem> {
    if pointer.is_null() {
        return Err(PluginProblem::Malformed(format!("{field} is null")));
    }
    // SAFETY: non-null, and the ABI requires a NUL-terminated string that lives as long as the
    // library, which is loaded for the whole call.
    let text = unsafe { CStr::from_ptr(pointer) };
    text.to_str().map(str::to_owned).map_err(|_| PluginProblem::Malformed(format!("{field} is not UTF-8")))
}

impl RuntimeFamily for BackendPlugin {
    fn name(&self) -> &str {
        &self.name
    }

    fn default_binary(&self) -> PathBuf {
        self.binary.clone()
    }

    fn dialect(&self, _version: &RuntimeVersion) -> Dialect {
        self.dialect.clone()
    }
}

/// Loads the plugin at `path` and connects to its runtime: a backend like any other. The
/// library is loaded off the caller's executor: `dlopen` reads it from disk and runs its
/// initialisers.
pub async fn load_backend(path: &Path, config: RuntimeConfig) -> Result<Box<dyn OciBackend>> {
    let path = path.to_path_buf();
    let plugin = off_executor("loading a backend plugin", move || BackendPlugin::open(&path)).await?;
    plugin.connect(config).await
}
