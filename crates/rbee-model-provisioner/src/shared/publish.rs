//! Publishing to the store: blobs then the manifest after a download, uploads that follow the download, the holder's progress.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use rbee_artifact::{DownloadTracker, ResolvedFile, Result, human_bytes};
use rbee_catalog::ArtifactRecord;
use rbee_shared_store::{
    Lease, MANIFEST_SCHEMA, Manifest, ManifestFile, StoreError, layout, publish_blob,
    write_manifest,
};
use tokio_util::sync::CancellationToken;

use super::SharedTier;

impl SharedTier {
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
