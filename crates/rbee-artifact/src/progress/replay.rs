//! What a late subscriber needs to draw a job as it is now, and the numbering of its events.

use super::event::{EventKind, ProgressEvent};

#[derive(Debug, Default)]
pub(super) struct ReplayState {
    seq: u64,
    queued: Option<ProgressEvent>,
    started: Option<ProgressEvent>,
    last_progress: Option<ProgressEvent>,
    final_event: Option<ProgressEvent>,
}

impl ReplayState {
    /// The sequence number of the next event.
    pub(super) fn next_seq(&mut self) -> u64 {
        self.seq += 1;
        self.seq
    }

    /// Keeps what a late subscriber needs of `event`.
    pub(super) fn record(&mut self, event: &ProgressEvent) {
        let slot = match &event.kind {
            EventKind::Queued { .. } => &mut self.queued,
            EventKind::Started { .. } => &mut self.started,
            EventKind::Progress(_) | EventKind::Heartbeat(_) => &mut self.last_progress,
            k if k.is_final() => &mut self.final_event,
            _ => return,
        };
        *slot = Some(event.clone());
    }

    /// The events that describe the job so far, oldest first.
    pub(super) fn replay(&self) -> Vec<ProgressEvent> {
        [
            &self.queued,
            &self.started,
            &self.last_progress,
            &self.final_event,
        ]
        .into_iter()
        .flatten()
        .cloned()
        .collect()
    }

    /// The final event, once there is one.
    pub(super) fn final_event(&self) -> Option<&ProgressEvent> {
        self.final_event.as_ref()
    }
}
