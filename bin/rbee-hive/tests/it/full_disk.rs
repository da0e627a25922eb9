//! The daemon on a full disk: it starts, says what is wrong, lists and removes.
//!
//! The catalog lives on a small tmpfs mounted by the test. Mounting needs root: CI runs as root
//! and sets `RBEE_REQUIRE_TMPFS=1`, which makes a failed mount a test failure; elsewhere the test
//! is skipped with a message on stderr.

use std::path::Path;
use std::process::{Command, Stdio};

use reqwest::StatusCode;

use crate::support::{Daemon, TestEnv, metadata};

/// A tmpfs mounted on `dir` for the test's lifetime.
struct Tmpfs<'a> {
    dir: &'a Path,
}

impl<'a> Tmpfs<'a> {
    #[allow(clippy::print_stderr)]
    fn mount(dir: &'a Path, size: &str) -> Option<Self> {
        std::fs::create_dir_all(dir).unwrap();
        let result = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0755"),
                "tmpfs",
            ])
            .arg(dir)
            .stderr(Stdio::piped())
            .output();
        let why = match result {
            Ok(out) if out.status.success() => return Some(Self { dir }),
            Ok(out) => String::from_utf8_lossy(&out.stderr).trim().to_string(),
            Err(e) => e.to_string(),
        };
        if std::env::var_os("RBEE_REQUIRE_TMPFS").is_some_and(|v| v == "1") {
            panic!("RBEE_REQUIRE_TMPFS=1 but a tmpfs cannot be mounted: {why}");
        }
        eprintln!(
            "SKIPPED: this full-disk test needs to mount a tmpfs (run as root, or set RBEE_REQUIRE_TMPFS=1 to make this an error): {why}"
        );
        None
    }

    /// Fills the file system: a file grows until nothing more fits.
    fn fill(&self) {
        use std::io::Write;
        let mut f = std::fs::File::create(self.dir.join("filler")).unwrap();
        for block in [64 << 10, 4096, 1] {
            let data = vec![0xa5u8; block];
            loop {
                match f.write(&data) {
                    Ok(0) => break,
                    Ok(_) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::StorageFull => break,
                    Err(e) => panic!("filling the tmpfs: {e}"),
                }
            }
        }
    }
}

impl Drop for Tmpfs<'_> {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(self.dir).status();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_daemon_starts_on_a_full_disk_says_so_lists_and_removes() {
    let env = TestEnv::new().await;
    let cache = env.cache();
    let Some(fs) = Tmpfs::mount(&cache, "8m") else {
        return;
    };
    env.write_file("m.bin", 256 << 10);
    let mut hive = Daemon::start(&env, &[]).await;
    let job = hive.download(&env.file_ref("m.bin")).await;
    let events = hive.stream(&job).await.until_final().await;
    let done = events.last().unwrap();
    assert_eq!(done.name, "done", "{events:?}");
    let id = done.data["result"]["id"].as_str().unwrap().to_string();
    hive.terminate();
    hive.wait_exit(crate::support::SOON).await;

    // A download that a dead process left `downloading`, and no room to write anything.
    let dir: std::path::PathBuf = env
        .cache()
        .join(id.split("--").collect::<std::path::PathBuf>());
    let mut record = metadata(&env.cache(), &id);
    record["status"] = serde_json::json!({"state": "downloading", "bytes": 1, "total": 262144});
    std::fs::write(
        dir.join("metadata.json"),
        serde_json::to_vec_pretty(&record).unwrap(),
    )
    .unwrap();
    fs.fill();

    let hive = Daemon::start(&env, &[]).await;
    let (status, _) = hive.get("/health").await;
    assert_eq!(status, StatusCode::OK);
    let log = hive.log();
    assert!(
        log.contains("is full") && log.contains("rbee model rm"),
        "the daemon says the disk is full and what to do: {log}"
    );
    let (status, list) = hive.get("/v1/models").await;
    assert_eq!(status, StatusCode::OK, "{list}");
    let entry = list["models"]
        .as_array()
        .and_then(|a| a.iter().find(|e| e["id"] == id.as_str()))
        .unwrap_or_else(|| panic!("{id} not listed: {list}"));
    assert_eq!(entry["status"]["state"], "incomplete", "{entry}");
    let (status, body) = hive.delete(&format!("/v1/models/{id}")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(!dir.exists());
}
