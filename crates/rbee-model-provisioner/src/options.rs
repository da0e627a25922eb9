//! What a provisioner and a request are tuned with, and what a request returns.

use std::path::PathBuf;
use std::time::Duration;

use rbee_artifact::{ArtifactRef, CatalogKey, ResolveOptions, TrackerConfig};
use rbee_catalog::CatalogEntry;
use serde::Serialize;

/// Tuning for a [`Provisioner`].
#[derive(Debug, Clone)]
pub struct ProvisionerConfig {
    /// Artifacts downloaded at the same time; further requests wait in a queue (default 2).
    pub max_concurrent_downloads: usize,
    /// Interval of `heartbeat` events on each caller's tracker (default 1 s).
    pub heartbeat_interval: Duration,
    /// How often a download's byte count is written to its catalog record (default 2 s).
    pub status_interval: Duration,
    /// Refuse to start when the file system lacks the space (default on).
    pub check_disk_space: bool,
    /// Link files already in the catalog (same sha256) instead of downloading them (default on).
    pub reuse_by_digest: bool,
    /// Tuning of the trackers of shared transfers.
    pub tracker: TrackerConfig,
    /// Size budget of the catalog in bytes (default none): before a download that would
    /// exceed it, least recently used unpinned ready models are evicted (each named in a
    /// message); a download that cannot fit even then fails before any byte.
    pub max_cache_bytes: Option<u64>,
}

impl Default for ProvisionerConfig {
    fn default() -> Self {
        Self {
            max_concurrent_downloads: 2,
            heartbeat_interval: Duration::from_secs(1),
            status_interval: Duration::from_secs(2),
            check_disk_space: true,
            reuse_by_digest: true,
            tracker: TrackerConfig::default(),
            max_cache_bytes: None,
        }
    }
}

/// Per-request knobs.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct ProvisionOptions {
    /// Passed to the vendor's resolve (globs, offline).
    pub resolve: ResolveOptions,
    /// Ask the vendor again even when a pinned artifact is ready (moving references — branches,
    /// "latest", local files — are always re-checked; that costs one metadata request).
    pub refresh: bool,
}

impl ProvisionOptions {
    /// Options with these resolve options.
    pub fn new(resolve: ResolveOptions) -> Self {
        Self {
            resolve,
            refresh: false,
        }
    }

    /// The catalog entry a request for `reference` with these options writes to: the reference
    /// and the selection (`--include`/`--exclude`) together. Requests share an entry, and a
    /// transfer, only when both are equal.
    pub fn key(&self, reference: &ArtifactRef) -> CatalogKey {
        CatalogKey::of_request(reference, &self.resolve.selection())
    }
}

/// How a provision request was satisfied.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// It was already ready and current: nothing was fetched.
    AlreadyReady,
    /// It was fetched (or completed from a partial).
    Downloaded,
    /// It was ready, the vendor had a newer revision, and only changed files were fetched.
    Updated,
}

/// A ready artifact.
#[derive(Debug, Clone)]
pub struct Provisioned {
    /// Its catalog entry.
    pub entry: CatalogEntry,
    /// How the request was satisfied.
    pub outcome: Outcome,
}

impl Provisioned {
    /// Absolute paths of the artifact's files.
    pub fn paths(&self) -> Vec<PathBuf> {
        self.entry.paths()
    }
}
