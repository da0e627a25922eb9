//! What subscribers receive: the events of a job and the byte counts they carry. Data only;
//! how an event reads to people is in `display.rs`.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};

use serde::{Deserialize, Serialize};

/// Identifies one job (one provision request). Cheap to clone; usable in URLs.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct JobId(pub String);

impl JobId {
    /// A fresh random id such as `job-3f9a1c2b7d4e5f60`.
    pub fn generate() -> Self {
        use std::hash::{BuildHasher, Hasher};
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
        h.write_u128(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap_or_default()
                .as_nanos(),
        );
        JobId(format!("job-{:016x}", h.finish()))
    }
}

impl std::fmt::Display for JobId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<&str> for JobId {
    fn from(s: &str) -> Self {
        JobId(s.to_string())
    }
}

/// One event of a job, as subscribers receive it (and as JSON lines / SSE data carry it).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProgressEvent {
    /// The job this event belongs to.
    pub job_id: JobId,
    /// Increases by one per event of this job.
    pub seq: u64,
    /// Milliseconds since the Unix epoch.
    pub timestamp_ms: u64,
    /// What happened.
    #[serde(flatten)]
    pub kind: EventKind,
}

/// What happened; serialized with an `"event"` tag (`"progress"`, `"completed"`, …).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
#[non_exhaustive]
pub enum EventKind {
    /// Waiting for a download slot.
    Queued {
        /// How many jobs are ahead (0 = next).
        position: usize,
    },
    /// The artifact is resolved and bytes start to move.
    Started {
        /// The canonical reference.
        artifact: String,
        /// Bytes of all files, including any already on disk.
        total_bytes: u64,
        /// Number of files.
        files: usize,
    },
    /// One file starts (or resumes).
    FileStarted {
        /// Path within the artifact.
        path: String,
        /// Size, when known.
        size: Option<u64>,
        /// Bytes already on disk from an earlier attempt.
        resumed_from: u64,
    },
    /// Throttled byte progress.
    Progress(ProgressSnapshot),
    /// Periodic progress, sent even when no bytes move (so a stalled download is visible).
    Heartbeat(ProgressSnapshot),
    /// A transient failure; the transfer will try again.
    Retrying {
        /// Path within the artifact.
        path: String,
        /// The attempt about to be made (2 = first retry).
        attempt: u32,
        /// How long until it is made.
        delay_ms: u64,
        /// Why.
        reason: String,
    },
    /// A file was taken from somewhere local instead of being downloaded.
    FileReused {
        /// Path within the artifact.
        path: String,
        /// Where it came from (e.g. "HuggingFace cache", "catalog").
        source: String,
    },
    /// A file's bytes are being checked against their digest.
    Verifying {
        /// Path within the artifact.
        path: String,
    },
    /// A file is complete and verified.
    FileDone {
        /// Path within the artifact.
        path: String,
        /// Its size.
        bytes: u64,
    },
    /// A line of narration for people.
    Message {
        /// The text.
        message: String,
    },
    /// Final: the artifact is ready.
    Completed {
        /// Catalog id of the artifact.
        id: String,
        /// Local paths of its files.
        paths: Vec<PathBuf>,
        /// Total bytes.
        bytes: u64,
        /// Of the bytes rebuilt from a chunk store (the Hub's Xet), those that came over the
        /// network; absent when nothing was.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        fetched_bytes: Option<u64>,
        /// Of the bytes rebuilt from a chunk store, those taken from the local chunk cache.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reused_bytes: Option<u64>,
    },
    /// Final: the job failed.
    Failed {
        /// What happened and what to do.
        error: String,
        /// Stable code (see `Error::code`).
        code: String,
    },
    /// Final: the job was cancelled; partial files are kept.
    Cancelled {
        /// Bytes kept on disk for a later resume.
        bytes_on_disk: u64,
    },
}

impl EventKind {
    /// Whether this event ends the job's stream.
    pub fn is_final(&self) -> bool {
        matches!(
            self,
            EventKind::Completed { .. } | EventKind::Failed { .. } | EventKind::Cancelled { .. }
        )
    }

    /// The event's name as it appears in the `"event"` tag.
    pub fn name(&self) -> &'static str {
        match self {
            EventKind::Queued { .. } => "queued",
            EventKind::Started { .. } => "started",
            EventKind::FileStarted { .. } => "file_started",
            EventKind::Progress(_) => "progress",
            EventKind::Heartbeat(_) => "heartbeat",
            EventKind::Retrying { .. } => "retrying",
            EventKind::FileReused { .. } => "file_reused",
            EventKind::Verifying { .. } => "verifying",
            EventKind::FileDone { .. } => "file_done",
            EventKind::Message { .. } => "message",
            EventKind::Completed { .. } => "completed",
            EventKind::Failed { .. } => "failed",
            EventKind::Cancelled { .. } => "cancelled",
        }
    }
}

/// Bytes, percentage, speed and ETA at one moment.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct ProgressSnapshot {
    /// Bytes present (including any resumed from an earlier attempt).
    pub bytes: u64,
    /// Total bytes, 0 when unknown.
    pub total: u64,
    /// `bytes / total` in percent, when the total is known.
    pub percent: Option<f64>,
    /// Bytes per second over the recent window.
    pub bytes_per_sec: f64,
    /// Seconds to completion at the current speed, when computable.
    pub eta_secs: Option<f64>,
    /// Files in progress.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub files: Vec<FileSnapshot>,
}

/// One file's bytes at one moment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FileSnapshot {
    /// Path within the artifact.
    pub path: String,
    /// Bytes present.
    pub bytes: u64,
    /// Size, 0 when unknown.
    pub total: u64,
    /// This file's bytes per second over the recent window (bytes moved by this run only).
    #[serde(default)]
    pub bytes_per_sec: f64,
    /// Seconds until this file is complete at its current speed, when computable.
    #[serde(default)]
    pub eta_secs: Option<f64>,
}
