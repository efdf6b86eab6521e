//! `qor-coordinator`: serves the API, follows the chain, matches jobs.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use alloy_primitives::Address;
use anyhow::Context;
use clap::Parser;
use qor_coordinator::chain::WatchConfig;
use qor_coordinator::{AppState, Config, chain, db, matcher, router};

/// The QOR coordinator.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// SQLite database: a path or a `sqlite://` URL.
    #[arg(long, env = "QOR_DATABASE_URL", default_value = "qor-coordinator.db")]
    database_url: String,
    /// Folder for blobs.
    #[arg(long, env = "QOR_DATA_DIR", default_value = "qor-data")]
    data_dir: PathBuf,
    /// Address to listen on.
    #[arg(long, env = "QOR_LISTEN", default_value = "127.0.0.1:8645")]
    listen: SocketAddr,
    /// JSON-RPC endpoint of the chain.
    #[arg(long, env = "QOR_RPC_URL", default_value = "http://127.0.0.1:8545")]
    rpc_url: String,
    /// Deployment file written by anvil/deploy.sh (chainId, deployBlock, jobEscrow, providerRegistry,
    /// verifierCommittee).
    #[arg(long, env = "QOR_DEPLOYMENT")]
    deployment: PathBuf,
    /// Confirmations before an event is applied.
    #[arg(long, default_value = "0")]
    confirmations: u64,
    /// Chain poll interval, milliseconds.
    #[arg(long, default_value = "500")]
    poll_ms: u64,
    /// Lease length beyond a job's wall-clock limit, milliseconds.
    #[arg(long, default_value = "60000")]
    lease_ms: i64,
    /// Heartbeat age after which a provider is not live, milliseconds.
    #[arg(long, default_value = "30000")]
    heartbeat_ttl_ms: i64,
    /// Host a Sign-In with Ethereum message must name (repeatable; default: the request's `Host`).
    #[arg(long = "siwe-domain", env = "QOR_SIWE_DOMAIN")]
    siwe_domains: Vec<String>,
    /// The chain's JSON-RPC URL for browsers (the web app reads the chain there; default: `--rpc-url`).
    #[arg(long, env = "QOR_PUBLIC_RPC_URL")]
    public_rpc_url: Option<String>,
    /// WalletConnect (Reown) project id for the web app; without one its WalletConnect button says so.
    #[arg(long, env = "QOR_WALLETCONNECT_PROJECT_ID")]
    walletconnect_project_id: Option<String>,
    /// The built web app to serve at `/` (`web/dist` after `npm --prefix web run build`).
    #[arg(long, env = "QOR_WEB_DIR")]
    web_dir: Option<PathBuf>,
    /// Largest blob, bytes.
    #[arg(long, default_value = "1073741824")]
    max_blob_bytes: u64,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()))
        .init();
    let args = Args::parse();
    let deployment: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&args.deployment).with_context(|| format!("reading {}", args.deployment.display()))?)
            .with_context(|| format!("{} is not JSON", args.deployment.display()))?;
    let field = |k: &str| -> anyhow::Result<Address> {
        deployment[k].as_str().and_then(|s| s.parse().ok()).with_context(|| format!("deployment file: `{k}` is not an address"))
    };
    let chain_id = deployment["chainId"].as_u64().context("deployment file: `chainId` is not a number")?;
    let start_block = deployment["deployBlock"].as_u64().unwrap_or(0);
    let mut cfg = Config::new(chain_id, field("jobEscrow")?, field("providerRegistry")?);
    cfg.committee = field("verifierCommittee")?;
    cfg.deploy_block = start_block;
    cfg.siwe_domains = args.siwe_domains;
    cfg.lease_ms = args.lease_ms;
    cfg.heartbeat_ttl_ms = args.heartbeat_ttl_ms;
    cfg.max_blob_bytes = args.max_blob_bytes;
    cfg.public_rpc_url = Some(args.public_rpc_url.unwrap_or_else(|| args.rpc_url.clone()));
    cfg.walletconnect_project_id = args.walletconnect_project_id.filter(|id| !id.trim().is_empty());
    cfg.confirmations = args.confirmations;
    if let Some(dir) = &args.web_dir
        && !dir.join("index.html").is_file()
    {
        anyhow::bail!("--web-dir {}: no index.html there; build the web app with `npm --prefix web run build`", dir.display());
    }
    cfg.web_dir = args.web_dir;

    let pool = db::open(&args.database_url).await.with_context(|| format!("opening {}", args.database_url))?;
    let state = AppState::new(pool, &args.data_dir, cfg).with_context(|| format!("opening {}", args.data_dir.display()))?;
    let watch = WatchConfig {
        rpc_url: args.rpc_url,
        confirmations: args.confirmations,
        start_block,
        batch_blocks: 2000,
        poll_interval: Duration::from_millis(args.poll_ms),
    };
    tokio::spawn(chain::run(state.clone(), watch));
    tokio::spawn(matcher::run(state.clone()));

    let listener = tokio::net::TcpListener::bind(args.listen).await.with_context(|| format!("binding {}", args.listen))?;
    tracing::info!(addr = %listener.local_addr()?, "listening");
    axum::serve(listener, router(state))
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
    Ok(())
}
