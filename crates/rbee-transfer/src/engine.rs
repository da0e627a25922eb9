//! What every transfer of one engine shares: its settings, HTTP clients, rate limit and retry policy.

use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use rbee_artifact::Error;
use reqwest::Client;

use crate::config::TransferConfig;
use crate::http;
use crate::rate::RateLimiter;
use crate::retry::RetryPolicy;

#[derive(Debug)]
pub(crate) struct Inner {
    pub(crate) config: TransferConfig,
    /// For API calls: may use HTTP/2.
    pub(crate) api: Client,
    /// For file bodies: HTTP/1.1, one connection per range.
    pub(crate) data: Client,
    pub(crate) limiter: Option<RateLimiter>,
    pub(crate) retry: RetryPolicy,
    pub(crate) syncs: Arc<SyncCounts>,
}

/// Syncs an engine has made, for tests and diagnostics (see [`Transfer::directory_syncs`] and
/// [`Transfer::state_saves`]).
///
/// [`Transfer::directory_syncs`]: crate::Transfer::directory_syncs
/// [`Transfer::state_saves`]: crate::Transfer::state_saves
#[derive(Debug, Default)]
pub(crate) struct SyncCounts {
    /// Folder syncs after files were published.
    pub(crate) dirs: AtomicU64,
    /// Resume states saved (each after a sync of the partial).
    pub(crate) states: AtomicU64,
}

impl Inner {
    /// The shared state for an engine with a validated `config`.
    pub(crate) fn new(config: TransferConfig) -> Result<Self, Error> {
        let api = http::build_client(&config, false)?;
        let data = http::build_client(&config, true)?;
        Ok(Inner {
            limiter: config.rate_limit.map(RateLimiter::new),
            retry: RetryPolicy::new(
                config.initial_backoff,
                config.max_backoff,
                config.max_attempts,
            ),
            api,
            data,
            config,
            syncs: Default::default(),
        })
    }
}
