//! Protocol cases against wiremock: a registry on 127.0.0.1 and its "CDN" on 127.0.0.2 (another
//! host, as registry.ollama.ai's 307s to R2 go), and a temporary folder as Ollama's store.

use std::net::TcpListener;
use std::path::Path;
use std::time::Duration;

use rbee_artifact::{DownloadTracker, Error, FileSource, JobId, Sha256Digest};
use rbee_transfer::{Transfer, TransferConfig};
use rbee_vendor_ollama::{
    MANIFEST_MEDIA_TYPE, OllamaConfig, OllamaRef, OllamaStore, OllamaVendor, Resolution,
};
use tokio_util::sync::CancellationToken;
use url::Url;
use wiremock::matchers::{header, method, path};
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

const TOKEN: &str = "anon-token-that-must-stay-on-the-registry";

// `TransferConfig` is non-exhaustive: it can only be built from its default.
#[allow(clippy::field_reassign_with_default)]
pub(crate) fn transfer() -> Transfer {
    let mut config = TransferConfig::default();
    config.max_attempts = 3;
    config.initial_backoff = Duration::from_millis(10);
    config.max_backoff = Duration::from_secs(2);
    config.use_env_proxy = false;
    config.check_disk_space = false;
    Transfer::new(config).expect("transfer config is valid")
}

async fn cdn() -> MockServer {
    let listener = TcpListener::bind("127.0.0.2:0").expect("127.0.0.2 is a loopback address");
    MockServer::builder().listener(listener).start().await
}

/// A model's blobs and the manifest naming them.
pub(crate) struct Model {
    pub(crate) model: Vec<u8>,
    pub(crate) template: Vec<u8>,
    pub(crate) params: Vec<u8>,
    pub(crate) config: Vec<u8>,
    pub(crate) manifest: Vec<u8>,
}

impl Model {
    pub(crate) fn new(seed: u8) -> Model {
        let model: Vec<u8> = b"GGUF"
            .iter()
            .copied()
            .chain((0..50_000u32).map(|i| (i as u8).wrapping_mul(seed)))
            .collect();
        let template = b"{{ .Prompt }}".to_vec();
        let params = br#"{"stop":["<|eot_id|>"]}"#.to_vec();
        let config =
            br#"{"model_format":"gguf","model_family":"llama","file_type":"Q4_K_M"}"#.to_vec();
        let layer = |media: &str, bytes: &[u8]| {
            format!(
                r#"{{"mediaType":"application/vnd.ollama.image.{media}","digest":"sha256:{}","size":{}}}"#,
                Sha256Digest::of(bytes),
                bytes.len()
            )
        };
        let manifest = format!(
            r#"{{"schemaVersion":2,"mediaType":"{MANIFEST_MEDIA_TYPE}","config":{{"mediaType":"application/vnd.docker.container.image.v1+json","digest":"sha256:{}","size":{}}},"layers":[{},{},{}]}}"#,
            Sha256Digest::of(&config),
            config.len(),
            layer("model", &model),
            layer("template", &template),
            layer("params", &params),
        )
        .into_bytes();
        Model {
            model,
            template,
            params,
            config,
            manifest,
        }
    }

    pub(crate) fn blobs(&self) -> [&[u8]; 4] {
        [&self.config, &self.model, &self.template, &self.params]
    }
}

/// Serves `model` as `ns/name:tag` on `registry`, blobs redirected (307) to `cdn`.
async fn serve(registry: &MockServer, cdn: &MockServer, ns_name: &str, tag: &str, model: &Model) {
    Mock::given(method("GET"))
        .and(path(format!("/v2/{ns_name}/manifests/{tag}")))
        .and(header("accept", MANIFEST_MEDIA_TYPE))
        .respond_with(
            ResponseTemplate::new(200)
                .insert_header("content-type", MANIFEST_MEDIA_TYPE)
                .set_body_bytes(model.manifest.clone()),
        )
        .mount(registry)
        .await;
    for blob in model.blobs() {
        let digest = Sha256Digest::of(blob);
        Mock::given(method("GET"))
            .and(path(format!("/v2/{ns_name}/blobs/sha256:{digest}")))
            .respond_with(ResponseTemplate::new(307).insert_header(
                "location",
                format!("{}/r2/{digest}?X-Amz-Signature=sig", cdn.uri()),
            ))
            .mount(registry)
            .await;
        serve_bytes(cdn, &format!("/r2/{digest}"), blob.to_vec()).await;
    }
}

/// `GET path` answering ranges as a CDN does.
async fn serve_bytes(server: &MockServer, at: &str, body: Vec<u8>) {
    Mock::given(method("GET"))
        .and(path(at.to_string()))
        .respond_with(move |req: &Request| ranged(req, &body))
        .mount(server)
        .await;
}

fn ranged(req: &Request, body: &[u8]) -> ResponseTemplate {
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
    match range {
        Some((a, b)) if a < body.len() => ResponseTemplate::new(206)
            .insert_header("content-range", format!("bytes {a}-{b}/{}", body.len()))
            .insert_header("etag", "\"v1\"")
            .set_body_bytes(body[a..=b].to_vec()),
        _ => ResponseTemplate::new(200)
            .insert_header("etag", "\"v1\"")
            .set_body_bytes(body.to_vec()),
    }
}

pub(crate) fn vendor(registry: &MockServer, store: Option<&Path>, publish: bool) -> OllamaVendor {
    let base = Url::parse(&registry.uri()).unwrap();
    let config = OllamaConfig::with_registry(base.clone())
        .with_registry_for("hf.co", base)
        .with_store(store.map(Path::to_path_buf), publish);
    OllamaVendor::new(config, transfer())
}

fn name(s: &str) -> OllamaRef {
    s.parse().unwrap()
}

async fn resolve(v: &OllamaVendor, n: &str) -> Result<Resolution, Error> {
    v.resolve_name(&name(n), false, &CancellationToken::new())
        .await
}

async fn download(v: &OllamaVendor, n: &str, plan: &Resolution, dest: &Path) -> Result<(), Error> {
    let tracker = DownloadTracker::new(JobId::generate());
    v.download_files(
        &name(n),
        &plan.files,
        &plan.files,
        dest,
        &tracker,
        &CancellationToken::new(),
    )
    .await
    .map(|_| ())
}

fn assert_model_files(dest: &Path, model: &Model) {
    assert_eq!(std::fs::read(dest.join("model.gguf")).unwrap(), model.model);
    assert_eq!(
        std::fs::read(dest.join("template")).unwrap(),
        model.template
    );
    assert_eq!(
        std::fs::read(dest.join("params.json")).unwrap(),
        model.params
    );
    assert_eq!(
        std::fs::read(dest.join("config.json")).unwrap(),
        model.config
    );
    assert_eq!(
        std::fs::read(dest.join("manifest.json")).unwrap(),
        model.manifest
    );
}

#[tokio::test]
async fn pulls_by_every_spelling_following_the_redirect() {
    let (registry, cdn) = (MockServer::start().await, cdn().await);
    let model = Model::new(3);
    serve(&registry, &cdn, "library/llama3.2", "1b", &model).await;
    serve(&registry, &cdn, "library/llama3.2", "latest", &model).await;
    serve(&registry, &cdn, "jmorgan/mixtral", "8x7b", &model).await;
    serve(
        &registry,
        &cdn,
        "bartowski/Llama-3.2-1B-GGUF",
        "Q4_K_M",
        &model,
    )
    .await;
    let v = vendor(&registry, None, false);
    for spelling in [
        "ollama:llama3.2:1b",
        "llama3.2:1b",
        "ollama:llama3.2",
        "ollama:registry.ollama.ai/library/llama3.2:1b",
        "ollama:jmorgan/mixtral:8x7b",
        "ollama:hf.co/bartowski/Llama-3.2-1B-GGUF:Q4_K_M",
    ] {
        let plan = resolve(&v, spelling).await.expect(spelling);
        let paths: Vec<&str> = plan.files.iter().map(|f| f.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "manifest.json",
                "config.json",
                "model.gguf",
                "template",
                "params.json"
            ],
            "{spelling}"
        );
        assert_eq!(
            plan.revision,
            format!("sha256:{}", Sha256Digest::of(&model.manifest))
        );
        let dir = tempfile::tempdir().unwrap();
        download(&v, spelling, &plan, dir.path())
            .await
            .expect(spelling);
        assert_model_files(dir.path(), &model);
    }
    // The CDN never saw a credential, and the signed query stays out of the plan's notes.
    for req in cdn.received_requests().await.unwrap() {
        assert!(req.headers.get("authorization").is_none());
    }
}

#[tokio::test]
async fn the_bearer_challenge_is_answered_anonymously_and_the_token_stays_on_the_registry() {
    let (registry, cdn) = (MockServer::start().await, cdn().await);
    let model = Model::new(5);
    let bearer = format!("Bearer {TOKEN}");
    let challenge = format!(
        r#"Bearer realm="{}/token",service="registry.test",scope="repository:library/m:pull""#,
        registry.uri()
    );
    Mock::given(method("GET"))
        .and(path("/token"))
        .and(wiremock::matchers::query_param(
            "scope",
            "repository:library/m:pull",
        ))
        .and(wiremock::matchers::query_param("service", "registry.test"))
        .respond_with(
            ResponseTemplate::new(200).set_body_string(format!(r#"{{"token":"{TOKEN}"}}"#)),
        )
        .expect(1)
        .mount(&registry)
        .await;
    // With the token: the model. Without: the challenge.
    Mock::given(method("GET"))
        .and(path("/v2/library/m/manifests/t"))
        .and(header("authorization", bearer.as_str()))
        .respond_with(ResponseTemplate::new(200).set_body_bytes(model.manifest.clone()))
        .mount(&registry)
        .await;
    for blob in model.blobs() {
        let digest = Sha256Digest::of(blob);
        Mock::given(method("GET"))
            .and(path(format!("/v2/library/m/blobs/sha256:{digest}")))
            .and(header("authorization", bearer.as_str()))
            .respond_with(
                ResponseTemplate::new(307)
                    .insert_header("location", format!("{}/r2/{digest}", cdn.uri())),
            )
            .mount(&registry)
            .await;
        serve_bytes(&cdn, &format!("/r2/{digest}"), blob.to_vec()).await;
    }
    Mock::given(method("GET"))
        .respond_with(
            ResponseTemplate::new(401)
                .insert_header("www-authenticate", challenge.as_str())
                .set_body_string(
                    r#"{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}"#,
                ),
        )
        .mount(&registry)
        .await;
    let v = vendor(&registry, None, false);
    let plan = resolve(&v, "m:t").await.unwrap();
    assert!(!format!("{plan:?}").contains(TOKEN));
    let dir = tempfile::tempdir().unwrap();
    download(&v, "m:t", &plan, dir.path()).await.unwrap();
    assert_model_files(dir.path(), &model);
    for req in cdn.received_requests().await.unwrap() {
        assert!(req.headers.get("authorization").is_none(), "{req:?}");
    }
}

/// Serves `model` as `library/{repo}:t`, only to the token scoped to that repository.
async fn serve_scoped(registry: &MockServer, cdn: &MockServer, repo: &str, model: &Model) {
    let token = format!("token-for-{repo}");
    let scope = format!("repository:library/{repo}:pull");
    Mock::given(method("GET"))
        .and(path("/token"))
        .and(wiremock::matchers::query_param("scope", scope.as_str()))
        .respond_with(
            ResponseTemplate::new(200).set_body_string(format!(r#"{{"token":"{token}"}}"#)),
        )
        .expect(1)
        .mount(registry)
        .await;
    let bearer = format!("Bearer {token}");
    Mock::given(method("GET"))
        .and(path(format!("/v2/library/{repo}/manifests/t")))
        .and(header("authorization", bearer.as_str()))
        .respond_with(ResponseTemplate::new(200).set_body_bytes(model.manifest.clone()))
        .mount(registry)
        .await;
    for blob in model.blobs() {
        let digest = Sha256Digest::of(blob);
        Mock::given(method("GET"))
            .and(path(format!("/v2/library/{repo}/blobs/sha256:{digest}")))
            .and(header("authorization", bearer.as_str()))
            .respond_with(
                ResponseTemplate::new(307)
                    .insert_header("location", format!("{}/r2/{digest}", cdn.uri())),
            )
            .mount(registry)
            .await;
        serve_bytes(cdn, &format!("/r2/{digest}"), blob.to_vec()).await;
    }
    let challenge = format!(
        r#"Bearer realm="{}/token",service="registry.test",scope="{scope}""#,
        registry.uri()
    );
    Mock::given(method("GET"))
        .and(wiremock::matchers::path_regex(format!(
            "^/v2/library/{repo}/"
        )))
        .respond_with(
            ResponseTemplate::new(401).insert_header("www-authenticate", challenge.as_str()),
        )
        .mount(registry)
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_models_of_one_registry_keep_their_own_tokens() {
    let (registry, cdn) = (MockServer::start().await, cdn().await);
    let (one, two) = (Model::new(21), Model::new(23));
    serve_scoped(&registry, &cdn, "one", &one).await;
    serve_scoped(&registry, &cdn, "two", &two).await;
    let v = vendor(&registry, None, false);
    let (plan_one, plan_two) = tokio::join!(resolve(&v, "one:t"), resolve(&v, "two:t"));
    let (plan_one, plan_two) = (plan_one.unwrap(), plan_two.unwrap());
    let (dir_one, dir_two) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (a, b) = tokio::join!(
        download(&v, "one:t", &plan_one, dir_one.path()),
        download(&v, "two:t", &plan_two, dir_two.path())
    );
    a.unwrap();
    b.unwrap();
    assert_model_files(dir_one.path(), &one);
    assert_model_files(dir_two.path(), &two);
    // One token per repository, each fetched once and used for every request after.
    registry.verify().await;
}

#[tokio::test]
async fn a_token_service_that_refuses_is_a_clear_unauthorized_error() {
    let registry = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/token"))
        .respond_with(ResponseTemplate::new(403))
        .mount(&registry)
        .await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(401).insert_header(
            "www-authenticate",
            format!(r#"Bearer realm="{}/token""#, registry.uri()).as_str(),
        ))
        .mount(&registry)
        .await;
    let e = resolve(&vendor(&registry, None, false), "private/m:t")
        .await
        .unwrap_err();
    assert_eq!(e.code(), "unauthorized", "{e}");
    assert!(e.to_string().contains("anonymous"), "{e}");
}

#[tokio::test]
async fn unknown_model_and_unknown_tag_say_which() {
    let registry = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/v2/library/nosuch/manifests/latest"))
        .respond_with(ResponseTemplate::new(404).set_body_string(
            r#"{"errors":[{"code":"NAME_UNKNOWN","message":"repository name not known to registry"}]}"#,
        ))
        .mount(&registry)
        .await;
    Mock::given(method("GET"))
        .and(path("/v2/library/llama3.2/manifests/99b"))
        .respond_with(ResponseTemplate::new(404).set_body_string(
            r#"{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown"}]}"#,
        ))
        .mount(&registry)
        .await;
    let v = vendor(&registry, None, false);
    let e = resolve(&v, "ollama:nosuch").await.unwrap_err();
    assert_eq!(e.code(), "not_found");
    assert!(e.to_string().contains("no model `library/nosuch`"), "{e}");
    let e = resolve(&v, "ollama:llama3.2:99b").await.unwrap_err();
    assert_eq!(e.code(), "not_found");
    let text = e.to_string();
    assert!(text.contains("no tag `99b`"), "{text}");
    assert!(
        text.contains("https://ollama.com/library/llama3.2/tags"),
        "{text}"
    );
}

#[tokio::test]
async fn registry_5xx_and_429_are_retried() {
    let (registry, cdn) = (MockServer::start().await, cdn().await);
    let model = Model::new(7);
    Mock::given(method("GET"))
        .and(path("/v2/library/m/manifests/t"))
        .respond_with(ResponseTemplate::new(503))
        .up_to_n_times(1)
        .expect(1)
        .mount(&registry)
        .await;
    Mock::given(method("GET"))
        .and(path("/v2/library/m/manifests/t"))
        .respond_with(ResponseTemplate::new(429).insert_header("retry-after", "0"))
        .up_to_n_times(1)
        .expect(1)
        .mount(&registry)
        .await;
    serve(&registry, &cdn, "library/m", "t", &model).await;
    let v = vendor(&registry, None, false);
    let plan = resolve(&v, "m:t").await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    download(&v, "m:t", &plan, dir.path()).await.unwrap();
    assert_model_files(dir.path(), &model);
}

#[tokio::test]
async fn a_flipped_byte_is_an_integrity_error_and_never_lands() {
    let (registry, cdn) = (MockServer::start().await, cdn().await);
    let model = Model::new(9);
    let digest = Sha256Digest::of(&model.model);
    // The CDN's copy of the model blob has one byte changed.
    let mut flipped = model.model.clone();
    flipped[1000] ^= 0x40;
    serve_bytes(&cdn, &format!("/r2/{digest}"), flipped).await;
    serve(&registry, &cdn, "library/m", "t", &model).await;
    let v = vendor(&registry, None, false);
    let plan = resolve(&v, "m:t").await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let e = download(&v, "m:t", &plan, dir.path()).await.unwrap_err();
    assert_eq!(e.code(), "integrity", "{e}");
    assert!(!dir.path().join("model.gguf").exists());
}

#[tokio::test]
async fn a_model_in_ollamas_store_resolves_and_downloads_without_the_network() {
    let registry = MockServer::start().await;
    let model = Model::new(11);
    let store_dir = tempfile::tempdir().unwrap();
    let store = write_store(store_dir.path(), "llama3.2:1b", &model);
    let v = vendor(&registry, Some(store.root()), false);
    let plan = resolve(&v, "llama3.2:1b").await.unwrap();
    assert!(
        plan.files
            .iter()
            .all(|f| matches!(f.source, FileSource::Local { .. })),
        "{plan:?}"
    );
    assert!(plan.notes[0].contains("Ollama's store"), "{:?}", plan.notes);
    let dir = tempfile::tempdir().unwrap();
    download(&v, "llama3.2:1b", &plan, dir.path())
        .await
        .unwrap();
    assert_model_files(dir.path(), &model);
    assert!(registry.received_requests().await.unwrap().is_empty());
    // Hard-linked, not copied (same file system).
    use std::os::unix::fs::MetadataExt;
    let linked = std::fs::metadata(dir.path().join("model.gguf")).unwrap();
    let blob = std::fs::metadata(store.blob_path(&Sha256Digest::of(&model.model))).unwrap();
    assert_eq!((linked.dev(), linked.ino()), (blob.dev(), blob.ino()));

    // Offline works the same; a model Ollama lacks is a clear offline error.
    let offline = v
        .resolve_name(&name("llama3.2:1b"), true, &CancellationToken::new())
        .await
        .unwrap();
    assert_eq!(offline, plan);
    let e = v
        .resolve_name(&name("other:1b"), true, &CancellationToken::new())
        .await
        .unwrap_err();
    assert_eq!(e.code(), "offline", "{e}");
    assert!(registry.received_requests().await.unwrap().is_empty());
}

#[tokio::test]
async fn a_blob_ollama_has_under_another_name_is_taken_not_downloaded() {
    let (registry, cdn) = (MockServer::start().await, cdn().await);
    let model = Model::new(13);
    serve(&registry, &cdn, "library/m", "t", &model).await;
    let store_dir = tempfile::tempdir().unwrap();
    let store = write_store(store_dir.path(), "other:t", &model);
    let v = vendor(&registry, Some(store.root()), false);
    let plan = resolve(&v, "m:t").await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    download(&v, "m:t", &plan, dir.path()).await.unwrap();
    assert_model_files(dir.path(), &model);
    // The manifest came from the registry; no blob did.
    let blob_requests = registry
        .received_requests()
        .await
        .unwrap()
        .into_iter()
        .filter(|r| r.url.path().contains("/blobs/"))
        .count();
    assert_eq!(blob_requests, 0);
    assert!(cdn.received_requests().await.unwrap().is_empty());
}

#[tokio::test]
async fn a_tampered_blob_in_ollamas_store_is_downloaded_instead() {
    let (registry, cdn) = (MockServer::start().await, cdn().await);
    let model = Model::new(15);
    serve(&registry, &cdn, "library/m", "t", &model).await;
    let store_dir = tempfile::tempdir().unwrap();
    let store = write_store(store_dir.path(), "m:t", &model);
    // Same size, other bytes: Ollama would trust it; rbee does not.
    let blob = store.blob_path(&Sha256Digest::of(&model.model));
    let mut bytes = std::fs::read(&blob).unwrap();
    bytes[10] ^= 1;
    std::fs::write(&blob, bytes).unwrap();
    let v = vendor(&registry, Some(store.root()), false);
    let plan = resolve(&v, "m:t").await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    download(&v, "m:t", &plan, dir.path()).await.unwrap();
    assert_model_files(dir.path(), &model);
    assert!(!cdn.received_requests().await.unwrap().is_empty());
}

#[tokio::test]
async fn publishing_replaces_a_tampered_blob_in_ollamas_store() {
    let (registry, cdn) = (MockServer::start().await, cdn().await);
    let model = Model::new(19);
    serve(&registry, &cdn, "library/m", "t", &model).await;
    let store_dir = tempfile::tempdir().unwrap();
    let store = write_store(store_dir.path(), "m:t", &model);
    // Right size, other bytes.
    let digest = Sha256Digest::of(&model.model);
    let blob = store.blob_path(&digest);
    std::fs::write(&blob, vec![0u8; model.model.len()]).unwrap();
    let v = vendor(&registry, Some(store.root()), true);
    let plan = resolve(&v, "m:t").await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    download(&v, "m:t", &plan, dir.path()).await.unwrap();
    assert_model_files(dir.path(), &model);
    let (placed, _) = Sha256Digest::of_file(&blob, |_| {}).unwrap();
    assert_eq!(placed, digest);
}

#[tokio::test]
async fn publishing_writes_ollamas_layout_exactly() {
    let (registry, cdn) = (MockServer::start().await, cdn().await);
    let model = Model::new(17);
    serve(
        &registry,
        &cdn,
        "bartowski/Llama-3.2-1B-GGUF",
        "Q4_K_M",
        &model,
    )
    .await;
    let store_dir = tempfile::tempdir().unwrap();
    let root = store_dir.path().join("models");
    let v = vendor(&registry, Some(&root), true);
    let spelling = "ollama:hf.co/bartowski/Llama-3.2-1B-GGUF:Q4_K_M";
    let plan = resolve(&v, spelling).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    download(&v, spelling, &plan, dir.path()).await.unwrap();

    let manifest = root.join("manifests/hf.co/bartowski/Llama-3.2-1B-GGUF/Q4_K_M");
    assert_eq!(std::fs::read(&manifest).unwrap(), model.manifest);
    let mut blobs: Vec<String> = std::fs::read_dir(root.join("blobs"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    blobs.sort();
    let mut expected: Vec<String> = model
        .blobs()
        .iter()
        .map(|b| format!("sha256-{}", Sha256Digest::of(b)))
        .collect();
    expected.sort();
    assert_eq!(blobs, expected);
    for blob in model.blobs() {
        let path = root.join(format!("blobs/sha256-{}", Sha256Digest::of(blob)));
        assert_eq!(std::fs::read(path).unwrap(), blob);
    }
    // And it reads back as the same model.
    let stored = OllamaStore::new(&root)
        .read(&name(spelling))
        .unwrap()
        .unwrap();
    assert_eq!(stored.bytes, model.manifest);
}

/// Lays `model` out in an Ollama store under `root`, as `ollama pull` would.
pub(crate) fn write_store(root: &Path, n: &str, model: &Model) -> OllamaStore {
    let store = OllamaStore::new(root);
    for blob in model.blobs() {
        let path = store.blob_path(&Sha256Digest::of(blob));
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, blob).unwrap();
    }
    let manifest = store.manifest_path(&name(n));
    std::fs::create_dir_all(manifest.parent().unwrap()).unwrap();
    std::fs::write(manifest, &model.manifest).unwrap();
    store
}
