//! The provider's key: an Ethereum account kept in an encrypted keystore (v3, scrypt), or given in the
//! environment (`QOR_WORKER_KEY`, hex) for automation.

use std::path::{Path, PathBuf};

use alloy::signers::local::PrivateKeySigner;
use anyhow::Context;

/// Environment variable holding the private key (hex), which overrides the keystore.
pub const KEY_ENV: &str = "QOR_WORKER_KEY";
/// Environment variable holding the keystore passphrase (otherwise it is asked for).
pub const PASSPHRASE_ENV: &str = "QOR_WORKER_PASSPHRASE";

/// Where the passphrase comes from.
#[derive(Debug, Clone, Default)]
pub struct Passphrase {
    /// A file whose first line is the passphrase.
    pub file: Option<PathBuf>,
}

impl Passphrase {
    fn read(&self, confirm: bool) -> anyhow::Result<String> {
        if let Some(file) = &self.file {
            let text = std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
            return Ok(text.lines().next().unwrap_or_default().to_string());
        }
        if let Ok(p) = std::env::var(PASSPHRASE_ENV) {
            return Ok(p);
        }
        let p = rpassword::prompt_password("keystore passphrase: ").context("reading the passphrase from the terminal")?;
        if confirm && rpassword::prompt_password("again: ")? != p {
            anyhow::bail!("the passphrases differ");
        }
        Ok(p)
    }
}

/// The key from `QOR_WORKER_KEY` if set.
pub fn from_env() -> anyhow::Result<Option<PrivateKeySigner>> {
    match std::env::var(KEY_ENV) {
        Ok(hex) => Ok(Some(hex.trim().parse().with_context(|| format!("`{KEY_ENV}` is not a 32-byte hex private key"))?)),
        Err(_) => Ok(None),
    }
}

/// The provider's signer: `QOR_WORKER_KEY`, else the keystore (decrypted with the passphrase).
pub fn load(keystore: Option<&Path>, passphrase: &Passphrase) -> anyhow::Result<PrivateKeySigner> {
    if let Some(signer) = from_env()? {
        return Ok(signer);
    }
    let Some(path) = keystore else {
        anyhow::bail!("no key: set `{KEY_ENV}`, or create a keystore with `qor-worker init`");
    };
    let password = passphrase.read(false)?;
    PrivateKeySigner::decrypt_keystore(path, password).with_context(|| format!("decrypting {} (wrong passphrase?)", path.display()))
}

/// Writes `signer`'s key to a new keystore file in `dir`; returns its path.
pub fn create_keystore(dir: &Path, signer: &PrivateKeySigner, passphrase: &Passphrase) -> anyhow::Result<PathBuf> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let password = passphrase.read(true)?;
    let name = format!("{:#x}.json", signer.address());
    let mut rng = rand08::thread_rng();
    PrivateKeySigner::encrypt_keystore(dir, &mut rng, signer.to_bytes(), password, Some(&name))
        .with_context(|| format!("writing a keystore in {}", dir.display()))?;
    Ok(dir.join(name))
}

/// The signer of signed coordinator requests and receipts for the same key.
pub fn protocol_signer(signer: &PrivateKeySigner) -> qor_protocol::eip712::Signer {
    qor_protocol::eip712::Signer::from_bytes(&signer.to_bytes()).expect("a valid signer's key is a valid key")
}
