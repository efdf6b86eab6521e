//! `qor-worker`: the provider's binary. Parses arguments and calls into the library.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use alloy::signers::local::PrivateKeySigner;
use alloy_primitives::{Address, U256};
use anyhow::{Context, bail};
use clap::{Args, Parser, Subcommand};
use qor_protocol::bindings::IProviderRegistry::ProviderMetadata;
use qor_worker::chain::Chain;
use qor_worker::client::Coordinator;
use qor_worker::config::{self, WorkerConfig, format_ether, parse_amount};
use qor_worker::daemon::{Daemon, DaemonConfig};
use qor_worker::hosting::Hosting;
use qor_worker::keys::{self, Passphrase};
use serde_json::json;

#[derive(Debug, Parser)]
#[command(name = "qor-worker", version, about = "QOR provider worker: run verified compute and host files for pay")]
struct Cli {
    /// Config file.
    #[arg(long, global = true, env = "QOR_WORKER_CONFIG", default_value = config::DEFAULT_PATH)]
    config: PathBuf,
    /// A file holding the keystore passphrase (else `QOR_WORKER_PASSPHRASE`, else a prompt).
    #[arg(long, global = true)]
    passphrase_file: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Create the config file and the provider key (or import one).
    Init(InitArgs),
    /// Register in the ProviderRegistry with a stake, and check in with the coordinator.
    Register {
        /// Stake to lock, e.g. `1ether` (at least the registry's minimum).
        #[arg(long)]
        stake: String,
    },
    /// Stake: add more, start a withdrawal (unbonding), or withdraw what has unbonded.
    Stake {
        #[command(subcommand)]
        action: StakeAction,
    },
    /// Withdraw earnings credited in the escrow.
    Withdraw {
        /// Token (default: ETH).
        #[arg(long, default_value_t = Address::ZERO)]
        token: Address,
    },
    /// Run the daemon: take jobs, host files, answer challenges.
    Run {
        /// Seconds running jobs may finish after SIGTERM before their leases are released.
        #[arg(long, default_value = "30")]
        grace_secs: u64,
        /// Test fault: report a corrupted digest for every job (a byzantine provider, for the
        /// end-to-end tests and the devnet's `--byzantine`).
        #[arg(long, hide = true)]
        fault_corrupt_digest: bool,
    },
    /// Stake, counters, balances, jobs in flight, storage used and earnings by day.
    Status {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Run one job locally in the deterministic sandbox and print its outcome as JSON.
    Exec(qor_worker::exec::ExecArgs),
    /// Compile one module within a memory cap (the worker runs this in a child process).
    #[command(hide = true)]
    CompileModule(qor_worker::compile::CompileModuleArgs),
}

#[derive(Debug, Args)]
struct InitArgs {
    /// The market's deployment file (`anvil/deploy.sh` writes `deployments/<chainId>.json`; `qor
    /// devnet` writes `deployment.json` in its folder): pinned in the config, so stake and earnings go
    /// only to these contracts, whatever a coordinator says.
    #[arg(long)]
    deployment: PathBuf,
    /// Coordinator URL.
    #[arg(long, default_value = "http://127.0.0.1:8645")]
    coordinator: String,
    /// Chain RPC URL.
    #[arg(long, default_value = "http://127.0.0.1:8545")]
    rpc_url: String,
    /// Data folder.
    #[arg(long, default_value = "qor-worker-data")]
    data_dir: PathBuf,
    /// Asking price, wei per unit of fuel.
    #[arg(long, default_value = "1")]
    price_per_fuel: String,
    /// Jobs at once.
    #[arg(long, default_value = "2")]
    max_jobs: u32,
    /// Disk for hosted files, e.g. `10GiB` or bytes.
    #[arg(long, default_value = "10GiB")]
    storage_quota: String,
    /// Region tag.
    #[arg(long, default_value = "local")]
    region: String,
    /// Keep the key in `QOR_WORKER_KEY` (automation) instead of a keystore.
    #[arg(long)]
    key_from_env: bool,
    /// Import this hex private key into the keystore (else a new key is generated).
    #[arg(long, env = "QOR_WORKER_IMPORT_KEY", hide_env_values = true)]
    import_key: Option<String>,
    /// Overwrite an existing config.
    #[arg(long)]
    force: bool,
}

#[derive(Debug, Subcommand)]
enum StakeAction {
    /// Add stake.
    Add {
        /// Amount, e.g. `0.5ether`.
        amount: String,
    },
    /// Start unbonding `amount` (withdrawable after the registry's delay).
    Unbond {
        /// Amount, e.g. `0.5ether`.
        amount: String,
    },
    /// Withdraw stake that has finished unbonding.
    Withdraw,
}

fn parse_size(text: &str) -> anyhow::Result<u64> {
    let t = text.trim();
    let (n, mult) = [("TiB", 1u64 << 40), ("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10), ("B", 1)]
        .iter()
        .find_map(|(suffix, m)| t.strip_suffix(suffix).map(|n| (n.trim(), *m)))
        .unwrap_or((t, 1));
    let n: u64 = n.parse().with_context(|| format!("`{text}` is not a size (e.g. 10GiB, 512MiB, 1000000)"))?;
    n.checked_mul(mult).with_context(|| format!("`{text}` is too large"))
}

struct Loaded {
    cfg: WorkerConfig,
    signer: PrivateKeySigner,
    coordinator: Coordinator,
}

fn load(cli: &Cli) -> anyhow::Result<Loaded> {
    let cfg = WorkerConfig::load(&cli.config)?;
    let signer = keys::load(cfg.keystore.as_deref(), &Passphrase { file: cli.passphrase_file.clone() })?;
    let coordinator = Coordinator::new(cfg.coordinator_base(), keys::protocol_signer(&signer));
    Ok(Loaded { cfg, signer, coordinator })
}

/// The chain of the pinned deployment, once the RPC and the coordinator agree with it. A coordinator
/// that cannot be reached says nothing to disagree with (staking needs only the chain); one that names
/// other contracts stops everything.
async fn chain_of(ctx: &Loaded) -> anyhow::Result<Chain> {
    let chain = Chain::connect(&ctx.cfg.rpc_url, ctx.signer.clone(), ctx.cfg.deployment).await?;
    match ctx.coordinator.chain().await {
        Ok(info) => qor_chain::pinned::check_coordinator(&ctx.cfg.coordinator, &ctx.cfg.deployment, &info.deployment())?,
        Err(e) => tracing::warn!(error = %e, "the coordinator cannot be reached; going on with the chain alone"),
    }
    Ok(chain)
}

fn metadata(cfg: &WorkerConfig) -> anyhow::Result<ProviderMetadata> {
    let price: u128 = cfg.price()?.try_into().map_err(|_| anyhow::anyhow!("`price-per-fuel` is above the registry's uint128"))?;
    Ok(ProviderMetadata { pricePerFuel: price, capacity: cfg.max_jobs, region: cfg.region.clone() })
}

fn init(cli: &Cli, args: &InitArgs) -> anyhow::Result<()> {
    let file = std::fs::read(&args.deployment).with_context(|| format!("reading --deployment {}", args.deployment.display()))?;
    let deployment =
        qor_protocol::deployment::Deployment::from_json(&file).with_context(|| format!("--deployment {}", args.deployment.display()))?;
    let mut cfg = config::defaults(args.data_dir.clone(), deployment);
    cfg.coordinator = args.coordinator.clone();
    cfg.rpc_url = args.rpc_url.clone();
    cfg.price_per_fuel = args.price_per_fuel.clone();
    cfg.max_jobs = args.max_jobs;
    cfg.storage_quota_bytes = parse_size(&args.storage_quota)?;
    cfg.region = args.region.clone();
    cfg.check()?;
    if cli.config.exists() && !args.force {
        bail!("{} exists; pass --force to overwrite it", cli.config.display());
    }
    let address = if args.key_from_env {
        let signer = keys::from_env()?.with_context(|| format!("--key-from-env: set `{}`", keys::KEY_ENV))?;
        signer.address()
    } else {
        let signer: PrivateKeySigner = match &args.import_key {
            Some(hex) => hex.trim().parse().context("--import-key is not a 32-byte hex private key")?,
            None => PrivateKeySigner::random(),
        };
        let dir = cli.config.parent().map_or_else(|| PathBuf::from("."), PathBuf::from).join("keystore");
        let path = keys::create_keystore(&dir, &signer, &Passphrase { file: cli.passphrase_file.clone() })?;
        cfg.keystore = Some(path);
        signer.address()
    };
    std::fs::create_dir_all(&cfg.data_dir).with_context(|| format!("creating {}", cfg.data_dir.display()))?;
    cfg.save(&cli.config, args.force)?;
    println!("provider {address:#x}");
    println!("config   {}", cli.config.display());
    if let Some(k) = &cfg.keystore {
        println!("keystore {}", k.display());
    }
    println!("next: fund {address:#x} with ETH, then `qor-worker register --stake <amount>`");
    Ok(())
}

async fn status(ctx: &Loaded, as_json: bool) -> anyhow::Result<()> {
    let chain = chain_of(ctx).await?;
    let reg = chain.registration().await?;
    let balance = chain.balance(Address::ZERO).await?;
    let wallet = chain.wallet_balance().await?;
    let earnings = chain.earnings().await?;
    let polled = ctx.coordinator.signed("GET", "/v1/worker/assignments?wait_ms=0", None).await.ok();
    let in_flight = polled.as_ref().and_then(|p| p["assignments"].as_array().map(Vec::len)).unwrap_or(0);
    let hosting = Hosting::open(&ctx.cfg.data_dir)?;
    let (used, hosted) = (hosting.used_bytes()?, hosting.list()?.len());
    let view = json!({
        "provider": ctx.signer.address(),
        "registration": reg,
        "withdrawable": { "ETH": balance.to_string() },
        "wallet": wallet.to_string(),
        "jobsInFlight": in_flight,
        "coordinatorReachable": polled.is_some(),
        "storage": { "usedBytes": used, "quotaBytes": ctx.cfg.storage_quota_bytes, "hostedDeals": hosted },
        "earnings": earnings,
    });
    if as_json {
        println!("{}", serde_json::to_string_pretty(&view)?);
        return Ok(());
    }
    println!("provider      {:#x}", ctx.signer.address());
    let state = if reg.active {
        "active"
    } else if reg.registered {
        "registered (stake below minimum)"
    } else {
        "not registered"
    };
    println!("registry      {state}; stake {} (minimum {})", format_ether(reg.stake), format_ether(reg.min_stake));
    if !reg.unbonding.is_zero() {
        println!("unbonding     {} until unix {}", format_ether(reg.unbonding), reg.unbonding_ends_at);
    }
    if reg.open_deals != 0 || reg.locked_until != 0 {
        println!(
            "obligations   stake held until unix {} and while {} storage deal(s) run; {} reserved as their collateral",
            reg.locked_until,
            reg.open_deals,
            format_ether(reg.collateral)
        );
    }
    println!("record        {} completed, {} failed, {} slashed", reg.completed, reg.failed, reg.slashed);
    println!("withdrawable  {} (wallet {})", format_ether(balance), format_ether(wallet));
    println!("queued        {} in settled batches still in their challenge window", format_ether(earnings.queued));
    println!("in flight     {in_flight} job(s){}", if polled.is_some() { "" } else { " (coordinator unreachable)" });
    println!("storage       {hosted} deal(s), {used} of {} bytes", ctx.cfg.storage_quota_bytes);
    if earnings.by_day.is_empty() {
        println!("earnings      none credited yet");
    }
    for (day, amount) in &earnings.by_day {
        println!("earned {day}  {}", format_ether(*amount));
    }
    Ok(())
}

async fn run(ctx: Loaded, grace: Duration, corrupt_digest: bool) -> anyhow::Result<()> {
    let chain = Chain::connect(&ctx.cfg.rpc_url, ctx.signer.clone(), ctx.cfg.deployment).await?;
    // Wait for the coordinator (it may be starting too), and work for it only if it names the pinned
    // deployment.
    let mut attempt = 0u32;
    let info = loop {
        match ctx.coordinator.chain().await {
            Ok(info) => break info,
            Err(e) => {
                attempt += 1;
                tracing::warn!(error = %e, "waiting for the coordinator");
                tokio::time::sleep(Duration::from_millis((500u64 << attempt.min(5)).min(10_000))).await;
            }
        }
    };
    qor_chain::pinned::check_coordinator(&ctx.cfg.coordinator, &ctx.cfg.deployment, &info.deployment())?;
    let cfg = DaemonConfig {
        data_dir: ctx.cfg.data_dir.clone(),
        max_jobs: ctx.cfg.max_jobs as usize,
        storage_quota_bytes: ctx.cfg.storage_quota_bytes,
        max_deal_blocks: ctx.cfg.max_deal_blocks,
        grace,
        heartbeat: Duration::from_secs(10),
        progress: std::io::IsTerminal::is_terminal(&std::io::stderr()),
        corrupt_digest,
        compiler: Some(qor_worker::compile::Compiler::new(
            std::env::current_exe().context("the worker's own binary, to compile modules with")?,
            ctx.cfg.compile_bounds(),
        )),
        preload_runtimes: ctx.cfg.preload_runtimes.then(qor_worker::runtime::default_dir).flatten(),
    };
    let daemon = Daemon::new(cfg, ctx.coordinator, chain, keys::protocol_signer(&ctx.signer))?;
    let stop = daemon.shutdown.clone();
    tokio::spawn(async move {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).expect("a SIGTERM handler installs");
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
        tracing::info!("shutting down: finishing running jobs");
        stop.cancel();
    });
    daemon.run().await
}

async fn main_async(cli: Cli) -> anyhow::Result<()> {
    match &cli.command {
        Command::Init(args) => init(&cli, args),
        Command::Register { stake } => {
            let ctx = load(&cli)?;
            let stake = parse_amount(stake)?;
            let chain = chain_of(&ctx).await?;
            let reg = chain.registration().await?;
            let tx = if reg.registered {
                println!("already registered; updating price, capacity and region");
                chain.update_metadata(metadata(&ctx.cfg)?).await?
            } else {
                if stake < reg.min_stake {
                    bail!("--stake {} is below the registry's minimum of {}", format_ether(stake), format_ether(reg.min_stake));
                }
                chain.register(stake, metadata(&ctx.cfg)?).await?
            };
            println!("on chain: {tx:#x}");
            // The coordinator sees the registration after its confirmations; wait for it briefly.
            for attempt in 0..60 {
                match ctx.coordinator.signed("POST", "/v1/worker/register", Some(&json!({}))).await {
                    Ok(v) => {
                        println!("coordinator: registered with stake {} wei, capacity {}", v["stake"], v["capacity"]);
                        return Ok(());
                    }
                    Err(e) if e.code() == Some("provider_not_registered") && attempt < 59 => {
                        tokio::time::sleep(Duration::from_millis(500)).await;
                    }
                    Err(e) => bail!("the coordinator did not take the registration: {e}"),
                }
            }
            Ok(())
        }
        Command::Stake { action } => {
            let ctx = load(&cli)?;
            let chain = chain_of(&ctx).await?;
            let tx = match action {
                StakeAction::Add { amount } => chain.add_stake(parse_amount(amount)?).await?,
                StakeAction::Unbond { amount } => chain.request_stake_withdrawal(parse_amount(amount)?).await?,
                StakeAction::Withdraw => chain.withdraw_stake().await?,
            };
            let reg = chain.registration().await?;
            println!("on chain: {tx:#x}; stake {}, unbonding {}", format_ether(reg.stake), format_ether(reg.unbonding));
            Ok(())
        }
        Command::Withdraw { token } => {
            let ctx = load(&cli)?;
            let chain = chain_of(&ctx).await?;
            let amount = chain.balance(*token).await?;
            if amount == U256::ZERO {
                bail!("nothing to withdraw in token {token:#x}");
            }
            let tx = chain.withdraw(*token).await?;
            println!("withdrew {} ({amount} wei): {tx:#x}", format_ether(amount));
            Ok(())
        }
        Command::Run { grace_secs, fault_corrupt_digest } => {
            run(load(&cli)?, Duration::from_secs(*grace_secs), *fault_corrupt_digest).await
        }
        Command::Status { json } => status(&load(&cli)?, *json).await,
        Command::Exec(args) => {
            // The sandbox drives WASI's own runtime: run it off the async threads.
            let args = args.clone();
            let run = tokio::task::spawn_blocking(move || qor_worker::exec::exec(&args)).await??;
            match run.cache {
                Some(qor_worker::cache::CacheStatus::Hit) => eprintln!("module: from the module cache"),
                Some(qor_worker::cache::CacheStatus::Compiled) => eprintln!("module: compiled (and kept in the module cache)"),
                None => {}
            }
            if !run.stderr.is_empty() {
                eprintln!("--- the module's stderr ({} bytes kept) ---", run.stderr.len());
                eprintln!("{}", String::from_utf8_lossy(&run.stderr));
                eprintln!("---");
            }
            println!("{}", serde_json::to_string_pretty(&run.outcome)?);
            Ok(())
        }
        Command::CompileModule(_) => unreachable!("handled before the runtime starts"),
    }
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()))
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let cli = Cli::parse();
    if let Command::CompileModule(args) = &cli.command {
        return ExitCode::from(qor_worker::compile::compile_module(args) as u8);
    }
    let runtime = tokio::runtime::Runtime::new().expect("a tokio runtime starts");
    match runtime.block_on(main_async(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("qor-worker: {e:#}");
            ExitCode::from(2)
        }
    }
}
