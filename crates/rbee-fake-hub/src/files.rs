//! Serving one file with HTTP range semantics, streamed from disk with read-ahead.

use std::fs::File;
use std::future::Future;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::Path;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::{SystemTime, UNIX_EPOCH};

use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures::Stream;
use tokio::task::JoinHandle;

/// Response extension: the file offset of a file response's first body byte, so byte faults
/// can be placed in file coordinates.
#[derive(Debug, Clone, Copy)]
pub(crate) struct BodyOrigin(pub(crate) u64);

/// What a `Range` header asks of a resource of `len` bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RangeAsk {
    /// No usable range: send everything (absent, malformed, multi-range, or not bytes).
    Full,
    /// Bytes `start..=end`.
    Part { start: u64, end: u64 },
    /// Nothing of the resource is in the asked range: 416.
    Unsatisfiable,
}

/// Parses a `Range` value against a length. Multi-range requests get the whole body (a server
/// may ignore Range, and a multipart answer would help no client of this server).
pub(crate) fn parse_range(value: &str, len: u64) -> RangeAsk {
    let Some(spec) = value.trim().strip_prefix("bytes=") else {
        return RangeAsk::Full;
    };
    if spec.contains(',') {
        return RangeAsk::Full;
    }
    let Some((a, b)) = spec.trim().split_once('-') else {
        return RangeAsk::Full;
    };
    let (a, b) = (a.trim(), b.trim());
    if a.is_empty() {
        let Ok(n) = b.parse::<u64>() else {
            return RangeAsk::Full;
        };
        if n == 0 || len == 0 {
            return RangeAsk::Unsatisfiable;
        }
        return RangeAsk::Part {
            start: len.saturating_sub(n),
            end: len - 1,
        };
    }
    let Ok(start) = a.parse::<u64>() else {
        return RangeAsk::Full;
    };
    let end = if b.is_empty() {
        None
    } else {
        match b.parse::<u64>() {
            Ok(e) if e >= start => Some(e),
            _ => return RangeAsk::Full,
        }
    };
    if start >= len {
        return RangeAsk::Unsatisfiable;
    }
    RangeAsk::Part {
        start,
        end: end.map_or(len - 1, |e| e.min(len - 1)),
    }
}

/// How a file is described on the wire.
#[derive(Debug, Clone, Default)]
pub(crate) struct ServeOptions {
    /// The ETag, quoted (`"…"`); default: derived from size and modification time.
    pub(crate) etag: Option<String>,
    /// `Content-Type`; default `application/octet-stream`.
    pub(crate) content_type: Option<&'static str>,
    /// Extra response headers (e.g. `X-Repo-Commit`).
    pub(crate) headers: HeaderMap,
}

/// A strong validator from size and modification time.
pub(crate) fn default_etag(len: u64, mtime: SystemTime) -> String {
    let nanos = mtime
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!("\"{len:x}-{nanos:x}\"")
}

/// `If-Range` holds when it names the current ETag (strongly) or the exact Last-Modified date.
fn if_range_holds(value: &str, etag: &str, last_modified: &str) -> bool {
    let value = value.trim();
    if value.starts_with('"') || value.starts_with("W/") {
        !value.starts_with("W/") && value == etag
    } else {
        value == last_modified
    }
}

/// Serves `path` for `method` and request `headers`. `chunk` is the read size.
pub(crate) async fn serve_file(
    method: &Method,
    req_headers: &HeaderMap,
    path: &Path,
    opts: ServeOptions,
    chunk: usize,
) -> Response {
    let meta = match tokio::fs::metadata(path).await {
        Ok(m) if m.is_file() => m,
        _ => return (StatusCode::NOT_FOUND, "file not found\n").into_response(),
    };
    let len = meta.len();
    let mtime = meta.modified().unwrap_or(UNIX_EPOCH);
    let etag = opts.etag.unwrap_or_else(|| default_etag(len, mtime));
    let last_modified = httpdate::fmt_http_date(mtime);

    let mut ask = RangeAsk::Full;
    if let Some(range) = req_headers.get(header::RANGE).and_then(|v| v.to_str().ok()) {
        let if_range_ok = req_headers
            .get(header::IF_RANGE)
            .and_then(|v| v.to_str().ok())
            .is_none_or(|v| if_range_holds(v, &etag, &last_modified));
        if if_range_ok {
            ask = parse_range(range, len);
        }
    }

    let mut headers = opts.headers;
    headers.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    if let Ok(v) = HeaderValue::from_str(&etag) {
        headers.insert(header::ETAG, v);
    }
    if let Ok(v) = HeaderValue::from_str(&last_modified) {
        headers.insert(header::LAST_MODIFIED, v);
    }
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(opts.content_type.unwrap_or("application/octet-stream")),
    );

    let (status, start, count) = match ask {
        RangeAsk::Full => (StatusCode::OK, 0, len),
        RangeAsk::Part { start, end } => {
            let v = format!("bytes {start}-{end}/{len}");
            headers.insert(
                header::CONTENT_RANGE,
                HeaderValue::from_str(&v).unwrap_or(HeaderValue::from_static("bytes */0")),
            );
            (StatusCode::PARTIAL_CONTENT, start, end - start + 1)
        }
        RangeAsk::Unsatisfiable => {
            let v = format!("bytes */{len}");
            headers.insert(
                header::CONTENT_RANGE,
                HeaderValue::from_str(&v).unwrap_or(HeaderValue::from_static("bytes */0")),
            );
            headers.insert(header::CONTENT_LENGTH, HeaderValue::from(0u64));
            headers.remove(header::CONTENT_TYPE);
            return (StatusCode::RANGE_NOT_SATISFIABLE, headers, Body::empty()).into_response();
        }
    };
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(count));

    if method == Method::HEAD {
        return (status, headers, Body::empty()).into_response();
    }
    let file = match open_at(path, start).await {
        Ok(f) => f,
        Err(e) => {
            tracing::warn!(path = %path.display(), error = %e, "cannot open file");
            return (StatusCode::INTERNAL_SERVER_ERROR, "cannot read file\n").into_response();
        }
    };
    let body = Body::from_stream(FileChunks::new(file, count, chunk));
    let mut resp = (status, headers, body).into_response();
    resp.extensions_mut().insert(BodyOrigin(start));
    resp
}

async fn open_at(path: &Path, start: u64) -> io::Result<File> {
    let path = path.to_path_buf();
    tokio::task::spawn_blocking(move || {
        let mut f = File::open(path)?;
        if start > 0 {
            f.seek(SeekFrom::Start(start))?;
        }
        Ok(f)
    })
    .await
    .map_err(io::Error::other)?
}

type ReadResult = io::Result<(File, Bytes)>;

/// `count` bytes of a file from its current position, in `chunk`-sized reads on the blocking
/// pool, one read ahead of the consumer so disk and socket overlap.
struct FileChunks {
    file: Option<File>,
    /// Bytes not yet asked of the disk.
    remaining: u64,
    chunk: usize,
    inflight: Option<JoinHandle<ReadResult>>,
}

impl FileChunks {
    fn new(file: File, count: u64, chunk: usize) -> Self {
        let mut s = Self {
            file: Some(file),
            remaining: count,
            chunk: chunk.max(4096),
            inflight: None,
        };
        s.start_read();
        s
    }

    fn start_read(&mut self) {
        if self.remaining == 0 || self.inflight.is_some() {
            return;
        }
        let Some(mut file) = self.file.take() else {
            return;
        };
        let n = self.remaining.min(self.chunk as u64);
        self.remaining -= n;
        self.inflight = Some(tokio::task::spawn_blocking(move || {
            let mut buf = Vec::with_capacity(n as usize);
            (&mut file).take(n).read_to_end(&mut buf)?;
            if (buf.len() as u64) < n {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "file shrank while being served",
                ));
            }
            Ok((file, Bytes::from(buf)))
        }));
    }
}

impl Stream for FileChunks {
    type Item = io::Result<Bytes>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let Some(task) = self.inflight.as_mut() else {
            return Poll::Ready(None);
        };
        let result = ready!(Pin::new(task).poll(cx));
        self.inflight = None;
        match result.map_err(io::Error::other).and_then(|r| r) {
            Ok((file, bytes)) => {
                self.file = Some(file);
                self.start_read();
                Poll::Ready(Some(Ok(bytes)))
            }
            Err(e) => {
                self.remaining = 0;
                Poll::Ready(Some(Err(e)))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges() {
        use RangeAsk::*;
        assert_eq!(parse_range("bytes=0-9", 100), Part { start: 0, end: 9 });
        assert_eq!(parse_range("bytes=90-", 100), Part { start: 90, end: 99 });
        assert_eq!(
            parse_range("bytes=90-500", 100),
            Part { start: 90, end: 99 }
        );
        assert_eq!(parse_range("bytes=-10", 100), Part { start: 90, end: 99 });
        assert_eq!(parse_range("bytes=-1000", 100), Part { start: 0, end: 99 });
        assert_eq!(parse_range("bytes=100-", 100), Unsatisfiable);
        assert_eq!(parse_range("bytes=-0", 100), Unsatisfiable);
        assert_eq!(parse_range("bytes=0-", 0), Unsatisfiable);
        assert_eq!(parse_range("bytes=5-1", 100), Full);
        assert_eq!(parse_range("bytes=0-1,5-6", 100), Full);
        assert_eq!(parse_range("items=0-1", 100), Full);
        assert_eq!(parse_range("bytes=x-1", 100), Full);
    }

    #[test]
    fn if_range_strong_etag_or_exact_date() {
        let lm = "Wed, 21 Oct 2015 07:28:00 GMT";
        assert!(if_range_holds("\"abc\"", "\"abc\"", lm));
        assert!(!if_range_holds("\"abd\"", "\"abc\"", lm));
        assert!(!if_range_holds("W/\"abc\"", "\"abc\"", lm));
        assert!(if_range_holds(lm, "\"abc\"", lm));
        assert!(!if_range_holds(
            "Wed, 21 Oct 2015 07:28:01 GMT",
            "\"abc\"",
            lm
        ));
    }
}
