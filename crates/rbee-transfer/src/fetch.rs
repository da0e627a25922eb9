//! The engine behind [`Transfer::fetch`](crate::Transfer::fetch): one URL to one file.
//!
//! ```text
//! lock <dest>.part.lock ─► dest complete? reuse ─► load <dest>.part.state
//!   ─► probe: first ranged GET (follows redirects once; learns size, validators, final URL)
//!   ─► preallocate <dest>.part ─► N workers claim ranges, stream, write_at, mark done
//!        (a hasher thread folds the contiguous prefix into SHA-256 as it completes;
//!         the state file is rewritten every `state_interval`)
//!   ─► verify size + sha256 ─► fsync ─► rename to dest
//! ```

use std::collections::VecDeque;
use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Duration;

use futures::StreamExt;
use futures::stream::FuturesUnordered;
use rbee_artifact_catalog::{DownloadedFile, Error, FileProgress, Sha256Digest, available_space};
use reqwest::header::{
    CONTENT_RANGE, ETAG, HeaderMap, HeaderValue, IF_RANGE, LAST_MODIFIED, RANGE,
};
use reqwest::{Method, Response, StatusCode};
use sha2::{Digest, Sha256};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use url::Url;

use crate::error::{TransferError, redact_url};
use crate::http::{self, Outgoing, SendError};
use crate::lock::FileLock;
use crate::state::{PartState, Validators, serialize_hasher, source_id};
use crate::transfer::{FetchRequest, Inner};

/// Bytes a connection gathers before one positional write.
const WRITE_BUFFER: usize = 128 << 10;
/// The smallest range handed out near the end of a file.
const MIN_CLAIM: u64 = 1 << 20;
/// Read size of the hasher.
const HASH_BLOCK: usize = 1 << 20;
/// The hasher publishes its state for the resume file at least this often (bytes).
const HASH_PUBLISH: u64 = 32 << 20;
/// How long connection growth measures before deciding.
const GROWTH_WINDOW: Duration = Duration::from_millis(500);
/// A connection at least this fast is not being throttled: more would not help.
const SLOW_CONNECTION: f64 = 64.0 * 1024.0 * 1024.0;

/// The files beside `dest`.
#[derive(Debug, Clone)]
struct Paths {
    part: PathBuf,
    state: PathBuf,
    lock: PathBuf,
}

impl Paths {
    fn new(dest: &Path) -> Self {
        let with = |suffix: &str| {
            let mut s = dest.as_os_str().to_owned();
            s.push(suffix);
            PathBuf::from(s)
        };
        Self {
            part: rbee_artifact_catalog::layout::part_path(dest),
            state: with(rbee_artifact_catalog::layout::PART_STATE_SUFFIX),
            lock: with(".part.lock"),
        }
    }
}

/// Bytes of `req` present at `dest` or in its partial file.
pub(crate) fn bytes_on_disk(req: &FetchRequest, dest: &Path) -> u64 {
    if let Ok(m) = std::fs::metadata(dest)
        && m.is_file()
        && req.expected_size == Some(m.len())
    {
        return m.len();
    }
    let paths = Paths::new(dest);
    let part_len = std::fs::metadata(&paths.part).map(|m| m.len()).unwrap_or(0);
    match PartState::load(&paths.state) {
        Some(s) if usable_state(&s, req, part_len) => s.done.len(),
        _ => 0,
    }
}

/// Whether a saved state describes a partial of this request that can be continued.
fn usable_state(s: &PartState, req: &FetchRequest, part_len: u64) -> bool {
    let want_sha = req.sha256.map(|d| d.to_string());
    let same_content = match (&want_sha, &s.sha256) {
        // Equal digests prove the same bytes even from another URL (a mirror, a new signature).
        (Some(a), Some(b)) => a == b,
        (None, None) => s.source == source_id(&req.url),
        _ => false,
    };
    let size_agrees = match (req.expected_size, s.validators.total) {
        (Some(a), Some(b)) => a == b,
        _ => true,
    };
    let on_disk = s.done.ranges().last().is_none_or(|&(_, e)| e <= part_len);
    // Without a validator or a digest nothing proves the remote still has these bytes.
    let provable = s.done.len() == 0 || s.validators.if_range().is_some() || want_sha.is_some();
    same_content && size_agrees && on_disk && provable
}

pub(crate) async fn fetch(
    inner: &Inner,
    req: &FetchRequest,
    dest: &Path,
    progress: &FileProgress,
    cancel: &CancellationToken,
) -> Result<DownloadedFile, TransferError> {
    if cancel.is_cancelled() {
        return Err(TransferError::cancelled());
    }
    if !matches!(req.url.scheme(), "http" | "https") {
        return Err(TransferError::config(format!(
            "{} is not an http(s) URL",
            redact_url(&req.url)
        )));
    }
    let headers = http::header_map(&req.headers)?;
    let paths = Paths::new(dest);
    if let Some(parent) = dest.parent() {
        tokio::fs::create_dir_all(parent)
            .await
            .map_err(|e| TransferError::io(format!("creating {}", parent.display()), e))?;
    }
    let (_lock, _waited) = FileLock::acquire(&paths.lock, cancel).await?;
    if let Some(size) = req.expected_size
        && let Some(done) = reuse_existing(req, dest, &paths, size, progress, cancel).await?
    {
        return Ok(done);
    }
    let job = Job::new(inner, req, dest, paths, headers, progress, cancel)?;
    job.run().await
}

/// A complete file already at `dest` (right size and, when known, digest).
async fn reuse_existing(
    req: &FetchRequest,
    dest: &Path,
    paths: &Paths,
    size: u64,
    progress: &FileProgress,
    cancel: &CancellationToken,
) -> Result<Option<DownloadedFile>, TransferError> {
    let Ok(meta) = tokio::fs::metadata(dest).await else {
        return Ok(None);
    };
    if !meta.is_file() || meta.len() != size {
        return Ok(None);
    }
    progress.verifying();
    let digest = hash_file(dest, cancel).await?;
    if let Some(expected) = &req.sha256
        && *expected != digest
    {
        tracing::warn!(path = %dest.display(), "a file with the right size but the wrong digest is in the way; fetching again");
        return Ok(None);
    }
    sync_progress(progress, size);
    // A complete file makes any leftover partial moot.
    let _ = std::fs::remove_file(&paths.part);
    let _ = std::fs::remove_file(&paths.state);
    tracing::debug!(path = %dest.display(), "already complete");
    Ok(Some(DownloadedFile {
        path: req.path.clone(),
        size,
        sha256: digest,
    }))
}

/// Hashes a file on a blocking thread; stops early when cancelled.
async fn hash_file(path: &Path, cancel: &CancellationToken) -> Result<Sha256Digest, TransferError> {
    let stop = Arc::new(AtomicBool::new(false));
    let path_buf = path.to_path_buf();
    let flag = stop.clone();
    let task = tokio::task::spawn_blocking(move || -> std::io::Result<Option<Sha256Digest>> {
        let file = File::open(&path_buf)?;
        let mut hasher = Sha256::new();
        let mut buf = vec![0u8; HASH_BLOCK];
        let mut off = 0u64;
        loop {
            if flag.load(Ordering::Relaxed) {
                return Ok(None);
            }
            let n = file.read_at(&mut buf, off)?;
            if n == 0 {
                return Ok(Some(hasher.finalize().into()));
            }
            hasher.update(&buf[..n]);
            off += n as u64;
        }
    });
    let result = tokio::select! {
        r = task => r,
        _ = cancel.cancelled() => {
            stop.store(true, Ordering::Relaxed);
            return Err(TransferError::cancelled());
        }
    };
    match result {
        Ok(Ok(Some(d))) => Ok(d),
        Ok(Ok(None)) => Err(TransferError::cancelled()),
        Ok(Err(e)) => Err(TransferError::io(format!("reading {}", path.display()), e)),
        Err(e) => Err(TransferError::io(
            format!("hashing {}", path.display()),
            std::io::Error::other(e),
        )),
    }
}

/// Makes `progress` show `bytes` for this file.
fn sync_progress(progress: &FileProgress, bytes: u64) {
    let shown = progress.bytes();
    if bytes > shown {
        progress.advance(bytes - shown);
    } else if shown > bytes {
        progress.rewind(shown - bytes);
    }
}

/// How an attempt ended when it did not produce the file.
#[derive(Debug)]
enum Flow {
    /// Give up with this error (transient ones are retried by the caller first).
    Fail(TransferError),
    /// The remote is not what the partial was built from (or answered inconsistently):
    /// discard and start over. The error, when given, is what to report if restarts run out.
    Restart(String, Option<TransferError>),
    /// A redirect target stopped working (expired signature): resolve it again.
    Reresolve(TransferError),
}

impl From<TransferError> for Flow {
    fn from(e: TransferError) -> Self {
        Flow::Fail(e)
    }
}

/// What a ranged GET got back.
#[derive(Debug)]
enum Got {
    /// 206 with its `Content-Range`.
    Partial(Response, ContentRange),
    /// 200: the whole file (Range ignored, or If-Range did not match).
    Full(Response),
    /// 416, with the total from `Content-Range: bytes */N` when given.
    Unsatisfiable(Option<u64>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ContentRange {
    pub(crate) start: u64,
    /// Exclusive.
    pub(crate) end: u64,
    pub(crate) total: Option<u64>,
}

/// `bytes 0-99/1000` or `bytes 0-99/*`.
pub(crate) fn parse_content_range(v: &str) -> Option<ContentRange> {
    let rest = v.trim().strip_prefix("bytes ")?;
    let (range, total) = rest.split_once('/')?;
    let (a, b) = range.split_once('-')?;
    let start: u64 = a.trim().parse().ok()?;
    let last: u64 = b.trim().parse().ok()?;
    let total = match total.trim() {
        "*" => None,
        t => Some(t.parse::<u64>().ok()?),
    };
    if last < start || total.is_some_and(|t| last >= t) {
        return None;
    }
    Some(ContentRange {
        start,
        // A hostile `bytes 0-18446744073709551615/*` must not overflow.
        end: last.checked_add(1)?,
        total,
    })
}

/// `bytes */1000`.
pub(crate) fn parse_unsatisfied_total(v: &str) -> Option<u64> {
    v.trim().strip_prefix("bytes */")?.trim().parse().ok()
}

fn validators_of(headers: &HeaderMap, total: Option<u64>) -> Validators {
    let text = |name| {
        headers
            .get(name)
            .and_then(|v: &HeaderValue| v.to_str().ok())
            .map(str::to_string)
    };
    Validators {
        total,
        etag: text(ETAG),
        last_modified: text(LAST_MODIFIED),
    }
}

/// The ledger of one file: what is written, what is left to hand out.
#[derive(Debug)]
struct Book {
    st: PartState,
    dirty: bool,
    unclaimed: VecDeque<(u64, u64)>,
    /// Range length handed out (`u64::MAX`: whole gaps, one connection).
    claim_len: u64,
    workers: usize,
    notified_prefix: u64,
    /// Bytes written since the resume state was last saved.
    unsaved: u64,
}

impl Book {
    fn total(&self) -> Option<u64> {
        self.st.validators.total
    }
}

/// Where ranges are sent: the final URL after the first redirect chain.
#[derive(Debug)]
struct Target {
    url: Url,
    generation: u64,
}

/// The hasher thread's shared state.
#[derive(Debug, Default)]
struct HashShared {
    /// End of the contiguous written prefix.
    available: u64,
    /// Bytes folded in so far, and the serialized state after them.
    hashed: u64,
    snapshot: Option<String>,
    finish_at: Option<u64>,
    abort: bool,
}

#[derive(Debug, Default)]
struct HashCell {
    m: Mutex<HashShared>,
    cv: Condvar,
}

#[derive(Debug)]
struct Shared {
    file: File,
    book: Mutex<Book>,
    hash: HashCell,
    target: Mutex<Target>,
    /// Bytes received by this process (for connection growth).
    received: AtomicU64,
    state_path: PathBuf,
    /// While set, dropping the job saves the resume state.
    armed: AtomicBool,
    /// A save runs on a blocking thread.
    saving: AtomicBool,
    /// Woken when `unsaved` passes `save_every`.
    save_soon: tokio::sync::Notify,
    save_every: u64,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Shared {
    /// Records `[off, off+len)` as written and wakes the hasher when the prefix grew.
    fn mark_written(&self, off: u64, len: u64) {
        let prefix = {
            let mut b = lock(&self.book);
            b.st.done.insert(off, off + len);
            b.dirty = true;
            b.unsaved += len;
            if b.unsaved >= self.save_every {
                // Bounds what a kill -9 loses to well under one range, however fast bytes
                // arrive.
                self.save_soon.notify_one();
            }
            let prefix = b.st.done.prefix_end();
            if prefix <= b.notified_prefix {
                return;
            }
            b.notified_prefix = prefix;
            prefix
        };
        let mut h = lock(&self.hash.m);
        h.available = h.available.max(prefix);
        self.hash.cv.notify_one();
    }

    /// The resume state as it is now: written ranges plus the hasher's last published state.
    fn snapshot(&self) -> PartState {
        let mut st = {
            let mut b = lock(&self.book);
            b.dirty = false;
            b.unsaved = 0;
            b.st.clone()
        };
        let h = lock(&self.hash.m);
        if h.snapshot.is_some() && h.hashed <= st.done.prefix_end() {
            st.hashed = h.hashed;
            st.hasher = h.snapshot.clone();
        } else if st.hashed > st.done.prefix_end() || st.hasher.is_none() {
            st.hashed = 0;
            st.hasher = None;
        }
        st
    }

    /// Writes the resume state, after making the bytes it describes durable: a state that
    /// claims ranges (and a hash of them) the disk may not hold would, after a power loss,
    /// resume over holes and publish them.
    fn persist(&self, st: &PartState) -> std::io::Result<()> {
        self.file.sync_data()?;
        st.save(&self.state_path)
    }

    fn save_sync(&self) {
        let st = self.snapshot();
        if let Err(e) = self.persist(&st) {
            tracing::warn!(path = %self.state_path.display(), error = %e, "could not save the resume state");
        }
    }

    /// Hands out the next range to fetch.
    fn claim(&self) -> Option<(u64, u64)> {
        let mut b = lock(&self.book);
        let (s, e) = b.unclaimed.pop_front()?;
        let mut len = e - s;
        if b.claim_len != u64::MAX {
            let remaining: u64 = len + b.unclaimed.iter().map(|(s, e)| e - s).sum::<u64>();
            // Near the end, smaller ranges keep every connection busy to the last byte.
            let fair = (remaining / (b.workers as u64 * 2).max(1)).max(MIN_CLAIM);
            len = len.min(b.claim_len).min(fair);
        }
        if s + len < e {
            b.unclaimed.push_front((s + len, e));
        }
        Some((s, s + len))
    }

    fn unclaimed_bytes(&self) -> u64 {
        lock(&self.book).unclaimed.iter().map(|(s, e)| e - s).sum()
    }

    fn stop_hasher(&self) {
        let mut h = lock(&self.hash.m);
        h.abort = true;
        self.hash.cv.notify_all();
    }
}

/// Folds the written prefix of the file into SHA-256 as it grows. Returns the hasher once
/// `finish_at` bytes are in, `None` when aborted.
fn hash_loop(
    shared: Arc<Shared>,
    mut hasher: Sha256,
    mut hashed: u64,
) -> std::io::Result<Option<Sha256>> {
    let mut buf = vec![0u8; HASH_BLOCK];
    let mut last_publish = hashed;
    loop {
        let available = {
            let mut h = lock(&shared.hash.m);
            loop {
                if h.abort {
                    return Ok(None);
                }
                if h.finish_at.is_some_and(|t| hashed >= t) {
                    h.hashed = hashed;
                    h.snapshot = Some(serialize_hasher(&hasher));
                    return Ok(Some(hasher));
                }
                if h.available > hashed {
                    break h.available;
                }
                h = shared.hash.cv.wait(h).unwrap_or_else(|e| e.into_inner());
            }
        };
        while hashed < available {
            let n = ((available - hashed) as usize).min(HASH_BLOCK);
            shared.file.read_exact_at(&mut buf[..n], hashed)?;
            hasher.update(&buf[..n]);
            hashed += n as u64;
            if hashed - last_publish >= HASH_PUBLISH || hashed == available {
                last_publish = hashed;
                let snapshot = serialize_hasher(&hasher);
                let mut h = lock(&shared.hash.m);
                if h.abort {
                    return Ok(None);
                }
                h.hashed = hashed;
                h.snapshot = Some(snapshot);
            }
        }
    }
}

type HashTask = tokio::task::JoinHandle<std::io::Result<Option<Sha256>>>;

/// One call of `fetch`, after the lock is held.
struct Job<'a> {
    inner: &'a Inner,
    req: &'a FetchRequest,
    dest: &'a Path,
    paths: Paths,
    headers: HeaderMap,
    progress: &'a FileProgress,
    cancel: &'a CancellationToken,
    what: String,
    shared: Arc<Shared>,
}

impl Drop for Job<'_> {
    fn drop(&mut self) {
        self.shared.stop_hasher();
        // Dropped mid-way (the caller's future was dropped, or it failed): keep what is on
        // disk resumable.
        if self.shared.armed.load(Ordering::Acquire) {
            self.shared.save_sync();
        }
    }
}

impl<'a> Job<'a> {
    fn new(
        inner: &'a Inner,
        req: &'a FetchRequest,
        dest: &'a Path,
        paths: Paths,
        headers: HeaderMap,
        progress: &'a FileProgress,
        cancel: &'a CancellationToken,
    ) -> Result<Self, TransferError> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&paths.part)
            .map_err(|e| TransferError::io(format!("opening {}", paths.part.display()), e))?;
        let part_len = file
            .metadata()
            .map_err(|e| TransferError::io(format!("reading {}", paths.part.display()), e))?
            .len();
        let sha_hex = req.sha256.map(|d| d.to_string());
        let st = match PartState::load(&paths.state) {
            Some(mut s) if usable_state(&s, req, part_len) => {
                s.source = source_id(&req.url);
                tracing::debug!(path = %dest.display(), bytes = s.done.len(), "resuming a partial file");
                s
            }
            other => {
                if other.is_some() || part_len > 0 {
                    tracing::info!(path = %dest.display(), "discarding a partial file that cannot be resumed");
                }
                file.set_len(0).map_err(|e| {
                    TransferError::io(format!("truncating {}", paths.part.display()), e)
                })?;
                PartState::new(source_id(&req.url), sha_hex)
            }
        };
        sync_progress(progress, st.done.len());
        let shared = Arc::new(Shared {
            file,
            book: Mutex::new(Book {
                st,
                dirty: true,
                unclaimed: VecDeque::new(),
                claim_len: u64::MAX,
                workers: 1,
                notified_prefix: 0,
                unsaved: 0,
            }),
            hash: HashCell::default(),
            target: Mutex::new(Target {
                url: req.url.clone(),
                generation: 0,
            }),
            received: AtomicU64::new(0),
            state_path: paths.state.clone(),
            armed: AtomicBool::new(true),
            saving: AtomicBool::new(false),
            save_soon: tokio::sync::Notify::new(),
            save_every: (inner.config.chunk_size / 4).max(1 << 20),
        });
        Ok(Self {
            inner,
            req,
            dest,
            paths,
            headers,
            progress,
            cancel,
            what: format!("GET {}", redact_url(&req.url)),
            shared,
        })
    }

    async fn run(self) -> Result<DownloadedFile, TransferError> {
        let max_restarts = self.inner.config.max_attempts;
        let mut restarts = 0;
        loop {
            match self.attempt().await {
                Ok(done) => return Ok(done),
                Err(Flow::Fail(e)) => {
                    self.shared.stop_hasher();
                    self.save_state().await;
                    return Err(e);
                }
                Err(Flow::Restart(reason, error)) => {
                    restarts += 1;
                    if restarts > max_restarts {
                        self.save_state().await;
                        return Err(error.unwrap_or_else(|| {
                            TransferError::protocol(format!(
                                "{}: {reason}, {restarts} times; giving up",
                                self.what
                            ))
                        }));
                    }
                    tracing::info!(url = %redact_url(&self.req.url), %reason, "starting the file over");
                    self.progress.retrying(
                        restarts + 1,
                        Duration::ZERO,
                        format!("{reason}; starting over"),
                    );
                    self.reset_data()?;
                }
                Err(Flow::Reresolve(e)) => return Err(e),
            }
        }
    }

    /// Forgets every byte of the partial (the remote changed or ignores ranges).
    fn reset_data(&self) -> Result<(), TransferError> {
        let mut b = lock(&self.shared.book);
        self.progress.rewind(b.st.done.len());
        let source = b.st.source.clone();
        let sha = b.st.sha256.clone();
        b.st = PartState::new(source, sha);
        b.unclaimed.clear();
        b.notified_prefix = 0;
        b.dirty = true;
        drop(b);
        *lock(&self.shared.hash.m) = HashShared::default();
        self.shared
            .file
            .set_len(0)
            .map_err(|e| TransferError::io(format!("truncating {}", self.paths.part.display()), e))
    }

    /// Writes the resume state if anything changed since the last time, and waits for it.
    async fn save_state(&self) {
        self.settle_saves().await;
        if !self.shared.armed.load(Ordering::Acquire) || !lock(&self.shared.book).dirty {
            return;
        }
        let shared = self.shared.clone();
        let _ = tokio::task::spawn_blocking(move || shared.save_sync()).await;
    }

    /// Starts writing the resume state without waiting (the connections keep running); skipped
    /// while a save is still in flight.
    fn save_detached(&self) {
        if !self.shared.armed.load(Ordering::Acquire)
            || !lock(&self.shared.book).dirty
            || self.shared.saving.swap(true, Ordering::AcqRel)
        {
            return;
        }
        let st = self.shared.snapshot();
        let shared = self.shared.clone();
        tokio::task::spawn_blocking(move || {
            if shared.armed.load(Ordering::Acquire)
                && let Err(e) = shared.persist(&st)
            {
                tracing::warn!(path = %shared.state_path.display(), error = %e, "could not save the resume state");
            }
            shared.saving.store(false, Ordering::Release);
        });
    }

    /// Waits until no detached save is in flight.
    async fn settle_saves(&self) {
        while self.shared.saving.load(Ordering::Acquire) {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }

    /// One pass: probe, then fetch every missing range, then verify and publish.
    async fn attempt(&self) -> Result<DownloadedFile, Flow> {
        let (known_total, first_gap, covered) = {
            let b = lock(&self.shared.book);
            let total = b.total().or(self.req.expected_size);
            let first_gap =
                b.st.done
                    .gaps(total.unwrap_or(u64::MAX))
                    .first()
                    .map(|g| g.0);
            (total, first_gap, total.is_some_and(|t| b.st.done.covers(t)))
        };
        if covered {
            // Every byte is on disk already (the last run stopped just before publishing).
            let total = known_total.unwrap_or(0);
            return self.finish(total, self.start_hasher()).await;
        }
        let first_gap = first_gap.unwrap_or(0);
        if let Some(total) = known_total {
            self.check_space(total)?;
            self.plan(total);
        }
        let probe_claim = if known_total.is_some() {
            self.shared.claim().unwrap_or((first_gap, u64::MAX))
        } else {
            (first_gap, u64::MAX)
        };
        let stop = self.cancel.child_token();
        let mut attempt = 1;
        let got = self
            .open_raw(probe_claim.0, probe_claim.1, &mut attempt, &stop)
            .await?;
        let announced = match &got {
            Got::Full(r) => r.content_length(),
            Got::Partial(_, cr) => cr.total,
            Got::Unsatisfiable(_) => None,
        };
        if known_total.is_none()
            && let Some(total) = announced
            && lock(&self.shared.book).st.done.len() == 0
            && let Some(done) = reuse_existing(
                self.req,
                self.dest,
                &self.paths,
                total,
                self.progress,
                self.cancel,
            )
            .await?
        {
            // The size was unknown before asking; the file at `dest` turns out complete (for
            // instance another process just finished it).
            self.shared.armed.store(false, Ordering::Release);
            return Ok(done);
        }
        let first = match got {
            Got::Unsatisfiable(total) => {
                let covered = {
                    let b = lock(&self.shared.book);
                    total.is_some_and(|t| b.st.done.covers(t))
                };
                if total == Some(0) || covered {
                    let total = total.unwrap_or(0);
                    lock(&self.shared.book).st.validators.total = Some(total);
                    return self.finish(total, self.start_hasher()).await;
                }
                return Err(Flow::Restart(
                    "the server refused the range (416)".to_string(),
                    None,
                ));
            }
            Got::Full(resp) => {
                let total = resp.content_length();
                // A whole-file answer whose length disagrees with the vendor may be a broken
                // response (a wrong Content-Length): ask again before calling it a mismatch.
                if let Err(Flow::Fail(e)) = self.check_announced(total) {
                    return Err(Flow::Restart(e.to_string(), Some(e)));
                }
                if lock(&self.shared.book).st.done.len() > 0 {
                    tracing::info!(url = %redact_url(&self.req.url), "the server sent the whole file instead of the missing range; starting over");
                    self.reset_data()?;
                }
                let validators = validators_of(resp.headers(), total);
                {
                    let mut b = lock(&self.shared.book);
                    b.st.validators = validators;
                    b.claim_len = u64::MAX;
                    b.workers = 1;
                    b.unclaimed.clear();
                    b.dirty = true;
                }
                let end = total.unwrap_or(u64::MAX);
                (resp, (0, end), end)
            }
            Got::Partial(resp, cr) => {
                if cr.start != probe_claim.0 {
                    return Err(Flow::Fail(TransferError::protocol(format!(
                        "{}: asked for bytes from {} but the server sent bytes from {}",
                        self.what, probe_claim.0, cr.start
                    ))));
                }
                let validators = validators_of(resp.headers(), cr.total);
                {
                    let b = lock(&self.shared.book);
                    if b.st.done.len() > 0 && !b.st.validators.same_as(&validators) {
                        return Err(Flow::Restart(
                            "the remote file changed since the partial download".to_string(),
                            None,
                        ));
                    }
                }
                self.check_announced(cr.total)?;
                let claim = match (known_total, cr.total) {
                    (Some(_), _) => probe_claim,
                    (None, Some(total)) => {
                        self.check_space(total)?;
                        lock(&self.shared.book).st.validators.total = Some(total);
                        self.plan(total);
                        self.shared.claim().unwrap_or((cr.start, total))
                    }
                    (None, None) => (cr.start, u64::MAX),
                };
                {
                    let mut b = lock(&self.shared.book);
                    b.st.validators = validators;
                    b.dirty = true;
                }
                let stream_end = claim.1.min(cr.end);
                (resp, claim, stream_end)
            }
        };
        let total = lock(&self.shared.book).total();
        if let Some(total) = total {
            self.progress.set_size(total);
            self.preallocate(total)?;
        }
        self.save_state().await;
        let hasher = self.start_hasher();
        let result = self.run_workers(first, &stop, attempt).await;
        if let Err(flow) = result {
            self.shared.stop_hasher();
            let _ = hasher.await;
            return Err(flow);
        }
        let total = {
            let mut b = lock(&self.shared.book);
            let total = b.total().unwrap_or_else(|| b.st.done.prefix_end());
            b.st.validators.total = Some(total);
            if !b.st.done.covers(total) {
                return Err(Flow::Fail(TransferError::protocol(format!(
                    "{}: ranges are missing after the transfer",
                    self.what
                ))));
            }
            total
        };
        self.finish(total, hasher).await
    }

    /// Sets up range hand-out for a file of `total` bytes.
    fn plan(&self, total: u64) {
        let config = &self.inner.config;
        let parallel = total >= config.parallel_threshold && config.connections > 1;
        let mut b = lock(&self.shared.book);
        b.unclaimed = b.st.done.gaps(total).into();
        b.claim_len = if parallel {
            config.chunk_size
        } else {
            u64::MAX
        };
        b.workers = if parallel { config.connections } else { 1 };
    }

    /// A size announced by the server must match the vendor's.
    fn check_announced(&self, total: Option<u64>) -> Result<(), Flow> {
        if let (Some(expected), Some(actual)) = (self.req.expected_size, total)
            && expected != actual
        {
            return Err(Flow::Fail(
                Error::SizeMismatch {
                    path: self.req.path.clone(),
                    expected,
                    actual,
                }
                .into(),
            ));
        }
        Ok(())
    }

    fn check_space(&self, total: u64) -> Result<(), Flow> {
        if !self.inner.config.check_disk_space {
            return Ok(());
        }
        let dir = self.paths.part.parent().unwrap_or(Path::new("."));
        let reserved = fs4::FileExt::allocated_size(&self.shared.file).unwrap_or(0);
        let needed = total.saturating_sub(reserved);
        if needed == 0 {
            return Ok(());
        }
        match available_space(dir) {
            Ok(available) if available < needed => Err(Flow::Fail(
                Error::InsufficientSpace {
                    path: dir.to_path_buf(),
                    needed,
                    available,
                }
                .into(),
            )),
            Ok(_) => Ok(()),
            Err(e) => {
                tracing::debug!(dir = %dir.display(), error = %e, "could not read free space; going on");
                Ok(())
            }
        }
    }

    /// Reserves the whole file so parallel writes land in place and a full disk shows now.
    fn preallocate(&self, total: u64) -> Result<(), Flow> {
        let file = &self.shared.file;
        let len = file
            .metadata()
            .map_err(|e| TransferError::io(format!("reading {}", self.paths.part.display()), e))?
            .len();
        if len == total {
            return Ok(());
        }
        if len < total
            && let Err(e) = fs4::FileExt::allocate(file, total)
        {
            if e.raw_os_error() == Some(28) {
                let dir = self.paths.part.parent().unwrap_or(Path::new("."));
                return Err(Flow::Fail(
                    Error::InsufficientSpace {
                        path: dir.to_path_buf(),
                        needed: total - len,
                        available: available_space(dir).unwrap_or(0),
                    }
                    .into(),
                ));
            }
            tracing::debug!(error = %e, "preallocation not supported here; the file grows as it is written");
        }
        file.set_len(total).map_err(|e| {
            TransferError::io(format!("sizing {}", self.paths.part.display()), e).into()
        })
    }

    fn start_hasher(&self) -> HashTask {
        let (hashed, hasher) = {
            let b = lock(&self.shared.book);
            match b.st.restore_hasher() {
                Some((n, h)) => (n, h),
                None => (0, Sha256::new()),
            }
        };
        {
            let mut h = lock(&self.shared.hash.m);
            let prefix = lock(&self.shared.book).st.done.prefix_end();
            *h = HashShared {
                available: prefix,
                hashed,
                snapshot: (hashed > 0).then(|| serialize_hasher(&hasher)),
                finish_at: None,
                abort: false,
            };
            lock(&self.shared.book).notified_prefix = prefix;
        }
        let shared = self.shared.clone();
        tokio::task::spawn_blocking(move || hash_loop(shared, hasher, hashed))
    }

    /// Waits for the hash of all `total` bytes, verifies, fsyncs and publishes the file.
    async fn finish(&self, total: u64, hasher: HashTask) -> Result<DownloadedFile, Flow> {
        // No save may land after the partial is discarded or published.
        self.settle_saves().await;
        self.progress.verifying();
        {
            let mut h = lock(&self.shared.hash.m);
            h.finish_at = Some(total);
            h.available = h
                .available
                .max(lock(&self.shared.book).st.done.prefix_end());
            self.shared.hash.cv.notify_all();
        }
        let hashed = tokio::select! {
            r = hasher => r,
            _ = self.cancel.cancelled() => {
                self.shared.stop_hasher();
                return Err(Flow::Fail(TransferError::cancelled()));
            }
        };
        let hasher = match hashed {
            Ok(Ok(Some(h))) => h,
            Ok(Ok(None)) => return Err(Flow::Fail(TransferError::cancelled())),
            Ok(Err(e)) => {
                return Err(Flow::Fail(TransferError::io(
                    format!("reading back {}", self.paths.part.display()),
                    e,
                )));
            }
            Err(e) => {
                return Err(Flow::Fail(TransferError::io(
                    "hashing",
                    std::io::Error::other(e),
                )));
            }
        };
        let digest: Sha256Digest = hasher.finalize().into();
        if let Some(expected) = self.req.expected_size
            && expected != total
        {
            self.discard();
            return Err(Flow::Fail(
                Error::SizeMismatch {
                    path: self.req.path.clone(),
                    expected,
                    actual: total,
                }
                .into(),
            ));
        }
        if let Some(expected) = self.req.sha256
            && expected != digest
        {
            self.discard();
            return Err(Flow::Fail(
                Error::Integrity {
                    path: self.req.path.clone(),
                    expected: expected.to_string(),
                    actual: digest.to_string(),
                }
                .into(),
            ));
        }
        let shared = self.shared.clone();
        let part = self.paths.part.clone();
        let state = self.paths.state.clone();
        let dest = self.dest.to_path_buf();
        let publish = tokio::task::spawn_blocking(move || -> std::io::Result<()> {
            shared.file.set_len(total)?;
            shared.file.sync_all()?;
            std::fs::rename(&part, &dest)?;
            if let Some(dir) = dest.parent()
                && let Ok(d) = File::open(dir)
            {
                let _ = d.sync_all();
            }
            let _ = std::fs::remove_file(&state);
            Ok(())
        });
        self.shared.armed.store(false, Ordering::Release);
        match publish.await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                self.shared.armed.store(true, Ordering::Release);
                return Err(Flow::Fail(TransferError::io(
                    format!("publishing {}", self.dest.display()),
                    e,
                )));
            }
            Err(e) => {
                return Err(Flow::Fail(TransferError::io(
                    "publishing",
                    std::io::Error::other(e),
                )));
            }
        }
        sync_progress(self.progress, total);
        Ok(DownloadedFile {
            path: self.req.path.clone(),
            size: total,
            sha256: digest,
        })
    }

    /// Deletes the partial and its state: its bytes are wrong.
    fn discard(&self) {
        self.shared.armed.store(false, Ordering::Release);
        self.shared.stop_hasher();
        self.progress.rewind(lock(&self.shared.book).st.done.len());
        let _ = std::fs::remove_file(&self.paths.part);
        let _ = std::fs::remove_file(&self.paths.state);
    }

    /// Runs the connections until every range is written, saving state on the way and adding
    /// connections while that helps.
    async fn run_workers(
        &self,
        first: (Response, (u64, u64), u64),
        stop: &CancellationToken,
        probe_attempts: u32,
    ) -> Result<(), Flow> {
        let config = &self.inner.config;
        let mut workers = FuturesUnordered::new();
        workers.push(self.worker(Some(first), stop, probe_attempts));
        let initial = lock(&self.shared.book).workers;
        for _ in 1..initial {
            workers.push(self.worker(None, stop, 1));
        }
        let mut active = initial;
        let mut growth = Growth::new(self.shared.received.load(Ordering::Relaxed));
        let mut ticker = tokio::time::interval_at(
            Instant::now() + config.state_interval,
            config.state_interval,
        );
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut failure: Option<Flow> = None;
        loop {
            tokio::select! {
                next = workers.next() => match next {
                    None => break,
                    Some(Ok(())) => {}
                    Some(Err(flow)) => {
                        if failure.is_none() {
                            failure = Some(flow);
                            stop.cancel();
                        } else if let (Some(Flow::Fail(prev)), Flow::Fail(e)) = (&failure, &flow)
                            && prev.is_cancelled() && !e.is_cancelled()
                        {
                            failure = Some(flow);
                        }
                    }
                },
                _ = self.shared.save_soon.notified() => self.save_detached(),
                _ = ticker.tick() => {
                    self.save_detached();
                    if failure.is_none() {
                        let parallel = lock(&self.shared.book).claim_len != u64::MAX;
                        let add = growth.decide(
                            self.shared.received.load(Ordering::Relaxed),
                            active,
                            parallel,
                            config,
                            self.shared.unclaimed_bytes(),
                        );
                        if add > 0 {
                            tracing::debug!(from = active, to = active + add, "adding connections");
                            active += add;
                            lock(&self.shared.book).workers = active;
                            for _ in 0..add {
                                workers.push(self.worker(None, stop, 1));
                            }
                        }
                    }
                }
            }
        }
        match failure {
            None => {
                self.save_state().await;
                Ok(())
            }
            Some(flow) => {
                // A user cancel wins over whatever the workers said while stopping.
                if self.cancel.is_cancelled() {
                    return Err(Flow::Fail(TransferError::cancelled()));
                }
                Err(flow)
            }
        }
    }

    /// One connection: takes ranges until none are left.
    async fn worker(
        &self,
        mut first: Option<(Response, (u64, u64), u64)>,
        stop: &CancellationToken,
        attempts: u32,
    ) -> Result<(), Flow> {
        let mut attempts = attempts;
        loop {
            let (resp, claim) = match first.take() {
                Some((resp, claim, end)) => (Some((resp, end)), claim),
                None => match self.shared.claim() {
                    Some(claim) => (None, claim),
                    None => return Ok(()),
                },
            };
            self.fetch_range(claim, resp, stop, attempts).await?;
            attempts = 1;
        }
    }

    /// Fetches `[start, end)` (`end` = `u64::MAX`: to the end of the body), retrying transient
    /// failures from where the bytes stopped.
    async fn fetch_range(
        &self,
        (start, end): (u64, u64),
        mut resp: Option<(Response, u64)>,
        stop: &CancellationToken,
        mut attempt: u32,
    ) -> Result<(), Flow> {
        let max = self.inner.config.max_attempts;
        let mut pos = start;
        loop {
            if pos >= end {
                return Ok(());
            }
            let (r, stream_end) = match resp.take() {
                Some(r) => r,
                None => self.open(pos, end, &mut attempt, stop).await?,
            };
            let before = pos;
            match self.stream(r, &mut pos, stream_end, stop).await {
                Ok(()) => {
                    if end == u64::MAX {
                        return Ok(());
                    }
                }
                Err(Flow::Fail(e)) if e.is_transient() => {
                    if pos > before {
                        // Progress was made: this is a new problem, not the same one again.
                        attempt = 1;
                    }
                    attempt += 1;
                    if attempt > max {
                        return Err(Flow::Fail(e.with_attempts(attempt - 1)));
                    }
                    // A server that does not honour ranges answers the retry with the whole
                    // file, which `open` turns into a clean restart.
                    let delay = self.inner.backoff.delay(attempt);
                    tracing::debug!(url = %redact_url(&self.req.url), error = %e, attempt, "retrying the range");
                    self.progress.retrying(attempt, delay, e.to_string());
                    self.sleep(delay, stop).await?;
                }
                Err(flow) => return Err(flow),
            }
        }
    }

    async fn sleep(&self, delay: Duration, stop: &CancellationToken) -> Result<(), Flow> {
        tokio::select! {
            _ = tokio::time::sleep(delay) => Ok(()),
            _ = stop.cancelled() => Err(Flow::Fail(TransferError::cancelled())),
        }
    }

    /// Opens `[pos, end)` for a worker: a 206 from `pos` of the same remote, or why not.
    async fn open(
        &self,
        pos: u64,
        end: u64,
        attempt: &mut u32,
        stop: &CancellationToken,
    ) -> Result<(Response, u64), Flow> {
        match self.open_raw(pos, end, attempt, stop).await? {
            Got::Partial(resp, cr) => {
                let validators = validators_of(resp.headers(), cr.total);
                let b = lock(&self.shared.book);
                if cr.start != pos
                    || (b.st.validators.total.is_some() && cr.total != b.st.validators.total)
                    || !b.st.validators.same_as(&validators)
                {
                    return Err(Flow::Restart(
                        "the remote file changed during the download".to_string(),
                        None,
                    ));
                }
                Ok((resp, end.min(cr.end)))
            }
            Got::Full(resp) => {
                let b = lock(&self.shared.book);
                let total = resp.content_length();
                let single = b.claim_len == u64::MAX;
                if pos == 0
                    && single
                    && (b.st.validators.total.is_none() || b.st.validators.total == total)
                    && b.st
                        .validators
                        .same_as(&validators_of(resp.headers(), total))
                {
                    return Ok((resp, end));
                }
                Err(Flow::Restart(
                    "the server sent the whole file in answer to a range request".to_string(),
                    None,
                ))
            }
            Got::Unsatisfiable(_) => Err(Flow::Restart(
                "the server refused the range (416)".to_string(),
                None,
            )),
        }
    }

    /// One ranged GET with retries for failures before the body: connection errors, 5xx, 429
    /// (honouring `Retry-After`), and expired redirect targets (resolved again).
    async fn open_raw(
        &self,
        pos: u64,
        end: u64,
        attempt: &mut u32,
        stop: &CancellationToken,
    ) -> Result<Got, Flow> {
        let max = self.inner.config.max_attempts;
        loop {
            let err = match self.request_range(pos, end, *attempt, stop).await {
                Ok(got) => return Ok(got),
                Err(Flow::Reresolve(e)) => {
                    *attempt += 1;
                    if *attempt > max {
                        return Err(Flow::Fail(e.with_attempts(*attempt - 1)));
                    }
                    self.progress.retrying(
                        *attempt,
                        Duration::ZERO,
                        "the download link expired; resolving it again",
                    );
                    continue;
                }
                Err(Flow::Fail(e)) if e.is_transient() => e,
                Err(flow) => return Err(flow),
            };
            *attempt += 1;
            if *attempt > max {
                return Err(Flow::Fail(err.with_attempts(*attempt - 1)));
            }
            let Some(delay) = self.inner.backoff.delay_for(*attempt, err.retry_after()) else {
                return Err(Flow::Fail(err.with_attempts(*attempt - 1)));
            };
            tracing::debug!(url = %redact_url(&self.req.url), error = %err, attempt = *attempt, "retrying the request");
            self.progress.retrying(*attempt, delay, err.to_string());
            self.sleep(delay, stop).await?;
        }
    }

    /// Sends one ranged GET to the current target.
    async fn request_range(
        &self,
        pos: u64,
        end: u64,
        attempt: u32,
        stop: &CancellationToken,
    ) -> Result<Got, Flow> {
        let (url, generation) = {
            let t = lock(&self.shared.target);
            (t.url.clone(), t.generation)
        };
        let mut headers = self.headers.clone();
        let range = if end == u64::MAX {
            format!("bytes={pos}-")
        } else {
            format!("bytes={pos}-{}", end - 1)
        };
        headers.insert(RANGE, HeaderValue::from_str(&range).expect("ascii range"));
        let if_range = lock(&self.shared.book)
            .st
            .validators
            .if_range()
            .map(str::to_string);
        if let Some(v) = if_range
            && let Ok(v) = HeaderValue::from_str(&v)
        {
            headers.insert(IF_RANGE, v);
        }
        let cached = url != self.req.url;
        let out = Outgoing {
            method: Method::GET,
            url: url.clone(),
            auth: self.req.auth.as_ref().map(|s| (s, &self.req.url)),
            headers,
            follow_redirects: true,
        };
        let sent = match http::send(&self.inner.data, out, stop).await {
            Ok(sent) => sent,
            Err(SendError::Cancelled) => return Err(Flow::Fail(TransferError::cancelled())),
            Err(e) => return Err(Flow::Fail(e.into_transfer(&self.what, attempt))),
        };
        if sent.redirected {
            let mut t = lock(&self.shared.target);
            if t.generation == generation {
                t.url = sent.url.clone();
                t.generation += 1;
            }
        }
        let redirected = sent.redirected;
        let resp = sent.response;
        let status = resp.status();
        match status {
            StatusCode::PARTIAL_CONTENT => {
                let cr = resp
                    .headers()
                    .get(CONTENT_RANGE)
                    .and_then(|v| v.to_str().ok())
                    .and_then(parse_content_range)
                    .ok_or_else(|| {
                        // A broken proxy or server; another attempt may reach a sane one.
                        Flow::Fail(TransferError::protocol(format!(
                            "{}: 206 without a valid Content-Range",
                            self.what
                        )))
                    })?;
                Ok(Got::Partial(resp, cr))
            }
            StatusCode::OK => Ok(Got::Full(resp)),
            StatusCode::RANGE_NOT_SATISFIABLE => Ok(Got::Unsatisfiable(
                resp.headers()
                    .get(CONTENT_RANGE)
                    .and_then(|v| v.to_str().ok())
                    .and_then(parse_unsatisfied_total),
            )),
            s if (cached || redirected) && matches!(s.as_u16(), 400 | 401 | 403 | 404 | 410) => {
                // A signed CDN link that expired (or was stale when issued): go back to the
                // original URL for a fresh one. Attempts bound this when the refusal is real.
                let mut t = lock(&self.shared.target);
                if t.generation == generation {
                    t.url = self.req.url.clone();
                    t.generation += 1;
                }
                Err(Flow::Reresolve(TransferError::from_status(
                    &format!("GET {}", redact_url(&url)),
                    s,
                    resp.headers().clone(),
                    attempt,
                )))
            }
            s => Err(Flow::Fail(TransferError::from_status(
                &self.what,
                s,
                resp.headers().clone(),
                attempt,
            ))),
        }
    }

    /// Streams a body into the file at `*pos` until `end` (or the body ends), advancing `*pos`
    /// as bytes are written. Every read is raced against `stop` and the stall timeout.
    async fn stream(
        &self,
        mut resp: Response,
        pos: &mut u64,
        end: u64,
        stop: &CancellationToken,
    ) -> Result<(), Flow> {
        let stall = self.inner.config.stall_timeout;
        let mut buf: Vec<u8> = Vec::with_capacity(WRITE_BUFFER);
        loop {
            let next = tokio::select! {
                biased;
                _ = stop.cancelled() => None,
                r = tokio::time::timeout(stall, resp.chunk()) => Some(r),
            };
            let outcome = match next {
                None => Err(TransferError::cancelled()),
                Some(Err(_)) => Err(TransferError::stalled(&self.what, stall, 1)),
                Some(Ok(Err(e))) => Err(TransferError::network(&self.what, e, 1)),
                Some(Ok(Ok(None))) => {
                    let got = *pos + buf.len() as u64;
                    if end != u64::MAX && got < end {
                        Err(TransferError::truncated(&self.what, got, end, 1))
                    } else {
                        Ok(true)
                    }
                }
                Some(Ok(Ok(Some(bytes)))) => {
                    let room = end - (*pos + buf.len() as u64);
                    let take = (bytes.len() as u64).min(room) as usize;
                    if take > 0 {
                        if let Some(limiter) = &self.inner.limiter
                            && !limiter.acquire(take as u64, stop).await
                        {
                            self.flush(&mut buf, pos).await?;
                            return Err(Flow::Fail(TransferError::cancelled()));
                        }
                        buf.extend_from_slice(&bytes[..take]);
                        self.shared
                            .received
                            .fetch_add(take as u64, Ordering::Relaxed);
                        self.progress.advance(take as u64);
                    }
                    Ok(*pos + buf.len() as u64 >= end)
                }
            };
            match outcome {
                Ok(true) => {
                    self.flush(&mut buf, pos).await?;
                    return Ok(());
                }
                Ok(false) => {
                    if buf.len() >= WRITE_BUFFER {
                        self.flush(&mut buf, pos).await?;
                    }
                }
                Err(e) => {
                    // What arrived is good: keep it for the retry or the resume.
                    self.flush(&mut buf, pos).await?;
                    return Err(Flow::Fail(e));
                }
            }
        }
    }

    /// Writes the buffer at `*pos` on a blocking thread and records it.
    async fn flush(&self, buf: &mut Vec<u8>, pos: &mut u64) -> Result<(), Flow> {
        if buf.is_empty() {
            return Ok(());
        }
        let data = std::mem::take(buf);
        let off = *pos;
        let shared = self.shared.clone();
        let (data, result) = tokio::task::spawn_blocking(move || {
            let r = shared.file.write_all_at(&data, off);
            (data, r)
        })
        .await
        .map_err(|e| TransferError::io("writing", std::io::Error::other(e)))?;
        result.map_err(|e| {
            if e.raw_os_error() == Some(28) {
                let dir = self.paths.part.parent().unwrap_or(Path::new("."));
                TransferError::from(Error::InsufficientSpace {
                    path: dir.to_path_buf(),
                    needed: data.len() as u64,
                    available: 0,
                })
            } else {
                TransferError::io(format!("writing {}", self.paths.part.display()), e)
            }
        })?;
        let len = data.len() as u64;
        self.shared.mark_written(off, len);
        *pos += len;
        *buf = data;
        buf.clear();
        Ok(())
    }
}

/// Decides when more connections help: each one is slow (a per-connection cap) and the total
/// still rose after the last increase.
#[derive(Debug)]
struct Growth {
    last_at: Instant,
    last_received: u64,
    base_rate: Option<f64>,
    done: bool,
}

impl Growth {
    fn new(received: u64) -> Self {
        Self {
            last_at: Instant::now(),
            last_received: received,
            base_rate: None,
            done: false,
        }
    }

    fn decide(
        &mut self,
        received: u64,
        active: usize,
        parallel: bool,
        config: &crate::TransferConfig,
        unclaimed: u64,
    ) -> usize {
        if self.done || !parallel {
            return 0;
        }
        let now = Instant::now();
        let dt = now.duration_since(self.last_at);
        if dt < GROWTH_WINDOW {
            return 0;
        }
        let rate = received.saturating_sub(self.last_received) as f64 / dt.as_secs_f64();
        self.last_at = now;
        self.last_received = received;
        if active >= config.max_connections {
            self.done = true;
            return 0;
        }
        if let Some(limit) = config.rate_limit
            && rate >= limit as f64 * 0.8
        {
            // The limit, not the connections, is what holds us back.
            return 0;
        }
        if rate / active as f64 >= SLOW_CONNECTION {
            self.done = true;
            return 0;
        }
        let rising = self.base_rate.is_none_or(|base| rate > base * 1.15);
        if !rising {
            self.done = true;
            return 0;
        }
        self.base_rate = Some(rate);
        let by_work = (unclaimed / MIN_CLAIM) as usize;
        active.min(config.max_connections - active).min(by_work)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_ranges() {
        assert_eq!(
            parse_content_range("bytes 0-99/1000"),
            Some(ContentRange {
                start: 0,
                end: 100,
                total: Some(1000)
            })
        );
        assert_eq!(
            parse_content_range("bytes 5-5/*").map(|c| (c.end, c.total)),
            Some((6, None))
        );
        assert_eq!(parse_content_range("bytes 10-5/100"), None);
        assert_eq!(parse_content_range("bytes 0-100/100"), None);
        assert_eq!(parse_content_range("items 0-1/2"), None);
        assert_eq!(parse_unsatisfied_total("bytes */77"), Some(77));
    }

    #[test]
    fn paths_sit_beside_the_file() {
        let p = Paths::new(Path::new("/c/files/m.gguf"));
        assert_eq!(p.part, Path::new("/c/files/m.gguf.part"));
        assert_eq!(p.state, Path::new("/c/files/m.gguf.part.state"));
        assert_eq!(p.lock, Path::new("/c/files/m.gguf.part.lock"));
    }
}
