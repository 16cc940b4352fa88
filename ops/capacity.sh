#!/usr/bin/env bash
# One row of the capacity table in docs/operator/sizing.md: a fresh local
# 3-node release cluster seeded by `enclavectl bench scale` with MEMBERS
# members and GROUPS groups, then measured: import and seed times, p99 of
# each operation at a fixed moderate load, per-node RSS and disk, the
# snapshot, a fresh 4th node joining and catching up, a cold restart, and
# `enclave defrag` on each node in turn (disk before and after).
#
#   ops/capacity.sh MEMBERS GROUPS [--dir DIR] [--group-mix 90,9,1] [--rate 200]
#
# Prints a summary and leaves DIR/capacity.json. Needs a release build
# (`cargo build --release`) and the dev-cluster ports (7410.., 8453.., 9453..).
# DEV_CLUSTER_BIN=DIR runs the enclave and enclavectl binaries in DIR
# instead (a copy, so a rebuild during the hour-long 160k row changes
# nothing under it).
set -euo pipefail
[ $# -ge 2 ] || { sed -n 2,15p "$0"; exit 2; }
members=$1; groups=$2; shift 2
dir=/tmp/enclave-capacity-$members-$groups; mix=90,9,1; rate=200
while [ $# -gt 0 ]; do
  case "$1" in
    --dir) dir=$2; shift 2 ;;
    --group-mix) mix=$2; shift 2 ;;
    --rate) rate=$2; shift 2 ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
done
root=$(cd "$(dirname "$0")/.." && pwd)
bin=$root/target/release
if [ -n "${DEV_CLUSTER_BIN:-}" ]; then
  bin=$(cd "$DEV_CLUSTER_BIN" && pwd)
  [ -x "$bin/enclave" ] && [ -x "$bin/enclavectl" ] || { echo "DEV_CLUSTER_BIN=$DEV_CLUSTER_BIN: no enclave and enclavectl binaries there" >&2; exit 2; }
  export DEV_CLUSTER_BIN=$bin
fi
ctl() { "$bin/enclavectl" --cert-dir "$dir/operator" --endpoint https://127.0.0.1:9453 "$@"; }
now() { date +%s.%N; }
status_json() { ctl cluster status --output json 2>/dev/null; }

"$root/ops/dev-cluster.sh" --stop --dir "$dir" >/dev/null 2>&1 || true
rm -rf "$dir"
# A snapshot every 5,000 entries (default 20,000), so even the small rows
# build one and a joining node catches up by snapshot.
export ENCLAVE_RAFT__SNAPSHOT_EVERY=5000
ENCLAVE_API__TOKEN_RATE_PER_SEC=0 "$root/ops/dev-cluster.sh" --release --dir "$dir" >/dev/null

echo "== seed and run: $members members, $groups groups (mix $mix), $rate ops/s" >&2
ctl --output json bench scale --members "$members" --groups "$groups" --group-mix "$mix" \
  --active 200 --clients 64 --rate "$rate" --duration 30s --verify-via history > "$dir/scale.json"

# Let the followers finish applying, then measure what is on disk.
sleep 5
disk() { du -sb "$dir"/node-"$1"/store "$dir"/node-"$1"/snapshots 2>/dev/null | awk '{s+=$1} END {printf "%.0f\n", s}'; }
snap() { find "$dir/node-$1/snapshots" -type f -printf '%s\n' 2>/dev/null | sort -n | tail -1 | grep . || echo 0; }
d1=$(disk 1); d2=$(disk 2); d3=$(disk 3); s1=$(snap 1)
built=$(grep -h "snapshot built" "$dir"/node-*/enclave.log | tail -1 || true)
echo "   disk per node: $d1 $d2 $d3 bytes; largest snapshot of node-1: $s1 bytes" >&2

echo "== a fresh node joins and catches up" >&2
n4=$dir/node-4; mkdir -p "$n4"
"$bin/enclavectl" cert issue node --dir "$dir/ca" --name node-4 --ip 127.0.0.1 --dns localhost --days 30 --out "$n4/tls" >/dev/null
ln -sf "$dir/ca/crl.pem" "$n4/tls/crl.pem"
"$bin/enclave" start --data-dir "$n4" --listen-peer 127.0.0.1:7450 --listen-api 127.0.0.1:8493 --listen-admin 127.0.0.1:9493 \
  >"$n4/stdout.log" 2>"$n4/enclave.log" &
echo $! > "$n4/pid"
sleep 1
t0=$(now)
ctl cluster add --name node-4 --peer 127.0.0.1:7450 --api 127.0.0.1:8493 --admin 127.0.0.1:9493 >/dev/null
# Added as a learner; promoted to voter once it has caught up.
join_s=""
for _ in $(seq 1 6000); do
  voter=$(status_json | python3 -c 'import json,sys
s=json.load(sys.stdin)
print(1 if any(m.get("voter") and m.get("name")=="node-4" for m in s["members"]) else 0)' 2>/dev/null || echo 0)
  if [ "$voter" = 1 ]; then join_s=$(python3 -c "print(round($(now)-$t0,1))"); break; fi
  sleep 0.2
done
d4=$(disk 4)
echo "   caught up and promoted after ${join_s:-never} s; its disk: $d4 bytes" >&2

echo "== cold restart of all four" >&2
"$root/ops/dev-cluster.sh" --stop --dir "$dir" >/dev/null
kill "$(cat "$n4/pid")" 2>/dev/null || true; sleep 1
t0=$(now)
# The binaries directly (dev-cluster.sh would run cargo first).
for i in 1 2 3; do
  ENCLAVE_API__TOKEN_RATE_PER_SEC=0 "$bin/enclave" start --data-dir "$dir/node-$i" \
    --listen-peer "127.0.0.1:$((7400 + 10 * i))" --listen-api "127.0.0.1:$((8443 + 10 * i))" --listen-admin "127.0.0.1:$((9443 + 10 * i))" \
    >>"$dir/node-$i/stdout.log" 2>>"$dir/node-$i/enclave.log" &
  echo $! > "$dir/node-$i/pid"
done
"$bin/enclave" start --data-dir "$n4" --listen-peer 127.0.0.1:7450 --listen-api 127.0.0.1:8493 --listen-admin 127.0.0.1:9493 \
  >>"$n4/stdout.log" 2>>"$n4/enclave.log" &
echo $! > "$n4/pid"
restart_s=""
for _ in $(seq 1 3000); do
  if curl -sk --max-time 1 https://127.0.0.1:8453/readyz | grep -q ready; then restart_s=$(python3 -c "print(round($(now)-$t0,1))"); break; fi
  sleep 0.1
done
echo "   ready after ${restart_s:-never} s" >&2
rss_after_restart=$(for i in 1 2 3; do ps -o rss= -p "$(cat "$dir/node-$i/pid")" 2>/dev/null || echo 0; done | sort -n | tail -1)

echo "== enclave defrag, one node at a time (the others keep serving)" >&2
: > "$dir/defrag.jsonl"
for i in 1 2 3 4; do
  n=$dir/node-$i
  if [ "$i" = 4 ]; then ports=(7450 8493 9493); else ports=($((7400 + 10 * i)) $((8443 + 10 * i)) $((9443 + 10 * i))); fi
  pid=$(cat "$n/pid"); kill "$pid" 2>/dev/null || true
  while kill -0 "$pid" 2>/dev/null; do sleep 0.1; done
  "$bin/enclave" defrag --json --data-dir "$n" 2>/dev/null | python3 -c "import json,sys; r=json.load(sys.stdin); r['node']=$i; print(json.dumps(r))" >> "$dir/defrag.jsonl"
  ENCLAVE_API__TOKEN_RATE_PER_SEC=0 "$bin/enclave" start --data-dir "$n" \
    --listen-peer "127.0.0.1:${ports[0]}" --listen-api "127.0.0.1:${ports[1]}" --listen-admin "127.0.0.1:${ports[2]}" \
    >>"$n/stdout.log" 2>>"$n/enclave.log" &
  echo $! > "$n/pid"
  for _ in $(seq 1 3000); do curl -sk --max-time 1 "https://127.0.0.1:${ports[1]}/readyz" | grep -q ready && break; sleep 0.1; done
  tail -1 "$dir/defrag.jsonl" | python3 -c "import json,sys; r=json.load(sys.stdin); mib=lambda b: b/2**20; print('   node-%d: %.0f MiB -> %.0f MiB in %.0f s' % (r['node'], mib(r['bytes_before']), mib(r['bytes_after']), r['seconds']), file=sys.stderr)"
done

python3 - "$dir/scale.json" "$members" "$groups" "$d1" "$d2" "$d3" "$d4" "$s1" "${join_s:-none}" "${restart_s:-none}" "$rss_after_restart" "$built" "$dir/defrag.jsonl" > "$dir/capacity.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
members, groups, d1, d2, d3, d4, s1, join_s, restart_s, rss_restart_kib, built, defrag = sys.argv[2:14]
defrags = [json.loads(l) for l in open(defrag) if l.strip()]
phases = {p["name"]: p for p in r["seed"]["phases"]}
ops = {o["kind"]: o for o in r["run"]["ops"]}
nodes = r["nodes"]
out = {
    "members": int(members), "groups": int(groups),
    "memberships": r["seed"]["group_mix"]["memberships"],
    "members_import_s": round(phases["members"]["seconds"], 1),
    "groups_seed_s": round(phases["groups"]["seconds"], 1),
    "rss_mib_max": round(max((n["rss_bytes_after"] or 0) for n in nodes) / 2**20),
    "rss_after_restart_mib_max": round(int(rss_restart_kib) / 1024),
    "disk_mib": [round(int(d) / 2**20) for d in (d1, d2, d3)],
    "new_node_disk_mib": round(int(d4) / 2**20),
    "snapshot_mib": round(int(s1) / 2**20, 1),
    "snapshot_log": built,
    "join_catch_up_s": join_s, "cold_restart_s": restart_s,
    "p99_ms": {k: round(v["p99_ms"], 1) for k, v in ops.items()},
    "ops_per_sec": round(r["run"]["ops_per_sec"], 1), "errors": r["run"]["errors"],
    "cpu_us_per_op": r["run"].get("cpu_us_per_op"),
    "verify": all(v["ok"] for v in (r["verify"] or [])),
    "defrag": [{"node": d["node"], "seconds": round(d["seconds"]), "before_mib": round(d["bytes_before"] / 2**20),
                "after_mib": round(d["bytes_after"] / 2**20), "data_mib": round(d["logical_bytes"] / 2**20),
                "records": d["records"],
                # Against the keys and values the store holds (the snapshot
                # file is compressed, ~0.1-0.2x of them).
                "after_per_data": round(d["bytes_after"] / max(d["logical_bytes"], 1), 2)} for d in defrags],
}
print(json.dumps(out, indent=1))
PY
cat "$dir/capacity.json"
"$root/ops/dev-cluster.sh" --stop --dir "$dir" >/dev/null
kill "$(cat "$n4/pid")" 2>/dev/null || true
