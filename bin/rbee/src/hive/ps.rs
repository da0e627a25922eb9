//! `rbee ps`: the daemon's jobs, and cancelling, pausing or resuming one.

use anyhow::Result;
use rbee_artifact::human_bytes;
use rbee_hive::api::JobView;
use serde_json::json;

use crate::args::{GlobalArgs, PsAction};
use crate::render::JSON_VERSION;

use super::Hive;

/// `rbee ps [cancel|pause|resume JOB]`: the daemon's jobs, or one of them changed.
pub(crate) async fn ps(global: &GlobalArgs, url: &str, action: Option<&PsAction>) -> Result<()> {
    let hive = Hive::new(url, global.hive_token.as_deref())?;
    let Some(action) = action else {
        let jobs = hive.client.jobs().await.map_err(|e| hive.error(e))?.jobs;
        if global.json {
            let doc = json!({"version": JSON_VERSION, "jobs": jobs});
            out!("{}", serde_json::to_string_pretty(&doc)?);
            return Ok(());
        }
        if jobs.is_empty() {
            eprintln!("rbee-hive at {} has no jobs", hive.client.base());
            return Ok(());
        }
        let rows: Vec<[String; 4]> = jobs.iter().map(job_row).collect();
        let id_width = rows.iter().map(|r| r[0].len()).max().unwrap_or(0).max(3);
        out!(
            "{:<id_width$}  {:<10} {:>22}  MODEL",
            "JOB",
            "STATE",
            "PROGRESS"
        );
        for [id, state, progress, model] in rows {
            out!("{id:<id_width$}  {state:<10} {progress:>22}  {model}");
        }
        return Ok(());
    };
    let value = match action {
        PsAction::Cancel { job } => hive.client.cancel(job).await,
        PsAction::Pause { job } => hive.client.pause(job).await,
        PsAction::Resume { job } => hive.client.resume(job).await,
    }
    .map_err(|e| hive.error(e))?;
    if global.json {
        let doc = json!({"version": JSON_VERSION, "job": value});
        out!("{}", serde_json::to_string_pretty(&doc)?);
    } else {
        let [id, state, progress, model] = job_row(&value);
        out!("{id}: {state} {progress} {model}");
    }
    Ok(())
}

/// A job's state as table cells: id, state, progress, model.
fn job_row(job: &JobView) -> [String; 4] {
    let bytes = job.progress.as_ref().map_or(0, |p| p.bytes);
    let percent = job
        .progress
        .as_ref()
        .and_then(|p| p.percent.map(|pct| (pct, p.total)));
    let progress = match (percent, job.operation.as_str()) {
        (Some((pct, total)), _) => format!("{pct:.0}% of {}", human_bytes(total)),
        (None, "model_download") if bytes > 0 => human_bytes(bytes),
        _ => "-".into(),
    };
    [
        job.job_id.0.clone(),
        job.state.as_str().to_string(),
        progress,
        job.model.clone().unwrap_or_default(),
    ]
}
