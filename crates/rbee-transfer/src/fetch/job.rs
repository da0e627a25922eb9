//! One call of `fetch` after the lock is held: setup and the restart loop.

use std::collections::VecDeque;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rbee_artifact::{DownloadedFile, FileProgress, lock_unpoisoned};
use reqwest::header::HeaderMap;
use tokio_util::sync::CancellationToken;

use super::durable_dirs::DirtyDirs;
use super::fetch_request::FetchRequest;
use super::hasher::HashCell;
use super::ledger::{Book, Shared, Target};
use super::resume::usable_state;
use super::{Flow, Paths, sync_progress};
use crate::engine::Inner;
use crate::error::{TransferError, redact_url};
use crate::state::{PartState, source_id};
use crate::written::WrittenBoard;

/// One call of `fetch`, after the lock is held.
pub(super) struct Job<'a> {
    pub(super) inner: &'a Inner,
    pub(super) req: &'a FetchRequest,
    pub(super) dest: &'a Path,
    pub(super) paths: Paths,
    pub(super) headers: HeaderMap,
    pub(super) progress: &'a FileProgress,
    pub(super) cancel: &'a CancellationToken,
    pub(super) what: String,
    pub(super) shared: Arc<Shared>,
    /// The partial was continued from an earlier run (its bytes did not all arrive now).
    pub(super) resumed: AtomicBool,
    /// `dest` was published by another transfer while this one waited (see `reuse_existing`).
    pub(super) fresh: bool,
    /// Part of a batch: the folder is synced once for the whole batch, not after this file.
    pub(super) batch: Option<&'a DirtyDirs>,
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
    pub(super) fn new(
        inner: &'a Inner,
        req: &'a FetchRequest,
        dest: &'a Path,
        paths: Paths,
        headers: HeaderMap,
        progress: &'a FileProgress,
        cancel: &'a CancellationToken,
    ) -> Result<Self, TransferError> {
        let file = crate::nofollow::open_rw(&paths.part)
            .map_err(|e| TransferError::io(format!("opening {}", paths.part.display()), e))?;
        let part_len = file
            .metadata()
            .map_err(|e| TransferError::io(format!("reading {}", paths.part.display()), e))?
            .len();
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
                PartState::new(source_id(&req.url), req.sha256)
            }
        };
        let resumed = st.done.len() > 0;
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
                single: false,
                active: Vec::new(),
                finished: (0.0, 0.0),
                hedges: 0,
                helpers: 0,
                hedging: inner.config.rate_limit.is_none(),
            }),
            hash: HashCell::default(),
            target: Mutex::new(Target {
                url: req.url.clone(),
                generation: 0,
            }),
            received: AtomicU64::new(0),
            state_path: paths.state.clone(),
            syncs: inner.syncs.clone(),
            armed: AtomicBool::new(true),
            saving: AtomicBool::new(false),
            syncing: AtomicBool::new(false),
            resets: AtomicU64::new(0),
            save_soon: tokio::sync::Notify::new(),
            save_every: (inner.config.chunk_size / 4).max(1 << 20),
            silent: AtomicU32::new(0),
            written: WrittenBoard::register(dest),
            span_done: tokio::sync::Notify::new(),
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
            resumed: AtomicBool::new(resumed),
            fresh: false,
            batch: None,
        })
    }

    pub(super) async fn run(self) -> Result<DownloadedFile, TransferError> {
        self.prove_resume().await?;
        self.shared
            .written
            .publish(&lock_unpoisoned(&self.shared.book).st.done);
        let max_restarts = self.inner.retry.max_attempts();
        let mut restarts = 0;
        let mut agains = 0;
        loop {
            match self.attempt().await {
                Ok(done) => return Ok(done),
                Err(Flow::Again) if agains < 2 => agains += 1,
                Err(Flow::Again) => {
                    return Err(TransferError::protocol(format!(
                        "{}: the server keeps changing how it answers; giving up",
                        self.what
                    )));
                }
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
}
