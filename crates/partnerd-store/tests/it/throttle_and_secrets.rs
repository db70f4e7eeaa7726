//! Throttling windows and first-writer-wins secrets.

use std::sync::Arc;

use partnerd_store::Store;

use crate::fixtures::*;

conformance!(
    throttle_hits_count_within_a_fixed_window_and_start_over_after_it,
    |store: Arc<dyn Store>| async move {
        let key = "account:abc123";
        assert_eq!(store.throttle_count(key, T0, 60).await.unwrap(), 0);
        assert_eq!(store.throttle_hit(key, T0, 60).await.unwrap(), 1);
        assert_eq!(store.throttle_hit(key, at(1_000), 60).await.unwrap(), 2);
        assert_eq!(
            store.throttle_hit(key, at(59_999), 60).await.unwrap(),
            3,
            "still the window that began at T0"
        );
        assert_eq!(store.throttle_count(key, at(59_999), 60).await.unwrap(), 3);
        assert_eq!(
            store.throttle_count(key, at(60_000), 60).await.unwrap(),
            0,
            "the window ends after exactly 60 s"
        );

        assert_eq!(
            store.throttle_hit(key, at(60_000), 60).await.unwrap(),
            1,
            "a new window begins"
        );
        assert_eq!(store.throttle_hit(key, at(60_001), 60).await.unwrap(), 2);
        assert_eq!(store.throttle_count(key, at(119_999), 60).await.unwrap(), 2);
        assert_eq!(store.throttle_count(key, at(120_000), 60).await.unwrap(), 0);

        // Keys are independent.
        assert_eq!(
            store
                .throttle_hit("network:xyz", at(60_001), 60)
                .await
                .unwrap(),
            1
        );
        assert_eq!(store.throttle_count(key, at(60_002), 60).await.unwrap(), 2);

        store.throttle_clear(key).await.unwrap();
        assert_eq!(store.throttle_count(key, at(60_002), 60).await.unwrap(), 0);
        assert_eq!(
            store
                .throttle_count("network:xyz", at(60_002), 60)
                .await
                .unwrap(),
            1,
            "only that key is cleared"
        );
        assert_eq!(store.throttle_hit(key, at(60_003), 60).await.unwrap(), 1);
        store.throttle_clear("never-hit").await.unwrap();
    }
);

conformance!(concurrent_throttle_hits_are_all_counted, |store: Arc<
    dyn Store,
>| async move {
    let hit = || {
        let store = store.clone();
        async move { store.throttle_hit("network:burst", T0, 60).await.unwrap() }
    };
    let (a, b, c, d) = tokio::join!(hit(), hit(), hit(), hit());
    let mut seen = vec![a, b, c, d];
    seen.sort_unstable();
    assert_eq!(seen, vec![1, 2, 3, 4]);
    assert_eq!(
        store.throttle_count("network:burst", T0, 60).await.unwrap(),
        4
    );
});

conformance!(
    the_first_secret_written_wins,
    |store: Arc<dyn Store>| async move {
        assert_eq!(store.secret("signing-key", "first").await.unwrap(), "first");
        assert_eq!(
            store.secret("signing-key", "second").await.unwrap(),
            "first"
        );
        assert_eq!(store.secret("ip-hash-key", "other").await.unwrap(), "other");

        let race = |candidate: &'static str| {
            let store = store.clone();
            async move { store.secret("raced", candidate).await.unwrap() }
        };
        let (a, b) = tokio::join!(race("node-a"), race("node-b"));
        assert_eq!(a, b, "both nodes end up with one secret");
        assert!(a == "node-a" || a == "node-b");
        assert_eq!(store.secret("raced", "node-c").await.unwrap(), a);
    }
);

conformance!(
    purging_removes_expired_sessions_and_stale_throttle_windows_only,
    |store: Arc<dyn Store>| async move {
        let partner = add_partner(store.as_ref(), "purge", T0).await;
        let subject = partnerd_store::Subject::Partner(partner.id);
        for (hash, expires) in [("expired", at(1_000)), ("live", at(200_000_000))] {
            store
                .create_session(partnerd_store::NewSession {
                    token_hash: hash.into(),
                    network: None,
                    subject,
                    csrf_token: "csrf".into(),
                    created_at: T0,
                    expires_at: expires,
                })
                .await
                .unwrap();
        }
        store.throttle_hit("old", T0, 60).await.unwrap();
        store
            .throttle_hit("recent", at(86_400_000), 60)
            .await
            .unwrap();

        let now = at(86_400_000 + 1);
        assert_eq!(store.purge_expired(now).await.unwrap(), 2);
        assert!(store.find_session("live", now).await.unwrap().is_some());
        assert_eq!(store.throttle_count("recent", now, 3600).await.unwrap(), 1);
        assert_eq!(
            store.purge_expired(now).await.unwrap(),
            0,
            "nothing left to purge"
        );
    }
);
