//! The GGUF header reader: magic, version, metadata, tensor infos, alignment.
//!
//! Every count and length is checked against the bytes the file can still hold before anything
//! is allocated or skipped, and against [`ReadOptions::max_header_bytes`]; nothing here
//! panics on any input (the proptest suite feeds it random and mutated headers).

use std::collections::HashSet;
use std::path::Path;

use crate::error::GgufError;
use crate::source::{FileSource, Source, SourceError};
use crate::types::GgmlType;
use crate::value::{Array, Items, Metadata, Value, ValueType};

/// The bytes `GGUF` at the start of every file.
pub const MAGIC: [u8; 4] = *b"GGUF";

/// Alignment of the tensor data when `general.alignment` is absent.
pub const DEFAULT_ALIGNMENT: u64 = 32;

/// Dimensions a tensor may have (ggml's `GGML_MAX_DIMS`).
pub const MAX_DIMS: u32 = 4;

/// Arrays nested deeper than this are refused (real files nest none).
const MAX_NESTING: u32 = 8;

/// Bytes read ahead from a source at once.
const READ_AHEAD: u64 = 256 << 10;

/// How much of a header to keep.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReadOptions {
    /// Arrays with more items than this keep only their type, length and offset (token lists,
    /// merges, scores); smaller ones keep their items. [`ReadOptions::full`] keeps all.
    pub keep_array_items: u64,
    /// The furthest byte a header may reach (metadata and tensor infos); beyond it the file is
    /// refused as damaged or hostile. Real headers are a few MiB, the largest vocabularies
    /// about 16 MiB.
    pub max_header_bytes: u64,
}

impl Default for ReadOptions {
    fn default() -> Self {
        ReadOptions {
            keep_array_items: 1024,
            max_header_bytes: 128 << 20,
        }
    }
}

impl ReadOptions {
    /// Keep every array item.
    pub fn full() -> Self {
        ReadOptions {
            keep_array_items: u64::MAX,
            ..ReadOptions::default()
        }
    }
}

/// One tensor's entry in the header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TensorInfo {
    /// Its name (`blk.0.attn_q.weight`).
    pub name: String,
    /// Its dimensions, innermost first (ggml's `ne`).
    pub dims: Vec<u64>,
    /// Its storage type.
    pub ggml_type: GgmlType,
    /// Where its data starts, relative to [`Gguf::data_offset`].
    pub offset: u64,
}

impl TensorInfo {
    /// Number of elements (checked not to overflow when read).
    pub fn elements(&self) -> u64 {
        self.dims.iter().product()
    }

    /// Bytes of its data, when the type is known.
    pub fn n_bytes(&self) -> Option<u64> {
        let row = self.ggml_type.row_bytes(*self.dims.first().unwrap_or(&1))?;
        self.dims
            .iter()
            .skip(1)
            .try_fold(row, |acc, &d| acc.checked_mul(d))
    }
}

/// A parsed GGUF header.
#[derive(Debug, Clone, PartialEq)]
pub struct Gguf {
    /// Format version (2 or 3).
    pub version: u32,
    /// Key → value, in file order.
    pub metadata: Metadata,
    /// Tensor infos, in file order.
    pub tensors: Vec<TensorInfo>,
    /// Alignment of the data section.
    pub alignment: u64,
    /// Where the header ends (after the last tensor info, before alignment padding).
    pub header_len: u64,
    /// Where tensor data starts (the header end, aligned).
    pub data_offset: u64,
    /// Size of the file.
    pub file_size: u64,
}

impl Gguf {
    /// Reads the header of the local file at `path`.
    pub fn read_file(path: &Path, options: &ReadOptions) -> Result<Gguf, GgufError> {
        let mut source = FileSource::open(path)?;
        Gguf::read(&mut source, options)
    }

    /// Reads a header from a complete source.
    pub fn read<S: Source + ?Sized>(
        source: &mut S,
        options: &ReadOptions,
    ) -> Result<Gguf, GgufError> {
        match read_partial(source, options) {
            Ok(g) => Ok(g),
            Err(Stop::Failed(e)) => Err(e),
            Err(Stop::Need { offset, .. }) => Err(GgufError::Io {
                context: format!("the source has no bytes at {offset}"),
                source: std::io::ErrorKind::UnexpectedEof.into(),
            }),
        }
    }

    /// Total parameters: the elements of every tensor.
    pub fn parameter_count(&self) -> u64 {
        self.tensors
            .iter()
            .fold(0u64, |acc, t| acc.saturating_add(t.elements()))
    }

    /// Bytes of tensor data, when every tensor's type is known.
    pub fn tensor_bytes(&self) -> Option<u64> {
        self.tensors
            .iter()
            .try_fold(0u64, |acc, t| acc.checked_add(t.n_bytes()?))
    }
}

/// Why a partial read stopped.
#[derive(Debug)]
pub(crate) enum Stop {
    Failed(GgufError),
    /// The source lacks the byte at `offset`; `estimate` is a guess of how many bytes from
    /// there the rest of the header needs.
    Need {
        offset: u64,
        estimate: u64,
    },
}

impl From<GgufError> for Stop {
    fn from(e: GgufError) -> Self {
        Stop::Failed(e)
    }
}

/// Reads a header, stopping with [`Stop::Need`] where a windowed source lacks bytes.
pub(crate) fn read_partial<S: Source + ?Sized>(
    source: &mut S,
    options: &ReadOptions,
) -> Result<Gguf, Stop> {
    let mut c = Cursor::new(source, options);
    let magic: [u8; 4] = c.array(&|| "the magic number".into())?;
    if magic != MAGIC {
        return Err(GgufError::NotGguf {
            found: String::from_utf8_lossy(&magic).escape_debug().to_string(),
        }
        .into());
    }
    let version = c.u32(&|| "the version".into())?;
    if !(2..=3).contains(&version) {
        if version.swap_bytes() == 2 || version.swap_bytes() == 3 {
            return Err(GgufError::invalid(
                4,
                "the file is big-endian GGUF; only little-endian files are supported",
            )
            .into());
        }
        return Err(GgufError::UnsupportedVersion { version }.into());
    }
    let tensor_count = c.u64(&|| "the tensor count".into())?;
    let kv_count = c.u64(&|| "the metadata count".into())?;
    // Each entry takes at least its length prefixes: refuse counts the file cannot hold.
    c.fits(kv_count, 8 + 4 + 1, &|| {
        format!("{kv_count} metadata entries")
    })?;
    c.fits(tensor_count, 8 + 4 + 8 + 4 + 8, &|| {
        format!("{tensor_count} tensor infos")
    })?;
    c.progress.tensors_left = tensor_count;

    let mut metadata = Metadata::default();
    for i in 0..kv_count {
        c.progress.kvs_left = kv_count - i;
        let at = c.pos;
        let key = c.string(&|| format!("the key of metadata entry {i}"))?;
        let value = c.value(&key)?;
        if let ("tokenizer.ggml.model", Value::String(m)) = (key.as_str(), &value) {
            c.progress.tokenizer = Some(m.clone());
        }
        if !metadata.insert(key.clone(), value) {
            return Err(GgufError::invalid(at, format!("the key `{key}` appears twice")).into());
        }
    }
    c.progress.kvs_left = 0;

    let alignment = match metadata.get("general.alignment") {
        None => DEFAULT_ALIGNMENT,
        Some(v) => match v.as_u64() {
            Some(a) if a.is_power_of_two() => a,
            _ => {
                return Err(GgufError::invalid(
                    0,
                    format!(
                        "general.alignment is {:?}; it must be a power of two",
                        v.to_json()
                    ),
                )
                .into());
            }
        },
    };

    let mut tensors = Vec::with_capacity(tensor_count.min(4096) as usize);
    let mut names = HashSet::new();
    let tensors_start = c.pos;
    for i in 0..tensor_count {
        c.progress.tensors_left = tensor_count - i;
        c.progress.tensors_done = i;
        c.progress.tensors_start = tensors_start;
        let at = c.pos;
        let name = c.string(&|| format!("the name of tensor {i}"))?;
        let n_dims = c.u32(&|| format!("the dimension count of tensor `{name}`"))?;
        if n_dims > MAX_DIMS {
            return Err(GgufError::invalid(
                at,
                format!("tensor `{name}` has {n_dims} dimensions; GGUF allows at most {MAX_DIMS}"),
            )
            .into());
        }
        let mut dims = Vec::with_capacity(n_dims as usize);
        let mut elements: u64 = 1;
        for d in 0..n_dims {
            let n = c.u64(&|| format!("dimension {d} of tensor `{name}`"))?;
            // ggml stores dimensions as signed 64-bit and checks the product.
            elements = match elements.checked_mul(n) {
                Some(e) if e <= i64::MAX as u64 => e,
                _ => {
                    return Err(GgufError::invalid(
                        at,
                        format!("tensor `{name}` has more elements than ggml can address"),
                    )
                    .into());
                }
            };
            dims.push(n);
        }
        let ggml_type = GgmlType(c.u32(&|| format!("the type of tensor `{name}`"))?);
        let offset = c.u64(&|| format!("the data offset of tensor `{name}`"))?;
        if !names.insert(name.clone()) {
            return Err(
                GgufError::invalid(at, format!("the tensor `{name}` appears twice")).into(),
            );
        }
        tensors.push(TensorInfo {
            name,
            dims,
            ggml_type,
            offset,
        });
    }
    let header_len = c.pos;
    let data_offset = align_up(c.pos, alignment)
        .ok_or_else(|| GgufError::invalid(c.pos, "the data section starts past 2^64"))?;
    let file_size = c.size;
    check_tensor_layout(&tensors, alignment, data_offset, file_size)?;
    Ok(Gguf {
        version,
        metadata,
        tensors,
        alignment,
        header_len,
        data_offset,
        file_size,
    })
}

/// What llama.cpp checks before it maps tensor data: known block layouts, aligned and
/// consecutive offsets, and data inside the file.
fn check_tensor_layout(
    tensors: &[TensorInfo],
    alignment: u64,
    data_offset: u64,
    file_size: u64,
) -> Result<(), GgufError> {
    // Offsets can be predicted only while every earlier tensor's size is known.
    let mut expected = Some(0u64);
    for t in tensors {
        if !t.offset.is_multiple_of(alignment) {
            return Err(GgufError::invalid(
                data_offset,
                format!(
                    "tensor `{}` starts at data offset {}, not a multiple of the alignment {alignment}",
                    t.name, t.offset
                ),
            ));
        }
        let n_bytes = match t.ggml_type.block_size() {
            Some(block) => {
                let ne0 = t.dims.first().copied().unwrap_or(1);
                if !ne0.is_multiple_of(block) {
                    return Err(GgufError::invalid(
                        data_offset,
                        format!(
                            "tensor `{}` has rows of {ne0} elements, not a multiple of the {} block size {block}",
                            t.name, t.ggml_type
                        ),
                    ));
                }
                t.n_bytes()
            }
            None => None,
        };
        if let Some(exp) = expected
            && t.offset != exp
        {
            return Err(GgufError::invalid(
                data_offset,
                format!(
                    "tensor `{}` starts at data offset {}, expected {exp} (tensors follow one another)",
                    t.name, t.offset
                ),
            ));
        }
        let Some(n_bytes) = n_bytes else {
            expected = None;
            continue;
        };
        let end = data_offset
            .checked_add(t.offset)
            .and_then(|s| s.checked_add(n_bytes));
        if end.is_none_or(|e| e > file_size) {
            return Err(GgufError::Truncated {
                what: format!("the data of tensor `{}`", t.name),
                offset: data_offset.saturating_add(t.offset),
                needed: n_bytes,
                file_len: file_size,
            });
        }
        expected = t
            .offset
            .checked_add(n_bytes)
            .and_then(|e| align_up(e, alignment));
    }
    Ok(())
}

fn align_up(n: u64, alignment: u64) -> Option<u64> {
    let rem = n % alignment;
    if rem == 0 {
        Some(n)
    } else {
        n.checked_add(alignment - rem)
    }
}

/// The texts of items `indices` of a string array kept only as a length (BOS and EOS tokens
/// from a skipped vocabulary), read again from `source`.
pub fn array_strings_at<S: Source + ?Sized>(
    source: &mut S,
    array: &Array,
    indices: &[u64],
) -> Result<Vec<(u64, String)>, GgufError> {
    let Some(&last) = indices.iter().filter(|&&i| i < array.len).max() else {
        return Ok(Vec::new());
    };
    if array.item_type != ValueType::String {
        return Ok(Vec::new());
    }
    if let Some(items) = array.strings() {
        return Ok(indices
            .iter()
            .filter_map(|&i| Some((i, items.get(usize::try_from(i).ok()?)?.clone())))
            .collect());
    }
    let options = ReadOptions {
        max_header_bytes: u64::MAX,
        ..ReadOptions::default()
    };
    let mut c = Cursor::new(source, &options);
    c.pos = array.offset;
    let mut out = Vec::new();
    for i in 0..=last {
        let len = c.u64(&|| format!("the length of item {i}"))?;
        if indices.contains(&i) {
            let bytes = c.bytes(len, &|| format!("item {i}"))?;
            out.push((i, String::from_utf8_lossy(bytes).into_owned()));
        } else {
            c.skip(len, &|| format!("item {i}"))?;
        }
    }
    Ok(out)
}

impl From<Stop> for GgufError {
    fn from(s: Stop) -> Self {
        match s {
            Stop::Failed(e) => e,
            Stop::Need { offset, .. } => GgufError::Io {
                context: format!("the source has no bytes at {offset}"),
                source: std::io::ErrorKind::UnexpectedEof.into(),
            },
        }
    }
}

/// Where the reader is, for guessing how much more a windowed source must fetch.
#[derive(Debug, Default, Clone)]
struct Progress {
    kvs_left: u64,
    tensors_left: u64,
    tensors_done: u64,
    tensors_start: u64,
    /// The top-level array being read: first item's offset, items read, items left.
    array: Option<(u64, u64, u64)>,
    /// Tokens in the vocabulary, once its array has started.
    vocab: Option<u64>,
    /// `tokenizer.ggml.model`.
    tokenizer: Option<String>,
    /// Keys of the top-level arrays started so far.
    seen: Vec<String>,
}

/// Bytes one metadata entry takes on average, for the guess.
const GUESS_ENTRY_BYTES: u64 = 96;
/// Bytes one tensor info takes on average (a 30-character name, 2 dimensions).
const GUESS_TENSOR_BYTES: u64 = 80;
/// Bytes of BPE merges per vocabulary token (measured on llama.cpp's vocabulary files: 20 for
/// command-r, 35 for gemma-4, 40 for Llama 3; guessing low costs a request, high costs bytes).
const GUESS_MERGE_BYTES: u64 = 20;

impl Progress {
    /// A guess of the bytes from `offset` to the end of the header.
    fn estimate(&self, offset: u64) -> u64 {
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

struct Cursor<'a, S: ?Sized> {
    source: &'a mut S,
    options: &'a ReadOptions,
    pos: u64,
    size: u64,
    buf: Vec<u8>,
    buf_start: u64,
    progress: Progress,
}

type What<'a> = &'a dyn Fn() -> String;

impl<'a, S: Source + ?Sized> Cursor<'a, S> {
    fn new(source: &'a mut S, options: &'a ReadOptions) -> Self {
        let size = source.size();
        Cursor {
            source,
            options,
            pos: 0,
            size,
            buf: Vec::new(),
            buf_start: 0,
            progress: Progress::default(),
        }
    }

    /// Checks that `n` more bytes exist and stay inside the header limit.
    fn check(&self, n: u64, what: What<'_>) -> Result<u64, Stop> {
        let end = self.pos.checked_add(n);
        match end {
            Some(end) if end <= self.size => {
                if end > self.options.max_header_bytes {
                    return Err(GgufError::TooLarge {
                        what: format!("the header ({})", what()),
                        size: end,
                        limit: self.options.max_header_bytes,
                    }
                    .into());
                }
                Ok(end)
            }
            _ => Err(GgufError::Truncated {
                what: what(),
                offset: self.pos,
                needed: n,
                file_len: self.size,
            }
            .into()),
        }
    }

    /// Checks that `count` values of at least `min` bytes each can fit.
    fn fits(&self, count: u64, min: u64, what: What<'_>) -> Result<(), Stop> {
        match count.checked_mul(min) {
            Some(n) => self.check(n, what).map(|_| ()),
            None => Err(GgufError::Truncated {
                what: what(),
                offset: self.pos,
                needed: u64::MAX,
                file_len: self.size,
            }
            .into()),
        }
    }

    fn skip(&mut self, n: u64, what: What<'_>) -> Result<(), Stop> {
        self.pos = self.check(n, what)?;
        Ok(())
    }

    fn bytes(&mut self, n: u64, what: What<'_>) -> Result<&[u8], Stop> {
        let end = self.check(n, what)?;
        let buf_end = self.buf_start + self.buf.len() as u64;
        if self.pos < self.buf_start || end > buf_end {
            // `check` bounds `n` by the file and the header limit, so this allocation is too.
            let ahead = READ_AHEAD.min(self.source.available(self.pos));
            let want = n.max(ahead).min(self.size - self.pos);
            self.buf.resize(want as usize, 0);
            match self.source.read_at(self.pos, &mut self.buf) {
                Ok(()) => {}
                Err(SourceError::Io(e)) => return Err(e.into()),
                Err(SourceError::Missing { offset }) => {
                    self.buf.clear();
                    return Err(Stop::Need {
                        offset,
                        estimate: self.progress.estimate(offset),
                    });
                }
            }
            self.buf_start = self.pos;
        }
        let from = (self.pos - self.buf_start) as usize;
        self.pos = end;
        Ok(&self.buf[from..from + n as usize])
    }

    fn array<const N: usize>(&mut self, what: What<'_>) -> Result<[u8; N], Stop> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.bytes(N as u64, what)?);
        Ok(out)
    }

    fn u32(&mut self, what: What<'_>) -> Result<u32, Stop> {
        Ok(u32::from_le_bytes(self.array(what)?))
    }

    fn u64(&mut self, what: What<'_>) -> Result<u64, Stop> {
        Ok(u64::from_le_bytes(self.array(what)?))
    }

    fn string(&mut self, what: What<'_>) -> Result<String, Stop> {
        let len = self.u64(what)?;
        let bytes = self.bytes(len, what)?;
        Ok(String::from_utf8_lossy(bytes).into_owned())
    }

    fn value_type(&mut self, what: What<'_>) -> Result<ValueType, Stop> {
        let at = self.pos;
        let id = self.u32(what)?;
        ValueType::from_id(id).ok_or_else(|| {
            GgufError::invalid(at, format!("{} has unknown value type {id}", what())).into()
        })
    }

    fn value(&mut self, key: &str) -> Result<Value, Stop> {
        let what = || format!("the value of `{key}`");
        let t = self.value_type(&what)?;
        self.scalar_or_array(t, key, 0, &what)
    }

    fn scalar_or_array(
        &mut self,
        t: ValueType,
        key: &str,
        depth: u32,
        what: What<'_>,
    ) -> Result<Value, Stop> {
        Ok(match t {
            ValueType::U8 => Value::U8(u8::from_le_bytes(self.array(what)?)),
            ValueType::I8 => Value::I8(i8::from_le_bytes(self.array(what)?)),
            ValueType::U16 => Value::U16(u16::from_le_bytes(self.array(what)?)),
            ValueType::I16 => Value::I16(i16::from_le_bytes(self.array(what)?)),
            ValueType::U32 => Value::U32(self.u32(what)?),
            ValueType::I32 => Value::I32(i32::from_le_bytes(self.array(what)?)),
            ValueType::F32 => Value::F32(f32::from_le_bytes(self.array(what)?)),
            ValueType::U64 => Value::U64(self.u64(what)?),
            ValueType::I64 => Value::I64(i64::from_le_bytes(self.array(what)?)),
            ValueType::F64 => Value::F64(f64::from_le_bytes(self.array(what)?)),
            ValueType::Bool => Value::Bool(self.bool(what)?),
            ValueType::String => Value::String(self.string(what)?),
            ValueType::Array => Value::Array(self.read_array(key, depth)?),
        })
    }

    fn bool(&mut self, what: What<'_>) -> Result<bool, Stop> {
        let at = self.pos;
        match self.array::<1>(what)?[0] {
            0 => Ok(false),
            1 => Ok(true),
            b => Err(GgufError::invalid(
                at,
                format!("{} is a bool of value {b}, neither 0 nor 1", what()),
            )
            .into()),
        }
    }

    fn read_array(&mut self, key: &str, depth: u32) -> Result<Array, Stop> {
        let what = || format!("an array in `{key}`");
        if depth >= MAX_NESTING {
            return Err(GgufError::invalid(
                self.pos,
                format!("`{key}` nests arrays more than {MAX_NESTING} deep"),
            )
            .into());
        }
        let item_type = self.value_type(&what)?;
        let len = self.u64(&what)?;
        self.fits(len, item_type.min_size(), &|| {
            format!("the {len} items of `{key}`")
        })?;
        let offset = self.pos;
        let keep = len <= self.options.keep_array_items;
        let top = depth == 0 && item_type == ValueType::String;
        if depth == 0 {
            self.progress.seen.push(key.to_string());
        }
        if top {
            self.progress.array = Some((offset, 0, len));
            if key == "tokenizer.ggml.tokens" {
                self.progress.vocab = Some(len);
            }
        }
        let items = if keep {
            Some(self.items(item_type, len, key, depth, top)?)
        } else {
            self.skip_items(item_type, len, key, depth, top)?;
            None
        };
        if top {
            self.progress.array = None;
        }
        Ok(Array {
            item_type,
            len,
            offset,
            items,
        })
    }

    fn note_item(&mut self, top: bool, i: u64, len: u64) {
        if top {
            self.progress.array = self.progress.array.map(|(s, _, _)| (s, i, len - i));
        }
    }

    fn items(
        &mut self,
        t: ValueType,
        len: u64,
        key: &str,
        depth: u32,
        top: bool,
    ) -> Result<Items, Stop> {
        let what = || format!("an item of `{key}`");
        // `fits` bounded `len` by the bytes present; cap the up-front reservation anyway.
        let cap = len.min(1 << 16) as usize;
        macro_rules! fixed {
            ($variant:ident, $ty:ty) => {{
                let mut v: Vec<$ty> = Vec::with_capacity(cap);
                for _ in 0..len {
                    v.push(<$ty>::from_le_bytes(self.array(&what)?));
                }
                Items::$variant(v)
            }};
        }
        Ok(match t {
            ValueType::U8 => fixed!(U8, u8),
            ValueType::I8 => fixed!(I8, i8),
            ValueType::U16 => fixed!(U16, u16),
            ValueType::I16 => fixed!(I16, i16),
            ValueType::U32 => fixed!(U32, u32),
            ValueType::I32 => fixed!(I32, i32),
            ValueType::F32 => fixed!(F32, f32),
            ValueType::U64 => fixed!(U64, u64),
            ValueType::I64 => fixed!(I64, i64),
            ValueType::F64 => fixed!(F64, f64),
            ValueType::Bool => {
                let mut v = Vec::with_capacity(cap);
                for _ in 0..len {
                    v.push(self.bool(&what)?);
                }
                Items::Bool(v)
            }
            ValueType::String => {
                let mut v = Vec::with_capacity(cap);
                for i in 0..len {
                    self.note_item(top, i, len);
                    v.push(self.string(&what)?);
                }
                Items::String(v)
            }
            ValueType::Array => {
                let mut v = Vec::with_capacity(cap.min(1024));
                for _ in 0..len {
                    v.push(self.read_array(key, depth + 1)?);
                }
                Items::Array(v)
            }
        })
    }

    fn skip_items(
        &mut self,
        t: ValueType,
        len: u64,
        key: &str,
        depth: u32,
        top: bool,
    ) -> Result<(), Stop> {
        let what = || format!("the items of `{key}`");
        match t.fixed_size() {
            // `fits` already checked `len * size`.
            Some(size) => self.skip(len * size, &what),
            None if t == ValueType::String => {
                for i in 0..len {
                    self.note_item(top, i, len);
                    let n = self.u64(&what)?;
                    self.skip(n, &what)?;
                }
                Ok(())
            }
            None => {
                for _ in 0..len {
                    self.read_array(key, depth + 1)?;
                }
                Ok(())
            }
        }
    }
}
