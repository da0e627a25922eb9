//! The ledger of one file: what is written, what is left to hand out, and the resume state
//! saved from it.

use std::collections::VecDeque;
use std::fs::File;
use std::path::PathBuf;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

use rbee_artifact::lock_unpoisoned;
use url::Url;

use super::hasher::HashCell;
use super::job::Job;
use crate::state::PartState;

/// The smallest range handed out near the end of a file.
pub(super) const MIN_CLAIM: u64 = 1 << 20;

/// The ledger of one file: what is written, what is left to hand out.
#[derive(Debug)]
pub(super) struct Book {
    pub(super) st: PartState,
    pub(super) dirty: bool,
    pub(super) unclaimed: VecDeque<(u64, u64)>,
    /// Range length handed out (`u64::MAX`: whole gaps, one connection).
    pub(super) claim_len: u64,
    pub(super) workers: usize,
    pub(super) notified_prefix: u64,
    /// Bytes written since the resume state was last saved.
    pub(super) unsaved: u64,
    /// One connection, one open-ended request: the server gives no validator, so separate
    /// range requests could not be proven to come from the same version of the file.
    pub(super) single: bool,
}

impl Book {
    pub(super) fn total(&self) -> Option<u64> {
        self.st.validators.total
    }
}

/// Where ranges are sent: the final URL after the first redirect chain.
#[derive(Debug)]
pub(super) struct Target {
    pub(super) url: Url,
    pub(super) generation: u64,
}

#[derive(Debug)]
pub(super) struct Shared {
    pub(super) file: File,
    pub(super) book: Mutex<Book>,
    pub(super) hash: HashCell,
    pub(super) target: Mutex<Target>,
    /// Bytes received by this process (for connection growth).
    pub(super) received: AtomicU64,
    pub(super) state_path: PathBuf,
    /// While set, dropping the job saves the resume state.
    pub(super) armed: AtomicBool,
    /// A save runs on a blocking thread.
    pub(super) saving: AtomicBool,
    /// Woken when `unsaved` passes `save_every`.
    pub(super) save_soon: tokio::sync::Notify,
    pub(super) save_every: u64,
    /// Requests answered by silence so far (see [`MAX_SILENT_ANSWERS`]).
    pub(super) silent: AtomicU32,
}

impl Shared {
    /// Records `[off, off+len)` as written and wakes the hasher when the prefix grew.
    pub(super) fn mark_written(&self, off: u64, len: u64) {
        let prefix = {
            let mut b = lock_unpoisoned(&self.book);
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
        let mut h = lock_unpoisoned(&self.hash.m);
        h.available = h.available.max(prefix);
        self.hash.cv.notify_one();
    }

    /// The resume state as it is now: written ranges plus the hasher's last published state.
    pub(super) fn snapshot(&self) -> PartState {
        let mut st = {
            let mut b = lock_unpoisoned(&self.book);
            b.dirty = false;
            b.unsaved = 0;
            b.st.clone()
        };
        let h = lock_unpoisoned(&self.hash.m);
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
    pub(super) fn persist(&self, st: &PartState) -> std::io::Result<()> {
        self.file.sync_data()?;
        st.save(&self.state_path)
    }

    pub(super) fn save_sync(&self) {
        let st = self.snapshot();
        if let Err(e) = self.persist(&st) {
            tracing::warn!(path = %self.state_path.display(), error = %e, "could not save the resume state");
        }
    }

    /// Hands out the next range to fetch.
    pub(super) fn claim(&self) -> Option<(u64, u64)> {
        let mut b = lock_unpoisoned(&self.book);
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

    pub(super) fn unclaimed_bytes(&self) -> u64 {
        lock_unpoisoned(&self.book)
            .unclaimed
            .iter()
            .map(|(s, e)| e - s)
            .sum()
    }

    pub(super) fn stop_hasher(&self) {
        let mut h = lock_unpoisoned(&self.hash.m);
        h.abort = true;
        self.hash.cv.notify_all();
    }
}

impl Job<'_> {
    /// Writes the resume state if anything changed since the last time, and waits for it.
    pub(super) async fn save_state(&self) {
        self.settle_saves().await;
        if !self.shared.armed.load(Ordering::Acquire) || !lock_unpoisoned(&self.shared.book).dirty {
            return;
        }
        let shared = self.shared.clone();
        let _ = tokio::task::spawn_blocking(move || shared.save_sync()).await;
    }

    /// Starts writing the resume state without waiting (the connections keep running); skipped
    /// while a save is still in flight.
    pub(super) fn save_detached(&self) {
        if !self.shared.armed.load(Ordering::Acquire)
            || !lock_unpoisoned(&self.shared.book).dirty
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
    pub(super) async fn settle_saves(&self) {
        while self.shared.saving.load(Ordering::Acquire) {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }
}
