//! The tracker: counts a job's bytes, throttles its `progress` events and broadcasts every
//! event to its subscribers. It says nothing in words; see `display.rs`.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::broadcast;
use tokio::time::Instant;

use super::event::{EventKind, FileSnapshot, JobId, ProgressEvent, ProgressSnapshot};
use super::replay::ReplayState;
use super::speed::{SpeedWindow, eta};
use super::throttle::Throttle;
use crate::sync::lock_unpoisoned;

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
    /// Bytes present, including resumed prefixes.
    bytes: AtomicU64,
    /// Bytes moved by this process (for speed).
    moved: AtomicU64,
    total: AtomicU64,
    progress_throttle: Throttle,
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
                progress_throttle: Throttle::new(config.progress_interval),
                config,
                tx,
                bytes: AtomicU64::new(0),
                moved: AtomicU64::new(0),
                total: AtomicU64::new(0),
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
        (state.replay(), rx)
    }

    /// Whether a final event has been sent.
    pub fn is_finished(&self) -> bool {
        self.inner.finished.load(Ordering::Acquire)
    }

    /// The final event, once there is one.
    pub fn final_event(&self) -> Option<ProgressEvent> {
        self.state().final_event().cloned()
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

    /// `n` bytes counted earlier belong to an attempt that was given up: its files are fetched
    /// again from elsewhere, and count from there.
    pub fn discard(&self, n: u64) {
        let _ = self
            .inner
            .bytes
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |b| {
                Some(b.saturating_sub(n))
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
        if state.final_event().is_some() {
            return;
        }
        let event = ProgressEvent {
            job_id: job_id.clone(),
            seq: state.next_seq(),
            timestamp_ms: unix_millis(),
            kind,
        };
        state.record(&event);
        if event.kind.is_final() {
            self.inner.finished.store(true, Ordering::Release);
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
        if self.inner.progress_throttle.ready() {
            let snapshot = self.snapshot();
            self.emit(EventKind::Progress(snapshot));
        }
    }

    fn state(&self) -> MutexGuard<'_, ReplayState> {
        lock_unpoisoned(&self.inner.state)
    }
}

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
        self.tracker.discard(n);
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
