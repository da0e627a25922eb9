//! kill -9 soak: the real `rbee` CLI is killed with SIGKILL at random moments while it downloads
//! an `hf:` GGUF, a digest-pinned URL fetched over parallel ranges and a URL without a digest,
//! all from the fake hub. After every kill nothing in the catalog may be wrong: an entry marked
//! ready and any file under its final name hold exactly the published bytes. Then every download
//! is run to the end and must finish with the published digest.
//!
//! The moments come from a seed printed with every failure; `RBEE_SOAK_SEED=N` replays a run.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use rbee_artifact::Sha256Digest;
use rbee_fake_hub::{FakeHub, FakeHubConfig};
use serde_json::Value;

use crate::support::{bytes, text};

const MIB: usize = 1 << 20;
const KILLS: usize = 20;
/// Per-connection cap, so each download lasts long enough to be killed at any stage.
const CAP: u64 = 12 << 20;

/// One download the soak interrupts.
struct Case {
    name: &'static str,
    reference: String,
    /// File name in the catalog → published bytes.
    files: Vec<(&'static str, Vec<u8>)>,
}

struct Soak {
    dir: tempfile::TempDir,
    hub: FakeHub,
    cases: Vec<Case>,
    seed: u64,
}

impl Soak {
    async fn new(seed: u64) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        let gguf = bytes(24 * MIB, 31);
        let pinned = bytes(48 * MIB, 32);
        let unpinned = bytes(16 * MIB, 33);
        let repo = root.join("hf/soak-org/Soak-GGUF");
        std::fs::create_dir_all(&repo).unwrap();
        std::fs::write(repo.join("soak.Q4_K_M.gguf"), &gguf).unwrap();
        std::fs::write(repo.join("README.md"), b"# soak\n").unwrap();
        std::fs::write(root.join("pinned.gguf"), &pinned).unwrap();
        std::fs::write(root.join("unpinned.gguf"), &unpinned).unwrap();
        let hub = FakeHub::start(FakeHubConfig::new(&root).with_rate_limit(CAP))
            .await
            .unwrap();
        let cases = vec![
            Case {
                name: "hf",
                reference: "hf:soak-org/Soak-GGUF:Q4_K_M".into(),
                files: vec![("soak.Q4_K_M.gguf", gguf)],
            },
            Case {
                name: "url-pinned-parallel",
                reference: format!(
                    "{}#sha256={}",
                    hub.file_url("pinned.gguf"),
                    Sha256Digest::of(&pinned)
                ),
                files: vec![("pinned.gguf", pinned)],
            },
            Case {
                name: "url-unpinned",
                reference: hub.file_url("unpinned.gguf").to_string(),
                files: vec![("unpinned.gguf", unpinned)],
            },
        ];
        Self {
            dir,
            hub,
            cases,
            seed,
        }
    }

    fn cache(&self) -> PathBuf {
        self.dir.path().join("cache")
    }

    fn rbee(&self) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_rbee"));
        cmd.arg("--cache-dir")
            .arg(self.cache())
            .current_dir(self.dir.path())
            .env("HOME", self.dir.path().join("home"))
            .env("HF_HOME", self.dir.path().join("hf-home"))
            .env("HF_ENDPOINT", self.hub.url().as_str())
            .env("NO_COLOR", "1");
        for var in [
            "RBEE_CACHE_DIR",
            "HF_TOKEN",
            "HUGGING_FACE_HUB_TOKEN",
            "HF_TOKEN_PATH",
            "HF_HUB_CACHE",
            "HF_HUB_OFFLINE",
            "XDG_CACHE_HOME",
        ] {
            cmd.env_remove(var);
        }
        cmd
    }

    /// Every `metadata.json` under the catalog, parsed; unreadable ones are skipped (a record
    /// caught mid-write is never left half-written, but a damaged one is not this test's concern).
    fn records(&self) -> Vec<(PathBuf, Value)> {
        let mut out = Vec::new();
        walk(&self.cache(), &mut |p| {
            if p.file_name().is_some_and(|n| n == "metadata.json")
                && let Ok(raw) = std::fs::read(p)
                && let Ok(v) = serde_json::from_slice::<Value>(&raw)
            {
                out.push((p.parent().unwrap().to_path_buf(), v));
            }
        });
        out
    }

    fn published(&self, name: &str) -> Option<&[u8]> {
        self.cases
            .iter()
            .flat_map(|c| &c.files)
            .find(|(n, _)| *n == name)
            .map(|(_, d)| d.as_slice())
    }

    /// Nothing ready is wrong, and no final file name holds other bytes than the published ones.
    fn assert_nothing_wrong(&self, after: &str) {
        let seed = self.seed;
        for (entry, record) in self.records() {
            if record["status"]["state"] == "ready" {
                for f in record["files"].as_array().unwrap() {
                    let rel = f["path"].as_str().unwrap();
                    let name = Path::new(rel).file_name().unwrap().to_str().unwrap();
                    let Some(want) = self.published(name) else {
                        continue;
                    };
                    let got = std::fs::read(entry.join("files").join(rel)).unwrap_or_else(|e| {
                        panic!("seed {seed}, {after}: ready file {rel} unreadable: {e}")
                    });
                    assert!(
                        got == want,
                        "seed {seed}, {after}: {rel} is ready with other bytes ({} B, want {} B)",
                        got.len(),
                        want.len()
                    );
                    assert_eq!(
                        f["sha256"].as_str(),
                        Some(Sha256Digest::of(want).to_string().as_str()),
                        "seed {seed}, {after}: recorded digest of {rel}"
                    );
                }
            }
        }
        walk(&self.cache(), &mut |p| {
            let name = p.file_name().unwrap().to_str().unwrap();
            if let Some(want) = self.published(name) {
                let got = std::fs::read(p).unwrap();
                assert!(
                    got == want,
                    "seed {seed}, {after}: {} carries a final name on wrong bytes ({} of {} B)",
                    p.display(),
                    got.len(),
                    want.len()
                );
            }
        });
    }
}

fn walk(dir: &Path, f: &mut dyn FnMut(&Path)) {
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        let Ok(meta) = std::fs::symlink_metadata(&p) else {
            continue;
        };
        if meta.is_dir() {
            walk(&p, f);
        } else {
            f(&p);
        }
    }
}

/// xorshift64*: small, seedable, good enough to spread kill moments.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_at_random_moments_never_leaves_wrong_bytes_ready() {
    let seed = std::env::var("RBEE_SOAK_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
                | 1
        });
    let soak = Soak::new(seed).await;
    let mut rng = Rng(seed);
    let mut kills = 0;
    let mut rounds = 0;
    let started = Instant::now();
    while kills < KILLS {
        rounds += 1;
        assert!(
            rounds <= KILLS * 4,
            "seed {seed}: only {kills} kills in {rounds} rounds"
        );
        let case = &soak.cases[rounds % soak.cases.len()];
        let mut child = soak
            .rbee()
            .args(["--quiet", "model", "download", &case.reference])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        // Anywhere from start-up and resolving to the last bytes, verification and the rename.
        let moment = Duration::from_millis(5 + soak_moment(&mut rng));
        tokio::time::sleep(moment).await;
        let after = format!(
            "round {rounds} ({}, killed after {} ms)",
            case.name,
            moment.as_millis()
        );
        if child.try_wait().unwrap().is_some() {
            // It finished first: start this case over so later rounds still kill it mid-way.
            soak.assert_nothing_wrong(&after);
            let out = soak
                .rbee()
                .args(["--quiet", "model", "rm", &case.reference])
                .output()
                .unwrap();
            assert!(out.status.success(), "seed {seed}: rm: {}", text(&out));
            continue;
        }
        child.kill().unwrap();
        child.wait().unwrap();
        kills += 1;
        soak.assert_nothing_wrong(&after);
    }
    for case in &soak.cases {
        let out = soak
            .rbee()
            .args(["--json", "model", "download", &case.reference])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "seed {seed}: final run of {}: {}",
            case.name,
            text(&out)
        );
    }
    soak.assert_nothing_wrong("the final runs");
    let ready: Vec<_> = soak
        .records()
        .into_iter()
        .filter(|(_, r)| r["status"]["state"] == "ready")
        .collect();
    assert_eq!(
        ready.len(),
        soak.cases.len(),
        "seed {seed}: every case ends ready"
    );
    let out = soak.rbee().args(["model", "verify"]).output().unwrap();
    assert!(out.status.success(), "seed {seed}: verify: {}", text(&out));
    #[allow(clippy::print_stderr)]
    {
        eprintln!(
            "soak seed {seed}: {kills} kills in {rounds} rounds, {:.1} s",
            started.elapsed().as_secs_f64()
        );
    }
}

/// A kill moment in milliseconds: mostly spread over a download's life, sometimes very early
/// (start-up, resolving) so those stages are hit too.
fn soak_moment(rng: &mut Rng) -> u64 {
    if rng.below(5) == 0 {
        rng.below(60)
    } else {
        rng.below(1500)
    }
}
