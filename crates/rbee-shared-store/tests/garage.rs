//! The S3 backend, leases and manifests against a real Garage on loopback.
// Measured figures (lease contention, origin bytes) are printed for the report.
#![allow(clippy::print_stderr)]

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use rbee_artifact::Sha256Digest;
use rbee_fake_hub::Garage;
use rbee_shared_store::{
    Election, Elector, FailureKind, LeaseConfig, LeaseRecord, MANIFEST_SCHEMA, Manifest,
    ManifestFile, S3Store, SharedStore, StoreConfig, StoreError, honours_create_only, layout,
    publish_blob, read_manifest, remove_artifact, write_manifest,
};
use tokio_util::sync::CancellationToken;

fn store(garage: &Garage, prefix: &str) -> S3Store {
    S3Store::new(config(garage, prefix, |_| None)).unwrap()
}

fn config(
    garage: &Garage,
    prefix: &str,
    overrides: impl Fn(&str) -> Option<String>,
) -> StoreConfig {
    StoreConfig::from_vars(&garage.store_url(prefix), |k| {
        overrides(k).or_else(|| garage.var(k))
    })
    .unwrap()
}

#[tokio::test]
async fn objects_round_trip_and_large_files_go_up_in_parts() {
    let Some(garage) = Garage::shared() else {
        return;
    };
    let store = store(garage, "round-trip");
    assert_eq!(store.get("nothing", 1024).await.unwrap(), None);
    assert!(
        store
            .put("a/b.json", Bytes::from_static(b"{}"), false)
            .await
            .unwrap()
    );
    assert_eq!(
        store.get("a/b.json", 1024).await.unwrap().unwrap(),
        &b"{}"[..]
    );
    assert_eq!(store.size("a/b.json").await.unwrap(), Some(2));
    assert_eq!(store.list("a").await.unwrap(), vec!["a/b.json".to_string()]);
    store.delete("a/b.json").await.unwrap();
    store.delete("a/b.json").await.unwrap();
    assert_eq!(store.size("a/b.json").await.unwrap(), None);

    // 40 MiB: three parts of a multipart upload.
    let dir = tempfile::tempdir().unwrap();
    let data: Vec<u8> = (0..40u32 << 20)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let file = dir.path().join("big.bin");
    std::fs::write(&file, &data).unwrap();
    let sha = Sha256Digest::of(&data);
    let cancel = CancellationToken::new();
    let sent = publish_blob(&store, &file, &sha, data.len() as u64, &cancel)
        .await
        .unwrap();
    assert_eq!(sent, data.len() as u64);
    assert_eq!(
        store.size(&layout::blob(&sha)).await.unwrap(),
        Some(data.len() as u64)
    );
    let back = store
        .get(&layout::blob(&sha), u64::MAX)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(Sha256Digest::of(&back), sha);
    // Already there at that size: nothing is sent again.
    assert_eq!(
        publish_blob(&store, &file, &sha, data.len() as u64, &cancel)
            .await
            .unwrap(),
        0
    );

    // A local file that does not hash to its name is never published, in one part or many.
    let wrong = Sha256Digest::of(b"something else");
    for len in [1000usize, 20 << 20] {
        std::fs::write(&file, &data[..len]).unwrap();
        let e = store
            .put_file(&layout::blob(&wrong), &file, &wrong, &cancel)
            .await
            .unwrap_err();
        assert!(matches!(e, StoreError::Corrupt { .. }), "{e}");
        assert_eq!(store.size(&layout::blob(&wrong)).await.unwrap(), None);
    }
}

#[tokio::test]
async fn garage_ignores_a_second_conditional_create() {
    let Some(garage) = Garage::shared() else {
        return;
    };
    // What the lease design rests on: Garage answers 200 and overwrites.
    assert!(!honours_create_only(&store(garage, "probe")).await.unwrap());
}

#[tokio::test]
async fn faults_name_the_store_and_what_to_check_without_credentials() {
    let Some(garage) = Garage::shared() else {
        return;
    };
    let secret = garage.var("AWS_SECRET_ACCESS_KEY").unwrap();
    let key_id = garage.var("AWS_ACCESS_KEY_ID").unwrap();

    let wrong = S3Store::new(config(garage, "x", |k| {
        (k == "AWS_SECRET_ACCESS_KEY").then(|| "wrong-secret-0123456789".to_string())
    }))
    .unwrap();
    let e = honours_create_only(&wrong).await.unwrap_err();
    let text = e.to_string();
    assert!(
        matches!(
            e,
            StoreError::Failed {
                kind: FailureKind::Access,
                ..
            }
        ),
        "{text}"
    );
    assert!(
        text.contains("AWS_SECRET_ACCESS_KEY") && text.contains(&garage.store_url("x")),
        "{text}"
    );
    assert!(
        !text.contains("wrong-secret-0123456789") && !text.contains(&key_id),
        "{text}"
    );

    let unknown_key = S3Store::new(config(garage, "x", |k| {
        (k == "AWS_ACCESS_KEY_ID").then(|| "GK00000000000000000000dead".to_string())
    }))
    .unwrap();
    let e = honours_create_only(&unknown_key).await.unwrap_err();
    assert!(
        matches!(
            e,
            StoreError::Failed {
                kind: FailureKind::Access,
                ..
            }
        ),
        "{e}"
    );
    assert!(!e.to_string().contains(&secret), "{e}");

    let no_bucket =
        S3Store::new(StoreConfig::from_vars("s3://no-such-bucket", |k| garage.var(k)).unwrap())
            .unwrap();
    let e = honours_create_only(&no_bucket).await.unwrap_err();
    assert!(
        matches!(
            e,
            StoreError::Failed {
                kind: FailureKind::NoBucket,
                ..
            }
        ),
        "{e}"
    );
    assert!(e.to_string().contains("garage bucket create"), "{e}");

    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let mut down = config(garage, "x", |k| {
        (k == "AWS_ENDPOINT_URL").then(|| format!("http://127.0.0.1:{port}"))
    });
    down.max_retries = 1;
    let e = honours_create_only(&S3Store::new(down).unwrap())
        .await
        .unwrap_err();
    assert!(
        matches!(
            e,
            StoreError::Failed {
                kind: FailureKind::Unreachable,
                ..
            }
        ),
        "{e}"
    );
    assert!(e.to_string().contains("AWS_ENDPOINT_URL"), "{e}");
    assert!(!e.to_string().contains(&secret), "{e}");
}

fn electors(store: Arc<dyn SharedStore>, n: usize, config: &LeaseConfig) -> Vec<Elector> {
    (0..n)
        .map(|i| Elector::new(store.clone(), format!("hive-{i}"), false, config.clone()))
        .collect()
}

#[tokio::test]
async fn under_contention_one_hive_wins_and_the_double_wins_are_counted() {
    let Some(garage) = Garage::shared() else {
        return;
    };
    let store: Arc<dyn SharedStore> = Arc::new(store(garage, "contention"));
    let config = LeaseConfig::default();
    let hives = electors(store.clone(), 4, &config);
    let rounds = 12;
    // Winners at the first look back, and those still winning once the lease was read back
    // after the whole settle (the others stop: their lease is contested).
    let (mut early_double_wins, mut double_wins) = (0, 0);
    for round in 0..rounds {
        let id = format!("artifact-{round}");
        let results = futures::future::join_all(hives.iter().map(|h| h.try_acquire(&id))).await;
        let mut winners = Vec::new();
        for r in results {
            if let Election::Won(lease) = r.unwrap() {
                winners.push(lease);
            }
        }
        assert!(!winners.is_empty(), "round {round}: nobody won");
        if winners.len() > 1 {
            early_double_wins += 1;
        }
        tokio::time::sleep(config.settle * 2 + Duration::from_millis(300)).await;
        let holders = winners
            .iter()
            .filter(|l| !l.contested().is_cancelled())
            .count();
        assert!(holders >= 1, "round {round}: every winner was contested");
        if holders > 1 {
            double_wins += 1;
        }
        for lease in winners {
            lease.release().await.unwrap();
        }
    }
    eprintln!(
        "lease contention on Garage: {double_wins} of {rounds} rounds had more than one winner (4 hives); \
         {early_double_wins} had more than one at the first look back"
    );
    assert!(
        double_wins * 2 <= rounds,
        "{double_wins} of {rounds} rounds had several winners"
    );
}

#[tokio::test]
async fn a_lease_overwritten_after_the_first_look_back_is_contested_and_one_left_alone_is_not() {
    let Some(garage) = Garage::shared() else {
        return;
    };
    let store: Arc<dyn SharedStore> = Arc::new(store(garage, "contested"));
    let config = LeaseConfig::new(Duration::from_secs(30), Duration::from_millis(800));
    let hive = &electors(store.clone(), 1, &config)[0];

    let Election::Won(lease) = hive.try_acquire("overwritten").await.unwrap() else {
        panic!("the only hive wins an empty lease");
    };
    // Another hive's write lands now, after this one's first look back.
    let other = LeaseRecord {
        holder: "hive-late".into(),
        token: "late".into(),
        expires_at: chrono::Utc::now() + chrono::Duration::seconds(30),
    };
    let body = Bytes::from(serde_json::to_vec(&other).unwrap());
    store
        .put(&layout::lease("overwritten"), body, false)
        .await
        .unwrap();
    tokio::time::timeout(Duration::from_secs(10), lease.contested().cancelled())
        .await
        .expect("the second look back finds the other hive's lease");
    assert!(lease.lost().is_cancelled());
    match hive.try_acquire("overwritten").await.unwrap() {
        Election::Held(now) => assert_eq!(now.holder, "hive-late"),
        Election::Won(_) => panic!("won a lease another hive holds"),
    }

    let Election::Won(kept) = hive.try_acquire("left-alone").await.unwrap() else {
        panic!("the only hive wins an empty lease");
    };
    // Past the second look back (the settle plus at most as much again).
    tokio::time::sleep(config.settle * 2 + Duration::from_millis(500)).await;
    assert!(!kept.contested().is_cancelled());
    assert!(!kept.lost().is_cancelled());
    kept.release().await.unwrap();
}

#[tokio::test]
async fn a_dead_holder_loses_the_lease_at_expiry_and_a_live_one_keeps_it() {
    let Some(garage) = Garage::shared() else {
        return;
    };
    let store: Arc<dyn SharedStore> = Arc::new(store(garage, "takeover"));
    let config = LeaseConfig::new(Duration::from_secs(3), Duration::from_millis(100));
    let hives = electors(store.clone(), 2, &config);

    // A live holder refreshes past its first expiry.
    let Election::Won(lease) = hives[0].try_acquire("live").await.unwrap() else {
        panic!("the first hive wins an empty lease");
    };
    lease.report(50, 100).await.unwrap();
    tokio::time::sleep(Duration::from_secs(4)).await;
    match hives[1].try_acquire("live").await.unwrap() {
        Election::Held(other) => assert_eq!(other.holder, "hive-0"),
        Election::Won(_) => panic!("took a refreshed lease"),
    }
    let progress = hives[1].progress("live").await.unwrap().unwrap();
    assert_eq!(
        (progress.holder.as_str(), progress.percent()),
        ("hive-0", 50)
    );
    lease.release().await.unwrap();

    // A holder that stops refreshing (dropped: as good as killed) loses it at expiry.
    let Election::Won(lease) = hives[0].try_acquire("dead").await.unwrap() else {
        panic!("the first hive wins an empty lease");
    };
    drop(lease);
    assert!(matches!(
        hives[1].try_acquire("dead").await.unwrap(),
        Election::Held(_)
    ));
    tokio::time::sleep(Duration::from_secs(4)).await;
    let Election::Won(taken) = hives[1].try_acquire("dead").await.unwrap() else {
        panic!("an expired lease is taken over");
    };
    assert_eq!(taken.record().holder, "hive-1");
    taken.release().await.unwrap();
}

#[tokio::test]
async fn manifests_are_published_listed_and_removed_but_not_while_leased() {
    let Some(garage) = Garage::shared() else {
        return;
    };
    let store = Arc::new(store(garage, "manifests"));
    let dyn_store: Arc<dyn SharedStore> = store.clone();
    let elector = Elector::new(dyn_store, "hive-a", false, LeaseConfig::default());
    let data = b"weights";
    let sha = Sha256Digest::of(data);
    store
        .put(&layout::blob(&sha), Bytes::from_static(data), false)
        .await
        .unwrap();
    let manifest = Manifest {
        schema: MANIFEST_SCHEMA,
        id: "hf--org--model".into(),
        reference: {
            rbee_artifact::register_reference::<rbee_vendor_huggingface::HfRef>();
            "hf:org/model".parse().unwrap()
        },
        selection: Default::default(),
        revision: Some("abc".into()),
        files: vec![ManifestFile {
            path: "m.gguf".into(),
            size: 7,
            sha256: sha,
        }],
        published_by: "hive-a".into(),
        published_at: chrono::Utc::now(),
    };
    write_manifest(&*store, &manifest).await.unwrap();
    assert_eq!(
        read_manifest(&*store, "hf--org--model").await.unwrap(),
        Some(manifest.clone())
    );
    assert_eq!(
        rbee_shared_store::list_manifests(&*store).await.unwrap(),
        vec![manifest]
    );

    let Election::Won(lease) = elector.try_acquire("hf--org--model").await.unwrap() else {
        panic!("an empty lease is won");
    };
    let e = remove_artifact(&*store, &elector, "hf--org--model")
        .await
        .unwrap_err();
    assert!(matches!(e, StoreError::Leased { .. }), "{e}");
    assert!(e.to_string().contains("hive-a"), "{e}");
    lease.release().await.unwrap();

    remove_artifact(&*store, &elector, "hf--org--model")
        .await
        .unwrap();
    assert_eq!(
        read_manifest(&*store, "hf--org--model").await.unwrap(),
        None
    );
    assert_eq!(
        store.size(&layout::blob(&sha)).await.unwrap(),
        None,
        "its only blob went too"
    );

    // A manifest that lies about paths is refused, naming the object.
    store
        .put(
            &layout::manifest("bad"),
            Bytes::from_static(b"not json"),
            false,
        )
        .await
        .unwrap();
    let e = read_manifest(&*store, "bad").await.unwrap_err();
    assert!(
        matches!(e, StoreError::Corrupt { .. }) && e.to_string().contains("manifests/bad.json"),
        "{e}"
    );
}

#[tokio::test]
async fn an_oversized_manifest_or_lease_is_refused_without_being_read_whole() {
    let Some(garage) = Garage::shared() else {
        return;
    };
    let store = store(garage, "oversized");
    // A manifest that is valid JSON up to where the limit stops reading, then padding.
    let mut huge = br#"{"schema":1,"id":"hf--org--huge","files":[],"pad":""#.to_vec();
    huge.resize(layout::MAX_MANIFEST_BYTES as usize + 1024, b' ');
    huge.extend_from_slice(b"\"}");
    store
        .put(&layout::manifest("hf--org--huge"), huge.into(), false)
        .await
        .unwrap();
    let e = read_manifest(&store, "hf--org--huge").await.unwrap_err();
    assert!(
        matches!(e, StoreError::Corrupt { .. }) && e.to_string().contains("larger than"),
        "{e}"
    );

    let lease = vec![b' '; layout::MAX_LEASE_BYTES as usize + 1];
    store
        .put(&layout::lease("hf--org--huge"), lease.into(), false)
        .await
        .unwrap();
    let elector = Elector::new(
        Arc::new(store.clone()),
        "hive-a",
        false,
        LeaseConfig::default(),
    );
    // An oversized lease counts as no lease: it is replaced rather than blocking the cluster.
    assert!(matches!(
        elector.try_acquire("hf--org--huge").await.unwrap(),
        Election::Won(_)
    ));
    let size = store.size(&layout::lease("hf--org--huge")).await.unwrap();
    assert!(size.is_some_and(|s| s < 1024), "{size:?}");
}

#[tokio::test]
async fn a_closed_port_and_a_refused_key_get_different_advice() {
    let Some(garage) = Garage::shared() else {
        return;
    };
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let mut down = config(garage, "x", |k| {
        (k == "AWS_ENDPOINT_URL").then(|| format!("http://127.0.0.1:{port}"))
    });
    down.max_retries = 0;
    let refused = honours_create_only(&S3Store::new(down).unwrap())
        .await
        .unwrap_err()
        .to_string();
    assert!(
        refused.contains("nothing answers") && refused.contains(&port.to_string()),
        "{refused}"
    );
    let wrong = S3Store::new(config(garage, "x", |k| {
        (k == "AWS_SECRET_ACCESS_KEY").then(|| "wrong-secret-0123456789".to_string())
    }))
    .unwrap();
    let denied = honours_create_only(&wrong).await.unwrap_err().to_string();
    assert!(
        denied.contains("refused this key") && !denied.contains("nothing answers"),
        "{denied}"
    );
}
