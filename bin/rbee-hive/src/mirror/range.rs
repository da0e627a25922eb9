//! Which bytes a request asks for: one `Range: bytes=…` (with `If-Range`), as the Hub's CDN
//! answers it.

use axum::http::{HeaderMap, header};

/// The part of a file to send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Wanted {
    /// All of it (no range, several ranges, a range that does not parse, or an `If-Range`
    /// that does not match).
    Whole,
    /// `[from, to)`, answered 206.
    Part(u64, u64),
    /// A range past the end: 416.
    Unsatisfiable,
}

/// What `headers` ask for of a file of `size` bytes whose entity tag is `etag` (unquoted).
pub(super) fn wanted(headers: &HeaderMap, size: u64, etag: &str) -> Wanted {
    let Some(range) = headers.get(header::RANGE).and_then(|v| v.to_str().ok()) else {
        return Wanted::Whole;
    };
    if let Some(if_range) = headers.get(header::IF_RANGE).and_then(|v| v.to_str().ok()) {
        // A strong comparison: only this file's own tag keeps the range.
        if if_range.trim() != format!("\"{etag}\"") {
            return Wanted::Whole;
        }
    }
    parse(range, size)
}

fn parse(range: &str, size: u64) -> Wanted {
    let Some(spec) = range.trim().strip_prefix("bytes=") else {
        return Wanted::Whole;
    };
    if spec.contains(',') {
        return Wanted::Whole;
    }
    let Some((a, b)) = spec.trim().split_once('-') else {
        return Wanted::Whole;
    };
    let num = |s: &str| -> Option<u64> {
        let s = s.trim();
        (!s.is_empty() && s.bytes().all(|c| c.is_ascii_digit()))
            .then(|| s.parse().ok())
            .flatten()
    };
    match (a.trim().is_empty(), num(a), num(b)) {
        // `-n`: the last n bytes.
        (true, _, Some(n)) => {
            if n == 0 || size == 0 {
                Wanted::Unsatisfiable
            } else {
                Wanted::Part(size.saturating_sub(n), size)
            }
        }
        (false, Some(from), end) if b.trim().is_empty() || end.is_some() => {
            if from >= size {
                return Wanted::Unsatisfiable;
            }
            match end {
                Some(last) if last < from => Wanted::Whole,
                Some(last) => Wanted::Part(from, last.saturating_add(1).min(size)),
                None => Wanted::Part(from, size),
            }
        }
        _ => Wanted::Whole,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn ranges() {
        assert_eq!(parse("bytes=0-9", 100), Wanted::Part(0, 10));
        assert_eq!(parse("bytes=90-", 100), Wanted::Part(90, 100));
        assert_eq!(parse("bytes=-10", 100), Wanted::Part(90, 100));
        assert_eq!(parse("bytes=-1000", 100), Wanted::Part(0, 100));
        assert_eq!(parse("bytes=50-5000", 100), Wanted::Part(50, 100));
        assert_eq!(parse("bytes=100-", 100), Wanted::Unsatisfiable);
        assert_eq!(parse("bytes=-0", 100), Wanted::Unsatisfiable);
        assert_eq!(parse("bytes=0-1,5-6", 100), Wanted::Whole);
        assert_eq!(parse("bytes=9-1", 100), Wanted::Whole);
        assert_eq!(parse("items=0-1", 100), Wanted::Whole);
        assert_eq!(parse("bytes=+1-2", 100), Wanted::Whole);
        let mut h = HeaderMap::new();
        h.insert(header::RANGE, "bytes=5-".parse().unwrap());
        assert_eq!(wanted(&h, 10, "abc"), Wanted::Part(5, 10));
        h.insert(header::IF_RANGE, "\"abc\"".parse().unwrap());
        assert_eq!(wanted(&h, 10, "abc"), Wanted::Part(5, 10));
        h.insert(header::IF_RANGE, "\"old\"".parse().unwrap());
        assert_eq!(wanted(&h, 10, "abc"), Wanted::Whole);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]
        /// Whatever the header says, a part lies inside the file and is not empty.
        #[test]
        fn parts_stay_inside(text in "bytes=[0-9 ,+-]{0,24}|\\PC{0,24}", size in 0u64..1_000_000) {
            if let Wanted::Part(from, to) = parse(&text, size) {
                prop_assert!(from < to && to <= size, "{text:?} {size} → {from}..{to}");
            }
        }
    }
}
