//! The index file, read and stat'd in parts across the machine's cores.
//!
//! Layout: one line of JSON, `{"format":4,"parts":[LEN,...]}`, then the parts, each `LEN`
//! bytes: a JSON object of folders (path relative to the root → node), in walk order. Parts are
//! independent, so each can be read, decoded and stat'd on its own thread; decoding 10,000
//! records and stat'ing their 20,000 files were most of a listing's time on one core.

use std::fs::File;
use std::io::{Read, Write};
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};

use serde::{Deserialize, Serialize};

use super::{Folders, Looked, Node, Nodes, now_ns};
use crate::layout::{INDEX_FILE, METADATA_FILE};

/// Bumped whenever what the index holds changes meaning; another format is rebuilt. (3: folders
/// are saved in the order a walk visits them; 4: in parts.)
const FORMAT: u32 = 4;

/// The largest index read (a record of a few KiB per entry, for far more entries than fit a
/// disk's worth of models); anything larger is not an index this build wrote.
const MAX_INDEX_BYTES: u64 = 1 << 30;

/// The longest first line read while looking for its end: far more parts than any catalog has.
const MAX_HEADER_BYTES: usize = 1 << 20;

/// Folders per part: small enough that the parts of a large catalog spread over the cores,
/// large enough that a thread's start costs little beside one.
const PART_NODES: usize = 512;

/// The most threads a listing uses.
const MAX_THREADS: usize = 4;

/// The first line of the file.
#[derive(Serialize, Deserialize)]
struct Header {
    format: u32,
    /// The length of each part, in bytes, in order.
    #[serde(default)]
    parts: Vec<u64>,
}

/// The nodes saved at `root` and what each names on disk, stat'd now; none when there is no
/// usable index (it is then rebuilt).
pub(crate) fn load(root: &Path) -> (Nodes, Vec<Looked>) {
    let path = root.join(INDEX_FILE);
    let loaded = crate::contain::open_regular(&path).and_then(|file| {
        let Some(parts) = parts(&file)? else {
            return Ok(None);
        };
        let decoded = in_parallel(
            parts.len(),
            // Each thread reads its parts into one buffer, rather than faulting in a new one
            // for each part.
            || (Folders::new(root), Vec::new()),
            |(folders, bytes), i| {
                let (offset, len) = parts[i];
                bytes.resize(len, 0);
                file.read_exact_at(bytes, offset)?;
                let nodes = decode_part(bytes).map_err(std::io::Error::other)?;
                // Only once decoded: a stat is wasted on a part that does not decode.
                let looked = look(folders, &nodes);
                Ok::<_, std::io::Error>((nodes, looked))
            },
        );
        let mut all = (Nodes::new(), Vec::new());
        for part in decoded {
            let (nodes, looked) = part?;
            all.0.extend(nodes);
            all.1.extend(looked);
        }
        Ok(Some(all))
    });
    match loaded {
        Ok(Some(all)) => all,
        // Another format, or no index yet: rebuilt without a word.
        Ok(None) => Default::default(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Default::default(),
        Err(e) => {
            tracing::debug!(path = %path.display(), error = %e, "the catalog index is not readable; rebuilding it");
            Default::default()
        }
    }
}

/// Where each part of the index `file` is (offset, length), from its first line; `None` when
/// it is another format. An error when it is not an index this build could have written.
fn parts(mut file: &File) -> std::io::Result<Option<Vec<(u64, usize)>>> {
    let invalid = |what: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, what);
    let file_len = file.metadata()?.len();
    if file_len > MAX_INDEX_BYTES {
        return Err(invalid("the catalog index is too large"));
    }
    let mut head = Vec::with_capacity(4096);
    let line_len = loop {
        let mut chunk = [0; 4096];
        let n = file.read(&mut chunk)?;
        let seen = head.len();
        head.extend_from_slice(&chunk[..n]);
        if let Some(at) = head[seen..].iter().position(|&b| b == b'\n') {
            break seen + at;
        }
        if n == 0 || head.len() > MAX_HEADER_BYTES {
            // No line: an older index is one JSON document, and is rebuilt.
            return Ok(None);
        }
    };
    let header: Header = serde_json::from_slice(&head[..line_len])
        .map_err(|_| invalid("the catalog index has no header"))?;
    if header.format != FORMAT {
        return Ok(None);
    }
    let mut offset = line_len as u64 + 1;
    let mut parts = Vec::with_capacity(header.parts.len());
    for len in header.parts {
        let end = offset.checked_add(len).filter(|&end| end <= file_len);
        let (Some(end), Ok(len)) = (end, usize::try_from(len)) else {
            return Err(invalid("the catalog index is shorter than its header says"));
        };
        parts.push((offset, len));
        offset = end;
    }
    if offset != file_len {
        return Err(invalid("the catalog index is longer than its header says"));
    }
    Ok(Some(parts))
}

/// The folders of one part.
fn decode_part(bytes: &[u8]) -> serde_json::Result<Nodes> {
    struct NodesSeed(usize);
    impl<'de> serde::de::DeserializeSeed<'de> for NodesSeed {
        type Value = Nodes;
        fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Nodes, D::Error> {
            d.deserialize_map(self)
        }
    }
    impl<'de> serde::de::Visitor<'de> for NodesSeed {
        type Value = Nodes;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("the folders of a catalog index")
        }
        fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Nodes, A::Error> {
            let mut nodes = Nodes::with_capacity(self.0);
            while let Some((rel, node)) = map.next_entry::<String, Node>()? {
                if believable(&rel, &node) {
                    nodes.push((rel, node));
                }
            }
            Ok(nodes)
        }
    }
    use serde::de::DeserializeSeed;
    let mut de = serde_json::Deserializer::from_slice(bytes);
    // Even an empty folder's entry takes more than 32 bytes of JSON: a part is not believed to
    // hold more, nor more than a part is written with.
    let room = (bytes.len() / 32).min(PART_NODES);
    let nodes = NodesSeed(room).deserialize(&mut de)?;
    de.end()?;
    Ok(nodes)
}

/// Whether a node read from the index may stand for what its folder holds: a record is checked
/// as one read from disk would be (the index may have been written by another rbee, with other
/// rules), and must belong to its folder. A node that may not is left out, and its folder read.
/// Checked here, on the threads that decode, so that a walk need not.
fn believable(rel: &str, node: &Node) -> bool {
    match node {
        Node::Branch { .. } => true,
        Node::Entry { record, .. } => record.check().is_ok() && is_id_of_folder(&record.id, rel),
    }
}

/// Whether `id` is the id the folder `rel` (below the root, `/`-separated) implies: its names
/// joined with `--`, as [`Catalog::id_of`](crate::Catalog::id_of) makes it, without building
/// that string.
fn is_id_of_folder(id: &str, rel: &str) -> bool {
    id.split("--").eq(rel.split('/'))
}

/// What each of `nodes` (held in memory since the last walk) names on disk, stat'd now.
pub(crate) fn look_ahead(root: &Path, nodes: &Nodes) -> Vec<Looked> {
    let parts: Vec<_> = nodes.chunks(PART_NODES).collect();
    in_parallel(
        parts.len(),
        || Folders::new(root),
        |folders, i| look(folders, parts[i]),
    )
    .into_iter()
    .flatten()
    .collect()
}

/// Stats what each node names, as the walk would: a folder's node its folder, an entry's node
/// its record. A node naming anything but a folder below the root (an index written by hand) is
/// not stat'd: the walk never reaches it.
fn look(folders: &mut Folders, nodes: &[(String, Node)]) -> Vec<Looked> {
    if let Some((first, _)) = nodes.first() {
        folders.enter_parents_of(first);
    }
    nodes
        .iter()
        .map(|(rel, node)| {
            let below_root = rel.is_empty() || rbee_artifact::validate_relative_path(rel).is_ok();
            if !below_root {
                return None;
            }
            match node {
                Node::Branch { children, .. } => {
                    let looked = folders.lstat(rel, None).ok();
                    folders.enter(rel, children.len());
                    looked
                }
                Node::Entry { .. } => folders.lstat(rel, Some(METADATA_FILE)).ok(),
            }
        })
        .collect()
}

/// `job(state, 0..jobs)` on up to [`MAX_THREADS`] threads (the caller's among them), each with
/// a `state` of its own made by `start`; the results in order.
fn in_parallel<S, T: Send>(
    jobs: usize,
    start: impl Fn() -> S + Sync,
    job: impl Fn(&mut S, usize) -> T + Sync,
) -> Vec<T> {
    // Asked once: on Linux the answer reads the cgroup's files, and a daemon lists often.
    static CORES: OnceLock<usize> = OnceLock::new();
    let cores = *CORES.get_or_init(|| std::thread::available_parallelism().map_or(1, usize::from));
    let threads = cores.min(MAX_THREADS).min(jobs);
    if threads <= 1 {
        let mut state = start();
        return (0..jobs).map(|i| job(&mut state, i)).collect();
    }
    let next = AtomicUsize::new(0);
    let work = || {
        let mut state = start();
        let mut done = Vec::new();
        loop {
            let i = next.fetch_add(1, Ordering::Relaxed);
            if i >= jobs {
                return done;
            }
            done.push((i, job(&mut state, i)));
        }
    };
    let mut done = std::thread::scope(|scope| {
        // A thread that cannot be started leaves its share to the others.
        let helpers: Vec<_> = (1..threads)
            .filter_map(|_| std::thread::Builder::new().spawn_scoped(scope, work).ok())
            .collect();
        let mut done = work();
        for helper in helpers {
            match helper.join() {
                Ok(theirs) => done.extend(theirs),
                Err(panic) => std::panic::resume_unwind(panic),
            }
        }
        done
    });
    done.sort_unstable_by_key(|(i, _)| *i);
    done.into_iter().map(|(_, t)| t).collect()
}

/// Saves `nodes` at `root` (temporary file, rename). Best effort: the caller logs a failure,
/// and the next reader rebuilds what is missing.
pub(crate) fn save(root: &Path, nodes: &Nodes) -> std::io::Result<()> {
    /// Folders as one JSON object, in walk order.
    struct InOrder<'a>(&'a [(String, Node)]);
    impl Serialize for InOrder<'_> {
        fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            s.collect_map(self.0.iter().map(|(rel, node)| (rel, node)))
        }
    }
    let parts = nodes
        .chunks(PART_NODES)
        .map(|part| serde_json::to_vec(&InOrder(part)))
        .collect::<serde_json::Result<Vec<_>>>()
        .map_err(std::io::Error::other)?;
    let header = serde_json::to_vec(&Header {
        format: FORMAT,
        parts: parts.iter().map(|part| part.len() as u64).collect(),
    })
    .map_err(std::io::Error::other)?;
    let tmp = root.join(format!(
        "{INDEX_FILE}.tmp-{}-{}",
        std::process::id(),
        now_ns()
    ));
    let result = (|| {
        let mut f = std::io::BufWriter::new(File::create(&tmp)?);
        f.write_all(&header)?;
        f.write_all(b"\n")?;
        for part in &parts {
            f.write_all(part)?;
        }
        f.into_inner().map_err(|e| e.into_error())?;
        std::fs::rename(&tmp, root.join(INDEX_FILE))
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}
