//! The Ollama vendor passes the vendor conformance suite, against fake-hub's Ollama registry on
//! loopback (manifest on the hub, blobs through a 307 to the CDN, the token challenge on).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use rbee_fake_hub::{FakeHub, FakeHubConfig, Fault};
use rbee_transfer::{Transfer, TransferConfig};
use rbee_vendor_memory::conformance::{self, Fixture};
use rbee_vendor_ollama::{OllamaConfig, OllamaVendor};

const MODEL: &str = "model.gguf";
const MODEL_PATH: &str = "/files/ollama/library/tiny/1b/model.gguf";
const DATA_LEN: u64 = 300_000;

struct Env {
    dir: tempfile::TempDir,
    hub: FakeHub,
    fixture: Fixture,
}

impl Env {
    // `TransferConfig` is non-exhaustive: it can only be built from its default.
    #[allow(clippy::field_reassign_with_default)]
    async fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        let tag = root.join("ollama/library/tiny/1b");
        std::fs::create_dir_all(&tag).unwrap();
        let data: Vec<u8> = (0..DATA_LEN).map(|i| (i % 251) as u8).collect();
        std::fs::write(tag.join(MODEL), &data).unwrap();
        std::fs::write(tag.join("template"), "{{ .Prompt }}").unwrap();
        std::fs::write(
            root.join("ollama/library/tiny/fakehub.json"),
            r#"{"auth":true}"#,
        )
        .unwrap();
        let hub = FakeHub::start(FakeHubConfig::new(&root)).await.unwrap();
        // The registry's own bytes for the manifest and the config blob, as the fixture wants them.
        let manifest = get(&hub, "v2/library/tiny/manifests/1b").await;
        let config_digest =
            serde_json::from_slice::<serde_json::Value>(&manifest).unwrap()["config"]["digest"]
                .as_str()
                .unwrap()
                .to_string();
        let config = get(&hub, &format!("v2/library/tiny/blobs/{config_digest}")).await;
        let mut transfer = TransferConfig::default();
        transfer.initial_backoff = Duration::from_millis(10);
        transfer.use_env_proxy = false;
        let vendor = OllamaVendor::new(
            OllamaConfig::with_registry(hub.url().clone()),
            Transfer::new(transfer).unwrap(),
        );
        let fixture = Fixture::new(
            Arc::new(vendor),
            "ollama:tiny:1b".parse().unwrap(),
            &[
                ("manifest.json", &manifest),
                ("config.json", &config),
                (MODEL, &data),
                ("template", b"{{ .Prompt }}"),
            ],
        );
        Self { dir, hub, fixture }
    }

    fn dest(&self) -> PathBuf {
        self.dir.path().join("dest")
    }

    fn body_bytes(&self) -> u64 {
        self.hub.counters_for(MODEL_PATH).bytes_sent
    }
}

/// A GET through the token challenge, as a client would (for the fixture's expected bytes).
async fn get(hub: &FakeHub, path: &str) -> Vec<u8> {
    let client = reqwest::Client::new();
    let token: serde_json::Value = client
        .get(
            hub.url()
                .join("v2/token?scope=repository:library/tiny:pull")
                .unwrap(),
        )
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    client
        .get(hub.url().join(path).unwrap())
        .bearer_auth(token["token"].as_str().unwrap())
        .header("accept", rbee_vendor_ollama::MANIFEST_MEDIA_TYPE)
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap()
        .to_vec()
}

#[tokio::test]
async fn resolve_moves_no_bytes() {
    rbee_artifact::register_reference::<rbee_vendor_ollama::OllamaRef>();
    let env = Env::start().await;
    conformance::resolve_moves_no_bytes(&env.fixture, &env.dest()).await;
    assert_eq!(env.body_bytes(), 0, "resolving downloaded blob bytes");
}

#[tokio::test]
async fn download_reports_progress() {
    rbee_artifact::register_reference::<rbee_vendor_ollama::OllamaRef>();
    let env = Env::start().await;
    conformance::download_reports_progress(&env.fixture, &env.dest()).await;
}

#[tokio::test]
async fn cancelled_download_keeps_no_final_file() {
    rbee_artifact::register_reference::<rbee_vendor_ollama::OllamaRef>();
    let env = Env::start().await;
    conformance::cancelled_download_keeps_no_final_file(&env.fixture, &env.dest()).await;
}

#[tokio::test]
async fn repeat_download_is_idempotent() {
    rbee_artifact::register_reference::<rbee_vendor_ollama::OllamaRef>();
    let env = Env::start().await;
    conformance::repeat_download_is_idempotent(&env.fixture, &env.dest()).await;
}

#[tokio::test]
async fn integrity_failure_is_never_ready() {
    rbee_artifact::register_reference::<rbee_vendor_ollama::OllamaRef>();
    let env = Env::start().await;
    env.hub
        .set_faults(vec![Fault::flip_byte(1000).path(MODEL_PATH)]);
    conformance::integrity_failure_is_never_ready(&env.fixture, &env.dest(), MODEL).await;
}

#[tokio::test]
async fn resumes_after_interruption() {
    rbee_artifact::register_reference::<rbee_vendor_ollama::OllamaRef>();
    let env = Env::start().await;
    env.hub
        .set_faults(vec![Fault::hang(100_000).path(MODEL_PATH).times(1)]);
    conformance::resumes_after_interruption(&env.fixture, &env.dest()).await;
    assert!(
        env.body_bytes() < 2 * DATA_LEN,
        "the second download fetched the whole blob again ({} body bytes in all)",
        env.body_bytes()
    );
}
