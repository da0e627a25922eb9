//! The `file:` vendor against real files in temp dirs.

use std::os::unix::fs::MetadataExt;
use std::path::Path;

use rbee_artifact_catalog::{
    ArtifactRef, DownloadTracker, Error, EventKind, ResolveOptions, Sha256Digest, VendorSource,
};
use rbee_vendor_local::LocalVendor;
use tokio_util::sync::CancellationToken;

fn reference(path: &Path) -> ArtifactRef {
    format!("file:{}", path.display()).parse().unwrap()
}

async fn resolve(
    path: &Path,
) -> rbee_artifact_catalog::Result<rbee_artifact_catalog::ResolvedArtifact> {
    LocalVendor::new()
        .resolve(
            &reference(path),
            &ResolveOptions::default(),
            &CancellationToken::new(),
        )
        .await
}

#[tokio::test]
async fn a_single_file_is_linked_hashed_and_reported() {
    let src_dir = tempfile::tempdir().unwrap();
    let dest = tempfile::tempdir().unwrap();
    let data: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
    let src = src_dir.path().join("tiny.gguf");
    std::fs::write(&src, &data).unwrap();

    let plan = resolve(&src).await.unwrap();
    assert_eq!(plan.files.len(), 1);
    assert_eq!(plan.files[0].path, "tiny.gguf");
    assert_eq!(plan.files[0].size, Some(data.len() as u64));

    let tracker = DownloadTracker::new("job".into());
    let (_, mut rx) = tracker.subscribe();
    let got = LocalVendor::new()
        .download(
            &plan,
            &plan.files,
            dest.path(),
            &tracker,
            &CancellationToken::new(),
        )
        .await
        .unwrap();
    assert_eq!(got[0].sha256, Sha256Digest::of(&data));
    assert_eq!(got[0].size, data.len() as u64);
    let out = dest.path().join("tiny.gguf");
    // Same file system: a hard link, not a copy.
    assert_eq!(
        std::fs::metadata(&out).unwrap().ino(),
        std::fs::metadata(&src).unwrap().ino()
    );
    assert!(!dest.path().join("tiny.gguf.part").exists());
    assert_eq!(tracker.bytes(), data.len() as u64);
    let mut saw_done = false;
    while let Ok(e) = rx.try_recv() {
        saw_done |= matches!(e.kind, EventKind::FileDone { ref path, .. } if path == "tiny.gguf");
    }
    assert!(saw_done);
}

#[tokio::test]
async fn across_file_systems_the_file_is_copied() {
    let shm = Path::new("/dev/shm");
    if !shm.is_dir() {
        eprintln!("skipped: no /dev/shm to stand for another file system");
        return;
    }
    let src_dir = tempfile::tempdir_in(shm).unwrap();
    let dest = tempfile::tempdir().unwrap();
    if std::fs::metadata(src_dir.path()).unwrap().dev()
        == std::fs::metadata(dest.path()).unwrap().dev()
    {
        eprintln!("skipped: /dev/shm is on the same file system here");
        return;
    }
    let src = src_dir.path().join("m.safetensors");
    std::fs::write(&src, b"weights").unwrap();
    std::fs::set_permissions(&src, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    let plan = resolve(&src).await.unwrap();
    let tracker = DownloadTracker::new("job".into());
    let got = LocalVendor::new()
        .download(
            &plan,
            &plan.files,
            dest.path(),
            &tracker,
            &CancellationToken::new(),
        )
        .await
        .unwrap();
    let out = dest.path().join("m.safetensors");
    assert_eq!(std::fs::read(&out).unwrap(), b"weights");
    assert_ne!(
        std::fs::metadata(&out).unwrap().ino(),
        std::fs::metadata(&src).unwrap().ino()
    );
    assert_eq!(got[0].sha256, Sha256Digest::of(b"weights"));
    // The copy is no more readable than the original.
    assert_eq!(std::fs::metadata(&out).unwrap().mode() & 0o777, 0o600);
}

#[tokio::test]
async fn a_folder_brings_its_model_files() {
    let src = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(src.path().join("sub")).unwrap();
    std::fs::write(src.path().join("model.safetensors"), b"w").unwrap();
    std::fs::write(src.path().join("config.json"), b"{}").unwrap();
    std::fs::write(src.path().join("sub/tokenizer.json"), b"{}").unwrap();
    std::fs::write(src.path().join("notes.md"), b"hi").unwrap();
    let plan = resolve(src.path()).await.unwrap();
    let names: Vec<_> = plan.files.iter().map(|f| f.path.as_str()).collect();
    assert_eq!(
        names,
        ["config.json", "model.safetensors", "sub/tokenizer.json"]
    );
    let dest = tempfile::tempdir().unwrap();
    LocalVendor::new()
        .download(
            &plan,
            &plan.files,
            dest.path(),
            &DownloadTracker::new("j".into()),
            &CancellationToken::new(),
        )
        .await
        .unwrap();
    assert!(dest.path().join("sub/tokenizer.json").is_file());

    // Globs narrow the choice.
    let only = LocalVendor::new()
        .resolve(
            &reference(src.path()),
            &ResolveOptions::with_globs(vec!["*.safetensors".into()], vec![]),
            &CancellationToken::new(),
        )
        .await
        .unwrap();
    assert_eq!(only.files.len(), 1);
}

#[tokio::test]
async fn bad_paths_give_clear_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let missing = tmp.path().join("nope.gguf");
    let err = resolve(&missing).await.unwrap_err();
    assert!(matches!(err, Error::NotFound { .. }), "{err:?}");
    assert!(err.to_string().contains("nope.gguf") && err.to_string().contains("check the path"));

    let empty = tmp.path().join("empty.gguf");
    std::fs::write(&empty, b"").unwrap();
    let err = resolve(&empty).await.unwrap_err();
    assert!(err.to_string().contains("is empty"), "{err}");

    let no_models = tmp.path().join("docs");
    std::fs::create_dir(&no_models).unwrap();
    std::fs::write(no_models.join("README.md"), b"x").unwrap();
    let err = resolve(&no_models).await.unwrap_err();
    assert!(err.to_string().contains("holds no model files"), "{err}");

    let locked = tmp.path().join("locked.gguf");
    std::fs::write(&locked, b"x").unwrap();
    std::fs::set_permissions(&locked, std::os::unix::fs::PermissionsExt::from_mode(0o000)).unwrap();
    if std::fs::File::open(&locked).is_ok() {
        eprintln!("running with privileges that ignore file modes; unreadable-file case skipped");
    } else {
        let err = resolve(&locked).await.unwrap_err();
        assert!(err.to_string().contains("permission denied"), "{err}");
    }
}

#[tokio::test]
async fn cancellation_stops_and_leaves_no_partial() {
    let src_dir = tempfile::tempdir().unwrap();
    let dest = tempfile::tempdir().unwrap();
    let src = src_dir.path().join("m.gguf");
    std::fs::write(&src, vec![7u8; 4 << 20]).unwrap();
    let plan = resolve(&src).await.unwrap();
    let cancel = CancellationToken::new();
    cancel.cancel();
    let err = LocalVendor::new()
        .download(
            &plan,
            &plan.files,
            dest.path(),
            &DownloadTracker::new("j".into()),
            &cancel,
        )
        .await
        .unwrap_err();
    assert!(err.is_cancelled());
    assert!(!dest.path().join("m.gguf").exists());
    assert!(!dest.path().join("m.gguf.part").exists());
}

#[tokio::test]
async fn a_digest_mismatch_is_refused() {
    let src_dir = tempfile::tempdir().unwrap();
    let dest = tempfile::tempdir().unwrap();
    let src = src_dir.path().join("m.gguf");
    std::fs::write(&src, b"abc").unwrap();
    let mut plan = resolve(&src).await.unwrap();
    plan.files[0].sha256 = Some(Sha256Digest::of(b"something else"));
    let err = LocalVendor::new()
        .download(
            &plan,
            &plan.files,
            dest.path(),
            &DownloadTracker::new("j".into()),
            &CancellationToken::new(),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Integrity { .. }));
    assert!(!dest.path().join("m.gguf").exists());
}
