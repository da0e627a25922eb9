//! Ollama's own model store, read and written in the layout Ollama uses:
//!
//! ```text
//! $OLLAMA_MODELS/                      ~/.ollama/models, or the service's /usr/share/ollama/.ollama/models
//!   manifests/HOST/NAMESPACE/MODEL/TAG  the registry's manifest bytes, as pulled
//!   blobs/sha256-<64 hex>               every layer and config, named by its digest
//! ```
//!
//! Ollama trusts a blob by its name and never hashes it again, so rbee writes a blob only
//! from bytes it has verified against that digest, and a manifest only after every blob it
//! names is in place — each written under a temporary name and renamed, so Ollama never sees
//! half of either.

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use rbee_artifact::Sha256Digest;

use crate::OllamaRef;
use crate::digest::BlobDigest;
use crate::manifest::{LayerKind, MANIFEST_MEDIA_TYPE, MAX_MANIFEST_BYTES, Manifest};

/// Ollama's store at one root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OllamaStore {
    root: PathBuf,
}

/// A model found in the store: its manifest's bytes, parsed, and where it lies.
#[derive(Debug, Clone)]
pub struct StoredModel {
    /// The manifest file.
    pub manifest_path: PathBuf,
    /// Its bytes (what the registry served).
    pub bytes: Vec<u8>,
    /// Parsed.
    pub manifest: Manifest,
}

impl OllamaStore {
    /// The store rooted at `root` (`$OLLAMA_MODELS`).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    /// The root folder.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// `manifests/HOST/NAMESPACE/MODEL/TAG`.
    pub fn manifest_path(&self, name: &OllamaRef) -> PathBuf {
        let mut path = self.root.join("manifests");
        for segment in name.store_segments() {
            path.push(segment);
        }
        path
    }

    /// `blobs/sha256-<hex>`.
    pub fn blob_path(&self, digest: &Sha256Digest) -> PathBuf {
        self.root.join("blobs").join(format!("sha256-{digest}"))
    }

    /// The model `name` if Ollama has it: `Ok(None)` when there is no manifest. A manifest
    /// that cannot be read or parsed is an error naming the file.
    pub fn read(&self, name: &OllamaRef) -> rbee_artifact::Result<Option<StoredModel>> {
        let path = self.manifest_path(name);
        let bytes = match read_bounded(&path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => {
                return Err(rbee_artifact::Error::io(
                    format!("reading Ollama's manifest {}", path.display()),
                    e,
                ));
            }
        };
        let manifest = Manifest::parse(&bytes, &path.display().to_string())?;
        Ok(Some(StoredModel {
            manifest_path: path,
            bytes,
            manifest,
        }))
    }

    /// Whether the blob `digest` is in the store with `size` bytes (not hashed: Ollama's
    /// own check; whoever takes its bytes verifies them).
    pub fn has_blob(&self, digest: &Sha256Digest, size: u64) -> bool {
        fs::metadata(self.blob_path(digest)).is_ok_and(|m| m.is_file() && m.len() == size)
    }

    /// Every model in the store: `(name, manifest)`; unreadable entries are skipped with a
    /// warning (Ollama does the same).
    pub fn list(&self) -> Vec<(OllamaRef, StoredModel)> {
        let mut out = Vec::new();
        let base = self.root.join("manifests");
        for host in dirs(&base) {
            for namespace in dirs(&base.join(&host)) {
                for model in dirs(&base.join(&host).join(&namespace)) {
                    let folder = base.join(&host).join(&namespace).join(&model);
                    let Ok(tags) = fs::read_dir(&folder) else {
                        continue;
                    };
                    for tag in tags.flatten() {
                        let tag = tag.file_name().to_string_lossy().into_owned();
                        let text = format!("{host}/{namespace}/{model}:{tag}");
                        let Ok(name) = OllamaRef::parse_name(&text) else {
                            tracing::warn!(name = %text.escape_debug(), "not a model name in Ollama's store; skipped");
                            continue;
                        };
                        match self.read(&name) {
                            Ok(Some(stored)) => out.push((name, stored)),
                            Ok(None) => {}
                            Err(e) => {
                                tracing::warn!(%name, error = %e, "unusable manifest in Ollama's store; skipped")
                            }
                        }
                    }
                }
            }
        }
        out.sort_by_key(|(name, _)| name.to_string());
        out
    }

    /// Places the verified file `source` as the blob `digest` (a hard link on the same file
    /// system, else a copy). A blob already there is left alone when it is `source` itself or
    /// hashes to `digest`; one with other bytes is replaced.
    ///
    /// The caller vouches that `source` hashes to `digest` (the download engine verified it).
    pub fn put_blob(&self, source: &Path, digest: &Sha256Digest, size: u64) -> io::Result<bool> {
        self.put_blob_with(source, digest, size, true)
    }

    fn put_blob_with(
        &self,
        source: &Path,
        digest: &Sha256Digest,
        size: u64,
        allow_link: bool,
    ) -> io::Result<bool> {
        let target = self.blob_path(digest);
        if self.has_blob(digest, size) {
            // Ollama never hashes a blob again, so one with other bytes under this name would
            // stay broken: keep it only when it is the verified file itself or hashes right.
            if same_file(source, &target)
                || Sha256Digest::of_file(&target, |_| {}).is_ok_and(|(d, _)| d == *digest)
            {
                return Ok(false);
            }
            tracing::warn!(blob = %target.display(), "Ollama's store holds other bytes under this digest; replacing them with the verified file");
        }
        let dir = target.parent().expect("a blob path has a parent");
        fs::create_dir_all(dir)?;
        stage(source, dir, &digest.to_string(), allow_link)?.persist(&target)?;
        Ok(true)
    }

    /// Writes `name`'s manifest (the registry's bytes), after checking that every blob it
    /// names is in place with its size. Written to a temporary file, synced, renamed.
    pub fn put_manifest(&self, name: &OllamaRef, bytes: &[u8]) -> rbee_artifact::Result<()> {
        let path = self.manifest_path(name);
        let manifest = Manifest::parse(bytes, "the downloaded manifest")?;
        // Every blob, left-out layers included: Ollama loads them all and never fetches one
        // that a manifest in its store names.
        let missing = manifest.blobs.iter().find_map(|b| match b.digest {
            None => Some(format!(
                "its {} layer has no usable sha256 digest",
                b.media_type
            )),
            Some(d) if !self.has_blob(&d, b.size) => Some(format!(
                "its {} blob sha256-{d} is not in Ollama's store",
                b.media_type
            )),
            Some(_) => None,
        });
        if let Some(missing) = missing {
            return Err(rbee_artifact::Error::io(
                format!("not writing Ollama's manifest {}", path.display()),
                io::Error::new(io::ErrorKind::NotFound, missing),
            ));
        }
        let write = || -> io::Result<()> {
            let dir = path.parent().expect("a manifest path has a parent");
            fs::create_dir_all(dir)?;
            let (mut file, temp) = create_temp(dir, &name.tag)?;
            file.write_all(bytes)?;
            file.sync_all()?;
            drop(file);
            temp.persist(&path)?;
            if let Ok(dir) = fs::File::open(dir) {
                let _ = dir.sync_all();
            }
            Ok(())
        };
        write().map_err(|e| {
            rbee_artifact::Error::io(format!("writing Ollama's manifest {}", path.display()), e)
        })
    }
}

/// A GGUF rbee verified, to be filed in Ollama's store as a model of its own (what `ollama
/// create` makes of a bare GGUF: the model layer, a projector when there is one, and a config
/// describing them).
#[derive(Debug, Clone)]
pub struct GgufModel {
    /// The name Ollama will know it by (`hf.co/ORG/REPO:QUANT` for a HuggingFace GGUF).
    pub name: OllamaRef,
    /// The model file, verified against `digest`.
    pub model: VerifiedFile,
    /// The vision projector (llama.cpp's `--mmproj`), verified, when the model has one.
    pub projector: Option<VerifiedFile>,
    /// The quantization (`Q4_K_M`), shown by `ollama show` as the file type.
    pub file_type: Option<String>,
}

/// A file whose bytes rbee checked against `digest`.
#[derive(Debug, Clone)]
pub struct VerifiedFile {
    /// Where it is.
    pub path: PathBuf,
    /// Its SHA-256.
    pub digest: Sha256Digest,
    /// Its size.
    pub size: u64,
}

impl OllamaStore {
    /// Files `model` in the store: its blobs, a config blob describing them, then the manifest
    /// naming them, in that order (see [`put_blob`](Self::put_blob) and
    /// [`put_manifest`](Self::put_manifest)). Returns the manifest's bytes.
    ///
    /// No template or parameters layer is written: a GGUF carries a Jinja chat template,
    /// while Ollama's template layer is a Go template, and a wrong one is worse than none
    /// (Ollama then passes the prompt as it is).
    pub fn put_gguf_model(&self, model: &GgufModel) -> rbee_artifact::Result<Vec<u8>> {
        let place = |file: &VerifiedFile, what: &str| {
            self.put_blob(&file.path, &file.digest, file.size)
                .map_err(|e| {
                    rbee_artifact::Error::io(format!("placing the {what} in Ollama's store"), e)
                })
        };
        let mut layers = vec![(MODEL_MEDIA_TYPE, &model.model)];
        place(&model.model, "model")?;
        if let Some(projector) = &model.projector {
            place(projector, "projector")?;
            layers.push((PROJECTOR_MEDIA_TYPE, projector));
        }
        // Ollama's own pull of the same bytes keeps its manifest: it carries the template,
        // parameters and licence that rbee does not write.
        if let Ok(Some(existing)) = self.read(&model.name) {
            let projector = existing
                .manifest
                .layers
                .iter()
                .find(|l| l.kind == LayerKind::Projector)
                .map(|l| l.digest);
            if existing.manifest.model().digest == model.model.digest
                && projector == model.projector.as_ref().map(|p| p.digest)
            {
                return Ok(existing.bytes);
            }
        }
        let config = serde_json::to_vec(&serde_json::json!({
            "model_format": "gguf",
            "model_family": "",
            "model_families": [],
            "model_type": "",
            "file_type": model.file_type.as_deref().unwrap_or(""),
            // Go's names for this platform, as `ollama create` records them.
            "architecture": match std::env::consts::ARCH {
                "x86_64" => "amd64",
                "aarch64" => "arm64",
                other => other,
            },
            "os": match std::env::consts::OS {
                "macos" => "darwin",
                other => other,
            },
            "rootfs": {
                "type": "layers",
                "diff_ids": layers.iter().map(|(_, f)| BlobDigest(f.digest)).collect::<Vec<_>>(),
            },
        }))
        .expect("a JSON value serializes");
        let config_digest = Sha256Digest::of(&config);
        self.put_blob_bytes(&config, &config_digest)
            .map_err(|e| rbee_artifact::Error::io("placing the config in Ollama's store", e))?;
        let layer = |media_type: &str, digest: &Sha256Digest, size: u64| serde_json::json!({"mediaType": media_type, "digest": BlobDigest(*digest), "size": size});
        let manifest = serde_json::to_vec(&serde_json::json!({
            "schemaVersion": 2,
            "mediaType": MANIFEST_MEDIA_TYPE,
            "config": layer(CONFIG_MEDIA_TYPE, &config_digest, config.len() as u64),
            "layers": layers.iter().map(|(m, f)| layer(m, &f.digest, f.size)).collect::<Vec<_>>(),
        }))
        .expect("a JSON value serializes");
        self.put_manifest(&model.name, &manifest)?;
        Ok(manifest)
    }

    /// Places `bytes` (which hash to `digest`: the caller just computed it) as a blob, unless
    /// the store has it with the right bytes already.
    fn put_blob_bytes(&self, bytes: &[u8], digest: &Sha256Digest) -> io::Result<()> {
        let target = self.blob_path(digest);
        if fs::read(&target).is_ok_and(|have| have == bytes) {
            return Ok(());
        }
        let dir = target.parent().expect("a blob path has a parent");
        fs::create_dir_all(dir)?;
        let (mut file, temp) = create_temp(dir, &digest.to_string())?;
        file.write_all(bytes)?;
        file.sync_all()?;
        drop(file);
        temp.persist(&target)
    }
}

/// The media types of what [`OllamaStore::put_gguf_model`] writes, as Ollama names them.
const MODEL_MEDIA_TYPE: &str = "application/vnd.ollama.image.model";
const PROJECTOR_MEDIA_TYPE: &str = "application/vnd.ollama.image.projector";
const CONFIG_MEDIA_TYPE: &str = "application/vnd.docker.container.image.v1+json";

/// A file under a temporary name of its own, removed when dropped unless persisted.
///
/// Names are never shared, so two writers (the CLI and the daemon) cannot remove or rename
/// each other's half-written file into place. They start with `.rbee-`, not `sha256-`, so
/// Ollama never takes one for a blob.
pub(crate) struct Staged {
    path: PathBuf,
    kept: bool,
}

impl Staged {
    /// Renames it to `target` (replacing what is there).
    pub(crate) fn persist(mut self, target: &Path) -> io::Result<()> {
        fs::rename(&self.path, target)?;
        self.kept = true;
        Ok(())
    }
}

impl Drop for Staged {
    fn drop(&mut self) {
        if !self.kept {
            let _ = fs::remove_file(&self.path);
        }
    }
}

fn temp_name(dir: &Path, label: &str) -> PathBuf {
    use std::hash::BuildHasher;
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let salt = std::collections::hash_map::RandomState::new().hash_one((
        COUNTER.fetch_add(1, Ordering::Relaxed),
        std::time::SystemTime::now(),
    ));
    dir.join(format!(
        ".rbee-{label}.{}.{salt:016x}.tmp",
        std::process::id()
    ))
}

/// A new, empty file in `dir` under a name no one else uses.
fn create_temp(dir: &Path, label: &str) -> io::Result<(fs::File, Staged)> {
    loop {
        let path = temp_name(dir, label);
        match fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
        {
            Ok(file) => return Ok((file, Staged { path, kept: false })),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        }
    }
}

/// `source`'s file (a symbolic link is followed) under a new temporary name in `dir`: a hard
/// link when the file system allows (and `allow_link`), else a synced copy.
pub(crate) fn stage(
    source: &Path,
    dir: &Path,
    label: &str,
    allow_link: bool,
) -> io::Result<Staged> {
    let source = fs::canonicalize(source)?;
    if allow_link {
        loop {
            let path = temp_name(dir, label);
            match fs::hard_link(&source, &path) {
                Ok(()) => return Ok(Staged { path, kept: false }),
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(e) => {
                    tracing::debug!(from = %source.display(), to = %path.display(), error = %e, "hard link refused; copying");
                    break;
                }
            }
        }
    }
    let (mut out, staged) = create_temp(dir, label)?;
    io::copy(&mut fs::File::open(&source)?, &mut out)?;
    out.sync_all()?;
    Ok(staged)
}

/// Reads a manifest file, refusing one larger than any real manifest.
fn read_bounded(path: &Path) -> io::Result<Vec<u8>> {
    let meta = fs::metadata(path)?;
    if !meta.is_file() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "not a regular file",
        ));
    }
    if meta.len() > MAX_MANIFEST_BYTES as u64 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{} bytes is too large for a manifest", meta.len()),
        ));
    }
    fs::read(path)
}

/// Whether two paths are one file (a hard link).
fn same_file(a: &Path, b: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (fs::metadata(a), fs::metadata(b)) {
        (Ok(x), Ok(y)) => x.dev() == y.dev() && x.ino() == y.ino(),
        _ => false,
    }
}

/// Names of the subfolders of `dir` (none when it cannot be read).
fn dirs(dir: &Path) -> Vec<String> {
    let Ok(entries) = fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut names: Vec<String> = entries
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::tests::manifest_json;

    fn name(s: &str) -> OllamaRef {
        OllamaRef::parse_name(s).unwrap()
    }

    #[test]
    fn paths_are_ollamas() {
        let store = OllamaStore::new("/m");
        assert_eq!(
            store.manifest_path(&name("llama3.2:1b")),
            Path::new("/m/manifests/registry.ollama.ai/library/llama3.2/1b")
        );
        assert_eq!(
            store.manifest_path(&name("hf.co/o/r:Q4_K_M")),
            Path::new("/m/manifests/hf.co/o/r/Q4_K_M")
        );
        let d = Sha256Digest::of(b"x");
        assert_eq!(
            store.blob_path(&d),
            PathBuf::from(format!("/m/blobs/sha256-{d}"))
        );
    }

    #[test]
    fn write_then_read_and_list_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let store = OllamaStore::new(dir.path().join("models"));
        let model = b"GGUF model bytes";
        let config = b"config";
        let json = manifest_json(&[(
            "application/vnd.ollama.image.model",
            Sha256Digest::of(model),
            model.len() as u64,
        )]);
        let n = name("team/tiny:q4");
        // No blobs yet: the manifest is refused and nothing is written.
        let e = store
            .put_manifest(&n, json.as_bytes())
            .unwrap_err()
            .report();
        assert!(e.to_string().contains("is not in Ollama's store"), "{e}");
        assert!(!store.manifest_path(&n).exists());

        // Separate files: a blob is a hard link to its source.
        let (src_model, src_config) = (dir.path().join("model"), dir.path().join("config"));
        fs::write(&src_model, model).unwrap();
        fs::write(&src_config, config).unwrap();
        let model_digest = Sha256Digest::of(model);
        assert!(
            store
                .put_blob(&src_model, &model_digest, model.len() as u64)
                .unwrap()
        );
        assert!(
            store
                .put_blob(&src_config, &Sha256Digest::of(config), 6)
                .unwrap()
        );
        // Already there: left alone.
        assert!(
            !store
                .put_blob(&src_config, &Sha256Digest::of(config), 6)
                .unwrap()
        );
        store.put_manifest(&n, json.as_bytes()).unwrap();

        let stored = store.read(&n).unwrap().unwrap();
        assert_eq!(stored.bytes, json.as_bytes());
        assert_eq!(stored.manifest.model().digest, Sha256Digest::of(model));
        let listed = store.list();
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].0, n);
        // Only final names in the folders Ollama reads.
        for dir in [
            store.root().join("blobs"),
            store.manifest_path(&n).parent().unwrap().to_path_buf(),
        ] {
            for entry in fs::read_dir(dir).unwrap() {
                let entry = entry.unwrap().file_name().to_string_lossy().into_owned();
                assert!(!entry.starts_with(".rbee-"), "{entry}");
            }
        }
        assert!(store.read(&name("other:t")).unwrap().is_none());
    }

    #[test]
    fn a_manifest_naming_a_left_out_blob_that_is_absent_is_not_written() {
        let dir = tempfile::tempdir().unwrap();
        let store = OllamaStore::new(dir.path().join("models"));
        let (model, config, draft) = (&b"GGUF model"[..], &b"config"[..], &b"draft"[..]);
        let json = manifest_json(&[
            (
                "application/vnd.ollama.image.model",
                Sha256Digest::of(model),
                model.len() as u64,
            ),
            (
                "application/vnd.ollama.image.draft",
                Sha256Digest::of(draft),
                draft.len() as u64,
            ),
        ]);
        for bytes in [model, config] {
            let src = dir.path().join(Sha256Digest::of(bytes).to_string());
            fs::write(&src, bytes).unwrap();
            store
                .put_blob(&src, &Sha256Digest::of(bytes), bytes.len() as u64)
                .unwrap();
        }
        let n = name("team/drafted:q4");
        let e = store
            .put_manifest(&n, json.as_bytes())
            .unwrap_err()
            .report()
            .to_string();
        assert!(e.contains("application/vnd.ollama.image.draft"), "{e}");
        assert!(!store.manifest_path(&n).exists());
    }

    #[test]
    fn concurrent_copies_of_one_blob_all_succeed_with_whole_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let store = OllamaStore::new(dir.path().join("models"));
        let bytes: Vec<u8> = (0..8u32 << 20).map(|i| (i * 7 + i / 251) as u8).collect();
        let digest = Sha256Digest::of(&bytes);
        let source = dir.path().join("blob");
        fs::write(&source, &bytes).unwrap();
        let outcomes: Vec<io::Result<bool>> = std::thread::scope(|s| {
            let workers: Vec<_> = (0..8)
                .map(|_| {
                    s.spawn(|| store.put_blob_with(&source, &digest, bytes.len() as u64, false))
                })
                .collect();
            workers.into_iter().map(|w| w.join().unwrap()).collect()
        });
        for outcome in outcomes {
            outcome.unwrap();
        }
        let placed = fs::read(store.blob_path(&digest)).unwrap();
        assert_eq!(Sha256Digest::of(&placed), digest);
        let left: Vec<_> = fs::read_dir(store.root().join("blobs"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(left.len(), 1, "{left:?}");
    }

    #[test]
    fn a_damaged_manifest_is_an_error_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let store = OllamaStore::new(dir.path());
        let n = name("m:t");
        let path = store.manifest_path(&n);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(&path, b"{").unwrap();
        let e = store.read(&n).unwrap_err().to_string();
        assert!(e.contains(&path.display().to_string()), "{e}");
        assert!(store.list().is_empty());
    }
}
