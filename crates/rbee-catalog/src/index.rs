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
use std::fs::{self, File};
use std::io::{Read, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::ArtifactRecord;
use crate::layout::INDEX_FILE;

/// Bumped whenever what the index holds changes meaning; another format is rebuilt.
const FORMAT: u32 = 1;

/// How old a change must be before the index caches what it saw.
pub(crate) const SETTLE: Duration = Duration::from_secs(2);

/// The largest index read (a record of a few KiB per entry, for far more entries than fit a
/// disk's worth of models); anything larger is not an index this build wrote.
const MAX_INDEX_BYTES: u64 = 1 << 30;

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
    pub(crate) fn of(meta: &fs::Metadata) -> Self {
        Self {
            dev: meta.dev(),
            ino: meta.ino(),
            size: meta.size(),
            mtime_ns: nanos(meta.mtime(), meta.mtime_nsec()),
            ctime_ns: nanos(meta.ctime(), meta.ctime_nsec()),
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
#[allow(clippy::large_enum_variant)] // Entries are most nodes; boxing would add an allocation each.
pub(crate) enum Node {
    /// A folder of folders: its stamp and its sub-folders (not starting with a dot).
    Branch { stamp: Stamp, children: Vec<String> },
    /// An entry: the stamp of its `metadata.json` and the record it held, already checked.
    Entry {
        stamp: Stamp,
        record: ArtifactRecord,
    },
}

/// Cached folders by path relative to the root.
pub(crate) type Nodes = HashMap<String, Node>;

#[derive(Serialize, Deserialize)]
struct IndexFile {
    format: u32,
    nodes: Nodes,
}

/// The nodes saved at `root`, or none when there is no usable index (it is then rebuilt).
pub(crate) fn load(root: &Path) -> Nodes {
    let path = root.join(INDEX_FILE);
    let read = crate::contain::open_regular(&path).and_then(|file| {
        let mut bytes = Vec::new();
        file.take(MAX_INDEX_BYTES + 1).read_to_end(&mut bytes)?;
        Ok(bytes)
    });
    let bytes = match read {
        Ok(bytes) if bytes.len() as u64 <= MAX_INDEX_BYTES => bytes,
        Ok(_) => {
            tracing::debug!(path = %path.display(), "the catalog index is too large; rebuilding it");
            return Nodes::new();
        }
        Err(e) => {
            if e.kind() != std::io::ErrorKind::NotFound {
                tracing::debug!(path = %path.display(), error = %e, "cannot read the catalog index; rebuilding it");
            }
            return Nodes::new();
        }
    };
    match serde_json::from_slice::<IndexFile>(&bytes) {
        Ok(index) if index.format == FORMAT => index.nodes,
        Ok(_) => Nodes::new(),
        Err(e) => {
            tracing::debug!(path = %path.display(), error = %e, "the catalog index is not readable; rebuilding it");
            Nodes::new()
        }
    }
}

/// Saves `nodes` at `root` (temporary file, rename). Best effort: the caller logs a failure,
/// and the next reader rebuilds what is missing.
pub(crate) fn save(root: &Path, nodes: &Nodes) -> std::io::Result<()> {
    #[derive(Serialize)]
    struct IndexRef<'a> {
        format: u32,
        nodes: &'a Nodes,
    }
    let json = serde_json::to_vec(&IndexRef {
        format: FORMAT,
        nodes,
    })
    .map_err(std::io::Error::other)?;
    let tmp = root.join(format!(
        "{INDEX_FILE}.tmp-{}-{}",
        std::process::id(),
        now_ns()
    ));
    let result = (|| {
        let mut f = File::create(&tmp)?;
        f.write_all(&json)?;
        fs::rename(&tmp, root.join(INDEX_FILE))
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// Nanoseconds since the epoch, by the same clock the file system stamps with.
fn now_ns() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
        .unwrap_or_default()
}

/// Builds the next index while a walk checks the old one against the disk.
pub(crate) struct Refresh {
    old: Nodes,
    next: Nodes,
    now_ns: i64,
    record_settle: Duration,
    /// Whether `next` holds anything `old` did not (a save is worth it).
    changed: bool,
}

impl Refresh {
    /// `record_settle`: how old a record's change must be to be cached ([`SETTLE`] but in
    /// tests, whose changes to records are all visible in their inode or size).
    pub(crate) fn new(old: Nodes, record_settle: Duration) -> Self {
        Self {
            old,
            next: Nodes::new(),
            now_ns: now_ns(),
            record_settle,
            changed: false,
        }
    }

    /// The cached node of a folder, when there is one.
    pub(crate) fn cached(&self, rel: &str) -> Option<&Node> {
        self.old.get(rel)
    }

    /// Keeps a node unchanged from the old index.
    pub(crate) fn keep(&mut self, rel: &str) {
        if let Some(node) = self.old.remove(rel) {
            self.next.insert(rel.to_string(), node);
        }
    }

    /// Records what was just read from disk, unless it changed too recently to be cached.
    pub(crate) fn put(&mut self, rel: &str, node: Node) {
        self.changed |= self.old.remove(rel).is_some();
        let (stamp, settle) = match &node {
            Node::Branch { stamp, .. } => (*stamp, SETTLE),
            Node::Entry { stamp, .. } => (*stamp, self.record_settle),
        };
        if !stamp.unsettled(self.now_ns, settle) {
            self.changed = true;
            self.next.insert(rel.to_string(), node);
        }
    }

    /// The next index, and whether it differs from the old one (folders the walk no longer
    /// reached count as a difference: they are dropped).
    pub(crate) fn finish(self) -> (Nodes, bool) {
        (self.next, self.changed || !self.old.is_empty())
    }
}

/// The folder `rel` names below `root`.
pub(crate) fn dir_of(root: &Path, rel: &str) -> PathBuf {
    if rel.is_empty() {
        root.to_path_buf()
    } else {
        root.join(rel)
    }
}
