//! The harness: a fresh partnerd per test (SQLite in a temporary directory, or
//! a PostgreSQL database of its own), a fake clock, builders for accounts, and
//! a small cookie-jar client that drives `partnerd_web::Service` (what
//! `partnerd serve` runs) in-process.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use axum::body::{Body, to_bytes};
use axum::extract::ConnectInfo;
use axum::http::{HeaderMap, Method, Request, StatusCode, header};
use partnerd_app::accounts::SignupInput;
use partnerd_app::{App, Config, FakeClock};
use partnerd_domain::Timestamp;
use partnerd_store::{AuditEntry, OutboxEmail, Partner, PartnerQuery, Store, Subject};
use sqlx::{Connection, Executor};

/// Names the PostgreSQL server the `on_postgres` variants run on.
pub const POSTGRES_URL_VAR: &str = "PARTNERD_TEST_POSTGRES_URL";

/// The password every account the builders make gets.
pub const PASSWORD: &str = "violet harbour lantern";

/// A new password that passes the policy.
pub const NEW_PASSWORD: &str = "amber orchard kettle";

/// 2026-01-01T00:00:00Z: the fake clock starts at a day's beginning, so the
/// daily network hash stays the same for any advance shorter than a day.
pub const START: Timestamp = Timestamp::from_millis(1_767_225_600_000);

/// `on_both_backends!(name, |t| async move { … })` writes `name::on_sqlite`
/// and `name::on_postgres`; the second runs only when `PARTNERD_TEST_POSTGRES_URL`
/// is set (each test on a database of its own) and is a no-op otherwise.
macro_rules! on_both_backends {
    ($name:ident, $body:expr) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn on_sqlite() {
                let t = $crate::helpers::TestApp::sqlite().await;
                ($body)(t).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn on_postgres() {
                let Some(t) = $crate::helpers::TestApp::postgres().await else {
                    println!(
                        "{}: skipped, {} is not set",
                        module_path!(),
                        $crate::helpers::POSTGRES_URL_VAR
                    );
                    return;
                };
                ($body)(t).await;
            }
        }
    };
}
pub(crate) use on_both_backends;

/// The databases a test can run on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Db {
    Sqlite,
    Postgres,
}

impl Db {
    /// SQLite always, PostgreSQL when `PARTNERD_TEST_POSTGRES_URL` is set: for
    /// tests that need a configuration of their own and loop over the backends.
    pub fn available() -> Vec<Db> {
        let postgres = std::env::var(POSTGRES_URL_VAR).is_ok_and(|v| !v.trim().is_empty());
        if postgres {
            vec![Db::Sqlite, Db::Postgres]
        } else {
            vec![Db::Sqlite]
        }
    }
}

/// An account made by a builder.
#[derive(Debug, Clone)]
pub struct Account {
    pub id: i64,
    pub email: String,
    pub password: String,
    pub subject: Subject,
}

/// Rows in the tables a refused request must not touch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Counts {
    pub partners: i64,
    pub audit: i64,
    pub outbox: i64,
}

/// One partnerd, on a fresh database, with a fake clock.
pub struct TestApp {
    pub app: App,
    pub clock: FakeClock,
    pub store: Arc<dyn Store>,
    service: partnerd_web::Service,
    https: bool,
    counter: AtomicUsize,
    /// The database's URL, for the raw look-ups of [`TestApp::sql_scalar`].
    db_url: String,
    _dir: Option<tempfile::TempDir>,
    /// Declared last: dropped after the store, it drops the PostgreSQL database.
    _pg: Option<PgDatabase>,
}

impl TestApp {
    pub async fn sqlite() -> Self {
        Self::sqlite_with(Config::default()).await
    }

    pub async fn sqlite_with(config: Config) -> Self {
        let dir = tempfile::tempdir().expect("temporary directory");
        let url = format!("sqlite://{}/partnerd.db", dir.path().display());
        let store = partnerd_store::SqliteStore::connect(&url)
            .await
            .expect("open the SQLite store");
        store.migrate().await.expect("migrate the SQLite store");
        Self::build(Arc::new(store), config, url, Some(dir), None).await
    }

    pub async fn on(db: Db, config: Config) -> Self {
        match db {
            Db::Sqlite => Self::sqlite_with(config).await,
            Db::Postgres => Self::postgres_with(config)
                .await
                .expect("PARTNERD_TEST_POSTGRES_URL is set"),
        }
    }

    /// `None` when `PARTNERD_TEST_POSTGRES_URL` is unset.
    pub async fn postgres() -> Option<Self> {
        Self::postgres_with(Config::default()).await
    }

    pub async fn postgres_with(config: Config) -> Option<Self> {
        let admin_url = std::env::var(POSTGRES_URL_VAR)
            .ok()
            .filter(|v| !v.trim().is_empty())?;
        let name = format!("partnerd_w_{:016x}", rand::random::<u64>());
        let mut admin = sqlx::PgConnection::connect(&admin_url)
            .await
            .unwrap_or_else(|e| panic!("connect to {POSTGRES_URL_VAR}: {e}"));
        admin
            .execute(format!("create database {name}").as_str())
            .await
            .unwrap_or_else(|e| panic!("create database {name}: {e}"));
        let _ = admin.close().await;
        let pg = PgDatabase {
            admin_url: admin_url.clone(),
            name: name.clone(),
        };
        let mut url = url::Url::parse(&admin_url).expect("PARTNERD_TEST_POSTGRES_URL is a URL");
        url.set_path(&format!("/{name}"));
        let store = partnerd_store::connect(url.as_str())
            .await
            .expect("open the PostgreSQL store");
        store.migrate().await.expect("migrate the PostgreSQL store");
        Some(Self::build(store, config, url.to_string(), None, Some(pg)).await)
    }

    async fn build(
        store: Arc<dyn Store>,
        config: Config,
        db_url: String,
        dir: Option<tempfile::TempDir>,
        pg: Option<PgDatabase>,
    ) -> Self {
        let clock = FakeClock::at(START);
        let https = config.is_https();
        let app = App::new(store.clone(), Arc::new(clock.clone()), config)
            .await
            .expect("build the app");
        app.ensure_defaults().await.expect("seed the defaults");
        let service = partnerd_web::Service::new(app.clone());
        Self {
            app,
            clock,
            store,
            service,
            https,
            counter: AtomicUsize::new(0),
            db_url,
            _dir: dir,
            _pg: pg,
        }
    }

    fn next(&self) -> usize {
        self.counter.fetch_add(1, Ordering::SeqCst)
    }

    pub fn advance(&self, seconds: i64) {
        self.clock.advance_seconds(seconds);
    }

    // --- clients ------------------------------------------------------------------

    /// A browser with no cookies.
    pub fn client(&self) -> Client {
        Client::new(self.service.clone(), self.https)
    }

    /// A browser signed in as `subject`, through a session made directly (no
    /// password hashing, so tables of requests stay fast).
    pub async fn signed_in(&self, subject: Subject) -> Client {
        let session = self
            .app
            .start_session(subject)
            .await
            .expect("start a session");
        let mut client = self.client();
        client.set_session(&session.token, Some(&session.csrf_token));
        client
    }

    /// A browser that signed in through the real form (`/login` or `/admin/login`).
    pub async fn login_as(&self, account: &Account) -> Client {
        let mut client = self.client();
        let path = match account.subject {
            Subject::Partner(_) => "/login",
            Subject::Staff(_) => "/admin/login",
        };
        let r = client
            .post_form(
                path,
                &[("email", &account.email), ("password", &account.password)],
            )
            .await;
        assert_eq!(
            r.status,
            StatusCode::SEE_OTHER,
            "log in as {}: {}",
            account.email,
            r.body
        );
        assert!(
            client.session_token().is_some(),
            "log-in set no session cookie"
        );
        client
    }

    // --- builders -----------------------------------------------------------------

    /// A partner signed up through `App::sign_up`, from a network of its own so
    /// builders never use up the per-network sign-up limit.
    pub async fn partner(&self, name: &str) -> Account {
        self.partner_with(name, &email_for(name, "example.test"))
            .await
    }

    pub async fn partner_with(&self, name: &str, email: &str) -> Account {
        let input = SignupInput {
            name: name.into(),
            email: email.into(),
            password: PASSWORD.into(),
            company: String::new(),
            website: String::new(),
            accept_terms: true,
        };
        let network = format!("builder-network-{}", self.next());
        let (partner, _) = self
            .app
            .sign_up(&input, &network)
            .await
            .expect("sign up a partner");
        Account {
            id: partner.id,
            email: email.to_lowercase(),
            password: PASSWORD.into(),
            subject: Subject::Partner(partner.id),
        }
    }

    pub async fn manager(&self, name: &str) -> Account {
        self.staff(name, "manager").await
    }

    pub async fn admin(&self) -> Account {
        self.staff("Ada Admin", "admin").await
    }

    pub async fn staff(&self, name: &str, role: &str) -> Account {
        let email = email_for(name, "vendor.test");
        let staff = self
            .app
            .create_staff("test", &email, name, role, Some(PASSWORD))
            .await
            .expect("create staff");
        Account {
            id: staff.id,
            email,
            password: PASSWORD.into(),
            subject: Subject::Staff(staff.id),
        }
    }

    /// Asks for a reset link as the web does and returns the link's path.
    pub async fn reset_link_for(&self, account: &Account) -> String {
        let network = format!("reset-network-{}", self.next());
        self.app
            .request_password_reset(&account.email, &network)
            .await
            .expect("request a reset");
        let email = self.last_email_to(&account.email).await;
        reset_path_in(&email.body)
    }

    // --- reading state --------------------------------------------------------------

    pub async fn counts(&self) -> Counts {
        let partners = self
            .store
            .list_partners(&PartnerQuery {
                include_removed: true,
                limit: 1,
                ..Default::default()
            })
            .await
            .expect("count partners")
            .total;
        let audit = self
            .store
            .list_audit(1, 0)
            .await
            .expect("count audit")
            .total;
        let outbox = self
            .store
            .list_outbox(1, 0)
            .await
            .expect("count outbox")
            .total;
        Counts {
            partners,
            audit,
            outbox,
        }
    }

    pub async fn get_partner(&self, id: i64) -> Partner {
        self.store.get_partner(id).await.expect("get partner")
    }

    /// The public partner id (the one in `/r/{id}`) of an account.
    pub async fn public_id(&self, account: &Account) -> String {
        self.get_partner(account.id).await.public_id
    }

    /// A client carrying a new integration API key.
    pub async fn api(&self) -> Client {
        let name = format!("test key {}", self.next());
        let key = self
            .app
            .create_api_key("test", &name)
            .await
            .expect("create an API key");
        self.client().with_bearer(&key)
    }

    /// One number from the database, read with SQL of the test's own (for
    /// tables the `Store` trait does not count, such as clicks and sign-ups).
    pub async fn sql_scalar(&self, sql: &str) -> i64 {
        if self.db_url.starts_with("sqlite:") {
            let mut db = sqlx::SqliteConnection::connect(&self.db_url)
                .await
                .expect("open the SQLite file");
            let value = sqlx::query_scalar::<_, i64>(sql)
                .fetch_one(&mut db)
                .await
                .unwrap_or_else(|e| panic!("{sql}: {e}"));
            let _ = db.close().await;
            value
        } else {
            let mut db = sqlx::PgConnection::connect(&self.db_url)
                .await
                .expect("connect to the test database");
            let value = sqlx::query_scalar::<_, i64>(sql)
                .fetch_one(&mut db)
                .await
                .unwrap_or_else(|e| panic!("{sql}: {e}"));
            let _ = db.close().await;
            value
        }
    }

    /// The rows of a query whose every column is text (cast in the SQL).
    pub async fn sql_texts(&self, sql: &str) -> Vec<Vec<Option<String>>> {
        use sqlx::Row;
        if self.db_url.starts_with("sqlite:") {
            let mut db = sqlx::SqliteConnection::connect(&self.db_url)
                .await
                .expect("open the SQLite file");
            let rows = sqlx::query(sql)
                .fetch_all(&mut db)
                .await
                .unwrap_or_else(|e| panic!("{sql}: {e}"));
            let _ = db.close().await;
            rows.iter()
                .map(|r| {
                    (0..r.len())
                        .map(|i| r.get::<Option<String>, _>(i))
                        .collect()
                })
                .collect()
        } else {
            let mut db = sqlx::PgConnection::connect(&self.db_url)
                .await
                .expect("connect to the test database");
            let rows = sqlx::query(sql)
                .fetch_all(&mut db)
                .await
                .unwrap_or_else(|e| panic!("{sql}: {e}"));
            let _ = db.close().await;
            rows.iter()
                .map(|r| {
                    (0..r.len())
                        .map(|i| r.get::<Option<String>, _>(i))
                        .collect()
                })
                .collect()
        }
    }

    /// The whole outbox, oldest first.
    pub async fn outbox(&self) -> Vec<OutboxEmail> {
        let mut items = self
            .store
            .list_outbox(500, 0)
            .await
            .expect("list outbox")
            .items;
        items.reverse();
        items
    }

    pub async fn emails_to(&self, to: &str) -> Vec<OutboxEmail> {
        self.outbox()
            .await
            .into_iter()
            .filter(|e| e.to_address == to)
            .collect()
    }

    pub async fn last_email_to(&self, to: &str) -> OutboxEmail {
        self.emails_to(to)
            .await
            .pop()
            .unwrap_or_else(|| panic!("no email to {to}"))
    }

    /// The whole audit log, newest first.
    pub async fn audit(&self) -> Vec<AuditEntry> {
        self.store
            .list_audit(500, 0)
            .await
            .expect("list audit")
            .items
    }

    pub async fn last_audit(&self) -> AuditEntry {
        self.audit()
            .await
            .into_iter()
            .next()
            .expect("an audit entry")
    }
}

/// `Ann Example` → `ann.example@DOMAIN`.
pub fn email_for(name: &str, domain: &str) -> String {
    let local: String = name
        .to_lowercase()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '.' })
        .collect();
    format!("{local}@{domain}")
}

/// The `/password-reset/TOKEN` path of the link in an email body.
pub fn reset_path_in(body: &str) -> String {
    let start = body
        .find("/password-reset/")
        .unwrap_or_else(|| panic!("no reset link in {body:?}"));
    body[start..]
        .split_whitespace()
        .next()
        .expect("a link")
        .to_owned()
}

/// A PostgreSQL database made for one test, dropped (best effort) with it.
struct PgDatabase {
    admin_url: String,
    name: String,
}

impl Drop for PgDatabase {
    fn drop(&mut self) {
        let (admin_url, name) = (self.admin_url.clone(), self.name.clone());
        // Drop runs inside the test's runtime, so the async clean-up gets a thread
        // and a runtime of its own.
        let _ = std::thread::spawn(move || {
            let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            runtime.block_on(async move {
                if let Ok(mut admin) = sqlx::PgConnection::connect(&admin_url).await {
                    let _ = admin
                        .execute(format!("drop database if exists {name} with (force)").as_str())
                        .await;
                    let _ = admin.close().await;
                }
            });
        })
        .join();
    }
}

// --- the client ------------------------------------------------------------------------

/// One answer: status, headers and the body as text.
#[derive(Debug)]
pub struct Resp {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: String,
}

impl Resp {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    pub fn location(&self) -> &str {
        self.header("location")
            .unwrap_or_else(|| panic!("no Location in a {} answer", self.status))
    }

    /// The body as JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| {
            panic!(
                "a {} answer that is not JSON ({e}): {}",
                self.status, self.body
            )
        })
    }

    pub fn set_cookies(&self) -> Vec<String> {
        self.headers
            .get_all(header::SET_COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .map(str::to_owned)
            .collect()
    }

    /// The whole `Set-Cookie` line for the cookie `name`, if the answer sets it.
    pub fn set_cookie(&self, name: &str) -> Option<String> {
        self.set_cookies()
            .into_iter()
            .find(|c| c.split_once('=').is_some_and(|(k, _)| k == name))
    }

    /// The fields the page marks as invalid (`<p class="field-error" id="FIELD-error">`).
    pub fn field_errors(&self) -> Vec<String> {
        field_errors(&self.body)
    }

    /// The `action` of the page's first form whose action starts with `prefix`
    /// (HTML entities for `&` undone).
    pub fn form_action(&self, prefix: &str) -> String {
        self.body
            .split("action=\"")
            .skip(1)
            .filter_map(|rest| rest.split('"').next())
            .map(|action| action.replace("&amp;", "&").replace("&#38;", "&"))
            .find(|action| action.starts_with(prefix))
            .unwrap_or_else(|| panic!("no form posting to {prefix}… on the page: {}", self.body))
    }

    /// The page with the per-request parts (CSP nonces) blanked, for comparing
    /// two answers.
    pub fn normalized_body(&self) -> String {
        blank_attribute(&self.body, "nonce=\"")
    }
}

pub fn field_errors(body: &str) -> Vec<String> {
    let mut fields = Vec::new();
    let mut rest = body;
    while let Some(at) = rest.find("class=\"field-error\" id=\"") {
        rest = &rest[at + "class=\"field-error\" id=\"".len()..];
        if let Some(end) = rest.find("-error\"") {
            fields.push(rest[..end].to_owned());
        }
    }
    fields
}

fn blank_attribute(body: &str, prefix: &str) -> String {
    let mut out = String::with_capacity(body.len());
    let mut rest = body;
    while let Some(at) = rest.find(prefix) {
        out.push_str(&rest[..at + prefix.len()]);
        rest = &rest[at + prefix.len()..];
        let end = rest.find('"').unwrap_or(rest.len());
        out.push('…');
        rest = &rest[end..];
    }
    out.push_str(rest);
    out
}

/// The value of the first `name="csrf_token" value="…"` on a page.
pub fn scrape_csrf(body: &str) -> Option<String> {
    let marker = "name=\"csrf_token\" value=\"";
    let start = body.find(marker)? + marker.len();
    let end = body[start..].find('"')?;
    Some(body[start..start + end].to_owned())
}

/// A browser: keeps cookies, knows the CSRF token that goes with its current
/// session, and may come from a given address (as `ConnectInfo` would say).
pub struct Client {
    service: partnerd_web::Service,
    jar: BTreeMap<String, String>,
    /// The CSRF token last seen, with the session cookie it belongs to.
    csrf: Option<(Option<String>, String)>,
    session_cookie: &'static str,
    csrf_cookie: &'static str,
    bearer: Option<String>,
    peer: Option<SocketAddr>,
    /// Headers every request carries (`User-Agent`, `X-Forwarded-For`, …).
    extra_headers: Vec<(String, String)>,
}

impl Client {
    fn new(service: partnerd_web::Service, https: bool) -> Self {
        Self {
            service,
            jar: BTreeMap::new(),
            csrf: None,
            session_cookie: partnerd_web::context::session_cookie_name(https),
            csrf_cookie: if https {
                "__Host-partnerd_csrf"
            } else {
                "partnerd_csrf"
            },
            bearer: None,
            peer: None,
            extra_headers: Vec::new(),
        }
    }

    /// Requests come from `ip` (the web layer's peer address).
    pub fn with_ip(mut self, ip: &str) -> Self {
        let ip: IpAddr = ip.parse().expect("an IP address");
        self.peer = Some(SocketAddr::new(ip, 40_000));
        self
    }

    /// Every request carries the header `name: value`.
    pub fn with_header(mut self, name: &str, value: &str) -> Self {
        self.extra_headers.push((name.to_owned(), value.to_owned()));
        self
    }

    /// Sends a JSON body (exactly `body`, which need not be valid JSON).
    pub async fn send_json(&mut self, method: Method, path: &str, body: &str) -> Resp {
        let mut builder = Request::builder()
            .method(method)
            .uri(path)
            .header(header::CONTENT_TYPE, "application/json");
        for (name, value) in &self.extra_headers {
            builder = builder.header(name.as_str(), value.as_str());
        }
        if let Some(key) = &self.bearer {
            builder = builder.header(header::AUTHORIZATION, format!("Bearer {key}"));
        }
        let mut request = builder
            .body(Body::from(body.to_owned()))
            .expect("build the request");
        if let Some(peer) = self.peer {
            request.extensions_mut().insert(ConnectInfo(peer));
        }
        self.send_request(request).await
    }

    pub async fn post_json(&mut self, path: &str, body: &serde_json::Value) -> Resp {
        self.send_json(Method::POST, path, &body.to_string()).await
    }

    /// Every request carries `Authorization: Bearer KEY`.
    pub fn with_bearer(mut self, key: &str) -> Self {
        self.bearer = Some(key.to_owned());
        self
    }

    pub fn session_token(&self) -> Option<String> {
        self.jar.get(self.session_cookie).cloned()
    }

    pub fn csrf_cookie(&self) -> Option<String> {
        self.jar.get(self.csrf_cookie).cloned()
    }

    /// Puts a session cookie in the jar; with `csrf`, also the token that goes with it.
    pub fn set_session(&mut self, token: &str, csrf: Option<&str>) {
        self.jar
            .insert(self.session_cookie.to_owned(), token.to_owned());
        self.csrf = csrf.map(|c| (Some(token.to_owned()), c.to_owned()));
    }

    pub fn set_cookie(&mut self, name: &str, value: &str) {
        self.jar.insert(name.to_owned(), value.to_owned());
    }

    pub async fn get(&mut self, path: &str) -> Resp {
        self.send(Method::GET, path, None).await
    }

    /// Posts a form with the CSRF token of the current session (or of the
    /// anonymous cookie), as the page's hidden field would.
    pub async fn post_form(&mut self, path: &str, fields: &[(&str, &str)]) -> Resp {
        let token = self.current_csrf().await;
        self.post_form_with_csrf(path, fields, &token).await
    }

    pub async fn post_form_with_csrf(
        &mut self,
        path: &str,
        fields: &[(&str, &str)],
        token: &str,
    ) -> Resp {
        let mut all: Vec<(&str, &str)> = vec![("csrf_token", token)];
        all.extend_from_slice(fields);
        self.post_form_without_csrf(path, &all).await
    }

    /// Posts exactly `fields`: no CSRF token is added.
    pub async fn post_form_without_csrf(&mut self, path: &str, fields: &[(&str, &str)]) -> Resp {
        let body = serde_urlencoded::to_string(fields).expect("encode the form");
        self.send(Method::POST, path, Some(body)).await
    }

    /// The token a page of this site would hold for this browser right now.
    pub async fn current_csrf(&mut self) -> String {
        let session = self.session_token();
        if let Some((for_session, token)) = &self.csrf
            && *for_session == session
        {
            return token.clone();
        }
        if session.is_some() || self.csrf_cookie().is_none() {
            // A signed-in page shows the session's token (in the sign-out form);
            // an anonymous visit sets the CSRF cookie.
            self.get("/").await;
            if let Some((for_session, token)) = &self.csrf
                && *for_session == session
            {
                return token.clone();
            }
        }
        self.csrf_cookie().expect("an anonymous CSRF cookie")
    }

    /// The `Cookie` header this client would send.
    pub fn cookie_header(&self) -> String {
        self.jar
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    pub async fn send(&mut self, method: Method, path: &str, form: Option<String>) -> Resp {
        let mut builder = Request::builder().method(method).uri(path);
        if !self.jar.is_empty() {
            let cookies: Vec<String> = self.jar.iter().map(|(k, v)| format!("{k}={v}")).collect();
            builder = builder.header(header::COOKIE, cookies.join("; "));
        }
        if let Some(key) = &self.bearer {
            builder = builder.header(header::AUTHORIZATION, format!("Bearer {key}"));
        }
        for (name, value) in &self.extra_headers {
            builder = builder.header(name.as_str(), value.as_str());
        }
        let body = match form {
            Some(form) => {
                builder = builder.header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
                Body::from(form)
            }
            None => Body::empty(),
        };
        let mut request = builder.body(body).expect("build the request");
        if let Some(peer) = self.peer {
            request.extensions_mut().insert(ConnectInfo(peer));
        }
        self.send_request(request).await
    }

    /// Sends a request as built by the caller (cookies are not added).
    pub async fn send_request(&mut self, request: Request<Body>) -> Resp {
        let sent_session = self.session_token();
        let peer = request
            .extensions()
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0);
        let response = self.service.call(request, peer).await;
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = to_bytes(response.into_body(), 16 * 1024 * 1024)
            .await
            .expect("read the body");
        let body = String::from_utf8_lossy(&bytes).into_owned();
        if let Some(token) = scrape_csrf(&body) {
            self.csrf = Some((sent_session, token));
        }
        for line in headers
            .get_all(header::SET_COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
        {
            let first = line.split(';').next().unwrap_or_default();
            let Some((name, value)) = first.split_once('=') else {
                continue;
            };
            let expired = line
                .split(';')
                .any(|attr| attr.trim().eq_ignore_ascii_case("max-age=0"));
            if expired || value.is_empty() {
                self.jar.remove(name.trim());
            } else {
                self.jar.insert(name.trim().to_owned(), value.to_owned());
            }
        }
        Resp {
            status,
            headers,
            body,
        }
    }
}
