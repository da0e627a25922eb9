//! Running the daemon on a listener until shutdown.

use std::future::Future;
use std::time::Duration;

use tokio::net::TcpListener;

use crate::routes::app;
use crate::state::HiveState;

/// How long connections may outlive the end of the event streams before the server stops
/// waiting for them (a client that never reads its response).
const CONNECTION_GRACE: Duration = Duration::from_secs(3);

/// Serves the API on `listener` until `shutdown` completes, then shuts down gracefully: new jobs
/// are refused, in-flight jobs are cancelled (partial files stay resumable, catalog entries
/// become `incomplete`), event streams send their final events and end, and open connections
/// are given a few seconds to finish.
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
pub async fn serve(
    listener: TcpListener,
    state: HiveState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let stopping = state.clone();
    let signal = async move {
        shutdown.await;
        tracing::info!("shutdown requested");
        stopping.shutdown().await;
    };
    let server = axum::serve(listener, app(state.clone())).with_graceful_shutdown(signal);
    let give_up = async {
        state.streams_end().cancelled().await;
        tokio::time::sleep(CONNECTION_GRACE).await;
    };
    tokio::select! {
        result = server => result,
        () = give_up => {
            tracing::warn!("connections still open after shutdown; closing them");
            Ok(())
        }
    }
}
