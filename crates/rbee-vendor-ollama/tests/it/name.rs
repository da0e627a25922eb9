//! Property tests of the `ollama:` grammar: never panics, display round-trips, errors show an
//! example, and a bare spelling is claimed only without a `/`.

use proptest::prelude::*;
use rbee_vendor_ollama::{EXAMPLE, OllamaRef, claims_bare, parse_reference};

fn part() -> impl Strategy<Value = String> {
    "[A-Za-z0-9_][A-Za-z0-9_.-]{0,20}".prop_filter("no double dots", |s| !s.contains(".."))
}

fn namespace() -> impl Strategy<Value = String> {
    "[A-Za-z0-9_][A-Za-z0-9_-]{0,20}"
}

fn host() -> impl Strategy<Value = String> {
    (
        "[a-z0-9][a-z0-9-]{0,10}(\\.[a-z0-9][a-z0-9-]{0,10}){0,2}",
        prop::option::of(1u16..),
    )
        .prop_map(|(h, port)| match port {
            Some(p) => format!("{h}:{p}"),
            None => h,
        })
}

fn valid() -> impl Strategy<Value = String> {
    (
        prop::option::of(host()),
        prop::option::of(namespace()),
        part(),
        prop::option::of(part()),
    )
        .prop_map(|(host, ns, model, tag)| {
            let mut s = String::from("ollama:");
            match (host, ns) {
                (Some(h), ns) => {
                    s.push_str(&format!("{h}/{}/", ns.unwrap_or_else(|| "library".into())))
                }
                (None, Some(ns)) => s.push_str(&format!("{ns}/")),
                (None, None) => {}
            }
            s.push_str(&model);
            if let Some(t) = tag {
                s.push(':');
                s.push_str(&t);
            }
            s
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn any_input_parses_or_fails_with_an_example(input in "\\PC{0,60}") {
        if let Err(e) = parse_reference(&input) {
            prop_assert!(e.to_string().contains(EXAMPLE));
        }
        let _ = claims_bare(&input);
    }

    #[test]
    fn shaped_input_never_panics(input in "(ollama:)?[a-z0-9:/._@-]{0,40}") {
        if let Ok(r) = parse_reference(&input) {
            prop_assert_eq!(parse_reference(&r.to_string()).unwrap(), r);
        }
    }

    #[test]
    fn valid_names_round_trip_and_stay_safe_folder_names(input in valid()) {
        let r: OllamaRef = input.parse().map_err(|e| TestCaseError::fail(format!("{input}: {e}")))?;
        prop_assert_eq!(parse_reference(&r.to_string()).unwrap(), r.clone());
        for segment in r.store_segments() {
            prop_assert!(!segment.is_empty() && segment != "." && segment != "..");
            prop_assert!(!segment.contains('/') && !segment.contains('\\'));
        }
    }

    #[test]
    fn bare_claims_need_a_tag_and_no_slash(input in "[a-z0-9./:_-]{1,30}") {
        if claims_bare(&input) {
            prop_assert!(!input.contains('/') && input.contains(':'));
        }
    }
}
