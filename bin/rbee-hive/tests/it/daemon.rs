//! End to end: the real `rbee-hive` binary on an ephemeral port, downloading from the fake hub.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::support::{Daemon, SseEvent, TestEnv, metadata};

const MIB: u64 = 1 << 20;

fn encoded(reference: &str) -> String {
    percent_encoding::utf8_percent_encode(reference, percent_encoding::NON_ALPHANUMERIC).to_string()
}

fn names(events: &[SseEvent]) -> Vec<&str> {
    events.iter().map(|e| e.name.as_str()).collect()
}

fn read_result_file(done: &SseEvent) -> Vec<u8> {
    std::fs::read(done.data["result"]["path"].as_str().unwrap()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn download_streams_narrated_progress_to_done_and_a_repeat_is_not_an_error() {
    let env = TestEnv::with_rate_limit(Some(4 * MIB)).await;
    let bytes = env.write_file("models/tiny.gguf", 6 << 20);
    env.write_file("first.gguf", 2 << 20);
    // One download at a time, and one ahead: the stream is open before this job starts, so it
    // sees every event (a later subscriber starts from the job's current state instead).
    let hive = Daemon::start(&env, &["--max-concurrent-downloads", "1"]).await;
    let (status, health) = hive.get("/health").await;
    assert_eq!(
        (status, health["status"].as_str()),
        (StatusCode::OK, Some("ok"))
    );
    let first = hive.download(&env.file_ref("first.gguf")).await;
    hive.stream(&first).await.until_bytes(1).await;

    let job = hive.download(&env.file_ref("models/tiny.gguf")).await;
    let events = hive.stream(&job).await.until_final().await;
    let seen = names(&events);
    let structural: Vec<&str> = seen
        .iter()
        .filter(|n| !matches!(**n, "progress" | "heartbeat"))
        .copied()
        .collect();
    assert_eq!(
        structural,
        [
            "queued",
            "started",
            "file_started",
            "verifying",
            "file_done",
            "done"
        ],
        "{seen:?}"
    );
    assert!(seen.contains(&"progress"), "{seen:?}");
    for e in &events {
        assert_eq!(e.data["job_id"], job.as_str(), "{e:?}");
        assert!(!e.data["message"].as_str().unwrap().is_empty(), "{e:?}");
    }
    let progress = events.iter().find(|e| e.name == "progress").unwrap();
    for field in ["bytes", "total", "bytes_per_sec"] {
        assert!(progress.data[field].is_number(), "{field} in {progress:?}");
    }
    let done = events.last().unwrap();
    assert_eq!(done.data["event"], "completed");
    assert_eq!(done.data["result"]["outcome"], "downloaded");
    assert_eq!(read_result_file(done), bytes);

    let view = hive.wait_state(&job, "done").await;
    assert_eq!(view["progress"]["bytes"], 6 << 20);
    let id = done.data["result"]["id"].as_str().unwrap();
    let (status, model) = hive.get(&format!("/v1/models/{id}")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(model["status"]["state"], "ready");
    assert_eq!(model["size"], 6 << 20);

    // Asking again is not an error, and fetches nothing.
    let sent = env.sent("models/tiny.gguf");
    let again = hive.download(&env.file_ref("models/tiny.gguf")).await;
    let events = hive.stream(&again).await.until_final().await;
    let done = events.last().unwrap();
    assert_eq!(done.name, "done");
    assert_eq!(done.data["result"]["outcome"], "already_ready");
    assert_eq!(env.sent("models/tiny.gguf"), sent);

    // A late subscriber to a finished job gets its final event at once, then the stream ends.
    // The latest progress is a heartbeat when one ticked after the last throttled update.
    let events = hive.stream(&job).await.until_final().await;
    let seen = names(&events);
    assert!(
        matches!(
            seen.as_slice(),
            ["queued", "started", "progress" | "heartbeat", "done"]
        ),
        "{seen:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_subscribers_and_a_late_one_all_get_the_final_event() {
    let env = TestEnv::with_rate_limit(Some(2 * MIB)).await;
    env.write_file("m.gguf", 6 << 20);
    let hive = Daemon::start(&env, &[]).await;
    let job = hive.download(&env.file_ref("m.gguf")).await;
    let mut a = hive.stream(&job).await;
    let mut b = hive.stream(&job).await;
    a.until_bytes(MIB).await;

    // The late subscriber first gets the job as it is now: started, then the latest progress.
    let mut late = hive.stream(&job).await;
    let first = late.next().await.unwrap();
    assert_eq!(first.name, "started", "{first:?}");
    let second = late.next().await.unwrap();
    assert!(
        matches!(second.name.as_str(), "progress" | "heartbeat"),
        "{second:?}"
    );
    assert!(second.data["bytes"].as_u64().unwrap() >= MIB, "{second:?}");

    let mut finals = Vec::new();
    for stream in [&mut a, &mut b, &mut late] {
        let events = stream.until_final().await;
        let seqs: Vec<u64> = events
            .iter()
            .map(|e| e.data["seq"].as_u64().unwrap())
            .collect();
        assert!(seqs.windows(2).all(|w| w[0] < w[1]), "{seqs:?}");
        finals.push(events.last().unwrap().clone());
    }
    for f in &finals {
        assert_eq!(f.name, "done");
        assert_eq!(f.data["result"], finals[0].data["result"]);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_keeps_the_partial_and_a_new_job_resumes_from_it() {
    let env = TestEnv::with_rate_limit(Some(2 * MIB)).await;
    let bytes = env.write_file("big.gguf", 8 << 20);
    let hive = Daemon::start(&env, &[]).await;
    let job = hive.download(&env.file_ref("big.gguf")).await;
    let mut sse = hive.stream(&job).await;
    sse.until_bytes(2 * MIB).await;

    let (status, view) = hive.post_empty(&format!("/v1/jobs/{job}/cancel")).await;
    assert_eq!(status, StatusCode::OK, "{view}");
    assert_eq!(view["state"], "cancelled");
    let events = sse.until_final().await;
    let last = events.last().unwrap();
    assert_eq!(last.name, "cancelled");
    let kept = last.data["bytes_on_disk"].as_u64().unwrap();
    assert!(kept >= 2 * MIB, "{last:?}");

    let (_, models) = hive.get("/v1/models").await;
    let entry = &models["models"][0];
    assert_eq!(entry["status"]["state"], "incomplete", "{models}");
    let id = entry["id"].as_str().unwrap().to_string();
    assert_eq!(metadata(&env.cache(), &id)["status"]["state"], "incomplete");

    // Cancelling again is fine; pausing or resuming a cancelled job is not.
    let (status, _) = hive.post_empty(&format!("/v1/jobs/{job}/cancel")).await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) = hive.post_empty(&format!("/v1/jobs/{job}/resume")).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (StatusCode::CONFLICT, Some("invalid_state"))
    );

    let sent_before = env.sent("big.gguf");
    let again = hive.download(&env.file_ref("big.gguf")).await;
    let events = hive.stream(&again).await.until_final().await;
    // A stream opened after the file started reports it in progress events only; the hub's
    // byte count below is what proves the resume.
    if let Some(resumed) = events.iter().find(|e| e.name == "file_started") {
        assert!(
            resumed.data["resumed_from"].as_u64().unwrap() >= 2 * MIB,
            "{resumed:?}"
        );
    }
    let done = events.last().unwrap();
    assert_eq!(done.name, "done");
    assert_eq!(read_result_file(done), bytes);
    let refetched = env.sent("big.gguf") - sent_before;
    assert!(
        refetched <= (8 << 20) - 2 * MIB + 64 * 1024,
        "refetched {refetched} bytes"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pause_keeps_the_partial_and_resume_continues_under_the_same_job() {
    let env = TestEnv::with_rate_limit(Some(2 * MIB)).await;
    let bytes = env.write_file("p.gguf", 8 << 20);
    let hive = Daemon::start(&env, &[]).await;
    let job = hive.download(&env.file_ref("p.gguf")).await;
    let mut sse = hive.stream(&job).await;
    sse.until_bytes(2 * MIB).await;

    let (status, view) = hive.post_empty(&format!("/v1/jobs/{job}/pause")).await;
    assert_eq!(status, StatusCode::OK, "{view}");
    assert_eq!(
        (view["state"].as_str(), view["attempt"].as_u64()),
        (Some("paused"), Some(1))
    );
    let paused = sse.until("paused").await;
    assert!(
        paused.data["bytes_on_disk"].as_u64().unwrap() >= 2 * MIB,
        "{paused:?}"
    );
    let (status, view) = hive.post_empty(&format!("/v1/jobs/{job}/pause")).await;
    assert_eq!(
        (status, view["state"].as_str()),
        (StatusCode::OK, Some("paused"))
    );
    let (_, models) = hive.get("/v1/models").await;
    assert_eq!(models["models"][0]["status"]["state"], "incomplete");
    // Deleting a paused download is refused: its partial is what resume continues from.
    let (status, body) = hive
        .delete(&format!("/v1/models/{}", encoded(&env.file_ref("p.gguf"))))
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (StatusCode::CONFLICT, Some("busy"))
    );

    // A subscriber arriving while the job is paused sees it paused, and stays for the resume.
    let mut late = hive.stream(&job).await;
    late.until("paused").await;
    let sent_at_pause = env.sent("p.gguf");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        env.sent("p.gguf"),
        sent_at_pause,
        "bytes moved while paused"
    );

    let (status, view) = hive.post_empty(&format!("/v1/jobs/{job}/resume")).await;
    assert_eq!(status, StatusCode::OK, "{view}");
    assert_eq!(view["attempt"], 2);
    assert_eq!(view["job_id"], job.as_str());
    for stream in [&mut sse, &mut late] {
        let resumed = stream.next().await.unwrap();
        assert_eq!(resumed.name, "resumed", "{resumed:?}");
        let events = stream.until_final().await;
        let file = events.iter().find(|e| e.name == "file_started").unwrap();
        assert!(
            file.data["resumed_from"].as_u64().unwrap() >= 2 * MIB,
            "{file:?}"
        );
        assert!(events.iter().all(|e| e.data["job_id"] == job.as_str()));
        assert_eq!(events.last().unwrap().name, "done");
        assert_eq!(read_result_file(events.last().unwrap()), bytes);
    }
    assert!(
        env.sent("p.gguf") <= (8 << 20) + 64 * 1024,
        "{}",
        env.sent("p.gguf")
    );
    let (status, _) = hive.post_empty(&format!("/v1/jobs/{job}/resume")).await;
    assert_eq!(status, StatusCode::CONFLICT);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn identical_concurrent_downloads_share_one_transfer() {
    let env = TestEnv::with_rate_limit(Some(4 * MIB)).await;
    let bytes = env.write_file("shared.gguf", 6 << 20);
    let hive = Daemon::start(&env, &[]).await;
    let reference = env.file_ref("shared.gguf");
    let (one, two) = tokio::join!(hive.download(&reference), hive.download(&reference));
    assert_ne!(one, two);
    let (mut s1, mut s2) = (hive.stream(&one).await, hive.stream(&two).await);
    let (e1, e2) = tokio::join!(s1.until_final(), s2.until_final());
    for (job, events) in [(&one, &e1), (&two, &e2)] {
        assert!(events.iter().all(|e| e.data["job_id"] == job.as_str()));
        let done = events.last().unwrap();
        assert_eq!(done.name, "done");
        assert_eq!(read_result_file(done), bytes);
    }
    assert_eq!(env.sent("shared.gguf"), 6 << 20, "bytes sent by the hub");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_is_refused_while_downloading_then_removes_the_model() {
    let env = TestEnv::with_rate_limit(Some(2 * MIB)).await;
    env.write_file("d.gguf", 4 << 20);
    let hive = Daemon::start(&env, &[]).await;
    let reference = env.file_ref("d.gguf");
    let job = hive.download(&reference).await;
    let mut sse = hive.stream(&job).await;
    sse.until_bytes(256 * 1024).await;

    let (status, body) = hive
        .delete(&format!("/v1/models/{}", encoded(&reference)))
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(body["error"]["code"], "busy");
    assert!(
        body["error"]["message"].as_str().unwrap().contains(&job),
        "{body}"
    );
    // The same through a job: its stream ends with an error event carrying the code.
    let (_, created) = hive
        .post(
            "/v1/jobs",
            json!({"operation": "model_delete", "model": reference}),
        )
        .await;
    let events = hive
        .stream(created["job_id"].as_str().unwrap())
        .await
        .until_final()
        .await;
    let last = events.last().unwrap();
    assert_eq!(
        (last.name.as_str(), last.data["code"].as_str()),
        ("error", Some("busy"))
    );

    let done = sse.until_final().await;
    let id = done.last().unwrap().data["result"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let dir = done.last().unwrap().data["result"]["path"]
        .as_str()
        .unwrap()
        .to_string();
    let (status, removed) = hive.delete(&format!("/v1/models/{id}")).await;
    assert_eq!(status, StatusCode::OK, "{removed}");
    assert_eq!(
        (removed["id"].as_str(), removed["bytes"].as_u64()),
        (Some(id.as_str()), Some(4 << 20))
    );
    assert!(!std::path::Path::new(&dir).exists());
    let (status, body) = hive.get(&format!("/v1/models/{id}")).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (StatusCode::NOT_FOUND, Some("not_found"))
    );
    let (status, _) = hive.delete(&format!("/v1/models/{id}")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_during_a_download_keeps_it_resumable_and_a_restart_resumes() {
    let env = TestEnv::with_rate_limit(Some(2 * MIB)).await;
    let bytes = env.write_file("t.gguf", 8 << 20);
    let mut hive = Daemon::start(&env, &[]).await;
    let job = hive.download(&env.file_ref("t.gguf")).await;
    let mut sse = hive.stream(&job).await;
    sse.until_bytes(2 * MIB).await;

    let asked = std::time::Instant::now();
    hive.terminate();
    let events = sse.until_final().await;
    assert_eq!(events.last().unwrap().name, "cancelled");
    let status = hive.wait_exit(Duration::from_secs(15)).await;
    assert!(status.success(), "{status}: {}", hive.log());
    assert!(
        asked.elapsed() < Duration::from_secs(10),
        "{:?}",
        asked.elapsed()
    );

    let catalog_files: Vec<_> = walk(&env.cache());
    let part = catalog_files
        .iter()
        .find(|p| p.to_string_lossy().ends_with(".part"))
        .unwrap_or_else(|| panic!("no partial file in {catalog_files:?}"));
    assert!(std::fs::metadata(part).unwrap().len() >= 2 * MIB);

    let hive = Daemon::start(&env, &[]).await;
    let (_, models) = hive.get("/v1/models").await;
    assert_eq!(
        models["models"][0]["status"]["state"], "incomplete",
        "{models}"
    );
    let sent_before = env.sent("t.gguf");
    let again = hive.download(&env.file_ref("t.gguf")).await;
    let events = hive.stream(&again).await.until_final().await;
    if let Some(file) = events.iter().find(|e| e.name == "file_started") {
        assert!(
            file.data["resumed_from"].as_u64().unwrap() >= 2 * MIB,
            "{file:?}"
        );
    }
    assert_eq!(read_result_file(events.last().unwrap()), bytes);
    assert!(env.sent("t.gguf") - sent_before <= 6 * MIB + 64 * 1024);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_non_loopback_bind_needs_a_token_that_every_route_but_health_checks() {
    let env = TestEnv::new().await;
    let refused = Daemon::try_start(&env, &["--bind", "0.0.0.0"], &[])
        .await
        .err()
        .unwrap();
    assert!(refused.contains("exit status: 2"), "{refused}");
    assert!(refused.contains("RBEE_HIVE_TOKEN"), "{refused}");

    let token = "s3cret-token-9f8e7d";
    let hive = Daemon::try_start(&env, &["--bind", "0.0.0.0"], &[("RBEE_HIVE_TOKEN", token)])
        .await
        .unwrap();
    let anon = reqwest::Client::builder().no_proxy().build().unwrap();
    for path in [
        "/v1/models",
        "/v1/jobs",
        "/v1/jobs/x/stream",
        "/v1/models/download/progress",
    ] {
        let r = anon
            .get(format!("{}{path}", hive.url))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "{path}");
        assert_eq!(r.headers()["www-authenticate"], "Bearer");
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["error"]["code"], "unauthorized");
        let r = anon
            .get(format!("{}{path}", hive.url))
            .bearer_auth("s3cret-token-9f8e7X")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "{path}");
    }
    let r = anon
        .get(format!("{}/health", hive.url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let (status, _) = hive.get("/v1/models").await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = hive
        .post("/v1/jobs", json!({"operation": "model_list"}))
        .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    assert!(!hive.log().contains(token), "the token appears in the log");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_gets_json_errors_from_the_binary() {
    let env = TestEnv::new().await;
    let hive = Daemon::start(&env, &[]).await;
    let raw = |body: &'static str| {
        hive.request(reqwest::Method::POST, "/v1/jobs")
            .header("content-type", "application/json")
            .body(body)
            .send()
    };
    let cases: Vec<(reqwest::Response, StatusCode, &str)> = vec![
        (
            raw("{\"operation\":").await.unwrap(),
            StatusCode::BAD_REQUEST,
            "bad_json",
        ),
        (
            raw("{\"operation\":\"model_fly\"}").await.unwrap(),
            StatusCode::BAD_REQUEST,
            "unknown_operation",
        ),
        (
            raw("{\"operation\":\"model_download\",\"model\":\"hf:../x\"}")
                .await
                .unwrap(),
            StatusCode::BAD_REQUEST,
            "invalid_reference",
        ),
        (
            hive.request(reqwest::Method::POST, "/v1/jobs")
                .header("content-type", "application/json")
                .body(format!(
                    "{{\"operation\":\"model_list\",\"pad\":\"{}\"}}",
                    "x".repeat(100_000)
                ))
                .send()
                .await
                .unwrap(),
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
        ),
        (
            hive.request(reqwest::Method::GET, "/v1/jobs/job-nope")
                .send()
                .await
                .unwrap(),
            StatusCode::NOT_FOUND,
            "job_not_found",
        ),
        (
            hive.request(reqwest::Method::GET, "/v1/jobs/job-nope/stream")
                .send()
                .await
                .unwrap(),
            StatusCode::NOT_FOUND,
            "job_not_found",
        ),
        (
            hive.request(reqwest::Method::POST, "/v1/jobs/job-nope/cancel")
                .send()
                .await
                .unwrap(),
            StatusCode::NOT_FOUND,
            "job_not_found",
        ),
    ];
    for (response, status, code) in cases {
        assert_eq!(response.status(), status, "{code}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"]["code"], code, "{body}");
        assert!(!body["error"]["message"].as_str().unwrap().is_empty());
    }
    let (status, _) = hive.get("/health").await;
    assert_eq!(status, StatusCode::OK, "still serving");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_vendor_downloads_through_the_daemon_and_the_feed_reports_them() {
    let env = TestEnv::new().await;
    let hf = env.write_file("hf/org/tiny-GGUF/tiny.Q4_K_M.gguf", 300_000);
    env.write_file("hf/org/tiny-GGUF/config.json", 20);
    let gh = env.write_file("gh/owner/tools/v1.0/vocab.gguf", 200_000);
    let url = env.write_file("plain/weights.bin", 100_000);
    let local_path = env.dir.path().join("local.gguf");
    std::fs::write(&local_path, crate::support::noise(50_000, 9)).unwrap();
    let local_root = env.dir.path().to_str().unwrap().to_string();
    let hive = Daemon::start(
        &env,
        &[
            "--max-concurrent-downloads",
            "1",
            "--allow-local",
            &local_root,
        ],
    )
    .await;
    let mut feed = hive.sse("/v1/models/download/progress").await;

    // Local files outside the allowed folder are not read for callers.
    let (status, body) = hive
        .post(
            "/v1/models/download",
            json!({"model_ref": "file:/etc/hostname"}),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert_eq!(body["error"]["code"], "local_files_not_allowed");

    let cases = [
        ("hf:org/tiny-GGUF:Q4_K_M".to_string(), hf),
        ("gh:owner/tools@v1.0/vocab.gguf".to_string(), gh),
        (env.file_ref("plain/weights.bin"), url),
        (
            format!("file:{}", local_path.display()),
            std::fs::read(&local_path).unwrap(),
        ),
    ];
    let mut ids = Vec::new();
    for (reference, _) in &cases {
        let (status, body) = hive
            .post("/v1/models/download", json!({"model_ref": reference}))
            .await;
        assert_eq!(status, StatusCode::ACCEPTED, "{body}");
        assert!(body["status"].is_string());
        ids.push(body["download_id"].as_str().unwrap().to_string());
    }
    for (id, (reference, bytes)) in ids.iter().zip(&cases) {
        let events = hive.stream(id).await.until_final().await;
        let done = events.last().unwrap();
        assert_eq!(done.name, "done", "{reference}: {done:?}");
        assert_eq!(&read_result_file(done), bytes, "{reference}");
    }
    // The feed saw each download start, progress and complete.
    let mut complete = std::collections::HashSet::new();
    let mut started = std::collections::HashSet::new();
    while complete.len() < ids.len() {
        let event = feed.next().await.unwrap();
        let id = event.data["download_id"].as_str().unwrap().to_string();
        assert!(ids.contains(&id), "{event:?}");
        assert!(event.data["model"].is_string());
        match event.name.as_str() {
            "started" => {
                started.insert(id);
            }
            "complete" => {
                assert!(started.contains(&id), "complete before started: {event:?}");
                complete.insert(id);
            }
            "queued" | "progress" => {}
            other => panic!("unexpected feed event {other}: {event:?}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queued_jobs_say_so_and_catalog_operations_run_as_jobs() {
    let env = TestEnv::with_rate_limit(Some(4 * MIB)).await;
    env.write_file("a.gguf", 4 << 20);
    env.write_file("b.gguf", 1 << 20);
    let hive = Daemon::start(&env, &["--max-concurrent-downloads", "1"]).await;
    let a = hive.download(&env.file_ref("a.gguf")).await;
    let mut sa = hive.stream(&a).await;
    sa.until_bytes(256 * 1024).await;
    let b = hive.download(&env.file_ref("b.gguf")).await;
    // Queued, and (once it has asked for a download slot) told its place in the queue.
    let deadline = tokio::time::Instant::now() + crate::support::SOON;
    loop {
        let (_, view) = hive.get(&format!("/v1/jobs/{b}")).await;
        assert_eq!(view["state"], "queued", "{view}");
        if view["queue_position"] == 0 {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "{view}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let events = hive.stream(&b).await.until_final().await;
    assert_eq!(events[0].name, "queued");
    assert_eq!(events.last().unwrap().name, "done");
    let done_a = sa.until_final().await;
    let a_path = done_a.last().unwrap().data["result"]["path"]
        .as_str()
        .unwrap()
        .to_string();
    let a_id = done_a.last().unwrap().data["result"]["id"]
        .as_str()
        .unwrap()
        .to_string();

    let run = |operation: &'static str, model: Option<String>| {
        let mut body = json!({"operation": operation});
        if let Some(m) = model {
            body["model"] = m.into();
        }
        let hive = &hive;
        async move {
            let (status, created) = hive.post("/v1/jobs", body).await;
            assert_eq!(status, StatusCode::ACCEPTED, "{created}");
            let events = hive
                .stream(created["job_id"].as_str().unwrap())
                .await
                .until_final()
                .await;
            events.last().unwrap().clone()
        }
    };
    let list = run("model_list", None).await;
    assert_eq!(list.name, "done");
    assert_eq!(list.data["result"]["models"].as_array().unwrap().len(), 2);
    let get = run("model_get", Some(a_id.clone())).await;
    assert_eq!(get.data["result"]["path"], a_path.as_str());
    let verify = run("model_verify", Some(a_id.clone())).await;
    assert_eq!(verify.name, "done", "{verify:?}");

    // A changed file fails verification: an error event with the report.
    let mut bytes = std::fs::read(&a_path).unwrap();
    bytes[1000] ^= 0xff;
    std::fs::write(&a_path, bytes).unwrap();
    let verify = run("model_verify", Some(a_id.clone())).await;
    assert_eq!(
        (verify.name.as_str(), verify.data["code"].as_str()),
        ("error", Some("integrity"))
    );
    assert_eq!(
        verify.data["result"]["files"][0]["outcome"]["result"],
        "digest_mismatch"
    );
    let (_, model) = hive.get(&format!("/v1/models/{a_id}")).await;
    assert_eq!(model["status"]["state"], "failed");

    let missing = run("model_get", Some("hf:nobody/nothing".into())).await;
    assert_eq!(
        (missing.name.as_str(), missing.data["code"].as_str()),
        ("error", Some("not_found"))
    );
    let (status, jobs) = hive.get("/v1/jobs").await;
    assert_eq!(status, StatusCode::OK);
    assert!(jobs["jobs"].as_array().unwrap().len() >= 7);
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else {
                out.push(path);
            }
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ready_model_is_shown_with_its_summary() {
    use rbee_gguf::{GgmlType, GgufWriter, Value as GgufValue};
    let env = TestEnv::new().await;
    let path = env.dir.path().join("hub/tiny.Q8_0.gguf");
    GgufWriter::new()
        .kv("general.architecture", GgufValue::String("llama".into()))
        .kv("llama.block_count", GgufValue::U32(2))
        .kv("llama.context_length", GgufValue::U32(4096))
        .kv("llama.embedding_length", GgufValue::U32(64))
        .kv("llama.attention.head_count", GgufValue::U32(4))
        .kv("llama.attention.head_count_kv", GgufValue::U32(2))
        .tensor("token_embd.weight", &[64, 100], GgmlType::Q8_0)
        .tensor("blk.0.attn_q.weight", &[64, 64], GgmlType::Q8_0)
        .tensor("blk.1.attn_q.weight", &[64, 64], GgmlType::Q8_0)
        .write_to(&path)
        .unwrap();
    env.write_file("noise.gguf", 4096);
    let hive = Daemon::start(&env, &[]).await;
    let mut ids = Vec::new();
    for file in ["tiny.Q8_0.gguf", "noise.gguf"] {
        let job = hive.download(&env.file_ref(file)).await;
        let done = hive.stream(&job).await.until_final().await;
        let done = done.last().unwrap();
        assert_eq!(done.name, "done", "{done:?}");
        ids.push(done.data["result"]["id"].as_str().unwrap().to_string());
    }

    let (status, model) = hive.get(&format!("/v1/models/{}", ids[0])).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        model["model"]["summary"]["architecture"], "llama",
        "{model}"
    );
    assert_eq!(model["model"]["summary"]["kv_heads"], 2);
    assert_eq!(model["model"]["summary"]["context_length"], 4096);
    // KV at the training context: 2 layers × (2 heads × 16) × K and V × 2 bytes × 4096.
    assert_eq!(
        model["model"]["estimate"]["gpu"]["kv_cache"],
        2 * 32 * 2 * 2 * 4096
    );
    // Unreadable headers are said so, and the entry is still shown.
    let (status, model) = hive.get(&format!("/v1/models/{}", ids[1])).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        model["model"]["error"]
            .as_str()
            .is_some_and(|e| e.contains("reading the model headers")),
        "{model}"
    );
    // The listing stays cheap: no headers read, no summary.
    let (_, list) = hive.get("/v1/models").await;
    for m in list["models"].as_array().unwrap() {
        assert!(m.get("model").is_none(), "{m}");
    }
}
