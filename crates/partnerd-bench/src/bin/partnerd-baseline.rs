//! `partnerd-baseline`: the upper bound for partnerd's redirect. A bare hyper 1.x
//! server (tokio, HTTP/1.1 with keep-alive) that answers every request with the same
//! 302: a `Location` and a `Set-Cookie` of a real redirect's size, nothing else. No
//! routing, no database, no logging — as lean as a hello-world, so that partnerd's
//! figures divided by its figures say how much the real work costs.
//!
//! ```text
//! partnerd-baseline --listen 127.0.0.1:9090
//! partnerd-baseline --listen 127.0.0.1:9090 --location "$LOC" --set-cookie "$COOKIE"
//! ```

use std::convert::Infallible;

use anyhow::Context;
use clap::Parser;
use http_body_util::Empty;
use hyper::body::{Bytes, Incoming};
use hyper::header::{HeaderValue, LOCATION, SET_COOKIE};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

#[derive(Debug, Parser)]
#[command(
    version,
    about = "A bare hyper server answering every request with the same 302 (partnerd's benchmark baseline)."
)]
struct Args {
    /// Address to listen on.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:9090")]
    listen: String,
    /// The Location header to send (default: a landing URL of a real redirect's size,
    /// about 180 bytes).
    #[arg(long, value_name = "URL", default_value = partnerd_bench::DEFAULT_LOCATION)]
    location: String,
    /// The Set-Cookie header to send (default: a referral cookie of a real redirect's
    /// size, about 140 bytes).
    #[arg(long, value_name = "COOKIE", default_value = partnerd_bench::DEFAULT_SET_COOKIE)]
    set_cookie: String,
    /// Runtime worker threads (default: one per CPU, like partnerd's runtime).
    #[arg(long, value_name = "N")]
    workers: Option<usize>,
}

/// The two header values, checked and made once, over leaked static text, so that
/// every answer only copies a pointer (a static `HeaderValue` clone touches no
/// reference count).
struct Answer {
    location: HeaderValue,
    set_cookie: HeaderValue,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let answer: &'static Answer = Box::leak(Box::new(Answer {
        location: static_header("--location", args.location)?,
        set_cookie: static_header("--set-cookie", args.set_cookie)?,
    }));
    let mut runtime = tokio::runtime::Builder::new_multi_thread();
    if let Some(workers) = args.workers {
        runtime.worker_threads(workers.max(1));
    }
    runtime
        .enable_all()
        .build()
        .context("starting the runtime")?
        .block_on(serve(args.listen, answer))
}

fn static_header(name: &str, value: String) -> anyhow::Result<HeaderValue> {
    HeaderValue::from_str(&value).with_context(|| format!("{name} is not a valid header value"))?;
    Ok(HeaderValue::from_static(Box::leak(value.into_boxed_str())))
}

async fn serve(listen: String, answer: &'static Answer) -> anyhow::Result<()> {
    let listener = TcpListener::bind(&listen)
        .await
        .with_context(|| format!("cannot listen on {listen}"))?;
    println!(
        "partnerd-baseline listening on http://{}",
        listener.local_addr()?
    );
    let mut http = http1::Builder::new();
    http.keep_alive(true);
    loop {
        let (stream, _) = match listener.accept().await {
            Ok(accepted) => accepted,
            // Out of file descriptors and the like: keep serving the others.
            Err(_) => continue,
        };
        let _ = stream.set_nodelay(true);
        let http = http.clone();
        tokio::spawn(async move {
            let service = service_fn(move |_request: Request<Incoming>| async move {
                Ok::<_, Infallible>(redirect(answer))
            });
            // A client closing mid-request is no concern of a benchmark server.
            let _ = http.serve_connection(TokioIo::new(stream), service).await;
        });
    }
}

fn redirect(answer: &Answer) -> Response<Empty<Bytes>> {
    let mut response = Response::new(Empty::new());
    *response.status_mut() = StatusCode::FOUND;
    let headers = response.headers_mut();
    headers.insert(LOCATION, answer.location.clone());
    headers.insert(SET_COOKIE, answer.set_cookie.clone());
    response
}
