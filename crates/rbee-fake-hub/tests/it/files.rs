//! Plain files: HTTP semantics, redirects, signed URLs, rate cap, counters.

use std::time::{Duration, Instant};

use rbee_fake_hub::FakeHubConfig;

use crate::common::{client, header, pattern, read_all, start, start_with, write};

#[tokio::test]
async fn full_get_has_validators_and_exact_counters() {
    let data = pattern(3 * 1024 * 1024 + 17, 1);
    let fx = start(&[("dir/big.bin", &data)]).await;
    let resp = client()
        .get(fx.hub.file_url("dir/big.bin"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(
        header(&resp, "content-length"),
        Some(&*data.len().to_string())
    );
    assert_eq!(header(&resp, "accept-ranges"), Some("bytes"));
    let etag = header(&resp, "etag").unwrap().to_owned();
    assert!(
        etag.starts_with('"') && etag.ends_with('"'),
        "strong etag: {etag}"
    );
    assert!(header(&resp, "last-modified").is_some());
    let body = resp.bytes().await.unwrap();
    assert!(body[..] == data[..], "body equals the file");

    let c = fx.hub.counters_for("/files/dir/big.bin");
    assert_eq!(c.requests, 1);
    assert_eq!(c.status(200), 1);
    assert_eq!(c.bytes_sent, data.len() as u64, "every byte counted once");
    assert_eq!(fx.hub.counters().total_bytes_sent, data.len() as u64);
}

#[tokio::test]
async fn ranges_answer_206_or_416() {
    let data = pattern(1000, 2);
    let fx = start(&[("f.bin", &data)]).await;
    let url = fx.hub.file_url("f.bin");
    let c = client();
    for (range, start, end) in [
        ("bytes=10-19", 10usize, 19usize),
        ("bytes=990-", 990, 999),
        ("bytes=-5", 995, 999),
        ("bytes=900-5000", 900, 999),
    ] {
        let resp = c
            .get(url.clone())
            .header("range", range)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 206, "{range}");
        assert_eq!(
            header(&resp, "content-range"),
            Some(&*format!("bytes {start}-{end}/1000")),
            "{range}"
        );
        assert_eq!(
            header(&resp, "content-length"),
            Some(&*(end - start + 1).to_string())
        );
        assert_eq!(
            &resp.bytes().await.unwrap()[..],
            &data[start..=end],
            "{range}"
        );
    }
    let resp = c
        .get(url.clone())
        .header("range", "bytes=1000-")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 416);
    assert_eq!(header(&resp, "content-range"), Some("bytes */1000"));
    // Multi-range requests get the whole file.
    let resp = c
        .get(url.clone())
        .header("range", "bytes=0-1,5-6")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.bytes().await.unwrap().len(), 1000);

    let ranges = fx.hub.counters_for("files/f.bin").ranges;
    assert_eq!(ranges.len(), 6);
    assert_eq!(ranges[0], "bytes=10-19");
    assert_eq!(fx.hub.counters_for("files/f.bin").status(416), 1);
}

#[tokio::test]
async fn if_range_with_a_stale_validator_gets_the_whole_file() {
    let data = pattern(4096, 3);
    let fx = start(&[("f.bin", &data)]).await;
    let url = fx.hub.file_url("f.bin");
    let c = client();
    let head = c.head(url.clone()).send().await.unwrap();
    let etag = header(&head, "etag").unwrap().to_owned();
    let lm = header(&head, "last-modified").unwrap().to_owned();

    for validator in [etag.as_str(), lm.as_str()] {
        let resp = c
            .get(url.clone())
            .header("range", "bytes=100-")
            .header("if-range", validator)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 206, "matching If-Range {validator}");
        assert_eq!(&resp.bytes().await.unwrap()[..], &data[100..]);
    }
    let resp = c
        .get(url.clone())
        .header("range", "bytes=100-")
        .header("if-range", "\"something-else\"")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200, "stale If-Range: whole file");
    assert_eq!(&resp.bytes().await.unwrap()[..], &data[..]);
}

#[tokio::test]
async fn head_has_the_headers_of_get_and_no_body() {
    let data = pattern(123_456, 4);
    let fx = start(&[("f.bin", &data)]).await;
    let c = client();
    let get = c.get(fx.hub.file_url("f.bin")).send().await.unwrap();
    let head = c.head(fx.hub.file_url("f.bin")).send().await.unwrap();
    assert_eq!(head.status(), 200);
    for h in ["content-length", "etag", "last-modified", "accept-ranges"] {
        assert_eq!(header(&head, h), header(&get, h), "{h}");
    }
    assert_eq!(header(&head, "content-length"), Some("123456"));
    drop(get);
    let ranged = c
        .head(fx.hub.file_url("f.bin"))
        .header("range", "bytes=10-19")
        .send()
        .await
        .unwrap();
    assert_eq!(ranged.status(), 206);
    assert_eq!(header(&ranged, "content-length"), Some("10"));
    assert!(head.bytes().await.unwrap().is_empty());
    assert_eq!(fx.hub.counters_for("/files/f.bin").requests, 3);
}

#[tokio::test]
async fn missing_files_and_escapes_are_404() {
    let fx = start(&[("f.bin", b"x")]).await;
    let c = client();
    for path in [
        "files/nope.bin",
        "files/../Cargo.toml",
        "files/%2E%2E/etc/passwd",
        "files/",
        "nothing",
    ] {
        let url = fx.hub.url().join(path).unwrap();
        let resp = c.get(url).send().await.unwrap();
        assert_eq!(resp.status(), 404, "{path}");
    }
    let resp = c.post(fx.hub.file_url("f.bin")).send().await.unwrap();
    assert_eq!(resp.status(), 405);
}

#[tokio::test]
async fn empty_files_and_odd_names() {
    let fx = start(&[("empty.bin", b""), ("sub dir/a#b?.txt", b"hello")]).await;
    let c = client();
    let resp = c.get(fx.hub.file_url("empty.bin")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(header(&resp, "content-length"), Some("0"));
    let resp = c
        .get(fx.hub.file_url("empty.bin"))
        .header("range", "bytes=0-")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 416);
    let url = fx.hub.file_url("sub dir/a#b?.txt");
    let resp = c.get(url).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(&resp.bytes().await.unwrap()[..], b"hello");
    assert_eq!(fx.hub.counters_for("/files/sub dir/a#b?.txt").requests, 1);
}

#[tokio::test]
async fn redirects_go_to_a_signed_url_on_another_host() {
    let data = pattern(200_000, 5);
    let fx = start(&[("m/w.gguf", &data)]).await;
    assert_ne!(fx.hub.url().host_str(), fx.hub.cdn_url().host_str());
    let c = client();
    let resp = c.get(fx.hub.redirect_url("m/w.gguf")).send().await.unwrap();
    assert_eq!(resp.status(), 302);
    let location = url::Url::parse(header(&resp, "location").unwrap()).unwrap();
    assert_eq!(location.host_str(), fx.hub.cdn_url().host_str());
    assert_eq!(location.port(), fx.hub.cdn_url().port());
    assert_eq!(location.path(), "/files/m/w.gguf");
    let q = location.query().unwrap();
    assert!(q.contains("expires=") && q.contains("sig="), "{q}");

    let resp = c
        .get(location.clone())
        .header("range", "bytes=100-199")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 206);
    assert_eq!(&resp.bytes().await.unwrap()[..], &data[100..200]);

    // The CDN counts under its own path, the hub under the redirect path.
    assert_eq!(
        fx.hub.counters_for("/redirect/files/m/w.gguf").status(302),
        1
    );
    assert_eq!(fx.hub.counters_for("/files/m/w.gguf").bytes_sent, 100);
    // A tampered signature is refused.
    let mut forged = location.clone();
    forged.set_query(Some(&q.replace("sig=", "sig=00")));
    assert_eq!(c.get(forged).send().await.unwrap().status(), 403);
    // A signed URL with credentials as well is refused, as S3 does.
    let both = c
        .get(location.clone())
        .header("authorization", "Bearer hf_secret")
        .send()
        .await
        .unwrap();
    assert_eq!(both.status(), 400);
    assert!(
        both.text()
            .await
            .unwrap()
            .contains("Only one auth mechanism allowed")
    );
    // A following client gets the file.
    let follow = reqwest::Client::builder().no_proxy().build().unwrap();
    let body = follow
        .get(fx.hub.redirect_url("m/w.gguf"))
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert!(body[..] == data[..]);
    // Missing files are not redirected.
    assert_eq!(
        c.get(fx.hub.redirect_url("m/nope"))
            .send()
            .await
            .unwrap()
            .status(),
        404
    );
}

#[tokio::test]
async fn signed_urls_expire_after_the_configured_lifetime() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "f.bin", b"abc");
    let fx = start_with(|c| c.with_signed_url_ttl(Duration::from_secs(1)), dir).await;
    let c = client();
    let resp = c.get(fx.hub.redirect_url("f.bin")).send().await.unwrap();
    let location = header(&resp, "location").unwrap().to_owned();
    assert_eq!(c.get(&location).send().await.unwrap().status(), 200);
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let resp = c.get(&location).send().await.unwrap();
    assert_eq!(resp.status(), 403);
    assert!(resp.text().await.unwrap().contains("Request has expired"));
}

#[tokio::test]
async fn rate_cap_slows_each_response_and_can_change_at_run_time() {
    let data = pattern(300_000, 6);
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "f.bin", &data);
    let fx = start_with(|c: FakeHubConfig| c.with_rate_limit(400_000), dir).await;
    let c = client();
    let t = Instant::now();
    let body = c
        .get(fx.hub.file_url("f.bin"))
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    let elapsed = t.elapsed();
    assert_eq!(body.len(), data.len());
    // 300 kB at 400 kB/s: at least ~0.75 s minus one slice of burst.
    assert!(
        elapsed >= Duration::from_millis(600),
        "capped: took {elapsed:?}"
    );

    // Lowering the cap mid-body slows the rest of that body.
    let resp = c.get(fx.hub.file_url("f.bin")).send().await.unwrap();
    fx.hub.set_rate_limit(Some(100_000));
    let t = Instant::now();
    let (got, err) = read_all(resp).await;
    assert!(err.is_none());
    assert_eq!(got.len(), data.len());
    assert!(
        t.elapsed() >= Duration::from_millis(1500),
        "took {:?}",
        t.elapsed()
    );

    fx.hub.set_rate_limit(None);
    let body = c
        .get(fx.hub.file_url("f.bin"))
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert_eq!(body.len(), data.len());
}

#[tokio::test]
async fn an_abandoned_download_counts_what_was_written_not_the_whole_file() {
    let data = pattern(32 * 1024 * 1024, 7);
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "f.bin", &data);
    // A slow body so the client can leave early.
    let fx = start_with(|c: FakeHubConfig| c.with_rate_limit(2_000_000), dir).await;
    let mut resp = client().get(fx.hub.file_url("f.bin")).send().await.unwrap();
    let mut got = 0usize;
    while got < 200_000 {
        got += resp.chunk().await.unwrap().unwrap().len();
    }
    drop(resp);
    // The server notices the closed socket on its next write.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let sent = fx.hub.counters_for("/files/f.bin").bytes_sent;
        if sent >= got as u64 && sent < 2_000_000 {
            break;
        }
        assert!(Instant::now() < deadline, "sent {sent}, client got {got}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn large_file_streams_intact() {
    // Big enough for many reads, small enough for CI.
    let data = pattern(24 * 1024 * 1024 + 5, 8);
    let fx = start(&[("big.bin", &data)]).await;
    let c = client();
    let resp = c.get(fx.hub.file_url("big.bin")).send().await.unwrap();
    let body = resp.bytes().await.unwrap();
    assert!(body[..] == data[..]);
    let resp = c
        .get(fx.hub.file_url("big.bin"))
        .header("range", "bytes=10000000-")
        .send()
        .await
        .unwrap();
    let body = resp.bytes().await.unwrap();
    assert!(body[..] == data[10_000_000..]);
    assert_eq!(
        fx.hub.counters_for("/files/big.bin").bytes_sent,
        (data.len() + data.len() - 10_000_000) as u64
    );
}
