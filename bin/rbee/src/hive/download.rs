//! A download as a daemon job: its event stream feeds the same progress renderer as embedded
//! mode; Ctrl-C cancels the remote job.

use std::time::{Duration, Instant};

use anyhow::Result;
use rbee_artifact::{Error, EventKind, ProgressEvent, human_bytes};
use rbee_hive::api::{InspectRequest, JobEvent, JobRequest, PausedEvent, ResumedEvent};
use rbee_hive::client::SseEvent;
use tokio::sync::mpsc;

use crate::args::{DownloadArgs, GlobalArgs};
use crate::commands;
use crate::render::{self, Mode, Update};
use crate::setup::{self, CliError, UsageError};

use super::{Final, Hive, lost_stream};

/// How long to wait for the daemon's final event after asking it to cancel.
const CANCEL_WAIT: Duration = Duration::from_secs(15);

pub(super) async fn download(hive: &Hive, global: &GlobalArgs, args: &DownloadArgs) -> Result<()> {
    for (set, flag) in [
        (args.dry_run, "--dry-run"),
        (args.connections.is_some(), "--connections"),
        (args.rate_limit.is_some(), "--rate-limit"),
        (args.hf_cache, "--hf-cache"),
        (args.no_xet, "--no-xet"),
        (args.ollama_store, "--ollama-store"),
        (args.ollama_registry.is_some(), "--ollama-registry"),
        (args.local_dir.is_some(), "--local-dir"),
        (args.max_cache_size.is_some(), "--max-cache-size"),
        (!args.mirrors.is_empty(), "--mirror"),
    ] {
        if set {
            return Err(UsageError::argument(format!(
                "{flag} is not available with --hive: the daemon's own settings and disk apply (see `rbee-hive --help`)"
            ))
            .into());
        }
    }
    let mut reference = setup::reference(args)?;
    crate::commands::refuse_estimate_flags(args, Some(&reference), "without --hive ")?;
    let mut notes = Vec::new();
    if crate::fit::asks_for_fit(&reference) {
        // The daemon judges the candidates on its own GPUs; its job then fetches the choice.
        let mut request = InspectRequest::new(reference.to_request_string());
        request.exclude = args.exclude.clone();
        args.estimate.set_in(&mut request)?;
        let report = hive
            .client
            .inspect(&request)
            .await
            .map_err(|e| hive.error(e))?;
        reference = report
            .reference
            .as_deref()
            .and_then(|r| r.parse().ok())
            .ok_or_else(|| {
                CliError::new(
                    "protocol",
                    "rbee-hive did not say which quantization fits; name one",
                )
            })?;
        notes = report.notes;
    }
    let job_id = hive
        .start_job(&JobRequest::ModelDownload {
            // The daemon fetches it: a signed URL goes whole (it shows and records it redacted).
            model: reference.to_request_string(),
            hive_id: None,
            include: args.include.clone(),
            exclude: args.exclude.clone(),
            offline: args.offline,
            refresh: args.refresh,
        })
        .await?;
    let started = Instant::now();
    let mut events = hive.stream(&job_id).await?;
    let (tx, rx) = mpsc::channel(1024);
    let renderer = tokio::spawn(render::render(
        Mode::choose(global.json, global.quiet),
        reference.to_string(),
        rx,
    ));
    for message in notes {
        let note = ProgressEvent {
            job_id: rbee_artifact::JobId::from(job_id.as_str()),
            seq: 0,
            timestamp_ms: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as u64),
            kind: EventKind::Message { message },
        };
        let _ = tx.send(Update::Event(note)).await;
    }
    let cancel = crate::signals::cancel_on_signals();
    let mut cancelling: Option<Instant> = None;
    let mut files = std::collections::HashSet::new();
    let last = loop {
        let next = tokio::select! {
            next = events.next() => next,
            () = cancel.cancelled(), if cancelling.is_none() => {
                cancelling = Some(Instant::now());
                hive.cancel(&job_id).await?;
                continue;
            }
            () = tokio::time::sleep(Duration::from_millis(500)), if cancelling.is_some() => {
                if cancelling.is_some_and(|t| t.elapsed() > CANCEL_WAIT) {
                    break None;
                }
                continue;
            }
        };
        match next.map_err(|e| hive.error(e)) {
            Ok(Some(event)) => {
                if let Some(progress) = progress_event(&event) {
                    for start in unseen_files(&progress, &mut files) {
                        let _ = tx.send(Update::Event(start)).await;
                    }
                    let update = if event.name == "paused" {
                        Update::Paused(progress)
                    } else {
                        Update::Event(progress)
                    };
                    let _ = tx.send(update).await;
                }
                if event.is_final() {
                    break Some(event);
                }
            }
            Ok(None) => break None,
            Err(e) if cancelling.is_some() => {
                tracing::debug!(error = %e, "the stream broke while cancelling");
                break None;
            }
            Err(e) => return Err(e),
        }
    };
    drop(tx);
    let seen = renderer.await.unwrap_or_default();
    let Some(last) = last else {
        if cancelling.is_some() {
            return Err(anyhow::Error::new(Error::Cancelled).context(format!(
                "job {job_id} on {} was asked to cancel",
                hive.client.base()
            )));
        }
        return Err(lost_stream(hive.base(), &job_id));
    };
    match Final::of(&last) {
        Final::Done(result) => {
            commands::print_ready(
                global,
                result["id"].as_str().unwrap_or_default(),
                result["size"].as_u64().unwrap_or(0),
                result["outcome"] == "already_ready",
                started,
                seen,
                std::path::Path::new(result["path"].as_str().unwrap_or_default()),
            );
            Ok(())
        }
        Final::Cancelled(bytes) => Err(anyhow::Error::new(Error::Cancelled)
            .context(format!("{} kept on the daemon's disk", human_bytes(bytes)))),
        Final::Error(e, _) => Err(e.into()),
    }
}

/// `file_started` events for files a progress event lists but the stream has not announced:
/// a stream opened after a file started reports it only in progress snapshots, and the
/// renderer draws a file's bar from its `file_started`.
fn unseen_files(
    event: &ProgressEvent,
    seen: &mut std::collections::HashSet<String>,
) -> Vec<ProgressEvent> {
    match &event.kind {
        EventKind::FileStarted { path, .. } => {
            seen.insert(path.clone());
            Vec::new()
        }
        EventKind::Progress(snapshot) | EventKind::Heartbeat(snapshot) => snapshot
            .files
            .iter()
            .filter(|f| seen.insert(f.path.clone()))
            .map(|f| ProgressEvent {
                kind: EventKind::FileStarted {
                    path: f.path.clone(),
                    size: (f.total > 0).then_some(f.total),
                    resumed_from: 0,
                },
                ..event.clone()
            })
            .collect(),
        _ => Vec::new(),
    }
}

/// The event for the renderer: the daemon's event as it is, or — for the daemon's own
/// `paused` and `resumed` — a line of narration.
fn progress_event(event: &SseEvent) -> Option<ProgressEvent> {
    let message = |job_id, seq, timestamp_ms, message| ProgressEvent {
        job_id,
        seq,
        timestamp_ms,
        kind: EventKind::Message { message },
    };
    match event.name.as_str() {
        "paused" => {
            let p: PausedEvent = event.json().ok()?;
            Some(message(p.job_id, p.seq, p.timestamp_ms, p.message))
        }
        "resumed" => {
            let r: ResumedEvent = event.json().ok()?;
            Some(message(r.job_id, r.seq, r.timestamp_ms, r.message))
        }
        _ => event.json::<JobEvent>().ok().map(|e| e.event),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn sse(name: &str, data: &str) -> SseEvent {
        SseEvent {
            name: name.into(),
            id: None,
            data: data.into(),
        }
    }

    #[test]
    fn events_parse_and_feed_the_renderer() {
        rbee_model_provisioner::register_references();
        let event = sse(
            "progress",
            "{\"job_id\":\"j\",\"seq\":3,\"timestamp_ms\":1,\"event\":\"progress\",\"bytes\":5,\"total\":10,\"percent\":50.0,\"bytes_per_sec\":1.0,\"eta_secs\":5.0,\"attempt\":1,\"message\":\"50%\"}",
        );
        let progress = progress_event(&event).unwrap();
        assert!(matches!(progress.kind, EventKind::Progress(ref s) if s.bytes == 5));
        let paused = sse(
            "paused",
            "{\"job_id\":\"j\",\"seq\":4,\"timestamp_ms\":1,\"event\":\"paused\",\"bytes_on_disk\":5,\"attempt\":1,\"message\":\"Paused\"}",
        );
        assert!(matches!(
            progress_event(&paused).unwrap().kind,
            EventKind::Message { ref message } if message == "Paused"
        ));
        let done = sse(
            "done",
            "{\"job_id\":\"j\",\"seq\":5,\"timestamp_ms\":1,\"event\":\"completed\",\"id\":\"x\",\"paths\":[],\"bytes\":5,\"attempt\":1,\"message\":\"Ready\",\"result\":{\"id\":\"x\"}}",
        );
        assert!(done.is_final());
        assert!(matches!(
            progress_event(&done).unwrap().kind,
            EventKind::Completed { .. }
        ));
        assert!(matches!(Final::of(&done), Final::Done(r) if r["id"] == "x"));
    }

    #[test]
    fn files_first_seen_in_progress_get_a_start_event() {
        rbee_model_provisioner::register_references();
        let mut seen = std::collections::HashSet::new();
        let progress: ProgressEvent = serde_json::from_value(json!({
            "job_id": "j", "seq": 3, "timestamp_ms": 1, "event": "progress",
            "bytes": 5, "total": 20, "percent": 25.0, "bytes_per_sec": 1.0, "eta_secs": 15.0,
            "files": [{"path": "a.gguf", "bytes": 5, "total": 10}, {"path": "b.gguf", "bytes": 0, "total": 10}]
        }))
        .unwrap();
        let started: ProgressEvent = serde_json::from_value(json!({
            "job_id": "j", "seq": 2, "timestamp_ms": 1, "event": "file_started",
            "path": "a.gguf", "size": 10, "resumed_from": 0
        }))
        .unwrap();
        assert!(unseen_files(&started, &mut seen).is_empty());
        let made = unseen_files(&progress, &mut seen);
        assert_eq!(made.len(), 1);
        assert!(
            matches!(&made[0].kind, EventKind::FileStarted { path, size: Some(10), .. } if path == "b.gguf")
        );
        assert!(unseen_files(&progress, &mut seen).is_empty());
    }
}
