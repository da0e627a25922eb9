//! `rbee --hive URL model …`: the same commands through a rbee-hive daemon. Downloads become
//! daemon jobs whose Server-Sent Events feed the same progress renderer as embedded mode;
//! `list`, `info`, `verify` and `rm` use the daemon's routes and print exactly like embedded
//! mode. Ctrl-C cancels the remote job (its partial files stay on the daemon's disk).

use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use futures::StreamExt;
use rbee_artifact_catalog::{
    ArtifactRecord, ArtifactRef, CatalogEntry, CatalogKey, Error, EventKind, JobId, Listing,
    ProgressEvent, Removed, Secret, VerifyReport, human_bytes,
};
use reqwest::{Method, StatusCode, Url};
use serde_json::{Value, json};
use tokio::sync::broadcast;

use crate::args::{DownloadArgs, GlobalArgs, ModelCommand};
use crate::commands;
use crate::render::{self, Mode};
use crate::setup::{self, UsageError};

/// How long to wait for the daemon's final event after asking it to cancel.
const CANCEL_WAIT: Duration = Duration::from_secs(15);

/// An error the daemon answered: its stable code and its message.
#[derive(Debug)]
pub(crate) struct RemoteError {
    /// The daemon's error code (`not_found`, `busy`, `invalid_reference`, …).
    pub(crate) code: String,
    /// What happened and what to do.
    pub(crate) message: String,
}

impl std::fmt::Display for RemoteError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for RemoteError {}

impl RemoteError {
    /// Whether the request itself was wrong (exit status 2, as in embedded mode).
    pub(crate) fn is_usage(&self) -> bool {
        self.code == "invalid_reference"
    }
}

/// Runs `command` through the daemon at `url`.
pub(crate) async fn run(global: &GlobalArgs, url: &str, command: &ModelCommand) -> Result<()> {
    if global.cache_dir.is_some() {
        return Err(UsageError(
            "--cache-dir does not apply with --hive: the daemon uses its own catalog".into(),
        )
        .into());
    }
    let hive = Hive::new(url, global.hive_token.as_deref())?;
    match command {
        ModelCommand::Download(args) => download(&hive, global, args).await,
        ModelCommand::List => {
            let (root, listing) = hive.listing().await?;
            commands::print_listing(global, &root, &listing)
        }
        // Reading headers needs no daemon: the files are read where they are.
        ModelCommand::Inspect(args) => crate::inspect::inspect(global, args).await,
        ModelCommand::Info { model } => {
            let entry = hive.model(model).await?;
            commands::print_info(global, &entry)
        }
        ModelCommand::Verify { models } => verify(&hive, global, models).await,
        ModelCommand::Rm { models } => {
            let mut removed = Vec::new();
            for model in models {
                let value = hive
                    .call(Method::DELETE, &hive.model_url(model)?, None)
                    .await?;
                let r: Removed = serde_json::from_value(value)
                    .context("rbee-hive answered the removal with something unexpected")?;
                commands::print_removed(global, &r);
                removed.push(r);
            }
            commands::finish_rm(global, &removed)
        }
        ModelCommand::Du => Err(UsageError(
            "`rbee model du` measures a local catalog and is not available with --hive; `rbee --hive URL model list` shows sizes".into(),
        )
        .into()),
    }
}

/// A daemon: its base URL, a client, and the token for it.
struct Hive {
    base: Url,
    client: reqwest::Client,
    token: Option<Secret>,
}

impl Hive {
    fn new(url: &str, token: Option<&str>) -> Result<Self> {
        let mut base = Url::parse(url.trim()).map_err(|e| {
            UsageError(format!(
                "--hive {url} is not a URL ({e}); write e.g. http://127.0.0.1:8600"
            ))
        })?;
        if !matches!(base.scheme(), "http" | "https") || base.cannot_be_a_base() {
            return Err(UsageError(format!(
                "--hive {url} must be an http:// or https:// URL, e.g. http://127.0.0.1:8600"
            ))
            .into());
        }
        if !base.path().ends_with('/') {
            let path = format!("{}/", base.path());
            base.set_path(&path);
        }
        let client = reqwest::Client::builder()
            // The token is for the daemon only: never follow it anywhere else.
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(Duration::from_secs(10))
            .build()
            .context("building the HTTP client")?;
        Ok(Self {
            base,
            client,
            token: token.and_then(Secret::new),
        })
    }

    /// `base` + `segments`, each percent-encoded as one path segment.
    fn url(&self, segments: &[&str]) -> Url {
        let mut url = self.base.clone();
        if let Ok(mut path) = url.path_segments_mut() {
            path.pop_if_empty().extend(segments);
        }
        url
    }

    /// `/v1/models/{model}`, naming the model by id, or by reference (a relative `file:` path
    /// is made absolute here, where it was typed).
    fn model_url(&self, model: &str) -> Result<Url> {
        let name = match CatalogKey::from_id(model) {
            Some(_) => model.to_string(),
            None => {
                let reference: ArtifactRef = model.parse()?;
                reference
                    .absolutize()
                    .context("cannot make the file path absolute")?
                    .to_string()
            }
        };
        Ok(self.url(&["v1", "models", &name]))
    }

    fn request(&self, method: Method, url: Url) -> reqwest::RequestBuilder {
        let request = self.client.request(method, url);
        match &self.token {
            Some(token) => request.bearer_auth(token.expose()),
            None => request,
        }
    }

    /// Sends a request and returns the JSON body; an error answer becomes a [`RemoteError`].
    async fn call(&self, method: Method, url: &Url, body: Option<Value>) -> Result<Value> {
        let mut request = self
            .request(method, url.clone())
            .timeout(Duration::from_secs(120));
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.map_err(|e| self.unreachable(e))?;
        let status = response.status();
        let text = response.text().await.map_err(|e| self.unreachable(e))?;
        let value: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        if status.is_success() {
            return Ok(value);
        }
        Err(remote_error(status, &value).into())
    }

    fn unreachable(&self, e: reqwest::Error) -> anyhow::Error {
        let cause = e
            .source_chain()
            .unwrap_or_else(|| "the connection failed".into());
        anyhow::anyhow!(
            "cannot reach rbee-hive at {}: {cause}; is it running? (start it with `rbee-hive`, or leave out --hive / RBEE_HIVE_URL to work in this process)",
            self.base
        )
    }

    async fn listing(&self) -> Result<(std::path::PathBuf, Vec<Listing>)> {
        let value = self
            .call(Method::GET, &self.url(&["v1", "models"]), None)
            .await?;
        let root = value["root"].as_str().unwrap_or_default().into();
        let listing = value["models"]
            .as_array()
            .context("rbee-hive's model list has no `models`")?
            .iter()
            .map(listing_of)
            .collect::<Result<_>>()?;
        Ok((root, listing))
    }

    async fn model(&self, model: &str) -> Result<CatalogEntry> {
        let value = self
            .call(Method::GET, &self.model_url(model)?, None)
            .await?;
        entry_of(&value)
    }

    /// Starts a job and returns its id.
    async fn start_job(&self, body: Value) -> Result<String> {
        let created = self
            .call(Method::POST, &self.url(&["v1", "jobs"]), Some(body))
            .await?;
        created["job_id"]
            .as_str()
            .map(str::to_string)
            .context("rbee-hive did not say which job it started")
    }

    /// Opens a job's event stream.
    async fn stream(&self, job_id: &str) -> Result<EventReader> {
        let response = self
            .request(Method::GET, self.url(&["v1", "jobs", job_id, "stream"]))
            .send()
            .await
            .map_err(|e| self.unreachable(e))?;
        if !response.status().is_success() {
            let status = response.status();
            let value = response.json().await.unwrap_or(Value::Null);
            return Err(remote_error(status, &value).into());
        }
        Ok(EventReader::new(response))
    }

    async fn cancel(&self, job_id: &str) -> Result<()> {
        let url = self.url(&["v1", "jobs", job_id, "cancel"]);
        match self.call(Method::POST, &url, None).await {
            Ok(_) => Ok(()),
            // It finished meanwhile: its final event says how.
            Err(e)
                if e.downcast_ref::<RemoteError>()
                    .is_some_and(|r| r.code == "invalid_state") =>
            {
                Ok(())
            }
            Err(e) => Err(e),
        }
    }

    /// Runs a catalog job to its final event; returns it.
    async fn run_job(&self, body: Value) -> Result<Final> {
        let job_id = self.start_job(body).await?;
        let mut events = self.stream(&job_id).await?;
        loop {
            match events.next().await? {
                Some(e) if e.is_final() => return Ok(Final::of(e)),
                Some(_) => {}
                None => return Err(lost_stream(&self.base, &job_id)),
            }
        }
    }
}

fn remote_error(status: StatusCode, value: &Value) -> RemoteError {
    match (
        value["error"]["code"].as_str(),
        value["error"]["message"].as_str(),
    ) {
        (Some(code), Some(message)) => RemoteError {
            code: code.to_string(),
            message: message.to_string(),
        },
        _ => RemoteError {
            code: "protocol".into(),
            message: format!("rbee-hive answered {status} without an explanation"),
        },
    }
}

fn lost_stream(base: &Url, job_id: &str) -> anyhow::Error {
    anyhow::anyhow!(
        "lost the event stream of job {job_id} before it finished (did rbee-hive stop?); its state: GET {base}v1/jobs/{job_id}"
    )
}

/// A model as the daemon shows it → the catalog entry it describes.
fn entry_of(value: &Value) -> Result<CatalogEntry> {
    let record: ArtifactRecord = serde_json::from_value(value.clone())
        .context("rbee-hive described a model in a way this rbee does not understand")?;
    let dir = value["dir"].as_str().unwrap_or_default().into();
    Ok(CatalogEntry { record, dir })
}

fn listing_of(value: &Value) -> Result<Listing> {
    if value["status"]["state"] == "damaged" {
        return Ok(Listing::Damaged {
            id: value["id"].as_str().unwrap_or_default().to_string(),
            dir: value["dir"].as_str().unwrap_or_default().into(),
            reason: value["status"]["error"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
        });
    }
    entry_of(value).map(Listing::Entry)
}

async fn download(hive: &Hive, global: &GlobalArgs, args: &DownloadArgs) -> Result<()> {
    for (set, flag) in [
        (args.dry_run, "--dry-run"),
        (args.connections.is_some(), "--connections"),
        (args.rate_limit.is_some(), "--rate-limit"),
        (args.hf_cache, "--hf-cache"),
    ] {
        if set {
            return Err(UsageError(format!(
                "{flag} is not available with --hive: the daemon's own settings apply (see `rbee-hive --help`)"
            ))
            .into());
        }
    }
    let reference = setup::reference(args)?;
    let job_id = hive
        .start_job(json!({
            "operation": "model_download",
            "model": reference.to_string(),
            "include": args.include,
            "exclude": args.exclude,
            "offline": args.offline,
            "refresh": args.refresh,
        }))
        .await?;
    let started = Instant::now();
    let mut events = hive.stream(&job_id).await?;
    let (tx, rx) = broadcast::channel(1024);
    let renderer = tokio::spawn(render::render(
        Mode::choose(global.json, global.quiet),
        Vec::new(),
        rx,
    ));
    let cancel = commands::cancel_on_signals();
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
        match next {
            Ok(Some(event)) => {
                if let Some(progress) = event.progress_event() {
                    for start in unseen_files(&progress, &mut files) {
                        let _ = tx.send(start);
                    }
                    let _ = tx.send(progress);
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
    let _ = renderer.await;
    let Some(last) = last else {
        if cancelling.is_some() {
            return Err(anyhow::Error::new(Error::Cancelled)
                .context(format!("job {job_id} on {} was asked to cancel", hive.base)));
        }
        return Err(lost_stream(&hive.base, &job_id));
    };
    match Final::of(last) {
        Final::Done(result) => {
            commands::print_ready(
                global,
                result["id"].as_str().unwrap_or_default(),
                result["size"].as_u64().unwrap_or(0),
                result["outcome"] == "already_ready",
                started,
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
            .run_job(json!({"operation": "model_verify", "model": id}))
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
    fn of(event: SseEvent) -> Self {
        let result = event.data.get("result").cloned();
        match event.name.as_str() {
            "done" => Final::Done(result.unwrap_or(Value::Null)),
            "cancelled" => Final::Cancelled(event.data["bytes_on_disk"].as_u64().unwrap_or(0)),
            _ => Final::Error(
                RemoteError {
                    code: event.data["code"].as_str().unwrap_or("error").to_string(),
                    message: event.data["error"]
                        .as_str()
                        .unwrap_or("the job failed")
                        .to_string(),
                },
                result,
            ),
        }
    }
}

/// One Server-Sent Event: its name and JSON data.
#[derive(Debug)]
struct SseEvent {
    name: String,
    data: Value,
}

impl SseEvent {
    fn is_final(&self) -> bool {
        matches!(self.name.as_str(), "done" | "error" | "cancelled")
    }

    /// The event for the renderer: the daemon's event as it is, or — for the daemon's own
    /// `paused` and `resumed` — a line of narration.
    fn progress_event(&self) -> Option<ProgressEvent> {
        match self.name.as_str() {
            "paused" | "resumed" => Some(ProgressEvent {
                job_id: JobId(self.data["job_id"].as_str()?.to_string()),
                seq: self.data["seq"].as_u64().unwrap_or(0),
                timestamp_ms: self.data["timestamp_ms"].as_u64().unwrap_or(0),
                kind: EventKind::Message {
                    message: self.data["message"].as_str()?.to_string(),
                },
            }),
            _ => serde_json::from_value(self.data.clone()).ok(),
        }
    }
}

/// Longest silence accepted on an event stream.
const STREAM_IDLE_LIMIT: std::time::Duration = std::time::Duration::from_secs(60);

/// Reads `text/event-stream` from a response.
struct EventReader {
    body: futures::stream::BoxStream<'static, reqwest::Result<Vec<u8>>>,
    buf: Vec<u8>,
}

impl EventReader {
    fn new(response: reqwest::Response) -> Self {
        Self {
            body: response
                .bytes_stream()
                .map(|chunk| chunk.map(|b| b.to_vec()))
                .boxed(),
            buf: Vec::new(),
        }
    }

    /// The next event with data (comments and keep-alives are skipped); `None` at the end.
    async fn next(&mut self) -> Result<Option<SseEvent>> {
        loop {
            // Blocks end with a blank line; the server writes `\n` line ends.
            while let Some(end) = self.buf.windows(2).position(|w| w == b"\n\n") {
                let block: Vec<u8> = self.buf.drain(..end + 2).collect();
                if let Some(event) = parse_block(&String::from_utf8_lossy(&block)) {
                    return Ok(Some(event));
                }
            }
            // The daemon sends a keep-alive every 15 s: a minute of silence is a dead link
            // (a half-open connection would otherwise wait forever).
            let next = tokio::time::timeout(STREAM_IDLE_LIMIT, self.body.next())
                .await
                .map_err(|_| {
                    anyhow::anyhow!(
                        "the event stream from rbee-hive went silent for {} s; the daemon or the network is gone (the job may still be running there)",
                        STREAM_IDLE_LIMIT.as_secs()
                    )
                })?;
            match next {
                None => return Ok(None),
                Some(Err(e)) => {
                    return Err(anyhow::anyhow!(
                        "the event stream from rbee-hive broke: {e}"
                    ));
                }
                Some(Ok(chunk)) => self.buf.extend_from_slice(&chunk),
            }
        }
    }
}

fn parse_block(block: &str) -> Option<SseEvent> {
    let mut name = "message".to_string();
    let mut data: Vec<&str> = Vec::new();
    for line in block.lines() {
        if let Some(v) = line.strip_prefix("event:") {
            name = v.trim().to_string();
        } else if let Some(v) = line.strip_prefix("data:") {
            data.push(v.strip_prefix(' ').unwrap_or(v));
        }
    }
    if data.is_empty() {
        return None;
    }
    let data = serde_json::from_str(&data.join("\n")).ok()?;
    Some(SseEvent { name, data })
}

trait SourceChain {
    fn source_chain(&self) -> Option<String>;
}

impl SourceChain for reqwest::Error {
    /// The innermost cause, which says what actually failed (connection refused, …).
    fn source_chain(&self) -> Option<String> {
        let mut source = std::error::Error::source(self);
        let mut last = None;
        while let Some(s) = source {
            last = Some(s.to_string());
            source = s.source();
        }
        last
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_parse_and_feed_the_renderer() {
        let block = "event: progress\nid: 1.3\ndata: {\"job_id\":\"j\",\"seq\":3,\"timestamp_ms\":1,\"event\":\"progress\",\"bytes\":5,\"total\":10,\"percent\":50.0,\"bytes_per_sec\":1.0,\"eta_secs\":5.0,\"attempt\":1,\"message\":\"50%\"}\n\n";
        let event = parse_block(block).unwrap();
        assert_eq!(event.name, "progress");
        let progress = event.progress_event().unwrap();
        assert!(matches!(progress.kind, EventKind::Progress(ref s) if s.bytes == 5));
        assert!(parse_block(": keep-alive\n\n").is_none());
        let paused = parse_block(
            "event: paused\ndata: {\"job_id\":\"j\",\"seq\":4,\"timestamp_ms\":1,\"event\":\"paused\",\"bytes_on_disk\":5,\"message\":\"Paused\"}\n\n",
        )
        .unwrap();
        assert!(matches!(
            paused.progress_event().unwrap().kind,
            EventKind::Message { ref message } if message == "Paused"
        ));
        let done = parse_block("event: done\ndata: {\"job_id\":\"j\",\"seq\":5,\"timestamp_ms\":1,\"event\":\"completed\",\"id\":\"x\",\"paths\":[],\"bytes\":5,\"message\":\"Ready\",\"result\":{\"id\":\"x\"}}\n\n").unwrap();
        assert!(done.is_final());
        assert!(matches!(
            done.progress_event().unwrap().kind,
            EventKind::Completed { .. }
        ));
        assert!(matches!(Final::of(done), Final::Done(r) if r["id"] == "x"));
    }

    #[test]
    fn files_first_seen_in_progress_get_a_start_event() {
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
    fn model_urls_encode_references_as_one_segment() {
        let hive = Hive::new("http://127.0.0.1:8600", None).unwrap();
        assert_eq!(
            hive.model_url("hf:TheBloke/X-GGUF:Q4_K_M")
                .unwrap()
                .as_str(),
            "http://127.0.0.1:8600/v1/models/hf:TheBloke%2FX-GGUF:Q4_K_M"
        );
        assert_eq!(
            hive.model_url("hf--TheBloke--X-GGUF--Q4_K_M")
                .unwrap()
                .as_str(),
            "http://127.0.0.1:8600/v1/models/hf--TheBloke--X-GGUF--Q4_K_M"
        );
        let prefixed = Hive::new("https://proxy.example/hive", None).unwrap();
        assert_eq!(
            prefixed.url(&["v1", "jobs"]).as_str(),
            "https://proxy.example/hive/v1/jobs"
        );
        assert!(Hive::new("127.0.0.1:8600", None).is_err());
        assert!(Hive::new("ftp://x", None).is_err());
    }
}
