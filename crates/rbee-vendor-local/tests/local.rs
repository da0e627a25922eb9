//! The `file:` vendor against real files in temp dirs.

use std::os::unix::fs::MetadataExt;
use std::path::Path;

use rbee_artifact::{
    ArtifactRef, DownloadTracker, Error, EventKind, ResolveOptions, Sha256Digest, VendorSource,
};
use rbee_vendor_local::LocalVendor;
use tokio_util::sync::CancellationToken;

fn reference(path: &Path) -> ArtifactRef {
    rbee_artifact::register_reference::<rbee_vendor_local::LocalRef>();
    format!("file:{}", path.display()).parse().unwrap()
}

async fn resolve(path: &Path) -> rbee_artifact::Result<rbee_artifact::ResolvedArtifact> {
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

async fn download_all(
    vendor: &LocalVendor,
    plan: &rbee_artifact::ResolvedArtifact,
    dest: &Path,
) -> rbee_artifact::Result<Vec<rbee_artifact::DownloadedFile>> {
    vendor
        .download(
            plan,
            &plan.files,
            dest,
            &DownloadTracker::new("j".into()),
            &CancellationToken::new(),
        )
        .await
}

/// A HuggingFace cache snapshot: `snapshots/<rev>/<name>` links to `../../blobs/<hash>`.
fn hf_snapshot(root: &Path) -> std::path::PathBuf {
    let blobs = root.join("blobs");
    let snapshot = root.join("snapshots/abc123");
    std::fs::create_dir_all(&blobs).unwrap();
    std::fs::create_dir_all(snapshot.join("sub")).unwrap();
    std::fs::write(blobs.join("h-weights"), b"gguf weights").unwrap();
    std::fs::write(blobs.join("h-config"), b"{\"a\":1}").unwrap();
    std::os::unix::fs::symlink("../../blobs/h-weights", snapshot.join("x.gguf")).unwrap();
    std::os::unix::fs::symlink("../../../blobs/h-config", snapshot.join("sub/config.json"))
        .unwrap();
    snapshot
}

#[tokio::test]
async fn a_folder_of_links_is_stored_as_real_files_named_by_the_links() {
    let src = tempfile::tempdir().unwrap();
    let snapshot = hf_snapshot(src.path());
    let plan = resolve(&snapshot).await.unwrap();
    let names: Vec<_> = plan.files.iter().map(|f| f.path.as_str()).collect();
    assert_eq!(names, ["sub/config.json", "x.gguf"]);
    assert_eq!(plan.files[1].size, Some(12));

    let dest = tempfile::tempdir().unwrap();
    let got = download_all(&LocalVendor::new(), &plan, dest.path())
        .await
        .unwrap();
    assert_eq!(got[1].sha256, Sha256Digest::of(b"gguf weights"));
    for (name, blob) in [("x.gguf", "h-weights"), ("sub/config.json", "h-config")] {
        let stored = dest.path().join(name);
        let meta = std::fs::symlink_metadata(&stored).unwrap();
        assert!(meta.file_type().is_file(), "{name} is stored as a link");
        // Same file system: a hard link to the blob, no bytes copied.
        assert_eq!(
            meta.ino(),
            std::fs::metadata(src.path().join("blobs").join(blob))
                .unwrap()
                .ino()
        );
    }

    // One file named through a link keeps the link's name, not the blob's.
    let single = resolve(&snapshot.join("x.gguf")).await.unwrap();
    assert_eq!(single.files[0].path, "x.gguf");
}

#[tokio::test]
async fn an_absolute_link_is_copied_by_value_not_kept_as_a_link() {
    let src = tempfile::tempdir().unwrap();
    let blob = src.path().join("blob");
    std::fs::write(&blob, b"version one").unwrap();
    let folder = src.path().join("model");
    std::fs::create_dir(&folder).unwrap();
    std::os::unix::fs::symlink(&blob, folder.join("m.gguf")).unwrap();
    let plan = resolve(&folder).await.unwrap();
    let dest = tempfile::tempdir().unwrap();
    download_all(&LocalVendor::new(), &plan, dest.path())
        .await
        .unwrap();

    // Replacing the link's target (a new file under the same name) leaves the catalog alone.
    let next = src.path().join("blob.new");
    std::fs::write(&next, b"version two").unwrap();
    std::fs::rename(&next, &blob).unwrap();
    let stored = dest.path().join("m.gguf");
    assert!(
        !std::fs::symlink_metadata(&stored)
            .unwrap()
            .file_type()
            .is_symlink()
    );
    assert_eq!(std::fs::read(&stored).unwrap(), b"version one");
}

#[tokio::test]
async fn dangling_links_and_link_loops_are_clear_errors() {
    let src = tempfile::tempdir().unwrap();
    let dangling = src.path().join("dangling");
    std::fs::create_dir(&dangling).unwrap();
    std::fs::write(dangling.join("ok.gguf"), b"w").unwrap();
    std::os::unix::fs::symlink("../gone/blob", dangling.join("broken.gguf")).unwrap();
    let err = resolve(&dangling).await.unwrap_err().to_string();
    assert!(
        err.contains("broken.gguf") && err.contains("does not exist"),
        "{err}"
    );
    // An exclude glob leaves a broken link out without reading it.
    let plan = LocalVendor::new()
        .resolve(
            &reference(&dangling),
            &ResolveOptions::with_globs(vec![], vec!["broken.gguf".into()]),
            &CancellationToken::new(),
        )
        .await
        .unwrap();
    assert_eq!(plan.files.len(), 1);

    let looping = src.path().join("looping");
    std::fs::create_dir(&looping).unwrap();
    std::fs::write(looping.join("ok.gguf"), b"w").unwrap();
    std::os::unix::fs::symlink("b.gguf", looping.join("a.gguf")).unwrap();
    std::os::unix::fs::symlink("a.gguf", looping.join("b.gguf")).unwrap();
    let err = resolve(&looping).await.unwrap_err().to_string();
    assert!(err.contains("link loop"), "{err}");

    // A linked folder that leads back up would be walked forever.
    let cycle = src.path().join("cycle");
    std::fs::create_dir_all(cycle.join("sub")).unwrap();
    std::fs::write(cycle.join("ok.gguf"), b"w").unwrap();
    std::os::unix::fs::symlink("..", cycle.join("sub/up")).unwrap();
    let err = resolve(&cycle).await.unwrap_err().to_string();
    assert!(
        err.contains("up") && err.contains("already being read"),
        "{err}"
    );

    let err = resolve(&dangling.join("broken.gguf"))
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("broken.gguf"), "{err}");
}

/// `<tmp>/allowed` holding links that stay inside it and links that lead out, and a secret
/// file outside it.
struct Confined {
    tmp: tempfile::TempDir,
}

impl Confined {
    fn new() -> Self {
        let tmp = tempfile::tempdir().unwrap();
        let t = tmp.path();
        std::fs::write(t.join("secret.gguf"), b"outside secret").unwrap();
        std::fs::create_dir_all(t.join("outside/folder")).unwrap();
        std::fs::write(t.join("outside/folder/y.gguf"), b"outside folder").unwrap();
        let allowed = t.join("allowed");
        std::fs::create_dir_all(allowed.join("escape")).unwrap();
        std::fs::write(allowed.join("escape/ok.gguf"), b"fine").unwrap();
        std::os::unix::fs::symlink(t.join("secret.gguf"), allowed.join("escape/x.gguf")).unwrap();
        std::fs::create_dir_all(allowed.join("linked")).unwrap();
        std::fs::write(allowed.join("linked/ok.gguf"), b"fine").unwrap();
        std::os::unix::fs::symlink("../../outside/folder", allowed.join("linked/sub")).unwrap();
        std::fs::create_dir_all(allowed.join("real")).unwrap();
        std::fs::write(allowed.join("real/blob"), b"inside").unwrap();
        std::fs::create_dir_all(allowed.join("inside")).unwrap();
        std::os::unix::fs::symlink("../real/blob", allowed.join("inside/z.gguf")).unwrap();
        std::os::unix::fs::symlink(t.join("secret.gguf"), allowed.join("direct.gguf")).unwrap();
        Self { tmp }
    }

    fn allowed(&self) -> std::path::PathBuf {
        self.tmp.path().join("allowed")
    }

    fn vendor(&self) -> LocalVendor {
        LocalVendor::with_access(rbee_vendor_local::LocalAccess::within([self.allowed()]))
    }

    async fn resolve(&self, rel: &str) -> rbee_artifact::Result<rbee_artifact::ResolvedArtifact> {
        self.vendor()
            .resolve(
                &reference(&self.allowed().join(rel)),
                &ResolveOptions::default(),
                &CancellationToken::new(),
            )
            .await
    }
}

#[tokio::test]
async fn a_confined_vendor_reads_only_what_resolves_inside_its_folders() {
    let c = Confined::new();
    for (rel, named) in [
        ("escape", "x.gguf"),
        ("linked", "sub"),
        ("direct.gguf", "direct.gguf"),
    ] {
        let err = c.resolve(rel).await.unwrap_err();
        assert!(matches!(err, Error::Unauthorized { .. }), "{rel}: {err:?}");
        let message = err.to_string();
        assert!(message.contains(named), "{rel}: {message}");
        // The caller does not learn where the link leads.
        assert!(
            !message.contains("secret") && !message.contains("outside/"),
            "{message}"
        );
    }
    // A missing file outside is refused like an existing one: no probing.
    let err = c.resolve("../nothing-here.gguf").await.unwrap_err();
    assert!(matches!(err, Error::Unauthorized { .. }), "{err:?}");

    // Links that stay inside are followed, and named by the link.
    let plan = c.resolve("inside").await.unwrap();
    assert_eq!(plan.files[0].path, "z.gguf");
    let dest = tempfile::tempdir().unwrap();
    let got = download_all(&c.vendor(), &plan, dest.path()).await.unwrap();
    assert_eq!(got[0].sha256, Sha256Digest::of(b"inside"));

    // The CLI's vendor follows links wherever its user can read.
    let plan = LocalVendor::new()
        .resolve(
            &reference(&c.allowed().join("escape")),
            &ResolveOptions::default(),
            &CancellationToken::new(),
        )
        .await
        .unwrap();
    assert_eq!(plan.files.len(), 2);
}

#[tokio::test]
async fn a_confined_vendor_checks_again_when_it_reads() {
    let c = Confined::new();
    let plan = c.resolve("inside").await.unwrap();
    // Between planning and reading, the blob is swapped for a link to the secret.
    let blob = c.allowed().join("real/blob");
    std::fs::remove_file(&blob).unwrap();
    std::os::unix::fs::symlink(c.tmp.path().join("secret.gguf"), &blob).unwrap();
    let dest = tempfile::tempdir().unwrap();
    let err = download_all(&c.vendor(), &plan, dest.path())
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("changed while it was being read"), "{err}");
    assert_eq!(std::fs::read_dir(dest.path()).unwrap().count(), 0);

    // A plan naming a file outside (not made by this vendor) is refused too.
    let mut forged = c.resolve("escape/ok.gguf").await.unwrap();
    forged.files[0].source = rbee_artifact::FileSource::Local {
        path: std::fs::canonicalize(c.tmp.path().join("secret.gguf")).unwrap(),
    };
    let err = download_all(&c.vendor(), &forged, dest.path())
        .await
        .unwrap_err();
    assert!(err.to_string().contains("secret.gguf"), "{err}");
    assert_eq!(std::fs::read_dir(dest.path()).unwrap().count(), 0);
}
