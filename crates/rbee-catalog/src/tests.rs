use std::sync::Arc;

use super::*;
use rbee_artifact::{Selection, Sha256Digest, register_reference};

/// Makes the references the tests write parse (binaries register every vendor at start).
pub(crate) fn register() {
    register_reference::<rbee_vendor_huggingface::HfRef>();
    register_reference::<rbee_vendor_github::GhRef>();
    register_reference::<rbee_vendor_local::LocalRef>();
    register_reference::<rbee_vendor_url::UrlRef>();
    register_reference::<rbee_vendor_ollama::OllamaRef>();
}

pub(crate) fn record(
    reference: &str,
    status: ArtifactStatus,
    files: &[(&str, &[u8])],
) -> ArtifactRecord {
    register();
    let reference: ArtifactRef = reference.parse().unwrap();
    ArtifactRecord {
        schema: RECORD_SCHEMA,
        id: CatalogKey::of(&reference).id(),
        scheme: reference.scheme(),
        reference,
        selection: Selection::default(),
        revision: Some("abc".into()),
        files: files
            .iter()
            .map(|(p, data)| FileRecord {
                path: p.to_string(),
                size: data.len() as u64,
                sha256: Some(Sha256Digest::of(data)),
                version: None,
                source: None,
            })
            .collect(),
        status,
        created_at: Utc::now(),
        updated_at: Utc::now(),
        notes: vec![],
    }
}

/// Saves a record and writes its files.
pub(crate) fn add(
    cat: &Catalog,
    reference: &str,
    status: ArtifactStatus,
    files: &[(&str, &[u8])],
) -> CatalogEntry {
    let entry = cat.save(&record(reference, status, files)).unwrap();
    for (p, data) in files {
        let path = layout::file_path(&entry.dir, p);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, data).unwrap();
    }
    entry
}

#[test]
fn save_get_list_round_trip() {
    register();
    let tmp = tempfile::tempdir().unwrap();
    let cat = Catalog::open(tmp.path()).unwrap();
    let e = add(
        &cat,
        "hf:o/r:Q4_K_M",
        ArtifactStatus::Ready,
        &[("m.gguf", b"hello")],
    );
    assert_eq!(e.record.id, "hf--o--r--Q4_K_M");
    let got = cat.get("hf--o--r--Q4_K_M").unwrap().unwrap();
    assert_eq!(got, e);
    // The reference, in any accepted spelling, finds it too.
    assert_eq!(cat.get("o/r:q4_k_m").unwrap().unwrap().record, e.record);
    assert!(cat.get("hf:o/other").unwrap().is_none());
    assert!(got.files_present());
    assert_eq!(
        got.primary_path(),
        tmp.path().join("hf/o/r/Q4_K_M/files/m.gguf")
    );
    let listing = cat.list().unwrap();
    assert_eq!(listing.len(), 1);
    // The record on disk is plain JSON with the documented fields.
    let json: serde_json::Value =
        serde_json::from_slice(&fs::read(e.dir.join("metadata.json")).unwrap()).unwrap();
    assert_eq!(json["reference"], "hf:o/r:Q4_K_M");
    assert_eq!(json["status"]["state"], "ready");
    assert_eq!(
        json["files"][0]["sha256"],
        Sha256Digest::of(b"hello").to_string()
    );
    assert_eq!(json["scheme"], "hf");
}

#[test]
fn model_gguf_is_the_primary_path_of_an_ollama_model_only() {
    register();
    let tmp = tempfile::tempdir().unwrap();
    let cat = Catalog::open(tmp.path()).unwrap();
    let files: &[(&str, &[u8])] = &[("model.gguf", b"GGUF"), ("config.json", b"{}")];
    let hf = add(&cat, "hf:o/r", ArtifactStatus::Ready, files);
    assert_eq!(hf.primary_path(), hf.files_dir());
    let ollama = add(&cat, "ollama:tiny:1b", ArtifactStatus::Ready, files);
    assert_eq!(ollama.primary_path(), ollama.files_dir().join("model.gguf"));
}

#[test]
fn a_damaged_record_does_not_hide_the_others() {
    register();
    let tmp = tempfile::tempdir().unwrap();
    let cat = Catalog::open(tmp.path()).unwrap();
    add(&cat, "hf:o/a", ArtifactStatus::Ready, &[("a", b"a")]);
    let bad = add(&cat, "hf:o/b", ArtifactStatus::Ready, &[("b", b"b")]);
    add(&cat, "gh:o/c@v1", ArtifactStatus::Ready, &[("c", b"c")]);
    let full = fs::read(bad.dir.join("metadata.json")).unwrap();
    fs::write(bad.dir.join("metadata.json"), &full[..full.len() / 2]).unwrap();

    let listing = cat.list().unwrap();
    assert_eq!(listing.len(), 3);
    let damaged: Vec<_> = listing
        .iter()
        .filter_map(|l| match l {
            Listing::Damaged { id, reason, .. } => Some((id.clone(), reason.clone())),
            _ => None,
        })
        .collect();
    assert_eq!(damaged.len(), 1);
    assert_eq!(damaged[0].0, "hf--o--b--default");
    assert!(damaged[0].1.contains("not a valid record"));
    assert!(matches!(
        cat.get("hf--o--b--default"),
        Err(Error::Damaged { .. })
    ));
    // Garbage is damaged too, and a damaged entry can be removed.
    fs::write(bad.dir.join("metadata.json"), b"\x00\xffnot json").unwrap();
    assert!(matches!(cat.get("hf:o/b"), Err(Error::Damaged { .. })));
    cat.remove("hf--o--b--default").unwrap();
    assert_eq!(cat.list().unwrap().len(), 2);
    // Re-opening with a damaged entry works.
    fs::create_dir_all(tmp.path().join("hf/x/y/default")).unwrap();
    fs::write(tmp.path().join("hf/x/y/default/metadata.json"), b"{").unwrap();
    Catalog::open(tmp.path()).unwrap();
}

#[test]
fn downloads_left_by_a_dead_process_become_incomplete() {
    register();
    let tmp = tempfile::tempdir().unwrap();
    let cat = Catalog::open(tmp.path()).unwrap();
    let downloading = ArtifactStatus::Downloading {
        bytes: 5,
        total: 10,
    };
    add(&cat, "hf:o/dead", downloading.clone(), &[]);
    add(&cat, "hf:o/alive", downloading.clone(), &[]);
    // A live download holds its lease (another process, as far as flock is concerned).
    let lease = cat
        .try_lease(&"hf:o/alive".parse().unwrap())
        .unwrap()
        .unwrap();

    let reopened = Catalog::open(tmp.path()).unwrap();
    let dead = reopened.get("hf:o/dead").unwrap().unwrap();
    assert_eq!(
        dead.record.status,
        ArtifactStatus::Incomplete {
            bytes: 5,
            total: 10
        }
    );
    let alive = reopened.get("hf:o/alive").unwrap().unwrap();
    assert_eq!(alive.record.status, downloading);
    drop(lease);
}

#[test]
fn leases_are_exclusive_and_block_removal() {
    register();
    let tmp = tempfile::tempdir().unwrap();
    let cat = Catalog::open(tmp.path()).unwrap();
    let r: ArtifactRef = "hf:o/r".parse().unwrap();
    add(
        &cat,
        "hf:o/r",
        ArtifactStatus::Downloading { bytes: 0, total: 1 },
        &[],
    );
    let lease = cat.try_lease(&r).unwrap().unwrap();
    assert!(cat.try_lease(&r).unwrap().is_none());
    assert!(matches!(cat.remove("hf:o/r"), Err(Error::Busy { .. })));
    drop(lease);
    let removed = cat.remove("hf:o/r").unwrap();
    assert_eq!(removed.id, "hf--o--r--default");
    assert!(!tmp.path().join("hf").exists(), "empty parents are tidied");
    assert!(matches!(cat.remove("hf:o/r"), Err(Error::NotFound { .. })));
}

#[test]
fn verify_detects_changed_and_missing_files() {
    register();
    let tmp = tempfile::tempdir().unwrap();
    let cat = Catalog::open(tmp.path()).unwrap();
    let e = add(
        &cat,
        "hf:o/r",
        ArtifactStatus::Ready,
        &[("a.safetensors", b"aaaa"), ("b.json", b"{}")],
    );
    let mut hashed = 0;
    let report = cat.verify("hf:o/r", |n| hashed += n).unwrap();
    assert!(report.ok(), "{report:?}");
    assert_eq!(hashed, 6);

    // Same size, different bytes: only the hash can tell.
    fs::write(layout::file_path(&e.dir, "a.safetensors"), b"aaab").unwrap();
    let report = cat.verify("hf--o--r--default", |_| {}).unwrap();
    assert!(!report.ok());
    assert!(report.problems()[0].starts_with("a.safetensors changed on disk"));
    let status = cat.get("hf:o/r").unwrap().unwrap().record.status.clone();
    assert!(matches!(status, ArtifactStatus::Failed { code, .. } if code == "integrity"));

    fs::remove_file(layout::file_path(&e.dir, "b.json")).unwrap();
    let report = cat.verify("hf:o/r", |_| {}).unwrap();
    assert_eq!(report.problems().len(), 2);

    // Restoring the bytes makes it ready again.
    fs::write(layout::file_path(&e.dir, "a.safetensors"), b"aaaa").unwrap();
    fs::write(layout::file_path(&e.dir, "b.json"), b"{}").unwrap();
    assert!(cat.verify("hf:o/r", |_| {}).unwrap().ok());
    assert_eq!(
        cat.get("hf:o/r").unwrap().unwrap().record.status,
        ArtifactStatus::Ready
    );
}

#[test]
fn disk_usage_counts_complete_and_partial_bytes() {
    register();
    let tmp = tempfile::tempdir().unwrap();
    let cat = Catalog::open(tmp.path()).unwrap();
    let e = add(&cat, "hf:o/r", ArtifactStatus::Ready, &[("a", &[1; 100])]);
    add(&cat, "gh:o/r@v1", ArtifactStatus::Ready, &[("b", &[1; 10])]);
    fs::write(layout::file_path(&e.dir, "c.part"), [0; 7]).unwrap();
    let du = cat.disk_usage().unwrap();
    assert_eq!(du.total_bytes, 110);
    assert_eq!(du.partial_bytes, 7);
    assert_eq!(du.entries[0].id, "hf--o--r--default");
    assert!(du.free_bytes.unwrap() > 0);
}

#[test]
fn concurrent_writers_never_lose_updates_or_tear_records() {
    register();
    let tmp = tempfile::tempdir().unwrap();
    add(
        &Catalog::open(tmp.path()).unwrap(),
        "hf:o/r",
        ArtifactStatus::Ready,
        &[],
    );
    let key = CatalogKey::of(&"hf:o/r".parse().unwrap());
    // Separate Catalog values have separate in-process mutexes, so only the file lock keeps
    // them apart — as it does between processes.
    let threads: Vec<_> = (0..8)
        .map(|t| {
            let root = tmp.path().to_path_buf();
            let key = key.clone();
            std::thread::spawn(move || {
                let cat = Catalog::open(root).unwrap();
                for i in 0..25 {
                    cat.update(&key, |r| r.notes.push(format!("{t}-{i}")))
                        .unwrap();
                    assert!(cat.get("hf:o/r").unwrap().is_some());
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let cat = Catalog::open(tmp.path()).unwrap();
    let notes = cat.get("hf:o/r").unwrap().unwrap().record.notes.clone();
    assert_eq!(notes.len(), 200);
    let leftovers: Vec<_> = fs::read_dir(cat.entry_dir(&key))
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().contains(".tmp-"))
        .collect();
    assert!(leftovers.is_empty());
}

#[test]
fn in_process_threads_share_one_catalog() {
    register();
    let tmp = tempfile::tempdir().unwrap();
    let cat = Arc::new(Catalog::open(tmp.path()).unwrap());
    let threads: Vec<_> = (0..4)
        .map(|t| {
            let cat = cat.clone();
            std::thread::spawn(move || {
                add(
                    &cat,
                    &format!("hf:o/r{t}"),
                    ArtifactStatus::Ready,
                    &[("f", b"x")],
                );
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    assert_eq!(cat.list().unwrap().len(), 4);
}

#[test]
fn find_by_digest_only_offers_ready_intact_files() {
    register();
    let tmp = tempfile::tempdir().unwrap();
    let cat = Catalog::open(tmp.path()).unwrap();
    let d = Sha256Digest::of(b"weights");
    assert!(cat.find_by_digest(&d, 7).unwrap().is_none());
    add(
        &cat,
        "hf:o/r",
        ArtifactStatus::Incomplete { bytes: 0, total: 7 },
        &[("w", b"weights")],
    );
    assert!(cat.find_by_digest(&d, 7).unwrap().is_none());
    let e = add(&cat, "hf:o/s", ArtifactStatus::Ready, &[("w", b"weights")]);
    assert_eq!(
        cat.find_by_digest(&d, 7).unwrap(),
        Some(layout::file_path(&e.dir, "w"))
    );
}

#[test]
fn default_root_honours_rbee_cache_dir() {
    register();
    // Only reads the variable; the test sets nothing process-wide.
    let root = Catalog::default_root();
    if let Some(dir) = std::env::var_os("RBEE_CACHE_DIR") {
        assert_eq!(root, Some(PathBuf::from(dir)));
    } else {
        assert!(root.unwrap().ends_with("rbee/models"));
    }
    assert_eq!(rbee_vendor_huggingface::SCHEME.as_str(), "hf");
}

#[test]
fn a_tilde_in_the_cache_folder_means_home() {
    register();
    let home = Some(PathBuf::from("/home/u"));
    assert_eq!(
        expand_home("~/models".into(), home.clone()),
        PathBuf::from("/home/u/models")
    );
    assert_eq!(
        expand_home("~".into(), home.clone()),
        PathBuf::from("/home/u")
    );
    assert_eq!(
        expand_home("~other/x".into(), home.clone()),
        PathBuf::from("~other/x")
    );
    assert_eq!(
        expand_home("/data/~/x".into(), home),
        PathBuf::from("/data/~/x")
    );
    assert_eq!(expand_home("~/x".into(), None), PathBuf::from("~/x"));
}

#[test]
fn links_inside_the_catalog_are_never_followed() {
    register();
    let tmp = tempfile::tempdir().unwrap();
    let cat = Catalog::open(tmp.path().join("root")).unwrap();
    let outside = tmp.path().join("outside");
    fs::create_dir_all(&outside).unwrap();
    let e = add(
        &cat,
        "hf:o/r:Q8_0",
        ArtifactStatus::Ready,
        &[("m.gguf", b"x")],
    );
    let key = e.record.key();
    // Move the entry out and leave a link in its place.
    fs::rename(&e.dir, outside.join("moved")).unwrap();
    std::os::unix::fs::symlink(outside.join("moved"), &e.dir).unwrap();
    assert_eq!(cat.read(&key).unwrap_err().code(), "damaged");
    assert_eq!(
        cat.try_lease_key(key.clone()).unwrap_err().code(),
        "damaged"
    );
    assert!(cat.digest_index().unwrap().is_empty());
    let removed = cat.remove(&key.id()).unwrap();
    assert_eq!(removed.bytes, 0);
    assert!(fs::symlink_metadata(&e.dir).is_err(), "the link is gone");
    assert!(
        outside.join("moved/files/m.gguf").is_file(),
        "its target is not"
    );

    // A linked folder above an entry: refused, nothing removed or created through it.
    let e = add(
        &cat,
        "hf:o2/r:Q8_0",
        ArtifactStatus::Ready,
        &[("m.gguf", b"y")],
    );
    let org = e.dir.parent().unwrap().parent().unwrap().to_path_buf();
    fs::rename(&org, outside.join("org")).unwrap();
    std::os::unix::fs::symlink(outside.join("org"), &org).unwrap();
    let err = cat.remove(&e.record.id).unwrap_err();
    assert_eq!(err.code(), "damaged", "{err}");
    assert!(outside.join("org/r/Q8_0/files/m.gguf").is_file());
    let err = cat.save(&e.record).unwrap_err();
    assert_eq!(err.code(), "damaged", "{err}");
}

#[test]
fn a_dead_download_reads_as_incomplete_and_an_unchanged_update_writes_nothing() {
    register();
    let tmp = tempfile::tempdir().unwrap();
    let cat = Catalog::open(tmp.path()).unwrap();
    let e = add(
        &cat,
        "hf:o/r:Q8_0",
        ArtifactStatus::Downloading { bytes: 1, total: 2 },
        &[],
    );
    let key = e.record.key();
    // Nobody holds the lease: readers see what it is.
    let read = cat.read(&key).unwrap().unwrap();
    assert_eq!(
        read.record.status,
        ArtifactStatus::Incomplete { bytes: 1, total: 2 }
    );
    // While a download holds it, it is downloading.
    let lease = cat.try_lease_key(key.clone()).unwrap().unwrap();
    assert!(matches!(
        cat.read(&key).unwrap().unwrap().record.status,
        ArtifactStatus::Downloading { .. }
    ));
    drop(lease);
    let before = fs::metadata(e.dir.join("metadata.json"))
        .unwrap()
        .modified()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(20));
    cat.update(&key, |_| {}).unwrap();
    let after = fs::metadata(e.dir.join("metadata.json"))
        .unwrap()
        .modified()
        .unwrap();
    assert_eq!(
        before, after,
        "an update that changes nothing writes nothing"
    );
}

#[test]
fn hard_linked_files_are_counted_once_and_rm_reports_bytes_really_freed() {
    register();
    let tmp = tempfile::tempdir().unwrap();
    let cat = Catalog::open(tmp.path()).unwrap();
    let a = add(
        &cat,
        "hf:o/r:Q4_K_M",
        ArtifactStatus::Ready,
        &[("m.gguf", &[7; 1000]), ("a.json", &[1; 10])],
    );
    let b = cat
        .save(&record(
            "hf:o/r:Q8_0",
            ArtifactStatus::Ready,
            &[("m.gguf", &[7; 1000])],
        ))
        .unwrap();
    fs::create_dir_all(layout::files_dir(&b.dir)).unwrap();
    fs::hard_link(
        layout::file_path(&a.dir, "m.gguf"),
        layout::file_path(&b.dir, "m.gguf"),
    )
    .unwrap();

    let du = cat.disk_usage().unwrap();
    assert_eq!(du.total_bytes, 1010, "the linked file counts once");
    let of = |id: &str| du.entries.iter().find(|e| e.id == id).unwrap().clone();
    assert_eq!(of("hf--o--r--Q4_K_M").bytes, 1010);
    assert_eq!(of("hf--o--r--Q4_K_M").shared_bytes, 1000);
    assert_eq!(of("hf--o--r--Q8_0").bytes, 1000);
    assert_eq!(of("hf--o--r--Q8_0").shared_bytes, 1000);

    // The linked file lives on in the other entry: only the unshared bytes are freed.
    assert_eq!(cat.remove("hf--o--r--Q4_K_M").unwrap().bytes, 10);
    assert_eq!(cat.disk_usage().unwrap().entries[0].shared_bytes, 0);
    assert_eq!(cat.remove("hf--o--r--Q8_0").unwrap().bytes, 1000);
}

#[test]
fn a_link_outside_the_catalog_keeps_the_bytes_alive() {
    register();
    let tmp = tempfile::tempdir().unwrap();
    let cat = Catalog::open(tmp.path().join("c")).unwrap();
    let a = add(
        &cat,
        "hf:o/r",
        ArtifactStatus::Ready,
        &[("m.gguf", &[7; 500])],
    );
    fs::hard_link(
        layout::file_path(&a.dir, "m.gguf"),
        tmp.path().join("placed.gguf"),
    )
    .unwrap();
    assert_eq!(cat.remove("hf--o--r--default").unwrap().bytes, 0);
    assert_eq!(fs::read(tmp.path().join("placed.gguf")).unwrap(), [7; 500]);
}

#[test]
fn a_preallocated_partial_counts_the_bytes_written() {
    register();
    let tmp = tempfile::tempdir().unwrap();
    let cat = Catalog::open(tmp.path()).unwrap();
    let e = add(&cat, "hf:o/r", ArtifactStatus::Ready, &[("a", &[1; 10])]);
    let part = File::create(layout::file_path(&e.dir, "big.gguf.part")).unwrap();
    part.set_len(1 << 30).unwrap();
    std::os::unix::fs::FileExt::write_all_at(&part, &[9; 4096], 0).unwrap();
    part.sync_all().unwrap();
    let du = cat.disk_usage().unwrap();
    assert!(
        du.partial_bytes >= 4096 && du.partial_bytes < 1 << 20,
        "a 1 GiB file with 4 KiB written counted as {} bytes",
        du.partial_bytes
    );
    assert!(cat.remove("hf--o--r--default").unwrap().bytes < 1 << 20);
}

fn set_mtime(path: &Path, ago: std::time::Duration) {
    let f = fs::OpenOptions::new().write(true).open(path).unwrap();
    f.set_modified(std::time::SystemTime::now() - ago).unwrap();
}

const DAY: std::time::Duration = std::time::Duration::from_secs(86_400);

#[test]
fn prune_removes_stale_partials_failed_entries_and_orphans_but_never_a_held_download() {
    register();
    let tmp = tempfile::tempdir().unwrap();
    let cat = Catalog::open(tmp.path()).unwrap();
    let incomplete = || ArtifactStatus::Incomplete {
        bytes: 3,
        total: 10,
    };
    // Ready, with a partial file its record does not mention.
    let ready = add(
        &cat,
        "hf:o/ready",
        ArtifactStatus::Ready,
        &[("m.gguf", b"ok")],
    );
    let stray = layout::file_path(&ready.dir, "old.gguf.part");
    fs::write(&stray, [1; 5]).unwrap();
    let failed = ArtifactStatus::Failed {
        error: "boom".into(),
        code: "network".into(),
        suspect: vec![],
    };
    add(&cat, "hf:o/failed", failed, &[]);
    // Unfinished and untouched for 10 days; another just as old, but a download holds it.
    for (reference, ago) in [("hf:o/stale", 10), ("hf:o/fresh", 1), ("hf:o/held", 10)] {
        let mut r = record(reference, incomplete(), &[]);
        r.updated_at = Utc::now() - chrono::Duration::days(ago);
        let e = cat.save(&r).unwrap();
        let part = layout::file_path(&e.dir, "m.gguf.part");
        fs::create_dir_all(part.parent().unwrap()).unwrap();
        fs::write(&part, [2; 3]).unwrap();
        set_mtime(&part, DAY * ago as u32);
    }
    let held = cat
        .try_lease(&"hf:o/held".parse().unwrap())
        .unwrap()
        .unwrap();
    // A record that cannot be read, and a folder with no record at all.
    let damaged = cat.entry_dir(&CatalogKey::from_id("hf--o--damaged--default").unwrap());
    fs::create_dir_all(layout::files_dir(&damaged)).unwrap();
    fs::write(damaged.join(layout::METADATA_FILE), b"{not json").unwrap();
    let orphan = cat.entry_dir(&CatalogKey::from_id("hf--o--orphan--default").unwrap());
    fs::create_dir_all(layout::files_dir(&orphan)).unwrap();
    fs::write(layout::file_path(&orphan, "x.gguf.part"), [3; 4]).unwrap();

    let plan = cat.prune(7 * DAY, true).unwrap();
    let mut got: Vec<_> = plan
        .items
        .iter()
        .map(|i| (i.id.as_str(), i.reason.clone()))
        .collect();
    got.sort_by_key(|(id, _)| id.to_string());
    assert_eq!(
        got,
        [
            ("hf--o--damaged--default", PruneReason::Orphan),
            ("hf--o--failed--default", PruneReason::Failed),
            ("hf--o--orphan--default", PruneReason::Orphan),
            ("hf--o--ready--default", PruneReason::OrphanPart),
            ("hf--o--stale--default", PruneReason::StalePartial),
        ]
    );
    assert_eq!(plan.busy, ["hf--o--held--default"]);
    assert_eq!(plan.bytes, 5 + 3 + 4);
    assert!(
        stray.exists() && orphan.exists(),
        "a dry run removes nothing"
    );

    let done = cat.prune(7 * DAY, false).unwrap();
    assert_eq!(done.items.len(), 5);
    assert_eq!(done.bytes, 12);
    assert!(!stray.exists() && !orphan.exists() && !damaged.exists());
    let left: Vec<String> = cat
        .list()
        .unwrap()
        .iter()
        .map(|l| match l {
            Listing::Entry(e) => e.record.id.clone(),
            Listing::Damaged { id, .. } => id.clone(),
        })
        .collect();
    assert_eq!(
        left,
        [
            "hf--o--fresh--default",
            "hf--o--held--default",
            "hf--o--ready--default"
        ]
    );
    assert_eq!(
        fs::read(layout::file_path(&ready.dir, "m.gguf")).unwrap(),
        b"ok"
    );
    drop(held);
}

#[test]
fn the_budget_evicts_least_recently_used_unpinned_models_or_refuses_before_anything() {
    register();
    let tmp = tempfile::tempdir().unwrap();
    let cat = Catalog::open(tmp.path()).unwrap();
    for (name, days_ago) in [("old", 3), ("pinned", 5), ("recent", 1)] {
        let e = add(
            &cat,
            &format!("hf:o/{name}"),
            ArtifactStatus::Ready,
            &[("m.gguf", &[1; 1000])],
        );
        cat.mark_used(&e.record.key());
        set_mtime(&e.dir.join(layout::LAST_USED_FILE), DAY * days_ago);
    }
    cat.set_pinned("hf--o--pinned--default", true).unwrap();
    let new: CatalogKey = CatalogKey::of(&"hf:o/new".parse().unwrap());

    // Everything that may go is not enough: refused, nothing removed.
    let err = cat.make_room(2500, 3000, &new).unwrap_err();
    assert_eq!(err.code(), "over_budget");
    assert!(err.to_string().contains("nothing was downloaded"), "{err}");
    assert_eq!(cat.list().unwrap().len(), 3);

    // Fits once the least recently used unpinned model is gone.
    let evicted = cat.make_room(1000, 3200, &new).unwrap();
    assert_eq!(evicted.len(), 1);
    assert_eq!(evicted[0].id, "hf--o--old--default");
    assert_eq!(evicted[0].bytes, 1000);
    assert!(cat.get("hf--o--pinned--default").unwrap().is_some());
    assert!(cat.get("hf--o--recent--default").unwrap().is_some());
    // Already within the budget: nothing goes.
    assert!(cat.make_room(100, 3200, &new).unwrap().is_empty());

    cat.set_pinned("hf--o--pinned--default", false).unwrap();
    let evicted = cat.make_room(2000, 2000, &new).unwrap();
    let ids: Vec<_> = evicted.iter().map(|r| r.id.as_str()).collect();
    assert_eq!(ids, ["hf--o--pinned--default", "hf--o--recent--default"]);
}

#[test]
fn a_lookup_marks_the_last_use_without_rewriting_the_record() {
    register();
    let tmp = tempfile::tempdir().unwrap();
    let cat = Catalog::open(tmp.path()).unwrap();
    let e = add(&cat, "hf:o/r", ArtifactStatus::Ready, &[("m.gguf", b"x")]);
    let record_before = fs::read(e.dir.join(layout::METADATA_FILE)).unwrap();
    let sidecar = e.dir.join(layout::LAST_USED_FILE);
    cat.mark_used(&e.record.key());
    set_mtime(&sidecar, DAY);
    let before = cat.last_used(&e);
    cat.mark_used(&e.record.key());
    assert!(cat.last_used(&e) > before);
    assert_eq!(
        fs::read(e.dir.join(layout::METADATA_FILE)).unwrap(),
        record_before
    );
    // A planted link is never written through.
    let target = tmp.path().join("victim");
    fs::write(&target, b"keep").unwrap();
    fs::remove_file(&sidecar).unwrap();
    std::os::unix::fs::symlink(&target, &sidecar).unwrap();
    cat.mark_used(&e.record.key());
    assert_eq!(fs::read(&target).unwrap(), b"keep");
}

#[test]
fn ages_and_sizes_parse_with_clear_errors() {
    register();
    assert_eq!(parse_age("7d").unwrap(), 7 * DAY);
    assert_eq!(parse_age("12h").unwrap().as_secs(), 12 * 3600);
    assert!(parse_age("soon").unwrap_err().contains("e.g. 7d"));
    assert_eq!(parse_cache_size("200GB"), Ok(200_000_000_000));
    assert_eq!(parse_cache_size("1GiB"), Ok(1 << 30));
    assert!(parse_cache_size("0").is_err());
    assert!(parse_cache_size("lots").unwrap_err().contains("200GB"));
}

#[test]
fn bytes_linked_from_outside_count_neither_as_used_nor_as_evictable() {
    register();
    let tmp = tempfile::tempdir().unwrap();
    let cat = Catalog::open(tmp.path().join("c")).unwrap();
    let e = add(
        &cat,
        "hf:o/linked",
        ArtifactStatus::Ready,
        &[("m.gguf", &[1; 1000])],
    );
    fs::hard_link(
        layout::file_path(&e.dir, "m.gguf"),
        tmp.path().join("user-copy.gguf"),
    )
    .unwrap();
    let new = CatalogKey::of(&"hf:o/new".parse().unwrap());
    // Only the new download counts: it fits, and nothing is evicted for nothing.
    assert!(cat.make_room(900, 1000, &new).unwrap().is_empty());
    assert!(cat.get("hf--o--linked--default").unwrap().is_some());
}
