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
//! It writes one pre-built request and reads the answer off the socket itself
//! (`httparse` for the head, `Content-Length` for the body), where a hyper client
//! built and parsed both per request: on a machine of two CPUs shared with the
//! server, the generator's own CPU time is taken from the server it measures. With
//! the hyper client it spent ~15 µs of CPU per request, 6 µs of it in user space;
//! now ~11 µs, 2 µs in user space (the rest is the kernel's loopback TCP).
//!
//! ```text
//! partnerd-load --url http://127.0.0.1:8080/r/p_abc --rate 20000 --duration 10s \
//!     --connections 64 -H 'User-Agent: Mozilla/5.0 …'
//! ```
//!
//! The last line of output is machine-readable: `RESULT key=value …`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::Parser;
use hyper::Uri;
use hyper::header::{HeaderName, HeaderValue};
use partnerd_bench::{Percentiles, parse_duration, parse_header};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
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
    /// `GET {path} HTTP/1.1`, the headers and the empty line, as sent.
    request: Arc<[u8]>,
}

/// One keep-alive connection and what it has read past the last answer.
struct Connection {
    stream: TcpStream,
    unread: Vec<u8>,
}

impl Connection {
    async fn open(addr: SocketAddr) -> std::io::Result<Self> {
        let stream = TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        Ok(Self {
            stream,
            unread: Vec::with_capacity(4096),
        })
    }

    /// Sends the request and reads its whole answer: its status, and whether the
    /// connection may carry another request.
    async fn exchange(&mut self, request: &[u8]) -> std::io::Result<(u16, bool)> {
        self.stream.write_all(request).await?;
        loop {
            if let Some(answer) = take_answer(&mut self.unread)? {
                return Ok(answer);
            }
            if self.stream.read_buf(&mut self.unread).await? == 0 {
                return Err(broken("the server closed the connection mid-answer"));
            }
        }
    }
}

/// The first whole answer in `unread`, removed from it (its status, and whether
/// the connection stays open); None while it is not all there yet.
fn take_answer(unread: &mut Vec<u8>) -> std::io::Result<Option<(u16, bool)>> {
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut head = httparse::Response::new(&mut headers);
    let head_len = match head.parse(unread) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(e) => return Err(broken(&format!("a malformed answer: {e}"))),
    };
    let status = head.code.unwrap_or(0);
    let mut keep_alive = head.version == Some(1);
    let mut body_len = None;
    for header in head.headers.iter() {
        if header.name.eq_ignore_ascii_case("content-length") {
            let value = std::str::from_utf8(header.value).ok();
            body_len = Some(
                value
                    .and_then(|v| v.trim().parse::<usize>().ok())
                    .ok_or_else(|| broken("a Content-Length that is not a number"))?,
            );
        } else if header.name.eq_ignore_ascii_case("transfer-encoding") {
            return Err(broken(
                "a chunked answer, which partnerd-load does not read",
            ));
        } else if header.name.eq_ignore_ascii_case("connection") {
            keep_alive &= !header.value.eq_ignore_ascii_case(b"close");
        }
    }
    let body_len = match (body_len, status) {
        (Some(n), _) => n,
        (None, 204 | 304) => 0,
        (None, _) => return Err(broken("an answer without a Content-Length")),
    };
    let whole = head_len + body_len;
    if unread.len() < whole {
        return Ok(None);
    }
    unread.drain(..whole);
    Ok(Some((status, keep_alive)))
}

fn broken(what: &str) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, what.to_owned())
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
    Connection::open(target.addr)
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
    // Validated as hyper would, then written out once.
    let mut request = format!("GET {path} HTTP/1.1\r\n").into_bytes();
    let mut host = authority.as_str().to_owned();
    let mut headers = Vec::new();
    for (name, value) in &args.headers {
        let name: HeaderName = name
            .parse()
            .with_context(|| format!("bad header name {name:?}"))?;
        let value =
            HeaderValue::from_str(value).with_context(|| format!("bad value for {name}"))?;
        if name == hyper::header::HOST {
            host = value.to_str().context("bad value for host")?.to_owned();
        } else {
            headers.push((name, value));
        }
    }
    request.extend_from_slice(format!("host: {host}\r\n").as_bytes());
    for (name, value) in &headers {
        request.extend_from_slice(name.as_str().as_bytes());
        request.extend_from_slice(b": ");
        request.extend_from_slice(value.as_bytes());
        request.extend_from_slice(b"\r\n");
    }
    request.extend_from_slice(b"\r\n");
    Ok(Target {
        addr,
        request: request.into(),
    })
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
    let mut open: Option<Connection> = None;
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

        let connection = match open.as_mut() {
            Some(c) => c,
            None => match Connection::open(target.addr).await {
                Ok(c) => open.insert(c),
                Err(_) => {
                    tally.errors += 1;
                    // Do not spin on a refused connection: wait for the next slot.
                    continue;
                }
            },
        };
        match tokio::time::timeout(timeout, connection.exchange(&target.request)).await {
            Ok(Ok((status, keep_alive))) => {
                let micros = (Instant::now() - timed_from).as_micros();
                tally
                    .latencies
                    .push(u32::try_from(micros).unwrap_or(u32::MAX));
                tally.count_status(status);
                if !keep_alive {
                    open = None;
                }
            }
            Ok(Err(_)) => {
                tally.errors += 1;
                open = None;
            }
            Err(_) => {
                tally.timeouts += 1;
                open = None;
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

#[cfg(test)]
mod tests {
    use super::take_answer;

    const REDIRECT: &[u8] = b"HTTP/1.1 302 Found\r\nlocation: /x\r\nContent-Length: 0\r\n\r\n";

    #[test]
    fn an_answer_is_taken_only_once_it_is_whole() {
        let whole = b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nhello".to_vec();
        for cut in 0..whole.len() {
            let mut unread = whole[..cut].to_vec();
            assert_eq!(take_answer(&mut unread).unwrap(), None, "cut at {cut}");
            assert_eq!(
                unread.len(),
                cut,
                "nothing is consumed before the answer is whole"
            );
        }
        let mut unread = whole;
        assert_eq!(take_answer(&mut unread).unwrap(), Some((200, true)));
        assert!(unread.is_empty());
    }

    #[test]
    fn what_follows_an_answer_stays_for_the_next() {
        let mut unread = [REDIRECT, REDIRECT].concat();
        assert_eq!(take_answer(&mut unread).unwrap(), Some((302, true)));
        assert_eq!(unread, REDIRECT);
        assert_eq!(take_answer(&mut unread).unwrap(), Some((302, true)));
        assert!(unread.is_empty());
    }

    #[test]
    fn connection_close_and_http_1_0_end_the_connection() {
        let mut close =
            b"HTTP/1.1 302 Found\r\nConnection: close\r\ncontent-length: 0\r\n\r\n".to_vec();
        assert_eq!(take_answer(&mut close).unwrap(), Some((302, false)));
        let mut old = b"HTTP/1.0 302 Found\r\ncontent-length: 0\r\n\r\n".to_vec();
        assert_eq!(take_answer(&mut old).unwrap(), Some((302, false)));
    }

    #[test]
    fn answers_it_cannot_delimit_are_errors() {
        for answer in [
            &b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"[..],
            b"HTTP/1.1 200 OK\r\n\r\nhello",
            b"HTTP/1.1 200 OK\r\ncontent-length: five\r\n\r\n",
            b"not http at all\r\n\r\n",
        ] {
            let mut unread = answer.to_vec();
            assert!(
                take_answer(&mut unread).is_err(),
                "{}",
                String::from_utf8_lossy(answer)
            );
        }
        let mut no_content = b"HTTP/1.1 204 No Content\r\n\r\n".to_vec();
        assert_eq!(take_answer(&mut no_content).unwrap(), Some((204, true)));
    }
}
