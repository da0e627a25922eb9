//! [`XetError`]: what can be wrong with Xet data.

/// Why Xet bytes or a Xet hash could not be read or written.
///
/// A decode error means the bytes from the server are not what the reconstruction promised:
/// the client should treat that term as failed (and fall back), never write the bytes.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum XetError {
    /// Text that is not a 64-digit hex Xet hash.
    #[error("not a Xet hash: {text:?} (expected 64 hex digits)")]
    InvalidHash {
        /// The text (cut to 80 characters).
        text: String,
    },
    /// A chunk header naming a compression scheme this reader does not know.
    #[error(
        "unknown chunk compression scheme {code} (known: 0 none, 1 LZ4, 2 byte-grouping-4 + LZ4)"
    )]
    UnknownCompression {
        /// The scheme byte.
        code: u8,
    },
    /// A chunk header that is invalid.
    #[error("invalid chunk header: {reason}")]
    BadChunkHeader {
        /// What is wrong with it.
        reason: String,
    },
    /// The data ends inside a chunk.
    #[error("xorb data cut short: the chunk needs {needed} bytes, only {available} are left")]
    Truncated {
        /// Bytes the chunk needs.
        needed: usize,
        /// Bytes there are.
        available: usize,
    },
    /// A chunk decoded to another length than its header declared.
    #[error("chunk decodes to {actual} bytes, its header declares {declared}")]
    LengthMismatch {
        /// The header's length.
        declared: usize,
        /// What decoding produced (at most `declared + 1`: decoding stops there).
        actual: usize,
    },
    /// The LZ4 stream of a chunk is corrupt.
    #[error("corrupt LZ4 data in a chunk")]
    Decompress {
        /// The decoder's complaint.
        #[source]
        source: std::io::Error,
    },
    /// An error in one chunk of a run being decoded.
    #[error("chunk {index} of the range (at byte {offset}) is bad")]
    InChunk {
        /// The chunk's position in the run.
        index: usize,
        /// Its byte offset in the run.
        offset: usize,
        /// What is wrong with it.
        #[source]
        source: Box<XetError>,
    },
    /// A byte range held fewer chunks than expected.
    #[error("expected {expected} chunks in the byte range, found {found}")]
    ChunkCount {
        /// Chunks the reconstruction promised.
        expected: usize,
        /// Chunks the bytes held.
        found: usize,
    },
    /// A byte range held more than the expected chunks.
    #[error("{} bytes left over after the expected chunks (at byte {offset} of {len})", len - offset)]
    TrailingBytes {
        /// Where the expected chunks ended.
        offset: usize,
        /// The range's length.
        len: usize,
    },
    /// A chunk larger than Xet allows.
    #[error("a chunk of {len} bytes is larger than Xet's limit of 131072")]
    ChunkTooLarge {
        /// Its length.
        len: usize,
    },
    /// A push to a xorb that has reached its byte or chunk limit.
    #[error("the xorb is full (64 MiB or 8192 chunks); start a new one")]
    XorbFull,
}
