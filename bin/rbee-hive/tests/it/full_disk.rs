//! The daemon on a full disk: it starts, says what is wrong, lists and removes.
//!
//! The catalog lives on a small tmpfs mounted by the test. Mounting needs root: CI runs as root
//! and sets `RBEE_REQUIRE_TMPFS=1`, which makes a failed mount a test failure; elsewhere the test
//! is skipped with a message on stderr.

use reqwest::StatusCode;

use rbee_fake_hub::Tmpfs;

use crate::support::{Daemon, TestEnv, metadata};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_daemon_starts_on_a_full_disk_says_so_lists_and_removes() {
    let env = TestEnv::new().await;
    let cache = env.cache();
    let Some(fs) = Tmpfs::mount_at(&cache, "8m") else {
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
