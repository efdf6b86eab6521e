//! The provider's config file (TOML), written by `qor-worker init` and read by every other command.

use std::path::{Path, PathBuf};

use alloy_primitives::U256;
use anyhow::Context;
use qor_protocol::deployment::Deployment;
use serde::{Deserialize, Serialize};

/// Default config path: `./qor-worker.toml`.
pub const DEFAULT_PATH: &str = "qor-worker.toml";

/// What a provider configures.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct WorkerConfig {
    /// The coordinator's base URL.
    pub coordinator: String,
    /// JSON-RPC endpoint of the chain.
    pub rpc_url: String,
    /// Where blobs, jobs, hosted files and compiled modules go.
    pub data_dir: PathBuf,
    /// Encrypted key (Ethereum keystore v3); absent when the key comes from `QOR_WORKER_KEY`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keystore: Option<PathBuf>,
    /// Asking price, wei per unit of fuel (decimal).
    pub price_per_fuel: String,
    /// Jobs run at once.
    pub max_jobs: u32,
    /// Disk the hosted storage files may take, bytes.
    pub storage_quota_bytes: u64,
    /// Longest storage deal taken, in blocks (periods × period length): a deal holds the stake until
    /// its last period is settled, so one that runs for decades would freeze it.
    #[serde(default = "default_max_deal_blocks")]
    pub max_deal_blocks: u64,
    /// Region tag shown to buyers.
    pub region: String,
    /// Most memory compiling one buyer's module may take, MiB (a module past it fails that job alone).
    #[serde(default = "default_compile_memory_mib")]
    pub compile_memory_mib: u64,
    /// Longest compiling one buyer's module may take, seconds.
    #[serde(default = "default_compile_secs")]
    pub compile_secs: u64,
    /// Download (once, from the registry each is pinned to) and compile the pinned runtimes
    /// (`qor_protocol::runtime`: CPython for `.py` jobs) when the worker starts, so a script job pays
    /// neither.
    #[serde(default = "yes")]
    pub preload_runtimes: bool,
    /// The market's chain and contracts, pinned at `init` from a deployment file: stake, earnings and
    /// slashes go only to these, whatever a coordinator says.
    pub deployment: Deployment,
}

const fn yes() -> bool {
    true
}

/// About a year of 12-second blocks.
const fn default_max_deal_blocks() -> u64 {
    2_628_000
}

fn default_compile_memory_mib() -> u64 {
    crate::compile::CompileBounds::default().memory_bytes >> 20
}

fn default_compile_secs() -> u64 {
    crate::compile::CompileBounds::default().time.as_secs()
}

impl WorkerConfig {
    /// The bounds on compiling a buyer's module.
    pub fn compile_bounds(&self) -> crate::compile::CompileBounds {
        crate::compile::CompileBounds {
            memory_bytes: self.compile_memory_mib << 20,
            time: std::time::Duration::from_secs(self.compile_secs),
        }
    }

    /// Reads and checks `path`.
    pub fn load(path: &Path) -> anyhow::Result<Self> {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {} (create it with `qor-worker init`)", path.display()))?;
        let cfg: Self = toml::from_str(&text).with_context(|| {
            format!(
                "{} is not a valid worker config{}",
                path.display(),
                if text.contains("[deployment]") {
                    ""
                } else {
                    " (it pins no deployment: run `qor-worker init --force --deployment <file>`)"
                }
            )
        })?;
        cfg.check().with_context(|| format!("in {}", path.display()))?;
        Ok(cfg)
    }

    /// Writes it to `path` (refusing to overwrite unless `force`).
    pub fn save(&self, path: &Path, force: bool) -> anyhow::Result<()> {
        if path.exists() && !force {
            anyhow::bail!("{} exists; pass --force to overwrite it", path.display());
        }
        let text = toml::to_string_pretty(self)?;
        std::fs::write(path, format!("# qor-worker config (see `qor-worker init --help`)\n{text}"))
            .with_context(|| format!("writing {}", path.display()))
    }

    /// The field that is wrong, if one is.
    pub fn check(&self) -> anyhow::Result<()> {
        for (field, url) in [("coordinator", &self.coordinator), ("rpc-url", &self.rpc_url)] {
            if !(url.starts_with("http://") || url.starts_with("https://")) {
                anyhow::bail!("`{field}` must be an http(s) URL, not `{url}`");
            }
        }
        self.price().context("`price-per-fuel` must be a decimal number of wei")?;
        if !(64..=1 << 20).contains(&self.compile_memory_mib) {
            anyhow::bail!("`compile-memory-mib` must be 64 to 1048576");
        }
        if !(1..=3600).contains(&self.compile_secs) {
            anyhow::bail!("`compile-secs` must be 1 to 3600");
        }
        if self.max_jobs == 0 || self.max_jobs > 1024 {
            anyhow::bail!("`max-jobs` must be 1 to 1024");
        }
        if self.region.is_empty() || self.region.len() > 32 {
            anyhow::bail!("`region` must be 1 to 32 characters");
        }
        Ok(())
    }

    /// The asking price.
    pub fn price(&self) -> anyhow::Result<U256> {
        Ok(U256::from_str_radix(&self.price_per_fuel, 10)?)
    }

    /// The coordinator URL without a trailing slash.
    pub fn coordinator_base(&self) -> &str {
        self.coordinator.trim_end_matches('/')
    }
}

/// Parses an amount of ether: `1.5ether`, `2eth`, `1000gwei` or plain wei (`1000`).
pub fn parse_amount(text: &str) -> anyhow::Result<U256> {
    let t = text.trim().to_ascii_lowercase();
    let (number, decimals) = if let Some(n) = t.strip_suffix("ether").or_else(|| t.strip_suffix("eth")) {
        (n, 18)
    } else if let Some(n) = t.strip_suffix("gwei") {
        (n, 9)
    } else {
        (t.strip_suffix("wei").unwrap_or(&t), 0)
    };
    let number = number.trim();
    let (whole, frac) = number.split_once('.').unwrap_or((number, ""));
    if whole.is_empty() && frac.is_empty() || !whole.chars().chain(frac.chars()).all(|c| c.is_ascii_digit()) {
        anyhow::bail!("`{text}` is not an amount (e.g. 1.5ether, 100gwei, 1000)");
    }
    if frac.len() > decimals {
        anyhow::bail!("`{text}` has more decimals than the unit allows");
    }
    let digits = format!("{whole}{frac:0<decimals$}");
    let digits = if digits.trim_start_matches('0').is_empty() { "0" } else { digits.trim_start_matches('0') };
    U256::from_str_radix(digits, 10).map_err(|_| anyhow::anyhow!("`{text}` is too large"))
}

/// Formats wei as ether with up to 6 decimals.
pub fn format_ether(wei: U256) -> String {
    let unit = U256::from(10u64).pow(U256::from(18));
    let whole = wei / unit;
    let frac = (wei % unit) / U256::from(1_000_000_000_000u64);
    let frac = format!("{:06}", frac.to::<u64>());
    let frac = frac.trim_end_matches('0');
    if frac.is_empty() { format!("{whole} ETH") } else { format!("{whole}.{frac} ETH") }
}

/// A config with defaults for a local devnet, on the pinned `deployment`.
pub fn defaults(data_dir: PathBuf, deployment: Deployment) -> WorkerConfig {
    WorkerConfig {
        coordinator: "http://127.0.0.1:8645".into(),
        rpc_url: "http://127.0.0.1:8545".into(),
        data_dir,
        keystore: None,
        price_per_fuel: "1".into(),
        max_jobs: 2,
        storage_quota_bytes: 10 << 30,
        max_deal_blocks: default_max_deal_blocks(),
        region: "local".into(),
        compile_memory_mib: default_compile_memory_mib(),
        compile_secs: default_compile_secs(),
        // A devnet's workers compile a runtime on its first job instead: three compiles at every
        // devnet start would cost every test that starts one.
        preload_runtimes: false,
        deployment,
    }
}
