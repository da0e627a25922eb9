//! A cache of what the catalog's folders hold, so that listing 10,000 entries reads one file and
//! stats each record instead of opening and decoding every one.
//!
//! The records stay the source of truth; the index is never trusted over them:
//! - a cached record is used only while its `metadata.json` has the same identity as when it
//!   was read (device, inode, size, modification and change times): every rbee write renames a
//!   new file into place, and any other write changes the change time, which nobody can set;
//! - a cached folder listing is used only while the folder has the same identity: adding,
//!   removing or renaming anything in a folder changes its times;
//! - something changed within [`SETTLE`] of being read is not cached at all, because two changes
//!   within one tick of the file system's clock can leave the same times;
//! - a missing, unreadable, truncated or foreign index is simply rebuilt from the records.
//!
//! The index is written with a temporary file and a rename, so a reader sees a whole old or a
//! whole new one; it is not synced, because a torn index after a crash is only rebuilt.

use std::collections::HashMap;
#[cfg(test)]
use std::fs;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::ArtifactRecord;

mod file;

pub(crate) use file::{load, look_ahead, save};

/// How old a change must be before the index caches what it saw.
pub(crate) const SETTLE: Duration = Duration::from_secs(2);

/// The identity of a file or folder as `lstat` sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Stamp {
    dev: u64,
    ino: u64,
    size: u64,
    mtime_ns: i64,
    ctime_ns: i64,
}

impl Stamp {
    #[cfg(test)]
    pub(crate) fn of(meta: &fs::Metadata) -> Self {
        use std::os::unix::fs::MetadataExt;
        Self {
            dev: meta.dev(),
            ino: meta.ino(),
            size: meta.size(),
            mtime_ns: nanos(meta.mtime(), meta.mtime_nsec()),
            ctime_ns: nanos(meta.ctime(), meta.ctime_nsec()),
        }
    }

    /// The identity `fstatat` reports: the same fields as [`Stamp::of`] gives for the same file.
    // The field types of `stat` differ between architectures: the casts are no-ops on some.
    #[allow(clippy::unnecessary_cast)]
    pub(crate) fn of_stat(st: &rustix::fs::Stat) -> Self {
        Self {
            dev: st.st_dev as u64,
            ino: st.st_ino as u64,
            size: st.st_size as u64,
            mtime_ns: nanos(st.st_mtime as i64, st.st_mtime_nsec as i64),
            ctime_ns: nanos(st.st_ctime as i64, st.st_ctime_nsec as i64),
        }
    }

    /// Whether it changed too recently to be told apart from a change in the same clock tick.
    fn unsettled(&self, now_ns: i64, settle: Duration) -> bool {
        let settle = i64::try_from(settle.as_nanos()).unwrap_or(i64::MAX);
        self.mtime_ns.max(self.ctime_ns) > now_ns.saturating_sub(settle)
    }
}

fn nanos(secs: i64, nsec: i64) -> i64 {
    secs.saturating_mul(1_000_000_000).saturating_add(nsec)
}

/// What the index knows of one folder below the root (the root itself: the empty path).
// Externally tagged: an internally tagged enum is buffered whole before it is decoded, which
// doubles the cost of reading the index.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Node {
    /// A folder of folders: its stamp and its sub-folders (not starting with a dot).
    Branch { stamp: Stamp, children: Vec<String> },
    /// An entry: the stamp of its `metadata.json` and the record it held, already checked.
    /// Shared with the listings that showed it: a record is several hundred bytes, and a table
    /// of 10,000 nodes is probed, moved and grown far faster when its slots are small.
    Entry {
        stamp: Stamp,
        record: Arc<ArtifactRecord>,
    },
}

/// Cached folders by path relative to the root, in the order the last walk visited them: the
/// next walk visits them in the same order, so finding a folder's node is mostly a comparison
/// with the node after the last one found, not a hash lookup.
pub(crate) type Nodes = Vec<(String, Node)>;

/// What `lstat` said of what a node names (its folder, or an entry's record) just before the
/// walk: its stamp and whether it is a regular file; `None` when it could not be stat'd, and the
/// walk tries again.
pub(crate) type Looked = Option<(Stamp, bool)>;

/// Nanoseconds since the epoch, by the same clock the file system stamps with.
fn now_ns() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
        .unwrap_or_default()
}

/// How far past the expected node a folder's node is looked for before the table of places.
const LOOK_AHEAD: usize = 16;

/// How many folders may be met out of order before the table of places is made.
const MISSES_BEFORE_PLACES: usize = 4;

/// Builds the next index while a walk checks the old one against the disk.
pub(crate) struct Refresh {
    /// The old index; a node the walk took is `None`.
    old: Vec<Option<(String, Node)>>,
    /// What each node of `old` names on disk, stat'd ahead of the walk.
    looked: Vec<Looked>,
    /// Where in `old` the walk's next folder is expected.
    cursor: usize,
    /// Where each node of `old` is, made once a few folders were met out of order (something
    /// was added or removed, or the index was saved by a walk in another order).
    places: Option<HashMap<String, usize>>,
    /// Nodes of `old` not taken yet.
    remaining: usize,
    /// Folders not found near the cursor while there is no table of places.
    misses: usize,
    /// Whether a node was found through the table of places: saved in walk order, the next
    /// walk finds it in order.
    out_of_order: bool,
    next: Nodes,
    now_ns: i64,
    record_settle: Duration,
    /// Whether `next` holds anything `old` did not (a save is worth it).
    changed: bool,
    /// Nodes taken out of `old` and not kept: each one is a difference.
    dropped: usize,
}

impl Refresh {
    /// `record_settle`: how old a record's change must be to be cached ([`SETTLE`] but in
    /// tests, whose changes to records are all visible in their inode or size).
    /// `looked`: what each node of `old` names, stat'd ahead of the walk (see [`file::load`]).
    pub(crate) fn new(old: Nodes, looked: Vec<Looked>, record_settle: Duration) -> Self {
        Self {
            looked,
            next: Nodes::with_capacity(old.len()),
            remaining: old.len(),
            old: old.into_iter().map(Some).collect(),
            cursor: 0,
            places: None,
            misses: 0,
            out_of_order: false,
            now_ns: now_ns(),
            record_settle,
            changed: false,
            dropped: 0,
        }
    }

    /// Takes the cached node of a folder out of the old index, when there is one: the walk
    /// gives it back with [`keep`](Self::keep) when the disk still agrees with it, else it is
    /// dropped (and the index has changed). The walk takes every folder it visits, once.
    /// With it comes what its stat ahead of the walk saw, when it could be stat'd.
    pub(crate) fn take(&mut self, rel: &str) -> Option<(String, Node, Looked)> {
        let at = self.find(rel)?;
        let (rel, node) = self.old[at].take()?;
        self.cursor = at + 1;
        self.remaining -= 1;
        self.dropped += 1;
        Some((rel, node, self.looked.get_mut(at).and_then(Option::take)))
    }

    /// Where `rel`'s node is in `old`: the next one, or one a little further on (folders were
    /// removed); else from the table of places, which is made only once a few folders were not
    /// found that way (the root, an added folder, and a few more are met out of order in any
    /// walk, and are not worth a table of 10,000 names). Before that, a node further away is
    /// not found: its folder is read as if it were not cached, which costs a read, never an
    /// answer.
    fn find(&mut self, rel: &str) -> Option<usize> {
        while matches!(self.old.get(self.cursor), Some(None)) {
            self.cursor += 1;
        }
        let near = self.cursor..self.old.len().min(self.cursor + LOOK_AHEAD);
        let is_rel = |node: &Option<(String, Node)>| matches!(node, Some((r, _)) if r == rel);
        if let Some(at) = near.clone().find(|&at| is_rel(&self.old[at])) {
            return Some(at);
        }
        if self.places.is_none() {
            self.misses += 1;
            if self.misses <= MISSES_BEFORE_PLACES {
                return None;
            }
        }
        let old = &self.old;
        let places = self.places.get_or_insert_with(|| {
            let mut places = HashMap::with_capacity(old.len());
            for (at, node) in old.iter().enumerate() {
                if let Some((rel, _)) = node {
                    places.insert(rel.clone(), at);
                }
            }
            places
        });
        let found = places.get(rel).copied().filter(|&at| is_rel(&self.old[at]));
        self.out_of_order |= found.is_some();
        found
    }

    /// Gives back a node [`take`](Self::take) took, unchanged.
    pub(crate) fn keep(&mut self, rel: String, node: Node) {
        self.dropped = self.dropped.saturating_sub(1);
        self.next.push((rel, node));
    }

    /// How many folders the old index knew (a size hint for a listing).
    pub(crate) fn known(&self) -> usize {
        self.old.len()
    }

    /// Records what was just read from disk (the walk took the folder's old node first),
    /// unless it changed too recently to be cached.
    pub(crate) fn put(&mut self, rel: &str, node: Node) {
        let (stamp, settle) = match &node {
            Node::Branch { stamp, .. } => (*stamp, SETTLE),
            Node::Entry { stamp, .. } => (*stamp, self.record_settle),
        };
        if !stamp.unsettled(self.now_ns, settle) {
            self.changed = true;
            self.next.push((rel.to_string(), node));
        }
    }

    /// The next index, and whether it differs from the old one (folders the walk no longer
    /// reached count as a difference: they are dropped; so does an order the walk had to look
    /// folders up in, so that the next walk finds them in order).
    pub(crate) fn finish(self) -> (Nodes, bool) {
        let changed = self.changed || self.dropped > 0 || self.remaining > 0 || self.out_of_order;
        (self.next, changed)
    }
}

/// Stats below the catalog root relative to folders held open, so that each stat of a walk
/// resolves a name or two instead of the whole path from `/` (the path walk was most of a
/// warm listing's system time). The root is always held; a folder with several sub-folders is
/// held while the walk is inside it.
pub(crate) struct Folders {
    root: PathBuf,
    /// Open folders by path relative to the root, each inside the one before it.
    open: Vec<(String, OwnedFd)>,
    /// The path of the last stat, relative to the folder it was made from.
    name: String,
}

/// How many sub-folders make a folder worth holding open: opening one costs two system calls.
const HOLD_OPEN_FROM: usize = 4;

impl Folders {
    pub(crate) fn new(root: &Path) -> Self {
        let mut open = Vec::new();
        if let Ok(fd) = rustix::fs::open(root, folder_flags(), rustix::fs::Mode::empty()) {
            open.push((String::new(), fd));
        }
        Self {
            root: root.to_path_buf(),
            open,
            name: String::new(),
        }
    }

    /// The identity of `rel` (below the root), or of `name` inside it, not following a link
    /// at the last component; and whether it is a regular file.
    pub(crate) fn lstat(
        &mut self,
        rel: &str,
        name: Option<&str>,
    ) -> std::io::Result<(Stamp, bool)> {
        self.leave_unless_inside(rel);
        let st = match self.open.last() {
            Some((held, fd)) => {
                self.name.clear();
                self.name.push_str(inside(held, rel));
                if let Some(name) = name {
                    if !self.name.is_empty() {
                        self.name.push('/');
                    }
                    self.name.push_str(name);
                }
                if self.name.is_empty() {
                    self.name.push('.');
                }
                rustix::fs::statat(
                    fd,
                    self.name.as_str(),
                    rustix::fs::AtFlags::SYMLINK_NOFOLLOW,
                )
            }
            None => {
                let mut path = dir_of(&self.root, rel);
                if let Some(name) = name {
                    path.push(name);
                }
                rustix::fs::statat(
                    rustix::fs::CWD,
                    &path,
                    rustix::fs::AtFlags::SYMLINK_NOFOLLOW,
                )
            }
        }?;
        let is_file = rustix::fs::FileType::from_raw_mode(st.st_mode as _)
            == rustix::fs::FileType::RegularFile;
        Ok((Stamp::of_stat(&st), is_file))
    }

    /// The walk goes into `rel`, which has `children` sub-folders: holds it open when that
    /// saves more than it costs. Best effort: a folder that cannot be opened is stat'd by
    /// its path from the last one held.
    pub(crate) fn enter(&mut self, rel: &str, children: usize) {
        if children < HOLD_OPEN_FROM || rel.is_empty() {
            return;
        }
        self.leave_unless_inside(rel);
        let Some((held, fd)) = self.open.last() else {
            return;
        };
        if let Ok(sub) = rustix::fs::openat(
            fd,
            inside(held, rel),
            folder_flags(),
            rustix::fs::Mode::empty(),
        ) {
            self.open.push((rel.to_string(), sub));
        }
    }

    /// Holds open the folders `rel` is inside, as a walk that reached it would have: a stat
    /// that starts half way through a walk (see [`look_ahead`]) resolves short names too.
    pub(crate) fn enter_parents_of(&mut self, rel: &str) {
        for (at, _) in rel.match_indices('/') {
            self.enter(&rel[..at], HOLD_OPEN_FROM);
        }
    }

    /// Lets go of the held folders `rel` is not inside.
    fn leave_unless_inside(&mut self, rel: &str) {
        while let Some((held, _)) = self.open.last() {
            if held.is_empty()
                || rel == held
                || (rel.starts_with(held.as_str()) && rel.as_bytes()[held.len()] == b'/')
            {
                break;
            }
            self.open.pop();
        }
    }
}

/// `rel` relative to `held`, a folder it is inside (or is).
fn inside<'a>(held: &str, rel: &'a str) -> &'a str {
    if held.is_empty() {
        rel
    } else {
        rel[held.len()..].trim_start_matches('/')
    }
}

/// A folder held only to resolve names from: no read access needed, never a link.
fn folder_flags() -> rustix::fs::OFlags {
    use rustix::fs::OFlags;
    OFlags::PATH | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC
}

/// The folder `rel` names below `root`.
pub(crate) fn dir_of(root: &Path, rel: &str) -> PathBuf {
    if rel.is_empty() {
        root.to_path_buf()
    } else {
        root.join(rel)
    }
}
