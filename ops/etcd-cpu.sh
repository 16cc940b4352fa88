#!/usr/bin/env bash
# CPU per put of the etcd baseline, for comparison with the cpu_us figures
# of `enclavectl bench raft|messages` (all nodes' CPU per acknowledged
# write). Runs ../shared/peers/etcd-bench.sh for one connection count and
# samples the etcd members' CPU (utime + stime in /proc/PID/stat) from the
# moment wrk starts to the moment it ends.
# Usage: ops/etcd-cpu.sh [seconds=10] [connections=64]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
bench=${ETCD_BENCH:-$here/../../shared/peers/etcd-bench.sh}
[ -x "$bench" ] || { echo "etcd-cpu.sh: $bench not found (set ETCD_BENCH)" >&2; exit 2; }
secs=${1:-10}; conns=${2:-64}
out=$(mktemp); trap 'rm -f "$out"' EXIT
ticks=$(getconf CLK_TCK)
cpu() { # total CPU ticks of the running etcd members
  local t=0 p f
  for p in $(pgrep -x etcd || true); do
    read -r -a f <"/proc/$p/stat" 2>/dev/null || continue
    t=$((t + f[13] + f[14]))
  done
  echo "$t"
}
"$bench" "$secs" "$conns" >"$out" 2>&1 &
bp=$!
while ! pgrep -x wrk >/dev/null; do
  kill -0 "$bp" 2>/dev/null || { cat "$out"; echo "etcd-cpu.sh: the benchmark ended before wrk started" >&2; exit 1; }
  sleep 0.02
done
c0=$(cpu); c1=$c0
while pgrep -x wrk >/dev/null; do c1=$(cpu); sleep 0.05; done
wait "$bp"
cat "$out"
reqs=$(sed -n 's/.*conns=[0-9]* reqs=\([0-9]*\).*/\1/p' "$out" | head -1)
[ -n "$reqs" ] && [ "$reqs" -gt 0 ] || { echo "etcd-cpu.sh: no request count in the output" >&2; exit 1; }
python3 -c "import sys; c=($c1-$c0)/$ticks; print(f'etcd members cpu_s={c:.2f} cpu_us_per_put={c*1e6/$reqs:.0f}')"
