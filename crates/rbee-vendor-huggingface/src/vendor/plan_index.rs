//! A plan's files by path: built in one pass, then each lookup is constant time, so a snapshot
//! of thousands of files does not search the whole plan once per file.

use std::collections::HashMap;

use rbee_artifact::ResolvedFile;

/// The files of a plan, by path, with their place in it.
pub(super) struct PlanIndex<'a> {
    files: &'a [ResolvedFile],
    by_path: HashMap<&'a str, usize>,
}

impl<'a> PlanIndex<'a> {
    pub(super) fn new(files: &'a [ResolvedFile]) -> Self {
        #[cfg(test)]
        PASSES.with(|p| p.set(p.get() + 1));
        let by_path = files
            .iter()
            .enumerate()
            .map(|(i, f)| (f.path.as_str(), i))
            .collect();
        Self { files, by_path }
    }

    /// The plan's file at `path`.
    pub(super) fn get(&self, path: &str) -> Option<&'a ResolvedFile> {
        self.by_path.get(path).map(|&i| &self.files[i])
    }

    /// Where `path` is in the plan; after every planned file when it is not planned.
    pub(super) fn position(&self, path: &str) -> usize {
        self.by_path.get(path).copied().unwrap_or(usize::MAX)
    }
}

#[cfg(test)]
thread_local! {
    /// Passes over a plan's file list on this thread (each index built is one).
    pub(super) static PASSES: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_files_and_their_places() {
        let files: Vec<ResolvedFile> = ["a", "b/c", "d"]
            .iter()
            .map(|p| ResolvedFile {
                path: p.to_string(),
                size: None,
                sha256: None,
                version: None,
                git_blob: None,
                source: rbee_artifact::FileSource::Local { path: "/x".into() },
            })
            .collect();
        let index = PlanIndex::new(&files);
        assert_eq!(index.get("b/c").unwrap().path, "b/c");
        assert!(index.get("zz").is_none());
        assert_eq!(index.position("d"), 2);
        assert_eq!(index.position("zz"), usize::MAX);
    }
}
