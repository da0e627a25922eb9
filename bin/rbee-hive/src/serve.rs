//! Running the daemon on a listener until shutdown: accepting connections within the cap,
//! serving HTTP/1.1 on each with a header timeout, and shutting down gracefully.

use std::convert::Infallible;
use std::future::Future;
use std::io::ErrorKind;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

use crate::connections::{Admission, ConnGuard, Connections};
use crate::routes::app;
use crate::state::HiveState;

/// How long connections may outlive the end of the event streams before the server stops
/// waiting for them (a client that never reads its response).
const CONNECTION_GRACE: Duration = Duration::from_secs(3);

/// How long to wait before accepting again when the process is out of file descriptors.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

/// At most one warning about refused connections per this interval.
const REFUSAL_LOG_INTERVAL: Duration = Duration::from_secs(10);

/// How long a refused connection is kept to deliver its `503`: writing it, closing the sending
/// side, and reading what the client sent until it closes.
const REFUSAL_LINGER: Duration = Duration::from_secs(1);

/// Refused connections lingering at once; beyond these a refused connection is answered and
/// closed at once, so a flood cannot hold descriptors past the cap.
const MAX_LINGERING_REFUSALS: usize = 64;

/// Bytes read from a refused connection before giving up on it.
const REFUSAL_DRAIN_BYTES: usize = 64 << 10;

/// Serves the API on `listener` until `shutdown` completes, then shuts down gracefully: new jobs
/// are refused, in-flight jobs are cancelled (partial files stay resumable, catalog entries
/// become `incomplete`), event streams send their final events and end, and open connections
/// are given a few seconds to finish.
///
/// At most [`HiveConfig::max_connections`] connections are held; a connection that sends no
/// complete request headers within [`HiveConfig::header_timeout`] (or sits idle that long
/// between requests) is closed.
///
/// ```no_run
/// # async fn demo(state: rbee_hive::HiveState) -> std::io::Result<()> {
/// let listener = tokio::net::TcpListener::bind("127.0.0.1:8600").await?;
/// rbee_hive::serve(listener, state, async {
///     let _ = tokio::signal::ctrl_c().await;
/// })
/// .await
/// # }
/// ```
///
/// [`HiveConfig::max_connections`]: crate::HiveConfig::max_connections
/// [`HiveConfig::header_timeout`]: crate::HiveConfig::header_timeout
pub async fn serve(
    listener: TcpListener,
    state: HiveState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let router = app(state.clone());
    let connections = Connections::new(state.config().max_connections);
    let lingering = Arc::new(tokio::sync::Semaphore::new(MAX_LINGERING_REFUSALS));
    let header_timeout = state.config().header_timeout;
    // Connections finish gracefully once this is cancelled.
    let closing = CancellationToken::new();
    // Every connection task holds a receiver; all gone means all connections are closed.
    let (alive_tx, alive_rx) = watch::channel(());

    let stopping = state.clone();
    let mut refused = 0u64;
    let mut last_warning: Option<std::time::Instant> = None;
    let mut signal = std::pin::pin!(async move {
        shutdown.await;
        tracing::info!("shutdown requested");
        stopping.shutdown().await;
    });
    loop {
        let accepted = tokio::select! {
            () = &mut signal => break,
            accepted = listener.accept() => accepted,
        };
        let stream = match accepted {
            Ok((stream, _)) => stream,
            Err(e) => {
                accept_failed(&e).await;
                continue;
            }
        };
        match connections.admit() {
            Admission::Admitted(guard) => {
                tokio::spawn(serve_connection(
                    stream,
                    guard,
                    router.clone(),
                    header_timeout,
                    closing.clone(),
                    alive_rx.clone(),
                ));
            }
            Admission::Full => {
                refuse(stream, connections.limit(), &lingering);
                refused += 1;
                // One line per interval however many arrive: a flood must not flood the log.
                if last_warning.is_none_or(|at| at.elapsed() >= REFUSAL_LOG_INTERVAL) {
                    tracing::warn!(
                        limit = connections.limit(),
                        refused,
                        "connections refused: every connection is serving a client (--max-connections)"
                    );
                    last_warning = Some(std::time::Instant::now());
                    refused = 0;
                }
            }
        }
    }
    drop(listener);
    closing.cancel();
    drop(alive_rx);
    let give_up = async {
        state.streams_end().cancelled().await;
        tokio::time::sleep(CONNECTION_GRACE).await;
    };
    tokio::select! {
        () = alive_tx.closed() => {}
        () = give_up => {
            tracing::warn!(open = connections.len(), "connections still open after shutdown; closing them");
        }
    }
    Ok(())
}

/// A failed accept: the client already left (nothing to do), or the process or system is out
/// of file descriptors (wait a moment rather than spin).
async fn accept_failed(e: &std::io::Error) {
    match e.kind() {
        ErrorKind::ConnectionAborted | ErrorKind::ConnectionReset | ErrorKind::Interrupted => {}
        _ => {
            tracing::warn!(error = %e, "accepting a connection failed");
            tokio::time::sleep(ACCEPT_BACKOFF).await;
        }
    }
}

/// Answers `503` on a connection that cannot be held. Closing a socket whose request was not
/// read makes the kernel send a reset, which can destroy the answer before the client reads
/// it; so the answer is written, the sending side closed, and what the client sent is read
/// (briefly, boundedly) until it closes. Past [`MAX_LINGERING_REFUSALS`] the answer is only
/// written and the connection closed.
fn refuse(stream: TcpStream, limit: usize, lingering: &Arc<tokio::sync::Semaphore>) {
    let body = serde_json::json!({"error": {
        "code": "too_many_connections",
        "message": format!("rbee-hive is serving its maximum of {limit} connections, all busy; retry shortly, or start it with a larger --max-connections"),
    }})
    .to_string();
    let response = format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\ncontent-length: {}\r\nretry-after: 1\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    let Ok(permit) = lingering.clone().try_acquire_owned() else {
        if let Err(e) = stream.try_write(response.as_bytes()) {
            tracing::debug!(error = %e, "could not tell a refused connection why");
        }
        return;
    };
    tokio::spawn(async move {
        let _permit = permit;
        let mut stream = stream;
        let delivered = tokio::time::timeout(REFUSAL_LINGER, async {
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            stream.write_all(response.as_bytes()).await?;
            stream.shutdown().await?;
            let mut buf = [0u8; 4096];
            let mut read = 0;
            while read < REFUSAL_DRAIN_BYTES {
                match stream.read(&mut buf).await? {
                    0 => break,
                    n => read += n,
                }
            }
            Ok::<(), std::io::Error>(())
        })
        .await;
        if let Ok(Err(e)) = delivered {
            tracing::debug!(error = %e, "could not tell a refused connection why");
        }
    });
}

async fn serve_connection(
    stream: TcpStream,
    guard: ConnGuard,
    router: Router,
    header_timeout: Duration,
    closing: CancellationToken,
    _alive: watch::Receiver<()>,
) {
    // Event streams are many small writes; do not hold them back waiting for acknowledgements.
    if let Err(e) = stream.set_nodelay(true) {
        tracing::debug!(error = %e, "could not set TCP_NODELAY");
    }
    let guard = Arc::new(guard);
    let service = {
        let guard = guard.clone();
        hyper::service::service_fn(move |req: hyper::Request<Incoming>| {
            let slot = guard.request();
            let mut req = req.map(Body::new);
            slot.attach(&mut req);
            let router = router.clone();
            async move {
                let response = router.oneshot(req).await.unwrap_or_else(|e| match e {});
                Ok::<_, Infallible>(response.map(|body| slot.hold_until_sent(body)))
            }
        })
    };
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(header_timeout);
    let connection = builder.serve_connection(TokioIo::new(stream), service);
    let mut connection = std::pin::pin!(connection);
    let mut closing_started = false;
    loop {
        tokio::select! {
            result = connection.as_mut() => {
                if let Err(e) = result {
                    tracing::debug!(error = %e, "connection ended with an error");
                }
                break;
            }
            () = guard.evicted() => {
                tracing::debug!("closing a connection to make room for a new one");
                break;
            }
            () = closing.cancelled(), if !closing_started => {
                connection.as_mut().graceful_shutdown();
                closing_started = true;
            }
        }
    }
}
