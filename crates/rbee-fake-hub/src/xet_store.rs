//! The fake CAS's content: files cut into chunks, chunks packed into xorbs on disk, with
//! dedup across every file the hub has stored (as the Hub's global dedup does).

use std::collections::HashMap;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::SystemTime;

use rbee_xet::cas::ChunkRange;
use rbee_xet::{Chunker, CompressionScheme, XetHash, XorbBuilder, XorbChunk, file_hash};

/// One stored xorb: where its bytes are and where each chunk sits in them.
#[derive(Debug)]
pub(crate) struct StoredXorb {
    pub(crate) path: PathBuf,
    pub(crate) chunks: Vec<XorbChunk>,
}

/// A run of consecutive chunks of one xorb, in file order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Term {
    pub(crate) xorb: XetHash,
    pub(crate) range: ChunkRange,
    /// Where the term's bytes start in the file.
    pub(crate) file_start: u64,
    /// The term's bytes once decoded.
    pub(crate) len: u64,
}

/// A file as the CAS knows it.
#[derive(Debug)]
pub(crate) struct StoredFile {
    pub(crate) hash: XetHash,
    pub(crate) size: u64,
    pub(crate) terms: Vec<Term>,
}

/// A file version: the cache key of a built file.
type FileKey = (PathBuf, u64, SystemTime);

#[derive(Debug, Default)]
struct Index {
    /// Every stored chunk, by hash: its xorb and index there.
    chunks: HashMap<XetHash, (XetHash, u32)>,
    xorbs: HashMap<XetHash, Arc<StoredXorb>>,
    files: HashMap<XetHash, Arc<StoredFile>>,
    /// Repos (`org/name`) whose Xet files have each file hash: a CAS token reads only these.
    owners: HashMap<XetHash, Vec<String>>,
}

/// Built files and xorbs. Xorb bytes live in files under `dir`; the index is in memory
/// (about 100 bytes per 64 KiB chunk).
#[derive(Debug)]
pub(crate) struct XetStore {
    dir: tempfile::TempDir,
    scheme: CompressionScheme,
    xorb_bytes: usize,
    index: Mutex<Index>,
    builds: Mutex<HashMap<FileKey, Arc<tokio::sync::OnceCell<Arc<StoredFile>>>>>,
}

impl XetStore {
    pub(crate) fn new(scheme: CompressionScheme, xorb_bytes: usize) -> io::Result<Self> {
        Ok(Self {
            dir: tempfile::Builder::new()
                .prefix("fake-hub-xorbs")
                .tempdir()?,
            scheme,
            xorb_bytes,
            index: Mutex::default(),
            builds: Mutex::default(),
        })
    }

    /// Where the xorbs are kept.
    pub(crate) fn dir(&self) -> &Path {
        self.dir.path()
    }

    fn index(&self) -> std::sync::MutexGuard<'_, Index> {
        self.index.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The file at `path` (this size and modification time) stored as xorbs, built on first
    /// use (once, whoever asks at the same time), and readable with tokens of `repo`.
    pub(crate) async fn file(
        self: &Arc<Self>,
        path: &Path,
        size: u64,
        mtime: SystemTime,
        repo: &str,
    ) -> io::Result<Arc<StoredFile>> {
        let cell = self
            .builds
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry((path.to_path_buf(), size, mtime))
            .or_default()
            .clone();
        let store = self.clone();
        let owned = path.to_path_buf();
        let file = cell
            .get_or_try_init(|| async move {
                tokio::task::spawn_blocking(move || store.build(&owned))
                    .await
                    .map_err(io::Error::other)?
            })
            .await?
            .clone();
        let mut index = self.index();
        let owners = index.owners.entry(file.hash).or_default();
        if !owners.iter().any(|o| o == repo) {
            owners.push(repo.to_owned());
        }
        Ok(file)
    }

    /// A stored file by hash, if `repo` may read it.
    pub(crate) fn lookup(&self, hash: &XetHash, repo: &str) -> Option<Arc<StoredFile>> {
        let index = self.index();
        let owned = index
            .owners
            .get(hash)
            .is_some_and(|o| o.iter().any(|r| r == repo));
        owned.then(|| index.files.get(hash).cloned()).flatten()
    }

    /// A stored xorb by hash.
    pub(crate) fn xorb(&self, hash: &XetHash) -> Option<Arc<StoredXorb>> {
        self.index().xorbs.get(hash).cloned()
    }

    /// Reads `path` once, chunk by chunk: known chunks are referenced where they already are,
    /// new ones are packed into new xorbs (written out whenever one is full). Memory: one
    /// read buffer, one chunk, one xorb being packed.
    fn build(&self, path: &Path) -> io::Result<Arc<StoredFile>> {
        let mut file = std::fs::File::open(path)?;
        let mut builder = PendingXorb::new(self.scheme, self.xorb_bytes, 0);
        let mut sealed: HashMap<u64, XetHash> = HashMap::new();
        let mut placed: Vec<Placement> = Vec::new();
        let mut entries: Vec<(XetHash, u64)> = Vec::new();
        let mut chunker = Chunker::new();
        let mut chunk = Vec::with_capacity(rbee_xet::MAX_CHUNK_SIZE);
        let mut buf = vec![0u8; 1 << 20];
        loop {
            let n = file.read(&mut buf)?;
            if n == 0 {
                break;
            }
            let mut pos = 0;
            while let Some(len) = chunker.next_boundary(&buf[pos..n]) {
                chunk.extend_from_slice(&buf[pos..pos + len]);
                pos += len;
                self.place(&chunk, &mut builder, &mut sealed, &mut placed, &mut entries)?;
                chunk.clear();
            }
            chunk.extend_from_slice(&buf[pos..n]);
        }
        if chunker.finish().is_some() {
            self.place(&chunk, &mut builder, &mut sealed, &mut placed, &mut entries)?;
        }
        self.seal(builder, &mut sealed)?;

        let mut terms: Vec<Term> = Vec::new();
        let mut offset = 0u64;
        for p in placed {
            let xorb = match p.xorb {
                XorbRef::Stored(h) => h,
                XorbRef::Pending(seq) => sealed.get(&seq).copied().ok_or_else(|| {
                    io::Error::other("a pending xorb was never sealed (fake hub bug)")
                })?,
            };
            match terms.last_mut() {
                Some(t) if t.xorb == xorb && t.range.end == p.index => {
                    t.range.end += 1;
                    t.len += p.len;
                }
                _ => terms.push(Term {
                    xorb,
                    range: ChunkRange {
                        start: p.index,
                        end: p.index + 1,
                    },
                    file_start: offset,
                    len: p.len,
                }),
            }
            offset += p.len;
        }
        let stored = Arc::new(StoredFile {
            hash: file_hash(&entries),
            size: offset,
            terms,
        });
        self.index()
            .files
            .entry(stored.hash)
            .or_insert_with(|| stored.clone());
        tracing::debug!(path = %path.display(), hash = %stored.hash, terms = stored.terms.len(), "file stored as xorbs");
        Ok(stored)
    }

    /// Places one chunk: where it already is, or into the xorb being packed.
    fn place(
        &self,
        data: &[u8],
        builder: &mut PendingXorb,
        sealed: &mut HashMap<u64, XetHash>,
        placed: &mut Vec<Placement>,
        entries: &mut Vec<(XetHash, u64)>,
    ) -> io::Result<()> {
        let hash = rbee_xet::chunk_hash(data);
        let len = data.len() as u64;
        entries.push((hash, len));
        let known = self.index().chunks.get(&hash).copied();
        let known = known.map(|(xorb, index)| (XorbRef::Stored(xorb), index));
        let (xorb, index) = match known.or_else(|| builder.find(&hash)) {
            Some((xorb, index)) => (xorb, index),
            None => {
                if !builder.inner.has_room_for(data.len()) {
                    let full = std::mem::replace(
                        builder,
                        PendingXorb::new(self.scheme, self.xorb_bytes, builder.seq + 1),
                    );
                    self.seal(full, sealed)?;
                }
                let index = builder.inner.chunk_count() as u32;
                builder.inner.push(data).map_err(io::Error::other)?;
                builder.local.insert(hash, index);
                (XorbRef::Pending(builder.seq), index)
            }
        };
        placed.push(Placement { xorb, index, len });
        Ok(())
    }

    /// Writes a packed xorb out, indexes its chunks and records its hash in `sealed` under
    /// its sequence number, so placements in it can be resolved.
    fn seal(&self, pending: PendingXorb, sealed: &mut HashMap<u64, XetHash>) -> io::Result<()> {
        if !pending.inner.is_empty() {
            let xorb = pending.inner.finish();
            let path = self.dir.path().join(xorb.hash.to_hex());
            if !path.exists() {
                std::fs::write(&path, &xorb.bytes)?;
            }
            let mut index = self.index();
            for (i, c) in xorb.chunks.iter().enumerate() {
                index.chunks.entry(c.hash).or_insert((xorb.hash, i as u32));
            }
            index.xorbs.entry(xorb.hash).or_insert_with(|| {
                Arc::new(StoredXorb {
                    path,
                    chunks: xorb.chunks,
                })
            });
            sealed.insert(pending.seq, xorb.hash);
        }
        Ok(())
    }
}

/// Where a chunk of the file being built is.
#[derive(Debug, Clone, Copy)]
enum XorbRef {
    Stored(XetHash),
    /// In the xorb with this sequence number, not sealed yet.
    Pending(u64),
}

#[derive(Debug)]
struct Placement {
    xorb: XorbRef,
    index: u32,
    len: u64,
}

/// The xorb being packed for one file: its sequence number in the build, and its chunks by
/// hash (a chunk repeated within the file is stored once).
#[derive(Debug)]
struct PendingXorb {
    seq: u64,
    inner: XorbBuilder,
    local: HashMap<XetHash, u32>,
}

impl PendingXorb {
    fn new(scheme: CompressionScheme, max_bytes: usize, seq: u64) -> Self {
        Self {
            seq,
            inner: XorbBuilder::new(scheme).with_max_bytes(max_bytes),
            local: HashMap::new(),
        }
    }

    fn find(&self, hash: &XetHash) -> Option<(XorbRef, u32)> {
        self.local
            .get(hash)
            .map(|&i| (XorbRef::Pending(self.seq), i))
    }
}
