//! PostgreSQL: the scale-out path, several partnerd processes on one database.

use sqlx::postgres::{PgPool, PgPoolOptions};

use crate::clicks::ClickTally;
use crate::exports_sql::export_store;
use crate::money_sql::money_store;
use crate::shared::shared_store;
use crate::stripe_sql::stripe_store;
use crate::webhooks_sql::webhook_store;
use crate::{Backend, NewClick, StoreError, StoreResult};

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

    /// `Store::report_hours`, in one transaction.
    async fn read_report_hours(
        &self,
        range: crate::ReportRange,
    ) -> StoreResult<Vec<crate::ReportHour>> {
        let mut tx = self.pool.begin().await?;
        let hours = crate::shared::report_hours_in(&mut tx, range).await?;
        tx.commit().await?;
        Ok(hours)
    }

    /// None: a batch is a round trip to the server, which the async writer
    /// overlaps with the runtime's other work.
    fn click_writer_for_a_thread(&self) -> Option<std::sync::Arc<dyn crate::BlockingClickWriter>> {
        None
    }

    /// Writes a batch of clicks and their counters in one transaction, each
    /// table in one statement: columns bound as arrays and unpacked by `unnest`.
    /// Committed without waiting for the WAL flush (`synchronous_commit = off`,
    /// this transaction only): a crash of PostgreSQL's host can lose the last few
    /// hundred milliseconds of clicks, never money; the redirect waits half as long.
    async fn write_click_batch(&self, clicks: &[NewClick]) -> StoreResult<()> {
        if clicks.is_empty() {
            return Ok(());
        }
        let mut tx = self.pool.begin().await?;
        sqlx::query("set local synchronous_commit = off")
            .execute(&mut *tx)
            .await?;
        let column = |f: fn(&NewClick) -> Option<String>| clicks.iter().map(f).collect::<Vec<_>>();
        sqlx::query(
            "insert into clicks (id, partner_id, campaign_id, at, utm_term, sub1, sub2, sub3, sub4, sub5, \
             referrer_host, agent, network, visitor, own_session) \
             select * from unnest($1::bigint[], $2::bigint[], $3::bigint[], $4::bigint[], $5::text[], $6::text[], \
               $7::text[], $8::text[], $9::text[], $10::text[], $11::text[], $12::text[], $13::text[], $14::text[], $15::bigint[])",
        )
        .bind(clicks.iter().map(|c| c.id).collect::<Vec<_>>())
        .bind(clicks.iter().map(|c| c.partner_id).collect::<Vec<_>>())
        .bind(clicks.iter().map(|c| c.campaign_id).collect::<Vec<_>>())
        .bind(clicks.iter().map(|c| c.at.millis()).collect::<Vec<_>>())
        .bind(column(|c| c.utm_term.clone()))
        .bind(column(|c| c.subs[0].clone()))
        .bind(column(|c| c.subs[1].clone()))
        .bind(column(|c| c.subs[2].clone()))
        .bind(column(|c| c.subs[3].clone()))
        .bind(column(|c| c.subs[4].clone()))
        .bind(column(|c| c.referrer_host.clone()))
        .bind(clicks.iter().map(|c| c.agent).collect::<Vec<_>>())
        .bind(clicks.iter().map(|c| c.network.as_str()).collect::<Vec<_>>())
        .bind(clicks.iter().map(|c| c.visitor.as_str()).collect::<Vec<_>>())
        .bind(clicks.iter().map(|c| i64::from(c.own_session)).collect::<Vec<_>>())
        .execute(&mut *tx)
        .await?;

        let mut tally = ClickTally::new(clicks);
        let (days, keys): (Vec<i64>, Vec<i64>) = tally.visitors.keys().copied().unzip();
        let new: Vec<(i64, i64)> = sqlx::query_as(
            "insert into report_visitors (day, visitor_key) select * from unnest($1::bigint[], $2::bigint[]) \
             on conflict do nothing returning day, visitor_key",
        )
        .bind(days)
        .bind(keys)
        .fetch_all(&mut *tx)
        .await?;
        for visitor in &new {
            tally.count_new_visitor(visitor);
        }

        let rows = &tally.counters;
        sqlx::query(
            "insert into report_rollups (hour, partner_id, campaign_id, utm_term, clicks, bot_clicks, unique_visitors) \
             select * from unnest($1::bigint[], $2::bigint[], $3::bigint[], $4::text[], $5::bigint[], $6::bigint[], $7::bigint[]) \
             on conflict (hour, partner_id, campaign_id, utm_term) do update set \
             clicks = report_rollups.clicks + excluded.clicks, \
             bot_clicks = report_rollups.bot_clicks + excluded.bot_clicks, \
             unique_visitors = report_rollups.unique_visitors + excluded.unique_visitors",
        )
        .bind(rows.keys().map(|k| k.0).collect::<Vec<_>>())
        .bind(rows.keys().map(|k| k.1).collect::<Vec<_>>())
        .bind(rows.keys().map(|k| k.2).collect::<Vec<_>>())
        .bind(rows.keys().map(|k| k.3.as_str()).collect::<Vec<_>>())
        .bind(rows.values().map(|v| v[0]).collect::<Vec<_>>())
        .bind(rows.values().map(|v| v[1]).collect::<Vec<_>>())
        .bind(rows.values().map(|v| v[2]).collect::<Vec<_>>())
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// The report counters of hours `from..until` into `report_rollups_settled`
    /// and `report_days_settled`, in one statement: under READ COMMITTED a separate `delete` would see (and
    /// drop) a click counted after the `insert … select` read the hour.
    async fn move_report_hours(
        tx: &mut sqlx::Transaction<'_, sqlx::Postgres>,
        from: i64,
        until: i64,
    ) -> StoreResult<u64> {
        let (moved,): (i64,) = sqlx::query_as(
            "with moved as (delete from report_rollups where hour >= $1 and hour < $2 \
               returning partner_id, hour, campaign_id, utm_term, clicks, bot_clicks, unique_visitors, signups), \
             hours as (insert into report_rollups_settled \
               (partner_id, hour, campaign_id, utm_term, clicks, bot_clicks, unique_visitors, signups) \
             select partner_id, hour, campaign_id, utm_term, clicks, bot_clicks, unique_visitors, signups from moved \
             on conflict (partner_id, hour, campaign_id, utm_term) do update set \
               clicks = report_rollups_settled.clicks + excluded.clicks, \
               bot_clicks = report_rollups_settled.bot_clicks + excluded.bot_clicks, \
               unique_visitors = report_rollups_settled.unique_visitors + excluded.unique_visitors, \
               signups = report_rollups_settled.signups + excluded.signups), \
             days as (insert into report_days_settled \
               (partner_id, day, campaign_id, utm_term, clicks, bot_clicks, unique_visitors, signups) \
             select partner_id, hour / 24, campaign_id, utm_term, \
               sum(clicks), sum(bot_clicks), sum(unique_visitors), sum(signups) \
             from moved group by partner_id, hour / 24, campaign_id, utm_term \
             on conflict (partner_id, day, campaign_id, utm_term) do update set \
               clicks = report_days_settled.clicks + excluded.clicks, \
               bot_clicks = report_days_settled.bot_clicks + excluded.bot_clicks, \
               unique_visitors = report_days_settled.unique_visitors + excluded.unique_visitors, \
               signups = report_days_settled.signups + excluded.signups) \
             select count(*) from moved",
        )
        .bind(from)
        .bind(until)
        .fetch_one(&mut **tx)
        .await?;
        Ok(moved as u64)
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
money_store!(PgStore, sqlx::Postgres);
export_store!(PgStore, sqlx::Postgres);
stripe_store!(PgStore, sqlx::Postgres);
webhook_store!(PgStore, sqlx::Postgres);
