//! The daemon's wire shapes, shared by the server (which writes them) and [`crate::client`]
//! (which reads them): job requests, responses, event-stream data and error bodies. The routes
//! and fields are described in `docs/http-api.md`.

use std::path::PathBuf;

use rbee_artifact::{JobId, ProgressEvent, ProgressSnapshot};
use rbee_catalog::{ArtifactRecord, CatalogEntry, Listing};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The operations `POST /v1/jobs` accepts, as spelled in `operation`.
pub const OPERATIONS: [&str; 5] = [
    "model_download",
    "model_list",
    "model_get",
    "model_delete",
    "model_verify",
];

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

    /// The operation's name, as in `operation`.
    pub fn operation(&self) -> &'static str {
        match self {
            JobRequest::ModelDownload { .. } => "model_download",
            JobRequest::ModelList { .. } => "model_list",
            JobRequest::ModelGet { .. } => "model_get",
            JobRequest::ModelDelete { .. } => "model_delete",
            JobRequest::ModelVerify { .. } => "model_verify",
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
        }
    }
}

fn is_false(b: &bool) -> bool {
    !*b
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
    /// `model_download`, `model_list`, `model_get`, `model_delete` or `model_verify`.
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
    pub record: ArtifactRecord,
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

/// The SSE event names that end a job's stream.
pub const FINAL_EVENTS: [&str; 3] = ["done", "error", "cancelled"];

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
            json!({"model": "x"}),
        ] {
            assert!(
                serde_json::from_value::<JobRequest>(bad.clone()).is_err(),
                "{bad} was accepted"
            );
        }
        for name in OPERATIONS {
            let mut body = json!({"operation": name, "model": "x"});
            if name == "model_list" {
                body.as_object_mut().unwrap().remove("model");
            }
            let request: JobRequest = serde_json::from_value(body).unwrap();
            assert_eq!(request.operation(), name);
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
