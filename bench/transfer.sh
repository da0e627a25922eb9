#!/usr/bin/env bash
# Times `rbee` against the machine's limits and its peers on files served by the fake hub, all in
# one run: loopback to /dev/null, `dd conv=fdatasync` and sha256 (the limits); curl,
# `curl && sync`, aria2c -x16, the hf-hub crate (bench/hf-hub-driver), huggingface_hub with
# hf_transfer and `hf download` (a venv in bench/.venv) and rbee; unthrottled, under a
# per-connection cap, with one connection of eight at a tenth of the others' speed (the slow
# tail), on a many-file snapshot, and the catalog at scale. Not run by CI.
#
# Usage: bench/transfer.sh
#   env: RUNS=3 SIZES="1 4" (GiB, unthrottled) CAP=25000000 (bytes/s per connection)
#        TAIL_GIB=1 SMALL_FILES=1000 SMALL_KB=50 SHARD_MIB=500 ENTRIES=10000
#        CASES="limits unthrottled capped tail snapshot catalog resume" RESULT_MD=<file>
#   Only the slow tail, without making the unthrottled files:
#        SKIP_BUILD=1 SIZES= CASES=tail RESULT_MD=/tmp/tail.md bench/transfer.sh
#
# Writes a markdown table to bench/results/<date>.md and, for the slow tail, a plot of
# throughput over time to bench/results/<date>-tail.png. Files live in bench/work/
# (git-ignored). Installs aria2, curl and GNU time with apt and the Python peers with pip into
# bench/.venv when they are missing.
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$PWD
WORK=$ROOT/bench/work
RUNS=${RUNS:-3}
SIZES=${SIZES-"1 4"}
CAP=${CAP:-25000000}
TAIL_GIB=${TAIL_GIB:-1}
SMALL_FILES=${SMALL_FILES:-1000}
SMALL_KB=${SMALL_KB:-50}
SHARD_MIB=${SHARD_MIB:-500}
ENTRIES=${ENTRIES:-10000}
CASES=${CASES:-"limits unthrottled capped tail snapshot catalog resume"}
OUT=$WORK/out
DATE=$(date -u +%F)
RESULT_MD=${RESULT_MD:-$ROOT/bench/results/$DATE.md}
TAIL_PNG=$ROOT/bench/results/$DATE-tail.png
mkdir -p "$WORK/files" "$OUT" "$ROOT/bench/results"
want() { [[ " $CASES " == *" $1 "* ]]; }

need() { command -v "$1" >/dev/null 2>&1; }
if ! need aria2c || ! need curl || [ ! -x /usr/bin/time ]; then
    echo "installing aria2, curl and time with apt" >&2
    apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq aria2 curl time >/dev/null
fi
VENV=$ROOT/bench/.venv
if [ ! -x "$VENV/bin/hf" ] || ! "$VENV/bin/python" -c 'import hf_transfer, matplotlib' 2>/dev/null; then
    echo "installing huggingface_hub, hf_transfer and matplotlib into $VENV" >&2
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install -q huggingface_hub hf_transfer matplotlib
fi
PY=$VENV/bin/python

# SKIP_BUILD=1: measure the binaries already in target/release (and the driver, if built).
if [ "${SKIP_BUILD:-0}" != 1 ]; then
    echo "building release binaries" >&2
    cargo build --release -q -p rbee -p rbee-hive -p rbee-fake-hub --bins
    # Its own workspace and lock file, built into the project's target folder.
    CARGO_TARGET_DIR=$ROOT/target/bench-driver cargo build --release -q \
        --manifest-path "$ROOT/bench/hf-hub-driver/Cargo.toml"
fi
RBEE=$ROOT/target/release/rbee
HIVE=$ROOT/target/release/rbee-hive
HUB_BIN=$ROOT/target/release/fake-hub
HFHUB=$ROOT/target/bench-driver/release/hf-hub-driver

# Random files: the unthrottled sizes, 1 GiB for the capped and tail cases, a snapshot repo.
make_file() { # PATH BYTES
    if [ ! -f "$1" ] || [ "$(stat -c %s "$1")" -ne "$2" ]; then
        echo "making $1" >&2
        mkdir -p "$(dirname "$1")"
        head -c "$2" /dev/urandom >"$1"
    fi
}
for g in $SIZES 1 $TAIL_GIB; do
    make_file "$WORK/files/hf/bench/big/file-${g}g.bin" $((g << 30))
done
SNAP=$WORK/files/hf/bench/snap
if want snapshot && [ "$(find "$SNAP/small" -type f 2>/dev/null | wc -l)" -ne "$SMALL_FILES" ]; then
    echo "making the snapshot repo ($SMALL_FILES × $SMALL_KB KB + 2 × $SHARD_MIB MiB)" >&2
    rm -rf "$SNAP"
    mkdir -p "$SNAP/small"
    "$PY" - "$SNAP/small" "$SMALL_FILES" "$((SMALL_KB * 1000))" <<'PY'
import os, sys
d, n, size = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
for i in range(n):
    with open(os.path.join(d, f"{i:04}.txt"), "wb") as f:
        f.write(os.urandom(size))
PY
fi
want snapshot && for s in 1 2; do
    make_file "$SNAP/model-0000$s-of-00002.safetensors" $((SHARD_MIB << 20))
done

# Empties $OUT for the next run. Large files are deleted; the rest is moved aside and deleted
# by clear_trash after the case. On an ext4 without a journal (this machine's root), an inode
# freed in the last minute (longer while its inode table block is dirty) is skipped, one by one,
# by every inode allocation after it: a tool run right after another's thousands of files were
# deleted would pay for them.
TRASH=$WORK/trash
clear_out() {
    find "${OUT:?}" -type f -size +1M -delete 2>/dev/null || true
    mkdir -p "$TRASH"
    local aside
    aside=$(mktemp -d "$TRASH/run.XXXXXX")
    find "$OUT" -mindepth 1 -maxdepth 1 -exec mv -t "$aside" {} + 2>/dev/null || true
}
clear_trash() { rm -rf "$TRASH"; }
"$HUB_BIN" --root "$WORK/files" >"$WORK/hub.json" 2>"$WORK/hub.log" &
HUB_PID=$!
trap 'kill $HUB_PID 2>/dev/null || true; clear_trash' EXIT
for _ in $(seq 50); do [ -s "$WORK/hub.json" ] && break; sleep 0.1; done
HUB=$(sed -n 's/.*"hub":"\([^"]*\)".*/\1/p' "$WORK/hub.json")
[ -n "$HUB" ] || { echo "fake-hub did not start: $(cat "$WORK/hub.log")" >&2; exit 1; }
ENDPOINT=${HUB%/}
# Every Hub client here, rbee included, talks to the fake hub and keeps its caches in $OUT.
export HF_ENDPOINT=$ENDPOINT HF_HOME=$OUT/.hf HF_HUB_DISABLE_TELEMETRY=1

admin() { curl -sf -X POST -d "$2" "${HUB}_admin/$1" >/dev/null; }
set_cap() { admin rate-limit "{\"bytes_per_sec\": $1}"; }
set_faults() { admin faults "$1"; }

LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)

# time_run CMD... : runs CMD after clearing $OUT, prints "wall max_rss_kib cpu_s"
time_run() {
    clear_out
    sync
    if ! /usr/bin/time -f "%e %M %U %S" -o "$WORK/time.txt" "$@" >/dev/null 2>"$WORK/cmd.log"; then
        echo "failed: $* ($(tail -3 "$WORK/cmd.log"))" >&2
        echo "nan 0 nan"
        return
    fi
    awk '{printf "%s %s %.2f\n", $1, $2, $3 + $4}' "$WORK/time.txt"
}

. "$ROOT/bench/lib/stats.sh"

RESULTS=()
# bench CASE SIZE_BYTES TOOL CMD...
bench() {
    local case=$1 size=$2 tool=$3
    shift 3
    local times=() rss=() cpus=()
    for _ in $(seq "$RUNS"); do
        read -r t m c < <(time_run "$@")
        times+=("$t")
        rss+=("$m")
        cpus+=("$c")
    done
    local t m c
    t=$(printf '%s\n' "${times[@]}" | median)
    c=$(printf '%s\n' "${cpus[@]}" | median)
    m=$(printf '%s\n' "${rss[@]}" | sort -g | tail -1)
    echo "$case | $tool | $t s | cpu $c s | $((m / 1024)) MiB | runs: ${times[*]}" >&2
    RESULTS+=("$case|$tool|$t|$size|$m|$c")
}

# The peers' commands for one file of the fake hub's repo `bench/big`.
curl_sync() { curl -sS -o "$1" "$2" && sync; }
# hf_transfer itself (recent huggingface_hub no longer calls it): 8 files of 10 MiB chunks, as
# huggingface_hub used it, on the resolve URL.
hf_transfer_get() { # FILE
    "$PY" -c 'import sys, hf_transfer; hf_transfer.download(sys.argv[1], sys.argv[2], max_files=8, chunk_size=10 << 20)' \
        "$ENDPOINT/bench/big/resolve/main/$1" "$OUT/$1"
}
export -f curl_sync hf_transfer_get
export ENDPOINT OUT PY

peers_and_rbee() { # CASE FILE [--no-curl]
    local case=$1 f=$2 size url
    size=$(stat -c %s "$WORK/files/hf/bench/big/$f")
    url=${HUB}files/hf/bench/big/$f
    # One connection under a per-connection cap is the cap itself (43 s for 1 GiB at 25 MB/s).
    if [ "${3:-}" != --no-curl ]; then
        bench "$case" "$size" curl curl -sS -o "$OUT/$f" "$url"
        bench "$case" "$size" "curl && sync" bash -c 'curl_sync "$0" "$1"' "$OUT/$f" "$url"
    fi
    bench "$case" "$size" "aria2c -x16 -s16" aria2c -q -x16 -s16 --allow-overwrite=true \
        --auto-file-renaming=false -d "$OUT" -o "$f" "$url"
    [ -x "$HFHUB" ] && bench "$case" "$size" "hf-hub 1.0 (crate)" "$HFHUB" "$ENDPOINT" bench/big "$f" "$OUT"
    bench "$case" "$size" "hf_transfer (8 × 10 MiB)" bash -c 'hf_transfer_get "$0"' "$f"
    bench "$case" "$size" "rbee (verified, durable)" "$RBEE" --cache-dir "$OUT/cache" --quiet \
        model download "hf:bench/big/$f"
}

LIMITS=()
if want limits; then
    for g in $SIZES; do
        f=$WORK/files/hf/bench/big/file-${g}g.bin
        size=$((g << 30))
        cat "$f" >/dev/null # in the page cache, as the hub serves it
        bench "${g} GiB limits" $size "loopback to /dev/null" curl -sS -o /dev/null "${HUB}files/hf/bench/big/file-${g}g.bin"
        bench "${g} GiB limits" $size "dd conv=fdatasync" dd if=/dev/zero of="$OUT/dd.bin" bs=4M count=$((size >> 22)) conv=fdatasync status=none
        bench "${g} GiB limits" $size "sha256 (openssl)" openssl dgst -sha256 "$f"
    done
fi

if want unthrottled; then
    set_cap 0
    for g in $SIZES; do peers_and_rbee "${g} GiB unthrottled" "file-${g}g.bin"; done
fi

if want capped; then
    set_cap "$CAP"
    peers_and_rbee "1 GiB at $((CAP / 1000000)) MB/s per connection" file-1g.bin --no-curl
    set_cap 0
fi

# The slow tail: the cap on every connection, one connection (the first to get a body) at a
# tenth of it. rbee without the slow connection is the reference for the 1.2× target.
TAIL_NOTE=""
if want tail; then
    f=file-${TAIL_GIB}g.bin
    size=$((TAIL_GIB << 30))
    url=${HUB}files/hf/bench/big/$f
    set_cap "$CAP"
    slow="[{\"kind\":\"slow_connection\",\"bytes_per_sec\":$((CAP / 10)),\"times\":1,\"path\":\"$f\"}]"
    case="${TAIL_GIB} GiB, cap $((CAP / 1000000)) MB/s, no slow connection"
    set_faults '[]'
    bench "$case" $size "rbee (verified, durable)" "$RBEE" --cache-dir "$OUT/cache" --quiet model download "hf:bench/big/$f"
    case="${TAIL_GIB} GiB, cap $((CAP / 1000000)) MB/s, one connection at $((CAP / 10000000)) MB/s"
    tail_bench() { # TOOL CMD...
        local tool=$1
        shift
        # The fault marks the first connection that gets a body slow: set it before every run.
        local times=() rss=() cpus=()
        for _ in $(seq "$RUNS"); do
            set_faults "$slow"
            read -r t m c < <(time_run "$@")
            times+=("$t"); rss+=("$m"); cpus+=("$c")
        done
        local tt mm cc
        tt=$(printf '%s\n' "${times[@]}" | median)
        cc=$(printf '%s\n' "${cpus[@]}" | median)
        mm=$(printf '%s\n' "${rss[@]}" | sort -g | tail -1)
        echo "$case | $tool | $tt s | cpu $cc s | $((mm / 1024)) MiB | runs: ${times[*]}" >&2
        RESULTS+=("$case|$tool|$tt|$size|$mm|$cc")
    }
    tail_bench "aria2c -x8 -s8" aria2c -q -x8 -s8 --allow-overwrite=true --auto-file-renaming=false -d "$OUT" -o "$f" "$url"
    tail_bench "hf_transfer (8 × 10 MiB)" bash -c 'hf_transfer_get "$0"' "$f"
    tail_bench "rbee (verified, durable)" "$RBEE" --cache-dir "$OUT/cache" --quiet model download "hf:bench/big/$f"

    # Throughput over time, sampled from the hub's byte counter, one run of each.
    : >"$WORK/tail-samples.tsv"
    for tool in rbee aria2c hf_transfer; do
        clear_out
        set_faults "$slow"
        curl -sf -X POST "${HUB}_admin/counters/reset" >/dev/null
        case $tool in
            rbee) cmd=("$RBEE" --cache-dir "$OUT/cache" --quiet model download "hf:bench/big/$f") ;;
            aria2c) cmd=(aria2c -q -x8 -s8 --allow-overwrite=true --auto-file-renaming=false -d "$OUT" -o "$f" "$url") ;;
            hf_transfer) cmd=(bash -c 'hf_transfer_get "$0"' "$f") ;;
        esac
        "$PY" - "$tool" "${HUB}_admin/counters" "/files/hf/bench/big/$f" "${cmd[@]}" >>"$WORK/tail-samples.tsv" <<'PY'
import json, subprocess, sys, time, urllib.request
tool, counters, path, cmd = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:]
def sent():
    with urllib.request.urlopen(counters) as r:
        snap = json.load(r)["paths"]
    # rbee and hf_transfer follow the resolve redirect to the CDN's /files path; aria2c asks it.
    return sum(v.get("bytes_sent", 0) for k, v in snap.items() if k.endswith(path.rsplit("/", 1)[1]))
start = time.time()
p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
while p.poll() is None:
    print(f"{tool}\t{time.time() - start:.3f}\t{sent()}", flush=True)
    time.sleep(0.05)
print(f"{tool}\t{time.time() - start:.3f}\t{sent()}")
PY
    done
    set_faults '[]'
    set_cap 0
    "$PY" - "$WORK/tail-samples.tsv" "$TAIL_PNG" "$case" <<'PY'
import sys
import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt
samples, png, title = sys.argv[1], sys.argv[2], sys.argv[3]
series = {}
for line in open(samples):
    tool, t, b = line.split("\t")
    series.setdefault(tool, []).append((float(t), int(b)))
fig, ax = plt.subplots(figsize=(9, 4.5))
for tool, pts in series.items():
    ts, rates = [], []
    for (t0, b0), (t1, b1) in zip(pts, pts[1:]):
        if t1 > t0:
            ts.append(t1)
            rates.append((b1 - b0) / (t1 - t0) / 1e6)
    # A 0.25 s moving average: the samples are 50 ms apart.
    w = 5
    smooth = [sum(rates[max(0, i - w + 1):i + 1]) / len(rates[max(0, i - w + 1):i + 1]) for i in range(len(rates))]
    ax.plot(ts, smooth, label=f"{tool} ({pts[-1][0]:.1f} s)")
ax.set_xlabel("seconds")
ax.set_ylabel("MB/s served (0.25 s average)")
ax.set_title(title)
ax.legend()
ax.grid(alpha=0.3)
fig.tight_layout()
fig.savefig(png, dpi=100)
PY
    TAIL_NOTE="Throughput over time in the slow-tail case: $(basename "$TAIL_PNG")."
fi

SMALL_NOTE=""
if want snapshot; then
    set_cap 0
    total=$(du -sb "$SNAP" | cut -f1)
    case="snapshot: $SMALL_FILES × $SMALL_KB KB + 2 × $SHARD_MIB MiB"
    bench "$case" "$total" "huggingface_hub snapshot_download" env HF_ENDPOINT="$ENDPOINT" HF_HOME="$OUT/.hf" \
        HF_HUB_DISABLE_TELEMETRY=1 "$PY" -c 'import sys; from huggingface_hub import snapshot_download as s; s("bench/snap", local_dir=sys.argv[1])' "$OUT/snap"
    bench "$case" "$total" "hf download (hf_transfer)" env HF_ENDPOINT="$ENDPOINT" HF_HOME="$OUT/.hf" \
        HF_HUB_ENABLE_HF_TRANSFER=1 HF_HUB_DISABLE_TELEMETRY=1 "$VENV/bin/hf" download bench/snap --local-dir "$OUT/snap"
    [ -x "$HFHUB" ] && bench "$case" "$total" "hf-hub 1.0 (crate)" "$HFHUB" "$ENDPOINT" bench/snap --snapshot "$OUT/snap"
    # Every file, as the peers fetch (by default rbee takes only the weights).
    bench "$case" "$total" "rbee (verified, durable)" "$RBEE" --cache-dir "$OUT/cache" --quiet model download hf:bench/snap --include '**'
    # The small files alone: rbee's CPU per file, start-up, resolve and catalog included.
    small="small files of the snapshot: $SMALL_FILES × $SMALL_KB KB"
    bench "$small" "$(du -sb "$SNAP/small" | cut -f1)" "rbee (verified, durable)" \
        "$RBEE" --cache-dir "$OUT/cache" --quiet model download hf:bench/snap --include 'small/**'
    IFS='|' read -r _ _ _ _ _ small_cpu <<<"${RESULTS[-1]}"
    SMALL_NOTE="rbee's CPU per small file: $(awk -v c="$small_cpu" -v n="$SMALL_FILES" 'BEGIN { printf "%.2f", c * 1000 / n }') ms (the small files alone, median CPU ÷ $SMALL_FILES)."
    clear_out
    clear_trash
fi

CATALOG_NOTE=""
if want catalog; then
    # Earlier cases leave gigabytes to write back; timed listings must not share the disk with it.
    sync
    # One real entry, then ENTRIES copies of it under other repository names (same files,
    # hard-linked): what a catalog of that many downloads looks like on disk.
    CAT=$WORK/catalog
    if [ ! -d "$CAT/hf/bench" ] || [ "$(ls "$CAT/hf/bench" | wc -l)" -lt "$ENTRIES" ]; then
        rm -rf "$CAT"
        mkdir -p "$WORK/files/hf/bench/tiny"
        head -c 4096 /dev/urandom >"$WORK/files/hf/bench/tiny/tiny.bin"
        "$RBEE" --cache-dir "$CAT" --quiet model download hf:bench/tiny/tiny.bin >/dev/null
        "$PY" "$ROOT/bench/lib/grow-catalog.py" "$CAT" "$ENTRIES"
        # The index caches only records older than its 2 s settle: once they are, one untimed
        # listing writes it, as in a catalog that has been in use.
        sleep 3
        "$RBEE" --cache-dir "$CAT" --quiet model list >/dev/null
    fi
    n=$(ls "$CAT/hf/bench" | wc -l)
    case="catalog of $n entries"
    one=$(ls "$CAT/hf/bench" | sed -n 2p)
    cat_bench() { # TOOL CMD...  (nothing to clear between runs)
        local tool=$1 times=() rss=() cpus=()
        shift
        for _ in $(seq "$RUNS"); do
            if ! /usr/bin/time -f "%e %M %U %S" -o "$WORK/time.txt" "$@" >/dev/null 2>"$WORK/cmd.log"; then
                echo "failed (not timed): $*" >&2
                continue
            fi
            read -r t m c < <(awk '{printf "%s %s %.2f\n", $1, $2, $3 + $4}' "$WORK/time.txt")
            times+=("$t"); rss+=("$m"); cpus+=("$c")
        done
        local tt mm cc
        tt=$(printf '%s\n' "${times[@]}" | median)
        cc=$(printf '%s\n' "${cpus[@]}" | median)
        mm=$(printf '%s\n' "${rss[@]}" | sort -g | tail -1)
        echo "$case | $tool | $tt s | cpu $cc s | $((mm / 1024)) MiB | runs: ${times[*]}" >&2
        RESULTS+=("$case|$tool|$tt|0|$mm|$cc")
    }
    cat_bench "rbee model list" "$RBEE" --cache-dir "$CAT" model list
    cat_bench "rbee model list --json" "$RBEE" --cache-dir "$CAT" --json model list
    cat_bench "rbee model du" "$RBEE" --cache-dir "$CAT" model du
    cat_bench "rbee model info (one entry)" "$RBEE" --cache-dir "$CAT" model info "hf:bench/$one/tiny.bin"
    # The daemon: from start to its listening line, and one GET /v1/models.
    HIVE_TIMES=$("$PY" - "$HIVE" "$CAT" "$RUNS" <<'PY'
import json, os, statistics, subprocess, sys, tempfile, time, urllib.request
hive, cat, runs = sys.argv[1], sys.argv[2], int(sys.argv[3])
starts, gets = [], []
for _ in range(runs):
    home = tempfile.mkdtemp()
    t0 = time.time()
    p = subprocess.Popen([hive, "--port", "0", "--cache-dir", cat], stdout=subprocess.PIPE,
                         stderr=subprocess.DEVNULL, text=True, env={**os.environ, "HOME": home})
    line = json.loads(p.stdout.readline())
    starts.append(time.time() - t0)
    t1 = time.time()
    with urllib.request.urlopen(line["url"].rstrip("/") + "/v1/models") as r:
        r.read()
    gets.append(time.time() - t1)
    p.terminate()
    p.wait()
print(f"{statistics.median(starts):.3f} {statistics.median(gets):.3f}")
PY
)
    read -r hs hg <<<"$HIVE_TIMES"
    RESULTS+=("$case|rbee-hive start-up (to listening)|$hs|0|0|nan")
    RESULTS+=("$case|rbee-hive GET /v1/models|$hg|0|0|nan")
    CATALOG_NOTE="rbee-hive start-up and GET /v1/models are medians of $RUNS runs (no RSS or CPU taken)."
fi

RESUME=""
if want resume; then
    # Resume after kill -9 at about half way, on the capped file. The server's counters are
    # polled directly (every few ms) so the kill lands near 50%.
    set_cap "$CAP"
    f=file-1g.bin
    size=$((1 << 30))
    clear_out
    RESUME=$("$PY" - "$RBEE" "$OUT/cache" "hf:bench/big/$f" "$HUB" "$f" "$size" "$WORK/files/hf/bench/big/$f" <<'PY'
import glob, json, os, subprocess, sys, time, urllib.request
rbee, cache, ref, hub, name, size, source = sys.argv[1:8]
size = int(size)
def sent():
    with urllib.request.urlopen(hub + "_admin/counters") as r:
        paths = json.load(r)["paths"]
    return sum(v.get("bytes_sent", 0) for k, v in paths.items() if k.endswith(name))
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
reset()
cmd = [rbee, "--cache-dir", cache, "--quiet", "model", "download", ref]
p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
while sent() < size // 2 and p.poll() is None:
    time.sleep(0.003)
p.kill()
p.wait()
first = settled()
part = glob.glob(os.path.join(cache, "**", "*.part"), recursive=True)
on_disk = 0
if part:
    with open(part[0], "rb") as a, open(source, "rb") as b:
        while True:
            x, y = a.read(1 << 20), b.read(1 << 20)
            if not y:
                break
            for i in range(0, len(y), 4096):
                if x[i:i + 4096] == y[i:i + 4096]:
                    on_disk += len(y[i:i + 4096])
reset()
subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
second = settled()
missing = size - on_disk
print(f"kill -9 at {first * 100 // size}%: {on_disk} B were on disk (checked against the source), {missing} B missing; "
      f"the second run fetched {second} B = missing + {second - missing} B.")
PY
)
    set_cap 0
fi

LOAD_END=$(cut -d' ' -f1-3 /proc/loadavg)

# Table with, per case, this row's time as a ratio of rbee's.
{
    echo "# Transfer benchmark $DATE"
    echo
    echo "Machine: $(nproc) cores, $(free -g | awk '/Mem/ {print $2}') GiB, shared with other work: load average $LOAD_START at the start, $LOAD_END at the end; fake-hub on loopback; median of $RUNS runs (wall and CPU = user + system); peak RSS is the largest of the runs."
    echo "curl, aria2c and hf-hub neither hash nor sync; hf_transfer does not sync; rbee verifies SHA-256 and fsyncs before the rename."
    echo
    echo "| case | tool | wall (s) | MB/s | peak RSS (MiB) | CPU (s) | ÷ rbee |"
    echo "|---|---|---:|---:|---:|---:|---:|"
    for r in "${RESULTS[@]}"; do
        IFS='|' read -r c tool t size m cpu <<<"$r"
        rb=""
        for q in "${RESULTS[@]}"; do
            IFS='|' read -r c2 tool2 t2 _ _ _ <<<"$q"
            [ "$c2" = "$c" ] && [[ "$tool2" == rbee\ \(* ]] && rb=$t2
        done
        ratio=$(awk -v a="$rb" -v b="$t" 'BEGIN { if (b > 0 && a > 0) printf "%.2f", b / a; else print "-" }')
        mbs=$(awk -v s="$size" -v t="$t" 'BEGIN { if (t > 0 && s > 0) printf "%.0f", s / t / 1e6; else print "-" }')
        echo "| $c | $tool | $t | $mbs | $((m / 1024)) | $cpu | $ratio |"
    done
    echo
    [ -n "$TAIL_NOTE" ] && echo "- $TAIL_NOTE"
    [ -n "$SMALL_NOTE" ] && echo "- $SMALL_NOTE"
    [ -n "$CATALOG_NOTE" ] && echo "- $CATALOG_NOTE"
    [ -n "$RESUME" ] && echo "- Resume: $RESUME"
    true
} | tee "$RESULT_MD"
