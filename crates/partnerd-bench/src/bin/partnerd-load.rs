//! `partnerd-load`: a paced, open-loop HTTP/1.1 load generator (what wrk2 does, which
//! Debian does not ship). It sends GET requests at a fixed total rate over a fixed
//! number of keep-alive connections for a fixed time, records every request's
//! latency and prints the percentiles.
//!
//! Latency is corrected for coordinated omission the way wrk2 does it, without
//! blaming the server for the client's timer: a request whose connection was still
//! busy at its scheduled time (the server is behind) is timed from that scheduled
//! time; a request whose connection was idle is timed from when it was actually
//! written (tokio's timer fires up to a millisecond late, which is not the server's
//! doing).
//!
//! ```text
//! partnerd-load --url http://127.0.0.1:8080/r/p_abc --rate 20000 --duration 10s \
//!     --connections 64 -H 'User-Agent: Mozilla/5.0 …'
//! ```
//!
//! The last line of output is machine-readable: `RESULT key=value …`.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::Parser;
use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;
use hyper::client::conn::http1::{self, SendRequest};
use hyper::header::{HOST, HeaderName, HeaderValue};
use hyper::{Request, Uri};
use hyper_util::rt::TokioIo;
use partnerd_bench::{Percentiles, parse_duration, parse_header};
use tokio::net::TcpStream;
use tokio::time::Instant;

#[derive(Debug, Parser)]
#[command(
    version,
    about = "Paced HTTP/1.1 load at a fixed rate; prints latency percentiles (corrected for coordinated omission)."
)]
struct Args {
    /// The URL to GET (http only), such as http://127.0.0.1:8080/r/p_abc.
    #[arg(long, value_name = "URL")]
    url: String,
    /// Total requests per second over all connections.
    #[arg(long, value_name = "N")]
    rate: f64,
    /// How long to send for (10s, 500ms, 1m).
    #[arg(long, value_name = "TIME", default_value = "10s", value_parser = parse_duration)]
    duration: Duration,
    /// Keep-alive connections, each sending its share of the rate.
    #[arg(long, value_name = "N", default_value_t = 64)]
    connections: usize,
    /// Runtime worker threads (1 leaves the other cores to the server).
    #[arg(long, value_name = "N", default_value_t = 1)]
    threads: usize,
    /// How long to wait for one answer before counting it as a timeout.
    #[arg(long, value_name = "TIME", default_value = "5s", value_parser = parse_duration)]
    timeout: Duration,
    /// An extra request header, `Name: value`; repeatable.
    #[arg(short = 'H', long = "header", value_name = "HEADER", value_parser = parse_header)]
    headers: Vec<(String, String)>,
}

/// The request every connection sends, made once.
#[derive(Debug, Clone)]
struct Target {
    addr: SocketAddr,
    path: Uri,
    headers: Vec<(HeaderName, HeaderValue)>,
}

impl Target {
    fn request(&self) -> Request<Empty<Bytes>> {
        let mut request = Request::new(Empty::new());
        *request.uri_mut() = self.path.clone();
        let headers = request.headers_mut();
        for (name, value) in &self.headers {
            headers.append(name.clone(), value.clone());
        }
        request
    }
}

/// What one connection saw.
#[derive(Debug, Default)]
struct Tally {
    /// Latency of every answered request, in microseconds.
    latencies: Vec<u32>,
    /// Answers by status code.
    statuses: Vec<(u16, u64)>,
    /// Requests that failed: connection refused or reset, a broken answer.
    errors: u64,
    /// Requests that got no answer within the timeout.
    timeouts: u64,
    /// Requests that started late because the previous answer on the connection
    /// came after their scheduled time.
    late: u64,
}

impl Tally {
    fn count_status(&mut self, status: u16) {
        match self.statuses.iter_mut().find(|(s, _)| *s == status) {
            Some((_, n)) => *n += 1,
            None => self.statuses.push((status, 1)),
        }
    }

    fn merge(&mut self, other: Tally) {
        self.latencies.extend(other.latencies);
        for (status, n) in other.statuses {
            match self.statuses.iter_mut().find(|(s, _)| *s == status) {
                Some((_, m)) => *m += n,
                None => self.statuses.push((status, n)),
            }
        }
        self.errors += other.errors;
        self.timeouts += other.timeouts;
        self.late += other.late;
    }
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if !(args.rate.is_finite() && args.rate > 0.0) {
        bail!("--rate must be a positive number of requests per second");
    }
    if args.connections == 0 {
        bail!("--connections must be at least 1");
    }
    let runtime = if args.threads <= 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(args.threads)
            .enable_all()
            .build()
    }
    .context("starting the runtime")?;
    runtime.block_on(run(args))
}

async fn run(args: Args) -> anyhow::Result<()> {
    let target = target(&args).await?;
    // Check once that the target answers at all, so a wrong port fails loudly
    // instead of as a run of errors.
    connect(target.addr)
        .await
        .with_context(|| format!("cannot connect to {}", target.addr))?;

    let connections = args.connections;
    // Each connection sends every `period`; connection k starts k/rate after the
    // first, so that the requests are spread evenly over time.
    let period = Duration::from_secs_f64(connections as f64 / args.rate);
    let start = Instant::now() + Duration::from_millis(20);
    let end = start + args.duration;
    let mut tasks = Vec::with_capacity(connections);
    for k in 0..connections {
        let first = start + Duration::from_secs_f64(k as f64 / args.rate);
        tasks.push(tokio::spawn(connection(
            target.clone(),
            first,
            period,
            end,
            args.timeout,
        )));
    }
    let mut tally = Tally::default();
    for task in tasks {
        tally.merge(task.await.context("a connection task failed")?);
    }
    let elapsed = (Instant::now() - start).as_secs_f64();
    report(&args, &mut tally, elapsed);
    Ok(())
}

async fn target(args: &Args) -> anyhow::Result<Target> {
    let uri: Uri = args.url.parse().context("--url is not a URL")?;
    if uri.scheme_str() != Some("http") {
        bail!("--url must be an http:// URL");
    }
    let authority = uri.authority().context("--url has no host")?.clone();
    let host_port = format!(
        "{}:{}",
        authority.host(),
        authority.port_u16().unwrap_or(80)
    );
    let addr = tokio::net::lookup_host(&host_port)
        .await
        .with_context(|| format!("cannot resolve {host_port}"))?
        .next()
        .with_context(|| format!("{host_port} resolves to no address"))?;
    let path: Uri = uri
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .parse()
        .context("--url has a bad path")?;
    let mut headers = vec![(
        HOST,
        HeaderValue::from_str(authority.as_str()).context("--url has a bad host")?,
    )];
    for (name, value) in &args.headers {
        let name: HeaderName = name
            .parse()
            .with_context(|| format!("bad header name {name:?}"))?;
        let value =
            HeaderValue::from_str(value).with_context(|| format!("bad value for {name}"))?;
        headers.retain(|(existing, _)| *existing != name || name != HOST);
        headers.push((name, value));
    }
    Ok(Target {
        addr,
        path,
        headers,
    })
}

async fn connect(addr: SocketAddr) -> anyhow::Result<SendRequest<Empty<Bytes>>> {
    let stream = TcpStream::connect(addr).await?;
    stream.set_nodelay(true)?;
    let (sender, connection) = http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok(sender)
}

/// One keep-alive connection sending a request every `period` from `first` until
/// `end`; reconnects after an error.
async fn connection(
    target: Target,
    first: Instant,
    period: Duration,
    end: Instant,
    timeout: Duration,
) -> Tally {
    let expected = ((end - first).as_secs_f64() / period.as_secs_f64()).ceil() as usize;
    let mut tally = Tally {
        latencies: Vec::with_capacity(expected + 1),
        ..Tally::default()
    };
    let mut sender: Option<SendRequest<Empty<Bytes>>> = None;
    let mut scheduled = first;
    while scheduled < end {
        // Timed from when it was due if the connection was still busy then (the
        // server is behind), else from when it is actually written.
        let timed_from = if Instant::now() < scheduled {
            tokio::time::sleep_until(scheduled).await;
            Instant::now()
        } else {
            if scheduled != first {
                tally.late += 1;
            }
            scheduled
        };
        scheduled += period;

        let ready = match sender.as_mut() {
            Some(s) => s.ready().await.is_ok(),
            None => false,
        };
        if !ready {
            sender = match connect(target.addr).await {
                Ok(s) => Some(s),
                Err(_) => {
                    tally.errors += 1;
                    // Do not spin on a refused connection: wait for the next slot.
                    continue;
                }
            };
        }
        let Some(s) = sender.as_mut() else { continue };
        let exchange = async {
            let response = s.send_request(target.request()).await?;
            let status = response.status().as_u16();
            response.into_body().collect().await?;
            Ok::<u16, hyper::Error>(status)
        };
        match tokio::time::timeout(timeout, exchange).await {
            Ok(Ok(status)) => {
                let micros = (Instant::now() - timed_from).as_micros();
                tally
                    .latencies
                    .push(u32::try_from(micros).unwrap_or(u32::MAX));
                tally.count_status(status);
            }
            Ok(Err(_)) => {
                tally.errors += 1;
                sender = None;
            }
            Err(_) => {
                tally.timeouts += 1;
                sender = None;
            }
        }
    }
    tally
}

fn report(args: &Args, tally: &mut Tally, elapsed: f64) {
    tally.statuses.sort_unstable();
    let answered = tally.latencies.len() as u64;
    let redirects: u64 = tally
        .statuses
        .iter()
        .filter(|(s, _)| (300..400).contains(s))
        .map(|(_, n)| n)
        .sum();
    let ok_3xx_2xx: u64 = tally
        .statuses
        .iter()
        .filter(|(s, _)| (200..400).contains(s))
        .map(|(_, n)| n)
        .sum();
    let achieved = answered as f64 / elapsed;
    let statuses: Vec<String> = tally
        .statuses
        .iter()
        .map(|(s, n)| format!("{s}:{n}"))
        .collect();
    let statuses = if statuses.is_empty() {
        "-".to_owned()
    } else {
        statuses.join(",")
    };
    println!(
        "partnerd-load: {} at {:.0} req/s over {} connections for {:.1} s",
        args.url,
        args.rate,
        args.connections,
        args.duration.as_secs_f64()
    );
    println!(
        "  answered {answered} ({achieved:.0} req/s), statuses {statuses}, errors {}, timeouts {}, started late {}",
        tally.errors, tally.timeouts, tally.late
    );
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let percentiles = Percentiles::from_micros(&mut tally.latencies);
    match percentiles {
        Some(p) => println!(
            "  latency p50 {:.3} ms, p90 {:.3} ms, p95 {:.3} ms, p99 {:.3} ms, p99.9 {:.3} ms, max {:.3} ms",
            ms(p.p50),
            ms(p.p90),
            ms(p.p95),
            ms(p.p99),
            ms(p.p999),
            ms(p.max)
        ),
        None => println!("  no answers, no latency"),
    }
    let figure = |f: fn(&Percentiles) -> Duration| {
        percentiles.map_or("nan".to_owned(), |p| format!("{:.3}", ms(f(&p))))
    };
    println!(
        "RESULT target_rate={:.0} achieved_rate={achieved:.0} answered={answered} ok={ok_3xx_2xx} redirects={redirects} errors={} timeouts={} late={} statuses={statuses} p50_ms={} p90_ms={} p95_ms={} p99_ms={} p999_ms={} max_ms={}",
        args.rate,
        tally.errors,
        tally.timeouts,
        tally.late,
        figure(|p| p.p50),
        figure(|p| p.p90),
        figure(|p| p.p95),
        figure(|p| p.p99),
        figure(|p| p.p999),
        figure(|p| p.max),
    );
}
