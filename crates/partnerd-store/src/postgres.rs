//! PostgreSQL: the scale-out path, several partnerd processes on one database.

use sqlx::postgres::{PgPool, PgPoolOptions};

use crate::shared::shared_store;
use crate::{Backend, StoreError, StoreResult};

pub(crate) static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

pub struct PgStore {
    pool: PgPool,
}

impl PgStore {
    const BACKEND: Backend = Backend::Postgres;

    /// `FOR UPDATE SKIP LOCKED` lets several processes claim at once without
    /// waiting on each other or taking the same job twice.
    const CLAIM_JOBS_SQL: &'static str = "update jobs set status = 'running', locked_by = $1, locked_until = $2, attempts = attempts + 1 \
         where id in (select id from jobs where (status = 'queued' and run_at <= $3) or (status = 'running' and locked_until < $3) \
         order by run_at, id limit $4 for update skip locked) \
         returning id, kind, payload, status, run_at, attempts, max_attempts, locked_by, last_error";

    const DUE_SCHEDULES_SQL: &'static str = "select name, kind, interval_seconds, next_run_at from job_schedules \
         where next_run_at <= $1 order by name for update skip locked";

    pub async fn connect(url: &str) -> StoreResult<Self> {
        // A short acquire timeout so an unreachable server is reported with its
        // cause within seconds instead of after the pool's default 30 s.
        let pool = PgPoolOptions::new()
            .max_connections(16)
            .acquire_timeout(std::time::Duration::from_secs(10))
            .connect(url)
            .await?;
        Ok(Self { pool })
    }

    async fn write(&self) -> StoreResult<sqlx::Transaction<'static, sqlx::Postgres>> {
        Ok(self.pool.begin().await?)
    }

    /// The transaction for a batch of clicks: committed without waiting for the
    /// WAL flush (`synchronous_commit = off`, this transaction only). A crash of
    /// PostgreSQL's host can lose the last few hundred milliseconds of clicks,
    /// never money; the redirect waits half as long.
    async fn write_clicks(&self) -> StoreResult<sqlx::Transaction<'static, sqlx::Postgres>> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("set local synchronous_commit = off")
            .execute(&mut *tx)
            .await?;
        Ok(tx)
    }

    /// R-ACC-2 picks the least-loaded manager from the current counts; without a
    /// lock two concurrent sign-ups read the same counts and pick the same one.
    /// A transaction-scoped advisory lock serialises only the assignments.
    async fn lock_manager_assignment(
        tx: &mut sqlx::Transaction<'_, sqlx::Postgres>,
    ) -> StoreResult<()> {
        sqlx::query("select pg_advisory_xact_lock(7261001)")
            .execute(&mut **tx)
            .await?;
        Ok(())
    }

    async fn backup(&self, _path: &std::path::Path) -> StoreResult<()> {
        Err(StoreError::Unsupported(
            "on PostgreSQL use pg_dump to back up and pg_restore to restore",
        ))
    }
}

shared_store!(PgStore, sqlx::Postgres);
