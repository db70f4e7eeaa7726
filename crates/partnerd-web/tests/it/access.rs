//! The access matrix: every route of `partnerd_web::router` with every kind of
//! caller, and the answer each must get. The table is checked against the
//! router's source, so a new route without a row fails the suite.

use std::collections::{BTreeMap, BTreeSet};

use axum::http::{Method, StatusCode};
use partnerd_app::Config;
use partnerd_app::config::Secret;
use partnerd_store::Subject;

use crate::helpers::{Client, TestApp, on_both_backends};

/// Who is asking.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    Anonymous,
    /// Partner A, whose manager is M1.
    Partner,
    /// Partner B (also M1's): on A's pages a stranger.
    OtherPartner,
    /// Partner C's old session cookie, after C was removed.
    RemovedPartner,
    /// Manager M2, who does not manage A.
    OtherManager,
    /// Manager M1, A's manager.
    Manager,
    Admin,
    /// A valid integration API key as `Authorization: Bearer`, no cookies.
    ApiKey,
}

const ROLES: [Role; 8] = [
    Role::Anonymous,
    Role::Partner,
    Role::OtherPartner,
    Role::RemovedPartner,
    Role::OtherManager,
    Role::Manager,
    Role::Admin,
    Role::ApiKey,
];

/// One route (or, with `in_router: false`, a probe of a fallback) and the
/// status each role gets, in the order of [`ROLES`]:
/// anonymous, partner, other partner, removed partner, other manager, manager, admin, API key.
struct Row {
    method: &'static str,
    /// The path as written in `router()`.
    pattern: &'static str,
    /// The path requested: `{a}` is partner A's id, `{pa}` A's public id,
    /// `{slug}` A's campaign, `{token}` a live reset link's token, `{outbox}` an email's id.
    path: &'static str,
    /// Form fields (besides the CSRF token); `{role}` and `{m1}` are filled in.
    form: &'static [(&'static str, &'static str)],
    /// A JSON body, sent as is (no CSRF token, no form): the API's rows.
    json: Option<&'static str>,
    expect: [u16; 8],
    in_router: bool,
}

const fn route(method: &'static str, pattern: &'static str, expect: [u16; 8]) -> Row {
    Row {
        method,
        pattern,
        path: pattern,
        form: &[],
        json: None,
        expect,
        in_router: true,
    }
}

const fn route_at(
    method: &'static str,
    pattern: &'static str,
    path: &'static str,
    expect: [u16; 8],
) -> Row {
    Row {
        method,
        pattern,
        path,
        form: &[],
        json: None,
        expect,
        in_router: true,
    }
}

const fn form(
    method: &'static str,
    pattern: &'static str,
    fields: &'static [(&'static str, &'static str)],
    expect: [u16; 8],
) -> Row {
    Row {
        method,
        pattern,
        path: pattern,
        form: fields,
        json: None,
        expect,
        in_router: true,
    }
}

const fn probe(method: &'static str, path: &'static str, expect: [u16; 8]) -> Row {
    Row {
        method,
        pattern: path,
        path,
        form: &[],
        json: None,
        expect,
        in_router: false,
    }
}

/// An API call: `path` is requested with `json` as the body (`None`: no body).
const fn api(
    method: &'static str,
    pattern: &'static str,
    path: &'static str,
    json: Option<&'static str>,
    expect: [u16; 8],
) -> Row {
    Row {
        method,
        pattern,
        path,
        form: &[],
        json,
        expect,
        in_router: true,
    }
}

const ALL_200: [u16; 8] = [200; 8];
const ALL_302: [u16; 8] = [302; 8];
//                       anon partner other removed oth-mgr mgr  admin api
const PANEL_GET: [u16; 8] = [303, 200, 200, 303, 403, 403, 403, 303];
/// Panel forms posted empty: the partner gets the form back with its errors.
const PANEL_FORM: [u16; 8] = [303, 422, 422, 303, 403, 403, 403, 303];
const CONSOLE_GET: [u16; 8] = [303, 403, 403, 303, 200, 200, 200, 303];
const ADMIN_GET: [u16; 8] = [303, 403, 403, 303, 403, 403, 200, 303];
/// Console forms any staff member may post, sent empty: the form comes back with errors.
const CONSOLE_FORM_INVALID: [u16; 8] = [303, 403, 403, 303, 422, 422, 422, 303];
/// Admin forms posted empty: the admin gets the form back with its errors.
const ADMIN_FORM_INVALID: [u16; 8] = [303, 403, 403, 303, 403, 403, 422, 303];
/// Panel pages for an object that does not exist.
const PANEL_MISSING: [u16; 8] = [303, 404, 404, 303, 403, 403, 403, 303];
/// Admin forms on an object that does not exist.
const ADMIN_FORM_MISSING: [u16; 8] = [303, 403, 403, 303, 403, 403, 404, 303];
const ADMIN_FORM_DONE: [u16; 8] = [303, 403, 403, 303, 403, 403, 303, 303];
/// A partner's page in the console: the other manager is told it does not exist.
const OWN_PARTNER_GET: [u16; 8] = [303, 403, 403, 303, 404, 200, 200, 303];
/// The API with an invalid (empty) body: only a key gets as far as the check;
/// sessions do not count.
const API_INVALID: [u16; 8] = [401, 401, 401, 401, 401, 401, 401, 422];
/// The API asked about something that does not exist.
const API_UNKNOWN: [u16; 8] = [401, 401, 401, 401, 401, 401, 401, 404];

/// Every route of `partnerd_web::router`, and two fallbacks.
const MATRIX: &[Row] = &[
    route("GET", "/", ALL_200),
    route("GET", "/terms", ALL_200),
    // Signed-in people are sent on to the panel.
    route("GET", "/signup", [200, 303, 303, 200, 303, 303, 303, 200]),
    form(
        "POST",
        "/signup",
        &[("email", "matrix-{role}@example.test")],
        [422; 8],
    ),
    route("GET", "/login", ALL_200),
    form(
        "POST",
        "/login",
        &[
            ("email", "matrix-{role}@example.test"),
            ("password", "not the password"),
        ],
        [401; 8],
    ),
    route("GET", "/admin/login", ALL_200),
    form(
        "POST",
        "/admin/login",
        &[
            ("email", "matrix-{role}@vendor.test"),
            ("password", "not the password"),
        ],
        [401; 8],
    ),
    route("POST", "/logout", [303; 8]),
    route("GET", "/password-reset", ALL_200),
    form(
        "POST",
        "/password-reset",
        &[("email", "matrix-{role}@example.test")],
        ALL_200,
    ),
    route_at(
        "GET",
        "/password-reset/{token}",
        "/password-reset/{token}",
        ALL_200,
    ),
    // An empty password: the form comes back, the link stays unused.
    route_at(
        "POST",
        "/password-reset/{token}",
        "/password-reset/{token}",
        [422; 8],
    ),
    route("GET", "/terms/accept", PANEL_GET),
    route(
        "POST",
        "/terms/accept",
        [303, 303, 303, 303, 403, 403, 403, 303],
    ),
    route("GET", "/panel", PANEL_GET),
    route("GET", "/panel/account", PANEL_GET),
    route("GET", "/panel/campaigns", PANEL_GET),
    // An empty campaign form: no name, the form comes back.
    route("POST", "/panel/campaigns", PANEL_FORM),
    route("GET", "/panel/report", PANEL_GET),
    route("GET", "/panel/report.csv", PANEL_GET),
    // Money pages show the signed-in partner's own books only (no id in the path).
    route("GET", "/panel/money", PANEL_GET),
    route("GET", "/panel/payouts", PANEL_GET),
    // An unknown country: the form comes back, nothing is saved.
    form(
        "POST",
        "/panel/payouts/profile",
        &[("country", "XX")],
        PANEL_FORM,
    ),
    // Nothing available: refused with the reason, nothing written.
    form(
        "POST",
        "/panel/payouts/withdraw",
        &[("currency", "USD")],
        [303, 409, 409, 303, 403, 403, 403, 303],
    ),
    route("GET", "/panel/statements", PANEL_GET),
    // No booking in that month (nor any): there is no such statement.
    route_at(
        "GET",
        "/panel/statements/{month}",
        "/panel/statements/2026-01",
        PANEL_MISSING,
    ),
    route("GET", "/admin/exports", ADMIN_GET),
    route("GET", "/admin/exports/commissions.csv", ADMIN_GET),
    route("GET", "/admin/exports/payouts.csv", ADMIN_GET),
    route("POST", "/panel/account/profile", PANEL_FORM),
    route("POST", "/panel/account/email", PANEL_FORM),
    route("POST", "/panel/account/password", PANEL_FORM),
    route("POST", "/panel/account/delete", PANEL_FORM),
    route("GET", "/admin", CONSOLE_GET),
    route("GET", "/admin/partners", CONSOLE_GET),
    // A's page: the other manager is told it does not exist.
    route_at(
        "GET",
        "/admin/partners/{id}",
        "/admin/partners/{a}",
        OWN_PARTNER_GET,
    ),
    route_at(
        "GET",
        "/admin/partners/{id}/report",
        "/admin/partners/{a}/report",
        OWN_PARTNER_GET,
    ),
    route("GET", "/admin/report", CONSOLE_GET),
    // Reassigning A to the manager A already has: allowed for admins only.
    Row {
        method: "POST",
        pattern: "/admin/partners/{id}/manager",
        path: "/admin/partners/{a}/manager",
        form: &[("manager_id", "{m1}")],
        json: None,
        expect: ADMIN_FORM_DONE,
        in_router: true,
    },
    // No reason: the admin gets the form back, nobody is removed.
    route_at(
        "POST",
        "/admin/partners/{id}/remove",
        "/admin/partners/{a}/remove",
        ADMIN_FORM_INVALID,
    ),
    route("GET", "/admin/staff", ADMIN_GET),
    route("POST", "/admin/staff", ADMIN_FORM_INVALID),
    route("GET", "/admin/audit", ADMIN_GET),
    route("GET", "/admin/outbox", ADMIN_GET),
    route_at(
        "GET",
        "/admin/outbox/{id}",
        "/admin/outbox/{outbox}",
        ADMIN_GET,
    ),
    route("GET", "/admin/settings", ADMIN_GET),
    // No setting in the form: nothing changes, the admin is sent back.
    route("POST", "/admin/settings", ADMIN_FORM_DONE),
    route("GET", "/admin/terms", ADMIN_GET),
    route("POST", "/admin/terms", ADMIN_FORM_INVALID),
    // R-PAY-3: withdrawals are for admins only; unknown ones are 404 to them.
    route("GET", "/admin/withdrawals", ADMIN_GET),
    route_at(
        "GET",
        "/admin/withdrawals.csv",
        "/admin/withdrawals.csv?currency=USD",
        ADMIN_GET,
    ),
    route_at(
        "GET",
        "/admin/withdrawals/{id}",
        "/admin/withdrawals/wd_nobody",
        ADMIN_FORM_MISSING,
    ),
    route_at(
        "POST",
        "/admin/withdrawals/{id}/approve",
        "/admin/withdrawals/wd_nobody/approve",
        ADMIN_FORM_MISSING,
    ),
    route_at(
        "POST",
        "/admin/withdrawals/{id}/reject",
        "/admin/withdrawals/wd_nobody/reject",
        ADMIN_FORM_MISSING,
    ),
    route_at(
        "POST",
        "/admin/withdrawals/{id}/mark",
        "/admin/withdrawals/wd_nobody/mark",
        ADMIN_FORM_MISSING,
    ),
    // PayPal is not configured here, so no delivery can be verified.
    api(
        "POST",
        "/webhooks/paypal",
        "/webhooks/paypal",
        Some("{}"),
        [400; 8],
    ),
    // No Stripe signing secret is configured here: every delivery is refused
    // unread (503), whoever sends it; sessions and API keys do not count.
    api(
        "POST",
        "/webhooks/stripe",
        "/webhooks/stripe",
        Some("{}"),
        [503; 8],
    ),
    route("GET", "/admin/stripe", ADMIN_GET),
    // An empty secret: the admin gets the form back with its error.
    route("POST", "/admin/stripe/secrets", ADMIN_FORM_INVALID),
    route_at(
        "POST",
        "/admin/stripe/secrets/{id}/delete",
        "/admin/stripe/secrets/999999/delete",
        ADMIN_FORM_MISSING,
    ),
    route("GET", "/admin/account", CONSOLE_GET),
    route("POST", "/admin/account/password", CONSOLE_FORM_INVALID),
    route("GET", "/healthz", ALL_200),
    route("GET", "/readyz", ALL_200),
    route("GET", "/metrics", ALL_200),
    route("GET", "/assets/app.css", ALL_200),
    route("GET", "/assets/panel.js", ALL_200),
    route("GET", "/panel/resources", PANEL_GET),
    route_at(
        "GET",
        "/panel/resources/{id}/download",
        "/panel/resources/999999/download",
        PANEL_MISSING,
    ),
    route("GET", "/admin/resources", ADMIN_GET),
    route("POST", "/admin/resources", ADMIN_FORM_INVALID),
    route_at(
        "POST",
        "/admin/resources/{id}/archive",
        "/admin/resources/999999/archive",
        ADMIN_FORM_MISSING,
    ),
    // Outbound webhooks: admins only; an empty form comes back with its errors,
    // an unknown endpoint or delivery is a 404 for the admin.
    route("GET", "/admin/webhooks", ADMIN_GET),
    route("POST", "/admin/webhooks", ADMIN_FORM_INVALID),
    route_at(
        "GET",
        "/admin/webhooks/{id}",
        "/admin/webhooks/999999",
        ADMIN_FORM_MISSING,
    ),
    route_at(
        "POST",
        "/admin/webhooks/{id}/rotate",
        "/admin/webhooks/999999/rotate",
        ADMIN_FORM_MISSING,
    ),
    route_at(
        "POST",
        "/admin/webhooks/{id}/enable",
        "/admin/webhooks/999999/enable",
        ADMIN_FORM_MISSING,
    ),
    route_at(
        "POST",
        "/admin/webhooks/{id}/disable",
        "/admin/webhooks/999999/disable",
        ADMIN_FORM_MISSING,
    ),
    route_at(
        "POST",
        "/admin/webhooks/{id}/test",
        "/admin/webhooks/999999/test",
        ADMIN_FORM_MISSING,
    ),
    route_at(
        "POST",
        "/admin/webhook-deliveries/{id}/resend",
        "/admin/webhook-deliveries/999999/resend",
        ADMIN_FORM_MISSING,
    ),
    route_at(
        "GET",
        "/resources/{id}/{file}",
        "/resources/999999/banner.png",
        [404; 8],
    ),
    // The tracking redirect: the same for everyone (the partner's own click is
    // recorded as such, not refused).
    route_at("GET", "/r/{partner_id}", "/r/{pa}", ALL_302),
    route_at("GET", "/r/{partner_id}/{slug}", "/r/{pa}/{slug}", ALL_302),
    route("GET", "/t.js", ALL_200),
    // No partner named: no token, but an answer all the same.
    route("GET", "/t/click", ALL_200),
    route("GET", "/api/v1/openapi.json", ALL_200),
    api(
        "POST",
        "/api/v1/partners",
        "/api/v1/partners",
        Some("{}"),
        API_INVALID,
    ),
    api(
        "POST",
        "/api/v1/partners/{id}/campaigns",
        "/api/v1/partners/{pa}/campaigns",
        Some("{}"),
        API_INVALID,
    ),
    api(
        "GET",
        "/api/v1/partners/{id}/report",
        "/api/v1/partners/abcdefghijk/report",
        None,
        API_UNKNOWN,
    ),
    api(
        "POST",
        "/api/v1/signups",
        "/api/v1/signups",
        Some("{}"),
        API_INVALID,
    ),
    api(
        "GET",
        "/api/v1/customers/{customer_id}/attribution",
        "/api/v1/customers/cus_nobody/attribution",
        None,
        API_UNKNOWN,
    ),
    api(
        "POST",
        "/api/v1/payments",
        "/api/v1/payments",
        Some("{}"),
        API_INVALID,
    ),
    api(
        "POST",
        "/api/v1/refunds",
        "/api/v1/refunds",
        Some("{}"),
        API_INVALID,
    ),
    api(
        "POST",
        "/api/v1/chargebacks",
        "/api/v1/chargebacks",
        Some("{}"),
        API_INVALID,
    ),
    // An id no event can carry (control character): refused before anything is written.
    api(
        "POST",
        "/api/v1/subscriptions/{id}/cancel",
        "/api/v1/subscriptions/%01/cancel",
        Some("{}"),
        API_INVALID,
    ),
    api(
        "GET",
        "/api/v1/partners/{id}/balance",
        "/api/v1/partners/abcdefghijk/balance",
        None,
        API_UNKNOWN,
    ),
    api(
        "GET",
        "/api/v1/partners/{id}/commissions",
        "/api/v1/partners/abcdefghijk/commissions",
        None,
        API_UNKNOWN,
    ),
    api(
        "GET",
        "/api/v1/partners/{id}/status",
        "/api/v1/partners/abcdefghijk/status",
        None,
        API_UNKNOWN,
    ),
    // The API's fallback: only a key gets in (and finds nothing); sessions do not count.
    probe(
        "GET",
        "/api/v1/anything",
        [401, 401, 401, 401, 401, 401, 401, 404],
    ),
    probe("GET", "/no-such-page", [404; 8]),
];

/// Every `(METHOD, path)` the router's source declares with `.route("…", …)`,
/// as a request would see it: routes of a router bound with
/// `let NAME = Router::new()…;` and mounted with `.nest("/prefix", NAME)` get
/// the prefix (of every router it is nested in, outermost first).
fn routes_in_source(source: &str) -> BTreeSet<(String, String)> {
    // Split the source into the routers bound to a name and the rest.
    let mut bound: Vec<(String, &str)> = Vec::new();
    let mut unbound = String::new();
    let mut rest = source;
    while let Some((name, start, end)) = next_router_binding(rest) {
        unbound.push_str(&rest[..start]);
        bound.push((name, &rest[start..end]));
        rest = &rest[end..];
    }
    unbound.push_str(rest);
    // Where each named router is mounted: (the router holding the `.nest`, prefix).
    let mut parent: BTreeMap<String, (Option<String>, String)> = BTreeMap::new();
    let texts: Vec<(Option<String>, &str)> = bound
        .iter()
        .map(|(name, text)| (Some(name.clone()), *text))
        .chain(std::iter::once((None, unbound.as_str())))
        .collect();
    for (holder, text) in &texts {
        for call in calls_of(text, ".nest(") {
            let prefix = call
                .split('"')
                .nth(1)
                .unwrap_or_else(|| panic!("a .nest( without a path: {call}"));
            // The router mounted: the last argument (a trailing comma allowed).
            let child = call
                .split(',')
                .map(str::trim)
                .rfind(|arg| !arg.is_empty())
                .unwrap_or_default();
            parent.insert(child.to_owned(), (holder.clone(), prefix.to_owned()));
        }
    }
    let full_prefix = |name: &Option<String>| -> String {
        let mut prefix = String::new();
        let mut current = name.clone();
        let mut hops = 0;
        while let Some(n) = current {
            let Some((up, p)) = parent.get(&n) else { break };
            prefix.insert_str(0, p.trim_end_matches('/'));
            current = up.clone();
            hops += 1;
            assert!(hops < 32, "routers nested in a cycle at {n}");
        }
        prefix
    };
    let mut routes = BTreeSet::new();
    for (holder, text) in &texts {
        let prefix = full_prefix(holder);
        for (method, path) in routes_in_text(text) {
            let path = if prefix.is_empty() {
                path
            } else if path == "/" {
                prefix.clone()
            } else {
                format!("{prefix}{path}")
            };
            routes.insert((method, path));
        }
    }
    routes
}

/// The next `let NAME = Router::new()…;` in `source`: its name and the byte
/// range of the statement (up to its `;` outside brackets and strings).
fn next_router_binding(source: &str) -> Option<(String, usize, usize)> {
    let mut from = 0;
    while let Some(i) = source[from..].find("let ") {
        let start = from + i;
        from = start + 4;
        let before = source[..start].chars().next_back().unwrap_or(' ');
        if before.is_alphanumeric() || before == '_' {
            continue;
        }
        let after = &source[start + 4..];
        let Some((name, value)) = after.split_once('=') else {
            continue;
        };
        let name = name.trim().trim_start_matches("mut ").trim();
        if name.is_empty() || !name.chars().all(|c| c.is_alphanumeric() || c == '_') {
            continue;
        }
        if !value.trim_start().starts_with("Router::new()") {
            continue;
        }
        let mut depth = 0i32;
        let mut in_string = false;
        let mut escaped = false;
        for (j, c) in source[start..].char_indices() {
            if in_string {
                match c {
                    _ if escaped => escaped = false,
                    '\\' => escaped = true,
                    '"' => in_string = false,
                    _ => {}
                }
                continue;
            }
            match c {
                '"' => in_string = true,
                '(' | '[' | '{' => depth += 1,
                ')' | ']' | '}' => depth -= 1,
                ';' if depth == 0 => return Some((name.to_owned(), start, start + j + 1)),
                _ => {}
            }
        }
        return Some((name.to_owned(), start, source.len()));
    }
    None
}

/// The argument text of every call `opener…)` in `source` (calls may span lines).
fn calls_of<'a>(source: &'a str, opener: &str) -> Vec<&'a str> {
    let mut calls = Vec::new();
    let mut rest = source;
    while let Some(at) = rest.find(opener) {
        rest = &rest[at + opener.len()..];
        let end = closing_paren(rest);
        calls.push(&rest[..end]);
        rest = &rest[end..];
    }
    calls
}

/// Where the call whose arguments `rest` starts with closes.
fn closing_paren(rest: &str) -> usize {
    let mut depth = 1;
    for (i, c) in rest.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => {
                depth -= 1;
                if depth == 0 {
                    return i;
                }
            }
            _ => {}
        }
    }
    rest.len()
}

/// Every `(METHOD, path)` declared with `.route("…", …)` in `source`, paths as written.
fn routes_in_text(source: &str) -> BTreeSet<(String, String)> {
    let mut routes = BTreeSet::new();
    for call in calls_of(source, ".route(") {
        let path = call
            .split('"')
            .nth(1)
            .unwrap_or_else(|| panic!("a .route( without a path: {call}"));
        let after_path = &call[call
            .find(',')
            .unwrap_or_else(|| panic!("a .route( without a handler: {call}"))..];
        let mut methods = Vec::new();
        for method in [
            "get", "post", "put", "patch", "delete", "head", "options", "any",
        ] {
            let needle = format!("{method}(");
            let mut from = 0;
            while let Some(i) = after_path[from..].find(&needle) {
                let i = from + i;
                let before = after_path[..i].chars().next_back().unwrap_or(' ');
                if !(before.is_alphanumeric() || before == '_' || before == ':') {
                    methods.push(method.to_uppercase());
                }
                from = i + needle.len();
            }
        }
        assert!(
            !methods.is_empty(),
            "no method found for the route {path:?}: {call}"
        );
        for method in methods {
            routes.insert((method, path.to_owned()));
        }
    }
    routes
}

#[test]
fn every_route_of_the_router_has_a_row_in_the_access_matrix_and_every_row_is_a_route() {
    let in_source = routes_in_source(include_str!("../../src/lib.rs"));
    assert!(
        in_source.len() >= 35,
        "the route scan found too little: {in_source:?}"
    );
    let mut in_table = BTreeSet::new();
    for row in MATRIX.iter().filter(|r| r.in_router) {
        let key = (row.method.to_owned(), row.pattern.to_owned());
        assert!(in_table.insert(key.clone()), "two rows for {key:?}");
    }
    let missing: Vec<_> = in_source.difference(&in_table).collect();
    let stale: Vec<_> = in_table.difference(&in_source).collect();
    assert!(
        missing.is_empty(),
        "routes of router() without a row in the access matrix: {missing:?}"
    );
    assert!(
        stale.is_empty(),
        "rows of the access matrix that router() does not have: {stale:?}"
    );
    assert_eq!(in_table.len(), in_source.len());
}

#[test]
fn the_route_scan_reads_routes_split_over_lines_and_chained_methods() {
    let source = r#"
        .route("/a", get(x::a))
        .route(
            "/b/{id}",
            get(x::b_form).post(x::b),
        )
        .route("/c", post(admin::get_thing))
    "#;
    let found = routes_in_source(source);
    let expected: BTreeSet<(String, String)> = [
        ("GET", "/a"),
        ("GET", "/b/{id}"),
        ("POST", "/b/{id}"),
        ("POST", "/c"),
    ]
    .iter()
    .map(|(m, p)| ((*m).to_owned(), (*p).to_owned()))
    .collect();
    assert_eq!(found, expected);
}

#[test]
fn the_route_scan_prefixes_the_routes_of_nested_routers() {
    let source = r#"
        let api = Router::new()
            .route("/things", post(api::create))
            .route(
                "/things/{id}",
                get(api::thing),
            )
            .route("/", get(api::index))
            .layer(middleware::from_fn_with_state(app.clone(), api::require_key));
        let html = Router::new().route("/page", get(x::page));
        let inner = Router::new().route("/deep", get(x::deep));
        let outer = Router::new().route("/mid", get(x::mid)).nest("/in", inner);
        Router::new()
            .route("/top", get(x::top))
            .nest(
                "/api/v1",
                api,
            )
            .nest("/o/", outer)
            .merge(html)
            .layer(middleware::from_fn_with_state(app.clone(), headers))
    "#;
    let found = routes_in_source(source);
    let expected: BTreeSet<(String, String)> = [
        ("POST", "/api/v1/things"),
        ("GET", "/api/v1/things/{id}"),
        ("GET", "/api/v1"),
        ("GET", "/page"),
        ("GET", "/o/mid"),
        ("GET", "/o/in/deep"),
        ("GET", "/top"),
    ]
    .iter()
    .map(|(m, p)| ((*m).to_owned(), (*p).to_owned()))
    .collect();
    assert_eq!(found, expected);
}

/// The people and things the matrix needs.
struct World {
    a: i64,
    /// A's public partner id and the slug of A's campaign.
    pa: String,
    slug: String,
    b: i64,
    m1: i64,
    m2: i64,
    admin: i64,
    removed_cookie: String,
    api_key: String,
    reset_token: String,
    outbox_id: i64,
}

async fn world(t: &TestApp) -> World {
    // Partners first, then the first manager, who takes them all (R-ACC-2).
    let a = t.partner("Alice Partner").await;
    let b = t.partner("Bob Partner").await;
    let c = t.partner("Carol Partner").await;
    let m1 = t.manager("Mona Manager").await;
    let m2 = t.manager("Max Manager").await;
    let admin = t.admin().await;
    assert_eq!(
        t.get_partner(a.id).await.manager_id,
        Some(m1.id),
        "A is M1's"
    );
    // C signs in, then is removed; the browser keeps the old cookie.
    let removed = t.app.start_session(c.subject).await.unwrap();
    let admin_who = t
        .app
        .signed_in(&t.app.start_session(admin.subject).await.unwrap().token)
        .await
        .unwrap()
        .unwrap();
    t.app
        .remove_for_violation(&admin_who.actor_label(), c.id, "Spam, against section 1")
        .await
        .unwrap();
    let api_key = t.app.create_api_key("test", "matrix").await.unwrap();
    let campaign = t
        .app
        .create_campaign(
            "test",
            a.id,
            &partnerd_app::tracking::CampaignInput {
                name: "Matrix Sale".into(),
                trial_days: Some(30),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let reset = t.reset_link_for(&a).await;
    let reset_token = reset.trim_start_matches("/password-reset/").to_owned();
    let outbox_id = t.outbox().await[0].id;
    World {
        a: a.id,
        pa: t.public_id(&a).await,
        slug: campaign.slug,
        b: b.id,
        m1: m1.id,
        m2: m2.id,
        admin: admin.id,
        removed_cookie: removed.token,
        api_key,
        reset_token,
        outbox_id,
    }
}

async fn client_for(t: &TestApp, w: &World, role: Role) -> Client {
    match role {
        Role::Anonymous => t.client(),
        Role::Partner => t.signed_in(Subject::Partner(w.a)).await,
        Role::OtherPartner => t.signed_in(Subject::Partner(w.b)).await,
        Role::RemovedPartner => {
            let mut client = t.client();
            client.set_session(&w.removed_cookie, None);
            client
        }
        Role::OtherManager => t.signed_in(Subject::Staff(w.m2)).await,
        Role::Manager => t.signed_in(Subject::Staff(w.m1)).await,
        Role::Admin => t.signed_in(Subject::Staff(w.admin)).await,
        Role::ApiKey => t.client().with_bearer(&w.api_key),
    }
}

fn fill(text: &str, w: &World, role: Role) -> String {
    text.replace("{a}", &w.a.to_string())
        .replace("{pa}", &w.pa)
        .replace("{slug}", &w.slug)
        .replace("{m1}", &w.m1.to_string())
        .replace("{token}", &w.reset_token)
        .replace("{outbox}", &w.outbox_id.to_string())
        .replace("{role}", &format!("{role:?}").to_lowercase())
}

on_both_backends!(
    each_role_gets_the_expected_answer_on_every_route,
    |t: TestApp| async move {
        let w = world(&t).await;
        let mut wrong = Vec::new();
        for row in MATRIX {
            for (i, role) in ROLES.iter().enumerate() {
                // A fresh session per request, so one row (log-out) cannot change the next.
                let mut client = client_for(&t, &w, *role).await;
                let path = fill(row.path, &w, *role);
                let r = match (row.method, row.json) {
                    (method, Some(json)) => {
                        let method = Method::from_bytes(method.as_bytes()).unwrap();
                        client.send_json(method, &path, json).await
                    }
                    ("GET", None) => client.get(&path).await,
                    ("POST", None) => {
                        let filled: Vec<(String, String)> = row
                            .form
                            .iter()
                            .map(|(k, v)| ((*k).to_owned(), fill(v, &w, *role)))
                            .collect();
                        let fields: Vec<(&str, &str)> = filled
                            .iter()
                            .map(|(k, v)| (k.as_str(), v.as_str()))
                            .collect();
                        client.post_form(&path, &fields).await
                    }
                    (other, None) => panic!("no client for {other}"),
                };
                if r.status.as_u16() != row.expect[i] {
                    let location = r
                        .header("location")
                        .map(|l| format!(" → {l}"))
                        .unwrap_or_default();
                    wrong.push(format!(
                        "{} {} as {role:?}: expected {}, got {}{location}",
                        row.method, path, row.expect[i], r.status
                    ));
                }
                let csp = r.header("content-security-policy").unwrap_or_default();
                if !csp.contains("frame-ancestors 'none'")
                    || r.header("x-content-type-options") != Some("nosniff")
                    || r.header("referrer-policy").is_none()
                {
                    wrong.push(format!(
                        "{} {} as {role:?}: security headers missing: {:?}",
                        row.method, path, r.headers
                    ));
                }
            }
        }
        assert!(
            wrong.is_empty(),
            "{} answers differ from the access matrix:\n{}",
            wrong.len(),
            wrong.join("\n")
        );

        // The matrix changed nothing it should not have: A is still M1's and active.
        let a = t.get_partner(w.a).await;
        assert_eq!((a.manager_id, a.status.as_str()), (Some(w.m1), "active"));
        assert!(
            t.app.reset_link_is_valid(&w.reset_token).await.unwrap(),
            "the reset link was used up by an invalid form"
        );
    }
);

#[tokio::test]
async fn signed_out_visitors_sign_in_through_the_form_and_come_back_but_are_never_sent_off_site() {
    let t = TestApp::sqlite().await;
    let ann = t.partner("Ann Away").await;
    let admin = t.admin().await;
    for (account, page, login) in [
        (&ann, "/panel/account", "/login"),
        (&admin, "/admin/audit", "/admin/login"),
    ] {
        let mut c = t.client();
        let r = c.get(page).await;
        let next: String = url::form_urlencoded::byte_serialize(page.as_bytes()).collect();
        assert_eq!(
            (r.status, r.location()),
            (
                StatusCode::SEE_OTHER,
                format!("{login}?next={next}").as_str()
            )
        );
        // The sign-in page's form carries `next` on, as a browser would post it.
        let form = c.get(r.location()).await;
        assert_eq!(form.status, StatusCode::OK);
        let action = form.form_action(login);
        let r = c
            .post_form(
                &action,
                &[("email", &account.email), ("password", &account.password)],
            )
            .await;
        assert_eq!(
            (r.status, r.location()),
            (StatusCode::SEE_OTHER, page),
            "the form at {login} lost where to go back to"
        );
        assert_eq!(c.get(page).await.status, StatusCode::OK);
    }

    // Only paths of this site: no other host, not even through characters a
    // browser drops from a Location (tab, new line), and never a crash.
    for evil in [
        "//evil.example/x",
        "https://evil.example/",
        "/\\evil.example",
        "/\t/evil.example",
        "/\n/evil.example",
        "/\r\n/evil.example",
    ] {
        let mut c = t.client();
        let next: String = url::form_urlencoded::byte_serialize(evil.as_bytes()).collect();
        let r = c
            .post_form(
                &format!("/login?next={next}"),
                &[("email", &ann.email), ("password", &ann.password)],
            )
            .await;
        assert_eq!(
            (r.status, r.location()),
            (StatusCode::SEE_OTHER, "/panel"),
            "next={evil:?}"
        );
        let form = c.get(&format!("/login?next={next}")).await;
        assert_eq!(form.status, StatusCode::OK);
        assert!(
            !form.form_action("/login").contains("evil"),
            "next={evil:?} is carried on"
        );
    }
}

#[tokio::test]
async fn signed_in_people_who_open_the_sign_up_page_go_to_their_own_home() {
    let t = TestApp::sqlite().await;
    let ann = t.partner("Ann Home").await;
    let mia = t.manager("Mia Home").await;
    let r = t.signed_in(ann.subject).await.get("/signup").await;
    assert_eq!((r.status, r.location()), (StatusCode::SEE_OTHER, "/panel"));
    let mut manager = t.signed_in(mia.subject).await;
    let r = manager.get("/signup").await;
    assert_eq!(
        (r.status, r.location()),
        (StatusCode::SEE_OTHER, "/admin"),
        "staff are sent to a panel they cannot open"
    );
    assert_eq!(manager.get(r.location()).await.status, StatusCode::OK);
}

#[tokio::test]
async fn a_wrong_or_revoked_api_key_is_refused_and_a_session_never_opens_the_api() {
    let t = TestApp::sqlite().await;
    let key = t.app.create_api_key("test", "k").await.unwrap();
    // With the key: the API answers, in JSON, also for what it does not have.
    let r = t
        .client()
        .with_bearer(&key)
        .get("/api/v1/no-such-call")
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert!(
        r.header("content-type")
            .unwrap_or_default()
            .starts_with("application/json")
    );
    let new_partner = serde_json::json!({ "email": "keyed@example.test", "name": "Keyed Partner" });
    let before = t.counts().await;
    // Without a valid key nothing is written, whatever the body.
    let admin = t.admin().await;
    let before_admin = t.counts().await;
    assert_eq!(before_admin.partners, before.partners);
    let mut refused = vec![
        t.client().with_bearer("pdk_wrong"),
        t.client().with_bearer(""),
        t.client()
            .with_header("authorization", &format!("Basic {key}")),
        t.client().with_header("authorization", &key),
        t.client(),
        // A staff session is no key.
        t.signed_in(admin.subject).await,
    ];
    for client in &mut refused {
        for path in ["/api/v1/partners", "/api/v1/no-such-call"] {
            let r = client.post_json(path, &new_partner).await;
            assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{path}: {}", r.body);
            assert_eq!(r.header("www-authenticate"), Some("Bearer"));
            assert!(
                r.json()["error"].as_str().unwrap().contains("API key"),
                "{}",
                r.body
            );
        }
        let r = client.get("/api/v1/customers/cus_1/attribution").await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    }
    assert_eq!(
        t.counts().await,
        before_admin,
        "a refused call wrote something"
    );
    let r = t
        .client()
        .with_bearer(&key)
        .post_json("/api/v1/partners", &new_partner)
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    assert_eq!(t.counts().await.partners, before.partners + 1);
}

#[tokio::test]
async fn metrics_are_open_from_loopback_and_need_the_token_from_elsewhere() {
    let config = Config {
        metrics_token: Some(Secret::new("metrics-secret-token")),
        ..Default::default()
    };
    let t = TestApp::sqlite_with(config).await;
    assert_eq!(t.client().get("/metrics").await.status, StatusCode::OK);
    let mut remote = t.client().with_ip("203.0.113.5");
    assert_eq!(
        remote.get("/metrics").await.status,
        StatusCode::UNAUTHORIZED
    );
    let mut remote = t.client().with_ip("203.0.113.5").with_bearer("wrong");
    assert_eq!(
        remote.get("/metrics").await.status,
        StatusCode::UNAUTHORIZED
    );
    let mut remote = t
        .client()
        .with_ip("203.0.113.5")
        .with_bearer("metrics-secret-token");
    let r = remote.get("/metrics").await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.body.contains("partnerd_up 1"), "{}", r.body);
    // A forged X-Forwarded-For from an untrusted peer changes nothing.
    let mut forged = t.client().with_ip("203.0.113.5");
    let request = axum::http::Request::builder()
        .uri("/metrics")
        .header("x-forwarded-for", "127.0.0.1")
        .extension(axum::extract::ConnectInfo(std::net::SocketAddr::from((
            [203, 0, 113, 5],
            4000,
        ))))
        .body(axum::body::Body::empty())
        .unwrap();
    assert_eq!(
        forged.send_request(request).await.status,
        StatusCode::UNAUTHORIZED
    );
}
