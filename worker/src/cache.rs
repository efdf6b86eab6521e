//! Compiled modules on disk, so a worker compiles each module once per engine build rather than once
//! per job (or once per restart).
//!
//! A file is `<cache>/<module keccak>-<engine key>.cwasm`, where the engine key hashes wasmtime's
//! [`Engine::precompile_compatibility_hash`] (its version and every setting that changes generated
//! code), so a worker upgraded to another wasmtime or configuration never loads an old artifact. The
//! file is a 32-byte keccak of the rest followed by [`Module::serialize`]'s bytes; it is written to a
//! temporary name and renamed, so a crash leaves either nothing or a whole file, and a truncated or
//! flipped file fails the checksum and is recompiled rather than loaded.

use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};

use alloy_primitives::{B256, Keccak256, keccak256};
use wasmtime::{Engine, Module};

/// Where a module came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CacheStatus {
    /// Loaded from the cache folder.
    Hit,
    /// Compiled now (and stored, if the folder was writable).
    Compiled,
}

/// A folder of compiled modules for one engine configuration.
#[derive(Debug, Clone)]
pub struct ModuleCache {
    dir: PathBuf,
    engine_key: String,
}

/// Feeds `Hash` output into keccak, which, unlike `DefaultHasher`, is the same in every Rust release.
struct KeccakHasher(Keccak256);

impl Hasher for KeccakHasher {
    fn write(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }
    fn finish(&self) -> u64 {
        unreachable!("read with finalize")
    }
}

impl ModuleCache {
    /// A cache in `dir` (created if missing) for modules compiled by `engine`.
    pub fn open(dir: &Path, engine: &Engine) -> std::io::Result<Self> {
        std::fs::create_dir_all(dir)?;
        let mut hasher = KeccakHasher(Keccak256::new());
        engine.precompile_compatibility_hash().hash(&mut hasher);
        let key = hasher.0.finalize();
        Ok(Self { dir: dir.to_path_buf(), engine_key: hex(&key[..12]) })
    }

    /// The file a module with this keccak is cached in.
    pub fn path(&self, module_hash: B256) -> PathBuf {
        self.dir.join(format!("{}-{}.cwasm", hex(module_hash.as_slice()), self.engine_key))
    }

    /// The compiled module for `bytes` (whose keccak is `module_hash`): from the cache when a whole,
    /// matching file is there, otherwise compiled and stored. An error is the module's own: it does
    /// not compile.
    pub fn load(&self, engine: &Engine, module_hash: B256, bytes: &[u8]) -> wasmtime::Result<(Module, CacheStatus)> {
        let path = self.path(module_hash);
        if let Some(module) = read_artifact(engine, &path) {
            return Ok((module, CacheStatus::Hit));
        }
        let module = Module::new(engine, bytes)?;
        // A cache that cannot be written (full disk, read-only folder) costs speed, never a job.
        let _ = module.serialize().map(|artifact| write_atomically(&path, &artifact));
        Ok((module, CacheStatus::Compiled))
    }
}

/// Loads the artifact at `path` if it is whole (its checksum matches; a damaged file is removed)
/// and was compiled for `engine`'s configuration.
pub(crate) fn read_artifact(engine: &Engine, path: &Path) -> Option<Module> {
    let file = std::fs::read(path).ok()?;
    let (sum, artifact) = file.split_at_checked(32)?;
    if keccak256(artifact).as_slice() != sum {
        let _ = std::fs::remove_file(path);
        return None;
    }
    deserialize(engine, artifact).ok()
}

/// Loads an artifact [`Module::serialize`] wrote.
///
/// This is the worker's only `unsafe`: wasmtime runs deserialized bytes as machine code without
/// validating them. It is sound here because the only bytes that reach it are files in the worker's
/// own cache folder that this module wrote from `Module::serialize` and whose keccak still matches
/// (so not truncated or corrupted), and wasmtime itself refuses an artifact from another version or
/// configuration. Whoever can write the worker's data folder can already replace the worker binary.
#[allow(unsafe_code)]
fn deserialize(engine: &Engine, artifact: &[u8]) -> wasmtime::Result<Module> {
    // SAFETY: see above; `artifact` is a checksummed output of `Module::serialize`.
    unsafe { Module::deserialize(engine, artifact) }
}

pub(crate) fn write_atomically(path: &Path, artifact: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    let mut file = Vec::with_capacity(32 + artifact.len());
    file.extend_from_slice(keccak256(artifact).as_slice());
    file.extend_from_slice(artifact);
    std::fs::write(&tmp, &file)?;
    std::fs::rename(&tmp, path).inspect_err(|_| {
        let _ = std::fs::remove_file(&tmp);
    })
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
