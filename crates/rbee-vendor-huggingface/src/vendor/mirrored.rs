//! Going through Hub mirrors: resolving through the first that answers, and the same requests
//! against the origin for when a mirror fails mid-download.

use rbee_artifact::{ArtifactRef, Error, ResolvedArtifact, Result, redact_url};

use crate::reference::HfRef;
use rbee_transfer::FetchRequest;
use tokio_util::sync::CancellationToken;
use url::Url;

use super::HuggingFaceVendor;
use crate::api;
use crate::mirrors::SKIP_FOR;
use crate::snapshot::PathFilter;

impl HuggingFaceVendor {
    /// Resolves through the first mirror that answers, else the origin; the plan's notes say
    /// which one served, and why mirrors before it did not.
    pub(super) async fn resolve_via_mirrors(
        &self,
        reference: &ArtifactRef,
        hf: &HfRef,
        revision: &str,
        filter: &PathFilter,
        cancel: &CancellationToken,
    ) -> Result<ResolvedArtifact> {
        let mut passed = Vec::new();
        for mirror in &self.config().mirrors {
            let shown = redact_url(mirror);
            if !self.mirror_health().usable(mirror) {
                passed.push(format!(
                    "mirror {shown} skipped (it failed in the last {} min)",
                    SKIP_FOR.as_secs() / 60
                ));
                continue;
            }
            let via = self.through(mirror);
            match via
                .resolve_online(reference, hf, revision, filter, cancel)
                .await
            {
                Ok(mut plan) => {
                    plan.notes.extend(passed);
                    plan.notes.push(format!("served by mirror {shown}"));
                    return Ok(plan);
                }
                Err(e) if e.is_cancelled() => return Err(e),
                // A refusal of this repo (gated, private, missing) says nothing about the
                // mirror's health: other repos still go through it.
                Err(
                    e @ (Error::NotFound { .. }
                    | Error::Unauthorized { .. }
                    | Error::InvalidRequest(_)),
                ) => {
                    tracing::info!(mirror = %shown, error = %e, "mirror refused; trying the next");
                    passed.push(format!("mirror {shown} refused ({e})"));
                }
                Err(e) => {
                    tracing::warn!(mirror = %shown, error = %e, "mirror failed; trying the next");
                    self.mirror_health().failed(mirror);
                    passed.push(format!("mirror {shown} failed ({e})"));
                }
            }
        }
        let mut plan = self
            .resolve_online(reference, hf, revision, filter, cancel)
            .await?;
        if !passed.is_empty() {
            plan.notes.extend(passed);
            plan.notes.push(format!(
                "served by the origin {}",
                redact_url(&self.config().endpoint)
            ));
        }
        Ok(plan)
    }
}

impl HuggingFaceVendor {
    /// For requests that go to a mirror: that mirror, and the same requests against the origin.
    pub(super) fn origin_requests(
        &self,
        requests: &[FetchRequest],
        hf: &HfRef,
        commit: &str,
    ) -> Option<(Url, Vec<FetchRequest>)> {
        let mirror = self.config.mirrors.iter().find(|m| {
            requests.iter().any(|r| {
                r.url.origin() == m.origin()
                    && r.url.path().starts_with(m.path().trim_end_matches('/'))
            })
        })?;
        let origin = requests
            .iter()
            .map(|r| {
                let url =
                    api::resolve_url(&self.config.endpoint, &hf.org, &hf.repo, commit, &r.path);
                FetchRequest {
                    auth: self.auth_for(&url),
                    url,
                    ..r.clone()
                }
            })
            .collect();
        Some((mirror.clone(), origin))
    }
}
