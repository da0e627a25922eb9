//! What jobs do: run downloads through the provisioner, and the catalog operations (also used
//! directly by the `/v1/models` routes).

use std::sync::Arc;
use std::time::Duration;

use axum::http::StatusCode;
use rbee_artifact::{DownloadTracker, Error, human_bytes};
use rbee_catalog::{CatalogEntry, Listing, Removed, VerifyReport};
use rbee_model_provisioner::{Outcome, Provisioned};
use serde_json::{Value, json};

use crate::api::ErrorBody;
use crate::api::{ModelList, ModelView};
use crate::error::ApiError;
use crate::feed::feed_item;
use crate::jobs::{Attempt, Finish, Job, Resume, Stop, Stopping};
use crate::request::{DownloadRequest, Operation, check_local_access, model_key};
use crate::state::HiveState;

/// How long `cancel` and `pause` wait for the transfer to stop and record its state.
const STOP_WAIT: Duration = Duration::from_secs(10);

/// Registers a job for `operation` and starts it.
pub(crate) fn start(state: &HiveState, operation: Operation) -> Result<Arc<Job>, ApiError> {
    if state.is_shutting_down() {
        return Err(ApiError::shutting_down());
    }
    if let Operation::Download(request) = &operation {
        check_local_access(&request.reference, &state.config().local_access())?;
    }
    let job = state.jobs().create(operation)?;
    let attempt = job.attempt();
    run_attempt(state, &job, attempt);
    Ok(job)
}

/// Cancels or pauses `job`, waiting (a bounded time) for its transfer to stop, so that when this
/// returns the partial files are on disk and the catalog says `incomplete`.
pub(crate) async fn stop(state: &HiveState, job: &Arc<Job>, why: Stop) -> Result<(), ApiError> {
    if let Some(attempt) = begin_stop(state, job, why)?
        && !attempt.wait_ended(STOP_WAIT).await
    {
        tracing::warn!(job = %job.id, "the transfer has not stopped yet");
    }
    Ok(())
}

/// Tells `job` to stop; returns the attempt to wait for, if one is winding down.
pub(crate) fn begin_stop(
    state: &HiveState,
    job: &Arc<Job>,
    why: Stop,
) -> Result<Option<Arc<Attempt>>, ApiError> {
    match job.stop(why)? {
        Stopping::Wait(attempt) => Ok(Some(attempt)),
        Stopping::CancelledWhilePaused(attempt) => {
            // The paused attempt already told the feed "paused"; now the download is over.
            if let (Some(model), Some(event)) = (job.operation.model(), attempt.final_event())
                && let Some(item) = feed_item(&event, &model, false, &mut true)
            {
                state.feed().publish(item);
            }
            state.jobs().retire(job);
            Ok(None)
        }
        Stopping::Nothing => Ok(None),
    }
}

// The daemon's shutdown is defined beside the job operations it runs, so that the state
// stays below them and names none.
impl HiveState {
    /// Stops taking jobs, cancels every queued, running and paused job (partial files stay on
    /// disk and their catalog entries become `incomplete`), waits up to
    /// [`HiveConfig::shutdown_grace`](crate::config::HiveConfig::shutdown_grace) for the
    /// downloads to record that, then ends every event stream (each job stream has sent its
    /// final `cancelled` event by then). Safe to call more than once.
    pub async fn shutdown(&self) {
        if self.begin_shutdown() {
            self.streams_end().cancelled().await;
            return;
        }
        let mut stopping = Vec::new();
        for job in self.jobs().list() {
            if let Ok(Some(attempt)) = begin_stop(self, &job, Stop::Shutdown) {
                stopping.push(attempt);
            }
        }
        tracing::info!(jobs = stopping.len(), "shutting down: cancelling jobs");
        let grace = self.config().shutdown_grace;
        let all = futures::future::join_all(stopping.iter().map(|a| a.wait_ended(grace)));
        let ended = all.await.into_iter().filter(|ended| *ended).count();
        if ended < stopping.len() {
            tracing::warn!(
                left = stopping.len() - ended,
                "some downloads did not stop within the grace period"
            );
        }
        self.streams_end().cancel();
    }
}

/// Resumes a paused download under the same job id, from the bytes on disk.
pub(crate) async fn resume(state: &HiveState, job: &Arc<Job>) -> Result<(), ApiError> {
    if state.is_shutting_down() {
        return Err(ApiError::shutting_down());
    }
    loop {
        match job.resume()? {
            Resume::Started(attempt) => {
                run_attempt(state, job, attempt);
                return Ok(());
            }
            Resume::WaitFor(attempt) => {
                if !attempt.wait_ended(STOP_WAIT).await {
                    return Err(ApiError::invalid_state(
                        "the job is still pausing (its transfer has not stopped yet); retry in a moment",
                    ));
                }
            }
            Resume::AlreadyRunning => return Ok(()),
        }
    }
}

/// Runs one attempt of `job` in the background.
fn run_attempt(state: &HiveState, job: &Arc<Job>, attempt: Arc<Attempt>) {
    let state = state.clone();
    let job = job.clone();
    // A new attempt is live; only a retired (finished) one has no tracker.
    let Some(tracker) = attempt.tracker() else {
        return;
    };
    match job.operation.clone() {
        Operation::Download(request) => {
            state
                .feed()
                .follow(request.reference.to_string(), attempt.clone());
            tokio::spawn(async move {
                let result = download(&state, &request, &tracker, &attempt).await;
                let finish = match result {
                    Ok(p) => Finish::Done {
                        summary: format!(
                            "Ready: {} ({})",
                            p.entry.record.id,
                            human_bytes(p.entry.record.total_size())
                        ),
                        result: download_result(&p),
                    },
                    Err(e) if e.is_cancelled() => Finish::Stopped,
                    Err(e) => Finish::Failed {
                        error: ErrorBody {
                            code: e.code().into(),
                            message: e.to_string(),
                        },
                        result: None,
                    },
                };
                if job.finish(&attempt, finish) {
                    state.jobs().retire(&job);
                }
                attempt.end();
            });
        }
        operation => {
            tokio::spawn(async move {
                let outcome = catalog_operation(&state, &operation, &tracker).await;
                let line = match outcome {
                    Ok(done) => {
                        let summary = done.summary.clone();
                        let finish = Finish::Done {
                            result: done.result,
                            summary: done.summary,
                        };
                        job.finish(&attempt, finish);
                        tracker.completed(done.id, done.paths, done.bytes);
                        summary
                    }
                    Err((error, result)) => {
                        let body = error.body().clone();
                        job.finish(
                            &attempt,
                            Finish::Failed {
                                error: body.clone(),
                                result,
                            },
                        );
                        tracker.failed(body.message.clone(), body.code);
                        body.message
                    }
                };
                tracing::debug!(job = %job.id, "{line}");
                state.jobs().retire(&job);
                attempt.end();
            });
        }
    }
}

async fn download(
    state: &HiveState,
    request: &DownloadRequest,
    tracker: &DownloadTracker,
    attempt: &Attempt,
) -> rbee_artifact::Result<Provisioned> {
    state
        .provisioner()
        .provision(
            request.reference.clone(),
            request.options.clone(),
            tracker,
            attempt.cancel.clone(),
        )
        .await
}

/// The `result` of a finished download.
fn download_result(p: &Provisioned) -> Value {
    let record = &p.entry.record;
    json!({
        "id": record.id,
        "reference": record.reference,
        "path": p.entry.primary_path(),
        "paths": p.paths(),
        "size": record.total_size(),
        "outcome": match p.outcome {
            Outcome::AlreadyReady => "already_ready",
            Outcome::Downloaded => "downloaded",
            Outcome::Updated => "updated",
        },
    })
}

/// A finished catalog operation: its result, a summary line, and what its final event says.
struct Done {
    result: Value,
    summary: String,
    id: String,
    paths: Vec<std::path::PathBuf>,
    bytes: u64,
}

type Failure = (ApiError, Option<Value>);

async fn catalog_operation(
    state: &HiveState,
    operation: &Operation,
    tracker: &DownloadTracker,
) -> Result<Done, Failure> {
    match operation {
        Operation::List => {
            tracker.message("Listing the catalog");
            let (root, listing) = list_models(state).await.map_err(|e| (e, None))?;
            let bytes = listing
                .iter()
                .map(|l| match l {
                    Listing::Entry(e) => e.record.total_size(),
                    Listing::Damaged { .. } => 0,
                })
                .sum();
            Ok(Done {
                summary: format!(
                    "{} entr{} in the catalog at {}",
                    listing.len(),
                    if listing.len() == 1 { "y" } else { "ies" },
                    root.display()
                ),
                result: listing_json(&root, &listing),
                id: String::new(),
                paths: Vec::new(),
                bytes,
            })
        }
        Operation::Get { model } => {
            tracker.message(format!("Looking up {model}"));
            let entry = get_model(state, model).await.map_err(|e| (e, None))?;
            Ok(Done {
                summary: format!(
                    "{}: {}, {}",
                    entry.record.id,
                    entry.record.status.name(),
                    human_bytes(entry.record.total_size())
                ),
                result: model_detail_json(entry.clone())
                    .await
                    .map_err(|e| (e, None))?,
                id: entry.record.id.clone(),
                paths: entry.paths(),
                bytes: entry.record.total_size(),
            })
        }
        Operation::Delete { model } => {
            tracker.message(format!("Removing {model}"));
            let removed = delete_model(state, model).await.map_err(|e| (e, None))?;
            Ok(Done {
                summary: format!(
                    "Removed {} ({} freed)",
                    removed.id,
                    human_bytes(removed.bytes)
                ),
                result: json!(removed),
                id: removed.id,
                paths: Vec::new(),
                bytes: removed.bytes,
            })
        }
        Operation::Verify { model } => {
            tracker.message(format!("Verifying {model}"));
            let report = verify_model(state, model).await.map_err(|e| (e, None))?;
            let result = json!(report);
            if !report.ok() {
                let message = format!(
                    "{} failed verification: {}; download it again to fetch the changed files",
                    report.id,
                    report.problems().join("; ")
                );
                return Err((
                    ApiError::new(StatusCode::CONFLICT, "integrity", message),
                    Some(result),
                ));
            }
            let entry = get_model(state, &report.id).await.ok();
            Ok(Done {
                summary: format!(
                    "{}: {} file{} verified",
                    report.id,
                    report.files.len(),
                    if report.files.len() == 1 { "" } else { "s" }
                ),
                result,
                id: report.id.clone(),
                paths: entry.as_ref().map(CatalogEntry::paths).unwrap_or_default(),
                bytes: entry.map(|e| e.record.total_size()).unwrap_or(0),
            })
        }
        Operation::Inspect(inspect) => {
            tracker.message(format!("Reading the headers of {}", inspect.reference));
            // Like the other catalog operations it is not cancellable; the engine's retries
            // and stall limits bound it.
            let report =
                crate::inspect::run(state, inspect, &tokio_util::sync::CancellationToken::new())
                    .await
                    .map_err(|e| (e, None))?;
            let summary = match &report.verdict {
                Some(v) => format!("{}: {}", inspect.reference, v.line),
                None => format!(
                    "{}: no memory estimate (the header lacks layer and head counts)",
                    inspect.reference
                ),
            };
            Ok(Done {
                result: report.to_json(),
                summary,
                id: String::new(),
                paths: Vec::new(),
                bytes: 0,
            })
        }
        Operation::Download(_) => Err((
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "a download was run as a catalog operation",
            ),
            None,
        )),
    }
}

/// Runs blocking catalog work off the async threads.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, Error> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| Error::task_failed("running a catalog operation", e))?
        .map_err(ApiError::from)
}

/// The catalog's root and entries.
pub(crate) async fn list_models(
    state: &HiveState,
) -> Result<(std::path::PathBuf, Vec<Listing>), ApiError> {
    let catalog = state.provisioner().catalog().clone();
    let root = catalog.root().to_path_buf();
    let listing = blocking(move || catalog.list()).await?;
    Ok((root, listing))
}

/// One entry, by id or reference.
pub(crate) async fn get_model(state: &HiveState, model: &str) -> Result<CatalogEntry, ApiError> {
    let key = model_key(model)?;
    let catalog = state.provisioner().catalog().clone();
    let found = blocking(move || {
        let found = catalog.read(&key)?;
        if found.is_some() {
            catalog.mark_used(&key);
        }
        Ok(found)
    })
    .await?;
    found.ok_or_else(|| not_in_catalog(model))
}

/// Removes an entry, refusing while a job downloads it.
pub(crate) async fn delete_model(state: &HiveState, model: &str) -> Result<Removed, ApiError> {
    let key = model_key(model)?;
    refuse_if_downloading(state, &key)?;
    let catalog = state.provisioner().catalog().clone();
    let id = key.id();
    blocking(move || catalog.remove(&id))
        .await
        .map_err(|e| match e.code() {
            "not_found" => not_in_catalog(model),
            _ => e,
        })
}

/// Re-hashes an entry, refusing while a job downloads it (its files are not all there yet).
pub(crate) async fn verify_model(state: &HiveState, model: &str) -> Result<VerifyReport, ApiError> {
    let key = model_key(model)?;
    refuse_if_downloading(state, &key)?;
    state
        .provisioner()
        .verify(&key.id())
        .await
        .map_err(|e| match e {
            Error::NotFound { .. } => not_in_catalog(model),
            e => e.into(),
        })
}

fn refuse_if_downloading(
    state: &HiveState,
    key: &rbee_artifact::CatalogKey,
) -> Result<(), ApiError> {
    match state.jobs().downloading(key) {
        Some(job) => Err(Error::Busy {
            id: key.id(),
            reason: format!(
                "job {} is downloading it; cancel that job first (POST /v1/jobs/{}/cancel)",
                job.id, job.id
            ),
        }
        .into()),
        None => Ok(()),
    }
}

fn not_in_catalog(model: &str) -> ApiError {
    Error::NotFound {
        message: format!("`{model}` is not in the catalog; GET /v1/models lists what is"),
    }
    .into()
}

/// `GET /v1/models/{id}`: the entry, where its files are, and its model summary (the header
/// reads off the runtime).
pub(crate) async fn model_detail_json(entry: CatalogEntry) -> Result<Value, ApiError> {
    blocking(move || Ok(serde_json::to_value(ModelView::with_summary(&entry)).unwrap_or_default()))
        .await
}

/// `GET /v1/models`: the root and every entry (damaged ones with their reason).
pub(crate) fn listing_json(root: &std::path::Path, listing: &[Listing]) -> Value {
    serde_json::to_value(ModelList::of(root, listing)).unwrap_or_default()
}
