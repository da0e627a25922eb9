//! The feed of every download (`GET /v1/models/download/progress`): the events of each download
//! job's attempts, reduced to `queued`, `started`, `progress`, `complete`, `error`, `cancelled`
//! and `paused`, with the model and download id on each.

use std::sync::Arc;

use rbee_artifact_catalog::{EventKind, ProgressEvent};
use tokio::sync::broadcast;

use crate::jobs::Attempt;

/// One feed event, serialized once for every subscriber.
#[derive(Debug, Clone)]
pub(crate) struct FeedItem {
    /// The SSE event name.
    pub(crate) name: &'static str,
    /// The SSE data (JSON).
    pub(crate) data: Arc<str>,
}

/// The broadcast behind the feed.
#[derive(Debug)]
pub(crate) struct Feed {
    tx: broadcast::Sender<FeedItem>,
}

impl Feed {
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            tx: broadcast::Sender::new(capacity.max(16)),
        }
    }

    pub(crate) fn subscribe(&self) -> broadcast::Receiver<FeedItem> {
        self.tx.subscribe()
    }

    /// Publishes one event (nobody listening is fine).
    pub(crate) fn publish(&self, item: FeedItem) {
        let _ = self.tx.send(item);
    }

    /// Forwards `attempt`'s events to the feed until its final event. Subscribes before
    /// returning, so nothing the attempt emits afterwards is missed.
    pub(crate) fn follow(self: &Arc<Self>, model: String, attempt: Arc<Attempt>) {
        let (replay, rx) = attempt.subscribe();
        let feed = self.clone();
        tokio::spawn(async move {
            for event in replay {
                if feed.forward(&event, &model, &attempt) {
                    return;
                }
            }
            let Some(mut rx) = rx else { return };
            loop {
                match rx.recv().await {
                    Ok(event) => {
                        if feed.forward(&event, &model, &attempt) {
                            return;
                        }
                    }
                    // Missing a few progress events is harmless; the final one is never lost.
                    Err(broadcast::error::RecvError::Lagged(_)) => continue,
                    Err(broadcast::error::RecvError::Closed) => return,
                }
            }
        });
    }

    /// Publishes `event` if the feed carries its kind; returns whether it was final.
    fn forward(&self, event: &ProgressEvent, model: &str, attempt: &Attempt) -> bool {
        if let Some(item) = feed_item(event, model, attempt.paused()) {
            self.publish(item);
        }
        event.kind.is_final()
    }
}

/// The feed's version of a job event, or `None` for kinds the feed leaves out.
pub(crate) fn feed_item(event: &ProgressEvent, model: &str, paused: bool) -> Option<FeedItem> {
    let name = match &event.kind {
        EventKind::Queued { .. } => "queued",
        EventKind::Started { .. } => "started",
        EventKind::Progress(_) | EventKind::Heartbeat(_) => "progress",
        EventKind::Completed { .. } => "complete",
        EventKind::Failed { .. } => "error",
        EventKind::Cancelled { .. } if paused => "paused",
        EventKind::Cancelled { .. } => "cancelled",
        _ => return None,
    };
    let mut data = serde_json::to_value(event).ok()?;
    let obj = data.as_object_mut()?;
    if name == "paused" {
        obj.insert("event".into(), "paused".into());
    }
    obj.insert("download_id".into(), event.job_id.0.clone().into());
    obj.insert("model".into(), model.into());
    obj.insert(
        "message".into(),
        if name == "paused" {
            "Paused; partial files kept".to_string()
        } else {
            event.narration()
        }
        .into(),
    );
    Some(FeedItem {
        name,
        data: data.to_string().into(),
    })
}
