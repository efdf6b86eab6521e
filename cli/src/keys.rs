//! Whose key the buyer's commands sign with, and which deployment they act on. Both are the user's
//! own, never a coordinator's: the deployment comes from a file the user names (or the one `qor
//! devnet` wrote here), and the key from `QOR_BUYER_KEY`, a Foundry keystore (`--account NAME`) or a
//! keystore file (`--keystore PATH`). anvil's well-known buyer key is a default only on the devnet's
//! chain (id 31337), where it guards nothing; anywhere else the CLI refuses to guess. There is no
//! `--key` flag: a key on the command line shows in `ps`.

use std::path::{Path, PathBuf};

use alloy::signers::local::PrivateKeySigner;
use anyhow::{Context, bail};
use qor_protocol::deployment::Deployment;

use crate::accounts;

/// The environment variable holding the buyer's key (hex).
pub(crate) const KEY_ENV: &str = "QOR_BUYER_KEY";
/// The environment variable holding a keystore's password.
pub(crate) const PASSWORD_ENV: &str = "QOR_KEYSTORE_PASSWORD";
/// anvil's chain id: the devnet's.
pub(crate) const DEVNET_CHAIN_ID: u64 = 31337;
/// Where `qor devnet` (run here with its defaults) writes its deployment.
pub(crate) const DEVNET_DEPLOYMENT: &str = "qor-devnet/deployment.json";

/// The keystore options of a command.
#[derive(Debug, Clone, Default)]
pub(crate) struct KeySource {
    /// A Foundry keystore name.
    pub(crate) account: Option<String>,
    /// A keystore file.
    pub(crate) keystore: Option<PathBuf>,
    /// The keystore's password, first line of this file.
    pub(crate) password_file: Option<PathBuf>,
}

/// The deployment to act on: `file`, else the devnet's in this folder.
pub(crate) fn pinned_deployment(file: Option<&Path>) -> anyhow::Result<Deployment> {
    let path = match file {
        Some(p) => p.to_path_buf(),
        None if Path::new(DEVNET_DEPLOYMENT).is_file() => PathBuf::from(DEVNET_DEPLOYMENT),
        None => bail!(
            "no deployment pinned: pass --deployment <file> (or set QOR_DEPLOYMENT) with the market's deployments/<chainId>.json; \
             `qor devnet` writes {DEVNET_DEPLOYMENT}"
        ),
    };
    let bytes = std::fs::read(&path).with_context(|| format!("reading the deployment {}", path.display()))?;
    Deployment::from_json(&bytes).with_context(|| format!("the deployment {}", path.display()))
}

/// The buyer's signer for a market on `chain_id`.
pub(crate) fn buyer_key(source: &KeySource, chain_id: u64) -> anyhow::Result<PrivateKeySigner> {
    let home = std::env::var_os("HOME").map(PathBuf::from);
    key_from(source, chain_id, std::env::var(KEY_ENV).ok(), home.as_deref())
}

/// [`buyer_key`] with the environment given: the key variable's value and the home folder.
fn key_from(source: &KeySource, chain_id: u64, env_key: Option<String>, home: Option<&Path>) -> anyhow::Result<PrivateKeySigner> {
    if let Some(hex) = env_key {
        return hex.trim().parse().with_context(|| format!("`{KEY_ENV}` is not a 32-byte hex private key"));
    }
    let file = match (&source.account, &source.keystore) {
        (Some(name), _) => Some(foundry_keystore(home.context("--account: HOME is not set")?, name)?),
        (None, Some(path)) => Some(path.clone()),
        (None, None) => None,
    };
    if let Some(file) = file {
        let password = match &source.password_file {
            Some(p) => std::fs::read_to_string(p)
                .with_context(|| format!("reading {}", p.display()))?
                .lines()
                .next()
                .unwrap_or_default()
                .to_string(),
            None => match std::env::var(PASSWORD_ENV) {
                Ok(p) => p,
                Err(_) => rpassword::prompt_password(format!("password of {}: ", file.display())).context("reading the password")?,
            },
        };
        return PrivateKeySigner::decrypt_keystore(&file, password)
            .with_context(|| format!("decrypting {} (wrong password?)", file.display()));
    }
    if chain_id == DEVNET_CHAIN_ID {
        return Ok(accounts::KEYS[accounts::BUYER].parse()?);
    }
    bail!(
        "no key for chain {chain_id}: pass --account <name> (a Foundry keystore), --keystore <file>, or set {KEY_ENV}; \
         the devnet's well-known key is used only on chain {DEVNET_CHAIN_ID}"
    )
}

/// `~/.foundry/keystores/<name>`, which `cast wallet import <name>` writes.
fn foundry_keystore(home: &Path, name: &str) -> anyhow::Result<PathBuf> {
    if name.is_empty() || name.contains(['/', '\\']) || name.starts_with('.') {
        bail!("--account `{name}` is not a keystore name");
    }
    let path = home.join(".foundry/keystores").join(name);
    if !path.is_file() {
        bail!("--account {name}: no keystore at {} (`cast wallet import {name} --interactive` makes one)", path.display());
    }
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_devnet_key_is_a_default_only_on_the_devnets_chain() {
        let none = KeySource::default();
        let devnet = key_from(&none, DEVNET_CHAIN_ID, None, None).unwrap();
        assert_eq!(devnet.address(), accounts::address(accounts::BUYER));
        let err = key_from(&none, 1, None, None).unwrap_err().to_string();
        assert!(err.contains("no key for chain 1") && err.contains("--account") && err.contains(KEY_ENV), "{err}");
        // The environment's key wins on any chain.
        let key = key_from(&none, 1, Some(accounts::KEYS[5].into()), None).unwrap();
        assert_eq!(key.address(), accounts::address(5));
    }

    #[test]
    fn a_foundry_keystore_or_a_keystore_file_is_decrypted_with_its_password() {
        let home = tempfile::tempdir().unwrap();
        let dir = home.path().join(".foundry/keystores");
        let signer: PrivateKeySigner = accounts::KEYS[6].parse().unwrap();
        // A cheap scrypt cost: this tests the format, not the cost.
        let written = qor_worker::keys::write_keystore(&dir, &signer, "hunter2", 4).unwrap();
        std::fs::rename(&written, dir.join("alice")).unwrap();
        let password = home.path().join("password");
        std::fs::write(&password, "hunter2\n").unwrap();
        let by_name = KeySource { account: Some("alice".into()), password_file: Some(password.clone()), ..KeySource::default() };
        assert_eq!(key_from(&by_name, 1, None, Some(home.path())).unwrap().address(), signer.address());
        let by_path = KeySource { keystore: Some(dir.join("alice")), password_file: Some(password.clone()), ..KeySource::default() };
        assert_eq!(key_from(&by_path, 1, None, None).unwrap().address(), signer.address());
        std::fs::write(&password, "wrong\n").unwrap();
        assert!(format!("{:#}", key_from(&by_path, 1, None, None).unwrap_err()).contains("wrong password"));
        let missing = KeySource { account: Some("bob".into()), ..KeySource::default() };
        assert!(key_from(&missing, 1, None, Some(home.path())).unwrap_err().to_string().contains("cast wallet import bob"));
        let sneaky = KeySource { account: Some("../alice".into()), ..KeySource::default() };
        assert!(key_from(&sneaky, 1, None, Some(home.path())).unwrap_err().to_string().contains("not a keystore name"));
    }
}
