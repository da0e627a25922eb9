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
//!
//! # Files
//! - `event.rs`: the events and snapshots, as data (serialized for JSON lines and SSE).
//! - `tracker.rs`: [`DownloadTracker`] and [`FileProgress`], which count and broadcast.
//! - `throttle.rs`, `speed.rs`, `replay.rs`: the throttle, the speed window and what a late
//!   subscriber is sent first.
//! - `display.rs`: how an event reads to people (`Display`).

mod display;
mod event;
mod replay;
mod speed;
mod throttle;
mod tracker;

#[cfg(test)]
mod tests;

pub use event::{EventKind, FileSnapshot, JobId, ProgressEvent, ProgressSnapshot};
pub use tracker::{DownloadTracker, FileProgress, HeartbeatHandle, TrackerConfig};
