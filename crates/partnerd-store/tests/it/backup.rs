//! `backup_to`: a consistent SQLite copy; unsupported on PostgreSQL.

use std::sync::Arc;

use partnerd_store::{Backend, Removal, SqliteStore, Store, StoreError};

use crate::fixtures::*;

conformance!(
    a_backup_is_a_sqlite_store_with_the_same_partners_or_unsupported_on_postgres,
    |store: Arc<dyn Store>| async move {
        add_partner(&*store, "ann", at(1)).await;
        let bob = add_partner(&*store, "bob", at(2)).await;
        store
            .remove_partner(
                bob.id,
                Removal::Requested,
                audit("partner.remove", "partner"),
                at(3),
            )
            .await
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("backup.db");

        match store.backend() {
            Backend::Postgres => {
                match store.backup_to(&target).await {
                    Err(StoreError::Unsupported(_)) => {}
                    other => panic!("expected Unsupported on PostgreSQL, got {other:?}"),
                }
                assert!(!target.exists());
            }
            Backend::Sqlite => {
                store.backup_to(&target).await.unwrap();
                assert!(target.exists());
                // The live store keeps serving after the backup.
                add_partner(&*store, "carl", at(4)).await;

                let copy = SqliteStore::connect(&format!("sqlite://{}", target.display()))
                    .await
                    .unwrap();
                copy.integrity_check().await.unwrap();
                assert_eq!(
                    copy.applied_migrations().await.unwrap(),
                    store.applied_migrations().await.unwrap()
                );
                let partners = copy.list_partners(&everyone()).await.unwrap();
                assert_eq!(
                    ids(&partners.items),
                    vec!["pub-bob", "pub-ann"],
                    "the partners at backup time"
                );
                assert!(partners.items[0].is_removed());
                assert_eq!(copy.list_audit(10, 0).await.unwrap().total, 3);
                copy.close().await;

                match store.backup_to(&target).await {
                    Err(StoreError::Invalid(_)) => {}
                    other => panic!("an existing target must be refused, got {other:?}"),
                }
            }
        }
    }
);
