//! The URL vendor against wiremock: resolve cases and a download through the engine.

use rbee_artifact::{
    ArtifactRef, DownloadTracker, Error, JobId, ResolveOptions, Sha256Digest, VendorSource,
};
use rbee_transfer::{Transfer, TransferConfig};
use rbee_vendor_url::UrlVendor;
use tokio_util::sync::CancellationToken;
use wiremock::matchers::{header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

fn vendor() -> UrlVendor {
    let config = TransferConfig {
        initial_backoff: std::time::Duration::from_millis(10),
        use_env_proxy: false,
        ..TransferConfig::default()
    };
    UrlVendor::new(Transfer::new(config).unwrap())
}

async fn resolve(r: &str) -> rbee_artifact::Result<rbee_artifact::ResolvedArtifact> {
    let r: ArtifactRef = r.parse().unwrap();
    vendor()
        .resolve(&r, &ResolveOptions::default(), &CancellationToken::new())
        .await
}

#[tokio::test]
async fn head_gives_size_version_name_and_fragment_digest() {
    rbee_artifact::register_reference::<rbee_vendor_url::UrlRef>();
    let server = MockServer::start().await;
    Mock::given(method("HEAD"))
        .and(path("/models/tiny%20model.gguf"))
        .respond_with(
            ResponseTemplate::new(200)
                .insert_header("content-length", "1234")
                .insert_header("etag", "\"abc\""),
        )
        .expect(1)
        .mount(&server)
        .await;
    let digest = Sha256Digest::of(b"x");
    let plan = resolve(&format!(
        "{}/models/tiny%20model.gguf#sha256={digest}",
        server.uri()
    ))
    .await
    .unwrap();
    assert_eq!(plan.files.len(), 1);
    let f = &plan.files[0];
    assert_eq!(f.path, "tiny model.gguf");
    assert_eq!(f.size, Some(1234));
    assert_eq!(f.sha256, Some(digest));
    assert_eq!(f.version.as_deref(), Some("\"abc\""));
    // No GET: resolving moves no bytes.
    assert!(
        server
            .received_requests()
            .await
            .unwrap()
            .iter()
            .all(|r| r.method == wiremock::http::Method::HEAD)
    );
}

#[tokio::test]
async fn head_not_allowed_falls_back_to_one_byte_get() {
    rbee_artifact::register_reference::<rbee_vendor_url::UrlRef>();
    let server = MockServer::start().await;
    Mock::given(method("HEAD"))
        .respond_with(ResponseTemplate::new(405))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(header("range", "bytes=0-0"))
        .respond_with(
            ResponseTemplate::new(206)
                .insert_header("content-range", "bytes 0-0/5000")
                .insert_header("content-disposition", "attachment; filename=\"real.gguf\"")
                .set_body_bytes(b"x".to_vec()),
        )
        .expect(1)
        .mount(&server)
        .await;
    let plan = resolve(&format!("{}/dl?id=7", server.uri())).await.unwrap();
    assert_eq!(plan.files[0].size, Some(5000));
    assert_eq!(plan.files[0].path, "real.gguf");
}

#[tokio::test]
async fn missing_and_refused_urls_are_clear_errors() {
    rbee_artifact::register_reference::<rbee_vendor_url::UrlRef>();
    let server = MockServer::start().await;
    for (p, status) in [
        ("/gone.gguf", 404),
        ("/private.gguf", 401),
        ("/forbidden.gguf", 403),
    ] {
        Mock::given(path(p))
            .respond_with(ResponseTemplate::new(status))
            .mount(&server)
            .await;
    }
    let err = resolve(&format!("{}/gone.gguf", server.uri()))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::NotFound { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(msg.contains("404") && msg.contains("/gone.gguf"), "{msg}");
    let err = resolve(&format!("{}/private.gguf", server.uri()))
        .await
        .unwrap_err();
    assert_eq!(err.code(), "unauthorized", "{err:?}");
    // 403 on HEAD may be a GET-only signed URL: the ranged GET is tried, then it is refused.
    let err = resolve(&format!("{}/forbidden.gguf", server.uri()))
        .await
        .unwrap_err();
    assert_eq!(err.code(), "unauthorized", "{err:?}");
}

#[tokio::test]
async fn unknown_size_is_none_and_still_downloads() {
    rbee_artifact::register_reference::<rbee_vendor_url::UrlRef>();
    let server = MockServer::start().await;
    Mock::given(method("HEAD"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&server)
        .await;
    let data: Vec<u8> = (0..70_000u32).map(|i| (i * 7) as u8).collect();
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(200).set_body_bytes(data.clone()))
        .mount(&server)
        .await;
    let r: ArtifactRef = format!("{}/f.bin", server.uri()).parse().unwrap();
    let v = vendor();
    let cancel = CancellationToken::new();
    let plan = v
        .resolve(&r, &ResolveOptions::default(), &cancel)
        .await
        .unwrap();
    // HEAD answers carry no body; the size must not be read as 0.
    assert_eq!(plan.files[0].size, None);
    let dir = tempfile::tempdir().unwrap();
    let tracker = DownloadTracker::new(JobId::from("j"));
    let got = v
        .download(&plan, &plan.files, dir.path(), &tracker, &cancel)
        .await
        .unwrap();
    assert_eq!(got[0].size, data.len() as u64);
    assert_eq!(got[0].sha256, Sha256Digest::of(&data));
    assert_eq!(std::fs::read(dir.path().join("f.bin")).unwrap(), data);
}

#[tokio::test]
async fn wrong_digest_fails_and_leaves_nothing_final() {
    rbee_artifact::register_reference::<rbee_vendor_url::UrlRef>();
    let server = MockServer::start().await;
    let data = b"the real bytes".to_vec();
    Mock::given(method("HEAD"))
        .respond_with(ResponseTemplate::new(200).insert_header("content-length", "14"))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(200).set_body_bytes(data))
        .mount(&server)
        .await;
    let wrong = Sha256Digest::of(b"other bytes");
    let r: ArtifactRef = format!("{}/m.gguf#sha256={wrong}", server.uri())
        .parse()
        .unwrap();
    let v = vendor();
    let cancel = CancellationToken::new();
    let plan = v
        .resolve(&r, &ResolveOptions::default(), &cancel)
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let tracker = DownloadTracker::new(JobId::from("j"));
    let err = v
        .download(&plan, &plan.files, dir.path(), &tracker, &cancel)
        .await
        .unwrap_err();
    assert_eq!(err.code(), "integrity", "{err:?}");
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
}

#[tokio::test]
async fn offline_and_globs() {
    rbee_artifact::register_reference::<rbee_vendor_url::UrlRef>();
    let r: ArtifactRef = "https://example.invalid/m.gguf".parse().unwrap();
    let mut options = ResolveOptions::default();
    options.offline = true;
    let err = vendor()
        .resolve(&r, &options, &CancellationToken::new())
        .await
        .unwrap_err();
    assert_eq!(err.code(), "offline");
    let server = MockServer::start().await;
    Mock::given(method("HEAD"))
        .respond_with(ResponseTemplate::new(200).insert_header("content-length", "3"))
        .mount(&server)
        .await;
    let r: ArtifactRef = format!("{}/m.gguf", server.uri()).parse().unwrap();
    let options = ResolveOptions::with_globs(vec![], vec!["*.gguf".into()]);
    let err = vendor()
        .resolve(&r, &options, &CancellationToken::new())
        .await
        .unwrap_err();
    assert_eq!(err.code(), "invalid_request");
}

mod hostile {
    //! The URL vendor against fake-hub's hostile mode.

    use rbee_artifact::{ArtifactRef, DownloadTracker, JobId, ResolveOptions, VendorSource};
    use rbee_fake_hub::{FakeHub, FakeHubConfig, Fault};
    use tokio_util::sync::CancellationToken;

    async fn hub(size: usize) -> (FakeHub, tempfile::TempDir) {
        let root = tempfile::tempdir().unwrap();
        std::fs::write(root.path().join("m.gguf"), vec![7u8; size]).unwrap();
        let hub = FakeHub::start(FakeHubConfig::new(root.path()))
            .await
            .unwrap();
        (hub, root)
    }

    #[tokio::test]
    async fn content_disposition_names_that_are_paths_or_escapes_are_refused() {
        rbee_artifact::register_reference::<rbee_vendor_url::UrlRef>();
        let (hub, _root) = hub(1000).await;
        let r: ArtifactRef = hub.file_url("m.gguf").as_str().parse().unwrap();
        let long = format!("attachment; filename=\"{}.gguf\"", "a".repeat(3000));
        for value in [
            "attachment; filename=\"../../.bashrc\"",
            "attachment; filename=\"sub/m.gguf\"",
            "attachment; filename*=UTF-8''%1B%5B2J%1B%5B31mm.gguf",
            long.as_str(),
        ] {
            hub.set_faults(vec![Fault::content_disposition(value).path("m.gguf")]);
            let err = super::vendor()
                .resolve(&r, &ResolveOptions::default(), &CancellationToken::new())
                .await
                .unwrap_err();
            let text = err.to_string();
            assert_eq!(err.code(), "protocol", "{value}: {text}");
            assert!(text.contains("Content-Disposition"), "{text}");
            assert!(!text.contains('\u{1b}') && text.len() < 500, "{text:?}");
        }
    }

    /// `HEAD` announces 1000 bytes; the `GET` goes on past them.
    #[tokio::test]
    async fn a_body_longer_than_head_announced_is_cut_and_refused() {
        rbee_artifact::register_reference::<rbee_vendor_url::UrlRef>();
        let (hub, _root) = hub(1000).await;
        let r: ArtifactRef = hub.file_url("m.gguf").as_str().parse().unwrap();
        let v = super::vendor();
        let plan = v
            .resolve(&r, &ResolveOptions::default(), &CancellationToken::new())
            .await
            .unwrap();
        assert_eq!(plan.files[0].size, Some(1000));
        hub.set_faults(vec![Fault::long_body(8 << 20).path("m.gguf")]);
        let dest = tempfile::tempdir().unwrap();
        let tracker = DownloadTracker::new(JobId::from("job-url"));
        let err = v
            .download(
                &plan,
                &plan.files,
                dest.path(),
                &tracker,
                &CancellationToken::new(),
            )
            .await
            .unwrap_err();
        assert!(
            err.to_string()
                .contains("more than the 1000 bytes announced"),
            "{err}"
        );
        assert!(!dest.path().join("m.gguf").exists());
        assert!(!dest.path().join("m.gguf.part").exists());
    }
}
