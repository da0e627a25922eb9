//! Test plumbing: a fake hub with files, the real `rbee-hive` binary on an ephemeral port, and
//! the daemon client's Server-Sent Events reader.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use rbee_fake_hub::{FakeHub, FakeHubConfig};
use reqwest::StatusCode;
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader};

/// Generous limit for things that should happen "soon" (slow CI machines).
pub(crate) const SOON: Duration = Duration::from_secs(30);

/// A temp folder with a fake hub serving `<dir>/hub`, and folders for the daemon.
pub(crate) struct TestEnv {
    pub(crate) dir: tempfile::TempDir,
    pub(crate) hub: FakeHub,
}

impl TestEnv {
    pub(crate) async fn new() -> Self {
        Self::with_rate_limit(None).await
    }

    /// A hub whose every response body is capped at `rate` bytes/s (one connection per file
    /// below 32 MiB, so this caps a download).
    pub(crate) async fn with_rate_limit(rate: Option<u64>) -> Self {
        Self::with_hub(|config| config.rate_limit = rate).await
    }

    /// A hub set up by `tune`.
    pub(crate) async fn with_hub(tune: impl FnOnce(&mut FakeHubConfig)) -> Self {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("hub")).unwrap();
        std::fs::create_dir_all(dir.path().join("home")).unwrap();
        let mut config = FakeHubConfig::new(dir.path().join("hub"));
        tune(&mut config);
        let hub = FakeHub::start(config).await.unwrap();
        Self { dir, hub }
    }

    pub(crate) fn cache(&self) -> PathBuf {
        self.dir.path().join("cache")
    }

    /// Writes `size` bytes of deterministic noise at `<hub>/<rel>` and returns them.
    pub(crate) fn write_file(&self, rel: &str, size: usize) -> Vec<u8> {
        let path = self.dir.path().join("hub").join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        let bytes = noise(size, rel.len() as u64 + size as u64);
        std::fs::write(&path, &bytes).unwrap();
        bytes
    }

    /// The `http://` reference of a hub file.
    pub(crate) fn file_ref(&self, rel: &str) -> String {
        self.hub.file_url(rel).to_string()
    }

    /// Body bytes the hub sent for a file.
    pub(crate) fn sent(&self, rel: &str) -> u64 {
        self.hub.counters_for(&format!("/files/{rel}")).bytes_sent
    }
}

pub(crate) fn noise(size: usize, seed: u64) -> Vec<u8> {
    let mut x = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    let mut out = Vec::with_capacity(size);
    while out.len() < size {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(size);
    out
}

/// The real `rbee-hive` binary, started on `--port 0` with a clean environment.
pub(crate) struct Daemon {
    child: tokio::process::Child,
    pub(crate) url: String,
    pub(crate) pid: u32,
    pub(crate) stderr: PathBuf,
    pub(crate) client: reqwest::Client,
    token: Option<String>,
}

impl Daemon {
    /// Starts the daemon over `env`'s cache with `args` added.
    pub(crate) async fn start(env: &TestEnv, args: &[&str]) -> Daemon {
        Self::try_start(env, args, &[])
            .await
            .unwrap_or_else(|e| panic!("{e}"))
    }

    /// As `start`, with extra environment variables; `Err` (with stderr) when it does not come up.
    pub(crate) async fn try_start(
        env: &TestEnv,
        args: &[&str],
        vars: &[(&str, &str)],
    ) -> Result<Daemon, String> {
        Self::try_start_limited(env, args, vars, None).await
    }

    /// As `try_start`, with the process's limits set first by `ulimit <ulimit>` (e.g. `-n 256`).
    pub(crate) async fn try_start_limited(
        env: &TestEnv,
        args: &[&str],
        vars: &[(&str, &str)],
        ulimit: Option<&str>,
    ) -> Result<Daemon, String> {
        let stderr = env.dir.path().join(format!(
            "hive-{}.log",
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos()
        ));
        let binary = env!("CARGO_BIN_EXE_rbee-hive");
        let mut cmd = match ulimit {
            None => tokio::process::Command::new(binary),
            Some(limits) => {
                let mut sh = tokio::process::Command::new("sh");
                sh.arg("-c")
                    .arg(format!("ulimit {limits} && exec \"$0\" \"$@\""))
                    .arg(binary);
                sh
            }
        };
        cmd.env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", env.dir.path().join("home"))
            .env("HF_HOME", env.dir.path().join("home/hf"))
            .env("HF_ENDPOINT", env.hub.url().as_str())
            .env("GITHUB_API_URL", env.hub.url().as_str())
            .env("RUST_LOG", "info,rbee_hive=debug")
            .arg("--port")
            .arg("0");
        // A second daemon over the same hub passes a catalog of its own.
        if !args.contains(&"--cache-dir") {
            cmd.arg("--cache-dir").arg(env.cache());
        }
        cmd.args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&stderr).unwrap())
            .kill_on_drop(true);
        for (k, v) in vars {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().map_err(|e| e.to_string())?;
        let stdout = child.stdout.take().unwrap();
        let mut lines = BufReader::new(stdout).lines();
        let line = tokio::time::timeout(SOON, lines.next_line())
            .await
            .map_err(|_| "no listening line".to_string())?
            .map_err(|e| e.to_string())?;
        let Some(line) = line else {
            let status = child.wait().await.map_err(|e| e.to_string())?;
            return Err(format!(
                "rbee-hive exited ({status}) before listening: {}",
                std::fs::read_to_string(&stderr).unwrap_or_default()
            ));
        };
        let listening: Value = serde_json::from_str(&line).map_err(|e| format!("{e}: {line}"))?;
        assert_eq!(listening["event"], "listening", "{line}");
        let token = vars
            .iter()
            .find(|(k, _)| *k == "RBEE_HIVE_TOKEN")
            .map(|(_, v)| v.to_string());
        // A wildcard bind is reached through loopback.
        let port = listening["addr"]
            .as_str()
            .unwrap()
            .parse::<std::net::SocketAddr>()
            .unwrap()
            .port();
        Ok(Daemon {
            pid: listening["pid"].as_u64().unwrap() as u32,
            url: format!("http://127.0.0.1:{port}"),
            child,
            stderr,
            client: reqwest::Client::builder().no_proxy().build().unwrap(),
            token,
        })
    }

    pub(crate) fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        let rb = self.client.request(method, format!("{}{path}", self.url));
        match &self.token {
            Some(t) => rb.bearer_auth(t),
            None => rb,
        }
    }

    pub(crate) async fn get(&self, path: &str) -> (StatusCode, Value) {
        json_of(
            self.request(reqwest::Method::GET, path)
                .send()
                .await
                .unwrap(),
        )
        .await
    }

    pub(crate) async fn post(&self, path: &str, body: Value) -> (StatusCode, Value) {
        json_of(
            self.request(reqwest::Method::POST, path)
                .json(&body)
                .send()
                .await
                .unwrap(),
        )
        .await
    }

    pub(crate) async fn post_empty(&self, path: &str) -> (StatusCode, Value) {
        json_of(
            self.request(reqwest::Method::POST, path)
                .send()
                .await
                .unwrap(),
        )
        .await
    }

    pub(crate) async fn delete(&self, path: &str) -> (StatusCode, Value) {
        json_of(
            self.request(reqwest::Method::DELETE, path)
                .send()
                .await
                .unwrap(),
        )
        .await
    }

    /// Starts a download job and returns its id.
    pub(crate) async fn download(&self, model: &str) -> String {
        let (status, body) = self
            .post(
                "/v1/jobs",
                serde_json::json!({"operation": "model_download", "hive_id": "localhost", "model": model}),
            )
            .await;
        assert_eq!(status, StatusCode::ACCEPTED, "{body}");
        body["job_id"].as_str().unwrap().to_string()
    }

    pub(crate) async fn stream(&self, job_id: &str) -> SseStream {
        self.sse(&format!("/v1/jobs/{job_id}/stream")).await
    }

    pub(crate) async fn sse(&self, path: &str) -> SseStream {
        let response = self
            .request(reqwest::Method::GET, path)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(
            response.headers()["content-type"].to_str().unwrap(),
            "text/event-stream"
        );
        SseStream::new(response)
    }

    /// Waits for a job to reach `state` (polling its state route).
    pub(crate) async fn wait_state(&self, job_id: &str, state: &str) -> Value {
        let deadline = tokio::time::Instant::now() + SOON;
        loop {
            let (_, view) = self.get(&format!("/v1/jobs/{job_id}")).await;
            if view["state"] == state {
                return view;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "job never became {state}: {view}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Sends SIGTERM.
    pub(crate) fn terminate(&self) {
        let status = std::process::Command::new("kill")
            .args(["-TERM", &self.pid.to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// Waits for the process to exit.
    pub(crate) async fn wait_exit(&mut self, limit: Duration) -> std::process::ExitStatus {
        tokio::time::timeout(limit, self.child.wait())
            .await
            .expect("rbee-hive did not exit in time")
            .unwrap()
    }

    pub(crate) fn log(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }
}

pub(crate) async fn json_of(response: reqwest::Response) -> (StatusCode, Value) {
    let status = response.status();
    let text = response.text().await.unwrap();
    let value = serde_json::from_str(&text).unwrap_or(Value::String(text));
    (status, value)
}

/// One Server-Sent Event.
#[derive(Debug, Clone)]
pub(crate) struct SseEvent {
    pub(crate) name: String,
    pub(crate) data: Value,
}

impl SseEvent {
    pub(crate) fn is_final(&self) -> bool {
        matches!(self.name.as_str(), "done" | "error" | "cancelled")
    }
}

/// Reads `text/event-stream` bodies with the daemon's own client.
pub(crate) struct SseStream {
    events: rbee_hive::client::EventStream,
}

impl SseStream {
    pub(crate) fn new(response: reqwest::Response) -> Self {
        Self {
            events: rbee_hive::client::EventStream::with_idle_limit(response, SOON),
        }
    }

    /// The next event; `None` when the stream ended.
    pub(crate) async fn next(&mut self) -> Option<SseEvent> {
        let event = self
            .events
            .next()
            .await
            .unwrap_or_else(|e| panic!("stream failed: {e}"))?;
        Some(SseEvent {
            data: serde_json::from_str(&event.data).unwrap_or(Value::String(event.data)),
            name: event.name,
        })
    }

    /// Events up to and including the final one; asserts the stream then ends.
    pub(crate) async fn until_final(&mut self) -> Vec<SseEvent> {
        let mut events = Vec::new();
        while let Some(event) = self.next().await {
            let is_final = event.is_final();
            events.push(event);
            if is_final {
                assert!(
                    self.next().await.is_none(),
                    "the stream goes on after the final event"
                );
                return events;
            }
        }
        panic!("the stream ended without a final event: {events:?}");
    }

    /// Skips events until one named `name`.
    pub(crate) async fn until(&mut self, name: &str) -> SseEvent {
        loop {
            let event = self
                .next()
                .await
                .unwrap_or_else(|| panic!("stream ended before `{name}`"));
            if event.name == name {
                return event;
            }
            assert!(!event.is_final(), "final event before `{name}`: {event:?}");
        }
    }

    /// Skips events until a progress (or heartbeat) shows at least `bytes`.
    pub(crate) async fn until_bytes(&mut self, bytes: u64) -> SseEvent {
        loop {
            let event = self.next().await.expect("stream ended");
            assert!(!event.is_final(), "final event too soon: {event:?}");
            if matches!(event.name.as_str(), "progress" | "heartbeat")
                && event.data["bytes"].as_u64().unwrap_or(0) >= bytes
            {
                return event;
            }
        }
    }
}

/// Reads a catalog entry's `metadata.json` straight from disk.
pub(crate) fn metadata(cache: &Path, id: &str) -> Value {
    let rel: PathBuf = id.split("--").collect();
    let text = std::fs::read_to_string(cache.join(rel).join("metadata.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}
