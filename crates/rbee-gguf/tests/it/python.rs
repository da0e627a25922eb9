//! Fidelity: files written by the official `gguf` and `safetensors` Python packages, and the
//! vocabulary GGUFs llama.cpp ships (from the llama-cpp-python source distribution), read by
//! the official readers and by ours, compared field by field.
//!
//! The virtualenv and the vocabulary files are cached under the target folder, so only the
//! first run downloads. Without Python or PyPI the test says so and passes, unless
//! `RBEE_REQUIRE_PY_FIXTURES=1` (CI) turns the skip into a failure.

use std::path::{Path, PathBuf};

use rbee_fake_hub::python::PythonEnv;
use rbee_gguf::{Gguf, ModelSummary, ReadOptions, Value, inspect_local, read_safetensors_file};
use serde_json::Value as Json;

const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/py/gguf_check.py");

fn skip(reason: &str) {
    rbee_fake_hub::python::skip(
        "RBEE_REQUIRE_PY_FIXTURES",
        "the Python fixture check",
        reason,
    );
}

fn cache() -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("py-fixtures")
}

/// The cached virtualenv with `gguf` and `safetensors`, made on first use.
fn venv() -> Result<PythonEnv, String> {
    PythonEnv::with_packages(
        Path::new(env!("CARGO_TARGET_TMPDIR")),
        &["gguf", "safetensors", "numpy"],
        &["gguf", "safetensors", "numpy"],
    )
}

/// llama.cpp's `ggml-vocab-*.gguf` files from the llama-cpp-python sdist, cached.
fn vocab_files(python: &PythonEnv) -> Result<Vec<PathBuf>, String> {
    let dir = cache().join("vocab");
    let list = |dir: &Path| -> Vec<PathBuf> {
        let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
            .map(|rd| rd.filter_map(|e| e.ok().map(|e| e.path())).collect())
            .unwrap_or_default();
        v.retain(|p| p.extension().is_some_and(|e| e == "gguf"));
        v.sort();
        v
    };
    if list(&dir).is_empty() {
        let sdist = cache().join("sdist");
        python.run(
            python
                .command()
                .args([
                    "-m",
                    "pip",
                    "download",
                    "--quiet",
                    "--no-deps",
                    "--no-binary",
                    "llama-cpp-python",
                    "llama-cpp-python",
                    "-d",
                ])
                .arg(&sdist),
        )?;
        let extract = r#"
import glob, os, sys, tarfile
src, dst = sys.argv[1], sys.argv[2]
os.makedirs(dst, exist_ok=True)
for tgz in glob.glob(os.path.join(src, "*.tar.gz")):
    with tarfile.open(tgz) as t:
        for m in t.getmembers():
            name = os.path.basename(m.name)
            if "/vendor/llama.cpp/models/" in m.name and name.startswith("ggml-vocab-") and name.endswith(".gguf") and m.isfile():
                with t.extractfile(m) as f, open(os.path.join(dst, name), "wb") as out:
                    out.write(f.read())
"#;
        python.run(python.command().args(["-c", extract]).arg(&sdist).arg(&dir))?;
    }
    let files = list(&dir);
    if files.is_empty() {
        return Err("the llama-cpp-python sdist holds no ggml-vocab-*.gguf".into());
    }
    Ok(files)
}

fn dump(python: &PythonEnv, command: &str, files: &[PathBuf]) -> Json {
    let out = python
        .run(python.command().arg(SCRIPT).arg(command).args(files))
        .unwrap();
    serde_json::from_slice(&out.stdout).unwrap()
}

/// Numbers equal to f32 precision (Python widens f32 to f64; serde prints f32 shortest).
fn same_number(a: &Json, b: &Json) -> bool {
    match (a.as_f64(), b.as_f64()) {
        (Some(x), Some(y)) if a.is_f64() || b.is_f64() => {
            (x - y).abs() <= 1e-6 * x.abs().max(y.abs()).max(1.0)
        }
        _ => a == b,
    }
}

fn same(a: &Json, b: &Json) -> bool {
    match (a, b) {
        (Json::Array(x), Json::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(p, q)| same(p, q))
        }
        (Json::Number(_), Json::Number(_)) => same_number(a, b),
        _ => a == b,
    }
}

/// Our reading of a GGUF in the dump's shape, then every difference from gguf-py's.
fn compare_gguf(path: &Path, theirs: &Json) -> Vec<String> {
    let g = Gguf::read_file(path, &ReadOptions::full()).unwrap();
    let mut diffs = Vec::new();
    let name = path.file_name().unwrap().to_string_lossy().to_string();
    let mut diff = |what: String| diffs.push(format!("{name}: {what}"));
    if theirs["version"] != g.version {
        diff(format!("version {} vs {}", g.version, theirs["version"]));
    }
    let kv = theirs["kv"].as_object().unwrap();
    let ours: Vec<&str> = g.metadata.iter().map(|(k, _)| k).collect();
    let theirs_keys: Vec<&str> = kv.keys().map(String::as_str).collect();
    let mut a = ours.clone();
    let mut b = theirs_keys.clone();
    a.sort();
    b.sort();
    if a != b {
        diff(format!("keys differ: ours {a:?}, gguf-py {b:?}"));
    }
    for (key, value) in g.metadata.iter() {
        let Some(t) = kv.get(key) else { continue };
        let ty = value.value_type().name();
        if t["type"] != ty {
            diff(format!("{key}: type {ty} vs {}", t["type"]));
            continue;
        }
        match value {
            Value::Array(arr) => {
                if t["item_type"] != arr.item_type.name() {
                    diff(format!(
                        "{key}: item type {} vs {}",
                        arr.item_type.name(),
                        t["item_type"]
                    ));
                } else if arr.item_type == rbee_gguf::ValueType::Array {
                    // gguf-py counts the inner items of nested arrays.
                    let inner: u64 = arr
                        .values()
                        .unwrap()
                        .iter()
                        .map(|v| v.as_array().unwrap().len)
                        .sum();
                    if t["len"] != inner {
                        diff(format!("{key}: {inner} nested items vs {}", t["len"]));
                    }
                } else {
                    if t["len"] != arr.len {
                        diff(format!("{key}: length {} vs {}", arr.len, t["len"]));
                    }
                    if !same(&value.to_json(), &t["value"]) {
                        diff(format!("{key}: items differ"));
                    }
                }
            }
            v if !same(&v.to_json(), &t["value"]) => {
                diff(format!("{key}: {} vs {}", v.to_json(), t["value"]));
            }
            _ => {}
        }
    }
    let tensors = theirs["tensors"].as_array().unwrap();
    if tensors.len() != g.tensors.len() {
        diff(format!("{} tensors vs {}", g.tensors.len(), tensors.len()));
    }
    for (t, p) in g.tensors.iter().zip(tensors) {
        let ours = serde_json::json!({
            "name": t.name, "dims": t.dims, "type": t.ggml_type.name(), "offset": t.offset,
            "bytes": t.n_bytes(),
        });
        if &ours != p {
            diff(format!("tensor {ours} vs {p}"));
        }
    }
    if !g.tensors.is_empty() && theirs["data_offset"] != g.data_offset {
        diff(format!(
            "data offset {} vs {}",
            g.data_offset, theirs["data_offset"]
        ));
    }
    diffs
}

#[test]
fn official_writers_and_readers_agree_with_ours() {
    let python = match venv() {
        Ok(p) => p,
        Err(reason) => return skip(&reason),
    };
    let dir = tempfile::tempdir().unwrap();
    python
        .run(python.command().arg(SCRIPT).arg("write").arg(dir.path()))
        .unwrap();
    let ggufs = vec![
        dir.path().join("all-types.gguf"),
        dir.path().join("aligned.gguf"),
    ];
    let theirs = dump(&python, "dump", &ggufs);
    let mut diffs = Vec::new();
    for p in &ggufs {
        diffs.extend(compare_gguf(p, &theirs[p.to_str().unwrap()]));
    }
    assert!(diffs.is_empty(), "{}", diffs.join("\n"));

    // The summary of what we wrote, with known values.
    let i = inspect_local(&ggufs[..1], &ReadOptions::default()).unwrap();
    let ModelSummary::Gguf(s) = &i.summary else {
        panic!()
    };
    assert_eq!(s.name.as_deref(), Some("all types"));
    assert_eq!(s.file_type.as_deref(), Some("Q8_0"));
    assert_eq!(
        (s.layers, s.heads, s.kv_heads, s.context_length),
        (Some(2), Some(4), Some(2), Some(4096))
    );
    assert_eq!(s.parameters, 640 + 4096 + 4096 + 64);
    let i = inspect_local(&ggufs[1..], &ReadOptions::default()).unwrap();
    let ModelSummary::Gguf(s) = &i.summary else {
        panic!()
    };
    assert_eq!(i.ggufs[0].alignment, 64);
    let t = s.tokenizer.as_ref().unwrap();
    assert_eq!((t.vocab_size, t.merges), (3000, Some(2000)));
    assert_eq!(t.bos.as_ref().unwrap().text.as_deref(), Some("tok1"));
    assert_eq!(t.eos.as_ref().unwrap().text.as_deref(), Some("tok2"));
    assert!(i.chat_template().unwrap().contains("messages"));

    // Safetensors written and read by the library.
    let shards = vec![
        dir.path().join("model-00001-of-00002.safetensors"),
        dir.path().join("model-00002-of-00002.safetensors"),
    ];
    let theirs = dump(&python, "dump-st", &shards);
    for p in &shards {
        let ours = read_safetensors_file(p).unwrap();
        let t = &theirs[p.to_str().unwrap()];
        assert_eq!(
            serde_json::json!(ours.metadata),
            t["metadata"],
            "{}",
            p.display()
        );
        let tensors = t["tensors"].as_object().unwrap();
        assert_eq!(tensors.len(), ours.tensors.len());
        for st in &ours.tensors {
            assert_eq!(tensors[&st.name]["dtype"], st.dtype, "{}", st.name);
            assert_eq!(
                tensors[&st.name]["shape"],
                serde_json::json!(st.shape),
                "{}",
                st.name
            );
        }
    }
    let i = inspect_local(&shards, &ReadOptions::default()).unwrap();
    let ModelSummary::Safetensors(s) = &i.summary else {
        panic!()
    };
    assert_eq!(s.parameters, 3200 + 2048 + 32 + 3200 + 2048);
    assert_eq!(s.shards, 2);
}

#[test]
fn llama_cpp_vocabulary_files_read_the_same() {
    let python = match venv() {
        Ok(p) => p,
        Err(reason) => return skip(&reason),
    };
    let files = match vocab_files(&python) {
        Ok(f) => f,
        Err(reason) => return skip(&reason),
    };
    let theirs = dump(&python, "dump", &files);
    let mut diffs = Vec::new();
    for p in &files {
        diffs.extend(compare_gguf(p, &theirs[p.to_str().unwrap()]));
    }
    assert!(diffs.is_empty(), "{}", diffs.join("\n"));
    assert!(files.len() >= 10, "{} vocabulary files", files.len());
}
