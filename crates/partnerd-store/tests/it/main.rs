//! The store's conformance suite: every `Store` method, on both backends.
//!
//! Each behaviour is written once with [`conformance!`], which turns it into a
//! module holding two tests: `sqlite` (always, on a fresh file in a temporary
//! directory) and `postgres` (on a fresh database whenever
//! `PARTNERD_TEST_POSTGRES_URL` is set, e.g.
//! `postgres://postgres@127.0.0.1:5432/postgres`; skipped with a note otherwise).
//! Time is always a fixed [`Timestamp`](partnerd_domain::Timestamp), never the clock.

/// `conformance!(name, |store: Arc<dyn Store>| async move { … })` writes the test
/// `name::sqlite` and `name::postgres`, both running the same body.
macro_rules! conformance {
    ($name:ident, $body:expr) => {
        conformance!(@ $name, [], [], $body);
    };
    // A behaviour one backend is known to get wrong: that variant is `#[ignore]`d with
    // the reason, so the suite stays green and `cargo test -- --ignored` shows the bug.
    ($name:ident, sqlite_known_bug = $why:literal, $body:expr) => {
        conformance!(@ $name, [#[ignore = $why]], [], $body);
    };
    ($name:ident, postgres_known_bug = $why:literal, $body:expr) => {
        conformance!(@ $name, [], [#[ignore = $why]], $body);
    };
    (@ $name:ident, [$(#[$sqlite:meta])*], [$(#[$postgres:meta])*], $body:expr) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            $(#[$sqlite])*
            async fn sqlite() {
                crate::harness::run_sqlite($body).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            $(#[$postgres])*
            async fn postgres() {
                crate::harness::run_postgres(concat!(module_path!(), "::postgres"), $body).await;
            }
        }
    };
}

mod fixtures;
mod harness;

mod accounts;
mod audit_and_outbox;
mod backup;
mod billing_batch;
mod exports;
mod jobs;
mod migrations;
mod money;
mod partners;
mod postgres_only;
mod resources;
mod schedules;
mod settings_and_terms;
mod staff;
mod stripe;
mod throttle_and_secrets;
mod tracking;
mod webhooks;
