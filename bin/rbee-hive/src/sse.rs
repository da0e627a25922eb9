//! Server-Sent Events: one job's events (`/v1/jobs/{id}/stream`) and every download's
//! (`/v1/models/download/progress`).
//!
//! Each subscriber gets a small task that reads the job's broadcast and writes into a bounded
//! channel the response streams from. A slow reader makes its own broadcast receiver lag (older
//! progress events are skipped, noted with an SSE comment); the final event is never skipped.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::response::sse::{Event, KeepAlive, KeepAliveStream, Sse};
use rbee_artifact::{EventKind, ProgressEvent, human_bytes};
use serde_json::Value;
use tokio::sync::{broadcast, mpsc};
use tokio_stream::wrappers::ReceiverStream;

use crate::api::{JobEvent, PausedEvent, ResumedEvent};
use crate::feed::{FeedItem, feed_item};
use crate::jobs::{AfterPause, Attempt, Job, Subscription, unix_millis};
use crate::state::HiveState;

/// How long a stream waits for a finished attempt to record its outcome before sending the
/// final event without it.
const OUTCOME_WAIT: Duration = Duration::from_secs(10);

/// How long a job stream may outlive the start of shutdown.
const STREAM_GRACE: Duration = Duration::from_secs(1);

type EventStream = ReceiverStream<Result<Event, Infallible>>;

/// The SSE name of a job event: the event's own name, except the three final ones.
pub(crate) fn event_name(kind: &EventKind) -> &'static str {
    crate::api::FinalEvent::of(kind).map_or_else(|| kind.name(), crate::api::FinalEvent::name)
}

/// `GET /v1/jobs/{job_id}/stream`.
pub(crate) fn job_stream(state: &HiveState, job: Arc<Job>) -> Sse<KeepAliveStream<EventStream>> {
    let (tx, rx) = mpsc::channel(64);
    let end = state.streams_end().clone();
    tokio::spawn(async move {
        let out = Out(tx);
        // At shutdown every job is cancelled before `end` fires, so the stream ends on its own
        // with the final event; the delay only bounds a stream that would not.
        let ended = async {
            end.cancelled().await;
            tokio::time::sleep(STREAM_GRACE).await;
        };
        tokio::select! {
            () = pump_job(&job, &out) => {}
            () = out.0.closed() => {}
            () = ended => {}
        }
    });
    sse(state, ReceiverStream::new(rx))
}

/// `GET /v1/models/download/progress`.
pub(crate) fn downloads_stream(state: &HiveState) -> Sse<KeepAliveStream<EventStream>> {
    let (tx, rx) = mpsc::channel(256);
    // Subscribe before taking the snapshot, so nothing falls between the two.
    let mut feed = state.feed().subscribe();
    let snapshot: Vec<FeedItem> = state
        .jobs()
        .list()
        .into_iter()
        .filter(|job| job.is_download() && !job.is_final())
        .flat_map(|job| {
            let attempt = job.attempt();
            let model = job.operation.model().unwrap_or_default();
            let (replay, _) = attempt.subscribe();
            let mut started = false;
            replay
                .into_iter()
                .filter(|e| !e.kind.is_final())
                .filter_map(|e| feed_item(&e, &model, false, &mut started))
                .collect::<Vec<_>>()
        })
        .collect();
    let end = state.streams_end().clone();
    tokio::spawn(async move {
        let out = Out(tx);
        let pump = async {
            for item in snapshot {
                out.send(feed_event(&item)).await?;
            }
            loop {
                tokio::select! {
                    biased;
                    received = feed.recv() => match received {
                        Ok(item) => out.send(feed_event(&item)).await?,
                        Err(broadcast::error::RecvError::Lagged(n)) => out.send(skipped(n)).await?,
                        Err(broadcast::error::RecvError::Closed) => return Ok::<(), Gone>(()),
                    },
                    // Shutdown: pass on what is already published (the cancellations), then end.
                    () = end.cancelled() => {
                        while let Ok(item) = feed.try_recv() {
                            out.send(feed_event(&item)).await?;
                        }
                        return Ok(());
                    }
                }
            }
        };
        tokio::select! {
            _ = pump => {}
            () = out.0.closed() => {}
        }
    });
    sse(state, ReceiverStream::new(rx))
}

fn sse(state: &HiveState, stream: EventStream) -> Sse<KeepAliveStream<EventStream>> {
    Sse::new(stream).keep_alive(KeepAlive::new().interval(state.config().keep_alive))
}

/// The subscriber has gone.
struct Gone;

struct Out(mpsc::Sender<Result<Event, Infallible>>);

impl Out {
    async fn send(&self, event: Event) -> Result<(), Gone> {
        self.0.send(Ok(event)).await.map_err(|_| Gone)
    }
}

/// Streams the job's attempts: each one's events, then either the final event, or — when the
/// attempt was paused — a `paused` event, and on resume a `resumed` event and the next
/// attempt's events.
async fn pump_job(job: &Job, out: &Out) {
    let mut subscription = job.subscribe();
    loop {
        let attempt = subscription.attempt.clone();
        let Ok(Some(last)) = forward_attempt(subscription, out).await else {
            return;
        };
        // Let the attempt record its outcome (paused or cancelled, the result) first.
        attempt.wait_ended(OUTCOME_WAIT).await;
        if !(matches!(last.kind, EventKind::Cancelled { .. }) && attempt.paused()) {
            let _ = out.send(final_event(job, &attempt, &last)).await;
            return;
        }
        if out.send(paused_event(job, &attempt, &last)).await.is_err() {
            return;
        }
        let next = match job.after_pause(attempt.number) {
            AfterPause::Resumed(next) => Some(next),
            AfterPause::Waiting(resumed) => resumed.await.ok(),
            AfterPause::Over => None,
        };
        let Some(next) = next else {
            // Cancelled while paused (or shut down): the job ends here.
            if job.is_cancelled() {
                let _ = out.send(final_event(job, &attempt, &last)).await;
            }
            return;
        };
        if out.send(resumed_event(job, &next.attempt)).await.is_err() {
            return;
        }
        subscription = next;
    }
}

/// Forwards an attempt's events up to (not including) its final event, which it returns.
async fn forward_attempt(
    subscription: Subscription,
    out: &Out,
) -> Result<Option<ProgressEvent>, Gone> {
    let Subscription {
        attempt,
        replay,
        rx,
    } = subscription;
    for event in replay {
        if event.kind.is_final() {
            return Ok(Some(event));
        }
        out.send(job_event(&event, attempt.number, event.to_string(), None))
            .await?;
    }
    let Some(mut rx) = rx else { return Ok(None) };
    loop {
        match rx.recv().await {
            Ok(event) if event.kind.is_final() => return Ok(Some(event)),
            Ok(event) => {
                out.send(job_event(&event, attempt.number, event.to_string(), None))
                    .await?
            }
            Err(broadcast::error::RecvError::Lagged(n)) => out.send(skipped(n)).await?,
            Err(broadcast::error::RecvError::Closed) => return Ok(None),
        }
    }
}

fn final_event(job: &Job, attempt: &Attempt, last: &ProgressEvent) -> Event {
    // Catalog operations say what they did in their summary; downloads narrate their event.
    let message = job
        .summary()
        .filter(|_| !job.is_download())
        .unwrap_or_else(|| last.to_string());
    let result = job.result();
    job_event(last, attempt.number, message, result.as_ref())
}

fn job_event(
    event: &ProgressEvent,
    attempt: u32,
    message: String,
    result: Option<&Value>,
) -> Event {
    let data = JobEvent {
        event: event.clone(),
        attempt,
        message,
        result: result.cloned(),
    };
    Event::default()
        .event(event_name(&event.kind))
        .id(format!("{attempt}.{}", event.seq))
        .data(serde_json::to_string(&data).unwrap_or_else(|_| "{}".into()))
}

fn paused_event(job: &Job, attempt: &Attempt, last: &ProgressEvent) -> Event {
    let bytes_on_disk = match last.kind {
        EventKind::Cancelled { bytes_on_disk } => bytes_on_disk,
        _ => 0,
    };
    let data = PausedEvent {
        job_id: job.id.clone(),
        seq: last.seq,
        timestamp_ms: last.timestamp_ms,
        event: "paused".into(),
        bytes_on_disk,
        attempt: attempt.number,
        message: format!(
            "Paused; {} kept on disk; POST /v1/jobs/{}/resume continues",
            human_bytes(bytes_on_disk),
            job.id
        ),
    };
    Event::default()
        .event("paused")
        .id(format!("{}.{}", attempt.number, last.seq))
        .data(serde_json::to_string(&data).unwrap_or_else(|_| "{}".into()))
}

fn resumed_event(job: &Job, attempt: &Attempt) -> Event {
    let data = ResumedEvent {
        job_id: job.id.clone(),
        seq: 0,
        timestamp_ms: unix_millis(),
        event: "resumed".into(),
        attempt: attempt.number,
        message: format!("Resumed (attempt {})", attempt.number),
    };
    Event::default()
        .event("resumed")
        .id(format!("{}.0", attempt.number))
        .data(serde_json::to_string(&data).unwrap_or_else(|_| "{}".into()))
}

fn feed_event(item: &FeedItem) -> Event {
    Event::default().event(item.name).data(&*item.data)
}

fn skipped(n: u64) -> Event {
    Event::default().comment(format!("skipped {n} events (slow reader)"))
}
