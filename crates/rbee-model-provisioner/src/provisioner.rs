//! `provision()`: parse → resolve → check the catalog → check disk space → download → verify →
//! mark ready → return local paths.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::Utc;
use rbee_artifact::lock_unpoisoned;
use rbee_artifact::partial::{part_path, part_state_path};
use rbee_artifact::{
    ArtifactRef, CatalogKey, DownloadTracker, DownloadedFile, Error, FileSource, JobId,
    ResolveOptions, ResolvedArtifact, ResolvedFile, Result, Sha256Digest, TrackerConfig,
    available_space, human_bytes, redact_url,
};
use rbee_catalog::layout;
use rbee_catalog::{
    ArtifactRecord, ArtifactStatus, Catalog, CatalogEntry, DownloadLease, FileRecord, RECORD_SCHEMA,
};
use rbee_vendor_github::GhRef;
use rbee_vendor_huggingface::HfRef;
use rbee_vendor_url::UrlRef;
use serde::Serialize;
use tokio::sync::{Semaphore, watch};
use tokio_util::sync::CancellationToken;

use crate::registry::VendorRegistry;
use crate::shared::SharedTier;

/// Tuning for a [`Provisioner`].
#[derive(Debug, Clone)]
pub struct ProvisionerConfig {
    /// Artifacts downloaded at the same time; further requests wait in a queue (default 2).
    pub max_concurrent_downloads: usize,
    /// Interval of `heartbeat` events on each caller's tracker (default 1 s).
    pub heartbeat_interval: Duration,
    /// How often a download's byte count is written to its catalog record (default 2 s).
    pub status_interval: Duration,
    /// Refuse to start when the file system lacks the space (default on).
    pub check_disk_space: bool,
    /// Link files already in the catalog (same sha256) instead of downloading them (default on).
    pub reuse_by_digest: bool,
    /// Tuning of the trackers of shared transfers.
    pub tracker: TrackerConfig,
    /// Size budget of the catalog in bytes (default none): before a download that would
    /// exceed it, least recently used unpinned ready models are evicted (each named in a
    /// message); a download that cannot fit even then fails before any byte.
    pub max_cache_bytes: Option<u64>,
}

impl Default for ProvisionerConfig {
    fn default() -> Self {
        Self {
            max_concurrent_downloads: 2,
            heartbeat_interval: Duration::from_secs(1),
            status_interval: Duration::from_secs(2),
            check_disk_space: true,
            reuse_by_digest: true,
            tracker: TrackerConfig::default(),
            max_cache_bytes: None,
        }
    }
}

/// Per-request knobs.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct ProvisionOptions {
    /// Passed to the vendor's resolve (globs, offline).
    pub resolve: ResolveOptions,
    /// Ask the vendor again even when a pinned artifact is ready (moving references — branches,
    /// "latest", local files — are always re-checked; that costs one metadata request).
    pub refresh: bool,
}

impl ProvisionOptions {
    /// Options with these resolve options.
    pub fn new(resolve: ResolveOptions) -> Self {
        Self {
            resolve,
            refresh: false,
        }
    }

    /// The catalog entry a request for `reference` with these options writes to: the reference
    /// and the selection (`--include`/`--exclude`) together. Requests share an entry, and a
    /// transfer, only when both are equal.
    pub fn key(&self, reference: &ArtifactRef) -> CatalogKey {
        CatalogKey::of_request(reference, &self.resolve.selection())
    }
}

/// How a provision request was satisfied.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// It was already ready and current: nothing was fetched.
    AlreadyReady,
    /// It was fetched (or completed from a partial).
    Downloaded,
    /// It was ready, the vendor had a newer revision, and only changed files were fetched.
    Updated,
}

/// A ready artifact.
#[derive(Debug, Clone)]
pub struct Provisioned {
    /// Its catalog entry.
    pub entry: CatalogEntry,
    /// How the request was satisfied.
    pub outcome: Outcome,
}

impl Provisioned {
    /// Absolute paths of the artifact's files.
    pub fn paths(&self) -> Vec<PathBuf> {
        self.entry.paths()
    }
}

/// What a download would do (`--dry-run`): nothing is written to make it.
#[derive(Debug, Clone, Serialize)]
pub struct Plan {
    /// Catalog id the artifact would have.
    pub id: String,
    /// The canonical reference.
    pub reference: String,
    /// The resolved revision.
    pub revision: Option<String>,
    /// Where the files would go.
    pub dir: PathBuf,
    /// Every file of the artifact.
    pub files: Vec<PlannedFile>,
    /// Bytes of all files.
    pub total_bytes: u64,
    /// Bytes that would be downloaded (files not yet present, minus partial data on disk).
    pub bytes_to_fetch: u64,
    /// Free bytes on the destination file system.
    pub free_bytes: Option<u64>,
    /// Vendor notes (what was picked and why).
    pub notes: Vec<String>,
}

/// One file of a [`Plan`].
#[derive(Debug, Clone, Serialize)]
pub struct PlannedFile {
    /// Path within the artifact.
    pub path: String,
    /// Size, when known.
    pub size: Option<u64>,
    /// Expected digest, when published.
    pub sha256: Option<Sha256Digest>,
    /// `fetch`, `resume` (partial data on disk) or `present` (already in the catalog).
    pub action: &'static str,
}

/// Provisions artifacts into a catalog using registered vendors. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Provisioner {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    catalog: Arc<Catalog>,
    vendors: VendorRegistry,
    config: ProvisionerConfig,
    slots: Arc<Semaphore>,
    waiting: AtomicUsize,
    inflight: Mutex<HashMap<CatalogKey, Arc<Inflight>>>,
    shared: std::sync::OnceLock<SharedTier>,
}

type SharedResult = Option<std::result::Result<Provisioned, Arc<Error>>>;

/// One transfer, shared by every caller that asked for the same artifact.
#[derive(Debug)]
struct Inflight {
    reference: ArtifactRef,
    tracker: DownloadTracker,
    result: watch::Receiver<SharedResult>,
    cancel: CancellationToken,
    waiters: AtomicUsize,
}

/// A download in progress, for observers (the daemon's global progress stream).
#[derive(Debug, Clone)]
pub struct ActiveDownload {
    /// Catalog id.
    pub id: String,
    /// The reference.
    pub reference: ArtifactRef,
    /// The shared transfer's tracker (subscribe to it).
    pub tracker: DownloadTracker,
}

impl Provisioner {
    /// A provisioner over `catalog` with `vendors`.
    pub fn new(catalog: Arc<Catalog>, vendors: VendorRegistry, config: ProvisionerConfig) -> Self {
        // Whoever holds a provisioner reads references and records of every vendor of the
        // build, whichever vendors it was given.
        crate::vendors::register_references();
        let slots = Arc::new(Semaphore::new(config.max_concurrent_downloads.max(1)));
        Self {
            inner: Arc::new(Inner {
                catalog,
                vendors,
                config,
                slots,
                waiting: AtomicUsize::new(0),
                inflight: Mutex::new(HashMap::new()),
                shared: std::sync::OnceLock::new(),
            }),
        }
    }

    /// The catalog.
    pub fn catalog(&self) -> &Arc<Catalog> {
        &self.inner.catalog
    }

    /// The vendors.
    pub fn vendors(&self) -> &VendorRegistry {
        &self.inner.vendors
    }

    /// Puts the cluster's shared store between the catalog and the origins (once, before the
    /// first request; a second call is refused with `false`).
    pub fn set_shared_store(&self, tier: SharedTier) -> bool {
        self.inner.shared.set(tier).is_ok()
    }

    /// The cluster's shared store, when one is set.
    pub fn shared_store(&self) -> Option<&SharedTier> {
        self.inner.shared.get()
    }

    /// Downloads in progress in this process.
    pub fn active_downloads(&self) -> Vec<ActiveDownload> {
        lock_unpoisoned(&self.inner.inflight)
            .iter()
            .map(|(key, job)| ActiveDownload {
                id: key.id(),
                reference: job.reference.clone(),
                tracker: job.tracker.clone(),
            })
            .collect()
    }

    /// Resolves `reference` and says what a download would do, without writing anything.
    pub async fn plan(
        &self,
        reference: &ArtifactRef,
        options: &ProvisionOptions,
        cancel: &CancellationToken,
    ) -> Result<Plan> {
        let vendor = self.inner.vendors.get(reference.scheme())?;
        let key = options.key(reference);
        // The same shortcuts as `provision`: what it would return without the network, the plan
        // shows without the network.
        if (reference.is_pinned() || options.resolve.offline)
            && !options.refresh
            && let Some(entry) = self.ready_entry(&key)
            && pin_holds(reference, &entry)?
        {
            return Ok(ready_plan(&key, entry, Vec::new()));
        }
        let resolved = match vendor.resolve(reference, &options.resolve, cancel).await {
            Ok(resolved) => resolved,
            Err(e) if is_unreachable(&e) => match self.ready_entry(&key) {
                Some(entry) if pin_holds(reference, &entry).unwrap_or(false) => {
                    let note = format!(
                        "could not check {reference} for updates ({e}); the ready copy on disk would be used"
                    );
                    return Ok(ready_plan(&key, entry, vec![note]));
                }
                _ => return Err(e),
            },
            Err(e) => return Err(e),
        };
        check_paths(&resolved)?;
        let dir = self.inner.catalog.entry_dir(&key);
        let existing = self.inner.catalog.read(&key).ok().flatten();
        let changed = changed_files(existing.as_ref(), &resolved);
        let mut files = Vec::new();
        let mut bytes_to_fetch = 0;
        for f in &resolved.files {
            let fetch = changed.iter().any(|c| c.path == f.path);
            let partial = if fetch { partial_len(&dir, &f.path) } else { 0 };
            if fetch {
                bytes_to_fetch = u64::saturating_add(
                    bytes_to_fetch,
                    f.size.unwrap_or(0).saturating_sub(partial),
                );
            }
            files.push(PlannedFile {
                path: f.path.clone(),
                size: f.size,
                sha256: f.sha256,
                action: match (fetch, partial) {
                    (false, _) => "present",
                    (true, 0) => "fetch",
                    (true, _) => "resume",
                },
            });
        }
        Ok(Plan {
            id: key.id(),
            reference: reference.to_string(),
            revision: resolved.revision.clone(),
            total_bytes: resolved.total_size(),
            bytes_to_fetch,
            free_bytes: available_space(&dir).ok(),
            dir: layout::files_dir(&dir),
            files,
            notes: resolved.notes,
        })
    }

    /// Makes `reference` ready in the catalog and returns it.
    ///
    /// Progress goes to `tracker` (its job id is stamped on every event), ending with exactly one
    /// final event. A request for an artifact another caller is already fetching joins that
    /// transfer. Cancelling `cancel` detaches this caller at once; the transfer itself stops
    /// (keeping partial files for a resume) when its last caller has cancelled.
    pub async fn provision(
        &self,
        reference: ArtifactRef,
        options: ProvisionOptions,
        tracker: &DownloadTracker,
        cancel: CancellationToken,
    ) -> Result<Provisioned> {
        let result = self
            .provision_inner(reference, options, tracker, &cancel)
            .await;
        if let Ok(p) = &result {
            self.inner.catalog.mark_used(&p.entry.record.key());
        }
        // Whatever happened, the caller's stream ends with a final event (a tracker that already
        // has one ignores another).
        finish(tracker, &result);
        result
    }

    async fn provision_inner(
        &self,
        reference: ArtifactRef,
        options: ProvisionOptions,
        tracker: &DownloadTracker,
        cancel: &CancellationToken,
    ) -> Result<Provisioned> {
        let key = options.key(&reference);
        // A pinned artifact that is ready, intact and holds what the pin promises needs no
        // network at all.
        if (reference.is_pinned() || options.resolve.offline)
            && !options.refresh
            && let Some(entry) = self.ready_entry(&key)
            && pin_holds(&reference, &entry)?
        {
            return Ok(Provisioned {
                entry,
                outcome: Outcome::AlreadyReady,
            });
        }
        if cancel.is_cancelled() {
            return Err(Error::Cancelled);
        }

        let job = self.join_or_start(&key, reference, options, tracker.job_id());
        let follower = tracker.follow(&job.tracker);
        let _heartbeat = tracker.spawn_heartbeat(self.inner.config.heartbeat_interval);

        let mut result_rx = job.result.clone();
        let outcome = tokio::select! {
            r = wait_result(&mut result_rx) => r,
            () = cancel.cancelled() => {
                let last = {
                    let _map = lock_unpoisoned(&self.inner.inflight);
                    let last = job.waiters.fetch_sub(1, Ordering::AcqRel) == 1;
                    if last {
                        job.cancel.cancel();
                    }
                    last
                };
                if last {
                    // Last caller: the transfer stops; wait for it to leave the catalog true.
                    let _ = wait_result(&mut result_rx).await;
                    let _ = tokio::time::timeout(Duration::from_secs(2), follower).await;
                } else {
                    follower.abort();
                }
                return Err(Error::Cancelled);
            }
        };
        job.waiters.fetch_sub(1, Ordering::AcqRel);
        // Let the follower forward the final event before the caller stops listening.
        let _ = tokio::time::timeout(Duration::from_secs(2), follower).await;
        outcome
    }

    fn ready_entry(&self, key: &CatalogKey) -> Option<CatalogEntry> {
        let entry = self.inner.catalog.read(key).ok().flatten()?;
        (entry.record.status == ArtifactStatus::Ready && entry.files_present()).then_some(entry)
    }

    fn join_or_start(
        &self,
        key: &CatalogKey,
        reference: ArtifactRef,
        options: ProvisionOptions,
        job_id: &JobId,
    ) -> Arc<Inflight> {
        let mut map = lock_unpoisoned(&self.inner.inflight);
        if let Some(job) = map.get(key)
            && !job.cancel.is_cancelled()
        {
            // Registered under the map lock, so a last caller cancelling at the same moment
            // sees this one.
            job.waiters.fetch_add(1, Ordering::AcqRel);
            return job.clone();
        }
        let tracker =
            DownloadTracker::with_config(job_id.clone(), self.inner.config.tracker.clone());
        let (tx, rx) = watch::channel(None);
        let job = Arc::new(Inflight {
            reference: reference.clone(),
            tracker: tracker.clone(),
            result: rx,
            cancel: CancellationToken::new(),
            waiters: AtomicUsize::new(1),
        });
        map.insert(key.clone(), job.clone());
        let this = self.clone();
        let key = key.clone();
        let task_job = job.clone();
        tokio::spawn(async move {
            // Run in a task of its own so that even a panic ends with the map cleaned and every
            // caller answered, instead of a dead entry that every later request would join.
            let work = {
                let (this, key, tracker, cancel) = (
                    this.clone(),
                    key.clone(),
                    tracker.clone(),
                    task_job.cancel.clone(),
                );
                tokio::spawn(async move {
                    this.run(&key, &reference, &options, &tracker, &cancel)
                        .await
                })
            };
            let result = match work.await {
                Ok(result) => result,
                Err(e) => Err(Error::task_failed("downloading", e)),
            };
            finish(&tracker, &result);
            {
                let mut map = lock_unpoisoned(&this.inner.inflight);
                if map.get(&key).is_some_and(|j| Arc::ptr_eq(j, &task_job)) {
                    map.remove(&key);
                }
            }
            let _ = tx.send(Some(result.map_err(Arc::new)));
        });
        job
    }

    /// The shared transfer: queue, resolve, compare with the catalog, lease, fetch, record.
    async fn run(
        &self,
        key: &CatalogKey,
        reference: &ArtifactRef,
        options: &ProvisionOptions,
        tracker: &DownloadTracker,
        cancel: &CancellationToken,
    ) -> Result<Provisioned> {
        let _slot = self.take_slot(tracker, cancel).await?;
        let catalog = &self.inner.catalog;
        let vendor = self.inner.vendors.get(reference.scheme())?.clone();

        let resolved = match vendor.resolve(reference, &options.resolve, cancel).await {
            Ok(resolved) => resolved,
            Err(e) if is_unreachable(&e) => {
                // Never a copy that breaks the reference's pin, even offline.
                if let Some(entry) = self.ready_entry(key)
                    && pin_holds(reference, &entry).unwrap_or(false)
                {
                    tracker.message(format!(
                        "could not check {reference} for updates ({e}); using the ready copy on disk"
                    ));
                    return Ok(Provisioned {
                        entry,
                        outcome: Outcome::AlreadyReady,
                    });
                }
                match self.resolve_from_shared(key, reference, tracker).await? {
                    Some(resolved) => resolved,
                    None => return Err(e),
                }
            }
            Err(e) => return Err(e),
        };
        check_paths(&resolved)?;
        if let Some(entry) = self.current(key, &resolved) {
            return Ok(Provisioned {
                entry,
                outcome: Outcome::AlreadyReady,
            });
        }

        let lease = self.take_lease(key, reference, tracker, cancel).await?;
        // Another process may have finished it while we waited.
        if let Some(entry) = self.current(key, &resolved) {
            return Ok(Provisioned {
                entry,
                outcome: Outcome::AlreadyReady,
            });
        }
        // Read again under the lease: another process may have changed it while we waited. A
        // record that cannot be read vouches for nothing on disk.
        let (existing, trusted) = match catalog.read(key) {
            Ok(entry) => (entry, true),
            Err(e) => {
                tracing::warn!(error = %e, "replacing a damaged catalog record");
                (None, false)
            }
        };
        let was_ready = existing
            .as_ref()
            .is_some_and(|e| e.record.status == ArtifactStatus::Ready);
        let to_fetch = changed_files(existing.as_ref(), &resolved);
        let dir = lease.dir().to_path_buf();
        let files_dir = lease.files_dir();
        for f in &to_fetch {
            self.check_no_links(&dir, &f.path)?;
        }
        // Bytes at a final name are only ever adopted (by a vendor that finds a complete file
        // in place) when the record vouches for them. Delete those it does not: files a check
        // found wrong, files of a record that cannot be read, and — after a change — the old
        // copies of changed files, which must not pass for the new ones by their size.
        let suspect = suspect_files(existing.as_ref());
        for f in &to_fetch {
            let distrusted = !trusted || suspect.contains(&f.path);
            let replaced = was_ready && existing_lists(existing.as_ref(), &f.path);
            if distrusted {
                remove_with_partials(&files_dir, &f.path);
            } else if replaced {
                remove_final(&files_dir, &f.path);
            }
        }

        let total = resolved.checked_total_size().ok_or_else(|| Error::Protocol {
            message: format!(
                "the sizes the vendor announced for {reference} add up to more than 16 EiB; it is not telling the truth, nothing was downloaded"
            ),
        })?;
        // What is fetched is a part of the total, so it cannot overflow once the total did not.
        let needed: u64 = to_fetch
            .iter()
            .filter(|f| !linkable(f, &dir))
            .map(|f| {
                f.size
                    .unwrap_or(0)
                    .saturating_sub(partial_len(&dir, &f.path))
            })
            .sum();
        if let Some(budget) = self.inner.config.max_cache_bytes {
            self.keep_within_budget(key, needed, budget, tracker)
                .await?;
        }
        if self.inner.config.check_disk_space
            && let Ok(available) = available_space(&files_dir)
            && needed > available
        {
            return Err(Error::InsufficientSpace {
                path: files_dir,
                needed,
                available,
            });
        }

        let mut record = ArtifactRecord {
            schema: RECORD_SCHEMA,
            id: key.id(),
            reference: reference.clone(),
            selection: options.resolve.selection(),
            scheme: reference.scheme(),
            revision: resolved.revision.clone(),
            files: resolved
                .files
                .iter()
                .map(|f| file_record(f, existing.as_ref()))
                .collect(),
            status: ArtifactStatus::Downloading { bytes: 0, total },
            created_at: existing
                .as_ref()
                .map(|e| e.record.created_at)
                .unwrap_or_else(Utc::now),
            updated_at: Utc::now(),
            notes: resolved.notes.clone(),
        };
        catalog.save(&record)?;

        let result = self
            .fetch(
                &vendor,
                &resolved,
                to_fetch,
                &files_dir,
                tracker,
                cancel,
                &mut record,
                key,
            )
            .await;
        match result {
            Ok(()) => {
                remove_stale_files(existing.as_ref(), &resolved, &files_dir, catalog);
                record.status = ArtifactStatus::Ready;
                record.updated_at = Utc::now();
                let entry = catalog.save(&record)?;
                drop(lease);
                Ok(Provisioned {
                    entry,
                    outcome: if was_ready {
                        Outcome::Updated
                    } else {
                        Outcome::Downloaded
                    },
                })
            }
            Err(e) => {
                let status = if e.is_cancelled() {
                    ArtifactStatus::Incomplete {
                        bytes: tracker.bytes(),
                        total,
                    }
                } else {
                    ArtifactStatus::Failed {
                        error: e.to_string(),
                        code: e.code().to_string(),
                        suspect: match &e {
                            Error::Integrity { path, .. } | Error::SizeMismatch { path, .. } => {
                                vec![path.clone()]
                            }
                            _ => Vec::new(),
                        },
                    }
                };
                // On a full disk this write fails too; readers then see the entry as
                // incomplete once the lease is released.
                if let Err(save_error) = catalog.set_status(key, status) {
                    tracing::warn!(error = %save_error.report(), "could not record the outcome");
                }
                Err(e)
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    async fn fetch(
        &self,
        vendor: &Arc<dyn rbee_artifact::VendorSource>,
        resolved: &ResolvedArtifact,
        mut to_fetch: Vec<ResolvedFile>,
        files_dir: &Path,
        tracker: &DownloadTracker,
        cancel: &CancellationToken,
        record: &mut ArtifactRecord,
        key: &CatalogKey,
    ) -> Result<()> {
        tracker.started(
            resolved.reference.to_string(),
            resolved.total_size(),
            resolved.files.len(),
        );
        for f in &resolved.files {
            if !to_fetch.iter().any(|t| t.path == f.path) {
                tracker.file_reused(&f.path, f.size.unwrap_or(0), "unchanged in the catalog");
            }
        }
        let wanted: Vec<_> = to_fetch
            .iter()
            .filter_map(|f| Some((f.sha256?, f.size?)))
            .collect();
        if self.inner.config.reuse_by_digest && !wanted.is_empty() {
            let index = self.inner.catalog.find_copies(&wanted)?;
            let mut remaining = Vec::new();
            for f in to_fetch {
                match self.reuse_by_digest(&index, &f, files_dir, tracker).await {
                    Ok(Some(sha)) => set_digest(record, &f.path, sha, f.size.unwrap_or(0)),
                    Ok(None) => remaining.push(f),
                    Err(e) => {
                        tracing::debug!(error = %e, path = %f.path, "could not reuse a local copy");
                        remaining.push(f)
                    }
                }
            }
            to_fetch = remaining;
        }

        let shared = self.shared_store().filter(|_| !to_fetch.is_empty());
        let mut lease = None;
        if let Some(tier) = shared {
            let updater = self.spawn_status_updater(key.clone(), tracker.clone());
            let outcome = tier
                .fetch(key, resolved, to_fetch, files_dir, tracker, cancel, record)
                .await;
            updater.abort();
            (to_fetch, lease) = outcome?;
        }
        let from_origin = !to_fetch.is_empty();
        if from_origin {
            let updater = self.spawn_status_updater(key.clone(), tracker.clone());
            let lease = lease.map(Arc::new);
            let reporter = match (shared, &lease) {
                (Some(tier), Some(lease)) => {
                    Some(tier.spawn_progress(lease.clone(), tracker.clone()))
                }
                _ => None,
            };
            let followers = match (shared, &lease) {
                (Some(tier), Some(_)) => Some(tier.follow_uploads(&to_fetch, files_dir, cancel)),
                _ => None,
            };
            let outcome = vendor
                .download(resolved, &to_fetch, files_dir, tracker, cancel)
                .await
                .and_then(|downloaded| {
                    check_downloaded(&to_fetch, &downloaded, files_dir)?;
                    Ok(downloaded)
                });
            // Only after the check: a vendor that returned Ok without a file must not leave an
            // upload waiting for it.
            if let Some(followers) = followers {
                followers.finish(outcome.is_ok()).await;
            }
            updater.abort();
            if let Some(reporter) = reporter {
                reporter.abort();
                // Abort only asks; the reporter's clone of the lease is gone once it has ended.
                let _ = reporter.await;
            }
            if let Ok(downloaded) = &outcome {
                for d in downloaded {
                    set_digest(record, &d.path, d.sha256, d.size);
                }
                if let Some(tier) = shared {
                    tier.publish(record, files_dir, tracker, cancel).await;
                }
            }
            // Released whatever the outcome, so that waiting hives take over at once instead
            // of waiting for the lease to expire.
            if let Some(lease) = lease.and_then(|l| Arc::try_unwrap(l).ok())
                && let Err(e) = lease.release().await
            {
                tracing::warn!(error = %e, "could not release the shared store's lease; it expires on its own");
            }
            outcome?;
        }
        // Every file must now be in place at its recorded size, as a regular file.
        for f in &record.files {
            let path = self.check_no_links(files_dir.parent().unwrap_or(files_dir), &f.path)?;
            let actual = std::fs::symlink_metadata(&path)
                .and_then(|m| {
                    if m.is_file() {
                        Ok(m.len())
                    } else {
                        Err(std::io::Error::other("it is not a regular file"))
                    }
                })
                .map_err(|e| {
                    Error::io(
                        format!("{} is missing after the download", path.display()),
                        e,
                    )
                })?;
            if actual != f.size {
                return Err(Error::SizeMismatch {
                    path: f.path.clone(),
                    expected: f.size,
                    actual,
                });
            }
        }
        Ok(())
    }

    /// Links a ready catalog file with the same digest instead of downloading it.
    async fn reuse_by_digest(
        &self,
        index: &HashMap<(Sha256Digest, u64), PathBuf>,
        file: &ResolvedFile,
        files_dir: &Path,
        tracker: &DownloadTracker,
    ) -> Result<Option<Sha256Digest>> {
        let (Some(sha), Some(size)) = (file.sha256, file.size) else {
            return Ok(None);
        };
        let Some(source) = index.get(&(sha, size)).cloned() else {
            return Ok(None);
        };
        let target = files_dir.join(&file.path);
        if source == target || !self.inner.catalog.is_inside(&source) {
            return Ok(None);
        }
        let target_for_task = target.clone();
        let source_for_task = source.clone();
        // The other entry's record is not proof: its file may have changed on disk since.
        let intact = tokio::task::spawn_blocking(move || {
            let (actual, _) = Sha256Digest::of_file(&source_for_task, |_| {})
                .map_err(|e| Error::io(format!("reading {}", source_for_task.display()), e))?;
            if actual != sha {
                return Ok(false);
            }
            link_or_copy(&source_for_task, &target_for_task).map(|()| true)
        })
        .await
        .map_err(|e| Error::task_failed("linking a catalog file", e))??;
        if !intact {
            tracing::warn!(source = %source.display(), "a catalog file no longer matches its recorded digest; downloading instead");
            return Ok(None);
        }
        tracker.file_reused(&file.path, size, format!("catalog ({})", source.display()));
        Ok(Some(sha))
    }

    fn spawn_status_updater(
        &self,
        key: CatalogKey,
        tracker: DownloadTracker,
    ) -> tokio::task::JoinHandle<()> {
        let catalog = self.inner.catalog.clone();
        let interval = self.inner.config.status_interval;
        tokio::spawn(async move {
            let mut ticker = tokio::time::interval(interval);
            ticker.tick().await;
            loop {
                ticker.tick().await;
                let status = ArtifactStatus::Downloading {
                    bytes: tracker.bytes(),
                    total: tracker.total(),
                };
                let catalog = catalog.clone();
                let key = key.clone();
                // Only while still downloading: an update that lands after the final status
                // was written (abort does not stop a blocking write) must not undo it.
                let _ = tokio::task::spawn_blocking(move || {
                    catalog.update(&key, |r| {
                        if matches!(r.status, ArtifactStatus::Downloading { .. }) {
                            r.status = status;
                        }
                    })
                })
                .await;
            }
        })
    }

    async fn take_slot(
        &self,
        tracker: &DownloadTracker,
        cancel: &CancellationToken,
    ) -> Result<tokio::sync::OwnedSemaphorePermit> {
        if let Ok(permit) = self.inner.slots.clone().try_acquire_owned() {
            return Ok(permit);
        }
        let position = self.inner.waiting.fetch_add(1, Ordering::AcqRel);
        tracker.queued(position);
        let result = tokio::select! {
            permit = self.inner.slots.clone().acquire_owned() => {
                permit.map_err(|_| Error::Cancelled)
            }
            () = cancel.cancelled() => Err(Error::Cancelled),
        };
        self.inner.waiting.fetch_sub(1, Ordering::AcqRel);
        result
    }

    /// The final path of `rel` in the entry at `dir`, refused when it, its partial files or a
    /// folder on the way is a symbolic link (rbee never makes one there).
    fn check_no_links(&self, dir: &Path, rel: &str) -> Result<PathBuf> {
        let path = self.inner.catalog.file_inside(dir, rel)?;
        for partial in [part_path(&path), part_state_path(&path)] {
            if !self.inner.catalog.is_inside(&partial) {
                return Err(Error::Damaged {
                    id: self.inner.catalog.id_of(dir),
                    reason: format!(
                        "{} is a symbolic link; rbee does not follow links inside its catalog",
                        partial.display()
                    ),
                });
            }
        }
        Ok(path)
    }

    /// Takes the artifact's download lease, waiting (cancellably) while another process holds it.
    async fn take_lease(
        &self,
        key: &CatalogKey,
        reference: &ArtifactRef,
        tracker: &DownloadTracker,
        cancel: &CancellationToken,
    ) -> Result<DownloadLease> {
        let mut told = false;
        loop {
            if let Some(lease) = self.inner.catalog.try_lease_key(key.clone())? {
                return Ok(lease);
            }
            if !told {
                tracker.message(format!(
                    "another rbee process is downloading {reference}; waiting for it to finish"
                ));
                told = true;
            }
            tokio::select! {
                () = tokio::time::sleep(Duration::from_millis(250)) => {}
                () = cancel.cancelled() => return Err(Error::Cancelled),
            }
        }
    }

    /// The entry, when it is ready, intact, and holds exactly what `resolved` describes.
    fn current(&self, key: &CatalogKey, resolved: &ResolvedArtifact) -> Option<CatalogEntry> {
        let entry = self.ready_entry(key)?;
        let same_files = entry.record.files.len() == resolved.files.len();
        (same_files && changed_files(Some(&entry), resolved).is_empty()).then_some(entry)
    }

    /// Evicts least recently used unpinned models until `needed` more bytes fit in `budget`,
    /// naming each on the tracker; fails (nothing downloaded yet) when they cannot fit.
    async fn keep_within_budget(
        &self,
        key: &CatalogKey,
        needed: u64,
        budget: u64,
        tracker: &DownloadTracker,
    ) -> Result<()> {
        let catalog = self.inner.catalog.clone();
        let keep = key.clone();
        let evicted = tokio::task::spawn_blocking(move || catalog.make_room(needed, budget, &keep))
            .await
            .map_err(|e| Error::task_failed("making room in the cache", e))??;
        for removed in evicted {
            tracker.message(format!(
                "evicted {} ({} freed): least recently used, to keep the cache under its {} budget",
                removed.id,
                human_bytes(removed.bytes),
                human_bytes(budget)
            ));
        }
        Ok(())
    }

    /// The artifact as the shared store's manifest describes it, when the origin cannot be asked.
    async fn resolve_from_shared(
        &self,
        key: &CatalogKey,
        reference: &ArtifactRef,
        tracker: &DownloadTracker,
    ) -> Result<Option<ResolvedArtifact>> {
        let Some(tier) = self.shared_store() else {
            return Ok(None);
        };
        let Some(resolved) = tier.resolve_from_manifest(key, reference, tracker).await? else {
            return Ok(None);
        };
        // The store's copy answers to the reference's pin like a local copy does.
        let digests: Vec<_> = resolved.files.iter().map(|f| f.sha256).collect();
        let holds = pin_holds_for(
            reference,
            &format!("the shared store {}", tier.name()),
            &key.id(),
            resolved.revision.as_deref(),
            &digests,
        )?;
        Ok(holds.then_some(resolved))
    }

    /// Re-hashes an entry's files against their recorded digests (off the async threads).
    pub async fn verify(&self, id_or_reference: &str) -> Result<rbee_catalog::VerifyReport> {
        let catalog = self.inner.catalog.clone();
        let id = id_or_reference.to_string();
        tokio::task::spawn_blocking(move || catalog.verify(&id, |_| {}))
            .await
            .map_err(|e| Error::task_failed("verifying", e))?
    }
}

/// Sends the final event that matches a provision outcome.
fn finish(tracker: &DownloadTracker, result: &Result<Provisioned>) {
    match result {
        Ok(p) => tracker.completed(
            p.entry.record.id.clone(),
            p.paths(),
            p.entry.record.total_size(),
        ),
        Err(e) if e.is_cancelled() => tracker.cancelled(),
        Err(e) => tracker.failed(e.to_string(), e.code()),
    }
}

async fn wait_result(rx: &mut watch::Receiver<SharedResult>) -> Result<Provisioned> {
    let value = rx
        .wait_for(Option::is_some)
        .await
        .map_err(|_| Error::Cancelled)?;
    match value.as_ref() {
        Some(Ok(p)) => Ok(p.clone()),
        Some(Err(e)) => Err(Error::clone(e)),
        None => Err(Error::Cancelled),
    }
}

/// The plan for a ready entry that would be used as it is: every file present, nothing to fetch.
fn ready_plan(key: &CatalogKey, entry: CatalogEntry, notes: Vec<String>) -> Plan {
    let record = &entry.record;
    Plan {
        id: key.id(),
        reference: record.reference.to_string(),
        revision: record.revision.clone(),
        total_bytes: record.total_size(),
        bytes_to_fetch: 0,
        free_bytes: available_space(&entry.dir).ok(),
        dir: entry.files_dir(),
        files: record
            .files
            .iter()
            .map(|f| PlannedFile {
                path: f.path.clone(),
                size: Some(f.size),
                sha256: f.sha256,
                action: "present",
            })
            .collect(),
        notes,
    }
}

/// Errors after which a ready local copy is better than nothing.
fn is_unreachable(e: &Error) -> bool {
    matches!(
        e,
        Error::Network { .. } | Error::Offline { .. } | Error::RateLimited { .. }
    )
}

/// Rejects remote file names that would escape the artifact folder, collide with the engine's
/// own files, or repeat (the same rule as for paths in records read from disk).
fn check_paths(resolved: &ResolvedArtifact) -> Result<()> {
    let mut seen = std::collections::HashSet::new();
    for f in &resolved.files {
        rbee_artifact::check_file_path(&f.path).map_err(|why| Error::Protocol {
            message: format!(
                "the vendor named a file `{}` that cannot be stored safely: {why}",
                f.path.escape_debug()
            ),
        })?;
        if !seen.insert(f.path.as_str()) {
            return Err(Error::Protocol {
                message: format!("the vendor listed `{}` twice", f.path),
            });
        }
    }
    if resolved.files.is_empty() {
        return Err(Error::NotFound {
            message: format!("{} has no files to fetch", resolved.reference),
        });
    }
    Ok(())
}

/// Files of `resolved` that are not already present and identical in `existing`.
fn changed_files(
    existing: Option<&CatalogEntry>,
    resolved: &ResolvedArtifact,
) -> Vec<ResolvedFile> {
    resolved
        .files
        .iter()
        .filter(|f| {
            let Some(entry) = existing else { return true };
            let Some(old) = entry.record.files.iter().find(|o| o.path == f.path) else {
                return true;
            };
            let complete = entry.record.status == ArtifactStatus::Ready
                && std::fs::metadata(layout::file_path(&entry.dir, &f.path))
                    .is_ok_and(|m| m.len() == old.size);
            !(complete && same_content(old, f))
        })
        .cloned()
        .collect()
}

fn same_content(old: &FileRecord, new: &ResolvedFile) -> bool {
    if new.size.is_some_and(|s| s != old.size) {
        return false;
    }
    match (old.sha256, new.sha256, &old.version, &new.version) {
        (Some(a), Some(b), _, _) => a == b,
        (_, _, Some(a), Some(b)) => a == b,
        // Nothing to compare but the size: trust it only when the vendor gave one.
        _ => new.size.is_some(),
    }
}

fn file_record(f: &ResolvedFile, existing: Option<&CatalogEntry>) -> FileRecord {
    let kept_digest = existing
        .and_then(|e| e.record.files.iter().find(|o| o.path == f.path))
        .filter(|old| same_content(old, f))
        .and_then(|old| old.sha256);
    FileRecord {
        path: f.path.clone(),
        size: f.size.unwrap_or(0),
        sha256: f.sha256.or(kept_digest),
        version: f.version.clone(),
        source: Some(match &f.source {
            FileSource::Http { url } => redact_url(url),
            FileSource::Local { path } => path.display().to_string(),
            other => format!("{other:?}"),
        }),
    }
}

fn set_digest(record: &mut ArtifactRecord, path: &str, sha: Sha256Digest, size: u64) {
    if let Some(f) = record.files.iter_mut().find(|f| f.path == path) {
        f.sha256 = Some(sha);
        f.size = size;
    }
}

/// Double-checks the vendor's work against the plan: every requested file came back, with the
/// announced size and digest.
fn check_downloaded(
    wanted: &[ResolvedFile],
    got: &[DownloadedFile],
    files_dir: &Path,
) -> Result<()> {
    for w in wanted {
        let Some(d) = got.iter().find(|d| d.path == w.path) else {
            return Err(Error::Protocol {
                message: format!("the vendor did not deliver {}", w.path),
            });
        };
        if let Some(expected) = w.sha256
            && expected != d.sha256
        {
            let _ = std::fs::remove_file(files_dir.join(&w.path));
            return Err(Error::Integrity {
                path: w.path.clone(),
                expected: expected.into(),
                actual: d.sha256.into(),
            });
        }
        if let Some(size) = w.size
            && size != d.size
        {
            let _ = std::fs::remove_file(files_dir.join(&w.path));
            return Err(Error::SizeMismatch {
                path: w.path.clone(),
                expected: size,
                actual: d.size,
            });
        }
    }
    Ok(())
}

/// Whether a pinned reference's promise holds for its ready entry. A `#sha256=` that differs
/// from the recorded digest is refused at once (the ready copy stays); a commit or tag that the
/// record does not show is resolved again (`false`).
fn pin_holds(reference: &ArtifactRef, entry: &CatalogEntry) -> Result<bool> {
    let record = &entry.record;
    let digests: Vec<_> = record.files.iter().map(|f| f.sha256).collect();
    pin_holds_for(
        reference,
        "the catalog",
        &record.id,
        record.revision.as_deref(),
        &digests,
    )
}

/// [`pin_holds`] for a copy that `holder` describes by its revision and file digests.
fn pin_holds_for(
    reference: &ArtifactRef,
    holder: &str,
    id: &str,
    revision: Option<&str>,
    digests: &[Option<Sha256Digest>],
) -> Result<bool> {
    if let Some(u) = reference.get::<UrlRef>() {
        let Some(pin) = u.sha256 else {
            return Ok(true);
        };
        match digests {
            [only] if *only == Some(pin) => Ok(true),
            [Some(other)] => Err(Error::InvalidRequest(format!(
                "{holder} holds {} (id {id}) with sha256 {other}, but the reference pins sha256 {pin}; nothing was downloaded. If the file at that URL changed, add --refresh to fetch it again and check it against the pin; otherwise correct the digest",
                redact_url(&u.url),
            ))),
            _ => Ok(false),
        }
    } else if let Some(hf) = reference.get::<HfRef>() {
        Ok(match (&hf.revision, revision) {
            (Some(pin), Some(recorded)) => pin.eq_ignore_ascii_case(recorded),
            (None, _) => true,
            (Some(_), None) => false,
        })
    } else if let Some(gh) = reference.get::<GhRef>() {
        Ok(match &gh.tag {
            Some(tag) => revision == Some(tag.as_str()),
            None => true,
        })
    } else {
        Ok(true)
    }
}

/// Files of an entry that a check found wrong.
fn suspect_files(existing: Option<&CatalogEntry>) -> Vec<String> {
    match existing.map(|e| &e.record.status) {
        Some(ArtifactStatus::Failed { suspect, .. }) => suspect.clone(),
        _ => Vec::new(),
    }
}

fn existing_lists(existing: Option<&CatalogEntry>, path: &str) -> bool {
    existing.is_some_and(|e| e.record.files.iter().any(|old| old.path == path))
}

/// Removes a file's final copy (`rel` is a checked path, its folders are not links: a link at
/// the last component is removed itself, never its target).
fn remove_final(files_dir: &Path, rel: &str) {
    let _ = std::fs::remove_file(files_dir.join(rel));
}

/// Removes a file's final copy and its partial data, so nothing of it is adopted or resumed.
pub(crate) fn remove_with_partials(files_dir: &Path, rel: &str) {
    let path = files_dir.join(rel);
    for p in [part_path(&path), part_state_path(&path), path] {
        let _ = std::fs::remove_file(p);
    }
}

/// After an update, files the new revision no longer has are removed.
fn remove_stale_files(
    existing: Option<&CatalogEntry>,
    resolved: &ResolvedArtifact,
    files_dir: &Path,
    catalog: &Catalog,
) {
    let Some(entry) = existing else { return };
    for old in &entry.record.files {
        if !resolved.files.iter().any(|f| f.path == old.path)
            && catalog.file_inside(&entry.dir, &old.path).is_ok()
        {
            remove_final(files_dir, &old.path);
        }
    }
}

/// A local file on the catalog's file system is hard-linked: it takes no new space.
fn linkable(file: &ResolvedFile, dir: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    let FileSource::Local { path } = &file.source else {
        return false;
    };
    match (std::fs::metadata(path), std::fs::metadata(dir)) {
        (Ok(a), Ok(b)) => a.dev() == b.dev(),
        _ => false,
    }
}

fn partial_len(dir: &Path, rel: &str) -> u64 {
    std::fs::metadata(part_path(&layout::file_path(dir, rel)))
        .map(|m| m.len())
        .unwrap_or(0)
}

/// Puts `source` at `target` (creating its folder): a hard link when both are on one file
/// system, else a synced copy, renamed into place so `target` is never half there.
pub fn link_or_copy(source: &Path, target: &Path) -> Result<()> {
    if let Some(parent) = target.parent() {
        std::fs::create_dir_all(parent)
            .map_err(|e| Error::io(format!("creating {}", parent.display()), e))?;
    }
    rbee_artifact::link_or_copy(source, target, &part_path(target)).map_err(|e| {
        Error::io(
            format!("placing {} at {}", source.display(), target.display()),
            e,
        )
    })
}
