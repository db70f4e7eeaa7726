//! Program settings and the versioned Terms (R-ACC-5).

use std::collections::BTreeMap;
use std::sync::Arc;

use partnerd_domain::ProgramSettings;
use partnerd_store::{NewAudit, Store};

use crate::fixtures::*;

conformance!(
    settings_are_the_defaults_until_saved_and_then_round_trip_with_an_audit_entry,
    |store: Arc<dyn Store>| async move {
        assert_eq!(
            store.load_settings().await.unwrap(),
            ProgramSettings::default()
        );
        assert_eq!(store.list_audit(10, 0).await.unwrap().total, 0);

        let settings = ProgramSettings {
            program_name: "Acme Partners".into(),
            logo_url: Some("https://acme.example.com/logo.png".into()),
            commission_rate: 25,
            trial_options: vec![7, 14],
            min_withdrawal: BTreeMap::from([("EUR".to_owned(), 2_500), ("USD".to_owned(), 5_000)]),
            ..ProgramSettings::default()
        };
        let change = NewAudit::new(
            at(5),
            "staff:1 (ann@vendor.test)",
            "settings.save",
            "settings",
        )
        .before_after(
            Some(serde_json::json!({ "commission_rate": 20 })),
            Some(serde_json::json!({ "commission_rate": 25 })),
        );
        store.save_settings(&settings, change, at(5)).await.unwrap();

        assert_eq!(store.load_settings().await.unwrap(), settings);
        let entry = last_audit(&*store).await;
        assert_eq!(store.list_audit(10, 0).await.unwrap().total, 1);
        assert_eq!(
            (entry.at, entry.actor.as_str()),
            (at(5).millis(), "staff:1 (ann@vendor.test)")
        );
        assert_eq!(
            (entry.action.as_str(), entry.object.as_str()),
            ("settings.save", "settings")
        );
        assert_eq!(
            json(&entry.before),
            serde_json::json!({ "commission_rate": 20 })
        );
        assert_eq!(
            json(&entry.after),
            serde_json::json!({ "commission_rate": 25 })
        );

        // A second save replaces the document (there is only ever one) and logs again.
        let mut again = settings.clone();
        again.hold_days = 45;
        store
            .save_settings(&again, audit("settings.save", "settings"), at(9))
            .await
            .unwrap();
        assert_eq!(store.load_settings().await.unwrap(), again);
        assert_eq!(store.list_audit(10, 0).await.unwrap().total, 2);
    }
);

conformance!(
    terms_versions_count_up_from_one_and_the_highest_is_current,
    |store: Arc<dyn Store>| async move {
        assert!(store.current_terms().await.unwrap().is_none());
        assert!(store.list_terms().await.unwrap().is_empty());

        for (n, body) in ["First terms", "Second terms", "Third terms"]
            .into_iter()
            .enumerate()
        {
            let n = n as i64 + 1;
            let terms = store
                .publish_terms(body, audit("terms.publish", "terms"), at(n * 1000))
                .await
                .unwrap();
            assert_eq!(
                (terms.version, terms.body.as_str(), terms.created_at),
                (n, body, at(n * 1000).millis())
            );
            let entry = last_audit(&*store).await;
            assert_eq!(entry.action, "terms.publish");
            assert_eq!(json(&entry.after), serde_json::json!({ "version": n }));
        }

        let current = store.current_terms().await.unwrap().unwrap();
        assert_eq!((current.version, current.body.as_str()), (3, "Third terms"));
        let all = store.list_terms().await.unwrap();
        assert_eq!(
            all.iter().map(|t| t.version).collect::<Vec<_>>(),
            vec![3, 2, 1],
            "newest first"
        );
        assert_eq!(all[2].body, "First terms");
        assert_eq!(store.list_audit(10, 0).await.unwrap().total, 3);
    }
);
