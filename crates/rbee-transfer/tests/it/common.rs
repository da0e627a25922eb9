//! Helpers shared by the integration tests.

use std::path::Path;

use rbee_artifact_catalog::{DownloadTracker, FileProgress, JobId, Sha256Digest};
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
