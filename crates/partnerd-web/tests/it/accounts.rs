//! R-ACC-1, R-ACC-3, R-ACC-5 through the browser: sign-up, log-in and out,
//! sessions, CSRF, throttling, password reset, account changes, Terms and
//! deletion.

use crate::helpers::{NEW_PASSWORD, PASSWORD, TestApp, on_both_backends, reset_path_in};
use axum::http::StatusCode;

const PARTNER_FIELDS: [&str; 6] = [
    "name",
    "email",
    "password",
    "company",
    "website",
    "accept_terms",
];

fn signup_form<'a>(name: &'a str, email: &'a str, password: &'a str) -> Vec<(&'a str, &'a str)> {
    vec![
        ("name", name),
        ("email", email),
        ("password", password),
        ("company", ""),
        ("website", ""),
        ("accept_terms", "yes"),
    ]
}

on_both_backends!(
    a_visitor_signs_up_uses_the_panel_at_once_logs_out_and_logs_in_again,
    |t: TestApp| async move {
        let mut c = t.client();
        let page = c.get("/signup").await;
        assert_eq!(page.status, StatusCode::OK);
        assert!(
            page.body.contains("name=\"accept_terms\""),
            "the form asks for the Terms"
        );
        let csrf_cookie = page
            .set_cookie("partnerd_csrf")
            .expect("an anonymous CSRF cookie");
        assert!(
            csrf_cookie.contains("HttpOnly") && csrf_cookie.contains("SameSite=Lax"),
            "{csrf_cookie}"
        );

        let r = c
            .post_form(
                "/signup",
                &[
                    ("name", "Ann Example"),
                    ("email", "Ann@Example.TEST"),
                    ("password", PASSWORD),
                    ("company", "Example Ltd"),
                    ("website", "ann.example.com"),
                    ("accept_terms", "yes"),
                ],
            )
            .await;
        assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
        assert_eq!(r.location(), "/panel");
        let cookie = r.set_cookie("partnerd_session").expect("a session cookie");
        for attribute in ["HttpOnly", "SameSite=Lax", "Path=/"] {
            assert!(cookie.contains(attribute), "{attribute} missing: {cookie}");
        }
        assert!(
            !cookie.contains("Secure"),
            "plain-HTTP deployments cannot send Secure cookies: {cookie}"
        );
        assert!(!cookie.contains("Domain"), "host-only: {cookie}");
        let first_token = c.session_token().expect("signed in");

        let panel = c.get("/panel").await;
        assert_eq!(panel.status, StatusCode::OK);
        assert!(
            panel.body.contains("Welcome, Ann Example"),
            "{}",
            panel.body
        );

        let partner = t
            .store
            .find_partner_by_email(&partnerd_domain::Email::parse("ann@example.test").unwrap())
            .await
            .unwrap()
            .expect("stored");
        assert_eq!(
            partner.email.as_deref(),
            Some("ann@example.test"),
            "emails are stored lower-cased"
        );
        assert_eq!(partner.company.as_deref(), Some("Example Ltd"));
        assert_eq!(partner.website.as_deref(), Some("https://ann.example.com/"));
        assert_eq!(partner.terms_version, 1);
        let hash = partner.password_hash.clone().unwrap();
        assert!(hash.starts_with("$argon2id$"), "Argon2id: {hash}");
        assert!(!hash.contains(PASSWORD));
        assert!(t.audit().await.iter().any(|e| e.action == "partner.signup"));
        let welcome = t.last_email_to("ann@example.test").await;
        assert_eq!(welcome.subject, "Welcome to the Partner Program");
        assert_eq!(
            welcome.status, "kept",
            "no SMTP configured: the email is kept for the Outbox"
        );

        // Log out: the cookie is cleared and the token is dead on the server too.
        let r = c.post_form("/logout", &[]).await;
        assert_eq!((r.status, r.location()), (StatusCode::SEE_OTHER, "/login"));
        assert!(
            r.set_cookie("partnerd_session")
                .unwrap()
                .contains("Max-Age=0")
        );
        let mut replay = t.client();
        replay.set_session(&first_token, None);
        assert_eq!(
            replay.get("/panel").await.status,
            StatusCode::SEE_OTHER,
            "a logged-out token still works"
        );

        // Log in (the email in any case): a new session token each time.
        let r = c
            .post_form(
                "/login",
                &[("email", "ANN@example.test"), ("password", PASSWORD)],
            )
            .await;
        assert_eq!((r.status, r.location()), (StatusCode::SEE_OTHER, "/panel"));
        let second_token = c.session_token().unwrap();
        assert_ne!(second_token, first_token);
        assert_eq!(c.get("/panel").await.status, StatusCode::OK);

        // Logging in again while signed in rotates the session and ends the old one.
        let r = c
            .post_form(
                "/login",
                &[("email", "ann@example.test"), ("password", PASSWORD)],
            )
            .await;
        assert_eq!(r.status, StatusCode::SEE_OTHER);
        let third_token = c.session_token().unwrap();
        assert_ne!(third_token, second_token);
        let mut old = t.client();
        old.set_session(&second_token, None);
        assert_eq!(
            old.get("/panel").await.status,
            StatusCode::SEE_OTHER,
            "the pre-log-in session survived"
        );
        assert_eq!(c.get("/panel").await.status, StatusCode::OK);
    }
);

on_both_backends!(
    each_refused_sign_up_answers_422_naming_the_field_and_writes_nothing,
    |t: TestApp| async move {
        t.partner_with("Taken Person", "taken@example.test").await;
        let long_name = "x".repeat(101);
        let cases: Vec<(&str, Vec<(&str, &str)>)> = vec![
            (
                "password",
                signup_form("Pat Weak", "pat1@example.test", "password12"),
            ),
            (
                "password",
                signup_form("Pat Short", "pat2@example.test", "short pw"),
            ),
            (
                "password",
                signup_form("Pat Self", "pat.self.name@example.test", "pat.self.name"),
            ),
            ("email", signup_form("Pat Mail", "pat@", PASSWORD)),
            ("website", {
                let mut f = signup_form("Pat Site", "pat3@example.test", PASSWORD);
                f[4] = ("website", "javascript:alert(1)");
                f
            }),
            (
                "name",
                signup_form(&long_name, "pat4@example.test", PASSWORD),
            ),
            (
                "accept_terms",
                signup_form("Pat Terms", "pat5@example.test", PASSWORD)[..5].to_vec(),
            ),
            (
                "email",
                signup_form("Pat Taken", "taken@example.test", PASSWORD),
            ),
            (
                "email",
                signup_form("Pat Taken", "TAKEN@Example.Test", PASSWORD),
            ),
        ];
        let mut c = t.client();
        for (field, form) in cases {
            let before = t.counts().await;
            let r = c.post_form("/signup", &form).await;
            assert_eq!(
                r.status,
                StatusCode::UNPROCESSABLE_ENTITY,
                "{field} {form:?}"
            );
            assert_eq!(r.field_errors(), vec![field.to_owned()], "{form:?}");
            assert!(
                c.session_token().is_none(),
                "a refused sign-up signed someone in"
            );
            assert_eq!(
                t.counts().await,
                before,
                "a refused sign-up wrote something: {form:?}"
            );
            // What was typed comes back, except the password.
            let email = form.iter().find(|(k, _)| *k == "email").unwrap().1;
            assert!(
                r.body.contains(&format!("value=\"{email}\"")),
                "the email is not re-filled"
            );
            let password = form.iter().find(|(k, _)| *k == "password").unwrap().1;
            assert!(
                !r.body.contains(&format!("value=\"{password}\"")),
                "the password was echoed"
            );
        }
        let r = c.post_form("/signup", &[]).await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
        let mut fields = r.field_errors();
        fields.sort();
        assert_eq!(fields, ["accept_terms", "email", "name", "password"]);
        assert!(
            PARTNER_FIELDS
                .iter()
                .all(|f| r.body.contains(&format!("name=\"{f}\"")))
        );
    }
);

#[tokio::test]
async fn forms_without_the_right_csrf_token_are_refused_and_write_nothing() {
    let t = TestApp::sqlite().await;
    let mut c = t.client();
    c.get("/signup").await;
    let form = signup_form("Cross Site", "cross@example.test", PASSWORD);
    let before = t.counts().await;

    let r = c.post_form_without_csrf("/signup", &form).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert!(r.body.contains("This form has expired"), "{}", r.body);
    let r = c
        .post_form_with_csrf("/signup", &form, "wrong-token-wrong-token-wrong-token-xx")
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    // A forger who knows a token but cannot set the victim's cookie.
    let token = c.csrf_cookie().unwrap();
    let mut forger = t.client();
    let r = forger.post_form_with_csrf("/signup", &form, &token).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert_eq!(t.counts().await, before);

    // Signed in, a form needs that session's own token: not the anonymous
    // cookie's, not another session's.
    let ann = t.partner("Ann Csrf").await;
    let mut a = t.signed_in(ann.subject).await;
    let other = t.app.start_session(ann.subject).await.unwrap();
    // The browser still holds its anonymous CSRF cookie from before signing in.
    let anonymous = c.csrf_cookie().expect("the anonymous CSRF cookie");
    a.set_cookie("partnerd_csrf", &anonymous);
    for token in [anonymous.as_str(), other.csrf_token.as_str(), ""] {
        let r = a
            .post_form_with_csrf("/panel/account/profile", &[("name", "Changed Name")], token)
            .await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "token {token:?}");
    }
    let r = a.post_form_without_csrf("/logout", &[]).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "log-out without a token");
    assert_eq!(
        a.get("/panel").await.status,
        StatusCode::OK,
        "a forged log-out ended the session"
    );
    assert_eq!(t.get_partner(ann.id).await.name, "Ann Csrf");
    let r = a
        .post_form(
            "/panel/account/profile",
            &[("name", "Changed Name"), ("time_zone", "Europe/Warsaw")],
        )
        .await;
    assert_eq!(
        (r.status, r.location()),
        (StatusCode::SEE_OTHER, "/panel/account")
    );
    assert_eq!(t.get_partner(ann.id).await.name, "Changed Name");
}

#[tokio::test]
async fn a_wrong_password_and_an_unknown_email_get_the_same_answer() {
    let t = TestApp::sqlite().await;
    let ann = t.partner("Ann Same").await;
    let staff = t.manager("Sam Same").await;
    for (path, known) in [("/login", &ann.email), ("/admin/login", &staff.email)] {
        let mut c = t.client();
        c.get(path).await;
        let wrong = c
            .post_form(path, &[("email", known), ("password", "not the password")])
            .await;
        let unknown = c
            .post_form(
                path,
                &[
                    ("email", "nobody@example.test"),
                    ("password", "not the password"),
                ],
            )
            .await;
        assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
        assert_eq!(unknown.status, wrong.status);
        assert!(wrong.body.contains("match an account"), "{}", wrong.body);
        let wrong_body = wrong.normalized_body().replace(known.as_str(), "EMAIL");
        let unknown_body = unknown
            .normalized_body()
            .replace("nobody@example.test", "EMAIL");
        assert_eq!(
            wrong_body, unknown_body,
            "{path}: the answers tell known emails apart"
        );
        assert!(c.session_token().is_none());
    }
    // A partner cannot use the staff sign-in, nor staff the partner one.
    let mut c = t.client();
    assert_eq!(
        c.post_form(
            "/admin/login",
            &[("email", &ann.email), ("password", PASSWORD)]
        )
        .await
        .status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        c.post_form("/login", &[("email", &staff.email), ("password", PASSWORD)])
            .await
            .status,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn five_failed_log_ins_lock_the_account_for_fifteen_minutes_from_any_network() {
    let t = TestApp::sqlite().await;
    let ann = t.partner("Ann Locked").await;
    let login = [("email", ann.email.as_str()), ("password", PASSWORD)];
    let wrong = [
        ("email", ann.email.as_str()),
        ("password", "guess guess guess"),
    ];
    let mut c = t.client();
    for attempt in 1..=5 {
        assert_eq!(
            c.post_form("/login", &wrong).await.status,
            StatusCode::UNAUTHORIZED,
            "attempt {attempt}"
        );
    }
    let r = c.post_form("/login", &login).await;
    assert_eq!(
        r.status,
        StatusCode::TOO_MANY_REQUESTS,
        "the right password after five failures"
    );
    assert_eq!(r.header("retry-after"), Some("900"));
    assert!(c.session_token().is_none());
    let mut elsewhere = t.client().with_ip("203.0.113.77");
    assert_eq!(
        elsewhere.post_form("/login", &login).await.status,
        StatusCode::TOO_MANY_REQUESTS,
        "the lock is per account"
    );

    t.advance(15 * 60 - 1);
    assert_eq!(
        c.post_form("/login", &login).await.status,
        StatusCode::TOO_MANY_REQUESTS,
        "one second before the window ends"
    );
    t.advance(1);
    let r = c.post_form("/login", &login).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "the window is over");

    // A successful log-in starts the count again.
    let mut d = t.client();
    for _ in 1..=4 {
        assert_eq!(
            d.post_form("/login", &wrong).await.status,
            StatusCode::UNAUTHORIZED
        );
    }
    assert_eq!(
        d.post_form("/login", &login).await.status,
        StatusCode::SEE_OTHER
    );
}

#[tokio::test]
async fn thirty_failed_log_ins_from_one_network_pause_it_but_not_other_networks() {
    let t = TestApp::sqlite().await;
    let ann = t.partner("Ann Network").await;
    let mut office = t.client().with_ip("198.51.100.20");
    for i in 0..30 {
        let email = format!("guess{i}@example.test");
        let r = office
            .post_form(
                "/login",
                &[("email", &email), ("password", "guess guess guess")],
            )
            .await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "attempt {i}");
    }
    let login = [("email", ann.email.as_str()), ("password", PASSWORD)];
    assert_eq!(
        office.post_form("/login", &login).await.status,
        StatusCode::TOO_MANY_REQUESTS
    );
    let mut home = t.client().with_ip("198.51.100.21");
    assert_eq!(
        home.post_form("/login", &login).await.status,
        StatusCode::SEE_OTHER
    );
    t.advance(15 * 60);
    assert_eq!(
        office.post_form("/login", &login).await.status,
        StatusCode::SEE_OTHER
    );
}

#[tokio::test]
async fn ten_sign_ups_an_hour_from_one_network_then_429_until_the_hour_is_over() {
    let t = TestApp::sqlite().await;
    let net = "198.51.100.7";
    for i in 0..10 {
        let email = format!("wave{i}@example.test");
        let r = t
            .client()
            .with_ip(net)
            .post_form("/signup", &signup_form("Wave Partner", &email, PASSWORD))
            .await;
        assert_eq!(r.status, StatusCode::SEE_OTHER, "sign-up {i}: {}", r.body);
    }
    let before = t.counts().await;
    let r = t
        .client()
        .with_ip(net)
        .post_form(
            "/signup",
            &signup_form("Wave Partner", "wave10@example.test", PASSWORD),
        )
        .await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
    assert!(r.body.contains("Too many attempts"));
    assert_eq!(
        t.counts().await,
        before,
        "a throttled sign-up wrote something"
    );
    // A forged X-Forwarded-For from an untrusted peer does not dodge the limit.
    let mut forged = t.client().with_ip(net);
    let token = forged.current_csrf().await;
    let cookie = format!("partnerd_csrf={}", forged.csrf_cookie().unwrap());
    let body = serde_urlencoded::to_string([
        ("csrf_token", token.as_str()),
        ("name", "Wave Partner"),
        ("email", "wave11@example.test"),
        ("password", PASSWORD),
        ("accept_terms", "yes"),
    ])
    .unwrap();
    let request = axum::http::Request::post("/signup")
        .header("cookie", cookie)
        .header("content-type", "application/x-www-form-urlencoded")
        .header("x-forwarded-for", "192.0.2.99")
        .extension(axum::extract::ConnectInfo(std::net::SocketAddr::new(
            net.parse().unwrap(),
            1234,
        )))
        .body(axum::body::Body::from(body))
        .unwrap();
    assert_eq!(
        forged.send_request(request).await.status,
        StatusCode::TOO_MANY_REQUESTS
    );

    let r = t
        .client()
        .with_ip("198.51.100.8")
        .post_form(
            "/signup",
            &signup_form("Other Net", "other@example.test", PASSWORD),
        )
        .await;
    assert_eq!(
        r.status,
        StatusCode::SEE_OTHER,
        "another network is not affected"
    );
    t.advance(3600 - 1);
    let r = t
        .client()
        .with_ip(net)
        .post_form(
            "/signup",
            &signup_form("Wave Partner", "wave12@example.test", PASSWORD),
        )
        .await;
    assert_eq!(
        r.status,
        StatusCode::TOO_MANY_REQUESTS,
        "one second before the hour is over"
    );
    t.advance(1);
    let r = t
        .client()
        .with_ip(net)
        .post_form(
            "/signup",
            &signup_form("Wave Partner", "wave12@example.test", PASSWORD),
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "the hour is over");
}

on_both_backends!(
    a_reset_link_sets_a_new_password_once_and_ends_every_session,
    |t: TestApp| async move {
        let ann = t.partner("Ann Reset").await;
        let mut signed_in = t.login_as(&ann).await;
        let mut c = t.client();
        assert_eq!(c.get("/password-reset").await.status, StatusCode::OK);

        let before = t.counts().await;
        let known = c
            .post_form("/password-reset", &[("email", &ann.email.to_uppercase())])
            .await;
        assert_eq!(
            t.counts().await.outbox,
            before.outbox + 1,
            "one email for the known address"
        );
        let unknown = c
            .post_form("/password-reset", &[("email", "nobody@example.test")])
            .await;
        let malformed = c
            .post_form("/password-reset", &[("email", "not-an-email")])
            .await;
        assert_eq!(
            t.counts().await.outbox,
            before.outbox + 1,
            "no email for unknown addresses"
        );
        for r in [&known, &unknown, &malformed] {
            assert_eq!(r.status, StatusCode::OK);
            assert!(
                r.body
                    .contains("If an account uses that email, a reset link is on its way.")
            );
        }
        assert_eq!(
            known.normalized_body(),
            unknown.normalized_body(),
            "the answers tell known emails apart"
        );

        let email = t.last_email_to(&ann.email).await;
        assert!(
            email.subject.starts_with("Reset your password"),
            "{}",
            email.subject
        );
        assert!(
            email.body.contains("http://127.0.0.1:8080/password-reset/"),
            "{}",
            email.body
        );
        let link = reset_path_in(&email.body);
        let form = c.get(&link).await;
        assert_eq!(form.status, StatusCode::OK);
        assert!(form.body.contains(&format!("action=\"{link}\"")));

        // The new password must pass the policy; a refused one leaves the link usable.
        let r = c.post_form(&link, &[("password", "password12")]).await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(r.field_errors(), ["password"]);
        let r = c.post_form(&link, &[("password", NEW_PASSWORD)]).await;
        assert_eq!((r.status, r.location()), (StatusCode::SEE_OTHER, "/login"));
        assert!(r.set_cookie("partnerd_flash").is_some(), "no confirmation");
        assert!(
            t.audit()
                .await
                .iter()
                .any(|e| e.action == "password.reset" && e.object == format!("partner:{}", ann.id))
        );

        assert_eq!(
            signed_in.get("/panel").await.status,
            StatusCode::SEE_OTHER,
            "a reset leaves sessions signed in"
        );
        let mut login = t.client();
        assert_eq!(
            login
                .post_form("/login", &[("email", &ann.email), ("password", PASSWORD)])
                .await
                .status,
            StatusCode::UNAUTHORIZED
        );
        assert_eq!(
            login
                .post_form(
                    "/login",
                    &[("email", &ann.email), ("password", NEW_PASSWORD)]
                )
                .await
                .status,
            StatusCode::SEE_OTHER
        );

        // Used once: both the form and the post are refused.
        let r = c.get(&link).await;
        assert_eq!(r.status, StatusCode::CONFLICT);
        assert!(r.body.contains("expired or was already used"), "{}", r.body);
        assert_eq!(
            c.post_form(&link, &[("password", "another fine passphrase")])
                .await
                .status,
            StatusCode::CONFLICT
        );
        assert_eq!(
            c.get("/password-reset/not-a-real-token").await.status,
            StatusCode::CONFLICT
        );
    }
);

on_both_backends!(
    a_reset_link_works_for_an_hour_and_not_a_second_longer,
    |t: TestApp| async move {
        let ann = t.partner("Ann Expiry").await;
        let mut c = t.client();
        let link = t.reset_link_for(&ann).await;
        t.advance(3600 - 1);
        assert_eq!(
            c.get(&link).await.status,
            StatusCode::OK,
            "one second before expiry"
        );
        t.advance(1);
        assert_eq!(c.get(&link).await.status, StatusCode::CONFLICT, "at expiry");
        assert_eq!(
            c.post_form(&link, &[("password", NEW_PASSWORD)])
                .await
                .status,
            StatusCode::CONFLICT
        );
        assert_eq!(
            t.client()
                .post_form("/login", &[("email", &ann.email), ("password", PASSWORD)])
                .await
                .status,
            StatusCode::SEE_OTHER,
            "the old password still works"
        );
    }
);

#[tokio::test]
async fn three_reset_requests_an_hour_per_email_then_the_same_429_for_known_and_unknown_emails() {
    let t = TestApp::sqlite().await;
    let ann = t.partner("Ann Many").await;
    let staff = t.manager("Sam Many").await;
    for email in [
        ann.email.as_str(),
        staff.email.as_str(),
        "nobody@example.test",
    ] {
        let mut c = t.client();
        for attempt in 1..=3 {
            let r = c.post_form("/password-reset", &[("email", email)]).await;
            assert_eq!(r.status, StatusCode::OK, "{email}, request {attempt}");
        }
        let r = c.post_form("/password-reset", &[("email", email)]).await;
        assert_eq!(
            r.status,
            StatusCode::TOO_MANY_REQUESTS,
            "{email}, request 4"
        );
    }
    assert_eq!(
        t.emails_to(&ann.email)
            .await
            .iter()
            .filter(|e| e.subject.starts_with("Reset"))
            .count(),
        3
    );
    assert_eq!(
        t.emails_to(&staff.email)
            .await
            .iter()
            .filter(|e| e.subject.starts_with("Reset"))
            .count(),
        3
    );
    // Per network: twenty requests an hour, whatever the emails.
    let mut office = t.client().with_ip("198.51.100.30");
    for i in 0..20 {
        let email = format!("someone{i}@example.test");
        let r = office
            .post_form("/password-reset", &[("email", &email)])
            .await;
        assert_eq!(r.status, StatusCode::OK, "request {i} from one network");
    }
    let r = office
        .post_form("/password-reset", &[("email", "someone-else@example.test")])
        .await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
    let r = t
        .client()
        .with_ip("198.51.100.31")
        .post_form("/password-reset", &[("email", "someone-else@example.test")])
        .await;
    assert_eq!(r.status, StatusCode::OK, "another network is not affected");
    t.advance(3600);
    assert_eq!(
        t.client()
            .post_form("/password-reset", &[("email", &ann.email)])
            .await
            .status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn changing_the_password_needs_the_current_one_and_ends_the_other_sessions() {
    let t = TestApp::sqlite().await;
    let ann = t.partner("Ann Change").await;
    let mut here = t.login_as(&ann).await;
    let mut other_device = t.login_as(&ann).await;
    assert_eq!(here.get("/panel/account").await.status, StatusCode::OK);

    let before = t.counts().await;
    let r = here
        .post_form(
            "/panel/account/password",
            &[
                ("current_password", "not my password"),
                ("new_password", NEW_PASSWORD),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(r.field_errors(), ["current_password"]);
    let r = here
        .post_form(
            "/panel/account/password",
            &[
                ("current_password", PASSWORD),
                ("new_password", "password12"),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(r.field_errors(), ["new_password"]);
    assert_eq!(t.counts().await, before);
    assert_eq!(
        other_device.get("/panel").await.status,
        StatusCode::OK,
        "a refused change ended a session"
    );

    let r = here
        .post_form(
            "/panel/account/password",
            &[
                ("current_password", PASSWORD),
                ("new_password", NEW_PASSWORD),
            ],
        )
        .await;
    assert_eq!(
        (r.status, r.location()),
        (StatusCode::SEE_OTHER, "/panel/account")
    );
    assert_eq!(
        here.get("/panel").await.status,
        StatusCode::OK,
        "the current session ended"
    );
    assert_eq!(
        other_device.get("/panel").await.status,
        StatusCode::SEE_OTHER,
        "another session survived"
    );
    assert_eq!(t.last_audit().await.action, "password.change");
    let mut c = t.client();
    assert_eq!(
        c.post_form("/login", &[("email", &ann.email), ("password", PASSWORD)])
            .await
            .status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        c.post_form(
            "/login",
            &[("email", &ann.email), ("password", NEW_PASSWORD)]
        )
        .await
        .status,
        StatusCode::SEE_OTHER
    );
}

#[tokio::test]
async fn changing_the_email_needs_the_password_tells_the_old_address_and_refuses_a_taken_one() {
    let t = TestApp::sqlite().await;
    let ann = t.partner("Ann Move").await;
    let bob = t.partner("Bob Stay").await;
    let mut c = t.signed_in(ann.subject).await;

    let before = t.counts().await;
    let r = c
        .post_form(
            "/panel/account/email",
            &[
                ("email", "ann.new@example.test"),
                ("password", "not my password"),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(r.field_errors(), ["password"]);
    let r = c
        .post_form(
            "/panel/account/email",
            &[("email", &bob.email.to_uppercase()), ("password", PASSWORD)],
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(r.field_errors(), ["email"]);
    let r = c
        .post_form(
            "/panel/account/email",
            &[("email", "not an email"), ("password", PASSWORD)],
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(r.field_errors(), ["email"]);
    assert_eq!(t.counts().await, before, "a refused change wrote something");
    assert_eq!(
        t.get_partner(ann.id).await.email.as_deref(),
        Some(ann.email.as_str())
    );

    let r = c
        .post_form(
            "/panel/account/email",
            &[("email", "Ann.New@Example.test"), ("password", PASSWORD)],
        )
        .await;
    assert_eq!(
        (r.status, r.location()),
        (StatusCode::SEE_OTHER, "/panel/account")
    );
    assert_eq!(
        t.get_partner(ann.id).await.email.as_deref(),
        Some("ann.new@example.test")
    );
    let notice = t.last_email_to(&ann.email).await;
    assert_eq!(notice.subject, "Your partner account's email was changed");
    assert!(
        notice.body.contains("ann.new@example.test"),
        "{}",
        notice.body
    );
    let audit = t.last_audit().await;
    assert_eq!(audit.action, "partner.email.change");
    // The append-only log says what changed, not the addresses (R-ACC-3).
    assert_eq!(audit.after.as_deref(), Some(r#"{"changed":["email"]}"#));

    let mut login = t.client();
    assert_eq!(
        login
            .post_form("/login", &[("email", &ann.email), ("password", PASSWORD)])
            .await
            .status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        login
            .post_form(
                "/login",
                &[("email", "ann.new@example.test"), ("password", PASSWORD)]
            )
            .await
            .status,
        StatusCode::SEE_OTHER
    );
}

#[tokio::test]
async fn a_partner_accepts_new_terms_before_using_the_panel_again() {
    let t = TestApp::sqlite().await;
    let ann = t.partner("Ann Terms").await;
    let admin = t.admin().await;
    let mut partner = t.signed_in(ann.subject).await;
    let mut console = t.signed_in(admin.subject).await;
    assert_eq!(partner.get("/panel").await.status, StatusCode::OK);

    let before = t.counts().await;
    let r = console.post_form("/admin/terms", &[("body", "   ")]).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(r.field_errors(), ["body"]);
    assert_eq!(t.counts().await, before);
    let r = console
        .post_form(
            "/admin/terms",
            &[("body", "Version two of the terms.\nNo spam, ever.")],
        )
        .await;
    assert_eq!(
        (r.status, r.location()),
        (StatusCode::SEE_OTHER, "/admin/terms")
    );
    assert_eq!(t.store.current_terms().await.unwrap().unwrap().version, 2);
    assert!(
        t.audit()
            .await
            .iter()
            .any(|e| e.action == "terms.publish" && e.actor.starts_with("staff:"))
    );

    for path in ["/panel", "/panel/account"] {
        let r = partner.get(path).await;
        assert_eq!(
            (r.status, r.location()),
            (StatusCode::SEE_OTHER, "/terms/accept"),
            "{path}"
        );
    }
    let r = partner
        .post_form("/panel/account/profile", &[("name", "Sneaky")])
        .await;
    assert_eq!(
        (r.status, r.location()),
        (StatusCode::SEE_OTHER, "/terms/accept"),
        "forms wait for the Terms too"
    );
    let page = partner.get("/terms/accept").await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.body.contains("Version two of the terms."));
    assert!(page.body.contains("I accept these terms"));
    let r = partner.post_form("/terms/accept", &[]).await;
    assert_eq!((r.status, r.location()), (StatusCode::SEE_OTHER, "/panel"));
    let panel = partner.get("/panel").await;
    assert_eq!(panel.status, StatusCode::OK);
    assert!(panel.body.contains("Welcome, Ann Terms"));
    assert!(
        !partner
            .get("/terms/accept")
            .await
            .body
            .contains("I accept these terms"),
        "asked again after accepting"
    );
    assert_eq!(t.get_partner(ann.id).await.terms_version, 2);
    assert_eq!(t.last_audit().await.action, "terms.accept");

    // New partners accept the current version when they sign up.
    let signup = t.client().get("/signup").await;
    assert!(signup.body.contains("(version 2)"));
    let bea = t.partner("Bea New").await;
    assert_eq!(t.get_partner(bea.id).await.terms_version, 2);
}

#[tokio::test]
async fn a_partner_deletes_their_account_with_the_password_and_is_anonymised() {
    let t = TestApp::sqlite().await;
    let ann = t.partner("Ann Leaving").await;
    let mut c = t.login_as(&ann).await;
    let other_device = t.app.start_session(ann.subject).await.unwrap();
    let before = t.counts().await;
    let r = c
        .post_form("/panel/account/delete", &[("password", "not my password")])
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(r.field_errors(), ["delete_password"]);
    assert_eq!(t.counts().await, before);
    assert!(!t.get_partner(ann.id).await.is_removed());

    let token = c.session_token().unwrap();
    let r = c
        .post_form("/panel/account/delete", &[("password", PASSWORD)])
        .await;
    assert_eq!((r.status, r.location()), (StatusCode::SEE_OTHER, "/"));
    assert!(
        r.set_cookie("partnerd_session")
            .unwrap()
            .contains("Max-Age=0")
    );
    let removed = t.get_partner(ann.id).await;
    assert_eq!(removed.status, "removed");
    assert_eq!(removed.email, None);
    assert_eq!(removed.name, "Removed partner");
    assert_eq!(
        (removed.company, removed.website, removed.password_hash),
        (None, None, None)
    );
    assert_eq!(removed.removal_kind.as_deref(), Some("requested"));
    let audit = t.last_audit().await;
    assert_eq!(audit.action, "partner.remove");
    assert_eq!(audit.object, format!("partner:{}", ann.id));
    assert!(audit.actor.starts_with("partner:"));

    for old in [token, other_device.token] {
        let mut replay = t.client();
        replay.set_session(&old, None);
        assert_eq!(
            replay.get("/panel").await.status,
            StatusCode::SEE_OTHER,
            "a session outlived the removal"
        );
    }
    let mut login = t.client();
    assert_eq!(
        login
            .post_form("/login", &[("email", &ann.email), ("password", PASSWORD)])
            .await
            .status,
        StatusCode::UNAUTHORIZED
    );
    // The address is free again.
    let again = t.partner_with("Ann Returning", &ann.email).await;
    assert_ne!(again.id, ann.id);
}

#[tokio::test]
async fn a_partner_session_lasts_fourteen_days() {
    let t = TestApp::sqlite().await;
    let ann = t.partner("Ann Long").await;
    let mut c = t.login_as(&ann).await;
    let r = t
        .client()
        .post_form("/login", &[("email", &ann.email), ("password", PASSWORD)])
        .await;
    assert!(
        r.set_cookie("partnerd_session")
            .unwrap()
            .contains(&format!("Max-Age={}", 14 * 86_400))
    );
    t.advance(14 * 86_400 - 1);
    assert_eq!(c.get("/panel").await.status, StatusCode::OK);
    t.advance(1);
    assert_eq!(c.get("/panel").await.status, StatusCode::SEE_OTHER);
}

#[tokio::test]
async fn the_minimum_password_length_is_ten_by_default_and_an_admin_setting() {
    let t = TestApp::sqlite().await;
    let mut c = t.client();
    let page = c.get("/signup").await;
    assert!(page.body.contains("At least 10 characters"));
    let r = c
        .post_form(
            "/signup",
            &signup_form("Nina Nine", "nina@example.test", "nine char"),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(r.field_errors(), ["password"]);
    assert!(
        r.body.contains("must be at least 10 characters"),
        "{}",
        r.body
    );
    let r = c
        .post_form(
            "/signup",
            &signup_form("Tess Ten", "tess@example.test", "ten chars!"),
        )
        .await;
    assert_eq!(
        r.status,
        StatusCode::SEE_OTHER,
        "a ten-character password: {}",
        r.body
    );
    let mut tess = c;

    let admin = t.admin().await;
    let r = t
        .signed_in(admin.subject)
        .await
        .post_form("/admin/settings", &[("password_min_length", "12")])
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    let mut c = t.client();
    assert!(
        c.get("/signup")
            .await
            .body
            .contains("At least 12 characters")
    );
    let r = c
        .post_form(
            "/signup",
            &signup_form("Eli Eleven", "eli@example.test", "eleven char"),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(r.body.contains("must be at least 12 characters"));
    let r = tess
        .post_form(
            "/panel/account/password",
            &[
                ("current_password", "ten chars!"),
                ("new_password", "eleven char"),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(r.field_errors(), ["new_password"]);
    // Existing passwords keep working.
    assert_eq!(
        t.client()
            .post_form(
                "/login",
                &[("email", "tess@example.test"), ("password", "ten chars!")]
            )
            .await
            .status,
        StatusCode::SEE_OTHER
    );
}

#[tokio::test]
async fn profile_changes_are_validated_and_audited() {
    let t = TestApp::sqlite().await;
    let ann = t.partner("Ann Profile").await;
    let mut c = t.signed_in(ann.subject).await;
    let before = t.counts().await;
    for (form, field) in [
        (vec![("name", ""), ("time_zone", "UTC")], "name"),
        (
            vec![("name", "Ann"), ("website", "javascript:alert(1)")],
            "website",
        ),
        (
            vec![("name", "Ann"), ("time_zone", "Europe/Warsaw; drop")],
            "time_zone",
        ),
    ] {
        let r = c.post_form("/panel/account/profile", &form).await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{form:?}");
        assert_eq!(r.field_errors(), [field], "{form:?}");
    }
    assert_eq!(t.counts().await, before);
    let r = c
        .post_form(
            "/panel/account/profile",
            &[
                ("name", "Ann Renamed"),
                ("company", "Acme"),
                ("website", "acme.example"),
                ("time_zone", "Europe/Warsaw"),
            ],
        )
        .await;
    assert_eq!(
        (r.status, r.location()),
        (StatusCode::SEE_OTHER, "/panel/account")
    );
    let page = c.get("/panel/account").await;
    assert!(
        page.body.contains("Your profile was saved."),
        "the flash message is missing"
    );
    assert!(page.body.contains("value=\"https://acme.example/\""));
    let partner = t.get_partner(ann.id).await;
    assert_eq!(
        (partner.name.as_str(), partner.time_zone.as_str()),
        ("Ann Renamed", "Europe/Warsaw")
    );
    assert_eq!(t.last_audit().await.action, "partner.profile.update");
    assert!(
        !c.get("/panel/account")
            .await
            .body
            .contains("Your profile was saved."),
        "the flash message shows twice"
    );
}

#[tokio::test]
async fn an_oversized_form_is_refused_with_413_and_writes_nothing() {
    let t = TestApp::sqlite().await;
    let mut c = t.client();
    let before = t.counts().await;
    let huge = "x".repeat(300 * 1024);
    let r = c
        .post_form(
            "/signup",
            &[
                ("name", huge.as_str()),
                ("email", "huge@example.test"),
                ("password", PASSWORD),
                ("accept_terms", "yes"),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert!(r.body.contains("Too much data"), "{}", r.body);
    assert_eq!(t.counts().await, before);
}

#[tokio::test]
async fn after_removal_no_stored_email_or_audit_entry_holds_the_partners_personal_data() {
    let t = TestApp::sqlite().await;
    let ann = t
        .partner_with("Annabel Erasable", "annabel.erasable@example.test")
        .await;
    let mut c = t.signed_in(ann.subject).await;
    let r = c
        .post_form(
            "/panel/account/email",
            &[
                ("email", "annabel.second@example.test"),
                ("password", PASSWORD),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    let r = c
        .post_form("/panel/account/delete", &[("password", PASSWORD)])
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    for needle in [
        "annabel.erasable@example.test",
        "annabel.second@example.test",
        "Annabel Erasable",
    ] {
        let in_outbox = t
            .outbox()
            .await
            .into_iter()
            .filter(|e| e.to_address.contains(needle) || e.body.contains(needle))
            .count();
        let in_audit = t
            .audit()
            .await
            .into_iter()
            .filter(|e| format!("{:?} {:?}", e.before, e.after).contains(needle))
            .count();
        assert_eq!((in_outbox, in_audit), (0, 0), "{needle} is still stored");
    }
}
