//! Staff accounts and the first-manager rule (R-ACC-2).

use std::sync::Arc;

use partnerd_domain::StaffRole;
use partnerd_store::{NewStaff, PartnerQuery, Removal, Store, StoreError};

use crate::fixtures::*;

conformance!(
    the_first_manager_takes_every_unassigned_active_partner_and_the_second_takes_none,
    |store: Arc<dyn Store>| async move {
        let ann = add_partner(&*store, "ann", at(1)).await;
        let bob = add_partner(&*store, "bob", at(2)).await;
        let gone = add_partner(&*store, "gone", at(3)).await;
        store
            .remove_partner(
                gone.id,
                Removal::Requested,
                audit("partner.remove", "partner"),
                at(4),
            )
            .await
            .unwrap();
        assert!([&ann, &bob, &gone].iter().all(|p| p.manager_id.is_none()));

        // An admin is not a manager: nobody is assigned to them.
        let admin = add_staff(&*store, "Sam", StaffRole::Admin).await;
        assert_eq!(
            json(&last_audit(&*store).await.after)["partners_assigned"],
            0
        );
        assert_eq!(store.get_partner(ann.id).await.unwrap().manager_id, None);

        let first = add_staff(&*store, "Mia", StaffRole::Manager).await;
        assert_eq!(
            store.get_partner(ann.id).await.unwrap().manager_id,
            Some(first.id)
        );
        assert_eq!(
            store.get_partner(bob.id).await.unwrap().manager_id,
            Some(first.id)
        );
        assert_eq!(
            store.get_partner(gone.id).await.unwrap().manager_id,
            None,
            "removed partners are not assigned"
        );
        let entry = last_audit(&*store).await;
        assert_eq!(entry.action, "staff.create");
        assert_eq!(
            json(&entry.after),
            serde_json::json!({ "email": "mia@vendor.test", "role": "manager", "partners_assigned": 2 })
        );

        // A partner left without a manager stays so when a second manager arrives.
        store
            .reassign_manager(bob.id, None, &[], audit("partner.reassign", "partner"))
            .await
            .unwrap();
        let second = add_staff(&*store, "Abe", StaffRole::Manager).await;
        assert_eq!(
            json(&last_audit(&*store).await.after)["partners_assigned"],
            0
        );
        assert_eq!(store.get_partner(bob.id).await.unwrap().manager_id, None);
        assert_eq!(
            store.get_partner(ann.id).await.unwrap().manager_id,
            Some(first.id)
        );
        let theirs = store
            .list_partners(&PartnerQuery {
                manager_id: Some(second.id),
                limit: 10,
                ..PartnerQuery::default()
            })
            .await
            .unwrap();
        assert_eq!(theirs.total, 0);
        assert_ne!(admin.id, second.id);
    }
);

conformance!(
    staff_emails_are_unique,
    |store: Arc<dyn Store>| async move {
        let sam = add_staff(&*store, "Sam", StaffRole::Admin).await;
        let before = totals(&*store).await;
        let again = NewStaff {
            email: email("SAM@vendor.test"),
            name: "Another Sam".into(),
            role: StaffRole::Manager,
            password_hash: "h".into(),
            created_at: at(1),
        };
        match store
            .create_staff(again, &*no_emails(), audit("staff.create", "staff:new"))
            .await
        {
            Err(StoreError::Conflict { field }) => assert_eq!(field, "email"),
            other => panic!("expected a conflict on email, got {other:?}"),
        }
        assert_eq!(totals(&*store).await, before, "nothing was written");
        assert_eq!(
            store
                .find_staff_by_email(&email("sam@vendor.test"))
                .await
                .unwrap()
                .unwrap()
                .name,
            sam.name
        );
        assert!(store.list_managers().await.unwrap().is_empty());
    }
);

conformance!(
    staff_are_found_by_id_and_email_and_listed_by_role_then_name,
    |store: Arc<dyn Store>| async move {
        let zed = add_staff(&*store, "Zed", StaffRole::Manager).await;
        let amy = add_staff(&*store, "Amy", StaffRole::Manager).await;
        let sam = add_staff(&*store, "Sam", StaffRole::Admin).await;
        let bea = add_staff(&*store, "Bea", StaffRole::Admin).await;

        let got = store.get_staff(zed.id).await.unwrap();
        assert_eq!(
            (got.email.as_str(), got.name.as_str(), got.role.as_str()),
            ("zed@vendor.test", "Zed", "manager")
        );
        assert_eq!(
            (got.role(), got.password_hash.as_str(), got.created_at),
            (StaffRole::Manager, "staff-hash-Zed", T0.millis())
        );
        assert_eq!(
            store.get_staff(sam.id).await.unwrap().role(),
            StaffRole::Admin
        );
        assert!(matches!(
            store.get_staff(zed.id + 1000).await,
            Err(StoreError::NotFound)
        ));

        assert_eq!(
            store
                .find_staff_by_email(&email("Amy@Vendor.test"))
                .await
                .unwrap()
                .unwrap()
                .id,
            amy.id
        );
        assert!(
            store
                .find_staff_by_email(&email("nobody@vendor.test"))
                .await
                .unwrap()
                .is_none()
        );

        let listed: Vec<i64> = store
            .list_staff()
            .await
            .unwrap()
            .iter()
            .map(|s| s.id)
            .collect();
        assert_eq!(
            listed,
            vec![bea.id, sam.id, amy.id, zed.id],
            "admins first, then by name"
        );
    }
);

conformance!(
    list_managers_counts_each_managers_active_partners_and_leaves_out_admins,
    |store: Arc<dyn Store>| async move {
        assert!(store.list_managers().await.unwrap().is_empty());
        let mia = add_staff(&*store, "Mia", StaffRole::Manager).await;
        add_staff(&*store, "Sam", StaffRole::Admin).await;
        let leo = add_staff(&*store, "Leo", StaffRole::Manager).await;
        // Leo, Mia, Leo, Mia, Leo.
        let mut partners = Vec::new();
        for i in 0..5 {
            partners.push(add_partner(&*store, &format!("p{i}"), at(i)).await);
        }
        store
            .remove_partner(
                partners[0].id,
                Removal::Requested,
                audit("partner.remove", "partner"),
                at(10),
            )
            .await
            .unwrap();

        let loads = store.list_managers().await.unwrap();
        let seen: Vec<_> = loads
            .iter()
            .map(|m| (m.staff_id, m.name.as_str(), m.assigned_partners))
            .collect();
        assert_eq!(
            seen,
            vec![(leo.id, "Leo", 2), (mia.id, "Mia", 2)],
            "ordered by name, removed partners not counted"
        );
    }
);

conformance!(
    the_first_manager_s_partners_get_the_emails_built_for_them_in_the_same_transaction,
    |store: Arc<dyn Store>| async move {
        // R-ACC-2: partners who waited learn who their manager is.
        let ann = add_partner(&*store, "ann", at(1)).await;
        let bob = add_partner(&*store, "bob", at(2)).await;
        let emails = |manager: Option<&partnerd_store::Staff>,
                      partner: &partnerd_store::Partner| {
            vec![
                mail(
                    partner.email.as_deref().unwrap_or_default(),
                    &format!(
                        "{} is your manager",
                        manager.map_or("nobody", |m| m.name.as_str())
                    ),
                    false,
                    at(5),
                )
                .about(partner.id),
            ]
        };
        let new = NewStaff {
            email: email("mia@vendor.test"),
            name: "Mia".into(),
            role: StaffRole::Manager,
            password_hash: "h".into(),
            created_at: at(5),
        };
        store
            .create_staff(new, &emails, audit("staff.create", "staff:new"))
            .await
            .unwrap();
        let mut sent: Vec<(String, String)> = store
            .list_outbox(10, 0)
            .await
            .unwrap()
            .items
            .into_iter()
            .map(|m| (m.to_address, m.subject))
            .collect();
        sent.sort();
        assert_eq!(
            sent,
            vec![
                (ann.email.clone().unwrap(), "Mia is your manager".to_owned()),
                (bob.email.clone().unwrap(), "Mia is your manager".to_owned()),
            ]
        );
        // The second manager takes nobody, so nobody is emailed.
        let again = NewStaff {
            email: email("abe@vendor.test"),
            name: "Abe".into(),
            role: StaffRole::Manager,
            password_hash: "h".into(),
            created_at: at(6),
        };
        store
            .create_staff(again, &emails, audit("staff.create", "staff:new"))
            .await
            .unwrap();
        assert_eq!(store.list_outbox(10, 0).await.unwrap().total, 2);
    }
);
