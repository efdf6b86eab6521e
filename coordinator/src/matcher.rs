//! Matching funded jobs to providers, and lease expiry.
//!
//! A job needs `redundancy` distinct providers that are registered with at least the minimum stake,
//! live (a heartbeat within the TTL), have free capacity, and ask no more than the budget allows
//! (`pricePerFuel × fuel limit × redundancy ≤ budget`). The preferred provider goes first when it
//! qualifies; the rest are ranked by reputation (never slashed first, then completed vs failed), then
//! price, then free capacity. A provider runs a job at most once, so a lapsed lease goes to someone
//! else. When nobody qualifies the job says which rule nobody met.
//!
//! Leases end by rules that never put an honest replica in the wrong: an offered lease nobody accepted
//! lapses (it ran nothing); an accepted one that was never sealed has failed (recorded against its
//! provider, who signed nothing a slash could rest on); a sealed one waits for the job's other seals
//! however long they take, and only once every replica has sealed does its reveal window run out.

use std::cmp::Ordering as CmpOrdering;
use std::time::Duration;

use alloy_primitives::U256;
use serde_json::json;

use crate::AppState;
use crate::db::{now_ms, timeline};

struct Candidate {
    address: String,
    stake: U256,
    price: U256,
    free: i64,
    completed: i64,
    failed: i64,
    slashed: i64,
    region: String,
    live: bool,
}

impl Candidate {
    fn reputation(&self) -> f64 {
        (self.completed as f64 + 1.0) / ((self.completed + self.failed) as f64 + 1.0)
    }
}

/// Passes at most this often: wake-ups in between (every receipt frees a slot, every poll is a sign
/// of life) are served by one pass.
const MIN_GAP: Duration = Duration::from_millis(10);

/// Runs matching whenever woken (a job funded, a slot freed, a worker checked in), and at least every
/// second, but not more often than every [`MIN_GAP`]; lease expiry and housekeeping run at most once
/// a second, so a busy market does not spend its database on them.
pub async fn run(state: AppState) {
    let mut last_housekeeping = std::time::Instant::now() - Duration::from_secs(2);
    loop {
        let housekeeping = last_housekeeping.elapsed() >= Duration::from_secs(1);
        if housekeeping {
            last_housekeeping = std::time::Instant::now();
        }
        if let Err(e) = pass(&state, housekeeping).await {
            tracing::warn!(error = %e, "matching failed; retrying");
        }
        tokio::time::sleep(MIN_GAP).await;
        // A wake-up during the pass or the gap is a stored permit, so this returns at once for it.
        tokio::select! {
            () = state.wake.matcher_notified() => {}
            () = tokio::time::sleep(Duration::from_secs(1)) => {}
        }
    }
}

/// One full pass: lapse expired leases, expire late jobs, match what can be matched.
pub async fn tick(state: &AppState) -> sqlx::Result<()> {
    pass(state, true).await
}

async fn pass(state: &AppState, housekeeping: bool) -> sqlx::Result<()> {
    if housekeeping {
        lapse_leases(state).await?;
        expire(state).await?;
    }
    match_jobs(state).await?;
    crate::storage::offer_deals(state).await?;
    Ok(())
}

async fn lapse_leases(state: &AppState) -> sqlx::Result<()> {
    let now = now_ms();
    // A sealed replica's lease runs only once every replica has sealed (the last seal sets its reveal
    // window): before that, it waits for the others and its seal stands.
    let expired = sqlx::query!(
        r#"SELECT a.id AS "id!", a.job_id, a.provider, a.status FROM assignments a JOIN jobs j ON j.job_id = a.job_id
           WHERE a.status IN ('leased', 'accepted', 'sealed') AND a.lease_expires_at < ?
             AND (a.status != 'sealed'
                  OR (SELECT COUNT(*) FROM assignments b WHERE b.job_id = a.job_id AND b.status IN ('sealed', 'revealed')) >= j.redundancy)"#,
        now
    )
    .fetch_all(&state.read)
    .await?;
    for a in &expired {
        let (ended_as, why) = match a.status.as_str() {
            "leased" => ("lapsed", "the lease was never accepted"),
            "accepted" => ("failed", "accepted the lease and did not seal a result in time"),
            _ => ("lapsed", "sealed and did not reveal in time"),
        };
        let mut tx = state.db.begin().await?;
        let detail = json!({ "provider": a.provider, "reason": why });
        let ended = end_lease(&mut tx, a.id, &a.job_id, ended_as, "coordinator", detail).await?;
        tx.commit().await?;
        if ended {
            state.metrics.leases_lapsed.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            state.publish(json!({ "type": ended_as, "jobId": a.job_id, "provider": a.provider }));
        }
    }
    Ok(())
}

/// Ends a live lease, `lapsed` or `failed` (by the coordinator) or `released` (by its worker), and puts
/// the job back up for matching, inside `tx`. Returns false when the lease was no longer live.
pub(crate) async fn end_lease(
    tx: &mut sqlx::Transaction<'_, sqlx::Sqlite>,
    id: i64,
    job_id: &str,
    status: &str,
    actor: &str,
    detail: serde_json::Value,
) -> sqlx::Result<bool> {
    let now = now_ms();
    let changed = sqlx::query!(
        "UPDATE assignments SET status = ?, updated_at = ? WHERE id = ? AND status IN ('leased', 'accepted', 'sealed')",
        status,
        now,
        id
    )
    .execute(&mut **tx)
    .await?
    .rows_affected();
    if changed == 0 {
        return Ok(false);
    }
    sqlx::query!(
        "UPDATE jobs SET status = 'matching', updated_at = ? WHERE job_id = ? AND status IN ('running', 'matching', 'unmatched')",
        now,
        job_id
    )
    .execute(&mut **tx)
    .await?;
    timeline(tx, &format!("job:{job_id}"), actor, status, detail, None).await?;
    Ok(true)
}

async fn expire(state: &AppState) -> sqlx::Result<()> {
    let now = now_ms();
    let now_s = now / 1000;
    let late = sqlx::query!(
        "SELECT job_id FROM jobs WHERE deadline < ? AND status IN ('awaiting_spec', 'matching', 'unmatched', 'running')",
        now_s
    )
    .fetch_all(&state.read)
    .await?;
    for job in late {
        let mut tx = state.db.begin().await?;
        sqlx::query!(
            "UPDATE jobs SET status = 'expired', reason = 'the deadline passed before every replica reported; the buyer can reclaim', updated_at = ? WHERE job_id = ?",
            now,
            job.job_id
        )
        .execute(&mut *tx)
        .await?;
        sqlx::query!(
            "UPDATE assignments SET status = 'released', updated_at = ? WHERE job_id = ? AND status IN ('leased', 'accepted', 'sealed')",
            now,
            job.job_id
        )
        .execute(&mut *tx)
        .await?;
        timeline(&mut tx, &format!("job:{}", job.job_id), "coordinator", "expired", json!({}), None).await?;
        tx.commit().await?;
        state.publish(json!({ "type": "expired", "jobId": job.job_id }));
    }
    Ok(())
}

/// A provider as the coordinator sees it: on-chain registration plus liveness and busy slots.
#[derive(Debug, Clone)]
pub struct ProviderView {
    /// Address, lowercase hex.
    pub address: String,
    /// Stake, wei.
    pub stake: String,
    /// Asking price, wei per unit of fuel.
    pub price_per_fuel: String,
    /// Jobs it runs at once.
    pub capacity: i64,
    /// Region tag.
    pub region: String,
    /// Registry counters.
    pub completed: i64,
    /// Registry counters.
    pub failed: i64,
    /// Times slashed.
    pub slashed: i64,
    /// Last heartbeat, unix ms.
    pub last_heartbeat: Option<i64>,
    /// Whether that heartbeat is within the TTL.
    pub live: bool,
    /// Leases it holds now.
    pub busy: i64,
    /// Leases it accepted and never sealed (recorded here, not on chain: it signed nothing to slash).
    pub failed_leases: i64,
}

/// Every registered provider, by address.
pub async fn providers(state: &AppState) -> sqlx::Result<Vec<ProviderView>> {
    let live_after = now_ms() - state.cfg.heartbeat_ttl_ms;
    let rows = sqlx::query!(
        r#"SELECT p.address, p.stake, p.price_per_fuel, p.capacity, p.region, p.completed, p.failed, p.slashed,
                  p.last_heartbeat,
                  (SELECT COUNT(*) FROM assignments a WHERE a.provider = p.address AND a.status IN ('leased', 'accepted', 'sealed'))
                    AS "busy!: i64",
                  (SELECT COUNT(*) FROM assignments a WHERE a.provider = p.address AND a.status = 'failed') AS "failed_leases!: i64"
           FROM providers p ORDER BY p.address"#
    )
    .fetch_all(&state.read)
    .await?;
    Ok(rows
        .into_iter()
        .map(|p| ProviderView {
            live: p.last_heartbeat.is_some_and(|h| h >= live_after),
            address: p.address,
            stake: p.stake,
            price_per_fuel: p.price_per_fuel,
            capacity: p.capacity,
            region: p.region,
            completed: p.completed,
            failed: p.failed,
            slashed: p.slashed,
            last_heartbeat: p.last_heartbeat,
            busy: p.busy,
            failed_leases: p.failed_leases,
        })
        .collect())
}

async fn candidates(state: &AppState) -> sqlx::Result<Vec<Candidate>> {
    Ok(providers(state)
        .await?
        .into_iter()
        .map(|p| Candidate {
            stake: p.stake.parse().unwrap_or_default(),
            price: p.price_per_fuel.parse().unwrap_or(U256::MAX),
            free: p.capacity - p.busy,
            completed: p.completed,
            // Leases it took and let fail count against it like jobs it lost.
            failed: p.failed + p.failed_leases,
            slashed: p.slashed,
            region: p.region,
            live: p.live,
            address: p.address,
        })
        .collect())
}

/// Jobs read per page of a matching pass.
const PAGE: i64 = 64;

/// Assigns replicas to jobs that need them, oldest first, in one transaction; returns how many were
/// assigned. A pass stops reading jobs once no provider has a free slot: the rest wait (and say so)
/// until a slot frees, so a pass costs what it can assign, not the length of the queue.
async fn match_jobs(state: &AppState) -> sqlx::Result<usize> {
    let mut pool = candidates(state).await?;
    let mut assigned_total = 0;
    let mut woken: Vec<String> = Vec::new();
    let mut updates = Vec::new();
    let now = now_ms();
    let mut tx = state.db.begin().await?;
    // Pages are read after the last job of the one before (keyset, not OFFSET: this pass moves jobs
    // out of the waiting set as it goes, and an offset would then skip as many as it moved).
    let (mut after_block, mut after_job) = (i64::MIN, String::new());
    let mut stopped_early = false;
    'pages: loop {
        let jobs = sqlx::query!(
            // The page is chosen first, by merging two range scans of the `jobs_waiting` index (an IN
            // over both statuses sorted every waiting job), and the replica count is computed for its
            // rows only: a pass costs the page, not the length of the queue.
            r#"SELECT j.job_id AS "job_id!", j.block_number AS "block_number!", j.redundancy AS "redundancy!",
                  j.budget AS "budget!", j.preferred AS "preferred!", j.status AS "status!", j.reason, s.fuel_limit,
                  s.wall_clock_ms,
                  (SELECT COUNT(*) FROM assignments a WHERE a.job_id = j.job_id
                     AND a.status IN ('leased', 'accepted', 'sealed', 'revealed')) AS "active!: i64"
           FROM (SELECT job_id, redundancy, budget, preferred, status, reason, spec_hash, block_number FROM jobs
                 WHERE status = 'matching' AND (block_number, job_id) > (?1, ?2)
                 UNION ALL
                 SELECT job_id, redundancy, budget, preferred, status, reason, spec_hash, block_number FROM jobs
                 WHERE status = 'unmatched' AND (block_number, job_id) > (?1, ?2)
                 ORDER BY block_number, job_id LIMIT ?3) j
           JOIN specs s ON s.spec_hash = j.spec_hash
           ORDER BY j.block_number, j.job_id"#,
            after_block,
            after_job,
            PAGE
        )
        .fetch_all(&mut *tx)
        .await?;
        let page_len = jobs.len() as i64;
        if let Some(last) = jobs.last() {
            (after_block, after_job) = (last.block_number, last.job_id.clone());
        }
        for job in jobs {
            let need = job.redundancy - job.active;
            let budget: U256 = job.budget.parse().unwrap_or_default();
            let cost_factor = U256::from(job.fuel_limit as u64) * U256::from(job.redundancy as u64);
            let any_free = pool.iter().any(|c| c.live && c.free > 0 && c.stake >= state.cfg.min_stake);
            if !any_free
                && job.status == "unmatched"
                && job.reason.as_deref() == Some(why_unmatched(state, &pool, cost_factor, budget, &[]).as_str())
            {
                // No slot anywhere (so every job waits for the same reason), and this one already says so:
                // so do the ones after it, or the bulk update below says it for them.
                stopped_early = true;
                break 'pages;
            }
            // Who already ran (or holds) this job; only worth asking when someone could take it.
            let taken: Vec<String> = if need > 0 && any_free {
                sqlx::query_scalar!("SELECT provider FROM assignments WHERE job_id = ?", job.job_id).fetch_all(&mut *tx).await?
            } else {
                Vec::new()
            };
            let mut chosen: Vec<usize> = Vec::new();
            if any_free {
                let fits = |c: &Candidate| {
                    c.stake >= state.cfg.min_stake
                        && c.live
                        && c.free > 0
                        && c.price.checked_mul(cost_factor).is_some_and(|cost| cost <= budget)
                        && !taken.contains(&c.address)
                };
                chosen = (0..pool.len()).filter(|&i| need > 0 && fits(&pool[i])).collect();
                chosen.sort_by(|&a, &b| rank(&pool[a], &pool[b], &job.preferred));
                chosen.truncate(need.max(0) as usize);
            }
            // All the replicas a job still needs are leased together or not at all. A replica cannot
            // reveal until every replica has sealed, so one leased alone would hold its provider's
            // slot waiting for the others; with every provider's slots held that way by different
            // jobs, none could finish until the leases lapsed.
            let short = (!chosen.is_empty() && (chosen.len() as i64) < need).then_some(chosen.len());
            if short.is_some() {
                chosen.clear();
            }
            let lease_until = now + state.cfg.lease_ms + job.wall_clock_ms;
            for &i in &chosen {
                let provider = pool[i].address.clone();
                sqlx::query!(
                    "INSERT INTO assignments (job_id, provider, status, lease_expires_at, created_at, updated_at)
                 VALUES (?, ?, 'leased', ?, ?, ?)",
                    job.job_id,
                    provider,
                    lease_until,
                    now,
                    now
                )
                .execute(&mut *tx)
                .await?;
                timeline(
                    &mut tx,
                    &format!("job:{}", job.job_id),
                    "coordinator",
                    "leased",
                    json!({ "provider": provider, "leaseExpiresAt": lease_until }),
                    None,
                )
                .await?;
                pool[i].free -= 1;
                woken.push(provider);
            }
            let active = job.active + chosen.len() as i64;
            let (status, reason) = if active >= job.redundancy {
                ("running", None)
            } else {
                let why = match short {
                    Some(n) => format!("needs {need} providers with a free slot at once (its replicas seal together); {n} have one now"),
                    None => why_unmatched(state, &pool, cost_factor, budget, &taken),
                };
                if active == 0 {
                    ("unmatched", Some(why))
                } else {
                    ("matching", Some(format!("{active} of {} replicas assigned; {why}", job.redundancy)))
                }
            };
            if status != job.status || reason != job.reason {
                sqlx::query!("UPDATE jobs SET status = ?, reason = ?, updated_at = ? WHERE job_id = ?", status, reason, now, job.job_id)
                    .execute(&mut *tx)
                    .await?;
                if status != job.status {
                    timeline(&mut tx, &format!("job:{}", job.job_id), "coordinator", status, json!({ "reason": reason }), None).await?;
                }
            }
            assigned_total += chosen.len();
            if !chosen.is_empty() || status != job.status {
                updates.push(json!({ "type": "job", "jobId": job.job_id, "status": status, "reason": reason }));
            }
        }
        if page_len < PAGE {
            break;
        }
    }
    // Jobs the pass did not reach (no slot anywhere) say why rather than wait silently.
    if stopped_early {
        let why = why_unmatched(state, &pool, U256::ZERO, U256::MAX, &[]);
        let waiting = sqlx::query!(
            "UPDATE jobs SET status = 'unmatched', reason = ?, updated_at = ? WHERE status = 'matching' AND reason IS NULL
               AND NOT EXISTS (SELECT 1 FROM assignments a WHERE a.job_id = jobs.job_id
                                 AND a.status IN ('leased', 'accepted', 'sealed', 'revealed'))",
            why,
            now
        )
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if waiting > 0 {
            updates.push(json!({ "type": "jobs_waiting", "count": waiting, "reason": why }));
        }
    }
    tx.commit().await?;
    state.metrics.leases.fetch_add(assigned_total as u64, std::sync::atomic::Ordering::Relaxed);
    for update in updates {
        state.publish(update);
    }
    woken.sort_unstable();
    woken.dedup();
    for provider in &woken {
        state.wake.assigned(provider);
    }
    Ok(assigned_total)
}

fn rank(a: &Candidate, b: &Candidate, preferred: &str) -> CmpOrdering {
    (b.address == preferred)
        .cmp(&(a.address == preferred))
        .then(a.slashed.cmp(&b.slashed))
        .then(b.reputation().partial_cmp(&a.reputation()).unwrap_or(CmpOrdering::Equal))
        .then(a.price.cmp(&b.price))
        .then(b.free.cmp(&a.free))
        .then(a.region.cmp(&b.region))
        .then(a.address.cmp(&b.address))
}

/// The first rule no remaining provider meets, in the order a buyer can act on.
fn why_unmatched(state: &AppState, pool: &[Candidate], cost_factor: U256, budget: U256, taken: &[String]) -> String {
    let fresh: Vec<&Candidate> = pool.iter().filter(|c| !taken.contains(&c.address)).collect();
    if fresh.is_empty() {
        return "no other registered provider".into();
    }
    let staked: Vec<&&Candidate> = fresh.iter().filter(|c| c.stake >= state.cfg.min_stake).collect();
    if staked.is_empty() {
        return format!("no provider with enough stake (at least {} wei)", state.cfg.min_stake);
    }
    let live: Vec<&&&Candidate> = staked.iter().filter(|c| c.live).collect();
    if live.is_empty() {
        return format!("no live provider (no heartbeat in the last {} s)", state.cfg.heartbeat_ttl_ms / 1000);
    }
    let free: Vec<&&&&Candidate> = live.iter().filter(|c| c.free > 0).collect();
    if free.is_empty() {
        return "no provider with free capacity".into();
    }
    let cheapest = free.iter().map(|c| c.price.saturating_mul(cost_factor)).min().unwrap_or(U256::MAX);
    if cheapest > budget {
        return format!("no provider within budget: the cheapest asks {cheapest} wei for this job, the budget is {budget}");
    }
    "waiting for providers".into()
}
