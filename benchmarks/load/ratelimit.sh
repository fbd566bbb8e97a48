#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Rate limiting under load, on 127.0.0.1 only.
#
#   benchmarks/load/ratelimit.sh [--workers 2] [--rate 200] [--burst 50] [--duration 5]
#                                [--rounds 3] [--overhead-runs 5]
#
# 1. Accuracy against nginx's limit_req (whose zones are shared by its workers too): the same
#    limit — RATE requests per second per client address, a bucket of BURST — on Photon and on
#    nginx, both with N workers in front of the same backends; wrk sends as fast as it can for D
#    seconds; the admitted (2xx) requests of each are printed next to the token-bucket figure
#    BURST + RATE × D. nginx's `burst=B nodelay` admits B + 1 at once, so it gets burst=BURST-1.
# 2. Cost: peers.sh measures the same route with and without a limit that admits everything
#    (two Photon instances, alternating rounds), one worker, tiny bodies.
#
# Needs nginx, wrk and the two peers.sh backends (started here). Results go to
# benchmarks/load/results/<time>-ratelimit/.
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
WORKERS=2
RATE=200
BURST=50
DUR=5
ROUNDS=3
OVERHEAD_RUNS=5
bench_parse_args --workers=WORKERS --rate=RATE --burst=BURST --duration=DUR --rounds=ROUNDS \
    --overhead-runs=OVERHEAD_RUNS -- "$@"
bench_need_bin
bench_need nginx wrk curl
bench_out ratelimit
bench_scratch rl logs tmp
bench_backends_up

photon_conf() { # NAME PORT WORKERS MIDDLEWARE(yaml list) RATE BURST
    {
        bench_photon_head "$1" "$2" "$3"
        cat <<EOF
routes:
  - id: all
    path: "/**"
    backend: bench
    middleware: $4
middleware:
  rate_limiting:
    requests_per_second: $5
    burst: $6
    key: ip
health_check:
  enabled: false
metrics:
  prometheus: false
EOF
    } >"$S/$1.yaml"
}

# ----- 1. accuracy against nginx limit_req -----
cat >"$S/nginx.conf" <<EOF
worker_processes $WORKERS;
daemon off;
pid $S/nginx.pid;
error_log $S/logs/nginx.error.log error;
events { worker_connections 16384; }
http {
    access_log off;
    client_body_temp_path $S/tmp/body;
    proxy_temp_path $S/tmp/proxy;
    fastcgi_temp_path $S/tmp/fastcgi;
    uwsgi_temp_path $S/tmp/uwsgi;
    scgi_temp_path $S/tmp/scgi;
    limit_req_zone \$binary_remote_addr zone=rl:10m rate=${RATE}r/s;
    limit_req_status 429;
    limit_req_log_level info;
    upstream backends {
        server 127.0.0.1:19001;
        server 127.0.0.1:19002;
        keepalive 64;
    }
    server {
        listen 127.0.0.1:19310 reuseport;
        location / {
            limit_req zone=rl burst=$((BURST - 1)) nodelay;
            proxy_pass http://backends;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }
    }
}
EOF
photon_conf limited 19311 "$WORKERS" "[rate_limit]" "$RATE" "$BURST"

# wrk at full speed; prints "total non2xx seconds".
load() {
    bench_wrk "$DUR" -t 2 -c 32 "http://127.0.0.1:$1/" >"$S/wrk.out"
    wrk_counts <"$S/wrk.out"
}

{
    echo "# accuracy: $RATE r/s per client address, bucket $BURST, $WORKERS workers, wrk -t2 -c32 -d${DUR}s"
    printf '%-7s %-6s %10s %10s %10s %14s\n' round proxy seconds admitted refused "burst+rate×t"
} | tee "$OUT/accuracy.txt"
for r in $(seq "$ROUNDS"); do
    for proxy in nginx photon; do
        if [ "$proxy" = nginx ]; then
            nginx -p "$S/" -c "$S/nginx.conf" -e "$S/logs/nginx.error.log" & PIDS+=($!)
            port=19310
        else
            "$BIN" -c "$S/limited.yaml" 2>>"$S/logs/photon.log" & PIDS+=($!)
            port=19311
        fi
        wait_port "$port"
        sleep 0.5
        read -r total non2xx secs < <(load "$port")
        admitted=$((total - non2xx))
        expect=$(awk -v b="$BURST" -v r="$RATE" -v t="$secs" 'BEGIN {printf "%.0f", b + r * t}')
        printf '%-7s %-6s %10s %10d %10d %14s\n' "$r" "$proxy" "$secs" "$admitted" "$non2xx" "$expect" |
            tee -a "$OUT/accuracy.txt"
        bench_stop_last
        sleep 1  # a fresh start: the next run begins with full buckets
    done
done

# ----- 2. cost of a limit that admits everything -----
photon_conf plain 19320 1 "[]" 1000000000 1000000000
photon_conf admits 19321 1 "[rate_limit]" 1000000000 1000000000
taskset -c 0 "$BIN" -c "$S/plain.yaml" 2>>"$S/logs/photon.log" & PIDS+=($!)
taskset -c 0 "$BIN" -c "$S/admits.yaml" 2>>"$S/logs/photon.log" & PIDS+=($!)
wait_port 19320
wait_port 19321
bash "$HERE/peers.sh" --n 1 --targets nginx --target plain=19320 --target rate_limit=19321 \
    --bodies tiny --runs "$OVERHEAD_RUNS" --duration 4 --out "$OUT/overhead"
echo "results: $OUT"
