//! The SQLite store: opened in WAL mode, migrated on start.

use std::str::FromStr;
use std::time::{SystemTime, UNIX_EPOCH};

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Sqlite, SqlitePool, Transaction};

/// Opens (creating if missing) and migrates the database at `url` (`sqlite://path` or a bare path).
pub async fn open(url: &str) -> anyhow::Result<SqlitePool> {
    let url = if url.starts_with("sqlite:") { url.to_string() } else { format!("sqlite://{url}") };
    let options = SqliteConnectOptions::from_str(&url)?
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Normal)
        .foreign_keys(true)
        .busy_timeout(std::time::Duration::from_secs(10));
    let pool = SqlitePoolOptions::new().max_connections(1).connect_with(options).await?;
    sqlx::migrate!("./migrations").run(&pool).await?;
    Ok(pool)
}

/// Read-only connections to the database `write` is open on. Each statement reads the latest committed
/// state, so a handler that reads here after its own write commits sees that write. An in-memory
/// database has no file to share, so it reads through `write` itself.
pub fn read_pool(write: &SqlitePool) -> SqlitePool {
    let options = (*write.connect_options()).clone();
    let file = options.get_filename().to_string_lossy();
    if file.is_empty() || file == ":memory:" || file.starts_with("file::memory:") {
        return write.clone();
    }
    SqlitePoolOptions::new().max_connections(4).connect_lazy_with(options.read_only(true))
}

/// Unix milliseconds now.
pub fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

/// Appends a timeline entry inside `tx`.
pub async fn timeline(
    tx: &mut Transaction<'_, Sqlite>,
    subject: &str,
    actor: &str,
    kind: &str,
    detail: serde_json::Value,
    block_number: Option<i64>,
) -> sqlx::Result<()> {
    let at = now_ms();
    let detail = detail.to_string();
    sqlx::query!(
        "INSERT INTO timeline (subject, at, actor, kind, detail, block_number) VALUES (?, ?, ?, ?, ?, ?)",
        subject,
        at,
        actor,
        kind,
        detail,
        block_number
    )
    .execute(&mut **tx)
    .await?;
    Ok(())
}
