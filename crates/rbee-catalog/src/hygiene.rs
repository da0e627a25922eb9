//! Keeping the cache tidy and within a size: last use, pins, pruning and eviction.
//!
//! Last use and pins live in sidecar files beside the record (`.last-used`, whose mtime is the
//! time of last use; `.pinned`), so a lookup never rewrites a record and a record's validation
//! rules stay as they are.

use std::collections::HashSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use serde::Serialize;

use crate::{
    ArtifactStatus, Catalog, CatalogEntry, CatalogKey, Listing, Removed, contain, layout,
    lease_held, usage,
};
use rbee_artifact::{Error, Result, human_bytes, partial};

/// A use younger than this is not written again: lookups in a loop cost no writes.
const LAST_USED_RESOLUTION: Duration = Duration::from_secs(60);

/// What `prune` removes, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PruneReason {
    /// An unfinished download untouched for longer than asked.
    StalePartial,
    /// An entry whose download or verification failed.
    Failed,
    /// A folder without a valid record (a damaged record, or none at all).
    Orphan,
    /// A partial file inside a ready entry that its record does not mention.
    OrphanPart,
}

/// One thing `prune` removes (or, in a dry run, would remove).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PruneItem {
    /// The entry id.
    pub id: String,
    /// Why.
    pub reason: PruneReason,
    /// What goes: the entry folder, or one partial file.
    pub path: PathBuf,
    /// Bytes it frees (hard-linked bytes that live on elsewhere count 0).
    pub bytes: u64,
}

/// What [`Catalog::prune`] did.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PruneReport {
    /// Removed (or, in a dry run, to be removed).
    pub items: Vec<PruneItem>,
    /// Left alone because a download holds them now.
    pub busy: Vec<String>,
    /// Sum of `items[].bytes`.
    pub bytes: u64,
    /// Whether nothing was removed.
    pub dry_run: bool,
}

/// Parses an age such as `7d`, `12h`, `30m`, `2w` or `90s`.
///
/// ```
/// use rbee_catalog::parse_age;
/// assert_eq!(parse_age("7d").unwrap().as_secs(), 7 * 86_400);
/// assert!(parse_age("7 days").is_err());
/// ```
pub fn parse_age(text: &str) -> std::result::Result<Duration, String> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (n, unit) = t.split_at(split);
    let secs = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3_600,
        "d" | "" => 86_400,
        "w" => 7 * 86_400,
        _ => 0,
    };
    match n.parse::<u64>() {
        Ok(n) if secs > 0 => Ok(Duration::from_secs(n.saturating_mul(secs))),
        _ => Err(format!(
            "`{text}` is not an age; write a number and a unit, e.g. 7d, 12h, 30m or 2w"
        )),
    }
}

/// Parses a cache size such as `200GB`, `1.5TiB` or `500000000` (bytes); `0` is refused.
///
/// ```
/// use rbee_catalog::parse_cache_size;
/// assert_eq!(parse_cache_size("200GB"), Ok(200_000_000_000));
/// assert!(parse_cache_size("big").is_err());
/// ```
pub fn parse_cache_size(text: &str) -> std::result::Result<u64, String> {
    let bytes: u64 = text
        .trim()
        .parse::<bytesize::ByteSize>()
        .map_err(|_| format!("`{text}` is not a size; write e.g. 200GB, 1.5TiB or 500000000"))?
        .as_u64();
    if bytes == 0 {
        return Err("a cache size must be above zero".into());
    }
    Ok(bytes)
}

impl Catalog {
    /// Records that the entry at `key` was used now (provisioned or looked up). Best effort
    /// and cheap: one sidecar's mtime, not written again within a minute, never through a
    /// link; nothing happens for an entry that does not exist.
    pub fn mark_used(&self, key: &CatalogKey) {
        let dir = self.entry_dir(key);
        let path = dir.join(layout::LAST_USED_FILE);
        if contain::first_link(&self.root, &path).is_some()
            || fs::symlink_metadata(dir.join(layout::METADATA_FILE)).is_err()
        {
            return;
        }
        let now = SystemTime::now();
        let recent = fs::symlink_metadata(&path)
            .and_then(|m| m.modified())
            .is_ok_and(|t| {
                now.duration_since(t)
                    .is_ok_and(|d| d < LAST_USED_RESOLUTION)
            });
        if recent {
            return;
        }
        let result = contain::open_lock(&path).and_then(|f| f.set_modified(now));
        if let Err(e) = result {
            tracing::debug!(id = %key.id(), error = %e, "could not record the last use");
        }
    }

    /// When the entry was last used: its `.last-used` sidecar, else its record's last change.
    pub fn last_used(&self, entry: &CatalogEntry) -> SystemTime {
        fs::symlink_metadata(entry.dir.join(layout::LAST_USED_FILE))
            .ok()
            .filter(|m| m.is_file())
            .and_then(|m| m.modified().ok())
            .unwrap_or_else(|| entry.record.updated_at.into())
    }

    /// Whether the entry is pinned (never evicted to meet the cache budget).
    pub fn is_pinned(&self, entry: &CatalogEntry) -> bool {
        fs::symlink_metadata(entry.dir.join(layout::PINNED_FILE)).is_ok_and(|m| m.is_file())
    }

    /// Pins or unpins an entry (by id or reference).
    pub fn set_pinned(&self, id_or_reference: &str, pinned: bool) -> Result<CatalogEntry> {
        let entry = self.get(id_or_reference)?.ok_or_else(|| Error::NotFound {
            message: format!(
                "`{id_or_reference}` is not in the catalog; `rbee model list` shows what is"
            ),
        })?;
        let path = entry.dir.join(layout::PINNED_FILE);
        self.check_inside(&entry.record.key(), &path)?;
        let result = if pinned {
            contain::open_lock(&path).map(drop)
        } else {
            match fs::remove_file(&path) {
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
                other => other,
            }
        };
        result.map_err(|e| Error::io(format!("writing {}", path.display()), e))?;
        Ok(entry)
    }

    /// Removes unfinished downloads untouched for `older_than`, failed entries, folders
    /// without a valid record and partial files no record mentions; with `dry_run`, only
    /// says what would go. Anything a live download holds is left alone (and named in
    /// [`PruneReport::busy`]).
    pub fn prune(&self, older_than: Duration, dry_run: bool) -> Result<PruneReport> {
        let cutoff = SystemTime::now()
            .checked_sub(older_than)
            .unwrap_or(SystemTime::UNIX_EPOCH);
        let mut items = Vec::new();
        let mut busy = Vec::new();
        for listing in self.list()? {
            let (id, dir, reason) = match &listing {
                Listing::Damaged { id, dir, .. } => (id.clone(), dir.clone(), PruneReason::Orphan),
                Listing::Entry(e) => {
                    let reason = match &e.record.status {
                        ArtifactStatus::Failed { .. } => PruneReason::Failed,
                        ArtifactStatus::Incomplete { .. } if newest_change(e) < cutoff => {
                            PruneReason::StalePartial
                        }
                        ArtifactStatus::Ready => {
                            if lease_held(&e.dir) {
                                continue;
                            }
                            items.extend(stray_parts(e).into_iter().map(|(path, bytes)| {
                                PruneItem {
                                    id: e.record.id.clone(),
                                    reason: PruneReason::OrphanPart,
                                    path,
                                    bytes,
                                }
                            }));
                            continue;
                        }
                        _ => continue,
                    };
                    (e.record.id.clone(), e.dir.clone(), reason)
                }
            };
            if lease_held(&dir) {
                busy.push(id);
                continue;
            }
            items.push(PruneItem {
                id,
                reason,
                bytes: usage::freed_bytes(&usage::scan(&dir)),
                path: dir,
            });
        }
        for dir in self.folders_without_record() {
            let id = self.id_of_dir(&dir);
            if lease_held(&dir) {
                busy.push(id);
                continue;
            }
            items.push(PruneItem {
                id,
                reason: PruneReason::Orphan,
                bytes: usage::freed_bytes(&usage::scan(&dir)),
                path: dir,
            });
        }
        if !dry_run {
            let mut done = Vec::with_capacity(items.len());
            for item in items {
                match self.prune_one(&item) {
                    Ok(bytes) => done.push(PruneItem { bytes, ..item }),
                    Err(Error::Busy { id, .. }) => busy.push(id),
                    Err(e) => return Err(e),
                }
            }
            items = done;
        }
        Ok(PruneReport {
            bytes: items.iter().fold(0u64, |t, i| t.saturating_add(i.bytes)),
            items,
            busy,
            dry_run,
        })
    }

    /// Removes one pruned item under its entry's lease; the bytes really freed.
    fn prune_one(&self, item: &PruneItem) -> Result<u64> {
        let has_record = fs::symlink_metadata(item.path.join(layout::METADATA_FILE)).is_ok();
        if item.reason != PruneReason::OrphanPart && has_record {
            return self.remove(&item.id).map(|r| r.bytes);
        }
        let key = CatalogKey::from_id(&item.id).ok_or_else(|| Error::Damaged {
            id: item.id.clone(),
            reason: format!(
                "its folder {} is not one rbee makes; remove it yourself",
                item.path.display()
            ),
        })?;
        let lease = self
            .try_lease_key(key.clone())?
            .ok_or_else(|| Error::Busy {
                id: item.id.clone(),
                reason: "it is being downloaded".into(),
            })?;
        self.check_inside(&key, &item.path)?;
        if item.reason == PruneReason::OrphanPart {
            let freed = usage::freed_bytes(&usage::scan_files(std::slice::from_ref(&item.path)));
            fs::remove_file(&item.path)
                .map_err(|e| Error::io(format!("removing {}", item.path.display()), e))?;
            return Ok(freed);
        }
        let freed = usage::freed_bytes(&usage::scan(&item.path));
        fs::remove_dir_all(&item.path)
            .map_err(|e| Error::io(format!("removing {}", item.path.display()), e))?;
        drop(lease);
        self.tidy_parents(&item.path);
        Ok(freed)
    }

    /// Entry folders (they hold `files/` or `.lock`) with no record at all: left by a
    /// download that died before writing one, or by a record removed by hand.
    fn folders_without_record(&self) -> Vec<PathBuf> {
        let mut out = Vec::new();
        let mut stack = vec![self.root.clone()];
        while let Some(dir) = stack.pop() {
            let Ok(read) = fs::read_dir(&dir) else {
                continue;
            };
            if dir != self.root {
                let has = |name: &str| fs::symlink_metadata(dir.join(name)).is_ok();
                if has(layout::METADATA_FILE) {
                    continue;
                }
                if (has(layout::FILES_DIR) || has(layout::LOCK_FILE))
                    && CatalogKey::from_id(&self.id_of_dir(&dir)).is_some()
                {
                    out.push(dir);
                    continue;
                }
            }
            for item in read.flatten() {
                let hidden = item.file_name().to_string_lossy().starts_with('.');
                if !hidden && item.file_type().is_ok_and(|t| t.is_dir()) {
                    stack.push(item.path());
                }
            }
        }
        out.sort();
        out
    }

    /// Evicts least-recently-used, unpinned, ready entries (never `keep`, never one a
    /// download holds) until `needed` more bytes fit in `budget`. Refuses, removing
    /// nothing, when they would not fit even after evicting all of them. Returns what was
    /// evicted, oldest use first.
    ///
    /// The cache's size here is what removing all of it would give back: bytes hard-linked
    /// from outside (a `file:` source, a `--local-dir` copy) stay on disk whatever the cache
    /// does, so they count neither as used nor as evictable.
    pub fn make_room(&self, needed: u64, budget: u64, keep: &CatalogKey) -> Result<Vec<Removed>> {
        let listing = self.list()?;
        let everything: Vec<_> = listing
            .iter()
            .flat_map(|l| match l {
                Listing::Entry(e) => usage::scan(&e.dir),
                Listing::Damaged { dir, .. } => usage::scan(dir),
            })
            .collect();
        let mut used = usage::freed_bytes(&everything);
        if used.saturating_add(needed) <= budget {
            return Ok(Vec::new());
        }
        let mut candidates: Vec<(SystemTime, CatalogEntry)> = listing
            .into_iter()
            .filter_map(|l| match l {
                Listing::Entry(e)
                    if e.record.status == ArtifactStatus::Ready
                        && e.record.key() != *keep
                        && !self.is_pinned(&e)
                        && !lease_held(&e.dir) =>
                {
                    Some((self.last_used(&e), e))
                }
                _ => None,
            })
            .collect();
        candidates.sort_by_key(|(used, e)| (*used, e.record.id.clone()));
        let all: Vec<_> = candidates
            .iter()
            .flat_map(|(_, e)| usage::scan(&e.dir))
            .collect();
        let evictable = usage::freed_bytes(&all);
        if used.saturating_sub(evictable).saturating_add(needed) > budget {
            return Err(Error::OverBudget {
                message: format!(
                    "this download needs {} more, but the cache budget is {} and {} is in use; evicting every unpinned ready model would free only {}. Raise the budget (--max-cache-size / RBEE_MAX_CACHE_SIZE), unpin or remove models (`rbee model unpin`, `rbee rm`), or run `rbee prune`; nothing was downloaded",
                    human_bytes(needed),
                    human_bytes(budget),
                    human_bytes(used),
                    human_bytes(evictable),
                ),
            });
        }
        let mut evicted = Vec::new();
        for (_, entry) in candidates {
            if used.saturating_add(needed) <= budget {
                break;
            }
            match self.remove(&entry.record.id) {
                Ok(removed) => {
                    used = used.saturating_sub(removed.bytes);
                    evicted.push(removed);
                }
                // A download took it meanwhile: it is in use, not evictable.
                Err(Error::Busy { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        if used.saturating_add(needed) > budget {
            return Err(Error::OverBudget {
                message: format!(
                    "this download needs {} more, but the cache budget is {} and {} is still in use after evicting {} model(s) (others became busy meanwhile); nothing was downloaded",
                    human_bytes(needed),
                    human_bytes(budget),
                    human_bytes(used),
                    evicted.len()
                ),
            });
        }
        Ok(evicted)
    }
}

/// The latest change to an unfinished entry: its record or any of its files.
fn newest_change(entry: &CatalogEntry) -> SystemTime {
    let mut newest: SystemTime = entry.record.updated_at.into();
    let mut stack = vec![layout::files_dir(&entry.dir)];
    while let Some(d) = stack.pop() {
        let Ok(read) = fs::read_dir(&d) else { continue };
        for item in read.flatten() {
            let Ok(meta) = item.metadata() else { continue };
            if meta.is_dir() {
                stack.push(item.path());
            } else if let Ok(t) = meta.modified() {
                newest = newest.max(t);
            }
        }
    }
    newest
}

/// Partial files (`.part`, `.part.state`) of a ready entry that belong to no file its record
/// lists, with the bytes each holds.
fn stray_parts(entry: &CatalogEntry) -> Vec<(PathBuf, u64)> {
    let listed: HashSet<PathBuf> = entry
        .record
        .files
        .iter()
        .map(|f| layout::file_path(&entry.dir, &f.path))
        .collect();
    let mut out = Vec::new();
    let mut stack = vec![layout::files_dir(&entry.dir)];
    while let Some(d) = stack.pop() {
        let Ok(read) = fs::read_dir(&d) else { continue };
        for item in read.flatten() {
            let Ok(meta) = item.metadata() else { continue };
            let path = item.path();
            if meta.is_dir() {
                stack.push(path);
                continue;
            }
            let Some(owner) = part_owner(&path) else {
                continue;
            };
            if meta.is_file() && !listed.contains(&owner) {
                let bytes = usage::freed_bytes(&usage::scan_files(std::slice::from_ref(&path)));
                out.push((path, bytes));
            }
        }
    }
    out.sort();
    out
}

/// The final file a partial file belongs to (`m.gguf.part.state` → `m.gguf`).
fn part_owner(path: &Path) -> Option<PathBuf> {
    let name = path.to_str()?;
    [partial::PART_STATE_SUFFIX, partial::PART_SUFFIX]
        .iter()
        .find_map(|s| name.strip_suffix(s))
        .map(PathBuf::from)
}
