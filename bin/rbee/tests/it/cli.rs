//! The real `rbee` binary, end to end, with `file:` references in temp dirs.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use assert_cmd::prelude::*;
use predicates::prelude::*;
use serde_json::Value;

use crate::support::{interrupt, json_lines};

struct Env {
    dir: tempfile::TempDir,
}

impl Env {
    fn new() -> Self {
        Self {
            dir: tempfile::tempdir().unwrap(),
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
            .env_remove("RBEE_CACHE_DIR")
            .env("HOME", self.dir.path().join("home"))
            .env("NO_COLOR", "1");
        cmd
    }

    fn file(&self, name: &str, data: &[u8]) -> PathBuf {
        let path = self.dir.path().join(name);
        std::fs::write(&path, data).unwrap();
        path
    }

    fn json(&self, args: &[&str]) -> Value {
        let out = self.rbee().arg("--json").args(args).output().unwrap();
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap()
    }
}

#[test]
fn a_large_local_file_shows_progress_and_registers() {
    let env = Env::new();
    // 2 GiB, sparse: as many bytes to hash as a real model, without writing them.
    let src = env.dir.path().join("big.gguf");
    let f = std::fs::File::create(&src).unwrap();
    f.set_len(2 << 30).unwrap();
    drop(f);

    let out = env
        .rbee()
        .args(["--json", "model", "download"])
        .arg(format!("file:{}", src.display()))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let events = json_lines(&out.stdout);
    let names: Vec<&str> = events
        .iter()
        .map(|e| e["event"].as_str().unwrap())
        .collect();
    assert_eq!(names.first(), Some(&"started"), "{names:?}");
    assert_eq!(names.last(), Some(&"completed"));
    let progress: Vec<u64> = events
        .iter()
        .filter(|e| e["event"] == "progress")
        .map(|e| e["bytes"].as_u64().unwrap())
        .collect();
    assert!(!progress.is_empty(), "live progress while hashing 2 GiB");
    assert!(progress.windows(2).all(|w| w[0] <= w[1]));
    let last = events.last().unwrap();
    assert_eq!(last["bytes"], 2u64 << 30);
    let path = PathBuf::from(last["paths"][0].as_str().unwrap());
    assert_eq!(std::fs::metadata(&path).unwrap().len(), 2 << 30);
    assert!(path.starts_with(env.cache()));

    // Human mode prints the path on stdout (for `llama-server -m $(rbee model download …)`).
    env.rbee()
        .args(["model", "download"])
        .arg(format!("file:{}", src.display()))
        .assert()
        .success()
        .stdout(predicate::str::contains(path.to_str().unwrap()))
        .stderr(predicate::str::contains("already present"));
}

#[test]
fn list_info_verify_du_rm_work_and_speak_json() {
    let env = Env::new();
    let src = env.file("tiny.gguf", b"GGUF tiny model");
    env.rbee()
        .args(["model", "download", "file:tiny.gguf"])
        .assert()
        .success();

    let list = env.json(&["model", "list"]);
    assert_eq!(list["version"], 1);
    let items = list["models"].as_array().unwrap();
    assert_eq!(items.len(), 1);
    let id = items[0]["id"].as_str().unwrap().to_string();
    assert_eq!(items[0]["status"]["state"], "ready");
    assert_eq!(items[0]["reference"], format!("file:{}", src.display()));
    assert_eq!(items[0]["size"], 15);

    let info = env.json(&["model", "info", &id]);
    assert_eq!(info["files"][0]["sha256"], sha256sum(&src));
    // The reference works as well as the id, relative paths included.
    let by_ref = env.json(&["model", "info", "file:tiny.gguf"]);
    assert_eq!(by_ref["id"], id.as_str());

    let verify = env.json(&["model", "verify"]);
    assert_eq!(verify["ok"], true);

    let du = env.json(&["model", "du"]);
    assert_eq!(du["total_bytes"], 15);
    assert_eq!(du["entries"][0]["id"], id.as_str());

    env.rbee()
        .args(["model", "list"])
        .assert()
        .success()
        .stdout(predicate::str::contains(&id));

    let removed = env.json(&["model", "rm", &id]);
    assert_eq!(removed["removed"][0]["id"], id.as_str());
    assert_eq!(
        env.json(&["model", "list"])["models"]
            .as_array()
            .unwrap()
            .len(),
        0
    );
    // The original file is untouched.
    assert_eq!(std::fs::read(&src).unwrap(), b"GGUF tiny model");

    env.rbee()
        .args(["model", "rm", &id])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("not in the catalog"));
}

/// The digest by the system tool, independent of the code under test.
fn sha256sum(path: &Path) -> String {
    let out = Command::new("sha256sum").arg(path).output().unwrap();
    String::from_utf8(out.stdout).unwrap()[..64].to_string()
}

#[test]
fn a_file_changed_after_download_fails_verify() {
    let env = Env::new();
    // Replace the catalog's file (a hard link of the source) with different bytes.
    env.file("m.gguf", b"original bytes");
    env.rbee()
        .args(["model", "download", "file:m.gguf"])
        .assert()
        .success();
    let info = env.json(&["model", "info", "file:m.gguf"]);
    let path = PathBuf::from(info["path"].as_str().unwrap());
    // Same size, different content: only the hash can tell.
    std::fs::remove_file(&path).unwrap();
    std::fs::write(&path, b"tampered bytes").unwrap();

    env.rbee()
        .args(["model", "verify", "file:m.gguf"])
        .assert()
        .code(1)
        .stdout(predicate::str::contains("m.gguf changed on disk"))
        .stderr(predicate::str::contains("failed verification"));
    let info = env.json(&["model", "info", "file:m.gguf"]);
    assert_eq!(info["status"]["state"], "failed");

    // Downloading again repairs it.
    env.rbee()
        .args(["model", "download", "file:m.gguf"])
        .assert()
        .success();
    env.rbee()
        .args(["model", "verify", "file:m.gguf"])
        .assert()
        .success();
    assert_eq!(std::fs::read(&path).unwrap(), b"original bytes");
}

#[test]
fn bad_references_exit_2_naming_the_part() {
    let env = Env::new();
    env.rbee()
        .args(["model", "download", "hf:TheBloke/../x"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("repository name `..`"))
        .stderr(predicate::str::contains("a valid example: hf:"));
    env.rbee()
        .args(["model", "download", "s3:bucket/key"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("unknown scheme `s3:`"));
    env.rbee()
        .args(["model", "download", "gh:o/r", "--quant", "Q4_K_M"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("--quant applies to hf:"));
    env.rbee().args(["model", "frobnicate"]).assert().code(2);
    env.rbee()
        .args(["--json", "model", "download", "hf:o/r:Q4 K"])
        .assert()
        .code(2)
        .stdout(predicate::str::contains("\"code\":\"invalid_reference\""));
}

#[test]
fn missing_or_unusable_files_exit_1_with_a_clear_message() {
    let env = Env::new();
    env.rbee()
        .args(["model", "download", "file:/definitely/not/here.gguf"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains(
            "there is no file or folder at /definitely/not/here.gguf",
        ));
    env.file("empty.gguf", b"");
    env.rbee()
        .args(["model", "download", "file:empty.gguf"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("is empty"));
    std::fs::create_dir(env.dir.path().join("docs")).unwrap();
    env.file("docs/README.md", b"hi");
    env.rbee()
        .args(["model", "download", "file:docs"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("holds no model files"));
    assert_eq!(
        env.json(&["model", "list"])["models"]
            .as_array()
            .unwrap()
            .len(),
        0
    );
}

#[test]
fn dry_run_fetches_nothing() {
    let env = Env::new();
    env.file("m.gguf", &[1u8; 4096]);
    env.rbee()
        .args(["model", "download", "--dry-run", "file:m.gguf"])
        .assert()
        .success()
        .stdout(predicate::str::contains("m.gguf"))
        .stdout(predicate::str::contains("free space"))
        .stdout(predicate::str::contains("Nothing was downloaded"));
    let plan = env.json(&["model", "download", "--dry-run", "file:m.gguf"]);
    assert_eq!(plan["total_bytes"], 4096);
    assert_eq!(plan["files"][0]["action"], "fetch");
    assert!(plan["free_bytes"].as_u64().unwrap() > 0);
    assert_eq!(
        env.json(&["model", "list"])["models"]
            .as_array()
            .unwrap()
            .len(),
        0
    );
}

#[test]
fn ctrl_c_cancels_with_exit_130_and_keeps_the_catalog_true() {
    let env = Env::new();
    // A sparse file far too big to hash before the interrupt arrives.
    let src = env.dir.path().join("huge.gguf");
    let f = std::fs::File::create(&src).unwrap();
    f.set_len(64 << 30).unwrap();
    drop(f);
    let mut child = env
        .rbee()
        .args(["--json", "model", "download", "file:huge.gguf"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut lines = BufReader::new(stdout).lines();
    // Wait for real progress, then interrupt.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let line = lines.next().expect("events until interrupted").unwrap();
        if line.contains("\"event\":\"progress\"") {
            break;
        }
        assert!(Instant::now() < deadline, "no progress event");
    }
    let sent = Instant::now();
    interrupt(child.id());
    let rest: Vec<String> = lines.map_while(Result::ok).collect();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(130));
    assert!(sent.elapsed() < Duration::from_secs(10));
    assert!(
        rest.last().unwrap().contains("\"event\":\"cancelled\""),
        "{rest:?}"
    );
    // With --json the final event says it all; nothing is repeated on stderr.
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    assert!(!stderr.contains("Cancelled"), "{stderr}");
    assert_eq!(
        rest.iter()
            .filter(|l| l.contains("\"event\":\"cancelled\""))
            .count(),
        1,
        "{rest:?}"
    );
    let info = env.json(&["model", "info", "file:huge.gguf"]);
    assert_eq!(info["status"]["state"], "incomplete");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_url_whose_content_changed_at_the_same_size_is_fetched_again() {
    let env = Env::new();
    let root = env.dir.path().join("served");
    std::fs::create_dir_all(&root).unwrap();
    let hub = rbee_fake_hub::FakeHub::start(rbee_fake_hub::FakeHubConfig::new(&root))
        .await
        .unwrap();
    let served = root.join("model.gguf");
    std::fs::write(&served, b"version one!").unwrap();
    let url = hub.file_url("model.gguf").to_string();
    let out = env
        .rbee()
        .args(["model", "download", &url])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let path = PathBuf::from(String::from_utf8(out.stdout).unwrap().trim());
    assert_eq!(std::fs::read(&path).unwrap(), b"version one!");

    // Same size, new bytes, new modification time (so a new ETag).
    std::fs::write(&served, b"version two!").unwrap();
    let f = std::fs::File::options().write(true).open(&served).unwrap();
    f.set_modified(std::time::SystemTime::now() + Duration::from_secs(5))
        .unwrap();
    drop(f);
    let out = env
        .rbee()
        .args(["model", "download", &url])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(std::fs::read(&path).unwrap(), b"version two!");
}
