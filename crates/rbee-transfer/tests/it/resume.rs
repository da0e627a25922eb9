//! Resume, restart, cancellation, locking, disk space and rate limiting on wiremock.

use std::time::{Duration, Instant};

use rbee_artifact::Error;
use rbee_transfer::{FetchRequest, Transfer, TransferConfig, TransferErrorKind};
use tokio_util::sync::CancellationToken;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::common::*;

const MIB: usize = 1024 * 1024;

async fn serve(fs: &FileServer) -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/m.bin"))
        .respond_with(fs.clone())
        .mount(&server)
        .await;
    server
}

fn request(server: &MockServer, size: usize) -> FetchRequest {
    let mut r = FetchRequest::new("m.bin", format!("{}/m.bin", server.uri()).parse().unwrap());
    r.expected_size = Some(size as u64);
    r
}

#[tokio::test]
async fn abandoned_parallel_transfer_resumes_only_missing_ranges() {
    let data = body(4 * MIB);
    let fs = FileServer::new(data.clone());
    // Ranges from 1.5 MiB on hang: the first run gets the first part only.
    fs.with(|s| {
        s.fault_from = Some(3 * MIB as u64 / 2);
        s.fault = Fault::Delay(Duration::from_secs(60));
    });
    let server = serve(&fs).await;
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("m.bin");
    let req = request(&server, data.len());
    let t = tracker();
    let p = progress(&t, req.expected_size);
    let (tr, never) = (transfer(), CancellationToken::new());
    let first = tr.fetch(&req, &dest, &p, &never);
    // Drop the future mid-way, as a caller that gives up would.
    assert!(
        tokio::time::timeout(Duration::from_millis(1500), first)
            .await
            .is_err()
    );
    assert!(!dest.exists());
    assert!(dir.path().join("m.bin.part.state").exists());
    let served_first = fs.with(|s| s.served);
    assert!(served_first >= MIB as u64, "{served_first}");
    fs.with(|s| {
        s.fault_from = None;
        s.served = 0;
    });
    let tr = Transfer::new(config()).unwrap();
    let on_disk = tr.bytes_on_disk(&req, &dest);
    assert!(on_disk >= MIB as u64, "resumable bytes {on_disk}");
    let t = tracker();
    let p = t.file("m.bin", req.expected_size, on_disk);
    let got = tr
        .fetch(&req, &dest, &p, &CancellationToken::new())
        .await
        .unwrap();
    assert_eq!(got.sha256, digest(&data));
    assert_eq!(std::fs::read(&dest).unwrap(), data);
    let served_second = fs.with(|s| s.served);
    let missing = data.len() as u64 - on_disk;
    let chunk = config().chunk_size;
    assert!(
        served_second <= missing + chunk,
        "second run fetched {served_second} bytes for {missing} missing"
    );
    assert_eq!(listing(dir.path()), vec!["m.bin"]);
}

#[tokio::test]
async fn changed_remote_restarts_cleanly() {
    let old = body(2 * MIB);
    let fs = FileServer::new(old.clone());
    // Ranges past 1 MiB fail for good: the first run stops with a partial on disk.
    fs.with(|s| {
        s.fault_from = Some(MIB as u64);
        s.fault = Fault::Status(404);
    });
    let server = serve(&fs).await;
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("m.bin");
    let req = request(&server, old.len());
    let t = tracker();
    let p = progress(&t, req.expected_size);
    let err = transfer()
        .fetch(&req, &dest, &p, &CancellationToken::new())
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(404));
    assert!(transfer().bytes_on_disk(&req, &dest) > 0);
    // The remote changes: same size, other bytes, new ETag.
    let new: Vec<u8> = old.iter().map(|b| b ^ 0x5a).collect();
    fs.with(|s| {
        s.data = new.clone();
        s.etag = "\"v2\"".into();
        s.fault_from = None;
    });
    let t = tracker();
    let p = progress(&t, req.expected_size);
    let got = transfer()
        .fetch(&req, &dest, &p, &CancellationToken::new())
        .await
        .unwrap();
    assert_eq!(std::fs::read(&dest).unwrap(), new);
    assert_eq!(got.sha256, digest(&new));
    assert_eq!(p.bytes(), new.len() as u64, "progress rewound and refilled");
}

#[tokio::test]
async fn cancel_is_prompt_and_keeps_the_partial() {
    let data = body(2 * MIB);
    let fs = FileServer::new(data.clone());
    fs.with(|s| {
        s.fault_from = Some(MIB as u64);
        s.fault = Fault::Delay(Duration::from_secs(60));
    });
    let server = serve(&fs).await;
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("m.bin");
    let req = request(&server, data.len());
    let t = tracker();
    let p = progress(&t, req.expected_size);
    let cancel = CancellationToken::new();
    let c = cancel.clone();
    let tr = transfer();
    let fetch = tokio::spawn({
        let dest = dest.clone();
        let req = req.clone();
        async move { tr.fetch(&req, &dest, &p, &c).await }
    });
    // Wait until the first megabyte is on disk, then cancel.
    let deadline = Instant::now() + Duration::from_secs(10);
    while transfer().bytes_on_disk(&req, &dest) < MIB as u64 {
        assert!(Instant::now() < deadline, "never got the first ranges");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let start = Instant::now();
    cancel.cancel();
    let err = fetch.await.unwrap().unwrap_err();
    assert_eq!(err.kind(), TransferErrorKind::Cancelled);
    assert!(
        start.elapsed() < Duration::from_secs(2),
        "{:?}",
        start.elapsed()
    );
    assert_eq!(Error::from(err).code(), "cancelled");
    assert!(!dest.exists());
    assert!(transfer().bytes_on_disk(&req, &dest) >= MIB as u64);
    assert!(!dir.path().join("m.bin.part.lock").exists());
}

#[tokio::test]
async fn two_transfers_of_one_file_fetch_it_once() {
    let data = body(3 * MIB);
    let fs = FileServer::new(data.clone());
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(fs.clone())
        .mount(&server)
        .await;
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("m.bin");
    let req = request(&server, data.len());
    // Slow enough that the second call starts while the first is writing.
    let slow = TransferConfig {
        rate_limit: Some(6 * MIB as u64),
        ..config()
    };
    let (a, b) = (
        Transfer::new(slow.clone()).unwrap(),
        Transfer::new(slow).unwrap(),
    );
    let t = tracker();
    let (pa, pb) = (
        t.file("m.bin", req.expected_size, 0),
        t.file("m.bin", req.expected_size, 0),
    );
    let cancel = CancellationToken::new();
    let second = async {
        tokio::time::sleep(Duration::from_millis(100)).await;
        b.fetch(&req, &dest, &pb, &cancel).await
    };
    let (ra, rb) = tokio::join!(a.fetch(&req, &dest, &pa, &cancel), second);
    assert_eq!(ra.unwrap(), rb.unwrap());
    assert_eq!(std::fs::read(&dest).unwrap(), data);
    assert_eq!(fs.with(|s| s.served), data.len() as u64, "fetched once");
}

#[tokio::test]
async fn refuses_to_start_without_disk_space() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(200))
        .expect(0)
        .mount(&server)
        .await;
    let dir = tempfile::tempdir().unwrap();
    let mut req = request(&server, 0);
    req.expected_size = Some(1 << 60);
    let t = tracker();
    let p = progress(&t, req.expected_size);
    let err = transfer()
        .fetch(
            &req,
            &dir.path().join("m.bin"),
            &p,
            &CancellationToken::new(),
        )
        .await
        .unwrap_err();
    assert_eq!(err.kind(), TransferErrorKind::InsufficientSpace);
    match Error::from(err) {
        Error::InsufficientSpace {
            needed, available, ..
        } => {
            assert_eq!(needed, 1 << 60);
            assert!(available < needed);
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn rate_limit_holds_across_connections() {
    let data = body(3 * MIB);
    let fs = FileServer::new(data.clone());
    let server = serve(&fs).await;
    let dir = tempfile::tempdir().unwrap();
    let req = request(&server, data.len());
    let limited = Transfer::new(TransferConfig {
        rate_limit: Some(2 * MIB as u64),
        ..config()
    })
    .unwrap();
    let t = tracker();
    let p = progress(&t, req.expected_size);
    let start = Instant::now();
    limited
        .fetch(
            &req,
            &dir.path().join("m.bin"),
            &p,
            &CancellationToken::new(),
        )
        .await
        .unwrap();
    // 3 MiB at 2 MiB/s, less the 0.2 MiB burst: never under 1.3 s, however fast the machine.
    let took = start.elapsed();
    assert!(took >= Duration::from_millis(1300), "{took:?}");
}

/// The kernel boot this test runs under, as the engine records it.
fn this_boot() -> String {
    std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .expect("the kernel's boot id")
        .trim()
        .to_string()
}

/// Leaves `m.bin.part` with every byte of `data` on disk and a resume state that claims
/// `[0, written)` written and `[0, durable)` durable (the format `version` writes).
fn plant_partial(dir: &std::path::Path, data: &[u8], state: serde_json::Value) {
    std::fs::write(dir.join("m.bin.part"), data).unwrap();
    std::fs::write(
        dir.join("m.bin.part.state"),
        serde_json::to_vec(&state).unwrap(),
    )
    .unwrap();
}

fn planted_state(data: &[u8], written: u64, durable: u64, boot: &str) -> serde_json::Value {
    serde_json::json!({
        "version": 2, "source": "elsewhere", "sha256": digest(data).to_string(),
        "total": data.len(), "etag": "\"v1\"",
        "done": [[0, written]],
        "durable": {"done": [[0, durable]]},
        "boot_id": boot,
    })
}

/// Fetches the planted partial to the end; returns the body bytes served for it.
async fn finish_planted(
    fs: &FileServer,
    server: &MockServer,
    dir: &std::path::Path,
    data: &[u8],
) -> u64 {
    let mut req = request(server, data.len());
    req.sha256 = Some(digest(data));
    let dest = dir.join("m.bin");
    fs.with(|s| s.served = 0);
    let t = tracker();
    let p = t.file(
        "m.bin",
        req.expected_size,
        transfer().bytes_on_disk(&req, &dest),
    );
    let got = transfer()
        .fetch(&req, &dest, &p, &CancellationToken::new())
        .await
        .unwrap();
    assert_eq!(got.sha256, digest(data));
    assert_eq!(std::fs::read(&dest).unwrap(), data);
    assert_eq!(listing(dir), vec!["m.bin"]);
    fs.with(|s| s.served)
}

#[tokio::test]
async fn bytes_written_under_this_boot_are_trusted_and_after_a_reboot_only_synced_ones() {
    let data = body(4 * MIB);
    let size = data.len() as u64;
    let (written, durable) = (3 * MIB as u64, MIB as u64);
    let fs = FileServer::new(data.clone());
    let server = serve(&fs).await;
    let chunk = config().chunk_size;
    let mut req = request(&server, data.len());
    req.sha256 = Some(digest(&data));

    // The process died, the machine did not: everything written is in the page cache.
    let dir = tempfile::tempdir().unwrap();
    plant_partial(
        dir.path(),
        &data,
        planted_state(&data, written, durable, &this_boot()),
    );
    assert_eq!(
        transfer().bytes_on_disk(&req, &dir.path().join("m.bin")),
        written
    );
    let served = finish_planted(&fs, &server, dir.path(), &data).await;
    assert!(
        served >= size - written && served <= size - written + chunk,
        "served {served} with {} missing",
        size - written
    );

    // The machine rebooted since: only what was synced may be on disk.
    let dir = tempfile::tempdir().unwrap();
    let other_boot = "00000000-0000-4000-8000-000000000000";
    plant_partial(
        dir.path(),
        &data,
        planted_state(&data, written, durable, other_boot),
    );
    assert_eq!(
        transfer().bytes_on_disk(&req, &dir.path().join("m.bin")),
        durable
    );
    let served = finish_planted(&fs, &server, dir.path(), &data).await;
    assert!(
        served >= size - durable && served <= size - durable + chunk,
        "served {served} with {} not durable",
        size - durable
    );

    // A state that records no boot: only what was synced.
    let dir = tempfile::tempdir().unwrap();
    let mut state = planted_state(&data, written, durable, "");
    state.as_object_mut().unwrap().remove("boot_id");
    plant_partial(dir.path(), &data, state);
    assert_eq!(
        transfer().bytes_on_disk(&req, &dir.path().join("m.bin")),
        durable
    );
}

#[tokio::test]
async fn a_state_in_the_format_before_boot_ids_still_resumes() {
    let data = body(4 * MIB);
    let size = data.len() as u64;
    let fs = FileServer::new(data.clone());
    let server = serve(&fs).await;
    let mut req = request(&server, data.len());
    req.sha256 = Some(digest(&data));
    let dir = tempfile::tempdir().unwrap();
    // That format saved only after a sync: all it claims is durable, under any boot.
    let written = 3 * MIB as u64;
    plant_partial(
        dir.path(),
        &data,
        serde_json::json!({
            "version": 1, "source": "elsewhere", "sha256": digest(&data).to_string(),
            "total": data.len(), "etag": "\"v1\"", "done": [[0, written]],
        }),
    );
    assert_eq!(
        transfer().bytes_on_disk(&req, &dir.path().join("m.bin")),
        written
    );
    let served = finish_planted(&fs, &server, dir.path(), &data).await;
    assert!(
        served <= size - written + config().chunk_size,
        "served {served} with {} missing",
        size - written
    );
}
