//! The call shape an existing rbee-hive's job router and worker spawner are written against
//! (`ModelProvisioner::new(catalog)`, `download_model(job_id, model)`, `find_local_model`, …),
//! as a thin façade over [`Provisioner`] and [`Catalog`]: every call is one call of theirs, so
//! the behaviour — resume, integrity, sharing, queueing — is exactly theirs.
//!
//! Progress is per job id: [`ModelProvisioner::tracker`] hands out the job's
//! [`DownloadTracker`] (subscribe to it before starting, to miss nothing), which carries the
//! job id on every event, sends heartbeats while the download runs, and ends with exactly one
//! final event. [`ModelProvisioner::cancel`] stops a job's download, keeping partial files for
//! a later resume. Wiring it into a daemon is described in `docs/integrating.md`.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};

use rbee_artifact::{ArtifactRef, DownloadTracker, Error, JobId, Result, lock_unpoisoned};
use rbee_catalog::{ArtifactStatus, Catalog, CatalogEntry, Listing, Removed, VerifyReport};
use tokio_util::sync::CancellationToken;

use crate::options::{ProvisionOptions, ProvisionerConfig};
use crate::provisioner::Provisioner;
use crate::vendors::{VendorSettings, standard_vendors};

/// The provisioner as a job router calls it. Cheap to share behind an `Arc`.
#[derive(Debug)]
pub struct ModelProvisioner {
    provisioner: Provisioner,
    jobs: Mutex<HashMap<String, JobHandle>>,
}

/// A job's tracker and the token that cancels its download.
#[derive(Debug, Clone)]
struct JobHandle {
    tracker: DownloadTracker,
    cancel: CancellationToken,
}

impl ModelProvisioner {
    /// Every vendor of this build with its default settings (HuggingFace and GitHub read
    /// their endpoints and tokens from the environment), over `catalog`.
    pub fn new(catalog: Arc<Catalog>) -> Result<Self> {
        let vendors = standard_vendors(&VendorSettings::default())?;
        Ok(Self::with_provisioner(Provisioner::new(
            catalog,
            vendors,
            ProvisionerConfig::default(),
        )))
    }

    /// The façade over a provisioner configured by the caller (vendors, queue, heartbeat).
    pub fn with_provisioner(provisioner: Provisioner) -> Self {
        Self {
            provisioner,
            jobs: Mutex::new(HashMap::new()),
        }
    }

    /// The provisioner underneath, for everything the façade does not cover.
    pub fn provisioner(&self) -> &Provisioner {
        &self.provisioner
    }

    /// The catalog underneath.
    pub fn catalog(&self) -> &Arc<Catalog> {
        self.provisioner.catalog()
    }

    /// The tracker of job `job_id`, made on first ask: subscribe to it before
    /// [`download_model`](Self::download_model) starts, and every event of the download —
    /// queued, started, file and progress events, heartbeats, the final one — reaches you,
    /// stamped with `job_id`. The job is forgotten when its download returns.
    pub fn tracker(&self, job_id: &str) -> DownloadTracker {
        self.handle(job_id).tracker
    }

    /// Cancels job `job_id`'s download: it returns [`Error::Cancelled`], and partial files stay
    /// for a resume. A job cancelled before its download started stays cancelled: its
    /// [`download_model`](Self::download_model) returns [`Error::Cancelled`] at once, so a cancel
    /// that races the router's start is never lost. Whether there was a job still to cancel.
    pub fn cancel(&self, job_id: &str) -> bool {
        match self.lock().get(job_id) {
            Some(job) if !job.cancel.is_cancelled() => {
                job.cancel.cancel();
                true
            }
            _ => false,
        }
    }

    /// Makes `model` (a reference such as `hf:org/repo:Q4_K_M`, `gh:…`, `https://…`,
    /// `file:/…`) ready in the catalog, reporting progress on job `job_id`'s tracker, and
    /// returns the catalog id that the other calls take. Ready already: returns at once.
    pub async fn download_model(&self, job_id: &str, model: &str) -> Result<String> {
        let job = self.handle(job_id);
        let result = match model.trim().parse::<ArtifactRef>() {
            // Cancelled before it started: not even a ready model is handed out.
            _ if job.cancel.is_cancelled() => {
                job.tracker.cancelled();
                Err(Error::Cancelled)
            }
            Ok(reference) => {
                self.provisioner
                    .provision(
                        reference,
                        ProvisionOptions::default(),
                        &job.tracker,
                        job.cancel.clone(),
                    )
                    .await
            }
            Err(e) => {
                let e = Error::InvalidReference(e);
                job.tracker.failed(e.to_string(), e.code());
                Err(e)
            }
        };
        self.lock().remove(job_id);
        Ok(result?.entry.record.id.clone())
    }

    /// The main file of a ready model named by id or reference — the path a worker loads —
    /// or `None` when it is not ready here (or the name is not a reference).
    pub fn find_local_model(&self, model: &str) -> Option<PathBuf> {
        self.ready_entry(model).map(|entry| entry.primary_path())
    }

    /// Every catalog entry, and folders whose record cannot be read.
    pub fn list_models(&self) -> Result<Vec<Listing>> {
        self.catalog().list()
    }

    /// The catalog entry of a model named by id or reference, in whatever state it is.
    pub fn get_model_info(&self, model: &str) -> Result<CatalogEntry> {
        self.catalog().get(model)?.ok_or_else(|| Error::NotFound {
            message: format!(
                "`{model}` is not in the catalog at {}",
                self.catalog().root().display()
            ),
        })
    }

    /// Re-hashes a model's files against their recorded digests.
    pub async fn verify_model(&self, model: &str) -> Result<VerifyReport> {
        self.provisioner.verify(model).await
    }

    /// Removes a model: its record and its files, partial ones included. Refused while a
    /// download holds it.
    pub fn delete_model(&self, model: &str) -> Result<Removed> {
        self.catalog().remove(model)
    }

    /// The same as [`delete_model`](Self::delete_model): an entry's files and its record go
    /// together, so the catalog never lists a model whose files are gone.
    pub fn delete_model_files(&self, model: &str) -> Result<Removed> {
        self.delete_model(model)
    }

    /// Bytes the catalog takes on disk: complete files plus partial ones kept for resumes.
    pub fn get_total_disk_usage(&self) -> Result<u64> {
        let usage = self.catalog().disk_usage()?;
        Ok(usage.total_bytes.saturating_add(usage.partial_bytes))
    }

    fn ready_entry(&self, model: &str) -> Option<CatalogEntry> {
        self.catalog()
            .get(model)
            .ok()
            .flatten()
            .filter(|entry| matches!(entry.record.status, ArtifactStatus::Ready))
    }

    fn handle(&self, job_id: &str) -> JobHandle {
        self.lock()
            .entry(job_id.to_string())
            .or_insert_with(|| JobHandle {
                tracker: DownloadTracker::new(JobId(job_id.to_string())),
                cancel: CancellationToken::new(),
            })
            .clone()
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<String, JobHandle>> {
        lock_unpoisoned(&self.jobs)
    }
}
