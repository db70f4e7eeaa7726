//! Reads behind partners' statements and withdrawals and the admins' accounting
//! exports (issue 4 part 8; R-PAY-1..4): the [`ExportStore`] methods, their row
//! shapes and their statements, written once for both engines like `shared.rs`
//! (`export_store!` is expanded for each backend).
//!
//! Nothing here writes. Statements are computed from the ledger's transfers
//! (the source of truth, I8) rather than from `partner_money`, because a month's
//! opening and closing balances are the transfers' sums up to a moment, which
//! the stored balances (always "now") cannot give.

use async_trait::async_trait;
use partnerd_domain::{Currency, Timestamp};
use serde::Serialize;

use crate::StoreResult;
use crate::money::{TransferRow, WithdrawalRow};

/// One commission booking (an earning or a reversal) for the accounting export:
/// all legs of one ledger source that touch the commission expense, summed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CommissionBooking {
    /// The ledger source key (`com:in_1`, `ref:re_1`, `cb:dp_1` …): unique per booking.
    pub source: String,
    pub partner_id: i64,
    pub partner_public_id: String,
    pub partner_name: String,
    /// The payment (invoice) the commission is on.
    pub payment_id: Option<String>,
    pub customer_id: Option<String>,
    pub currency: Currency,
    /// What this booking did to the commission: positive earns, negative reverses.
    pub amount: i64,
    /// What the customer paid on the invoice, and the rate fixed for the customer.
    pub payment_amount: Option<i64>,
    pub rate: Option<i64>,
    pub booked_at: Timestamp,
}

/// One withdrawal with what accounting needs about its payout.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct WithdrawalExportRow {
    pub withdrawal: WithdrawalRow,
    pub partner_public_id: String,
    pub partner_name: String,
    /// The PayPal address the payout went to (set once approved).
    pub receiver: Option<String>,
    /// PayPal's item status (`SUCCESS`, `UNCLAIMED` …), once approved.
    pub payout_status: Option<String>,
    pub payout_batch_id: Option<String>,
    pub payout_item_id: Option<String>,
    /// When the payout was booked as arrived (`paid:{withdrawal}`).
    pub paid_at: Option<Timestamp>,
}

/// The read-only methods behind statements and exports. Each is one query (or
/// one read transaction).
#[async_trait]
pub trait ExportStore: Send + Sync {
    /// A partner's withdrawals, newest first.
    async fn partner_withdrawals(
        &self,
        partner_id: i64,
        limit: i64,
        offset: i64,
    ) -> StoreResult<Vec<WithdrawalRow>>;
    /// Every transfer of a partner's books booked before `until`, in booking order:
    /// what a statement's opening and closing balances and its lines are made of.
    async fn partner_transfers_until(
        &self,
        partner_id: i64,
        until: Timestamp,
    ) -> StoreResult<Vec<TransferRow>>;
    /// The UTC days (milliseconds / 86 400 000) on which the partner's books
    /// moved, ascending: the statement list is made of their months.
    async fn partner_activity_days(&self, partner_id: i64) -> StoreResult<Vec<i64>>;
    /// R-ACC-4: when each of the partner's new paying customers since `since`
    /// first paid, oldest first (the same customers `new_paying_customers` counts).
    async fn first_payments_since(
        &self,
        partner_id: i64,
        since: Timestamp,
    ) -> StoreResult<Vec<Timestamp>>;
    /// Program-wide commission bookings in `[from, to)`, oldest first.
    async fn commission_bookings(
        &self,
        from: Timestamp,
        to: Timestamp,
    ) -> StoreResult<Vec<CommissionBooking>>;
    /// Program-wide withdrawals requested in `[from, to)`, oldest first.
    async fn withdrawals_requested(
        &self,
        from: Timestamp,
        to: Timestamp,
    ) -> StoreResult<Vec<WithdrawalExportRow>>;
}

pub(crate) type BookingTuple = (
    String,
    i64,
    String,
    String,
    Option<String>,
    Option<String>,
    String,
    i64,
    i64,
    Option<i64>,
    Option<i64>,
);

pub(crate) fn booking_row(row: BookingTuple) -> StoreResult<CommissionBooking> {
    let (
        source,
        partner_id,
        partner_public_id,
        partner_name,
        payment_id,
        customer_id,
        code,
        amount,
        booked_at,
        payment_amount,
        rate,
    ) = row;
    Ok(CommissionBooking {
        source,
        partner_id,
        partner_public_id,
        partner_name,
        payment_id,
        customer_id,
        currency: crate::money_sql::currency(&code)?,
        amount,
        payment_amount,
        rate,
        booked_at: Timestamp::from_millis(booked_at),
    })
}

macro_rules! export_store {
    ($store:ty, $db:ty) => {
        #[async_trait::async_trait]
        impl $crate::exports_sql::ExportStore for $store {
            async fn partner_withdrawals(
                &self,
                partner_id: i64,
                limit: i64,
                offset: i64,
            ) -> $crate::StoreResult<Vec<$crate::money::WithdrawalRow>> {
                let sql = format!(
                    "select {} from withdrawals where partner_id = $1 \
                     order by requested_at desc, id desc limit $2 offset $3",
                    $crate::money_sql::WITHDRAWAL_COLUMNS
                );
                let rows: Vec<$crate::money_sql::WithdrawalTuple> = sqlx::query_as(&sql)
                    .bind(partner_id)
                    .bind(limit)
                    .bind(offset)
                    .fetch_all(&self.pool)
                    .await?;
                rows.into_iter().map($crate::money_sql::withdrawal_row).collect()
            }

            async fn partner_transfers_until(
                &self,
                partner_id: i64,
                until: partnerd_domain::Timestamp,
            ) -> $crate::StoreResult<Vec<$crate::money::TransferRow>> {
                let sql = format!(
                    "select {} from ledger_transfers where partner_id = $1 and created_at < $2 order by id",
                    $crate::money_sql::TRANSFER_COLUMNS
                );
                let rows: Vec<$crate::money_sql::TransferTuple> = sqlx::query_as(&sql)
                    .bind(partner_id)
                    .bind(until.millis())
                    .fetch_all(&self.pool)
                    .await?;
                rows.into_iter().map($crate::money_sql::transfer_row).collect()
            }

            async fn partner_activity_days(&self, partner_id: i64) -> $crate::StoreResult<Vec<i64>> {
                // Integer division on both engines (bigint / bigint).
                let rows: Vec<(i64,)> = sqlx::query_as(
                    "select distinct created_at / 86400000 from ledger_transfers where partner_id = $1 order by 1",
                )
                .bind(partner_id)
                .fetch_all(&self.pool)
                .await?;
                Ok(rows.into_iter().map(|(day,)| day).collect())
            }

            async fn first_payments_since(
                &self,
                partner_id: i64,
                since: partnerd_domain::Timestamp,
            ) -> $crate::StoreResult<Vec<partnerd_domain::Timestamp>> {
                // The same customers as `new_paying_customers`.
                let sql = format!(
                    "select first_paid from ({}) firsts where first_paid >= $2 order by first_paid",
                    $crate::money_sql::FIRST_PAYMENTS
                );
                let rows: Vec<(i64,)> = sqlx::query_as(&sql)
                .bind(partner_id)
                .bind(since.millis())
                .fetch_all(&self.pool)
                .await?;
                Ok(rows
                    .into_iter()
                    .map(|(at,)| partnerd_domain::Timestamp::from_millis(at))
                    .collect())
            }

            async fn commission_bookings(
                &self,
                from: partnerd_domain::Timestamp,
                to: partnerd_domain::Timestamp,
            ) -> $crate::StoreResult<Vec<$crate::exports_sql::CommissionBooking>> {
                // Every leg of a booking shares its source and its time; legs into
                // the expense earn, legs out of it reverse (the expense grows
                // with debits). Sums cast to bigint: PostgreSQL's sum is numeric.
                let rows: Vec<$crate::exports_sql::BookingTuple> = sqlx::query_as(
                    "select t.source, t.partner_id, p.public_id, p.name, t.invoice_id, i.customer_id, t.currency, \
                     cast(sum(case when t.debit = 'commission_expense' then t.amount else -t.amount end) as bigint), \
                     min(t.created_at), i.amount, i.commission_rate \
                     from ledger_transfers t join partners p on p.id = t.partner_id \
                     left join invoices i on i.id = t.invoice_id \
                     where (t.debit = 'commission_expense' or t.credit = 'commission_expense') \
                     and t.created_at >= $1 and t.created_at < $2 \
                     group by t.source, t.partner_id, p.public_id, p.name, t.invoice_id, i.customer_id, \
                     t.currency, i.amount, i.commission_rate \
                     order by min(t.created_at), t.source",
                )
                .bind(from.millis())
                .bind(to.millis())
                .fetch_all(&self.pool)
                .await?;
                rows.into_iter().map($crate::exports_sql::booking_row).collect()
            }

            async fn withdrawals_requested(
                &self,
                from: partnerd_domain::Timestamp,
                to: partnerd_domain::Timestamp,
            ) -> $crate::StoreResult<Vec<$crate::exports_sql::WithdrawalExportRow>> {
                #[allow(clippy::type_complexity)]
                let rows: Vec<(
                    String, i64, String, i64, String, i64, Option<i64>, Option<String>,
                    String, String, Option<String>, Option<String>, Option<String>, Option<String>, Option<i64>,
                )> = sqlx::query_as(
                    "select w.id, w.partner_id, w.currency, w.amount, w.status, w.requested_at, w.decided_at, w.reason, \
                     p.public_id, p.name, pi.receiver, pi.status, pi.payout_batch_id, pi.payout_item_id, \
                     (select min(t.created_at) from ledger_transfers t where t.source = 'paid:' || w.id) \
                     from withdrawals w join partners p on p.id = w.partner_id \
                     left join payout_items pi on pi.withdrawal_id = w.id \
                     where w.requested_at >= $1 and w.requested_at < $2 \
                     order by w.requested_at, w.id",
                )
                .bind(from.millis())
                .bind(to.millis())
                .fetch_all(&self.pool)
                .await?;
                rows.into_iter()
                    .map(|(id, partner_id, code, amount, status, requested_at, decided_at, reason,
                           public_id, name, receiver, payout_status, batch, item, paid_at)| {
                        Ok($crate::exports_sql::WithdrawalExportRow {
                            withdrawal: $crate::money_sql::withdrawal_row((
                                id, partner_id, code, amount, status, requested_at, decided_at, reason,
                            ))?,
                            partner_public_id: public_id,
                            partner_name: name,
                            receiver,
                            payout_status,
                            payout_batch_id: batch,
                            payout_item_id: item,
                            paid_at: paid_at.map(partnerd_domain::Timestamp::from_millis),
                        })
                    })
                    .collect()
            }
        }
    };
}

pub(crate) use export_store;
