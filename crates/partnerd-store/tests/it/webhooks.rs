//! Outbound webhooks through the store (issue 4 part 6): endpoints and their
//! secrets, ledger bookings turned into one delivery per subscribed endpoint
//! with the cursor moved in the same transaction, leased deliveries, attempts,
//! 410 disabling, resends, and the jobs' clean-up.

use std::sync::{Arc, Mutex};

use partnerd_domain::ledger::Source;
use partnerd_domain::{Currency, Timestamp};
use partnerd_store::money::{
    EventKey, EventOrigin, NewPayment, NewRefund, NewWithdrawal, PayoutProfile,
};
use partnerd_store::webhooks_sql::{
    AttemptOutcome, EventsFor, LedgerBooking, NewWebhookAttempt, NewWebhookEndpoint,
    NewWebhookEvent, WebhookEndpoint,
};
use partnerd_store::{NewJob, NewSignup, Store, StoreError};

use crate::fixtures::*;

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

async fn endpoint(store: &dyn Store, url: &str, types: &[&str]) -> WebhookEndpoint {
    store
        .create_webhook_endpoint(NewWebhookEndpoint {
            url: url.into(),
            description: "the vendor's product".into(),
            secret: SECRET.into(),
            event_types: types.iter().map(|t| (*t).to_owned()).collect(),
            allow_private: false,
            created_at: T0,
            audit: audit("webhook_endpoint.create", "webhook_endpoint:new"),
        })
        .await
        .expect("create an endpoint")
}

/// A partner with a payout profile and `customer` credited to them at 20 %.
async fn credited_partner(store: &dyn Store, tag: &str, customer: &str) -> i64 {
    let partner = add_partner(store, tag, T0).await;
    store
        .record_signup(NewSignup {
            customer_id: customer.into(),
            partner_id: Some(partner.id),
            referred_partner_id: Some(partner.id),
            campaign_id: None,
            click_id: None,
            utm_campaign: Some("default_link".into()),
            utm_term: None,
            trial_days: None,
            discount_percent: None,
            reason: "credited".into(),
            review: false,
            commission_rate: Some(20),
            created_at: T0,
        })
        .await
        .expect("record the sign-up");
    store
        .save_payout_profile(
            partner.id,
            &PayoutProfile {
                paypal_email: Some(format!("{tag}@paypal.test")),
                legal_name: Some(format!("{tag} Legal")),
                country: Some("DE".into()),
                tax_id: Some("DE123456789".into()),
            },
            audit("partner.payout_profile", "partner"),
            Vec::new(),
            T0,
        )
        .await
        .expect("save the payout profile");
    partner.id
}

fn payment(id: &str, customer: &str, amount: i64) -> NewPayment {
    NewPayment {
        event: EventKey::new(EventOrigin::Api, format!("payment:{id}")),
        payment_id: id.into(),
        customer_id: customer.into(),
        amount,
        currency: Currency::USD,
        paid_at: T0,
        subscription_id: None,
    }
}

/// A classifier that names every booking by its source kind and remembers
/// what it was shown.
fn recording_classifier(seen: Arc<Mutex<Vec<LedgerBooking>>>) -> Box<EventsFor> {
    Box::new(move |booking: &LedgerBooking| {
        seen.lock().unwrap().push(booking.clone());
        let event_type = match booking.source {
            Source::Commission { .. } => "commission.earned",
            Source::Refund { .. } => "commission.reversed",
            Source::Withdrawal { .. } => "withdrawal.requested",
            _ => return None,
        };
        Some(NewWebhookEvent {
            message_id: format!("msg_{}", booking.source.key()),
            event_type: event_type.into(),
            source: booking.source.key(),
            payload: format!(
                "{{\"type\":\"{event_type}\",\"amount\":{}}}",
                booking.amount()
            ),
            created_at: booking.booked_at,
        })
    })
}

fn attempt(
    delivery_id: i64,
    at: Timestamp,
    status: Option<i64>,
    outcome: AttemptOutcome,
) -> NewWebhookAttempt {
    NewWebhookAttempt {
        delivery_id,
        attempted_at: at,
        status_code: status,
        duration_ms: 12,
        error: status
            .filter(|s| *s >= 300)
            .map(|s| format!("the receiver answered {s}")),
        outcome,
    }
}

conformance!(
    endpoints_keep_their_secret_rotate_with_a_grace_period_and_are_disabled_with_a_reason,
    |store: Arc<dyn Store>| async move {
        let store = &*store;
        let created = endpoint(
            store,
            "https://hooks.vendor.example/a",
            &["commission.earned", "payout.paid"],
        )
        .await;
        assert_eq!(created.secret, SECRET);
        assert!(created.enabled && !created.allow_private);
        assert_eq!(created.event_types, ["commission.earned", "payout.paid"]);
        assert!(created.subscribes_to("payout.paid") && !created.subscribes_to("payout.returned"));
        assert!(
            !format!("{created:?}").contains("whsec_"),
            "Debug shows no secret"
        );
        let entry = last_audit(store).await;
        assert_eq!(entry.action, "webhook_endpoint.create");
        assert_eq!(entry.object, format!("webhook_endpoint:{}", created.id));

        let rotated = store
            .rotate_webhook_secret(
                created.id,
                "whsec_new",
                at(3_600_000),
                audit("webhook_endpoint.rotate_secret", "e"),
            )
            .await
            .unwrap();
        assert_eq!(rotated.secret, "whsec_new");
        assert_eq!(rotated.previous_secret.as_deref(), Some(SECRET));
        assert_eq!(rotated.signing_secrets(T0), ["whsec_new", SECRET]);
        assert_eq!(rotated.signing_secrets(at(3_600_000)), ["whsec_new"]);

        let disabled = store
            .set_webhook_endpoint_enabled(
                created.id,
                Some("disabled by an admin"),
                audit("webhook_endpoint.disable", "e"),
            )
            .await
            .unwrap();
        assert!(!disabled.enabled);
        assert_eq!(
            disabled.disabled_reason.as_deref(),
            Some("disabled by an admin")
        );
        assert_eq!(disabled.disabled_at, Some(T0));
        let enabled = store
            .set_webhook_endpoint_enabled(created.id, None, audit("webhook_endpoint.enable", "e"))
            .await
            .unwrap();
        assert!(
            enabled.enabled && enabled.disabled_reason.is_none() && enabled.disabled_at.is_none()
        );
        assert_eq!(
            store.list_webhook_endpoints().await.unwrap(),
            vec![enabled.clone()]
        );
        assert_eq!(
            store.get_webhook_endpoint(created.id).await.unwrap(),
            enabled
        );
        assert!(matches!(
            store.get_webhook_endpoint(999).await,
            Err(StoreError::NotFound)
        ));
        assert!(matches!(
            store
                .set_webhook_endpoint_enabled(999, None, audit("x", "y"))
                .await,
            Err(StoreError::NotFound)
        ));
    }
);

conformance!(
    ledger_bookings_become_one_delivery_per_subscribed_endpoint_and_never_twice,
    |store: Arc<dyn Store>| async move {
        let store = &*store;
        let partner = credited_partner(store, "ann", "cus_1").await;
        let earned = endpoint(store, "https://a.example/h", &["commission.earned"]).await;
        let payouts = endpoint(store, "https://b.example/h", &["payout.paid"]).await;
        let off = endpoint(
            store,
            "https://c.example/h",
            &["commission.earned", "withdrawal.requested"],
        )
        .await;
        store
            .set_webhook_endpoint_enabled(
                off.id,
                Some("off"),
                audit("webhook_endpoint.disable", "e"),
            )
            .await
            .unwrap();
        assert_eq!(store.webhook_cursor().await.unwrap(), 0);

        // A: 20 % of $1,000 straight to available (no hold); withdrawn; refunded
        // in full, so the reversal becomes clawback; B then pays the clawback off
        // and the rest to available: one booking of two legs.
        store
            .record_payment(payment("in_a", "cus_1", 100_000), 0, T0)
            .await
            .unwrap();
        store
            .request_withdrawal(NewWithdrawal {
                id: "wd_1".into(),
                partner_id: partner,
                currency: Currency::USD,
                minimum: 5_000,
                requested_at: T0,
                audit: audit("withdrawal.request", "withdrawal:wd_1"),
            })
            .await
            .unwrap();
        store
            .record_refund(
                NewRefund {
                    event: EventKey::new(EventOrigin::Api, "refund:re_a"),
                    refund_id: "re_a".into(),
                    payment_id: "in_a".into(),
                    amount: 100_000,
                },
                0,
                T0,
            )
            .await
            .unwrap();
        store
            .record_payment(payment("in_b", "cus_1", 150_000), 0, T0)
            .await
            .unwrap();
        let transfers = store.ledger_records().await.unwrap().transfers;
        assert_eq!(transfers.len(), 5, "{transfers:#?}");

        // A batch of four ends inside B's booking: B's event still has both legs.
        let seen = Arc::new(Mutex::new(Vec::new()));
        let classify = recording_classifier(seen.clone());
        let first = store
            .ingest_ledger_events(&*classify, 4, at(1_000))
            .await
            .unwrap();
        assert_eq!(first.transfers, 4);
        // com:in_a and com:in_b to the one earned subscriber; wd_1 and the refund
        // have no enabled subscriber, so nothing is written for them.
        assert_eq!((first.events, first.deliveries), (2, 2));
        let b = seen
            .lock()
            .unwrap()
            .iter()
            .find(|booking| booking.source.key() == "com:in_b")
            .cloned()
            .expect("B was classified");
        assert_eq!(b.transfers.len(), 2);
        assert_eq!(b.amount(), 30_000);
        assert_eq!(b.partner_public_id, "pub-ann");
        assert_eq!(store.webhook_cursor().await.unwrap(), 4);

        // The rest of B, then nothing: no second event, no second delivery.
        let second = store
            .ingest_ledger_events(&*classify, 4, at(2_000))
            .await
            .unwrap();
        assert_eq!(
            (second.transfers, second.events, second.deliveries),
            (1, 0, 0)
        );
        let third = store
            .ingest_ledger_events(&*classify, 4, at(3_000))
            .await
            .unwrap();
        assert_eq!((third.transfers, third.events), (0, 0));
        assert_eq!(store.webhook_cursor().await.unwrap(), 5);

        let deliveries = store.list_webhook_deliveries(earned.id, 10).await.unwrap();
        assert_eq!(deliveries.len(), 2);
        assert_eq!(deliveries[0].message_id, "msg_com:in_b", "newest first");
        assert!(
            deliveries
                .iter()
                .all(|d| d.status == "pending" && d.attempts == 0)
        );
        assert!(
            store
                .list_webhook_deliveries(payouts.id, 10)
                .await
                .unwrap()
                .is_empty()
        );
        assert!(
            store
                .list_webhook_deliveries(off.id, 10)
                .await
                .unwrap()
                .is_empty()
        );

        // Claimed once: a second worker at the same time gets nothing.
        let due = store
            .claim_webhook_deliveries(at(3_000), 60, 10)
            .await
            .unwrap();
        assert_eq!(due.len(), 2);
        assert!(
            due.iter()
                .all(|d| d.secrets == [SECRET] && d.url == "https://a.example/h")
        );
        assert!(!format!("{:?}", due[0]).contains("whsec_"));
        assert!(
            store
                .claim_webhook_deliveries(at(3_000), 60, 10)
                .await
                .unwrap()
                .is_empty()
        );
        let a = due.iter().find(|d| d.message_id == "msg_com:in_a").unwrap();
        assert_eq!(
            a.payload,
            "{\"type\":\"commission.earned\",\"amount\":20000}"
        );
    }
);

conformance!(
    attempts_are_recorded_retries_wait_and_a_410_disables_the_endpoint,
    |store: Arc<dyn Store>| async move {
        let store = &*store;
        let hooks = endpoint(store, "https://a.example/h", &["commission.earned"]).await;
        let event = |n: i64| NewWebhookEvent {
            message_id: format!("msg_{n}"),
            event_type: "commission.earned".into(),
            source: format!("test:{n}"),
            payload: "{}".into(),
            created_at: T0,
        };
        assert_eq!(
            store
                .queue_webhook_event(event(1), None, None)
                .await
                .unwrap(),
            1
        );
        // The same source again is the same event: nothing more is written.
        assert_eq!(
            store
                .queue_webhook_event(event(1), None, None)
                .await
                .unwrap(),
            0
        );

        let due = store.claim_webhook_deliveries(T0, 60, 10).await.unwrap();
        assert_eq!(due.len(), 1);
        let id = due[0].delivery_id;
        store
            .record_webhook_attempt(attempt(
                id,
                T0,
                Some(500),
                AttemptOutcome::Retry { at: at(5_000) },
            ))
            .await
            .unwrap();
        // Not due yet, even though the lease ended.
        assert!(
            store
                .claim_webhook_deliveries(at(4_999), 60, 10)
                .await
                .unwrap()
                .is_empty()
        );
        let again = store
            .claim_webhook_deliveries(at(5_000), 60, 10)
            .await
            .unwrap();
        assert_eq!(again.len(), 1);
        assert_eq!((again[0].delivery_id, again[0].attempts), (id, 1));
        store
            .record_webhook_attempt(attempt(id, at(5_000), Some(204), AttemptOutcome::Delivered))
            .await
            .unwrap();
        let delivered = store.get_webhook_delivery(id).await.unwrap();
        assert_eq!(delivered.status, "delivered");
        assert_eq!((delivered.attempts, delivered.last_status), (2, Some(204)));
        assert_eq!(delivered.delivered_at, Some(at(5_000)));
        let attempts = store.list_webhook_attempts(id).await.unwrap();
        assert_eq!(
            attempts.iter().map(|a| a.status_code).collect::<Vec<_>>(),
            [Some(500), Some(204)]
        );
        assert_eq!(
            attempts[0].error.as_deref(),
            Some("the receiver answered 500")
        );

        // A resend goes out again with the same message id, its retries counted afresh.
        let resent = store
            .resend_webhook_delivery(id, audit("webhook_delivery.resend", "d"), at(6_000))
            .await
            .unwrap();
        assert_eq!((resent.status.as_str(), resent.attempts), ("pending", 0));
        let due = store
            .claim_webhook_deliveries(at(6_000), 60, 10)
            .await
            .unwrap();
        assert_eq!(due[0].message_id, "msg_1");

        // 410 Gone: the delivery fails and the endpoint is disabled, with an audit entry.
        store
            .record_webhook_attempt(attempt(id, at(6_000), Some(410), AttemptOutcome::Gone))
            .await
            .unwrap();
        assert_eq!(
            store.get_webhook_delivery(id).await.unwrap().status,
            "failed"
        );
        let gone = store.get_webhook_endpoint(hooks.id).await.unwrap();
        assert!(!gone.enabled);
        assert_eq!(
            gone.disabled_reason.as_deref(),
            Some("the receiver answered 410 Gone")
        );
        assert_eq!(last_audit(store).await.action, "webhook_endpoint.disable");

        // While disabled: new events reach it not, tests and resends are refused,
        // and a pending delivery waits.
        assert_eq!(
            store
                .queue_webhook_event(event(2), None, None)
                .await
                .unwrap(),
            0
        );
        assert!(matches!(
            store
                .queue_webhook_event(event(3), Some(hooks.id), None)
                .await,
            Err(StoreError::Invalid(_))
        ));
        assert!(matches!(
            store
                .resend_webhook_delivery(id, audit("x", "y"), at(7_000))
                .await,
            Err(StoreError::Invalid(_))
        ));
        assert!(matches!(
            store
                .resend_webhook_delivery(999, audit("x", "y"), at(7_000))
                .await,
            Err(StoreError::NotFound)
        ));
    }
);

conformance!(
    finished_runs_of_the_webhook_jobs_are_purged_and_nothing_else,
    |store: Arc<dyn Store>| async move {
        let store = &*store;
        for kind in ["webhook_events", "webhook_events", "send_email"] {
            store
                .enqueue_job(NewJob {
                    kind: kind.into(),
                    payload: serde_json::json!({}),
                    run_at: T0,
                    max_attempts: 3,
                })
                .await
                .unwrap();
        }
        let claimed = claim_all(store, T0).await;
        assert_eq!(claimed.len(), 3);
        // One webhook run stays queued-again (failed once), the others are done.
        for (n, job) in claimed.iter().enumerate() {
            let outcome = if n == 0 {
                partnerd_store::JobOutcome::Failed {
                    error: "boom".into(),
                    retry_at: at(60_000),
                }
            } else {
                partnerd_store::JobOutcome::Done
            };
            store
                .finish_job(job.id, "inspector", outcome, T0)
                .await
                .unwrap();
        }
        let purged = store
            .purge_finished_jobs(&["webhook_events", "webhook_deliveries"], at(1))
            .await
            .unwrap();
        assert_eq!(purged, 1);
        assert_eq!(store.get_job(claimed[0].id).await.unwrap().status, "queued");
        assert_eq!(store.get_job(claimed[2].id).await.unwrap().status, "done");
        assert!(matches!(
            store.get_job(claimed[1].id).await,
            Err(StoreError::NotFound)
        ));
    }
);
