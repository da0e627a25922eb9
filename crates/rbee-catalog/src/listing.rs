//! Listing the catalog: a walk of its folders that takes from the index what is unchanged on
//! disk and reads the rest.

use std::fs;
use std::path::PathBuf;
use std::sync::Arc;

use rbee_artifact::{CatalogKey, Error, Result};

use crate::{ArtifactStatus, Catalog, CatalogEntry, Listing, contain, index, layout, shown_status};

impl Catalog {
    /// Every entry, damaged ones included, sorted by id. Entries left `downloading` by a dead
    /// process are recorded as `incomplete` (best effort, as reads show them so anyway).
    ///
    /// Reads only the records that changed since the last listing (in any process): the rest
    /// come from the index, each checked against its record's file (see `index`).
    pub fn list(&self) -> Result<Vec<Listing>> {
        let (mut out, dead) = {
            let mut cached = rbee_artifact::lock_unpoisoned(&self.index);
            let (old, looked) = match cached.take() {
                Some(old) => {
                    let looked = index::look_ahead(&self.root, &old);
                    (old, looked)
                }
                None => index::load(&self.root),
            };
            let mut refresh = index::Refresh::new(old, looked, self.settle);
            let walked = self.walk(&mut refresh);
            let (nodes, changed) = refresh.finish();
            if walked.is_ok() {
                if changed {
                    self.save_index(&nodes);
                }
                *cached = Some(nodes);
            }
            walked?
        };
        out.sort_by(|a, b| listing_id(a).cmp(listing_id(b)));
        self.recover(&dead);
        Ok(out)
    }

    /// Walks the catalog folders, taking from the index what is unchanged on disk and reading
    /// the rest. Returns the listing and the keys of entries whose record says `downloading`
    /// while no process holds their lease.
    fn walk(&self, refresh: &mut index::Refresh) -> Result<(Vec<Listing>, Vec<CatalogKey>)> {
        let mut out = Vec::with_capacity(refresh.known());
        let mut dead = Vec::new();
        let mut folders = index::Folders::new(&self.root);
        let mut stack = vec![String::new()];
        while let Some(rel) = stack.pop() {
            let is_root = rel.is_empty();
            // The root is read every time: saving the index changes it.
            let mut stamp = None;
            // What the index holds of the folder, and what a stat ahead of the walk saw of it.
            let (cached, looked) = match refresh.take(&rel) {
                Some((
                    key,
                    index::Node::Branch {
                        stamp: was,
                        children,
                    },
                    looked,
                )) => {
                    let now = match looked {
                        Some((stamp, _)) => Ok(stamp),
                        None => folders.lstat(&rel, None).map(|(stamp, _)| stamp),
                    };
                    if now.as_ref().is_ok_and(|now| *now == was) {
                        // Nothing was added, removed or renamed in it: not even a record.
                        push_children(&mut stack, &rel, &children);
                        folders.enter(&rel, children.len());
                        refresh.keep(
                            key,
                            index::Node::Branch {
                                stamp: was,
                                children,
                            },
                        );
                        continue;
                    }
                    stamp = now.ok();
                    // What was looked at is the folder, not a record it may hold now.
                    (None, None)
                }
                Some((key, entry, looked)) => (Some((key, entry)), looked),
                None => (None, None),
            };
            if !is_root
                && let Ok(found) =
                    looked.map_or_else(|| folders.lstat(&rel, Some(layout::METADATA_FILE)), Ok)
            {
                let dir = index::dir_of(&self.root, &rel);
                self.visit_entry(&rel, dir, found, cached, refresh, &mut out, &mut dead);
                continue;
            }
            let dir = index::dir_of(&self.root, &rel);
            if !is_root && stamp.is_none() {
                match folders.lstat(&rel, None) {
                    Ok((now, _)) => stamp = Some(now),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                    Err(e) => return Err(Error::io(format!("listing {}", dir.display()), e)),
                }
            }
            // Stamped before it is read: a change after the stamp shows as a newer one.
            let read = match fs::read_dir(&dir) {
                Ok(read) => read,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(Error::io(format!("listing {}", dir.display()), e)),
            };
            let mut children = Vec::new();
            // A folder listing a damaged name is read again each time: the index keeps only
            // names it can replay.
            let mut damaged = false;
            for item in read.flatten() {
                // A link is never a folder here: `file_type` does not follow it.
                let is_dir = item.file_type().is_ok_and(|t| t.is_dir());
                let name = item.file_name();
                match name.to_str() {
                    Some(name) if is_dir && !name.starts_with('.') => {
                        children.push(name.to_string())
                    }
                    // rbee names its folders in ASCII: a record under another name is shown
                    // as damaged, and there is nothing else to find there.
                    None if is_dir && item.path().join(layout::METADATA_FILE).exists() => {
                        damaged = true;
                        out.push(Listing::Damaged {
                            id: self.id_of_dir(&item.path()),
                            dir: item.path(),
                            reason: format!(
                                "its folder {} is not one rbee makes",
                                item.path().display()
                            ),
                        })
                    }
                    _ => {}
                }
            }
            push_children(&mut stack, &rel, &children);
            folders.enter(&rel, children.len());
            if let Some(stamp) = stamp.filter(|_| !damaged) {
                refresh.put(&rel, index::Node::Branch { stamp, children });
            }
        }
        Ok((out, dead))
    }

    /// One folder holding a record: from the index (`cached`, taken out of it) when its record
    /// is unchanged, else read.
    #[allow(clippy::too_many_arguments)] // The walk's state, passed down rather than bundled.
    fn visit_entry(
        &self,
        rel: &str,
        dir: PathBuf,
        (stamp, is_file): (index::Stamp, bool),
        cached: Option<(String, index::Node)>,
        refresh: &mut index::Refresh,
        out: &mut Vec<Listing>,
        dead: &mut Vec<CatalogKey>,
    ) {
        let cached = match cached {
            // Its record was checked as one read from disk would be when the index was decoded.
            Some((key, index::Node::Entry { stamp: s, record })) if s == stamp && is_file => {
                let shown = Arc::clone(&record);
                refresh.keep(key, index::Node::Entry { stamp, record });
                Some(shown)
            }
            _ => None,
        };
        let record = match cached {
            Some(record) => record,
            None => {
                let id = self.id_of_dir(&dir);
                let read = match CatalogKey::from_id(&id) {
                    Some(key) => self.read_checked(&key, &dir),
                    None => Err(format!(
                        "its folder {} is not one rbee makes",
                        dir.display()
                    )),
                };
                match read {
                    Ok(Some(record)) => {
                        let record = Arc::new(record);
                        refresh.put(
                            rel,
                            index::Node::Entry {
                                stamp,
                                record: Arc::clone(&record),
                            },
                        );
                        record
                    }
                    Ok(None) => return,
                    Err(reason) => {
                        out.push(Listing::Damaged { id, dir, reason });
                        return;
                    }
                }
            }
        };
        let on_disk_downloading = matches!(record.status, ArtifactStatus::Downloading { .. });
        let record = shown_status(&dir, record);
        if on_disk_downloading && !matches!(record.status, ArtifactStatus::Downloading { .. }) {
            dead.push(record.key());
        }
        out.push(Listing::Entry(CatalogEntry { record, dir }));
    }

    /// Saves the index for the next process. Best effort: a catalog on a read-only or full
    /// disk still lists, only slower. Under the catalog lock when it is free, so that a save
    /// never waits for a writer; a save racing another is harmless, since every reader checks
    /// what it takes from the index against the records.
    fn save_index(&self, nodes: &index::Nodes) {
        let path = self.root.join(layout::CATALOG_LOCK_FILE);
        let Ok(lock) = contain::open_lock(&path) else {
            return;
        };
        if lock.try_lock().is_err() {
            return;
        }
        if let Err(e) = index::save(&self.root, nodes) {
            tracing::debug!(root = %self.root.display(), error = %e, "could not save the catalog index; the next listing rebuilds it");
        }
    }

    /// Records downloads left by dead processes as `incomplete`. Best effort: reads already
    /// show them so, and a catalog on a full disk must still list.
    fn recover(&self, dead: &[CatalogKey]) {
        for key in dead {
            // Holding the lease proves the download is dead and keeps a new one from starting
            // while the record changes.
            let Ok(Some(_lease)) = self.try_lease_key(key.clone()) else {
                continue;
            };
            let result = self.update(key, |r| {
                if let ArtifactStatus::Downloading { bytes, total } = r.status {
                    r.status = ArtifactStatus::Incomplete { bytes, total };
                }
            });
            if let Err(e) = result {
                tracing::warn!(id = %key.id(), error = %e.report(), "could not record a dead process's download as incomplete; it is shown so anyway");
            }
        }
    }
}

pub(crate) fn listing_id(listing: &Listing) -> &str {
    match listing {
        Listing::Entry(e) => &e.record.id,
        Listing::Damaged { id, .. } => id,
    }
}

/// Pushes the sub-folders of the folder `rel` for a walk.
fn push_children(stack: &mut Vec<String>, rel: &str, children: &[String]) {
    for child in children {
        stack.push(if rel.is_empty() {
            child.clone()
        } else {
            format!("{rel}/{child}")
        });
    }
}
