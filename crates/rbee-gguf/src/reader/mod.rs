//! The GGUF header reader: magic, version, metadata, tensor infos, alignment.
//!
//! Every count and length is checked against the bytes the file can still hold before anything
//! is allocated or skipped, and against [`ReadOptions::max_header_bytes`]; nothing here
//! panics on any input (the proptest suite feeds it random and mutated headers).

use std::collections::HashSet;
use std::path::Path;

use crate::error::GgufError;
use crate::source::{FileSource, Source};
use crate::types::GgmlType;
use crate::value::{Array, Metadata, Value, ValueType};

mod cursor;
mod guess;

use cursor::Cursor;

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
