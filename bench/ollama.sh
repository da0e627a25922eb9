#!/usr/bin/env bash
# The `ollama:` vendor against the fake hub's Ollama registry, on one model blob (default 1 GiB)
# with a per-connection rate cap (default 25 MB/s):
#   1. pull time, beside rbee's own `hf:` path on the same file (same engine, same cap);
#   2. resume after kill -9 at about half way: bytes fetched again vs. bytes missing;
#   3. a model already in Ollama's store (OLLAMA_MODELS, same file system): bytes fetched and
#      wall time.
# Writes a markdown table to stdout and bench/results/ollama-<date>.md. Not run by CI.
#
# Usage: bench/ollama.sh   (env: SIZE_MIB=1024 CAP=25000000 PROFILE=release|debug)
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$PWD
WORK=$ROOT/bench/work/ollama
SIZE_MIB=${SIZE_MIB:-1024}
CAP=${CAP:-25000000}
PROFILE=${PROFILE:-release}
SIZE=$((SIZE_MIB << 20))

echo "building $PROFILE binaries" >&2
if [ "$PROFILE" = release ]; then
    cargo build --release -q -p rbee -p rbee-fake-hub
else
    cargo build -q -p rbee -p rbee-fake-hub
fi
RBEE=$ROOT/target/$PROFILE/rbee
HUB_BIN=$ROOT/target/$PROFILE/fake-hub

rm -rf "$WORK"
mkdir -p "$WORK/root/ollama/library/bench/1g" "$WORK/root/hf/bench/m" "$WORK/home" "$ROOT/bench/results"
BLOB=$WORK/root/ollama/library/bench/1g/model.gguf
head -c "$SIZE" /dev/urandom >"$BLOB"
printf '{{ .Prompt }}' >"$WORK/root/ollama/library/bench/1g/template"
ln "$BLOB" "$WORK/root/hf/bench/m/model.gguf"

"$HUB_BIN" --root "$WORK/root" --rate-limit "$CAP" >"$WORK/hub.json" 2>"$WORK/hub.log" &
HUB_PID=$!
trap 'kill $HUB_PID 2>/dev/null || true' EXIT
for _ in $(seq 100); do [ -s "$WORK/hub.json" ] && break; sleep 0.1; done
HUB=$(sed -n 's/.*"hub":"\([^"]*\)".*/\1/p' "$WORK/hub.json")
[ -n "$HUB" ] || { echo "fake-hub did not start: $(cat "$WORK/hub.log")" >&2; exit 1; }

export HOME=$WORK/home OLLAMA_REGISTRY=$HUB HF_ENDPOINT=$HUB OLLAMA_MODELS=$WORK/ollama-models
unset HF_TOKEN RBEE_CACHE_DIR

sent() { # PATH → body bytes the hub sent for it
    curl -s "${HUB}_admin/counters" | python3 -c "import json,sys; print(json.load(sys.stdin)['paths'].get(sys.argv[1], {}).get('bytes_sent', 0))" "$1"
}
reset() { curl -s -X POST "${HUB}_admin/counters/reset" >/dev/null; }
now() { date +%s.%N; }

ROWS=()
pull() { # LABEL CACHE REF [FLAGS…]
    local label=$1 cache=$2 ref=$3
    shift 3
    reset
    local t0 t1
    t0=$(now)
    "$RBEE" --cache-dir "$WORK/$cache" --quiet model download "$@" "$ref" >/dev/null
    t1=$(now)
    local t
    t=$(awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.2f", b - a}')
    local bytes
    bytes=$(( $(sent /files/ollama/library/bench/1g/model.gguf) + $(sent /files/hf/bench/m/model.gguf) ))
    echo "$label: ${t} s, $bytes bytes from the hub" >&2
    ROWS+=("| $label | $t s | $(awk -v s="$SIZE" -v t="$t" 'BEGIN {printf "%.0f", s/t/1e6}') MB/s | $bytes |")
}

# Placing the result in Ollama's store costs hard links only; it is timed with the pull.
pull "ollama:bench:1g (--ollama-store)" cache-ollama ollama:bench:1g --ollama-store
pull "hf:bench/m/model.gguf (same file)" cache-hf hf:bench/m/model.gguf

# Resume after kill -9 at about half the blob (an empty store, so the registry is used), for
# ollama: and, on the same file, hf: (the same engine: the figures should match).
export OLLAMA_MODELS=$WORK/empty-store
RESUMES=()
resume() { # LABEL REF SERVED_PATH CACHE
    local label=$1 ref=$2 path=$3 cache=$4
    reset
    "$RBEE" --cache-dir "$WORK/$cache" --quiet model download "$ref" >/dev/null 2>&1 &
    local pid=$!
    while [ "$(sent "$path")" -lt $((SIZE / 2)) ] && kill -0 $pid 2>/dev/null; do sleep 0.02; done
    kill -9 $pid 2>/dev/null || true
    wait $pid 2>/dev/null || true
    sleep 1
    local first part kept again missing
    first=$(sent "$path")
    part=$(find "$WORK/$cache" -name 'model.gguf.part' | head -1)
    kept=$(python3 - "$part" "$BLOB" <<'PY'
import sys
part, src = sys.argv[1:3]
kept = 0
with open(part, "rb") as a, open(src, "rb") as b:
    while True:
        x, y = a.read(1 << 20), b.read(1 << 20)
        if not x:
            break
        for i in range(0, len(x), 4096):
            blk = x[i:i + 4096]
            if blk == y[i:i + 4096] and blk.strip(b"\0"):
                kept += len(blk)
print(kept)
PY
)
    reset
    "$RBEE" --cache-dir "$WORK/$cache" --quiet model download "$ref" >/dev/null
    again=$(sent "$path")
    missing=$((SIZE - kept))
    echo "resume $label: first run sent $first, kept $kept, missing $missing, fetched again $again" >&2
    RESUMES+=("| $label | $first | $kept | $missing | $again | $((again - missing)) |")
}
resume ollama:bench:1g ollama:bench:1g /files/ollama/library/bench/1g/model.gguf cache-resume-ollama
resume hf:bench/m/model.gguf hf:bench/m/model.gguf /files/hf/bench/m/model.gguf cache-resume-hf

# A fresh catalog provisioned from the store the first pull wrote.
export OLLAMA_MODELS=$WORK/ollama-models
pull "already in Ollama's store" cache-from-store ollama:bench:1g

{
    echo "## ollama: vendor, $(date -u +%F), ${SIZE_MIB} MiB blob, $((CAP / 1000000)) MB/s per connection, $PROFILE build"
    echo
    echo "| case | wall | rate | bytes from the hub |"
    echo "|---|---|---|---|"
    printf '%s\n' "${ROWS[@]}"
    echo
    echo "Resume after kill -9 (aimed at half; the kill lands when the poll sees it):"
    echo
    echo "| reference | sent before the kill | kept on disk (verified equal) | missing | fetched again | excess |"
    echo "|---|---|---|---|---|---|"
    printf '%s\n' "${RESUMES[@]}"
} | tee "$ROOT/bench/results/ollama-$(date -u +%F).md"
