//! The job registry: every request the daemon works on, its state, and the attempts that do the
//! work.
//!
//! A job runs as one or more *attempts*. Each attempt has its own [`DownloadTracker`] (stamped
//! with the job's id), because a tracker ends with its final event while a paused job is not
//! over: pausing cancels the attempt's transfer (partial files stay), and resuming starts a new
//! attempt under the same job id that continues from the bytes on disk.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use rbee_artifact::{
    CatalogKey, DownloadTracker, EventKind, JobId, ProgressEvent, ProgressSnapshot, TrackerConfig,
    lock_unpoisoned,
};
use serde_json::Value;
use tokio::sync::{oneshot, watch};
use tokio_util::sync::CancellationToken;

pub(crate) use crate::api::{ErrorBody, JobState, JobView};
use crate::error::ApiError;
use crate::request::Operation;

/// The stored state; `Active` is shown as queued or running depending on the attempt's events.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Active,
    Paused,
    Done,
    Failed,
    Cancelled,
}

/// Why an attempt was told to stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stop {
    Pause,
    Cancel,
    Shutdown,
}

/// One run of a job.
#[derive(Debug)]
pub(crate) struct Attempt {
    pub(crate) number: u32,
    pub(crate) cancel: CancellationToken,
    tracker: Mutex<Tracked>,
    stop: Mutex<Option<Stop>>,
    ended: watch::Sender<bool>,
}

/// An attempt's events: a live tracker, or — once its job is over and retired — just what a
/// late subscriber needs, so the tracker's buffers are freed (finished jobs are kept a while).
#[derive(Debug)]
enum Tracked {
    Live(DownloadTracker),
    Archived {
        replay: Vec<ProgressEvent>,
        snapshot: ProgressSnapshot,
    },
}

impl Attempt {
    fn new(job_id: &JobId, number: u32, tracker: TrackerConfig) -> Arc<Self> {
        Arc::new(Self {
            number,
            tracker: Mutex::new(Tracked::Live(DownloadTracker::with_config(
                job_id.clone(),
                tracker,
            ))),
            cancel: CancellationToken::new(),
            stop: Mutex::new(None),
            ended: watch::Sender::new(false),
        })
    }

    /// The live tracker (`None` once archived).
    pub(crate) fn tracker(&self) -> Option<DownloadTracker> {
        match &*lock_unpoisoned(&self.tracker) {
            Tracked::Live(t) => Some(t.clone()),
            Tracked::Archived { .. } => None,
        }
    }

    /// The events so far that describe the attempt, and (while live) a receiver for the rest.
    pub(crate) fn subscribe(
        &self,
    ) -> (
        Vec<ProgressEvent>,
        Option<tokio::sync::broadcast::Receiver<ProgressEvent>>,
    ) {
        match &*lock_unpoisoned(&self.tracker) {
            Tracked::Live(t) => {
                let (replay, rx) = t.subscribe();
                (replay, Some(rx))
            }
            Tracked::Archived { replay, .. } => (replay.clone(), None),
        }
    }

    /// Bytes, total, speed and ETA now (or when the attempt ended).
    pub(crate) fn snapshot(&self) -> ProgressSnapshot {
        match &*lock_unpoisoned(&self.tracker) {
            Tracked::Live(t) => t.snapshot(),
            Tracked::Archived { snapshot, .. } => snapshot.clone(),
        }
    }

    /// The attempt's final event, once it has one.
    pub(crate) fn final_event(&self) -> Option<ProgressEvent> {
        match &*lock_unpoisoned(&self.tracker) {
            Tracked::Live(t) => t.final_event(),
            Tracked::Archived { replay, .. } => {
                replay.iter().rev().find(|e| e.kind.is_final()).cloned()
            }
        }
    }

    /// Keeps only the replay of a finished attempt. Subscribers already reading keep their own
    /// receivers (and so the buffer) until they finish.
    fn archive(&self) {
        let mut tracked = lock_unpoisoned(&self.tracker);
        if let Tracked::Live(t) = &*tracked
            && t.is_finished()
        {
            let (replay, _) = t.subscribe();
            let mut snapshot = t.snapshot();
            // Nothing moves any more.
            snapshot.bytes_per_sec = 0.0;
            snapshot.eta_secs = None;
            *tracked = Tracked::Archived { replay, snapshot };
        }
    }

    /// Why it was stopped, if it was.
    pub(crate) fn stop_reason(&self) -> Option<Stop> {
        *lock_unpoisoned(&self.stop)
    }

    /// Whether it was stopped by `pause` (and not cancelled since).
    pub(crate) fn paused(&self) -> bool {
        self.stop_reason() == Some(Stop::Pause)
    }

    /// Records why, then cancels. A cancel or shutdown overrides a pending pause.
    fn request_stop(&self, why: Stop) {
        {
            let mut stop = lock_unpoisoned(&self.stop);
            if stop.is_none() || why != Stop::Pause {
                *stop = Some(why);
            }
        }
        self.cancel.cancel();
    }

    /// Waits until the attempt has ended (at most `limit`); returns whether it has.
    pub(crate) async fn wait_ended(&self, limit: Duration) -> bool {
        let mut rx = self.ended.subscribe();
        tokio::time::timeout(limit, rx.wait_for(|ended| *ended))
            .await
            .is_ok()
    }

    /// Marks the attempt ended (its job's state now says how).
    pub(crate) fn end(&self) {
        self.ended.send_replace(true);
    }
}

/// One job.
#[derive(Debug)]
pub(crate) struct Job {
    pub(crate) id: JobId,
    pub(crate) operation: Operation,
    seq: u64,
    created_ms: u64,
    tracker_config: TrackerConfig,
    inner: Mutex<JobInner>,
}

#[derive(Debug)]
struct JobInner {
    phase: Phase,
    attempt: Arc<Attempt>,
    result: Option<Value>,
    error: Option<ErrorBody>,
    summary: Option<String>,
    updated_ms: u64,
    /// Event streams waiting for a paused job to resume.
    waiters: Vec<oneshot::Sender<Subscription>>,
}

/// An attempt with a subscription to its events taken before it ran.
#[derive(Debug)]
pub(crate) struct Subscription {
    pub(crate) attempt: Arc<Attempt>,
    pub(crate) replay: Vec<ProgressEvent>,
    pub(crate) rx: Option<tokio::sync::broadcast::Receiver<ProgressEvent>>,
}

impl Subscription {
    fn of(attempt: &Arc<Attempt>) -> Self {
        let (replay, rx) = attempt.subscribe();
        Self {
            attempt: attempt.clone(),
            replay,
            rx,
        }
    }
}

/// What a stream finds after a pause.
#[derive(Debug)]
pub(crate) enum AfterPause {
    /// The job was resumed (the subscription is to the new attempt).
    Resumed(Subscription),
    /// Still paused: this completes on resume, or closes if the job ends instead.
    Waiting(oneshot::Receiver<Subscription>),
    /// The job is over (cancelled while paused).
    Over,
}

/// How a finished attempt turned out.
#[derive(Debug)]
pub(crate) enum Finish {
    /// Success, with the job's result and a one-line summary.
    Done { result: Value, summary: String },
    /// Failure; a result may still describe what was found (a failed verification's report).
    Failed {
        error: ErrorBody,
        result: Option<Value>,
    },
    /// Stopped by cancel, pause or shutdown (the attempt's stop reason says which).
    Stopped,
}

impl Job {
    fn new(operation: Operation, seq: u64, tracker_config: TrackerConfig) -> Arc<Self> {
        let id = JobId::generate();
        let attempt = Attempt::new(&id, 1, tracker_config.clone());
        let now = unix_millis();
        Arc::new(Self {
            id,
            operation,
            seq,
            created_ms: now,
            tracker_config,
            inner: Mutex::new(JobInner {
                phase: Phase::Active,
                attempt,
                result: None,
                error: None,
                summary: None,
                updated_ms: now,
                waiters: Vec::new(),
            }),
        })
    }

    /// The current attempt.
    pub(crate) fn attempt(&self) -> Arc<Attempt> {
        self.lock().attempt.clone()
    }

    /// The current attempt with a subscription to its events.
    pub(crate) fn subscribe(&self) -> Subscription {
        Subscription::of(&self.lock().attempt)
    }

    /// For a stream that saw attempt `number` paused: the next attempt if there is one, else a
    /// way to wait for it. A resume subscribes every waiting stream before the new attempt
    /// starts, so none misses its first events.
    pub(crate) fn after_pause(&self, number: u32) -> AfterPause {
        let mut inner = self.lock();
        match inner.phase {
            Phase::Done | Phase::Failed | Phase::Cancelled => AfterPause::Over,
            _ if inner.attempt.number > number => {
                AfterPause::Resumed(Subscription::of(&inner.attempt))
            }
            _ => {
                let (tx, rx) = oneshot::channel();
                inner.waiters.push(tx);
                AfterPause::Waiting(rx)
            }
        }
    }

    /// Whether the job is a download.
    pub(crate) fn is_download(&self) -> bool {
        matches!(self.operation, Operation::Download(_))
    }

    /// The catalog entry a download job writes to.
    pub(crate) fn download_key(&self) -> Option<&CatalogKey> {
        match &self.operation {
            Operation::Download(d) => Some(&d.key),
            _ => None,
        }
    }

    /// Whether the job is over.
    pub(crate) fn is_final(&self) -> bool {
        matches!(
            self.lock().phase,
            Phase::Done | Phase::Failed | Phase::Cancelled
        )
    }

    /// Whether the job is over and was cancelled.
    pub(crate) fn is_cancelled(&self) -> bool {
        self.lock().phase == Phase::Cancelled
    }

    /// The job's result, once it has one.
    pub(crate) fn result(&self) -> Option<Value> {
        self.lock().result.clone()
    }

    /// The one-line summary of a finished catalog operation.
    pub(crate) fn summary(&self) -> Option<String> {
        self.lock().summary.clone()
    }

    /// The state as clients see it.
    pub(crate) fn view(&self) -> JobView {
        let (phase, attempt, result, error, updated_ms) = {
            let inner = self.lock();
            (
                inner.phase,
                inner.attempt.clone(),
                inner.result.clone(),
                inner.error.clone(),
                inner.updated_ms,
            )
        };
        let (state, queue_position) = match phase {
            Phase::Active if self.is_download() => live_state(&attempt),
            Phase::Active => (JobState::Running, None),
            Phase::Paused => (JobState::Paused, None),
            Phase::Done => (JobState::Done, None),
            Phase::Failed => (JobState::Failed, None),
            Phase::Cancelled => (JobState::Cancelled, None),
        };
        JobView {
            job_id: self.id.clone(),
            operation: self.operation.name().to_string(),
            model: self.operation.model(),
            state,
            attempt: attempt.number,
            queue_position,
            progress: self.is_download().then(|| attempt.snapshot()),
            result,
            error,
            created_at_ms: self.created_ms,
            updated_at_ms: updated_ms,
            sse_url: format!("/v1/jobs/{}/stream", self.id),
        }
    }

    /// Records how `attempt` ended, unless a newer attempt has replaced it. Returns whether the
    /// job is now over.
    pub(crate) fn finish(&self, attempt: &Arc<Attempt>, finish: Finish) -> bool {
        let mut inner = self.lock();
        if !Arc::ptr_eq(&inner.attempt, attempt) || inner.phase != Phase::Active {
            return false;
        }
        match finish {
            Finish::Done { result, summary } => {
                inner.phase = Phase::Done;
                inner.result = Some(result);
                inner.summary = Some(summary);
            }
            Finish::Failed { error, result } => {
                inner.phase = Phase::Failed;
                inner.summary = Some(format!("Failed: {}", error.message));
                inner.error = Some(error);
                inner.result = result;
            }
            Finish::Stopped => {
                inner.phase = if attempt.paused() {
                    Phase::Paused
                } else {
                    Phase::Cancelled
                };
            }
        }
        inner.updated_ms = unix_millis();
        inner.phase != Phase::Paused
    }

    /// Asks the running attempt to stop for `why`. A paused job cancelled (or shut down) is
    /// over at once.
    pub(crate) fn stop(&self, why: Stop) -> Result<Stopping, ApiError> {
        let mut inner = self.lock();
        match inner.phase {
            Phase::Active => {
                if !self.is_download() {
                    if why == Stop::Shutdown {
                        // Catalog operations are short and not cancellable: let them finish.
                        return Ok(Stopping::Nothing);
                    }
                    return Err(ApiError::invalid_state(format!(
                        "{} jobs cannot be cancelled or paused; they finish on their own",
                        self.operation.name()
                    )));
                }
                inner.attempt.request_stop(why);
                Ok(Stopping::Wait(inner.attempt.clone()))
            }
            Phase::Paused => match why {
                Stop::Pause => Ok(Stopping::Nothing),
                Stop::Cancel | Stop::Shutdown => {
                    inner.attempt.request_stop(why);
                    inner.phase = Phase::Cancelled;
                    inner.updated_ms = unix_millis();
                    // Waiting streams see their channel close and send the final event.
                    inner.waiters.clear();
                    let attempt = inner.attempt.clone();
                    drop(inner);
                    Ok(Stopping::CancelledWhilePaused(attempt))
                }
            },
            Phase::Cancelled if why != Stop::Pause => Ok(Stopping::Nothing),
            phase => Err(ApiError::invalid_state(format!(
                "job {} is already {}; there is nothing to {}",
                self.id,
                phase_name(phase),
                match why {
                    Stop::Pause => "pause",
                    _ => "cancel",
                }
            ))),
        }
    }

    /// Starts a new attempt of a paused job. `Ok(None)` when the job is not paused but still
    /// active (nothing to do); the attempt that is being paused, to wait for, as `Err(Some)`.
    pub(crate) fn resume(&self) -> Result<Resume, ApiError> {
        let mut inner = self.lock();
        match inner.phase {
            Phase::Paused => {
                let next = Attempt::new(
                    &self.id,
                    inner.attempt.number + 1,
                    self.tracker_config.clone(),
                );
                inner.attempt = next.clone();
                inner.phase = Phase::Active;
                inner.updated_ms = unix_millis();
                for waiter in inner.waiters.drain(..) {
                    let _ = waiter.send(Subscription::of(&next));
                }
                drop(inner);
                Ok(Resume::Started(next))
            }
            Phase::Active if inner.attempt.paused() => Ok(Resume::WaitFor(inner.attempt.clone())),
            Phase::Active => Ok(Resume::AlreadyRunning),
            phase => Err(ApiError::invalid_state(format!(
                "job {} is already {}; start a new download instead",
                self.id,
                phase_name(phase)
            ))),
        }
    }

    fn lock(&self) -> MutexGuard<'_, JobInner> {
        lock_unpoisoned(&self.inner)
    }
}

/// What `stop` did.
#[derive(Debug)]
pub(crate) enum Stopping {
    /// The attempt was told to stop; wait for it to end.
    Wait(Arc<Attempt>),
    /// A paused job is now cancelled (its last attempt had already ended).
    CancelledWhilePaused(Arc<Attempt>),
    /// Nothing to stop.
    Nothing,
}

/// What `resume` found.
#[derive(Debug)]
pub(crate) enum Resume {
    /// A new attempt; the caller runs it.
    Started(Arc<Attempt>),
    /// A pause is still winding down; wait for this attempt, then ask again.
    WaitFor(Arc<Attempt>),
    /// The job is running; nothing to do.
    AlreadyRunning,
}

fn phase_name(phase: Phase) -> &'static str {
    match phase {
        Phase::Active => "running",
        Phase::Paused => "paused",
        Phase::Done => "done",
        Phase::Failed => "failed",
        Phase::Cancelled => "cancelled",
    }
}

/// An active download is queued until its transfer starts (the `started` event), then running.
/// (Heartbeats flow while a job waits, so they say nothing about its state.)
fn live_state(attempt: &Attempt) -> (JobState, Option<usize>) {
    let (replay, _) = attempt.subscribe();
    let mut position = None;
    for event in &replay {
        match &event.kind {
            EventKind::Started { .. } => return (JobState::Running, None),
            EventKind::Queued { position: p } => position = Some(*p),
            _ => {}
        }
    }
    (JobState::Queued, position)
}

/// Every job the daemon knows, newest last.
#[derive(Debug)]
pub(crate) struct Jobs {
    registry: Mutex<Registry>,
    next_seq: AtomicU64,
    max_jobs: usize,
    max_finished: usize,
    tracker: TrackerConfig,
}

#[derive(Debug, Default)]
struct Registry {
    jobs: HashMap<JobId, Arc<Job>>,
    finished: VecDeque<JobId>,
}

impl Jobs {
    pub(crate) fn new(max_jobs: usize, max_finished: usize, tracker: TrackerConfig) -> Self {
        Self {
            registry: Mutex::default(),
            next_seq: AtomicU64::new(0),
            max_jobs: max_jobs.max(1),
            max_finished,
            tracker,
        }
    }

    /// Registers a new job for `operation`, refusing a download beyond the queue bound.
    pub(crate) fn create(&self, operation: Operation) -> Result<Arc<Job>, ApiError> {
        let seq = self.next_seq.fetch_add(1, Ordering::Relaxed);
        let job = Job::new(operation, seq, self.tracker.clone());
        let mut registry = lock_unpoisoned(&self.registry);
        if job.is_download() {
            let unfinished = registry
                .jobs
                .values()
                .filter(|j| j.is_download() && !j.is_final())
                .count();
            if unfinished >= self.max_jobs {
                return Err(ApiError::new(
                    axum::http::StatusCode::TOO_MANY_REQUESTS,
                    "queue_full",
                    format!(
                        "{unfinished} download jobs are queued, running or paused, the most this hive accepts (--max-jobs); wait for some to finish or cancel some, then retry"
                    ),
                ));
            }
        }
        registry.jobs.insert(job.id.clone(), job.clone());
        Ok(job)
    }

    /// A job by id.
    pub(crate) fn get(&self, id: &str) -> Option<Arc<Job>> {
        lock_unpoisoned(&self.registry)
            .jobs
            .get(&JobId::from(id))
            .cloned()
    }

    /// Every job, oldest first.
    pub(crate) fn list(&self) -> Vec<Arc<Job>> {
        let mut jobs: Vec<_> = lock_unpoisoned(&self.registry)
            .jobs
            .values()
            .cloned()
            .collect();
        jobs.sort_by_key(|j| j.seq);
        jobs
    }

    /// An unfinished (queued, running or paused) download job writing to `key`.
    pub(crate) fn downloading(&self, key: &CatalogKey) -> Option<Arc<Job>> {
        lock_unpoisoned(&self.registry)
            .jobs
            .values()
            .filter(|j| j.download_key() == Some(key) && !j.is_final())
            .min_by_key(|j| j.seq)
            .cloned()
    }

    /// Notes that `job` is over (its final event sent); the oldest finished jobs beyond the
    /// limit are forgotten.
    pub(crate) fn retire(&self, job: &Job) {
        job.attempt().archive();
        let mut registry = lock_unpoisoned(&self.registry);
        if registry.finished.contains(&job.id) {
            return;
        }
        registry.finished.push_back(job.id.clone());
        while registry.finished.len() > self.max_finished {
            if let Some(old) = registry.finished.pop_front() {
                registry.jobs.remove(&old);
            }
        }
    }
}

pub(crate) fn unix_millis() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis() as u64
}
