//! `rbee model prune|pin|unpin`: keeping the local catalog tidy and within its budget.

use anyhow::Result;
use rbee_artifact::{Error, human_bytes};
use rbee_catalog::{PruneReason, PruneReport, parse_age};
use serde_json::json;

use crate::args::{GlobalArgs, PruneArgs, TidyCommand};
use crate::render::versioned;
use crate::setup::{self, UsageError};

pub(crate) fn run(global: &GlobalArgs, command: &TidyCommand) -> Result<()> {
    match command {
        TidyCommand::Prune(args) => prune(global, args),
        TidyCommand::Pin { model } => pin(global, model, true),
        TidyCommand::Unpin { model } => pin(global, model, false),
    }
}

fn prune(global: &GlobalArgs, args: &PruneArgs) -> Result<()> {
    let age = parse_age(&args.older_than)
        .map_err(|e| UsageError::argument(format!("--older-than: {e}")))?;
    let report = match setup::existing_catalog(global)?.1 {
        Some(catalog) => catalog.prune(age, args.dry_run)?,
        None => PruneReport {
            items: vec![],
            busy: vec![],
            bytes: 0,
            dry_run: args.dry_run,
        },
    };
    if global.json {
        out!(
            "{}",
            serde_json::to_string_pretty(&versioned(serde_json::to_value(&report)?))?
        );
        return Ok(());
    }
    let verb = if report.dry_run {
        "would remove"
    } else {
        "removed"
    };
    for item in &report.items {
        let why = match item.reason {
            PruneReason::StalePartial => format!("unfinished, untouched for {}", args.older_than),
            PruneReason::Failed => "failed".into(),
            PruneReason::Orphan => "no valid record".into(),
            PruneReason::OrphanPart => "partial file no record mentions".into(),
        };
        out!(
            "{verb} {} ({why}, {}): {}",
            item.id,
            human_bytes(item.bytes),
            item.path.display()
        );
    }
    for id in &report.busy {
        out!("left {id}: a running download holds it");
    }
    let what = if report.dry_run {
        "would free"
    } else {
        "freed"
    };
    out!(
        "{} item(s), {what} {}{}",
        report.items.len(),
        human_bytes(report.bytes),
        if report.dry_run && !report.items.is_empty() {
            "; run again without --dry-run to remove them"
        } else {
            ""
        }
    );
    Ok(())
}

fn pin(global: &GlobalArgs, model: &str, pinned: bool) -> Result<()> {
    let catalog = setup::existing_catalog(global)?
        .1
        .ok_or_else(|| Error::NotFound {
            message: format!("`{model}` is not in the catalog; `rbee ls` shows what is"),
        })?;
    let key = match rbee_artifact::CatalogKey::from_id(model) {
        Some(key) => key.id(),
        None => setup::parse_reference(model)?.to_string(),
    };
    let entry = catalog.set_pinned(&key, pinned)?;
    if global.json {
        let doc = json!({"id": entry.record.id, "pinned": pinned});
        out!("{}", serde_json::to_string_pretty(&versioned(doc))?);
    } else if pinned {
        out!(
            "pinned {} (never evicted to meet --max-cache-size)",
            entry.record.id
        );
    } else {
        out!("unpinned {}", entry.record.id);
    }
    Ok(())
}
