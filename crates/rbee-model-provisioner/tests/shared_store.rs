//! The shared-store tier end to end: hives (provisioners with catalogs of their own) sharing a
//! real Garage on loopback, with the fake hub as the origin.
// Measured figures (lease contention, origin bytes) are printed for the report.
#![allow(clippy::print_stderr)]

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rbee_artifact::{DownloadTracker, JobId, ProgressEvent, Sha256Digest};
use rbee_catalog::{ArtifactStatus, Catalog};
use rbee_fake_hub::{FakeHub, FakeHubConfig, Fault, Garage};
use rbee_model_provisioner::{
    ProvisionOptions, Provisioned, Provisioner, ProvisionerConfig, SharedTier, VendorRegistry,
    VendorSettings, standard_vendors,
};
use rbee_shared_store::{LeaseConfig, S3Store, SharedStore, StoreConfig, layout};
use rbee_transfer::Transfer;
use rbee_vendor_huggingface::HfConfig;
use tokio_util::sync::CancellationToken;

const WEIGHTS: usize = 24 << 20;

struct Cluster {
    hub: FakeHub,
    weights: Vec<u8>,
    _root: tempfile::TempDir,
}

impl Cluster {
    async fn start() -> Cluster {
        let root = tempfile::tempdir().unwrap();
        let repo = root.path().join("hf/org/model");
        std::fs::create_dir_all(&repo).unwrap();
        let weights: Vec<u8> = (0..WEIGHTS as u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 11) as u8)
            .collect();
        std::fs::write(repo.join("model.safetensors"), &weights).unwrap();
        std::fs::write(repo.join("config.json"), br#"{"model_type":"llama"}"#).unwrap();
        let hub = FakeHub::start(FakeHubConfig::new(root.path()))
            .await
            .unwrap();
        Cluster {
            hub,
            weights,
            _root: root,
        }
    }

    /// Bytes the origin sent (file bodies and API answers alike).
    fn origin_bytes(&self) -> u64 {
        self.hub.counters().total_bytes_sent
    }
}

#[derive(Debug)]
struct Hive {
    provisioner: Provisioner,
    dir: tempfile::TempDir,
}

fn store_config(garage: &Garage, prefix: &str) -> StoreConfig {
    StoreConfig::from_vars(&garage.store_url(prefix), |k| garage.var(k)).unwrap()
}

async fn hive(
    name: &str,
    origin: &url::Url,
    store: StoreConfig,
    required: bool,
) -> rbee_artifact::Result<Hive> {
    hive_with_lease(name, origin, store, required, LeaseConfig::default()).await
}

async fn hive_with_lease(
    name: &str,
    origin: &url::Url,
    store: StoreConfig,
    required: bool,
    lease: LeaseConfig,
) -> rbee_artifact::Result<Hive> {
    let store = StoreDouble::new(S3Store::new(store).unwrap());
    hive_with_double(name, origin, store, required, lease).await
}

/// A hive on the standard vendors, two connections each, and `store`.
async fn hive_with_double(
    name: &str,
    origin: &url::Url,
    store: StoreDouble,
    required: bool,
    lease: LeaseConfig,
) -> rbee_artifact::Result<Hive> {
    let dir = tempfile::tempdir().unwrap();
    let mut settings = VendorSettings::default();
    settings.transfer.connections = 2;
    settings.transfer.max_connections = 2;
    settings.huggingface = Some(HfConfig::new(origin.clone(), dir.path().join("hf-home")));
    hive_on_store(
        name,
        dir,
        standard_vendors(&settings).unwrap(),
        &settings,
        Arc::new(store),
        required,
        lease,
    )
    .await
}

/// A hive whose vendors and store are given (a store double, a vendor that misbehaves).
async fn hive_on_store(
    name: &str,
    dir: tempfile::TempDir,
    vendors: VendorRegistry,
    settings: &VendorSettings,
    store: Arc<dyn SharedStore>,
    required: bool,
    lease: LeaseConfig,
) -> rbee_artifact::Result<Hive> {
    let catalog = Arc::new(Catalog::open(dir.path().join("catalog")).unwrap());
    let provisioner = Provisioner::new(catalog, vendors, ProvisionerConfig::default());
    let tier = SharedTier::connect(
        store,
        name,
        Transfer::new(settings.transfer.clone()).unwrap(),
        required,
        lease,
    )
    .await?;
    assert!(provisioner.set_shared_store(tier));
    Ok(Hive { provisioner, dir })
}

/// Every event of a provision, as JSON lines.
async fn provision(hive: &Hive) -> (rbee_artifact::Result<Provisioned>, Vec<String>) {
    provision_tracked(hive, &DownloadTracker::new(JobId::generate())).await
}

/// [`provision`], on `tracker`.
async fn provision_tracked(
    hive: &Hive,
    tracker: &DownloadTracker,
) -> (rbee_artifact::Result<Provisioned>, Vec<String>) {
    let (_, mut rx) = tracker.subscribe();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let sink = seen.clone();
    let reader = tokio::spawn(async move {
        while let Ok(event) = rx.recv().await {
            let event: ProgressEvent = event;
            sink.lock()
                .unwrap()
                .push(serde_json::to_string(&event).unwrap());
        }
    });
    let result = tokio::time::timeout(
        Duration::from_secs(120),
        hive.provisioner.provision(
            "hf:org/model".parse().unwrap(),
            ProvisionOptions::default(),
            tracker,
            CancellationToken::new(),
        ),
    )
    .await
    .expect("provisioning finishes");
    tokio::time::sleep(Duration::from_millis(50)).await;
    reader.abort();
    let events = seen.lock().unwrap().clone();
    (result, events)
}

fn assert_exact(p: &Provisioned, weights: &[u8]) {
    assert_eq!(p.entry.record.status, ArtifactStatus::Ready);
    let file = p.entry.files_dir().join("model.safetensors");
    let (sha, _) = Sha256Digest::of_file(&file, |_| {}).unwrap();
    assert_eq!(sha, Sha256Digest::of(weights));
}

fn source_of<'a>(p: &'a Provisioned, path: &str) -> &'a str {
    p.entry
        .record
        .files
        .iter()
        .find(|f| f.path == path)
        .and_then(|f| f.source.as_deref())
        .unwrap_or("")
}

fn no_credentials(garage: &Garage, texts: &[String], dir: &Path) {
    let secret = garage.var("AWS_SECRET_ACCESS_KEY").unwrap();
    let key_id = garage.var("AWS_ACCESS_KEY_ID").unwrap();
    let mut all = texts.join("\n");
    for entry in walk(dir) {
        if entry.extension().is_some_and(|e| e == "json") {
            all.push_str(&std::fs::read_to_string(&entry).unwrap_or_default());
        }
    }
    assert!(!all.contains(&secret), "the secret key leaked");
    assert!(!all.contains(&key_id), "the access key id leaked");
    assert!(!all.contains("X-Amz-Signature=") || all.contains("X-Amz-Signature=REDACTED"));
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(walk(&p));
            } else {
                out.push(p);
            }
        }
    }
    out
}

#[tokio::test]
async fn a_second_hive_reads_the_store_not_the_origin() {
    let Some(garage) = Garage::shared() else {
        return;
    };
    let cluster = Cluster::start().await;
    let prefix = "second-hive";
    let a = hive(
        "hive-a",
        cluster.hub.url(),
        store_config(garage, prefix),
        false,
    )
    .await
    .unwrap();
    let (got, events_a) = provision(&a).await;
    let got = got.unwrap();
    assert_exact(&got, &cluster.weights);
    assert!(!source_of(&got, "model.safetensors").contains("shared store"));

    // Published: every blob, then the manifest.
    let store = S3Store::new(store_config(garage, prefix)).unwrap();
    let manifest = rbee_shared_store::read_manifest(&store, &got.entry.record.id)
        .await
        .unwrap()
        .expect("a manifest");
    assert_eq!(manifest.files.len(), 2);
    assert_eq!(manifest.published_by, "hive-a");
    for f in &manifest.files {
        assert_eq!(
            store.size(&layout::blob(&f.sha256)).await.unwrap(),
            Some(f.size)
        );
    }

    let before = cluster.origin_bytes();
    let b = hive(
        "hive-b",
        cluster.hub.url(),
        store_config(garage, prefix),
        false,
    )
    .await
    .unwrap();
    let (got_b, events_b) = provision(&b).await;
    let got_b = got_b.unwrap();
    assert_exact(&got_b, &cluster.weights);
    let from_origin = cluster.origin_bytes() - before;
    assert!(
        from_origin < 64 * 1024,
        "hive B took {from_origin} bytes from the origin; only metadata was expected"
    );
    // Both files came from the store: the weights by the digest the origin announced, the
    // small file (no published digest) by the manifest of the same revision.
    for path in ["model.safetensors", "config.json"] {
        assert!(
            source_of(&got_b, path).contains("shared store"),
            "{path}: {}",
            source_of(&got_b, path)
        );
    }
    no_credentials(garage, &[events_a, events_b].concat(), a.dir.path());
    no_credentials(garage, &[], b.dir.path());
}

#[tokio::test]
async fn four_hives_at_once_fetch_from_the_origin_once() {
    let Some(garage) = Garage::shared() else {
        return;
    };
    let cluster = Cluster::start().await;
    // Slow enough that the others are still waiting when the first one finishes its election.
    cluster.hub.set_rate_limit(Some(6 << 20));
    let mut hives = Vec::new();
    for i in 0..4 {
        hives.push(
            hive(
                &format!("hive-{i}"),
                cluster.hub.url(),
                store_config(garage, "four"),
                false,
            )
            .await
            .unwrap(),
        );
    }
    let results = futures::future::join_all(hives.iter().map(provision)).await;
    let mut from_store = 0;
    let mut waited = false;
    for (result, events) in &results {
        let got = result.as_ref().unwrap();
        assert_exact(got, &cluster.weights);
        if source_of(got, "model.safetensors").contains("shared store") {
            from_store += 1;
        }
        waited |= events.iter().any(|e| e.contains("waiting for hive hive-"));
    }
    let origin = cluster.origin_bytes();
    eprintln!(
        "four hives, one {WEIGHTS}-byte model: the origin sent {origin} bytes ({:.3}x)",
        origin as f64 / WEIGHTS as f64
    );
    assert!(
        origin as f64 <= 1.02 * WEIGHTS as f64 + 256.0 * 1024.0,
        "the origin sent {origin} bytes for a {WEIGHTS}-byte model to four hives"
    );
    assert_eq!(from_store, 3, "three hives read the store");
    assert!(waited, "the waiting hives said whom they waited for");
}

#[tokio::test]
async fn a_flipped_byte_in_the_store_is_detected_refetched_and_replaced() {
    let Some(garage) = Garage::shared() else {
        return;
    };
    let cluster = Cluster::start().await;
    let prefix = "flipped";
    let a = hive(
        "hive-a",
        cluster.hub.url(),
        store_config(garage, prefix),
        false,
    )
    .await
    .unwrap();
    provision(&a).await.0.unwrap();

    let store = S3Store::new(store_config(garage, prefix)).unwrap();
    let key = layout::blob(&Sha256Digest::of(&cluster.weights));
    let mut bad = cluster.weights.clone();
    bad[WEIGHTS / 2] ^= 0x40;
    store.put(&key, bad.into(), false).await.unwrap();

    let before = cluster.origin_bytes();
    let b = hive(
        "hive-b",
        cluster.hub.url(),
        store_config(garage, prefix),
        false,
    )
    .await
    .unwrap();
    let (got, events) = provision(&b).await;
    let got = got.unwrap();
    assert_exact(&got, &cluster.weights);
    assert!(
        events.iter().any(|e| e.contains("is corrupt")),
        "the corrupt object was reported: {events:#?}"
    );
    assert!(!source_of(&got, "model.safetensors").contains("shared store"));
    assert!(
        cluster.origin_bytes() - before >= WEIGHTS as u64,
        "refetched from the origin"
    );
    // Replaced: the store holds the right bytes again.
    let back = store.get(&key, u64::MAX).await.unwrap().unwrap();
    assert_eq!(Sha256Digest::of(&back), Sha256Digest::of(&cluster.weights));
}

#[tokio::test]
async fn with_the_origin_unreachable_a_hive_provisions_from_the_manifest_alone() {
    let Some(garage) = Garage::shared() else {
        return;
    };
    let cluster = Cluster::start().await;
    let prefix = "air-gapped";
    let a = hive(
        "hive-a",
        cluster.hub.url(),
        store_config(garage, prefix),
        false,
    )
    .await
    .unwrap();
    provision(&a).await.0.unwrap();

    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let nowhere: url::Url = format!("http://{}", closed.local_addr().unwrap())
        .parse()
        .unwrap();
    drop(closed);
    let b = hive("hive-b", &nowhere, store_config(garage, prefix), false)
        .await
        .unwrap();
    let (got, events) = provision(&b).await;
    let got = got.unwrap_or_else(|e| panic!("{e}: {events:#?}"));
    assert_exact(&got, &cluster.weights);
    assert!(
        events
            .iter()
            .any(|e| e.contains("from the manifest in the shared store"))
    );
    for path in ["model.safetensors", "config.json"] {
        assert!(source_of(&got, path).contains("shared store"), "{path}");
    }
}

#[tokio::test]
async fn a_store_that_went_away_is_passed_over_with_a_warning_unless_required() {
    let Some(garage) = Garage::start_own() else {
        return;
    };
    let cluster = Cluster::start().await;
    let a = hive(
        "hive-a",
        cluster.hub.url(),
        store_config(&garage, "gone"),
        false,
    )
    .await
    .unwrap();
    garage.stop();
    let (got, events) = provision(&a).await;
    let got = got.unwrap();
    assert_exact(&got, &cluster.weights);
    let warning = events
        .iter()
        .find(|e| e.contains("warning: shared store"))
        .unwrap_or_else(|| panic!("a warning: {events:#?}"));
    assert!(warning.contains(&garage.store_url("gone")), "{warning}");
    assert!(warning.contains("AWS_ENDPOINT_URL"), "{warning}");

    // Required: the hive does not even start without it.
    let e = hive(
        "hive-b",
        cluster.hub.url(),
        store_config(&garage, "gone"),
        true,
    )
    .await
    .unwrap_err();
    assert!(e.to_string().contains(&garage.store_url("gone")), "{e}");
}

#[tokio::test]
async fn a_manifest_naming_other_bytes_for_a_git_file_is_not_believed() {
    let Some(garage) = Garage::shared() else {
        return;
    };
    let cluster = Cluster::start().await;
    let prefix = "lying-manifest";
    let a = hive(
        "hive-a",
        cluster.hub.url(),
        store_config(garage, prefix),
        false,
    )
    .await
    .unwrap();
    let got = provision(&a).await.0.unwrap();
    let origin_config =
        std::fs::read(got.entry.files_dir().join("config.json")).expect("hive A's config");

    // Anyone with the bucket key can publish: same revision, same size, other bytes.
    let store = S3Store::new(store_config(garage, prefix)).unwrap();
    let mut manifest = rbee_shared_store::read_manifest(&store, &got.entry.record.id)
        .await
        .unwrap()
        .expect("a manifest");
    let forged = br#"{"model_type":"evils"}"#.to_vec();
    assert_eq!(forged.len(), origin_config.len());
    let forged_sha = Sha256Digest::of(&forged);
    store
        .put(&layout::blob(&forged_sha), forged.clone().into(), false)
        .await
        .unwrap();
    let entry = manifest
        .files
        .iter_mut()
        .find(|f| f.path == "config.json")
        .expect("config.json in the manifest");
    entry.sha256 = forged_sha;
    rbee_shared_store::write_manifest(&store, &manifest)
        .await
        .unwrap();

    let b = hive(
        "hive-b",
        cluster.hub.url(),
        store_config(garage, prefix),
        false,
    )
    .await
    .unwrap();
    let (got_b, events) = provision(&b).await;
    let got_b = got_b.unwrap();
    assert_exact(&got_b, &cluster.weights);
    let config = std::fs::read(got_b.entry.files_dir().join("config.json")).unwrap();
    assert_eq!(config, origin_config, "hive B kept the forged config");
    assert!(!source_of(&got_b, "config.json").contains("shared store"));
    assert!(
        events.iter().any(|e| e.contains("names other bytes")),
        "the forged manifest was reported: {events:#?}"
    );
}

#[tokio::test]
async fn a_holder_whose_download_fails_releases_the_lease_at_once() {
    let Some(garage) = Garage::shared() else {
        return;
    };
    let cluster = Cluster::start().await;
    // Downloads refused, the API answers: the holder fails after it has won the lease.
    cluster.hub.add_fault(Fault {
        path: Some("**/resolve/**".into()),
        ..Fault::status(401)
    });
    // Far longer than the wait below: a hive that sat out the lease would time out.
    let lease = LeaseConfig::new(Duration::from_secs(600), Duration::from_millis(400));
    // The holder fails within milliseconds, so the other hive may arrive after the lease is
    // already released and never wait: rounds repeat (each under its own prefix) until one
    // hive found the other's lease.
    let mut waited = false;
    for round in 0..8 {
        let mut hives = Vec::new();
        for name in ["hive-a", "hive-b"] {
            hives.push(
                hive_with_lease(
                    name,
                    cluster.hub.url(),
                    store_config(garage, &format!("failed-holder-{round}")),
                    false,
                    lease.clone(),
                )
                .await
                .unwrap(),
            );
        }
        let both = futures::future::join_all(hives.iter().map(provision));
        let results = tokio::time::timeout(Duration::from_secs(90), both)
            .await
            .expect(
                "the waiting hive took over once the holder failed, long before the lease's expiry",
            );
        for (result, events) in &results {
            let e = result
                .as_ref()
                .expect_err("the origin refuses every download");
            assert!(!e.is_cancelled(), "{e}");
            waited |= events.iter().any(|e| e.contains("waiting for hive hive-"));
        }
        if waited {
            break;
        }
    }
    assert!(waited, "one hive waited for the other's lease");
}

/// The "published … (N uploaded)" line of a provision's events: bytes the publish step sent.
fn published_bytes(events: &[String]) -> String {
    events
        .iter()
        .find(|e| e.contains("to the shared store") && e.contains("uploaded"))
        .cloned()
        .unwrap_or_default()
}

#[tokio::test]
async fn the_holder_uploads_while_it_downloads_so_publishing_has_little_left() {
    let Some(garage) = Garage::shared() else {
        return;
    };
    let cluster = Cluster::start().await;
    // Slow enough that the upload has parts to follow while the download runs.
    cluster.hub.set_rate_limit(Some(8_000_000));
    let prefix = "follow";
    let a = hive(
        "hive-a",
        cluster.hub.url(),
        store_config(garage, prefix),
        false,
    )
    .await
    .unwrap();
    let (got, events) = provision(&a).await;
    let got = got.unwrap();
    assert_exact(&got, &cluster.weights);
    // The weights were in the store before the publish step ran: it sent only the small file.
    let line = published_bytes(&events);
    assert!(
        line.contains("published") && line.contains(" B uploaded"),
        "the publish step after the download re-sent the weights: {line}"
    );
    let store = S3Store::new(store_config(garage, prefix)).unwrap();
    let sha = Sha256Digest::of(&cluster.weights);
    assert_eq!(
        store.size(&layout::blob(&sha)).await.unwrap(),
        Some(WEIGHTS as u64)
    );
    let back = store
        .get(&layout::blob(&sha), u64::MAX)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        Sha256Digest::of(&back),
        sha,
        "the followed upload is the verified file"
    );
}

#[tokio::test]
async fn a_download_that_fails_its_check_leaves_no_blob_behind() {
    let Some(garage) = Garage::shared() else {
        return;
    };
    let cluster = Cluster::start().await;
    cluster.hub.set_rate_limit(Some(8_000_000));
    // Every answer for the weights has one byte wrong, far into the file: the upload that
    // follows the download has sent parts by then.
    cluster.hub.add_fault(
        Fault::new(rbee_fake_hub::FaultAction::FlipByte {
            offset: (WEIGHTS - 1000) as u64,
        })
        .path("**/model.safetensors"),
    );
    let prefix = "follow-failed";
    let a = hive(
        "hive-a",
        cluster.hub.url(),
        store_config(garage, prefix),
        false,
    )
    .await
    .unwrap();
    let (got, _) = provision(&a).await;
    assert!(got.is_err(), "the corrupt download fails");
    let store = S3Store::new(store_config(garage, prefix)).unwrap();
    let sha = Sha256Digest::of(&cluster.weights);
    assert_eq!(store.size(&layout::blob(&sha)).await.unwrap(), None);
    assert!(store.list("manifests").await.unwrap().is_empty());
}

/// A Garage store with one misbehaviour at a time.
#[derive(Debug)]
struct StoreDouble {
    store: S3Store,
    /// Each blob is removed when a URL to read it is asked for: a blob deleted (by
    /// `rbee model rm --shared`, by another hive) between the lookup of its size and its read.
    deletes_blobs_before_their_read: bool,
    /// Lease writes land this late (a slow hive, a busy store).
    lease_writes_after: Duration,
}

impl StoreDouble {
    fn new(store: S3Store) -> StoreDouble {
        StoreDouble {
            store,
            deletes_blobs_before_their_read: false,
            lease_writes_after: Duration::ZERO,
        }
    }
}

#[async_trait::async_trait]
impl SharedStore for StoreDouble {
    fn describe(&self) -> String {
        self.store.describe()
    }
    async fn get(
        &self,
        key: &str,
        limit: u64,
    ) -> Result<Option<bytes::Bytes>, rbee_shared_store::StoreError> {
        self.store.get(key, limit).await
    }
    async fn put(
        &self,
        key: &str,
        bytes: bytes::Bytes,
        create_only: bool,
    ) -> Result<bool, rbee_shared_store::StoreError> {
        if key.starts_with("leases/") {
            tokio::time::sleep(self.lease_writes_after).await;
        }
        self.store.put(key, bytes, create_only).await
    }
    async fn put_file(
        &self,
        key: &str,
        file: &Path,
        sha256: &Sha256Digest,
        cancel: &CancellationToken,
    ) -> Result<u64, rbee_shared_store::StoreError> {
        self.store.put_file(key, file, sha256, cancel).await
    }
    async fn put_growing(
        &self,
        key: &str,
        dest: &Path,
        size: u64,
        sha256: &Sha256Digest,
        cancel: &CancellationToken,
        download_ended: &CancellationToken,
    ) -> Result<u64, rbee_shared_store::StoreError> {
        self.store
            .put_growing(key, dest, size, sha256, cancel, download_ended)
            .await
    }
    async fn size(&self, key: &str) -> Result<Option<u64>, rbee_shared_store::StoreError> {
        self.store.size(key).await
    }
    async fn delete(&self, key: &str) -> Result<(), rbee_shared_store::StoreError> {
        self.store.delete(key).await
    }
    async fn list(&self, dir: &str) -> Result<Vec<String>, rbee_shared_store::StoreError> {
        self.store.list(dir).await
    }
    async fn read_url(
        &self,
        key: &str,
        valid_for: Duration,
    ) -> Result<url::Url, rbee_shared_store::StoreError> {
        if self.deletes_blobs_before_their_read && key.starts_with("blobs/") {
            self.store.delete(key).await?;
        }
        self.store.read_url(key, valid_for).await
    }
}

#[tokio::test]
async fn a_blob_deleted_before_its_read_is_fetched_from_the_origin_even_when_the_store_is_required()
{
    let Some(garage) = Garage::shared() else {
        return;
    };
    let cluster = Cluster::start().await;
    let prefix = "deleted-before-read";
    let a = hive(
        "hive-a",
        cluster.hub.url(),
        store_config(garage, prefix),
        true,
    )
    .await
    .unwrap();
    let (got, _) = provision(&a).await;
    assert_exact(&got.unwrap(), &cluster.weights);

    let mut store = StoreDouble::new(S3Store::new(store_config(garage, prefix)).unwrap());
    store.deletes_blobs_before_their_read = true;
    let b = hive_with_double(
        "hive-b",
        cluster.hub.url(),
        store,
        true,
        LeaseConfig::default(),
    )
    .await
    .unwrap();
    let (got, events) = provision(&b).await;
    let got = got.unwrap_or_else(|e| panic!("a missing blob is not a failing store: {e}"));
    assert_exact(&got, &cluster.weights);
    assert!(!source_of(&got, "model.safetensors").contains("shared store"));
    assert!(
        events
            .iter()
            .any(|e| e.contains("went away while it was read")),
        "a warning: {events:#?}"
    );
}

#[tokio::test]
async fn a_hive_whose_lease_another_overwrote_just_after_it_won_stops_and_reads_the_store() {
    let Some(garage) = Garage::shared() else {
        return;
    };
    let cluster = Cluster::start().await;
    // 4 MiB/s for a hive's two connections: the weights take about six seconds.
    cluster.hub.set_rate_limit(Some(2 << 20));
    let prefix = "contested";
    // Both hives find no lease. A's lease lands at 0.3 s and A starts after its first look
    // back; B's lands at 0.9 s, after A's first look and before A's second (after 1.5-3 s
    // more), so B is the holder and A must stop and wait for it.
    let mut store_a = StoreDouble::new(S3Store::new(store_config(garage, prefix)).unwrap());
    store_a.lease_writes_after = Duration::from_millis(300);
    let mut store_b = StoreDouble::new(S3Store::new(store_config(garage, prefix)).unwrap());
    store_b.lease_writes_after = Duration::from_millis(900);
    let ttl = Duration::from_secs(30);
    let a = hive_with_double(
        "hive-a",
        cluster.hub.url(),
        store_a,
        false,
        LeaseConfig::new(ttl, Duration::from_millis(1500)),
    )
    .await
    .unwrap();
    let b = hive_with_double(
        "hive-b",
        cluster.hub.url(),
        store_b,
        false,
        LeaseConfig::new(ttl, Duration::from_millis(200)),
    )
    .await
    .unwrap();
    let tracker_a = DownloadTracker::new(JobId::generate());
    let ((got_a, events_a), (got_b, _)) =
        tokio::join!(provision_tracked(&a, &tracker_a), provision(&b));
    let (got_a, got_b) = (got_a.unwrap(), got_b.unwrap());
    assert_exact(&got_a, &cluster.weights);
    assert_exact(&got_b, &cluster.weights);
    assert!(
        events_a
            .iter()
            .any(|e| e.contains("landed just after this one's")),
        "hive A said why it stopped: {events_a:#?}"
    );
    assert!(
        source_of(&got_a, "model.safetensors").contains("shared store"),
        "hive A read the store: {}",
        source_of(&got_a, "model.safetensors")
    );
    assert!(!source_of(&got_b, "model.safetensors").contains("shared store"));
    // What A fetched before it stopped is not counted twice.
    assert!(
        tracker_a.bytes() <= tracker_a.total(),
        "hive A's progress: {} of {} bytes",
        tracker_a.bytes(),
        tracker_a.total()
    );
    let origin = cluster.origin_bytes();
    eprintln!(
        "a contested lease: the origin sent {origin} bytes for a {WEIGHTS}-byte model ({:.3}x)",
        origin as f64 / WEIGHTS as f64
    );
    assert!(
        origin < 2 * WEIGHTS as u64,
        "hive A stopped part way: the origin sent {origin} bytes"
    );
}

/// A vendor that says it downloaded everything and wrote nothing.
#[derive(Debug)]
struct DeliversNothing(rbee_vendor_memory::InMemoryVendor);

#[async_trait::async_trait]
impl rbee_artifact::VendorSource for DeliversNothing {
    fn scheme(&self) -> rbee_artifact::Scheme {
        self.0.scheme()
    }
    async fn resolve(
        &self,
        reference: &rbee_artifact::ArtifactRef,
        options: &rbee_artifact::ResolveOptions,
        cancel: &CancellationToken,
    ) -> rbee_artifact::Result<rbee_artifact::ResolvedArtifact> {
        self.0.resolve(reference, options, cancel).await
    }
    async fn download(
        &self,
        _plan: &rbee_artifact::ResolvedArtifact,
        _files: &[rbee_artifact::ResolvedFile],
        _dest: &Path,
        _tracker: &DownloadTracker,
        _cancel: &CancellationToken,
    ) -> rbee_artifact::Result<Vec<rbee_artifact::DownloadedFile>> {
        Ok(Vec::new())
    }
}

#[tokio::test]
async fn a_vendor_that_returns_without_the_file_fails_the_lease_holder_instead_of_hanging() {
    let Some(garage) = Garage::shared() else {
        return;
    };
    // The vendor is built before any provisioner, which registers the references it reads.
    rbee_model_provisioner::register_references();
    let vendor = rbee_vendor_memory::InMemoryVendor::new(rbee_vendor_huggingface::SCHEME);
    // Above the size whose upload follows the download.
    vendor.insert(
        &"hf:org/model".parse().unwrap(),
        Some("rev1"),
        &[("model.safetensors", vec![3; WEIGHTS])],
    );
    let vendors = VendorRegistry::new().with(Arc::new(DeliversNothing(vendor)));
    let store = S3Store::new(store_config(garage, "delivers-nothing")).unwrap();
    let a = hive_on_store(
        "hive-a",
        tempfile::tempdir().unwrap(),
        vendors,
        &VendorSettings::default(),
        Arc::new(store),
        true,
        LeaseConfig::default(),
    )
    .await
    .unwrap();
    // `provision` gives up (and fails the test) after its own timeout.
    let (got, _) = provision(&a).await;
    let e = got.expect_err("nothing was delivered");
    assert!(e.to_string().contains("did not deliver"), "{e}");
}
