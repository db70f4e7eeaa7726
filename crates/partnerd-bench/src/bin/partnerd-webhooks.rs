//! `partnerd-webhooks`: the billing-events benchmark (issue 4's speed goal).
//!
//! `drive` sets up a credited program through the integration API (a partner,
//! then `--customers` sign-ups credited to it), builds `--events` distinct
//! Stripe `invoice.paid` events of about 5 KB (as Stripe sends them), signs
//! each with the endpoint's secret, and posts them to `/webhooks/stripe` over
//! `--connections` keep-alive connections as fast as the server answers. Every
//! answer counts only when it is `200`: partnerd answers after the commit that
//! booked the event. It prints events per second and latency percentiles; the
//! last line is `RESULT key=value …`.
//!
//! `baseline` is the yardstick: a bare hyper server that does what partnerd
//! does before booking — reads the body, verifies `Stripe-Signature` with the
//! same code (`partnerd_app::stripe::verify_signature`) and parses the event
//! (`parse_event`) — and answers `200` without touching a database.
//!
//! ```text
//! partnerd-webhooks baseline --listen 127.0.0.1:9091 --secret whsec_bench
//! partnerd-webhooks drive --url http://127.0.0.1:8080 --api-key KEY --secret whsec_bench
//! ```

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};
use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::client::conn::http1 as client;
use hyper::header::{AUTHORIZATION, CONTENT_TYPE, HOST, HeaderValue};
use hyper::server::conn::http1 as server;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use partnerd_app::stripe::{SigningSecrets, parse_event, verify_signature};
use partnerd_bench::Percentiles;
use partnerd_domain::Timestamp;
use tokio::net::{TcpListener, TcpStream};

#[derive(Debug, Parser)]
#[command(
    version,
    about = "Billing-events benchmark: signed Stripe webhooks against partnerd, and a verify-only baseline."
)]
struct Args {
    #[command(subcommand)]
    command: Mode,
}

#[derive(Debug, Subcommand)]
enum Mode {
    /// A bare hyper server that verifies and parses each event and answers 200.
    Baseline {
        #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:9091")]
        listen: String,
        /// The Stripe signing secret the events are signed with.
        #[arg(long, value_name = "SECRET")]
        secret: String,
    },
    /// Post signed events to a server and time the answers.
    Drive {
        /// partnerd's (or the baseline's) base URL, http only.
        #[arg(long, value_name = "URL")]
        url: String,
        /// An integration API key, to set up the credited customers (partnerd only).
        #[arg(long, value_name = "KEY")]
        api_key: Option<String>,
        /// The Stripe signing secret partnerd is configured with.
        #[arg(long, value_name = "SECRET")]
        secret: String,
        /// Distinct events to send.
        #[arg(long, value_name = "N", default_value_t = 50_000)]
        events: usize,
        /// Keep-alive connections sending at once.
        #[arg(long, value_name = "N", default_value_t = 64)]
        connections: usize,
        /// Credited customers the invoices are spread over.
        #[arg(long, value_name = "N", default_value_t = 1_000)]
        customers: usize,
        /// Distinguishes the ids of this run's events from other runs' on the same server.
        #[arg(long, value_name = "TAG", default_value = "run1")]
        tag: String,
    },
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the runtime")?;
    match args.command {
        Mode::Baseline { listen, secret } => runtime.block_on(baseline(listen, secret)),
        Mode::Drive {
            url,
            api_key,
            secret,
            events,
            connections,
            customers,
            tag,
        } => runtime.block_on(drive(Drive {
            url,
            api_key,
            secret,
            events,
            connections: connections.max(1),
            customers: customers.max(1),
            tag,
        })),
    }
}

async fn baseline(listen: String, secret: String) -> anyhow::Result<()> {
    let secrets: &'static SigningSecrets = Box::leak(Box::new(SigningSecrets::new([secret])));
    let listener = TcpListener::bind(&listen)
        .await
        .with_context(|| format!("cannot listen on {listen}"))?;
    println!(
        "partnerd-webhooks baseline listening on http://{}",
        listener.local_addr()?
    );
    let mut http = server::Builder::new();
    http.keep_alive(true);
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let _ = stream.set_nodelay(true);
        let http = http.clone();
        tokio::spawn(async move {
            let service = service_fn(move |request: Request<Incoming>| async move {
                Ok::<_, Infallible>(verify_only(request, secrets).await)
            });
            let _ = http.serve_connection(TokioIo::new(stream), service).await;
        });
    }
}

/// What partnerd does to an event before it books it.
async fn verify_only(
    request: Request<Incoming>,
    secrets: &SigningSecrets,
) -> Response<Full<Bytes>> {
    let header = request
        .headers()
        .get("stripe-signature")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let answer = |status: StatusCode, body: &'static str| {
        let mut response = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
        *response.status_mut() = status;
        response
            .headers_mut()
            .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        response
    };
    let Ok(body) = request.into_body().collect().await.map(|b| b.to_bytes()) else {
        return answer(StatusCode::BAD_REQUEST, r#"{"error":"unreadable body"}"#);
    };
    let now = Timestamp::from_millis(unix_millis());
    if verify_signature(header.as_deref(), &body, secrets, now).is_err() {
        return answer(StatusCode::BAD_REQUEST, r#"{"error":"bad signature"}"#);
    }
    if parse_event(&body).is_err() {
        return answer(StatusCode::BAD_REQUEST, r#"{"error":"bad event"}"#);
    }
    answer(StatusCode::OK, r#"{"received":true}"#)
}

fn unix_millis() -> i64 {
    // A benchmark tool, not partnerd: the wall clock is what signatures carry.
    #[allow(clippy::disallowed_methods)]
    let now = std::time::SystemTime::now();
    now.duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

struct Drive {
    url: String,
    api_key: Option<String>,
    secret: String,
    events: usize,
    connections: usize,
    customers: usize,
    tag: String,
}

/// One keep-alive connection to the server.
struct Connection {
    sender: client::SendRequest<Full<Bytes>>,
    host: HeaderValue,
}

impl Connection {
    async fn open(addr: SocketAddr) -> anyhow::Result<Self> {
        let stream = TcpStream::connect(addr)
            .await
            .with_context(|| format!("cannot connect to {addr}"))?;
        stream.set_nodelay(true)?;
        let (sender, connection) = client::handshake(TokioIo::new(stream)).await?;
        tokio::spawn(connection);
        Ok(Self {
            sender,
            host: HeaderValue::from_str(&addr.to_string())?,
        })
    }

    async fn post(
        &mut self,
        path: &str,
        headers: &[(&'static str, String)],
        body: Bytes,
    ) -> anyhow::Result<(StatusCode, Bytes)> {
        let mut request = Request::new(Full::new(body));
        *request.method_mut() = Method::POST;
        *request.uri_mut() = path.parse()?;
        let h = request.headers_mut();
        h.insert(HOST, self.host.clone());
        h.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        for (name, value) in headers {
            h.insert(*name, HeaderValue::from_str(value)?);
        }
        self.sender.ready().await?;
        let response = self.sender.send_request(request).await?;
        let status = response.status();
        let body = response.into_body().collect().await?.to_bytes();
        Ok((status, body))
    }
}

async fn address(url: &str) -> anyhow::Result<SocketAddr> {
    let uri: hyper::Uri = url.parse().context("--url is not a URL")?;
    if uri.scheme_str() != Some("http") {
        bail!("--url must be an http:// URL");
    }
    let authority = uri.authority().context("--url has no host")?;
    let host_port = format!(
        "{}:{}",
        authority.host(),
        authority.port_u16().unwrap_or(80)
    );
    tokio::net::lookup_host(&host_port)
        .await?
        .next()
        .with_context(|| format!("{host_port} resolves to no address"))
}

/// A partner and `customers` sign-ups credited to it; the customers' ids.
async fn credited_customers(
    addr: SocketAddr,
    key: &str,
    customers: usize,
    tag: &str,
) -> anyhow::Result<Vec<String>> {
    let mut api = Connection::open(addr).await?;
    let auth = [(AUTHORIZATION.as_str(), format!("Bearer {key}"))];
    let body = format!(r#"{{"email":"bench-{tag}@partners.test","name":"Bench {tag}"}}"#);
    let (status, answer) = api
        .post("/api/v1/partners", &auth, Bytes::from(body))
        .await?;
    if status != StatusCode::CREATED {
        bail!("POST /api/v1/partners answered {status}: {answer:?}");
    }
    let partner: serde_json::Value = serde_json::from_slice(&answer)?;
    let partner_id = partner["id"].as_str().context("no partner id")?.to_owned();
    let mut ids = Vec::with_capacity(customers);
    for n in 0..customers {
        let customer = format!("cus_bench{tag}{n:06}");
        let body = format!(r#"{{"customer_id":"{customer}","referral":"{partner_id}"}}"#);
        let (status, answer) = api
            .post("/api/v1/signups", &auth, Bytes::from(body))
            .await?;
        if !status.is_success() {
            bail!("POST /api/v1/signups answered {status}: {answer:?}");
        }
        ids.push(customer);
    }
    Ok(ids)
}

async fn drive(run: Drive) -> anyhow::Result<()> {
    let addr = address(&run.url).await?;
    let customers = match &run.api_key {
        Some(key) => credited_customers(addr, key, run.customers, &run.tag).await?,
        None => (0..run.customers)
            .map(|n| format!("cus_bench{}{n:06}", run.tag))
            .collect(),
    };
    // Every event built and signed before the clock starts: the client's work
    // is not the server's. Signed now, so they stay within Stripe's 300 s.
    let created = unix_millis() / 1000;
    let mut bodies = Vec::with_capacity(run.events);
    let mut size = 0usize;
    for n in 0..run.events {
        let event_id = format!("evt_bench{}{n:08}", run.tag);
        let invoice = format!("in_bench{}{n:08}", run.tag);
        let charge = format!("ch_bench{}{n:08}", run.tag);
        let intent = format!("pi_bench{}{n:08}", run.tag);
        let subscription = format!("sub_bench{}{:06}", run.tag, n % run.customers);
        let body = partnerd_testkit::stripe::invoice_paid(&partnerd_testkit::stripe::InvoicePaid {
            event_id: &event_id,
            created,
            invoice: &invoice,
            customer: &customers[n % customers.len()],
            amount_paid: 4_900 + (n as i64 % 7) * 1_000,
            currency: "usd",
            subscription: Some(&subscription),
            charge: &charge,
            payment_intent: &intent,
            paid_at: Some(created),
            basil: false,
        });
        size += body.len();
        let signature = partnerd_testkit::stripe::sign(&run.secret, created, body.as_bytes());
        bodies.push((Bytes::from(body), signature));
    }
    let bodies = Arc::new(bodies);
    println!(
        "{} events, {} bytes each on average, {} connections",
        run.events,
        size / run.events.max(1),
        run.connections
    );
    let next = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let mut tasks = Vec::with_capacity(run.connections);
    for _ in 0..run.connections {
        let (bodies, next) = (bodies.clone(), next.clone());
        tasks.push(tokio::spawn(async move {
            let mut connection = Connection::open(addr).await?;
            let mut latencies = Vec::new();
            let mut failed = Vec::new();
            loop {
                let n = next.fetch_add(1, Ordering::Relaxed);
                let Some((body, signature)) = bodies.get(n) else {
                    return anyhow::Ok((latencies, failed));
                };
                let sent = Instant::now();
                let (status, answer) = connection
                    .post(
                        "/webhooks/stripe",
                        &[("stripe-signature", signature.clone())],
                        body.clone(),
                    )
                    .await?;
                latencies.push(sent.elapsed().as_micros().min(u32::MAX as u128) as u32);
                if status != StatusCode::OK {
                    failed.push((status, answer));
                }
            }
        }));
    }
    let mut latencies = Vec::with_capacity(run.events);
    let mut failed = Vec::new();
    for task in tasks {
        let (l, f) = task.await.context("a connection task panicked")??;
        latencies.extend(l);
        failed.extend(f);
    }
    let elapsed = start.elapsed();
    let rate = run.events as f64 / elapsed.as_secs_f64();
    let p = Percentiles::from_micros(&mut latencies).context("no answers")?;
    println!(
        "{} events in {:.2} s: {:.0} events/s; latency p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms; {} not 200",
        run.events,
        elapsed.as_secs_f64(),
        rate,
        p.p50.as_secs_f64() * 1e3,
        p.p99.as_secs_f64() * 1e3,
        p.max.as_secs_f64() * 1e3,
        failed.len()
    );
    if let Some((status, body)) = failed.first() {
        println!("first failure: {status} {}", String::from_utf8_lossy(body));
    }
    println!(
        "RESULT events={} seconds={:.3} rate={:.0} p50_ms={:.3} p99_ms={:.3} failed={}",
        run.events,
        elapsed.as_secs_f64(),
        rate,
        p.p50.as_secs_f64() * 1e3,
        p.p99.as_secs_f64() * 1e3,
        failed.len()
    );
    Ok(())
}
