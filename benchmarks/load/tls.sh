#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The TLS listener next to nginx's, on 127.0.0.1 only, with the same ECDSA P-256 certificate
# (made here with openssl), the same backends (peers.sh backends-up) and one worker each pinned
# to the same CPU, in alternating rounds:
#   keep-alive  wrk over HTTPS, 64 keep-alive connections: TLS record work per request
#   handshakes  wrk with "Connection: close": one new connection and full handshake per request
#               (TLS 1.3, X25519, no resumption)
# Prints req/s per round and the median ratio Photon/nginx of each case.
#
#   benchmarks/load/tls.sh [--runs 5] [--duration 4]
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
RUNS=5
DUR=4
bench_parse_args --runs=RUNS --duration=DUR -- "$@"
bench_need_bin
bench_need nginx wrk openssl
bench_scratch tls-bench logs tmp
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj /CN=bench.test \
    -addext subjectAltName=DNS:bench.test -keyout "$S/key.pem" -out "$S/cert.pem" 2>/dev/null
PH=19450 NG=19451
cat >"$S/photon.yaml" <<YAML
server:
  http_addr: "127.0.0.1:19452"
  https_addr: "127.0.0.1:$PH"
  tls_cert: "$S/cert.pem"
  tls_key: "$S/key.pem"
  worker_processes: 1
  pid_file: "$S/photon.pid"
  max_connections: 100000
  log_level: warn
load_balancing:
  backends:
    bench:
      upstreams:
        - address: "127.0.0.1:19001"
        - address: "127.0.0.1:19002"
routes:
  - id: all
    path: "/**"
    backend: bench
health_check:
  enabled: false
metrics:
  prometheus: false
YAML
cat >"$S/nginx.conf" <<NGX
worker_processes 1;
daemon off;
pid $S/nginx.pid;
error_log $S/logs/nginx.error.log warn;
events { worker_connections 16384; }
http {
    access_log off;
    tcp_nodelay on;
    keepalive_timeout 300s;
    keepalive_requests 1000000;
    client_body_temp_path $S/tmp/body;
    proxy_temp_path $S/tmp/proxy;
    fastcgi_temp_path $S/tmp/fastcgi;
    uwsgi_temp_path $S/tmp/uwsgi;
    scgi_temp_path $S/tmp/scgi;
    upstream backends {
        server 127.0.0.1:19001;
        server 127.0.0.1:19002;
        keepalive 64;
    }
    server {
        listen 127.0.0.1:$NG ssl backlog=4096;
        ssl_certificate $S/cert.pem;
        ssl_certificate_key $S/key.pem;
        ssl_protocols TLSv1.2 TLSv1.3;
        ssl_session_tickets on;
        location / {
            proxy_pass http://backends;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }
    }
}
NGX
bench_backends_up
taskset -c 0 "$BIN" -c "$S/photon.yaml" 2>"$S/logs/photon.log" & PIDS+=($!)
taskset -c 0 nginx -p "$S/" -c "$S/nginx.conf" -e "$S/logs/nginx.error.log" & PIDS+=($!)
wait_port "$PH" "$S/logs/photon.log"
wait_port "$NG" "$S/logs/nginx.error.log"
for port in $PH $NG; do
    curl -skf -o /dev/null "https://127.0.0.1:$port/" || { echo "no answer on $port" >&2; exit 1; }
done
rate() { # PORT ARGS... -> requests/s
    bench_wrk "$DUR" --cpus 1 -t1 -c64 "${@:2}" "https://127.0.0.1:$1/" | wrk_rate
}
declare -A R
for case in keep-alive handshakes; do
    args=()
    [ "$case" = handshakes ] && args=(-H "Connection: close")
    for i in $(seq 1 "$RUNS"); do
        for who in photon nginx; do
            port=$PH; [ $who = nginx ] && port=$NG
            R[$case,$who,$i]=$(rate $port "${args[@]}")
        done
        echo "$case round $i: photon ${R[$case,photon,$i]} req/s, nginx ${R[$case,nginx,$i]} req/s"
    done
done
echo
for case in keep-alive handshakes; do
    ratios=()
    for i in $(seq 1 "$RUNS"); do
        ratios+=("$(bench_ratio "${R[$case,photon,$i]}" "${R[$case,nginx,$i]}")")
    done
    med=$(bench_median "${ratios[@]}")
    echo "$case: photon/nginx median ratio $med (rounds: ${ratios[*]})"
done
