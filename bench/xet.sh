#!/usr/bin/env bash
# rbee's native Xet downloads against its own bridge (the plain resolve URL, `--no-xet`) and
# against the real huggingface_hub + hf_xet, all on one fake hub speaking Xet, in one run:
#
#   1. one file (random bytes): wall time, peak RSS and the bytes the fake sent (xorbs and
#      bridge, from its counters) for rbee over Xet, rbee --no-xet, huggingface_hub + hf_xet
#      and huggingface_hub with HF_HUB_DISABLE_XET=1 (targets: Xet >= 0.9 x the bridge's
#      speed, RSS <= 128 MiB)
#   2. a second revision with about 10% of its chunks changed, fetched after the first into
#      the same cache: bytes fetched for it (target <= 15% of the file)
#   3. kill -9 at about half way, then the same command again: what the second run fetches
#
# Usage: bench/xet.sh   (env: SIZE_MIB=1024 RUNS=3 CASES="speed revision kill" SKIP_BUILD=0
#                        WORK=bench/work/xet)
#
# Writes a markdown table to bench/results/xet-<date>.md. Files, caches and the venv
# (huggingface_hub and hf_xet from PyPI, reused) live in bench/work/ (git-ignored). Not run by CI.
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$PWD
WORK=${WORK:-$ROOT/bench/work/xet}
SIZE_MIB=${SIZE_MIB:-1024}
RUNS=${RUNS:-3}
CASES=${CASES:-"speed revision kill"}
SIZE=$((SIZE_MIB << 20))
OUT=$WORK/out
DATE=$(date -u +%F)
RESULT_MD=${RESULT_MD:-$ROOT/bench/results/xet-$DATE.md}
want() { [[ " $CASES " == *" $1 "* ]]; }
mkdir -p "$WORK/home" "$OUT" "$ROOT/bench/results"
# Nothing here may touch the real HOME or ~/.cache; the build still finds the toolchain.
export RUSTUP_HOME=${RUSTUP_HOME:-$HOME/.rustup} CARGO_HOME=${CARGO_HOME:-$HOME/.cargo}
export HOME=$WORK/home XDG_CACHE_HOME=$WORK/home/.cache

[ -x /usr/bin/time ] || {
    echo "installing GNU time with apt" >&2
    apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq time >/dev/null
}
VENV=$ROOT/bench/work/xet-venv
if ! "$VENV/bin/python" -c 'import hf_xet, huggingface_hub' 2>/dev/null; then
    echo "installing huggingface_hub and hf_xet into $VENV" >&2
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install -q huggingface_hub hf_xet
fi
PY=$VENV/bin/python
HF_VERSIONS=$("$PY" -c 'import importlib.metadata as m; print(", ".join(p + " " + m.version(p) for p in ("huggingface_hub", "hf_xet")))')

if [ "${SKIP_BUILD:-0}" != 1 ]; then
    echo "building release binaries" >&2
    CARGO_INCREMENTAL=0 cargo build --release -q -p rbee -p rbee-fake-hub --bins --example mutate-chunks
fi
RBEE=$ROOT/target/release/rbee
HUB_BIN=$ROOT/target/release/fake-hub
MUTATE=$ROOT/target/release/examples/mutate-chunks

# The file on `main`, and on `v2` the same with about 10% of its Xet chunks changed.
REPO_DIR=$WORK/files/hf/bench/xet
MAIN=$REPO_DIR/model.gguf
V2=$REPO_DIR/.revisions/v2/model.gguf
if [ ! -f "$MAIN" ] || [ "$(stat -c %s "$MAIN")" -ne "$SIZE" ] || [ ! -f "$V2" ]; then
    echo "making a $SIZE_MIB MiB file and its 10%-changed revision" >&2
    rm -rf "$REPO_DIR"
    mkdir -p "$(dirname "$V2")"
    # Random bytes, so nothing along the way can take a shortcut on zeros.
    head -c "$SIZE" /dev/urandom >"$MAIN"
    "$MUTATE" "$MAIN" "$V2" 0.10 0
fi

rm -f "$WORK/hub.json" # a previous run's would be read before this one truncates it
"$HUB_BIN" --root "$WORK/files" --xet >"$WORK/hub.json" 2>"$WORK/hub.log" &
HUB_PID=$!
trap 'kill $HUB_PID 2>/dev/null || true' EXIT
for _ in $(seq 100); do [ -s "$WORK/hub.json" ] && break; sleep 0.1; done
HUB=$(sed -n 's/.*"hub":"\([^"]*\)".*/\1/p' "$WORK/hub.json")
XORBS=$(sed -n 's/.*"xorbs":"\([^"]*\)".*/\1/p' "$WORK/hub.json")
[ -n "$HUB" ] || { echo "fake-hub did not start: $(cat "$WORK/hub.log")" >&2; exit 1; }
ENDPOINT=${HUB%/}
export HF_ENDPOINT=$ENDPOINT HF_HUB_DISABLE_TELEMETRY=1 NO_PROXY='*'
unset HF_TOKEN HF_HUB_DISABLE_XET

# The fake cuts and packs a file into xorbs when it is first resolved: do that before timing.
echo "warm-up: the fake hub packs both revisions into xorbs" >&2
t0=$(date +%s.%N)
for rev in main v2; do
    curl -sf -o /dev/null -I "$ENDPOINT/bench/xet/resolve/$rev/model.gguf"
done
PACK_S=$(python3 -c "import time; print(f'{time.time() - $t0:.1f}')")
cat "$MAIN" "$V2" >/dev/null # in the page cache, as the bridge serves them

reset_counters() { curl -sf -X POST "${HUB}_admin/counters/reset" >/dev/null; }
# Prints "xorb_bytes bridge_bytes reconstructions": what the fake sent since the last reset.
xet_bytes() {
    curl -sf "${HUB}_admin/counters/xet" | python3 -c 'import json, sys
c = json.load(sys.stdin)
print(sum(c["xorb_bytes"].values()), c["bridge_bytes"], c["reconstructions_v1"] + c["reconstructions_v2"])'
}

# The commands, each downloading REF (rbee) or REV (huggingface_hub) into $OUT.
rbee_get() { # REF [FLAGS...]
    local ref=$1
    shift
    "$RBEE" --cache-dir "$OUT/cache" --quiet model download "$@" "$ref"
}
rbee_get_uncached() { # REF [FLAGS...]
    RBEE_XET_CACHE=off rbee_get "$@"
}
# huggingface_hub as its users call it; hf_xet does the Xet part when installed.
hf_get() { # REV
    HF_HOME=$OUT/.hf "$PY" -c 'import sys
from huggingface_hub import hf_hub_download
hf_hub_download("bench/xet", "model.gguf", revision=sys.argv[1])' "$1"
}
hf_get_bridge() { # REV
    HF_HUB_DISABLE_XET=1 hf_get "$1"
}
export -f rbee_get rbee_get_uncached hf_get hf_get_bridge
export RBEE OUT PY

clear_out() { rm -rf "${OUT:?}"/* "$OUT"/.[!.]* 2>/dev/null || true; }
# What the fake serves from (xet: its xorbs; bridge: the file), read into the page cache, as a
# real CAS or CDN keeps it on its own machines: the other tools' gigabytes would otherwise push
# it out, and the next tool would be timed reading the fake's disk.
warm() { # xet | bridge
    case $1 in
        bridge) cat "$MAIN" >/dev/null ;;
        *) find "$XORBS" -type f -exec cat {} + >/dev/null ;;
    esac
}
# measure CMD... : prints "wall max_rss_kib cpu_s xorb_bytes bridge_bytes reconstructions";
# the caller clears $OUT or not.
measure() {
    sync
    reset_counters
    # Through bash, which runs the exported functions; time reports the largest RSS below it.
    if ! /usr/bin/time -f "%e %M %U %S" -o "$WORK/time.txt" bash -c '"$@"' _ "$@" >/dev/null 2>"$WORK/cmd.log"; then
        echo "failed: $* ($(tail -3 "$WORK/cmd.log"))" >&2
        echo "nan 0 nan 0 0 0"
        return
    fi
    echo "$(awk '{printf "%s %s %.2f", $1, $2, $3 + $4}' "$WORK/time.txt") $(xet_bytes)"
}
. "$ROOT/bench/lib/stats.sh"

LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
ROWS=()

if want speed; then
    # The tools take turns within each run, so load from the rest of the machine falls on all.
    TOOLS=("rbee over Xet" "rbee over Xet, RBEE_XET_CACHE=off" "rbee --no-xet (bridge)" "huggingface_hub + hf_xet" "huggingface_hub, HF_HUB_DISABLE_XET=1")
    declare -A T M C X B
    for run in $(seq "$RUNS"); do
        # Each run starts with the next tool, and every other run goes backwards, so that no
        # tool is always timed right after the same one (after the Python tools' gigabytes).
        n=${#TOOLS[@]}
        for k in "${!TOOLS[@]}"; do
            if ((run % 2)); then at=$(((run - 1 + k) % n)); else at=$(((run - 1 + n - k) % n)); fi
            tool=${TOOLS[$at]}
            clear_out
            case $tool in
                "rbee over Xet") cmd=(rbee_get hf:bench/xet/model.gguf) ;;
                # Without the chunk cache: the share of the time spent keeping chunks.
                "rbee over Xet, RBEE_XET_CACHE=off") cmd=(rbee_get_uncached hf:bench/xet/model.gguf) ;;
                "rbee --no-xet (bridge)") cmd=(rbee_get hf:bench/xet/model.gguf --no-xet) ;;
                "huggingface_hub + hf_xet") cmd=(hf_get main) ;;
                *) cmd=(hf_get_bridge main) ;;
            esac
            case $tool in
                *bridge* | *DISABLE_XET*) warm bridge ;;
                *) warm xet ;;
            esac
            read -r t m c x b r < <(measure "${cmd[@]}")
            echo "run $run | $tool | $t s | $((m / 1024)) MiB | xorb $x B, bridge $b B, $r reconstructions" >&2
            T[$tool]+="$t "
            M[$tool]+="$m "
            C[$tool]+="$c "
            X[$tool]+="$x "
            B[$tool]+="$b "
        done
    done
    for tool in "${TOOLS[@]}"; do
        # shellcheck disable=SC2086 # the lists are space-separated numbers
        ROWS+=("$tool|$(printf '%s\n' ${T[$tool]} | median)|$(printf '%s\n' ${M[$tool]} | sort -g | tail -1)|$(printf '%s\n' ${C[$tool]} | median)|$(printf '%s\n' ${X[$tool]} | sort -g | tail -1)|$(printf '%s\n' ${B[$tool]} | sort -g | tail -1)|${T[$tool]}")
    done
fi

REVISION=()
if want revision; then
    # main, then v2 into the same cache: the bytes the second download made the fake send.
    for tool in "rbee over Xet" "huggingface_hub + hf_xet"; do
        clear_out
        case $tool in
            "rbee over Xet") first=(rbee_get hf:bench/xet/model.gguf) second=(rbee_get hf:bench/xet@v2/model.gguf) ;;
            *) first=(hf_get main) second=(hf_get v2) ;;
        esac
        warm xet
        read -r _ _ _ x1 b1 _ < <(measure "${first[@]}")
        warm xet
        read -r t m _ x b r < <(measure "${second[@]}")
        share=$(python3 -c "print(f'{($x + $b) * 100 / $SIZE:.1f}')")
        echo "revision | $tool | first $x1 + $b1 B | second $x + $b B = $share% | $t s" >&2
        REVISION+=("$tool|$((x1 + b1))|$x|$b|$share|$t|$((m / 1024))")
    done
fi

KILL=()
if want kill; then
    # kill -9 when the fake has sent about half the file, wait for its counters to settle,
    # then the same command to the end: what the second run fetched, and whether the file is right.
    for tool in "rbee over Xet" "rbee --no-xet (bridge)" "huggingface_hub + hf_xet"; do
        clear_out
        case $tool in
            "rbee over Xet") cmd=(rbee_get hf:bench/xet/model.gguf) ;;
            "rbee --no-xet (bridge)") cmd=(rbee_get hf:bench/xet/model.gguf --no-xet) ;;
            *) cmd=(hf_get main) ;;
        esac
        line=$("$PY" - "$HUB" "$SIZE" "$OUT" "$MAIN" bash -c '"$@"' _ "${cmd[@]}" <<'PY'
import hashlib, json, os, signal, subprocess, sys, time, urllib.request
hub, size, out, source, cmd = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5:]
def sent():
    with urllib.request.urlopen(hub + "_admin/counters/xet") as r:
        c = json.load(r)
    return sum(c["xorb_bytes"].values()) + c["bridge_bytes"]
def reset():
    urllib.request.urlopen(urllib.request.Request(hub + "_admin/counters/reset", method="POST")).read()
def settled():
    last = sent()
    while True:
        time.sleep(0.3)
        now = sent()
        if now == last:
            return now
        last = now
def files():
    # Every regular file under $OUT, hidden folders (huggingface_hub's .hf) included.
    for d, _, names in os.walk(out):
        for n in names:
            p = os.path.join(d, n)
            if os.path.isfile(p) and not os.path.islink(p):
                yield p
def partial():
    # Whatever the tool left after the kill: .part, .incomplete, chunk caches.
    return sum(os.path.getsize(p) for p in files())
def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for b in iter(lambda: f.read(1 << 20), b""):
            h.update(b)
    return h.hexdigest()
reset()
p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
while sent() < size // 2 and p.poll() is None:
    time.sleep(0.002)
os.killpg(p.pid, signal.SIGKILL)
p.wait()
first = settled()
left = partial()
reset()
t0 = time.time()
ok = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode == 0
secs = time.time() - t0
second = settled()
want = sha256(source)
# The finished file, wherever the tool put it (rbee's catalog, huggingface_hub's blobs).
right = any(sha256(p) == want for p in files() if os.path.getsize(p) == size)
print(f"{first}|{left}|{second}|{secs:.1f}|{'yes' if ok else 'no'}|{'yes' if right else 'no'}")
PY
)
        echo "kill -9 | $tool | $line" >&2
        KILL+=("$tool|$line")
    done
fi

LOAD_END=$(cut -d' ' -f1-3 /proc/loadavg)

mib() { python3 -c "print(f'{$1 / 1048576:.0f}')"; }
{
    echo "# Native Xet benchmark $DATE"
    echo
    echo "Command: \`SIZE_MIB=$SIZE_MIB RUNS=$RUNS CASES=\"$CASES\" bench/xet.sh\`. Machine: $(nproc) cores, $(free -g | awk '/Mem/ {print $2}') GiB, shared with other work: load average $LOAD_START at the start, $LOAD_END at the end. fake-hub on loopback with \`--xet\` (64 MiB xorbs; packing both revisions took $PACK_S s before timing); $HF_VERSIONS."
    echo "One $SIZE_MIB MiB file of random bytes (\`bench/xet/model.gguf\`); revision \`v2\` is the same with about 10% of its Xet chunks changed (\`mutate-chunks\`, as the tests make it). Bytes are what the fake sent (\`/_admin/counters/xet\`): xorb bytes for Xet, bridge bytes for the plain resolve URL."
    if [ ${#ROWS[@]} -gt 0 ]; then
        echo
        echo "Median wall and CPU (user + system) of $RUNS runs, the tools taking turns in each run, each run starting with the next and every other run going backwards; peak RSS and bytes: the largest of the runs. rbee verifies SHA-256 and fsyncs; its chunk cache (in its cache folder) is on, as by default. Before each timed run, what the fake serves it from (its xorbs, or the file for the bridge) is read into the page cache."
        echo
        echo "| tool | wall (s) | MB/s | ÷ rbee bridge wall | peak RSS (MiB) | CPU (s) | xorb MiB | bridge MiB | runs (s) |"
        echo "|---|---:|---:|---:|---:|---:|---:|---:|---|"
        bridge=""
        for r in "${ROWS[@]}"; do
            IFS='|' read -r tool t _ _ _ _ _ <<<"$r"
            [ "$tool" = "rbee --no-xet (bridge)" ] && bridge=$t
        done
        for r in "${ROWS[@]}"; do
            IFS='|' read -r tool t m c x b runs <<<"$r"
            ratio=$(awk -v a="$bridge" -v b="$t" 'BEGIN { if (a > 0 && b > 0) printf "%.2f", b / a; else print "-" }')
            mbs=$(awk -v s="$SIZE" -v t="$t" 'BEGIN { if (t > 0) printf "%.0f", s / t / 1e6; else print "-" }')
            echo "| $tool | $t | $mbs | $ratio | $((m / 1024)) | $c | $(mib "$x") | $(mib "$b") | ${runs% } |"
        done
    fi
    if [ ${#REVISION[@]} -gt 0 ]; then
        echo
        echo "Revision with 10% changed chunks, fetched after \`main\` into the same cache (one run each):"
        echo
        echo "| tool | main: bytes sent | v2: xorb bytes | v2: bridge bytes | v2: % of the file | v2 wall (s) | v2 peak RSS (MiB) |"
        echo "|---|---:|---:|---:|---:|---:|---:|"
        for r in "${REVISION[@]}"; do
            IFS='|' read -r tool a x b share t m <<<"$r"
            echo "| $tool | $a | $x | $b | $share | $t | $m |"
        done
    fi
    if [ ${#KILL[@]} -gt 0 ]; then
        echo
        echo "kill -9 (the process group) once the fake had sent half the file, then the same command again (one run each); \"left on disk\" is every file in the tool's folders after the kill (partial file, chunk cache):"
        echo
        echo "| tool | sent before the kill | left on disk | second run: bytes sent | second run (s) | succeeded | file right |"
        echo "|---|---:|---:|---:|---:|---|---|"
        for r in "${KILL[@]}"; do
            IFS='|' read -r tool first left second secs ok right <<<"$r"
            echo "| $tool | $first | $left | $second | $secs | $ok | $right |"
        done
    fi
    true
} | tee "$RESULT_MD"
