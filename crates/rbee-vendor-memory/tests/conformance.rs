//! The in-memory vendor passes the conformance suite.

use std::sync::Arc;

use rbee_artifact::{ArtifactRef, EventKind};
use rbee_vendor_memory::InMemoryVendor;
use rbee_vendor_memory::conformance::{self, Fixture};

const FILES: [(&str, &[u8]); 2] = [("model.gguf", &[7; 100_000]), ("sub/config.json", b"{}")];

fn fixture() -> (Arc<InMemoryVendor>, Fixture) {
    let vendor = Arc::new(InMemoryVendor::new(rbee_vendor_huggingface::SCHEME));
    let reference: ArtifactRef = "hf:org/repo".parse().unwrap();
    let files: Vec<(&str, Vec<u8>)> = FILES.iter().map(|(p, b)| (*p, b.to_vec())).collect();
    vendor.insert(&reference, Some("rev1"), &files);
    let fixture = Fixture::new(vendor.clone(), reference, &FILES);
    (vendor, fixture)
}

#[tokio::test]
async fn resolve_moves_no_bytes() {
    rbee_artifact::register_reference::<rbee_vendor_huggingface::HfRef>();
    let (vendor, f) = fixture();
    let dest = tempfile::tempdir().unwrap();
    let plan = conformance::resolve_moves_no_bytes(&f, dest.path()).await;
    assert_eq!(plan.revision.as_deref(), Some("rev1"));
    assert_eq!(vendor.bytes_written(), 0);
}

#[tokio::test]
async fn download_reports_progress() {
    rbee_artifact::register_reference::<rbee_vendor_huggingface::HfRef>();
    let (_, f) = fixture();
    let dest = tempfile::tempdir().unwrap();
    conformance::download_reports_progress(&f, dest.path()).await;
}

#[tokio::test]
async fn cancelled_download_keeps_no_final_file() {
    rbee_artifact::register_reference::<rbee_vendor_huggingface::HfRef>();
    let (_, f) = fixture();
    let dest = tempfile::tempdir().unwrap();
    conformance::cancelled_download_keeps_no_final_file(&f, dest.path()).await;
}

#[tokio::test]
async fn repeat_download_is_idempotent() {
    rbee_artifact::register_reference::<rbee_vendor_huggingface::HfRef>();
    let (vendor, f) = fixture();
    let dest = tempfile::tempdir().unwrap();
    conformance::repeat_download_is_idempotent(&f, dest.path()).await;
    assert_eq!(vendor.download_count(), 2);
}

#[tokio::test]
async fn integrity_failure_is_never_ready() {
    rbee_artifact::register_reference::<rbee_vendor_huggingface::HfRef>();
    let (vendor, f) = fixture();
    assert!(vendor.corrupt(&f.reference, "model.gguf"));
    let dest = tempfile::tempdir().unwrap();
    conformance::integrity_failure_is_never_ready(&f, dest.path(), "model.gguf").await;
    assert!(
        !dest.path().join("model.gguf.part").exists(),
        "bytes proven wrong are not kept for a resume"
    );
}

#[tokio::test]
async fn resumes_after_interruption() {
    rbee_artifact::register_reference::<rbee_vendor_huggingface::HfRef>();
    let (vendor, f) = fixture();
    vendor.stall_once_after(40_000);
    let dest = tempfile::tempdir().unwrap();
    let events = conformance::resumes_after_interruption(&f, dest.path()).await;
    // Only the missing bytes were written again.
    let total: u64 = FILES.iter().map(|(_, b)| b.len() as u64).sum();
    assert_eq!(vendor.bytes_written(), total);
    assert!(events.iter().any(|e| matches!(
        &e.kind,
        EventKind::FileStarted { path, resumed_from, .. }
            if path == "model.gguf" && *resumed_from > 0 && *resumed_from <= 40_000
    )));
}

#[tokio::test]
async fn an_unknown_reference_is_not_found() {
    rbee_artifact::register_reference::<rbee_vendor_huggingface::HfRef>();
    let (vendor, _) = fixture();
    let other: ArtifactRef = "hf:org/other".parse().unwrap();
    let err = rbee_artifact::VendorSource::resolve(
        vendor.as_ref(),
        &other,
        &Default::default(),
        &Default::default(),
    )
    .await
    .unwrap_err();
    assert_eq!(err.code(), "not_found");
    assert!(err.to_string().contains("hf:org/other"), "{err}");
}
