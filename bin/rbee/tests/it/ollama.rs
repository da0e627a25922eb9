//! The real `rbee` binary pulling `ollama:` models from the fake hub's Ollama registry
//! (`OLLAMA_REGISTRY`), with the catalog, the home folder and Ollama's store (`OLLAMA_MODELS`)
//! in a temp dir: the printed path is the model layer, `info` shows its template and
//! parameters, `--ollama-store` writes Ollama's layout, and a model already in that store is
//! provisioned without a byte from the registry.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use rbee_artifact::Sha256Digest;
use rbee_fake_hub::{FakeHub, FakeHubConfig};

use crate::support::{bytes, text};

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
        let hub = FakeHub::start(FakeHubConfig::new(dir.path().join("root")))
            .await
            .unwrap();
        Self { dir, hub, model }
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
            .env("NO_COLOR", "1");
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
