#!/usr/bin/env bash
# Remote header reading: `rbee model inspect` against @huggingface/gguf (npm) on the same files
# served by the fake hub — range requests, bytes and wall time per file.
# Not run by CI. Usage: bench/inspect.sh   (env: RUNS=3)
#
# Files: llama.cpp's vocabulary GGUFs (from the llama-cpp-python sdist, cached by the Python
# fixture test under target/tmp/py-fixtures/vocab, else fetched with pip here) and model-shaped
# files built from them (Llama 3 8B's tensor layout in Q4_K_M, data as a sparse hole). Writes a
# markdown table to stdout and to bench/results/inspect-<date>.md. Installs @huggingface/gguf
# under bench/work/node with npm.
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$PWD
WORK=$ROOT/bench/work/inspect
RUNS=${RUNS:-3}
REPO=$WORK/root/hf/bench/files
mkdir -p "$WORK" "$REPO" "$ROOT/bench/results"

VOCAB=$ROOT/target/tmp/py-fixtures/vocab
if ! ls "$VOCAB"/ggml-vocab-*.gguf >/dev/null 2>&1; then
    echo "fetching llama.cpp's vocabulary files from the llama-cpp-python sdist" >&2
    VOCAB=$WORK/vocab
    mkdir -p "$VOCAB" "$WORK/sdist"
    python3 -m pip download --quiet --no-deps --no-binary llama-cpp-python llama-cpp-python -d "$WORK/sdist"
    tar xzf "$WORK"/sdist/*.tar.gz -C "$VOCAB" --wildcards --strip-components=4 \
        '*/vendor/llama.cpp/models/ggml-vocab-*.gguf'
fi

if [ ! -f "$WORK/node/node_modules/@huggingface/gguf/package.json" ]; then
    echo "installing @huggingface/gguf with npm" >&2
    mkdir -p "$WORK/node"
    (cd "$WORK/node" && npm init -y >/dev/null && npm install --silent --no-audit --no-fund @huggingface/gguf >/dev/null)
fi
cat >"$WORK/node/read.mjs" <<'JS'
import { gguf } from "@huggingface/gguf";
const { metadata, tensorInfos } = await gguf(process.argv[2]);
console.log(JSON.stringify({ keys: Object.keys(metadata).length, tensors: tensorInfos.length }));
JS

echo "building release binaries" >&2
cargo build --release -q -p rbee -p rbee-fake-hub
cargo build --release -q -p rbee-gguf --example model_shaped
RBEE=$ROOT/target/release/rbee
HUB_BIN=$ROOT/target/release/fake-hub
SHAPE=$ROOT/target/release/examples/model_shaped

FILES=()
for v in llama-spm qwen2 llama-bpe command-r gemma-4; do
    src=$VOCAB/ggml-vocab-$v.gguf
    [ -f "$src" ] || continue
    cp "$src" "$REPO/vocab-$v.gguf"
    FILES+=("vocab-$v.gguf")
    [ -f "$REPO/model-$v.gguf" ] || "$SHAPE" "$src" "$REPO/model-$v.gguf"
    FILES+=("model-$v.gguf")
done

"$HUB_BIN" --root "$WORK/root" >"$WORK/hub.json" 2>"$WORK/hub.log" &
HUB_PID=$!
trap 'kill $HUB_PID 2>/dev/null || true' EXIT
for _ in $(seq 50); do [ -s "$WORK/hub.json" ] && break; sleep 0.1; done
HUB=$(sed -n 's/.*"hub":"\([^"]*\)".*/\1/p' "$WORK/hub.json")
[ -n "$HUB" ] || { echo "fake-hub did not start: $(cat "$WORK/hub.log")" >&2; exit 1; }

reset_counters() { curl -sf -X POST "${HUB}_admin/counters/reset" >/dev/null; }
# counters PATH: "requests bytes" served for a file path
counters() {
    curl -sf "${HUB}_admin/counters" | python3 -c "import json,sys; c=json.load(sys.stdin)['paths'].get('$1',{}); print(c.get('requests',0), c.get('bytes_sent',0))"
}
header_len() { # FILE: bytes of its header (magic to the end of the tensor infos)
    "$RBEE" --json model inspect "file:$1" --vram 1GiB | python3 -c "import json,sys; print(json.load(sys.stdin)['files'][0]['header_bytes'])"
}
. "$ROOT/bench/lib/stats.sh"
now() { date +%s.%N; }

ROWS=()
for f in "${FILES[@]}"; do
    size=$(stat -c %s "$REPO/$f")
    header=$(header_len "$REPO/$f")
    for tool in rbee hf-gguf; do
        times=()
        for _ in $(seq "$RUNS"); do
            reset_counters
            start=$(now)
            case $tool in
            rbee)
                HOME=$WORK/home HF_HOME=$WORK/hf-home HF_ENDPOINT=$HUB \
                    "$RBEE" --json model inspect "hf:bench/files/$f" --vram 24GiB >"$WORK/out.json" ;;
            hf-gguf)
                node "$WORK/node/read.mjs" "${HUB}bench/files/resolve/main/$f" >"$WORK/out.json" ;;
            esac
            end=$(now)
            times+=("$(awk -v a="$start" -v b="$end" 'BEGIN {printf "%.3f", b-a}')")
            read -r requests bytes < <(counters "/files/hf/bench/files/$f")
        done
        t=$(printf '%s\n' "${times[@]}" | median)
        row="| $f | $(numfmt --to=iec-i --suffix=B "$size") | $(numfmt --to=iec-i --suffix=B "$header") | $tool | $requests | $(numfmt --to=iec-i --suffix=B "$bytes") | $(awk -v b="$bytes" -v h="$header" 'BEGIN {printf "%+.0f KiB", (b-h)/1024}') | $t s |"
        echo "$row" >&2
        ROWS+=("$row")
    done
done

RESULT=$ROOT/bench/results/inspect-$(date +%F).md
{
    echo "# Remote header reading, $(date +%F)"
    echo
    echo "fake hub on loopback; range requests and body bytes are the CDN's counters for the file;"
    echo "rbee's time includes resolving the reference (one API call); median of $RUNS runs."
    echo
    echo "| file | size | header | tool | range requests | bytes read | over the header | time |"
    echo "|---|---|---|---|---|---|---|---|"
    printf '%s\n' "${ROWS[@]}"
} | tee "$RESULT"
