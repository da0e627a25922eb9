//! Another vendor's downloads sharing bytes with Ollama's store: a file whose SHA-256 Ollama
//! holds as a blob is taken from there instead of fetched (an `hf:` GGUF that `ollama pull
//! hf.co/…` already brought), and, when asked, a GGUF the vendor fetched is filed in Ollama's
//! store as a model of its own.

use std::fmt;
use std::path::Path;
use std::sync::Arc;

use rbee_artifact::{
    ArtifactRef, DownloadTracker, DownloadedFile, Error, FileAccess, ResolveOptions,
    ResolvedArtifact, ResolvedFile, Result, Scheme, Sha256Digest, VendorSource,
    validate_relative_path,
};
use tokio_util::sync::CancellationToken;

use crate::OllamaRef;
use crate::reuse::{FROM_OLLAMA_STORE, reuse};
use crate::store::{GgufModel, OllamaStore, VerifiedFile};

/// Which files of a plan make an Ollama model, and its name.
#[derive(Debug, Clone)]
pub struct GgufPlan {
    /// The name Ollama will know it by.
    pub name: OllamaRef,
    /// The plan's path of the model GGUF.
    pub model: String,
    /// The plan's path of the vision projector, when there is one.
    pub projector: Option<String>,
    /// The quantization (`Q4_K_M`), when known.
    pub file_type: Option<String>,
}

/// Works out the Ollama model a plan makes; `Err` says why it makes none (shown to people).
pub type OllamaNaming =
    Arc<dyn Fn(&ResolvedArtifact) -> std::result::Result<GgufPlan, String> + Send + Sync>;

/// Wraps a vendor so that its downloads share bytes with Ollama's store.
///
/// - Downloading: each file with a digest and size that Ollama's store holds as a blob is
///   taken from there (hashed once, then hard-linked when on the same file system, else
///   copied; a blob with other bytes is left alone and the file is fetched), and only the
///   rest is handed to the wrapped vendor.
/// - With [`publishing`](Self::publishing): afterwards, the GGUF model the plan names is
///   placed in the store (verified blobs first, then a config, then the manifest), so
///   `ollama run NAME` finds it. Failing to do so is reported, not fatal: rbee's own copy is
///   complete either way.
///
/// Resolving, the scheme and read access are the wrapped vendor's.
#[derive(Clone)]
pub struct SharedWithOllama {
    inner: Arc<dyn VendorSource>,
    store: OllamaStore,
    naming: Option<OllamaNaming>,
}

impl fmt::Debug for SharedWithOllama {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SharedWithOllama")
            .field("inner", &self.inner)
            .field("store", &self.store)
            .field("publishing", &self.naming.is_some())
            .finish()
    }
}

impl SharedWithOllama {
    /// `inner`, taking files from the Ollama store at `store` when it has them.
    pub fn new(inner: Arc<dyn VendorSource>, store: OllamaStore) -> Self {
        Self {
            inner,
            store,
            naming: None,
        }
    }

    /// Also files each downloaded GGUF in the store, under the name `naming` gives it.
    pub fn publishing(mut self, naming: OllamaNaming) -> Self {
        self.naming = Some(naming);
        self
    }

    /// Places the plan's GGUF in the store, verifying any file this download did not.
    async fn publish(
        &self,
        naming: &OllamaNaming,
        plan: &ResolvedArtifact,
        verified_now: &[DownloadedFile],
        dest: &Path,
        progress: &DownloadTracker,
    ) {
        let wanted = match naming(plan) {
            Ok(wanted) => wanted,
            Err(why) => {
                progress.message(format!("not placed in Ollama's store: {why}"));
                return;
            }
        };
        let root = self.store.root().display().to_string();
        let shown = wanted.name.short_name();
        let (store, plan, verified_now, dest) = (
            self.store.clone(),
            plan.clone(),
            verified_now.to_vec(),
            dest.to_path_buf(),
        );
        let outcome = tokio::task::spawn_blocking(move || -> Result<()> {
            let file = |path: &str| verified(&plan, &verified_now, &dest, path);
            let model = GgufModel {
                model: file(&wanted.model)?,
                projector: wanted.projector.as_deref().map(file).transpose()?,
                name: wanted.name,
                file_type: wanted.file_type,
            };
            store.put_gguf_model(&model).map(drop)
        })
        .await;
        crate::publish::report_placed(progress, &root, &shown, outcome);
    }
}

/// The plan's file `path` in `dest`, with its digest proven: by this download, or else (a
/// file that was already in the catalog) by hashing it now, because Ollama never hashes a
/// blob it finds in its store. Blocking.
fn verified(
    plan: &ResolvedArtifact,
    verified_now: &[DownloadedFile],
    dest: &Path,
    path: &str,
) -> Result<VerifiedFile> {
    let planned = plan
        .files
        .iter()
        .find(|f| f.path == path)
        .ok_or_else(|| Error::Protocol {
            message: format!("the plan has no file {path}"),
        })?;
    let (Some(digest), Some(size)) = (planned.sha256, planned.size) else {
        return Err(Error::Unsupported(format!(
            "{path} has no published sha256, so its blob name in Ollama's store is unknown"
        )));
    };
    let on_disk = dest.join(path);
    let proven = verified_now
        .iter()
        .any(|d| d.path == path && d.sha256 == digest && d.size == size);
    if !proven {
        let (actual, read) = Sha256Digest::of_file(&on_disk, |_| {})
            .map_err(|e| Error::io(format!("reading {}", on_disk.display()), e))?;
        if actual != digest || read != size {
            return Err(Error::Integrity {
                path: path.to_string(),
                expected: digest.into(),
                actual: actual.into(),
            });
        }
    }
    Ok(VerifiedFile {
        path: on_disk,
        digest,
        size,
    })
}

#[async_trait::async_trait]
impl VendorSource for SharedWithOllama {
    fn scheme(&self) -> Scheme {
        self.inner.scheme()
    }

    async fn resolve(
        &self,
        reference: &ArtifactRef,
        options: &ResolveOptions,
        cancel: &CancellationToken,
    ) -> Result<ResolvedArtifact> {
        self.inner.resolve(reference, options, cancel).await
    }

    async fn download(
        &self,
        plan: &ResolvedArtifact,
        files: &[ResolvedFile],
        dest: &Path,
        progress: &DownloadTracker,
        cancel: &CancellationToken,
    ) -> Result<Vec<DownloadedFile>> {
        let mut done = Vec::new();
        let mut rest = Vec::new();
        for file in files {
            if let (Some(digest), Some(size)) = (file.sha256, file.size)
                && self.store.has_blob(&digest, size)
            {
                validate_relative_path(&file.path).map_err(|e| Error::Protocol {
                    message: format!("refusing to write planned file {:?}: {e}", file.path),
                })?;
                if let Some(taken) =
                    reuse(file, self.store.blob_path(&digest), dest, cancel).await?
                {
                    progress.file_reused(&file.path, taken.size, FROM_OLLAMA_STORE);
                    done.push(taken);
                    continue;
                }
                tracing::warn!(blob = %self.store.blob_path(&digest).display(), "Ollama's store holds other bytes under this digest; downloading instead");
            }
            rest.push(file.clone());
        }
        if !rest.is_empty() {
            done.extend(
                self.inner
                    .download(plan, &rest, dest, progress, cancel)
                    .await?,
            );
        }
        done.sort_by_key(|d| files.iter().position(|f| f.path == d.path));
        if let Some(naming) = &self.naming {
            self.publish(naming, plan, &done, dest, progress).await;
        }
        Ok(done)
    }

    fn read_access(&self, file: &ResolvedFile) -> FileAccess {
        self.inner.read_access(file)
    }
}
