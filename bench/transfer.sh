#!/usr/bin/env bash
# Times `rbee model download` against curl and aria2c on files served by the fake hub.
# Not run by CI. Usage: bench/transfer.sh   (env: RUNS=3 SIZES="1 4" CAP=25000000)
#
# Writes a markdown table to stdout and to bench/results/<date>.md. Files live in bench/work/
# (git-ignored). Installs aria2, curl and GNU time with apt when they are missing.
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$PWD
WORK=$ROOT/bench/work
RUNS=${RUNS:-3}
SIZES=${SIZES:-"1 4"}          # GiB, unthrottled cases
CAP=${CAP:-25000000}           # bytes/s per connection for the capped case (1 GiB)
OUT=$WORK/out
mkdir -p "$WORK/files" "$OUT" "$ROOT/bench/results"

need() { command -v "$1" >/dev/null 2>&1; }
if ! need aria2c || ! need curl || [ ! -x /usr/bin/time ]; then
    echo "installing aria2, curl and time with apt" >&2
    apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq aria2 curl time >/dev/null
fi

echo "building release binaries" >&2
cargo build --release -q -p rbee -p rbee-fake-hub
RBEE=$ROOT/target/release/rbee
HUB_BIN=$ROOT/target/release/fake-hub

for g in $SIZES 1; do
    f=$WORK/files/file-${g}g.bin
    if [ ! -f "$f" ] || [ "$(stat -c %s "$f")" -ne $((g << 30)) ]; then
        echo "making $f" >&2
        head -c $((g << 30)) /dev/urandom >"$f"
    fi
    [ -f "$f.sha256" ] && [ "$f.sha256" -nt "$f" ] || sha256sum "$f" | cut -d' ' -f1 >"$f.sha256"
done

"$HUB_BIN" --root "$WORK/files" >"$WORK/hub.json" 2>"$WORK/hub.log" &
HUB_PID=$!
trap 'kill $HUB_PID 2>/dev/null || true' EXIT
for _ in $(seq 50); do [ -s "$WORK/hub.json" ] && break; sleep 0.1; done
HUB=$(sed -n 's/.*"hub":"\([^"]*\)".*/\1/p' "$WORK/hub.json")
[ -n "$HUB" ] || { echo "fake-hub did not start: $(cat "$WORK/hub.log")" >&2; exit 1; }

set_cap() { curl -sf -X POST -d "{\"bytes_per_sec\": $1}" "${HUB}_admin/rate-limit" >/dev/null; }
reset_counters() { curl -sf -X POST "${HUB}_admin/counters/reset" >/dev/null; }
bytes_sent() { # path
    curl -sf "${HUB}_admin/counters" | python3 -c "import json,sys; print(json.load(sys.stdin)['paths'].get('$1',{}).get('bytes_sent',0))"
}

# time_run NAME CMD... : runs CMD after clearing $OUT, prints "seconds max_rss_kib"
time_run() {
    rm -rf "${OUT:?}"/* && sync
    /usr/bin/time -f "%e %M" -o "$WORK/time.txt" "$@" >/dev/null 2>"$WORK/cmd.log" || {
        echo "failed: $* ($(tail -3 "$WORK/cmd.log"))" >&2
        echo "nan 0"
        return
    }
    cat "$WORK/time.txt"
}

median() { sort -g | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }

RESULTS=()
# bench CASE SIZE_BYTES TOOL CMD...
bench() {
    local case=$1 size=$2 tool=$3
    shift 3
    local times=() rss=()
    for _ in $(seq "$RUNS"); do
        read -r t m < <(time_run "$@")
        times+=("$t")
        rss+=("$m")
    done
    local t m
    t=$(printf '%s\n' "${times[@]}" | median)
    m=$(printf '%s\n' "${rss[@]}" | sort -g | tail -1)
    echo "$case | $tool | $t s | $(awk -v s="$size" -v t="$t" 'BEGIN {printf "%.0f", s/t/1e6}') MB/s | $((m / 1024)) MiB | runs: ${times[*]}" >&2
    RESULTS+=("$case|$tool|$t|$size|$m")
}

rbee_cmd() { # URL
    echo "$RBEE" --cache-dir "$OUT/cache" --quiet model download "$1"
}

for g in $SIZES; do
    f=file-${g}g.bin
    url=${HUB}files/$f
    size=$((g << 30))
    sha=$(cat "$WORK/files/$f.sha256")
    set_cap 0 || true
    case="${g} GiB unthrottled"
    bench "$case" $size curl curl -sS -o "$OUT/$f" "$url"
    bench "$case" $size "aria2c -x8 -s8" aria2c -q -x8 -s8 --allow-overwrite=true --auto-file-renaming=false -d "$OUT" -o "$f" "$url"
    bench "$case" $size "aria2c -x16 -s16" aria2c -q -x16 -s16 --allow-overwrite=true --auto-file-renaming=false -d "$OUT" -o "$f" "$url"
    bench "$case" $size "rbee (sha256 verified)" $(rbee_cmd "$url#sha256=$sha")
done

f=file-1g.bin
url=${HUB}files/$f
size=$((1 << 30))
sha=$(cat "$WORK/files/$f.sha256")
set_cap "$CAP"
case="1 GiB at $((CAP / 1000000)) MB/s per connection"
bench "$case" $size curl curl -sS -o "$OUT/$f" "$url"
bench "$case" $size "aria2c -x8 -s8" aria2c -q -x8 -s8 --allow-overwrite=true --auto-file-renaming=false -d "$OUT" -o "$f" "$url"
bench "$case" $size "aria2c -x16 -s16" aria2c -q -x16 -s16 --allow-overwrite=true --auto-file-renaming=false -d "$OUT" -o "$f" "$url"
bench "$case" $size "rbee (sha256 verified)" $(rbee_cmd "$url#sha256=$sha")

# Resume after kill -9 at about half way, on the capped file. The server's counters are polled
# directly (every few ms) so the kill lands near 50%.
rm -rf "${OUT:?}"/*
RESUME=$(python3 - "$RBEE" "$OUT/cache" "$url#sha256=$sha" "$HUB" "/files/$f" "$size" "$WORK/files/$f" <<'PY'
import json, subprocess, sys, time, urllib.request
rbee, cache, url, hub, path, size, source = sys.argv[1:8]
size = int(size)
def sent():
    with urllib.request.urlopen(hub + "_admin/counters") as r:
        return json.load(r)["paths"].get(path, {}).get("bytes_sent", 0)
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
cmd = [rbee, "--cache-dir", cache, "--quiet", "model", "download", url]
p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
while sent() < size // 2 and p.poll() is None:
    time.sleep(0.003)
p.kill()
p.wait()
first = settled()
# What the killed run really left on disk: 4 KiB blocks of the partial equal to the source.
import glob, os
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
twice = first + second - size
missing = size - on_disk
print(f"kill -9 at {first * 100 // size}%: {on_disk} B were on disk (checked against the source), {missing} B missing; "
      f"the second run fetched {second} B = missing + {second - missing} B ({(second - missing) / (16 << 20):.2f} chunks of 16 MiB). "
      f"Counting from what the server wrote to its sockets instead, {twice} B went out twice (bytes unread in socket buffers at the kill included).")
PY
)
echo "$RESUME" >&2

# Cancel latency: SIGINT to the `cancelled` JSON event.
rm -rf "${OUT:?}"/*
CANCEL=$(python3 - "$RBEE" "$OUT/cache" "$url" <<'PY'
import json, os, signal, subprocess, sys, time
rbee, cache, url = sys.argv[1:4]
p = subprocess.Popen([rbee, "--cache-dir", cache, "--json", "model", "download", url],
                     stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
start = time.time()
sent = None
for line in p.stdout:
    if sent is None and time.time() - start > 2:
        sent = time.time()
        p.send_signal(signal.SIGINT)
    try:
        event = json.loads(line)
    except ValueError:
        continue
    if event.get("event") == "cancelled" and sent is not None:
        print(f"SIGINT to `cancelled` event: {(time.time() - sent) * 1000:.0f} ms; exit code {p.wait()}")
        break
else:
    print(f"no cancelled event (exit code {p.wait()})")
PY
)
echo "$CANCEL" >&2
set_cap 0

# Table with ratios to each peer in the same case.
{
    echo "# Transfer benchmark $(date -u +%F)"
    echo
    echo "Machine: $(nproc) cores, $(free -g | awk '/Mem/ {print $2}') GiB; fake-hub on loopback; median of $RUNS runs; peak RSS is the largest of the runs."
    echo "curl and aria2c write without fsync; rbee verifies SHA-256 and fsyncs before the rename."
    echo
    echo "| case | tool | wall (s) | MB/s | peak RSS (MiB) | rbee time ÷ this |"
    echo "|---|---|---:|---:|---:|---:|"
    for r in "${RESULTS[@]}"; do
        IFS='|' read -r c tool t size m <<<"$r"
        rb=""
        for q in "${RESULTS[@]}"; do
            IFS='|' read -r c2 tool2 t2 _ _ <<<"$q"
            [ "$c2" = "$c" ] && [[ "$tool2" == rbee* ]] && rb=$t2
        done
        ratio=$(awk -v a="$rb" -v b="$t" 'BEGIN { if (b > 0 && a > 0) printf "%.2f", a / b; else print "-" }')
        mbs=$(awk -v s="$size" -v t="$t" 'BEGIN { if (t > 0) printf "%.0f", s / t / 1e6; else print "-" }')
        echo "| $c | $tool | $t | $mbs | $((m / 1024)) | $ratio |"
    done
    echo
    echo "- Resume: $RESUME"
    echo "- Cancel: $CANCEL"
} | tee "$ROOT/bench/results/$(date -u +%F).md"
