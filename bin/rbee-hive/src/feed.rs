//! The feed of every download (`GET /v1/models/download/progress`): the events of each download
//! job's attempts, reduced to `queued`, `started`, `progress`, `complete`, `error`, `cancelled`
//! and `paused`, with the model and download id on each.

use std::sync::Arc;

use rbee_artifact::{EventKind, ProgressEvent};
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
            let mut started = false;
            for event in replay {
                if feed.forward(&event, &model, &attempt, &mut started) {
                    return;
                }
            }
            let Some(mut rx) = rx else { return };
            loop {
                match rx.recv().await {
                    Ok(event) => {
                        if feed.forward(&event, &model, &attempt, &mut started) {
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
    fn forward(
        &self,
        event: &ProgressEvent,
        model: &str,
        attempt: &Attempt,
        started: &mut bool,
    ) -> bool {
        if let Some(item) = feed_item(event, model, attempt.paused(), started) {
            self.publish(item);
        }
        event.kind.is_final()
    }
}

/// The feed's version of a job event, or `None` for kinds the feed leaves out. `started` says
/// whether the attempt's `started` event has passed (and is set by it): the heartbeats of a job
/// still waiting in the queue are not progress.
pub(crate) fn feed_item(
    event: &ProgressEvent,
    model: &str,
    paused: bool,
    started: &mut bool,
) -> Option<FeedItem> {
    let name = match &event.kind {
        EventKind::Queued { .. } => "queued",
        EventKind::Started { .. } => {
            *started = true;
            "started"
        }
        EventKind::Progress(_) | EventKind::Heartbeat(_) if !*started => return None,
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
            event.to_string()
        }
        .into(),
    );
    Some(FeedItem {
        name,
        data: data.to_string().into(),
    })
}

#[cfg(test)]
mod tests {
    use rbee_artifact::{DownloadTracker, JobId};

    use super::*;

    #[tokio::test]
    async fn the_feed_names_events_and_skips_heartbeats_of_queued_jobs() {
        let tracker = DownloadTracker::new(JobId::from("job-1"));
        let (_, mut rx) = tracker.subscribe();
        tracker.queued(0);
        let beat = tracker.spawn_heartbeat(std::time::Duration::from_millis(1));
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        tracker.started("hf:a/b", 10, 1);
        tracker.completed("hf--a--b--Q4_K_M", vec![], 10);
        drop(beat);
        let mut started = false;
        let mut names = Vec::new();
        while let Ok(event) = rx.try_recv() {
            if let Some(item) = feed_item(&event, "hf:a/b", false, &mut started) {
                let data: serde_json::Value = serde_json::from_str(&item.data).unwrap();
                assert_eq!(data["download_id"], "job-1");
                assert_eq!(data["model"], "hf:a/b");
                names.push(item.name);
            }
        }
        assert_eq!(names, ["queued", "started", "complete"]);
    }
}
