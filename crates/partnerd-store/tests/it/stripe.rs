//! The Stripe webhook's bookkeeping (`StripeStore`, migration 0006): events
//! seen, charge → invoice links, parked events and what releases them, shares
//! of a charge's cumulative refunded amount, and console signing secrets.

use std::sync::Arc;

use partnerd_store::stripe_sql::{
    NewRefundShare, NewStripePending, StripeChargeLink, StripeEventOutcome, StripeEventRecord,
    StripeParking, StripeWait,
};
use partnerd_store::{NewSignup, Store, StoreError};

use crate::fixtures::*;

fn charge_wait(event: &str, charge: &str, intent: &str) -> NewStripePending {
    NewStripePending {
        event_id: event.into(),
        event_type: "charge.refunded".into(),
        wait: StripeWait::Charge {
            charge_id: Some(charge.into()),
            payment_intent_id: Some(intent.into()),
        },
        payload: format!("{{\"event\":\"{event}\"}}"),
        received_at: at(1_000),
    }
}

fn link(invoice: &str, aliases: &[&str]) -> StripeChargeLink {
    StripeChargeLink {
        invoice_id: invoice.into(),
        aliases: aliases.iter().map(|a| (*a).to_owned()).collect(),
        now: at(2_000),
    }
}

fn share(key: &str, charge: &str, requested: Option<i64>, cumulative: i64) -> NewRefundShare {
    NewRefundShare {
        refund_key: key.into(),
        charge_id: charge.into(),
        requested,
        cumulative,
        now: at(3_000),
    }
}

conformance!(
    an_event_is_recorded_once_and_its_first_outcome_stays,
    |store: Arc<dyn Store>| async move {
        assert_eq!(store.stripe_event_outcome("evt_1").await.unwrap(), None);
        let record = StripeEventRecord {
            event_id: "evt_1".into(),
            event_type: "invoice.paid".into(),
            outcome: StripeEventOutcome::Booked,
            at: T0,
        };
        store.record_stripe_event(&record).await.unwrap();
        store
            .record_stripe_event(&StripeEventRecord {
                outcome: StripeEventOutcome::Ignored,
                ..record
            })
            .await
            .unwrap();
        assert_eq!(
            store.stripe_event_outcome("evt_1").await.unwrap(),
            Some(StripeEventOutcome::Booked)
        );
    }
);

conformance!(
    a_refund_parked_before_its_charge_is_linked_is_returned_by_the_link,
    |store: Arc<dyn Store>| async move {
        let parked = store
            .park_stripe_event(&charge_wait("evt_r", "ch_1", "pi_1"))
            .await
            .unwrap();
        assert_eq!(parked, StripeParking::Parked);
        assert_eq!(
            store.stripe_event_outcome("evt_r").await.unwrap(),
            Some(StripeEventOutcome::Pending)
        );
        // Parking the same event again (a redelivery) keeps one row.
        store
            .park_stripe_event(&charge_wait("evt_r", "ch_1", "pi_1"))
            .await
            .unwrap();
        // A link of another charge releases nothing.
        assert!(
            store
                .link_stripe_charge(&link("in_other", &["ch_2"]))
                .await
                .unwrap()
                .is_empty()
        );
        // The payment intent alone is enough to find it.
        let released = store
            .link_stripe_charge(&link("in_1", &["pi_1"]))
            .await
            .unwrap();
        assert_eq!(released.len(), 1);
        assert_eq!(released[0].event_id, "evt_r");
        assert_eq!(released[0].payload, "{\"event\":\"evt_r\"}");
        assert_eq!(released[0].received_at, at(1_000));
        // Until it is finished, a link (a redelivery after a crash) returns it again.
        assert_eq!(
            store
                .link_stripe_charge(&link("in_1", &["ch_1", "pi_1"]))
                .await
                .unwrap()
                .len(),
            1
        );
        store
            .finish_stripe_pending("evt_r", at(4_000))
            .await
            .unwrap();
        assert!(
            store
                .link_stripe_charge(&link("in_1", &["ch_1", "pi_1"]))
                .await
                .unwrap()
                .is_empty()
        );
        assert_eq!(
            store.stripe_event_outcome("evt_r").await.unwrap(),
            Some(StripeEventOutcome::Booked)
        );
    }
);

conformance!(
    a_refund_of_a_linked_charge_is_ready_at_once_and_not_parked,
    |store: Arc<dyn Store>| async move {
        store
            .link_stripe_charge(&link("in_1", &["ch_1", "pi_1"]))
            .await
            .unwrap();
        assert_eq!(
            store
                .park_stripe_event(&charge_wait("evt_r", "ch_1", "pi_x"))
                .await
                .unwrap(),
            StripeParking::Ready {
                invoice_id: Some("in_1".into())
            }
        );
        assert_eq!(store.stripe_event_outcome("evt_r").await.unwrap(), None);
        assert_eq!(
            store
                .stripe_invoice_of(None, Some("pi_1"))
                .await
                .unwrap()
                .as_deref(),
            Some("in_1")
        );
        assert_eq!(
            store.stripe_invoice_of(Some("ch_9"), None).await.unwrap(),
            None
        );
        // The first link of a charge stays.
        store
            .link_stripe_charge(&link("in_2", &["ch_1"]))
            .await
            .unwrap();
        assert_eq!(
            store
                .stripe_invoice_of(Some("ch_1"), None)
                .await
                .unwrap()
                .as_deref(),
            Some("in_1")
        );
    }
);

conformance!(
    a_payment_waits_for_the_customers_sign_up_and_not_once_it_exists,
    |store: Arc<dyn Store>| async move {
        let pending = NewStripePending {
            event_id: "evt_p".into(),
            event_type: "invoice.paid".into(),
            wait: StripeWait::Signup {
                customer_id: "cus_1".into(),
            },
            payload: "{}".into(),
            received_at: T0,
        };
        assert_eq!(
            store.park_stripe_event(&pending).await.unwrap(),
            StripeParking::Parked
        );
        let waiting = store.stripe_pending_for_customer("cus_1").await.unwrap();
        assert_eq!(waiting.len(), 1);
        assert!(
            store
                .stripe_pending_for_customer("cus_2")
                .await
                .unwrap()
                .is_empty()
        );
        store
            .record_signup(NewSignup {
                customer_id: "cus_1".into(),
                partner_id: None,
                referred_partner_id: None,
                campaign_id: None,
                click_id: None,
                utm_campaign: None,
                utm_term: None,
                trial_days: None,
                discount_percent: None,
                reason: "no_click".into(),
                review: false,
                commission_rate: None,
                created_at: T0,
            })
            .await
            .unwrap();
        assert_eq!(
            store
                .park_stripe_event(&NewStripePending {
                    event_id: "evt_p2".into(),
                    ..pending
                })
                .await
                .unwrap(),
            StripeParking::Ready { invoice_id: None }
        );
        store.finish_stripe_pending("evt_p", at(1)).await.unwrap();
        assert!(
            store
                .stripe_pending_for_customer("cus_1")
                .await
                .unwrap()
                .is_empty()
        );
    }
);

conformance!(
    an_event_waiting_for_nothing_is_refused_and_writes_nothing,
    |store: Arc<dyn Store>| async move {
        let err = store
            .park_stripe_event(&NewStripePending {
                event_id: "evt_x".into(),
                event_type: "charge.refunded".into(),
                wait: StripeWait::Charge {
                    charge_id: None,
                    payment_intent_id: Some(String::new()),
                },
                payload: "{}".into(),
                received_at: T0,
            })
            .await
            .unwrap_err();
        assert!(matches!(err, StoreError::Invalid(_)), "{err:?}");
        assert_eq!(store.stripe_event_outcome("evt_x").await.unwrap(), None);
    }
);

conformance!(
    cumulative_refund_shares_add_up_to_the_largest_amount_in_any_order,
    |store: Arc<dyn Store>| async move {
        // In order: 25 000 then 100 000 cumulative.
        let a = store
            .claim_stripe_refund_share(&share("ch_a/refunded/25000", "ch_a", None, 25_000))
            .await
            .unwrap();
        let b = store
            .claim_stripe_refund_share(&share("ch_a/refunded/100000", "ch_a", None, 100_000))
            .await
            .unwrap();
        assert_eq!((a, b), (25_000, 75_000));
        // Reordered: the older event comes last and books nothing.
        let b = store
            .claim_stripe_refund_share(&share("ch_b/refunded/100000", "ch_b", None, 100_000))
            .await
            .unwrap();
        let a = store
            .claim_stripe_refund_share(&share("ch_b/refunded/25000", "ch_b", None, 25_000))
            .await
            .unwrap();
        assert_eq!((a, b), (0, 100_000));
        // Asking again gives the first answer.
        assert_eq!(
            store
                .claim_stripe_refund_share(&share("ch_a/refunded/25000", "ch_a", None, 25_000))
                .await
                .unwrap(),
            25_000
        );
    }
);

conformance!(
    listed_refunds_get_their_amount_up_to_the_charges_cumulative_amount,
    |store: Arc<dyn Store>| async move {
        let first = store
            .claim_stripe_refund_share(&share("re_1", "ch_1", Some(25_000), 100_000))
            .await
            .unwrap();
        let second = store
            .claim_stripe_refund_share(&share("re_2", "ch_1", Some(75_000), 100_000))
            .await
            .unwrap();
        // A refund the cumulative amount does not cover books only what is left.
        let third = store
            .claim_stripe_refund_share(&share("re_3", "ch_1", Some(10_000), 100_000))
            .await
            .unwrap();
        assert_eq!((first, second, third), (25_000, 75_000, 0));
    }
);

conformance!(
    concurrent_shares_of_one_charge_never_add_up_past_its_cumulative_amount,
    |store: Arc<dyn Store>| async move {
        let mut tasks = Vec::new();
        for cumulative in [
            10_000, 20_000, 30_000, 40_000, 50_000, 60_000, 70_000, 80_000,
        ] {
            let store = store.clone();
            tasks.push(tokio::spawn(async move {
                let key = format!("ch_c/refunded/{cumulative}");
                store
                    .claim_stripe_refund_share(&share(&key, "ch_c", None, cumulative))
                    .await
                    .unwrap()
            }));
        }
        let mut total = 0;
        for task in tasks {
            total += task.await.unwrap();
        }
        assert_eq!(total, 80_000);
    }
);

conformance!(
    a_saved_secret_is_listed_with_its_hint_audited_and_deleted,
    |store: Arc<dyn Store>| async move {
        let saved = store
            .add_stripe_signing_secret(
                "whsec_console0001",
                audit("stripe.secret_add", "stripe_secret"),
            )
            .await
            .unwrap();
        assert_eq!(saved.hint, "0001");
        assert_eq!(saved.created_by, "cli");
        let audit_entry = last_audit(store.as_ref()).await;
        assert_eq!(audit_entry.action, "stripe.secret_add");
        let err = store
            .add_stripe_signing_secret("whsec_console0001", audit("stripe.secret_add", "x"))
            .await
            .unwrap_err();
        assert!(
            matches!(err, StoreError::Conflict { field: "secret" }),
            "{err:?}"
        );
        let listed = store.stripe_signing_secrets().await.unwrap();
        assert_eq!(listed, vec![saved.clone()]);
        store
            .delete_stripe_signing_secret(saved.id, audit("stripe.secret_delete", "x"))
            .await
            .unwrap();
        assert!(store.stripe_signing_secrets().await.unwrap().is_empty());
        let err = store
            .delete_stripe_signing_secret(saved.id, audit("stripe.secret_delete", "x"))
            .await
            .unwrap_err();
        assert!(matches!(err, StoreError::NotFound), "{err:?}");
        assert_eq!(
            last_audit(store.as_ref()).await.action,
            "stripe.secret_delete"
        );
    }
);
