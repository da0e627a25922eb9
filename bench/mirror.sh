#!/usr/bin/env bash
# rbee-hive as a Hub mirror, against the issue's targets, and olah (PyPI) in front of the same
# fake hub, same file, same run. Not run by CI.
#
#   1. cached:  a SIZE_MIB file the hive already holds, to curl, vs fake-hub's own speed to curl
#               (target: >= 90%): RUNS fetches of each, interleaved so that load from other
#               processes hits both, compared by median; with each server's CPU seconds per GiB
#   2. cold:    the same file, not held, to CLIENTS concurrent curls: upstream bytes (target
#               <= 1.02 x size) and the last client's time over one cold client's time (target
#               <= 1.2 x the upstream download time, measured as one client alone)
#   3. olah:    cases 1 and 2 through olah, with its peak RSS beside the hive's
#
# Usage: bench/mirror.sh   (env: SIZE_MIB=1024 CLIENTS=3 RUNS=5 OLAH=1 CAP=0; the olah venv lives
#                           in bench/work/olah-venv and is reused; CAP=bytes/s per upstream
#                           connection during the cold runs, as a CDN caps them, 0 for none)
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$PWD
WORK=$ROOT/bench/work/mirror
SIZE_MIB=${SIZE_MIB:-1024}
CLIENTS=${CLIENTS:-3}
RUNS=${RUNS:-5}
OLAH=${OLAH:-1}
CAP=${CAP:-0}
SIZE=$((SIZE_MIB * 1024 * 1024))

echo "building release binaries" >&2
cargo build --release -q -p rbee-hive -p rbee-fake-hub --bins
HIVE_BIN=$ROOT/target/release/rbee-hive
HUB_BIN=$ROOT/target/release/fake-hub

rm -rf "$WORK"
mkdir -p "$WORK/files/hf/org/repo" "$WORK/home"
# Random bytes, so nothing along the way can take a shortcut on zeros.
head -c "$SIZE" /dev/urandom >"$WORK/files/hf/org/repo/big.gguf"

PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT

"$HUB_BIN" --root "$WORK/files" >"$WORK/hub.json" 2>"$WORK/hub.log" &
PIDS+=($!)
for _ in $(seq 100); do [ -s "$WORK/hub.json" ] && break; sleep 0.1; done
HUB=$(sed -n 's/.*"hub":"\([^"]*\)".*/\1/p' "$WORK/hub.json")
HUB=${HUB%/}
CDN=$(sed -n 's/.*"cdn":"\([^"]*\)".*/\1/p' "$WORK/hub.json")
CDN=${CDN%/}
FILE=org/repo/resolve/main/big.gguf

upstream_bytes() { curl -s "$HUB/_admin/counters" | python3 -c 'import json,sys; print(json.load(sys.stdin)["total_bytes_sent"])'; }
reset_counters() { curl -s -X POST "$HUB/_admin/counters/reset" >/dev/null; }
cap_upstream() { # $1: bytes/s per connection, 0 for none
    local rate=null
    [ "$1" = 0 ] || rate=$1
    curl -s -X POST -d "{\"bytes_per_sec\": $rate}" "$HUB/_admin/rate-limit" >/dev/null
}
# Seconds for one curl of URL (following redirects), checking the size.
fetch() {
    local out
    out=$(curl -sL --noproxy '*' -o /dev/null -w '%{time_total} %{size_download}' "$1")
    [ "${out#* }" = "$SIZE" ] || { echo "short download from $1: $out" >&2; exit 1; }
    echo "${out% *}"
}
peak_kib() { awk '/^VmHWM/ {print $2}' "/proc/$1/status"; }
# CPU ticks (user + system) a process has used so far.
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
. "$ROOT/bench/lib/stats.sh"
# Seconds and CPU seconds per GiB of the serving process $2 for one fetch of URL $1.
fetch_cpu() {
    local before after secs
    before=$(cpu_ticks "$2")
    secs=$(fetch "$1")
    after=$(cpu_ticks "$2")
    python3 -c "print($secs, f'{($after - $before) / $(getconf CLK_TCK) / ($SIZE / 2**30):.3f}')"
}
ratio() { python3 -c "print(f'{$1 / $2:.3f}')"; }
mbps() { python3 -c "print(f'{$SIZE / $1 / 1e6:.0f}')"; }

start_hive() { # $1: cache dir; prints its URL, sets HIVE_PID
    local log=$WORK/hive-$(basename "$1").json
    HOME=$WORK/home HF_HOME=$WORK/home/hf HF_ENDPOINT=$HUB "$HIVE_BIN" --port 0 \
        --cache-dir "$1" >"$log" 2>"$log.err" &
    HIVE_PID=$!
    PIDS+=("$HIVE_PID")
    for _ in $(seq 100); do [ -s "$log" ] && break; sleep 0.1; done
    HIVE=$(sed -n 's/.*"url":"\([^"]*\)".*/\1/p' "$log")
}

# Cold: one client alone (the upstream download time), then CLIENTS at once on a fresh cache.
# Prints: one-client seconds, last-of-N seconds, upstream bytes of the N run, peak RSS KiB.
cold_runs() { # $1: name, $2: base URL factory (a function taking a fresh cache dir)
    local name=$1 make=$2 one last bytes t0 pids=()
    cap_upstream "$CAP"
    reset_counters
    $make "$WORK/$name-cold-1"
    one=$(fetch "$BASE/$FILE")
    $make "$WORK/$name-cold-n"
    reset_counters
    t0=$(date +%s.%N)
    for i in $(seq "$CLIENTS"); do
        (fetch "$BASE/$FILE" >"$WORK/$name-client-$i.txt") &
        pids+=($!)
    done
    for p in "${pids[@]}"; do wait "$p"; done
    last=$(python3 -c "import time; print(f'{time.time() - $t0:.3f}')")
    bytes=$(upstream_bytes)
    cap_upstream 0
    echo "$one $last $bytes $(peak_kib "$SERVER_PID")"
}

hive_base() { start_hive "$1"; BASE=$HIVE; SERVER_PID=$HIVE_PID; }

HUB_PID=${PIDS[0]}
echo "== rbee-hive" >&2
cold_runs hive hive_base >"$WORK/hive.result"
read -r H_ONE H_LAST H_BYTES H_RSS <"$WORK/hive.result"

echo "== cached: fake-hub and rbee-hive to curl, $RUNS runs each, interleaved" >&2
fetch "$HUB/$FILE" >/dev/null
fetch "$HIVE/$FILE" >/dev/null
D_SECS=() D_CPU=() H_SECS=() H_CPU=()
for _ in $(seq "$RUNS"); do
    read -r secs cpu < <(fetch_cpu "$HUB/$FILE" "$HUB_PID")
    D_SECS+=("$secs") D_CPU+=("$cpu")
    read -r secs cpu < <(fetch_cpu "$HIVE/$FILE" "$HIVE_PID")
    H_SECS+=("$secs") H_CPU+=("$cpu")
done
echo "fake-hub seconds: ${D_SECS[*]}; CPU s/GiB: ${D_CPU[*]}" >&2
echo "rbee-hive seconds: ${H_SECS[*]}; CPU s/GiB: ${H_CPU[*]}" >&2
DIRECT=$(median_of "${D_SECS[@]}")
H_CACHED=$(median_of "${H_SECS[@]}")
PAIRED=$(python3 -c "import statistics,sys; d, h = sys.argv[1].split(), sys.argv[2].split(); print(f'{statistics.median(float(a) / float(b) for a, b in zip(d, h)):.3f}')" "${D_SECS[*]}" "${H_SECS[*]}")

O_LINE="olah: not run (OLAH=0)"
if [ "$OLAH" = 1 ]; then
    echo "== olah" >&2
    VENV=$ROOT/bench/work/olah-venv
    [ -x "$VENV/bin/olah-cli" ] || { python3 -m venv "$VENV" && "$VENV/bin/pip" install -q olah; }
    HUB_NETLOC=${HUB#http://}
    CDN_NETLOC=${CDN#http://}
    olah_base() {
        local port
        port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
        (cd "$WORK" && exec "$VENV/bin/python" -m olah.server --host 127.0.0.1 --port "$port" \
            --hf-scheme http --hf-netloc "$HUB_NETLOC" --hf-lfs-netloc "$CDN_NETLOC" \
            --mirror-netloc "127.0.0.1:$port" --mirror-lfs-netloc "127.0.0.1:$port" \
            --repos-path "$1" >"$1.log" 2>&1) &
        SERVER_PID=$!
        PIDS+=("$SERVER_PID")
        for _ in $(seq 100); do curl -s -o /dev/null "http://127.0.0.1:$port/" && break; sleep 0.2; done
        BASE=http://127.0.0.1:$port
    }
    set +e
    cold_runs olah olah_base >"$WORK/olah.result" 2>"$WORK/olah-bench.log"
    read -r O_ONE O_LAST O_BYTES O_RSS <"$WORK/olah.result"
    O_CACHED=$(fetch "$BASE/$FILE" 2>>"$WORK/olah-bench.log")
    set -e
    if [ -n "$O_RSS" ] && [ -n "$O_CACHED" ]; then
        O_LINE="olah: cached $(mbps "$O_CACHED") MB/s ($(ratio "$DIRECT" "$O_CACHED") of fake-hub); cold x$CLIENTS: upstream $O_BYTES bytes ($(ratio "$O_BYTES" "$SIZE") x size), last client $(ratio "$O_LAST" "$O_ONE") x one client (${O_LAST}s vs ${O_ONE}s); peak RSS $((O_RSS / 1024)) MiB"
    else
        O_LINE="olah: failed (see $WORK/olah-*.log)"
    fi
fi

cat <<EOF
mirror bench, $(date -u +%Y-%m-%d), ${SIZE_MIB} MiB file, $CLIENTS clients, $(nproc) cores, upstream cap ${CAP} B/s per connection in the cold runs
fake-hub to curl:    $(mbps "$DIRECT") MB/s (median ${DIRECT}s of $RUNS); server CPU $(median_of "${D_CPU[@]}") s/GiB
rbee-hive cached:    $(mbps "$H_CACHED") MB/s (median ${H_CACHED}s of $RUNS) = $(ratio "$DIRECT" "$H_CACHED") of fake-hub (target >= 0.90; median of run pairs $PAIRED); server CPU $(median_of "${H_CPU[@]}") s/GiB
rbee-hive cold x$CLIENTS:   upstream $H_BYTES bytes = $(ratio "$H_BYTES" "$SIZE") x size (target <= 1.02); last client ${H_LAST}s vs one client ${H_ONE}s = $(ratio "$H_LAST" "$H_ONE") (target <= 1.2); peak RSS $((H_RSS / 1024)) MiB
$O_LINE
EOF
