//! The admin HTTP endpoint.

use rbee_fake_hub::{CountersSnapshot, FaultState};

use crate::common::{client, pattern, start};

#[tokio::test]
async fn faults_counters_and_rate_over_http() {
    let data = pattern(10_000, 20);
    let fx = start(&[("f.bin", &data)]).await;
    let c = client();
    let admin = fx.hub.url().join("_admin/").unwrap();

    let resp = c
        .post(admin.join("faults").unwrap())
        .body(r#"[{"path":"f.bin","times":1,"kind":"status","status":503}]"#)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let listed: Vec<FaultState> = resp.json().await.unwrap();
    assert_eq!(listed.len(), 1);
    let resp = c
        .post(admin.join("faults/add").unwrap())
        .body(r#"{"kind":"drop","after_bytes":10,"path":"other.bin"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(fx.hub.faults().len(), 2);

    assert_eq!(
        c.get(fx.hub.file_url("f.bin"))
            .send()
            .await
            .unwrap()
            .status(),
        503
    );
    let body = c
        .get(fx.hub.file_url("f.bin"))
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert_eq!(body.len(), data.len());

    let snap: CountersSnapshot = c
        .get(admin.join("counters").unwrap())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let f = snap.path("/files/f.bin");
    assert_eq!(f.requests, 2);
    assert_eq!(f.status(503), 1);
    let log = fx.hub.requests();
    assert_eq!(log.len(), 2);
    assert_eq!(log[1].status, Some(200));
    assert_eq!(log[1].bytes_sent, data.len() as u64);
    assert_eq!(
        f.bytes_sent,
        log[0].bytes_sent + log[1].bytes_sent,
        "the 503 body counts too"
    );
    assert!(
        snap.paths.keys().all(|p| !p.starts_with("/_admin")),
        "admin calls are not counted"
    );

    let resp = c
        .post(admin.join("counters/reset").unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 204);
    assert_eq!(fx.hub.counters().total_requests, 0);

    let resp = c
        .delete(admin.join("faults").unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 204);
    assert!(fx.hub.faults().is_empty());

    let resp = c
        .post(admin.join("faults").unwrap())
        .body(r#"{"kind":"explode"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    let msg = resp.text().await.unwrap();
    assert!(msg.contains("invalid fault JSON"), "{msg}");

    let resp = c
        .post(admin.join("rate-limit").unwrap())
        .body(r#"{"bytes_per_sec": 123456}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let v: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(v["bytes_per_sec"], 123456);
    let v: serde_json::Value = c
        .post(admin.join("rate-limit").unwrap())
        .body(r#"{"bytes_per_sec": null}"#)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(v["bytes_per_sec"].is_null());

    let log: Vec<serde_json::Value> = c
        .get(admin.join("requests").unwrap())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(log.is_empty(), "reset cleared the log");
}

#[tokio::test]
async fn the_request_log_tells_kept_alive_connections_apart() {
    let data = pattern(64 * 1024, 13);
    let fx = start(&[("f.bin", &data)]).await;
    // One client keeps its connection alive for two requests (which is how a slow
    // connection's later responses are found); a second client opens another.
    let first = client();
    for _ in 0..2 {
        let resp = first
            .get(fx.hub.file_url("f.bin"))
            .header("range", "bytes=0-8191")
            .send()
            .await
            .unwrap();
        assert!(resp.bytes().await.unwrap()[..] == data[..8192]);
    }
    let rest = client()
        .get(fx.hub.file_url("f.bin"))
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert!(rest[..] == data[..]);
    let log = fx.hub.requests();
    assert_eq!(log.len(), 3);
    assert!(log.iter().all(|r| r.connection.is_some()), "{log:?}");
    assert_eq!(log[0].connection, log[1].connection, "kept alive");
    assert_ne!(log[0].connection, log[2].connection);
}
