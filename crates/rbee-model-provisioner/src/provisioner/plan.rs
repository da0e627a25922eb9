//! `--dry-run`: what a download would do, without writing anything.

use rbee_artifact::CatalogKey;
use rbee_artifact::{ArtifactRef, Result, Sha256Digest, available_space};
use rbee_catalog::{CatalogEntry, layout};
use serde::Serialize;
use tokio_util::sync::CancellationToken;

use super::Provisioner;
use super::run::is_unreachable;
use crate::files::{changed_files, check_paths, partial_len};
use crate::options::ProvisionOptions;
use crate::pin::pin_holds;
use std::path::PathBuf;

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

impl Provisioner {
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
