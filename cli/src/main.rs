//! `qor`: the one-command devnet (`qor devnet --demo`) and the buyer's commands.

mod accounts;
mod demo;
mod devnet;
mod keys;
mod market;
mod quote;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use alloy_primitives::{Address, B256, U256, keccak256};
use alloy_sol_types::SolEvent;
use anyhow::{Context, anyhow, bail};
use clap::{Args, Parser, Subcommand};
use qor_protocol::bindings::{IJobEscrow, IStorageMarket};
use qor_protocol::spec::JobSpec;
use serde_json::{Value, json};

use crate::devnet::{Devnet, DevnetConfig};
use crate::market::{Market, ether, parse_amount};

#[derive(Debug, Parser)]
#[command(name = "qor", version, about = "QOR: verified compute and storage. `qor devnet --demo` shows the whole market on this machine")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Args)]
struct Conn {
    /// The coordinator.
    #[arg(long, env = "QOR_COORDINATOR", default_value = "http://127.0.0.1:8645", global = true)]
    coordinator: String,
    /// The chain's JSON-RPC URL.
    #[arg(long, env = "QOR_RPC_URL", default_value = "http://127.0.0.1:8545", global = true)]
    rpc_url: String,
    /// The market's deployment file, pinned for this command: money goes only to these contracts,
    /// whatever the coordinator says (`anvil/deploy.sh` writes `deployments/<chainId>.json`; default:
    /// `qor-devnet/deployment.json`, which `qor devnet` writes, when it exists).
    #[arg(long, env = "QOR_DEPLOYMENT", global = true)]
    deployment: Option<PathBuf>,
    /// The buyer's key: a Foundry keystore by name (`~/.foundry/keystores/<NAME>`, as `cast wallet
    /// import` makes).
    #[arg(long, global = true, conflicts_with = "keystore")]
    account: Option<String>,
    /// The buyer's key: a keystore file (v3).
    #[arg(long, global = true)]
    keystore: Option<PathBuf>,
    /// A file whose first line is the keystore's password (else `QOR_KEYSTORE_PASSWORD`, else a prompt).
    #[arg(long, global = true)]
    password_file: Option<PathBuf>,
    /// Print JSON (for scripts).
    #[arg(long, global = true)]
    json: bool,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Start anvil, the contracts, a coordinator, verifiers and workers on this machine.
    Devnet {
        /// Workers to start, each registered and staked (1 to 4).
        #[arg(long, default_value = "3")]
        workers: usize,
        /// Verifiers: 1, or 3 for a 2-of-3 committee.
        #[arg(long, default_value = "1")]
        verifiers: usize,
        /// Test fault: this many of the workers report corrupted digests.
        #[arg(long, default_value = "0", hide = true)]
        byzantine: usize,
        /// Run the guided demo once everything is up.
        #[arg(long)]
        demo: bool,
        /// With --demo: stop everything afterwards; exit 0 only if every step held.
        #[arg(long)]
        exit: bool,
        /// Seconds between settlement and release.
        #[arg(long, default_value = "20")]
        challenge_window: u64,
        /// Blocks on top of an event before the coordinator acts on it: a reorg this deep or less
        /// never reaches the market.
        #[arg(long, default_value = "2")]
        confirmations: u64,
        /// anvil's port.
        #[arg(long, default_value = "8545")]
        chain_port: u16,
        /// The coordinator's port (verifiers take the ones 100 above).
        #[arg(long, default_value = "8645")]
        coordinator_port: u16,
        /// Logs and data (emptied at start).
        #[arg(long, default_value = "qor-devnet")]
        data_dir: PathBuf,
        /// The built web app to serve (default: the repository's web/dist, when built).
        #[arg(long)]
        web_dir: Option<PathBuf>,
    },
    /// Compile one module within a memory cap (a quote runs this in a child process, as workers do).
    #[command(hide = true)]
    CompileModule(qor_worker::compile::CompileModuleArgs),
    /// Compute jobs.
    Job {
        #[command(subcommand)]
        action: JobAction,
        #[command(flatten)]
        conn: Conn,
    },
    /// Storage deals.
    Store {
        #[command(subcommand)]
        action: StoreAction,
        #[command(flatten)]
        conn: Conn,
    },
}

/// What a job runs and on how many replicas: shared by `job run` and `job quote`.
#[derive(Debug, Args)]
struct JobArgs {
    /// An input file, mounted at /in/<name>.
    #[arg(long = "input")]
    inputs: Vec<PathBuf>,
    /// An argument to the module (to the script, for a script).
    #[arg(long = "arg")]
    args: Vec<String>,
    /// Replicas.
    #[arg(long, default_value = "3")]
    redundancy: u8,
    /// The most fuel the job may take; the fuel limit is what the run here takes [default: no cap
    /// beyond the wall clock].
    #[arg(long)]
    fuel: Option<u64>,
    /// Linear memory limit, MiB [default: 64 for a module, 256 for a script].
    #[arg(long)]
    memory_mib: Option<u64>,
}

impl JobArgs {
    fn request<'a>(&'a self, program: &'a std::path::Path) -> quote::Request<'a> {
        quote::Request {
            program,
            inputs: &self.inputs,
            args: self.args.clone(),
            redundancy: self.redundancy,
            fuel: self.fuel.unwrap_or(quote::QUOTE_FUEL_CAP),
            memory_mib: self.memory_mib,
        }
    }
}

#[derive(Debug, Subcommand)]
enum JobAction {
    /// Run the job here first (the exact fuel it takes, priced against the live providers), then
    /// upload the module (and inputs), fund the job, follow it until settled, save the outputs.
    Run {
        /// The WebAssembly module (WASI preview 1), or a script QOR has a pinned runtime for (`.py`:
        /// CPython 3.12, the script at /in/<name>).
        program: PathBuf,
        #[command(flatten)]
        job: JobArgs,
        /// Budget, e.g. 0.01ether [default: the quote].
        #[arg(long)]
        budget: Option<String>,
        /// Preferred provider.
        #[arg(long)]
        provider: Option<Address>,
        /// With --wait: give up after this many seconds.
        #[arg(long, default_value = "3600")]
        timeout: u64,
        /// Wait until the job is settled on chain and save its outputs.
        #[arg(long)]
        wait: bool,
        /// Where outputs are written.
        #[arg(long, default_value = "qor-outputs")]
        out: PathBuf,
        /// Fund the job without running it here first (a job too long to run twice): `--fuel` is then
        /// its fuel limit, and `--budget` what it may cost.
        #[arg(long)]
        no_quote: bool,
    },
    /// The exact fuel and price of a job, before paying: runs it here in the workers' sandbox and prices
    /// it against the live providers' on-chain asking prices.
    Quote {
        /// The WebAssembly module, or a script QOR has a pinned runtime for (`.py`).
        program: PathBuf,
        #[command(flatten)]
        job: JobArgs,
    },
    /// A job's status and timeline.
    Status {
        /// The job id.
        id: U256,
    },
    /// Jobs, newest first.
    List {
        /// Only jobs in this status.
        #[arg(long)]
        status: Option<String>,
    },
    /// Hash it yourself: download the settled result (stdout and outputs), recompute its digest and
    /// compare with the one settled on chain.
    Verify {
        /// The job id.
        id: U256,
        /// Also re-run the job here, in the same deterministic sandbox, and compare.
        #[arg(long)]
        reexecute: bool,
    },
    /// Take back the budget of a job that passed its deadline unsettled.
    Reclaim {
        /// The job id.
        id: U256,
    },
}

#[derive(Debug, Subcommand)]
enum StoreAction {
    /// Store a file: upload it and fund a deal.
    Put {
        /// The file.
        file: PathBuf,
        /// Periods.
        #[arg(long, default_value = "4")]
        periods: u16,
        /// Blocks per period.
        #[arg(long, default_value = "4")]
        period_length: u32,
        /// Price per period, e.g. 0.0001ether.
        #[arg(long, default_value = "0.0001ether")]
        price: String,
        /// Chunks challenged each period (1 to 16): a provider missing a fraction f of the file passes
        /// a period with probability (1 - f)^challenges.
        #[arg(long, default_value = "4", value_parser = clap::value_parser!(u8).range(1..=16))]
        challenges: u8,
    },
    /// Cancel a deal: an open one at any time, an active one once its provider missed three periods in
    /// a row or is no longer active. The price of the periods left is credited back to you in the
    /// storage market (withdraw it from the web app's balances).
    Cancel {
        /// The deal id.
        deal: U256,
    },
    /// Drop a deal's provider (after three missed periods in a row, or once it is no longer active) and
    /// offer the periods left to another provider; the coordinator offers them to anyone but it.
    Reopen {
        /// The deal id.
        deal: U256,
    },
    /// A deal's status and challenge history.
    Status {
        /// The deal id.
        deal: U256,
    },
    /// Ask the deal's provider to prove one chunk now, and check the proof against the root on chain.
    Challenge {
        /// The deal id.
        deal: U256,
        /// The chunk to prove (default: one picked at random).
        #[arg(long)]
        chunk: Option<u64>,
        /// Seconds to wait for the provider's answer.
        #[arg(long, default_value = "60")]
        timeout: u64,
    },
    /// Download a stored file, checking every chunk against the deal's root on chain.
    Get {
        /// The deal id.
        deal: U256,
        /// Where to write it.
        #[arg(long, short)]
        out: PathBuf,
    },
}

fn print(conn: &Conn, value: &Value, text: impl FnOnce() -> String) {
    if conn.json {
        println!("{}", serde_json::to_string_pretty(value).unwrap_or_default());
    } else {
        println!("{}", text());
    }
}

async fn market(conn: &Conn) -> anyhow::Result<Market> {
    let deployment = keys::pinned_deployment(conn.deployment.as_deref())?;
    let source =
        keys::KeySource { account: conn.account.clone(), keystore: conn.keystore.clone(), password_file: conn.password_file.clone() };
    let key = keys::buyer_key(&source, deployment.chain_id)?;
    Market::connect(&conn.coordinator, &conn.rpc_url, key, deployment).await
}

/// One timeline entry as a line of `job run`'s progress: what happened, who did it, and the figures
/// that matter (digest, fuel, replicas, reasons).
fn progress_line(t: &Value) -> String {
    let kind = t["kind"].as_str().unwrap_or("?");
    let actor = t["actor"].as_str().unwrap_or("");
    let actor = actor.strip_prefix("worker:").map_or_else(|| actor.to_string(), |a| format!("provider {}", &a[..a.len().min(10)]));
    let d = &t["detail"];
    let mut facts = Vec::new();
    for (key, label) in [
        ("provider", "provider"),
        ("resultDigest", "digest"),
        ("fuelUsed", "fuel"),
        ("receipts", "receipts"),
        ("winners", "winners"),
        ("losers", "losers"),
        ("reason", "reason"),
        ("batchId", "batch"),
        ("budget", "budget"),
    ] {
        match &d[key] {
            Value::Null => {}
            Value::String(v) => facts.push(format!("{label} {v}")),
            v => facts.push(format!("{label} {v}")),
        }
    }
    format!("{kind:<16} {actor}{}{}", if facts.is_empty() { "" } else { "  " }, facts.join(", "))
}

async fn job_command(action: JobAction, conn: Conn) -> anyhow::Result<()> {
    let m = market(&conn).await?;
    match action {
        JobAction::Run { program, job, budget, provider, timeout, wait, out, no_quote } => {
            let (program, price) = if no_quote {
                let (Some(_), Some(_)) = (job.fuel, &budget) else {
                    bail!("--no-quote funds the job without running it here: give its --fuel limit and its --budget");
                };
                (quote::program(job.request(&program)).await?, U256::ZERO)
            } else {
                let quote = quote::quote(&m, job.request(&program)).await?;
                eprintln!("{}", quote.describe().1);
                (quote.program, quote.price)
            };
            let budget = match budget {
                Some(b) => parse_amount(&b)?,
                None => price,
            };
            if budget < price {
                bail!(
                    "the budget {} is below the quote {}: no provider set would take the job",
                    market::ether(budget),
                    market::ether(price)
                );
            }
            let spec = program.spec;
            m.put_blob_once(program.module).await?;
            for (_, bytes) in program.inputs {
                m.put_blob_once(bytes).await?;
            }
            m.post_spec(&spec).await?;
            let id = m.fund_job(&spec, budget, provider.unwrap_or_default(), 3_600).await?;
            if !conn.json {
                println!("job {id} funded (spec {})", spec.spec_hash());
            }
            if !wait {
                print(&conn, &json!({ "jobId": id.to_string(), "specHash": spec.spec_hash() }), || {
                    format!("follow it: qor job status {id}")
                });
                return Ok(());
            }
            // Progress goes to stderr, so `--json` output stays one document.
            let mut shown = 0;
            let status = m
                .follow(id, timeout, async |j: &Value| {
                    let timeline = j["timeline"].as_array().map_or(&[][..], Vec::as_slice);
                    for t in timeline.iter().skip(shown) {
                        eprintln!("  job {id}: {}", progress_line(t));
                    }
                    shown = shown.max(timeline.len());
                    let s = j["status"].as_str().unwrap_or("pending");
                    Ok(matches!(s, "settled" | "expired" | "reclaimed").then(|| j.clone()))
                })
                .await?;
            let saved = save_outputs(&m, id, &status, &out.join(id.to_string())).await?;
            print(&conn, &json!({ "jobId": id.to_string(), "status": status["status"], "outputs": saved }), || {
                format!("job {id}: {}; outputs in {}", status["status"].as_str().unwrap_or("?"), out.join(id.to_string()).display())
            });
        }
        JobAction::Quote { program, job } => {
            let (value, text) = quote::quote(&m, job.request(&program)).await?.describe();
            print(&conn, &value, || text);
        }
        JobAction::Status { id } => {
            let onchain = m.onchain_status(id).await?;
            let j = m.job(id).await.map_err(|e| match onchain {
                "none" => anyhow!("job {id} does not exist on chain"),
                s => anyhow!("job {id} is {s} on chain, but the coordinator has not applied it yet (it waits for confirmations; try again in a few seconds): {e}"),
            })?;
            let mut v = j.clone();
            v["onchain"] = json!(onchain);
            print(&conn, &v, || {
                let mut s = format!("job {id}: {} (escrow: {onchain})\n", j["status"].as_str().unwrap_or("?"));
                for t in j["timeline"].as_array().into_iter().flatten() {
                    s.push_str(&format!(
                        "  {} {:<10} {} {}\n",
                        t["at"],
                        t["kind"].as_str().unwrap_or(""),
                        t["actor"].as_str().unwrap_or(""),
                        t["detail"]
                    ));
                }
                s
            });
        }
        JobAction::List { status } => {
            let path = match &status {
                Some(s) => format!("/v1/jobs?status={s}"),
                None => "/v1/jobs".into(),
            };
            let j = m.get(&path).await?;
            print(&conn, &j, || {
                j["jobs"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|x| {
                        format!(
                            "{:>6} {:<10} {}",
                            x["jobId"].as_str().unwrap_or(""),
                            x["status"].as_str().unwrap_or(""),
                            x["specHash"].as_str().unwrap_or("")
                        )
                    })
                    .collect::<Vec<_>>()
                    .join("\n")
            });
        }
        JobAction::Verify { id, reexecute } => {
            let (settled, recomputed, files) = m.hash_it_yourself(id).await?;
            let mut report = json!({ "jobId": id.to_string(), "settledDigest": settled, "recomputed": recomputed, "files": files });
            if reexecute {
                let rerun = reexecute_job(&m, id).await?;
                report["reexecuted"] = json!(rerun);
                if rerun != settled {
                    bail!("job {id}: re-running it here gives {rerun}, the chain settled {settled}");
                }
            }
            print(&conn, &report, || {
                let mut s = format!("job {id}: stdout and {files} output files hash to {recomputed}, the digest settled on chain");
                if reexecute {
                    s.push_str("\n  re-run here in the same sandbox: the same digest");
                }
                s
            });
        }
        JobAction::Reclaim { id } => {
            let job = m.funded_job(id).await?;
            let r = m.chain.send(m.info.job_escrow, &IJobEscrow::reclaimCall { jobId: id, job }, "reclaim").await?;
            print(&conn, &json!({ "jobId": id.to_string(), "tx": r.transaction_hash }), || {
                format!("job {id} reclaimed: {}", r.transaction_hash)
            });
        }
    }
    Ok(())
}

/// Runs job `id` here in the workers' sandbox; returns its result digest. The spec run is the one the
/// job was funded with on chain, whatever the coordinator serves.
async fn reexecute_job(m: &Market, id: U256) -> anyhow::Result<B256> {
    let funded = m.funded_job(id).await?.specHash;
    let spec = m.get(&format!("/v1/specs/{funded}")).await?;
    let spec = JobSpec::from_json(&serde_json::to_vec(&spec["spec"])?).map_err(|e| anyhow!("the spec: {e}"))?;
    if spec.spec_hash() != funded {
        bail!("the coordinator's spec hashes to {}, job {id} was funded with {funded}; not running it", spec.spec_hash());
    }
    let dir = tempfile_dir(id)?;
    std::fs::create_dir_all(dir.join("in"))?;
    std::fs::create_dir_all(dir.join("out"))?;
    let module = m.blob(spec.module).await?;
    for input in &spec.inputs {
        let dest = dir.join("in").join(&input.path);
        if let Some(p) = dest.parent() {
            std::fs::create_dir_all(p)?;
        }
        std::fs::write(dest, m.blob(input.hash).await?)?;
    }
    let dir2 = dir.clone();
    let outcome = tokio::task::spawn_blocking(move || {
        qor_worker::sandbox::Sandbox::new().map_err(|e| anyhow!("the sandbox: {e}"))?.run(&spec, &module, &dir2).map_err(|e| anyhow!("{e}"))
    })
    .await??;
    let _ = std::fs::remove_dir_all(&dir);
    match outcome {
        qor_worker::sandbox::Outcome::Completed { result_digest, .. } => Ok(result_digest),
        qor_worker::sandbox::Outcome::Failed { failure, .. } => bail!("the re-run failed: {failure:?}"),
    }
}

fn tempfile_dir(id: U256) -> anyhow::Result<PathBuf> {
    let dir = std::env::temp_dir().join(format!("qor-rerun-{id}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

/// Downloads every output of the settled receipt into `dir`, checking each file's hash.
async fn save_outputs(m: &Market, id: U256, job: &Value, dir: &std::path::Path) -> anyhow::Result<Vec<Value>> {
    let Some(r) = job["receipts"].as_array().and_then(|r| r.first()) else { return Ok(vec![]) };
    std::fs::create_dir_all(dir)?;
    let mut saved = Vec::new();
    for o in r["outputs"].as_array().into_iter().flatten() {
        let (path, want) = (o["path"].as_str().unwrap_or_default(), o["hash"].as_str().unwrap_or_default().parse::<B256>()?);
        let url = format!("{}/v1/jobs/{id}/outputs/{}/{path}", m.base, r["worker"].as_str().unwrap_or_default());
        let bytes = m.download(&url, path).await?;
        if keccak256(&bytes) != want {
            bail!("{path}: the bytes hash to {}, the receipt says {want}", keccak256(&bytes));
        }
        let dest = dir.join(path);
        if let Some(p) = dest.parent() {
            std::fs::create_dir_all(p)?;
        }
        std::fs::write(&dest, &bytes)?;
        saved.push(json!({ "path": path, "hash": want, "bytes": bytes.len() }));
    }
    Ok(saved)
}

async fn store_command(action: StoreAction, conn: Conn) -> anyhow::Result<()> {
    let m = market(&conn).await?;
    match action {
        StoreAction::Put { file, periods, period_length, price, challenges } => {
            let bytes = std::fs::read(&file).with_context(|| format!("reading {}", file.display()))?;
            let price: u128 = parse_amount(&price)?.try_into().map_err(|_| anyhow!("--price is too large"))?;
            let (root, deal) = m.store(bytes, periods, period_length, price, challenges, Address::ZERO).await?;
            print(&conn, &json!({ "dealId": deal.to_string(), "root": root }), || {
                format!("deal {deal} funded: root {root}; follow it: qor store status {deal}")
            });
        }
        StoreAction::Get { deal, out } => {
            let d = m.get(&format!("/v1/storage/deals/{deal}")).await?;
            let blob: B256 =
                d["blobHash"].as_str().and_then(|h| h.parse().ok()).ok_or_else(|| anyhow!("deal {deal} has no file at the coordinator"))?;
            let onchain = m.onchain_deal(deal).await?;
            let bytes = m.blob(blob).await?;
            // The root from every chunk: a single changed byte anywhere changes it.
            let (root, size) = qor_protocol::merkle::root_from_reader(&bytes[..]).map_err(|e| anyhow!("{e}"))?;
            if root != onchain.merkleRoot || size != onchain.size {
                bail!(
                    "deal {deal}: the file's root is {root} ({size} bytes), the deal's is {} ({} bytes)",
                    onchain.merkleRoot,
                    onchain.size
                );
            }
            std::fs::write(&out, &bytes).with_context(|| format!("writing {}", out.display()))?;
            print(&conn, &json!({ "dealId": deal.to_string(), "root": root, "bytes": size, "path": out }), || {
                format!("deal {deal}: {size} bytes, every chunk checked against root {root}, written to {}", out.display())
            });
        }
        StoreAction::Challenge { deal, chunk, timeout } => {
            let onchain = m.onchain_deal(deal).await?;
            let chunks = qor_protocol::merkle::chunk_count(onchain.size);
            if onchain.provider.is_zero() || chunks == 0 {
                bail!("deal {deal} has no provider hosting it yet (status {})", onchain.status as u8);
            }
            let index = match chunk {
                Some(i) if i >= chunks => bail!("--chunk {i}: deal {deal} has {chunks} chunks (0 to {})", chunks - 1),
                Some(i) => i,
                None => {
                    let seed = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
                    let r = alloy_primitives::keccak256(format!("{seed}:{}", std::process::id()));
                    u64::from_be_bytes(r[..8].try_into().expect("8 bytes")) % chunks
                }
            };
            let started = std::time::Instant::now();
            let proof = m.probe(deal, index, timeout).await?;
            let took = started.elapsed();
            let ok = qor_protocol::merkle::verify(&onchain.merkleRoot, chunks, &proof);
            let report = json!({
                "dealId": deal.to_string(), "provider": onchain.provider, "chunkIndex": index, "chunks": chunks,
                "root": onchain.merkleRoot, "valid": ok, "answeredInMs": took.as_millis() as u64,
            });
            print(&conn, &report, || {
                format!(
                    "deal {deal}: provider {} proved chunk {index} of {chunks} in {} ms; the proof {} root {} on chain",
                    onchain.provider,
                    took.as_millis(),
                    if ok { "checks against" } else { "DOES NOT check against" },
                    onchain.merkleRoot
                )
            });
            if !ok {
                bail!("deal {deal}: the provider's proof of chunk {index} does not check against the deal's root");
            }
        }
        StoreAction::Cancel { deal } => {
            let r =
                m.chain.send(m.info.storage_market, &IStorageMarket::cancelStorageDealCall { dealId: deal }, "cancelStorageDeal").await?;
            let refund =
                r.inner.logs().iter().find_map(|l| IStorageMarket::StorageDealCancelled::decode_log(&l.inner).ok()).map(|e| e.data.refund);
            let status = m.onchain_deal(deal).await?.status;
            print(&conn, &json!({ "dealId": deal.to_string(), "refund": refund.map(|r| r.to_string()), "tx": r.transaction_hash }), || {
                match refund {
                    Some(refund) => format!(
                        "deal {deal} cancelled: {} of unearned periods credited back to you ({})",
                        ether(refund),
                        r.transaction_hash
                    ),
                    None => format!(
                        "deal {deal} ran to its end before it could be cancelled (status {}); its periods are settled",
                        status as u8
                    ),
                }
            });
        }
        StoreAction::Reopen { deal } => {
            let r =
                m.chain.send(m.info.storage_market, &IStorageMarket::reopenStorageDealCall { dealId: deal }, "reopenStorageDeal").await?;
            let reopened =
                r.inner.logs().iter().find_map(|l| IStorageMarket::StorageDealReopened::decode_log(&l.inner).ok()).map(|e| e.data);
            print(
                &conn,
                &json!({ "dealId": deal.to_string(), "tx": r.transaction_hash, "periodsLeft": reopened.as_ref().map(|e| e.periodsLeft.to::<u64>()) }),
                || match &reopened {
                    Some(e) => format!(
                        "deal {deal} re-opened: {:#x} dropped, {} period(s) offered to another provider ({})",
                        e.previousProvider, e.periodsLeft, r.transaction_hash
                    ),
                    None => format!("deal {deal} ran to its end before it could be re-opened; its periods are settled"),
                },
            );
        }
        StoreAction::Status { deal } => {
            let d = match m.get(&format!("/v1/storage/deals/{deal}")).await {
                Ok(d) => d,
                Err(e) => {
                    let onchain = m.onchain_deal(deal).await?;
                    if onchain.buyer.is_zero() {
                        bail!("storage deal {deal} does not exist on chain");
                    }
                    bail!(
                        "storage deal {deal} is funded on chain, but the coordinator has not applied it yet (it waits for confirmations; try again in a few seconds): {e}"
                    );
                }
            };
            print(&conn, &d, || {
                let mut s = format!(
                    "deal {deal}: {} (provider {})\n",
                    d["status"].as_str().unwrap_or("?"),
                    d["provider"].as_str().unwrap_or("none yet")
                );
                for c in d["challenges"].as_array().into_iter().flatten() {
                    s.push_str(&format!(
                        "  period {} chunks {}: {}\n",
                        c["period"],
                        c["chunkIndexes"],
                        c["status"].as_str().unwrap_or("?")
                    ));
                }
                s
            });
        }
    }
    Ok(())
}

async fn devnet_command(cfg: DevnetConfig, demo: bool, exit: bool) -> anyhow::Result<()> {
    if exit && !demo {
        bail!("--exit goes with --demo");
    }
    let mut net = Devnet::start(&cfg).await?;
    println!("{}", net.summary());
    if demo {
        let result = demo::run(&net).await;
        if let Err(e) = &result {
            eprintln!("\nqor devnet: the demo failed: {e:#}\n(logs in {})", net.data_dir.display());
        }
        if exit {
            net.stop();
            return result;
        }
    }
    println!("Ctrl-C stops everything.");
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    loop {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => break,
            _ = term.recv() => break,
            () = tokio::time::sleep(Duration::from_secs(1)) => { net.check(); }
        }
    }
    println!("stopping…");
    net.stop();
    Ok(())
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Devnet {
            workers,
            verifiers,
            byzantine,
            demo,
            exit,
            challenge_window,
            confirmations,
            chain_port,
            coordinator_port,
            data_dir,
            web_dir,
        } => {
            let cfg = DevnetConfig {
                workers,
                byzantine,
                verifiers,
                chain_port,
                coordinator_port,
                challenge_window,
                confirmations,
                data_dir,
                web_dir,
            };
            devnet_command(cfg, demo, exit).await
        }
        Command::Job { action, conn } => job_command(action, conn).await,
        Command::Store { action, conn } => store_command(action, conn).await,
        Command::CompileModule(args) => {
            // A child of this process, like `qor-worker compile-module`: nothing else to run here.
            let code = tokio::task::spawn_blocking(move || qor_worker::compile::compile_module(&args)).await.unwrap_or(3);
            return ExitCode::from(code as u8);
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("qor: {e:#}");
            ExitCode::FAILURE
        }
    }
}
