//! How an event reads to people: one line per event, for the CLI's plain output and log lines,
//! and the daemon's narration. The events themselves carry numbers, never prose.

use std::fmt;

use super::event::{EventKind, ProgressEvent};
use crate::human::{human_bytes, human_duration};

impl fmt::Display for ProgressEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            EventKind::Queued { position: 0 } => f.write_str("Queued: next in line"),
            EventKind::Queued { position } => write!(f, "Queued: {position} ahead"),
            EventKind::Started {
                artifact,
                total_bytes,
                files,
            } => write!(
                f,
                "Downloading {artifact}: {files} file{}, {}",
                if *files == 1 { "" } else { "s" },
                human_bytes(*total_bytes)
            ),
            EventKind::FileStarted {
                path,
                resumed_from: 0,
                ..
            } => write!(f, "Fetching {path}"),
            EventKind::FileStarted {
                path, resumed_from, ..
            } => write!(f, "Resuming {path} from {}", human_bytes(*resumed_from)),
            EventKind::Progress(s) | EventKind::Heartbeat(s) => {
                match s.percent {
                    Some(p) => write!(
                        f,
                        "{p:.1}% ({} of {})",
                        human_bytes(s.bytes),
                        human_bytes(s.total)
                    )?,
                    None => f.write_str(&human_bytes(s.bytes))?,
                }
                write!(f, " at {}/s", human_bytes(s.bytes_per_sec as u64))?;
                if let Some(eta) = s.eta_secs {
                    write!(f, ", ETA {}", human_duration(eta))?;
                }
                Ok(())
            }
            EventKind::Retrying {
                path,
                attempt,
                delay_ms,
                reason,
            } => write!(f, "{path}: {reason}; attempt {attempt} in {delay_ms} ms"),
            EventKind::FileReused { path, source } => write!(f, "{path}: reused from {source}"),
            EventKind::Verifying { path } => write!(f, "Verifying {path}"),
            EventKind::FileDone { path, bytes } => {
                write!(f, "{path}: done ({})", human_bytes(*bytes))
            }
            EventKind::Message { message } => f.write_str(message),
            EventKind::Completed { id, bytes, .. } => {
                write!(f, "Ready: {id} ({})", human_bytes(*bytes))
            }
            EventKind::Failed { error, .. } => write!(f, "Failed: {error}"),
            EventKind::Cancelled { bytes_on_disk } => write!(
                f,
                "Cancelled; {} kept on disk for a later resume",
                human_bytes(*bytes_on_disk)
            ),
        }
    }
}
