//! The GitHub vendor end to end against fake-hub's GitHub releases protocol: real bodies
//! through signed redirects to another host, private repositories, rate-limit faults,
//! expiring links and cut connections.

use std::path::{Path, PathBuf};
use std::time::Duration;

use rbee_artifact::{
    ArtifactRef, DownloadTracker, DownloadedFile, Error, FileSource, JobId, ResolveOptions,
    ResolvedArtifact, Secret, Sha256Digest, VendorSource,
};
use rbee_fake_hub::{FakeHub, FakeHubConfig, Fault, Host};
use rbee_transfer::{Transfer, TransferConfig};
use rbee_vendor_github::{GitHubConfig, GitHubVendor};
use tokio_util::sync::CancellationToken;

const MIB: usize = 1 << 20;
const TOKEN: &str = "ghp_FakeHubPrivateToken0123456789";

fn bytes(len: usize, seed: u8) -> Vec<u8> {
    let mut x = 0x9e37_79b9_7f4a_7c15u64 ^ u64::from(seed);
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

struct Env {
    dir: tempfile::TempDir,
    hub: FakeHub,
}

/// One release: tag, `.release.json` (or none), assets.
type ReleaseSpec<'a> = (&'a str, Option<&'a str>, Vec<(&'a str, Vec<u8>)>);

impl Env {
    async fn new(releases: &[(&str, ReleaseSpec<'_>)]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        for (repo, (tag, settings, assets)) in releases {
            let folder = root.join("gh").join(repo).join(tag);
            std::fs::create_dir_all(&folder).unwrap();
            if let Some(settings) = settings {
                std::fs::write(folder.join(".release.json"), settings).unwrap();
            }
            for (name, data) in assets {
                std::fs::write(folder.join(name), data).unwrap();
            }
        }
        std::fs::create_dir_all(&root).unwrap();
        let hub = FakeHub::start(FakeHubConfig::new(&root).with_gh_token(TOKEN))
            .await
            .unwrap();
        Self { dir, hub }
    }

    fn make_private(&self, repo: &str) {
        let path = self
            .dir
            .path()
            .join("root/gh")
            .join(repo)
            .join(".repo.json");
        std::fs::write(path, r#"{"private": true}"#).unwrap();
    }

    // `TransferConfig` is non-exhaustive: it can only be built from its default.
    #[allow(clippy::field_reassign_with_default)]
    fn vendor(&self, token: Option<&str>) -> GitHubVendor {
        let mut transfer = TransferConfig::default();
        transfer.initial_backoff = Duration::from_millis(20);
        transfer.use_env_proxy = false;
        let config = GitHubConfig::new(self.hub.url().clone())
            .with_token(token.and_then(Secret::new))
            .with_max_rate_limit_wait(Duration::from_secs(5));
        GitHubVendor::new(config, Transfer::new(transfer).unwrap())
    }

    fn dest(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn cdn_bytes(&self, repo: &str, tag: &str, name: &str) -> u64 {
        self.hub
            .counters_for(&format!("/files/gh/{repo}/{tag}/{name}"))
            .bytes_sent
    }
}

async fn resolve(v: &GitHubVendor, r: &str) -> Result<ResolvedArtifact, Error> {
    let reference: ArtifactRef = r.parse().unwrap();
    v.resolve(
        &reference,
        &ResolveOptions::default(),
        &CancellationToken::new(),
    )
    .await
}

async fn fetch(
    v: &GitHubVendor,
    plan: &ResolvedArtifact,
    dest: &Path,
) -> (Result<Vec<DownloadedFile>, Error>, String) {
    let tracker = DownloadTracker::new(JobId::from("job-fake-hub"));
    let (_, mut rx) = tracker.subscribe();
    let result = v
        .download(plan, &plan.files, dest, &tracker, &CancellationToken::new())
        .await;
    let mut events = String::new();
    while let Ok(e) = rx.try_recv() {
        events.push_str(&serde_json::to_string(&e).unwrap());
        events.push('\n');
    }
    (result, events)
}

fn published(at: &str) -> String {
    format!(r#"{{"published_at": "{at}", "target_commitish": "release-branch"}}"#)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn latest_public_release_downloads_through_the_cdn_and_verifies() {
    rbee_artifact::register_reference::<rbee_vendor_github::GhRef>();
    let model = bytes(3 * MIB + 5, 1);
    let v1 = published("2025-01-01T00:00:00Z");
    let v2 = published("2025-02-01T00:00:00Z");
    let env = Env::new(&[
        ("o/r", ("v1", Some(&v1), vec![("old.gguf", bytes(100, 9))])),
        (
            "o/r",
            (
                "v2",
                Some(&v2),
                vec![("model.gguf", model.clone()), ("SHA256SUMS", b"x".to_vec())],
            ),
        ),
    ])
    .await;
    let v = env.vendor(None);
    let plan = resolve(&v, "gh:o/r").await.unwrap();
    assert_eq!(plan.revision.as_deref(), Some("v2"));
    assert_eq!(plan.files.len(), 1);
    assert_eq!(plan.files[0].sha256, Some(Sha256Digest::of(&model)));
    assert!(
        plan.notes.iter().any(|n| n.contains("from release-branch")),
        "{:?}",
        plan.notes
    );
    let FileSource::Http { url } = &plan.files[0].source else {
        panic!()
    };
    assert!(
        url.path().ends_with("/o/r/releases/download/v2/model.gguf"),
        "{url}"
    );

    let dest = env.dest("out");
    let (result, _) = fetch(&v, &plan, &dest).await;
    let files = result.unwrap();
    assert_eq!(files[0].sha256, Sha256Digest::of(&model));
    assert_eq!(std::fs::read(dest.join("model.gguf")).unwrap(), model);
    assert!(env.cdn_bytes("o/r", "v2", "model.gguf") >= model.len() as u64);
    assert_eq!(env.cdn_bytes("o/r", "v2", "SHA256SUMS"), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn latest_skips_pre_releases_and_drafts_but_tags_reach_pre_releases() {
    rbee_artifact::register_reference::<rbee_vendor_github::GhRef>();
    let env = Env::new(&[
        (
            "o/r",
            (
                "v1",
                Some(&published("2025-01-01T00:00:00Z")),
                vec![("m.gguf", bytes(10, 1))],
            ),
        ),
        (
            "o/r",
            (
                "v2-rc1",
                Some(r#"{"prerelease": true, "published_at": "2025-02-01T00:00:00Z"}"#),
                vec![("m.gguf", bytes(20, 2))],
            ),
        ),
        (
            "o/r",
            (
                "v3",
                Some(r#"{"draft": true}"#),
                vec![("m.gguf", bytes(30, 3))],
            ),
        ),
    ])
    .await;
    let v = env.vendor(None);
    assert_eq!(
        resolve(&v, "gh:o/r").await.unwrap().revision.as_deref(),
        Some("v1")
    );
    let plan = resolve(&v, "gh:o/r@v2-rc1").await.unwrap();
    assert_eq!(plan.files[0].size, Some(20));
    let e = resolve(&v, "gh:o/r@v3").await.unwrap_err();
    assert_eq!(e.code(), "not_found");
    let msg = e.to_string();
    assert!(msg.contains("no release tagged `v3`"), "{msg}");
    assert!(msg.contains("v2-rc1 (pre-release), v1"), "{msg}");

    // With a token drafts are visible to the API, and still never downloaded.
    let e = resolve(&env.vendor(Some(TOKEN)), "gh:o/r@v3")
        .await
        .unwrap_err();
    assert_eq!(e.code(), "not_found");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn private_release_needs_the_token_and_downloads_through_the_asset_api() {
    rbee_artifact::register_reference::<rbee_vendor_github::GhRef>();
    let model = bytes(2 * MIB, 4);
    let env = Env::new(&[(
        "o/secret",
        ("v1", None, vec![("model.gguf", model.clone())]),
    )])
    .await;
    env.make_private("o/secret");

    let e = resolve(&env.vendor(None), "gh:o/secret@v1/model.gguf")
        .await
        .unwrap_err();
    assert_eq!(e.code(), "not_found");
    assert!(e.to_string().contains("GITHUB_TOKEN"), "{e}");

    let e = resolve(&env.vendor(Some("ghp_wrong")), "gh:o/secret@v1")
        .await
        .unwrap_err();
    assert_eq!(e.code(), "unauthorized");
    assert!(e.to_string().contains("invalid or expired"), "{e}");

    let v = env.vendor(Some(TOKEN));
    let plan = resolve(&v, "gh:o/secret@v1/model.gguf").await.unwrap();
    let FileSource::Http { url } = &plan.files[0].source else {
        panic!()
    };
    assert!(url.path().contains("/releases/assets/"), "{url}");
    // The first signed link has already expired when used, and the first body is cut: the
    // engine goes back to the asset API (with the token) for a fresh link and resumes.
    env.hub.set_faults(vec![
        Fault::expire_redirect(0).times(1),
        Fault::drop_after(MIB as u64 / 2).on(Host::Cdn).times(1),
    ]);
    let dest = env.dest("out");
    let (result, events) = fetch(&v, &plan, &dest).await;
    result.unwrap();
    assert_eq!(std::fs::read(dest.join("model.gguf")).unwrap(), model);
    assert!(!events.contains(TOKEN));
    let plan_text = format!("{plan:?}{}", serde_json::to_string(&plan).unwrap());
    assert!(!plan_text.contains(TOKEN));
    assert!(
        env.hub.faults().iter().all(|f| f.used >= 1),
        "both faults took effect: {:?}",
        env.hub.faults()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limits_are_waited_out_when_short_and_reported_when_long() {
    rbee_artifact::register_reference::<rbee_vendor_github::GhRef>();
    let env = Env::new(&[("o/r", ("v1", None, vec![("m.gguf", bytes(1000, 5))]))]).await;
    let v = env.vendor(None);

    env.hub
        .set_faults(vec![Fault::rate_limited(403, 1).path("repos/**").times(1)]);
    assert_eq!(resolve(&v, "gh:o/r@v1").await.unwrap().files.len(), 1);

    env.hub.set_faults(vec![
        Fault::secondary_rate_limit(429, 1)
            .path("repos/**")
            .times(1),
    ]);
    assert_eq!(resolve(&v, "gh:o/r@v1").await.unwrap().files.len(), 1);

    env.hub
        .set_faults(vec![Fault::rate_limited(403, 3600).path("repos/**")]);
    let e = resolve(&v, "gh:o/r@v1").await.unwrap_err();
    assert_eq!(e.code(), "rate_limited");
    let msg = e.to_string();
    assert!(
        (msg.contains("in 60 minutes") || msg.contains("in 61 minutes"))
            && msg.contains("GITHUB_TOKEN"),
        "{msg}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_things_have_their_own_messages() {
    rbee_artifact::register_reference::<rbee_vendor_github::GhRef>();
    let env = Env::new(&[(
        "o/r",
        (
            "v1",
            None,
            vec![("a.gguf", bytes(10, 1)), ("b.gguf", bytes(10, 2))],
        ),
    )])
    .await;
    let v = env.vendor(None);
    let e = resolve(&v, "gh:o/nope").await.unwrap_err();
    assert_eq!(e.code(), "not_found");
    assert!(e.to_string().contains("o/nope was not found"), "{e}");
    let e = resolve(&v, "gh:o/r@v2").await.unwrap_err();
    assert!(e.to_string().contains("recent releases: v1"), "{e}");
    let e = resolve(&v, "gh:o/r@v1").await.unwrap_err();
    assert_eq!(e.code(), "invalid_request");
    assert!(e.to_string().contains("ambiguous"), "{e}");
    let e = resolve(&v, "gh:o/r@v1/c.gguf").await.unwrap_err();
    assert_eq!(e.code(), "invalid_request");
    assert!(
        e.to_string().contains("a.gguf") && e.to_string().contains("b.gguf"),
        "{e}"
    );
    let plan = resolve(&v, "gh:o/r@v1/*.gguf").await.unwrap();
    assert_eq!(plan.files.len(), 2);
}

/// A rate limit that hits the asset download itself (not the API call before it) is reported
/// as GitHub's rate limit, with its reset time and what helps, not as a refusal of access.
#[tokio::test]
async fn a_rate_limit_during_the_asset_download_says_when_it_resets() {
    rbee_artifact::register_reference::<rbee_vendor_github::GhRef>();
    let data = bytes(100_000, 5);
    let env = Env::new(&[("o/r", ("v1", None, vec![("m.gguf", data)]))]).await;
    let v = env.vendor(None);
    let plan = resolve(&v, "gh:o/r@v1/m.gguf").await.unwrap();
    env.hub.set_faults(vec![
        Fault::rate_limited(403, 3600).path("m.gguf").on(Host::Hub),
    ]);
    let (result, _) = fetch(&v, &plan, &env.dest("out")).await;
    match result.unwrap_err() {
        Error::RateLimited {
            message,
            retry_after,
        } => {
            assert!(message.contains("resets at"), "{message}");
            assert!(message.contains("GITHUB_TOKEN"), "{message}");
            assert!(retry_after.is_some_and(|w| w > Duration::from_secs(3000)));
        }
        other => panic!("expected a rate limit, got {other:?}"),
    }
    assert!(!env.dest("out").join("m.gguf").exists());
}

/// Asset listings that lie about names, sizes or digests: refused or caught, never final.
#[tokio::test]
async fn asset_listing_lies_are_refused_or_caught() {
    rbee_artifact::register_reference::<rbee_vendor_github::GhRef>();
    let data = bytes(300_000, 9);
    let env = Env::new(&[("o/r", ("v1", None, vec![("m.gguf", data)]))]).await;
    let v = env.vendor(None);
    for name in ["\u{1b}]0;pwned\u{7}m.gguf", "..", &"n".repeat(4000)] {
        env.hub
            .set_faults(vec![Fault::listed_name(name).path("m.gguf")]);
        let err = resolve(&v, "gh:o/r@v1").await.unwrap_err();
        let text = err.to_string();
        assert!(!text.contains('\u{1b}') && text.len() < 2000, "{text:?}");
    }
    let other = Sha256Digest::of(b"other").to_string();
    for (lie, code) in [
        (Fault::listed_sha256(other), "integrity"),
        (Fault::listed_size(1000), "size_mismatch"),
    ] {
        env.hub.set_faults(vec![lie.path("m.gguf")]);
        let plan = resolve(&v, "gh:o/r@v1/m.gguf").await.unwrap();
        let dest = env.dest(code);
        let (result, _) = fetch(&v, &plan, &dest).await;
        assert_eq!(result.unwrap_err().code(), code);
        assert!(!dest.join("m.gguf").exists());
    }
}
