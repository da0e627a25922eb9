use std::time::Duration;

use tokio::sync::broadcast;

use super::*;
use crate::human::human_bytes;

fn drain(rx: &mut broadcast::Receiver<ProgressEvent>) -> Vec<ProgressEvent> {
    let mut out = Vec::new();
    while let Ok(e) = rx.try_recv() {
        out.push(e);
    }
    out
}

#[tokio::test(start_paused = true)]
async fn counts_bytes_percent_speed_and_eta() {
    let t = DownloadTracker::new("job-1".into());
    t.started("hf:o/r", 1000, 1);
    let f = t.file("a.gguf", Some(1000), 100);
    assert_eq!(t.bytes(), 100);
    f.advance(0);
    tokio::time::advance(Duration::from_secs(1)).await;
    f.advance(200);
    let s = t.snapshot();
    assert_eq!((s.bytes, s.total), (300, 1000));
    assert_eq!(s.percent, Some(30.0));
    // 200 bytes moved in one second; resumed bytes are not speed.
    assert!((s.bytes_per_sec - 200.0).abs() < 1.0, "{}", s.bytes_per_sec);
    assert!((s.eta_secs.unwrap() - 3.5).abs() < 0.1);
    assert_eq!(s.files.len(), 1);
    f.rewind(50);
    assert_eq!(t.bytes(), 250);
    assert_eq!(f.bytes(), 250);
    f.done();
    assert!(t.snapshot().files.is_empty());
}

#[tokio::test(start_paused = true)]
async fn speed_uses_a_moving_window() {
    let t = DownloadTracker::with_config(
        "j".into(),
        TrackerConfig {
            speed_window: Duration::from_secs(2),
            ..Default::default()
        },
    );
    t.started("x", 0, 1);
    let f = t.file("a", None, 0);
    t.snapshot();
    for _ in 0..10 {
        tokio::time::advance(Duration::from_millis(500)).await;
        f.advance(1000);
        t.snapshot();
    }
    // Fast phase: 2000 B/s. Then it slows to 100 B/s; after the window passes the old
    // rate is forgotten.
    for _ in 0..10 {
        tokio::time::advance(Duration::from_millis(500)).await;
        f.advance(50);
        t.snapshot();
    }
    let rate = t.snapshot().bytes_per_sec;
    assert!((rate - 100.0).abs() < 30.0, "{rate}");
}

#[tokio::test(start_paused = true)]
async fn progress_is_throttled_but_final_events_are_not() {
    let t = DownloadTracker::new("job-2".into());
    let (_, mut rx) = t.subscribe();
    t.started("x", 10_000_000, 1);
    let f = t.file("a", Some(10_000_000), 0);
    // 1000 writes within 50 ms of virtual time: at most one progress event.
    for _ in 0..1000 {
        f.advance(100);
    }
    tokio::time::advance(Duration::from_millis(50)).await;
    for _ in 0..1000 {
        f.advance(100);
    }
    // One second of steady writes: about ten progress events.
    for _ in 0..100 {
        tokio::time::advance(Duration::from_millis(10)).await;
        f.advance(1000);
    }
    f.done();
    t.completed("id", vec![], 10_000_000);
    t.failed("ignored after final", "x");
    let events = drain(&mut rx);
    let progress = events
        .iter()
        .filter(|e| matches!(e.kind, EventKind::Progress(_)))
        .count();
    assert!((9..=13).contains(&progress), "{progress} progress events");
    let last = events.last().unwrap();
    assert!(matches!(last.kind, EventKind::Completed { .. }));
    assert!(events.iter().all(|e| e.job_id.0 == "job-2"));
    let seqs: Vec<u64> = events.iter().map(|e| e.seq).collect();
    assert!(seqs.windows(2).all(|w| w[1] == w[0] + 1));
    assert!(
        !events
            .iter()
            .any(|e| matches!(e.kind, EventKind::Failed { .. }))
    );
}

#[tokio::test]
async fn many_subscribers_and_a_late_one() {
    let t = DownloadTracker::new("job-3".into());
    let mut subs: Vec<_> = (0..5).map(|_| t.subscribe().1).collect();
    t.started("x", 10, 1);
    let f = t.file("a", Some(10), 0);
    f.advance(10);
    let (replay, _) = t.subscribe();
    assert!(matches!(replay[0].kind, EventKind::Started { .. }));
    assert!(matches!(
        replay.last().unwrap().kind,
        EventKind::Progress(_)
    ));
    t.cancelled();
    for rx in &mut subs {
        let events = drain(rx);
        assert!(matches!(
            events.last().unwrap().kind,
            EventKind::Cancelled { bytes_on_disk: 10 }
        ));
    }
    let (replay, _) = t.subscribe();
    assert!(replay.last().unwrap().kind.is_final());
    assert!(t.is_finished());
}

#[tokio::test]
async fn a_lagging_subscriber_still_gets_the_final_event() {
    let t = DownloadTracker::with_config(
        "j".into(),
        TrackerConfig {
            channel_capacity: 16,
            progress_interval: Duration::ZERO,
            ..Default::default()
        },
    );
    let (_, mut rx) = t.subscribe();
    for i in 0..100 {
        t.message(format!("line {i}"));
    }
    t.completed("id", vec![], 0);
    let mut last = None;
    loop {
        match rx.try_recv() {
            Ok(e) => last = Some(e),
            Err(broadcast::error::TryRecvError::Lagged(_)) => continue,
            Err(_) => break,
        }
    }
    assert!(matches!(last.unwrap().kind, EventKind::Completed { .. }));
}

#[tokio::test(start_paused = true)]
async fn heartbeat_reports_real_bytes_with_the_job_id() {
    let t = DownloadTracker::new("job-hb".into());
    let (_, mut rx) = t.subscribe();
    t.started("x", 100, 1);
    let f = t.file("a", Some(100), 0);
    let hb = t.spawn_heartbeat(Duration::from_secs(1));
    tokio::time::sleep(Duration::from_millis(1500)).await;
    f.advance(40);
    tokio::time::sleep(Duration::from_secs(1)).await;
    let beats: Vec<ProgressSnapshot> = drain(&mut rx)
        .into_iter()
        .filter_map(|e| match e.kind {
            EventKind::Heartbeat(s) => {
                assert_eq!(e.job_id.0, "job-hb");
                Some(s)
            }
            _ => None,
        })
        .collect();
    assert_eq!(beats.len(), 2);
    assert_eq!(beats[0].bytes, 0);
    assert_eq!(beats[1].bytes, 40);
    assert_eq!(beats[1].percent, Some(40.0));
    drop(hb);
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(drain(&mut rx).is_empty(), "heartbeat stops when dropped");
}

#[tokio::test(start_paused = true)]
async fn the_first_reading_mid_transfer_is_a_real_speed_without_the_resumed_prefix() {
    let t = DownloadTracker::new("job-resume".into());
    t.started("x", 10_000, 1);
    // 6000 bytes were on disk from an earlier run; 1000 more arrive in 2 s.
    let f = t.file("a", Some(10_000), 6000);
    tokio::time::advance(Duration::from_secs(2)).await;
    f.advance(1000);
    let s = t.snapshot();
    assert_eq!(s.bytes, 7000);
    assert!((s.bytes_per_sec - 500.0).abs() < 1.0, "{}", s.bytes_per_sec);
    assert!((s.eta_secs.unwrap() - 6.0).abs() < 0.1, "{:?}", s.eta_secs);
    let file = &s.files[0];
    assert_eq!((file.bytes, file.total), (7000, 10_000));
    assert!(
        (file.bytes_per_sec - 500.0).abs() < 1.0,
        "{}",
        file.bytes_per_sec
    );
    assert!((file.eta_secs.unwrap() - 6.0).abs() < 0.1);
}

#[tokio::test(start_paused = true)]
async fn files_have_their_own_speed() {
    let t = DownloadTracker::new("job-files".into());
    t.started("x", 4000, 2);
    let a = t.file("a", Some(2000), 0);
    let b = t.file("b", Some(2000), 1500);
    tokio::time::advance(Duration::from_secs(1)).await;
    a.advance(600);
    b.advance(100);
    let s = t.snapshot();
    assert!((s.bytes_per_sec - 700.0).abs() < 1.0, "{}", s.bytes_per_sec);
    let rate = |p: &str| s.files.iter().find(|f| f.path == p).unwrap().bytes_per_sec;
    assert!((rate("a") - 600.0).abs() < 1.0, "{}", rate("a"));
    assert!((rate("b") - 100.0).abs() < 1.0, "{}", rate("b"));
}

#[tokio::test(start_paused = true)]
async fn a_followers_first_heartbeat_mid_transfer_reports_the_real_speed() {
    let source = DownloadTracker::new("job-src".into());
    source.started("x", 100_000, 1);
    let f = source.file("a", Some(100_000), 0);
    let follower = DownloadTracker::new("job-follow".into());
    let (_, mut rx) = follower.subscribe();
    let _task = follower.follow(&source);
    let _hb = follower.spawn_heartbeat(Duration::from_secs(2));
    // 1000 bytes every 100 ms: 10 kB/s.
    for _ in 0..25 {
        tokio::time::advance(Duration::from_millis(100)).await;
        f.advance(1000);
    }
    tokio::task::yield_now().await;
    let beat = drain(&mut rx)
        .into_iter()
        .find_map(|e| match e.kind {
            EventKind::Heartbeat(s) => Some(s),
            _ => None,
        })
        .expect("a heartbeat");
    assert!(beat.bytes >= 19_000, "{beat:?}");
    assert!(
        (beat.bytes_per_sec - 10_000.0).abs() < 1500.0,
        "{}",
        beat.bytes_per_sec
    );
    assert!(beat.eta_secs.is_some());
    assert_eq!(beat.files.len(), 1);
}

#[tokio::test]
async fn follower_restamps_events_with_its_own_job_id() {
    let source = DownloadTracker::new("job-a".into());
    source.started("x", 10, 1);
    let follower = DownloadTracker::new("job-b".into());
    let (_, mut rx) = follower.subscribe();
    let task = follower.follow(&source);
    tokio::task::yield_now().await;
    let f = source.file("a", Some(10), 0);
    f.advance(10);
    source.completed("id", vec![], 10);
    task.await.unwrap();
    let events = drain(&mut rx);
    assert!(events.iter().all(|e| e.job_id.0 == "job-b"));
    assert!(matches!(events[0].kind, EventKind::Started { .. }));
    assert!(matches!(
        events.last().unwrap().kind,
        EventKind::Completed { .. }
    ));
    assert_eq!(follower.bytes(), 10);
}

#[test]
fn events_serialize_with_a_tag() {
    let e = ProgressEvent {
        job_id: "j".into(),
        seq: 1,
        timestamp_ms: 5,
        kind: EventKind::Progress(ProgressSnapshot {
            bytes: 1,
            total: 2,
            percent: Some(50.0),
            ..Default::default()
        }),
    };
    let json = serde_json::to_value(&e).unwrap();
    assert_eq!(json["event"], "progress");
    assert_eq!(json["job_id"], "j");
    assert_eq!(json["bytes"], 1);
    let back: ProgressEvent = serde_json::from_value(json).unwrap();
    assert_eq!(back, e);
    assert_eq!(human_bytes(1536), "1.5 KiB");
    assert!(e.to_string().starts_with("50.0% (1 B of 2 B)"));
}
