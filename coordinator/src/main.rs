//! `qor-coordinator`: serves the API, follows the chain, matches jobs.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use qor_coordinator::chain::WatchConfig;
use qor_coordinator::{AppState, Config, chain, db, gc, matcher, router, server};

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
    /// Open connections at once, in all.
    #[arg(long, default_value = "4096")]
    max_connections: usize,
    /// Open connections at once from one IP address.
    #[arg(long, default_value = "256")]
    max_connections_per_ip: usize,
    /// Requests a second one IP address may make to the anonymous endpoints that write (specs, files
    /// to register, sign-in nonces); bursts of ten times as many.
    #[arg(long, default_value = "50")]
    writes_per_second_per_ip: u32,
    /// Bytes of blobs one account may upload that nothing funded references yet.
    #[arg(long, default_value = "2147483648")]
    max_unclaimed_bytes_per_account: u64,
    /// The same, for every account together.
    #[arg(long, default_value = "17179869184")]
    max_unclaimed_bytes: u64,
    /// How long an uploaded blob nothing references is kept, milliseconds.
    #[arg(long, default_value = "3600000")]
    blob_grace_ms: i64,
    /// How long a connection may take to send a request's headers (from its opening or from the end
    /// of its previous request), milliseconds.
    #[arg(long, default_value = "10000")]
    header_timeout_ms: u64,
    /// How long a request's body may take to arrive (an upload: without a byte), milliseconds.
    #[arg(long, default_value = "30000")]
    body_timeout_ms: u64,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()))
        .init();
    let args = Args::parse();
    let bytes = std::fs::read(&args.deployment).with_context(|| format!("reading {}", args.deployment.display()))?;
    let deployment = qor_protocol::deployment::Deployment::from_json(&bytes).with_context(|| format!("{}", args.deployment.display()))?;
    let start_block = deployment.deploy_block;
    let mut cfg = Config::new(deployment.chain_id, deployment.job_escrow, deployment.provider_registry);
    cfg.committee = deployment.verifier_committee;
    cfg.market = deployment.storage_market;
    cfg.deploy_block = start_block;
    cfg.siwe_domains = args.siwe_domains;
    cfg.limits.max_connections = args.max_connections;
    cfg.limits.max_connections_per_ip = args.max_connections_per_ip;
    cfg.limits.writes_per_second_per_ip = args.writes_per_second_per_ip;
    cfg.limits.write_burst_per_ip = args.writes_per_second_per_ip.saturating_mul(10);
    cfg.limits.max_unclaimed_bytes_per_account = args.max_unclaimed_bytes_per_account;
    cfg.limits.max_unclaimed_bytes = args.max_unclaimed_bytes;
    cfg.limits.blob_grace_ms = args.blob_grace_ms;
    cfg.limits.header_timeout_ms = args.header_timeout_ms;
    cfg.limits.body_timeout_ms = args.body_timeout_ms;
    if cfg.siwe_domains.is_empty() {
        tracing::warn!("no --siwe-domain: Sign-In with Ethereum is refused until one is configured");
    }
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

    tokio::spawn(gc::run(state.clone()));

    // A descriptor per connection: as many as the system lets this process have.
    let open_files = server::raise_open_file_limit().context("raising the open-file limit")?;
    let listener = tokio::net::TcpListener::bind(args.listen).await.with_context(|| format!("binding {}", args.listen))?;
    tracing::info!(addr = %listener.local_addr()?, open_files, "listening");
    let limits = state.cfg.limits.clone();
    server::serve(listener, router(state), &limits, open_files, async {
        let _ = tokio::signal::ctrl_c().await;
    })
    .await?;
    Ok(())
}
