//! A full disk never bricks the catalog: a download that runs out of space does not stay
//! `downloading`, and `list`, `du`, `info`, `verify` and `rm` work while the disk is full.
//!
//! The catalog lives on a small tmpfs mounted by the test. Mounting needs root: CI runs as root
//! and sets `RBEE_REQUIRE_TMPFS=1`, which makes a failed mount a test failure; elsewhere the test
//! is skipped with a message on stderr.

use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use rbee_artifact::Sha256Digest;
use rbee_fake_hub::{FakeHub, FakeHubConfig, Tmpfs};
use serde_json::Value;

use crate::support::{bytes, text};

const MIB: usize = 1 << 20;

struct Env {
    dir: tempfile::TempDir,
    hub: FakeHub,
    fs: Tmpfs,
}

impl Env {
    fn rbee(&self) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_rbee"));
        cmd.arg("--cache-dir")
            .arg(self.fs.path().join("cache"))
            .current_dir(self.dir.path())
            .env_remove("RBEE_CACHE_DIR")
            .env("HOME", self.dir.path().join("home"))
            .env("NO_COLOR", "1");
        cmd
    }

    fn run(&self, args: &[&str]) -> Output {
        self.rbee().arg("--json").args(args).output().unwrap()
    }

    fn json(&self, args: &[&str]) -> Value {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "{args:?} on a full disk: {}",
            text(&out)
        );
        serde_json::from_slice(&out.stdout).unwrap()
    }

    fn status_of(&self, id: &str) -> String {
        self.json(&["model", "list"])["models"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["id"] == id)
            .unwrap_or_else(|| panic!("{id} is not listed"))["status"]["state"]
            .as_str()
            .unwrap()
            .to_string()
    }
}

fn id_of_download(out: &Output) -> String {
    assert!(out.status.success(), "{}", text(out));
    crate::support::events(out)
        .into_iter()
        .find(|e| e["event"] == "completed")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_mid_download_leaves_a_catalog_that_lists_verifies_and_removes() {
    let Some(fs) = Tmpfs::mount("24m") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    std::fs::create_dir_all(&root).unwrap();
    let small = bytes(64 << 10, 41);
    let big = bytes(8 * MIB, 42);
    std::fs::write(root.join("small.bin"), &small).unwrap();
    std::fs::write(root.join("big.bin"), &big).unwrap();
    let hub = FakeHub::start(FakeHubConfig::new(&root).with_rate_limit(2 * MIB as u64))
        .await
        .unwrap();
    let env = Env { dir, hub, fs };
    let small_id =
        id_of_download(&env.run(&["model", "download", env.hub.file_url("small.bin").as_str()]));

    // Room for the data and the first record, not one block more: the disk is full from the
    // first byte of the download on, and the final record cannot be written.
    let (_, block) = env.fs.free();
    let filler = env.fs.fill_leaving(big.len() as u64 + block);
    let big_url = env.hub.file_url("big.bin").to_string();
    let out = env
        .rbee()
        .args(["--quiet", "model", "download", &big_url])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let stderr = text(&out);
    assert!(stderr.contains("No space left"), "{stderr}");
    assert_eq!(env.fs.free().0, 0, "the disk is full");

    // Everything that only reads, and `rm`, works with the disk still full.
    let listing = env.json(&["model", "list"]);
    let big_entry = listing["models"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["id"] != small_id.as_str())
        .unwrap_or_else(|| panic!("the big download is not listed: {listing}"))
        .clone();
    let big_id = big_entry["id"].as_str().unwrap().to_string();
    let state = env.status_of(&big_id);
    assert!(
        state == "incomplete" || state == "failed",
        "a download that ran out of space shows as {state}"
    );
    assert_eq!(env.status_of(&small_id), "ready");
    env.json(&["model", "du"]);
    let info = env.json(&["model", "info", &big_id]);
    assert_ne!(info["status"]["state"], "downloading", "{info}");
    let verified = env.json(&["model", "verify", &small_id]);
    assert_eq!(verified["ok"], true, "{verified}");
    let removed = env.json(&["model", "rm", &big_id]);
    assert_eq!(removed["removed"][0]["id"], big_id.as_str(), "{removed}");

    // With room again, the same download completes with the published bytes.
    std::fs::remove_file(filler).unwrap();
    let id = id_of_download(&env.run(&["model", "download", &big_url]));
    let info = env.json(&["model", "info", &id]);
    assert_eq!(info["status"]["state"], "ready");
    assert_eq!(
        info["files"][0]["sha256"],
        Sha256Digest::of(&big).to_string().as_str()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_download_on_a_full_disk_opens_as_incomplete() {
    let Some(fs) = Tmpfs::mount("16m") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    std::fs::create_dir_all(&root).unwrap();
    std::fs::write(root.join("slow.bin"), bytes(4 * MIB, 43)).unwrap();
    let hub = FakeHub::start(FakeHubConfig::new(&root).with_rate_limit(MIB as u64))
        .await
        .unwrap();
    let env = Env { dir, hub, fs };
    let mut child = env
        .rbee()
        .args([
            "--quiet",
            "model",
            "download",
            env.hub.file_url("slow.bin").as_str(),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while env.hub.counters_for("/files/slow.bin").bytes_sent < (MIB as u64) / 2 {
        assert!(Instant::now() < deadline, "the download did not start");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    child.kill().unwrap(); // SIGKILL: the record still says `downloading`
    child.wait().unwrap();
    env.fs.fill();

    let listing = env.json(&["model", "list"]);
    let entry = &listing["models"].as_array().unwrap()[0];
    assert_eq!(entry["status"]["state"], "incomplete", "{listing}");
    let id = entry["id"].as_str().unwrap().to_string();
    let record: Value = serde_json::from_slice(
        &std::fs::read(PathBuf::from(entry["dir"].as_str().unwrap()).join("metadata.json"))
            .unwrap(),
    )
    .unwrap();
    assert_eq!(
        record["status"]["state"], "downloading",
        "the record could not be rewritten on a full disk, and need not be"
    );
    env.json(&["model", "du"]);
    env.json(&["model", "info", &id]);
    env.json(&["model", "rm", &id]);
    assert!(
        env.json(&["model", "list"])["models"]
            .as_array()
            .unwrap()
            .is_empty()
    );
}
