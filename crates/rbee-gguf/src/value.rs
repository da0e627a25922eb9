//! Metadata values: the 13 GGUF value types, arrays (nested or not, kept or only counted), and
//! the ordered key → value table.

use std::collections::HashMap;

use serde_json::json;

/// A metadata value's type, by its GGUF id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[allow(missing_docs)]
pub enum ValueType {
    U8,
    I8,
    U16,
    I16,
    U32,
    I32,
    F32,
    Bool,
    String,
    Array,
    U64,
    I64,
    F64,
}

impl ValueType {
    /// The type with GGUF id `id`.
    pub fn from_id(id: u32) -> Option<ValueType> {
        use ValueType::*;
        Some(match id {
            0 => U8,
            1 => I8,
            2 => U16,
            3 => I16,
            4 => U32,
            5 => I32,
            6 => F32,
            7 => Bool,
            8 => String,
            9 => Array,
            10 => U64,
            11 => I64,
            12 => F64,
            _ => return None,
        })
    }

    /// The GGUF id.
    pub fn id(self) -> u32 {
        use ValueType::*;
        match self {
            U8 => 0,
            I8 => 1,
            U16 => 2,
            I16 => 3,
            U32 => 4,
            I32 => 5,
            F32 => 6,
            Bool => 7,
            String => 8,
            Array => 9,
            U64 => 10,
            I64 => 11,
            F64 => 12,
        }
    }

    /// Bytes of one value of a fixed-size type; `None` for strings and arrays.
    pub fn fixed_size(self) -> Option<u64> {
        use ValueType::*;
        match self {
            U8 | I8 | Bool => Some(1),
            U16 | I16 => Some(2),
            U32 | I32 | F32 => Some(4),
            U64 | I64 | F64 => Some(8),
            String | Array => None,
        }
    }

    /// The fewest bytes one value of this type takes in a file (a string's or array's length
    /// prefix), used to bound counts by what the file can hold.
    pub fn min_size(self) -> u64 {
        match self {
            ValueType::String => 8,
            ValueType::Array => 12,
            t => t.fixed_size().unwrap_or(1),
        }
    }

    /// The name used in JSON output (`u32`, `string`, …).
    pub fn name(self) -> &'static str {
        use ValueType::*;
        match self {
            U8 => "u8",
            I8 => "i8",
            U16 => "u16",
            I16 => "i16",
            U32 => "u32",
            I32 => "i32",
            F32 => "f32",
            Bool => "bool",
            String => "string",
            Array => "array",
            U64 => "u64",
            I64 => "i64",
            F64 => "f64",
        }
    }
}

/// One metadata value.
#[derive(Debug, Clone, PartialEq)]
#[allow(missing_docs)]
pub enum Value {
    U8(u8),
    I8(i8),
    U16(u16),
    I16(i16),
    U32(u32),
    I32(i32),
    F32(f32),
    Bool(bool),
    /// Invalid UTF-8 is replaced by U+FFFD (some vocabularies hold byte fragments).
    String(String),
    Array(Array),
    U64(u64),
    I64(i64),
    F64(f64),
}

impl Value {
    /// The value's type.
    pub fn value_type(&self) -> ValueType {
        match self {
            Value::U8(_) => ValueType::U8,
            Value::I8(_) => ValueType::I8,
            Value::U16(_) => ValueType::U16,
            Value::I16(_) => ValueType::I16,
            Value::U32(_) => ValueType::U32,
            Value::I32(_) => ValueType::I32,
            Value::F32(_) => ValueType::F32,
            Value::Bool(_) => ValueType::Bool,
            Value::String(_) => ValueType::String,
            Value::Array(_) => ValueType::Array,
            Value::U64(_) => ValueType::U64,
            Value::I64(_) => ValueType::I64,
            Value::F64(_) => ValueType::F64,
        }
    }

    /// An integer of any width and sign, if it is one and not negative.
    pub fn as_u64(&self) -> Option<u64> {
        match *self {
            Value::U8(v) => Some(v.into()),
            Value::U16(v) => Some(v.into()),
            Value::U32(v) => Some(v.into()),
            Value::U64(v) => Some(v),
            Value::I8(v) => u64::try_from(v).ok(),
            Value::I16(v) => u64::try_from(v).ok(),
            Value::I32(v) => u64::try_from(v).ok(),
            Value::I64(v) => u64::try_from(v).ok(),
            _ => None,
        }
    }

    /// A number of any type.
    pub fn as_f64(&self) -> Option<f64> {
        match *self {
            Value::F32(v) => Some(v.into()),
            Value::F64(v) => Some(v),
            Value::I8(v) => Some(v.into()),
            Value::I16(v) => Some(v.into()),
            Value::I32(v) => Some(v.into()),
            Value::I64(v) => Some(v as f64),
            _ => self.as_u64().map(|v| v as f64),
        }
    }

    /// The text of a string value.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::String(s) => Some(s),
            _ => None,
        }
    }

    /// A boolean value.
    pub fn as_bool(&self) -> Option<bool> {
        match *self {
            Value::Bool(b) => Some(b),
            _ => None,
        }
    }

    /// An array value.
    pub fn as_array(&self) -> Option<&Array> {
        match self {
            Value::Array(a) => Some(a),
            _ => None,
        }
    }

    /// The value as JSON; arrays whose items were not kept become
    /// `{"type": "array", "item_type": …, "len": …}`.
    pub fn to_json(&self) -> serde_json::Value {
        match self {
            Value::U8(v) => json!(v),
            Value::I8(v) => json!(v),
            Value::U16(v) => json!(v),
            Value::I16(v) => json!(v),
            Value::U32(v) => json!(v),
            Value::I32(v) => json!(v),
            Value::F32(v) => json!(v),
            Value::Bool(v) => json!(v),
            Value::String(v) => json!(v),
            Value::Array(a) => a.to_json(),
            Value::U64(v) => json!(v),
            Value::I64(v) => json!(v),
            Value::F64(v) => json!(v),
        }
    }
}

/// An array value: its item type and length always; its items when they were kept (see
/// [`ReadOptions::keep_array_items`](crate::ReadOptions::keep_array_items)). Two arrays are
/// equal when their type, length and items are, wherever they were read from.
#[derive(Debug, Clone)]
pub struct Array {
    /// The type of every item.
    pub item_type: ValueType,
    /// Number of items.
    pub len: u64,
    /// Where the first item starts in the file (to read items later without keeping them all).
    pub offset: u64,
    /// The items, when kept.
    pub items: Option<Items>,
}

impl Array {
    /// The items as integers, when kept and of an integer type.
    pub fn u64s(&self) -> Option<Vec<u64>> {
        self.values()?.iter().map(Value::as_u64).collect()
    }

    /// The items as booleans, when kept and of type bool.
    pub fn bools(&self) -> Option<Vec<bool>> {
        match self.items.as_ref()? {
            Items::Bool(v) => Some(v.clone()),
            _ => None,
        }
    }

    /// The items as strings, when kept and of type string.
    pub fn strings(&self) -> Option<&[String]> {
        match self.items.as_ref()? {
            Items::String(v) => Some(v),
            _ => None,
        }
    }

    /// The kept items, one [`Value`] each.
    pub fn values(&self) -> Option<Vec<Value>> {
        let items = self.items.as_ref()?;
        fn map<T: Copy>(v: &[T], f: impl Fn(T) -> Value) -> Vec<Value> {
            v.iter().copied().map(f).collect()
        }
        Some(match items {
            Items::U8(v) => map(v, Value::U8),
            Items::I8(v) => map(v, Value::I8),
            Items::U16(v) => map(v, Value::U16),
            Items::I16(v) => map(v, Value::I16),
            Items::U32(v) => map(v, Value::U32),
            Items::I32(v) => map(v, Value::I32),
            Items::F32(v) => map(v, Value::F32),
            Items::Bool(v) => map(v, Value::Bool),
            Items::U64(v) => map(v, Value::U64),
            Items::I64(v) => map(v, Value::I64),
            Items::F64(v) => map(v, Value::F64),
            Items::String(v) => v.iter().cloned().map(Value::String).collect(),
            Items::Array(v) => v.iter().cloned().map(Value::Array).collect(),
        })
    }

    /// The array as JSON: its items when kept, else a summary with its length.
    pub fn to_json(&self) -> serde_json::Value {
        match self.values() {
            Some(values) => serde_json::Value::Array(values.iter().map(Value::to_json).collect()),
            None => json!({"type": "array", "item_type": self.item_type.name(), "len": self.len}),
        }
    }
}

impl PartialEq for Array {
    fn eq(&self, other: &Self) -> bool {
        self.item_type == other.item_type && self.len == other.len && self.items == other.items
    }
}

/// The kept items of an array, stored by type so a large numeric array costs no more memory
/// than in the file.
#[derive(Debug, Clone, PartialEq)]
#[allow(missing_docs)]
pub enum Items {
    U8(Vec<u8>),
    I8(Vec<i8>),
    U16(Vec<u16>),
    I16(Vec<i16>),
    U32(Vec<u32>),
    I32(Vec<i32>),
    F32(Vec<f32>),
    Bool(Vec<bool>),
    String(Vec<String>),
    Array(Vec<Array>),
    U64(Vec<u64>),
    I64(Vec<i64>),
    F64(Vec<f64>),
}

/// The key → value table of a header, in file order.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Metadata {
    entries: Vec<(String, Value)>,
    index: HashMap<String, usize>,
}

impl Metadata {
    /// Adds an entry; returns false (and keeps the first) when the key is already present.
    pub(crate) fn insert(&mut self, key: String, value: Value) -> bool {
        if self.index.contains_key(&key) {
            return false;
        }
        self.index.insert(key.clone(), self.entries.len());
        self.entries.push((key, value));
        true
    }

    /// The value of `key`.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.index.get(key).map(|&i| &self.entries[i].1)
    }

    /// Entries in file order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Value)> {
        self.entries.iter().map(|(k, v)| (k.as_str(), v))
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether there are no entries.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// A non-negative integer value.
    pub fn u64(&self, key: &str) -> Option<u64> {
        self.get(key)?.as_u64()
    }

    /// A numeric value.
    pub fn f64(&self, key: &str) -> Option<f64> {
        self.get(key)?.as_f64()
    }

    /// A string value.
    pub fn str(&self, key: &str) -> Option<&str> {
        self.get(key)?.as_str()
    }

    /// A boolean value.
    pub fn bool(&self, key: &str) -> Option<bool> {
        self.get(key)?.as_bool()
    }

    /// An array value.
    pub fn array(&self, key: &str) -> Option<&Array> {
        self.get(key)?.as_array()
    }

    /// Every entry as one JSON object, in file order.
    pub fn to_json(&self) -> serde_json::Value {
        let mut map = serde_json::Map::new();
        for (k, v) in &self.entries {
            map.insert(k.clone(), v.to_json());
        }
        serde_json::Value::Object(map)
    }
}
