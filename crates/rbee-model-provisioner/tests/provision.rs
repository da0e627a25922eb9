//! The provision flow against the real local vendor and a scripted in-memory vendor.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use rbee_artifact::{
    ArtifactRef, DownloadTracker, DownloadedFile, Error, EventKind, FileSource, ProgressEvent,
    ResolveOptions, ResolvedArtifact, ResolvedFile, Result, Scheme, Sha256Digest, VendorSource,
};
use rbee_catalog::{ArtifactStatus, Catalog};
use rbee_model_provisioner::{
    Outcome, ProvisionOptions, Provisioner, ProvisionerConfig, VendorRegistry,
};
use rbee_vendor_local::LocalVendor;
use tokio::sync::{Notify, broadcast};
use tokio_util::sync::CancellationToken;

/// An in-memory `hf:` vendor whose downloads can be held at a gate.
#[derive(Debug, Default)]
struct Scripted {
    files: Mutex<Vec<(String, Vec<u8>)>>,
    revision: Mutex<String>,
    gated: bool,
    gate: Notify,
    downloads: Mutex<Vec<Vec<String>>>,
    resolve_error: Mutex<Option<fn() -> Error>>,
    download_error: Mutex<Option<fn() -> Error>>,
    lie_about_digest: bool,
    extra_files: Mutex<Vec<ResolvedFile>>,
}

impl Scripted {
    fn new(files: &[(&str, &[u8])]) -> Self {
        let s = Self::default();
        s.set_files(files);
        *s.revision.lock().unwrap() = "rev1".into();
        s
    }

    fn gated(files: &[(&str, &[u8])]) -> Self {
        Self {
            gated: true,
            ..Self::new(files)
        }
    }

    fn set_files(&self, files: &[(&str, &[u8])]) {
        *self.files.lock().unwrap() = files
            .iter()
            .map(|(p, d)| (p.to_string(), d.to_vec()))
            .collect();
    }

    fn download_count(&self) -> usize {
        self.downloads.lock().unwrap().len()
    }
}

#[async_trait]
impl VendorSource for Scripted {
    fn scheme(&self) -> Scheme {
        rbee_vendor_huggingface::SCHEME
    }

    async fn resolve(
        &self,
        reference: &ArtifactRef,
        options: &ResolveOptions,
        _: &CancellationToken,
    ) -> Result<ResolvedArtifact> {
        if let Some(make) = *self.resolve_error.lock().unwrap() {
            return Err(make());
        }
        let mut files: Vec<ResolvedFile> = self
            .files
            .lock()
            .unwrap()
            .iter()
            .map(|(p, d)| ResolvedFile {
                path: p.clone(),
                size: Some(d.len() as u64),
                sha256: Some(Sha256Digest::of(d)),
                version: None,
                git_blob: None,
                source: FileSource::Http {
                    url: format!("http://vendor.invalid/{p}").parse().unwrap(),
                },
            })
            .collect();
        files.extend(self.extra_files.lock().unwrap().iter().cloned());
        // Include globs, spelled as exact names here.
        if !options.include.is_empty() {
            files.retain(|f| options.include.contains(&f.path));
        }
        Ok(ResolvedArtifact {
            reference: reference.clone(),
            revision: Some(self.revision.lock().unwrap().clone()),
            files,
            notes: vec![],
        })
    }

    async fn download(
        &self,
        _plan: &ResolvedArtifact,
        files: &[ResolvedFile],
        dest: &Path,
        tracker: &DownloadTracker,
        cancel: &CancellationToken,
    ) -> Result<Vec<DownloadedFile>> {
        self.downloads
            .lock()
            .unwrap()
            .push(files.iter().map(|f| f.path.clone()).collect());
        let mut out = Vec::new();
        for f in files {
            let data = self
                .files
                .lock()
                .unwrap()
                .iter()
                .find(|(p, _)| *p == f.path)
                .map(|(_, d)| d.clone())
                .unwrap();
            let progress = tracker.file(&f.path, f.size, 0);
            let half = data.len() / 2;
            progress.advance(half as u64);
            if self.gated {
                tokio::select! {
                    () = self.gate.notified() => {}
                    () = cancel.cancelled() => return Err(Error::Cancelled),
                }
            }
            if let Some(make) = *self.download_error.lock().unwrap() {
                return Err(make());
            }
            let path = dest.join(&f.path);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, &data).unwrap();
            progress.advance((data.len() - half) as u64);
            progress.done();
            let sha256 = if self.lie_about_digest {
                Sha256Digest::of(b"not these bytes")
            } else {
                Sha256Digest::of(&data)
            };
            out.push(DownloadedFile {
                path: f.path.clone(),
                size: data.len() as u64,
                sha256,
            });
        }
        Ok(out)
    }
}

struct Setup {
    _dir: tempfile::TempDir,
    catalog: Arc<Catalog>,
    provisioner: Provisioner,
}

fn setup(vendor: Arc<dyn VendorSource>, config: ProvisionerConfig) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let catalog = Arc::new(Catalog::open(dir.path().join("catalog")).unwrap());
    let vendors = VendorRegistry::new()
        .with(vendor)
        .with(Arc::new(LocalVendor::new()));
    let provisioner = Provisioner::new(catalog.clone(), vendors, config);
    Setup {
        _dir: dir,
        catalog,
        provisioner,
    }
}

fn r(s: &str) -> ArtifactRef {
    s.parse().unwrap()
}

fn drain(rx: &mut broadcast::Receiver<ProgressEvent>) -> Vec<ProgressEvent> {
    let mut out = Vec::new();
    while let Ok(e) = rx.try_recv() {
        out.push(e);
    }
    out
}

async fn provision(
    p: &Provisioner,
    reference: &str,
    tracker: &DownloadTracker,
) -> Result<rbee_model_provisioner::Provisioned> {
    p.provision(
        r(reference),
        ProvisionOptions::default(),
        tracker,
        CancellationToken::new(),
    )
    .await
}

async fn wait_until(what: &str, mut ok: impl FnMut() -> bool) {
    for _ in 0..500 {
        if ok() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("timed out waiting until {what}");
}

#[tokio::test]
async fn a_local_file_is_provisioned_recorded_and_idempotent() {
    rbee_model_provisioner::register_references();
    let s = setup(Arc::new(Scripted::default()), ProvisionerConfig::default());
    let src = s._dir.path().join("model.gguf");
    std::fs::write(&src, vec![3u8; 1 << 20]).unwrap();
    let reference = format!("file:{}", src.display());

    let tracker = DownloadTracker::new("job-1".into());
    let (_, mut rx) = tracker.subscribe();
    let got = provision(&s.provisioner, &reference, &tracker)
        .await
        .unwrap();
    assert_eq!(got.outcome, Outcome::Downloaded);
    let paths = got.paths();
    assert_eq!(std::fs::read(&paths[0]).unwrap().len(), 1 << 20);
    let record = &s.catalog.get(&reference).unwrap().unwrap().record;
    assert_eq!(record.status, ArtifactStatus::Ready);
    assert_eq!(
        record.files[0].sha256,
        Some(Sha256Digest::of(&vec![3u8; 1 << 20]))
    );
    let events = drain(&mut rx);
    assert!(matches!(
        events.last().unwrap().kind,
        EventKind::Completed { .. }
    ));
    assert!(events.iter().all(|e| e.job_id.0 == "job-1"));
    assert!(
        events
            .iter()
            .any(|e| matches!(e.kind, EventKind::Started { .. }))
    );

    // Asking again is not an error and moves no bytes.
    let again = provision(
        &s.provisioner,
        &reference,
        &DownloadTracker::new("job-2".into()),
    )
    .await
    .unwrap();
    assert_eq!(again.outcome, Outcome::AlreadyReady);
    assert_eq!(again.paths(), paths);

    // The source changed: asking again picks the change up.
    std::fs::write(&src, vec![4u8; 10]).unwrap();
    let updated = provision(
        &s.provisioner,
        &reference,
        &DownloadTracker::new("job-3".into()),
    )
    .await
    .unwrap();
    assert_eq!(updated.outcome, Outcome::Updated);
    assert_eq!(std::fs::read(&updated.paths()[0]).unwrap(), vec![4u8; 10]);
}

#[tokio::test]
async fn identical_concurrent_requests_share_one_transfer() {
    rbee_model_provisioner::register_references();
    let vendor = Arc::new(Scripted::gated(&[("m.gguf", b"0123456789")]));
    let s = setup(vendor.clone(), ProvisionerConfig::default());
    let (ta, tb) = (
        DownloadTracker::new("job-a".into()),
        DownloadTracker::new("job-b".into()),
    );
    let (_, mut rxa) = ta.subscribe();
    let (_, mut rxb) = tb.subscribe();
    let (pa, pb) = (s.provisioner.clone(), s.provisioner.clone());
    let (ta2, tb2) = (ta.clone(), tb.clone());
    let a = tokio::spawn(async move { provision(&pa, "hf:o/r:Q4_K_M", &ta2).await });
    wait_until("the first download starts", || vendor.download_count() == 1).await;
    // A different spelling of the same artifact joins the same transfer.
    let b = tokio::spawn(async move { provision(&pb, "o/r:q4_k_m", &tb2).await });
    wait_until("the second caller follows", || tb.bytes() == 5).await;
    assert_eq!(s.provisioner.active_downloads().len(), 1);
    vendor.gate.notify_waiters();
    let (a, b) = (a.await.unwrap().unwrap(), b.await.unwrap().unwrap());
    assert_eq!(vendor.download_count(), 1, "one transfer for both callers");
    assert_eq!(a.paths(), b.paths());
    for (rx, job) in [(&mut rxa, "job-a"), (&mut rxb, "job-b")] {
        let events = drain(rx);
        assert!(events.iter().all(|e| e.job_id.0 == job));
        assert!(
            matches!(events.last().unwrap().kind, EventKind::Completed { .. }),
            "{job}: {events:?}"
        );
    }
    assert!(s.provisioner.active_downloads().is_empty());
}

#[tokio::test]
async fn the_queue_bounds_concurrent_downloads() {
    rbee_model_provisioner::register_references();
    let vendor = Arc::new(Scripted::gated(&[("m.gguf", b"0123456789")]));
    let s = setup(
        vendor.clone(),
        ProvisionerConfig {
            max_concurrent_downloads: 1,
            // Both artifacts hold the same bytes; make the second really download them.
            reuse_by_digest: false,
            ..Default::default()
        },
    );
    let t2 = DownloadTracker::new("job-2".into());
    let (_, mut rx2) = t2.subscribe();
    let p1 = s.provisioner.clone();
    let first = tokio::spawn(async move {
        provision(&p1, "hf:o/a", &DownloadTracker::new("job-1".into())).await
    });
    wait_until("the first download starts", || vendor.download_count() == 1).await;
    let p2 = s.provisioner.clone();
    let t2c = t2.clone();
    let second = tokio::spawn(async move { provision(&p2, "hf:o/b", &t2c).await });
    wait_until("the second job is queued", || {
        drain(&mut rx2)
            .iter()
            .any(|e| matches!(e.kind, EventKind::Queued { position: 0 }))
    })
    .await;
    assert_eq!(vendor.download_count(), 1, "the second waits for a slot");
    vendor.gate.notify_waiters();
    first.await.unwrap().unwrap();
    wait_until("the second download starts", || {
        vendor.download_count() == 2
    })
    .await;
    vendor.gate.notify_waiters();
    second.await.unwrap().unwrap();
}

#[tokio::test]
async fn cancelling_keeps_the_catalog_true() {
    rbee_model_provisioner::register_references();
    let vendor = Arc::new(Scripted::gated(&[("m.gguf", b"0123456789")]));
    let s = setup(vendor.clone(), ProvisionerConfig::default());
    let tracker = DownloadTracker::new("job".into());
    let (_, mut rx) = tracker.subscribe();
    let cancel = CancellationToken::new();
    let (p, t, c) = (s.provisioner.clone(), tracker.clone(), cancel.clone());
    let task = tokio::spawn(async move {
        p.provision(r("hf:o/r"), ProvisionOptions::default(), &t, c)
            .await
    });
    wait_until("the download starts", || vendor.download_count() == 1).await;
    let status = s
        .catalog
        .get("hf:o/r")
        .unwrap()
        .unwrap()
        .record
        .status
        .clone();
    assert!(matches!(status, ArtifactStatus::Downloading { .. }));
    let started = std::time::Instant::now();
    cancel.cancel();
    let err = task.await.unwrap().unwrap_err();
    assert!(err.is_cancelled());
    assert!(started.elapsed() < Duration::from_secs(2));
    let status = s
        .catalog
        .get("hf:o/r")
        .unwrap()
        .unwrap()
        .record
        .status
        .clone();
    assert!(
        matches!(
            status,
            ArtifactStatus::Incomplete {
                bytes: 5,
                total: 10
            }
        ),
        "{status:?}"
    );
    let events = drain(&mut rx);
    assert!(matches!(
        events.last().unwrap().kind,
        EventKind::Cancelled { .. }
    ));
    assert_eq!(events.iter().filter(|e| e.kind.is_final()).count(), 1);
    // The entry is free again: removable.
    s.catalog.remove("hf:o/r").unwrap();
}

#[tokio::test]
async fn one_caller_cancelling_does_not_stop_a_shared_transfer() {
    rbee_model_provisioner::register_references();
    let vendor = Arc::new(Scripted::gated(&[("m.gguf", b"0123456789")]));
    let s = setup(vendor.clone(), ProvisionerConfig::default());
    let cancel_a = CancellationToken::new();
    let (pa, ca) = (s.provisioner.clone(), cancel_a.clone());
    let a = tokio::spawn(async move {
        pa.provision(
            r("hf:o/r"),
            ProvisionOptions::default(),
            &DownloadTracker::new("a".into()),
            ca,
        )
        .await
    });
    wait_until("the download starts", || vendor.download_count() == 1).await;
    let pb = s.provisioner.clone();
    let tb = DownloadTracker::new("b".into());
    let tb2 = tb.clone();
    let b = tokio::spawn(async move { provision(&pb, "hf:o/r", &tb2).await });
    wait_until("b follows", || tb.bytes() == 5).await;
    cancel_a.cancel();
    assert!(a.await.unwrap().unwrap_err().is_cancelled());
    vendor.gate.notify_waiters();
    let b = b.await.unwrap().unwrap();
    assert_eq!(b.entry.record.status, ArtifactStatus::Ready);
    assert_eq!(vendor.download_count(), 1);
}

#[tokio::test]
async fn failures_are_recorded_and_reported() {
    rbee_model_provisioner::register_references();
    let vendor = Arc::new(Scripted::new(&[("m.gguf", b"0123456789")]));
    *vendor.download_error.lock().unwrap() = Some(|| Error::Network {
        message: "connection reset by the CDN after 8 attempts".into(),
        source: None,
    });
    let s = setup(vendor.clone(), ProvisionerConfig::default());
    let tracker = DownloadTracker::new("job".into());
    let (_, mut rx) = tracker.subscribe();
    let err = provision(&s.provisioner, "hf:o/r", &tracker)
        .await
        .unwrap_err();
    assert_eq!(err.code(), "network");
    let status = s
        .catalog
        .get("hf:o/r")
        .unwrap()
        .unwrap()
        .record
        .status
        .clone();
    assert!(
        matches!(status, ArtifactStatus::Failed { ref code, ref error, .. } if code == "network" && error.contains("8 attempts"))
    );
    let events = drain(&mut rx);
    assert!(
        matches!(&events.last().unwrap().kind, EventKind::Failed { code, .. } if code == "network")
    );

    // A failed resolve leaves no entry at all.
    *vendor.resolve_error.lock().unwrap() = Some(|| Error::NotFound {
        message: "no such repo".into(),
    });
    let err = provision(
        &s.provisioner,
        "hf:o/other",
        &DownloadTracker::new("j".into()),
    )
    .await
    .unwrap_err();
    assert_eq!(err.code(), "not_found");
    assert!(s.catalog.get("hf:o/other").unwrap().is_none());
}

#[tokio::test]
async fn bad_bytes_never_become_ready() {
    rbee_model_provisioner::register_references();
    let vendor = Arc::new(Scripted {
        lie_about_digest: true,
        ..Scripted::new(&[("m.gguf", b"0123456789")])
    });
    let s = setup(vendor, ProvisionerConfig::default());
    let err = provision(&s.provisioner, "hf:o/r", &DownloadTracker::new("j".into()))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Integrity { .. }), "{err:?}");
    let entry = s.catalog.get("hf:o/r").unwrap().unwrap();
    assert!(matches!(entry.record.status, ArtifactStatus::Failed { .. }));
    assert!(!entry.files_dir().join("m.gguf").exists());
}

#[tokio::test]
async fn a_moving_reference_fetches_only_changed_files() {
    rbee_model_provisioner::register_references();
    let vendor = Arc::new(Scripted::new(&[
        ("a.safetensors", b"aaaa"),
        ("config.json", b"{}"),
        ("old.txt", b"x"),
    ]));
    let s = setup(vendor.clone(), ProvisionerConfig::default());
    let first = provision(&s.provisioner, "hf:o/r", &DownloadTracker::new("1".into()))
        .await
        .unwrap();
    assert_eq!(first.outcome, Outcome::Downloaded);
    assert_eq!(first.entry.record.revision.as_deref(), Some("rev1"));

    // Same revision: nothing to fetch.
    let same = provision(&s.provisioner, "hf:o/r", &DownloadTracker::new("2".into()))
        .await
        .unwrap();
    assert_eq!(same.outcome, Outcome::AlreadyReady);
    assert_eq!(vendor.download_count(), 1);

    // The branch moved: one file changed, one was deleted.
    vendor.set_files(&[("a.safetensors", b"aaaa"), ("config.json", b"{\"v\":2}")]);
    *vendor.revision.lock().unwrap() = "rev2".into();
    let updated = provision(&s.provisioner, "hf:o/r", &DownloadTracker::new("3".into()))
        .await
        .unwrap();
    assert_eq!(updated.outcome, Outcome::Updated);
    assert_eq!(
        vendor.downloads.lock().unwrap().last().unwrap(),
        &vec!["config.json".to_string()]
    );
    assert_eq!(updated.entry.record.revision.as_deref(), Some("rev2"));
    assert!(!updated.entry.files_dir().join("old.txt").exists());
    assert_eq!(updated.entry.record.files.len(), 2);
}

#[tokio::test]
async fn an_unreachable_vendor_falls_back_to_the_ready_copy() {
    rbee_model_provisioner::register_references();
    let vendor = Arc::new(Scripted::new(&[("m.gguf", b"0123456789")]));
    let s = setup(vendor.clone(), ProvisionerConfig::default());
    provision(&s.provisioner, "hf:o/r", &DownloadTracker::new("1".into()))
        .await
        .unwrap();
    *vendor.resolve_error.lock().unwrap() = Some(|| Error::Network {
        message: "could not connect".into(),
        source: None,
    });
    let tracker = DownloadTracker::new("2".into());
    let (_, mut rx) = tracker.subscribe();
    let got = provision(&s.provisioner, "hf:o/r", &tracker).await.unwrap();
    assert_eq!(got.outcome, Outcome::AlreadyReady);
    assert!(drain(&mut rx).iter().any(|e| matches!(&e.kind, EventKind::Message { message } if message.contains("using the ready copy"))));
}

#[tokio::test]
async fn not_enough_space_is_refused_before_any_byte() {
    rbee_model_provisioner::register_references();
    let vendor = Arc::new(Scripted::new(&[("m.gguf", b"0123456789")]));
    vendor.extra_files.lock().unwrap().push(ResolvedFile {
        path: "huge.gguf".into(),
        size: Some(u64::MAX / 4),
        sha256: None,
        version: None,
        git_blob: None,
        source: FileSource::Http {
            url: "http://vendor.invalid/huge".parse().unwrap(),
        },
    });
    let s = setup(vendor.clone(), ProvisionerConfig::default());
    let err = provision(&s.provisioner, "hf:o/r", &DownloadTracker::new("j".into()))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::InsufficientSpace { .. }), "{err:?}");
    assert!(err.to_string().contains("needed"));
    assert_eq!(vendor.download_count(), 0);
}

#[tokio::test]
async fn hostile_file_names_are_refused() {
    rbee_model_provisioner::register_references();
    let vendor = Arc::new(Scripted::new(&[("../../escape.gguf", b"x")]));
    let s = setup(vendor.clone(), ProvisionerConfig::default());
    let err = provision(&s.provisioner, "hf:o/r", &DownloadTracker::new("j".into()))
        .await
        .unwrap_err();
    assert_eq!(err.code(), "protocol");
    assert_eq!(vendor.download_count(), 0);
}

#[tokio::test]
async fn identical_bytes_in_the_catalog_are_linked_not_fetched() {
    rbee_model_provisioner::register_references();
    let vendor = Arc::new(Scripted::new(&[("m.gguf", b"shared weights")]));
    let s = setup(vendor.clone(), ProvisionerConfig::default());
    provision(
        &s.provisioner,
        "hf:o/r:Q4_K_M",
        &DownloadTracker::new("1".into()),
    )
    .await
    .unwrap();
    let tracker = DownloadTracker::new("2".into());
    let (_, mut rx) = tracker.subscribe();
    let second = provision(&s.provisioner, "hf:o/r", &tracker).await.unwrap();
    assert_eq!(vendor.download_count(), 1);
    assert_eq!(
        std::fs::read(&second.paths()[0]).unwrap(),
        b"shared weights"
    );
    assert!(
        drain(&mut rx)
            .iter()
            .any(|e| matches!(e.kind, EventKind::FileReused { .. }))
    );
}

#[tokio::test]
async fn dry_run_plans_without_writing() {
    rbee_model_provisioner::register_references();
    let vendor = Arc::new(Scripted::new(&[("m.gguf", b"0123456789")]));
    let s = setup(vendor.clone(), ProvisionerConfig::default());
    let plan = s
        .provisioner
        .plan(
            &r("hf:o/r"),
            &ProvisionOptions::default(),
            &CancellationToken::new(),
        )
        .await
        .unwrap();
    assert_eq!(plan.total_bytes, 10);
    assert_eq!(plan.bytes_to_fetch, 10);
    assert_eq!(plan.files[0].action, "fetch");
    assert!(plan.free_bytes.unwrap() > 0);
    assert!(s.catalog.list().unwrap().is_empty());
    assert_eq!(vendor.download_count(), 0);
}

#[tokio::test]
async fn an_unknown_scheme_is_a_typed_error() {
    rbee_model_provisioner::register_references();
    let s = setup(Arc::new(Scripted::default()), ProvisionerConfig::default());
    let err = provision(&s.provisioner, "gh:o/r", &DownloadTracker::new("j".into()))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Unsupported(_)));
    assert!(err.to_string().contains("gh:"));
}

/// Opens the gate of a gated vendor until `done` says every download is through.
async fn open_gate_until(vendor: &Scripted, mut done: impl FnMut() -> bool) {
    for _ in 0..1000 {
        if done() {
            return;
        }
        vendor.gate.notify_waiters();
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    panic!("the downloads did not finish");
}

fn selecting(include: &[&str]) -> ProvisionOptions {
    ProvisionOptions::new(ResolveOptions::with_globs(
        include.iter().map(|s| s.to_string()).collect(),
        vec![],
    ))
}

#[tokio::test]
async fn requests_with_other_selections_never_share_a_transfer_or_an_entry() {
    rbee_model_provisioner::register_references();
    let vendor = Arc::new(Scripted::gated(&[
        ("a.gguf", b"aaaa"),
        ("b.gguf", b"bbbbbb"),
    ]));
    let s = setup(
        vendor.clone(),
        ProvisionerConfig {
            reuse_by_digest: false,
            ..Default::default()
        },
    );
    let start = |options: ProvisionOptions, job: &str| {
        let p = s.provisioner.clone();
        let tracker = DownloadTracker::new(job.into());
        tokio::spawn(async move {
            p.provision(r("hf:o/r"), options, &tracker, CancellationToken::new())
                .await
        })
    };
    let all = start(ProvisionOptions::default(), "all");
    wait_until("the plain request starts", || vendor.download_count() == 1).await;
    let narrow = start(selecting(&["a.gguf"]), "narrow");
    wait_until("the narrow request starts a transfer of its own", || {
        vendor.download_count() == 2
    })
    .await;
    assert_eq!(s.provisioner.active_downloads().len(), 2);
    // The same selection, written with a repeat, joins the narrow transfer.
    let same = start(selecting(&["a.gguf", "a.gguf"]), "same");
    wait_until("the third request joins", || {
        s.provisioner.active_downloads().len() == 2
    })
    .await;
    open_gate_until(&vendor, || {
        all.is_finished() && narrow.is_finished() && same.is_finished()
    })
    .await;
    let (all, narrow, same) = (
        all.await.unwrap().unwrap(),
        narrow.await.unwrap().unwrap(),
        same.await.unwrap().unwrap(),
    );
    assert_eq!(vendor.download_count(), 2, "{:?}", vendor.downloads);
    assert_ne!(all.entry.dir, narrow.entry.dir);
    assert_eq!(narrow.entry.dir, same.entry.dir);
    assert_eq!(all.paths().len(), 2);
    assert_eq!(narrow.paths().len(), 1);
    assert_eq!(
        narrow.entry.record.selection.include(),
        ["a.gguf".to_string()]
    );

    // Asking for either again fetches nothing and leaves the other's files in place.
    for options in [ProvisionOptions::default(), selecting(&["a.gguf"])] {
        let again = s
            .provisioner
            .provision(
                r("hf:o/r"),
                options,
                &DownloadTracker::new("again".into()),
                CancellationToken::new(),
            )
            .await
            .unwrap();
        assert_eq!(again.outcome, Outcome::AlreadyReady);
    }
    assert_eq!(vendor.download_count(), 2);
    for p in all.paths().iter().chain(&narrow.paths()) {
        assert!(p.is_file(), "{}", p.display());
    }
}

#[tokio::test]
async fn sizes_that_overflow_when_summed_are_refused_before_any_byte() {
    rbee_model_provisioner::register_references();
    for check_disk_space in [true, false] {
        let vendor = Arc::new(Scripted::new(&[("m.gguf", b"x")]));
        for name in ["huge-1.gguf", "huge-2.gguf"] {
            vendor.extra_files.lock().unwrap().push(ResolvedFile {
                path: name.into(),
                size: Some(u64::MAX / 2 + 1),
                sha256: None,
                version: None,
                git_blob: None,
                source: FileSource::Http {
                    url: "http://vendor.invalid/huge".parse().unwrap(),
                },
            });
        }
        let s = setup(
            vendor.clone(),
            ProvisionerConfig {
                check_disk_space,
                ..Default::default()
            },
        );
        let err = provision(&s.provisioner, "hf:o/r", &DownloadTracker::new("j".into()))
            .await
            .unwrap_err();
        assert_eq!(err.code(), "protocol", "{err}");
        assert!(err.to_string().contains("16 EiB"), "{err}");
        assert_eq!(vendor.download_count(), 0);
    }
}

#[tokio::test]
async fn a_file_that_failed_verification_is_deleted_before_it_is_fetched_again() {
    rbee_model_provisioner::register_references();
    let vendor = Arc::new(Scripted::new(&[("m.gguf", b"published bytes")]));
    let s = setup(vendor.clone(), ProvisionerConfig::default());
    let got = provision(&s.provisioner, "hf:o/r", &DownloadTracker::new("1".into()))
        .await
        .unwrap();
    let path = got.paths()[0].clone();
    std::fs::write(&path, b"PUBLISHED BYTES").unwrap();
    let mut part = path.as_os_str().to_owned();
    part.push(".part");
    std::fs::write(&part, b"stale partial").unwrap();
    let report = s.provisioner.verify(&got.entry.record.id).await.unwrap();
    assert!(!report.ok());
    let entry = s.catalog.get(&got.entry.record.id).unwrap().unwrap();
    assert!(
        matches!(&entry.record.status, ArtifactStatus::Failed { suspect, .. } if suspect == &["m.gguf".to_string()]),
        "{:?}",
        entry.record.status
    );

    // A vendor that adopts whatever complete file it finds in place (as a resuming engine
    // would) must find nothing.
    let again = provision(&s.provisioner, "hf:o/r", &DownloadTracker::new("2".into()))
        .await
        .unwrap();
    assert_eq!(again.outcome, Outcome::Downloaded);
    assert_eq!(std::fs::read(&path).unwrap(), b"published bytes");
    assert!(
        !std::path::Path::new(&part).exists(),
        "the partial was kept"
    );
    assert_eq!(vendor.download_count(), 2);
}

#[tokio::test]
async fn a_cache_budget_evicts_the_least_recently_used_model_and_says_so() {
    rbee_model_provisioner::register_references();
    let vendor = Arc::new(Scripted::new(&[("m.gguf", &[5; 1000])]));
    let config = ProvisionerConfig {
        max_cache_bytes: Some(2500),
        // Separate copies, so that evicting one really frees its bytes.
        reuse_by_digest: false,
        ..Default::default()
    };
    let s = setup(vendor.clone(), config);
    for name in ["a", "b"] {
        let tracker = DownloadTracker::new(rbee_artifact::JobId(format!("job-{name}")));
        provision(&s.provisioner, &format!("hf:o/{name}"), &tracker)
            .await
            .unwrap();
    }
    let tracker = DownloadTracker::new("job-c".into());
    let (_, mut rx) = tracker.subscribe();
    provision(&s.provisioner, "hf:o/c", &tracker).await.unwrap();
    assert!(
        drain(&mut rx).iter().any(|e| matches!(&e.kind,
            EventKind::Message { message } if message.contains("evicted hf--o--a--default (1000 B freed)"))),
        "the eviction is announced"
    );
    assert!(s.catalog.get("hf--o--a--default").unwrap().is_none());
    assert!(s.catalog.get("hf--o--b--default").unwrap().is_some());
    assert!(s.catalog.get("hf--o--c--default").unwrap().is_some());
}

#[tokio::test]
async fn a_download_larger_than_the_budget_fails_before_any_byte() {
    rbee_model_provisioner::register_references();
    let vendor = Arc::new(Scripted::new(&[("m.gguf", &[5; 1000])]));
    let config = ProvisionerConfig {
        max_cache_bytes: Some(500),
        ..Default::default()
    };
    let s = setup(vendor.clone(), config);
    let err = provision(&s.provisioner, "hf:o/a", &DownloadTracker::new("j".into()))
        .await
        .unwrap_err();
    assert_eq!(err.code(), "over_budget", "{err}");
    assert!(err.to_string().contains("RBEE_MAX_CACHE_SIZE"), "{err}");
    assert_eq!(vendor.download_count(), 0);
}
