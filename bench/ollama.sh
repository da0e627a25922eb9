#!/usr/bin/env bash
# The `ollama:` vendor against the fake hub's Ollama registry, on one model blob (default 1 GiB)
# with a per-connection rate cap (default 25 MB/s):
#   1. pull time, beside rbee's own `hf:` path on the same file (same engine, same cap);
#   2. resume after kill -9 at about half way: bytes fetched again vs. bytes missing;
#   3. a model already in Ollama's store (OLLAMA_MODELS, same file system), by its Ollama name
#      and as the same file's hf: reference: bytes fetched and wall time.
# Each case runs RUNS times (default 3); the tables give medians.
# Writes markdown tables to stdout and bench/work/ollama/result.md (copy them, dated, into
# bench/results/). Not run by CI.
#
# Usage: bench/ollama.sh   (env: SIZE_MIB=1024 CAP=25000000 PROFILE=release|debug RUNS=3)
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
mkdir -p "$WORK/root/ollama/library/bench/1g" "$WORK/root/hf/bench/m" "$WORK/home"
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

RUNS=${RUNS:-3}
. "$ROOT/bench/lib/stats.sh"
ROWS=()
pull() { # LABEL STORE REF [FLAGS…]: RUNS runs, each into a fresh catalog; STORE=fresh empties
    # Ollama's store before each run, otherwise it is the store named
    local label=$1 store=$2 ref=$3
    shift 3
    local times=() cpus=() sent_bytes=() t0 t1
    for run in $(seq "$RUNS"); do
        # Removing a catalog that linked a store blob moves the blob's change time and voids
        # rbee's note on it; store takes (KEEP=1) go to catalogs kept until the end instead.
        local cache=$WORK/cache
        if [ "${KEEP:-}" = 1 ]; then
            cache=$(mktemp -d "$WORK/kept-cache.XXXX")
        else
            rm -rf "$cache"
        fi
        if [ "$store" = fresh ]; then
            rm -rf "$WORK/fresh-store"
            export OLLAMA_MODELS=$WORK/fresh-store
        else
            export OLLAMA_MODELS=$store
        fi
        [ "${FORGET:-}" = 1 ] && forget "$OLLAMA_MODELS"
        reset
        t0=$(now)
        /usr/bin/time -f "%U %S" -o "$WORK/cpu" \
            "$RBEE" --cache-dir "$cache" --quiet model download "$@" "$ref" >/dev/null
        t1=$(now)
        times+=("$(awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.2f", b - a}')")
        cpus+=("$(awk '{printf "%.2f", $1 + $2}' "$WORK/cpu")")
        sent_bytes+=($(( $(sent /files/ollama/library/bench/1g/model.gguf) + $(sent /files/hf/bench/m/model.gguf) )))
        echo "$label, run $run: ${times[-1]} s, ${sent_bytes[-1]} bytes from the hub" >&2
    done
    local t cpu bytes
    t=$(printf '%s\n' "${times[@]}" | median)
    cpu=$(printf '%s\n' "${cpus[@]}" | median)
    bytes=$(printf '%s\n' "${sent_bytes[@]}" | median)
    ROWS+=("| $label | $t s (${times[*]}) | $cpu s | $(awk -v s="$SIZE" -v t="$t" 'BEGIN {printf "%.0f", s/t/1e6}') MB/s | $bytes |")
}

# Placing the result in Ollama's store costs hard links only; it is timed with the pull. The
# hf: pull gets an empty store, or it would take the blob the ollama: pull left there.
pull "ollama:bench:1g (--ollama-store)" fresh ollama:bench:1g --ollama-store
mv "$WORK/fresh-store" "$WORK/ollama-models"
pull "hf:bench/m/model.gguf (same file)" fresh hf:bench/m/model.gguf

# The store the last ollama: pull wrote, read by fresh catalogs: the Ollama name, and the same
# file as an hf: GGUF (taken from the store by its sha256). The first take of a blob hashes it
# (the note rbee leaves on it is removed before each of those runs, as for a blob Ollama
# pulled); later takes find the note.
forget() { # STORE: removes rbee's "verified once" notes from its blobs
    python3 - "$1" <<'PY'
import os, sys
blobs = os.path.join(sys.argv[1], "blobs")
for name in os.listdir(blobs):
    try:
        os.removexattr(os.path.join(blobs, name), "user.rbee.sha256")
    except OSError:
        pass
PY
}
FORGET=1 KEEP=1 pull "ollama:bench:1g, in Ollama's store, first take (hashed)" "$WORK/ollama-models" ollama:bench:1g
FORGET=1 KEEP=1 pull "hf:bench/m/model.gguf, in Ollama's store, first take (hashed)" "$WORK/ollama-models" hf:bench/m/model.gguf
KEEP=1 pull "ollama:bench:1g, in Ollama's store, taken again (noted)" "$WORK/ollama-models" ollama:bench:1g
KEEP=1 pull "hf:bench/m/model.gguf, in Ollama's store, taken again (noted)" "$WORK/ollama-models" hf:bench/m/model.gguf
rm -rf "$WORK"/kept-cache.*

# Resume after kill -9 at about half the blob (an empty store, so the registry is used), for
# ollama: and, on the same file, hf: (the same engine: the figures should match).
export OLLAMA_MODELS=$WORK/empty-store
RESUMES=()
resume() { # LABEL REF SERVED_PATH
    local label=$1 ref=$2 path=$3 cache=$WORK/cache-resume
    rm -rf "$cache"
    reset
    "$RBEE" --cache-dir "$cache" --quiet model download "$ref" >/dev/null 2>&1 &
    local pid=$!
    while [ "$(sent "$path")" -lt $((SIZE / 2)) ] && kill -0 $pid 2>/dev/null; do sleep 0.02; done
    kill -9 $pid 2>/dev/null || true
    wait $pid 2>/dev/null || true
    sleep 1
    local first part kept again missing
    first=$(sent "$path")
    part=$(find "$cache" -name 'model.gguf.part' | head -1)
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
    "$RBEE" --cache-dir "$cache" --quiet model download "$ref" >/dev/null
    again=$(sent "$path")
    missing=$((SIZE - kept))
    echo "resume $label: first run sent $first, kept $kept, missing $missing, fetched again $again" >&2
    RESUMES+=("| $label | $first | $kept | $missing | $again | $((again - missing)) | $((first + again - SIZE)) |")
}
for _ in $(seq "$RUNS"); do
    resume ollama:bench:1g ollama:bench:1g /files/ollama/library/bench/1g/model.gguf
    resume hf:bench/m/model.gguf hf:bench/m/model.gguf /files/hf/bench/m/model.gguf
done

{
    echo "## ollama: vendor, $(date -u +%F), ${SIZE_MIB} MiB blob, $((CAP / 1000000)) MB/s per connection, $PROFILE build"
    echo
    echo "Medians of $RUNS runs (each run in brackets)."
    echo
    echo "| case | wall | CPU (user + sys) | rate | bytes from the hub |"
    echo "|---|---|---|---|---|"
    printf '%s\n' "${ROWS[@]}"
    echo
    echo "Resume after kill -9 (aimed at half; the kill lands when the poll sees it):"
    echo
    echo "| reference | sent before the kill | kept on disk (verified equal) | missing | fetched again | excess over missing | sent twice |"
    echo "|---|---|---|---|---|---|---|"
    printf '%s\n' "${RESUMES[@]}"
} | tee "$WORK/result.md"
