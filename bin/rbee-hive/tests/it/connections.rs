//! Connections that send nothing, or too little, cannot take the daemon down: a header timeout
//! closes them, a cap bounds them, and the clients the daemon works for keep being served.

use std::sync::Arc;
use std::time::Duration;

use rbee_artifact::Secret;
use rbee_catalog::Catalog;
use rbee_hive::{HiveConfig, HiveState};
use rbee_model_provisioner::{Provisioner, ProvisionerConfig, VendorRegistry};
use rbee_transfer::{Transfer, TransferConfig};
use rbee_vendor_url::UrlVendor;
use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;

use crate::support::{Daemon, SOON, SseStream, TestEnv, json_of};

const TOKEN: &str = "tok-connections";

/// The daemon in-process over `env`'s cache, with `config`; stops when the token is cancelled.
struct Hive {
    url: String,
    addr: std::net::SocketAddr,
    stop: CancellationToken,
    client: reqwest::Client,
}

impl Hive {
    async fn start(env: &TestEnv, config: HiveConfig) -> Hive {
        let catalog = Arc::new(Catalog::open(env.cache()).unwrap());
        let transfer = TransferConfig {
            use_env_proxy: false,
            ..Default::default()
        };
        let vendors =
            VendorRegistry::new().with(Arc::new(UrlVendor::new(Transfer::new(transfer).unwrap())));
        let state = HiveState::new(
            Provisioner::new(catalog, vendors, ProvisionerConfig::default()),
            config,
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let stop = CancellationToken::new();
        let stopped = stop.clone();
        tokio::spawn(rbee_hive::serve(listener, state, async move {
            stopped.cancelled().await;
        }));
        Hive {
            url: format!("http://{addr}"),
            addr,
            stop,
            // A new connection per request: each one has to get through.
            client: reqwest::Client::builder()
                .no_proxy()
                .pool_max_idle_per_host(0)
                .build()
                .unwrap(),
        }
    }

    fn get(&self, path: &str) -> reqwest::RequestBuilder {
        self.client
            .get(format!("{}{path}", self.url))
            .bearer_auth(TOKEN)
    }

    async fn health(&self) -> StatusCode {
        tokio::time::timeout(SOON, self.client.get(format!("{}/health", self.url)).send())
            .await
            .expect("/health did not answer")
            .unwrap()
            .status()
    }

    async fn download(&self, reference: &str) -> String {
        let response = self
            .client
            .post(format!("{}/v1/jobs", self.url))
            .bearer_auth(TOKEN)
            .json(&json!({"operation": "model_download", "model": reference}))
            .send()
            .await
            .unwrap();
        let (status, body) = json_of(response).await;
        assert_eq!(status, StatusCode::ACCEPTED, "{body}");
        body["job_id"].as_str().unwrap().to_string()
    }

    async fn stream(&self, path: &str) -> SseStream {
        let response = self.get(path).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        SseStream::new(response)
    }

    /// Connections that connect and send nothing.
    async fn silent(&self, n: usize) -> Vec<TcpStream> {
        let mut out = Vec::with_capacity(n);
        for _ in 0..n {
            out.push(TcpStream::connect(self.addr).await.unwrap());
        }
        out
    }
}

impl Drop for Hive {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

fn protected(max_connections: usize, header_timeout: Duration) -> HiveConfig {
    let mut config = HiveConfig::default();
    config.token = Secret::new(TOKEN);
    config.max_connections = max_connections;
    config.header_timeout = header_timeout;
    config
}

/// Whether the server closed `conn`: it reads to the end (any bytes the server sent first are
/// skipped) within `wait`.
async fn closed_within(conn: &mut TcpStream, wait: Duration) -> bool {
    let mut buf = [0u8; 1024];
    let read_to_end = async {
        loop {
            match conn.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    };
    tokio::time::timeout(wait, read_to_end).await.is_ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_connections_give_way_and_the_daemon_keeps_serving_its_clients() {
    let env = TestEnv::new().await;
    let bytes = env.write_file("m.gguf", 3 << 20);
    // A long header timeout: the cap alone must keep the daemon reachable.
    let hive = Hive::start(&env, protected(8, Duration::from_secs(600))).await;
    // A client the daemon works for, connected before the flood.
    let mut feed = hive.stream("/v1/models/download/progress").await;

    let mut silent = hive.silent(40).await;
    assert_eq!(hive.health().await, StatusCode::OK);
    let job = hive.download(&env.file_ref("m.gguf")).await;
    let events = hive
        .stream(&format!("/v1/jobs/{job}/stream"))
        .await
        .until_final()
        .await;
    let done = events.last().unwrap();
    assert_eq!(done.name, "done", "{done:?}");
    let path = done.data["result"]["path"].as_str().unwrap();
    assert_eq!(std::fs::read(path).unwrap(), bytes);
    // The feed was not pushed out: it saw the download complete.
    loop {
        let event = feed.next().await.expect("the feed ended");
        if event.name == "complete" {
            assert_eq!(event.data["download_id"], json!(job));
            break;
        }
    }

    // Every silent connection beyond the cap was closed to make room.
    let closed = futures::future::join_all(
        silent
            .iter_mut()
            .map(|c| closed_within(c, Duration::from_secs(3))),
    )
    .await
    .into_iter()
    .filter(|closed| *closed)
    .count();
    assert!(
        closed >= 40 - 8,
        "only {closed} of 40 silent connections were closed"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_slow_and_idle_connections_are_closed_after_the_header_timeout() {
    let env = TestEnv::new().await;
    env.write_file("m.gguf", 100_000);
    let hive = Hive::start(&env, protected(512, Duration::from_millis(300))).await;

    let mut silent = TcpStream::connect(hive.addr).await.unwrap();
    assert!(
        closed_within(&mut silent, SOON).await,
        "a silent connection stays open"
    );

    // Headers that never end.
    let mut slow = TcpStream::connect(hive.addr).await.unwrap();
    slow.write_all(b"GET /health HTTP/1.1\r\nHost: localhost\r\n")
        .await
        .unwrap();
    assert!(
        closed_within(&mut slow, SOON).await,
        "a slow request stays open"
    );

    // Idle after a complete request.
    let mut idle = TcpStream::connect(hive.addr).await.unwrap();
    idle.write_all(b"GET /health HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .await
        .unwrap();
    let mut head = [0u8; 12];
    idle.read_exact(&mut head).await.unwrap();
    assert_eq!(&head, b"HTTP/1.1 200");
    assert!(
        closed_within(&mut idle, SOON).await,
        "an idle connection stays open"
    );

    // An event stream is not a silent connection: it outlives the timeout many times over.
    let mut feed = hive.stream("/v1/models/download/progress").await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let job = hive.download(&env.file_ref("m.gguf")).await;
    loop {
        let event = feed.next().await.expect("the feed was closed");
        if event.name == "complete" {
            assert_eq!(event.data["download_id"], json!(job));
            break;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn when_every_connection_serves_a_client_a_new_one_is_told_to_retry() {
    let env = TestEnv::new().await;
    let hive = Hive::start(&env, protected(2, Duration::from_secs(600))).await;
    let _a = hive.stream("/v1/models/download/progress").await;
    let _b = hive.stream("/v1/models/download/progress").await;
    let mut third = TcpStream::connect(hive.addr).await.unwrap();
    let mut response = Vec::new();
    tokio::time::timeout(SOON, third.read_to_end(&mut response))
        .await
        .expect("no answer")
        .unwrap();
    let text = String::from_utf8(response).unwrap();
    assert!(text.starts_with("HTTP/1.1 503"), "{text}");
    let body: Value = serde_json::from_str(text.split("\r\n\r\n").nth(1).unwrap()).unwrap();
    assert_eq!(body["error"]["code"], "too_many_connections", "{body}");
}

/// The attack as reported, on the real binary: a token-protected daemon, more silent
/// connections than it has file descriptors. Before the cap, accepting failed with EMFILE,
/// `/health` hung, and a running download could not write its metadata.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connections_cannot_exhaust_the_descriptors_of_a_protected_daemon() {
    let env = TestEnv::with_rate_limit(Some(8 << 20)).await;
    let bytes = env.write_file("big.gguf", 6 << 20);
    let hive = Daemon::try_start_limited(&env, &[], &[("RBEE_HIVE_TOKEN", TOKEN)], Some("-n 256"))
        .await
        .unwrap();
    let job = hive.download(&env.file_ref("big.gguf")).await;

    let addr = hive.url.trim_start_matches("http://").to_string();
    let mut silent = Vec::new();
    for _ in 0..300 {
        silent.push(TcpStream::connect(&addr).await.unwrap());
    }
    let health = tokio::time::timeout(SOON, hive.get("/health"))
        .await
        .expect("/health did not answer");
    assert_eq!(health.0, StatusCode::OK, "{}", health.1);

    let events = hive.stream(&job).await.until_final().await;
    let done = events.last().unwrap();
    assert_eq!(done.name, "done", "{done:?}\n{}", hive.log());
    assert_eq!(
        std::fs::read(done.data["result"]["path"].as_str().unwrap()).unwrap(),
        bytes
    );
    let id = done.data["result"]["id"].as_str().unwrap();
    assert_eq!(
        crate::support::metadata(&env.cache(), id)["status"]["state"],
        "ready"
    );
    drop(silent);
}

/// The soft open-files limit (often 1024) is raised to the hard one at start.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_daemon_raises_its_open_files_limit_to_the_hard_limit() {
    let env = TestEnv::new().await;
    let hive = Daemon::try_start_limited(&env, &[], &[], Some("-Sn 200"))
        .await
        .unwrap();
    let (soft, hard) = open_files_limits(&hive.pid.to_string());
    assert_eq!(soft, hard, "the soft limit was not raised");
    if hard == "200" {
        eprintln!("skipped: the hard open-files limit here is 200, nothing to raise");
    }
}

/// (soft, hard) "Max open files" of a process, from `/proc/<pid>/limits`.
fn open_files_limits(pid: &str) -> (String, String) {
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).unwrap();
    let line = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .unwrap();
    let mut numbers = line.split_whitespace().skip(3);
    let soft = numbers.next().unwrap().to_string();
    let hard = numbers.next().unwrap().to_string();
    (soft, hard)
}
