//! The embedded default: one SQLite file in WAL mode.
//!
//! Writes begin with `BEGIN IMMEDIATE` so a transaction takes the write lock up
//! front instead of failing half-way with `SQLITE_BUSY` when it upgrades from a
//! read; `synchronous=FULL` because money is booked here.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};

use crate::clicks::{ClickTally, SeenVisitors, decode_keys, encode_keys};
use crate::exports_sql::export_store;
use crate::money_sql::money_store;
use crate::shared::shared_store;
use crate::stripe_sql::stripe_store;
use crate::webhooks_sql::webhook_store;
use crate::{Backend, BlockingClickWriter, NewClick, StoreError, StoreResult};

pub(crate) static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");

pub struct SqliteStore {
    pool: SqlitePool,
    /// The click writer's own connection, through rusqlite: a batch is a few
    /// cached statements stepped on one thread, where sqlx would hand every
    /// statement to its worker thread and back (two context switches each, the
    /// largest cost of the redirect under load). `synchronous=NORMAL`: a commit is
    /// durable against a crash of partnerd but is not fsynced until the next
    /// checkpoint or `FULL` commit. Clicks are not money; this halves a batch's
    /// latency, which is what the redirect waits for. Money stays on `pool` (FULL).
    clicks: Arc<Mutex<ClickConnection>>,
    /// The billing writer's own connection (see "Billing batches" below).
    billing: Arc<Mutex<rusqlite::Connection>>,
    /// The report's hours, read through rusqlite (see `shared::report_hours_in`).
    reports: Arc<Mutex<rusqlite::Connection>>,
    /// Tells the background checkpointer to stop when the store goes.
    stop_checkpoints: Arc<AtomicBool>,
}

impl Drop for SqliteStore {
    fn drop(&mut self) {
        self.stop_checkpoints.store(true, Ordering::Relaxed);
    }
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
        if options.get_filename().to_str() == Some(":memory:") || url.contains("mode=memory") {
            return Err(StoreError::Unsupported(
                "in-memory SQLite: the click writer needs a second connection to the same file",
            ));
        }
        let pool = SqlitePoolOptions::new()
            .max_connections(8)
            .connect_with(options.clone())
            .await?;
        let clicks = open_click_connection(options.get_filename())?;
        let billing = open_billing_connection(options.get_filename())?;
        let reports = open_report_connection(options.get_filename())?;
        let stop_checkpoints = Arc::new(AtomicBool::new(false));
        checkpoint_in_background(pool.clone(), stop_checkpoints.clone());
        Ok(Self {
            pool,
            clicks: Arc::new(Mutex::new(ClickConnection {
                connection: clicks,
                seen: SeenVisitors::default(),
            })),
            billing: Arc::new(Mutex::new(billing)),
            reports: Arc::new(Mutex::new(reports)),
            stop_checkpoints,
        })
    }

    async fn write(&self) -> StoreResult<sqlx::Transaction<'static, sqlx::Sqlite>> {
        Ok(self.pool.begin_with("BEGIN IMMEDIATE").await?)
    }

    /// `Store::report_hours`, in one read transaction on the report connection.
    async fn read_report_hours(
        &self,
        range: crate::ReportRange,
    ) -> StoreResult<Vec<crate::ReportHour>> {
        let connection = self.reports.clone();
        tokio::task::spawn_blocking(move || {
            use crate::money_sql::{RusqliteDb, run_ready};
            let connection = connection.lock().unwrap_or_else(|p| p.into_inner());
            let tx = CachedTx::deferred(&connection)?;
            let hours = run_ready(crate::shared::report_hours_in(&mut RusqliteDb(&tx), range))??;
            tx.commit()?;
            Ok(hours)
        })
        .await
        .map_err(|e| StoreError::Corrupt(format!("the report reader stopped: {e}")))?
    }

    /// The click connection, for the click writer's own thread.
    fn click_writer_for_a_thread(&self) -> Option<Arc<dyn BlockingClickWriter>> {
        Some(Arc::new(ClickThreadWriter(self.clicks.clone())))
    }

    /// Writes a batch of clicks and their counters in one transaction on the
    /// click connection, on a blocking thread.
    async fn write_click_batch(&self, clicks: &[NewClick]) -> StoreResult<()> {
        if clicks.is_empty() {
            return Ok(());
        }
        let writer = ClickThreadWriter(self.clicks.clone());
        let clicks = clicks.to_vec();
        tokio::task::spawn_blocking(move || writer.record_clicks(&clicks))
            .await
            .map_err(|e| StoreError::Corrupt(format!("the click writer stopped: {e}")))?
    }

    /// The report counters of hours `from..until` into `report_rollups_settled`
    /// and `report_days_settled`. Separate statements are safe here: `BEGIN IMMEDIATE` holds off every other
    /// writer, the click writer's connection included, until the commit.
    async fn move_report_hours(
        tx: &mut sqlx::Transaction<'_, sqlx::Sqlite>,
        from: i64,
        until: i64,
    ) -> StoreResult<u64> {
        sqlx::query(
            "insert into report_rollups_settled \
               (partner_id, hour, campaign_id, utm_term, clicks, bot_clicks, unique_visitors, signups) \
             select partner_id, hour, campaign_id, utm_term, clicks, bot_clicks, unique_visitors, signups \
             from report_rollups where hour >= $1 and hour < $2 order by partner_id, hour, campaign_id, utm_term \
             on conflict (partner_id, hour, campaign_id, utm_term) do update set \
               clicks = report_rollups_settled.clicks + excluded.clicks, \
               bot_clicks = report_rollups_settled.bot_clicks + excluded.bot_clicks, \
               unique_visitors = report_rollups_settled.unique_visitors + excluded.unique_visitors, \
               signups = report_rollups_settled.signups + excluded.signups",
        )
        .bind(from)
        .bind(until)
        .execute(&mut **tx)
        .await?;
        sqlx::query(
            "insert into report_days_settled \
               (partner_id, day, campaign_id, utm_term, clicks, bot_clicks, unique_visitors, signups) \
             select partner_id, hour / 24, campaign_id, utm_term, \
               sum(clicks), sum(bot_clicks), sum(unique_visitors), sum(signups) \
             from report_rollups where hour >= $1 and hour < $2 \
             group by partner_id, hour / 24, campaign_id, utm_term \
             on conflict (partner_id, day, campaign_id, utm_term) do update set \
               clicks = report_days_settled.clicks + excluded.clicks, \
               bot_clicks = report_days_settled.bot_clicks + excluded.bot_clicks, \
               unique_visitors = report_days_settled.unique_visitors + excluded.unique_visitors, \
               signups = report_days_settled.signups + excluded.signups",
        )
        .bind(from)
        .bind(until)
        .execute(&mut **tx)
        .await?;
        let deleted = sqlx::query("delete from report_rollups where hour >= $1 and hour < $2")
            .bind(from)
            .bind(until)
            .execute(&mut **tx)
            .await?;
        Ok(deleted.rows_affected())
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
        self.pool.close().await;
    }
}

/// Copies the WAL back into the database file every 100 ms, on a connection of
/// the pool rather than inside a click batch's commit. `PASSIVE` never waits for
/// readers or writers; when it has caught up, the writer's next transaction starts
/// the WAL over.
fn checkpoint_in_background(pool: SqlitePool, stop: Arc<AtomicBool>) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_millis(100));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        while !stop.load(Ordering::Relaxed) {
            tick.tick().await;
            if let Err(err) = sqlx::query("pragma wal_checkpoint(passive)")
                .execute(&pool)
                .await
            {
                if pool.is_closed() {
                    break;
                }
                tracing::warn!(%err, "WAL checkpoint failed; retrying");
            }
        }
    });
}

fn open_report_connection(path: &std::path::Path) -> StoreResult<rusqlite::Connection> {
    let connection = rusqlite::Connection::open(path)?;
    connection.busy_handler(Some(wait_for_the_write_lock))?;
    connection.pragma_update(None, "temp_store", "memory")?;
    // A partner's settled year (the index pages of ~35,000 rows) stays in memory.
    connection.pragma_update(None, "cache_size", -8192)?;
    Ok(connection)
}

fn open_click_connection(path: &std::path::Path) -> StoreResult<rusqlite::Connection> {
    // Clicks are not money: a power cut may lose the last batches, never corrupt.
    open_writer_connection(path, "normal")
}

/// A writer's wait for the write lock another connection holds (the job runner's
/// claims, the housekeeping, an admin's change): 200 sleeps of 50 µs (about
/// 0.1 ms each on Linux), then of 1 ms, giving up after about 10 s, as
/// `busy_timeout` would. SQLite's own schedule sleeps 1, 2, 5, 10, 15 … ms, so a
/// lock held for 1.1 ms kept a click batch, and every redirect waiting on it, for
/// 3 ms.
fn wait_for_the_write_lock(attempts_before: i32) -> bool {
    const FINE_STEPS: i32 = 200;
    const COARSE_STEPS: i32 = 10_000;
    if attempts_before < FINE_STEPS {
        std::thread::sleep(Duration::from_micros(50));
        true
    } else if attempts_before < FINE_STEPS + COARSE_STEPS {
        std::thread::sleep(Duration::from_millis(1));
        true
    } else {
        false
    }
}

/// A writer's own connection (the click writer's, the billing writer's).
fn open_writer_connection(
    path: &std::path::Path,
    synchronous: &str,
) -> StoreResult<rusqlite::Connection> {
    let connection = rusqlite::Connection::open(path)?;
    connection.busy_handler(Some(wait_for_the_write_lock))?;
    connection.pragma_update(None, "journal_mode", "wal")?;
    connection.pragma_update(None, "synchronous", synchronous)?;
    connection.pragma_update(None, "foreign_keys", "on")?;
    connection.pragma_update(None, "temp_store", "memory")?;
    // What the writer touches (today's counters and visitors; the money rows,
    // the ledger's and invoices' last pages and index paths) stays in memory
    // between batches instead of being read back from the file (SQLite's
    // default is 2 MiB).
    connection.pragma_update(None, "cache_size", -32768)?;
    // Checkpoints run beside the writers (`checkpoint_in_background`): one inside
    // a batch's commit holds up every caller waiting on that batch (SQLite's
    // default of 1000 pages put the redirect's p99 at half load at 8 ms, against
    // 3 ms). But a checkpoint beside a writer that never pauses cannot finish,
    // and only a finished one lets the WAL start over: so at 40 MiB the writer
    // checkpoints itself, which bounds the WAL under a flood.
    connection.pragma_update(None, "wal_autocheckpoint", 10_000)?;
    Ok(connection)
}

/// A transaction whose `BEGIN` and `COMMIT` come from the connection's statement
/// cache: rusqlite's `Transaction` runs them through `execute_batch`, which parses
/// them again for every batch (3 % of partnerd's CPU under a flood of redirects).
/// Dropped without `commit`, it rolls back, as rusqlite's does.
struct CachedTx<'c> {
    connection: &'c rusqlite::Connection,
    open: bool,
}

impl<'c> CachedTx<'c> {
    /// A writer's: the write lock up front.
    fn immediate(connection: &'c rusqlite::Connection) -> StoreResult<Self> {
        Self::begin(connection, "begin immediate")
    }

    /// A reader's: one snapshot for all its statements.
    fn deferred(connection: &'c rusqlite::Connection) -> StoreResult<Self> {
        Self::begin(connection, "begin")
    }

    fn begin(connection: &'c rusqlite::Connection, sql: &str) -> StoreResult<Self> {
        connection.prepare_cached(sql)?.execute([])?;
        Ok(Self {
            connection,
            open: true,
        })
    }

    fn commit(mut self) -> StoreResult<()> {
        self.connection.prepare_cached("commit")?.execute([])?;
        self.open = false;
        Ok(())
    }
}

impl std::ops::Deref for CachedTx<'_> {
    type Target = rusqlite::Connection;

    fn deref(&self) -> &rusqlite::Connection {
        self.connection
    }
}

impl Drop for CachedTx<'_> {
    fn drop(&mut self) {
        // A failed COMMIT (or none) leaves the transaction open: end it, so the
        // next batch can begin. Nothing to do when SQLite already rolled it back.
        if self.open && !self.connection.is_autocommit() {
            let _ = self.connection.execute_batch("rollback");
        }
    }
}

/// The click writer's connection and the visitors it has counted (see
/// `SeenVisitors`): a batch that fails to commit adds none of its own to `seen`.
struct ClickConnection {
    connection: rusqlite::Connection,
    seen: SeenVisitors,
}

/// Click batches on the click connection, on the calling thread.
struct ClickThreadWriter(Arc<Mutex<ClickConnection>>);

impl BlockingClickWriter for ClickThreadWriter {
    fn record_clicks(&self, clicks: &[NewClick]) -> StoreResult<()> {
        if clicks.is_empty() {
            return Ok(());
        }
        // A panic inside a batch rolled its transaction back when it unwound;
        // the connection itself is still sound, and `seen` only ever holds
        // days read whole and keys committed.
        let mut connection = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let ClickConnection { connection, seen } = &mut *connection;
        write_clicks(connection, seen, clicks)
    }
}

/// The clicks, the visitors new to their day and the counters, in one
/// `BEGIN IMMEDIATE` transaction: all or nothing.
fn write_clicks(
    connection: &rusqlite::Connection,
    seen: &mut SeenVisitors,
    clicks: &[NewClick],
) -> StoreResult<()> {
    let mut tally = ClickTally::new(clicks);
    let days: BTreeSet<i64> = tally.visitors.keys().map(|(day, _)| *day).collect();
    // Days not held yet are read before the write lock, which a day of a busy
    // program (millions of keys) would otherwise hold up for seconds.
    read_whole_days(connection, seen, &days)?;
    let tx = CachedTx::immediate(connection)?;
    let mut new_visitors: BTreeMap<i64, Vec<i64>> = BTreeMap::new();
    let mut logged = Vec::new();
    {
        catch_up_with_the_log(&tx, seen)?;
        // A day the housekeeping deleted since.
        read_whole_days(&tx, seen, &days)?;

        let mut insert = tx.prepare_cached(
            "insert into clicks (id, partner_id, campaign_id, at, utm_term, sub1, sub2, sub3, sub4, sub5, \
             referrer_host, agent, network, visitor, own_session) \
             values (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)",
        )?;
        for c in clicks {
            let [s1, s2, s3, s4, s5] = &c.subs;
            insert.execute(rusqlite::params![
                c.id,
                c.partner_id,
                c.campaign_id,
                c.at.millis(),
                c.utm_term,
                s1,
                s2,
                s3,
                s4,
                s5,
                c.referrer_host,
                c.agent,
                c.network,
                c.visitor,
                c.own_session,
            ])?;
        }

        let visitors: Vec<_> = tally.visitors.keys().copied().collect();
        for visitor in &visitors {
            if !seen.contains(visitor) {
                tally.count_new_visitor(visitor);
                new_visitors.entry(visitor.0).or_default().push(visitor.1);
            }
        }
        let mut log =
            tx.prepare_cached("insert into report_visitors (day, keys) values (?1, ?2)")?;
        for (day, keys) in &new_visitors {
            log.execute(rusqlite::params![day, encode_keys(keys)])?;
            logged.push(tx.last_insert_rowid());
        }

        let mut upsert = tx.prepare_cached(
            "insert into report_rollups (hour, partner_id, campaign_id, utm_term, clicks, bot_clicks, unique_visitors) \
             values (?1, ?2, ?3, ?4, ?5, ?6, ?7) \
             on conflict (hour, partner_id, campaign_id, utm_term) do update set \
             clicks = report_rollups.clicks + excluded.clicks, \
             bot_clicks = report_rollups.bot_clicks + excluded.bot_clicks, \
             unique_visitors = report_rollups.unique_visitors + excluded.unique_visitors",
        )?;
        for ((hour, partner, campaign, term), [browser, bot, unique]) in &tally.counters {
            upsert.execute(rusqlite::params![
                hour, partner, campaign, term, browser, bot, unique
            ])?;
        }
    }
    tx.commit()?;
    for ((day, keys), id) in new_visitors.into_iter().zip(logged) {
        seen.add(id, day, keys);
    }
    if let Some(newest) = days.last() {
        seen.keep_from(newest - 1);
    }
    Ok(())
}

/// Reads whole from the log each of `days` that `seen` does not hold. Outside a
/// transaction too: the rows up to the newest id, read first, were all committed
/// by then (ids are given out under the write lock), and a day the housekeeping
/// deletes meanwhile is dropped by the next catch-up.
fn read_whole_days(
    connection: &rusqlite::Connection,
    seen: &mut SeenVisitors,
    days: &BTreeSet<i64>,
) -> StoreResult<()> {
    let missing: Vec<i64> = days.iter().copied().filter(|d| !seen.holds(*d)).collect();
    if missing.is_empty() {
        return Ok(());
    }
    let upto: i64 = connection
        .prepare_cached("select coalesce(max(id), 0) from report_visitors")?
        .query_row([], |row| row.get(0))?;
    let mut of_day = connection
        .prepare_cached("select id, day, keys from report_visitors where day = ?1 and id <= ?2")?;
    // Into `seen` only once all are read: a day read in part would be taken as whole.
    let mut read = Vec::with_capacity(missing.len());
    for day in missing {
        let mut keys = HashSet::new();
        read_log(&mut of_day, [day, upto], |_, _, row| keys.extend(row))?;
        read.push((day, keys));
    }
    for (day, keys) in read {
        seen.insert_day(day, keys, upto);
    }
    Ok(())
}

/// Brings the days `seen` holds up to what the log holds, inside the batch's
/// transaction (its write lock keeps anyone from logging more until the commit):
/// the rows other connections appended since this one last looked, less the days
/// the housekeeping deleted.
fn catch_up_with_the_log(tx: &rusqlite::Connection, seen: &mut SeenVisitors) -> StoreResult<()> {
    if let Some(synced_to) = seen.synced_to {
        let mut newer = tx.prepare_cached(
            "select id, day, keys from report_visitors where id > ?1 order by id",
        )?;
        read_log(&mut newer, [synced_to], |id, day, keys| {
            seen.add(id, day, keys)
        })?;
    }
    let oldest: Option<i64> = tx
        .prepare_cached("select min(day) from report_visitors")?
        .query_row([], |row| row.get(0))?;
    seen.forget_before(oldest);
    Ok(())
}

/// Hands each `report_visitors` row a query of `id, day, keys` returns to `each`.
fn read_log<P: rusqlite::Params>(
    statement: &mut rusqlite::Statement<'_>,
    params: P,
    mut each: impl FnMut(i64, i64, &mut dyn Iterator<Item = i64>),
) -> StoreResult<()> {
    let mut rows = statement.query(params)?;
    while let Some(row) = rows.next()? {
        let blob: Vec<u8> = row.get(2)?;
        let mut keys = decode_keys(&blob).ok_or_else(|| {
            StoreError::Corrupt(format!(
                "a report_visitors row of {} bytes, not a multiple of 8",
                blob.len()
            ))
        })?;
        each(row.get(0)?, row.get(1)?, &mut keys);
    }
    Ok(())
}

// --- Billing batches -------------------------------------------------------------------
//
// The billing writer's group commit on a rusqlite connection of its own, like the
// click writer's: the batch's statements (`money_sql::billing_batch_in`, the same
// code PostgreSQL's batches run through sqlx) are stepped from rusqlite's statement
// cache on one blocking thread, instead of each being handed to sqlx's worker
// thread and back. Money: `synchronous=FULL`, `BEGIN IMMEDIATE`, and the callers
// are answered only after the commit returned.

impl SqliteStore {
    async fn rusqlite_billing_batch(
        &self,
        events: Vec<crate::money::BillingEvent>,
        hold_days: i64,
        now: partnerd_domain::Timestamp,
    ) -> StoreResult<Vec<StoreResult<(crate::money::BillingAnswer, bool)>>> {
        let connection = self.billing.clone();
        tokio::task::spawn_blocking(move || {
            // A panic inside a batch rolled its transaction back when it unwound
            // (`CachedTx`'s drop); the connection is still sound.
            use crate::money_sql::{Isolation, RusqliteDb, billing_batch_in, run_ready};
            let connection = connection.lock().unwrap_or_else(|p| p.into_inner());
            // Optimistic first, with savepoints again only after a refusal
            // (see `Isolation`); dropping the first transaction rolls it back.
            for isolation in [Isolation::Optimistic, Isolation::Savepoints] {
                let tx = CachedTx::immediate(&connection)?;
                let mut db = RusqliteDb(&tx);
                let run = billing_batch_in(&mut db, &events, isolation, hold_days, now);
                if let Some(results) = run_ready(run)?? {
                    tx.commit()?;
                    return Ok(results);
                }
            }
            Err(StoreError::Corrupt(
                "a batch with savepoints gave up".into(),
            ))
        })
        .await
        .map_err(|e| StoreError::Corrupt(format!("the billing writer stopped: {e}")))?
    }
}

fn open_billing_connection(path: &std::path::Path) -> StoreResult<rusqlite::Connection> {
    // Money: every commit is on the disk before its callers are answered.
    let connection = open_writer_connection(path, "full")?;
    // A batch's ~20 distinct statements, and the rarer paths' besides.
    connection.set_prepared_statement_cache_capacity(64);
    Ok(connection)
}

shared_store!(SqliteStore, sqlx::Sqlite);
money_store!(SqliteStore, sqlx::Sqlite, rusqlite_billing_batch);
export_store!(SqliteStore, sqlx::Sqlite);
stripe_store!(SqliteStore, sqlx::Sqlite);
webhook_store!(SqliteStore, sqlx::Sqlite);

#[cfg(test)]
mod tests {
    use partnerd_domain::Timestamp;

    use super::*;
    use crate::clicks::DAY_MS;
    use crate::{Backend, ReportRange, Store};

    fn browser_click(id: i64, at_ms: i64, visitor: &str) -> NewClick {
        NewClick {
            id,
            partner_id: 1,
            campaign_id: None,
            at: Timestamp::from_millis(at_ms),
            utm_term: None,
            subs: Default::default(),
            referrer_host: None,
            agent: "browser",
            network: "n".into(),
            visitor: visitor.into(),
            own_session: false,
        }
    }

    async fn store_with_partner(dir: &tempfile::TempDir, migrate: bool) -> SqliteStore {
        let url = format!("sqlite://{}/u.db", dir.path().display());
        let store = SqliteStore::connect(&url).await.unwrap();
        if migrate {
            store.migrate().await.unwrap();
            add_partner_one(&store).await;
        }
        store
    }

    async fn add_partner_one(store: &SqliteStore) {
        sqlx::query(
            "insert into partners (id, public_id, email, name, status, terms_version, created_at) \
             values (1, 'p1', 'p1@example.com', 'P1', 'active', 1, 0)",
        )
        .execute(&store.pool)
        .await
        .unwrap();
    }

    /// The click writer waits for a write lock another connection holds (its own
    /// busy handler), rather than failing the batch with SQLITE_BUSY.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_click_batch_waits_for_another_writers_lock() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(store_with_partner(&dir, true).await);
        let mut other = store.pool.begin_with("BEGIN IMMEDIATE").await.unwrap();
        sqlx::query("update partners set name = 'P1b' where id = 1")
            .execute(&mut *other)
            .await
            .unwrap();
        let writer = {
            let store = store.clone();
            tokio::spawn(async move { store.record_clicks(&[browser_click(1, 0, "v1")]).await })
        };
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!writer.is_finished(), "the batch must wait for the lock");
        other.commit().await.unwrap();
        writer.await.unwrap().unwrap();
        assert!(store.get_click(1).await.unwrap().is_some());
    }

    /// Migration 0014 turns the visitors already counted into log rows: none of
    /// them counts again after the upgrade.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_visitors_counted_before_the_log_are_not_counted_again() {
        let dir = tempfile::tempdir().unwrap();
        let store = store_with_partner(&dir, false).await;
        let before = sqlx::migrate::Migrator {
            migrations: MIGRATOR
                .migrations
                .iter()
                .filter(|m| m.version < 14)
                .cloned()
                .collect::<Vec<_>>()
                .into(),
            ..sqlx::migrate::Migrator::DEFAULT
        };
        before.run(&store.pool).await.unwrap();
        let day = 20_000_i64;
        let click = |id: i64, visitor: &str| browser_click(id, day * DAY_MS + id, visitor);
        add_partner_one(&store).await;
        // As 0004..0013 counted visitors: a row each in the old table (and keys of
        // both signs, as the hex conversion must keep them).
        let keys: Vec<i64> = ["v1", "v2"]
            .iter()
            .map(|v| crate::clicks::visitor_key(&click(0, v)))
            .collect();
        for key in [keys[0], keys[1], i64::MIN, -1] {
            sqlx::query("insert into report_visitors (day, visitor_key) values ($1, $2)")
                .bind(day)
                .bind(key)
                .execute(&store.pool)
                .await
                .unwrap();
        }
        store.migrate().await.unwrap();
        assert_eq!(
            store.applied_migrations().await.unwrap(),
            crate::migration_versions(Backend::Sqlite)
        );
        let logged: Vec<(i64, Vec<u8>)> =
            sqlx::query_as("select day, keys from report_visitors order by id")
                .fetch_all(&store.pool)
                .await
                .unwrap();
        let mut restored: Vec<i64> = logged
            .iter()
            .flat_map(|(d, blob)| {
                assert_eq!(*d, day);
                crate::clicks::decode_keys(blob)
                    .unwrap()
                    .collect::<Vec<_>>()
            })
            .collect();
        restored.sort_unstable();
        let mut expected = vec![keys[0], keys[1], i64::MIN, -1];
        expected.sort_unstable();
        assert_eq!(restored, expected, "every key, sign and all");

        store
            .record_clicks(&[click(1, "v1"), click(2, "v2"), click(3, "v3")])
            .await
            .unwrap();
        let rows = store
            .report_rows(ReportRange {
                partner_id: Some(1),
                from_hour: 0,
                to_hour: i64::MAX / 3_600_000,
            })
            .await
            .unwrap();
        assert_eq!(rows.len(), 1);
        assert_eq!(
            (rows[0].clicks, rows[0].unique_visitors),
            (3, 1),
            "only v3 is new"
        );
    }
}
