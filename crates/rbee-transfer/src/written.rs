//! Which bytes of a file being fetched are already in its `.part`, for readers that serve the
//! file while it downloads (rbee-hive's Hub mirror streams to clients during a pull-through).
//!
//! The registry is process-wide on purpose: it describes files on disk, of which one process
//! has one writer per path at a time (the engine holds `<dest>.part.lock`), whichever
//! [`Transfer`](crate::Transfer) writes it.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, LazyLock, Mutex};

use rbee_artifact::lock_unpoisoned;
use tokio::sync::watch;

use crate::ranges::RangeSet;

/// What is written of one `.part` file right now.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Written {
    /// Changes whenever the partial data is discarded (the remote changed, or answered so that
    /// the file had to start over, or failed its check): bytes read under an older generation
    /// may not be the file's, and a reader that already passed them on must stop. Unique in
    /// the process, also across fetches of the same file, so a reader that follows a second
    /// fetch of a path sees that the data it sent came from another one.
    pub generation: u64,
    /// Sorted, disjoint `[start, end)` ranges of the `.part` that hold the remote's bytes.
    /// Not yet verified: the digest is checked when the file is complete, before the `.part`
    /// is renamed to its final name.
    pub ranges: Vec<(u64, u64)>,
}

impl Written {
    /// End of the written run of bytes that contains `offset` (`offset` itself when that byte
    /// is not written yet).
    pub fn run_end(&self, offset: u64) -> u64 {
        self.ranges
            .iter()
            .find(|&&(s, e)| s <= offset && offset < e)
            .map_or(offset, |&(_, e)| e)
    }
}

type Registry = Mutex<HashMap<PathBuf, (u64, watch::Sender<Written>)>>;

static REGISTRY: LazyLock<Registry> = LazyLock::new(|| Mutex::new(HashMap::new()));
static NEXT_ID: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
static NEXT_GENERATION: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

fn next_generation() -> u64 {
    NEXT_GENERATION.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
}

/// Follows the written ranges of the file this process is fetching to `dest` (its final
/// path), or `None` when no fetch of it is running here. The channel closes when the fetch
/// ends: then the file is at `dest` (complete and verified), or the fetch failed or stopped.
pub fn watch_written(dest: &Path) -> Option<watch::Receiver<Written>> {
    lock_unpoisoned(&REGISTRY)
        .get(dest)
        .map(|(_, tx)| tx.subscribe())
}

/// The writer's side: registered while a fetch holds the file, removed when it is dropped.
#[derive(Debug)]
pub(crate) struct WrittenBoard {
    dest: PathBuf,
    id: u64,
    tx: Arc<watch::Sender<Written>>,
}

impl WrittenBoard {
    pub(crate) fn register(dest: &Path) -> Self {
        let id = NEXT_ID.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let tx = watch::Sender::new(Written {
            generation: next_generation(),
            ranges: Vec::new(),
        });
        lock_unpoisoned(&REGISTRY).insert(dest.to_path_buf(), (id, tx.clone()));
        Self {
            dest: dest.to_path_buf(),
            id,
            tx: Arc::new(tx),
        }
    }

    /// Publishes `done` (only when it grew: readers wake for new bytes, not for saves).
    pub(crate) fn publish(&self, done: &RangeSet) {
        self.tx.send_if_modified(|w| {
            if w.ranges.as_slice() == done.ranges() {
                return false;
            }
            w.ranges = done.ranges().to_vec();
            true
        });
    }

    /// The partial data was thrown away.
    pub(crate) fn reset(&self) {
        self.tx.send_modify(|w| {
            w.generation = next_generation();
            w.ranges.clear();
        });
    }
}

impl Drop for WrittenBoard {
    fn drop(&mut self) {
        let mut map = lock_unpoisoned(&REGISTRY);
        if map.get(&self.dest).is_some_and(|(id, _)| *id == self.id) {
            map.remove(&self.dest);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readers_see_growth_and_resets_and_the_end() {
        let dest = Path::new("/nonexistent/written-test/model.gguf");
        assert!(watch_written(dest).is_none());
        let board = WrittenBoard::register(dest);
        let mut rx = watch_written(dest).unwrap();
        let mut done = RangeSet::new();
        done.insert(0, 10);
        done.insert(20, 30);
        board.publish(&done);
        assert!(rx.has_changed().unwrap());
        let w = rx.borrow_and_update().clone();
        assert_eq!(w.ranges, vec![(0, 10), (20, 30)]);
        assert_eq!((w.run_end(5), w.run_end(10), w.run_end(25)), (10, 10, 30));
        board.publish(&done);
        assert!(!rx.has_changed().unwrap(), "no news, no wake-up");
        let first = w.generation;
        board.reset();
        let w = rx.borrow_and_update().clone();
        assert_ne!(w.generation, first);
        assert!(w.ranges.is_empty());
        drop(board);
        assert!(watch_written(dest).is_none());
        assert!(
            rx.has_changed().is_err(),
            "the channel closes with the fetch"
        );
    }

    #[test]
    fn a_second_fetch_of_a_path_has_another_generation() {
        let dest = Path::new("/nonexistent/written-test/again.gguf");
        let board = WrittenBoard::register(dest);
        let first = watch_written(dest).unwrap().borrow().generation;
        drop(board);
        let _board = WrittenBoard::register(dest);
        let second = watch_written(dest).unwrap().borrow().generation;
        assert_ne!(
            first, second,
            "a reader must tell the two fetches' data apart"
        );
    }
}
