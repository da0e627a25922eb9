//! What a ranged answer says: `Content-Range` and the validators that identify the remote
//! version; and what a `Range` request asks.

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

/// What a `Range` request header asks of a resource: as servers that ignore what they cannot
/// serve answer it (one range only; several ranges, or one that does not parse, get it all).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RangeRequest {
    /// All of it.
    Whole,
    /// `[start, end)`, non-empty and inside the resource: a `206`.
    Part(u64, u64),
    /// A range past the end: a `416`.
    Unsatisfiable,
}

/// Parses a `Range` request header (`bytes=0-99`, `bytes=100-`, `bytes=-100`) against a
/// resource of `size` bytes.
pub fn parse_range_request(value: &str, size: u64) -> RangeRequest {
    let Some(spec) = value.trim().strip_prefix("bytes=") else {
        return RangeRequest::Whole;
    };
    if spec.contains(',') {
        return RangeRequest::Whole;
    }
    let Some((a, b)) = spec.trim().split_once('-') else {
        return RangeRequest::Whole;
    };
    let (a, b) = (a.trim(), b.trim());
    // Digits only: `parse` would also take a leading `+`.
    let num = |s: &str| -> Option<u64> {
        (!s.is_empty() && s.bytes().all(|c| c.is_ascii_digit()))
            .then(|| s.parse().ok())
            .flatten()
    };
    match (a.is_empty(), num(a), num(b)) {
        // `-n`: the last n bytes.
        (true, _, Some(n)) => {
            if n == 0 || size == 0 {
                RangeRequest::Unsatisfiable
            } else {
                RangeRequest::Part(size.saturating_sub(n), size)
            }
        }
        (false, Some(from), end) if b.is_empty() || end.is_some() => {
            if from >= size {
                return RangeRequest::Unsatisfiable;
            }
            match end {
                Some(last) if last < from => RangeRequest::Whole,
                Some(last) => RangeRequest::Part(from, last.saturating_add(1).min(size)),
                None => RangeRequest::Part(from, size),
            }
        }
        _ => RangeRequest::Whole,
    }
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

    #[test]
    fn range_requests() {
        use RangeRequest::*;
        assert_eq!(parse_range_request("bytes=0-9", 100), Part(0, 10));
        assert_eq!(parse_range_request("bytes=90-", 100), Part(90, 100));
        assert_eq!(parse_range_request("bytes=-10", 100), Part(90, 100));
        assert_eq!(parse_range_request("bytes=-1000", 100), Part(0, 100));
        assert_eq!(parse_range_request("bytes=50-5000", 100), Part(50, 100));
        assert_eq!(parse_range_request("bytes=100-", 100), Unsatisfiable);
        assert_eq!(parse_range_request("bytes=-0", 100), Unsatisfiable);
        assert_eq!(parse_range_request("bytes=0-1,5-6", 100), Whole);
        assert_eq!(parse_range_request("bytes=9-1", 100), Whole);
        assert_eq!(parse_range_request("items=0-1", 100), Whole);
        assert_eq!(parse_range_request("bytes=+1-2", 100), Whole);
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

            /// Whatever a `Range` header says, a part lies inside the resource and is not empty.
            #[test]
            fn range_request_parts_stay_inside(
                text in "bytes=[0-9 ,+-]{0,24}|\\PC{0,24}",
                size in 0u64..1_000_000,
            ) {
                if let RangeRequest::Part(from, to) = parse_range_request(&text, size) {
                    prop_assert!(from < to && to <= size, "{text:?} {size} → {from}..{to}");
                }
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
