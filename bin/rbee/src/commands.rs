//! `rbee model …`: each command builds its inputs and makes one library call.

use std::time::Instant;

use anyhow::{Context, Result};
use rbee_artifact::{
    ArtifactRef, CatalogKey, DownloadTracker, Error, JobId, ResolveOptions, human_bytes,
};
use rbee_catalog::{
    ArtifactStatus, CatalogEntry, CheckOutcome, Listing, Removed, VerifyReport, layout,
};
use rbee_model_provisioner::{Outcome, Plan, ProvisionOptions};
use serde_json::json;
use tokio::sync::{broadcast, mpsc};

use crate::args::{DownloadArgs, GlobalArgs, ImportSource, ModelCommand};
use crate::failure::Failure;
use crate::logging;
use crate::render::{self, JSON_VERSION, Mode, Seen, Update, versioned};
use crate::setup::{self, CliError, TransferSettings, UsageError, find, not_found};
use crate::signals::cancel_on_signals;
use crate::{fit, inspect};

/// Runs a catalog command in this process.
pub(crate) async fn run(global: &GlobalArgs, command: &ModelCommand) -> Result<()> {
    match command {
        ModelCommand::Download(args) if args.dry_run => dry_run(global, args).await,
        ModelCommand::Download(args) => download(global, args).await,
        ModelCommand::List(args) if args.shared => crate::shared::list(global).await,
        ModelCommand::List(_) => list(global),
        ModelCommand::Push { model } => crate::shared::push(global, model).await,
        ModelCommand::Info { model } => info(global, model),
        ModelCommand::Verify { models } => verify(global, models).await,
        ModelCommand::Rm(args) if args.shared => crate::shared::rm(global, &args.models).await,
        ModelCommand::Rm(args) => rm(global, &args.models),
        ModelCommand::Inspect(args) => crate::inspect::inspect(global, args).await,
        ModelCommand::Du => du(global),
        ModelCommand::Import { from } => import(global, *from).await,
        ModelCommand::Tidy(cmd) => crate::tidy::run(global, cmd),
    }
}

async fn dry_run(global: &GlobalArgs, args: &DownloadArgs) -> Result<()> {
    let reference = setup::reference(args)?;
    let settings = TransferSettings::from_args(args)?;
    args.estimate.check()?;
    let catalog = setup::open_catalog(global)?;
    let provisioner = setup::provisioner(catalog.clone(), &settings)?;
    let options = provision_options(args);
    let cancel = cancel_on_signals();
    let (reference, fit_notes) = fit::choose(reference, args, &settings, &cancel).await?;
    let mut plan = tokio::select! {
        plan = provisioner.plan(&reference, &options, &cancel) => plan?,
        () = cancel.cancelled() => return Err(Error::Cancelled.into()),
    };
    plan.notes.splice(0..0, fit_notes);
    let ready = catalog
        .get(&plan.id)?
        .filter(|e| e.record.status == ArtifactStatus::Ready);
    let paths: Vec<&str> = plan.files.iter().map(|f| f.path.as_str()).collect();
    let model =
        inspect::planned_model(&reference, &paths, ready.as_ref(), args, &settings, &cancel).await;
    print_plan(&plan, model.as_ref(), global.json)
}

/// Memory-estimate flags only mean something to a dry run or a fit: refused elsewhere rather
/// than silently ignored.
pub(crate) fn refuse_estimate_flags(
    args: &DownloadArgs,
    reference: Option<&ArtifactRef>,
    context: &str,
) -> Result<()> {
    if reference.is_some_and(fit::asks_for_fit) {
        return Ok(());
    }
    match args.estimate.set_flags().first() {
        Some(flag) => Err(UsageError::argument(format!(
            "{flag} only applies to --dry-run or --fit {context}(or `rbee model inspect`)"
        ))
        .into()),
        None => Ok(()),
    }
}

fn provision_options(args: &DownloadArgs) -> ProvisionOptions {
    let mut resolve = ResolveOptions::with_globs(args.include.clone(), args.exclude.clone());
    resolve.offline = args.offline;
    let mut options = ProvisionOptions::new(resolve);
    options.refresh = args.refresh;
    options
}

async fn download(global: &GlobalArgs, args: &DownloadArgs) -> Result<()> {
    let reference = setup::reference(args);
    refuse_estimate_flags(args, reference.as_ref().ok(), "")?;
    let tracker = DownloadTracker::new(JobId::generate());
    let (tx, rx) = mpsc::channel(1024);
    // The label is the parsed reference, whose display hides a signed URL's credentials.
    let label = reference
        .as_ref()
        .map_or_else(|_| "the model".to_string(), ToString::to_string);
    let renderer = tokio::spawn(render::render(
        Mode::choose(global.json, global.quiet),
        label,
        rx,
    ));
    let forwarder = tokio::spawn(forward(tracker.clone(), tx));
    // Retries while resolving are logged by the engine; they reach the display as narration.
    let notes = logging::take_notes().map(|mut notes| {
        let tracker = tracker.clone();
        tokio::spawn(async move {
            while let Some(note) = notes.recv().await {
                tracker.message(note);
            }
        })
    });
    let started = Instant::now();
    let result = provision(global, args, reference, &tracker).await;
    if let Err(e) = &result
        && !tracker.is_finished()
    {
        // Failed before the job could say so (a bad flag, an unusable catalog folder): the
        // display still ends with one final event.
        let failure = Failure::of(e, global.verbose > 0);
        if failure.code == "cancelled" {
            tracker.cancelled();
        } else {
            tracker.failed(failure.message, failure.code);
        }
    }
    if let Some(notes) = notes {
        notes.abort();
    }
    let _ = forwarder.await;
    let seen = renderer.await.unwrap_or_default();
    let provisioned = match result {
        Ok(p) => p,
        Err(e) if e.downcast_ref::<Error>().is_some_and(Error::is_cancelled) => {
            return Err(e.context(format!("{} kept on disk", human_bytes(tracker.bytes()))));
        }
        Err(e) => return Err(e),
    };
    let entry = &provisioned.entry;
    let path = match &args.local_dir {
        Some(dir) => place_in(entry, dir)?,
        None => entry.primary_path(),
    };
    print_ready(
        global,
        &entry.record.id,
        entry.record.total_size(),
        provisioned.outcome == Outcome::AlreadyReady,
        started,
        seen,
        &path,
    );
    Ok(())
}

/// The provision itself, every step of which may fail into the tracker's final event.
async fn provision(
    global: &GlobalArgs,
    args: &DownloadArgs,
    reference: Result<ArtifactRef>,
    tracker: &DownloadTracker,
) -> Result<rbee_model_provisioner::Provisioned> {
    let reference = reference?;
    let settings = TransferSettings::from_args(args)?;
    let catalog = setup::open_catalog(global)?;
    let provisioner = setup::provisioner(catalog, &settings)?;
    crate::shared::attach(&provisioner, global, &settings).await?;
    let cancel = cancel_on_signals();
    let (reference, notes) = fit::choose(reference, args, &settings, &cancel).await?;
    for note in notes {
        tracker.message(note);
    }
    Ok(provisioner
        .provision(reference, provision_options(args), tracker, cancel)
        .await?)
}

/// `model import --from ollama`: each model of Ollama's store provisioned offline, so its
/// blobs are verified and linked, never downloaded. One line per model; a model that cannot be
/// taken is reported and the others go on.
async fn import(global: &GlobalArgs, from: ImportSource) -> Result<()> {
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

/// Sends the tracker's events to the display until the final one.
async fn forward(tracker: DownloadTracker, tx: mpsc::Sender<Update>) {
    let (replay, mut rx) = tracker.subscribe();
    let mut replay = replay.into_iter();
    loop {
        // What happened before subscribing, then what happens next.
        let event = match replay.next() {
            Some(event) => event,
            None => match rx.recv().await {
                Ok(event) => event,
                Err(broadcast::error::RecvError::Lagged(_)) => continue,
                Err(broadcast::error::RecvError::Closed) => return,
            },
        };
        let last = event.kind.is_final();
        if tx.send(Update::Event(event)).await.is_err() || last {
            return;
        }
    }
}

/// `--local-dir DIR`: each file of `entry` also at `DIR/<its path>` (a hard link to the
/// catalog's verified copy where possible, else a copy); returns the path to hand a runtime.
fn place_in(entry: &CatalogEntry, dir: &std::path::Path) -> Result<std::path::PathBuf> {
    let dir = std::path::absolute(dir)
        .with_context(|| format!("cannot use {} as --local-dir", dir.display()))?;
    for f in &entry.record.files {
        let source = layout::file_path(&entry.dir, &f.path);
        let target = dir.join(&f.path);
        if same_file(&source, &target) {
            continue;
        }
        rbee_model_provisioner::link_or_copy(&source, &target)?;
    }
    let primary = entry.primary_path();
    Ok(match primary.strip_prefix(entry.files_dir()) {
        Ok(rel) if !rel.as_os_str().is_empty() => dir.join(rel),
        _ => dir,
    })
}

/// Whether two paths are one file (a link placed by an earlier run).
fn same_file(a: &std::path::Path, b: &std::path::Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (std::fs::metadata(a), std::fs::metadata(b)) {
        (Ok(x), Ok(y)) => x.dev() == y.dev() && x.ino() == y.ino(),
        _ => false,
    }
}

/// The end of a successful download: a summary on stderr, the path on stdout (nothing extra
/// with `--json`, whose events already said it all).
pub(crate) fn print_ready(
    global: &GlobalArgs,
    id: &str,
    size: u64,
    already_present: bool,
    started: Instant,
    seen: Seen,
    path: &std::path::Path,
) {
    if global.json {
        return;
    }
    let secs = started.elapsed().as_secs_f64();
    let how = if already_present {
        "already present".to_string()
    } else if seen.fetched > 0 {
        format!(
            "fetched {} in {secs:.1}s, {}/s",
            human_bytes(seen.fetched),
            human_bytes((seen.fetched as f64 / secs.max(0.001)) as u64)
        )
    } else {
        format!("in {secs:.1}s")
    };
    if !global.quiet {
        eprintln!("Ready: {id} ({}, {how})", human_bytes(size));
    }
    out!("{}", path.display());
}

fn print_plan(
    plan: &Plan,
    model: Option<&Result<inspect::PlannedModel>>,
    json: bool,
) -> Result<()> {
    if json {
        let mut value = serde_json::to_value(plan)?;
        value["model"] = model.map_or(serde_json::Value::Null, inspect::planned_model_json);
        out!("{}", serde_json::to_string_pretty(&versioned(value))?);
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
    if let Some(model) = model {
        inspect::print_planned_model(model);
    }
    out!("Nothing was downloaded (--dry-run).");
    Ok(())
}

pub(crate) fn list(global: &GlobalArgs) -> Result<()> {
    let (root, catalog) = setup::existing_catalog(global)?;
    let listing = match &catalog {
        Some(catalog) => catalog.list()?,
        None => Vec::new(),
    };
    let printed = print_listing(global, &root, &listing);
    // The process ends next: freeing thousands of records (and the catalog's cached index)
    // one allocation at a time would only delay the exit.
    std::mem::forget(listing);
    std::mem::forget(catalog);
    printed
}

/// Prints a catalog listing: a table whose columns fit the longest id (the reference is cut to
/// the terminal's width, never the id), or one JSON document with `--json`.
pub(crate) fn print_listing(
    global: &GlobalArgs,
    root: &std::path::Path,
    listing: &[Listing],
) -> Result<()> {
    if global.json {
        let items: Vec<_> = listing.iter().map(listing_json).collect();
        let doc = json!({"version": JSON_VERSION, "root": root, "models": items});
        out!("{}", serde_json::to_string_pretty(&doc)?);
        return Ok(());
    }
    if listing.is_empty() {
        eprintln!(
            "The catalog at {} is empty. Try: rbee pull hf:TheBloke/TinyLlama-1.1B-Chat-v1.0-GGUF",
            root.display()
        );
        return Ok(());
    }
    let rows: Vec<[String; 4]> = listing
        .iter()
        .map(|item| match item {
            Listing::Entry(e) => [
                status_text(&e.record.status),
                human_bytes(e.record.total_size()),
                e.record.id.clone(),
                e.record.reference.to_string(),
            ],
            Listing::Damaged { id, reason, .. } => [
                "damaged".into(),
                "-".into(),
                id.clone(),
                format!("({reason})"),
            ],
        })
        .collect();
    let header = ["STATUS", "SIZE", "ID", "REFERENCE"].map(String::from);
    let widths: [usize; 3] = std::array::from_fn(|i| {
        rows.iter()
            .chain([&header])
            .map(|r| r[i].chars().count())
            .max()
            .unwrap_or(0)
    });
    let terminal = crate::terminal::stdout_width();
    // One write for the whole table, not one per line: a catalog can hold thousands of entries.
    let mut lines = Vec::with_capacity(rows.len() + 1);
    for row in std::iter::once(&header).chain(&rows) {
        let line = format!(
            "{:<w0$} {:>w1$}  {:<w2$}  {}",
            row[0],
            row[1],
            row[2],
            row[3],
            w0 = widths[0],
            w1 = widths[1],
            w2 = widths[2]
        );
        // Only the last column gives way, so ids stay whole for copying.
        let fixed = widths[0] + widths[1] + widths[2] + 5;
        match terminal {
            Some(cols) if line.chars().count() > cols && cols > fixed + 8 => lines.push(format!(
                "{}{}",
                &line[..line.len() - row[3].len()],
                crate::terminal::fit(&row[3], cols - fixed)
            )),
            _ => lines.push(line),
        }
    }
    out!("{}", lines.join("\n"));
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

pub(crate) async fn verify(global: &GlobalArgs, models: &[String]) -> Result<()> {
    let catalog = setup::existing_catalog(global)?.1;
    let ids: Vec<String> = match (&catalog, models.is_empty()) {
        (None, true) => Vec::new(),
        (Some(catalog), true) => verifiable(catalog.list()?),
        (_, false) => models
            .iter()
            .map(|m| find(&catalog, m).map(|e| e.record.id))
            .collect::<Result<_>>()?,
    };
    let mut reports = Vec::new();
    if let Some(catalog) = catalog {
        for id in ids {
            let catalog = catalog.clone();
            let id_for_task = id.clone();
            let report = tokio::task::spawn_blocking(move || catalog.verify(&id_for_task, |_| {}))
                .await
                .context("the verification task failed")??;
            print_verified(global, &report);
            reports.push(report);
        }
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
    if let Some(why) = &report.not_recorded {
        eprintln!(
            "warning: the result for {id} could not be saved in the catalog ({why}); run `rbee model verify {id}` again once there is space"
        );
    }
}

/// The end of a verification run: with `--json` one document (the reports, and the error when
/// one failed); an error (exit 1) if any failed.
pub(crate) fn finish_verify(global: &GlobalArgs, reports: &[VerifyReport]) -> Result<()> {
    let failed = reports.iter().filter(|r| !r.ok()).count();
    let error = (failed > 0).then(|| CliError::new(
        "integrity",
        format!("{failed} model(s) failed verification: their files changed on disk since they were downloaded; run `rbee pull` with the same reference to fetch them again"),
    ));
    if global.json {
        let mut doc = json!({
            "version": JSON_VERSION,
            "ok": failed == 0,
            "reports": reports.iter().map(|r| json!({"id": r.id, "ok": r.ok(), "files": r.files, "not_recorded": r.not_recorded})).collect::<Vec<_>>(),
        });
        if let Some(e) = &error {
            doc["error"] = json!({"code": e.code, "message": e.message});
        }
        out!("{}", serde_json::to_string_pretty(&doc)?);
    }
    match error {
        Some(e) => Err(ReportedError(e).into()),
        None => Ok(()),
    }
}

/// A failure whose JSON document was already printed (with the command's result): it only sets
/// the exit status.
#[derive(Debug)]
pub(crate) struct ReportedError(pub(crate) CliError);

impl std::fmt::Display for ReportedError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl std::error::Error for ReportedError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.0)
    }
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
            Ok(entry) => entry.record.id,
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
