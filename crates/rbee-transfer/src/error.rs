//! [`TransferError`]: what went wrong in a transfer, classified for retries and for people.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use rbee_artifact::{Cause, Error};
use reqwest::header::HeaderMap;
use url::Url;

/// What kind of failure a [`TransferError`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum TransferErrorKind {
    /// The cancellation token fired; partial data was kept.
    Cancelled,
    /// The server answered with an error status ([`TransferError::status`] says which).
    Status,
    /// Connecting, sending or receiving failed.
    Network,
    /// No byte arrived for the stall timeout.
    Stalled,
    /// The server sent no response headers within the response timeout.
    NoResponse,
    /// The bytes do not match the expected SHA-256.
    Integrity,
    /// The size differs from what was announced.
    SizeMismatch,
    /// Not enough free disk space.
    InsufficientSpace,
    /// A local file operation failed.
    Io,
    /// The server answered something that makes no sense (bad `Content-Range`, …).
    Protocol,
    /// The request or configuration is invalid.
    Config,
}

/// A failed transfer or API request.
///
/// Its message names the method, the URL without query string or credentials, what failed and
/// how many attempts were made; tokens never appear in it. Use [`TransferError::status`] and
/// [`TransferError::header`] to map vendor-specific answers (a 401 with `X-Error-Code`, …), and
/// `From<TransferError> for rbee_artifact::Error` for everything else.
pub struct TransferError {
    repr: Box<Repr>,
}

enum Repr {
    Catalog(Error),
    Status {
        message: String,
        status: u16,
        headers: HeaderMap,
        retry_after: Option<Duration>,
    },
    Network {
        message: String,
        kind: TransferErrorKind,
        transient: bool,
        source: Option<Cause>,
    },
    Protocol(String),
    Config(String),
}

impl TransferError {
    /// A core error raised inside the engine. Conversion runs one way only, out of the engine
    /// (`From<TransferError> for Error`), so a vendor cannot pass its errors off as transfer ones.
    pub(crate) fn catalog(e: Error) -> Self {
        Self {
            repr: Box::new(Repr::Catalog(e)),
        }
    }

    pub(crate) fn cancelled() -> Self {
        Self::catalog(Error::Cancelled)
    }

    pub(crate) fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        Self::catalog(Error::io(context, source))
    }

    pub(crate) fn from_status(
        what: &str,
        status: reqwest::StatusCode,
        headers: HeaderMap,
        attempts: u32,
    ) -> Self {
        let retry_after = crate::retry::retry_after(&headers);
        let message = format!("{what}: HTTP {status}{}", attempts_suffix(attempts));
        Self {
            repr: Box::new(Repr::Status {
                message,
                status: status.as_u16(),
                headers,
                retry_after,
            }),
        }
    }

    pub(crate) fn network(what: &str, source: reqwest::Error, attempts: u32) -> Self {
        let transient = crate::retry::is_transient_reqwest(&source);
        let reason = describe_reqwest(&source);
        Self {
            repr: Box::new(Repr::Network {
                message: format!("{what}: {reason}{}", attempts_suffix(attempts)),
                kind: TransferErrorKind::Network,
                transient,
                source: Some(Arc::new(source.without_url())),
            }),
        }
    }

    pub(crate) fn truncated(what: &str, got: u64, expected: u64, attempts: u32) -> Self {
        Self {
            repr: Box::new(Repr::Network {
                message: format!(
                    "{what}: the connection ended after {got} of {expected} bytes{}",
                    attempts_suffix(attempts)
                ),
                kind: TransferErrorKind::Network,
                transient: true,
                source: None,
            }),
        }
    }

    pub(crate) fn stalled(what: &str, timeout: Duration, attempts: u32) -> Self {
        Self {
            repr: Box::new(Repr::Network {
                message: format!(
                    "{what}: no data for {:.1} s (stalled){}",
                    timeout.as_secs_f64(),
                    attempts_suffix(attempts)
                ),
                kind: TransferErrorKind::Stalled,
                transient: true,
                source: None,
            }),
        }
    }

    /// The server took the request and sent no response headers within `timeout`.
    pub(crate) fn no_response(what: &str, timeout: Duration, attempts: u32) -> Self {
        Self {
            repr: Box::new(Repr::Network {
                message: format!(
                    "{what}: {}{}; it may be overloaded or not an HTTP server",
                    no_response_text(timeout),
                    attempts_suffix(attempts)
                ),
                kind: TransferErrorKind::NoResponse,
                transient: true,
                source: None,
            }),
        }
    }

    /// The remote answered something that makes no sense (a bad length, a body that does not
    /// decode or hash to what it names): not retried. For [`PieceSource`](crate::PieceSource)s.
    pub fn protocol(message: impl Into<String>) -> Self {
        Self {
            repr: Box::new(Repr::Protocol(message.into())),
        }
    }

    /// A failure that trying again may cure (a connection dropped in the middle of a body):
    /// retried with backoff. For [`PieceSource`](crate::PieceSource)s.
    pub fn transient(message: impl Into<String>) -> Self {
        Self {
            repr: Box::new(Repr::Network {
                message: message.into(),
                kind: TransferErrorKind::Network,
                transient: true,
                source: None,
            }),
        }
    }

    pub(crate) fn config(message: impl Into<String>) -> Self {
        Self {
            repr: Box::new(Repr::Config(message.into())),
        }
    }

    /// The same error, with the number of attempts made appended to its message (used when a
    /// retry loop gives up).
    pub(crate) fn with_attempts(mut self, attempts: u32) -> Self {
        match &mut *self.repr {
            Repr::Status { message, .. } | Repr::Network { message, .. } => {
                if !message.contains(" attempt") {
                    message.push_str(&attempts_suffix(attempts));
                }
            }
            Repr::Catalog(_) | Repr::Protocol(_) | Repr::Config(_) => {}
        }
        self
    }

    /// What kind of failure this is.
    pub fn kind(&self) -> TransferErrorKind {
        match &*self.repr {
            Repr::Catalog(e) => match e {
                Error::Cancelled => TransferErrorKind::Cancelled,
                Error::Integrity { .. } => TransferErrorKind::Integrity,
                Error::SizeMismatch { .. } => TransferErrorKind::SizeMismatch,
                Error::InsufficientSpace { .. } => TransferErrorKind::InsufficientSpace,
                Error::Io { .. } => TransferErrorKind::Io,
                Error::Protocol { .. } => TransferErrorKind::Protocol,
                _ => TransferErrorKind::Config,
            },
            Repr::Status { .. } => TransferErrorKind::Status,
            Repr::Network { kind, .. } => *kind,
            Repr::Protocol(_) => TransferErrorKind::Protocol,
            Repr::Config(_) => TransferErrorKind::Config,
        }
    }

    /// The HTTP status of the failing response, if the failure was an error status.
    pub fn status(&self) -> Option<u16> {
        match &*self.repr {
            Repr::Status { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// A header of the failing response (first value, if it is text).
    pub fn header(&self, name: &str) -> Option<&str> {
        match &*self.repr {
            Repr::Status { headers, .. } => headers.get(name).and_then(|v| v.to_str().ok()),
            _ => None,
        }
    }

    /// Every header of the failing response, if the failure was an error status (to read
    /// vendor-specific answers such as GitHub's `X-RateLimit-*`).
    pub fn headers(&self) -> Option<&HeaderMap> {
        match &*self.repr {
            Repr::Status { headers, .. } => Some(headers),
            _ => None,
        }
    }

    /// How long the server asked us to wait (`Retry-After`), when it did.
    pub fn retry_after(&self) -> Option<Duration> {
        match &*self.repr {
            Repr::Status { retry_after, .. } => *retry_after,
            _ => None,
        }
    }

    /// Whether trying again later may succeed: connection failures, resets, truncated bodies,
    /// stalls, 408, 429 and 5xx.
    pub fn is_transient(&self) -> bool {
        match &*self.repr {
            Repr::Status { status, .. } => crate::retry::is_transient_status(*status),
            Repr::Network { transient, .. } => *transient,
            _ => false,
        }
    }

    /// Whether this is a cancellation.
    pub fn is_cancelled(&self) -> bool {
        matches!(&*self.repr, Repr::Catalog(Error::Cancelled))
    }

    /// The error as the vocabulary's [`Error`] (consumes it; also available through `From`).
    pub fn into_error(self) -> Error {
        match *self.repr {
            Repr::Catalog(e) => e,
            Repr::Status {
                message,
                status,
                retry_after,
                headers,
            } => match status {
                404 | 410 => Error::NotFound { message },
                // A 403 that says a quota ran out is a rate limit, not a refusal of access.
                403 if is_rate_limit(&headers) => {
                    let wait = retry_after.or_else(|| rate_limit_reset(&headers));
                    Error::RateLimited {
                        message: format!(
                            "{message} (rate limit reached{}); try again later",
                            wait.map(|w| format!("; it lifts in {} s", w.as_secs()))
                                .unwrap_or_default()
                        ),
                        retry_after: wait,
                    }
                }
                401 | 403 => Error::Unauthorized { message },
                429 => Error::RateLimited {
                    message,
                    retry_after,
                },
                _ => Error::Network {
                    message,
                    source: None,
                },
            },
            Repr::Network {
                message, source, ..
            } => Error::Network { message, source },
            Repr::Protocol(message) => Error::Protocol { message },
            Repr::Config(message) => Error::InvalidRequest(message),
        }
    }
}

impl From<TransferError> for Error {
    fn from(e: TransferError) -> Self {
        e.into_error()
    }
}

impl fmt::Display for TransferError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &*self.repr {
            Repr::Catalog(e) => fmt::Display::fmt(e, f),
            Repr::Status { message, .. }
            | Repr::Network { message, .. }
            | Repr::Protocol(message)
            | Repr::Config(message) => f.write_str(message),
        }
    }
}

impl fmt::Debug for TransferError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TransferError")
            .field("kind", &self.kind())
            .field("status", &self.status())
            .field("message", &self.to_string())
            .finish()
    }
}

impl std::error::Error for TransferError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match &*self.repr {
            Repr::Catalog(e) => std::error::Error::source(e),
            Repr::Network { source, .. } => source
                .as_deref()
                .map(|s| s as &(dyn std::error::Error + 'static)),
            _ => None,
        }
    }
}

/// Whether an error answer says a quota ran out (`X-RateLimit-Remaining: 0`, as GitHub and
/// many APIs send, or a `Retry-After`).
fn is_rate_limit(headers: &HeaderMap) -> bool {
    let remaining = headers
        .get("x-ratelimit-remaining")
        .and_then(|v| v.to_str().ok())
        .map(str::trim);
    remaining == Some("0") || headers.contains_key(reqwest::header::RETRY_AFTER)
}

/// The wait until `X-RateLimit-Reset` (epoch seconds), when given.
fn rate_limit_reset(headers: &HeaderMap) -> Option<Duration> {
    let reset: u64 = headers
        .get("x-ratelimit-reset")?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()?;
    let at = std::time::UNIX_EPOCH + Duration::from_secs(reset);
    Some(
        at.duration_since(std::time::SystemTime::now())
            .unwrap_or_default(),
    )
}

fn attempts_suffix(attempts: u32) -> String {
    match attempts {
        0 | 1 => String::new(),
        n => format!(" (after {n} attempts)"),
    }
}

/// A reqwest error in words, without its URL (which may carry a signed query).
fn describe_reqwest(e: &reqwest::Error) -> String {
    let what = if e.is_connect() {
        "could not connect"
    } else if e.is_timeout() {
        "timed out"
    } else if e.is_body() || e.is_decode() {
        "the connection failed while receiving data"
    } else if e.is_request() {
        "the request failed"
    } else {
        "the transfer failed"
    };
    // The innermost cause says what really happened (reset, refused, …).
    let mut cause = None;
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        cause = Some(s.to_string());
        source = s.source();
    }
    match cause {
        Some(c) if !c.is_empty() => format!("{what}: {c}"),
        _ => what.to_string(),
    }
}

/// A URL safe to show: no user info, no fragment, no credential in the query string (see
/// [`rbee_artifact::redact_url`], the one home of that rule).
pub fn redact_url(url: &Url) -> String {
    rbee_artifact::redact_url(url)
}

/// What a server that sent no response headers in time did, for messages.
pub(crate) fn no_response_text(t: Duration) -> String {
    format!(
        "the server accepted the request but sent no response within {:.1} s",
        t.as_secs_f64()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_credentials_and_queries() {
        let u =
            Url::parse("https://user:pw@cdn.example/a/b.gguf?X-Amz-Signature=abc#frag").unwrap();
        assert_eq!(
            redact_url(&u),
            "https://cdn.example/a/b.gguf?X-Amz-Signature=REDACTED"
        );
        let u = Url::parse("http://h:8080/x").unwrap();
        assert_eq!(redact_url(&u), "http://h:8080/x");
    }

    #[test]
    fn maps_statuses_to_catalog_errors() {
        let e = TransferError::from_status(
            "GET http://h/x",
            reqwest::StatusCode::NOT_FOUND,
            HeaderMap::new(),
            1,
        );
        assert_eq!(e.status(), Some(404));
        assert!(!e.is_transient());
        assert_eq!(Error::from(e).code(), "not_found");
        let mut h = HeaderMap::new();
        h.insert("retry-after", "7".parse().unwrap());
        let e = TransferError::from_status(
            "GET http://h/x",
            reqwest::StatusCode::TOO_MANY_REQUESTS,
            h,
            3,
        );
        assert!(e.is_transient());
        assert_eq!(e.header("Retry-After"), Some("7"));
        assert!(e.to_string().contains("after 3 attempts"), "{e}");
        match Error::from(e) {
            Error::RateLimited { retry_after, .. } => {
                assert_eq!(retry_after, Some(Duration::from_secs(7)))
            }
            other => panic!("{other:?}"),
        }
        let e = TransferError::from_status(
            "GET http://h/x",
            reqwest::StatusCode::FORBIDDEN,
            HeaderMap::new(),
            1,
        );
        assert_eq!(Error::from(e).code(), "unauthorized");
        let mut h = HeaderMap::new();
        h.insert("x-ratelimit-remaining", "0".parse().unwrap());
        let e = TransferError::from_status("GET http://h/x", reqwest::StatusCode::FORBIDDEN, h, 1);
        assert_eq!(e.headers().map(HeaderMap::len), Some(1));
        assert_eq!(Error::from(e).code(), "rate_limited");
        assert!(TransferError::cancelled().is_cancelled());
        assert_eq!(Error::from(TransferError::cancelled()).code(), "cancelled");
    }
}
