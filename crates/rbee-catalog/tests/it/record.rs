//! Property tests of `metadata.json` decoding: arbitrary bytes and mutated valid records never
//! panic, errors say what is wrong, whatever decodes keeps the record's invariants, and a
//! record that does not decode lists as damaged without hiding the rest of the catalog.

use proptest::prelude::*;
use rbee_artifact::check_file_path;
use rbee_artifact::{ArtifactRef, CatalogKey, Selection, Sha256Digest};
use rbee_catalog::{ArtifactRecord, ArtifactStatus, Catalog, FileRecord, Listing, RECORD_SCHEMA};
use serde_json::Value;

fn valid_record(reference: &str, files: &[(&str, u64)], include: Vec<String>) -> ArtifactRecord {
    // Strategies build records before a test's body runs, so registering there is too late.
    crate::register();
    let reference: ArtifactRef = reference.parse().unwrap();
    let selection = Selection::new(include, vec![]);
    ArtifactRecord {
        schema: RECORD_SCHEMA,
        id: CatalogKey::of_request(&reference, &selection).id(),
        scheme: reference.scheme(),
        reference,
        selection,
        revision: Some("0123456789abcdef0123456789abcdef01234567".into()),
        files: files
            .iter()
            .map(|(path, size)| FileRecord {
                path: path.to_string(),
                size: *size,
                sha256: Some(Sha256Digest::of(path.as_bytes())),
                version: Some("\"etag\"".into()),
                source: Some("https://example.com/x".into()),
            })
            .collect(),
        status: ArtifactStatus::Failed {
            error: "verification failed".into(),
            code: "integrity".into(),
            suspect: vec![files[0].0.to_string()],
        },
        created_at: chrono::Utc::now(),
        updated_at: chrono::Utc::now(),
        notes: vec!["a note".into()],
    }
}

fn record_strategy() -> impl Strategy<Value = ArtifactRecord> {
    let reference = prop_oneof![
        Just("hf:org/repo:Q4_K_M"),
        Just("hf:org/repo@0123456789abcdef0123456789abcdef01234567/sub/m.gguf"),
        Just("gh:o/r@v1/m.gguf"),
        Just("https://example.com/a/m.gguf?sig=abc&file=1"),
        Just("file:/data/m.gguf"),
    ];
    let files =
        prop::collection::btree_map("[a-z]{1,6}(/[a-z]{1,6}){0,2}\\.bin", any::<u64>(), 1..4);
    let include = prop::collection::vec("[a-z*.]{1,6}", 0..3);
    (reference, files, include).prop_map(|(r, files, include)| {
        let files: Vec<(&str, u64)> = files.iter().map(|(p, s)| (p.as_str(), *s)).collect();
        valid_record(r, &files, include)
    })
}

/// Text that might end up in a record field: hostile paths, control characters, junk.
fn hostile_text() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("../../victim".to_string()),
        Just("/etc/passwd".to_string()),
        Just("a/../../b".to_string()),
        Just("a//b".to_string()),
        Just("".to_string()),
        Just("model.gguf.part".to_string()),
        Just("x\u{1b}[2Jy".to_string()),
        Just("a\\..\\b".to_string()),
        Just("hf--..--x--y".to_string()),
        any::<String>(),
    ]
}

/// Whatever decodes holds what every reader relies on.
fn check_invariants(record: &ArtifactRecord) -> Result<(), TestCaseError> {
    prop_assert_eq!(&record.id, &record.key().id());
    prop_assert_eq!(record.scheme, record.reference.scheme());
    let mut seen = std::collections::HashSet::new();
    for f in &record.files {
        prop_assert!(check_file_path(&f.path).is_ok(), "{:?}", f.path);
        prop_assert!(seen.insert(f.path.clone()));
    }
    let _ = record.total_size();
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1000))]

    #[test]
    fn arbitrary_bytes_never_panic_and_errors_say_why(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        crate::register();
        match ArtifactRecord::decode(&bytes) {
            Ok(record) => check_invariants(&record)?,
            Err(why) => prop_assert!(!why.is_empty()),
        }
    }

    #[test]
    fn a_valid_record_round_trips(record in record_strategy()) {
        crate::register();
        let json = serde_json::to_vec_pretty(&record).unwrap();
        let back = ArtifactRecord::decode(&json).map_err(TestCaseError::fail)?;
        check_invariants(&back)?;
        // What is written is what is read back (a signed URL is written redacted).
        prop_assert_eq!(serde_json::to_value(&back).unwrap(), serde_json::to_value(&record).unwrap());
        prop_assert!(!String::from_utf8_lossy(&json).contains("sig=abc"));
    }

    #[test]
    fn mutated_bytes_of_a_valid_record_never_panic(
        record in record_strategy(),
        edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>(), 0u8..3), 1..8),
    ) {
        crate::register();
        let mut json = serde_json::to_vec(&record).unwrap();
        for (at, byte, how) in edits {
            let i = at.index(json.len().max(1));
            match how {
                0 if !json.is_empty() => json[i] = byte,
                1 => json.insert(i.min(json.len()), byte),
                _ if !json.is_empty() => { json.remove(i); }
                _ => {}
            }
        }
        match ArtifactRecord::decode(&json) {
            Ok(record) => check_invariants(&record)?,
            Err(why) => prop_assert!(!why.is_empty()),
        }
    }

    #[test]
    fn hostile_fields_are_refused_or_harmless(
        record in record_strategy(),
        field in 0usize..7,
        text in hostile_text(),
        number in any::<u64>(),
    ) {
        crate::register();
        let mut value = serde_json::to_value(&record).unwrap();
        match field {
            0 => value["files"][0]["path"] = Value::String(text),
            1 => value["id"] = Value::String(text),
            2 => value["reference"] = Value::String(text),
            3 => value["files"][0]["sha256"] = Value::String(text),
            4 => value["files"][0]["size"] = Value::from(number),
            5 => value["status"] = serde_json::json!({"state": text}),
            _ => value["files"] = serde_json::json!([value["files"][0].clone(), value["files"][0].clone()]),
        }
        let json = serde_json::to_vec(&value).unwrap();
        match ArtifactRecord::decode(&json) {
            Ok(decoded) => check_invariants(&decoded)?,
            Err(why) => prop_assert!(!why.is_empty()),
        }
    }
}

proptest! {
    // Each case writes a small catalog to a temp folder.
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn a_record_that_does_not_decode_lists_as_damaged(
        bytes in prop::collection::vec(any::<u8>(), 0..256),
        record in record_strategy(),
    ) {
        crate::register();
        let tmp = tempfile::tempdir().unwrap();
        let catalog = Catalog::open(tmp.path()).unwrap();
        let good = valid_record("hf:org/good:Q8_0", &[("m.gguf", 1)], vec![]);
        catalog.save(&good).unwrap();
        // The tampered record sits in the folder of `record`'s key.
        let dir = catalog.entry_dir(&record.key());
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("metadata.json"), &bytes).unwrap();
        let listing = catalog.list().unwrap();
        prop_assert_eq!(listing.len(), 2);
        let mut saw_good = false;
        for item in &listing {
            match item {
                Listing::Entry(e) if e.record.id == good.id => saw_good = true,
                Listing::Entry(e) => check_invariants(&e.record)?,
                Listing::Damaged { reason, .. } => prop_assert!(!reason.is_empty()),
            }
        }
        prop_assert!(saw_good);
        // Reading it by key agrees with the listing, and removing it works.
        let key = record.key();
        match catalog.read(&key) {
            Ok(Some(e)) => check_invariants(&e.record)?,
            Ok(None) => prop_assert!(false, "a record file that is there reads as absent"),
            Err(e) => prop_assert_eq!(e.code(), "damaged"),
        }
        catalog.remove(&key.id()).unwrap();
        prop_assert_eq!(catalog.list().unwrap().len(), 1);
    }
}
