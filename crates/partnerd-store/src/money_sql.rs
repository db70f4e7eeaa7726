//! The statements of [`MoneyStore`](crate::MoneyStore), written once for both
//! engines (like `shared.rs`): `money_store!` implements it for a backend type
//! that `shared_store!` was expanded for. The one thing that differs is row
//! locking: PostgreSQL locks the rows a booking reads (`for update`), because
//! several processes book at once; on SQLite every write transaction starts with
//! `BEGIN IMMEDIATE`, so writers already take turns and there is nothing to lock.

use std::collections::BTreeMap;

use partnerd_domain::commission::{Chargeback, CommissionRate, Invoice, Payment, Review};
use partnerd_domain::ledger::{
    Account, LedgerError, Lot, PartnerBalances, PartnerMoney, PayoutItem, PayoutStatus, Source,
    Transfer, Withdrawal, WithdrawalStatus,
};
use partnerd_domain::{Currency, Timestamp};

use crate::money::{
    BillingAnswer, BillingEvent, ChargebackChange, EventKey, NewCancellation, NewChargeback,
    NewPayment, NewRefund, PayoutItemRow, TransferRow, WithdrawalRow,
};
use crate::{StoreError, StoreResult};

pub(crate) fn corrupt(what: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(what.to_string())
}

pub(crate) fn currency(code: &str) -> StoreResult<Currency> {
    Currency::parse(code).map_err(|e| corrupt(format!("stored currency {code:?}: {e}")))
}

pub(crate) fn review_str(review: Review) -> &'static str {
    match review {
        Review::NotNeeded => "not_needed",
        Review::Pending => "pending",
        Review::Approved => "approved",
        Review::Rejected => "rejected",
    }
}

pub(crate) fn parse_review(value: &str) -> StoreResult<Review> {
    Ok(match value {
        "not_needed" => Review::NotNeeded,
        "pending" => Review::Pending,
        "approved" => Review::Approved,
        "rejected" => Review::Rejected,
        other => return Err(corrupt(format!("stored review {other:?}"))),
    })
}

fn account(value: &str) -> StoreResult<Account> {
    Account::parse(value).ok_or_else(|| corrupt(format!("stored account {value:?}")))
}

/// `ledger_transfers` columns, in the order [`transfer_row`] reads them.
pub(crate) const TRANSFER_COLUMNS: &str = "id, source, leg, partner_id, currency, debit, credit, amount, invoice_id, release_at, created_at";

pub(crate) type TransferTuple = (
    i64,
    String,
    i64,
    i64,
    String,
    String,
    String,
    i64,
    Option<String>,
    Option<i64>,
    i64,
);

pub(crate) fn transfer_row(row: TransferTuple) -> StoreResult<TransferRow> {
    let (id, source, leg, partner_id, code, debit, credit, amount, invoice, release_at, created) =
        row;
    Ok(TransferRow {
        id,
        transfer: Transfer {
            source: Source::parse(&source).map_err(corrupt)?,
            leg: u32::try_from(leg).map_err(corrupt)?,
            partner_id,
            currency: currency(&code)?,
            debit: account(&debit)?,
            credit: account(&credit)?,
            amount,
            invoice,
            release_at: release_at.map(Timestamp::from_millis),
        },
        created_at: Timestamp::from_millis(created),
    })
}

/// `partner_money` balance columns, in [`balances`]' order.
pub(crate) const BALANCE_COLUMNS: &str =
    "earned, held, on_review, available, in_flight, paid, clawback";

pub(crate) type BalanceTuple = (i64, i64, i64, i64, i64, i64, i64);

pub(crate) fn balances(row: BalanceTuple) -> PartnerBalances {
    let (earned, held, on_review, available, in_flight, paid, clawback) = row;
    PartnerBalances {
        earned,
        held,
        on_review,
        available,
        in_flight,
        paid,
        clawback,
    }
}

pub(crate) fn lot(
    release_at: Option<i64>,
    held: i64,
    on_review: i64,
    releases: i64,
) -> StoreResult<Lot> {
    Ok(Lot {
        release_at: release_at.map(Timestamp::from_millis),
        held,
        on_review,
        releases: u32::try_from(releases).map_err(corrupt)?,
    })
}

/// `withdrawals` columns, in [`withdrawal_row`]'s order.
pub(crate) const WITHDRAWAL_COLUMNS: &str =
    "id, partner_id, currency, amount, status, requested_at, decided_at, reason";

pub(crate) type WithdrawalTuple = (
    String,
    i64,
    String,
    i64,
    String,
    i64,
    Option<i64>,
    Option<String>,
);

pub(crate) fn withdrawal_row(row: WithdrawalTuple) -> StoreResult<WithdrawalRow> {
    let (id, partner_id, code, amount, status, requested_at, decided_at, reason) = row;
    Ok(WithdrawalRow {
        withdrawal: Withdrawal {
            id,
            partner_id,
            currency: currency(&code)?,
            amount,
            status: WithdrawalStatus::parse(&status)
                .ok_or_else(|| corrupt(format!("stored withdrawal status {status:?}")))?,
        },
        requested_at: Timestamp::from_millis(requested_at),
        decided_at: decided_at.map(Timestamp::from_millis),
        reason,
    })
}

/// `payout_items` columns, in [`payout_item_row`]'s order.
pub(crate) const PAYOUT_COLUMNS: &str = "withdrawal_id, partner_id, currency, amount, status, receiver, sender_batch_id, payout_batch_id, payout_item_id, created_at, submitted_at, via";

pub(crate) type PayoutTuple = (
    String,
    i64,
    String,
    i64,
    String,
    String,
    String,
    Option<String>,
    Option<String>,
    i64,
    Option<i64>,
    String,
);

pub(crate) fn payout_item_row(row: PayoutTuple) -> StoreResult<PayoutItemRow> {
    let (
        withdrawal_id,
        partner_id,
        code,
        amount,
        status,
        receiver,
        sender,
        batch,
        item,
        created,
        submitted,
        via,
    ) = row;
    Ok(PayoutItemRow {
        item: PayoutItem {
            withdrawal_id,
            partner_id,
            currency: currency(&code)?,
            amount,
            status: PayoutStatus::parse(&status)
                .ok_or_else(|| corrupt(format!("stored payout status {status:?}")))?,
        },
        receiver,
        sender_batch_id: sender,
        payout_batch_id: batch,
        payout_item_id: item,
        created_at: Timestamp::from_millis(created),
        submitted_at: submitted.map(Timestamp::from_millis),
        via,
    })
}

/// `invoices` columns, in [`InvoiceState::from_row`]'s order.
/// PROGRAM.md's new paying customers of partner `$1`, each with `first_paid`:
/// a customer credited to the partner counts once, on the date of the first
/// payment that was not refunded in full (a payment refunded in full is as if it
/// never was, so a later payment may still make the customer count). R-ACC-4.
pub(crate) const FIRST_PAYMENTS: &str = "select customer_id, min(paid_at) as first_paid from invoices i \
     where partner_id = $1 and amount > 0 \
     and amount > (select coalesce(sum(r.amount), 0) from invoice_refunds r where r.invoice_id = i.id) \
     group by customer_id";

pub(crate) const INVOICE_COLUMNS: &str = "id, customer_id, subscription_id, partner_id, currency, amount, commission_rate, paid_at, review, review_round, booked";

pub(crate) type InvoiceTuple = (
    String,
    Option<String>,
    Option<String>,
    Option<i64>,
    Option<String>,
    Option<i64>,
    Option<i64>,
    Option<i64>,
    String,
    i64,
    i64,
);

/// An invoice as stored: the domain's [`Invoice`] and what only the store keeps.
#[derive(Debug, Clone)]
pub(crate) struct InvoiceState {
    pub invoice: Invoice,
    pub customer_id: Option<String>,
    pub subscription_id: Option<String>,
    /// The payment of a customer nobody is credited for: amount, currency and
    /// time, recorded so a replay is recognised; it earns no commission.
    pub uncredited: Option<(i64, Currency, Timestamp)>,
    /// Numbers the review cases (`rev:` / `apr:` `{invoice}/{n}`).
    pub review_round: i64,
    /// The credited revenue as loaded ([`InvoiceState::revenue`]), so the event's
    /// change to the report is the difference (R-REP-2).
    pub revenue_loaded: i64,
    /// Whether the payment itself was known when loaded: a customer counts as
    /// new in the report with the event that brings their payment, not with a
    /// later reinstatement that brings the revenue back.
    pub payment_loaded: bool,
    /// Whether the row was missing when loaded: the invoice has no ledger lot yet.
    pub fresh: bool,
    /// Whether the row is in the database. A payment's missing row is not
    /// inserted empty and updated at the end: [`save_invoice`] inserts it once,
    /// with its values (the update, with the indexes it changed, was the
    /// costliest statement of a booking).
    pub stored: bool,
    /// The customer's sign-up, when this event read it already.
    pub signup: Option<SignupRow>,
}

impl InvoiceState {
    pub(crate) fn from_row(
        row: InvoiceTuple,
        refunds: Vec<(String, i64)>,
        chargebacks: Vec<(String, Option<i64>, Option<i64>)>,
    ) -> StoreResult<Self> {
        let (
            id,
            customer_id,
            subscription_id,
            partner,
            code,
            amount,
            rate,
            paid_at,
            review,
            round,
            booked,
        ) = row;
        let mut invoice = Invoice::new(id);
        let mut uncredited = None;
        if let (Some(code), Some(amount), Some(paid_at)) = (code, amount, paid_at) {
            let currency = currency(&code)?;
            let paid_at = Timestamp::from_millis(paid_at);
            match (partner, rate) {
                (Some(partner_id), Some(rate)) => {
                    invoice.payment = Some(Payment {
                        partner_id,
                        currency,
                        amount,
                        rate: CommissionRate::from_percent(rate).map_err(corrupt)?,
                        paid_at,
                        under_review: false,
                    });
                }
                _ => uncredited = Some((amount, currency, paid_at)),
            }
        }
        invoice.refunds = refunds.into_iter().collect();
        invoice.chargebacks = chargebacks
            .into_iter()
            .map(|(id, withdrawn, reinstated)| {
                (
                    id,
                    Chargeback {
                        withdrawn,
                        reinstated,
                    },
                )
            })
            .collect::<BTreeMap<_, _>>();
        invoice.review = parse_review(&review)?;
        invoice.booked = booked;
        let mut state = Self {
            invoice,
            customer_id,
            subscription_id,
            uncredited,
            review_round: round,
            revenue_loaded: 0,
            payment_loaded: false,
            fresh: false,
            stored: true,
            signup: None,
        };
        state.revenue_loaded = state.revenue();
        state.payment_loaded = state.invoice.payment.is_some();
        Ok(state)
    }

    /// What the credited customer paid on this invoice net of refunds and open
    /// chargebacks (never below zero): the report's revenue (R-REP-2). Zero
    /// while the payment is unknown or nobody is credited.
    pub(crate) fn revenue(&self) -> i64 {
        self.invoice.payment.as_ref().map_or(0, |payment| {
            let net = i128::from(payment.amount) - self.invoice.refunded();
            i64::try_from(net.max(0)).unwrap_or(i64::MAX)
        })
    }

    /// The answer a billing event on this invoice gets.
    pub(crate) fn answer(&self, booked: i64) -> BillingAnswer {
        let payment = self.invoice.payment.as_ref();
        BillingAnswer {
            payment_id: Some(self.invoice.id.clone()),
            partner_id: payment.map(|p| p.partner_id),
            currency: payment.map(|p| p.currency).or(self.uncredited.map(|u| u.1)),
            commission: self.invoice.booked,
            booked,
            subscription_id: self.subscription_id.clone(),
        }
    }

    /// The review case the invoice is in: `{invoice}/{round}`.
    pub(crate) fn review_id(&self) -> String {
        format!("{}/{}", self.invoice.id, self.review_round)
    }
}

// --- the billing events' statements, once for every connection ---------------------
//
// A billing event (and the group commit of many) is written once, as generic code
// over [`BillingDb`]: a transaction that runs a statement and reads rows. sqlx's
// transactions implement it on both engines; on SQLite the group commit runs it on
// its own rusqlite connection instead (`sqlite.rs`), stepping cached statements on
// one blocking thread, where sqlx hands every statement to its worker thread and
// back (two thread wake-ups each, most of a booking's time under load). The money
// rules stay in `partnerd_domain`; the statements and the order they run in are
// these, whichever connection runs them. Statements use `$n` parameters, which
// SQLite (sqlx and rusqlite alike) and PostgreSQL all read.

/// A statement's parameter, typed even when null (PostgreSQL types its parameters).
#[derive(Debug, Clone, Copy)]
pub(crate) enum Arg<'a> {
    Int(Option<i64>),
    Text(Option<&'a str>),
}

impl From<i64> for Arg<'_> {
    fn from(v: i64) -> Self {
        Arg::Int(Some(v))
    }
}

impl From<Option<i64>> for Arg<'_> {
    fn from(v: Option<i64>) -> Self {
        Arg::Int(v)
    }
}

impl<'a> From<&'a str> for Arg<'a> {
    fn from(v: &'a str) -> Self {
        Arg::Text(Some(v))
    }
}

impl<'a> From<&'a String> for Arg<'a> {
    fn from(v: &'a String) -> Self {
        Arg::Text(Some(v))
    }
}

impl<'a> From<Option<&'a str>> for Arg<'a> {
    fn from(v: Option<&'a str>) -> Self {
        Arg::Text(v)
    }
}

impl<'a> From<&'a Option<String>> for Arg<'a> {
    fn from(v: &'a Option<String>) -> Self {
        Arg::Text(v.as_deref())
    }
}

/// `[a, b, …]` as statement parameters.
macro_rules! args {
    ($($value:expr),* $(,)?) => {
        [$($crate::money_sql::Arg::from($value)),*]
    };
}
pub(crate) use args;

/// A row as a tuple, read the same from every connection.
pub(crate) trait Record:
    Sized
    + Send
    + Unpin
    + for<'r> sqlx::FromRow<'r, sqlx::sqlite::SqliteRow>
    + for<'r> sqlx::FromRow<'r, sqlx::postgres::PgRow>
{
    fn from_rusqlite(row: &rusqlite::Row<'_>) -> rusqlite::Result<Self>;
}

macro_rules! record_tuple {
    ($($t:ident $i:tt),+) => {
        impl<$($t),+> Record for ($($t,)+)
        where
            ($($t,)+): for<'r> sqlx::FromRow<'r, sqlx::sqlite::SqliteRow>
                + for<'r> sqlx::FromRow<'r, sqlx::postgres::PgRow>,
            $($t: rusqlite::types::FromSql + Send + Unpin),+
        {
            fn from_rusqlite(row: &rusqlite::Row<'_>) -> rusqlite::Result<Self> {
                Ok(($(row.get::<_, $t>($i)?,)+))
            }
        }
    };
}

record_tuple!(A 0);
record_tuple!(A 0, B 1);
record_tuple!(A 0, B 1, C 2);
record_tuple!(A 0, B 1, C 2, D 3);
record_tuple!(A 0, B 1, C 2, D 3, E 4);
record_tuple!(A 0, B 1, C 2, D 3, E 4, F 5);
record_tuple!(A 0, B 1, C 2, D 3, E 4, F 5, G 6);
record_tuple!(A 0, B 1, C 2, D 3, E 4, F 5, G 6, H 7, I 8, J 9, K 10);

/// A transaction that billing events are written in. Its futures are `Send`
/// so that sqlx's can be awaited from the store's `async_trait` methods.
pub(crate) trait BillingDb {
    const BACKEND: crate::Backend;
    /// Runs a statement; how many rows it changed.
    fn execute(
        &mut self,
        sql: &str,
        args: &[Arg<'_>],
    ) -> impl std::future::Future<Output = StoreResult<u64>> + Send;
    fn fetch_all<T: Record>(
        &mut self,
        sql: &str,
        args: &[Arg<'_>],
    ) -> impl std::future::Future<Output = StoreResult<Vec<T>>> + Send;
}

macro_rules! sqlx_billing_db {
    ($db:ty, $backend:expr) => {
        impl BillingDb for sqlx::Transaction<'_, $db> {
            const BACKEND: crate::Backend = $backend;

            fn execute(
                &mut self,
                sql: &str,
                args: &[Arg<'_>],
            ) -> impl std::future::Future<Output = StoreResult<u64>> + Send {
                async move {
                    let mut query = sqlx::query(sql);
                    for arg in args {
                        query = match *arg {
                            Arg::Int(v) => query.bind(v),
                            Arg::Text(v) => query.bind(v),
                        };
                    }
                    Ok(query.execute(&mut **self).await?.rows_affected())
                }
            }

            fn fetch_all<T: Record>(
                &mut self,
                sql: &str,
                args: &[Arg<'_>],
            ) -> impl std::future::Future<Output = StoreResult<Vec<T>>> + Send {
                async move {
                    let mut query = sqlx::query_as::<_, T>(sql);
                    for arg in args {
                        query = match *arg {
                            Arg::Int(v) => query.bind(v),
                            Arg::Text(v) => query.bind(v),
                        };
                    }
                    Ok(query.fetch_all(&mut **self).await?)
                }
            }
        }
    };
}

sqlx_billing_db!(sqlx::Sqlite, crate::Backend::Sqlite);
sqlx_billing_db!(sqlx::Postgres, crate::Backend::Postgres);

/// A rusqlite transaction as a [`BillingDb`]: every statement runs when it is
/// called, on the caller's thread, from the connection's statement cache; its
/// future is ready at once (see [`run_ready`]).
pub(crate) struct RusqliteDb<'c>(pub(crate) &'c rusqlite::Connection);

impl RusqliteDb<'_> {
    /// A cached statement with `args` bound by their `$n` names.
    fn bound(&self, sql: &str, args: &[Arg<'_>]) -> StoreResult<rusqlite::CachedStatement<'_>> {
        let mut statement = self.0.prepare_cached(sql)?;
        for index in 1..=statement.parameter_count() {
            let arg = statement
                .parameter_name(index)
                .and_then(|name| name.strip_prefix('$'))
                .and_then(|n| n.parse::<usize>().ok())
                .and_then(|n| n.checked_sub(1))
                .and_then(|n| args.get(n))
                .copied()
                .ok_or_else(|| corrupt(format!("parameter {index} of {sql:?} is not bound")))?;
            match arg {
                Arg::Int(v) => statement.raw_bind_parameter(index, v)?,
                Arg::Text(v) => statement.raw_bind_parameter(index, v)?,
            }
        }
        Ok(statement)
    }
}

impl BillingDb for RusqliteDb<'_> {
    const BACKEND: crate::Backend = crate::Backend::Sqlite;

    fn execute(
        &mut self,
        sql: &str,
        args: &[Arg<'_>],
    ) -> impl std::future::Future<Output = StoreResult<u64>> + Send {
        let result = self
            .bound(sql, args)
            .and_then(|mut statement| Ok(statement.raw_execute()? as u64));
        std::future::ready(result)
    }

    fn fetch_all<T: Record>(
        &mut self,
        sql: &str,
        args: &[Arg<'_>],
    ) -> impl std::future::Future<Output = StoreResult<Vec<T>>> + Send {
        let result = self.bound(sql, args).and_then(|mut statement| {
            let mut rows = statement.raw_query();
            let mut records = Vec::new();
            while let Some(row) = rows.next()? {
                records.push(T::from_rusqlite(row)?);
            }
            Ok(records)
        });
        std::future::ready(result)
    }
}

/// The output of a future that never waits: generic billing code run on a
/// [`RusqliteDb`], whose every statement is ready when called.
pub(crate) fn run_ready<F: std::future::Future>(future: F) -> StoreResult<F::Output> {
    let mut future = std::pin::pin!(future);
    let mut context = std::task::Context::from_waker(std::task::Waker::noop());
    match future.as_mut().poll(&mut context) {
        std::task::Poll::Ready(output) => Ok(output),
        std::task::Poll::Pending => Err(corrupt("a synchronous billing batch waited")),
    }
}

/// The first row, if any.
pub(crate) async fn fetch_optional<T: Record, D: BillingDb>(
    db: &mut D,
    sql: &str,
    args: &[Arg<'_>],
) -> StoreResult<Option<T>> {
    Ok(db.fetch_all(sql, args).await?.into_iter().next())
}

/// The first row; a statement that returns none is a database error, as sqlx's
/// `fetch_one` has it.
pub(crate) async fn fetch_one<T: Record, D: BillingDb>(
    db: &mut D,
    sql: &str,
    args: &[Arg<'_>],
) -> StoreResult<T> {
    fetch_optional(db, sql, args)
        .await?
        .ok_or(StoreError::Database(sqlx::Error::RowNotFound))
}

/// A unique constraint's refusal as [`StoreError::Conflict`], from either driver.
pub(crate) fn on_unique(err: StoreError, field: &'static str) -> StoreError {
    match err {
        StoreError::Database(sqlx::Error::Database(db)) if db.is_unique_violation() => {
            StoreError::Conflict { field }
        }
        StoreError::Sqlite(rusqlite::Error::SqliteFailure(e, _))
            if matches!(
                e.extended_code,
                rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE
                    | rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY
            ) =>
        {
            StoreError::Conflict { field }
        }
        other => other,
    }
}

/// What a read that a booking depends on appends: a row lock on PostgreSQL;
/// nothing on SQLite, whose writers already take turns.
pub(crate) fn row_lock(backend: crate::Backend) -> &'static str {
    match backend {
        crate::Backend::Postgres => " for update",
        crate::Backend::Sqlite => "",
    }
}

/// Records a billing event's key, or returns the answer it got the first time.
/// On PostgreSQL a concurrent delivery of the same event waits on the key's
/// index entry until the first one commits.
async fn claim_event<D: BillingDb>(
    db: &mut D,
    key: &EventKey,
    kind: &str,
    request: &str,
    now: Timestamp,
) -> StoreResult<Option<BillingAnswer>> {
    let inserted = db
        .execute(
            "insert into billing_events (origin, event_id, kind, request, answer, received_at) \
             values ($1, $2, $3, $4, '', $5) on conflict (origin, event_id) do nothing",
            &args![
                key.origin.as_str(),
                &key.event_id,
                kind,
                request,
                now.millis()
            ],
        )
        .await?;
    if inserted == 1 {
        return Ok(None);
    }
    let (known_kind, known_request, answer): (String, String, String) = fetch_one(
        db,
        "select kind, request, answer from billing_events where origin = $1 and event_id = $2",
        &args![key.origin.as_str(), &key.event_id],
    )
    .await?;
    if known_kind != kind || known_request != request {
        return Err(StoreError::Conflict { field: "id" });
    }
    serde_json::from_str(&answer).map(Some).map_err(corrupt)
}

async fn finish_event<D: BillingDb>(
    db: &mut D,
    key: &EventKey,
    answer: &BillingAnswer,
) -> StoreResult<()> {
    let answer = serde_json::to_string(answer).map_err(corrupt)?;
    db.execute(
        "update billing_events set answer = $3 where origin = $1 and event_id = $2",
        &args![key.origin.as_str(), &key.event_id, &answer],
    )
    .await?;
    Ok(())
}

/// What [`lock_invoice`] does when the invoice has no row yet: an event may
/// name a payment that has not arrived.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum IfMissing {
    /// `NotFound`.
    Fail,
    /// Insert the empty row now: the event's own rows (a refund's, a
    /// chargeback's) refer to it.
    Insert,
    /// Leave the row to [`save_invoice`], which inserts it once with its
    /// values (a payment's).
    Defer,
}

/// Loads and locks an invoice with its refunds and chargebacks.
pub(crate) async fn lock_invoice<D: BillingDb>(
    db: &mut D,
    id: &str,
    missing: IfMissing,
    now: Timestamp,
) -> StoreResult<InvoiceState> {
    // A row that is not there yet: its columns are the defaults and nothing
    // refers to it, so there is nothing more to read.
    let missing_row = |stored: bool| -> StoreResult<InvoiceState> {
        let row = (
            id.to_owned(),
            None,
            None,
            None,
            None,
            None,
            None,
            None,
            review_str(Review::NotNeeded).to_owned(),
            0,
            0,
        );
        let mut state = InvoiceState::from_row(row, Vec::new(), Vec::new())?;
        state.fresh = true;
        state.stored = stored;
        Ok(state)
    };
    if missing == IfMissing::Insert {
        let created = db
            .execute(
                "insert into invoices (id, created_at, updated_at) values ($1, $2, $2) on conflict (id) do nothing",
                &args![id, now.millis()],
            )
            .await?;
        if created == 1 {
            // This transaction made the row, and so holds it locked.
            return missing_row(true);
        }
    }
    let sql = format!(
        "select {INVOICE_COLUMNS} from invoices where id = $1{}",
        row_lock(D::BACKEND)
    );
    let Some(row) = fetch_optional::<InvoiceTuple, _>(db, &sql, &args![id]).await? else {
        return match missing {
            IfMissing::Defer => missing_row(false),
            IfMissing::Fail | IfMissing::Insert => Err(StoreError::NotFound),
        };
    };
    let refunds: Vec<(String, i64)> = db
        .fetch_all(
            "select id, amount from invoice_refunds where invoice_id = $1",
            &args![id],
        )
        .await?;
    let chargebacks: Vec<(String, Option<i64>, Option<i64>)> = db
        .fetch_all(
            "select id, withdrawn, reinstated from invoice_chargebacks where invoice_id = $1",
            &args![id],
        )
        .await?;
    InvoiceState::from_row(row, refunds, chargebacks)
}

pub(crate) async fn save_invoice<D: BillingDb>(
    db: &mut D,
    state: &InvoiceState,
    now: Timestamp,
) -> StoreResult<()> {
    let invoice = &state.invoice;
    let (partner, code, amount, rate, paid_at) = match (&invoice.payment, state.uncredited) {
        (Some(p), _) => (
            Some(p.partner_id),
            Some(p.currency.code()),
            Some(p.amount),
            Some(p.rate.percent()),
            Some(p.paid_at.millis()),
        ),
        (None, Some((amount, currency, paid_at))) => (
            None,
            Some(currency.code()),
            Some(amount),
            None,
            Some(paid_at.millis()),
        ),
        (None, None) => (None, None, None, None, None),
    };
    let sql = if state.stored {
        "update invoices set customer_id = $2, subscription_id = $3, partner_id = $4, currency = $5, \
         amount = $6, commission_rate = $7, paid_at = $8, review = $9, review_round = $10, booked = $11, \
         updated_at = $12 where id = $1"
    } else {
        "insert into invoices (id, customer_id, subscription_id, partner_id, currency, amount, \
         commission_rate, paid_at, review, review_round, booked, created_at, updated_at) \
         values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $12) on conflict (id) do nothing"
    };
    let written = db
        .execute(
            sql,
            &args![
                &invoice.id,
                &state.customer_id,
                &state.subscription_id,
                partner,
                code,
                amount,
                rate,
                paid_at,
                review_str(invoice.review),
                state.review_round,
                invoice.booked,
                now.millis(),
            ],
        )
        .await?;
    if written == 0 && !state.stored {
        return Err(StoreError::Invalid(crate::money::INVOICE_RACED));
    }
    Ok(())
}

/// Loads and locks a partner's money row in one currency (created empty if
/// new): the row every booking of this book goes through.
pub(crate) async fn lock_money<D: BillingDb>(
    db: &mut D,
    partner_id: i64,
    currency: Currency,
    now: Timestamp,
) -> StoreResult<PartnerMoney> {
    let sql = format!(
        "select {BALANCE_COLUMNS} from partner_money where partner_id = $1 and currency = $2{}",
        row_lock(D::BACKEND)
    );
    // The row exists but for a partner's first booking in a currency: read it
    // first, and create it (then read it locked) only when it is missing.
    let row = match fetch_optional(db, &sql, &args![partner_id, currency.code()]).await? {
        Some(row) => row,
        None => {
            db.execute(
                "insert into partner_money (partner_id, currency, updated_at) values ($1, $2, $3) \
                 on conflict (partner_id, currency) do nothing",
                &args![partner_id, currency.code(), now.millis()],
            )
            .await?;
            fetch_one::<BalanceTuple, _>(db, &sql, &args![partner_id, currency.code()]).await?
        }
    };
    let mut money = PartnerMoney::new(partner_id, currency);
    money.balances = balances(row);
    Ok(money)
}

/// Adds the lot of `invoice` (if it has one) to `money`.
pub(crate) async fn load_lot<D: BillingDb>(
    db: &mut D,
    money: &mut PartnerMoney,
    invoice: &str,
) -> StoreResult<()> {
    let row: Option<(Option<i64>, i64, i64, i64)> = fetch_optional(
        db,
        "select release_at, held, on_review, releases from ledger_lots where invoice_id = $1",
        &args![invoice],
    )
    .await?;
    if let Some((release_at, held, on_review, releases)) = row {
        money.lots.insert(
            invoice.to_owned(),
            lot(release_at, held, on_review, releases)?,
        );
    }
    Ok(())
}

/// Writes what a planner booked: its transfers, the money row and the lots it
/// touched (kept even when empty: they number release keys).
pub(crate) async fn write_booking<D: BillingDb>(
    db: &mut D,
    money: &PartnerMoney,
    transfers: &[Transfer],
    now: Timestamp,
) -> StoreResult<()> {
    if transfers.is_empty() {
        return Ok(());
    }
    let mut lots = std::collections::BTreeSet::new();
    for t in transfers {
        let source = t.source.key();
        db.execute(
            "insert into ledger_transfers (source, leg, partner_id, currency, debit, credit, amount, \
             invoice_id, release_at, created_at) values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
            &args![
                &source,
                i64::from(t.leg),
                t.partner_id,
                t.currency.code(),
                t.debit.as_str(),
                t.credit.as_str(),
                t.amount,
                &t.invoice,
                t.release_at.map(|at| at.millis()),
                now.millis(),
            ],
        )
        .await
        .map_err(|e| on_unique(e, "ledger source"))?;
        if let Some(invoice) = &t.invoice
            && money.lots.contains_key(invoice)
        {
            lots.insert(invoice.as_str());
        }
    }
    let b = money.balances;
    db.execute(
        "update partner_money set earned = $3, held = $4, on_review = $5, available = $6, in_flight = $7, \
         paid = $8, clawback = $9, updated_at = $10 where partner_id = $1 and currency = $2",
        &args![
            money.partner_id,
            money.currency.code(),
            b.earned,
            b.held,
            b.on_review,
            b.available,
            b.in_flight,
            b.paid,
            b.clawback,
            now.millis(),
        ],
    )
    .await?;
    for invoice in lots {
        let lot = money.lot(invoice);
        db.execute(
            "insert into ledger_lots (invoice_id, partner_id, currency, release_at, held, on_review, releases) \
             values ($1, $2, $3, $4, $5, $6, $7) on conflict (invoice_id) do update set \
             release_at = excluded.release_at, held = excluded.held, on_review = excluded.on_review, \
             releases = excluded.releases",
            &args![
                invoice,
                money.partner_id,
                money.currency.code(),
                lot.release_at.map(|at| at.millis()),
                lot.held,
                lot.on_review,
                i64::from(lot.releases),
            ],
        )
        .await?;
    }
    Ok(())
}

/// R-REP-2: what a billing event changed in the report's paying customers,
/// revenue and commission, on the report row of the customer's sign-up
/// (campaign and term) at the hour of the payment, in the same transaction as
/// the booking. A customer counts once, with the first of their payments to
/// arrive (their sign-up keeps that it was counted). (Not yet: PROGRAM.md's
/// exception for a first payment refunded in full; the report still counts
/// that customer, the ledger is not affected.)
async fn report_money_change<D: BillingDb>(
    db: &mut D,
    state: &InvoiceState,
    commission: i64,
) -> StoreResult<()> {
    let Some(payment) = state.invoice.payment.as_ref() else {
        return Ok(());
    };
    let revenue = state.revenue() - state.revenue_loaded;
    let arrived = !state.payment_loaded && payment.amount > 0;
    if revenue == 0 && commission == 0 && !arrived {
        return Ok(());
    }
    let Some(customer) = state.customer_id.as_deref() else {
        return Ok(());
    };
    let read;
    let signup = match &state.signup {
        Some(signup) => Some(signup),
        None => {
            read = read_signup(db, customer).await?;
            read.as_ref()
        }
    };
    // A credited payment always has its sign-up, and sign-ups are never
    // deleted; were one missing, the money would still be reported (on the
    // default link's row) and nobody counted as a customer.
    let (campaign, term, counted) = signup.map_or((None, None, true), |signup| {
        (
            signup.campaign_id,
            signup.utm_term.as_deref(),
            signup.counted,
        )
    });
    let mut customers = 0;
    if arrived && !counted {
        // Conditional, so that on PostgreSQL the second of two first payments
        // at once waits for the first and then counts nothing.
        let counted = db
            .execute(
                "update signups set report_counted = 1 where customer_id = $1 and report_counted = 0",
                &args![customer],
            )
            .await?;
        customers = i64::from(counted == 1);
    }
    if revenue == 0 && commission == 0 && customers == 0 {
        return Ok(());
    }
    db.execute(
        "insert into report_money (partner_id, hour, campaign_id, utm_term, currency, customers, revenue, commission) \
         values ($1, $2, $3, $4, $5, $6, $7, $8) \
         on conflict (partner_id, hour, campaign_id, utm_term, currency) do update set \
         customers = report_money.customers + excluded.customers, \
         revenue = report_money.revenue + excluded.revenue, \
         commission = report_money.commission + excluded.commission",
        &args![
            payment.partner_id,
            payment.paid_at.millis().div_euclid(3_600_000),
            campaign.unwrap_or(0),
            term.unwrap_or_default(),
            payment.currency.code(),
            customers,
            revenue,
            commission,
        ],
    )
    .await?;
    Ok(())
}

/// The end of every billing event on an invoice: books what the event changed
/// (I4) on the credited partner's book, then writes the invoice (first: the
/// ledger lot refers to it), the booking, the report's change and the event's
/// answer.
async fn finish_invoice_event<D: BillingDb>(
    db: &mut D,
    key: &EventKey,
    state: &mut InvoiceState,
    source: Source,
    hold_days: i64,
    now: Timestamp,
) -> StoreResult<BillingAnswer> {
    let before = state.invoice.booked;
    let booking = match state.invoice.payment.clone() {
        Some(payment) => {
            let mut money = lock_money(db, payment.partner_id, payment.currency, now).await?;
            if !state.fresh {
                load_lot(db, &mut money, &state.invoice.id).await?;
            }
            let transfers = partnerd_domain::ledger::book_commission_change(
                &mut money,
                &mut state.invoice,
                source,
                hold_days,
                now,
            )?;
            Some((money, transfers))
        }
        None => None,
    };
    save_invoice(db, state, now).await?;
    if let Some((money, transfers)) = &booking {
        write_booking(db, money, transfers, now).await?;
    }
    let booked = state.invoice.booked - before;
    report_money_change(db, state, booked).await?;
    let answer = state.answer(booked);
    finish_event(db, key, &answer).await?;
    Ok(answer)
}

/// [`MoneyStore::record_payment`](crate::MoneyStore::record_payment) inside a
/// transaction or a batch's savepoint, which the caller commits when it is `Ok`.
async fn record_payment_in<D: BillingDb>(
    db: &mut D,
    payment: NewPayment,
    hold_days: i64,
    now: Timestamp,
) -> StoreResult<(BillingAnswer, bool)> {
    record_payment_credited(db, payment, None, hold_days, now).await
}

/// The customer's sign-up as a billing event reads it.
#[derive(Debug, Clone)]
pub(crate) struct SignupRow {
    /// R-AFF-4: the credited partner; `None` when nobody is.
    partner_id: Option<i64>,
    /// R-COM-1: the rate fixed when the customer was credited.
    rate: Option<i64>,
    /// R-AFF-7: credited, and held for review.
    review: bool,
    /// R-REP-2: the report row the customer's money counts on.
    campaign_id: Option<i64>,
    utm_term: Option<String>,
    /// R-REP-2: whether the report counted the customer as paying already.
    counted: bool,
}

/// A sign-up row as [`read_signup`] selects it.
type SignupTuple = (
    Option<i64>,
    Option<i64>,
    i64,
    Option<i64>,
    Option<String>,
    i64,
);

/// The customer's sign-up, if they have one: who is credited for their
/// payments, at which rate, and where the report counts them.
async fn read_signup<D: BillingDb>(
    db: &mut D,
    customer_id: &str,
) -> StoreResult<Option<SignupRow>> {
    let row: Option<SignupTuple> = fetch_optional(
        db,
        "select partner_id, commission_rate, review, campaign_id, utm_term, report_counted \
         from signups where customer_id = $1",
        &args![customer_id],
    )
    .await?;
    Ok(row.map(
        |(partner_id, rate, review, campaign_id, utm_term, counted)| SignupRow {
            partner_id,
            rate,
            review: review != 0,
            campaign_id,
            utm_term,
            counted: counted != 0,
        },
    ))
}

/// [`record_payment_in`] with the customer's sign-up when the caller read it
/// already in this transaction (`Some`), else read here if needed.
async fn record_payment_credited<D: BillingDb>(
    db: &mut D,
    payment: NewPayment,
    signup: Option<Option<SignupRow>>,
    hold_days: i64,
    now: Timestamp,
) -> StoreResult<(BillingAnswer, bool)> {
    use partnerd_domain::commission::{CommissionError, Recorded};
    let request = serde_json::to_string(&payment).map_err(corrupt)?;
    if let Some(answer) = claim_event(db, &payment.event, "payment", &request, now).await? {
        return Ok((answer, true));
    }
    let mut state = lock_invoice(db, &payment.payment_id, IfMissing::Defer, now).await?;
    let replayed = if let Some(known) = state.invoice.payment.clone() {
        // Already recorded (another event id, or the API and Stripe both): the
        // domain compares the amount and currency.
        let recorded = state
            .invoice
            .record_payment(Payment {
                currency: payment.currency,
                amount: payment.amount,
                ..known
            })
            .map_err(LedgerError::from)?;
        recorded == Recorded::Replay
    } else if let Some((amount, currency, _)) = state.uncredited {
        if (amount, currency) != (payment.amount, payment.currency) {
            return Err(StoreError::Ledger(
                CommissionError::ConflictingReplay {
                    what: "payment",
                    id: payment.payment_id.clone(),
                }
                .into(),
            ));
        }
        true
    } else {
        let signup = match signup {
            Some(signup) => signup,
            None => read_signup(db, &payment.customer_id).await?,
        };
        if let Some(
            credited @ SignupRow {
                partner_id: Some(partner_id),
                rate: Some(rate),
                ..
            },
        ) = &signup
        {
            let rate = CommissionRate::from_percent(*rate).map_err(corrupt)?;
            state
                .invoice
                .record_payment(Payment {
                    partner_id: *partner_id,
                    currency: payment.currency,
                    amount: payment.amount,
                    rate,
                    paid_at: payment.paid_at,
                    under_review: credited.review,
                })
                .map_err(LedgerError::from)?;
            state.signup = signup;
        } else {
            if payment.amount < 0 {
                return Err(StoreError::Ledger(
                    CommissionError::NegativeAmount(payment.amount).into(),
                ));
            }
            state.uncredited = Some((payment.amount, payment.currency, payment.paid_at));
        }
        false
    };
    if !replayed {
        state.customer_id = Some(payment.customer_id.clone());
        state.subscription_id = payment.subscription_id.clone();
        if let Some(subscription) = &payment.subscription_id {
            db.execute(
                "insert into subscriptions (id, customer_id, status, created_at) values ($1, $2, 'active', $3) \
                 on conflict (id) do nothing",
                &args![subscription, &payment.customer_id, now.millis()],
            )
            .await?;
        }
    }
    let source = Source::Commission {
        payment: payment.payment_id.clone(),
    };
    let answer =
        finish_invoice_event(db, &payment.event, &mut state, source, hold_days, now).await?;
    Ok((answer, replayed))
}

/// [`MoneyStore::record_refund`](crate::MoneyStore::record_refund) inside a
/// transaction or a batch's savepoint.
async fn record_refund_in<D: BillingDb>(
    db: &mut D,
    refund: NewRefund,
    hold_days: i64,
    now: Timestamp,
) -> StoreResult<(BillingAnswer, bool)> {
    use partnerd_domain::commission::Recorded;
    let request = serde_json::to_string(&refund).map_err(corrupt)?;
    if let Some(answer) = claim_event(db, &refund.event, "refund", &request, now).await? {
        return Ok((answer, true));
    }
    let owner: Option<(String,)> = fetch_optional(
        db,
        "select invoice_id from invoice_refunds where id = $1",
        &args![&refund.refund_id],
    )
    .await?;
    if owner.is_some_and(|(invoice,)| invoice != refund.payment_id) {
        return Err(StoreError::Conflict { field: "refund id" });
    }
    let mut state = lock_invoice(db, &refund.payment_id, IfMissing::Insert, now).await?;
    let recorded = state
        .invoice
        .record_refund(&refund.refund_id, refund.amount)
        .map_err(LedgerError::from)?;
    if recorded == Recorded::New {
        db.execute(
            "insert into invoice_refunds (id, invoice_id, amount, recorded_at) values ($1, $2, $3, $4)",
            &args![&refund.refund_id, &refund.payment_id, refund.amount, now.millis()],
        )
        .await?;
    }
    let source = Source::Refund {
        refund: refund.refund_id.clone(),
    };
    let answer =
        finish_invoice_event(db, &refund.event, &mut state, source, hold_days, now).await?;
    Ok((answer, recorded == Recorded::Replay))
}

/// [`MoneyStore::record_chargeback`](crate::MoneyStore::record_chargeback)
/// inside a transaction or a batch's savepoint.
async fn record_chargeback_in<D: BillingDb>(
    db: &mut D,
    chargeback: NewChargeback,
    hold_days: i64,
    now: Timestamp,
) -> StoreResult<(BillingAnswer, bool)> {
    use partnerd_domain::commission::Recorded;
    let request = serde_json::to_string(&chargeback).map_err(corrupt)?;
    let kind = match chargeback.change {
        ChargebackChange::Withdrawn => "chargeback",
        ChargebackChange::Reinstated => "reinstatement",
    };
    if let Some(answer) = claim_event(db, &chargeback.event, kind, &request, now).await? {
        return Ok((answer, true));
    }
    let owner: Option<(String,)> = fetch_optional(
        db,
        "select invoice_id from invoice_chargebacks where id = $1",
        &args![&chargeback.chargeback_id],
    )
    .await?;
    if owner.is_some_and(|(invoice,)| invoice != chargeback.payment_id) {
        return Err(StoreError::Conflict {
            field: "chargeback id",
        });
    }
    let mut state = lock_invoice(db, &chargeback.payment_id, IfMissing::Insert, now).await?;
    let id = chargeback.chargeback_id.clone();
    let (recorded, source) = match chargeback.change {
        ChargebackChange::Withdrawn => (
            state.invoice.record_chargeback(&id, chargeback.amount),
            Source::Chargeback {
                chargeback: id.clone(),
            },
        ),
        ChargebackChange::Reinstated => (
            state.invoice.record_reinstatement(&id, chargeback.amount),
            Source::Reinstatement {
                chargeback: id.clone(),
            },
        ),
    };
    let recorded = recorded.map_err(LedgerError::from)?;
    if recorded == Recorded::New {
        let entry = state
            .invoice
            .chargebacks
            .get(&id)
            .copied()
            .unwrap_or_default();
        db.execute(
            "insert into invoice_chargebacks (id, invoice_id, withdrawn, reinstated, recorded_at) \
             values ($1, $2, $3, $4, $5) on conflict (id) do update set \
             withdrawn = excluded.withdrawn, reinstated = excluded.reinstated",
            &args![
                &id,
                &chargeback.payment_id,
                entry.withdrawn,
                entry.reinstated,
                now.millis()
            ],
        )
        .await?;
    }
    let answer =
        finish_invoice_event(db, &chargeback.event, &mut state, source, hold_days, now).await?;
    Ok((answer, recorded == Recorded::Replay))
}

/// [`BillingEvent::StripePayment`]: the event's record, the charge links, then
/// the payment; or a refusal when the event was processed before, the customer
/// has no sign-up yet (both before anything is written: see
/// [`refused_before_writing`]), or parked events wait for the invoice (once the
/// caller rolls back, nothing at all).
async fn stripe_payment_in<D: BillingDb>(
    db: &mut D,
    payment: NewPayment,
    link: &crate::stripe_sql::StripeChargeLink,
    record: &crate::stripe_sql::StripeEventRecord,
    hold_days: i64,
    now: Timestamp,
) -> StoreResult<(BillingAnswer, bool)> {
    use crate::money::{STRIPE_EVENT_SEEN, STRIPE_NO_SIGNUP, STRIPE_PARKED_WAITING};
    let signup = read_signup(db, &payment.customer_id).await?;
    if signup.is_none() {
        // The record is there if and only if the event was processed: a
        // replay is answered as one, not parked again.
        let seen: Option<(String,)> = fetch_optional(
            db,
            "select id from stripe_events where id = $1",
            &args![&record.event_id],
        )
        .await?;
        return Err(StoreError::Invalid(if seen.is_some() {
            STRIPE_EVENT_SEEN
        } else {
            STRIPE_NO_SIGNUP
        }));
    }
    // A replay changes nothing here (`on conflict do nothing`), so it is still
    // refused before writing. On PostgreSQL a concurrent delivery of the same
    // event waits here for the first to commit.
    if crate::stripe_sql::record_stripe_event_in(db, record).await? == 0 {
        return Err(StoreError::Invalid(STRIPE_EVENT_SEEN));
    }
    // Linking takes the Stripe bookkeeping's lock (see stripe_sql.rs), so a
    // refund being parked at this moment cannot miss the link.
    let parked = crate::stripe_sql::link_stripe_charge_in(db, link).await?;
    if !parked.is_empty() {
        return Err(StoreError::Invalid(STRIPE_PARKED_WAITING));
    }
    record_payment_credited(db, payment, Some(signup), hold_days, now).await
}

/// [`MoneyStore::cancel_subscription`](crate::MoneyStore::cancel_subscription)
/// inside a transaction or a batch's savepoint.
async fn cancel_subscription_in<D: BillingDb>(
    db: &mut D,
    cancellation: NewCancellation,
    now: Timestamp,
) -> StoreResult<(BillingAnswer, bool)> {
    let request = serde_json::to_string(&cancellation).map_err(corrupt)?;
    if let Some(answer) =
        claim_event(db, &cancellation.event, "cancellation", &request, now).await?
    {
        return Ok((answer, true));
    }
    // A cancellation may arrive before any payment of the subscription.
    db.execute(
        "insert into subscriptions (id, customer_id, status, created_at, cancelled_at) \
         values ($1, $2, 'cancelled', $3, $3) on conflict (id) do update set status = 'cancelled', \
         cancelled_at = coalesce(subscriptions.cancelled_at, excluded.cancelled_at), \
         customer_id = coalesce(subscriptions.customer_id, excluded.customer_id)",
        &args![
            &cancellation.subscription_id,
            &cancellation.customer_id,
            now.millis()
        ],
    )
    .await?;
    let answer = BillingAnswer {
        payment_id: None,
        partner_id: None,
        currency: None,
        commission: 0,
        booked: 0,
        subscription_id: Some(cancellation.subscription_id.clone()),
    };
    finish_event(db, &cancellation.event, &answer).await?;
    Ok((answer, false))
}

/// One billing event inside a transaction or savepoint.
async fn billing_event_in<D: BillingDb>(
    db: &mut D,
    event: BillingEvent,
    hold_days: i64,
    now: Timestamp,
) -> StoreResult<(BillingAnswer, bool)> {
    match event {
        BillingEvent::Payment(payment) => record_payment_in(db, payment, hold_days, now).await,
        BillingEvent::Refund(refund) => record_refund_in(db, refund, hold_days, now).await,
        BillingEvent::Chargeback(chargeback) => {
            record_chargeback_in(db, chargeback, hold_days, now).await
        }
        BillingEvent::Cancellation(cancellation) => {
            cancel_subscription_in(db, cancellation, now).await
        }
        BillingEvent::StripePayment {
            payment,
            link,
            record,
        } => stripe_payment_in(db, payment, &link, &record, hold_days, now).await,
    }
}

/// Whether `err` refused an event before it wrote anything, so that a batch
/// without savepoints goes on past it: what a Stripe payment of a customer
/// without a sign-up gets (most of a vendor's customers were referred by
/// nobody), and a replay. Any other refusal may follow writes.
fn refused_before_writing(err: &StoreError) -> bool {
    use crate::money::{STRIPE_EVENT_SEEN, STRIPE_NO_SIGNUP};
    matches!(err, StoreError::Invalid(reason) if *reason == STRIPE_EVENT_SEEN || *reason == STRIPE_NO_SIGNUP)
}

/// How a batch's events are kept apart inside its transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Isolation {
    /// No savepoints: the common case, where every event is booked. An event
    /// refused after it may have written ends the run ([`billing_batch_in`]
    /// answers `None`) and the caller rolls the transaction back and runs the
    /// batch again `Savepoints`.
    Optimistic,
    /// Each event in a savepoint of its own, so a refused one rolls back alone
    /// and the others stay.
    Savepoints,
}

/// [`MoneyStore::record_billing_batch`](crate::MoneyStore::record_billing_batch)
/// inside a transaction the caller began and commits when this is `Ok(Some)`.
/// Savepoints cost every event a copy of each page it touches (and PostgreSQL
/// two round trips), and refusals are rare, so a batch is run `Optimistic`
/// first; `Ok(None)` means an event was refused: roll back, run again with
/// [`Isolation::Savepoints`] (same database state, same answers). A database
/// failure may have rolled back the whole transaction (SQLite does on a full
/// disk or an I/O error), so the batch fails as one and every caller retries,
/// rather than being told of bookings that are gone.
pub(crate) async fn billing_batch_in<D: BillingDb>(
    db: &mut D,
    events: &[BillingEvent],
    isolation: Isolation,
    hold_days: i64,
    now: Timestamp,
) -> StoreResult<Option<Vec<StoreResult<(BillingAnswer, bool)>>>> {
    let savepoints = isolation == Isolation::Savepoints;
    let mut results = Vec::with_capacity(events.len());
    for event in events {
        if savepoints {
            db.execute("savepoint billing_event", &[]).await?;
        }
        let result = billing_event_in(db, event.clone(), hold_days, now).await;
        match result {
            Err(
                err @ (StoreError::Database(_) | StoreError::Sqlite(_) | StoreError::Corrupt(_)),
            ) => {
                return Err(err);
            }
            Ok(_) if savepoints => {
                db.execute("release savepoint billing_event", &[]).await?;
            }
            Ok(_) => {}
            Err(_) if savepoints => {
                db.execute("rollback to savepoint billing_event", &[])
                    .await?;
                db.execute("release savepoint billing_event", &[]).await?;
            }
            Err(ref err) if refused_before_writing(err) => {}
            Err(_) => return Ok(None),
        }
        results.push(result);
    }
    Ok(Some(results))
}

macro_rules! money_store {
    ($store:ty, $db:ty) => {
        impl $store {
            /// A batch of billing events in one transaction of the pool.
            async fn billing_batch(
                &self,
                events: Vec<$crate::money::BillingEvent>,
                hold_days: i64,
                now: partnerd_domain::Timestamp,
            ) -> $crate::StoreResult<Vec<$crate::StoreResult<($crate::money::BillingAnswer, bool)>>> {
                use $crate::money_sql::{billing_batch_in, Isolation};
                let mut tx = self.write().await?;
                if let Some(results) =
                    billing_batch_in(&mut tx, &events, Isolation::Optimistic, hold_days, now).await?
                {
                    tx.commit().await?;
                    return Ok(results);
                }
                tx.rollback().await?;
                let mut tx = self.write().await?;
                let results = billing_batch_in(&mut tx, &events, Isolation::Savepoints, hold_days, now)
                    .await?
                    .ok_or_else(|| $crate::money_sql::corrupt("a batch with savepoints gave up"))?;
                tx.commit().await?;
                Ok(results)
            }
        }
        $crate::money_sql::money_store!(@common $store, $db);
    };
    // A backend with a batch writer of its own: `$batch` books a batch of
    // billing events in one transaction, with `billing_batch_in`.
    ($store:ty, $db:ty, $batch:ident) => {
        impl $store {
            async fn billing_batch(
                &self,
                events: Vec<$crate::money::BillingEvent>,
                hold_days: i64,
                now: partnerd_domain::Timestamp,
            ) -> $crate::StoreResult<Vec<$crate::StoreResult<($crate::money::BillingAnswer, bool)>>> {
                self.$batch(events, hold_days, now).await
            }
        }
        $crate::money_sql::money_store!(@common $store, $db);
    };
    (@common $store:ty, $db:ty) => {
        impl $store {
            /// One billing event, as a batch of one: the same statements, and a
            /// refusal rolls back everything it wrote.
            async fn billing_one(
                &self,
                event: $crate::money::BillingEvent,
                hold_days: i64,
                now: partnerd_domain::Timestamp,
            ) -> $crate::StoreResult<($crate::money::BillingAnswer, bool)> {
                self.billing_batch(vec![event], hold_days, now)
                    .await?
                    .pop()
                    .unwrap_or_else(|| Err($crate::money_sql::corrupt("a batch of one answered nothing")))
            }

            async fn lock_invoice(
                tx: &mut sqlx::Transaction<'_, $db>,
                id: &str,
                now: partnerd_domain::Timestamp,
            ) -> $crate::StoreResult<$crate::money_sql::InvoiceState> {
                use $crate::money_sql::IfMissing;
                $crate::money_sql::lock_invoice(tx, id, IfMissing::Fail, now).await
            }

            async fn save_invoice(
                tx: &mut sqlx::Transaction<'_, $db>,
                state: &$crate::money_sql::InvoiceState,
                now: partnerd_domain::Timestamp,
            ) -> $crate::StoreResult<()> {
                $crate::money_sql::save_invoice(tx, state, now).await
            }

            async fn lock_money(
                tx: &mut sqlx::Transaction<'_, $db>,
                partner_id: i64,
                currency: partnerd_domain::Currency,
                now: partnerd_domain::Timestamp,
            ) -> $crate::StoreResult<partnerd_domain::ledger::PartnerMoney> {
                $crate::money_sql::lock_money(tx, partner_id, currency, now).await
            }

            async fn load_lot(
                tx: &mut sqlx::Transaction<'_, $db>,
                money: &mut partnerd_domain::ledger::PartnerMoney,
                invoice: &str,
            ) -> $crate::StoreResult<()> {
                $crate::money_sql::load_lot(tx, money, invoice).await
            }

            async fn write_booking(
                tx: &mut sqlx::Transaction<'_, $db>,
                money: &partnerd_domain::ledger::PartnerMoney,
                transfers: &[partnerd_domain::ledger::Transfer],
                now: partnerd_domain::Timestamp,
            ) -> $crate::StoreResult<()> {
                $crate::money_sql::write_booking(tx, money, transfers, now).await
            }

            async fn lock_withdrawal(
                tx: &mut sqlx::Transaction<'_, $db>,
                id: &str,
            ) -> $crate::StoreResult<$crate::money::WithdrawalRow> {
                let sql = format!(
                    "select {} from withdrawals where id = $1{}",
                    $crate::money_sql::WITHDRAWAL_COLUMNS,
                    $crate::money_sql::row_lock(Self::BACKEND)
                );
                let row: $crate::money_sql::WithdrawalTuple = sqlx::query_as(&sql)
                    .bind(id)
                    .fetch_optional(&mut **tx)
                    .await?
                    .ok_or($crate::StoreError::NotFound)?;
                $crate::money_sql::withdrawal_row(row)
            }

            async fn payout_item_of<'e, E>(
                executor: E,
                withdrawal_id: &str,
            ) -> $crate::StoreResult<Option<$crate::money::PayoutItemRow>>
            where
                E: sqlx::Executor<'e, Database = $db>,
            {
                let sql = format!(
                    "select {} from payout_items where withdrawal_id = $1",
                    $crate::money_sql::PAYOUT_COLUMNS
                );
                let row: Option<$crate::money_sql::PayoutTuple> =
                    sqlx::query_as(&sql).bind(withdrawal_id).fetch_optional(executor).await?;
                row.map($crate::money_sql::payout_item_row).transpose()
            }

            async fn save_withdrawal(
                tx: &mut sqlx::Transaction<'_, $db>,
                row: &$crate::money::WithdrawalRow,
                now: partnerd_domain::Timestamp,
            ) -> $crate::StoreResult<()> {
                sqlx::query(
                    "update withdrawals set status = $2, decided_at = $3, reason = $4, updated_at = $5 where id = $1",
                )
                .bind(&row.withdrawal.id)
                .bind(row.withdrawal.status.as_str())
                .bind(row.decided_at.map(|at| at.millis()))
                .bind(&row.reason)
                .bind(now.millis())
                .execute(&mut **tx)
                .await?;
                Ok(())
            }

            async fn payout_profile_in<'e, E>(
                executor: E,
                partner_id: i64,
            ) -> $crate::StoreResult<$crate::money::PayoutProfile>
            where
                E: sqlx::Executor<'e, Database = $db>,
            {
                let row: Option<(Option<String>, Option<String>, Option<String>, Option<String>)> =
                    sqlx::query_as(
                        "select paypal_email, legal_name, country, tax_id from payout_profiles where partner_id = $1",
                    )
                    .bind(partner_id)
                    .fetch_optional(executor)
                    .await?;
                Ok(row
                    .map(|(paypal_email, legal_name, country, tax_id)| $crate::money::PayoutProfile {
                        paypal_email,
                        legal_name,
                        country,
                        tax_id,
                    })
                    .unwrap_or_default())
            }

        }

        #[async_trait::async_trait]
        impl $crate::money::MoneyStore for $store {
            async fn record_payment(
                &self,
                payment: $crate::money::NewPayment,
                hold_days: i64,
                now: partnerd_domain::Timestamp,
            ) -> $crate::StoreResult<($crate::money::BillingAnswer, bool)> {
                self.billing_one($crate::money::BillingEvent::Payment(payment), hold_days, now).await
            }

            async fn record_refund(
                &self,
                refund: $crate::money::NewRefund,
                hold_days: i64,
                now: partnerd_domain::Timestamp,
            ) -> $crate::StoreResult<($crate::money::BillingAnswer, bool)> {
                self.billing_one($crate::money::BillingEvent::Refund(refund), hold_days, now).await
            }

            async fn record_chargeback(
                &self,
                chargeback: $crate::money::NewChargeback,
                hold_days: i64,
                now: partnerd_domain::Timestamp,
            ) -> $crate::StoreResult<($crate::money::BillingAnswer, bool)> {
                self.billing_one($crate::money::BillingEvent::Chargeback(chargeback), hold_days, now).await
            }

            async fn cancel_subscription(
                &self,
                cancellation: $crate::money::NewCancellation,
                now: partnerd_domain::Timestamp,
            ) -> $crate::StoreResult<($crate::money::BillingAnswer, bool)> {
                // A cancellation books nothing: no hold.
                self.billing_one($crate::money::BillingEvent::Cancellation(cancellation), 0, now).await
            }

            async fn record_billing_batch(
                &self,
                events: Vec<$crate::money::BillingEvent>,
                hold_days: i64,
                now: partnerd_domain::Timestamp,
            ) -> $crate::StoreResult<Vec<$crate::StoreResult<($crate::money::BillingAnswer, bool)>>> {
                if events.is_empty() {
                    return Ok(Vec::new());
                }
                self.billing_batch(events, hold_days, now).await
            }

            async fn release_due_holds(
                &self,
                now: partnerd_domain::Timestamp,
                limit: i64,
            ) -> $crate::StoreResult<u64> {
                let mut tx = self.write().await?;
                // Books in a fixed order, so two releasing nodes lock rows in the
                // same order and never deadlock.
                let books: Vec<(i64, String)> = sqlx::query_as(
                    "select partner_id, currency from ledger_lots where held > 0 and release_at <= $1 \
                     group by partner_id, currency order by partner_id, currency limit $2",
                )
                .bind(now.millis())
                .bind(limit)
                .fetch_all(&mut *tx)
                .await?;
                let mut released = 0u64;
                for (partner_id, code) in books {
                    let currency = $crate::money_sql::currency(&code)?;
                    let mut money = Self::lock_money(&mut tx, partner_id, currency, now).await?;
                    let lots: Vec<(String, Option<i64>, i64, i64, i64)> = sqlx::query_as(
                        "select invoice_id, release_at, held, on_review, releases from ledger_lots \
                         where partner_id = $1 and currency = $2 and held > 0 and release_at <= $3",
                    )
                    .bind(partner_id)
                    .bind(&code)
                    .bind(now.millis())
                    .fetch_all(&mut *tx)
                    .await?;
                    for (invoice, release_at, held, on_review, releases) in lots {
                        money
                            .lots
                            .insert(invoice, $crate::money_sql::lot(release_at, held, on_review, releases)?);
                    }
                    let transfers = partnerd_domain::ledger::release_holds(&mut money, now)?;
                    let sources: std::collections::BTreeSet<_> =
                        transfers.iter().map(|t| &t.source).collect();
                    released += sources.len() as u64;
                    Self::write_booking(&mut tx, &money, &transfers, now).await?;
                }
                tx.commit().await?;
                Ok(released)
            }

            async fn put_commission_on_review(
                &self,
                payment_id: &str,
                audit: $crate::NewAudit,
            ) -> $crate::StoreResult<()> {
                let now = audit.at;
                let mut tx = self.write().await?;
                let mut state = Self::lock_invoice(&mut tx, payment_id, now).await?;
                let Some(payment) = state.invoice.payment.clone() else {
                    return Err($crate::StoreError::Ledger(
                        partnerd_domain::commission::CommissionError::NoPayment(payment_id.to_owned()).into(),
                    ));
                };
                state.review_round += 1;
                let review_id = state.review_id();
                let mut money = Self::lock_money(&mut tx, payment.partner_id, payment.currency, now).await?;
                Self::load_lot(&mut tx, &mut money, payment_id).await?;
                let transfers =
                    partnerd_domain::ledger::put_on_review(&mut money, &mut state.invoice, &review_id)?;
                Self::write_booking(&mut tx, &money, &transfers, now).await?;
                Self::save_invoice(&mut tx, &state, now).await?;
                Self::insert_audit(&mut tx, &audit).await?;
                tx.commit().await?;
                Ok(())
            }

            async fn approve_commission_review(
                &self,
                payment_id: &str,
                audit: $crate::NewAudit,
                now: partnerd_domain::Timestamp,
            ) -> $crate::StoreResult<()> {
                let mut tx = self.write().await?;
                let mut state = Self::lock_invoice(&mut tx, payment_id, now).await?;
                let Some(payment) = state.invoice.payment.clone() else {
                    return Err($crate::StoreError::Ledger(
                        partnerd_domain::commission::CommissionError::NoPayment(payment_id.to_owned()).into(),
                    ));
                };
                let review_id = state.review_id();
                let mut money = Self::lock_money(&mut tx, payment.partner_id, payment.currency, now).await?;
                Self::load_lot(&mut tx, &mut money, payment_id).await?;
                let transfers = partnerd_domain::ledger::approve_review(
                    &mut money,
                    &mut state.invoice,
                    &review_id,
                    now,
                )?;
                Self::write_booking(&mut tx, &money, &transfers, now).await?;
                Self::save_invoice(&mut tx, &state, now).await?;
                Self::insert_audit(&mut tx, &audit).await?;
                tx.commit().await?;
                Ok(())
            }

            async fn reject_commission_review(
                &self,
                payment_id: &str,
                audit: $crate::NewAudit,
            ) -> $crate::StoreResult<()> {
                let now = audit.at;
                let mut tx = self.write().await?;
                let mut state = Self::lock_invoice(&mut tx, payment_id, now).await?;
                let Some(payment) = state.invoice.payment.clone() else {
                    return Err($crate::StoreError::Ledger(
                        partnerd_domain::commission::CommissionError::NoPayment(payment_id.to_owned()).into(),
                    ));
                };
                let mut money = Self::lock_money(&mut tx, payment.partner_id, payment.currency, now).await?;
                Self::load_lot(&mut tx, &mut money, payment_id).await?;
                let transfers = partnerd_domain::ledger::reject_review(&mut money, &mut state.invoice)?;
                Self::write_booking(&mut tx, &money, &transfers, now).await?;
                Self::save_invoice(&mut tx, &state, now).await?;
                Self::insert_audit(&mut tx, &audit).await?;
                tx.commit().await?;
                Ok(())
            }

            async fn payout_profile(&self, partner_id: i64) -> $crate::StoreResult<$crate::money::PayoutProfile> {
                Self::payout_profile_in(&self.pool, partner_id).await
            }

            async fn save_payout_profile(
                &self,
                partner_id: i64,
                profile: &$crate::money::PayoutProfile,
                audit: $crate::NewAudit,
                notices: Vec<$crate::NewEmail>,
                now: partnerd_domain::Timestamp,
            ) -> $crate::StoreResult<()> {
                let mut tx = self.write().await?;
                sqlx::query(
                    "insert into payout_profiles (partner_id, paypal_email, legal_name, country, tax_id, updated_at) \
                     values ($1, $2, $3, $4, $5, $6) on conflict (partner_id) do update set \
                     paypal_email = excluded.paypal_email, legal_name = excluded.legal_name, \
                     country = excluded.country, tax_id = excluded.tax_id, updated_at = excluded.updated_at",
                )
                .bind(partner_id)
                .bind(&profile.paypal_email)
                .bind(&profile.legal_name)
                .bind(&profile.country)
                .bind(&profile.tax_id)
                .bind(now.millis())
                .execute(&mut *tx)
                .await?;
                Self::insert_audit(&mut tx, &audit).await?;
                for email in &notices {
                    Self::insert_email(&mut tx, email).await?;
                }
                tx.commit().await?;
                Ok(())
            }

            async fn request_withdrawal(
                &self,
                request: $crate::money::NewWithdrawal,
            ) -> $crate::StoreResult<($crate::money::WithdrawalRow, bool)> {
                let now = request.requested_at;
                let mut tx = self.write().await?;
                // The money row first: a second request of the partner waits here
                // until the first commits, then sees the balance it left (R-PAY-1).
                let mut money = Self::lock_money(&mut tx, request.partner_id, request.currency, now).await?;
                // A plain read, not a lock: rejections lock the withdrawal before
                // the money row, and taking them the other way round here could
                // deadlock with one.
                let sql = format!(
                    "select {} from withdrawals where id = $1",
                    $crate::money_sql::WITHDRAWAL_COLUMNS
                );
                let known: Option<$crate::money_sql::WithdrawalTuple> =
                    sqlx::query_as(&sql).bind(&request.id).fetch_optional(&mut *tx).await?;
                if let Some(known) = known {
                    let known = $crate::money_sql::withdrawal_row(known)?;
                    if known.withdrawal.partner_id != request.partner_id {
                        return Err($crate::StoreError::Conflict { field: "withdrawal id" });
                    }
                    return Ok((known, true));
                }
                // R-PAY-2, R-PAY-4: a PayPal address and tax details first.
                if !Self::payout_profile_in(&mut *tx, request.partner_id).await?.is_complete() {
                    return Err($crate::StoreError::Invalid(
                        "a PayPal email, legal name, country and tax id are needed before a withdrawal",
                    ));
                }
                let (withdrawal, transfers) = partnerd_domain::ledger::request_withdrawal(
                    &mut money,
                    &request.id,
                    request.minimum,
                )?;
                sqlx::query(
                    "insert into withdrawals (id, partner_id, currency, amount, status, requested_at, updated_at) \
                     values ($1, $2, $3, $4, $5, $6, $6)",
                )
                .bind(&withdrawal.id)
                .bind(withdrawal.partner_id)
                .bind(withdrawal.currency.code())
                .bind(withdrawal.amount)
                .bind(withdrawal.status.as_str())
                .bind(now.millis())
                .execute(&mut *tx)
                .await
                .map_err(|e| $crate::shared::on_unique(e, "withdrawal id"))?;
                Self::write_booking(&mut tx, &money, &transfers, now).await?;
                Self::insert_audit(&mut tx, &request.audit).await?;
                tx.commit().await?;
                Ok((
                    $crate::money::WithdrawalRow {
                        withdrawal,
                        requested_at: now,
                        decided_at: None,
                        reason: None,
                    },
                    false,
                ))
            }

            async fn approve_withdrawal(
                &self,
                withdrawal_id: &str,
                payout_job: Option<$crate::NewJob>,
                audit: $crate::NewAudit,
                now: partnerd_domain::Timestamp,
            ) -> $crate::StoreResult<$crate::money::PayoutItemRow> {
                let mut tx = self.write().await?;
                let mut row = Self::lock_withdrawal(&mut tx, withdrawal_id).await?;
                let item = partnerd_domain::ledger::approve_withdrawal(&mut row.withdrawal)?;
                let receiver = Self::payout_profile_in(&mut *tx, item.partner_id)
                    .await?
                    .paypal_email
                    .ok_or($crate::StoreError::Invalid("the partner has no PayPal email on file"))?;
                row.decided_at = Some(now);
                Self::save_withdrawal(&mut tx, &row, now).await?;
                // I5: the primary key allows one payout per withdrawal. The
                // sender_batch_id is stored before PayPal is ever called.
                // The payout job is what sends it through PayPal's API.
                let via = if payout_job.is_some() { "paypal" } else { "manual" };
                sqlx::query(
                    "insert into payout_items (withdrawal_id, partner_id, currency, amount, receiver, sender_batch_id, \
                     status, created_at, updated_at, via) values ($1, $2, $3, $4, $5, $1, $6, $7, $7, $8)",
                )
                .bind(&item.withdrawal_id)
                .bind(item.partner_id)
                .bind(item.currency.code())
                .bind(item.amount)
                .bind(&receiver)
                .bind(item.status.as_str())
                .bind(now.millis())
                .bind(via)
                .execute(&mut *tx)
                .await
                .map_err(|e| $crate::shared::on_unique(e, "payout"))?;
                if let Some(job) = &payout_job {
                    Self::insert_job(&mut tx, job).await?;
                }
                Self::insert_audit(&mut tx, &audit).await?;
                tx.commit().await?;
                Ok($crate::money::PayoutItemRow {
                    sender_batch_id: item.withdrawal_id.clone(),
                    item,
                    receiver,
                    payout_batch_id: None,
                    payout_item_id: None,
                    created_at: now,
                    submitted_at: None,
                    via: via.to_owned(),
                })
            }

            async fn reject_withdrawal(
                &self,
                withdrawal_id: &str,
                reason: &str,
                audit: $crate::NewAudit,
                notice: Option<$crate::NewEmail>,
                now: partnerd_domain::Timestamp,
            ) -> $crate::StoreResult<$crate::money::WithdrawalRow> {
                let mut tx = self.write().await?;
                let mut row = Self::lock_withdrawal(&mut tx, withdrawal_id).await?;
                let w = &row.withdrawal;
                let mut money = Self::lock_money(&mut tx, w.partner_id, w.currency, now).await?;
                let transfers = partnerd_domain::ledger::reject_withdrawal(&mut money, &mut row.withdrawal)?;
                row.decided_at = Some(now);
                row.reason = Some(reason.to_owned());
                Self::save_withdrawal(&mut tx, &row, now).await?;
                Self::write_booking(&mut tx, &money, &transfers, now).await?;
                Self::insert_audit(&mut tx, &audit).await?;
                if let Some(email) = &notice {
                    Self::insert_email(&mut tx, email).await?;
                }
                tx.commit().await?;
                Ok(row)
            }

            async fn record_payout_submission(
                &self,
                withdrawal_id: &str,
                payout_batch_id: &str,
                payout_item_id: Option<&str>,
                now: partnerd_domain::Timestamp,
            ) -> $crate::StoreResult<()> {
                let mut tx = self.write().await?;
                let updated = sqlx::query(
                    "update payout_items set payout_batch_id = $2, payout_item_id = coalesce($3, payout_item_id), \
                     submitted_at = coalesce(submitted_at, $4), updated_at = $4 where withdrawal_id = $1",
                )
                .bind(withdrawal_id)
                .bind(payout_batch_id)
                .bind(payout_item_id)
                .bind(now.millis())
                .execute(&mut *tx)
                .await?
                .rows_affected();
                if updated == 0 {
                    return Err($crate::StoreError::NotFound);
                }
                tx.commit().await?;
                Ok(())
            }

            async fn record_payout_status(
                &self,
                withdrawal_id: &str,
                status: partnerd_domain::ledger::PayoutStatus,
                payout_item_id: Option<&str>,
                audit: Option<$crate::NewAudit>,
                follow_up: $crate::money::PayoutFollowUp,
                now: partnerd_domain::Timestamp,
            ) -> $crate::StoreResult<$crate::money::WithdrawalRow> {
                let mut tx = self.write().await?;
                let mut row = Self::lock_withdrawal(&mut tx, withdrawal_id).await?;
                let status_before = row.withdrawal.status;
                let mut item = Self::payout_item_of(&mut *tx, withdrawal_id)
                    .await?
                    .ok_or($crate::StoreError::Invalid("the withdrawal has no payout yet"))?
                    .item;
                let (partner_id, currency) = (row.withdrawal.partner_id, row.withdrawal.currency);
                let mut money = Self::lock_money(&mut tx, partner_id, currency, now).await?;
                let transfers = partnerd_domain::ledger::record_payout_status(
                    &mut money,
                    &mut row.withdrawal,
                    &mut item,
                    status,
                )?;
                sqlx::query(
                    "update payout_items set status = $2, payout_item_id = coalesce($3, payout_item_id), updated_at = $4 \
                     where withdrawal_id = $1",
                )
                .bind(withdrawal_id)
                .bind(item.status.as_str())
                .bind(payout_item_id)
                .bind(now.millis())
                .execute(&mut *tx)
                .await?;
                Self::save_withdrawal(&mut tx, &row, now).await?;
                Self::write_booking(&mut tx, &money, &transfers, now).await?;
                if let Some(audit) = &audit {
                    Self::insert_audit(&mut tx, audit).await?;
                }
                // The partner hears once, when the money moved: a repeated or
                // stale report changes no status and sends nothing.
                let email = match row.withdrawal.status {
                    status if status == status_before => None,
                    partnerd_domain::ledger::WithdrawalStatus::Paid => follow_up.email_if_paid.as_ref(),
                    partnerd_domain::ledger::WithdrawalStatus::Failed => follow_up.email_if_came_back.as_ref(),
                    _ => None,
                };
                if let Some(email) = email {
                    Self::insert_email(&mut tx, email).await?;
                }
                if let Some(job) = &follow_up.job {
                    Self::insert_job(&mut tx, job).await?;
                }
                tx.commit().await?;
                Ok(row)
            }

            async fn partner_balances(&self, partner_id: i64) -> $crate::StoreResult<Vec<$crate::money::BalanceRow>> {
                let sql = format!(
                    "select currency, {} from partner_money where partner_id = $1 order by currency",
                    $crate::money_sql::BALANCE_COLUMNS
                );
                let rows: Vec<(String, i64, i64, i64, i64, i64, i64, i64)> =
                    sqlx::query_as(&sql).bind(partner_id).fetch_all(&self.pool).await?;
                rows.into_iter()
                    .map(|(code, earned, held, on_review, available, in_flight, paid, clawback)| {
                        Ok($crate::money::BalanceRow {
                            currency: $crate::money_sql::currency(&code)?,
                            balances: $crate::money_sql::balances((
                                earned, held, on_review, available, in_flight, paid, clawback,
                            )),
                        })
                    })
                    .collect()
            }

            async fn partner_commissions(
                &self,
                partner_id: i64,
                limit: i64,
                offset: i64,
            ) -> $crate::StoreResult<Vec<$crate::money::CommissionRow>> {
                // Sums cast to bigint: PostgreSQL's sum of a bigint is numeric.
                let rows: Vec<(String, Option<String>, String, i64, i64, i64, i64, i64, String, Option<i64>, Option<i64>, Option<i64>)> =
                    sqlx::query_as(
                        "select i.id, i.customer_id, i.currency, i.amount, \
                         cast(coalesce((select sum(r.amount) from invoice_refunds r where r.invoice_id = i.id), 0) \
                           + coalesce((select sum(case when coalesce(c.withdrawn, 0) > coalesce(c.reinstated, 0) \
                               then coalesce(c.withdrawn, 0) - coalesce(c.reinstated, 0) else 0 end) \
                             from invoice_chargebacks c where c.invoice_id = i.id), 0) as bigint), \
                         i.commission_rate, i.paid_at, i.booked, i.review, l.held, l.on_review, l.release_at \
                         from invoices i left join ledger_lots l on l.invoice_id = i.id \
                         where i.partner_id = $1 and i.amount is not null \
                         order by i.paid_at desc, i.id desc limit $2 offset $3",
                    )
                    .bind(partner_id)
                    .bind(limit)
                    .bind(offset)
                    .fetch_all(&self.pool)
                    .await?;
                rows.into_iter()
                    .map(|(payment_id, customer_id, code, amount, refunded, rate, paid_at, commission, review, held, on_review, release_at)| {
                        Ok($crate::money::CommissionRow {
                            payment_id,
                            customer_id,
                            currency: $crate::money_sql::currency(&code)?,
                            amount,
                            refunded,
                            rate,
                            paid_at: partnerd_domain::Timestamp::from_millis(paid_at),
                            commission,
                            review,
                            held: held.unwrap_or(0),
                            on_review: on_review.unwrap_or(0),
                            release_at: release_at.map(partnerd_domain::Timestamp::from_millis),
                        })
                    })
                    .collect()
            }

            async fn partner_transfers(
                &self,
                partner_id: i64,
                limit: i64,
                offset: i64,
            ) -> $crate::StoreResult<Vec<$crate::money::TransferRow>> {
                let sql = format!(
                    "select {} from ledger_transfers where partner_id = $1 order by id desc limit $2 offset $3",
                    $crate::money_sql::TRANSFER_COLUMNS
                );
                let rows: Vec<$crate::money_sql::TransferTuple> = sqlx::query_as(&sql)
                    .bind(partner_id)
                    .bind(limit)
                    .bind(offset)
                    .fetch_all(&self.pool)
                    .await?;
                rows.into_iter().map($crate::money_sql::transfer_row).collect()
            }

            async fn list_withdrawals(
                &self,
                status: Option<partnerd_domain::ledger::WithdrawalStatus>,
                limit: i64,
                offset: i64,
            ) -> $crate::StoreResult<Vec<$crate::money::WithdrawalRow>> {
                let sql = format!(
                    "select {} from withdrawals where ($1 is null or status = $1) \
                     order by requested_at, id limit $2 offset $3",
                    $crate::money_sql::WITHDRAWAL_COLUMNS
                );
                let rows: Vec<$crate::money_sql::WithdrawalTuple> = sqlx::query_as(&sql)
                    .bind(status.map(|s| s.as_str()))
                    .bind(limit)
                    .bind(offset)
                    .fetch_all(&self.pool)
                    .await?;
                rows.into_iter().map($crate::money_sql::withdrawal_row).collect()
            }

            async fn get_withdrawal(
                &self,
                withdrawal_id: &str,
            ) -> $crate::StoreResult<($crate::money::WithdrawalRow, Option<$crate::money::PayoutItemRow>)> {
                let sql = format!(
                    "select {} from withdrawals where id = $1",
                    $crate::money_sql::WITHDRAWAL_COLUMNS
                );
                let row: $crate::money_sql::WithdrawalTuple = sqlx::query_as(&sql)
                    .bind(withdrawal_id)
                    .fetch_optional(&self.pool)
                    .await?
                    .ok_or($crate::StoreError::NotFound)?;
                let item = Self::payout_item_of(&self.pool, withdrawal_id).await?;
                Ok(($crate::money_sql::withdrawal_row(row)?, item))
            }

            async fn new_paying_customers(
                &self,
                partner_id: i64,
                since: partnerd_domain::Timestamp,
            ) -> $crate::StoreResult<i64> {
                let sql = format!(
                    "select count(*) from ({}) firsts where first_paid >= $2",
                    $crate::money_sql::FIRST_PAYMENTS
                );
                let (count,): (i64,) = sqlx::query_as(&sql)
                .bind(partner_id)
                .bind(since.millis())
                .fetch_one(&self.pool)
                .await?;
                Ok(count)
            }

            async fn ledger_records(&self) -> $crate::StoreResult<$crate::money::LedgerSnapshot> {
                let mut tx = self.pool.begin().await?;
                if Self::BACKEND == $crate::Backend::Postgres {
                    // One snapshot for every table, so a booking committed half-way
                    // through the reads cannot look like a breach.
                    sqlx::query("set transaction isolation level repeatable read, read only")
                        .execute(&mut *tx)
                        .await?;
                }
                let sql = format!(
                    "select {} from ledger_transfers order by id",
                    $crate::money_sql::TRANSFER_COLUMNS
                );
                let rows: Vec<$crate::money_sql::TransferTuple> =
                    sqlx::query_as(&sql).fetch_all(&mut *tx).await?;
                let transfers = rows
                    .into_iter()
                    .map(|r| $crate::money_sql::transfer_row(r).map(|t| t.transfer))
                    .collect::<$crate::StoreResult<Vec<_>>>()?;

                let sql = format!(
                    "select partner_id, currency, {} from partner_money order by partner_id, currency",
                    $crate::money_sql::BALANCE_COLUMNS
                );
                let rows: Vec<(i64, String, i64, i64, i64, i64, i64, i64, i64)> =
                    sqlx::query_as(&sql).fetch_all(&mut *tx).await?;
                let mut books = std::collections::BTreeMap::new();
                for (partner_id, code, earned, held, on_review, available, in_flight, paid, clawback) in rows {
                    let mut money = partnerd_domain::ledger::PartnerMoney::new(
                        partner_id,
                        $crate::money_sql::currency(&code)?,
                    );
                    money.balances = $crate::money_sql::balances((
                        earned, held, on_review, available, in_flight, paid, clawback,
                    ));
                    books.insert((partner_id, code), money);
                }
                let lots: Vec<(String, i64, String, Option<i64>, i64, i64, i64)> = sqlx::query_as(
                    "select invoice_id, partner_id, currency, release_at, held, on_review, releases from ledger_lots",
                )
                .fetch_all(&mut *tx)
                .await?;
                for (invoice, partner_id, code, release_at, held, on_review, releases) in lots {
                    let lot = $crate::money_sql::lot(release_at, held, on_review, releases)?;
                    let money = books.get_mut(&(partner_id, code.clone())).ok_or_else(|| {
                        $crate::money_sql::corrupt(format!(
                            "the lot of invoice {invoice} belongs to partner {partner_id} in {code}, which has no money row"
                        ))
                    })?;
                    money.lots.insert(invoice, lot);
                }
                let balances = books.into_values().collect();

                let sql = format!(
                    "select {} from invoices where partner_id is not null order by id",
                    $crate::money_sql::INVOICE_COLUMNS
                );
                let rows: Vec<$crate::money_sql::InvoiceTuple> =
                    sqlx::query_as(&sql).fetch_all(&mut *tx).await?;
                let refunds: Vec<(String, String, i64)> =
                    sqlx::query_as("select invoice_id, id, amount from invoice_refunds")
                        .fetch_all(&mut *tx)
                        .await?;
                let chargebacks: Vec<(String, String, Option<i64>, Option<i64>)> = sqlx::query_as(
                    "select invoice_id, id, withdrawn, reinstated from invoice_chargebacks",
                )
                .fetch_all(&mut *tx)
                .await?;
                let mut refunds_of: std::collections::BTreeMap<String, Vec<(String, i64)>> =
                    std::collections::BTreeMap::new();
                for (invoice, id, amount) in refunds {
                    refunds_of.entry(invoice).or_default().push((id, amount));
                }
                let mut chargebacks_of: std::collections::BTreeMap<String, Vec<(String, Option<i64>, Option<i64>)>> =
                    std::collections::BTreeMap::new();
                for (invoice, id, withdrawn, reinstated) in chargebacks {
                    chargebacks_of.entry(invoice).or_default().push((id, withdrawn, reinstated));
                }
                let invoices = rows
                    .into_iter()
                    .map(|row| {
                        let refunds = refunds_of.remove(&row.0).unwrap_or_default();
                        let chargebacks = chargebacks_of.remove(&row.0).unwrap_or_default();
                        $crate::money_sql::InvoiceState::from_row(row, refunds, chargebacks).map(|s| s.invoice)
                    })
                    .collect::<$crate::StoreResult<Vec<_>>>()?;

                let sql = format!(
                    "select {} from withdrawals order by requested_at, id",
                    $crate::money_sql::WITHDRAWAL_COLUMNS
                );
                let rows: Vec<$crate::money_sql::WithdrawalTuple> =
                    sqlx::query_as(&sql).fetch_all(&mut *tx).await?;
                let withdrawals = rows
                    .into_iter()
                    .map(|r| $crate::money_sql::withdrawal_row(r).map(|w| w.withdrawal))
                    .collect::<$crate::StoreResult<Vec<_>>>()?;
                let sql = format!(
                    "select {} from payout_items order by withdrawal_id",
                    $crate::money_sql::PAYOUT_COLUMNS
                );
                let rows: Vec<$crate::money_sql::PayoutTuple> =
                    sqlx::query_as(&sql).fetch_all(&mut *tx).await?;
                let payout_items = rows
                    .into_iter()
                    .map(|r| $crate::money_sql::payout_item_row(r).map(|p| p.item))
                    .collect::<$crate::StoreResult<Vec<_>>>()?;
                tx.commit().await?;
                Ok($crate::money::LedgerSnapshot {
                    transfers,
                    balances,
                    invoices,
                    withdrawals,
                    payout_items,
                })
            }
        }
    };
}

pub(crate) use money_store;
