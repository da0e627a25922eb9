//! Vendor-neutral progress: a [`DownloadTracker`] per job counts bytes and broadcasts
//! [`ProgressEvent`]s to any number of subscribers (the CLI's bars, the daemon's SSE streams,
//! tests).
//!
//! # Contract
//! - Byte counting ([`FileProgress::advance`]) is a few atomic adds and never blocks; at most one
//!   `progress` event is emitted per [`TrackerConfig::progress_interval`] (about 10 a second), so
//!   a fast download does not flood subscribers.
//! - Structural events (`queued`, `started`, `file_started`, `verifying`, `file_done`, …) and the
//!   final events (`completed`, `failed`, `cancelled`) are never throttled. After a final event
//!   the tracker is finished and emits nothing more.
//! - A subscriber that falls behind loses the oldest events (the broadcast channel is bounded),
//!   never the newest, so it always sees the final event. [`DownloadTracker::subscribe`] also
//!   returns the current state first, so a late subscriber can draw at once.
//! - Every event carries the job id explicitly; nothing depends on task-local context.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::sync::broadcast;
use tokio::time::Instant;

use crate::sync::lock_unpoisoned;

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

impl ProgressEvent {
    /// A one-line human description of the event (the daemon's narration, log lines).
    pub fn narration(&self) -> String {
        match &self.kind {
            EventKind::Queued { position: 0 } => "Queued: next in line".into(),
            EventKind::Queued { position } => format!("Queued: {position} ahead"),
            EventKind::Started {
                artifact,
                total_bytes,
                files,
            } => format!(
                "Downloading {artifact}: {files} file{}, {}",
                if *files == 1 { "" } else { "s" },
                human_bytes(*total_bytes)
            ),
            EventKind::FileStarted {
                path,
                resumed_from: 0,
                ..
            } => format!("Fetching {path}"),
            EventKind::FileStarted {
                path, resumed_from, ..
            } => format!("Resuming {path} from {}", human_bytes(*resumed_from)),
            EventKind::Progress(s) | EventKind::Heartbeat(s) => {
                let mut line = match s.percent {
                    Some(p) => format!(
                        "{p:.1}% ({} of {})",
                        human_bytes(s.bytes),
                        human_bytes(s.total)
                    ),
                    None => human_bytes(s.bytes),
                };
                line.push_str(&format!(" at {}/s", human_bytes(s.bytes_per_sec as u64)));
                if let Some(eta) = s.eta_secs {
                    line.push_str(&format!(", ETA {}", human_duration(eta)));
                }
                line
            }
            EventKind::Retrying {
                path,
                attempt,
                delay_ms,
                reason,
            } => format!("{path}: {reason}; attempt {attempt} in {delay_ms} ms"),
            EventKind::FileReused { path, source } => format!("{path}: reused from {source}"),
            EventKind::Verifying { path } => format!("Verifying {path}"),
            EventKind::FileDone { path, bytes } => {
                format!("{path}: done ({})", human_bytes(*bytes))
            }
            EventKind::Message { message } => message.clone(),
            EventKind::Completed { id, bytes, .. } => {
                format!("Ready: {id} ({})", human_bytes(*bytes))
            }
            EventKind::Failed { error, .. } => format!("Failed: {error}"),
            EventKind::Cancelled { bytes_on_disk } => format!(
                "Cancelled; {} kept on disk for a later resume",
                human_bytes(*bytes_on_disk)
            ),
        }
    }
}

/// `1.5 GiB`-style byte counts.
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut value = n as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

/// Seconds left for `total - bytes` at `rate`, when both are known.
fn eta(bytes: u64, total: u64, rate: f64) -> Option<f64> {
    (total > 0 && rate > 0.0).then(|| total.saturating_sub(bytes) as f64 / rate)
}

/// `45s`, `3m05s`, `2h10m`-style durations.
pub fn human_duration(secs: f64) -> String {
    let s = secs.round() as u64;
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m{:02}s", s / 60, s % 60),
        _ => format!("{}h{:02}m", s / 3600, (s % 3600) / 60),
    }
}

/// Tuning for a [`DownloadTracker`].
#[derive(Debug, Clone)]
pub struct TrackerConfig {
    /// Minimum time between two `progress` events (default 100 ms: about 10 a second).
    pub progress_interval: Duration,
    /// The window over which speed is averaged (default 5 s).
    pub speed_window: Duration,
    /// Events buffered per subscriber before the oldest are dropped (default 1024).
    pub channel_capacity: usize,
}

impl Default for TrackerConfig {
    fn default() -> Self {
        Self {
            progress_interval: Duration::from_millis(100),
            speed_window: Duration::from_secs(5),
            channel_capacity: 1024,
        }
    }
}

/// Counts the bytes of one job and broadcasts its events. Cheap to clone (an `Arc`).
#[derive(Debug, Clone)]
pub struct DownloadTracker {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    job_id: JobId,
    config: TrackerConfig,
    tx: broadcast::Sender<ProgressEvent>,
    epoch: Instant,
    /// Bytes present, including resumed prefixes.
    bytes: AtomicU64,
    /// Bytes moved by this process (for speed).
    moved: AtomicU64,
    total: AtomicU64,
    /// Nanoseconds since `epoch` of the last progress event, for lock-free throttling.
    last_progress_ns: AtomicU64,
    finished: AtomicBool,
    files: Mutex<Vec<Arc<FileState>>>,
    speed: Mutex<SpeedWindow>,
    state: Mutex<ReplayState>,
    /// The shared transfer this tracker mirrors ([`DownloadTracker::follow`]): its snapshot is
    /// the source's, whose speed window sees every byte.
    source: Mutex<Option<DownloadTracker>>,
    /// Bytes rebuilt from a chunk store: (over the network, from the local chunk cache).
    fetched_and_reused: Mutex<Option<(u64, u64)>>,
}

#[derive(Debug)]
struct FileState {
    path: String,
    bytes: AtomicU64,
    total: AtomicU64,
    /// Bytes of this file moved by this run (for its speed; a resumed prefix is not speed).
    moved: AtomicU64,
    speed: Mutex<SpeedWindow>,
}

/// What a late subscriber needs to draw the job as it is now.
#[derive(Debug, Default)]
struct ReplayState {
    seq: u64,
    queued: Option<ProgressEvent>,
    started: Option<ProgressEvent>,
    last_progress: Option<ProgressEvent>,
    final_event: Option<ProgressEvent>,
}

#[derive(Debug, Default)]
struct SpeedWindow {
    samples: std::collections::VecDeque<(Instant, u64)>,
}

impl SpeedWindow {
    /// Starts the window at `moved` now, unless it has started already, so the first reading
    /// after bytes begin to move is a real rate instead of 0.
    fn start(&mut self, now: Instant, moved: u64) {
        if self.samples.is_empty() {
            self.samples.push_back((now, moved));
        }
    }

    fn rate(&mut self, now: Instant, moved: u64, window: Duration) -> f64 {
        let newest_is_recent = self
            .samples
            .back()
            .is_some_and(|(t, _)| now.duration_since(*t) < window / 50);
        if !newest_is_recent {
            self.samples.push_back((now, moved));
        }
        while self.samples.len() > 2
            && self
                .samples
                .get(1)
                .is_some_and(|(t, _)| now.duration_since(*t) >= window)
        {
            self.samples.pop_front();
        }
        let Some(&(t0, b0)) = self.samples.front() else {
            return 0.0;
        };
        let elapsed = now.duration_since(t0).as_secs_f64();
        if elapsed < 0.05 {
            return 0.0;
        }
        moved.saturating_sub(b0) as f64 / elapsed
    }
}

impl DownloadTracker {
    /// A tracker for `job_id` with default tuning.
    pub fn new(job_id: JobId) -> Self {
        Self::with_config(job_id, TrackerConfig::default())
    }

    /// A tracker for `job_id`.
    pub fn with_config(job_id: JobId, config: TrackerConfig) -> Self {
        let (tx, _) = broadcast::channel(config.channel_capacity.max(16));
        Self {
            inner: Arc::new(Inner {
                job_id,
                config,
                tx,
                epoch: Instant::now(),
                bytes: AtomicU64::new(0),
                moved: AtomicU64::new(0),
                total: AtomicU64::new(0),
                last_progress_ns: AtomicU64::new(0),
                finished: AtomicBool::new(false),
                files: Mutex::new(Vec::new()),
                speed: Mutex::new(SpeedWindow::default()),
                state: Mutex::new(ReplayState::default()),
                source: Mutex::new(None),
                fetched_and_reused: Mutex::new(None),
            }),
        }
    }

    /// The job this tracker reports for.
    pub fn job_id(&self) -> &JobId {
        &self.inner.job_id
    }

    /// Subscribes to future events and returns, first, the events that describe the job so far
    /// (queued/started, the latest progress, the final event if there is one). Nothing is lost
    /// or repeated between the two.
    pub fn subscribe(&self) -> (Vec<ProgressEvent>, broadcast::Receiver<ProgressEvent>) {
        let state = self.state();
        let rx = self.inner.tx.subscribe();
        let replay = [
            &state.queued,
            &state.started,
            &state.last_progress,
            &state.final_event,
        ]
        .into_iter()
        .flatten()
        .cloned()
        .collect();
        (replay, rx)
    }

    /// Whether a final event has been sent.
    pub fn is_finished(&self) -> bool {
        self.inner.finished.load(Ordering::Acquire)
    }

    /// The final event, once there is one.
    pub fn final_event(&self) -> Option<ProgressEvent> {
        self.state().final_event.clone()
    }

    /// Bytes present so far.
    pub fn bytes(&self) -> u64 {
        self.inner.bytes.load(Ordering::Relaxed)
    }

    /// Total bytes, 0 when unknown.
    pub fn total(&self) -> u64 {
        self.inner.total.load(Ordering::Relaxed)
    }

    /// Bytes, percentage, speed and ETA now. Speed counts only bytes moved by this run, over
    /// [`TrackerConfig::speed_window`]; bytes found on disk (a resume) are present, not speed.
    pub fn snapshot(&self) -> ProgressSnapshot {
        let source = lock_unpoisoned(&self.inner.source).clone();
        if let Some(source) = source {
            return source.snapshot();
        }
        let bytes = self.bytes();
        let total = self.total();
        let now = Instant::now();
        let window = self.inner.config.speed_window;
        let moved = self.inner.moved.load(Ordering::Relaxed);
        let bytes_per_sec = lock_unpoisoned(&self.inner.speed).rate(now, moved, window);
        let files = lock_unpoisoned(&self.inner.files)
            .iter()
            .map(|f| {
                let bytes = f.bytes.load(Ordering::Relaxed);
                let total = f.total.load(Ordering::Relaxed);
                let rate =
                    lock_unpoisoned(&f.speed).rate(now, f.moved.load(Ordering::Relaxed), window);
                FileSnapshot {
                    path: f.path.clone(),
                    bytes,
                    total,
                    bytes_per_sec: rate,
                    eta_secs: eta(bytes, total, rate),
                }
            })
            .collect();
        ProgressSnapshot {
            bytes,
            total,
            percent: (total > 0).then(|| (bytes.min(total) as f64 / total as f64) * 100.0),
            bytes_per_sec,
            eta_secs: eta(bytes, total, bytes_per_sec),
            files,
        }
    }

    /// The job waits for a download slot.
    pub fn queued(&self, position: usize) {
        self.emit(EventKind::Queued { position });
    }

    /// The job starts: sets the total and announces it.
    pub fn started(&self, artifact: impl Into<String>, total_bytes: u64, files: usize) {
        self.inner.total.store(total_bytes, Ordering::Relaxed);
        self.emit(EventKind::Started {
            artifact: artifact.into(),
            total_bytes,
            files,
        });
    }

    /// Begins counting one file. `resumed_from` bytes are already on disk (counted as present,
    /// not as moved, so they do not inflate the speed).
    pub fn file(
        &self,
        path: impl Into<String>,
        size: Option<u64>,
        resumed_from: u64,
    ) -> FileProgress {
        let path = path.into();
        let now = Instant::now();
        let mut window = SpeedWindow::default();
        window.start(now, 0);
        let state = Arc::new(FileState {
            path: path.clone(),
            bytes: AtomicU64::new(resumed_from),
            total: AtomicU64::new(size.unwrap_or(0)),
            moved: AtomicU64::new(0),
            speed: Mutex::new(window),
        });
        lock_unpoisoned(&self.inner.speed).start(now, self.inner.moved.load(Ordering::Relaxed));
        self.inner.bytes.fetch_add(resumed_from, Ordering::Relaxed);
        lock_unpoisoned(&self.inner.files).push(state.clone());
        self.emit(EventKind::FileStarted {
            path,
            size,
            resumed_from,
        });
        FileProgress {
            tracker: self.clone(),
            state,
            done: AtomicBool::new(false),
        }
    }

    /// A file was taken from a local source rather than downloaded; counts its bytes as present.
    pub fn file_reused(&self, path: impl Into<String>, bytes: u64, source: impl Into<String>) {
        self.inner.bytes.fetch_add(bytes, Ordering::Relaxed);
        self.emit(EventKind::FileReused {
            path: path.into(),
            source: source.into(),
        });
    }

    /// A line of narration.
    pub fn message(&self, message: impl Into<String>) {
        self.emit(EventKind::Message {
            message: message.into(),
        });
    }

    /// Counts bytes rebuilt from a chunk store: `fetched` over the network, `reused` from the
    /// local chunk cache. The `completed` event carries the sums.
    pub fn fetched_and_reused(&self, fetched: u64, reused: u64) {
        let mut sums = lock_unpoisoned(&self.inner.fetched_and_reused);
        let (f, r) = sums.get_or_insert((0, 0));
        *f += fetched;
        *r += reused;
    }

    /// Final: ready.
    pub fn completed(&self, id: impl Into<String>, paths: Vec<PathBuf>, bytes: u64) {
        let sums = *lock_unpoisoned(&self.inner.fetched_and_reused);
        self.emit(EventKind::Completed {
            id: id.into(),
            paths,
            bytes,
            fetched_bytes: sums.map(|s| s.0),
            reused_bytes: sums.map(|s| s.1),
        });
    }

    /// Final: failed.
    pub fn failed(&self, error: impl Into<String>, code: impl Into<String>) {
        self.emit(EventKind::Failed {
            error: error.into(),
            code: code.into(),
        });
    }

    /// Final: cancelled, with the bytes kept for a resume.
    pub fn cancelled(&self) {
        let bytes_on_disk = self.bytes();
        self.emit(EventKind::Cancelled { bytes_on_disk });
    }

    /// Sends a `heartbeat` event every `interval` until the tracker finishes or the returned
    /// handle is dropped. The task owns its own copy of the job id and reads real byte counts.
    pub fn spawn_heartbeat(&self, interval: Duration) -> HeartbeatHandle {
        let tracker = self.clone();
        let job_id = self.inner.job_id.clone();
        let task = tokio::spawn(async move {
            let mut ticker = tokio::time::interval_at(Instant::now() + interval, interval);
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                ticker.tick().await;
                if tracker.is_finished() {
                    break;
                }
                let snapshot = tracker.snapshot();
                tracker.emit_as(&job_id, EventKind::Heartbeat(snapshot));
            }
        });
        HeartbeatHandle { task }
    }

    /// Forwards every event of `source` (a shared transfer another job started) into this
    /// tracker under this tracker's job id, including its current state, until `source`
    /// finishes. Counters follow the source's.
    pub fn follow(&self, source: &DownloadTracker) -> tokio::task::JoinHandle<()> {
        let (replay, mut rx) = source.subscribe();
        *lock_unpoisoned(&self.inner.source) = Some(source.clone());
        let me = self.clone();
        let source = source.clone();
        tokio::spawn(async move {
            let forward = |event: ProgressEvent| {
                me.inner.bytes.store(source.bytes(), Ordering::Relaxed);
                me.inner.total.store(source.total(), Ordering::Relaxed);
                me.inner.moved.store(
                    source.inner.moved.load(Ordering::Relaxed),
                    Ordering::Relaxed,
                );
                let is_final = event.kind.is_final();
                me.emit(event.kind);
                is_final
            };
            for event in replay {
                if forward(event) {
                    return;
                }
            }
            loop {
                match rx.recv().await {
                    Ok(event) => {
                        if forward(event) {
                            return;
                        }
                    }
                    Err(broadcast::error::RecvError::Lagged(_)) => continue,
                    Err(broadcast::error::RecvError::Closed) => return,
                }
            }
        })
    }

    fn emit(&self, kind: EventKind) {
        let job_id = self.inner.job_id.clone();
        self.emit_as(&job_id, kind);
    }

    fn emit_as(&self, job_id: &JobId, kind: EventKind) {
        let mut state = self.state();
        if state.final_event.is_some() {
            return;
        }
        state.seq += 1;
        let event = ProgressEvent {
            job_id: job_id.clone(),
            seq: state.seq,
            timestamp_ms: unix_millis(),
            kind,
        };
        match &event.kind {
            EventKind::Queued { .. } => state.queued = Some(event.clone()),
            EventKind::Started { .. } => state.started = Some(event.clone()),
            EventKind::Progress(_) | EventKind::Heartbeat(_) => {
                state.last_progress = Some(event.clone())
            }
            k if k.is_final() => {
                state.final_event = Some(event.clone());
                self.inner.finished.store(true, Ordering::Release);
            }
            _ => {}
        }
        // No receivers is fine: nobody is watching.
        let _ = self.inner.tx.send(event);
    }

    fn add_bytes(&self, n: u64) {
        self.inner.bytes.fetch_add(n, Ordering::Relaxed);
        self.inner.moved.fetch_add(n, Ordering::Relaxed);
        self.maybe_emit_progress();
    }

    fn maybe_emit_progress(&self) {
        let now_ns = self.inner.epoch.elapsed().as_nanos() as u64;
        let last = self.inner.last_progress_ns.load(Ordering::Relaxed);
        let interval = self.inner.config.progress_interval.as_nanos() as u64;
        if last != 0 && now_ns.saturating_sub(last) < interval {
            return;
        }
        // Only the thread that wins the exchange emits; the rest return at once.
        if self
            .inner
            .last_progress_ns
            .compare_exchange(last, now_ns.max(1), Ordering::AcqRel, Ordering::Relaxed)
            .is_ok()
        {
            let snapshot = self.snapshot();
            self.emit(EventKind::Progress(snapshot));
        }
    }

    fn state(&self) -> MutexGuard<'_, ReplayState> {
        lock_unpoisoned(&self.inner.state)
    }
}

/// Counts the bytes of one file of a job. Dropping it without [`FileProgress::done`] just stops
/// listing the file as active.
#[derive(Debug)]
pub struct FileProgress {
    tracker: DownloadTracker,
    state: Arc<FileState>,
    done: AtomicBool,
}

impl FileProgress {
    /// `n` more bytes arrived and were written.
    pub fn advance(&self, n: u64) {
        self.state.bytes.fetch_add(n, Ordering::Relaxed);
        self.state.moved.fetch_add(n, Ordering::Relaxed);
        self.tracker.add_bytes(n);
    }

    /// `n` bytes previously counted were discarded (the transfer restarts a range or a file).
    pub fn rewind(&self, n: u64) {
        let n = n.min(self.state.bytes.load(Ordering::Relaxed));
        self.state.bytes.fetch_sub(n, Ordering::Relaxed);
        let inner = &self.tracker.inner;
        let _ = inner
            .bytes
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |b| {
                Some(b.saturating_sub(n))
            });
    }

    /// The file's size became known (or changed).
    pub fn set_size(&self, size: u64) {
        let old = self.state.total.swap(size, Ordering::Relaxed);
        if old == 0 && size > 0 {
            // The job total counted this file as unknown; add it now.
            let inner = &self.tracker.inner;
            let known: u64 = lock_unpoisoned(&inner.files)
                .iter()
                .map(|f| f.total.load(Ordering::Relaxed))
                .sum();
            let _ = inner
                .total
                .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |t| Some(t.max(known)));
        }
    }

    /// Bytes of this file present so far.
    pub fn bytes(&self) -> u64 {
        self.state.bytes.load(Ordering::Relaxed)
    }

    /// The path this handle counts.
    pub fn path(&self) -> &str {
        &self.state.path
    }

    /// The job's tracker.
    pub fn tracker(&self) -> &DownloadTracker {
        &self.tracker
    }

    /// A transient failure; another attempt follows after `delay`.
    pub fn retrying(&self, attempt: u32, delay: Duration, reason: impl Into<String>) {
        self.tracker.emit(EventKind::Retrying {
            path: self.state.path.clone(),
            attempt,
            delay_ms: delay.as_millis() as u64,
            reason: reason.into(),
        });
    }

    /// The file's digest is being checked.
    pub fn verifying(&self) {
        self.tracker.emit(EventKind::Verifying {
            path: self.state.path.clone(),
        });
    }

    /// The file is complete and verified.
    pub fn done(&self) {
        if self.done.swap(true, Ordering::Relaxed) {
            return;
        }
        self.remove_from_active();
        self.tracker.emit(EventKind::FileDone {
            path: self.state.path.clone(),
            bytes: self.bytes(),
        });
    }

    fn remove_from_active(&self) {
        lock_unpoisoned(&self.tracker.inner.files).retain(|f| !Arc::ptr_eq(f, &self.state));
    }
}

impl Drop for FileProgress {
    fn drop(&mut self) {
        self.remove_from_active();
    }
}

/// Stops the heartbeat task when dropped.
#[derive(Debug)]
pub struct HeartbeatHandle {
    task: tokio::task::JoinHandle<()>,
}

impl Drop for HeartbeatHandle {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn unix_millis() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis() as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn drain(rx: &mut broadcast::Receiver<ProgressEvent>) -> Vec<ProgressEvent> {
        let mut out = Vec::new();
        while let Ok(e) = rx.try_recv() {
            out.push(e);
        }
        out
    }

    #[tokio::test(start_paused = true)]
    async fn counts_bytes_percent_speed_and_eta() {
        let t = DownloadTracker::new("job-1".into());
        t.started("hf:o/r", 1000, 1);
        let f = t.file("a.gguf", Some(1000), 100);
        assert_eq!(t.bytes(), 100);
        f.advance(0);
        tokio::time::advance(Duration::from_secs(1)).await;
        f.advance(200);
        let s = t.snapshot();
        assert_eq!((s.bytes, s.total), (300, 1000));
        assert_eq!(s.percent, Some(30.0));
        // 200 bytes moved in one second; resumed bytes are not speed.
        assert!((s.bytes_per_sec - 200.0).abs() < 1.0, "{}", s.bytes_per_sec);
        assert!((s.eta_secs.unwrap() - 3.5).abs() < 0.1);
        assert_eq!(s.files.len(), 1);
        f.rewind(50);
        assert_eq!(t.bytes(), 250);
        assert_eq!(f.bytes(), 250);
        f.done();
        assert!(t.snapshot().files.is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn speed_uses_a_moving_window() {
        let t = DownloadTracker::with_config(
            "j".into(),
            TrackerConfig {
                speed_window: Duration::from_secs(2),
                ..Default::default()
            },
        );
        t.started("x", 0, 1);
        let f = t.file("a", None, 0);
        t.snapshot();
        for _ in 0..10 {
            tokio::time::advance(Duration::from_millis(500)).await;
            f.advance(1000);
            t.snapshot();
        }
        // Fast phase: 2000 B/s. Then it slows to 100 B/s; after the window passes the old
        // rate is forgotten.
        for _ in 0..10 {
            tokio::time::advance(Duration::from_millis(500)).await;
            f.advance(50);
            t.snapshot();
        }
        let rate = t.snapshot().bytes_per_sec;
        assert!((rate - 100.0).abs() < 30.0, "{rate}");
    }

    #[tokio::test(start_paused = true)]
    async fn progress_is_throttled_but_final_events_are_not() {
        let t = DownloadTracker::new("job-2".into());
        let (_, mut rx) = t.subscribe();
        t.started("x", 10_000_000, 1);
        let f = t.file("a", Some(10_000_000), 0);
        // 1000 writes within 50 ms of virtual time: at most one progress event.
        for _ in 0..1000 {
            f.advance(100);
        }
        tokio::time::advance(Duration::from_millis(50)).await;
        for _ in 0..1000 {
            f.advance(100);
        }
        // One second of steady writes: about ten progress events.
        for _ in 0..100 {
            tokio::time::advance(Duration::from_millis(10)).await;
            f.advance(1000);
        }
        f.done();
        t.completed("id", vec![], 10_000_000);
        t.failed("ignored after final", "x");
        let events = drain(&mut rx);
        let progress = events
            .iter()
            .filter(|e| matches!(e.kind, EventKind::Progress(_)))
            .count();
        assert!((9..=13).contains(&progress), "{progress} progress events");
        let last = events.last().unwrap();
        assert!(matches!(last.kind, EventKind::Completed { .. }));
        assert!(events.iter().all(|e| e.job_id.0 == "job-2"));
        let seqs: Vec<u64> = events.iter().map(|e| e.seq).collect();
        assert!(seqs.windows(2).all(|w| w[1] == w[0] + 1));
        assert!(
            !events
                .iter()
                .any(|e| matches!(e.kind, EventKind::Failed { .. }))
        );
    }

    #[tokio::test]
    async fn many_subscribers_and_a_late_one() {
        let t = DownloadTracker::new("job-3".into());
        let mut subs: Vec<_> = (0..5).map(|_| t.subscribe().1).collect();
        t.started("x", 10, 1);
        let f = t.file("a", Some(10), 0);
        f.advance(10);
        let (replay, _) = t.subscribe();
        assert!(matches!(replay[0].kind, EventKind::Started { .. }));
        assert!(matches!(
            replay.last().unwrap().kind,
            EventKind::Progress(_)
        ));
        t.cancelled();
        for rx in &mut subs {
            let events = drain(rx);
            assert!(matches!(
                events.last().unwrap().kind,
                EventKind::Cancelled { bytes_on_disk: 10 }
            ));
        }
        let (replay, _) = t.subscribe();
        assert!(replay.last().unwrap().kind.is_final());
        assert!(t.is_finished());
    }

    #[tokio::test]
    async fn a_lagging_subscriber_still_gets_the_final_event() {
        let t = DownloadTracker::with_config(
            "j".into(),
            TrackerConfig {
                channel_capacity: 16,
                progress_interval: Duration::ZERO,
                ..Default::default()
            },
        );
        let (_, mut rx) = t.subscribe();
        for i in 0..100 {
            t.message(format!("line {i}"));
        }
        t.completed("id", vec![], 0);
        let mut last = None;
        loop {
            match rx.try_recv() {
                Ok(e) => last = Some(e),
                Err(broadcast::error::TryRecvError::Lagged(_)) => continue,
                Err(_) => break,
            }
        }
        assert!(matches!(last.unwrap().kind, EventKind::Completed { .. }));
    }

    #[tokio::test(start_paused = true)]
    async fn heartbeat_reports_real_bytes_with_the_job_id() {
        let t = DownloadTracker::new("job-hb".into());
        let (_, mut rx) = t.subscribe();
        t.started("x", 100, 1);
        let f = t.file("a", Some(100), 0);
        let hb = t.spawn_heartbeat(Duration::from_secs(1));
        tokio::time::sleep(Duration::from_millis(1500)).await;
        f.advance(40);
        tokio::time::sleep(Duration::from_secs(1)).await;
        let beats: Vec<ProgressSnapshot> = drain(&mut rx)
            .into_iter()
            .filter_map(|e| match e.kind {
                EventKind::Heartbeat(s) => {
                    assert_eq!(e.job_id.0, "job-hb");
                    Some(s)
                }
                _ => None,
            })
            .collect();
        assert_eq!(beats.len(), 2);
        assert_eq!(beats[0].bytes, 0);
        assert_eq!(beats[1].bytes, 40);
        assert_eq!(beats[1].percent, Some(40.0));
        drop(hb);
        tokio::time::sleep(Duration::from_secs(3)).await;
        assert!(drain(&mut rx).is_empty(), "heartbeat stops when dropped");
    }

    #[tokio::test(start_paused = true)]
    async fn the_first_reading_mid_transfer_is_a_real_speed_without_the_resumed_prefix() {
        let t = DownloadTracker::new("job-resume".into());
        t.started("x", 10_000, 1);
        // 6000 bytes were on disk from an earlier run; 1000 more arrive in 2 s.
        let f = t.file("a", Some(10_000), 6000);
        tokio::time::advance(Duration::from_secs(2)).await;
        f.advance(1000);
        let s = t.snapshot();
        assert_eq!(s.bytes, 7000);
        assert!((s.bytes_per_sec - 500.0).abs() < 1.0, "{}", s.bytes_per_sec);
        assert!((s.eta_secs.unwrap() - 6.0).abs() < 0.1, "{:?}", s.eta_secs);
        let file = &s.files[0];
        assert_eq!((file.bytes, file.total), (7000, 10_000));
        assert!(
            (file.bytes_per_sec - 500.0).abs() < 1.0,
            "{}",
            file.bytes_per_sec
        );
        assert!((file.eta_secs.unwrap() - 6.0).abs() < 0.1);
    }

    #[tokio::test(start_paused = true)]
    async fn files_have_their_own_speed() {
        let t = DownloadTracker::new("job-files".into());
        t.started("x", 4000, 2);
        let a = t.file("a", Some(2000), 0);
        let b = t.file("b", Some(2000), 1500);
        tokio::time::advance(Duration::from_secs(1)).await;
        a.advance(600);
        b.advance(100);
        let s = t.snapshot();
        assert!((s.bytes_per_sec - 700.0).abs() < 1.0, "{}", s.bytes_per_sec);
        let rate = |p: &str| s.files.iter().find(|f| f.path == p).unwrap().bytes_per_sec;
        assert!((rate("a") - 600.0).abs() < 1.0, "{}", rate("a"));
        assert!((rate("b") - 100.0).abs() < 1.0, "{}", rate("b"));
    }

    #[tokio::test(start_paused = true)]
    async fn a_followers_first_heartbeat_mid_transfer_reports_the_real_speed() {
        let source = DownloadTracker::new("job-src".into());
        source.started("x", 100_000, 1);
        let f = source.file("a", Some(100_000), 0);
        let follower = DownloadTracker::new("job-follow".into());
        let (_, mut rx) = follower.subscribe();
        let _task = follower.follow(&source);
        let _hb = follower.spawn_heartbeat(Duration::from_secs(2));
        // 1000 bytes every 100 ms: 10 kB/s.
        for _ in 0..25 {
            tokio::time::advance(Duration::from_millis(100)).await;
            f.advance(1000);
        }
        tokio::task::yield_now().await;
        let beat = drain(&mut rx)
            .into_iter()
            .find_map(|e| match e.kind {
                EventKind::Heartbeat(s) => Some(s),
                _ => None,
            })
            .expect("a heartbeat");
        assert!(beat.bytes >= 19_000, "{beat:?}");
        assert!(
            (beat.bytes_per_sec - 10_000.0).abs() < 1500.0,
            "{}",
            beat.bytes_per_sec
        );
        assert!(beat.eta_secs.is_some());
        assert_eq!(beat.files.len(), 1);
    }

    #[tokio::test]
    async fn follower_restamps_events_with_its_own_job_id() {
        let source = DownloadTracker::new("job-a".into());
        source.started("x", 10, 1);
        let follower = DownloadTracker::new("job-b".into());
        let (_, mut rx) = follower.subscribe();
        let task = follower.follow(&source);
        tokio::task::yield_now().await;
        let f = source.file("a", Some(10), 0);
        f.advance(10);
        source.completed("id", vec![], 10);
        task.await.unwrap();
        let events = drain(&mut rx);
        assert!(events.iter().all(|e| e.job_id.0 == "job-b"));
        assert!(matches!(events[0].kind, EventKind::Started { .. }));
        assert!(matches!(
            events.last().unwrap().kind,
            EventKind::Completed { .. }
        ));
        assert_eq!(follower.bytes(), 10);
    }

    #[test]
    fn events_serialize_with_a_tag() {
        let e = ProgressEvent {
            job_id: "j".into(),
            seq: 1,
            timestamp_ms: 5,
            kind: EventKind::Progress(ProgressSnapshot {
                bytes: 1,
                total: 2,
                percent: Some(50.0),
                ..Default::default()
            }),
        };
        let json = serde_json::to_value(&e).unwrap();
        assert_eq!(json["event"], "progress");
        assert_eq!(json["job_id"], "j");
        assert_eq!(json["bytes"], 1);
        let back: ProgressEvent = serde_json::from_value(json).unwrap();
        assert_eq!(back, e);
        assert_eq!(human_bytes(1536), "1.5 KiB");
        assert!(e.narration().starts_with("50.0% (1 B of 2 B)"));
    }
}
