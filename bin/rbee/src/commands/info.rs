//! `rbee model info`: one entry, its files and the summary of its model.

use anyhow::Result;
use rbee_artifact::human_bytes;
use rbee_catalog::{ArtifactStatus, CatalogEntry};

use crate::args::GlobalArgs;
use crate::render::versioned;
use crate::setup::{self, find};

use super::list::{entry_json, status_text};

pub(crate) fn info(global: &GlobalArgs, model: &str) -> Result<()> {
    let catalog = setup::existing_catalog(global)?.1;
    let entry = find(&catalog, model)?;
    if let Some(catalog) = &catalog {
        catalog.mark_used(&entry.record.key());
    }
    print_info(global, &entry)
}

/// Prints one entry (or its JSON document with `--json`), with the summary of its model when its
/// files can be read here.
pub(crate) fn print_info(global: &GlobalArgs, entry: &CatalogEntry) -> Result<()> {
    if global.json {
        let mut value = entry_json(entry);
        value["model"] = rbee_gguf::entry_summary_json(entry);
        out!("{}", serde_json::to_string_pretty(&versioned(value))?);
        return Ok(());
    }
    let r = &entry.record;
    out!("id:        {}", r.id);
    out!("reference: {}", r.reference);
    if !r.selection.is_empty() {
        out!("files:     {} (--include/--exclude)", r.selection);
    }
    out!("vendor:    {}", r.scheme);
    if let Some(rev) = &r.revision {
        out!("revision:  {rev}");
    }
    out!("status:    {}", status_text(&r.status));
    if let ArtifactStatus::Failed { error, .. } = &r.status {
        out!("error:     {error}");
    }
    out!(
        "size:      {} ({} bytes)",
        human_bytes(r.total_size()),
        r.total_size()
    );
    out!("path:      {}", entry.primary_path().display());
    out!("created:   {}", r.created_at.to_rfc3339());
    out!("updated:   {}", r.updated_at.to_rfc3339());
    for note in &r.notes {
        out!("note:      {note}");
    }
    out!("files:");
    for f in &r.files {
        out!(
            "  {}  {:>10}  sha256:{}",
            f.path,
            human_bytes(f.size),
            f.sha256
                .map(|d| d.to_string())
                .unwrap_or_else(|| "unknown".into())
        );
    }
    if r.scheme == rbee_vendor_ollama::OLLAMA {
        for (label, text) in rbee_vendor_ollama::describe(&entry.files_dir()) {
            out!("{:<10} {text}", format!("{label}:"));
        }
    }
    crate::inspect::print_entry_summary(entry);
    Ok(())
}
