//! `rbee model …`: each command builds its inputs and makes one library call.

use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, Result};
use rbee_artifact_catalog::{
    ArtifactRef, ArtifactStatus, Catalog, CatalogEntry, CatalogKey, CheckOutcome, DownloadTracker,
    Error, JobId, Listing, Removed, ResolveOptions, VerifyReport, human_bytes,
};
use rbee_model_provisioner::{Outcome, Plan, ProvisionOptions};
use serde_json::json;
use tokio_util::sync::CancellationToken;

use crate::args::{DownloadArgs, GlobalArgs};
use crate::render::{self, Mode};
use crate::setup::{self, TransferSettings};

pub(crate) async fn download(global: &GlobalArgs, args: &DownloadArgs) -> Result<()> {
    let reference = setup::reference(args)?;
    let settings = TransferSettings::from_args(args)?;
    let catalog = setup::open_catalog(global)?;
    let provisioner = setup::provisioner(catalog, &settings)?;
    let mut resolve = ResolveOptions::with_globs(args.include.clone(), args.exclude.clone());
    resolve.offline = args.offline;
    let mut options = ProvisionOptions::new(resolve);
    options.refresh = args.refresh;
    let cancel = cancel_on_signals();

    if args.dry_run {
        let plan = tokio::select! {
            plan = provisioner.plan(&reference, &options, &cancel) => plan?,
            () = cancel.cancelled() => return Err(Error::Cancelled.into()),
        };
        print_plan(&plan, global.json)?;
        return Ok(());
    }

    let tracker = DownloadTracker::new(JobId::generate());
    let (replay, rx) = tracker.subscribe();
    let renderer = tokio::spawn(render::render(
        Mode::choose(global.json, global.quiet),
        replay,
        rx,
    ));
    let started = Instant::now();
    let result = provisioner
        .provision(reference, options, &tracker, cancel)
        .await;
    let _ = renderer.await;
    let provisioned = match result {
        Ok(p) => p,
        Err(Error::Cancelled) => {
            return Err(anyhow::Error::new(Error::Cancelled)
                .context(format!("{} kept on disk", human_bytes(tracker.bytes()))));
        }
        Err(e) => return Err(e.into()),
    };
    let record = &provisioned.entry.record;
    print_ready(
        global,
        &record.id,
        record.total_size(),
        provisioned.outcome == Outcome::AlreadyReady,
        started,
        &provisioned.entry.primary_path(),
    );
    Ok(())
}

/// The end of a successful download: a summary on stderr, the path on stdout (nothing extra
/// with `--json`, whose events already said it all).
pub(crate) fn print_ready(
    global: &GlobalArgs,
    id: &str,
    size: u64,
    already_present: bool,
    started: Instant,
    path: &std::path::Path,
) {
    if global.json {
        return;
    }
    let how = if already_present {
        "already present".to_string()
    } else {
        format!("in {:.1}s", started.elapsed().as_secs_f64())
    };
    if !global.quiet {
        eprintln!("Ready: {id} ({}, {how})", human_bytes(size));
    }
    out!("{}", path.display());
}

/// Cancels on Ctrl-C or SIGTERM; a second Ctrl-C exits at once.
pub(crate) fn cancel_on_signals() -> CancellationToken {
    let cancel = CancellationToken::new();
    let token = cancel.clone();
    tokio::spawn(async move {
        let mut term =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
        let terminated = async {
            match term.as_mut() {
                Some(t) => {
                    t.recv().await;
                }
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            () = terminated => {}
        }
        token.cancel();
        let _ = tokio::signal::ctrl_c().await;
        eprintln!("interrupted again; exiting without waiting");
        std::process::exit(130);
    });
    cancel
}

fn print_plan(plan: &Plan, json: bool) -> Result<()> {
    if json {
        out!("{}", serde_json::to_string_pretty(plan)?);
        return Ok(());
    }
    out!("Plan for {} (id {})", plan.reference, plan.id);
    if let Some(rev) = &plan.revision {
        out!("  revision: {rev}");
    }
    for note in &plan.notes {
        out!("  note: {note}");
    }
    out!("  {:<8} {:>12}  FILE", "ACTION", "SIZE");
    for f in &plan.files {
        let size = f.size.map(human_bytes).unwrap_or_else(|| "?".into());
        out!("  {:<8} {:>12}  {}", f.action, size, f.path);
    }
    out!("  total:      {}", human_bytes(plan.total_bytes));
    out!("  to fetch:   {}", human_bytes(plan.bytes_to_fetch));
    match plan.free_bytes {
        Some(free) => {
            let verdict = if free >= plan.bytes_to_fetch {
                "enough"
            } else {
                "NOT enough"
            };
            out!(
                "  free space: {} in {} ({verdict})",
                human_bytes(free),
                plan.dir.display()
            );
        }
        None => out!("  free space: unknown at {}", plan.dir.display()),
    }
    out!("Nothing was downloaded (--dry-run).");
    Ok(())
}

pub(crate) fn list(global: &GlobalArgs) -> Result<()> {
    let catalog = setup::open_catalog(global)?;
    let listing = catalog.list()?;
    print_listing(global, catalog.root(), &listing)
}

/// Prints a catalog listing (a table, or a JSON array with `--json`).
pub(crate) fn print_listing(
    global: &GlobalArgs,
    root: &std::path::Path,
    listing: &[Listing],
) -> Result<()> {
    if global.json {
        let items: Vec<_> = listing.iter().map(listing_json).collect();
        out!("{}", serde_json::to_string_pretty(&items)?);
        return Ok(());
    }
    if listing.is_empty() {
        eprintln!(
            "The catalog at {} is empty. Try: rbee model download hf:TheBloke/TinyLlama-1.1B-Chat-v1.0-GGUF",
            root.display()
        );
        return Ok(());
    }
    out!("{:<11} {:>10}  {:<50} REFERENCE", "STATUS", "SIZE", "ID");
    for item in listing {
        match item {
            Listing::Entry(e) => out!(
                "{:<11} {:>10}  {:<50} {}",
                status_text(&e.record.status),
                human_bytes(e.record.total_size()),
                e.record.id,
                e.record.reference
            ),
            Listing::Damaged { id, reason, .. } => {
                out!("{:<11} {:>10}  {:<50} ({reason})", "damaged", "-", id)
            }
        }
    }
    Ok(())
}

fn status_text(status: &ArtifactStatus) -> String {
    match status {
        ArtifactStatus::Downloading { bytes, total }
        | ArtifactStatus::Incomplete { bytes, total }
            if *total > 0 =>
        {
            format!(
                "{} {:.0}%",
                status.name(),
                *bytes as f64 * 100.0 / *total as f64
            )
        }
        other => other.name().to_string(),
    }
}

fn listing_json(item: &Listing) -> serde_json::Value {
    match item {
        Listing::Entry(e) => entry_json(e),
        Listing::Damaged { id, dir, reason } => json!({
            "id": id,
            "status": {"state": "damaged", "error": reason},
            "dir": dir,
        }),
    }
}

fn entry_json(e: &CatalogEntry) -> serde_json::Value {
    let mut value = serde_json::to_value(&e.record).unwrap_or_default();
    if let Some(obj) = value.as_object_mut() {
        obj.insert("dir".into(), json!(e.dir));
        obj.insert("path".into(), json!(e.primary_path()));
        obj.insert("paths".into(), json!(e.paths()));
        obj.insert("size".into(), json!(e.record.total_size()));
    }
    value
}

pub(crate) fn info(global: &GlobalArgs, model: &str) -> Result<()> {
    let catalog = setup::open_catalog(global)?;
    let entry = find(&catalog, model)?;
    print_info(global, &entry)
}

/// Prints one entry (or its JSON with `--json`), with the summary of its model when its files
/// can be read here.
pub(crate) fn print_info(global: &GlobalArgs, entry: &CatalogEntry) -> Result<()> {
    if global.json {
        let mut value = entry_json(entry);
        value["model"] = crate::inspect::entry_summary_json(entry);
        out!("{}", serde_json::to_string_pretty(&value)?);
        return Ok(());
    }
    let r = &entry.record;
    out!("id:        {}", r.id);
    out!("reference: {}", r.reference);
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
    crate::inspect::print_entry_summary(entry);
    Ok(())
}

pub(crate) async fn verify(global: &GlobalArgs, models: &[String]) -> Result<()> {
    let catalog = setup::open_catalog(global)?;
    let ids: Vec<String> = if models.is_empty() {
        verifiable(catalog.list()?)
    } else {
        models
            .iter()
            .map(|m| find(&catalog, m).map(|e| e.record.id))
            .collect::<Result<_>>()?
    };
    let mut reports = Vec::new();
    for id in ids {
        let catalog = catalog.clone();
        let id_for_task = id.clone();
        let report = tokio::task::spawn_blocking(move || catalog.verify(&id_for_task, |_| {}))
            .await
            .context("the verification task failed")??;
        print_verified(global, &report);
        reports.push(report);
    }
    finish_verify(global, &reports)
}

/// What `verify` without arguments checks: ready entries, and those that failed verification.
pub(crate) fn verifiable(listing: Vec<Listing>) -> Vec<String> {
    listing
        .into_iter()
        .filter_map(|l| match l {
            Listing::Entry(e) if e.record.status == ArtifactStatus::Ready => Some(e.record.id),
            Listing::Entry(e)
                if matches!(&e.record.status, ArtifactStatus::Failed { code, .. } if code == "integrity") =>
            {
                Some(e.record.id)
            }
            _ => None,
        })
        .collect()
}

/// One verification's line(s), as it finishes (nothing with `--json`).
pub(crate) fn print_verified(global: &GlobalArgs, report: &VerifyReport) {
    let id = &report.id;
    if !global.json {
        if report.ok() {
            let unchecked = report
                .files
                .iter()
                .filter(|f| matches!(f.outcome, CheckOutcome::NoDigest { .. }))
                .count();
            let extra = if unchecked > 0 {
                format!(" ({unchecked} file(s) had no recorded digest: size checked only)")
            } else {
                String::new()
            };
            out!("ok      {id}{extra}");
        } else {
            out!("FAILED  {id}");
            for problem in report.problems() {
                out!("        {problem}");
            }
        }
    }
}

/// The summary of a verification run (the JSON document with `--json`); an error if any failed.
pub(crate) fn finish_verify(global: &GlobalArgs, reports: &[VerifyReport]) -> Result<()> {
    let failed = reports.iter().filter(|r| !r.ok()).count();
    if global.json {
        out!(
            "{}",
            serde_json::to_string_pretty(&json!({
                "ok": failed == 0,
                "reports": reports.iter().map(|r| json!({"id": r.id, "ok": r.ok(), "files": r.files})).collect::<Vec<_>>(),
            }))?
        );
    }
    if failed > 0 {
        anyhow::bail!(
            "{failed} model(s) failed verification: their files changed on disk since they were downloaded; run `rbee model download` with the same reference to fetch them again"
        );
    }
    Ok(())
}

/// One removal's line (nothing with `--json`).
pub(crate) fn print_removed(global: &GlobalArgs, r: &Removed) {
    if !global.json {
        out!("removed {} ({} freed)", r.id, human_bytes(r.bytes));
    }
}

/// The JSON document of `rm --json`.
pub(crate) fn finish_rm(global: &GlobalArgs, removed: &[Removed]) -> Result<()> {
    if global.json {
        out!("{}", serde_json::to_string_pretty(removed)?);
    }
    Ok(())
}

pub(crate) fn rm(global: &GlobalArgs, models: &[String]) -> Result<()> {
    let catalog = setup::open_catalog(global)?;
    let mut removed = Vec::new();
    for model in models {
        let id = match find(&catalog, model) {
            Ok(entry) => entry.record.id,
            // A damaged entry can still be removed by id.
            Err(e) if CatalogKey::from_id(model).is_some() && is_damaged(&e) => model.clone(),
            Err(e) => return Err(e),
        };
        let r = catalog.remove(&id)?;
        print_removed(global, &r);
        removed.push(r);
    }
    finish_rm(global, &removed)
}

fn is_damaged(e: &anyhow::Error) -> bool {
    matches!(e.downcast_ref::<Error>(), Some(Error::Damaged { .. }))
}

pub(crate) fn du(global: &GlobalArgs) -> Result<()> {
    let catalog = setup::open_catalog(global)?;
    let usage = catalog.disk_usage()?;
    if global.json {
        out!("{}", serde_json::to_string_pretty(&usage)?);
        return Ok(());
    }
    out!("{:>10} {:>10}  {:<11} ID", "SIZE", "PARTIAL", "STATUS");
    for e in &usage.entries {
        out!(
            "{:>10} {:>10}  {:<11} {}",
            human_bytes(e.bytes),
            if e.partial_bytes > 0 {
                human_bytes(e.partial_bytes)
            } else {
                "-".into()
            },
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

/// An entry by id or by reference (relative `file:` paths count from the current folder).
fn find(catalog: &Arc<Catalog>, model: &str) -> Result<CatalogEntry> {
    let found = match CatalogKey::from_id(model) {
        Some(key) => catalog.read(&key)?,
        None => {
            let reference: ArtifactRef = model.parse()?;
            catalog.find(&reference.absolutize()?)?
        }
    };
    found.ok_or_else(|| {
        Error::NotFound {
            message: format!("`{model}` is not in the catalog; `rbee model list` shows what is"),
        }
        .into()
    })
}
