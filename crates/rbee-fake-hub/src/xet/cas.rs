//! The CAS routes (reconstructions, presigned xorb bytes) and the token the Hub hands out.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use rbee_xet::XetHash;
use rbee_xet::cas::{
    ChunkRange, FetchInfo, HttpRange, ReconstructionTerm, ReconstructionV1, ReconstructionV2,
    XetTokenResponse, XorbMultiRangeFetch, XorbRangeDescriptor,
};
use serde_json::json;

use crate::fault::{FaultAction, Host, Phase};
use crate::files::{RangeAsk, ServeOptions, parse_range, serve_file};
use crate::reply::{s3_denied, s3_error};
use crate::sign::SignError;
use crate::state::HubState;
use crate::url_path::decode_path;
use crate::xet_store::{StoredFile, Term};

type AppState = Arc<HubState>;

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs()
}

/// What a CAS token is signed for.
fn token_subject(repo: &str) -> String {
    format!("xet-read {repo}")
}

/// A CAS read token for `repo`, valid for the configured lifetime (or less, when an
/// `expire_xet_token` fault matches `request_path`).
pub(crate) fn mint_token(state: &HubState, repo: &str, request_path: &str) -> XetTokenResponse {
    let ttl = state
        .faults
        .take(Phase::XetToken, Host::Hub, request_path, true)
        .into_iter()
        .find_map(|a| match a {
            FaultAction::ExpireXetToken { after_secs } => Some(Duration::from_secs(after_secs)),
            _ => None,
        })
        .unwrap_or(state.config.xet_token_ttl);
    let exp = now_secs() + ttl.as_secs();
    let signed = state.signer.token(&token_subject(repo), exp);
    XetTokenResponse {
        access_token: format!("xet_{}_{signed}", hex::encode(repo)),
        exp,
        cas_url: cas_url(state),
    }
}

/// The CAS base URL: `{cdn}/cas`, another host than the hub's, as on the Hub.
pub(crate) fn cas_url(state: &HubState) -> String {
    format!("{}cas", state.cdn_url)
}

/// The repo a CAS bearer token was issued for, or why the token is refused (a 401).
fn token_repo(state: &HubState, headers: &HeaderMap) -> Result<String, &'static str> {
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, t)| t.trim())
        .ok_or("missing bearer token")?;
    let (repo_hex, signed) = token
        .strip_prefix("xet_")
        .and_then(|t| t.split_once('_'))
        .ok_or("not a CAS token")?;
    let repo = hex::decode(repo_hex)
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .ok_or("not a CAS token")?;
    match state.signer.check_token(&token_subject(&repo), signed) {
        Ok(()) => Ok(repo),
        Err(SignError::Expired) => Err("token expired"),
        Err(SignError::BadSignature) => Err("invalid token"),
    }
}

fn cas_error(status: StatusCode, message: &str) -> Response {
    (status, axum::Json(json!({ "error": message }))).into_response()
}

/// `GET /cas/{v1|v2}/reconstructions/{file hash}` on the CDN listener.
pub(crate) async fn api(State(state): State<AppState>, req: Request) -> Response {
    if req.method() != Method::GET {
        return (StatusCode::METHOD_NOT_ALLOWED, [(header::ALLOW, "GET")]).into_response();
    }
    let path = decode_path(req.uri().path());
    let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let ["cas", version @ ("v1" | "v2"), "reconstructions", hash] = parts.as_slice() else {
        return cas_error(StatusCode::NOT_FOUND, "not found");
    };
    let repo = match token_repo(&state, req.headers()) {
        Ok(repo) => repo,
        Err(why) => return cas_error(StatusCode::UNAUTHORIZED, &format!("fake CAS: {why}")),
    };
    let Ok(hash) = XetHash::from_hex(hash) else {
        return cas_error(StatusCode::BAD_REQUEST, "invalid file hash");
    };
    let Some(file) = state.xet.lookup(&hash, &repo) else {
        return cas_error(StatusCode::NOT_FOUND, "file not found");
    };
    let range = req
        .headers()
        .get(header::RANGE)
        .and_then(|v| v.to_str().ok());
    let (start, end) = match range.map(|r| parse_range(r, file.size)) {
        None | Some(RangeAsk::Full) if file.size == 0 => (0, 0),
        None | Some(RangeAsk::Full) => (0, file.size),
        Some(RangeAsk::Part { start, end }) => (start, end + 1),
        Some(RangeAsk::Unsatisfiable) => {
            let mut resp = cas_error(StatusCode::RANGE_NOT_SATISFIABLE, "range not satisfiable");
            if let Ok(v) = HeaderValue::from_str(&format!("bytes */{}", file.size)) {
                resp.headers_mut().insert(header::CONTENT_RANGE, v);
            }
            return resp;
        }
    };
    let lie = state
        .faults
        .take(Phase::Reconstruction, Host::Cdn, &path, true)
        .into_iter()
        .find_map(|a| match a {
            FaultAction::ReconstructionLie {
                unpacked_length_delta,
                url_range_delta,
            } => Some((unpacked_length_delta, url_range_delta)),
            _ => None,
        });
    let ttl = state
        .faults
        .take(Phase::Redirect, Host::Cdn, &path, true)
        .into_iter()
        .find_map(|a| match a {
            FaultAction::ExpireRedirect { after_secs } => Some(Duration::from_secs(after_secs)),
            _ => None,
        })
        .unwrap_or(state.config.signed_url_ttl);

    let plan = match plan(&state, &file, start, end, lie) {
        Ok(plan) => plan,
        Err(message) => {
            tracing::warn!(%message, "reconstruction failed");
            return cas_error(StatusCode::INTERNAL_SERVER_ERROR, "internal error");
        }
    };
    let signer = |xorb: &XetHash, ranges: &[HttpRange]| presigned_url(&state, xorb, ranges, ttl);
    if *version == "v1" {
        let mut fetch_info: HashMap<XetHash, Vec<FetchInfo>> = HashMap::new();
        for (term, bytes) in plan.terms.iter().zip(&plan.bytes) {
            let info = FetchInfo {
                range: term.range,
                url: signer(&term.hash, std::slice::from_ref(bytes)),
                url_range: *bytes,
            };
            let list = fetch_info.entry(term.hash).or_default();
            if !list
                .iter()
                .any(|f| f.range == info.range && f.url_range == info.url_range)
            {
                list.push(info);
            }
        }
        axum::Json(ReconstructionV1 {
            offset_into_first_range: plan.offset,
            terms: plan.terms,
            fetch_info,
        })
        .into_response()
    } else {
        let mut by_xorb: HashMap<XetHash, Vec<XorbRangeDescriptor>> = HashMap::new();
        for (term, bytes) in plan.terms.iter().zip(&plan.bytes) {
            by_xorb
                .entry(term.hash)
                .or_default()
                .push(XorbRangeDescriptor {
                    chunks: term.range,
                    bytes: *bytes,
                });
        }
        let xorbs = by_xorb
            .into_iter()
            .map(|(hash, ranges)| {
                let ranges = merge_descriptors(ranges);
                let byte_ranges: Vec<HttpRange> = ranges.iter().map(|r| r.bytes).collect();
                let fetch = XorbMultiRangeFetch {
                    url: signer(&hash, &byte_ranges),
                    ranges,
                };
                (hash, vec![fetch])
            })
            .collect();
        axum::Json(ReconstructionV2 {
            offset_into_first_range: plan.offset,
            terms: plan.terms,
            xorbs,
        })
        .into_response()
    }
}

/// The terms of bytes `[start, end)` of a file, each with the xorb bytes holding its chunks.
struct Plan {
    offset: u64,
    terms: Vec<ReconstructionTerm>,
    bytes: Vec<HttpRange>,
}

/// Cuts the file's terms to the chunks covering `[start, end)`, then applies a lie.
fn plan(
    state: &HubState,
    file: &StoredFile,
    start: u64,
    end: u64,
    lie: Option<(i64, i64)>,
) -> Result<Plan, String> {
    let mut out = Plan {
        offset: 0,
        terms: Vec::new(),
        bytes: Vec::new(),
    };
    let overlapping = file
        .terms
        .iter()
        .filter(|t| t.file_start < end && t.file_start + t.len > start);
    for (i, term) in overlapping.enumerate() {
        let xorb = state
            .xet
            .xorb(&term.xorb)
            .ok_or_else(|| format!("xorb {} is not stored", term.xorb))?;
        let Term {
            range, file_start, ..
        } = *term;
        let mut first = range.start;
        let mut at = file_start;
        // Skip whole chunks before the range, keep those that reach into it.
        while first < range.end {
            let len = u64::from(xorb.chunks[first as usize].len);
            if at + len > start {
                break;
            }
            at += len;
            first += 1;
        }
        let (mut last, mut len, mut pos) = (first, 0u64, at);
        while last < range.end && pos < end {
            let l = u64::from(xorb.chunks[last as usize].len);
            len += l;
            pos += l;
            last += 1;
        }
        if i == 0 {
            out.offset = start - at;
        }
        let byte_range = rbee_xet::chunk_byte_range(&xorb.chunks, first..last)
            .and_then(HttpRange::from_exclusive)
            .ok_or_else(|| format!("chunks {first}..{last} outside xorb {}", term.xorb))?;
        out.terms.push(ReconstructionTerm {
            hash: term.xorb,
            unpacked_length: len as u32,
            range: ChunkRange {
                start: first,
                end: last,
            },
        });
        out.bytes.push(byte_range);
    }
    if let (Some((unpacked_delta, url_delta)), Some(term), Some(bytes)) =
        (lie, out.terms.first_mut(), out.bytes.first_mut())
    {
        term.unpacked_length = (i64::from(term.unpacked_length) + unpacked_delta).max(0) as u32;
        bytes.end = (bytes.end as i64 + url_delta).max(bytes.start as i64) as u64;
    }
    Ok(out)
}

/// Sorts a xorb's ranges and merges overlapping or touching ones.
fn merge_descriptors(mut ranges: Vec<XorbRangeDescriptor>) -> Vec<XorbRangeDescriptor> {
    ranges.sort_by_key(|r| (r.chunks.start, r.chunks.end));
    let mut merged: Vec<XorbRangeDescriptor> = Vec::with_capacity(ranges.len());
    for r in ranges {
        match merged.last_mut() {
            Some(m) if r.chunks.start <= m.chunks.end => {
                m.chunks.end = m.chunks.end.max(r.chunks.end);
                m.bytes.end = m.bytes.end.max(r.bytes.end);
            }
            _ => merged.push(r),
        }
    }
    merged
}

/// The ranges as they appear in a presigned URL and a `Range` header: `a-b,c-d`.
fn range_list(ranges: &[HttpRange]) -> String {
    ranges
        .iter()
        .map(|r| format!("{}-{}", r.start, r.end))
        .collect::<Vec<_>>()
        .join(",")
}

fn signed_subject(xorb: &str, ranges: &str) -> String {
    format!("/xorbs/{xorb} range={ranges}")
}

/// A presigned URL for `ranges` of a xorb on the CDN, valid for `ttl`.
fn presigned_url(state: &HubState, xorb: &XetHash, ranges: &[HttpRange], ttl: Duration) -> String {
    let list = range_list(ranges);
    let query = state
        .signer
        .query(&signed_subject(&xorb.to_hex(), &list), ttl);
    let mut url = state.cdn_url.clone();
    url.set_path(&format!("xorbs/{}", xorb.to_hex()));
    url.set_query(Some(&format!("range={list}&{query}")));
    url.into()
}

/// `GET|HEAD /xorbs/{hash}?range=…&expires=…&sig=…` on the CDN listener.
pub(crate) async fn xorb(State(state): State<AppState>, req: Request) -> Response {
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return (
            StatusCode::METHOD_NOT_ALLOWED,
            [(header::ALLOW, "GET, HEAD")],
        )
            .into_response();
    }
    let path = decode_path(req.uri().path());
    let hash = path.trim_start_matches("/xorbs/");
    let query = req.uri().query();
    let signed = url::form_urlencoded::parse(query.unwrap_or_default().as_bytes())
        .find(|(k, _)| k == "range")
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default();
    match state.signer.check(&signed_subject(hash, &signed), query) {
        Ok(true) if req.headers().contains_key(header::AUTHORIZATION) => {
            return s3_error(
                StatusCode::BAD_REQUEST,
                "InvalidArgument",
                "Only one auth mechanism allowed; only the X-Amz-Algorithm query parameter, Signature query string parameter or the Authorization header should be specified",
            );
        }
        Ok(true) => {}
        Ok(false) => return s3_denied("Request is not signed"),
        Err(SignError::Expired) => return s3_denied("Request has expired"),
        Err(SignError::BadSignature) => {
            return s3_denied(
                "The request signature we calculated does not match the signature you provided",
            );
        }
    }
    // The signature covers the ranges: any other Range is refused, as the Hub's CDN does.
    let asked = req
        .headers()
        .get(header::RANGE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("bytes="))
        .unwrap_or_default();
    if asked.is_empty() || !(asked == signed || signed.split(',').any(|r| r == asked)) {
        return s3_denied("The Range header does not match the signed range");
    }
    let Some(stored) = XetHash::from_hex(hash)
        .ok()
        .and_then(|h| state.xet.xorb(&h))
    else {
        return s3_error(
            StatusCode::NOT_FOUND,
            "NoSuchKey",
            "The specified key does not exist.",
        );
    };
    serve_file(
        req.method(),
        req.headers(),
        &stored.path,
        ServeOptions::default(),
        state.config.read_chunk,
    )
    .await
}
