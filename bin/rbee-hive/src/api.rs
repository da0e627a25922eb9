//! The daemon's wire shapes, shared by the server (which writes them) and the client
//! (which reads them): job requests, responses, event-stream data and error bodies. The routes
//! and fields are described in `docs/http-api.md`.

use std::path::PathBuf;
use std::sync::Arc;

use rbee_artifact::{EventKind, JobId, ProgressEvent, ProgressSnapshot};
use rbee_catalog::{ArtifactRecord, CatalogEntry, Listing};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// An operation `POST /v1/jobs` accepts; [`OperationName::as_str`] is how `operation` spells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OperationName {
    /// `model_download`.
    ModelDownload,
    /// `model_list`.
    ModelList,
    /// `model_get`.
    ModelGet,
    /// `model_delete`.
    ModelDelete,
    /// `model_verify`.
    ModelVerify,
    /// `model_inspect`.
    ModelInspect,
}

impl OperationName {
    /// Every operation, in the order the docs list them.
    pub const ALL: [OperationName; 6] = [
        OperationName::ModelDownload,
        OperationName::ModelList,
        OperationName::ModelGet,
        OperationName::ModelDelete,
        OperationName::ModelVerify,
        OperationName::ModelInspect,
    ];

    /// The name, as in `operation`.
    pub fn as_str(self) -> &'static str {
        match self {
            OperationName::ModelDownload => "model_download",
            OperationName::ModelList => "model_list",
            OperationName::ModelGet => "model_get",
            OperationName::ModelDelete => "model_delete",
            OperationName::ModelVerify => "model_verify",
            OperationName::ModelInspect => "model_inspect",
        }
    }

    /// The operation spelled `name`, if there is one.
    pub fn named(name: &str) -> Option<OperationName> {
        OperationName::ALL.into_iter().find(|o| o.as_str() == name)
    }

    /// Every name, comma-separated, for messages.
    pub fn list() -> String {
        OperationName::ALL.map(OperationName::as_str).join(", ")
    }
}

impl std::fmt::Display for OperationName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The body of `POST /v1/jobs`: one operation, named by its `operation` field.
///
/// Unknown operations and unknown fields are refused.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "operation", rename_all = "snake_case", deny_unknown_fields)]
pub enum JobRequest {
    /// Make a model ready in the catalog.
    ModelDownload {
        /// The reference to fetch.
        model: String,
        /// The hive the job is meant for; refused when it is not this one.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        hive_id: Option<String>,
        /// Only files matching these globs.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        include: Vec<String>,
        /// Leave out files matching these globs.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        exclude: Vec<String>,
        /// Use only what is already on the daemon's machine.
        #[serde(default, skip_serializing_if = "is_false")]
        offline: bool,
        /// Ask the vendor again even when a pinned model is ready.
        #[serde(default, skip_serializing_if = "is_false")]
        refresh: bool,
    },
    /// List the catalog.
    ModelList {
        /// The hive the job is meant for.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        hive_id: Option<String>,
    },
    /// One catalog entry.
    ModelGet {
        /// Id or reference.
        model: String,
        /// The hive the job is meant for.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        hive_id: Option<String>,
    },
    /// Remove an entry.
    ModelDelete {
        /// Id or reference.
        model: String,
        /// The hive the job is meant for.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        hive_id: Option<String>,
    },
    /// Re-hash an entry's files.
    ModelVerify {
        /// Id or reference.
        model: String,
        /// The hive the job is meant for.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        hive_id: Option<String>,
    },
    /// Read a model's headers without downloading it (as `POST /v1/inspect`).
    ModelInspect(InspectRequest),
}

impl JobRequest {
    /// A download of `model` with no options.
    pub fn download(model: impl Into<String>) -> Self {
        JobRequest::ModelDownload {
            model: model.into(),
            hive_id: None,
            include: Vec::new(),
            exclude: Vec::new(),
            offline: false,
            refresh: false,
        }
    }

    /// The operation.
    pub fn operation(&self) -> OperationName {
        match self {
            JobRequest::ModelDownload { .. } => OperationName::ModelDownload,
            JobRequest::ModelList { .. } => OperationName::ModelList,
            JobRequest::ModelGet { .. } => OperationName::ModelGet,
            JobRequest::ModelDelete { .. } => OperationName::ModelDelete,
            JobRequest::ModelVerify { .. } => OperationName::ModelVerify,
            JobRequest::ModelInspect(_) => OperationName::ModelInspect,
        }
    }

    /// The hive the request names, if any.
    pub fn hive_id(&self) -> Option<&str> {
        match self {
            JobRequest::ModelDownload { hive_id, .. }
            | JobRequest::ModelList { hive_id }
            | JobRequest::ModelGet { hive_id, .. }
            | JobRequest::ModelDelete { hive_id, .. }
            | JobRequest::ModelVerify { hive_id, .. } => hive_id.as_deref(),
            JobRequest::ModelInspect(r) => r.hive_id.as_deref(),
        }
    }
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// The body of `POST /v1/inspect` (and of the `model_inspect` job): a model to read the headers
/// of, and the settings of its memory estimate. Unknown fields are refused.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InspectRequest {
    /// The reference to inspect (as for a download; `file:` only inside `--allow-local`).
    pub model: String,
    /// The hive the request is meant for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hive_id: Option<String>,
    /// Only files matching these globs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub include: Vec<String>,
    /// Leave out files matching these globs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub exclude: Vec<String>,
    /// Every array item and every tensor, not only lengths.
    #[serde(default, skip_serializing_if = "is_false")]
    pub full: bool,
    /// Context per sequence (default: the training context, at most 8192).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ctx: Option<u64>,
    /// KV cache type: f16 (default), bf16, f32, q8_0, q4_0, q4_1, q5_0, q5_1, iq4_nl.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kv_type: Option<String>,
    /// Repeating layers on the GPU (default: all, and the output layer).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ngl: Option<u64>,
    /// Parallel sequences (default 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parallel: Option<u64>,
    /// GPU memory in bytes to judge the fit against, instead of the daemon's GPUs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vram: Option<u64>,
    /// Flash attention (default true).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flash_attn: Option<bool>,
}

impl InspectRequest {
    /// An inspection of `model` with the default estimate.
    pub fn new(model: impl Into<String>) -> Self {
        InspectRequest {
            model: model.into(),
            ..InspectRequest::default()
        }
    }
}

/// The body of `POST /v1/models/download`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelDownloadRequest {
    /// The reference to fetch.
    pub model_ref: String,
    /// The hive the download is meant for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hive_id: Option<String>,
    /// Only files matching these globs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub include: Vec<String>,
    /// Leave out files matching these globs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub exclude: Vec<String>,
    /// Use only what is already on the daemon's machine.
    #[serde(default, skip_serializing_if = "is_false")]
    pub offline: bool,
    /// Ask the vendor again even when a pinned model is ready.
    #[serde(default, skip_serializing_if = "is_false")]
    pub refresh: bool,
}

/// The answer to `POST /v1/models/download`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DownloadAccepted {
    /// The job's id.
    pub download_id: JobId,
    /// Where the job stands.
    pub status: JobState,
    /// The job's state route.
    pub job_url: String,
    /// The job's event stream.
    pub sse_url: String,
}

/// Where a job stands, as clients see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobState {
    /// Accepted; waiting for a download slot, or resolving what to fetch.
    Queued,
    /// Working: files are being fetched (or, for catalog operations, the operation runs).
    Running,
    /// Stopped by `pause`, partial files kept; `resume` continues it.
    Paused,
    /// Finished successfully.
    Done,
    /// Finished with an error.
    Failed,
    /// Cancelled; partial files are kept for a later download of the same model.
    Cancelled,
}

impl JobState {
    /// Whether the job is over (`done`, `failed` or `cancelled`).
    pub fn is_final(self) -> bool {
        matches!(
            self,
            JobState::Done | JobState::Failed | JobState::Cancelled
        )
    }

    /// The state's name, as on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Queued => "queued",
            JobState::Running => "running",
            JobState::Paused => "paused",
            JobState::Done => "done",
            JobState::Failed => "failed",
            JobState::Cancelled => "cancelled",
        }
    }
}

/// A job as `GET /v1/jobs/{job_id}` shows it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct JobView {
    /// The job's id.
    pub job_id: JobId,
    /// One of [`OperationName::ALL`], spelled as in `operation`.
    pub operation: String,
    /// The model the job is about (canonical reference for downloads, as given otherwise).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// Where the job stands.
    pub state: JobState,
    /// Which attempt this is (1, then one more per resume).
    pub attempt: u32,
    /// Jobs ahead in the download queue, while queued.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queue_position: Option<usize>,
    /// Bytes, total, percent, speed and ETA of a download.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub progress: Option<ProgressSnapshot>,
    /// What a finished job produced (see `docs/http-api.md`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<Value>,
    /// Why a job failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorBody>,
    /// When the job was created (ms since the Unix epoch).
    pub created_at_ms: u64,
    /// When its state last changed.
    pub updated_at_ms: u64,
    /// Its event stream.
    pub sse_url: String,
}

/// The answer to `GET /v1/jobs`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct JobList {
    /// Every job the daemon remembers.
    pub jobs: Vec<JobView>,
}

/// A catalog entry as `GET /v1/models/{id}` shows it: its record, and where its files are.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ModelView {
    /// The entry's record (`metadata.json`).
    #[serde(flatten)]
    pub record: Arc<ArtifactRecord>,
    /// The entry's folder.
    pub dir: PathBuf,
    /// The main file (the one to load).
    #[serde(default)]
    pub path: PathBuf,
    /// Every file.
    #[serde(default)]
    pub paths: Vec<PathBuf>,
    /// Bytes of all files.
    #[serde(default)]
    pub size: u64,
    /// Whether the recorded reference is a signed URL whose credentials were not stored:
    /// sending it back would ask for a URL that was never valid.
    #[serde(default, skip_serializing_if = "is_false")]
    pub reference_redacted: bool,
    /// What the model is, as `rbee model info --json` shows it (`summary`, `files`,
    /// `metadata`, `estimate`; `{"error"}` when its headers cannot be read). Only in
    /// `GET /v1/models/{id}`, and only for entries with a GGUF or safetensors file.
    #[serde(default, skip_serializing_if = "serde_json::Value::is_null")]
    pub model: serde_json::Value,
}

impl ModelView {
    /// How the daemon lists `entry` (without the model summary).
    pub fn of(entry: &CatalogEntry) -> Self {
        Self {
            record: entry.record.clone(),
            dir: entry.dir.clone(),
            path: entry.primary_path(),
            paths: entry.paths(),
            size: entry.record.total_size(),
            reference_redacted: entry
                .record
                .reference
                .get::<rbee_vendor_url::UrlRef>()
                .is_some_and(|u| rbee_artifact::lost_credentials(&u.url)),
            model: serde_json::Value::Null,
        }
    }

    /// How `GET /v1/models/{id}` shows `entry`: with the model summary, read from the headers
    /// of its files on disk (blocking file reads).
    pub fn with_summary(entry: &CatalogEntry) -> Self {
        Self {
            model: rbee_gguf::entry_summary_json(entry),
            ..Self::of(entry)
        }
    }

    /// The catalog entry it describes.
    pub fn into_entry(self) -> CatalogEntry {
        CatalogEntry {
            record: self.record,
            dir: self.dir,
        }
    }
}

/// One item of `GET /v1/models`: an entry, or a folder whose record cannot be read.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ModelListItem {
    /// A folder whose record is missing or unreadable.
    Damaged {
        /// The folder's id.
        id: String,
        /// Always `{"state": "damaged", "error": …}`.
        status: DamagedStatus,
        /// The folder.
        dir: PathBuf,
    },
    /// A readable entry.
    Model(Box<ModelView>),
}

/// The `status` of a damaged listing item.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DamagedStatus {
    /// Always `damaged`.
    pub state: DamagedState,
    /// What is wrong with it.
    pub error: String,
}

/// The one state a damaged listing item has.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DamagedState {
    /// The record cannot be read.
    Damaged,
}

impl ModelListItem {
    /// How the daemon shows a listing item.
    pub fn of(item: &Listing) -> Self {
        match item {
            Listing::Entry(entry) => ModelListItem::Model(Box::new(ModelView::of(entry))),
            Listing::Damaged { id, dir, reason } => ModelListItem::Damaged {
                id: id.clone(),
                status: DamagedStatus {
                    state: DamagedState::Damaged,
                    error: reason.clone(),
                },
                dir: dir.clone(),
            },
        }
    }

    /// The listing item it describes.
    pub fn into_listing(self) -> Listing {
        match self {
            ModelListItem::Model(view) => Listing::Entry(view.into_entry()),
            ModelListItem::Damaged { id, status, dir } => Listing::Damaged {
                id,
                dir,
                reason: status.error,
            },
        }
    }
}

/// The answer to `GET /v1/models` (and the result of a `model_list` job).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ModelList {
    /// The catalog's folder on the daemon's machine.
    pub root: PathBuf,
    /// Every entry.
    pub models: Vec<ModelListItem>,
}

impl ModelList {
    /// How the daemon shows a listing of the catalog at `root`.
    pub fn of(root: &std::path::Path, listing: &[Listing]) -> Self {
        Self {
            root: root.to_path_buf(),
            models: listing.iter().map(ModelListItem::of).collect(),
        }
    }
}

/// The `error` object of an error response, also used in job states.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// Stable, machine-readable code (see `docs/http-api.md`).
    pub code: String,
    /// What happened and what to do, for people.
    pub message: String,
}

/// An error response: `{"error": {"code": …, "message": …}}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorResponse {
    /// The error.
    pub error: ErrorBody,
}

/// The events that end a job's stream: their SSE names, and the provisioner events they
/// stand for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FinalEvent {
    /// The job finished (`completed`).
    Done,
    /// The job failed (`failed`).
    Error,
    /// The job was cancelled (`cancelled`).
    Cancelled,
}

impl FinalEvent {
    /// Every final event.
    pub const ALL: [FinalEvent; 3] = [FinalEvent::Done, FinalEvent::Error, FinalEvent::Cancelled];

    /// Its SSE name.
    pub fn name(self) -> &'static str {
        match self {
            FinalEvent::Done => "done",
            FinalEvent::Error => "error",
            FinalEvent::Cancelled => "cancelled",
        }
    }

    /// The final event with this SSE name, if it is one.
    pub fn named(name: &str) -> Option<FinalEvent> {
        FinalEvent::ALL.into_iter().find(|f| f.name() == name)
    }

    /// The final event a provisioner event is sent as, if it is a final one.
    pub fn of(kind: &EventKind) -> Option<FinalEvent> {
        match kind {
            EventKind::Completed { .. } => Some(FinalEvent::Done),
            EventKind::Failed { .. } => Some(FinalEvent::Error),
            EventKind::Cancelled { .. } => Some(FinalEvent::Cancelled),
            _ => None,
        }
    }
}

/// The data of a job-stream event: the provisioner's event with the attempt it belongs to, a
/// line for people, and — on the final event — what the job produced.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobEvent {
    /// The provisioner's event.
    #[serde(flatten)]
    pub event: ProgressEvent,
    /// Which attempt of the job sent it.
    pub attempt: u32,
    /// What happened, for people.
    pub message: String,
    /// What the job produced (final events only; a failed verification carries its report).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<Value>,
}

/// The data of the `paused` event: the attempt stopped, its partial files kept.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PausedEvent {
    /// The job.
    pub job_id: JobId,
    /// The sequence number of the attempt's last event.
    pub seq: u64,
    /// Milliseconds since the Unix epoch.
    pub timestamp_ms: u64,
    /// Always `paused`.
    pub event: String,
    /// Bytes kept for the resume.
    pub bytes_on_disk: u64,
    /// The attempt that was paused.
    pub attempt: u32,
    /// What happened and how to continue, for people.
    pub message: String,
}

/// The data of the `resumed` event: a new attempt of the job starts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResumedEvent {
    /// The job.
    pub job_id: JobId,
    /// Always 0: the new attempt's events count from here.
    pub seq: u64,
    /// Milliseconds since the Unix epoch.
    pub timestamp_ms: u64,
    /// Always `resumed`.
    pub event: String,
    /// The new attempt.
    pub attempt: u32,
    /// What happened, for people.
    pub message: String,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn job_requests_are_tagged_by_operation_and_refuse_what_they_do_not_know() {
        let request: JobRequest = serde_json::from_value(json!({
            "operation": "model_download", "model": "hf:a/b", "include": ["*.gguf"]
        }))
        .unwrap();
        assert_eq!(
            request,
            JobRequest::ModelDownload {
                model: "hf:a/b".into(),
                hive_id: None,
                include: vec!["*.gguf".into()],
                exclude: vec![],
                offline: false,
                refresh: false,
            }
        );
        assert_eq!(
            serde_json::to_value(JobRequest::download("hf:a/b")).unwrap(),
            json!({"operation": "model_download", "model": "hf:a/b"})
        );
        for bad in [
            json!({"operation": "model_explode"}),
            json!({"operation": "model_list", "modle": "x"}),
            json!({"operation": "model_get", "model": "x", "include": []}),
            json!({"operation": "model_inspect", "model": "x", "refresh": true}),
            json!({"model": "x"}),
        ] {
            assert!(
                serde_json::from_value::<JobRequest>(bad.clone()).is_err(),
                "{bad} was accepted"
            );
        }
        for operation in OperationName::ALL {
            let name = operation.as_str();
            assert_eq!(OperationName::named(name), Some(operation));
            let mut body = json!({"operation": name, "model": "x"});
            if name == "model_list" {
                body.as_object_mut().unwrap().remove("model");
            }
            let request: JobRequest = serde_json::from_value(body).unwrap();
            assert_eq!(request.operation(), operation);
        }
    }

    #[test]
    fn damaged_items_and_entries_list_apart() {
        let damaged: ModelListItem = serde_json::from_value(json!({
            "id": "hf--a--b", "status": {"state": "damaged", "error": "no record"}, "dir": "/c/hf/a/b"
        }))
        .unwrap();
        assert!(matches!(damaged, ModelListItem::Damaged { ref id, .. } if id == "hf--a--b"));
    }
}
