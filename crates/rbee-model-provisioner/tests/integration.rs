//! The job-router flow through the integration façade, against the fake hub on loopback:
//! download with progress carrying the job id, find, info, verify, delete; and cancellation.

use std::sync::Arc;
use std::time::Duration;

use rbee_artifact::{Error, EventKind, ProgressEvent};
use rbee_catalog::{Catalog, Listing};
use rbee_fake_hub::{FakeHub, FakeHubConfig};
use rbee_model_provisioner::ModelProvisioner;
use tokio::sync::broadcast;

/// A safety net for things that happen soon; no assertion depends on speed.
const SOON: Duration = Duration::from_secs(60);

struct Env {
    dir: tempfile::TempDir,
    hub: FakeHub,
}

impl Env {
    async fn new(rate_limit: Option<u64>, files: &[(&str, usize)]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let hub_dir = dir.path().join("hub");
        for (rel, size) in files {
            let path = hub_dir.join(rel);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            let bytes: Vec<u8> = (0..*size).map(|i| (i * 31 % 251) as u8).collect();
            std::fs::write(path, bytes).unwrap();
        }
        let mut config = FakeHubConfig::new(hub_dir);
        config.rate_limit = rate_limit;
        let hub = FakeHub::start(config).await.unwrap();
        Self { dir, hub }
    }

    fn provisioner(&self) -> Arc<ModelProvisioner> {
        let catalog = Arc::new(Catalog::open(self.dir.path().join("catalog")).unwrap());
        Arc::new(ModelProvisioner::new(catalog).unwrap())
    }
}

/// Every event up to and including the final one.
async fn until_final(
    replay: Vec<ProgressEvent>,
    mut rx: broadcast::Receiver<ProgressEvent>,
) -> Vec<ProgressEvent> {
    let mut events = replay;
    while !events.last().is_some_and(|e| e.kind.is_final()) {
        match tokio::time::timeout(SOON, rx.recv())
            .await
            .expect("no final event")
        {
            Ok(event) => events.push(event),
            Err(broadcast::error::RecvError::Lagged(_)) => {}
            Err(broadcast::error::RecvError::Closed) => break,
        }
    }
    events
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_job_router_flow_runs_through_the_facade() {
    rbee_model_provisioner::register_references();
    let env = Env::new(None, &[("models/tiny.gguf", 3 << 20)]).await;
    let models = env.provisioner();
    let model = env.hub.file_url("models/tiny.gguf").to_string();
    assert_eq!(models.find_local_model(&model), None);

    // The router subscribes to the job's events before it starts the download.
    let (replay, rx) = models.tracker("job-router-1").subscribe();
    let events = tokio::spawn(until_final(replay, rx));
    let id = models.download_model("job-router-1", &model).await.unwrap();
    let events = events.await.unwrap();
    assert!(events.iter().all(|e| e.job_id.0 == "job-router-1"));
    assert!(
        events
            .iter()
            .any(|e| matches!(&e.kind, EventKind::Progress(s) if s.bytes > 0)),
        "{events:?}"
    );
    assert!(
        matches!(&events.last().unwrap().kind, EventKind::Completed { id: done, .. } if *done == id)
    );

    // find: by reference and by id, the file a worker loads.
    let path = models.find_local_model(&model).unwrap();
    assert_eq!(models.find_local_model(&id), Some(path.clone()));
    assert_eq!(std::fs::metadata(&path).unwrap().len(), 3 << 20);
    // info and list.
    let info = models.get_model_info(&id).unwrap();
    assert_eq!(info.primary_path(), path);
    assert!(
        models
            .list_models()
            .unwrap()
            .iter()
            .any(|l| matches!(l, Listing::Entry(e) if e.record.id == id))
    );
    assert!(models.get_total_disk_usage().unwrap() >= 3 << 20);
    // verify: intact, then a changed byte is found.
    assert!(models.verify_model(&id).await.unwrap().ok());
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[1000] ^= 0xff;
    std::fs::write(&path, bytes).unwrap();
    assert!(!models.verify_model(&id).await.unwrap().ok());
    assert_eq!(
        models.find_local_model(&id),
        None,
        "a damaged model is not offered"
    );
    // delete: gone from disk and catalog.
    let removed = models.delete_model(&id).unwrap();
    assert_eq!(removed.id, id);
    assert!(!path.exists());
    assert_eq!(models.find_local_model(&model), None);
    assert!(matches!(
        models.get_model_info(&id),
        Err(Error::NotFound { .. })
    ));
    assert_eq!(models.get_total_disk_usage().unwrap(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_is_cancelled_by_its_id_and_keeps_its_partial_files() {
    rbee_model_provisioner::register_references();
    // 4 MiB at 256 KiB/s: running for many seconds, so the cancel lands mid-transfer.
    let env = Env::new(Some(256 << 10), &[("models/slow.gguf", 4 << 20)]).await;
    let models = env.provisioner();
    let model = env.hub.file_url("models/slow.gguf").to_string();
    let (replay, mut rx) = models.tracker("job-router-2").subscribe();
    assert!(replay.is_empty());
    let download = tokio::spawn({
        let models = models.clone();
        let model = model.clone();
        async move { models.download_model("job-router-2", &model).await }
    });
    // Wait for bytes to move (heartbeats or progress), then cancel by job id.
    loop {
        let event = tokio::time::timeout(SOON, rx.recv())
            .await
            .unwrap()
            .unwrap();
        if matches!(&event.kind, EventKind::Progress(s) | EventKind::Heartbeat(s) if s.bytes > 0) {
            break;
        }
        assert!(!event.kind.is_final(), "{event:?}");
    }
    assert!(models.cancel("job-router-2"));
    let result = tokio::time::timeout(SOON, download).await.unwrap().unwrap();
    assert!(matches!(result, Err(Error::Cancelled)), "{result:?}");
    let last = until_final(Vec::new(), rx).await;
    assert!(
        matches!(last.last().unwrap().kind, EventKind::Cancelled { bytes_on_disk } if bytes_on_disk > 0),
        "{last:?}"
    );
    assert_eq!(models.find_local_model(&model), None);
    assert!(
        models.get_total_disk_usage().unwrap() > 0,
        "partial files are kept"
    );
    // The job is over: its id is free again.
    assert!(!models.cancel("job-router-2"));
    // A job the router made a tracker for but never started is forgotten by its cancel.
    let _ = models.tracker("job-router-never");
    assert!(models.cancel("job-router-never"));
    assert!(!models.cancel("job-router-never"));
}

#[tokio::test]
async fn a_bad_reference_fails_the_job_with_its_code() {
    rbee_model_provisioner::register_references();
    let env = Env::new(None, &[]).await;
    let models = env.provisioner();
    let (_, rx) = models.tracker("job-router-3").subscribe();
    let e = models
        .download_model("job-router-3", "hf:")
        .await
        .unwrap_err();
    assert_eq!(e.code(), "invalid_reference");
    let events = until_final(Vec::new(), rx).await;
    assert!(
        matches!(&events.last().unwrap().kind, EventKind::Failed { code, .. } if code == "invalid_reference")
    );
}

#[tokio::test]
async fn a_cancel_that_comes_before_the_download_starts_is_not_lost() {
    rbee_model_provisioner::register_references();
    let env = Env::new(None, &[("models/early.gguf", 64 << 10)]).await;
    let models = env.provisioner();
    let model = env.hub.file_url("models/early.gguf").to_string();
    let (_, rx) = models.tracker("job-router-early").subscribe();
    // The router's cancel wins the race against the task that starts the download.
    assert!(models.cancel("job-router-early"));
    let result = models.download_model("job-router-early", &model).await;
    assert!(matches!(result, Err(Error::Cancelled)), "{result:?}");
    let events = until_final(Vec::new(), rx).await;
    assert!(
        matches!(events.last().unwrap().kind, EventKind::Cancelled { .. }),
        "{events:?}"
    );
    assert_eq!(
        env.hub.counters_for("/files/models/early.gguf").bytes_sent,
        0
    );
    assert_eq!(models.find_local_model(&model), None);
    // Over: the id is free again.
    assert!(!models.cancel("job-router-early"));
}
