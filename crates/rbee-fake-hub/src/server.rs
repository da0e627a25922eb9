//! The two listeners, their accept loops and the [`FakeHub`] handle.

use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::{JoinHandle, JoinSet};
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;
use url::Url;

use crate::config::FakeHubConfig;
use crate::conn::{ConnInfo, ConnShared, MeteredIo};
use crate::counters::{CountersSnapshot, PathCounters, RequestRecord};
use crate::fault::{Fault, FaultError, FaultState, Host};
use crate::state::HubState;

/// A running fake hub: two loopback listeners (hub and CDN) serving one folder.
///
/// Cheap to query from tests; dropping it stops both listeners and cuts open connections
/// (use [`shutdown`](Self::shutdown) to let responses in flight finish first).
#[derive(Debug)]
pub struct FakeHub {
    state: Arc<HubState>,
    stop: CancellationToken,
    tasks: Vec<JoinHandle<()>>,
}

impl FakeHub {
    /// Binds the hub and CDN listeners and starts serving `config.root`.
    ///
    /// Errors when a listener cannot be bound or a configured fault is invalid.
    pub async fn start(config: FakeHubConfig) -> io::Result<FakeHub> {
        let hub_listener = TcpListener::bind(config.hub_addr).await?;
        let hub_addr = hub_listener.local_addr()?;
        let (cdn_listener, cdn_host) = bind_cdn(config.cdn_addr, hub_addr).await?;
        let cdn_addr = cdn_listener.local_addr()?;
        let hub_url = base_url(&url_host(hub_addr.ip()), hub_addr.port())?;
        let cdn_url = base_url(&cdn_host, cdn_addr.port())?;
        let state = Arc::new(HubState::new(config, hub_url, cdn_url)?);

        let stop = CancellationToken::new();
        let grace = state.config.shutdown_grace;
        let tasks = vec![
            tokio::spawn(accept_loop(
                hub_listener,
                crate::app::hub_router(state.clone()),
                Host::Hub,
                stop.clone(),
                grace,
            )),
            tokio::spawn(accept_loop(
                cdn_listener,
                crate::app::cdn_router(state.clone()),
                Host::Cdn,
                stop.clone(),
                grace,
            )),
        ];
        tracing::info!(hub = %state.hub_url, cdn = %state.cdn_url, root = %state.config.root.display(), "fake hub listening");
        Ok(FakeHub { state, stop, tasks })
    }

    /// The hub's base URL, e.g. `http://127.0.0.1:41234/` (APIs, resolve paths, plain files).
    pub fn url(&self) -> &Url {
        &self.state.hub_url
    }

    /// The CDN's base URL, e.g. `http://127.0.0.2:41235/`: another host, where redirects go.
    pub fn cdn_url(&self) -> &Url {
        &self.state.cdn_url
    }

    /// The folder served.
    pub fn root(&self) -> &Path {
        &self.state.config.root
    }

    /// The folder the Xet-stored files' xorbs are kept in (a benchmark reads them into the
    /// page cache before timing, as a real CAS serves from its own machines).
    pub fn xorb_dir(&self) -> &Path {
        self.state.xet.dir()
    }

    /// `GET` this for the file `path` (relative to the root) straight from the hub.
    pub fn file_url(&self, path: &str) -> Url {
        crate::url_path::join_encoded(&self.state.hub_url, "files", path)
    }

    /// The file `path` on the CDN (unsigned: served without expiry).
    pub fn cdn_file_url(&self, path: &str) -> Url {
        crate::url_path::join_encoded(&self.state.cdn_url, "files", path)
    }

    /// The hub URL that answers 302 to a signed CDN URL of the file `path`.
    pub fn redirect_url(&self, path: &str) -> Url {
        crate::url_path::join_encoded(&self.state.hub_url, "redirect/files", path)
    }

    /// The HuggingFace resolve URL of `path` in `repo_id` (`org/repo`) at `revision` (a branch,
    /// tag or commit; percent-encoded whole, so `refs/pr/1` works).
    pub fn hf_resolve_url(&self, repo_id: &str, revision: &str, path: &str) -> Url {
        crate::hf::resolve_url(&self.state.hub_url, repo_id, revision, path)
    }

    /// Replaces every fault. Panics on an invalid fault (see [`try_set_faults`](Self::try_set_faults)).
    pub fn set_faults(&self, faults: Vec<Fault>) {
        if let Err(e) = self.try_set_faults(faults) {
            panic!("fake hub: {e}");
        }
    }

    /// Replaces every fault, or none if one is invalid.
    pub fn try_set_faults(&self, faults: Vec<Fault>) -> Result<(), FaultError> {
        self.state.faults.set(faults)
    }

    /// Adds one fault after the others. Panics on an invalid fault.
    pub fn add_fault(&self, fault: Fault) {
        if let Err(e) = self.state.faults.add(fault) {
            panic!("fake hub: {e}");
        }
    }

    /// Removes every fault.
    pub fn clear_faults(&self) {
        self.set_faults(Vec::new());
    }

    /// The installed faults with how often each took effect.
    pub fn faults(&self) -> Vec<FaultState> {
        self.state.faults.list()
    }

    /// Caps every response body (including those in flight) at `bytes_per_sec`; `None`
    /// removes the cap.
    pub fn set_rate_limit(&self, bytes_per_sec: Option<u64>) {
        self.state.set_rate_limit(bytes_per_sec);
    }

    /// Every path's counters.
    pub fn counters(&self) -> CountersSnapshot {
        self.state.counters.snapshot()
    }

    /// One path's counters (`/files/big.bin`; the leading `/` is optional).
    pub fn counters_for(&self, path: &str) -> PathCounters {
        self.state.counters.snapshot().path(path)
    }

    /// The Xet traffic so far: tokens, reconstructions, bytes per xorb, and the LFS bridge
    /// (see [`crate::xet`]).
    pub fn xet_counters(&self) -> crate::xet::XetCounters {
        crate::xet::XetCounters::from_snapshot(&self.state.counters.snapshot())
    }

    /// The most recent requests (up to 10 000), oldest first.
    pub fn requests(&self) -> Vec<RequestRecord> {
        self.state.counters.requests()
    }

    /// Forgets every count and the request log.
    pub fn reset_counters(&self) {
        self.state.counters.reset();
    }

    /// Stops accepting, lets responses in flight finish for up to the configured grace
    /// period, then cuts what is left.
    pub async fn shutdown(mut self) {
        self.stop.cancel();
        for task in self.tasks.drain(..) {
            let _ = task.await;
        }
    }
}

impl Drop for FakeHub {
    fn drop(&mut self) {
        self.stop.cancel();
        for task in &self.tasks {
            // Aborting an accept loop drops its JoinSet, which aborts its connections.
            task.abort();
        }
    }
}

fn url_host(ip: IpAddr) -> String {
    if ip.is_unspecified() {
        "127.0.0.1".to_owned()
    } else if let IpAddr::V6(v6) = ip {
        format!("[{v6}]")
    } else {
        ip.to_string()
    }
}

fn base_url(host: &str, port: u16) -> io::Result<Url> {
    Url::parse(&format!("http://{host}:{port}/"))
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))
}

/// Binds the CDN. When the default `127.0.0.2` is not available (some systems only route
/// 127.0.0.1), it listens on 127.0.0.1 instead and is named `localhost`, which is still a
/// different host in URLs from the hub's `127.0.0.1`.
async fn bind_cdn(addr: SocketAddr, hub: SocketAddr) -> io::Result<(TcpListener, String)> {
    match TcpListener::bind(addr).await {
        Ok(l) => {
            let ip = l.local_addr()?.ip();
            let host = if ip == hub.ip() || ip.is_unspecified() {
                "localhost".to_owned()
            } else {
                url_host(ip)
            };
            Ok((l, host))
        }
        Err(e) if addr.ip() == IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2)) => {
            tracing::warn!(error = %e, "cannot bind 127.0.0.2; the CDN listens on 127.0.0.1 and is named localhost");
            let l =
                TcpListener::bind(SocketAddr::new(Ipv4Addr::LOCALHOST.into(), addr.port())).await?;
            Ok((l, "localhost".to_owned()))
        }
        Err(e) => Err(e),
    }
}

async fn accept_loop(
    listener: TcpListener,
    router: Router,
    host: Host,
    stop: CancellationToken,
    grace: Duration,
) {
    let mut conns = JoinSet::new();
    loop {
        tokio::select! {
            () = stop.cancelled() => break,
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
            accepted = listener.accept() => match accepted {
                Ok((stream, _peer)) => {
                    conns.spawn(serve_connection(stream, router.clone(), host, stop.clone()));
                }
                Err(e) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            },
        }
    }
    drop(listener);
    let drained =
        tokio::time::timeout(grace, async { while conns.join_next().await.is_some() {} }).await;
    if drained.is_err() {
        tracing::debug!(
            open = conns.len(),
            "cutting connections still open after the grace period"
        );
    }
    conns.abort_all();
}

async fn serve_connection(stream: TcpStream, router: Router, host: Host, stop: CancellationToken) {
    // Small reads and writes (headers, short JSON) should not wait for Nagle.
    let _ = stream.set_nodelay(true);
    /// Connections accepted by every hub of this process.
    static ACCEPTED: AtomicU64 = AtomicU64::new(0);
    let shared = Arc::new(ConnShared {
        host,
        id: ACCEPTED.fetch_add(1, Ordering::Relaxed),
        written: AtomicU64::new(0),
        reset: AtomicBool::new(false),
        slow: AtomicU64::new(0),
    });
    let io = TokioIo::new(MeteredIo {
        inner: stream,
        conn: shared.clone(),
    });
    let service = hyper::service::service_fn(move |mut req: hyper::Request<Incoming>| {
        req.extensions_mut().insert(ConnInfo(shared.clone()));
        router.clone().oneshot(req.map(Body::new))
    });
    let conn = hyper::server::conn::http1::Builder::new()
        .keep_alive(true)
        .serve_connection(io, service);
    tokio::pin!(conn);
    let result = tokio::select! {
        r = conn.as_mut() => r,
        () = stop.cancelled() => {
            conn.as_mut().graceful_shutdown();
            conn.await
        }
    };
    if let Err(e) = result {
        // Clients that go away mid-response and injected faults both end up here.
        tracing::debug!(error = %e, "connection ended with an error");
    }
}
