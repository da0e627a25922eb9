//! Decoded Xet chunks kept between downloads, so a second revision or another quant that
//! shares chunks with one fetched before takes them from disk.
//!
//! ```text
//! <dir>/<pid>-<nanos>-<n>.pack   append-only records (see `record`): a chunk's bytes, or a
//!                                link to where a verified download holds them
//! ```
//!
//! A chunk of a file that was downloaded and verified is not copied: a link records the file,
//! what it was then (device, inode, size, modification time) and the offset, and a read takes
//! the bytes from that file while it is still the file it was, so a file replaced or removed
//! since is noticed and its chunks fetched again. Nothing is hashed for a link: the file was
//! verified whole, and a file rebuilt from linked chunks is verified whole too (a chunk found
//! wrong that way is forgotten). Only chunks no file keeps (the rest of a xorb range fetched
//! for one term) are copied in, and checked by their hash when read.
//!
//! A record found wrong after the fact (its file failed its digest) has its magic rewritten
//! to "XCR0": still walked past, never indexed again, by this process or the next.
//!
//! A few large files rather than one per chunk: a first download writes its chunks as it
//! goes at little more than the cost of the bytes. Records are appended by one writer thread
//! per cache (off the async threads); a process only ever appends to packs it created. The
//! index (xorb, chunk index) → record lives in memory and is rebuilt at open by walking the
//! record headers: a record cut short by a crash ends a pack's walk and is never served, and
//! every read is checked against the chunk's hash. Keyed by where a chunk sits in the CAS (a
//! xorb never changes once written). Bounded by size: past the budget whole packs go, those
//! used longest ago first.

use std::collections::HashMap;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use rbee_artifact::lock_unpoisoned;
use rbee_xet::XetHash;
use rbee_xet::cas::ChunkRange;
use tokio::sync::{mpsc, oneshot};

use record::{
    FileIdentity, HEADER_LEN, Key, LinkedFile, MAGIC_FORGOTTEN, MAX_RECORD, Record, walk_pack,
    write_batch,
};

mod read;
mod record;

pub use read::HeldFile;

/// A pack is closed and a new one started past this size (less for small budgets, so that
/// eviction, which removes whole packs, can still keep the cache near its budget).
const PACK_BYTES: u64 = 64 << 20;
/// Chunks queued for the writer; at the Hub's 64 KiB chunks about 8 MiB held in memory.
const QUEUE: usize = 128;
/// The writer appends up to this much at once.
const BATCH_BYTES: usize = 4 << 20;
/// A pack's modification time (its age for other processes' eviction) is refreshed at most
/// this often.
const TOUCH_EVERY: Duration = Duration::from_secs(60);

/// Numbers the packs of this process.
static PACK_COUNTER: AtomicU64 = AtomicU64::new(0);

#[derive(Debug, Clone)]
struct Loc {
    pack: usize,
    /// Offset of the record's header.
    offset: u64,
    /// The chunk's length.
    len: u32,
    /// For a link: the file holding the chunk, and where.
    file: Option<(Arc<LinkedFile>, u64)>,
}

/// A chunk of a verified download: where it lies in the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LinkedChunk {
    /// The xorb the chunk is in.
    pub xorb: XetHash,
    /// The chunk's index in its xorb.
    pub index: u32,
    /// Its offset in the file.
    pub at: u64,
    /// Its length.
    pub len: u32,
}

#[derive(Debug)]
struct Pack {
    path: PathBuf,
    size: u64,
    last_used: SystemTime,
    touched: Option<SystemTime>,
    file: Option<Arc<File>>,
}

#[derive(Debug, Default)]
struct State {
    index: HashMap<Key, Loc>,
    /// Chunks handed to the writer and not yet on disk: served from here meanwhile.
    pending: HashMap<Key, Arc<Vec<u8>>>,
    /// Indexed by `Loc::pack`; `None` once evicted.
    packs: Vec<Option<Pack>>,
    /// The pack the writer appends to.
    current: Option<usize>,
    used: u64,
}

enum Job {
    Put(Key, Record),
    Flush(oneshot::Sender<()>),
}

#[derive(Debug)]
struct Inner {
    dir: PathBuf,
    max_bytes: u64,
    state: Mutex<State>,
}

/// A bounded, content-checked store of decoded chunks.
#[derive(Debug)]
pub struct ChunkCache {
    inner: Arc<Inner>,
    queue: mpsc::Sender<Job>,
}

impl ChunkCache {
    /// The cache in `dir` (created when missing), holding at most about `max_bytes`. Reads
    /// the packs already there; starts the writer thread.
    pub fn open(dir: impl Into<PathBuf>, max_bytes: u64) -> std::io::Result<Self> {
        let dir = dir.into();
        std::fs::create_dir_all(&dir)?;
        let mut state = State::default();
        let mut linked_files = HashMap::new();
        for entry in std::fs::read_dir(&dir)?.flatten() {
            let path = entry.path();
            if is_old_layout_folder(&entry) {
                // The earlier layout kept a file per chunk under a folder per xorb: nothing
                // reads it any more, and it counts against no budget.
                if let Err(e) = std::fs::remove_dir_all(&path) {
                    tracing::debug!(path = %path.display(), error = %e, "could not remove a folder of the old Xet chunk cache layout");
                }
                continue;
            }
            if path.extension().is_none_or(|e| e != "pack") {
                continue;
            }
            let Ok(meta) = entry.metadata() else { continue };
            if !meta.is_file() {
                continue;
            }
            let pack = state.packs.len();
            for (key, found) in walk_pack(&path, meta.len(), &mut linked_files) {
                let loc = Loc {
                    pack,
                    offset: found.offset,
                    len: found.len,
                    file: found.file,
                };
                state.index.insert(key, loc);
            }
            state.used += meta.len();
            state.packs.push(Some(Pack {
                path,
                size: meta.len(),
                last_used: meta.modified().unwrap_or(SystemTime::UNIX_EPOCH),
                touched: None,
                file: None,
            }));
        }
        let inner = Arc::new(Inner {
            dir,
            max_bytes,
            state: Mutex::new(state),
        });
        let (queue, jobs) = mpsc::channel(QUEUE);
        let writer = inner.clone();
        std::thread::Builder::new()
            .name("xet-chunk-cache".into())
            .spawn(move || writer.write_loop(jobs))?;
        Ok(Self { inner, queue })
    }

    fn has(&self, state: &State, key: &Key) -> bool {
        state.index.contains_key(key) || state.pending.contains_key(key)
    }

    /// Whether every chunk of `range` of `xorb` is here.
    pub fn has_all(&self, xorb: &XetHash, range: ChunkRange) -> bool {
        let state = lock_unpoisoned(&self.inner.state);
        (range.start..range.end).all(|i| self.has(&state, &(*xorb, i)))
    }

    /// Records where the chunks of a verified download lie in its file `path`, instead of
    /// copying them: later reads take them from there while it is still this file (call it
    /// once the file was verified, before anything else can change it). Chunks already here
    /// are skipped.
    pub async fn link(&self, path: &Path, chunks: Vec<LinkedChunk>) {
        let identity = match tokio::fs::symlink_metadata(path).await {
            Ok(meta) if meta.is_file() => FileIdentity::of(&meta),
            _ => return,
        };
        let file = Arc::new(LinkedFile {
            path: path.to_path_buf(),
            identity: Some(identity),
        });
        for c in chunks {
            let key = (c.xorb, c.index);
            if self.has(&lock_unpoisoned(&self.inner.state), &key) {
                continue;
            }
            let record = Record::Link {
                file: file.clone(),
                at: c.at,
                len: c.len,
            };
            if self.queue.send(Job::Put(key, record)).await.is_err() {
                return;
            }
        }
    }

    /// Forgets chunks `range` of `xorb`, here and on disk, for this process and the next: what
    /// they held turned out wrong (a file rebuilt from them failed its digest). Waits for the
    /// writer first, so that none of them is still on its way to disk.
    pub async fn forget(&self, xorb: &XetHash, range: ChunkRange) {
        self.flush().await;
        let doomed: Vec<(PathBuf, u64)> = {
            let mut state = lock_unpoisoned(&self.inner.state);
            (range.start..range.end)
                .filter_map(|i| {
                    let key = (*xorb, i);
                    state.pending.remove(&key);
                    let loc = state.index.remove(&key)?;
                    let pack = state.packs.get(loc.pack)?.as_ref()?;
                    Some((pack.path.clone(), loc.offset))
                })
                .collect()
        };
        if doomed.is_empty() {
            return;
        }
        let dir = self.inner.dir.clone();
        let marked = tokio::task::spawn_blocking(move || {
            for (path, offset) in doomed {
                // Written in place of the magic: the record keeps its length, so the walk
                // still finds the ones after it.
                let marked = File::options()
                    .write(true)
                    .open(&path)
                    .and_then(|f| f.write_all_at(MAGIC_FORGOTTEN, offset));
                if let Err(e) = marked {
                    tracing::debug!(pack = %path.display(), error = %e, "could not mark a wrong Xet chunk as forgotten on disk");
                }
            }
        })
        .await;
        if marked.is_err() {
            tracing::debug!(dir = %dir.display(), "marking wrong Xet chunks as forgotten did not finish");
        }
    }

    /// Stores chunk `index` of `xorb`: queued for the writer thread (waiting while it is
    /// behind), readable from here at once.
    pub async fn put(&self, xorb: &XetHash, index: u32, data: Vec<u8>) {
        let key = (*xorb, index);
        if data.len() > MAX_RECORD as usize {
            return;
        }
        let data = Arc::new(data);
        {
            let mut state = lock_unpoisoned(&self.inner.state);
            if self.has(&state, &key) {
                return;
            }
            state.pending.insert(key, data.clone());
        }
        if self
            .queue
            .send(Job::Put(key, Record::Chunk(data)))
            .await
            .is_err()
        {
            lock_unpoisoned(&self.inner.state).pending.remove(&key);
        }
    }

    /// Waits until every chunk stored so far is on disk.
    pub async fn flush(&self) {
        let (done, wait) = oneshot::channel();
        if self.queue.send(Job::Flush(done)).await.is_ok() {
            let _ = wait.await;
        }
    }
}

impl Inner {
    /// Forgets pack `pack` (still at `path`) and everything in it, as eviction does: it could
    /// not be read, most likely because another process evicted it or someone removed it.
    fn forget_pack(&self, pack: usize, path: &Path, error: &std::io::Error) {
        let mut state = lock_unpoisoned(&self.state);
        if !matches!(state.packs.get(pack), Some(Some(p)) if p.path == path) {
            return;
        }
        tracing::debug!(pack = %path.display(), %error, "a Xet chunk pack cannot be read; forgetting its chunks");
        if let Some(p) = state.packs[pack].take() {
            state.used = state.used.saturating_sub(p.size);
        }
        state.index.retain(|_, loc| loc.pack != pack);
    }

    /// The writer thread: appends queued chunks in batches until the cache is dropped.
    fn write_loop(&self, mut jobs: mpsc::Receiver<Job>) {
        let mut out: Option<File> = None;
        while let Some(first) = jobs.blocking_recv() {
            let mut batch = Vec::new();
            let mut flushes = Vec::new();
            let mut bytes = 0;
            let mut next = Some(first);
            while let Some(job) = next {
                match job {
                    Job::Put(key, record) => {
                        bytes += match &record {
                            Record::Chunk(data) => data.len(),
                            Record::Link { .. } => HEADER_LEN,
                        };
                        batch.push((key, record));
                    }
                    Job::Flush(done) => flushes.push(done),
                }
                next = if bytes < BATCH_BYTES {
                    jobs.try_recv().ok()
                } else {
                    None
                };
            }
            if !batch.is_empty()
                && let Err(e) = self.append(&mut out, &batch)
            {
                tracing::debug!(error = %e, "could not keep Xet chunks");
                out = None;
                let mut state = lock_unpoisoned(&self.state);
                state.current = None;
                for (key, _) in &batch {
                    state.pending.remove(key);
                }
            }
            for done in flushes {
                let _ = done.send(());
            }
        }
    }

    /// Appends `batch` to the current pack (a new one when there is none or it is full),
    /// then indexes it and evicts when over budget.
    fn append(&self, out: &mut Option<File>, batch: &[(Key, Record)]) -> std::io::Result<()> {
        let pack_bytes = PACK_BYTES.min((self.max_bytes / 8).max(1));
        let (pack, batch_start) = {
            let mut state = lock_unpoisoned(&self.state);
            let current = state.current.filter(|&p| {
                out.is_some() && state.packs[p].as_ref().is_some_and(|p| p.size < pack_bytes)
            });
            match current {
                Some(p) => (p, state.packs[p].as_ref().map_or(0, |p| p.size)),
                None => {
                    let path = self.dir.join(format!(
                        "{}-{}-{}.pack",
                        std::process::id(),
                        SystemTime::now()
                            .duration_since(SystemTime::UNIX_EPOCH)
                            .unwrap_or_default()
                            .as_nanos(),
                        PACK_COUNTER.fetch_add(1, Ordering::Relaxed)
                    ));
                    *out = Some(File::options().append(true).create_new(true).open(&path)?);
                    let p = state.packs.len();
                    state.packs.push(Some(Pack {
                        path,
                        size: 0,
                        last_used: SystemTime::now(),
                        touched: None,
                        file: None,
                    }));
                    state.current = Some(p);
                    (p, 0)
                }
            }
        };
        let (starts, written) = write_batch(out.as_mut().expect("a pack is open"), batch)?;
        let doomed = {
            let mut state = lock_unpoisoned(&self.state);
            for ((key, record), start) in batch.iter().zip(starts) {
                let (len, file) = match record {
                    Record::Chunk(data) => {
                        state.pending.remove(key);
                        (data.len() as u32, None)
                    }
                    Record::Link { file, at, len } => (*len, Some((file.clone(), *at))),
                };
                let loc = Loc {
                    pack,
                    offset: batch_start + start,
                    len,
                    file,
                };
                state.index.insert(*key, loc);
            }
            if let Some(p) = state.packs[pack].as_mut() {
                p.size += written;
            }
            state.used += written;
            self.choose_evictions(&mut state)
        };
        for path in doomed {
            let _ = std::fs::remove_file(path);
        }
        Ok(())
    }

    /// Forgets the packs used longest ago (not the one being written) until the cache is down
    /// to 90% of its budget; returns their files to remove.
    fn choose_evictions(&self, state: &mut State) -> Vec<PathBuf> {
        if state.used <= self.max_bytes {
            return Vec::new();
        }
        let mut order: Vec<(SystemTime, usize)> = state
            .packs
            .iter()
            .enumerate()
            .filter(|&(i, p)| p.is_some() && Some(i) != state.current)
            .map(|(i, p)| (p.as_ref().expect("filtered").last_used, i))
            .collect();
        order.sort();
        let target = self.max_bytes / 10 * 9;
        let mut gone = Vec::new();
        for (_, i) in order {
            if state.used <= target {
                break;
            }
            if let Some(pack) = state.packs[i].take() {
                state.used -= pack.size;
                gone.push((i, pack.path));
            }
        }
        if !gone.is_empty() {
            state
                .index
                .retain(|_, loc| !gone.iter().any(|(i, _)| *i == loc.pack));
        }
        gone.into_iter().map(|(_, path)| path).collect()
    }
}

/// A folder of the earlier one-file-per-chunk layout: named by a xorb's 64 hex digits.
fn is_old_layout_folder(entry: &std::fs::DirEntry) -> bool {
    let name = entry.file_name();
    let name = name.to_string_lossy();
    name.len() == 64
        && name.bytes().all(|b| b.is_ascii_hexdigit())
        && entry.file_type().is_ok_and(|t| t.is_dir())
}

#[cfg(test)]
mod tests {
    use rbee_xet::chunk_hash;

    use super::*;

    fn range(start: u32, end: u32) -> ChunkRange {
        ChunkRange { start, end }
    }

    fn packs(dir: &Path) -> Vec<PathBuf> {
        let mut v: Vec<_> = std::fs::read_dir(dir)
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|e| e == "pack"))
            .collect();
        v.sort();
        v
    }

    #[tokio::test]
    async fn chunks_come_back_across_opens_and_damaged_ones_do_not() {
        let dir = tempfile::tempdir().unwrap();
        let x = XetHash::from_bytes([7; 32]);
        {
            let cache = ChunkCache::open(dir.path(), 1 << 20).unwrap();
            cache.put(&x, 0, b"zero".to_vec()).await;
            cache.put(&x, 1, b"one".to_vec()).await;
            // Readable before the writer got to it.
            assert_eq!(cache.read(&x, 1).unwrap(), b"one");
            cache.flush().await;
            assert!(cache.has_all(&x, range(0, 2)));
            assert!(!cache.has_all(&x, range(0, 3)));
        }
        let cache = ChunkCache::open(dir.path(), 1 << 20).unwrap();
        assert!(
            cache.has_all(&x, range(0, 2)),
            "found again by a new process"
        );
        assert_eq!(cache.read(&x, 0).unwrap(), b"zero");
        assert_eq!(cache.read(&x, 1).unwrap(), b"one");
        // Tampered on disk: refused and forgotten.
        let p = &packs(dir.path())[0];
        let mut bytes = std::fs::read(p).unwrap();
        *bytes.last_mut().unwrap() ^= 1;
        std::fs::write(p, bytes).unwrap();
        assert_eq!(cache.read(&x, 1), None);
        assert!(!cache.has_all(&x, range(0, 2)));
        assert_eq!(
            cache.read(&x, 0).unwrap(),
            b"zero",
            "the other record holds"
        );
    }

    #[tokio::test]
    async fn a_pack_cut_short_by_a_crash_serves_only_its_whole_records() {
        let dir = tempfile::tempdir().unwrap();
        let x = XetHash::from_bytes([9; 32]);
        {
            let cache = ChunkCache::open(dir.path(), 1 << 20).unwrap();
            for i in 0..3 {
                cache.put(&x, i, vec![i as u8; 1000]).await;
            }
            cache.flush().await;
        }
        let p = &packs(dir.path())[0];
        let len = std::fs::metadata(p).unwrap().len();
        // As a kill -9 in the middle of the last record leaves it.
        File::options()
            .write(true)
            .open(p)
            .unwrap()
            .set_len(len - 10)
            .unwrap();
        let cache = ChunkCache::open(dir.path(), 1 << 20).unwrap();
        assert!(cache.has_all(&x, range(0, 2)));
        assert!(
            !cache.has_all(&x, range(2, 3)),
            "the torn record is not indexed"
        );
        assert_eq!(cache.read(&x, 2), None);
        assert_eq!(cache.read(&x, 1).unwrap(), vec![1u8; 1000]);
        // A torn header too: only whole records before it.
        File::options()
            .write(true)
            .open(p)
            .unwrap()
            .set_len(HEADER_LEN as u64 + 1000 + 20)
            .unwrap();
        let cache = ChunkCache::open(dir.path(), 1 << 20).unwrap();
        assert!(cache.has_all(&x, range(0, 1)));
        assert!(!cache.has_all(&x, range(1, 2)));
        // Garbage in place of a header ends the walk as well.
        std::fs::write(p, [0xAB; 200]).unwrap();
        let cache = ChunkCache::open(dir.path(), 1 << 20).unwrap();
        assert!(!cache.has_all(&x, range(0, 1)));
    }

    #[tokio::test]
    async fn concurrent_stores_of_one_chunk_keep_one_record() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Arc::new(ChunkCache::open(dir.path(), 1 << 30).unwrap());
        let x = XetHash::from_bytes([3; 32]);
        let data = vec![5u8; 256 << 10];
        let tasks: Vec<_> = (0..8)
            .map(|_| {
                let (cache, data) = (cache.clone(), data.clone());
                tokio::spawn(async move { cache.put(&x, 0, data).await })
            })
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
        cache.flush().await;
        assert_eq!(cache.read(&x, 0).unwrap(), data);
        let on_disk: u64 = packs(dir.path())
            .iter()
            .map(|p| std::fs::metadata(p).unwrap().len())
            .sum();
        assert_eq!(on_disk, (HEADER_LEN + data.len()) as u64);
    }

    #[tokio::test]
    async fn the_packs_used_longest_ago_go_first() {
        let dir = tempfile::tempdir().unwrap();
        // Packs close at an eighth of the budget: one 1000-byte chunk each (plus its header),
        // and the budget holds about six.
        let budget = 8 * 1000;
        let x = XetHash::from_bytes([1; 32]);
        {
            let cache = ChunkCache::open(dir.path(), budget).unwrap();
            for i in 0..6u32 {
                cache.put(&x, i, vec![i as u8; 1000]).await;
                cache.flush().await;
            }
        }
        assert_eq!(packs(dir.path()).len(), 6);
        // Their ages, oldest first in the order written.
        let old = SystemTime::now() - Duration::from_secs(1000);
        for (i, p) in packs(dir.path()).iter().enumerate() {
            let f = File::options().append(true).open(p).unwrap();
            f.set_modified(old + Duration::from_secs(i as u64)).unwrap();
        }
        let cache = ChunkCache::open(dir.path(), budget).unwrap();
        // Chunk 0's pack is used again: now the most recent.
        assert!(cache.read(&x, 0).is_some());
        for i in 6..9u32 {
            cache.put(&x, i, vec![i as u8; 1000]).await;
            cache.flush().await;
        }
        assert!(cache.read(&x, 0).is_some(), "recently used, kept");
        assert!(cache.read(&x, 8).is_some(), "just added, kept");
        assert_eq!(cache.read(&x, 1), None, "used longest ago, evicted");
        assert!(!cache.has_all(&x, range(1, 2)));
        let on_disk: u64 = packs(dir.path())
            .iter()
            .map(|p| std::fs::metadata(p).unwrap().len())
            .sum();
        assert!(on_disk <= budget, "{on_disk}");
    }

    #[tokio::test]
    async fn a_pack_gone_from_disk_is_forgotten_so_its_chunks_are_fetched_again() {
        let dir = tempfile::tempdir().unwrap();
        let x = XetHash::from_bytes([2; 32]);
        {
            let cache = ChunkCache::open(dir.path(), 1 << 20).unwrap();
            cache.put(&x, 0, b"zero".to_vec()).await;
            cache.put(&x, 1, b"one".to_vec()).await;
            cache.flush().await;
        }
        let cache = ChunkCache::open(dir.path(), 1 << 20).unwrap();
        assert!(cache.has_all(&x, range(0, 2)));
        // As another process's eviction, or a user clearing the folder, leaves it.
        for p in packs(dir.path()) {
            std::fs::remove_file(p).unwrap();
        }
        assert_eq!(cache.read(&x, 0), None);
        assert!(
            !cache.has_all(&x, range(0, 1)),
            "a chunk of a vanished pack still counts as cached"
        );
        assert!(
            !cache.has_all(&x, range(1, 2)),
            "the whole pack is forgotten, not only the chunk read"
        );
        assert_eq!(lock_unpoisoned(&cache.inner.state).used, 0);
        // Stored again, it is served again.
        cache.put(&x, 0, b"zero".to_vec()).await;
        cache.flush().await;
        assert_eq!(cache.read(&x, 0).unwrap(), b"zero");
    }

    #[tokio::test]
    async fn forgotten_chunks_stay_forgotten_in_the_next_process() {
        let dir = tempfile::tempdir().unwrap();
        let x = XetHash::from_bytes([5; 32]);
        let y = XetHash::from_bytes([6; 32]);
        {
            let cache = ChunkCache::open(dir.path(), 1 << 20).unwrap();
            for i in 0..4 {
                cache.put(&x, i, vec![i as u8; 100]).await;
            }
            cache.put(&y, 1, b"other".to_vec()).await;
            // Not flushed: forgetting waits for the writer.
            cache.forget(&x, range(1, 3)).await;
            assert!(!cache.has_all(&x, range(1, 2)));
            assert!(!cache.has_all(&x, range(2, 3)));
            assert!(cache.has_all(&x, range(0, 1)) && cache.has_all(&x, range(3, 4)));
        }
        let cache = ChunkCache::open(dir.path(), 1 << 20).unwrap();
        assert!(!cache.has_all(&x, range(1, 2)), "came back after a reopen");
        assert!(!cache.has_all(&x, range(2, 3)), "came back after a reopen");
        assert_eq!(cache.read(&x, 3).unwrap(), vec![3u8; 100], "walked past");
        assert_eq!(cache.read(&x, 0).unwrap(), vec![0u8; 100]);
        assert_eq!(cache.read(&y, 1).unwrap(), b"other");
        // Right bytes stored again are served, now and after a reopen.
        cache.put(&x, 1, vec![9u8; 100]).await;
        cache.flush().await;
        drop(cache);
        let cache = ChunkCache::open(dir.path(), 1 << 20).unwrap();
        assert_eq!(cache.read(&x, 1).unwrap(), vec![9u8; 100]);
    }

    fn pack_bytes(dir: &Path) -> u64 {
        packs(dir)
            .iter()
            .map(|p| std::fs::metadata(p).unwrap().len())
            .sum()
    }

    /// Three chunks of a thousand bytes each, as they lie in a downloaded file.
    fn linked(x: XetHash) -> Vec<LinkedChunk> {
        (0..3u32)
            .map(|i| LinkedChunk {
                xorb: x,
                index: i,
                at: u64::from(i) * 1000,
                len: 1000,
            })
            .collect()
    }

    #[tokio::test]
    async fn a_linked_chunk_is_read_from_its_file_and_refused_once_the_file_changed() {
        let dir = tempfile::tempdir().unwrap();
        let files = tempfile::tempdir().unwrap();
        let file = files.path().join("model.gguf");
        let data: Vec<u8> = (0..3000u32).map(|i| (i * 7 + i / 13) as u8).collect();
        std::fs::write(&file, &data).unwrap();
        let x = XetHash::from_bytes([8; 32]);
        {
            let cache = ChunkCache::open(dir.path(), 1 << 20).unwrap();
            cache.link(&file, linked(x)).await;
            cache.flush().await;
            assert!(cache.has_all(&x, range(0, 3)));
            assert_eq!(cache.read(&x, 1).unwrap(), &data[1000..2000]);
            assert!(
                pack_bytes(dir.path()) < 1000,
                "the chunks were copied into the cache: {} bytes",
                pack_bytes(dir.path())
            );
        }
        let cache = ChunkCache::open(dir.path(), 1 << 20).unwrap();
        assert!(
            cache.has_all(&x, range(0, 3)),
            "found again by a new process"
        );
        assert_eq!(cache.read(&x, 0).unwrap(), &data[..1000]);
        // Another name for the file (the catalog links a file that is the same into another
        // entry), and that name gone again: still the same file.
        let other_name = files.path().join("other.gguf");
        std::fs::hard_link(&file, &other_name).unwrap();
        std::fs::remove_file(&other_name).unwrap();
        assert_eq!(cache.read(&x, 2).unwrap(), &data[2000..]);
        // Replaced since it was linked, even by a file whose other chunks are the same bytes
        // (as another revision's file would be): it is no longer the file that was verified,
        // so none of its chunks is served, and each is forgotten.
        let mut changed = data.clone();
        changed[1500] ^= 1;
        let new = files.path().join("model.gguf.new");
        std::fs::write(&new, &changed).unwrap();
        std::fs::rename(&new, &file).unwrap();
        assert_eq!(cache.read(&x, 1), None);
        assert!(!cache.has_all(&x, range(1, 2)));
        assert_eq!(cache.read(&x, 2), None);
        // Gone (the model was removed): refused as well.
        std::fs::remove_file(&file).unwrap();
        assert_eq!(cache.read(&x, 0), None);
        assert!(!cache.has_all(&x, range(0, 1)));
    }

    #[tokio::test]
    async fn a_link_another_process_forgot_is_not_served() {
        let dir = tempfile::tempdir().unwrap();
        let files = tempfile::tempdir().unwrap();
        let file = files.path().join("model.gguf");
        std::fs::write(&file, vec![4u8; 3000]).unwrap();
        let x = XetHash::from_bytes([12; 32]);
        let one = ChunkCache::open(dir.path(), 1 << 20).unwrap();
        one.link(&file, linked(x)).await;
        one.flush().await;
        let other = ChunkCache::open(dir.path(), 1 << 20).unwrap();
        assert!(other.has_all(&x, range(0, 3)));
        // A file rebuilt from chunk 1 failed its digest in the first process.
        one.forget(&x, range(1, 2)).await;
        assert_eq!(other.read(&x, 1), None);
        assert_eq!(other.read(&x, 2).unwrap(), vec![4u8; 1000]);
    }

    #[tokio::test]
    async fn a_linked_file_written_in_place_is_no_longer_served() {
        let dir = tempfile::tempdir().unwrap();
        let files = tempfile::tempdir().unwrap();
        let file = files.path().join("model.gguf");
        let data = vec![5u8; 3000];
        std::fs::write(&file, &data).unwrap();
        let modified = std::fs::metadata(&file).unwrap().modified().unwrap();
        let x = XetHash::from_bytes([10; 32]);
        let cache = ChunkCache::open(dir.path(), 1 << 20).unwrap();
        cache.link(&file, linked(x)).await;
        cache.flush().await;
        // The same size, a time set a second later: another file as far as a link can tell.
        std::fs::write(&file, vec![6u8; 3000]).unwrap();
        File::options()
            .write(true)
            .open(&file)
            .unwrap()
            .set_modified(modified + Duration::from_secs(1))
            .unwrap();
        assert_eq!(cache.read(&x, 0), None);
        // A longer file, even with the old time put back.
        std::fs::write(&file, vec![5u8; 3001]).unwrap();
        File::options()
            .write(true)
            .open(&file)
            .unwrap()
            .set_modified(modified)
            .unwrap();
        assert_eq!(cache.read(&x, 1), None);
    }

    /// A pack written by an earlier build links chunks by their hash: still served while the
    /// bytes match it, and refused once they do not.
    #[tokio::test]
    async fn an_earlier_builds_links_are_checked_by_their_hash() {
        let dir = tempfile::tempdir().unwrap();
        let files = tempfile::tempdir().unwrap();
        let file = files.path().join("model.gguf");
        let data: Vec<u8> = (0..2000u32).map(|i| (i * 3) as u8).collect();
        std::fs::write(&file, &data).unwrap();
        let x = XetHash::from_bytes([11; 32]);
        let mut pack = Vec::new();
        for i in 0..2u32 {
            let chunk = &data[i as usize * 1000..][..1000];
            let path = file.as_os_str().as_encoded_bytes();
            pack.extend_from_slice(b"XCL1");
            pack.extend_from_slice(x.as_bytes());
            pack.extend_from_slice(&i.to_le_bytes());
            pack.extend_from_slice(&(12 + path.len() as u32).to_le_bytes());
            pack.extend_from_slice(chunk_hash(chunk).as_bytes());
            pack.extend_from_slice(&(u64::from(i) * 1000).to_le_bytes());
            pack.extend_from_slice(&1000u32.to_le_bytes());
            pack.extend_from_slice(path);
        }
        std::fs::write(dir.path().join("1-1-1.pack"), &pack).unwrap();
        let cache = ChunkCache::open(dir.path(), 1 << 20).unwrap();
        assert_eq!(cache.read(&x, 0).unwrap(), &data[..1000]);
        let mut changed = data.clone();
        changed[1500] ^= 1;
        std::fs::write(&file, &changed).unwrap();
        assert_eq!(cache.read(&x, 1), None);
    }

    #[tokio::test]
    async fn forgotten_and_torn_links_are_not_served_after_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let files = tempfile::tempdir().unwrap();
        let file = files.path().join("model.gguf");
        let data: Vec<u8> = (0..3000u32).map(|i| (i * 11) as u8).collect();
        std::fs::write(&file, &data).unwrap();
        let x = XetHash::from_bytes([9; 32]);
        {
            let cache = ChunkCache::open(dir.path(), 1 << 20).unwrap();
            cache.link(&file, linked(x)).await;
            // A chunk of a file that failed its digest, as the source forgets it.
            cache.forget(&x, range(0, 1)).await;
            assert!(!cache.has_all(&x, range(0, 1)));
        }
        let pack = &packs(dir.path())[0];
        let len = std::fs::metadata(pack).unwrap().len();
        // As a kill -9 in the middle of writing the last link leaves it.
        File::options()
            .write(true)
            .open(pack)
            .unwrap()
            .set_len(len - 3)
            .unwrap();
        let cache = ChunkCache::open(dir.path(), 1 << 20).unwrap();
        assert!(
            !cache.has_all(&x, range(0, 1)),
            "the forgotten link came back"
        );
        assert_eq!(cache.read(&x, 1).unwrap(), &data[1000..2000]);
        assert!(!cache.has_all(&x, range(2, 3)), "the torn link is indexed");
    }

    #[test]
    fn folders_of_the_old_one_file_per_chunk_layout_are_removed() {
        let dir = tempfile::tempdir().unwrap();
        let old = dir.path().join("ab".repeat(32));
        std::fs::create_dir_all(&old).unwrap();
        std::fs::write(old.join("0"), b"chunk").unwrap();
        // Not the old layout: left alone.
        let other = dir.path().join("notes");
        std::fs::create_dir_all(&other).unwrap();
        let short = dir.path().join("ab".repeat(31));
        std::fs::create_dir_all(&short).unwrap();
        let _cache = ChunkCache::open(dir.path(), 1 << 20).unwrap();
        assert!(!old.exists(), "the old layout is still there");
        assert!(other.exists() && short.exists());
    }

    /// The cache's lock is not held across file I/O: a pack whose open blocks (here a FIFO
    /// in its place, as a slow or hung filesystem would) stalls only the read that needs it.
    #[tokio::test(flavor = "multi_thread")]
    async fn a_read_stuck_in_file_io_does_not_hold_up_the_cache() {
        let dir = tempfile::tempdir().unwrap();
        let x = XetHash::from_bytes([4; 32]);
        {
            let cache = ChunkCache::open(dir.path(), 1 << 20).unwrap();
            cache.put(&x, 0, b"zero".to_vec()).await;
            cache.flush().await;
        }
        let cache = Arc::new(ChunkCache::open(dir.path(), 1 << 20).unwrap());
        let pack = packs(dir.path()).remove(0);
        std::fs::remove_file(&pack).unwrap();
        let made = std::process::Command::new("mkfifo")
            .arg(&pack)
            .status()
            .unwrap();
        assert!(made.success());
        // Opening a FIFO blocks until its other end is opened.
        let reader = {
            let cache = cache.clone();
            std::thread::spawn(move || cache.read(&x, 0))
        };
        // A head start for the read, so that it is inside the open when the cache is asked.
        std::thread::sleep(Duration::from_millis(200));
        let (tx, rx) = std::sync::mpsc::channel();
        {
            let cache = cache.clone();
            std::thread::spawn(move || tx.send(cache.has_all(&x, range(0, 1))));
        }
        let answered = rx.recv_timeout(Duration::from_secs(10));
        // Both ends at once: every open of the FIFO goes through, and the read fails.
        let _ends = File::options().read(true).write(true).open(&pack).unwrap();
        assert_eq!(reader.join().unwrap(), None);
        assert_eq!(
            answered,
            Ok(true),
            "the cache was locked during the read's I/O"
        );
        assert!(
            !cache.has_all(&x, range(0, 1)),
            "the unreadable pack is forgotten"
        );
    }
}
