#!/usr/bin/env bash
# Times the catalog at scale: `rbee model list` (table and --json), `du` and `info` of one entry
# over ENTRIES entries, rbee-hive's start-up (to its listening line) and one `GET /v1/models`.
# Each is timed cold (the first run after the catalog changed: no index yet) and warm, median of
# RUNS runs. Not run by CI.
#
# Usage: bench/catalog.sh   (env: RUNS=3 ENTRIES=10000 SKIP_BUILD=0, BIN_DIR=target/release:
#                           where rbee, rbee-hive and fake-hub are; another build to compare)
#
# Prints a markdown table and writes it to bench/results/catalog-<date>.md. The catalog lives in
# bench/work/catalog (git-ignored): one real download from the fake hub, then ENTRIES - 1 copies
# of its record under other repository names with the same file hard-linked, which is what a
# catalog of that many downloads looks like on disk.
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$PWD
WORK=$ROOT/bench/work
RUNS=${RUNS:-3}
ENTRIES=${ENTRIES:-10000}
DATE=$(date -u +%F)
RESULT_MD=${RESULT_MD:-$ROOT/bench/results/catalog-$DATE.md}
mkdir -p "$WORK/files/hf/bench/tiny" "$ROOT/bench/results"
[ -x /usr/bin/time ] || { echo "needs GNU time (apt-get install time)" >&2; exit 1; }

BIN_DIR=${BIN_DIR:-$ROOT/target/release}
if [ "${SKIP_BUILD:-0}" != 1 ]; then
    echo "building release binaries" >&2
    cargo build --release -q -p rbee -p rbee-hive -p rbee-fake-hub --bins
fi
RBEE=$BIN_DIR/rbee
HIVE=$BIN_DIR/rbee-hive
HUB_BIN=$BIN_DIR/fake-hub

CAT=$WORK/catalog
if [ ! -d "$CAT/hf/bench" ] || [ "$(ls "$CAT/hf/bench" | wc -l)" -ne "$ENTRIES" ]; then
    echo "making a catalog of $ENTRIES entries in $CAT" >&2
    rm -rf "$CAT"
    [ -f "$WORK/files/hf/bench/tiny/tiny.bin" ] || head -c 4096 /dev/urandom >"$WORK/files/hf/bench/tiny/tiny.bin"
    "$HUB_BIN" --root "$WORK/files" >"$WORK/hub.json" 2>"$WORK/hub.log" &
    HUB_PID=$!
    for _ in $(seq 50); do [ -s "$WORK/hub.json" ] && break; sleep 0.1; done
    HUB=$(sed -n 's/.*"hub":"\([^"]*\)".*/\1/p' "$WORK/hub.json")
    HF_ENDPOINT=${HUB%/} HF_HOME=$WORK/.hf "$RBEE" --cache-dir "$CAT" --quiet model download hf:bench/tiny/tiny.bin >/dev/null
    kill "$HUB_PID"
    python3 "$ROOT/bench/lib/grow-catalog.py" "$CAT" "$ENTRIES"
fi
one=$(ls "$CAT/hf/bench" | sed -n 2p)

python3 - "$RBEE" "$HIVE" "$CAT" "$RUNS" "hf:bench/$one/tiny.bin" "$RESULT_MD" <<'PY'
import glob, json, os, resource, statistics, subprocess, sys, tempfile, time, urllib.request
rbee, hive, cat, runs, one, out = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5], sys.argv[6]
env = {**os.environ, "HOME": tempfile.mkdtemp()}
tick = os.sysconf("SC_CLK_TCK")

def forget_index():
    # A cold run: what the first command after an older rbee changed the catalog pays.
    for p in glob.glob(os.path.join(cat, ".catalog-index*")):
        os.remove(p)

def children_cpu():
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime

def timed(cmd):
    """(wall, CPU) seconds of one run: on a loaded machine the CPU time is the steadier figure."""
    c0, t0 = children_cpu(), time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    return time.perf_counter() - t0, children_cpu() - c0

def process_cpu(pid):
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / tick

def hive_once():
    """(start-up wall, CPU), (GET /v1/models wall, CPU), models returned."""
    t0 = time.perf_counter()
    p = subprocess.Popen([hive, "--port", "0", "--cache-dir", cat], stdout=subprocess.PIPE,
                         stderr=subprocess.DEVNULL, text=True, env=env)
    line = json.loads(p.stdout.readline())
    start = (time.perf_counter() - t0, process_cpu(p.pid))
    t1 = time.perf_counter()
    with urllib.request.urlopen(line["url"].rstrip("/") + "/v1/models") as r:
        n = len(json.load(r).get("models", []))
    get = (time.perf_counter() - t1, process_cpu(p.pid) - start[1])
    p.terminate()
    p.wait()
    return start, get, n

rows = []
cli = [("rbee model list", [rbee, "--cache-dir", cat, "model", "list"]),
       ("rbee model list --json", [rbee, "--cache-dir", cat, "--json", "model", "list"]),
       ("rbee model du", [rbee, "--cache-dir", cat, "model", "du"]),
       ("rbee model info (one entry)", [rbee, "--cache-dir", cat, "model", "info", one])]
for name, cmd in cli:
    cold, warm = [], []
    for _ in range(runs):
        forget_index()
        cold.append(timed(cmd))
        warm.append(timed(cmd))
    rows.append((name, cold, warm))
starts_cold, gets_cold, starts, gets, seen = [], [], [], [], set()
for _ in range(runs):
    forget_index()
    s, g, n = hive_once()
    starts_cold.append(s); gets_cold.append(g); seen.add(n)
    s, g, n = hive_once()
    starts.append(s); gets.append(g); seen.add(n)
rows.append(("rbee-hive start-up (to listening)", starts_cold, starts))
rows.append(("rbee-hive GET /v1/models (first request)", gets_cold, gets))

entries = len(os.listdir(os.path.join(cat, "hf", "bench")))
load = " ".join(open("/proc/loadavg").read().split()[:3])
lines = [f"# Catalog benchmark {time.strftime('%Y-%m-%d %H:%M', time.gmtime())} UTC", "",
         f"{entries} entries; {os.cpu_count()} cores, load average {load} at the end; median of {runs} runs; "
         "cold = the first run after the index was deleted, warm = the run after it; CPU = user + system "
         f"of the measured process; GET /v1/models returned {sorted(seen)} models.", "",
         "| operation | cold wall (ms) | cold CPU (ms) | warm wall (ms) | warm CPU (ms) | warm walls (ms) |",
         "|---|---:|---:|---:|---:|---|"]
med = lambda xs, i: statistics.median(x[i] for x in xs) * 1000
for name, cold, warm in rows:
    walls = ", ".join(f"{x[0] * 1000:.0f}" for x in warm)
    lines.append(f"| {name} | {med(cold, 0):.0f} | {med(cold, 1):.0f} | {med(warm, 0):.0f} | {med(warm, 1):.0f} | {walls} |")
text = "\n".join(lines) + "\n"
print(text)
open(out, "w").write(text)
PY
