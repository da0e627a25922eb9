//! Shared helpers.

use std::path::Path;
use std::time::Duration;

use rbee_artifact::{
    ArtifactRef, DownloadTracker, EventKind, JobId, ProgressEvent, ResolveOptions,
    ResolvedArtifact, Result, Secret, Sha256Digest, VendorSource,
};
use rbee_transfer::{Transfer, TransferConfig};
use rbee_vendor_huggingface::{HfConfig, HuggingFaceVendor};
use tokio_util::sync::CancellationToken;
use url::Url;

pub(crate) const COMMIT: &str = "0123456789abcdef0123456789abcdef01234567";
pub(crate) const TOKEN: &str = "hf_TESTTOKENdoNotLeak";

/// An engine tuned for tests: quick retries, no proxies from the environment.
pub(crate) fn transfer() -> Transfer {
    Transfer::new(TransferConfig {
        max_attempts: 3,
        initial_backoff: Duration::from_millis(10),
        max_backoff: Duration::from_secs(2),
        stall_timeout: Duration::from_secs(10),
        use_env_proxy: false,
        ..TransferConfig::default()
    })
    .unwrap()
}

pub(crate) fn config(endpoint: &str, hf_home: &Path) -> HfConfig {
    HfConfig::new(Url::parse(endpoint).unwrap(), hf_home)
}

pub(crate) fn vendor(endpoint: &str, hf_home: &Path, token: bool) -> HuggingFaceVendor {
    let mut c = config(endpoint, hf_home);
    if token {
        c.token = Secret::new(TOKEN);
    }
    HuggingFaceVendor::new(c, transfer())
}

pub(crate) fn reference(s: &str) -> ArtifactRef {
    rbee_artifact::register_reference::<rbee_vendor_huggingface::HfRef>();
    s.parse().unwrap()
}

pub(crate) async fn resolve(v: &HuggingFaceVendor, r: &str) -> Result<ResolvedArtifact> {
    v.resolve(
        &reference(r),
        &ResolveOptions::default(),
        &CancellationToken::new(),
    )
    .await
}

pub(crate) async fn resolve_with(
    v: &HuggingFaceVendor,
    r: &str,
    options: &ResolveOptions,
) -> Result<ResolvedArtifact> {
    v.resolve(&reference(r), options, &CancellationToken::new())
        .await
}

pub(crate) fn sha(data: &[u8]) -> Sha256Digest {
    Sha256Digest::of(data)
}

/// Deterministic bytes that differ per `seed`.
pub(crate) fn bytes(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

/// Downloads every file of `plan` into `dest`, returning the events seen.
pub(crate) async fn download_all(
    v: &HuggingFaceVendor,
    plan: &ResolvedArtifact,
    dest: &Path,
) -> (
    Result<Vec<rbee_artifact::DownloadedFile>>,
    Vec<ProgressEvent>,
) {
    let tracker = DownloadTracker::new(JobId::from("test-job"));
    let (_, mut rx) = tracker.subscribe();
    let out = v
        .download(plan, &plan.files, dest, &tracker, &CancellationToken::new())
        .await;
    let mut events = Vec::new();
    while let Ok(e) = rx.try_recv() {
        events.push(e);
    }
    (out, events)
}

pub(crate) fn reused_paths(events: &[ProgressEvent]) -> Vec<String> {
    events
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::FileReused { path, .. } => Some(path.clone()),
            _ => None,
        })
        .collect()
}

/// A git blob id, as `git hash-object` computes it.
pub(crate) fn git_oid(data: &[u8]) -> String {
    let mut h = rbee_artifact::GitBlobHasher::new(data.len() as u64);
    h.update(data);
    h.finalize().to_string()
}
