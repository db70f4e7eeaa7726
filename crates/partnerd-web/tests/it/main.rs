//! partnerd-web's integration tests: the whole router, in-process, over a real
//! store (SQLite always; PostgreSQL too for the tests written with
//! `on_both_backends!` when `PARTNERD_TEST_POSTGRES_URL` is set, e.g.
//! `postgres://postgres@127.0.0.1:5432/postgres`) with a fake clock.
//!
//! - `access`: every route × every kind of caller (the access matrix);
//! - `accounts`: sign-up, log-in/out, sessions, CSRF, throttling, password
//!   reset, account changes, Terms, deletion;
//! - `console`: manager assignment, partner lists, reassigning, removal,
//!   settings, staff, audit log and outbox pages;
//! - `email`: delivery to a real SMTP receiver, retries, the kept outbox;
//! - `headers`: security headers and HTTPS cookies;
//! - `tracking`: the `/r` redirect, clicks, bots, attribution and its reasons,
//!   the cookie window, self-referral, the API's validation and the UTM report.

mod helpers;

mod access;
mod accounts;
mod console;
mod email;
mod headers;
mod reports_ui;
mod resources;
mod tracking;
