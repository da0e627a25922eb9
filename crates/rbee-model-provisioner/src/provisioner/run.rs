//! The shared transfer of one artifact: queue, resolve, compare with the catalog, lease, fetch, record.

use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::time::Duration;

use chrono::Utc;
use rbee_artifact::partial::{part_path, part_state_path};
use rbee_artifact::{
    ArtifactRef, CatalogKey, DownloadTracker, Error, ResolvedArtifact, Result, available_space,
    human_bytes,
};
use rbee_catalog::{ArtifactRecord, ArtifactStatus, CatalogEntry, DownloadLease, RECORD_SCHEMA};
use tokio_util::sync::CancellationToken;

use super::Provisioner;
use crate::files::{
    changed_files, check_paths, existing_lists, file_record, linkable, partial_len, remove_final,
    remove_stale_files, remove_with_partials, suspect_files,
};
use crate::options::{Outcome, ProvisionOptions, Provisioned};
use crate::pin::{pin_holds, pin_holds_for};

impl Provisioner {
    /// The shared transfer: queue, resolve, compare with the catalog, lease, fetch, record.
    pub(super) async fn run(
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

    pub(super) async fn take_slot(
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

    /// Takes the artifact's download lease, waiting (cancellably) while another process holds it.
    pub(super) async fn take_lease(
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
    pub(super) fn current(
        &self,
        key: &CatalogKey,
        resolved: &ResolvedArtifact,
    ) -> Option<CatalogEntry> {
        let entry = self.ready_entry(key)?;
        let same_files = entry.record.files.len() == resolved.files.len();
        (same_files && changed_files(Some(&entry), resolved).is_empty()).then_some(entry)
    }

    /// Evicts least recently used unpinned models until `needed` more bytes fit in `budget`,
    /// naming each on the tracker; fails (nothing downloaded yet) when they cannot fit.
    pub(super) async fn keep_within_budget(
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
    pub(super) async fn resolve_from_shared(
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

    /// The final path of `rel` in the entry at `dir`, refused when it, its partial files or a
    /// folder on the way is a symbolic link (rbee never makes one there).
    pub(super) fn check_no_links(&self, dir: &Path, rel: &str) -> Result<PathBuf> {
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

    pub(super) fn spawn_status_updater(
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
}

/// Errors after which a ready local copy is better than nothing.
pub(super) fn is_unreachable(e: &Error) -> bool {
    matches!(
        e,
        Error::Network { .. } | Error::Offline { .. } | Error::RateLimited { .. }
    )
}
