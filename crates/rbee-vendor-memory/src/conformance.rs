//! The behaviour every vendor owes its callers, as functions any vendor's tests can run.
//!
//! Each function takes a [`Fixture`] (a vendor, a reference it serves, and the bytes each file
//! must have once downloaded) and a destination folder, and panics with a message naming the
//! broken promise. A vendor crate runs them against its own backend on loopback (fake-hub,
//! wiremock, a temp folder); see `tests/conformance.rs` in each vendor crate.
//!
//! | function | promise |
//! |---|---|
//! | [`resolve_moves_no_bytes`] | resolving lists every file with true sizes and digests, writes nothing |
//! | [`download_reports_progress`] | every file arrives intact under its final name, counted in the tracker |
//! | [`cancelled_download_keeps_no_final_file`] | a cancelled download is [`Error::Cancelled`] and publishes nothing |
//! | [`repeat_download_is_idempotent`] | downloading again gives the same files, no leftovers |
//! | [`integrity_failure_is_never_ready`] | bytes that do not match their digest never reach a final name |
//! | [`resumes_after_interruption`] | a download stopped part way continues from its partial |

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rbee_artifact::{
    ArtifactRef, DownloadTracker, DownloadedFile, Error, EventKind, JobId, ProgressEvent,
    ResolveOptions, ResolvedArtifact, Result, Sha256Digest, VendorSource, partial,
};
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

/// How long a conformance step may take before the suite calls it hung (a safety net only).
const STEP_LIMIT: Duration = Duration::from_secs(120);

/// A vendor under test and an artifact it serves.
#[derive(Debug, Clone)]
pub struct Fixture {
    /// The vendor.
    pub vendor: Arc<dyn VendorSource>,
    /// A reference the vendor resolves to exactly [`files`](Self::files).
    pub reference: ArtifactRef,
    /// Options for resolving (globs, offline).
    pub options: ResolveOptions,
    /// Each file's path within the artifact and the bytes it must hold once downloaded.
    pub files: Vec<(String, Vec<u8>)>,
}

impl Fixture {
    /// A fixture with default resolve options.
    pub fn new(
        vendor: Arc<dyn VendorSource>,
        reference: ArtifactRef,
        files: &[(&str, &[u8])],
    ) -> Self {
        Self {
            vendor,
            reference,
            options: ResolveOptions::default(),
            files: files
                .iter()
                .map(|(p, b)| (p.to_string(), b.to_vec()))
                .collect(),
        }
    }

    async fn resolve(&self) -> Result<ResolvedArtifact> {
        within(
            "resolve",
            self.vendor
                .resolve(&self.reference, &self.options, &CancellationToken::new()),
        )
        .await
    }

    async fn download(
        &self,
        dest: &Path,
        tracker: &DownloadTracker,
        cancel: &CancellationToken,
    ) -> Result<Vec<DownloadedFile>> {
        let plan = self.resolve().await?;
        within(
            "download",
            self.vendor
                .download(&plan, &plan.files, dest, tracker, cancel),
        )
        .await
    }

    fn expected(&self, path: &str) -> &[u8] {
        &self
            .files
            .iter()
            .find(|(p, _)| p == path)
            .unwrap_or_else(|| {
                panic!("the vendor returned {path}, which the fixture does not list")
            })
            .1
    }
}

/// Resolving lists exactly the fixture's files, with their sizes and digests where the vendor
/// gives them, and writes nothing into `dest`.
pub async fn resolve_moves_no_bytes(fixture: &Fixture, dest: &Path) -> ResolvedArtifact {
    let plan = fixture
        .resolve()
        .await
        .unwrap_or_else(|e| panic!("resolving {} failed: {e}", fixture.reference));
    assert_eq!(
        plan.reference.scheme(),
        fixture.reference.scheme(),
        "the plan names another vendor's reference"
    );
    let mut listed: Vec<&str> = plan.files.iter().map(|f| f.path.as_str()).collect();
    listed.sort_unstable();
    let mut wanted: Vec<&str> = fixture.files.iter().map(|(p, _)| p.as_str()).collect();
    wanted.sort_unstable();
    assert_eq!(
        listed, wanted,
        "the plan lists other files than the fixture"
    );
    for file in &plan.files {
        let bytes = fixture.expected(&file.path);
        if let Some(size) = file.size {
            assert_eq!(size, bytes.len() as u64, "{}: announced size", file.path);
        }
        if let Some(sha256) = file.sha256 {
            assert_eq!(
                sha256,
                Sha256Digest::of(bytes),
                "{}: published digest",
                file.path
            );
        }
    }
    assert_eq!(
        files_under(dest),
        Vec::<String>::new(),
        "resolving wrote into the destination"
    );
    plan
}

/// A download puts every file, intact, under its final name, leaves no partial files, returns
/// true sizes and digests, and counts every byte in the tracker.
pub async fn download_reports_progress(fixture: &Fixture, dest: &Path) -> Vec<ProgressEvent> {
    let tracker = DownloadTracker::new(JobId("conformance".into()));
    let (_, mut events) = tracker.subscribe();
    let downloaded = fixture
        .download(dest, &tracker, &CancellationToken::new())
        .await
        .unwrap_or_else(|e| panic!("downloading {} failed: {e}", fixture.reference));
    assert_complete(fixture, dest, &downloaded);
    let total: u64 = fixture.files.iter().map(|(_, b)| b.len() as u64).sum();
    assert!(
        tracker.bytes() >= total,
        "the tracker counted {} of {total} bytes",
        tracker.bytes()
    );
    let events = drain(&mut events);
    for (path, _) in &fixture.files {
        assert!(
            events.iter().any(|e| matches!(
                &e.kind,
                EventKind::FileStarted { path: p, .. } if p == path
            )),
            "no file_started event for {path}"
        );
        assert!(
            events
                .iter()
                .all(|e| e.job_id == JobId("conformance".into())),
            "an event lost its job id"
        );
    }
    events
}

/// A download whose token is already cancelled returns [`Error::Cancelled`] and publishes no
/// file under its final name.
pub async fn cancelled_download_keeps_no_final_file(fixture: &Fixture, dest: &Path) {
    let tracker = DownloadTracker::new(JobId("conformance".into()));
    let cancel = CancellationToken::new();
    cancel.cancel();
    match fixture.download(dest, &tracker, &cancel).await {
        Err(Error::Cancelled) => {}
        other => panic!("a cancelled download must be Error::Cancelled, got {other:?}"),
    }
    for (path, _) in &fixture.files {
        assert!(
            !dest.join(path).exists(),
            "{path} was published by a cancelled download"
        );
    }
}

/// Downloading the same artifact twice into one folder succeeds both times with the same
/// files and no leftovers.
pub async fn repeat_download_is_idempotent(fixture: &Fixture, dest: &Path) {
    for round in 1..=2 {
        let tracker = DownloadTracker::new(JobId(format!("conformance-{round}")));
        let downloaded = fixture
            .download(dest, &tracker, &CancellationToken::new())
            .await
            .unwrap_or_else(|e| panic!("download {round} of {} failed: {e}", fixture.reference));
        assert_complete(fixture, dest, &downloaded);
    }
}

/// `fixture`'s vendor serves bytes for `corrupted` that do not match the digest it publishes:
/// the download fails with a typed integrity error and `corrupted` never appears under its
/// final name.
pub async fn integrity_failure_is_never_ready(fixture: &Fixture, dest: &Path, corrupted: &str) {
    let tracker = DownloadTracker::new(JobId("conformance".into()));
    match fixture
        .download(dest, &tracker, &CancellationToken::new())
        .await
    {
        Err(e) => assert_eq!(
            e.code(),
            "integrity",
            "wrong bytes must fail as an integrity error, got: {e}"
        ),
        Ok(files) => panic!("bytes that do not match their digest were accepted: {files:?}"),
    }
    assert!(
        !dest.join(corrupted).exists(),
        "{corrupted} reached its final name with bytes that do not match its digest"
    );
    for (path, bytes) in &fixture.files {
        if let Ok(on_disk) = std::fs::read(dest.join(path)) {
            assert_eq!(
                &on_disk, bytes,
                "{path} is at its final name with wrong bytes"
            );
        }
    }
}

/// `fixture`'s vendor is arranged to stall its next download part way (after some bytes,
/// before the end). The suite waits for the first bytes, cancels, and downloads again: the
/// second download completes with the right bytes and continues at least one file from its
/// partial (`file_started` with `resumed_from > 0`). Returns the second download's events.
pub async fn resumes_after_interruption(fixture: &Fixture, dest: &Path) -> Vec<ProgressEvent> {
    let first = DownloadTracker::new(JobId("conformance-interrupted".into()));
    let cancel = CancellationToken::new();
    let download = {
        let (fixture, dest, first, cancel) = (
            fixture.clone(),
            dest.to_path_buf(),
            first.clone(),
            cancel.clone(),
        );
        tokio::spawn(async move { fixture.download(&dest, &first, &cancel).await })
    };
    let (_, mut events) = first.subscribe();
    within("the first bytes of the interrupted download", async {
        while first.bytes() == 0 {
            tokio::select! {
                _ = events.recv() => {}
                () = tokio::time::sleep(Duration::from_millis(10)) => {}
            }
        }
        Ok(())
    })
    .await
    .expect("waiting for bytes");
    cancel.cancel();
    match download.await.expect("the download task panicked") {
        Err(Error::Cancelled) => {}
        other => panic!("the interrupted download must end as Error::Cancelled, got {other:?}"),
    }
    for (path, bytes) in &fixture.files {
        if let Ok(on_disk) = std::fs::read(dest.join(path)) {
            assert_eq!(
                &on_disk, bytes,
                "{path} is at its final name with wrong bytes"
            );
        }
    }

    let second = DownloadTracker::new(JobId("conformance-resumed".into()));
    let (_, mut events) = second.subscribe();
    let downloaded = fixture
        .download(dest, &second, &CancellationToken::new())
        .await
        .unwrap_or_else(|e| panic!("the download after the interruption failed: {e}"));
    assert_complete(fixture, dest, &downloaded);
    let events = drain(&mut events);
    assert!(
        events.iter().any(
            |e| matches!(e.kind, EventKind::FileStarted { resumed_from, .. } if resumed_from > 0)
        ),
        "no file continued from its partial after the interruption: {events:?}"
    );
    events
}

/// Every fixture file is at its final name with its bytes, the returned records match, and no
/// partial file is left beside them.
fn assert_complete(fixture: &Fixture, dest: &Path, downloaded: &[DownloadedFile]) {
    for file in downloaded {
        let bytes = fixture.expected(&file.path);
        assert_eq!(
            file.size,
            bytes.len() as u64,
            "{}: returned size",
            file.path
        );
        assert_eq!(
            file.sha256,
            Sha256Digest::of(bytes),
            "{}: returned digest",
            file.path
        );
    }
    for (path, bytes) in &fixture.files {
        let on_disk = std::fs::read(dest.join(path))
            .unwrap_or_else(|e| panic!("{path} is not at its final name: {e}"));
        assert!(on_disk == *bytes, "{path}: the bytes on disk differ");
    }
    let leftovers: Vec<String> = files_under(dest)
        .into_iter()
        .filter(|name| partial::is_reserved_name(name))
        .collect();
    assert!(
        leftovers.is_empty(),
        "partial files were left: {leftovers:?}"
    );
}

/// Every file below `dir`, relative, sorted.
fn files_under(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else if let Ok(rel) = path.strip_prefix(dir) {
                out.push(rel.to_string_lossy().into_owned());
            }
        }
    }
    out.sort();
    out
}

fn drain(events: &mut broadcast::Receiver<ProgressEvent>) -> Vec<ProgressEvent> {
    let mut out = Vec::new();
    loop {
        match events.try_recv() {
            Ok(e) => out.push(e),
            Err(broadcast::error::TryRecvError::Lagged(_)) => continue,
            Err(_) => return out,
        }
    }
}

async fn within<T>(what: &str, step: impl Future<Output = Result<T>>) -> Result<T> {
    tokio::time::timeout(STEP_LIMIT, step)
        .await
        .unwrap_or_else(|_| panic!("{what} did not finish within {STEP_LIMIT:?}"))
}
