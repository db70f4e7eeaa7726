//! `partnerd serve`: the web server and the job runner in one process, stopped
//! gracefully on Ctrl-C or SIGTERM.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use partnerd_app::{App, Config, SystemClock};
use tokio::net::TcpListener;

use crate::ops;

/// How long in-flight requests may take to finish once a stop is asked for.
const GRACE: Duration = Duration::from_secs(30);
/// How often the job runner looks for due jobs.
const JOB_POLL: Duration = Duration::from_secs(2);

pub async fn serve(mut config: Config, listen: Option<String>) -> anyhow::Result<()> {
    if let Some(listen) = listen {
        config.listen = listen;
    }
    let listener = bind(&mut config).await?;
    let store = ops::open_store(&config).await?;
    let app = start_app(store, config).await?;
    run(app, listener).await
}

/// Binds the configured address, then records the real one (port 0 picks a free port),
/// so links built from it are right.
pub async fn bind(config: &mut Config) -> anyhow::Result<TcpListener> {
    let listener = TcpListener::bind(&config.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.listen))?;
    config.listen = listener.local_addr()?.to_string();
    Ok(listener)
}

/// The address to show people: a wildcard bind is reached on the loopback address.
pub fn display_address(listener: &TcpListener) -> String {
    match listener.local_addr() {
        Ok(addr) if addr.ip().is_unspecified() => {
            let ip = if addr.is_ipv4() { "127.0.0.1" } else { "[::1]" };
            format!("http://{ip}:{}", addr.port())
        }
        Ok(addr) => format!("http://{addr}"),
        Err(_) => "http://?".into(),
    }
}

/// Builds the application over an open, migrated store and prepares what serving needs.
pub async fn start_app(
    store: Arc<dyn partnerd_store::Store>,
    config: Config,
) -> anyhow::Result<App> {
    let app = App::new(store, Arc::new(SystemClock), config)
        .await
        .context("starting the application")?;
    app.ensure_defaults()
        .await
        .context("seeding the defaults")?;
    partnerd_app::jobs::register_schedules(&app)
        .await
        .context("registering the periodic jobs")?;
    Ok(app)
}

/// Serves `app` on `listener` with the job runner beside it until a stop signal.
pub async fn run(app: App, listener: TcpListener) -> anyhow::Result<()> {
    let addr = listener
        .local_addr()
        .context("reading the listening address")?;
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let worker = tokio::spawn(partnerd_app::jobs::run_worker(
        app.clone(),
        worker_name(),
        JOB_POLL,
        stop_rx.clone(),
    ));

    let service = partnerd_web::Service::new(app);
    let mut server = tokio::spawn(serve_http(listener, service, stop_rx));
    tracing::info!("listening on http://{addr}");

    let finished = tokio::select! {
        finished = &mut server => finished,
        () = stop_signal() => {
            let _ = stop_tx.send(true);
            tracing::info!("stopping: finishing the requests in flight");
            (&mut server).await
        }
    };
    // A server that ended by itself stops the job runner too.
    let _ = stop_tx.send(true);
    let result = finished
        .context("the server task failed")?
        .context("the server stopped");
    if tokio::time::timeout(GRACE, worker).await.is_err() {
        tracing::warn!("the job runner did not stop in time");
    }
    tracing::info!("stopped");
    result
}

/// Serves `service` over HTTP/1.1 with keep-alive until `stop` turns true, then
/// closes idle connections at once and lets the others finish the request they
/// are on, for up to [`GRACE`].
///
/// An accept loop of its own rather than `axum::serve`, which sniffs the first
/// 24 bytes of every connection for HTTP/2's preface (a read more per connection,
/// and a buffer in front of every later read) and leaves Nagle's algorithm on.
/// partnerd speaks HTTP/1.1 only: HTTPS, and with it HTTP/2, ends at the proxy in
/// front of it.
async fn serve_http(
    listener: TcpListener,
    service: partnerd_web::Service,
    mut stop: tokio::sync::watch::Receiver<bool>,
) -> anyhow::Result<()> {
    use hyper::body::Incoming;
    use hyper_util::rt::TokioIo;

    let mut http = hyper::server::conn::http1::Builder::new();
    http.keep_alive(true);
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                // The client gave up before the accept: nothing to serve.
                Err(err) if is_connection_error(&err) => continue,
                Err(err) => {
                    // Out of file descriptors and the like: wait for some to close.
                    tracing::error!(%err, "accepting a connection failed; retrying in 1 s");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
            },
            // The only change is to `true` (a dropped sender stops too).
            _ = stop.changed() => break,
        };
        // Responses go out whole in one write; nothing is gained by holding them.
        let _ = stream.set_nodelay(true);
        let service = service.clone();
        let connection = hyper::service::service_fn(move |request: hyper::Request<Incoming>| {
            let answer = service.call(request, Some(peer));
            async move { Ok::<_, std::convert::Infallible>(answer.await) }
        });
        let connection = graceful.watch(http.serve_connection(TokioIo::new(stream), connection));
        tokio::spawn(async move {
            // A client that goes away mid-request is no error of ours.
            let _ = connection.await;
        });
    }
    drop(listener);
    if tokio::time::timeout(GRACE, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!(
            "requests still open after {} s; stopping anyway",
            GRACE.as_secs()
        );
    }
    Ok(())
}

/// Errors of one connection that came and went before it was accepted.
fn is_connection_error(err: &std::io::Error) -> bool {
    matches!(
        err.kind(),
        std::io::ErrorKind::ConnectionRefused
            | std::io::ErrorKind::ConnectionAborted
            | std::io::ErrorKind::ConnectionReset
    )
}

/// Ctrl-C, or SIGTERM (what service managers and `docker stop` send).
async fn stop_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = terminate => {}
    }
}

/// `host-pid`: names this process in job leases.
fn worker_name() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok().filter(|h| !h.is_empty()))
        .unwrap_or_else(|| "partnerd".into());
    format!("{host}-{}", std::process::id())
}
