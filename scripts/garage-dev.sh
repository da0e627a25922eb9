#!/usr/bin/env bash
# Starts a single-node Garage (the S3-compatible store for rbee's shared-store tier) on
# loopback, with sqlite metadata, and creates its layout, a bucket and a key. Prints the
# variables rbee needs on stdout (eval-able); everything else goes to stderr.
#
#   eval "$(scripts/garage-dev.sh start /tmp/garage)"   # then: rbee --shared-store "$RBEE_SHARED_STORE" …
#   scripts/garage-dev.sh stop /tmp/garage
#
# Settings (environment): GARAGE (the binary; default `garage` on PATH or ~/.cargo/bin/garage),
# GARAGE_S3_PORT (3900), GARAGE_RPC_PORT (3901), GARAGE_ADMIN_PORT (3903), GARAGE_BUCKET
# (rbee-models), GARAGE_HOST (127.0.0.1: the address Garage listens on and is reached at),
# GARAGE_WATCH_PID (stop Garage when that process ends: test binaries that start it).
set -euo pipefail

usage() { echo "usage: $0 start|stop DIR" >&2; exit 2; }
[ $# -eq 2 ] || usage
action=$1
dir=$2

garage_bin() {
  if [ -n "${GARAGE:-}" ]; then echo "$GARAGE"; return; fi
  if command -v garage >/dev/null 2>&1; then command -v garage; return; fi
  if [ -x "$HOME/.cargo/bin/garage" ]; then echo "$HOME/.cargo/bin/garage"; return; fi
  echo "garage is not installed: cargo install --locked garage (about 11 minutes the first time)" >&2
  exit 3
}

case "$action" in
stop)
  if [ -f "$dir/garage.pid" ]; then
    pid=$(cat "$dir/garage.pid")
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
    rm -f "$dir/garage.pid"
  fi
  exit 0
  ;;
start) ;;
*) usage ;;
esac

bin=$(garage_bin)
host=${GARAGE_HOST:-127.0.0.1}
s3_port=${GARAGE_S3_PORT:-3900}
rpc_port=${GARAGE_RPC_PORT:-3901}
admin_port=${GARAGE_ADMIN_PORT:-3903}
bucket=${GARAGE_BUCKET:-rbee-models}
mkdir -p "$dir/meta" "$dir/data"
dir=$(cd "$dir" && pwd)
config="$dir/garage.toml"
secret=$(od -An -tx1 -N32 /dev/urandom | tr -d ' \n')
cat >"$config" <<TOML
metadata_dir = "$dir/meta"
data_dir = "$dir/data"
db_engine = "sqlite"
replication_factor = 1
compression_level = "none"
rpc_bind_addr = "$host:$rpc_port"
rpc_public_addr = "$host:$rpc_port"
rpc_secret = "$secret"

[s3_api]
s3_region = "garage"
api_bind_addr = "$host:$s3_port"
root_domain = ".s3.garage.localhost"

[admin]
api_bind_addr = "$host:$admin_port"
TOML

g() { "$bin" -c "$config" "$@"; }

# Detached from this shell's job control, so the caller's pipes close when the script ends.
setsid "$bin" -c "$config" server >"$dir/garage.log" 2>&1 < /dev/null &
echo $! >"$dir/garage.pid"
if [ -n "${GARAGE_WATCH_PID:-}" ]; then
  garage_pid=$(cat "$dir/garage.pid")
  setsid bash -c "while kill -0 $GARAGE_WATCH_PID 2>/dev/null && kill -0 $garage_pid 2>/dev/null; do sleep 1; done; kill $garage_pid 2>/dev/null" \
    >/dev/null 2>&1 </dev/null &
fi

for _ in $(seq 100); do
  if g status >/dev/null 2>&1; then break; fi
  if ! kill -0 "$(cat "$dir/garage.pid")" 2>/dev/null; then
    echo "garage exited at start; its log:" >&2
    tail -20 "$dir/garage.log" >&2
    exit 1
  fi
  sleep 0.1
done
node=$(g node id -q 2>/dev/null | cut -d@ -f1)
g layout assign -z dc1 -c 1G "$node" >&2
g layout apply --version 1 >&2
g bucket create "$bucket" >&2
keyinfo=$(g key create rbee-dev)
key_id=$(printf '%s\n' "$keyinfo" | sed -n 's/^Key ID:[[:space:]]*//p' | head -1)
key_secret=$(printf '%s\n' "$keyinfo" | sed -n 's/^Secret key:[[:space:]]*//p' | head -1)
if [ -z "$key_id" ] || [ -z "$key_secret" ]; then
  echo "could not read the key garage created; its answer was:" >&2
  printf '%s\n' "$keyinfo" | sed 's/^Secret key:.*/Secret key: (hidden)/' >&2
  exit 1
fi
g bucket allow --read --write --owner "$bucket" --key "$key_id" >&2

cat <<ENV
export AWS_ENDPOINT_URL=http://$host:$s3_port
export AWS_REGION=garage
export AWS_ACCESS_KEY_ID=$key_id
export AWS_SECRET_ACCESS_KEY=$key_secret
export RBEE_SHARED_STORE=s3://$bucket
export GARAGE_DIR=$dir
ENV
echo "garage is serving s3://$bucket at http://$host:$s3_port (pid $(cat "$dir/garage.pid"); stop: $0 stop $dir)" >&2
