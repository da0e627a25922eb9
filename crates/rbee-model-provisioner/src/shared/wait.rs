//! Reading what the store holds, and otherwise waiting for the hive that fetches from the origin, or becoming it.

use std::path::Path;

use rbee_artifact::{
    CatalogKey, DownloadTracker, Error, ResolvedArtifact, ResolvedFile, Result, human_bytes,
};
use rbee_catalog::ArtifactRecord;
use rbee_shared_store::{Election, Lease};
use tokio_util::sync::CancellationToken;

use super::{Fault, NEARLY_DONE_PERCENT, SharedTier, WAIT_POLL, WAIT_POLL_NEARLY_DONE};

impl SharedTier {
    /// Fetches what it can of `to_fetch` from the store into `files_dir`; when the rest must
    /// come from the origin, waits while another hive fetches it, or wins the lease and returns
    /// it for this hive to fetch. Returns the files still to fetch and, when this hive fetches
    /// from the origin for the cluster, its lease.
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn fetch(
        &self,
        key: &CatalogKey,
        resolved: &ResolvedArtifact,
        mut to_fetch: Vec<ResolvedFile>,
        files_dir: &Path,
        tracker: &DownloadTracker,
        cancel: &CancellationToken,
        record: &mut ArtifactRecord,
    ) -> Result<(Vec<ResolvedFile>, Option<Lease>)> {
        let id = key.id();
        let mut told_waiting = String::new();
        loop {
            to_fetch = match self
                .read_from_store(
                    &id,
                    resolved,
                    to_fetch.clone(),
                    files_dir,
                    tracker,
                    cancel,
                    record,
                )
                .await
            {
                Ok(rest) => rest,
                Err(Fault::Store(e)) => {
                    self.passed_over(tracker, e)?;
                    return Ok((to_fetch, None));
                }
                Err(Fault::Other(e)) => return Err(e),
            };
            if to_fetch.is_empty() {
                return Ok((to_fetch, None));
            }
            let other = match self.inner.elector.try_acquire(&id).await {
                Ok(Election::Won(lease)) => {
                    tracing::info!(id, "this hive fetches from the origin for the cluster");
                    return Ok((to_fetch, Some(lease)));
                }
                Ok(Election::Held(other)) if other.holder == self.inner.elector.holder() => {
                    // Our own lease from a process that died, or a race we lost to ourselves:
                    // fetch without one (correctness never depends on it).
                    return Ok((to_fetch, None));
                }
                Ok(Election::Held(other)) => other,
                Err(e) => {
                    self.passed_over(tracker, e)?;
                    return Ok((to_fetch, None));
                }
            };
            // The holder's own report only: a stale one of an earlier holder says nothing.
            let progress = match self.inner.elector.progress(&id).await {
                Ok(Some(p)) if p.holder == other.holder => Some(p),
                _ => None,
            };
            let mut line = format!("waiting for hive {}", other.holder);
            if let Some(p) = &progress {
                line.push_str(&format!(
                    ": {}% ({} of {})",
                    p.percent(),
                    human_bytes(p.bytes),
                    human_bytes(p.total)
                ));
            }
            if line != told_waiting {
                tracker.message(line.clone());
                told_waiting = line;
            }
            let poll = match progress {
                Some(p) if p.percent() >= NEARLY_DONE_PERCENT => WAIT_POLL_NEARLY_DONE,
                _ => WAIT_POLL,
            };
            tokio::select! {
                () = tokio::time::sleep(poll) => {}
                () = cancel.cancelled() => return Err(Error::Cancelled),
            }
        }
    }
}
