//! Sessions, password reset links and API keys.

use std::sync::Arc;

use partnerd_domain::StaffRole;
use partnerd_store::{NewApiKey, NewPasswordReset, Store, StoreError, Subject};

use crate::fixtures::*;

conformance!(
    a_session_is_found_until_just_before_it_expires_and_can_be_deleted,
    |store: Arc<dyn Store>| async move {
        let ann = add_partner(&*store, "ann", at(1)).await;
        let sam = add_staff(&*store, "Sam", StaffRole::Admin).await;
        add_session(&*store, "ann-token", Subject::Partner(ann.id), at(60_000)).await;
        add_session(&*store, "sam-token", Subject::Staff(sam.id), at(60_000)).await;

        let found = store
            .find_session("ann-token", T0)
            .await
            .unwrap()
            .expect("a live session");
        assert_eq!(found.subject, Subject::Partner(ann.id));
        assert_eq!(found.csrf_token, "csrf-ann-token");
        assert_eq!(
            (found.created_at, found.expires_at),
            (T0.millis(), at(60_000).millis())
        );
        assert_eq!(
            store
                .find_session("sam-token", T0)
                .await
                .unwrap()
                .unwrap()
                .subject,
            Subject::Staff(sam.id)
        );

        assert!(
            store
                .find_session("ann-token", at(59_999))
                .await
                .unwrap()
                .is_some(),
            "alive a millisecond before"
        );
        assert!(
            store
                .find_session("ann-token", at(60_000))
                .await
                .unwrap()
                .is_none(),
            "expired at expires_at exactly"
        );
        assert!(
            store
                .find_session("ann-token", at(60_001))
                .await
                .unwrap()
                .is_none()
        );
        assert!(
            store
                .find_session("no-such-token", T0)
                .await
                .unwrap()
                .is_none()
        );

        store.delete_session("ann-token").await.unwrap();
        assert!(store.find_session("ann-token", T0).await.unwrap().is_none());
        assert!(
            store.find_session("sam-token", T0).await.unwrap().is_some(),
            "only that session"
        );
        store.delete_session("ann-token").await.unwrap();
        store.delete_session("no-such-token").await.unwrap();
    }
);

conformance!(
    a_password_reset_link_is_found_then_used_once_and_revokes_sessions,
    |store: Arc<dyn Store>| async move {
        let ann = add_partner(&*store, "ann", at(1)).await;
        add_session(&*store, "ann-1", Subject::Partner(ann.id), at(86_400_000)).await;
        add_session(&*store, "ann-2", Subject::Partner(ann.id), at(86_400_000)).await;

        let reset = NewPasswordReset {
            token_hash: "reset-1".into(),
            subject: Subject::Partner(ann.id),
            created_at: at(10),
            expires_at: at(3_600_000),
        };
        store
            .create_password_reset(
                reset,
                mail("ann@partner.test", "Reset your password", true, at(10)),
            )
            .await
            .unwrap();
        let outbox = store.list_outbox(10, 0).await.unwrap();
        assert_eq!(outbox.total, 1);
        assert_eq!(
            (
                outbox.items[0].to_address.as_str(),
                outbox.items[0].status.as_str()
            ),
            ("ann@partner.test", "pending")
        );
        let jobs = claim_all(&*store, at(10)).await;
        assert_eq!(jobs.len(), 1);
        assert_eq!(jobs[0].kind, "send_email");

        assert_eq!(
            store.find_password_reset("reset-1", at(20)).await.unwrap(),
            Some(Subject::Partner(ann.id))
        );
        assert_eq!(
            store
                .find_password_reset("reset-1", at(3_599_999))
                .await
                .unwrap(),
            Some(Subject::Partner(ann.id))
        );
        assert_eq!(
            store
                .find_password_reset("reset-1", at(3_600_000))
                .await
                .unwrap(),
            None,
            "expired at expires_at exactly"
        );
        assert_eq!(
            store
                .find_password_reset("no-such-link", at(20))
                .await
                .unwrap(),
            None
        );
        let audits_before = totals(&*store).await.audit;

        let subject = store
            .use_password_reset(
                "reset-1",
                "reset-hash",
                at(30),
                audit("password.reset", "whoever"),
            )
            .await
            .unwrap();
        assert_eq!(subject, Subject::Partner(ann.id));
        assert_eq!(
            store
                .get_partner(ann.id)
                .await
                .unwrap()
                .password_hash
                .as_deref(),
            Some("reset-hash")
        );
        assert!(
            store.find_session("ann-1", at(30)).await.unwrap().is_none(),
            "all sessions are revoked"
        );
        assert!(store.find_session("ann-2", at(30)).await.unwrap().is_none());
        assert_eq!(
            store.find_password_reset("reset-1", at(31)).await.unwrap(),
            None,
            "a used link is not found"
        );
        let entry = last_audit(&*store).await;
        assert_eq!(totals(&*store).await.audit, audits_before + 1);
        assert_eq!(
            (entry.action.as_str(), entry.object.as_str()),
            ("password.reset", format!("partner:{}", ann.id).as_str())
        );

        let before = totals(&*store).await;
        match store
            .use_password_reset(
                "reset-1",
                "second-hash",
                at(40),
                audit("password.reset", "x"),
            )
            .await
        {
            Err(StoreError::Invalid(_)) => {}
            other => panic!("a second use must be refused, got {other:?}"),
        }
        assert_eq!(
            store
                .get_partner(ann.id)
                .await
                .unwrap()
                .password_hash
                .as_deref(),
            Some("reset-hash")
        );
        assert_eq!(totals(&*store).await, before);
        assert!(matches!(
            store
                .use_password_reset("no-such-link", "h", at(40), audit("x", "y"))
                .await,
            Err(StoreError::Invalid(_))
        ));
    }
);

conformance!(an_expired_password_reset_link_is_refused, |store: Arc<
    dyn Store,
>| async move {
    let ann = add_partner(&*store, "ann", at(1)).await;
    add_session(&*store, "ann-1", Subject::Partner(ann.id), at(86_400_000)).await;
    let reset = NewPasswordReset {
        token_hash: "reset-1".into(),
        subject: Subject::Partner(ann.id),
        created_at: at(10),
        expires_at: at(1_000),
    };
    store
        .create_password_reset(reset, mail("ann@partner.test", "Reset", false, at(10)))
        .await
        .unwrap();
    let before = totals(&*store).await;
    match store
        .use_password_reset(
            "reset-1",
            "late-hash",
            at(1_000),
            audit("password.reset", "x"),
        )
        .await
    {
        Err(StoreError::Invalid(_)) => {}
        other => panic!("an expired link must be refused, got {other:?}"),
    }
    assert_eq!(
        store
            .get_partner(ann.id)
            .await
            .unwrap()
            .password_hash
            .as_deref(),
        Some("hash-ann")
    );
    assert!(
        store
            .find_session("ann-1", at(1_000))
            .await
            .unwrap()
            .is_some(),
        "nothing was revoked"
    );
    assert_eq!(totals(&*store).await, before);
    // Used in time, the same link still works: a refused late use did not spend it.
    assert_eq!(
        store
            .use_password_reset("reset-1", "h", at(999), audit("password.reset", "x"))
            .await
            .unwrap(),
        Subject::Partner(ann.id)
    );
});

conformance!(
    using_one_reset_link_spends_the_accounts_other_links_and_staff_links_work_too,
    |store: Arc<dyn Store>| async move {
        let sam = add_staff(&*store, "Sam", StaffRole::Admin).await;
        let ann = add_partner(&*store, "ann", at(1)).await;
        add_session(&*store, "sam-1", Subject::Staff(sam.id), at(86_400_000)).await;
        add_session(&*store, "ann-1", Subject::Partner(ann.id), at(86_400_000)).await;
        for (token, subject) in [
            ("sam-a", Subject::Staff(sam.id)),
            ("sam-b", Subject::Staff(sam.id)),
            ("ann-a", Subject::Partner(ann.id)),
        ] {
            let reset = NewPasswordReset {
                token_hash: token.into(),
                subject,
                created_at: at(10),
                expires_at: at(3_600_000),
            };
            store
                .create_password_reset(reset, mail("x@vendor.test", "Reset", false, at(10)))
                .await
                .unwrap();
        }
        assert_eq!(
            store.find_password_reset("sam-b", at(20)).await.unwrap(),
            Some(Subject::Staff(sam.id))
        );

        let subject = store
            .use_password_reset("sam-a", "sam-new", at(20), audit("password.reset", "x"))
            .await
            .unwrap();
        assert_eq!(subject, Subject::Staff(sam.id));
        assert_eq!(
            store.get_staff(sam.id).await.unwrap().password_hash,
            "sam-new"
        );
        assert_eq!(
            last_audit(&*store).await.object,
            format!("staff:{}", sam.id)
        );
        assert!(store.find_session("sam-1", at(20)).await.unwrap().is_none());
        assert!(
            store.find_session("ann-1", at(20)).await.unwrap().is_some(),
            "other accounts keep their sessions"
        );

        assert_eq!(
            store.find_password_reset("sam-b", at(21)).await.unwrap(),
            None,
            "the account's other link is spent"
        );
        assert!(matches!(
            store
                .use_password_reset("sam-b", "h", at(21), audit("x", "y"))
                .await,
            Err(StoreError::Invalid(_))
        ));
        assert_eq!(
            store.find_password_reset("ann-a", at(21)).await.unwrap(),
            Some(Subject::Partner(ann.id)),
            "other accounts' links stay"
        );
    }
);

conformance!(
    two_concurrent_uses_of_one_reset_link_succeed_once,
    |store: Arc<dyn Store>| async move {
        let ann = add_partner(&*store, "ann", at(1)).await;
        let reset = NewPasswordReset {
            token_hash: "reset-1".into(),
            subject: Subject::Partner(ann.id),
            created_at: at(10),
            expires_at: at(3_600_000),
        };
        store
            .create_password_reset(reset, mail("ann@partner.test", "Reset", false, at(10)))
            .await
            .unwrap();
        let use_it = |hash: &'static str| {
            let store = store.clone();
            async move {
                store
                    .use_password_reset("reset-1", hash, at(20), audit("password.reset", "x"))
                    .await
            }
        };
        let (a, b) = tokio::join!(use_it("hash-a"), use_it("hash-b"));
        assert_eq!(
            [a.is_ok(), b.is_ok()].iter().filter(|ok| **ok).count(),
            1,
            "{a:?} / {b:?}"
        );
        let winner = if a.is_ok() { "hash-a" } else { "hash-b" };
        assert_eq!(
            store
                .get_partner(ann.id)
                .await
                .unwrap()
                .password_hash
                .as_deref(),
            Some(winner)
        );
    }
);

conformance!(
    api_keys_are_found_by_their_hash_and_logged_without_it,
    |store: Arc<dyn Store>| async move {
        let key = NewApiKey {
            name: "Billing".into(),
            key_hash: "sha256-of-key-1".into(),
            prefix: "pk_1234".into(),
            created_at: at(5),
        };
        let id = store
            .create_api_key(key, audit("api_key.create", "api_key"))
            .await
            .unwrap();
        let other = NewApiKey {
            name: "CRM".into(),
            key_hash: "sha256-of-key-2".into(),
            prefix: "pk_5678".into(),
            created_at: at(6),
        };
        let other_id = store
            .create_api_key(other, audit("api_key.create", "api_key"))
            .await
            .unwrap();
        assert_ne!(id, other_id);

        let found = store
            .find_api_key("sha256-of-key-1")
            .await
            .unwrap()
            .expect("the key");
        assert_eq!(
            (found.id, found.name.as_str(), found.prefix.as_str()),
            (id, "Billing", "pk_1234")
        );
        assert_eq!((found.created_at, found.revoked_at), (at(5).millis(), None));
        assert_eq!(
            store
                .find_api_key("sha256-of-key-2")
                .await
                .unwrap()
                .unwrap()
                .id,
            other_id
        );
        assert!(
            store.find_api_key("pk_1234").await.unwrap().is_none(),
            "the prefix is not the key"
        );
        assert!(store.find_api_key("no-such-hash").await.unwrap().is_none());

        let entry = last_audit(&*store).await;
        assert_eq!(entry.action, "api_key.create");
        assert_eq!(
            json(&entry.after),
            serde_json::json!({ "id": other_id, "name": "CRM", "prefix": "pk_5678" })
        );
        assert!(
            !entry.after.unwrap_or_default().contains("sha256"),
            "the hash is never logged"
        );
        assert_eq!(totals(&*store).await.audit, 2);
    }
);
