//! How much more of the header a windowed source must fetch: a guess from where the reader
//! is and what it has seen (vocabulary size, tokenizer, tensors read so far).

/// Where the reader is, for guessing how much more a windowed source must fetch.
#[derive(Debug, Default, Clone)]
pub(super) struct Progress {
    pub(super) kvs_left: u64,
    pub(super) tensors_left: u64,
    pub(super) tensors_done: u64,
    pub(super) tensors_start: u64,
    /// The top-level array being read: first item's offset, items read, items left.
    pub(super) array: Option<(u64, u64, u64)>,
    /// Tokens in the vocabulary, once its array has started.
    pub(super) vocab: Option<u64>,
    /// `tokenizer.ggml.model`.
    pub(super) tokenizer: Option<String>,
    /// Keys of the top-level arrays started so far.
    pub(super) seen: Vec<String>,
}

/// Bytes one metadata entry takes on average, for the guess.
pub(super) const GUESS_ENTRY_BYTES: u64 = 96;
/// Bytes one tensor info takes on average (a 30-character name, 2 dimensions).
pub(super) const GUESS_TENSOR_BYTES: u64 = 80;
/// Bytes of BPE merges per vocabulary token (measured on llama.cpp's vocabulary files: 20 for
/// command-r, 35 for gemma-4, 40 for Llama 3; guessing low costs a request, high costs bytes).
pub(super) const GUESS_MERGE_BYTES: u64 = 20;

impl Progress {
    /// A guess of the bytes from `offset` to the end of the header.
    pub(super) fn estimate(&self, offset: u64) -> u64 {
        let mut rest = 0u64;
        if let Some((start, done, left)) = self.array {
            // The items left at the average size of those read (16 bytes before any).
            let read = u128::from(offset.saturating_sub(start));
            let guess = u128::from(left)
                .saturating_mul(read)
                .checked_div(u128::from(done))
                .unwrap_or(u128::from(left) * 16);
            rest = rest.saturating_add(u64::try_from(guess).unwrap_or(u64::MAX));
        }
        rest = rest.saturating_add(self.kvs_left.saturating_mul(GUESS_ENTRY_BYTES));
        // The arrays that follow a vocabulary in llama.cpp's files: token types always,
        // scores for SentencePiece-like tokenizers, merges for BPE ones.
        if let Some(vocab) = self.vocab {
            let model = self.tokenizer.as_deref().unwrap_or("");
            let seen = |k: &str| self.seen.iter().any(|s| s == k);
            if !seen("tokenizer.ggml.token_type") {
                rest = rest.saturating_add(vocab.saturating_mul(4));
            }
            if model != "gpt2" && !seen("tokenizer.ggml.scores") {
                rest = rest.saturating_add(vocab.saturating_mul(4));
            }
            if !matches!(model, "llama" | "bert" | "t5" | "rwkv") && !seen("tokenizer.ggml.merges")
            {
                rest = rest.saturating_add(vocab.saturating_mul(GUESS_MERGE_BYTES));
            }
        }
        let per_tensor = offset
            .saturating_sub(self.tensors_start)
            .checked_div(self.tensors_done)
            .map_or(GUESS_TENSOR_BYTES, |avg| avg + 1);
        rest = rest.saturating_add(self.tensors_left.saturating_mul(per_tensor));
        // A little over, so a good guess needs no second round trip.
        rest.saturating_add(rest / 16).saturating_add(16 << 10)
    }
}
