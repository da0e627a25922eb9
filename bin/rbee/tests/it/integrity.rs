//! What a request promises about bytes, through the real `rbee` binary and the fake hub: a file
//! that failed `verify` is fetched again, a pin is checked against a ready entry, and a
//! selection (`--include`/`--exclude`) is part of what a request is.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use rbee_artifact::Sha256Digest;
use rbee_fake_hub::{FakeHub, FakeHubConfig};
use serde_json::Value;

use crate::support::{bytes, events, file_paths, text};

const MIB: usize = 1 << 20;

struct Env {
    dir: tempfile::TempDir,
    hub: FakeHub,
}

impl Env {
    /// A hub serving `files` (paths relative to its root: `hf/ORG/REPO/…` for the Hub, anything
    /// else as a plain file).
    async fn new(files: &[(&str, Vec<u8>)]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        std::fs::create_dir_all(&root).unwrap();
        for (path, data) in files {
            let p = root.join(path);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, data).unwrap();
        }
        let hub = FakeHub::start(FakeHubConfig::new(&root)).await.unwrap();
        Self { dir, hub }
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
            "HUGGINGFACE_HUB_CACHE",
            "HF_HUB_OFFLINE",
            "XDG_CACHE_HOME",
        ] {
            cmd.env_remove(var);
        }
        cmd
    }

    fn run(&self, args: &[&str]) -> Output {
        self.rbee().arg("--json").args(args).output().unwrap()
    }

    fn download(&self, reference: &str, args: &[&str]) -> Output {
        self.rbee()
            .args(["--json", "model", "download", reference])
            .args(args)
            .output()
            .unwrap()
    }

    fn info(&self, id: &str) -> Value {
        let out = self.run(&["model", "info", id]);
        assert!(out.status.success(), "{}", text(&out));
        serde_json::from_slice(&out.stdout).unwrap()
    }

    /// Response body bytes the hub and CDN sent for every path, since the last reset.
    fn sent(&self) -> u64 {
        self.hub.counters().total_bytes_sent
    }
}

/// The `completed` event of a successful `--json` download.
fn completed(out: &Output) -> Value {
    assert!(out.status.success(), "{}", text(out));
    events(out)
        .into_iter()
        .find(|e| e["event"] == "completed")
        .unwrap_or_else(|| panic!("no completed event: {}", text(out)))
}

/// The id of the entry a successful `--json` download made ready.
fn id_of(out: &Output) -> String {
    completed(out)["id"].as_str().unwrap().to_string()
}

/// Flips one byte of `path` in place (same size, other bytes).
fn flip_byte(path: &Path, offset: usize) {
    let mut data = std::fs::read(path).unwrap();
    data[offset] ^= 0xff;
    std::fs::write(path, data).unwrap();
}

/// `verify` fails on the flipped byte, then `download` fetches the file again: the corrupt bytes
/// are neither adopted nor recorded, and the next `verify` passes on the published bytes.
fn flipped_file_is_fetched_again(env: &Env, reference: &str, published: &[u8]) {
    let out = env.download(reference, &[]);
    let id = id_of(&out);
    let record = env.info(&id);
    let path = PathBuf::from(record["path"].as_str().unwrap());
    assert_eq!(std::fs::read(&path).unwrap(), published);
    flip_byte(&path, published.len() / 2);

    let out = env.run(&["model", "verify", &id]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert_eq!(env.info(&id)["status"]["state"], "failed");

    env.hub.reset_counters();
    let out = env.download(reference, &[]);
    completed(&out);
    assert!(
        env.sent() >= published.len() as u64,
        "only {} bytes were sent: the corrupt file was kept instead of fetched again\n{}",
        env.sent(),
        text(&out)
    );
    assert!(
        std::fs::read(&path).unwrap() == published,
        "the catalog holds other bytes than the published ones"
    );
    let record = env.info(&id);
    assert_eq!(record["status"]["state"], "ready");
    assert_eq!(
        record["files"][0]["sha256"],
        Sha256Digest::of(published).to_string().as_str()
    );
    let out = env.run(&["model", "verify", &id]);
    assert!(out.status.success(), "{}", text(&out));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_url_file_that_failed_verify_is_fetched_again_not_adopted() {
    let data = bytes(3 * MIB + 5, 11);
    let env = Env::new(&[("plain/model.bin", data.clone())]).await;
    let url = env.hub.file_url("plain/model.bin").to_string();
    flipped_file_is_fetched_again(&env, &url, &data);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_hf_file_that_failed_verify_is_fetched_again_not_adopted() {
    // A small JSON file is not in LFS: the Hub publishes no sha256 for it.
    let config = br#"{"model_type": "llama", "hidden_size": 4096, "padding": "xxxxxxxxxxxxxxxx"}"#;
    let env = Env::new(&[
        ("hf/org/tiny/config.json", config.to_vec()),
        ("hf/org/tiny/model.safetensors", bytes(MIB, 12)),
    ])
    .await;
    flipped_file_is_fetched_again(&env, "hf:org/tiny/config.json", config);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_sha256_pin_never_passes_for_a_ready_entry() {
    let data = bytes(MIB + 3, 21);
    let env = Env::new(&[("plain/pinned.bin", data.clone())]).await;
    let url = env.hub.file_url("plain/pinned.bin").to_string();
    let right = Sha256Digest::of(&data);
    let wrong = Sha256Digest::of(b"other bytes");
    let out = env.download(&format!("{url}#sha256={right}"), &[]);
    let id = id_of(&out);

    let out = env.download(&format!("{url}#sha256={wrong}"), &[]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let stderr = text(&out);
    assert!(
        stderr.contains(&wrong.to_string()) && stderr.contains(&right.to_string()),
        "the error names both digests: {stderr}"
    );
    assert!(stderr.contains("--refresh"), "says what to do: {stderr}");

    // With --refresh it is fetched and checked against the pin: the bytes do not match it.
    let out = env.download(&format!("{url}#sha256={wrong}"), &["--refresh"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert_ne!(env.info(&id)["status"]["state"], "ready");

    // The right pin still works, and a plain URL finds the same entry.
    let out = env.download(&format!("{url}#sha256={right}"), &[]);
    assert_eq!(id_of(&out), id);
    let out = env.download(&url, &[]);
    assert_eq!(id_of(&out), id);
    assert_eq!(env.info(&id)["status"]["state"], "ready");
}

fn snapshot_repo() -> Vec<(&'static str, Vec<u8>)> {
    vec![
        (
            "hf/org/snap/config.json",
            br#"{"model_type": "llama"}"#.to_vec(),
        ),
        ("hf/org/snap/tokenizer.json", br#"{"model": {}}"#.to_vec()),
        ("hf/org/snap/model.safetensors", bytes(2 * MIB, 31)),
        ("hf/org/snap/extra.safetensors", bytes(MIB, 32)),
    ]
}

fn ready_files(env: &Env, id: &str) -> Vec<String> {
    let record = env.info(id);
    assert_eq!(record["status"]["state"], "ready", "{record}");
    for path in record["paths"].as_array().unwrap() {
        assert!(Path::new(path.as_str().unwrap()).is_file(), "{record}");
    }
    file_paths(&record)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_selection_is_its_own_entry_and_never_deletes_another() {
    let env = Env::new(&snapshot_repo()).await;
    let plain = id_of(&env.download("hf:org/snap", &[]));
    let all = ready_files(&env, &plain);
    assert!(all.contains(&"extra.safetensors".to_string()), "{all:?}");

    let narrow = id_of(&env.download("hf:org/snap", &["--include", "*.json"]));
    assert_ne!(narrow, plain, "a selection has its own entry");
    assert_eq!(
        ready_files(&env, &narrow),
        vec!["config.json", "tokenizer.json"]
    );
    // The plain entry is untouched, and asking for it again fetches nothing.
    assert_eq!(ready_files(&env, &plain), all);
    env.hub.reset_counters();
    assert_eq!(id_of(&env.download("hf:org/snap", &[])), plain);
    assert_eq!(env.sent_files(), 0, "the plain request fetched files again");
    assert_eq!(
        ready_files(&env, &narrow),
        vec!["config.json", "tokenizer.json"]
    );

    // The same selection written in another order is the same request.
    let excluded =
        id_of(&env.download("hf:org/snap", &["--exclude", "extra*", "--exclude", "tok*"]));
    let again = id_of(&env.download("hf:org/snap", &["--exclude", "tok*", "--exclude", "extra*"]));
    assert_eq!(excluded, again);
    assert_eq!(
        ready_files(&env, &excluded),
        vec!["config.json", "model.safetensors"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_selection_on_a_pinned_ready_entry_is_not_ignored() {
    let env = Env::new(&snapshot_repo()).await;
    let plain = id_of(&env.download("hf:org/snap", &[]));
    let commit = env.info(&plain)["revision"].as_str().unwrap().to_string();
    let pinned = format!("hf:org/snap@{commit}");
    let full = id_of(&env.download(&pinned, &[]));
    assert_eq!(ready_files(&env, &full).len(), 4);

    let out = env.download(&pinned, &["--include", "config.json"]);
    let narrow = id_of(&out);
    assert_ne!(narrow, full);
    assert_eq!(ready_files(&env, &narrow), vec!["config.json"]);
    let completed = completed(&out);
    assert_eq!(
        completed["paths"].as_array().unwrap().len(),
        1,
        "{completed}"
    );
    assert_eq!(ready_files(&env, &full).len(), 4);
}

impl Env {
    /// Body bytes sent for files (not API answers), since the last reset.
    fn sent_files(&self) -> u64 {
        self.hub
            .counters()
            .paths
            .iter()
            .filter(|(path, _)| !path.starts_with("/api/"))
            .map(|(_, c)| c.bytes_sent)
            .sum()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signed_urls_credentials_are_never_recorded_or_shown() {
    let env = Env::new(&[("plain/signed.bin", bytes(MIB, 61))]).await;
    let base = env.hub.file_url("plain/signed.bin");
    let signed = format!(
        "{base}?versionId=7&X-Amz-Credential=AKIASECRETCRED&X-Amz-Signature=deadbeefsecret&token=tok-secret"
    );
    let secrets = ["AKIASECRETCRED", "deadbeefsecret", "tok-secret", "cafebabe"];
    let shows_no_secret = |what: &str, out: &Output| {
        let all = text(out);
        for secret in secrets {
            assert!(!all.contains(secret), "{what} shows {secret}: {all}");
        }
    };
    let out = env
        .rbee()
        .args(["-vv", "--json", "model", "download", &signed])
        .output()
        .unwrap();
    shows_no_secret("download", &out);
    let id = id_of(&out);

    let record_text = std::fs::read_to_string(
        PathBuf::from(env.info(&id)["dir"].as_str().unwrap()).join("metadata.json"),
    )
    .unwrap();
    for secret in secrets {
        assert!(!record_text.contains(secret), "the record holds {secret}");
    }
    assert!(record_text.contains("versionId=7"), "{record_text}");
    for args in [
        vec!["model", "list"],
        vec!["model", "info", &id],
        vec!["model", "du"],
    ] {
        shows_no_secret(
            &format!("{args:?}"),
            &env.rbee().args(&args).output().unwrap(),
        );
        shows_no_secret(&format!("{args:?}"), &env.run(&args));
    }

    // The same URL, also signed anew, finds the same entry.
    let out = env.download(&signed, &[]);
    assert_eq!(id_of(&out), id);
    let resigned = signed.replace("deadbeefsecret", "cafebabe");
    let out = env.download(&resigned, &[]);
    shows_no_secret("a second signature", &out);
    assert_eq!(id_of(&out), id);

    // Errors do not show them either.
    let missing = format!(
        "{}?X-Amz-Signature=deadbeefsecret&token=tok-secret",
        env.hub.file_url("plain/missing.bin")
    );
    let out = env
        .rbee()
        .args(["model", "download", &missing])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    shows_no_secret("an error", &out);
}
