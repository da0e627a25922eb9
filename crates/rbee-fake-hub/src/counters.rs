//! Per-path request and byte counters, and a log of recent requests.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::atomic::{AtomicU16, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use serde::{Deserialize, Serialize};

use crate::fault::Host;

/// Requests kept in the log read by [`FakeHub::requests`](crate::FakeHub::requests).
const LOG_CAPACITY: usize = 10_000;

/// What the server did for one path (the request path, percent-decoded, without the query).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PathCounters {
    /// Requests received.
    pub requests: u64,
    /// Response body bytes written to the connection (see the crate docs for the precision).
    pub bytes_sent: u64,
    /// Responses by status code.
    pub statuses: BTreeMap<u16, u64>,
    /// The `Range` header of each request that had one, in arrival order.
    pub ranges: Vec<String>,
}

impl PathCounters {
    /// How many responses had `status`.
    pub fn status(&self, status: u16) -> u64 {
        self.statuses.get(&status).copied().unwrap_or(0)
    }
}

/// Every path's counters at one moment.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CountersSnapshot {
    /// Counters by path (e.g. `/files/big.bin`).
    pub paths: BTreeMap<String, PathCounters>,
    /// Requests received on all paths.
    pub total_requests: u64,
    /// Response body bytes written on all paths.
    pub total_bytes_sent: u64,
}

impl CountersSnapshot {
    /// The counters of `path` (a leading `/` is optional); zeros if it was never requested.
    pub fn path(&self, path: &str) -> PathCounters {
        self.paths
            .get(&normalize(path))
            .cloned()
            .unwrap_or_default()
    }
}

/// One request, as kept in the request log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestRecord {
    /// Arrival order, from 0 (not reset by a counter reset).
    pub seq: u64,
    /// The listener it arrived on.
    pub host: Host,
    /// The HTTP method.
    pub method: String,
    /// The path, percent-decoded, without the query.
    pub path: String,
    /// The raw query string, if any.
    pub query: Option<String>,
    /// The `Range` header, if any.
    pub range: Option<String>,
    /// The response status (`None` while the handler runs).
    pub status: Option<u16>,
    /// Response body bytes written so far.
    pub bytes_sent: u64,
    /// The connection that carried it (numbered from 0 in accept order across the process;
    /// equal numbers mean one kept-alive connection). `None` when not known, as in a log read
    /// back from JSON that does not name it: never a made-up connection 0.
    #[serde(default)]
    pub connection: Option<u64>,
}

fn normalize(path: &str) -> String {
    if path.starts_with('/') {
        path.to_owned()
    } else {
        format!("/{path}")
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Counters stay usable if a handler panicked while holding a lock.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

#[derive(Debug, Default)]
struct PathStats {
    requests: AtomicU64,
    bytes: AtomicU64,
    detail: Mutex<(BTreeMap<u16, u64>, Vec<String>)>,
}

#[derive(Debug)]
struct RequestStats {
    seq: u64,
    host: Host,
    method: String,
    path: String,
    query: Option<String>,
    range: Option<String>,
    status: AtomicU16,
    bytes: AtomicU64,
    connection: u64,
}

#[derive(Debug, Default)]
struct Inner {
    paths: HashMap<String, Arc<PathStats>>,
    log: VecDeque<Arc<RequestStats>>,
    seq: u64,
}

/// The live counters.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    inner: Mutex<Inner>,
}

/// Where one response's numbers go.
#[derive(Debug, Clone)]
pub(crate) struct Meter {
    path: Arc<PathStats>,
    request: Arc<RequestStats>,
}

impl Meter {
    pub(crate) fn add_bytes(&self, n: u64) {
        self.path.bytes.fetch_add(n, Ordering::Relaxed);
        self.request.bytes.fetch_add(n, Ordering::Relaxed);
    }

    /// Takes back bytes counted but never written (a client that went away mid-chunk).
    pub(crate) fn sub_bytes(&self, n: u64) {
        self.path.bytes.fetch_sub(n, Ordering::Relaxed);
        self.request.bytes.fetch_sub(n, Ordering::Relaxed);
    }

    pub(crate) fn status(&self, status: u16) {
        self.request.status.store(status, Ordering::Relaxed);
        *lock(&self.path.detail).0.entry(status).or_default() += 1;
    }
}

impl Counters {
    /// Counts a new request and returns where its response's numbers go.
    pub(crate) fn begin(
        &self,
        host: Host,
        connection: u64,
        method: &str,
        path: &str,
        query: Option<&str>,
        range: Option<&str>,
    ) -> Meter {
        let mut inner = lock(&self.inner);
        let stats = inner.paths.entry(path.to_owned()).or_default().clone();
        stats.requests.fetch_add(1, Ordering::Relaxed);
        if let Some(range) = range {
            lock(&stats.detail).1.push(range.to_owned());
        }
        let request = Arc::new(RequestStats {
            seq: inner.seq,
            host,
            method: method.to_owned(),
            path: path.to_owned(),
            query: query.map(str::to_owned),
            range: range.map(str::to_owned),
            status: AtomicU16::new(0),
            bytes: AtomicU64::new(0),
            connection,
        });
        inner.seq += 1;
        if inner.log.len() == LOG_CAPACITY {
            inner.log.pop_front();
        }
        inner.log.push_back(request.clone());
        Meter {
            path: stats,
            request,
        }
    }

    pub(crate) fn snapshot(&self) -> CountersSnapshot {
        let inner = lock(&self.inner);
        let paths: BTreeMap<String, PathCounters> = inner
            .paths
            .iter()
            .map(|(path, s)| {
                let detail = lock(&s.detail);
                let counters = PathCounters {
                    requests: s.requests.load(Ordering::Relaxed),
                    bytes_sent: s.bytes.load(Ordering::Relaxed),
                    statuses: detail.0.clone(),
                    ranges: detail.1.clone(),
                };
                (path.clone(), counters)
            })
            .collect();
        CountersSnapshot {
            total_requests: paths.values().map(|p| p.requests).sum(),
            total_bytes_sent: paths.values().map(|p| p.bytes_sent).sum(),
            paths,
        }
    }

    pub(crate) fn requests(&self) -> Vec<RequestRecord> {
        lock(&self.inner)
            .log
            .iter()
            .map(|r| RequestRecord {
                seq: r.seq,
                host: r.host,
                method: r.method.clone(),
                path: r.path.clone(),
                query: r.query.clone(),
                range: r.range.clone(),
                status: match r.status.load(Ordering::Relaxed) {
                    0 => None,
                    s => Some(s),
                },
                bytes_sent: r.bytes.load(Ordering::Relaxed),
                connection: Some(r.connection),
            })
            .collect()
    }

    /// Forgets every count. Responses still in flight keep counting into their old entries,
    /// which are no longer visible.
    pub(crate) fn reset(&self) {
        let mut inner = lock(&self.inner);
        inner.paths.clear();
        inner.log.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_by_path_and_logs_requests() {
        let c = Counters::default();
        let m = c.begin(Host::Hub, 0, "GET", "/files/a", None, Some("bytes=0-9"));
        m.add_bytes(10);
        m.status(206);
        let m2 = c.begin(Host::Cdn, 1, "HEAD", "/files/a", Some("x=1"), None);
        m2.status(200);
        let snap = c.snapshot();
        let a = snap.path("files/a");
        assert_eq!(a.requests, 2);
        assert_eq!(a.bytes_sent, 10);
        assert_eq!(a.status(206), 1);
        assert_eq!(a.status(200), 1);
        assert_eq!(a.ranges, vec!["bytes=0-9".to_owned()]);
        assert_eq!(snap.total_bytes_sent, 10);
        let log = c.requests();
        assert_eq!(log.len(), 2);
        assert_eq!(log[1].query.as_deref(), Some("x=1"));
        assert_eq!(log[0].status, Some(206));
        assert_eq!(log[0].connection, Some(0));
        assert_eq!(log[1].connection, Some(1));
        c.reset();
        assert_eq!(c.snapshot(), CountersSnapshot::default());
        assert_eq!(c.snapshot().path("/files/a"), PathCounters::default());
    }

    #[test]
    fn a_record_that_does_not_name_its_connection_reads_back_as_unknown() {
        let json = r#"{"seq":3,"host":"hub","method":"GET","path":"/files/a","query":null,
            "range":null,"status":200,"bytes_sent":10}"#;
        let record: RequestRecord = serde_json::from_str(json).unwrap();
        assert_eq!(record.connection, None);
        let named: RequestRecord = serde_json::from_str(
            &json.replace("\"bytes_sent\":10", "\"bytes_sent\":10,\"connection\":0"),
        )
        .unwrap();
        assert_eq!(named.connection, Some(0));
    }
}
