#!/usr/bin/env bash
# Load on rbee-hive: SUBSCRIBERS concurrent SSE subscribers on one download, and JOBS more
# download jobs queued behind it, all served by the fake hub at a capped rate. Checks that every
# subscriber receives the final `done` event, every queued job finishes and the download feed
# reports each completion; reports the daemon's CPU time and RSS. Not run by CI.
#
# Usage: bench/hive-load.sh   (env: SUBSCRIBERS=200 JOBS=50 BIG_MIB=512 SMALL_MIB=8
#                              CAP=8000000 (bytes/s per connection, 0: no cap) CONCURRENT=2)
#
# Eight simultaneous 1 GiB downloads, unthrottled (peak RSS is `daemon_rss_peak_mib`):
#   SUBSCRIBERS=8 BIG_MIB=1024 JOBS=7 SMALL_MIB=1024 CONCURRENT=8 CAP=0 bench/hive-load.sh
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$PWD
WORK=$ROOT/bench/work/hive-load
SUBSCRIBERS=${SUBSCRIBERS:-200}
JOBS=${JOBS:-50}
BIG_MIB=${BIG_MIB:-512}
SMALL_MIB=${SMALL_MIB:-8}
CAP=${CAP:-8000000}
CONCURRENT=${CONCURRENT:-2}

echo "building release binaries" >&2
cargo build --release -q -p rbee-hive -p rbee-fake-hub --bins --example hive_load
HIVE_BIN=$ROOT/target/release/rbee-hive
HUB_BIN=$ROOT/target/release/fake-hub
LOAD_BIN=$ROOT/target/release/examples/hive_load

rm -rf "$WORK"
mkdir -p "$WORK/files" "$WORK/cache" "$WORK/home"
# Sparse files: the hub reads zeros quickly; the daemon still hashes every byte.
truncate -s "${BIG_MIB}M" "$WORK/files/big.bin"
for i in $(seq "$JOBS"); do truncate -s "${SMALL_MIB}M" "$WORK/files/small-$i.bin"; done

PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT

"$HUB_BIN" --root "$WORK/files" --rate-limit "$CAP" >"$WORK/hub.json" 2>"$WORK/hub.log" &
PIDS+=($!)
HOME=$WORK/home "$HIVE_BIN" --port 0 --cache-dir "$WORK/cache" \
    --max-concurrent-downloads "$CONCURRENT" >"$WORK/hive.json" 2>"$WORK/hive.log" &
HIVE_PID=$!
PIDS+=("$HIVE_PID")
for _ in $(seq 100); do [ -s "$WORK/hub.json" ] && [ -s "$WORK/hive.json" ] && break; sleep 0.1; done
HUB=$(sed -n 's/.*"hub":"\([^"]*\)".*/\1/p' "$WORK/hub.json")
HIVE=$(sed -n 's/.*"url":"\([^"]*\)".*/\1/p' "$WORK/hive.json")
[ -n "$HUB" ] && [ -n "$HIVE" ] || { echo "start-up failed: $(cat "$WORK"/*.log)" >&2; exit 1; }

TICK=$(getconf CLK_TCK)
cpu_ticks() { awk '{print $14 + $15}' "/proc/$HIVE_PID/stat"; }
rss_kib() { awk '/^VmRSS/ {print $2}' "/proc/$HIVE_PID/status"; }
hwm_kib() { awk '/^VmHWM/ {print $2}' "/proc/$HIVE_PID/status"; }

IDLE_RSS=$(rss_kib)
CPU0=$(cpu_ticks)
START=$(date +%s.%N)
# Sample RSS while the load runs (peak is also in VmHWM; the samples show the shape).
(while kill -0 "$HIVE_PID" 2>/dev/null; do rss_kib >>"$WORK/rss.txt"; sleep 0.5; done) &
PIDS+=($!)

SMALL_ARGS=()
for i in $(seq "$JOBS"); do SMALL_ARGS+=(--small "${HUB}files/small-$i.bin"); done
echo "running: $SUBSCRIBERS subscribers on ${BIG_MIB} MiB, $JOBS queued jobs of ${SMALL_MIB} MiB, cap $CAP B/s per connection, $CONCURRENT downloads at once" >&2
STATUS=0
SUMMARY=$("$LOAD_BIN" --url "$HIVE" --big "${HUB}files/big.bin" --subscribers "$SUBSCRIBERS" "${SMALL_ARGS[@]}") || STATUS=$?
[ -n "$SUMMARY" ] || SUMMARY='{}'

END=$(date +%s.%N)
CPU1=$(cpu_ticks)
PEAK_RSS=$(hwm_kib)
END_RSS=$(rss_kib)
SAMPLED_PEAK=$(sort -n "$WORK/rss.txt" | tail -1)
python3 - "$SUMMARY" "$START" "$END" "$CPU0" "$CPU1" "$TICK" "$IDLE_RSS" "$PEAK_RSS" "$END_RSS" "$SAMPLED_PEAK" <<'EOF'
import json, sys
summary = json.loads(sys.argv[1])
start, end, cpu0, cpu1, tick = map(float, sys.argv[2:7])
idle, peak, end_rss, sampled = map(int, sys.argv[7:11])
wall = end - start
cpu = (cpu1 - cpu0) / tick
summary.update({
    "daemon_cpu_s": round(cpu, 2),
    "daemon_cpu_avg_percent": round(100 * cpu / wall, 1),
    "daemon_rss_idle_mib": round(idle / 1024, 1),
    "daemon_rss_peak_mib": round(peak / 1024, 1),
    "daemon_rss_end_mib": round(end_rss / 1024, 1),
    "daemon_rss_sampled_peak_mib": round(sampled / 1024, 1),
    "wall_s": round(wall, 1),
})
print(json.dumps(summary, indent=2))
EOF
exit "$STATUS"
