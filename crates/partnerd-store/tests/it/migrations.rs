//! The two migration lists stay in lockstep, and migrating is idempotent.

use std::sync::Arc;

use partnerd_store::{Backend, Store, StoreError, migration_versions};

use crate::fixtures::*;

#[test]
fn both_backends_ship_the_same_non_empty_list_of_migrations() {
    let sqlite = migration_versions(Backend::Sqlite);
    let postgres = migration_versions(Backend::Postgres);
    assert!(!sqlite.is_empty(), "no migrations shipped");
    assert_eq!(
        sqlite, postgres,
        "the SQLite and PostgreSQL migrations are out of lockstep"
    );
    assert!(
        sqlite.windows(2).all(|w| w[0] < w[1]),
        "versions are not strictly increasing: {sqlite:?}"
    );
}

#[tokio::test]
async fn connect_picks_the_backend_from_the_url_and_refuses_others() {
    let dir = tempfile::tempdir().unwrap();
    let store = partnerd_store::connect(&format!("sqlite://{}/c.db", dir.path().display()))
        .await
        .unwrap();
    assert_eq!(store.backend(), Backend::Sqlite);
    store.migrate().await.unwrap();
    store.ping().await.unwrap();
    match partnerd_store::connect("mysql://localhost/partnerd").await {
        Err(StoreError::Unsupported(_)) => {}
        Err(other) => panic!("expected Unsupported, got {other:?}"),
        Ok(_) => panic!("a mysql:// URL was accepted"),
    }
}

conformance!(
    migrating_applies_every_shipped_version_and_migrating_again_is_harmless,
    |store: Arc<dyn Store>| async move {
        let shipped = migration_versions(store.backend());
        assert_eq!(store.applied_migrations().await.unwrap(), shipped);
        store.ping().await.unwrap();

        let partner = add_partner(&*store, "ann", T0).await;
        store.migrate().await.unwrap();
        store.migrate().await.unwrap();
        assert_eq!(store.applied_migrations().await.unwrap(), shipped);
        assert_eq!(
            store.get_partner(partner.id).await.unwrap().public_id,
            partner.public_id,
            "data survives re-migration"
        );
    }
);
