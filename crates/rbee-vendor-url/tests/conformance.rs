//! The URL vendor passes the vendor conformance suite, against fake-hub on loopback. The
//! reference pins the file's digest (`#sha256=`), which is what lets a corrupted body fail.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use rbee_artifact::Sha256Digest;
use rbee_fake_hub::{FakeHub, FakeHubConfig, Fault};
use rbee_transfer::{Transfer, TransferConfig};
use rbee_vendor_memory::conformance::{self, Fixture};
use rbee_vendor_url::UrlVendor;

const FILE: &str = "m.gguf";
const DATA_LEN: u64 = 300_000;

struct Env {
    dir: tempfile::TempDir,
    hub: FakeHub,
    fixture: Fixture,
}

impl Env {
    async fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        std::fs::create_dir_all(&root).unwrap();
        let data: Vec<u8> = (0..DATA_LEN).map(|i| (i % 253) as u8).collect();
        std::fs::write(root.join(FILE), &data).unwrap();
        let hub = FakeHub::start(FakeHubConfig::new(&root)).await.unwrap();
        let config = TransferConfig {
            initial_backoff: Duration::from_millis(10),
            use_env_proxy: false,
            ..TransferConfig::default()
        };
        let vendor = UrlVendor::new(Transfer::new(config).unwrap());
        let reference = format!("{}#sha256={}", hub.file_url(FILE), Sha256Digest::of(&data))
            .parse()
            .unwrap();
        let fixture = Fixture::new(Arc::new(vendor), reference, &[(FILE, &data)]);
        Self { dir, hub, fixture }
    }

    fn dest(&self) -> PathBuf {
        self.dir.path().join("dest")
    }

    fn body_bytes(&self) -> u64 {
        self.hub.counters_for(&format!("/files/{FILE}")).bytes_sent
    }
}

#[tokio::test]
async fn resolve_moves_no_bytes() {
    rbee_artifact::register_reference::<rbee_vendor_url::UrlRef>();
    let env = Env::start().await;
    conformance::resolve_moves_no_bytes(&env.fixture, &env.dest()).await;
    assert_eq!(env.body_bytes(), 0, "resolving downloaded file bytes");
}

#[tokio::test]
async fn download_reports_progress() {
    rbee_artifact::register_reference::<rbee_vendor_url::UrlRef>();
    let env = Env::start().await;
    conformance::download_reports_progress(&env.fixture, &env.dest()).await;
}

#[tokio::test]
async fn cancelled_download_keeps_no_final_file() {
    rbee_artifact::register_reference::<rbee_vendor_url::UrlRef>();
    let env = Env::start().await;
    conformance::cancelled_download_keeps_no_final_file(&env.fixture, &env.dest()).await;
}

#[tokio::test]
async fn repeat_download_is_idempotent() {
    rbee_artifact::register_reference::<rbee_vendor_url::UrlRef>();
    let env = Env::start().await;
    conformance::repeat_download_is_idempotent(&env.fixture, &env.dest()).await;
}

#[tokio::test]
async fn integrity_failure_is_never_ready() {
    rbee_artifact::register_reference::<rbee_vendor_url::UrlRef>();
    let env = Env::start().await;
    env.hub.set_faults(vec![Fault::flip_byte(1000).path(FILE)]);
    conformance::integrity_failure_is_never_ready(&env.fixture, &env.dest(), FILE).await;
}

#[tokio::test]
async fn resumes_after_interruption() {
    rbee_artifact::register_reference::<rbee_vendor_url::UrlRef>();
    let env = Env::start().await;
    env.hub
        .set_faults(vec![Fault::hang(100_000).path(FILE).times(1)]);
    conformance::resumes_after_interruption(&env.fixture, &env.dest()).await;
    assert!(
        env.body_bytes() < 2 * DATA_LEN,
        "the second download fetched the whole file again ({} body bytes in all)",
        env.body_bytes()
    );
}
