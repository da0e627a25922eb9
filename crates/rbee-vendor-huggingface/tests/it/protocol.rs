//! Protocol cases against wiremock: one `MockServer` per test, request counts pinned.

use std::path::Path;

use rbee_artifact::{Error, FileSource, ResolveOptions, VendorSource};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;
use wiremock::matchers::{header, header_exists, method, path, query_param};
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

use crate::common::*;

/// A sibling entry as the revision endpoint writes it with `blobs=true`.
fn sibling(name: &str, data: &[u8], lfs: bool) -> Value {
    let mut s = json!({"rfilename": name, "size": data.len(), "blobId": git_oid(data)});
    if lfs {
        s["lfs"] = json!({"sha256": sha(data).to_string(), "size": data.len(), "pointerSize": 134});
    }
    s
}

fn info(siblings: Vec<Value>) -> Value {
    json!({"_id": "x", "id": "o/r", "sha": COMMIT, "private": false, "gated": false, "siblings": siblings})
}

async fn mount_info(server: &MockServer, rev_path: &str, body: Value, times: u64) {
    Mock::given(method("GET"))
        .and(path(format!("/api/models/o/r/revision/{rev_path}")))
        .and(query_param("blobs", "true"))
        .respond_with(ResponseTemplate::new(200).set_body_json(body))
        .expect(times)
        .mount(server)
        .await;
}

fn gguf_repo() -> Vec<Value> {
    vec![
        sibling(".gitattributes", b"*.gguf filter=lfs\n", false),
        sibling("README.md", b"# model\n", false),
        sibling("m.Q2_K.gguf", &bytes(200, 1), true),
        sibling("m.Q4_K_M.gguf", &bytes(400, 2), true),
        sibling("m.Q8_0.gguf", &bytes(800, 3), true),
    ]
}

#[tokio::test]
async fn one_api_call_resolves_a_quant_to_commit_urls() {
    let server = MockServer::start().await;
    mount_info(&server, "main", info(gguf_repo()), 1).await;
    Mock::given(path(format!("/api/models/o/r/tree/{COMMIT}")))
        .respond_with(ResponseTemplate::new(500))
        .expect(0)
        .mount(&server)
        .await;
    let home = tempfile::tempdir().unwrap();
    let v = vendor(&server.uri(), home.path(), false);

    let plan = resolve(&v, "hf:o/r:q4_k_m").await.unwrap();
    assert_eq!(plan.revision.as_deref(), Some(COMMIT));
    assert_eq!(plan.files.len(), 1);
    let f = &plan.files[0];
    assert_eq!(f.path, "m.Q4_K_M.gguf");
    assert_eq!(f.size, Some(400));
    assert_eq!(f.sha256, Some(sha(&bytes(400, 2))));
    assert_eq!(f.version.as_deref(), Some(git_oid(&bytes(400, 2)).as_str()));
    let FileSource::Http { url } = &f.source else {
        panic!("{:?}", f.source)
    };
    assert_eq!(
        url.as_str(),
        format!("{}/o/r/resolve/{COMMIT}/m.Q4_K_M.gguf", server.uri())
    );

    // No quant: the default preference.
    let server2 = MockServer::start().await;
    mount_info(&server2, "main", info(gguf_repo()), 1).await;
    let v = vendor(&server2.uri(), home.path(), false);
    let plan = resolve(&v, "o/r").await.unwrap();
    assert_eq!(plan.files[0].path, "m.Q4_K_M.gguf");
    assert!(
        plan.notes.iter().any(|n| n.contains("default preference")),
        "{:?}",
        plan.notes
    );
}

#[tokio::test]
async fn revisions_travel_as_one_encoded_segment() {
    let server = MockServer::start().await;
    mount_info(&server, "refs%2Fpr%2F1", info(gguf_repo()), 1).await;
    mount_info(&server, "release%2Fv2", info(gguf_repo()), 1).await;
    let home = tempfile::tempdir().unwrap();
    let v = vendor(&server.uri(), home.path(), false);
    let plan = resolve(&v, "hf:o/r@refs/pr/1:Q8_0").await.unwrap();
    assert_eq!(plan.revision.as_deref(), Some(COMMIT));
    assert!(plan.notes.iter().any(|n| n.contains("refs/pr/1 is commit")));
    resolve(&v, "hf:o/r@release%2Fv2:Q8_0").await.unwrap();
}

#[tokio::test]
async fn missing_sizes_fall_back_to_the_paginated_tree_at_the_commit() {
    let server = MockServer::start().await;
    let body = json!({"sha": COMMIT, "siblings": [{"rfilename": "a/m.Q4_K_M.gguf"}, {"rfilename": "config.json"}]});
    mount_info(&server, "main", body, 1).await;
    let data = bytes(300, 9);
    let page2 = format!(
        "{}/api/models/o/r/tree/{COMMIT}?recursive=true&cursor=p2",
        server.uri()
    );
    Mock::given(method("GET"))
        .and(path(format!("/api/models/o/r/tree/{COMMIT}")))
        .and(query_param("cursor", "p2"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!([
            {"type": "file", "path": "config.json", "size": 2, "oid": git_oid(b"{}")}
        ])))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path(format!("/api/models/o/r/tree/{COMMIT}")))
        .and(query_param("recursive", "true"))
        .respond_with(move |req: &Request| {
            if req.url.query().unwrap_or_default().contains("cursor") {
                return ResponseTemplate::new(500);
            }
            ResponseTemplate::new(200)
                .insert_header("Link", format!("<{page2}>; rel=\"next\"").as_str())
                .set_body_json(json!([
                    {"type": "directory", "path": "a", "size": 0, "oid": "d"},
                    {"type": "file", "path": "a/m.Q4_K_M.gguf", "size": 134, "oid": git_oid(b"pointer"),
                     "lfs": {"oid": sha(&bytes(300, 9)).to_string(), "size": 300, "pointerSize": 134}}
                ]))
        })
        .expect(1)
        .mount(&server)
        .await;
    let home = tempfile::tempdir().unwrap();
    let v = vendor(&server.uri(), home.path(), false);
    let plan = resolve(&v, "hf:o/r:Q4_K_M").await.unwrap();
    assert_eq!(plan.files.len(), 1);
    assert_eq!(plan.files[0].path, "a/m.Q4_K_M.gguf");
    assert_eq!(
        plan.files[0].size,
        Some(300),
        "the LFS size, not the pointer's"
    );
    assert_eq!(
        plan.files[0].sha256,
        Some(sha(&data)),
        "tree's lfs.oid is the sha256"
    );
}

#[tokio::test]
async fn a_next_page_on_another_host_is_refused() {
    let server = MockServer::start().await;
    mount_info(
        &server,
        "main",
        json!({"sha": COMMIT, "siblings": [{"rfilename": "x.gguf"}]}),
        1,
    )
    .await;
    Mock::given(path(format!("/api/models/o/r/tree/{COMMIT}")))
        .respond_with(
            ResponseTemplate::new(200)
                .insert_header("Link", "<http://127.0.0.2:9/steal>; rel=\"next\"")
                .set_body_json(json!([])),
        )
        .expect(1)
        .mount(&server)
        .await;
    let home = tempfile::tempdir().unwrap();
    let v = vendor(&server.uri(), home.path(), true);
    let e = resolve(&v, "hf:o/r").await.unwrap_err();
    assert!(matches!(e, Error::Protocol { .. }), "{e}");
    assert!(e.to_string().contains("another host"), "{e}");
}

#[tokio::test]
async fn safetensors_repo_resolves_to_a_snapshot_and_globs_override() {
    let server = MockServer::start().await;
    let siblings = vec![
        sibling("README.md", b"r", false),
        sibling("config.json", b"{}", false),
        sibling("model.safetensors", &bytes(100, 1), true),
        sibling("pytorch_model.bin", &bytes(100, 2), true),
        sibling("tokenizer.json", b"{}", false),
        sibling("onnx/model.onnx", &bytes(10, 3), true),
    ];
    mount_info(&server, "main", info(siblings), 3).await;
    let home = tempfile::tempdir().unwrap();
    let v = vendor(&server.uri(), home.path(), false);
    let paths = |p: &rbee_artifact::ResolvedArtifact| {
        p.files.iter().map(|f| f.path.clone()).collect::<Vec<_>>()
    };
    let plan = resolve(&v, "hf:o/r").await.unwrap();
    assert_eq!(
        paths(&plan),
        vec!["config.json", "model.safetensors", "tokenizer.json"]
    );
    let plan = resolve_with(
        &v,
        "hf:o/r",
        &ResolveOptions::with_globs(vec!["*.json".into(), "onnx/".into()], vec![]),
    )
    .await
    .unwrap();
    assert_eq!(
        paths(&plan),
        vec!["config.json", "tokenizer.json", "onnx/model.onnx"]
    );
    let plan = resolve_with(
        &v,
        "hf:o/r",
        &ResolveOptions::with_globs(vec![], vec!["tokenizer*".into()]),
    )
    .await
    .unwrap();
    assert_eq!(paths(&plan), vec!["config.json", "model.safetensors"]);
}

#[tokio::test]
async fn hostile_names_never_become_paths() {
    let server = MockServer::start().await;
    let siblings = vec![
        sibling("../evil.Q4_K_M.gguf", b"x", true),
        sibling("/etc/evil.Q4_K_M.gguf", b"x", true),
        sibling("a/../../evil.Q4_K_M.gguf", b"x", true),
        sibling("a\\..\\evil.Q4_K_M.gguf", b"x", true),
        sibling("ok.Q8_0.gguf", b"fine", true),
    ];
    mount_info(&server, "main", info(siblings), 2).await;
    let home = tempfile::tempdir().unwrap();
    let v = vendor(&server.uri(), home.path(), false);
    let plan = resolve(&v, "hf:o/r").await.unwrap();
    assert_eq!(plan.files.len(), 1);
    assert_eq!(plan.files[0].path, "ok.Q8_0.gguf");
    assert!(
        plan.notes
            .iter()
            .any(|n| n.contains("not safe relative paths")),
        "{:?}",
        plan.notes
    );
    // Even a glob that matches everything cannot bring them back.
    let plan = resolve_with(
        &v,
        "hf:o/r",
        &ResolveOptions::with_globs(vec!["*".into()], vec![]),
    )
    .await
    .unwrap();
    assert_eq!(plan.files.len(), 1);

    // A doctored plan is refused before anything is written.
    let mut doctored = plan.clone();
    doctored.files[0].path = "../escape.gguf".into();
    let dest = tempfile::tempdir().unwrap();
    let (out, _) = download_all(&v, &doctored, &dest.path().join("files")).await;
    assert!(out.is_err());
    assert!(!dest.path().join("escape.gguf").exists());
}

async fn error_for(status: u16, code: Option<&str>, token: bool, reference: &str) -> Error {
    let server = MockServer::start().await;
    let mut t = ResponseTemplate::new(status).set_body_json(json!({"error": "nope"}));
    if let Some(code) = code {
        t = t.insert_header("X-Error-Code", code);
    }
    Mock::given(method("GET"))
        .respond_with(t)
        .mount(&server)
        .await;
    let home = tempfile::tempdir().unwrap();
    let v = vendor(&server.uri(), home.path(), token);
    let e = resolve(&v, reference).await.unwrap_err();
    let text = format!("{e} {e:?} {}", e.report());
    assert!(!text.contains(TOKEN), "the token leaked: {text}");
    e
}

#[tokio::test]
async fn hub_error_codes_become_clear_errors() {
    let e = error_for(401, Some("RepoNotFound"), false, "hf:o/r").await;
    assert_eq!(e.code(), "not_found");
    assert!(
        e.to_string().contains("repository o/r was not found")
            && e.to_string().contains("HF_TOKEN"),
        "{e}"
    );

    let e = error_for(403, Some("GatedRepo"), false, "hf:o/r").await;
    assert_eq!(e.code(), "unauthorized");
    assert!(
        e.to_string().contains("accept the licence at http://"),
        "{e}"
    );
    assert!(e.to_string().contains("/o/r"), "{e}");

    let e = error_for(404, Some("RevisionNotFound"), false, "hf:o/r@nope").await;
    assert_eq!(e.code(), "not_found");
    assert!(e.to_string().contains("revision `nope`"), "{e}");

    let e = error_for(401, None, true, "hf:o/r").await;
    assert_eq!(e.code(), "unauthorized");
    assert!(e.to_string().contains("invalid or expired"), "{e}");

    let e = error_for(404, None, false, "hf:o/r").await;
    assert_eq!(e.code(), "not_found");
}

#[tokio::test]
async fn entry_not_found_lists_what_exists() {
    let server = MockServer::start().await;
    mount_info(&server, "main", info(gguf_repo()), 1).await;
    let home = tempfile::tempdir().unwrap();
    let v = vendor(&server.uri(), home.path(), false);
    let e = resolve(&v, "hf:o/r/m.Q5_K_M.gguf").await.unwrap_err();
    assert_eq!(e.code(), "not_found");
    let m = e.to_string();
    assert!(
        m.contains("`m.Q5_K_M.gguf` does not exist in o/r") && m.contains("m.Q4_K_M.gguf"),
        "{m}"
    );
}

#[tokio::test]
async fn missing_quant_lists_the_quants_that_exist() {
    let server = MockServer::start().await;
    mount_info(&server, "main", info(gguf_repo()), 1).await;
    let home = tempfile::tempdir().unwrap();
    let v = vendor(&server.uri(), home.path(), false);
    let e = resolve(&v, "hf:o/r:Q4_K").await.unwrap_err();
    assert_eq!(e.code(), "invalid_request");
    let m = e.to_string();
    assert!(
        m.contains("Q2_K") && m.contains("Q4_K_M") && m.contains("Q8_0"),
        "{m}"
    );
}

#[tokio::test]
async fn rate_limits_are_retried_by_the_engine_then_reported() {
    // 429 with Retry-After, then success: one retry and a plan.
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(429).insert_header("Retry-After", "0"))
        .up_to_n_times(1)
        .expect(1)
        .with_priority(1)
        .mount(&server)
        .await;
    mount_info(&server, "main", info(gguf_repo()), 1).await;
    let home = tempfile::tempdir().unwrap();
    let v = vendor(&server.uri(), home.path(), false);
    resolve(&v, "hf:o/r").await.unwrap();

    // Always 429: the engine's attempts, then a rate-limit error.
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(429).insert_header("Retry-After", "0"))
        .expect(3)
        .mount(&server)
        .await;
    let v = vendor(&server.uri(), home.path(), false);
    let e = resolve(&v, "hf:o/r").await.unwrap_err();
    assert_eq!(e.code(), "rate_limited", "{e}");
}

#[tokio::test]
async fn a_rate_limit_given_as_an_http_date_is_reported_with_its_wait() {
    // Further off than the engine waits: no retry, and the error says how long.
    let server = MockServer::start().await;
    let at = httpdate::fmt_http_date(
        std::time::SystemTime::now() + std::time::Duration::from_secs(3600),
    );
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(429).insert_header("Retry-After", at.as_str()))
        .expect(1)
        .mount(&server)
        .await;
    let home = tempfile::tempdir().unwrap();
    let v = vendor(&server.uri(), home.path(), false);
    let e = resolve(&v, "hf:o/r").await.unwrap_err();
    let Error::RateLimited { retry_after, .. } = &e else {
        panic!("{e:?}");
    };
    assert!(
        retry_after.is_some_and(|d| d.as_secs() > 3000 && d.as_secs() <= 3600),
        "{e:?}"
    );
}

#[tokio::test]
async fn the_token_goes_to_the_hub_only() {
    let cdn = MockServer::builder()
        .listener(std::net::TcpListener::bind("127.0.0.2:0").unwrap())
        .start()
        .await;
    let hub = MockServer::start().await;
    let data = bytes(5000, 7);
    let siblings = vec![sibling("m.Q4_K_M.gguf", &data, true)];
    Mock::given(method("GET"))
        .and(path("/api/models/o/r/revision/main"))
        .and(header("authorization", format!("Bearer {TOKEN}").as_str()))
        .respond_with(ResponseTemplate::new(200).set_body_json(info(siblings)))
        .expect(1)
        .mount(&hub)
        .await;
    let location = format!("{}/blobs/m", cdn.uri());
    Mock::given(path(format!("/o/r/resolve/{COMMIT}/m.Q4_K_M.gguf")))
        .and(header("authorization", format!("Bearer {TOKEN}").as_str()))
        .respond_with(
            ResponseTemplate::new(302)
                .insert_header("Location", location.as_str())
                .insert_header("X-Repo-Commit", COMMIT)
                .insert_header("X-Linked-Etag", format!("\"{}\"", sha(&data)).as_str())
                .insert_header("X-Linked-Size", data.len().to_string().as_str()),
        )
        .expect(1..)
        .mount(&hub)
        .await;
    Mock::given(path("/blobs/m"))
        .and(header_exists("authorization"))
        .respond_with(ResponseTemplate::new(403))
        .expect(0)
        .mount(&cdn)
        .await;
    Mock::given(path("/blobs/m"))
        .respond_with(ResponseTemplate::new(200).set_body_bytes(data.clone()))
        .expect(1..)
        .mount(&cdn)
        .await;

    let home = tempfile::tempdir().unwrap();
    let v = vendor(&hub.uri(), home.path(), true);
    assert!(!format!("{v:?}").contains(TOKEN));
    let plan = resolve(&v, "hf:o/r").await.unwrap();
    assert!(!serde_json::to_string(&plan).unwrap().contains(TOKEN));
    let dest = tempfile::tempdir().unwrap();
    let (out, events) = download_all(&v, &plan, dest.path()).await;
    let files = out.unwrap();
    assert_eq!(files.len(), 1);
    assert_eq!(files[0].sha256, sha(&data));
    assert_eq!(
        std::fs::read(dest.path().join("m.Q4_K_M.gguf")).unwrap(),
        data
    );
    let events = serde_json::to_string(&events).unwrap();
    assert!(!events.contains(TOKEN));
}

#[tokio::test]
async fn cancelled_before_start_is_cancelled() {
    let server = MockServer::start().await;
    let home = tempfile::tempdir().unwrap();
    let v = vendor(&server.uri(), home.path(), false);
    let cancel = CancellationToken::new();
    cancel.cancel();
    let e = v
        .resolve(&reference("hf:o/r"), &ResolveOptions::default(), &cancel)
        .await
        .unwrap_err();
    assert!(e.is_cancelled());
    assert!(server.received_requests().await.unwrap().is_empty());
}

/// Puts `data` into an HF cache under `hub` as huggingface_hub would.
fn seed_hf_cache(hub: &Path, file: &str, data: &[u8], etag: &str) {
    let repo = hub.join("models--o--r");
    std::fs::create_dir_all(repo.join("blobs")).unwrap();
    std::fs::write(repo.join("blobs").join(etag), data).unwrap();
    let snap = repo.join("snapshots").join(COMMIT);
    std::fs::create_dir_all(&snap).unwrap();
    std::os::unix::fs::symlink(format!("../../blobs/{etag}"), snap.join(file)).unwrap();
    std::fs::create_dir_all(repo.join("refs")).unwrap();
    std::fs::write(repo.join("refs").join("main"), COMMIT).unwrap();
}

#[tokio::test]
async fn files_in_the_hf_cache_are_reused_not_fetched() {
    let server = MockServer::start().await;
    let model = bytes(4096, 4);
    let config = b"{\"a\": 1}".to_vec();
    let siblings = vec![
        sibling("config.json", &config, false),
        sibling("model.safetensors", &model, true),
        sibling("tokenizer.json", b"tok", false),
    ];
    mount_info(&server, "main", info(siblings), 1).await;
    Mock::given(path(format!("/o/r/resolve/{COMMIT}/model.safetensors")))
        .respond_with(ResponseTemplate::new(500))
        .expect(0)
        .mount(&server)
        .await;
    Mock::given(path(format!("/o/r/resolve/{COMMIT}/config.json")))
        .respond_with(ResponseTemplate::new(500))
        .expect(0)
        .mount(&server)
        .await;
    // tokenizer.json is cached with the wrong bytes: it must be downloaded.
    Mock::given(path(format!("/o/r/resolve/{COMMIT}/tokenizer.json")))
        .respond_with(ResponseTemplate::new(200).set_body_bytes(b"tok".to_vec()))
        .expect(1..)
        .mount(&server)
        .await;
    let home = tempfile::tempdir().unwrap();
    let hub = home.path().join("hub");
    seed_hf_cache(&hub, "model.safetensors", &model, &sha(&model).to_string());
    seed_hf_cache(&hub, "config.json", &config, &git_oid(&config));
    seed_hf_cache(&hub, "tokenizer.json", b"TOK", &git_oid(b"tok"));

    let v = vendor(&server.uri(), home.path(), false);
    let plan = resolve(&v, "hf:o/r").await.unwrap();
    let dest = tempfile::tempdir().unwrap();
    let (out, events) = download_all(&v, &plan, dest.path()).await;
    let files = out.unwrap();
    assert_eq!(
        files.iter().map(|f| f.path.as_str()).collect::<Vec<_>>(),
        vec!["config.json", "model.safetensors", "tokenizer.json"]
    );
    let mut reused = reused_paths(&events);
    reused.sort();
    assert_eq!(reused, vec!["config.json", "model.safetensors"]);
    assert_eq!(
        std::fs::read(dest.path().join("model.safetensors")).unwrap(),
        model
    );
    assert_eq!(
        std::fs::read(dest.path().join("tokenizer.json")).unwrap(),
        b"tok"
    );
    assert_eq!(files[1].sha256, sha(&model));
}

#[tokio::test]
async fn write_hf_cache_then_offline_resolve_and_reuse() {
    let server = MockServer::start().await;
    let model = bytes(3000, 5);
    let small = b"{}".to_vec();
    let siblings = vec![
        sibling("config.json", &small, false),
        sibling("sub/model.safetensors", &model, true),
    ];
    mount_info(&server, "main", info(siblings), 1).await;
    Mock::given(path(format!("/o/r/resolve/{COMMIT}/sub/model.safetensors")))
        .respond_with(ResponseTemplate::new(200).set_body_bytes(model.clone()))
        .expect(1..)
        .mount(&server)
        .await;
    Mock::given(path(format!("/o/r/resolve/{COMMIT}/config.json")))
        .respond_with(ResponseTemplate::new(200).set_body_bytes(small.clone()))
        .expect(1..)
        .mount(&server)
        .await;
    let home = tempfile::tempdir().unwrap();
    let mut c = config(&server.uri(), home.path());
    c.write_hf_cache = true;
    let v = rbee_vendor_huggingface::HuggingFaceVendor::new(c, transfer());
    let plan = resolve_with(
        &v,
        "hf:o/r",
        &ResolveOptions::with_globs(vec!["*".into()], vec![]),
    )
    .await
    .unwrap();
    let dest = tempfile::tempdir().unwrap();
    download_all(&v, &plan, dest.path()).await.0.unwrap();

    // The layout huggingface_hub reads.
    let repo = home.path().join("hub/models--o--r");
    assert_eq!(
        std::fs::read_to_string(repo.join("refs/main")).unwrap(),
        COMMIT
    );
    let snap = repo.join("snapshots").join(COMMIT);
    assert_eq!(
        std::fs::read_link(snap.join("sub/model.safetensors")).unwrap(),
        Path::new(&format!("../../../blobs/{}", sha(&model)))
    );
    assert_eq!(
        std::fs::read_link(snap.join("config.json")).unwrap(),
        Path::new(&format!("../../blobs/{}", git_oid(&small)))
    );
    assert_eq!(
        std::fs::read(snap.join("sub/model.safetensors")).unwrap(),
        model
    );
    use std::os::unix::fs::MetadataExt;
    assert_eq!(
        std::fs::metadata(dest.path().join("sub/model.safetensors"))
            .unwrap()
            .ino(),
        std::fs::metadata(repo.join("blobs").join(sha(&model).to_string()))
            .unwrap()
            .ino(),
        "hard-linked, not duplicated"
    );

    // Offline now: resolved from that cache with no request, and placed from it.
    let requests_before = server.received_requests().await.unwrap().len();
    let mut c = config(&server.uri(), home.path());
    c.offline = true;
    let offline = rbee_vendor_huggingface::HuggingFaceVendor::new(c, transfer());
    let plan = resolve_with(
        &offline,
        "hf:o/r",
        &ResolveOptions::with_globs(vec!["*".into()], vec![]),
    )
    .await
    .unwrap();
    assert_eq!(plan.revision.as_deref(), Some(COMMIT));
    assert_eq!(plan.files.len(), 2);
    assert_eq!(plan.files[1].sha256, Some(sha(&model)));
    let dest2 = tempfile::tempdir().unwrap();
    let (out, events) = download_all(&offline, &plan, dest2.path()).await;
    assert_eq!(out.unwrap().len(), 2);
    assert_eq!(reused_paths(&events).len(), 2);
    assert_eq!(
        server.received_requests().await.unwrap().len(),
        requests_before,
        "offline touched the network"
    );

    // Offline and absent: a clear error naming what is missing.
    let e = resolve(&offline, "hf:o/other").await.unwrap_err();
    assert_eq!(e.code(), "offline");
    assert!(
        e.to_string()
            .contains("o/other@main is not in the HuggingFace cache"),
        "{e}"
    );
    let e = resolve(&offline, "hf:o/r:Q4_K_M").await.unwrap_err();
    assert_eq!(e.code(), "offline");
}

#[tokio::test]
async fn a_sha_mismatch_is_an_error_and_leaves_no_file() {
    let server = MockServer::start().await;
    let good = bytes(2048, 1);
    let siblings = vec![sibling("m.Q4_K_M.gguf", &good, true)];
    mount_info(&server, "main", info(siblings), 1).await;
    Mock::given(path(format!("/o/r/resolve/{COMMIT}/m.Q4_K_M.gguf")))
        .respond_with(ResponseTemplate::new(200).set_body_bytes(bytes(2048, 2)))
        .mount(&server)
        .await;
    let home = tempfile::tempdir().unwrap();
    let v = vendor(&server.uri(), home.path(), false);
    let plan = resolve(&v, "hf:o/r").await.unwrap();
    let dest = tempfile::tempdir().unwrap();
    let (out, _) = download_all(&v, &plan, dest.path()).await;
    let e = out.unwrap_err();
    assert_eq!(e.code(), "integrity", "{e}");
    assert!(!dest.path().join("m.Q4_K_M.gguf").exists());
}

#[tokio::test]
async fn a_git_stored_file_with_other_bytes_is_refused() {
    let server = MockServer::start().await;
    let listed = b"{\"vocab\": 1}".to_vec();
    let served = b"{\"vocab\": 2}".to_vec();
    assert_eq!(
        listed.len(),
        served.len(),
        "same size: only the blob id can tell"
    );
    let siblings = vec![
        sibling("config.json", &listed, false),
        sibling("model.safetensors", b"w", true),
    ];
    mount_info(&server, "main", info(siblings), 1).await;
    Mock::given(path(format!("/o/r/resolve/{COMMIT}/config.json")))
        .respond_with(ResponseTemplate::new(200).set_body_bytes(served))
        .mount(&server)
        .await;
    Mock::given(path(format!("/o/r/resolve/{COMMIT}/model.safetensors")))
        .respond_with(ResponseTemplate::new(200).set_body_bytes(b"w".to_vec()))
        .mount(&server)
        .await;
    let home = tempfile::tempdir().unwrap();
    let v = vendor(&server.uri(), home.path(), false);
    let plan = resolve(&v, "hf:o/r").await.unwrap();
    assert_eq!(plan.files[0].sha256, None);
    let dest = tempfile::tempdir().unwrap();
    let (out, _) = download_all(&v, &plan, dest.path()).await;
    let e = out.unwrap_err();
    assert_eq!(e.code(), "integrity", "{e}");
    assert!(e.to_string().contains(&git_oid(&listed)), "{e}");
    assert!(!dest.path().join("config.json").exists());
}

#[tokio::test]
async fn sizes_missing_everywhere_come_from_the_resolve_headers() {
    let server = MockServer::start().await;
    let data = bytes(777, 3);
    mount_info(
        &server,
        "main",
        json!({"sha": COMMIT, "siblings": [{"rfilename": "m.Q4_K_M.gguf"}]}),
        1,
    )
    .await;
    Mock::given(path(format!("/api/models/o/r/tree/{COMMIT}")))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!([
            {"type": "file", "path": "m.Q4_K_M.gguf", "oid": "p"}
        ])))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("HEAD"))
        .and(path(format!("/o/r/resolve/{COMMIT}/m.Q4_K_M.gguf")))
        .respond_with(
            ResponseTemplate::new(302)
                .insert_header("Location", "http://127.0.0.2:9/cdn")
                .insert_header("X-Repo-Commit", COMMIT)
                .insert_header("X-Linked-Etag", format!("\"{}\"", sha(&data)).as_str())
                .insert_header("X-Linked-Size", "777"),
        )
        .expect(1)
        .mount(&server)
        .await;
    let home = tempfile::tempdir().unwrap();
    let v = vendor(&server.uri(), home.path(), false);
    let plan = resolve(&v, "hf:o/r").await.unwrap();
    assert_eq!(plan.files[0].size, Some(777));
    assert_eq!(plan.files[0].sha256, Some(sha(&data)));
}

#[tokio::test]
async fn a_gated_model_is_reported_at_resolve_time() {
    let server = MockServer::start().await;
    let mut body = info(gguf_repo());
    body["gated"] = json!("manual");
    mount_info(&server, "main", body, 2).await;
    let file = format!("/o/r/resolve/{COMMIT}/m.Q4_K_M.gguf");
    Mock::given(method("HEAD"))
        .and(path(file.as_str()))
        .and(header("authorization", format!("Bearer {TOKEN}").as_str()))
        .respond_with(
            ResponseTemplate::new(302)
                .insert_header("Location", "http://127.0.0.2:9/cdn")
                .insert_header("X-Linked-Size", "400"),
        )
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("HEAD"))
        .and(path(file.as_str()))
        .respond_with(
            ResponseTemplate::new(401)
                .insert_header("X-Error-Code", "GatedRepo")
                .insert_header("X-Error-Message", "Access to model o/r is restricted."),
        )
        .expect(1)
        .mount(&server)
        .await;
    let home = tempfile::tempdir().unwrap();
    let anonymous = vendor(&server.uri(), home.path(), false);
    let e = resolve(&anonymous, "hf:o/r").await.unwrap_err();
    assert_eq!(e.code(), "unauthorized");
    let m = e.to_string();
    assert!(
        m.contains("gated")
            && m.contains(&format!("{}/o/r", server.uri()))
            && m.contains("HF_TOKEN"),
        "{m}"
    );
    let signed_in = vendor(&server.uri(), home.path(), true);
    let plan = resolve(&signed_in, "hf:o/r").await.unwrap();
    assert_eq!(plan.files[0].path, "m.Q4_K_M.gguf");
}

#[tokio::test]
async fn a_stale_git_stored_file_of_the_same_size_is_replaced_and_an_identical_one_kept() {
    let server = MockServer::start().await;
    let new = b"{\"v\": 2}".to_vec();
    let same = b"{\"t\": 1}".to_vec();
    let siblings = vec![
        sibling("config.json", &new, false),
        sibling("tokenizer.json", &same, false),
    ];
    mount_info(&server, "main", info(siblings), 1).await;
    Mock::given(path(format!("/o/r/resolve/{COMMIT}/config.json")))
        .respond_with(ResponseTemplate::new(200).set_body_bytes(new.clone()))
        .expect(1..)
        .mount(&server)
        .await;
    Mock::given(path(format!("/o/r/resolve/{COMMIT}/tokenizer.json")))
        .respond_with(ResponseTemplate::new(200).set_body_bytes(same.clone()))
        .expect(0)
        .mount(&server)
        .await;
    let home = tempfile::tempdir().unwrap();
    let v = vendor(&server.uri(), home.path(), false);
    let plan = resolve_with(
        &v,
        "hf:o/r",
        &ResolveOptions::with_globs(vec!["*.json".into()], vec![]),
    )
    .await
    .unwrap();
    let dest = tempfile::tempdir().unwrap();
    std::fs::write(dest.path().join("config.json"), b"{\"v\": 1}").unwrap();
    std::fs::write(dest.path().join("tokenizer.json"), &same).unwrap();
    let (out, events) = download_all(&v, &plan, dest.path()).await;
    assert_eq!(out.unwrap().len(), 2);
    assert_eq!(std::fs::read(dest.path().join("config.json")).unwrap(), new);
    assert_eq!(reused_paths(&events), vec!["tokenizer.json"]);
}
