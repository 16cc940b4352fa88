#!/usr/bin/env bash
# The etcd baseline of ../shared/peers/etcd-bench.sh with TLS on every hop,
# as Enclave has it: the members talk to each other over mutual TLS
# (--peer-client-cert-auth) and wrk reaches the leader over HTTPS (server
# certificate only; Enclave's clients likewise present a bearer token, not
# a certificate). Keys are ECDSA P-256, as Enclave's internal CA issues.
# Same load (durable replicated puts of ~150-byte values through the v3
# JSON gateway, wrk, leader only) and the same output lines, so
# `ETCD_BENCH=ops/etcd-tls-bench.sh ops/etcd-cpu.sh` measures its CPU per put.
# Usage: etcd-tls-bench.sh [seconds] [connections...]
set -euo pipefail
command -v etcd >/dev/null && command -v wrk >/dev/null && command -v openssl >/dev/null || {
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq etcd-server etcd-client wrk openssl >/dev/null; }
secs=${1:-10}; shift || true
conns=${*:-1 16 64}
d=$(mktemp -d); pids=()
cleanup(){ for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$d"; }
trap cleanup EXIT

# A throwaway CA and one certificate per member, for 127.0.0.1 (server and
# client use: the same certificate serves the peer port and dials peers).
openssl ecparam -name prime256v1 -genkey -noout -out "$d/ca.key" 2>/dev/null
openssl req -x509 -new -key "$d/ca.key" -sha256 -days 2 -subj "/CN=etcd-bench-ca" -out "$d/ca.pem" 2>/dev/null
for i in 1 2 3; do
  openssl ecparam -name prime256v1 -genkey -noout -out "$d/e$i.key" 2>/dev/null
  openssl req -new -key "$d/e$i.key" -subj "/CN=e$i" -out "$d/e$i.csr" 2>/dev/null
  printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth,clientAuth\nkeyUsage=digitalSignature\n' >"$d/e$i.ext"
  openssl x509 -req -in "$d/e$i.csr" -CA "$d/ca.pem" -CAkey "$d/ca.key" -CAcreateserial -days 2 -sha256 \
    -extfile "$d/e$i.ext" -out "$d/e$i.pem" 2>/dev/null
done

cluster="e1=https://127.0.0.1:23801,e2=https://127.0.0.1:23802,e3=https://127.0.0.1:23803"
for i in 1 2 3; do
  etcd --name e$i --data-dir "$d/e$i" --listen-peer-urls https://127.0.0.1:2380$i --initial-advertise-peer-urls https://127.0.0.1:2380$i \
    --listen-client-urls https://127.0.0.1:2379$i --advertise-client-urls https://127.0.0.1:2379$i \
    --initial-cluster "$cluster" --initial-cluster-state new --initial-cluster-token bench \
    --cert-file "$d/e$i.pem" --key-file "$d/e$i.key" \
    --peer-cert-file "$d/e$i.pem" --peer-key-file "$d/e$i.key" --peer-trusted-ca-file "$d/ca.pem" --peer-client-cert-auth \
    >"$d/e$i.log" 2>&1 &
  pids+=($!)
done
ctl() { ETCDCTL_API=3 etcdctl --cacert "$d/ca.pem" "$@"; }
leader=""
for t in $(seq 1 100); do
  leader=$(ctl --endpoints https://127.0.0.1:23791,https://127.0.0.1:23792,https://127.0.0.1:23793 endpoint status -w json 2>/dev/null \
    | python3 -c 'import json,sys
try: s=json.load(sys.stdin)
except Exception: sys.exit(0)
l=[x["Endpoint"] for x in s if x["Status"]["leader"]==x["Status"]["header"]["member_id"]]
print(l[0] if len(s)==3 and l else "")' || true)
  [ -n "$leader" ] && break; sleep 0.3
done
[ -n "$leader" ] || { echo "no leader"; tail -5 "$d"/e1.log; exit 1; }
cat > "$d/put.lua" <<'LUA'
local counter = 0
local val = string.rep("v", 150)
local b64 = function(s) local b='ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/'
  return ((s:gsub('.', function(x) local r,b='',x:byte() for i=8,1,-1 do r=r..(b%2^i-b%2^(i-1)>0 and '1' or '0') end return r end)..'0000'):gsub('%d%d%d?%d?%d?%d?', function(x)
  if (#x < 6) then return '' end local c=0 for i=1,6 do c=c+(x:sub(i,i)=='1' and 2^(6-i) or 0) end return b:sub(c+1,c+1) end)..({ '', '==', '=' })[#s%3+1]) end
local v64 = b64(val)
request = function()
  counter = counter + 1
  local k = b64(string.format("k-%d-%d", math.random(1,1e9), counter))
  return wrk.format("POST", "/v3/kv/put", {["Content-Type"]="application/json"}, '{"key":"'..k..'","value":"'..v64..'"}')
end
done = function(summary, latency, requests)
  io.write(string.format("RESULT %d %.0f %.2f %.2f %d\n", summary.requests, summary.requests/(summary.duration/1e6), latency:percentile(50)/1000, latency:percentile(99)/1000, summary.errors.status + summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout))
end
LUA
echo "etcd $(etcd --version | head -1 | awk '{print $3}') tls=client+peer-mtls leader=$leader value=150B secs=$secs"
for c in $conns; do
  t=2; [ "$c" -lt 2 ] && t=1
  out=$(wrk -t$t -c$c -d${secs}s --latency -s "$d/put.lua" "$leader" 2>&1 | grep RESULT)
  set -- $out
  echo "conns=$c reqs=$2 rps=$3 p50_ms=$4 p99_ms=$5 errors=$6"
done
n=$(ctl --endpoints "$leader" endpoint status -w json | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["Status"]["header"]["revision"]-1)')
echo "puts_in_store=$n"
