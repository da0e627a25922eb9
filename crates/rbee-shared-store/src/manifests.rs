//! Publishing, reading, listing and removing artifacts in a store.

use std::collections::HashSet;
use std::path::Path;

use bytes::Bytes;
use tokio_util::sync::CancellationToken;

use crate::error::StoreError;
use crate::layout;
use crate::lease::Elector;
use crate::manifest::Manifest;
use crate::store::SharedStore;

/// The manifest of artifact `id`; `None` when it is not published. One that cannot be read is
/// [`StoreError::Corrupt`].
pub async fn read_manifest(
    store: &dyn SharedStore,
    id: &str,
) -> Result<Option<Manifest>, StoreError> {
    let key = layout::manifest(id);
    let Some(bytes) = store.get(&key, layout::MAX_MANIFEST_BYTES).await? else {
        return Ok(None);
    };
    Manifest::from_json(&bytes)
        .map(Some)
        .map_err(|reason| StoreError::Corrupt {
            store: store.describe(),
            what: key,
            reason,
        })
}

/// Publishes a manifest: the last step, after every blob it names is in the store.
pub async fn write_manifest(
    store: &dyn SharedStore,
    manifest: &Manifest,
) -> Result<(), StoreError> {
    let body = serde_json::to_vec_pretty(manifest).expect("a manifest serialises");
    store
        .put(&layout::manifest(&manifest.id), Bytes::from(body), false)
        .await
        .map(|_| ())
}

/// Uploads a verified local file as the blob of its digest, unless the store already has a blob
/// of that size. Returns the bytes sent.
pub async fn publish_blob(
    store: &dyn SharedStore,
    file: &Path,
    sha256: &rbee_artifact::Sha256Digest,
    size: u64,
    cancel: &CancellationToken,
) -> Result<u64, StoreError> {
    let key = layout::blob(sha256);
    if store.size(&key).await? == Some(size) {
        return Ok(0);
    }
    store.put_file(&key, file, sha256, cancel).await
}

/// Every readable manifest, by id (unreadable ones are skipped with a warning).
pub async fn list_manifests(store: &dyn SharedStore) -> Result<Vec<Manifest>, StoreError> {
    let mut manifests = Vec::new();
    for key in store.list(layout::MANIFESTS).await? {
        let Some(id) = layout::manifest_id(&key) else {
            continue;
        };
        match read_manifest(store, id).await {
            Ok(Some(m)) => manifests.push(m),
            Ok(None) => {}
            Err(e) if !e.is_store_fault() => tracing::warn!(error = %e, "skipping a manifest"),
            Err(e) => return Err(e),
        }
    }
    manifests.sort_by(|a, b| a.id.cmp(&b.id));
    Ok(manifests)
}

/// Removes artifact `id` from the store: its manifest, then the blobs no other manifest names.
/// Refused while a hive holds the artifact's lease.
pub async fn remove_artifact(
    store: &dyn SharedStore,
    elector: &Elector,
    id: &str,
) -> Result<Manifest, StoreError> {
    if let Some(lease) = elector.current(id).await? {
        return Err(StoreError::Leased {
            store: store.describe(),
            id: id.to_string(),
            holder: lease.holder,
            until: lease.expires_at.to_rfc3339(),
        });
    }
    let Some(manifest) = read_manifest(store, id).await? else {
        return Err(StoreError::NotFound {
            store: store.describe(),
            what: format!("artifact {id}"),
        });
    };
    store.delete(&layout::manifest(id)).await?;
    let still_named: HashSet<_> = list_manifests(store)
        .await?
        .iter()
        .flat_map(|m| m.files.iter().map(|f| f.sha256))
        .collect();
    for f in &manifest.files {
        if !still_named.contains(&f.sha256) {
            store.delete(&layout::blob(&f.sha256)).await?;
        }
    }
    Ok(manifest)
}
