//! Protocol cases of the GitHub vendor against wiremock servers: one API server on 127.0.0.1
//! and, for downloads, a "CDN" on 127.0.0.2 (another host, as GitHub's redirects go).

use std::net::TcpListener;
use std::path::Path;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rbee_artifact::{
    ArtifactRef, DownloadTracker, Error, FileSource, JobId, ResolveOptions, ResolvedArtifact,
    Secret, Sha256Digest, VendorSource,
};
use rbee_transfer::{Transfer, TransferConfig};
use rbee_vendor_github::{GitHubConfig, GitHubVendor};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;
use url::Url;
use wiremock::matchers::{header, header_exists, method, path, query_param};
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

const TOKEN: &str = "ghp_TestTokenThatMustNeverLeak1234";

// `TransferConfig` is non-exhaustive: it can only be built from its default.
#[allow(clippy::field_reassign_with_default)]
fn transfer() -> Transfer {
    let mut config = TransferConfig::default();
    config.max_attempts = 3;
    config.initial_backoff = Duration::from_millis(10);
    config.max_backoff = Duration::from_secs(2);
    config.use_env_proxy = false;
    config.check_disk_space = false;
    Transfer::new(config).expect("transfer config is valid")
}

fn vendor(api: &MockServer, token: Option<&str>) -> GitHubVendor {
    let config = GitHubConfig::new(Url::parse(&api.uri()).unwrap())
        .with_token(token.and_then(Secret::new))
        .with_max_rate_limit_wait(Duration::from_secs(5));
    GitHubVendor::new(config, transfer())
}

/// A second server on another loopback address: a different host, like GitHub's CDN.
async fn cdn() -> MockServer {
    let listener = TcpListener::bind("127.0.0.2:0").expect("127.0.0.2 is a loopback address");
    MockServer::builder().listener(listener).start().await
}

fn reference(s: &str) -> ArtifactRef {
    rbee_artifact::register_reference::<rbee_vendor_github::GhRef>();
    // A reference of another vendor, which this one must refuse.
    rbee_artifact::register_reference::<rbee_vendor_huggingface::HfRef>();
    s.parse().unwrap()
}

async fn resolve(v: &GitHubVendor, r: &str) -> Result<ResolvedArtifact, Error> {
    resolve_with(v, r, ResolveOptions::default()).await
}

async fn resolve_with(
    v: &GitHubVendor,
    r: &str,
    options: ResolveOptions,
) -> Result<ResolvedArtifact, Error> {
    v.resolve(&reference(r), &options, &CancellationToken::new())
        .await
}

fn asset(api: &MockServer, id: u64, name: &str, body: &[u8], with_digest: bool) -> Value {
    json!({
        "url": format!("{}/repos/o/r/releases/assets/{id}", api.uri()),
        "id": id,
        "name": name,
        "label": null,
        "content_type": "application/octet-stream",
        "state": "uploaded",
        "size": body.len(),
        "digest": with_digest.then(|| format!("sha256:{}", Sha256Digest::of(body))),
        "download_count": 0,
        "created_at": "2025-06-01T10:00:00Z",
        "updated_at": "2025-06-01T10:05:00Z",
        "browser_download_url": format!("{}/o/r/releases/download/v1/{name}", api.uri()),
    })
}

fn release(tag: &str, prerelease: bool, draft: bool, assets: Vec<Value>) -> Value {
    json!({
        "url": "ignored", "id": 1, "tag_name": tag, "target_commitish": "main",
        "name": format!("Release {tag}"), "draft": draft, "prerelease": prerelease,
        "created_at": "2025-06-01T09:00:00Z", "published_at": "2025-06-01T10:00:00Z",
        "assets": assets,
    })
}

async fn mount_json(server: &MockServer, url_path: &str, status: u16, body: Value) {
    Mock::given(method("GET"))
        .and(path(url_path))
        .respond_with(ResponseTemplate::new(status).set_body_json(body))
        .mount(server)
        .await;
}

fn not_found() -> Value {
    json!({"message": "Not Found", "documentation_url": "https://docs.github.com/rest"})
}

#[tokio::test]
async fn latest_release_resolves_the_single_model_with_digest_size_and_version() {
    let api = MockServer::start().await;
    let model = b"GGUF model bytes".to_vec();
    Mock::given(method("GET"))
        .and(path("/repos/o/r/releases/latest"))
        .and(header("accept", "application/vnd.github+json"))
        .and(header("x-github-api-version", "2022-11-28"))
        .and(header_exists("user-agent"))
        .respond_with(ResponseTemplate::new(200).set_body_json(release(
            "v1",
            false,
            false,
            vec![
                asset(&api, 7, "model.gguf", &model, true),
                asset(&api, 8, "SHA256SUMS", b"sums", false),
                asset(&api, 9, "src.tar.gz", b"src", true),
            ],
        )))
        .expect(1)
        .mount(&api)
        .await;

    let plan = resolve(&vendor(&api, None), "gh:o/r").await.unwrap();
    assert_eq!(plan.revision.as_deref(), Some("v1"));
    assert_eq!(plan.files.len(), 1);
    let file = &plan.files[0];
    assert_eq!(file.path, "model.gguf");
    assert_eq!(file.size, Some(model.len() as u64));
    assert_eq!(file.sha256, Some(Sha256Digest::of(&model)));
    assert_eq!(file.version.as_deref(), Some("7@2025-06-01T10:05:00Z"));
    let FileSource::Http { url } = &file.source else {
        panic!("{:?}", file.source)
    };
    assert_eq!(url.path(), "/o/r/releases/download/v1/model.gguf");
    let notes = plan.notes.join("\n");
    assert!(notes.contains("from main"), "{notes}");
    assert!(notes.contains("only model file"), "{notes}");

    // No token configured: no Authorization header at all.
    for request in api.received_requests().await.unwrap() {
        assert!(request.headers.get("authorization").is_none());
    }
}

#[tokio::test]
async fn token_goes_to_the_api_as_bearer_and_selects_the_asset_api_url() {
    let api = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/repos/o/r/releases/tags/v1"))
        .and(header("authorization", format!("Bearer {TOKEN}").as_str()))
        .respond_with(ResponseTemplate::new(200).set_body_json(release(
            "v1",
            false,
            false,
            vec![asset(&api, 7, "model.gguf", b"x", true)],
        )))
        .expect(1)
        .mount(&api)
        .await;
    let plan = resolve(&vendor(&api, Some(TOKEN)), "gh:o/r@v1/model.gguf")
        .await
        .unwrap();
    let FileSource::Http { url } = &plan.files[0].source else {
        panic!()
    };
    assert_eq!(url.path(), "/repos/o/r/releases/assets/7");
    let shown = format!("{plan:?} {}", serde_json::to_string(&plan).unwrap());
    assert!(!shown.contains(TOKEN), "the plan must not carry the token");
}

#[tokio::test]
async fn asset_api_url_off_the_api_host_is_not_trusted_with_the_token() {
    let api = MockServer::start().await;
    let mut a = asset(&api, 7, "model.gguf", b"x", true);
    a["url"] = json!("http://127.0.0.2:9/repos/o/r/releases/assets/7");
    mount_json(
        &api,
        "/repos/o/r/releases/tags/v1",
        200,
        release("v1", false, false, vec![a]),
    )
    .await;
    let plan = resolve(&vendor(&api, Some(TOKEN)), "gh:o/r@v1")
        .await
        .unwrap();
    let FileSource::Http { url } = &plan.files[0].source else {
        panic!()
    };
    assert_eq!(url.path(), "/o/r/releases/download/v1/model.gguf");
}

#[tokio::test]
async fn a_glob_selects_several_assets_as_one_artifact() {
    let api = MockServer::start().await;
    mount_json(
        &api,
        "/repos/o/r/releases/tags/v1",
        200,
        release(
            "v1",
            false,
            false,
            vec![
                asset(&api, 1, "m-Q8_0.gguf", b"8", true),
                asset(&api, 2, "m-Q4_K_M.gguf", b"4", true),
                asset(&api, 3, "README.md", b"r", true),
            ],
        ),
    )
    .await;
    let plan = resolve(&vendor(&api, None), "gh:o/r@v1/*.gguf")
        .await
        .unwrap();
    let paths: Vec<_> = plan.files.iter().map(|f| f.path.as_str()).collect();
    assert_eq!(paths, ["m-Q4_K_M.gguf", "m-Q8_0.gguf"]);

    let options = ResolveOptions::with_globs(vec![], vec!["*Q8_0*".into()]);
    let plan = resolve_with(&vendor(&api, None), "gh:o/r@v1", options)
        .await
        .unwrap();
    assert_eq!(plan.files[0].path, "m-Q4_K_M.gguf");
}

#[tokio::test]
async fn ambiguous_and_missing_assets_list_what_exists() {
    let api = MockServer::start().await;
    mount_json(
        &api,
        "/repos/o/r/releases/tags/v1",
        200,
        release(
            "v1",
            false,
            false,
            vec![
                asset(&api, 1, "a.gguf", b"a", true),
                asset(&api, 2, "b.gguf", b"b", true),
            ],
        ),
    )
    .await;
    let v = vendor(&api, None);
    let e = resolve(&v, "gh:o/r@v1").await.unwrap_err();
    assert_eq!(e.code(), "invalid_request");
    let msg = e.to_string();
    assert!(
        msg.contains("ambiguous") && msg.contains("a.gguf") && msg.contains("b.gguf"),
        "{msg}"
    );
    assert!(msg.contains("gh:o/r@v1/NAME"), "{msg}");

    let e = resolve(&v, "gh:o/r@v1/c.gguf").await.unwrap_err();
    assert_eq!(e.code(), "invalid_request");
    assert!(e.to_string().contains("no asset named `c.gguf`"), "{e}");
}

#[tokio::test]
async fn missing_tag_lists_recent_releases_without_drafts() {
    let api = MockServer::start().await;
    mount_json(&api, "/repos/o/r/releases/tags/v9", 404, not_found()).await;
    Mock::given(method("GET"))
        .and(path("/repos/o/r/releases"))
        .and(query_param("per_page", "10"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!([
            release("v3-draft", false, true, vec![]),
            release("v2-rc1", true, false, vec![]),
            release("v1", false, false, vec![]),
        ])))
        .expect(1)
        .mount(&api)
        .await;
    let e = resolve(&vendor(&api, None), "gh:o/r@v9").await.unwrap_err();
    assert_eq!(e.code(), "not_found");
    let msg = e.to_string();
    assert!(msg.contains("no release tagged `v9`"), "{msg}");
    assert!(msg.contains("v2-rc1 (pre-release), v1"), "{msg}");
    assert!(!msg.contains("v3-draft"), "{msg}");
}

#[tokio::test]
async fn missing_repository_says_private_repos_need_a_token() {
    let api = MockServer::start().await;
    mount_json(&api, "/repos/o/nope/releases/latest", 404, not_found()).await;
    mount_json(&api, "/repos/o/nope/releases", 404, not_found()).await;
    let e = resolve(&vendor(&api, None), "gh:o/nope").await.unwrap_err();
    assert_eq!(e.code(), "not_found");
    let msg = e.to_string();
    assert!(
        msg.contains("o/nope was not found") && msg.contains("GITHUB_TOKEN"),
        "{msg}"
    );

    let e = resolve(&vendor(&api, Some(TOKEN)), "gh:o/nope")
        .await
        .unwrap_err();
    assert!(e.to_string().contains("token cannot read it"), "{e}");
}

#[tokio::test]
async fn latest_never_picks_a_pre_release_but_a_tag_may() {
    let api = MockServer::start().await;
    mount_json(&api, "/repos/o/r/releases/latest", 404, not_found()).await;
    let pre = release(
        "v2-rc1",
        true,
        false,
        vec![asset(&api, 1, "m.gguf", b"m", true)],
    );
    mount_json(&api, "/repos/o/r/releases", 200, json!([pre.clone()])).await;
    mount_json(&api, "/repos/o/r/releases/tags/v2-rc1", 200, pre).await;
    let v = vendor(&api, None);

    let e = resolve(&v, "gh:o/r").await.unwrap_err();
    assert_eq!(e.code(), "not_found");
    let msg = e.to_string();
    assert!(msg.contains("no published release"), "{msg}");
    assert!(msg.contains("v2-rc1 (pre-release)"), "{msg}");

    let plan = resolve(&v, "gh:o/r@v2-rc1").await.unwrap();
    assert_eq!(plan.revision.as_deref(), Some("v2-rc1"));
    assert!(
        plan.notes.iter().any(|n| n.contains("pre-release")),
        "{:?}",
        plan.notes
    );
}

#[tokio::test]
async fn a_latest_answer_that_is_a_pre_release_is_not_trusted() {
    let api = MockServer::start().await;
    mount_json(
        &api,
        "/repos/o/r/releases/latest",
        200,
        release("v2-rc1", true, false, vec![]),
    )
    .await;
    mount_json(
        &api,
        "/repos/o/r/releases",
        200,
        json!([
            release("v2-rc1", true, false, vec![]),
            release(
                "v1",
                false,
                false,
                vec![asset(&api, 1, "m.gguf", b"m", true)]
            ),
        ]),
    )
    .await;
    let plan = resolve(&vendor(&api, None), "gh:o/r").await.unwrap();
    assert_eq!(plan.revision.as_deref(), Some("v1"));
}

#[tokio::test]
async fn drafts_are_never_downloaded() {
    let api = MockServer::start().await;
    mount_json(
        &api,
        "/repos/o/r/releases/tags/v3",
        200,
        release(
            "v3",
            false,
            true,
            vec![asset(&api, 1, "m.gguf", b"m", true)],
        ),
    )
    .await;
    let e = resolve(&vendor(&api, Some(TOKEN)), "gh:o/r@v3")
        .await
        .unwrap_err();
    assert_eq!(e.code(), "not_found");
    assert!(e.to_string().contains("is a draft"), "{e}");
}

#[tokio::test]
async fn bad_token_is_named_invalid_and_never_echoed() {
    let api = MockServer::start().await;
    mount_json(
        &api,
        "/repos/o/r/releases/latest",
        401,
        json!({"message": format!("Bad credentials: {TOKEN}")}),
    )
    .await;
    let e = resolve(&vendor(&api, Some(TOKEN)), "gh:o/r")
        .await
        .unwrap_err();
    assert_eq!(e.code(), "unauthorized");
    let shown = format!("{e} {e:?} {}", e.report());
    assert!(shown.contains("invalid or expired"), "{shown}");
    assert!(!shown.contains(TOKEN), "{shown}");
}

#[tokio::test]
async fn plain_403_is_unauthorized_not_a_rate_limit() {
    let api = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/repos/o/r/releases/latest"))
        .respond_with(
            ResponseTemplate::new(403)
                .insert_header("x-ratelimit-remaining", "4999")
                .set_body_json(
                    json!({"message": "Resource not accessible by personal access token"}),
                ),
        )
        .expect(1)
        .mount(&api)
        .await;
    let e = resolve(&vendor(&api, Some(TOKEN)), "gh:o/r")
        .await
        .unwrap_err();
    assert_eq!(e.code(), "unauthorized");
    assert!(e.to_string().contains("lacks access"), "{e}");
}

fn epoch_secs_in(d: Duration) -> String {
    (SystemTime::now() + d)
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
        .to_string()
}

#[tokio::test]
async fn long_rate_limit_fails_at_once_with_reset_time_and_token_advice() {
    let api = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/repos/o/r/releases/latest"))
        .respond_with(
            ResponseTemplate::new(403)
                .insert_header("x-ratelimit-limit", "60")
                .insert_header("x-ratelimit-remaining", "0")
                .insert_header(
                    "x-ratelimit-reset",
                    epoch_secs_in(Duration::from_secs(37 * 60)).as_str(),
                )
                .set_body_json(json!({"message": "API rate limit exceeded for 127.0.0.1."})),
        )
        .expect(1)
        .mount(&api)
        .await;
    let e = resolve(&vendor(&api, None), "gh:o/r").await.unwrap_err();
    assert_eq!(e.code(), "rate_limited");
    let msg = e.to_string();
    assert!(
        msg.contains("in 37 minutes") || msg.contains("in 38 minutes"),
        "{msg}"
    );
    assert!(
        msg.contains("resets at") && msg.contains("GITHUB_TOKEN"),
        "{msg}"
    );
    let Error::RateLimited { retry_after, .. } = e else {
        panic!()
    };
    assert!(retry_after.unwrap() > Duration::from_secs(30 * 60));
}

#[tokio::test]
async fn short_primary_rate_limit_is_waited_out() {
    let api = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/repos/o/r/releases/latest"))
        .respond_with(
            ResponseTemplate::new(403)
                .insert_header("x-ratelimit-remaining", "0")
                .insert_header("x-ratelimit-reset", epoch_secs_in(Duration::ZERO).as_str()),
        )
        .up_to_n_times(1)
        .expect(1)
        .mount(&api)
        .await;
    Mock::given(method("GET"))
        .and(path("/repos/o/r/releases/latest"))
        .respond_with(ResponseTemplate::new(200).set_body_json(release(
            "v1",
            false,
            false,
            vec![asset(&api, 1, "m.gguf", b"m", true)],
        )))
        .expect(1)
        .mount(&api)
        .await;
    let plan = resolve(&vendor(&api, None), "gh:o/r").await.unwrap();
    assert_eq!(plan.revision.as_deref(), Some("v1"));
}

#[tokio::test]
async fn secondary_rate_limit_with_retry_after_is_waited_out() {
    let api = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/repos/o/r/releases/tags/v1"))
        .respond_with(
            ResponseTemplate::new(403)
                .insert_header("retry-after", "1")
                .set_body_json(json!({"message": "You have exceeded a secondary rate limit."})),
        )
        .up_to_n_times(1)
        .expect(1)
        .mount(&api)
        .await;
    Mock::given(method("GET"))
        .and(path("/repos/o/r/releases/tags/v1"))
        .respond_with(ResponseTemplate::new(200).set_body_json(release(
            "v1",
            false,
            false,
            vec![asset(&api, 1, "m.gguf", b"m", true)],
        )))
        .expect(1)
        .mount(&api)
        .await;
    let started = Instant::now();
    resolve(&vendor(&api, None), "gh:o/r@v1").await.unwrap();
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "the wait was honoured"
    );
}

#[tokio::test]
async fn a_429_rate_limit_is_waited_out() {
    let api = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/repos/o/r/releases/tags/v1"))
        .respond_with(ResponseTemplate::new(429).insert_header("retry-after", "1"))
        .up_to_n_times(1)
        .expect(1)
        .mount(&api)
        .await;
    Mock::given(method("GET"))
        .and(path("/repos/o/r/releases/tags/v1"))
        .respond_with(ResponseTemplate::new(200).set_body_json(release(
            "v1",
            false,
            false,
            vec![asset(&api, 1, "m.gguf", b"m", true)],
        )))
        .expect(1)
        .mount(&api)
        .await;
    resolve(&vendor(&api, None), "gh:o/r@v1").await.unwrap();
}

#[tokio::test]
async fn a_rate_limit_wait_is_cancellable() {
    let api = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/repos/o/r/releases/latest"))
        .respond_with(
            ResponseTemplate::new(403)
                .insert_header("x-ratelimit-remaining", "0")
                .insert_header(
                    "x-ratelimit-reset",
                    epoch_secs_in(Duration::from_secs(50)).as_str(),
                ),
        )
        .expect(1)
        .mount(&api)
        .await;
    let config = GitHubConfig::new(Url::parse(&api.uri()).unwrap())
        .with_max_rate_limit_wait(Duration::from_secs(120));
    let v = GitHubVendor::new(config, transfer());
    let cancel = CancellationToken::new();
    let trigger = cancel.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(300)).await;
        trigger.cancel();
    });
    let outcome = tokio::time::timeout(
        Duration::from_secs(10),
        v.resolve(&reference("gh:o/r"), &ResolveOptions::default(), &cancel),
    )
    .await
    .expect("cancellation ends the wait promptly");
    assert!(outcome.unwrap_err().is_cancelled());
}

#[tokio::test]
async fn offline_and_foreign_references_are_refused_without_requests() {
    let api = MockServer::start().await;
    let v = vendor(&api, None);
    let mut options = ResolveOptions::default();
    options.offline = true;
    let e = resolve_with(&v, "gh:o/r", options).await.unwrap_err();
    assert_eq!(e.code(), "offline");
    let e = resolve(&v, "hf:o/r").await.unwrap_err();
    assert_eq!(e.code(), "unsupported");
    assert!(api.received_requests().await.unwrap().is_empty());
}

#[tokio::test]
async fn a_hostile_asset_name_is_refused() {
    let api = MockServer::start().await;
    mount_json(
        &api,
        "/repos/o/r/releases/tags/v1",
        200,
        release(
            "v1",
            false,
            false,
            vec![asset(&api, 1, "../../evil.gguf", b"x", true)],
        ),
    )
    .await;
    let e = resolve(&vendor(&api, None), "gh:o/r@v1").await.unwrap_err();
    assert_eq!(e.code(), "protocol");
}

#[tokio::test]
async fn an_api_that_is_not_github_is_a_protocol_error() {
    let api = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(200).set_body_string("<html>hello</html>"))
        .mount(&api)
        .await;
    let e = resolve(&vendor(&api, None), "gh:o/r").await.unwrap_err();
    assert_eq!(e.code(), "protocol");
    assert!(e.to_string().contains("GITHUB_API_URL"), "{e}");
}

// ---------------------------------------------------------------- downloads

fn payload(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 31 % 251) as u8).collect()
}

/// Mounts `body` at `/signed/{name}` on the CDN, and a 302 to it at `from` on the API server.
async fn redirect_to_cdn(api: &MockServer, cdn: &MockServer, from: &str, name: &str, body: &[u8]) {
    let target = format!("{}/signed/{name}?sig=abc&expires=1", cdn.uri());
    Mock::given(method("GET"))
        .and(path(from))
        .respond_with(ResponseTemplate::new(302).insert_header("location", target.as_str()))
        .mount(api)
        .await;
    let body = body.to_vec();
    Mock::given(path(format!("/signed/{name}")))
        .respond_with(move |req: &Request| serve_range(req, &body))
        .mount(cdn)
        .await;
}

/// Serves `body` honouring a single `Range: bytes=a-b` (what the engine asks for).
fn serve_range(req: &Request, body: &[u8]) -> ResponseTemplate {
    let range = req
        .headers
        .get("range")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("bytes="))
        .and_then(|v| v.split_once('-'))
        .and_then(|(a, b)| {
            let a: usize = a.parse().ok()?;
            let b: usize = if b.is_empty() {
                body.len() - 1
            } else {
                b.parse().ok()?
            };
            Some((a, b.min(body.len() - 1)))
        });
    let base = ResponseTemplate::new(200)
        .insert_header("accept-ranges", "bytes")
        .insert_header("etag", "\"v1\"");
    if req.method.as_str() == "HEAD" {
        return base.insert_header("content-length", body.len().to_string().as_str());
    }
    match range {
        Some((a, b)) if a < body.len() => ResponseTemplate::new(206)
            .insert_header("accept-ranges", "bytes")
            .insert_header("etag", "\"v1\"")
            .insert_header(
                "content-range",
                format!("bytes {a}-{b}/{}", body.len()).as_str(),
            )
            .set_body_bytes(body[a..=b].to_vec()),
        _ => base.set_body_bytes(body.to_vec()),
    }
}

async fn download(
    v: &GitHubVendor,
    plan: &ResolvedArtifact,
    dest: &Path,
) -> (Result<Vec<rbee_artifact::DownloadedFile>, Error>, String) {
    let tracker = DownloadTracker::new(JobId::from("job-gh"));
    let (_, mut events) = tracker.subscribe();
    let result = v
        .download(plan, &plan.files, dest, &tracker, &CancellationToken::new())
        .await;
    let mut seen = String::new();
    while let Ok(event) = events.try_recv() {
        seen.push_str(&serde_json::to_string(&event).unwrap());
        seen.push_str(&format!("{event:?}\n"));
    }
    (result, seen)
}

#[tokio::test]
async fn public_asset_downloads_through_the_browser_url_and_verifies() {
    let api = MockServer::start().await;
    let cdn = cdn().await;
    let body = payload(3 << 20);
    mount_json(
        &api,
        "/repos/o/r/releases/tags/v1",
        200,
        release(
            "v1",
            false,
            false,
            vec![asset(&api, 7, "model.gguf", &body, true)],
        ),
    )
    .await;
    redirect_to_cdn(
        &api,
        &cdn,
        "/o/r/releases/download/v1/model.gguf",
        "model.gguf",
        &body,
    )
    .await;

    let v = vendor(&api, None);
    let plan = resolve(&v, "gh:o/r@v1/model.gguf").await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (result, _) = download(&v, &plan, dir.path()).await;
    let files = result.unwrap();
    assert_eq!(files.len(), 1);
    assert_eq!(files[0].path, "model.gguf");
    assert_eq!(files[0].sha256, Sha256Digest::of(&body));
    assert_eq!(std::fs::read(dir.path().join("model.gguf")).unwrap(), body);
}

#[tokio::test]
async fn private_asset_downloads_through_the_asset_api_and_the_cdn_never_sees_the_token() {
    let api = MockServer::start().await;
    let cdn = cdn().await;
    let body = payload(2 << 20);
    mount_json(
        &api,
        "/repos/o/r/releases/tags/v1",
        200,
        release(
            "v1",
            false,
            false,
            vec![asset(&api, 7, "model.gguf", &body, true)],
        ),
    )
    .await;
    let target = format!("{}/signed/model.gguf?sig=abc", cdn.uri());
    Mock::given(method("GET"))
        .and(path("/repos/o/r/releases/assets/7"))
        .and(header("accept", "application/octet-stream"))
        .and(header("authorization", format!("Bearer {TOKEN}").as_str()))
        .respond_with(ResponseTemplate::new(302).insert_header("location", target.as_str()))
        .expect(1..)
        .mount(&api)
        .await;
    let served = body.clone();
    Mock::given(path("/signed/model.gguf"))
        .respond_with(move |req: &Request| serve_range(req, &served))
        .mount(&cdn)
        .await;

    let v = vendor(&api, Some(TOKEN));
    let plan = resolve(&v, "gh:o/r@v1").await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (result, events) = download(&v, &plan, dir.path()).await;
    result.unwrap();
    assert_eq!(std::fs::read(dir.path().join("model.gguf")).unwrap(), body);

    let cdn_requests = cdn.received_requests().await.unwrap();
    assert!(!cdn_requests.is_empty());
    for request in cdn_requests {
        assert!(
            request.headers.get("authorization").is_none(),
            "the CDN got an Authorization header"
        );
        let all = format!("{:?} {}", request.headers, request.url);
        assert!(!all.contains(TOKEN));
    }
    assert!(!events.contains(TOKEN), "events carry the token");
    assert!(!format!("{v:?}").contains(TOKEN));
}

#[tokio::test]
async fn a_digest_mismatch_fails_and_leaves_no_final_file() {
    let api = MockServer::start().await;
    let cdn = cdn().await;
    let body = payload(64 << 10);
    let mut a = asset(&api, 7, "model.gguf", &body, true);
    a["digest"] = json!(format!("sha256:{}", Sha256Digest::of(b"something else")));
    mount_json(
        &api,
        "/repos/o/r/releases/tags/v1",
        200,
        release("v1", false, false, vec![a]),
    )
    .await;
    redirect_to_cdn(
        &api,
        &cdn,
        "/o/r/releases/download/v1/model.gguf",
        "model.gguf",
        &body,
    )
    .await;

    let v = vendor(&api, None);
    let plan = resolve(&v, "gh:o/r@v1").await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (result, _) = download(&v, &plan, dir.path()).await;
    let e = result.unwrap_err();
    assert_eq!(e.code(), "integrity", "{e}");
    assert!(!dir.path().join("model.gguf").exists());
}

#[tokio::test]
async fn an_asset_without_digest_is_size_checked() {
    let api = MockServer::start().await;
    let cdn = cdn().await;
    let body = payload(64 << 10);
    let mut a = asset(&api, 7, "model.gguf", &body, false);
    a["size"] = json!(body.len() + 10);
    mount_json(
        &api,
        "/repos/o/r/releases/tags/v1",
        200,
        release("v1", false, false, vec![a]),
    )
    .await;
    redirect_to_cdn(
        &api,
        &cdn,
        "/o/r/releases/download/v1/model.gguf",
        "model.gguf",
        &body,
    )
    .await;

    let v = vendor(&api, None);
    let plan = resolve(&v, "gh:o/r@v1").await.unwrap();
    assert_eq!(plan.files[0].sha256, None);
    assert!(
        plan.notes
            .iter()
            .any(|n| n.contains("no published SHA-256")),
        "{:?}",
        plan.notes
    );
    let dir = tempfile::tempdir().unwrap();
    let (result, _) = download(&v, &plan, dir.path()).await;
    let e = result.unwrap_err();
    assert_eq!(e.code(), "size_mismatch", "{e}");
    assert!(!dir.path().join("model.gguf").exists());
}

#[tokio::test]
async fn an_asset_gone_since_resolving_says_to_resolve_again() {
    let api = MockServer::start().await;
    let body = payload(1024);
    mount_json(
        &api,
        "/repos/o/r/releases/tags/v1",
        200,
        release(
            "v1",
            false,
            false,
            vec![asset(&api, 7, "model.gguf", &body, true)],
        ),
    )
    .await;
    Mock::given(method("GET"))
        .and(path("/o/r/releases/download/v1/model.gguf"))
        .respond_with(ResponseTemplate::new(404).set_body_string("Not Found"))
        .mount(&api)
        .await;
    let v = vendor(&api, None);
    let plan = resolve(&v, "gh:o/r@v1").await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (result, _) = download(&v, &plan, dir.path()).await;
    let e = result.unwrap_err();
    assert_eq!(e.code(), "not_found", "{e}");
    assert!(e.to_string().contains("run the command again"), "{e}");
}

#[tokio::test]
async fn a_refused_private_download_names_the_token() {
    let api = MockServer::start().await;
    mount_json(
        &api,
        "/repos/o/r/releases/tags/v1",
        200,
        release(
            "v1",
            false,
            false,
            vec![asset(&api, 7, "model.gguf", b"m", true)],
        ),
    )
    .await;
    Mock::given(method("GET"))
        .and(path("/repos/o/r/releases/assets/7"))
        .respond_with(
            ResponseTemplate::new(403)
                .set_body_json(json!({"message": format!("token {TOKEN} lacks scope")})),
        )
        .mount(&api)
        .await;
    let v = vendor(&api, Some(TOKEN));
    let plan = resolve(&v, "gh:o/r@v1").await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (result, events) = download(&v, &plan, dir.path()).await;
    let e = result.unwrap_err();
    assert_eq!(e.code(), "unauthorized", "{e}");
    let shown = format!("{e} {e:?} {}", e.report());
    assert!(shown.contains("token lacks access"), "{shown}");
    assert!(!shown.contains(TOKEN) && !events.contains(TOKEN), "{shown}");
}
