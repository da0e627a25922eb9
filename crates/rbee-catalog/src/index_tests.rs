//! The index: listings read only what changed, and nothing in the index is trusted over the
//! records.

use std::time::Duration;

use super::*;
use crate::listing::listing_id;
use crate::tests::{add, record, register};
use rbee_artifact::Sha256Digest;

/// A catalog whose index caches a changed record at once, so the tests need not wait for changes
/// to settle; each test changes records by renaming new files into place or by changing their
/// size, which no clock tick can hide. (Folders still settle: what is added to one within a tick
/// of the last change can leave it with the same times.)
fn eager(root: &Path) -> Catalog {
    register();
    let mut cat = Catalog::open(root).unwrap();
    cat.settle = Duration::ZERO;
    cat
}

fn ids(listing: &[Listing]) -> Vec<String> {
    listing.iter().map(|l| listing_id(l).to_string()).collect()
}

/// What a catalog without any index lists: the truth the index must agree with.
fn truth(root: &Path) -> Vec<Listing> {
    let _ = fs::remove_file(root.join(layout::INDEX_FILE));
    Catalog::open(root).unwrap().list().unwrap()
}

/// The parts of a saved index, each a JSON object of folders.
fn parts_of(saved: &[u8]) -> Vec<serde_json::Value> {
    let line = saved.iter().position(|&b| b == b'\n').unwrap();
    let header: serde_json::Value = serde_json::from_slice(&saved[..line]).unwrap();
    let mut at = line + 1;
    let parts = header["parts"].as_array().unwrap().iter().map(|len| {
        let len = usize::try_from(len.as_u64().unwrap()).unwrap();
        let part = serde_json::from_slice(&saved[at..at + len]).unwrap();
        at += len;
        part
    });
    let parts = parts.collect();
    assert_eq!(at, saved.len(), "the parts fill the file");
    parts
}

/// An index file of `format` holding `parts` (JSON objects of folders, as text: a
/// `serde_json::Value` keeps no order).
fn index_of(format: u32, parts: &[String]) -> Vec<u8> {
    let lens: Vec<usize> = parts.iter().map(String::len).collect();
    let mut file =
        serde_json::to_vec(&serde_json::json!({"format": format, "parts": lens})).unwrap();
    file.push(b'\n');
    parts
        .iter()
        .for_each(|p| file.extend_from_slice(p.as_bytes()));
    file
}

fn fill(cat: &Catalog, n: usize) {
    for i in 0..n {
        add(
            cat,
            &format!("hf:org/repo-{i:03}"),
            ArtifactStatus::Ready,
            &[("w.gguf", format!("weights {i}").as_bytes())],
        );
    }
}

#[test]
fn a_listing_reads_only_the_records_that_changed_since_the_last_one() {
    let tmp = tempfile::tempdir().unwrap();
    let cat = eager(tmp.path());
    fill(&cat, 40);
    assert_eq!(cat.list().unwrap().len(), 40);
    assert_eq!(cat.records_read(), 40);

    // The same catalog, and another process opening it: nothing read again.
    assert_eq!(cat.list().unwrap().len(), 40);
    assert_eq!(cat.records_read(), 40);
    let other = eager(tmp.path());
    assert_eq!(other.list().unwrap(), cat.list().unwrap());
    assert_eq!(other.records_read(), 0);

    // One record changes (written by the other catalog, as another process would): one read.
    let key = CatalogKey::of(&"hf:org/repo-007".parse().unwrap());
    other
        .set_status(
            &key,
            ArtifactStatus::Failed {
                error: "x".into(),
                code: "network".into(),
                suspect: vec![],
            },
        )
        .unwrap();
    let listing = cat.list().unwrap();
    assert_eq!(cat.records_read(), 41);
    let changed = listing
        .iter()
        .find_map(|l| match l {
            Listing::Entry(e) if e.record.id == key.id() => Some(e.record.status.name()),
            _ => None,
        })
        .unwrap();
    assert_eq!(changed, "failed");
    assert_eq!(listing, truth(tmp.path()));
}

#[test]
fn a_large_catalog_is_saved_in_parts_read_back_whole_and_checked_in_each() {
    let tmp = tempfile::tempdir().unwrap();
    let cat = eager(tmp.path());
    fill(&cat, 600);
    let listed = cat.list().unwrap();
    assert_eq!(listed.len(), 600);
    let saved = fs::read(tmp.path().join(layout::INDEX_FILE)).unwrap();
    assert!(parts_of(&saved).len() >= 2, "600 entries in one part");
    let other = eager(tmp.path());
    assert_eq!(other.list().unwrap(), listed);
    assert_eq!(other.records_read(), 0);

    // Changes in the first and the last part: each is seen, and only those are read.
    for (id, status) in [
        (
            "hf:org/repo-000",
            ArtifactStatus::Incomplete { bytes: 1, total: 2 },
        ),
        (
            "hf:org/repo-599",
            ArtifactStatus::Incomplete { bytes: 1, total: 3 },
        ),
    ] {
        cat.set_status(&CatalogKey::of(&id.parse().unwrap()), status)
            .unwrap();
    }
    let next = eager(tmp.path());
    let listing = next.list().unwrap();
    assert_eq!(next.records_read(), 2);
    assert_eq!(listing, truth(tmp.path()));
    // The catalog that saved the index holds it in memory, and sees the changes too.
    assert_eq!(cat.list().unwrap(), listing);
}

#[test]
fn opening_and_looking_up_one_entry_read_one_record() {
    let tmp = tempfile::tempdir().unwrap();
    fill(&Catalog::open(tmp.path()).unwrap(), 30);
    let cat = Catalog::open(tmp.path()).unwrap();
    assert_eq!(cat.records_read(), 0, "opening read records");
    assert!(cat.get("hf:org/repo-012").unwrap().is_some());
    assert_eq!(cat.records_read(), 1);
    assert!(cat.get("hf--org--repo-013--default").unwrap().is_some());
    assert_eq!(cat.records_read(), 2);
}

#[test]
fn a_deleted_truncated_or_garbage_index_is_rebuilt_from_the_records() {
    let tmp = tempfile::tempdir().unwrap();
    let cat = eager(tmp.path());
    fill(&cat, 10);
    let expected = cat.list().unwrap();
    let path = tmp.path().join(layout::INDEX_FILE);
    let saved = fs::read(&path).unwrap();
    // The same folders saved by an rbee of another format.
    let parts = parts_of(&saved);
    let texts: Vec<String> = parts.iter().map(ToString::to_string).collect();
    let older = index_of(3, &texts);
    let newer = index_of(999, &texts);
    // The previous format: one JSON document.
    let mut nodes = serde_json::Map::new();
    parts
        .iter()
        .for_each(|p| nodes.extend(p.as_object().unwrap().clone()));
    let one_document =
        serde_json::to_vec(&serde_json::json!({"format": 3, "count": 21, "nodes": nodes})).unwrap();
    // Parts whose lengths do not add up to the file, or are not folders.
    let longer = [&saved[..], b" "].concat();
    let mut lying = saved.clone();
    let digit = lying.iter().position(u8::is_ascii_digit).unwrap();
    lying[digit] = b'1';
    let garbage: [&[u8]; 14] = [
        &older,
        &newer,
        &one_document,
        b"",
        b"garbage{",
        &saved[..saved.len() / 2],
        &longer,
        &saved[..saved.len() - 1],
        b"{\"format\":4,\"parts\":[18446744073709551615]}\n{}",
        b"{\"format\":4,\"parts\":[18446744073709551615,3]}\n{}",
        b"{\"format\":4,\"parts\":[2]}\n[]",
        b"{\"format\":4,\"parts\":[1,1]}\n{}",
        b"{\"format\":4}",
        br#"{"format": 1, "nodes": {"hf": {"kind": "branch", "stamp": 7, "children": 3}}}"#,
    ];
    assert_ne!(&lying[..], &saved[..]);
    for bad in garbage.into_iter().chain([&lying[..]]) {
        fs::write(&path, bad).unwrap();
        let fresh = eager(tmp.path());
        assert_eq!(fresh.list().unwrap(), expected);
        assert_eq!(fresh.records_read(), 10, "every record is read again");
        // And the rebuilt index serves the next process.
        let next = eager(tmp.path());
        assert_eq!(next.list().unwrap(), expected);
        assert_eq!(next.records_read(), 0);
    }
    fs::remove_file(&path).unwrap();
    assert_eq!(eager(tmp.path()).list().unwrap(), expected);
    assert!(path.exists(), "the index was saved again");
}

#[test]
fn an_index_is_never_trusted_over_the_records() {
    let tmp = tempfile::tempdir().unwrap();
    let cat = eager(tmp.path());
    fill(&cat, 6);
    cat.list().unwrap();
    let index_before = fs::read(tmp.path().join(layout::INDEX_FILE)).unwrap();
    let restore_index = || fs::write(tmp.path().join(layout::INDEX_FILE), &index_before).unwrap();

    // A record removed behind the index's back is not listed.
    let gone = cat.entry_dir(&CatalogKey::of(&"hf:org/repo-001".parse().unwrap()));
    fs::remove_dir_all(gone.parent().unwrap()).unwrap();
    restore_index();
    let listing = eager(tmp.path()).list().unwrap();
    assert!(!ids(&listing).contains(&"hf--org--repo-001--default".to_string()));
    assert_eq!(listing, truth(tmp.path()));

    // A record rewritten in place (another tool, same inode) shows what it says now.
    let dir = cat.entry_dir(&CatalogKey::of(&"hf:org/repo-002".parse().unwrap()));
    let mut changed = record(
        "hf:org/repo-002",
        ArtifactStatus::Failed {
            error: "edited".into(),
            code: "integrity".into(),
            suspect: vec![],
        },
        &[],
    );
    changed.notes.push("rewritten in place".into());
    cat.list().unwrap();
    restore_index();
    fs::write(
        dir.join(layout::METADATA_FILE),
        serde_json::to_vec(&changed).unwrap(),
    )
    .unwrap();
    let listing = eager(tmp.path()).list().unwrap();
    let shown = listing
        .iter()
        .find_map(|l| match l {
            Listing::Entry(e) if e.dir == dir => Some(e.record.clone()),
            _ => None,
        })
        .unwrap();
    assert_eq!(shown.status.name(), "failed");
    assert_eq!(listing, truth(tmp.path()));

    // A record damaged behind the index's back shows as damaged.
    let dir = cat.entry_dir(&CatalogKey::of(&"hf:org/repo-003".parse().unwrap()));
    cat.list().unwrap();
    fs::write(dir.join(layout::METADATA_FILE), b"{ not a record").unwrap();
    let listing = cat.list().unwrap();
    assert!(
        listing
            .iter()
            .any(|l| matches!(l, Listing::Damaged { dir: d, .. } if *d == dir))
    );

    // A record replaced by a link, and an entry folder replaced by a link to a copy: refused,
    // as without an index.
    let dir = cat.entry_dir(&CatalogKey::of(&"hf:org/repo-004".parse().unwrap()));
    let outside = tmp.path().join("outside.json");
    fs::copy(dir.join(layout::METADATA_FILE), &outside).unwrap();
    fs::remove_file(dir.join(layout::METADATA_FILE)).unwrap();
    std::os::unix::fs::symlink(&outside, dir.join(layout::METADATA_FILE)).unwrap();
    let dir5 = cat.entry_dir(&CatalogKey::of(&"hf:org/repo-005".parse().unwrap()));
    let moved = tmp.path().join("moved");
    fs::rename(&dir5, &moved).unwrap();
    std::os::unix::fs::symlink(&moved, &dir5).unwrap();
    let listing = cat.list().unwrap();
    assert_eq!(listing, truth(tmp.path()));
    assert!(
        !listing
            .iter()
            .any(|l| matches!(l, Listing::Entry(e) if e.dir == dir || e.dir == dir5)),
        "an entry reached through a link was listed: {:?}",
        ids(&listing)
    );
}

#[test]
fn an_entry_added_by_another_process_shows_in_a_running_daemon() {
    let tmp = tempfile::tempdir().unwrap();
    let daemon = eager(tmp.path());
    fill(&daemon, 5);
    assert_eq!(daemon.list().unwrap().len(), 5);
    // Another process: its own catalog value, in a folder the daemon has already listed.
    let other = eager(tmp.path());
    add(&other, "hf:org/repo-zzz", ArtifactStatus::Ready, &[]);
    add(&other, "hf:another/one", ArtifactStatus::Ready, &[]);
    let listing = daemon.list().unwrap();
    assert_eq!(listing.len(), 7);
    assert_eq!(listing, truth(tmp.path()));
    other.remove("hf:org/repo-zzz").unwrap();
    assert_eq!(daemon.list().unwrap().len(), 6);
}

#[test]
fn a_change_too_recent_to_tell_apart_is_not_cached() {
    let tmp = tempfile::tempdir().unwrap();
    // The default settling time: everything was just written, so nothing is cached yet and
    // every listing reads every record.
    let cat = Catalog::open(tmp.path()).unwrap();
    fill(&cat, 3);
    cat.list().unwrap();
    cat.list().unwrap();
    assert_eq!(cat.records_read(), 6);
}

#[test]
fn dead_downloads_are_recorded_incomplete_by_a_listing() {
    let tmp = tempfile::tempdir().unwrap();
    let cat = eager(tmp.path());
    add(
        &cat,
        "hf:o/dead",
        ArtifactStatus::Downloading { bytes: 1, total: 2 },
        &[],
    );
    let key = CatalogKey::of(&"hf:o/dead".parse().unwrap());
    let on_disk = || read_record(&cat.entry_dir(&key)).unwrap().unwrap().status;
    assert_eq!(on_disk().name(), "downloading", "opening wrote nothing");
    cat.list().unwrap();
    assert_eq!(on_disk(), ArtifactStatus::Incomplete { bytes: 1, total: 2 });
}

#[test]
fn concurrent_writers_and_listers_leave_an_index_that_agrees_with_the_records() {
    let tmp = tempfile::tempdir().unwrap();
    fill(&Catalog::open(tmp.path()).unwrap(), 10);
    // Separate catalog values: only the file locks keep them apart, as between processes.
    let writers: Vec<_> = (0..2)
        .map(|t| {
            let root = tmp.path().to_path_buf();
            std::thread::spawn(move || {
                let cat = Catalog::open(root).unwrap();
                for i in 0..30 {
                    add(&cat, &format!("hf:w{t}/m{i}"), ArtifactStatus::Ready, &[]);
                    let key =
                        CatalogKey::of(&format!("hf:org/repo-{:03}", i % 10).parse().unwrap());
                    cat.update(&key, |r| r.notes.push(format!("{t}-{i}")))
                        .unwrap();
                    if i % 3 == 0 {
                        cat.remove(&format!("hf:w{t}/m{i}")).unwrap();
                    }
                }
            })
        })
        .collect();
    let listers: Vec<_> = (0..2)
        .map(|_| {
            let root = tmp.path().to_path_buf();
            std::thread::spawn(move || {
                let cat = Catalog::open(root).unwrap();
                for _ in 0..30 {
                    for l in cat.list().unwrap() {
                        assert!(matches!(l, Listing::Entry(_)), "a torn record: {l:?}");
                    }
                }
            })
        })
        .collect();
    for t in writers.into_iter().chain(listers) {
        t.join().unwrap();
    }
    let with_index = Catalog::open(tmp.path()).unwrap().list().unwrap();
    assert_eq!(with_index.len(), 10 + 2 * 20);
    assert_eq!(with_index, truth(tmp.path()));
    let notes: usize = with_index
        .iter()
        .map(|l| match l {
            Listing::Entry(e) => e.record.notes.len(),
            Listing::Damaged { .. } => 0,
        })
        .sum();
    assert_eq!(notes, 60);
}

#[test]
fn digest_reuse_reads_no_record_that_did_not_change() {
    let tmp = tempfile::tempdir().unwrap();
    let cat = eager(tmp.path());
    fill(&cat, 30);
    cat.list().unwrap();
    // A download in another process looks for a copy of one file.
    let other = eager(tmp.path());
    let found = other
        .find_by_digest(&Sha256Digest::of(b"weights 17"), 10)
        .unwrap()
        .unwrap();
    assert!(
        found.ends_with("repo-017/default/files/w.gguf"),
        "{found:?}"
    );
    assert_eq!(other.records_read(), 0);
    let wanted = [
        (Sha256Digest::of(b"weights 3"), 9),
        (Sha256Digest::of(b"weights 3"), 10),
        (Sha256Digest::of(b"not there"), 9),
    ];
    let copies = other.find_copies(&wanted).unwrap();
    assert_eq!(copies.len(), 1);
    assert!(copies.contains_key(&wanted[0]));
    assert_eq!(other.records_read(), 0);
}

#[test]
fn stats_from_held_folders_agree_with_stats_by_path() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    // Wide folders (held open) and narrow ones (resolved through), files and a link.
    for i in 0..6 {
        let leaf = root.join(format!("wide/f{i}/v"));
        fs::create_dir_all(&leaf).unwrap();
        fs::write(leaf.join("metadata.json"), format!("{i}")).unwrap();
    }
    fs::create_dir_all(root.join("narrow/only")).unwrap();
    fs::write(root.join("narrow/only/metadata.json"), b"x").unwrap();
    std::os::unix::fs::symlink(
        root.join("narrow/only/metadata.json"),
        root.join("wide/f0/link.json"),
    )
    .unwrap();
    let by_path = |rel: &str| {
        let meta = fs::symlink_metadata(root.join(rel)).unwrap();
        (index::Stamp::of(&meta), meta.is_file())
    };
    let mut folders = index::Folders::new(root);
    assert_eq!(folders.lstat("", None).unwrap(), by_path("."));
    folders.enter("wide", 6);
    for i in 0..6 {
        let rel = format!("wide/f{i}");
        assert_eq!(folders.lstat(&rel, None).unwrap(), by_path(&rel));
        folders.enter(&rel, 1);
        let file = format!("{rel}/v/metadata.json");
        assert_eq!(
            folders
                .lstat(&format!("{rel}/v"), Some("metadata.json"))
                .unwrap(),
            by_path(&file)
        );
    }
    // A link is reported as itself, not as the file it points to.
    let (_, is_file) = folders.lstat("wide/f0", Some("link.json")).unwrap();
    assert!(!is_file);
    // Out of the held folder again: a sibling resolves from the root.
    assert_eq!(
        folders.lstat("narrow/only", Some("metadata.json")).unwrap(),
        by_path("narrow/only/metadata.json")
    );
    let missing = folders.lstat("wide/gone", None).unwrap_err();
    assert_eq!(missing.kind(), std::io::ErrorKind::NotFound);
}

#[test]
fn a_record_from_the_index_is_checked_as_one_from_disk_would_be() {
    let tmp = tempfile::tempdir().unwrap();
    let cat = eager(tmp.path());
    fill(&cat, 4);
    cat.list().unwrap();
    // Another rbee (or a hand) left an index whose record for one entry is of a newer format
    // and names a file outside its folder, under the stamps of the real record.
    let path = tmp.path().join(layout::INDEX_FILE);
    let mut parts = parts_of(&fs::read(&path).unwrap());
    let mut edited = 0;
    fn edit(v: &mut serde_json::Value, edited: &mut usize) {
        match v {
            serde_json::Value::Object(m) => {
                if m.get("id").and_then(|i| i.as_str()) == Some("hf--org--repo-002--default") {
                    m.insert("schema".into(), 99.into());
                    if let Some(serde_json::Value::Array(files)) = m.get_mut("files") {
                        files.push(serde_json::json!({"path": "../x", "size": 1}));
                    }
                    *edited += 1;
                }
                for v in m.values_mut() {
                    edit(v, edited);
                }
            }
            serde_json::Value::Array(a) => a.iter_mut().for_each(|v| edit(v, edited)),
            _ => {}
        }
    }
    parts.iter_mut().for_each(|part| edit(part, &mut edited));
    assert_eq!(edited, 1, "the index holds the record");
    let texts: Vec<String> = parts.iter().map(ToString::to_string).collect();
    fs::write(&path, index_of(4, &texts)).unwrap();
    let listing = eager(tmp.path()).list().unwrap();
    assert_eq!(listing, truth(tmp.path()));
}

#[test]
fn a_record_under_a_name_rbee_never_makes_stays_listed_as_damaged() {
    use std::os::unix::ffi::OsStrExt;
    let tmp = tempfile::tempdir().unwrap();
    let cat = eager(tmp.path());
    fill(&cat, 2);
    let odd = tmp
        .path()
        .join("hf")
        .join(std::ffi::OsStr::from_bytes(b"org\xff"));
    fs::create_dir_all(&odd).unwrap();
    fs::write(odd.join(layout::METADATA_FILE), b"{}").unwrap();
    // Old enough for its folder to be kept in the index.
    std::thread::sleep(index::SETTLE + Duration::from_millis(100));
    for listing in 1..=3 {
        let damaged = eager(tmp.path())
            .list()
            .unwrap()
            .into_iter()
            .filter(|l| matches!(l, Listing::Damaged { .. }))
            .count();
        assert_eq!(damaged, 1, "listing {listing}");
    }
}

#[test]
fn the_index_is_saved_when_a_listing_finds_a_change_and_only_then() {
    use std::os::unix::fs::MetadataExt;
    let tmp = tempfile::tempdir().unwrap();
    let index = tmp.path().join(layout::INDEX_FILE);
    let held = tmp.path().join(".held-index");
    // Every save renames a new file into place; a link to the old one keeps its inode from
    // being reused, so a save always shows as another inode.
    let hold = || {
        let _ = fs::remove_file(&held);
        fs::hard_link(&index, &held).unwrap();
    };
    let saved_since_held =
        || fs::metadata(&index).unwrap().ino() != fs::metadata(&held).unwrap().ino();
    let cat = eager(tmp.path());
    fill(&cat, 8);
    cat.list().unwrap();
    hold();
    cat.list().unwrap();
    eager(tmp.path()).list().unwrap();
    assert!(
        !saved_since_held(),
        "nothing changed, yet the index was written again"
    );

    // A record rewritten: the index learns the new one.
    let key = CatalogKey::of(&"hf:org/repo-002".parse().unwrap());
    cat.set_status(&key, ArtifactStatus::Incomplete { bytes: 1, total: 2 })
        .unwrap();
    let listed = cat.list().unwrap();
    assert!(saved_since_held());
    let next = eager(tmp.path());
    assert_eq!(next.list().unwrap(), listed);
    assert_eq!(next.records_read(), 0);

    // A record gone from a folder that stays: the index forgets the entry.
    hold();
    let dir = cat.entry_dir(&CatalogKey::of(&"hf:org/repo-005".parse().unwrap()));
    fs::remove_file(dir.join(layout::METADATA_FILE)).unwrap();
    let listed = cat.list().unwrap();
    assert!(
        saved_since_held(),
        "the index still holds a record that is gone"
    );
    assert_eq!(listed.len(), 7);
    let next = eager(tmp.path());
    assert_eq!(next.list().unwrap(), listed);
    assert_eq!(next.records_read(), 0);
}

mod fuzzed {
    use proptest::prelude::*;

    use super::*;

    /// A catalog of a few entries, its index saved, and what it lists.
    fn catalog() -> (tempfile::TempDir, Vec<u8>, Vec<Listing>) {
        catalog_of(5)
    }

    fn catalog_of(entries: usize) -> (tempfile::TempDir, Vec<u8>, Vec<Listing>) {
        let tmp = tempfile::tempdir().unwrap();
        let cat = eager(tmp.path());
        fill(&cat, entries);
        let expected = cat.list().unwrap();
        let saved = fs::read(tmp.path().join(layout::INDEX_FILE)).unwrap();
        (tmp, saved, expected)
    }

    proptest! {
        // Each case writes a small catalog to a temp folder.
        #![proptest_config(ProptestConfig::with_cases(24))]

        /// Cut short anywhere, or with a byte JSON never holds unescaped: rebuilt from the
        /// records, never a panic.
        #[test]
        fn a_damaged_index_is_rebuilt(cut in any::<prop::sample::Index>(), at in any::<prop::sample::Index>(), byte in 1u8..0x09, truncate in any::<bool>()) {
            let (tmp, saved, expected) = catalog();
            let damaged = if truncate {
                saved[..cut.index(saved.len())].to_vec()
            } else {
                let at = at.index(saved.len());
                [&saved[..at], &[byte], &saved[at..]].concat()
            };
            fs::write(tmp.path().join(layout::INDEX_FILE), &damaged).unwrap();
            let fresh = eager(tmp.path());
            prop_assert_eq!(fresh.list().unwrap(), expected.clone());
            prop_assert_eq!(fresh.records_read(), 5);
            let next = eager(tmp.path());
            prop_assert_eq!(next.list().unwrap(), expected);
            prop_assert_eq!(next.records_read(), 0);
        }

        /// Any bytes at all: the listing is the records', never a panic.
        #[test]
        fn arbitrary_bytes_as_an_index_never_change_the_listing(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
            let (tmp, _, expected) = catalog();
            fs::write(tmp.path().join(layout::INDEX_FILE), &bytes).unwrap();
            prop_assert_eq!(eager(tmp.path()).list().unwrap(), expected);
        }

    }

    proptest! {
        // Each case writes a catalog of 32 entries.
        #![proptest_config(ProptestConfig::with_cases(8))]

        /// The saved folders in any order (as another walk would leave them): the same listing,
        /// and only the few records met out of order before the index makes a table of places
        /// are read again.
        #[test]
        fn folders_saved_in_another_order_are_still_found(seed in any::<u64>()) {
            let (tmp, saved, expected) = catalog_of(32);
            let mut nodes: Vec<_> = parts_of(&saved).into_iter().flat_map(|part| part.as_object().unwrap().clone()).collect();
            // A cheap deterministic shuffle from the seed.
            let mut state = seed | 1;
            for i in (1..nodes.len()).rev() {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                nodes.swap(i, (state % (i as u64 + 1)) as usize);
            }
            // In two parts, so that the folders of one are met while the walk is in the other.
            let mut text = [String::from("{"), String::from("{")];
            for (i, (rel, node)) in nodes.iter().enumerate() {
                let part = &mut text[usize::from(i >= nodes.len() / 2)];
                if part.len() > 1 {
                    part.push(',');
                }
                part.push_str(&serde_json::to_string(rel).unwrap());
                part.push(':');
                part.push_str(&node.to_string());
            }
            let parts = text.map(|t| t + "}");
            fs::write(tmp.path().join(layout::INDEX_FILE), index_of(4, &parts)).unwrap();
            let fresh = eager(tmp.path());
            prop_assert_eq!(fresh.list().unwrap(), expected.clone());
            prop_assert!(fresh.records_read() <= 4, "{} records read", fresh.records_read());
            // Saved again in walk order: the next process reads none.
            let next = eager(tmp.path());
            prop_assert_eq!(next.list().unwrap(), expected);
            prop_assert_eq!(next.records_read(), 0);
        }
    }
}
