//! Wire types of the Hub's Xet endpoints, shared by the client and the test hub.
//!
//! - `GET /api/models/{repo}/xet-read-token/{rev}` → [`XetTokenResponse`].
//! - `GET {casUrl}/v1/reconstructions/{file hash}` (optionally with `Range: bytes=a-b` for
//!   part of the file) → [`ReconstructionV1`]; `/v2/…` → [`ReconstructionV2`], which groups
//!   the byte ranges of each xorb under one presigned URL.
//! - Each term's chunks come from a presigned xorb URL fetched with `Range` set to exactly the
//!   given [`HttpRange`] (no `Authorization`).
//!
//! `Debug` output of these types never shows a token or a presigned URL's query string.

use std::collections::HashMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::hash::XetHash;

/// The answer of the `xet-read-token` route.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct XetTokenResponse {
    /// Bearer token for the CAS (secret).
    #[serde(rename = "accessToken")]
    pub access_token: String,
    /// When it expires, in Unix seconds.
    pub exp: u64,
    /// The CAS base URL (`{casUrl}/v1/reconstructions/…`).
    #[serde(rename = "casUrl")]
    pub cas_url: String,
}

impl fmt::Debug for XetTokenResponse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("XetTokenResponse")
            .field("access_token", &"<redacted>")
            .field("exp", &self.exp)
            .field("cas_url", &self.cas_url)
            .finish()
    }
}

/// Chunk indices `[start, end)` within a xorb.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ChunkRange {
    /// First chunk.
    pub start: u32,
    /// One past the last chunk.
    pub end: u32,
}

impl ChunkRange {
    /// Chunks in the range (0 when `end <= start`).
    pub fn len(&self) -> u32 {
        self.end.saturating_sub(self.start)
    }

    /// Whether the range holds no chunk.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Bytes `[start, end]` (end inclusive, as in an HTTP `Range` header) within a xorb.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct HttpRange {
    /// First byte.
    pub start: u64,
    /// Last byte (inclusive).
    pub end: u64,
}

impl HttpRange {
    /// The range from a half-open `[start, end)`; `None` when empty.
    pub fn from_exclusive(range: std::ops::Range<u64>) -> Option<Self> {
        (range.start < range.end).then(|| Self {
            start: range.start,
            end: range.end - 1,
        })
    }

    /// Bytes in the range (0 when it is inverted; `u64::MAX` for the one range too long to
    /// count, `0..=u64::MAX`, which a hostile answer may name).
    pub fn len(&self) -> u64 {
        if self.end < self.start {
            0
        } else {
            (self.end - self.start).saturating_add(1)
        }
    }

    /// Whether the range is inverted (holds no byte).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The `Range` header value: `bytes=start-end`.
    pub fn header_value(&self) -> String {
        format!("bytes={}-{}", self.start, self.end)
    }
}

/// One piece of a file: chunks `range` of xorb `hash`, decoding to `unpacked_length` bytes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReconstructionTerm {
    /// The xorb.
    pub hash: XetHash,
    /// Bytes the chunks decode to, together.
    pub unpacked_length: u32,
    /// Which chunks.
    pub range: ChunkRange,
}

/// Where to fetch some chunks of a xorb (V1).
#[derive(Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct FetchInfo {
    /// The chunks this URL's range covers.
    pub range: ChunkRange,
    /// Presigned URL (secret query).
    pub url: String,
    /// The exact `Range` to send.
    pub url_range: HttpRange,
}

impl fmt::Debug for FetchInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FetchInfo")
            .field("range", &self.range)
            .field("url", &without_query(&self.url))
            .field("url_range", &self.url_range)
            .finish()
    }
}

/// `/v1/reconstructions/{file}`: the terms of the file (or of the requested byte range) and
/// where each xorb's chunks are fetched.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReconstructionV1 {
    /// For a range request `[a, b)`, where `a` falls in the first term's bytes.
    pub offset_into_first_range: u64,
    /// The file's pieces in order.
    pub terms: Vec<ReconstructionTerm>,
    /// For each xorb in `terms`, URLs and ranges to fetch its chunks.
    pub fetch_info: HashMap<XetHash, Vec<FetchInfo>>,
}

/// One chunk range of a xorb and the bytes holding it (V2).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct XorbRangeDescriptor {
    /// The chunks.
    pub chunks: ChunkRange,
    /// Their bytes (end inclusive).
    pub bytes: HttpRange,
}

/// One presigned URL for several ranges of a xorb (V2).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct XorbMultiRangeFetch {
    /// Presigned URL (secret query); the `Range` sent must list exactly `ranges`' bytes.
    pub url: String,
    /// The ranges, by first chunk.
    pub ranges: Vec<XorbRangeDescriptor>,
}

impl fmt::Debug for XorbMultiRangeFetch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("XorbMultiRangeFetch")
            .field("url", &without_query(&self.url))
            .field("ranges", &self.ranges)
            .finish()
    }
}

/// `/v2/reconstructions/{file}`: as V1, with each xorb's ranges grouped under few URLs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReconstructionV2 {
    /// See [`ReconstructionV1::offset_into_first_range`].
    pub offset_into_first_range: u64,
    /// The file's pieces in order.
    pub terms: Vec<ReconstructionTerm>,
    /// For each xorb in `terms`, the URLs and ranges to fetch its chunks.
    pub xorbs: HashMap<XetHash, Vec<XorbMultiRangeFetch>>,
}

impl From<ReconstructionV1> for ReconstructionV2 {
    /// Each V1 fetch becomes a one-range V2 fetch, which is how a client treats both alike.
    fn from(v1: ReconstructionV1) -> Self {
        let xorbs = v1
            .fetch_info
            .into_iter()
            .map(|(hash, fetches)| {
                let fetches = fetches
                    .into_iter()
                    .map(|f| XorbMultiRangeFetch {
                        url: f.url,
                        ranges: vec![XorbRangeDescriptor {
                            chunks: f.range,
                            bytes: f.url_range,
                        }],
                    })
                    .collect();
                (hash, fetches)
            })
            .collect();
        Self {
            offset_into_first_range: v1.offset_into_first_range,
            terms: v1.terms,
            xorbs,
        }
    }
}

/// The URL without its query, which on a presigned URL is the signature.
fn without_query(url: &str) -> String {
    match url.split_once('?') {
        Some((base, _)) => format!("{base}?<redacted>"),
        None => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_range_lengths_never_overflow() {
        let r = |start, end| HttpRange { start, end };
        assert_eq!(r(0, 0).len(), 1);
        assert_eq!(r(10, 19).len(), 10);
        assert_eq!(r(5, 4).len(), 0);
        assert_eq!(r(0, u64::MAX).len(), u64::MAX);
        assert_eq!(r(1, u64::MAX).len(), u64::MAX);
    }

    #[test]
    fn token_response_uses_the_hub_field_names_and_hides_the_token() {
        let json =
            r#"{"accessToken":"xet_secret","exp":1700000000,"casUrl":"https://cas.example"}"#;
        let token: XetTokenResponse = serde_json::from_str(json).unwrap();
        assert_eq!(token.exp, 1_700_000_000);
        assert_eq!(token.cas_url, "https://cas.example");
        assert_eq!(serde_json::to_string(&token).unwrap(), json);
        assert!(!format!("{token:?}").contains("xet_secret"));
    }

    #[test]
    fn v1_reconstruction_parses_the_documented_shape() {
        let hash = "d760aaf4beb07581956e24c847c47f1abd2e419166aa68259035bc412232e9da";
        let json = format!(
            r#"{{"offset_into_first_range":5,
                "terms":[{{"hash":"{hash}","unpacked_length":300,"range":{{"start":0,"end":3}}}}],
                "fetch_info":{{"{hash}":[{{"range":{{"start":0,"end":3}},
                    "url":"http://cdn/xorb?Expires=1&Signature=abc","url_range":{{"start":0,"end":99}}}}]}}}}"#
        );
        let v1: ReconstructionV1 = serde_json::from_str(&json).unwrap();
        assert_eq!(v1.terms[0].hash.to_hex(), hash);
        let fetch = &v1.fetch_info[&v1.terms[0].hash][0];
        assert_eq!(fetch.url_range.header_value(), "bytes=0-99");
        assert_eq!(fetch.url_range.len(), 100);
        assert!(!format!("{v1:?}").contains("Signature=abc"));

        let v2 = ReconstructionV2::from(v1);
        let ranges = &v2.xorbs[&v2.terms[0].hash][0].ranges;
        assert_eq!(ranges[0].chunks, ChunkRange { start: 0, end: 3 });
        assert_eq!(ranges[0].bytes, HttpRange { start: 0, end: 99 });
    }

    #[test]
    fn v2_reconstruction_parses_the_documented_shape() {
        let hash = "d760aaf4beb07581956e24c847c47f1abd2e419166aa68259035bc412232e9da";
        let json = format!(
            r#"{{"terms":[],"offset_into_first_range":0,"xorbs":{{"{hash}":[{{"url":"https://x",
               "ranges":[{{"chunks":{{"start":0,"end":3}},"bytes":{{"start":0,"end":1023}}}},
                         {{"chunks":{{"start":5,"end":8}},"bytes":{{"start":2048,"end":3071}}}}]}}]}}}}"#
        );
        let v2: ReconstructionV2 = serde_json::from_str(&json).unwrap();
        let fetch = &v2.xorbs[&XetHash::from_hex(hash).unwrap()][0];
        assert_eq!(fetch.ranges[1].chunks.len(), 3);
        assert_eq!(fetch.ranges[1].bytes.len(), 1024);
    }

    #[test]
    fn http_range_from_an_exclusive_range() {
        assert_eq!(
            HttpRange::from_exclusive(10..20),
            Some(HttpRange { start: 10, end: 19 })
        );
        assert_eq!(HttpRange::from_exclusive(5..5), None);
    }
}
