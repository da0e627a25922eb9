//! `provision()`: parse → resolve → check the catalog → check disk space → download → verify →
//! mark ready → return local paths.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rbee_artifact::lock_unpoisoned;
use rbee_artifact::{ArtifactRef, CatalogKey, DownloadTracker, Error, JobId, Result};
use rbee_catalog::{ArtifactStatus, Catalog, CatalogEntry};
use tokio::sync::{Semaphore, watch};
use tokio_util::sync::CancellationToken;

use crate::options::{Outcome, ProvisionOptions, Provisioned, ProvisionerConfig};
use crate::pin::pin_holds;
use crate::registry::VendorRegistry;
use crate::shared::SharedTier;

pub use plan::{Plan, PlannedFile};

mod fetch;
mod plan;
mod run;

/// Provisions artifacts into a catalog using registered vendors. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Provisioner {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    catalog: Arc<Catalog>,
    vendors: VendorRegistry,
    config: ProvisionerConfig,
    slots: Arc<Semaphore>,
    waiting: AtomicUsize,
    inflight: Mutex<HashMap<CatalogKey, Arc<Inflight>>>,
    shared: std::sync::OnceLock<SharedTier>,
}

type SharedResult = Option<std::result::Result<Provisioned, Arc<Error>>>;

/// One transfer, shared by every caller that asked for the same artifact.
#[derive(Debug)]
struct Inflight {
    reference: ArtifactRef,
    tracker: DownloadTracker,
    result: watch::Receiver<SharedResult>,
    cancel: CancellationToken,
    waiters: AtomicUsize,
}

/// A download in progress, for observers (the daemon's global progress stream).
#[derive(Debug, Clone)]
pub struct ActiveDownload {
    /// Catalog id.
    pub id: String,
    /// The reference.
    pub reference: ArtifactRef,
    /// The shared transfer's tracker (subscribe to it).
    pub tracker: DownloadTracker,
}

impl Provisioner {
    /// A provisioner over `catalog` with `vendors`.
    pub fn new(catalog: Arc<Catalog>, vendors: VendorRegistry, config: ProvisionerConfig) -> Self {
        // Whoever holds a provisioner reads references and records of every vendor of the
        // build, whichever vendors it was given.
        crate::vendors::register_references();
        let slots = Arc::new(Semaphore::new(config.max_concurrent_downloads.max(1)));
        Self {
            inner: Arc::new(Inner {
                catalog,
                vendors,
                config,
                slots,
                waiting: AtomicUsize::new(0),
                inflight: Mutex::new(HashMap::new()),
                shared: std::sync::OnceLock::new(),
            }),
        }
    }

    /// The catalog.
    pub fn catalog(&self) -> &Arc<Catalog> {
        &self.inner.catalog
    }

    /// The vendors.
    pub fn vendors(&self) -> &VendorRegistry {
        &self.inner.vendors
    }

    /// Puts the cluster's shared store between the catalog and the origins (once, before the
    /// first request; a second call is refused with `false`).
    pub fn set_shared_store(&self, tier: SharedTier) -> bool {
        self.inner.shared.set(tier).is_ok()
    }

    /// The cluster's shared store, when one is set.
    pub fn shared_store(&self) -> Option<&SharedTier> {
        self.inner.shared.get()
    }

    /// Downloads in progress in this process.
    pub fn active_downloads(&self) -> Vec<ActiveDownload> {
        lock_unpoisoned(&self.inner.inflight)
            .iter()
            .map(|(key, job)| ActiveDownload {
                id: key.id(),
                reference: job.reference.clone(),
                tracker: job.tracker.clone(),
            })
            .collect()
    }

    /// Makes `reference` ready in the catalog and returns it.
    ///
    /// Progress goes to `tracker` (its job id is stamped on every event), ending with exactly one
    /// final event. A request for an artifact another caller is already fetching joins that
    /// transfer. Cancelling `cancel` detaches this caller at once; the transfer itself stops
    /// (keeping partial files for a resume) when its last caller has cancelled.
    pub async fn provision(
        &self,
        reference: ArtifactRef,
        options: ProvisionOptions,
        tracker: &DownloadTracker,
        cancel: CancellationToken,
    ) -> Result<Provisioned> {
        let result = self
            .provision_inner(reference, options, tracker, &cancel)
            .await;
        if let Ok(p) = &result {
            self.inner.catalog.mark_used(&p.entry.record.key());
        }
        // Whatever happened, the caller's stream ends with a final event (a tracker that already
        // has one ignores another).
        finish(tracker, &result);
        result
    }

    async fn provision_inner(
        &self,
        reference: ArtifactRef,
        options: ProvisionOptions,
        tracker: &DownloadTracker,
        cancel: &CancellationToken,
    ) -> Result<Provisioned> {
        let key = options.key(&reference);
        // A pinned artifact that is ready, intact and holds what the pin promises needs no
        // network at all.
        if (reference.is_pinned() || options.resolve.offline)
            && !options.refresh
            && let Some(entry) = self.ready_entry(&key)
            && pin_holds(&reference, &entry)?
        {
            return Ok(Provisioned {
                entry,
                outcome: Outcome::AlreadyReady,
            });
        }
        if cancel.is_cancelled() {
            return Err(Error::Cancelled);
        }

        let job = self.join_or_start(&key, reference, options, tracker.job_id());
        let follower = tracker.follow(&job.tracker);
        let _heartbeat = tracker.spawn_heartbeat(self.inner.config.heartbeat_interval);

        let mut result_rx = job.result.clone();
        let outcome = tokio::select! {
            r = wait_result(&mut result_rx) => r,
            () = cancel.cancelled() => {
                let last = {
                    let _map = lock_unpoisoned(&self.inner.inflight);
                    let last = job.waiters.fetch_sub(1, Ordering::AcqRel) == 1;
                    if last {
                        job.cancel.cancel();
                    }
                    last
                };
                if last {
                    // Last caller: the transfer stops; wait for it to leave the catalog true.
                    let _ = wait_result(&mut result_rx).await;
                    let _ = tokio::time::timeout(Duration::from_secs(2), follower).await;
                } else {
                    follower.abort();
                }
                return Err(Error::Cancelled);
            }
        };
        job.waiters.fetch_sub(1, Ordering::AcqRel);
        // Let the follower forward the final event before the caller stops listening.
        let _ = tokio::time::timeout(Duration::from_secs(2), follower).await;
        outcome
    }

    fn ready_entry(&self, key: &CatalogKey) -> Option<CatalogEntry> {
        let entry = self.inner.catalog.read(key).ok().flatten()?;
        (entry.record.status == ArtifactStatus::Ready && entry.files_present()).then_some(entry)
    }

    fn join_or_start(
        &self,
        key: &CatalogKey,
        reference: ArtifactRef,
        options: ProvisionOptions,
        job_id: &JobId,
    ) -> Arc<Inflight> {
        let mut map = lock_unpoisoned(&self.inner.inflight);
        if let Some(job) = map.get(key)
            && !job.cancel.is_cancelled()
        {
            // Registered under the map lock, so a last caller cancelling at the same moment
            // sees this one.
            job.waiters.fetch_add(1, Ordering::AcqRel);
            return job.clone();
        }
        let tracker =
            DownloadTracker::with_config(job_id.clone(), self.inner.config.tracker.clone());
        let (tx, rx) = watch::channel(None);
        let job = Arc::new(Inflight {
            reference: reference.clone(),
            tracker: tracker.clone(),
            result: rx,
            cancel: CancellationToken::new(),
            waiters: AtomicUsize::new(1),
        });
        map.insert(key.clone(), job.clone());
        let this = self.clone();
        let key = key.clone();
        let task_job = job.clone();
        tokio::spawn(async move {
            // Run in a task of its own so that even a panic ends with the map cleaned and every
            // caller answered, instead of a dead entry that every later request would join.
            let work = {
                let (this, key, tracker, cancel) = (
                    this.clone(),
                    key.clone(),
                    tracker.clone(),
                    task_job.cancel.clone(),
                );
                tokio::spawn(async move {
                    this.run(&key, &reference, &options, &tracker, &cancel)
                        .await
                })
            };
            let result = match work.await {
                Ok(result) => result,
                Err(e) => Err(Error::task_failed("downloading", e)),
            };
            finish(&tracker, &result);
            {
                let mut map = lock_unpoisoned(&this.inner.inflight);
                if map.get(&key).is_some_and(|j| Arc::ptr_eq(j, &task_job)) {
                    map.remove(&key);
                }
            }
            let _ = tx.send(Some(result.map_err(Arc::new)));
        });
        job
    }

    /// Re-hashes an entry's files against their recorded digests (off the async threads).
    pub async fn verify(&self, id_or_reference: &str) -> Result<rbee_catalog::VerifyReport> {
        let catalog = self.inner.catalog.clone();
        let id = id_or_reference.to_string();
        tokio::task::spawn_blocking(move || catalog.verify(&id, |_| {}))
            .await
            .map_err(|e| Error::task_failed("verifying", e))?
    }
}

/// Sends the final event that matches a provision outcome.
fn finish(tracker: &DownloadTracker, result: &Result<Provisioned>) {
    match result {
        Ok(p) => tracker.completed(
            p.entry.record.id.clone(),
            p.paths(),
            p.entry.record.total_size(),
        ),
        Err(e) if e.is_cancelled() => tracker.cancelled(),
        Err(e) => tracker.failed(e.to_string(), e.code()),
    }
}

async fn wait_result(rx: &mut watch::Receiver<SharedResult>) -> Result<Provisioned> {
    let value = rx
        .wait_for(Option::is_some)
        .await
        .map_err(|_| Error::Cancelled)?;
    match value.as_ref() {
        Some(Ok(p)) => Ok(p.clone()),
        Some(Err(e)) => Err(Error::clone(e)),
        None => Err(Error::Cancelled),
    }
}
