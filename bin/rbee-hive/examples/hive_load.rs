//! Load client for `bench/hive-load.sh` (not a test): many SSE subscribers on one download, plus
//! a batch of queued download jobs, against a running rbee-hive. Prints one JSON summary line.
//!
//! ```text
//! hive_load --url http://127.0.0.1:8600 --big http://127.0.0.1:9/files/big.bin \
//!     --subscribers 200 --small http://…/small-1.bin --small http://…/small-2.bin …
//! ```
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::collections::HashMap;
use std::time::{Duration, Instant};

use futures::StreamExt;
use serde_json::{Value, json};

#[derive(Debug, Default)]
struct Args {
    url: String,
    big: String,
    subscribers: usize,
    small: Vec<String>,
    timeout: u64,
}

fn args() -> Args {
    let mut args = Args {
        subscribers: 200,
        timeout: 600,
        ..Default::default()
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().unwrap_or_else(|| panic!("{flag} needs a value"));
        match flag.as_str() {
            "--url" => args.url = value(),
            "--big" => args.big = value(),
            "--subscribers" => args.subscribers = value().parse().expect("a number"),
            "--small" => args.small.push(value()),
            "--timeout" => args.timeout = value().parse().expect("seconds"),
            other => panic!("unknown flag {other}"),
        }
    }
    assert!(
        !args.url.is_empty() && !args.big.is_empty(),
        "--url and --big are required"
    );
    args
}

/// What one subscriber saw.
#[derive(Debug, Default)]
struct Seen {
    events: u64,
    final_name: Option<String>,
    out_of_order: u64,
    skipped_comments: u64,
    final_at: Option<Instant>,
}

async fn subscribe(
    client: reqwest::Client,
    url: String,
    connected: tokio::sync::mpsc::Sender<()>,
) -> Seen {
    let mut seen = Seen::default();
    let response = client.get(&url).send().await.expect("stream request");
    assert!(
        response.status().is_success(),
        "{url}: {}",
        response.status()
    );
    let _ = connected.send(()).await;
    let mut body = response.bytes_stream();
    let mut buf: Vec<u8> = Vec::new();
    let mut last_id: Option<(u64, u64)> = None;
    while let Some(chunk) = body.next().await {
        let Ok(chunk) = chunk else { break };
        buf.extend_from_slice(&chunk);
        while let Some(end) = buf.windows(2).position(|w| w == b"\n\n") {
            let block: Vec<u8> = buf.drain(..end + 2).collect();
            let block = String::from_utf8_lossy(&block);
            let mut name = None;
            let mut id = None;
            for line in block.lines() {
                if let Some(v) = line.strip_prefix("event: ") {
                    name = Some(v.to_string());
                } else if let Some(v) = line.strip_prefix("id: ") {
                    id = v
                        .split_once('.')
                        .and_then(|(a, s)| Some((a.parse().ok()?, s.parse().ok()?)));
                } else if line.starts_with(": skipped") {
                    seen.skipped_comments += 1;
                }
            }
            let Some(name) = name else { continue };
            seen.events += 1;
            if let (Some(prev), Some(now)) = (last_id, id)
                && now <= prev
            {
                seen.out_of_order += 1;
            }
            last_id = id.or(last_id);
            if matches!(name.as_str(), "done" | "error" | "cancelled") {
                seen.final_name = Some(name);
                seen.final_at = Some(Instant::now());
            }
        }
    }
    seen
}

async fn start_job(client: &reqwest::Client, base: &str, model: &str) -> String {
    let response = client
        .post(format!("{base}/v1/jobs"))
        .json(&json!({"operation": "model_download", "model": model}))
        .send()
        .await
        .expect("POST /v1/jobs");
    let status = response.status();
    let body: Value = response.json().await.expect("JSON");
    assert!(status.is_success(), "{status}: {body}");
    body["job_id"].as_str().expect("job_id").to_string()
}

#[tokio::main]
async fn main() {
    let args = args();
    let base = args.url.trim_end_matches('/').to_string();
    let client = reqwest::Client::builder()
        .no_proxy()
        .pool_max_idle_per_host(0)
        .build()
        .unwrap();
    let began = Instant::now();

    // Every download's feed, to count completions.
    let (feed_tx, mut feed_rx) = tokio::sync::mpsc::channel(1);
    let feed_url = format!("{base}/v1/models/download/progress");
    let feed_client = client.clone();
    let expected = 1 + args.small.len();
    let feed = tokio::spawn(async move {
        let response = feed_client.get(&feed_url).send().await.expect("feed");
        let _ = feed_tx.send(()).await;
        // No idle limit to speak of: the feed is quiet while the big download runs.
        let mut events = rbee_hive::client::EventStream::with_idle_limit(
            response,
            std::time::Duration::from_secs(3600),
        );
        let mut complete: HashMap<String, String> = HashMap::new();
        while let Ok(Some(event)) = events.next().await {
            if matches!(event.name.as_str(), "complete" | "error" | "cancelled") {
                let data: Value = event.json().unwrap_or_default();
                if let Some(id) = data["download_id"].as_str() {
                    complete.insert(id.to_string(), event.name.clone());
                }
            }
            if complete.len() >= expected {
                break;
            }
        }
        complete
    });
    feed_rx.recv().await;

    let big = start_job(&client, &base, &args.big).await;
    let (tx, mut connected) = tokio::sync::mpsc::channel(args.subscribers.max(1));
    let mut subscribers = Vec::new();
    for _ in 0..args.subscribers {
        subscribers.push(tokio::spawn(subscribe(
            client.clone(),
            format!("{base}/v1/jobs/{big}/stream"),
            tx.clone(),
        )));
    }
    for _ in 0..args.subscribers {
        connected.recv().await;
    }
    let subscribed_in = began.elapsed();

    let mut small = Vec::new();
    for model in &args.small {
        let job = start_job(&client, &base, model).await;
        small.push((
            job.clone(),
            tokio::spawn(subscribe(
                client.clone(),
                format!("{base}/v1/jobs/{job}/stream"),
                tx.clone(),
            )),
        ));
    }
    drop(tx);

    let deadline = Duration::from_secs(args.timeout);
    let mut big_seen = Vec::new();
    for s in subscribers {
        big_seen.push(
            tokio::time::timeout(deadline, s)
                .await
                .expect("timeout")
                .unwrap(),
        );
    }
    let mut small_seen = Vec::new();
    for (job, s) in small {
        small_seen.push((
            job,
            tokio::time::timeout(deadline, s)
                .await
                .expect("timeout")
                .unwrap(),
        ));
    }
    let elapsed = began.elapsed();
    let feed_complete = tokio::time::timeout(Duration::from_secs(10), feed)
        .await
        .ok()
        .and_then(Result::ok)
        .unwrap_or_default();

    let finals_done = big_seen
        .iter()
        .filter(|s| s.final_name.as_deref() == Some("done"))
        .count();
    let events: Vec<u64> = big_seen.iter().map(|s| s.events).collect();
    let final_times: Vec<Instant> = big_seen.iter().filter_map(|s| s.final_at).collect();
    let spread_ms = match (final_times.iter().min(), final_times.iter().max()) {
        (Some(a), Some(b)) => b.duration_since(*a).as_millis(),
        _ => 0,
    };
    let small_done = small_seen
        .iter()
        .filter(|(_, s)| s.final_name.as_deref() == Some("done"))
        .count();
    let summary = json!({
        "subscribers": args.subscribers,
        "subscribers_connected_ms": subscribed_in.as_millis(),
        "subscribers_with_done": finals_done,
        "events_per_subscriber_min": events.iter().min(),
        "events_per_subscriber_max": events.iter().max(),
        "out_of_order": big_seen.iter().map(|s| s.out_of_order).sum::<u64>(),
        "skipped_notices": big_seen.iter().map(|s| s.skipped_comments).sum::<u64>(),
        "final_event_spread_ms": spread_ms,
        "queued_jobs": args.small.len(),
        "queued_jobs_done": small_done,
        "feed_complete_events": feed_complete.values().filter(|v| *v == "complete").count(),
        "elapsed_ms": elapsed.as_millis(),
    });
    println!("{summary}");
    let ok = finals_done == args.subscribers
        && small_done == args.small.len()
        && feed_complete.len() == expected;
    if !ok {
        eprintln!("hive_load: some subscribers or jobs did not end with `done`");
        std::process::exit(1);
    }
}
