//! `qor-verifier`: a committee member's service. `init` writes the config (and optionally a
//! keystore); `run` verifies until SIGTERM or Ctrl-C.

use std::path::PathBuf;
use std::process::ExitCode;

use alloy::signers::local::PrivateKeySigner;
use anyhow::Context;
use clap::{Parser, Subcommand};
use qor_verifier::config::{self, VerifierConfig};
use qor_verifier::service::Service;

/// Environment variable holding the committee key (hex); it overrides the keystore.
const KEY_ENV: &str = "QOR_VERIFIER_KEY";
/// Environment variable holding the keystore passphrase.
const PASSPHRASE_ENV: &str = "QOR_VERIFIER_PASSPHRASE";

#[derive(Debug, Parser)]
#[command(name = "qor-verifier", version, about = "QOR verifier: check replicas and storage proofs, settle on chain in batches")]
struct Cli {
    /// Config file.
    #[arg(long, global = true, env = "QOR_VERIFIER_CONFIG", default_value = config::DEFAULT_PATH)]
    config: PathBuf,
    #[command(subcommand)]
    command: Command,
}

// Parsed once at start: the size of `Init` costs nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
enum Command {
    /// Write the config file.
    Init {
        /// The market's deployment file (`deployments/<chainId>.json` from `anvil/deploy.sh`): pinned in
        /// the config, so the verifier signs only for these contracts.
        #[arg(long)]
        deployment: PathBuf,
        /// The coordinator's base URL.
        #[arg(long)]
        coordinator: String,
        /// The chain's JSON-RPC URL.
        #[arg(long)]
        rpc_url: String,
        /// Where `/health` and `/metrics` are served.
        #[arg(long)]
        listen: Option<std::net::SocketAddr>,
        /// Where re-executions run.
        #[arg(long)]
        work_dir: Option<PathBuf>,
        /// A v3 keystore holding the committee key (else `QOR_VERIFIER_KEY` at run time).
        #[arg(long)]
        keystore: Option<PathBuf>,
        /// Settlements per transaction at most.
        #[arg(long)]
        batch_size: Option<usize>,
        /// Milliseconds a verdict waits for its batch to fill.
        #[arg(long)]
        batch_max_wait_ms: Option<u64>,
        /// Fraction of jobs to re-run as a spot check (0 to 1).
        #[arg(long)]
        reexec_fraction: Option<f64>,
        /// Polling interval, milliseconds.
        #[arg(long)]
        poll_ms: Option<u64>,
        /// Overwrite an existing config.
        #[arg(long)]
        force: bool,
    },
    /// Verify until SIGTERM or Ctrl-C.
    Run,
}

fn key(cfg: &VerifierConfig) -> anyhow::Result<PrivateKeySigner> {
    if let Ok(hex) = std::env::var(KEY_ENV) {
        return hex.trim().parse().with_context(|| format!("`{KEY_ENV}` is not a 32-byte hex private key"));
    }
    let Some(path) = &cfg.keystore else { anyhow::bail!("no key: set `{KEY_ENV}`, or `keystore` in the config") };
    let password = match std::env::var(PASSPHRASE_ENV) {
        Ok(p) => p,
        Err(_) => rpassword::prompt_password("keystore passphrase: ").context("reading the passphrase")?,
    };
    PrivateKeySigner::decrypt_keystore(path, password).with_context(|| format!("decrypting {} (wrong passphrase?)", path.display()))
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Init {
            deployment,
            coordinator,
            rpc_url,
            listen,
            work_dir,
            keystore,
            batch_size,
            batch_max_wait_ms,
            reexec_fraction,
            poll_ms,
            force,
        } => {
            let file = std::fs::read(&deployment).with_context(|| format!("reading --deployment {}", deployment.display()))?;
            let pinned =
                qor_protocol::deployment::Deployment::from_json(&file).with_context(|| format!("--deployment {}", deployment.display()))?;
            let mut cfg = VerifierConfig::new(&coordinator, &rpc_url, pinned);
            cfg.keystore = keystore;
            if let Some(v) = listen {
                cfg.listen = v;
            }
            if let Some(v) = work_dir {
                cfg.work_dir = v;
            }
            if let Some(v) = batch_size {
                cfg.batch_size = v;
            }
            if let Some(v) = batch_max_wait_ms {
                cfg.batch_max_wait_ms = v;
            }
            if let Some(v) = reexec_fraction {
                cfg.reexec_fraction = v;
            }
            if let Some(v) = poll_ms {
                cfg.poll_ms = v;
            }
            cfg.check()?;
            cfg.save(&cli.config, force)?;
            println!("wrote {}", cli.config.display());
            Ok(())
        }
        Command::Run => {
            let cfg = VerifierConfig::load(&cli.config)?;
            let signer = key(&cfg)?;
            let listen = cfg.listen;
            let service = Service::connect(cfg, signer).await?;
            let listener = tokio::net::TcpListener::bind(listen).await.with_context(|| format!("listening on {listen}"))?;
            tracing::info!(addr = %listener.local_addr()?, "serving /health and /metrics");
            let http = qor_verifier::http::router(service.clone());
            tokio::spawn(async move {
                if let Err(e) = axum::serve(listener, http).await {
                    tracing::error!(error = %e, "the HTTP server stopped");
                }
            });
            service.run(shutdown()).await;
            Ok(())
        }
    }
}

async fn shutdown() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    tokio::select! {
        () = ctrl_c => {}
        () = term => {}
    }
    tracing::info!("shutting down");
}

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "qor_verifier=info".into()))
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let cli = Cli::parse();
    match run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("qor-verifier: {e:#}");
            ExitCode::FAILURE
        }
    }
}
