//! Outbound webhooks end to end (issue 4 part 6), against a real HTTP receiver
//! the test starts on loopback: an admin adds an endpoint in the console (a
//! loopback target only with "allow private targets"), a booked payment becomes
//! a signed `commission.earned` delivery that `outbound::verify` accepts, a 500
//! is retried with the same `webhook-id`, a 410 disables the endpoint, a crash
//! between writing deliveries and sending sends each event once per endpoint,
//! and bad input is refused field by field with nothing written.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::{Arc, Mutex};

use axum::http::StatusCode;
use partnerd_app::outbound::{self, SignedHeaders, WebhookSecret};
use partnerd_app::webhooks::RETRY_DELAYS_SECONDS;
use partnerd_domain::Currency;
use partnerd_store::NewSignup;
use partnerd_store::money::{EventKey, EventOrigin, NewPayment};

use crate::helpers::{Client, TestApp, on_both_backends};

/// One request the receiver got.
#[derive(Debug, Clone)]
struct Received {
    path: String,
    headers: SignedHeaders,
    content_type: String,
    body: Vec<u8>,
}

impl Received {
    fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).expect("the body is JSON")
    }
}

/// A webhook receiver on 127.0.0.1:0 that records every request and answers
/// with the scripted statuses, then 200.
#[derive(Clone, Default)]
struct Receiver {
    seen: Arc<Mutex<Vec<Received>>>,
    answers: Arc<Mutex<VecDeque<u16>>>,
    base: String,
}

impl Receiver {
    async fn start() -> Self {
        let mut receiver = Receiver::default();
        let state = receiver.clone();
        let router = axum::Router::new().fallback(move |request: axum::extract::Request| {
            let state = state.clone();
            async move {
                let (parts, body) = request.into_parts();
                let body = axum::body::to_bytes(body, 1 << 20).await.unwrap();
                let header = |name: &str| {
                    parts
                        .headers
                        .get(name)
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or_default()
                        .to_owned()
                };
                state.seen.lock().unwrap().push(Received {
                    path: parts.uri.path().to_owned(),
                    headers: SignedHeaders {
                        id: header("webhook-id"),
                        timestamp: header("webhook-timestamp"),
                        signature: header("webhook-signature"),
                    },
                    content_type: header("content-type"),
                    body: body.to_vec(),
                });
                let code = state.answers.lock().unwrap().pop_front().unwrap_or(200);
                StatusCode::from_u16(code).unwrap()
            }
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        receiver.base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move {
            axum::serve(listener, router).await.unwrap();
        });
        receiver
    }

    fn answer(&self, codes: &[u16]) {
        self.answers.lock().unwrap().extend(codes);
    }

    fn seen(&self) -> Vec<Received> {
        self.seen.lock().unwrap().clone()
    }
}

/// Adds an endpoint through the console form; returns its id.
async fn add_endpoint(console: &mut Client, url: &str, types: &[&str]) -> i64 {
    let mut fields = vec![
        ("url", url),
        ("description", "The product"),
        ("allow_private", "yes"),
    ];
    fields.extend(types.iter().map(|t| ("event_types", *t)));
    let r = console.post_form("/admin/webhooks", &fields).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    r.location()
        .strip_prefix("/admin/webhooks/")
        .and_then(|id| id.parse().ok())
        .unwrap_or_else(|| panic!("sent to {}", r.location()))
}

/// A partner with `customer` credited at 20 % (R-COM-1); returns the partner's
/// id and public id.
async fn credited_partner(t: &TestApp, name: &str, customer: &str) -> (i64, String) {
    let partner = t.partner(name).await;
    t.store
        .record_signup(NewSignup {
            customer_id: customer.into(),
            partner_id: Some(partner.id),
            referred_partner_id: Some(partner.id),
            campaign_id: None,
            click_id: None,
            utm_campaign: Some("default_link".into()),
            utm_term: None,
            trial_days: None,
            discount_percent: None,
            reason: "credited".into(),
            review: false,
            commission_rate: Some(20),
            created_at: t.app.now(),
        })
        .await
        .expect("credit the customer");
    (partner.id, t.public_id(&partner).await)
}

async fn pay(t: &TestApp, payment_id: &str, customer: &str, amount: i64) {
    let (_, replayed) = t
        .store
        .record_payment(
            NewPayment {
                event: EventKey::new(EventOrigin::Api, format!("payment:{payment_id}")),
                payment_id: payment_id.into(),
                customer_id: customer.into(),
                amount,
                currency: Currency::USD,
                paid_at: t.app.now(),
                subscription_id: None,
            },
            30,
            t.app.now(),
        )
        .await
        .expect("book the payment");
    assert!(!replayed);
}

async fn events_job(t: &TestApp) -> usize {
    t.app
        .run_webhook_events_job()
        .await
        .expect("the events job")
        .deliveries
}

async fn deliveries_job(t: &TestApp) -> usize {
    t.app
        .run_webhook_deliveries_job()
        .await
        .expect("the deliveries job")
}

async fn secret_of(t: &TestApp, endpoint: i64) -> WebhookSecret {
    let stored = t.store.get_webhook_endpoint(endpoint).await.unwrap().secret;
    WebhookSecret::parse(&stored).expect("a whsec_ secret")
}

async fn endpoint_count(t: &TestApp) -> i64 {
    t.sql_scalar("select count(*) from webhook_endpoints").await
}

on_both_backends!(
    a_booked_payment_reaches_the_receiver_signed_as_commission_earned,
    |t: TestApp| async move {
        let receiver = Receiver::start().await;
        let admin = t.admin().await;
        let mut console = t.signed_in(admin.subject).await;
        let url = format!("{}/hook", receiver.base);
        let endpoint = add_endpoint(&mut console, &url, &["commission.earned"]).await;

        // The admin sees the secret the receiver must check with.
        let page = console.get(&format!("/admin/webhooks/{endpoint}")).await;
        assert_eq!(page.status, StatusCode::OK);
        let secret = secret_of(&t, endpoint).await;
        assert!(page.body.contains(&secret.expose()));
        // ... but the audit log never holds it.
        assert!(
            t.audit()
                .await
                .iter()
                .all(|e| !format!("{e:?}").contains("whsec_"))
        );

        let (_, public_id) = credited_partner(&t, "Ann", "cus_1").await;
        pay(&t, "in_1", "cus_1", 100_000).await;
        assert_eq!(events_job(&t).await, 1);
        assert_eq!(deliveries_job(&t).await, 1);

        let seen = receiver.seen();
        assert_eq!(seen.len(), 1);
        let got = &seen[0];
        assert_eq!(got.path, "/hook");
        assert_eq!(got.content_type, "application/json");
        assert!(got.headers.id.starts_with("msg_"));
        assert_eq!(
            outbound::verify(&secret, &got.headers, &got.body, t.app.now(), 300),
            Ok(())
        );
        let other = WebhookSecret::generate();
        assert!(outbound::verify(&other, &got.headers, &got.body, t.app.now(), 300).is_err());
        let body = got.json();
        assert_eq!(body["type"], "commission.earned");
        assert_eq!(body["timestamp"], "2026-01-01T00:00:00.000Z");
        assert_eq!(body["data"]["partner_id"], public_id.as_str());
        assert_eq!(body["data"]["amount"], 20_000, "20 % of $1,000");
        assert_eq!(body["data"]["currency"], "USD");
        assert_eq!(body["data"]["payment_id"], "in_1");
        assert_eq!(body["data"]["status"], "held");

        // The console lists the delivery as delivered with its one attempt.
        let page = console.get(&format!("/admin/webhooks/{endpoint}")).await;
        assert!(page.body.contains(&got.headers.id), "{}", page.body);
        assert!(page.body.contains("badge-success\">delivered"));
        // Nothing is left to send.
        assert_eq!(deliveries_job(&t).await, 0);
        assert_eq!(receiver.seen().len(), 1);
    }
);

on_both_backends!(
    the_periodic_jobs_turn_a_payment_into_a_delivery_without_help,
    |t: TestApp| async move {
        let receiver = Receiver::start().await;
        let admin = t.admin().await;
        let mut console = t.signed_in(admin.subject).await;
        add_endpoint(
            &mut console,
            &format!("{}/hook", receiver.base),
            &["commission.earned"],
        )
        .await;
        partnerd_app::jobs::register_schedules(&t.app)
            .await
            .unwrap();
        credited_partner(&t, "Ann", "cus_1").await;
        pay(&t, "in_1", "cus_1", 50_000).await;
        // The schedules are due at once; a few periods later the event is out.
        for _ in 0..3 {
            partnerd_app::jobs::run_due(&t.app, "test-worker")
                .await
                .unwrap();
            t.advance(partnerd_app::webhooks::JOB_PERIOD_SECONDS);
        }
        let seen = receiver.seen();
        assert_eq!(seen.len(), 1, "{seen:?}");
        assert_eq!(seen[0].json()["data"]["amount"], 10_000);
    }
);

on_both_backends!(
    a_500_is_retried_after_the_backoff_with_the_same_webhook_id,
    |t: TestApp| async move {
        let receiver = Receiver::start().await;
        let admin = t.admin().await;
        let mut console = t.signed_in(admin.subject).await;
        let endpoint = add_endpoint(
            &mut console,
            &format!("{}/hook", receiver.base),
            &["commission.earned"],
        )
        .await;
        credited_partner(&t, "Ann", "cus_1").await;
        pay(&t, "in_1", "cus_1", 100_000).await;
        events_job(&t).await;

        receiver.answer(&[500]);
        assert_eq!(deliveries_job(&t).await, 1);
        // Not due again before the first backoff ends.
        t.advance(RETRY_DELAYS_SECONDS[0] - 1);
        assert_eq!(deliveries_job(&t).await, 0);
        t.advance(1);
        assert_eq!(deliveries_job(&t).await, 1);

        let seen = receiver.seen();
        assert_eq!(seen.len(), 2);
        assert_eq!(seen[0].headers.id, seen[1].headers.id);
        assert_eq!(seen[0].body, seen[1].body);
        assert_ne!(seen[0].headers.timestamp, seen[1].headers.timestamp);
        let secret = secret_of(&t, endpoint).await;
        assert_eq!(
            outbound::verify(&secret, &seen[1].headers, &seen[1].body, t.app.now(), 300),
            Ok(())
        );
        let deliveries = t.store.list_webhook_deliveries(endpoint, 10).await.unwrap();
        assert_eq!(deliveries.len(), 1);
        assert_eq!(deliveries[0].status, "delivered");
        let attempts = t
            .store
            .list_webhook_attempts(deliveries[0].id)
            .await
            .unwrap();
        assert_eq!(
            attempts.iter().map(|a| a.status_code).collect::<Vec<_>>(),
            [Some(500), Some(200)]
        );
        assert_eq!(
            attempts[0].error.as_deref(),
            Some("the receiver answered 500")
        );

        // The admin resends it: the receiver gets the same webhook-id once more.
        let resend = console
            .post_form(
                &format!("/admin/webhook-deliveries/{}/resend", deliveries[0].id),
                &[],
            )
            .await;
        assert_eq!(resend.status, StatusCode::SEE_OTHER);
        assert_eq!(deliveries_job(&t).await, 1);
        let seen = receiver.seen();
        assert_eq!(seen.len(), 3);
        assert_eq!(seen[2].headers.id, seen[0].headers.id);
    }
);

on_both_backends!(
    a_410_disables_the_endpoint_and_nothing_more_is_sent_to_it,
    |t: TestApp| async move {
        let receiver = Receiver::start().await;
        let admin = t.admin().await;
        let mut console = t.signed_in(admin.subject).await;
        let endpoint = add_endpoint(
            &mut console,
            &format!("{}/hook", receiver.base),
            &["commission.earned"],
        )
        .await;
        credited_partner(&t, "Ann", "cus_1").await;
        pay(&t, "in_1", "cus_1", 100_000).await;
        events_job(&t).await;
        receiver.answer(&[410]);
        assert_eq!(deliveries_job(&t).await, 1);

        let stored = t.store.get_webhook_endpoint(endpoint).await.unwrap();
        assert!(!stored.enabled);
        assert_eq!(
            stored.disabled_reason.as_deref(),
            Some("the receiver answered 410 Gone")
        );
        let deliveries = t.store.list_webhook_deliveries(endpoint, 10).await.unwrap();
        assert_eq!(deliveries[0].status, "failed");
        let page = console.get(&format!("/admin/webhooks/{endpoint}")).await;
        assert!(page.body.contains("410 Gone"));

        // A later payment is not sent to it, however long we wait.
        pay(&t, "in_2", "cus_1", 100_000).await;
        assert_eq!(events_job(&t).await, 0);
        t.advance(86_400);
        assert_eq!(deliveries_job(&t).await, 0);
        assert_eq!(receiver.seen().len(), 1);

        // Enabled again by the admin (signed in afresh: a day has passed), it
        // receives what comes next.
        let mut console = t.signed_in(admin.subject).await;
        let r = console
            .post_form(&format!("/admin/webhooks/{endpoint}/enable"), &[])
            .await;
        assert_eq!(r.status, StatusCode::SEE_OTHER);
        pay(&t, "in_3", "cus_1", 100_000).await;
        assert_eq!(events_job(&t).await, 1);
        assert_eq!(deliveries_job(&t).await, 1);
        let seen = receiver.seen();
        assert_eq!(seen.len(), 2);
        assert_eq!(seen[1].json()["data"]["payment_id"], "in_3");
    }
);

on_both_backends!(
    a_crash_between_writing_deliveries_and_sending_sends_each_event_once_per_endpoint,
    |t: TestApp| async move {
        let receiver = Receiver::start().await;
        let admin = t.admin().await;
        let mut console = t.signed_in(admin.subject).await;
        let a = add_endpoint(
            &mut console,
            &format!("{}/a", receiver.base),
            &["commission.earned"],
        )
        .await;
        let b = add_endpoint(
            &mut console,
            &format!("{}/b", receiver.base),
            &["commission.earned"],
        )
        .await;
        credited_partner(&t, "Ann", "cus_1").await;
        pay(&t, "in_1", "cus_1", 100_000).await;
        pay(&t, "in_2", "cus_1", 40_000).await;

        // Two events jobs at once, then again (the process died before it knew
        // whether its run committed): two events × two endpoints, once.
        let (first, second) = tokio::join!(events_job(&t), events_job(&t));
        assert_eq!(first + second, 4);
        assert_eq!(events_job(&t).await, 0);

        // A worker claimed every delivery and died before sending: once the
        // lease runs out, another worker sends them.
        let claimed = t
            .store
            .claim_webhook_deliveries(t.app.now(), 120, 100)
            .await
            .unwrap();
        assert_eq!(claimed.len(), 4);
        assert_eq!(deliveries_job(&t).await, 0, "still held by the dead worker");
        t.advance(121);
        assert_eq!(deliveries_job(&t).await, 4);
        assert_eq!(deliveries_job(&t).await, 0);

        let seen = receiver.seen();
        assert_eq!(seen.len(), 4);
        // Per endpoint: one webhook-id per event, and one event per webhook-id.
        for path in ["/a", "/b"] {
            let mine: Vec<&Received> = seen.iter().filter(|r| r.path == path).collect();
            let mut ids_by_payment: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
            for r in &mine {
                let payment = r.json()["data"]["payment_id"].as_str().unwrap().to_owned();
                ids_by_payment
                    .entry(payment)
                    .or_default()
                    .insert(r.headers.id.clone());
            }
            assert_eq!(ids_by_payment.len(), 2, "{path}: {ids_by_payment:?}");
            assert!(ids_by_payment.values().all(|ids| ids.len() == 1));
        }
        for id in [a, b] {
            let deliveries = t.store.list_webhook_deliveries(id, 10).await.unwrap();
            assert_eq!(deliveries.len(), 2);
            assert!(
                deliveries
                    .iter()
                    .all(|d| d.status == "delivered" && d.attempts == 1)
            );
        }
    }
);

on_both_backends!(
    bad_endpoint_input_is_refused_field_by_field_and_nothing_is_written,
    |t: TestApp| async move {
        let admin = t.admin().await;
        let mut console = t.signed_in(admin.subject).await;
        let audit_before = t.audit().await.len();
        for (fields, field, reason) in [
            (
                vec![
                    ("url", "ftp://hooks.example.com/x"),
                    ("event_types", "commission.earned"),
                ],
                "url",
                "http:// or https://",
            ),
            // A private address, and loopback, without the allowance.
            (
                vec![
                    ("url", "http://10.0.0.5/hook"),
                    ("event_types", "commission.earned"),
                ],
                "url",
                "Allow private targets",
            ),
            (
                vec![
                    ("url", "http://127.0.0.1:9/hook"),
                    ("event_types", "commission.earned"),
                ],
                "url",
                "loopback",
            ),
            (
                vec![
                    ("url", "https://hooks.example.com/x"),
                    ("event_types", "licence.created"),
                ],
                "event_types",
                "is not an event type",
            ),
            (
                vec![("url", "https://hooks.example.com/x")],
                "event_types",
                "at least one",
            ),
        ] {
            let r = console.post_form("/admin/webhooks", &fields).await;
            assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{fields:?}");
            assert_eq!(r.field_errors(), [field], "{fields:?}");
            assert!(r.body.contains(reason), "{fields:?}: {}", r.body);
            // The form keeps what was typed.
            assert!(r.body.contains(fields[0].1), "{fields:?}");
        }
        assert_eq!(endpoint_count(&t).await, 0);
        assert_eq!(t.audit().await.len(), audit_before);

        // The same loopback URL with the allowance is accepted.
        let receiver = Receiver::start().await;
        add_endpoint(
            &mut console,
            &format!("{}/hook", receiver.base),
            &["payout.paid"],
        )
        .await;
        assert_eq!(endpoint_count(&t).await, 1);
    }
);

on_both_backends!(
    a_test_event_and_a_rotation_reach_the_receiver_signed_with_both_secrets,
    |t: TestApp| async move {
        let receiver = Receiver::start().await;
        let admin = t.admin().await;
        let mut console = t.signed_in(admin.subject).await;
        let endpoint = add_endpoint(
            &mut console,
            &format!("{}/hook", receiver.base),
            &["payout.paid"],
        )
        .await;
        let old = secret_of(&t, endpoint).await;
        let r = console
            .post_form(&format!("/admin/webhooks/{endpoint}/rotate"), &[])
            .await;
        assert_eq!(r.status, StatusCode::SEE_OTHER);
        let new = secret_of(&t, endpoint).await;
        assert_ne!(old, new);

        let r = console
            .post_form(&format!("/admin/webhooks/{endpoint}/test"), &[])
            .await;
        assert_eq!(r.status, StatusCode::SEE_OTHER);
        assert_eq!(deliveries_job(&t).await, 1);
        let seen = receiver.seen();
        assert_eq!(seen.len(), 1);
        assert_eq!(seen[0].json()["type"], "webhook.test");
        for secret in [&old, &new] {
            assert_eq!(
                outbound::verify(secret, &seen[0].headers, &seen[0].body, t.app.now(), 300),
                Ok(())
            );
        }

        // Disabled by the admin: no test event can be sent.
        let r = console
            .post_form(&format!("/admin/webhooks/{endpoint}/disable"), &[])
            .await;
        assert_eq!(r.status, StatusCode::SEE_OTHER);
        let r = console
            .post_form(&format!("/admin/webhooks/{endpoint}/test"), &[])
            .await;
        assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.body);
        assert_eq!(deliveries_job(&t).await, 0);
    }
);

on_both_backends!(
    a_password_in_the_endpoint_url_stays_out_of_the_audit_log,
    |t: TestApp| async move {
        let receiver = Receiver::start().await;
        let admin = t.admin().await;
        let mut console = t.signed_in(admin.subject).await;
        let url = receiver.base.replace("http://", "http://hooks:hunter2@") + "/hook";
        let endpoint = add_endpoint(&mut console, &url, &["payout.paid"]).await;
        let entries = t.audit().await;
        let created = entries
            .iter()
            .find(|e| e.action == "webhook_endpoint.create")
            .expect("the creation is audited");
        assert!(format!("{created:?}").contains("hooks:***@"), "{created:?}");
        assert!(
            entries
                .iter()
                .all(|e| !format!("{e:?}").contains("hunter2"))
        );
        // The receiver still gets the credentials it asked for.
        console
            .post_form(&format!("/admin/webhooks/{endpoint}/test"), &[])
            .await;
        assert_eq!(deliveries_job(&t).await, 1);
        assert_eq!(receiver.seen().len(), 1);
    }
);
