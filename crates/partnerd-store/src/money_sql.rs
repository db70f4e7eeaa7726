//! The statements of [`MoneyStore`](crate::MoneyStore), written once for both
//! engines (like `shared.rs`): `money_store!` implements it for a backend type
//! that `shared_store!` was expanded for. The one thing that differs is row
//! locking: PostgreSQL locks the rows a booking reads (`for update`), because
//! several processes book at once; on SQLite every write transaction starts with
//! `BEGIN IMMEDIATE`, so writers already take turns and there is nothing to lock.

use std::collections::BTreeMap;

use partnerd_domain::commission::{Chargeback, CommissionRate, Invoice, Payment, Review};
use partnerd_domain::ledger::{
    Account, Lot, PartnerBalances, PayoutItem, PayoutStatus, Source, Transfer, Withdrawal,
    WithdrawalStatus,
};
use partnerd_domain::{Currency, Timestamp};

use crate::money::{BillingAnswer, PayoutItemRow, TransferRow, WithdrawalRow};
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

macro_rules! money_store {
    ($store:ty, $db:ty) => {
        impl $store {
            /// What a read that a booking depends on appends: a row lock on
            /// PostgreSQL; nothing on SQLite, whose writers already take turns.
            fn row_lock() -> &'static str {
                match Self::BACKEND {
                    $crate::Backend::Postgres => " for update",
                    $crate::Backend::Sqlite => "",
                }
            }

            /// Records a billing event's key, or returns the answer it got the
            /// first time. On PostgreSQL a concurrent delivery of the same event
            /// waits on the key's index entry until the first one commits.
            async fn claim_event(
                tx: &mut sqlx::Transaction<'_, $db>,
                key: &$crate::money::EventKey,
                kind: &str,
                request: &str,
                now: partnerd_domain::Timestamp,
            ) -> $crate::StoreResult<Option<$crate::money::BillingAnswer>> {
                let inserted = sqlx::query(
                    "insert into billing_events (origin, event_id, kind, request, answer, received_at) \
                     values ($1, $2, $3, $4, '', $5) on conflict (origin, event_id) do nothing",
                )
                .bind(key.origin.as_str())
                .bind(&key.event_id)
                .bind(kind)
                .bind(request)
                .bind(now.millis())
                .execute(&mut **tx)
                .await?
                .rows_affected();
                if inserted == 1 {
                    return Ok(None);
                }
                let (known_kind, known_request, answer): (String, String, String) = sqlx::query_as(
                    "select kind, request, answer from billing_events where origin = $1 and event_id = $2",
                )
                .bind(key.origin.as_str())
                .bind(&key.event_id)
                .fetch_one(&mut **tx)
                .await?;
                if known_kind != kind || known_request != request {
                    return Err($crate::StoreError::Conflict { field: "id" });
                }
                serde_json::from_str(&answer)
                    .map(Some)
                    .map_err($crate::money_sql::corrupt)
            }

            async fn finish_event(
                tx: &mut sqlx::Transaction<'_, $db>,
                key: &$crate::money::EventKey,
                answer: &$crate::money::BillingAnswer,
            ) -> $crate::StoreResult<()> {
                let answer = serde_json::to_string(answer).map_err($crate::money_sql::corrupt)?;
                sqlx::query("update billing_events set answer = $3 where origin = $1 and event_id = $2")
                    .bind(key.origin.as_str())
                    .bind(&key.event_id)
                    .bind(answer)
                    .execute(&mut **tx)
                    .await?;
                Ok(())
            }

            /// Loads and locks an invoice with its refunds and chargebacks,
            /// creating its row first when `create` (an event may name a payment
            /// that has not arrived yet).
            async fn lock_invoice(
                tx: &mut sqlx::Transaction<'_, $db>,
                id: &str,
                create: bool,
                now: partnerd_domain::Timestamp,
            ) -> $crate::StoreResult<$crate::money_sql::InvoiceState> {
                if create {
                    sqlx::query(
                        "insert into invoices (id, created_at, updated_at) values ($1, $2, $2) on conflict (id) do nothing",
                    )
                    .bind(id)
                    .bind(now.millis())
                    .execute(&mut **tx)
                    .await?;
                }
                let sql = format!(
                    "select {} from invoices where id = $1{}",
                    $crate::money_sql::INVOICE_COLUMNS,
                    Self::row_lock()
                );
                let row: $crate::money_sql::InvoiceTuple = sqlx::query_as(&sql)
                    .bind(id)
                    .fetch_optional(&mut **tx)
                    .await?
                    .ok_or($crate::StoreError::NotFound)?;
                let refunds: Vec<(String, i64)> =
                    sqlx::query_as("select id, amount from invoice_refunds where invoice_id = $1")
                        .bind(id)
                        .fetch_all(&mut **tx)
                        .await?;
                let chargebacks: Vec<(String, Option<i64>, Option<i64>)> = sqlx::query_as(
                    "select id, withdrawn, reinstated from invoice_chargebacks where invoice_id = $1",
                )
                .bind(id)
                .fetch_all(&mut **tx)
                .await?;
                $crate::money_sql::InvoiceState::from_row(row, refunds, chargebacks)
            }

            async fn save_invoice(
                tx: &mut sqlx::Transaction<'_, $db>,
                state: &$crate::money_sql::InvoiceState,
                now: partnerd_domain::Timestamp,
            ) -> $crate::StoreResult<()> {
                let invoice = &state.invoice;
                let (partner, code, amount, rate, paid_at) = match (&invoice.payment, state.uncredited) {
                    (Some(p), _) => (
                        Some(p.partner_id),
                        Some(p.currency.code()),
                        Some(p.amount),
                        Some(p.rate.percent()),
                        Some(p.paid_at.millis()),
                    ),
                    (None, Some((amount, currency, paid_at))) => {
                        (None, Some(currency.code()), Some(amount), None, Some(paid_at.millis()))
                    }
                    (None, None) => (None, None, None, None, None),
                };
                sqlx::query(
                    "update invoices set customer_id = $2, subscription_id = $3, partner_id = $4, currency = $5, \
                     amount = $6, commission_rate = $7, paid_at = $8, review = $9, review_round = $10, booked = $11, \
                     updated_at = $12 where id = $1",
                )
                .bind(&invoice.id)
                .bind(&state.customer_id)
                .bind(&state.subscription_id)
                .bind(partner)
                .bind(code)
                .bind(amount)
                .bind(rate)
                .bind(paid_at)
                .bind($crate::money_sql::review_str(invoice.review))
                .bind(state.review_round)
                .bind(invoice.booked)
                .bind(now.millis())
                .execute(&mut **tx)
                .await?;
                Ok(())
            }

            /// Loads and locks a partner's money row in one currency (created
            /// empty if new): the row every booking of this book goes through.
            async fn lock_money(
                tx: &mut sqlx::Transaction<'_, $db>,
                partner_id: i64,
                currency: partnerd_domain::Currency,
                now: partnerd_domain::Timestamp,
            ) -> $crate::StoreResult<partnerd_domain::ledger::PartnerMoney> {
                sqlx::query(
                    "insert into partner_money (partner_id, currency, updated_at) values ($1, $2, $3) \
                     on conflict (partner_id, currency) do nothing",
                )
                .bind(partner_id)
                .bind(currency.code())
                .bind(now.millis())
                .execute(&mut **tx)
                .await?;
                let sql = format!(
                    "select {} from partner_money where partner_id = $1 and currency = $2{}",
                    $crate::money_sql::BALANCE_COLUMNS,
                    Self::row_lock()
                );
                let row: $crate::money_sql::BalanceTuple = sqlx::query_as(&sql)
                    .bind(partner_id)
                    .bind(currency.code())
                    .fetch_one(&mut **tx)
                    .await?;
                let mut money = partnerd_domain::ledger::PartnerMoney::new(partner_id, currency);
                money.balances = $crate::money_sql::balances(row);
                Ok(money)
            }

            /// Adds the lot of `invoice` (if it has one) to `money`.
            async fn load_lot(
                tx: &mut sqlx::Transaction<'_, $db>,
                money: &mut partnerd_domain::ledger::PartnerMoney,
                invoice: &str,
            ) -> $crate::StoreResult<()> {
                let row: Option<(Option<i64>, i64, i64, i64)> = sqlx::query_as(
                    "select release_at, held, on_review, releases from ledger_lots where invoice_id = $1",
                )
                .bind(invoice)
                .fetch_optional(&mut **tx)
                .await?;
                if let Some((release_at, held, on_review, releases)) = row {
                    money.lots.insert(
                        invoice.to_owned(),
                        $crate::money_sql::lot(release_at, held, on_review, releases)?,
                    );
                }
                Ok(())
            }

            /// Writes what a planner booked: its transfers, the money row and the
            /// lots it touched (kept even when empty: they number release keys).
            async fn write_booking(
                tx: &mut sqlx::Transaction<'_, $db>,
                money: &partnerd_domain::ledger::PartnerMoney,
                transfers: &[partnerd_domain::ledger::Transfer],
                now: partnerd_domain::Timestamp,
            ) -> $crate::StoreResult<()> {
                if transfers.is_empty() {
                    return Ok(());
                }
                let mut lots = std::collections::BTreeSet::new();
                for t in transfers {
                    sqlx::query(
                        "insert into ledger_transfers (source, leg, partner_id, currency, debit, credit, amount, \
                         invoice_id, release_at, created_at) values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
                    )
                    .bind(t.source.key())
                    .bind(i64::from(t.leg))
                    .bind(t.partner_id)
                    .bind(t.currency.code())
                    .bind(t.debit.as_str())
                    .bind(t.credit.as_str())
                    .bind(t.amount)
                    .bind(&t.invoice)
                    .bind(t.release_at.map(|at| at.millis()))
                    .bind(now.millis())
                    .execute(&mut **tx)
                    .await
                    .map_err(|e| $crate::shared::on_unique(e, "ledger source"))?;
                    if let Some(invoice) = &t.invoice {
                        if money.lots.contains_key(invoice) {
                            lots.insert(invoice.as_str());
                        }
                    }
                }
                let b = money.balances;
                sqlx::query(
                    "update partner_money set earned = $3, held = $4, on_review = $5, available = $6, in_flight = $7, \
                     paid = $8, clawback = $9, updated_at = $10 where partner_id = $1 and currency = $2",
                )
                .bind(money.partner_id)
                .bind(money.currency.code())
                .bind(b.earned)
                .bind(b.held)
                .bind(b.on_review)
                .bind(b.available)
                .bind(b.in_flight)
                .bind(b.paid)
                .bind(b.clawback)
                .bind(now.millis())
                .execute(&mut **tx)
                .await?;
                for invoice in lots {
                    let lot = money.lot(invoice);
                    sqlx::query(
                        "insert into ledger_lots (invoice_id, partner_id, currency, release_at, held, on_review, releases) \
                         values ($1, $2, $3, $4, $5, $6, $7) on conflict (invoice_id) do update set \
                         release_at = excluded.release_at, held = excluded.held, on_review = excluded.on_review, \
                         releases = excluded.releases",
                    )
                    .bind(invoice)
                    .bind(money.partner_id)
                    .bind(money.currency.code())
                    .bind(lot.release_at.map(|at| at.millis()))
                    .bind(lot.held)
                    .bind(lot.on_review)
                    .bind(i64::from(lot.releases))
                    .execute(&mut **tx)
                    .await?;
                }
                Ok(())
            }

            /// Books what the invoice's latest event changed (I4) on the credited
            /// partner's book; returns the delta booked (0 before the payment).
            async fn book_invoice_change(
                tx: &mut sqlx::Transaction<'_, $db>,
                state: &mut $crate::money_sql::InvoiceState,
                source: partnerd_domain::ledger::Source,
                hold_days: i64,
                now: partnerd_domain::Timestamp,
            ) -> $crate::StoreResult<i64> {
                let Some(payment) = state.invoice.payment.clone() else {
                    return Ok(0);
                };
                let before = state.invoice.booked;
                let mut money = Self::lock_money(tx, payment.partner_id, payment.currency, now).await?;
                Self::load_lot(tx, &mut money, &state.invoice.id).await?;
                let transfers = partnerd_domain::ledger::book_commission_change(
                    &mut money,
                    &mut state.invoice,
                    source,
                    hold_days,
                    now,
                )?;
                Self::write_booking(tx, &money, &transfers, now).await?;
                Ok(state.invoice.booked - before)
            }

            /// R-REP-2: what a billing event changed in the report's paying
            /// customers, revenue and commission, on the report row of the
            /// customer's sign-up (campaign and term) at the hour of the payment,
            /// in the same transaction as the booking. A customer counts once, with
            /// the first of their payments to arrive. (Not yet: PROGRAM.md's
            /// exception for a first payment refunded in full; the report still
            /// counts that customer, the ledger is not affected.)
            async fn report_money_change(
                tx: &mut sqlx::Transaction<'_, $db>,
                state: &$crate::money_sql::InvoiceState,
                commission: i64,
            ) -> $crate::StoreResult<()> {
                let Some(payment) = state.invoice.payment.as_ref() else {
                    return Ok(());
                };
                let revenue = state.revenue() - state.revenue_loaded;
                let arrived = !state.payment_loaded && payment.amount > 0;
                let mut customers = 0;
                if arrived {
                    let (earlier,): (i64,) = sqlx::query_as(
                        "select count(*) from invoices where customer_id = $1 and id <> $2 and amount > 0 and partner_id is not null",
                    )
                    .bind(&state.customer_id)
                    .bind(&state.invoice.id)
                    .fetch_one(&mut **tx)
                    .await?;
                    customers = i64::from(earlier == 0);
                }
                if revenue == 0 && commission == 0 && customers == 0 {
                    return Ok(());
                }
                let row: Option<(Option<i64>, Option<String>)> = sqlx::query_as(
                    "select campaign_id, utm_term from signups where customer_id = $1",
                )
                .bind(&state.customer_id)
                .fetch_optional(&mut **tx)
                .await?;
                let (campaign, term) = row.unwrap_or_default();
                sqlx::query(
                    "insert into report_money (partner_id, hour, campaign_id, utm_term, currency, customers, revenue, commission) \
                     values ($1, $2, $3, $4, $5, $6, $7, $8) \
                     on conflict (partner_id, hour, campaign_id, utm_term, currency) do update set \
                     customers = report_money.customers + excluded.customers, \
                     revenue = report_money.revenue + excluded.revenue, \
                     commission = report_money.commission + excluded.commission",
                )
                .bind(payment.partner_id)
                .bind(payment.paid_at.millis().div_euclid(3_600_000))
                .bind(campaign.unwrap_or(0))
                .bind(term.unwrap_or_default())
                .bind(payment.currency.code())
                .bind(customers)
                .bind(revenue)
                .bind(commission)
                .execute(&mut **tx)
                .await?;
                Ok(())
            }

            /// The end of every billing event on an invoice: the invoice, the
            /// event's answer, the commit.
            async fn finish_invoice_event(
                mut tx: sqlx::Transaction<'_, $db>,
                key: &$crate::money::EventKey,
                state: &$crate::money_sql::InvoiceState,
                booked: i64,
                now: partnerd_domain::Timestamp,
            ) -> $crate::StoreResult<$crate::money::BillingAnswer> {
                Self::save_invoice(&mut tx, state, now).await?;
                Self::report_money_change(&mut tx, state, booked).await?;
                let answer = state.answer(booked);
                Self::finish_event(&mut tx, key, &answer).await?;
                tx.commit().await?;
                Ok(answer)
            }

            async fn lock_withdrawal(
                tx: &mut sqlx::Transaction<'_, $db>,
                id: &str,
            ) -> $crate::StoreResult<$crate::money::WithdrawalRow> {
                let sql = format!(
                    "select {} from withdrawals where id = $1{}",
                    $crate::money_sql::WITHDRAWAL_COLUMNS,
                    Self::row_lock()
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

            /// The body of [`MoneyStore::record_payment`] inside `tx` (a transaction, or a
            /// savepoint of a batch); commits `tx` when it books.
            async fn record_payment_in(
                mut tx: sqlx::Transaction<'_, $db>,
                payment: $crate::money::NewPayment,
                hold_days: i64,
                now: partnerd_domain::Timestamp,
            ) -> $crate::StoreResult<($crate::money::BillingAnswer, bool)> {
                use partnerd_domain::commission::{CommissionError, CommissionRate, Payment, Recorded};
                let request = serde_json::to_string(&payment).map_err($crate::money_sql::corrupt)?;
                if let Some(answer) =
                    Self::claim_event(&mut tx, &payment.event, "payment", &request, now).await?
                {
                    // Commit, not drop: inside a batch's savepoint, what the caller
                    // wrote before this (a Stripe event's links) must stay.
                    tx.commit().await?;
                    return Ok((answer, true));
                }
                let mut state = Self::lock_invoice(&mut tx, &payment.payment_id, true, now).await?;
                let replayed = if let Some(known) = state.invoice.payment.clone() {
                    // Already recorded (another event id, or the API and Stripe
                    // both): the domain compares the amount and currency.
                    let recorded = state
                        .invoice
                        .record_payment(Payment {
                            currency: payment.currency,
                            amount: payment.amount,
                            ..known
                        })
                        .map_err(partnerd_domain::ledger::LedgerError::from)?;
                    recorded == Recorded::Replay
                } else if let Some((amount, currency, _)) = state.uncredited {
                    if (amount, currency) != (payment.amount, payment.currency) {
                        return Err($crate::StoreError::Ledger(
                            CommissionError::ConflictingReplay {
                                what: "payment",
                                id: payment.payment_id.clone(),
                            }
                            .into(),
                        ));
                    }
                    true
                } else {
                    // R-AFF-4, R-COM-1: the partner and the rate fixed when the
                    // customer was credited.
                    let credit: Option<(Option<i64>, Option<i64>, i64)> = sqlx::query_as(
                        "select partner_id, commission_rate, review from signups where customer_id = $1",
                    )
                    .bind(&payment.customer_id)
                    .fetch_optional(&mut *tx)
                    .await?;
                    if let Some((Some(partner_id), Some(rate), review)) = credit {
                        let rate = CommissionRate::from_percent(rate).map_err($crate::money_sql::corrupt)?;
                        state
                            .invoice
                            .record_payment(Payment {
                                partner_id,
                                currency: payment.currency,
                                amount: payment.amount,
                                rate,
                                paid_at: payment.paid_at,
                                under_review: review != 0,
                            })
                            .map_err(partnerd_domain::ledger::LedgerError::from)?;
                    } else {
                        if payment.amount < 0 {
                            return Err($crate::StoreError::Ledger(
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
                        sqlx::query(
                            "insert into subscriptions (id, customer_id, status, created_at) values ($1, $2, 'active', $3) \
                             on conflict (id) do nothing",
                        )
                        .bind(subscription)
                        .bind(&payment.customer_id)
                        .bind(now.millis())
                        .execute(&mut *tx)
                        .await?;
                    }
                }
                let source = partnerd_domain::ledger::Source::Commission {
                    payment: payment.payment_id.clone(),
                };
                let booked = Self::book_invoice_change(&mut tx, &mut state, source, hold_days, now).await?;
                let answer = Self::finish_invoice_event(tx, &payment.event, &state, booked, now).await?;
                Ok((answer, replayed))
            }

            /// The body of [`MoneyStore::record_refund`] inside `tx` (a transaction, or a
            /// savepoint of a batch); commits `tx` when it books.
            async fn record_refund_in(
                mut tx: sqlx::Transaction<'_, $db>,
                refund: $crate::money::NewRefund,
                hold_days: i64,
                now: partnerd_domain::Timestamp,
            ) -> $crate::StoreResult<($crate::money::BillingAnswer, bool)> {
                use partnerd_domain::commission::Recorded;
                let request = serde_json::to_string(&refund).map_err($crate::money_sql::corrupt)?;
                if let Some(answer) =
                    Self::claim_event(&mut tx, &refund.event, "refund", &request, now).await?
                {
                    // Commit, not drop: inside a batch's savepoint, what the caller
                    // wrote before this (a Stripe event's links) must stay.
                    tx.commit().await?;
                    return Ok((answer, true));
                }
                let owner: Option<(String,)> =
                    sqlx::query_as("select invoice_id from invoice_refunds where id = $1")
                        .bind(&refund.refund_id)
                        .fetch_optional(&mut *tx)
                        .await?;
                if owner.is_some_and(|(invoice,)| invoice != refund.payment_id) {
                    return Err($crate::StoreError::Conflict { field: "refund id" });
                }
                let mut state = Self::lock_invoice(&mut tx, &refund.payment_id, true, now).await?;
                let recorded = state
                    .invoice
                    .record_refund(&refund.refund_id, refund.amount)
                    .map_err(partnerd_domain::ledger::LedgerError::from)?;
                if recorded == Recorded::New {
                    sqlx::query(
                        "insert into invoice_refunds (id, invoice_id, amount, recorded_at) values ($1, $2, $3, $4)",
                    )
                    .bind(&refund.refund_id)
                    .bind(&refund.payment_id)
                    .bind(refund.amount)
                    .bind(now.millis())
                    .execute(&mut *tx)
                    .await?;
                }
                let source = partnerd_domain::ledger::Source::Refund {
                    refund: refund.refund_id.clone(),
                };
                let booked = Self::book_invoice_change(&mut tx, &mut state, source, hold_days, now).await?;
                let answer = Self::finish_invoice_event(tx, &refund.event, &state, booked, now).await?;
                Ok((answer, recorded == Recorded::Replay))
            }

            /// The body of [`MoneyStore::record_chargeback`] inside `tx` (a transaction, or a
            /// savepoint of a batch); commits `tx` when it books.
            async fn record_chargeback_in(
                mut tx: sqlx::Transaction<'_, $db>,
                chargeback: $crate::money::NewChargeback,
                hold_days: i64,
                now: partnerd_domain::Timestamp,
            ) -> $crate::StoreResult<($crate::money::BillingAnswer, bool)> {
                use partnerd_domain::commission::Recorded;
                use partnerd_domain::ledger::Source;
                let request = serde_json::to_string(&chargeback).map_err($crate::money_sql::corrupt)?;
                let kind = match chargeback.change {
                    $crate::money::ChargebackChange::Withdrawn => "chargeback",
                    $crate::money::ChargebackChange::Reinstated => "reinstatement",
                };
                if let Some(answer) =
                    Self::claim_event(&mut tx, &chargeback.event, kind, &request, now).await?
                {
                    // Commit, not drop: inside a batch's savepoint, what the caller
                    // wrote before this (a Stripe event's links) must stay.
                    tx.commit().await?;
                    return Ok((answer, true));
                }
                let owner: Option<(String,)> =
                    sqlx::query_as("select invoice_id from invoice_chargebacks where id = $1")
                        .bind(&chargeback.chargeback_id)
                        .fetch_optional(&mut *tx)
                        .await?;
                if owner.is_some_and(|(invoice,)| invoice != chargeback.payment_id) {
                    return Err($crate::StoreError::Conflict { field: "chargeback id" });
                }
                let mut state = Self::lock_invoice(&mut tx, &chargeback.payment_id, true, now).await?;
                let id = chargeback.chargeback_id.clone();
                let (recorded, source) = match chargeback.change {
                    $crate::money::ChargebackChange::Withdrawn => (
                        state.invoice.record_chargeback(&id, chargeback.amount),
                        Source::Chargeback { chargeback: id.clone() },
                    ),
                    $crate::money::ChargebackChange::Reinstated => (
                        state.invoice.record_reinstatement(&id, chargeback.amount),
                        Source::Reinstatement { chargeback: id.clone() },
                    ),
                };
                let recorded = recorded.map_err(partnerd_domain::ledger::LedgerError::from)?;
                if recorded == Recorded::New {
                    let entry = state.invoice.chargebacks.get(&id).copied().unwrap_or_default();
                    sqlx::query(
                        "insert into invoice_chargebacks (id, invoice_id, withdrawn, reinstated, recorded_at) \
                         values ($1, $2, $3, $4, $5) on conflict (id) do update set \
                         withdrawn = excluded.withdrawn, reinstated = excluded.reinstated",
                    )
                    .bind(&id)
                    .bind(&chargeback.payment_id)
                    .bind(entry.withdrawn)
                    .bind(entry.reinstated)
                    .bind(now.millis())
                    .execute(&mut *tx)
                    .await?;
                }
                let booked = Self::book_invoice_change(&mut tx, &mut state, source, hold_days, now).await?;
                let answer = Self::finish_invoice_event(tx, &chargeback.event, &state, booked, now).await?;
                Ok((answer, recorded == Recorded::Replay))
            }

            /// [`BillingEvent::StripePayment`] inside `tx`: the charge links and the
            /// event's record, then the payment, which commits `tx`; or nothing at
            /// all when parked events wait for the invoice.
            async fn stripe_payment_in(
                mut tx: sqlx::Transaction<'_, $db>,
                payment: $crate::money::NewPayment,
                link: &$crate::stripe_sql::StripeChargeLink,
                record: &$crate::stripe_sql::StripeEventRecord,
                hold_days: i64,
                now: partnerd_domain::Timestamp,
            ) -> $crate::StoreResult<($crate::money::BillingAnswer, bool)> {
                // Linking takes the Stripe bookkeeping's lock (see stripe_sql.rs),
                // so a refund being parked at this moment cannot miss the link.
                let parked = Self::link_stripe_charge_in(&mut tx, link).await?;
                if !parked.is_empty() {
                    return Err($crate::StoreError::Invalid($crate::money::STRIPE_PARKED_WAITING));
                }
                Self::record_stripe_event_in(&mut tx, record).await?;
                Self::record_payment_in(tx, payment, hold_days, now).await
            }

            /// The body of [`MoneyStore::cancel_subscription`] inside `tx` (a transaction, or a
            /// savepoint of a batch); commits `tx` when it books.
            async fn cancel_subscription_in(
                mut tx: sqlx::Transaction<'_, $db>,
                cancellation: $crate::money::NewCancellation,
                now: partnerd_domain::Timestamp,
            ) -> $crate::StoreResult<($crate::money::BillingAnswer, bool)> {
                let request = serde_json::to_string(&cancellation).map_err($crate::money_sql::corrupt)?;
                if let Some(answer) =
                    Self::claim_event(&mut tx, &cancellation.event, "cancellation", &request, now).await?
                {
                    // Commit, not drop: inside a batch's savepoint, what the caller
                    // wrote before this (a Stripe event's links) must stay.
                    tx.commit().await?;
                    return Ok((answer, true));
                }
                // A cancellation may arrive before any payment of the subscription.
                sqlx::query(
                    "insert into subscriptions (id, customer_id, status, created_at, cancelled_at) \
                     values ($1, $2, 'cancelled', $3, $3) on conflict (id) do update set status = 'cancelled', \
                     cancelled_at = coalesce(subscriptions.cancelled_at, excluded.cancelled_at), \
                     customer_id = coalesce(subscriptions.customer_id, excluded.customer_id)",
                )
                .bind(&cancellation.subscription_id)
                .bind(&cancellation.customer_id)
                .bind(now.millis())
                .execute(&mut *tx)
                .await?;
                let answer = $crate::money::BillingAnswer {
                    payment_id: None,
                    partner_id: None,
                    currency: None,
                    commission: 0,
                    booked: 0,
                    subscription_id: Some(cancellation.subscription_id.clone()),
                };
                Self::finish_event(&mut tx, &cancellation.event, &answer).await?;
                tx.commit().await?;
                Ok((answer, false))
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
                Self::record_payment_in(self.write().await?, payment, hold_days, now).await
            }

            async fn record_refund(
                &self,
                refund: $crate::money::NewRefund,
                hold_days: i64,
                now: partnerd_domain::Timestamp,
            ) -> $crate::StoreResult<($crate::money::BillingAnswer, bool)> {
                Self::record_refund_in(self.write().await?, refund, hold_days, now).await
            }

            async fn record_chargeback(
                &self,
                chargeback: $crate::money::NewChargeback,
                hold_days: i64,
                now: partnerd_domain::Timestamp,
            ) -> $crate::StoreResult<($crate::money::BillingAnswer, bool)> {
                Self::record_chargeback_in(self.write().await?, chargeback, hold_days, now).await
            }

            async fn cancel_subscription(
                &self,
                cancellation: $crate::money::NewCancellation,
                now: partnerd_domain::Timestamp,
            ) -> $crate::StoreResult<($crate::money::BillingAnswer, bool)> {
                Self::cancel_subscription_in(self.write().await?, cancellation, now).await
            }

            async fn record_billing_batch(
                &self,
                events: Vec<$crate::money::BillingEvent>,
                hold_days: i64,
                now: partnerd_domain::Timestamp,
            ) -> $crate::StoreResult<Vec<$crate::StoreResult<($crate::money::BillingAnswer, bool)>>> {
                use $crate::money::BillingEvent;
                let mut tx = self.write().await?;
                let mut results = Vec::with_capacity(events.len());
                for event in events {
                    // Each event in a savepoint of its own: a refused one rolls
                    // back alone (its savepoint is dropped), the others stay.
                    let savepoint = sqlx::Acquire::begin(&mut *tx).await?;
                    let result = match event {
                        BillingEvent::Payment(payment) => {
                            Self::record_payment_in(savepoint, payment, hold_days, now).await
                        }
                        BillingEvent::Refund(refund) => {
                            Self::record_refund_in(savepoint, refund, hold_days, now).await
                        }
                        BillingEvent::Chargeback(chargeback) => {
                            Self::record_chargeback_in(savepoint, chargeback, hold_days, now).await
                        }
                        BillingEvent::Cancellation(cancellation) => {
                            Self::cancel_subscription_in(savepoint, cancellation, now).await
                        }
                        BillingEvent::StripePayment { payment, link, record } => {
                            Self::stripe_payment_in(savepoint, payment, &link, &record, hold_days, now)
                                .await
                        }
                    };
                    // A refusal is the event's own; a database failure may have
                    // rolled back the whole transaction (SQLite does on a full disk
                    // or an I/O error), so the batch fails as one and every caller
                    // retries, rather than being told of bookings that are gone.
                    if let Err(
                        err @ ($crate::StoreError::Database(_)
                        | $crate::StoreError::Sqlite(_)
                        | $crate::StoreError::Corrupt(_)),
                    ) = result
                    {
                        return Err(err);
                    }
                    results.push(result);
                }
                tx.commit().await?;
                Ok(results)
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
                let mut state = Self::lock_invoice(&mut tx, payment_id, false, now).await?;
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
                let mut state = Self::lock_invoice(&mut tx, payment_id, false, now).await?;
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
                let mut state = Self::lock_invoice(&mut tx, payment_id, false, now).await?;
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
                let (count,): (i64,) = sqlx::query_as(
                    "select count(*) from (select customer_id, min(paid_at) as first_paid from invoices \
                     where partner_id = $1 and amount > 0 group by customer_id) firsts where first_paid >= $2",
                )
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
