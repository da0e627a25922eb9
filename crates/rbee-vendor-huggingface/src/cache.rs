//! The HuggingFace cache, as huggingface_hub, hf-hub and llama.cpp's `-hf` read and write it.
//!
//! ```text
//! $HF_HUB_CACHE (default $HF_HOME/hub)/
//!   models--ORG--REPO/
//!     blobs/<etag>                      the bytes: etag = sha256 for LFS files, git blob id otherwise
//!     refs/<revision>                   a branch or tag name → the commit it pointed at (text)
//!     snapshots/<commit>/<path>         relative symlink to ../../blobs/<etag> (one more ../ per folder)
//! ```
//!
//! Path functions are pure; the reading and writing functions do blocking file-system work and
//! are called from `spawn_blocking`.

use std::fs;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use rbee_artifact::{GitBlobHasher, GitBlobId, Sha256Digest, link_or_copy};
use sha2::{Digest, Sha256};
use tokio_util::sync::CancellationToken;

use crate::api::is_commit;
use crate::files::{RepoFile, depth};

/// The HuggingFace cache of model repositories rooted at `hub` (`$HF_HOME/hub`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HfCache {
    hub: PathBuf,
}

impl HfCache {
    /// The cache rooted at `hub`.
    pub fn new(hub: impl Into<PathBuf>) -> Self {
        Self { hub: hub.into() }
    }

    /// The root (`$HF_HOME/hub`).
    pub fn root(&self) -> &Path {
        &self.hub
    }

    /// One model repository's part of the cache (`models--ORG--REPO`).
    pub fn repo(&self, org: &str, repo: &str) -> CachedRepo {
        CachedRepo {
            dir: self.hub.join(format!("models--{org}--{repo}")),
        }
    }
}

/// One model repository in the HuggingFace cache.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CachedRepo {
    dir: PathBuf,
}

impl CachedRepo {
    /// The folder (`…/models--ORG--REPO`).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// `blobs/<etag>`.
    pub fn blob_path(&self, etag: &str) -> PathBuf {
        self.dir.join("blobs").join(etag)
    }

    /// `snapshots/<commit>`.
    pub fn snapshot_dir(&self, commit: &str) -> PathBuf {
        self.dir.join("snapshots").join(commit)
    }

    /// `snapshots/<commit>/<path>`.
    pub fn snapshot_file(&self, commit: &str, path: &str) -> PathBuf {
        let mut out = self.snapshot_dir(commit);
        out.extend(path.split('/'));
        out
    }

    /// `refs/<revision>` (`refs/pr/1` → `refs/refs/pr/1`, as huggingface_hub writes it).
    pub fn ref_file(&self, revision: &str) -> PathBuf {
        let mut out = self.dir.join("refs");
        out.extend(revision.split('/'));
        out
    }

    /// The commit a branch or tag pointed at when it was cached, if recorded; a commit id is
    /// its own answer.
    pub fn read_ref(&self, revision: &str) -> io::Result<Option<String>> {
        if is_commit(revision) {
            return Ok(Some(revision.to_ascii_lowercase()));
        }
        match fs::read_to_string(self.ref_file(revision)) {
            Ok(text) => {
                let commit = text.trim();
                // The content becomes a path component: accept only a commit id.
                Ok(is_commit(commit).then(|| commit.to_ascii_lowercase()))
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The files of a cached snapshot, with sizes, and the sha256 (or git blob id) that their
    /// blob names claim. Dangling links are skipped. An absent snapshot is an empty list.
    pub fn list_snapshot(&self, commit: &str) -> io::Result<Vec<RepoFile>> {
        let root = self.snapshot_dir(commit);
        let mut out = Vec::new();
        match fs::metadata(&root) {
            Ok(m) if m.is_dir() => walk(&root, "", &mut out)?,
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        out.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(out)
    }

    /// Places a verified local file into the cache as `path` of `commit`: its blob (hard-linked
    /// to `local` when the file system allows, else copied), the snapshot link, and
    /// `refs/<revision>` when the revision is a branch or tag. Idempotent; each step lands
    /// atomically (temp + rename).
    pub fn store(
        &self,
        commit: &str,
        revision: &str,
        path: &str,
        etag: &str,
        local: &Path,
    ) -> io::Result<()> {
        if !is_commit(commit) || !is_safe_etag(etag) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("not a commit id or blob name: {commit} / {etag}"),
            ));
        }
        let blob = self.blob_path(etag);
        let size = fs::metadata(local)?.len();
        let blob_ok = fs::metadata(&blob).is_ok_and(|m| m.is_file() && m.len() == size);
        if !blob_ok {
            fs::create_dir_all(blob.parent().expect("blob has a parent"))?;
            link_or_copy(local, &blob, &temp_beside(&blob))?;
        }

        let snapshot = self.snapshot_file(commit, path);
        fs::create_dir_all(snapshot.parent().expect("snapshot file has a parent"))?;
        let tmp = temp_beside(&snapshot);
        let _ = fs::remove_file(&tmp);
        #[cfg(unix)]
        {
            let target = relative_blob_target(path, etag);
            std::os::unix::fs::symlink(&target, &tmp)?;
            fs::rename(&tmp, &snapshot).inspect_err(|_| {
                let _ = fs::remove_file(&tmp);
            })?;
        }
        #[cfg(not(unix))]
        {
            // Without symlinks huggingface_hub keeps a copy in the snapshot; so do we.
            link_or_copy(&blob, &snapshot, &tmp)?;
        }

        if !is_commit(revision) {
            let reference = self.ref_file(revision);
            fs::create_dir_all(reference.parent().expect("ref has a parent"))?;
            let current = fs::read_to_string(&reference).unwrap_or_default();
            if current.trim() != commit {
                let tmp = temp_beside(&reference);
                fs::write(&tmp, commit)?;
                fs::rename(&tmp, &reference)?;
            }
        }
        Ok(())
    }
}

/// `../../blobs/<etag>` from `snapshots/<commit>/<path>`, one more `../` per folder of `path`.
pub(crate) fn relative_blob_target(path: &str, etag: &str) -> PathBuf {
    let mut target = PathBuf::new();
    for _ in 0..depth(path) + 2 {
        target.push("..");
    }
    target.push("blobs");
    target.push(etag);
    target
}

/// Blob names are hex digests; anything else could escape the folder.
fn is_safe_etag(etag: &str) -> bool {
    !etag.is_empty() && etag.len() <= 128 && etag.bytes().all(|b| b.is_ascii_hexdigit())
}

fn temp_beside(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(format!(".rbee-{}.tmp", std::process::id()));
    path.with_file_name(name)
}

fn walk(dir: &Path, prefix: &str, out: &mut Vec<RepoFile>) -> io::Result<()> {
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let Ok(name) = entry.file_name().into_string() else {
            continue;
        };
        let rel = if prefix.is_empty() {
            name.clone()
        } else {
            format!("{prefix}/{name}")
        };
        let path = entry.path();
        let Ok(meta) = fs::metadata(&path) else {
            continue; // dangling link
        };
        if meta.is_dir() {
            walk(&path, &rel, out)?;
            continue;
        }
        let blob_name = fs::read_link(&path)
            .ok()
            .and_then(|t| t.file_name().and_then(|n| n.to_str()).map(str::to_string));
        let mut file = RepoFile::new(rel, Some(meta.len()));
        if let Some(blob) = blob_name {
            if blob.len() == 64 {
                file.sha256 = blob.parse().ok();
            } else if blob.len() == 40 && blob.bytes().all(|b| b.is_ascii_hexdigit()) {
                file.oid = Some(blob.to_ascii_lowercase());
            }
        }
        out.push(file);
    }
    Ok(())
}

/// What hashing a local file found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct LocalDigest {
    pub size: u64,
    pub sha256: Sha256Digest,
    /// The git blob id (`sha1("blob <size>\0" + bytes)`), when asked for.
    pub git_oid: Option<GitBlobId>,
}

/// Hashes a file with SHA-256 and, when `git_oid` is set, the git blob id too. Blocking; stops
/// with [`io::ErrorKind::Interrupted`] soon after `cancel` fires.
pub(crate) fn hash_file(
    path: &Path,
    git_oid: bool,
    cancel: Option<&CancellationToken>,
) -> io::Result<LocalDigest> {
    let mut file = fs::File::open(path)?;
    let size = file.metadata()?.len();
    let mut sha256 = Sha256::new();
    let mut sha1 = git_oid.then(|| GitBlobHasher::new(size));
    let mut buf = vec![0u8; 1 << 20];
    let mut read = 0u64;
    loop {
        if cancel.is_some_and(CancellationToken::is_cancelled) {
            return Err(io::Error::new(io::ErrorKind::Interrupted, "cancelled"));
        }
        let n = match file.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        sha256.update(&buf[..n]);
        if let Some(h) = sha1.as_mut() {
            h.update(&buf[..n]);
        }
        read += n as u64;
    }
    if read != size {
        return Err(io::Error::other(format!(
            "{} changed while it was read",
            path.display()
        )));
    }
    Ok(LocalDigest {
        size,
        sha256: Sha256Digest::from_bytes(sha256.finalize().into()),
        git_oid: sha1.map(GitBlobHasher::finalize),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const COMMIT: &str = "0123456789abcdef0123456789abcdef01234567";

    #[test]
    fn paths_match_huggingface_hub() {
        let c = HfCache::new("/hf/hub");
        assert_eq!(
            c.repo("TheBloke", "X-GGUF").dir(),
            Path::new("/hf/hub/models--TheBloke--X-GGUF")
        );
        let c = c.repo("o", "r");
        assert_eq!(
            c.snapshot_file(COMMIT, "sub/a.gguf"),
            Path::new(&format!(
                "/hf/hub/models--o--r/snapshots/{COMMIT}/sub/a.gguf"
            ))
        );
        assert_eq!(
            c.ref_file("refs/pr/1"),
            Path::new("/hf/hub/models--o--r/refs/refs/pr/1")
        );
        assert_eq!(
            c.blob_path("abc"),
            Path::new("/hf/hub/models--o--r/blobs/abc")
        );
        assert_eq!(
            relative_blob_target("a.gguf", "e"),
            Path::new("../../blobs/e")
        );
        assert_eq!(
            relative_blob_target("x/y/a.gguf", "e"),
            Path::new("../../../../blobs/e")
        );
    }

    #[test]
    fn git_blob_id_matches_git() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        fs::write(&p, b"hello\n").unwrap();
        let d = hash_file(&p, true, None).unwrap();
        // `printf 'hello\n' | git hash-object --stdin`
        assert_eq!(
            d.git_oid.map(|id| id.to_string()).as_deref(),
            Some("ce013625030ba8dba906f756967f9e9ca394464a")
        );
        assert_eq!(d.sha256, Sha256Digest::of(b"hello\n"));
        assert_eq!(d.size, 6);
        assert_eq!(hash_file(&p, false, None).unwrap().git_oid, None);
    }

    #[cfg(unix)]
    #[test]
    fn store_then_list_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let cache = HfCache::new(dir.path().join("hub")).repo("o", "r");
        let local = dir.path().join("catalog-file");
        fs::write(&local, b"weights").unwrap();
        let sha = Sha256Digest::of(b"weights").to_string();
        cache
            .store(COMMIT, "main", "sub/m.gguf", &sha, &local)
            .unwrap();
        // Twice is fine.
        cache
            .store(COMMIT, "main", "sub/m.gguf", &sha, &local)
            .unwrap();
        let snap = cache.snapshot_file(COMMIT, "sub/m.gguf");
        assert_eq!(fs::read(&snap).unwrap(), b"weights");
        assert_eq!(
            fs::read_link(&snap).unwrap(),
            Path::new(&format!("../../../blobs/{sha}"))
        );
        use std::os::unix::fs::MetadataExt;
        assert_eq!(
            fs::metadata(&local).unwrap().ino(),
            fs::metadata(cache.blob_path(&sha)).unwrap().ino(),
            "the blob is a hard link, not a second copy"
        );
        assert_eq!(cache.read_ref("main").unwrap().as_deref(), Some(COMMIT));
        assert_eq!(cache.read_ref(COMMIT).unwrap().as_deref(), Some(COMMIT));
        assert_eq!(cache.read_ref("dev").unwrap(), None);
        let listed = cache.list_snapshot(COMMIT).unwrap();
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].path, "sub/m.gguf");
        assert_eq!(listed[0].size, Some(7));
        assert_eq!(listed[0].sha256.unwrap().to_string(), sha);
        assert!(cache.list_snapshot(&"f".repeat(40)).unwrap().is_empty());
        // Nothing but the three parts of the layout was created.
        let mut top: Vec<String> = fs::read_dir(cache.dir())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        top.sort();
        assert_eq!(top, vec!["blobs", "refs", "snapshots"]);
    }

    #[test]
    fn refuses_hostile_names() {
        let dir = tempfile::tempdir().unwrap();
        let cache = HfCache::new(dir.path()).repo("o", "r");
        let local = dir.path().join("f");
        fs::write(&local, b"x").unwrap();
        assert!(cache.store(COMMIT, "main", "a", "../../x", &local).is_err());
        assert!(cache.store("../x", "main", "a", "ab", &local).is_err());
        fs::create_dir_all(cache.dir().join("refs")).unwrap();
        fs::write(cache.ref_file("main"), "../../../etc").unwrap();
        assert_eq!(cache.read_ref("main").unwrap(), None);
    }
}
