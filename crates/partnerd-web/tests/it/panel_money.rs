//! The partner's money pages and the admins' exports (issue 4 parts 4, 7, 8):
//! balances held then available (R-COM-4), the active status (R-ACC-4), the
//! payout profile (R-PAY-2, R-PAY-4), withdrawals (R-PAY-1), statements, the
//! accounting CSVs; partners see only their own.

use std::sync::Arc;

use axum::http::StatusCode;
use partnerd_app::withdrawals::PayoutProfileInput;
use partnerd_domain::ledger::{PayoutStatus, check_invariants};
use partnerd_store::NewAudit;
use serde_json::json;

use crate::helpers::{Account, Client, PASSWORD, TestApp, on_both_backends};

const DAY: i64 = 86_400;

/// A partner credited with `customer` through the API (R-AFF-4).
async fn credited(t: &TestApp, api: &mut Client, name: &str, customer: &str) -> Account {
    let email = crate::helpers::email_for(name, "example.test");
    credited_with(t, api, name, &email, customer).await
}

async fn credited_with(
    t: &TestApp,
    api: &mut Client,
    name: &str,
    email: &str,
    customer: &str,
) -> Account {
    let partner = t.partner_with(name, email).await;
    let public_id = t.public_id(&partner).await;
    let r = api
        .post_json(
            "/api/v1/signups",
            &json!({ "customer_id": customer, "referral": public_id }),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    partner
}

async fn pay(api: &mut Client, id: &str, customer: &str, amount: i64) {
    let r = api
        .post_json(
            "/api/v1/payments",
            &json!({ "id": id, "customer_id": customer, "amount": amount, "currency": "USD" }),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{id}: {}", r.body);
}

async fn refund(api: &mut Client, id: &str, payment: &str, amount: i64) {
    let r = api
        .post_json(
            "/api/v1/refunds",
            &json!({ "id": id, "payment_id": payment, "amount": amount }),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{id}: {}", r.body);
}

/// The hold ends (R-COM-4) and the job releases what is due.
async fn after_the_hold(t: &TestApp) {
    t.advance(31 * DAY);
    t.app.release_due_holds().await.expect("release the holds");
}

fn profile(paypal: &str) -> PayoutProfileInput {
    PayoutProfileInput {
        paypal_email: paypal.into(),
        legal_name: "Ann Lee Consulting GmbH".into(),
        country: "de".into(),
        tax_id: "DE 123456789".into(),
    }
}

async fn save_profile(t: &TestApp, account: &Account, input: PayoutProfileInput) {
    let partner = t.get_partner(account.id).await;
    t.app
        .save_payout_profile(&partner, &input, "")
        .await
        .expect("save the payout profile");
}

/// The `data-balance="…"` value of the page's first currency.
fn balance(body: &str, which: &str) -> String {
    let marker = format!("data-balance=\"{which}\">");
    let start = body
        .find(&marker)
        .unwrap_or_else(|| panic!("no {which} balance on the page: {body}"))
        + marker.len();
    body[start..body[start..].find('<').unwrap() + start].to_owned()
}

/// Rows of the tables a refused request must not touch.
async fn money_rows(t: &TestApp) -> [i64; 4] {
    [
        t.sql_scalar("select count(*) from withdrawals").await,
        t.sql_scalar("select count(*) from ledger_transfers").await,
        t.sql_scalar("select count(*) from audit_log").await,
        t.sql_scalar("select count(*) from outbox").await,
    ]
}

async fn assert_ledger_holds(t: &TestApp) {
    let snapshot = t.store.ledger_records().await.unwrap();
    let breaches = check_invariants(&snapshot.records());
    assert!(breaches.is_empty(), "{breaches:?}");
}

on_both_backends!(
    a_paid_referral_shows_held_then_available_after_the_hold,
    |t: TestApp| async move {
        let mut api = t.api().await;
        let ann = credited(&t, &mut api, "Ann Lee", "cus_1").await;
        pay(&mut api, "in_1", "cus_1", 50_000).await;
        let mut browser = t.signed_in(ann.subject).await;

        let page = browser.get("/panel/money").await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.body);
        // R-COM-1: 20 % of $500.00, held 30 days (R-COM-4).
        assert_eq!(balance(&page.body, "held"), "$100.00");
        assert_eq!(balance(&page.body, "available"), "$0.00");
        assert!(page.body.contains("Held until 2026-01-31"), "{}", page.body);
        assert!(page.body.contains("cus_1") && page.body.contains("20 %"));
        assert!(page.body.contains("<title>January 2026: $100.00</title>"));
        // R-ACC-4: one of two customers; the first leaves the window on 1 April.
        assert!(
            page.body
                .contains("1 more new paying customer in the next 90 days makes you active"),
            "{}",
            page.body
        );

        after_the_hold(&t).await;
        // Sessions last 14 days: sign in again after the hold.
        let mut browser = t.signed_in(ann.subject).await;
        let page = browser.get("/panel/money").await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.body);
        assert_eq!(balance(&page.body, "held"), "$0.00");
        assert_eq!(balance(&page.body, "available"), "$100.00");
        assert!(
            page.body.contains("data-status>Available<"),
            "{}",
            page.body
        );
        // The transfers behind the balances.
        assert!(page.body.contains("Commission") && page.body.contains("Hold ended"));
        assert!(page.body.contains("in the next 59 days"), "{}", page.body);

        let bob_customer = "cus_2";
        let r = api
            .post_json(
                "/api/v1/signups",
                &json!({ "customer_id": bob_customer, "referral": t.public_id(&ann).await }),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED);
        pay(&mut api, "in_2", bob_customer, 1_000).await;
        let page = browser.get("/panel/money").await;
        assert!(
            page.body
                .contains("Active: 2 new paying customers in the last 3 months."),
            "{}",
            page.body
        );
    }
);

on_both_backends!(
    the_payout_profile_form_names_each_wrong_field_and_saves_nothing,
    |t: TestApp| async move {
        let ann = t.partner("Ann Lee").await;
        let mut browser = t.signed_in(ann.subject).await;
        let before = money_rows(&t).await;
        let r = browser
            .post_form(
                "/panel/payouts/profile",
                &[
                    ("paypal_email", "not an email"),
                    ("legal_name", "Ann\u{7}Lee"),
                    ("country", "XX"),
                    ("tax_id", "=1+1"),
                ],
            )
            .await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.body);
        let mut fields = r.field_errors();
        fields.sort();
        assert_eq!(fields, ["country", "legal_name", "paypal_email", "tax_id"]);
        // The form comes back as typed.
        assert!(r.body.contains("value=\"XX\""));
        assert_eq!(money_rows(&t).await, before);
        assert_eq!(
            t.app.payout_profile(ann.id).await.unwrap(),
            Default::default()
        );

        let r = browser
            .post_form(
                "/panel/payouts/profile",
                &[
                    ("paypal_email", "Ann@PayPal.test"),
                    ("legal_name", "Ann Lee"),
                    ("country", "de"),
                    ("tax_id", "DE 123/45"),
                ],
            )
            .await;
        assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
        let saved = t.app.payout_profile(ann.id).await.unwrap();
        assert_eq!(saved.paypal_email.as_deref(), Some("ann@paypal.test"));
        assert_eq!(saved.country.as_deref(), Some("DE"));
        assert_eq!(saved.tax_id.as_deref(), Some("DE 123/45"));
        // The audit log names the fields, never their values.
        let entry = t.last_audit().await;
        assert_eq!(entry.action, "partner.payout_profile.update");
        let after = entry.after.unwrap_or_default();
        assert!(
            after.contains("tax_id") && after.contains("paypal_email"),
            "{after}"
        );
        assert!(
            !after.contains("paypal.test") && !after.contains("123"),
            "{after}"
        );
    }
);

on_both_backends!(
    changing_the_paypal_email_needs_the_password_and_tells_the_old_address,
    |t: TestApp| async move {
        let ann = t.partner("Ann Lee").await;
        save_profile(&t, &ann, profile("old@paypal.test")).await;
        let mut browser = t.signed_in(ann.subject).await;
        let page = browser.get("/panel/payouts").await;
        assert!(
            page.body.contains("name=\"current_password\""),
            "{}",
            page.body
        );

        let change = |password: &'static str| {
            vec![
                ("paypal_email", "new@paypal.test"),
                ("legal_name", "Ann Lee Consulting GmbH"),
                ("country", "DE"),
                ("tax_id", "DE 123456789"),
                ("current_password", password),
            ]
        };
        let before = money_rows(&t).await;
        for password in ["", "not my password"] {
            let r = browser
                .post_form("/panel/payouts/profile", &change(password))
                .await;
            assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.body);
            assert_eq!(r.field_errors(), ["current_password"]);
        }
        assert_eq!(money_rows(&t).await, before);
        let kept = t.app.payout_profile(ann.id).await.unwrap();
        assert_eq!(kept.paypal_email.as_deref(), Some("old@paypal.test"));
        assert!(t.emails_to("old@paypal.test").await.is_empty());

        let r = browser
            .post_form("/panel/payouts/profile", &change(PASSWORD))
            .await;
        assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
        let saved = t.app.payout_profile(ann.id).await.unwrap();
        assert_eq!(saved.paypal_email.as_deref(), Some("new@paypal.test"));
        let to_old = t.emails_to("old@paypal.test").await;
        assert_eq!(to_old.len(), 1);
        assert!(
            to_old[0].subject.contains("PayPal email"),
            "{}",
            to_old[0].subject
        );
        assert!(
            to_old[0].body.contains("n***@paypal.test"),
            "{}",
            to_old[0].body
        );
        assert!(
            t.emails_to(&ann.email)
                .await
                .iter()
                .any(|e| e.subject.contains("PayPal email"))
        );
        // Changing the other details alone needs no password and tells nobody.
        let r = browser
            .post_form(
                "/panel/payouts/profile",
                &[
                    ("paypal_email", "new@paypal.test"),
                    ("legal_name", "Ann Lee"),
                    ("country", "AT"),
                    ("tax_id", "ATU1"),
                ],
            )
            .await;
        assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
        assert!(t.emails_to("new@paypal.test").await.is_empty());
    }
);

on_both_backends!(
    a_withdrawal_is_refused_below_the_minimum_or_without_details_and_writes_nothing,
    |t: TestApp| async move {
        let mut api = t.api().await;
        let ann = credited(&t, &mut api, "Ann Lee", "cus_1").await;
        let bob = credited(&t, &mut api, "Bob Roe", "cus_2").await;
        let cy = credited(&t, &mut api, "Cy Moe", "cus_3").await;
        pay(&mut api, "in_1", "cus_1", 20_000).await; // $40.00 commission
        pay(&mut api, "in_2", "cus_2", 50_000).await; // $100.00
        pay(&mut api, "in_3", "cus_3", 50_000).await; // $100.00
        after_the_hold(&t).await;
        save_profile(&t, &ann, profile("ann@paypal.test")).await;
        save_profile(
            &t,
            &cy,
            PayoutProfileInput {
                paypal_email: "cy@paypal.test".into(),
                ..Default::default()
            },
        )
        .await;

        let cases = [
            (&ann, "below the 50.00 USD minimum"),
            (&bob, "Add your PayPal email"),
            (&cy, "Add your tax details"),
        ];
        for (account, reason) in cases {
            let mut browser = t.signed_in(account.subject).await;
            let page = browser.get("/panel/payouts").await;
            assert!(page.body.contains(reason), "{reason}: {}", page.body);
            assert!(!page.body.contains("action=\"/panel/payouts/withdraw\""));
            let before = money_rows(&t).await;
            let r = browser
                .post_form("/panel/payouts/withdraw", &[("currency", "USD")])
                .await;
            assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.body);
            assert!(r.body.contains("id=\"refusal\""), "{}", r.body);
            assert!(r.body.contains(reason), "{reason}: {}", r.body);
            assert_eq!(money_rows(&t).await, before, "{reason}");
        }
        let mut browser = t.signed_in(ann.subject).await;
        let r = browser
            .post_form("/panel/payouts/withdraw", &[("currency", "usdollar")])
            .await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.body);
        assert!(r.body.contains("Currency:"), "{}", r.body);
    }
);

on_both_backends!(
    a_withdrawal_takes_the_whole_available_balance,
    |t: TestApp| async move {
        let mut api = t.api().await;
        let ann = credited(&t, &mut api, "Ann Lee", "cus_1").await;
        pay(&mut api, "in_1", "cus_1", 50_000).await;
        pay(&mut api, "in_2", "cus_1", 15_000).await;
        after_the_hold(&t).await;
        save_profile(&t, &ann, profile("ann@paypal.test")).await;
        let mut browser = t.signed_in(ann.subject).await;
        let page = browser.get("/panel/payouts").await;
        assert!(page.body.contains("Withdraw $130.00"), "{}", page.body);

        let r = browser
            .post_form("/panel/payouts/withdraw", &[("currency", "USD")])
            .await;
        assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
        assert_eq!(r.location(), "/panel/payouts");
        let rows = t.app.balances(ann.id).await.unwrap();
        assert_eq!(rows[0].balances.available, 0);
        assert_eq!(rows[0].balances.in_flight, 13_000);
        let page = browser.get("/panel/payouts").await;
        assert!(page.body.contains("Waiting for approval"), "{}", page.body);
        assert!(page.body.contains("$130.00"));
        assert!(!page.body.contains("Withdraw $"), "{}", page.body);
        let money = browser.get("/panel/money").await;
        assert_eq!(balance(&money.body, "in_flight"), "$130.00");
        assert_ledger_holds(&t).await;
    }
);

on_both_backends!(
    twenty_concurrent_withdrawal_requests_take_the_balance_at_most_once,
    |t: TestApp| async move {
        let mut api = t.api().await;
        let ann = credited(&t, &mut api, "Ann Lee", "cus_1").await;
        pay(&mut api, "in_1", "cus_1", 50_000).await;
        after_the_hold(&t).await;
        save_profile(&t, &ann, profile("ann@paypal.test")).await;
        let partner = Arc::new(t.get_partner(ann.id).await);
        let mut tasks = Vec::new();
        for _ in 0..20 {
            let app = t.app.clone();
            let partner = partner.clone();
            tasks.push(tokio::spawn(async move {
                app.request_withdrawal(&partner, "USD").await
            }));
        }
        let mut accepted = Vec::new();
        for task in tasks {
            if let Ok(row) = task.await.expect("the task finishes") {
                accepted.push(row.withdrawal.amount);
            }
        }
        assert_eq!(accepted, vec![10_000], "exactly one takes the balance");
        assert_eq!(t.sql_scalar("select count(*) from withdrawals").await, 1);
        let rows = t.app.balances(ann.id).await.unwrap();
        assert_eq!(
            rows[0].balances.available + rows[0].balances.in_flight,
            10_000
        );
        assert_ledger_holds(&t).await;
    }
);

/// Ann: $500.00 paid on 1 January, $50.00 of it refunded on 10 January, the
/// rest released, withdrawn and paid on 2 February. Returns the withdrawal id.
async fn january_and_february(
    t: &TestApp,
    api: &mut Client,
    ann: &Account,
    customer: &str,
) -> String {
    pay(api, "in_1", customer, 50_000).await;
    t.advance(9 * DAY);
    refund(api, "re_1", "in_1", 5_000).await;
    t.advance(23 * DAY);
    t.app.release_due_holds().await.unwrap();
    save_profile(t, ann, profile("ann@paypal.test")).await;
    let partner = t.get_partner(ann.id).await;
    let row = t.app.request_withdrawal(&partner, "USD").await.unwrap();
    let id = row.withdrawal.id.clone();
    let now = t.app.now();
    t.store
        .approve_withdrawal(
            &id,
            None,
            NewAudit::new(now, "test", "withdrawal.approve", &*id),
            now,
        )
        .await
        .unwrap();
    t.store
        .record_payout_status(
            &id,
            PayoutStatus::Success,
            None,
            None,
            Default::default(),
            now,
        )
        .await
        .unwrap();
    id
}

on_both_backends!(
    the_statement_shows_the_tax_details_and_the_months_figures,
    |t: TestApp| async move {
        let mut api = t.api().await;
        let ann = credited(&t, &mut api, "Ann Lee", "cus_1").await;
        let withdrawal = january_and_february(&t, &mut api, &ann, "cus_1").await;
        let mut browser = t.signed_in(ann.subject).await;
        let list = browser.get("/panel/statements").await;
        assert_eq!(list.status, StatusCode::OK);
        let feb = list.body.find("February 2026").expect("February listed");
        let jan = list.body.find("January 2026").expect("January listed");
        assert!(feb < jan, "newest first");

        let january = browser.get("/panel/statements/2026-01").await;
        assert_eq!(january.status, StatusCode::OK, "{}", january.body);
        let body = &january.body;
        assert!(
            body.contains("Partner Program — statement for January 2026"),
            "{body}"
        );
        assert!(body.contains("Ann Lee Consulting GmbH") && body.contains(">DE<"));
        assert!(body.contains("DE 123456789"));
        assert!(body.contains("data-figure=\"earned\">$100.00<"), "{body}");
        assert!(body.contains("data-figure=\"reversed\">$10.00<"));
        assert!(body.contains("data-figure=\"net\">$90.00<"));
        assert!(body.contains("data-figure=\"paid_out\">$0.00<"));
        // Closing: the $90.00 still held (the release was booked in February).
        assert!(body.contains("<th scope=\"row\">Held</th><td class=\"num\">$0.00</td><td class=\"num\">$90.00</td>"), "{body}");
        assert!(body.contains("Refund reversal") && body.contains("in_1"));
        assert!(body.contains("@media print"));

        let february = browser.get("/panel/statements/2026-02").await;
        let body = &february.body;
        assert!(body.contains("data-figure=\"earned\">$0.00<"), "{body}");
        assert!(body.contains("data-figure=\"paid_out\">$90.00<"));
        assert!(body.contains(&withdrawal));
        assert!(body.contains("<th scope=\"row\">Held</th><td class=\"num\">$90.00</td><td class=\"num\">$0.00</td>"), "{body}");

        // Before the first booking and after this month: no statement.
        for month in ["2025-12", "2026-03", "2026-13", "latest"] {
            let r = browser.get(&format!("/panel/statements/{month}")).await;
            assert_eq!(r.status, StatusCode::NOT_FOUND, "{month}");
        }
    }
);

on_both_backends!(
    partners_see_only_their_own_money_statements_and_withdrawals,
    |t: TestApp| async move {
        let mut api = t.api().await;
        let ann = credited(&t, &mut api, "Ann Lee", "cus_secret").await;
        let withdrawal = january_and_february(&t, &mut api, &ann, "cus_secret").await;
        let bob = t.partner("Bob Roe").await;
        let mut browser = t.signed_in(bob.subject).await;
        for path in ["/panel/money", "/panel/payouts", "/panel/statements"] {
            let r = browser.get(path).await;
            assert_eq!(r.status, StatusCode::OK, "{path}");
            for secret in [
                "cus_secret",
                "in_1",
                withdrawal.as_str(),
                "$90.00",
                "Ann Lee",
            ] {
                assert!(
                    !r.body.contains(secret),
                    "{path} shows {secret}: {}",
                    r.body
                );
            }
        }
        for month in ["2026-01", "2026-02"] {
            let r = browser.get(&format!("/panel/statements/{month}")).await;
            assert_eq!(r.status, StatusCode::NOT_FOUND, "{month}");
        }
        // A withdrawal request only ever takes the asker's own balance.
        let r = browser
            .post_form("/panel/payouts/withdraw", &[("currency", "USD")])
            .await;
        assert_eq!(r.status, StatusCode::CONFLICT);
        assert_eq!(t.sql_scalar("select count(*) from withdrawals").await, 1);
    }
);

on_both_backends!(
    the_csv_exports_hold_the_bookings_and_payouts_and_cannot_run_formulas,
    |t: TestApp| async move {
        let mut api = t.api().await;
        let ann = credited_with(
            &t,
            &mut api,
            "=HYPERLINK(\"http://evil.test\")",
            "ann@example.test",
            "cus_1",
        )
        .await;
        let r = api
            .post_json(
                "/api/v1/signups",
                &json!({ "customer_id": "@SUM(1+1)", "referral": t.public_id(&ann).await }),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
        pay(&mut api, "+1-payment", "@SUM(1+1)", 10_000).await;
        let withdrawal = january_and_february(&t, &mut api, &ann, "cus_1").await;
        let admin = t.admin().await;
        let mut console = t.signed_in(admin.subject).await;

        let r = console
            .get("/admin/exports/commissions.csv?from=2026-01-01&to=2026-01-31")
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        assert_eq!(r.header("content-type"), Some("text/csv; charset=utf-8"));
        let lines: Vec<&str> = r.body.trim_end().split("\r\n").collect();
        assert_eq!(lines.len(), 4, "{}", r.body);
        assert!(lines[0].starts_with("\"booked_at\",\"partner_id\",\"partner_name\""));
        // The refund reverses $10.00: a decimal of the exponent and minor units.
        let refund = lines.iter().find(|l| l.contains("\"refund\"")).unwrap();
        assert!(refund.contains("\"-10.00\",\"-1000\""), "{refund}");
        assert!(refund.contains("\"ref:re_1\""));
        let earning = lines.iter().find(|l| l.contains("\"com:in_1\"")).unwrap();
        assert!(
            earning.contains("\"100.00\",\"10000\",\"500.00\",\"50000\",\"20\""),
            "{earning}"
        );
        // Text that would be a formula starts with a quote mark.
        assert!(
            r.body.contains("\"'=HYPERLINK(\"\"http://evil.test\"\")\""),
            "{}",
            r.body
        );
        assert!(r.body.contains("\"'@SUM(1+1)\"") && r.body.contains("\"'+1-payment\""));
        for cell in r.body.split([',', '\n']) {
            let cell = cell.trim().trim_start_matches('"');
            assert!(
                !cell.starts_with(['=', '+', '@']),
                "a cell could run as a formula: {cell}"
            );
        }
        // February: no commission booked.
        let r = console
            .get("/admin/exports/commissions.csv?from=2026-02-01&to=2026-02-28")
            .await;
        assert_eq!(r.body.trim_end().split("\r\n").count(), 1, "{}", r.body);

        let r = console
            .get("/admin/exports/payouts.csv?from=2026-02-01&to=2026-02-28")
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        let lines: Vec<&str> = r.body.trim_end().split("\r\n").collect();
        assert_eq!(lines.len(), 2, "{}", r.body);
        let line = lines[1];
        assert!(line.starts_with(&format!("\"{withdrawal}\"")), "{line}");
        assert!(line.contains("\"110.00\",\"11000\",\"paid\""), "{line}");
        assert!(line.contains("\"ann@paypal.test\",\"SUCCESS\""), "{line}");
        assert!(line.contains("\"'=HYPERLINK("), "{line}");
        assert!(line.contains("\"2026-02-02T00:00:00Z\""), "{line}");

        // A bad range: the form again, with the field's error.
        let r = console
            .get("/admin/exports/payouts.csv?from=2026-02-10&to=2026-02-01")
            .await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(r.field_errors(), ["from"]);
        let page = console
            .get("/admin/exports?from=2026-01-01&to=2026-01-31")
            .await;
        assert!(
            page.body
                .contains("/admin/exports/commissions.csv?from=2026-01-01&amp;to=2026-01-31")
        );
    }
);

on_both_backends!(
    managers_and_partners_cannot_export,
    |t: TestApp| async move {
        let manager = t.manager("Max Manager").await;
        let partner = t.partner("Ann Lee").await;
        for subject in [manager.subject, partner.subject] {
            let mut browser = t.signed_in(subject).await;
            for path in [
                "/admin/exports",
                "/admin/exports/commissions.csv",
                "/admin/exports/payouts.csv",
            ] {
                let r = browser.get(path).await;
                assert_eq!(r.status, StatusCode::FORBIDDEN, "{path}");
                assert!(!r.body.contains("booked_at"));
            }
        }
    }
);
