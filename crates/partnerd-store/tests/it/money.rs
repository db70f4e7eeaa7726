//! The money ledger through the store (R-COM-1..4, R-PAY-1..3): billing events
//! booked once, holds released by the job, reversals into clawback, withdrawals
//! serialised on the balance, payouts. After every scenario the invariants
//! I1–I8 hold on what `ledger_records` loads.

use std::sync::Arc;

use partnerd_domain::ledger::{PartnerBalances, PayoutStatus, WithdrawalStatus, check_invariants};
use partnerd_domain::{Currency, Timestamp};
use partnerd_store::money::{
    BillingAnswer, ChargebackChange, EventKey, EventOrigin, NewCancellation, NewChargeback,
    NewPayment, NewRefund, NewWithdrawal, PayoutProfile,
};
use partnerd_store::{NewSignup, Store, StoreError};

use crate::fixtures::*;

const DAY: i64 = 86_400_000;
pub(crate) const HOLD_DAYS: i64 = 30;
/// $50, R-PAY-1's default minimum.
const MINIMUM: i64 = 5_000;

pub(crate) fn day(n: i64) -> Timestamp {
    at(n * DAY)
}

/// A partner with a complete payout profile and a customer `customer` credited
/// to them at `rate` percent.
pub(crate) async fn credited_partner(
    store: &dyn Store,
    tag: &str,
    customer: &str,
    rate: i64,
) -> i64 {
    let partner = add_partner(store, tag, T0).await;
    credit(store, partner.id, customer, rate, false).await;
    store
        .save_payout_profile(
            partner.id,
            &PayoutProfile {
                paypal_email: Some(format!("{tag}@paypal.test")),
                legal_name: Some(format!("{tag} Legal")),
                country: Some("DE".into()),
                tax_id: Some("DE123456789".into()),
            },
            audit("partner.payout_profile", &format!("partner:{}", partner.id)),
            Vec::new(),
            T0,
        )
        .await
        .expect("save the payout profile");
    partner.id
}

/// Credits `customer` to the partner at `rate` (R-AFF-4, R-COM-1).
pub(crate) async fn credit(
    store: &dyn Store,
    partner_id: i64,
    customer: &str,
    rate: i64,
    review: bool,
) {
    let (_, created) = store
        .record_signup(NewSignup {
            customer_id: customer.into(),
            partner_id: Some(partner_id),
            referred_partner_id: Some(partner_id),
            campaign_id: None,
            click_id: None,
            utm_campaign: Some("default_link".into()),
            utm_term: None,
            trial_days: None,
            discount_percent: None,
            reason: "credited".into(),
            review,
            commission_rate: Some(rate),
            created_at: T0,
        })
        .await
        .expect("record the sign-up");
    assert!(created);
}

pub(crate) fn payment(id: &str, customer: &str, amount: i64, paid_at: Timestamp) -> NewPayment {
    NewPayment {
        event: EventKey::new(EventOrigin::Api, format!("payment:{id}")),
        payment_id: id.into(),
        customer_id: customer.into(),
        amount,
        currency: Currency::USD,
        paid_at,
        subscription_id: Some(format!("sub-{customer}")),
    }
}

pub(crate) fn refund(id: &str, payment_id: &str, amount: i64) -> NewRefund {
    NewRefund {
        event: EventKey::new(EventOrigin::Api, format!("refund:{id}")),
        refund_id: id.into(),
        payment_id: payment_id.into(),
        amount,
    }
}

async fn pay(store: &dyn Store, p: NewPayment, now: Timestamp) -> BillingAnswer {
    let (answer, replayed) = store
        .record_payment(p, HOLD_DAYS, now)
        .await
        .expect("record the payment");
    assert!(!replayed);
    answer
}

pub(crate) async fn balances(store: &dyn Store, partner_id: i64) -> PartnerBalances {
    let rows = store.partner_balances(partner_id).await.expect("balances");
    assert!(rows.len() <= 1, "one currency only: {rows:?}");
    rows.first().map(|r| r.balances).unwrap_or_default()
}

async fn transfer_count(store: &dyn Store) -> usize {
    store
        .ledger_records()
        .await
        .expect("records")
        .transfers
        .len()
}

/// I1–I8 hold on what the store holds.
pub(crate) async fn assert_sound(store: &dyn Store) {
    let snapshot = store.ledger_records().await.expect("load the ledger");
    let breaches = check_invariants(&snapshot.records());
    assert!(breaches.is_empty(), "ledger breaches: {breaches:#?}");
}

fn withdrawal(id: &str, partner_id: i64, now: Timestamp) -> NewWithdrawal {
    NewWithdrawal {
        id: id.into(),
        partner_id,
        currency: Currency::USD,
        minimum: MINIMUM,
        requested_at: now,
        audit: audit("withdrawal.request", &format!("withdrawal:{id}")),
    }
}

conformance!(
    worked_example_twelve_monthly_payments_of_1000_dollars_earn_2400,
    |store: Arc<dyn Store>| async move {
        let store = &*store;
        let partner = credited_partner(store, "ann", "cus_1", 20).await;
        for month in 0..12 {
            let paid_at = day(month * 30);
            let answer = pay(
                store,
                payment(&format!("in_{month}"), "cus_1", 100_000, paid_at),
                paid_at,
            )
            .await;
            assert_eq!(answer.partner_id, Some(partner));
            assert_eq!(answer.commission, 20_000);
            assert_eq!(answer.booked, 20_000);
            store.release_due_holds(paid_at, 100).await.unwrap();
        }
        let b = balances(store, partner).await;
        assert_eq!(b.earned, 240_000, "R-COM-2: $2,400");
        assert_eq!(b.held + b.available, 240_000);
        assert!(b.held > 0, "the latest payments are still in their hold");
        // Every hold ends 30 days after its payment.
        store
            .release_due_holds(day(11 * 30 + 30), 100)
            .await
            .unwrap();
        let b = balances(store, partner).await;
        assert_eq!((b.held, b.available), (0, 240_000));
        let commissions = store.partner_commissions(partner, 100, 0).await.unwrap();
        assert_eq!(commissions.len(), 12);
        assert!(
            commissions
                .iter()
                .all(|c| c.commission == 20_000 && c.rate == 20)
        );
        assert_eq!(commissions[0].payment_id, "in_11", "newest first");
        // R-ACC-4: one new paying customer, counted from their first payment.
        assert_eq!(store.new_paying_customers(partner, T0).await.unwrap(), 1);
        assert_eq!(
            store.new_paying_customers(partner, day(1)).await.unwrap(),
            0
        );
        assert_sound(store).await;
    }
);

conformance!(
    replays_book_nothing_and_answer_as_the_first_time,
    |store: Arc<dyn Store>| async move {
        let store = &*store;
        let partner = credited_partner(store, "bob", "cus_2", 20).await;
        let first = pay(store, payment("in_1", "cus_2", 10_000, T0), T0).await;
        let booked = transfer_count(store).await;
        assert_eq!(booked, 1);

        // The same event again, later: the first answer, nothing booked.
        let (again, replayed) = store
            .record_payment(payment("in_1", "cus_2", 10_000, T0), HOLD_DAYS, day(3))
            .await
            .unwrap();
        assert!(replayed);
        assert_eq!(again, first);
        // The same payment under another event id (Stripe after the API): a replay.
        let mut from_stripe = payment("in_1", "cus_2", 10_000, T0);
        from_stripe.event = EventKey::new(EventOrigin::Stripe, "evt_1");
        let (_, replayed) = store
            .record_payment(from_stripe, HOLD_DAYS, day(3))
            .await
            .unwrap();
        assert!(replayed);
        assert_eq!(transfer_count(store).await, booked);

        // The same event id with other facts is refused and writes nothing.
        let err = store
            .record_payment(payment("in_1", "cus_2", 99_999, T0), HOLD_DAYS, day(3))
            .await
            .unwrap_err();
        assert!(matches!(err, StoreError::Conflict { .. }), "{err:?}");
        // The same payment id with another amount under a new event: refused too.
        let mut other = payment("in_1", "cus_2", 99_999, T0);
        other.event = EventKey::new(EventOrigin::Stripe, "evt_2");
        let err = store
            .record_payment(other, HOLD_DAYS, day(3))
            .await
            .unwrap_err();
        assert!(matches!(err, StoreError::Ledger(_)), "{err:?}");

        // Refunds and chargebacks replay alike.
        for _ in 0..3 {
            store
                .record_refund(refund("re_1", "in_1", 5_000), HOLD_DAYS, day(4))
                .await
                .unwrap();
        }
        for change in [ChargebackChange::Withdrawn, ChargebackChange::Withdrawn] {
            store
                .record_chargeback(
                    NewChargeback {
                        event: EventKey::new(EventOrigin::Stripe, "evt_cb"),
                        chargeback_id: "dp_1".into(),
                        payment_id: "in_1".into(),
                        amount: 5_000,
                        change,
                    },
                    HOLD_DAYS,
                    day(5),
                )
                .await
                .unwrap();
        }
        let b = balances(store, partner).await;
        assert_eq!(b.earned, 0, "refunded half and charged back half");
        assert_eq!(transfer_count(store).await, 3);
        let cancel = || NewCancellation {
            event: EventKey::new(EventOrigin::Api, "cancel:sub-cus_2"),
            subscription_id: "sub-cus_2".into(),
            customer_id: Some("cus_2".into()),
        };
        let (_, replayed) = store.cancel_subscription(cancel(), day(6)).await.unwrap();
        assert!(!replayed);
        let (_, replayed) = store.cancel_subscription(cancel(), day(7)).await.unwrap();
        assert!(replayed);
        assert_sound(store).await;
    }
);

conformance!(
    a_refund_before_its_payment_ends_as_one_after_it,
    |store: Arc<dyn Store>| async move {
        let store = &*store;
        let after = credited_partner(store, "cat", "cus_a", 20).await;
        let before = credited_partner(store, "dan", "cus_b", 20).await;

        pay(store, payment("in_a", "cus_a", 100_000, T0), T0).await;
        store
            .record_refund(refund("re_a", "in_a", 30_000), HOLD_DAYS, day(1))
            .await
            .unwrap();

        let (early, _) = store
            .record_refund(refund("re_b", "in_b", 30_000), HOLD_DAYS, day(1))
            .await
            .unwrap();
        assert_eq!(
            (early.partner_id, early.booked),
            (None, 0),
            "no payment yet"
        );
        let late = pay(store, payment("in_b", "cus_b", 100_000, T0), day(2)).await;
        assert_eq!(late.commission, 14_000, "floor(20 % × (1000 − 300))");

        assert_eq!(balances(store, after).await, balances(store, before).await);
        assert_eq!(balances(store, before).await.held, 14_000);
        assert_sound(store).await;
    }
);

conformance!(
    holds_are_released_by_the_job_only_after_hold_days,
    |store: Arc<dyn Store>| async move {
        let store = &*store;
        let partner = credited_partner(store, "eve", "cus_3", 20).await;
        pay(store, payment("in_3", "cus_3", 50_000, T0), T0).await;
        assert_eq!(
            store
                .release_due_holds(day(HOLD_DAYS).minus_seconds(1), 10)
                .await
                .unwrap(),
            0
        );
        assert_eq!(balances(store, partner).await.held, 10_000);
        assert_eq!(
            store.release_due_holds(day(HOLD_DAYS), 10).await.unwrap(),
            1
        );
        let b = balances(store, partner).await;
        assert_eq!((b.held, b.available), (0, 10_000));
        assert_eq!(
            store
                .release_due_holds(day(HOLD_DAYS + 1), 10)
                .await
                .unwrap(),
            0
        );
        let transfers = store.partner_transfers(partner, 10, 0).await.unwrap();
        assert_eq!(transfers[0].transfer.source.key(), "rel:in_3#1");
        assert_sound(store).await;
    }
);

conformance!(
    reviews_wait_for_a_person,
    |store: Arc<dyn Store>| async move {
        let store = &*store;
        let partner = add_partner(store, "fay", T0).await.id;
        credit(store, partner, "cus_r", 20, true).await;
        pay(store, payment("in_r1", "cus_r", 10_000, T0), T0).await;
        pay(store, payment("in_r2", "cus_r", 20_000, T0), T0).await;
        assert_eq!(balances(store, partner).await.on_review, 6_000);
        assert_eq!(
            store.release_due_holds(day(HOLD_DAYS), 10).await.unwrap(),
            0
        );
        store
            .approve_commission_review(
                "in_r1",
                audit("commission.approve", "invoice:in_r1"),
                day(HOLD_DAYS),
            )
            .await
            .unwrap();
        store
            .reject_commission_review("in_r2", audit("commission.reject", "invoice:in_r2"))
            .await
            .unwrap();
        let b = balances(store, partner).await;
        assert_eq!((b.on_review, b.available, b.earned), (0, 2_000, 2_000));
        // A rejection is final; approving twice is refused and writes nothing.
        let err = store
            .approve_commission_review(
                "in_r1",
                audit("commission.approve", "invoice:in_r1"),
                day(31),
            )
            .await
            .unwrap_err();
        assert!(matches!(err, StoreError::Ledger(_)), "{err:?}");
        assert_sound(store).await;
    }
);

conformance!(
    a_reversal_after_payout_becomes_clawback_paid_off_by_later_earnings,
    |store: Arc<dyn Store>| async move {
        let store = &*store;
        let partner = credited_partner(store, "gus", "cus_4", 20).await;
        pay(store, payment("in_4a", "cus_4", 100_000, T0), T0).await;
        store.release_due_holds(day(30), 10).await.unwrap();
        let (w, replayed) = store
            .request_withdrawal(withdrawal("wd_1", partner, day(31)))
            .await
            .unwrap();
        assert!(!replayed);
        assert_eq!(w.withdrawal.amount, 20_000);
        let item = store
            .approve_withdrawal(
                "wd_1",
                None,
                audit("withdrawal.approve", "withdrawal:wd_1"),
                day(31),
            )
            .await
            .unwrap();
        assert_eq!(item.sender_batch_id, "wd_1");
        assert_eq!(item.receiver, "gus@paypal.test");
        store
            .record_payout_submission("wd_1", "BATCH1", Some("ITEM1"), day(31))
            .await
            .unwrap();
        let w = store
            .record_payout_status(
                "wd_1",
                PayoutStatus::Success,
                None,
                None,
                Default::default(),
                day(32),
            )
            .await
            .unwrap();
        assert_eq!(w.withdrawal.status, WithdrawalStatus::Paid);
        // A stale PENDING after SUCCESS books nothing.
        store
            .record_payout_status(
                "wd_1",
                PayoutStatus::Pending,
                None,
                None,
                Default::default(),
                day(33),
            )
            .await
            .unwrap();
        assert_eq!(balances(store, partner).await.paid, 20_000);

        // The whole payment is refunded after the money was paid out (R-COM-3).
        store
            .record_refund(refund("re_4", "in_4a", 100_000), HOLD_DAYS, day(40))
            .await
            .unwrap();
        let b = balances(store, partner).await;
        assert_eq!((b.clawback, b.available, b.earned), (20_000, 0, 0));
        // A chargeback that is then reinstated leaves the commission as it was.
        pay(store, payment("in_4b", "cus_4", 150_000, day(41)), day(41)).await;
        for (event, change) in [
            ("evt_w", ChargebackChange::Withdrawn),
            ("evt_r", ChargebackChange::Reinstated),
        ] {
            store
                .record_chargeback(
                    NewChargeback {
                        event: EventKey::new(EventOrigin::Stripe, event),
                        chargeback_id: "dp_4".into(),
                        payment_id: "in_4b".into(),
                        amount: 150_000,
                        change,
                    },
                    HOLD_DAYS,
                    day(42),
                )
                .await
                .unwrap();
        }
        // Released: 30,000 pays off the 20,000 owed, 10,000 becomes available.
        store.release_due_holds(day(71), 10).await.unwrap();
        let b = balances(store, partner).await;
        assert_eq!((b.clawback, b.available, b.paid), (0, 10_000, 20_000));
        assert_sound(store).await;
    }
);

conformance!(
    rejected_and_failed_withdrawals_bring_the_money_back,
    |store: Arc<dyn Store>| async move {
        let store = &*store;
        let partner = credited_partner(store, "hal", "cus_5", 20).await;
        let bare = add_partner(store, "ida", T0).await.id;
        credit(store, bare, "cus_6", 20, false).await;
        pay(store, payment("in_5", "cus_5", 100_000, T0), T0).await;
        pay(store, payment("in_6", "cus_6", 100_000, T0), T0).await;
        store.release_due_holds(day(30), 10).await.unwrap();

        // R-PAY-2, R-PAY-4: no payout profile, no withdrawal; nothing written.
        let err = store
            .request_withdrawal(withdrawal("wd_x", bare, day(30)))
            .await
            .unwrap_err();
        assert!(matches!(err, StoreError::Invalid(_)), "{err:?}");

        store
            .request_withdrawal(withdrawal("wd_a", partner, day(30)))
            .await
            .unwrap();
        let (again, replayed) = store
            .request_withdrawal(withdrawal("wd_a", partner, day(30)))
            .await
            .unwrap();
        assert!(replayed);
        assert_eq!(again.withdrawal.amount, 20_000);
        let err = store
            .request_withdrawal(withdrawal("wd_b", partner, day(30)))
            .await
            .unwrap_err();
        assert!(
            matches!(err, StoreError::Ledger(_)),
            "nothing left: {err:?}"
        );
        let queue = store
            .list_withdrawals(Some(WithdrawalStatus::Requested), 10, 0)
            .await
            .unwrap();
        assert_eq!(queue.len(), 1);
        let w = store
            .reject_withdrawal(
                "wd_a",
                "tax id unreadable",
                audit("withdrawal.reject", "withdrawal:wd_a"),
                None,
                day(31),
            )
            .await
            .unwrap();
        assert_eq!(w.withdrawal.status, WithdrawalStatus::Rejected);
        assert_eq!(last_audit(store).await.action, "withdrawal.reject");
        assert_eq!(balances(store, partner).await.available, 20_000);

        store
            .request_withdrawal(withdrawal("wd_c", partner, day(32)))
            .await
            .unwrap();
        store
            .approve_withdrawal(
                "wd_c",
                None,
                audit("withdrawal.approve", "withdrawal:wd_c"),
                day(32),
            )
            .await
            .unwrap();
        let err = store
            .approve_withdrawal(
                "wd_c",
                None,
                audit("withdrawal.approve", "withdrawal:wd_c"),
                day(32),
            )
            .await
            .unwrap_err();
        assert!(
            matches!(err, StoreError::Ledger(_)),
            "approved once: {err:?}"
        );
        let w = store
            .record_payout_status(
                "wd_c",
                PayoutStatus::Returned,
                Some("ITEM"),
                None,
                Default::default(),
                day(40),
            )
            .await
            .unwrap();
        assert_eq!(w.withdrawal.status, WithdrawalStatus::Failed);
        let b = balances(store, partner).await;
        assert_eq!((b.available, b.in_flight, b.paid), (20_000, 0, 0));
        let (_, item) = store.get_withdrawal("wd_c").await.unwrap();
        assert_eq!(item.unwrap().item.status, PayoutStatus::Returned);
        assert_sound(store).await;
    }
);

conformance!(
    a_hundred_concurrent_withdrawal_requests_never_take_more_than_the_balance,
    |store: Arc<dyn Store>| async move {
        let partner = credited_partner(&*store, "joe", "cus_7", 20).await;
        pay(&*store, payment("in_7", "cus_7", 500_000, T0), T0).await;
        store.release_due_holds(day(30), 10).await.unwrap();
        let balance = balances(&*store, partner).await.available;
        assert_eq!(balance, 100_000);
        let tasks: Vec<_> = (0..100)
            .map(|n| {
                let store = store.clone();
                tokio::spawn(async move {
                    store
                        .request_withdrawal(withdrawal(&format!("wd_{n}"), partner, day(31)))
                        .await
                })
            })
            .collect();
        let mut accepted = 0;
        for task in tasks {
            match task.await.expect("the task ran") {
                Ok((w, false)) => accepted += w.withdrawal.amount,
                Ok((_, true)) => panic!("distinct ids are never replays"),
                Err(StoreError::Ledger(_)) => {}
                Err(other) => panic!("unexpected error: {other:?}"),
            }
        }
        assert_eq!(accepted, balance, "the whole balance, once");
        let b = balances(&*store, partner).await;
        assert_eq!((b.available, b.in_flight), (0, balance));
        assert_sound(&*store).await;
    }
);

conformance!(duplicate_deliveries_at_once_book_once, |store: Arc<
    dyn Store,
>| async move {
    let partner = credited_partner(&*store, "kim", "cus_8", 20).await;
    // Twenty deliveries at once: ten of one event, ten of the same payment
    // under other event ids (the API and Stripe both reporting it).
    let tasks: Vec<_> = (0..20)
        .map(|n| {
            let store = store.clone();
            tokio::spawn(async move {
                let mut p = payment("in_8", "cus_8", 10_000, T0);
                if n % 2 == 1 {
                    p.event = EventKey::new(EventOrigin::Stripe, format!("evt_{n}"));
                }
                store.record_payment(p, HOLD_DAYS, T0).await
            })
        })
        .collect();
    let mut new = 0;
    for task in tasks {
        let (answer, replayed) = task.await.expect("the task ran").expect("recorded");
        assert_eq!(answer.commission, 2_000);
        new += usize::from(!replayed);
    }
    assert_eq!(new, 1, "one delivery booked, the others were replays");
    assert_eq!(balances(&*store, partner).await.held, 2_000);
    assert_eq!(transfer_count(&*store).await, 1);
    assert_sound(&*store).await;
});

conformance!(
    events_in_any_order_and_delivered_twice_end_in_the_same_ledger,
    |store: Arc<dyn Store>| async move {
        let store = &*store;
        // 0 payment, 1 and 2 partial refunds, 3 chargeback, 4 its reinstatement,
        // 5 a second chargeback that stands.
        let orders: [[usize; 6]; 6] = [
            [0, 1, 2, 3, 4, 5],
            [5, 4, 3, 2, 1, 0],
            [1, 0, 4, 2, 5, 3],
            [3, 5, 0, 4, 1, 2],
            [2, 4, 1, 5, 3, 0],
            [4, 3, 5, 0, 2, 1],
        ];
        let mut ends = Vec::new();
        for (n, order) in orders.iter().enumerate() {
            let customer = format!("cus_o{n}");
            let invoice = format!("in_o{n}");
            let partner = credited_partner(store, &format!("ord{n}"), &customer, 30).await;
            for (step, event) in order.iter().chain(order.iter()).enumerate() {
                let now = day(i64::try_from(step).unwrap());
                let dispute = |id: &str, amount: i64, change: ChargebackChange| NewChargeback {
                    event: EventKey::new(EventOrigin::Stripe, format!("evt_{id}_{n}_{change:?}")),
                    chargeback_id: format!("{id}_{n}"),
                    payment_id: invoice.clone(),
                    amount,
                    change,
                };
                match event {
                    0 => {
                        store
                            .record_payment(
                                payment(&invoice, &customer, 99_999, T0),
                                HOLD_DAYS,
                                now,
                            )
                            .await
                            .unwrap();
                    }
                    1 | 2 => {
                        let id = format!("re_{event}_{n}");
                        store
                            .record_refund(refund(&id, &invoice, 10_001), HOLD_DAYS, now)
                            .await
                            .unwrap();
                    }
                    3 => {
                        let cb = dispute("dp_a", 20_000, ChargebackChange::Withdrawn);
                        store.record_chargeback(cb, HOLD_DAYS, now).await.unwrap();
                    }
                    4 => {
                        let cb = dispute("dp_a", 20_000, ChargebackChange::Reinstated);
                        store.record_chargeback(cb, HOLD_DAYS, now).await.unwrap();
                    }
                    _ => {
                        let cb = dispute("dp_b", 7_003, ChargebackChange::Withdrawn);
                        store.record_chargeback(cb, HOLD_DAYS, now).await.unwrap();
                    }
                }
                assert_sound(store).await;
            }
            ends.push(balances(store, partner).await);
        }
        // floor(30 % × (99,999 − 10,001 − 10,001 − 7,003)) = 21,898, all still held.
        assert!(
            ends.iter().all(|b| b.earned == 21_898 && b.held == 21_898),
            "{ends:#?}"
        );
    }
);

conformance!(
    a_payout_report_writes_its_email_only_when_it_moves_the_money_and_its_job_always,
    |store: Arc<dyn Store>| async move {
        let store = &*store;
        let partner = credited_partner(store, "kim", "cus_8", 20).await;
        pay(store, payment("in_8", "cus_8", 100_000, T0), T0).await;
        store.release_due_holds(day(30), 10).await.unwrap();
        store
            .request_withdrawal(withdrawal("wd_k", partner, day(31)))
            .await
            .unwrap();
        store
            .approve_withdrawal(
                "wd_k",
                None,
                audit("withdrawal.approve", "withdrawal:wd_k"),
                day(31),
            )
            .await
            .unwrap();
        let follow_up = |job: bool| partnerd_store::money::PayoutFollowUp {
            email_if_paid: Some(mail("kim@example.test", "paid", false, day(32))),
            email_if_came_back: Some(mail("kim@example.test", "back", false, day(32))),
            job: job.then(|| partnerd_store::NewJob {
                kind: "paypal_poll".into(),
                payload: serde_json::json!({ "withdrawal_id": "wd_k" }),
                run_at: day(32),
                max_attempts: 5,
            }),
        };
        let before = totals(store).await.outbox;
        // Still in flight: no email, but the next poll is enqueued.
        store
            .record_payout_status(
                "wd_k",
                PayoutStatus::Pending,
                None,
                None,
                follow_up(true),
                day(32),
            )
            .await
            .unwrap();
        assert_eq!(totals(store).await.outbox, before);
        let jobs = store.claim_jobs("w", day(33), 60, 10).await.unwrap();
        assert_eq!(
            jobs.iter().filter(|j| j.kind == "paypal_poll").count(),
            1,
            "{jobs:?}"
        );
        // Paid: the paid email only, and only the first time.
        for _ in 0..2 {
            store
                .record_payout_status(
                    "wd_k",
                    PayoutStatus::Success,
                    None,
                    None,
                    follow_up(false),
                    day(33),
                )
                .await
                .unwrap();
        }
        let outbox = store.list_outbox(10, 0).await.unwrap();
        assert_eq!(outbox.total, before + 1);
        assert_eq!(outbox.items[0].subject, "paid");
        // Reversed after SUCCESS: the money comes back and the partner hears of it.
        store
            .record_payout_status(
                "wd_k",
                PayoutStatus::Reversed,
                None,
                None,
                follow_up(false),
                day(34),
            )
            .await
            .unwrap();
        let outbox = store.list_outbox(10, 0).await.unwrap();
        assert_eq!(outbox.total, before + 2);
        assert_eq!(outbox.items[0].subject, "back");

        // A rejection writes its notice with it.
        store
            .request_withdrawal(withdrawal("wd_l", partner, day(35)))
            .await
            .unwrap();
        store
            .reject_withdrawal(
                "wd_l",
                "tax id unreadable",
                audit("withdrawal.reject", "withdrawal:wd_l"),
                Some(mail("kim@example.test", "rejected", false, day(35))),
                day(35),
            )
            .await
            .unwrap();
        let outbox = store.list_outbox(10, 0).await.unwrap();
        assert_eq!(outbox.total, before + 3);
        assert_eq!(outbox.items[0].subject, "rejected");
        assert_eq!(balances(store, partner).await.available, 20_000);
        assert_sound(store).await;
    }
);
