//! Writes a GGUF with the metadata of a vocabulary file and the tensor layout of Llama 3 8B in
//! Q4_K_M (data as a sparse hole), for benchmarks of remote header reading.
//!
//! `cargo run --example model_shaped -- VOCAB.gguf OUT.gguf`

use std::path::PathBuf;

use rbee_gguf::{GgmlType, Gguf, GgufWriter, ReadOptions, Value};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<PathBuf> = std::env::args_os().skip(1).map(PathBuf::from).collect();
    let [vocab, out] = &args[..] else {
        return Err("usage: model_shaped VOCAB.gguf OUT.gguf".into());
    };
    let source = Gguf::read_file(vocab, &ReadOptions::full())?;
    let mut w = GgufWriter::new();
    for (k, v) in source.metadata.iter() {
        w = w.kv(k, v.clone());
    }
    let arch = source
        .metadata
        .str("general.architecture")
        .unwrap_or("llama")
        .to_string();
    let set = |w: GgufWriter, k: &str, v: u32| {
        if source.metadata.get(&format!("{arch}.{k}")).is_some() {
            w
        } else {
            w.kv(format!("{arch}.{k}"), Value::U32(v))
        }
    };
    w = set(w, "block_count", 32);
    w = set(w, "embedding_length", 4096);
    w = set(w, "feed_forward_length", 14336);
    w = set(w, "attention.head_count", 32);
    w = set(w, "attention.head_count_kv", 8);
    w = set(w, "context_length", 8192);
    let vocab_len = source
        .metadata
        .array("tokenizer.ggml.tokens")
        .map_or(32000, |a| a.len);
    let (q4k, q6k) = (GgmlType(12), GgmlType(14));
    w = w.tensor("token_embd.weight", &[4096, vocab_len], q4k);
    for i in 0..32 {
        for (name, dims, t) in [
            ("attn_norm", vec![4096], GgmlType::F32),
            ("attn_q", vec![4096, 4096], q4k),
            ("attn_k", vec![4096, 1024], q4k),
            ("attn_v", vec![4096, 1024], q6k),
            ("attn_output", vec![4096, 4096], q4k),
            ("ffn_norm", vec![4096], GgmlType::F32),
            ("ffn_gate", vec![4096, 14336], q4k),
            ("ffn_up", vec![4096, 14336], q4k),
            ("ffn_down", vec![14336, 4096], q6k),
        ] {
            w = w.tensor(format!("blk.{i}.{name}.weight"), &dims, t);
        }
    }
    w = w
        .tensor("output_norm.weight", &[4096], GgmlType::F32)
        .tensor("output.weight", &[4096, vocab_len], q6k);
    w.write_to(out)?;
    Ok(())
}
