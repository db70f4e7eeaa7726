//! The background job runner inside `partnerd serve`.
//!
//! Jobs live in the database (see the store's `claim_jobs`), so with several
//! processes each job runs once, and a job whose process died is claimed again
//! once its lease runs out. Failures retry with exponential backoff.

use std::time::Duration;

use partnerd_domain::Timestamp;
use partnerd_store::{EmailOutcome, Job, JobOutcome};

use crate::App;

/// How long a claimed job is ours before another worker may take it.
pub const LEASE_SECONDS: i64 = 300;

/// Backoff after the n-th failed attempt: 30 s, 1 min, 2 min … capped at 1 h.
pub fn backoff_seconds(attempts: i64) -> i64 {
    (30i64 << (attempts.clamp(1, 8) - 1)).min(3600)
}

/// Registers the periodic jobs. Each runs once per period across all nodes.
pub async fn register_schedules(app: &App) -> anyhow::Result<()> {
    app.store
        .ensure_schedule("housekeeping", "housekeeping", 3600, app.now())
        .await?;
    // R-PAY-3: a payout whose polls ran out is looked at again once a day.
    app.store
        .ensure_schedule("paypal_reconcile", "paypal_reconcile", 86_400, app.now())
        .await?;
    // R-COM-4: a lot becomes available at most this long after its hold ends.
    app.store
        .ensure_schedule("release_holds", "release_holds", 300, app.now())
        .await?;
    app.store
        .ensure_schedule(
            crate::report::SETTLE_JOB,
            crate::report::SETTLE_JOB,
            crate::report::SETTLE_PERIOD_SECONDS,
            app.now(),
        )
        .await?;
    // Outbound webhooks, every few seconds. A schedule enqueues at most one run per
    // period however late the worker is (next_on_grid), both jobs are safe to overlap
    // (the cursor row, delivery leases), and the events job deletes their finished
    // runs after a day, which would otherwise add ~35,000 rows a day to `jobs`.
    for kind in [crate::webhooks::EVENTS_JOB, crate::webhooks::DELIVERIES_JOB] {
        app.store
            .ensure_schedule(kind, kind, crate::webhooks::JOB_PERIOD_SECONDS, app.now())
            .await?;
    }
    Ok(())
}

/// Claims and runs due jobs until none are left; returns how many ran.
pub async fn run_due(app: &App, worker: &str) -> anyhow::Result<usize> {
    app.store.run_due_schedules(app.now()).await?;
    let mut ran = 0;
    loop {
        let jobs = app
            .store
            .claim_jobs(worker, app.now(), LEASE_SECONDS, 10)
            .await?;
        if jobs.is_empty() {
            return Ok(ran);
        }
        for job in jobs {
            let outcome = match run_job(app, &job).await {
                Ok(()) => JobOutcome::Done,
                Err(error) => {
                    tracing::warn!(job.id = job.id, job.kind = %job.kind, job.attempts = job.attempts, %error, "job failed");
                    JobOutcome::Failed {
                        error,
                        retry_at: app.now().plus_seconds(backoff_seconds(job.attempts)),
                    }
                }
            };
            if let Err(err) = app
                .store
                .finish_job(job.id, worker, outcome, app.now())
                .await
            {
                tracing::warn!(job.id = job.id, %err, "could not record a job's outcome");
            }
            ran += 1;
        }
    }
}

/// Polls for jobs every `every` until `shutdown` fires.
pub async fn run_worker(
    app: App,
    worker: String,
    every: Duration,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) {
    loop {
        if let Err(err) = run_due(&app, &worker).await {
            tracing::error!(%err, "job runner");
        }
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = shutdown.changed() => return,
        }
    }
}

async fn run_job(app: &App, job: &Job) -> Result<(), String> {
    let payload: serde_json::Value =
        serde_json::from_str(&job.payload).map_err(|e| e.to_string())?;
    match job.kind.as_str() {
        "send_email" => {
            let id = payload["outbox_id"]
                .as_i64()
                .ok_or("payload has no outbox_id")?;
            send_email(app, id, job.attempts >= job.max_attempts).await
        }
        "housekeeping" => {
            let purged = app
                .store
                .purge_expired(app.now())
                .await
                .map_err(|e| e.to_string())?;
            tracing::info!(
                rows = purged,
                "housekeeping purged expired sessions, reset links and throttle windows"
            );
            Ok(())
        }
        "paypal_reconcile" => {
            let queued = app.reconcile_payouts().await.map_err(|e| e.to_string())?;
            if queued > 0 {
                tracing::info!(polls = queued, "queued a poll of each payout PayPal holds");
            }
            Ok(())
        }
        "release_holds" => {
            let released = app.release_due_holds().await.map_err(|e| e.to_string())?;
            if released > 0 {
                tracing::info!(lots = released, "released commission whose hold ended");
            }
            Ok(())
        }
        crate::report::SETTLE_JOB => {
            // Well inside the job's lease; a backlog (an upgrade) goes on next run.
            let moved = app
                .settle_report(Duration::from_secs(60))
                .await
                .map_err(|e| e.to_string())?;
            if moved > 0 {
                tracing::info!(rows = moved, "settled report counters of past hours");
            }
            Ok(())
        }
        crate::payouts::PAYOUT_JOB => crate::payouts::run_payout_job(app, &payload).await,
        crate::payouts::POLL_JOB => crate::payouts::run_poll_job(app, &payload).await,
        crate::webhooks::EVENTS_JOB => app
            .run_webhook_events_job()
            .await
            .map(drop)
            .map_err(|e| e.to_string()),
        crate::webhooks::DELIVERIES_JOB => app
            .run_webhook_deliveries_job()
            .await
            .map(drop)
            .map_err(|e| e.to_string()),
        other => Err(format!("unknown job kind {other:?}")),
    }
}

async fn send_email(app: &App, outbox_id: i64, last_attempt: bool) -> Result<(), String> {
    let email = app
        .store
        .get_outbox(outbox_id)
        .await
        .map_err(|e| e.to_string())?;
    if email.status != "pending" {
        // Sent already (a retry after a crash between sending and recording), or
        // withdrawn because the partner it was about was removed.
        return Ok(());
    }
    let Some(mailer) = &app.mailer else {
        return Err("no SMTP server is configured".into());
    };
    let now: Timestamp = app.now();
    match mailer.send(&email).await {
        Ok(()) => app
            .store
            .mark_email(outbox_id, EmailOutcome::Sent, now)
            .await
            .map_err(|e| e.to_string()),
        Err(error) => {
            let outcome = EmailOutcome::Failed {
                error: error.clone(),
                final_failure: last_attempt,
            };
            app.store
                .mark_email(outbox_id, outcome, now)
                .await
                .map_err(|e| e.to_string())?;
            Err(error)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_is_capped() {
        assert_eq!(backoff_seconds(1), 30);
        assert_eq!(backoff_seconds(2), 60);
        assert_eq!(backoff_seconds(8), 3600);
        assert_eq!(backoff_seconds(50), 3600);
    }
}
