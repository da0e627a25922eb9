//! Reading chunks back: from a pack, checked by their hash, or from the file a link names,
//! while it is still the file that was linked.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::Arc;
use std::time::SystemTime;

use rbee_artifact::lock_unpoisoned;
use rbee_xet::{XetHash, chunk_hash};

use super::record::{FileIdentity, HEADER_LEN, Key, Kind, LinkedFile, parse_header};
use super::{ChunkCache, Loc, TOUCH_EVERY};

impl ChunkCache {
    /// Chunk `index` of `xorb`, when stored and still good (see [`read_into`](Self::read_into)).
    pub fn read(&self, xorb: &XetHash, index: u32) -> Option<Vec<u8>> {
        let mut out = Vec::new();
        self.read_into(xorb, index, &mut out, &mut None)
            .then_some(out)
    }

    /// Appends chunk `index` of `xorb` to `out`, when stored and still good: a record in a pack
    /// that matches its hash, or a link whose file is still the one linked (a damaged record
    /// is forgotten; a pack that cannot be read any more, as when another process evicted it,
    /// is forgotten whole). `out` is left as it was when not. `held` keeps the last linked file
    /// open between calls, so that reading a run of chunks from one file opens it once.
    /// Counts as a use of its pack for eviction. Blocking file I/O, done outside the cache's
    /// lock.
    pub fn read_into(
        &self,
        xorb: &XetHash,
        index: u32,
        out: &mut Vec<u8>,
        held: &mut Option<HeldFile>,
    ) -> bool {
        let key = (*xorb, index);
        let found = {
            let mut state = lock_unpoisoned(&self.inner.state);
            if let Some(data) = state.pending.get(&key) {
                out.extend_from_slice(data);
                return true;
            }
            let Some(loc) = state.index.get(&key).cloned() else {
                return false;
            };
            let Some(pack) = state.packs.get_mut(loc.pack).and_then(Option::as_mut) else {
                return false;
            };
            let now = SystemTime::now();
            pack.last_used = now;
            let touch = pack
                .touched
                .is_none_or(|t| now.duration_since(t).unwrap_or_default() >= TOUCH_EVERY);
            if touch {
                pack.touched = Some(now);
            }
            (
                loc,
                pack.path.clone(),
                pack.file.clone(),
                touch.then_some(now),
            )
        };
        let (loc, path, file, touch) = found;
        if let Some(now) = touch
            && let Ok(f) = File::options().append(true).open(&path)
        {
            let _ = f.set_modified(now);
        }
        let file = match file {
            Some(f) => f,
            None => match File::open(&path) {
                Ok(f) => {
                    let f = Arc::new(f);
                    let mut state = lock_unpoisoned(&self.inner.state);
                    if let Some(Some(pack)) = state.packs.get_mut(loc.pack) {
                        pack.file.get_or_insert_with(|| f.clone());
                    }
                    f
                }
                Err(e) => {
                    self.inner.forget_pack(loc.pack, &path, &e);
                    return false;
                }
            },
        };
        let start = out.len();
        let intact = match &loc.file {
            Some((linked, at)) => self.read_linked(key, &file, &loc, linked, *at, out, held),
            None => self.read_stored(key, &file, &loc, &path, out),
        };
        if !intact {
            out.truncate(start);
        }
        intact
    }

    /// A chunk kept in the pack `file`: appended to `out` when it matches its hash.
    fn read_stored(
        &self,
        key: Key,
        file: &File,
        loc: &Loc,
        path: &Path,
        out: &mut Vec<u8>,
    ) -> bool {
        let mut header = [0u8; HEADER_LEN];
        let start = out.len();
        out.resize(start + loc.len as usize, 0);
        let read = file
            .read_exact_at(&mut header, loc.offset)
            .and_then(|()| file.read_exact_at(&mut out[start..], loc.offset + HEADER_LEN as u64));
        if let Err(e) = read {
            self.inner.forget_pack(loc.pack, path, &e);
            return false;
        }
        let intact = parse_header(&header).is_some_and(|h| {
            h.kind == Kind::Chunk
                && h.key == key
                && h.len == loc.len
                && chunk_hash(&out[start..]).as_bytes() == &h.hash
        });
        if !intact {
            tracing::warn!(dir = %self.inner.dir.display(), "a cached Xet chunk no longer matches its hash; forgetting it");
            lock_unpoisoned(&self.inner.state).index.remove(&key);
        }
        intact
    }

    /// A linked chunk: appended to `out` from the file it names, only while that file is the
    /// one that was linked (for an earlier build's link: while the bytes match the hash in its
    /// record). A file changed or gone since costs only its chunks, each forgotten when read
    /// (and fetched again by the caller).
    #[allow(clippy::too_many_arguments)] // One chunk's place, and where it goes.
    fn read_linked(
        &self,
        key: Key,
        pack: &File,
        loc: &Loc,
        linked: &Arc<LinkedFile>,
        at: u64,
        out: &mut Vec<u8>,
        held: &mut Option<HeldFile>,
    ) -> bool {
        // The record is read again: another process may have forgotten it since.
        let mut header = [0u8; HEADER_LEN];
        let record = pack
            .read_exact_at(&mut header, loc.offset)
            .ok()
            .and_then(|()| parse_header(&header))
            .filter(|h| h.key == key && matches!(h.kind, Kind::Link | Kind::HashedLink));
        let start = out.len();
        let intact = record.is_some_and(|h| {
            out.resize(start + loc.len as usize, 0);
            open_linked(linked, held)
                .is_some_and(|file| file.read_exact_at(&mut out[start..], at).is_ok())
                && (h.kind == Kind::Link || chunk_hash(&out[start..]).as_bytes() == &h.hash)
        });
        if !intact {
            tracing::debug!(file = %linked.path.display(), "a file the Xet chunk cache links to changed or is gone; forgetting the chunk");
            lock_unpoisoned(&self.inner.state).index.remove(&key);
        }
        intact
    }
}

/// A linked file held open between reads of its chunks (see [`ChunkCache::read_into`]).
#[derive(Debug)]
pub struct HeldFile {
    linked: Arc<LinkedFile>,
    /// `None`: it is not the file that was linked any more, or it is gone.
    file: Option<File>,
}

/// The file `linked` names, opened, when it is still the file that was linked; from `held`
/// when it holds it already.
fn open_linked<'a>(linked: &Arc<LinkedFile>, held: &'a mut Option<HeldFile>) -> Option<&'a File> {
    if !held
        .as_ref()
        .is_some_and(|h| Arc::ptr_eq(&h.linked, linked))
    {
        let file = File::open(&linked.path).ok().filter(|file| {
            linked.identity.is_none_or(|was| {
                file.metadata()
                    .is_ok_and(|now| FileIdentity::of(&now) == was)
            })
        });
        *held = Some(HeldFile {
            linked: linked.clone(),
            file,
        });
    }
    held.as_ref()?.file.as_ref()
}
