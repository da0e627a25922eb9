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

#[test]
fn a_json_listing_whose_reader_stops_early_ends_quietly() {
    let env = Env::new();
    let many = env.dir.path().join("many");
    std::fs::create_dir(&many).unwrap();
    // Far more than a pipe's buffer of listing once every file is named with its digest.
    for i in 0..2000 {
        std::fs::write(many.join(format!("part-{i:04}.bin")), i.to_string()).unwrap();
    }
    env.rbee()
        .args(["model", "download", "file:many"])
        .assert()
        .success();
    let mut child = env
        .rbee()
        .args(["--json", "model", "list"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let mut start = [0u8; 1024];
    std::io::Read::read_exact(&mut stdout, &mut start).unwrap();
    assert!(
        start.starts_with(b"{"),
        "{}",
        String::from_utf8_lossy(&start)
    );
    drop(stdout);
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{:?}: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
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

/// stdout of a `--json` run that is exactly one JSON document of this output's version.
fn one_document(out: &std::process::Output) -> Value {
    let doc: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("not one JSON document ({e}): {}", crate::support::text(out)));
    assert_eq!(doc["version"], 1, "{doc}");
    doc
}

#[test]
fn json_gives_one_document_per_command_and_one_final_event_per_download() {
    let env = Env::new();
    env.file("m.gguf", b"GGUF json contract");
    let run = |args: &[&str]| env.rbee().arg("--json").args(args).output().unwrap();

    for args in [
        vec!["ls"],
        vec!["model", "du"],
        vec!["model", "verify"],
        vec!["pull", "--dry-run", "file:m.gguf"],
    ] {
        let out = run(&args);
        assert!(
            out.status.success(),
            "{args:?}: {}",
            crate::support::text(&out)
        );
        one_document(&out);
    }
    // Failures: one document, a specific code, nothing repeated on stderr.
    for (args, exit, code) in [
        (vec!["model", "info", "hf:o/nothing"], 1, "not_found"),
        (vec!["rm", "hf:o/nothing"], 1, "not_found"),
        (vec!["model", "info", "hg:o/r"], 2, "invalid_reference"),
        (vec!["ls", "--no-such-flag"], 2, "invalid_argument"),
        (vec!["ps"], 2, "invalid_argument"),
    ] {
        let out = run(&args);
        assert_eq!(out.status.code(), Some(exit), "{args:?}");
        let doc = one_document(&out);
        assert_eq!(doc["error"]["code"], code, "{args:?}: {doc}");
        let message = doc["error"]["message"].as_str().unwrap();
        assert!(!message.is_empty());
        assert!(
            !String::from_utf8_lossy(&out.stderr).contains(message),
            "{args:?}"
        );
    }
    // A download: JSON lines, the last (and only final) one saying how it ended, also when it
    // fails before it starts.
    for (args, last, code) in [
        (vec!["pull", "file:m.gguf"], "completed", None),
        (
            vec!["pull", "file:m.gguf", "--rate-limit", "fast"],
            "failed",
            Some("invalid_argument"),
        ),
        (
            vec!["pull", "file:m.gguf", "--mirror", "hive-a:8600"],
            "failed",
            Some("invalid_argument"),
        ),
        (
            vec!["pull", "file:nothing.gguf"],
            "failed",
            Some("not_found"),
        ),
    ] {
        let out = run(&args);
        let lines = json_lines(&out.stdout);
        let finals: Vec<&Value> = lines
            .iter()
            .filter(|e| {
                matches!(
                    e["event"].as_str(),
                    Some("completed" | "failed" | "cancelled")
                )
            })
            .collect();
        assert_eq!(finals.len(), 1, "{args:?}: {lines:?}");
        let end = lines.last().unwrap();
        assert_eq!(end["event"], last, "{args:?}: {lines:?}");
        assert!(lines.iter().all(|l| l["version"] == 1), "{lines:?}");
        if let Some(code) = code {
            assert_eq!(end["code"], code, "{end}");
            assert_ne!(out.status.code(), Some(0));
            assert!(
                out.stderr.is_empty(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
}

#[test]
fn paths_are_references_and_near_misses_say_what_was_meant() {
    let env = Env::new();
    let src = env.file("m.gguf", b"GGUF a bare path");
    for typed in ["./m.gguf".to_string(), src.display().to_string()] {
        let out = env.rbee().args(["pull", &typed]).output().unwrap();
        assert!(
            out.status.success(),
            "{typed}: {}",
            crate::support::text(&out)
        );
    }
    let list = env.json(&["ls"]);
    assert_eq!(list["models"].as_array().unwrap().len(), 1, "{list}");
    assert_eq!(
        list["models"][0]["reference"],
        format!("file:{}", src.display())
    );

    for (typed, says) in [
        ("hg:org/repo", "did you mean hf:org/repo?"),
        ("m.gguf", "did you mean file:m.gguf?"),
        ("/no/such/m.gguf", "file:PATH"),
    ] {
        env.rbee()
            .args(["pull", typed])
            .assert()
            .code(2)
            .stderr(predicate::str::contains(says));
    }
}

#[test]
fn environment_conventions() {
    let env = Env::new();
    env.file("m.gguf", b"GGUF env");
    // Read-only commands leave no catalog folder behind.
    for args in [
        vec!["ls"],
        vec!["model", "du"],
        vec!["model", "verify"],
        vec!["model", "info", "hf:o/r"],
        vec!["rm", "hf:o/r"],
    ] {
        let _ = env.rbee().args(&args).output().unwrap();
        assert!(!env.cache().exists(), "{args:?} created the catalog folder");
    }
    // Boolean variables take the usual spellings.
    for value in ["1", "yes", "true", "0", "no", "false"] {
        env.rbee()
            .env("RBEE_OFFLINE", value)
            .args(["pull", "file:m.gguf"])
            .assert()
            .success();
    }
    env.rbee()
        .env("RBEE_OFFLINE", "maybe")
        .args(["pull", "file:m.gguf"])
        .assert()
        .code(2);
    // `~` in RBEE_CACHE_DIR is the home folder, not a folder named `~`.
    let out = Command::new(env!("CARGO_BIN_EXE_rbee"))
        .current_dir(env.dir.path())
        .env("HOME", env.dir.path().join("home"))
        .env("RBEE_CACHE_DIR", "~/models")
        .args(["pull", "file:m.gguf"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", crate::support::text(&out));
    let path = String::from_utf8(out.stdout).unwrap();
    assert!(
        path.starts_with(env.dir.path().join("home/models").to_str().unwrap()),
        "{path}"
    );
    assert!(!env.dir.path().join("~").exists());
    // Help names the variables without a dangling `=`, whatever they hold.
    let help = env
        .rbee()
        .env("RBEE_HIVE_URL", "")
        .env("RBEE_OFFLINE", "1")
        .args(["pull", "--help"])
        .output()
        .unwrap();
    let help = String::from_utf8(help.stdout).unwrap();
    assert!(help.contains("[env: RBEE_OFFLINE]"), "{help}");
    assert!(help.contains("[env: RBEE_HIVE_URL]"), "{help}");
    assert!(
        !help.contains("RBEE_OFFLINE=") && !help.contains("RBEE_HIVE_URL="),
        "{help}"
    );
}

#[test]
fn top_level_verbs_completions_man_page_and_version() {
    let env = Env::new();
    let src = env.file("m.gguf", b"GGUF verbs");
    env.rbee().args(["pull", "file:m.gguf"]).assert().success();
    env.rbee()
        .args(["ls"])
        .assert()
        .success()
        .stdout(predicate::str::contains("file--m.gguf-"));
    let id = env.json(&["ls"])["models"][0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    env.rbee()
        .args(["rm", &id])
        .assert()
        .success()
        .stdout(predicate::str::contains(format!("removed {id}")));
    assert!(src.exists());
    for shell in ["bash", "zsh", "fish", "powershell"] {
        let out = env.rbee().args(["completions", shell]).output().unwrap();
        assert!(out.status.success(), "{shell}");
        let script = String::from_utf8(out.stdout).unwrap();
        assert!(
            script.contains("rbee") && script.contains("pull"),
            "{shell}"
        );
    }
    let man = env.rbee().arg("man").output().unwrap();
    let man = String::from_utf8(man.stdout).unwrap();
    assert!(man.starts_with(".ie") || man.contains(".TH rbee"), "{man}");
    assert!(man.contains("pull"));
    let version = env.rbee().arg("--version").output().unwrap();
    let version = String::from_utf8(version.stdout).unwrap();
    assert!(version.starts_with("rbee 0.1.0 ("), "{version}");
    assert!(version.contains("built 20"), "{version}");
    env.rbee()
        .arg("ps")
        .assert()
        .code(2)
        .stderr(predicate::str::contains("--hive URL"));
}

#[test]
fn local_dir_places_the_catalogs_verified_files_where_asked() {
    use std::os::unix::fs::MetadataExt;
    let env = Env::new();
    env.file("m.gguf", b"GGUF local dir");
    std::fs::create_dir(env.dir.path().join("snap")).unwrap();
    env.file("snap/a.safetensors", b"weights a");
    env.file("snap/config.json", b"{}");

    let out = env
        .rbee()
        .args(["pull", "file:m.gguf", "--local-dir", "out"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", crate::support::text(&out));
    let placed = env.dir.path().join("out/m.gguf");
    assert_eq!(
        String::from_utf8(out.stdout).unwrap().trim(),
        placed.to_str().unwrap()
    );
    assert_eq!(std::fs::read(&placed).unwrap(), b"GGUF local dir");
    let info = env.json(&["model", "info", "file:m.gguf"]);
    assert_eq!(info["status"]["state"], "ready");
    let in_catalog = std::fs::metadata(info["path"].as_str().unwrap()).unwrap();
    assert_eq!(
        std::fs::metadata(&placed).unwrap().ino(),
        in_catalog.ino(),
        "a hard link"
    );
    env.rbee().args(["model", "verify"]).assert().success();
    // Again: nothing to do, same answer.
    env.rbee()
        .args(["pull", "file:m.gguf", "--local-dir", "out"])
        .assert()
        .success()
        .stdout(predicate::str::contains(placed.to_str().unwrap()));

    // A folder: every file under DIR, and DIR is the path to use.
    let out = env
        .rbee()
        .args(["pull", "file:snap", "--local-dir", "snap-out"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", crate::support::text(&out));
    let dir = env.dir.path().join("snap-out");
    assert_eq!(
        String::from_utf8(out.stdout).unwrap().trim(),
        dir.to_str().unwrap()
    );
    assert_eq!(
        std::fs::read(dir.join("a.safetensors")).unwrap(),
        b"weights a"
    );
    assert_eq!(std::fs::read(dir.join("config.json")).unwrap(), b"{}");

    // The placed copy shares the catalog's bytes: removing the entry frees none of them.
    let removed = env.json(&["rm", "file:m.gguf"]);
    assert_eq!(removed["removed"][0]["bytes"], 0);
    assert_eq!(std::fs::read(&placed).unwrap(), b"GGUF local dir");
}

#[test]
fn sigterm_cancels_with_exit_143() {
    let env = Env::new();
    let src = env.dir.path().join("huge.gguf");
    let f = std::fs::File::create(&src).unwrap();
    f.set_len(64 << 30).unwrap();
    drop(f);
    let mut child = env
        .rbee()
        .args(["--json", "pull", "file:huge.gguf"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    loop {
        let line = lines.next().expect("events until terminated").unwrap();
        if line.contains("\"event\":\"progress\"") {
            break;
        }
    }
    let sent = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(sent.success());
    let rest: Vec<String> = lines.map_while(Result::ok).collect();
    assert_eq!(child.wait().unwrap().code(), Some(143));
    assert!(
        rest.last().unwrap().contains("\"event\":\"cancelled\""),
        "{rest:?}"
    );
    let info = env.json(&["model", "info", "file:huge.gguf"]);
    assert_eq!(info["status"]["state"], "incomplete");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_cache_budget_evicts_the_least_recently_used_unpinned_model() {
    let env = Env::new();
    let root = env.dir.path().join("served");
    std::fs::create_dir_all(&root).unwrap();
    let hub = rbee_fake_hub::FakeHub::start(rbee_fake_hub::FakeHubConfig::new(&root))
        .await
        .unwrap();
    let mut ids = Vec::new();
    for (i, name) in ["a.gguf", "b.gguf", "c.gguf", "d.gguf"].iter().enumerate() {
        std::fs::write(root.join(name), crate::support::bytes(1000, i as u8)).unwrap();
    }
    let url = |name: &str| hub.file_url(name).to_string();
    for name in ["a.gguf", "b.gguf"] {
        let out = env
            .rbee()
            .args(["pull", &url(name), "--max-cache-size", "2500B"])
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", crate::support::text(&out));
        ids.push(
            env.json(&["model", "info", &url(name)])["id"]
                .as_str()
                .unwrap()
                .to_string(),
        );
    }
    // `a` is the least recently used, but pinned: `b` goes.
    env.json(&["model", "pin", &ids[0]]);
    let out = env
        .rbee()
        .args(["pull", &url("c.gguf")])
        .env("RBEE_MAX_CACHE_SIZE", "2500B")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", crate::support::text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!("evicted {} (1000 B freed)", ids[1])),
        "{stderr}"
    );
    let listed = env.json(&["ls"]);
    let listed: Vec<&str> = listed["models"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    assert!(listed.contains(&ids[0].as_str()) && !listed.contains(&ids[1].as_str()));

    // Nothing unpinned is left to evict for a download that does not fit: refused, nothing
    // fetched, the pinned model kept.
    std::fs::write(root.join("big.gguf"), crate::support::bytes(3000, 9)).unwrap();
    let out = env
        .rbee()
        .args([
            "--json",
            "pull",
            &url("big.gguf"),
            "--max-cache-size",
            "2500B",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", crate::support::text(&out));
    let last = crate::support::events(&out).pop().unwrap();
    assert_eq!(last["code"], "over_budget", "{last}");
    assert!(env.json(&["model", "info", &ids[0]])["id"].is_string());

    env.rbee()
        .args(["pull", &url("d.gguf"), "--max-cache-size", "lots"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains(
            "--max-cache-size: `lots` is not a size",
        ));
}

#[test]
fn prune_lists_then_removes_failed_and_orphaned_entries() {
    let env = Env::new();
    env.file("m.gguf", b"GGUF keep me");
    env.rbee().args(["pull", "file:m.gguf"]).assert().success();
    // A folder left without a record (as a download that died before writing one leaves).
    let orphan = env.cache().join("hf/o/r/default/files");
    std::fs::create_dir_all(&orphan).unwrap();
    std::fs::write(orphan.join("x.gguf.part"), [1; 2048]).unwrap();

    let plan = env.json(&["prune", "--dry-run"]);
    assert_eq!(plan["dry_run"], true);
    assert_eq!(plan["items"][0]["id"], "hf--o--r--default");
    assert_eq!(plan["items"][0]["reason"], "orphan");
    assert_eq!(plan["bytes"], 2048);
    assert!(orphan.exists());
    env.rbee()
        .args(["model", "prune", "--dry-run"])
        .assert()
        .success()
        .stdout(predicate::str::contains("would remove hf--o--r--default"));

    let done = env.json(&["model", "prune"]);
    assert_eq!(done["items"].as_array().unwrap().len(), 1);
    assert!(!env.cache().join("hf").exists());
    assert_eq!(
        env.json(&["model", "info", "file:m.gguf"])["status"]["state"],
        "ready"
    );
    env.rbee()
        .args(["prune", "--older-than", "soon"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("e.g. 7d"));
}
