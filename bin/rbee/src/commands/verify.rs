//! `rbee model verify`: the files of entries hashed again against their records.

use anyhow::{Context, Result};
use rbee_catalog::{ArtifactStatus, CheckOutcome, Listing, VerifyReport};
use serde_json::json;

use crate::args::GlobalArgs;
use crate::render::JSON_VERSION;
use crate::setup::{self, CliError, find};

pub(crate) async fn verify(global: &GlobalArgs, models: &[String]) -> Result<()> {
    let catalog = setup::existing_catalog(global)?.1;
    let ids: Vec<String> = match (&catalog, models.is_empty()) {
        (None, true) => Vec::new(),
        (Some(catalog), true) => verifiable(catalog.list()?),
        (_, false) => models
            .iter()
            .map(|m| find(&catalog, m).map(|e| e.record.id.clone()))
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
            Listing::Entry(e) if e.record.status == ArtifactStatus::Ready => Some(e.record.id.clone()),
            Listing::Entry(e)
                if matches!(&e.record.status, ArtifactStatus::Failed { code, .. } if code == "integrity") =>
            {
                Some(e.record.id.clone())
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
