#!/usr/bin/env bash
# The shared store (docs/cluster.md) against the cluster issue's targets, on one machine: N
# `rbee` processes ("hives", each with its own catalog) started at once, all pointed at the same
# single-node Garage, ask the fake hub for the same random SIZE_MIB file. Not run by CI.
#
#   1. one origin fetch:  per N in HIVES, the bytes the fake hub sent (target <= 1.02 x size)
#                         and the wall time until every hive is ready, over one hive alone
#                         without a store (target for N=4: <= 1.3)
#   2. store reads:       a fresh hive provisioning from the store, vs curl of the same blob
#                         through a pre-signed URL from the same Garage (target >= 80%)
#   3. publish overhead:  one hive with an empty store (fetch, then publish) vs one hive
#                         without a store (target <= +10%)
#
# With NETNS=1 (the default when run as root and `ip netns add` works) every hive runs in a
# network namespace of its own, on a veth pair to a bridge this script creates (10.77.N.0/24),
# with the fake hub and Garage on the bridge's addresses; NETNS=0, or no permission, runs
# everything on loopback (the output says which). Either way the "internet link" is the fake
# hub's rate cap. That cap is per response, so it is set to LINK / CONNECTIONS and every hive downloads with
# exactly CONNECTIONS connections: one hive fetching from the origin gets LINK bytes/s in total.
# Two hives fetching at once would each get LINK, so a double lease win shows in the origin
# bytes, not in the wall time.
#
# Usage: bench/cluster.sh
#   env: SIZE_MIB=1024 RUNS=3 HIVES="1 2 4 8" LINK=50000000 (bytes/s) CONNECTIONS=4
#        SKIP_BUILD=1 (measure the binaries already in target/release); HIVES must hold 1,
#        the publish case; NETNS=0|1
#
# Writes a markdown table to bench/results/cluster-<date>.md (RESULT_MD). Files, catalogs and
# Garage's data live in bench/work/cluster (git-ignored) and are removed at the end. Garage
# comes from scripts/garage-dev.sh (`cargo install --locked garage` when it is missing).
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$PWD
WORK=$ROOT/bench/work/cluster
SIZE_MIB=${SIZE_MIB:-1024}
RUNS=${RUNS:-3}
HIVES=${HIVES:-"1 2 4 8"}
LINK=${LINK:-50000000}
CONNECTIONS=${CONNECTIONS:-4}
SIZE=$((SIZE_MIB * 1024 * 1024))
DATE=$(date -u +%F)
RESULT_MD=${RESULT_MD:-$ROOT/bench/results/cluster-$DATE.md}
# Found before HOME is pointed into the work folder.
GARAGE=${GARAGE:-$(command -v garage || echo "$HOME/.cargo/bin/garage")}
export GARAGE
[ -x "$GARAGE" ] || { echo "garage is not installed: cargo install --locked garage" >&2; exit 3; }

if [ "${SKIP_BUILD:-0}" != 1 ]; then
    echo "building release binaries" >&2
    CARGO_INCREMENTAL=0 cargo build --release -q -p rbee -p rbee-fake-hub --bins
fi
RBEE=$ROOT/target/release/rbee
HUB_BIN=$ROOT/target/release/fake-hub

rm -rf "$WORK"
mkdir -p "$WORK/files/hf/bench/cluster" "$WORK/home" "$WORK/log"
MODEL=$WORK/files/hf/bench/cluster/model.gguf
# Random bytes, so nothing along the way can take a shortcut on zeros.
head -c "$SIZE" /dev/urandom >"$MODEL"
DIGEST=$(sha256sum "$MODEL" | cut -d' ' -f1)
REF=hf:bench/cluster/model.gguf
LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)

GARAGE_DIR=$WORK/garage
HUB_PID=
TAG=rbench$$
NAMESPACES=()
BRIDGE=
cleanup() {
    [ -z "$HUB_PID" ] || kill "$HUB_PID" 2>/dev/null || true
    scripts/garage-dev.sh stop "$GARAGE_DIR" || true
    for ns in "${NAMESPACES[@]}"; do ip netns del "$ns" 2>/dev/null || true; done
    [ -z "$BRIDGE" ] || ip link del "$BRIDGE" 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT

# The hives' network: a namespace per hive on a bridge, or loopback.
MAX_HIVES=$(printf '%s\n' $HIVES 1 | sort -n | tail -1)
HOST_IP=127.0.0.1 CDN_IP=127.0.0.2 NETWORK="loopback (no network namespaces)"
make_namespaces() {
    local octet used i ns
    used=$(ip -4 -o addr show)
    for octet in $(seq 200 250); do
        grep -q " 10.77.$octet\." <<<"$used" || break
    done
    BRIDGE=${TAG:0:11}br
    ip link add "$BRIDGE" type bridge || return 1
    ip addr add "10.77.$octet.1/24" dev "$BRIDGE" || return 1
    ip addr add "10.77.$octet.2/24" dev "$BRIDGE" || return 1
    ip link set "$BRIDGE" up || return 1
    for i in $(seq "$MAX_HIVES"); do
        ns=$TAG-$i
        ip netns add "$ns" || return 1
        NAMESPACES+=("$ns")
        ip link add "${TAG:0:10}h$i" type veth peer name "${TAG:0:10}n$i" || return 1
        ip link set "${TAG:0:10}h$i" master "$BRIDGE" up || return 1
        ip link set "${TAG:0:10}n$i" netns "$ns" || return 1
        ip -n "$ns" addr add "10.77.$octet.$((10 + i))/24" dev "${TAG:0:10}n$i" || return 1
        ip -n "$ns" link set "${TAG:0:10}n$i" up || return 1
        ip -n "$ns" link set lo up || return 1
    done
    HOST_IP=10.77.$octet.1 CDN_IP=10.77.$octet.2
    NETWORK="a network namespace per hive on bridge $BRIDGE (10.77.$octet.0/24); origin and Garage on the bridge"
}
if [ "${NETNS:-1}" = 1 ] && [ "$(id -u)" = 0 ]; then
    make_namespaces 2>"$WORK/log/netns.log" || echo "network namespaces refused ($(tail -1 "$WORK/log/netns.log")); running on loopback" >&2
fi
if [ ${#NAMESPACES[@]} -lt "$MAX_HIVES" ]; then
    for ns in "${NAMESPACES[@]}"; do ip netns del "$ns" 2>/dev/null || true; done
    [ -z "$BRIDGE" ] || ip link del "$BRIDGE" 2>/dev/null || true
    NAMESPACES=() BRIDGE= HOST_IP=127.0.0.1 CDN_IP=127.0.0.2 NETWORK="loopback (no network namespaces)"
fi
echo "network: $NETWORK" >&2
# Runs hive I's command in its namespace (when there are namespaces).
in_hive() { # I CMD...
    local i=$1
    shift
    if [ ${#NAMESPACES[@]} -gt 0 ]; then ip netns exec "$TAG-$i" "$@"; else "$@"; fi
}

"$HUB_BIN" --root "$WORK/files" --bind "$HOST_IP" --cdn-bind "$CDN_IP" --rate-limit $((LINK / CONNECTIONS)) >"$WORK/hub.json" 2>"$WORK/hub.log" &
HUB_PID=$!
for _ in $(seq 100); do [ -s "$WORK/hub.json" ] && break; sleep 0.1; done
HUB=$(sed -n 's/.*"hub":"\([^"]*\)".*/\1/p' "$WORK/hub.json")
[ -n "$HUB" ] || { echo "fake-hub did not start: $(cat "$WORK/hub.log")" >&2; exit 1; }
HUB=${HUB%/}

origin_bytes() { curl -s "$HUB/_admin/counters" | python3 -c 'import json,sys; print(json.load(sys.stdin)["total_bytes_sent"])'; }
reset_counters() { curl -s -X POST "$HUB/_admin/counters/reset" >/dev/null; }
free_port() { python3 -c "import socket; s=socket.socket(); s.bind(('$HOST_IP',0)); print(s.getsockname()[1])"; }
now() { date +%s.%N; }
since() { python3 -c "import time; print(f'{time.time() - $1:.3f}')"; }
. "$ROOT/bench/lib/stats.sh"
ratio() { python3 -c "print(f'{$1 / $2:.3f}')"; }
mbps() { python3 -c "print(f'{$SIZE / $1 / 1e6:.0f}')"; }

# A fresh, empty Garage for every measured case, so no case finds another's blobs; on free
# ports, so a test suite's Garage on the defaults is left alone. Exports the AWS_* variables.
fresh_garage() {
    scripts/garage-dev.sh stop "$GARAGE_DIR"
    rm -rf "$GARAGE_DIR"
    local vars
    vars=$(GARAGE_HOST=$HOST_IP GARAGE_S3_PORT=$(free_port) GARAGE_RPC_PORT=$(free_port) GARAGE_ADMIN_PORT=$(free_port) \
        scripts/garage-dev.sh start "$GARAGE_DIR" 2>>"$WORK/log/garage-dev.log")
    eval "$vars"
    # Only the hives that are meant to use the store get it, through --shared-store.
    unset RBEE_SHARED_STORE
    STORE=s3://rbee-models/bench
}

# N hives at once; STORE=1 gives them the shared store. Prints: wall seconds, origin bytes,
# hives whose catalog says the bytes came from the origin. Fails if any hive fails or has the
# wrong size.
run_hives() { # N STORE TAG
    local n=$1 store=$2 tag=$3 t0 wall bytes from_origin=0 pids=() i dir out
    local args=(--quiet)
    rm -rf "$WORK/hives"
    # N catalogs plus the store's copy must leave the disk 8 GB of room (it is shared).
    local free need
    free=$(df -B1 --output=avail "$WORK" | tail -1)
    need=$(((n + 1) * SIZE + 8000000000))
    [ "$free" -gt "$need" ] || { echo "$tag: $free bytes free, $need needed; lower SIZE_MIB or HIVES" >&2; exit 1; }
    [ "$store" = 0 ] || args+=(--shared-store "$STORE")
    reset_counters
    t0=$(now)
    for i in $(seq "$n"); do
        dir=$WORK/hives/$i
        mkdir -p "$dir"
        HOME=$WORK/home HF_HOME=$WORK/home/hf HF_ENDPOINT=$HUB RBEE_HIVE_NAME=hive-$i \
            in_hive "$i" "$RBEE" --cache-dir "$dir" "${args[@]}" model download "$REF" --connections "$CONNECTIONS" \
            >"$dir/path" 2>"$WORK/log/$tag-$i.err" &
        pids+=($!)
    done
    for i in "${!pids[@]}"; do
        wait "${pids[$i]}" || { echo "hive $((i + 1)) of $tag failed:" >&2; cat "$WORK/log/$tag-$((i + 1)).err" >&2; exit 1; }
    done
    wall=$(since "$t0")
    bytes=$(origin_bytes)
    for i in $(seq "$n"); do
        out=$(head -1 "$WORK/hives/$i/path")
        [ -d "$out" ] && out=$(find "$out" -name model.gguf | head -1)
        [ "$(stat -c %s "$out")" = "$SIZE" ] || { echo "hive $i of $tag: wrong size at $out" >&2; exit 1; }
        # The catalog records a store read as "s3://… (shared store)" in the file's source.
        grep -rqs "(shared store)" "$WORK/hives/$i" --include='*.json' || from_origin=$((from_origin + 1))
    done
    echo "$wall $bytes $from_origin"
}

# A pre-signed GET of the blob, signed here with SigV4 (stdlib only), for curl.
presign() { # KEY
    python3 - "$AWS_ENDPOINT_URL" rbee-models "$1" <<'PY'
import datetime, hashlib, hmac, os, sys, urllib.parse
endpoint, bucket, key = sys.argv[1:4]
access, secret = os.environ["AWS_ACCESS_KEY_ID"], os.environ["AWS_SECRET_ACCESS_KEY"]
region = os.environ.get("AWS_REGION", "garage")
t = datetime.datetime.now(datetime.timezone.utc)
stamp, day = t.strftime("%Y%m%dT%H%M%SZ"), t.strftime("%Y%m%d")
host = urllib.parse.urlsplit(endpoint).netloc
path = "/" + bucket + "/" + urllib.parse.quote(key, safe="/")
scope = f"{day}/{region}/s3/aws4_request"
query = {"X-Amz-Algorithm": "AWS4-HMAC-SHA256", "X-Amz-Credential": f"{access}/{scope}",
         "X-Amz-Date": stamp, "X-Amz-Expires": "3600", "X-Amz-SignedHeaders": "host"}
canonical_query = "&".join(f"{urllib.parse.quote(k, safe='')}={urllib.parse.quote(v, safe='')}"
                           for k, v in sorted(query.items()))
request = "\n".join(["GET", path, canonical_query, f"host:{host}\n", "host", "UNSIGNED-PAYLOAD"])
to_sign = "\n".join(["AWS4-HMAC-SHA256", stamp, scope, hashlib.sha256(request.encode()).hexdigest()])
def mac(k, m): return hmac.new(k, m.encode(), hashlib.sha256).digest()
k = mac(mac(mac(mac(("AWS4" + secret).encode(), day), region), "s3"), "aws4_request")
print(f"{endpoint}{path}?{canonical_query}&X-Amz-Signature={hmac.new(k, to_sign.encode(), hashlib.sha256).hexdigest()}")
PY
}
# Seconds for curl to write the blob to a file on the hives' disk and sync it, as rbee does
# (rbee also verifies the sha256); or to /dev/null with DEST=/dev/null.
curl_blob() { # URL DEST
    local t0 out
    rm -f "$2.part"
    t0=$(now)
    if [ "$2" = /dev/null ]; then
        out=$(curl -s --noproxy '*' -o /dev/null -w '%{size_download}' "$1")
    else
        out=$(curl -s --noproxy '*' -o "$2.part" -w '%{size_download}' "$1")
        sync "$2.part"
    fi
    [ "$out" = "$SIZE" ] || { echo "short download from the store: $out bytes" >&2; exit 1; }
    since "$t0"
    rm -f "$2.part"
}

declare -A WALL BYTES ORIGIN
PLAIN=() PUBLISH=() READ=() CURL_FILE=() CURL_NULL=()
for r in $(seq "$RUNS"); do
    echo "== run $r of $RUNS" >&2
    res=$(run_hives 1 0 "plain-$r")
    read -r w _ _ <<<"$res"
    PLAIN+=("$w")
    for n in $HIVES; do
        fresh_garage
        res=$(run_hives "$n" 1 "store-$n-$r")
        read -r w b o <<<"$res"
        WALL[$n]+="$w " BYTES[$n]+="$b " ORIGIN[$n]+="$o "
        echo "   N=$n: ${w}s, origin $b bytes, $o hive(s) from the origin" >&2
        [ "$n" != 1 ] || PUBLISH+=("$w")
    done
    # The store now holds the blob: a fresh hive reads it, and curl reads the same object.
    res=$(run_hives 1 1 "read-$r")
    read -r w _ _ <<<"$res"
    READ+=("$w")
    url=$(presign "bench/blobs/sha256/$DIGEST")
    CURL_FILE+=("$(curl_blob "$url" "$WORK/curl")")
    CURL_NULL+=("$(curl_blob "$url" /dev/null)")
done
LOAD_END=$(cut -d' ' -f1-3 /proc/loadavg)

PLAIN_MED=$(median_of "${PLAIN[@]}")
PUBLISH_MED=$(median_of "${PUBLISH[@]}")
READ_MED=$(median_of "${READ[@]}")
CF_MED=$(median_of "${CURL_FILE[@]}")
CN_MED=$(median_of "${CURL_NULL[@]}")
mkdir -p "$(dirname "$RESULT_MD")"
{
    echo "# Shared store (Garage), $DATE"
    echo
    echo "Command: \`SIZE_MIB=$SIZE_MIB RUNS=$RUNS HIVES=\"$HIVES\" LINK=$LINK CONNECTIONS=$CONNECTIONS bench/cluster.sh\`"
    echo
    echo "Machine: $(nproc) cores, shared with other work: load average $LOAD_START at the start, $LOAD_END at the end."
    echo "Network: $NETWORK. Fake hub capped at $((LINK / CONNECTIONS)) B/s per response, $CONNECTIONS connections per hive ="
    echo "$((LINK / 1000000)) MB/s for one hive fetching from the origin; single-node Garage ($("$GARAGE" --version 2>/dev/null | head -1)), sqlite metadata, fresh per case."
    echo "Random ${SIZE_MIB} MiB file; median of $RUNS runs; raw runs in brackets."
    echo
    echo "## One origin fetch per cluster"
    echo
    echo "| hives | wall until all ready (s) | / one hive without a store | origin bytes / size | hives that fetched from the origin |"
    echo "|---|---|---|---|---|"
    echo "| 1, no store | $PLAIN_MED [${PLAIN[*]}] | 1.000 | — | 1 |"
    for n in $HIVES; do
        read -ra ws <<<"${WALL[$n]}"
        read -ra bs <<<"${BYTES[$n]}"
        wm=$(median_of "${ws[@]}")
        bm=$(median_of "${bs[@]}")
        echo "| $n | $wm [${ws[*]}] | $(ratio "$wm" "$PLAIN_MED") | $(ratio "$bm" "$SIZE") (max $(ratio "$(printf '%s\n' "${bs[@]}" | sort -n | tail -1)" "$SIZE")) | ${ORIGIN[$n]% } |"
    done
    echo
    echo "Targets: origin bytes <= 1.02 x size; N=4 wall <= 1.3 x one hive without a store."
    echo
    echo "## Store reads and publishing"
    echo
    echo "| case | median (s) | runs | MB/s | ratio | target |"
    echo "|---|---|---|---|---|---|"
    echo "| rbee, fresh hive, from the store (verified, durable) | $READ_MED | ${READ[*]} | $(mbps "$READ_MED") | $(ratio "$CF_MED" "$READ_MED") of curl to a file | >= 0.80 |"
    echo "| curl of the blob, pre-signed, to a file + sync | $CF_MED | ${CURL_FILE[*]} | $(mbps "$CF_MED") | | |"
    echo "| curl of the blob, pre-signed, to /dev/null | $CN_MED | ${CURL_NULL[*]} | $(mbps "$CN_MED") | $(ratio "$CN_MED" "$READ_MED") (rbee over this) | |"
    echo "| one hive, origin + publish to an empty store | $PUBLISH_MED | ${PUBLISH[*]} | | $(ratio "$PUBLISH_MED" "$PLAIN_MED") of no store | <= 1.10 |"
    echo "| one hive, origin, no store | $PLAIN_MED | ${PLAIN[*]} | $(mbps "$PLAIN_MED") | 1.000 | |"
} >"$RESULT_MD"
cat "$RESULT_MD"
