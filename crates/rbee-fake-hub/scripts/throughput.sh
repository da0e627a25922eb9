#!/usr/bin/env bash
# Loopback throughput of the fake hub: curl downloads a 1 GiB file three times, straight from
# the hub and through a redirect to the CDN, and prints the median speeds. Not part of CI.
#   crates/rbee-fake-hub/scripts/throughput.sh [SIZE_MIB]
set -euo pipefail
size_mib=${1:-1024}
here=$(cd "$(dirname "$0")/../../.." && pwd)
cargo build --quiet --release -p rbee-fake-hub --bin fake-hub --manifest-path "$here/Cargo.toml"
work=$(mktemp -d)
hub_pid=
cleanup() { [ -n "$hub_pid" ] && kill "$hub_pid" 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT
mkdir "$work/root"
head -c "$((size_mib * 1024 * 1024))" /dev/urandom > "$work/root/big.bin"
"$here/target/release/fake-hub" --root "$work/root" > "$work/urls.json" 2> "$work/log" &
hub_pid=$!
for _ in $(seq 50); do [ -s "$work/urls.json" ] && break; sleep 0.1; done
hub=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["hub"])' "$work/urls.json")
median() { sort -n | sed -n 2p; }
# Warm the page cache so the disk is not what is measured.
cat "$work/root/big.bin" > /dev/null
direct=$(for _ in 1 2 3; do curl -s -o /dev/null -w '%{speed_download}\n' "${hub}files/big.bin"; done | median)
redirected=$(for _ in 1 2 3; do curl -sL -o /dev/null -w '%{speed_download}\n' "${hub}redirect/files/big.bin"; done | median)
rss_kib=$(ps -o rss= -p "$hub_pid" | tr -d ' ')
python3 - "$direct" "$redirected" "$rss_kib" "$size_mib" <<'PY'
import sys
d, r, rss, size = float(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
print(f"{size} MiB file, median of 3 curl runs")
print(f"hub /files:          {d / 1e9:.2f} GB/s")
print(f"redirect to the CDN: {r / 1e9:.2f} GB/s")
print(f"server RSS after:    {rss / 1024:.1f} MiB")
PY
