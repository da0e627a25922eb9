//! The `file:` vendor passes the vendor conformance suite. It has no published digest to fail
//! and copies from a local file it cannot be made to stall, so the integrity and resume steps
//! are covered by the vendors that fetch (and by `local.rs` for a changed source).

use std::sync::Arc;

use rbee_vendor_local::LocalVendor;
use rbee_vendor_memory::conformance::{self, Fixture};

struct Env {
    _source: tempfile::TempDir,
    dest: tempfile::TempDir,
    fixture: Fixture,
}

fn env() -> Env {
    let source = tempfile::tempdir().unwrap();
    let data: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    std::fs::create_dir_all(source.path().join("model/sub")).unwrap();
    std::fs::write(source.path().join("model/m.gguf"), &data).unwrap();
    std::fs::write(source.path().join("model/sub/config.json"), b"{}").unwrap();
    let reference = format!("file:{}", source.path().join("model").display())
        .parse()
        .unwrap();
    let fixture = Fixture::new(
        Arc::new(LocalVendor::new()),
        reference,
        &[("m.gguf", &data), ("sub/config.json", b"{}")],
    );
    Env {
        _source: source,
        dest: tempfile::tempdir().unwrap(),
        fixture,
    }
}

#[tokio::test]
async fn resolve_moves_no_bytes() {
    rbee_artifact::register_reference::<rbee_vendor_local::LocalRef>();
    let env = env();
    conformance::resolve_moves_no_bytes(&env.fixture, env.dest.path()).await;
}

#[tokio::test]
async fn download_reports_progress() {
    rbee_artifact::register_reference::<rbee_vendor_local::LocalRef>();
    let env = env();
    conformance::download_reports_progress(&env.fixture, env.dest.path()).await;
}

#[tokio::test]
async fn cancelled_download_keeps_no_final_file() {
    rbee_artifact::register_reference::<rbee_vendor_local::LocalRef>();
    let env = env();
    conformance::cancelled_download_keeps_no_final_file(&env.fixture, env.dest.path()).await;
}

#[tokio::test]
async fn repeat_download_is_idempotent() {
    rbee_artifact::register_reference::<rbee_vendor_local::LocalRef>();
    let env = env();
    conformance::repeat_download_is_idempotent(&env.fixture, env.dest.path()).await;
}
