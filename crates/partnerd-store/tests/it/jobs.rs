//! Durable jobs: enqueue, claim with a lease, finish, retry, and concurrent workers.

use std::collections::BTreeSet;
use std::sync::Arc;

use partnerd_domain::Timestamp;
use partnerd_store::{Job, JobOutcome, NewJob, Store, StoreError};

use crate::fixtures::*;

pub fn job(kind: &str, run_at: Timestamp, max_attempts: i64) -> NewJob {
    NewJob {
        kind: kind.into(),
        payload: serde_json::json!({ "kind": kind, "n": [1, 2, 3] }),
        run_at,
        max_attempts,
    }
}

fn failed(error: &str, retry_at: Timestamp) -> JobOutcome {
    JobOutcome::Failed {
        error: error.into(),
        retry_at,
    }
}

/// Claims in batches of `limit` at `now` until nothing is left, finishing each job;
/// returns the ids claimed and the largest batch.
pub async fn claim_loop(
    store: Arc<dyn Store>,
    worker: String,
    now: Timestamp,
    limit: i64,
) -> (Vec<i64>, usize) {
    let mut claimed = Vec::new();
    let mut largest = 0;
    loop {
        let batch = store.claim_jobs(&worker, now, 300, limit).await.unwrap();
        if batch.is_empty() {
            break;
        }
        largest = largest.max(batch.len());
        for job in batch {
            assert_eq!(job.locked_by.as_deref(), Some(worker.as_str()));
            assert_eq!(
                (job.status.as_str(), job.attempts),
                ("running", 1),
                "claimed twice: {job:?}"
            );
            claimed.push(job.id);
            store
                .finish_job(job.id, &worker, JobOutcome::Done, now)
                .await
                .unwrap();
        }
        tokio::task::yield_now().await;
    }
    (claimed, largest)
}

/// Every claimed id is one of `all`, none is claimed twice, and none is missing.
pub fn assert_claimed_exactly_once(all: &[i64], claims: &[Vec<i64>]) {
    let mut seen = BTreeSet::new();
    for id in claims.iter().flatten() {
        assert!(seen.insert(*id), "job {id} was claimed twice");
    }
    assert_eq!(
        seen,
        all.iter().copied().collect::<BTreeSet<_>>(),
        "every job is claimed"
    );
}

conformance!(a_job_is_claimed_once_due_and_finishes_done, |store: Arc<
    dyn Store,
>| async move {
    let id = store
        .enqueue_job(job("recompute", at(10_000), 3))
        .await
        .unwrap();
    let queued = store.get_job(id).await.unwrap();
    assert_eq!(
        (queued.kind.as_str(), queued.status.as_str(), queued.run_at),
        ("recompute", "queued", at(10_000).millis())
    );
    assert_eq!(
        (
            queued.attempts,
            queued.max_attempts,
            queued.locked_by,
            queued.last_error
        ),
        (0, 3, None, None)
    );
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&queued.payload).unwrap(),
        serde_json::json!({ "kind": "recompute", "n": [1, 2, 3] })
    );
    assert!(matches!(
        store.get_job(id + 1000).await,
        Err(StoreError::NotFound)
    ));

    assert!(
        store
            .claim_jobs("w1", at(9_999), 30, 10)
            .await
            .unwrap()
            .is_empty(),
        "not due yet"
    );
    let claimed = store.claim_jobs("w1", at(10_000), 30, 10).await.unwrap();
    assert_eq!(claimed.len(), 1, "due at run_at exactly");
    let running = &claimed[0];
    assert_eq!(
        (running.id, running.status.as_str(), running.attempts),
        (id, "running", 1)
    );
    assert_eq!(running.locked_by.as_deref(), Some("w1"));
    assert_eq!(running.payload, queued.payload);
    assert_eq!(store.get_job(id).await.unwrap().status, "running");
    assert!(
        store
            .claim_jobs("w2", at(10_000), 30, 10)
            .await
            .unwrap()
            .is_empty(),
        "a held job is not claimed again"
    );

    store
        .finish_job(id, "w1", JobOutcome::Done, at(11_000))
        .await
        .unwrap();
    let done = store.get_job(id).await.unwrap();
    assert_eq!(
        (done.status.as_str(), done.attempts, done.locked_by),
        ("done", 1, None)
    );
    assert!(
        store
            .claim_jobs("w2", at(1_000_000), 30, 10)
            .await
            .unwrap()
            .is_empty(),
        "a done job never runs again"
    );
    assert!(
        matches!(
            store
                .finish_job(id, "w1", JobOutcome::Done, at(12_000))
                .await,
            Err(StoreError::Invalid(_))
        ),
        "finished twice"
    );
    assert!(matches!(
        store
            .finish_job(id + 1000, "w1", JobOutcome::Done, at(12_000))
            .await,
        Err(StoreError::Invalid(_))
    ));
});

conformance!(
    a_failed_job_is_retried_at_retry_at_until_its_attempts_are_used_up,
    |store: Arc<dyn Store>| async move {
        let id = store.enqueue_job(job("flaky", T0, 2)).await.unwrap();

        let first = store.claim_jobs("w1", T0, 30, 10).await.unwrap();
        assert_eq!(first.len(), 1);
        store
            .finish_job(id, "w1", failed("timeout", at(60_000)), at(1_000))
            .await
            .unwrap();
        let queued = store.get_job(id).await.unwrap();
        assert_eq!(
            (queued.status.as_str(), queued.attempts, queued.run_at),
            ("queued", 1, at(60_000).millis())
        );
        assert_eq!(
            (queued.locked_by, queued.last_error.as_deref()),
            (None, Some("timeout"))
        );

        assert!(
            store
                .claim_jobs("w2", at(59_999), 30, 10)
                .await
                .unwrap()
                .is_empty(),
            "not before retry_at"
        );
        let second = store.claim_jobs("w2", at(60_000), 30, 10).await.unwrap();
        assert_eq!(
            (
                second.len(),
                second[0].attempts,
                second[0].last_error.as_deref()
            ),
            (1, 2, Some("timeout"))
        );
        store
            .finish_job(id, "w2", failed("timeout again", at(120_000)), at(61_000))
            .await
            .unwrap();
        let dead = store.get_job(id).await.unwrap();
        assert_eq!(
            (
                dead.status.as_str(),
                dead.attempts,
                dead.last_error.as_deref()
            ),
            ("failed", 2, Some("timeout again"))
        );
        assert_eq!(dead.locked_by, None);
        assert!(
            store
                .claim_jobs("w3", at(10_000_000), 30, 10)
                .await
                .unwrap()
                .is_empty(),
            "a failed job is not retried"
        );
    }
);

conformance!(
    a_job_with_one_attempt_fails_for_good_on_its_first_failure,
    |store: Arc<dyn Store>| async move {
        let id = store.enqueue_job(job("once", T0, 1)).await.unwrap();
        store.claim_jobs("w1", T0, 30, 10).await.unwrap();
        store
            .finish_job(id, "w1", failed("boom", at(1_000)), at(500))
            .await
            .unwrap();
        assert_eq!(store.get_job(id).await.unwrap().status, "failed");
        assert!(
            store
                .claim_jobs("w1", at(1_000_000), 30, 10)
                .await
                .unwrap()
                .is_empty()
        );
    }
);

conformance!(
    a_job_whose_lease_ran_out_is_claimed_again_and_its_old_worker_can_no_longer_finish_it,
    |store: Arc<dyn Store>| async move {
        let id = store.enqueue_job(job("slow", T0, 5)).await.unwrap();
        assert_eq!(store.claim_jobs("w1", T0, 30, 10).await.unwrap().len(), 1);

        assert!(
            store
                .claim_jobs("w2", at(30_000), 30, 10)
                .await
                .unwrap()
                .is_empty(),
            "the lease holds until its last millisecond"
        );
        let taken = store.claim_jobs("w2", at(30_001), 30, 10).await.unwrap();
        assert_eq!(taken.len(), 1, "an expired lease is claimed again");
        assert_eq!(
            (
                taken[0].id,
                taken[0].locked_by.as_deref(),
                taken[0].attempts
            ),
            (id, Some("w2"), 2)
        );

        for outcome in [JobOutcome::Done, failed("late", at(40_000))] {
            match store.finish_job(id, "w1", outcome, at(31_000)).await {
                Err(StoreError::Invalid(_)) => {}
                other => panic!("the worker that lost the lease must be refused, got {other:?}"),
            }
        }
        let still = store.get_job(id).await.unwrap();
        assert_eq!(
            (still.status.as_str(), still.locked_by.as_deref()),
            ("running", Some("w2")),
            "w2 keeps it"
        );
        store
            .finish_job(id, "w2", JobOutcome::Done, at(32_000))
            .await
            .unwrap();
        assert_eq!(store.get_job(id).await.unwrap().status, "done");
    }
);

conformance!(
    claiming_respects_the_limit_and_takes_the_earliest_due_jobs_first,
    |store: Arc<dyn Store>| async move {
        // Enqueued out of order; one is not due yet.
        let mut by_time = Vec::new();
        for ms in [400, 100, 300, 200, 500] {
            by_time.push((
                ms,
                store
                    .enqueue_job(job(&format!("j{ms}"), at(ms), 3))
                    .await
                    .unwrap(),
            ));
        }
        let future = store
            .enqueue_job(job("later", at(10_000), 3))
            .await
            .unwrap();
        by_time.sort_unstable();
        let expected: Vec<i64> = by_time.iter().map(|(_, id)| *id).collect();

        let first: Vec<i64> = store
            .claim_jobs("w", at(1_000), 60, 2)
            .await
            .unwrap()
            .iter()
            .map(|j| j.id)
            .collect();
        let mut sorted_first = first.clone();
        sorted_first.sort_unstable_by_key(|id| expected.iter().position(|e| e == id));
        assert_eq!(sorted_first, expected[..2].to_vec(), "the two earliest");
        let second: Vec<Job> = store.claim_jobs("w", at(1_000), 60, 10).await.unwrap();
        assert_eq!(second.len(), 3, "the rest, within the limit: {second:?}");
        assert!(
            !second.iter().any(|j| j.id == future),
            "a job not due yet is left"
        );
        let mut all: Vec<i64> = first
            .into_iter()
            .chain(second.iter().map(|j| j.id))
            .collect();
        all.sort_unstable();
        let mut expected_sorted = expected.clone();
        expected_sorted.sort_unstable();
        assert_eq!(all, expected_sorted);
        assert!(
            store
                .claim_jobs("w", at(1_000), 60, 10)
                .await
                .unwrap()
                .is_empty()
        );
        assert_eq!(
            store
                .claim_jobs("w", at(10_000), 60, 10)
                .await
                .unwrap()
                .len(),
            1
        );
    }
);

conformance!(
    two_concurrent_workers_claim_each_of_fifty_due_jobs_exactly_once,
    |store: Arc<dyn Store>| async move {
        let mut all = Vec::new();
        for i in 0..50 {
            all.push(
                store
                    .enqueue_job(job(&format!("bulk-{i}"), at(i), 3))
                    .await
                    .unwrap(),
            );
        }
        let now = at(1_000);
        let ((a, largest_a), (b, largest_b)) = tokio::join!(
            claim_loop(store.clone(), "worker-a".into(), now, 3),
            claim_loop(store.clone(), "worker-b".into(), now, 3)
        );
        assert!(
            largest_a <= 3 && largest_b <= 3,
            "the limit holds under concurrency"
        );
        assert_claimed_exactly_once(&all, &[a, b]);
        for id in &all {
            assert_eq!(store.get_job(*id).await.unwrap().status, "done");
        }
        assert!(
            store
                .claim_jobs("late", at(1_000_000), 60, 100)
                .await
                .unwrap()
                .is_empty()
        );
    }
);
