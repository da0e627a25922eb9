//! `rbee pull --dry-run`: what a download would fetch, and the model it would be, without
//! fetching it.

use anyhow::Result;
use rbee_artifact::{Error, human_bytes};
use rbee_catalog::ArtifactStatus;
use rbee_model_provisioner::Plan;

use crate::args::{DownloadArgs, GlobalArgs};
use crate::render::versioned;
use crate::setup::{self, TransferSettings};
use crate::signals::cancel_on_signals;
use crate::{fit, inspect};

use super::download::provision_options;

pub(super) async fn dry_run(global: &GlobalArgs, args: &DownloadArgs) -> Result<()> {
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
