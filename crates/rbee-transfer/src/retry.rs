//! When to try again, and how long to wait first.

use std::time::{Duration, SystemTime};

use reqwest::header::{HeaderMap, RETRY_AFTER};

/// Requests answered by silence (no response headers in time) allowed in a row for one
/// transfer: a second silent answer ends it, so a server that accepts and never answers does
/// not hold a download for every attempt.
pub(crate) const MAX_SILENT_ANSWERS: u32 = 2;

/// When a failed request is tried again and how long to wait first: at most `max_attempts`
/// attempts in all, exponential backoff with jitter between `initial` and the cap, and a
/// server's `Retry-After` honoured up to that cap. Every retry loop of the engine asks it.
#[derive(Debug, Clone)]
pub(crate) struct RetryPolicy {
    initial: Duration,
    max: Duration,
    max_attempts: u32,
}

impl RetryPolicy {
    pub(crate) fn new(initial: Duration, max: Duration, max_attempts: u32) -> Self {
        Self {
            initial,
            max,
            max_attempts,
        }
    }

    /// How many attempts a request gets in all.
    pub(crate) fn max_attempts(&self) -> u32 {
        self.max_attempts
    }

    /// Whether attempt `attempt` (1 = the first) may be made.
    pub(crate) fn allows(&self, attempt: u32) -> bool {
        attempt <= self.max_attempts
    }

    /// The wait before attempt `attempt` (2 = the first retry), or `None` when no such attempt
    /// may be made: the attempts are used up, or the server asks (`Retry-After`) for longer
    /// than the cap, which is not worth waiting for.
    pub(crate) fn wait_before(
        &self,
        attempt: u32,
        retry_after: Option<Duration>,
    ) -> Option<Duration> {
        if !self.allows(attempt) {
            return None;
        }
        match retry_after {
            Some(d) if d > self.max => None,
            Some(d) => Some(d.max(self.backoff(attempt).min(Duration::from_millis(100)))),
            None => Some(self.backoff(attempt)),
        }
    }

    /// `initial · 2^(attempt-2)`, capped, then jittered into its upper half so that many
    /// clients do not retry in step.
    fn backoff(&self, attempt: u32) -> Duration {
        let exp = attempt.saturating_sub(2).min(20);
        let base = self.initial.saturating_mul(1u32 << exp).min(self.max);
        let half = base / 2;
        half + half.mul_f64(jitter())
    }
}

/// A number in `[0, 1)`, different on each call; quality only needs to spread retries (and
/// other hosts' waits: the shared store's lease election).
pub fn jitter() -> f64 {
    use std::cell::Cell;
    use std::hash::{BuildHasher, Hasher};
    thread_local! {
        static STATE: Cell<u64> = Cell::new({
            let mut h = std::collections::hash_map::RandomState::new().build_hasher();
            h.write_u64(0x9e37_79b9_7f4a_7c15);
            h.finish() | 1
        });
    }
    STATE.with(|s| {
        // xorshift64*
        let mut x = s.get();
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        s.set(x);
        (x.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 11) as f64 / (1u64 << 53) as f64
    })
}

/// The `Retry-After` header of a response, as a delay from now.
pub(crate) fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    parse_retry_after(headers.get(RETRY_AFTER)?.to_str().ok()?, SystemTime::now())
}

/// A `Retry-After` value as a delay from `now`: delay-seconds or an HTTP date (a date already
/// past is no delay).
///
/// ```
/// use std::time::{Duration, SystemTime};
/// let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000_000);
/// assert_eq!(rbee_transfer::parse_retry_after(" 120 ", now), Some(Duration::from_secs(120)));
/// let at = httpdate::fmt_http_date(now + Duration::from_secs(90));
/// assert_eq!(rbee_transfer::parse_retry_after(&at, now), Some(Duration::from_secs(90)));
/// assert_eq!(rbee_transfer::parse_retry_after("soon", now), None);
/// ```
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(at.duration_since(now).unwrap_or_default())
}

/// Statuses worth another attempt: timeouts, rate limits and server errors.
pub(crate) fn is_transient_status(status: u16) -> bool {
    matches!(status, 408 | 429 | 500..=599)
}

/// Connection failures, resets and truncated bodies are transient; a malformed request, a
/// host name that does not resolve and an untrusted certificate are not.
pub(crate) fn is_transient_reqwest(e: &reqwest::Error) -> bool {
    if e.is_builder() || e.is_redirect() || is_permanent_cause(e) {
        return false;
    }
    if e.is_connect() || e.is_timeout() || e.is_body() || e.is_request() || e.is_decode() {
        return true;
    }
    // Anything else that carries an I/O error underneath (reset, broken pipe, EOF).
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        if s.is::<std::io::Error>() {
            return true;
        }
        source = s.source();
    }
    false
}

/// Whether `e` or one of its causes is a failure another attempt cannot fix: the host name
/// does not resolve, or the server's certificate is not trusted.
pub(crate) fn is_permanent_cause(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut source = Some(e);
    while let Some(s) = source {
        if s.is::<crate::NameNotResolved>() || s.downcast_ref().is_some_and(is_certificate_error) {
            return true;
        }
        // TLS errors travel inside an `io::Error`, whose `source()` skips them.
        if let Some(inner) = s
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
            && (inner.is::<crate::NameNotResolved>()
                || inner.downcast_ref().is_some_and(is_certificate_error))
        {
            return true;
        }
        source = s.source();
    }
    false
}

fn is_certificate_error(e: &rustls::Error) -> bool {
    matches!(
        e,
        rustls::Error::InvalidCertificate(_)
            | rustls::Error::NoCertificatesPresented
            | rustls::Error::UnsupportedNameType
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_is_capped_and_jittered() {
        let b = RetryPolicy::new(Duration::from_millis(100), Duration::from_secs(2), 30);
        for _ in 0..100 {
            let d2 = b.wait_before(2, None).unwrap();
            assert!(d2 >= Duration::from_millis(50) && d2 <= Duration::from_millis(100));
            let d4 = b.wait_before(4, None).unwrap();
            assert!(d4 >= Duration::from_millis(200) && d4 <= Duration::from_millis(400));
            let d30 = b.wait_before(30, None).unwrap();
            assert!(d30 >= Duration::from_secs(1) && d30 <= Duration::from_secs(2));
        }
        assert_eq!(b.wait_before(2, Some(Duration::from_secs(3))), None);
        assert_eq!(
            b.wait_before(2, Some(Duration::from_secs(1))),
            Some(Duration::from_secs(1))
        );
    }

    #[test]
    fn attempts_are_bounded() {
        let b = RetryPolicy::new(Duration::from_millis(1), Duration::from_secs(2), 3);
        assert_eq!(b.max_attempts(), 3);
        assert!(b.allows(3) && !b.allows(4));
        assert!(b.wait_before(3, None).is_some());
        assert_eq!(b.wait_before(4, None), None);
        assert_eq!(b.wait_before(4, Some(Duration::ZERO)), None);
    }

    #[test]
    fn unresolvable_names_and_untrusted_certificates_are_permanent() {
        let dns = crate::NameNotResolved {
            host: "x.invalid".into(),
            source: std::io::Error::other("Name or service not known"),
        };
        assert!(is_permanent_cause(&dns));
        let wrapped = std::io::Error::other(dns);
        assert!(is_permanent_cause(&wrapped));
        let tls = std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer),
        );
        assert!(is_permanent_cause(&tls));
        let reset = std::io::Error::from(std::io::ErrorKind::ConnectionReset);
        assert!(!is_permanent_cause(&reset));
        let garbled =
            std::io::Error::new(std::io::ErrorKind::InvalidData, rustls::Error::DecryptError);
        assert!(!is_permanent_cause(&garbled));
    }

    #[test]
    fn parses_retry_after() {
        let mut h = HeaderMap::new();
        h.insert(RETRY_AFTER, "5".parse().unwrap());
        assert_eq!(retry_after(&h), Some(Duration::from_secs(5)));
        let later = SystemTime::now() + Duration::from_secs(60);
        h.insert(RETRY_AFTER, httpdate::fmt_http_date(later).parse().unwrap());
        let d = retry_after(&h).unwrap();
        assert!(
            d > Duration::from_secs(55) && d <= Duration::from_secs(60),
            "{d:?}"
        );
        h.insert(RETRY_AFTER, "soon".parse().unwrap());
        assert_eq!(retry_after(&h), None);
        assert!(is_transient_status(503) && is_transient_status(429));
        assert!(!is_transient_status(404) && !is_transient_status(403));
    }
}
