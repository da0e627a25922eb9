//! The daemon's connections: a cap on how many are held open, and which one gives way when a
//! new one arrives at the cap.
//!
//! A connection is *protected* while it serves a request that passed the token and host checks
//! (an event stream, say) until that response has been sent. Everything else — a connection
//! that has sent nothing yet, one idle between requests, one serving `/health`, the web page or
//! a refusal — may be closed to make room: the oldest of those goes first. So silent or
//! unauthenticated clients can hold at most the cap's worth of descriptors, briefly, and never
//! push out a client the daemon is working for.

use std::collections::BTreeMap;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use axum::body::Body;
use axum::extract::Request;
use http_body::{Frame, SizeHint};
use tokio_util::sync::CancellationToken;

/// The open connections, oldest first.
#[derive(Debug)]
pub(crate) struct Connections {
    limit: usize,
    inner: Mutex<Table>,
}

#[derive(Debug, Default)]
struct Table {
    next_id: u64,
    open: BTreeMap<u64, Arc<Conn>>,
}

/// One connection's standing.
#[derive(Debug, Default)]
pub(crate) struct Conn {
    /// Authorized requests whose responses are not finished.
    protected: AtomicUsize,
    /// Cancelled to close the connection to make room.
    evicted: CancellationToken,
}

/// Outcome of [`Connections::admit`].
#[derive(Debug)]
pub(crate) enum Admission {
    /// Serve it; dropping the guard forgets the connection.
    Admitted(ConnGuard),
    /// At the cap and every connection is protected: refuse this one.
    Full,
}

impl Connections {
    pub(crate) fn new(limit: usize) -> Arc<Self> {
        Arc::new(Self {
            limit: limit.max(1),
            inner: Mutex::new(Table::default()),
        })
    }

    /// The cap.
    pub(crate) fn limit(&self) -> usize {
        self.limit
    }

    /// Connections held now.
    pub(crate) fn len(&self) -> usize {
        self.table().open.len()
    }

    /// Registers a new connection, closing the oldest unprotected one first when at the cap.
    pub(crate) fn admit(self: &Arc<Self>) -> Admission {
        let mut table = self.table();
        if table.open.len() >= self.limit {
            let oldest = table
                .open
                .iter()
                .find(|(_, c)| c.protected.load(Ordering::Acquire) == 0)
                .map(|(id, _)| *id);
            let Some(id) = oldest else {
                return Admission::Full;
            };
            if let Some(conn) = table.open.remove(&id) {
                conn.evicted.cancel();
            }
        }
        let id = table.next_id;
        table.next_id += 1;
        let conn = Arc::new(Conn::default());
        table.open.insert(id, conn.clone());
        Admission::Admitted(ConnGuard {
            connections: self.clone(),
            id,
            conn,
        })
    }

    fn table(&self) -> std::sync::MutexGuard<'_, Table> {
        rbee_artifact::lock_unpoisoned(&self.inner)
    }
}

/// A registered connection; forgotten when dropped.
#[derive(Debug)]
pub(crate) struct ConnGuard {
    connections: Arc<Connections>,
    id: u64,
    conn: Arc<Conn>,
}

impl ConnGuard {
    /// Completes when the connection must close to make room.
    pub(crate) async fn evicted(&self) {
        self.conn.evicted.cancelled().await;
    }

    /// A request arriving on this connection, for the request's extensions.
    pub(crate) fn request(&self) -> RequestSlot {
        RequestSlot(Arc::new(Slot {
            conn: self.conn.clone(),
            authorized: AtomicBool::new(false),
        }))
    }
}

impl Drop for ConnGuard {
    fn drop(&mut self) {
        self.connections.table().open.remove(&self.id);
    }
}

/// One request's standing on its connection; the guard marks it authorized.
#[derive(Debug, Clone)]
pub(crate) struct RequestSlot(Arc<Slot>);

#[derive(Debug)]
struct Slot {
    conn: Arc<Conn>,
    authorized: AtomicBool,
}

impl RequestSlot {
    /// Protects the connection until this request's response is finished.
    pub(crate) fn authorize(&self) {
        if !self.0.authorized.swap(true, Ordering::AcqRel) {
            self.0.conn.protected.fetch_add(1, Ordering::AcqRel);
        }
    }

    /// Marks `req` as arriving through this slot, so the guard can find it.
    pub(crate) fn attach(&self, req: &mut Request) {
        req.extensions_mut().insert(self.clone());
    }

    /// Keeps the protection (if any) until `body` has been sent or dropped.
    pub(crate) fn hold_until_sent(self, body: Body) -> Body {
        Body::new(HeldBody { body, _slot: self })
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        if self.authorized.load(Ordering::Acquire) {
            self.conn.protected.fetch_sub(1, Ordering::AcqRel);
        }
    }
}

/// A response body that keeps its request's slot alive while it is being sent.
struct HeldBody {
    body: Body,
    _slot: RequestSlot,
}

impl http_body::Body for HeldBody {
    type Data = axum::body::Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn admitted(connections: &Arc<Connections>) -> ConnGuard {
        match connections.admit() {
            Admission::Admitted(guard) => guard,
            Admission::Full => panic!("refused"),
        }
    }

    #[test]
    fn the_oldest_unprotected_connection_gives_way() {
        let connections = Connections::new(3);
        let a = admitted(&connections);
        let b = admitted(&connections);
        let c = admitted(&connections);
        // `a` serves an authorized request; `b` is the oldest of the others.
        let slot = a.request();
        slot.authorize();
        let d = admitted(&connections);
        assert!(!a.conn.evicted.is_cancelled());
        assert!(b.conn.evicted.is_cancelled());
        assert!(!c.conn.evicted.is_cancelled());
        assert_eq!(connections.len(), 3);
        // Protect the rest: a newcomer is refused.
        let (sc, sd) = (c.request(), d.request());
        sc.authorize();
        sd.authorize();
        assert!(matches!(connections.admit(), Admission::Full));
        // The response sent, `a` may give way again.
        drop(slot);
        let _e = admitted(&connections);
        assert!(a.conn.evicted.is_cancelled());
        drop((b, c, d));
        assert_eq!(connections.len(), 1);
    }

    #[test]
    fn authorizing_twice_protects_once() {
        let connections = Connections::new(1);
        let a = admitted(&connections);
        let slot = a.request();
        slot.authorize();
        slot.clone().authorize();
        assert_eq!(a.conn.protected.load(Ordering::Acquire), 1);
        drop(slot);
        assert_eq!(a.conn.protected.load(Ordering::Acquire), 0);
    }
}
