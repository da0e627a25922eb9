//! [`Transfer`]: the shared engine handle, and the requests it takes.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use futures::StreamExt;
use rbee_artifact::{DownloadTracker, DownloadedFile, Error, FileProgress, validate_relative_path};
use reqwest::Response;
use tokio_util::sync::CancellationToken;
use url::Url;

use crate::config::TransferConfig;
use crate::engine::Inner;
use crate::error::{TransferError, redact_url};
use crate::fetch::DirtyDirs;
use crate::fetch::FetchRequest;
use crate::http::{self, Outgoing, SendError};
use crate::request::ApiRequest;
use crate::retry::{MAX_SILENT_ANSWERS, is_transient_status, retry_after};

/// The download engine. Cheap to clone: clones share the HTTP connection pools and the rate
/// limit.
///
/// # Contract
/// - [`fetch`](Transfer::fetch) writes only `<dest>.part`, `<dest>.part.state`,
///   `<dest>.part.lock` and, once the bytes are complete and verified, `dest` itself.
/// - Every method is cancellable: it returns [`Error::Cancelled`] within one network read of
///   the token firing, keeping partial data for a later resume.
/// - Nothing here prints; progress goes to the given [`FileProgress`] / [`DownloadTracker`],
///   diagnostics to `tracing`. Credentials never appear in errors, events or logs.
#[derive(Debug, Clone)]
pub struct Transfer {
    pub(crate) inner: Arc<Inner>,
}

impl Transfer {
    /// An engine with `config`. Fails only on an invalid configuration (the message names the
    /// knob) or an unusable proxy variable.
    pub fn new(config: TransferConfig) -> Result<Transfer, Error> {
        config
            .validate()
            .map_err(|m| Error::InvalidRequest(format!("invalid transfer settings: {m}")))?;
        Ok(Transfer {
            inner: Arc::new(Inner::new(config)?),
        })
    }

    /// The settings this engine runs with.
    pub fn config(&self) -> &TransferConfig {
        &self.inner.config
    }

    /// Fetches one file to `dest` (its final path).
    ///
    /// Streams into `<dest>.part` (resume state in `<dest>.part.state`), resuming what an
    /// earlier attempt left when the remote provably has the same bytes, over several ranged
    /// connections for large files; verifies the size and `sha256`, fsyncs, then renames to
    /// `dest`. A file already at `dest` with the right size (and digest) is not fetched again.
    /// Bytes are reported to `progress` as they arrive. While one call writes `dest`, another
    /// (in this or another process) waits, then reuses the finished file or continues the
    /// partial.
    pub async fn fetch(
        &self,
        request: &FetchRequest,
        dest: &Path,
        progress: &FileProgress,
        cancel: &CancellationToken,
    ) -> Result<DownloadedFile, TransferError> {
        crate::fetch::fetch(&self.inner, request, dest, progress, cancel, None).await
    }

    /// How many folder syncs this engine (and its clones) has made: one per file fetched
    /// alone, one per folder for a batch of [`fetch_all`](Transfer::fetch_all). For tests and
    /// diagnostics.
    pub fn directory_syncs(&self) -> u64 {
        self.inner.syncs.dirs.load(Ordering::Relaxed)
    }

    /// How many resume states this engine (and its clones) has saved. A file smaller than one
    /// save interval's worth of bytes is published without one. For tests and diagnostics.
    pub fn state_saves(&self) -> u64 {
        self.inner.syncs.states.load(Ordering::Relaxed)
    }

    /// Fetches several files of one artifact, each to `dest_dir.join(request.path)`, as many at
    /// once as fit in a budget of connections: [`TransferConfig::files_in_parallel`] large
    /// files' worth, where a large file (or one of unknown size) counts as
    /// [`TransferConfig::connections`] and a file below [`TransferConfig::parallel_threshold`]
    /// as one, so a snapshot of many small files is not fetched a few at a time (paths are validated: nothing is written outside
    /// `dest_dir`). Each file is registered with `tracker.file(..)` when it starts and marked
    /// done when complete. On the first failure the other files stop (keeping their partials)
    /// and that failure is returned, with the status and headers of a refusing server for the
    /// vendor to interpret (it converts into [`Error`] with `?`); results come in the order of
    /// `requests`. Each folder written into is synced once, before this returns (whatever the
    /// outcome), rather than once per file: a caller that records the files as ready after
    /// `Ok` records only durable names.
    pub async fn fetch_all(
        &self,
        requests: Vec<FetchRequest>,
        dest_dir: &Path,
        tracker: &DownloadTracker,
        cancel: &CancellationToken,
    ) -> Result<Vec<DownloadedFile>, TransferError> {
        for r in &requests {
            validate_relative_path(&r.path).map_err(|kind| {
                TransferError::catalog(Error::Protocol {
                    message: format!("refusing to write {:?}: {kind}", r.path),
                })
            })?;
        }
        let stop = cancel.child_token();
        let count = requests.len();
        let config = &self.inner.config;
        let budget = config
            .files_in_parallel
            .saturating_mul(config.connections)
            .min(tokio::sync::Semaphore::MAX_PERMITS);
        let slots = tokio::sync::Semaphore::new(budget);
        let slots = &slots;
        let dirty = DirtyDirs::default();
        let batch = &dirty;
        let mut jobs = futures::stream::iter(requests.into_iter().enumerate().map(|(i, r)| {
            let stop = stop.clone();
            let weight = match r.expected_size {
                Some(size) if size < config.parallel_threshold => 1,
                _ => config.connections.min(budget),
            };
            async move {
                // Fair: a large file waiting for its connections is not overtaken by small ones.
                // The semaphore is never closed, so this only waits.
                let _held = slots.acquire_many(weight as u32).await;
                let dest = dest_dir.join(&r.path);
                let on_disk = crate::fetch::bytes_on_disk(&r, &dest);
                let progress = tracker.file(r.path.clone(), r.expected_size, on_disk);
                let result =
                    crate::fetch::fetch(&self.inner, &r, &dest, &progress, &stop, Some(batch))
                        .await;
                if result.is_ok() {
                    progress.done();
                } else {
                    // The others need not go on once one file has failed.
                    stop.cancel();
                }
                (i, result)
            }
        }))
        .buffer_unordered(budget);
        let mut done: Vec<Option<DownloadedFile>> = vec![None; count];
        let mut first_error: Option<TransferError> = None;
        while let Some((i, result)) = jobs.next().await {
            match result {
                Ok(f) => done[i] = Some(f),
                // A cancellation caused by another file's failure is not the story.
                Err(e) if e.is_cancelled() && first_error.is_some() => {}
                Err(e) => {
                    let replace = match &first_error {
                        None => true,
                        Some(prev) => prev.is_cancelled() && !e.is_cancelled(),
                    };
                    if replace {
                        first_error = Some(e);
                    }
                }
            }
        }
        drop(jobs);
        // Before any success is reported: the caller records the files as ready next. After a
        // failure too, so the files already in place keep their names for the next attempt.
        match tokio::task::spawn_blocking(move || dirty.sync()).await {
            Ok(synced) => {
                self.inner.syncs.dirs.fetch_add(synced, Ordering::Relaxed);
            }
            Err(e) => {
                return Err(TransferError::catalog(Error::task_failed(
                    "syncing folders",
                    e,
                )));
            }
        }
        if cancel.is_cancelled() {
            return Err(TransferError::cancelled());
        }
        if let Some(e) = first_error {
            return Err(e);
        }
        Ok(done.into_iter().flatten().collect())
    }

    /// Bytes of `request` already at `dest` or in its partial file: what a [`fetch`] would
    /// resume from (for `tracker.file(path, size, resumed_from)`). Reads only small files.
    ///
    /// [`fetch`]: Transfer::fetch
    pub fn bytes_on_disk(&self, request: &FetchRequest, dest: &Path) -> u64 {
        crate::fetch::bytes_on_disk(request, dest)
    }

    /// Sends an API or metadata request through the engine's client (proxies, timeouts, user
    /// agent). Retries connection failures, resets, 5xx and 429 (honouring `Retry-After` up to
    /// [`TransferConfig::max_backoff`]) with backoff; never sends `auth` to a host other than
    /// `url`'s. Returns the final response whatever its status: the vendor maps 401, 404, …
    pub async fn send(
        &self,
        request: ApiRequest,
        cancel: &CancellationToken,
    ) -> Result<Response, TransferError> {
        let inner = &self.inner;
        let headers = http::header_map(&request.headers)?;
        let what = format!("{} {}", request.method, redact_url(&request.url));
        let policy = &inner.retry;
        let max = policy.max_attempts();
        let mut attempt = 1;
        let mut silent = 0;
        loop {
            let out = Outgoing {
                method: request.method.clone(),
                url: request.url.clone(),
                auth: request.auth.as_ref().map(|s| (s, &request.url)),
                headers: headers.clone(),
                follow_redirects: request.follow_redirects,
                response_timeout: inner.config.response_timeout,
            };
            let delay = match http::send(&inner.api, out, cancel).await {
                Ok(sent) => {
                    let status = sent.response.status();
                    if !is_transient_status(status.as_u16()) {
                        return Ok(sent.response);
                    }
                    let wait = retry_after(sent.response.headers());
                    match policy.wait_before(attempt + 1, wait) {
                        // Attempts used up, or the server wants more patience than we have:
                        // let the vendor say so.
                        None => return Ok(sent.response),
                        Some(d) => {
                            retry_note(&request.url, status.as_u16(), "", attempt + 1, max, d);
                            d
                        }
                    }
                }
                Err(SendError::Cancelled) => return Err(TransferError::cancelled()),
                Err(e @ SendError::NoResponse(_)) if silent + 1 >= MAX_SILENT_ANSWERS => {
                    return Err(e.into_transfer(&what, attempt));
                }
                Err(e) if e.is_transient() => {
                    let Some(d) = policy.wait_before(attempt + 1, None) else {
                        return Err(e.into_transfer(&what, attempt));
                    };
                    if matches!(e, SendError::NoResponse(_)) {
                        silent += 1;
                    }
                    retry_note(&request.url, 0, &e.describe(), attempt + 1, max, d);
                    d
                }
                Err(e) => return Err(e.into_transfer(&what, attempt)),
            };
            tokio::select! {
                _ = tokio::time::sleep(delay) => {}
                _ = cancel.cancelled() => return Err(TransferError::cancelled()),
            }
            attempt += 1;
        }
    }
}

/// Target of the record [`Transfer::send`] logs before each retry, so a front end can show it
/// (the metadata requests that resolve a reference happen before there is a file to report on).
pub const RETRY_LOG_TARGET: &str = "rbee_transfer::retry";

/// Logs one retry of an API request: the host, the status (0 for a failed connection) or the
/// error, the attempt about to be made of how many, and the wait before it.
fn retry_note(url: &Url, status: u16, error: &str, attempt: u32, of: u32, delay: Duration) {
    tracing::info!(
        target: RETRY_LOG_TARGET,
        host = url.host_str().unwrap_or_default(),
        status,
        error,
        attempt,
        of,
        delay_ms = delay.as_millis() as u64,
        "retrying"
    );
}
