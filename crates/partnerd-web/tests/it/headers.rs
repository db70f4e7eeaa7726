//! Security headers on every kind of answer, and what changes behind HTTPS.

use axum::http::StatusCode;
use partnerd_app::Config;

use crate::helpers::{PASSWORD, Resp, TestApp};

fn assert_security_headers(r: &Resp, what: &str) {
    let csp = r
        .header("content-security-policy")
        .unwrap_or_else(|| panic!("{what}: no CSP"));
    assert!(csp.contains("frame-ancestors 'none'"), "{what}: {csp}");
    assert!(csp.contains("base-uri 'none'"), "{what}: {csp}");
    assert_eq!(
        r.header("x-content-type-options"),
        Some("nosniff"),
        "{what}"
    );
    assert_eq!(r.header("x-frame-options"), Some("DENY"), "{what}");
    assert_eq!(
        r.header("referrer-policy"),
        Some("strict-origin-when-cross-origin"),
        "{what}"
    );
}

#[tokio::test]
async fn every_kind_of_answer_carries_the_security_headers_and_no_hsts_over_http() {
    let t = TestApp::sqlite().await;
    let ann = t.partner("Ann Headers").await;
    let mut signed_in = t.signed_in(ann.subject).await;
    let mut anonymous = t.client();
    let answers = [
        ("/", anonymous.get("/").await),
        ("/panel signed out", anonymous.get("/panel").await),
        ("/panel", signed_in.get("/panel").await),
        (
            "/api/v1/openapi.json",
            anonymous.get("/api/v1/openapi.json").await,
        ),
        ("/api/v1/x", anonymous.get("/api/v1/x").await),
        ("/healthz", anonymous.get("/healthz").await),
        ("/assets/app.css", anonymous.get("/assets/app.css").await),
        ("404", anonymous.get("/nothing-here").await),
        (
            "403 CSRF",
            anonymous.post_form_without_csrf("/signup", &[]).await,
        ),
    ];
    for (what, r) in &answers {
        assert_security_headers(r, what);
        assert_eq!(
            r.header("strict-transport-security"),
            None,
            "{what}: HSTS over plain HTTP"
        );
    }
    // HTML pages: a per-response nonce for the one inline style, and no caching.
    let panel = &answers[2].1;
    assert_eq!(panel.status, StatusCode::OK);
    let csp = panel.header("content-security-policy").unwrap();
    let nonce = csp
        .split("'nonce-")
        .nth(1)
        .and_then(|s| s.split('\'').next())
        .expect("a nonce");
    assert!(panel.body.contains(&format!("<style nonce=\"{nonce}\">")));
    assert!(!csp.contains("unsafe-inline"), "{csp}");
    assert_eq!(panel.header("cache-control"), Some("no-store"));
    let again = signed_in.get("/panel").await;
    assert!(
        !again
            .header("content-security-policy")
            .unwrap()
            .contains(nonce),
        "the nonce is reused"
    );
    // Everything else gets a policy that allows nothing.
    let api = &answers[3].1;
    assert!(
        api.header("content-security-policy")
            .unwrap()
            .starts_with("default-src 'none'")
    );
    assert_eq!(answers[4].1.status, StatusCode::UNAUTHORIZED);
    assert_eq!(answers[8].1.status, StatusCode::FORBIDDEN);
    assert!(
        answers[8].1.body.contains("This form has expired"),
        "the CSRF error page is blank"
    );
}

#[tokio::test]
async fn behind_https_cookies_are_host_only_and_secure_and_hsts_is_sent() {
    let config = Config {
        public_url: Some("https://partners.vendor.test".into()),
        ..Default::default()
    };
    let t = TestApp::sqlite_with(config).await;
    let mut c = t.client();
    let page = c.get("/signup").await;
    assert_eq!(
        page.header("strict-transport-security"),
        Some("max-age=31536000; includeSubDomains")
    );
    let csrf = page
        .set_cookie("__Host-partnerd_csrf")
        .expect("a __Host- CSRF cookie");
    for attribute in ["Secure", "HttpOnly", "SameSite=Lax", "Path=/"] {
        assert!(csrf.contains(attribute), "{attribute}: {csrf}");
    }

    let r = c
        .post_form(
            "/signup",
            &[
                ("name", "Ann Secure"),
                ("email", "ann@example.test"),
                ("password", PASSWORD),
                ("accept_terms", "yes"),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    assert_eq!(
        r.header("strict-transport-security"),
        Some("max-age=31536000; includeSubDomains")
    );
    let session = r
        .set_cookie("__Host-partnerd_session")
        .expect("a __Host- session cookie");
    for attribute in ["Secure", "HttpOnly", "SameSite=Lax", "Path=/"] {
        assert!(session.contains(attribute), "{attribute}: {session}");
    }
    assert!(
        !session.contains("Domain="),
        "__Host- cookies have no Domain: {session}"
    );
    assert!(r.set_cookie("partnerd_session").is_none());
    let panel = c.get("/panel").await;
    assert_eq!(panel.status, StatusCode::OK);
    assert_eq!(
        panel.header("strict-transport-security"),
        Some("max-age=31536000; includeSubDomains")
    );
    assert!(
        c.get("/healthz")
            .await
            .header("strict-transport-security")
            .is_some()
    );

    // The plain cookie name means nothing behind HTTPS.
    let token = c.session_token().unwrap();
    let mut plain = t.client();
    plain.set_cookie("partnerd_session", &token);
    assert_eq!(plain.get("/panel").await.status, StatusCode::SEE_OTHER);
}
