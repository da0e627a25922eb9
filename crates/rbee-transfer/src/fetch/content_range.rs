//! What a ranged answer says: `Content-Range` and the validators that identify the remote version.

use reqwest::header::{ETAG, HeaderMap, HeaderValue, LAST_MODIFIED};

use crate::state::Validators;

/// The span a `206` says it carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ContentRange {
    /// First byte.
    pub start: u64,
    /// Exclusive.
    pub end: u64,
    /// The whole resource's size, when told.
    pub total: Option<u64>,
}

/// `bytes 0-99/1000` or `bytes 0-99/*`.
pub fn parse_content_range(v: &str) -> Option<ContentRange> {
    let rest = v.trim().strip_prefix("bytes ")?;
    let (range, total) = rest.split_once('/')?;
    let (a, b) = range.split_once('-')?;
    let start: u64 = a.trim().parse().ok()?;
    let last: u64 = b.trim().parse().ok()?;
    let total = match total.trim() {
        "*" => None,
        t => Some(t.parse::<u64>().ok()?),
    };
    if last < start || total.is_some_and(|t| last >= t) {
        return None;
    }
    Some(ContentRange {
        start,
        // A hostile `bytes 0-18446744073709551615/*` must not overflow.
        end: last.checked_add(1)?,
        total,
    })
}

/// `bytes */1000`.
pub(crate) fn parse_unsatisfied_total(v: &str) -> Option<u64> {
    v.trim().strip_prefix("bytes */")?.trim().parse().ok()
}

pub(super) fn validators_of(headers: &HeaderMap, total: Option<u64>) -> Validators {
    let text = |name| {
        headers
            .get(name)
            .and_then(|v: &HeaderValue| v.to_str().ok())
            .map(str::to_string)
    };
    Validators {
        total,
        etag: text(ETAG),
        last_modified: text(LAST_MODIFIED),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_ranges() {
        assert_eq!(
            parse_content_range("bytes 0-99/1000"),
            Some(ContentRange {
                start: 0,
                end: 100,
                total: Some(1000)
            })
        );
        assert_eq!(
            parse_content_range("bytes 5-5/*").map(|c| (c.end, c.total)),
            Some((6, None))
        );
        assert_eq!(parse_content_range("bytes 10-5/100"), None);
        assert_eq!(parse_content_range("bytes 0-100/100"), None);
        assert_eq!(parse_content_range("items 0-1/2"), None);
        assert_eq!(parse_unsatisfied_total("bytes */77"), Some(77));
    }

    mod fuzz {
        use super::super::*;
        use proptest::prelude::*;

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(2000))]

            /// Any header text: no panic, and what parses is a sane range.
            #[test]
            fn content_range_never_panics(text in "\\PC{0,64}") {
                if let Some(cr) = parse_content_range(&text) {
                    prop_assert!(cr.start < cr.end);
                    prop_assert!(cr.total.is_none_or(|t| cr.end <= t));
                }
                let _ = parse_unsatisfied_total(&text);
            }

            /// Near-valid headers with extreme numbers (overflow at `u64::MAX`).
            #[test]
            fn content_range_extremes(
                a in prop_oneof![Just(0u64), Just(u64::MAX), any::<u64>()],
                b in prop_oneof![Just(0u64), Just(u64::MAX), any::<u64>()],
                t in proptest::option::of(prop_oneof![Just(0u64), Just(u64::MAX), any::<u64>()]),
                pad in "[ ]{0,2}",
            ) {
                let total = t.map_or("*".to_string(), |t| t.to_string());
                let text = format!("bytes {pad}{a}-{b}/{total}{pad}");
                match parse_content_range(&text) {
                    Some(cr) => {
                        prop_assert_eq!(cr.start, a);
                        prop_assert_eq!(cr.end - 1, b);
                        prop_assert!(a <= b && t.is_none_or(|t| b < t));
                    }
                    None => prop_assert!(b < a || t.is_some_and(|t| b >= t) || b == u64::MAX || !pad.is_empty()),
                }
            }
        }
    }
}
