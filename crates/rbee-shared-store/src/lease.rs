//! One origin fetch per cluster: which hive fetches an artifact while the others wait.
//!
//! Stores that refuse a second conditional create (AWS S3, MinIO) elect with it. Stores that
//! ignore it (Garage answers `200` and overwrites) elect by writing a lease with a random
//! token, waiting a short jittered moment, and reading it back: a hive proceeds only if its
//! token is still there. It starts after a first, quick read back and reads again once the
//! full settle has passed: a write of another hive that landed in between means that hive
//! fetches, and the lease says so ([`Lease::contested`]) so that this one stops at once and
//! waits. Two hives can still both win when one's write lands after the other's second read;
//! that costs a second origin download, never a wrong file, because blobs are named and
//! checked by their digest. The holder refreshes its expiry while it works; a holder that dies
//! loses the lease at expiry and a waiting hive takes over.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use rbee_artifact::JobId;
use serde::{Deserialize, Serialize};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::error::StoreError;
use crate::layout;
use crate::store::SharedStore;

/// Who fetches an artifact from its origin, until when.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaseRecord {
    /// The hive's name (its `--hive-name`, else its host name).
    pub holder: String,
    /// Random per acquisition: tells two leases of the same hive apart.
    pub token: String,
    /// After this the lease is free for another hive.
    pub expires_at: DateTime<Utc>,
}

impl LeaseRecord {
    /// Whether it still holds at `now`, for leases of `ttl`. An expiry further ahead than two
    /// lifetimes (a writer's clock running fast, or a hostile writer) is not believed: such a
    /// lease counts as dead, so that it cannot block the cluster for longer than that.
    pub fn is_live(&self, now: DateTime<Utc>, ttl: Duration) -> bool {
        let limit = chrono::Duration::from_std(ttl * 2).unwrap_or(chrono::Duration::MAX);
        self.expires_at > now
            && now
                .checked_add_signed(limit)
                .is_none_or(|latest| self.expires_at <= latest)
    }
}

/// How far the lease holder is, for the hives waiting on it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HolderProgress {
    /// The holder.
    pub holder: String,
    /// Bytes it has.
    pub bytes: u64,
    /// Bytes of the artifact.
    pub total: u64,
    /// When it wrote this.
    pub updated_at: DateTime<Utc>,
}

impl HolderProgress {
    /// Percent done (0 to 100).
    pub fn percent(&self) -> u64 {
        (self.bytes.min(self.total) as u128 * 100)
            .checked_div(self.total as u128)
            .unwrap_or(0) as u64
    }
}

/// Whether `store` refuses a second conditional create of one object (then elections use it).
/// Also the first contact with a store: a missing bucket or a refused key shows here.
pub async fn honours_create_only(store: &dyn SharedStore) -> Result<bool, StoreError> {
    let key = format!("probe/{}", JobId::generate());
    let first = store.put(&key, Bytes::from_static(b"1"), true).await?;
    let second = store.put(&key, Bytes::from_static(b"2"), true).await;
    let _ = store.delete(&key).await;
    Ok(first && !second?)
}

/// Settings of an [`Elector`].
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct LeaseConfig {
    /// How long a lease lasts without a refresh (the holder refreshes every third of it).
    pub ttl: Duration,
    /// How long after writing its lease a hive reads it back for good (plus up to as much
    /// again at random), on stores without conditional writes: a write of another hive that
    /// landed by then wins over this one's.
    pub settle: Duration,
    /// How long after writing its lease a hive first reads it back (plus up to as much again
    /// at random) and, when it is still its own, starts; at most `settle`.
    pub start_after: Duration,
}

impl LeaseConfig {
    /// Leases of `ttl`, read back after `settle` (plus jitter); a hive starts after the
    /// default first read back, or after `settle` when that is shorter.
    pub fn new(ttl: Duration, settle: Duration) -> Self {
        LeaseConfig {
            ttl,
            settle,
            start_after: START_AFTER.min(settle),
        }
    }
}

/// The first read back of a lease: a few round trips to a store on the LAN.
const START_AFTER: Duration = Duration::from_millis(100);

impl Default for LeaseConfig {
    fn default() -> Self {
        LeaseConfig::new(Duration::from_secs(30), Duration::from_millis(400))
    }
}

/// The outcome of an election.
#[derive(Debug)]
pub enum Election {
    /// This hive fetches from the origin; keep the lease while working.
    Won(Lease),
    /// Another hive does.
    Held(LeaseRecord),
}

/// Holds elections for one hive.
#[derive(Debug, Clone)]
pub struct Elector {
    store: Arc<dyn SharedStore>,
    holder: String,
    config: LeaseConfig,
    conditional: bool,
}

impl Elector {
    /// An elector for the hive named `holder`; `conditional` from [`honours_create_only`].
    pub fn new(
        store: Arc<dyn SharedStore>,
        holder: impl Into<String>,
        conditional: bool,
        config: LeaseConfig,
    ) -> Elector {
        Elector {
            store,
            holder: holder.into(),
            config,
            conditional,
        }
    }

    /// This hive's name.
    pub fn holder(&self) -> &str {
        &self.holder
    }

    /// The lease of artifact `id`, if one is live.
    pub async fn current(&self, id: &str) -> Result<Option<LeaseRecord>, StoreError> {
        Ok(read_json::<LeaseRecord>(&*self.store, &layout::lease(id))
            .await?
            .filter(|l| l.is_live(Utc::now(), self.config.ttl)))
    }

    /// The holder's last progress report for artifact `id`.
    pub async fn progress(&self, id: &str) -> Result<Option<HolderProgress>, StoreError> {
        read_json(&*self.store, &layout::progress(id)).await
    }

    /// Tries once to become the hive that fetches artifact `id` from its origin.
    pub async fn try_acquire(&self, id: &str) -> Result<Election, StoreError> {
        let key = layout::lease(id);
        let existing = read_json::<LeaseRecord>(&*self.store, &key).await?;
        if let Some(current) = &existing
            && current.is_live(Utc::now(), self.config.ttl)
        {
            return Ok(Election::Held(current.clone()));
        }
        let mine = self.record();
        let body = Bytes::from(serde_json::to_vec(&mine).expect("a lease serialises"));
        if self.conditional && existing.is_none() {
            if self.store.put(&key, body, true).await? {
                return Ok(Election::Won(self.lease(id, mine, None)));
            }
            return Ok(match read_json::<LeaseRecord>(&*self.store, &key).await? {
                Some(other) => Election::Held(other),
                // Released between our write and our read: try again next round.
                None => Election::Held(mine),
            });
        }
        self.store.put(&key, body, false).await?;
        let written = Instant::now();
        let settle = self.config.settle;
        let settled = written + settle + settle.mul_f64(rbee_transfer::jitter());
        let start = self.config.start_after.min(settle);
        let first_look = (written + start + start.mul_f64(rbee_transfer::jitter())).min(settled);
        tokio::time::sleep_until(first_look).await;
        match read_json::<LeaseRecord>(&*self.store, &key).await? {
            Some(now) if now.token == mine.token => {
                let look_again = (first_look < settled).then_some(settled);
                Ok(Election::Won(self.lease(id, mine, look_again)))
            }
            Some(other) => Ok(Election::Held(other)),
            None => Ok(Election::Held(mine)),
        }
    }

    fn record(&self) -> LeaseRecord {
        LeaseRecord {
            holder: self.holder.clone(),
            token: JobId::generate().0,
            expires_at: expiry(self.config.ttl),
        }
    }

    /// The lease won with `record`; `look_again`: when to read it back once more, for a lease
    /// won at the first look.
    fn lease(&self, id: &str, record: LeaseRecord, look_again: Option<Instant>) -> Lease {
        let lost = CancellationToken::new();
        let contested = CancellationToken::new();
        let refresher = tokio::spawn(refresh(
            self.store.clone(),
            layout::lease(id),
            record.clone(),
            self.config.ttl,
            look_again.map(|at| (at, contested.clone())),
            lost.clone(),
        ));
        Lease {
            store: self.store.clone(),
            id: id.to_string(),
            record,
            lost,
            contested,
            refresher,
        }
    }
}

fn expiry(ttl: Duration) -> DateTime<Utc> {
    Utc::now() + chrono::Duration::from_std(ttl).unwrap_or(chrono::Duration::seconds(30))
}

/// Keeps a lease alive; cancels `lost` when another hive took it over, and also the token
/// of `look_again` when that was found at its time.
async fn refresh(
    store: Arc<dyn SharedStore>,
    key: String,
    mut record: LeaseRecord,
    ttl: Duration,
    look_again: Option<(Instant, CancellationToken)>,
    lost: CancellationToken,
) {
    if let Some((at, contested)) = look_again {
        tokio::time::sleep_until(at).await;
        match read_json::<LeaseRecord>(&*store, &key).await {
            Ok(Some(now)) if now.token != record.token => {
                tracing::info!(holder = %now.holder, "another hive's lease landed just after this one's: it fetches from the origin");
                contested.cancel();
                lost.cancel();
                return;
            }
            Ok(_) => {}
            Err(e) => tracing::debug!(error = %e, "could not read the lease back once more"),
        }
    }
    loop {
        tokio::time::sleep(ttl / 3).await;
        match read_json::<LeaseRecord>(&*store, &key).await {
            Ok(Some(now)) if now.token != record.token => {
                tracing::warn!(holder = %now.holder, "another hive took over this lease");
                lost.cancel();
                return;
            }
            Ok(_) => {}
            // A store that fails a refresh may still be there for the next one; the lease
            // only matters for efficiency, so keep working.
            Err(e) => {
                tracing::warn!(error = %e, "could not read the lease back");
                continue;
            }
        }
        record.expires_at = expiry(ttl);
        let body = Bytes::from(serde_json::to_vec(&record).expect("a lease serialises"));
        if let Err(e) = store.put(&key, body, false).await {
            tracing::warn!(error = %e, "could not refresh the lease");
        }
    }
}

/// A lease this hive holds. Refreshed in the background until released or dropped; a dropped
/// lease is not removed and expires on its own.
#[derive(Debug)]
pub struct Lease {
    store: Arc<dyn SharedStore>,
    id: String,
    record: LeaseRecord,
    lost: CancellationToken,
    contested: CancellationToken,
    refresher: tokio::task::JoinHandle<()>,
}

impl Lease {
    /// The lease as written.
    pub fn record(&self) -> &LeaseRecord {
        &self.record
    }

    /// Fires when another hive took the lease over (this one was thought dead, or the lease
    /// was [contested](Self::contested)).
    pub fn lost(&self) -> &CancellationToken {
        &self.lost
    }

    /// Fires when, read back once more after the settle, the lease had become another hive's:
    /// that hive's write landed just after this one's, and it fetches from the origin. This
    /// hive should stop its own fetch and wait.
    pub fn contested(&self) -> &CancellationToken {
        &self.contested
    }

    /// Tells waiting hives how far this one is.
    pub async fn report(&self, bytes: u64, total: u64) -> Result<(), StoreError> {
        let progress = HolderProgress {
            holder: self.record.holder.clone(),
            bytes,
            total,
            updated_at: Utc::now(),
        };
        let body = Bytes::from(serde_json::to_vec(&progress).expect("progress serialises"));
        self.store
            .put(&layout::progress(&self.id), body, false)
            .await
            .map(|_| ())
    }

    /// Gives the lease up (removing it only while it is still this hive's).
    pub async fn release(self) -> Result<(), StoreError> {
        self.refresher.abort();
        let key = layout::lease(&self.id);
        let _ = self.store.delete(&layout::progress(&self.id)).await;
        match read_json::<LeaseRecord>(&*self.store, &key).await? {
            Some(now) if now.token == self.record.token => self.store.delete(&key).await,
            _ => Ok(()),
        }
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        self.refresher.abort();
    }
}

/// A small JSON object; one that does not parse or is too large counts as absent (a shared
/// store's contents are not trusted), with a warning, so that the next lease replaces it.
pub(crate) async fn read_json<T: serde::de::DeserializeOwned>(
    store: &dyn SharedStore,
    key: &str,
) -> Result<Option<T>, StoreError> {
    let bytes = match store.get(key, layout::MAX_LEASE_BYTES).await {
        Ok(Some(bytes)) => bytes,
        Ok(None) => return Ok(None),
        Err(e @ StoreError::Corrupt { .. }) => {
            tracing::warn!(key, error = %e, "ignoring an oversized object in the shared store");
            return Ok(None);
        }
        Err(e) => return Err(e),
    };
    match serde_json::from_slice(&bytes) {
        Ok(value) => Ok(Some(value)),
        Err(e) => {
            tracing::warn!(key, error = %e, "ignoring an unreadable object in the shared store");
            Ok(None)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn expiring_in(now: DateTime<Utc>, secs: i64) -> LeaseRecord {
        LeaseRecord {
            holder: "hive-b".into(),
            token: "t".into(),
            expires_at: now + chrono::Duration::seconds(secs),
        }
    }

    #[test]
    fn a_lease_is_live_until_its_expiry_but_no_further_than_two_lifetimes_ahead() {
        let now = Utc::now();
        let ttl = Duration::from_secs(30);
        assert!(expiring_in(now, 30).is_live(now, ttl));
        assert!(expiring_in(now, 60).is_live(now, ttl));
        assert!(!expiring_in(now, -1).is_live(now, ttl));
        // A writer whose clock runs a day fast (or lies) does not block the cluster for a day.
        assert!(!expiring_in(now, 61).is_live(now, ttl));
        assert!(!expiring_in(now, 86_400).is_live(now, ttl));
    }
}
