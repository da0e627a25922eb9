//! Another vendor's downloads sharing bytes with Ollama's store ([`SharedWithOllama`]): the
//! in-memory vendor stands in for `hf:`, so what it is asked to fetch is visible.

use std::path::Path;
use std::sync::Arc;

use rbee_artifact::{
    ArtifactRef, DownloadTracker, JobId, ResolveOptions, ResolvedArtifact, Scheme, Sha256Digest,
    VendorSource, register_reference,
};
use rbee_vendor_memory::InMemoryVendor;
use rbee_vendor_ollama::{GgufPlan, OllamaRef, OllamaStore, SharedWithOllama};
use tokio_util::sync::CancellationToken;

const FILE: &str = "tiny.Q4_K_M.gguf";

fn gguf() -> Vec<u8> {
    (0..3u32 << 20)
        .map(|i| (i.wrapping_mul(40_503) >> 7) as u8)
        .collect()
}

/// A vendor serving `gguf()` as `FILE`, wrapped to share with the store at `store`, filing the
/// GGUF as `hf.co/team/tiny:Q4_K_M`.
fn shared(store: &Path) -> (Arc<InMemoryVendor>, SharedWithOllama, ArtifactRef) {
    register_reference::<OllamaRef>();
    let inner = Arc::new(InMemoryVendor::new(Scheme::new("ollama")));
    let reference: ArtifactRef = "ollama:team/tiny:q4".parse().unwrap();
    inner.insert(&reference, Some("r1"), &[(FILE, gguf())]);
    let naming = Arc::new(|_: &ResolvedArtifact| {
        Ok(GgufPlan {
            name: OllamaRef::parse_name("hf.co/team/tiny:Q4_K_M").unwrap(),
            model: FILE.to_string(),
            projector: None,
            file_type: Some("Q4_K_M".to_string()),
        })
    });
    let vendor = SharedWithOllama::new(inner.clone(), OllamaStore::new(store)).publishing(naming);
    (inner, vendor, reference)
}

async fn plan(vendor: &SharedWithOllama, reference: &ArtifactRef) -> ResolvedArtifact {
    vendor
        .resolve(
            reference,
            &ResolveOptions::default(),
            &CancellationToken::new(),
        )
        .await
        .unwrap()
}

#[tokio::test]
async fn a_file_ollama_holds_as_a_blob_is_taken_and_the_vendor_fetches_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store = OllamaStore::new(dir.path().join("models"));
    let blob = store.blob_path(&Sha256Digest::of(&gguf()));
    std::fs::create_dir_all(blob.parent().unwrap()).unwrap();
    std::fs::write(&blob, gguf()).unwrap();
    let (inner, vendor, reference) = shared(store.root());
    let plan = plan(&vendor, &reference).await;
    let dest = dir.path().join("files");
    let done = vendor
        .download(
            &plan,
            &plan.files,
            &dest,
            &DownloadTracker::new(JobId::generate()),
            &CancellationToken::new(),
        )
        .await
        .unwrap();
    assert_eq!(done.len(), 1);
    assert_eq!(done[0].sha256, Sha256Digest::of(&gguf()));
    assert_eq!(
        inner.download_count(),
        0,
        "the wrapped vendor was not asked"
    );
    assert_eq!(std::fs::read(dest.join(FILE)).unwrap(), gguf());
    use std::os::unix::fs::MetadataExt;
    assert_eq!(
        std::fs::metadata(dest.join(FILE)).unwrap().ino(),
        std::fs::metadata(&blob).unwrap().ino()
    );
}

#[tokio::test]
async fn a_file_changed_since_it_was_verified_never_lands_in_ollamas_store() {
    let dir = tempfile::tempdir().unwrap();
    let store = OllamaStore::new(dir.path().join("models"));
    let (inner, vendor, reference) = shared(store.root());
    let plan = plan(&vendor, &reference).await;
    let dest = dir.path().join("files");
    let name = OllamaRef::parse_name("hf.co/team/tiny:Q4_K_M").unwrap();
    // The catalog has the file from an earlier download, changed on disk since (same size):
    // nothing is left to fetch, and its bytes are not what the digest names.
    std::fs::create_dir_all(&dest).unwrap();
    let mut changed = gguf();
    changed[7] ^= 0x80;
    std::fs::write(dest.join(FILE), &changed).unwrap();
    let tracker = DownloadTracker::new(JobId::generate());
    let (_, mut events) = tracker.subscribe();
    vendor
        .download(&plan, &[], &dest, &tracker, &CancellationToken::new())
        .await
        .unwrap();
    assert_eq!(inner.download_count(), 0);
    assert!(!store.blob_path(&Sha256Digest::of(&gguf())).exists());
    assert!(store.read(&name).unwrap().is_none());
    let mut said = String::new();
    while let Ok(event) = events.try_recv() {
        said.push_str(&format!("{event:?}\n"));
    }
    assert!(
        said.contains("could not place the model in Ollama's store"),
        "{said}"
    );

    // Whole again: filed, and rbee's store reader reads it back under Ollama's path.
    std::fs::write(dest.join(FILE), gguf()).unwrap();
    vendor
        .download(&plan, &[], &dest, &tracker, &CancellationToken::new())
        .await
        .unwrap();
    assert_eq!(
        store.manifest_path(&name),
        dir.path().join("models/manifests/hf.co/team/tiny/Q4_K_M")
    );
    let stored = store
        .read(&name)
        .unwrap()
        .expect("the manifest was written");
    assert_eq!(stored.manifest.model().digest, Sha256Digest::of(&gguf()));
    assert_eq!(
        std::fs::read(store.blob_path(&Sha256Digest::of(&gguf()))).unwrap(),
        gguf()
    );
}

#[tokio::test]
async fn a_manifest_ollama_wrote_for_the_same_bytes_is_left_as_it_is() {
    let dir = tempfile::tempdir().unwrap();
    let store = OllamaStore::new(dir.path().join("models"));
    let (_, vendor, reference) = shared(store.root());
    let name = OllamaRef::parse_name("hf.co/team/tiny:Q4_K_M").unwrap();
    let model = Sha256Digest::of(&gguf());
    // What `ollama pull hf.co/team/tiny:Q4_K_M` leaves: the GGUF plus a template layer.
    let blob = store.blob_path(&model);
    std::fs::create_dir_all(blob.parent().unwrap()).unwrap();
    std::fs::write(&blob, gguf()).unwrap();
    let template = b"{{ .Prompt }}";
    let config = b"{}";
    for bytes in [&template[..], &config[..]] {
        std::fs::write(store.blob_path(&Sha256Digest::of(bytes)), bytes).unwrap();
    }
    let theirs = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
        "config": {"mediaType": "application/vnd.docker.container.image.v1+json",
                   "digest": format!("sha256:{}", Sha256Digest::of(config)), "size": config.len()},
        "layers": [
            {"mediaType": "application/vnd.ollama.image.model",
             "digest": format!("sha256:{model}"), "size": gguf().len()},
            {"mediaType": "application/vnd.ollama.image.template",
             "digest": format!("sha256:{}", Sha256Digest::of(template)), "size": template.len()},
        ],
    }))
    .unwrap();
    let path = store.manifest_path(&name);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, &theirs).unwrap();

    let plan = plan(&vendor, &reference).await;
    vendor
        .download(
            &plan,
            &plan.files,
            &dir.path().join("files"),
            &DownloadTracker::new(JobId::generate()),
            &CancellationToken::new(),
        )
        .await
        .unwrap();
    assert_eq!(
        std::fs::read(&path).unwrap(),
        theirs,
        "Ollama's manifest, with its template, was replaced"
    );
}
