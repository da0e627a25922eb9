//! The reader on well-formed, truncated, oversized and hostile headers.

use rbee_gguf::{
    GgmlType, Gguf, GgufError, GgufWriter, Items, ReadOptions, SliceSource, Value, ValueType,
    array, array_strings_at, string_array,
};

fn read(bytes: &[u8]) -> Result<Gguf, GgufError> {
    Gguf::read(&mut SliceSource(bytes), &ReadOptions::default())
}

fn small_model() -> GgufWriter {
    GgufWriter::new()
        .kv("general.architecture", Value::String("llama".into()))
        .kv("general.name", Value::String("tiny".into()))
        .kv("llama.block_count", Value::U32(2))
        .kv(
            "tokenizer.ggml.tokens",
            string_array(["<s>", "</s>", "hello", "wörld"]),
        )
        .kv("tokenizer.ggml.bos_token_id", Value::U32(0))
        .tensor("token_embd.weight", &[64, 4], GgmlType::F16)
        .tensor("blk.0.attn_q.weight", &[64, 64], GgmlType::Q8_0)
        .tensor("output.weight", &[64, 4], GgmlType::F32)
}

#[test]
fn reads_every_value_type_and_nested_arrays() {
    let nested = array(Items::Array(vec![
        match array(Items::U16(vec![1, 2])) {
            Value::Array(a) => a,
            _ => unreachable!(),
        },
        match string_array(["x", ""]) {
            Value::Array(a) => a,
            _ => unreachable!(),
        },
    ]));
    let values = vec![
        ("u8", Value::U8(250)),
        ("i8", Value::I8(-5)),
        ("u16", Value::U16(65000)),
        ("i16", Value::I16(-300)),
        ("u32", Value::U32(4_000_000_000)),
        ("i32", Value::I32(-70_000)),
        ("f32", Value::F32(1.5)),
        ("bool", Value::Bool(true)),
        ("string", Value::String("héllo".into())),
        ("u64", Value::U64(u64::MAX)),
        ("i64", Value::I64(i64::MIN)),
        ("f64", Value::F64(-2.25)),
        ("nested", nested.clone()),
        ("bools", array(Items::Bool(vec![true, false]))),
    ];
    for version in [2, 3] {
        let mut w = GgufWriter::new().version(version);
        for (k, v) in &values {
            w = w.kv(*k, v.clone());
        }
        let g = read(&w.to_bytes()).unwrap();
        assert_eq!(g.version, version);
        for (k, v) in &values {
            let got = g.metadata.get(k).unwrap_or_else(|| panic!("{k} missing"));
            match (got, v) {
                (Value::Array(a), Value::Array(b)) => {
                    assert_eq!(a.item_type, b.item_type);
                    assert_eq!(a.len, b.len);
                    assert_eq!(a.values(), b.values(), "{k}");
                }
                _ => assert_eq!(got, v, "{k}"),
            }
        }
        assert_eq!(g.metadata.len(), values.len());
    }
}

#[test]
fn tensor_infos_sizes_and_alignment() {
    let w = small_model().kv("general.alignment", Value::U32(64));
    let bytes = w.to_bytes();
    let g = read(&bytes).unwrap();
    assert_eq!(g.alignment, 64);
    assert_eq!(g.data_offset % 64, 0);
    assert_eq!(g.tensors.len(), 3);
    assert_eq!(g.tensors[1].name, "blk.0.attn_q.weight");
    assert_eq!(g.tensors[1].dims, vec![64, 64]);
    assert_eq!(g.tensors[1].n_bytes(), Some(64 * 64 / 32 * 34));
    assert_eq!(g.parameter_count(), 64 * 4 + 64 * 64 + 64 * 4);
    assert_eq!(g.file_size, bytes.len() as u64);
    assert!(g.header_len <= g.data_offset);
}

#[test]
fn large_arrays_keep_their_length_and_can_be_read_again() {
    let tokens: Vec<String> = (0..5000).map(|i| format!("t{i}")).collect();
    let bytes = GgufWriter::new()
        .kv("tokenizer.ggml.tokens", string_array(tokens.clone()))
        .kv("tokenizer.ggml.scores", array(Items::F32(vec![0.5; 5000])))
        .to_bytes();
    let g = read(&bytes).unwrap();
    let t = g.metadata.array("tokenizer.ggml.tokens").unwrap();
    assert_eq!((t.item_type, t.len), (ValueType::String, 5000));
    assert!(
        t.items.is_none(),
        "a 5000-item array is summarised by default"
    );
    assert_eq!(
        t.to_json(),
        serde_json::json!({"type": "array", "item_type": "string", "len": 5000})
    );
    let picked = array_strings_at(&mut SliceSource(&bytes), t, &[0, 4999, 7000]).unwrap();
    assert_eq!(
        picked,
        vec![(0, "t0".to_string()), (4999, "t4999".to_string())]
    );
    let full = Gguf::read(&mut SliceSource(&bytes), &ReadOptions::full()).unwrap();
    let t = full.metadata.array("tokenizer.ggml.tokens").unwrap();
    assert_eq!(t.strings().unwrap(), &tokens[..]);
}

#[test]
fn every_truncation_is_a_clear_error() {
    let bytes = small_model().to_bytes();
    for cut in 0..bytes.len() {
        let err = read(&bytes[..cut]).expect_err("a truncated file must not parse");
        let msg = err.to_string();
        assert!(
            matches!(err, GgufError::Truncated { .. }),
            "cut at {cut}: {msg}"
        );
        assert!(msg.contains("truncated"), "{msg}");
    }
}

/// A header with raw parts, for hostile values the writer would not produce.
fn raw(version: u32, tensors: u64, kvs: u64, rest: &[u8]) -> Vec<u8> {
    let mut v = b"GGUF".to_vec();
    v.extend_from_slice(&version.to_le_bytes());
    v.extend_from_slice(&tensors.to_le_bytes());
    v.extend_from_slice(&kvs.to_le_bytes());
    v.extend_from_slice(rest);
    v
}

fn kv(key: &str, type_id: u32, value: &[u8]) -> Vec<u8> {
    let mut v = (key.len() as u64).to_le_bytes().to_vec();
    v.extend_from_slice(key.as_bytes());
    v.extend_from_slice(&type_id.to_le_bytes());
    v.extend_from_slice(value);
    v
}

#[test]
fn hostile_headers_are_refused_without_allocating() {
    // Not GGUF at all.
    let e = read(b"PK\x03\x04 a zip file, not a model").unwrap_err();
    assert!(matches!(e, GgufError::NotGguf { .. }), "{e}");
    // Versions.
    let e = read(&raw(1, 0, 0, &[])).unwrap_err();
    assert!(
        matches!(e, GgufError::UnsupportedVersion { version: 1 }),
        "{e}"
    );
    let e = read(&raw(3u32.swap_bytes(), 0, 0, &[])).unwrap_err();
    assert!(e.to_string().contains("big-endian"), "{e}");
    // Counts the file cannot hold: refused before any allocation.
    let e = read(&raw(3, 0, u64::MAX, &[])).unwrap_err();
    assert!(matches!(e, GgufError::Truncated { .. }), "{e}");
    let e = read(&raw(3, u64::MAX / 2, 0, &[])).unwrap_err();
    assert!(matches!(e, GgufError::Truncated { .. }), "{e}");
    // A string longer than the file.
    let mut body = (u64::MAX - 3).to_le_bytes().to_vec();
    body.extend_from_slice(b"key");
    let e = read(&raw(3, 0, 1, &body)).unwrap_err();
    assert!(matches!(e, GgufError::Truncated { .. }), "{e}");
    // An array claiming 2^60 u64 items.
    let mut arr = 10u32.to_le_bytes().to_vec();
    arr.extend_from_slice(&(1u64 << 60).to_le_bytes());
    let e = read(&raw(3, 0, 1, &kv("a", 9, &arr))).unwrap_err();
    assert!(matches!(e, GgufError::Truncated { .. }), "{e}");
    // An unknown value type.
    let e = read(&raw(3, 0, 1, &kv("k", 13, &[0; 8]))).unwrap_err();
    assert!(e.to_string().contains("unknown value type 13"), "{e}");
    // A bool that is neither 0 nor 1.
    let e = read(&raw(3, 0, 1, &kv("b", 7, &[2]))).unwrap_err();
    assert!(e.to_string().contains("neither 0 nor 1"), "{e}");
    // The same key twice.
    let mut twice = kv("k", 4, &1u32.to_le_bytes());
    twice.extend(kv("k", 4, &2u32.to_le_bytes()));
    let e = read(&raw(3, 0, 2, &twice)).unwrap_err();
    assert!(e.to_string().contains("appears twice"), "{e}");
    // Alignment that is not a power of two.
    let e = read(&raw(
        3,
        0,
        1,
        &kv("general.alignment", 4, &48u32.to_le_bytes()),
    ))
    .unwrap_err();
    assert!(e.to_string().contains("power of two"), "{e}");
    // Arrays nested too deep: each level an array of one array.
    let mut deep = Vec::new();
    for _ in 0..20 {
        deep.extend_from_slice(&9u32.to_le_bytes());
        deep.extend_from_slice(&1u64.to_le_bytes());
    }
    deep.extend_from_slice(&[0; 64]);
    let e = read(&raw(3, 0, 1, &kv("deep", 9, &deep))).unwrap_err();
    assert!(e.to_string().contains("nests arrays"), "{e}");
}

#[test]
fn tensor_layouts_llama_cpp_would_refuse_are_refused() {
    // Five dimensions.
    let e = read(
        &GgufWriter::new()
            .tensor("t", &[32, 1, 1, 1, 1], GgmlType::F32)
            .to_bytes(),
    )
    .unwrap_err();
    assert!(e.to_string().contains("at most 4"), "{e}");
    // Rows that are not whole blocks.
    let e = read(
        &GgufWriter::new()
            .tensor("t", &[33, 2], GgmlType::Q8_0)
            .to_bytes(),
    )
    .unwrap_err();
    assert!(e.to_string().contains("block size"), "{e}");
    // Element count past what ggml can address.
    let e = read(
        &GgufWriter::new()
            .tensor("t", &[1 << 32, 1 << 32], GgmlType::F32)
            .header_bytes(),
    )
    .unwrap_err();
    assert!(e.to_string().contains("more elements"), "{e}");
    // Two tensors of the same name.
    let e = read(
        &GgufWriter::new()
            .tensor("t", &[32], GgmlType::F32)
            .tensor("t", &[32], GgmlType::F32)
            .to_bytes(),
    )
    .unwrap_err();
    assert!(e.to_string().contains("appears twice"), "{e}");
    // Tensor data past the end of the file (a header-only copy of a model).
    let w = GgufWriter::new().tensor("t", &[4096, 4096], GgmlType::F16);
    let e = read(&w.header_bytes()).unwrap_err();
    assert!(matches!(e, GgufError::Truncated { .. }), "{e}");
    assert!(e.to_string().contains("tensor `t`"), "{e}");
    // Offsets that overlap: patch the second tensor's offset to 0.
    let mut bytes = GgufWriter::new()
        .tensor("a", &[32], GgmlType::F32)
        .tensor("b", &[32], GgmlType::F32)
        .to_bytes();
    let h = read(&bytes).unwrap();
    assert_eq!(h.tensors[1].offset, 128);
    let pos = bytes
        .windows(8)
        .rposition(|w| w == 128u64.to_le_bytes())
        .unwrap();
    bytes[pos..pos + 8].copy_from_slice(&0u64.to_le_bytes());
    let e = read(&bytes).unwrap_err();
    assert!(e.to_string().contains("expected 128"), "{e}");
    // Unknown tensor types parse (a newer quantization); their sizes are unknown.
    let g = read(
        &GgufWriter::new()
            .tensor("t", &[32, 2], GgmlType(77))
            .header_bytes(),
    )
    .unwrap();
    assert_eq!(g.tensors[0].n_bytes(), None);
    assert_eq!(g.parameter_count(), 64);
}

#[test]
fn headers_past_the_limit_are_refused() {
    let tokens: Vec<String> = (0..2000).map(|i| format!("{i:0100}")).collect();
    let bytes = GgufWriter::new()
        .kv("tokenizer.ggml.tokens", string_array(tokens))
        .to_bytes();
    let options = ReadOptions {
        max_header_bytes: 64 << 10,
        ..ReadOptions::default()
    };
    let e = Gguf::read(&mut SliceSource(&bytes), &options).unwrap_err();
    assert!(matches!(e, GgufError::TooLarge { .. }), "{e}");
    assert!(e.to_string().contains("limit"), "{e}");
}

#[test]
fn reads_local_files_and_says_which_is_missing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.gguf");
    small_model().write_to(&path).unwrap();
    let g = Gguf::read_file(&path, &ReadOptions::default()).unwrap();
    assert_eq!(g.metadata.str("general.name"), Some("tiny"));
    let e = Gguf::read_file(&dir.path().join("missing.gguf"), &ReadOptions::default()).unwrap_err();
    assert!(e.to_string().contains("missing.gguf"), "{e}");
    let e = Gguf::read_file(dir.path(), &ReadOptions::default()).unwrap_err();
    assert!(e.to_string().contains("folder"), "{e}");
}
