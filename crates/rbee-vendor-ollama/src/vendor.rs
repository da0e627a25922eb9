//! [`OllamaVendor`]: resolves Ollama names through Ollama's store or its registry, and fetches
//! layers through the shared transfer engine.

use std::path::Path;
use std::sync::Arc;

use rbee_artifact::{
    ArtifactRef, DownloadTracker, DownloadedFile, Error, FileAccess, FileSource, ResolveOptions,
    ResolvedArtifact, ResolvedFile, Result, Scheme, VendorSource, validate_relative_path,
};

use rbee_transfer::{FetchRequest, Transfer, TransferError};
use tokio_util::sync::CancellationToken;

use crate::OllamaRef;
use crate::challenge::Challenge;
use crate::config::OllamaConfig;
use crate::digest::BlobDigest;
use crate::manifest::{LayerKind, MANIFEST_FILE, Manifest};
use crate::publish::publish;
use crate::registry::{self, Registry, Tokens};
use crate::reuse::{FROM_OLLAMA_STORE, reuse};
use crate::store::OllamaStore;

/// The `ollama:` vendor.
///
/// - Resolving reads Ollama's store first ([`OllamaConfig::store`]): a model Ollama already
///   has resolves without the network, to its blobs in place. Otherwise it fetches the
///   manifest from the registry (answering a Bearer challenge anonymously) and plans the
///   manifest itself, the config and every layer it knows (model, projector, adapter,
///   template, system, params, messages, license), each with its size and digest.
/// - Downloading takes every blob Ollama's store already holds (hashed once, then hard-linked
///   when on the same file system, else copied), and hands the rest to
///   [`Transfer::fetch_all`]: parallel ranges, resume, stall handling, rate limit, each layer
///   verified against its digest. The registry's `307` to its CDN is followed without the
///   token. With [`OllamaConfig::publish_to_store`], the result is placed in Ollama's store
///   too, blobs first, manifest last.
#[derive(Debug, Clone)]
pub struct OllamaVendor {
    config: OllamaConfig,
    transfer: Transfer,
    tokens: Arc<Tokens>,
}

/// What a name resolves to: the files to fetch (in the artifact's folder: `manifest.json`,
/// `config.json`, `model.gguf`, …), the manifest digest, and notes for people.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Resolution {
    /// The files, manifest first, then config and layers in the manifest's order.
    pub files: Vec<ResolvedFile>,
    /// `sha256:<hex>` of the manifest: the model's identity (Ollama's model id).
    pub revision: String,
    /// What was found and where.
    pub notes: Vec<String>,
}

impl OllamaVendor {
    /// A vendor with `config`, moving bytes (and registry calls) through `transfer`.
    pub fn new(config: OllamaConfig, transfer: Transfer) -> Self {
        Self {
            config,
            transfer,
            tokens: Arc::default(),
        }
    }

    /// The configuration in use.
    pub fn config(&self) -> &OllamaConfig {
        &self.config
    }

    fn store(&self) -> Option<OllamaStore> {
        self.config.store.as_ref().map(OllamaStore::new)
    }

    fn registry<'a>(&'a self, name: &'a OllamaRef) -> Result<Registry<'a>> {
        Ok(Registry {
            transfer: &self.transfer,
            tokens: &self.tokens,
            base: self.config.registry_base(&name.host)?,
            name,
        })
    }

    /// Works out the files of `name`: from Ollama's store when it has the model whole, else
    /// from the registry (unless `offline`).
    pub async fn resolve_name(
        &self,
        name: &OllamaRef,
        offline: bool,
        cancel: &CancellationToken,
    ) -> Result<Resolution> {
        let offline = offline || self.config.offline;
        let mut notes = Vec::new();
        if let Some(store) = self.store() {
            let found = {
                let (store, name) = (store.clone(), name.clone());
                tokio::task::spawn_blocking(move || store.read(&name))
                    .await
                    .map_err(|e| Error::task_failed("reading Ollama's store", e))?
            };
            match found {
                Ok(Some(stored)) => {
                    let missing: Vec<&str> = stored
                        .manifest
                        .layers
                        .iter()
                        .filter(|l| !store.has_blob(&l.digest, l.size))
                        .map(|l| l.kind.label())
                        .collect();
                    if missing.is_empty() {
                        return Ok(Self::planned_from_store(
                            &store,
                            &stored.manifest_path,
                            &stored.bytes,
                            &stored.manifest,
                        ));
                    }
                    notes.push(format!(
                        "Ollama's store has the manifest of {} but not its {} blob(s); fetching from the registry",
                        name.short_name(),
                        missing.join(", ")
                    ));
                }
                Ok(None) => {}
                Err(e) => {
                    tracing::warn!(error = %e.report(), "Ollama's store could not be read; using the registry");
                    notes.push(format!(
                        "Ollama's store was not usable ({e}); fetching from the registry"
                    ));
                }
            }
        }
        if offline {
            return Err(Error::Offline {
                message: format!(
                    "{name} is not in Ollama's store{}, and only local models may be used (offline)",
                    self.store()
                        .map(|s| format!(" ({})", s.root().display()))
                        .unwrap_or_default()
                ),
            });
        }
        let registry = self.registry(name)?;
        let (manifest_url, bytes) = registry.manifest(cancel).await?;
        let manifest =
            Manifest::parse(&bytes, rbee_artifact::redacted_url(&manifest_url).as_ref())?;
        let mut files = vec![ResolvedFile {
            path: MANIFEST_FILE.to_string(),
            size: Some(bytes.len() as u64),
            sha256: Some(manifest.digest),
            version: Some(BlobDigest(manifest.digest).to_string()),
            git_blob: None,
            source: FileSource::Http { url: manifest_url },
        }];
        for layer in &manifest.layers {
            files.push(ResolvedFile {
                path: layer.file_name.clone(),
                size: Some(layer.size),
                sha256: Some(layer.digest),
                version: Some(BlobDigest(layer.digest).to_string()),
                git_blob: None,
                source: FileSource::Http {
                    url: registry::blob_url(&registry.base, name, &layer.digest)?,
                },
            });
        }
        notes.push(summary(name, &manifest));
        Ok(Resolution {
            files,
            revision: BlobDigest(manifest.digest).to_string(),
            notes,
        })
    }

    fn planned_from_store(
        store: &OllamaStore,
        manifest_path: &Path,
        bytes: &[u8],
        manifest: &Manifest,
    ) -> Resolution {
        let mut files = vec![ResolvedFile {
            path: MANIFEST_FILE.to_string(),
            size: Some(bytes.len() as u64),
            sha256: Some(manifest.digest),
            version: Some(BlobDigest(manifest.digest).to_string()),
            git_blob: None,
            source: FileSource::Local {
                path: manifest_path.to_path_buf(),
            },
        }];
        for layer in &manifest.layers {
            files.push(ResolvedFile {
                path: layer.file_name.clone(),
                size: Some(layer.size),
                sha256: Some(layer.digest),
                version: Some(BlobDigest(layer.digest).to_string()),
                git_blob: None,
                source: FileSource::Local {
                    path: store.blob_path(&layer.digest),
                },
            });
        }
        Resolution {
            files,
            revision: BlobDigest(manifest.digest).to_string(),
            notes: vec![format!(
                "found in Ollama's store at {}: nothing to download",
                store.root().display()
            )],
        }
    }

    /// Fetches `files` of `name` into `dest` (each at `dest/<file.path>`): from Ollama's store
    /// when it has the blob with the right bytes, else from the registry through the engine.
    /// Then, with [`OllamaConfig::publish_to_store`], places the model in Ollama's store.
    pub async fn download_files(
        &self,
        name: &OllamaRef,
        all_files: &[ResolvedFile],
        files: &[ResolvedFile],
        dest: &Path,
        progress: &DownloadTracker,
        cancel: &CancellationToken,
    ) -> Result<Vec<DownloadedFile>> {
        let store = self.store();
        let mut done = Vec::new();
        let mut requests = Vec::new();
        for file in files {
            validate_relative_path(&file.path).map_err(|e| Error::Protocol {
                message: format!("refusing to write planned file {:?}: {e}", file.path),
            })?;
            if cancel.is_cancelled() {
                return Err(Error::Cancelled);
            }
            let local = match &file.source {
                FileSource::Local { path } => Some(path.clone()),
                FileSource::Http { .. } => match (&store, file.sha256, file.size) {
                    (Some(store), Some(digest), Some(size))
                        if file.path != MANIFEST_FILE && store.has_blob(&digest, size) =>
                    {
                        Some(store.blob_path(&digest))
                    }
                    _ => None,
                },
                other => {
                    return Err(Error::Unsupported(format!(
                        "the Ollama vendor cannot fetch {} from {other:?}",
                        file.path
                    )));
                }
            };
            if let Some(source) = local {
                if let Some(reused) = reuse(file, source.clone(), dest, cancel).await? {
                    progress.file_reused(&file.path, reused.size, FROM_OLLAMA_STORE);
                    done.push(reused);
                    continue;
                }
                tracing::warn!(path = %source.display(), "Ollama's store holds other bytes than the manifest names; downloading instead");
            }
            if self.config.offline {
                return Err(Error::Offline {
                    message: format!(
                        "{} of {name} is not in Ollama's store with the right bytes, and only local models may be used (offline)",
                        file.path
                    ),
                });
            }
            requests.push(self.fetch_request(name, file)?);
        }
        if !requests.is_empty() {
            done.extend(self.fetch(name, requests, dest, progress, cancel).await?);
        }
        done.sort_by_key(|d| files.iter().position(|f| f.path == d.path));
        if self.config.publish_to_store
            && let Some(store) = store
        {
            publish(&store, name, all_files, dest, progress).await;
        }
        Ok(done)
    }

    /// The engine's request for one planned file: the registry's URL (rebuilt from the name
    /// and digest for files planned from Ollama's store), the manifest's `Accept`, and the
    /// registry's token when it gave one (sent to the registry's origin only).
    fn fetch_request(&self, name: &OllamaRef, file: &ResolvedFile) -> Result<FetchRequest> {
        let url = match &file.source {
            FileSource::Http { url } => url.clone(),
            _ => {
                let base = self.config.registry_base(&name.host)?;
                match (file.path.as_str(), file.sha256) {
                    (MANIFEST_FILE, _) => registry::manifest_url(&base, name)?,
                    (_, Some(digest)) => registry::blob_url(&base, name, &digest)?,
                    (path, None) => {
                        return Err(Error::Protocol {
                            message: format!("{path} has no digest to fetch it by"),
                        });
                    }
                }
            }
        };
        Ok(FetchRequest {
            path: file.path.clone(),
            auth: self.tokens.get(&url),
            headers: if file.path == MANIFEST_FILE {
                registry::manifest_headers()
            } else {
                Vec::new()
            },
            url,
            expected_size: file.size,
            sha256: file.sha256,
            git_blob: None,
            pieces: None,
        })
    }

    /// Runs the requests; a `401` with a Bearer challenge (a token that expired, or none asked
    /// for yet) gets a fresh anonymous token and one more try.
    async fn fetch(
        &self,
        name: &OllamaRef,
        requests: Vec<FetchRequest>,
        dest: &Path,
        progress: &DownloadTracker,
        cancel: &CancellationToken,
    ) -> Result<Vec<DownloadedFile>> {
        match self
            .transfer
            .fetch_all(requests.clone(), dest, progress, cancel)
            .await
        {
            Ok(done) => Ok(done),
            Err(e) => {
                let Some(challenge) = challenge_of(&e) else {
                    return Err(explain(e));
                };
                let first = requests[0].url.clone();
                let token = self
                    .registry(name)?
                    .fetch_token(&first, &challenge, cancel)
                    .await?;
                // The token just fetched, not the cache's (another job may have replaced it).
                let retried = requests
                    .into_iter()
                    .map(|mut r| {
                        r.auth = if r.url.origin() == first.origin() {
                            Some(token.clone())
                        } else {
                            self.tokens.get(&r.url)
                        };
                        r
                    })
                    .collect();
                self.transfer
                    .fetch_all(retried, dest, progress, cancel)
                    .await
                    .map_err(explain)
            }
        }
    }
}

/// The registry's Bearer challenge in a refused download, if that is what it was.
fn challenge_of(error: &TransferError) -> Option<Challenge> {
    (error.status() == Some(401))
        .then(|| error.header("www-authenticate"))
        .flatten()
        .and_then(Challenge::parse)
}

fn explain(error: TransferError) -> Error {
    match Error::from(error) {
        Error::NotFound { message } => Error::NotFound {
            message: format!(
                "{message}: the registry no longer has this blob (the tag may have moved since it was resolved); run the command again"
            ),
        },
        other => other,
    }
}

/// "llama3.2:1b: manifest sha256:…; model 1.2 GiB, template, params, license".
fn summary(name: &OllamaRef, manifest: &Manifest) -> String {
    let parts: Vec<String> = manifest
        .layers
        .iter()
        .filter(|l| l.kind != LayerKind::Config)
        .map(|l| match l.kind {
            LayerKind::Model | LayerKind::Projector | LayerKind::Adapter => {
                format!("{} {}", l.kind.label(), rbee_artifact::human_bytes(l.size))
            }
            kind => kind.label().to_string(),
        })
        .collect();
    let mut note = format!(
        "{}: manifest {} ({})",
        name.short_name(),
        BlobDigest(manifest.digest),
        parts.join(", ")
    );
    if !manifest.skipped.is_empty() {
        note.push_str(&format!(
            "; left out layers rbee does not use: {}",
            manifest.skipped.join(", ")
        ));
    }
    note
}

#[async_trait::async_trait]
impl VendorSource for OllamaVendor {
    fn scheme(&self) -> Scheme {
        crate::OLLAMA
    }

    async fn resolve(
        &self,
        reference: &ArtifactRef,
        options: &ResolveOptions,
        cancel: &CancellationToken,
    ) -> Result<ResolvedArtifact> {
        let Some(name) = reference.get::<OllamaRef>() else {
            return Err(Error::Unsupported(format!(
                "the Ollama vendor resolves ollama: references, not `{reference}`"
            )));
        };
        let mut resolution = self.resolve_name(name, options.offline, cancel).await?;
        let selection = options.selection();
        if !selection.is_empty() {
            let (include, exclude) = (glob_set(&options.include)?, glob_set(&options.exclude)?);
            let keep = |path: &str| {
                include.as_ref().is_none_or(|s| s.is_match(path))
                    && !exclude.as_ref().is_some_and(|s| s.is_match(path))
            };
            // The manifest stays: it is what the catalog records and what Ollama's store needs.
            resolution
                .files
                .retain(|f| f.path == MANIFEST_FILE || keep(&f.path));
        }
        Ok(ResolvedArtifact {
            reference: reference.clone(),
            revision: Some(resolution.revision),
            files: resolution.files,
            notes: resolution.notes,
        })
    }

    async fn download(
        &self,
        plan: &ResolvedArtifact,
        files: &[ResolvedFile],
        dest: &Path,
        progress: &DownloadTracker,
        cancel: &CancellationToken,
    ) -> Result<Vec<DownloadedFile>> {
        let Some(name) = plan.reference.get::<OllamaRef>() else {
            return Err(Error::Unsupported(format!(
                "the Ollama vendor downloads ollama: plans, not `{}`",
                plan.reference
            )));
        };
        self.download_files(name, &plan.files, files, dest, progress, cancel)
            .await
    }

    fn read_access(&self, file: &ResolvedFile) -> FileAccess {
        match &file.source {
            FileSource::Http { url } => FileAccess::new(self.tokens.get(url), Vec::new()),
            _ => FileAccess::default(),
        }
    }
}

/// The globs as one set; `None` when there are none. A glob that does not compile is an error
/// naming it.
fn glob_set(globs: &[String]) -> Result<Option<globset::GlobSet>> {
    if globs.is_empty() {
        return Ok(None);
    }
    let mut set = globset::GlobSetBuilder::new();
    for g in globs {
        set.add(globset::Glob::new(g).map_err(|e| {
            Error::InvalidRequest(format!(
                "the glob `{g}` is not valid ({e}); e.g. --exclude 'license*'"
            ))
        })?);
    }
    set.build()
        .map(Some)
        .map_err(|e| Error::InvalidRequest(format!("the globs are not valid: {e}")))
}
