//! Mirrors before the origin: in order, a dead one passed over (and skipped afterwards), a
//! mirror failing mid-download replaced by the origin, the origin's token never sent to one.

use rbee_fake_hub::{FakeHub, FakeHubConfig, Fault};
use rbee_vendor_huggingface::{HfConfig, HuggingFaceVendor};
use url::Url;

use crate::common::*;

const FILE: &str = "model.Q4_K_M.gguf";

/// Two hubs over one folder: the origin and a mirror of it.
async fn origin_and_mirror(size: usize) -> (FakeHub, FakeHub, tempfile::TempDir, Vec<u8>) {
    let root = tempfile::tempdir().unwrap();
    let data: Vec<u8> = (0..size).map(|i| (i * 31 % 251) as u8).collect();
    let p = root.path().join("hf/org/repo").join(FILE);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(&p, &data).unwrap();
    let origin = FakeHub::start(FakeHubConfig::new(root.path()).with_hf_token(TOKEN))
        .await
        .unwrap();
    let mirror = FakeHub::start(FakeHubConfig::new(root.path()))
        .await
        .unwrap();
    (origin, mirror, root, data)
}

/// A loopback address where nothing listens.
async fn dead_url() -> Url {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    Url::parse(&format!("http://127.0.0.1:{port}")).unwrap()
}

fn cdn(hub: &FakeHub) -> u64 {
    hub.counters_for(&format!("/files/hf/org/repo/{FILE}"))
        .bytes_sent
}

fn vendor_with_mirrors(
    origin: &FakeHub,
    home: &std::path::Path,
    mirrors: Vec<Url>,
) -> HuggingFaceVendor {
    let mut config = HfConfig::new(origin.url().clone(), home);
    config.token = rbee_artifact::Secret::new(TOKEN);
    config.mirrors = mirrors;
    HuggingFaceVendor::new(config, transfer())
}

#[tokio::test]
async fn mirrors_in_order_then_the_origin() {
    let (origin, mirror, _root, data) = origin_and_mirror(300_000).await;
    let home = tempfile::tempdir().unwrap();
    let dead = dead_url().await;
    let v = vendor_with_mirrors(
        &origin,
        home.path(),
        vec![dead.clone(), mirror.url().clone()],
    );

    let plan = resolve(&v, &format!("hf:org/repo/{FILE}")).await.unwrap();
    let notes = plan.notes.join("\n");
    assert!(notes.contains(&format!("mirror {dead} failed")), "{notes}");
    assert!(
        notes.contains(&format!("served by mirror {}", mirror.url())),
        "{notes}"
    );
    // The reference, and so the catalog entry, stays the origin's.
    assert_eq!(plan.reference.to_string(), format!("hf:org/repo/{FILE}"));
    let dest = tempfile::tempdir().unwrap();
    let files = crate::common::download_all(&v, &plan, dest.path())
        .await
        .0
        .unwrap();
    assert_eq!(files.len(), 1);
    assert_eq!(std::fs::read(dest.path().join(FILE)).unwrap(), data);
    assert!(cdn(&mirror) >= data.len() as u64);
    assert_eq!(cdn(&origin), 0, "the origin sent no file bytes");
    // The origin's token went to neither the mirror nor anywhere else.
    assert!(
        mirror
            .requests()
            .iter()
            .all(|r| !format!("{r:?}").contains(TOKEN))
    );

    // The dead mirror is passed over for a while now.
    let plan = resolve(&v, &format!("hf:org/repo/{FILE}")).await.unwrap();
    assert!(
        plan.notes
            .join("\n")
            .contains(&format!("mirror {dead} skipped")),
        "{:?}",
        plan.notes
    );

    // Every mirror down: the origin serves, and says so.
    mirror.shutdown().await;
    let v = vendor_with_mirrors(&origin, home.path(), vec![dead.clone()]);
    let plan = resolve(&v, &format!("hf:org/repo/{FILE}")).await.unwrap();
    assert!(
        plan.notes.join("\n").contains("served by the origin"),
        "{:?}",
        plan.notes
    );
    let dest = tempfile::tempdir().unwrap();
    crate::common::download_all(&v, &plan, dest.path())
        .await
        .0
        .unwrap();
    assert_eq!(std::fs::read(dest.path().join(FILE)).unwrap(), data);
}

#[tokio::test]
async fn a_mirror_failing_mid_download_hands_over_to_the_origin() {
    let (origin, mirror, _root, data) = origin_and_mirror(400_000).await;
    let home = tempfile::tempdir().unwrap();
    let v = vendor_with_mirrors(&origin, home.path(), vec![mirror.url().clone()]);
    let plan = resolve(&v, &format!("hf:org/repo/{FILE}")).await.unwrap();
    // The mirror listed the file, then breaks for good.
    mirror.set_faults(vec![
        Fault::status(503).path(format!("**/{FILE}")).times(1000),
    ]);
    let dest = tempfile::tempdir().unwrap();
    let (out, events) = crate::common::download_all(&v, &plan, dest.path()).await;
    out.unwrap();
    assert_eq!(std::fs::read(dest.path().join(FILE)).unwrap(), data);
    assert!(cdn(&origin) >= data.len() as u64);
    assert!(
        format!("{events:?}").contains("continuing from the origin"),
        "{events:?}"
    );
}

/// A mirror that refuses one repo (gated, no token sent to it) is still used for the others.
#[tokio::test]
async fn a_mirror_refusing_a_gated_repo_stays_in_use() {
    let (origin, mirror, root, _data) = origin_and_mirror(10_000).await;
    let gated = root.path().join("hf/org/gated");
    std::fs::create_dir_all(&gated).unwrap();
    std::fs::write(gated.join("m.Q4_K_M.gguf"), vec![1u8; 100]).unwrap();
    std::fs::write(gated.join("fakehub.json"), br#"{"gated": "manual"}"#).unwrap();
    let home = tempfile::tempdir().unwrap();
    let v = vendor_with_mirrors(&origin, home.path(), vec![mirror.url().clone()]);

    let plan = resolve(&v, "hf:org/gated/m.Q4_K_M.gguf").await.unwrap();
    let notes = plan.notes.join("\n");
    assert!(notes.contains("served by the origin"), "{notes}");

    let plan = resolve(&v, &format!("hf:org/repo/{FILE}")).await.unwrap();
    let notes = plan.notes.join("\n");
    assert!(
        notes.contains(&format!("served by mirror {}", mirror.url())),
        "{notes}"
    );
}
