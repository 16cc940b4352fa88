#!/usr/bin/env bash
# Soak-test failover before go-live: start a throw-away test cluster of real
# `enclave` processes (fresh CA, own data dirs, network namespaces for
# partitions), run the messaging workload through random nodes, inject
# random faults for --duration, heal, check the whole history and print a
# report. See docs/operator/failover-testing.md.
#
#   ops/chaos.sh [--duration 30m] [--faults kill,pause,partition] [--nodes 3|5]
#                [--clients 8] [--conversations 8] [--seed 1] [--hold 5s]
#                [--quiet 5s] [--keep-logs DIR] [--report FILE]
#
# Faults: kill, pause, partition, power, clock, slow-disk, or single ones
# (kill-leader, kill-follower, pause-leader, pause-follower, partition-leader,
# one-way, split-majority, split-2-2-1, power-loss-leader, power-loss-all,
# clock-jump, slow-disk). Partitions need root with iproute2 and nftables
# (installed here when missing); without them they are skipped, with the
# reason printed. Power faults need gcc (the shim is built on first use).
# Exit status: 0 = the checker found nothing, 1 = it found problems
# (printed with their evidence), 2 = the run itself failed.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
case " $* " in *" -h "*|*" --help "*) sed -n 2,19p "$0"; exit 0 ;; esac
if [ "$(id -u)" = 0 ] && ! command -v nft >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1; then
  echo "installing nftables for the partition faults..." >&2
  apt-get install -y -q nftables >/dev/null 2>&1 \
    || (apt-get update -q >/dev/null 2>&1 && apt-get install -y -q nftables >/dev/null 2>&1) \
    || echo "could not install nftables: partition faults will be skipped" >&2
fi
echo "building (release)..." >&2
(cd "$root" && cargo build -q --release --workspace --bins)
exec "$root/target/release/enclave-chaos" "$@"
