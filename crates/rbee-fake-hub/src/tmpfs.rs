//! A small tmpfs for full-disk tests: the local half of "the world as it is" beside the fake hub.
//!
//! Mounting needs root. CI runs as root and sets `RBEE_REQUIRE_TMPFS=1`, which turns a failed
//! mount into a test failure; elsewhere the test is skipped with a message on stderr.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// A tmpfs mounted on a folder for as long as this value lives (lazily unmounted on drop).
#[derive(Debug)]
pub struct Tmpfs {
    dir: PathBuf,
    /// The temp folder it is mounted on, when [`Tmpfs::mount`] made one; dropped after unmounting.
    _owned: Option<tempfile::TempDir>,
}

impl Tmpfs {
    /// Mounts a tmpfs of `size` (e.g. `24m`) on a new temp folder, or says loudly why the test is
    /// skipped (`None`).
    pub fn mount(size: &str) -> Option<Tmpfs> {
        let owned = tempfile::tempdir().expect("a temp folder");
        let dir = owned.path().to_path_buf();
        Self::mount_on(dir, size, Some(owned))
    }

    /// Mounts a tmpfs of `size` on `dir` (created when missing), or says why the test is skipped.
    pub fn mount_at(dir: &Path, size: &str) -> Option<Tmpfs> {
        std::fs::create_dir_all(dir).expect("the mount point");
        Self::mount_on(dir.to_path_buf(), size, None)
    }

    #[allow(clippy::print_stderr)]
    fn mount_on(dir: PathBuf, size: &str, owned: Option<tempfile::TempDir>) -> Option<Tmpfs> {
        let result = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0755"),
                "tmpfs",
            ])
            .arg(&dir)
            .stderr(Stdio::piped())
            .output();
        let why = match result {
            Ok(out) if out.status.success() => {
                return Some(Tmpfs { dir, _owned: owned });
            }
            Ok(out) => String::from_utf8_lossy(&out.stderr).trim().to_string(),
            Err(e) => e.to_string(),
        };
        if std::env::var_os("RBEE_REQUIRE_TMPFS").is_some_and(|v| v == "1") {
            panic!("RBEE_REQUIRE_TMPFS=1 but a tmpfs cannot be mounted: {why}");
        }
        eprintln!(
            "SKIPPED: this full-disk test needs to mount a tmpfs (run as root, or set RBEE_REQUIRE_TMPFS=1 to make this an error): {why}"
        );
        None
    }

    /// Where it is mounted.
    pub fn path(&self) -> &Path {
        &self.dir
    }

    /// Free bytes, and the block size the file system counts in.
    pub fn free(&self) -> (u64, u64) {
        let out = Command::new("stat")
            .args(["-f", "--format=%a %S"])
            .arg(&self.dir)
            .output()
            .expect("stat");
        let text = String::from_utf8_lossy(&out.stdout);
        let mut parts = text
            .split_whitespace()
            .map(|n| n.parse::<u64>().expect("stat prints numbers"));
        let (blocks, size) = (
            parts.next().expect("free blocks"),
            parts.next().expect("block size"),
        );
        (blocks * size, size)
    }

    /// Fills the file system up to `leave` bytes (whole blocks) with a file, and returns it.
    pub fn fill_leaving(&self, leave: u64) -> PathBuf {
        let (free, block) = self.free();
        let path = self.dir.join("filler");
        let leave = leave.div_ceil(block) * block;
        std::fs::write(&path, vec![0x5au8; (free - leave) as usize]).expect("writing the filler");
        assert_eq!(self.free().0, leave, "the tmpfs counts space as expected");
        path
    }

    /// Fills the file system: a file grows until nothing more fits. Returns the file.
    pub fn fill(&self) -> PathBuf {
        let path = self.dir.join("filler");
        let mut f = std::fs::File::create(&path).expect("creating the filler");
        for block in [64 << 10, 4096, 1] {
            let data = vec![0xa5u8; block];
            loop {
                match f.write(&data) {
                    Ok(0) => break,
                    Ok(_) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::StorageFull => break,
                    Err(e) => panic!("filling the tmpfs: {e}"),
                }
            }
        }
        path
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.dir).status();
    }
}
