#!/usr/bin/env bash
# Same-run comparison with etcd (README § CPU per write, next to etcd):
# for each round, etcd's 64-connection put rate and CPU per put in
# plaintext and with TLS on every hop, then Enclave's `bench messages`
# and `bench raft` (64 clients, to the leader and spread over the nodes)
# on a fresh local 3-node release cluster.
#
#   ops/etcd-compare.sh [ROUNDS=2] [SECONDS=10]
#
# DEV_CLUSTER_BIN=DIR runs the enclave and enclavectl binaries in DIR
# (default: a release build, made by ops/dev-cluster.sh). Installs etcd
# and wrk with apt-get if they are missing (etcd-bench.sh does).
set -euo pipefail
rounds=${1:-2}; secs=${2:-10}
root=$(cd "$(dirname "$0")/.." && pwd)
dir=$(mktemp -d /tmp/enclave-etcd-compare.XXXXXX)
bin=$root/target/release
if [ -n "${DEV_CLUSTER_BIN:-}" ]; then bin=$(cd "$DEV_CLUSTER_BIN" && pwd); export DEV_CLUSTER_BIN=$bin; fi
cleanup() { "$root/ops/dev-cluster.sh" --stop --dir "$dir" >/dev/null 2>&1 || true; rm -rf "$dir"; }
trap cleanup EXIT
ENCLAVE_API__TOKEN_RATE_PER_SEC=0 "$root/ops/dev-cluster.sh" --release --dir "$dir" >/dev/null
ctl() { "$bin/enclavectl" --cert-dir "$dir/operator" --endpoint https://127.0.0.1:9453 "$@"; }
# The senders' accounts, made once outside the measured rounds.
ctl bench messages --duration 2s --members 0 >/dev/null 2>&1
for round in $(seq 1 "$rounds"); do
  echo "== round $round $(date -u +%H:%M:%S)"
  echo "-- etcd, plaintext"
  "$root/ops/etcd-cpu.sh" "$secs" 64 2>&1 | grep -E "conns=64|cpu_us_per_put"
  echo "-- etcd, TLS on every hop"
  ETCD_BENCH=$root/ops/etcd-tls-bench.sh "$root/ops/etcd-cpu.sh" "$secs" 64 2>&1 | grep -E "conns=64|cpu_us_per_put"
  echo "-- Enclave messages, --target leader"
  ctl bench messages --duration "${secs}s" --members 0 --target leader 2>&1 | grep -E "^\(a\) senders"
  echo "-- Enclave messages, spread"
  ctl bench messages --duration "${secs}s" --members 0 2>&1 | grep -E "^\(a\) senders"
  echo "-- Enclave kv writes, --target leader"
  ctl bench raft --clients 64 --duration "${secs}s" --no-verify --target leader 2>&1 | grep -E "^clients="
  echo "-- Enclave kv writes, spread"
  ctl bench raft --clients 64 --duration "${secs}s" --no-verify 2>&1 | grep -E "^clients="
done
