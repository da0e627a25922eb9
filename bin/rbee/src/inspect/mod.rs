//! `rbee model inspect REF`: what a model is and whether it fits, from its headers alone; and
//! the same summary for entries already in the catalog (`rbee model info`).

mod print;

pub(crate) use print::{
    planned_model_json, print_entry_summary, print_planned_model, print_report,
};

use anyhow::{Context, Result};
use rbee_artifact::{ArtifactRef, Error, ResolveOptions};
use rbee_catalog::CatalogEntry;
use rbee_gguf::{
    EstimateOptions, Fit, Gpu, InspectReport, Inspection, ReadOptions, RemoteOptions,
    inspect_remote,
};
use rbee_hive::api::InspectRequest;
use rbee_transfer::Transfer;
use tokio_util::sync::CancellationToken;

use crate::args::{DownloadArgs, GlobalArgs, InspectArgs};
use crate::estimate::gpus;
use crate::setup::{self, TransferSettings};
use print::print_template;

pub(crate) async fn inspect(global: &GlobalArgs, args: &InspectArgs) -> Result<()> {
    let estimate_options = args.estimate.options()?;
    let as_download = DownloadArgs {
        reference: args.reference.clone(),
        quant: args.quant.clone(),
        revision: args.revision.clone(),
        exclude: args.exclude.clone(),
        estimate: args.estimate.clone(),
        ..DownloadArgs::default()
    };
    let reference = setup::reference(&as_download)?;
    let options = RemoteOptions {
        read: read_options(args.full),
        resolve: ResolveOptions::with_globs(args.include.clone(), args.exclude.clone()),
        ..RemoteOptions::default()
    };
    let cancel = crate::signals::cancel_on_signals();
    let (reference, notes) = crate::fit::choose(
        reference,
        &as_download,
        &TransferSettings::default(),
        &cancel,
    )
    .await?;
    let inspection =
        read_headers(&reference, &TransferSettings::default(), &options, &cancel).await?;
    if args.template {
        return print_template(inspection.chat_template());
    }
    let (gpus, no_gpu) = gpus(&args.estimate).await?;
    let fit = fit(&inspection, &estimate_options, &gpus)?;
    let mut report = InspectReport::new(&inspection, args.full, fit, gpus, no_gpu);
    report.reference = Some(reference.to_string());
    report.notes = notes;
    print_report(global, args, &report)
}

/// The request `rbee --hive URL model inspect` sends: the reference as typed (quantization and
/// revision flags folded in, a relative `file:` path made absolute) and the estimate flags,
/// checked here first so a mistake is a usage error.
pub(crate) fn hive_request(args: &InspectArgs) -> Result<InspectRequest> {
    let as_download = DownloadArgs {
        reference: args.reference.clone(),
        quant: args.quant.clone(),
        revision: args.revision.clone(),
        ..DownloadArgs::default()
    };
    let reference = setup::reference(&as_download)?;
    // The daemon reads it: a signed URL goes whole (it shows it redacted).
    let mut request = InspectRequest::new(reference.to_request_string());
    request.include = args.include.clone();
    request.exclude = args.exclude.clone();
    request.full = args.full;
    args.estimate.set_in(&mut request)?;
    Ok(request)
}

/// Resolves `reference` as a download would and reads the headers of its model files.
async fn read_headers(
    reference: &ArtifactRef,
    settings: &TransferSettings,
    options: &RemoteOptions,
    cancel: &CancellationToken,
) -> Result<Inspection> {
    let vendor_settings = setup::vendor_settings(settings);
    let vendors = rbee_model_provisioner::standard_vendors(&vendor_settings)?;
    let vendor = vendors.get(reference.scheme())?;
    let transfer = Transfer::new(vendor_settings.transfer.clone())?;
    let inspection = tokio::select! {
        r = inspect_remote(vendor.as_ref(), &transfer, reference, options, cancel) => r,
        () = cancel.cancelled() => return Err(Error::Cancelled.into()),
    };
    inspection.map_err(into_anyhow)
}

/// The model a download's dry run would fetch: its summary, estimate and verdict, from the
/// headers alone.
pub(crate) struct PlannedModel(InspectReport);

/// Reads the model of a dry run: from the catalog's files when the model is `ready` there (so
/// a dry run of a ready model needs no network, as its download does), else from the remote
/// headers unless offline. `None` when the plan has no GGUF or safetensors file, or offline
/// with nothing local. Flag errors come first, before anything is resolved; see
/// [`EstimateArgs::check`](crate::args::EstimateArgs::check).
pub(crate) async fn planned_model(
    reference: &ArtifactRef,
    plan_paths: &[&str],
    ready: Option<&CatalogEntry>,
    args: &DownloadArgs,
    settings: &TransferSettings,
    cancel: &CancellationToken,
) -> Option<Result<PlannedModel>> {
    if !plan_paths.iter().any(|p| rbee_gguf::is_model_file(p)) {
        return None;
    }
    let local = ready.and_then(entry_inspection);
    if local.is_none() && args.offline {
        return None;
    }
    let read = async {
        let inspection = match local {
            Some(inspection) => inspection?,
            None => {
                let options = RemoteOptions {
                    resolve: ResolveOptions::with_globs(args.include.clone(), args.exclude.clone()),
                    ..RemoteOptions::default()
                };
                read_headers(reference, settings, &options, cancel).await?
            }
        };
        let (gpus, no_gpu) = gpus(&args.estimate).await?;
        let fit = fit(&inspection, &args.estimate.options()?, &gpus)?;
        Ok(PlannedModel(InspectReport::new(
            &inspection,
            false,
            fit,
            gpus,
            no_gpu,
        )))
    };
    Some(read.await)
}

fn read_options(full: bool) -> ReadOptions {
    if full {
        ReadOptions::full()
    } else {
        ReadOptions::default()
    }
}

/// GGUF errors keep their message; a remote failure becomes the vocabulary's error, so the
/// exit code and `--json` code are the usual ones.
fn into_anyhow(e: rbee_gguf::GgufError) -> anyhow::Error {
    match e {
        rbee_gguf::GgufError::Remote(e) => e.into(),
        other => other.into(),
    }
}

/// The estimate and the verdict, when the model has the hyperparameters for them.
pub(crate) fn fit(
    inspection: &Inspection,
    options: &EstimateOptions,
    gpus: &[Gpu],
) -> Result<Option<Fit>> {
    inspection
        .fit(options, gpus)
        .transpose()
        .map_err(into_anyhow)
}

/// The model summary of a catalog entry's files, for `rbee model info` (nothing when the
/// entry has no GGUF or safetensors file, or its files cannot be read).
pub(crate) fn entry_inspection(entry: &CatalogEntry) -> Option<Result<Inspection>> {
    rbee_gguf::inspect_entry(entry)
        .map(|r| r.with_context(|| format!("reading the model headers in {}", entry.dir.display())))
}
