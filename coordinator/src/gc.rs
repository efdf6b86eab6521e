//! Housekeeping: nothing anyone leaves behind is kept forever. Every minute it deletes blobs whose
//! `keep_until` has passed and that no open or active storage deal needs, unfunded specs past their
//! expiry (with their timelines), used-up sign-in nonces and sessions, and upload files a crash left
//! behind.

use std::time::Duration;

use alloy_primitives::B256;

use crate::AppState;
use crate::db::now_ms;

/// How often a pass runs.
const EVERY: Duration = Duration::from_secs(60);
/// Blobs deleted per pass at most (the next pass takes the rest).
const BATCH: i64 = 1_000;

/// What one pass removed.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Swept {
    /// Blobs deleted.
    pub blobs: usize,
    /// Unfunded specs deleted.
    pub specs: u64,
    /// Expired sign-in nonces and sessions deleted.
    pub sessions: u64,
    /// Leftover upload files removed.
    pub uploads: usize,
}

/// Runs [`pass`] every minute, starting with the blobs stored before the store kept track of them.
pub async fn run(state: AppState) {
    if let Err(e) = adopt_untracked(&state).await {
        tracing::warn!(error = %e, "could not take stock of the blob folder");
    }
    loop {
        match pass(&state).await {
            Ok(s) if s != Swept::default() => tracing::info!(?s, "housekeeping"),
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "housekeeping failed; retrying"),
        }
        tokio::time::sleep(EVERY).await;
    }
}

/// Blob files without a row (stored before uploads were tracked): kept for the retention period.
async fn adopt_untracked(state: &AppState) -> anyhow::Result<()> {
    let stored = {
        let blobs = state.blobs.clone();
        tokio::task::spawn_blocking(move || blobs.list()).await??
    };
    let now = now_ms();
    let keep_until = now + state.cfg.limits.retention_ms;
    let mut tx = state.db.begin().await?;
    for (hash, size) in stored {
        let (hash, size) = (format!("{hash:#x}"), size as i64);
        sqlx::query!(
            "INSERT OR IGNORE INTO blobs (hash, size, uploader, uploaded_at, keep_until, claimed) VALUES (?, ?, '', ?, ?, 1)",
            hash,
            size,
            now,
            keep_until
        )
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    Ok(())
}

/// One pass.
pub async fn pass(state: &AppState) -> anyhow::Result<Swept> {
    let now = now_ms();
    let mut swept = Swept::default();
    let expired = sqlx::query_scalar!(
        "SELECT b.hash FROM blobs b WHERE b.keep_until < ?
           AND NOT EXISTS (SELECT 1 FROM storage_files f JOIN storage_deals d ON d.root = f.root
                           WHERE f.blob_hash = b.hash AND d.status IN ('open', 'active'))
         LIMIT ?",
        now,
        BATCH
    )
    .fetch_all(&state.read)
    .await?;
    for hash in expired {
        // The row first: a blob without its row is adopted again at the next start, never lost track of.
        let gone = sqlx::query!("DELETE FROM blobs WHERE hash = ? AND keep_until < ?", hash, now).execute(&state.db).await?.rows_affected();
        if gone == 1
            && let Ok(parsed) = hash.parse::<B256>()
        {
            state.blobs.remove(&parsed)?;
            swept.blobs += 1;
        }
    }
    let mut tx = state.db.begin().await?;
    sqlx::query!(
        "DELETE FROM timeline WHERE subject IN (SELECT 'spec:' || spec_hash FROM specs s WHERE s.expires_at < ?
           AND NOT EXISTS (SELECT 1 FROM jobs j WHERE j.spec_hash = s.spec_hash))",
        now
    )
    .execute(&mut *tx)
    .await?;
    swept.specs = sqlx::query!(
        "DELETE FROM specs WHERE expires_at < ? AND NOT EXISTS (SELECT 1 FROM jobs j WHERE j.spec_hash = specs.spec_hash)",
        now
    )
    .execute(&mut *tx)
    .await?
    .rows_affected();
    swept.sessions = sqlx::query!("DELETE FROM siwe_nonces WHERE expires_at < ?", now).execute(&mut *tx).await?.rows_affected()
        + sqlx::query!("DELETE FROM sessions WHERE expires_at < ?", now).execute(&mut *tx).await?.rows_affected();
    tx.commit().await?;
    // A dropped upload removes its own file; these are what a crash left (an upload goes idle for
    // `body_timeout_ms` at most, and takes an hour at most).
    swept.uploads = state.blobs.sweep_tmp(Duration::from_secs(6 * 3_600))?;
    Ok(swept)
}
