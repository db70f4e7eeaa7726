//! Periodic jobs: each due period runs once, however many nodes ask.

use std::sync::Arc;

use partnerd_store::Store;

use crate::fixtures::*;

const MINUTE: i64 = 60_000;
const HOUR: i64 = 60 * MINUTE;

fn payload(job: &partnerd_store::Job) -> serde_json::Value {
    serde_json::from_str(&job.payload).unwrap()
}

conformance!(a_schedule_runs_once_per_due_period, |store: Arc<
    dyn Store,
>| async move {
    store
        .ensure_schedule("digest", "send_digest", 3600, at(HOUR))
        .await
        .unwrap();

    assert_eq!(
        store.run_due_schedules(T0).await.unwrap(),
        0,
        "not due before its first run"
    );
    assert_eq!(store.run_due_schedules(at(HOUR - 1)).await.unwrap(), 0);
    assert_eq!(
        store.run_due_schedules(at(HOUR)).await.unwrap(),
        1,
        "due at next_run_at exactly"
    );
    assert_eq!(
        store.run_due_schedules(at(HOUR)).await.unwrap(),
        0,
        "the same period runs once"
    );
    assert_eq!(store.run_due_schedules(at(2 * HOUR - 1)).await.unwrap(), 0);

    let jobs = claim_all(&*store, at(HOUR)).await;
    assert_eq!(jobs.len(), 1);
    assert_eq!(
        (jobs[0].kind.as_str(), jobs[0].run_at, jobs[0].max_attempts),
        ("send_digest", at(HOUR).millis(), 3)
    );
    assert_eq!(
        payload(&jobs[0]),
        serde_json::json!({ "schedule": "digest", "due_at": at(HOUR).millis() })
    );

    assert_eq!(
        store.run_due_schedules(at(2 * HOUR)).await.unwrap(),
        1,
        "the next period"
    );
    let jobs = claim_all(&*store, at(2 * HOUR)).await;
    assert_eq!(payload(&jobs[0])["due_at"], at(2 * HOUR).millis());
});

conformance!(missed_periods_collapse_into_one_run, |store: Arc<
    dyn Store,
>| async move {
    store.ensure_schedule("tick", "tick", 60, T0).await.unwrap();
    // Down for ten and a half periods: one run, then back on the original grid.
    assert_eq!(
        store
            .run_due_schedules(at(10 * MINUTE + 30_000))
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        store
            .run_due_schedules(at(10 * MINUTE + 30_000))
            .await
            .unwrap(),
        0
    );
    assert_eq!(
        store.run_due_schedules(at(11 * MINUTE - 1)).await.unwrap(),
        0
    );
    assert_eq!(store.run_due_schedules(at(11 * MINUTE)).await.unwrap(), 1);
    let jobs = claim_all(&*store, at(11 * MINUTE)).await;
    let due: Vec<_> = jobs
        .iter()
        .map(|j| payload(j)["due_at"].as_i64().unwrap())
        .collect();
    assert_eq!(due.len(), 2);
    assert!(
        due.contains(&T0.millis()) && due.contains(&at(11 * MINUTE).millis()),
        "{due:?}"
    );
});

conformance!(
    ensuring_an_existing_schedule_keeps_its_next_run_but_takes_the_new_kind_and_interval,
    |store: Arc<dyn Store>| async move {
        store
            .ensure_schedule("report", "old_kind", 3600, at(HOUR))
            .await
            .unwrap();
        store
            .ensure_schedule("report", "new_kind", 60, T0)
            .await
            .unwrap();
        assert_eq!(
            store.run_due_schedules(T0).await.unwrap(),
            0,
            "the earlier first_run is ignored"
        );
        assert_eq!(store.run_due_schedules(at(HOUR)).await.unwrap(), 1);
        assert_eq!(claim_all(&*store, at(HOUR)).await[0].kind, "new_kind");
        assert_eq!(
            store.run_due_schedules(at(HOUR + MINUTE)).await.unwrap(),
            1,
            "the new interval applies"
        );
    }
);

conformance!(several_due_schedules_each_enqueue_one_job, |store: Arc<
    dyn Store,
>| async move {
    store.ensure_schedule("a", "kind_a", 60, T0).await.unwrap();
    store
        .ensure_schedule("b", "kind_b", 120, at(MINUTE))
        .await
        .unwrap();
    store
        .ensure_schedule("c", "kind_c", 60, at(HOUR))
        .await
        .unwrap();
    assert_eq!(store.run_due_schedules(at(MINUTE)).await.unwrap(), 2);
    let mut kinds: Vec<_> = claim_all(&*store, at(MINUTE))
        .await
        .into_iter()
        .map(|j| j.kind)
        .collect();
    kinds.sort_unstable();
    assert_eq!(kinds, vec!["kind_a", "kind_b"]);
    assert_eq!(
        store.run_due_schedules(at(2 * MINUTE)).await.unwrap(),
        1,
        "a again, b not yet"
    );
    assert_eq!(
        store.run_due_schedules(at(3 * MINUTE)).await.unwrap(),
        2,
        "a and b"
    );
});

conformance!(
    two_concurrent_schedule_runners_enqueue_each_period_once,
    |store: Arc<dyn Store>| async move {
        for name in ["one", "two", "three"] {
            store.ensure_schedule(name, name, 60, T0).await.unwrap();
        }
        for period in 0..10 {
            let now = at(period * MINUTE);
            let (a, b) = tokio::join!(store.run_due_schedules(now), store.run_due_schedules(now));
            assert_eq!(a.unwrap() + b.unwrap(), 3, "period {period}");
            let jobs = claim_all(&*store, now).await;
            assert_eq!(jobs.len(), 3, "period {period}: {jobs:?}");
        }
    }
);
