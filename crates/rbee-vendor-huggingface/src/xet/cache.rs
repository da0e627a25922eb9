//! Decoded Xet chunks kept between downloads, so a second revision or another quant that
//! shares chunks with one fetched before takes them from disk.
//!
//! ```text
//! <dir>/<xorb hash>/<chunk index>   the chunk's hash (32 bytes), then its bytes
//! ```
//!
//! Keyed by where a chunk sits in the CAS (a xorb never changes once written), checked
//! against its own hash when read, bounded by size: past the budget the chunks used longest
//! ago (by modification time, refreshed on every hit) are removed.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use rbee_artifact::lock_unpoisoned;
use rbee_xet::cas::ChunkRange;
use rbee_xet::{XetHash, chunk_hash};

/// Numbers the temporary files of this process's writes.
static TMP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// A bounded, content-checked store of decoded chunks.
#[derive(Debug)]
pub struct ChunkCache {
    dir: PathBuf,
    max_bytes: u64,
    /// Bytes stored, as far as this process knows (recounted when evicting).
    used: Mutex<u64>,
}

impl ChunkCache {
    /// The cache in `dir` (created when missing), holding at most about `max_bytes`.
    pub fn open(dir: impl Into<PathBuf>, max_bytes: u64) -> std::io::Result<Self> {
        let dir = dir.into();
        std::fs::create_dir_all(&dir)?;
        let used = entries(&dir).iter().map(|e| e.2).sum();
        Ok(Self {
            dir,
            max_bytes,
            used: Mutex::new(used),
        })
    }

    fn path(&self, xorb: &XetHash, index: u32) -> PathBuf {
        self.dir.join(xorb.to_hex()).join(index.to_string())
    }

    /// Whether every chunk of `range` of `xorb` is here.
    pub fn has_all(&self, xorb: &XetHash, range: ChunkRange) -> bool {
        (range.start..range.end).all(|i| self.path(xorb, i).is_file())
    }

    /// Chunk `index` of `xorb`, when stored and still matching its hash (a damaged entry is
    /// removed). Counts as a use for eviction.
    pub fn read(&self, xorb: &XetHash, index: u32) -> Option<Vec<u8>> {
        let path = self.path(xorb, index);
        let stored = std::fs::read(&path).ok()?;
        let intact = stored
            .split_first_chunk::<32>()
            .filter(|(hash, data)| chunk_hash(data).as_bytes() == *hash);
        let Some((_, data)) = intact else {
            tracing::warn!(path = %path.display(), "a cached Xet chunk is truncated or no longer matches its hash; removing it");
            let _ = std::fs::remove_file(&path);
            return None;
        };
        if let Ok(f) = std::fs::File::options().append(true).open(&path) {
            let _ = f.set_modified(std::time::SystemTime::now());
        }
        Some(data.to_vec())
    }

    /// Stores chunk `index` of `xorb` (written whole, then renamed into place).
    pub fn put(&self, xorb: &XetHash, index: u32, data: &[u8]) {
        let path = self.path(xorb, index);
        if path.is_file() {
            return;
        }
        let write = || -> std::io::Result<()> {
            let dir = path.parent().expect("a chunk path has a folder");
            std::fs::create_dir_all(dir)?;
            // Unique per write: two tasks of this process may store the same chunk at once.
            let tmp = dir.join(format!(
                ".{index}.{}.{}.tmp",
                std::process::id(),
                TMP_COUNTER.fetch_add(1, Ordering::Relaxed)
            ));
            let mut bytes = Vec::with_capacity(32 + data.len());
            bytes.extend_from_slice(chunk_hash(data).as_bytes());
            bytes.extend_from_slice(data);
            std::fs::write(&tmp, &bytes)?;
            std::fs::rename(&tmp, &path)
        };
        if let Err(e) = write() {
            tracing::debug!(error = %e, "could not keep a Xet chunk");
            return;
        }
        let over = {
            let mut used = lock_unpoisoned(&self.used);
            *used += 32 + data.len() as u64;
            *used > self.max_bytes
        };
        if over {
            self.evict();
        }
    }

    /// Removes the chunks used longest ago until the cache is down to 90% of its budget.
    fn evict(&self) {
        let mut all = entries(&self.dir);
        all.sort_by_key(|e| e.1);
        let mut total: u64 = all.iter().map(|e| e.2).sum();
        let target = self.max_bytes / 10 * 9;
        for (path, _, size) in all {
            if total <= target {
                break;
            }
            if std::fs::remove_file(&path).is_ok() {
                total -= size;
                if let Some(dir) = path.parent() {
                    // Only succeeds once the xorb's folder is empty.
                    let _ = std::fs::remove_dir(dir);
                }
            }
        }
        *lock_unpoisoned(&self.used) = total;
    }
}

/// Every stored chunk: path, modification time, size.
fn entries(dir: &Path) -> Vec<(PathBuf, std::time::SystemTime, u64)> {
    let mut out = Vec::new();
    let Ok(xorbs) = std::fs::read_dir(dir) else {
        return out;
    };
    for xorb in xorbs.flatten() {
        let Ok(chunks) = std::fs::read_dir(xorb.path()) else {
            continue;
        };
        for chunk in chunks.flatten() {
            if let Ok(m) = chunk.metadata()
                && m.is_file()
            {
                let modified = m.modified().unwrap_or(std::time::UNIX_EPOCH);
                out.push((chunk.path(), modified, m.len()));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn range(start: u32, end: u32) -> ChunkRange {
        ChunkRange { start, end }
    }

    #[test]
    fn chunks_come_back_and_damaged_ones_do_not() {
        let dir = tempfile::tempdir().unwrap();
        let cache = ChunkCache::open(dir.path(), 1 << 20).unwrap();
        let x = XetHash::from_bytes([7; 32]);
        cache.put(&x, 0, b"zero");
        cache.put(&x, 1, b"one");
        assert!(cache.has_all(&x, range(0, 2)));
        assert!(!cache.has_all(&x, range(0, 3)));
        assert_eq!(cache.read(&x, 1).unwrap(), b"one");
        // Tampered on disk: refused and removed.
        let p = dir.path().join(x.to_hex()).join("1");
        let mut bytes = std::fs::read(&p).unwrap();
        *bytes.last_mut().unwrap() ^= 1;
        std::fs::write(&p, bytes).unwrap();
        assert_eq!(cache.read(&x, 1), None);
        assert!(!cache.has_all(&x, range(0, 2)));
    }

    #[test]
    fn a_truncated_chunk_is_removed_and_no_longer_counted_present() {
        let dir = tempfile::tempdir().unwrap();
        let cache = ChunkCache::open(dir.path(), 1 << 20).unwrap();
        let x = XetHash::from_bytes([9; 32]);
        let p = dir.path().join(x.to_hex()).join("0");
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, b"").unwrap();
        assert!(cache.has_all(&x, range(0, 1)));
        assert_eq!(cache.read(&x, 0), None);
        assert!(!p.exists(), "a short entry is removed");
        assert!(!cache.has_all(&x, range(0, 1)));
        // Shorter than a hash but not empty: the same.
        std::fs::write(&p, [1u8; 31]).unwrap();
        assert_eq!(cache.read(&x, 0), None);
        assert!(!cache.has_all(&x, range(0, 1)));
    }

    #[test]
    fn concurrent_stores_of_one_chunk_all_land() {
        let dir = tempfile::tempdir().unwrap();
        let cache = std::sync::Arc::new(ChunkCache::open(dir.path(), 1 << 20).unwrap());
        let x = XetHash::from_bytes([3; 32]);
        let data = vec![5u8; 256 << 10];
        let threads: Vec<_> = (0..8)
            .map(|_| {
                let (cache, data) = (cache.clone(), data.clone());
                std::thread::spawn(move || cache.put(&x, 0, &data))
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(cache.read(&x, 0).unwrap(), data);
        let leftovers: Vec<_> = std::fs::read_dir(dir.path().join(x.to_hex()))
            .unwrap()
            .flatten()
            .map(|e| e.file_name())
            .filter(|n| n != "0")
            .collect();
        assert!(leftovers.is_empty(), "{leftovers:?}");
    }

    #[test]
    fn the_chunks_used_longest_ago_go_first() {
        let dir = tempfile::tempdir().unwrap();
        // Room for about three chunks of 1000 bytes (each stored with its 32-byte hash).
        let cache = ChunkCache::open(dir.path(), 3200).unwrap();
        let x = XetHash::from_bytes([1; 32]);
        let old = std::time::SystemTime::now() - std::time::Duration::from_secs(100);
        for i in 0..3u32 {
            cache.put(&x, i, &[i as u8; 1000]);
            let f = std::fs::File::options()
                .append(true)
                .open(dir.path().join(x.to_hex()).join(i.to_string()))
                .unwrap();
            f.set_modified(old + std::time::Duration::from_secs(u64::from(i)))
                .unwrap();
        }
        // Chunk 0 is used again: now the most recent.
        assert!(cache.read(&x, 0).is_some());
        cache.put(&x, 3, &[3; 1000]);
        assert!(cache.read(&x, 0).is_some(), "recently used, kept");
        assert!(cache.read(&x, 3).is_some(), "just added, kept");
        assert_eq!(cache.read(&x, 1), None, "used longest ago, evicted");
        let on_disk: u64 = entries(dir.path()).iter().map(|e| e.2).sum();
        assert!(on_disk <= 3200, "{on_disk}");
    }
}
