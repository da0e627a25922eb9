//! Decoding arbitrary and damaged bytes: errors, never panics, never output past the limits.

use proptest::prelude::*;
use rbee_xet::{
    ChunkHeader, CompressionScheme, MAX_CHUNK_SIZE, XorbBuilder, chunk_boundaries, decode_chunk,
    decode_chunks,
};

fn scheme() -> impl Strategy<Value = CompressionScheme> {
    prop_oneof![
        Just(CompressionScheme::None),
        Just(CompressionScheme::Lz4),
        Just(CompressionScheme::ByteGrouping4Lz4),
    ]
}

/// Data that compresses a bit (runs) and a bit not (noise), like model files.
fn data(max: usize) -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec((any::<u8>(), 1usize..40), 0..max / 20).prop_map(move |runs| {
        let mut out = Vec::new();
        for (byte, len) in runs {
            out.extend(std::iter::repeat_n(byte, len % 7 + 1));
            out.push(byte.wrapping_mul(31));
        }
        out.truncate(max);
        out
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic_nor_overflow(bytes in prop::collection::vec(any::<u8>(), 0..2048), count in 0usize..5) {
        let mut out = Vec::new();
        if let Ok(used) = decode_chunk(&bytes, &mut out) {
            prop_assert!(used <= bytes.len());
            prop_assert!(out.len() <= MAX_CHUNK_SIZE);
        }
        if let Ok(chunks) = decode_chunks(&bytes, count) {
            prop_assert_eq!(chunks.len(), count);
        }
    }

    #[test]
    fn valid_headers_with_garbage_bodies_are_refused_or_exact(
        scheme in scheme(), declared in 0u32..=MAX_CHUNK_SIZE as u32,
        body in prop::collection::vec(any::<u8>(), 0..512),
    ) {
        let header = ChunkHeader { compressed_len: body.len() as u32, scheme, uncompressed_len: declared };
        let mut bytes = header.to_bytes().to_vec();
        bytes.extend_from_slice(&body);
        let mut out = Vec::new();
        match decode_chunk(&bytes, &mut out) {
            Ok(used) => {
                prop_assert_eq!(used, bytes.len());
                prop_assert_eq!(out.len(), declared as usize);
            }
            Err(_) => prop_assert!(out.is_empty()),
        }
    }

    #[test]
    fn xorbs_round_trip_and_any_flipped_byte_is_caught_or_harmless(
        content in data(300_000), scheme in scheme(), flip in any::<prop::sample::Index>(),
    ) {
        let mut builder = XorbBuilder::new(scheme);
        let mut start = 0;
        for end in chunk_boundaries(&content) {
            builder.push(&content[start..end]).unwrap();
            start = end;
        }
        let xorb = builder.finish();
        let decoded = decode_chunks(&xorb.bytes, xorb.chunks.len()).unwrap();
        prop_assert_eq!(decoded.concat(), content.clone());

        if !xorb.bytes.is_empty() {
            let mut damaged = xorb.bytes.clone();
            let at = flip.index(damaged.len());
            damaged[at] ^= 0x5a;
            // A flipped byte either fails to decode or decodes to other bytes, which the
            // chunk hashes then catch; it never decodes to chunks of other lengths unnoticed.
            if let Ok(chunks) = decode_chunks(&damaged, xorb.chunks.len()) {
                for (chunk, meta) in chunks.iter().zip(&xorb.chunks) {
                    prop_assert_eq!(chunk.len(), meta.len as usize);
                }
                let same = chunks.iter().zip(&xorb.chunks).all(|(c, m)| rbee_xet::chunk_hash(c) == m.hash);
                prop_assert!(!same, "a flipped byte went unnoticed");
            }
        }
    }
}
