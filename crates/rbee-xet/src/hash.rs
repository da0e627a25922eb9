//! Xet hashes: chunk hashes, the merkle aggregation behind xorb and file hashes, and the hex
//! spelling the Hub prints.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::XetError;

/// BLAKE3 key of chunk hashes (xet-core's `DATA_KEY`).
const DATA_KEY: [u8; 32] = [
    102, 151, 245, 119, 91, 149, 80, 222, 49, 53, 203, 172, 165, 151, 24, 28, 157, 228, 33, 16,
    155, 235, 43, 88, 180, 208, 176, 75, 147, 173, 242, 41,
];

/// BLAKE3 key of interior merkle nodes (xet-core's `INTERNAL_NODE_HASH`).
const INTERNAL_NODE_KEY: [u8; 32] = [
    1, 126, 197, 199, 165, 71, 41, 150, 253, 148, 102, 102, 180, 138, 2, 230, 93, 221, 83, 111, 55,
    199, 109, 210, 248, 99, 82, 230, 74, 83, 113, 63,
];

/// Mean fan-out of the aggregation tree: a node closes after a child whose hash is 0 mod 4.
const MEAN_BRANCHING_FACTOR: u64 = 4;
/// A node never has more than `2 * MEAN_BRANCHING_FACTOR + 1` children.
const MAX_GROUP: usize = 2 * MEAN_BRANCHING_FACTOR as usize + 1;

/// A 32-byte Xet hash (chunk, xorb or file).
///
/// The bytes are BLAKE3's output. The hex form is xet-core's: the hash is read as four
/// little-endian `u64`s and each is printed as 16 big-endian hex digits, so the text is *not*
/// the bytes in order (`00 01 … 07` prints as `0706050403020100`). This is the spelling of
/// `X-Xet-Hash`, `xetHash`, reconstruction routes and every hash in the CAS API.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct XetHash([u8; 32]);

impl XetHash {
    /// The all-zero hash, which xet-core uses for an empty xorb or file.
    pub const ZERO: XetHash = XetHash([0; 32]);

    /// Wraps raw hash bytes.
    pub const fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// The raw bytes.
    pub const fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// The `i`-th of the four little-endian words the hex form and the tree rule use.
    fn word(&self, i: usize) -> u64 {
        let mut w = [0u8; 8];
        w.copy_from_slice(&self.0[i * 8..i * 8 + 8]);
        u64::from_le_bytes(w)
    }

    /// Parses the Hub's 64-character hex spelling.
    pub fn from_hex(text: &str) -> Result<Self, XetError> {
        let bad = || XetError::InvalidHash {
            text: text.chars().take(80).collect(),
        };
        if text.len() != 64 || !text.bytes().all(|c| c.is_ascii_hexdigit()) {
            return Err(bad());
        }
        let mut bytes = [0u8; 32];
        for i in 0..4 {
            let word = u64::from_str_radix(&text[i * 16..i * 16 + 16], 16).map_err(|_| bad())?;
            bytes[i * 8..i * 8 + 8].copy_from_slice(&word.to_le_bytes());
        }
        Ok(Self(bytes))
    }

    /// The Hub's hex spelling (see the type's docs for the word order).
    pub fn to_hex(&self) -> String {
        format!(
            "{:016x}{:016x}{:016x}{:016x}",
            self.word(0),
            self.word(1),
            self.word(2),
            self.word(3)
        )
    }

    /// Keyed BLAKE3 of this hash under `key`: how a file hash is salted.
    fn keyed_by(&self, key: &[u8; 32]) -> Self {
        Self(*blake3::keyed_hash(key, &self.0).as_bytes())
    }
}

impl fmt::Display for XetHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for XetHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "XetHash({})", self.to_hex())
    }
}

impl FromStr for XetHash {
    type Err = XetError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::from_hex(s)
    }
}

impl Serialize for XetHash {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.to_hex())
    }
}

impl<'de> Deserialize<'de> for XetHash {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = std::borrow::Cow::<str>::deserialize(deserializer)?;
        Self::from_hex(&text).map_err(serde::de::Error::custom)
    }
}

/// Whether `s` is a Xet hash as the Hub writes it: 64 hex digits.
pub fn is_xet_hash(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// The hash of one chunk's (uncompressed) bytes.
pub fn chunk_hash(data: &[u8]) -> XetHash {
    XetHash(*blake3::keyed_hash(&DATA_KEY, data).as_bytes())
}

/// The hash of a xorb from its chunks' `(hash, uncompressed length)` in order.
///
/// Xet's aggregation tree: runs of 2 to 9 nodes are merged into a parent, a run closing after
/// (from its third node on) a node whose last word is 0 mod 4, or at 9 nodes, or at the end;
/// the parent is the keyed BLAKE3 of lines `"{hex} : {length}\n"` and carries the summed
/// length; levels repeat until one node is left. No chunks give [`XetHash::ZERO`].
pub fn xorb_hash(chunks: &[(XetHash, u64)]) -> XetHash {
    if chunks.is_empty() {
        return XetHash::ZERO;
    }
    let mut level = chunks.to_vec();
    while level.len() > 1 {
        let mut next = Vec::with_capacity(level.len() / 2 + 1);
        let mut start = 0;
        while start < level.len() {
            let end = start + next_merge_cut(&level[start..]);
            next.push(merge(&level[start..end]));
            start = end;
        }
        level = next;
    }
    level[0].0
}

/// The hash of a file from its chunks' `(hash, uncompressed length)` in order: the xorb
/// aggregation, then keyed by a salt, which is all zeros on the Hub. An empty file is
/// [`XetHash::ZERO`].
pub fn file_hash(chunks: &[(XetHash, u64)]) -> XetHash {
    file_hash_with_salt(chunks, &[0; 32])
}

/// [`file_hash`] with an explicit salt (the bytes of a hash, as xet-core's reference vectors
/// give it).
pub fn file_hash_with_salt(chunks: &[(XetHash, u64)], salt: &[u8; 32]) -> XetHash {
    if chunks.is_empty() {
        return XetHash::ZERO;
    }
    xorb_hash(chunks).keyed_by(salt)
}

/// How many nodes from the front of `nodes` form the next parent.
fn next_merge_cut(nodes: &[(XetHash, u64)]) -> usize {
    if nodes.len() <= 2 {
        return nodes.len();
    }
    let end = MAX_GROUP.min(nodes.len());
    (2..end)
        .find(|&i| nodes[i].0.word(3).is_multiple_of(MEAN_BRANCHING_FACTOR))
        .map_or(end, |i| i + 1)
}

fn merge(group: &[(XetHash, u64)]) -> (XetHash, u64) {
    let mut text = String::with_capacity(group.len() * 88);
    let mut total = 0u64;
    for (hash, len) in group {
        text.push_str(&hash.to_hex());
        text.push_str(" : ");
        text.push_str(&len.to_string());
        text.push('\n');
        total += len;
    }
    (
        XetHash(*blake3::keyed_hash(&INTERNAL_NODE_KEY, text.as_bytes()).as_bytes()),
        total,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_is_little_endian_words_printed_big_endian() {
        let mut bytes = [0u8; 32];
        for (i, b) in bytes.iter_mut().enumerate() {
            *b = i as u8;
        }
        let hash = XetHash::from_bytes(bytes);
        assert_eq!(
            hash.to_hex(),
            "07060504030201000f0e0d0c0b0a090817161514131211101f1e1d1c1b1a1918"
        );
        assert_eq!(XetHash::from_hex(&hash.to_hex()).unwrap(), hash);
    }

    #[test]
    fn from_hex_refuses_wrong_length_and_non_hex() {
        assert!(XetHash::from_hex("abc").is_err());
        assert!(XetHash::from_hex(&"g".repeat(64)).is_err());
        assert!(XetHash::from_hex(&"+1".repeat(32)).is_err());
    }

    #[test]
    fn single_chunk_xorb_hash_is_the_chunk_hash() {
        let h = chunk_hash(b"hello");
        assert_eq!(xorb_hash(&[(h, 5)]), h);
    }
}
