//! Provisioning from the store's manifest alone, when the origin cannot be asked.

use rbee_artifact::{
    ArtifactRef, CatalogKey, DownloadTracker, FileSource, ResolvedArtifact, ResolvedFile, Result,
};
use rbee_shared_store::read_manifest;

use super::SharedTier;

impl SharedTier {
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
}
