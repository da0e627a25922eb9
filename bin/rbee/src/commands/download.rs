//! `rbee pull`: provisioning with live progress, then the path to hand a runtime.

use std::time::Instant;

use anyhow::{Context, Result};
use rbee_artifact::{ArtifactRef, DownloadTracker, Error, JobId, ResolveOptions, human_bytes};
use rbee_catalog::{CatalogEntry, layout};
use rbee_model_provisioner::{Outcome, ProvisionOptions};
use tokio::sync::{broadcast, mpsc};

use crate::args::{DownloadArgs, GlobalArgs};
use crate::failure::Failure;
use crate::render::{self, Mode, Seen, Update};
use crate::setup::{self, TransferSettings, UsageError};
use crate::signals::cancel_on_signals;
use crate::{fit, logging};

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

pub(super) fn provision_options(args: &DownloadArgs) -> ProvisionOptions {
    let mut resolve = ResolveOptions::with_globs(args.include.clone(), args.exclude.clone());
    resolve.offline = args.offline;
    let mut options = ProvisionOptions::new(resolve);
    options.refresh = args.refresh;
    options
}

pub(super) async fn download(global: &GlobalArgs, args: &DownloadArgs) -> Result<()> {
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
