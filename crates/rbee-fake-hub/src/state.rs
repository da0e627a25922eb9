//! State shared by every request of one fake hub.

use std::collections::HashMap;
use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use url::Url;

use crate::config::FakeHubConfig;
use crate::counters::Counters;
use crate::fault::{FaultAction, FaultSet, Host, Phase};
use crate::hashes::HashCache;
use crate::sign::Signer;

#[derive(Debug)]
pub(crate) struct HubState {
    pub(crate) config: FakeHubConfig,
    pub(crate) hub_url: Url,
    pub(crate) cdn_url: Url,
    pub(crate) faults: FaultSet,
    pub(crate) counters: Counters,
    /// Bytes per second per response body; 0 means unlimited.
    pub(crate) rate_limit: Arc<AtomicU64>,
    pub(crate) signer: Signer,
    pub(crate) hashes: HashCache,
    /// The last scan of each revision folder.
    pub(crate) scans: crate::scanned::Scans,
    /// The last walk of each revision folder, while nothing under it changed.
    pub(crate) walks: Arc<crate::walks::Walks>,
    /// GitHub API use per identity: (window start, requests in the window).
    pub(crate) gh_usage: Mutex<HashMap<String, (u64, u64)>>,
    /// Numbers the validators a `changing_validators` fault invents.
    lies: AtomicU64,
    /// Files stored as xorbs, for Xet-enabled repos.
    pub(crate) xet: Arc<crate::xet_store::XetStore>,
}

/// What the listing lies say about one file (see [`FaultAction::ListedSize`] and friends).
#[derive(Debug, Default)]
pub(crate) struct ListedLies {
    pub(crate) size: Option<u64>,
    pub(crate) sha256: Option<String>,
    pub(crate) name: Option<String>,
}

impl HubState {
    pub(crate) fn new(config: FakeHubConfig, hub_url: Url, cdn_url: Url) -> io::Result<Self> {
        let faults = FaultSet::default();
        faults
            .set(config.faults.clone())
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        let state = Self {
            rate_limit: Arc::new(AtomicU64::new(0)),
            hub_url,
            cdn_url,
            faults,
            counters: Counters::default(),
            signer: Signer::new(),
            hashes: HashCache::default(),
            scans: crate::scanned::Scans::default(),
            walks: Arc::default(),
            gh_usage: Mutex::new(HashMap::new()),
            lies: AtomicU64::new(0),
            xet: Arc::new(crate::xet_store::XetStore::new(
                config.xet_compression,
                config.xet_xorb_bytes,
            )?),
            config,
        };
        state.set_rate_limit(state.config.rate_limit);
        Ok(state)
    }

    /// A new number for an invented validator.
    pub(crate) fn next_lie(&self) -> u64 {
        self.lies.fetch_add(1, Ordering::Relaxed) + 1
    }

    /// The listing lies about the file served at `files/<rel>`.
    pub(crate) fn listed_lies(&self, rel: &str) -> ListedLies {
        let path = format!("/files/{}", rel.trim_start_matches('/'));
        let mut lies = ListedLies::default();
        for action in self.faults.take(Phase::Listing, Host::Hub, &path, false) {
            match action {
                FaultAction::ListedSize { size } => lies.size = Some(size),
                FaultAction::ListedSha256 { sha256 } => lies.sha256 = Some(sha256),
                FaultAction::ListedName { name } => lies.name = Some(name),
                _ => {}
            }
        }
        lies
    }

    pub(crate) fn set_rate_limit(&self, bytes_per_sec: Option<u64>) {
        self.rate_limit
            .store(bytes_per_sec.unwrap_or(0), Ordering::Relaxed);
    }

    /// A signed CDN URL for the file at `rel` (relative to the root), valid for the configured
    /// lifetime, or for less when an `expire_redirect` fault matches `request_path`.
    pub(crate) fn signed_cdn_url(&self, rel: &str, request_path: &str) -> Url {
        let ttl = self
            .faults
            .take(Phase::Redirect, Host::Hub, request_path, true)
            .into_iter()
            .find_map(|a| match a {
                FaultAction::ExpireRedirect { after_secs } => Some(Duration::from_secs(after_secs)),
                _ => None,
            })
            .unwrap_or(self.config.signed_url_ttl);
        let mut url = crate::url_path::join_encoded(&self.cdn_url, "files", rel);
        let signed_path = format!("/files/{}", rel.trim_start_matches('/'));
        url.set_query(Some(&self.signer.query(&signed_path, ttl)));
        url
    }
}
