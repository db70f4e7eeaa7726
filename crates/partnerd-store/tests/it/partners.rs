//! Partners: sign-up with manager assignment (R-ACC-2), look-ups, listing,
//! profile and email changes, passwords, Terms acceptance, removal (R-ACC-3)
//! and reassignment.

use std::sync::Arc;

use partnerd_domain::{PartnerProfile, StaffRole};
use partnerd_store::{
    NewPasswordReset, PartnerQuery, PartnerUpdate, Removal, Store, StoreError, Subject,
};

use crate::fixtures::*;

conformance!(
    a_partner_signing_up_without_managers_gets_none_and_kept_emails_without_send_jobs,
    |store: Arc<dyn Store>| async move {
        let calls: Calls = Arc::default();
        let partner = store
            .create_partner(
                new_partner("ann", at(10)),
                &*welcome_emails(false, calls.clone()),
            )
            .await
            .unwrap();

        assert_eq!(partner.manager_id, None);
        assert_eq!(partner.public_id, "pub-ann");
        assert_eq!(partner.email.as_deref(), Some("ann@partner.test"));
        assert_eq!(partner.name, "Partner ann");
        assert_eq!(partner.company.as_deref(), Some("ann Ltd"));
        assert_eq!(partner.website.as_deref(), Some("https://ann.example.com/"));
        assert_eq!(partner.password_hash.as_deref(), Some("hash-ann"));
        assert_eq!(
            (partner.status.as_str(), partner.terms_version),
            ("active", 1)
        );
        assert_eq!(partner.time_zone, "UTC");
        assert_eq!(
            (partner.created_at, partner.removed_at),
            (at(10).millis(), None)
        );
        assert!(!partner.is_removed());
        assert_eq!(
            *calls.lock().unwrap(),
            vec![(None, partner.id, None)],
            "the builder is called once, with no manager"
        );

        let outbox = store.list_outbox(10, 0).await.unwrap();
        assert_eq!(outbox.total, 2);
        for email in &outbox.items {
            assert_eq!(
                (email.status.as_str(), email.attempts),
                ("kept", 0),
                "{email:?}"
            );
            assert_eq!((email.created_at, email.sent_at), (at(10).millis(), None));
        }
        let mut to: Vec<_> = outbox.items.iter().map(|e| e.to_address.as_str()).collect();
        to.sort_unstable();
        assert_eq!(to, vec!["admin@vendor.test", "ann@partner.test"]);
        assert!(
            claim_all(&*store, at(1_000_000)).await.is_empty(),
            "kept emails queue no send job"
        );

        let entry = last_audit(&*store).await;
        assert_eq!(
            (entry.action.as_str(), entry.actor.as_str()),
            ("partner.signup", "partner:pub-ann")
        );
        assert_eq!(
            json(&entry.after),
            serde_json::json!({ "partner": "pub-ann", "manager_id": null })
        );
        assert_eq!(store.list_audit(10, 0).await.unwrap().total, 1);
    }
);

conformance!(
    the_manager_with_the_fewest_active_partners_gets_the_next_one_and_ties_go_by_name,
    |store: Arc<dyn Store>| async move {
        // R-ACC-2. Names differ in case on purpose: ties compare names case-insensitively.
        let zoe = add_staff(&*store, "Zoe", StaffRole::Manager).await;
        let adam = add_staff(&*store, "adam", StaffRole::Manager).await;
        let bob = add_staff(&*store, "Bob", StaffRole::Manager).await;
        let _admin = add_staff(&*store, "Aaron Admin", StaffRole::Admin).await;

        let mut got = Vec::new();
        for (i, tag) in ["p1", "p2", "p3", "p4"].into_iter().enumerate() {
            got.push(add_partner(&*store, tag, at(i as i64)).await);
        }
        let managers: Vec<_> = got.iter().map(|p| p.manager_id).collect();
        // All at 0 → adam (name); then adam has 1 → Bob (fewest beats name); then Zoe; then all at 1 → adam.
        assert_eq!(
            managers,
            vec![Some(adam.id), Some(bob.id), Some(zoe.id), Some(adam.id)]
        );
        for p in &got {
            assert_eq!(
                store.get_partner(p.id).await.unwrap().manager_id,
                p.manager_id,
                "the assignment is stored"
            );
        }

        // Removed partners no longer count towards a manager's load.
        store
            .remove_partner(
                got[3].id,
                Removal::Requested,
                audit("partner.remove", "partner"),
                at(100),
            )
            .await
            .unwrap();
        store
            .remove_partner(
                got[0].id,
                Removal::Requested,
                audit("partner.remove", "partner"),
                at(100),
            )
            .await
            .unwrap();
        let next = add_partner(&*store, "p5", at(200)).await;
        assert_eq!(
            next.manager_id,
            Some(adam.id),
            "adam has 0 active partners now, the others 1"
        );
        let next = add_partner(&*store, "p6", at(201)).await;
        assert_eq!(
            next.manager_id,
            Some(adam.id),
            "ties at 1 go to adam by name"
        );
        let next = add_partner(&*store, "p7", at(202)).await;
        assert_eq!(next.manager_id, Some(bob.id), "adam now has 2");
    }
);

conformance!(
    the_emails_builder_sees_the_chosen_manager_and_sending_emails_queue_a_send_job_each,
    |store: Arc<dyn Store>| async move {
        let manager = add_staff(&*store, "Mia Manager", StaffRole::Manager).await;
        let calls: Calls = Arc::default();
        let partner = store
            .create_partner(
                new_partner("ann", at(10)),
                &*welcome_emails(true, calls.clone()),
            )
            .await
            .unwrap();

        assert_eq!(partner.manager_id, Some(manager.id));
        assert_eq!(
            *calls.lock().unwrap(),
            vec![(Some(manager.id), partner.id, Some(manager.id))]
        );

        let outbox = store.list_outbox(10, 0).await.unwrap();
        assert_eq!(outbox.total, 2);
        assert!(
            outbox
                .items
                .iter()
                .all(|e| e.status == "pending" && e.attempts == 0),
            "{:?}",
            outbox.items
        );
        assert!(
            outbox
                .items
                .iter()
                .any(|e| e.to_address == "mia.manager@vendor.test"
                    && e.subject == "New partner Partner ann")
        );
        assert!(
            outbox
                .items
                .iter()
                .any(|e| e.to_address == "ann@partner.test" && e.subject == "Welcome")
        );

        // Nothing is due before the emails were created; at their time, one send job per email.
        assert!(
            store
                .claim_jobs("w", at(9), 60, 10)
                .await
                .unwrap()
                .is_empty()
        );
        let jobs = store.claim_jobs("w", at(10), 60, 10).await.unwrap();
        assert_eq!(jobs.len(), 2);
        let mut job_targets: Vec<i64> = jobs
            .iter()
            .map(|job| {
                assert_eq!(
                    (job.kind.as_str(), job.run_at, job.max_attempts),
                    ("send_email", at(10).millis(), 8)
                );
                serde_json::from_str::<serde_json::Value>(&job.payload).unwrap()["outbox_id"]
                    .as_i64()
                    .unwrap()
            })
            .collect();
        job_targets.sort_unstable();
        let mut outbox_ids: Vec<i64> = outbox.items.iter().map(|e| e.id).collect();
        outbox_ids.sort_unstable();
        assert_eq!(job_targets, outbox_ids);

        let entry = last_audit(&*store).await;
        assert_eq!(
            json(&entry.after),
            serde_json::json!({ "partner": "pub-ann", "manager_id": manager.id })
        );
    }
);

conformance!(
    a_taken_email_is_a_conflict_and_writes_nothing,
    |store: Arc<dyn Store>| async move {
        add_staff(&*store, "Mia", StaffRole::Manager).await;
        store
            .create_partner(
                new_partner("ann", at(1)),
                &*welcome_emails(true, Arc::default()),
            )
            .await
            .unwrap();
        let before = totals(&*store).await;
        assert_eq!((before.partners, before.outbox), (1, 2));

        // Email::parse lower-cases, so a different spelling is the same account.
        let mut again = new_partner("other", at(2));
        again.email = email("ANN@Partner.TEST");
        let calls: Calls = Arc::default();
        match store
            .create_partner(again, &*welcome_emails(true, calls.clone()))
            .await
        {
            Err(StoreError::Conflict { field }) => assert_eq!(field, "email"),
            other => panic!("expected a conflict on email, got {other:?}"),
        }
        assert_eq!(totals(&*store).await, before, "nothing was written");
        assert!(
            store
                .find_partner_by_public_id("pub-other")
                .await
                .unwrap()
                .is_none()
        );
        assert_eq!(
            claim_all(&*store, at(1_000)).await.len(),
            2,
            "only the first sign-up's send jobs exist"
        );
    }
);

conformance!(
    a_taken_public_id_is_a_conflict_and_writes_nothing,
    |store: Arc<dyn Store>| async move {
        add_partner(&*store, "ann", at(1)).await;
        let before = totals(&*store).await;
        let mut again = new_partner("bob", at(2));
        again.public_id = "pub-ann".into();
        match store
            .create_partner(again, &*welcome_emails(false, Arc::default()))
            .await
        {
            Err(StoreError::Conflict { .. }) => {}
            other => panic!("expected a conflict, got {other:?}"),
        }
        assert_eq!(totals(&*store).await, before);
    }
);

conformance!(
    partners_are_found_by_id_email_and_public_id,
    |store: Arc<dyn Store>| async move {
        let ann = add_partner(&*store, "ann", at(1)).await;
        let bob = add_partner(&*store, "bob", at(2)).await;

        assert_eq!(
            store.get_partner(ann.id).await.unwrap().public_id,
            "pub-ann"
        );
        assert_eq!(
            store.get_partner(bob.id).await.unwrap().email.as_deref(),
            Some("bob@partner.test")
        );
        assert!(matches!(
            store.get_partner(bob.id + 1000).await,
            Err(StoreError::NotFound)
        ));

        assert_eq!(
            store
                .find_partner_by_email(&email("ann@partner.test"))
                .await
                .unwrap()
                .unwrap()
                .id,
            ann.id
        );
        assert_eq!(
            store
                .find_partner_by_email(&email("Bob@Partner.test"))
                .await
                .unwrap()
                .unwrap()
                .id,
            bob.id
        );
        assert!(
            store
                .find_partner_by_email(&email("carl@partner.test"))
                .await
                .unwrap()
                .is_none()
        );

        assert_eq!(
            store
                .find_partner_by_public_id("pub-bob")
                .await
                .unwrap()
                .unwrap()
                .id,
            bob.id
        );
        assert!(
            store
                .find_partner_by_public_id("pub-carl")
                .await
                .unwrap()
                .is_none()
        );
        assert!(
            store
                .find_partner_by_public_id("PUB-BOB")
                .await
                .unwrap()
                .is_none(),
            "public ids are exact"
        );
    }
);

conformance!(
    listing_partners_filters_by_manager_search_and_removal_and_pages,
    |store: Arc<dyn Store>| async move {
        let alice = add_staff(&*store, "Alice", StaffRole::Manager).await;
        let bea = add_staff(&*store, "Bea", StaffRole::Manager).await;
        // p0..p5 alternate Alice, Bea, …; p1 and p4 work at Widget Works.
        let mut partners = Vec::new();
        for i in 0..6 {
            let mut new = new_partner(&format!("p{i}"), at(i * 1000));
            if i == 1 || i == 4 {
                new.profile.company = Some("Widget Works".into());
            }
            partners.push(store.create_partner(new, &*no_emails()).await.unwrap());
        }
        let expected: Vec<_> = (0..6)
            .map(|i| {
                if i % 2 == 0 {
                    Some(alice.id)
                } else {
                    Some(bea.id)
                }
            })
            .collect();
        assert_eq!(
            partners.iter().map(|p| p.manager_id).collect::<Vec<_>>(),
            expected
        );
        store
            .remove_partner(
                partners[5].id,
                Removal::Requested,
                audit("partner.remove", "partner"),
                at(9000),
            )
            .await
            .unwrap();

        let list = |query: PartnerQuery| {
            let store = store.clone();
            async move { store.list_partners(&query).await.unwrap() }
        };
        let q = |f: fn(&mut PartnerQuery)| {
            let mut query = PartnerQuery {
                limit: 100,
                ..PartnerQuery::default()
            };
            f(&mut query);
            query
        };

        let page = list(q(|_| {})).await;
        assert_eq!(
            (ids(&page.items), page.total),
            (vec!["pub-p4", "pub-p3", "pub-p2", "pub-p1", "pub-p0"], 5),
            "newest first, removed hidden"
        );
        let page = list(q(|q| q.include_removed = true)).await;
        assert_eq!(
            (ids(&page.items), page.total),
            (
                vec!["pub-p5", "pub-p4", "pub-p3", "pub-p2", "pub-p1", "pub-p0"],
                6
            )
        );
        assert!(page.items[0].is_removed());

        let page = list(PartnerQuery {
            manager_id: Some(alice.id),
            limit: 100,
            ..PartnerQuery::default()
        })
        .await;
        assert_eq!(
            (ids(&page.items), page.total),
            (vec!["pub-p4", "pub-p2", "pub-p0"], 3)
        );
        let page = list(PartnerQuery {
            manager_id: Some(bea.id),
            include_removed: true,
            limit: 100,
            ..PartnerQuery::default()
        })
        .await;
        assert_eq!(
            (ids(&page.items), page.total),
            (vec!["pub-p5", "pub-p3", "pub-p1"], 3)
        );
        let page = list(PartnerQuery {
            manager_id: Some(bea.id + 1000),
            limit: 100,
            ..PartnerQuery::default()
        })
        .await;
        assert_eq!((page.items.len(), page.total), (0, 0));

        // Search: case-insensitive on company, email and name.
        let page = list(q(|q| q.search = Some("wIDGET".into()))).await;
        assert_eq!(
            (ids(&page.items), page.total),
            (vec!["pub-p4", "pub-p1"], 2)
        );
        let page = list(q(|q| q.search = Some("P3@PARTNER".into()))).await;
        assert_eq!(ids(&page.items), vec!["pub-p3"]);
        let page = list(q(|q| q.search = Some("partner P2".into()))).await;
        assert_eq!(ids(&page.items), vec!["pub-p2"]);
        let page = list(q(|q| q.search = Some("nobody".into()))).await;
        assert_eq!((page.items.len(), page.total), (0, 0));
        let page = list(PartnerQuery {
            manager_id: Some(bea.id),
            search: Some("widget".into()),
            limit: 100,
            ..PartnerQuery::default()
        })
        .await;
        assert_eq!(
            (ids(&page.items), page.total),
            (vec!["pub-p1"], 1),
            "filters combine"
        );
        let page = list(q(|q| q.search = Some("p5".into()))).await;
        assert_eq!(
            page.total, 0,
            "a removed partner's erased details no longer match"
        );

        // Paging: the total is the filtered count, not the page's.
        let page = list(PartnerQuery {
            limit: 2,
            ..PartnerQuery::default()
        })
        .await;
        assert_eq!(
            (ids(&page.items), page.total),
            (vec!["pub-p4", "pub-p3"], 5)
        );
        let page = list(PartnerQuery {
            limit: 2,
            offset: 2,
            ..PartnerQuery::default()
        })
        .await;
        assert_eq!(
            (ids(&page.items), page.total),
            (vec!["pub-p2", "pub-p1"], 5)
        );
        let page = list(PartnerQuery {
            limit: 2,
            offset: 4,
            ..PartnerQuery::default()
        })
        .await;
        assert_eq!((ids(&page.items), page.total), (vec!["pub-p0"], 5));
        let page = list(PartnerQuery {
            limit: 2,
            offset: 10,
            ..PartnerQuery::default()
        })
        .await;
        assert_eq!((page.items.len(), page.total), (0, 5));
        let page = list(PartnerQuery {
            limit: 1,
            search: Some("widget".into()),
            ..PartnerQuery::default()
        })
        .await;
        assert_eq!((ids(&page.items), page.total), (vec!["pub-p4"], 2));
    }
);

conformance!(
    partners_created_at_the_same_time_list_newest_id_first,
    |store: Arc<dyn Store>| async move {
        for tag in ["a", "b", "c"] {
            add_partner(&*store, tag, T0).await;
        }
        let page = store
            .list_partners(&PartnerQuery {
                limit: 10,
                ..PartnerQuery::default()
            })
            .await
            .unwrap();
        assert_eq!(ids(&page.items), vec!["pub-c", "pub-b", "pub-a"]);
    }
);

conformance!(
    a_profile_update_changes_the_profile_and_logs_which_fields_changed,
    |store: Arc<dyn Store>| async move {
        let ann = add_partner(&*store, "ann", at(1)).await;
        let update = PartnerUpdate {
            profile: PartnerProfile {
                name: "Ann Other".into(),
                company: None,
                website: Some("https://ann.example.org/".into()),
            },
            time_zone: "Europe/Berlin".into(),
        };
        let updated = store
            .update_partner_profile(ann.id, &update, audit("partner.update", "partner:pub-ann"))
            .await
            .unwrap();
        assert_eq!(updated.name, "Ann Other");
        assert_eq!(updated.company, None);
        assert_eq!(updated.website.as_deref(), Some("https://ann.example.org/"));
        assert_eq!(updated.time_zone, "Europe/Berlin");
        assert_eq!(
            (updated.email, updated.public_id),
            (ann.email.clone(), ann.public_id.clone()),
            "other fields stay"
        );
        let stored = store.get_partner(ann.id).await.unwrap();
        assert_eq!(
            (stored.name.as_str(), stored.time_zone.as_str()),
            ("Ann Other", "Europe/Berlin")
        );

        let entry = last_audit(&*store).await;
        assert_eq!(
            (entry.action.as_str(), entry.object.as_str()),
            ("partner.update", "partner:pub-ann")
        );
        // R-ACC-3: the append-only log names the changed fields, never their values.
        assert_eq!(entry.before, None);
        assert_eq!(
            json(&entry.after),
            serde_json::json!({ "changed": ["name", "company", "website", "time_zone"] })
        );

        assert!(matches!(
            store
                .update_partner_profile(ann.id + 1000, &update, audit("x", "y"))
                .await,
            Err(StoreError::NotFound)
        ));
        store
            .remove_partner(
                ann.id,
                Removal::Requested,
                audit("partner.remove", "partner"),
                at(2),
            )
            .await
            .unwrap();
        let before = totals(&*store).await;
        assert!(matches!(
            store
                .update_partner_profile(ann.id, &update, audit("x", "y"))
                .await,
            Err(StoreError::Invalid(_))
        ));
        assert_eq!(
            store.get_partner(ann.id).await.unwrap().name,
            "Removed partner",
            "a removed partner stays anonymised"
        );
        assert_eq!(totals(&*store).await, before);
    }
);

conformance!(
    changing_a_partner_email_moves_the_sign_in_and_refuses_a_taken_address,
    |store: Arc<dyn Store>| async move {
        let ann = add_partner(&*store, "ann", at(1)).await;
        let bob = add_partner(&*store, "bob", at(2)).await;

        let notice = mail("ann@partner.test", "Your email changed", false, at(3));
        store
            .change_partner_email(
                ann.id,
                &email("ann@new.test"),
                Some(notice),
                audit("partner.email", "partner:pub-ann"),
            )
            .await
            .unwrap();
        assert!(
            store
                .find_partner_by_email(&email("ann@partner.test"))
                .await
                .unwrap()
                .is_none()
        );
        assert_eq!(
            store
                .find_partner_by_email(&email("ann@new.test"))
                .await
                .unwrap()
                .unwrap()
                .id,
            ann.id
        );
        let outbox = store.list_outbox(10, 0).await.unwrap();
        assert_eq!(outbox.total, 1);
        assert_eq!(
            (
                outbox.items[0].to_address.as_str(),
                outbox.items[0].status.as_str()
            ),
            ("ann@partner.test", "kept")
        );
        let entry = last_audit(&*store).await;
        assert_eq!(entry.before, None);
        assert_eq!(
            json(&entry.after),
            serde_json::json!({ "changed": ["email"] })
        );

        // Without a notice nothing is queued.
        store
            .change_partner_email(
                bob.id,
                &email("bob@new.test"),
                None,
                audit("partner.email", "partner:pub-bob"),
            )
            .await
            .unwrap();
        assert_eq!(store.list_outbox(10, 0).await.unwrap().total, 1);

        let before = totals(&*store).await;
        let notice = mail("bob@new.test", "Your email changed", true, at(4));
        match store
            .change_partner_email(
                bob.id,
                &email("ANN@new.test"),
                Some(notice),
                audit("x", "y"),
            )
            .await
        {
            Err(StoreError::Conflict { field }) => assert_eq!(field, "email"),
            other => panic!("expected a conflict on email, got {other:?}"),
        }
        assert_eq!(totals(&*store).await, before, "nothing was written");
        assert_eq!(
            store.get_partner(bob.id).await.unwrap().email.as_deref(),
            Some("bob@new.test")
        );
        assert!(
            claim_all(&*store, at(1_000)).await.is_empty(),
            "the refused notice queued no job"
        );

        assert!(matches!(
            store
                .change_partner_email(bob.id + 1000, &email("x@new.test"), None, audit("x", "y"))
                .await,
            Err(StoreError::NotFound)
        ));
        store
            .remove_partner(
                bob.id,
                Removal::Requested,
                audit("partner.remove", "partner"),
                at(5),
            )
            .await
            .unwrap();
        assert!(matches!(
            store
                .change_partner_email(bob.id, &email("bob2@new.test"), None, audit("x", "y"))
                .await,
            Err(StoreError::Invalid(_))
        ));
        // The removed partner's address is free again (R-ACC-3): they may sign up anew.
        let mut again = new_partner("bob-again", at(6));
        again.email = email("bob@new.test");
        store.create_partner(again, &*no_emails()).await.unwrap();
    }
);

conformance!(
    setting_a_password_revokes_the_other_sessions_but_keeps_the_given_one,
    |store: Arc<dyn Store>| async move {
        let ann = add_partner(&*store, "ann", at(1)).await;
        let bob = add_partner(&*store, "bob", at(2)).await;
        let staff = add_staff(&*store, "Sam", StaffRole::Admin).await;
        let far = at(86_400_000);
        for token in ["ann-1", "ann-2", "ann-3"] {
            add_session(&*store, token, Subject::Partner(ann.id), far).await;
        }
        add_session(&*store, "bob-1", Subject::Partner(bob.id), far).await;
        // Staff and partner ids are separate sequences: a staff member with ann's id keeps theirs.
        add_session(&*store, "staff-same-id", Subject::Staff(ann.id), far).await;
        add_session(&*store, "staff-1", Subject::Staff(staff.id), far).await;

        store
            .set_password(
                Subject::Partner(ann.id),
                "new-hash",
                Some("ann-2"),
                audit("partner.password", "partner:pub-ann"),
            )
            .await
            .unwrap();
        assert_eq!(
            store
                .get_partner(ann.id)
                .await
                .unwrap()
                .password_hash
                .as_deref(),
            Some("new-hash")
        );
        let live = |token: &'static str| {
            let store = store.clone();
            async move { store.find_session(token, T0).await.unwrap().is_some() }
        };
        assert!(
            !live("ann-1").await && !live("ann-3").await,
            "other sessions are revoked"
        );
        assert!(
            live("ann-2").await,
            "the session that changed the password stays"
        );
        assert!(
            live("bob-1").await && live("staff-same-id").await && live("staff-1").await,
            "nobody else's"
        );
        assert_eq!(last_audit(&*store).await.action, "partner.password");

        store
            .set_password(
                Subject::Partner(ann.id),
                "newer-hash",
                None,
                audit("partner.password", "p"),
            )
            .await
            .unwrap();
        assert!(!live("ann-2").await, "without a session to keep, all go");

        store
            .set_password(
                Subject::Staff(staff.id),
                "staff-new",
                Some("staff-1"),
                audit("staff.password", "s"),
            )
            .await
            .unwrap();
        assert_eq!(
            store.get_staff(staff.id).await.unwrap().password_hash,
            "staff-new"
        );
        assert!(live("staff-1").await);

        let before = totals(&*store).await;
        assert!(matches!(
            store
                .set_password(Subject::Staff(staff.id + 1000), "h", None, audit("x", "y"))
                .await,
            Err(StoreError::NotFound)
        ));
        assert!(matches!(
            store
                .set_password(Subject::Partner(bob.id + 1000), "h", None, audit("x", "y"))
                .await,
            Err(StoreError::NotFound)
        ));
        store
            .remove_partner(
                bob.id,
                Removal::Requested,
                audit("partner.remove", "partner"),
                at(3),
            )
            .await
            .unwrap();
        let before_removed = totals(&*store).await;
        assert_eq!(before_removed.audit, before.audit + 1);
        assert!(matches!(
            store
                .set_password(Subject::Partner(bob.id), "h", None, audit("x", "y"))
                .await,
            Err(StoreError::NotFound)
        ));
        assert_eq!(
            store.get_partner(bob.id).await.unwrap().password_hash,
            None,
            "a removed partner gets no password"
        );
        assert_eq!(totals(&*store).await, before_removed);
    }
);

conformance!(
    accepting_terms_records_the_accepted_version,
    |store: Arc<dyn Store>| async move {
        let ann = add_partner(&*store, "ann", at(1)).await;
        assert_eq!(ann.terms_version, 1);
        store
            .accept_terms(ann.id, 3, audit("terms.accept", "partner:pub-ann"))
            .await
            .unwrap();
        assert_eq!(store.get_partner(ann.id).await.unwrap().terms_version, 3);
        let entry = last_audit(&*store).await;
        assert_eq!(
            (entry.action.as_str(), entry.object.as_str()),
            ("terms.accept", "partner:pub-ann")
        );
        assert_eq!(
            json(&entry.after),
            serde_json::json!({ "terms_version": 3 })
        );

        assert!(matches!(
            store.accept_terms(ann.id + 1000, 3, audit("x", "y")).await,
            Err(StoreError::NotFound)
        ));
        store
            .remove_partner(
                ann.id,
                Removal::Requested,
                audit("partner.remove", "partner"),
                at(2),
            )
            .await
            .unwrap();
        let before = totals(&*store).await;
        assert!(matches!(
            store.accept_terms(ann.id, 4, audit("x", "y")).await,
            Err(StoreError::NotFound)
        ));
        assert_eq!(totals(&*store).await, before);
    }
);

conformance!(
    removing_a_partner_erases_personal_data_revokes_access_and_is_logged_once,
    |store: Arc<dyn Store>| async move {
        // R-ACC-3.
        let manager = add_staff(&*store, "Mia", StaffRole::Manager).await;
        let ann = add_partner(&*store, "ann", at(1)).await;
        let bob = add_partner(&*store, "bob", at(2)).await;
        add_session(&*store, "ann-1", Subject::Partner(ann.id), at(86_400_000)).await;
        add_session(&*store, "ann-2", Subject::Partner(ann.id), at(86_400_000)).await;
        add_session(&*store, "bob-1", Subject::Partner(bob.id), at(86_400_000)).await;
        let reset = NewPasswordReset {
            token_hash: "ann-reset".into(),
            subject: Subject::Partner(ann.id),
            created_at: at(3),
            expires_at: at(3_600_000),
        };
        store
            .create_password_reset(
                reset,
                mail("ann@partner.test", "Reset", false, at(3)).about(ann.id),
            )
            .await
            .unwrap();
        let notice = mail("ann@partner.test", "Pending notice", true, at(4)).about(ann.id);
        let bob_notice = mail("bob@partner.test", "Bob's notice", true, at(4)).about(bob.id);
        store
            .change_partner_email(
                ann.id,
                &email("ann@partner.test"),
                Some(notice),
                audit("x", "y"),
            )
            .await
            .unwrap();
        store
            .change_partner_email(
                bob.id,
                &email("bob@partner.test"),
                Some(bob_notice),
                audit("x", "y"),
            )
            .await
            .unwrap();

        let removal = Removal::Violation {
            reason: "Spam on social media (Terms §4)".into(),
        };
        store
            .remove_partner(
                ann.id,
                removal,
                audit("partner.remove", "partner:pub-ann"),
                at(50),
            )
            .await
            .unwrap();

        let gone = store.get_partner(ann.id).await.unwrap();
        assert!(gone.is_removed());
        assert_eq!(gone.status, "removed");
        assert_eq!(gone.email, None);
        assert!(
            !gone.name.contains("ann"),
            "the name is anonymised: {:?}",
            gone.name
        );
        assert_eq!(
            (gone.company, gone.website, gone.password_hash),
            (None, None, None)
        );
        assert_eq!(gone.removed_at, Some(at(50).millis()));
        assert_eq!(gone.removal_kind.as_deref(), Some("violation"));
        assert_eq!(
            gone.removal_reason.as_deref(),
            Some("Spam on social media (Terms §4)")
        );
        assert_eq!(
            (gone.public_id.as_str(), gone.manager_id, gone.created_at),
            ("pub-ann", Some(manager.id), at(1).millis()),
            "the row stays for the money records"
        );

        assert!(
            store
                .find_partner_by_email(&email("ann@partner.test"))
                .await
                .unwrap()
                .is_none()
        );
        assert!(store.find_session("ann-1", T0).await.unwrap().is_none());
        assert!(store.find_session("ann-2", T0).await.unwrap().is_none());
        assert!(
            store.find_session("bob-1", T0).await.unwrap().is_some(),
            "other partners keep their sessions"
        );
        assert!(
            store
                .find_password_reset("ann-reset", at(4))
                .await
                .unwrap()
                .is_none(),
            "reset links are gone"
        );
        assert!(matches!(
            store
                .use_password_reset("ann-reset", "h", at(4), audit("x", "y"))
                .await,
            Err(StoreError::Invalid(_))
        ));
        assert_eq!(
            store.list_managers().await.unwrap()[0].assigned_partners,
            1,
            "only bob counts now"
        );

        // Emails about ann are erased, and the unsent one is withdrawn; bob's stay.
        let outbox = store.list_outbox(10, 0).await.unwrap().items;
        for mail in &outbox {
            let about_ann = mail.to_address == "erased";
            assert!(
                !mail.body.contains("ann@") && !mail.to_address.contains("ann@"),
                "{mail:?}"
            );
            if about_ann && mail.subject == "(erased)" && mail.attempts == 0 {
                assert_ne!(mail.status, "pending", "an erased email is never sent");
            }
        }
        assert_eq!(
            outbox.iter().filter(|m| m.to_address == "erased").count(),
            2
        );
        assert!(
            outbox
                .iter()
                .any(|m| m.to_address == "bob@partner.test" && m.status == "pending")
        );

        let entry = last_audit(&*store).await;
        assert_eq!(
            (entry.action.as_str(), entry.object.as_str(), entry.at),
            ("partner.remove", "partner:pub-ann", T0.millis())
        );
        assert_eq!(
            json(&entry.before),
            serde_json::json!({ "status": "active" })
        );
        assert_eq!(
            json(&entry.after),
            serde_json::json!({ "status": "removed", "kind": "violation", "reason": "Spam on social media (Terms §4)" })
        );

        let before = totals(&*store).await;
        assert!(matches!(
            store
                .remove_partner(
                    ann.id,
                    Removal::Requested,
                    audit("partner.remove", "again"),
                    at(60)
                )
                .await,
            Err(StoreError::NotFound)
        ));
        assert!(matches!(
            store
                .remove_partner(bob.id + 1000, Removal::Requested, audit("x", "y"), at(60))
                .await,
            Err(StoreError::NotFound)
        ));
        assert_eq!(
            totals(&*store).await,
            before,
            "a refused removal logs nothing"
        );
        assert_eq!(
            store.get_partner(ann.id).await.unwrap().removed_at,
            Some(at(50).millis()),
            "the first removal stands"
        );

        // A removal the partner asked for carries no reason.
        store
            .remove_partner(
                bob.id,
                Removal::Requested,
                audit("partner.remove", "partner:pub-bob"),
                at(70),
            )
            .await
            .unwrap();
        let bob = store.get_partner(bob.id).await.unwrap();
        assert_eq!(
            (bob.removal_kind.as_deref(), bob.removal_reason.as_deref()),
            (Some("requested"), None)
        );
        assert_eq!(
            json(&last_audit(&*store).await.after),
            serde_json::json!({ "status": "removed", "kind": "requested", "reason": null })
        );
    }
);

conformance!(
    reassigning_a_manager_moves_the_partner_and_refuses_anyone_who_is_not_a_manager,
    |store: Arc<dyn Store>| async move {
        let first = add_staff(&*store, "Alice", StaffRole::Manager).await;
        let second = add_staff(&*store, "Bea", StaffRole::Manager).await;
        let admin = add_staff(&*store, "Sam", StaffRole::Admin).await;
        let ann = add_partner(&*store, "ann", at(1)).await;
        assert_eq!(ann.manager_id, Some(first.id));

        let emails = [
            mail("bea@vendor.test", "You have a new partner", true, at(5)),
            mail("ann@partner.test", "Your manager", false, at(5)),
        ];
        store
            .reassign_manager(
                ann.id,
                Some(second.id),
                &emails,
                audit("partner.reassign", "partner:pub-ann"),
            )
            .await
            .unwrap();
        assert_eq!(
            store.get_partner(ann.id).await.unwrap().manager_id,
            Some(second.id)
        );
        let outbox = store.list_outbox(10, 0).await.unwrap();
        assert_eq!(outbox.total, 2);
        let mut statuses: Vec<_> = outbox
            .items
            .iter()
            .map(|e| (e.to_address.as_str(), e.status.as_str()))
            .collect();
        statuses.sort_unstable();
        assert_eq!(
            statuses,
            vec![("ann@partner.test", "kept"), ("bea@vendor.test", "pending")]
        );
        let entry = last_audit(&*store).await;
        assert_eq!(
            json(&entry.before),
            serde_json::json!({ "manager_id": first.id })
        );
        assert_eq!(
            json(&entry.after),
            serde_json::json!({ "manager_id": second.id })
        );
        let loads = store.list_managers().await.unwrap();
        assert_eq!(
            loads
                .iter()
                .map(|m| (m.staff_id, m.assigned_partners))
                .collect::<Vec<_>>(),
            vec![(first.id, 0), (second.id, 1)]
        );

        let before = totals(&*store).await;
        for not_a_manager in [admin.id, admin.id + 1000] {
            match store
                .reassign_manager(ann.id, Some(not_a_manager), &emails, audit("x", "y"))
                .await
            {
                Err(StoreError::Invalid(_)) => {}
                other => panic!("expected Invalid for staff {not_a_manager}, got {other:?}"),
            }
        }
        assert_eq!(
            totals(&*store).await,
            before,
            "a refused reassignment writes nothing"
        );
        assert_eq!(
            store.get_partner(ann.id).await.unwrap().manager_id,
            Some(second.id)
        );

        store
            .reassign_manager(
                ann.id,
                None,
                &[],
                audit("partner.reassign", "partner:pub-ann"),
            )
            .await
            .unwrap();
        assert_eq!(store.get_partner(ann.id).await.unwrap().manager_id, None);
        assert_eq!(
            json(&last_audit(&*store).await.after),
            serde_json::json!({ "manager_id": null })
        );

        assert!(matches!(
            store
                .reassign_manager(ann.id + 1000, Some(first.id), &[], audit("x", "y"))
                .await,
            Err(StoreError::NotFound)
        ));
        store
            .remove_partner(
                ann.id,
                Removal::Requested,
                audit("partner.remove", "partner"),
                at(6),
            )
            .await
            .unwrap();
        assert!(matches!(
            store
                .reassign_manager(ann.id, Some(first.id), &[], audit("x", "y"))
                .await,
            Err(StoreError::Invalid(_))
        ));
    }
);

conformance!(
    concurrent_sign_ups_with_one_address_create_exactly_one_partner,
    |store: Arc<dyn Store>| async move {
        let attempt = |tag: &'static str| {
            let store = store.clone();
            async move {
                let mut new = new_partner(tag, at(1));
                new.email = email("same@partner.test");
                store
                    .create_partner(new, &*welcome_emails(false, Arc::default()))
                    .await
            }
        };
        let (a, b) = tokio::join!(attempt("a"), attempt("b"));
        let outcomes = [a.is_ok(), b.is_ok()];
        assert_eq!(
            outcomes.iter().filter(|ok| **ok).count(),
            1,
            "exactly one sign-up wins: {a:?} / {b:?}"
        );
        let loser = if a.is_ok() { b } else { a };
        assert!(
            matches!(loser, Err(StoreError::Conflict { field: "email" })),
            "{loser:?}"
        );
        let t = totals(&*store).await;
        assert_eq!((t.partners, t.outbox, t.audit), (1, 2, 1));
    }
);

conformance!(
    searching_partners_ignores_case_beyond_ascii,
    sqlite_known_bug =
        "shared.rs list_partners: SQLite's lower() folds ASCII only, so 'ökotech' misses 'Ökotech'",
    |store: Arc<dyn Store>| async move {
        let mut new = new_partner("oeko", at(1));
        new.profile.name = "Ökotech Partner".into();
        new.profile.company = Some("ÄRGER GmbH".into());
        store.create_partner(new, &*no_emails()).await.unwrap();
        for search in ["ökotech", "ÖKOTECH", "ärger", "Ärger gmbh"] {
            let page = store
                .list_partners(&PartnerQuery {
                    search: Some(search.into()),
                    limit: 10,
                    ..PartnerQuery::default()
                })
                .await
                .unwrap();
            assert_eq!(ids(&page.items), vec!["pub-oeko"], "search {search:?}");
        }
    }
);

conformance!(
    concurrent_sign_ups_are_spread_over_the_managers_as_if_one_after_the_other,
    |store: Arc<dyn Store>| async move {
        // R-ACC-2: with loads equal before each round, two sign-ups at once must go
        // to different managers, exactly as two sign-ups one after the other do.
        let alice = add_staff(&*store, "Alice", StaffRole::Manager).await;
        let bea = add_staff(&*store, "Bea", StaffRole::Manager).await;
        for round in 0..10 {
            let (x, y) = (format!("x{round}"), format!("y{round}"));
            let (x, y) = tokio::join!(
                add_partner(&*store, &x, at(round)),
                add_partner(&*store, &y, at(round))
            );
            let mut got = [x.manager_id, y.manager_id];
            got.sort_unstable();
            assert_eq!(got, [Some(alice.id), Some(bea.id)], "round {round}");
        }
    }
);

conformance!(
    searching_partners_treats_a_backslash_as_an_ordinary_character,
    |store: Arc<dyn Store>| async move {
        let mut new = new_partner("slash", at(1));
        new.profile.company = Some(r"Smith\Jones".into());
        store.create_partner(new, &*no_emails()).await.unwrap();
        let page = store
            .list_partners(&PartnerQuery {
                search: Some(r"h\j".into()),
                limit: 10,
                ..PartnerQuery::default()
            })
            .await
            .unwrap();
        assert_eq!(ids(&page.items), vec!["pub-slash"]);
    }
);
