//! The provision flow over the public in-memory vendor: an interrupted download resumes
//! through the provisioner and the catalog, and bytes that fail their digest are never ready.

use std::sync::Arc;
use std::time::Duration;

use rbee_artifact::{ArtifactRef, DownloadTracker, Error, VendorSource};
use rbee_catalog::{ArtifactStatus, Catalog};
use rbee_model_provisioner::{
    Outcome, ProvisionOptions, Provisioner, ProvisionerConfig, VendorRegistry,
};
use rbee_vendor_memory::InMemoryVendor;
use tokio_util::sync::CancellationToken;

const WEIGHTS: usize = 200_000;

struct Setup {
    _dir: tempfile::TempDir,
    catalog: Arc<Catalog>,
    vendor: Arc<InMemoryVendor>,
    provisioner: Provisioner,
    reference: ArtifactRef,
}

fn setup() -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let catalog = Arc::new(Catalog::open(dir.path().join("catalog")).unwrap());
    let vendor = Arc::new(InMemoryVendor::new(rbee_vendor_huggingface::SCHEME));
    let reference: ArtifactRef = "hf:org/repo".parse().unwrap();
    vendor.insert(
        &reference,
        Some("rev1"),
        &[
            ("model.gguf", vec![5; WEIGHTS]),
            ("config.json", b"{}".to_vec()),
        ],
    );
    let registry = VendorRegistry::new().with(vendor.clone() as Arc<dyn VendorSource>);
    let provisioner = Provisioner::new(catalog.clone(), registry, ProvisionerConfig::default());
    Setup {
        _dir: dir,
        catalog,
        vendor,
        provisioner,
        reference,
    }
}

#[tokio::test]
async fn an_interrupted_download_resumes_through_the_provisioner() {
    rbee_model_provisioner::register_references();
    let s = setup();
    s.vendor.stall_once_after(50_000);
    let tracker = DownloadTracker::new("job-interrupted".into());
    let cancel = CancellationToken::new();
    let first = {
        let (p, reference, tracker, cancel) = (
            s.provisioner.clone(),
            s.reference.clone(),
            tracker.clone(),
            cancel.clone(),
        );
        tokio::spawn(async move {
            p.provision(reference, ProvisionOptions::default(), &tracker, cancel)
                .await
        })
    };
    tokio::time::timeout(Duration::from_secs(60), async {
        while tracker.bytes() == 0 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .expect("the first bytes arrive");
    cancel.cancel();
    assert!(matches!(first.await.unwrap(), Err(Error::Cancelled)));
    let entry = s.catalog.find(&s.reference).unwrap().unwrap();
    assert!(
        matches!(entry.record.status, ArtifactStatus::Incomplete { .. }),
        "{:?}",
        entry.record.status
    );

    let again = s
        .provisioner
        .provision(
            s.reference.clone(),
            ProvisionOptions::default(),
            &DownloadTracker::new("job-resumed".into()),
            CancellationToken::new(),
        )
        .await
        .unwrap();
    assert_eq!(again.outcome, Outcome::Downloaded);
    assert_eq!(again.entry.record.status, ArtifactStatus::Ready);
    let weights = again.entry.dir.join("files/model.gguf");
    assert_eq!(std::fs::read(weights).unwrap(), vec![5; WEIGHTS]);
    // The partial was continued, not fetched again.
    assert_eq!(s.vendor.bytes_written(), WEIGHTS as u64 + 2);
}

#[tokio::test]
async fn bytes_that_fail_their_digest_are_never_ready() {
    rbee_model_provisioner::register_references();
    let s = setup();
    assert!(s.vendor.corrupt(&s.reference, "model.gguf"));
    let err = s
        .provisioner
        .provision(
            s.reference.clone(),
            ProvisionOptions::default(),
            &DownloadTracker::new("job".into()),
            CancellationToken::new(),
        )
        .await
        .unwrap_err();
    assert_eq!(err.code(), "integrity", "{err}");
    let entry = s.catalog.find(&s.reference).unwrap().unwrap();
    assert_ne!(entry.record.status, ArtifactStatus::Ready);
    assert!(!entry.dir.join("files/model.gguf").exists());
}
