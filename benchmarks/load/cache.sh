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
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
RUNS=5
DUR=5
BODIES=tiny,4k,64k
CONNS=64
bench_parse_args --runs=RUNS --duration=DUR --bodies=BODIES --conns=CONNS -- "$@"
bench_need_bin
bench_need nginx wrk curl
bench_out cache
bench_scratch cache
PORT=19230

{
    bench_photon_head photon "$PORT" 1
    cat <<CONF
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
} >"$S/photon.yaml"
taskset -c 0 "$BIN" -c "$S/photon.yaml" >"$S/photon.log" 2>&1 & PIDS+=($!)
wait_port "$PORT" "$S/photon.log"
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
