//! Content hashes of served files (sha256, git blob ids), computed once per file version.

use std::collections::HashMap;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};
use std::time::SystemTime;

use sha1::Sha1;
use sha2::{Digest, Sha256};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum HashKind {
    /// Hex sha256 of the content.
    Sha256,
    /// Git's blob id: hex sha1 of `blob <size>\0<content>`.
    GitBlob,
}

/// A cached hash: valid while the file's size and modification time are unchanged.
type Entry = (u64, SystemTime, String);

/// Cache keyed by path and kind.
#[derive(Debug, Default)]
pub(crate) struct HashCache {
    map: Mutex<HashMap<(PathBuf, HashKind), Entry>>,
}

impl HashCache {
    pub(crate) async fn get(
        &self,
        path: &Path,
        size: u64,
        mtime: SystemTime,
        kind: HashKind,
    ) -> io::Result<String> {
        let key = (path.to_path_buf(), kind);
        if let Some((s, m, h)) = self
            .map
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&key)
            && *s == size
            && *m == mtime
        {
            return Ok(h.clone());
        }
        let owned = path.to_path_buf();
        let hex = tokio::task::spawn_blocking(move || hash_file(&owned, kind))
            .await
            .map_err(io::Error::other)??;
        self.map
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(key, (size, mtime, hex.clone()));
        Ok(hex)
    }
}

fn hash_file(path: &Path, kind: HashKind) -> io::Result<String> {
    let mut file = std::fs::File::open(path)?;
    let size = file.metadata()?.len();
    let mut buf = vec![0u8; 1 << 20];
    match kind {
        HashKind::Sha256 => {
            let mut h = Sha256::new();
            loop {
                let n = file.read(&mut buf)?;
                if n == 0 {
                    break;
                }
                h.update(&buf[..n]);
            }
            Ok(hex::encode(h.finalize()))
        }
        HashKind::GitBlob => {
            let mut h = Sha1::new();
            h.update(format!("blob {size}\0").as_bytes());
            let mut read = 0u64;
            loop {
                let n = file.read(&mut buf)?;
                if n == 0 {
                    break;
                }
                read += n as u64;
                h.update(&buf[..n]);
            }
            if read != size {
                return Err(io::Error::other(format!(
                    "{} changed while being hashed",
                    path.display()
                )));
            }
            Ok(hex::encode(h.finalize()))
        }
    }
}

/// Git's blob id of in-memory content.
pub(crate) fn git_blob_id(content: &[u8]) -> String {
    let mut h = Sha1::new();
    h.update(format!("blob {}\0", content.len()).as_bytes());
    h.update(content);
    hex::encode(h.finalize())
}

/// Hex sha1 of `data` (commit and tree ids).
pub(crate) fn sha1_hex(data: &[u8]) -> String {
    hex::encode(Sha1::digest(data))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn git_blob_ids_match_git() {
        // `printf 'hello\n' | git hash-object --stdin`
        assert_eq!(
            git_blob_id(b"hello\n"),
            "ce013625030ba8dba906f756967f9e9ca394464a"
        );
        // The empty blob.
        assert_eq!(git_blob_id(b""), "e69de29bb2d1d6434b8b29ae775ad8c2e48c5391");
    }

    #[tokio::test]
    async fn cached_hashes_follow_file_changes() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        std::fs::write(&p, b"hello\n").unwrap();
        let meta = std::fs::metadata(&p).unwrap();
        let cache = HashCache::default();
        let oid = cache
            .get(&p, meta.len(), meta.modified().unwrap(), HashKind::GitBlob)
            .await
            .unwrap();
        assert_eq!(oid, git_blob_id(b"hello\n"));
        let sha = cache
            .get(&p, meta.len(), meta.modified().unwrap(), HashKind::Sha256)
            .await
            .unwrap();
        assert_eq!(
            sha,
            "5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03"
        );
        std::fs::write(&p, b"hello, world\n").unwrap();
        let meta = std::fs::metadata(&p).unwrap();
        let oid2 = cache
            .get(&p, meta.len(), meta.modified().unwrap(), HashKind::GitBlob)
            .await
            .unwrap();
        assert_eq!(oid2, git_blob_id(b"hello, world\n"));
    }
}
