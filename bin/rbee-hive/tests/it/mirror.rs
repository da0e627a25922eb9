//! The hive as a HuggingFace Hub mirror, end to end: the real binary in front of fake-hub (and
//! in front of another hive), clients speaking the Hub's protocol.

use std::sync::atomic::{AtomicU64, Ordering};

use reqwest::StatusCode;
use reqwest::header::HeaderMap;
use serde_json::Value;

use crate::support::{Daemon, SOON, TestEnv};

const REPO: &str = "hf/org/repo";
const MODEL: &str = "model.Q4_K_M.gguf";

fn lfs_path(repo_rel: &str, file: &str) -> String {
    format!("/files/{repo_rel}/{file}")
}

async fn fetch(
    client: &reqwest::Client,
    url: &str,
    headers: &[(&str, &str)],
) -> (StatusCode, HeaderMap, Vec<u8>) {
    let mut rb = client.get(url);
    for (k, v) in headers {
        rb = rb.header(*k, *v);
    }
    let response = rb.send().await.unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let body = response.bytes().await.unwrap().to_vec();
    (status, headers, body)
}

fn header<'a>(h: &'a HeaderMap, name: &str) -> &'a str {
    h.get(name).map(|v| v.to_str().unwrap()).unwrap_or("")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hub_routes_answer_like_the_hub_and_keep_the_hive_token() {
    let env = TestEnv::with_hub(|c| {
        c.hf_tree_page_size = 1;
        c.hf_tokens = vec!["hf_upstream_secret".into()];
    })
    .await;
    let model = env.write_file(&format!("{REPO}/{MODEL}"), 3_000_000);
    let config = env.write_file(&format!("{REPO}/config.json"), 40);
    env.write_file(&format!("{REPO}/sub/tokenizer.json"), 30);
    let hive = Daemon::try_start(
        &env,
        &[],
        &[
            ("HF_TOKEN", "hf_upstream_secret"),
            ("RBEE_HIVE_TOKEN", "hive-token"),
        ],
    )
    .await
    .unwrap();
    let client = &hive.client;
    let get = |path: &str| hive.request(reqwest::Method::GET, path);
    let sha256: String = {
        use sha2::Digest;
        sha2::Sha256::digest(&model)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    };
    let mut seen = String::new();

    // Model info, the upstream's.
    let response = get("/api/models/org/repo/revision/main?blobs=true")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    seen.push_str(&format!("{:?}", response.headers()));
    let info: Value = response.json().await.unwrap();
    let commit = info["sha"].as_str().unwrap().to_string();
    assert_eq!(info["siblings"].as_array().unwrap().len(), 3);
    seen.push_str(&info.to_string());

    // HEAD: what huggingface_hub reads.
    let url = format!("{}/org/repo/resolve/main/{MODEL}", hive.url);
    let response = client
        .head(&url)
        .bearer_auth("hive-token")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let h = response.headers().clone();
    assert_eq!(header(&h, "x-repo-commit"), commit);
    assert_eq!(header(&h, "x-linked-etag"), format!("\"{sha256}\""));
    assert_eq!(header(&h, "etag"), format!("\"{sha256}\""));
    assert_eq!(header(&h, "x-linked-size"), "3000000");
    assert_eq!(header(&h, "content-length"), "3000000");
    assert_eq!(header(&h, "accept-ranges"), "bytes");
    assert_eq!(
        env.hub.counters_for(&lfs_path(REPO, MODEL)).bytes_sent,
        0,
        "HEAD fetches nothing"
    );

    // GET: pulled through, byte-exact; then from the catalog.
    let (status, h, body) = fetch(client, &url, &[("authorization", "Bearer hive-token")]).await;
    assert_eq!(status, StatusCode::OK);
    assert!(body == model, "pulled-through bytes differ");
    seen.push_str(&format!("{h:?}"));
    let upstream = env.hub.counters_for(&lfs_path(REPO, MODEL)).bytes_sent;
    assert!(upstream >= 3_000_000);
    let (status, h, body) = fetch(
        client,
        &url,
        &[
            ("authorization", "Bearer hive-token"),
            ("range", "bytes=10-19"),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::PARTIAL_CONTENT);
    assert_eq!(header(&h, "content-range"), "bytes 10-19/3000000");
    assert_eq!(body, model[10..20]);
    let (status, h, _) = fetch(
        client,
        &url,
        &[
            ("authorization", "Bearer hive-token"),
            ("range", "bytes=3000000-"),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::RANGE_NOT_SATISFIABLE);
    assert_eq!(header(&h, "content-range"), "bytes */3000000");
    assert_eq!(
        env.hub.counters_for(&lfs_path(REPO, MODEL)).bytes_sent,
        upstream,
        "a ready file is served from the catalog"
    );

    // A small (non-LFS) file: the git blob id as its ETag, no linked headers.
    let (status, h, body) = fetch(
        client,
        &format!("{}/org/repo/resolve/{commit}/config.json", hive.url),
        &[("authorization", "Bearer hive-token")],
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, config);
    assert!(header(&h, "x-linked-etag").is_empty());
    assert_eq!(header(&h, "etag").len(), 42);

    // The Hub's error codes.
    let (status, h, body) = fetch(
        client,
        &format!("{}/org/repo/resolve/main/missing.bin", hive.url),
        &[("authorization", "Bearer hive-token")],
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(header(&h, "x-error-code"), "EntryNotFound");
    assert_eq!(header(&h, "x-repo-commit"), commit);
    seen.push_str(&String::from_utf8_lossy(&body));
    let (status, h, _) = fetch(
        client,
        &format!("{}/org/repo/resolve/no-such-branch/config.json", hive.url),
        &[("authorization", "Bearer hive-token")],
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(header(&h, "x-error-code"), "RevisionNotFound");
    let (status, h, _) = fetch(
        client,
        &format!("{}/org/nothing/resolve/main/config.json", hive.url),
        &[("authorization", "Bearer hive-token")],
    )
    .await;
    assert_eq!(
        status,
        StatusCode::NOT_FOUND,
        "the hive's token made the upstream say 404"
    );
    assert_eq!(header(&h, "x-error-code"), "RepoNotFound");

    // Hostile names never reach the upstream or the disk.
    let before = env.hub.requests().len();
    for bad in [
        "/org/repo/resolve/main/..%2F..%2Fetc%2Fpasswd",
        "/org/repo/resolve/..%2Fmain/config.json",
        "/org/repo/resolve/main/model.gguf.part",
        "/..%2Forg/repo/resolve/main/config.json",
        "/org/repo/resolve/main/a%00b",
        "/api/models/org/repo/revision/main..x",
        "/api/models/org/repo/tree/main/..%2F..",
    ] {
        let (status, _, _) = fetch(
            client,
            &format!("{}{bad}", hive.url),
            &[("authorization", "Bearer hive-token")],
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}");
    }
    assert_eq!(
        env.hub.requests().len(),
        before,
        "refused before asking upstream"
    );

    // Tree, paginated: the next link points at the hive, never upstream.
    let mut next = Some(format!(
        "{}/api/models/org/repo/tree/main?recursive=true",
        hive.url
    ));
    let mut paths = Vec::new();
    while let Some(url) = next.take() {
        assert!(url.starts_with(&hive.url), "{url}");
        let response = client
            .get(&url)
            .bearer_auth("hive-token")
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        next = response.headers().get("link").map(|l| {
            l.to_str()
                .unwrap()
                .split(['<', '>'])
                .nth(1)
                .unwrap()
                .to_string()
        });
        let page: Vec<Value> = response.json().await.unwrap();
        paths.extend(page.iter().map(|e| e["path"].as_str().unwrap().to_string()));
    }
    assert_eq!(paths, ["config.json", MODEL, "sub", "sub/tokenizer.json"]);

    // paths-info, as huggingface_hub posts it.
    let response = client
        .post(format!("{}/api/models/org/repo/paths-info/main", hive.url))
        .bearer_auth("hive-token")
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("paths={MODEL}&paths=sub&paths=absent&expand=false"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let entries: Vec<Value> = response.json().await.unwrap();
    assert_eq!(entries.len(), 2);
    assert_eq!(entries[0]["lfs"]["oid"], sha256.as_str());
    assert_eq!(entries[1]["type"], "directory");

    // The hive's upstream token went upstream (the private listing worked) and nowhere else.
    assert!(!seen.contains("hf_upstream_secret"), "{seen}");
    assert!(!hive.log().contains("hf_upstream_secret"));
    // Without the hive's token the guard stops the client.
    let response = client.get(&url).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gated_files_go_only_to_authenticated_clients() {
    let env = TestEnv::new().await;
    let model = env.write_file("hf/org/gated/model.gguf", 200_000);
    std::fs::write(
        env.dir.path().join("hub/hf/org/gated/fakehub.json"),
        r#"{"gated": "manual", "tokens": ["hf_ok"]}"#,
    )
    .unwrap();
    let url = |hive: &Daemon| format!("{}/org/gated/resolve/main/model.gguf", hive.url);

    // No token on the hive: every client is anonymous.
    let open = Daemon::try_start(&env, &[], &[("HF_TOKEN", "hf_ok")])
        .await
        .unwrap();
    let (status, h, body) = fetch(&open.client, &url(&open), &[]).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(header(&h, "x-error-code"), "GatedRepo");
    assert!(
        String::from_utf8_lossy(&body).contains("HF_TOKEN"),
        "says what to do"
    );
    // The model's card stays readable, as on the Hub.
    let (status, _, _) = fetch(
        &open.client,
        &format!("{}/api/models/org/gated", open.url),
        &[],
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        env.hub
            .counters_for(&lfs_path("hf/org/gated", "model.gguf"))
            .bytes_sent,
        0
    );

    // A hive with a token: its clients are authenticated.
    let guarded = Daemon::try_start(
        &env,
        &[
            "--cache-dir",
            env.dir.path().join("cache2").to_str().unwrap(),
        ],
        &[("HF_TOKEN", "hf_ok"), ("RBEE_HIVE_TOKEN", "hive-token")],
    )
    .await
    .unwrap();
    let (status, _, _) = fetch(&guarded.client, &url(&guarded), &[]).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _, body) = fetch(
        &guarded.client,
        &url(&guarded),
        &[("authorization", "Bearer hive-token")],
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert!(body == model);
}

/// Three clients ask at once for a file the hive does not have: one upstream transfer, three
/// exact copies, and each client's first bytes arrive while the upstream is still sending.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_clients_share_one_pull_and_stream_while_it_runs() {
    const SIZE: usize = 64 << 20;
    // 8 connections at 4 MiB/s each: about two seconds upstream.
    let env = TestEnv::with_rate_limit(Some(4 << 20)).await;
    let model = env.write_file(&format!("{REPO}/big.gguf"), SIZE);
    let hive = Daemon::start(&env, &[]).await;
    let url = format!("{}/org/repo/resolve/main/big.gguf", hive.url);
    let counter = lfs_path(REPO, "big.gguf");
    let first_seen = AtomicU64::new(0);

    let client = |_| async {
        let mut response = hive.client.get(&url).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        let mut body = Vec::with_capacity(SIZE);
        while let Some(chunk) = response.chunk().await.unwrap() {
            if body.is_empty() {
                // What the upstream had sent when this client got its first bytes.
                first_seen.fetch_max(env.hub.counters_for(&counter).bytes_sent, Ordering::SeqCst);
            }
            body.extend_from_slice(&chunk);
        }
        assert!(body == model, "a client's copy differs");
    };
    tokio::time::timeout(SOON * 4, futures::future::join_all((0..3).map(client)))
        .await
        .unwrap();
    let upstream = env.hub.counters_for(&counter).bytes_sent;
    assert!(
        upstream <= SIZE as u64 * 102 / 100,
        "upstream sent {upstream} bytes for a {SIZE}-byte file"
    );
    let first = first_seen.load(Ordering::SeqCst);
    assert!(
        first < SIZE as u64,
        "clients got their first bytes only after the upstream sent all {SIZE} ({first})"
    );
    let (_, jobs) = hive.get("/v1/jobs").await;
    let downloads = jobs["jobs"].as_array().unwrap().len();
    assert!((1..=3).contains(&downloads), "{jobs}");
}

/// Hive B pulls from hive A, which pulls from the origin: the origin sends the bytes once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chained_hives_fetch_from_the_origin_once() {
    let env = TestEnv::new().await;
    let model = env.write_file(&format!("{REPO}/{MODEL}"), 5_000_000);
    let a = Daemon::start(&env, &[]).await;
    let b = Daemon::try_start(
        &env,
        &[
            "--cache-dir",
            env.dir.path().join("cache-b").to_str().unwrap(),
        ],
        &[("HF_ENDPOINT", &a.url)],
    )
    .await
    .unwrap();
    let (status, _, body) = fetch(
        &b.client,
        &format!("{}/org/repo/resolve/main/{MODEL}", b.url),
        &[],
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{}", b.log());
    assert!(body == model);
    let origin = env.hub.counters_for(&lfs_path(REPO, MODEL)).bytes_sent;
    assert!((5_000_000..=5_100_000).contains(&origin), "{origin}");
    // A now has it too: asking A costs the origin nothing more.
    let (status, _, body) = fetch(
        &a.client,
        &format!("{}/org/repo/resolve/main/{MODEL}", a.url),
        &[],
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert!(body == model);
    assert_eq!(
        env.hub.counters_for(&lfs_path(REPO, MODEL)).bytes_sent,
        origin
    );
    // B's catalog records the origin's reference (the file's source says which mirror served).
    let (_, models) = b.get("/v1/models").await;
    let entry = &models["models"][0];
    assert!(
        entry["reference"]
            .as_str()
            .unwrap()
            .starts_with("hf:org/repo@"),
        "{models}"
    );
    assert!(
        entry["files"][0]["source"]
            .as_str()
            .unwrap()
            .starts_with(&a.url),
        "{models}"
    );
}

/// The hive dies mid-stream; started again over the same catalog, the client resumes with
/// Range and ends with the exact file, and the hive resumes its own partial.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_resume_by_range_after_the_hive_restarts() {
    const SIZE: usize = 12 << 20;
    // One connection (below the parallel threshold) at 2 MiB/s: six seconds upstream.
    let env = TestEnv::with_rate_limit(Some(2 << 20)).await;
    let model = env.write_file(&format!("{REPO}/slow.gguf"), SIZE);
    let path = "/org/repo/resolve/main/slow.gguf";
    let mut hive = Daemon::start(&env, &[]).await;
    let mut response = hive
        .client
        .get(format!("{}{path}", hive.url))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let mut got = Vec::new();
    while got.len() < 2 << 20 {
        got.extend_from_slice(&response.chunk().await.unwrap().unwrap());
    }
    let status = std::process::Command::new("kill")
        .args(["-KILL", &hive.pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    hive.wait_exit(SOON).await;
    // Whatever was still in flight may arrive; then the body is cut.
    while let Ok(Some(chunk)) = response.chunk().await {
        got.extend_from_slice(&chunk);
    }
    assert!(got.len() < SIZE, "the body should have been cut");
    assert!(got[..] == model[..got.len()]);

    let hive = Daemon::start(&env, &[]).await;
    let (status, h, rest) = fetch(
        &hive.client,
        &format!("{}{path}", hive.url),
        &[("range", &format!("bytes={}-", got.len()))],
    )
    .await;
    assert_eq!(status, StatusCode::PARTIAL_CONTENT);
    assert_eq!(
        header(&h, "content-range"),
        format!("bytes {}-{}/{SIZE}", got.len(), SIZE - 1)
    );
    got.extend_from_slice(&rest);
    assert!(got == model, "the resumed copy differs");
    let upstream = env
        .hub
        .counters_for(&lfs_path(REPO, "slow.gguf"))
        .bytes_sent;
    assert!(
        upstream < SIZE as u64 * 3 / 2,
        "the hive fetched {upstream} bytes for {SIZE}"
    );
}

/// A hive in this process over `env`'s hub, reading branch listings afresh on every request.
fn in_process_hive(env: &TestEnv) -> rbee_hive::HiveState {
    use rbee_model_provisioner::{Provisioner, ProvisionerConfig, VendorSettings};
    let catalog = std::sync::Arc::new(rbee_catalog::Catalog::open(env.cache()).unwrap());
    let mut settings = VendorSettings::new(rbee_transfer::TransferConfig {
        use_env_proxy: false,
        ..Default::default()
    });
    let hub = env.hub.url().clone();
    settings.huggingface = Some(rbee_vendor_huggingface::HfConfig::new(
        hub.clone(),
        env.dir.path().join("home/hf"),
    ));
    let mut config = rbee_hive::HiveConfig::default();
    let mut upstream = rbee_hive::HubUpstream::new(hub, None);
    upstream.listing_ttl = std::time::Duration::ZERO;
    config.mirror = Some(upstream);
    let vendors = rbee_hive::hive_vendors(&settings, &config).unwrap();
    rbee_hive::HiveState::new(
        Provisioner::new(catalog, vendors, ProvisionerConfig::default()),
        config,
    )
}

async fn get_in(state: &rbee_hive::HiveState, path: &str) -> (StatusCode, HeaderMap, Vec<u8>) {
    get_in_with(state, path, &[]).await
}

async fn get_in_with(
    state: &rbee_hive::HiveState,
    path: &str,
    headers: &[(&str, &str)],
) -> (StatusCode, HeaderMap, Vec<u8>) {
    use tower::ServiceExt;
    let mut request = axum::http::Request::get(path);
    for (k, v) in headers {
        request = request.header(*k, *v);
    }
    let request = request.body(axum::body::Body::empty()).unwrap();
    let response = rbee_hive::app(state.clone())
        .oneshot(request)
        .await
        .unwrap();
    let status = StatusCode::from_u16(response.status().as_u16()).unwrap();
    let mut headers = HeaderMap::new();
    for (k, v) in response.headers() {
        headers.insert(
            reqwest::header::HeaderName::from_bytes(k.as_str().as_bytes()).unwrap(),
            reqwest::header::HeaderValue::from_bytes(v.as_bytes()).unwrap(),
        );
    }
    let body = axum::body::to_bytes(response.into_body(), 1 << 30)
        .await
        .unwrap()
        .to_vec();
    (status, headers, body)
}

/// The upstream goes down: what the hive holds is still served (with the access rules the
/// upstream gave last), what it does not is a clear 5xx.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upstream_outage_still_serves_what_the_hive_holds() {
    let env = TestEnv::new().await;
    let model = env.write_file(&format!("{REPO}/{MODEL}"), 1_000_000);
    env.write_file("hf/org/other/x.gguf", 1_000);
    let hive = in_process_hive(&env);
    let path = format!("/org/repo/resolve/main/{MODEL}");
    let (status, _, body) = get_in(&hive, &path).await;
    assert_eq!(status, StatusCode::OK);
    assert!(body == model);
    // Ready in the catalog before the outage.
    let deadline = tokio::time::Instant::now() + SOON;
    while !hive.provisioner().catalog().list().unwrap().iter().any(|l| {
        matches!(l, rbee_catalog::Listing::Entry(e) if e.record.status == rbee_catalog::ArtifactStatus::Ready)
    }) {
        assert!(tokio::time::Instant::now() < deadline);
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }

    env.hub.set_faults(vec![
        rbee_fake_hub::Fault::status(503).path("**").times(10_000),
    ]);
    let before = env.hub.requests().len();
    let (status, h, body) = get_in(&hive, &path).await;
    assert!(
        env.hub.requests().len() > before,
        "the upstream was asked again"
    );
    assert_eq!(status, StatusCode::OK, "{}", String::from_utf8_lossy(&body));
    assert!(!header(&h, "x-repo-commit").is_empty());
    assert!(body == model);
    let (status, _, body) = get_in(&hive, "/org/other/resolve/main/x.gguf").await;
    assert!(status.is_server_error(), "{status}");
    let text = String::from_utf8_lossy(&body);
    assert!(text.contains("upstream answered 503"), "{text}");
}

/// The upstream sends one wrong byte: the client's stream is cut, and a resume on top of the
/// wrong bytes it got is refused (it would otherwise end as a corrupt copy of the right size).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resume_after_a_failed_check_is_refused() {
    const SIZE: usize = 8 << 20;
    // One connection at 2 MiB/s: the client gets most of the file before the check.
    let env = TestEnv::with_rate_limit(Some(2 << 20)).await;
    let model = env.write_file(&format!("{REPO}/flip.gguf"), SIZE);
    env.hub.set_faults(vec![
        rbee_fake_hub::Fault::flip_byte(1000)
            .path(format!("files/{REPO}/flip.gguf"))
            .times(1),
    ]);
    let hive = Daemon::start(&env, &[]).await;
    let url = format!("{}/org/repo/resolve/main/flip.gguf", hive.url);
    let mut response = hive.client.get(&url).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let mut got = Vec::new();
    let cut = tokio::time::timeout(SOON * 4, async {
        loop {
            match response.chunk().await {
                Ok(Some(chunk)) => got.extend_from_slice(&chunk),
                Ok(None) => return false,
                Err(_) => return true,
            }
        }
    })
    .await
    .unwrap();
    assert!(
        cut,
        "the stream of a file that failed its check must be cut"
    );
    assert!(!got.is_empty() && got.len() < SIZE, "{}", got.len());
    assert_ne!(got[1000], model[1000], "the client got the wrong byte");

    let from = got.len();
    let (status, h, body) =
        fetch(&hive.client, &url, &[("range", &format!("bytes={from}-"))]).await;
    assert!(
        status.is_server_error(),
        "a resume on top of wrong bytes went through: {status}"
    );
    let text = String::from_utf8_lossy(&body);
    assert!(text.contains(".incomplete"), "{text}");
    assert!(!header(&h, "x-error-message").is_empty());

    // Fetched from the start, the file is right, and resumes work again. (A fetch that joins
    // the failed download while it winds down is cut too: a client retries it.)
    let mut whole = None;
    for _ in 0..5 {
        let response = hive.client.get(&url).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        if let Ok(body) = response.bytes().await {
            whole = Some(body);
            break;
        }
    }
    let body = whole.expect("a fetch from the start completes");
    assert!(body == model, "the copy fetched from the start differs");
    let (status, _, body) = fetch(&hive.client, &url, &[("range", "bytes=1000-")]).await;
    assert_eq!(status, StatusCode::PARTIAL_CONTENT);
    assert!(body[..] == model[1000..]);
}

/// Older llama.cpp's `-hf ORG/REPO[:QUANT]` through the hive: the manifest names the file the
/// tag picks (and the projector), and the resolve route serves it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn llama_cpp_manifests_name_the_quant_and_its_projector() {
    let env = TestEnv::new().await;
    let q4 = env.write_file(&format!("{REPO}/model-Q4_K_M.gguf"), 200_000);
    env.write_file(&format!("{REPO}/model-Q8_0.gguf"), 300_000);
    env.write_file(&format!("{REPO}/mmproj-model-f16.gguf"), 50_000);
    let hive = in_process_hive(&env);
    let llama = [("user-agent", "llama-cpp"), ("accept", "application/json")];

    let (status, _, body) = get_in_with(&hive, "/v2/org/repo/manifests/latest", &llama).await;
    assert_eq!(status, StatusCode::OK, "{}", String::from_utf8_lossy(&body));
    let manifest: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(manifest["ggufFile"]["rfilename"], "model-Q4_K_M.gguf");
    assert_eq!(manifest["ggufFile"]["size"], 200_000);
    assert_eq!(manifest["mmprojFile"]["rfilename"], "mmproj-model-f16.gguf");
    assert_eq!(
        manifest["ggufFile"]["lfs"]["sha256"]
            .as_str()
            .unwrap()
            .len(),
        64
    );

    let (status, _, body) = get_in_with(&hive, "/v2/org/repo/manifests/q8_0", &llama).await;
    assert_eq!(status, StatusCode::OK);
    let manifest: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(manifest["ggufFile"]["rfilename"], "model-Q8_0.gguf");

    let (status, _, body) = get_in(&hive, "/org/repo/resolve/main/model-Q4_K_M.gguf").await;
    assert_eq!(status, StatusCode::OK);
    assert!(body == q4);

    let (status, _, body) = get_in_with(&hive, "/v2/org/repo/manifests/IQ1_S", &llama).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let text = String::from_utf8_lossy(&body);
    assert!(text.contains("Q4_K_M") && text.contains("Q8_0"), "{text}");

    let (status, _, _) = get_in_with(&hive, "/v2/org/repo/manifests/..%2Fx", &llama).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _, body) = get_in_with(
        &hive,
        "/v2/org/repo/manifests/latest",
        &[(
            "accept",
            "application/vnd.docker.distribution.manifest.v2+json",
        )],
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(String::from_utf8_lossy(&body).contains("ollama:hf.co/"));
}

/// Today's llama.cpp `-hf` (its HF-cache downloader) through the hive: `refs` for `main`'s
/// commit, the recursive tree at that commit, then each file by commit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn llama_cpp_reads_refs_tree_and_files_through_the_hive() {
    let env = TestEnv::new().await;
    let q4 = env.write_file(&format!("{REPO}/Q4_K_M/model-Q4_K_M.gguf"), 150_000);
    env.write_file(&format!("{REPO}/README.md"), 100);
    let hive = in_process_hive(&env);
    let llama = [
        ("user-agent", "llama-cpp/b1"),
        ("accept", "application/json"),
    ];

    let (status, _, body) = get_in_with(&hive, "/api/models/org/repo/refs", &llama).await;
    assert_eq!(status, StatusCode::OK, "{}", String::from_utf8_lossy(&body));
    let refs: Value = serde_json::from_slice(&body).unwrap();
    let main = refs["branches"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["name"] == "main")
        .expect("main is listed");
    let commit = main["targetCommit"].as_str().unwrap();
    assert_eq!(commit.len(), 40);

    let (status, _, body) = get_in_with(
        &hive,
        &format!("/api/models/org/repo/tree/{commit}?recursive=true"),
        &llama,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let tree: Value = serde_json::from_slice(&body).unwrap();
    let entry = tree
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["path"] == "Q4_K_M/model-Q4_K_M.gguf")
        .expect("the nested GGUF is listed");
    assert_eq!(entry["type"], "file");
    assert_eq!(entry["lfs"]["oid"].as_str().unwrap().len(), 64);

    let (status, _, body) = get_in_with(
        &hive,
        &format!("/org/repo/resolve/{commit}/Q4_K_M/model-Q4_K_M.gguf"),
        &llama,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert!(body == q4);

    // The Hub answers an anonymous client 401 for a repository it does not have.
    let (status, h, body) = get_in(&hive, "/api/models/org/missing/refs").await;
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "{}",
        String::from_utf8_lossy(&body)
    );
    assert_eq!(header(&h, "x-error-code"), "RepoNotFound");
}

/// An LFS file whose content the catalog already holds under another repository is served
/// from that copy (found by its sha256), not fetched from the upstream again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_copy_of_the_same_content_is_served_without_the_upstream() {
    let env = TestEnv::new().await;
    // Same length of name and size: the same bytes in two repositories.
    let model = env.write_file(&format!("{REPO}/{MODEL}"), 1_000_000);
    assert!(env.write_file(&format!("hf/org/copy/{MODEL}"), 1_000_000) == model);
    let hive = in_process_hive(&env);
    let (status, _, body) = get_in(&hive, &format!("/org/copy/resolve/main/{MODEL}")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(body == model);
    let deadline = tokio::time::Instant::now() + SOON;
    while !hive.provisioner().catalog().list().unwrap().iter().any(|l| {
        matches!(l, rbee_catalog::Listing::Entry(e) if e.record.status == rbee_catalog::ArtifactStatus::Ready)
    }) {
        assert!(tokio::time::Instant::now() < deadline);
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }

    let (status, h, body) = get_in(&hive, &format!("/org/repo/resolve/main/{MODEL}")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(!header(&h, "x-linked-etag").is_empty(), "not an LFS file");
    assert!(body == model);
    let fetched = env.hub.counters_for(&lfs_path(REPO, MODEL)).bytes_sent;
    assert_eq!(fetched, 0, "the upstream sent the file again");
}

/// A catalog folder swapped for a link to somewhere else (same file name, same size) is not
/// served: the mirror reads catalog files only where no link leads.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_catalog_file_reached_through_a_link_is_not_served() {
    let env = TestEnv::new().await;
    let model = env.write_file(&format!("{REPO}/{MODEL}"), 1_000_000);
    let hive = in_process_hive(&env);
    let path = format!("/org/repo/resolve/main/{MODEL}");
    let (status, _, body) = get_in(&hive, &path).await;
    assert_eq!(status, StatusCode::OK);
    assert!(body == model);
    let deadline = tokio::time::Instant::now() + SOON;
    let dir = loop {
        let ready = hive
            .provisioner()
            .catalog()
            .list()
            .unwrap()
            .into_iter()
            .find_map(|l| match l {
                rbee_catalog::Listing::Entry(e)
                    if e.record.status == rbee_catalog::ArtifactStatus::Ready =>
                {
                    Some(e.dir)
                }
                _ => None,
            });
        if let Some(dir) = ready {
            break dir;
        }
        assert!(tokio::time::Instant::now() < deadline);
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    };
    // Someone replaces the entry's files folder with a link to other bytes of the same size.
    let elsewhere = tempfile::tempdir().unwrap();
    let other = vec![0x5a; model.len()];
    std::fs::write(elsewhere.path().join(MODEL), &other).unwrap();
    let files = dir.join("files");
    std::fs::remove_dir_all(&files).unwrap();
    std::os::unix::fs::symlink(elsewhere.path(), &files).unwrap();

    let (status, _, body) = get_in(&hive, &path).await;
    assert!(body != other, "bytes behind a link were served");
    if status == StatusCode::OK {
        assert!(body == model);
    }
}
