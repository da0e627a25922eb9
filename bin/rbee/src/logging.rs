//! Logs on stderr, coloured only where colour is wanted, and the download engine's retry
//! records turned into notes for the progress display ("503 from huggingface.co, retrying in
//! 2 s (attempt 2 of 6)"): the requests that resolve a reference run before there is a file
//! to report on, so the engine logs them instead of sending events.

use std::sync::Mutex;

use tokio::sync::mpsc;
use tracing::field::{Field, Visit};
use tracing_subscriber::Layer;
use tracing_subscriber::filter::filter_fn;
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::util::SubscriberInitExt;

/// Retry notes not yet taken by a download.
static NOTES: Mutex<Option<mpsc::UnboundedReceiver<String>>> = Mutex::new(None);

/// Installs the logger: `verbose` picks the level (RUST_LOG overrides), `color` the ANSI codes.
/// Without `-v`, retry records become notes (see [`take_notes`]) rather than log lines.
pub(crate) fn init(verbose: u8, color: bool) {
    let default = match verbose {
        0 => "warn",
        1 => "info,rbee=debug",
        _ => "debug",
    };
    let filter = rbee_cli_support::log_filter(default);
    let fmt = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(color)
        .without_time()
        .with_filter(filter);
    let notes = (verbose == 0).then(|| {
        let (tx, rx) = mpsc::unbounded_channel();
        *rbee_artifact::lock_unpoisoned(&NOTES) = Some(rx);
        RetryNotes { tx }.with_filter(filter_fn(|m| m.target() == rbee_transfer::RETRY_LOG_TARGET))
    });
    let _ = tracing_subscriber::registry()
        .with(fmt)
        .with(notes)
        .try_init();
}

/// The retry notes logged from now on, for the one download this process runs.
pub(crate) fn take_notes() -> Option<mpsc::UnboundedReceiver<String>> {
    rbee_artifact::lock_unpoisoned(&NOTES).take()
}

struct RetryNotes {
    tx: mpsc::UnboundedSender<String>,
}

impl<S: tracing::Subscriber> Layer<S> for RetryNotes {
    fn on_event(&self, event: &tracing::Event<'_>, _: Context<'_, S>) {
        let mut retry = RetryRecord::default();
        event.record(&mut retry);
        let _ = self.tx.send(retry.note());
    }
}

/// The fields of the engine's retry record.
#[derive(Debug, Default)]
struct RetryRecord {
    host: String,
    status: u64,
    error: String,
    attempt: u64,
    of: u64,
    delay_ms: u64,
}

impl RetryRecord {
    fn note(&self) -> String {
        let what = if self.status != 0 {
            format!("{} from {}", self.status, self.host)
        } else if self.error.is_empty() {
            format!("cannot reach {}", self.host)
        } else {
            format!("cannot reach {} ({})", self.host, self.error)
        };
        format!(
            "{what}, retrying in {} (attempt {} of {})",
            wait(self.delay_ms),
            self.attempt,
            self.of
        )
    }
}

/// `2 s`, `250 ms`.
pub(crate) fn wait(ms: u64) -> String {
    if ms >= 1000 {
        format!("{} s", (ms + 500) / 1000)
    } else {
        format!("{ms} ms")
    }
}

impl Visit for RetryRecord {
    fn record_u64(&mut self, field: &Field, value: u64) {
        match field.name() {
            "status" => self.status = value,
            "attempt" => self.attempt = value,
            "of" => self.of = value,
            "delay_ms" => self.delay_ms = value,
            _ => {}
        }
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        match field.name() {
            "host" => self.host = value.to_string(),
            "error" => self.error = value.to_string(),
            _ => {}
        }
    }

    fn record_debug(&mut self, _: &Field, _: &dyn std::fmt::Debug) {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notes_read_like_a_person_would_say_them() {
        let r = RetryRecord {
            host: "huggingface.co".into(),
            status: 503,
            attempt: 2,
            of: 6,
            delay_ms: 1800,
            ..Default::default()
        };
        assert_eq!(
            r.note(),
            "503 from huggingface.co, retrying in 2 s (attempt 2 of 6)"
        );
        let r = RetryRecord {
            host: "127.0.0.1".into(),
            error: "connection refused".into(),
            attempt: 3,
            of: 6,
            delay_ms: 400,
            ..Default::default()
        };
        assert_eq!(
            r.note(),
            "cannot reach 127.0.0.1 (connection refused), retrying in 400 ms (attempt 3 of 6)"
        );
    }
}
