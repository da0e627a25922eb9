//! The shared-store tier: between the local catalog and the origin.
//!
//! Order of sources for each file still needed after the local catalog: the cluster's store
//! (by the digest the vendor's resolve gave, or by the store's manifest of the same revision),
//! then the origin. Store reads go through the download engine with a pre-signed URL, so they
//! are ranged, parallel, resumable, rate-limited, cancellable and verified like any download.
//! When files must come from the origin, one hive of the cluster fetches them (the lease
//! holder) and publishes them; the others wait and then read the store. A store that fails is
//! passed over with a warning, unless it is required.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use rbee_artifact::{
    ArtifactRef, CatalogKey, DownloadTracker, Error, FileSource, GitBlobHasher, ResolvedArtifact,
    ResolvedFile, Result, Sha256Digest, human_bytes,
};
use rbee_catalog::ArtifactRecord;
use rbee_shared_store::{
    Election, Elector, Lease, LeaseConfig, MANIFEST_SCHEMA, Manifest, ManifestFile, SharedStore,
    StoreError, diagnose, honours_create_only, layout, publish_blob, read_manifest, write_manifest,
};
use rbee_transfer::{FetchRequest, Transfer, TransferErrorKind};
use tokio_util::sync::CancellationToken;

/// How long a pre-signed read stays valid: long enough for a large file on a slow LAN, and
/// the engine asks again for each fetch.
const READ_URL_LIFETIME: Duration = Duration::from_secs(6 * 3600);

/// How often a waiting hive looks at the store again.
const WAIT_POLL: Duration = Duration::from_millis(500);

/// A cluster's shared store, as the provisioner uses it. Cheap to clone.
#[derive(Debug, Clone)]
pub struct SharedTier {
    inner: Arc<TierInner>,
}

#[derive(Debug)]
struct TierInner {
    store: Arc<dyn SharedStore>,
    elector: Elector,
    transfer: Transfer,
    required: bool,
    name: String,
}

impl SharedTier {
    /// The tier on `store`, for the hive named `hive`, reading through `transfer`. Probes
    /// whether the store honours conditional creates (for leases); a store that cannot be
    /// reached is an error when `required`, else a warning and a tier that will try again on
    /// use.
    pub async fn connect(
        store: Arc<dyn SharedStore>,
        hive: impl Into<String>,
        transfer: Transfer,
        required: bool,
        lease: LeaseConfig,
    ) -> Result<SharedTier> {
        let name = store.describe();
        let conditional = match honours_create_only(&*store).await {
            Ok(conditional) => conditional,
            Err(e) if required => return Err(e.into()),
            Err(e) => {
                tracing::warn!(error = %e, "the shared store is not usable now; downloads go to the origin until it is");
                false
            }
        };
        tracing::info!(store = %name, conditional, "shared store");
        Ok(SharedTier {
            inner: Arc::new(TierInner {
                elector: Elector::new(store.clone(), hive, conditional, lease),
                store,
                transfer,
                required,
                name,
            }),
        })
    }

    /// The store, for commands that manage it (`rbee model list --shared`, …).
    pub fn store(&self) -> &Arc<dyn SharedStore> {
        &self.inner.store
    }

    /// The elector (leases), for commands that must respect them.
    pub fn elector(&self) -> &Elector {
        &self.inner.elector
    }

    /// How the store is named in messages.
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// Whether a failing store fails provisioning instead of falling back to the origin.
    pub fn required(&self) -> bool {
        self.inner.required
    }

    /// A store fault: an error when the store is required, else a warning on the tracker.
    fn passed_over(&self, tracker: &DownloadTracker, e: StoreError) -> Result<()> {
        if self.inner.required {
            return Err(e.into());
        }
        tracker.message(format!(
            "warning: {e}; fetching from the origin instead (--shared-store-required makes this an error)"
        ));
        tracing::warn!(error = %e, "shared store passed over");
        Ok(())
    }

    /// The artifact as the store's manifest describes it, for when the origin cannot be asked
    /// (offline, unreachable). `None` when the store has no manifest for it.
    pub(crate) async fn resolve_from_manifest(
        &self,
        key: &CatalogKey,
        reference: &ArtifactRef,
        tracker: &DownloadTracker,
    ) -> Result<Option<ResolvedArtifact>> {
        let manifest = match read_manifest(&*self.inner.store, &key.id()).await {
            Ok(Some(m)) => m,
            Ok(None) => return Ok(None),
            Err(e) if e.is_store_fault() => {
                self.passed_over(tracker, e)?;
                return Ok(None);
            }
            Err(e) => {
                tracing::warn!(error = %e, "ignoring a manifest");
                return Ok(None);
            }
        };
        tracker.message(format!(
            "the origin of {reference} cannot be asked; provisioning from the manifest in the shared store {} (revision {})",
            self.inner.name,
            manifest.revision.as_deref().unwrap_or("none")
        ));
        let files = manifest
            .files
            .iter()
            .map(|f| ResolvedFile {
                path: f.path.clone(),
                size: Some(f.size),
                sha256: Some(f.sha256),
                version: None,
                git_blob: None,
                source: FileSource::Http {
                    url: self.display_url(&f.sha256),
                },
            })
            .collect();
        Ok(Some(ResolvedArtifact {
            reference: reference.clone(),
            revision: manifest.revision,
            files,
            notes: vec![format!("from the shared store {}", self.inner.name)],
        }))
    }

    /// Where a blob is, as recorded in the catalog and shown: never the signed URL.
    fn display_url(&self, sha256: &Sha256Digest) -> url::Url {
        let text = format!(
            "{}/{}",
            self.inner.name.split(' ').next().unwrap_or(""),
            layout::blob(sha256)
        );
        url::Url::parse(&text).unwrap_or_else(|_| url::Url::parse("s3://store/").expect("a URL"))
    }

    /// Fetches what it can of `to_fetch` from the store into `files_dir`; when the rest must
    /// come from the origin, waits while another hive fetches it, or wins the lease and returns
    /// it for this hive to fetch. Returns the files still to fetch and, when this hive fetches
    /// from the origin for the cluster, its lease.
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn fetch(
        &self,
        key: &CatalogKey,
        resolved: &ResolvedArtifact,
        mut to_fetch: Vec<ResolvedFile>,
        files_dir: &Path,
        tracker: &DownloadTracker,
        cancel: &CancellationToken,
        record: &mut ArtifactRecord,
    ) -> Result<(Vec<ResolvedFile>, Option<Lease>)> {
        let id = key.id();
        let mut told_waiting = String::new();
        loop {
            to_fetch = match self
                .read_from_store(
                    &id,
                    resolved,
                    to_fetch.clone(),
                    files_dir,
                    tracker,
                    cancel,
                    record,
                )
                .await
            {
                Ok(rest) => rest,
                Err(Fault::Store(e)) => {
                    self.passed_over(tracker, e)?;
                    return Ok((to_fetch, None));
                }
                Err(Fault::Other(e)) => return Err(e),
            };
            if to_fetch.is_empty() {
                return Ok((to_fetch, None));
            }
            match self.inner.elector.try_acquire(&id).await {
                Ok(Election::Won(lease)) => {
                    tracing::info!(id, "this hive fetches from the origin for the cluster");
                    return Ok((to_fetch, Some(lease)));
                }
                Ok(Election::Held(other)) if other.holder == self.inner.elector.holder() => {
                    // Our own lease from a process that died, or a race we lost to ourselves:
                    // fetch without one (correctness never depends on it).
                    return Ok((to_fetch, None));
                }
                Ok(Election::Held(other)) => {
                    let progress = match self.inner.elector.progress(&id).await {
                        Ok(Some(p)) if p.holder == other.holder => {
                            format!(
                                ": {}% ({} of {})",
                                p.percent(),
                                human_bytes(p.bytes),
                                human_bytes(p.total)
                            )
                        }
                        _ => String::new(),
                    };
                    let line = format!("waiting for hive {}{progress}", other.holder);
                    if line != told_waiting {
                        tracker.message(line.clone());
                        told_waiting = line;
                    }
                }
                Err(e) => {
                    self.passed_over(tracker, e)?;
                    return Ok((to_fetch, None));
                }
            }
            tokio::select! {
                () = tokio::time::sleep(WAIT_POLL) => {}
                () = cancel.cancelled() => return Err(Error::Cancelled),
            }
        }
    }

    /// Reads from the store every file of `to_fetch` it holds; returns the others. A corrupt
    /// object is reported, removed from the store (the origin's copy replaces it) and left to
    /// fetch.
    #[allow(clippy::too_many_arguments)]
    async fn read_from_store(
        &self,
        id: &str,
        resolved: &ResolvedArtifact,
        to_fetch: Vec<ResolvedFile>,
        files_dir: &Path,
        tracker: &DownloadTracker,
        cancel: &CancellationToken,
        record: &mut ArtifactRecord,
    ) -> std::result::Result<Vec<ResolvedFile>, Fault> {
        let store = &*self.inner.store;
        // Files without a published sha256 but with a git blob id are found by the manifest of
        // the same revision; the manifest is not trusted, so their bytes are checked against
        // that id. A file with neither can only be trusted from the origin.
        let by_manifest: HashMap<String, ManifestFile> =
            if to_fetch.iter().any(|f| f.expected_git_blob().is_some())
                && resolved.revision.is_some()
            {
                match read_manifest(store, id).await {
                    Ok(Some(m)) if m.revision == resolved.revision => {
                        m.files.into_iter().map(|f| (f.path.clone(), f)).collect()
                    }
                    Ok(_) => HashMap::new(),
                    Err(e) if e.is_store_fault() => return Err(Fault::Store(e)),
                    Err(e) => {
                        tracing::warn!(error = %e, "ignoring a manifest");
                        HashMap::new()
                    }
                }
            } else {
                HashMap::new()
            };
        let mut rest = Vec::new();
        let mut wanted = Vec::new();
        for f in to_fetch {
            let digest = match (f.sha256, f.size) {
                (Some(sha), Some(size)) => Some((sha, size)),
                (None, _) if f.expected_git_blob().is_none() => None,
                (None, size) => by_manifest
                    .get(&f.path)
                    .filter(|m| size.is_none_or(|s| s == m.size))
                    .map(|m| (m.sha256, m.size)),
                (Some(_), None) => None,
            };
            let Some((sha, size)) = digest else {
                rest.push(f);
                continue;
            };
            match store.size(&layout::blob(&sha)).await {
                Ok(Some(stored)) if stored == size => wanted.push((f, sha, size)),
                Ok(Some(stored)) => {
                    tracker.message(format!(
                        "warning: the shared store's copy of {} has {stored} bytes, not {size}; fetching it from the origin and replacing it",
                        f.path
                    ));
                    rest.push(f);
                }
                Ok(None) => rest.push(f),
                Err(e) => return Err(Fault::Store(e)),
            }
        }
        if wanted.is_empty() {
            return Ok(rest);
        }
        // One file at a time through the engine, so that one corrupt object costs only itself.
        for (f, sha, size) in wanted {
            let blob = layout::blob(&sha);
            let url = store
                .read_url(&blob, READ_URL_LIFETIME)
                .await
                .map_err(Fault::Store)?;
            let mut request = FetchRequest::new(f.path.clone(), url);
            request.expected_size = Some(size);
            request.sha256 = Some(sha);
            match self
                .inner
                .transfer
                .fetch_all(vec![request], files_dir, tracker, cancel)
                .await
            {
                Ok(mut done) => {
                    let d = done.pop().expect("one file in, one out");
                    if let Some(expected) = f.expected_git_blob() {
                        let local = files_dir.join(&f.path);
                        let actual =
                            tokio::task::spawn_blocking(move || GitBlobHasher::of_file(&local))
                                .await
                                .map_err(|e| {
                                    Fault::Other(Error::task_failed("checking a file", e))
                                })?
                                .map_err(|e| {
                                    Fault::Other(Error::io(format!("checking {}", f.path), e))
                                })?;
                        if actual != expected {
                            tracker.message(format!(
                                "warning: the shared store's manifest of {id} names other bytes for {} (git blob {actual}, the origin says {expected}); it was not kept and is fetched from the origin",
                                f.path
                            ));
                            crate::provisioner::remove_with_partials(files_dir, &f.path);
                            rest.push(f);
                            continue;
                        }
                    }
                    if let Some(r) = record.files.iter_mut().find(|r| r.path == f.path) {
                        r.sha256 = Some(d.sha256);
                        r.size = d.size;
                        r.source = Some(format!("{} (shared store)", self.display_url(&sha)));
                    }
                }
                Err(e) if e.is_cancelled() => return Err(Fault::Other(Error::Cancelled)),
                Err(e)
                    if matches!(
                        e.kind(),
                        TransferErrorKind::Integrity | TransferErrorKind::SizeMismatch
                    ) =>
                {
                    tracker.message(format!(
                        "warning: the shared store's copy of {} ({blob}) is corrupt ({}); it was not kept, is fetched from the origin and will be replaced",
                        f.path,
                        e.into_error()
                    ));
                    crate::provisioner::remove_with_partials(files_dir, &f.path);
                    if let Err(e) = store.delete(&blob).await {
                        tracing::warn!(error = %e, "could not remove a corrupt blob");
                    }
                    rest.push(f);
                }
                Err(e)
                    if matches!(
                        e.kind(),
                        TransferErrorKind::InsufficientSpace | TransferErrorKind::Io
                    ) =>
                {
                    return Err(Fault::Other(e.into_error()));
                }
                Err(e) if e.status() == Some(404) => {
                    // Removed since it was looked up (`rbee model rm --shared`, a corrupt copy
                    // another hive dropped): not a failing store, just one file fewer in it.
                    tracker.message(format!(
                        "warning: the shared store's copy of {} ({blob}) went away while it was read; fetching it from the origin",
                        f.path
                    ));
                    tracing::warn!(error = %e.into_error(), blob, "a blob went away while it was read");
                    crate::provisioner::remove_with_partials(files_dir, &f.path);
                    rest.push(f);
                }
                Err(e) => {
                    let status = e.status();
                    let cause = e.into_error().to_string();
                    let (kind, hint) = diagnose(status, &cause);
                    return Err(Fault::Store(StoreError::Failed {
                        store: self.inner.name.clone(),
                        operation: format!("reading {blob}"),
                        cause,
                        hint,
                        kind,
                    }));
                }
            }
        }
        Ok(rest)
    }

    /// After a verified download: the blobs the store lacks, then the manifest. A failure is a
    /// warning (the local copy is good); cancellation stops it.
    pub(crate) async fn publish(
        &self,
        record: &ArtifactRecord,
        files_dir: &Path,
        tracker: &DownloadTracker,
        cancel: &CancellationToken,
    ) {
        let started = std::time::Instant::now();
        match self.try_publish(record, files_dir, cancel).await {
            Ok(sent) => {
                tracing::info!(id = %record.id, bytes = sent, elapsed = ?started.elapsed(), "published to the shared store");
                tracker.message(format!(
                    "published {} to the shared store {} ({} uploaded)",
                    record.id,
                    self.inner.name,
                    human_bytes(sent)
                ));
            }
            Err(e) => {
                tracing::warn!(error = %e, "could not publish to the shared store");
                tracker.message(format!(
                    "warning: could not publish {} to the shared store: {e}; the local copy is ready, other hives will fetch from the origin",
                    record.id
                ));
            }
        }
    }

    /// Publishes a ready entry (`rbee model push`): the blobs the store lacks, then the
    /// manifest. Returns the bytes uploaded.
    pub async fn push(
        &self,
        record: &ArtifactRecord,
        files_dir: &Path,
        cancel: &CancellationToken,
    ) -> Result<u64> {
        Ok(self.try_publish(record, files_dir, cancel).await?)
    }

    async fn try_publish(
        &self,
        record: &ArtifactRecord,
        files_dir: &Path,
        cancel: &CancellationToken,
    ) -> std::result::Result<u64, StoreError> {
        let store = &*self.inner.store;
        let mut files = Vec::new();
        let mut sent = 0;
        for f in &record.files {
            let Some(sha) = f.sha256 else {
                return Err(StoreError::Corrupt {
                    store: self.inner.name.clone(),
                    what: f.path.clone(),
                    reason: "its digest is not known, so it cannot be stored by digest".into(),
                });
            };
            sent += publish_blob(store, &files_dir.join(&f.path), &sha, f.size, cancel).await?;
            files.push(ManifestFile {
                path: f.path.clone(),
                size: f.size,
                sha256: sha,
            });
        }
        let manifest = Manifest {
            schema: MANIFEST_SCHEMA,
            id: record.id.clone(),
            reference: record.reference.clone(),
            selection: record.selection.clone(),
            revision: record.revision.clone(),
            files,
            published_by: self.inner.elector.holder().to_string(),
            published_at: Utc::now(),
        };
        write_manifest(store, &manifest).await?;
        Ok(sent)
    }

    /// While this hive fetches `files` from the origin for the cluster, uploads each large one
    /// as the download writes it, so that publishing overlaps the download and waiting hives
    /// can read the blob as soon as it is verified. Blobs the store already holds are skipped.
    /// What fails here is left to [`publish`](Self::publish), which uploads what is missing.
    pub(crate) fn follow_uploads(
        &self,
        files: &[ResolvedFile],
        files_dir: &Path,
        cancel: &CancellationToken,
    ) -> FollowUploads {
        let cancel = cancel.child_token();
        let download_ended = CancellationToken::new();
        let tasks = files
            .iter()
            .filter_map(|f| Some((f.sha256?, f.size?, files_dir.join(&f.path))))
            .filter(|(_, size, _)| *size > FOLLOW_ABOVE)
            .map(|(sha, size, dest)| {
                let store = self.inner.store.clone();
                let cancel = cancel.clone();
                let download_ended = download_ended.clone();
                tokio::spawn(async move {
                    let key = layout::blob(&sha);
                    if matches!(store.size(&key).await, Ok(Some(s)) if s == size) {
                        return;
                    }
                    match store
                        .put_growing(&key, &dest, size, &sha, &cancel, &download_ended)
                        .await
                    {
                        Ok(sent) => tracing::info!(key, bytes = sent, "uploaded while downloading"),
                        Err(e) => {
                            tracing::debug!(error = %e, key, "not uploaded while downloading; published afterwards")
                        }
                    }
                })
            })
            .collect();
        FollowUploads {
            abandon: cancel.clone(),
            _abandon_on_drop: cancel.drop_guard(),
            download_ended,
            tasks,
        }
    }

    /// While this hive fetches for the cluster, tells waiting hives how far it is.
    pub(crate) fn spawn_progress(
        &self,
        lease: Arc<Lease>,
        tracker: DownloadTracker,
    ) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            loop {
                if let Err(e) = lease.report(tracker.bytes(), tracker.total()).await {
                    tracing::debug!(error = %e, "could not report progress to the shared store");
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        })
    }
}

/// Files smaller than this are published after their download: one request either way.
const FOLLOW_ABOVE: u64 = 16 * 1024 * 1024;

/// Uploads that follow downloads (see [`SharedTier::follow_uploads`]). Dropped without
/// [`finish`](Self::finish) (a provision whose future was dropped), it abandons them.
#[derive(Debug)]
pub(crate) struct FollowUploads {
    abandon: CancellationToken,
    _abandon_on_drop: tokio_util::sync::DropGuard,
    download_ended: CancellationToken,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl FollowUploads {
    /// After the downloads and their check: waits for the uploads to complete (`ok`), or
    /// abandons them. Either way an upload whose file is not in place gives up.
    pub(crate) async fn finish(self, ok: bool) {
        if !ok {
            self.abandon.cancel();
        }
        self.download_ended.cancel();
        for task in self.tasks {
            let _ = task.await;
        }
    }
}

/// Why a read from the store stopped.
enum Fault {
    /// The store failed: pass it over (or fail, when required).
    Store(StoreError),
    /// Anything else (cancelled, disk full): the provision fails.
    Other(Error),
}
