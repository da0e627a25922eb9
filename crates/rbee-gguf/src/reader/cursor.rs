//! The bounds-checked cursor the reader reads through: every length is checked against what
//! the source can still hold and the header budget before anything is allocated or skipped.

use crate::error::GgufError;
use crate::source::{Source, SourceError};
use crate::value::{Array, Items, Value, ValueType};

use super::guess::Progress;
use super::{MAX_NESTING, READ_AHEAD, ReadOptions, Stop};

pub(super) struct Cursor<'a, S: ?Sized> {
    pub(super) source: &'a mut S,
    pub(super) options: &'a ReadOptions,
    pub(super) pos: u64,
    pub(super) size: u64,
    pub(super) buf: Vec<u8>,
    pub(super) buf_start: u64,
    pub(super) progress: Progress,
}

pub(super) type What<'a> = &'a dyn Fn() -> String;

impl<'a, S: Source + ?Sized> Cursor<'a, S> {
    pub(super) fn new(source: &'a mut S, options: &'a ReadOptions) -> Self {
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
    pub(super) fn check(&self, n: u64, what: What<'_>) -> Result<u64, Stop> {
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
    pub(super) fn fits(&self, count: u64, min: u64, what: What<'_>) -> Result<(), Stop> {
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

    pub(super) fn skip(&mut self, n: u64, what: What<'_>) -> Result<(), Stop> {
        self.pos = self.check(n, what)?;
        Ok(())
    }

    pub(super) fn bytes(&mut self, n: u64, what: What<'_>) -> Result<&[u8], Stop> {
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

    pub(super) fn array<const N: usize>(&mut self, what: What<'_>) -> Result<[u8; N], Stop> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.bytes(N as u64, what)?);
        Ok(out)
    }

    pub(super) fn u32(&mut self, what: What<'_>) -> Result<u32, Stop> {
        Ok(u32::from_le_bytes(self.array(what)?))
    }

    pub(super) fn u64(&mut self, what: What<'_>) -> Result<u64, Stop> {
        Ok(u64::from_le_bytes(self.array(what)?))
    }

    pub(super) fn string(&mut self, what: What<'_>) -> Result<String, Stop> {
        let len = self.u64(what)?;
        let bytes = self.bytes(len, what)?;
        Ok(String::from_utf8_lossy(bytes).into_owned())
    }

    pub(super) fn value_type(&mut self, what: What<'_>) -> Result<ValueType, Stop> {
        let at = self.pos;
        let id = self.u32(what)?;
        ValueType::from_id(id).ok_or_else(|| {
            GgufError::invalid(at, format!("{} has unknown value type {id}", what())).into()
        })
    }

    pub(super) fn value(&mut self, key: &str) -> Result<Value, Stop> {
        let what = || format!("the value of `{key}`");
        let t = self.value_type(&what)?;
        self.scalar_or_array(t, key, 0, &what)
    }

    pub(super) fn scalar_or_array(
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

    pub(super) fn bool(&mut self, what: What<'_>) -> Result<bool, Stop> {
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

    pub(super) fn read_array(&mut self, key: &str, depth: u32) -> Result<Array, Stop> {
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

    pub(super) fn note_item(&mut self, top: bool, i: u64, len: u64) {
        if top {
            self.progress.array = self.progress.array.map(|(s, _, _)| (s, i, len - i));
        }
    }

    pub(super) fn items(
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

    pub(super) fn skip_items(
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
