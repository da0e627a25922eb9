//! Fault injection: what can go wrong, on which paths, how many times.

use std::sync::Mutex;
use std::time::Duration;

use globset::{GlobBuilder, GlobMatcher};
use serde::{Deserialize, Serialize};

/// Which of the two listeners a request arrived on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Host {
    /// The hub (`FakeHub::url`): APIs, resolve paths, plain files, redirects.
    Hub,
    /// The CDN (`FakeHub::cdn_url`): where redirects point.
    Cdn,
}

/// One injected fault: an [`action`](FaultAction) applied to requests whose path matches
/// `path` (all paths when `None`), on `host` (both when `None`), for the first `times`
/// matching requests (every one when `None`).
///
/// Paths are matched without their leading `/` and after percent-decoding, e.g.
/// `files/big.bin` or `api/models/org/repo/revision/main`. A glob without `/` matches the last
/// path segment anywhere (`*.gguf`, `big.bin`); a glob with `/` matches the whole path
/// (`files/**`, `hf/org/*/model.gguf`); `*` does not cross `/`, `**` does.
///
/// A fault is used up only when it takes effect: a body fault (drop, stall, flip, wrong
/// length) on a `GET` answered 200 or 206, `ignore_range` on a request with a `Range` header,
/// `expire_redirect` on a redirect the server signs, the others on any matching request.
///
/// As JSON (the admin endpoint and `fake-hub --fault`), the action's fields sit beside the
/// matching fields:
/// ```json
/// {"path": "files/big.bin", "times": 1, "kind": "drop", "after_bytes": 1048576}
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Fault {
    /// Glob over the request path (see above); `None` matches every path.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// Only requests to this listener; `None` matches both.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<Host>,
    /// Apply to this many matching requests, then stop; `None`: every time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub times: Option<u64>,
    /// What happens.
    #[serde(flatten)]
    pub action: FaultAction,
}

/// What a [`Fault`] does. Serialized with a `kind` tag in snake case.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
#[non_exhaustive]
pub enum FaultAction {
    /// Abort the connection after `after_bytes` body bytes (counted from the start of this
    /// response's body). The bytes before the cut are flushed first, so the client receives
    /// exactly `after_bytes`, then the connection closes short of `Content-Length`; with
    /// `reset` the close is a TCP reset (the client may then lose bytes not yet read).
    Drop {
        /// Body bytes sent before the cut.
        after_bytes: u64,
        /// Close with a TCP RST instead of a FIN.
        #[serde(default)]
        reset: bool,
    },
    /// Answer `status` (e.g. 500, 503) with a small JSON body, optionally with `Retry-After`.
    Status {
        /// The HTTP status code.
        status: u16,
        /// `Retry-After` in seconds.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        retry_after: Option<u64>,
    },
    /// Answer 429 Too Many Requests with `Retry-After: retry_after`.
    TooManyRequests {
        /// `Retry-After` in seconds.
        retry_after: u64,
    },
    /// After `after_bytes` body bytes, send nothing for `secs` seconds, then continue; with
    /// `hang`, never continue (the connection stays open until the client gives up).
    Stall {
        /// Body bytes sent before the stall.
        after_bytes: u64,
        /// Length of the stall in seconds (fractions allowed).
        #[serde(default)]
        secs: f64,
        /// Never resume.
        #[serde(default)]
        hang: bool,
    },
    /// Hold the connection that carries the matching response to `bytes_per_sec`, for this
    /// response and every later one it carries (keep-alive): one slow connection among fast
    /// ones, as a congested path or a bad CDN node gives. With `times: 1`, exactly one.
    SlowConnection {
        /// The connection's rate in bytes per second (below the hub's cap, when one is set).
        bytes_per_sec: u64,
    },
    /// Invert every bit of the byte at file `offset` (for file responses; the offset within
    /// the body for other responses), wherever a response's range covers it.
    FlipByte {
        /// Offset of the corrupted byte in the file.
        offset: u64,
    },
    /// Ignore `Range` and `If-Range`: answer 200 with the whole body.
    IgnoreRange,
    /// Announce `extra` more bytes in `Content-Length` than the body has, send the body, then
    /// close the connection.
    WrongContentLength {
        /// How many bytes too many are announced.
        #[serde(default = "default_extra")]
        extra: u64,
    },
    /// Signed redirect targets issued while this fault is active expire `after_secs` seconds
    /// after issue (0: already expired); the CDN answers 403 once they have. For Xet, the
    /// presigned xorb URLs of a reconstruction are such targets: match the reconstruction's
    /// path (`cas/v2/reconstructions/*`).
    ExpireRedirect {
        /// Lifetime of the signed URL in seconds.
        after_secs: u64,
    },
    /// Xet tokens issued while this fault is active (match `**/xet-read-token/*`) expire
    /// `after_secs` seconds after issue (0: already expired): `exp` says so and the CAS
    /// answers 401 once they have.
    ExpireXetToken {
        /// Lifetime of the token in seconds.
        after_secs: u64,
    },
    /// A Xet reconstruction (match `cas/v1/reconstructions/*` or `cas/v2/…`) lies about its
    /// first term: its `unpacked_length` is off by `unpacked_length_delta`, and the byte
    /// range its xorb URL is signed for and announced with ends `url_range_delta` bytes away
    /// from the chunks' end (the xorb bytes served follow that range).
    ReconstructionLie {
        /// Added to the first term's `unpacked_length`.
        #[serde(default)]
        unpacked_length_delta: i64,
        /// Added to the end of the first term's byte range.
        #[serde(default)]
        url_range_delta: i64,
    },
    /// GitHub's primary rate limit: `status` (403 or 429) with `X-RateLimit-Remaining: 0`
    /// and `X-RateLimit-Reset` `reset_after_secs` from now.
    RateLimited {
        /// 403 (GitHub's usual answer) or 429.
        #[serde(default = "default_rate_status")]
        status: u16,
        /// Seconds until the advertised reset.
        #[serde(default = "default_reset_after")]
        reset_after_secs: u64,
    },
    /// GitHub's secondary rate limit: `status` (403 or 429) with `Retry-After`.
    SecondaryRateLimit {
        /// 403 (GitHub's usual answer) or 429.
        #[serde(default = "default_rate_status")]
        status: u16,
        /// `Retry-After` in seconds.
        retry_after: u64,
    },

    // Hostile mode: a server that lies rather than fails.
    /// Send the body, then `extra_bytes` more (without end when absent), with no
    /// `Content-Length`: a body longer than anything announced.
    LongBody {
        /// Bytes sent after the real body; absent: an endless body.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        extra_bytes: Option<u64>,
    },
    /// Leave `Content-Length` out (a chunked body): its end is only known when it comes.
    NoContentLength,
    /// Replace the `Content-Range` of a 206 with `value`, in which `{start}`, `{end}` and
    /// `{total}` stand for the true values: `bytes {start}-{end}/*` hides the size,
    /// `bytes 0-{end}/{total}` labels the bytes as another range.
    ContentRange {
        /// The header value sent.
        value: String,
    },
    /// Every answer carries a new `ETag` and `Last-Modified` (and `X-Linked-Etag`), as if
    /// the file changed between any two requests.
    ChangingValidators,
    /// Answers carry no `ETag`, `Last-Modified` or `X-Linked-Etag`: nothing proves that two
    /// answers serve the same file.
    NoValidators,
    /// Honour `Range` but ignore `If-Range`: after the file changed, its new bytes are sent as
    /// the continuation of the old ones.
    IgnoreIfRange,
    /// Add `Content-Disposition: value` to a 200 or 206 answer (or its `HEAD`).
    ContentDisposition {
        /// The header value, e.g. `attachment; filename*=UTF-8''%1B%5B31mx.gguf`.
        value: String,
    },
    /// Answer `302 Found` with `Location: location` (another scheme, another host).
    Redirect {
        /// Where the redirect points.
        location: String,
    },
    /// Take the request and never answer: no status line, no headers, the connection open.
    NoResponse,
    /// Listings (HuggingFace revision and tree, `X-Linked-Size`; GitHub assets) announce
    /// `size` for the matching files. Listing lies match the path the file is served at,
    /// `files/<path under the root>` (e.g. `files/hf/org/repo/m.gguf`, or just `m.gguf`).
    ListedSize {
        /// The size announced.
        size: u64,
    },
    /// Listings (HuggingFace `lfs.sha256`, tree `lfs.oid`, `X-Linked-Etag`; GitHub `digest`)
    /// announce `sha256` (64 hex digits) for the matching files.
    ListedSha256 {
        /// The digest announced.
        sha256: String,
    },
    /// Listings name the matching files `name` (with `..`, `/`, control characters or an
    /// absurd length); downloads still use the real name.
    ListedName {
        /// The name announced.
        name: String,
    },
}

fn default_extra() -> u64 {
    1024
}
fn default_rate_status() -> u16 {
    403
}
fn default_reset_after() -> u64 {
    60
}

impl Fault {
    /// A fault doing `action` on every request to every path.
    pub fn new(action: FaultAction) -> Self {
        Self {
            path: None,
            host: None,
            times: None,
            action,
        }
    }

    /// Abort the connection after `after_bytes` body bytes.
    pub fn drop_after(after_bytes: u64) -> Self {
        Self::new(FaultAction::Drop {
            after_bytes,
            reset: false,
        })
    }

    /// Answer with `status`.
    pub fn status(status: u16) -> Self {
        Self::new(FaultAction::Status {
            status,
            retry_after: None,
        })
    }

    /// Answer 429 with `Retry-After: retry_after`.
    pub fn too_many_requests(retry_after: u64) -> Self {
        Self::new(FaultAction::TooManyRequests { retry_after })
    }

    /// Pause `duration` after `after_bytes` body bytes, then continue.
    pub fn stall(after_bytes: u64, duration: Duration) -> Self {
        Self::new(FaultAction::Stall {
            after_bytes,
            secs: duration.as_secs_f64(),
            hang: false,
        })
    }

    /// Stop sending after `after_bytes` body bytes and never resume.
    pub fn hang(after_bytes: u64) -> Self {
        Self::new(FaultAction::Stall {
            after_bytes,
            secs: 0.0,
            hang: true,
        })
    }

    /// Hold the connection of the matching response (and its later responses) to
    /// `bytes_per_sec`.
    pub fn slow_connection(bytes_per_sec: u64) -> Self {
        Self::new(FaultAction::SlowConnection { bytes_per_sec })
    }

    /// Corrupt the byte at file `offset`.
    pub fn flip_byte(offset: u64) -> Self {
        Self::new(FaultAction::FlipByte { offset })
    }

    /// Answer 200 with the whole body whatever `Range` asks.
    pub fn ignore_range() -> Self {
        Self::new(FaultAction::IgnoreRange)
    }

    /// Announce `extra` bytes more than sent, then close.
    pub fn wrong_content_length(extra: u64) -> Self {
        Self::new(FaultAction::WrongContentLength { extra })
    }

    /// Signed redirect targets expire `after_secs` after issue.
    pub fn expire_redirect(after_secs: u64) -> Self {
        Self::new(FaultAction::ExpireRedirect { after_secs })
    }

    /// Xet tokens expire `after_secs` after issue.
    pub fn expire_xet_token(after_secs: u64) -> Self {
        Self::new(FaultAction::ExpireXetToken { after_secs })
    }

    /// The first term of a reconstruction lies about its length and byte range.
    pub fn reconstruction_lie(unpacked_length_delta: i64, url_range_delta: i64) -> Self {
        Self::new(FaultAction::ReconstructionLie {
            unpacked_length_delta,
            url_range_delta,
        })
    }

    /// GitHub primary rate limit answered with `status` (403 or 429).
    pub fn rate_limited(status: u16, reset_after_secs: u64) -> Self {
        Self::new(FaultAction::RateLimited {
            status,
            reset_after_secs,
        })
    }

    /// GitHub secondary rate limit answered with `status` (403 or 429) and `Retry-After`.
    pub fn secondary_rate_limit(status: u16, retry_after: u64) -> Self {
        Self::new(FaultAction::SecondaryRateLimit {
            status,
            retry_after,
        })
    }

    /// The body, then `extra_bytes` more, without `Content-Length`.
    pub fn long_body(extra_bytes: u64) -> Self {
        Self::new(FaultAction::LongBody {
            extra_bytes: Some(extra_bytes),
        })
    }

    /// The body, then bytes without end, without `Content-Length`.
    pub fn endless_body() -> Self {
        Self::new(FaultAction::LongBody { extra_bytes: None })
    }

    /// No `Content-Length` (a chunked body).
    pub fn no_content_length() -> Self {
        Self::new(FaultAction::NoContentLength)
    }

    /// A 206's `Content-Range` replaced by `value` (`{start}`, `{end}`, `{total}` filled in).
    pub fn content_range(value: impl Into<String>) -> Self {
        Self::new(FaultAction::ContentRange {
            value: value.into(),
        })
    }

    /// New validators on every answer.
    pub fn changing_validators() -> Self {
        Self::new(FaultAction::ChangingValidators)
    }

    /// No validators at all.
    pub fn no_validators() -> Self {
        Self::new(FaultAction::NoValidators)
    }

    /// `Range` honoured, `If-Range` ignored.
    pub fn ignore_if_range() -> Self {
        Self::new(FaultAction::IgnoreIfRange)
    }

    /// `Content-Disposition: value` on file answers.
    pub fn content_disposition(value: impl Into<String>) -> Self {
        Self::new(FaultAction::ContentDisposition {
            value: value.into(),
        })
    }

    /// A 302 to `location`.
    pub fn redirect_to(location: impl Into<String>) -> Self {
        Self::new(FaultAction::Redirect {
            location: location.into(),
        })
    }

    /// No answer at all, ever.
    pub fn no_response() -> Self {
        Self::new(FaultAction::NoResponse)
    }

    /// Listings announce `size` for the file.
    pub fn listed_size(size: u64) -> Self {
        Self::new(FaultAction::ListedSize { size })
    }

    /// Listings announce `sha256` for the file.
    pub fn listed_sha256(sha256: impl Into<String>) -> Self {
        Self::new(FaultAction::ListedSha256 {
            sha256: sha256.into(),
        })
    }

    /// Listings call the file `name`.
    pub fn listed_name(name: impl Into<String>) -> Self {
        Self::new(FaultAction::ListedName { name: name.into() })
    }

    /// Only paths matching `glob` (see [`Fault`]).
    pub fn path(mut self, glob: impl Into<String>) -> Self {
        self.path = Some(glob.into());
        self
    }

    /// Only the first `times` matching requests.
    pub fn times(mut self, times: u64) -> Self {
        self.times = Some(times);
        self
    }

    /// Only requests to `host`.
    pub fn on(mut self, host: Host) -> Self {
        self.host = Some(host);
        self
    }
}

/// A fault that cannot be installed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FaultError {
    /// The path glob does not parse.
    #[error("invalid path glob {glob:?} in fault: {source}")]
    Glob {
        /// The glob as given.
        glob: String,
        /// Why it does not parse.
        #[source]
        source: globset::Error,
    },
    /// A status code outside 100..=599, or a rate-limit status other than 403 or 429.
    #[error("invalid status {status} in fault: {reason}")]
    Status {
        /// The status as given.
        status: u16,
        /// What is allowed.
        reason: &'static str,
    },
    /// A negative or non-finite stall.
    #[error("invalid stall of {secs} s in fault: use a finite number of seconds >= 0")]
    Stall {
        /// The duration as given.
        secs: f64,
    },
    /// A slow connection of 0 bytes per second (use a stall with `hang` for that).
    #[error(
        "invalid slow connection of 0 bytes/s in fault: use a rate above zero, or a stall with `hang`"
    )]
    SlowConnection,
    /// A header value (`Content-Range`, `Content-Disposition`, `Location`) that HTTP cannot
    /// carry.
    #[error(
        "invalid header value {value:?} in fault: control characters cannot be sent raw; percent-encode them (filename*=UTF-8''%1B…)"
    )]
    HeaderValue {
        /// The value as given.
        value: String,
    },
    /// A listed digest that is not 64 hex digits.
    #[error("invalid sha256 {value:?} in fault: use 64 hex digits")]
    Sha256 {
        /// The value as given.
        value: String,
    },
}

/// A fault with its use count, as listed by [`FakeHub::faults`](crate::FakeHub::faults).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FaultState {
    /// The fault as installed.
    #[serde(flatten)]
    pub fault: Fault,
    /// How many times it has taken effect.
    pub used: u64,
}

/// When during a request a fault can take effect.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Phase {
    /// Before the handler: replaces the response.
    Answer,
    /// A request with a `Range` header.
    Range,
    /// A `GET` answered with a body.
    Body,
    /// A signed redirect being issued.
    Redirect,
    /// A request with an `If-Range` header.
    IfRange,
    /// The head of an answer, before it is sent.
    Headers,
    /// A file described in a listing (or a resolve answer's `X-Linked-*`).
    Listing,
    /// A Xet token being issued.
    XetToken,
    /// A Xet reconstruction being answered.
    Reconstruction,
}

impl FaultAction {
    fn phase(&self) -> Phase {
        match self {
            Self::Status { .. }
            | Self::TooManyRequests { .. }
            | Self::RateLimited { .. }
            | Self::SecondaryRateLimit { .. }
            | Self::Redirect { .. }
            | Self::NoResponse => Phase::Answer,
            Self::IgnoreRange => Phase::Range,
            Self::IgnoreIfRange => Phase::IfRange,
            Self::Drop { .. }
            | Self::Stall { .. }
            | Self::SlowConnection { .. }
            | Self::FlipByte { .. }
            | Self::WrongContentLength { .. }
            | Self::LongBody { .. }
            | Self::NoContentLength => Phase::Body,
            Self::ExpireRedirect { .. } => Phase::Redirect,
            Self::ExpireXetToken { .. } => Phase::XetToken,
            Self::ReconstructionLie { .. } => Phase::Reconstruction,
            Self::ContentRange { .. }
            | Self::ChangingValidators
            | Self::NoValidators
            | Self::ContentDisposition { .. } => Phase::Headers,
            Self::ListedSize { .. } | Self::ListedSha256 { .. } | Self::ListedName { .. } => {
                Phase::Listing
            }
        }
    }

    fn validate(&self) -> Result<(), FaultError> {
        match *self {
            Self::Status { status, .. } if !(100..=599).contains(&status) => {
                Err(FaultError::Status {
                    status,
                    reason: "use an HTTP status between 100 and 599",
                })
            }
            Self::RateLimited { status, .. } | Self::SecondaryRateLimit { status, .. }
                if status != 403 && status != 429 =>
            {
                Err(FaultError::Status {
                    status,
                    reason: "GitHub answers rate limits with 403 or 429",
                })
            }
            Self::Stall { secs, .. } if !secs.is_finite() || secs < 0.0 => {
                Err(FaultError::Stall { secs })
            }
            Self::SlowConnection { bytes_per_sec: 0 } => Err(FaultError::SlowConnection),
            Self::ContentRange { ref value }
            | Self::ContentDisposition { ref value }
            | Self::Redirect {
                location: ref value,
            } if axum::http::HeaderValue::from_str(value).is_err() => {
                Err(FaultError::HeaderValue {
                    value: value.clone(),
                })
            }
            Self::ListedSha256 { ref sha256 }
                if sha256.len() != 64 || !sha256.bytes().all(|b| b.is_ascii_hexdigit()) =>
            {
                Err(FaultError::Sha256 {
                    value: sha256.clone(),
                })
            }
            _ => Ok(()),
        }
    }
}

#[derive(Debug)]
struct Installed {
    fault: Fault,
    matcher: Option<PathMatcher>,
    used: u64,
}

#[derive(Debug)]
struct PathMatcher {
    glob: GlobMatcher,
    basename: bool,
}

impl PathMatcher {
    fn new(pattern: &str) -> Result<Self, FaultError> {
        let pattern = pattern.trim_start_matches('/');
        let glob = GlobBuilder::new(pattern)
            .literal_separator(true)
            .build()
            .map_err(|source| FaultError::Glob {
                glob: pattern.to_owned(),
                source,
            })?;
        Ok(Self {
            glob: glob.compile_matcher(),
            basename: !pattern.contains('/'),
        })
    }

    fn matches(&self, path: &str) -> bool {
        let path = path.trim_start_matches('/');
        if self.basename {
            let last = path.rsplit('/').next().unwrap_or(path);
            self.glob.is_match(last)
        } else {
            self.glob.is_match(path)
        }
    }
}

/// The installed faults, shared by every request.
#[derive(Debug, Default)]
pub(crate) struct FaultSet {
    installed: Mutex<Vec<Installed>>,
}

impl FaultSet {
    fn compile(fault: Fault) -> Result<Installed, FaultError> {
        fault.action.validate()?;
        let matcher = fault.path.as_deref().map(PathMatcher::new).transpose()?;
        Ok(Installed {
            fault,
            matcher,
            used: 0,
        })
    }

    /// Replaces every fault with `faults` (all or nothing).
    pub(crate) fn set(&self, faults: Vec<Fault>) -> Result<(), FaultError> {
        let compiled = faults
            .into_iter()
            .map(Self::compile)
            .collect::<Result<Vec<_>, _>>()?;
        *self.lock() = compiled;
        Ok(())
    }

    /// Adds `faults` after the installed ones (all or nothing), keeping their use counts.
    pub(crate) fn extend(&self, faults: Vec<Fault>) -> Result<(), FaultError> {
        let compiled = faults
            .into_iter()
            .map(Self::compile)
            .collect::<Result<Vec<_>, _>>()?;
        self.lock().extend(compiled);
        Ok(())
    }

    /// Adds `fault` after the installed ones.
    pub(crate) fn add(&self, fault: Fault) -> Result<(), FaultError> {
        self.extend(vec![fault])
    }

    pub(crate) fn list(&self) -> Vec<FaultState> {
        self.lock()
            .iter()
            .map(|i| FaultState {
                fault: i.fault.clone(),
                used: i.used,
            })
            .collect()
    }

    /// Uses up and returns the faults of `phase` that match; with `first_only`, at most one.
    pub(crate) fn take(
        &self,
        phase: Phase,
        host: Host,
        path: &str,
        first_only: bool,
    ) -> Vec<FaultAction> {
        self.take_where(phase, host, path, first_only, |_| true)
    }

    /// Like [`take`](Self::take), for the faults `applies` accepts (the others are not used
    /// up: they take effect on another answer).
    pub(crate) fn take_where(
        &self,
        phase: Phase,
        host: Host,
        path: &str,
        first_only: bool,
        applies: impl Fn(&FaultAction) -> bool,
    ) -> Vec<FaultAction> {
        let mut taken = Vec::new();
        let mut installed = self.lock();
        for i in installed.iter_mut() {
            if i.fault.action.phase() != phase
                || i.fault.host.is_some_and(|h| h != host)
                || i.fault.times.is_some_and(|t| i.used >= t)
                || i.matcher.as_ref().is_some_and(|m| !m.matches(path))
                || !applies(&i.fault.action)
            {
                continue;
            }
            i.used += 1;
            taken.push(i.fault.action.clone());
            if first_only {
                break;
            }
        }
        taken
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Installed>> {
        // A panic while holding this lock leaves the list itself consistent.
        self.installed
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_round_trip_and_defaults() {
        let f: Fault = serde_json::from_str(
            r#"{"path":"files/big.bin","times":1,"kind":"drop","after_bytes":1048576}"#,
        )
        .unwrap();
        assert_eq!(f, Fault::drop_after(1 << 20).path("files/big.bin").times(1));
        let f: Fault = serde_json::from_str(r#"{"kind":"rate_limited"}"#).unwrap();
        assert_eq!(
            f.action,
            FaultAction::RateLimited {
                status: 403,
                reset_after_secs: 60
            }
        );
        let f: Fault = serde_json::from_str(r#"{"kind":"ignore_range","host":"cdn"}"#).unwrap();
        assert_eq!(f, Fault::ignore_range().on(Host::Cdn));
        let back: Fault = serde_json::from_value(serde_json::to_value(&f).unwrap()).unwrap();
        assert_eq!(back, f);
        assert!(serde_json::from_str::<Fault>(r#"{"kind":"explode"}"#).is_err());
        let f: Fault =
            serde_json::from_str(r#"{"kind":"slow_connection","bytes_per_sec":1000,"times":1}"#)
                .unwrap();
        assert_eq!(f, Fault::slow_connection(1000).times(1));
        assert!(matches!(
            Fault::slow_connection(0).action.validate(),
            Err(FaultError::SlowConnection)
        ));
    }

    #[test]
    fn hostile_actions_in_json() {
        let f: Fault = serde_json::from_str(r#"{"path":"m.bin","kind":"long_body"}"#).unwrap();
        assert_eq!(f, Fault::endless_body().path("m.bin"));
        let f: Fault =
            serde_json::from_str(r#"{"kind":"content_range","value":"bytes {start}-{end}/*"}"#)
                .unwrap();
        assert_eq!(f, Fault::content_range("bytes {start}-{end}/*"));
        for f in [
            Fault::long_body(10),
            Fault::no_content_length(),
            Fault::changing_validators(),
            Fault::no_validators(),
            Fault::ignore_if_range(),
            Fault::content_disposition("attachment; filename=\"x\""),
            Fault::redirect_to("file:///etc/passwd"),
            Fault::no_response(),
            Fault::listed_size(1),
            Fault::listed_sha256("ab".repeat(32)),
            Fault::listed_name("../x"),
            Fault::expire_xet_token(0),
            Fault::reconstruction_lie(1, -1),
        ] {
            let back: Fault = serde_json::from_value(serde_json::to_value(&f).unwrap()).unwrap();
            assert_eq!(back, f);
        }
        let set = FaultSet::default();
        let err = set.add(Fault::content_disposition("a\u{1b}b")).unwrap_err();
        assert!(err.to_string().contains("percent-encode"), "{err}");
        assert!(set.add(Fault::listed_sha256("xyz")).is_err());
    }

    #[test]
    fn globs_match_basename_or_whole_path() {
        let m = PathMatcher::new("*.gguf").unwrap();
        assert!(m.matches("/files/a/b/model.gguf"));
        assert!(!m.matches("/files/model.bin"));
        let m = PathMatcher::new("files/*.bin").unwrap();
        assert!(m.matches("/files/x.bin"));
        assert!(!m.matches("/files/sub/x.bin"));
        let m = PathMatcher::new("/files/**").unwrap();
        assert!(m.matches("/files/sub/x.bin"));
        assert!(!m.matches("/api/models/a/b"));
    }

    #[test]
    fn times_limits_and_phases_separate() {
        let set = FaultSet::default();
        set.set(vec![
            Fault::status(503).times(2),
            Fault::drop_after(10).path("x.bin").on(Host::Cdn),
        ])
        .unwrap();
        assert_eq!(set.take(Phase::Answer, Host::Hub, "/a", true).len(), 1);
        assert_eq!(set.take(Phase::Answer, Host::Cdn, "/b", true).len(), 1);
        assert!(set.take(Phase::Answer, Host::Hub, "/a", true).is_empty());
        assert!(
            set.take(Phase::Body, Host::Hub, "/files/x.bin", false)
                .is_empty()
        );
        assert_eq!(
            set.take(Phase::Body, Host::Cdn, "/files/x.bin", false)
                .len(),
            1
        );
        let listed = set.list();
        assert_eq!(listed[0].used, 2);
        assert_eq!(listed[1].used, 1);
    }

    #[test]
    fn invalid_faults_are_refused_whole() {
        let set = FaultSet::default();
        set.set(vec![Fault::status(500)]).unwrap();
        let err = set
            .set(vec![Fault::status(503), Fault::rate_limited(500, 1)])
            .unwrap_err();
        assert!(err.to_string().contains("403 or 429"), "{err}");
        assert_eq!(set.list().len(), 1, "a refused set leaves the old one");
        assert!(set.add(Fault::status(503).path("[")).is_err());
        assert!(set.add(Fault::status(42)).is_err());
    }
}
