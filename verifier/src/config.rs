//! The verifier's settings: a TOML file written by `qor-verifier init`. Every field but the two
//! endpoints has a default; an unknown or out-of-range field is an error that names it.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use qor_protocol::deployment::Deployment;
use serde::{Deserialize, Serialize};

/// Where `qor-verifier` looks for its config unless told otherwise.
pub const DEFAULT_PATH: &str = "qor-verifier.toml";

/// The verifier's config file.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct VerifierConfig {
    /// The coordinator's base URL.
    pub coordinator: String,
    /// The chain's JSON-RPC URL.
    pub rpc_url: String,
    /// Where `/health` and `/metrics` are served.
    #[serde(default = "default_listen")]
    pub listen: SocketAddr,
    /// The committee key's keystore (v3); `QOR_VERIFIER_KEY` overrides it.
    #[serde(default)]
    pub keystore: Option<PathBuf>,
    /// How often the coordinator and the chain are polled, in milliseconds.
    #[serde(default = "default_poll_ms")]
    pub poll_ms: u64,
    /// Settlements per transaction at most.
    #[serde(default = "default_batch_size")]
    pub batch_size: usize,
    /// The longest a verdict waits for its batch to fill, in milliseconds.
    #[serde(default = "default_batch_max_wait_ms")]
    pub batch_max_wait_ms: u64,
    /// Replicas a job may be escalated to before it is refunded (at most 9, the coordinator's cap).
    #[serde(default = "default_max_replicas")]
    pub max_replicas: u8,
    /// Fraction of jobs (0 to 1) the verifier re-runs itself; a mismatch counts as a losing replica.
    #[serde(default)]
    pub reexec_fraction: f64,
    /// Where re-executions run and their blobs are cached.
    #[serde(default = "default_work_dir")]
    pub work_dir: PathBuf,
    /// With a committee threshold above one: how long a proposal waits for the other members'
    /// signatures before it is retried, in milliseconds.
    #[serde(default = "default_cosign_timeout_ms")]
    pub cosign_timeout_ms: u64,
    /// Seconds to wait for a transaction's receipt before re-sending it with higher fees.
    #[serde(default = "default_receipt_timeout_secs")]
    pub receipt_timeout_secs: u64,
    /// Percent by which each re-send raises the fees (at least 10, what nodes require to replace).
    #[serde(default = "default_fee_bump_percent")]
    pub fee_bump_percent: u64,
    /// Sends of one transaction before giving up (each with higher fees).
    #[serde(default = "default_max_sends")]
    pub max_sends: u32,
    /// Finalize batches whose challenge window has closed (anyone may; it pays the providers).
    #[serde(default = "default_true")]
    pub finalize: bool,
    /// Challenge storage deals each period and attest the passed ones.
    #[serde(default = "default_true")]
    pub storage: bool,
    /// The market's chain and contracts, pinned at `init` from a deployment file: the verifier signs
    /// and sends only for these, whatever a coordinator says.
    pub deployment: Deployment,
}

fn default_listen() -> SocketAddr {
    "127.0.0.1:8745".parse().expect("a valid address")
}
fn default_poll_ms() -> u64 {
    500
}
fn default_batch_size() -> usize {
    50
}
fn default_batch_max_wait_ms() -> u64 {
    2_000
}
fn default_max_replicas() -> u8 {
    5
}
fn default_work_dir() -> PathBuf {
    PathBuf::from("qor-verifier-data")
}
fn default_cosign_timeout_ms() -> u64 {
    30_000
}
fn default_receipt_timeout_secs() -> u64 {
    30
}
fn default_fee_bump_percent() -> u64 {
    20
}
fn default_max_sends() -> u32 {
    5
}
fn default_true() -> bool {
    true
}

impl VerifierConfig {
    /// A config with every default, the two endpoints and the pinned deployment.
    pub fn new(coordinator: &str, rpc_url: &str, deployment: Deployment) -> Self {
        let text = format!("coordinator = {coordinator:?}\nrpc-url = {rpc_url:?}\n");
        let mut table: toml::Table = toml::from_str(&text).expect("the endpoints parse");
        table.insert("deployment".into(), toml::Value::try_from(deployment).expect("a deployment serializes"));
        table.try_into().expect("the defaults parse")
    }

    /// Reads and checks the file at `path`.
    pub fn load(path: &Path) -> anyhow::Result<Self> {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {} (create it with `qor-verifier init`)", path.display()))?;
        let config: Self = toml::from_str(&text).with_context(|| {
            format!(
                "{}{}",
                path.display(),
                if text.contains("[deployment]") {
                    ""
                } else {
                    " (it pins no deployment: run `qor-verifier init --force --deployment <file>`)"
                }
            )
        })?;
        config.check().with_context(|| format!("{}", path.display()))?;
        Ok(config)
    }

    /// Writes the file (refuses to overwrite unless `force`).
    pub fn save(&self, path: &Path, force: bool) -> anyhow::Result<()> {
        if path.exists() && !force {
            bail!("{} exists; pass --force to overwrite it", path.display());
        }
        std::fs::write(path, toml::to_string_pretty(self)?).with_context(|| format!("writing {}", path.display()))
    }

    /// Range checks, each naming its field.
    pub fn check(&self) -> anyhow::Result<()> {
        for (field, url) in [("coordinator", &self.coordinator), ("rpc-url", &self.rpc_url)] {
            if !(url.starts_with("http://") || url.starts_with("https://")) {
                bail!("`{field}` must be an http(s) URL, got `{url}`");
            }
        }
        if self.poll_ms == 0 {
            bail!("`poll-ms` must be at least 1");
        }
        if !(1..=256).contains(&self.batch_size) {
            bail!("`batch-size` must be 1 to 256 (a batch names at most 256 providers)");
        }
        if !(1..=9).contains(&self.max_replicas) {
            bail!("`max-replicas` must be 1 to 9");
        }
        if !(0.0..=1.0).contains(&self.reexec_fraction) {
            bail!("`reexec-fraction` must be between 0 and 1");
        }
        if self.fee_bump_percent < 10 {
            bail!("`fee-bump-percent` must be at least 10 (nodes refuse smaller replacements)");
        }
        if self.max_sends == 0 || self.receipt_timeout_secs == 0 {
            bail!("`max-sends` and `receipt-timeout-secs` must be at least 1");
        }
        Ok(())
    }

    /// The polling interval.
    pub fn poll(&self) -> Duration {
        Duration::from_millis(self.poll_ms)
    }

    /// The coordinator's base URL without a trailing slash.
    pub fn coordinator_base(&self) -> &str {
        self.coordinator.trim_end_matches('/')
    }
}
