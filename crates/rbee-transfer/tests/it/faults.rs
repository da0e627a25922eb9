//! One test per fault, against the project's fake hub (real sockets: drops, stalls, lies).

use std::path::PathBuf;
use std::time::{Duration, Instant};

use rbee_artifact::Error;
use rbee_fake_hub::{FakeHub, FakeHubConfig, Fault};
use rbee_transfer::{FetchRequest, Transfer, TransferConfig, TransferErrorKind};
use tokio_util::sync::CancellationToken;

use crate::common::*;

const MIB: usize = 1024 * 1024;

struct Setup {
    hub: FakeHub,
    data: Vec<u8>,
    _root: tempfile::TempDir,
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
            _root: root,
            out: tempfile::tempdir().unwrap(),
        }
    }

    fn request(&self) -> FetchRequest {
        let mut r = FetchRequest::new("m.bin", self.hub.file_url("m.bin"));
        r.expected_size = Some(self.data.len() as u64);
        r.sha256 = Some(digest(&self.data));
        r
    }

    fn dest(&self) -> PathBuf {
        self.out.path().join("m.bin")
    }

    async fn fetch_with(
        &self,
        t: &Transfer,
        req: &FetchRequest,
    ) -> Result<rbee_artifact::DownloadedFile, rbee_transfer::TransferError> {
        let tr = tracker();
        let p = tr.file(
            "m.bin",
            req.expected_size,
            t.bytes_on_disk(req, &self.dest()),
        );
        t.fetch(req, &self.dest(), &p, &CancellationToken::new())
            .await
    }

    fn sent(&self) -> u64 {
        self.hub.counters_for("/files/m.bin").bytes_sent
    }

    fn assert_complete(&self) {
        assert_eq!(std::fs::read(self.dest()).unwrap(), self.data);
        assert_eq!(listing(self.out.path()), vec!["m.bin"]);
    }
}

#[tokio::test]
async fn connection_drop_mid_body_resumes_from_the_bytes_on_disk() {
    let s = Setup::new(3 * MIB).await;
    // Single connection (below the parallel threshold), cut twice.
    s.hub
        .set_faults(vec![Fault::drop_after(700 * 1024).path("m.bin").times(2)]);
    let t = Transfer::new(TransferConfig {
        parallel_threshold: 64 * MIB as u64,
        ..config()
    })
    .unwrap();
    s.fetch_with(&t, &s.request()).await.unwrap();
    s.assert_complete();
    // Each retry asked only for what was missing.
    let c = s.hub.counters_for("/files/m.bin");
    assert_eq!(c.requests, 3, "{c:?}");
    assert!(
        c.ranges[1].starts_with(&format!("bytes={}-", 700 * 1024)),
        "{:?}",
        c.ranges
    );
    assert_eq!(s.sent(), s.data.len() as u64);
}

#[tokio::test]
async fn connection_drops_in_parallel_ranges_are_retried() {
    let s = Setup::new(4 * MIB).await;
    s.hub
        .set_faults(vec![Fault::drop_after(100 * 1024).path("m.bin").times(3)]);
    s.fetch_with(&transfer(), &s.request()).await.unwrap();
    s.assert_complete();
    assert_eq!(s.sent(), s.data.len() as u64, "no byte fetched twice");
}

#[tokio::test]
async fn server_errors_are_retried() {
    let s = Setup::new(MIB).await;
    s.hub.set_faults(vec![
        Fault::status(503).path("m.bin").times(1),
        Fault::status(500).path("m.bin").times(1),
    ]);
    s.fetch_with(&transfer(), &s.request()).await.unwrap();
    s.assert_complete();
    assert_eq!(s.hub.counters_for("/files/m.bin").status(503), 1);
}

#[tokio::test]
async fn too_many_requests_waits_as_asked() {
    let s = Setup::new(MIB).await;
    s.hub
        .set_faults(vec![Fault::too_many_requests(1).path("m.bin").times(1)]);
    let start = Instant::now();
    s.fetch_with(&transfer(), &s.request()).await.unwrap();
    assert!(start.elapsed() >= Duration::from_millis(950));
    s.assert_complete();
}

#[tokio::test]
async fn persistent_failure_reports_url_and_attempts() {
    let s = Setup::new(MIB).await;
    s.hub.set_faults(vec![Fault::status(503).path("m.bin")]);
    let t = Transfer::new(TransferConfig {
        max_attempts: 3,
        ..config()
    })
    .unwrap();
    let err = s.fetch_with(&t, &s.request()).await.unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("/files/m.bin") && msg.contains("503") && msg.contains("3 attempts"),
        "{msg}"
    );
    assert_eq!(s.hub.counters_for("/files/m.bin").requests, 3);
}

#[tokio::test]
async fn stall_is_detected_and_the_connection_replaced() {
    let s = Setup::new(2 * MIB).await;
    s.hub.set_faults(vec![
        Fault::stall(300 * 1024, Duration::from_secs(60))
            .path("m.bin")
            .times(1),
    ]);
    let t = Transfer::new(TransferConfig {
        stall_timeout: Duration::from_millis(500),
        parallel_threshold: 64 * MIB as u64,
        ..config()
    })
    .unwrap();
    let start = Instant::now();
    s.fetch_with(&t, &s.request()).await.unwrap();
    assert!(
        start.elapsed() < Duration::from_secs(30),
        "did not wait out the stall"
    );
    s.assert_complete();
    // The bytes before the stall were kept: the second request starts after them.
    let c = s.hub.counters_for("/files/m.bin");
    assert!(c.ranges.last().unwrap() != "bytes=0-", "{:?}", c.ranges);
}

#[tokio::test]
async fn flipped_byte_is_an_integrity_error_and_nothing_is_kept() {
    let s = Setup::new(3 * MIB).await;
    s.hub
        .set_faults(vec![Fault::flip_byte(2 * MIB as u64 + 5).path("m.bin")]);
    let tr = tracker();
    let req = s.request();
    let p = tr.file("m.bin", req.expected_size, 0);
    let err = transfer()
        .fetch(&req, &s.dest(), &p, &CancellationToken::new())
        .await
        .unwrap_err();
    assert_eq!(err.kind(), TransferErrorKind::Integrity);
    match Error::from(err) {
        Error::Integrity {
            expected, actual, ..
        } => assert_ne!(expected, actual),
        other => panic!("{other:?}"),
    }
    assert!(
        listing(s.out.path()).is_empty(),
        "{:?}",
        listing(s.out.path())
    );
    assert_eq!(
        p.bytes(),
        0,
        "discarded bytes are taken back from the progress"
    );
}

#[tokio::test]
async fn ignored_range_gives_the_right_file() {
    let s = Setup::new(3 * MIB).await;
    s.hub.set_faults(vec![Fault::ignore_range().path("m.bin")]);
    s.fetch_with(&transfer(), &s.request()).await.unwrap();
    s.assert_complete();
    // The whole-file answer to the first range request was used as is.
    assert_eq!(s.sent(), s.data.len() as u64);
}

#[tokio::test]
async fn ignored_range_on_resume_restarts_from_zero() {
    let s = Setup::new(3 * MIB).await;
    s.hub
        .set_faults(vec![Fault::drop_after(MIB as u64).path("m.bin").times(1)]);
    let single = Transfer::new(TransferConfig {
        parallel_threshold: 64 * MIB as u64,
        max_attempts: 1,
        ..config()
    })
    .unwrap();
    s.fetch_with(&single, &s.request()).await.unwrap_err();
    assert!(single.bytes_on_disk(&s.request(), &s.dest()) >= MIB as u64 / 2);
    s.hub.set_faults(vec![Fault::ignore_range().path("m.bin")]);
    s.fetch_with(&transfer(), &s.request()).await.unwrap();
    s.assert_complete();
}

#[tokio::test]
async fn wrong_content_length_is_survived() {
    for parallel in [false, true] {
        let s = Setup::new(2 * MIB).await;
        s.hub.set_faults(vec![
            Fault::wrong_content_length(4096).path("m.bin").times(2),
        ]);
        let t = Transfer::new(TransferConfig {
            parallel_threshold: if parallel {
                MIB as u64
            } else {
                64 * MIB as u64
            },
            ..config()
        })
        .unwrap();
        s.fetch_with(&t, &s.request()).await.unwrap();
        s.assert_complete();
        // And without knowing the size up front.
        let s = Setup::new(2 * MIB).await;
        s.hub.set_faults(vec![
            Fault::wrong_content_length(4096).path("m.bin").times(1),
        ]);
        let mut req = s.request();
        req.expected_size = None;
        s.fetch_with(&t, &req).await.unwrap();
        s.assert_complete();
    }
}

#[tokio::test]
async fn expiring_redirect_target_is_resolved_again() {
    let root = tempfile::tempdir().unwrap();
    let data = body(4 * MIB);
    std::fs::write(root.path().join("m.bin"), &data).unwrap();
    // 2 MiB/s per connection with 4 connections: about half a second, longer than the link.
    let hub = FakeHub::start(
        FakeHubConfig::new(root.path())
            .with_rate_limit(2 * MIB as u64)
            .with_fault(Fault::expire_redirect(0).times(1)),
    )
    .await
    .unwrap();
    let out = tempfile::tempdir().unwrap();
    let mut req = FetchRequest::new("m.bin", hub.redirect_url("m.bin"));
    req.expected_size = Some(data.len() as u64);
    req.sha256 = Some(digest(&data));
    let tr = tracker();
    let p = tr.file("m.bin", req.expected_size, 0);
    transfer()
        .fetch(
            &req,
            &out.path().join("m.bin"),
            &p,
            &CancellationToken::new(),
        )
        .await
        .unwrap();
    assert_eq!(std::fs::read(out.path().join("m.bin")).unwrap(), data);
    let redirects = hub.counters_for("/redirect/files/m.bin").requests;
    assert!(redirects >= 2, "the link was resolved again ({redirects})");
    assert!(hub.counters_for("/files/m.bin").status(403) >= 1);
}

#[tokio::test]
async fn ranges_follow_one_redirect_to_the_cdn() {
    let root = tempfile::tempdir().unwrap();
    let data = body(4 * MIB);
    std::fs::write(root.path().join("m.bin"), &data).unwrap();
    let hub = FakeHub::start(FakeHubConfig::new(root.path()))
        .await
        .unwrap();
    let out = tempfile::tempdir().unwrap();
    let mut req = FetchRequest::new("m.bin", hub.redirect_url("m.bin"));
    req.expected_size = Some(data.len() as u64);
    let tr = tracker();
    let p = tr.file("m.bin", req.expected_size, 0);
    transfer()
        .fetch(
            &req,
            &out.path().join("m.bin"),
            &p,
            &CancellationToken::new(),
        )
        .await
        .unwrap();
    assert_eq!(hub.counters_for("/redirect/files/m.bin").requests, 1);
    assert!(hub.counters_for("/files/m.bin").requests >= 16);
    assert_eq!(
        hub.counters_for("/files/m.bin").bytes_sent,
        data.len() as u64
    );
}

#[tokio::test]
async fn adaptive_connections_grow_under_a_per_connection_cap() {
    let root = tempfile::tempdir().unwrap();
    let data = body(24 * MIB);
    std::fs::write(root.path().join("m.bin"), &data).unwrap();
    let hub = FakeHub::start(FakeHubConfig::new(root.path()).with_rate_limit(2 * MIB as u64))
        .await
        .unwrap();
    let out = tempfile::tempdir().unwrap();
    let t = Transfer::new(TransferConfig {
        connections: 2,
        max_connections: 16,
        chunk_size: MIB as u64,
        parallel_threshold: MIB as u64,
        use_env_proxy: false,
        ..TransferConfig::default()
    })
    .unwrap();
    let mut req = FetchRequest::new("m.bin", hub.file_url("m.bin"));
    req.expected_size = Some(data.len() as u64);
    let tr = tracker();
    let p = tr.file("m.bin", req.expected_size, 0);
    let (dest, never) = (out.path().join("m.bin"), CancellationToken::new());
    let fetch = t.fetch(&req, &dest, &p, &never);
    tokio::pin!(fetch);
    // Sample the server's log while the download runs: ranges whose bodies are still flowing
    // (a range the engine gave up, such as a hedged one, stays short but stops growing).
    let mut peak = 0;
    let mut before = std::collections::HashMap::new();
    let result = loop {
        tokio::select! {
            r = &mut fetch => break r,
            _ = tokio::time::sleep(Duration::from_millis(50)) => {
                peak = peak.max(flowing(&hub.requests(), &mut before));
            }
        }
    };
    result.unwrap();
    assert_eq!(std::fs::read(out.path().join("m.bin")).unwrap(), data);
    // Each connection is capped, so the total grows with more of them: the engine adds
    // connections beyond the 2 it started with, up to its maximum.
    assert!(peak > 2, "peak concurrent ranges {peak}");
    assert!(peak <= 16, "peak concurrent ranges {peak}");
}

/// Ranged responses whose bodies have not been fully sent yet and grew since the last sample
/// (`before`: bytes sent per request at that sample).
fn flowing(
    log: &[rbee_fake_hub::RequestRecord],
    before: &mut std::collections::HashMap<u64, u64>,
) -> usize {
    let mut count = 0;
    for r in log {
        let Some((a, b)) = r
            .range
            .as_deref()
            .and_then(|v| v.strip_prefix("bytes="))
            .and_then(|v| v.split_once('-'))
        else {
            continue;
        };
        let (Ok(a), Ok(b)) = (a.parse::<u64>(), b.parse::<u64>()) else {
            continue;
        };
        let last = before.insert(r.seq, r.bytes_sent).unwrap_or(0);
        if r.bytes_sent < b - a + 1 && r.bytes_sent > last {
            count += 1;
        }
    }
    count
}
