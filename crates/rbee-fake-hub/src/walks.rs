//! The last walk of each revision folder, kept until inotify reports a change under it.
//!
//! The real Hub does not list a repo's folders on every request; a fake that does spends a
//! `statx` per file per request, and a client fetching a 1,000-file snapshot then shares its
//! cores with 1,000 walks of 1,000 files. Events are queued by the kernel before the
//! changing call returns, so a change made before a request is seen by that request.
//!
//! A walk is not kept when it cannot be watched whole: a link (its target lies outside the
//! watched folders), a file with more than one name (written through another folder, no
//! event reaches this one), or a folder the kernel would not watch. Without inotify every
//! request walks, as before.

use std::collections::{HashMap, HashSet};
use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use inotify::{EventMask, Inotify, WatchDescriptor, WatchMask};

use crate::scanned::Listed;

/// What a walk found, and whether inotify can tell when it goes out of date.
pub(crate) struct Walked {
    pub(crate) files: Vec<Listed>,
    /// Every folder walked, the top one first.
    pub(crate) folders: Vec<PathBuf>,
    /// False when a link or a many-named file was found: see the module documentation.
    pub(crate) watchable: bool,
}

#[derive(Debug, Default)]
pub(crate) struct Walks(Mutex<Option<Watched>>);

#[derive(Debug)]
struct Watched {
    inotify: Inotify,
    /// Each watched folder's walks (the top folders whose walk went through it).
    tops: HashMap<WatchDescriptor, HashSet<PathBuf>>,
    kept: HashMap<PathBuf, Arc<Vec<Listed>>>,
}

const CHANGES: WatchMask = WatchMask::MODIFY
    .union(WatchMask::ATTRIB)
    .union(WatchMask::CLOSE_WRITE)
    .union(WatchMask::CREATE)
    .union(WatchMask::DELETE)
    .union(WatchMask::DELETE_SELF)
    .union(WatchMask::MOVE)
    .union(WatchMask::MOVE_SELF);

impl Walks {
    /// The files under `top`: the kept walk when nothing under it changed since, else a new
    /// walk by `walk`, kept when it can be watched.
    pub(crate) fn get(
        &self,
        top: &Path,
        walk: impl Fn() -> std::io::Result<Walked>,
    ) -> std::io::Result<Arc<Vec<Listed>>> {
        let mut guard = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        if guard.is_none() {
            // None when inotify is unavailable (its per-user limit reached, say): this call
            // walks, and the next tries again.
            *guard = Inotify::init().ok().map(|inotify| Watched {
                inotify,
                tops: HashMap::new(),
                kept: HashMap::new(),
            });
        }
        let Some(watched) = guard.as_mut() else {
            return walk().map(|w| Arc::new(w.files));
        };
        watched.forget_changed();
        if let Some(files) = watched.kept.get(top) {
            return Ok(files.clone());
        }
        // A folder changed between its walk and its watch would go unseen: so watch what the
        // first walk found, walk again, and keep only when both walks agree.
        let first = walk()?;
        let watching = first.watchable && first.folders.iter().all(|f| watched.watch(f, top));
        let second = walk()?;
        let files = Arc::new(second.files);
        if watching && second.watchable && second.folders == first.folders && *files == first.files
        {
            watched.kept.insert(top.to_path_buf(), files.clone());
        }
        Ok(files)
    }
}

impl Watched {
    /// Watches `folder` for the walk of `top`; false when the kernel refuses.
    fn watch(&mut self, folder: &Path, top: &Path) -> bool {
        match self.inotify.watches().add(folder, CHANGES) {
            Ok(wd) => {
                self.tops.entry(wd).or_default().insert(top.to_path_buf());
                true
            }
            Err(_) => false,
        }
    }

    /// Drops every kept walk that an event since the last call touches.
    fn forget_changed(&mut self) {
        let mut buffer = [0u8; 16 * 1024];
        loop {
            let events = match self.inotify.read_events(&mut buffer) {
                Ok(events) => events,
                Err(e) if e.kind() == ErrorKind::WouldBlock => return,
                Err(_) => {
                    self.kept.clear();
                    return;
                }
            };
            let mut any = false;
            for event in events {
                any = true;
                if event.mask.contains(EventMask::Q_OVERFLOW) {
                    self.kept.clear();
                    continue;
                }
                let tops = if event.mask.contains(EventMask::IGNORED) {
                    self.tops.remove(&event.wd)
                } else {
                    self.tops.get(&event.wd).cloned()
                };
                for top in tops.into_iter().flatten() {
                    self.kept.remove(&top);
                }
            }
            if !any {
                return;
            }
        }
    }
}
