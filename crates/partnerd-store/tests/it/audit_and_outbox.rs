//! The audit log and the email outbox.

use std::sync::Arc;

use partnerd_domain::ProgramSettings;
use partnerd_store::{EmailOutcome, NewAudit, Store, StoreError};

use crate::fixtures::*;

conformance!(
    the_audit_log_lists_newest_first_with_its_total_and_pages,
    |store: Arc<dyn Store>| async move {
        let empty = store.list_audit(10, 0).await.unwrap();
        assert_eq!((empty.items.len(), empty.total), (0, 0));
        for i in 1..=5 {
            let entry = NewAudit::new(
                at(i * 10),
                format!("staff:{i}"),
                format!("action.{i}"),
                format!("object:{i}"),
            );
            store
                .save_settings(&ProgramSettings::default(), entry, at(i * 10))
                .await
                .unwrap();
        }

        let page = store.list_audit(2, 0).await.unwrap();
        assert_eq!(page.total, 5);
        assert_eq!(
            page.items
                .iter()
                .map(|e| e.action.as_str())
                .collect::<Vec<_>>(),
            vec!["action.5", "action.4"]
        );
        let newest = &page.items[0];
        assert_eq!(
            (newest.at, newest.actor.as_str(), newest.object.as_str()),
            (at(50).millis(), "staff:5", "object:5")
        );
        assert_eq!(
            (newest.before.as_deref(), newest.after.as_deref()),
            (None, None)
        );
        assert!(page.items[0].id > page.items[1].id);

        let page = store.list_audit(2, 2).await.unwrap();
        assert_eq!(
            page.items
                .iter()
                .map(|e| e.action.as_str())
                .collect::<Vec<_>>(),
            vec!["action.3", "action.2"]
        );
        let page = store.list_audit(2, 4).await.unwrap();
        assert_eq!(
            (
                page.items
                    .iter()
                    .map(|e| e.action.as_str())
                    .collect::<Vec<_>>(),
                page.total
            ),
            (vec!["action.1"], 5)
        );
        let page = store.list_audit(2, 5).await.unwrap();
        assert_eq!((page.items.len(), page.total), (0, 5));
        assert_eq!(store.list_audit(100, 0).await.unwrap().items.len(), 5);
    }
);

conformance!(
    the_audit_log_orders_by_insertion_even_when_clocks_disagree,
    |store: Arc<dyn Store>| async move {
        // Entries stamped out of order (two nodes' clocks) still list newest-written first.
        for (i, ms) in [(1, 300), (2, 100), (3, 200)] {
            let entry = NewAudit::new(at(ms), "cli", format!("action.{i}"), "settings");
            store
                .save_settings(&ProgramSettings::default(), entry, at(ms))
                .await
                .unwrap();
        }
        let page = store.list_audit(10, 0).await.unwrap();
        assert_eq!(
            page.items
                .iter()
                .map(|e| e.action.as_str())
                .collect::<Vec<_>>(),
            vec!["action.3", "action.2", "action.1"]
        );
    }
);

conformance!(
    outbox_emails_list_newest_first_and_are_marked_sent_or_failed,
    |store: Arc<dyn Store>| async move {
        let ann = add_partner(&*store, "ann", at(1)).await;
        let emails = [
            mail("one@example.com", "One", true, at(10)),
            mail("two@example.com", "Two", true, at(11)),
            mail("three@example.com", "Three", false, at(12)),
        ];
        store
            .reassign_manager(ann.id, None, &emails, audit("partner.reassign", "partner"))
            .await
            .unwrap();

        let page = store.list_outbox(2, 0).await.unwrap();
        assert_eq!(page.total, 3);
        assert_eq!(
            page.items
                .iter()
                .map(|e| e.subject.as_str())
                .collect::<Vec<_>>(),
            vec!["Three", "Two"]
        );
        let page = store.list_outbox(2, 2).await.unwrap();
        assert_eq!(
            (
                page.items
                    .iter()
                    .map(|e| e.subject.as_str())
                    .collect::<Vec<_>>(),
                page.total
            ),
            (vec!["One"], 3)
        );
        let one_id = page.items[0].id;

        let one = store.get_outbox(one_id).await.unwrap();
        assert_eq!(
            (
                one.to_address.as_str(),
                one.subject.as_str(),
                one.body.as_str()
            ),
            ("one@example.com", "One", "Body of One")
        );
        assert_eq!(
            (one.status.as_str(), one.attempts, one.last_error.as_deref()),
            ("pending", 0, None)
        );
        assert_eq!((one.created_at, one.sent_at), (at(10).millis(), None));
        assert!(matches!(
            store.get_outbox(one_id + 1000).await,
            Err(StoreError::NotFound)
        ));

        // Sent.
        store
            .mark_email(one_id, EmailOutcome::Sent, at(100))
            .await
            .unwrap();
        let one = store.get_outbox(one_id).await.unwrap();
        assert_eq!(
            (one.status.as_str(), one.attempts, one.sent_at),
            ("sent", 1, Some(at(100).millis()))
        );

        // Failed, to be retried; then failed for good.
        let two_id = store.list_outbox(3, 0).await.unwrap().items[1].id;
        let retry = EmailOutcome::Failed {
            error: "421 try again later".into(),
            final_failure: false,
        };
        store.mark_email(two_id, retry, at(100)).await.unwrap();
        let two = store.get_outbox(two_id).await.unwrap();
        assert_eq!(
            (two.status.as_str(), two.attempts, two.last_error.as_deref()),
            ("pending", 1, Some("421 try again later"))
        );
        assert_eq!(two.sent_at, None);
        let last = EmailOutcome::Failed {
            error: "550 no such mailbox".into(),
            final_failure: true,
        };
        store.mark_email(two_id, last, at(200)).await.unwrap();
        let two = store.get_outbox(two_id).await.unwrap();
        assert_eq!(
            (two.status.as_str(), two.attempts, two.last_error.as_deref()),
            ("failed", 2, Some("550 no such mailbox"))
        );
        assert_eq!(two.sent_at, None);

        let three = store.list_outbox(1, 0).await.unwrap().items.remove(0);
        assert_eq!(
            (
                three.subject.as_str(),
                three.status.as_str(),
                three.attempts
            ),
            ("Three", "kept", 0),
            "untouched"
        );
        assert_eq!(store.list_outbox(10, 0).await.unwrap().total, 3);
    }
);
