//! Placing a fetched model in Ollama's store, so `ollama run` finds it without pulling.

use std::path::Path;

use rbee_artifact::{DownloadTracker, Error, ResolvedFile, Result};

use crate::OllamaRef;
use crate::manifest::MANIFEST_FILE;
use crate::store::OllamaStore;

/// Places the artifact's verified files in Ollama's store: every blob, then the manifest.
/// Failures are reported, not fatal: rbee's own copy is complete either way.
pub(crate) async fn publish(
    store: &OllamaStore,
    name: &OllamaRef,
    files: &[ResolvedFile],
    dest: &Path,
    progress: &DownloadTracker,
) {
    let root = store.root().display().to_string();
    let shown = name.short_name();
    let (store, name, dest) = (store.clone(), name.clone(), dest.to_path_buf());
    let files = files.to_vec();
    let outcome = tokio::task::spawn_blocking(move || -> Result<()> {
        let mut manifest = None;
        for file in &files {
            let path = dest.join(&file.path);
            if file.path == MANIFEST_FILE {
                manifest = Some(
                    std::fs::read(&path)
                        .map_err(|e| Error::io(format!("reading {}", path.display()), e))?,
                );
                continue;
            }
            let (Some(digest), Some(size)) = (file.sha256, file.size) else {
                continue;
            };
            store
                .put_blob(&path, &digest, size)
                .map_err(|e| Error::io(format!("placing {} in Ollama's store", file.path), e))?;
        }
        let bytes = manifest.ok_or_else(|| Error::Protocol {
            message: "the plan has no manifest to write".to_string(),
        })?;
        store.put_manifest(&name, &bytes)?;
        Ok(())
    })
    .await;
    report_placed(progress, &root, &shown, outcome);
}

/// Says how placing a model in Ollama's store (at `root`, as `shown`) went. Failures are
/// reported, not fatal: rbee's own copy is complete either way.
pub(crate) fn report_placed(
    progress: &DownloadTracker,
    root: &str,
    shown: &str,
    outcome: std::result::Result<Result<()>, tokio::task::JoinError>,
) {
    match outcome {
        Ok(Ok(())) => progress.message(format!(
            "placed in Ollama's store at {root}: `ollama run {shown}` uses it without pulling"
        )),
        Ok(Err(e)) => {
            tracing::warn!(error = %e.report(), "could not place the model in Ollama's store");
            progress.message(format!("could not place the model in Ollama's store: {e}"));
        }
        Err(e) => tracing::warn!(error = %e, "the task placing the model in Ollama's store failed"),
    }
}
