//! `rbee --hive URL model …`: the same commands through a rbee-hive daemon. Downloads become
//! daemon jobs whose Server-Sent Events feed the same progress renderer as embedded mode;
//! `list`, `info`, `inspect`, `verify` and `rm` use the daemon's routes and print exactly like embedded
//! mode. Ctrl-C cancels the remote job (its partial files stay on the daemon's disk).

use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use rbee_artifact::{
    ArtifactRef, CatalogKey, Error, EventKind, ProgressEvent, Secret, human_bytes,
};
use rbee_catalog::{CatalogEntry, Listing, Removed, VerifyReport};
use rbee_hive::api::{
    FinalEvent, InspectRequest, JobEvent, JobRequest, JobView, PausedEvent, ResumedEvent,
};
use rbee_hive::client::{ClientError, HiveClient, SseEvent};
use reqwest::Url;
use serde_json::{Value, json};
use tokio::sync::mpsc;

use crate::args::{DownloadArgs, GlobalArgs, ModelCommand, PsAction};
use crate::commands;
use crate::failure::RemoteError;
use crate::render::{self, JSON_VERSION, Mode, Update};
use crate::setup::{self, CliError, UsageError};

/// How long to wait for the daemon's final event after asking it to cancel.
const CANCEL_WAIT: Duration = Duration::from_secs(15);

/// Runs `command` through the daemon at `url`.
pub(crate) async fn run(global: &GlobalArgs, url: &str, command: &ModelCommand) -> Result<()> {
    let from_env = hive_from_env();
    if global.cache_dir.is_some() {
        let why = if from_env {
            "; RBEE_HIVE_URL is set, unset it to use a local catalog"
        } else {
            ""
        };
        return Err(UsageError::argument(format!(
            "--cache-dir does not apply with --hive: the daemon uses its own catalog{why}"
        ))
        .into());
    }
    if from_env && !global.json && !global.quiet {
        let ignored = if std::env::var_os("RBEE_CACHE_DIR").is_some_and(|v| !v.is_empty()) {
            " (RBEE_CACHE_DIR is ignored)"
        } else {
            ""
        };
        eprintln!(
            "Working through rbee-hive at {url} (RBEE_HIVE_URL); its catalog is used{ignored}"
        );
    }
    let hive = Hive::new(url, global.hive_token.as_deref())?;
    match command {
        ModelCommand::Download(args) => download(&hive, global, args).await,
        // The shared store is reached directly, not through the daemon.
        ModelCommand::List(args) if args.shared => crate::shared::list(global).await,
        ModelCommand::Rm(args) if args.shared => crate::shared::rm(global, &args.models).await,
        ModelCommand::Push { .. } => Err(UsageError::argument(
            "rbee model push publishes from this machine's catalog; run it without --hive (on the hive's machine, with its --cache-dir)",
        )
        .into()),
        ModelCommand::List(_) => {
            let (root, listing) = hive.listing().await?;
            commands::print_listing(global, &root, &listing)
        }
        // The daemon reads the headers with its own tokens and judges the fit on its GPUs.
        ModelCommand::Inspect(args) => {
            let request = crate::inspect::hive_request(args)?;
            let report = hive
                .client
                .inspect(&request)
                .await
                .map_err(|e| hive.error(e))?;
            crate::inspect::print_report(global, args, &report)
        }
        ModelCommand::Info { model } => {
            let entry = hive.model(model).await?;
            commands::print_info(global, &entry)
        }
        ModelCommand::Verify { models } => verify(&hive, global, models).await,
        ModelCommand::Rm(args) => {
            let mut removed = Vec::new();
            for model in &args.models {
                let r: Removed = match hive.client.delete_model(&model_name(model)?).await {
                    Ok(removed) => removed,
                    Err(e) => return Err(hive.explain_busy(hive.error(e), model).await),
                };
                commands::print_removed(global, &r);
                removed.push(r);
            }
            commands::finish_rm(global, &removed)
        }
        ModelCommand::Tidy(cmd) => Err(UsageError::argument(format!(
            "`rbee model {}` works on a local catalog and is not available with --hive; the daemon applies its own --max-cache-size",
            cmd.name()
        ))
        .into()),
        ModelCommand::Import { .. } => Err(UsageError::argument(
            "`rbee model import` fills a local catalog and is not available with --hive",
        )
        .into()),
        ModelCommand::Du => Err(UsageError::argument(
            "`rbee model du` measures a local catalog and is not available with --hive; `rbee --hive URL ls` shows sizes",
        )
        .into()),
    }
}

/// Whether the daemon was named by `RBEE_HIVE_URL` rather than `--hive`.
fn hive_from_env() -> bool {
    std::env::var_os("RBEE_HIVE_URL").is_some_and(|v| !v.is_empty())
        && !std::env::args().any(|a| a == "--hive" || a.starts_with("--hive="))
}

/// `rbee ps [cancel|pause|resume JOB]`: the daemon's jobs, or one of them changed.
pub(crate) async fn ps(global: &GlobalArgs, url: &str, action: Option<&PsAction>) -> Result<()> {
    let hive = Hive::new(url, global.hive_token.as_deref())?;
    let Some(action) = action else {
        let jobs = hive.client.jobs().await.map_err(|e| hive.error(e))?.jobs;
        if global.json {
            let doc = json!({"version": JSON_VERSION, "jobs": jobs});
            out!("{}", serde_json::to_string_pretty(&doc)?);
            return Ok(());
        }
        if jobs.is_empty() {
            eprintln!("rbee-hive at {} has no jobs", hive.client.base());
            return Ok(());
        }
        let rows: Vec<[String; 4]> = jobs.iter().map(job_row).collect();
        let id_width = rows.iter().map(|r| r[0].len()).max().unwrap_or(0).max(3);
        out!(
            "{:<id_width$}  {:<10} {:>22}  MODEL",
            "JOB",
            "STATE",
            "PROGRESS"
        );
        for [id, state, progress, model] in rows {
            out!("{id:<id_width$}  {state:<10} {progress:>22}  {model}");
        }
        return Ok(());
    };
    let value = match action {
        PsAction::Cancel { job } => hive.client.cancel(job).await,
        PsAction::Pause { job } => hive.client.pause(job).await,
        PsAction::Resume { job } => hive.client.resume(job).await,
    }
    .map_err(|e| hive.error(e))?;
    if global.json {
        let doc = json!({"version": JSON_VERSION, "job": value});
        out!("{}", serde_json::to_string_pretty(&doc)?);
    } else {
        let [id, state, progress, model] = job_row(&value);
        out!("{id}: {state} {progress} {model}");
    }
    Ok(())
}

/// A job's state as table cells: id, state, progress, model.
fn job_row(job: &JobView) -> [String; 4] {
    let bytes = job.progress.as_ref().map_or(0, |p| p.bytes);
    let percent = job
        .progress
        .as_ref()
        .and_then(|p| p.percent.map(|pct| (pct, p.total)));
    let progress = match (percent, job.operation.as_str()) {
        (Some((pct, total)), _) => format!("{pct:.0}% of {}", human_bytes(total)),
        (None, "model_download") if bytes > 0 => human_bytes(bytes),
        _ => "-".into(),
    };
    [
        job.job_id.0.clone(),
        job.state.as_str().to_string(),
        progress,
        job.model.clone().unwrap_or_default(),
    ]
}

/// A daemon, reached through its client; errors become the CLI's errors.
struct Hive {
    client: HiveClient,
}

impl Hive {
    fn new(url: &str, token: Option<&str>) -> Result<Self> {
        let base = Url::parse(url.trim()).map_err(|e| {
            UsageError::argument(format!(
                "--hive {url} is not a URL ({e}); write e.g. http://127.0.0.1:8600"
            ))
        })?;
        if !matches!(base.scheme(), "http" | "https") || base.cannot_be_a_base() {
            return Err(UsageError::argument(format!(
                "--hive {url} must be an http:// or https:// URL, e.g. http://127.0.0.1:8600"
            ))
            .into());
        }
        let client = HiveClient::new(base, token.and_then(Secret::new))
            .context("building the HTTP client")?;
        Ok(Self { client })
    }

    /// The base URL as typed in commands (no trailing `/`).
    fn base(&self) -> &str {
        self.client.base().as_str().trim_end_matches('/')
    }

    /// The client's error as the CLI reports it: the daemon's answer as a [`RemoteError`]
    /// (with what to do when it is about this side's token), an unreachable daemon with how
    /// to start one.
    fn error(&self, e: ClientError) -> anyhow::Error {
        match e {
            ClientError::Api { body, .. } => {
                let mut e = RemoteError {
                    code: body.code,
                    message: body.message,
                };
                if e.code == "unauthorized" {
                    let what = if self.client.has_token() {
                        "the token given was refused; check --hive-token / RBEE_HIVE_TOKEN"
                    } else {
                        "pass the daemon's token with --hive-token TOKEN or RBEE_HIVE_TOKEN"
                    };
                    e.message = format!("{} ({what})", e.message);
                }
                e.into()
            }
            ClientError::Unreachable { base, cause } => CliError::new(
                "hive_unreachable",
                format!(
                    "cannot reach rbee-hive at {base}: {cause}; is it running? (start it with `rbee-hive`, or leave out --hive / RBEE_HIVE_URL to work in this process)"
                ),
            )
            .into(),
            other => other.into(),
        }
    }

    /// A refused removal of a model a job is downloading says which `rbee ps cancel` frees it.
    async fn explain_busy(&self, e: anyhow::Error, model: &str) -> anyhow::Error {
        if e.downcast_ref::<RemoteError>()
            .is_none_or(|r| r.code != "busy")
        {
            return e;
        }
        let key = match CatalogKey::from_id(model) {
            Some(key) => key,
            None => match setup::parse_reference(model) {
                Ok(r) => CatalogKey::of(&r),
                Err(_) => return e,
            },
        };
        let Ok(jobs) = self.client.jobs().await else {
            return e;
        };
        let job = jobs.jobs.iter().find(|j| {
            j.operation == "model_download"
                && !j.state.is_final()
                && j.model
                    .as_deref()
                    .and_then(|m| m.parse::<ArtifactRef>().ok())
                    .is_some_and(|r| CatalogKey::of(&r) == key)
        });
        match job.map(|j| &j.job_id.0) {
            Some(id) => RemoteError {
                code: "busy".into(),
                message: format!(
                    "`{model}` is being downloaded by job {id}; cancel it first with `rbee --hive {} ps cancel {id}`, then remove the model",
                    self.base()
                ),
            }
            .into(),
            None => e,
        }
    }

    async fn listing(&self) -> Result<(std::path::PathBuf, Vec<Listing>)> {
        let list = self.client.models().await.map_err(|e| self.error(e))?;
        let listing = list.models.into_iter().map(|m| m.into_listing()).collect();
        Ok((list.root, listing))
    }

    async fn model(&self, model: &str) -> Result<CatalogEntry> {
        let view = self
            .client
            .model(&model_name(model)?)
            .await
            .map_err(|e| self.error(e))?;
        Ok(view.into_entry())
    }

    /// Starts a job and returns its id.
    async fn start_job(&self, request: &JobRequest) -> Result<String> {
        let job = self
            .client
            .start_job(request)
            .await
            .map_err(|e| self.error(e))?;
        Ok(job.job_id.0)
    }

    /// Opens a job's event stream.
    async fn stream(&self, job_id: &str) -> Result<rbee_hive::client::EventStream> {
        self.client
            .job_events(job_id)
            .await
            .map_err(|e| self.error(e))
    }

    async fn cancel(&self, job_id: &str) -> Result<()> {
        match self.client.cancel(job_id).await {
            Ok(_) => Ok(()),
            // It finished meanwhile: its final event says how.
            Err(e) if e.code() == Some("invalid_state") => Ok(()),
            Err(e) => Err(self.error(e)),
        }
    }

    /// Runs a catalog job to its final event; returns it.
    async fn run_job(&self, request: &JobRequest) -> Result<Final> {
        let job_id = self.start_job(request).await?;
        let mut events = self.stream(&job_id).await?;
        loop {
            match events.next().await.map_err(|e| self.error(e))? {
                Some(e) if e.is_final() => return Ok(Final::of(&e)),
                Some(_) => {}
                None => return Err(lost_stream(self.base(), &job_id)),
            }
        }
    }
}

/// A model named by id or by reference, as the daemon's routes take it (a relative `file:`
/// path is made absolute here, where it was typed).
fn model_name(model: &str) -> Result<String> {
    Ok(match CatalogKey::from_id(model) {
        Some(_) => model.to_string(),
        None => setup::parse_reference(model)?.to_string(),
    })
}

fn lost_stream(base: &str, job_id: &str) -> anyhow::Error {
    CliError::new(
        "hive_stream_lost",
        format!(
            "lost the event stream of job {job_id} before it finished (did rbee-hive stop?); see it with `rbee --hive {base} ps`"
        ),
    )
    .into()
}

async fn download(hive: &Hive, global: &GlobalArgs, args: &DownloadArgs) -> Result<()> {
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

async fn verify(hive: &Hive, global: &GlobalArgs, models: &[String]) -> Result<()> {
    let ids = if models.is_empty() {
        commands::verifiable(hive.listing().await?.1)
    } else {
        let mut ids = Vec::new();
        for model in models {
            ids.push(hive.model(model).await?.record.id);
        }
        ids
    };
    let mut reports = Vec::new();
    for id in ids {
        let report = match hive
            .run_job(&JobRequest::ModelVerify {
                model: id,
                hive_id: None,
            })
            .await?
        {
            Final::Done(result) | Final::Error(_, Some(result)) => {
                serde_json::from_value::<VerifyReport>(result)
                    .context("rbee-hive sent a verification report this rbee does not understand")?
            }
            Final::Error(e, None) => return Err(e.into()),
            Final::Cancelled(_) => return Err(Error::Cancelled.into()),
        };
        commands::print_verified(global, &report);
        reports.push(report);
    }
    commands::finish_verify(global, &reports)
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

/// How a job ended.
enum Final {
    /// Its result.
    Done(Value),
    /// Cancelled, with the bytes kept.
    Cancelled(u64),
    /// Failed; some failures still carry a result (a verification report).
    Error(RemoteError, Option<Value>),
}

impl Final {
    fn of(event: &SseEvent) -> Self {
        let data: Value = event.json().unwrap_or(Value::Null);
        let result = data.get("result").cloned();
        match FinalEvent::named(&event.name) {
            Some(FinalEvent::Done) => Final::Done(result.unwrap_or(Value::Null)),
            Some(FinalEvent::Cancelled) => {
                Final::Cancelled(data["bytes_on_disk"].as_u64().unwrap_or(0))
            }
            _ => Final::Error(
                RemoteError {
                    code: data["code"].as_str().unwrap_or("error").to_string(),
                    message: data["error"]
                        .as_str()
                        .unwrap_or("the job failed")
                        .to_string(),
                },
                result,
            ),
        }
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

    #[test]
    fn models_are_named_by_id_or_canonical_reference() {
        rbee_model_provisioner::register_references();
        assert_eq!(
            model_name("hf:TheBloke/X-GGUF:q4_k_m").unwrap(),
            "hf:TheBloke/X-GGUF:Q4_K_M"
        );
        assert_eq!(
            model_name("hf--TheBloke--X-GGUF--Q4_K_M").unwrap(),
            "hf--TheBloke--X-GGUF--Q4_K_M"
        );
        let prefixed = Hive::new("https://proxy.example/hive", None).unwrap();
        assert_eq!(prefixed.base(), "https://proxy.example/hive");
        assert!(Hive::new("127.0.0.1:8600", None).is_err());
        assert!(Hive::new("ftp://x", None).is_err());
    }
}
