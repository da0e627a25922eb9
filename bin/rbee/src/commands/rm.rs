//! `rbee rm`: entries removed from the catalog.

use anyhow::Result;
use rbee_artifact::{CatalogKey, Error, human_bytes};
use rbee_catalog::Removed;
use serde_json::json;

use crate::args::GlobalArgs;
use crate::render::JSON_VERSION;
use crate::setup::{self, find, not_found};

/// One removal's line (nothing with `--json`).
pub(crate) fn print_removed(global: &GlobalArgs, r: &Removed) {
    if !global.json {
        out!("removed {} ({} freed)", r.id, human_bytes(r.bytes));
    }
}

/// The JSON document of `rm --json`.
pub(crate) fn finish_rm(global: &GlobalArgs, removed: &[Removed]) -> Result<()> {
    if global.json {
        let doc = json!({"version": JSON_VERSION, "removed": removed});
        out!("{}", serde_json::to_string_pretty(&doc)?);
    }
    Ok(())
}

pub(crate) fn rm(global: &GlobalArgs, models: &[String]) -> Result<()> {
    let catalog = setup::existing_catalog(global)?.1;
    let mut removed = Vec::new();
    for model in models {
        let id = match find(&catalog, model) {
            Ok(entry) => entry.record.id.clone(),
            // A damaged entry can still be removed by id.
            Err(e) if CatalogKey::from_id(model).is_some() && is_damaged(&e) => model.clone(),
            Err(e) => return Err(e),
        };
        let r = catalog
            .as_ref()
            .ok_or_else(|| not_found(model))?
            .remove(&id)?;
        print_removed(global, &r);
        removed.push(r);
    }
    finish_rm(global, &removed)
}

fn is_damaged(e: &anyhow::Error) -> bool {
    matches!(e.downcast_ref::<Error>(), Some(Error::Damaged { .. }))
}
