//! The slow tail: one connection far slower than the others must not hold the download.

use std::time::Duration;

use rbee_fake_hub::{FakeHub, FakeHubConfig, Fault};
use rbee_transfer::{FetchRequest, Transfer, TransferConfig};
use tokio_util::sync::CancellationToken;

use crate::common::*;

/// `bytes=a-b` as `[a, b + 1)`.
fn parse_range(header: &str) -> (u64, u64) {
    let (a, b) = header
        .strip_prefix("bytes=")
        .and_then(|r| r.split_once('-'))
        .unwrap_or_else(|| panic!("unexpected Range {header:?}"));
    (a.parse().unwrap(), b.parse::<u64>().unwrap() + 1)
}

#[tokio::test]
async fn a_slow_connection_does_not_hold_the_tail() {
    let root = tempfile::tempdir().unwrap();
    let out = tempfile::tempdir().unwrap();
    let data = body(4 << 20);
    std::fs::write(root.path().join("m.bin"), &data).unwrap();
    let hub = FakeHub::start(FakeHubConfig::new(root.path()))
        .await
        .unwrap();
    // The first connection (the probe's, kept alive for later ranges) sends 32 KB/s: its
    // first range alone would take eight seconds while the others finish in milliseconds.
    hub.set_faults(vec![
        Fault::slow_connection(32 << 10).path("m.bin").times(1),
    ]);
    let mut req = FetchRequest::new("m.bin", hub.file_url("m.bin"));
    req.expected_size = Some(data.len() as u64);
    req.sha256 = Some(digest(&data));
    let t = Transfer::new(config()).unwrap();
    let tr = tracker();
    let p = progress(&tr, req.expected_size);
    let dest = out.path().join("m.bin");
    // A safety net only: without hedging this still finishes, just late.
    let done = tokio::time::timeout(
        Duration::from_secs(120),
        t.fetch(&req, &dest, &p, &CancellationToken::new()),
    )
    .await
    .expect("the download finished")
    .unwrap();
    assert_eq!(done.sha256, digest(&data));
    assert_eq!(std::fs::read(&dest).unwrap(), data);
    assert_eq!(listing(out.path()), vec!["m.bin"]);
    assert_eq!(
        p.bytes(),
        data.len() as u64,
        "progress counts each byte once"
    );

    // Another connection took over part of a range already being fetched: a request starts
    // strictly inside an earlier one's range.
    let ranges: Vec<(u64, u64)> = hub
        .requests()
        .iter()
        .filter(|r| r.path == "/files/m.bin")
        .filter_map(|r| r.range.as_deref().map(parse_range))
        .collect();
    let hedged = ranges
        .iter()
        .enumerate()
        .any(|(i, &(s, _))| ranges[..i].iter().any(|&(a, b)| a < s && s < b));
    assert!(hedged, "no range was split or raced: {ranges:?}");
    // Hedging re-asks for bytes, but not for the file again.
    let sent = hub.counters_for("/files/m.bin").bytes_sent;
    assert!(
        sent < 2 * data.len() as u64,
        "{sent} bytes sent for a 4 MiB file"
    );
}

#[tokio::test]
async fn a_slow_connection_is_relieved_while_ranges_are_still_to_be_handed_out() {
    let root = tempfile::tempdir().unwrap();
    let out = tempfile::tempdir().unwrap();
    let data = body(24 << 20);
    std::fs::write(root.path().join("m.bin"), &data).unwrap();
    // Every connection capped, the first one (the probe's, which holds the start of the file
    // and so the hash of everything after it) at a sixteenth of the others.
    let hub = FakeHub::start(FakeHubConfig::new(root.path()).with_rate_limit(8 << 20))
        .await
        .unwrap();
    hub.set_faults(vec![
        Fault::slow_connection(512 << 10).path("m.bin").times(1),
    ]);
    let mut req = FetchRequest::new("m.bin", hub.file_url("m.bin"));
    req.expected_size = Some(data.len() as u64);
    req.sha256 = Some(digest(&data));
    // Room above the four connections for a helper.
    let t = Transfer::new(TransferConfig {
        chunk_size: 1 << 20,
        max_connections: 8,
        ..config()
    })
    .unwrap();
    let tr = tracker();
    let p = progress(&tr, req.expected_size);
    let dest = out.path().join("m.bin");
    // A safety net only.
    let done = tokio::time::timeout(
        Duration::from_secs(120),
        t.fetch(&req, &dest, &p, &CancellationToken::new()),
    )
    .await
    .expect("the download finished")
    .unwrap();
    assert_eq!(done.sha256, digest(&data));
    assert_eq!(std::fs::read(&dest).unwrap(), data);

    let log: Vec<_> = hub
        .requests()
        .into_iter()
        .filter(|r| r.path == "/files/m.bin")
        .collect();
    let ranges: Vec<(u64, u64)> = log
        .iter()
        .map(|r| parse_range(r.range.as_deref().expect("ranged requests")))
        .collect();
    // A request starting strictly inside an earlier one's range helps a slow range; the
    // others hand out fresh ranges.
    let helps = |i: usize| {
        ranges[..i]
            .iter()
            .any(|&(a, b)| a < ranges[i].0 && ranges[i].0 < b)
    };
    let first_help = (0..log.len()).find(|&i| helps(i));
    let last_fresh = (0..log.len()).rfind(|&i| !helps(i)).unwrap();
    let first_help =
        first_help.unwrap_or_else(|| panic!("the slow range was not helped: {ranges:?}"));
    assert!(
        first_help < last_fresh,
        "the slow range was helped only once every range was handed out: {ranges:?}"
    );
    // The slowed connection is the probe's: once relieved, it is given nothing more.
    let slow = log[0].connection;
    let on_slow: Vec<_> = log.iter().filter(|r| r.connection == slow).collect();
    assert_eq!(on_slow.len(), 1, "the slow connection got another range");
    let slow_bytes: u64 = on_slow.iter().map(|r| r.bytes_sent).sum();
    assert!(
        slow_bytes < data.len() as u64 / 20,
        "the slow connection carried {slow_bytes} of {} bytes",
        data.len()
    );
}

/// Serves `data` by range. The first request for the range starting at `slow_from` answers
/// late; the next one for it (an idle connection helping) is refused with a 403.
struct HelperRefused {
    data: Vec<u8>,
    slow_from: u64,
    delay: Duration,
    asked: std::sync::Mutex<u32>,
}

impl wiremock::Respond for HelperRefused {
    fn respond(&self, req: &wiremock::Request) -> wiremock::ResponseTemplate {
        use wiremock::ResponseTemplate;
        let len = self.data.len() as u64;
        let (a, b) = req
            .headers
            .get("range")
            .and_then(|v| v.to_str().ok())
            .map(parse_range)
            .unwrap_or((0, len));
        let b = b.min(len);
        let mut resp = ResponseTemplate::new(206)
            .insert_header("etag", "\"v1\"")
            .insert_header("content-range", format!("bytes {a}-{}/{len}", b - 1))
            .set_body_bytes(self.data[a as usize..b as usize].to_vec());
        if a == self.slow_from {
            let mut asked = self.asked.lock().unwrap();
            *asked += 1;
            match *asked {
                1 => resp = resp.set_delay(self.delay),
                2 => return ResponseTemplate::new(403),
                _ => {}
            }
        }
        resp
    }
}

/// A connection that helps a slow range and is refused fails itself, not the file: the range
/// it took over is fetched by another connection, and the download completes.
#[tokio::test]
async fn a_helping_request_that_fails_does_not_fail_the_file() {
    let out = tempfile::tempdir().unwrap();
    let data = body(2 << 20);
    let server = wiremock::MockServer::start().await;
    let responder = std::sync::Arc::new(HelperRefused {
        data: data.clone(),
        slow_from: 1 << 20,
        delay: Duration::from_secs(2),
        asked: std::sync::Mutex::new(0),
    });
    wiremock::Mock::given(wiremock::matchers::method("GET"))
        .respond_with(ArcResponder(responder.clone()))
        .mount(&server)
        .await;
    let mut req = FetchRequest::new("m.bin", format!("{}/m.bin", server.uri()).parse().unwrap());
    req.expected_size = Some(data.len() as u64);
    req.sha256 = Some(digest(&data));
    let t = Transfer::new(config()).unwrap();
    let tr = tracker();
    let p = progress(&tr, req.expected_size);
    let dest = out.path().join("m.bin");
    let done = tokio::time::timeout(
        Duration::from_secs(60),
        t.fetch(&req, &dest, &p, &CancellationToken::new()),
    )
    .await
    .expect("the download finished")
    .expect("a refused helper does not fail the download");
    assert_eq!(done.sha256, digest(&data));
    assert_eq!(std::fs::read(&dest).unwrap(), data);
    assert!(
        *responder.asked.lock().unwrap() >= 2,
        "no connection helped the slow range, so none was refused"
    );
}

struct ArcResponder(std::sync::Arc<HelperRefused>);

impl wiremock::Respond for ArcResponder {
    fn respond(&self, req: &wiremock::Request) -> wiremock::ResponseTemplate {
        self.0.respond(req)
    }
}

/// At the connection cap, a slow range gets no extra connection: the cap holds, and idle
/// connections help it once nothing is left to hand out.
#[tokio::test]
async fn helpers_for_a_slow_range_stay_within_the_connection_cap() {
    let root = tempfile::tempdir().unwrap();
    let out = tempfile::tempdir().unwrap();
    let data = body(16 << 20);
    std::fs::write(root.path().join("m.bin"), &data).unwrap();
    let hub = FakeHub::start(FakeHubConfig::new(root.path()).with_rate_limit(8 << 20))
        .await
        .unwrap();
    hub.set_faults(vec![
        Fault::slow_connection(512 << 10).path("m.bin").times(1),
    ]);
    let mut req = FetchRequest::new("m.bin", hub.file_url("m.bin"));
    req.expected_size = Some(data.len() as u64);
    req.sha256 = Some(digest(&data));
    let t = Transfer::new(TransferConfig {
        chunk_size: 1 << 20,
        connections: 4,
        max_connections: 4,
        ..config()
    })
    .unwrap();
    let tr = tracker();
    let p = progress(&tr, req.expected_size);
    let dest = out.path().join("m.bin");
    tokio::time::timeout(
        Duration::from_secs(120),
        t.fetch(&req, &dest, &p, &CancellationToken::new()),
    )
    .await
    .expect("the download finished")
    .unwrap();
    assert_eq!(std::fs::read(&dest).unwrap(), data);
    let mut connections: Vec<_> = hub
        .requests()
        .into_iter()
        .filter(|r| r.path == "/files/m.bin")
        .map(|r| r.connection)
        .collect();
    connections.sort_unstable();
    connections.dedup();
    assert!(
        connections.len() <= 4,
        "{} connections for a cap of 4",
        connections.len()
    );
}
