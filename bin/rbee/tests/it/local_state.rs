//! Local state tampered with, through the real `rbee` binary: records that lie (bad JSON, hostile
//! paths, wrong sizes), links planted in the catalog, files changed on disk. Nothing outside the
//! catalog is read, written or deleted, and nothing wrong is ever ready.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use rbee_artifact::Sha256Digest;
use rbee_fake_hub::{FakeHub, FakeHubConfig};
use serde_json::Value;

use crate::support::{bytes, events, text};

const SIZE: usize = 256 << 10;

struct Env {
    dir: tempfile::TempDir,
    hub: FakeHub,
    /// What the hub publishes at `model.bin`.
    data: Vec<u8>,
    /// A file outside the catalog, the size of the model.
    victim: PathBuf,
    victim_data: Vec<u8>,
}

impl Env {
    async fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        std::fs::create_dir_all(&root).unwrap();
        let data = bytes(SIZE, 51);
        std::fs::write(root.join("model.bin"), &data).unwrap();
        let victim_data = bytes(SIZE, 52);
        let victim = dir.path().join("outside/victim.bin");
        std::fs::create_dir_all(victim.parent().unwrap()).unwrap();
        std::fs::write(&victim, &victim_data).unwrap();
        // The victim's bytes are also published, under another name.
        std::fs::write(root.join("same-as-victim.bin"), &victim_data).unwrap();
        let hub = FakeHub::start(FakeHubConfig::new(&root)).await.unwrap();
        Self {
            dir,
            hub,
            data,
            victim,
            victim_data,
        }
    }

    fn url(&self) -> String {
        self.hub.file_url("model.bin").to_string()
    }

    fn rbee(&self) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_rbee"));
        cmd.arg("--cache-dir")
            .arg(self.dir.path().join("cache"))
            .current_dir(self.dir.path())
            .env_remove("RBEE_CACHE_DIR")
            .env("HOME", self.dir.path().join("home"))
            .env("NO_COLOR", "1");
        cmd
    }

    fn run(&self, args: &[&str]) -> Output {
        self.rbee().arg("--json").args(args).output().unwrap()
    }

    fn download(&self, reference: &str, args: &[&str]) -> Output {
        self.run(&[&["model", "download", reference], args].concat())
    }

    /// Downloads `model.bin` and returns the entry's folder and id.
    fn ready_entry(&self) -> (PathBuf, String) {
        let out = self.download(&self.url(), &[]);
        assert!(out.status.success(), "{}", text(&out));
        let done = events(&out)
            .into_iter()
            .find(|e| e["event"] == "completed")
            .unwrap();
        let id = done["id"].as_str().unwrap().to_string();
        let path = PathBuf::from(done["paths"][0].as_str().unwrap());
        let dir = path.parent().unwrap().parent().unwrap().to_path_buf();
        (dir, id)
    }

    fn listing(&self) -> Vec<Value> {
        let out = self.run(&["model", "list"]);
        assert!(out.status.success(), "{}", text(&out));
        serde_json::from_slice::<Value>(&out.stdout).unwrap()["models"]
            .as_array()
            .unwrap()
            .clone()
    }

    fn state_of(&self, id: &str) -> String {
        self.listing()
            .iter()
            .find(|e| e["id"] == id)
            .map(|e| e["status"]["state"].as_str().unwrap().to_string())
            .unwrap_or_else(|| "absent".into())
    }

    /// The victim is where it was, with its bytes.
    fn assert_victim_untouched(&self) {
        assert!(
            std::fs::read(&self.victim).unwrap() == self.victim_data,
            "the file outside the catalog changed"
        );
    }

    /// The published bytes are ready at the entry's file, as a regular file.
    fn assert_ready_with_published_bytes(&self, id: &str) {
        let out = self.run(&["model", "info", id]);
        assert!(out.status.success(), "{}", text(&out));
        let info: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(info["status"]["state"], "ready", "{info}");
        let path = PathBuf::from(info["path"].as_str().unwrap());
        assert!(std::fs::symlink_metadata(&path).unwrap().is_file());
        assert!(
            std::fs::read(&path).unwrap() == self.data,
            "other bytes are ready"
        );
    }
}

fn edit_record(dir: &Path, change: impl FnOnce(&mut Value)) {
    let path = dir.join("metadata.json");
    let mut record: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    change(&mut record);
    std::fs::write(&path, serde_json::to_vec_pretty(&record).unwrap()).unwrap();
}

/// `to` written relative to the folder `from`.
fn relative(from: &Path, to: &Path) -> String {
    let depth = from.components().count() - 1;
    let up = "../".repeat(depth);
    format!("{up}{}", to.strip_prefix("/").unwrap().display())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_record_with_hostile_paths_is_damaged_and_never_reaches_outside() {
    let env = Env::new().await;
    let (dir, id) = env.ready_entry();
    let files = dir.join("files");
    for hostile in [
        relative(&files, &env.victim),
        env.victim.display().to_string(),
        "sub/../../../victim.bin".to_string(),
    ] {
        edit_record(&dir, |r| r["files"][0]["path"] = hostile.clone().into());
        let listing = env.listing();
        let item = listing.iter().find(|e| e["id"] == id.as_str()).unwrap();
        assert_eq!(item["status"]["state"], "damaged", "{hostile}: {item}");

        // verify does not hash the victim: it refuses the record.
        let out = env.run(&["model", "verify", &id]);
        assert_eq!(out.status.code(), Some(1), "{}", text(&out));
        assert!(text(&out).contains("damaged"), "{}", text(&out));
        // A refresh replaces the record, and deletes nothing outside.
        let out = env.download(&env.url(), &["--refresh"]);
        assert!(out.status.success(), "{hostile}: {}", text(&out));
        env.assert_victim_untouched();
        env.assert_ready_with_published_bytes(&id);
    }

    // rm of a damaged entry removes the entry, not what its record names.
    edit_record(&dir, |r| {
        r["files"][0]["path"] = relative(&files, &env.victim).into()
    });
    let out = env.run(&["model", "rm", &id]);
    assert!(out.status.success(), "{}", text(&out));
    env.assert_victim_untouched();
    assert!(!dir.exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn digest_reuse_never_links_a_file_outside_the_catalog() {
    let env = Env::new().await;
    let (dir, _) = env.ready_entry();
    // The tampered record claims a ready file with the victim's digest, outside the catalog.
    let digest = Sha256Digest::of(&env.victim_data);
    edit_record(&dir, |r| {
        r["files"][0]["path"] = relative(&dir.join("files"), &env.victim).into();
        r["files"][0]["sha256"] = digest.to_string().into();
    });
    let url = format!("{}#sha256={digest}", env.hub.file_url("same-as-victim.bin"));
    let out = env.download(&url, &[]);
    assert!(out.status.success(), "{}", text(&out));
    let done = events(&out)
        .into_iter()
        .find(|e| e["event"] == "completed")
        .unwrap();
    let path = PathBuf::from(done["paths"][0].as_str().unwrap());
    assert_ne!(
        std::fs::metadata(&path).unwrap().ino(),
        std::fs::metadata(&env.victim).unwrap().ino(),
        "the victim was hard-linked into the catalog"
    );
    assert_eq!(
        env.hub.counters_for("/files/same-as-victim.bin").bytes_sent,
        SIZE as u64,
        "the file was fetched, not taken from outside"
    );
    env.assert_victim_untouched();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_entry_folder_that_is_a_link_is_never_written_through() {
    let env = Env::new().await;
    let (dir, id) = env.ready_entry();
    let trap = env.dir.path().join("trap");
    std::fs::create_dir_all(&trap).unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
    std::os::unix::fs::symlink(&trap, &dir).unwrap();

    let out = env.download(&env.url(), &[]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let stderr = text(&out);
    assert!(stderr.contains("symbolic link"), "{stderr}");
    assert_eq!(
        std::fs::read_dir(&trap).unwrap().count(),
        0,
        "rbee wrote through the link"
    );
    for args in [["model", "info", &id], ["model", "verify", &id]] {
        let out = env.run(&args);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {}", text(&out));
    }
    assert_eq!(std::fs::read_dir(&trap).unwrap().count(), 0);

    // rm removes the link itself; then the download works.
    let out = env.run(&["model", "rm", &id]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(trap.is_dir());
    assert!(std::fs::symlink_metadata(&dir).is_err());
    let (_, again) = env.ready_entry();
    assert_eq!(again, id);
    env.assert_ready_with_published_bytes(&id);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_that_is_a_link_out_of_the_catalog_is_never_ready_nor_read() {
    let env = Env::new().await;
    let (dir, id) = env.ready_entry();
    let file = dir.join("files/model.bin");
    std::fs::remove_file(&file).unwrap();
    std::os::unix::fs::symlink(&env.victim, &file).unwrap();
    // Same size as recorded: only the link gives it away.
    assert_eq!(std::fs::metadata(&file).unwrap().len(), SIZE as u64);

    let out = env.run(&["model", "verify", &id]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    // The report, then the error line.
    let report: Value = serde_json::Deserializer::from_slice(&out.stdout)
        .into_iter()
        .next()
        .unwrap()
        .unwrap();
    let check = &report["reports"][0]["files"][0];
    assert_eq!(check["outcome"]["result"], "refused", "{report}");

    let out = env.download(&env.url(), &[]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("symbolic link"), "{}", text(&out));
    assert_ne!(env.state_of(&id), "ready");
    env.assert_victim_untouched();

    let out = env.run(&["model", "rm", &id]);
    assert!(out.status.success(), "{}", text(&out));
    env.assert_victim_untouched();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_damaged_record_vouches_for_nothing_on_disk() {
    let env = Env::new().await;
    let (dir, id) = env.ready_entry();
    // Other bytes of the same size at the final name, and a record that cannot be read.
    std::fs::write(dir.join("files/model.bin"), bytes(SIZE, 53)).unwrap();
    std::fs::write(dir.join("metadata.json"), b"{\"schema\": 1, \"id\": ").unwrap();
    assert_eq!(env.state_of(&id), "damaged");
    let out = env.run(&["model", "info", &id]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("rbee model rm"));

    env.hub.reset_counters();
    let out = env.download(&env.url(), &[]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(
        env.hub.counters_for("/files/model.bin").bytes_sent,
        SIZE as u64,
        "the planted bytes were adopted instead of fetched"
    );
    env.assert_ready_with_published_bytes(&id);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_record_with_wrong_sizes_or_digests_is_caught_and_repaired() {
    let env = Env::new().await;
    let (dir, id) = env.ready_entry();

    // A size that does not match the file: not ready, fetched again.
    edit_record(&dir, |r| r["files"][0]["size"] = (SIZE as u64 + 1).into());
    let out = env.download(&env.url(), &[]);
    assert!(out.status.success(), "{}", text(&out));
    env.assert_ready_with_published_bytes(&id);

    // A digest that does not match the file: verify fails, the next download repairs it.
    edit_record(&dir, |r| {
        r["files"][0]["sha256"] = Sha256Digest::of(b"x").to_string().into()
    });
    let out = env.run(&["model", "verify", &id]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let out = env.download(&env.url(), &[]);
    assert!(out.status.success(), "{}", text(&out));
    env.assert_ready_with_published_bytes(&id);
    let out = env.run(&["model", "verify", &id]);
    assert!(out.status.success(), "{}", text(&out));

    // Sizes that overflow when summed: listed, not a crash.
    edit_record(&dir, |r| {
        let file = r["files"][0].clone();
        let mut second = file.clone();
        second["path"] = "second.bin".into();
        r["files"][0]["size"] = u64::MAX.into();
        second["size"] = u64::MAX.into();
        r["files"] = Value::Array(vec![r["files"][0].clone(), second]);
    });
    for args in [["model", "list"], ["model", "du"]] {
        let out = env.rbee().args(args).output().unwrap();
        assert!(out.status.success(), "{args:?}: {}", text(&out));
    }
    let out = env.download(&env.url(), &[]);
    assert!(out.status.success(), "{}", text(&out));
    env.assert_ready_with_published_bytes(&id);
}
