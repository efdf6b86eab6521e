//! The guided demo: one loop of the market, narrated. A buyer funds two compute jobs (three replicas
//! each) and a storage deal for the first job's output; providers take them, receipts come in with
//! their digests, the artifact is pinned, a storage challenge passes, the committee settles, the
//! challenge window passes, the money is released. It ends by withdrawing every balance and checking
//! the end state: both jobs released, nothing left in escrow, 90% of the price to the providers and
//! 10% to the treasury. Every check that fails stops the demo with an error.

use std::collections::BTreeMap;

use alloy::providers::Provider;
use alloy::rpc::types::Filter;
use alloy_primitives::{Address, B256, U256};
use alloy_sol_types::SolEvent;
use anyhow::{Context, anyhow, bail, ensure};
use qor_protocol::bindings::{IJobEscrow, IStorageMarket};
use qor_protocol::spec::{JobSpec, Limits};
use qor_verifier::chain::{Chain, SendPolicy};
use serde_json::Value;

use crate::accounts::{self, KEYS};
use crate::devnet::{Devnet, repo_root};
use crate::market::{Market, ether};

fn step(n: u32, text: &str) {
    println!("\n[{n}/9] {text}");
}

fn hello() -> anyhow::Result<Vec<u8>> {
    let path = repo_root()?.join("examples/jobs/target/wasm32-wasip1/release/hello.wasm");
    std::fs::read(&path).with_context(|| format!("{} (build the examples: ./devnet.sh does)", path.display()))
}

fn spec(module: B256, arg: &str) -> JobSpec {
    JobSpec {
        version: 1,
        module,
        entry: "_start".into(),
        args: vec![arg.into()],
        env: Default::default(),
        inputs: vec![],
        limits: Limits { fuel: 50_000_000, memory_bytes: 16 << 20, output_bytes: 1 << 20, wall_clock_ms: 10_000 },
        redundancy: 3,
    }
}

/// Runs the demo on `net`; `Ok` only if every step held.
pub(crate) async fn run(net: &Devnet) -> anyhow::Result<()> {
    let buyer = KEYS[accounts::BUYER].parse()?;
    let m = Market::connect(&net.coordinator, &net.rpc_url, buyer, net.pinned).await?;
    let escrow = m.info.job_escrow;
    let node = m.chain.provider().clone();
    let params = m.chain.call(escrow, IJobEscrow::paramsCall {}).await?;

    step(1, "The buyer uploads a WebAssembly module and funds two jobs, three replicas each, 0.01 ETH apiece");
    let module = m.put_blob(hello()?).await?;
    let budget = U256::from(10u64.pow(16));
    let mut jobs = Vec::new();
    for name in ["alice", "bob"] {
        let s = spec(module, name);
        m.post_spec(&s).await?;
        let id = m.fund_job(&s, budget, Address::ZERO, 3_600).await?;
        println!("      job {id}: spec {} → escrow holds {}", s.spec_hash(), ether(budget));
        jobs.push(id);
    }

    step(2, "Providers take the jobs (matched by stake, price and reputation)");
    for id in &jobs {
        let j = m
            .until("the job to be matched", 60, async || {
                let Ok(j) = m.job(*id).await else { return Ok(None) };
                Ok((j["replicas"].as_array().map_or(0, Vec::len) >= 3).then_some(j))
            })
            .await?;
        let who: Vec<&str> = j["replicas"].as_array().into_iter().flatten().filter_map(|r| r["provider"].as_str()).collect();
        println!("      job {id} → {}", who.join(", "));
    }

    step(3, "Receipts come in: each replica sealed its digest first, then revealed it");
    let mut outputs = Vec::new();
    for id in &jobs {
        let j = m
            .until("every receipt", 120, async || {
                let Ok(j) = m.job(*id).await else { return Ok(None) };
                Ok(matches!(j["status"].as_str(), Some("completed" | "verified" | "settled")).then_some(j))
            })
            .await?;
        for r in j["receipts"].as_array().into_iter().flatten() {
            println!(
                "      job {id}: {} → resultDigest {}",
                r["worker"].as_str().unwrap_or("?"),
                r["resultDigest"].as_str().unwrap_or("?")
            );
        }
        let digests: Vec<&Value> = j["receipts"].as_array().into_iter().flatten().map(|r| &r["resultDigest"]).collect();
        ensure!(digests.len() >= 3 && digests.iter().all(|d| *d == digests[0]), "job {id}: the three replicas agree");
        outputs.push(j["receipts"][0]["outputs"][0].clone());
    }

    step(4, "The first job's output is pinned: a storage deal, two periods of four blocks, four chunks challenged a period");
    let out = &outputs[0];
    let worker = m.job(jobs[0]).await?["receipts"][0]["worker"].as_str().unwrap_or_default().to_string();
    let url = format!("{}/v1/jobs/{}/outputs/{}/{}", m.base, jobs[0], worker, out["path"].as_str().unwrap_or_default());
    let artifact = reqwest::get(&url).await?.bytes().await?.to_vec();
    println!("      {} ({} bytes): {:?}", out["path"].as_str().unwrap_or("?"), artifact.len(), String::from_utf8_lossy(&artifact));
    let (root, deal) = m.store(artifact, 2, 4, 10u128.pow(14), 4, Address::ZERO).await?;
    let d = m
        .until("a provider to accept the deal", 60, async || {
            let d = m.onchain_deal(deal).await?;
            Ok((d.status == IStorageMarket::StorageDealStatus::Active).then_some(d))
        })
        .await?;
    println!("      deal {deal}: root {root}, pinned by {:#x} (checked the root itself, accepted on chain)", d.provider);

    step(5, "A storage challenge: the chunks the market picks from the period's block hash, proven against the root");
    // Attested by the committee once it checked the provider's answer; or, when the attestation is
    // late in the period's proof window, proven on chain by the provider itself.
    let covered = m
        .until("a period to be attested or proven", 90, async || {
            let events = vec![IStorageMarket::StoragePeriodsAttested::SIGNATURE_HASH, IStorageMarket::StoragePeriodProven::SIGNATURE_HASH];
            let filter = Filter::new().address(m.info.storage_market).event_signature(events).from_block(0);
            Ok(node.get_logs(&filter).await?.iter().find_map(|l| {
                if let Ok(e) = IStorageMarket::StoragePeriodsAttested::decode_log(&l.inner) {
                    return (e.data.dealId == deal)
                        .then(|| format!("attested on chain by the committee (periods bitmap {:#b})", e.data.periods));
                }
                let e = IStorageMarket::StoragePeriodProven::decode_log(&l.inner).ok()?.data;
                (e.dealId == deal).then(|| format!("proven on chain by the provider itself (period {})", e.period))
            }))
        })
        .await?;
    let c = m.get(&format!("/v1/storage/deals/{deal}")).await?;
    let first = &c["challenges"][0];
    println!(
        "      period {} chunks {}: answered by the provider, checked by the verifier, {covered}",
        first["period"], first["chunkIndexes"]
    );

    step(6, "The committee settles both jobs in one batch: 90% of the price to the winners, 10% to the treasury");
    let settled = m
        .until("the settlement", 60, async || {
            let filter = Filter::new().address(escrow).event_signature(IJobEscrow::ComputeBatchSettled::SIGNATURE_HASH).from_block(0);
            let mut found = Vec::new();
            for l in node.get_logs(&filter).await? {
                let e = IJobEscrow::ComputeBatchSettled::decode_log(&l.inner)?.data;
                if e.outcome.jobIds.iter().any(|j| jobs.contains(j)) {
                    found.push(e);
                }
            }
            let covered = jobs.iter().all(|j| found.iter().any(|e| e.outcome.jobIds.contains(j)));
            Ok(covered.then_some(found))
        })
        .await?;
    for e in &settled {
        let paid: U256 = e.outcome.providers.iter().map(|p| p.payout).sum();
        println!("      batch {}: jobs {:?}, providers {}, treasury {}", e.batchId, e.outcome.jobIds, ether(paid), ether(e.outcome.fee));
    }

    let (settled_digest, _, files) = m.hash_it_yourself(jobs[0]).await?;
    println!(
        "      hash it yourself: job {}'s stdout and {files} output file(s), downloaded and re-hashed, give {settled_digest}, the digest on chain",
        jobs[0]
    );

    step(7, "The challenge window: anyone may dispute a settled job until it closes");
    println!("      window: {} s from settlement; waiting for it to pass and the verifier to release the batch", params.challengeWindow);
    for id in &jobs {
        m.until("the release", u64::from(params.challengeWindow) + 90, async || {
            Ok((m.onchain_status(*id).await? == "finalized").then_some(()))
        })
        .await?;
        println!("      job {id}: finalized");
    }

    step(8, "The storage deal runs out: every period proven, the provider paid per period");
    let done = m
        .until("the deal to complete", 120, async || {
            let d = m.onchain_deal(deal).await?;
            Ok((d.status == IStorageMarket::StorageDealStatus::Completed).then_some(d))
        })
        .await?;
    ensure!(done.pendingPeriods.is_zero(), "every period of deal {deal} was proven");
    println!("      deal {deal}: completed, {} periods proven", done.periods);

    step(9, "Release: everyone withdraws what the escrow and the storage market credited them");
    let treasury = params.treasury;
    let mut parties: BTreeMap<Address, &str> = BTreeMap::new();
    parties.insert(treasury, "treasury");
    parties.insert(m.me(), "buyer");
    for p in &net.providers {
        parties.insert(accounts::address(*p), "provider");
    }
    let mut moved: BTreeMap<Address, U256> = BTreeMap::new();
    for (who, role) in &parties {
        let (from_escrow, from_market) = m.withdrawable(*who).await?;
        moved.insert(*who, from_escrow + from_market);
        if from_escrow.is_zero() && from_market.is_zero() {
            continue;
        }
        let key = KEYS[(0..KEYS.len()).find(|i| accounts::address(*i) == *who).ok_or_else(|| anyhow!("no key for {who}"))?];
        let policy = SendPolicy { receipt_timeout: std::time::Duration::from_secs(30), bump_percent: 20, max_sends: 3 };
        let wallet = Chain::connect(&net.rpc_url, key.parse()?, &m.info, policy).await?;
        if !from_escrow.is_zero() {
            wallet.send(escrow, &IJobEscrow::withdrawCall { token: Address::ZERO }, "withdraw").await?;
        }
        if !from_market.is_zero() {
            wallet.send(m.info.storage_market, &IStorageMarket::withdrawCall {}, "withdraw from the storage market").await?;
        }
        println!("      {role:<9} {who:#x} withdrew {}", ether(from_escrow + from_market));
    }
    let left = node.get_balance(escrow).await? + node.get_balance(m.info.storage_market).await?;
    let statuses = [m.onchain_status(jobs[0]).await?, m.onchain_status(jobs[1]).await?];
    let providers: U256 = moved.iter().filter(|(a, _)| parties[*a] == "provider").map(|(_, v)| *v).sum();
    let fee = moved[&treasury];
    let gross = providers + fee;
    println!("\nEnd state");
    println!("  jobs:            {} and {}: {:?}", jobs[0], jobs[1], statuses);
    println!("  escrow + market: {}", ether(left));
    println!("  providers:       {} ({}%)", ether(providers), pct(providers, gross));
    println!("  treasury:        {} ({}%)", ether(fee), pct(fee, gross));
    println!("  buyer refunded:  {} of the unspent budgets", ether(moved[&m.me()]));
    if statuses != ["finalized", "finalized"] {
        bail!("both jobs should be released, they are {statuses:?}");
    }
    ensure!(left.is_zero(), "the escrow and the storage market still hold {left} wei");
    // 10% of every price, to within the rounding of each split (a few wei).
    let tenth = fee * U256::from(10);
    ensure!(
        !gross.is_zero() && tenth + U256::from(100) >= gross && tenth <= gross + U256::from(100),
        "a 90/10 split, got {providers} / {fee}"
    );
    println!("\nEvery step held.");
    Ok(())
}

fn pct(part: U256, whole: U256) -> String {
    if whole.is_zero() {
        return "0".into();
    }
    let bps = (part * U256::from(10_000) / whole).to::<u64>();
    format!("{}.{:02}", bps / 100, bps % 100)
}
