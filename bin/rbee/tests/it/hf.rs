//! The real `rbee` binary downloading `hf:` references from the fake hub (`HF_ENDPOINT`), with
//! the catalog (`--cache-dir`) and the HuggingFace cache (`HF_HOME`) in temp dirs. The hub's
//! byte counters show what each run fetched.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use rbee_artifact::Sha256Digest;
use rbee_fake_hub::{FakeHub, FakeHubConfig, Fault};
use serde_json::Value;

use crate::support::{bytes, events, failure, file_paths, text};

const MIB: usize = 1 << 20;
const TOKEN: &str = "hf_cli_test_token_0123456789";

/// Files of one repository: (path, bytes).
type Files = Vec<(&'static str, Vec<u8>)>;

struct Env {
    dir: tempfile::TempDir,
    hub: FakeHub,
}

impl Env {
    /// A hub serving `repos` (`ORG/REPO` → files), accepting [`TOKEN`].
    async fn new(repos: &[(&str, Files)]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        for (repo, files) in repos {
            for (path, data) in files {
                let p = root.join("hf").join(repo).join(path);
                std::fs::create_dir_all(p.parent().unwrap()).unwrap();
                std::fs::write(p, data).unwrap();
            }
        }
        std::fs::create_dir_all(&root).unwrap();
        let hub = FakeHub::start(FakeHubConfig::new(&root).with_hf_token(TOKEN))
            .await
            .unwrap();
        Self { dir, hub }
    }

    fn repo_dir(&self, repo: &str) -> PathBuf {
        self.dir.path().join("root/hf").join(repo)
    }

    fn hf_home(&self) -> PathBuf {
        self.dir.path().join("hf-home")
    }

    fn cache(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// `rbee` with catalog `cache`, the fake hub as `HF_ENDPOINT`, no token, nothing from the
    /// developer's environment.
    fn rbee(&self, cache: &str) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_rbee"));
        cmd.arg("--cache-dir")
            .arg(self.cache(cache))
            .current_dir(self.dir.path())
            .env("HOME", self.dir.path().join("home"))
            .env("HF_HOME", self.hf_home())
            .env("HF_ENDPOINT", self.hub.url().as_str())
            .env("NO_COLOR", "1");
        for var in [
            "RBEE_CACHE_DIR",
            "HF_TOKEN",
            "HUGGING_FACE_HUB_TOKEN",
            "HF_TOKEN_PATH",
            "HF_HUB_CACHE",
            "HUGGINGFACE_HUB_CACHE",
            "HF_HUB_OFFLINE",
            "XDG_CACHE_HOME",
        ] {
            cmd.env_remove(var);
        }
        cmd
    }

    /// `rbee --json model download REF ARGS…` with catalog `cache`.
    fn download(&self, cache: &str, reference: &str, args: &[&str]) -> Output {
        self.rbee(cache)
            .args(["--json", "model", "download", reference])
            .args(args)
            .output()
            .unwrap()
    }

    fn info(&self, cache: &str, id: &str) -> Value {
        let out = self
            .rbee(cache)
            .args(["--json", "model", "info", id])
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", text(&out));
        serde_json::from_slice(&out.stdout).unwrap()
    }

    /// Body bytes the CDN sent for `path` of `repo` on `main`.
    fn cdn_bytes(&self, repo: &str, path: &str) -> u64 {
        self.hub
            .counters_for(&format!("/files/hf/{repo}/{path}"))
            .bytes_sent
    }
}

fn ok(out: &Output) -> Vec<Value> {
    assert!(out.status.success(), "{}", text(out));
    let events = events(out);
    assert!(
        events.iter().any(|e| e["event"] == "completed"),
        "{}",
        text(out)
    );
    events
}

fn gguf_repo() -> Files {
    vec![
        ("README.md", b"# tiny\n".to_vec()),
        ("tiny.Q2_K.gguf", bytes(MIB, 1)),
        ("tiny.Q4_K_M.gguf", bytes(2 * MIB + 17, 2)),
        ("tiny.Q8_0.gguf", bytes(3 * MIB, 3)),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_quant_downloads_verifies_and_registers_with_its_commit() {
    let env = Env::new(&[("org/tiny-GGUF", gguf_repo())]).await;
    let out = env.download("c", "hf:org/tiny-GGUF:Q4_K_M", &[]);
    ok(&out);
    let record = env.info("c", "hf--org--tiny-GGUF--Q4_K_M");
    assert_eq!(record["status"]["state"], "ready");
    assert_eq!(file_paths(&record), vec!["tiny.Q4_K_M.gguf"]);
    let want = Sha256Digest::of(&bytes(2 * MIB + 17, 2)).to_string();
    assert_eq!(record["files"][0]["sha256"], want.as_str());
    let commit = record["revision"].as_str().unwrap().to_string();
    assert_eq!(commit.len(), 40, "{record}");
    let path = PathBuf::from(record["path"].as_str().unwrap());
    assert_eq!(std::fs::read(path).unwrap(), bytes(2 * MIB + 17, 2));
    assert_eq!(env.cdn_bytes("org/tiny-GGUF", "tiny.Q8_0.gguf"), 0);
    assert_eq!(env.cdn_bytes("org/tiny-GGUF", "tiny.Q2_K.gguf"), 0);

    // The default quant is Q4_K_M: same bytes, its own entry.
    let out = env.download("c", "org/tiny-GGUF", &[]);
    ok(&out);
    let record = env.info("c", "hf--org--tiny-GGUF--default");
    assert_eq!(file_paths(&record), vec!["tiny.Q4_K_M.gguf"]);

    // Pinned to the commit: recorded as asked, and `--quant` spells the quant.
    let out = env.download(
        "c",
        &format!("hf:org/tiny-GGUF@{commit}"),
        &["--quant", "q8_0"],
    );
    ok(&out);
    let record = env.info("c", &format!("hf--org--tiny-GGUF--Q8_0@{commit}"));
    assert_eq!(record["revision"], commit.as_str());
    assert_eq!(file_paths(&record), vec!["tiny.Q8_0.gguf"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_split_set_and_a_safetensors_snapshot_arrive_whole() {
    let env = Env::new(&[
        (
            "org/big-GGUF",
            vec![
                ("Q8_0/big-Q8_0-00001-of-00003.gguf", bytes(MIB, 1)),
                ("Q8_0/big-Q8_0-00002-of-00003.gguf", bytes(MIB, 2)),
                ("Q8_0/big-Q8_0-00003-of-00003.gguf", bytes(4321, 3)),
                ("big-Q2_K.gguf", bytes(MIB, 4)),
            ],
        ),
        (
            "org/tiny-llama",
            vec![
                ("README.md", b"readme".to_vec()),
                ("config.json", br#"{"model_type": "llama"}"#.to_vec()),
                ("tokenizer.json", br#"{"model": {}}"#.to_vec()),
                ("tokenizer_config.json", b"{}".to_vec()),
                ("model.safetensors", bytes(MIB, 5)),
                ("original/consolidated.00.pth", bytes(1000, 6)),
            ],
        ),
    ])
    .await;
    ok(&env.download("c", "hf:org/big-GGUF:Q8_0", &[]));
    let record = env.info("c", "hf--org--big-GGUF--Q8_0");
    assert_eq!(
        file_paths(&record),
        vec![
            "Q8_0/big-Q8_0-00001-of-00003.gguf",
            "Q8_0/big-Q8_0-00002-of-00003.gguf",
            "Q8_0/big-Q8_0-00003-of-00003.gguf"
        ]
    );
    assert_eq!(record["status"]["state"], "ready");

    ok(&env.download("c", "hf:org/tiny-llama", &[]));
    let record = env.info("c", "hf--org--tiny-llama--default");
    assert_eq!(
        file_paths(&record),
        vec![
            "config.json",
            "model.safetensors",
            "tokenizer.json",
            "tokenizer_config.json"
        ]
    );
    // `--include` overrides the choice.
    ok(&env.download(
        "c",
        "hf:org/tiny-llama",
        &["--include", "*.json", "--exclude", "tokenizer*"],
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_in_the_hf_cache_are_not_fetched_again() {
    let env = Env::new(&[("org/tiny-GGUF", gguf_repo())]).await;
    // First catalog: download and also fill the HuggingFace cache.
    ok(&env.download("first", "hf:org/tiny-GGUF:Q4_K_M", &["--hf-cache"]));
    let sent = env.cdn_bytes("org/tiny-GGUF", "tiny.Q4_K_M.gguf");
    assert!(sent >= (2 * MIB) as u64);
    let repo = env.hf_home().join("hub/models--org--tiny-GGUF");
    let commit = std::fs::read_to_string(repo.join("refs/main")).unwrap();
    assert!(
        repo.join("snapshots")
            .join(&commit)
            .join("tiny.Q4_K_M.gguf")
            .is_file()
    );

    // Second catalog: the file comes from the HuggingFace cache, not the network.
    env.hub.reset_counters();
    let out = env.download("second", "hf:org/tiny-GGUF:Q4_K_M", &[]);
    let events = ok(&out);
    assert!(
        events
            .iter()
            .any(|e| e["event"] == "file_reused" && e["path"] == "tiny.Q4_K_M.gguf"),
        "{}",
        text(&out)
    );
    assert_eq!(env.cdn_bytes("org/tiny-GGUF", "tiny.Q4_K_M.gguf"), 0);
    assert_eq!(
        env.hub
            .counters_for(&format!("/org/tiny-GGUF/resolve/{commit}/tiny.Q4_K_M.gguf"))
            .requests,
        0
    );
    let record = env.info("second", "hf--org--tiny-GGUF--Q4_K_M");
    assert_eq!(record["status"]["state"], "ready");

    // Offline, a third catalog still gets it from the HuggingFace cache.
    env.hub.reset_counters();
    let out = env
        .rbee("third")
        .env("HF_HUB_OFFLINE", "1")
        .args(["--json", "model", "download", "hf:org/tiny-GGUF:Q4_K_M"])
        .output()
        .unwrap();
    ok(&out);
    assert_eq!(
        env.hub.counters().total_requests,
        0,
        "offline used the network"
    );
    // Offline and not cached: a clear error naming what is missing.
    let out = env
        .rbee("third")
        .env("HF_HUB_OFFLINE", "1")
        .args(["--json", "model", "download", "hf:org/other-GGUF"])
        .output()
        .unwrap();
    let (exit, code, message) = failure(&out);
    assert_eq!((exit, code.as_str()), (1, "offline"));
    assert!(
        message.contains("org/other-GGUF@main is not in the HuggingFace cache"),
        "{message}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_hub_error_has_its_message_and_exit_code() {
    let env = Env::new(&[
        ("org/tiny-GGUF", gguf_repo()),
        ("org/gated-GGUF", vec![("g.Q4_K_M.gguf", bytes(1000, 1))]),
        ("org/private-GGUF", vec![("p.Q4_K_M.gguf", bytes(1000, 2))]),
    ])
    .await;
    std::fs::write(
        env.repo_dir("org/gated-GGUF").join("fakehub.json"),
        br#"{"gated": "manual"}"#,
    )
    .unwrap();
    std::fs::write(
        env.repo_dir("org/private-GGUF").join("fakehub.json"),
        br#"{"private": true}"#,
    )
    .unwrap();

    let (exit, code, message) = failure(&env.download("c", "hf:org/missing", &[]));
    assert_eq!((exit, code.as_str()), (1, "not_found"));
    assert!(
        message.contains("repository org/missing was not found")
            && message.contains("check the name")
            && message.contains("HF_TOKEN"),
        "{message}"
    );

    let (exit, code, message) = failure(&env.download("c", "hf:org/gated-GGUF", &[]));
    assert_eq!((exit, code.as_str()), (1, "unauthorized"));
    assert!(
        message.contains(&format!(
            "accept the licence at {}org/gated-GGUF",
            env.hub.url()
        )) && message.contains("HF_TOKEN"),
        "{message}"
    );

    let (exit, code, message) =
        failure(&env.download("c", "hf:org/tiny-GGUF/tiny.Q5_K_M.gguf", &[]));
    assert_eq!((exit, code.as_str()), (1, "not_found"));
    assert!(
        message.contains("`tiny.Q5_K_M.gguf` does not exist in org/tiny-GGUF")
            && message.contains("tiny.Q4_K_M.gguf"),
        "{message}"
    );

    let (exit, code, message) = failure(&env.download("c", "hf:org/tiny-GGUF@nope", &[]));
    assert_eq!((exit, code.as_str()), (1, "not_found"));
    assert!(
        message.contains("revision `nope` does not exist"),
        "{message}"
    );

    let (exit, code, message) = failure(&env.download("c", "hf:org/tiny-GGUF:Q4_K", &[]));
    assert_eq!((exit, code.as_str()), (1, "invalid_request"));
    assert!(
        message.contains("no Q4_K quantization")
            && message.contains("Q2_K")
            && message.contains("Q4_K_M")
            && message.contains("Q8_0"),
        "{message}"
    );

    // A token the hub does not know: private repos stay hidden, and the message says why.
    let out = env
        .rbee("c")
        .env("HF_TOKEN", "hf_not_a_known_token")
        .args(["--json", "model", "download", "hf:org/private-GGUF"])
        .output()
        .unwrap();
    let (exit, code, message) = failure(&out);
    assert_eq!((exit, code.as_str()), (1, "not_found"));
    assert!(
        message.contains("your HuggingFace token cannot read it"),
        "{message}"
    );
    assert!(!text(&out).contains("hf_not_a_known_token"));

    // A malformed reference is a usage error.
    let out = env.download("c", "hf:org/../x", &[]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));

    // Nothing failed was marked ready.
    let list = env
        .rbee("c")
        .args(["--json", "model", "list"])
        .output()
        .unwrap();
    let list: Value = serde_json::from_slice(&list.stdout).unwrap();
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
async fn with_the_right_token_private_and_gated_download_and_the_token_stays_secret() {
    let env = Env::new(&[
        ("org/gated-GGUF", vec![("g.Q4_K_M.gguf", bytes(1000, 1))]),
        ("org/private-GGUF", vec![("p.Q4_K_M.gguf", bytes(1000, 2))]),
    ])
    .await;
    std::fs::write(
        env.repo_dir("org/gated-GGUF").join("fakehub.json"),
        br#"{"gated": "auto"}"#,
    )
    .unwrap();
    std::fs::write(
        env.repo_dir("org/private-GGUF").join("fakehub.json"),
        br#"{"private": true}"#,
    )
    .unwrap();
    // The token from the file under HF_HOME, as `huggingface-cli login` leaves it.
    std::fs::create_dir_all(env.hf_home()).unwrap();
    std::fs::write(env.hf_home().join("token"), TOKEN).unwrap();
    for reference in ["hf:org/gated-GGUF", "hf:org/private-GGUF"] {
        let out = env.download("c", reference, &[]);
        ok(&out);
        assert!(!text(&out).contains(TOKEN), "{reference}: {}", text(&out));
    }
    assert!(
        !tree_contains(&env.cache("c"), TOKEN),
        "the token reached the catalog"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limits_and_dropped_connections_are_ridden_out() {
    let env = Env::new(&[("org/tiny-GGUF", gguf_repo())]).await;
    env.hub.set_faults(vec![
        Fault::too_many_requests(0)
            .path("/api/models/org/tiny-GGUF/revision/*")
            .times(2),
        Fault::drop_after(MIB as u64)
            .path("/files/hf/org/tiny-GGUF/tiny.Q4_K_M.gguf")
            .times(1),
    ]);
    ok(&env.download("c", "hf:org/tiny-GGUF:Q4_K_M", &[]));
    let api = env
        .hub
        .counters_for("/api/models/org/tiny-GGUF/revision/main");
    assert_eq!(api.status(429), 2);
    assert_eq!(api.status(200), 1);
    let record = env.info("c", "hf--org--tiny-GGUF--Q4_K_M");
    assert_eq!(record["status"]["state"], "ready");
}

fn tree_contains(dir: &Path, needle: &str) -> bool {
    std::fs::read_dir(dir).unwrap().any(|e| {
        let path = e.unwrap().path();
        if path.is_dir() {
            tree_contains(&path, needle)
        } else {
            std::fs::read(&path)
                .map(|b| b.windows(needle.len()).any(|w| w == needle.as_bytes()))
                .unwrap_or(false)
        }
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_moving_branch_is_re_resolved_and_only_changed_files_are_fetched() {
    let env = Env::new(&[(
        "org/moving",
        vec![
            ("config.json", br#"{"v": 1}"#.to_vec()),
            ("model-00001-of-00002.safetensors", bytes(MIB, 1)),
            ("model-00002-of-00002.safetensors", bytes(MIB, 2)),
            ("model.safetensors.index.json", b"{}".to_vec()),
        ],
    )])
    .await;
    ok(&env.download("c", "hf:org/moving", &[]));
    let first = env.info("c", "hf--org--moving--default");

    // Asked again, unchanged: nothing but the listing crosses the network.
    env.hub.reset_counters();
    ok(&env.download("c", "hf:org/moving", &[]));
    assert!(
        env.hub
            .counters()
            .paths
            .keys()
            .all(|p| p.starts_with("/api/")),
        "{:?}",
        env.hub.counters().paths.keys().collect::<Vec<_>>()
    );

    // `main` moves: one weight file and the config change.
    let repo = env.repo_dir("org/moving");
    std::fs::write(repo.join("model-00002-of-00002.safetensors"), bytes(MIB, 9)).unwrap();
    std::fs::write(repo.join("config.json"), br#"{"v": 2}"#).unwrap();
    env.hub.reset_counters();
    ok(&env.download("c", "hf:org/moving", &[]));
    let second = env.info("c", "hf--org--moving--default");
    assert_ne!(first["revision"], second["revision"]);
    assert_eq!(
        env.cdn_bytes("org/moving", "model-00001-of-00002.safetensors"),
        0,
        "an unchanged file was fetched again"
    );
    assert!(env.cdn_bytes("org/moving", "model-00002-of-00002.safetensors") >= MIB as u64);
    let commit = second["revision"].as_str().unwrap();
    assert_eq!(
        env.hub
            .counters_for(&format!("/org/moving/resolve/{commit}/config.json"))
            .bytes_sent,
        8,
        "the changed config was fetched"
    );
    let path = PathBuf::from(second["dir"].as_str().unwrap())
        .join("files/model-00002-of-00002.safetensors");
    assert_eq!(std::fs::read(path).unwrap(), bytes(MIB, 9));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_spellings_of_other_tools_name_the_same_models() {
    let env = Env::new(&[("org/tiny-GGUF", gguf_repo())]).await;
    // huggingface_hub's filesystem spelling.
    ok(&env.download("c", "hf://org/tiny-GGUF:Q4_K_M", &[]));
    assert_eq!(
        file_paths(&env.info("c", "hf--org--tiny-GGUF--Q4_K_M")),
        vec!["tiny.Q4_K_M.gguf"]
    );
    // Ollama's default tag is the default quantization.
    ok(&env.download("c", "hf.co/org/tiny-GGUF:latest", &[]));
    assert_eq!(
        file_paths(&env.info("c", "hf--org--tiny-GGUF--default")),
        vec!["tiny.Q4_K_M.gguf"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn off_a_terminal_progress_comes_as_plain_lines_with_retry_notes_and_a_summary() {
    let env = Env::new(&[("org/tiny-GGUF", gguf_repo())]).await;
    env.hub.set_faults(vec![
        Fault::status(503)
            .path("/api/models/org/tiny-GGUF/revision/*")
            .times(1),
    ]);
    // About two seconds for 2 MiB: several lines, at 10 % steps.
    env.hub.set_rate_limit(Some(MIB as u64));
    let out = env
        .rbee("c")
        .env_remove("NO_COLOR")
        .env_remove("CLICOLOR_FORCE")
        .args(["pull", "hf:org/tiny-GGUF:Q4_K_M"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.starts_with("Resolving hf:org/tiny-GGUF:Q4_K_M …\n"),
        "{stderr}"
    );
    assert!(
        stderr.contains("503 from 127.0.0.1, retrying in ") && stderr.contains("(attempt 2 of "),
        "{stderr}"
    );
    let lines: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("tiny.Q4_K_M.gguf: ") && l.contains("%) at "))
        .collect();
    assert!(lines.len() >= 3, "{stderr}");
    assert!(lines.iter().any(|l| l.contains(", ETA ")), "{stderr}");
    assert!(
        stderr
            .lines()
            .any(|l| l
                .starts_with("Ready: hf--org--tiny-GGUF--Q4_K_M (2.0 MiB, fetched 2.0 MiB in ")),
        "{stderr}"
    );
    // Not a terminal: no colour codes, in progress or logs.
    assert!(!stderr.contains('\u{1b}'), "{stderr:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_network_the_error_says_what_to_do() {
    let env = Env::new(&[]).await;
    // A loopback port nobody listens on.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let out = env
        .rbee("c")
        .env("HF_ENDPOINT", format!("http://{closed}"))
        .args(["pull", "hf:org/tiny-GGUF"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("error: cannot reach 127.0.0.1 (the connection was refused) — check the network or proxy, check HF_ENDPOINT"),
        "{stderr}"
    );
    assert!(
        stderr.contains("use --offline for what is on disk"),
        "{stderr}"
    );
    assert!(!stderr.contains("caused by"), "{stderr}");
    // The whole story with -v.
    let out = env
        .rbee("c")
        .env("HF_ENDPOINT", format!("http://{closed}"))
        .args(["-v", "pull", "hf:org/tiny-GGUF"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("could not connect"), "{stderr}");

    // A name that cannot resolve fails at once instead of being retried. Its 70-character label
    // cannot be put in a DNS query, so the system resolver refuses it without asking anyone.
    let host = format!("{}.invalid", "a".repeat(70));
    let out = env
        .rbee("c")
        .env("HF_ENDPOINT", format!("http://{host}"))
        .args(["pull", "hf:org/tiny-GGUF"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!(
            "cannot reach {host} (the host name does not resolve)"
        )),
        "{stderr}"
    );
    assert!(!stderr.contains("retrying"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dry_run_of_a_ready_model_works_without_the_network() {
    let env = Env::new(&[("org/tiny-GGUF", gguf_repo())]).await;
    ok(&env.download("c", "hf:org/tiny-GGUF:Q4_K_M", &[]));
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    for extra in [&[][..], &["--offline"][..]] {
        let out = env
            .rbee("c")
            .env("HF_ENDPOINT", format!("http://{closed}"))
            .args(["--json", "pull", "--dry-run", "hf:org/tiny-GGUF:Q4_K_M"])
            .args(extra)
            .output()
            .unwrap();
        assert!(out.status.success(), "{extra:?}: {}", text(&out));
        let plan: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(plan["bytes_to_fetch"], 0, "{plan}");
        assert_eq!(plan["files"][0]["action"], "present", "{plan}");
        assert_eq!(plan["files"][0]["path"], "tiny.Q4_K_M.gguf");
    }
}
