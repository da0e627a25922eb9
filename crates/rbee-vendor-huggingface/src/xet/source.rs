//! A file rebuilt from the Xet CAS: its reconstruction (terms, and where each term's xorb
//! bytes are), and each term fetched as one xorb range and decoded into the engine's
//! [`PieceSink`].

use std::collections::HashMap;
use std::ops::Range;
use std::sync::Arc;

use async_trait::async_trait;
use rbee_artifact::Error;
use rbee_transfer::{
    ApiRequest, PieceSink, PieceSource, Transfer, TransferError, parse_content_range, redact_url,
};
use rbee_xet::cas::{
    ChunkRange, ReconstructionTerm, ReconstructionV1, ReconstructionV2, XorbRangeDescriptor,
};
use rbee_xet::{ChunkHeader, XetHash, decode_chunk};
use reqwest::StatusCode;
use tokio_util::sync::CancellationToken;
use url::Url;

use std::sync::atomic::{AtomicU64, Ordering};

use super::cache::ChunkCache;
use super::token::XetTokens;

/// A reconstruction lists a term per run of chunks: tens of bytes each, so this allows files
/// far larger than any model while bounding what a broken server can make us hold.
const MAX_RECONSTRUCTION_BODY: usize = 64 << 20;

/// Chunks read from the cache per blocking task: about 4 MiB at the Hub's chunk size.
const CACHE_READ_CHUNKS: u32 = 64;

/// The terms of a file and the presigned ranges that hold them, replaced when they expire.
/// No `Debug`: the presigned URLs carry their credential in the query string.
struct Plan {
    terms: Vec<ReconstructionTerm>,
    /// Per xorb: presigned URLs with the chunk and byte ranges each may be asked for.
    xorbs: HashMap<XetHash, Vec<(String, XorbRangeDescriptor)>>,
    generation: u64,
}

impl Plan {
    fn new(r: ReconstructionV2) -> Self {
        let xorbs = r
            .xorbs
            .into_iter()
            .map(|(hash, fetches)| {
                let ranges = fetches
                    .into_iter()
                    .flat_map(|f| {
                        let url = f.url;
                        f.ranges.into_iter().map(move |d| (url.clone(), d))
                    })
                    .collect();
                (hash, ranges)
            })
            .collect();
        Self {
            terms: r.terms,
            xorbs,
            generation: 0,
        }
    }

    /// The presigned URL and range that hold all of `term`'s chunks.
    fn fetch_for(&self, term: &ReconstructionTerm) -> Option<(String, XorbRangeDescriptor)> {
        self.xorbs.get(&term.hash)?.iter().find_map(|(url, d)| {
            (d.chunks.start <= term.range.start && term.range.end <= d.chunks.end)
                .then(|| (url.clone(), d.clone()))
        })
    }
}

/// A lock per xorb range (xorb, first byte) being fetched.
type RangeLocks = HashMap<(XetHash, u64), Arc<tokio::sync::Mutex<()>>>;

/// One file rebuilt from the Xet CAS, piece by piece: a piece is a term.
pub struct XetSource {
    transfer: Transfer,
    tokens: Arc<XetTokens>,
    hash: String,
    spans: Vec<Range<u64>>,
    plan: tokio::sync::Mutex<Plan>,
    cache: Option<Arc<ChunkCache>>,
    /// One fetch at a time per xorb range: terms that share a range wait for the first,
    /// then find its chunks in the cache.
    ranges_in_flight: std::sync::Mutex<RangeLocks>,
    /// Bytes of the file rebuilt from the network, and from the chunk cache.
    fetched: AtomicU64,
    reused: AtomicU64,
}

impl XetSource {
    /// Asks the CAS how to rebuild the file with Xet hash `hash` (V2, or V1 where V2 is not
    /// served) and checks that every term can be fetched. Errors mean: use the bridge.
    pub async fn new(
        transfer: Transfer,
        tokens: Arc<XetTokens>,
        hash: &str,
        cache: Option<Arc<ChunkCache>>,
        cancel: &CancellationToken,
    ) -> Result<Self, Error> {
        let r = reconstruct(&transfer, &tokens, hash, None, cancel).await?;
        if r.offset_into_first_range != 0 {
            return Err(Error::Protocol {
                message: format!(
                    "the reconstruction of {hash} starts {} bytes into its first term, for a whole file",
                    r.offset_into_first_range
                ),
            });
        }
        let plan = Plan::new(r);
        let spans = spans_of(&plan, hash)?;
        Ok(Self {
            transfer,
            tokens,
            hash: hash.to_string(),
            spans,
            plan: tokio::sync::Mutex::new(plan),
            cache,
            ranges_in_flight: std::sync::Mutex::new(HashMap::new()),
            fetched: AtomicU64::new(0),
            reused: AtomicU64::new(0),
        })
    }

    /// How many terms (pieces) the file has.
    pub fn pieces_len(&self) -> usize {
        self.spans.len()
    }

    /// Bytes of the file rebuilt so far from the network and from the chunk cache.
    pub fn bytes_fetched_and_reused(&self) -> (u64, u64) {
        (
            self.fetched.load(Ordering::Relaxed),
            self.reused.load(Ordering::Relaxed),
        )
    }

    /// Hands over term `index` from the chunk cache when every chunk of it is there.
    async fn term_from_cache(
        &self,
        index: usize,
        sink: &mut PieceSink<'_>,
    ) -> Result<bool, TransferError> {
        let Some(cache) = &self.cache else {
            return Ok(false);
        };
        let term = self.plan.lock().await.terms[index].clone();
        if !cache.has_all(&term.hash, term.range) {
            return Ok(false);
        }
        // Blocking reads, a few MiB at a time, off the async threads.
        let mut next = term.range.start;
        while next < term.range.end {
            let (from, to) = (
                next,
                next.saturating_add(CACHE_READ_CHUNKS).min(term.range.end),
            );
            let (cache, xorb) = (cache.clone(), term.hash);
            let chunks = tokio::task::spawn_blocking(move || {
                (from..to).map(|i| cache.read(&xorb, i)).collect::<Vec<_>>()
            })
            .await
            .map_err(|e| TransferError::transient(format!("reading the chunk cache: {e}")))?;
            for data in chunks {
                let Some(data) = data else {
                    // Forgotten as damaged or gone from disk: the retry fetches the term.
                    return Err(TransferError::transient(format!(
                        "a cached chunk of term {index} of {} was damaged or removed",
                        self.hash
                    )));
                };
                sink.write(&data).await?;
            }
            next = to;
        }
        self.reused
            .fetch_add(u64::from(term.unpacked_length), Ordering::Relaxed);
        Ok(true)
    }

    /// The size the terms add up to.
    pub fn size(&self) -> u64 {
        self.spans.last().map_or(0, |s| s.end)
    }

    /// Fetches the reconstruction again (its presigned URLs expired), unless another piece
    /// already did since `seen`. The terms must not change.
    async fn refresh(&self, seen: u64) -> Result<(), TransferError> {
        let mut plan = self.plan.lock().await;
        if plan.generation != seen {
            return Ok(());
        }
        let fresh = reconstruct(
            &self.transfer,
            &self.tokens,
            &self.hash,
            None,
            &CancellationToken::new(),
        )
        .await
        .map_err(|e| {
            TransferError::protocol(format!("asking again how to rebuild {}: {e}", self.hash))
        })?;
        let mut fresh = Plan::new(fresh);
        if fresh.terms != plan.terms {
            return Err(TransferError::protocol(format!(
                "the reconstruction of {} changed while it was being fetched",
                self.hash
            )));
        }
        fresh.generation = plan.generation + 1;
        *plan = fresh;
        Ok(())
    }
}

/// By hand: the plan's presigned URLs must not reach logs or errors.
impl std::fmt::Debug for XetSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("XetSource")
            .field("hash", &self.hash)
            .field("pieces", &self.spans.len())
            .field("cache", &self.cache.is_some())
            .finish_non_exhaustive()
    }
}

#[async_trait]
impl PieceSource for XetSource {
    fn pieces(&self) -> &[Range<u64>] {
        &self.spans
    }

    async fn fetch_piece(
        &self,
        index: usize,
        sink: &mut PieceSink<'_>,
    ) -> Result<(), TransferError> {
        if self.term_from_cache(index, sink).await? {
            return Ok(());
        }
        if sink.have_until() > sink.span().start {
            return self.resume_term(index, sink).await;
        }
        let _held = if self.cache.is_some() {
            let key = {
                let plan = self.plan.lock().await;
                let term = &plan.terms[index];
                plan.fetch_for(term)
                    .map(|(_, d)| (term.hash, d.bytes.start))
            };
            match key {
                Some(key) => {
                    let lock = rbee_artifact::lock_unpoisoned(&self.ranges_in_flight)
                        .entry(key)
                        .or_default()
                        .clone();
                    let held = lock.lock_owned().await;
                    // Another term may have brought this one's chunks meanwhile.
                    if self.term_from_cache(index, sink).await? {
                        return Ok(());
                    }
                    Some(held)
                }
                None => None,
            }
        } else {
            None
        };
        let mut refreshed = false;
        loop {
            let (term, url, range, generation) = {
                let plan = self.plan.lock().await;
                let term = plan.terms[index].clone();
                let (url, range) = plan.fetch_for(&term).ok_or_else(|| {
                    TransferError::protocol(format!(
                        "term {index} of {} has no xorb range",
                        self.hash
                    ))
                })?;
                (term, url, range, plan.generation)
            };
            match self.get_xorb_range(&url, &range, index).await? {
                Ok((response, shown)) => {
                    stream_term(
                        response,
                        &term,
                        &range,
                        0,
                        self.cache.as_deref(),
                        sink,
                        &shown,
                    )
                    .await?;
                    self.fetched
                        .fetch_add(u64::from(term.unpacked_length), Ordering::Relaxed);
                    return Ok(());
                }
                Err(status) if !refreshed => {
                    // An expired presigned URL: ask for fresh ones once.
                    tracing::debug!(
                        status,
                        "a xorb URL was refused; asking for the reconstruction again"
                    );
                    refreshed = true;
                    self.refresh(generation).await?;
                }
                Err(status) => {
                    return Err(TransferError::protocol(format!(
                        "the CAS answered HTTP {status} for a xorb range of term {index} of {}",
                        self.hash
                    )));
                }
            }
        }
    }

    async fn digest_mismatch(&self) {
        self.forget_cached_terms().await;
    }
}

impl XetSource {
    /// Forgets from the chunk cache every chunk of this file's terms: the file rebuilt from
    /// them failed its digest, so one of them is wrong (the CAS served bytes that decode but
    /// are not the file's), and kept it would fail every later download that shares it.
    async fn forget_cached_terms(&self) {
        let Some(cache) = &self.cache else {
            return;
        };
        let mut terms: Vec<_> = self
            .plan
            .lock()
            .await
            .terms
            .iter()
            .map(|t| (t.hash, t.range.start, t.range.end))
            .collect();
        terms.sort_unstable();
        terms.dedup();
        tracing::warn!(hash = %self.hash, "the file rebuilt over Xet does not match its digest; forgetting its chunks from the cache");
        for (xorb, start, end) in terms {
            cache.forget(&xorb, ChunkRange { start, end }).await;
        }
    }

    /// Rebuilds the rest of a term that is partly on disk already: asks the CAS how to
    /// rebuild only the missing file bytes, so the fetch starts at the chunk that holds the
    /// first of them rather than at the start of the term.
    async fn resume_term(
        &self,
        index: usize,
        sink: &mut PieceSink<'_>,
    ) -> Result<(), TransferError> {
        let span = sink.span();
        let from = sink.have_until();
        let want = span.end - from;
        let r = reconstruct(
            &self.transfer,
            &self.tokens,
            &self.hash,
            Some(from..span.end),
            &CancellationToken::new(),
        )
        .await
        .map_err(|e| {
            TransferError::transient(format!(
                "asking how to rebuild bytes {from}-{} of {}: {e}",
                span.end - 1,
                self.hash
            ))
        })?;
        let offset = r.offset_into_first_range;
        let part = Plan::new(r);
        let spans = spans_of(&part, &self.hash).map_err(|e| {
            TransferError::protocol(format!("resuming term {index} of {}: {e}", self.hash))
        })?;
        let total = spans.last().map_or(0, |s| s.end);
        if offset >= spans.first().map_or(0, |s| s.end) || total - offset != want {
            return Err(TransferError::protocol(format!(
                "the reconstruction of bytes {from}-{} of {} does not add up to them",
                span.end - 1,
                self.hash
            )));
        }
        sink.skip_held();
        for (i, term) in part.terms.iter().enumerate() {
            let (url, range) = part.fetch_for(term).expect("checked by spans_of");
            let (response, shown) = match self.get_xorb_range(&url, &range, index).await? {
                Ok(r) => r,
                // Expired meanwhile: the retry asks again.
                Err(status) => {
                    return Err(TransferError::transient(format!(
                        "the CAS answered HTTP {status} for a xorb range of term {index} of {}",
                        self.hash
                    )));
                }
            };
            let skip = if i == 0 { offset } else { 0 };
            stream_term(
                response,
                term,
                &range,
                skip,
                self.cache.as_deref(),
                sink,
                &shown,
            )
            .await?;
        }
        self.fetched.fetch_add(want, Ordering::Relaxed);
        Ok(())
    }

    /// GETs one presigned xorb range. `Err(status)` when the URL is refused as an expired
    /// one is (400, 401, 403, 404, 410).
    async fn get_xorb_range(
        &self,
        url: &str,
        range: &XorbRangeDescriptor,
        index: usize,
    ) -> Result<Result<(reqwest::Response, String), u16>, TransferError> {
        let url: Url = url.parse().map_err(|_| {
            TransferError::protocol(format!(
                "the CAS gave term {index} of {} a URL that does not parse",
                self.hash
            ))
        })?;
        let shown = redact_url(&url);
        // Presigned: no credential goes with it, and a redirect is not followed.
        let mut request = ApiRequest::get(url).with_header("Range", range.bytes.header_value());
        request.follow_redirects = false;
        let response = self
            .transfer
            .send(request, &CancellationToken::new())
            .await?;
        let status = response.status();
        let whole =
            status == StatusCode::OK && response.content_length() == Some(range.bytes.len());
        if status == StatusCode::PARTIAL_CONTENT {
            // Chunks are cached under the indices asked for: bytes of another range would
            // poison the cache for every file sharing this xorb.
            let told = response
                .headers()
                .get(reqwest::header::CONTENT_RANGE)
                .and_then(|v| v.to_str().ok())
                .and_then(parse_content_range);
            if told.is_none_or(|c| {
                c.start != range.bytes.start || c.end != range.bytes.end.saturating_add(1)
            }) {
                return Err(TransferError::protocol(format!(
                    "GET {shown}: the CAS answered bytes {}-{} of a xorb with a Content-Range of {}",
                    range.bytes.start,
                    range.bytes.end,
                    told.map_or_else(
                        || "none it could read".to_string(),
                        |c| format!("{}-{}", c.start, c.end - 1)
                    ),
                )));
            }
        }
        if status == StatusCode::PARTIAL_CONTENT || whole {
            return Ok(Ok((response, shown)));
        }
        if matches!(status.as_u16(), 400 | 401 | 403 | 404 | 410) {
            return Ok(Err(status.as_u16()));
        }
        Err(TransferError::protocol(format!(
            "GET {shown}: the CAS answered HTTP {} for a xorb range",
            status.as_u16()
        )))
    }
}

/// The file's spans, term by term, once every term is non-empty and fetchable and every
/// byte range is one whose length can be computed.
fn spans_of(plan: &Plan, hash: &str) -> Result<Vec<Range<u64>>, Error> {
    let bad = |message: String| Error::Protocol { message };
    // `HttpRange::len` and the `Content-Range` check add one to the last byte.
    if let Some(d) = plan
        .xorbs
        .values()
        .flatten()
        .map(|(_, d)| d)
        .find(|d| d.bytes.end == u64::MAX || d.bytes.end < d.bytes.start)
    {
        return Err(bad(format!(
            "the reconstruction of {hash} names an impossible xorb byte range {}-{}",
            d.bytes.start, d.bytes.end
        )));
    }
    let mut spans = Vec::with_capacity(plan.terms.len());
    let mut at = 0u64;
    for (i, term) in plan.terms.iter().enumerate() {
        if term.unpacked_length == 0 || term.range.is_empty() {
            return Err(bad(format!("term {i} of {hash} is empty")));
        }
        if plan.fetch_for(term).is_none() {
            return Err(bad(format!(
                "the reconstruction of {hash} says nowhere where term {i} can be fetched"
            )));
        }
        let end = at
            .checked_add(u64::from(term.unpacked_length))
            .ok_or_else(|| {
                bad(format!(
                    "the terms of {hash} add up to more than 2^64 bytes"
                ))
            })?;
        spans.push(at..end);
        at = end;
    }
    Ok(spans)
}

/// Decodes the chunks of a xorb range as they arrive, handing over those of `term` past its
/// first `skip` bytes. Holds at most one encoded chunk and one network read at a time.
async fn stream_term(
    mut response: reqwest::Response,
    term: &ReconstructionTerm,
    range: &XorbRangeDescriptor,
    mut skip: u64,
    cache: Option<&ChunkCache>,
    sink: &mut PieceSink<'_>,
    shown: &str,
) -> Result<(), TransferError> {
    let expected = range.bytes.len();
    let mut received = 0u64;
    let mut pending: Vec<u8> = Vec::new();
    let mut chunk = range.chunks.start;
    // With a cache, every chunk of the range is worth keeping: other terms may need them.
    let last = if cache.is_some() {
        range.chunks.end
    } else {
        term.range.end
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
        pending.extend_from_slice(&bytes);
        let mut used = 0;
        while chunk < last && pending.len() - used >= ChunkHeader::LEN {
            let header: [u8; ChunkHeader::LEN] = pending[used..used + ChunkHeader::LEN]
                .try_into()
                .expect("a header's length");
            let header = ChunkHeader::parse(header)
                .map_err(|e| TransferError::protocol(format!("GET {shown}: chunk {chunk}: {e}")))?;
            if pending.len() - used < ChunkHeader::LEN + header.compressed_len as usize {
                break;
            }
            let mut decoded = Vec::new();
            used += decode_chunk(&pending[used..], &mut decoded)
                .map_err(|e| TransferError::protocol(format!("GET {shown}: chunk {chunk}: {e}")))?;
            if (term.range.start..term.range.end).contains(&chunk) {
                let dropped = skip.min(decoded.len() as u64);
                skip -= dropped;
                sink.write(&decoded[dropped as usize..]).await?;
            }
            if let Some(cache) = cache {
                cache.put(&term.hash, chunk, decoded).await;
            }
            chunk += 1;
        }
        pending.drain(..used);
    }
    Ok(())
}

/// `GET {casUrl}/v2/reconstructions/{hash}`, or `/v1/` when V2 is not served (404, 501); a
/// token the CAS refuses is replaced once. `bytes`: only that part of the file (`Range`).
async fn reconstruct(
    transfer: &Transfer,
    tokens: &XetTokens,
    hash: &str,
    bytes: Option<Range<u64>>,
    cancel: &CancellationToken,
) -> Result<ReconstructionV2, Error> {
    let mut refused = false;
    'token: loop {
        let token = tokens.get(cancel).await?;
        for version in ["v2", "v1"] {
            let mut url = token.cas_url.clone();
            url.path_segments_mut()
                .map_err(|()| Error::Protocol {
                    message: "the CAS URL cannot take a path".into(),
                })?
                .pop_if_empty()
                .extend([version, "reconstructions", hash]);
            let shown = redact_url(&url);
            let mut request = ApiRequest::get(url).with_auth(Some(token.access_token.clone()));
            if let Some(b) = &bytes {
                request = request.with_header("Range", format!("bytes={}-{}", b.start, b.end - 1));
            }
            let response = transfer.send(request, cancel).await?;
            let status = response.status().as_u16();
            match status {
                200 => {
                    let body =
                        rbee_transfer::read_body(response, MAX_RECONSTRUCTION_BODY, cancel).await?;
                    let parsed = if version == "v2" {
                        serde_json::from_slice::<ReconstructionV2>(&body)
                    } else {
                        serde_json::from_slice::<ReconstructionV1>(&body).map(Into::into)
                    };
                    return parsed.map_err(|e| Error::Protocol {
                        message: format!("{shown} answered a reconstruction this client does not understand ({e})"),
                    });
                }
                404 | 501 if version == "v2" => continue,
                401 if !refused => {
                    tokens.refused(&token).await;
                    refused = true;
                    continue 'token;
                }
                _ => {
                    return Err(Error::Network {
                        message: format!("GET {shown}: the CAS answered HTTP {status}"),
                        source: None,
                    });
                }
            }
        }
        return Err(Error::Protocol {
            message: format!("the CAS serves no reconstruction of {hash}"),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rbee_xet::cas::{ChunkRange, HttpRange, XorbMultiRangeFetch};

    fn reconstruction(end: u64) -> ReconstructionV2 {
        let xorb = XetHash::from_bytes([4; 32]);
        let chunks = ChunkRange { start: 0, end: 1 };
        ReconstructionV2 {
            offset_into_first_range: 0,
            terms: vec![ReconstructionTerm {
                hash: xorb,
                unpacked_length: 10,
                range: chunks,
            }],
            xorbs: HashMap::from([(
                xorb,
                vec![XorbMultiRangeFetch {
                    url: "http://127.0.0.1:9/xorbs/x?sig=SECRET".into(),
                    ranges: vec![XorbRangeDescriptor {
                        chunks,
                        bytes: HttpRange { start: 0, end },
                    }],
                }],
            )]),
        }
    }

    #[test]
    fn debug_shows_no_presigned_url() {
        let transfer = Transfer::new(rbee_transfer::TransferConfig::default()).unwrap();
        let tokens = XetTokens::at(
            transfer.clone(),
            "http://127.0.0.1:9/token".parse().unwrap(),
            None,
        );
        let source = XetSource {
            transfer,
            tokens: Arc::new(tokens),
            hash: "h".into(),
            spans: std::iter::once(0..10).collect(),
            plan: tokio::sync::Mutex::new(Plan::new(reconstruction(99))),
            cache: None,
            ranges_in_flight: std::sync::Mutex::new(HashMap::new()),
            fetched: AtomicU64::new(0),
            reused: AtomicU64::new(0),
        };
        let shown = format!("{source:?}");
        assert!(!shown.contains("sig="), "{shown}");
        assert!(!shown.contains("SECRET"), "{shown}");
        assert!(!shown.contains('?'), "{shown}");
    }

    #[test]
    fn a_byte_range_ending_at_the_last_u64_is_refused() {
        assert!(spans_of(&Plan::new(reconstruction(99)), "h").is_ok());
        let err = spans_of(&Plan::new(reconstruction(u64::MAX)), "h").unwrap_err();
        assert!(matches!(err, Error::Protocol { .. }), "{err:?}");
        assert!(
            err.to_string().contains("impossible xorb byte range"),
            "{err}"
        );
    }
}
