//! `rbee --hive URL model …`: each catalog command through the daemon, printed as in embedded mode.

use anyhow::{Context, Result};
use rbee_artifact::Error;
use rbee_catalog::{Removed, VerifyReport};
use rbee_hive::api::JobRequest;

use crate::args::{GlobalArgs, ModelCommand};
use crate::commands;
use crate::setup::UsageError;

use super::download::download;
use super::{Final, Hive, model_name};

/// Runs `command` through the daemon at `url`.
pub(crate) async fn run(global: &GlobalArgs, url: &str, command: &ModelCommand) -> Result<()> {
    let from_env = hive_from_env();
    if global.cache_dir.is_some() {
        let why = if from_env {
            "; RBEE_HIVE_URL is set, unset it to use a local catalog"
        } else {
            ""
        };
        return Err(UsageError::argument(format!(
            "--cache-dir does not apply with --hive: the daemon uses its own catalog{why}"
        ))
        .into());
    }
    if from_env && !global.json && !global.quiet {
        let ignored = if std::env::var_os("RBEE_CACHE_DIR").is_some_and(|v| !v.is_empty()) {
            " (RBEE_CACHE_DIR is ignored)"
        } else {
            ""
        };
        eprintln!(
            "Working through rbee-hive at {url} (RBEE_HIVE_URL); its catalog is used{ignored}"
        );
    }
    let hive = Hive::new(url, global.hive_token.as_deref())?;
    match command {
        ModelCommand::Download(args) => download(&hive, global, args).await,
        // The shared store is reached directly, not through the daemon.
        ModelCommand::List(args) if args.shared => crate::shared::list(global).await,
        ModelCommand::Rm(args) if args.shared => crate::shared::rm(global, &args.models).await,
        ModelCommand::Push { .. } => Err(UsageError::argument(
            "rbee model push publishes from this machine's catalog; run it without --hive (on the hive's machine, with its --cache-dir)",
        )
        .into()),
        ModelCommand::List(_) => {
            let (root, listing) = hive.listing().await?;
            commands::print_listing(global, &root, &listing)
        }
        // The daemon reads the headers with its own tokens and judges the fit on its GPUs.
        ModelCommand::Inspect(args) => {
            let request = crate::inspect::hive_request(args)?;
            let report = hive
                .client
                .inspect(&request)
                .await
                .map_err(|e| hive.error(e))?;
            crate::inspect::print_report(global, args, &report)
        }
        ModelCommand::Info { model } => {
            let entry = hive.model(model).await?;
            commands::print_info(global, &entry)
        }
        ModelCommand::Verify { models } => verify(&hive, global, models).await,
        ModelCommand::Rm(args) => {
            let mut removed = Vec::new();
            for model in &args.models {
                let r: Removed = match hive.client.delete_model(&model_name(model)?).await {
                    Ok(removed) => removed,
                    Err(e) => return Err(hive.explain_busy(hive.error(e), model).await),
                };
                commands::print_removed(global, &r);
                removed.push(r);
            }
            commands::finish_rm(global, &removed)
        }
        ModelCommand::Tidy(cmd) => Err(UsageError::argument(format!(
            "`rbee model {}` works on a local catalog and is not available with --hive; the daemon applies its own --max-cache-size",
            cmd.name()
        ))
        .into()),
        ModelCommand::Import { .. } => Err(UsageError::argument(
            "`rbee model import` fills a local catalog and is not available with --hive",
        )
        .into()),
        ModelCommand::Du => Err(UsageError::argument(
            "`rbee model du` measures a local catalog and is not available with --hive; `rbee --hive URL ls` shows sizes",
        )
        .into()),
    }
}

/// Whether the daemon was named by `RBEE_HIVE_URL` rather than `--hive`.
fn hive_from_env() -> bool {
    std::env::var_os("RBEE_HIVE_URL").is_some_and(|v| !v.is_empty())
        && !std::env::args().any(|a| a == "--hive" || a.starts_with("--hive="))
}

async fn verify(hive: &Hive, global: &GlobalArgs, models: &[String]) -> Result<()> {
    let ids = if models.is_empty() {
        commands::verifiable(hive.listing().await?.1)
    } else {
        let mut ids = Vec::new();
        for model in models {
            ids.push(hive.model(model).await?.record.id.clone());
        }
        ids
    };
    let mut reports = Vec::new();
    for id in ids {
        let report = match hive
            .run_job(&JobRequest::ModelVerify {
                model: id,
                hive_id: None,
            })
            .await?
        {
            Final::Done(result) | Final::Error(_, Some(result)) => {
                serde_json::from_value::<VerifyReport>(result)
                    .context("rbee-hive sent a verification report this rbee does not understand")?
            }
            Final::Error(e, None) => return Err(e.into()),
            Final::Cancelled(_) => return Err(Error::Cancelled.into()),
        };
        commands::print_verified(global, &report);
        reports.push(report);
    }
    commands::finish_verify(global, &reports)
}
