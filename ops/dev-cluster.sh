#!/usr/bin/env bash
# Start a local N-node Enclave cluster on loopback with a fresh CA, for demos,
# benchmarks and failover drills. Everything lives under one directory.
#
#   ops/dev-cluster.sh [--nodes 3] [--dir ./enclave-cluster] [--release]
#   ops/dev-cluster.sh --stop [--dir ./enclave-cluster]
#
# Node i listens on 127.0.0.1: peer 7400+10i, api 8443+10i, admin 9443+10i.
# node-1 holds the CA (tls.ca_dir) so `enclave start --join` works against it.
# DEV_CLUSTER_BIN=/path/with/enclave+enclavectl runs those binaries instead of
# building (to compare two builds on the same machine in the same hour).
set -euo pipefail
nodes=3; dir=./enclave-cluster; profile=debug; stop=0
while [ $# -gt 0 ]; do
  case "$1" in
    --nodes) nodes=$2; shift 2 ;;
    --dir) dir=$2; shift 2 ;;
    --release) profile=release; shift ;;
    --stop) stop=1; shift ;;
    -h|--help) sed -n 2,10p "$0"; exit 0 ;;
    *) echo "unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done
root=$(cd "$(dirname "$0")/.." && pwd)
if [ "$stop" = 1 ]; then
  pids=()
  for p in "$dir"/node-*/pid; do [ -f "$p" ] && pids+=("$(cat "$p")"); done
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  # Wait (bounded) until they have really exited.
  for t in $(seq 1 100); do
    alive=0; for pid in "${pids[@]}"; do kill -0 "$pid" 2>/dev/null && alive=1; done
    [ "$alive" = 0 ] && break; sleep 0.1
  done
  echo "stopped the nodes under $dir"; exit 0
fi
case "$nodes" in 1|3|5|7) ;; *) echo "--nodes must be 1, 3, 5 or 7" >&2; exit 2 ;; esac
flag=""; [ "$profile" = release ] && flag="--release"
if [ -n "${DEV_CLUSTER_BIN:-}" ]; then
  bin=$(cd "$DEV_CLUSTER_BIN" && pwd)
  [ -x "$bin/enclave" ] && [ -x "$bin/enclavectl" ] || { echo "DEV_CLUSTER_BIN=$DEV_CLUSTER_BIN: no enclave and enclavectl binaries there" >&2; exit 2; }
else
  echo "building ($profile)..."
  (cd "$root" && cargo build -q $flag --bins -p enclave-node -p enclave-ops)
  bin="$root/target/$profile"
fi
ctl() { "$bin/enclavectl" --cert-dir "$dir/operator" --endpoint "https://127.0.0.1:9453" "$@"; }
mkdir -p "$dir"; dir=$(cd "$dir" && pwd)
[ -f "$dir/ca/ca.pem" ] || "$bin/enclavectl" ca init --dir "$dir/ca" --name "Enclave dev-cluster CA" >/dev/null
[ -f "$dir/operator/cert.pem" ] || "$bin/enclavectl" cert issue operator --dir "$dir/ca" --name dev-admin --role sysadmin --days 365 --out "$dir/operator" >/dev/null
fresh=0; [ -d "$dir/node-1/store" ] || fresh=1
for i in $(seq 1 "$nodes"); do
  n="$dir/node-$i"; mkdir -p "$n"
  [ -f "$n/tls/cert.pem" ] || "$bin/enclavectl" cert issue node --dir "$dir/ca" --name "node-$i" --ip 127.0.0.1 --dns localhost --days 365 --out "$n/tls" >/dev/null
  ln -sf "$dir/ca/crl.pem" "$n/tls/crl.pem"
  if [ -f "$n/pid" ] && kill -0 "$(cat "$n/pid")" 2>/dev/null; then continue; fi
  ENCLAVE_TLS__CA_DIR=$([ "$i" = 1 ] && echo "$dir/ca" || echo "") \
  "$bin/enclave" start --data-dir "$n" \
    --listen-peer "127.0.0.1:$((7400 + 10 * i))" --listen-api "127.0.0.1:$((8443 + 10 * i))" --listen-admin "127.0.0.1:$((9443 + 10 * i))" \
    >"$n/stdout.log" 2>"$n/enclave.log" &
  echo $! > "$n/pid"
done
for t in $(seq 1 100); do ctl status >/dev/null 2>&1 && break; sleep 0.1; done
if [ "$fresh" = 1 ]; then
  ctl cluster init >/dev/null
  for i in $(seq 2 "$nodes"); do
    ctl cluster add --name "node-$i" --peer "127.0.0.1:$((7400 + 10 * i))" --api "127.0.0.1:$((8443 + 10 * i))" --admin "127.0.0.1:$((9443 + 10 * i))" >/dev/null
  done
fi
for t in $(seq 1 300); do
  v=$(ctl cluster status --output json 2>/dev/null | python3 -c 'import json,sys; s=json.load(sys.stdin); print(sum(1 for m in s["members"] if m["voter"] and m.get("status")))' 2>/dev/null || echo 0)
  [ "$v" = "$nodes" ] && break; sleep 0.2
done
ctl cluster status
cat <<MSG

Cluster of $nodes nodes under $dir (logs: $dir/node-*/enclave.log)
  admin endpoints: $(for i in $(seq 1 "$nodes"); do printf 'https://127.0.0.1:%s ' $((9443 + 10 * i)); done)
  operator certs:  $dir/operator   (sysadmin)
Try:   $bin/enclavectl --cert-dir $dir/operator --endpoint https://127.0.0.1:9453 cluster status
Bench: $bin/enclavectl --cert-dir $dir/operator --endpoint https://127.0.0.1:9453 bench raft --clients 1,16,64 --duration 10s
Stop:  $0 --stop --dir $dir
MSG
