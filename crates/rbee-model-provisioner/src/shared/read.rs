//! Reading blobs from the store through the download engine, verified like any download.

use std::collections::HashMap;
use std::path::Path;

use rbee_artifact::{ContentDigest, DownloadTracker, Error, ResolvedArtifact, ResolvedFile};
use rbee_catalog::ArtifactRecord;
use rbee_shared_store::{ManifestFile, StoreError, diagnose, layout, read_manifest};
use rbee_transfer::{FetchRequest, TransferErrorKind};
use tokio_util::sync::CancellationToken;

use super::{Fault, READ_URL_LIFETIME, SharedTier};

impl SharedTier {
    /// Reads from the store every file of `to_fetch` it holds; returns the others. A corrupt
    /// object is reported, removed from the store (the origin's copy replaces it) and left to
    /// fetch.
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn read_from_store(
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
            // The manifest is not trusted: the origin's blob id decides, before the file is
            // put in place.
            request.git_blob = f.expected_git_blob();
            match self
                .inner
                .transfer
                .fetch_all(vec![request], files_dir, tracker, cancel)
                .await
            {
                Ok(mut done) => {
                    let d = done.pop().expect("one file in, one out");
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
                    crate::files::remove_with_partials(files_dir, &f.path);
                    let error = e.into_error();
                    if let Error::Integrity {
                        expected: ContentDigest::GitBlob(expected),
                        actual,
                        ..
                    } = &error
                    {
                        // The object is the one the manifest names (its sha256 is checked
                        // first), but the manifest names other bytes than the origin.
                        tracker.message(format!(
                            "warning: the shared store's manifest of {id} names other bytes for {} ({actual}, the origin says {expected}); it was not kept and is fetched from the origin",
                            f.path
                        ));
                        rest.push(f);
                        continue;
                    }
                    tracker.message(format!(
                        "warning: the shared store's copy of {} ({blob}) is corrupt ({error}); it was not kept, is fetched from the origin and will be replaced",
                        f.path,
                    ));
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
                    crate::files::remove_with_partials(files_dir, &f.path);
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
}
