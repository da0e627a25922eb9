//! A client of the daemon's HTTP API, speaking the shapes of [`crate::api`]: `rbee --hive` and
//! the daemon's own tests use it.
//!
//! ```no_run
//! use rbee_hive::api::JobRequest;
//! use rbee_hive::client::HiveClient;
//!
//! # async fn demo() -> Result<(), rbee_hive::client::ClientError> {
//! let hive = HiveClient::new("http://127.0.0.1:8600".parse().unwrap(), None)?;
//! let job = hive.start_job(&JobRequest::download("hf:TheBloke/TinyLlama-1.1B-Chat-v1.0-GGUF:Q4_K_M")).await?;
//! let mut events = hive.job_events(&job.job_id.0).await?;
//! while let Some(event) = events.next().await? {
//!     if event.is_final() {
//!         break;
//!     }
//! }
//! # Ok(()) }
//! ```

use std::pin::Pin;
use std::time::Duration;

use eventsource_stream::Eventsource;
use futures::{Stream, StreamExt};
use rbee_artifact::Secret;
use rbee_catalog::Removed;
use reqwest::{Method, StatusCode, Url};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::api::{
    DownloadAccepted, ErrorBody, ErrorResponse, FINAL_EVENTS, JobList, JobRequest, JobView,
    ModelDownloadRequest, ModelList, ModelView,
};

/// How long a plain request may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(120);

/// Longest silence accepted on an event stream by default: the daemon sends a keep-alive
/// every 15 s, so a minute of silence is a dead link (a half-open connection would otherwise
/// wait forever).
pub const STREAM_IDLE_LIMIT: Duration = Duration::from_secs(60);

/// What went wrong talking to the daemon.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The daemon answered with an error (its stable code and message).
    #[error("{}", body.message)]
    Api {
        /// The HTTP status.
        status: StatusCode,
        /// The daemon's `error` object.
        body: ErrorBody,
    },
    /// The daemon could not be reached (or the connection broke mid-answer).
    #[error("cannot reach rbee-hive at {base}: {cause}")]
    Unreachable {
        /// The daemon's base URL.
        base: Url,
        /// The innermost cause (connection refused, …).
        cause: String,
    },
    /// The daemon answered success with a body this client does not understand.
    #[error("rbee-hive answered {what} in a way this client does not understand: {detail}")]
    Unexpected {
        /// Which answer.
        what: String,
        /// What did not fit.
        detail: String,
    },
    /// An event stream broke.
    #[error("the event stream from rbee-hive broke: {0}")]
    StreamBroken(String),
    /// An event stream sent nothing, not even a keep-alive, for too long.
    #[error(
        "the event stream from rbee-hive went silent for {} s; the daemon or the network is gone (the job may still be running there)",
        .0.as_secs()
    )]
    StreamSilent(Duration),
    /// The HTTP client could not be set up.
    #[error("cannot set up the HTTP client: {0}")]
    Setup(String),
}

impl ClientError {
    /// The daemon's error code, when the daemon answered with one.
    pub fn code(&self) -> Option<&str> {
        match self {
            ClientError::Api { body, .. } => Some(&body.code),
            _ => None,
        }
    }
}

/// A daemon: its base URL, an HTTP client, and the token for it.
#[derive(Debug, Clone)]
pub struct HiveClient {
    base: Url,
    http: reqwest::Client,
    token: Option<Secret>,
}

impl HiveClient {
    /// A client of the daemon at `base` (an `http://` or `https://` URL, possibly with a path
    /// prefix), sending `token` as a bearer token when given.
    pub fn new(mut base: Url, token: Option<Secret>) -> Result<Self, ClientError> {
        if !base.path().ends_with('/') {
            let path = format!("{}/", base.path());
            base.set_path(&path);
        }
        let http = reqwest::Client::builder()
            // The token is for the daemon only: never follow it anywhere else.
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| ClientError::Setup(innermost_cause(&e)))?;
        Ok(Self { base, http, token })
    }

    /// The daemon's base URL (ending in `/`).
    pub fn base(&self) -> &Url {
        &self.base
    }

    /// Whether a token is sent.
    pub fn has_token(&self) -> bool {
        self.token.is_some()
    }

    /// `base` + `segments`, each percent-encoded as one path segment.
    pub fn url(&self, segments: &[&str]) -> Url {
        let mut url = self.base.clone();
        if let Ok(mut path) = url.path_segments_mut() {
            path.pop_if_empty().extend(segments);
        }
        url
    }

    /// A request to `url` with the token.
    pub fn request(&self, method: Method, url: Url) -> reqwest::RequestBuilder {
        let request = self.http.request(method, url);
        match &self.token {
            Some(token) => request.bearer_auth(token.expose()),
            None => request,
        }
    }

    /// Sends a request and reads the JSON answer as `T`; an error answer is
    /// [`ClientError::Api`].
    pub async fn call<T: DeserializeOwned>(
        &self,
        method: Method,
        url: Url,
        body: Option<&(impl Serialize + Sync)>,
    ) -> Result<T, ClientError> {
        let what = format!("{method} {}", url.path());
        let mut request = self.request(method, url).timeout(REQUEST_TIMEOUT);
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request.send().await.map_err(|e| self.unreachable(&e))?;
        let status = response.status();
        let text = response.text().await.map_err(|e| self.unreachable(&e))?;
        if !status.is_success() {
            return Err(api_error(status, &text));
        }
        serde_json::from_str(&text).map_err(|e| ClientError::Unexpected {
            what,
            detail: e.to_string(),
        })
    }

    async fn get<T: DeserializeOwned>(&self, segments: &[&str]) -> Result<T, ClientError> {
        self.call(Method::GET, self.url(segments), None::<&()>)
            .await
    }

    async fn post<T: DeserializeOwned>(
        &self,
        segments: &[&str],
        body: Option<&(impl Serialize + Sync)>,
    ) -> Result<T, ClientError> {
        self.call(Method::POST, self.url(segments), body).await
    }

    /// `GET /health`.
    pub async fn health(&self) -> Result<serde_json::Value, ClientError> {
        self.get(&["health"]).await
    }

    /// `GET /v1/jobs`.
    pub async fn jobs(&self) -> Result<JobList, ClientError> {
        self.get(&["v1", "jobs"]).await
    }

    /// `GET /v1/jobs/{job_id}`.
    pub async fn job(&self, job_id: &str) -> Result<JobView, ClientError> {
        self.get(&["v1", "jobs", job_id]).await
    }

    /// `POST /v1/jobs`: starts a job.
    pub async fn start_job(&self, request: &JobRequest) -> Result<JobView, ClientError> {
        self.post(&["v1", "jobs"], Some(request)).await
    }

    /// `POST /v1/models/download`: starts a download job.
    pub async fn download(
        &self,
        request: &ModelDownloadRequest,
    ) -> Result<DownloadAccepted, ClientError> {
        self.post(&["v1", "models", "download"], Some(request))
            .await
    }

    /// `POST /v1/jobs/{job_id}/cancel`.
    pub async fn cancel(&self, job_id: &str) -> Result<JobView, ClientError> {
        self.post(&["v1", "jobs", job_id, "cancel"], None::<&()>)
            .await
    }

    /// `POST /v1/jobs/{job_id}/pause`.
    pub async fn pause(&self, job_id: &str) -> Result<JobView, ClientError> {
        self.post(&["v1", "jobs", job_id, "pause"], None::<&()>)
            .await
    }

    /// `POST /v1/jobs/{job_id}/resume`.
    pub async fn resume(&self, job_id: &str) -> Result<JobView, ClientError> {
        self.post(&["v1", "jobs", job_id, "resume"], None::<&()>)
            .await
    }

    /// `GET /v1/models`.
    pub async fn models(&self) -> Result<ModelList, ClientError> {
        self.get(&["v1", "models"]).await
    }

    /// `GET /v1/models/{model}`: `model` is a catalog id or a canonical reference.
    pub async fn model(&self, model: &str) -> Result<ModelView, ClientError> {
        self.get(&["v1", "models", model]).await
    }

    /// `DELETE /v1/models/{model}`.
    pub async fn delete_model(&self, model: &str) -> Result<Removed, ClientError> {
        self.call(
            Method::DELETE,
            self.url(&["v1", "models", model]),
            None::<&()>,
        )
        .await
    }

    /// `GET /v1/jobs/{job_id}/stream`: the job's events.
    pub async fn job_events(&self, job_id: &str) -> Result<EventStream, ClientError> {
        self.events(self.url(&["v1", "jobs", job_id, "stream"]))
            .await
    }

    /// `GET /v1/models/download/progress`: every download's events.
    pub async fn download_events(&self) -> Result<EventStream, ClientError> {
        self.events(self.url(&["v1", "models", "download", "progress"]))
            .await
    }

    async fn events(&self, url: Url) -> Result<EventStream, ClientError> {
        let response = self
            .request(Method::GET, url)
            .send()
            .await
            .map_err(|e| self.unreachable(&e))?;
        let status = response.status();
        if !status.is_success() {
            let text = response.text().await.unwrap_or_default();
            return Err(api_error(status, &text));
        }
        Ok(EventStream::new(response))
    }

    fn unreachable(&self, e: &reqwest::Error) -> ClientError {
        ClientError::Unreachable {
            base: self.base.clone(),
            cause: innermost_cause(e),
        }
    }
}

/// The daemon's error answer; one without an `error` object is a `protocol` error.
fn api_error(status: StatusCode, text: &str) -> ClientError {
    let body = serde_json::from_str::<ErrorResponse>(text)
        .map(|r| r.error)
        .unwrap_or_else(|_| ErrorBody {
            code: "protocol".into(),
            message: format!("rbee-hive answered {status} without an explanation"),
        });
    ClientError::Api { status, body }
}

/// The innermost cause, which says what actually failed (connection refused, …).
fn innermost_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut last = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        last = s.to_string();
        source = s.source();
    }
    last
}

/// One Server-Sent Event: its name (`message` when unnamed), id and data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SseEvent {
    /// The event's name.
    pub name: String,
    /// The event's id, if it has one.
    pub id: Option<String>,
    /// The event's data (JSON for every event the daemon sends).
    pub data: String,
}

impl SseEvent {
    /// Whether it ends a job's stream (`done`, `error` or `cancelled`).
    pub fn is_final(&self) -> bool {
        FINAL_EVENTS.contains(&self.name.as_str())
    }

    /// The data read as `T` (e.g. [`crate::api::JobEvent`], or `serde_json::Value`).
    pub fn json<T: DeserializeOwned>(&self) -> Result<T, ClientError> {
        serde_json::from_str(&self.data).map_err(|e| ClientError::Unexpected {
            what: format!("a `{}` event", self.name),
            detail: e.to_string(),
        })
    }
}

type Events = Pin<
    Box<
        dyn Stream<
                Item = Result<
                    eventsource_stream::Event,
                    eventsource_stream::EventStreamError<ClientError>,
                >,
            > + Send,
    >,
>;

/// A `text/event-stream` body, read event by event; comments and keep-alives are skipped (but
/// count as signs of life).
pub struct EventStream {
    events: Events,
}

impl std::fmt::Debug for EventStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventStream").finish_non_exhaustive()
    }
}

impl EventStream {
    /// Reads the events of `response` (whose status the caller has checked), giving up after
    /// [`STREAM_IDLE_LIMIT`] without a byte.
    pub fn new(response: reqwest::Response) -> Self {
        Self::with_idle_limit(response, STREAM_IDLE_LIMIT)
    }

    /// Reads the events of `response`, giving up after `limit` without a byte.
    pub fn with_idle_limit(response: reqwest::Response, limit: Duration) -> Self {
        // The limit applies to bytes, not events: keep-alive comments never become events,
        // yet they are what shows a quiet stream (a paused job) is still alive.
        let chunks = futures::stream::unfold(
            Some(response.bytes_stream().boxed()),
            move |body| async move {
                let mut body = body?;
                match tokio::time::timeout(limit, body.next()).await {
                    Err(_) => Some((Err(ClientError::StreamSilent(limit)), None)),
                    Ok(None) => None,
                    Ok(Some(Ok(chunk))) => Some((Ok(chunk), Some(body))),
                    Ok(Some(Err(e))) => {
                        Some((Err(ClientError::StreamBroken(innermost_cause(&e))), None))
                    }
                }
            },
        );
        Self {
            events: Box::pin(chunks.eventsource()),
        }
    }

    /// The next event; `None` when the stream ended.
    pub async fn next(&mut self) -> Result<Option<SseEvent>, ClientError> {
        match self.events.next().await {
            None => Ok(None),
            Some(Err(eventsource_stream::EventStreamError::Transport(e))) => Err(e),
            Some(Err(e)) => Err(ClientError::StreamBroken(e.to_string())),
            Some(Ok(event)) => Ok(Some(SseEvent {
                name: if event.event.is_empty() {
                    "message".into()
                } else {
                    event.event
                },
                id: (!event.id.is_empty()).then_some(event.id),
                data: event.data,
            })),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_encode_each_segment_and_keep_a_prefix() {
        let hive = HiveClient::new("http://127.0.0.1:8600".parse().unwrap(), None).unwrap();
        assert_eq!(
            hive.url(&["v1", "models", "hf:TheBloke/X-GGUF:Q4_K_M"])
                .as_str(),
            "http://127.0.0.1:8600/v1/models/hf:TheBloke%2FX-GGUF:Q4_K_M"
        );
        let prefixed =
            HiveClient::new("https://proxy.example/hive".parse().unwrap(), None).unwrap();
        assert_eq!(
            prefixed.url(&["v1", "jobs"]).as_str(),
            "https://proxy.example/hive/v1/jobs"
        );
    }

    #[test]
    fn error_answers_keep_their_code_or_say_there_was_none() {
        let e = api_error(
            StatusCode::NOT_FOUND,
            r#"{"error":{"code":"not_found","message":"no such model"}}"#,
        );
        assert_eq!(e.code(), Some("not_found"));
        assert_eq!(e.to_string(), "no such model");
        let e = api_error(StatusCode::BAD_GATEWAY, "<html>");
        assert_eq!(e.code(), Some("protocol"));
        assert!(e.to_string().contains("502"), "{e}");
    }

    fn response(body: &'static str) -> reqwest::Response {
        reqwest::Response::from(axum::http::Response::new(body))
    }

    #[tokio::test]
    async fn events_are_framed_and_comments_skipped() {
        let mut events = EventStream::new(response(
            ": keep-alive\n\nevent: progress\nid: 1.3\ndata: {\"bytes\":5}\n\n: skipped 2 events (slow reader)\n\nevent: done\ndata: {\"a\":\n\n",
        ));
        let progress = events.next().await.unwrap().unwrap();
        assert_eq!(progress.name, "progress");
        assert_eq!(progress.id.as_deref(), Some("1.3"));
        assert_eq!(progress.json::<serde_json::Value>().unwrap()["bytes"], 5);
        assert!(!progress.is_final());
        let done = events.next().await.unwrap().unwrap();
        assert!(done.is_final());
        assert!(matches!(
            done.json::<serde_json::Value>(),
            Err(ClientError::Unexpected { .. })
        ));
        assert!(events.next().await.unwrap().is_none());
    }

    /// A body that sends `chunks`, each after `gap`.
    fn paced(chunks: Vec<&'static str>, gap: Duration) -> reqwest::Response {
        let body = futures::stream::iter(chunks).then(move |chunk| async move {
            tokio::time::sleep(gap).await;
            Ok::<_, std::io::Error>(chunk)
        });
        reqwest::Response::from(axum::http::Response::new(reqwest::Body::wrap_stream(body)))
    }

    #[tokio::test(start_paused = true)]
    async fn keep_alives_keep_a_quiet_stream_alive_and_silence_ends_it() {
        // Three seconds of keep-alives only, then an event: alive under a one-second limit.
        let mut chunks = vec![": keep-alive\n\n"; 30];
        chunks.push("event: done\ndata: {}\n\n");
        let mut events = EventStream::with_idle_limit(
            paced(chunks, Duration::from_millis(100)),
            Duration::from_secs(1),
        );
        assert_eq!(events.next().await.unwrap().unwrap().name, "done");
        assert!(events.next().await.unwrap().is_none());

        // Nothing at all for longer than the limit: the stream is given up.
        let mut events = EventStream::with_idle_limit(
            paced(vec!["event: done\ndata: {}\n\n"], Duration::from_secs(5)),
            Duration::from_secs(1),
        );
        assert!(matches!(
            events.next().await,
            Err(ClientError::StreamSilent(limit)) if limit == Duration::from_secs(1)
        ));
    }
}
