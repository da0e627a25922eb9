//! The three ways a chunk's bytes are stored in a xorb.

use std::io::{Read, Write};

use crate::error::XetError;

/// How a chunk's bytes are stored (the fifth byte of its header).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum CompressionScheme {
    /// The bytes as they are.
    None,
    /// An LZ4 frame.
    Lz4,
    /// Byte-grouping by 4 (all first bytes of each 4-byte group, then all second bytes, …),
    /// then an LZ4 frame: it compresses float tensors much better than LZ4 alone.
    ByteGrouping4Lz4,
}

impl CompressionScheme {
    /// The scheme's byte in a chunk header.
    pub const fn code(self) -> u8 {
        match self {
            Self::None => 0,
            Self::Lz4 => 1,
            Self::ByteGrouping4Lz4 => 2,
        }
    }

    /// The scheme a header byte names.
    pub fn from_code(code: u8) -> Result<Self, XetError> {
        match code {
            0 => Ok(Self::None),
            1 => Ok(Self::Lz4),
            2 => Ok(Self::ByteGrouping4Lz4),
            other => Err(XetError::UnknownCompression { code: other }),
        }
    }

    /// Encodes `data` with this scheme.
    pub(crate) fn compress(self, data: &[u8]) -> Vec<u8> {
        match self {
            Self::None => data.to_vec(),
            Self::Lz4 => lz4_frame(data),
            Self::ByteGrouping4Lz4 => lz4_frame(&bg4_split(data)),
        }
    }

    /// Decodes `encoded` into `out`, which must end up exactly `expected_len` bytes longer.
    ///
    /// Never writes more than `expected_len + 1` bytes (the one extra proves a lie), so a
    /// hostile frame cannot make it allocate more than the header promised.
    pub(crate) fn decompress_into(
        self,
        encoded: &[u8],
        expected_len: usize,
        out: &mut Vec<u8>,
    ) -> Result<(), XetError> {
        let start = out.len();
        match self {
            Self::None => out.extend_from_slice(encoded),
            Self::Lz4 => lz4_unframe(encoded, expected_len, out)?,
            Self::ByteGrouping4Lz4 => {
                let mut grouped = Vec::with_capacity(expected_len);
                lz4_unframe(encoded, expected_len, &mut grouped)?;
                bg4_regroup_into(&grouped, out);
            }
        }
        let produced = out.len() - start;
        if produced != expected_len {
            out.truncate(start);
            return Err(XetError::LengthMismatch {
                declared: expected_len,
                actual: produced,
            });
        }
        Ok(())
    }
}

fn lz4_frame(data: &[u8]) -> Vec<u8> {
    let mut encoder = lz4_flex::frame::FrameEncoder::new(Vec::with_capacity(data.len() / 2));
    // Writing to a Vec cannot fail.
    encoder.write_all(data).expect("LZ4 into memory");
    encoder.finish().expect("LZ4 into memory")
}

/// The LZ4 frame magic (little-endian), and the legacy format's, which has 8 MiB blocks.
const LZ4_FRAME_MAGIC: u32 = 0x184D_2204;
const LZ4_LEGACY_MAGIC: u32 = 0x184C_2102;
/// Largest block-size code accepted: 5 = 256 KiB, the most a 128 KiB chunk can be given.
const MAX_LZ4_BLOCK_SIZE_CODE: u8 = 5;

fn lz4_unframe(encoded: &[u8], expected_len: usize, out: &mut Vec<u8>) -> Result<(), XetError> {
    // The decoder allocates a whole block up front, so a frame announcing 4 or 8 MiB blocks
    // would cost that much memory for a chunk of at most 128 KiB: refuse it before decoding.
    if let Some(magic) = encoded.first_chunk::<4>().map(|m| u32::from_le_bytes(*m)) {
        if magic == LZ4_LEGACY_MAGIC {
            return Err(XetError::BadChunkHeader {
                reason: "legacy LZ4 frame (8 MiB blocks), which Xet never writes".into(),
            });
        }
        if let Some(&bd) = encoded.get(5).filter(|_| magic == LZ4_FRAME_MAGIC) {
            let code = (bd >> 4) & 0x7;
            if code > MAX_LZ4_BLOCK_SIZE_CODE {
                return Err(XetError::BadChunkHeader {
                    reason: format!(
                        "LZ4 frame with block size code {code} (over 256 KiB) for a chunk of at most 128 KiB"
                    ),
                });
            }
        }
    }
    let decoder = lz4_flex::frame::FrameDecoder::new(encoded);
    decoder
        .take(expected_len as u64 + 1)
        .read_to_end(out)
        .map_err(|source| XetError::Decompress { source })?;
    Ok(())
}

/// Splits `data` into four planes: bytes 0, 4, 8, …, then 1, 5, 9, …, and so on; the first
/// `len % 4` planes are one byte longer.
pub(crate) fn bg4_split(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len());
    for plane in 0..4 {
        out.extend(data.iter().skip(plane).step_by(4));
    }
    out
}

/// The inverse of [`bg4_split`], appended to `out`.
pub(crate) fn bg4_regroup_into(grouped: &[u8], out: &mut Vec<u8>) {
    let n = grouped.len();
    let (split, rem) = (n / 4, n % 4);
    let plane_len = |p: usize| split + usize::from(p < rem);
    let mut starts = [0usize; 4];
    for p in 1..4 {
        starts[p] = starts[p - 1] + plane_len(p - 1);
    }
    out.reserve(n);
    for i in 0..n {
        out.push(grouped[starts[i % 4] + i / 4]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bg4_round_trips_every_remainder() {
        for len in 0..19 {
            let data: Vec<u8> = (0..len as u8).collect();
            let split = bg4_split(&data);
            let mut back = Vec::new();
            bg4_regroup_into(&split, &mut back);
            assert_eq!(back, data, "length {len}");
        }
        assert_eq!(bg4_split(&[0, 1, 2, 3, 4, 5]), vec![0, 4, 1, 5, 2, 3]);
    }

    #[test]
    fn every_scheme_round_trips() {
        let data: Vec<u8> = (0..50_000u32)
            .flat_map(|i| (i as f32).to_le_bytes())
            .collect();
        for scheme in [
            CompressionScheme::None,
            CompressionScheme::Lz4,
            CompressionScheme::ByteGrouping4Lz4,
        ] {
            let encoded = scheme.compress(&data);
            let mut out = Vec::new();
            scheme
                .decompress_into(&encoded, data.len(), &mut out)
                .unwrap();
            assert_eq!(out, data, "{scheme:?}");
        }
    }

    #[test]
    fn frames_announcing_huge_blocks_are_refused_before_allocating() {
        let mut encoded = CompressionScheme::Lz4.compress(&[1u8; 1000]);
        encoded[5] = (encoded[5] & 0x8f) | (7 << 4);
        let err = CompressionScheme::Lz4
            .decompress_into(&encoded, 1000, &mut Vec::new())
            .unwrap_err();
        assert!(err.to_string().contains("block size code 7"), "{err}");
        let legacy = [0x02, 0x21, 0x4c, 0x18, 0, 0, 0, 0];
        assert!(
            CompressionScheme::Lz4
                .decompress_into(&legacy, 10, &mut Vec::new())
                .is_err()
        );
    }

    #[test]
    fn a_frame_longer_than_declared_is_refused_without_growing_past_it() {
        let data = vec![7u8; 100_000];
        let encoded = CompressionScheme::Lz4.compress(&data);
        let mut out = Vec::new();
        let err = CompressionScheme::Lz4
            .decompress_into(&encoded, 10, &mut out)
            .unwrap_err();
        assert!(
            matches!(
                err,
                XetError::LengthMismatch {
                    declared: 10,
                    actual: 11
                }
            ),
            "{err}"
        );
        assert!(out.is_empty());
    }
}
