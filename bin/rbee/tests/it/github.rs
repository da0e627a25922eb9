//! The real `rbee` binary downloading `gh:` references from the fake hub's GitHub releases
//! protocol (`GITHUB_API_URL`), with the catalog (`--cache-dir`) in a temp dir: downloads that
//! verify and register, every error case with its message and exit code, tokens that never
//! show, and a cancelled private download that resumes.

use std::io::Read;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use rbee_artifact::Sha256Digest;
use rbee_fake_hub::{FakeHub, FakeHubConfig, Fault};
use serde_json::Value;

use crate::support::{bytes, events, failure, file_paths, interrupt_and_wait, text};

const MIB: usize = 1 << 20;
const TOKEN: &str = "ghp_CliTestTokenNeverShown0123456789";

struct Env {
    dir: tempfile::TempDir,
    hub: FakeHub,
}

impl Env {
    /// A hub accepting [`TOKEN`] and serving `o/r` with releases v1 (two GGUFs and a
    /// checksum file), v2 (the latest: one model), v3-rc1 (a pre-release) and v4 (a draft),
    /// plus the private `o/secret` with v1.
    async fn new(cap: Option<u64>) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        let release = |repo: &str, tag: &str, settings: &str, assets: &[(&str, Vec<u8>)]| {
            let folder = root.join("gh").join(repo).join(tag);
            std::fs::create_dir_all(&folder).unwrap();
            std::fs::write(folder.join(".release.json"), settings).unwrap();
            for (name, data) in assets {
                std::fs::write(folder.join(name), data).unwrap();
            }
        };
        release(
            "o/r",
            "v1",
            r#"{"published_at": "2025-01-01T00:00:00Z"}"#,
            &[
                ("model.gguf", model_v1()),
                ("model-Q8_0.gguf", bytes(MIB, 2)),
                ("SHA256SUMS", b"sums\n".to_vec()),
            ],
        );
        release(
            "o/r",
            "v2",
            r#"{"published_at": "2025-02-01T00:00:00Z", "target_commitish": "main"}"#,
            &[
                ("tiny.gguf", bytes(MIB + 3, 3)),
                ("notes.txt", b"n".to_vec()),
            ],
        );
        release(
            "o/r",
            "v3-rc1",
            r#"{"prerelease": true, "published_at": "2025-03-01T00:00:00Z"}"#,
            &[("tiny.gguf", bytes(100, 4))],
        );
        release(
            "o/r",
            "v4",
            r#"{"draft": true}"#,
            &[("tiny.gguf", bytes(100, 5))],
        );
        release("o/secret", "v1", "{}", &[("private.gguf", secret_model())]);
        std::fs::write(root.join("gh/o/secret/.repo.json"), r#"{"private": true}"#).unwrap();

        let mut config = FakeHubConfig::new(&root).with_gh_token(TOKEN);
        if let Some(cap) = cap {
            config = config.with_rate_limit(cap);
        }
        let hub = FakeHub::start(config).await.unwrap();
        Self { dir, hub }
    }

    fn cache(&self) -> PathBuf {
        self.dir.path().join("cache")
    }

    /// `rbee` with the fake hub as the GitHub API and no token from the developer's
    /// environment.
    fn rbee(&self) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_rbee"));
        cmd.arg("--cache-dir")
            .arg(self.cache())
            .current_dir(self.dir.path())
            .env("HOME", self.dir.path().join("home"))
            .env("GITHUB_API_URL", self.hub.url().as_str())
            .env("NO_COLOR", "1");
        for var in [
            "RBEE_CACHE_DIR",
            "GITHUB_TOKEN",
            "GH_TOKEN",
            "XDG_CACHE_HOME",
        ] {
            cmd.env_remove(var);
        }
        cmd
    }

    /// `rbee --json model download REF ARGS…`.
    fn download(&self, reference: &str, args: &[&str]) -> Output {
        self.rbee()
            .args(["--json", "model", "download", reference])
            .args(args)
            .output()
            .unwrap()
    }

    fn info(&self, id: &str) -> Value {
        let out = self
            .rbee()
            .args(["--json", "model", "info", id])
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", text(&out));
        serde_json::from_slice(&out.stdout).unwrap()
    }

    fn cdn_bytes(&self, repo: &str, tag: &str, name: &str) -> u64 {
        self.hub
            .counters_for(&format!("/files/gh/{repo}/{tag}/{name}"))
            .bytes_sent
    }
}

fn model_v1() -> Vec<u8> {
    bytes(3 * MIB + 11, 1)
}

fn secret_model() -> Vec<u8> {
    bytes(8 * MIB, 6)
}

fn ok(out: &Output) {
    assert!(out.status.success(), "{}", text(out));
    assert!(
        events(out).iter().any(|e| e["event"] == "completed"),
        "{}",
        text(out)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_named_asset_downloads_verifies_and_registers() {
    let env = Env::new(None).await;
    ok(&env.download("gh:o/r@v1/model.gguf", &[]));
    let record = env.info("gh--o--r--v1+model.gguf");
    assert_eq!(record["status"]["state"], "ready", "{record}");
    assert_eq!(record["revision"], "v1");
    assert_eq!(file_paths(&record), ["model.gguf"]);
    let want = Sha256Digest::of(&model_v1()).to_string();
    assert_eq!(record["files"][0]["sha256"], want.as_str());
    let path = PathBuf::from(record["path"].as_str().unwrap());
    assert_eq!(std::fs::read(path).unwrap(), model_v1());
    assert!(env.cdn_bytes("o/r", "v1", "model.gguf") >= model_v1().len() as u64);
    assert_eq!(env.cdn_bytes("o/r", "v1", "model-Q8_0.gguf"), 0);

    // Asking again is not an error and moves no bytes.
    env.hub.reset_counters();
    ok(&env.download("gh:o/r@v1/model.gguf", &[]));
    assert_eq!(env.cdn_bytes("o/r", "v1", "model.gguf"), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn latest_picks_the_single_model_and_a_glob_takes_several() {
    let env = Env::new(None).await;
    // --dry-run shows the plan of the latest published release (not the pre-release).
    let out = env
        .rbee()
        .args(["--json", "model", "download", "gh:o/r", "--dry-run"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let plan: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(plan["revision"], "v2", "{plan}");
    // It reads the GGUF header for the memory estimate, and no more.
    assert!(
        env.cdn_bytes("o/r", "v2", "tiny.gguf") <= 256 << 10,
        "a dry run fetched more than the header"
    );

    ok(&env.download("gh:o/r", &[]));
    let record = env.info("gh--o--r--latest");
    assert_eq!(record["revision"], "v2");
    assert_eq!(file_paths(&record), ["tiny.gguf"]);

    // A pre-release when named by tag; --revision is the same as @TAG.
    ok(&env.download("gh:o/r", &["--revision", "v3-rc1"]));
    assert_eq!(env.info("gh--o--r--v3-rc1")["revision"], "v3-rc1");

    ok(&env.download("gh:o/r@v1/*.gguf", &[]));
    let record = env.info("gh:o/r@v1/*.gguf");
    assert_eq!(file_paths(&record), ["model-Q8_0.gguf", "model.gguf"]);
    assert_eq!(record["status"]["state"], "ready");
}

/// (reference, extra arguments, exit code, error code, texts the message must contain).
type ErrorCase = (
    &'static str,
    &'static [&'static str],
    i32,
    &'static str,
    &'static [&'static str],
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_error_has_its_message_and_exit_code() {
    let env = Env::new(None).await;
    let cases: &[ErrorCase] = &[
        (
            "gh:o/nope",
            &[],
            1,
            "not_found",
            &["o/nope was not found", "GITHUB_TOKEN"],
        ),
        (
            "gh:o/r@v9",
            &[],
            1,
            "not_found",
            &["no release tagged `v9`", "v3-rc1 (pre-release), v2, v1"],
        ),
        (
            "gh:o/r@v4",
            &[],
            1,
            "not_found",
            &["no release tagged `v4`"],
        ),
        (
            "gh:o/r@v1/missing.gguf",
            &[],
            1,
            "invalid_request",
            &[
                "no asset named `missing.gguf`",
                "model.gguf",
                "gh:o/r@v1/NAME",
            ],
        ),
        (
            "gh:o/r@v1",
            &[],
            1,
            "invalid_request",
            &["ambiguous", "model-Q8_0.gguf", "model.gguf"],
        ),
        (
            "gh:o/r@v1/*.onnx",
            &[],
            1,
            "invalid_request",
            &["matches `*.onnx`"],
        ),
        (
            "gh:o/r@v2",
            &["--exclude", "*.gguf"],
            1,
            "invalid_request",
            &["no model file", "--exclude"],
        ),
        (
            "gh:o",
            &[],
            2,
            "invalid_reference",
            &["gh:ggml-org/llama.cpp@b4500"],
        ),
        ("gh:o/r/a/b", &[], 2, "invalid_reference", &["asset name"]),
        (
            "gh:o/r",
            &["--quant", "Q4_K_M"],
            2,
            "invalid_argument",
            &["--quant"],
        ),
    ];
    for (reference, args, exit, code, needles) in cases {
        let out = env.download(reference, args);
        let (got_exit, got_code, message) = failure(&out);
        assert_eq!(
            (got_exit, got_code.as_str()),
            (*exit, *code),
            "{reference}: {message}"
        );
        for needle in *needles {
            assert!(
                message.contains(needle),
                "{reference}: `{needle}` not in: {message}"
            );
        }
    }
    // Nothing half-done was registered as ready.
    let out = env
        .rbee()
        .args(["--json", "model", "list"])
        .output()
        .unwrap();
    let list: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(
        list["models"]
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["status"]["state"] != "ready"),
        "{list}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_rate_limit_fails_with_the_reset_time_and_a_short_one_is_waited_out() {
    let env = Env::new(None).await;
    env.hub
        .set_faults(vec![Fault::rate_limited(403, 1).path("repos/**").times(1)]);
    ok(&env.download("gh:o/r@v2", &[]));

    env.hub
        .set_faults(vec![Fault::rate_limited(403, 40 * 60).path("repos/**")]);
    let out = env.download("gh:o/r@v1/model.gguf", &[]);
    let (exit, code, message) = failure(&out);
    assert_eq!((exit, code.as_str()), (1, "rate_limited"), "{message}");
    assert!(message.contains("resets at"), "{message}");
    assert!(
        message.contains("in 40 minutes") || message.contains("in 41 minutes"),
        "{message}"
    );
    assert!(message.contains("GITHUB_TOKEN"), "{message}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_private_release_needs_a_token_that_never_shows() {
    let env = Env::new(None).await;
    let out = env.download("gh:o/secret@v1/private.gguf", &[]);
    let (exit, code, message) = failure(&out);
    assert_eq!((exit, code.as_str()), (1, "not_found"), "{message}");
    assert!(message.contains("GITHUB_TOKEN"), "{message}");

    let out = env
        .rbee()
        .env("GITHUB_TOKEN", "ghp_not_accepted_token_987")
        .args(["--json", "-vv", "model", "download", "gh:o/secret@v1"])
        .output()
        .unwrap();
    let (exit, code, message) = failure(&out);
    assert_eq!((exit, code.as_str()), (1, "unauthorized"), "{message}");
    assert!(message.contains("invalid or expired"), "{message}");
    assert!(
        !text(&out).contains("ghp_not_accepted_token_987"),
        "{}",
        text(&out)
    );

    // GH_TOKEN works as well as GITHUB_TOKEN; with debug logs on, the token still never shows.
    let out = env
        .rbee()
        .env("GH_TOKEN", TOKEN)
        .args(["--json", "-vv", "model", "download", "gh:o/secret@v1"])
        .output()
        .unwrap();
    ok(&out);
    assert!(
        !text(&out).contains(TOKEN),
        "the token leaked: {}",
        text(&out)
    );
    let record = env.info("gh--o--secret--v1");
    assert_eq!(record["status"]["state"], "ready");
    let path = PathBuf::from(record["path"].as_str().unwrap());
    assert_eq!(std::fs::read(path).unwrap(), secret_model());
    let metadata = walk_text(&env.cache());
    assert!(!metadata.contains(TOKEN), "the token is in the catalog");
}

/// Every small text file under `dir`, concatenated (metadata, state files).
fn walk_text(dir: &std::path::Path) -> String {
    let mut out = String::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = entry.path();
        if p.is_dir() {
            out.push_str(&walk_text(&p));
        } else if p.metadata().is_ok_and(|m| m.len() < MIB as u64) {
            out.push_str(&String::from_utf8_lossy(
                &std::fs::read(&p).unwrap_or_default(),
            ));
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_private_download_exits_130_and_resumes_through_the_asset_api() {
    // 8 MiB at 2 MiB/s per response: long enough to interrupt half-way.
    let env = Env::new(Some(2 * MIB as u64)).await;
    let sent = || env.cdn_bytes("o/secret", "v1", "private.gguf");
    let mut child = env
        .rbee()
        .env("GITHUB_TOKEN", TOKEN)
        .args(["--json", "model", "download", "gh:o/secret@v1"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stdout.read_to_string(&mut s);
        s
    });
    let deadline = Instant::now() + Duration::from_secs(60);
    while sent() < 2 * MIB as u64 {
        assert!(child.try_wait().unwrap().is_none(), "rbee ended too early");
        assert!(
            Instant::now() < deadline,
            "only {} bytes after a minute",
            sent()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(interrupt_and_wait(&mut child).await, Some(130));
    assert!(reader.join().unwrap().contains("\"cancelled\""));
    tokio::time::sleep(Duration::from_millis(300)).await;
    let first = sent();

    env.hub.reset_counters();
    env.hub.set_rate_limit(None);
    let out = env
        .rbee()
        .env("GITHUB_TOKEN", TOKEN)
        .args(["--json", "model", "download", "gh:o/secret@v1"])
        .output()
        .unwrap();
    ok(&out);
    let second = sent();
    let size = secret_model().len() as u64;
    assert!(
        second < size && first + second < size + MIB as u64,
        "first run {first} B, second {second} B of {size}: the resume re-fetched too much"
    );
    let record = env.info("gh--o--secret--v1");
    let path = PathBuf::from(record["path"].as_str().unwrap());
    assert_eq!(std::fs::read(path).unwrap(), secret_model());
}
