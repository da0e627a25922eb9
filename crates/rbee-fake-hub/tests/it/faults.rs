//! Each fault through real HTTP.

use std::time::{Duration, Instant};

use rbee_fake_hub::{Fault, FaultAction, Host};

use crate::common::{client, header, pattern, read_all, start};

#[tokio::test]
async fn drop_cuts_the_connection_after_exactly_n_bytes() {
    let data = pattern(4 * 1024 * 1024, 10);
    let fx = start(&[("f.bin", &data)]).await;
    fx.hub
        .set_faults(vec![Fault::drop_after(1_000_003).path("f.bin").times(1)]);
    let c = client();
    let resp = c.get(fx.hub.file_url("f.bin")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(header(&resp, "content-length"), Some("4194304"));
    let (got, err) = read_all(resp).await;
    assert!(err.is_some(), "the body ends in an error, not a clean end");
    assert_eq!(got.len(), 1_000_003, "exactly the bytes before the cut");
    assert!(got[..] == data[..1_000_003]);
    assert_eq!(fx.hub.counters_for("/files/f.bin").bytes_sent, 1_000_003);

    // Used up: the resumed request completes, and only the missing bytes are sent.
    let resp = c
        .get(fx.hub.file_url("f.bin"))
        .header("range", "bytes=1000003-")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 206);
    let rest = resp.bytes().await.unwrap();
    assert!(rest[..] == data[1_000_003..]);
    assert_eq!(
        fx.hub.counters_for("/files/f.bin").bytes_sent,
        data.len() as u64
    );
    assert_eq!(fx.hub.faults()[0].used, 1);
}

#[tokio::test]
async fn drop_with_reset_is_an_error_too() {
    let data = pattern(1024 * 1024, 11);
    let fx = start(&[("f.bin", &data)]).await;
    fx.hub.set_faults(vec![Fault::new(FaultAction::Drop {
        after_bytes: 5000,
        reset: true,
    })]);
    let resp = client().get(fx.hub.file_url("f.bin")).send().await.unwrap();
    let (got, err) = read_all(resp).await;
    assert!(err.is_some());
    assert!(got.len() <= 5000);
    assert!(got[..] == data[..got.len()]);
}

#[tokio::test]
async fn drop_at_a_small_offset_is_exact() {
    let data = pattern(100_000, 12);
    let fx = start(&[("f.bin", &data)]).await;
    fx.hub.set_faults(vec![Fault::drop_after(10)]);
    let resp = client().get(fx.hub.file_url("f.bin")).send().await.unwrap();
    // Prompt: the cut waits only for the bytes before it to reach the socket.
    let (got, err) = tokio::time::timeout(Duration::from_secs(3), read_all(resp))
        .await
        .expect("the cut happens at once");
    assert!(err.is_some());
    assert_eq!(got, data[..10]);
}

#[tokio::test]
async fn status_faults_apply_to_the_first_k_requests() {
    let fx = start(&[("f.bin", b"hello")]).await;
    fx.hub.set_faults(vec![
        Fault::status(503).times(2),
        Fault::status(500).path("other.bin"),
    ]);
    let c = client();
    let url = fx.hub.file_url("f.bin");
    assert_eq!(c.get(url.clone()).send().await.unwrap().status(), 503);
    assert_eq!(c.head(url.clone()).send().await.unwrap().status(), 503);
    let resp = c.get(url.clone()).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(&resp.bytes().await.unwrap()[..], b"hello");
    assert_eq!(
        c.get(fx.hub.file_url("other.bin"))
            .send()
            .await
            .unwrap()
            .status(),
        500
    );
    let counters = fx.hub.counters_for("/files/f.bin");
    assert_eq!(counters.status(503), 2);
    assert_eq!(counters.status(200), 1);
}

#[tokio::test]
async fn too_many_requests_carries_retry_after() {
    let fx = start(&[("f.bin", b"hello")]).await;
    fx.hub.set_faults(vec![
        Fault::too_many_requests(7).times(1),
        Fault::new(FaultAction::Status {
            status: 503,
            retry_after: Some(3),
        })
        .times(1),
    ]);
    let c = client();
    let resp = c.get(fx.hub.file_url("f.bin")).send().await.unwrap();
    assert_eq!(resp.status(), 429);
    assert_eq!(header(&resp, "retry-after"), Some("7"));
    let resp = c.get(fx.hub.file_url("f.bin")).send().await.unwrap();
    assert_eq!(resp.status(), 503);
    assert_eq!(header(&resp, "retry-after"), Some("3"));
    assert_eq!(
        c.get(fx.hub.file_url("f.bin"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
}

#[tokio::test]
async fn stall_pauses_then_continues() {
    let data = pattern(300_000, 13);
    let fx = start(&[("f.bin", &data)]).await;
    fx.hub.set_faults(vec![
        Fault::stall(100_000, Duration::from_millis(700)).times(1),
    ]);
    let mut resp = client().get(fx.hub.file_url("f.bin")).send().await.unwrap();
    let mut got = Vec::new();
    while got.len() < 100_000 {
        got.extend_from_slice(&resp.chunk().await.unwrap().unwrap());
    }
    assert_eq!(got.len(), 100_000, "nothing past the stall point yet");
    let t = Instant::now();
    let (rest, err) = read_all(resp).await;
    assert!(err.is_none());
    assert!(
        t.elapsed() >= Duration::from_millis(500),
        "stalled {:?}",
        t.elapsed()
    );
    got.extend_from_slice(&rest);
    assert!(got[..] == data[..]);
}

#[tokio::test]
async fn hang_never_resumes() {
    let data = pattern(300_000, 14);
    let fx = start(&[("f.bin", &data)]).await;
    fx.hub.set_faults(vec![Fault::hang(50_000)]);
    let resp = client().get(fx.hub.file_url("f.bin")).send().await.unwrap();
    let outcome = tokio::time::timeout(Duration::from_millis(1500), read_all(resp)).await;
    assert!(outcome.is_err(), "the body must not complete while hanging");
    // A dropped hub does not wait for the hung response.
    let t = Instant::now();
    fx.hub.shutdown().await;
    assert!(t.elapsed() < Duration::from_secs(10));
}

#[tokio::test]
async fn flip_byte_corrupts_one_file_offset_in_any_range() {
    let data = pattern(100_000, 15);
    let fx = start(&[("f.bin", &data)]).await;
    fx.hub.set_faults(vec![Fault::flip_byte(54_321)]);
    let c = client();
    let body = c
        .get(fx.hub.file_url("f.bin"))
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    let diffs: Vec<usize> = (0..data.len()).filter(|&i| body[i] != data[i]).collect();
    assert_eq!(diffs, vec![54_321]);
    assert_eq!(body[54_321], !data[54_321]);
    // A range that covers the offset is corrupted at the same file offset.
    let body = c
        .get(fx.hub.file_url("f.bin"))
        .header("range", "bytes=50000-59999")
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert_eq!(body[4_321], !data[54_321]);
    assert_eq!(body[..4_321], data[50_000..54_321]);
    // One that does not is intact.
    let body = c
        .get(fx.hub.file_url("f.bin"))
        .header("range", "bytes=60000-")
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert!(body[..] == data[60_000..]);
}

#[tokio::test]
async fn ignore_range_answers_200_with_everything() {
    let data = pattern(10_000, 16);
    let fx = start(&[("f.bin", &data)]).await;
    fx.hub.set_faults(vec![Fault::ignore_range().times(1)]);
    let c = client();
    // A request without Range does not use the fault up.
    assert_eq!(
        c.get(fx.hub.file_url("f.bin"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    let resp = c
        .get(fx.hub.file_url("f.bin"))
        .header("range", "bytes=5000-")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert!(resp.bytes().await.unwrap()[..] == data[..]);
    let resp = c
        .get(fx.hub.file_url("f.bin"))
        .header("range", "bytes=5000-")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 206);
}

#[tokio::test]
async fn wrong_content_length_announces_more_then_closes() {
    let data = pattern(50_000, 17);
    let fx = start(&[("f.bin", &data)]).await;
    fx.hub.set_faults(vec![Fault::wrong_content_length(100)]);
    let resp = client().get(fx.hub.file_url("f.bin")).send().await.unwrap();
    assert_eq!(header(&resp, "content-length"), Some("50100"));
    let (got, err) = read_all(resp).await;
    assert!(err.is_some(), "short body is an error");
    assert!(got[..] == data[..], "every real byte arrives first");
}

#[tokio::test]
async fn expire_redirect_makes_the_signed_url_fail() {
    let fx = start(&[("f.bin", b"hello")]).await;
    fx.hub.set_faults(vec![Fault::expire_redirect(0).times(1)]);
    let c = client();
    let resp = c.get(fx.hub.redirect_url("f.bin")).send().await.unwrap();
    let location = header(&resp, "location").unwrap().to_owned();
    let resp = c.get(&location).send().await.unwrap();
    assert_eq!(resp.status(), 403);
    // The next redirect is valid again.
    let resp = c.get(fx.hub.redirect_url("f.bin")).send().await.unwrap();
    let location = header(&resp, "location").unwrap().to_owned();
    assert_eq!(c.get(&location).send().await.unwrap().status(), 200);
}

#[tokio::test]
async fn host_filter_hits_only_the_cdn() {
    let fx = start(&[("f.bin", b"hello")]).await;
    fx.hub.set_faults(vec![Fault::status(500).on(Host::Cdn)]);
    let c = client();
    assert_eq!(
        c.get(fx.hub.file_url("f.bin"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(
        c.get(fx.hub.cdn_file_url("f.bin"))
            .send()
            .await
            .unwrap()
            .status(),
        500
    );
}

#[tokio::test]
async fn invalid_faults_are_refused() {
    let fx = start(&[]).await;
    assert!(fx.hub.try_set_faults(vec![Fault::status(1000)]).is_err());
    assert!(
        fx.hub
            .try_set_faults(vec![Fault::status(500).path("a[")])
            .is_err()
    );
    assert!(fx.hub.faults().is_empty());
}
