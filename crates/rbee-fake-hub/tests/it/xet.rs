//! Xet: discovery on resolve and trees, tokens, reconstructions V1/V2, presigned xorb bytes,
//! faults and counters, dedup across revisions — driven the way a Xet client drives them.

use std::collections::HashMap;

use rbee_fake_hub::{FakeHubConfig, Fault, mutate_chunks};
use rbee_xet::XetHash;
use rbee_xet::cas::{ReconstructionV1, ReconstructionV2, XetTokenResponse};

use crate::common::{Fixture, client, header, pattern, start_with, write};

const MIB: usize = 1024 * 1024;

/// `org/xet` (Xet on) with `model.gguf` (5 MiB) and `config.json`; `org/plain` (Xet off) with
/// the same model; xorbs capped at 1 MiB so the model spans several.
async fn xet_fixture(model: &[u8]) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    write(root, "hf/org/xet/model.gguf", model);
    write(root, "hf/org/xet/config.json", b"{}");
    write(root, "hf/org/xet/fakehub.json", br#"{"xet": true}"#);
    write(root, "hf/org/plain/model.gguf", model);
    start_with(
        |c: FakeHubConfig| {
            let mut c = c.with_hf_token("hf_good");
            c.xet_xorb_bytes = MIB;
            c
        },
        dir,
    )
    .await
}

/// The file hash the way any Xet client computes it.
fn xet_hash_of(data: &[u8]) -> XetHash {
    let mut start = 0;
    let entries: Vec<_> = rbee_xet::chunk_boundaries(data)
        .into_iter()
        .map(|end| {
            let e = (
                rbee_xet::chunk_hash(&data[start..end]),
                (end - start) as u64,
            );
            start = end;
            e
        })
        .collect();
    rbee_xet::file_hash(&entries)
}

struct Discovered {
    hash: String,
    token_route: String,
    reconstruction_route: String,
}

async fn discover(fx: &Fixture, repo: &str, rev: &str, path: &str) -> Option<Discovered> {
    let resp = client()
        .head(fx.hub.hf_resolve_url(repo, rev, path))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 302);
    let hash = header(&resp, "x-xet-hash")?.to_owned();
    let link = header(&resp, "link").expect("a Xet file has a Link header");
    let rel = |name: &str| {
        link.split(", ")
            .find(|part| part.ends_with(&format!("rel=\"{name}\"")))
            .and_then(|part| part.split_once('>'))
            .map(|(url, _)| url.trim_start_matches('<').to_owned())
            .unwrap_or_else(|| panic!("no {name} in {link}"))
    };
    Some(Discovered {
        token_route: rel("xet-auth"),
        reconstruction_route: rel("xet-reconstruction-info"),
        hash,
    })
}

async fn token(route: &str, hub_token: Option<&str>) -> reqwest::Response {
    let mut req = client().get(route);
    if let Some(t) = hub_token {
        req = req.bearer_auth(t);
    }
    req.send().await.unwrap()
}

async fn reconstruction(
    token: &XetTokenResponse,
    version: &str,
    hash: &str,
    range: Option<&str>,
) -> reqwest::Response {
    let mut req = client()
        .get(format!(
            "{}/{version}/reconstructions/{hash}",
            token.cas_url
        ))
        .bearer_auth(&token.access_token);
    if let Some(r) = range {
        req = req.header("range", r);
    }
    req.send().await.unwrap()
}

/// Fetches and decodes every term of a V2 reconstruction, one ranged GET per range as hf_xet
/// does by default; checks each chunk's count and each term's length.
async fn assemble(rec: &ReconstructionV2) -> Result<Vec<u8>, String> {
    let mut fetched: HashMap<(XetHash, u32), Vec<Vec<u8>>> = HashMap::new();
    for (xorb, fetches) in &rec.xorbs {
        for fetch in fetches {
            for r in &fetch.ranges {
                let resp = client()
                    .get(&fetch.url)
                    .header("range", r.bytes.header_value())
                    .send()
                    .await
                    .map_err(|e| e.to_string())?;
                if resp.status() != 206 {
                    return Err(format!("xorb GET answered {}", resp.status()));
                }
                let body = resp.bytes().await.map_err(|e| e.to_string())?;
                let chunks = rbee_xet::decode_chunks(&body, r.chunks.len() as usize)
                    .map_err(|e| e.to_string())?;
                fetched.insert((*xorb, r.chunks.start), chunks);
            }
        }
    }
    let mut out = Vec::new();
    for term in &rec.terms {
        let (start, chunks) = fetched
            .iter()
            .filter(|((x, s), c)| {
                *x == term.hash && *s <= term.range.start && term.range.end <= s + c.len() as u32
            })
            .map(|((_, s), c)| (*s, c))
            .next()
            .ok_or_else(|| format!("no fetched range covers term {term:?}"))?;
        let from = (term.range.start - start) as usize;
        let bytes: Vec<u8> = chunks[from..from + term.range.len() as usize].concat();
        if bytes.len() != term.unpacked_length as usize {
            return Err(format!(
                "term decodes to {} bytes, reconstruction says {}",
                bytes.len(),
                term.unpacked_length
            ));
        }
        out.extend_from_slice(&bytes);
    }
    Ok(out.split_off(rec.offset_into_first_range as usize))
}

async fn fresh_token(d: &Discovered) -> XetTokenResponse {
    let resp = token(&d.token_route, None).await;
    assert_eq!(resp.status(), 200);
    resp.json().await.unwrap()
}

#[tokio::test]
async fn xet_is_off_unless_switched_on() {
    let model = pattern(300_000, 1);
    let fx = xet_fixture(&model).await;
    assert!(
        discover(&fx, "org/plain", "main", "model.gguf")
            .await
            .is_none()
    );
    let tree: serde_json::Value = client()
        .get(fx.hub.url().join("api/models/org/plain/tree/main").unwrap())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(tree[0].get("xetHash").is_none(), "{tree}");
    // Only LFS files are in Xet.
    let tree: serde_json::Value = client()
        .get(fx.hub.url().join("api/models/org/xet/tree/main").unwrap())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let by_path = |p: &str| {
        tree.as_array()
            .unwrap()
            .iter()
            .find(|e| e["path"] == p)
            .unwrap()
            .clone()
    };
    assert!(by_path("config.json").get("xetHash").is_none());
    assert_eq!(
        by_path("model.gguf")["xetHash"],
        xet_hash_of(&model).to_hex()
    );
}

#[tokio::test]
async fn a_xet_file_downloads_through_token_reconstruction_and_xorbs() {
    let model = pattern(5 * MIB, 2);
    let fx = xet_fixture(&model).await;
    let d = discover(&fx, "org/xet", "main", "model.gguf")
        .await
        .unwrap();
    assert_eq!(d.hash, xet_hash_of(&model).to_hex());
    assert!(
        d.token_route
            .contains("/api/models/org/xet/xet-read-token/")
    );
    assert!(
        d.reconstruction_route
            .ends_with(&format!("/v1/reconstructions/{}", d.hash))
    );

    let resp = token(&d.token_route, None).await;
    assert_eq!(resp.status(), 200);
    let from_headers = (
        header(&resp, "x-xet-access-token").unwrap().to_owned(),
        header(&resp, "x-xet-cas-url").unwrap().to_owned(),
        header(&resp, "x-xet-token-expiration").unwrap().to_owned(),
    );
    let tok: XetTokenResponse = resp.json().await.unwrap();
    assert_eq!(
        from_headers,
        (
            tok.access_token.clone(),
            tok.cas_url.clone(),
            tok.exp.to_string()
        )
    );
    assert!(d.reconstruction_route.starts_with(&tok.cas_url));

    let v2: ReconstructionV2 = reconstruction(&tok, "v2", &d.hash, None)
        .await
        .json()
        .await
        .unwrap();
    assert!(
        v2.xorbs.len() >= 4,
        "5 MiB in 1 MiB xorbs: {} xorbs",
        v2.xorbs.len()
    );
    assert_eq!(assemble(&v2).await.unwrap(), model);

    let v1: ReconstructionV1 = reconstruction(&tok, "v1", &d.hash, None)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(v1.terms, v2.terms);
    assert_eq!(assemble(&ReconstructionV2::from(v1)).await.unwrap(), model);

    let counters = fx.hub.xet_counters();
    let over_http: rbee_fake_hub::XetCounters = client()
        .get(fx.hub.url().join("_admin/counters/xet").unwrap())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(over_http, counters);
    assert_eq!(counters.token_requests, 1);
    assert_eq!(
        (counters.reconstructions_v1, counters.reconstructions_v2),
        (1, 1)
    );
    assert_eq!(counters.xorb_bytes.len(), v2.xorbs.len());
    assert!(counters.xorb_bytes_total() >= 2 * 5 * MIB as u64);
    assert_eq!(counters.bridge_requests, 0);
}

#[tokio::test]
async fn chunks_repeated_within_a_file_are_stored_once() {
    let mut model = vec![0u8; 2 * MIB];
    model.extend_from_slice(&pattern(MIB, 12));
    model.extend_from_slice(&vec![0u8; MIB]);
    let fx = xet_fixture(&model).await;
    let d = discover(&fx, "org/xet", "main", "model.gguf")
        .await
        .unwrap();
    assert_eq!(d.hash, xet_hash_of(&model).to_hex());
    let tok = fresh_token(&d).await;
    let rec: ReconstructionV2 = reconstruction(&tok, "v2", &d.hash, None)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(assemble(&rec).await.unwrap(), model);
    // 3 MiB of zeros are 24 identical 128 KiB chunks: one stored, referenced 24 times.
    let stored: u64 = fx.hub.xet_counters().xorb_bytes_total();
    assert!(
        stored < 2 * MIB as u64,
        "{stored} xorb bytes fetched for {} bytes",
        model.len()
    );
}

#[tokio::test]
async fn a_range_of_a_file_gets_the_chunks_covering_it() {
    let model = pattern(3 * MIB, 3);
    let fx = xet_fixture(&model).await;
    let d = discover(&fx, "org/xet", "main", "model.gguf")
        .await
        .unwrap();
    let tok = fresh_token(&d).await;
    let (a, b) = (1_000_003usize, 2_100_000usize);
    let resp = reconstruction(&tok, "v2", &d.hash, Some(&format!("bytes={a}-{b}"))).await;
    assert_eq!(resp.status(), 200);
    let rec: ReconstructionV2 = resp.json().await.unwrap();
    assert!(rec.offset_into_first_range > 0);
    let got = assemble(&rec).await.unwrap();
    assert!(got.len() > b - a, "the chunks cover the range");
    assert_eq!(&got[..=b - a], &model[a..=b]);
    let total: u64 = rec.terms.iter().map(|t| u64::from(t.unpacked_length)).sum();
    assert!(
        total < model.len() as u64 / 2,
        "only the chunks needed: {total}"
    );

    let past = reconstruction(&tok, "v2", &d.hash, Some("bytes=99999999-")).await;
    assert_eq!(past.status(), 416);
}

#[tokio::test]
async fn the_cas_wants_a_genuine_live_token_for_the_right_repo() {
    let model = pattern(200_000, 4);
    let fx = xet_fixture(&model).await;
    let d = discover(&fx, "org/xet", "main", "model.gguf")
        .await
        .unwrap();
    let tok = fresh_token(&d).await;
    let url = format!("{}/v2/reconstructions/{}", tok.cas_url, d.hash);
    let no_auth = client().get(&url).send().await.unwrap();
    assert_eq!(no_auth.status(), 401);
    let hub_token = client()
        .get(&url)
        .bearer_auth("hf_good")
        .send()
        .await
        .unwrap();
    assert_eq!(hub_token.status(), 401);
    let mut forged = tok.clone();
    forged.access_token.push('0');
    assert_eq!(
        reconstruction(&forged, "v2", &d.hash, None).await.status(),
        401
    );

    fx.hub
        .set_faults(vec![Fault::expire_xet_token(0).path("**/xet-read-token/*")]);
    let expired = fresh_token(&d).await;
    assert!(expired.exp <= tok.exp);
    assert_eq!(
        reconstruction(&expired, "v2", &d.hash, None).await.status(),
        401
    );
    fx.hub.clear_faults();

    // A token of another repo does not read this repo's files.
    write(
        fx.dir.path(),
        "hf/org/other/w.safetensors",
        &pattern(70_000, 5),
    );
    write(
        fx.dir.path(),
        "hf/org/other/fakehub.json",
        br#"{"xet": ["*.safetensors"]}"#,
    );
    let other = discover(&fx, "org/other", "main", "w.safetensors")
        .await
        .unwrap();
    let other_tok = fresh_token(&other).await;
    assert_eq!(
        reconstruction(&other_tok, "v2", &d.hash, None)
            .await
            .status(),
        404
    );
    assert_eq!(
        reconstruction(&other_tok, "v2", &other.hash, None)
            .await
            .status(),
        200
    );
}

#[tokio::test]
async fn the_token_route_follows_the_repo_access_rules() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "hf/org/gated/m.gguf", &pattern(10_000, 6));
    write(
        dir.path(),
        "hf/org/gated/fakehub.json",
        br#"{"gated": "auto", "xet": true}"#,
    );
    write(dir.path(), "hf/org/private/m.gguf", &pattern(10_000, 7));
    write(
        dir.path(),
        "hf/org/private/fakehub.json",
        br#"{"private": true, "xet": true}"#,
    );
    let fx = start_with(|c| c.with_hf_token("hf_good"), dir).await;
    let route = |repo: &str| {
        fx.hub
            .url()
            .join(&format!("api/models/{repo}/xet-read-token/main"))
            .unwrap()
            .to_string()
    };
    assert_eq!(token(&route("org/gated"), None).await.status(), 401);
    assert_eq!(
        token(&route("org/gated"), Some("hf_bad")).await.status(),
        403
    );
    assert_eq!(
        token(&route("org/gated"), Some("hf_good")).await.status(),
        200
    );
    assert_eq!(token(&route("org/private"), None).await.status(), 401);
    assert_eq!(
        token(&route("org/private"), Some("hf_good")).await.status(),
        200
    );
    let rev = fx
        .hub
        .url()
        .join("api/models/org/gated/xet-read-token/nope")
        .unwrap();
    assert_eq!(token(rev.as_str(), Some("hf_good")).await.status(), 404);
}

#[tokio::test]
async fn presigned_xorb_urls_hold_only_for_their_range_and_lifetime() {
    let model = pattern(2 * MIB, 8);
    let fx = xet_fixture(&model).await;
    let d = discover(&fx, "org/xet", "main", "model.gguf")
        .await
        .unwrap();
    let tok = fresh_token(&d).await;
    let v1: ReconstructionV1 = reconstruction(&tok, "v1", &d.hash, None)
        .await
        .json()
        .await
        .unwrap();
    let fetch = v1.fetch_info.values().next().unwrap()[0].clone();
    let get = |range: Option<String>| {
        let mut req = client().get(&fetch.url);
        if let Some(r) = range {
            req = req.header("range", r);
        }
        req
    };
    let exact = get(Some(fetch.url_range.header_value()))
        .send()
        .await
        .unwrap();
    assert_eq!(exact.status(), 206);
    assert_eq!(
        exact.bytes().await.unwrap().len() as u64,
        fetch.url_range.len()
    );
    assert_eq!(get(None).send().await.unwrap().status(), 403);
    let other = format!(
        "bytes={}-{}",
        fetch.url_range.start,
        fetch.url_range.end - 1
    );
    assert_eq!(get(Some(other)).send().await.unwrap().status(), 403);
    let with_auth = get(Some(fetch.url_range.header_value()))
        .bearer_auth(&tok.access_token)
        .send()
        .await
        .unwrap();
    assert_eq!(with_auth.status(), 400);
    let unsigned = fetch.url.split('?').next().unwrap().to_owned();
    let resp = client()
        .get(unsigned)
        .header("range", fetch.url_range.header_value())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 403);

    fx.hub.set_faults(vec![
        Fault::expire_redirect(0).path("cas/v1/reconstructions/*"),
    ]);
    let v1: ReconstructionV1 = reconstruction(&tok, "v1", &d.hash, None)
        .await
        .json()
        .await
        .unwrap();
    let fetch = v1.fetch_info.values().next().unwrap()[0].clone();
    let resp = client()
        .get(&fetch.url)
        .header("range", fetch.url_range.header_value())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 403);
    assert!(resp.text().await.unwrap().contains("expired"));
}

#[tokio::test]
async fn faults_reach_every_step() {
    let model = pattern(2 * MIB, 9);
    let fx = xet_fixture(&model).await;
    let d = discover(&fx, "org/xet", "main", "model.gguf")
        .await
        .unwrap();

    fx.hub.set_faults(vec![
        Fault::status(401).path("**/xet-read-token/*").times(1),
    ]);
    assert_eq!(token(&d.token_route, None).await.status(), 401);
    let tok = fresh_token(&d).await;

    fx.hub.set_faults(vec![
        Fault::status(503).path("cas/v2/reconstructions/*").times(1),
    ]);
    assert_eq!(
        reconstruction(&tok, "v2", &d.hash, None).await.status(),
        503
    );
    fx.hub
        .set_faults(vec![Fault::status(404).path("cas/v2/reconstructions/*")]);
    assert_eq!(
        reconstruction(&tok, "v2", &d.hash, None).await.status(),
        404
    );
    assert_eq!(
        reconstruction(&tok, "v1", &d.hash, None).await.status(),
        200
    );

    // A term announcing one byte more than its chunks hold.
    fx.hub
        .set_faults(vec![Fault::reconstruction_lie(1, 0).times(1)]);
    let rec: ReconstructionV2 = reconstruction(&tok, "v2", &d.hash, None)
        .await
        .json()
        .await
        .unwrap();
    let err = assemble(&rec).await.unwrap_err();
    assert!(err.contains("reconstruction says"), "{err}");
    // A byte range cut short of the chunks.
    fx.hub
        .set_faults(vec![Fault::reconstruction_lie(0, -100).times(1)]);
    let rec: ReconstructionV2 = reconstruction(&tok, "v2", &d.hash, None)
        .await
        .json()
        .await
        .unwrap();
    assert!(assemble(&rec).await.is_err());

    // A corrupt byte in a xorb: decoding fails or the chunk's hash does not match.
    fx.hub
        .set_faults(vec![Fault::flip_byte(5000).path("xorbs/*")]);
    let rec: ReconstructionV2 = reconstruction(&tok, "v2", &d.hash, None)
        .await
        .json()
        .await
        .unwrap();
    match assemble(&rec).await {
        Err(_) => {}
        Ok(bytes) => assert_ne!(bytes, model, "the flipped byte shows in the content"),
    }
    fx.hub.clear_faults();
    let rec: ReconstructionV2 = reconstruction(&tok, "v2", &d.hash, None)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(assemble(&rec).await.unwrap(), model);
}

/// Bytes of a reconstruction that live in xorbs other than `known`.
fn new_bytes(rec: &ReconstructionV2, known: &[XetHash]) -> u64 {
    rec.terms
        .iter()
        .filter(|t| !known.contains(&t.hash))
        .map(|t| u64::from(t.unpacked_length))
        .sum()
}

#[tokio::test]
async fn revisions_and_quants_share_chunks_with_what_is_stored() {
    let model = pattern(4 * MIB, 10);
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let changed = mutate_chunks(&model, 0.10, 0);
    let mut quant = model[..2 * MIB].to_vec();
    quant.extend_from_slice(&pattern(2 * MIB, 11));
    write(root, "hf/org/m/model.gguf", &model);
    write(root, "hf/org/m/.revisions/v2/model.gguf", &changed);
    write(root, "hf/org/m/model-q8.gguf", &quant);
    write(root, "hf/org/m/fakehub.json", br#"{"xet": ["*.gguf"]}"#);
    let fx = start_with(|c| c, dir).await;

    let first = discover(&fx, "org/m", "main", "model.gguf").await.unwrap();
    let tok = fresh_token(&first).await;
    let base: ReconstructionV2 = reconstruction(&tok, "v2", &first.hash, None)
        .await
        .json()
        .await
        .unwrap();
    let known: Vec<XetHash> = base.terms.iter().map(|t| t.hash).collect();

    let second = discover(&fx, "org/m", "v2", "model.gguf").await.unwrap();
    let rec: ReconstructionV2 = reconstruction(&tok, "v2", &second.hash, None)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(assemble(&rec).await.unwrap(), changed);
    let fresh = new_bytes(&rec, &known);
    assert!(
        fresh > 0 && fresh * 100 <= changed.len() as u64 * 15,
        "{fresh} new bytes"
    );

    let q = discover(&fx, "org/m", "main", "model-q8.gguf")
        .await
        .unwrap();
    let rec: ReconstructionV2 = reconstruction(&tok, "v2", &q.hash, None)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(assemble(&rec).await.unwrap(), quant);
    let fresh = new_bytes(&rec, &known);
    assert!(
        fresh * 100 <= quant.len() as u64 * 55,
        "{fresh} new bytes of {}",
        quant.len()
    );
}
