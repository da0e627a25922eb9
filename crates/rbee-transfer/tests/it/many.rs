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

/// `count` small files in the fake hub's root, spread over `folders`, and requests for them.
fn small_files(
    root: &std::path::Path,
    hub: &FakeHub,
    count: usize,
    folders: &[&str],
) -> Vec<FetchRequest> {
    (0..count)
        .map(|i| {
            let name = format!("{}/f{i}.txt", folders[i % folders.len()]);
            let data = body(5_000 + i);
            let path = root.join(&name);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, &data).unwrap();
            let mut r = FetchRequest::new(name.clone(), hub.file_url(&name));
            r.expected_size = Some(data.len() as u64);
            r.sha256 = Some(digest(&data));
            r
        })
        .collect()
}

#[tokio::test]
async fn a_batch_syncs_each_folder_once_not_once_per_file() {
    let root = tempfile::tempdir().unwrap();
    let out = tempfile::tempdir().unwrap();
    let hub = FakeHub::start(FakeHubConfig::new(root.path()))
        .await
        .unwrap();
    let requests = small_files(root.path(), &hub, 40, &["a", "b/c"]);
    let t = Transfer::new(config()).unwrap();
    let done = t
        .fetch_all(
            requests.clone(),
            out.path(),
            &tracker(),
            &CancellationToken::new(),
        )
        .await
        .unwrap();
    assert_eq!(done.len(), 40);
    assert_eq!(
        t.directory_syncs(),
        2,
        "one sync per folder written into, made before the batch returned"
    );
    // Fetched alone, a file syncs its folder before the call returns.
    let alone = tempfile::tempdir().unwrap();
    let tr = tracker();
    t.fetch(
        &requests[0],
        &alone.path().join("one.txt"),
        &progress(&tr, None),
        &CancellationToken::new(),
    )
    .await
    .unwrap();
    assert_eq!(t.directory_syncs(), 3);
}

#[tokio::test]
async fn files_found_complete_in_a_batch_have_their_folder_synced_too() {
    let root = tempfile::tempdir().unwrap();
    let out = tempfile::tempdir().unwrap();
    let hub = FakeHub::start(FakeHubConfig::new(root.path()))
        .await
        .unwrap();
    let requests = small_files(root.path(), &hub, 6, &["x"]);
    // A complete copy left by a run that may have ended before its folder was synced.
    std::fs::create_dir_all(out.path().join("x")).unwrap();
    std::fs::copy(root.path().join("x/f0.txt"), out.path().join("x/f0.txt")).unwrap();
    let t = Transfer::new(config()).unwrap();
    t.fetch_all(
        requests[..1].to_vec(),
        out.path(),
        &tracker(),
        &CancellationToken::new(),
    )
    .await
    .unwrap();
    assert_eq!(t.directory_syncs(), 1);
}

#[tokio::test]
async fn small_files_share_kept_alive_connections() {
    let root = tempfile::tempdir().unwrap();
    let out = tempfile::tempdir().unwrap();
    let hub = FakeHub::start(FakeHubConfig::new(root.path()))
        .await
        .unwrap();
    let files = 60;
    let requests = small_files(root.path(), &hub, files, &["s"]);
    let config = TransferConfig {
        files_in_parallel: 1,
        connections: 4,
        ..config()
    };
    let t = Transfer::new(config).unwrap();
    t.fetch_all(requests, out.path(), &tracker(), &CancellationToken::new())
        .await
        .unwrap();
    let log = hub.requests();
    assert_eq!(log.len(), files, "one request per small file");
    let connections: std::collections::HashSet<u64> = log
        .iter()
        .map(|r| {
            r.connection
                .expect("the hub knows every request's connection")
        })
        .collect();
    assert!(
        connections.len() <= 4,
        "{files} files over a budget of 4 connections used {} connections: they are not kept alive",
        connections.len()
    );
}

#[tokio::test]
async fn a_small_file_is_published_without_a_resume_state_a_large_one_with() {
    let root = tempfile::tempdir().unwrap();
    let out = tempfile::tempdir().unwrap();
    let hub = FakeHub::start(FakeHubConfig::new(root.path()))
        .await
        .unwrap();
    let small = small_files(root.path(), &hub, 3, &["s"]);
    let t = Transfer::new(config()).unwrap();
    t.fetch_all(small, out.path(), &tracker(), &CancellationToken::new())
        .await
        .unwrap();
    assert_eq!(
        t.state_saves(),
        0,
        "a small file is complete before any save could matter"
    );
    let data = body(6 << 20);
    std::fs::write(root.path().join("big.bin"), &data).unwrap();
    let mut big = FetchRequest::new("big.bin", hub.file_url("big.bin"));
    big.expected_size = Some(data.len() as u64);
    big.sha256 = Some(digest(&data));
    t.fetch_all(vec![big], out.path(), &tracker(), &CancellationToken::new())
        .await
        .unwrap();
    assert!(
        t.state_saves() > 0,
        "a large file saves its resume state on the way"
    );
    assert_eq!(std::fs::read(out.path().join("big.bin")).unwrap(), data);
}

#[tokio::test]
async fn a_batch_that_fails_midway_still_syncs_the_folders_of_the_files_it_published() {
    let root = tempfile::tempdir().unwrap();
    let out = tempfile::tempdir().unwrap();
    let hub = FakeHub::start(FakeHubConfig::new(root.path()))
        .await
        .unwrap();
    let mut requests = small_files(root.path(), &hub, 12, &["ok", "also"]);
    requests[5].sha256 = Some(digest(b"not these bytes"));
    let bad = requests[5].path.clone();
    let t = Transfer::new(config()).unwrap();
    let e = t
        .fetch_all(
            requests.clone(),
            out.path(),
            &tracker(),
            &CancellationToken::new(),
        )
        .await
        .unwrap_err();
    assert!(e.to_string().contains(&bad), "{e}");
    assert!(
        !out.path().join(&bad).exists(),
        "no final name on bytes proven wrong"
    );
    let published: std::collections::HashSet<&str> = requests
        .iter()
        .filter(|r| out.path().join(&r.path).exists())
        .map(|r| r.path.split('/').next().unwrap())
        .collect();
    assert_eq!(
        t.directory_syncs(),
        published.len() as u64,
        "each folder holding a published file is synced before the failure is returned"
    );
}
