//! The shared-store tier: between the local catalog and the origin.
//!
//! Order of sources for each file still needed after the local catalog: the cluster's store
//! (by the digest the vendor's resolve gave, or by the store's manifest of the same revision),
//! then the origin. Store reads go through the download engine with a pre-signed URL, so they
//! are ranged, parallel, resumable, rate-limited, cancellable and verified like any download.
//! When files must come from the origin, one hive of the cluster fetches them (the lease
//! holder) and publishes them; the others wait and then read the store. A store that fails is
//! passed over with a warning, unless it is required.

use std::sync::Arc;
use std::time::Duration;

use rbee_artifact::{DownloadTracker, Error, Result, Sha256Digest};
use rbee_shared_store::{
    Elector, LeaseConfig, SharedStore, StoreError, honours_create_only, layout,
};
use rbee_transfer::Transfer;

mod from_manifest;
mod publish;
mod read;
mod wait;

/// How long a pre-signed read stays valid: long enough for a large file on a slow LAN, and
/// the engine asks again for each fetch.
const READ_URL_LIFETIME: Duration = Duration::from_secs(6 * 3600);

/// How often a waiting hive looks at the store again.
const WAIT_POLL: Duration = Duration::from_millis(500);
/// … and once the holder reports this much done, so that it reads the blobs soon after they
/// are complete.
const WAIT_POLL_NEARLY_DONE: Duration = Duration::from_millis(100);
const NEARLY_DONE_PERCENT: u64 = 90;

/// A cluster's shared store, as the provisioner uses it. Cheap to clone.
#[derive(Debug, Clone)]
pub struct SharedTier {
    inner: Arc<TierInner>,
}

#[derive(Debug)]
struct TierInner {
    store: Arc<dyn SharedStore>,
    elector: Elector,
    transfer: Transfer,
    required: bool,
    name: String,
}

impl SharedTier {
    /// The tier on `store`, for the hive named `hive`, reading through `transfer`. Probes
    /// whether the store honours conditional creates (for leases); a store that cannot be
    /// reached is an error when `required`, else a warning and a tier that will try again on
    /// use.
    pub async fn connect(
        store: Arc<dyn SharedStore>,
        hive: impl Into<String>,
        transfer: Transfer,
        required: bool,
        lease: LeaseConfig,
    ) -> Result<SharedTier> {
        let name = store.describe();
        let conditional = match honours_create_only(&*store).await {
            Ok(conditional) => conditional,
            Err(e) if required => return Err(e.into()),
            Err(e) => {
                tracing::warn!(error = %e, "the shared store is not usable now; downloads go to the origin until it is");
                false
            }
        };
        tracing::info!(store = %name, conditional, "shared store");
        Ok(SharedTier {
            inner: Arc::new(TierInner {
                elector: Elector::new(store.clone(), hive, conditional, lease),
                store,
                transfer,
                required,
                name,
            }),
        })
    }

    /// The store, for commands that manage it (`rbee model list --shared`, …).
    pub fn store(&self) -> &Arc<dyn SharedStore> {
        &self.inner.store
    }

    /// The elector (leases), for commands that must respect them.
    pub fn elector(&self) -> &Elector {
        &self.inner.elector
    }

    /// How the store is named in messages.
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// Whether a failing store fails provisioning instead of falling back to the origin.
    pub fn required(&self) -> bool {
        self.inner.required
    }

    /// A store fault: an error when the store is required, else a warning on the tracker.
    fn passed_over(&self, tracker: &DownloadTracker, e: StoreError) -> Result<()> {
        if self.inner.required {
            return Err(e.into());
        }
        tracker.message(format!(
            "warning: {e}; fetching from the origin instead (--shared-store-required makes this an error)"
        ));
        tracing::warn!(error = %e, "shared store passed over");
        Ok(())
    }

    /// Where a blob is, as recorded in the catalog and shown: never the signed URL.
    fn display_url(&self, sha256: &Sha256Digest) -> url::Url {
        let text = format!(
            "{}/{}",
            self.inner.name.split(' ').next().unwrap_or(""),
            layout::blob(sha256)
        );
        url::Url::parse(&text).unwrap_or_else(|_| url::Url::parse("s3://store/").expect("a URL"))
    }
}

/// Why a read from the store stopped.
enum Fault {
    /// The store failed: pass it over (or fail, when required).
    Store(StoreError),
    /// Anything else (cancelled, disk full): the provision fails.
    Other(Error),
}
