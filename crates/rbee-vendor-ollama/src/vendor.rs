//! [`OllamaVendor`]: resolves Ollama names through Ollama's store or its registry, and fetches
//! layers through the shared transfer engine.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rbee_artifact::{
    ArtifactRef, DownloadTracker, DownloadedFile, Error, FileAccess, FileSource, ResolveOptions,
    ResolvedArtifact, ResolvedFile, Result, Scheme, Sha256Digest, VendorSource, partial,
    validate_relative_path,
};

use rbee_transfer::{FetchRequest, Transfer, TransferError};
use tokio_util::sync::CancellationToken;

use crate::OllamaRef;
use crate::challenge::Challenge;
use crate::config::OllamaConfig;
use crate::manifest::{LayerKind, MANIFEST_FILE, Manifest};
use crate::registry::{self, Registry, Tokens};
use crate::stamp;
use crate::store::OllamaStore;

/// How a reused file is described in progress events.
pub(crate) const FROM_OLLAMA_STORE: &str = "from Ollama's store";

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
            version: Some(format!("sha256:{}", manifest.digest)),
            git_blob: None,
            source: FileSource::Http { url: manifest_url },
        }];
        for layer in &manifest.layers {
            files.push(ResolvedFile {
                path: layer.file_name.clone(),
                size: Some(layer.size),
                sha256: Some(layer.digest),
                version: Some(format!("sha256:{}", layer.digest)),
                git_blob: None,
                source: FileSource::Http {
                    url: registry::blob_url(&registry.base, name, &layer.digest)?,
                },
            });
        }
        notes.push(summary(name, &manifest));
        Ok(Resolution {
            files,
            revision: format!("sha256:{}", manifest.digest),
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
            version: Some(format!("sha256:{}", manifest.digest)),
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
                version: Some(format!("sha256:{}", layer.digest)),
                git_blob: None,
                source: FileSource::Local {
                    path: store.blob_path(&layer.digest),
                },
            });
        }
        Resolution {
            files,
            revision: format!("sha256:{}", manifest.digest),
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
        "{}: manifest sha256:{} ({})",
        name.short_name(),
        manifest.digest,
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

/// Takes `file` from `source` (a blob or manifest in Ollama's store) into `dest` if its bytes
/// hash to the planned digest. `Ok(None)`: absent or different.
pub(crate) async fn reuse(
    file: &ResolvedFile,
    source: PathBuf,
    dest: &Path,
    cancel: &CancellationToken,
) -> Result<Option<DownloadedFile>> {
    let (Some(expected), Some(size)) = (file.sha256, file.size) else {
        return Ok(None);
    };
    let target = dest.join(&file.path);
    let stop = cancel.clone();
    let outcome = tokio::task::spawn_blocking(move || {
        place_verified(&source, &target, expected, size, &stop, |_| {})
    })
    .await
    .map_err(|e| Error::task_failed("checking a blob in Ollama's store", e))?;
    match outcome {
        Ok(true) => Ok(Some(DownloadedFile {
            path: file.path.clone(),
            size,
            sha256: expected,
        })),
        Ok(false) => Ok(None),
        Err(_) if cancel.is_cancelled() => Err(Error::Cancelled),
        Err(e) => Err(Error::io(
            format!("taking {} from Ollama's store", file.path),
            e,
        )),
    }
}

/// Puts `source`'s file at `target` if it holds `size` bytes hashing to `expected`: linked (or
/// copied) to a temporary name first, and that copy is what gets hashed and renamed into
/// place, so a file swapped or rewritten at `source` meanwhile is never kept unchecked.
/// A file hashed once is not hashed again while it is unchanged (see [`stamp`]).
/// `Ok(false)`: absent or other bytes (nothing is left at `target`'s temporary name).
/// `staged` sees the temporary file before it is hashed. Blocking.
fn place_verified(
    source: &Path,
    target: &Path,
    expected: Sha256Digest,
    size: u64,
    cancel: &CancellationToken,
    staged: impl FnOnce(&Path),
) -> std::io::Result<bool> {
    let Ok(meta) = std::fs::metadata(source) else {
        return Ok(false);
    };
    if !meta.is_file() || meta.len() != size {
        return Ok(false);
    }
    if let Some(parent) = target.parent() {
        std::fs::create_dir_all(parent)?;
    }
    let temp = partial::reuse_temp_path(target);
    let _ = std::fs::remove_file(&temp);
    let source = std::fs::canonicalize(source)?;
    // Checked before linking: the link itself moves the change time the note is held against.
    let noted_as = std::fs::File::open(&source).ok().and_then(|f| {
        let m = f.metadata().ok()?;
        (stamp::noted(&f, &m) == Some(expected)).then_some(m)
    });
    if let Err(e) = std::fs::hard_link(&source, &temp) {
        tracing::debug!(from = %source.display(), error = %e, "hard link refused; copying");
        std::fs::copy(&source, &temp)?;
        std::fs::File::open(&temp)?.sync_all()?;
    }
    staged(&temp);
    let kept = (|| {
        let file = std::fs::File::open(&temp)?;
        let meta = file.metadata()?;
        if meta.len() != size {
            return Ok(false);
        }
        // Linked, the temporary name is Ollama's blob itself: when its note held before the
        // link and it is still that file in that state, rbee already hashed these bytes.
        if let Some(noted) = &noted_as
            && stamp::same_file_unchanged(noted, &meta)
        {
            stamp::note(&file, &meta, &expected);
            return Ok(true);
        }
        let reader = StopOnCancel {
            file: file.try_clone()?,
            cancel,
        };
        let right = Sha256Digest::of_reader(reader, |_| {})?.0 == expected;
        if right {
            stamp::note(&file, &meta, &expected);
        }
        Ok(right)
    })();
    match kept {
        Ok(true) => {}
        Ok(false) | Err(_) => {
            let _ = std::fs::remove_file(&temp);
            return kept;
        }
    }
    std::fs::rename(&temp, target).inspect_err(|_| {
        let _ = std::fs::remove_file(&temp);
    })?;
    let _ = std::fs::remove_file(partial::part_path(target));
    let _ = std::fs::remove_file(partial::part_state_path(target));
    Ok(true)
}

/// A reader that fails once `cancel` fires, so hashing a large blob stops promptly.
struct StopOnCancel<'a> {
    file: std::fs::File,
    cancel: &'a CancellationToken,
}

impl Read for StopOnCancel<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.cancel.is_cancelled() {
            // Not `Interrupted`: readers retry that.
            return Err(std::io::Error::other("cancelled"));
        }
        self.file.read(buf)
    }
}

/// Places the artifact's verified files in Ollama's store: every blob, then the manifest.
/// Failures are reported, not fatal: rbee's own copy is complete either way.
async fn publish(
    store: &OllamaStore,
    name: &OllamaRef,
    files: &[ResolvedFile],
    dest: &Path,
    progress: &DownloadTracker,
) {
    let root = store.root().display().to_string();
    let shown = name.short_name();
    let (store, name, dest) = (store.clone(), name.clone(), dest.to_path_buf());
    let files = files.to_vec();
    let outcome = tokio::task::spawn_blocking(move || -> Result<()> {
        let mut manifest = None;
        for file in &files {
            let path = dest.join(&file.path);
            if file.path == MANIFEST_FILE {
                manifest = Some(
                    std::fs::read(&path)
                        .map_err(|e| Error::io(format!("reading {}", path.display()), e))?,
                );
                continue;
            }
            let (Some(digest), Some(size)) = (file.sha256, file.size) else {
                continue;
            };
            store
                .put_blob(&path, &digest, size)
                .map_err(|e| Error::io(format!("placing {} in Ollama's store", file.path), e))?;
        }
        let bytes = manifest.ok_or_else(|| Error::Protocol {
            message: "the plan has no manifest to write".to_string(),
        })?;
        store.put_manifest(&name, &bytes)?;
        Ok(())
    })
    .await;
    report_placed(progress, &root, &shown, outcome);
}

/// Says how placing a model in Ollama's store (at `root`, as `shown`) went. Failures are
/// reported, not fatal: rbee's own copy is complete either way.
pub(crate) fn report_placed(
    progress: &DownloadTracker,
    root: &str,
    shown: &str,
    outcome: std::result::Result<Result<()>, tokio::task::JoinError>,
) {
    match outcome {
        Ok(Ok(())) => progress.message(format!(
            "placed in Ollama's store at {root}: `ollama run {shown}` uses it without pulling"
        )),
        Ok(Err(e)) => {
            tracing::warn!(error = %e.report(), "could not place the model in Ollama's store");
            progress.message(format!("could not place the model in Ollama's store: {e}"));
        }
        Err(e) => tracing::warn!(error = %e, "the task placing the model in Ollama's store failed"),
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_blob_hashed_once_is_taken_again_on_its_note_until_it_is_written() {
        let dir = tempfile::tempdir().unwrap();
        let source = dir.path().join("blob");
        let good = b"verified model bytes".to_vec();
        std::fs::write(&source, &good).unwrap();
        let (digest, size) = (Sha256Digest::of(&good), good.len() as u64);
        let take = |n: u32, cancel: &CancellationToken| {
            let target = dir.path().join(format!("catalog-{n}/model.gguf"));
            place_verified(&source, &target, digest, size, cancel, |_| {}).unwrap_or(false)
        };
        let live = CancellationToken::new();
        assert!(take(1, &live));
        let file = std::fs::File::open(&source).unwrap();
        if stamp::noted(&file, &file.metadata().unwrap()).is_none() {
            return; // no user extended attributes on this file system: every take hashes
        }
        drop(file);
        // What proves the bytes are not read again: a take whose hash would stop at once still
        // succeeds, and so does the next one (each take links the blob, and notes it again).
        let cancelled = CancellationToken::new();
        cancelled.cancel();
        assert!(take(2, &cancelled));
        assert!(take(3, &cancelled));
        // Other bytes put back under the same modification time: the change time gives them
        // away, the bytes are hashed and refused.
        let when = std::fs::metadata(&source).unwrap().modified().unwrap();
        std::thread::sleep(std::time::Duration::from_millis(250));
        std::fs::write(&source, vec![b'x'; good.len()]).unwrap();
        let file = std::fs::OpenOptions::new()
            .write(true)
            .open(&source)
            .unwrap();
        file.set_modified(when).unwrap();
        drop(file);
        assert!(!take(4, &cancelled));
        assert!(!take(5, &live));
        // Written without forging the time: hashed and refused too.
        std::fs::write(&source, vec![b'y'; good.len()]).unwrap();
        assert!(!take(6, &live));
    }

    #[test]
    fn a_source_rewritten_while_it_is_taken_is_not_kept() {
        let dir = tempfile::tempdir().unwrap();
        let (source, target) = (dir.path().join("blob"), dir.path().join("out/model.gguf"));
        let good = b"verified model bytes".to_vec();
        std::fs::write(&source, &good).unwrap();
        let cancel = CancellationToken::new();
        // The file at the source changes (same size) once rbee has started taking it.
        let kept = place_verified(
            &source,
            &target,
            Sha256Digest::of(&good),
            good.len() as u64,
            &cancel,
            |_| {
                use std::io::Write;
                let mut f = std::fs::OpenOptions::new()
                    .write(true)
                    .open(&source)
                    .unwrap();
                f.write_all(&vec![b'x'; good.len()]).unwrap();
            },
        )
        .unwrap();
        assert!(!kept);
        assert!(!target.exists());
        assert!(!partial::reuse_temp_path(&target).exists());

        // Unchanged: taken.
        std::fs::write(&source, &good).unwrap();
        let kept = place_verified(
            &source,
            &target,
            Sha256Digest::of(&good),
            good.len() as u64,
            &cancel,
            |_| {},
        )
        .unwrap();
        assert!(kept);
        assert_eq!(std::fs::read(&target).unwrap(), good);
    }
}
