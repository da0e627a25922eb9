//! Property tests of the reader: random and mutated headers never panic, never allocate
//! without bound, and what the writer writes reads back the same. Bounded case counts keep
//! them in `cargo test`.

use proptest::prelude::*;
use rbee_gguf::{
    GgmlType, Gguf, GgufWriter, Items, ReadOptions, SliceSource, Source, SourceError, Value,
    Window, array, string_array,
};

/// Reading with a small header limit, so hostile lengths hit it fast.
fn options() -> ReadOptions {
    ReadOptions {
        keep_array_items: 64,
        max_header_bytes: 1 << 20,
    }
}

fn any_value() -> impl Strategy<Value = Value> {
    let scalar = prop_oneof![
        any::<u8>().prop_map(Value::U8),
        any::<i8>().prop_map(Value::I8),
        any::<u16>().prop_map(Value::U16),
        any::<i16>().prop_map(Value::I16),
        any::<u32>().prop_map(Value::U32),
        any::<i32>().prop_map(Value::I32),
        any::<f32>()
            .prop_filter("NaN never equals itself", |f| !f.is_nan())
            .prop_map(Value::F32),
        any::<bool>().prop_map(Value::Bool),
        "\\PC{0,20}".prop_map(Value::String),
        any::<u64>().prop_map(Value::U64),
        any::<i64>().prop_map(Value::I64),
        any::<f64>()
            .prop_filter("NaN never equals itself", |f| !f.is_nan())
            .prop_map(Value::F64),
        proptest::collection::vec(any::<u32>(), 0..100).prop_map(|v| array(Items::U32(v))),
        proptest::collection::vec("\\PC{0,8}", 0..100).prop_map(string_array),
        proptest::collection::vec(any::<bool>(), 0..10).prop_map(|v| array(Items::Bool(v))),
    ];
    scalar
}

/// A valid file from random metadata and tensor shapes.
fn any_file() -> impl Strategy<Value = (Vec<(String, Value)>, Vec<u8>)> {
    (
        proptest::collection::vec(("[a-z.]{1,12}", any_value()), 0..12),
        proptest::collection::vec((1u64..4, 1u64..5), 0..6),
        2u32..=3,
    )
        .prop_map(|(kvs, shapes, version)| {
            let mut seen = std::collections::HashSet::new();
            let kvs: Vec<(String, Value)> = kvs
                .into_iter()
                .filter(|(k, _)| k != "general.alignment" && seen.insert(k.clone()))
                .collect();
            let mut w = GgufWriter::new().version(version);
            for (k, v) in &kvs {
                w = w.kv(k.clone(), v.clone());
            }
            for (i, (blocks, rows)) in shapes.into_iter().enumerate() {
                let t = [GgmlType::F32, GgmlType::Q8_0, GgmlType(12), GgmlType::BF16][i % 4];
                let block = t.block_size().unwrap();
                w = w.tensor(format!("blk.{i}.w"), &[blocks * block.max(32), rows], t);
            }
            (kvs, w.to_bytes())
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = Gguf::read(&mut SliceSource(&bytes), &options());
        // With the magic and a version in front, the parser gets further.
        let mut v = b"GGUF\x03\0\0\0".to_vec();
        v.extend_from_slice(&bytes);
        let _ = Gguf::read(&mut SliceSource(&v), &options());
    }

    #[test]
    fn written_files_read_back((kvs, bytes) in any_file()) {
        let g = Gguf::read(&mut SliceSource(&bytes), &ReadOptions::full()).unwrap();
        prop_assert_eq!(g.metadata.len(), kvs.len());
        for (k, v) in &kvs {
            let got = g.metadata.get(k).unwrap();
            match (got, v) {
                (Value::Array(a), Value::Array(b)) => prop_assert_eq!(a.values(), b.values()),
                _ => prop_assert_eq!(got, v),
            }
        }
    }

    #[test]
    fn mutated_files_never_panic(
        (_, bytes) in any_file(),
        flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
        cut in any::<prop::sample::Index>(),
    ) {
        let mut m = bytes.clone();
        for (i, b) in flips {
            let i = i.index(m.len());
            m[i] = b;
        }
        let _ = Gguf::read(&mut SliceSource(&m), &options());
        // Any cut inside the header or the tensor data is an error (only the alignment
        // padding at the end may go).
        let whole = Gguf::read(&mut SliceSource(&bytes), &options()).unwrap();
        let cut = cut.index(bytes.len() + 1);
        let end = whole
            .tensors
            .iter()
            .map(|t| whole.data_offset + t.offset + t.n_bytes().unwrap())
            .max()
            .unwrap_or(whole.header_len);
        if (cut as u64) < end {
            prop_assert!(Gguf::read(&mut SliceSource(&bytes[..cut]), &options()).is_err());
        }
    }

    /// Reading through a window that holds only some ranges either succeeds with the same
    /// header or asks for a byte it does not have: never a wrong answer.
    #[test]
    fn windows_agree_with_whole_files(
        (_, bytes) in any_file(),
        parts in proptest::collection::vec((any::<prop::sample::Index>(), 1usize..400), 1..6),
    ) {
        let whole = Gguf::read(&mut SliceSource(&bytes), &options()).unwrap();
        let mut w = Window::new(bytes.len() as u64);
        w.insert(0, bytes::Bytes::copy_from_slice(&bytes[..bytes.len().min(64)]));
        for (at, len) in parts {
            let at = at.index(bytes.len());
            let end = (at + len).min(bytes.len());
            w.insert(at as u64, bytes::Bytes::copy_from_slice(&bytes[at..end]));
        }
        if let Ok(g) = Gguf::read(&mut w, &options()) {
            prop_assert_eq!(g, whole);
        }
        let mut probe = [0u8; 1];
        match w.read_at(bytes.len() as u64 - 1, &mut probe) {
            Ok(()) => prop_assert_eq!(probe[0], bytes[bytes.len() - 1]),
            Err(SourceError::Missing { offset }) => prop_assert_eq!(offset, bytes.len() as u64 - 1),
            Err(SourceError::Io(e)) => prop_assert!(false, "{e}"),
        }
    }
}
