//! Behaviour only PostgreSQL has: several processes on one database.

use std::sync::Arc;

use partnerd_store::Store;

use crate::fixtures::*;
use crate::harness::{POSTGRES_URL_VAR, TestDatabase};
use crate::jobs::{assert_claimed_exactly_once, claim_loop, job};

async fn two_processes(test: &str) -> Option<(TestDatabase, Arc<dyn Store>, Arc<dyn Store>)> {
    let Some(db) = TestDatabase::create().await else {
        println!("{test}: skipped, {POSTGRES_URL_VAR} is not set");
        return None;
    };
    let first: Arc<dyn Store> = Arc::new(db.store().await);
    let second: Arc<dyn Store> = Arc::new(db.store().await);
    Some((db, first, second))
}

/// Runs `body` and drops the database whatever happens.
async fn with_database<Fut>(db: TestDatabase, body: Fut)
where
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let outcome = tokio::spawn(body).await;
    db.drop_best_effort().await;
    if let Err(err) = outcome {
        match err.try_into_panic() {
            Ok(panic) => std::panic::resume_unwind(panic),
            Err(err) => panic!("test task failed: {err}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn workers_in_two_processes_claim_each_due_job_exactly_once() {
    let Some((db, first, second)) =
        two_processes("workers_in_two_processes_claim_each_due_job_exactly_once").await
    else {
        return;
    };
    with_database(db, async move {
        let mut all = Vec::new();
        for i in 0..200 {
            all.push(
                first
                    .enqueue_job(job(&format!("bulk-{i}"), at(i), 3))
                    .await
                    .unwrap(),
            );
        }
        let now = at(10_000);
        // Two workers in each process, four in all, racing on FOR UPDATE SKIP LOCKED.
        let (a, b, c, d) = tokio::join!(
            claim_loop(first.clone(), "p1-a".into(), now, 3),
            claim_loop(first.clone(), "p1-b".into(), now, 3),
            claim_loop(second.clone(), "p2-a".into(), now, 3),
            claim_loop(second.clone(), "p2-b".into(), now, 3),
        );
        assert!(
            [a.1, b.1, c.1, d.1].iter().all(|largest| *largest <= 3),
            "the limit holds"
        );
        assert_claimed_exactly_once(&all, &[a.0, b.0, c.0, d.0]);
        assert!(
            second
                .claim_jobs("late", at(1_000_000), 60, 500)
                .await
                .unwrap()
                .is_empty()
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn schedule_runners_in_two_processes_enqueue_each_period_once() {
    let Some((db, first, second)) =
        two_processes("schedule_runners_in_two_processes_enqueue_each_period_once").await
    else {
        return;
    };
    with_database(db, async move {
        for i in 0..5 {
            first
                .ensure_schedule(&format!("s{i}"), "tick", 60, T0)
                .await
                .unwrap();
        }
        for period in 0..20 {
            let now = at(period * 60_000);
            let (a, b) = tokio::join!(first.run_due_schedules(now), second.run_due_schedules(now));
            assert_eq!(a.unwrap() + b.unwrap(), 5, "period {period}");
            assert_eq!(claim_all(&*second, now).await.len(), 5, "period {period}");
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sign_ups_in_two_processes_with_one_address_create_one_partner() {
    let Some((db, first, second)) =
        two_processes("sign_ups_in_two_processes_with_one_address_create_one_partner").await
    else {
        return;
    };
    with_database(db, async move {
        let sign_up = |store: Arc<dyn Store>, tag: &'static str| async move {
            let mut new = new_partner(tag, at(1));
            new.email = email("same@partner.test");
            store.create_partner(new, &*no_emails()).await
        };
        let (a, b) = tokio::join!(sign_up(first.clone(), "a"), sign_up(second.clone(), "b"));
        assert_eq!(
            [a.is_ok(), b.is_ok()].iter().filter(|ok| **ok).count(),
            1,
            "{a:?} / {b:?}"
        );
        assert_eq!(first.list_partners(&everyone()).await.unwrap().total, 1);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_payment_whose_invoice_row_another_process_creates_meanwhile_is_booked_once() {
    use sqlx::Connection;

    use crate::money::{HOLD_DAYS, assert_sound, balances, credited_partner, day, payment};

    let Some((db, first, _second)) = two_processes(
        "a_payment_whose_invoice_row_another_process_creates_meanwhile_is_booked_once",
    )
    .await
    else {
        return;
    };
    let url = db.url.clone();
    with_database(db, async move {
        let partner = credited_partner(&*first, "ann", "cus_race", 20).await;
        // Another process's transaction creates the invoice's row (a refund
        // that arrived first does) and has not committed yet when the payment
        // looks for the row: the payment plans on a missing row, and its insert
        // waits for the other transaction, then finds the row taken.
        let mut other = sqlx::PgConnection::connect(&url).await.unwrap();
        let mut tx = other.begin().await.unwrap();
        sqlx::query("insert into invoices (id, created_at, updated_at) values ('in_race', 0, 0)")
            .execute(&mut *tx)
            .await
            .unwrap();
        let store = first.clone();
        let booking = tokio::spawn(async move {
            store
                .record_payment(
                    payment("in_race", "cus_race", 10_000, day(1)),
                    HOLD_DAYS,
                    day(1),
                )
                .await
        });
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        assert!(
            !booking.is_finished(),
            "the payment waits for the other transaction"
        );
        tx.commit().await.unwrap();
        let (answer, replayed) = booking.await.unwrap().expect("booked on the existing row");
        assert!(!replayed);
        assert_eq!((answer.commission, answer.booked), (2_000, 2_000));
        assert_eq!(balances(&*first, partner).await.held, 2_000);
        // The row holds the payment (I4 would not hold otherwise).
        assert_sound(&*first).await;
    })
    .await;
}
