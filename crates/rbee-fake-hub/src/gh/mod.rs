//! The GitHub releases protocol over `<root>/gh/<owner>/<repo>/<tag>/<asset files>`.
//!
//! A tag folder's name is percent-decoded into the tag; files starting with `.` are not
//! assets; `<tag>/.release.json` may set `name`, `draft`, `prerelease`, `published_at`
//! (RFC 3339), `body` and `target_commitish`; `<repo>/.repo.json` may set `private` and
//! accepted `tokens`. See the README.

mod api;
mod budget;
mod json;
mod release;

pub(crate) use api::{api, browser_download};

#[cfg(test)]
mod tests {
    use std::cmp::Ordering;

    use super::release::{natural_cmp, stable_id};

    #[test]
    fn natural_order_of_tags() {
        assert_eq!(natural_cmp("v1.10.0", "v1.9.0"), Ordering::Greater);
        assert_eq!(natural_cmp("b4500", "b999"), Ordering::Greater);
        assert_eq!(natural_cmp("v1.0", "v1.0"), Ordering::Equal);
        assert_eq!(natural_cmp("v1.0", "v1.0-rc1"), Ordering::Less);
    }

    #[test]
    fn ids_are_stable_and_json_safe() {
        let a = stable_id("asset", "o/r/v1/x.gguf");
        assert_eq!(a, stable_id("asset", "o/r/v1/x.gguf"));
        assert_ne!(a, stable_id("asset", "o/r/v1/y.gguf"));
        assert!(a > 0 && a < (1 << 48));
    }
}
