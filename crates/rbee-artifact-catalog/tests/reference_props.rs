//! Property tests of the reference grammar.

use proptest::prelude::*;
use rbee_artifact_catalog::{ArtifactRef, CatalogKey};

fn name() -> impl Strategy<Value = String> {
    "[A-Za-z0-9][A-Za-z0-9._-]{0,20}".prop_filter("not dots", |s| s != "." && s != "..")
}

fn rev() -> impl Strategy<Value = Option<String>> {
    prop_oneof![
        Just(None),
        "[A-Za-z0-9][A-Za-z0-9._+-]{0,12}".prop_map(Some),
        "[0-9a-f]{40}".prop_map(Some),
        (1u32..999).prop_map(|n| Some(format!("refs/pr/{n}"))),
        "[a-z]{1,5}/[a-z]{1,5}".prop_map(Some),
    ]
    .prop_filter("no ..", |r| r.as_deref().is_none_or(|r| !r.contains("..")))
}

fn valid_reference() -> impl Strategy<Value = String> {
    let path = prop::collection::vec("[A-Za-z0-9_-][A-Za-z0-9._-]{0,10}", 1..4)
        .prop_map(|segs| segs.join("/"));
    prop_oneof![
        (name(), name(), rev(), prop::option::of("[A-Za-z0-9_]{1,8}")).prop_map(
            |(o, r, rev, q)| {
                let mut s = format!("hf:{o}/{r}");
                if let Some(rev) = rev {
                    s.push('@');
                    s.push_str(&if rev.starts_with("refs/pr/") {
                        rev
                    } else {
                        rev.replace('/', "%2F")
                    });
                }
                if let Some(q) = q {
                    s.push(':');
                    s.push_str(&q);
                }
                s
            }
        ),
        (name(), name(), path.clone()).prop_map(|(o, r, p)| format!("hf:{o}/{r}/{p}")),
        (
            name(),
            name(),
            prop::option::of("[A-Za-z0-9][A-Za-z0-9-]{0,8}"),
            prop::option::of("[A-Za-z0-9*._-]{1,12}")
        )
            .prop_filter("asset not dots", |(_, _, _, a)| a
                .as_deref()
                .is_none_or(|a| a != "." && a != ".."))
            .prop_map(|(o, r, t, a)| {
                let mut s = format!("gh:{o}/{r}");
                if let Some(t) = t {
                    s.push('@');
                    s.push_str(&t);
                }
                if let Some(a) = a {
                    s.push('/');
                    s.push_str(&a);
                }
                s
            }),
        path.clone().prop_map(|p| format!("file:/{p}")),
        (path, prop::option::of("[0-9a-f]{64}")).prop_map(|(p, d)| match d {
            Some(d) => format!("https://example.com/{p}#sha256={d}"),
            None => format!("http://127.0.0.1:8080/{p}"),
        }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn parsing_never_panics(s in any::<String>()) {
        let _ = s.parse::<ArtifactRef>();
    }

    #[test]
    fn parsing_never_panics_on_reference_like_text(s in "(hf|gh|file|https?|x)?:?(//)?[A-Za-z0-9/@:.%*#=_ -]{0,40}") {
        if let Ok(r) = s.parse::<ArtifactRef>() {
            // Whatever parses displays to something that parses to the same value.
            let shown = r.to_string();
            prop_assert_eq!(shown.parse::<ArtifactRef>().unwrap(), r);
        }
    }

    #[test]
    fn display_then_parse_round_trips(s in valid_reference()) {
        let r: ArtifactRef = s.parse().map_err(|e| TestCaseError::fail(format!("{s}: {e}")))?;
        let shown = r.to_string();
        let back: ArtifactRef = shown.parse().map_err(|e| TestCaseError::fail(format!("{shown}: {e}")))?;
        prop_assert_eq!(&back, &r);
        prop_assert_eq!(back.to_string(), shown);
        // Every catalog id maps back to the same key, and never to a path outside the catalog.
        let key = CatalogKey::of(&r);
        prop_assert_eq!(CatalogKey::from_id(&key.id()), Some(key.clone()));
        prop_assert!(key.relative_dir().components().all(|c| matches!(c, std::path::Component::Normal(_))));
    }
}
