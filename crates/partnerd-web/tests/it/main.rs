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
//! - `payouts`: the withdrawal queue, PayPal payouts against the stand-in
//!   (faults, every status, webhooks, a crash), the mass-payment file;
//! - `money_api`: the API's billing events (idempotent, validated), balances,
//!   commissions and active status;
//! - `stripe`: `POST /webhooks/stripe` end to end, its refusals, secret
//!   rotation and console secrets, delivery in any order;
//! - `panel_money`: the partner's money, payouts and statements pages and
//!   the admins' accounting CSVs;
//! - `tracking`: the `/r` redirect, clicks, bots, attribution and its reasons,
//!   the cookie window, self-referral, the API's validation and the UTM report.

mod helpers;

mod access;
mod accounts;
mod console;
mod email;
mod headers;
mod money_api;
mod panel_money;
mod payouts;
mod reports_ui;
mod resources;
mod stripe;
mod tracking;
mod webhooks_out;
