#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# What a Redis-backed rate limit costs, on 127.0.0.1 only: four Photon instances in the same
# run, in front of the same two peers.sh backends, one worker each:
#
#   plain    no limit
#   local    a limit in shared memory (store: local)
#   redis    the same limit in Redis (store: redis, sync: exact: one EVALSHA per request)
#   batched  the same with sync: batched (a lease of rate x 100 ms tokens per EVALSHA)
#   tls      with --tls: the redis target's limit in a second Redis reached over TLS
#            (redis.tls, certificates made with the openssl tool here)
#
# Every limit admits everything (a huge rate), so all four proxy the same requests and the
# difference is the decision itself. peers.sh alternates the targets run by run (wrk, keep-alive,
# tiny bodies) and prints requests/s and latency percentiles per target; the "vs" columns are
# ratios from the same moment.
#
#   benchmarks/load/redis.sh [--runs 5] [--duration 4] [--conns 64] [--pool 2] [--tls]
#
# Needs wrk, redis-server and the peers.sh backends (started here). Results go to
# benchmarks/load/results/<time>-redis/.
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
RUNS=5
DUR=4
CONNS=64
POOL=2
FLAGS=()
bench_parse_args --runs=RUNS --duration=DUR --conns=CONNS --pool=POOL --tls=@FLAGS -- "$@"
TLS=0
[ "${#FLAGS[@]}" -gt 0 ] && TLS=1
bench_need_bin
bench_need wrk redis-server
REDIS_PORT=19400
TLS_PORT=19405
bench_out redis
bench_scratch redis-bench
bench_backends_up

photon_conf() { # NAME PORT MIDDLEWARE(yaml list) STORE SYNC [REDIS_PORT TLS_BLOCK]
    {
        bench_photon_head "$1" "$2" 1
        cat <<EOC
routes:
  - id: all
    path: "/**"
    backend: bench
    middleware: $3
redis:
  address: "127.0.0.1:${6:-$REDIS_PORT}"
  pool_size: $POOL
  command_timeout: "1s"
${7:-}
middleware:
  rate_limiting:
    requests_per_second: 1000000000
    burst: 1000000000
    key: ip
    store: $4
${5:+    sync: $5}
health_check:
  enabled: false
metrics:
  prometheus: false
EOC
    } >"$S/$1.yaml"
}

redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save '' --appendonly no --dir "$S" \
    --daemonize no --logfile "$S/redis.log" & PIDS+=($!)
wait_port "$REDIS_PORT"
photon_conf plain 19401 "[]" local ""
photon_conf local 19402 "[rate_limit]" local ""
photon_conf redis 19403 "[rate_limit]" redis exact
photon_conf batched 19404 "[rate_limit]" redis batched
NAMES="plain local redis batched"
TARGETS=(--target plain=19401 --target local=19402 --target redis=19403 --target batched=19404)
if [ "$TLS" = 1 ]; then
    bench_need openssl
    (
        cd "$S"
        openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout ca.key \
            -out ca.pem -days 2 -subj "/CN=bench CA"
        openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout redis.key \
            -out redis.csr -subj "/CN=redis"
        printf 'subjectAltName=IP:127.0.0.1\n' >redis.ext
        openssl x509 -req -in redis.csr -CA ca.pem -CAkey ca.key -set_serial 2 -days 2 \
            -extfile redis.ext -out redis.pem
    ) >/dev/null 2>&1
    redis-server --port 0 --tls-port "$TLS_PORT" --tls-cert-file "$S/redis.pem" \
        --tls-key-file "$S/redis.key" --tls-ca-cert-file "$S/ca.pem" --tls-auth-clients no \
        --bind 127.0.0.1 --save '' --appendonly no --dir "$S" --daemonize no \
        --logfile "$S/redis-tls.log" & PIDS+=($!)
    wait_port "$TLS_PORT"
    photon_conf tls 19406 "[rate_limit]" redis exact "$TLS_PORT" "  tls:
    ca_file: \"$S/ca.pem\""
    NAMES="$NAMES tls"
    TARGETS+=(--target tls=19406)
fi
for n in $NAMES; do
    "$BIN" -c "$S/$n.yaml" 2>>"$S/photon-$n.log" & PIDS+=($!)
done
for p in 19401 19402 19403 19404; do wait_port "$p"; done
[ "$TLS" = 1 ] && wait_port 19406
sleep 0.5
bash "$HERE/peers.sh" --n 1 --targets none "${TARGETS[@]}" --bodies tiny --runs "$RUNS" \
    --duration "$DUR" --conns "$CONNS" --out "$OUT"
echo "redis commands: $(redis-cli -p "$REDIS_PORT" info commandstats | grep -E 'evalsha|eval:' || true)"
if [ "$TLS" = 1 ]; then
    echo "redis (TLS) commands: $(redis-cli --tls --cacert "$S/ca.pem" -p "$TLS_PORT" info commandstats | grep -E 'evalsha|eval:' || true)"
fi
grep -h "Redis did not decide" "$S"/photon-*.log | tail -3 || true
echo "results: $OUT"
