//! Content-defined chunking, boundary for boundary as xet-core cuts files.

/// The chunk size the cutter aims for on average.
pub const TARGET_CHUNK_SIZE: usize = 64 * 1024;
/// No boundary is placed before this many bytes (except at the end of the data).
pub const MIN_CHUNK_SIZE: usize = TARGET_CHUNK_SIZE / 8;
/// A chunk is cut here at the latest; no Xet chunk is larger.
pub const MAX_CHUNK_SIZE: usize = TARGET_CHUNK_SIZE * 2;

/// Bytes that influence the gear hash at any point: a `u64` shifted once per byte.
const HASH_WINDOW: usize = 64;
/// `TARGET_CHUNK_SIZE - 1` shifted to the top bits, which depend on the most bytes.
const BOUNDARY_MASK: u64 =
    ((TARGET_CHUNK_SIZE - 1) as u64) << (TARGET_CHUNK_SIZE - 1).leading_zeros();

/// A streaming chunker: feed it a file's bytes in pieces of any size and it reports where
/// chunks end. The boundaries do not depend on how the stream is split into pieces.
///
/// The rule (xet-core's `Chunker`): a gear hash runs over the bytes; after skipping to
/// `MIN_CHUNK_SIZE - 65` bytes into a chunk, the first position where `hash & mask == 0`
/// and the chunk holds at least [`MIN_CHUNK_SIZE`] bytes ends the chunk; a chunk reaching
/// [`MAX_CHUNK_SIZE`] ends there; the hash restarts at each boundary; whatever is left at
/// the end is the last chunk.
///
/// ```
/// use rbee_xet::{Chunker, chunk_boundaries};
///
/// let data: Vec<u8> = (0..1_000_000u32).map(|i| (i.wrapping_mul(2654435761) >> 13) as u8).collect();
/// let mut chunker = Chunker::new();
/// let mut ends = Vec::new();
/// let mut offset = 0;
/// for piece in data.chunks(10_000) {
///     let mut pos = 0;
///     while let Some(len) = chunker.next_boundary(&piece[pos..]) {
///         pos += len;
///         ends.push(offset + pos);
///     }
///     offset += piece.len();
/// }
/// if chunker.finish().is_some() {
///     ends.push(offset);
/// }
/// assert_eq!(ends, chunk_boundaries(&data));
/// ```
#[derive(Debug, Clone)]
pub struct Chunker {
    hasher: gearhash::Hasher<'static>,
    /// Bytes of the current chunk seen in earlier calls.
    pending: usize,
}

impl Default for Chunker {
    fn default() -> Self {
        Self::new()
    }
}

impl Chunker {
    /// A chunker at the start of a file.
    pub fn new() -> Self {
        Self {
            hasher: gearhash::Hasher::default(),
            pending: 0,
        }
    }

    /// Looks for the end of the current chunk in `data`, the next bytes of the stream.
    ///
    /// `Some(n)`: the chunk ends after `data[..n]`; call again with `&data[n..]`.
    /// `None`: all of `data` belongs to the current chunk, which goes on.
    pub fn next_boundary(&mut self, data: &[u8]) -> Option<usize> {
        if data.is_empty() {
            return None;
        }
        let mut index = 0;
        // Bytes before the last HASH_WINDOW ahead of the minimum cannot matter: skip them.
        if self.pending + HASH_WINDOW < MIN_CHUNK_SIZE {
            index = (MIN_CHUNK_SIZE - self.pending - HASH_WINDOW - 1).min(data.len());
        }
        let read_end = data.len().min(index + MAX_CHUNK_SIZE - self.pending);
        let mut cut = false;
        loop {
            match self
                .hasher
                .next_match(&data[index..read_end], BOUNDARY_MASK)
            {
                Some(found) => {
                    index += found;
                    // A match before the minimum is the previous state talking: keep going.
                    if index + self.pending < MIN_CHUNK_SIZE {
                        continue;
                    }
                    cut = true;
                }
                None => index = read_end,
            }
            break;
        }
        if index + self.pending >= MAX_CHUNK_SIZE {
            index = MAX_CHUNK_SIZE - self.pending;
            cut = true;
        }
        if cut {
            self.hasher.set_hash(0);
            self.pending = 0;
            Some(index)
        } else {
            self.pending += index;
            None
        }
    }

    /// Ends the stream: the length of the last chunk, if any bytes are pending.
    pub fn finish(&mut self) -> Option<usize> {
        let last = std::mem::take(&mut self.pending);
        self.hasher.set_hash(0);
        (last > 0).then_some(last)
    }
}

/// The end offsets of the chunks of `data` (the last one is `data.len()`; none when empty).
pub fn chunk_boundaries(data: &[u8]) -> Vec<usize> {
    let mut chunker = Chunker::new();
    let mut ends = Vec::with_capacity(data.len() / TARGET_CHUNK_SIZE + 1);
    let mut pos = 0;
    while let Some(len) = chunker.next_boundary(&data[pos..]) {
        pos += len;
        ends.push(pos);
    }
    if chunker.finish().is_some() {
        ends.push(data.len());
    }
    ends
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pseudo_random(len: usize, seed: u64) -> Vec<u8> {
        let mut state = seed.wrapping_mul(6364136223846793005).wrapping_add(1);
        (0..len)
            .map(|_| {
                state = state
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                (state >> 33) as u8
            })
            .collect()
    }

    #[test]
    fn chunks_respect_min_and_max_and_cover_the_data() {
        let data = pseudo_random(3 << 20, 7);
        let ends = chunk_boundaries(&data);
        let mut start = 0;
        for (i, &end) in ends.iter().enumerate() {
            let len = end - start;
            assert!(len <= MAX_CHUNK_SIZE, "chunk {i} is {len} bytes");
            if i + 1 < ends.len() {
                assert!(len >= MIN_CHUNK_SIZE, "chunk {i} is {len} bytes");
            }
            start = end;
        }
        assert_eq!(start, data.len());
        // Random data averages near the target, not at the cap.
        assert!(ends.len() > 20 && ends.len() < 100, "{} chunks", ends.len());
    }

    #[test]
    fn constant_data_is_cut_at_the_maximum() {
        let data = vec![0u8; 3 * MAX_CHUNK_SIZE + 5];
        assert_eq!(
            chunk_boundaries(&data),
            vec![
                MAX_CHUNK_SIZE,
                2 * MAX_CHUNK_SIZE,
                3 * MAX_CHUNK_SIZE,
                data.len()
            ]
        );
    }

    #[test]
    fn an_edit_moves_only_nearby_boundaries() {
        let data = pseudo_random(2 << 20, 3);
        let mut edited = data.clone();
        edited[1 << 20] ^= 0xff;
        let a = chunk_boundaries(&data);
        let b = chunk_boundaries(&edited);
        let same = a.iter().filter(|end| b.contains(end)).count();
        assert!(same + 3 >= a.len(), "{same} of {} boundaries kept", a.len());
    }

    #[test]
    fn empty_data_has_no_chunks() {
        assert!(chunk_boundaries(&[]).is_empty());
        assert_eq!(Chunker::new().finish(), None);
    }
}
