//! Servers that lie and local state that was tampered with: fake-hub's hostile mode and
//! planted files. Every case asserts that nothing wrong becomes final and the error is clear.

use std::path::{Path, PathBuf};
use std::time::Duration;

use rbee_artifact::{DownloadedFile, Error, GitBlobHasher, GitBlobId};
use rbee_fake_hub::{FakeHub, FakeHubConfig, Fault};
use rbee_transfer::{
    ApiRequest, FetchRequest, Transfer, TransferConfig, TransferError, TransferErrorKind,
};
use tokio_util::sync::CancellationToken;

use crate::common::*;

const MIB: usize = 1024 * 1024;
/// Long enough for any honest case here; an engine that loops on a lie fails instead of hanging.
const SAFETY: Duration = Duration::from_secs(60);

struct Setup {
    hub: FakeHub,
    data: Vec<u8>,
    root: tempfile::TempDir,
    out: tempfile::TempDir,
}

impl Setup {
    async fn new(size: usize) -> Self {
        let root = tempfile::tempdir().unwrap();
        let data = body(size);
        std::fs::write(root.path().join("m.bin"), &data).unwrap();
        let hub = FakeHub::start(FakeHubConfig::new(root.path()))
            .await
            .unwrap();
        Self {
            hub,
            data,
            root,
            out: tempfile::tempdir().unwrap(),
        }
    }

    /// Size and digest announced, as every vendor does when it can.
    fn request(&self) -> FetchRequest {
        let mut r = FetchRequest::new("m.bin", self.hub.file_url("m.bin"));
        r.expected_size = Some(self.data.len() as u64);
        r.sha256 = Some(digest(&self.data));
        r
    }

    /// Size announced, no digest (a URL without `#sha256=`).
    fn sized(&self) -> FetchRequest {
        let mut r = self.request();
        r.sha256 = None;
        r
    }

    fn dest(&self) -> PathBuf {
        self.out.path().join("m.bin")
    }

    fn part(&self) -> PathBuf {
        self.out.path().join("m.bin.part")
    }

    /// Fetches, failing the test as soon as the partial grows past the announced size (so an
    /// engine that writes an endless body fails here instead of filling the disk).
    async fn fetch(
        &self,
        t: &Transfer,
        req: &FetchRequest,
    ) -> Result<DownloadedFile, TransferError> {
        let tr = tracker();
        let p = tr.file(
            "m.bin",
            req.expected_size,
            t.bytes_on_disk(req, &self.dest()),
        );
        let dest = self.dest();
        let cancel = CancellationToken::new();
        let fetch = t.fetch(req, &dest, &p, &cancel);
        let part = self.part();
        let limit = req.expected_size.unwrap_or(u64::MAX);
        let guard = async {
            loop {
                let len = std::fs::metadata(&part).map_or(0, |m| m.len());
                assert!(
                    len <= limit,
                    "{len} bytes written for a file announced at {limit}"
                );
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        };
        tokio::select! {
            r = fetch => r,
            () = guard => unreachable!(),
            () = tokio::time::sleep(SAFETY) => panic!("the engine must not loop or wait forever on a lying server"),
        }
    }

    /// Starts a fetch, waits until at least `bytes` of it are hashed and saved for a resume,
    /// then drops it as a killed process would leave it.
    async fn interrupt_after(&self, t: &Transfer, req: &FetchRequest, bytes: u64) {
        let tr = tracker();
        let p = tr.file("m.bin", req.expected_size, 0);
        let cancel = CancellationToken::new();
        let dest = self.dest();
        let fetch = t.fetch(req, &dest, &p, &cancel);
        let state = self.out.path().join("m.bin.part.state");
        let watch = async {
            loop {
                if hashed_in_state(&state) >= bytes {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        };
        tokio::select! {
            r = fetch => panic!("the first run was to be interrupted, it ended: {r:?}"),
            () = watch => {}
            () = tokio::time::sleep(SAFETY) => panic!("never saved {bytes} hashed bytes"),
        }
        assert!(!self.dest().exists());
    }

    fn replace_file(&self, data: &[u8]) {
        let path = self.root.path().join("m.bin");
        let tmp = self.root.path().join("m.bin.new");
        std::fs::write(&tmp, data).unwrap();
        std::fs::rename(tmp, path).unwrap();
    }

    /// Nothing wrong is final: no file at `dest` unless it holds `want`, no partial left over.
    fn assert_nothing_wrong(&self) {
        if let Ok(bytes) = std::fs::read(self.dest()) {
            panic!(
                "a file of {} bytes was published from a lying server",
                bytes.len()
            );
        }
    }
}

/// The git blob id of `bytes`.
fn blob_of(bytes: &[u8]) -> GitBlobId {
    let mut h = GitBlobHasher::new(bytes.len() as u64);
    h.update(bytes);
    h.finalize()
}

fn hashed_in_state(state: &Path) -> u64 {
    std::fs::read(state)
        .ok()
        .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
        .and_then(|v| v.get("hashed").and_then(serde_json::Value::as_u64))
        .unwrap_or(0)
}

fn single() -> Transfer {
    Transfer::new(TransferConfig {
        parallel_threshold: 1 << 40,
        ..config()
    })
    .unwrap()
}

fn parallel() -> Transfer {
    Transfer::new(TransferConfig {
        parallel_threshold: MIB as u64,
        ..config()
    })
    .unwrap()
}

#[tokio::test]
async fn endless_body_is_cut_at_the_announced_size() {
    for ignore_range in [true, false] {
        for digest in [true, false] {
            let s = Setup::new(2 * MIB).await;
            let mut faults = vec![Fault::endless_body().path("m.bin")];
            if ignore_range {
                faults.push(Fault::ignore_range().path("m.bin"));
            }
            s.hub.set_faults(faults);
            let req = if digest { s.request() } else { s.sized() };
            let err = s.fetch(&single(), &req).await.unwrap_err();
            assert_eq!(err.kind(), TransferErrorKind::Protocol, "{err}");
            let text = err.to_string();
            assert!(
                text.contains(&format!("more than the {} bytes announced", s.data.len())),
                "{text}"
            );
            s.assert_nothing_wrong();
            assert!(!s.part().exists(), "the partial of a lying body is removed");
        }
    }
}

#[tokio::test]
async fn body_longer_than_announced_is_refused_in_parallel_too() {
    let s = Setup::new(3 * MIB).await;
    s.hub
        .set_faults(vec![Fault::long_body(512 * 1024).path("m.bin")]);
    let err = s.fetch(&parallel(), &s.sized()).await.unwrap_err();
    assert!(err.to_string().contains("more than the"), "{err}");
    s.assert_nothing_wrong();
}

#[tokio::test]
async fn a_body_without_length_that_ends_at_the_size_is_fine() {
    let s = Setup::new(2 * MIB).await;
    s.hub
        .set_faults(vec![Fault::no_content_length().path("m.bin")]);
    let got = s.fetch(&parallel(), &s.sized()).await.unwrap();
    assert_eq!(got.sha256, digest(&s.data));
    assert_eq!(std::fs::read(s.dest()).unwrap(), s.data);
}

#[tokio::test]
async fn content_range_without_total_is_not_the_whole_file() {
    let s = Setup::new(2 * MIB).await;
    // Bytes 0-999 of a file of unknown length, while the body goes on.
    s.hub
        .set_faults(vec![Fault::content_range("bytes 0-999/*").path("m.bin")]);
    let mut req = s.sized();
    req.expected_size = None;
    let err = s.fetch(&single(), &req).await.unwrap_err();
    assert_eq!(err.kind(), TransferErrorKind::Protocol);
    assert!(err.to_string().contains("without saying how long"), "{err}");
    s.assert_nothing_wrong();

    // With the size known from the vendor, a server hiding it is no problem.
    s.hub.set_faults(vec![
        Fault::content_range("bytes {start}-{end}/*").path("m.bin"),
    ]);
    let got = s.fetch(&parallel(), &s.request()).await.unwrap();
    assert_eq!(got.size, s.data.len() as u64);
    assert_eq!(std::fs::read(s.dest()).unwrap(), s.data);
}

#[tokio::test]
async fn content_range_for_another_range_or_size_is_refused() {
    let s = Setup::new(3 * MIB).await;
    // Every range is labelled as starting at 0.
    s.hub.set_faults(vec![
        Fault::content_range("bytes 0-{end}/{total}").path("m.bin"),
    ]);
    let err = s.fetch(&parallel(), &s.request()).await.unwrap_err();
    assert!(err.to_string().contains("giving up"), "{err}");
    s.assert_nothing_wrong();
    // Another total than announced.
    s.hub.set_faults(vec![
        Fault::content_range("bytes {start}-{end}/9999999").path("m.bin"),
    ]);
    let err = s.fetch(&parallel(), &s.request()).await.unwrap_err();
    assert_eq!(Error::from(err).code(), "size_mismatch");
    s.assert_nothing_wrong();
}

#[tokio::test]
async fn validators_that_change_on_every_answer_never_mix_ranges() {
    let s = Setup::new(3 * MIB).await;
    s.hub
        .set_faults(vec![Fault::changing_validators().path("m.bin")]);
    for req in [s.sized(), s.request()] {
        // Its If-Range never matches either, so it answers ranges with the whole file.
        let err = s.fetch(&parallel(), &req).await.unwrap_err();
        assert!(err.to_string().contains("giving up"), "{err}");
        s.assert_nothing_wrong();
    }
    // One answer is one version: a single connection still works.
    let got = s.fetch(&single(), &s.sized()).await.unwrap();
    assert_eq!(got.sha256, digest(&s.data));
}

#[tokio::test]
async fn without_validators_or_digest_ranges_are_not_combined() {
    let s = Setup::new(3 * MIB).await;
    s.hub.set_faults(vec![Fault::no_validators().path("m.bin")]);
    let got = s.fetch(&parallel(), &s.sized()).await.unwrap();
    assert_eq!(std::fs::read(s.dest()).unwrap(), s.data);
    assert_eq!(got.sha256, digest(&s.data));
    // One request for the whole file, after the probe: nothing to stitch together.
    let ranged: Vec<String> = s
        .hub
        .requests()
        .into_iter()
        .filter_map(|r| r.range)
        .collect();
    assert!(ranged.len() <= 2, "{ranged:?}");
}

/// The remote changes between two runs; its new answers carry no validators and it ignores
/// `If-Range`, so a resume would splice the new bytes onto the old ones.
#[tokio::test]
async fn vanished_validators_and_ignored_if_range_restart_instead_of_mixing() {
    let s = Setup::new(3 * MIB).await;
    s.hub
        .set_faults(vec![Fault::hang(MIB as u64).path("m.bin").times(1)]);
    s.interrupt_after(&single(), &s.sized(), MIB as u64 / 2)
        .await;
    let v2: Vec<u8> = s.data.iter().map(|b| b ^ 0x33).collect();
    s.replace_file(&v2);
    s.hub.set_faults(vec![
        Fault::no_validators().path("m.bin"),
        Fault::ignore_if_range().path("m.bin"),
    ]);
    let got = s.fetch(&single(), &s.sized()).await.unwrap();
    assert_eq!(
        std::fs::read(s.dest()).unwrap(),
        v2,
        "all of v2, none of v1"
    );
    assert_eq!(got.sha256, digest(&v2));
}

/// Same change under a published digest: the resume may go ahead (the digest is the proof),
/// and the mismatch it ends in restarts cleanly instead of failing or publishing.
#[tokio::test]
async fn a_mixed_resume_under_a_digest_restarts_cleanly() {
    let s = Setup::new(3 * MIB).await;
    let v2: Vec<u8> = s.data.iter().map(|b| b ^ 0x33).collect();
    // The vendor already lists v2; the server still serves v1 for a while.
    let mut req = s.request();
    req.sha256 = Some(digest(&v2));
    s.hub
        .set_faults(vec![Fault::hang(MIB as u64).path("m.bin").times(1)]);
    s.interrupt_after(&single(), &req, MIB as u64 / 2).await;
    s.replace_file(&v2);
    s.hub.set_faults(vec![
        Fault::no_validators().path("m.bin"),
        Fault::ignore_if_range().path("m.bin"),
    ]);
    let got = s.fetch(&single(), &req).await.unwrap();
    assert_eq!(std::fs::read(s.dest()).unwrap(), v2);
    assert_eq!(got.sha256, digest(&v2));
}

/// A byte of the already-hashed prefix of `.part` changes between two runs.
#[tokio::test]
async fn a_tampered_partial_is_detected_on_resume() {
    for with_digest in [false, true] {
        let s = Setup::new(3 * MIB).await;
        let req = if with_digest { s.request() } else { s.sized() };
        s.hub
            .set_faults(vec![Fault::hang(2 * MIB as u64).path("m.bin").times(1)]);
        s.interrupt_after(&single(), &req, MIB as u64).await;
        let part = std::fs::OpenOptions::new()
            .write(true)
            .open(s.part())
            .unwrap();
        std::os::unix::fs::FileExt::write_all_at(&part, &[s.data[1000] ^ 0xff], 1000).unwrap();
        drop(part);
        s.hub.reset_counters();
        let got = s.fetch(&single(), &req).await.unwrap();
        assert_eq!(
            std::fs::read(s.dest()).unwrap(),
            s.data,
            "digest {with_digest}"
        );
        assert_eq!(got.sha256, digest(&s.data));
        assert_eq!(
            s.hub.counters_for("/files/m.bin").bytes_sent,
            s.data.len() as u64,
            "fetched again from the start"
        );
    }
}

/// Without a digest, written ranges past the hashed prefix prove nothing after a restart and
/// are fetched again; with one, they are kept.
#[tokio::test]
async fn without_a_digest_only_the_hashed_prefix_is_resumed() {
    let s = Setup::new(3 * MIB).await;
    s.hub
        .set_faults(vec![Fault::hang(2 * MIB as u64).path("m.bin").times(1)]);
    s.interrupt_after(&single(), &s.sized(), MIB as u64).await;
    let t = single();
    let kept = t.bytes_on_disk(&s.sized(), &s.dest());
    assert!(kept >= MIB as u64 && kept <= 2 * MIB as u64, "{kept}");
    s.hub.reset_counters();
    s.fetch(&t, &s.sized()).await.unwrap();
    assert_eq!(std::fs::read(s.dest()).unwrap(), s.data);
    assert_eq!(
        s.hub.counters_for("/files/m.bin").bytes_sent,
        s.data.len() as u64 - kept
    );
}

#[tokio::test]
async fn a_same_size_file_without_digest_is_fetched_again() {
    let s = Setup::new(MIB).await;
    // Left by an earlier download whose bytes were changed since (or failed verification).
    let mut wrong = s.data.clone();
    wrong[12345] ^= 0x01;
    std::fs::write(s.dest(), &wrong).unwrap();
    let req = s.sized();
    assert_eq!(single().bytes_on_disk(&req, &s.dest()), 0);
    let got = s.fetch(&single(), &req).await.unwrap();
    assert_eq!(got.sha256, digest(&s.data));
    assert_eq!(std::fs::read(s.dest()).unwrap(), s.data);
    // With the digest, a right file is adopted without a byte moved.
    s.hub.reset_counters();
    s.fetch(&single(), &s.request()).await.unwrap();
    assert_eq!(s.hub.counters_for("/files/m.bin").requests, 0);
}

#[tokio::test]
async fn a_file_whose_git_blob_id_differs_is_never_put_in_place() {
    let s = Setup::new(2 * MIB).await;
    let mut listed = s.data.clone();
    listed[MIB + 7] ^= 0x01;
    for t in [single(), parallel()] {
        // The vendor published the blob id of other bytes of the same size.
        let mut req = s.sized();
        req.git_blob = Some(blob_of(&listed));
        let err = s.fetch(&t, &req).await.unwrap_err();
        assert_eq!(err.kind(), TransferErrorKind::Integrity, "{err}");
        match Error::from(err) {
            Error::Integrity {
                path,
                expected,
                actual,
            } => {
                assert_eq!(path, "m.bin");
                assert_eq!(expected, blob_of(&listed).into());
                assert_eq!(actual, blob_of(&s.data).into());
            }
            other => panic!("{other:?}"),
        }
        s.assert_nothing_wrong();
        // The right one is put in place.
        req.git_blob = Some(blob_of(&s.data));
        s.fetch(&t, &req).await.unwrap();
        assert_eq!(std::fs::read(s.dest()).unwrap(), s.data);
        std::fs::remove_file(s.dest()).unwrap();
    }
}

/// A complete file in the way is adopted only when every digest the request names agrees:
/// its sha256 matching is not enough when the git blob id names other bytes.
#[tokio::test]
async fn a_file_in_the_way_whose_git_blob_id_differs_is_not_adopted() {
    let s = Setup::new(MIB).await;
    std::fs::write(s.dest(), &s.data).unwrap();
    let mut other = s.data.clone();
    other[4321] ^= 0x01;
    let mut req = s.request();
    req.git_blob = Some(blob_of(&other));
    let err = s.fetch(&single(), &req).await.unwrap_err();
    assert_eq!(err.kind(), TransferErrorKind::Integrity, "{err}");
    assert!(
        s.hub.counters_for("/files/m.bin").requests > 0,
        "the file in the way was not adopted"
    );
    // Both digests agree: adopted without a byte moved.
    s.hub.reset_counters();
    req.git_blob = Some(blob_of(&s.data));
    s.fetch(&single(), &req).await.unwrap();
    assert_eq!(s.hub.counters_for("/files/m.bin").requests, 0);
    assert_eq!(std::fs::read(s.dest()).unwrap(), s.data);
}

#[tokio::test]
async fn planted_links_are_never_written_through() {
    let s = Setup::new(MIB).await;
    let victim = s.out.path().join("victim.txt");
    std::fs::write(&victim, b"do not touch").unwrap();
    let state_victim = s.out.path().join("state-victim.txt");
    std::fs::write(&state_victim, b"nor this").unwrap();
    std::os::unix::fs::symlink(&victim, s.part()).unwrap();
    std::os::unix::fs::symlink(&state_victim, s.out.path().join("m.bin.part.state")).unwrap();
    std::os::unix::fs::symlink(&victim, s.out.path().join("m.bin.part.lock")).unwrap();
    for req in [s.sized(), s.request()] {
        let _ = std::fs::remove_file(s.dest());
        s.fetch(&single(), &req).await.unwrap();
        assert_eq!(std::fs::read(&victim).unwrap(), b"do not touch");
        assert_eq!(std::fs::read(&state_victim).unwrap(), b"nor this");
        let meta = std::fs::symlink_metadata(s.dest()).unwrap();
        assert!(meta.is_file(), "a real file is published");
        assert_eq!(std::fs::read(s.dest()).unwrap(), s.data);
    }
    // A link at the destination is not adopted as the file: it is replaced by a real one.
    std::fs::remove_file(s.dest()).unwrap();
    let outside = s.out.path().join("outside.bin");
    std::fs::write(&outside, &s.data).unwrap();
    std::os::unix::fs::symlink(&outside, s.dest()).unwrap();
    s.fetch(&single(), &s.request()).await.unwrap();
    assert!(std::fs::symlink_metadata(s.dest()).unwrap().is_file());
}

#[tokio::test]
async fn a_server_that_never_answers_frees_the_download_quickly() {
    let s = Setup::new(MIB).await;
    s.hub.set_faults(vec![Fault::no_response().path("m.bin")]);
    let t = Transfer::new(TransferConfig {
        response_timeout: Duration::from_millis(300),
        ..config()
    })
    .unwrap();
    let err = s.fetch(&t, &s.request()).await.unwrap_err();
    assert_eq!(err.kind(), TransferErrorKind::NoResponse, "{err}");
    assert!(
        err.to_string().contains("sent no response within 0.3 s"),
        "{err}"
    );
    assert_eq!(
        s.hub.counters_for("/files/m.bin").requests,
        2,
        "one retry, not six"
    );
    s.assert_nothing_wrong();
    // API calls too.
    let err = t
        .send(
            ApiRequest::get(s.hub.file_url("m.bin")),
            &CancellationToken::new(),
        )
        .await
        .unwrap_err();
    assert_eq!(err.kind(), TransferErrorKind::NoResponse, "{err}");
    assert_eq!(
        config().response_timeout,
        TransferConfig::default().response_timeout
    );
    assert!(TransferConfig::default().response_timeout <= Duration::from_secs(30));
}

#[tokio::test]
async fn a_server_that_never_answers_frees_a_header_read_quickly() {
    let s = Setup::new(MIB).await;
    s.hub.set_faults(vec![Fault::no_response().path("m.bin")]);
    let t = Transfer::new(TransferConfig {
        response_timeout: Duration::from_millis(300),
        ..config()
    })
    .unwrap();
    let reader = t.range_reader(s.request());
    let err = reader
        .read(0, 4096, &CancellationToken::new())
        .await
        .unwrap_err();
    assert_eq!(err.kind(), TransferErrorKind::NoResponse, "{err}");
    assert_eq!(
        s.hub.counters_for("/files/m.bin").requests,
        2,
        "one retry, not one per attempt"
    );
}

#[tokio::test]
async fn redirects_to_other_schemes_and_hosts_are_refused_or_verified() {
    let s = Setup::new(MIB).await;
    for target in ["file:///etc/passwd", "ftp://127.0.0.1/m.bin", "data:,hello"] {
        s.hub
            .set_faults(vec![Fault::redirect_to(target).path("m.bin")]);
        let err = s.fetch(&single(), &s.request()).await.unwrap_err();
        assert!(
            err.to_string().contains("unsupported scheme"),
            "{target}: {err}"
        );
        s.assert_nothing_wrong();
    }
    // Another host serving other bytes: followed, and the digest refuses them.
    std::fs::write(s.root.path().join("other.bin"), &body(MIB + 1)[1..]).unwrap();
    let elsewhere = s.hub.cdn_file_url("other.bin");
    s.hub.set_faults(vec![
        Fault::redirect_to(elsewhere.as_str())
            .path("m.bin")
            .on(rbee_fake_hub::Host::Hub),
    ]);
    let err = s.fetch(&single(), &s.request()).await.unwrap_err();
    assert_eq!(err.kind(), TransferErrorKind::Integrity, "{err}");
    s.assert_nothing_wrong();
}
