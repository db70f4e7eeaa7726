//! The embedded default: one SQLite file in WAL mode.
//!
//! Writes begin with `BEGIN IMMEDIATE` so a transaction takes the write lock up
//! front instead of failing half-way with `SQLITE_BUSY` when it upgrades from a
//! read; `synchronous=FULL` because money is booked here.

use std::str::FromStr;
use std::time::Duration;

use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};

use crate::shared::shared_store;
use crate::{Backend, StoreError, StoreResult};

pub(crate) static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");

pub struct SqliteStore {
    pool: SqlitePool,
    /// One connection for click batches, with `synchronous=NORMAL`: a commit is
    /// durable against a crash of partnerd but is not fsynced until the next
    /// checkpoint or `FULL` commit. Clicks are not money; this halves a batch's
    /// latency, which is what the redirect waits for. Money stays on `pool` (FULL).
    clicks: SqlitePool,
}

impl SqliteStore {
    const BACKEND: Backend = Backend::Sqlite;

    /// Jobs due (or whose lease ran out); SQLite has one writer at a time, and
    /// the claim runs in a `BEGIN IMMEDIATE` transaction, so no row locks are needed.
    const CLAIM_JOBS_SQL: &'static str = "update jobs set status = 'running', locked_by = $1, locked_until = $2, attempts = attempts + 1 \
         where id in (select id from jobs where (status = 'queued' and run_at <= $3) or (status = 'running' and locked_until < $3) \
         order by run_at, id limit $4) \
         returning id, kind, payload, status, run_at, attempts, max_attempts, locked_by, last_error";

    const DUE_SCHEDULES_SQL: &'static str = "select name, kind, interval_seconds, next_run_at from job_schedules where next_run_at <= $1 order by name";

    /// Opens (creating if needed) the database a `sqlite://PATH` URL names.
    pub async fn connect(url: &str) -> StoreResult<Self> {
        let options = SqliteConnectOptions::from_str(url)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(10))
            .pragma("temp_store", "memory");
        let pool = SqlitePoolOptions::new()
            .max_connections(8)
            .connect_with(options.clone())
            .await?;
        let clicks = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(options.synchronous(SqliteSynchronous::Normal))
            .await?;
        Ok(Self { pool, clicks })
    }

    async fn write(&self) -> StoreResult<sqlx::Transaction<'static, sqlx::Sqlite>> {
        Ok(self.pool.begin_with("BEGIN IMMEDIATE").await?)
    }

    /// The transaction for a batch of clicks (see the `clicks` field).
    async fn write_clicks(&self) -> StoreResult<sqlx::Transaction<'static, sqlx::Sqlite>> {
        Ok(self.clicks.begin_with("BEGIN IMMEDIATE").await?)
    }

    /// Nothing to do: `BEGIN IMMEDIATE` already makes writers take turns.
    async fn lock_manager_assignment(
        _tx: &mut sqlx::Transaction<'_, sqlx::Sqlite>,
    ) -> StoreResult<()> {
        Ok(())
    }

    /// `VACUUM INTO` writes a consistent snapshot while other connections keep
    /// reading and writing; the target must not exist yet.
    async fn backup(&self, path: &std::path::Path) -> StoreResult<()> {
        if path.exists() {
            return Err(StoreError::Invalid("the backup file already exists"));
        }
        let target = path
            .to_str()
            .ok_or(StoreError::Invalid("the backup path is not valid UTF-8"))?;
        sqlx::query("vacuum into $1")
            .bind(target)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Runs SQLite's own integrity check, for `partnerd restore`.
    pub async fn integrity_check(&self) -> StoreResult<()> {
        let (result,): (String,) = sqlx::query_as("pragma integrity_check")
            .fetch_one(&self.pool)
            .await?;
        if result == "ok" {
            Ok(())
        } else {
            Err(StoreError::Corrupt(result))
        }
    }

    pub async fn close(&self) {
        self.clicks.close().await;
        self.pool.close().await;
    }
}

shared_store!(SqliteStore, sqlx::Sqlite);
