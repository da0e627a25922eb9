//! Property tests of the reference grammars of every vendor together, catalog keys and URL
//! redaction.

use proptest::prelude::*;
use rbee_artifact::{
    ArtifactRef, CatalogKey, REDACTED, Selection, is_credential_param, redacted_url,
};
use rbee_model_provisioner::register_references;
use rbee_vendor_url::UrlRef;

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
        register_references();
        let _ = s.parse::<ArtifactRef>();
    }

    #[test]
    fn parsing_never_panics_on_reference_like_text(s in "(hf|gh|file|https?|x)?:?(//)?[A-Za-z0-9/@:.%*#=_ -]{0,40}") {
        register_references();
        if let Ok(r) = s.parse::<ArtifactRef>() {
            // Whatever parses displays to something that parses to the same value.
            let shown = r.to_string();
            prop_assert_eq!(shown.parse::<ArtifactRef>().unwrap(), r);
        }
    }

    #[test]
    fn display_then_parse_round_trips(s in valid_reference()) {
        register_references();
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

    #[test]
    fn a_signed_url_never_shows_its_credentials_and_keeps_its_entry(
        path in "[a-z0-9]{1,8}(/[a-z0-9]{1,8}){0,2}\\.gguf",
        plain in prop::collection::vec(("(file|rev|part|v)", "[A-Za-z0-9._-]{0,8}"), 0..3),
        secrets in prop::collection::vec((
            prop_oneof![
                Just("X-Amz-Signature"), Just("X-Amz-Credential"), Just("X-Amz-Security-Token"),
                Just("sig"), Just("Signature"), Just("token"), Just("access_token"), Just("key"),
                Just("Expires"), Just("Policy"), Just("Key-Pair-Id"), Just("X-Goog-Signature"),
            ],
            "[A-Za-z0-9%+/=_-]{6,24}",
        ), 1..4),
        other in "[A-Za-z0-9_-]{6,24}",
    ) {
        register_references();
        let mut query: Vec<String> = plain.iter().map(|(k, v)| format!("{k}={v}")).collect();
        query.extend(secrets.iter().map(|(k, v)| format!("{k}={v}")));
        let signed = format!("https://cdn.example/{path}?{}", query.join("&"));
        let r: ArtifactRef = signed.parse().map_err(|e| TestCaseError::fail(format!("{signed}: {e}")))?;
        let shown = r.to_string();
        for (name, value) in &secrets {
            prop_assert!(is_credential_param(name));
            prop_assert!(!shown.contains(&format!("{name}={value}")), "{} shows {}", shown, value);
        }
        for (k, v) in &plain {
            prop_assert!(shown.contains(&format!("{k}={v}")), "{} lost {}={}", shown, k, v);
        }
        // The record's form finds the same entry, and so does the same URL signed again.
        let recorded: ArtifactRef = shown.parse().unwrap();
        prop_assert_eq!(CatalogKey::of(&recorded), CatalogKey::of(&r));
        prop_assert_eq!(recorded.to_string(), shown.clone());
        let resigned = signed.replace(
            &format!("{}={}", secrets[0].0, secrets[0].1),
            &format!("{}={other}", secrets[0].0),
        );
        let resigned: ArtifactRef = resigned.parse().unwrap();
        prop_assert_eq!(CatalogKey::of(&resigned), CatalogKey::of(&r));
        let Some(u) = r.get::<UrlRef>() else { panic!("{r:?}") };
        prop_assert_eq!(u.url.as_str(), signed.as_str());
        let debug = format!("{r:?}");
        let first_secret = format!("{}={}", secrets[0].0, secrets[0].1);
        prop_assert!(!debug.contains(&first_secret), "{} in {}", first_secret, debug);
        let once = redacted_url(&u.url);
        prop_assert_eq!(redacted_url(&once), once.clone());
        prop_assert!(once.as_str().contains(REDACTED));
    }

    #[test]
    fn a_selection_gets_its_own_entry_that_maps_back(
        s in valid_reference(),
        include in prop::collection::vec("[A-Za-z0-9*?._/-]{1,12}", 0..4),
        exclude in prop::collection::vec("[A-Za-z0-9*?._/-]{1,12}", 0..4),
    ) {
        register_references();
        let r: ArtifactRef = s.parse().unwrap();
        let selection = Selection::new(include.clone(), exclude.clone());
        let key = CatalogKey::of_request(&r, &selection);
        prop_assert_eq!(CatalogKey::from_id(&key.id()), Some(key.clone()));
        prop_assert_eq!(selection.is_empty(), key == CatalogKey::of(&r));
        let mut reversed = include;
        reversed.reverse();
        prop_assert_eq!(CatalogKey::of_request(&r, &Selection::new(reversed, exclude)), key.clone());
        prop_assert!(key.relative_dir().components().all(|c| matches!(c, std::path::Component::Normal(_))));
    }
}
