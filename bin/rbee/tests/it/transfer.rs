//! The real `rbee` CLI against the fake hub: killed with SIGKILL or interrupted with SIGINT
//! mid-download, then run again. The server's byte counters show what each run fetched.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rbee_fake_hub::{FakeHub, FakeHubConfig};
use rbee_transfer::TransferConfig;

use crate::support::{interrupt_and_wait, signal, unread_socket_bytes};

const MIB: u64 = 1 << 20;
const FILE: &str = "model.gguf";

const HF_REPO: &str = "team/big-GGUF";

struct Env {
    dir: tempfile::TempDir,
    hub: FakeHub,
    data: Vec<u8>,
    /// What `rbee model download` is given.
    reference: String,
    /// The hub path whose byte counter tells what was fetched.
    served: String,
}

impl Env {
    /// A `size`-byte file served by URL at `cap` bytes/s per connection.
    async fn new(size: u64, cap: Option<u64>) -> Self {
        let mut env = Self::serving(size, cap, "").await;
        let digest = rbee_artifact::Sha256Digest::of(&env.data);
        env.reference = format!("{}#sha256={digest}", env.hub.file_url(FILE));
        env.served = format!("/files/{FILE}");
        env
    }

    /// A `size`-byte file of a HuggingFace repository (`hf:`), at `cap` bytes/s per
    /// connection.
    async fn hf(size: u64, cap: Option<u64>) -> Self {
        let folder = format!("hf/{HF_REPO}");
        let mut env = Self::serving(size, cap, &folder).await;
        env.reference = format!("hf:{HF_REPO}/{FILE}");
        env.served = format!("/files/{folder}/{FILE}");
        env
    }

    async fn serving(size: u64, cap: Option<u64>, folder: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        std::fs::create_dir_all(root.join(folder)).unwrap();
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        let data: Vec<u8> = (0..size)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect();
        std::fs::write(root.join(folder).join(FILE), &data).unwrap();
        let mut config = FakeHubConfig::new(&root);
        if let Some(cap) = cap {
            config = config.with_rate_limit(cap);
        }
        let hub = FakeHub::start(config).await.unwrap();
        Self {
            dir,
            hub,
            data,
            reference: String::new(),
            served: String::new(),
        }
    }

    fn rbee(&self) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_rbee"));
        cmd.arg("--cache-dir")
            .arg(self.dir.path().join("cache"))
            .current_dir(self.dir.path())
            .env_remove("RBEE_CACHE_DIR")
            .env("HOME", self.dir.path().join("home"))
            .env("HF_ENDPOINT", self.hub.url().as_str())
            .env("HF_HOME", self.dir.path().join("hf-home"))
            .env_remove("HF_TOKEN")
            .env_remove("HF_HUB_OFFLINE")
            .env("NO_COLOR", "1");
        cmd
    }

    fn sent(&self) -> u64 {
        self.hub.counters_for(&self.served).bytes_sent
    }

    /// Waits (up to a minute) until the server has sent at least `bytes`.
    async fn wait_for_bytes(&self, bytes: u64, child: &mut Child) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while self.sent() < bytes {
            assert!(
                child.try_wait().unwrap().is_none(),
                "rbee exited before {bytes} bytes were sent"
            );
            assert!(
                Instant::now() < deadline,
                "only {} bytes after a minute",
                self.sent()
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Lets the server's counters settle after the client went away, then reads them.
    async fn settled_sent(&self) -> u64 {
        let mut last = self.sent();
        loop {
            tokio::time::sleep(Duration::from_millis(200)).await;
            let now = self.sent();
            if now == last {
                return now;
            }
            last = now;
        }
    }

    fn files_named(&self, suffix: &str) -> Vec<PathBuf> {
        fn walk(dir: &Path, suffix: &str, out: &mut Vec<PathBuf>) {
            for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
                let p = e.path();
                if p.is_dir() {
                    walk(&p, suffix, out);
                } else if p.to_string_lossy().ends_with(suffix) {
                    out.push(p);
                }
            }
        }
        let mut out = Vec::new();
        walk(&self.dir.path().join("cache"), suffix, &mut out);
        out
    }

    /// Starts a download, kills it with SIGKILL (no chance to save anything more) once the
    /// hub has sent `after` bytes, and returns what rbee had received by then: what the hub
    /// sent, less what still sat unread in socket buffers (printed with `--nocapture`).
    #[allow(clippy::print_stderr)]
    async fn download_killed_after(&self, after: u64) -> u64 {
        let mut child = self
            .rbee()
            .args(["--quiet", "model", "download", &self.reference])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        self.wait_for_bytes(after, &mut child).await;
        // Stopped first, so the bytes the hub counts as sent but rbee never read (socket
        // buffers, which a loaded machine fills) can be measured before the kill drops them.
        signal(child.id(), "-STOP");
        let sent = self.settled_sent().await;
        let unread = [self.hub.url(), self.hub.cdn_url()]
            .iter()
            .map(|url| unread_socket_bytes(url.port().unwrap()))
            .sum::<u64>();
        child.kill().unwrap();
        child.wait().unwrap();
        assert!(
            sent < self.data.len() as u64,
            "killed too late to test a resume"
        );
        eprintln!("killed with {unread} B sent by the hub but still in socket buffers");
        sent.saturating_sub(unread)
    }

    /// Runs the download to the end and checks the file and what the server sent for it.
    /// Prints the bytes fetched twice (visible with `--nocapture`).
    #[allow(clippy::print_stderr)]
    async fn finish_and_check(&self, first_run: u64) {
        self.hub.reset_counters();
        let out = self
            .rbee()
            .args(["--quiet", "model", "download", &self.reference])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "second run failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let second = self.settled_sent().await;
        let size = self.data.len() as u64;
        let chunk = TransferConfig::default().chunk_size;
        eprintln!(
            "first run sent {first_run} B, second run {second} B of {size}: {} B fetched twice",
            (first_run + second).saturating_sub(size)
        );
        assert!(
            first_run + second <= size + chunk,
            "first run sent {first_run}, second {second}: {} bytes fetched twice, more than one {chunk}-byte chunk",
            (first_run + second).saturating_sub(size)
        );
        let finals = self.files_named(&format!("/{FILE}"));
        assert_eq!(finals.len(), 1, "{finals:?}");
        assert!(
            std::fs::read(&finals[0]).unwrap() == self.data,
            "content differs"
        );
        assert!(self.files_named(".part").is_empty());
        assert!(self.files_named(".part.state").is_empty());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_at_half_way_then_resume_fetches_only_what_is_missing() {
    let env = Env::new(64 * MIB, Some(4 * MIB)).await;
    let first = env.download_killed_after(32 * MIB).await;
    assert!(env.files_named(".part").len() == 1, "the partial is kept");
    env.finish_and_check(first).await;
}

/// At a high rate the disk's sync lags the bytes by far more than a chunk; what a `kill -9`
/// loses must not depend on it (written bytes outlive the process).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_of_a_fast_hf_download_then_resume_fetches_only_what_is_missing() {
    let env = Env::hf(256 * MIB, Some(64 * MIB)).await;
    let first = env.download_killed_after(128 * MIB).await;
    env.finish_and_check(first).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigint_cancels_with_130_keeps_the_partial_and_resumes() {
    let env = Env::new(48 * MIB, Some(4 * MIB)).await;
    let mut child = env
        .rbee()
        .args(["--json", "model", "download", &env.reference])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Drain stdout as it comes so the child never blocks on a full pipe.
    let mut stdout = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stdout.read_to_string(&mut s);
        s
    });
    env.wait_for_bytes(16 * MIB, &mut child).await;
    assert_eq!(interrupt_and_wait(&mut child).await, Some(130));
    let lines = reader.join().unwrap();
    assert!(
        lines.contains("\"cancelled\""),
        "no cancelled event in the JSON output: {lines}"
    );
    let first = env.settled_sent().await;
    assert_eq!(env.files_named(".part").len(), 1, "the partial is kept");
    env.finish_and_check(first).await;
}
