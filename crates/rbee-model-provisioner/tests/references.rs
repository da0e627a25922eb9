//! The references of every vendor of this build together: which vendor reads each spelling,
//! errors that name the bad part, canonical forms, pins, and catalog keys (the folders of
//! existing catalogs: never changed).

use std::path::Path;

use rbee_artifact::{ArtifactRef, CatalogKey, RefError, RefErrorKind};
use rbee_model_provisioner::register_references;
use rbee_vendor_huggingface::HfRef;
use rbee_vendor_local::LocalRef;
use rbee_vendor_ollama::OllamaRef;
use rbee_vendor_url::UrlRef;

#[test]
fn file_and_url_forms() {
    register_references();
    let r: ArtifactRef = "file:/data/m.gguf".parse().unwrap();
    assert_eq!(r.to_string(), "file:/data/m.gguf");
    let r: ArtifactRef = "file:///data/m.gguf".parse().unwrap();
    assert_eq!(r.to_string(), "file:/data/m.gguf");
    let r: ArtifactRef = "file:models/m.gguf".parse().unwrap();
    assert!(
        r.get::<LocalRef>()
            .is_some_and(|l| l.path == Path::new("models/m.gguf"))
    );
    let digest = "ab".repeat(32);
    let r: ArtifactRef = format!("https://example.com/a/m.gguf#sha256={digest}")
        .parse()
        .unwrap();
    let Some(u) = r.get::<UrlRef>() else { panic!() };
    assert_eq!(u.url.as_str(), "https://example.com/a/m.gguf");
    assert_eq!(u.sha256.as_ref().unwrap().to_string(), digest);
    assert!(r.is_pinned());
}

fn err(s: &str) -> RefError {
    s.parse::<ArtifactRef>().expect_err(s)
}

#[test]
fn errors_name_the_bad_part() {
    register_references();
    assert_eq!(err("").kind, RefErrorKind::Empty);
    assert!(
        matches!(err("s3:bucket/key").kind, RefErrorKind::UnknownScheme { scheme } if scheme == "s3")
    );
    assert!(matches!(
        err("hf:org/repo/../x").kind,
        RefErrorKind::Invalid {
            part: "path segment",
            ..
        }
    ));
    assert!(matches!(
        err("hf:org/../x").kind,
        RefErrorKind::Invalid {
            part: "repository name",
            ..
        }
    ));
    assert!(
        matches!(err("hf:org//x").kind, RefErrorKind::Missing { part } if part.starts_with("repository"))
    );
    assert!(matches!(
        err("hf:org/repo:").kind,
        RefErrorKind::Missing { .. }
    ));
    assert!(matches!(
        err("hf:org/repo:Q4 K").kind,
        RefErrorKind::Invalid {
            part: "quantization",
            ..
        }
    ));
    assert!(matches!(
        err("hf:org/re po").kind,
        RefErrorKind::Invalid {
            part: "repository name",
            ..
        }
    ));
    assert!(matches!(
        err("hf:o/r\nx").kind,
        RefErrorKind::ControlCharacter { position: 6 }
    ));
    assert!(matches!(
        err("hf:o/r\u{0}x").kind,
        RefErrorKind::ControlCharacter { position: 6 }
    ));
    assert!(matches!(
        err("tinyllama").kind,
        RefErrorKind::Missing { .. }
    ));
    assert!(matches!(
        err("hf:org/repo//abs").kind,
        RefErrorKind::Invalid { .. }
    ));
    assert!(matches!(
        err("gh:o/r/a/b").kind,
        RefErrorKind::Invalid {
            part: "asset name",
            ..
        }
    ));
    assert!(matches!(
        err("https://huggingface.co/datasets/x/y").kind,
        RefErrorKind::Unsupported(_)
    ));
    assert!(matches!(
        err("https://u:p@example.com/m.gguf").kind,
        RefErrorKind::Unsupported(_)
    ));
    assert!(matches!(
        err("https://e.com/m.gguf#md5=1").kind,
        RefErrorKind::Invalid {
            part: "URL fragment",
            ..
        }
    ));
    let e = err("hf:org/repo/../x");
    let msg = e.to_string();
    assert!(
        msg.contains("`..`") && msg.contains("hf:TheBloke/"),
        "{msg}"
    );
}

#[test]
fn a_signed_url_is_shown_redacted_and_handed_on_whole() {
    register_references();
    let signed = "https://h.example/m.gguf?X-Amz-Signature=abc&v=1";
    let r: ArtifactRef = signed.parse().unwrap();
    assert_eq!(
        r.to_string(),
        "https://h.example/m.gguf?X-Amz-Signature=REDACTED&v=1"
    );
    assert_eq!(r.to_request_string(), signed);
    assert_eq!(r.to_request_string().parse::<ArtifactRef>().unwrap(), r);
    let plain: ArtifactRef = "hf:o/r:Q8_0".parse().unwrap();
    assert_eq!(plain.to_request_string(), plain.to_string());
}

#[test]
fn pinned() {
    register_references();
    assert!(!"hf:o/r".parse::<ArtifactRef>().unwrap().is_pinned());
    let sha = "a".repeat(40);
    assert!(
        format!("hf:o/r@{sha}")
            .parse::<ArtifactRef>()
            .unwrap()
            .is_pinned()
    );
    assert!("gh:o/r@v1".parse::<ArtifactRef>().unwrap().is_pinned());
}

fn key(s: &str) -> CatalogKey {
    CatalogKey::of(&s.parse().unwrap())
}

#[test]
fn ids_are_readable_and_round_trip() {
    register_references();
    for (r, id) in [
        ("hf:o/r", "hf--o--r--default"),
        ("hf:o/r@main:Q8_0", "hf--o--r--Q8_0"),
        ("hf:o/r@v2:Q8_0", "hf--o--r--Q8_0@v2"),
        ("gh:o/r@b1/m.gguf", "gh--o--r--b1+m.gguf"),
        ("gh:o/r", "gh--o--r--latest"),
    ] {
        let k = key(r);
        assert_eq!(k.id(), id);
        assert_eq!(CatalogKey::from_id(id), Some(k));
    }
    let k = key("hf:o/r/sub/x.gguf");
    assert!(k.id().starts_with("hf--o--r--file-sub_x.gguf-"));
    assert_eq!(CatalogKey::from_id(&k.id()), Some(k));
    let k = key("file:/data/my model.gguf");
    assert!(k.id().starts_with("file--my_model.gguf-"));
    assert_eq!(k.relative_dir().components().count(), 2);
    let k = key("https://example.com/a/b.gguf");
    assert!(k.id().starts_with("url--example.com--b.gguf-"));
}

#[test]
fn distinct_refs_get_distinct_dirs() {
    register_references();
    assert_ne!(key("gh:o/a--b"), key("gh:o/a-b"));
    assert_ne!(key("file:/x/m.gguf"), key("file:/y/m.gguf"));
    assert_ne!(key("hf:o/r/a/b.gguf"), key("hf:o/r/a_b.gguf"));
    assert_eq!(key("hf:o/r:q4_k_m"), key("hf:o/r@main:Q4_K_M"));
}

#[test]
fn foreign_ids_are_refused() {
    register_references();
    for bad in [
        "",
        "hf",
        "hf--..--x--y",
        "hf--a--b",
        "s3--a--b--c",
        "hf--a/b--c--d",
        "file--.hidden",
        "hf--a--b--c--d",
    ] {
        assert_eq!(CatalogKey::from_id(bad), None, "{bad}");
    }
}
#[test]
fn references_and_catalog_keys() {
    register_references();
    let r: ArtifactRef = "llama3.2:1b".parse().unwrap();
    assert!(r.get::<OllamaRef>().is_some_and(|o| o.tag == "1b"));
    assert_eq!(r.to_string(), "ollama:llama3.2:1b");
    let key = CatalogKey::of(&r);
    assert_eq!(
        key.id(),
        "ollama--registry.ollama.ai--library--llama3.2--1b"
    );
    assert_eq!(CatalogKey::from_id(&key.id()), Some(key));
    // The same model by every spelling is one entry.
    for same in [
        "ollama:llama3.2:1b",
        "ollama:library/llama3.2:1b",
        "ollama:registry.ollama.ai/library/llama3.2:1b",
    ] {
        assert_eq!(
            CatalogKey::of(&same.parse().unwrap()).id(),
            CatalogKey::of(&r).id()
        );
    }
    // A port's `:` is not a folder character: the segment gets a hash, still one folder.
    let port: ArtifactRef = "ollama:localhost:5000/team/m:v1".parse().unwrap();
    let id = CatalogKey::of(&port).id();
    assert!(id.starts_with("ollama--localhost_5000-"), "{id}");
    assert_eq!(CatalogKey::from_id(&id).map(|k| k.id()), Some(id));
    // With a `/`, the bare spelling stays HuggingFace's.
    let hf: ArtifactRef = "org/repo:Q4_K_M".parse().unwrap();
    assert!(hf.get::<HfRef>().is_some());
    let hf: ArtifactRef = "hf.co/org/repo:Q4_K_M".parse().unwrap();
    assert!(hf.get::<HfRef>().is_some());
}

/// A catalog written before vendors owned their references — records placed by hand at the
/// folders and ids that code gave every vendor — opens, and each entry is found by its
/// reference and by its id.
#[test]
fn a_catalog_written_before_vendors_were_plugins_still_opens() {
    register_references();
    // (reference, folder below the root, id), as the earlier code wrote them.
    const ENTRIES: [(&str, &str, &str); 6] = [
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
        (
            "ollama:llama3.2:1b",
            "ollama/registry.ollama.ai/library/llama3.2/1b",
            "ollama--registry.ollama.ai--library--llama3.2--1b",
        ),
    ];
    const GGUF_SHA256: &str = "b83633aa785344791618f2fddf131b010ea04912a60430760b070bad293f65bd";
    let root = tempfile::tempdir().unwrap();
    for (reference, folder, id) in ENTRIES {
        let dir = root.path().join(folder);
        std::fs::create_dir_all(dir.join("files")).unwrap();
        std::fs::write(dir.join("files/m.gguf"), b"GGUF").unwrap();
        let scheme = id.split("--").next().unwrap();
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
    let catalog = rbee_catalog::Catalog::open(root.path()).unwrap();
    for (reference, folder, id) in ENTRIES {
        let parsed: ArtifactRef = reference.parse().unwrap();
        assert_eq!(CatalogKey::of(&parsed).id(), id, "{reference}");
        assert_eq!(CatalogKey::from_id(id), Some(CatalogKey::of(&parsed)));
        let found = catalog
            .find(&parsed)
            .unwrap()
            .unwrap_or_else(|| panic!("{reference} is no longer found at {folder}"));
        assert_eq!(found.dir, root.path().join(folder), "{reference}");
        assert_eq!(found.record.reference, parsed, "{reference}");
        assert_eq!(found.record.scheme, parsed.scheme(), "{reference}");
        assert_eq!(catalog.get(id).unwrap().expect(id).dir, found.dir);
    }
    assert_eq!(catalog.list().unwrap().len(), ENTRIES.len());
}
