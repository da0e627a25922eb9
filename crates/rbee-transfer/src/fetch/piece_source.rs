//! [`PieceSource`]: a file whose bytes come in pieces from somewhere other than ranged GETs of
//! its URL (for the Hub's Xet store, a piece is a term: a run of chunks of one xorb, fetched
//! as one range of that xorb and decoded).
//!
//! The engine keeps everything else: the lock, the preallocated `.part`, the ledger of written
//! bytes and its resume state (a killed process fetches again only the pieces it had not
//! finished), progress, the rate limit, cancellation, the stall watchdog, retries of transient
//! failures, and the SHA-256 of the whole file before it is published. A source only turns a
//! piece index into bytes, in order, through a [`PieceSink`].

use std::fmt;
use std::ops::Range;

use async_trait::async_trait;

use super::PieceSink;
use crate::error::TransferError;

/// Where the bytes of one file come from, piece by piece.
///
/// # Contract
/// - [`pieces`](PieceSource::pieces) lists spans of the file that follow each other from
///   byte 0 to its size, none empty; the engine refuses any other layout before writing.
/// - [`fetch_piece`](PieceSource::fetch_piece) is called from the engine's tasks, several at
///   once for different pieces, and again for a piece whose earlier call failed with a
///   transient error (the engine skips the bytes it already has). It must hand the piece's
///   bytes to the sink in order, report network bytes with [`PieceSink::received`] as they
///   arrive (rate limit, stall watchdog), and return promptly once the sink returns an error.
///   A source that can start mid-piece may call [`PieceSink::skip_held`] first and hand over
///   only the bytes from [`PieceSink::have_until`] on. A source reading from the network
///   calls [`PieceSink::settle`] after dropping each read it handed over.
/// - An error that is not transient ends the pieces path for the file: the engine falls back
///   to the request's URL (see [`FetchRequest::pieces`](crate::FetchRequest::pieces)).
#[async_trait]
pub trait PieceSource: Send + Sync + fmt::Debug {
    /// The file's pieces, in order.
    fn pieces(&self) -> &[Range<u64>];

    /// Fetches piece `index` into `sink`.
    async fn fetch_piece(
        &self,
        index: usize,
        sink: &mut PieceSink<'_>,
    ) -> Result<(), TransferError>;

    /// The file assembled from this source's pieces failed its published digest (the engine
    /// then starts over or falls back to the URL). A source that keeps what it fetched for
    /// later, such as a cache, should drop what this file took from it.
    async fn digest_mismatch(&self) {}

    /// The file assembled from this source's pieces passed its digest and is at `path`. A
    /// source that keeps what it fetched may note where those bytes now lie.
    async fn completed(&self, _path: &std::path::Path) {}
}
