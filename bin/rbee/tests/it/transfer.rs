//! The real `rbee` CLI against the fake hub: killed with SIGKILL or interrupted with SIGINT
//! mid-download, then run again. The server's byte counters show what each run fetched.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rbee_fake_hub::{FakeHub, FakeHubConfig};
use rbee_transfer::TransferConfig;

use crate::support::interrupt_and_wait;

const MIB: u64 = 1 << 20;
const FILE: &str = "model.gguf";

struct Env {
    dir: tempfile::TempDir,
    hub: FakeHub,
    data: Vec<u8>,
}

impl Env {
    /// A `size`-byte file served at `cap` bytes/s per connection.
    async fn new(size: u64, cap: u64) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        std::fs::create_dir_all(&root).unwrap();
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        let data: Vec<u8> = (0..size)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect();
        std::fs::write(root.join(FILE), &data).unwrap();
        let hub = FakeHub::start(FakeHubConfig::new(&root).with_rate_limit(cap))
            .await
            .unwrap();
        Self { dir, hub, data }
    }

    fn url(&self) -> String {
        let digest = rbee_artifact::Sha256Digest::of(&self.data);
        format!("{}#sha256={digest}", self.hub.file_url(FILE))
    }

    fn rbee(&self) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_rbee"));
        cmd.arg("--cache-dir")
            .arg(self.dir.path().join("cache"))
            .current_dir(self.dir.path())
            .env_remove("RBEE_CACHE_DIR")
            .env("HOME", self.dir.path().join("home"))
            .env("NO_COLOR", "1");
        cmd
    }

    fn sent(&self) -> u64 {
        self.hub.counters_for(&format!("/files/{FILE}")).bytes_sent
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

    /// Runs the download to the end and checks the file and what the server sent for it.
    /// Prints the bytes fetched twice (visible with `--nocapture`).
    #[allow(clippy::print_stderr)]
    async fn finish_and_check(&self, first_run: u64) {
        self.hub.reset_counters();
        let out = self
            .rbee()
            .args(["--quiet", "model", "download", &self.url()])
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
    let env = Env::new(64 * MIB, 4 * MIB).await;
    let mut child = env
        .rbee()
        .args(["--quiet", "model", "download", &env.url()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    env.wait_for_bytes(32 * MIB, &mut child).await;
    child.kill().unwrap(); // SIGKILL: no chance to save anything more
    child.wait().unwrap();
    let first = env.settled_sent().await;
    assert!(
        first < env.data.len() as u64,
        "killed too late to test a resume"
    );
    assert!(env.files_named(".part").len() == 1, "the partial is kept");
    env.finish_and_check(first).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigint_cancels_with_130_keeps_the_partial_and_resumes() {
    let env = Env::new(48 * MIB, 4 * MIB).await;
    let mut child = env
        .rbee()
        .args(["--json", "model", "download", &env.url()])
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
