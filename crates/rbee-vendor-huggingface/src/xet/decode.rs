//! A xorb range decoded as it arrives: the chunks of one term handed to the engine's sink,
//! and, with a chunk cache, every chunk of the range kept for the terms and files that share
//! it.

use rbee_transfer::{PieceSink, TransferError};
use rbee_xet::cas::{ReconstructionTerm, XorbRangeDescriptor};
use std::ops::Range;

use rbee_xet::{ChunkHeader, decode_chunk_borrowed};

use super::cache::{ChunkCache, LinkedChunk};

/// The xorb range fetched for `term`, and the redacted URL it came from (for errors).
pub(super) struct XorbRangeOf<'a> {
    pub term: &'a ReconstructionTerm,
    pub range: &'a XorbRangeDescriptor,
    pub shown: &'a str,
}

/// Where a term being written whole lands in the file, so its chunks can be linked to the
/// file once verified instead of copied into the cache.
pub(super) struct Keep<'a> {
    /// File offset of the term's next chunk.
    pub at: u64,
    /// Chunks of this xorb that other terms of the file use too: copied into the cache as
    /// before, so those terms find them while the file is still being written.
    pub shared: &'a [Range<u32>],
    pub links: Vec<LinkedChunk>,
}

/// Decodes the chunks of a xorb range as they arrive, handing over those of `term` past its
/// first `skip` bytes. With `keep` (a term written from its start), the term's own chunks are
/// noted for linking rather than copied into the cache. Chunks that lie whole in one network read are decoded where they lie
/// (a chunk stored as it is goes to the sink without a copy); only a chunk cut between two
/// reads is gathered first, so at most one encoded chunk and one network read are held.
pub(super) async fn stream_term(
    mut response: reqwest::Response,
    from: XorbRangeOf<'_>,
    mut skip: u64,
    cache: Option<&ChunkCache>,
    mut keep: Option<&mut Keep<'_>>,
    sink: &mut PieceSink<'_>,
) -> Result<(), TransferError> {
    let XorbRangeOf { term, range, shown } = from;
    let expected = range.bytes.len();
    let mut received = 0u64;
    // A chunk cut between network reads, gathered until whole.
    let mut pending: Vec<u8> = Vec::new();
    let mut scratch: Vec<u8> = Vec::new();
    let mut chunk = range.chunks.start;
    // With a cache, every chunk of the range is worth keeping: other terms may need them.
    let last = if cache.is_some() {
        range.chunks.end
    } else {
        term.range.end
    };
    let bad = |chunk: u32, e: rbee_xet::XetError| {
        TransferError::protocol(format!("GET {shown}: chunk {chunk}: {e}"))
    };
    while chunk < last {
        let next = response.chunk().await.map_err(|e| {
            TransferError::transient(format!("GET {shown}: reading the xorb range failed ({e})"))
        })?;
        let Some(bytes) = next else {
            return Err(TransferError::transient(format!(
                "GET {shown}: the xorb range ended after {received} of {expected} bytes"
            )));
        };
        received += bytes.len() as u64;
        if received > expected {
            return Err(TransferError::protocol(format!(
                "GET {shown}: more than the {expected} bytes asked for"
            )));
        }
        sink.received(bytes.len() as u64).await?;
        let mut input = &bytes[..];
        while chunk < last && !input.is_empty() {
            if !pending.is_empty() {
                let take = still_missing(&pending).map_err(|e| bad(chunk, e))?;
                let take = take.min(input.len());
                pending.extend_from_slice(&input[..take]);
                input = &input[take..];
                if still_missing(&pending).map_err(|e| bad(chunk, e))? > 0 {
                    continue;
                }
                let (decoded, _) = decode_chunk_borrowed(&pending, &mut scratch)
                    .map_err(|e| bad(chunk, e))?
                    .expect("a whole chunk");
                hand_over(
                    decoded,
                    chunk,
                    term,
                    &mut skip,
                    cache,
                    keep.as_deref_mut(),
                    sink,
                )
                .await?;
                pending.clear();
                chunk += 1;
                continue;
            }
            match decode_chunk_borrowed(input, &mut scratch).map_err(|e| bad(chunk, e))? {
                Some((decoded, used)) => {
                    hand_over(
                        decoded,
                        chunk,
                        term,
                        &mut skip,
                        cache,
                        keep.as_deref_mut(),
                        sink,
                    )
                    .await?;
                    input = &input[used..];
                    chunk += 1;
                }
                None => {
                    pending.extend_from_slice(input);
                    break;
                }
            }
        }
        // Written out only once the network read is let go, so the client reuses its buffer.
        drop(bytes);
        sink.settle().await?;
    }
    Ok(())
}

/// Bytes the chunk gathered in `pending` still lacks: the rest of its header, then the rest
/// of what the header declares.
fn still_missing(pending: &[u8]) -> Result<usize, rbee_xet::XetError> {
    match pending.first_chunk::<{ ChunkHeader::LEN }>() {
        None => Ok(ChunkHeader::LEN - pending.len()),
        Some(h) => Ok(ChunkHeader::LEN + ChunkHeader::parse(*h)?.compressed_len as usize)
            .map(|whole| whole.saturating_sub(pending.len())),
    }
}

/// One decoded chunk: to the sink when it is part of `term` (past `skip`); to the cache when
/// there is one, unless `keep` notes it for a link.
async fn hand_over(
    decoded: &[u8],
    chunk: u32,
    term: &ReconstructionTerm,
    skip: &mut u64,
    cache: Option<&ChunkCache>,
    keep: Option<&mut Keep<'_>>,
    sink: &mut PieceSink<'_>,
) -> Result<(), TransferError> {
    if (term.range.start..term.range.end).contains(&chunk) {
        let dropped = (*skip).min(decoded.len() as u64);
        *skip -= dropped;
        sink.write(&decoded[dropped as usize..]).await?;
        if let Some(keep) = keep {
            let at = keep.at;
            keep.at += decoded.len() as u64;
            if !keep.shared.iter().any(|r| r.contains(&chunk)) {
                keep.links.push(LinkedChunk {
                    xorb: term.hash,
                    index: chunk,
                    at,
                    len: decoded.len() as u32,
                });
                return Ok(());
            }
        }
    }
    if let Some(cache) = cache {
        cache.put(&term.hash, chunk, decoded.to_vec()).await;
    }
    Ok(())
}
