//! `rbee --hive URL model …`: the same commands through a rbee-hive daemon. Downloads become
//! daemon jobs whose Server-Sent Events feed the same progress renderer as embedded mode;
//! `list`, `info`, `inspect`, `verify` and `rm` use the daemon's routes and print exactly like embedded
//! mode. Ctrl-C cancels the remote job (its partial files stay on the daemon's disk).

mod download;
mod model;
mod ps;

pub(crate) use model::run;
pub(crate) use ps::ps;

use anyhow::{Context, Result};
use rbee_artifact::{ArtifactRef, CatalogKey, Secret};
use rbee_catalog::{CatalogEntry, Listing};
use rbee_hive::api::{FinalEvent, JobRequest};
use rbee_hive::client::{ClientError, HiveClient, SseEvent};
use reqwest::Url;
use serde_json::Value;

use crate::failure::RemoteError;
use crate::setup::{self, CliError, UsageError};

/// A daemon, reached through its client; errors become the CLI's errors.
struct Hive {
    client: HiveClient,
}

impl Hive {
    fn new(url: &str, token: Option<&str>) -> Result<Self> {
        let base = Url::parse(url.trim()).map_err(|e| {
            UsageError::argument(format!(
                "--hive {url} is not a URL ({e}); write e.g. http://127.0.0.1:8600"
            ))
        })?;
        if !matches!(base.scheme(), "http" | "https") || base.cannot_be_a_base() {
            return Err(UsageError::argument(format!(
                "--hive {url} must be an http:// or https:// URL, e.g. http://127.0.0.1:8600"
            ))
            .into());
        }
        let client = HiveClient::new(base, token.and_then(Secret::new))
            .context("building the HTTP client")?;
        Ok(Self { client })
    }

    /// The base URL as typed in commands (no trailing `/`).
    fn base(&self) -> &str {
        self.client.base().as_str().trim_end_matches('/')
    }

    /// The client's error as the CLI reports it: the daemon's answer as a [`RemoteError`]
    /// (with what to do when it is about this side's token), an unreachable daemon with how
    /// to start one.
    fn error(&self, e: ClientError) -> anyhow::Error {
        match e {
            ClientError::Api { body, .. } => {
                let mut e = RemoteError {
                    code: body.code,
                    message: body.message,
                };
                if e.code == "unauthorized" {
                    let what = if self.client.has_token() {
                        "the token given was refused; check --hive-token / RBEE_HIVE_TOKEN"
                    } else {
                        "pass the daemon's token with --hive-token TOKEN or RBEE_HIVE_TOKEN"
                    };
                    e.message = format!("{} ({what})", e.message);
                }
                e.into()
            }
            ClientError::Unreachable { base, cause } => CliError::new(
                "hive_unreachable",
                format!(
                    "cannot reach rbee-hive at {base}: {cause}; is it running? (start it with `rbee-hive`, or leave out --hive / RBEE_HIVE_URL to work in this process)"
                ),
            )
            .into(),
            other => other.into(),
        }
    }

    /// A refused removal of a model a job is downloading says which `rbee ps cancel` frees it.
    async fn explain_busy(&self, e: anyhow::Error, model: &str) -> anyhow::Error {
        if e.downcast_ref::<RemoteError>()
            .is_none_or(|r| r.code != "busy")
        {
            return e;
        }
        let key = match CatalogKey::from_id(model) {
            Some(key) => key,
            None => match setup::parse_reference(model) {
                Ok(r) => CatalogKey::of(&r),
                Err(_) => return e,
            },
        };
        let Ok(jobs) = self.client.jobs().await else {
            return e;
        };
        let job = jobs.jobs.iter().find(|j| {
            j.operation == "model_download"
                && !j.state.is_final()
                && j.model
                    .as_deref()
                    .and_then(|m| m.parse::<ArtifactRef>().ok())
                    .is_some_and(|r| CatalogKey::of(&r) == key)
        });
        match job.map(|j| &j.job_id.0) {
            Some(id) => RemoteError {
                code: "busy".into(),
                message: format!(
                    "`{model}` is being downloaded by job {id}; cancel it first with `rbee --hive {} ps cancel {id}`, then remove the model",
                    self.base()
                ),
            }
            .into(),
            None => e,
        }
    }

    async fn listing(&self) -> Result<(std::path::PathBuf, Vec<Listing>)> {
        let list = self.client.models().await.map_err(|e| self.error(e))?;
        let listing = list.models.into_iter().map(|m| m.into_listing()).collect();
        Ok((list.root, listing))
    }

    async fn model(&self, model: &str) -> Result<CatalogEntry> {
        let view = self
            .client
            .model(&model_name(model)?)
            .await
            .map_err(|e| self.error(e))?;
        Ok(view.into_entry())
    }

    /// Starts a job and returns its id.
    async fn start_job(&self, request: &JobRequest) -> Result<String> {
        let job = self
            .client
            .start_job(request)
            .await
            .map_err(|e| self.error(e))?;
        Ok(job.job_id.0)
    }

    /// Opens a job's event stream.
    async fn stream(&self, job_id: &str) -> Result<rbee_hive::client::EventStream> {
        self.client
            .job_events(job_id)
            .await
            .map_err(|e| self.error(e))
    }

    async fn cancel(&self, job_id: &str) -> Result<()> {
        match self.client.cancel(job_id).await {
            Ok(_) => Ok(()),
            // It finished meanwhile: its final event says how.
            Err(e) if e.code() == Some("invalid_state") => Ok(()),
            Err(e) => Err(self.error(e)),
        }
    }

    /// Runs a catalog job to its final event; returns it.
    async fn run_job(&self, request: &JobRequest) -> Result<Final> {
        let job_id = self.start_job(request).await?;
        let mut events = self.stream(&job_id).await?;
        loop {
            match events.next().await.map_err(|e| self.error(e))? {
                Some(e) if e.is_final() => return Ok(Final::of(&e)),
                Some(_) => {}
                None => return Err(lost_stream(self.base(), &job_id)),
            }
        }
    }
}

/// A model named by id or by reference, as the daemon's routes take it (a relative `file:`
/// path is made absolute here, where it was typed).
fn model_name(model: &str) -> Result<String> {
    Ok(match CatalogKey::from_id(model) {
        Some(_) => model.to_string(),
        None => setup::parse_reference(model)?.to_string(),
    })
}

fn lost_stream(base: &str, job_id: &str) -> anyhow::Error {
    CliError::new(
        "hive_stream_lost",
        format!(
            "lost the event stream of job {job_id} before it finished (did rbee-hive stop?); see it with `rbee --hive {base} ps`"
        ),
    )
    .into()
}

/// How a job ended.
enum Final {
    /// Its result.
    Done(Value),
    /// Cancelled, with the bytes kept.
    Cancelled(u64),
    /// Failed; some failures still carry a result (a verification report).
    Error(RemoteError, Option<Value>),
}

impl Final {
    fn of(event: &SseEvent) -> Self {
        let data: Value = event.json().unwrap_or(Value::Null);
        let result = data.get("result").cloned();
        match FinalEvent::named(&event.name) {
            Some(FinalEvent::Done) => Final::Done(result.unwrap_or(Value::Null)),
            Some(FinalEvent::Cancelled) => {
                Final::Cancelled(data["bytes_on_disk"].as_u64().unwrap_or(0))
            }
            _ => Final::Error(
                RemoteError {
                    code: data["code"].as_str().unwrap_or("error").to_string(),
                    message: data["error"]
                        .as_str()
                        .unwrap_or("the job failed")
                        .to_string(),
                },
                result,
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn models_are_named_by_id_or_canonical_reference() {
        rbee_model_provisioner::register_references();
        assert_eq!(
            model_name("hf:TheBloke/X-GGUF:q4_k_m").unwrap(),
            "hf:TheBloke/X-GGUF:Q4_K_M"
        );
        assert_eq!(
            model_name("hf--TheBloke--X-GGUF--Q4_K_M").unwrap(),
            "hf--TheBloke--X-GGUF--Q4_K_M"
        );
        let prefixed = Hive::new("https://proxy.example/hive", None).unwrap();
        assert_eq!(prefixed.base(), "https://proxy.example/hive");
        assert!(Hive::new("127.0.0.1:8600", None).is_err());
        assert!(Hive::new("ftp://x", None).is_err());
    }
}
