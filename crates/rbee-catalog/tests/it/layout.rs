//! A catalog written by this layout keeps working: records placed by hand at the folders the
//! current layout uses are found by reference and by id. Changing how references map to
//! folders (or ids) breaks existing users' catalogs and fails here.

use rbee_artifact::ArtifactRef;
use rbee_catalog::{ArtifactStatus, Catalog};

/// (reference, folder below the root, id).
const ENTRIES: [(&str, &str, &str); 5] = [
    (
        "hf:TheBloke/TinyLlama-1.1B-Chat-v1.0-GGUF:Q4_K_M",
        "hf/TheBloke/TinyLlama-1.1B-Chat-v1.0-GGUF/Q4_K_M",
        "hf--TheBloke--TinyLlama-1.1B-Chat-v1.0-GGUF--Q4_K_M",
    ),
    (
        "hf:org/repo@v2",
        "hf/org/repo/default@v2",
        "hf--org--repo--default@v2",
    ),
    (
        "gh:owner/repo@b1/m.gguf",
        "gh/owner/repo/b1+m.gguf",
        "gh--owner--repo--b1+m.gguf",
    ),
    (
        "file:/data/models/tiny.gguf",
        "file/tiny.gguf-7d126bad",
        "file--tiny.gguf-7d126bad",
    ),
    (
        "https://example.com/models/tiny.gguf",
        "url/example.com/tiny.gguf-f7145ca8",
        "url--example.com--tiny.gguf-f7145ca8",
    ),
];

const GGUF_SHA256: &str = "b83633aa785344791618f2fddf131b010ea04912a60430760b070bad293f65bd";

#[test]
fn entries_written_by_the_current_layout_are_found() {
    crate::register();
    let root = tempfile::tempdir().unwrap();
    for (reference, folder, id) in ENTRIES {
        let dir = root.path().join(folder);
        std::fs::create_dir_all(dir.join("files")).unwrap();
        std::fs::write(dir.join("files/m.gguf"), b"GGUF").unwrap();
        let scheme = reference.split(':').next().unwrap().replace("https", "url");
        let record = format!(
            r#"{{
  "schema": 1,
  "id": "{id}",
  "reference": "{reference}",
  "scheme": "{scheme}",
  "revision": null,
  "files": [{{"path": "m.gguf", "size": 4, "sha256": "{GGUF_SHA256}"}}],
  "status": {{"state": "ready"}},
  "created_at": "2026-01-01T00:00:00Z",
  "updated_at": "2026-01-01T00:00:00Z"
}}"#
        );
        std::fs::write(dir.join("metadata.json"), record).unwrap();
    }
    let catalog = Catalog::open(root.path()).unwrap();
    for (reference, folder, id) in ENTRIES {
        let parsed: ArtifactRef = reference.parse().unwrap();
        let found = catalog
            .find(&parsed)
            .unwrap()
            .unwrap_or_else(|| panic!("{reference} is no longer found at {folder}"));
        assert_eq!(found.dir, root.path().join(folder), "{reference}");
        assert_eq!(found.record.id, id);
        assert_eq!(found.record.status, ArtifactStatus::Ready, "{reference}");
        let by_id = catalog.get(id).unwrap().expect(id);
        assert_eq!(by_id.dir, found.dir);
    }
    assert_eq!(catalog.list().unwrap().len(), ENTRIES.len());
}
