//! [`HuggingFaceVendor`]: resolve `hf:` references against the Hub, download through the
//! shared transfer engine, reuse and fill the HuggingFace cache.

use std::path::Path;
use std::sync::Arc;

use async_trait::async_trait;
use rbee_artifact::{
    ArtifactRef, DownloadTracker, DownloadedFile, Error, FileSource, ResolveOptions,
    ResolvedArtifact, ResolvedFile, Result, Scheme, Secret, VendorSource,
};

use crate::reference::HfRef;
use rbee_transfer::Transfer;
use tokio_util::sync::CancellationToken;
use url::Url;

use crate::cache::HfCache;
use crate::config::HfConfig;
use crate::hub_error::Context;
use crate::mirrors::MirrorHealth;
use crate::snapshot::PathFilter;
use crate::xet::ChunkCache;

mod download;
mod hf_cache;
mod hub_api;
mod mirrored;
mod plan_index;
mod resolve;
mod select;

/// The `hf:` vendor.
///
/// - `resolve` makes one API call (`/api/models/{org}/{repo}/revision/{rev}?blobs=true`) for
///   the commit, the file list, sizes and LFS sha256s, falling back to the paginated tree
///   listing when sizes are missing; then picks the files
///   ([`select_quant`](crate::select_quant), [`select_snapshot`](crate::select_snapshot),
///   include/exclude globs). Download URLs name the resolved commit, so a branch that moves
///   mid-download cannot mix revisions. Offline, it resolves from the HuggingFace cache only.
/// - `download` takes each file from the HuggingFace cache when a verified copy is there
///   (hard link, else copy; a `file_reused` event says so), fetches the rest through
///   [`Transfer::fetch_all`], and with [`HfConfig::write_hf_cache`] places them in the
///   HuggingFace cache layout.
/// - The token goes to the endpoint's host only, and never into plans, errors or events.
#[derive(Debug, Clone)]
pub struct HuggingFaceVendor {
    config: HfConfig,
    transfer: Transfer,
    cache: HfCache,
    /// Shared by clones, and by the views [`HuggingFaceVendor::through`] makes.
    mirror_health: std::sync::Arc<MirrorHealth>,
    /// For a mirror's metadata: few retries, since the next mirror or the origin is waiting.
    mirror_api: Transfer,
    /// The Xet chunk cache, opened on first use and shared by every download of this vendor.
    chunk_cache: Arc<tokio::sync::OnceCell<Option<Arc<ChunkCache>>>>,
}

impl HuggingFaceVendor {
    /// A vendor for the Hub in `config`, moving bytes through `transfer`.
    pub fn new(config: HfConfig, transfer: Transfer) -> Self {
        let cache = HfCache::new(config.hub_cache.clone());
        let mirror_api = Transfer::new(rbee_transfer::TransferConfig {
            max_attempts: 2,
            max_backoff: std::time::Duration::from_secs(1),
            ..transfer.config().clone()
        })
        .unwrap_or_else(|_| transfer.clone());
        Self {
            config,
            transfer,
            cache,
            mirror_health: Default::default(),
            mirror_api,
            chunk_cache: Default::default(),
        }
    }

    /// The same vendor speaking to `mirror` instead of the endpoint, without the token (it is
    /// the origin's).
    fn through(&self, mirror: &Url) -> Self {
        let mut config = self.config.clone();
        config.endpoint = mirror.clone();
        config.token = None;
        config.mirrors.clear();
        Self {
            config,
            transfer: self.mirror_api.clone(),
            ..self.clone()
        }
    }

    /// The Xet chunk cache, when one is configured and can be opened (reading what an earlier
    /// process left is blocking work, done once).
    async fn chunk_cache(&self) -> Option<Arc<ChunkCache>> {
        self.chunk_cache
            .get_or_init(|| async {
                let dir = self.config.xet_cache.clone()?;
                let max = self.config.xet_cache_max_bytes;
                if max == 0 {
                    return None;
                }
                let opened =
                    tokio::task::spawn_blocking(move || (ChunkCache::open(&dir, max), dir)).await;
                match opened {
                    Ok((Ok(c), _)) => Some(Arc::new(c)),
                    Ok((Err(e), dir)) => {
                        tracing::warn!(dir = %dir.display(), error = %e, "cannot use the Xet chunk cache; going on without it");
                        None
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot use the Xet chunk cache; going on without it");
                        None
                    }
                }
            })
            .await
            .clone()
    }

    fn mirror_health(&self) -> &MirrorHealth {
        &self.mirror_health
    }

    /// The configuration.
    pub fn config(&self) -> &HfConfig {
        &self.config
    }

    /// The token, for a URL on the endpoint's origin only.
    fn auth_for(&self, url: &Url) -> Option<Secret> {
        let same_origin = url.scheme() == self.config.endpoint.scheme()
            && url.host_str() == self.config.endpoint.host_str()
            && url.port_or_known_default() == self.config.endpoint.port_or_known_default();
        same_origin.then(|| self.config.token.clone()).flatten()
    }

    fn context<'a>(&'a self, hf: &'a HfRef, revision: &'a str, url: &'a Url) -> Context<'a> {
        Context {
            endpoint: &self.config.endpoint,
            org: &hf.org,
            repo: &hf.repo,
            revision,
            path: None,
            known_files: &[],
            token: self.config.token.as_ref(),
            url,
        }
    }
}

#[async_trait]
impl VendorSource for HuggingFaceVendor {
    fn read_access(&self, file: &ResolvedFile) -> rbee_artifact::FileAccess {
        let auth = match &file.source {
            FileSource::Http { url } => self.auth_for(url),
            _ => None,
        };
        rbee_artifact::FileAccess::new(auth, Vec::new())
    }

    fn scheme(&self) -> Scheme {
        crate::SCHEME
    }

    async fn resolve(
        &self,
        reference: &ArtifactRef,
        options: &ResolveOptions,
        cancel: &CancellationToken,
    ) -> Result<ResolvedArtifact> {
        let Some(hf) = reference.get::<HfRef>() else {
            return Err(Error::Unsupported(format!(
                "the HuggingFace vendor cannot resolve `{reference}`"
            )));
        };
        let revision = hf.revision.as_deref().unwrap_or("main");
        let filter = PathFilter::new(&options.include, &options.exclude)?;
        if cancel.is_cancelled() {
            return Err(Error::Cancelled);
        }
        if self.config.offline || options.offline {
            return self.resolve_offline(reference, hf, revision, &filter);
        }
        self.resolve_via_mirrors(reference, hf, revision, &filter, cancel)
            .await
    }

    async fn download(
        &self,
        plan: &ResolvedArtifact,
        files: &[ResolvedFile],
        dest: &Path,
        progress: &DownloadTracker,
        cancel: &CancellationToken,
    ) -> Result<Vec<DownloadedFile>> {
        self.download_files(plan, files, dest, progress, cancel)
            .await
    }
}
