//! Affiliate links, clicks, sign-ups and the UTM report through the whole
//! router (R-AFF-1..7, R-REP-1..2; CONTRACT.md `/r` and `/api/v1`): the
//! redirect and its cookie, bots, unsafe input, attribution with its reasons
//! and the cookie window at its edge (fake clock), self-referral, the API's
//! validation, and the report in the partner's time zone.

use std::collections::BTreeMap;

use axum::http::StatusCode;
use partnerd_app::Config;
use partnerd_app::tracking::{CampaignInput, ReferralToken};
use partnerd_domain::Timestamp;
use serde_json::{Value, json};

use crate::helpers::{Account, Client, Db, Resp, START, TestApp, on_both_backends};

/// A desktop browser's user agent: clicks without one are bots.
const CHROME: &str = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/130.0 Safari/537.36";
const FIREFOX: &str =
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:133.0) Gecko/20100101 Firefox/133.0";
/// The program's main page (the default setting).
const MAIN: &str = "https://www.example.com/";
/// 120 days (the default `cookie_days`) in seconds.
const COOKIE_SECONDS: i64 = 120 * 86_400;
const REF_COOKIE: &str = "partnerd_ref";

// --- helpers -----------------------------------------------------------------------------

/// A browser with no cookies.
fn browser(t: &TestApp) -> Client {
    t.client().with_header("user-agent", CHROME)
}

/// The query parameters of a `Location`.
fn params(location: &str) -> BTreeMap<String, String> {
    let url = url::Url::parse(location).unwrap_or_else(|e| panic!("{location}: {e}"));
    url.query_pairs()
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

/// Follows a link: asserts the `302` and, when the answer carries a token,
/// that the cookie holds the same one. Returns the answer and the token.
async fn click(c: &mut Client, path: &str) -> (Resp, Option<String>) {
    let r = c.get(path).await;
    assert_eq!(r.status, StatusCode::FOUND, "{path}: {}", r.body);
    assert_eq!(r.header("cache-control"), Some("no-store"), "{path}");
    let token = params(r.location()).get("ref").cloned();
    let cookie = r.set_cookie(REF_COOKIE);
    match (&token, &cookie) {
        (Some(token), Some(cookie)) => assert!(
            cookie.starts_with(&format!("{REF_COOKIE}={token};")),
            "{path}: the cookie {cookie} does not hold the token {token}"
        ),
        (None, None) => {}
        _ => panic!("{path}: token {token:?} but cookie {cookie:?}"),
    }
    (r, token)
}

/// A browser click that must be tracked; its token.
async fn tracked(c: &mut Client, path: &str) -> String {
    let (r, token) = click(c, path).await;
    token.unwrap_or_else(|| panic!("{path}: no token in {}", r.location()))
}

/// A click that must go to the main page, untracked.
async fn untracked(c: &mut Client, path: &str) {
    let (r, token) = click(c, path).await;
    assert_eq!(r.location(), MAIN, "{path}");
    assert_eq!(token, None, "{path}");
    assert!(r.set_cookies().is_empty(), "{path}: {:?}", r.set_cookies());
}

fn click_id(t: &TestApp, token: &str) -> i64 {
    ReferralToken::decode(token, &t.app.keys)
        .unwrap_or_else(|| panic!("not a token of ours: {token}"))
        .click_id
}

async fn count(t: &TestApp, table: &str) -> i64 {
    t.sql_scalar(&format!("select count(*) from {table}")).await
}

/// Rows in every table a refused request must not touch.
async fn written(t: &TestApp) -> [i64; 6] {
    [
        count(t, "clicks").await,
        count(t, "signups").await,
        count(t, "campaigns").await,
        count(t, "report_rollups").await,
        count(t, "partners").await,
        count(t, "audit_log").await,
    ]
}

async fn sign_up(
    api: &mut Client,
    customer: &str,
    email: Option<&str>,
    referral: Option<&str>,
) -> Resp {
    let mut body = json!({ "customer_id": customer });
    if let Some(email) = email {
        body["email"] = json!(email);
    }
    if let Some(referral) = referral {
        body["referral"] = json!(referral);
    }
    api.post_json("/api/v1/signups", &body).await
}

/// A sign-up that must be recorded (`201`); its answer.
async fn new_signup(
    api: &mut Client,
    customer: &str,
    email: Option<&str>,
    referral: Option<&str>,
) -> Value {
    let r = sign_up(api, customer, email, referral).await;
    assert_eq!(r.status, StatusCode::CREATED, "{customer}: {}", r.body);
    r.json()
}

async fn attribution(api: &mut Client, customer: &str) -> Value {
    let r = api
        .get(&format!("/api/v1/customers/{customer}/attribution"))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{customer}: {}", r.body);
    r.json()
}

async fn report(api: &mut Client, public_id: &str, query: &str) -> Value {
    let r = api
        .get(&format!("/api/v1/partners/{public_id}/report{query}"))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{query}: {}", r.body);
    r.json()
}

/// `(utm_campaign, utm_term) → [clicks, bot_clicks, unique_visitors, signups]`.
fn rows(report: &Value) -> BTreeMap<(String, String), [i64; 4]> {
    report["rows"]
        .as_array()
        .expect("rows")
        .iter()
        .map(|row| {
            (
                (
                    row["utm_campaign"].as_str().unwrap().to_owned(),
                    row["utm_term"].as_str().unwrap().to_owned(),
                ),
                [
                    row["clicks"].as_i64().unwrap(),
                    row["bot_clicks"].as_i64().unwrap(),
                    row["unique_visitors"].as_i64().unwrap(),
                    row["signups"].as_i64().unwrap(),
                ],
            )
        })
        .collect()
}

fn key(campaign: &str, term: &str) -> (String, String) {
    (campaign.to_owned(), term.to_owned())
}

/// `date → clicks` of the report's daily series.
fn daily_clicks(report: &Value) -> BTreeMap<String, i64> {
    report["days"]
        .as_array()
        .expect("days")
        .iter()
        .map(|d| {
            (
                d["date"].as_str().unwrap().to_owned(),
                d["clicks"].as_i64().unwrap(),
            )
        })
        .collect()
}

/// The fields a `422` names.
fn invalid_fields(r: &Resp) -> Vec<String> {
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.body);
    let body = r.json();
    assert!(body["error"].is_string(), "{}", r.body);
    body["fields"]
        .as_object()
        .unwrap_or_else(|| panic!("no fields: {}", r.body))
        .keys()
        .cloned()
        .collect()
}

async fn campaign(
    t: &TestApp,
    partner: &Account,
    input: CampaignInput,
) -> partnerd_store::Campaign {
    t.app
        .create_campaign("test", partner.id, &input)
        .await
        .expect("create a campaign")
}

fn spring() -> CampaignInput {
    CampaignInput {
        name: "Spring Sale".into(),
        trial_days: Some(60),
        discount_percent: Some(20),
        custom: Some("newsletter".into()),
        landing_url: Some("https://www.example.com/pricing?lang=en".into()),
    }
}

const SPRING: &str = "spring-sale-t60-d20";

async fn remove(t: &TestApp, partner: &Account) {
    t.app
        .remove_for_violation("test", partner.id, "Spam, against section 4")
        .await
        .expect("remove the partner");
}

// --- the redirect ---------------------------------------------------------------------------

/// The same link with its partner id's first letter percent-escaped: the
/// router decodes it to the same id, but the redirect's lane
/// (`partnerd_web::Service`) leaves such paths to the router.
fn through_the_router(path: &str) -> String {
    let rest = path.strip_prefix("/r/").expect("a redirect path");
    let first = rest.chars().next().expect("a partner id");
    format!("/r/%{:02X}{}", u32::from(first), &rest[first.len_utf8()..])
}

on_both_backends!(
    the_redirects_lane_answers_as_the_router_does,
    |t: TestApp| async move {
        let ann = t.partner("Ann Lane").await;
        let id = t.public_id(&ann).await;
        campaign(&t, &ann, spring()).await;
        for path in [
            format!("/r/{id}"),
            format!("/r/{id}/{SPRING}?utm_term=kw&sub1=a"),
            format!("/r/{id}/default_link"),
            format!("/r/{id}/no-such-campaign"),
            "/r/Unknown0000".to_owned(),
        ] {
            let (lane, lane_token) = click(&mut browser(&t), &path).await;
            let routed_path = through_the_router(&path);
            let (routed, routed_token) = click(&mut browser(&t), &routed_path).await;
            assert_eq!(lane_token.is_some(), routed_token.is_some(), "{path}");
            let without_ref = |location: &str| {
                let mut p = params(location);
                p.remove("ref");
                (location.split('?').next().map(str::to_owned), p)
            };
            assert_eq!(
                without_ref(lane.location()),
                without_ref(routed.location()),
                "{path} and {routed_path}"
            );
            let names = |r: &Resp| {
                r.headers
                    .keys()
                    .map(|k| k.as_str().to_owned())
                    .collect::<std::collections::BTreeSet<_>>()
            };
            assert_eq!(names(&lane), names(&routed), "{path}: the headers");
        }
        // Two clicks per known link; the unknown partner's and the unknown
        // campaign's are not recorded (R-AFF-3).
        assert_eq!(count(&t, "clicks").await, 6);
    }
);

on_both_backends!(
    a_click_redirects_to_the_landing_page_with_the_tags_and_the_token_and_sets_the_cookie,
    |t: TestApp| async move {
        let mut api = t.api().await;
        // R-AFF-1: a partner made through the API gets an id and its link.
        let r = api
            .post_json(
                "/api/v1/partners",
                &json!({ "email": "lena@example.test", "name": "Lena Link" }),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
        let created = r.json();
        let id = created["id"].as_str().unwrap().to_owned();
        assert!(
            partnerd_domain::PublicPartnerId::parse(&id).is_some(),
            "{id}"
        );
        assert!(
            created["referral_link"]
                .as_str()
                .unwrap()
                .ends_with(&format!("/r/{id}")),
            "{created}"
        );

        // The default link, from a page that links to it.
        let mut visitor = browser(&t).with_header(
            "referer",
            "https://blog.example.org/post?id=7&reader=ann@mail.test",
        );
        let r = visitor
            .get(&format!(
                "/r/{id}?sub1=s1&sub2=s2&sub3=s3&sub4=s4&sub5=s5&other=ignored"
            ))
            .await;
        assert_eq!(r.status, StatusCode::FOUND);
        let location = r.location().to_owned();
        assert!(location.starts_with(MAIN), "{location}");
        let query = params(&location);
        let token = query["ref"].clone();
        let expected: BTreeMap<String, String> = [
            ("utm_source", "partner"),
            ("utm_medium", "affiliate"),
            ("utm_campaign", "default_link"),
            ("utm_term", ""),
            ("ref", token.as_str()),
        ]
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
        assert_eq!(
            query, expected,
            "an empty utm_term without a campaign or ?utm_term"
        );
        // R-AFF-3: the cookie lasts exactly cookie_days; the vendor's pages can read it.
        let cookie = r.set_cookie(REF_COOKIE).expect("the referral cookie");
        assert_eq!(
            cookie,
            format!("{REF_COOKIE}={token}; Max-Age={COOKIE_SECONDS}; Path=/; SameSite=Lax")
        );
        assert_eq!(COOKIE_SECONDS, 10_368_000);

        // The click is committed before the answer: its row is there, with the
        // sub-ids and the referring host only.
        let id_of_click = click_id(&t, &token);
        let stored = t
            .store
            .get_click(id_of_click)
            .await
            .unwrap()
            .expect("the click row");
        assert_eq!(
            (
                stored.at,
                stored.agent.as_str(),
                stored.own_session,
                stored.campaign_id
            ),
            (START.millis(), "browser", 0, None)
        );
        let row = t
            .sql_texts(&format!(
                "select sub1, sub2, sub3, sub4, sub5, referrer_host, utm_term from clicks where id = {id_of_click}"
            ))
            .await;
        let some = |s: &str| Some(s.to_owned());
        assert_eq!(
            row,
            vec![vec![
                some("s1"),
                some("s2"),
                some("s3"),
                some("s4"),
                some("s5"),
                some("blog.example.org"),
                None
            ]]
        );
        let everything = t
            .sql_texts(&format!(
                "select sub1, sub2, sub3, sub4, sub5, referrer_host, utm_term, agent, network, visitor from clicks where id = {id_of_click}"
            ))
            .await;
        assert!(
            !format!("{everything:?}").contains("ann@mail.test"),
            "the full referrer was kept"
        );

        // A campaign made after the partner was cached works at once on this node.
        let r = api
            .post_json(
                &format!("/api/v1/partners/{id}/campaigns"),
                &json!({ "name": "Spring Sale", "trial_days": 60, "discount_percent": 20, "custom": "newsletter",
                         "landing_url": "https://www.example.com/pricing?lang=en" }),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
        let made = r.json();
        assert_eq!(made["slug"], SPRING);
        assert!(made["id"].is_i64());
        assert!(
            made["link"]
                .as_str()
                .unwrap()
                .ends_with(&format!("/r/{id}/{SPRING}")),
            "{made}"
        );

        let mut visitor = browser(&t);
        let (r, token) = click(&mut visitor, &format!("/r/{id}/{SPRING}")).await;
        let token = token.expect("a token");
        let location = url::Url::parse(r.location()).unwrap();
        assert_eq!(
            (location.host_str(), location.path()),
            (Some("www.example.com"), "/pricing")
        );
        let query = params(r.location());
        assert_eq!(query["lang"], "en", "the page's own parameters are kept");
        assert_eq!(
            (query["utm_campaign"].as_str(), query["utm_term"].as_str()),
            (SPRING, "newsletter")
        );
        let decoded = ReferralToken::decode(&token, &t.app.keys).unwrap();
        assert_eq!(
            (decoded.partner.as_str(), decoded.campaign_id),
            (id.as_str(), made["id"].as_i64())
        );
        assert_eq!(decoded.clicked_at_seconds, START.millis() / 1000);

        // R-AFF-5: ?utm_term overrides the campaign's custom parameter.
        let (r, _) = click(
            &mut visitor,
            &format!("/r/{id}/{SPRING}?utm_term=kw%20chat"),
        )
        .await;
        assert_eq!(params(r.location())["utm_term"], "kw chat");
        let (r, _) = click(&mut visitor, &format!("/r/{id}?utm_term=brand")).await;
        let query = params(r.location());
        assert_eq!(
            (query["utm_campaign"].as_str(), query["utm_term"].as_str()),
            ("default_link", "brand")
        );
        // `default_link` names the basic link too.
        let (r, _) = click(&mut visitor, &format!("/r/{id}/default_link")).await;
        assert_eq!(params(r.location())["utm_campaign"], "default_link");

        // R-REP-1: every click is in the report as soon as its redirect answered.
        let report = report(&mut api, &id, "").await;
        let expected: BTreeMap<_, _> = [
            // One visitor (same network and browser), whatever page it came from.
            (key("default_link", ""), [2, 0, 1, 0]),
            (key(SPRING, "newsletter"), [1, 0, 1, 0]),
            (key(SPRING, "kw chat"), [1, 0, 1, 0]),
            (key("default_link", "brand"), [1, 0, 1, 0]),
        ]
        .into_iter()
        .collect();
        assert_eq!(rows(&report), expected, "{report}");
        assert_eq!(report["totals"]["clicks"], 5);
        assert_eq!(count(&t, "clicks").await, 5);
    }
);

#[tokio::test]
async fn the_cookie_is_set_on_the_configured_domain_and_is_secure_over_https() {
    for db in Db::available() {
        let config = Config {
            cookie_domain: Some("example.com".into()),
            public_url: Some("https://go.example.com".into()),
            ..Default::default()
        };
        let t = TestApp::on(db, config).await;
        let ann = t.partner("Ann Domain").await;
        let id = t.public_id(&ann).await;
        let (r, token) = click(&mut browser(&t), &format!("/r/{id}")).await;
        let token = token.expect("a token");
        assert_eq!(
            r.set_cookie(REF_COOKIE).unwrap(),
            format!(
                "{REF_COOKIE}={token}; Max-Age={COOKIE_SECONDS}; Path=/; SameSite=Lax; Domain=example.com; Secure"
            ),
            "{db:?}"
        );
    }
}

on_both_backends!(
    bots_are_redirected_and_counted_apart_but_never_get_a_token,
    |t: TestApp| async move {
        let ann = t.partner("Ann Bots").await;
        let id = t.public_id(&ann).await;
        let mut bots = vec![
            t.client().with_header(
                "user-agent",
                "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
            ),
            t.client().with_header(
                "user-agent",
                "facebookexternalhit/1.1 (+http://www.facebook.com/externalhit_uatext.php)",
            ),
            t.client().with_header(
                "user-agent",
                "Slackbot-LinkExpanding 1.0 (+https://api.slack.com/robots)",
            ),
            t.client().with_header("user-agent", "curl/8.5.0"),
            // No user agent at all.
            t.client(),
            // Speculative loads of a real browser.
            browser(&t).with_header("sec-purpose", "prefetch;prerender"),
            browser(&t).with_header("purpose", "prefetch"),
        ];
        for bot in &mut bots {
            let (r, token) = click(bot, &format!("/r/{id}?utm_term=kw")).await;
            assert_eq!(token, None, "{:?}", r.headers);
            assert!(r.set_cookie(REF_COOKIE).is_none());
            // Redirected all the same, with the tags.
            let query = params(r.location());
            assert_eq!(
                (query["utm_campaign"].as_str(), query["utm_term"].as_str()),
                ("default_link", "kw")
            );
        }
        // CONTRACT.md: curl with a browser's User-Agent is a browser.
        let curl_as_browser = tracked(
            &mut t.client().with_header("user-agent", CHROME),
            &format!("/r/{id}?utm_term=kw"),
        )
        .await;
        assert_eq!(count(&t, "clicks").await, 8);
        assert_eq!(
            t.sql_scalar("select count(*) from clicks where agent = 'bot'")
                .await,
            7
        );

        let mut api = t.api().await;
        let report = report(&mut api, &id, "").await;
        assert_eq!(
            rows(&report),
            [(key("default_link", "kw"), [1, 7, 1, 0])]
                .into_iter()
                .collect(),
            "{report}"
        );
        assert_eq!(
            (
                report["totals"]["clicks"].as_i64(),
                report["totals"]["bot_clicks"].as_i64()
            ),
            (Some(1), Some(7))
        );

        // A bot's click is never attributed, even if a token named it.
        let bot_click = t
            .sql_scalar("select min(id) from clicks where agent = 'bot'")
            .await;
        let forged = ReferralToken {
            partner: id.clone(),
            campaign_id: None,
            click_id: bot_click,
            clicked_at_seconds: START.millis() / 1000,
        }
        .encode(&t.app.keys);
        let answer = new_signup(&mut api, "cus_bot", None, Some(&forged)).await;
        assert_eq!(
            (answer["reason"].as_str(), answer["credited"].as_bool()),
            (Some("bot"), Some(false)),
            "{answer}"
        );
        assert_eq!(answer["partner_id"], Value::Null);
        let why = attribution(&mut api, "cus_bot").await;
        assert_eq!(
            (why["click"]["id"].as_i64(), why["click"]["agent"].as_str()),
            (Some(bot_click), Some("bot"))
        );
        assert!(
            why["explanation"].as_str().unwrap().contains("crawler"),
            "{why}"
        );
        let answer = new_signup(&mut api, "cus_browser", None, Some(&curl_as_browser)).await;
        assert_eq!(answer["reason"], "last_click");
    }
);

on_both_backends!(
    unknown_malformed_and_removed_partners_and_bad_slugs_go_to_the_main_page_untracked,
    |t: TestApp| async move {
        let ann = t.partner("Ann Valid").await;
        let ann_id = t.public_id(&ann).await;
        campaign(&t, &ann, spring()).await;
        let rex = t.partner("Rex Removed").await;
        let rex_id = t.public_id(&rex).await;
        campaign(&t, &rex, spring()).await;
        remove(&t, &rex).await;
        let before = written(&t).await;
        let long_slug = "a".repeat(65);
        let paths = [
            // Well-formed, nobody's.
            "/r/abcdefghijk".to_owned(),
            "/r/abcdefghijk/default_link?utm_term=x".to_owned(),
            // Malformed: short, long, characters outside the alphabet, markup.
            "/r/short".to_owned(),
            "/r/ABCDEFGHIJKLMNOPQRSTUVWXYZ".to_owned(),
            "/r/abcdefghij0".to_owned(),
            "/r/abcdefghijI".to_owned(),
            "/r/%3Cscript%3Ealert(1)%3C%2Fscript%3E".to_owned(),
            "/r/..%2F..%2Fadmin".to_owned(),
            format!("/r/{ann_id}x"),
            format!("/r/{}", ann_id.to_uppercase()),
            // Removed (R-ACC-3): no tracking, whatever the link.
            format!("/r/{rex_id}"),
            format!("/r/{rex_id}/{SPRING}"),
            // Unknown or malformed campaign slugs of a real partner.
            format!("/r/{ann_id}/no-such-campaign"),
            format!("/r/{ann_id}/Spring-Sale-t60-d20"),
            format!("/r/{ann_id}/spring%20sale"),
            format!("/r/{ann_id}/spring.sale"),
            format!("/r/{ann_id}/%2e%2e"),
            format!("/r/{ann_id}/{long_slug}"),
            format!("/r/{ann_id}/%3Cb%3E"),
        ];
        for path in &paths {
            // An id without lower-case letters (one in a few thousand) is its
            // own upper-case form: that path is then Ann's real link.
            if *path == format!("/r/{ann_id}") {
                continue;
            }
            untracked(&mut browser(&t), path).await;
        }
        assert_eq!(
            written(&t).await,
            before,
            "an untracked click wrote something"
        );
        // The same partner's real links still work.
        tracked(&mut browser(&t), &format!("/r/{ann_id}/{SPRING}")).await;
        assert_eq!(count(&t, "clicks").await, before[0] + 1);
    }
);

#[tokio::test]
async fn an_oversized_query_is_not_read_and_still_gets_the_safe_redirect() {
    let t = TestApp::sqlite().await;
    let ann = t.partner("Ann Long").await;
    let id = t.public_id(&ann).await;
    // At the limit (4096 bytes) the query is read; the term is cut to 200 characters.
    let at_limit = format!("utm_term={}", "k".repeat(4096 - "utm_term=".len()));
    assert_eq!(at_limit.len(), 4096);
    let (r, token) = click(&mut browser(&t), &format!("/r/{id}?{at_limit}")).await;
    assert!(token.is_some());
    assert_eq!(params(r.location())["utm_term"], "k".repeat(200));
    // One byte more: not read at all, the click is still tracked.
    let over = format!("{at_limit}k");
    let (r, token) = click(&mut browser(&t), &format!("/r/{id}?{over}")).await;
    let token = token.expect("still tracked");
    assert_eq!(params(r.location())["utm_term"], "", "{}", r.location());
    assert!(
        r.location().starts_with(MAIN) && r.location().len() < 600,
        "{}",
        r.location()
    );
    let stored = t
        .store
        .get_click(click_id(&t, &token))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.utm_term, None);
    // Huge and hostile, to nobody: the main page.
    let hostile = format!(
        "utm_term={}&sub1=%00%0d%0aSet-Cookie:x=1&next=https://evil.test/",
        "x".repeat(20_000)
    );
    untracked(&mut browser(&t), &format!("/r/abcdefghijk?{hostile}")).await;
    let (r, _) = click(&mut browser(&t), &format!("/r/{id}?{hostile}")).await;
    assert!(
        r.location().starts_with(MAIN) && !r.location().contains("evil"),
        "{}",
        r.location()
    );
    // Control characters in a short query are dropped, never put in a header.
    let (r, token) = click(
        &mut browser(&t),
        &format!("/r/{id}?utm_term=a%0d%0ab&sub1=x%00y"),
    )
    .await;
    assert_eq!(params(r.location())["utm_term"], "ab");
    let row = t
        .sql_texts(&format!(
            "select sub1 from clicks where id = {}",
            click_id(&t, &token.unwrap())
        ))
        .await;
    assert_eq!(row, vec![vec![Some("xy".to_owned())]]);
}

on_both_backends!(
    landing_pages_outside_the_allowed_domains_are_refused,
    |t: TestApp| async move {
        let ann = t.partner("Ann Landing").await;
        let id = t.public_id(&ann).await;
        let mut api = t.api().await;
        let path = format!("/api/v1/partners/{id}/campaigns");
        let before = written(&t).await;
        for bad in [
            "https://evil.test/",
            "https://www.example.com.evil.test/",
            "https://notexample.com/",
            "https://example.com@evil.test/",
            "https://user:pw@www.example.com/",
            "javascript:alert(1)",
            "data:text/html,hi",
            "//www.example.com/",
            "/pricing",
            "ftp://www.example.com/",
            "https://evil.test/?u=https://www.example.com/",
            "https://evil.test\\@www.example.com/",
            "https://www.ex\u{0430}mple.com/",
        ] {
            let r = api
                .post_json(
                    &path,
                    &json!({ "name": "Open Redirect", "landing_url": bad }),
                )
                .await;
            assert_eq!(invalid_fields(&r), vec!["landing_url"], "{bad}: {}", r.body);
        }
        // The panel's campaign builder refuses it too (the page itself is not checked here).
        let mut panel = t.signed_in(ann.subject).await;
        let r = panel
            .post_form(
                "/panel/campaigns",
                &[
                    ("name", "Open Redirect"),
                    ("landing_url", "https://evil.test/"),
                ],
            )
            .await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
        // Other invalid campaigns (R-AFF-2: only the program's options).
        for (body, field) in [
            (json!({ "name": "Odd", "trial_days": 45 }), "trial_days"),
            (
                json!({ "name": "Odd", "discount_percent": 15 }),
                "discount_percent",
            ),
            (json!({ "name": "   " }), "name"),
            (json!({ "name": "x".repeat(81) }), "name"),
            (
                json!({ "name": "Odd", "custom": "c".repeat(101) }),
                "custom",
            ),
        ] {
            let r = api.post_json(&path, &body).await;
            assert_eq!(invalid_fields(&r), vec![field], "{body}");
        }
        assert_eq!(
            written(&t).await,
            before,
            "a refused campaign wrote something"
        );

        // A subdomain of an allowed domain is fine; the same slug twice is not.
        let ok = json!({ "name": "Shop", "landing_url": "https://shop.example.com/x" });
        assert_eq!(api.post_json(&path, &ok).await.status, StatusCode::CREATED);
        let r = api.post_json(&path, &ok).await;
        assert_eq!(invalid_fields(&r), vec!["name"]);
        let (r, _) = click(&mut browser(&t), &format!("/r/{id}/shop")).await;
        assert!(
            r.location()
                .starts_with("https://shop.example.com/x?utm_source=partner"),
            "{}",
            r.location()
        );
        // Unknown and removed partners have no campaigns to make.
        let r = api
            .post_json(
                "/api/v1/partners/abcdefghijk/campaigns",
                &json!({ "name": "Ghost" }),
            )
            .await;
        assert_eq!(r.status, StatusCode::NOT_FOUND);
        remove(&t, &ann).await;
        let r = api.post_json(&path, &json!({ "name": "Late" })).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND);
        assert_eq!(count(&t, "campaigns").await, 1);
    }
);

// --- attribution ---------------------------------------------------------------------------

on_both_backends!(
    a_sign_up_with_a_token_is_credited_with_the_campaign_s_offer_once_per_customer,
    |t: TestApp| async move {
        let ann = t.partner("Ann Credit").await;
        let id = t.public_id(&ann).await;
        let made = campaign(&t, &ann, spring()).await;
        let mut visitor = browser(&t);
        let token = tracked(&mut visitor, &format!("/r/{id}/{SPRING}?utm_term=kw1")).await;
        let mut api = t.api().await;
        t.advance(3600);
        let r = sign_up(
            &mut api,
            "cus_A1",
            Some("new.customer@example.org"),
            Some(&token),
        )
        .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
        let first = r.json();
        // R-AFF-4, R-AFF-6: credited, with the campaign's trial and discount.
        assert_eq!(
            first,
            json!({
                "customer_id": "cus_A1",
                "partner_id": id,
                "referred_partner_id": id,
                "credited": true,
                "campaign": "Spring Sale",
                "utm_campaign": SPRING,
                "utm_term": "kw1",
                "trial_days": 60,
                "discount_percent": 20,
                "reason": "last_click",
                "review": false,
            })
        );
        let stored = t.store.find_signup("cus_A1").await.unwrap().unwrap();
        assert_eq!(
            (stored.partner_id, stored.campaign_id, stored.click_id),
            (Some(ann.id), Some(made.id), Some(click_id(&t, &token)))
        );
        assert_eq!(
            stored.commission_rate,
            Some(20),
            "R-COM-1: the rate is fixed when credited"
        );

        // Idempotent on customer_id: the same answer, nothing new, whatever the replay says.
        let before = written(&t).await;
        for replay in [Some(token.as_str()), None, Some("forged.token.value")] {
            let r = sign_up(&mut api, "cus_A1", Some("other@example.org"), replay).await;
            assert_eq!(r.status, StatusCode::OK, "{}", r.body);
            assert_eq!(r.json(), first);
        }
        assert_eq!(written(&t).await, before);

        // The explanation names the partner and the click.
        let why = attribution(&mut api, "cus_A1").await;
        assert_eq!(
            (why["reason"].as_str(), why["partner_id"].as_str()),
            (Some("last_click"), Some(id.as_str()))
        );
        assert_eq!(why["click"]["id"].as_i64(), Some(click_id(&t, &token)));
        assert_eq!(
            (why["click"]["at"].as_i64(), why["click"]["agent"].as_str()),
            (Some(START.millis()), Some("browser"))
        );
        assert_eq!(
            why["recorded_at"].as_i64(),
            Some(START.millis() + 3_600_000)
        );
        assert!(
            why["explanation"].as_str().unwrap().starts_with("Credited"),
            "{why}"
        );
        let r = api.get("/api/v1/customers/cus_nobody/attribution").await;
        assert_eq!(r.status, StatusCode::NOT_FOUND);
        assert!(r.json()["error"].is_string());

        // The sign-up counts once in the report, on its campaign and term.
        let report = report(&mut api, &id, "").await;
        assert_eq!(rows(&report)[&key(SPRING, "kw1")], [1, 0, 1, 1], "{report}");
        assert_eq!(report["totals"]["signups"], 1);
        // Without a referral: recorded, not credited.
        let none = new_signup(&mut api, "cus_plain", None, None).await;
        assert_eq!(
            (none["reason"].as_str(), none["credited"].as_bool()),
            (Some("no_click"), Some(false))
        );
        assert_eq!(
            (
                &none["partner_id"],
                &none["referred_partner_id"],
                &none["utm_campaign"]
            ),
            (&Value::Null, &Value::Null, &Value::Null)
        );
        let none = new_signup(&mut api, "cus_blank", None, Some("  ")).await;
        assert_eq!(none["reason"], "no_click");
        assert_eq!(report_signups(&mut api, &id).await, 1);
    }
);

async fn report_signups(api: &mut Client, id: &str) -> i64 {
    report(api, id, "").await["totals"]["signups"]
        .as_i64()
        .unwrap()
}

on_both_backends!(
    the_cookie_window_ends_exactly_cookie_days_after_the_click,
    |t: TestApp| async move {
        // R-AFF-4: a click at t counts for a sign-up before t + 120 × 24 h.
        let ann = t.partner("Ann Window").await;
        let id = t.public_id(&ann).await;
        let first = tracked(&mut browser(&t), &format!("/r/{id}")).await;
        let second = tracked(
            &mut t.client().with_header("user-agent", FIREFOX),
            &format!("/r/{id}"),
        )
        .await;
        let mut api = t.api().await;
        let edge = START.plus_days(120);
        t.clock.set(Timestamp::from_millis(edge.millis() - 1000));
        let inside = new_signup(&mut api, "cus_inside", None, Some(&first)).await;
        assert_eq!(
            (inside["reason"].as_str(), inside["partner_id"].as_str()),
            (Some("last_click"), Some(id.as_str())),
            "{inside}"
        );
        t.clock.set(edge);
        let outside = new_signup(&mut api, "cus_outside", None, Some(&second)).await;
        assert_eq!(
            (outside["reason"].as_str(), outside["credited"].as_bool()),
            (Some("expired"), Some(false)),
            "{outside}"
        );
        assert_eq!(
            (
                &outside["partner_id"],
                outside["referred_partner_id"].as_str()
            ),
            (&Value::Null, Some(id.as_str()))
        );
        let why = attribution(&mut api, "cus_outside").await;
        assert_eq!(why["click"]["id"].as_i64(), Some(click_id(&t, &second)));
        assert!(
            why["explanation"]
                .as_str()
                .unwrap()
                .contains("older than the cookie window"),
            "{why}"
        );
        // Only the credited one counts (on the day it was made: 2026-05-01).
        let report = report(&mut api, &id, "?from=2026-01-01&to=2026-05-01").await;
        assert_eq!(
            (
                report["totals"]["clicks"].as_i64(),
                report["totals"]["signups"].as_i64()
            ),
            (Some(2), Some(1)),
            "{report}"
        );
        // A bare partner id has no window.
        let bare = new_signup(&mut api, "cus_bare_late", None, Some(&id)).await;
        assert_eq!(bare["reason"], "partner_id");
    }
);

on_both_backends!(
    tampered_and_forged_tokens_are_not_credited,
    |t: TestApp| async move {
        let ann = t.partner("Ann Tamper").await;
        let id = t.public_id(&ann).await;
        let token = tracked(&mut browser(&t), &format!("/r/{id}")).await;
        let mut api = t.api().await;
        // One character changed: in the signature, in the click id, in the partner.
        let flip = |s: &str, at: usize| -> String {
            let mut chars: Vec<char> = s.chars().collect();
            chars[at] = if chars[at] == 'A' { 'B' } else { 'A' };
            chars.into_iter().collect()
        };
        let parts: Vec<&str> = token.split('.').collect();
        assert_eq!(parts.len(), 5, "{token}");
        let mut bad = vec![
            flip(&token, token.len() - 1),
            flip(&token, token.len() - 10),
            flip(&token, 0),
            format!(
                "{}.{}.{}.{}.{}",
                parts[0],
                parts[1],
                parts[2].parse::<i64>().unwrap() + 1,
                parts[3],
                parts[4]
            ),
            format!(
                "{}.{}.{}.{}.{}",
                parts[0],
                parts[1],
                parts[2],
                parts[3].parse::<i64>().unwrap() + 86_400 * 365,
                parts[4]
            ),
            format!("{}.7.{}.{}.{}", parts[0], parts[2], parts[3], parts[4]),
            "forged.token.value".to_owned(),
            format!("{id}.0.1.1.AAAAAAAAAAAAAAAAAAAAAA"),
            format!("{token}.extra"),
            format!("{token}x"),
        ];
        // A token signed by another program's key.
        let other = partnerd_app::crypto::Keys::from_secrets("network", "another program");
        let claims = ReferralToken::decode(&token, &t.app.keys).unwrap();
        bad.push(claims.encode(&other));
        let before = written(&t).await;
        for (i, referral) in bad.iter().enumerate() {
            assert_ne!(referral, &token);
            let customer = format!("cus_tampered_{i}");
            let answer = new_signup(&mut api, &customer, None, Some(referral)).await;
            assert_eq!(
                (answer["reason"].as_str(), answer["credited"].as_bool()),
                (Some("invalid_token"), Some(false)),
                "{referral}: {answer}"
            );
            assert_eq!(
                (&answer["partner_id"], &answer["referred_partner_id"]),
                (&Value::Null, &Value::Null),
                "{referral}"
            );
            assert!(
                attribution(&mut api, &customer).await["explanation"]
                    .as_str()
                    .unwrap()
                    .contains("malformed")
            );
        }
        let after = written(&t).await;
        assert_eq!(
            after[1],
            before[1] + bad.len() as i64,
            "each sign-up is recorded"
        );
        assert_eq!(after[3], before[3], "no report counter moved");
        assert_eq!(report_signups(&mut api, &id).await, 0);
        // Too long to be anything: refused outright, nothing recorded.
        let r = sign_up(&mut api, "cus_long", None, Some(&"x".repeat(501))).await;
        assert_eq!(invalid_fields(&r), vec!["referral"]);
        assert_eq!(written(&t).await, after);
        // The real token still works.
        assert_eq!(
            new_signup(&mut api, "cus_real", None, Some(&token)).await["reason"],
            "last_click"
        );
    }
);

on_both_backends!(
    bare_partner_ids_unknown_ids_and_removed_partners,
    |t: TestApp| async move {
        let ann = t.partner("Ann Bare").await;
        let ann_id = t.public_id(&ann).await;
        let rex = t.partner("Rex Gone").await;
        let rex_id = t.public_id(&rex).await;
        campaign(&t, &rex, spring()).await;
        let rex_token = tracked(&mut browser(&t), &format!("/r/{rex_id}/{SPRING}")).await;
        remove(&t, &rex).await;
        let mut api = t.api().await;

        let bare = new_signup(&mut api, "cus_bare", None, Some(&ann_id)).await;
        assert_eq!(
            bare,
            json!({
                "customer_id": "cus_bare", "partner_id": ann_id, "referred_partner_id": ann_id, "credited": true,
                "campaign": null, "utm_campaign": "default_link", "utm_term": null, "trial_days": null,
                "discount_percent": null, "reason": "partner_id", "review": false,
            })
        );
        let why = attribution(&mut api, "cus_bare").await;
        assert_eq!(why["click"], Value::Null);
        assert!(why["explanation"].as_str().unwrap().contains("id"), "{why}");

        let unknown = new_signup(&mut api, "cus_unknown", None, Some("abcdefghijk")).await;
        assert_eq!(
            (unknown["reason"].as_str(), &unknown["referred_partner_id"]),
            (Some("unknown_partner"), &Value::Null)
        );
        // Not an id and not a token.
        let junk = new_signup(&mut api, "cus_junk", None, Some("abc")).await;
        assert_eq!(junk["reason"], "invalid_token");

        // R-ACC-3: a removed partner earns nothing, by id or by an old token.
        for (customer, referral) in [
            ("cus_rex_id", rex_id.as_str()),
            ("cus_rex_token", rex_token.as_str()),
        ] {
            let answer = new_signup(&mut api, customer, None, Some(referral)).await;
            assert_eq!(
                (answer["reason"].as_str(), answer["credited"].as_bool()),
                (Some("removed_partner"), Some(false)),
                "{answer}"
            );
            assert_eq!(
                answer["referred_partner_id"].as_str(),
                Some(rex_id.as_str())
            );
            assert!(
                attribution(&mut api, customer).await["explanation"]
                    .as_str()
                    .unwrap()
                    .contains("removed")
            );
        }
        // The removed partner has no report through the API.
        let r = api.get(&format!("/api/v1/partners/{rex_id}/report")).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND);
        assert_eq!(report_signups(&mut api, &ann_id).await, 1);
    }
);

on_both_backends!(
    self_referrals_are_recorded_with_the_reason_and_not_credited,
    |t: TestApp| async move {
        // R-AFF-7: the partner's own email or own signed-in browser.
        let ann = t.partner("Ann Self").await;
        let id = t.public_id(&ann).await;
        let mut api = t.api().await;
        let stranger = tracked(&mut browser(&t), &format!("/r/{id}")).await;
        let answer = new_signup(
            &mut api,
            "cus_own_email",
            Some(&ann.email.to_uppercase()),
            Some(&stranger),
        )
        .await;
        assert_eq!(
            (answer["reason"].as_str(), answer["credited"].as_bool()),
            (Some("self_referral"), Some(false)),
            "{answer}"
        );
        assert_eq!(
            (
                &answer["partner_id"],
                answer["referred_partner_id"].as_str()
            ),
            (&Value::Null, Some(id.as_str()))
        );
        let bare = new_signup(&mut api, "cus_own_email_bare", Some(&ann.email), Some(&id)).await;
        assert_eq!(bare["reason"], "self_referral");

        // The partner clicks their own link while signed in to partnerd.
        let mut own = t
            .signed_in(ann.subject)
            .await
            .with_header("user-agent", CHROME);
        let own_token = tracked(&mut own, &format!("/r/{id}")).await;
        let stored = t
            .store
            .get_click(click_id(&t, &own_token))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(stored.own_session, 1);
        let answer = new_signup(
            &mut api,
            "cus_own_session",
            Some("someone.else@example.org"),
            Some(&own_token),
        )
        .await;
        assert_eq!(
            (answer["reason"].as_str(), answer["credited"].as_bool()),
            (Some("self_referral"), Some(false)),
            "{answer}"
        );
        assert_eq!(answer["referred_partner_id"].as_str(), Some(id.as_str()));
        let why = attribution(&mut api, "cus_own_session").await;
        assert_eq!(why["click"]["id"].as_i64(), Some(click_id(&t, &own_token)));
        assert!(
            why["explanation"]
                .as_str()
                .unwrap()
                .contains("referred themselves"),
            "{why}"
        );

        // Another partner's session is not the partner's own.
        let bob = t.partner("Bob Other").await;
        let mut other = t
            .signed_in(bob.subject)
            .await
            .with_header("user-agent", CHROME);
        let other_token = tracked(&mut other, &format!("/r/{id}")).await;
        assert_eq!(
            t.store
                .get_click(click_id(&t, &other_token))
                .await
                .unwrap()
                .unwrap()
                .own_session,
            0
        );
        assert_eq!(
            new_signup(&mut api, "cus_via_bob", None, Some(&other_token)).await["reason"],
            "last_click"
        );
        assert_eq!(report_signups(&mut api, &id).await, 1);
    }
);

mod a_sign_up_from_the_partner_s_network_is_credited_and_held_for_review {
    use super::*;

    #[tokio::test]
    async fn on_sqlite() {
        shared_network(Db::Sqlite).await;
    }

    #[tokio::test]
    async fn on_postgres() {
        if Db::available().contains(&Db::Postgres) {
            shared_network(Db::Postgres).await;
        }
    }
}

async fn shared_network(db: Db) {
    {
        // partnerd behind a proxy it trusts: the client's address is X-Forwarded-For's.
        let config = Config {
            trusted_proxies: vec!["10.0.0.1".into()],
            ..Default::default()
        };
        let t = TestApp::on(db, config).await;
        let ann = t.partner("Ann Network").await;
        let id = t.public_id(&ann).await;
        // Ann signs in from her office, straight (not through the proxy).
        let mut office = t.client().with_ip("198.51.100.7");
        let r = office
            .post_form(
                "/login",
                &[("email", &ann.email), ("password", &ann.password)],
            )
            .await;
        assert_eq!(r.status, StatusCode::SEE_OTHER, "{db:?}: {}", r.body);
        // A colleague in the same office clicks her link (through the proxy).
        let mut colleague = t
            .client()
            .with_ip("10.0.0.1")
            .with_header("x-forwarded-for", "198.51.100.7")
            .with_header("user-agent", FIREFOX);
        let shared = tracked(&mut colleague, &format!("/r/{id}")).await;
        let mut elsewhere = t
            .client()
            .with_ip("10.0.0.1")
            .with_header("x-forwarded-for", "203.0.113.9")
            .with_header("user-agent", CHROME);
        let clean = tracked(&mut elsewhere, &format!("/r/{id}")).await;
        // A forged X-Forwarded-For from an untrusted peer changes nothing.
        let mut forger = t
            .client()
            .with_ip("203.0.113.50")
            .with_header("x-forwarded-for", "198.51.100.7")
            .with_header("user-agent", CHROME);
        let forged = tracked(&mut forger, &format!("/r/{id}")).await;

        let mut api = t.api().await;
        let answer = new_signup(&mut api, "cus_colleague", None, Some(&shared)).await;
        assert_eq!(
            (
                answer["reason"].as_str(),
                answer["credited"].as_bool(),
                answer["review"].as_bool()
            ),
            (Some("last_click"), Some(true), Some(true)),
            "{db:?}: {answer}"
        );
        assert_eq!(answer["partner_id"].as_str(), Some(id.as_str()));
        assert_eq!(attribution(&mut api, "cus_colleague").await["review"], true);
        for (customer, token) in [("cus_elsewhere", &clean), ("cus_forger", &forged)] {
            let answer = new_signup(&mut api, customer, None, Some(token)).await;
            assert_eq!(
                (answer["reason"].as_str(), answer["review"].as_bool()),
                (Some("last_click"), Some(false)),
                "{db:?} {customer}"
            );
        }
        assert_eq!(report_signups(&mut api, &id).await, 3, "{db:?}");
    }
}

// --- the API's validation ----------------------------------------------------------------------

on_both_backends!(
    invalid_api_requests_are_refused_naming_the_field_and_write_nothing,
    |t: TestApp| async move {
        let ann = t.partner("Ann Strict").await;
        let id = t.public_id(&ann).await;
        let token = tracked(&mut browser(&t), &format!("/r/{id}")).await;
        let mut api = t.api().await;
        let before = written(&t).await;
        let cases: Vec<(String, String, &str)> = vec![
            (
                "/api/v1/signups".into(),
                json!({ "customer_id": "cus_1", "referral": token, "bogus": 1 }).to_string(),
                "bogus",
            ),
            (
                "/api/v1/signups".into(),
                json!({ "email": "a@example.org" }).to_string(),
                "customer_id",
            ),
            (
                "/api/v1/signups".into(),
                json!({}).to_string(),
                "customer_id",
            ),
            (
                "/api/v1/signups".into(),
                json!({ "customer_id": 5 }).to_string(),
                "customer_id",
            ),
            (
                "/api/v1/signups".into(),
                json!({ "customer_id": "cus_1", "referral": 7 }).to_string(),
                "referral",
            ),
            (
                "/api/v1/signups".into(),
                json!({ "customer_id": "cus_1", "email": ["a@b.c"] }).to_string(),
                "email",
            ),
            (
                "/api/v1/signups".into(),
                json!({ "customer_id": "   " }).to_string(),
                "customer_id",
            ),
            (
                "/api/v1/signups".into(),
                json!({ "customer_id": "x".repeat(201) }).to_string(),
                "customer_id",
            ),
            (
                "/api/v1/signups".into(),
                json!({ "customer_id": "cus\u{0}1" }).to_string(),
                "customer_id",
            ),
            (
                "/api/v1/signups".into(),
                json!({ "customer_id": "cus_1", "email": "not-an-email", "referral": token })
                    .to_string(),
                "email",
            ),
            (
                "/api/v1/signups".into(),
                "{\"customer_id\": \"cus_1\"".into(),
                "body",
            ),
            ("/api/v1/signups".into(), "not json".into(), "body"),
            ("/api/v1/signups".into(), String::new(), "body"),
            ("/api/v1/signups".into(), "[]".into(), "body"),
            (
                "/api/v1/partners".into(),
                json!({ "email": "x@example.org", "name": "X", "role": "admin" }).to_string(),
                "role",
            ),
            (
                "/api/v1/partners".into(),
                json!({ "email": "not-an-email", "name": "X" }).to_string(),
                "email",
            ),
            (
                "/api/v1/partners".into(),
                json!({ "email": "x@example.org" }).to_string(),
                "name",
            ),
            (
                format!("/api/v1/partners/{id}/campaigns"),
                json!({ "name": "S", "trial_days": "60" }).to_string(),
                "trial_days",
            ),
            (
                format!("/api/v1/partners/{id}/campaigns"),
                json!({ "name": "S", "colour": "red" }).to_string(),
                "colour",
            ),
            (
                format!("/api/v1/partners/{id}/campaigns"),
                json!({ "trial_days": 60 }).to_string(),
                "name",
            ),
        ];
        for (path, body, field) in &cases {
            let r = api.send_json(axum::http::Method::POST, path, body).await;
            let fields = invalid_fields(&r);
            assert_eq!(
                fields,
                vec![(*field).to_owned()],
                "{path} {body}: {}",
                r.body
            );
            assert!(
                r.header("content-type")
                    .unwrap_or_default()
                    .starts_with("application/json")
            );
        }
        assert_eq!(written(&t).await, before, "a refused call wrote something");
        assert_eq!(
            t.store.find_signup("cus_1").await.unwrap().map(|s| s.id),
            None
        );

        // A wrong key: 401 in JSON, nothing written.
        let mut wrong = t.client().with_bearer("pdk_not_a_key");
        let r = sign_up(&mut wrong, "cus_1", None, Some(&token)).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED);
        assert!(r.json()["error"].as_str().unwrap().contains("API key"));
        assert_eq!(written(&t).await, before);
        // The same call with the key is fine.
        assert_eq!(
            new_signup(&mut api, "cus_1", None, Some(&token)).await["reason"],
            "last_click"
        );
    }
);

on_both_backends!(report_dates_are_checked, |t: TestApp| async move {
    let ann = t.partner("Ann Dates").await;
    let id = t.public_id(&ann).await;
    let mut api = t.api().await;
    for (query, field) in [
        ("?from=2026-13-01", "from"),
        ("?to=yesterday", "to"),
        ("?from=01/01/2026", "from"),
        ("?from=2026-01-02&to=2026-01-01", "from"),
        // 401 days, both ends included.
        ("?from=2024-11-30&to=2026-01-04", "from"),
    ] {
        let r = api
            .get(&format!("/api/v1/partners/{id}/report{query}"))
            .await;
        assert_eq!(invalid_fields(&r), vec![field], "{query}");
    }
    let r = api
        .get(&format!(
            "/api/v1/partners/{id}/report?from=2026-01-01&bogus=1"
        ))
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.body);
    // Exactly 400 days is allowed; one day is allowed.
    let report400 = report(&mut api, &id, "?from=2024-12-01&to=2026-01-04").await;
    assert_eq!(report400["days"].as_array().unwrap().len(), 400);
    let one = report(&mut api, &id, "?from=2026-01-01&to=2026-01-01").await;
    assert_eq!(
        (one["from"].as_str(), one["to"].as_str()),
        (Some("2026-01-01"), Some("2026-01-01"))
    );
    // The default: the last 30 days, today included.
    let default = report(&mut api, &id, "").await;
    assert_eq!(
        (default["from"].as_str(), default["to"].as_str()),
        (Some("2025-12-03"), Some("2026-01-01"))
    );
    assert_eq!(default["days"].as_array().unwrap().len(), 30);
    assert_eq!(default["time_zone"], "UTC");
    assert_eq!(default["rows"], json!([]));
    for field in [
        "clicks",
        "bot_clicks",
        "unique_visitors",
        "signups",
        "customers",
        "revenue",
        "commission",
    ] {
        assert_eq!(default["totals"][field], 0, "{field}");
    }
    assert_eq!(default["totals"]["currency"], "USD");
    // Unknown and malformed ids.
    for bad in ["abcdefghijk", "short", "%3Cx%3E"] {
        let r = api.get(&format!("/api/v1/partners/{bad}/report")).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{bad}");
    }
});

// --- the report ----------------------------------------------------------------------------------

on_both_backends!(
    the_report_groups_clicks_visitors_and_sign_ups_by_campaign_and_term,
    |t: TestApp| async move {
        let ann = t.partner("Ann Report").await;
        let id = t.public_id(&ann).await;
        campaign(&t, &ann, spring()).await;
        let bob = t.partner("Bob Elsewhere").await;
        let bob_id = t.public_id(&bob).await;
        // V1: the default link twice, the campaign, the campaign with a term.
        let mut v1 = browser(&t).with_ip("198.51.100.1");
        tracked(&mut v1, &format!("/r/{id}")).await;
        tracked(&mut v1, &format!("/r/{id}")).await;
        tracked(&mut v1, &format!("/r/{id}/{SPRING}")).await;
        let v1_kw = tracked(&mut v1, &format!("/r/{id}/{SPRING}?utm_term=kw")).await;
        // V2: the default link.
        let mut v2 = browser(&t).with_ip("198.51.100.2");
        let v2_token = tracked(&mut v2, &format!("/r/{id}")).await;
        // V3: another browser on V1's network is another visitor.
        let mut v3 = t
            .client()
            .with_ip("198.51.100.1")
            .with_header("user-agent", FIREFOX);
        tracked(&mut v3, &format!("/r/{id}/{SPRING}")).await;
        // A crawler, and Bob's visitor.
        let mut bot = t.client().with_header(
            "user-agent",
            "Googlebot/2.1 (+http://www.google.com/bot.html)",
        );
        click(&mut bot, &format!("/r/{id}/{SPRING}")).await;
        tracked(&mut browser(&t), &format!("/r/{bob_id}")).await;
        // Sign-ups: one credited, one self-referral (not counted).
        let mut api = t.api().await;
        new_signup(&mut api, "cus_v1", None, Some(&v1_kw)).await;
        new_signup(&mut api, "cus_v2", Some(&ann.email), Some(&v2_token)).await;

        let report = report(&mut api, &id, "").await;
        let expected: BTreeMap<_, _> = [
            (key("default_link", ""), [3, 0, 2, 0]),
            (key(SPRING, "newsletter"), [2, 1, 2, 0]),
            (key(SPRING, "kw"), [1, 0, 1, 1]),
        ]
        .into_iter()
        .collect();
        assert_eq!(rows(&report), expected, "{report}");
        let order: Vec<&str> = report["rows"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["utm_campaign"].as_str().unwrap())
            .collect();
        assert_eq!(
            order,
            vec!["default_link", SPRING, SPRING],
            "most clicks first"
        );
        let totals = &report["totals"];
        assert_eq!(
            [
                &totals["clicks"],
                &totals["bot_clicks"],
                &totals["unique_visitors"],
                &totals["signups"]
            ],
            [&json!(6), &json!(1), &json!(5), &json!(1)],
            "{totals}"
        );
        let today = report["days"].as_array().unwrap().last().unwrap().clone();
        assert_eq!(
            today,
            json!({ "date": "2026-01-01", "clicks": 6, "unique_visitors": 5, "signups": 1, "revenue": 0, "commission": 0 })
        );
        // Bob's report has Bob's click only.
        let bobs = self::report(&mut api, &bob_id, "").await;
        assert_eq!(
            rows(&bobs),
            [(key("default_link", ""), [1, 0, 1, 0])]
                .into_iter()
                .collect()
        );
        // A visitor who comes back the next day is a unique visitor of that day too.
        t.advance(86_400);
        tracked(&mut v2, &format!("/r/{id}")).await;
        let report = self::report(&mut api, &id, "?from=2026-01-01&to=2026-01-02").await;
        assert_eq!(rows(&report)[&key("default_link", "")], [4, 0, 3, 0]);
        assert_eq!(
            daily_clicks(&report),
            [("2026-01-01".to_owned(), 6), ("2026-01-02".to_owned(), 1)]
                .into_iter()
                .collect()
        );

        // The pages that show it answer (their contents are tested with the pages).
        let mut panel = t.signed_in(ann.subject).await;
        for page in [
            "/panel/report",
            "/panel/report?from=2026-01-01&to=2026-01-02",
            "/panel/report.csv",
            "/panel/campaigns",
        ] {
            assert_eq!(panel.get(page).await.status, StatusCode::OK, "{page}");
        }
        let admin = t.admin().await;
        let mut console = t.signed_in(admin.subject).await;
        for page in [
            "/admin/report".to_owned(),
            format!("/admin/partners/{}/report", ann.id),
        ] {
            assert_eq!(console.get(&page).await.status, StatusCode::OK, "{page}");
        }
    }
);

on_both_backends!(
    the_report_s_days_are_the_partner_s_local_days,
    |t: TestApp| async move {
        // R-REP-2: in the partner's time zone. Auckland is UTC+13 in January, Los Angeles UTC−8.
        let kiwi = t.partner("Kiwi Zone").await;
        let ann = t.partner("Ann Utc").await;
        let lou = t.partner("Lou Zone").await;
        for (account, zone) in [(&kiwi, "Pacific/Auckland"), (&lou, "America/Los_Angeles")] {
            let partner = t.get_partner(account.id).await;
            t.app
                .update_profile(&partner, &partner.name, "", "", zone)
                .await
                .expect("set the time zone");
        }
        let (kiwi_id, ann_id, lou_id) = (
            t.public_id(&kiwi).await,
            t.public_id(&ann).await,
            t.public_id(&lou).await,
        );
        // START is 2026-01-01T00:00:00Z.
        let at = |minutes: i64| Timestamp::from_millis(START.millis() + minutes * 60_000);
        // 23:30 and 00:30 in Auckland (10:30Z and 11:30Z on 1 January).
        t.clock.set(at(10 * 60 + 30));
        tracked(&mut browser(&t), &format!("/r/{kiwi_id}")).await;
        tracked(&mut browser(&t), &format!("/r/{ann_id}")).await;
        t.clock.set(at(11 * 60 + 30));
        tracked(&mut browser(&t), &format!("/r/{kiwi_id}")).await;
        tracked(&mut browser(&t), &format!("/r/{ann_id}")).await;
        // 23:30 and 00:30 in Los Angeles (07:30Z and 08:30Z on 2 January).
        t.clock.set(at(31 * 60 + 30));
        tracked(&mut browser(&t), &format!("/r/{lou_id}")).await;
        t.clock.set(at(32 * 60 + 30));
        tracked(&mut browser(&t), &format!("/r/{lou_id}")).await;

        let mut api = t.api().await;
        let both = "?from=2026-01-01&to=2026-01-02";
        let days = |pairs: [i64; 2]| -> BTreeMap<String, i64> {
            [
                ("2026-01-01".to_owned(), pairs[0]),
                ("2026-01-02".to_owned(), pairs[1]),
            ]
            .into_iter()
            .collect()
        };
        for (id, zone, expected) in [
            (&kiwi_id, "Pacific/Auckland", [1, 1]),
            (&ann_id, "UTC", [2, 0]),
            (&lou_id, "America/Los_Angeles", [1, 1]),
        ] {
            let report = report(&mut api, id, both).await;
            assert_eq!(report["time_zone"], zone);
            assert_eq!(daily_clicks(&report), days(expected), "{zone}: {report}");
            // A one-day range holds exactly that local day's clicks.
            for (day, clicks) in [("2026-01-01", expected[0]), ("2026-01-02", expected[1])] {
                let one = self::report(&mut api, id, &format!("?from={day}&to={day}")).await;
                assert_eq!(
                    one["totals"]["clicks"].as_i64(),
                    Some(clicks),
                    "{zone} {day}: {one}"
                );
            }
        }
        // The default range ends on the partner's own today: 2 January in Auckland
        // (21:30), 2 January in Los Angeles (00:30).
        assert_eq!(report(&mut api, &kiwi_id, "").await["to"], "2026-01-02");
        assert_eq!(report(&mut api, &lou_id, "").await["to"], "2026-01-02");
        t.clock.set(at(31 * 60 + 59));
        assert_eq!(report(&mut api, &lou_id, "").await["to"], "2026-01-01");

        // Settled (the settle_report job, days later), every local day and range
        // reads the same: whole UTC days from the daily counters, the hours at
        // the ends of a local day from the hourly ones.
        let ranges = [
            both,
            "?from=2026-01-01&to=2026-01-01",
            "?from=2026-01-02&to=2026-01-02",
        ];
        let mut before = Vec::new();
        for id in [&kiwi_id, &ann_id, &lou_id] {
            for range in ranges {
                before.push(report(&mut api, id, range).await);
            }
        }
        t.clock.set(at(5 * 24 * 60));
        let moved = t
            .app
            .settle_report(std::time::Duration::from_secs(60))
            .await
            .expect("settle");
        assert_eq!(moved, 6, "one counter row per click hour and partner");
        let mut after = Vec::new();
        for id in [&kiwi_id, &ann_id, &lou_id] {
            for range in ranges {
                after.push(report(&mut api, id, range).await);
            }
        }
        assert_eq!(after, before);
    }
);

// --- the cache and group commit ----------------------------------------------------------------

on_both_backends!(
    a_partner_removed_on_this_node_is_untracked_once_evicted,
    |t: TestApp| async move {
        let ann = t.partner("Ann Evicted").await;
        let id = t.public_id(&ann).await;
        let token = tracked(&mut browser(&t), &format!("/r/{id}")).await;
        remove(&t, &ann).await;
        t.app.tracking_cache.evict(&id);
        let before = written(&t).await;
        untracked(&mut browser(&t), &format!("/r/{id}")).await;
        assert_eq!(written(&t).await, before);
        let mut api = t.api().await;
        assert_eq!(
            new_signup(&mut api, "cus_after_removal", None, Some(&token)).await["reason"],
            "removed_partner"
        );
    }
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_s_removal_reaches_the_redirect_within_the_cache_ttl() {
    // The one test that waits for real time: CACHE_TTL (3 s) and a little.
    let t = TestApp::sqlite().await;
    let ann = t.partner("Ann Ttl").await;
    let id = t.public_id(&ann).await;
    tracked(&mut browser(&t), &format!("/r/{id}")).await;
    let admin = t.admin().await;
    let mut console = t.signed_in(admin.subject).await;
    let r = console
        .post_form(
            &format!("/admin/partners/{}/remove", ann.id),
            &[("reason", "Spam, against section 4")],
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    assert!(t.get_partner(ann.id).await.is_removed());
    // Within the TTL a node may still track (it answers safely either way).
    let (r, _) = click(&mut browser(&t), &format!("/r/{id}")).await;
    assert!(r.location().starts_with(MAIN));
    tokio::time::sleep(partnerd_app::tracking::CACHE_TTL + std::time::Duration::from_millis(100))
        .await;
    let clicks = count(&t, "clicks").await;
    untracked(&mut browser(&t), &format!("/r/{id}")).await;
    untracked(&mut browser(&t), &format!("/r/{id}/default_link")).await;
    assert_eq!(
        count(&t, "clicks").await,
        clicks,
        "a removed partner's click was recorded after the TTL"
    );
}

on_both_backends!(
    many_clicks_at_once_are_each_committed_before_their_answer,
    |t: TestApp| async move {
        let ann = t.partner("Ann Busy").await;
        let id = t.public_id(&ann).await;
        let mut tasks = tokio::task::JoinSet::new();
        for i in 0..60 {
            let mut client = browser(&t).with_ip(&format!("198.51.100.{}", i + 1));
            let path = format!("/r/{id}?utm_term=t{}", i % 3);
            tasks.spawn(async move { tracked(&mut client, &path).await });
        }
        let mut ids = std::collections::BTreeSet::new();
        while let Some(token) = tasks.join_next().await {
            let token = token.expect("a click task");
            assert!(ids.insert(click_id(&t, &token)), "two clicks with one id");
        }
        assert_eq!(ids.len(), 60);
        assert_eq!(count(&t, "clicks").await, 60);
        let mut api = t.api().await;
        let report = report(&mut api, &id, "").await;
        assert_eq!(
            rows(&report),
            [
                (key("default_link", "t0"), [20, 0, 20, 0]),
                (key("default_link", "t1"), [20, 0, 20, 0]),
                (key("default_link", "t2"), [20, 0, 20, 0])
            ]
            .into_iter()
            .collect()
        );
    }
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_campaign_made_on_another_node_works_at_once() {
    let t = TestApp::sqlite().await;
    let ann = t.partner("Ann Nodes").await;
    let id = t.public_id(&ann).await;
    // This node caches Ann.
    tracked(&mut browser(&t), &format!("/r/{id}")).await;
    // Another node (its own cache, the same database) makes a campaign.
    let other = partnerd_app::App::new(
        t.store.clone(),
        std::sync::Arc::new(t.clock.clone()),
        Config::default(),
    )
    .await
    .expect("a second node");
    other
        .create_campaign("test", ann.id, &spring())
        .await
        .unwrap();
    tracked(&mut browser(&t), &format!("/r/{id}/{SPRING}")).await;
}
