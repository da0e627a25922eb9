//! [`RangeReader`]: byte ranges of a remote file, for reading headers without downloading.

use std::sync::{Mutex, MutexGuard};

use rbee_artifact::lock_unpoisoned;
use reqwest::header::{CONTENT_RANGE, ETAG, HeaderValue, RANGE};
use reqwest::{Method, Response, StatusCode};
use tokio_util::bytes::{Bytes, BytesMut};
use tokio_util::sync::CancellationToken;
use url::Url;

use crate::error::{TransferError, TransferErrorKind, redact_url};
use crate::fetch::{FetchRequest, parse_content_range, parse_unsatisfied_total};
use crate::http::{self, Outgoing, SendError};
use crate::retry::{MAX_SILENT_ANSWERS, is_transient_status};
use crate::transfer::Transfer;

/// A server that ignores `Range` sends the file from byte 0; read through at most this much of
/// it to reach a window before giving up.
const MAX_IGNORED_RANGE_SKIP: u64 = 64 << 20;

/// Reads byte ranges of one remote file through the engine's HTTP client: proxies, timeouts,
/// retries with backoff (connection failures, resets, truncated bodies, stalls, 5xx, 429 with
/// `Retry-After`), redirects followed without `Authorization` to another host.
///
/// # Contract
/// - The redirect target of the first read (a signed CDN URL) is reused for later reads, and
///   given up for the original URL when it stops working (expired).
/// - The file must stay the same between reads: a different size or `ETag` is an error.
/// - Writes nothing to disk; reports nothing but its [`stats`](RangeReader::stats).
/// - Cancellable within one network read.
#[derive(Debug)]
pub struct RangeReader {
    transfer: Transfer,
    request: FetchRequest,
    what: String,
    state: Mutex<State>,
}

#[derive(Debug)]
struct State {
    target: Url,
    size: Option<u64>,
    etag: Option<String>,
    stats: RangeStats,
}

/// What a [`RangeReader`] has cost so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RangeStats {
    /// HTTP requests sent (each ranged GET and each retry; redirect hops not counted).
    pub requests: u64,
    /// Body bytes received.
    pub bytes: u64,
}

impl RangeReader {
    /// A reader of `request.url` (with its credential and headers; `expected_size`, when set,
    /// must match what the server says).
    pub fn new(transfer: &Transfer, request: FetchRequest) -> RangeReader {
        RangeReader {
            transfer: transfer.clone(),
            what: format!("GET {}", redact_url(&request.url)),
            state: Mutex::new(State {
                target: request.url.clone(),
                size: request.expected_size,
                etag: None,
                stats: RangeStats::default(),
            }),
            request,
        }
    }

    /// The file's size, once known (announced, or learnt from the first read).
    pub fn size(&self) -> Option<u64> {
        self.state().size
    }

    /// Requests and bytes so far.
    pub fn stats(&self) -> RangeStats {
        self.state().stats
    }

    /// The URL being read, for messages (without query or credentials).
    pub fn display_url(&self) -> String {
        redact_url(&self.request.url)
    }

    fn state(&self) -> MutexGuard<'_, State> {
        lock_unpoisoned(&self.state)
    }

    /// Reads `len` bytes from `start`; fewer when the file ends first, none at or past its end.
    pub async fn read(
        &self,
        start: u64,
        len: u64,
        cancel: &CancellationToken,
    ) -> Result<Bytes, TransferError> {
        if len == 0 || self.size().is_some_and(|s| start >= s) {
            return Ok(Bytes::new());
        }
        let inner = &self.transfer.inner;
        let mut attempt = 1;
        let mut silent = 0;
        loop {
            let failure = match self.attempt(start, len, attempt, cancel).await {
                Ok(bytes) => return Ok(bytes),
                Err(Attempt::Fatal(e)) => return Err(e),
                Err(Attempt::Again(e)) => e,
            };
            // A server that answers with silence is asked again only so often: each try costs
            // a whole response timeout.
            if failure.kind() == TransferErrorKind::NoResponse {
                silent += 1;
                if silent >= MAX_SILENT_ANSWERS {
                    return Err(failure.with_attempts(attempt));
                }
            }
            attempt += 1;
            let Some(delay) = inner.retry.wait_before(attempt, failure.retry_after()) else {
                return Err(failure.with_attempts(attempt - 1));
            };
            tracing::debug!(what = %self.what, error = %failure, attempt, "retrying the range");
            tokio::select! {
                _ = tokio::time::sleep(delay) => {}
                _ = cancel.cancelled() => return Err(TransferError::cancelled()),
            }
        }
    }

    async fn attempt(
        &self,
        start: u64,
        len: u64,
        attempt: u32,
        cancel: &CancellationToken,
    ) -> Result<Bytes, Attempt> {
        let inner = &self.transfer.inner;
        let mut headers = http::header_map(&self.request.headers).map_err(Attempt::Fatal)?;
        let last = start.saturating_add(len - 1);
        let range = HeaderValue::from_str(&format!("bytes={start}-{last}"))
            .map_err(|_| Attempt::Fatal(TransferError::protocol("invalid range")))?;
        headers.insert(RANGE, range);
        let target = self.state().target.clone();
        let cached = target != self.request.url;
        let out = Outgoing {
            method: Method::GET,
            url: target.clone(),
            auth: self
                .request
                .auth
                .as_ref()
                .map(|secret| (secret, &self.request.url)),
            headers,
            follow_redirects: true,
            response_timeout: inner.config.response_timeout,
        };
        self.state().stats.requests += 1;
        let sent = match http::send(&inner.data, out, cancel).await {
            Ok(sent) => sent,
            Err(SendError::Cancelled) => return Err(Attempt::Fatal(TransferError::cancelled())),
            Err(e) if e.is_transient() => {
                return Err(Attempt::Again(e.into_transfer(&self.what, attempt)));
            }
            Err(e) => return Err(Attempt::Fatal(e.into_transfer(&self.what, attempt))),
        };
        if sent.redirected {
            self.state().target = sent.url.clone();
        }
        let response = sent.response;
        let status = response.status();
        match status {
            StatusCode::PARTIAL_CONTENT => {
                let cr = response
                    .headers()
                    .get(CONTENT_RANGE)
                    .and_then(|v| v.to_str().ok())
                    .and_then(parse_content_range)
                    .ok_or_else(|| {
                        Attempt::Again(TransferError::protocol(format!(
                            "{}: 206 without a valid Content-Range",
                            self.what
                        )))
                    })?;
                if cr.start != start {
                    return Err(Attempt::Fatal(TransferError::protocol(format!(
                        "{}: asked for bytes from {start}, the server sent them from {}",
                        self.what, cr.start
                    ))));
                }
                self.check_same_file(cr.total, &response)?;
                let want = len.min(cr.end - cr.start);
                self.body(response, 0, want, cancel, attempt).await
            }
            StatusCode::OK => {
                // The server ignores ranges: read through to the window, if it is near.
                let total = response.content_length();
                self.check_same_file(total, &response)?;
                if start > MAX_IGNORED_RANGE_SKIP {
                    return Err(Attempt::Fatal(TransferError::protocol(format!(
                        "{}: the server ignores Range requests, so bytes from {start} cannot be read without downloading everything before them",
                        self.what
                    ))));
                }
                let want = total.map_or(len, |t| len.min(t.saturating_sub(start)));
                self.body(response, start, want, cancel, attempt).await
            }
            StatusCode::RANGE_NOT_SATISFIABLE => {
                let total = response
                    .headers()
                    .get(CONTENT_RANGE)
                    .and_then(|v| v.to_str().ok())
                    .and_then(parse_unsatisfied_total);
                match total {
                    Some(t) if start >= t => {
                        self.check_same_file(Some(t), &response)?;
                        Ok(Bytes::new())
                    }
                    _ => Err(Attempt::Fatal(TransferError::from_status(
                        &self.what,
                        status,
                        response.headers().clone(),
                        attempt,
                    ))),
                }
            }
            s if cached && matches!(s.as_u16(), 400 | 401 | 403 | 404 | 410) => {
                // The signed link from an earlier redirect expired: ask the original URL again.
                self.state().target = self.request.url.clone();
                Err(Attempt::Again(TransferError::from_status(
                    &format!("GET {}", redact_url(&target)),
                    s,
                    response.headers().clone(),
                    attempt,
                )))
            }
            s => {
                let e =
                    TransferError::from_status(&self.what, s, response.headers().clone(), attempt);
                if is_transient_status(s.as_u16()) {
                    Err(Attempt::Again(e))
                } else {
                    Err(Attempt::Fatal(e))
                }
            }
        }
    }

    /// Records the size and ETag of the first answer and refuses later answers that differ:
    /// a header read across two versions of a file would be garbage.
    fn check_same_file(&self, total: Option<u64>, response: &Response) -> Result<(), Attempt> {
        let etag = response
            .headers()
            .get(ETAG)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let mut st = self.state();
        if let (Some(known), Some(total)) = (st.size, total)
            && known != total
        {
            return Err(Attempt::Fatal(TransferError::protocol(format!(
                "{}: the file is {total} bytes, but {known} were announced; it changed or the server is wrong",
                self.what
            ))));
        }
        if let (Some(known), Some(etag)) = (&st.etag, &etag)
            && known != etag
        {
            return Err(Attempt::Fatal(TransferError::protocol(format!(
                "{}: the file changed while its header was being read; try again",
                self.what
            ))));
        }
        st.size = st.size.or(total);
        st.etag = st.etag.take().or(etag);
        Ok(())
    }

    /// Reads `want` bytes of the body after skipping `skip`, then drops the connection.
    async fn body(
        &self,
        mut response: Response,
        skip: u64,
        want: u64,
        cancel: &CancellationToken,
        attempt: u32,
    ) -> Result<Bytes, Attempt> {
        let stall = self.transfer.inner.config.stall_timeout;
        // `want` is at most what was asked for, which callers size to a header window.
        let mut out = BytesMut::with_capacity(want.min(64 << 20) as usize);
        let mut skipped = 0u64;
        while (out.len() as u64) < want {
            let chunk = tokio::select! {
                _ = cancel.cancelled() => return Err(Attempt::Fatal(TransferError::cancelled())),
                r = tokio::time::timeout(stall, response.chunk()) => r,
            };
            let chunk = match chunk {
                Err(_) => {
                    return Err(Attempt::Again(TransferError::stalled(
                        &self.what, stall, attempt,
                    )));
                }
                Ok(Err(e)) => {
                    return Err(Attempt::Again(TransferError::network(
                        &self.what, e, attempt,
                    )));
                }
                Ok(Ok(None)) => {
                    return Err(Attempt::Again(TransferError::truncated(
                        &self.what,
                        out.len() as u64,
                        want,
                        attempt,
                    )));
                }
                Ok(Ok(Some(c))) => c,
            };
            if let Some(limiter) = &self.transfer.inner.limiter
                && !limiter.acquire(chunk.len() as u64, cancel).await
            {
                return Err(Attempt::Fatal(TransferError::cancelled()));
            }
            self.state().stats.bytes += chunk.len() as u64;
            let mut piece = &chunk[..];
            if skipped < skip {
                let n = (skip - skipped).min(piece.len() as u64) as usize;
                skipped += n as u64;
                piece = &piece[n..];
            }
            let room = (want - out.len() as u64).min(piece.len() as u64) as usize;
            out.extend_from_slice(&piece[..room]);
        }
        Ok(out.freeze())
    }
}

/// How one attempt ended.
enum Attempt {
    /// Worth another attempt after a pause.
    Again(TransferError),
    /// Final.
    Fatal(TransferError),
}

impl Transfer {
    /// A reader of byte ranges of `request`'s file, sharing this engine's client and settings.
    pub fn range_reader(&self, request: FetchRequest) -> RangeReader {
        RangeReader::new(self, request)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use wiremock::matchers::{header, method, path};
    use wiremock::{Mock, MockServer, ResponseTemplate};

    use super::*;
    use crate::TransferConfig;

    fn transfer() -> Transfer {
        Transfer::new(TransferConfig {
            max_attempts: 2,
            initial_backoff: Duration::from_millis(5),
            use_env_proxy: false,
            ..TransferConfig::default()
        })
        .unwrap()
    }

    fn partial(body: &'static [u8], range: &str, etag: &str) -> ResponseTemplate {
        ResponseTemplate::new(206)
            .insert_header("Content-Range", range)
            .insert_header("ETag", etag)
            .set_body_bytes(body)
    }

    #[tokio::test]
    async fn reads_ranges_and_refuses_servers_that_lie() {
        let server = MockServer::start().await;
        Mock::given(method("GET"))
            .and(path("/m.gguf"))
            .and(header("Range", "bytes=0-3"))
            .respond_with(partial(b"GGUF", "bytes 0-3/100", "\"a\""))
            .mount(&server)
            .await;
        Mock::given(method("GET"))
            .and(path("/m.gguf"))
            .and(header("Range", "bytes=4-7"))
            .respond_with(partial(b"\x03\0\0\0", "bytes 4-7/100", "\"b\""))
            .mount(&server)
            .await;
        Mock::given(method("GET"))
            .and(path("/m.gguf"))
            .and(header("Range", "bytes=8-11"))
            .respond_with(partial(b"xxxx", "bytes 9-12/100", "\"a\""))
            .mount(&server)
            .await;
        Mock::given(method("GET"))
            .and(path("/m.gguf"))
            .and(header("Range", "bytes=200-203"))
            .respond_with(ResponseTemplate::new(416).insert_header("Content-Range", "bytes */100"))
            .mount(&server)
            .await;
        let url: Url = format!("{}/m.gguf", server.uri()).parse().unwrap();
        let cancel = CancellationToken::new();
        let t = transfer();

        let r = t.range_reader(FetchRequest::new("m.gguf", url.clone()));
        assert_eq!(&r.read(0, 4, &cancel).await.unwrap()[..], b"GGUF");
        assert_eq!(r.size(), Some(100));
        // The ETag changed between two ranges: the header would mix two files.
        let e = r.read(4, 4, &cancel).await.unwrap_err();
        assert!(e.to_string().contains("changed"), "{e}");
        // A range from the wrong offset.
        let e = r.read(8, 4, &cancel).await.unwrap_err();
        assert!(e.to_string().contains("from 9"), "{e}");
        assert_eq!(r.stats().requests, 3);

        // The announced size differs from the server's.
        let mut request = FetchRequest::new("m.gguf", url.clone());
        request.expected_size = Some(50);
        let e = t
            .range_reader(request)
            .read(0, 4, &cancel)
            .await
            .unwrap_err();
        assert!(e.to_string().contains("50 were announced"), "{e}");

        // Past the end: nothing, not an error.
        let r = t.range_reader(FetchRequest::new("m.gguf", url));
        assert!(r.read(200, 4, &cancel).await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn an_expired_redirect_target_is_resolved_again_without_leaking_the_token() {
        let hub = MockServer::start().await;
        let cdn = MockServer::start().await;
        Mock::given(method("GET"))
            .and(path("/resolve/m.gguf"))
            .and(header("Authorization", "Bearer secret-token"))
            .respond_with(
                ResponseTemplate::new(302)
                    .insert_header("Location", format!("{}/blob?sig=1", cdn.uri()).as_str()),
            )
            .expect(2)
            .mount(&hub)
            .await;
        // The first signed link works once, then has expired.
        Mock::given(method("GET"))
            .and(path("/blob"))
            .respond_with(partial(b"GGUF", "bytes 0-3/8", "\"e\""))
            .up_to_n_times(1)
            .mount(&cdn)
            .await;
        Mock::given(method("GET"))
            .and(path("/blob"))
            .and(header("Range", "bytes=4-7"))
            .respond_with(ResponseTemplate::new(403))
            .up_to_n_times(1)
            .mount(&cdn)
            .await;
        Mock::given(method("GET"))
            .and(path("/blob"))
            .and(header("Range", "bytes=4-7"))
            .respond_with(partial(b"\x03\0\0\0", "bytes 4-7/8", "\"e\""))
            .mount(&cdn)
            .await;
        let mut request = FetchRequest::new(
            "m.gguf",
            format!("{}/resolve/m.gguf", hub.uri()).parse().unwrap(),
        );
        request.auth = rbee_artifact::Secret::new("secret-token");
        let t = transfer();
        let r = t.range_reader(request);
        let cancel = CancellationToken::new();
        assert_eq!(&r.read(0, 4, &cancel).await.unwrap()[..], b"GGUF");
        assert_eq!(&r.read(4, 4, &cancel).await.unwrap()[..], b"\x03\0\0\0");
        for req in cdn.received_requests().await.unwrap() {
            assert!(
                req.headers.get("authorization").is_none(),
                "token sent to the CDN"
            );
        }
    }
}
