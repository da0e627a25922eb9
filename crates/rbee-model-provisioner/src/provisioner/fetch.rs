//! Getting the files still needed: from the catalog by digest, the shared store, then the origin.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rbee_artifact::{
    CatalogKey, DownloadTracker, Error, ResolvedArtifact, ResolvedFile, Result, Sha256Digest,
};
use rbee_catalog::ArtifactRecord;
use tokio_util::sync::CancellationToken;

use super::Provisioner;
use crate::files::{check_downloaded, link_or_copy, set_digest};

impl Provisioner {
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn fetch(
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
        loop {
            let mut lease = None;
            if let Some(tier) = shared {
                let updater = self.spawn_status_updater(key.clone(), tracker.clone());
                let outcome = tier
                    .fetch(key, resolved, to_fetch, files_dir, tracker, cancel, record)
                    .await;
                updater.abort();
                (to_fetch, lease) = outcome?;
            }
            if to_fetch.is_empty() {
                break;
            }
            let origin = self
                .fetch_from_origin(
                    vendor, resolved, &to_fetch, files_dir, tracker, cancel, record, key, lease,
                )
                .await?;
            if origin == Origin::Fetched {
                break;
            }
            tracker.message(format!(
                "another hive's claim on {} landed just after this one's: it fetches from the origin, this hive waits for it",
                key.id()
            ));
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

    /// Fetches `to_fetch` from the origin; with `lease`, for the cluster: reporting progress,
    /// uploading as it goes and publishing after the check. Returns [`Origin::Contested`],
    /// having stopped, when the lease turned out to be another hive's.
    #[allow(clippy::too_many_arguments)]
    async fn fetch_from_origin(
        &self,
        vendor: &Arc<dyn rbee_artifact::VendorSource>,
        resolved: &ResolvedArtifact,
        to_fetch: &[ResolvedFile],
        files_dir: &Path,
        tracker: &DownloadTracker,
        cancel: &CancellationToken,
        record: &mut ArtifactRecord,
        key: &CatalogKey,
        lease: Option<rbee_shared_store::Lease>,
    ) -> Result<Origin> {
        let shared = self.shared_store();
        let updater = self.spawn_status_updater(key.clone(), tracker.clone());
        let lease = lease.map(Arc::new);
        let reporter = match (shared, &lease) {
            (Some(tier), Some(lease)) => Some(tier.spawn_progress(lease.clone(), tracker.clone())),
            _ => None,
        };
        let followers = match (shared, &lease) {
            (Some(tier), Some(_)) => Some(tier.follow_uploads(to_fetch, files_dir, cancel)),
            _ => None,
        };
        // A contested lease stops the download (not what it already wrote: the files are
        // read from the store next, and a .part is only ever kept for bytes that check out).
        let download_cancel = cancel.child_token();
        let stop_when_contested = lease.as_ref().map(|lease| {
            let contested = lease.contested().clone();
            let download_cancel = download_cancel.clone();
            tokio::spawn(async move {
                contested.cancelled().await;
                download_cancel.cancel();
            })
        });
        let counted_before = tracker.bytes();
        let outcome = vendor
            .download(resolved, to_fetch, files_dir, tracker, &download_cancel)
            .await
            .and_then(|downloaded| {
                check_downloaded(to_fetch, &downloaded, files_dir)?;
                Ok(downloaded)
            });
        if let Some(stop) = stop_when_contested {
            stop.abort();
        }
        let contested = outcome.is_err()
            && !cancel.is_cancelled()
            && lease.as_ref().is_some_and(|l| l.contested().is_cancelled());
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
        if contested {
            // The lease and the progress it reported are the other hive's now; the bytes this
            // hive fetched count again when read from the store.
            tracker.discard(tracker.bytes().saturating_sub(counted_before));
            return Ok(Origin::Contested);
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
        Ok(Origin::Fetched)
    }

    /// Links a ready catalog file with the same digest instead of downloading it.
    pub(super) async fn reuse_by_digest(
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
}

/// How a fetch from the origin ended, when it did not fail.
#[derive(Debug, PartialEq, Eq)]
enum Origin {
    Fetched,
    /// Stopped: another hive won the lease just after this one and fetches instead.
    Contested,
}
