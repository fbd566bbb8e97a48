#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Response-cache hits under load, against nginx's proxy_cache, on 127.0.0.1 only.
#
#   benchmarks/load/cache.sh [--runs 5] [--duration 5] [--bodies tiny,4k,64k] [--conns 64]
#
# Photon (one worker, its `/**` route caching with ttl 1h) and peers.sh's nginx-cache target
# (one worker, proxy_cache_valid 200 1h, proxy_cache_lock on) both answer from their caches
# after one warm-up request per body; peers.sh measures them, and nginx proxying without a
# cache, in alternating rounds with wrk (keep-alive). Its summary prints req/s, p50/p99 and
# CPU per request, and each target's ratio to nginx in the same round: the cache-hit ratio is
# photon / nginx-cache. Results go to benchmarks/load/results/<time>-cache/.
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
BIN=${PHOTON_BIN:-$ROOT/build/photon}
RUNS=5
DUR=5
BODIES=tiny,4k,64k
CONNS=64
while [ $# -gt 0 ]; do
    case "$1" in
        --runs) RUNS=$2; shift ;;
        --duration) DUR=$2; shift ;;
        --bodies) BODIES=$2; shift ;;
        --conns) CONNS=$2; shift ;;
        -h|--help) sed -n '2,13p' "$0"; exit 0 ;;
        *) echo "unknown option $1" >&2; exit 2 ;;
    esac
    shift
done
[ -x "$BIN" ] || { echo "build the gateway first (make)" >&2; exit 1; }
for need in nginx wrk curl; do
    command -v "$need" >/dev/null || { echo "missing $need (sh contrib/install-deps.sh --bench)" >&2; exit 1; }
done
OUT=$HERE/results/$(date +%Y%m%d-%H%M%S)-cache
S=$(mktemp -d /tmp/photon-cache.XXXXXX)
mkdir -p "$OUT"
PORT=19230
cleanup() {
    [ -f "$S/photon.pid" ] && kill "$(cat "$S/photon.pid")" 2>/dev/null || true
    sleep 0.5
    rm -rf "$S"
}
trap cleanup EXIT

cat >"$S/photon.yaml" <<CONF
server:
  http_addr: "127.0.0.1:$PORT"
  worker_processes: 1
  pid_file: "$S/photon.pid"
  max_connections: 100000
  access_log: "off"
  log_level: warn
load_balancing:
  backends:
    bench:
      upstreams:
        - address: "127.0.0.1:19001"
        - address: "127.0.0.1:19002"
      health_check:
        check_type: tcp
        interval: "10s"
routes:
  - id: all
    path: "/**"
    backend: bench
    cache:
      enabled: true
      ttl: "1h"
cache:
  enabled: true
  max_memory: 268435456
  max_body_size: 1048576
health_check:
  interval: "10s"
  timeout: "2s"
metrics:
  prometheus: false
CONF
taskset -c 0 "$BIN" -c "$S/photon.yaml" >"$S/photon.log" 2>&1 &
for _ in $(seq 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && break
    sleep 0.1
done
echo "photon cache on 127.0.0.1:$PORT (pid file $S/photon.pid); peers.sh starts the backends"
# The warm-up requests (peers.sh checks each target first) fill both caches; the X-Cache of a
# second request shows they are hits.
bash "$HERE/peers.sh" --targets nginx,nginx-cache --target "photon-cache=$PORT" \
    --runs "$RUNS" --duration "$DUR" --bodies "$BODIES" --conns "$CONNS" --out "$OUT" \
    --pin-targets 2>&1 | tee "$OUT/run.log"
for p in / /4k /64k; do
    printf 'photon %s: ' "$p"
    curl -s -D - -o /dev/null --max-time 3 "http://127.0.0.1:$PORT$p" | tr -d '\r' |
        awk -F': ' 'tolower($1) == "x-cache" {print $2}' || true
done
