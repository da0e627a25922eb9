//! A repo's revisions: `main` and the `.revisions/*` folders, each scanned into files with
//! their sizes, git blob ids, LFS pointers and Xet hashes, and a commit id over them.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::UNIX_EPOCH;

use crate::hashes::{HashKind, git_blob_id, sha1_hex};
use crate::state::HubState;
use crate::walks::Walked;

use super::repo::{HubError, Repo, SETTINGS};
pub(super) use crate::scanned::{Lfs, RepoFile, Revision};

/// Folder of the non-`main` revisions, at the top of the repo folder.
pub(super) const REVISIONS: &str = ".revisions";

/// Extensions the Hub's default `.gitattributes` stores with LFS (plus GGUF).
pub(super) const LFS_EXTENSIONS: &[&str] = &[
    "7z",
    "arrow",
    "bin",
    "bz2",
    "ckpt",
    "ftz",
    "gguf",
    "gz",
    "h5",
    "joblib",
    "mlmodel",
    "model",
    "msgpack",
    "npy",
    "npz",
    "onnx",
    "ot",
    "parquet",
    "pb",
    "pickle",
    "pkl",
    "pt",
    "pth",
    "rar",
    "safetensors",
    "tar",
    "tflite",
    "tgz",
    "wasm",
    "xz",
    "zip",
    "zst",
];

/// Revision folders: `main` first, then `.revisions/*` by name.
pub(super) async fn revision_dirs(repo: &Repo) -> Vec<(String, PathBuf, String)> {
    let base_rel = format!("hf/{}/{}", repo.org, repo.name);
    let mut out = vec![("main".to_owned(), repo.dir.clone(), base_rel.clone())];
    if let Ok(mut rd) = tokio::fs::read_dir(repo.dir.join(REVISIONS)).await {
        let mut more = Vec::new();
        while let Ok(Some(e)) = rd.next_entry().await {
            if !e.file_type().await.is_ok_and(|t| t.is_dir()) {
                continue;
            }
            let folder = e.file_name().to_string_lossy().into_owned();
            let name = percent_encoding::percent_decode_str(&folder)
                .decode_utf8_lossy()
                .into_owned();
            more.push((name, e.path(), format!("{base_rel}/{REVISIONS}/{folder}")));
        }
        more.sort();
        out.extend(more);
    }
    out
}

pub(super) fn is_lfs(path: &str, size: u64, threshold: u64) -> bool {
    let name = path.rsplit('/').next().unwrap_or(path);
    let ext = name.rsplit_once('.').map(|(_, e)| e.to_ascii_lowercase());
    size >= threshold
        || name.contains("tfevents")
        || ext.is_some_and(|e| LFS_EXTENSIONS.contains(&e.as_str()))
        || path.starts_with("saved_model/")
}

/// Every file of one revision folder, with sizes and (cached) hashes, and the commit id.
pub(super) async fn scan_revision(
    state: &HubState,
    repo: &Repo,
    dir: &Path,
    rel_dir: String,
    is_main: bool,
) -> Result<Arc<Revision>, HubError> {
    let (dir_owned, walks) = (dir.to_path_buf(), state.walks.clone());
    let listing =
        tokio::task::spawn_blocking(move || walks.get(&dir_owned, || walk(&dir_owned, is_main)))
            .await
            .map_err(|e| HubError::Internal(e.to_string()))?
            .map_err(|e| HubError::Internal(format!("{}: {e}", dir.display())))?;
    if let Some(revision) = state.scans.get(dir, &listing, &repo.settings.xet) {
        return Ok(revision);
    }
    let mut files = Vec::with_capacity(listing.len());
    for (path, abs, size, mtime) in listing.iter().cloned() {
        let file = if is_lfs(&path, size, state.config.lfs_threshold) {
            let sha256 = state
                .hashes
                .get(&abs, size, mtime, HashKind::Sha256)
                .await
                .map_err(|e| HubError::Internal(format!("{}: {e}", abs.display())))?;
            let pointer = format!(
                "version https://git-lfs.github.com/spec/v1\noid sha256:{sha256}\nsize {size}\n"
            );
            let xet = if repo.settings.xet(state.config.xet, &path) {
                let stored = state
                    .xet
                    .file(&abs, size, mtime, &repo.id())
                    .await
                    .map_err(|e| HubError::Internal(format!("{}: {e}", abs.display())))?;
                Some(stored.hash)
            } else {
                None
            };
            RepoFile {
                xet,
                oid: git_blob_id(pointer.as_bytes()),
                lfs: Some(Lfs {
                    sha256,
                    pointer_size: pointer.len() as u64,
                }),
                path,
                abs,
                size,
                mtime,
            }
        } else {
            let oid = state
                .hashes
                .get(&abs, size, mtime, HashKind::GitBlob)
                .await
                .map_err(|e| HubError::Internal(format!("{}: {e}", abs.display())))?;
            RepoFile {
                oid,
                lfs: None,
                xet: None,
                path,
                abs,
                size,
                mtime,
            }
        };
        files.push(file);
    }
    let mut commit = String::from("fakehub commit\n");
    for f in &files {
        commit.push_str(&format!("{} {}\n", f.oid, f.path));
    }
    let revision = Arc::new(Revision {
        rel_dir,
        sha: sha1_hex(commit.as_bytes()),
        files,
    });
    state
        .scans
        .put(dir, listing, repo.settings.xet.clone(), revision.clone());
    Ok(revision)
}

/// Files under `dir`, sorted by path; skips `.git`, and at the top of `main` the settings
/// file and the revisions folder. Each file's size and time come from its folder's entry
/// (`fstatat` on the folder), a link's from what it points to.
pub(super) fn walk(dir: &Path, is_main: bool) -> std::io::Result<Walked> {
    fn go(dir: &Path, prefix: &str, is_main: bool, out: &mut Walked) -> std::io::Result<()> {
        out.folders.push(dir.to_path_buf());
        for entry in std::fs::read_dir(dir)? {
            let entry = entry?;
            let name = entry.file_name().to_string_lossy().into_owned();
            let top = prefix.is_empty();
            if name == ".git" || (top && is_main && (name == SETTINGS || name == REVISIONS)) {
                continue;
            }
            let path = entry.path();
            let meta = if entry.file_type()?.is_symlink() {
                out.watchable = false;
                std::fs::metadata(&path)?
            } else {
                entry.metadata()?
            };
            let rel = if top {
                name
            } else {
                format!("{prefix}/{name}")
            };
            if meta.is_dir() {
                go(&path, &rel, is_main, out)?;
            } else if meta.is_file() {
                out.watchable &= meta.nlink() == 1;
                let mtime = meta.modified().unwrap_or(UNIX_EPOCH);
                out.files.push((rel, path, meta.len(), mtime));
            }
        }
        Ok(())
    }
    let mut out = Walked {
        files: Vec::new(),
        folders: Vec::new(),
        watchable: true,
    };
    go(dir, "", is_main, &mut out)?;
    out.files.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(out)
}

/// Resolves a branch, tag or full commit sha to a scanned revision.
pub(super) async fn open_revision(
    state: &HubState,
    repo: &Repo,
    rev: &str,
) -> Result<Arc<Revision>, HubError> {
    let wanted = repo.settings.tags.get(rev).map_or(rev, String::as_str);
    let dirs = revision_dirs(repo).await;
    if let Some((name, dir, rel)) = dirs.iter().find(|(n, _, _)| n == wanted) {
        return scan_revision(state, repo, dir, rel.clone(), name == "main").await;
    }
    if rev.len() == 40 && rev.bytes().all(|b| b.is_ascii_hexdigit()) {
        let rev = rev.to_ascii_lowercase();
        for (name, dir, rel) in &dirs {
            let scanned = scan_revision(state, repo, dir, rel.clone(), name == "main").await?;
            if scanned.sha == rev {
                return Ok(scanned);
            }
        }
    }
    Err(HubError::RevisionNotFound(rev.to_owned()))
}

/// Splits `{rev}/{path…}`. The revision is one (percent-encoded) segment, except that an
/// unencoded `refs/pr/N` or `refs/convert/X` takes three, as the Hub accepts both spellings.
pub(super) fn split_revision<'a>(tail: &[&'a str]) -> (String, Vec<&'a str>) {
    match tail {
        ["refs", kind @ ("pr" | "convert"), n, rest @ ..] => {
            (format!("refs/{kind}/{n}"), rest.to_vec())
        }
        [rev, rest @ ..] => ((*rev).to_owned(), rest.to_vec()),
        [] => (String::new(), Vec::new()),
    }
}
