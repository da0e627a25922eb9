//! `rbee model import --from ollama`: Ollama's models taken into the catalog without a download.

use anyhow::Result;
use rbee_artifact::{ArtifactRef, DownloadTracker, JobId};
use rbee_model_provisioner::ProvisionOptions;
use serde_json::json;

use crate::args::{GlobalArgs, ImportSource};
use crate::render::versioned;
use crate::setup::{self, CliError, TransferSettings};
use crate::signals::cancel_on_signals;

/// `model import --from ollama`: each model of Ollama's store provisioned offline, so its
/// blobs are verified and linked, never downloaded. One line per model; a model that cannot be
/// taken is reported and the others go on.
pub(super) async fn import(global: &GlobalArgs, from: ImportSource) -> Result<()> {
    let ImportSource::Ollama = from;
    let config = rbee_vendor_ollama::OllamaConfig::from_env()?;
    let Some(store) = config.store.clone() else {
        return Err(CliError::new(
            "not_found",
            "no Ollama store found: set OLLAMA_MODELS to the folder holding Ollama's manifests/ and blobs/",
        )
        .into());
    };
    let names: Vec<_> = rbee_vendor_ollama::OllamaStore::new(&store)
        .list()
        .into_iter()
        .map(|(name, _)| name)
        .collect();
    let catalog = setup::open_catalog(global)?;
    let settings = TransferSettings {
        offline: true,
        ..TransferSettings::default()
    };
    let provisioner = setup::provisioner(catalog, &settings)?;
    let cancel = cancel_on_signals();
    let (mut imported, mut failed) = (Vec::new(), 0usize);
    for name in names {
        let reference = ArtifactRef::new(name);
        let tracker = DownloadTracker::new(JobId::generate());
        match provisioner
            .provision(
                reference.clone(),
                ProvisionOptions::default(),
                &tracker,
                cancel.clone(),
            )
            .await
        {
            Ok(p) => {
                if !global.json {
                    out!(
                        "{}  {}",
                        p.entry.record.id,
                        p.entry.primary_path().display()
                    );
                }
                imported.push(json!({"id": p.entry.record.id, "reference": reference.to_string(), "path": p.entry.primary_path()}));
            }
            Err(e) if e.is_cancelled() => return Err(e.into()),
            Err(e) => {
                failed += 1;
                eprintln!("{reference}: not imported: {e}");
            }
        }
    }
    if global.json {
        out!(
            "{}",
            serde_json::to_string_pretty(&versioned(
                json!({"imported": imported, "failed": failed})
            ))?
        );
    } else if !global.quiet {
        eprintln!(
            "{} model(s) imported from {}{}",
            imported.len(),
            store.display(),
            if failed > 0 {
                format!(", {failed} not")
            } else {
                String::new()
            }
        );
    }
    if failed > 0 {
        return Err(CliError::new(
            "import",
            format!("{failed} model(s) of Ollama's store could not be imported (see above)"),
        )
        .into());
    }
    Ok(())
}
