//! The records of a pack on disk: writing a batch of them, and walking a pack's headers.
//!
//! ```text
//! header: magic (4) | xorb hash (32) | chunk index (u32 LE) | length (u32 LE) | chunk hash (32)
//! "XCR1" header | the chunk's bytes (length of them)
//! "XCL2" header (no chunk hash) | offset in the file (u64 LE) | chunk length (u32 LE)
//!        | the file's device, inode, size and modification time (u64 LE each) | its path (rest)
//! "XCL1" header | offset in the file (u64 LE) | chunk length (u32 LE) | the file's path (rest)
//!        (written by earlier builds: checked by the chunk hash in its header)
//! "XCR0" any of them, forgotten: walked past by its length, never indexed
//! ```
//!
//! A link names the file as it was when its download was verified, so its chunks are served
//! while the file is still that file, without hashing each chunk as it is downloaded. A file
//! changed without changing any of those (an in-place write that puts its time back) serves
//! wrong chunks: the file rebuilt from them fails its digest, and they are forgotten.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::fs::File;
use std::io::{IoSlice, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub(super) use rbee_artifact::FileIdentity;
use rbee_xet::{XetHash, chunk_hash};

/// A chunk's bytes, kept in the pack.
const MAGIC: &[u8; 4] = b"XCR1";
/// Where a chunk lies in a file outside the cache (a verified download in the catalog), and
/// what that file was then.
const MAGIC_LINK: &[u8; 4] = b"XCL2";
/// A link of an earlier build, checked by the chunk's hash.
const MAGIC_HASHED_LINK: &[u8; 4] = b"XCL1";
/// A forgotten record of either kind: same layout, skipped by the walk.
pub(super) const MAGIC_FORGOTTEN: &[u8; 4] = b"XCR0";
pub(super) const HEADER_LEN: usize = 4 + 32 + 4 + 4 + 32;
/// Far above any chunk the Hub makes (128 KiB): a length past it is a damaged header.
pub(super) const MAX_RECORD: u32 = 16 << 20;
/// A link's fixed payload: the offset in the file and the chunk's length (and, but in an earlier
/// build's link, the file's identity).
const LINK_FIXED: usize = 8 + 4;

/// A chunk: the xorb it is in and its index there.
pub(super) type Key = (XetHash, u32);

/// What a record holds.
#[derive(Debug, Clone)]
pub(super) enum Record {
    /// The chunk's bytes.
    Chunk(Arc<Vec<u8>>),
    /// Where the chunk lies in a file.
    Link {
        file: Arc<LinkedFile>,
        at: u64,
        len: u32,
    },
}

/// A file chunks are linked into, and what it was when they were.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct LinkedFile {
    pub path: PathBuf,
    /// `None` for an earlier build's link, whose chunk hash is checked instead.
    pub identity: Option<FileIdentity>,
}

/// A record found at `offset` of a pack: a chunk of `len` bytes, there or (`file`) at an offset
/// of another file.
#[derive(Debug, Clone)]
pub(super) struct Found {
    pub offset: u64,
    pub len: u32,
    pub file: Option<(Arc<LinkedFile>, u64)>,
}

/// A record's key, the length after its header and the chunk hash, and what it is.
pub(super) struct Header {
    pub key: Key,
    pub len: u32,
    pub hash: [u8; 32],
    pub kind: Kind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(super) enum Kind {
    Chunk,
    Link,
    HashedLink,
    Forgotten,
}

pub(super) fn parse_header(h: &[u8; HEADER_LEN]) -> Option<Header> {
    let kind = match &h[..4] {
        m if m == MAGIC => Kind::Chunk,
        m if m == MAGIC_LINK => Kind::Link,
        m if m == MAGIC_HASHED_LINK => Kind::HashedLink,
        m if m == MAGIC_FORGOTTEN => Kind::Forgotten,
        _ => return None,
    };
    let xorb = XetHash::from_bytes(h[4..36].try_into().ok()?);
    let index = u32::from_le_bytes(h[36..40].try_into().ok()?);
    let len = u32::from_le_bytes(h[40..44].try_into().ok()?);
    let hash: [u8; 32] = h[44..76].try_into().ok()?;
    (len <= MAX_RECORD).then_some(Header {
        key: (xorb, index),
        len,
        hash,
        kind,
    })
}

/// Appends `batch` to `out` with as few system calls as the kernel allows: headers and link
/// payloads are gathered, each chunk's bytes go from where they are. Returns where each
/// record starts, relative to the first, and the bytes written.
pub(super) fn write_batch(
    out: &mut File,
    batch: &[(Key, Record)],
) -> std::io::Result<(Vec<u64>, u64)> {
    let mut headers = Vec::with_capacity(batch.len());
    let mut payloads: Vec<Vec<u8>> = Vec::new();
    let mut starts = Vec::with_capacity(batch.len());
    let mut written = 0u64;
    for ((xorb, index), record) in batch {
        let (magic, len, hash) = match record {
            Record::Chunk(data) => (MAGIC, data.len(), *chunk_hash(data).as_bytes()),
            Record::Link { file, at, len } => {
                let path = file.path.as_os_str().as_bytes();
                let mut payload = Vec::with_capacity(LINK_FIXED + FileIdentity::LEN + path.len());
                payload.extend_from_slice(&at.to_le_bytes());
                payload.extend_from_slice(&len.to_le_bytes());
                let identity = file.identity.ok_or_else(|| {
                    std::io::Error::other("a link is written with the identity of its file")
                })?;
                payload.extend_from_slice(&identity.to_bytes());
                payload.extend_from_slice(path);
                let n = payload.len();
                payloads.push(payload);
                (MAGIC_LINK, n, [0; 32])
            }
        };
        let mut header = [0u8; HEADER_LEN];
        header[..4].copy_from_slice(magic);
        header[4..36].copy_from_slice(xorb.as_bytes());
        header[36..40].copy_from_slice(&index.to_le_bytes());
        header[40..44].copy_from_slice(&(len as u32).to_le_bytes());
        header[44..].copy_from_slice(&hash);
        headers.push(header);
        starts.push(written);
        written += (HEADER_LEN + len) as u64;
    }
    let mut payloads = payloads.iter();
    let mut slices: Vec<IoSlice<'_>> = Vec::with_capacity(batch.len() * 2);
    for (header, (_, record)) in headers.iter().zip(batch) {
        slices.push(IoSlice::new(header));
        slices.push(IoSlice::new(match record {
            Record::Chunk(data) => data,
            Record::Link { .. } => payloads.next().expect("one payload per link"),
        }));
    }
    write_all_vectored(out, &mut slices)?;
    Ok((starts, written))
}

/// `Write::write_all_vectored`, which is not stable.
fn write_all_vectored(out: &mut File, mut slices: &mut [IoSlice<'_>]) -> std::io::Result<()> {
    while !slices.is_empty() {
        let n = match out.write_vectored(slices) {
            Ok(0) => return Err(std::io::ErrorKind::WriteZero.into()),
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        IoSlice::advance_slices(&mut slices, n);
    }
    Ok(())
}

/// How much of a pack one read takes in while walking it: a page, so that a walk reads about
/// one page per chunk record (a buffered reader would pull in the chunk's bytes too) and one
/// read for a run of twenty-odd links (a read per header made opening a cache of a few linked
/// models take hundreds of thousands of calls).
const WALK_WINDOW: usize = 4096;

/// A pack read a window at a time, for walking its records.
struct Windowed {
    file: File,
    size: u64,
    window: Vec<u8>,
    /// Where in the pack `window` starts.
    start: u64,
}

impl Windowed {
    /// The `len` bytes at `offset`, from the window when it holds them, else from a new one
    /// read there.
    fn at(&mut self, offset: u64, len: usize) -> Option<&[u8]> {
        let end = offset.checked_add(len as u64)?;
        if end > self.size {
            return None;
        }
        let held = self.start..self.start + self.window.len() as u64;
        if !(held.contains(&offset) && end <= held.end) {
            let want = len
                .max(WALK_WINDOW)
                .min(usize::try_from(self.size - offset).ok()?);
            self.window.resize(want, 0);
            self.file.read_exact_at(&mut self.window, offset).ok()?;
            self.start = offset;
        }
        let from = usize::try_from(offset - self.start).ok()?;
        self.window.get(from..from + len)
    }
}

/// The live records of a pack of `size` bytes, up to the first one that is damaged or cut
/// short. Reads the headers (and the short payloads of links), a window at a time (see
/// [`WALK_WINDOW`]). `files` shares one copy of each linked file across packs.
pub(super) fn walk_pack(
    path: &Path,
    size: u64,
    files: &mut HashMap<(Kind, Vec<u8>), Arc<LinkedFile>>,
) -> Vec<(Key, Found)> {
    let mut out = Vec::new();
    let Ok(file) = File::open(path) else {
        return out;
    };
    let mut pack = Windowed {
        file,
        size,
        window: Vec::new(),
        start: 0,
    };
    let mut offset = 0u64;
    while offset + HEADER_LEN as u64 <= size {
        let Some(header) = pack.at(offset, HEADER_LEN) else {
            break;
        };
        let Some(h) = parse_header(header.try_into().expect("a header's length")) else {
            break;
        };
        let end = offset + HEADER_LEN as u64 + u64::from(h.len);
        if end > size {
            break;
        }
        match h.kind {
            Kind::Chunk => out.push((
                h.key,
                Found {
                    offset,
                    len: h.len,
                    file: None,
                },
            )),
            kind @ (Kind::Link | Kind::HashedLink) => {
                let fixed = match kind {
                    Kind::Link => LINK_FIXED + FileIdentity::LEN,
                    _ => LINK_FIXED,
                };
                if (h.len as usize) <= fixed {
                    break;
                }
                let Some(payload) = pack.at(offset + HEADER_LEN as u64, h.len as usize) else {
                    break;
                };
                let mut payload = payload.to_vec();
                let at = u64::from_le_bytes(payload[..8].try_into().expect("8 bytes"));
                let len = u32::from_le_bytes(payload[8..12].try_into().expect("4 bytes"));
                let named = payload.split_off(LINK_FIXED);
                let linked = files
                    .entry((kind, named))
                    .or_insert_with_key(|(_, named)| {
                        let (identity, path) = match kind {
                            Kind::Link => {
                                let (identity, path) = named.split_at(FileIdentity::LEN);
                                let identity =
                                    identity.try_into().ok().map(FileIdentity::from_bytes);
                                (identity, path)
                            }
                            _ => (None, &named[..]),
                        };
                        Arc::new(LinkedFile {
                            path: Path::new(OsStr::from_bytes(path)).to_path_buf(),
                            identity,
                        })
                    })
                    .clone();
                out.push((
                    h.key,
                    Found {
                        offset,
                        len,
                        file: Some((linked, at)),
                    },
                ));
            }
            Kind::Forgotten => {}
        }
        offset = end;
    }
    if offset < size {
        tracing::debug!(pack = %path.display(), valid = offset, size, "a Xet chunk pack ends in a damaged or unfinished record; the rest is ignored");
    }
    out
}
