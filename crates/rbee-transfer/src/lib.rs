//! The rbee download engine: one URL to one file, fast and verified.
//!
//! Every HTTP vendor (HuggingFace, GitHub releases, plain URLs) resolves references to
//! [`FetchRequest`]s and hands them to one [`Transfer`], which
//! - streams into `<file>.part`, fsyncs and renames: never a final name on unverified bytes;
//! - resumes with `Range` + `If-Range` from what is on disk, restarting cleanly when the
//!   remote changed or ignores ranges;
//! - splits large files into ranges over several connections (more while each connection is
//!   throttled and the total still grows), writing in place, with the resume state in
//!   `<file>.part.state` so a killed process re-fetches only missing ranges; a connection far
//!   slower than the others has the rest of its range taken over or raced by an idle one;
//! - hashes the contiguous prefix while it downloads and checks the SHA-256 and size;
//! - retries connection failures, resets, truncations, stalls, 5xx and 429 (honouring
//!   `Retry-After`) with exponential backoff and jitter, but not a host name that does not
//!   resolve or a certificate that is not trusted;
//! - holds a rate limit across all its transfers, checks free space first, locks each file
//!   against a second writer, and never sends `Authorization` to another host.
//!
//! It trusts neither the server nor what is on disk: a complete file without a published
//! digest is fetched again; a partial is continued only as far as its bytes still hash to the
//! state saved with them and the server's validators (`ETag`, `Last-Modified`) prove the same
//! version on both sides (or a published digest will check the whole); nothing is written past
//! the size the vendor announced; links planted in place of its files are never followed; a
//! server that sends no response headers is given [`TransferConfig::response_timeout`] twice.
//!
//! ```no_run
//! use rbee_artifact::{DownloadTracker, JobId};
//! use rbee_transfer::{FetchRequest, Transfer, TransferConfig};
//! use tokio_util::sync::CancellationToken;
//!
//! # async fn demo() -> Result<(), rbee_artifact::Error> {
//! let transfer = Transfer::new(TransferConfig::default())?;
//! let url = "https://example.com/models/tiny.gguf".parse().unwrap();
//! let tracker = DownloadTracker::new(JobId::generate());
//! let files = transfer
//!     .fetch_all(vec![FetchRequest::new("tiny.gguf", url)], "/tmp/models".as_ref(), &tracker,
//!                &CancellationToken::new())
//!     .await?;
//! println!("{} bytes, sha256 {}", files[0].size, files[0].sha256);
//! # Ok(()) }
//! ```
#![deny(missing_docs)]

pub use body::read_body;
pub use config::{TransferConfig, parse_rate};
pub use dns::NameNotResolved;
pub use error::{TransferError, TransferErrorKind, redact_url};
pub use fetch::{
    ContentRange, FetchRequest, PieceSink, PieceSource, RangeRequest, parse_content_range,
    parse_range_request,
};
pub use ranged::{RangeReader, RangeStats};
pub use request::ApiRequest;
pub use retry::{jitter, parse_retry_after};
pub use transfer::{RETRY_LOG_TARGET, Transfer};
pub use written::{Written, watch_written};

mod body;
mod config;
mod dns;
mod engine;
mod error;
mod fetch;
mod http;
mod lock;
mod nofollow;
mod ranged;
mod ranges;
mod rate;
mod request;
mod retry;
mod state;
mod transfer;
mod written;
