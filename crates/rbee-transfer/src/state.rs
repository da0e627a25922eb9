//! The resume state kept beside a partial file (`<file>.part.state`).
//!
//! It records which byte ranges of the `.part` are written, the validators of the remote
//! (`ETag`, `Last-Modified`, size) so a resume can prove it continues the same bytes, and the
//! SHA-256 state over the prefix hashed so far so a resume does not re-read it. It is written
//! atomically (temp file + rename) and only ever claims bytes whose `write` has returned, so
//! after a crash or `kill -9` of the process it under-claims, never over-claims.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use rbee_artifact::Sha256Digest;
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use sha2::digest::common::hazmat::{SerializableState, SerializedState};

use crate::ranges::RangeSet;

const VERSION: u32 = 1;

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
}

impl PartState {
    pub(crate) fn new(source: String, sha256: Option<Sha256Digest>) -> Self {
        Self {
            version: VERSION,
            source,
            sha256,
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
        match serde_json::from_slice::<PartState>(bytes) {
            Ok(mut s) if s.version == VERSION => {
                s.done = RangeSet::from_ranges(s.done.ranges().iter().copied());
                if let Some(total) = s.validators.total
                    && !s.done.fits(total)
                {
                    return None;
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
                    serde_json::json!({
                        "version": 1, "source": "x", "done": done, "total": total,
                        "etag": etag, "hashed": hashed, "hasher": hasher,
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
                if let Some(s) = PartState::decode(json.as_bytes(), Path::new("x.part.state")) {
                    prop_assert!(s.validators.total.is_none_or(|t| s.done.fits(t)));
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
