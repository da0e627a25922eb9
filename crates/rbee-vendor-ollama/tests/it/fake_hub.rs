//! Bodies and faults: the vendor against fake-hub's Ollama registry (manifests, 307 to the
//! CDN, the 401 token challenge, ranges, cut connections, byte counters).

use std::path::Path;
use std::time::Duration;

use rbee_artifact::{DownloadTracker, JobId, Sha256Digest};
use rbee_fake_hub::{FakeHub, FakeHubConfig, Fault, Host};
use rbee_transfer::{Transfer, TransferConfig};
use rbee_vendor_ollama::{OllamaConfig, OllamaRef, OllamaVendor};
use tokio_util::sync::CancellationToken;

const MODEL_PATH: &str = "/files/ollama/library/tiny/1b/model.gguf";

/// A tag folder: an 8 MiB model, a template and params.
fn lay_out(root: &Path, auth: bool) -> Vec<u8> {
    let dir = root.join("ollama/library/tiny/1b");
    std::fs::create_dir_all(&dir).unwrap();
    let model: Vec<u8> = (0..8u32 << 20)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    std::fs::write(dir.join("model.gguf"), &model).unwrap();
    std::fs::write(dir.join("template"), "{{ .Prompt }}").unwrap();
    std::fs::write(dir.join("params.json"), r#"{"temperature":0.7}"#).unwrap();
    if auth {
        std::fs::write(
            root.join("ollama/library/tiny/fakehub.json"),
            r#"{"auth":true}"#,
        )
        .unwrap();
    }
    model
}

// `TransferConfig` is non-exhaustive: it can only be built from its default.
#[allow(clippy::field_reassign_with_default)]
fn vendor(hub: &FakeHub) -> OllamaVendor {
    let mut config = TransferConfig::default();
    config.max_attempts = 4;
    config.initial_backoff = Duration::from_millis(10);
    config.use_env_proxy = false;
    config.check_disk_space = false;
    config.connections = 2;
    config.max_connections = 2;
    config.chunk_size = 1 << 20;
    config.parallel_threshold = 2 << 20;
    config.state_interval = Duration::from_millis(20);
    OllamaVendor::new(
        OllamaConfig::with_registry(hub.url().clone()),
        Transfer::new(config).unwrap(),
    )
}

async fn pull(
    v: &OllamaVendor,
    dest: &Path,
    tracker: &DownloadTracker,
    cancel: &CancellationToken,
) -> Result<(), rbee_artifact::Error> {
    let name: OllamaRef = "tiny:1b".parse().unwrap();
    let plan = v.resolve_name(&name, false, cancel).await?;
    v.download_files(&name, &plan.files, &plan.files, dest, tracker, cancel)
        .await
        .map(|_| ())
}

#[tokio::test]
async fn pulls_through_the_challenge_and_a_cut_connection() {
    let root = tempfile::tempdir().unwrap();
    let model = lay_out(root.path(), true);
    let hub = FakeHub::start(FakeHubConfig::new(root.path()))
        .await
        .unwrap();
    hub.set_faults(vec![
        Fault::drop_after(300_000)
            .path(MODEL_PATH)
            .on(Host::Cdn)
            .times(1),
    ]);
    let dest = tempfile::tempdir().unwrap();
    let tracker = DownloadTracker::new(JobId::generate());
    pull(
        &vendor(&hub),
        dest.path(),
        &tracker,
        &CancellationToken::new(),
    )
    .await
    .unwrap();
    assert_eq!(
        std::fs::read(dest.path().join("model.gguf")).unwrap(),
        model
    );
    let manifests = hub.counters_for("/v2/library/tiny/manifests/1b");
    assert_eq!(manifests.status(401), 1, "{manifests:?}");
    assert!(manifests.status(200) >= 1, "{manifests:?}");
    let counters = hub.counters_for(MODEL_PATH);
    // The cut range continued where its bytes stopped: little more than the file crossed.
    assert!(
        counters.bytes_sent <= model.len() as u64 + (1 << 20),
        "{} bytes sent for {}",
        counters.bytes_sent,
        model.len()
    );
    let blob = format!("/v2/library/tiny/blobs/sha256:{}", Sha256Digest::of(&model));
    assert!(hub.counters_for(&blob).status(307) >= 1);
    hub.shutdown().await;
}

#[tokio::test]
async fn an_interrupted_pull_resumes_fetching_at_most_one_chunk_again() {
    let root = tempfile::tempdir().unwrap();
    let model = lay_out(root.path(), false);
    let hub = FakeHub::start(FakeHubConfig::new(root.path()).with_rate_limit(4 << 20))
        .await
        .unwrap();
    let v = vendor(&hub);
    let dest = tempfile::tempdir().unwrap();
    let tracker = DownloadTracker::new(JobId::generate());
    let cancel = CancellationToken::new();
    let stop = cancel.clone();
    let watcher = {
        let tracker = tracker.clone();
        tokio::spawn(async move {
            while tracker.bytes() < 3 << 20 {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            stop.cancel();
        })
    };
    let first = tokio::time::timeout(
        Duration::from_secs(60),
        pull(&v, dest.path(), &tracker, &cancel),
    )
    .await
    .expect("the first pull ends");
    watcher.await.unwrap();
    assert!(first.unwrap_err().is_cancelled());
    let had = hub.counters_for(MODEL_PATH).bytes_sent;
    assert!(had < model.len() as u64, "cancelled before the end");

    hub.set_rate_limit(None);
    hub.reset_counters();
    let tracker = DownloadTracker::new(JobId::generate());
    pull(&v, dest.path(), &tracker, &CancellationToken::new())
        .await
        .unwrap();
    assert_eq!(
        std::fs::read(dest.path().join("model.gguf")).unwrap(),
        model
    );
    let again = hub.counters_for(MODEL_PATH).bytes_sent;
    let missing = model.len() as u64 - had.min(model.len() as u64);
    assert!(
        again <= missing + (1 << 20),
        "re-fetched {again} bytes; {missing} were missing"
    );
    hub.shutdown().await;
}

#[tokio::test]
async fn unknown_model_and_tag_from_the_fake_registry() {
    let root = tempfile::tempdir().unwrap();
    lay_out(root.path(), false);
    let hub = FakeHub::start(FakeHubConfig::new(root.path()))
        .await
        .unwrap();
    let v = vendor(&hub);
    let cancel = CancellationToken::new();
    for (name, says) in [("nosuch:1b", "no model"), ("tiny:99b", "no tag `99b`")] {
        let e = v
            .resolve_name(&name.parse().unwrap(), false, &cancel)
            .await
            .unwrap_err();
        assert_eq!(e.code(), "not_found");
        assert!(e.to_string().contains(says), "{name}: {e}");
    }
    hub.shutdown().await;
}
