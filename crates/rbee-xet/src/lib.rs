//! The Hub's Xet storage format, without any I/O: what both a Xet client and a server (the
//! test hub) need to agree on byte for byte.
//!
//! - [`Chunker`] / [`chunk_boundaries`]: content-defined chunking exactly as xet-core cuts
//!   files (gear hash, 8 KiB minimum, 64 KiB target, 128 KiB maximum), so chunks repeat
//!   across revisions and quants.
//! - [`chunk_hash`], [`xorb_hash`], [`file_hash`]: keyed BLAKE3 and the merkle aggregation;
//!   [`XetHash`] prints them the way the Hub does (`X-Xet-Hash`, `xetHash`).
//! - [`XorbBuilder`], [`encode_chunk`], [`decode_chunk`], [`decode_chunks`]: the xorb object
//!   format (8-byte chunk headers; no compression, LZ4, byte-grouping-4 + LZ4). Decoding
//!   checks every length and never allocates more than a header may declare
//!   ([`MAX_CHUNK_SIZE`]).
//! - [`cas`]: the wire types of the token and reconstruction (V1 and V2) responses.
//!
//! ```
//! use rbee_xet::{CompressionScheme, XorbBuilder, chunk_boundaries, decode_chunks, file_hash};
//!
//! let data: Vec<u8> = (0..300_000u32).map(|i| (i.wrapping_mul(2654435761) >> 11) as u8).collect();
//! let mut builder = XorbBuilder::new(CompressionScheme::Lz4);
//! let mut start = 0;
//! for end in chunk_boundaries(&data) {
//!     builder.push(&data[start..end])?;
//!     start = end;
//! }
//! let xorb = builder.finish();
//! let chunks = decode_chunks(&xorb.bytes, xorb.chunks.len())?;
//! assert_eq!(chunks.concat(), data);
//! let entries: Vec<_> = xorb.chunks.iter().map(|c| (c.hash, u64::from(c.len))).collect();
//! println!("file {}, xorb {}", file_hash(&entries), xorb.hash);
//! # Ok::<(), rbee_xet::XetError>(())
//! ```
#![deny(missing_docs)]

pub use chunking::{Chunker, MAX_CHUNK_SIZE, MIN_CHUNK_SIZE, TARGET_CHUNK_SIZE, chunk_boundaries};
pub use compression::CompressionScheme;
pub use error::XetError;
pub use hash::{XetHash, chunk_hash, file_hash, file_hash_with_salt, is_xet_hash, xorb_hash};
pub use xorb::{
    ChunkHeader, MAX_ENCODED_CHUNK_SIZE, MAX_XORB_BYTES, MAX_XORB_CHUNKS, Xorb, XorbBuilder,
    XorbChunk, chunk_byte_range, decode_chunk, decode_chunk_borrowed, decode_chunks, encode_chunk,
};

pub mod cas;
mod chunking;
mod compression;
mod error;
mod hash;
mod xorb;
