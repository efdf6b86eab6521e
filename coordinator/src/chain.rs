//! The chain watcher: follows JobEscrow, StorageMarket, ProviderRegistry and VerifierCommittee events
//! over HTTP polling.
//!
//! It applies a block's events only once the block has `confirmations` blocks on top, records each
//! applied event (block, log index, block hash) and the hash and parent of every block it stored, and
//! keeps a cursor of the last applied block in the same transaction as the events, so a restart resumes
//! exactly there and never applies an event twice. Before moving on it checks that the newest stored
//! block is still on the chain; if not (a reorg), it walks back to the last stored block that is, and
//! undoes everything above it: jobs, assignments and receipts of jobs that no longer exist are removed,
//! jobs settled or reclaimed in a removed block go back to what their receipts say, and provider,
//! committee and storage deal state is rebuilt from the events that remain.

use std::collections::BTreeMap;
use std::time::Duration;

use alloy::eips::BlockNumberOrTag;
use alloy::providers::{Provider, RootProvider};
use alloy::rpc::types::{Filter, Log};
use alloy_primitives::{Address, B256, U256};
use alloy_sol_types::SolEvent;
use qor_protocol::bindings::IJobEscrow as E;
use qor_protocol::bindings::IProviderRegistry as R;
use qor_protocol::bindings::IStorageMarket as M;
use qor_protocol::bindings::IVerifierCommittee as C;
use serde_json::{Value, json};
use sqlx::{Sqlite, Transaction};

use crate::AppState;
use crate::db::{now_ms, timeline};

/// Watcher settings.
#[derive(Debug, Clone)]
pub struct WatchConfig {
    /// JSON-RPC endpoint.
    pub rpc_url: String,
    /// Blocks on top of a block before its events are applied (0 on a local devnet).
    pub confirmations: u64,
    /// First block to read (the contracts' deployment block).
    pub start_block: u64,
    /// Most blocks per `eth_getLogs` call.
    pub batch_blocks: u64,
    /// How often to poll.
    pub poll_interval: Duration,
}

/// Follows the chain until the process ends, retrying after errors (an RPC that is down, say).
pub async fn run(state: AppState, cfg: WatchConfig) {
    let provider = match cfg.rpc_url.parse() {
        Ok(url) => RootProvider::new_http(url),
        Err(e) => {
            tracing::error!(url = %cfg.rpc_url, error = %e, "bad RPC URL; the chain watcher is off");
            return;
        }
    };
    loop {
        match tick(&state, &provider, &cfg).await {
            Ok(true) => continue, // more to catch up on
            Ok(false) => {}
            Err(e) => tracing::warn!(error = %e, "chain watcher: retrying"),
        }
        tokio::time::sleep(cfg.poll_interval).await;
    }
}

async fn block_hash(provider: &RootProvider, number: u64) -> anyhow::Result<Option<(B256, B256)>> {
    let block = provider.get_block_by_number(BlockNumberOrTag::Number(number)).await?;
    Ok(block.map(|b| (b.header.hash, b.header.inner.parent_hash)))
}

/// One step: check for a reorg, then apply up to `batch_blocks` confirmed blocks. Returns whether
/// there is more to apply right away.
pub async fn tick(state: &AppState, provider: &RootProvider, cfg: &WatchConfig) -> anyhow::Result<bool> {
    let head = provider.get_block_number().await?;
    let safe = head.saturating_sub(cfg.confirmations);
    let cursor = sqlx::query_scalar!("SELECT last_block FROM chain_cursor WHERE id = 1").fetch_optional(&state.read).await?;
    let mut last: i64 = cursor.unwrap_or(cfg.start_block as i64 - 1);

    // Reorg check: every stored block at or below the cursor, newest first, until one still matches.
    let stored = sqlx::query!("SELECT number, hash FROM chain_blocks WHERE number <= ? ORDER BY number DESC LIMIT 256", last)
        .fetch_all(&state.read)
        .await?;
    let mut fork_base = None;
    for (i, block) in stored.iter().enumerate() {
        let on_chain = block_hash(provider, block.number as u64).await?.map(|(h, _)| format!("{h:#x}"));
        if on_chain.as_deref() == Some(block.hash.as_str()) {
            if i > 0 {
                fork_base = Some(block.number);
            }
            break;
        }
        if i + 1 == stored.len() {
            fork_base = Some(cfg.start_block as i64 - 1);
        }
    }
    if let Some(base) = fork_base {
        tracing::warn!(from = last, to = base, "reorg: rolling back");
        rollback(state, base).await?;
        last = base;
    }

    if safe as i64 <= last {
        return Ok(false);
    }
    let from = (last + 1) as u64;
    let to = safe.min(from + cfg.batch_blocks - 1);
    let mut contracts = vec![state.cfg.escrow, state.cfg.registry];
    for optional in [state.cfg.committee, state.cfg.market] {
        if optional != Address::ZERO {
            contracts.push(optional);
        }
    }
    let filter = Filter::new().address(contracts).from_block(from).to_block(to);
    let logs = provider.get_logs(&filter).await?;

    // Headers of every block with events and of `to` (so the next tick can check it).
    let mut headers: BTreeMap<u64, (B256, B256)> = BTreeMap::new();
    for n in logs.iter().filter_map(|l| l.block_number).chain([to]) {
        if let std::collections::btree_map::Entry::Vacant(e) = headers.entry(n) {
            match block_hash(provider, n).await? {
                Some(h) => {
                    e.insert(h);
                }
                None => anyhow::bail!("block {n} vanished while reading it"),
            }
        }
    }
    for log in &logs {
        let (Some(n), Some(h)) = (log.block_number, log.block_hash) else { anyhow::bail!("a log without its block") };
        if headers[&n].0 != h {
            anyhow::bail!("block {n} changed while reading it (reorg in progress)");
        }
    }

    let mut tx = state.db.begin().await?;
    let mut applied = 0u64;
    let mut updates = Vec::new();
    for log in &logs {
        if let Some(update) = apply_log(&mut tx, state, log).await? {
            applied += 1;
            updates.push(update);
        }
    }
    for (n, (hash, parent)) in &headers {
        let (n, hash, parent) = (*n as i64, format!("{hash:#x}"), format!("{parent:#x}"));
        sqlx::query!("INSERT OR REPLACE INTO chain_blocks (number, hash, parent_hash) VALUES (?, ?, ?)", n, hash, parent)
            .execute(&mut *tx)
            .await?;
    }
    let to_i = to as i64;
    sqlx::query!(
        "INSERT INTO chain_cursor (id, last_block) VALUES (1, ?) ON CONFLICT (id) DO UPDATE SET last_block = excluded.last_block",
        to_i
    )
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;

    let m = &state.metrics;
    m.chain_events.fetch_add(applied, std::sync::atomic::Ordering::Relaxed);
    m.chain_block.store(to, std::sync::atomic::Ordering::Relaxed);
    for update in updates {
        state.publish(update);
    }
    state.publish(json!({ "type": "block", "number": to }));
    if applied > 0 {
        state.wake.matcher();
    }
    Ok(to < safe)
}

fn addr(a: &Address) -> String {
    format!("{a:#x}")
}

/// Records and applies one log, unless it was applied before. Returns the SSE update to publish.
async fn apply_log(tx: &mut Transaction<'_, Sqlite>, state: &AppState, log: &Log) -> anyhow::Result<Option<Value>> {
    let Some(topic) = log.topic0() else { return Ok(None) };
    let block = log.block_number.unwrap_or_default() as i64;
    let index = log.log_index.unwrap_or_default() as i64;
    let block_hash = format!("{:#x}", log.block_hash.unwrap_or_default());
    let tx_hash = format!("{:#x}", log.transaction_hash.unwrap_or_default());
    let from_escrow = log.address() == state.cfg.escrow;
    let from_committee = log.address() == state.cfg.committee;
    let from_market = log.address() == state.cfg.market;

    let (name, detail): (&str, Value) = match *topic {
        E::ComputeJobCreated::SIGNATURE_HASH if from_escrow => {
            let e = E::ComputeJobCreated::decode_log(&log.inner)?.data;
            let j = &e.job;
            (
                "ComputeJobCreated",
                json!({
                    "jobId": e.jobId.to_string(), "buyer": addr(&e.buyer), "specHash": format!("{:#x}", e.specHash),
                    "token": addr(&j.token), "budget": j.budget.to_string(), "deadline": j.deadline,
                    "redundancy": j.redundancy, "preferredProvider": addr(&j.preferredProvider),
                }),
            )
        }
        E::ComputeBatchSettled::SIGNATURE_HASH if from_escrow => {
            let e = E::ComputeBatchSettled::decode_log(&log.inner)?.data;
            let jobs: Vec<String> = e.outcome.jobIds.iter().map(U256::to_string).collect();
            ("ComputeBatchSettled", json!({ "batchId": e.batchId.to_string(), "windowEnd": e.windowEnd, "jobIds": jobs }))
        }
        E::ComputeBatchFinalized::SIGNATURE_HASH if from_escrow => {
            let e = E::ComputeBatchFinalized::decode_log(&log.inner)?.data;
            ("ComputeBatchFinalized", json!({ "batchId": e.batchId.to_string() }))
        }
        E::ComputeJobReclaimed::SIGNATURE_HASH if from_escrow => {
            let e = E::ComputeJobReclaimed::decode_log(&log.inner)?.data;
            ("ComputeJobReclaimed", json!({ "jobId": e.jobId.to_string(), "amount": e.amount.to_string() }))
        }
        E::ComputeJobChallenged::SIGNATURE_HASH if from_escrow => {
            let e = E::ComputeJobChallenged::decode_log(&log.inner)?.data;
            (
                "ComputeJobChallenged",
                json!({
                    "jobId": e.jobId.to_string(), "batchId": e.batchId.to_string(), "challenger": addr(&e.challenger),
                    "bond": e.bond.to_string(),
                }),
            )
        }
        E::ChallengeResolved::SIGNATURE_HASH if from_escrow => {
            let e = E::ChallengeResolved::decode_log(&log.inner)?.data;
            ("ChallengeResolved", json!({ "jobId": e.jobId.to_string(), "status": e.status as u8 }))
        }
        _ if from_escrow => return Ok(None),
        M::StorageDealCreated::SIGNATURE_HASH if from_market => {
            let e = M::StorageDealCreated::decode_log(&log.inner)?.data;
            (
                "StorageDealCreated",
                json!({
                    "dealId": e.dealId.to_string(), "buyer": addr(&e.buyer), "root": format!("{:#x}", e.merkleRoot), "size": e.size,
                    "periods": e.periods, "periodLength": e.periodLength, "pricePerPeriod": e.pricePerPeriod.to_string(),
                    "challengesPerPeriod": e.challengesPerPeriod,
                    "preferredProvider": addr(&e.preferredProvider),
                }),
            )
        }
        M::StorageDealAccepted::SIGNATURE_HASH if from_market => {
            let e = M::StorageDealAccepted::decode_log(&log.inner)?.data;
            (
                "StorageDealAccepted",
                json!({
                    "dealId": e.dealId.to_string(), "provider": addr(&e.provider), "startBlock": e.startBlock,
                    "collateral": e.collateral.to_string(),
                }),
            )
        }
        M::StorageDealCancelled::SIGNATURE_HASH if from_market => {
            let e = M::StorageDealCancelled::decode_log(&log.inner)?.data;
            ("StorageDealCancelled", json!({ "dealId": e.dealId.to_string(), "refund": e.refund.to_string() }))
        }
        M::StorageDealReopened::SIGNATURE_HASH if from_market => {
            let e = M::StorageDealReopened::decode_log(&log.inner)?.data;
            (
                "StorageDealReopened",
                json!({
                    "dealId": e.dealId.to_string(), "previousProvider": addr(&e.previousProvider),
                    "periodsLeft": e.periodsLeft.to::<u64>(),
                }),
            )
        }
        M::StoragePeriodProven::SIGNATURE_HASH if from_market => {
            let e = M::StoragePeriodProven::decode_log(&log.inner)?.data;
            (
                "StoragePeriodProven",
                json!({
                    "dealId": e.dealId.to_string(), "period": e.period.to::<u64>(),
                    "chunkIndexes": e.chunkIndexes.iter().map(|i| i.to::<u64>()).collect::<Vec<_>>(),
                }),
            )
        }
        M::StoragePeriodsAttested::SIGNATURE_HASH if from_market => {
            let e = M::StoragePeriodsAttested::decode_log(&log.inner)?.data;
            ("StoragePeriodsAttested", json!({ "dealId": e.dealId.to_string(), "periods": e.periods.to_string() }))
        }
        M::StoragePeriodsSettled::SIGNATURE_HASH if from_market => {
            let e = M::StoragePeriodsSettled::decode_log(&log.inner)?.data;
            (
                "StoragePeriodsSettled",
                json!({
                    "dealId": e.dealId.to_string(), "fromPeriod": e.fromPeriod.to::<u64>(), "toPeriod": e.toPeriod.to::<u64>(),
                    "passed": e.passed.to::<u64>(), "missed": e.missed.to::<u64>(),
                }),
            )
        }
        _ if from_market => return Ok(None),
        C::MemberAdded::SIGNATURE_HASH if from_committee => {
            let e = C::MemberAdded::decode_log(&log.inner)?.data;
            ("MemberAdded", json!({ "member": addr(&e.member) }))
        }
        C::MemberRemoved::SIGNATURE_HASH if from_committee => {
            let e = C::MemberRemoved::decode_log(&log.inner)?.data;
            ("MemberRemoved", json!({ "member": addr(&e.member) }))
        }
        _ if from_committee => return Ok(None),
        R::ProviderRegistered::SIGNATURE_HASH => {
            let e = R::ProviderRegistered::decode_log(&log.inner)?.data;
            (
                "ProviderRegistered",
                json!({
                    "provider": addr(&e.provider), "stake": e.stake.to_string(),
                    "pricePerFuel": e.metadata.pricePerFuel.to_string(), "capacity": e.metadata.capacity, "region": e.metadata.region,
                }),
            )
        }
        R::ProviderMetadataUpdated::SIGNATURE_HASH => {
            let e = R::ProviderMetadataUpdated::decode_log(&log.inner)?.data;
            (
                "ProviderMetadataUpdated",
                json!({
                    "provider": addr(&e.provider), "pricePerFuel": e.metadata.pricePerFuel.to_string(),
                    "capacity": e.metadata.capacity, "region": e.metadata.region,
                }),
            )
        }
        R::StakeAdded::SIGNATURE_HASH => {
            let e = R::StakeAdded::decode_log(&log.inner)?.data;
            ("StakeAdded", json!({ "provider": addr(&e.provider), "stake": e.stake.to_string() }))
        }
        R::StakeWithdrawalRequested::SIGNATURE_HASH => {
            let e = R::StakeWithdrawalRequested::decode_log(&log.inner)?.data;
            ("StakeWithdrawalRequested", json!({ "provider": addr(&e.provider), "amount": e.amount.to_string() }))
        }
        R::ProviderSlashed::SIGNATURE_HASH => {
            let e = R::ProviderSlashed::decode_log(&log.inner)?.data;
            ("ProviderSlashed", json!({ "provider": addr(&e.provider), "amount": e.amount.to_string() }))
        }
        R::OutcomesRecorded::SIGNATURE_HASH => {
            let e = R::OutcomesRecorded::decode_log(&log.inner)?.data;
            ("OutcomesRecorded", json!({ "provider": addr(&e.provider), "completed": e.completed, "failed": e.failed }))
        }
        _ => return Ok(None),
    };
    let detail_text = detail.to_string();
    let inserted = sqlx::query!(
        "INSERT OR IGNORE INTO chain_events (block_number, log_index, block_hash, tx_hash, name, detail) VALUES (?, ?, ?, ?, ?, ?)",
        block,
        index,
        block_hash,
        tx_hash,
        name,
        detail_text
    )
    .execute(&mut **tx)
    .await?
    .rows_affected()
        == 1;
    if !inserted {
        return Ok(None);
    }
    apply(tx, name, &detail, block, &block_hash, state.cfg.limits.retention_ms).await?;
    let mut update = detail;
    update["type"] = json!(name);
    update["block"] = json!(block);
    Ok(Some(update))
}

fn s<'a>(v: &'a Value, k: &str) -> &'a str {
    v[k].as_str().unwrap_or_default()
}

/// The effect of one event on the coordinator's tables.
async fn apply(
    tx: &mut Transaction<'_, Sqlite>,
    name: &str,
    d: &Value,
    block: i64,
    block_hash: &str,
    retention_ms: i64,
) -> sqlx::Result<()> {
    let now = now_ms();
    match name {
        "ComputeJobCreated" => {
            let (job_id, spec_hash, buyer, token, budget, preferred) =
                (s(d, "jobId"), s(d, "specHash"), s(d, "buyer"), s(d, "token"), s(d, "budget"), s(d, "preferredProvider"));
            let (deadline, redundancy) = (d["deadline"].as_i64().unwrap_or(0), d["redundancy"].as_i64().unwrap_or(1));
            let spec = sqlx::query_scalar!("SELECT spec_hash FROM specs WHERE spec_hash = ?", spec_hash).fetch_optional(&mut **tx).await?;
            let (status, reason) = match spec {
                Some(_) => ("matching", None),
                None => ("awaiting_spec", Some("funded on chain; the spec was not uploaded yet")),
            };
            sqlx::query!(
                "INSERT OR IGNORE INTO jobs (job_id, spec_hash, buyer, token, budget, deadline, redundancy, funded_redundancy, preferred,
                   block_number, block_hash, status, reason, updated_at)
                 VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                job_id,
                spec_hash,
                buyer,
                token,
                budget,
                deadline,
                redundancy,
                redundancy,
                preferred,
                block,
                block_hash,
                status,
                reason,
                now
            )
            .execute(&mut **tx)
            .await?;
            // Its module and inputs are kept for the job, and past its deadline for whoever re-checks it.
            crate::jobs::claim_spec(tx, spec_hash, deadline * 1000 + retention_ms).await?;
            timeline(tx, &format!("job:{job_id}"), "chain", "funded", d.clone(), Some(block)).await?;
        }
        "ComputeBatchSettled" => {
            let (batch, detail) = (s(d, "batchId"), d.to_string());
            sqlx::query!("INSERT OR IGNORE INTO settlements (batch_id, detail, block_number) VALUES (?, ?, ?)", batch, detail, block)
                .execute(&mut **tx)
                .await?;
            for job in d["jobIds"].as_array().into_iter().flatten().filter_map(Value::as_str) {
                sqlx::query!("UPDATE jobs SET status = 'settled', updated_at = ? WHERE job_id = ?", now, job).execute(&mut **tx).await?;
                timeline(tx, &format!("job:{job}"), "chain", "settled", json!({ "batchId": batch }), Some(block)).await?;
            }
        }
        "ComputeBatchFinalized" => {
            let batch = s(d, "batchId");
            sqlx::query!("UPDATE settlements SET finalized = 1 WHERE batch_id = ?", batch).execute(&mut **tx).await?;
        }
        "ComputeJobReclaimed" => {
            let job = s(d, "jobId");
            sqlx::query!("UPDATE jobs SET status = 'reclaimed', updated_at = ? WHERE job_id = ?", now, job).execute(&mut **tx).await?;
            timeline(tx, &format!("job:{job}"), "chain", "reclaimed", d.clone(), Some(block)).await?;
        }
        "ComputeJobChallenged" | "ChallengeResolved" => {
            let (job, detail) = (s(d, "jobId"), d.to_string());
            sqlx::query!(
                "INSERT INTO challenges (kind, subject_id, detail, block_number, created_at) VALUES ('compute', ?, ?, ?, ?)",
                job,
                detail,
                block,
                now
            )
            .execute(&mut **tx)
            .await?;
            timeline(tx, &format!("job:{job}"), "chain", name, d.clone(), Some(block)).await?;
        }
        "StorageDealCreated" => {
            let (deal, buyer, root, size) = (s(d, "dealId"), s(d, "buyer"), s(d, "root"), d["size"].as_i64().unwrap_or(0));
            let (periods, period_length) = (d["periods"].as_i64().unwrap_or(0), d["periodLength"].as_i64().unwrap_or(0));
            let (price, preferred) = (s(d, "pricePerPeriod"), s(d, "preferredProvider"));
            sqlx::query!(
                "INSERT OR IGNORE INTO storage_deals (deal_id, buyer, root, size, status, block_number, updated_at, periods,
                   period_length, price_per_period, preferred)
                 VALUES (?, ?, ?, ?, 'open', ?, ?, ?, ?, ?, ?)",
                deal,
                buyer,
                root,
                size,
                block,
                now,
                periods,
                period_length,
                price,
                preferred
            )
            .execute(&mut **tx)
            .await?;
            // Its file is kept while the deal is open or active (the garbage collector asks), then for
            // the retention period.
            let blob = sqlx::query_scalar!("SELECT blob_hash FROM storage_files WHERE root = ?", root).fetch_optional(&mut **tx).await?;
            crate::blobs::claim(tx, &blob.into_iter().collect::<Vec<_>>(), now + retention_ms, true).await?;
            timeline(tx, &format!("deal:{deal}"), "chain", "funded", d.clone(), Some(block)).await?;
        }
        "StorageDealAccepted" | "StorageDealCancelled" | "StorageDealReopened" | "StoragePeriodsSettled" => {
            apply_deal(tx, name, d).await?;
            // An ended deal's file is kept for the retention period from now.
            let deal = s(d, "dealId");
            let blob = sqlx::query_scalar!(
                "SELECT f.blob_hash FROM storage_deals d JOIN storage_files f ON f.root = d.root
                 WHERE d.deal_id = ? AND d.status IN ('completed', 'cancelled')",
                deal
            )
            .fetch_optional(&mut **tx)
            .await?;
            crate::blobs::claim(tx, &blob.into_iter().collect::<Vec<_>>(), now + retention_ms, true).await?;
            timeline(tx, &format!("deal:{}", s(d, "dealId")), "chain", name, d.clone(), Some(block)).await?;
        }
        "StoragePeriodProven" | "StoragePeriodsAttested" => {
            timeline(tx, &format!("deal:{}", s(d, "dealId")), "chain", name, d.clone(), Some(block)).await?;
        }
        "MemberAdded" => {
            let member = s(d, "member");
            sqlx::query!("INSERT OR REPLACE INTO committee_members (address, block_number) VALUES (?, ?)", member, block)
                .execute(&mut **tx)
                .await?;
        }
        "MemberRemoved" => {
            let member = s(d, "member");
            sqlx::query!("DELETE FROM committee_members WHERE address = ?", member).execute(&mut **tx).await?;
        }
        _ => apply_registry(tx, name, d, block).await?,
    }
    Ok(())
}

/// The chain state of a deal is a fold over its escrow events (so a reorg can replay the ones that remain).
async fn apply_deal(tx: &mut Transaction<'_, Sqlite>, name: &str, d: &Value) -> sqlx::Result<()> {
    let (deal, now) = (s(d, "dealId"), now_ms());
    match name {
        "StorageDealAccepted" => {
            let (provider, start) = (s(d, "provider"), d["startBlock"].as_i64());
            sqlx::query!(
                "UPDATE storage_deals SET provider = ?, start_block = ?, status = 'active', updated_at = ? WHERE deal_id = ?",
                provider,
                start,
                now,
                deal
            )
            .execute(&mut **tx)
            .await?;
        }
        "StorageDealCancelled" => {
            sqlx::query!("UPDATE storage_deals SET status = 'cancelled', updated_at = ? WHERE deal_id = ?", now, deal)
                .execute(&mut **tx)
                .await?;
        }
        "StorageDealReopened" => {
            // The buyer dropped its provider: the periods left are offered again, to anyone but it.
            let previous = s(d, "previousProvider");
            sqlx::query!(
                "UPDATE storage_deals SET status = 'open', provider = NULL, start_block = NULL, offered_to = NULL, reported_root = NULL,
                   preferred = '0x0000000000000000000000000000000000000000',
                   refused_by = json_insert(refused_by, '$[#]', ?), updated_at = ? WHERE deal_id = ?",
                previous,
                now,
                deal
            )
            .execute(&mut **tx)
            .await?;
            // Challenges of the periods left were the dropped provider's: the next one's differ.
            let left = d["periodsLeft"].as_i64().unwrap_or(0);
            sqlx::query!(
                "DELETE FROM storage_challenges WHERE deal_id = ?1
                   AND period >= (SELECT periods FROM storage_deals WHERE deal_id = ?1) - ?2",
                deal,
                left
            )
            .execute(&mut **tx)
            .await?;
        }
        "StoragePeriodsSettled" => {
            let to = d["toPeriod"].as_i64().unwrap_or(0);
            sqlx::query!("UPDATE storage_deals SET status = 'completed', updated_at = ? WHERE deal_id = ? AND periods <= ?", now, deal, to)
                .execute(&mut **tx)
                .await?;
        }
        _ => {}
    }
    Ok(())
}

/// Provider state is a fold over registry events (so a reorg can rebuild it from the ones that remain).
async fn apply_registry(tx: &mut Transaction<'_, Sqlite>, name: &str, d: &Value, block: i64) -> sqlx::Result<()> {
    let p = s(d, "provider");
    match name {
        "ProviderRegistered" => {
            let (stake, price, capacity, region) =
                (s(d, "stake"), s(d, "pricePerFuel"), d["capacity"].as_i64().unwrap_or(0), s(d, "region"));
            sqlx::query!(
                "INSERT INTO providers (address, stake, price_per_fuel, capacity, region, registered_block) VALUES (?, ?, ?, ?, ?, ?)
                 ON CONFLICT (address) DO UPDATE SET stake = excluded.stake, price_per_fuel = excluded.price_per_fuel,
                   capacity = excluded.capacity, region = excluded.region",
                p,
                stake,
                price,
                capacity,
                region,
                block
            )
            .execute(&mut **tx)
            .await?;
        }
        "ProviderMetadataUpdated" => {
            let (price, capacity, region) = (s(d, "pricePerFuel"), d["capacity"].as_i64().unwrap_or(0), s(d, "region"));
            sqlx::query!("UPDATE providers SET price_per_fuel = ?, capacity = ?, region = ? WHERE address = ?", price, capacity, region, p)
                .execute(&mut **tx)
                .await?;
        }
        "StakeAdded" => {
            let stake = s(d, "stake");
            sqlx::query!("UPDATE providers SET stake = ? WHERE address = ?", stake, p).execute(&mut **tx).await?;
        }
        "StakeWithdrawalRequested" | "ProviderSlashed" => {
            let current = sqlx::query_scalar!("SELECT stake FROM providers WHERE address = ?", p).fetch_optional(&mut **tx).await?;
            let current: U256 = current.and_then(|c| c.parse().ok()).unwrap_or_default();
            let amount: U256 = s(d, "amount").parse().unwrap_or_default();
            let stake = current.saturating_sub(amount).to_string();
            let slashed = i64::from(name == "ProviderSlashed");
            sqlx::query!("UPDATE providers SET stake = ?, slashed = slashed + ? WHERE address = ?", stake, slashed, p)
                .execute(&mut **tx)
                .await?;
        }
        "OutcomesRecorded" => {
            let (c, f) = (d["completed"].as_i64().unwrap_or(0), d["failed"].as_i64().unwrap_or(0));
            sqlx::query!("UPDATE providers SET completed = completed + ?, failed = failed + ? WHERE address = ?", c, f, p)
                .execute(&mut **tx)
                .await?;
        }
        _ => {}
    }
    Ok(())
}

/// Undoes everything above block `base` (what a reorg below the cursor does; public for tests and for an
/// operator rewinding the watcher).
pub async fn rollback(state: &AppState, base: i64) -> anyhow::Result<()> {
    let mut tx = state.db.begin().await?;
    let gone = sqlx::query_scalar!("SELECT job_id FROM jobs WHERE block_number > ?", base).fetch_all(&mut *tx).await?;
    for job in &gone {
        sqlx::query!("DELETE FROM assignments WHERE job_id = ?", job).execute(&mut *tx).await?;
        sqlx::query!("DELETE FROM receipts WHERE job_id = ?", job).execute(&mut *tx).await?;
        timeline(&mut tx, &format!("job:{job}"), "chain", "reorged_out", json!({ "base": base }), Some(base)).await?;
    }
    sqlx::query!("DELETE FROM jobs WHERE block_number > ?", base).execute(&mut *tx).await?;
    // Jobs that remain but were settled or reclaimed by a block that is gone: back to what their
    // receipts say (the receipts stay; the verifier will settle them again).
    let undone = sqlx::query!(
        "SELECT name, detail FROM chain_events WHERE block_number > ? AND name IN ('ComputeBatchSettled', 'ComputeJobReclaimed')",
        base
    )
    .fetch_all(&mut *tx)
    .await?;
    let now = now_ms();
    for e in undone {
        let detail: Value = serde_json::from_str(&e.detail)?;
        let jobs: Vec<String> = match e.name.as_str() {
            "ComputeBatchSettled" => {
                detail["jobIds"].as_array().into_iter().flatten().filter_map(|j| j.as_str().map(str::to_string)).collect()
            }
            _ => vec![s(&detail, "jobId").to_string()],
        };
        for job in jobs {
            let changed = sqlx::query!(
                "UPDATE jobs SET updated_at = ?, status = CASE
                   WHEN (SELECT COUNT(*) FROM receipts r WHERE r.job_id = jobs.job_id) >= redundancy THEN 'completed'
                   ELSE 'matching' END
                 WHERE job_id = ? AND status IN ('settled', 'reclaimed')",
                now,
                job
            )
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if changed > 0 {
                timeline(&mut tx, &format!("job:{job}"), "chain", "reorged_out", json!({ "event": e.name, "base": base }), Some(base))
                    .await?;
            }
        }
    }
    sqlx::query!("DELETE FROM settlements WHERE block_number > ?", base).execute(&mut *tx).await?;
    sqlx::query!("DELETE FROM challenges WHERE block_number > ?", base).execute(&mut *tx).await?;
    sqlx::query!("DELETE FROM storage_deals WHERE block_number > ?", base).execute(&mut *tx).await?;
    sqlx::query!("DELETE FROM storage_challenges WHERE deal_id NOT IN (SELECT deal_id FROM storage_deals)").execute(&mut *tx).await?;
    sqlx::query!("DELETE FROM chain_events WHERE block_number > ?", base).execute(&mut *tx).await?;
    sqlx::query!("DELETE FROM chain_blocks WHERE number > ?", base).execute(&mut *tx).await?;

    // Deals that remain: their chain state replayed from the events that remain.
    sqlx::query!("UPDATE storage_deals SET status = 'open', provider = NULL, start_block = NULL").execute(&mut *tx).await?;
    let deal_events = sqlx::query!(
        "SELECT name, detail FROM chain_events WHERE name IN ('StorageDealAccepted', 'StorageDealCancelled', 'StorageDealReopened',
           'StoragePeriodsSettled')
         ORDER BY block_number, log_index"
    )
    .fetch_all(&mut *tx)
    .await?;
    for e in deal_events {
        apply_deal(&mut tx, &e.name, &serde_json::from_str(&e.detail)?).await?;
    }
    // The committee: rebuilt from the membership events that remain.
    sqlx::query!("DELETE FROM committee_members").execute(&mut *tx).await?;
    let members = sqlx::query!(
        "SELECT name, detail, block_number FROM chain_events WHERE name IN ('MemberAdded', 'MemberRemoved') ORDER BY block_number, log_index"
    )
    .fetch_all(&mut *tx)
    .await?;
    for e in members {
        apply(&mut tx, &e.name, &serde_json::from_str(&e.detail)?, e.block_number, "", state.cfg.limits.retention_ms).await?;
    }

    // Providers: rebuild from the registry events that remain, keeping liveness.
    let heartbeats = sqlx::query!("SELECT address, last_heartbeat FROM providers").fetch_all(&mut *tx).await?;
    sqlx::query!("DELETE FROM providers").execute(&mut *tx).await?;
    let events = sqlx::query!(
        "SELECT name, detail, block_number FROM chain_events WHERE name IN
           ('ProviderRegistered', 'ProviderMetadataUpdated', 'StakeAdded', 'StakeWithdrawalRequested', 'ProviderSlashed', 'OutcomesRecorded')
         ORDER BY block_number, log_index"
    )
    .fetch_all(&mut *tx)
    .await?;
    for e in events {
        let detail: Value = serde_json::from_str(&e.detail)?;
        apply_registry(&mut tx, &e.name, &detail, e.block_number).await?;
    }
    for h in heartbeats {
        sqlx::query!("UPDATE providers SET last_heartbeat = ? WHERE address = ?", h.last_heartbeat, h.address).execute(&mut *tx).await?;
    }
    sqlx::query!(
        "INSERT INTO chain_cursor (id, last_block) VALUES (1, ?) ON CONFLICT (id) DO UPDATE SET last_block = excluded.last_block",
        base
    )
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    state.metrics.reorgs.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    state.publish(json!({ "type": "reorg", "base": base }));
    Ok(())
}
