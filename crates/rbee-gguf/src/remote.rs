//! Reading a header over HTTP ranges: a small first window, then windows sized by the
//! parser's guess of what is left, so a header takes a few requests and little more than its
//! own bytes.

use async_trait::async_trait;
use bytes::Bytes;
use rbee_transfer::RangeReader;
use tokio_util::sync::CancellationToken;

use crate::error::GgufError;
use crate::reader::{Gguf, ReadOptions, Stop, read_partial};
use crate::source::Window;

/// The first window: enough for a header without a vocabulary, small enough not to waste
/// much on a file whose header is large.
pub const FIRST_WINDOW: u64 = 256 << 10;
/// The smallest later window (a round trip costs more than this many bytes).
const MIN_WINDOW: u64 = 64 << 10;
/// Windows after which reading gives up (a real header needs three or four).
const MAX_ROUNDS: u32 = 32;

/// Byte ranges of one remote file.
#[async_trait]
pub trait RangeSource: Send + Sync {
    /// The file's size, once known.
    fn size(&self) -> Option<u64>;
    /// `len` bytes from `start`, fewer at the end of the file.
    async fn read(
        &self,
        start: u64,
        len: u64,
        cancel: &CancellationToken,
    ) -> Result<Bytes, GgufError>;
}

#[async_trait]
impl RangeSource for RangeReader {
    fn size(&self) -> Option<u64> {
        RangeReader::size(self)
    }

    async fn read(
        &self,
        start: u64,
        len: u64,
        cancel: &CancellationToken,
    ) -> Result<Bytes, GgufError> {
        Ok(RangeReader::read(self, start, len, cancel).await?)
    }
}

/// A header read from a remote file, with the bytes that were fetched for it.
#[derive(Debug, Clone)]
pub struct RemoteGguf {
    /// The header.
    pub gguf: Gguf,
    /// The fetched bytes (to read items of skipped arrays again without a request).
    pub window: Window,
    /// Range reads made.
    pub reads: u32,
}

/// Reads the GGUF header of `source`, growing the window as the parser needs it.
pub async fn read_remote(
    source: &dyn RangeSource,
    options: &ReadOptions,
    first_window: u64,
    cancel: &CancellationToken,
) -> Result<RemoteGguf, GgufError> {
    let first = source.read(0, first_window.max(1), cancel).await?;
    let size = source.size().ok_or_else(|| {
        GgufError::Remote(rbee_artifact::Error::Protocol {
            message: "the server did not say how large the file is (no Content-Range total)".into(),
        })
    })?;
    let mut window = Window::new(size);
    window.insert(0, first);
    let mut reads = 1;
    loop {
        match read_partial(&mut window, options) {
            Ok(gguf) => {
                return Ok(RemoteGguf {
                    gguf,
                    window,
                    reads,
                });
            }
            Err(Stop::Failed(e)) => return Err(e),
            Err(Stop::Need { offset, estimate }) => {
                if reads >= MAX_ROUNDS {
                    return Err(GgufError::TooLarge {
                        what: format!("reading the header in {MAX_ROUNDS} windows"),
                        size: offset,
                        limit: window.bytes_held(),
                    });
                }
                let rest_of_file = size.saturating_sub(offset);
                let mut len = estimate.max(MIN_WINDOW);
                // Leaving less than a small window unread would only cost another request.
                if rest_of_file.saturating_sub(len) < MIN_WINDOW.max(len / 4) {
                    len = rest_of_file;
                }
                let len = len
                    .min(rest_of_file)
                    .min(options.max_header_bytes.saturating_sub(offset).max(1));
                tracing::debug!(offset, len, "reading more of the header");
                let bytes = source.read(offset, len, cancel).await?;
                reads += 1;
                if bytes.is_empty() {
                    return Err(GgufError::Truncated {
                        what: "the header".into(),
                        offset,
                        needed: len,
                        file_len: size,
                    });
                }
                window.insert(offset, bytes);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;
    use crate::write::{GgufWriter, string_array};
    use crate::{GgmlType, Value};

    /// An in-memory remote that counts reads.
    struct Memory {
        bytes: Vec<u8>,
        reads: Mutex<Vec<(u64, u64)>>,
    }

    #[async_trait]
    impl RangeSource for Memory {
        fn size(&self) -> Option<u64> {
            Some(self.bytes.len() as u64)
        }
        async fn read(
            &self,
            start: u64,
            len: u64,
            _: &CancellationToken,
        ) -> Result<Bytes, GgufError> {
            self.reads.lock().unwrap().push((start, len));
            let s = (start as usize).min(self.bytes.len());
            let e = (start.saturating_add(len) as usize).min(self.bytes.len());
            Ok(Bytes::copy_from_slice(&self.bytes[s..e]))
        }
    }

    /// A file with a BPE vocabulary of `n` tokens and merges; returns it and its header size.
    fn vocab_file(n: usize) -> (Vec<u8>, u64) {
        let tokens: Vec<String> = (0..n).map(|i| format!("tok{i:06}")).collect();
        let merges: Vec<String> = (0..n).map(|i| format!("t {i:05}")).collect();
        let mut w = GgufWriter::new()
            .kv("general.architecture", Value::String("llama".into()))
            .kv("tokenizer.ggml.model", Value::String("gpt2".into()))
            .kv("tokenizer.ggml.tokens", string_array(tokens))
            .kv(
                "tokenizer.ggml.token_type",
                crate::write::array(crate::Items::I32(vec![1; n])),
            )
            .kv("tokenizer.ggml.merges", string_array(merges))
            .kv("tokenizer.ggml.bos_token_id", Value::U32(1));
        for i in 0..200 {
            w = w.tensor(format!("blk.{i}.attn_q.weight"), &[64, 64], GgmlType::F16);
        }
        (w.to_bytes(), w.header_bytes().len() as u64)
    }

    #[tokio::test]
    async fn a_large_vocabulary_takes_few_reads_and_few_extra_bytes() {
        let (bytes, header) = vocab_file(150_000);
        let mem = Memory {
            bytes,
            reads: Mutex::new(Vec::new()),
        };
        let got = read_remote(
            &mem,
            &ReadOptions::default(),
            FIRST_WINDOW,
            &CancellationToken::new(),
        )
        .await
        .unwrap();
        assert_eq!(got.gguf.tensors.len(), 200);
        let reads = mem.reads.lock().unwrap().clone();
        let fetched: u64 = reads
            .iter()
            .map(|r| r.1.min(header - r.0.min(header)))
            .sum();
        assert!(reads.len() <= 4, "{reads:?}");
        assert!(
            fetched <= header + (1 << 20),
            "{fetched} for a {header}-byte header: {reads:?}"
        );
    }

    /// Numeric arrays after the vocabulary (scores, token types) count as read once started:
    /// guessing them again would fetch about 8 bytes per token too many.
    #[tokio::test]
    async fn arrays_already_read_are_not_guessed_again() {
        let n = 262_144;
        let tokens: Vec<String> = (0..n).map(|i| format!("▁tok{i}")).collect();
        let merges: Vec<String> = (0..2 * n).map(|i| format!("▁t {i:07}")).collect();
        let mut w = GgufWriter::new()
            .kv("general.architecture", Value::String("gemma4".into()))
            .kv("tokenizer.ggml.model", Value::String("gemma4".into()))
            .kv("tokenizer.ggml.tokens", string_array(tokens))
            .kv(
                "tokenizer.ggml.scores",
                crate::write::array(crate::Items::F32(vec![0.0; n])),
            )
            .kv(
                "tokenizer.ggml.token_type",
                crate::write::array(crate::Items::I32(vec![1; n])),
            )
            .kv("tokenizer.ggml.merges", string_array(merges));
        for i in 0..300 {
            w = w.tensor(
                format!("blk.{i}.ffn_up.weight"),
                &[256, 1024],
                GgmlType::Q8_0,
            );
        }
        let header = w.header_bytes().len() as u64;
        let mem = Memory {
            bytes: w.to_bytes(),
            reads: Mutex::new(Vec::new()),
        };
        read_remote(
            &mem,
            &ReadOptions::default(),
            FIRST_WINDOW,
            &CancellationToken::new(),
        )
        .await
        .unwrap();
        let reads = mem.reads.lock().unwrap().clone();
        let end = reads.iter().map(|(s, l)| s + l).max().unwrap();
        assert!(reads.len() <= 3, "{reads:?}");
        assert!(
            end <= header + (512 << 10),
            "read to {end} for a {header}-byte header: {reads:?}"
        );
    }

    #[tokio::test]
    async fn a_small_header_takes_one_read() {
        let bytes = GgufWriter::new()
            .kv("general.architecture", Value::String("llama".into()))
            .tensor("output.weight", &[32, 8], GgmlType::F32)
            .to_bytes();
        let mem = Memory {
            bytes,
            reads: Mutex::new(Vec::new()),
        };
        let got = read_remote(
            &mem,
            &ReadOptions::default(),
            FIRST_WINDOW,
            &CancellationToken::new(),
        )
        .await
        .unwrap();
        assert_eq!(got.reads, 1);
        assert_eq!(got.gguf.parameter_count(), 256);
    }
}
