//! Fresh stores for each test: a SQLite file in a temporary directory, or a
//! PostgreSQL database of its own that is dropped afterwards.

use std::future::Future;
use std::sync::Arc;

use partnerd_store::{Backend, PgStore, SqliteStore, Store};
use sqlx::{Connection, Executor};

/// Names the PostgreSQL server the `postgres` variants run on.
pub const POSTGRES_URL_VAR: &str = "PARTNERD_TEST_POSTGRES_URL";

/// A migrated SQLite store on a new file; the directory lives as long as the test.
pub async fn run_sqlite<F, Fut>(body: F)
where
    F: FnOnce(Arc<dyn Store>) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let dir = tempfile::tempdir().expect("temporary directory");
    let url = format!("sqlite://{}/t.db", dir.path().display());
    let store = SqliteStore::connect(&url)
        .await
        .expect("open the SQLite store");
    store.migrate().await.expect("migrate the SQLite store");
    assert_eq!(store.backend(), Backend::Sqlite);
    body(Arc::new(store)).await;
    drop(dir);
}

/// A migrated PostgreSQL store on a database of its own, or a note that the
/// PostgreSQL variant was skipped.
pub async fn run_postgres<F, Fut>(test: &str, body: F)
where
    F: FnOnce(Arc<dyn Store>) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let Some(db) = TestDatabase::create().await else {
        println!("{test}: skipped, {POSTGRES_URL_VAR} is not set");
        return;
    };
    let store = db.store().await;
    assert_eq!(store.backend(), Backend::Postgres);
    // The body runs in its own task so that a failing assertion still lets us drop
    // the database before the panic is passed on.
    let outcome = tokio::spawn(body(Arc::new(store))).await;
    db.drop_best_effort().await;
    if let Err(err) = outcome {
        match err.try_into_panic() {
            Ok(panic) => std::panic::resume_unwind(panic),
            Err(err) => panic!("test task failed: {err}"),
        }
    }
}

/// A PostgreSQL database made for one test.
pub struct TestDatabase {
    admin_url: String,
    name: String,
    /// The URL of the new database.
    pub url: String,
}

impl TestDatabase {
    /// `None` when `PARTNERD_TEST_POSTGRES_URL` is unset.
    pub async fn create() -> Option<Self> {
        let admin_url = std::env::var(POSTGRES_URL_VAR)
            .ok()
            .filter(|v| !v.trim().is_empty())?;
        let name = format!("partnerd_t_{:016x}", rand::random::<u64>());
        let mut admin = sqlx::PgConnection::connect(&admin_url)
            .await
            .unwrap_or_else(|e| panic!("connect to {POSTGRES_URL_VAR}: {e}"));
        admin
            .execute(format!("create database {name}").as_str())
            .await
            .unwrap_or_else(|e| panic!("create database {name}: {e}"));
        let _ = admin.close().await;
        let mut url = url::Url::parse(&admin_url).expect("PARTNERD_TEST_POSTGRES_URL is a URL");
        url.set_path(&format!("/{name}"));
        Some(Self {
            admin_url,
            name,
            url: url.to_string(),
        })
    }

    /// A new, migrated store on this database (a pool of its own, like another process).
    pub async fn store(&self) -> PgStore {
        let store = PgStore::connect(&self.url)
            .await
            .expect("open the PostgreSQL store");
        store.migrate().await.expect("migrate the PostgreSQL store");
        store
    }

    /// Drops the database, ignoring errors: a leftover database is harmless.
    pub async fn drop_best_effort(self) {
        if let Ok(mut admin) = sqlx::PgConnection::connect(&self.admin_url).await {
            let _ = admin
                .execute(format!("drop database if exists {} with (force)", self.name).as_str())
                .await;
            let _ = admin.close().await;
        }
    }
}
