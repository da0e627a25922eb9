//! What every request handler shares: the provisioner, the jobs, the download feed, and the
//! shutdown switch.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use rbee_artifact::TrackerConfig;
use rbee_model_provisioner::Provisioner;
use rbee_transfer::Transfer;
use tokio_util::sync::CancellationToken;

use crate::config::HiveConfig;
use crate::error::ApiError;
use crate::feed::Feed;
use crate::hub::upstream::Upstream;
use crate::jobs::Jobs;

/// The daemon's state. Cheap to clone (an `Arc`).
#[derive(Debug, Clone)]
pub struct HiveState {
    inner: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    provisioner: Provisioner,
    config: HiveConfig,
    jobs: Jobs,
    feed: Arc<Feed>,
    stopping: AtomicBool,
    /// Cancelled once in-flight jobs have been stopped: event streams end.
    streams_end: CancellationToken,
    started: Instant,
    /// The Hub mirror's upstream, when the mirror is on.
    mirror: Option<Upstream>,
    /// Reads model headers; built on first use from [`HiveConfig::transfer`].
    header_engine: std::sync::Mutex<Option<rbee_transfer::Transfer>>,
}

impl HiveState {
    /// State over `provisioner` (whose catalog was opened by the caller).
    pub fn new(provisioner: Provisioner, config: HiveConfig) -> Self {
        // Every job keeps its tracker (a late subscriber reads its final event from it), and a
        // tracker's broadcast buffer is allocated up front: keep it small. A subscriber further
        // behind than this skips progress events, never the final one.
        let tracker = TrackerConfig {
            channel_capacity: 256,
            ..TrackerConfig::default()
        };
        let jobs = Jobs::new(config.max_jobs, config.max_finished_jobs, tracker);
        let mirror = config
            .mirror
            .clone()
            .and_then(|upstream| match Upstream::new(upstream, &config.transfer) {
                Ok(u) => Some(u),
                Err(e) => {
                    tracing::warn!(error = %e, "the Hub mirror is off: its upstream client could not be built");
                    None
                }
            });
        Self {
            inner: Arc::new(Shared {
                provisioner,
                jobs,
                feed: Arc::new(Feed::new(4096)),
                config,
                stopping: AtomicBool::new(false),
                streams_end: CancellationToken::new(),
                started: Instant::now(),
                mirror,
                header_engine: std::sync::Mutex::new(None),
            }),
        }
    }

    /// The provisioner.
    pub fn provisioner(&self) -> &Provisioner {
        &self.inner.provisioner
    }

    /// The settings.
    pub fn config(&self) -> &HiveConfig {
        &self.inner.config
    }

    /// Whether [`HiveState::shutdown`] has begun.
    pub fn is_shutting_down(&self) -> bool {
        self.inner.stopping.load(Ordering::Acquire)
    }

    /// Marks the daemon as stopping; whether it already was.
    pub(crate) fn begin_shutdown(&self) -> bool {
        self.inner.stopping.swap(true, Ordering::AcqRel)
    }

    /// Cancelled when event streams must end (shutdown).
    pub(crate) fn streams_end(&self) -> &CancellationToken {
        &self.inner.streams_end
    }

    pub(crate) fn jobs(&self) -> &Jobs {
        &self.inner.jobs
    }

    pub(crate) fn feed(&self) -> &Arc<Feed> {
        &self.inner.feed
    }

    pub(crate) fn mirror(&self) -> Option<&Upstream> {
        self.inner.mirror.as_ref()
    }

    /// The engine that reads model headers (`POST /v1/inspect`).
    pub(crate) fn header_engine(&self) -> Result<rbee_transfer::Transfer, ApiError> {
        header_engine(&self.inner.header_engine, &self.config().transfer)
    }

    pub(crate) fn uptime_secs(&self) -> u64 {
        self.inner.started.elapsed().as_secs()
    }
}

/// The engine that reads headers, built once from the daemon's transfer settings.
fn header_engine(
    slot: &std::sync::Mutex<Option<Transfer>>,
    config: &rbee_transfer::TransferConfig,
) -> Result<Transfer, ApiError> {
    let mut slot = rbee_artifact::lock_unpoisoned(slot);
    if let Some(t) = &*slot {
        return Ok(t.clone());
    }
    let t = Transfer::new(config.clone()).map_err(ApiError::from)?;
    *slot = Some(t.clone());
    Ok(t)
}
