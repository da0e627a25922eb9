//! `rbee model du`: the space the catalog takes, by entry.

use anyhow::Result;
use rbee_artifact::human_bytes;
use serde_json::json;

use crate::args::GlobalArgs;
use crate::render::{JSON_VERSION, versioned};
use crate::setup;

pub(crate) fn du(global: &GlobalArgs) -> Result<()> {
    let (root, catalog) = setup::existing_catalog(global)?;
    let usage = match &catalog {
        Some(catalog) => catalog.disk_usage()?,
        None => {
            // Nothing there yet: an empty catalog, without creating its folder.
            if global.json {
                let doc = json!({"version": JSON_VERSION, "root": root, "entries": [], "total_bytes": 0, "partial_bytes": 0, "free_bytes": null});
                out!("{}", serde_json::to_string_pretty(&doc)?);
            } else {
                out!("total 0 B in {} (no catalog there yet)", root.display());
            }
            return Ok(());
        }
    };
    if global.json {
        out!(
            "{}",
            serde_json::to_string_pretty(&versioned(serde_json::to_value(&usage)?))?
        );
        return Ok(());
    }
    let or_dash = |n: u64| if n > 0 { human_bytes(n) } else { "-".into() };
    out!(
        "{:>10} {:>10} {:>10}  {:<11} ID",
        "SIZE",
        "SHARED",
        "PARTIAL",
        "STATUS"
    );
    for e in &usage.entries {
        out!(
            "{:>10} {:>10} {:>10}  {:<11} {}",
            human_bytes(e.bytes),
            or_dash(e.shared_bytes),
            or_dash(e.partial_bytes),
            e.status,
            e.id
        );
    }
    out!(
        "total {} in {} ({} partial){}",
        human_bytes(usage.total_bytes),
        usage.root.display(),
        human_bytes(usage.partial_bytes),
        usage
            .free_bytes
            .map(|f| format!("; {} free", human_bytes(f)))
            .unwrap_or_default()
    );
    Ok(())
}
