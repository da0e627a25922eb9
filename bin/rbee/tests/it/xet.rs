//! The real `rbee` downloading over Xet from the fake hub: killed with SIGKILL mid-download,
//! then run again, it fetches only what it had not finished; a second revision fetches only
//! the chunks it lacks, and `--json` says how many bytes it fetched and reused.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use rbee_fake_hub::{FakeHub, FakeHubConfig, XetCounters};

const MIB: u64 = 1 << 20;
const REPO: &str = "org/xet-GGUF";
const FILE: &str = "m.Q4_K_M.gguf";

struct Env {
    dir: tempfile::TempDir,
    hub: FakeHub,
    data: Vec<u8>,
}

impl Env {
    /// A file of `size` bytes in a Xet repo packed in xorbs of `xorb` bytes, served at `cap`
    /// bytes/s per connection.
    async fn new(size: u64, cap: u64, xorb: u64) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        let data: Vec<u8> = (0..size)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect();
        let path = root.join("hf").join(REPO).join(FILE);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, &data).unwrap();
        let mut config = FakeHubConfig::new(&root).with_xet().with_rate_limit(cap);
        config.xet_xorb_bytes = xorb as usize;
        let hub = FakeHub::start(config).await.unwrap();
        Self { dir, hub, data }
    }

    fn rbee(&self) -> Command {
        self.rbee_with(&["--quiet"], &format!("hf:{REPO}/{FILE}"))
    }

    /// `rbee GLOBAL… model download --connections 2 REFERENCE`.
    fn rbee_with(&self, global: &[&str], reference: &str) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_rbee"));
        cmd.arg("--cache-dir")
            .arg(self.dir.path().join("cache"))
            .current_dir(self.dir.path())
            .env("HOME", self.dir.path().join("home"))
            .env("HF_HOME", self.dir.path().join("hf-home"))
            .env("HF_ENDPOINT", self.hub.url().as_str())
            .env("NO_COLOR", "1")
            .args(global)
            .args(["model", "download", "--connections", "2"])
            .arg(reference);
        for var in [
            "RBEE_CACHE_DIR",
            "HF_TOKEN",
            "HUGGING_FACE_HUB_TOKEN",
            "HF_TOKEN_PATH",
            "HF_HUB_CACHE",
            "HUGGINGFACE_HUB_CACHE",
            "HF_HUB_OFFLINE",
            "HF_HUB_DISABLE_XET",
            "RBEE_XET_CACHE",
            "XDG_CACHE_HOME",
        ] {
            cmd.env_remove(var);
        }
        cmd
    }

    fn xet(&self) -> XetCounters {
        self.hub.xet_counters()
    }

    /// Lets the counters settle after the client went away, then reads them.
    async fn settled(&self) -> XetCounters {
        let mut last = self.xet();
        loop {
            tokio::time::sleep(Duration::from_millis(200)).await;
            let now = self.xet();
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
}

/// A file of five xorbs (five terms) fetched two at a time: two terms finish, the next two
/// are cut by a SIGKILL; the second run fetches nothing of the finished ones.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_over_xet_then_resume_fetches_only_unfinished_terms() {
    let env = Env::new(40 * MIB, 4 * MIB, 8 * MIB).await;
    let mut child = env
        .rbee()
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    let finished: Vec<String> = loop {
        let sent = env.xet().xorb_bytes;
        // A xorb sent whole is a finished term. Xorbs stop short of 8 MiB by less than one
        // chunk (at most 128 KiB; random bytes are stored as they are).
        let full = 8 * MIB - 256 * 1024;
        let whole: Vec<String> = sent
            .iter()
            .filter(|(_, b)| **b >= full)
            .map(|(h, _)| h.clone())
            .collect();
        let started = sent.values().any(|b| (MIB..full).contains(b));
        if whole.len() >= 2 && started {
            break whole;
        }
        if child.try_wait().unwrap().is_some() {
            let mut err = String::new();
            std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
            panic!("rbee exited too early: {err}; {:?}", env.xet());
        }
        assert!(Instant::now() < deadline, "no progress: {:?}", env.xet());
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    child.kill().unwrap(); // SIGKILL: no chance to save anything more
    child.wait().unwrap();
    let first = env.settled().await;
    assert!(
        first.xorb_bytes_total() < env.data.len() as u64,
        "killed too late to test a resume: {first:?}"
    );
    assert_eq!(env.files_named(".part").len(), 1, "the partial is kept");

    env.hub.reset_counters();
    let out = env.rbee().output().unwrap();
    assert!(
        out.status.success(),
        "second run failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let second = env.settled().await;
    assert_eq!(second.bridge_bytes, 0, "{second:?}");
    for xorb in &finished {
        assert_eq!(
            second.xorb_bytes.get(xorb).copied().unwrap_or(0),
            0,
            "a finished term is not fetched again: {second:?}"
        );
    }
    assert!(
        second.xorb_bytes_total() < env.data.len() as u64,
        "{second:?}"
    );
    let finals = env.files_named(&format!("/{FILE}"));
    assert_eq!(finals.len(), 1, "{finals:?}");
    assert!(
        std::fs::read(&finals[0]).unwrap() == env.data,
        "content differs"
    );
    assert!(env.files_named(".part").is_empty());
    assert!(env.files_named(".part.state").is_empty());
}

/// The events `rbee --json` printed, one JSON document a line.
fn json_events(stdout: &[u8]) -> Vec<serde_json::Value> {
    String::from_utf8_lossy(stdout)
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

fn event<'a>(events: &'a [serde_json::Value], name: &str) -> &'a serde_json::Value {
    events
        .iter()
        .find(|e| e["event"] == name)
        .unwrap_or_else(|| panic!("no {name} event in {events:?}"))
}

/// A second revision with a tenth of its chunks changed, with the chunk cache rbee keeps by
/// default: it fetches only the chunks it lacks, and `--json`'s `completed` event says how
/// many bytes came over the network and how many from the cache.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[allow(clippy::print_stderr)]
async fn a_second_revision_fetches_only_its_new_chunks_and_says_so_in_json() {
    let env = Env::new(4 * MIB, 1 << 40, MIB).await;
    let size = env.data.len() as u64;
    let second = rbee_fake_hub::mutate_chunks(&env.data, 0.10, 0);
    let v2 = env
        .hub
        .root()
        .join("hf")
        .join(REPO)
        .join(".revisions")
        .join("v2")
        .join(FILE);
    std::fs::create_dir_all(v2.parent().unwrap()).unwrap();
    std::fs::write(&v2, &second).unwrap();

    let mut numbers = Vec::new();
    for reference in [format!("hf:{REPO}/{FILE}"), format!("hf:{REPO}@v2/{FILE}")] {
        env.hub.reset_counters();
        let out = env.rbee_with(&["--json"], &reference).output().unwrap();
        assert!(
            out.status.success(),
            "{reference}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let events = json_events(&out.stdout);
        let done = event(&events, "completed");
        let counters = env.settled().await;
        assert_eq!(counters.bridge_bytes, 0, "{counters:?}");
        if numbers.is_empty() {
            // The first file's chunks are linked where the download keeps them, not copied.
            let packs: u64 = std::fs::read_dir(env.dir.path().join("cache").join(".xet-packs-v1"))
                .unwrap()
                .flatten()
                .map(|e| e.metadata().unwrap().len())
                .sum();
            assert!(
                packs * 10 < size,
                "the chunk cache holds {packs} bytes after a {size}-byte download"
            );
        }
        numbers.push((
            done["fetched_bytes"].as_u64().expect("fetched_bytes"),
            done["reused_bytes"].as_u64().expect("reused_bytes"),
            counters.xorb_bytes_total(),
        ));
    }
    let (fetched, reused, _) = numbers[0];
    assert_eq!(
        (fetched, reused),
        (size, 0),
        "a first download reuses nothing"
    );
    let (fetched, reused, sent) = numbers[1];
    eprintln!(
        "second revision: {fetched} bytes fetched, {reused} reused, the hub sent {sent}, of {size}"
    );
    assert_eq!(fetched + reused, size, "{numbers:?}");
    assert!(fetched * 100 <= size * 15, "fetched {fetched} of {size}");
    assert!(
        sent * 100 <= size * 15,
        "the hub sent {sent} of {size} bytes"
    );
    // The hub sends whole xorb ranges (chunks the file does not need included, for the
    // cache), so it may send more than the file bytes rbee rebuilt from them, never less.
    assert!(
        fetched <= sent,
        "rbee says it fetched {fetched} bytes, the hub sent {sent}: {numbers:?}"
    );
    let packs = std::fs::read_dir(env.dir.path().join("cache").join(".xet-packs-v1"))
        .unwrap()
        .count();
    assert!(packs > 0, "the chunk cache lives in rbee's cache folder");
    let got: Vec<_> = env
        .files_named(&format!("/{FILE}"))
        .iter()
        .map(|p| std::fs::read(p).unwrap())
        .collect();
    assert!(got.contains(&env.data) && got.contains(&second));
}

/// Killed with SIGKILL in the middle of terms, the second run asks the CAS for the missing
/// bytes only: it fetches them plus at most about a chunk per term cut short, not the
/// finished start of those terms again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[allow(clippy::print_stderr)]
async fn kill_9_in_the_middle_of_terms_refetches_only_the_missing_bytes() {
    let env = Env::new(40 * MIB, 4 * MIB, 16 * MIB).await;
    let size = env.data.len() as u64;
    let mut child = env
        .rbee()
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        // Both terms in flight well past their start: several state saves have happened.
        let sent = env.xet().xorb_bytes;
        if sent.values().filter(|b| **b >= 6 * MIB).count() >= 2 {
            break;
        }
        if child.try_wait().unwrap().is_some() {
            let mut err = String::new();
            std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
            panic!("rbee exited too early: {err}; {:?}", env.xet());
        }
        assert!(Instant::now() < deadline, "no progress: {:?}", env.xet());
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    child.kill().unwrap();
    child.wait().unwrap();
    env.settled().await;

    env.hub.reset_counters();
    let out = env
        .rbee_with(&["--json"], &format!("hf:{REPO}/{FILE}"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "second run failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let events = json_events(&out.stdout);
    let held = event(&events, "file_started")["resumed_from"]
        .as_u64()
        .unwrap();
    assert!(
        held >= 4 * MIB,
        "the first run left too little to test: {held}"
    );
    let second = env.settled().await;
    assert_eq!(second.bridge_bytes, 0, "{second:?}");
    let missing = size - held;
    // A gap per term that was in flight (two connections); each costs at most the chunk that
    // holds its first missing byte (128 KiB at most, plus its header).
    let slack = 2 * (128 * 1024 + 8);
    let sent = second.xorb_bytes_total();
    eprintln!("after kill -9: {sent} bytes fetched for {missing} missing of {size}");
    assert!(
        sent <= missing + slack,
        "fetched {sent} bytes for {missing} missing: {second:?}"
    );
    let finals = env.files_named(&format!("/{FILE}"));
    assert_eq!(finals.len(), 1, "{finals:?}");
    assert!(std::fs::read(&finals[0]).unwrap() == env.data);
}
