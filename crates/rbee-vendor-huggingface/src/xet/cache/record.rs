//! The records of a pack on disk: writing a batch of them, and walking a pack's headers.
//!
//! ```text
//! header: magic (4) | xorb hash (32) | chunk index (u32 LE) | length (u32 LE) | chunk hash (32)
//! "XCR1" header | the chunk's bytes (length of them)
//! "XCL1" header | offset in the file (u64 LE) | chunk length (u32 LE) | the file's path (rest)
//! "XCR0" either, forgotten: walked past by its length, never indexed
//! ```

use std::collections::HashMap;
use std::ffi::OsStr;
use std::fs::File;
use std::io::{IoSlice, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::Arc;

use rbee_xet::{XetHash, chunk_hash};

/// A chunk's bytes, kept in the pack.
const MAGIC: &[u8; 4] = b"XCR1";
/// Where a chunk lies in a file outside the cache (a verified download in the catalog).
const MAGIC_LINK: &[u8; 4] = b"XCL1";
/// A forgotten record of either kind: same layout, skipped by the walk.
pub(super) const MAGIC_FORGOTTEN: &[u8; 4] = b"XCR0";
pub(super) const HEADER_LEN: usize = 4 + 32 + 4 + 4 + 32;
/// Far above any chunk the Hub makes (128 KiB): a length past it is a damaged header.
pub(super) const MAX_RECORD: u32 = 16 << 20;
/// A link's fixed payload: the offset in the file and the chunk's length.
const LINK_FIXED: usize = 8 + 4;

/// A chunk: the xorb it is in and its index there.
pub(super) type Key = (XetHash, u32);

/// What a record holds.
#[derive(Debug, Clone)]
pub(super) enum Record {
    /// The chunk's bytes.
    Chunk(Arc<Vec<u8>>),
    /// Where the chunk lies in `path`, and the hash its bytes there must have.
    Link {
        path: Arc<Path>,
        at: u64,
        len: u32,
        hash: XetHash,
    },
}

/// A record found at `offset` of a pack: a chunk of `len` bytes, there or (`file`) at an offset
/// of another file.
#[derive(Debug, Clone)]
pub(super) struct Found {
    pub offset: u64,
    pub len: u32,
    pub file: Option<(Arc<Path>, u64)>,
}

/// A record's key, the length after its header and the chunk hash, and what it is.
pub(super) struct Header {
    pub key: Key,
    pub len: u32,
    pub hash: [u8; 32],
    pub kind: Kind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    Chunk,
    Link,
    Forgotten,
}

pub(super) fn parse_header(h: &[u8; HEADER_LEN]) -> Option<Header> {
    let kind = match &h[..4] {
        m if m == MAGIC => Kind::Chunk,
        m if m == MAGIC_LINK => Kind::Link,
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
            Record::Chunk(data) => (MAGIC, data.len(), chunk_hash(data)),
            Record::Link {
                path,
                at,
                len,
                hash,
                ..
            } => {
                let mut payload = Vec::with_capacity(LINK_FIXED + path.as_os_str().len());
                payload.extend_from_slice(&at.to_le_bytes());
                payload.extend_from_slice(&len.to_le_bytes());
                payload.extend_from_slice(path.as_os_str().as_bytes());
                let n = payload.len();
                payloads.push(payload);
                (MAGIC_LINK, n, *hash)
            }
        };
        let mut header = [0u8; HEADER_LEN];
        header[..4].copy_from_slice(magic);
        header[4..36].copy_from_slice(xorb.as_bytes());
        header[36..40].copy_from_slice(&index.to_le_bytes());
        header[40..44].copy_from_slice(&(len as u32).to_le_bytes());
        header[44..].copy_from_slice(hash.as_bytes());
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

/// The live records of a pack of `size` bytes, up to the first one that is damaged or cut
/// short. Reads only the headers (and the short payloads of links), each where it is: a
/// buffered reader would pull in most of the bytes between them. `paths` shares one copy of
/// each linked file's path across packs.
pub(super) fn walk_pack(
    path: &Path,
    size: u64,
    paths: &mut HashMap<Vec<u8>, Arc<Path>>,
) -> Vec<(Key, Found)> {
    let mut out = Vec::new();
    let Ok(file) = File::open(path) else {
        return out;
    };
    let mut offset = 0u64;
    let mut header = [0u8; HEADER_LEN];
    while offset + HEADER_LEN as u64 <= size {
        if file.read_exact_at(&mut header, offset).is_err() {
            break;
        }
        let Some(h) = parse_header(&header) else {
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
            Kind::Link => {
                let mut payload = vec![0u8; h.len as usize];
                if (h.len as usize) <= LINK_FIXED
                    || file
                        .read_exact_at(&mut payload, offset + HEADER_LEN as u64)
                        .is_err()
                {
                    break;
                }
                let at = u64::from_le_bytes(payload[..8].try_into().expect("8 bytes"));
                let len = u32::from_le_bytes(payload[8..12].try_into().expect("4 bytes"));
                let name = payload.split_off(LINK_FIXED);
                let linked = paths
                    .entry(name)
                    .or_insert_with_key(|n| Arc::from(Path::new(OsStr::from_bytes(n))))
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
