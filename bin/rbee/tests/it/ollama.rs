//! The real `rbee` binary pulling `ollama:` models from the fake hub's Ollama registry
//! (`OLLAMA_REGISTRY`), with the catalog, the home folder and Ollama's store (`OLLAMA_MODELS`)
//! in a temp dir: the printed path is the model layer, `info` shows its template and
//! parameters, `--ollama-store` writes Ollama's layout, and a model already in that store is
//! provisioned without a byte from the registry.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use rbee_artifact::Sha256Digest;
use rbee_fake_hub::{FakeHub, FakeHubConfig};

use crate::support::{bytes, signal, text, unread_socket_bytes};

const HF_REPO: &str = "team/tiny-GGUF";
const HF_FILE: &str = "tiny.Q4_K_M.gguf";

struct Env {
    dir: tempfile::TempDir,
    hub: FakeHub,
    model: Vec<u8>,
}

impl Env {
    async fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let tag = dir.path().join("root/ollama/library/tiny/1b");
        std::fs::create_dir_all(&tag).unwrap();
        let model = bytes(3 << 20, 7);
        std::fs::write(tag.join("model.gguf"), &model).unwrap();
        std::fs::write(tag.join("template"), "{{ .System }} {{ .Prompt }}").unwrap();
        std::fs::write(tag.join("params.json"), r#"{"stop":["<|end|>"]}"#).unwrap();
        std::fs::write(tag.join("license"), "Tiny Licence 1.0").unwrap();
        std::fs::write(
            dir.path().join("root/ollama/library/tiny/fakehub.json"),
            r#"{"auth":true}"#,
        )
        .unwrap();
        // The same kind of GGUF in a HuggingFace repository (other bytes than the Ollama
        // model's, so each test says which one it shares).
        let repo = dir.path().join("root/hf").join(HF_REPO);
        std::fs::create_dir_all(&repo).unwrap();
        std::fs::write(repo.join(HF_FILE), bytes(3 << 20, 11)).unwrap();
        std::fs::write(repo.join("README.md"), "# tiny\n").unwrap();
        let hub = FakeHub::start(FakeHubConfig::new(dir.path().join("root")))
            .await
            .unwrap();
        Self { dir, hub, model }
    }

    /// The HuggingFace repository's GGUF.
    fn hf_model(&self) -> Vec<u8> {
        std::fs::read(self.dir.path().join("root/hf").join(HF_REPO).join(HF_FILE)).unwrap()
    }

    fn hf_bytes_sent(&self) -> u64 {
        self.hub
            .counters_for(&format!("/files/hf/{HF_REPO}/{HF_FILE}"))
            .bytes_sent
    }

    fn blob(&self, data: &[u8]) -> PathBuf {
        self.store()
            .join(format!("blobs/sha256-{}", Sha256Digest::of(data)))
    }

    fn store(&self) -> PathBuf {
        self.dir.path().join("ollama-models")
    }

    fn rbee(&self, cache: &str) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_rbee"));
        cmd.arg("--cache-dir")
            .arg(self.dir.path().join(cache))
            .current_dir(self.dir.path())
            .env_remove("RBEE_CACHE_DIR")
            .env("HOME", self.dir.path().join("home"))
            .env("OLLAMA_REGISTRY", self.hub.url().as_str())
            .env("OLLAMA_MODELS", self.store())
            .env("HF_ENDPOINT", self.hub.url().as_str())
            .env("HF_HOME", self.dir.path().join("hf-home"))
            .env("NO_COLOR", "1");
        for var in [
            "HF_TOKEN",
            "HUGGING_FACE_HUB_TOKEN",
            "HF_TOKEN_PATH",
            "HF_HUB_OFFLINE",
        ] {
            cmd.env_remove(var);
        }
        cmd
    }

    fn run(&self, cache: &str, args: &[&str]) -> Output {
        let out = self.rbee(cache).args(args).output().unwrap();
        assert!(out.status.success(), "{args:?}: {}", text(&out));
        out
    }

    fn model_bytes_sent(&self) -> u64 {
        self.hub
            .counters_for("/files/ollama/library/tiny/1b/model.gguf")
            .bytes_sent
    }
}

fn stdout_path(out: &Output) -> PathBuf {
    PathBuf::from(
        String::from_utf8_lossy(&out.stdout)
            .trim()
            .lines()
            .last()
            .unwrap(),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn download_prints_the_model_layer_and_info_shows_the_other_layers() {
    let env = Env::new().await;
    for spelling in ["ollama:tiny:1b", "tiny:1b"] {
        let out = env.run("cache", &["model", "download", spelling]);
        let path = stdout_path(&out);
        assert!(path.ends_with("files/model.gguf"), "{}", path.display());
        assert_eq!(std::fs::read(&path).unwrap(), env.model);
    }
    // Both spellings are one entry; the second found it ready.
    assert!(env.model_bytes_sent() <= env.model.len() as u64 + (1 << 20));
    let info = env.run("cache", &["model", "info", "ollama:tiny:1b"]);
    let info = String::from_utf8_lossy(&info.stdout);
    for shown in [
        "vendor:    ollama",
        "template:  {{ .System }} {{ .Prompt }}",
        "parameters: {\\\"stop\\\":[\\\"<|end|>\\\"]}",
        "license:   Tiny Licence 1.0",
        "model.gguf",
        "manifest.json",
    ] {
        assert!(info.contains(shown), "{shown:?} in\n{info}");
    }
    assert!(!Path::new(&env.store()).join("manifests").exists());
}

#[tokio::test(flavor = "multi_thread")]
async fn ollama_store_is_written_then_read_without_the_network() {
    let env = Env::new().await;
    env.run(
        "cache",
        &["model", "download", "--ollama-store", "ollama:tiny:1b"],
    );
    let manifest = env
        .store()
        .join("manifests/registry.ollama.ai/library/tiny/1b");
    assert!(manifest.is_file(), "{}", manifest.display());
    let blob = env
        .store()
        .join(format!("blobs/sha256-{}", Sha256Digest::of(&env.model)));
    assert_eq!(std::fs::read(&blob).unwrap(), env.model);

    // Another catalog on this machine: everything comes from Ollama's store.
    env.hub.reset_counters();
    let out = env.run("other-cache", &["model", "download", "ollama:tiny:1b"]);
    assert_eq!(std::fs::read(stdout_path(&out)).unwrap(), env.model);
    assert!(env.hub.requests().is_empty(), "{:?}", env.hub.requests());
}

#[tokio::test(flavor = "multi_thread")]
async fn ollama_store_is_created_where_ollama_would_when_there_is_none_yet() {
    if Path::new("/usr/share/ollama/.ollama/models").is_dir() {
        return; // this machine has the service's store, which is the one written
    }
    let env = Env::new().await;
    let out = env
        .rbee("cache")
        .env_remove("OLLAMA_MODELS")
        .args(["model", "download", "--ollama-store", "ollama:tiny:1b"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let store = env.dir.path().join("home/.ollama/models");
    assert!(
        store
            .join("manifests/registry.ollama.ai/library/tiny/1b")
            .is_file(),
        "{}",
        text(&out)
    );
    assert_eq!(
        std::fs::read(store.join(format!("blobs/sha256-{}", Sha256Digest::of(&env.model))))
            .unwrap(),
        env.model
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn unknown_models_and_tags_fail_with_what_to_do() {
    let env = Env::new().await;
    for (spelling, says) in [
        ("ollama:nosuch:1b", "no model `library/nosuch`"),
        ("ollama:tiny:99b", "no tag `99b`"),
    ] {
        let out = env
            .rbee("cache")
            .args(["model", "download", spelling])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1), "{}", text(&out));
        assert!(text(&out).contains(says), "{spelling}: {}", text(&out));
    }
    let out = env
        .rbee("cache")
        .args(["model", "download", "ollama:a/b/c/d:t"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("ollama:llama3.2:1b"), "{}", text(&out));
}

#[tokio::test(flavor = "multi_thread")]
async fn import_registers_ollamas_models_without_the_network() {
    let env = Env::new().await;
    // Ollama's store gets the model through one download with --ollama-store.
    env.run(
        "cache",
        &["model", "download", "--ollama-store", "ollama:tiny:1b"],
    );
    env.hub.reset_counters();
    let out = env.run("imported", &["model", "import", "--from", "ollama"]);
    let listed = String::from_utf8_lossy(&out.stdout);
    assert!(
        listed.contains("ollama--registry.ollama.ai--library--tiny--1b"),
        "{listed}"
    );
    assert!(env.hub.requests().is_empty(), "{:?}", env.hub.requests());
    let line = listed.trim().lines().last().unwrap();
    let path = PathBuf::from(line.split_once("  ").unwrap().1);
    assert!(path.ends_with("files/model.gguf"), "{line}");
    assert_eq!(std::fs::read(&path).unwrap(), env.model);
    // Linked, not copied: the catalog's file is Ollama's blob.
    use std::os::unix::fs::MetadataExt;
    let blob = env
        .store()
        .join(format!("blobs/sha256-{}", Sha256Digest::of(&env.model)));
    assert_eq!(
        std::fs::metadata(&path).unwrap().ino(),
        std::fs::metadata(&blob).unwrap().ino()
    );
    let out = env
        .rbee("imported")
        .args(["model", "import", "--from", "lmstudio"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
}

fn inode(path: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(path).unwrap().ino()
}

#[tokio::test(flavor = "multi_thread")]
async fn an_hf_gguf_that_ollama_has_is_taken_from_its_store_not_fetched() {
    let env = Env::new().await;
    let gguf = env.hf_model();
    // Ollama pulled it as hf.co/…: its blob is named by the file's LFS sha256.
    let blob = env.blob(&gguf);
    std::fs::create_dir_all(blob.parent().unwrap()).unwrap();
    std::fs::write(&blob, &gguf).unwrap();

    let out = env.run(
        "cache",
        &["model", "download", &format!("hf:{HF_REPO}:Q4_K_M")],
    );
    let path = stdout_path(&out);
    assert!(path.ends_with(HF_FILE), "{}", path.display());
    assert_eq!(std::fs::read(&path).unwrap(), gguf);
    assert_eq!(env.hf_bytes_sent(), 0, "{:?}", env.hub.requests());
    // One file system: the catalog's copy is Ollama's blob, linked.
    assert_eq!(inode(&path), inode(&blob));
    assert!(
        !env.store().join("manifests").exists(),
        "nothing written without --ollama-store"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_ollama_blob_with_other_bytes_is_not_taken_for_an_hf_gguf() {
    let env = Env::new().await;
    let gguf = env.hf_model();
    let blob = env.blob(&gguf);
    std::fs::create_dir_all(blob.parent().unwrap()).unwrap();
    let mut damaged = gguf.clone();
    damaged[12345] ^= 0x01;
    std::fs::write(&blob, &damaged).unwrap();

    let out = env.run(
        "cache",
        &["model", "download", &format!("hf:{HF_REPO}:Q4_K_M")],
    );
    assert_eq!(std::fs::read(stdout_path(&out)).unwrap(), gguf);
    assert!(env.hf_bytes_sent() >= gguf.len() as u64);
    // Reading never writes Ollama's store: its damaged blob is as it was.
    assert_eq!(std::fs::read(&blob).unwrap(), damaged);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_hf_gguf_is_written_into_ollamas_store_as_ollama_names_it_and_read_back() {
    let env = Env::new().await;
    let gguf = env.hf_model();
    // A damaged blob under the model's name: Ollama would trust it, so it must be replaced.
    let blob = env.blob(&gguf);
    std::fs::create_dir_all(blob.parent().unwrap()).unwrap();
    std::fs::write(&blob, vec![0u8; gguf.len()]).unwrap();

    let out = env.run(
        "cache",
        &[
            "model",
            "download",
            "--ollama-store",
            &format!("hf:{HF_REPO}:q4_k_m"),
        ],
    );
    assert!(
        text(&out).contains("ollama run hf.co/team/tiny-GGUF:Q4_K_M"),
        "{}",
        text(&out)
    );
    assert_eq!(std::fs::read(&blob).unwrap(), gguf);
    // Where `ollama pull hf.co/team/tiny-GGUF:Q4_K_M` files it, case kept.
    let manifest_path = env.store().join("manifests/hf.co/team/tiny-GGUF/Q4_K_M");
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&manifest_path).unwrap()).unwrap();
    assert_eq!(manifest["schemaVersion"], 2);
    assert_eq!(
        manifest["mediaType"],
        "application/vnd.docker.distribution.manifest.v2+json"
    );
    let layers = manifest["layers"].as_array().unwrap();
    assert_eq!(layers.len(), 1, "{manifest}");
    assert_eq!(layers[0]["mediaType"], "application/vnd.ollama.image.model");
    assert_eq!(
        layers[0]["digest"],
        format!("sha256:{}", Sha256Digest::of(&gguf))
    );
    assert_eq!(layers[0]["size"], gguf.len() as u64);
    // The config blob is in place under its digest and says what the model is.
    let config_digest = manifest["config"]["digest"].as_str().unwrap();
    let config = std::fs::read(
        env.store()
            .join(format!("blobs/{}", config_digest.replace(':', "-"))),
    )
    .unwrap();
    assert_eq!(
        format!("sha256:{}", Sha256Digest::of(&config)),
        config_digest
    );
    let config: serde_json::Value = serde_json::from_slice(&config).unwrap();
    assert_eq!(config["model_format"], "gguf");
    assert_eq!(config["file_type"], "Q4_K_M");
    assert_eq!(config["rootfs"]["diff_ids"][0], layers[0]["digest"]);
    // Only final names where Ollama looks.
    for dir in [
        env.store().join("blobs"),
        manifest_path.parent().unwrap().to_path_buf(),
    ] {
        for entry in std::fs::read_dir(dir).unwrap() {
            let name = entry.unwrap().file_name().to_string_lossy().into_owned();
            assert!(!name.starts_with('.'), "{name}");
        }
    }

    // rbee's own store reader takes it back: the Ollama name resolves from the store alone.
    env.hub.reset_counters();
    let out = env.run(
        "other-cache",
        &["model", "download", "ollama:hf.co/team/tiny-GGUF:Q4_K_M"],
    );
    assert_eq!(std::fs::read(stdout_path(&out)).unwrap(), gguf);
    assert!(env.hub.requests().is_empty(), "{:?}", env.hub.requests());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_split_hf_gguf_is_not_written_into_ollamas_store_and_says_why() {
    let env = Env::new().await;
    let repo = env.dir.path().join("root/hf/team/split-GGUF");
    std::fs::create_dir_all(&repo).unwrap();
    for i in 1..=2 {
        std::fs::write(
            repo.join(format!("split.Q8_0-0000{i}-of-00002.gguf")),
            bytes(1 << 20, i),
        )
        .unwrap();
    }
    let out = env.run(
        "cache",
        &[
            "model",
            "download",
            "--ollama-store",
            "hf:team/split-GGUF:Q8_0",
        ],
    );
    assert!(
        text(&out).contains("not placed in Ollama's store: the model is split"),
        "{}",
        text(&out)
    );
    assert!(!env.store().join("manifests").exists());
}

/// Body bytes the hub has sent for `path`, once its counter has stopped moving (the killed
/// client's connections drain).
async fn settled(hub: &FakeHub, path: &str) -> u64 {
    let mut last = hub.counters_for(path).bytes_sent;
    loop {
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        let now = hub.counters_for(path).bytes_sent;
        if now == last {
            return now;
        }
        last = now;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pull_killed_with_sigkill_resumes_fetching_at_most_one_chunk_again() {
    const MIB: u64 = 1 << 20;
    let dir = tempfile::tempdir().unwrap();
    let tag = dir.path().join("root/ollama/library/big/q4");
    std::fs::create_dir_all(&tag).unwrap();
    let model = bytes(64 << 20, 5);
    std::fs::write(tag.join("model.gguf"), &model).unwrap();
    let served = "/files/ollama/library/big/q4/model.gguf";
    // Slow enough per connection that the kill lands half way.
    let hub = FakeHub::start(FakeHubConfig::new(dir.path().join("root")).with_rate_limit(4 * MIB))
        .await
        .unwrap();
    let rbee = || {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_rbee"));
        cmd.arg("--cache-dir")
            .arg(dir.path().join("cache"))
            .args(["--quiet", "model", "download", "ollama:big:q4"])
            .env_remove("RBEE_CACHE_DIR")
            .env("HOME", dir.path().join("home"))
            .env("OLLAMA_REGISTRY", hub.url().as_str())
            .env("OLLAMA_MODELS", dir.path().join("no-store"))
            .env("NO_COLOR", "1");
        cmd
    };
    let mut child = rbee()
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while hub.counters_for(served).bytes_sent < 32 * MIB {
        assert!(
            child.try_wait().unwrap().is_none(),
            "rbee ended before the kill"
        );
        assert!(
            std::time::Instant::now() < deadline,
            "no progress in a minute"
        );
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    // Stopped first, so the bytes the hub counts as sent but rbee never read (socket buffers,
    // which a loaded machine fills) can be measured before the kill drops them.
    signal(child.id(), "-STOP");
    let sent = settled(&hub, served).await;
    let unread = [hub.url(), hub.cdn_url()]
        .iter()
        .map(|url| unread_socket_bytes(url.port().unwrap()))
        .sum::<u64>();
    child.kill().unwrap(); // SIGKILL: nothing more is saved
    child.wait().unwrap();
    let size = model.len() as u64;
    assert!(sent < size, "killed too late to test a resume");
    // What rbee received before the kill.
    let first = sent.saturating_sub(unread);

    hub.reset_counters();
    let out = rbee().output().unwrap();
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(std::fs::read(stdout_path(&out)).unwrap(), model);
    let again = settled(&hub, served).await;
    // Missing: what the first run never received. One chunk: the engine's range size.
    let chunk = rbee_transfer::TransferConfig::default().chunk_size;
    let missing = size - first;
    assert!(
        again <= missing + chunk,
        "fetched {again} bytes again; {missing} were missing, counting the {unread} the hub had \
         sent into socket buffers as missing (one chunk is {chunk})"
    );
}
