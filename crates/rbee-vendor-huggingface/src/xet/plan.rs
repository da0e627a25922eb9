//! How the CAS says to rebuild a file: its terms, and the presigned xorb ranges that hold
//! them ([`Plan`]), asked for with [`reconstruct`] and checked with [`spans_of`].

use std::collections::HashMap;
use std::ops::Range;

use rbee_artifact::Error;
use rbee_transfer::{ApiRequest, Transfer, redact_url};
use rbee_xet::XetHash;
use rbee_xet::cas::{ReconstructionTerm, ReconstructionV1, ReconstructionV2, XorbRangeDescriptor};
use tokio_util::sync::CancellationToken;

use super::token::XetTokens;

/// A reconstruction lists a term per run of chunks: tens of bytes each, so this allows files
/// far larger than any model while bounding what a broken server can make us hold.
const MAX_RECONSTRUCTION_BODY: usize = 64 << 20;

/// The terms of a file and the presigned ranges that hold them, replaced when they expire.
/// No `Debug`: the presigned URLs carry their credential in the query string.
pub(super) struct Plan {
    pub(super) terms: Vec<ReconstructionTerm>,
    /// Per xorb: presigned URLs with the chunk and byte ranges each may be asked for.
    xorbs: HashMap<XetHash, Vec<(String, XorbRangeDescriptor)>>,
    pub(super) generation: u64,
}

impl Plan {
    pub(super) fn new(r: ReconstructionV2) -> Self {
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
    pub(super) fn fetch_for(
        &self,
        term: &ReconstructionTerm,
    ) -> Option<(String, XorbRangeDescriptor)> {
        self.xorbs.get(&term.hash)?.iter().find_map(|(url, d)| {
            (d.chunks.start <= term.range.start && term.range.end <= d.chunks.end)
                .then(|| (url.clone(), d.clone()))
        })
    }
}

/// The file's spans, term by term, once every term is non-empty and fetchable and every
/// byte range is one whose length can be computed.
pub(super) fn spans_of(plan: &Plan, hash: &str) -> Result<Vec<Range<u64>>, Error> {
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

/// `GET {casUrl}/v2/reconstructions/{hash}`, or `/v1/` when V2 is not served (404, 501); a
/// token the CAS refuses is replaced once. `bytes`: only that part of the file (`Range`).
pub(super) async fn reconstruct(
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
pub(super) mod tests {
    use super::*;
    use rbee_xet::cas::{ChunkRange, HttpRange, XorbMultiRangeFetch};

    pub(in crate::xet) fn reconstruction(end: u64) -> ReconstructionV2 {
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
