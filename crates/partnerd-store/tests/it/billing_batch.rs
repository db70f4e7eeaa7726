//! Group commit of billing events (`record_billing_batch`): one transaction,
//! in which a refused event books nothing and sinks none of the others, and
//! every answer is the one the single-event call would give.

use std::sync::Arc;

use partnerd_store::money::{
    BillingEvent, EventKey, EventOrigin, STRIPE_EVENT_SEEN, STRIPE_NO_SIGNUP,
};
use partnerd_store::stripe_sql::{StripeChargeLink, StripeEventOutcome, StripeEventRecord};
use partnerd_store::{Store, StoreError};

use crate::money::{HOLD_DAYS, assert_sound, balances, credited_partner, day, payment, refund};

conformance!(
    a_refused_event_in_a_batch_sinks_none_of_the_others,
    |store: Arc<dyn Store>| async move {
        let store = &*store;
        let partner = credited_partner(store, "ann", "cus_1", 20).await;
        let now = day(1);
        let results = store
            .record_billing_batch(
                vec![
                    BillingEvent::Payment(payment("in_1", "cus_1", 10_000, now)),
                    // A refund of nothing: refused by the domain.
                    BillingEvent::Refund(refund("re_big", "in_1", 0)),
                    // The same event again, in the same batch: a replay.
                    BillingEvent::Payment(payment("in_1", "cus_1", 10_000, now)),
                    BillingEvent::Refund(refund("re_1", "in_1", 2_500)),
                    // The same payment id with another amount: a conflicting replay.
                    BillingEvent::Payment(payment("in_1", "cus_1", 99, now)),
                    BillingEvent::Payment(payment("in_2", "cus_1", 5_000, now)),
                ],
                HOLD_DAYS,
                now,
            )
            .await
            .expect("the batch commits");
        assert_eq!(results.len(), 6);
        let (first, replayed) = results[0].as_ref().expect("in_1 is booked");
        assert_eq!(
            (first.commission, first.booked, *replayed),
            (2_000, 2_000, false)
        );
        assert!(
            matches!(results[1], Err(StoreError::Ledger(_))),
            "{:?}",
            results[1]
        );
        let (again, replayed) = results[2].as_ref().expect("the replay is answered");
        assert!(*replayed);
        assert_eq!(again, first);
        let (refunded, _) = results[3].as_ref().expect("re_1 is booked");
        assert_eq!((refunded.commission, refunded.booked), (1_500, -500));
        assert!(results[4].is_err(), "{:?}", results[4]);
        let (second, _) = results[5].as_ref().expect("in_2 is booked");
        assert_eq!(second.commission, 1_000);

        let b = balances(store, partner).await;
        assert_eq!(b.held, 2_500);
        // The refused refund left no trace: a later, valid delivery of the same
        // id books as new.
        let (answer, replayed) = store
            .record_refund(refund("re_big", "in_1", 1_000), HOLD_DAYS, day(2))
            .await
            .expect("re_big, now of a real amount");
        assert!(!replayed);
        assert_eq!(answer.commission, 1_300);
        assert_sound(store).await;
    }
);

conformance!(
    an_empty_batch_commits_nothing_and_answers_nothing,
    |store: Arc<dyn Store>| async move {
        let results = store
            .record_billing_batch(Vec::new(), HOLD_DAYS, day(1))
            .await
            .unwrap();
        assert!(results.is_empty());
        assert_sound(&*store).await;
    }
);

conformance!(
    removing_a_partner_erases_payout_details_and_keeps_the_money,
    |store: Arc<dyn Store>| async move {
        // R-ACC-3, R-PAY-4: the PayPal address and tax details are personal data.
        let store = &*store;
        let partner = credited_partner(store, "ann", "cus_1", 20).await;
        store
            .record_payment(payment("in_1", "cus_1", 10_000, day(1)), HOLD_DAYS, day(1))
            .await
            .unwrap();
        store
            .remove_partner(
                partner,
                partnerd_store::Removal::Requested,
                crate::fixtures::audit("partner.remove", "partner"),
                day(2),
            )
            .await
            .unwrap();
        assert_eq!(
            store.payout_profile(partner).await.unwrap(),
            partnerd_store::money::PayoutProfile::default()
        );
        assert_eq!(
            balances(store, partner).await.held,
            2_000,
            "the money records stay"
        );
        assert_sound(store).await;
    }
);

conformance!(
    removal_waits_for_a_withdrawal_that_is_not_settled,
    |store: Arc<dyn Store>| async move {
        // R-ACC-3: "deletion waits for any payout in flight".
        let store = &*store;
        let partner = credited_partner(store, "bo", "cus_1", 20).await;
        store
            .record_payment(payment("in_1", "cus_1", 100_000, day(1)), 0, day(1))
            .await
            .unwrap();
        store
            .request_withdrawal(partnerd_store::money::NewWithdrawal {
                id: "wd_1".into(),
                partner_id: partner,
                currency: partnerd_domain::Currency::USD,
                minimum: 5_000,
                requested_at: day(2),
                audit: crate::fixtures::audit("withdrawal.request", "withdrawal:wd_1"),
            })
            .await
            .unwrap();
        let remove = || {
            store.remove_partner(
                partner,
                partnerd_store::Removal::Requested,
                crate::fixtures::audit("partner.remove", "partner"),
                day(3),
            )
        };
        assert!(matches!(remove().await, Err(StoreError::Invalid(_))));
        assert!(
            store.payout_profile(partner).await.unwrap().is_complete(),
            "nothing erased"
        );
        store
            .reject_withdrawal(
                "wd_1",
                "a test",
                crate::fixtures::audit("withdrawal.reject", "withdrawal:wd_1"),
                None,
                day(3),
            )
            .await
            .unwrap();
        remove().await.unwrap();
        assert_sound(store).await;
    }
);

/// A Stripe `invoice.paid` as the webhook books it.
fn stripe_payment(event: &str, invoice: &str, customer: &str, amount: i64) -> BillingEvent {
    let mut new = payment(invoice, customer, amount, day(1));
    new.event = EventKey::new(EventOrigin::Stripe, event);
    BillingEvent::StripePayment {
        payment: new,
        link: StripeChargeLink {
            invoice_id: invoice.into(),
            aliases: vec![format!("ch_{invoice}")],
            now: day(1),
        },
        record: StripeEventRecord {
            event_id: event.into(),
            event_type: "invoice.paid".into(),
            outcome: StripeEventOutcome::Booked,
            at: day(1),
        },
    }
}

conformance!(
    stripe_payments_of_unknown_customers_and_replays_are_refused_without_a_trace,
    |store: Arc<dyn Store>| async move {
        let store = &*store;
        let partner = credited_partner(store, "ann", "cus_1", 20).await;
        let results = store
            .record_billing_batch(
                vec![
                    stripe_payment("evt_1", "in_1", "cus_1", 10_000),
                    // Nobody referred this customer: no sign-up yet.
                    stripe_payment("evt_2", "in_2", "cus_nobody", 10_000),
                    // A redelivery of evt_1 in the same batch.
                    stripe_payment("evt_1", "in_1", "cus_1", 10_000),
                    stripe_payment("evt_3", "in_3", "cus_1", 5_000),
                ],
                HOLD_DAYS,
                day(1),
            )
            .await
            .expect("the batch commits");
        assert_eq!(results.len(), 4);
        assert_eq!(
            results[0].as_ref().expect("evt_1 is booked").0.booked,
            2_000
        );
        assert!(
            matches!(results[1], Err(StoreError::Invalid(reason)) if reason == STRIPE_NO_SIGNUP),
            "{:?}",
            results[1]
        );
        assert!(
            matches!(results[2], Err(StoreError::Invalid(reason)) if reason == STRIPE_EVENT_SEEN),
            "{:?}",
            results[2]
        );
        assert_eq!(
            results[3].as_ref().expect("evt_3 is booked").0.booked,
            1_000
        );

        // The refused payment left nothing: not even the event's record.
        assert_eq!(store.stripe_event_outcome("evt_2").await.unwrap(), None);
        assert_eq!(
            store.stripe_event_outcome("evt_1").await.unwrap(),
            Some(StripeEventOutcome::Booked)
        );
        assert_eq!(balances(store, partner).await.held, 3_000);
        assert_sound(store).await;
    }
);
