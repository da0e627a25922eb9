//! The resume state kept beside a partial file (`<file>.part.state`).
//!
//! It records which byte ranges of the `.part` are written, the validators of the remote
//! (`ETag`, `Last-Modified`, size) so a resume can prove it continues the same bytes, and the
//! SHA-256 state over the prefix hashed so far so a resume does not re-read it. It is written
//! atomically (temp file + rename) and only ever claims bytes whose `write` has returned.
//!
//! Two views are kept: the *written* one (ranges whose `write` returned, and the hash over
//! them) and the *durable* one (what a `sync_data` has since made durable). Written bytes sit
//! in the page cache and survive the death of the process, but not a reboot or power loss. So
//! the written view is saved often and without waiting for the disk, and a resume trusts it
//! only when it runs under the same kernel boot as the save; after a reboot (or when the boot
//! cannot be told) it trusts only the durable view. Either way a resume under-claims, never
//! over-claims.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use rbee_artifact::Sha256Digest;
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use sha2::digest::common::hazmat::{SerializableState, SerializedState};

use crate::ranges::RangeSet;

const VERSION: u32 = 2;
/// States of this version were saved only after a `sync_data`: all they claim is durable.
const VERSION_SYNCED_ONLY: u32 = 1;

/// Larger than any state this engine writes (a few thousand ranges); bounds what a tampered
/// file can make it read.
const MAX_STATE_BYTES: u64 = 4 << 20;

/// What identifies the remote bytes of a partial file.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Validators {
    /// The size of the whole file.
    pub(crate) total: Option<u64>,
    /// A strong `ETag`, or a weak one (`W/"…"`), as the server sent it.
    pub(crate) etag: Option<String>,
    pub(crate) last_modified: Option<String>,
}

impl Validators {
    /// The value for `If-Range`: a strong ETag, else `Last-Modified` (weak ETags are not
    /// allowed there).
    pub(crate) fn if_range(&self) -> Option<&str> {
        match &self.etag {
            Some(e) if !e.starts_with("W/") => Some(e),
            _ => self.last_modified.as_deref(),
        }
    }

    /// Whether a response with validators `other` provably serves the same bytes as these: the
    /// same strong `ETag`, or (when neither side has one) the same `Last-Modified`. A validator
    /// missing on either side proves nothing; nor does a weak `ETag`, which only promises
    /// equivalent content, not identical bytes.
    pub(crate) fn proves_same(&self, other: &Validators) -> bool {
        if let (Some(a), Some(b)) = (self.total, other.total)
            && a != b
        {
            return false;
        }
        let strong = |e: &Option<String>| e.clone().filter(|e| !e.starts_with("W/"));
        match (strong(&self.etag), strong(&other.etag)) {
            (Some(a), Some(b)) => a == b,
            (Some(_), None) | (None, Some(_)) => false,
            (None, None) => match (&self.last_modified, &other.last_modified) {
                (Some(a), Some(b)) => a == b,
                _ => false,
            },
        }
    }

    /// Whether a response with validators `other` may serve the same bytes as these: nothing
    /// contradicts it (validators missing on one side are not a contradiction). Only for when
    /// a published digest checks the result.
    pub(crate) fn same_as(&self, other: &Validators) -> bool {
        let weak = |e: &str| e.trim_start_matches("W/").to_string();
        if let (Some(a), Some(b)) = (self.total, other.total)
            && a != b
        {
            return false;
        }
        match (&self.etag, &other.etag) {
            (Some(a), Some(b)) => return weak(a) == weak(b),
            (Some(_), None) | (None, Some(_)) => {}
            (None, None) => {}
        }
        match (&self.last_modified, &other.last_modified) {
            (Some(a), Some(b)) => a == b,
            _ => true,
        }
    }
}

/// The contents of a `.part.state` file.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct PartState {
    pub(crate) version: u32,
    /// SHA-256 of the request URL: a partial of another URL is not continued (unless the
    /// expected digests match, which proves the same content).
    pub(crate) source: String,
    /// The digest the file must have, when the vendor gave one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) sha256: Option<Sha256Digest>,
    #[serde(flatten)]
    pub(crate) validators: Validators,
    /// Written ranges of the `.part`.
    pub(crate) done: RangeSet,
    /// Bytes `[0, hashed)` are folded into `hasher`.
    #[serde(default)]
    pub(crate) hashed: u64,
    /// Serialized SHA-256 state after `hashed` bytes (hex).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) hasher: Option<String>,
    /// What of `done` (and of the hash) is known durable.
    #[serde(default)]
    pub(crate) durable: Durable,
    /// The kernel boot under which `done` was written (see [`boot_id`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) boot_id: Option<String>,
}

/// The part of a state that a `sync_data` has made durable.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Durable {
    pub(crate) done: RangeSet,
    #[serde(default)]
    pub(crate) hashed: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) hasher: Option<String>,
}

/// The id of the running kernel boot, read once; `None` where the system does not tell it
/// (then written bytes are never trusted across runs beyond what was synced).
pub(crate) fn boot_id() -> Option<&'static str> {
    static BOOT: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();
    BOOT.get_or_init(|| {
        let id = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").ok()?;
        let id = id.trim();
        (!id.is_empty() && id.len() <= 64).then(|| id.to_string())
    })
    .as_deref()
}

impl PartState {
    pub(crate) fn new(source: String, sha256: Option<Sha256Digest>) -> Self {
        Self {
            version: VERSION,
            source,
            sha256,
            boot_id: boot_id().map(str::to_string),
            ..Self::default()
        }
    }

    /// Reads a state file; `None` when it is missing or unusable (a partial without a usable
    /// state is restarted, never trusted).
    pub(crate) fn load(path: &Path) -> Option<Self> {
        use std::io::Read;
        let mut bytes = Vec::new();
        // A link planted in its place is not read; a huge file is not a state file.
        crate::nofollow::open_read(path)
            .ok()?
            .take(MAX_STATE_BYTES + 1)
            .read_to_end(&mut bytes)
            .ok()?;
        if bytes.len() as u64 > MAX_STATE_BYTES {
            tracing::warn!(path = %path.display(), "ignoring a resume state larger than any this engine writes");
            return None;
        }
        Self::decode(&bytes, path)
    }

    /// Parses the bytes of a state file; `None` when they are not a usable state.
    pub(crate) fn decode(bytes: &[u8], path: &Path) -> Option<Self> {
        Self::decode_under(bytes, path, boot_id())
    }

    /// [`PartState::decode`] under the kernel boot `boot`: the written view when the state was
    /// saved under that same boot, else only its durable view. What it returns claims only
    /// trusted bytes, and is stamped with `boot`.
    pub(crate) fn decode_under(bytes: &[u8], path: &Path, boot: Option<&str>) -> Option<Self> {
        match serde_json::from_slice::<PartState>(bytes) {
            Ok(mut s) if s.version == VERSION || s.version == VERSION_SYNCED_ONLY => {
                if s.version == VERSION_SYNCED_ONLY {
                    s.durable = s.written_view();
                    s.version = VERSION;
                }
                s.done = RangeSet::from_ranges(s.done.ranges().iter().copied());
                s.durable.done = RangeSet::from_ranges(s.durable.done.ranges().iter().copied());
                if let Some(total) = s.validators.total
                    && !(s.done.fits(total) && s.durable.done.fits(total))
                {
                    return None;
                }
                let same_boot = boot.is_some() && s.boot_id.as_deref() == boot;
                if !same_boot {
                    let durable = s.durable.clone();
                    s.done = durable.done;
                    s.hashed = durable.hashed;
                    s.hasher = durable.hasher;
                }
                s.boot_id = boot.map(str::to_string);
                // Durable bytes are a part of the written ones, and a hash covers only them.
                s.durable.done = s.durable.done.intersect(&s.done);
                if s.durable.hashed > s.durable.done.prefix_end() {
                    s.durable.hashed = 0;
                    s.durable.hasher = None;
                }
                Some(s)
            }
            Ok(_) => None,
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "ignoring an unreadable resume state");
                None
            }
        }
    }

    /// Writes the state atomically: a unique temp file beside it, then a rename.
    pub(crate) fn save(&self, path: &Path) -> std::io::Result<()> {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let mut tmp = path.as_os_str().to_owned();
        tmp.push(format!(
            ".tmp{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        let tmp = PathBuf::from(tmp);
        let result = (|| {
            let mut f = crate::nofollow::create_new(&tmp)?;
            f.write_all(&serde_json::to_vec(self).map_err(std::io::Error::other)?)?;
            std::fs::rename(&tmp, path)
        })();
        if result.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        result
    }

    /// The written ranges and the hash over them, as a durable view (for when they are synced).
    pub(crate) fn written_view(&self) -> Durable {
        Durable {
            done: self.done.clone(),
            hashed: self.hashed,
            hasher: self.hasher.clone(),
        }
    }

    /// Records `synced` (a written view taken before a `sync_data` that has returned) as
    /// durable, as far as its ranges are still written.
    pub(crate) fn mark_durable(&mut self, synced: Durable) {
        let done = synced.done.intersect(&self.done);
        let (hashed, hasher) = if synced.hashed <= done.prefix_end() {
            (synced.hashed, synced.hasher)
        } else {
            (0, None)
        };
        self.durable = Durable {
            done,
            hashed,
            hasher,
        };
    }

    /// Keeps only `kept` of the written ranges (and of the durable ones).
    pub(crate) fn retain(&mut self, kept: RangeSet) {
        self.durable.done = self.durable.done.intersect(&kept);
        if self.durable.hashed > self.durable.done.prefix_end() {
            self.durable.hashed = 0;
            self.durable.hasher = None;
        }
        self.done = kept;
    }

    /// The hasher over `[0, hashed)`, when the saved state restores.
    pub(crate) fn restore_hasher(&self) -> Option<(u64, Sha256)> {
        let hex_state = self.hasher.as_deref()?;
        let raw = hex::decode(hex_state).ok()?;
        let serialized = SerializedState::<Sha256>::try_from(raw.as_slice()).ok()?;
        let hasher = Sha256::deserialize(&serialized).ok()?;
        (self.hashed <= self.done.prefix_end()).then_some((self.hashed, hasher))
    }
}

/// A hasher's state as hex, for [`PartState::hasher`].
pub(crate) fn serialize_hasher(h: &Sha256) -> String {
    hex::encode(h.serialize().as_slice())
}

/// The `source` identity of a URL.
pub(crate) fn source_id(url: &url::Url) -> String {
    use sha2::Digest;
    let mut u = url.clone();
    u.set_fragment(None);
    hex::encode(Sha256::digest(u.as_str().as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use sha2::Digest;

    #[test]
    fn round_trips_with_the_hasher_state() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.gguf.part.state");
        let mut s = PartState::new("abc".into(), None);
        s.validators.total = Some(100);
        s.validators.etag = Some("\"e1\"".into());
        s.done.insert(0, 40);
        s.done.insert(60, 70);
        let mut h = Sha256::new();
        h.update(b"0123456789");
        s.hashed = 10;
        s.hasher = Some(serialize_hasher(&h));
        s.save(&path).unwrap();
        let back = PartState::load(&path).unwrap();
        assert_eq!(back, s);
        let (n, mut restored) = back.restore_hasher().unwrap();
        assert_eq!(n, 10);
        restored.update(b"abc");
        h.update(b"abc");
        assert_eq!(restored.finalize(), h.finalize());
        // Garbage and ranges beyond the size are refused.
        std::fs::write(&path, b"{nope").unwrap();
        assert!(PartState::load(&path).is_none());
        s.done.insert(90, 120);
        s.save(&path).unwrap();
        assert!(PartState::load(&path).is_none());
    }

    /// A state whose written view runs ahead of its durable one, with a hash over each.
    fn ahead_of_the_disk() -> (PartState, Sha256, Sha256) {
        let mut s = PartState::new("abc".into(), None);
        s.validators.total = Some(100);
        let mut durable_hash = Sha256::new();
        durable_hash.update([7u8; 20]);
        let mut written_hash = durable_hash.clone();
        written_hash.update([7u8; 40]);
        s.done.insert(0, 20);
        s.hashed = 20;
        s.hasher = Some(serialize_hasher(&durable_hash));
        let synced = s.written_view();
        s.mark_durable(synced);
        s.done.insert(0, 70);
        s.done.insert(80, 90);
        s.hashed = 60;
        s.hasher = Some(serialize_hasher(&written_hash));
        (s, durable_hash, written_hash)
    }

    #[test]
    fn written_bytes_are_trusted_only_under_the_boot_that_wrote_them() {
        let (s, durable_hash, written_hash) = ahead_of_the_disk();
        let path = Path::new("m.part.state");
        let mut saved = s.clone();
        saved.boot_id = Some("boot-a".into());
        let bytes = serde_json::to_vec(&saved).unwrap();

        let same = PartState::decode_under(&bytes, path, Some("boot-a")).unwrap();
        assert_eq!(same.done.ranges(), &[(0, 70), (80, 90)]);
        let (n, h) = same.restore_hasher().unwrap();
        assert_eq!(
            (n, serialize_hasher(&h)),
            (60, serialize_hasher(&written_hash))
        );
        assert_eq!(same.durable.done.ranges(), &[(0, 20)]);

        for boot in [Some("boot-b"), None] {
            let other = PartState::decode_under(&bytes, path, boot).unwrap();
            assert_eq!(other.done.ranges(), &[(0, 20)], "under {boot:?}");
            let (n, h) = other.restore_hasher().unwrap();
            assert_eq!(
                (n, serialize_hasher(&h)),
                (20, serialize_hasher(&durable_hash))
            );
            assert_eq!(
                other.boot_id.as_deref(),
                boot,
                "stamped with the boot it runs under"
            );
        }

        // Saved without a boot id (the system did not tell it): only what was synced.
        saved.boot_id = None;
        let bytes = serde_json::to_vec(&saved).unwrap();
        let unknown = PartState::decode_under(&bytes, path, Some("boot-a")).unwrap();
        assert_eq!(unknown.done.ranges(), &[(0, 20)]);
    }

    #[test]
    fn a_durable_view_never_claims_more_than_is_written() {
        let (mut s, _, _) = ahead_of_the_disk();
        // A tampered state: durable ranges and a durable hash beyond the written ones.
        s.durable.done.insert(0, 95);
        s.durable.hashed = 95;
        s.boot_id = Some("boot-a".into());
        let bytes = serde_json::to_vec(&s).unwrap();
        let back = PartState::decode_under(&bytes, Path::new("x"), Some("boot-a")).unwrap();
        assert_eq!(back.durable.done.ranges(), &[(0, 70), (80, 90)]);
        assert_eq!(
            (back.durable.hashed, back.durable.hasher.as_deref()),
            (0, None)
        );
        // Keeping part of the written ranges keeps only that part of the durable ones.
        let (mut s, _, _) = ahead_of_the_disk();
        s.retain(RangeSet::from_ranges([(10, 70)]));
        assert_eq!(s.durable.done.ranges(), &[(10, 20)]);
        assert_eq!(
            s.durable.hashed, 0,
            "the hash no longer starts on a kept byte"
        );
    }

    #[test]
    fn a_state_of_the_format_before_boot_ids_is_all_durable() {
        let json = serde_json::json!({
            "version": 1, "source": "x", "done": [[0, 30], [50, 60]], "total": 100,
        })
        .to_string();
        for boot in [Some("boot-a"), None] {
            let s = PartState::decode_under(json.as_bytes(), Path::new("x"), boot).unwrap();
            assert_eq!(s.done.ranges(), &[(0, 30), (50, 60)]);
            assert_eq!(s.durable.done, s.done);
            assert_eq!(s.version, VERSION);
        }
        let unknown = json.replace("\"version\":1", "\"version\":9");
        assert!(PartState::decode_under(unknown.as_bytes(), Path::new("x"), None).is_none());
    }

    #[test]
    fn validators_compare_and_pick_if_range() {
        let a = Validators {
            total: Some(5),
            etag: Some("\"x\"".into()),
            last_modified: None,
        };
        assert_eq!(a.if_range(), Some("\"x\""));
        let weak = Validators {
            etag: Some("W/\"x\"".into()),
            last_modified: Some("Wed, 21 Oct 2015 07:28:00 GMT".into()),
            ..a.clone()
        };
        assert_eq!(weak.if_range(), Some("Wed, 21 Oct 2015 07:28:00 GMT"));
        assert!(a.same_as(&weak));
        let other = Validators {
            etag: Some("\"y\"".into()),
            ..a.clone()
        };
        assert!(!a.same_as(&other));
        let bigger = Validators {
            total: Some(6),
            ..a.clone()
        };
        assert!(!a.same_as(&bigger));
        // Proof needs a validator on both sides.
        assert!(a.proves_same(&a.clone()));
        assert!(!a.proves_same(&other));
        let bare = Validators {
            total: Some(5),
            ..Validators::default()
        };
        assert!(a.same_as(&bare) && !a.proves_same(&bare) && !bare.proves_same(&bare));
        assert!(!weak.proves_same(&Validators {
            last_modified: None,
            ..weak.clone()
        }));
        assert!(weak.proves_same(&weak.clone()), "the same Last-Modified");
    }

    mod fuzz {
        use super::super::*;
        use proptest::prelude::*;

        fn state_json() -> impl Strategy<Value = String> {
            (
                proptest::collection::vec((any::<u64>(), any::<u64>()), 0..40),
                proptest::option::of(any::<u64>()),
                any::<u64>(),
                proptest::option::of("[0-9a-f]{0,260}"),
                proptest::option::of("\\PC{0,20}"),
            )
                .prop_map(|(done, total, hashed, hasher, etag)| {
                    let durable: Vec<_> = done.iter().rev().step_by(2).copied().collect();
                    serde_json::json!({
                        "version": 1 + hashed % 2, "source": "x", "done": done, "total": total,
                        "etag": etag, "hashed": hashed, "hasher": hasher,
                        "durable": {"done": durable, "hashed": hashed / 2, "hasher": hasher},
                        "boot_id": (hashed % 3 == 0).then_some("b"),
                    })
                    .to_string()
                })
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(1000))]

            /// A tampered or garbage state file: no panic, and what loads is consistent.
            #[test]
            fn decoding_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
                let _ = PartState::decode(&bytes, Path::new("x.part.state"));
            }

            #[test]
            fn decoded_states_are_consistent(json in state_json()) {
                if let Some(s) = PartState::decode_under(json.as_bytes(), Path::new("x.part.state"), Some("b")) {
                    prop_assert!(s.validators.total.is_none_or(|t| s.done.fits(t)));
                    prop_assert_eq!(s.durable.done.intersect(&s.done), s.durable.done.clone());
                    prop_assert!(s.durable.hashed <= s.durable.done.prefix_end());
                    for w in s.done.ranges().windows(2) {
                        prop_assert!(w[0].1 < w[1].0);
                    }
                    if let Some((n, _)) = s.restore_hasher() {
                        prop_assert!(n <= s.done.prefix_end());
                    }
                }
            }
        }
    }
}
