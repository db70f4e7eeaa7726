//! R-PAY-3: admins decide withdrawals, and approved ones are paid through
//! PayPal Payouts by two jobs, or by hand from a PayPal mass-payment file.
//!
//! **Exactly once.** Approval stores the payout item with its
//! `sender_batch_id` (= the withdrawal id) and enqueues [`PAYOUT_JOB`] in one
//! transaction. The job sends the batch under that id; every unknown outcome
//! (timeout, `5xx`, a crash before the answer was recorded) makes the job run
//! again with the *same* id, and PayPal answers a repeat with the batch it
//! already has ([`crate::paypal::CreatedBatch::replayed`]), so nothing is paid
//! twice. Once PayPal's batch id is recorded, [`POLL_JOB`] asks PayPal for the
//! item's status until it is final; every report goes through
//! `record_payout_status`, which books what it means (paid, or the money back
//! to available) together with the partner's email and the next poll.
//!
//! **Webhooks are hints.** A verified `PAYMENT.PAYOUTS-ITEM.*` delivery only
//! enqueues a poll of its withdrawal now; the poll's answer is the truth.
//!
//! **Manual path.** Without `[paypal]` an approved withdrawal waits: the
//! console exports such withdrawals as PayPal mass-payment files (at most
//! [`MASS_PAYMENT_ROWS`] rows, one currency each) and an admin marks each one
//! paid or failed afterwards.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use partnerd_domain::ledger::{PayoutStatus, WithdrawalStatus};
use partnerd_domain::tracking::csv_cell;
use partnerd_domain::{Currency, FieldErrors, Timestamp};
use partnerd_store::money::{PayoutFollowUp, PayoutItemRow, WithdrawalRow};
use partnerd_store::{NewAudit, NewEmail, NewJob, StoreError};
use serde_json::json;

use crate::config::Config;
use crate::paypal::{
    PayPalClient, PayPalConfig, PayPalWebhookEvent, PayoutItemRequest, Settlement,
    WebhookVerification, format_amount, parse_webhook,
};
use crate::{App, AppError, AppResult};

/// The job that sends an approved withdrawal's batch to PayPal.
pub const PAYOUT_JOB: &str = "paypal_payout";
/// The job that asks PayPal where an item is.
pub const POLL_JOB: &str = "paypal_poll";
/// PayPal's limit for one mass-payment file.
pub const MASS_PAYMENT_ROWS: usize = 5_000;

/// Attempts of a submission: with the runner's backoff (capped at an hour)
/// about a day of PayPal being down before a person has to look.
const PAYOUT_ATTEMPTS: i64 = 30;
/// Attempts of one poll before the chain of polls gives up on errors.
const POLL_ATTEMPTS: i64 = 50;

/// When the `round`-th poll after a submission runs: soon at first (most
/// payouts settle within minutes), then every six hours while an item is
/// unclaimed (PayPal returns it after 30 days).
pub fn poll_delay_seconds(round: i64) -> i64 {
    match round {
        0 => 60,
        1 => 5 * 60,
        2 => 30 * 60,
        _ => 6 * 3600,
    }
}

/// The PayPal client for `[paypal]`, if configured.
pub fn paypal_client(config: &Config) -> AppResult<Option<Arc<PayPalClient>>> {
    let Some(settings) = &config.paypal else {
        return Ok(None);
    };
    let mut paypal = PayPalConfig::new(
        settings.base_url.clone(),
        settings.client_id.clone(),
        settings.client_secret.clone(),
    );
    paypal.timeout = Duration::from_secs(settings.timeout_seconds);
    let client = PayPalClient::new(paypal).map_err(|e| AppError::Internal(e.to_string()))?;
    Ok(Some(Arc::new(client)))
}

/// What an admin records for a withdrawal paid outside PayPal's API.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ManualOutcome {
    /// The mass payment went through.
    Paid,
    /// It did not: the money goes back to the partner's balance.
    Failed,
}

impl ManualOutcome {
    pub fn parse(value: &str) -> Option<Self> {
        match value {
            "paid" => Some(Self::Paid),
            "failed" => Some(Self::Failed),
            _ => None,
        }
    }
}

/// Why a PayPal webhook delivery was not taken.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WebhookRefusal {
    /// PayPal (or its webhook id) is not configured, so nothing can be verified.
    #[error("PayPal webhooks are not configured")]
    NotConfigured,
    /// PayPal says the delivery is not genuine, or it lacks PayPal's headers.
    #[error("the webhook could not be verified")]
    Unverified,
    /// PayPal could not be asked: the sender should deliver again later.
    #[error("PayPal could not verify the webhook now: {0}")]
    Unavailable(String),
}

/// One mass-payment file the console offers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MassPaymentFile {
    pub currency: Currency,
    /// 1-based: the rows `(part - 1) × 5,000 …` of the currency's list.
    pub part: usize,
    pub rows: usize,
    /// Sum of the file's amounts, minor units.
    pub total: i64,
}

/// An approved withdrawal waiting for the manual path, with its payout.
#[derive(Debug, Clone)]
pub struct UnsentPayout {
    pub withdrawal: WithdrawalRow,
    pub payout: PayoutItemRow,
}

fn ledger_conflict(err: StoreError) -> AppError {
    match err {
        // A decision on a withdrawal in the wrong state ("already approved").
        StoreError::Ledger(e) => AppError::Conflict(e.to_string()),
        other => other.into(),
    }
}

fn job(kind: &str, payload: serde_json::Value, run_at: Timestamp, max_attempts: i64) -> NewJob {
    NewJob {
        kind: kind.to_owned(),
        payload,
        run_at,
        max_attempts,
    }
}

/// The `round`-th poll of a withdrawal; `hint` polls come from webhooks and
/// start no chain of their own.
fn poll_job(withdrawal_id: &str, round: i64, hint: bool, run_at: Timestamp) -> NewJob {
    job(
        POLL_JOB,
        json!({ "withdrawal_id": withdrawal_id, "round": round, "hint": hint }),
        run_at,
        POLL_ATTEMPTS,
    )
}

impl App {
    /// R-PAY-3: an admin approves a requested withdrawal. With PayPal
    /// configured the payout job is enqueued with it; without, the withdrawal
    /// stays approved for the manual path.
    pub async fn approve_withdrawal(
        &self,
        actor: &str,
        withdrawal_id: &str,
    ) -> AppResult<PayoutItemRow> {
        let now = self.now();
        let via = if self.paypal.is_some() {
            "paypal"
        } else {
            "manual"
        };
        let payout_job = self.paypal.as_ref().map(|_| {
            job(
                PAYOUT_JOB,
                json!({ "withdrawal_id": withdrawal_id }),
                now,
                PAYOUT_ATTEMPTS,
            )
        });
        let audit = NewAudit::new(
            now,
            actor,
            "withdrawal.approve",
            format!("withdrawal:{withdrawal_id}"),
        )
        .before_after(None, Some(json!({ "payout": via })));
        let item = self
            .store
            .approve_withdrawal(withdrawal_id, payout_job, audit, now)
            .await
            .map_err(ledger_conflict)?;
        tracing::info!(
            withdrawal.id = withdrawal_id,
            payout.via = via,
            "withdrawal approved"
        );
        Ok(item)
    }

    /// R-PAY-3: an admin rejects a requested withdrawal, giving the reason;
    /// the money goes back to the partner, who is told why.
    pub async fn reject_withdrawal(
        &self,
        actor: &str,
        withdrawal_id: &str,
        reason: &str,
    ) -> AppResult<WithdrawalRow> {
        let reason = partnerd_domain::errors::clean_text(reason, 2000, true)
            .map_err(|e| FieldErrors::single("reason", e))?;
        let (row, _) = self.store.get_withdrawal(withdrawal_id).await?;
        let w = &row.withdrawal;
        let program = self.settings().await?.program_name;
        let notice = self
            .partner_notice(
                w.partner_id,
                format!("Your withdrawal was not approved · {program}"),
                format!(
                    "your withdrawal of {} was not approved, for this reason:\n\n{reason}\n\n\
                     The money is back in your available balance: {}/panel\n",
                    crate::money::money_text(w.amount, w.currency),
                    self.config.public_url()
                ),
            )
            .await?;
        let audit = NewAudit::new(
            self.now(),
            actor,
            "withdrawal.reject",
            format!("withdrawal:{withdrawal_id}"),
        )
        .before_after(None, Some(json!({ "reason": reason })));
        self.store
            .reject_withdrawal(withdrawal_id, &reason, audit, notice, self.now())
            .await
            .map_err(ledger_conflict)
    }

    /// The manual path: an admin records that an approved withdrawal, not
    /// sent through PayPal's API, was paid (or failed) by a mass payment.
    pub async fn mark_withdrawal(
        &self,
        actor: &str,
        withdrawal_id: &str,
        outcome: ManualOutcome,
    ) -> AppResult<WithdrawalRow> {
        let (row, payout) = self.store.get_withdrawal(withdrawal_id).await?;
        let payout = payout
            .ok_or_else(|| AppError::Conflict("The withdrawal has not been approved.".into()))?;
        // A PayPal payout whose answer was lost looks unsent, yet PayPal may have
        // paid it: only PayPal's status settles it (the poll, the reconciliation).
        if payout.via != "manual" || payout.payout_batch_id.is_some() {
            return Err(AppError::Conflict(
                "This withdrawal is paid through PayPal's API; its status comes from PayPal."
                    .into(),
            ));
        }
        if row.withdrawal.status != WithdrawalStatus::Approved {
            return Err(AppError::Conflict(format!(
                "The withdrawal is {} already.",
                row.withdrawal.status
            )));
        }
        let status = match outcome {
            ManualOutcome::Paid => PayoutStatus::Success,
            ManualOutcome::Failed => PayoutStatus::Failed,
        };
        let audit = NewAudit::new(
            self.now(),
            actor,
            "withdrawal.mark",
            format!("withdrawal:{withdrawal_id}"),
        )
        .before_after(None, Some(json!({ "status": status.as_str() })));
        let follow_up = PayoutFollowUp {
            job: None,
            ..self.payout_emails(&row).await?
        };
        self.store
            .record_payout_status(
                withdrawal_id,
                status,
                None,
                Some(audit),
                follow_up,
                self.now(),
            )
            .await
            .map_err(ledger_conflict)
    }

    /// `POST /webhooks/paypal`: verifies the delivery with PayPal and, for a
    /// payout item or batch of ours, enqueues a poll of its withdrawal now.
    /// Returns the withdrawal hinted at; an unverified delivery writes nothing.
    pub async fn paypal_webhook(
        &self,
        headers: &reqwest::header::HeaderMap,
        body: &[u8],
    ) -> Result<Option<String>, WebhookRefusal> {
        let (Some(client), Some(webhook_id)) = (
            &self.paypal,
            self.config
                .paypal
                .as_ref()
                .and_then(|p| p.webhook_id.as_deref()),
        ) else {
            return Err(WebhookRefusal::NotConfigured);
        };
        match client.verify_webhook(headers, body, webhook_id).await {
            Ok(WebhookVerification::Success) => {}
            Ok(WebhookVerification::Failure) => return Err(WebhookRefusal::Unverified),
            Err(e) if e.is_retryable() => return Err(WebhookRefusal::Unavailable(e.to_string())),
            Err(e) => {
                tracing::warn!(error = %e, "PayPal refused to verify a webhook");
                return Err(WebhookRefusal::Unverified);
            }
        }
        let event = parse_webhook(body).map_err(|_| WebhookRefusal::Unverified)?;
        let withdrawal_id = match event {
            PayPalWebhookEvent::PayoutItem(item) => item.sender_batch_id.or(item.sender_item_id),
            PayPalWebhookEvent::PayoutBatch {
                sender_batch_id, ..
            } => sender_batch_id,
            PayPalWebhookEvent::Other { event_type, .. } => {
                tracing::debug!(paypal.event_type = %event_type, "PayPal webhook ignored");
                None
            }
        };
        let Some(withdrawal_id) = withdrawal_id else {
            return Ok(None);
        };
        match self.store.get_withdrawal(&withdrawal_id).await {
            Ok((_, Some(_))) => {}
            // Not ours (another integration on the same PayPal account), or
            // not approved: nothing to poll.
            Ok((_, None)) | Err(StoreError::NotFound) => return Ok(None),
            Err(e) => return Err(WebhookRefusal::Unavailable(e.to_string())),
        }
        self.store
            .enqueue_job(poll_job(&withdrawal_id, 0, true, self.now()))
            .await
            .map_err(|e| WebhookRefusal::Unavailable(e.to_string()))?;
        Ok(Some(withdrawal_id))
    }

    /// Approved withdrawals whose payout has not been sent to PayPal, oldest
    /// first: what the mass-payment export holds.
    pub async fn unsent_payouts(&self) -> AppResult<Vec<UnsentPayout>> {
        const PAGE: i64 = 500;
        let mut unsent = Vec::new();
        let mut offset = 0;
        loop {
            let rows = self
                .store
                .list_withdrawals(Some(WithdrawalStatus::Approved), PAGE, offset)
                .await?;
            let done = (rows.len() as i64) < PAGE;
            offset += PAGE;
            for row in rows {
                let (row, payout) = self.store.get_withdrawal(&row.withdrawal.id).await?;
                if let Some(payout) = payout
                    && payout.via == "manual"
                    && payout.payout_batch_id.is_none()
                    && payout.item.status == PayoutStatus::Pending
                {
                    unsent.push(UnsentPayout {
                        withdrawal: row,
                        payout,
                    });
                }
            }
            if done {
                return Ok(unsent);
            }
        }
    }

    /// The mass-payment files there are to download: per currency, parts of
    /// at most [`MASS_PAYMENT_ROWS`] rows.
    pub async fn mass_payment_files(&self) -> AppResult<Vec<MassPaymentFile>> {
        let mut by_currency: BTreeMap<&'static str, Vec<i64>> = BTreeMap::new();
        for unsent in self.unsent_payouts().await? {
            by_currency
                .entry(unsent.payout.item.currency.code())
                .or_default()
                .push(unsent.payout.item.amount);
        }
        let mut files = Vec::new();
        for (code, amounts) in by_currency {
            let currency = Currency::parse(code).map_err(|e| AppError::Internal(e.to_string()))?;
            files.extend(split_into_files(currency, &amounts));
        }
        Ok(files)
    }

    /// One PayPal mass-payment file: per row the recipient's PayPal email, the
    /// amount in the currency's decimals, the currency code, the withdrawal id
    /// as the unique id, and a note. No header row (PayPal's format); every
    /// cell quoted and safe against formula injection.
    pub async fn mass_payment_csv(&self, currency: Currency, part: usize) -> AppResult<String> {
        if part == 0 {
            return Err(FieldErrors::single("part", "must be 1 or more").into());
        }
        let program = self.settings().await?.program_name;
        let rows: Vec<UnsentPayout> = self
            .unsent_payouts()
            .await?
            .into_iter()
            .filter(|u| u.payout.item.currency == currency)
            .skip((part - 1) * MASS_PAYMENT_ROWS)
            .take(MASS_PAYMENT_ROWS)
            .collect();
        let mut csv = String::with_capacity(rows.len() * 96);
        for unsent in &rows {
            let item = &unsent.payout.item;
            // PayPal's decimals (whole units for HUF, TWD and JPY) where
            // PayPal can pay the amount; the ISO decimals otherwise, which
            // PayPal will refuse visibly rather than round.
            let amount = format_amount(item.amount, currency.code()).unwrap_or_else(|_| {
                let text = crate::money::money_text(item.amount, currency);
                text.split(' ').next().unwrap_or_default().to_owned()
            });
            let note = format!("{program} payout {}", item.withdrawal_id);
            let cells = [
                csv_cell(&unsent.payout.receiver),
                csv_cell(&amount),
                csv_cell(currency.code()),
                csv_cell(&item.withdrawal_id),
                csv_cell(&note),
            ];
            csv.push_str(&cells.join(","));
            csv.push_str("\r\n");
        }
        Ok(csv)
    }

    /// An email to the partner (none when their address was erased, R-ACC-3).
    async fn partner_notice(
        &self,
        partner_id: i64,
        subject: String,
        text: String,
    ) -> AppResult<Option<NewEmail>> {
        let partner = self.store.get_partner(partner_id).await?;
        Ok(partner.email.as_deref().map(|to| {
            self.email(to, subject, format!("Hi {},\n\n{text}", partner.name))
                .about(partner_id)
        }))
    }

    /// The two emails a payout report may send, chosen by the store by what
    /// the report did (R-PAY-3: "money that does not arrive goes back").
    async fn payout_emails(&self, row: &WithdrawalRow) -> AppResult<PayoutFollowUp> {
        let w = &row.withdrawal;
        let program = self.settings().await?.program_name;
        let amount = crate::money::money_text(w.amount, w.currency);
        let panel = format!("{}/panel", self.config.public_url());
        let email_if_paid = self
            .partner_notice(
                w.partner_id,
                format!("Your withdrawal was paid · {program}"),
                format!(
                    "your withdrawal of {amount} was paid to your PayPal account.\n\n{panel}\n"
                ),
            )
            .await?;
        let email_if_came_back = self
            .partner_notice(
                w.partner_id,
                format!("Your payout did not arrive · {program}"),
                format!(
                    "the payout of your withdrawal of {amount} did not reach you (PayPal \
                     returned it, or it failed). The money is back in your available \
                     balance: check the PayPal email in your account and withdraw again.\n\n{panel}\n"
                ),
            )
            .await?;
        Ok(PayoutFollowUp {
            email_if_paid,
            email_if_came_back,
            job: None,
        })
    }
}

/// One currency's payouts, in order, as files of at most [`MASS_PAYMENT_ROWS`] rows.
pub fn split_into_files(currency: Currency, amounts: &[i64]) -> Vec<MassPaymentFile> {
    amounts
        .chunks(MASS_PAYMENT_ROWS)
        .enumerate()
        .map(|(index, chunk)| MassPaymentFile {
            currency,
            part: index + 1,
            rows: chunk.len(),
            total: chunk.iter().sum(),
        })
        .collect()
}

fn withdrawal_id_of(payload: &serde_json::Value) -> Result<&str, String> {
    payload["withdrawal_id"]
        .as_str()
        .ok_or_else(|| "payload has no withdrawal_id".to_owned())
}

impl App {
    /// The daily `paypal_reconcile` job: one more poll of every approved
    /// withdrawal that PayPal accepted, so a payout whose poll chain ran out of
    /// attempts (PayPal unreachable for days) still ends paid or back on the
    /// balance. Withdrawals not yet accepted by PayPal are left alone: the admin
    /// may be paying them by hand. Returns how many polls it queued.
    pub async fn reconcile_payouts(&self) -> AppResult<usize> {
        if self.paypal.is_none() {
            return Ok(0);
        }
        let now = self.now();
        let mut queued = 0;
        let mut offset = 0;
        loop {
            let page = self
                .store
                .list_withdrawals(Some(WithdrawalStatus::Approved), 500, offset)
                .await?;
            for row in &page {
                let id = &row.withdrawal.id;
                let (_, payout) = self.store.get_withdrawal(id).await?;
                if payout.is_some_and(|p| p.payout_batch_id.is_some()) {
                    self.store.enqueue_job(poll_job(id, 0, true, now)).await?;
                    queued += 1;
                }
            }
            if page.len() < 500 {
                return Ok(queued);
            }
            offset += 500;
        }
    }
}

/// [`PAYOUT_JOB`]: sends the withdrawal's batch (once, whatever the retries),
/// records PayPal's batch id and schedules the first poll.
pub(crate) async fn run_payout_job(app: &App, payload: &serde_json::Value) -> Result<(), String> {
    let withdrawal_id = withdrawal_id_of(payload)?;
    let (row, payout) = app
        .store
        .get_withdrawal(withdrawal_id)
        .await
        .map_err(|e| e.to_string())?;
    let payout = payout.ok_or("the withdrawal has no payout item")?;
    if row.withdrawal.status != WithdrawalStatus::Approved
        || payout.item.status.outcome() != partnerd_domain::ledger::PayoutOutcome::InFlight
    {
        // Marked paid or failed by hand meanwhile: nothing to send.
        tracing::info!(
            withdrawal.id = withdrawal_id,
            "payout settled already; not sent"
        );
        return Ok(());
    }
    let Some(client) = &app.paypal else {
        tracing::warn!(
            withdrawal.id = withdrawal_id,
            "PayPal is not configured any more; the withdrawal waits for the manual path"
        );
        return Ok(());
    };
    if payout.payout_batch_id.is_none() {
        let program = app
            .settings()
            .await
            .map_err(|e| e.to_string())?
            .program_name;
        let request = PayoutItemRequest {
            receiver_email: payout.receiver.clone(),
            amount_minor: payout.item.amount,
            currency: payout.item.currency.code().to_owned(),
            sender_item_id: withdrawal_id.to_owned(),
            note: Some(format!("{program} payout {withdrawal_id}")),
        };
        // The id stored at approval, never a new one: a retry after a lost
        // answer gets PayPal's existing batch back instead of paying again.
        let created = client
            .create_batch(&payout.sender_batch_id, &[request])
            .await
            .map_err(|e| e.to_string())?;
        tracing::info!(
            withdrawal.id = withdrawal_id,
            paypal.payout_batch_id = %created.payout_batch_id,
            paypal.replayed = created.replayed,
            "payout submitted"
        );
        app.store
            .record_payout_submission(withdrawal_id, &created.payout_batch_id, None, app.now())
            .await
            .map_err(|e| e.to_string())?;
    }
    // Also reached when a run recorded the submission and died before
    // finishing: the poll is (re)scheduled, and polls are idempotent.
    let now = app.now();
    app.store
        .enqueue_job(poll_job(
            withdrawal_id,
            0,
            false,
            now.plus_seconds(poll_delay_seconds(0)),
        ))
        .await
        .map_err(|e| e.to_string())?;
    Ok(())
}

/// [`POLL_JOB`]: reads the item's status from PayPal and records it; while
/// it is in flight the next poll is enqueued in the same transaction.
pub(crate) async fn run_poll_job(app: &App, payload: &serde_json::Value) -> Result<(), String> {
    let withdrawal_id = withdrawal_id_of(payload)?;
    let round = payload["round"].as_i64().unwrap_or(0);
    let hint = payload["hint"].as_bool().unwrap_or(false);
    let (row, payout) = app
        .store
        .get_withdrawal(withdrawal_id)
        .await
        .map_err(|e| e.to_string())?;
    let Some(payout) = payout else {
        return Ok(());
    };
    let Some(client) = &app.paypal else {
        return Ok(());
    };
    let Some(batch_id) = payout.payout_batch_id.clone() else {
        // Not submitted yet: the submission schedules its own poll.
        return Ok(());
    };
    let item = match &payout.payout_item_id {
        Some(item_id) => Some(client.get_item(item_id).await.map_err(|e| e.to_string())?),
        None => {
            let batch = client
                .get_batch(&batch_id)
                .await
                .map_err(|e| e.to_string())?;
            let single = batch.items.len() == 1;
            batch.items.into_iter().find(|item| {
                item.sender_item_id.as_deref() == Some(withdrawal_id)
                    || (single && item.sender_item_id.is_none())
            })
        }
    };
    let now = app.now();
    let next_poll = |in_flight: bool| {
        (in_flight && !hint && row.withdrawal.status == WithdrawalStatus::Approved).then(|| {
            poll_job(
                withdrawal_id,
                round + 1,
                false,
                now.plus_seconds(poll_delay_seconds(round + 1)),
            )
        })
    };
    let Some(item) = item else {
        // PayPal shows the batch without our item yet: look again later.
        if let Some(job) = next_poll(true) {
            app.store
                .enqueue_job(job)
                .await
                .map_err(|e| e.to_string())?;
        }
        return Ok(());
    };
    let settlement = item.status.settlement();
    let Some(status) = PayoutStatus::parse(item.status.as_str()) else {
        // A status this version does not know: in flight, keep asking.
        tracing::warn!(withdrawal.id = withdrawal_id, paypal.status = %item.status.as_str(), "unknown payout item status");
        app.store
            .record_payout_submission(withdrawal_id, &batch_id, Some(&item.payout_item_id), now)
            .await
            .map_err(|e| e.to_string())?;
        if let Some(job) = next_poll(true) {
            app.store
                .enqueue_job(job)
                .await
                .map_err(|e| e.to_string())?;
        }
        return Ok(());
    };
    let follow_up = PayoutFollowUp {
        job: next_poll(settlement == Settlement::InFlight),
        ..app.payout_emails(&row).await.map_err(|e| e.to_string())?
    };
    match app
        .store
        .record_payout_status(
            withdrawal_id,
            status,
            Some(&item.payout_item_id),
            None,
            follow_up,
            now,
        )
        .await
    {
        Ok(after) => {
            tracing::info!(
                withdrawal.id = withdrawal_id,
                paypal.status = status.as_str(),
                withdrawal.status = %after.withdrawal.status,
                "payout status recorded"
            );
            Ok(())
        }
        // SUCCESS after the money came back: the partner may have withdrawn it
        // again, so a person has to sort it out; polling more will not help.
        Err(StoreError::Ledger(e)) => {
            tracing::error!(withdrawal.id = withdrawal_id, error = %e, "payout status conflicts with the ledger");
            Ok(())
        }
        Err(e) => Err(e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::paypal::ItemStatus;

    #[test]
    fn every_paypal_item_status_means_the_same_to_the_client_and_the_ledger() {
        use partnerd_domain::ledger::PayoutOutcome;
        for status in PayoutStatus::ALL {
            let item = ItemStatus::parse(status.as_str());
            let expected = match item.settlement() {
                Settlement::Paid => PayoutOutcome::Arrived,
                Settlement::NotPaid => PayoutOutcome::CameBack,
                Settlement::InFlight => PayoutOutcome::InFlight,
            };
            assert_eq!(status.outcome(), expected, "{status}");
        }
    }

    #[test]
    fn polls_start_soon_and_settle_to_every_six_hours() {
        assert_eq!(poll_delay_seconds(0), 60);
        assert!(poll_delay_seconds(1) < poll_delay_seconds(2));
        assert_eq!(poll_delay_seconds(3), 6 * 3600);
        assert_eq!(poll_delay_seconds(500), 6 * 3600);
    }

    #[test]
    fn a_mass_payment_file_holds_at_most_five_thousand_rows() {
        let amounts = vec![100; 2 * MASS_PAYMENT_ROWS + 1];
        let files = split_into_files(Currency::USD, &amounts);
        let rows: Vec<usize> = files.iter().map(|f| f.rows).collect();
        assert_eq!(rows, [5_000, 5_000, 1]);
        assert_eq!(files.iter().map(|f| f.part).collect::<Vec<_>>(), [1, 2, 3]);
        assert_eq!(files[2].total, 100);
        assert!(split_into_files(Currency::EUR, &[]).is_empty());
    }

    #[test]
    fn manual_outcomes_are_read_from_the_form() {
        assert_eq!(ManualOutcome::parse("paid"), Some(ManualOutcome::Paid));
        assert_eq!(ManualOutcome::parse("failed"), Some(ManualOutcome::Failed));
        assert_eq!(ManualOutcome::parse("SUCCESS"), None);
    }
}
