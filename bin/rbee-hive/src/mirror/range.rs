//! Which bytes a request asks for: one `Range: bytes=…` (with `If-Range`), as the Hub's CDN
//! answers it.

use axum::http::{HeaderMap, header};
pub(super) use rbee_transfer::RangeRequest as Wanted;

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
    rbee_transfer::parse_range_request(range, size)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn if_range_keeps_the_range_only_for_this_file() {
        let mut h = HeaderMap::new();
        h.insert(header::RANGE, "bytes=5-".parse().unwrap());
        assert_eq!(wanted(&h, 10, "abc"), Wanted::Part(5, 10));
        h.insert(header::IF_RANGE, "\"abc\"".parse().unwrap());
        assert_eq!(wanted(&h, 10, "abc"), Wanted::Part(5, 10));
        h.insert(header::IF_RANGE, "\"old\"".parse().unwrap());
        assert_eq!(wanted(&h, 10, "abc"), Wanted::Whole);
    }
}
