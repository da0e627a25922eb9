//! Xorbs: chunks stored one after another, each behind an 8-byte header. Building one, and
//! decoding any run of its chunks fetched by byte range.

use std::ops::Range;

use crate::chunking::MAX_CHUNK_SIZE;
use crate::compression::CompressionScheme;
use crate::error::XetError;
use crate::hash::{XetHash, chunk_hash, xorb_hash};

/// A xorb holds at most this many bytes.
pub const MAX_XORB_BYTES: usize = 64 * 1024 * 1024;
/// A xorb holds at most this many chunks.
pub const MAX_XORB_CHUNKS: usize = 8 * 1024;
/// The largest stored (compressed) chunk a header may declare; xet-core refuses more.
pub const MAX_ENCODED_CHUNK_SIZE: usize = 2 * MAX_CHUNK_SIZE;
/// The only chunk-header version there is.
const HEADER_VERSION: u8 = 0;

/// The 8 bytes before each chunk in a xorb: version, stored length (3 bytes, little-endian),
/// compression scheme, original length (3 bytes, little-endian).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChunkHeader {
    /// The stored (compressed) length of the chunk after this header.
    pub compressed_len: u32,
    /// How it is stored.
    pub scheme: CompressionScheme,
    /// The chunk's own length once decoded.
    pub uncompressed_len: u32,
}

impl ChunkHeader {
    /// Bytes in a header.
    pub const LEN: usize = 8;

    /// Reads and checks a header: known version and scheme, lengths within Xet's limits.
    pub fn parse(bytes: [u8; Self::LEN]) -> Result<Self, XetError> {
        if bytes[0] != HEADER_VERSION {
            return Err(XetError::BadChunkHeader {
                reason: format!("version {} (only {HEADER_VERSION} exists)", bytes[0]),
            });
        }
        let compressed_len = u32::from_le_bytes([bytes[1], bytes[2], bytes[3], 0]);
        let scheme = CompressionScheme::from_code(bytes[4])?;
        let uncompressed_len = u32::from_le_bytes([bytes[5], bytes[6], bytes[7], 0]);
        if compressed_len as usize > MAX_ENCODED_CHUNK_SIZE {
            return Err(XetError::BadChunkHeader {
                reason: format!(
                    "stored length {compressed_len} exceeds the limit of {MAX_ENCODED_CHUNK_SIZE}"
                ),
            });
        }
        if uncompressed_len as usize > MAX_CHUNK_SIZE {
            return Err(XetError::BadChunkHeader {
                reason: format!(
                    "chunk length {uncompressed_len} exceeds the limit of {MAX_CHUNK_SIZE}"
                ),
            });
        }
        Ok(Self {
            compressed_len,
            scheme,
            uncompressed_len,
        })
    }

    /// The header's bytes.
    pub fn to_bytes(&self) -> [u8; Self::LEN] {
        let c = self.compressed_len.to_le_bytes();
        let u = self.uncompressed_len.to_le_bytes();
        [
            HEADER_VERSION,
            c[0],
            c[1],
            c[2],
            self.scheme.code(),
            u[0],
            u[1],
            u[2],
        ]
    }
}

/// Appends one chunk, header and stored bytes, to `out`, and returns how many bytes it took.
///
/// Like xet-core, a chunk that `scheme` would not make smaller is stored as it is.
pub fn encode_chunk(
    data: &[u8],
    scheme: CompressionScheme,
    out: &mut Vec<u8>,
) -> Result<usize, XetError> {
    if data.len() > MAX_CHUNK_SIZE {
        return Err(XetError::ChunkTooLarge { len: data.len() });
    }
    let compressed = scheme.compress(data);
    let (scheme, stored) = if compressed.len() >= data.len() {
        (CompressionScheme::None, data)
    } else {
        (scheme, &compressed[..])
    };
    let header = ChunkHeader {
        compressed_len: stored.len() as u32,
        scheme,
        uncompressed_len: data.len() as u32,
    };
    out.extend_from_slice(&header.to_bytes());
    out.extend_from_slice(stored);
    Ok(ChunkHeader::LEN + stored.len())
}

/// Decodes the chunk at the start of `input`, appending its bytes to `out`; returns how many
/// bytes of `input` it used.
///
/// Checks everything: a whole header, a known scheme, lengths within limits, the stored bytes
/// present, and exactly the declared length once decoded. On error `out` is left as it was.
pub fn decode_chunk(input: &[u8], out: &mut Vec<u8>) -> Result<usize, XetError> {
    let Some((header_bytes, rest)) = input.split_first_chunk::<{ ChunkHeader::LEN }>() else {
        return Err(XetError::Truncated {
            needed: ChunkHeader::LEN,
            available: input.len(),
        });
    };
    let header = ChunkHeader::parse(*header_bytes)?;
    let stored_len = header.compressed_len as usize;
    let Some(stored) = rest.get(..stored_len) else {
        return Err(XetError::Truncated {
            needed: ChunkHeader::LEN + stored_len,
            available: input.len(),
        });
    };
    header
        .scheme
        .decompress_into(stored, header.uncompressed_len as usize, out)?;
    Ok(ChunkHeader::LEN + stored_len)
}

/// The decoded bytes of the chunk at the start of `input`, and how many bytes of `input` it
/// takes; `Ok(None)` while `input` does not hold all of it yet.
///
/// A chunk stored as it is comes back borrowed from `input`, so a streaming reader copies
/// nothing; a compressed one is decoded into `scratch` (cleared first). Checks as
/// [`decode_chunk`] does.
pub fn decode_chunk_borrowed<'a>(
    input: &'a [u8],
    scratch: &'a mut Vec<u8>,
) -> Result<Option<(&'a [u8], usize)>, XetError> {
    let Some((header_bytes, rest)) = input.split_first_chunk::<{ ChunkHeader::LEN }>() else {
        return Ok(None);
    };
    let header = ChunkHeader::parse(*header_bytes)?;
    let Some(stored) = rest.get(..header.compressed_len as usize) else {
        return Ok(None);
    };
    let used = ChunkHeader::LEN + stored.len();
    if header.scheme == CompressionScheme::None {
        if stored.len() != header.uncompressed_len as usize {
            return Err(XetError::LengthMismatch {
                declared: header.uncompressed_len as usize,
                actual: stored.len(),
            });
        }
        return Ok(Some((stored, used)));
    }
    scratch.clear();
    header
        .scheme
        .decompress_into(stored, header.uncompressed_len as usize, scratch)?;
    Ok(Some((&scratch[..], used)))
}

/// Decodes exactly `chunk_count` chunks filling all of `input` (a xorb byte range as fetched
/// with a reconstruction's `url_range`), returning each chunk's bytes.
///
/// Too few chunks, too many, or bytes left over are errors naming the chunk and offset.
pub fn decode_chunks(input: &[u8], chunk_count: usize) -> Result<Vec<Vec<u8>>, XetError> {
    let mut chunks = Vec::with_capacity(chunk_count.min(MAX_XORB_CHUNKS));
    let mut offset = 0;
    for index in 0..chunk_count {
        if offset == input.len() {
            return Err(XetError::ChunkCount {
                expected: chunk_count,
                found: index,
            });
        }
        let mut data = Vec::new();
        offset +=
            decode_chunk(&input[offset..], &mut data).map_err(|source| XetError::InChunk {
                index,
                offset,
                source: Box::new(source),
            })?;
        chunks.push(data);
    }
    if offset != input.len() {
        return Err(XetError::TrailingBytes {
            offset,
            len: input.len(),
        });
    }
    Ok(chunks)
}

/// Where one chunk sits in a xorb.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct XorbChunk {
    /// The chunk's hash.
    pub hash: XetHash,
    /// Its decoded length.
    pub len: u32,
    /// Byte offset of its header in the xorb.
    pub offset: u64,
    /// Bytes it takes in the xorb, header included.
    pub encoded_len: u32,
}

/// A finished xorb: its bytes, its hash, and where each chunk is.
#[derive(Debug, Clone)]
pub struct Xorb {
    /// The xorb's hash (aggregated from its chunks).
    pub hash: XetHash,
    /// The serialized chunks.
    pub bytes: Vec<u8>,
    /// The chunks in order.
    pub chunks: Vec<XorbChunk>,
}

impl Xorb {
    /// The byte range `[start, end)` covering chunks `range` (indices, end exclusive), or
    /// `None` when the range is empty or runs past the last chunk.
    pub fn byte_range(&self, range: Range<u32>) -> Option<Range<u64>> {
        chunk_byte_range(&self.chunks, range)
    }
}

/// The byte range in a xorb covering chunks `range`; see [`Xorb::byte_range`].
pub fn chunk_byte_range(chunks: &[XorbChunk], range: Range<u32>) -> Option<Range<u64>> {
    if range.start >= range.end {
        return None;
    }
    let first = chunks.get(range.start as usize)?;
    let last = chunks.get(range.end as usize - 1)?;
    Some(first.offset..last.offset + u64::from(last.encoded_len))
}

/// Packs chunks into a xorb.
///
/// ```
/// use rbee_xet::{CompressionScheme, XorbBuilder, decode_chunks};
///
/// let mut builder = XorbBuilder::new(CompressionScheme::Lz4);
/// builder.push(b"first chunk")?;
/// builder.push(&[0u8; 4096])?;
/// let xorb = builder.finish();
/// let range = xorb.byte_range(1..2).unwrap();
/// let chunks = decode_chunks(&xorb.bytes[range.start as usize..range.end as usize], 1)?;
/// assert_eq!(chunks, vec![vec![0u8; 4096]]);
/// # Ok::<(), rbee_xet::XetError>(())
/// ```
#[derive(Debug)]
pub struct XorbBuilder {
    scheme: CompressionScheme,
    max_bytes: usize,
    bytes: Vec<u8>,
    chunks: Vec<XorbChunk>,
}

impl XorbBuilder {
    /// An empty xorb whose chunks will be stored with `scheme` (or as they are, when that
    /// does not make them smaller).
    pub fn new(scheme: CompressionScheme) -> Self {
        Self {
            scheme,
            max_bytes: MAX_XORB_BYTES,
            bytes: Vec::new(),
            chunks: Vec::new(),
        }
    }

    /// Caps the xorb at `max_bytes` (at most [`MAX_XORB_BYTES`]) instead of 64 MiB: smaller
    /// xorbs let tests span several without 64 MiB files.
    pub fn with_max_bytes(mut self, max_bytes: usize) -> Self {
        self.max_bytes = max_bytes.min(MAX_XORB_BYTES);
        self
    }

    /// Whether a chunk of `len` bytes still fits (assuming it does not compress). An empty
    /// xorb always takes one chunk, however small its cap.
    pub fn has_room_for(&self, len: usize) -> bool {
        self.chunks.is_empty()
            || (self.chunks.len() < MAX_XORB_CHUNKS
                && self.bytes.len() + ChunkHeader::LEN + len <= self.max_bytes)
    }

    /// Whether no chunk was pushed yet.
    pub fn is_empty(&self) -> bool {
        self.chunks.is_empty()
    }

    /// Chunks pushed so far (the index the next one gets).
    pub fn chunk_count(&self) -> usize {
        self.chunks.len()
    }

    /// Bytes serialized so far.
    pub fn len(&self) -> usize {
        self.bytes.len()
    }

    /// Appends a chunk and returns its hash.
    pub fn push(&mut self, data: &[u8]) -> Result<XetHash, XetError> {
        if !self.has_room_for(data.len()) {
            return Err(XetError::XorbFull);
        }
        let offset = self.bytes.len() as u64;
        let encoded_len = encode_chunk(data, self.scheme, &mut self.bytes)?;
        let hash = chunk_hash(data);
        self.chunks.push(XorbChunk {
            hash,
            len: data.len() as u32,
            offset,
            encoded_len: encoded_len as u32,
        });
        Ok(hash)
    }

    /// The finished xorb with its hash.
    pub fn finish(self) -> Xorb {
        let entries: Vec<(XetHash, u64)> = self
            .chunks
            .iter()
            .map(|c| (c.hash, u64::from(c.len)))
            .collect();
        Xorb {
            hash: xorb_hash(&entries),
            bytes: self.bytes,
            chunks: self.chunks,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_layout_is_version_len3_scheme_len3() {
        let header = ChunkHeader {
            compressed_len: 0x010203,
            scheme: CompressionScheme::ByteGrouping4Lz4,
            uncompressed_len: 0x01_0000,
        };
        assert_eq!(header.to_bytes(), [0, 3, 2, 1, 2, 0, 0, 1]);
        assert_eq!(ChunkHeader::parse(header.to_bytes()).unwrap(), header);
    }

    #[test]
    fn headers_beyond_the_limits_are_refused() {
        let mut bytes = [0, 0, 0, 0, 0, 0, 0, 0];
        bytes[0] = 1;
        assert!(ChunkHeader::parse(bytes).is_err());
        assert!(ChunkHeader::parse([0, 0, 0, 0, 3, 0, 0, 0]).is_err());
        assert!(ChunkHeader::parse([0, 0xff, 0xff, 0xff, 0, 0, 0, 0]).is_err());
        assert!(ChunkHeader::parse([0, 0, 0, 0, 0, 1, 0, 2]).is_err());
    }

    #[test]
    fn incompressible_chunks_are_stored_as_they_are() {
        let data: Vec<u8> = (0..32u32)
            .flat_map(|i| *chunk_hash(&i.to_le_bytes()).as_bytes())
            .take(1000)
            .collect();
        let mut out = Vec::new();
        let used = encode_chunk(&data, CompressionScheme::Lz4, &mut out).unwrap();
        assert_eq!(used, 1008);
        assert_eq!(out[4], 0);
        assert_eq!(&out[8..], &data[..]);
    }

    #[test]
    fn borrowed_decoding_copies_stored_chunks_and_waits_for_whole_ones() {
        let plain: Vec<u8> = (0..1000u32)
            .flat_map(|i| *chunk_hash(&i.to_le_bytes()).as_bytes())
            .take(5000)
            .collect();
        let mut stored = Vec::new();
        encode_chunk(&plain, CompressionScheme::Lz4, &mut stored).unwrap();
        assert_eq!(stored[4], 0, "random bytes are stored as they are");
        let mut scratch = Vec::new();
        let (bytes, used) = decode_chunk_borrowed(&stored, &mut scratch)
            .unwrap()
            .unwrap();
        assert_eq!((bytes, used), (&plain[..], stored.len()));
        assert!(
            std::ptr::eq(bytes.as_ptr(), stored[8..].as_ptr()),
            "borrowed, not copied"
        );
        for cut in [0, 5, 8, stored.len() - 1] {
            assert!(
                decode_chunk_borrowed(&stored[..cut], &mut scratch)
                    .unwrap()
                    .is_none()
            );
        }
        // A stored chunk whose two lengths disagree is refused, as decoding it would be.
        let mut lying = stored.clone();
        lying[5] ^= 1;
        assert!(matches!(
            decode_chunk_borrowed(&lying, &mut scratch),
            Err(XetError::LengthMismatch { .. })
        ));
        let zeros = vec![0u8; 20_000];
        let mut packed = Vec::new();
        encode_chunk(&zeros, CompressionScheme::ByteGrouping4Lz4, &mut packed).unwrap();
        packed.extend_from_slice(b"next chunk");
        let (bytes, used) = decode_chunk_borrowed(&packed, &mut scratch)
            .unwrap()
            .unwrap();
        assert_eq!((bytes, used), (&zeros[..], packed.len() - 10));
    }

    #[test]
    fn decoding_a_range_checks_count_and_leftovers() {
        let mut builder = XorbBuilder::new(CompressionScheme::Lz4);
        for i in 0..4u8 {
            builder.push(&vec![i; 10_000]).unwrap();
        }
        let xorb = builder.finish();
        let r = xorb.byte_range(1..3).unwrap();
        let slice = &xorb.bytes[r.start as usize..r.end as usize];
        assert_eq!(
            decode_chunks(slice, 2).unwrap(),
            vec![vec![1; 10_000], vec![2; 10_000]]
        );
        assert!(matches!(
            decode_chunks(slice, 3),
            Err(XetError::ChunkCount {
                expected: 3,
                found: 2
            })
        ));
        assert!(matches!(
            decode_chunks(slice, 1),
            Err(XetError::TrailingBytes { .. })
        ));
        assert!(matches!(
            decode_chunks(&slice[..slice.len() - 1], 2),
            Err(XetError::InChunk { index: 1, .. })
        ));
        assert_eq!(xorb.byte_range(3..5), None);
        assert_eq!(xorb.byte_range(2..2), None);
    }
}
