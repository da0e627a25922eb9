//! A GGUF writer for fixtures: headers with any metadata and tensor layout, and files whose
//! tensor data is a hole (sparse), so a 70B-shaped file costs a few KiB of disk.

use std::io::Write;
use std::path::Path;

use crate::reader::DEFAULT_ALIGNMENT;
use crate::types::GgmlType;
use crate::value::{Array, Items, Value, ValueType};

/// Builds a GGUF file.
///
/// ```
/// use rbee_gguf::{Gguf, GgmlType, GgufWriter, ReadOptions, SliceSource, Value};
///
/// let bytes = GgufWriter::new()
///     .kv("general.architecture", Value::String("llama".into()))
///     .tensor("token_embd.weight", &[64, 100], GgmlType::F16)
///     .to_bytes();
/// let gguf = Gguf::read(&mut SliceSource(&bytes), &ReadOptions::default()).unwrap();
/// assert_eq!(gguf.parameter_count(), 6400);
/// ```
#[derive(Debug, Clone)]
pub struct GgufWriter {
    version: u32,
    kvs: Vec<(String, Value)>,
    tensors: Vec<(String, Vec<u64>, GgmlType)>,
    alignment: u64,
}

impl Default for GgufWriter {
    fn default() -> Self {
        Self::new()
    }
}

impl GgufWriter {
    /// An empty version-3 file.
    pub fn new() -> Self {
        GgufWriter {
            version: 3,
            kvs: Vec::new(),
            tensors: Vec::new(),
            alignment: DEFAULT_ALIGNMENT,
        }
    }

    /// Sets the format version written (2 or 3; others for tests of refusals).
    pub fn version(mut self, version: u32) -> Self {
        self.version = version;
        self
    }

    /// Adds a metadata entry (`general.alignment` also sets the alignment used).
    pub fn kv(mut self, key: impl Into<String>, value: Value) -> Self {
        let key = key.into();
        if key == "general.alignment"
            && let Some(a) = value.as_u64().filter(|a| a.is_power_of_two())
        {
            self.alignment = a;
        }
        self.kvs.push((key, value));
        self
    }

    /// Adds a tensor (dimensions innermost first, as ggml orders them).
    pub fn tensor(mut self, name: impl Into<String>, dims: &[u64], ggml_type: GgmlType) -> Self {
        self.tensors.push((name.into(), dims.to_vec(), ggml_type));
        self
    }

    fn tensor_bytes(dims: &[u64], t: GgmlType) -> u64 {
        // Saturating: fixtures of hostile shapes must still be writable.
        let row = t.row_bytes(dims.first().copied().unwrap_or(1)).unwrap_or(0);
        dims.iter()
            .skip(1)
            .fold(row, |acc, &d| acc.saturating_mul(d))
    }

    fn pad(&self, n: u64) -> u64 {
        n.div_ceil(self.alignment).saturating_mul(self.alignment)
    }

    /// The header, padded to where tensor data starts.
    pub fn header_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(b"GGUF");
        out.extend_from_slice(&self.version.to_le_bytes());
        out.extend_from_slice(&(self.tensors.len() as u64).to_le_bytes());
        out.extend_from_slice(&(self.kvs.len() as u64).to_le_bytes());
        for (k, v) in &self.kvs {
            put_string(&mut out, k);
            out.extend_from_slice(&v.value_type().id().to_le_bytes());
            put_value(&mut out, v);
        }
        let mut offset = 0u64;
        for (name, dims, t) in &self.tensors {
            put_string(&mut out, name);
            out.extend_from_slice(&(dims.len() as u32).to_le_bytes());
            for d in dims {
                out.extend_from_slice(&d.to_le_bytes());
            }
            out.extend_from_slice(&t.0.to_le_bytes());
            out.extend_from_slice(&offset.to_le_bytes());
            offset = offset.saturating_add(self.pad(Self::tensor_bytes(dims, *t)));
        }
        let padded = self.pad(out.len() as u64) as usize;
        out.resize(padded, 0);
        out
    }

    /// Bytes of tensor data after the header (each tensor padded to the alignment).
    pub fn data_size(&self) -> u64 {
        self.tensors
            .iter()
            .map(|(_, d, t)| self.pad(Self::tensor_bytes(d, *t)))
            .fold(0, u64::saturating_add)
    }

    /// The whole file in memory, tensor data zero.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = self.header_bytes();
        out.resize(out.len() + self.data_size() as usize, 0);
        out
    }

    /// Writes the file to `path`, tensor data as a hole (zeros, no disk blocks on file
    /// systems with sparse files).
    pub fn write_to(&self, path: &Path) -> std::io::Result<()> {
        let header = self.header_bytes();
        let mut f = std::fs::File::create(path)?;
        f.write_all(&header)?;
        f.set_len(header.len() as u64 + self.data_size())?;
        f.sync_all()
    }
}

fn put_string(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(&(s.len() as u64).to_le_bytes());
    out.extend_from_slice(s.as_bytes());
}

fn put_value(out: &mut Vec<u8>, v: &Value) {
    match v {
        Value::U8(x) => out.extend_from_slice(&x.to_le_bytes()),
        Value::I8(x) => out.extend_from_slice(&x.to_le_bytes()),
        Value::U16(x) => out.extend_from_slice(&x.to_le_bytes()),
        Value::I16(x) => out.extend_from_slice(&x.to_le_bytes()),
        Value::U32(x) => out.extend_from_slice(&x.to_le_bytes()),
        Value::I32(x) => out.extend_from_slice(&x.to_le_bytes()),
        Value::F32(x) => out.extend_from_slice(&x.to_le_bytes()),
        Value::U64(x) => out.extend_from_slice(&x.to_le_bytes()),
        Value::I64(x) => out.extend_from_slice(&x.to_le_bytes()),
        Value::F64(x) => out.extend_from_slice(&x.to_le_bytes()),
        Value::Bool(x) => out.push(u8::from(*x)),
        Value::String(s) => put_string(out, s),
        Value::Array(a) => {
            out.extend_from_slice(&a.item_type.id().to_le_bytes());
            let values = a.values().unwrap_or_default();
            out.extend_from_slice(&(values.len() as u64).to_le_bytes());
            for item in &values {
                put_value(out, item);
            }
        }
    }
}

/// An array value of strings (for fixtures).
pub fn string_array<S: Into<String>>(items: impl IntoIterator<Item = S>) -> Value {
    let items: Vec<String> = items.into_iter().map(Into::into).collect();
    Value::Array(Array {
        item_type: ValueType::String,
        len: items.len() as u64,
        offset: 0,
        items: Some(Items::String(items)),
    })
}

/// An array value from typed items (for fixtures).
pub fn array(items: Items) -> Value {
    let item_type = match &items {
        Items::U8(_) => ValueType::U8,
        Items::I8(_) => ValueType::I8,
        Items::U16(_) => ValueType::U16,
        Items::I16(_) => ValueType::I16,
        Items::U32(_) => ValueType::U32,
        Items::I32(_) => ValueType::I32,
        Items::F32(_) => ValueType::F32,
        Items::Bool(_) => ValueType::Bool,
        Items::String(_) => ValueType::String,
        Items::Array(_) => ValueType::Array,
        Items::U64(_) => ValueType::U64,
        Items::I64(_) => ValueType::I64,
        Items::F64(_) => ValueType::F64,
    };
    let len = match &items {
        Items::U8(v) => v.len(),
        Items::I8(v) => v.len(),
        Items::U16(v) => v.len(),
        Items::I16(v) => v.len(),
        Items::U32(v) => v.len(),
        Items::I32(v) => v.len(),
        Items::F32(v) => v.len(),
        Items::Bool(v) => v.len(),
        Items::String(v) => v.len(),
        Items::Array(v) => v.len(),
        Items::U64(v) => v.len(),
        Items::I64(v) => v.len(),
        Items::F64(v) => v.len(),
    } as u64;
    Value::Array(Array {
        item_type,
        len,
        offset: 0,
        items: Some(items),
    })
}
