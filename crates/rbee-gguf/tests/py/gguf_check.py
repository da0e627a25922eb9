"""Fixtures and reference dumps from the official readers, for comparison with rbee-gguf.

    python gguf_check.py write DIR      writes GGUF and safetensors fixtures into DIR
    python gguf_check.py dump FILE...   prints what gguf-py's GGUFReader reads, as JSON
    python gguf_check.py dump-st FILE... prints what the safetensors library reads, as JSON
"""

import json
import math
import sys

import numpy as np
import gguf
from gguf import GGUFReader, GGUFValueType, GGMLQuantizationType

VALUE_NAMES = {
    GGUFValueType.UINT8: "u8", GGUFValueType.INT8: "i8", GGUFValueType.UINT16: "u16",
    GGUFValueType.INT16: "i16", GGUFValueType.UINT32: "u32", GGUFValueType.INT32: "i32",
    GGUFValueType.FLOAT32: "f32", GGUFValueType.BOOL: "bool", GGUFValueType.STRING: "string",
    GGUFValueType.ARRAY: "array", GGUFValueType.UINT64: "u64", GGUFValueType.INT64: "i64",
    GGUFValueType.FLOAT64: "f64",
}


def write(out):
    w = gguf.GGUFWriter(f"{out}/all-types.gguf", arch="llama")
    w.add_uint8("t.u8", 200)
    w.add_int8("t.i8", -100)
    w.add_uint16("t.u16", 60000)
    w.add_int16("t.i16", -30000)
    w.add_uint32("t.u32", 4000000000)
    w.add_int32("t.i32", -2000000000)
    w.add_float32("t.f32", 3.25)
    w.add_uint64("t.u64", 2**63 + 5)
    w.add_int64("t.i64", -(2**62))
    w.add_float64("t.f64", math.pi)
    w.add_bool("t.bool", True)
    w.add_string("t.string", "héllo, wörld ✓")
    w.add_string("t.empty", "")
    w.add_array("t.ints", [1, 2, 3, 70000])
    w.add_array("t.floats", [0.5, -1.25])
    w.add_array("t.strings", ["a", "", "ünï"])
    w.add_array("t.bools", [True, False, True])
    w.add_array("t.nested", [[1, 2], [3, 4, 5]])
    w.add_name("all types")
    w.add_block_count(2)
    w.add_context_length(4096)
    w.add_embedding_length(64)
    w.add_head_count(4)
    w.add_head_count_kv(2)
    w.add_file_type(7)
    w.add_tensor("token_embd.weight", np.zeros((10, 64), dtype=np.float16))
    w.add_tensor("blk.0.attn_q.weight", np.zeros((64, 64), dtype=np.float32))
    # Q8_0: 64 values per row in 2 blocks of 34 bytes.
    w.add_tensor("blk.1.attn_q.weight", np.zeros((64, 68), dtype=np.uint8),
                 raw_dtype=GGMLQuantizationType.Q8_0)
    w.add_tensor("output_norm.weight", np.ones((64,), dtype=np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()

    w = gguf.GGUFWriter(f"{out}/aligned.gguf", arch="qwen2")
    w.add_custom_alignment(64)
    w.add_block_count(1)
    w.add_tokenizer_model("gpt2")
    w.add_token_list([f"tok{i}" for i in range(3000)])
    w.add_token_merges([f"t o{i}" for i in range(2000)])
    w.add_bos_token_id(1)
    w.add_eos_token_id(2)
    w.add_chat_template("{% for m in messages %}{{ m.content }}{% endfor %}")
    w.add_tensor("blk.0.ffn_up.weight", np.zeros((3, 96), dtype=np.float32))
    w.add_tensor("blk.0.ffn_down.weight", np.zeros((5, 32), dtype=np.float16))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()

    from safetensors.numpy import save_file
    save_file(
        {
            "model.embed_tokens.weight": np.zeros((100, 32), dtype=np.float16),
            "model.layers.0.mlp.up_proj.weight": np.zeros((64, 32), dtype=np.float32),
            "model.norm.weight": np.zeros((32,), dtype=np.int8),
        },
        f"{out}/model-00001-of-00002.safetensors",
        metadata={"format": "pt", "note": "fixture"},
    )
    save_file(
        {"lm_head.weight": np.zeros((100, 32), dtype=np.float16),
         "model.layers.1.mlp.up_proj.weight": np.zeros((64, 32), dtype=np.float64)},
        f"{out}/model-00002-of-00002.safetensors",
    )
    print("OK")


def scalar(part, vtype):
    if vtype == GGUFValueType.STRING:
        return bytes(part).decode("utf-8", errors="replace")
    v = part.tolist()[0]
    if vtype == GGUFValueType.BOOL:
        return bool(v)
    return v


def dump_field(field):
    vtype = field.types[0]
    if vtype != GGUFValueType.ARRAY:
        return {"type": VALUE_NAMES[vtype], "value": scalar(field.parts[field.data[0]], vtype)}
    item = field.types[1] if len(field.types) > 1 else None
    if item is None or item == GGUFValueType.ARRAY:
        # gguf-py does not decode nested arrays; compare their length only.
        return {"type": "array", "item_type": "array", "len": len(field.data)}
    return {
        "type": "array",
        "item_type": VALUE_NAMES[item],
        "len": len(field.data),
        "value": [scalar(field.parts[i], item) for i in field.data],
    }


def dump(path):
    r = GGUFReader(path)
    kv = {}
    version = None
    for name, field in r.fields.items():
        if name == "GGUF.version":
            version = int(field.parts[field.data[0]][0])
            continue
        if name.startswith("GGUF."):
            continue
        kv[name] = dump_field(field)
    tensors = [
        {
            "name": t.name,
            "dims": [int(d) for d in t.shape],
            "type": t.tensor_type.name,
            "offset": int(t.data_offset - r.data_offset),
            "bytes": int(t.n_bytes),
        }
        for t in r.tensors
    ]
    return {"version": version, "kv": kv, "tensors": tensors, "data_offset": int(r.data_offset)}


def dump_st(path):
    from safetensors import safe_open
    out = {}
    with safe_open(path, framework="numpy") as f:
        out["metadata"] = f.metadata() or {}
        tensors = {}
        for k in f.keys():
            s = f.get_slice(k)
            tensors[k] = {"dtype": s.get_dtype(), "shape": list(s.get_shape())}
        out["tensors"] = tensors
    return out


if __name__ == "__main__":
    cmd, args = sys.argv[1], sys.argv[2:]
    if cmd == "write":
        write(args[0])
    elif cmd == "dump":
        print(json.dumps({p: dump(p) for p in args}))
    elif cmd == "dump-st":
        print(json.dumps({p: dump_st(p) for p in args}))
    else:
        sys.exit(f"unknown command {cmd}")
