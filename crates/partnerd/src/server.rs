//! `partnerd serve`: the web server and the job runner in one process, stopped
//! gracefully on Ctrl-C or SIGTERM.

use std::net::SocketAddr;
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

    let mut server_stop = stop_rx;
    let router = partnerd_web::router(app);
    let server = axum::serve(
        listener,
        router.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(async move {
        let _ = server_stop.changed().await;
    });
    let mut server = tokio::spawn(async move { server.await });
    tracing::info!("listening on http://{addr}");

    let outcome = tokio::select! {
        finished = &mut server => Some(finished),
        () = stop_signal() => None,
    };
    let _ = stop_tx.send(true);
    let result = match outcome {
        Some(finished) => finished
            .context("the server task failed")?
            .context("the server stopped"),
        None => {
            tracing::info!("stopping: finishing the requests in flight");
            match tokio::time::timeout(GRACE, &mut server).await {
                Ok(finished) => finished
                    .context("the server task failed")?
                    .context("the server stopped"),
                Err(_) => {
                    tracing::warn!(
                        "requests still open after {} s; stopping anyway",
                        GRACE.as_secs()
                    );
                    server.abort();
                    Ok(())
                }
            }
        }
    };
    if tokio::time::timeout(GRACE, worker).await.is_err() {
        tracing::warn!("the job runner did not stop in time");
    }
    tracing::info!("stopped");
    result
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
