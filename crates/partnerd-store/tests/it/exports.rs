//! The reads behind statements and accounting exports (`ExportStore`): a
//! partner's withdrawals, transfers up to a moment, active days and first
//! payments, and the program-wide commission bookings and withdrawals by date.

use std::sync::Arc;

use partnerd_domain::Currency;
use partnerd_domain::ledger::{PayoutStatus, WithdrawalStatus};
use partnerd_store::Store;
use partnerd_store::money::NewWithdrawal;

use crate::fixtures::*;
use crate::money::{HOLD_DAYS, credit, credited_partner, day, payment, refund};

fn withdrawal(id: &str, partner_id: i64, now: partnerd_domain::Timestamp) -> NewWithdrawal {
    NewWithdrawal {
        id: id.into(),
        partner_id,
        currency: Currency::USD,
        minimum: 5_000,
        requested_at: now,
        audit: audit("withdrawal.request", &format!("withdrawal:{id}")),
    }
}

/// Ann earns 2 000 on in_1 (day 0), loses 500 of it to a refund on day 40,
/// withdraws on day 31 and is paid on day 32; Bob earns 1 000 on day 5.
async fn scenario(store: &dyn Store) -> (i64, i64) {
    let ann = credited_partner(store, "ann", "cus_a", 20).await;
    let bob = credited_partner(store, "bob", "cus_b", 10).await;
    store
        .record_payment(payment("in_1", "cus_a", 50_000, day(0)), HOLD_DAYS, day(0))
        .await
        .unwrap();
    store
        .record_payment(payment("in_2", "cus_b", 10_000, day(5)), HOLD_DAYS, day(5))
        .await
        .unwrap();
    store.release_due_holds(day(31), 100).await.unwrap();
    store
        .request_withdrawal(withdrawal("wd_ann", ann, day(31)))
        .await
        .unwrap();
    store
        .approve_withdrawal(
            "wd_ann",
            None,
            audit("withdrawal.approve", "wd_ann"),
            day(31),
        )
        .await
        .unwrap();
    store
        .record_payout_status(
            "wd_ann",
            PayoutStatus::Success,
            None,
            None,
            Default::default(),
            day(32),
        )
        .await
        .unwrap();
    store
        .record_refund(refund("re_1", "in_1", 2_500), HOLD_DAYS, day(40))
        .await
        .unwrap();
    (ann, bob)
}

conformance!(
    commission_bookings_are_summed_per_source_with_their_sign_and_filtered_by_time,
    |store: Arc<dyn Store>| async move {
        let store = &*store;
        let (ann, bob) = scenario(store).await;
        let all = store.commission_bookings(day(0), day(41)).await.unwrap();
        let seen: Vec<(&str, i64, i64)> = all
            .iter()
            .map(|b| (b.source.as_str(), b.partner_id, b.amount))
            .collect();
        // 20 % of 500.00 earned; 20 % of the 25.00 refund reversed; 10 % of 100.00.
        assert_eq!(
            seen,
            vec![
                ("com:in_1", ann, 10_000),
                ("com:in_2", bob, 1_000),
                ("ref:re_1", ann, -500)
            ]
        );
        let first = &all[0];
        assert_eq!(first.partner_public_id, "pub-ann");
        assert_eq!(first.payment_id.as_deref(), Some("in_1"));
        assert_eq!(first.customer_id.as_deref(), Some("cus_a"));
        assert_eq!(first.payment_amount, Some(50_000));
        assert_eq!(first.rate, Some(20));
        assert_eq!(first.booked_at, day(0));
        // [from, to): the day-5 payment only.
        let middle = store.commission_bookings(day(1), day(40)).await.unwrap();
        assert_eq!(middle.len(), 1);
        assert_eq!(middle[0].source, "com:in_2");
        assert!(
            store
                .commission_bookings(day(41), day(50))
                .await
                .unwrap()
                .is_empty()
        );
    }
);

conformance!(
    withdrawals_requested_in_a_range_carry_their_payout_and_when_it_arrived,
    |store: Arc<dyn Store>| async move {
        let store = &*store;
        let (ann, _) = scenario(store).await;
        let rows = store.withdrawals_requested(day(30), day(32)).await.unwrap();
        assert_eq!(rows.len(), 1);
        let row = &rows[0];
        assert_eq!(row.withdrawal.withdrawal.id, "wd_ann");
        assert_eq!(row.withdrawal.withdrawal.partner_id, ann);
        assert_eq!(row.withdrawal.withdrawal.amount, 10_000);
        assert_eq!(row.withdrawal.withdrawal.status, WithdrawalStatus::Paid);
        assert_eq!(row.partner_public_id, "pub-ann");
        assert_eq!(row.receiver.as_deref(), Some("ann@paypal.test"));
        assert_eq!(row.payout_status.as_deref(), Some("SUCCESS"));
        assert_eq!(row.paid_at, Some(day(32)));
        assert!(
            store
                .withdrawals_requested(day(32), day(60))
                .await
                .unwrap()
                .is_empty()
        );
    }
);

conformance!(
    a_partners_withdrawals_transfers_and_active_days_are_theirs_only,
    |store: Arc<dyn Store>| async move {
        let store = &*store;
        let (ann, bob) = scenario(store).await;
        let mine = store.partner_withdrawals(ann, 10, 0).await.unwrap();
        assert_eq!(mine.len(), 1);
        assert!(
            store
                .partner_withdrawals(bob, 10, 0)
                .await
                .unwrap()
                .is_empty()
        );
        assert!(
            store
                .partner_withdrawals(ann, 10, 1)
                .await
                .unwrap()
                .is_empty()
        );

        // Up to (not including) day 32: earning, release, withdrawal; not the payout.
        let until = store.partner_transfers_until(ann, day(32)).await.unwrap();
        assert!(!until.is_empty());
        assert!(
            until
                .iter()
                .all(|t| t.transfer.partner_id == ann && t.created_at < day(32))
        );
        assert!(until.windows(2).all(|w| w[0].id < w[1].id), "booking order");
        let sources: Vec<String> = until.iter().map(|t| t.transfer.source.key()).collect();
        assert!(sources.contains(&"wd:wd_ann".to_owned()), "{sources:?}");
        assert!(!sources.contains(&"paid:wd_ann".to_owned()), "{sources:?}");

        let t0_day = T0.millis() / 86_400_000;
        let days = store.partner_activity_days(ann).await.unwrap();
        assert_eq!(days, vec![t0_day, t0_day + 31, t0_day + 32, t0_day + 40]);
        assert_eq!(
            store.partner_activity_days(bob).await.unwrap(),
            vec![t0_day + 5]
        );
    }
);

conformance!(
    first_payments_are_one_per_customer_since_a_moment,
    |store: Arc<dyn Store>| async move {
        let store = &*store;
        let (ann, _) = scenario(store).await;
        // A second payment of the same customer does not count again.
        store
            .record_payment(
                payment("in_3", "cus_a", 50_000, day(35)),
                HOLD_DAYS,
                day(35),
            )
            .await
            .unwrap();
        assert_eq!(
            store.first_payments_since(ann, day(0)).await.unwrap(),
            vec![day(0)]
        );
        assert!(
            store
                .first_payments_since(ann, day(1))
                .await
                .unwrap()
                .is_empty()
        );
        assert_eq!(
            store.new_paying_customers(ann, day(0)).await.unwrap(),
            store.first_payments_since(ann, day(0)).await.unwrap().len() as i64
        );

        // PROGRAM.md: a first payment refunded in full does not make a new paying
        // customer; partly refunded it does, and so does a later payment kept.
        credit(store, ann, "cus_c", 20, false).await;
        credit(store, ann, "cus_d", 20, false).await;
        for (invoice, customer, at) in [("in_c1", "cus_c", 36), ("in_d1", "cus_d", 36)] {
            store
                .record_payment(
                    payment(invoice, customer, 10_000, day(at)),
                    HOLD_DAYS,
                    day(at),
                )
                .await
                .unwrap();
        }
        store
            .record_refund(refund("re_c1", "in_c1", 6_000), HOLD_DAYS, day(37))
            .await
            .unwrap();
        store
            .record_refund(refund("re_c2", "in_c1", 4_000), HOLD_DAYS, day(38))
            .await
            .unwrap();
        store
            .record_refund(refund("re_d1", "in_d1", 9_999), HOLD_DAYS, day(37))
            .await
            .unwrap();
        assert_eq!(
            store.first_payments_since(ann, day(1)).await.unwrap(),
            vec![day(36)],
            "cus_d counts (refunded in part), cus_c does not (refunded in full)"
        );
        assert_eq!(store.new_paying_customers(ann, day(1)).await.unwrap(), 1);
        store
            .record_payment(
                payment("in_c2", "cus_c", 10_000, day(50)),
                HOLD_DAYS,
                day(50),
            )
            .await
            .unwrap();
        assert_eq!(
            store.first_payments_since(ann, day(1)).await.unwrap(),
            vec![day(36), day(50)]
        );
        assert_eq!(store.new_paying_customers(ann, day(1)).await.unwrap(), 2);
    }
);
