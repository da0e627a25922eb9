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
use rbee_xet::XetHash;
use rbee_xet::cas::{ChunkRange, ReconstructionTerm, XorbRangeDescriptor};
use reqwest::StatusCode;
use tokio_util::sync::CancellationToken;
use url::Url;

use std::sync::atomic::{AtomicU64, Ordering};

use super::cache::ChunkCache;
use super::cache::LinkedChunk;
use super::decode::{Keep, XorbRangeOf, stream_term};
use super::plan::{Plan, reconstruct, spans_of};
use super::token::XetTokens;

/// Chunks read from the cache per blocking task: about 4 MiB at the Hub's chunk size.
const CACHE_READ_CHUNKS: u32 = 64;

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
    /// Per xorb, the chunks more than one term of the file uses.
    shared: HashMap<XetHash, Vec<Range<u32>>>,
    /// The file's chunks fetched so far, where they lie in it: linked from the cache once
    /// the file is verified.
    links: std::sync::Mutex<Vec<LinkedChunk>>,
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
        let shared = shared_chunks(&plan.terms);
        Ok(Self {
            transfer,
            tokens,
            hash: hash.to_string(),
            spans,
            plan: tokio::sync::Mutex::new(plan),
            cache,
            ranges_in_flight: std::sync::Mutex::new(HashMap::new()),
            shared,
            links: std::sync::Mutex::new(Vec::new()),
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
        // Blocking reads, a few MiB at a time, off the async threads, into one buffer (a
        // buffer per chunk was most of the time: fresh pages faulted in, then unmapped).
        let mut buf = Vec::new();
        let mut held = None;
        let mut next = term.range.start;
        while next < term.range.end {
            let (from, to) = (
                next,
                next.saturating_add(CACHE_READ_CHUNKS).min(term.range.end),
            );
            let (cache, xorb) = (cache.clone(), term.hash);
            let (all_there, filled, still_held) = tokio::task::spawn_blocking(move || {
                let (mut buf, mut held): (Vec<u8>, _) = (buf, held);
                buf.clear();
                let all = (from..to).all(|i| cache.read_into(&xorb, i, &mut buf, &mut held));
                (all, buf, held)
            })
            .await
            .map_err(|e| TransferError::transient(format!("reading the chunk cache: {e}")))?;
            if !all_there {
                // Forgotten as damaged or gone from disk: the retry fetches the term.
                return Err(TransferError::transient(format!(
                    "a cached chunk of term {index} of {} was damaged or removed",
                    self.hash
                )));
            }
            sink.write(&filled).await?;
            (buf, held) = (filled, still_held);
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

/// Per xorb, the chunk ranges that two or more of `terms` cover.
fn shared_chunks(terms: &[ReconstructionTerm]) -> HashMap<XetHash, Vec<Range<u32>>> {
    let mut by_xorb: HashMap<XetHash, Vec<Range<u32>>> = HashMap::new();
    for t in terms {
        by_xorb
            .entry(t.hash)
            .or_default()
            .push(t.range.start..t.range.end);
    }
    by_xorb
        .into_iter()
        .filter_map(|(xorb, mut ranges)| {
            ranges.sort_by_key(|r| r.start);
            let mut shared: Vec<Range<u32>> = Vec::new();
            let mut reach = 0u32;
            for (i, r) in ranges.iter().enumerate() {
                if i > 0 && r.start < reach {
                    shared.push(r.start..r.end.min(reach));
                }
                reach = reach.max(r.end);
            }
            (!shared.is_empty()).then_some((xorb, shared))
        })
        .collect()
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
                    let no_shared = Vec::new();
                    let mut keep = Keep {
                        at: sink.span().start,
                        shared: self.shared.get(&term.hash).unwrap_or(&no_shared),
                        links: Vec::new(),
                    };
                    let from = XorbRangeOf {
                        term: &term,
                        range: &range,
                        shown: &shown,
                    };
                    // Links go to the cache: without one, the chunks are not hashed for them.
                    let linking = self.cache.is_some().then_some(&mut keep);
                    stream_term(response, from, 0, self.cache.as_deref(), linking, sink).await?;
                    if self.cache.is_some() {
                        rbee_artifact::lock_unpoisoned(&self.links).extend(keep.links);
                    }
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
        rbee_artifact::lock_unpoisoned(&self.links).clear();
        self.forget_cached_terms().await;
    }

    async fn completed(&self, path: &std::path::Path) {
        let links = std::mem::take(&mut *rbee_artifact::lock_unpoisoned(&self.links));
        if let Some(cache) = &self.cache
            && !links.is_empty()
        {
            // Absolute, so a later process started elsewhere finds the file.
            let path = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
            cache.link(&path, links).await;
        }
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
            let from = XorbRangeOf {
                term,
                range: &range,
                shown: &shown,
            };
            stream_term(response, from, skip, self.cache.as_deref(), None, sink).await?;
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

#[cfg(test)]
mod tests {
    use super::super::plan::tests::reconstruction;
    use super::*;

    #[test]
    fn chunks_two_terms_use_are_found_and_no_others() {
        let (x, y) = (XetHash::from_bytes([1; 32]), XetHash::from_bytes([2; 32]));
        let term = |hash, start, end| ReconstructionTerm {
            hash,
            unpacked_length: 1,
            range: ChunkRange { start, end },
        };
        let shared = shared_chunks(&[
            term(x, 0, 10),
            term(y, 0, 10),
            term(x, 8, 12),
            term(x, 20, 30),
            term(x, 2, 4),
            term(y, 10, 20),
        ]);
        assert_eq!(shared.get(&x), Some(&vec![2..4, 8..10]));
        assert_eq!(shared.get(&y), None, "adjacent ranges share nothing");
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
            shared: HashMap::new(),
            links: std::sync::Mutex::new(Vec::new()),
            fetched: AtomicU64::new(0),
            reused: AtomicU64::new(0),
        };
        let shown = format!("{source:?}");
        assert!(!shown.contains("sig="), "{shown}");
        assert!(!shown.contains("SECRET"), "{shown}");
        assert!(!shown.contains('?'), "{shown}");
    }
}
