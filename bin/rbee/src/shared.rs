//! The cluster's shared store from the command line: attached to downloads, and
//! `model push`, `model list --shared`, `model rm --shared`.

use std::sync::Arc;

use anyhow::Result;
use rbee_artifact::human_bytes;
use rbee_catalog::ArtifactStatus;
use rbee_model_provisioner::{Provisioner, SharedTier};
use rbee_shared_store::{LeaseConfig, S3Store, StoreConfig, list_manifests, remove_artifact};
use serde_json::json;
use tokio_util::sync::CancellationToken;

use crate::args::GlobalArgs;
use crate::render::JSON_VERSION;
use crate::setup::{self, CliError, TransferSettings, UsageError};

/// The shared store `--shared-store` / `RBEE_SHARED_STORE` names, connected; `None` without one.
pub(crate) async fn tier(
    global: &GlobalArgs,
    settings: &TransferSettings,
) -> Result<Option<SharedTier>> {
    let Some(url) = global
        .shared_store
        .as_deref()
        .filter(|u| !u.trim().is_empty())
    else {
        return Ok(None);
    };
    let config = StoreConfig::from_vars(url, |k| std::env::var(k).ok())
        .map_err(|e| UsageError::argument(format!("--shared-store: {e}")))?;
    let store = Arc::new(S3Store::new(config).map_err(rbee_artifact::Error::from)?);
    let transfer = setup::vendor_settings(settings).transfer;
    let tier = SharedTier::connect(
        store,
        holder_name(),
        rbee_transfer::Transfer::new(transfer)?,
        global.shared_store_required,
        LeaseConfig::default(),
    )
    .await?;
    Ok(Some(tier))
}

/// Puts the shared store, when one is named, between the catalog and the origins.
pub(crate) async fn attach(
    provisioner: &Provisioner,
    global: &GlobalArgs,
    settings: &TransferSettings,
) -> Result<()> {
    if let Some(tier) = tier(global, settings).await? {
        provisioner.set_shared_store(tier);
    }
    Ok(())
}

/// How this process is named in leases: `RBEE_HIVE_NAME`, else the host name and process id.
fn holder_name() -> String {
    std::env::var("RBEE_HIVE_NAME")
        .ok()
        .filter(|n| !n.trim().is_empty())
        .unwrap_or_else(|| {
            format!(
                "{} (pid {})",
                rbee_shared_store::host_name(),
                std::process::id()
            )
        })
}

/// The store for commands that manage it: one that cannot be used is an error.
async fn required_tier(global: &GlobalArgs) -> Result<SharedTier> {
    let global = GlobalArgs {
        shared_store_required: true,
        ..global.clone()
    };
    tier(&global, &TransferSettings::default())
        .await?
        .ok_or_else(|| {
            UsageError::argument(
                "no shared store: give --shared-store s3://BUCKET[/PREFIX] or set RBEE_SHARED_STORE",
            )
            .into()
        })
}

/// `rbee model push ID`.
pub(crate) async fn push(global: &GlobalArgs, model: &str) -> Result<()> {
    let tier = required_tier(global).await?;
    let catalog = setup::existing_catalog(global)?.1;
    let entry = crate::setup::find(&catalog, model)?;
    if entry.record.status != ArtifactStatus::Ready {
        return Err(CliError::new(
            "not_ready",
            format!(
                "{} is not ready ({}); only verified, ready entries are published",
                entry.record.id,
                entry.record.status.name()
            ),
        )
        .into());
    }
    let sent = tier
        .push(&entry.record, &entry.files_dir(), &CancellationToken::new())
        .await?;
    if global.json {
        out!(
            "{}",
            json!({"version": JSON_VERSION, "pushed": entry.record.id, "store": tier.name(), "bytes_uploaded": sent})
        );
    } else {
        out!(
            "pushed {} to {} ({} uploaded)",
            entry.record.id,
            tier.name(),
            human_bytes(sent)
        );
    }
    Ok(())
}

/// `rbee model list --shared`.
pub(crate) async fn list(global: &GlobalArgs) -> Result<()> {
    let tier = required_tier(global).await?;
    let manifests = list_manifests(&**tier.store())
        .await
        .map_err(rbee_artifact::Error::from)?;
    if global.json {
        out!(
            "{}",
            serde_json::to_string_pretty(
                &json!({"version": JSON_VERSION, "store": tier.name(), "models": manifests})
            )?
        );
        return Ok(());
    }
    if manifests.is_empty() {
        eprintln!(
            "The shared store {} holds no models. Hives publish what they download; `rbee model push ID` publishes one.",
            tier.name()
        );
        return Ok(());
    }
    let width = manifests
        .iter()
        .map(|m| m.id.len())
        .max()
        .unwrap_or(2)
        .max(2);
    out!(
        "{:width$}  {:>10}  {:>5}  PUBLISHED BY",
        "ID",
        "SIZE",
        "FILES"
    );
    for m in &manifests {
        out!(
            "{:width$}  {:>10}  {:>5}  {} ({})",
            m.id,
            human_bytes(m.total_size()),
            m.files.len(),
            m.published_by,
            m.published_at.format("%Y-%m-%d %H:%M")
        );
    }
    Ok(())
}

/// `rbee model rm --shared ID…`.
pub(crate) async fn rm(global: &GlobalArgs, models: &[String]) -> Result<()> {
    let tier = required_tier(global).await?;
    let mut removed = Vec::new();
    for model in models {
        // A reference names the same entry as its catalog id.
        let id = match setup::parse_reference(model) {
            Ok(reference) if rbee_artifact::CatalogKey::from_id(model).is_none() => {
                rbee_artifact::CatalogKey::of(&reference).id()
            }
            _ => model.clone(),
        };
        let manifest = remove_artifact(&**tier.store(), tier.elector(), &id)
            .await
            .map_err(rbee_artifact::Error::from)?;
        if !global.json {
            out!("removed {} from {}", manifest.id, tier.name());
        }
        removed.push(manifest.id);
    }
    if global.json {
        out!(
            "{}",
            json!({"version": JSON_VERSION, "store": tier.name(), "removed": removed})
        );
    }
    Ok(())
}
