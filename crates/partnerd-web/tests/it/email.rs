//! Email: delivered to a real SMTP receiver by the job runner when SMTP is
//! configured (with retries and backoff), kept for the console's Outbox
//! otherwise.

use std::time::Duration;

use axum::http::StatusCode;
use partnerd_app::Config;
use partnerd_app::config::SmtpConfig;
use partnerd_app::jobs::run_due;
use partnerd_testkit::SmtpReceiver;

use crate::helpers::{Db, NEW_PASSWORD, PASSWORD, TestApp, reset_path_in};

fn smtp_config(receiver: &SmtpReceiver) -> Config {
    Config {
        public_url: Some("http://partners.vendor.test".into()),
        smtp: Some(SmtpConfig {
            host: "127.0.0.1".into(),
            port: receiver.addr().port(),
            security: "none".into(),
            username: None,
            password: None,
            from: "Partners <partners@vendor.test>".into(),
        }),
        ..Default::default()
    }
}

fn signup<'a>(name: &'a str, email: &'a str) -> [(&'a str, &'a str); 4] {
    [
        ("name", name),
        ("email", email),
        ("password", PASSWORD),
        ("accept_terms", "yes"),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_smtp_the_welcome_and_manager_emails_are_delivered_by_the_job_runner() {
    for db in Db::available() {
        delivered(db).await;
    }
}

async fn delivered(db: Db) {
    let receiver = SmtpReceiver::start().await.unwrap();
    let t = TestApp::on(db, smtp_config(&receiver)).await;
    let mia = t.manager("Mia Manager").await;
    let r = t
        .client()
        .post_form("/signup", &signup("Pat Mailed", "pat@example.test"))
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);

    let queued = t.outbox().await;
    assert_eq!(queued.len(), 2);
    assert!(queued.iter().all(|e| e.status == "pending"), "{queued:?}");
    assert!(receiver.messages().is_empty(), "sent before the job ran");

    assert_eq!(run_due(&t.app, "w1").await.unwrap(), 2);
    let mails = receiver.wait_for(2, Duration::from_secs(10)).await;
    let welcome = mails
        .iter()
        .find(|m| m.to == ["pat@example.test"])
        .expect("the welcome email");
    assert_eq!(
        welcome.subject().as_deref(),
        Some("Welcome to the Partner Program")
    );
    assert!(
        welcome.body_contains("http://partners.vendor.test/panel"),
        "{}",
        welcome.decoded_body()
    );
    assert!(welcome.body_contains("Your affiliate manager is Mia Manager"));
    assert_eq!(welcome.from, "partners@vendor.test");
    assert!(
        welcome
            .header("From")
            .unwrap()
            .contains("Partners <partners@vendor.test>")
    );
    let note = mails
        .iter()
        .find(|m| m.to == [mia.email.clone()])
        .expect("the manager's email");
    assert_eq!(
        note.subject().as_deref(),
        Some("New partner assigned to you: Pat Mailed")
    );

    for email in t.outbox().await {
        assert_eq!(
            (email.status.as_str(), email.attempts, email.sent_at),
            ("sent", 1, Some(t.app.now().millis())),
            "{email:?}"
        );
    }
    assert_eq!(
        run_due(&t.app, "w1").await.unwrap(),
        0,
        "a sent email was sent again"
    );
    assert_eq!(receiver.messages().len(), 2);

    // A reset link travels the same way and works from the delivered email.
    let r = t
        .client()
        .post_form("/password-reset", &[("email", "pat@example.test")])
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(run_due(&t.app, "w1").await.unwrap(), 1);
    let mails = receiver.wait_for(3, Duration::from_secs(10)).await;
    let reset = &mails[2];
    assert!(reset.subject().unwrap().starts_with("Reset your password"));
    let body = reset.decoded_body();
    let link = reset_path_in(&body);
    let mut c = t.client();
    assert_eq!(
        c.post_form(&link, &[("password", NEW_PASSWORD)])
            .await
            .status,
        StatusCode::SEE_OTHER
    );
    assert_eq!(
        c.post_form(
            "/login",
            &[("email", "pat@example.test"), ("password", NEW_PASSWORD)]
        )
        .await
        .status,
        StatusCode::SEE_OTHER
    );

    let admin = t.admin().await;
    let outbox = t.signed_in(admin.subject).await.get("/admin/outbox").await;
    assert!(
        outbox
            .body
            .contains("Emails sent through the configured SMTP server")
    );
    assert!(outbox.body.contains(">sent<"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_delivery_stays_pending_and_is_retried_after_the_backoff() {
    for db in Db::available() {
        retried(db).await;
    }
}

async fn retried(db: Db) {
    let receiver = SmtpReceiver::start().await.unwrap();
    let t = TestApp::on(db, smtp_config(&receiver)).await;
    let r = t
        .client()
        .post_form("/signup", &signup("Pat Retry", "retry@example.test"))
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    let id = t.last_email_to("retry@example.test").await.id;

    receiver.fail_next(1);
    assert_eq!(run_due(&t.app, "w1").await.unwrap(), 1);
    assert!(receiver.messages().is_empty());
    let email = t.store.get_outbox(id).await.unwrap();
    assert_eq!((email.status.as_str(), email.attempts), ("pending", 1));
    assert!(
        email
            .last_error
            .as_deref()
            .unwrap_or_default()
            .contains("451"),
        "{:?}",
        email.last_error
    );
    assert_eq!(email.sent_at, None);

    // The first retry waits 30 seconds.
    t.advance(29);
    assert_eq!(
        run_due(&t.app, "w1").await.unwrap(),
        0,
        "retried before the backoff"
    );
    t.advance(1);
    assert_eq!(run_due(&t.app, "w1").await.unwrap(), 1);
    let mails = receiver.wait_for(1, Duration::from_secs(10)).await;
    assert_eq!(mails.len(), 1);
    assert_eq!(mails[0].to, ["retry@example.test"]);
    let email = t.store.get_outbox(id).await.unwrap();
    assert_eq!((email.status.as_str(), email.attempts), ("sent", 2));
}

#[tokio::test]
async fn without_smtp_emails_are_kept_for_the_outbox_and_never_sent() {
    let t = TestApp::sqlite().await;
    let mia = t.manager("Mia Manager").await;
    let r = t
        .client()
        .post_form("/signup", &signup("Pat Kept", "kept@example.test"))
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    let emails = t.outbox().await;
    assert_eq!(emails.len(), 2);
    assert!(
        emails.iter().all(|e| e.status == "kept" && e.attempts == 0),
        "{emails:?}"
    );
    assert_eq!(
        run_due(&t.app, "w1").await.unwrap(),
        0,
        "a kept email became a job"
    );

    let admin = t.admin().await;
    let mut console = t.signed_in(admin.subject).await;
    let page = console.get("/admin/outbox").await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.body.contains("No SMTP server is configured"));
    assert!(
        page.body.contains("kept@example.test")
            && page.body.contains("Welcome to the Partner Program")
    );
    assert!(
        page.body.contains(&mia.email)
            && page.body.contains("New partner assigned to you: Pat Kept")
    );
    let welcome = emails
        .iter()
        .find(|e| e.to_address == "kept@example.test")
        .unwrap();
    let page = console.get(&format!("/admin/outbox/{}", welcome.id)).await;
    assert!(
        page.body.contains("http://127.0.0.1:8080/panel"),
        "{}",
        page.body
    );
}
