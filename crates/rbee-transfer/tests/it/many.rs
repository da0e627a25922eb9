//! Many small files of one artifact: fetched many at once, not a few at a time.

use std::time::Duration;

use rbee_fake_hub::{FakeHub, FakeHubConfig, Fault};
use rbee_transfer::{FetchRequest, Transfer, TransferConfig};
use tokio_util::sync::CancellationToken;

use crate::common::*;

#[tokio::test]
async fn small_files_run_within_the_connection_budget_not_files_in_parallel() {
    let root = tempfile::tempdir().unwrap();
    let out = tempfile::tempdir().unwrap();
    // Two large files' worth of four connections: eight small files at once.
    let config = TransferConfig {
        files_in_parallel: 2,
        connections: 4,
        ..config()
    };
    let files = 8;
    let mut requests = Vec::new();
    for i in 0..files {
        let name = format!("f{i}.txt");
        let data = body(10_000 + i);
        std::fs::write(root.path().join(&name), &data).unwrap();
        let mut r = FetchRequest::new(name.clone(), "http://127.0.0.1:1/".parse().unwrap());
        r.expected_size = Some(data.len() as u64);
        r.sha256 = Some(digest(&data));
        requests.push((name, r));
    }
    let hub = FakeHub::start(FakeHubConfig::new(root.path()))
        .await
        .unwrap();
    // Every body waits three seconds before its first byte: files fetched two at a time would
    // finish some before the last ones are even asked for.
    hub.set_faults(vec![Fault::stall(0, Duration::from_secs(3))]);
    let requests: Vec<FetchRequest> = requests
        .into_iter()
        .map(|(name, mut r)| {
            r.url = hub.file_url(&name);
            r
        })
        .collect();
    let t = Transfer::new(config).unwrap();
    let tr = tracker();
    let cancel = CancellationToken::new();
    let all = t.fetch_all(requests, out.path(), &tr, &cancel);
    tokio::pin!(all);
    let asked_for_all = async {
        while hub.requests().len() < files {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    };
    tokio::select! {
        _ = asked_for_all => {}
        r = &mut all => panic!("finished before every file was asked for: {r:?}"),
    }
    let finished: Vec<String> = listing(out.path())
        .into_iter()
        .filter(|n| n.ends_with(".txt"))
        .collect();
    assert!(
        finished.is_empty(),
        "files finished before the last was asked for, so they did not run at once: {finished:?}"
    );
    let done = tokio::time::timeout(Duration::from_secs(60), all)
        .await
        .expect("the files arrive after the stall")
        .unwrap();
    assert_eq!(done.len(), files);
    for (i, f) in done.iter().enumerate() {
        assert_eq!(f.path, format!("f{i}.txt"), "results in the order asked");
        assert_eq!(
            std::fs::read(out.path().join(&f.path)).unwrap(),
            body(10_000 + i)
        );
    }
}
