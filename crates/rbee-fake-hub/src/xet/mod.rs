//! The Hub's Xet storage, faked: LFS files of Xet-enabled repos are also stored as xorbs and
//! announced the way the Hub announces them, so a Xet client (ours or `hf_xet`) downloads them
//! natively while plain clients keep using the LFS bridge (the 302 to the CDN).
//!
//! # Switches (all off by default)
//!
//! - [`FakeHubConfig::xet`](crate::FakeHubConfig::xet): every LFS file of every repo.
//! - A repo's `fakehub.json`: `"xet": true` (all its LFS files) or `"xet": ["*.gguf", …]`
//!   (the LFS files whose repo path matches one of the globs; a glob without `/` matches the
//!   file name).
//! - [`FakeHubConfig::xet_token_ttl`](crate::FakeHubConfig::xet_token_ttl) (default 1 h) and
//!   [`FakeHubConfig::xet_compression`](crate::FakeHubConfig::xet_compression) (default LZ4).
//!
//! # What a Xet file gets
//!
//! | where | what |
//! |---|---|
//! | resolve `HEAD`/`GET` (the 302) | `X-Xet-Hash`, `Link: <hub/api/models/{repo}/xet-read-token/{commit}>; rel="xet-auth", <cas/v1/reconstructions/{hash}>; rel="xet-reconstruction-info"` |
//! | tree listing | `"xetHash"` on the file's entry |
//! | `GET /api/models/{repo}/xet-read-token/{rev}` (hub) | `{accessToken, exp, casUrl}`, also as `X-Xet-Access-Token`, `X-Xet-Token-Expiration`, `X-Xet-Cas-Url` (huggingface_hub reads the headers, hf_xet the body); private and gated repos need a valid Hub token, as for resolve |
//! | `GET {casUrl}/v1/reconstructions/{hash}`, `/v2/…` (CDN, `casUrl` = `{cdn}/cas`) | the terms and presigned xorb URLs, with `Range: bytes=a-b` for part of the file (416 past the end); `Authorization: Bearer <accessToken>` required (401 if missing, forged or expired; 404 for a hash the token's repo does not have) |
//! | `GET {cdn}/xorbs/{hash}?range=…&expires=…&sig=…` (CDN) | xorb bytes; the `Range` header must be exactly one signed range (or all of them, answered whole); 403 for an expired or forged URL or another range; 400 with an `Authorization` header |
//!
//! Files are cut and packed when first listed or resolved (once per file version, on the
//! blocking pool, reading 1 MiB at a time; memory: one xorb of at most 64 MiB being packed).
//! Xorbs are written to a temporary folder that lives as long as the hub. Chunks already
//! stored for any file are not stored again: a second revision or a second file sharing
//! chunks with the first gets terms pointing into the first file's xorbs, as on the Hub.
//! [`mutate_chunks`] makes such content.
//!
//! # Faults and counters
//!
//! Every step answers to the usual [`Fault`](crate::Fault)s by path: `**/xet-read-token/*`
//! (e.g. `status(401)`, [`Fault::expire_xet_token`](crate::Fault::expire_xet_token)),
//! `cas/v2/reconstructions/*` (`status(500)`, [`Fault::reconstruction_lie`](crate::Fault::reconstruction_lie),
//! [`Fault::expire_redirect`](crate::Fault::expire_redirect) for the presigned URLs it hands
//! out, `status(404)` to make a client fall back to V1), `xorbs/*` (`flip_byte`, `stall`,
//! `hang`, `drop_after`, …). Per-path counters count each of them; [`XetCounters`] sums them
//! up.

mod cas;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::counters::CountersSnapshot;

pub(crate) use cas::{api as cas_api, cas_url, mint_token, xorb as xorb_route};

/// The Xet traffic a hub served, summed from its per-path counters.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct XetCounters {
    /// Requests to `xet-read-token` routes.
    pub token_requests: u64,
    /// Requests to `/cas/v1/reconstructions/…`.
    pub reconstructions_v1: u64,
    /// Requests to `/cas/v2/reconstructions/…`.
    pub reconstructions_v2: u64,
    /// Requests for xorb bytes.
    pub xorb_requests: u64,
    /// Xorb body bytes sent, by xorb hash.
    pub xorb_bytes: BTreeMap<String, u64>,
    /// Requests for HuggingFace files through the LFS bridge (`/files/hf/…`).
    pub bridge_requests: u64,
    /// Body bytes sent through the LFS bridge.
    pub bridge_bytes: u64,
}

impl XetCounters {
    /// Sums the Xet paths of `snapshot`.
    pub fn from_snapshot(snapshot: &CountersSnapshot) -> Self {
        let mut out = Self::default();
        for (path, c) in &snapshot.paths {
            if path.starts_with("/api/") && path.contains("/xet-read-token/") {
                out.token_requests += c.requests;
            } else if path.starts_with("/cas/v1/reconstructions/") {
                out.reconstructions_v1 += c.requests;
            } else if path.starts_with("/cas/v2/reconstructions/") {
                out.reconstructions_v2 += c.requests;
            } else if let Some(hash) = path.strip_prefix("/xorbs/") {
                out.xorb_requests += c.requests;
                *out.xorb_bytes.entry(hash.to_owned()).or_default() += c.bytes_sent;
            } else if path.starts_with("/files/hf/") {
                out.bridge_requests += c.requests;
                out.bridge_bytes += c.bytes_sent;
            }
        }
        out
    }

    /// Xorb body bytes sent, all xorbs together.
    pub fn xorb_bytes_total(&self) -> u64 {
        self.xorb_bytes.values().sum()
    }

    /// Reconstruction requests, both versions.
    pub fn reconstructions(&self) -> u64 {
        self.reconstructions_v1 + self.reconstructions_v2
    }
}

/// `data` with about `fraction` of its Xet chunks changed (every `1/fraction`-th chunk,
/// counting from `seed % step`, gets one byte in its middle inverted), for dedup tests: a
/// second revision "with 10% changed chunks" is `mutate_chunks(&first, 0.10, 0)`.
///
/// Content-defined chunking puts the boundaries back in place a little after each change, so
/// the result shares the other chunks with `data`.
pub fn mutate_chunks(data: &[u8], fraction: f64, seed: u64) -> Vec<u8> {
    let mut out = data.to_vec();
    if fraction <= 0.0 {
        return out;
    }
    let step = (1.0 / fraction.min(1.0)).round().max(1.0) as usize;
    let mut start = 0;
    for (i, end) in rbee_xet::chunk_boundaries(data).into_iter().enumerate() {
        if (i + seed as usize).is_multiple_of(step) {
            out[(start + end) / 2] ^= 0xff;
        }
        start = end;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mutated_content_keeps_most_chunks() {
        let data: Vec<u8> = (0..4_000_000u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect();
        let changed = mutate_chunks(&data, 0.10, 0);
        let hashes = |d: &[u8]| {
            let mut start = 0;
            rbee_xet::chunk_boundaries(d)
                .into_iter()
                .map(|end| {
                    let h = rbee_xet::chunk_hash(&d[start..end]);
                    start = end;
                    h
                })
                .collect::<Vec<_>>()
        };
        let (a, b) = (hashes(&data), hashes(&changed));
        let shared = b.iter().filter(|h| a.contains(h)).count();
        assert!(
            shared * 100 >= b.len() * 75,
            "{shared} of {} shared",
            b.len()
        );
        assert!(shared < b.len());
    }
}
