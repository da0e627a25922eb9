//! Helpers shared by the integration tests.

use std::path::Path;

use rbee_artifact::{DownloadTracker, FileProgress, JobId, Sha256Digest};
use rbee_transfer::{Transfer, TransferConfig};

/// A config with small chunks and fast retries, so faults show up in small files.
pub(crate) fn config() -> TransferConfig {
    TransferConfig {
        chunk_size: 256 * 1024,
        parallel_threshold: 512 * 1024,
        connections: 4,
        max_connections: 4,
        initial_backoff: std::time::Duration::from_millis(10),
        max_backoff: std::time::Duration::from_secs(2),
        use_env_proxy: false,
        ..TransferConfig::default()
    }
}

pub(crate) fn transfer() -> Transfer {
    Transfer::new(config()).unwrap()
}

/// Deterministic bytes that differ at every offset (so a misplaced range shows).
pub(crate) fn body(len: usize) -> Vec<u8> {
    let mut x = 0x1234_5678_9abc_def0u64 ^ len as u64;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

pub(crate) fn digest(data: &[u8]) -> Sha256Digest {
    Sha256Digest::of(data)
}

pub(crate) fn tracker() -> DownloadTracker {
    DownloadTracker::new(JobId::from("job-test"))
}

pub(crate) fn progress(tracker: &DownloadTracker, size: Option<u64>) -> FileProgress {
    tracker.file("model.gguf", size, 0)
}

/// Files in `dir` (names only, sorted).
pub(crate) fn listing(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

/// A file server for wiremock that honours Range, counts what it serves, and can be told to
/// misbehave for ranges starting at or after an offset. Clones share state, so a test can
/// change the file or the faults between two fetches.
#[derive(Clone)]
pub(crate) struct FileServer {
    inner: std::sync::Arc<std::sync::Mutex<FileServerState>>,
}

pub(crate) struct FileServerState {
    pub(crate) data: Vec<u8>,
    pub(crate) etag: String,
    /// Body bytes sent so far.
    pub(crate) served: u64,
    pub(crate) requests: u64,
    /// Ranges starting at or after this offset get `fault`.
    pub(crate) fault_from: Option<u64>,
    pub(crate) fault: Fault,
}

#[derive(Clone, Copy)]
pub(crate) enum Fault {
    Delay(std::time::Duration),
    Status(u16),
}

impl FileServer {
    pub(crate) fn new(data: Vec<u8>) -> Self {
        Self {
            inner: std::sync::Arc::new(std::sync::Mutex::new(FileServerState {
                data,
                etag: "\"v1\"".into(),
                served: 0,
                requests: 0,
                fault_from: None,
                fault: Fault::Status(500),
            })),
        }
    }

    pub(crate) fn with<R>(&self, f: impl FnOnce(&mut FileServerState) -> R) -> R {
        f(&mut self.inner.lock().unwrap())
    }
}

impl wiremock::Respond for FileServer {
    fn respond(&self, req: &wiremock::Request) -> wiremock::ResponseTemplate {
        use wiremock::ResponseTemplate;
        let mut s = self.inner.lock().unwrap();
        s.requests += 1;
        let len = s.data.len() as u64;
        let range = req
            .headers
            .get("range")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("bytes="))
            .and_then(|v| v.split_once('-'))
            .map(|(a, b)| {
                let a: u64 = a.parse().unwrap();
                let b: u64 = if b.is_empty() {
                    len - 1
                } else {
                    b.parse::<u64>().unwrap().min(len - 1)
                };
                (a, b)
            });
        let if_range_ok = req
            .headers
            .get("if-range")
            .is_none_or(|v| v.to_str().unwrap() == s.etag);
        let start = range.map(|r| r.0).unwrap_or(0);
        let mut delay = None;
        if s.fault_from.is_some_and(|f| start >= f) {
            match s.fault {
                Fault::Status(code) => return ResponseTemplate::new(code),
                Fault::Delay(d) => delay = Some(d),
            }
        }
        let mut resp = match range {
            Some((a, b)) if if_range_ok => {
                s.served += b - a + 1;
                ResponseTemplate::new(206)
                    .insert_header("content-range", format!("bytes {a}-{b}/{len}"))
                    .set_body_bytes(s.data[a as usize..=b as usize].to_vec())
            }
            _ => {
                s.served += len;
                ResponseTemplate::new(200).set_body_bytes(s.data.clone())
            }
        };
        resp = resp.insert_header("etag", s.etag.as_str());
        if let Some(d) = delay {
            resp = resp.set_delay(d);
        }
        resp
    }
}
