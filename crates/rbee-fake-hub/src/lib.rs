//! The test and benchmark server of the rbee model provisioner.
//!
//! [`FakeHub`] serves one folder over HTTP/1.1 on two loopback listeners: the **hub**
//! (`127.0.0.1`, APIs, resolve paths, plain files, redirects) and the **CDN** (`127.0.0.2`, where
//! redirects point, a different host in URLs so cross-host redirect handling is real). If
//! `127.0.0.2` cannot be bound, the CDN listens on `127.0.0.1` and is named `localhost`.
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! use rbee_fake_hub::{FakeHub, FakeHubConfig, Fault};
//!
//! let root = tempfile::tempdir()?;
//! std::fs::write(root.path().join("big.bin"), vec![7u8; 1 << 20])?;
//! let hub = FakeHub::start(FakeHubConfig::new(root.path())).await?;
//! let url = hub.file_url("big.bin"); // http://127.0.0.1:PORT/files/big.bin
//! // The first download of big.bin is cut after 64 KiB.
//! hub.set_faults(vec![Fault::drop_after(64 * 1024).path("big.bin").times(1)]);
//! // … download `url` with the client under test …
//! let sent = hub.counters_for("/files/big.bin").bytes_sent;
//! # let _ = (url, sent);
//! # Ok(()) }
//! ```
//!
//! # What it serves
//!
//! | path | listener | what |
//! |---|---|---|
//! | `GET/HEAD /files/<path>` | hub and CDN | the file `<root>/<path>` |
//! | `GET/HEAD /redirect/files/<path>` | hub | 302 to the file on the CDN, signed: `?expires=<unix>&sig=<hex>` |
//! | `/api/models/…`, `/{org}/{repo}/resolve/…` | hub | the HuggingFace Hub protocol over `<root>/hf/` |
//! | `/repos/{owner}/{repo}/releases…`, `/{owner}/{repo}/releases/download/…` | hub | the GitHub releases protocol over `<root>/gh/` |
//! | `/v2/{ns}/{model}/manifests/{tag}`, `/v2/{ns}/{model}/blobs/sha256:…`, `/v2/token` | hub | the Ollama registry protocol over `<root>/ollama/` (blobs: 307 to the CDN) |
//! | `/_admin/…` | hub | faults, counters and rate cap at run time (see the README) |
//! | `/api/models/{repo}/xet-read-token/{rev}` | hub | a Xet token, for Xet-enabled repos (see [`xet`]) |
//! | `/cas/v1/reconstructions/…`, `/cas/v2/…`, `/xorbs/…` | CDN | Xet's CAS and presigned xorb bytes (see [`xet`]) |
//!
//! Files are streamed from disk in `read_chunk` reads (1 MiB) with one read ahead; memory
//! does not grow with file size. Responses carry `Content-Length`, `Accept-Ranges: bytes`, a
//! strong `ETag` (size and modification time for plain files; the git blob id or sha256 on
//! HuggingFace resolve paths) and `Last-Modified`. `Range: bytes=a-b`, `a-` and `-n` answer 206
//! with `Content-Range`; a range past the end answers 416 with `Content-Range: bytes */len`;
//! `If-Range` that matches neither the ETag (strongly) nor `Last-Modified` (exactly) gets the
//! whole file with 200. A multi-range request gets the whole file with 200 (a server may
//! ignore `Range`). Signed CDN URLs live [`FakeHubConfig::signed_url_ttl`] (300 s); after that
//! the CDN answers 403 with an S3-style XML error, as GitHub's and the Hub's storage do. A
//! CDN URL without a query is served unsigned.
//!
//! # Folder layout
//!
//! ```text
//! <root>/any/file.bin                 /files/any/file.bin
//! <root>/hf/<org>/<repo>/…            HuggingFace repo, branch main
//!   fakehub.json                      {"private", "gated", "tokens", "tags"} (optional)
//!   .revisions/<name>/…               another branch (<name> percent-decoded: refs%2Fpr%2F1)
//! <root>/gh/<owner>/<repo>/<tag>/…    GitHub release assets
//!   ../.repo.json                     {"private", "tokens"} (optional)
//!   <tag>/.release.json               {"name", "draft", "prerelease", "published_at", …}
//! <root>/ollama/<ns>/<model>/<tag>/…  Ollama model: model.gguf, projector.gguf, adapter.gguf,
//!                                     template, system, params.json, messages.json, license
//!   ../fakehub.json                   {"auth": true}: the 401 Bearer challenge and token service
//! ```
//!
//! HuggingFace: `*.gguf`, `*.safetensors`, `*.bin`, … and files of at least
//! [`FakeHubConfig::lfs_threshold`] are LFS files (sha256, pointer blob id, 302 to the CDN);
//! others are regular git blobs served by the hub with their blob id as ETag. A revision's
//! commit sha is derived from its listing, so it is stable and changes with content. GitHub:
//! "latest" is the newest non-draft, non-prerelease release by `published_at`, then tag.
//! The crate's README has every endpoint, setting and fault with JSON examples.
//!
//! # Faults
//!
//! A [`Fault`] pairs a [`FaultAction`] (drop the connection after N body bytes, answer
//! 500/503, 429 with `Retry-After`, stall or hang mid-body, flip a byte, ignore `Range`,
//! announce a wrong `Content-Length`, expire redirect targets, GitHub rate limits) with a path
//! glob, a listener and a count. Faults are set at start ([`FakeHubConfig::faults`], `fake-hub
//! --fault JSON`), with [`FakeHub::set_faults`] and friends, or over HTTP (`/_admin/faults`).
//! They apply to every path, the HuggingFace and GitHub ones included.
//!
//! **Hostile mode** is the same mechanism for a server that lies instead of failing: bodies
//! longer than announced or without end, no `Content-Length`, `Content-Range` for another range
//! or `*`, validators that change or vanish, `If-Range` ignored, `Content-Disposition` and
//! listing names with `..`, escapes or absurd lengths, listed sizes and digests that are not the
//! body's, redirects to other schemes and hosts, and requests never answered
//! ([`Fault::endless_body`], [`Fault::listed_sha256`], [`Fault::no_response`], …).
//!
//! # Counters
//!
//! Per request path (percent-decoded, without the query; the hub and CDN share a key for the
//! same path): requests, body bytes, statuses and `Range` headers ([`PathCounters`]), plus a log
//! of recent requests ([`RequestRecord`]). Body bytes are counted as they are handed to the
//! connection; when a response does not complete (the client left, or a fault cut it), what
//! the socket never accepted is taken back, measured on the connection, so the count is what
//! was written to the socket (to within the few bytes of a `Connection` header the HTTP layer
//! may add). A completed response counts its whole body. Read counters after the client has
//! finished: a response still in flight keeps counting.
//!
//! # Rate cap
//!
//! [`FakeHubConfig::rate_limit`] / [`FakeHub::set_rate_limit`] / `fake-hub --rate-limit` cap
//! each response body (one connection's transfer) at N bytes/s, sending in slices of about
//! 1/20 s; changing it applies to bodies in flight too.
#![deny(missing_docs)]

pub use config::FakeHubConfig;
pub use counters::{CountersSnapshot, PathCounters, RequestRecord};
pub use fault::{Fault, FaultAction, FaultError, FaultState, Host};
pub use garage::Garage;
pub use server::FakeHub;
pub use tmpfs::Tmpfs;
pub use xet::{XetCounters, mutate_chunks};

mod admin;
mod app;
mod body;
mod config;
mod conn;
mod counters;
mod fault;
mod files;
mod garage;
mod gh;
mod hashes;
mod hf;
mod ollama;
pub mod python;
mod reply;
mod scanned;
mod server;
mod sign;
mod state;
mod tmpfs;
mod url_path;
mod walks;
pub mod xet;
mod xet_store;
