//! Recognising GitHub's rate-limit answers and turning them into a wait or a clear error.
//!
//! GitHub answers 403 or 429 when a limit is hit. The primary limit says so with
//! `X-RateLimit-Remaining: 0` and `X-RateLimit-Reset: <epoch seconds>`; secondary limits send
//! `Retry-After: <seconds>`, or nothing, in which case GitHub asks clients to wait at least a
//! minute. A 403 that has none of these (and does not say "rate limit") is an access problem.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rbee_artifact::Error;
use rbee_transfer::parse_retry_after;
use reqwest::header::{HeaderMap, RETRY_AFTER};

/// What GitHub asks clients to wait when a secondary limit gives no hint.
const UNSPECIFIED_WAIT: Duration = Duration::from_secs(60);

/// A rate-limited answer: how long until trying again makes sense.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RateLimit {
    /// How long to wait from `now`.
    pub(crate) wait: Duration,
    /// When the limit lifts.
    pub(crate) reset_at: SystemTime,
}

/// Whether a response with `status`, `headers` and GitHub's error `message` is a rate limit,
/// and if so for how long.
pub(crate) fn detect(
    status: u16,
    headers: &HeaderMap,
    message: Option<&str>,
    now: SystemTime,
) -> Option<RateLimit> {
    if status != 403 && status != 429 {
        return None;
    }
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let wait =
        if let Some(wait) = header(RETRY_AFTER.as_str()).and_then(|v| parse_retry_after(v, now)) {
            wait
        } else if header("x-ratelimit-remaining").map(str::trim) == Some("0") {
            header("x-ratelimit-reset")
                .and_then(|v| v.trim().parse::<u64>().ok())
                .map(|reset| {
                    (UNIX_EPOCH + Duration::from_secs(reset))
                        .duration_since(now)
                        .unwrap_or_default()
                        // The reset second itself may still be limited; a second more is cheap.
                        .saturating_add(Duration::from_secs(1))
                })
                .unwrap_or(UNSPECIFIED_WAIT)
        } else if status == 429
            || message.is_some_and(|m| m.to_ascii_lowercase().contains("rate limit"))
        {
            UNSPECIFIED_WAIT
        } else {
            return None;
        };
    Some(RateLimit {
        wait,
        reset_at: now + wait,
    })
}

/// The error for a limit not worth waiting for: when it resets (local time and "in N
/// minutes") and what helps.
pub(crate) fn exceeded(limit: &RateLimit, has_token: bool) -> Error {
    let local: chrono::DateTime<chrono::Local> = limit.reset_at.into();
    let advice = if has_token {
        "the token's quota is used up: wait until then, or use another token"
    } else {
        "set GITHUB_TOKEN (or GH_TOKEN) to a personal access token: authenticated requests get 5,000 an hour instead of 60"
    };
    Error::RateLimited {
        message: format!(
            "GitHub API rate limit exceeded; it resets at {} ({}); {advice}",
            local.format("%Y-%m-%d %H:%M:%S %:z"),
            in_words(limit.wait)
        ),
        retry_after: Some(limit.wait),
    }
}

/// "in 37 minutes", "in 1 minute", "in 45 seconds".
pub(crate) fn in_words(wait: Duration) -> String {
    let secs = wait.as_secs();
    if secs < 60 {
        return format!("in {secs} second{}", plural(secs));
    }
    let minutes = secs.div_ceil(60);
    format!("in {minutes} minute{}", plural(minutes))
}

fn plural(n: u64) -> &'static str {
    if n == 1 { "" } else { "s" }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, v.parse().unwrap());
        }
        h
    }

    fn at(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs)
    }

    #[test]
    fn primary_limit_waits_until_reset() {
        let now = at(1_000_000);
        let h = headers(&[
            ("x-ratelimit-remaining", "0"),
            ("x-ratelimit-reset", "1000120"),
        ]);
        let rl = detect(403, &h, Some("API rate limit exceeded for 1.2.3.4."), now).unwrap();
        assert_eq!(rl.wait, Duration::from_secs(121));
        assert_eq!(rl.reset_at, at(1_000_121));
        // A reset already past still waits a moment rather than hammering.
        let h = headers(&[("x-ratelimit-remaining", "0"), ("x-ratelimit-reset", "5")]);
        assert_eq!(
            detect(429, &h, None, now).unwrap().wait,
            Duration::from_secs(1)
        );
    }

    #[test]
    fn retry_after_seconds_and_date() {
        let now = at(1_700_000_000);
        let h = headers(&[("retry-after", "7")]);
        assert_eq!(
            detect(429, &h, None, now).unwrap().wait,
            Duration::from_secs(7)
        );
        let date = httpdate::fmt_http_date(now + Duration::from_secs(30));
        let h = headers(&[("retry-after", &date)]);
        assert_eq!(
            detect(403, &h, None, now).unwrap().wait,
            Duration::from_secs(30)
        );
    }

    #[test]
    fn bare_429_and_secondary_403_wait_a_minute() {
        let now = at(0);
        assert_eq!(
            detect(429, &HeaderMap::new(), None, now).unwrap().wait,
            UNSPECIFIED_WAIT
        );
        let msg = "You have exceeded a secondary rate limit. Please wait a few minutes.";
        assert_eq!(
            detect(403, &HeaderMap::new(), Some(msg), now).unwrap().wait,
            UNSPECIFIED_WAIT
        );
    }

    #[test]
    fn plain_403_and_other_statuses_are_not_rate_limits() {
        let now = at(0);
        assert_eq!(
            detect(403, &HeaderMap::new(), Some("Resource not accessible"), now),
            None
        );
        let h = headers(&[
            ("x-ratelimit-remaining", "4999"),
            ("x-ratelimit-reset", "9"),
        ]);
        assert_eq!(detect(403, &h, None, now), None);
        let h = headers(&[("retry-after", "5")]);
        assert_eq!(detect(503, &h, None, now), None);
        assert_eq!(
            detect(404, &HeaderMap::new(), Some("rate limit"), now),
            None
        );
    }

    #[test]
    fn error_names_reset_time_and_advice() {
        let limit = RateLimit {
            wait: Duration::from_secs(37 * 60 - 5),
            reset_at: SystemTime::now() + Duration::from_secs(37 * 60 - 5),
        };
        let e = exceeded(&limit, false);
        assert_eq!(e.code(), "rate_limited");
        let msg = e.to_string();
        assert!(msg.contains("in 37 minutes"), "{msg}");
        assert!(msg.contains("GITHUB_TOKEN"), "{msg}");
        assert!(msg.contains("resets at 20"), "{msg}");
        let Error::RateLimited { retry_after, .. } = e else {
            panic!()
        };
        assert_eq!(retry_after, Some(limit.wait));
        let msg = exceeded(&limit, true).to_string();
        assert!(msg.contains("token's quota"), "{msg}");
    }

    #[test]
    fn words() {
        assert_eq!(in_words(Duration::from_secs(1)), "in 1 second");
        assert_eq!(in_words(Duration::from_secs(45)), "in 45 seconds");
        assert_eq!(in_words(Duration::from_secs(60)), "in 1 minute");
        assert_eq!(in_words(Duration::from_secs(61)), "in 2 minutes");
    }
}
