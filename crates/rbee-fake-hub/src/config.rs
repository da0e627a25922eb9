//! Start-up configuration of a [`FakeHub`](crate::FakeHub).

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use crate::fault::Fault;

/// How a [`FakeHub`](crate::FakeHub) starts. Build it with [`FakeHubConfig::new`] and adjust
/// fields or use the `with_*` helpers.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct FakeHubConfig {
    /// The folder served: plain files under `/files/`, HuggingFace repos under `hf/`, GitHub
    /// releases under `gh/` (see the crate docs for the layouts).
    pub root: PathBuf,
    /// Where the hub listens. Default `127.0.0.1:0` (an ephemeral port).
    pub hub_addr: SocketAddr,
    /// Where the CDN listens. Default `127.0.0.2:0`; when that address cannot be bound the CDN
    /// listens on `127.0.0.1` and is addressed as `localhost` so its URLs still name another
    /// host than the hub's.
    pub cdn_addr: SocketAddr,
    /// Per-response-body rate cap in bytes per second (`None`: unlimited). Changeable at run
    /// time with [`FakeHub::set_rate_limit`](crate::FakeHub::set_rate_limit).
    pub rate_limit: Option<u64>,
    /// Faults active from the start.
    pub faults: Vec<Fault>,
    /// Lifetime of signed redirect targets (`?expires=…&sig=…`). Default 300 s, like GitHub's
    /// release-asset URLs.
    pub signed_url_ttl: Duration,
    /// Bearer tokens accepted for private and gated HuggingFace repos (in addition to the
    /// `tokens` listed in a repo's `fakehub.json`).
    pub hf_tokens: Vec<String>,
    /// Bearer tokens accepted for private GitHub repos (in addition to a repo's `.repo.json`).
    pub gh_tokens: Vec<String>,
    /// Files at least this large are served as LFS files by the HuggingFace protocol, whatever
    /// their extension. Default 10 MiB (the Hub refuses larger regular files).
    pub lfs_threshold: u64,
    /// Entries per page of the HuggingFace tree listing. Default 1000, as the Hub.
    pub hf_tree_page_size: usize,
    /// GitHub API requests allowed per identity (token or anonymous) per hour before answering
    /// 403 "rate limit exceeded". Default 5000.
    pub gh_rate_limit: u64,
    /// Size of the reads that feed response bodies. Default 1 MiB (measured fastest on loopback).
    pub read_chunk: usize,
    /// How long [`FakeHub::shutdown`](crate::FakeHub::shutdown) waits for open responses to end
    /// before cutting them. Default 2 s.
    pub shutdown_grace: Duration,
    /// Serve every LFS file of every HuggingFace repo over Xet as well as the LFS bridge
    /// (a repo's `fakehub.json` can also switch it on; see the `xet` module). Default off.
    pub xet: bool,
    /// Lifetime of the Xet tokens the `xet-read-token` route issues. Default 1 hour.
    pub xet_token_ttl: Duration,
    /// How xorb chunks are stored (LZ4 by default; chunks it does not shrink are stored as
    /// they are, as xet-core does).
    pub xet_compression: rbee_xet::CompressionScheme,
    /// Largest xorb the hub packs, in bytes (at most, and by default, 64 MiB as on the Hub);
    /// smaller values spread a few-MiB file over several xorbs.
    pub xet_xorb_bytes: usize,
}

impl FakeHubConfig {
    /// Defaults (see each field) serving `root`.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self {
            root: root.into(),
            hub_addr: SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 0),
            cdn_addr: SocketAddr::new(IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2)), 0),
            rate_limit: None,
            faults: Vec::new(),
            signed_url_ttl: Duration::from_secs(300),
            hf_tokens: Vec::new(),
            gh_tokens: Vec::new(),
            lfs_threshold: 10 * 1024 * 1024,
            hf_tree_page_size: 1000,
            gh_rate_limit: 5000,
            read_chunk: 1024 * 1024,
            shutdown_grace: Duration::from_secs(2),
            xet: false,
            xet_token_ttl: Duration::from_secs(3600),
            xet_compression: rbee_xet::CompressionScheme::Lz4,
            xet_xorb_bytes: rbee_xet::MAX_XORB_BYTES,
        }
    }

    /// Sets the per-response rate cap in bytes per second.
    pub fn with_rate_limit(mut self, bytes_per_sec: u64) -> Self {
        self.rate_limit = Some(bytes_per_sec);
        self
    }

    /// Adds a fault active from the start.
    pub fn with_fault(mut self, fault: Fault) -> Self {
        self.faults.push(fault);
        self
    }

    /// Accepts `token` for private and gated HuggingFace repos.
    pub fn with_hf_token(mut self, token: impl Into<String>) -> Self {
        self.hf_tokens.push(token.into());
        self
    }

    /// Accepts `token` for private GitHub repos.
    pub fn with_gh_token(mut self, token: impl Into<String>) -> Self {
        self.gh_tokens.push(token.into());
        self
    }

    /// Serves every HuggingFace LFS file over Xet too.
    pub fn with_xet(mut self) -> Self {
        self.xet = true;
        self
    }

    /// Sets the lifetime of signed redirect targets.
    pub fn with_signed_url_ttl(mut self, ttl: Duration) -> Self {
        self.signed_url_ttl = ttl;
        self
    }
}
