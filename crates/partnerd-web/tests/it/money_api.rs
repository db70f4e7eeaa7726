//! The integration API's billing events and money reads (CONTRACT.md; R-COM-1..4,
//! R-ACC-4): payments, refunds, chargebacks and cancellations, each idempotent on
//! its `id`; balances, commissions and status; validation that writes nothing.

use axum::http::StatusCode;
use partnerd_domain::ledger::check_invariants;
use serde_json::{Value, json};

use crate::helpers::{Client, TestApp, on_both_backends};

/// A partner credited with customer `customer` through the partner id: the
/// partner's public id.
async fn credited_customer(t: &TestApp, api: &mut Client, customer: &str) -> String {
    let partner = t.partner("Cara").await;
    let public_id = t.public_id(&partner).await;
    let r = api
        .post_json(
            "/api/v1/signups",
            &json!({ "customer_id": customer, "referral": public_id }),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    assert_eq!(r.json()["partner_id"], json!(public_id));
    public_id
}

async fn pay(api: &mut Client, id: &str, customer: &str, amount: i64) -> Value {
    let r = api
        .post_json(
            "/api/v1/payments",
            &json!({ "id": id, "customer_id": customer, "amount": amount, "currency": "USD" }),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{id}: {}", r.body);
    r.json()
}

/// The partner's USD balance row.
async fn usd(api: &mut Client, public_id: &str) -> Value {
    let r = api
        .get(&format!("/api/v1/partners/{public_id}/balance"))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let body = r.json();
    body["balances"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["currency"] == "USD")
        .cloned()
        .unwrap_or(json!({ "held": 0, "available": 0, "in_flight": 0, "paid": 0, "on_review": 0 }))
}

fn owed(balance: &Value) -> i64 {
    ["held", "on_review", "available", "in_flight", "paid"]
        .iter()
        .map(|k| balance[*k].as_i64().unwrap_or(0))
        .sum()
}

async fn assert_ledger_holds(t: &TestApp) {
    let snapshot = t.store.ledger_records().await.unwrap();
    let breaches = check_invariants(&snapshot.records());
    assert!(breaches.is_empty(), "{breaches:?}");
}

async fn money_rows(t: &TestApp) -> [i64; 3] {
    [
        t.sql_scalar("select count(*) from ledger_transfers").await,
        t.sql_scalar("select count(*) from billing_events").await,
        t.sql_scalar("select count(*) from invoices").await,
    ]
}

on_both_backends!(
    the_vendors_worked_example_earns_2400_dollars,
    |t: TestApp| async move {
        // R-COM-2: $1,000 a month for 12 months at 20 % (R-COM-1) is $2,400.
        let mut api = t.api().await;
        let partner = credited_customer(&t, &mut api, "cus_1").await;
        for month in 1..=12 {
            let answer = pay(&mut api, &format!("in_{month}"), "cus_1", 100_000).await;
            assert_eq!(answer["partner_id"], json!(partner));
            assert_eq!(answer["commission"], 20_000);
            assert_eq!(answer["booked"], 20_000);
            t.advance(30 * 86_400);
        }
        let balance = usd(&mut api, &partner).await;
        assert_eq!(owed(&balance), 240_000);
        // R-COM-4: the hold is 30 days; the job releases what is due.
        t.app.release_due_holds().await.unwrap();
        let balance = usd(&mut api, &partner).await;
        assert_eq!(owed(&balance), 240_000);
        assert!(
            balance["available"].as_i64().unwrap() >= 220_000,
            "{balance}"
        );
        assert_ledger_holds(&t).await;
    }
);

on_both_backends!(
    a_replayed_payment_answers_the_same_and_books_nothing,
    |t: TestApp| async move {
        let mut api = t.api().await;
        let partner = credited_customer(&t, &mut api, "cus_1").await;
        let first = pay(&mut api, "in_1", "cus_1", 4_999).await;
        assert_eq!(first["commission"], 999); // floor(20 % × 4999)
        let rows = money_rows(&t).await;
        // A retry a minute later, without paid_at (so "now" differs).
        t.advance(60);
        let again = pay(&mut api, "in_1", "cus_1", 4_999).await;
        assert_eq!(again, first);
        assert_eq!(money_rows(&t).await, rows);
        // The same id with other facts is refused, and changes nothing.
        let r = api
            .post_json(
                "/api/v1/payments",
                &json!({ "id": "in_1", "customer_id": "cus_1", "amount": 5_000, "currency": "USD" }),
            )
            .await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.body);
        assert_eq!(money_rows(&t).await, rows);
        assert_eq!(owed(&usd(&mut api, &partner).await), 999);
    }
);

on_both_backends!(
    refunds_and_chargebacks_reverse_the_refunded_part,
    |t: TestApp| async move {
        // R-COM-3: commission is floor(rate × (paid − refunded)) after each change.
        let mut api = t.api().await;
        let partner = credited_customer(&t, &mut api, "cus_1").await;
        pay(&mut api, "in_1", "cus_1", 100_000).await;
        let r = api
            .post_json(
                "/api/v1/refunds",
                &json!({ "id": "re_1", "payment_id": "in_1", "amount": 50_000 }),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
        assert_eq!(r.json()["commission"], 10_000);
        assert_eq!(r.json()["booked"], -10_000);
        // Replayed: the same answer, nothing booked.
        let again = api
            .post_json(
                "/api/v1/refunds",
                &json!({ "id": "re_1", "payment_id": "in_1", "amount": 50_000 }),
            )
            .await;
        assert_eq!(again.json(), r.json());
        let r = api
            .post_json(
                "/api/v1/chargebacks",
                &json!({ "id": "dp_1", "payment_id": "in_1", "amount": 50_000 }),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
        assert_eq!(r.json()["commission"], 0);
        assert_eq!(owed(&usd(&mut api, &partner).await), 0);
        // The same refund id with another amount is refused and changes nothing.
        let rows = money_rows(&t).await;
        let r = api
            .post_json(
                "/api/v1/refunds",
                &json!({ "id": "re_1", "payment_id": "in_1", "amount": 40_000 }),
            )
            .await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.body);
        assert_eq!(money_rows(&t).await, rows);
        assert_ledger_holds(&t).await;
    }
);

on_both_backends!(
    a_refund_before_its_payment_ends_in_the_same_ledger,
    |t: TestApp| async move {
        let mut api = t.api().await;
        let partner = credited_customer(&t, &mut api, "cus_1").await;
        let r = api
            .post_json(
                "/api/v1/refunds",
                &json!({ "id": "re_1", "payment_id": "in_1", "amount": 2_500 }),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
        pay(&mut api, "in_1", "cus_1", 10_000).await;
        assert_eq!(owed(&usd(&mut api, &partner).await), 1_500);
        assert_ledger_holds(&t).await;
    }
);

on_both_backends!(
    bad_billing_events_name_the_field_and_write_nothing,
    |t: TestApp| async move {
        let mut api = t.api().await;
        credited_customer(&t, &mut api, "cus_1").await;
        let rows = money_rows(&t).await;
        let cases: Vec<(&str, Value, &str)> = vec![
            (
                "/api/v1/payments",
                json!({ "id": "x", "customer_id": "cus_1", "amount": -5, "currency": "USD" }),
                "amount",
            ),
            (
                "/api/v1/payments",
                json!({ "id": "x", "customer_id": "cus_1", "amount": 5, "currency": "usdollar" }),
                "currency",
            ),
            (
                "/api/v1/payments",
                json!({ "id": "x", "customer_id": "cus_1", "amount": 5, "currency": "XYZ" }),
                "currency",
            ),
            (
                "/api/v1/payments",
                json!({ "id": "", "customer_id": "cus_1", "amount": 5, "currency": "USD" }),
                "id",
            ),
            (
                "/api/v1/payments",
                json!({ "id": "x", "customer_id": "cus_1", "amount": 5, "currency": "USD", "paid_at": "yesterday" }),
                "paid_at",
            ),
            (
                "/api/v1/payments",
                json!({ "id": "x", "customer_id": "cus_1", "amount": 5, "currency": "USD", "paid_at": "2099-01-01T00:00:00Z" }),
                "paid_at",
            ),
            (
                "/api/v1/payments",
                json!({ "id": "x", "customer_id": "cus_1", "amount": 5.5, "currency": "USD" }),
                "amount",
            ),
            (
                "/api/v1/payments",
                json!({ "id": "x", "customer_id": "cus_1", "amount": 5, "currency": "USD", "tip": 1 }),
                "tip",
            ),
            (
                "/api/v1/payments",
                json!({ "id": "x", "amount": 5, "currency": "USD" }),
                "customer_id",
            ),
            (
                "/api/v1/refunds",
                json!({ "id": "r", "payment_id": "p", "amount": 0 }),
                "amount",
            ),
            (
                "/api/v1/chargebacks",
                json!({ "id": "c", "payment_id": "", "amount": 3 }),
                "payment_id",
            ),
        ];
        for (path, body, field) in cases {
            let r = api.post_json(path, &body).await;
            assert_eq!(
                r.status,
                StatusCode::UNPROCESSABLE_ENTITY,
                "{path} {body}: {}",
                r.body
            );
            assert!(
                r.json()["fields"][field].is_string(),
                "{path} {body}: expected an error on {field}: {}",
                r.body
            );
        }
        assert_eq!(money_rows(&t).await, rows);
        // A wrong key is refused before anything is read.
        let mut stranger = t.client().with_bearer("pdk_wrong");
        let r = stranger
            .post_json(
                "/api/v1/payments",
                &json!({ "id": "x", "customer_id": "cus_1", "amount": 5, "currency": "USD" }),
            )
            .await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED);
        assert_eq!(money_rows(&t).await, rows);
    }
);

on_both_backends!(
    payments_of_customers_no_partner_brought_earn_nothing,
    |t: TestApp| async move {
        let mut api = t.api().await;
        let r = api
            .post_json("/api/v1/signups", &json!({ "customer_id": "cus_walkin" }))
            .await;
        assert_eq!(r.status, StatusCode::CREATED);
        let answer = pay(&mut api, "in_1", "cus_walkin", 10_000).await;
        assert_eq!(answer["partner_id"], Value::Null);
        assert_eq!(answer["commission"], 0);
        // A payment for a customer never reported is recorded too.
        let answer = pay(&mut api, "in_2", "cus_unknown", 10_000).await;
        assert_eq!(answer["commission"], 0);
        assert_eq!(
            t.sql_scalar("select count(*) from ledger_transfers").await,
            0
        );
    }
);

on_both_backends!(
    cancelling_a_subscription_books_nothing_and_is_idempotent,
    |t: TestApp| async move {
        let mut api = t.api().await;
        credited_customer(&t, &mut api, "cus_1").await;
        let r = api
            .post_json(
                "/api/v1/payments",
                &json!({ "id": "in_1", "customer_id": "cus_1", "amount": 10_000, "currency": "USD", "subscription_id": "sub_1" }),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
        let transfers = t.sql_scalar("select count(*) from ledger_transfers").await;
        let first = api
            .post_json("/api/v1/subscriptions/sub_1/cancel", &json!({}))
            .await;
        assert_eq!(first.status, StatusCode::OK, "{}", first.body);
        let second = api
            .post_json("/api/v1/subscriptions/sub_1/cancel", &json!({}))
            .await;
        assert_eq!(second.status, StatusCode::OK);
        assert_eq!(second.json(), first.json());
        assert_eq!(
            t.sql_scalar("select count(*) from ledger_transfers").await,
            transfers
        );
    }
);

on_both_backends!(
    commissions_and_status_are_listed_per_partner,
    |t: TestApp| async move {
        let mut api = t.api().await;
        let partner = credited_customer(&t, &mut api, "cus_1").await;
        let r = api.get(&format!("/api/v1/partners/{partner}/status")).await;
        assert_eq!(r.status, StatusCode::OK);
        assert_eq!(r.json()["active"], false);
        assert_eq!(r.json()["missing"], 2);
        pay(&mut api, "in_1", "cus_1", 10_000).await;
        // A second customer of the same partner (R-ACC-4: two new paying customers).
        let r = api
            .post_json(
                "/api/v1/signups",
                &json!({ "customer_id": "cus_2", "referral": partner }),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED);
        pay(&mut api, "in_2", "cus_2", 20_000).await;
        let r = api.get(&format!("/api/v1/partners/{partner}/status")).await;
        let status = r.json();
        assert_eq!(status["active"], true, "{status}");
        assert_eq!(status["new_customers_in_window"], 2);
        assert_eq!(status["window_months"], 3);
        // Four months later they have fallen out of the window.
        t.advance(125 * 86_400);
        let r = api.get(&format!("/api/v1/partners/{partner}/status")).await;
        assert_eq!(r.json()["active"], false);

        let r = api
            .get(&format!("/api/v1/partners/{partner}/commissions"))
            .await;
        assert_eq!(r.status, StatusCode::OK);
        let list = r.json()["commissions"].as_array().unwrap().clone();
        assert_eq!(list.len(), 2);
        assert_eq!(list[0]["payment_id"], "in_2");
        assert_eq!(list[0]["commission"], 4_000);
        assert_eq!(list[1]["commission"], 2_000);
        let r = api
            .get(&format!("/api/v1/partners/{partner}/commissions?limit=0"))
            .await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
        let r = api.get("/api/v1/partners/abcdefghijk/balance").await;
        assert_eq!(r.status, StatusCode::NOT_FOUND);
    }
);

on_both_backends!(
    the_report_shows_paying_customers_revenue_and_commission_at_once,
    |t: TestApp| async move {
        // R-REP-1, R-REP-2: filled by the booking itself, in real time.
        let mut api = t.api().await;
        let partner = credited_customer(&t, &mut api, "cus_1").await;
        pay(&mut api, "in_1", "cus_1", 10_000).await;
        pay(&mut api, "in_2", "cus_1", 10_000).await;
        let r = api
            .post_json(
                "/api/v1/refunds",
                &json!({ "id": "re_1", "payment_id": "in_2", "amount": 5_000 }),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED);
        let r = api.get(&format!("/api/v1/partners/{partner}/report")).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        let report = r.json();
        let row = report["rows"]
            .as_array()
            .unwrap()
            .iter()
            .find(|row| row["utm_campaign"] == "default_link")
            .cloned()
            .unwrap_or_else(|| panic!("no default_link row: {report}"));
        assert_eq!(row["signups"], 1);
        assert_eq!(row["customers"], 1, "one customer, however many payments");
        assert_eq!(row["revenue"], 15_000);
        assert_eq!(row["commission"], 3_000);
        assert_eq!(row["currency"], "USD");
        assert_eq!(report["totals"]["revenue"], 15_000);
        assert_eq!(report["totals"]["commission"], 3_000);
        // A payment of a customer nobody referred is no partner's revenue.
        let r = api
            .post_json("/api/v1/signups", &json!({ "customer_id": "cus_walkin" }))
            .await;
        assert_eq!(r.status, StatusCode::CREATED);
        pay(&mut api, "in_3", "cus_walkin", 10_000).await;
        let r = api.get(&format!("/api/v1/partners/{partner}/report")).await;
        assert_eq!(r.json()["totals"]["revenue"], 15_000);
    }
);
