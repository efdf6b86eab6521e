//! The provider's key: an Ethereum account kept in an encrypted keystore (v3, scrypt), or given in the
//! environment (`QOR_WORKER_KEY`, hex) for automation.
//!
//! A keystore is written as geth and Foundry's `cast wallet` write theirs: scrypt with the standard
//! parameters (n = 2^18, r = 8, p = 1: about a second and 256 MiB to try one passphrase), AES-128-CTR,
//! a keccak MAC, in a file only its owner can read (0600) in a folder only its owner can enter (0700).

use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
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

/// scrypt's cost: geth's `StandardScryptN` (2^18), with r = 8 and p = 1.
pub const SCRYPT_LOG_N: u8 = 18;

/// Writes `signer`'s key to a new keystore file in `dir` (created 0700; the file 0600); returns its
/// path.
pub fn create_keystore(dir: &Path, signer: &PrivateKeySigner, passphrase: &Passphrase) -> anyhow::Result<PathBuf> {
    let password = passphrase.read(true)?;
    write_keystore(dir, signer, &password, SCRYPT_LOG_N)
}

/// [`create_keystore`] with the passphrase given and scrypt's cost as 2^`log_n`.
pub fn write_keystore(dir: &Path, signer: &PrivateKeySigner, password: &str, log_n: u8) -> anyhow::Result<PathBuf> {
    use aes::cipher::{KeyIvInit, StreamCipher};
    use rand08::RngCore;

    std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir).with_context(|| format!("creating {}", dir.display()))?;
    // A folder that already existed keeps no wider permissions than a new one would have.
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).with_context(|| format!("restricting {}", dir.display()))?;
    let mut rng = rand08::thread_rng();
    let (mut salt, mut iv, mut id) = ([0u8; 32], [0u8; 16], [0u8; 16]);
    rng.fill_bytes(&mut salt);
    rng.fill_bytes(&mut iv);
    rng.fill_bytes(&mut id);
    let params = scrypt::Params::new(log_n, 8, 1).map_err(|e| anyhow::anyhow!("scrypt parameters: {e}"))?;
    let mut derived = [0u8; 32];
    scrypt::scrypt(password.as_bytes(), &salt, &params, &mut derived).map_err(|e| anyhow::anyhow!("scrypt: {e}"))?;
    let mut ciphertext = signer.to_bytes().to_vec();
    ctr::Ctr128BE::<aes::Aes128>::new((&derived[..16]).into(), (&iv).into()).apply_keystream(&mut ciphertext);
    let mac = alloy_primitives::keccak256([&derived[16..], &ciphertext[..]].concat());
    // A random (version 4) UUID.
    id[6] = (id[6] & 0x0f) | 0x40;
    id[8] = (id[8] & 0x3f) | 0x80;
    let hex = |bytes: &[u8]| alloy_primitives::hex::encode(bytes);
    let uuid = format!("{}-{}-{}-{}-{}", hex(&id[..4]), hex(&id[4..6]), hex(&id[6..8]), hex(&id[8..10]), hex(&id[10..]));
    let document = serde_json::json!({
        "address": hex(signer.address().as_slice()),
        "crypto": {
            "cipher": "aes-128-ctr",
            "cipherparams": { "iv": hex(&iv) },
            "ciphertext": hex(&ciphertext),
            "kdf": "scrypt",
            "kdfparams": { "dklen": 32, "n": 1u64 << log_n, "p": 1, "r": 8, "salt": hex(&salt) },
            "mac": hex(mac.as_slice()),
        },
        "id": uuid,
        "version": 3,
    });
    let path = dir.join(format!("{:#x}.json", signer.address()));
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)
        .with_context(|| format!("creating {} (a keystore for this key exists already?)", path.display()))?;
    file.write_all(serde_json::to_string_pretty(&document)?.as_bytes())?;
    file.sync_all()?;
    Ok(path)
}

/// The signer of signed coordinator requests and receipts for the same key.
pub fn protocol_signer(signer: &PrivateKeySigner) -> qor_protocol::eip712::Signer {
    qor_protocol::eip712::Signer::from_bytes(&signer.to_bytes()).expect("a valid signer's key is a valid key")
}
