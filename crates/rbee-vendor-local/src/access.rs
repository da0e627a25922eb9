//! Which local files may be read, judged by real paths (every link resolved), and opening them
//! so that what is read is what was judged.

use std::fs::{self, File, Metadata, OpenOptions};
use std::io::ErrorKind;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use rbee_artifact::{Error, Result};

/// Which files the `file:` vendor may read.
///
/// Every file the vendor reads is judged by its **real path**: links in the named path, links
/// inside a folder, and linked sub-folders are all resolved before the decision, and a file is
/// opened only after checking that the opened file is still the one judged (so a link swapped
/// in meanwhile cannot redirect the read).
///
/// ```
/// use rbee_vendor_local::LocalAccess;
///
/// let models = tempfile::tempdir().unwrap();
/// std::fs::write(models.path().join("m.gguf"), b"weights").unwrap();
/// let access = LocalAccess::within([models.path().to_path_buf()]);
/// assert!(access.check(&models.path().join("m.gguf")).is_ok());
/// assert!(access.check(std::path::Path::new("/etc/hostname")).is_err());
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum LocalAccess {
    /// Any file this process can read, links followed wherever they lead. Right for the CLI,
    /// which reads with its own user's rights on that user's behalf.
    #[default]
    Anywhere,
    /// Only files whose real path lies inside one of these folders. Right for a daemon, which
    /// reads with its own rights on behalf of whoever calls it.
    Within(Vec<PathBuf>),
}

impl LocalAccess {
    /// Access limited to `folders` (none at all when empty).
    pub fn within(folders: impl IntoIterator<Item = PathBuf>) -> Self {
        Self::Within(folders.into_iter().collect())
    }

    /// The real path of `path` when it may be read; otherwise a clear error:
    /// [`Error::Unauthorized`] when it lies outside the allowed folders, [`Error::NotFound`] when
    /// it does not exist. A missing path outside the allowed folders is reported as outside, so
    /// the answer never tells whether a file exists where it may not be read.
    pub fn check(&self, path: &Path) -> Result<PathBuf> {
        self.real_roots().check(path)
    }

    /// The allowed folders as real paths, resolved once per request.
    pub(crate) fn real_roots(&self) -> Roots {
        match self {
            LocalAccess::Anywhere => Roots::Anywhere,
            LocalAccess::Within(folders) => Roots::Within {
                real: folders
                    .iter()
                    .filter_map(|f| fs::canonicalize(f).ok())
                    .collect(),
                given: folders.clone(),
            },
        }
    }
}

/// [`LocalAccess`] with its folders resolved.
#[derive(Debug, Clone)]
pub(crate) enum Roots {
    Anywhere,
    Within {
        real: Vec<PathBuf>,
        given: Vec<PathBuf>,
    },
}

impl Roots {
    /// See [`LocalAccess::check`].
    pub(crate) fn check(&self, path: &Path) -> Result<PathBuf> {
        match fs::canonicalize(path) {
            Ok(real) if self.admits(&real) => Ok(real),
            Ok(_) => Err(self.outside(path)),
            Err(e) => {
                // Judge a missing path by its deepest existing folder.
                let existing = path
                    .ancestors()
                    .skip(1)
                    .find_map(|a| fs::canonicalize(a).ok());
                if !existing.is_some_and(|a| self.admits(&a)) {
                    return Err(self.outside(path));
                }
                if fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink()) {
                    return Err(follow_link(path).err().unwrap_or_else(|| changed(path)));
                }
                Err(match e.kind() {
                    ErrorKind::NotFound | ErrorKind::NotADirectory => Error::NotFound {
                        message: format!(
                            "there is no file or folder at {}; check the path",
                            path.display()
                        ),
                    },
                    ErrorKind::PermissionDenied => permission_denied(path),
                    _ if is_link_loop(&e) => link_loop(path),
                    // A name too long, a NUL byte…: the path itself is at fault.
                    _ => Error::InvalidRequest(format!(
                        "{} cannot be resolved ({e}); check the path",
                        path.display()
                    )),
                })
            }
        }
    }

    /// Whether a real path may be read.
    pub(crate) fn admits(&self, real: &Path) -> bool {
        match self {
            Roots::Anywhere => true,
            Roots::Within { real: roots, .. } => roots.iter().any(|root| real.starts_with(root)),
        }
    }

    /// The error for a path outside the allowed folders.
    fn outside(&self, path: &Path) -> Error {
        Error::Unauthorized {
            message: format!(
                "{} is not inside the folders local files may be read from ({}); move or copy it into one of them, or allow its folder",
                path.display(),
                self.describe()
            ),
        }
    }

    /// The error for a link, inside an allowed folder, that leads out of every allowed folder.
    /// The link's target is not named: the caller may not learn what lies outside.
    pub(crate) fn link_outside(&self, link: &Path) -> Error {
        Error::Unauthorized {
            message: format!(
                "{} is a link that leads outside the folders local files may be read from ({}); replace the link with the file itself, or leave it out with an exclude glob",
                link.display(),
                self.describe()
            ),
        }
    }

    fn describe(&self) -> String {
        match self {
            Roots::Anywhere => "any".into(),
            Roots::Within { given, .. } if given.is_empty() => "none are allowed".into(),
            Roots::Within { given, .. } => given
                .iter()
                .map(|g| g.display().to_string())
                .collect::<Vec<_>>()
                .join(", "),
        }
    }

    /// Opens the file at the real path `real` for reading, checking that it is a regular file
    /// that may be read and that the file opened is the one at that path now: a link or another
    /// file swapped in after `real` was judged is refused instead of read.
    pub(crate) fn open(&self, real: &Path) -> Result<(File, Metadata)> {
        if !self.admits(real) {
            return Err(self.outside(real));
        }
        // No link as the last component; no blocking on a FIFO swapped in for a file.
        let file = OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
            .open(real)
            .map_err(|e| match e.kind() {
                ErrorKind::PermissionDenied => permission_denied(real),
                _ if is_link_loop(&e) => changed(real),
                _ => Error::io(format!("opening {}", real.display()), e),
            })?;
        let meta = file
            .metadata()
            .map_err(|e| Error::io(format!("reading {}", real.display()), e))?;
        if !meta.is_file() {
            return Err(Error::InvalidRequest(format!(
                "{} is not a regular file",
                real.display()
            )));
        }
        if let Roots::Within { .. } = self {
            let now = fs::canonicalize(real).ok();
            let same = now.as_deref() == Some(real)
                && fs::metadata(real).is_ok_and(|m| same_file(&m, &meta));
            if !same {
                return Err(changed(real));
            }
        }
        Ok((file, meta))
    }
}

/// Whether two metadata describe the same file.
pub(crate) fn same_file(a: &Metadata, b: &Metadata) -> bool {
    a.dev() == b.dev() && a.ino() == b.ino()
}

/// Resolves the link at `link` to a real path, with a clear error for a dangling link or a loop.
pub(crate) fn follow_link(link: &Path) -> Result<PathBuf> {
    fs::canonicalize(link).map_err(|e| {
        if is_link_loop(&e) {
            return link_loop(link);
        }
        match e.kind() {
            ErrorKind::NotFound => Error::NotFound {
                message: format!(
                    "{} is a link to {}, which does not exist; remove the link, or leave it out with an exclude glob",
                    link.display(),
                    fs::read_link(link)
                        .map(|t| t.display().to_string())
                        .unwrap_or_else(|_| "a missing file".into())
                ),
            },
            ErrorKind::PermissionDenied => permission_denied(link),
            _ => Error::io(format!("following the link {}", link.display()), e),
        }
    })
}

fn is_link_loop(e: &std::io::Error) -> bool {
    e.raw_os_error() == Some(libc::ELOOP)
}

pub(crate) fn link_loop(link: &Path) -> Error {
    Error::InvalidRequest(format!(
        "{} is a link loop (following it leads back to where it started); remove the link, or leave it out with an exclude glob",
        link.display()
    ))
}

pub(crate) fn permission_denied(path: &Path) -> Error {
    Error::Unauthorized {
        message: format!(
            "cannot read {}: permission denied; check its permissions",
            path.display()
        ),
    }
}

fn changed(path: &Path) -> Error {
    Error::InvalidRequest(format!(
        "{} changed while it was being read (a link or another file took its place); try again once it stays put",
        path.display()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn real_paths_decide() {
        let tmp = tempfile::tempdir().unwrap();
        let allowed = tmp.path().join("allowed");
        fs::create_dir(&allowed).unwrap();
        fs::write(allowed.join("m.gguf"), b"x").unwrap();
        fs::write(tmp.path().join("secret"), b"s").unwrap();
        std::os::unix::fs::symlink(tmp.path().join("secret"), allowed.join("out.gguf")).unwrap();
        std::os::unix::fs::symlink("m.gguf", allowed.join("in.gguf")).unwrap();
        let access = LocalAccess::within([allowed.clone()]);

        let real = access.check(&allowed.join("in.gguf")).unwrap();
        assert_eq!(real, fs::canonicalize(allowed.join("m.gguf")).unwrap());
        let err = access.check(&allowed.join("out.gguf")).unwrap_err();
        assert!(matches!(err, Error::Unauthorized { .. }), "{err:?}");
        // Lexically inside, really outside.
        let err = access
            .check(&allowed.join("../secret"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("not inside the folders"), "{err}");
        // A missing file inside is "not found"; outside, it is "not allowed", whether or not
        // it exists.
        assert!(matches!(
            access.check(&allowed.join("nope.gguf")),
            Err(Error::NotFound { .. })
        ));
        for outside in [tmp.path().join("secret"), tmp.path().join("nope")] {
            assert!(matches!(
                access.check(&outside),
                Err(Error::Unauthorized { .. })
            ));
        }
        assert!(matches!(
            LocalAccess::within([]).check(&allowed.join("m.gguf")),
            Err(Error::Unauthorized { .. })
        ));
        assert!(
            LocalAccess::Anywhere
                .check(&allowed.join("out.gguf"))
                .is_ok()
        );

        // Paths that cannot be resolved are the caller's to fix, not a failure of the reader.
        assert!(matches!(
            access.check(&allowed.join("m.gguf/x")),
            Err(Error::NotFound { .. })
        ));
        let long = allowed.join("n".repeat(300));
        assert!(matches!(access.check(&long), Err(Error::InvalidRequest(_))));
    }

    #[test]
    fn opening_refuses_what_is_not_the_judged_file() {
        let tmp = tempfile::tempdir().unwrap();
        let real = fs::canonicalize(tmp.path()).unwrap();
        fs::write(real.join("m.gguf"), b"x").unwrap();
        fs::write(real.join("other"), b"y").unwrap();
        let roots = LocalAccess::within([real.clone()]).real_roots();
        assert!(roots.open(&real.join("m.gguf")).is_ok());
        // The judged path became a link.
        fs::remove_file(real.join("m.gguf")).unwrap();
        std::os::unix::fs::symlink(real.join("other"), real.join("m.gguf")).unwrap();
        let err = roots.open(&real.join("m.gguf")).unwrap_err().to_string();
        assert!(err.contains("changed while it was being read"), "{err}");
        // A folder is not a file.
        let err = roots.open(&real).unwrap_err().to_string();
        assert!(err.contains("not a regular file"), "{err}");
    }
}
