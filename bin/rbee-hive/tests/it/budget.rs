//! The daemon's cache budget: applied before a download starts, and announced.

use crate::support::{Daemon, TestEnv};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_daemon_evicts_before_a_download_that_would_exceed_its_budget_and_says_so() {
    let env = TestEnv::new().await;
    for name in ["a.gguf", "b.gguf", "c.gguf"] {
        env.write_file(name, 1000);
    }
    env.write_file("big.gguf", 3000);
    let hive = Daemon::start(&env, &["--max-cache-size", "2500B"]).await;
    let mut ids = Vec::new();
    for name in ["a.gguf", "b.gguf"] {
        let job = hive.download(&env.file_ref(name)).await;
        let done = hive.stream(&job).await.until_final().await.pop().unwrap();
        assert_eq!(done.name, "done", "{done:?}");
        ids.push(done.data["result"]["id"].as_str().unwrap().to_string());
    }

    let job = hive.download(&env.file_ref("c.gguf")).await;
    let events = hive.stream(&job).await.until_final().await;
    assert_eq!(events.last().unwrap().name, "done", "{events:?}");
    let evicted = format!("evicted {} (1000 B freed)", ids[0]);
    assert!(
        events.iter().any(|e| e.data["message"]
            .as_str()
            .is_some_and(|m| m.contains(&evicted))),
        "{events:?}"
    );
    let (status, _) = hive.get(&format!("/v1/models/{}", ids[0])).await;
    assert_eq!(status, reqwest::StatusCode::NOT_FOUND);

    // Larger than the budget itself: refused before any byte.
    let job = hive.download(&env.file_ref("big.gguf")).await;
    let last = hive.stream(&job).await.until_final().await.pop().unwrap();
    assert_eq!(last.data["code"], "over_budget", "{last:?}");
    assert_eq!(env.sent("big.gguf"), 0);
}
